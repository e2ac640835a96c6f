"""Whole-window scores of windows placed every S bp along one sequence (the scan at --step S).

`cuts.pooled_cuts` computes every stride-1 window of a sequence, sharing the edge work
of neighbouring windows. When a genomic window is scored whole and only every S-th window is
wanted, that edge work is wasted on the S - 1 windows between; here each wanted window's edges
are computed on their own, from the same block sums as the interior:

* D[j][q]: the threshold plus the detector rows of blocks j.. (blocks of `BLOCK` rows, centred
  weights, so `N` adds 0) for the filter whose block j starts at base q; one 4-mer table row a
  block (the engine's cut tables).
* A left cut (rows 0..k-1 see the window's left padding) of window p reads D[j] at filter start
  p - k for the block boundary bj >= k, plus the rows k..bj-1 on the window's first bases: a
  linear map of the one-hot bases p..p+2 (`_Partials.left`; past the last block, the constant
  C alone is in its bias).
* A right cut keeping l = bj + r rows is C + (D[0] - D[j]) at its filter start (the blocks
  before j), plus the rows bj..l-1 on the window's last r bases: a linear map of the one-hot
  last 3 bases (`_Partials.right`, C in its bias).
* The interior (filters wholly inside) is D[0] rectified, reduced over each window with a
  strided max (or sum) over blocks of S positions.

Per window that is about 3m row operations for the edges instead of about m per base, so it
pays for S >= `bank_engine.STRIDED_MIN_STEP`. Values equal the stride-1 path's within float32 rounding.
"""

from __future__ import annotations

import weakref
from dataclasses import dataclass

import numpy as np
import torch

from dbtools.engine.bank_engine import BankEngine
from dbtools.engine.groups import BLOCK, Group
from dbtools.engine.sliding import block_sums, row_max, sliding_max, sliding_sum
from dbtools.io.encode import N, kmer_index, one_hot

_PARTIAL = 3  # a partial block has at most BLOCK - 1 rows: a 3-mer table
_STEP_FLOATS = 1 << 20  # floats of block sums per step (measured best of 2**18..2**22)


@dataclass
class _Partials:
    """Per column chunk of a group: partial-block sums as linear maps of the one-hot 3-mer
    ([12, blocks * BLOCK * width]) and a bias: the cut constant, or -inf where (block, r) is
    not a cut."""

    left: list[tuple[torch.Tensor, torch.Tensor]]  # entry (j - 1, r): rows bj - r .. bj - 1 on the first r bases
    right: list[tuple[torch.Tensor, torch.Tensor]]  # entry (j, b - 1 - r): rows bj .. bj + r - 1 on the last r bases


def _partials(g: Group) -> _Partials:
    """Partial-block maps of group g, in the cut order and column chunks of the engine."""
    m, b, cuts = g.m, BLOCK, g.cuts
    nl, jr = cuts.nb, (m - 1) // b
    left, right = [], []
    c0 = 0
    for rows in cuts.rows:
        fw = rows[0].shape[1]
        const = cuts.const[c0:c0 + fw].double().cpu().numpy()  # every cut value starts from the constant
        c0 += fw
        w = np.zeros((nl * b + b, 4, fw), dtype=np.float64)  # centred rows; rows past m add 0
        for beta, r in enumerate(rows):
            blk = r.double().cpu().numpy().reshape(-1, 4, fw)
            w[beta * b:beta * b + blk.shape[0]] = blk
        ml, bl = np.zeros((_PARTIAL, 4, nl, b, fw)), np.full((nl, b, fw), -np.inf)
        for j in range(1, nl + 1):
            for r in range(b):
                if 1 <= b * j - r <= m - 1:  # D[j] holds the constant, except past the last block
                    bl[j - 1, r] = const if j == nl else 0
                    for u in range(r):  # row bj - r + u on the window's base u
                        ml[u, :, j - 1, r] = w[b * j - r + u]
        mr, br = np.zeros((_PARTIAL, 4, jr + 1, b, fw)), np.full((jr + 1, b, fw), -np.inf)
        for j in range(jr + 1):
            for r in range(b):
                if 1 <= b * j + r <= m - 1:
                    br[j, b - 1 - r] = const
                    for u in range(r):  # row bj + u on 3-mer letter 3 - r + u (the window's last r bases)
                        mr[_PARTIAL - r + u, :, j, b - 1 - r] = w[b * j + u]
        dev = g.threshold.device

        def pair(mat, bias):
            return (torch.as_tensor(mat.reshape(4 * _PARTIAL, -1).astype(np.float32), device=dev),
                    torch.as_tensor(bias.reshape(-1).astype(np.float32), device=dev))

        left.append(pair(ml, bl))
        right.append(pair(mr, br))
    return _Partials(left, right)


@dataclass
class _Columns:
    """Detector columns scored together: one group's, or those of several groups that share the
    detector length and pooling (fewer, wider operations: 15 groups of 16-44 columns each cost
    far more in per-operation overhead than their arithmetic)."""

    m: int
    avg: bool
    nb: int
    width: int
    const: torch.Tensor  # [F]
    tables: list[list[torch.Tensor]]  # per column chunk, per block: [5**b, fw]
    partials: _Partials


def _merged(groups: list[Group], partials: list[_Partials]) -> _Columns:
    """The columns of single-chunk groups of one detector length and pooling, side by side."""
    g0, b = groups[0], BLOCK
    nl, jr = g0.cuts.nb, (g0.m - 1) // b

    def side(maps: list[tuple[torch.Tensor, torch.Tensor]], slots: int) -> tuple[torch.Tensor, torch.Tensor]:
        mats = [mat.view(4 * _PARTIAL, slots, -1) for mat, _ in maps]
        biases = [bias.view(slots, -1) for _, bias in maps]
        return torch.cat(mats, 2).reshape(4 * _PARTIAL, -1), torch.cat(biases, 1).reshape(-1)

    left = side([p.left[0] for p in partials], nl * b)
    right = side([p.right[0] for p in partials], (jr + 1) * b)
    tables = [torch.cat([g.cuts.tables[0][beta] for g in groups], 1) for beta in range(nl)]
    const = torch.cat([g.cuts.const for g in groups])
    return _Columns(g0.m, g0.avg, nl, max(const.numel(), g0.cuts.width), const, [tables],
                    _Partials([left], [right]))


_ENGINES: "weakref.WeakKeyDictionary[BankEngine, StridedWindows]" = weakref.WeakKeyDictionary()


def strided_windows(engine: BankEngine) -> "StridedWindows":
    """The engine's strided scorer (its partial tables are built once per group, when first used)."""
    if engine not in _ENGINES:
        _ENGINES[engine] = StridedWindows(engine)
    return _ENGINES[engine]


class StridedWindows:
    """Whole-window pooled features of windows every `step` bp, for the groups of an engine."""

    def __init__(self, engine: BankEngine):
        self.engine = engine
        self._partials: dict[int, _Partials] = {}
        self._units: dict[tuple, list] = {}

    def partials(self, g: Group) -> _Partials:
        key = id(g)
        if key not in self._partials:
            self._partials[key] = _partials(g)
        return self._partials[key]

    def units(self, groups: list[Group]) -> list[tuple[list[Group], _Columns, list[torch.Tensor]]]:
        """`groups` packed into units scored together: groups of one detector length and pooling,
        each within one column chunk, side by side up to a chunk's width (on a GPU, all of them).
        Per unit: its groups, their columns, and for each group the rows of the unit's pooled
        features [k * F_unit + 1] that make its own (`Group.features` composed)."""
        key = tuple(id(g) for g in groups)
        if key in self._units:
            return self._units[key]
        by_shape: dict[tuple, list[Group]] = {}
        for g in groups:
            by_shape.setdefault((g.m, g.avg), []).append(g)
        packs: list[list[Group]] = []
        for same in by_shape.values():
            current, cols = [], 0
            for g in same:
                F = g.cuts.const.numel()
                single = len(g.cuts.tables) == 1
                cap = g.cuts.width if g.cuts.const.device.type == "cpu" else float("inf")
                if not single:
                    packs.append([g])
                    continue
                if current and cols + F > cap:
                    packs.append(current)
                    current, cols = [], 0
                current.append(g)
                cols += F
            if current:
                packs.append(current)
        out = []
        for pack in packs:
            if len(pack) == 1:
                g = pack[0]
                cols = _Columns(g.m, g.avg, g.cuts.nb, g.cuts.width, g.cuts.const, g.cuts.tables, self.partials(g))
                out.append((pack, cols, [g.features]))
                continue
            cols = _merged(pack, [self.partials(g) for g in pack])
            F_unit, k = cols.const.numel(), 2 if cols.avg else 1
            rows, a = [], 0
            for g in pack:
                F = g.cuts.const.numel()
                own = torch.cat([torch.arange(a + t * F_unit, a + t * F_unit + F) for t in range(k)]
                                + [torch.tensor([k * F_unit])]).to(g.features.device)
                rows.append(own[g.features])
                a += F
            out.append((pack, cols, rows))
        self._units[key] = out
        return out

    def windows_per_step(self, cols: _Columns, w: int, step: int) -> int:
        """Windows per call of `scores` that keep its block sums about cache-sized."""
        width = min(max(1, cols.const.numel()), cols.width)
        positions = max(_STEP_FLOATS // (width * (cols.nb + 1)), 4 * (w + cols.m))
        return max(1, (positions - w) // step)

    def scores(self, unit, codes: torch.Tensor, w: int, step: int, first: int, count: int):
        """Scores of the windows codes[first + step*i : ... + w], i < count, of one sequence
        (codes [L], w >= m), per group of the unit: forward strand [G, count] and reverse
        strand [Grc, count]."""
        groups, cols, rows = unit
        pooled = self.pooled(cols, codes, w, step, first, count).t().contiguous()
        return [self.engine.scores_from_pooled(g, pooled, features) for g, features in zip(groups, rows)]

    def pooled(self, cols: _Columns, codes: torch.Tensor, w: int, step: int, first: int, count: int) -> torch.Tensor:
        """[count, k * F + 1]: per window the max (then the mean) of every live detector column
        in the cut order, then a zero column; the layout of `cuts.pooled_cuts`."""
        m, b, S, nw = cols.m, BLOCK, step, count
        part = cols.partials
        F, nl, jr = cols.const.numel(), cols.nb, (m - 1) // b
        dev = codes.device
        lo = first - b  # row q of the block sums is the block starting at base lo + q
        Q = S * (nw - 1) + w + 2 * b  # rows of D[0] read (right cuts reach filter start p + w - 1)
        need = Q + (nl - 1) * b + 3  # bases read by the 4-mers of every block of those rows
        seg = torch.full((need,), N, dtype=torch.long, device=dev)
        a, z = max(lo, 0), min(lo + need, codes.shape[0])
        if z > a:
            seg[a - lo:z - lo] = codes[a:z]
        kmer = kmer_index(seg, b)
        starts = b + S * torch.arange(nw, device=dev)
        three = torch.arange(_PARTIAL, device=dev)
        at_p = one_hot(seg[starts[:, None] + three]).reshape(nw, -1)  # the window's first 3 bases [nw, 12]
        at_end = one_hot(seg[starts[:, None] + (w - _PARTIAL) + three]).reshape(nw, -1)  # its last 3 bases
        k = 2 if cols.avg else 1
        pooled = torch.empty(nw, k * F + 1, device=dev)
        pooled[:, -1] = 0
        inner = w - m + 1
        for chunk, c0 in enumerate(range(0, F, cols.width)):
            fw = min(F, c0 + cols.width) - c0
            tab, const = cols.tables[chunk], cols.const[c0:c0 + fw]
            D = block_sums(tab, kmer, const, Q, b)  # D[beta] has Q + beta * b rows

            def view(t: torch.Tensor, offset: int, n: int) -> torch.Tensor:  # [nw, n, fw]: rows offset + S*i + r
                return t.as_strided((nw, n, fw), (S * fw, fw, 1), t.storage_offset() + offset * fw)

            mx = pooled[:, c0:c0 + fw]
            total = pooled[:, F + c0:F + c0 + fw] if cols.avg else None
            # every cut value of every window: left cuts [nw, nl * b, fw], right cuts [nw, (jr + 1) * b, fw]
            ml, bl = part.left[chunk]
            left = torch.addmm(bl, at_p, ml).view(nw, nl * b, fw)  # the constant is in the bias
            for j in range(1, nl):  # cut k = bj - r reads D[j] at filter start p - k: row p - lo + r
                left[:, (j - 1) * b:j * b].add_(view(D[j], b, b))
            mr, br = part.right[chunk]
            right = torch.addmm(br, at_end, mr).view(nw, (jr + 1) * b, fw)  # r reversed
            for j in range(1, jr + 1):  # l = bj + r rows kept, filter start s = p + w - bj - r: blocks
                # 0..j-1 at s are D[0] - D[j] (both at s; rows b - 1 - r ascending)
                c = right[:, j * b:(j + 1) * b]
                c.add_(view(D[0], b + w - b * j - (b - 1), b)).sub_(view(D[j], b + w - (b - 1), b))
            cut_max = torch.maximum(row_max(left), row_max(right))
            cut_sum = left.clamp_(min=0).sum(1) + right.clamp_(min=0).sum(1) if total is not None else None
            conv = D[0].clamp_(min=0)  # the interior: filters p .. p + w - m
            _strided_reduce(conv, b, S, nw, inner, mx, row_max, sliding_max)
            torch.maximum(mx, cut_max, out=mx)
            if total is not None:
                _strided_reduce(conv, b, S, nw, inner, total, _row_sum, sliding_sum)
                total.add_(cut_sum).div_(w + m - 1)
            del D
        return pooled


def _row_sum(t: torch.Tensor) -> torch.Tensor:
    return t.sum(1)


def _strided_reduce(conv: torch.Tensor, offset: int, S: int, nw: int, n: int, out: torch.Tensor,
                    reduce, sliding) -> None:
    """out[i] = reduce(conv[offset + S*i : offset + S*i + n]) over rows, for i < nw: `reduce`
    is row_max or _row_sum (over dim 1), `sliding` the matching sliding max or sum."""
    fw = conv.shape[1]
    base = conv.storage_offset() + offset * fw
    whole, rest = divmod(n, S)
    if whole <= 1:  # windows no longer than two steps: each read once or twice
        out.copy_(reduce(conv.as_strided((nw, n, fw), (S * fw, fw, 1), base)))
        return
    blocks = reduce(conv.as_strided((nw - 1 + whole, S, fw), (S * fw, fw, 1), base))
    sliding(blocks, whole, out, dim=0)
    if rest:
        tail = reduce(conv.as_strided((nw, rest, fw), (S * fw, fw, 1), base + whole * S * fw))
        if reduce is row_max:
            torch.maximum(out, tail, out=out)
        else:
            out.add_(tail)
