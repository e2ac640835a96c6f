"""Pooled features of stride-1 windows from shared block sums: the engine's torch path.

Windowed scoring (the original scorer's ``--window-size``) pads every window with m-1 `N`
on its own. Detector positions that lie wholly inside a window see no padding, so they are
computed once per sequence and pooled with a sliding max/sum. The 2(m-1) positions that
overlap a window edge ("cuts") are computed from shared partial sums:

* Weights are centred per row (W~[j] = W[j] - mean_b W[j, b]); an `N` (0.25 per channel)
  then contributes exactly 0, so a cut response is C + (the centred rows inside the window),
  C = threshold + sum of the row means.
* Rows are split into blocks of `BLOCK` (b). A block's response at a position depends only
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

import torch

from dbtools.engine.groups import BLOCK, Group
from dbtools.engine.sliding import block_sums, sliding_max, sliding_sum
from dbtools.io.encode import N, kmer_index, one_hot


@dataclass
class _Pool:
    """The pooled features being built: running max `acc` [rows, F], and with average pooling
    the running sum `total` of rectified values (through the scratch `buf`)."""

    acc: torch.Tensor
    total: torch.Tensor | None
    buf: torch.Tensor | None
    rows: int

    def fold(self, val: torch.Tensor, c: int, n: int) -> None:
        """Fold cut values [rows, n] of columns c..c+n-1 into the pooled features."""
        a = self.acc[:, c:c + n]
        if self.total is not None:
            val = torch.clamp(val, min=0, out=self.buf[:self.rows * n].view(self.rows, n))
            self.total[:, c:c + n].add_(val)
        torch.maximum(a, val, out=a)


@dataclass
class _Windows:
    """The windows p0..p1-1 of B sequences and their bases laid out (position, sequence)."""

    B: int
    m: int
    w: int
    nw: int
    p0: int
    kmer: torch.Tensor  # b-mer index starting at each position q >= p0
    x1: torch.Tensor  # [positions * B, 4] one-hot base at each position q >= p0

    @property
    def rows(self) -> int:
        return self.nw * self.B


def pooled_cuts(g: Group, codes: torch.Tensor, w: int, p0: int, p1: int) -> torch.Tensor:
    """Pooled features of windows p0..p1-1 of length w >= m from shared block sums.

    Parameters
    ----------
    g : the group of models
    codes : [B, L] base codes
    w, p0, p1 : window length and the range of window starts

    Returns
    -------
    [nw * B, k * F + 1] rows (window, sequence): the max (then, with average pooling, the mean)
    of every live detector column in g.cuts' order, then a zero column.
    """
    B, L = codes.shape
    m, nw, b = g.m, p1 - p0, BLOCK
    cuts = g.cuts
    F = cuts.const.numel()
    inner = w - m + 1
    rows = nw * B
    dev = codes.device
    # codes of positions q in [p0, p1 + w - 2 + b), N past the sequence; rows (position, sequence)
    lo, hi = p0, p1 + w - 2 + b
    seg = torch.full((hi - lo, B), N, dtype=codes.dtype, device=dev)
    seg[:min(hi, L) - lo] = codes[:, lo:min(hi, L)].t()
    seg = seg.clamp_(max=N)  # PAD (all 0) and N both contribute 0 with centred weights
    win = _Windows(B=B, m=m, w=w, nw=nw, p0=p0, kmer=kmer_index(seg, b, 0).reshape(-1),
                   x1=one_hot(seg).reshape(-1, 4).to(cuts.const.dtype))

    k = 2 if g.avg else 1
    pooled = torch.empty(rows, k * F + 1, device=dev, dtype=cuts.const.dtype)
    pooled[:, -1] = 0
    pool = _Pool(acc=pooled[:, :F], total=pooled[:, F:2 * F] if g.avg else None,
                 buf=torch.empty(rows * cuts.width, device=dev, dtype=cuts.const.dtype) if g.avg else None,
                 rows=rows)
    for chunk, c0 in enumerate(range(0, F, cuts.width)):
        fw = min(F, c0 + cuts.width) - c0
        tab = cuts.tables[chunk]
        const = cuts.const[c0:c0 + fw]
        # suffix block sums bl[beta][i] = C + blocks beta.. at filter start s = p0 - beta*b + i,
        # for s up to the last interior start p1-1+w-m (last block first)
        bl = block_sums(tab, win.kmer, const, (nw + inner - 1) * B, b * B)
        _interior(pool, bl[0], inner, c0, fw, win)
        _left_cuts(pool, g, bl, chunk, c0, fw, win)
        del bl
        if cuts.live_right[1] > c0:
            _right_cuts(pool, g, chunk, c0, fw, win)
    if pool.total is not None:
        pool.total.div_(w + m - 1)
    return pooled


def _interior(pool: _Pool, full: torch.Tensor, inner: int, c0: int, fw: int, win: _Windows) -> None:
    """Full responses at filter starts p0 .. p1-1+w-m (the first block sum), rectified and slid
    over each window's `inner` wholly-inside positions."""
    nw, B = win.nw, win.B
    conv = full.clamp_(min=0).view(nw + inner - 1, B, fw)
    sliding_max(conv, inner, pool.acc[:, c0:c0 + fw].view(nw, B, fw), dim=0)
    if pool.total is not None:
        sliding_sum(conv, inner, pool.total[:, c0:c0 + fw].view(nw, B, fw), dim=0)


def _left_cuts(pool: _Pool, g: Group, bl: list[torch.Tensor], chunk: int, c0: int, fw: int,
               win: _Windows) -> None:
    """Cuts whose first k rows see the window's left padding, one base block sum at a time: cut bj
    (a block boundary) reads bl[j] as is; the cuts k of block j-1 (descending) then add row k to
    bl[j] in place, since the suffix from row k at filter start s is the one from row k+1 plus
    W~[k] x[s+k]."""
    m, b, nw, B, rows = g.m, BLOCK, win.nw, win.B, win.rows
    cuts = g.cuts
    nl, live, wr = cuts.nb, cuts.live_left, cuts.rows[chunk]
    const = cuts.const[c0:c0 + fw]
    for j in range(1, nl + 1):
        if live[min(b * j - b + 1, m - 1)] <= c0:
            break
        if b * j < m:
            n = min(live[b * j] - c0, fw)
            if n > 0:  # filter start p - bj  ->  i = p - p0
                pool.fold(bl[j][:rows, :n], c0, n)
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
            t[i0 * B:end, :nmax].addmm_(win.x1[:end - i0 * B], wr[j - 1][4 * r:4 * r + 4, :nmax])
            n = min(live[kk] - c0, fw)
            if n > 0:
                pool.fold(t[i0 * B:i0 * B + rows, :n], c0, n)


def _right_cuts(pool: _Pool, g: Group, chunk: int, c0: int, fw: int, win: _Windows) -> None:
    """Cuts whose last h rows see the window's right padding (l = m - h rows kept), from prefix
    block sums br[beta][i] = C + blocks ..beta-1 at filter start sr + i, for s up to
    p1-1+w-beta*b; one base block sum at a time: cut l = bj kept rows reads br[j] as is; the cuts
    of block j (ascending kept rows l) then add row l-1 to br[j] in place."""
    m, b, w, nw, B, rows = g.m, BLOCK, win.w, win.nw, win.B, win.rows
    cuts = g.cuts
    nr, live, tab, wr = (m - 1) // b, cuts.live_right, cuts.tables[chunk], cuts.rows[chunk]
    const = cuts.const[c0:c0 + fw]
    sr = win.p0 + w - m + 1  # first right filter start
    br = [None] * (nr + 1)
    for beta in range(1, nr + 1):
        q0, q = (sr - win.p0 + (beta - 1) * b) * B, (nw + m - 1 - beta * b) * B
        br[beta] = tab[beta - 1].index_select(0, win.kmer[q0:q0 + q])
        if beta == 1:
            br[beta].add_(const)
        else:
            br[beta].add_(br[beta - 1][:q])
    for j in range(nr + 1):
        if j:
            n = min(live[m - b * j] - c0, fw)
            if n > 0:  # filter start sr + i, i = (p - p0) + h - 1
                i0 = m - b * j - 1
                pool.fold(br[j][i0 * B:i0 * B + rows, :n], c0, n)
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
            t[a0 * B:e * B, :nmax].addmm_(win.x1[x0 * B:(x0 + e - a0) * B], wr[j][4 * r:4 * r + 4, :nmax])
            n = min(live[m - l] - c0, fw)
            if n > 0:
                i0 = m - l - 1 - off
                pool.fold(t[i0 * B:i0 * B + rows, :n], c0, n)
