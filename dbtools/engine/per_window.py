"""Pooled features of windows with every window's edge positions recomputed: the engine's path
for windows shorter than the detectors and for sequences with only one or two windows."""

from __future__ import annotations

import torch

from dbtools.engine.groups import Group
from dbtools.io.encode import N, one_hot


def _conv(g: Group, window_codes: torch.Tensor) -> torch.Tensor:
    """Rectified detector responses for [..., m] code windows: [..., F_live]."""
    x = one_hot(window_codes).reshape(-1, 4 * g.m).to(g.weight.dtype)
    z = torch.addmm(g.threshold, x, g.weight).clamp_(min=0)
    return z.reshape(*window_codes.shape[:-1], -1)


def pooled_per_window(g: Group, codes: torch.Tensor, w: int, p0: int, p1: int, budget: int):
    """Pooled features with every window's edge positions recomputed: [B, nw, F] (g.live order)."""
    m, nw = g.m, p1 - p0
    dev = codes.device
    maxes, sums = [], []
    if w >= m:  # detector positions wholly inside the window: computed once, pooled by sliding
        inner = w - m + 1
        if (nw + inner - 1) * codes.shape[0] * g.weight.shape[1] <= budget:
            seg = codes[:, p0:p1 - 1 + w]
            z = _conv(g, seg.unfold(1, m, 1))  # [B, nw + inner - 1, F]
            zu = z.unfold(1, inner, 1)  # [B, nw, F, inner]
            maxes.append(zu.amax(-1))
            if g.avg:
                sums.append(zu.sum(-1))
        else:  # a long window (few of them): its interior in position chunks, memory bounded
            mx, sm = _interior_chunked(g, codes, w, p0, p1, budget)
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
        z = _conv(g, edge_codes)  # [B, nw, E, F]
        maxes.append(z.amax(2))
        if g.avg:
            sums.append(z.sum(2))
    mx = maxes[0] if len(maxes) == 1 else torch.maximum(maxes[0], maxes[1])
    if not g.avg:
        return mx, None
    total = sums[0] if len(sums) == 1 else sums[0] + sums[1]
    return mx, total / (w + m - 1)


def _interior_chunked(g: Group, codes: torch.Tensor, w: int, p0: int, p1: int, budget: int):
    """Max and sum over the wholly-inside positions of each window, a chunk of positions at a time."""
    B, m = codes.shape[0], g.m
    F = g.weight.shape[1]
    step = max(1, budget // max(1, B * F))
    mx = torch.zeros(B, p1 - p0, F, device=codes.device, dtype=g.weight.dtype)
    sm = torch.zeros_like(mx) if g.avg else None
    for k, p in enumerate(range(p0, p1)):
        for s0 in range(p, p + w - m + 1, step):
            s1 = min(p + w - m + 1, s0 + step)
            z = _conv(g, codes[:, s0:s1 + m - 1].unfold(1, m, 1))  # [B, s1 - s0, F]
            torch.maximum(mx[:, k], z.amax(1), out=mx[:, k])
            if sm is not None:
                sm[:, k] += z.sum(1)
    return mx, sm
