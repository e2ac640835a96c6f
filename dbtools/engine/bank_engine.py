"""The batched forward pass: every model of a bank evaluated together on windows of sequences.

Models are grouped by architecture (detector length m, pooling, hidden layer); each group
runs its convolution as one GEMM whose columns are the detectors of all its models (plus
the flipped detectors of reverse-complement models, so both strands come from one pass
over the forward sequence). No Python loop over models.

Windowed scoring (the original scorer's ``--window-size``) pads every window with m-1 `N`
on its own. Detector positions that lie wholly inside a window see no padding, so they are
computed once per sequence and pooled with a sliding max/sum. The 2(m-1) positions that
overlap a window edge ("cuts") are computed from shared partial sums:

* Weights are centred per row (W~[j] = W[j] - mean_b W[j, b]); an `N` (0.25 per channel)
  then contributes exactly 0, so a cut response is C + (the centred rows inside the window),
  C = threshold + sum of the row means.
* Rows are split into blocks of `_BLOCK` (b). A block's response at a position depends only
  on the b bases there, so it is a row gathered from a table of all 5**b b-mers (N included)
  rather than a GEMM with b*4 inputs; cumulative sums over blocks give, for each filter start,
  the sum of all blocks after (left cuts) or before (right cuts) a block boundary. The cuts
  inside a block come from that block sum updated in place one row at a time (`addmm_` with
  4 inputs): a left cut's suffix from row k is the one from row k+1 plus W~[k] x[s+k], a right
  cut's prefix of l+1 rows is the one of l rows plus W~[l] x[s+l] (same filter start s).
* A cut whose best possible response (its upper bound from the weights) is below zero is
  always 0 after rectification and is skipped. The bound only decreases as a cut removes
  more rows, so with columns sorted by their last live cut (on either edge; one order and one
  set of block sums serve both), the live columns of every cut lie in a prefix of that order.
  A dead cut computed in that prefix is harmless: its value is below 0.
* Max pooling needs no rectification per value: the pooled interior (rectified, >= 0)
  starts the running max.
* Cut work is laid out [positions x sequences, columns], so every block sum and every cut is
  a contiguous range of rows.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from dbtools.engine import native as pooling_native
from dbtools.bank.store import Bank
from dbtools.io.encode import N, kmer_digits, kmer_index, one_hot
from dbtools.parallel import parallel_steps

# floats allowed in one group's activation block (bounds memory per step)
DEFAULT_BUDGET = 1 << 24
_CUDA_BUDGET = 1 << 27
_DEAD_MARGIN = 1e-3
_BLOCK = 4  # filter rows per block in the edge decomposition
_CPU_STEP = 1 << 19  # floats per [windows x columns] step on the CPU (cache-sized elementwise ops)
_CPU_COLS = 1000  # detector columns per step on the CPU (the GPU takes a group's columns at once)
_MIN_WINDOWS = 3  # fewer windows than this: edges recomputed per window (cheaper when nearly whole)


@dataclass
class _Group:
    """Models sharing one architecture, with stacked weights on the device."""

    m: int
    num_detectors: int
    avg: bool
    hidden: int
    bank_index: torch.Tensor  # [G] positions of these models in the bank
    rc_local: torch.Tensor  # [Grc] positions within the group of reverse-complement models
    weight: torch.Tensor  # [4m, F_live] conv weights of live detector columns
    threshold: torch.Tensor  # [F_live]
    live: torch.Tensor  # [F_live] column index into the full column list
    n_columns: int  # 16 * (G + Grc) forward then reverse-complement columns
    w1: torch.Tensor  # [G, nf, H] (H = 1 without hidden layer)
    b1: torch.Tensor  # [G, H]
    w2: torch.Tensor | None  # [G, H]
    b2: torch.Tensor | None  # [G]
    cuts: _Cuts
    features: torch.Tensor  # [n_columns * k] pooled column of each dense input (the zero column if dead)
    feature_rows: torch.Tensor  # [k, F_live] dense input of each live column in the cut order (max, then avg)
    dead_features: torch.Tensor  # dense inputs of dead columns (always 0)
    strands: _Strands | None  # the whole network per model strand, for the fused CPU kernel (None: not fit)

    @property
    def size(self) -> int:
        return int(self.bank_index.numel())


@dataclass
class _Cuts:
    """Edge-cut data of a group's live columns, in one column order shared by both window edges
    (live columns first, by the last cut at which either edge is live)."""

    order: np.ndarray  # [F_live] positions in the group's live columns
    const: torch.Tensor  # [F_live] threshold + sum of row means (response to all N)
    tables: list[list[torch.Tensor]]  # per chunk of `width` columns, per block: [5**b, fw] response to each b-mer
    rows: list[list[torch.Tensor]]  # per chunk, per block: [4 * rows, fw] centred weights (row, then base)
    nb: int  # blocks of `_BLOCK` rows (the last one may be shorter)
    width: int
    live_left: list[int]  # live_left[k]: columns alive at the left cut k (a prefix of the order)
    live_right: list[int]  # live_right[h]: columns alive at the right cut h
    centred: torch.Tensor  # [m, 5, F_live] centred weights in this order (the N row 0), for the fused kernel


@dataclass
class _Strands:
    """A group laid out for the fused CPU kernel with its dense layers (`pooling_native.Head`):
    one tile of LANES columns per model strand (forward strands, then reverse-complement ones),
    every detector kept (a dead one pools to 0 there as here)."""

    centred: torch.Tensor  # [m, 5, U * LANES] centred weights, N row and unused lanes 0
    const: torch.Tensor  # [U * LANES]
    head: pooling_native.Head
    rows: torch.Tensor  # [U] output row of each strand: arange(U)


def _build_strands(bank: Bank, members: list[int], rc_local: list[int], w3: np.ndarray,
                   thresholds: np.ndarray) -> _Strands | None:
    """The fused layout of a group (w3 [m, 4, n_columns] float64), or None if its shape does not fit."""
    arch = bank.models[members[0]].info.arch
    d, hidden, lanes = arch.num_detectors, arch.num_hidden, pooling_native.LANES
    if d > lanes or (hidden and (hidden % lanes or hidden > pooling_native.MAX_HIDDEN)):
        return None
    m = w3.shape[0]
    k = 2 if arch.avg_pooling else 1
    owner = list(range(len(members))) + list(rc_local)  # the model of each strand
    U = len(owner)
    mean = w3.mean(axis=1)
    const = thresholds + mean.sum(axis=0)
    centred = np.zeros((m, 5, U, lanes))
    centred[:, :4, :, :d] = (w3 - mean[:, None]).reshape(m, 4, U, d)
    cst = np.zeros((U, lanes))
    cst[:, :d] = const.reshape(U, d)
    hp = hidden or 1
    w1 = np.zeros((U, k, lanes, hp))
    for u, j in enumerate(owner):
        a = bank.models[members[j]].arrays
        for t in range(k):
            w1[u, t, :d] = a["weights1"][t::k]  # features interleave [max0, avg0, max1, avg1, ...]
    b1 = np.stack([bank.models[members[j]].arrays["biases1"] for j in owner])
    f32 = lambda v: torch.as_tensor(np.ascontiguousarray(v, dtype=np.float32))  # noqa: E731
    w2 = b2 = None
    if hidden:
        w2 = f32(np.stack([bank.models[members[j]].arrays["weights2"][:, 0] for j in owner]))
        b2 = f32(np.stack([bank.models[members[j]].arrays["biases2"][0] for j in owner]))
    return _Strands(centred=f32(centred.reshape(m, 5, U * lanes)), const=f32(cst.reshape(-1)),
                    head=pooling_native.Head(hidden=hidden, w1=f32(w1), b1=f32(b1), w2=w2, b2=b2),
                    rows=torch.arange(U))


def _build_cuts(w: np.ndarray, thr: np.ndarray, device: torch.device, width: int) -> _Cuts:
    """Cut data for live columns w [m, 4, F] (float64), thresholds [F]."""
    m, _, F = w.shape
    b = _BLOCK
    mean = w.mean(axis=1)  # [m, F]
    wc = w - mean[:, None]
    const = thr + mean.sum(axis=0)
    top = wc.max(axis=1)  # [m, F], >= 0
    # upper bounds: left cut k keeps rows k.., right cut h keeps rows ..m-1-h
    ub_left = const + np.cumsum(top[::-1], axis=0)[::-1]
    ub_right = const + np.cumsum(top, axis=0)
    last_left = (ub_left[1:] > -_DEAD_MARGIN).sum(axis=0)  # live cuts are k = 1..last_left
    last_right = (ub_right[:m - 1] > -_DEAD_MARGIN).sum(axis=0)  # live cuts are h = 1..last_right
    order = np.argsort(-np.maximum(last_left, last_right), kind="stable")
    position = np.empty(F, dtype=np.int64)
    position[order] = np.arange(F)

    def live(last: np.ndarray) -> list[int]:  # a prefix long enough for every column alive at cut c
        return [0] + [int(position[last >= c].max()) + 1 if (last >= c).any() else 0 for c in range(1, m)]

    nb = -(-m // b)
    padded = np.zeros((nb * b, 5, F))  # rows past m and the N channel respond 0 (centred weights)
    padded[:m, :4] = wc[:, :, order]
    digits = kmer_digits(b)
    tables, rows = [], []
    for c in range(0, F, width):
        blk = padded[:, :, c:c + width]
        tables.append([torch.as_tensor(sum(blk[beta * b + r][digits[:, r]] for r in range(b)).astype(np.float32),
                                       device=device) for beta in range(nb)])
        rows.append([torch.as_tensor(np.ascontiguousarray(
            blk[beta * b:min((beta + 1) * b, m), :4].reshape(-1, blk.shape[2]).astype(np.float32)), device=device)
            for beta in range(nb)])
    return _Cuts(order=order, const=torch.as_tensor(const[order].astype(np.float32), device=device),
                 tables=tables, rows=rows, nb=nb, width=width,
                 live_left=live(last_left), live_right=live(last_right),
                 centred=torch.as_tensor(np.ascontiguousarray(padded[:m]).astype(np.float32), device=device))


def _build_group(bank: Bank, members: list[int], device: torch.device) -> _Group:
    arch = bank.models[members[0]].info.arch
    m, d = arch.detector_len, arch.num_detectors
    rc_local = [k for k, i in enumerate(members) if bank.models[i].info.arch.reverse_complement]
    fwd_w = [bank.models[i].arrays["detectors"] for i in members]  # each [m, 4, d]
    # reverse-complement strand == forward strand scanned with W[m-1-j, 3-b]
    rc_w = [fwd_w[k][::-1, ::-1, :] for k in rc_local]
    thr = [bank.models[i].arrays["thresholds"] for i in members]
    w3 = np.concatenate(fwd_w + rc_w, axis=2)  # [m, 4, F]
    cols = w3.reshape(4 * m, -1)
    thresholds = np.concatenate(thr + [thr[k] for k in rc_local])
    # a detector whose best possible response stays below zero is always 0 after rectification
    best = np.concatenate([w.max(axis=1).sum(axis=0) for w in fwd_w + rc_w]) + thresholds
    live = np.flatnonzero(best > -_DEAD_MARGIN)
    if live.size == 0:
        live = np.array([0])
    width = _CPU_COLS if device.type == "cpu" else live.size
    cuts = _build_cuts(w3[:, :, live].astype(np.float64), thresholds[live].astype(np.float64), device, width)
    k, F = (2 if arch.avg_pooling else 1), live.size
    features = np.full((cols.shape[1], k), k * F, dtype=np.int64)
    for t in range(k):
        features[live[cuts.order], t] = np.arange(F) + t * F
    nf = arch.num_features
    w1 = np.stack([bank.models[i].arrays["weights1"] for i in members])  # [G, nf, H|1]
    b1 = np.stack([bank.models[i].arrays["biases1"] for i in members])  # [G, H|1]
    if arch.num_hidden:
        w2 = torch.as_tensor(np.stack([bank.models[i].arrays["weights2"][:, 0] for i in members]))
        b2 = torch.as_tensor(np.stack([bank.models[i].arrays["biases2"][0] for i in members]))
        w2, b2 = w2.to(device), b2.to(device)
    else:
        w2 = b2 = None
    assert w1.shape[1] == nf
    return _Group(
        m=m, num_detectors=d, avg=arch.avg_pooling, hidden=arch.num_hidden,
        bank_index=torch.as_tensor(members, dtype=torch.long, device=device),
        rc_local=torch.as_tensor(rc_local, dtype=torch.long, device=device),
        weight=torch.as_tensor(np.ascontiguousarray(cols[:, live]), device=device),
        threshold=torch.as_tensor(thresholds[live], device=device),
        live=torch.as_tensor(live, dtype=torch.long, device=device),
        n_columns=cols.shape[1],
        w1=torch.as_tensor(w1, device=device), b1=torch.as_tensor(b1, device=device), w2=w2, b2=b2,
        cuts=cuts,
        features=torch.as_tensor(features.reshape(-1), device=device),
        feature_rows=torch.as_tensor(np.stack([live[cuts.order] * k + t for t in range(k)])),
        dead_features=torch.as_tensor(np.flatnonzero(features.reshape(-1) == k * F)),
        strands=_build_strands(bank, members, rc_local, w3.astype(np.float64), thresholds.astype(np.float64))
        if device.type == "cpu" else None,
    )


def _cast_group(g: _Group, dtype: torch.dtype) -> None:
    """Hold a group's weights and tables in `dtype` (the torch path computes in it)."""
    for name in ("weight", "threshold", "w1", "b1", "w2", "b2"):
        if getattr(g, name) is not None:
            setattr(g, name, getattr(g, name).to(dtype))
    c = g.cuts
    c.const, c.centred = c.const.to(dtype), c.centred.to(dtype)
    c.tables = [[t.to(dtype) for t in chunk] for chunk in c.tables]
    c.rows = [[t.to(dtype) for t in chunk] for chunk in c.rows]
    g.strands = None


def row_max(t: torch.Tensor) -> torch.Tensor:
    """t.amax(1) for [n, rows, width]. torch's amax over a middle dimension is 2-13x slower for
    widths from 3 to 64 that are not a multiple of 32 (measured: 4, 8, 16, 24, 28, 44, 48);
    pairwise maxima are faster there."""
    if t.shape[2] % 32 == 0 or not 3 <= t.shape[2] <= 64:
        return t.amax(1)
    while t.shape[1] > 1:
        n = t.shape[1]
        h = (n + 1) // 2  # halves overlap by one row when n is odd: harmless for a max
        t = torch.maximum(t[:, :h], t[:, n - h:])
    return t[:, 0]


def block_sums(tables: list[torch.Tensor], kmer: torch.Tensor, const: torch.Tensor, first: int,
               shift: int) -> list[torch.Tensor]:
    """Suffix sums of a filter's blocks: out[beta][q] = const + sum over t >= beta of
    tables[t][kmer[q + (t - beta) * shift]], for q < first + beta * shift (one b-mer table row
    per block; `shift` rows separate consecutive blocks)."""
    out: list[torch.Tensor] = [None] * len(tables)
    for beta in range(len(tables) - 1, -1, -1):
        q = first + beta * shift
        out[beta] = tables[beta].index_select(0, kmer[:q])
        out[beta].add_(const if beta == len(tables) - 1 else out[beta + 1][shift:shift + q])
    return out


def _reduce(acc: torch.Tensor | None, scores: torch.Tensor, average: bool) -> torch.Tensor:
    """Fold per-window scores [B, nw, G] into a running max or sum over windows."""
    part = scores.sum(1) if average else row_max(scores)
    if acc is None:
        return part
    return acc + part if average else torch.maximum(acc, part)


def _sliding_max(v: torch.Tensor, n: int, out: torch.Tensor, dim: int = 1) -> None:
    """out[p] = max(v[p:p+n]) along `dim` for p < out.shape[dim] (v has out.shape[dim] + n - 1 there)."""
    count, width, cur = out.shape[dim], 1, v
    while 2 * width <= n:  # cur[i] = max(v[i:i+2*width])
        size = cur.shape[dim] - width
        cur = torch.maximum(cur.narrow(dim, 0, size), cur.narrow(dim, width, size))
        width *= 2
    if width == n:
        out.copy_(cur.narrow(dim, 0, count))
    else:
        torch.maximum(cur.narrow(dim, 0, count), cur.narrow(dim, n - width, count), out=out)


def _sliding_sum(v: torch.Tensor, n: int, out: torch.Tensor, dim: int = 1) -> None:
    """out[p] = sum(v[p:p+n]) along `dim` for p < out.shape[dim] (v has out.shape[dim] + n - 1 there)."""
    count, off, width, cur, first = out.shape[dim], 0, 1, v, True
    while True:  # binary decomposition of n; cur[i] = sum(v[i:i+width])
        if n & width:
            part = cur.narrow(dim, off, count)
            out.copy_(part) if first else out.add_(part)
            first = False
            off += width
        if 2 * width > n:
            return
        size = cur.shape[dim] - width
        cur = cur.narrow(dim, 0, size) + cur.narrow(dim, width, size)
        width *= 2


class BankEngine:
    """A bank compiled for batched evaluation on one device."""

    def __init__(self, bank: Bank, device: str | torch.device = "cpu", budget: int | None = None,
                 dtype: torch.dtype = torch.float32):
        """`dtype` below float32 (bfloat16, float16) computes the windowed pass in it (the torch
        path; the fused CPU kernel is float32): a speed lever on GPUs. Scores come out float32."""
        self.bank = bank
        self.device = torch.device(device)
        self.dtype = dtype
        # a GPU wants large steps; on the CPU smaller blocks stay in cache
        self.budget = budget or (DEFAULT_BUDGET if self.device.type == "cpu" else _CUDA_BUDGET)
        by_arch: dict[tuple, list[int]] = {}
        for i, model in enumerate(bank.models):
            a = model.info.arch
            by_arch.setdefault((a.detector_len, a.num_detectors, a.avg_pooling, a.num_hidden), []).append(i)
        self.groups = [_build_group(bank, members, self.device) for members in by_arch.values()]
        if dtype != torch.float32:
            for g in self.groups:
                _cast_group(g, dtype)

    def __len__(self) -> int:
        return len(self.bank)

    @staticmethod
    def _use_cuts(g: _Group, w: int, n_windows: int) -> bool:
        return w >= g.m and n_windows >= _MIN_WINDOWS

    def _steps(self, g: _Group, B: int, w: int, n_windows: int) -> tuple[int, int]:
        """Windows and sequences per step for group g."""
        cols = max(1, g.weight.shape[1])
        if not self._use_cuts(g, w, n_windows):
            per_window_rows = (2 * (g.m - 1) if w >= g.m else w + g.m - 1) + 1
            wc = max(1, min(n_windows, self.budget // (per_window_rows * cols)))
            return wc, max(1, min(B, self.budget // (wc * per_window_rows * cols)))
        width = min(cols, g.cuts.width)
        step = min(_CPU_STEP, self.budget // 8) if self.device.type == "cpu" else self.budget // 8
        rows = max(1, step // width)
        wc = min(n_windows, rows)
        sb = max(1, min(B, rows // wc))

        def floats(wc: int, sb: int) -> int:  # block sums of one column chunk, pooled features
            return (wc + w + g.m) * sb * (g.cuts.nb + 1) * width + wc * sb * cols * (2 if g.avg else 1)

        while floats(wc, sb) > self.budget and (sb > 1 or wc > 1):
            if sb > 1:
                sb = (sb + 1) // 2
            else:
                wc = (wc + 1) // 2
        return wc, sb

    @torch.inference_mode()
    def score(self, codes: np.ndarray | torch.Tensor, window_size: int | None = None,
              average: bool = False) -> torch.Tensor:
        """Score B equal-length sequences ([B, L] codes) with every model: [B, M] float32.

        Semantics of DeepBind v0.11: window w = `window_size` or int(1.5 m); a sequence no
        longer than w is scored whole; otherwise every stride-1 window is scored (each padded
        on its own) and the max is returned, or with `average` the sum divided by L.
        """
        codes = torch.as_tensor(codes).to(self.device, torch.long)
        if codes.dim() != 2:
            raise ValueError("codes must be [batch, length]")
        B, L = codes.shape
        out = torch.empty(B, len(self.bank), device=self.device)
        steps = []
        for g in self.groups:
            w = min(window_size or int(1.5 * g.m), L)
            wc, sb = self._steps(g, B, w, L - w + 1)
            steps.extend((g, w, wc, b0, min(B, b0 + sb)) for b0 in range(0, B, sb))

        def run(step) -> None:
            g, w, wc, b0, b1 = step
            sub, n_windows = codes[b0:b1], L - w + 1
            fwd = rc = None
            for p0 in range(0, n_windows, wc):
                f, r = self.window_scores(g, sub, w, p0, min(n_windows, p0 + wc))
                fwd = _reduce(fwd, f, average)
                rc = _reduce(rc, r, average)
            # as the original: each strand is reduced over windows, then the strands' max is taken
            if g.rc_local.numel():
                fwd[:, g.rc_local] = torch.maximum(fwd[:, g.rc_local], rc)
            if average and n_windows > 1:
                fwd = fwd / L
            out[b0:b1, g.bank_index] = fwd

        parallel_steps(run, steps, self.device)
        return out

    def window_scores(self, g: _Group, codes: torch.Tensor, w: int, p0: int, p1: int):
        """Scores of windows starting at p0..p1-1 (each of length w, padded with m-1 N).

        Returns the forward strand [B, nw, G] and the reverse strand of the group's
        reverse-complement models [B, nw, Grc].
        """
        B, nw = codes.shape[0], p1 - p0
        if w >= g.m and g.strands is not None and self._fused(g, codes.device):  # any number of windows
            return self.scores_fused(g, codes, w, p0, p1)
        if self._use_cuts(g, w, codes.shape[1] - w + 1):
            if self._fused(g, codes.device):
                feats = self._pooled_fused(g, codes, w, p0, p1)
                f, r = self._heads(g, feats.view(g.n_columns // g.num_detectors, -1, nw * B))
            else:
                pooled = self._pooled_cuts(g, codes, w, p0, p1).t().contiguous()  # [k * F + 1, nw * B]
                f, r = self.scores_from_pooled(g, pooled)
            f, r = f.float(), r.float()  # a no-op in float32; reduced precision is reduced in float32
            return f.view(-1, nw, B).permute(2, 1, 0), r.view(-1, nw, B).permute(2, 1, 0)
        mx, mean = self._pooled(g, codes, w, p0, p1)  # [B, nw, F]
        f, r = self._dense(g, mx.reshape(B * nw, -1), None if mean is None else mean.reshape(B * nw, -1), g.live)
        return f.t().reshape(B, nw, -1).float(), r.t().reshape(B, nw, -1).float()

    def scores_from_pooled(self, g: _Group, pooled: torch.Tensor, features: torch.Tensor | None = None):
        """Forward-strand [G, R] and reverse-strand [Grc, R] scores from pooled features
        [k * F + 1, R] (the live columns in the cut order, then a zero column); `features`
        (default g.features) picks each dense input's row."""
        rows = g.features if features is None else features
        feats = pooled.index_select(0, rows).view(g.n_columns // g.num_detectors, -1, pooled.shape[1])
        return self._heads(g, feats)

    def _conv(self, g: _Group, window_codes: torch.Tensor) -> torch.Tensor:
        """Rectified detector responses for [..., m] code windows: [..., F_live]."""
        x = one_hot(window_codes).reshape(-1, 4 * g.m).to(g.weight.dtype)
        z = torch.addmm(g.threshold, x, g.weight).clamp_(min=0)
        return z.reshape(*window_codes.shape[:-1], -1)

    def _pooled(self, g: _Group, codes: torch.Tensor, w: int, p0: int, p1: int):
        """Pooled features with every window's edge positions recomputed: [B, nw, F] (g.live order)."""
        m, nw = g.m, p1 - p0
        dev = codes.device
        maxes, sums = [], []
        if w >= m:  # detector positions wholly inside the window: computed once, pooled by sliding
            inner = w - m + 1
            if (nw + inner - 1) * codes.shape[0] * g.weight.shape[1] <= self.budget:
                seg = codes[:, p0:p1 - 1 + w]
                z = self._conv(g, seg.unfold(1, m, 1))  # [B, nw + inner - 1, F]
                zu = z.unfold(1, inner, 1)  # [B, nw, F, inner]
                maxes.append(zu.amax(-1))
                if g.avg:
                    sums.append(zu.sum(-1))
            else:  # a long window (few of them): its interior in position chunks, memory bounded
                mx, sm = self._interior_chunked(g, codes, w, p0, p1)
                maxes.append(mx)
                if g.avg:
                    sums.append(sm)
            offsets = torch.cat([torch.arange(-(m - 1), 0, device=dev), torch.arange(w - m + 1, w, device=dev)])
        else:
            offsets = torch.arange(-(m - 1), w, device=dev)
        if offsets.numel():  # positions overlapping a window edge see N beyond it
            rel = offsets[:, None] + torch.arange(m, device=dev)[None, :]  # [E, m] relative to window start
            inside = (rel >= 0) & (rel < w)
            idx = torch.arange(p0, p1, device=dev)[:, None, None] + rel.clamp(0, w - 1)[None]
            edge_codes = torch.where(inside, codes[:, idx], N)  # [B, nw, E, m]
            z = self._conv(g, edge_codes)  # [B, nw, E, F]
            maxes.append(z.amax(2))
            if g.avg:
                sums.append(z.sum(2))
        mx = maxes[0] if len(maxes) == 1 else torch.maximum(maxes[0], maxes[1])
        if not g.avg:
            return mx, None
        total = sums[0] if len(sums) == 1 else sums[0] + sums[1]
        return mx, total / (w + m - 1)

    def _interior_chunked(self, g: _Group, codes: torch.Tensor, w: int, p0: int, p1: int):
        """Max and sum over the wholly-inside positions of each window, a chunk of positions at a time."""
        B, m = codes.shape[0], g.m
        F = g.weight.shape[1]
        step = max(1, self.budget // max(1, B * F))
        mx = torch.zeros(B, p1 - p0, F, device=codes.device, dtype=g.weight.dtype)
        sm = torch.zeros_like(mx) if g.avg else None
        for k, p in enumerate(range(p0, p1)):
            for s0 in range(p, p + w - m + 1, step):
                s1 = min(p + w - m + 1, s0 + step)
                z = self._conv(g, codes[:, s0:s1 + m - 1].unfold(1, m, 1))  # [B, s1 - s0, F]
                torch.maximum(mx[:, k], z.amax(1), out=mx[:, k])
                if sm is not None:
                    sm[:, k] += z.sum(1)
        return mx, sm

    def _pooled_cuts(self, g: _Group, codes: torch.Tensor, w: int, p0: int, p1: int) -> torch.Tensor:
        """Pooled features from shared block sums (w >= m): [nw * B, k * F + 1], rows (window, sequence);
        the max (then the mean) of every detector column in g.cuts' order, then a zero column."""
        B, L = codes.shape
        m, nw, b = g.m, p1 - p0, _BLOCK
        cuts = g.cuts
        F = cuts.const.numel()
        nl, nr = cuts.nb, (m - 1) // b
        inner = w - m + 1
        rows = nw * B
        dev = codes.device
        # codes of positions q in [p0, p1 + w - 2 + b), N past the sequence; rows (position, sequence)
        lo, hi = p0, p1 + w - 2 + b
        seg = torch.full((hi - lo, B), N, dtype=codes.dtype, device=dev)
        seg[:min(hi, L) - lo] = codes[:, lo:min(hi, L)].t()
        seg = seg.clamp_(max=N)  # PAD (all 0) and N both contribute 0 with centred weights
        kmer = kmer_index(seg, b, 0).reshape(-1)  # b-mer starting at q
        x1 = one_hot(seg).reshape(-1, 4).to(cuts.const.dtype)  # the base at q
        sr = p0 + w - m + 1  # first right filter start

        k = 2 if g.avg else 1
        pooled = torch.empty(rows, k * F + 1, device=dev, dtype=cuts.const.dtype)
        pooled[:, -1] = 0
        acc = pooled[:, :F]
        total = pooled[:, F:2 * F] if g.avg else None
        buf = torch.empty(rows * cuts.width, device=dev, dtype=cuts.const.dtype) if g.avg else None

        def fold(val: torch.Tensor, c: int, n: int):
            a = acc[:, c:c + n]
            if total is not None:
                val = torch.clamp(val, min=0, out=buf[:rows * n].view(rows, n))
                total[:, c:c + n].add_(val)
            torch.maximum(a, val, out=a)

        for chunk, c0 in enumerate(range(0, F, cuts.width)):
            fw = min(F, c0 + cuts.width) - c0
            tab, wr = cuts.tables[chunk], cuts.rows[chunk]
            const = cuts.const[c0:c0 + fw]
            # suffix block sums bl[beta][i] = C + blocks beta.. at filter start s = p0 - beta*b + i,
            # for s up to the last interior start p1-1+w-m (last block first)
            bl = block_sums(tab, kmer, const, (nw + inner - 1) * B, b * B)
            # interior: full responses at filter starts p0 .. p1-1+w-m, slid over inner positions
            conv = bl[0].clamp_(min=0).view(nw + inner - 1, B, fw)
            _sliding_max(conv, inner, acc[:, c0:c0 + fw].view(nw, B, fw), dim=0)
            if total is not None:
                _sliding_sum(conv, inner, total[:, c0:c0 + fw].view(nw, B, fw), dim=0)
            del conv
            # left cuts (the first k rows see N), one base block sum at a time: cut bj (a block
            # boundary) reads bl[j] as is; the cuts k of block j-1 (descending) then add row k to
            # bl[j] in place, since the suffix from row k at filter start s is the one from row
            # k+1 plus W~[k] x[s+k]
            live = cuts.live_left
            for j in range(1, nl + 1):
                if live[min(b * j - b + 1, m - 1)] <= c0:
                    break
                if b * j < m:
                    n = min(live[b * j] - c0, fw)
                    if n > 0:  # filter start p - bj  ->  i = p - p0
                        fold(bl[j][:rows, :n], c0, n)
                top = min(b * j, m)  # block j-1 holds rows bj-b .. top-1
                if top - 1 <= b * j - b:
                    continue
                nmax = min(live[b * j - b + 1] - c0, fw)
                if j < nl:  # t[i] at filter start p0 - bj + i
                    t, off = bl[j], 0
                else:  # the suffix from row m: the constant alone
                    off = b * j - (top - 1)
                    t = const[None, :nmax].expand((nw + b - 1 - off) * B, nmax).clone()
                end = (nw + b - 1 - off) * B
                for kk in range(top - 1, b * j - b, -1):
                    r = kk - b * j + b
                    i0 = b * j - kk - off  # cut kk reads filter start p - kk
                    t[i0 * B:end, :nmax].addmm_(x1[:end - i0 * B], wr[j - 1][4 * r:4 * r + 4, :nmax])
                    n = min(live[kk] - c0, fw)
                    if n > 0:
                        fold(t[i0 * B:i0 * B + rows, :n], c0, n)
            del bl
            # right cuts (the last h rows see N, l = m - h kept): prefix block sums
            # br[beta][i] = C + blocks ..beta-1 at filter start sr + i, for s up to p1-1+w-beta*b
            live = cuts.live_right
            if live[1] <= c0:
                continue
            br = [None] * (nr + 1)
            for beta in range(1, nr + 1):
                q0, q = (sr - p0 + (beta - 1) * b) * B, (nw + m - 1 - beta * b) * B
                br[beta] = tab[beta - 1].index_select(0, kmer[q0:q0 + q])
                if beta == 1:
                    br[beta].add_(const)
                else:
                    br[beta].add_(br[beta - 1][:q])
            # one base block sum at a time: cut l = bj kept rows reads br[j] as is; the cuts of
            # block j (ascending kept rows l) then add row l-1 to br[j] in place
            for j in range(nr + 1):
                if j:
                    n = min(live[m - b * j] - c0, fw)
                    if n > 0:  # filter start sr + i, i = (p - p0) + h - 1
                        i0 = m - b * j - 1
                        fold(br[j][i0 * B:i0 * B + rows, :n], c0, n)
                lmax = min(b * j + b - 1, m - 1)
                if lmax <= b * j:
                    continue
                nmax = min(live[m - lmax] - c0, fw)
                if nmax <= 0:
                    continue
                if j:  # t[i] at filter start sr + i
                    t, off = br[j], 0
                else:
                    off = m - lmax - 1
                    t = const[None, :nmax].expand((nw + lmax - 1) * B, nmax).clone()
                for l in range(b * j + 1, lmax + 1):
                    r = l - 1 - b * j  # row l-1 of block j
                    a0 = m - lmax - 1 - off  # first filter start still needed
                    e = m - l - 1 + nw - off
                    x0 = w - lmax + l - 1  # x at filter start + l - 1
                    t[a0 * B:e * B, :nmax].addmm_(x1[x0 * B:(x0 + e - a0) * B], wr[j][4 * r:4 * r + 4, :nmax])
                    n = min(live[m - l] - c0, fw)
                    if n > 0:
                        i0 = m - l - 1 - off
                        fold(t[i0 * B:i0 * B + rows, :n], c0, n)
            del br
        if total is not None:
            total.div_(w + m - 1)
        return pooled

    @staticmethod
    def _fused(g: _Group, device: torch.device) -> bool:
        """Whether the fused CPU kernel computes this group's pooled features (else `_pooled_cuts`)."""
        return (device.type == "cpu" and g.m <= pooling_native.MAX_DETECTOR_LEN
                and g.weight.dtype == torch.float32 and pooling_native.library() is not None)

    def fused_scores(self, g: _Group) -> bool:
        """Whether `scores_fused` serves group g (CPU, kernel built, a shape the kernel's head takes)."""
        return g.strands is not None and self._fused(g, self.device)

    def scores_fused(self, g: _Group, codes: torch.Tensor, w: int, p0: int, p1: int, step: int = 1):
        """Scores of windows starting at p0, p0 + step, ... < p1 (w >= m each), the whole network in
        the fused CPU kernel (g.strands): forward strand [B, n, G], reverse strand [B, n, Grc]."""
        B, n = codes.shape[0], (p1 - p0 - 1) // step + 1
        st = g.strands
        out = torch.empty(st.rows.numel(), n, B)
        x = codes[:, p0:p1 + w - 1].clamp(max=N).to(torch.uint8)
        pooling_native.pool_windows(x, w, st.centred, st.const, out, st.rows, st.rows if g.avg else None,
                                    1.0 / (w + g.m - 1), st.head, step)
        G = g.size
        return out[:G].permute(2, 1, 0), out[G:].permute(2, 1, 0)

    def _pooled_fused(self, g: _Group, codes: torch.Tensor, w: int, p0: int, p1: int) -> torch.Tensor:
        """The dense inputs [n_columns * k, nw * B] of windows p0..p1-1, pooled by the fused CPU
        kernel (`pooling_native`): what `_pooled_cuts` and `g.features` give, in one pass."""
        B, nw = codes.shape[0], p1 - p0
        k = 2 if g.avg else 1
        feats = torch.empty(g.n_columns * k, nw, B)
        feats.index_fill_(0, g.dead_features, 0.0)
        x = codes[:, p0:p1 + w - 1].clamp(max=N).to(torch.uint8)
        pooling_native.pool_windows(x, w, g.cuts.centred, g.cuts.const, feats, g.feature_rows[0],
                                    g.feature_rows[1] if g.avg else None, 1.0 / (w + g.m - 1))
        return feats.view(g.n_columns * k, nw * B)

    def _dense(self, g: _Group, mx: torch.Tensor, mean: torch.Tensor | None, live: torch.Tensor):
        """Dense layers on pooled features [R, F_live] (columns `live` of the full list): [G, R], [Grc, R]."""
        R = mx.shape[0]
        d = g.num_detectors
        pooled = torch.stack([mx, mean], -1) if g.avg else mx[..., None]  # [R, F_live, k]
        full = pooled.new_zeros(R, g.n_columns, pooled.shape[-1])
        full[:, live] = pooled
        # features interleaved [max0, avg0, max1, avg1, ...] as the published weights expect
        return self._heads(g, full.reshape(R, -1, d * pooled.shape[-1]).permute(1, 2, 0))

    def _heads(self, g: _Group, feats: torch.Tensor):
        """Forward-strand [G, R] and reverse-strand [Grc, R] scores from features [G + Grc, nf, R]."""
        G = g.size
        return self._head(g, feats[:G], slice(None)), self._head(g, feats[G:], g.rc_local)

    def _head(self, g: _Group, feats: torch.Tensor, which) -> torch.Tensor:
        """Fully connected layers of the models `which` on their features [g, nf, R]: [g, R]."""
        w1, b1 = g.w1[which], g.b1[which]
        if g.hidden:
            h = torch.bmm(w1.transpose(1, 2), feats).add_(b1[:, :, None]).clamp_(min=0)  # [g, H, R]
            return torch.bmm(g.w2[which][:, None, :], h)[:, 0].add_(g.b2[which][:, None])
        return torch.bmm(w1.transpose(1, 2), feats)[:, 0].add_(b1)
