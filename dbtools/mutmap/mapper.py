"""Mutation maps: how every single-base substitution of a sequence changes each model's score.

delta[i, b] = score(sequence with base b at i) - score(sequence), both exactly what
`score_codes` returns (same window size / average options); the wild-type base gets 0.

Exact and fast, without scoring 3L mutant sequences:

* A window of the original scorer is padded with m-1 `N` on its own, so a detector position
  ("filter start" s) has a pre-activation A_p(s) that depends on the window p it sits in.
  A substitution at i changes only the m positions s = i-m+1..i, and only in the windows
  that hold i; there row j = i - s reads a real base, so the change is exactly
  W[j, b] - W[j, x_i] whatever the window's padding.
* Per window the wild-type pre-activations are computed once ([windows, Q = w+m-1, columns])
  from partial sums of the centred filter rows at every filter start (an `N` row adds 0 to
  centred weights, so a position cut by the window edge is a difference of two partial sums);
  the m changed positions of every (mutation, window) pair are a strided view of them, so
  the mutant's pooled max is max(wild-type max over the unchanged positions (prefix and
  suffix maxima), max of the m updated values) and its pooled sum is the wild-type sum
  with the m changed terms swapped. The updated values are built a cache-sized chunk at a
  time and reduced at once.
* The dense layers then score the affected windows of every mutant; windows that do not
  hold i keep their wild-type scores, so a mutant's max over windows is also the max of the
  wild-type window scores before and after its affected windows (or, with --average, the
  wild-type sum with the affected windows' scores swapped).

Models whose detectors share a length and pooling are stacked into one set of columns (per
architecture, forward detectors, then the flipped detectors of reverse-complement models, as
in `engine.groups`), so models that differ only in their dense layers share the detector
work; the three other bases of every position (all four at an `N`) and every window offset
of a block of windows are evaluated together, in cache-sized chunks of windows and offsets,
and blocks of windows keep memory within a budget for any sequence length.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from dbtools.bank.store import Bank
from dbtools.engine.groups import architecture_groups, strand_detectors
from dbtools.engine.options import ScoreOptions
from dbtools.io.encode import N
from dbtools.parallel import parallel_steps

DEFAULT_BUDGET = 1 << 22  # floats in the temporaries of one block of windows
_CPU_CHUNK = 1 << 18  # floats of mutant pre-activations built at once on the CPU (they stay in cache)
_MAX_COLUMNS = 512  # detector columns per stack (a stack's models are split beyond this)


@dataclass
class _Heads:
    """Dense layers of models of one architecture, reading columns c0..c1-1 of their stack.

    Head h (the forward strand of each model, then the reverse strands) owns columns
    c0 + h*d .. c0 + (h+1)*d - 1 and is head h0 + h of the stack.
    """

    d: int
    bank_index: np.ndarray  # [G] positions of these models in the bank
    rc_local: torch.Tensor  # [Grc] positions among these models of reverse-complement ones
    c0: int
    c1: int
    h0: int
    h1: int
    w_max: torch.Tensor  # [H, d, hid | 1] dense weights of the max features
    w_mean: torch.Tensor | None  # [H, d, hid | 1] of the mean features
    b1: torch.Tensor  # [H, hid | 1]
    lin_max: torch.Tensor | None  # without hidden layer: [H, c1 - c0] block-diagonal w_max (one GEMM)
    lin_mean: torch.Tensor | None
    w2: torch.Tensor | None  # [H, hid, 1]
    b2: torch.Tensor | None  # [H]

    @property
    def size(self) -> int:
        return len(self.bank_index)

    @property
    def hidden(self) -> int:
        return 0 if self.w2 is None else self.w2.shape[1]


@dataclass
class _Stack:
    """Models whose detectors share a length and pooling, with stacked detector columns (each
    architecture's forward columns, then its reverse-complement ones); dead detectors are kept
    (they pool to 0)."""

    m: int
    avg: bool
    centred: torch.Tensor  # [5m, C] row 5j + code: W[j, b] - mean_b W[j, b] (0 for N)
    const: torch.Tensor  # [C] threshold + sum of the row means: the response to m N
    subst: torch.Tensor  # [4, 3mC] per reference base x: W[j, x+r+1 mod 4] - W[j, x] (r = 0..2, j' = m-1-j)
    subst_n: torch.Tensor  # [5, 4mC] per reference code x (N: the mean row): W[j, b] - W[j, x] (b = 0..3)
    parts: list[_Heads]

    @property
    def heads(self) -> int:
        return self.parts[-1].h1


def _build_heads(bank: Bank, members: list[int], c0: int, h0: int, device: torch.device):
    """Dense layers of `members` (one architecture) and their detector columns [m, 4, c] / thresholds."""
    arch = bank.models[members[0]].info.arch
    d = arch.num_detectors
    w3, thr, rc_local = strand_detectors(bank, members)
    heads = list(range(len(members))) + rc_local
    H, C = len(heads), w3.shape[2]
    w1 = np.stack([bank.models[members[k]].arrays["weights1"] for k in heads])  # [H, nf, hid|1]
    b1 = np.stack([bank.models[members[k]].arrays["biases1"] for k in heads])  # [H, hid|1]
    # features interleaved [max0, avg0, max1, avg1, ...] per head, as the published weights expect
    w_max, w_mean = (w1[:, 0::2], w1[:, 1::2]) if arch.avg_pooling else (w1, None)

    def t(a):
        return None if a is None else torch.as_tensor(np.ascontiguousarray(a), dtype=torch.float32, device=device)

    def block_diagonal(w):  # [H, d, 1] -> [H, C]
        out = np.zeros((H, C))
        for h in range(H):
            out[h, h * d:(h + 1) * d] = w[h, :, 0]
        return out

    linear = not arch.num_hidden
    if arch.num_hidden:
        w2 = np.stack([bank.models[members[k]].arrays["weights2"] for k in heads])  # [H, hid, 1]
        b2 = np.stack([bank.models[members[k]].arrays["biases2"][0] for k in heads])
    else:
        w2 = b2 = None
    part = _Heads(
        d=d, bank_index=np.asarray(members),
        rc_local=torch.as_tensor(rc_local, dtype=torch.long, device=device),
        c0=c0, c1=c0 + C, h0=h0, h1=h0 + H,
        w_max=t(w_max), w_mean=t(w_mean), b1=t(b1),
        lin_max=t(block_diagonal(w_max)) if linear else None,
        lin_mean=t(block_diagonal(w_mean)) if linear and w_mean is not None else None,
        w2=t(w2), b2=t(b2),
    )
    return part, w3, thr


def _build_stack(bank: Bank, groups: list[list[int]], device: torch.device) -> _Stack:
    """A stack of `groups` (models of one architecture each; all of one detector length and pooling)."""
    arch = bank.models[groups[0][0]].info.arch
    m = arch.detector_len
    parts, ws, thrs = [], [], []
    c0 = h0 = 0
    for members in groups:
        part, w3, thr = _build_heads(bank, members, c0, h0, device)
        parts.append(part)
        ws.append(w3)
        thrs.append(thr)
        c0, h0 = part.c1, part.h1
    w3, thr = np.concatenate(ws, axis=2), np.concatenate(thrs)  # [m, 4, C], [C]
    C = w3.shape[2]
    mean = w3.mean(axis=1)  # [m, C]
    centred = np.concatenate([w3 - mean[:, None], np.zeros_like(mean)[:, None]], axis=1)  # [m, 5, C]
    rows = w3[::-1].transpose(1, 0, 2)  # [4, m, C] W[j, b] in j' = m-1-j order
    by_code = np.concatenate([rows, rows.mean(axis=0, keepdims=True)])  # [5, m, C]
    subst = np.stack([np.stack([rows[(x + r + 1) % 4] - rows[x] for r in range(3)]) for x in range(4)])
    subst_n = rows[None] - by_code[:, None]  # [5, 4, m, C]

    def t(a):
        return torch.as_tensor(np.ascontiguousarray(a), dtype=torch.float32, device=device)

    return _Stack(m=m, avg=arch.avg_pooling, centred=t(centred.reshape(5 * m, C)), const=t(thr + mean.sum(axis=0)),
                  subst=t(subst.reshape(4, -1)), subst_n=t(subst_n.reshape(5, -1)), parts=parts)


def _dense(s: _Stack, mx: torch.Tensor, mean: torch.Tensor | None) -> torch.Tensor:
    """Scores of every head (model strand) of a stack from pooled features [R, C] (max, and mean): [R, H]."""
    R = mx.shape[0]
    out = mx.new_empty(R, s.heads)
    for p in s.parts:
        f_max = mx[:, p.c0:p.c1]
        f_mean = None if mean is None else mean[:, p.c0:p.c1]
        if p.lin_max is not None:  # one output per head: a block-diagonal GEMM for all heads at once
            z = torch.mm(p.lin_max, f_max.t())  # [H, R]: faster than [R, C] x [C, H] with few heads
            if f_mean is not None:
                z.addmm_(p.lin_mean, f_mean.t())
            out[:, p.h0:p.h1] = z.add_(p.b1).t()
            continue
        for h in range(p.h1 - p.h0):  # a GEMM per head (faster than bmm over the heads' strided features)
            cols = slice(h * p.d, (h + 1) * p.d)
            z = torch.addmm(p.b1[h], f_max[:, cols], p.w_max[h])  # [R, hid]
            if f_mean is not None:
                z.addmm_(f_mean[:, cols], p.w_mean[h])
            torch.addmv(p.b2[h], z.clamp_(min=0), p.w2[h, :, 0], out=out[:, p.h0 + h])
    return out


def _models_of(p: _Heads, per_head: torch.Tensor) -> torch.Tensor:
    """[..., H] strand scores -> [..., G] model scores (the max of the strands, as the original)."""
    out = per_head[..., :p.size].clone()
    if p.rc_local.numel():
        out[..., p.rc_local] = torch.maximum(out[..., p.rc_local], per_head[..., p.size:])
    return out


class MutationMapper:
    """A bank compiled for exact mutation maps on one device."""

    def __init__(self, bank: Bank, device: str | torch.device = "cpu", budget: int | None = None,
                 chunk: int | None = None):
        self.bank = bank
        self.device = torch.device(device)
        self.budget = budget or DEFAULT_BUDGET
        # the mutants' pre-activations are reduced as soon as built: cache-sized on the CPU
        self.chunk = chunk or (min(self.budget, _CPU_CHUNK) if self.device.type == "cpu" else self.budget)
        # models whose detectors share a length and pooling share one stack of detector columns
        self.stacks: list[_Stack] = []
        pending: dict[tuple, tuple[int, list[list[int]]]] = {}
        for (m, d, avg, _), members in architecture_groups(self.bank).items():
            cols = 2 * d  # at most, per model (both strands)
            per = max(1, _MAX_COLUMNS // cols)
            for k in range(0, len(members), per):
                group = members[k:k + per]
                used, groups = pending.get((m, avg), (0, []))
                if groups and used + cols * len(group) > _MAX_COLUMNS:
                    self.stacks.append(_build_stack(bank, groups, self.device))
                    used, groups = 0, []
                pending[(m, avg)] = (used + cols * len(group), groups + [group])
        for _, groups in pending.values():
            self.stacks.append(_build_stack(bank, groups, self.device))

    def __len__(self) -> int:
        return len(self.bank)

    @torch.inference_mode()
    def scores(self, codes: np.ndarray, options: ScoreOptions = ScoreOptions()) -> tuple[np.ndarray, np.ndarray]:
        """Wild-type scores [M] and the scores of every substitution [L, 4, M] (float32) of one
        encoded sequence; the wild-type base's entry holds the wild-type score."""
        x = torch.as_tensor(np.asarray(codes)).to(self.device, torch.long)
        if x.dim() != 1 or x.numel() == 0:
            raise ValueError("codes must be one non-empty sequence")
        L, M = x.numel(), len(self.bank)
        # a mutant per slot: without N, the 3 other bases (x_i + 1, + 2, + 3 mod 4); with N, all 4 bases
        S = 3 if int(x.max()) < 4 else 4
        wt = torch.empty(M, dtype=torch.float64)
        slots = torch.empty(L, S, M, dtype=torch.float64)

        def run(s: _Stack) -> None:  # stacks fill disjoint columns: run side by side on the CPU's threads
            wt_head, per_head = self._stack_scores(s, x, S, options.window_size, options.average)
            for p in s.parts:
                idx = torch.as_tensor(p.bank_index)
                wt[idx] = _models_of(p, wt_head[p.h0:p.h1]).cpu()
                slots[:, :, idx] = _models_of(p, per_head[:, :, p.h0:p.h1]).cpu()

        parallel_steps(run, self.stacks, self.device)
        if S == 4:
            mut = slots
        else:
            i, ref = torch.arange(L), x.cpu()
            mut = slots.new_empty(L, 4, M)
            mut[i, ref] = wt
            for r in range(3):
                mut[i, (ref + r + 1) % 4] = slots[:, r]
        if options.class_prob:
            wt, mut = torch.sigmoid(wt), torch.sigmoid(mut)
        wt32, mut32 = wt.float().numpy(), mut.float().numpy()
        ref = x.cpu().numpy()
        known = ref < 4
        mut32[np.flatnonzero(known), ref[known]] = wt32  # the wild-type base: exactly the wild-type score
        return wt32, mut32

    def _stack_scores(self, s: _Stack, x: torch.Tensor, S: int, window_size: int | None, average: bool):
        """Wild-type [H] and mutant [L, S, H] scores (float64) of every head (model strand) of one stack."""
        L, m = x.numel(), s.m
        wl = ScoreOptions(window_size=window_size).scoring_window(m, L)
        P = L - wl + 1
        Q = wl + m - 1
        C = s.const.numel()
        H = s.heads
        dev = x.device
        wt_win = torch.empty(P, H, device=dev)
        acc = torch.full((L, S, H), -torch.inf, device=dev) if not average else torch.zeros(L, S, H, device=dev)
        # windows per block: their pre-activations and running maxima, the mutants' pooled features
        # and dense layers fit the budget (with the partial sums and substitutions they read)
        hid = max(p.w_max.shape[2] for p in s.parts)
        per_window = (3 * Q * C + (m + 1) * C + 2 * wl * C + wl * S * C * (2 if s.avg else 1)
                      + wl * S * H * (hid + 2) + S * m * C)
        fixed = (wl - 1) * S * m * C + (Q - 1) * (m + 1) * C
        nb = max(1, min(P, (self.budget - fixed) // per_window))
        for pa in range(0, P, nb):
            pb = min(P, pa + nb)
            self._block(s, x, wl, pa, pb, wt_win, acc, average)
        # windows not holding i keep their wild-type scores
        i = torch.arange(L, device=dev)
        lo = (i - wl + 1).clamp(min=0)  # first window holding i
        hi = (i + 1).clamp(max=P)  # one past the last
        if average:
            cs = torch.cat([wt_win.new_zeros(1, H, dtype=torch.float64), wt_win.double().cumsum(0)])
            rest = cs[-1] - (cs[hi] - cs[lo])  # [L, H]
            per_head = acc.double() + rest[:, None, :]
            wt_head = cs[-1]
            if P > 1:
                per_head, wt_head = per_head / L, wt_head / L
        else:
            ninf = wt_win.new_full((1, H), -torch.inf)
            pre = torch.cat([ninf, wt_win.cummax(0).values])  # pre[k] = max of windows < k
            suf = torch.cat([wt_win.flip(0).cummax(0).values.flip(0), ninf])  # suf[k] = max of windows >= k
            rest = torch.maximum(pre[lo], suf[hi])
            per_head = torch.maximum(acc, rest[:, None, :]).double()
            wt_head = wt_win.amax(0).double()
        return wt_head, per_head

    @staticmethod
    def _preact(s: _Stack, x: torch.Tensor, wl: int, pa: int, pb: int, out: torch.Tensor) -> None:
        """Pre-activations of windows pa..pb-1, each padded with m-1 N on its own: out [n, Q, C].

        Position q of a window is the filter start s = p + q - (m-1); its rows k..l-1 read the
        window (k = max(0, m-1-q), l = min(m, wl+m-1-q)) and the others an N, which adds 0 to the
        centred weights: const + (partial sums of the centred rows at s)[l] - [k]. Within each of
        the (up to) four ranges of q where k and l are constant or step by -1, that is a strided view.
        """
        m, L, n = s.m, x.numel(), pb - pa
        Q, C = wl + m - 1, out.shape[2]
        dev = x.device
        ns = n + Q - 1  # filter starts pa-(m-1) .. pb-1+wl-1
        pos = torch.arange(pa - m + 1, pa - m + 1 + ns, device=dev)[:, None] + torch.arange(m, device=dev)
        code = torch.where((pos >= 0) & (pos < L), x[pos.clamp(0, L - 1)], N)
        rows = s.centred.index_select(0, (code + 5 * torch.arange(m, device=dev)).view(-1)).view(ns, m, C)
        cs = torch.cumsum(rows, 1)  # cs[s, l - 1] = sum of rows < l
        del rows
        step = m * C

        def rows_below(q0: int, q1: int, l0: int, dl: int) -> torch.Tensor:
            """View [n, q1 - q0, C]: the sum of rows < l at filter start p + q, l = l0 + dl (q - q0)."""
            return cs.as_strided((n, q1 - q0, C), (step, step + dl * C, 1), q0 * step + (l0 - 1) * C)

        for q0, q1, k0, l0, dl in ((0, min(m - 1, wl), m - 1, m, 0),  # cut on the left
                                   (m - 1, wl, 0, m, 0),  # whole
                                   (wl, m - 1, m - 1 - wl, m - 1, -1),  # cut on both sides (w < m - 1)
                                   (max(m - 1, wl), Q, 0, wl + m - 1 - max(m - 1, wl), -1)):  # cut on the right
            if q1 <= q0:
                continue
            if k0:  # k = k0 - (q - q0) rows lost on the left
                torch.sub(rows_below(q0, q1, l0, dl), rows_below(q0, q1, k0, -1), out=out[:, q0:q1])
            else:
                out[:, q0:q1] = rows_below(q0, q1, l0, dl)
        out.add_(s.const)

    def _block(self, s: _Stack, x: torch.Tensor, wl: int, pa: int, pb: int,
               wt_win: torch.Tensor, acc: torch.Tensor, average: bool) -> None:
        """Wild-type scores of windows pa..pb-1 and their share of every mutant's window scores."""
        m = s.m
        Q, C, n = wl + m - 1, s.const.numel(), pb - pa
        A = x.new_empty((n, Q, C), dtype=torch.float32)
        self._preact(s, x, wl, pa, pb, A)
        R = A.clamp(min=0)
        # E[:, t]: the max of the positions a mutation at offset t leaves unchanged (q < t or q >= t + m);
        # rectified values are >= 0, so 0 stands for none
        E = R.new_zeros(n, wl, C)
        after = R.new_zeros(n, wl, C)
        for t in range(1, wl):  # running maxima, a position at a time (faster than cummax on the CPU)
            torch.maximum(E[:, t - 1], R[:, t - 1], out=E[:, t])
            torch.maximum(after[:, wl - t], R[:, wl - 1 - t + m], out=after[:, wl - 1 - t])
        torch.maximum(E, after, out=E)
        del after
        if s.avg:
            cs = R.new_empty(n, Q + 1, C)
            cs[:, 0] = 0
            torch.cumsum(R, 1, out=cs[:, 1:])
            total = cs[:, Q]
            rest = total[:, None] - (cs[:, m:m + wl] - cs[:, :wl])  # [n, wl, C]: sum of the unchanged positions
            wt_win[pa:pb] = _dense(s, R.amax(1), total / Q)
            del cs
        else:
            rest = None
            wt_win[pa:pb] = _dense(s, R.amax(1), None)
        del R
        S = acc.shape[1]
        # D[i, slot] = W[j, b] - W[j, x_i] for the slot's base b, for every i the block's windows hold
        xi = x[pa:pb + wl - 1]
        D = (s.subst if S == 3 else s.subst_n).index_select(0, xi).view(-1, S, m, C)
        # the mutation at offset t of window p (i = p + t) changes positions q = t .. t+m-1 of it,
        # where row j = m-1-(q-t) of the filter reads base i: V[p, t, j'] = A[p, t + j'];
        # U = V + D is built a cache-sized chunk at a time and reduced at once (max, and rectified sum)
        mx = A.new_empty(n, wl, S, C)
        mean = A.new_empty(n, wl, S, C) if s.avg else None
        per_pair = S * m * C
        nt = max(1, min(wl, self.chunk // per_pair))
        npw = max(1, min(n, self.chunk // (nt * per_pair)))
        buf = A.new_empty(npw * nt * per_pair)
        for t0 in range(0, wl, nt):
            t1 = min(wl, t0 + nt)
            for a in range(0, n, npw):
                b = min(n, a + npw)
                k, w = b - a, t1 - t0
                V = A.as_strided((k, w, 1, m, C), (Q * C, C, 0, C, 1), A.storage_offset() + (a * Q + t0) * C)
                Dv = D.as_strided((k, w, S, m, C), (per_pair, per_pair, m * C, C, 1),
                                  D.storage_offset() + (a + t0) * per_pair)
                U = torch.add(V, Dv, out=buf[:k * w * per_pair].view(k, w, S, m, C))
                torch.amax(U, 3, out=mx[a:b, t0:t1])
                if mean is not None:
                    torch.sum(U.clamp_(min=0), 3, out=mean[a:b, t0:t1])
        del D, A
        torch.maximum(mx, E[:, :, None], out=mx)
        if mean is not None:
            mean.add_(rest[:, :, None]).div_(Q)
            mean = mean.view(-1, C)
        H = s.heads
        sc = _dense(s, mx.view(-1, C), mean).view(n, wl, S * H)
        # window p with offset t holds mutation i = p + t: skew so each i is one row
        fill = 0.0 if average else -torch.inf
        skew = sc.new_full((n + wl - 1, wl, S * H), fill)
        skew.as_strided((n, wl, S * H), (wl * S * H, (wl + 1) * S * H, 1)).copy_(sc)
        part = (skew.sum(1) if average else skew.amax(1)).view(-1, S, H)
        i0, i1 = pa, pb + wl - 1
        if average:
            acc[i0:i1] += part
        else:
            torch.maximum(acc[i0:i1], part, out=acc[i0:i1])


@dataclass(frozen=True)
class MutationMap:
    """One sequence's map for every model: wild-type scores [M] and deltas [L, 4, M] (A, C, G, T)."""

    wild_type: np.ndarray
    delta: np.ndarray
    mutant: np.ndarray


SCALES = ("none", "deepbind")


def mutation_map(mapper: MutationMapper, codes: np.ndarray, options: ScoreOptions = ScoreOptions(),
                 scale: str = "none") -> MutationMap:
    """The mutation map of one encoded sequence under every model of `mapper`.

    scale "none": delta = score(mutant) - score(wild type).
    scale "deepbind": the paper's scaling, (score(mutant) - score(wild type)) x max(0, wild type, mutant),
    so a substitution counts only when the wild type or the mutant scores above 0.
    """
    wt, mut = mapper.scores(codes, options)
    delta = mut - wt[None, None, :]
    if scale == "deepbind":
        delta = delta * np.maximum(0, np.maximum(wt[None, None, :], mut))
    elif scale != "none":
        raise ValueError(f"unknown scale {scale!r}")
    known = codes < 4
    delta[np.flatnonzero(known), codes[known]] = 0
    return MutationMap(wild_type=wt, delta=delta.astype(np.float32), mutant=mut)
