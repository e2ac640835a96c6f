"""The batched forward pass: every model of a bank evaluated together on windows of sequences.

Models are grouped by architecture (detector length m, pooling, hidden layer); each group
runs its convolution as one GEMM whose columns are the detectors of all its models (plus
the flipped detectors of reverse-complement models, so both strands come from one pass
over the forward sequence). No Python loop over models.

Windowed scoring (the original scorer's ``--window-size``) pads every window with m-1 `N`
on its own. Detector positions that lie wholly inside a window see no padding, so they are
computed once per sequence and pooled with a sliding max/sum; only the 2(m-1) positions
that overlap a window edge are recomputed per window.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from .bank import Bank
from .encode import N, one_hot

# floats allowed in one group's activation block (bounds memory per step)
DEFAULT_BUDGET = 1 << 23
_DEAD_MARGIN = 1e-3


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

    @property
    def size(self) -> int:
        return int(self.bank_index.numel())


def _build_group(bank: Bank, members: list[int], device: torch.device) -> _Group:
    arch = bank.models[members[0]].info.arch
    m, d = arch.detector_len, arch.num_detectors
    rc_local = [k for k, i in enumerate(members) if bank.models[i].info.arch.reverse_complement]
    fwd_w = [bank.models[i].arrays["detectors"] for i in members]  # each [m, 4, d]
    # reverse-complement strand == forward strand scanned with W[m-1-j, 3-b]
    rc_w = [fwd_w[k][::-1, ::-1, :] for k in rc_local]
    thr = [bank.models[i].arrays["thresholds"] for i in members]
    cols = np.concatenate([w.reshape(4 * m, d) for w in fwd_w + rc_w], axis=1)
    thresholds = np.concatenate(thr + [thr[k] for k in rc_local])
    # a detector whose best possible response stays below zero is always 0 after rectification
    best = np.concatenate([w.max(axis=1).sum(axis=0) for w in fwd_w + rc_w]) + thresholds
    live = np.flatnonzero(best > -_DEAD_MARGIN)
    if live.size == 0:
        live = np.array([0])
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
    )


def _reduce(acc: torch.Tensor | None, scores: torch.Tensor, average: bool) -> torch.Tensor:
    """Fold per-window scores [B, nw, G] into a running max or sum over windows."""
    part = scores.sum(1) if average else scores.amax(1)
    if acc is None:
        return part
    return acc + part if average else torch.maximum(acc, part)


class BankEngine:
    """A bank compiled for batched evaluation on one device."""

    def __init__(self, bank: Bank, device: str | torch.device = "cpu", budget: int = DEFAULT_BUDGET):
        self.bank = bank
        self.device = torch.device(device)
        self.budget = budget
        by_arch: dict[tuple, list[int]] = {}
        for i, model in enumerate(bank.models):
            a = model.info.arch
            by_arch.setdefault((a.detector_len, a.num_detectors, a.avg_pooling, a.num_hidden), []).append(i)
        self.groups = [_build_group(bank, members, self.device) for members in by_arch.values()]

    def __len__(self) -> int:
        return len(self.bank)

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
        for g in self.groups:
            w = min(window_size or int(1.5 * g.m), L)
            n_windows = L - w + 1
            per_window_rows = (2 * (g.m - 1) if w >= g.m else w + g.m - 1) + 1
            cols = max(1, g.weight.shape[1])
            wc = max(1, min(n_windows, self.budget // (per_window_rows * cols)))
            sb = max(1, min(B, self.budget // (wc * per_window_rows * cols)))
            for b0 in range(0, B, sb):
                sub = codes[b0:b0 + sb]
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
                out[b0:b0 + sb, g.bank_index] = fwd
        return out

    def window_scores(self, g: _Group, codes: torch.Tensor, w: int, p0: int, p1: int):
        """Scores of windows starting at p0..p1-1 (each of length w, padded with m-1 N).

        Returns the forward strand [B, nw, G] and the reverse strand of the group's
        reverse-complement models [B, nw, Grc].
        """
        mx, mean = self._pooled(g, codes, w, p0, p1)
        return self._dense(g, mx, mean)

    def _conv(self, g: _Group, window_codes: torch.Tensor) -> torch.Tensor:
        """Rectified detector responses for [..., m] code windows: [..., F_live]."""
        x = one_hot(window_codes).reshape(-1, 4 * g.m)
        z = torch.addmm(g.threshold, x, g.weight).clamp_(min=0)
        return z.reshape(*window_codes.shape[:-1], -1)

    def _pooled(self, g: _Group, codes: torch.Tensor, w: int, p0: int, p1: int):
        B = codes.shape[0]
        m, nw = g.m, p1 - p0
        dev = codes.device
        maxes, sums = [], []
        if w >= m:  # detector positions wholly inside the window: computed once, pooled by sliding
            inner = w - m + 1
            seg = codes[:, p0:p1 - 1 + w]
            z = self._conv(g, seg.unfold(1, m, 1))  # [B, nw + inner - 1, F]
            zu = z.unfold(1, inner, 1)  # [B, nw, F, inner]
            maxes.append(zu.amax(-1))
            sums.append(zu.sum(-1))
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
            sums.append(z.sum(2))
        mx = maxes[0] if len(maxes) == 1 else torch.maximum(maxes[0], maxes[1])
        total = sums[0] if len(sums) == 1 else sums[0] + sums[1]
        mean = total / (w + m - 1) if g.avg else None
        return mx, mean

    def _dense(self, g: _Group, mx: torch.Tensor, mean: torch.Tensor | None) -> torch.Tensor:
        B, nw = mx.shape[:2]
        d = g.num_detectors
        pooled = torch.stack([mx, mean], -1) if g.avg else mx[..., None]  # [B, nw, F_live, k]
        full = pooled.new_zeros(B, nw, g.n_columns, pooled.shape[-1])
        full[:, :, g.live] = pooled
        # features interleaved [max0, avg0, max1, avg1, ...] as the published weights expect
        full = full.reshape(B, nw, -1, d * pooled.shape[-1])  # [B, nw, G + Grc, nf]
        G = g.size
        return self._head(g, full[:, :, :G], slice(None)), self._head(g, full[:, :, G:], g.rc_local)

    def _head(self, g: _Group, feats: torch.Tensor, which) -> torch.Tensor:
        """Fully connected layers of the models `which` on their features [B, nw, g, nf]."""
        w1, b1 = g.w1[which], g.b1[which]
        if g.hidden:
            h = torch.einsum("bwgi,gih->bwgh", feats, w1).add_(b1).clamp_(min=0)
            return torch.einsum("bwgh,gh->bwg", h, g.w2[which]).add_(g.b2[which])
        return torch.einsum("bwgi,gi->bwg", feats, w1[..., 0]).add_(b1[:, 0])
