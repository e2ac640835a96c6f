"""Reductions over windows: sliding max and sum, row max, and suffix sums of detector blocks."""

from __future__ import annotations

import torch


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


def reduce_windows(acc: torch.Tensor | None, scores: torch.Tensor, average: bool) -> torch.Tensor:
    """Fold per-window scores [B, nw, G] into a running max or sum over windows."""
    part = scores.sum(1) if average else row_max(scores)
    if acc is None:
        return part
    return acc + part if average else torch.maximum(acc, part)


def sliding_max(v: torch.Tensor, n: int, out: torch.Tensor, dim: int = 1) -> None:
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


def sliding_sum(v: torch.Tensor, n: int, out: torch.Tensor, dim: int = 1) -> None:
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

