"""BigWig files (bbi version 4) written with numpy and libdeflate, streaming, with zoom levels.

    with BigWigWriter(path, [("chr1", 248956422), ("chr2", 242193529)], threads=2) as w:
        w.add("chr1", 10_000, 1, values)      # float32; values[k] covers [10000 + k, 10000 + k + 1)

`add(chrom, start, step, values)` takes fixedStep values: values[k] describes the `step` bases
[start + k*step, start + (k+1)*step); NaN is "no value here" and is not written. Calls come
contig by contig in header order, positions increasing; a contig may come in many calls.
Values are stored as float32 exactly as given (float64 input is rounded to float32 first).

The layout follows UCSC's bedGraphToBigWig / bbiWrite (Kent et al. 2010): the 64-byte header,
the zoom headers, the total summary, the chromosome B+ tree, the data (deflated sections of at
most `SECTION_ITEMS` items, 4096 where UCSC's default is 1024: fixedStep for runs of at least
`MIN_FIXED_RUN` values, bedGraph records for shorter runs), the data's R-tree (blockSize 256, or the item count when smaller; nodes padded as UCSC pads them), then each
zoom level's records (1024 a section, compressed) and R-tree, and the signature again at the end.

Zoom levels: the first at 16x the item span (the span of the first `add`, at least 10 bases),
as libBigWig (pyBigWig) chooses it, each next 4x the previous; a level is kept while it has fewer
records than the level below (UCSC's rule), at most `zoom_levels` levels. A record covers the
data of one bin [k*r, (k+1)*r) of its contig (aligned bins, so a query whose bins are whole bins
of a level gets exact answers from it), its range tight around its data as libBigWig's are;
bases covered, min, max, sum and sum of squares are summed in float64 and stored as float32 as
the format has them.

Memory stays bounded: data sections go to the file as they fill, zoom sections are compressed
as they fill and spooled (every level of a file in one spool: in memory up to `spool_memory`,
4 MB by default, then in one anonymous temporary file beside the output) until close copies them in; what stays in memory is one 32-byte index entry
a section (~4096 values), the last partial section of each level and at most 65536 values held
back between calls.

Speed: sections are deflated by libdeflate (`deflate`, zlib streams any reader inflates) at
its level 1: about as fast as ISA-L's level 1 on scan tracks and 1-4% smaller; zlib's level 1
takes 2x the time (`benchmarks/bigwig_writer.py`). Its output depends on the input alone, so a
file's bytes do not depend on what else ran in the process. Scan tracks repeat values over runs
of windows (a sliding max), which LZ77 finds, so entropy coding alone would give files ~2.5x
larger. With `threads > 1` sections are compressed in a thread pool while the caller goes on.

Level 0 of a step-S track whose items lie off the bins' grid (the usual case of a scan track:
values at s + (W - S) // 2) is summed from a strided view of the items, each bin a row; the rows
hold the pieces, in the order, that the general path sums, so the sums are the same bit for bit.

The file's bytes do not depend on `threads`, nor on how a contiguous run of values is cut into
calls: sections are cut from the start of each run, the end of a call that a next call could
change is held back (up to 65536 values), and every sum is taken over groups that do not depend
on the calls (level 0 holds back the raw values of its last bin; each level above is fed a whole
section of the level below at a time).

The file is written at `path` as it goes and completed by `close()`; nothing is renamed (the
caller writes to a temporary path and renames it, see dbtools/io/atomic.py).
"""

from __future__ import annotations

import os
import struct
import tempfile
from collections import deque
from collections.abc import Iterable
from concurrent.futures import Executor, Future, ThreadPoolExecutor

import numpy as np
import deflate

BIGWIG_MAGIC = 0x888FFC26
BPT_MAGIC = 0x78CA8C91
CIRTREE_MAGIC = 0x2468ACE0
VERSION = 4
ITEMS_PER_SLOT = 1024  # zoom records per zoom section (UCSC's default)
SECTION_ITEMS = 4096  # values (fixedStep) or records (bedGraph) per data section: per value, 1024 takes 1.8x the deflate time and 10% more bytes
BLOCK_SIZE = 256  # children per R-tree / B+ tree node (UCSC's default)
MAX_ZOOM_LEVELS = 10
ZOOM_INCREMENT = 4
MIN_FIXED_RUN = 64  # runs of at least this many values are fixedStep sections, shorter ones bedGraph records (fewer records, smaller thresholded tracks; 16: 21% larger)
DEFLATE_LEVEL = 1  # libdeflate level (0-12) of data and zoom sections: 2 and above are <1% smaller and 20-40% slower

_PENDING_MAX = 1 << 16  # at most this many values held back between calls (see BigWigWriter._cut)
_BATCH_BLOCKS = 64  # sections a compression task takes
SPOOL_MEMORY = 4 << 20  # a file's compressed zoom sections stay in memory up to this, then go to one temporary file

_HEADER = struct.Struct("<IHHQQQHHQQIQ")  # 64 bytes
_ZOOM_HEADER = struct.Struct("<IIQQ")  # 24 bytes
_SUMMARY = struct.Struct("<Qdddd")  # 40 bytes
_SECTION = struct.Struct("<IIIIIBBH")  # 24 bytes
_BPT_HEADER = struct.Struct("<IIIIQQ")  # 32 bytes
_CIR_HEADER = struct.Struct("<IIQIIIIQII")  # 48 bytes
_NODE_HEADER = struct.Struct("<BBH")  # 4 bytes

_BEDGRAPH_ITEM = np.dtype([("start", "<u4"), ("end", "<u4"), ("value", "<f4")])
_ZOOM_RECORD = np.dtype([("chrom", "<u4"), ("start", "<u4"), ("end", "<u4"), ("count", "<u4"),
                         ("min", "<f4"), ("max", "<f4"), ("sum", "<f4"), ("sumsq", "<f4")])
_LEAF_ITEM = np.dtype([("c0", "<u4"), ("s0", "<u4"), ("c1", "<u4"), ("e1", "<u4"),
                       ("offset", "<u8"), ("size", "<u8")])
_NODE_ITEM = np.dtype([("c0", "<u4"), ("s0", "<u4"), ("c1", "<u4"), ("e1", "<u4"), ("child", "<u8")])

_TYPE_BEDGRAPH = 1
_TYPE_FIXED_STEP = 3
_U32 = (1 << 32) - 1


def _deflate(data) -> bytes:
    """A zlib stream of `data`."""
    return deflate.zlib_compress(data, DEFLATE_LEVEL)


def _compress_all(fn, payloads: list) -> list[bytes]:
    return [fn(p) for p in payloads]


class _Sections:
    """Compressed sections written in order to `fh`, with their R-tree leaf entries.

    Compression runs inline, or in `pool` a batch of sections a task; results are written in the
    order submitted whatever the pool does, so the bytes do not depend on the thread count."""

    def __init__(self, fh, offset: int, fn, pool: Executor | None, threads: int):
        self.fh = fh
        self.offset = offset  # file offset of the next section (relative to the spool for zoom)
        self.fn = fn
        self.pool = pool
        self.max_inflight = 2 * threads
        self.inflight: deque[tuple[Future, np.ndarray]] = deque()
        self.entries: list[np.ndarray] = []
        self.count = 0
        self.max_raw = 0

    def submit(self, payloads: list, bounds: np.ndarray) -> None:
        """payloads: uncompressed sections; bounds: a _LEAF_ITEM array of their ranges."""
        if not payloads:
            return
        self.max_raw = max(self.max_raw, max(len(p) for p in payloads))
        if self.pool is None:
            self._write(_compress_all(self.fn, payloads), bounds)
            return
        for i in range(0, len(payloads), _BATCH_BLOCKS):
            fut = self.pool.submit(_compress_all, self.fn, payloads[i:i + _BATCH_BLOCKS])
            self.inflight.append((fut, bounds[i:i + _BATCH_BLOCKS]))
            while len(self.inflight) > self.max_inflight:
                self._drain_one()

    def _drain_one(self) -> None:
        fut, bounds = self.inflight.popleft()
        self._write(fut.result(), bounds)

    def _write(self, compressed: list[bytes], bounds: np.ndarray) -> None:
        sizes = np.fromiter((len(c) for c in compressed), dtype=np.uint64, count=len(compressed))
        entries = bounds.copy()
        entries["size"] = sizes
        entries["offset"] = self.offset + np.concatenate([[0], np.cumsum(sizes)[:-1]]).astype(np.uint64)
        self.fh.write(b"".join(compressed))
        self.offset += int(sizes.sum())
        self.count += len(compressed)
        self.entries.append(entries)

    def finish(self) -> np.ndarray:
        while self.inflight:
            self._drain_one()
        return np.concatenate(self.entries) if self.entries else np.zeros(0, _LEAF_ITEM)

    def cancel(self) -> None:
        for fut, _ in self.inflight:
            fut.cancel()
        self.inflight.clear()


class _Spool:
    """The compressed zoom sections of every level of one file, in one spool (in memory up to
    `memory` bytes, then in an anonymous temporary file in `folder`): one file descriptor a
    writer however many levels, so many tracks can be open at once. Each level's bytes are
    copied out in the order written."""

    def __init__(self, memory: int, folder: str):
        self.file = tempfile.SpooledTemporaryFile(memory, dir=folder or None, prefix=".bigwig-zoom-")
        self.size = 0
        self.segments: dict[int, list[tuple[int, int]]] = {}  # level -> (spool offset, length)

    def level(self, k: int) -> "_SpoolLevel":
        return _SpoolLevel(self, k)

    def write(self, k: int, data: bytes) -> None:
        self.file.seek(self.size)
        self.file.write(data)
        self.segments.setdefault(k, []).append((self.size, len(data)))
        self.size += len(data)

    def copy(self, k: int, out) -> None:
        """Level k's bytes, in order, to `out`."""
        for offset, n in self.segments.get(k, []):
            self.file.seek(offset)
            while n:
                block = self.file.read(min(n, 1 << 20))
                if not block:
                    raise OSError("the zoom spool ended early")
                out.write(block)
                n -= len(block)

    def close(self) -> None:
        self.file.close()


class _SpoolLevel:
    """One level's view of a _Spool: what _Sections writes to."""

    def __init__(self, spool: _Spool, k: int):
        self.spool, self.k = spool, k

    def write(self, data: bytes) -> None:
        self.spool.write(self.k, data)


class _Records:
    """Zoom records of one batch, sorted by (chrom, bin), bins with data only. [lo, hi) is the
    part of the bin from its first to its last base with data (libBigWig's records are as
    tight), so readers that weight a record by its overlap with a query spread it over its data."""

    __slots__ = ("chrom", "bin", "lo", "hi", "count", "min", "max", "sum", "sumsq")

    def __init__(self, chrom, bin, lo, hi, count, mn, mx, s, ss):
        self.chrom = chrom  # int64
        self.bin = bin  # int64
        self.lo = lo  # int64
        self.hi = hi  # int64
        self.count = count  # int64, bases covered
        self.min = mn  # float32
        self.max = mx  # float32
        self.sum = s  # float64
        self.sumsq = ss  # float64

    def __len__(self) -> int:
        return len(self.bin)

    def take(self, sl) -> _Records:
        return _Records(*(getattr(self, f)[sl] for f in _Records.__slots__))

    @staticmethod
    def concat(parts: list[_Records]) -> _Records:
        return _Records(*(np.concatenate([getattr(p, f) for p in parts]) for f in _Records.__slots__))

    def merge_first(self, earlier: _Records) -> _Records:
        """These records with `earlier` (one record of the same bin, before them) folded into the first."""
        first = _Records(self.chrom[:1], self.bin[:1], earlier.lo, self.hi[:1], self.count[:1] + earlier.count,
                         np.minimum(self.min[:1], earlier.min), np.maximum(self.max[:1], earlier.max),
                         self.sum[:1] + earlier.sum, self.sumsq[:1] + earlier.sumsq)
        return _Records.concat([first, self.take(slice(1, None))]) if len(self) > 1 else first

    def reduce(self, shift: int) -> _Records:
        """The records of bins 4**shift times as wide (a level's bins nest in the next one's)."""
        bins = self.bin >> (2 * shift)
        n = len(bins)
        change = np.empty(n, dtype=bool)
        change[0] = True
        np.not_equal(bins[1:], bins[:-1], out=change[1:])
        change[1:] |= self.chrom[1:] != self.chrom[:-1]
        heads = np.flatnonzero(change)
        if len(heads) == n:
            return _Records(self.chrom, bins, self.lo, self.hi, self.count, self.min, self.max, self.sum,
                            self.sumsq)
        tails = np.append(heads[1:], n) - 1
        return _Records(self.chrom[heads], bins[heads], self.lo[heads], self.hi[tails],
                        np.add.reduceat(self.count, heads), np.minimum.reduceat(self.min, heads),
                        np.maximum.reduceat(self.max, heads), np.add.reduceat(self.sum, heads),
                        np.add.reduceat(self.sumsq, heads))


class _ZoomLevel:
    """One zoom level: complete records packed into sections of ITEMS_PER_SLOT, compressed to a
    spool (`write`), each section's records (float64 sums) handed to `on_section` first; for the
    levels above the first, a partial last record carried between batches (`push`).

    Everything summed above the first level is summed a section of the first level at a time, so
    the sums (and the file's bytes) do not depend on how the values came in calls."""

    def __init__(self, reduction: int, shift: int, spool: _Spool | None, fn, pool, threads: int,
                 on_section=None):
        self.reduction = reduction
        self.shift = shift  # level k: bins are level-0 bins >> 2*k
        self.write = spool is not None
        self.on_section = on_section
        self.carry: _Records | None = None
        self.buffer: list[_Records] = []
        self.buffered = 0
        self.records = 0
        self.spool = spool.level(shift) if spool is not None else None
        self.sections = _Sections(self.spool, 0, fn, pool, threads)

    def push(self, rec: _Records) -> None:
        """Fold `rec` in; the records now complete (all but the last, which may go on) are stored."""
        if not len(rec):
            return
        carry = self.carry
        if carry is not None and carry.chrom[0] == rec.chrom[0] and carry.bin[0] == rec.bin[0]:
            rec = rec.merge_first(carry)
            carry = None
        if carry is not None:
            self.add(carry)
        if len(rec) > 1:
            self.add(rec.take(slice(0, -1)))
        self.carry = rec.take(slice(-1, None))

    def push_reduced(self, below: _Records) -> None:
        """A section of the level below, its bins 4x narrower."""
        self.push(below.reduce(1))

    def finish_carry(self) -> None:
        done, self.carry = self.carry, None
        if done is not None:
            self.add(done)

    def add(self, rec: _Records) -> None:
        """Complete records, in order."""
        self.records += len(rec)
        self.buffer.append(rec)
        self.buffered += len(rec)
        if self.buffered >= ITEMS_PER_SLOT:
            self._sections(final=False)

    def _sections(self, final: bool) -> None:
        if not self.buffered:
            return
        recs = _Records.concat(self.buffer) if len(self.buffer) > 1 else self.buffer[0]
        n = len(recs)
        full = n if final else n - n % ITEMS_PER_SLOT
        payloads = []
        bounds = []
        for i in range(0, full, ITEMS_PER_SLOT):
            part = recs.take(slice(i, i + ITEMS_PER_SLOT))
            if self.on_section is not None:
                self.on_section(part)
            if self.write:
                out = np.empty(len(part), _ZOOM_RECORD)
                out["chrom"] = part.chrom
                out["start"] = part.lo
                out["end"] = part.hi
                out["count"] = part.count
                out["min"] = part.min
                out["max"] = part.max
                out["sum"] = part.sum
                out["sumsq"] = part.sumsq
                payloads.append(out.tobytes())
                bounds.append((part.chrom[0], part.lo[0], part.chrom[-1], part.hi[-1], 0, 0))
        if payloads:
            self.sections.submit(payloads, np.array(bounds, dtype=_LEAF_ITEM))
        self.buffer = [recs.take(slice(full, None))] if full < n else []
        self.buffered = n - full

    def flush(self) -> None:
        self._sections(final=True)

    def finish(self) -> np.ndarray:
        self._sections(final=True)
        return self.sections.finish()

    def close(self) -> None:
        self.sections.cancel()


def _sums(v: np.ndarray, bases, heads: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per group: sum of value*bases and of value*bases*value, in float64, terms computed the same
    way whatever the path, so a bin's sums depend on its items alone."""
    v64 = v.astype(np.float64)
    w = v64 if isinstance(bases, int) and bases == 1 else v64 * bases
    return np.add.reduceat(w, heads), np.add.reduceat(w * v64, heads)


def _level0(cid: int, start: int, step: int, vals: np.ndarray, ok: np.ndarray, nan_free: bool, r: int
            ) -> _Records:
    """The records of bins [k*r, (k+1)*r) of the contig of the fixedStep items vals[k] on
    [start + k*step, start + (k+1)*step), NaN left out: bases covered, min, max, and sums
    weighted by the bases of each item in the bin, in float64. A bin's sums are the numpy
    (pairwise) sums of the terms of its finite items in order, whatever path computes them, so
    they depend on the bin's items alone."""
    n = len(vals)
    aligned = r % step == 0 and start % step == 0  # no item crosses a bin edge
    if aligned:  # bins are runs of r/step items
        first_bin = start // r
        j1 = ((first_bin + 1) * r - start) // step
        heads = np.concatenate([[0], np.arange(j1, n, r // step)]) if j1 < n else np.zeros(1, np.int64)
        ends = np.append(heads[1:], n)
        holes = None if nan_free else np.add.reduceat(~ok, heads, dtype=np.int64)  # NaN in each bin
        dirty = None if nan_free else np.flatnonzero(holes)
        if nan_free or 4 * len(dirty) <= len(heads):  # (almost) all bins whole runs of values
            s, ss = _sums(vals, step, heads)
            rec = _Records(np.full(len(heads), cid, np.int64), first_bin + np.arange(len(heads), dtype=np.int64),
                           start + heads * step, start + ends * step, (ends - heads) * step,
                           np.minimum.reduceat(vals, heads), np.maximum.reduceat(vals, heads), s, ss)
            if nan_free or not len(dirty):
                return rec
            # the bins holding NaN again, from their finite items
            sizes = ends[dirty] - heads[dirty]
            idx = np.repeat(heads[dirty] - (np.cumsum(sizes) - sizes), sizes) + np.arange(int(sizes.sum()))
            sub = _items(cid, start, step, vals, idx[ok[idx]], r, aligned)
            at = sub.bin - first_bin
            for f in ("lo", "hi", "count", "min", "max", "sum", "sumsq"):
                getattr(rec, f)[at] = getattr(sub, f)
            keep = holes == 0
            keep[at] = True
            return rec.take(keep)
    if nan_free and r % step == 0:  # each bin edge cuts one item in two, at the same offset
        rec = _split_items(cid, start, step, vals, r)
        if rec is not None:
            return rec
    # the finite items (a bin's sums are over its finite items in order, whatever NaN lie between)
    return _items(cid, start, step, vals, np.arange(n, dtype=np.int64) if nan_free else np.flatnonzero(ok), r,
                  aligned)


def _split_items(cid: int, start: int, step: int, vals: np.ndarray, r: int) -> _Records | None:
    """_level0's records of NaN-free items when every bin edge falls inside an item (r a multiple of
    the step, items off the bins' grid), from a strided view of the items: the pieces, order and
    sums that `_items` gives, so the bytes are the same. None when no bin lies between two edges."""
    n = len(vals)
    q = r // step
    e1 = (start // r + 1) * r  # the first edge: it cuts item k1
    k1 = (e1 - start) // step
    whole = (n - 1 - k1) // q  # bins with both edges inside the items
    if whole < 1:
        return None
    k2 = k1 + whole * q  # the item cut by the last whole bin's end
    a = e1 - (start + k1 * step)  # bases of a cut item before its edge
    view = np.lib.stride_tricks.as_strided(vals[k1:], shape=(whole, q + 1),
                                           strides=(q * vals.strides[0], vals.strides[0]))
    # the first bin (items 0..k1), the whole bins (items k1 + j*q ... k1 + (j+1)*q), the last bin
    pieces = np.concatenate([vals[:k1 + 1], view.reshape(-1), vals[k2:]])
    one = np.full(q + 1, step, np.int64)
    one[0], one[-1] = step - a, a
    bases = np.concatenate([np.full(k1 + 1, step, np.int64), np.tile(one, whole), np.full(n - k2, step, np.int64)])
    bases[k1] = a
    bases[k1 + 1 + whole * (q + 1)] = step - a
    heads = np.concatenate([[0], k1 + 1 + np.arange(whole + 1, dtype=np.int64) * (q + 1)])
    s, ss = _sums(pieces, bases, heads)
    edges = e1 + np.arange(whole + 1, dtype=np.int64) * r
    lo = np.concatenate([[start], edges])
    hi = np.concatenate([edges, [start + n * step]])
    return _Records(np.full(whole + 2, cid, np.int64), (hi - 1) // r, lo, hi, hi - lo,
                    np.minimum.reduceat(pieces, heads), np.maximum.reduceat(pieces, heads), s, ss)


def _items(cid: int, start: int, step: int, vals: np.ndarray, idx: np.ndarray, r: int, aligned: bool
           ) -> _Records:
    """_level0's records from the items vals[idx] (finite, in order)."""
    if not len(idx):
        e = np.zeros(0, np.int64)
        return _Records(e, e, e, e, e, vals[:0], vals[:0], e.astype(np.float64), e.astype(np.float64))
    pos = start + idx * step
    v = vals[idx]
    bins = pos // r
    if not aligned and ((pos + (step - 1)) // r != bins).any():  # split items into pieces, one a bin
        pieces = (pos + (step - 1)) // r - bins + 1
        rep = np.repeat(np.arange(len(pos)), pieces)
        k = np.arange(len(rep), dtype=np.int64) - np.repeat(np.cumsum(pieces) - pieces, pieces)
        bins = bins[rep] + k
        lo = np.maximum(pos[rep], bins * r)
        hi = np.minimum(pos[rep] + step, (bins + 1) * r)
        v = v[rep]
        overlap = hi - lo
    else:
        lo, hi, overlap = pos, pos + step, None
    change = np.empty(len(bins), dtype=bool)
    change[0] = True
    np.not_equal(bins[1:], bins[:-1], out=change[1:])
    heads = np.flatnonzero(change)
    ends = np.append(heads[1:], len(bins))
    if overlap is None:
        count = (ends - heads) * step
        s, ss = _sums(v, step, heads)
    else:
        count = np.add.reduceat(overlap, heads)
        s, ss = _sums(v, overlap, heads)
    return _Records(np.full(len(heads), cid, np.int64), bins[heads], lo[heads], hi[ends - 1], count,
                    np.minimum.reduceat(v, heads), np.maximum.reduceat(v, heads), s, ss)


def _bedgraph_records(start: int, step: int, q: np.ndarray, vals: np.ndarray) -> np.ndarray:
    """bedGraph records of the items vals[q] (q increasing): neighbouring items of one value are
    one record, as in a bedGraph file (a thresholded track keeps short runs of repeated maxima)."""
    v = vals[q]
    new = np.ones(len(q), dtype=bool)
    new[1:] = (q[1:] != q[:-1] + 1) | (v[1:] != v[:-1])
    heads = np.flatnonzero(new)
    last = np.append(heads[1:], len(q)) - 1
    items = np.empty(len(heads), _BEDGRAPH_ITEM)
    items["start"] = start + q[heads] * step
    items["end"] = start + (q[last] + 1) * step
    items["value"] = v[heads]
    return items


def _rtree(entries: np.ndarray, at: int, end_of_data: int, items_per_slot: int) -> bytes:
    """A cirTree (R-tree) index of `entries` (_LEAF_ITEM, sorted) starting at file offset `at`,
    laid out as UCSC's cirTreeFileBulkIndexToOpenFile lays it out: root first, leaves last,
    every node padded to the tree's block size."""
    n = len(entries)
    bs = min(BLOCK_SIZE, max(n, 1))  # a small tree in one unpadded node (readers take blockSize from its header)
    # bottom-up: node counts and each node's first/last entry
    counts = [max(1, -(-n // bs))]
    while counts[-1] > 1:
        counts.append(-(-counts[-1] // bs))
    depth = len(counts)  # levels; counts[0] leaves, counts[-1] == 1 root
    leaf_size = 4 + bs * _LEAF_ITEM.itemsize
    node_size = 4 + bs * _NODE_ITEM.itemsize
    sizes = [leaf_size] + [node_size] * (depth - 1)
    starts = {}  # level -> file offset of its first node; top-down layout
    off = at + _CIR_HEADER.size
    for lvl in range(depth - 1, -1, -1):
        starts[lvl] = off
        off += counts[lvl] * sizes[lvl]
    if n:
        head = (int(entries["c0"][0]), int(entries["s0"][0]), int(entries["c1"][-1]), int(entries["e1"][-1]))
    else:
        head = (0, 0, 0, 0)
    out = [_CIR_HEADER.pack(CIRTREE_MAGIC, bs, n, *head, end_of_data, items_per_slot, 0)]
    # spans[lvl][j] = (first entry, last entry + 1) under node j of level lvl
    spans = [[(i, min(i + bs, n)) for i in range(0, max(n, 1), bs)]]
    for lvl in range(1, depth):
        below = spans[lvl - 1]
        spans.append([(below[i][0], below[min(i + bs, len(below)) - 1][1]) for i in range(0, len(below), bs)])
    for lvl in range(depth - 1, -1, -1):
        for j, (a, b) in enumerate(spans[lvl]):
            if lvl == 0:
                items = entries[a:b]
                out.append(_NODE_HEADER.pack(1, 0, len(items)))
                out.append(items.tobytes())
                out.append(bytes((bs - len(items)) * _LEAF_ITEM.itemsize))
            else:
                kids = spans[lvl - 1][j * bs:(j + 1) * bs]
                items = np.zeros(len(kids), _NODE_ITEM)
                for i, (ka, kb) in enumerate(kids):
                    items[i] = (entries["c0"][ka], entries["s0"][ka], entries["c1"][kb - 1], entries["e1"][kb - 1],
                                starts[lvl - 1] + (j * bs + i) * sizes[lvl - 1])
                out.append(_NODE_HEADER.pack(0, 0, len(items)))
                out.append(items.tobytes())
                out.append(bytes((bs - len(items)) * _NODE_ITEM.itemsize))
    data = b"".join(out)
    assert len(data) == off - at
    return data


def _bptree(names: list[bytes], sizes: list[int], at: int) -> bytes:
    """The chromosome B+ tree at file offset `at`: keys the names (zero-padded, sorted bytewise),
    values (id = position in the header, size); laid out as UCSC's bptFileBulkIndexToOpenFile
    lays it out: root first, leaves last, every node padded to its block size."""
    n = len(names)
    bs = min(BLOCK_SIZE, n)
    key_size = max(len(s) for s in names)
    item_size = key_size + 8
    node_size = 4 + bs * item_size
    order = sorted(range(n), key=lambda i: names[i])
    keys = [names[i].ljust(key_size, b"\0") for i in order]
    counts = [-(-n // bs)]
    while counts[-1] > 1:
        counts.append(-(-counts[-1] // bs))
    depth = len(counts)
    starts = {}
    off = at + _BPT_HEADER.size
    for lvl in range(depth - 1, -1, -1):
        starts[lvl] = off
        off += counts[lvl] * node_size
    out = [_BPT_HEADER.pack(BPT_MAGIC, bs, key_size, 8, n, 0)]
    # the first item index under each node of each level
    firsts = [list(range(0, n, bs))]
    for lvl in range(1, depth):
        firsts.append(firsts[lvl - 1][::bs])
    for lvl in range(depth - 1, -1, -1):
        for j, a in enumerate(firsts[lvl]):
            if lvl == 0:
                idx = order[a:a + bs]
                out.append(_NODE_HEADER.pack(1, 0, len(idx)))
                out.extend(keys[a + i] + struct.pack("<II", i0, sizes[i0]) for i, i0 in enumerate(idx))
                pad = bs - len(idx)
            else:
                kids = firsts[lvl - 1][j * bs:(j + 1) * bs]
                out.append(_NODE_HEADER.pack(0, 0, len(kids)))
                out.extend(keys[ka] + struct.pack("<Q", starts[lvl - 1] + (j * bs + i) * node_size)
                           for i, ka in enumerate(kids))
                pad = bs - len(kids)
            out.append(bytes(pad * item_size))
    data = b"".join(out)
    assert len(data) == off - at
    return data


class BigWigWriter:
    """A BigWig file written as values come (see the module's docstring).

    Parameters
    ----------
    path : where the file is written (created or truncated).
    header : (contig, length) in the order data will come; every contig is in the file.
    zoom_levels : at most this many zoom levels (0..10).
    threads : sections compressed by this many threads (1: in the caller's thread).
    spool_memory : bytes of compressed zoom sections kept in memory before they go to a
        temporary file (lower it when many writers are open at once).
    """

    def __init__(self, path: str | os.PathLike, header: Iterable[tuple[str, int]], zoom_levels: int = 10,
                 threads: int = 1, spool_memory: int = SPOOL_MEMORY):
        header = [(str(c), int(n)) for c, n in header]
        if not header:
            raise ValueError("a BigWig needs at least one contig in its header")
        names = [c.encode() for c, _ in header]
        if len(set(names)) != len(names):
            raise ValueError("contig names in the header must be unique")
        for (c, n), b in zip(header, names):
            if not b or b"\0" in b:
                raise ValueError(f"contig name {c!r}: empty or with a NUL byte")
            if not 0 < n <= _U32:
                raise ValueError(f"contig {c}: length {n} out of range 1..{_U32}")
        if not 0 <= zoom_levels <= MAX_ZOOM_LEVELS:
            raise ValueError(f"zoom_levels {zoom_levels}: expected 0..{MAX_ZOOM_LEVELS}")
        if threads < 1:
            raise ValueError(f"threads {threads}: expected at least 1")
        self.path = os.fspath(path)
        self._names = [c for c, _ in header]
        self._index = {c: i for i, c in enumerate(self._names)}
        self._sizes = np.array([n for _, n in header], dtype=np.int64)
        self._zoom_levels = zoom_levels
        self._threads = threads
        self._spool_memory = spool_memory
        self._spool: _Spool | None = None
        self._fn = _deflate
        self._pool = ThreadPoolExecutor(threads, thread_name_prefix="bigwig") if threads > 1 else None
        self._fh = open(self.path, "wb")
        self._closed = False
        try:
            self._fh.write(bytes(_HEADER.size + zoom_levels * _ZOOM_HEADER.size))
            self._summary_offset = self._fh.tell()
            self._fh.write(bytes(_SUMMARY.size))
            self._chrom_tree_offset = self._fh.tell()
            self._fh.write(_bptree(names, [n for _, n in header], self._chrom_tree_offset))
            self._data_offset = self._fh.tell()
            self._fh.write(bytes(8))  # number of sections, set at close
        except BaseException:
            self._abort()
            raise
        self._data = _Sections(self._fh, self._data_offset + 8, self._fn, self._pool, threads)
        self._levels: list[_ZoomLevel] = []  # made at the first values, when the span is known
        self._levels_made = False
        self._cid = -1
        self._next = 0  # the first base the next call may write on the current contig
        self._pending: tuple[int, int, np.ndarray] | None = None  # (start, step, values) held back
        self._zc: tuple[int, int, int, np.ndarray, int] | None = None  # level 0's last bin, held back
        self._total = [0, np.inf, -np.inf, 0.0, 0.0]  # bases, min, max, sum, sum of squares

    # -- public ---------------------------------------------------------------------------

    def add(self, chrom: str, start: int, step: int, values) -> None:
        """Values at start, start + step, ... each covering `step` bases; NaN = no value."""
        if self._closed:
            raise ValueError(f"{self.path}: the BigWig writer is closed")
        cid = self._index.get(chrom)
        if cid is None:
            raise ValueError(f"contig {chrom!r} is not in the BigWig's header")
        start, step = int(start), int(step)
        vals = np.ascontiguousarray(values, dtype="<f4")
        if vals.ndim != 1:
            raise ValueError(f"values must be one-dimensional, got shape {vals.shape}")
        if step < 1:
            raise ValueError(f"step {step}: expected at least 1")
        if cid != self._cid:
            if cid < self._cid:
                raise ValueError(f"contig {chrom} comes after {self._names[self._cid]}: "
                                 "contigs must come in header order")
            self._flush_pending()
            self._cid, self._next = cid, 0
        n = len(vals)
        end = start + n * step
        if start < self._next:
            raise ValueError(f"{chrom}:{start}: before the end of the values already added ({self._next}); "
                             "positions must increase")
        if end > self._sizes[cid]:
            raise ValueError(f"{chrom}:{start}-{end}: past the contig's end ({self._sizes[cid]})")
        if not n:
            return
        self._next = end
        if not self._levels_made:
            self._make_levels(step)
        pending = self._pending
        if pending is not None:
            p_start, p_step, p_vals = pending
            if p_step == step and p_start + len(p_vals) * p_step == start:
                vals = np.concatenate([p_vals, vals])
                start = p_start
                self._pending = None
            else:
                self._flush_pending()
        self._process(start, step, vals, final=False)

    def close(self) -> None:
        """Write what is held back, the indexes, the zoom levels and the header."""
        if self._closed:
            return
        try:
            self._flush_pending()
            self._finish()
        except BaseException:
            self._abort()
            raise
        self._closed = True
        self._shutdown()

    def __enter__(self) -> BigWigWriter:
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc_type is None:
            self.close()
        else:
            self._abort()

    # -- values to sections ---------------------------------------------------------------

    def _flush_pending(self) -> None:
        if self._pending is not None:
            start, step, vals = self._pending
            self._pending = None
            self._process(start, step, vals, final=True)

    def _process(self, start: int, step: int, vals: np.ndarray, final: bool) -> None:
        n = len(vals)
        ok = ~np.isnan(vals)
        nan_free = bool(ok.all())
        if nan_free:
            a = np.zeros(1, np.int64)
            b = np.full(1, n, np.int64)
        else:
            d = np.diff(ok.view(np.int8), prepend=np.int8(0), append=np.int8(0))
            a = np.flatnonzero(d == 1)
            b = np.flatnonzero(d == -1)
            if not len(a):
                return
        cut = n if final else self._cut(n, a, b)
        if cut < n:
            self._pending = (start + cut * step, step, vals[cut:].copy())
            keep = a < cut
            a, b = a[keep], np.minimum(b[keep], cut)
            vals, ok = vals[:cut], ok[:cut]
        if not len(a):
            return
        self._emit(start, step, vals, ok, nan_free, a, b)

    def _cut(self, n: int, a: np.ndarray, b: np.ndarray) -> int:
        """Where the values that a next contiguous call cannot change end: full sections only,
        and the run touching the end (it may turn long) held back; so the file does not depend
        on how a run is cut into calls. Held back values are bounded by _PENDING_MAX."""
        L = b - a
        last = len(a) - 1
        if L[last] >= MIN_FIXED_RUN:
            if b[last] < n:
                return n
            cut = int(a[last] + ((L[last] - 1) // SECTION_ITEMS) * SECTION_ITEMS)
        else:
            # the last bedGraph segment: the short runs after the last long run
            longs = np.flatnonzero(L >= MIN_FIXED_RUN)
            s0 = int(longs[-1]) + 1 if len(longs) else 0
            seg_L = L[s0:]
            if b[last] == n:
                q = int(seg_L[:-1].sum()) // SECTION_ITEMS * SECTION_ITEMS
            else:
                m = int(seg_L.sum())
                if m % SECTION_ITEMS == 0:
                    return n
                q = m // SECTION_ITEMS * SECTION_ITEMS
            cum = np.cumsum(seg_L)
            j = int(np.searchsorted(cum, q, side="right"))  # the run holding item q of the segment
            before = int(cum[j - 1]) if j else 0
            cut = int(a[s0 + j] + (q - before))
        return cut if n - cut <= _PENDING_MAX else n

    def _emit(self, start: int, step: int, vals: np.ndarray, ok: np.ndarray, nan_free: bool,
              a: np.ndarray, b: np.ndarray) -> None:
        cid = self._cid
        L = b - a
        long = L >= MIN_FIXED_RUN
        payloads: list[bytes] = []
        bounds: list[tuple[int, int, int, int, int, int]] = []
        pack = _SECTION.pack
        if long.all():
            segments = [(i, i + 1, True) for i in range(len(a))]
            finite = None
        else:
            new = long.copy()
            new[0] = True
            new[1:] |= long[:-1]
            heads = np.flatnonzero(new)
            ends = np.append(heads[1:], len(a))
            segments = [(int(h), int(e), bool(long[h])) for h, e in zip(heads, ends)]
            finite = np.flatnonzero(ok)
            cum = np.concatenate([[0], np.cumsum(L)])
        for h, e, is_long in segments:
            if is_long:
                x, y = int(a[h]), int(b[h])
                for k in range(x, y, SECTION_ITEMS):
                    k2 = min(k + SECTION_ITEMS, y)
                    s, t = start + k * step, start + k2 * step
                    payloads.append(pack(cid, s, t, step, step, _TYPE_FIXED_STEP, 0, k2 - k) + vals[k:k2].tobytes())
                    bounds.append((cid, s, cid, t, 0, 0))
            else:
                q = finite[cum[h]:cum[e]]
                for k in range(0, len(q), SECTION_ITEMS):
                    part = _bedgraph_records(start, step, q[k:k + SECTION_ITEMS], vals)
                    s, t = int(part["start"][0]), int(part["end"][-1])
                    payloads.append(pack(cid, s, t, 0, 0, _TYPE_BEDGRAPH, 0, len(part)) + part.tobytes())
                    bounds.append((cid, s, cid, t, 0, 0))
        self._data.submit(payloads, np.array(bounds, dtype=_LEAF_ITEM))
        self._summarise(start, step, vals, ok, nan_free)

    # -- summaries ------------------------------------------------------------------------

    def _make_levels(self, step: int) -> None:
        """Level 0 at 16x the first call's span (at least 10 bases), as libBigWig; each next 4x,
        fed a section of the level below at a time. With zoom_levels=0 level 0 is still made,
        unwritten, for the total summary."""
        self._levels_made = True
        r = min(max(10, ZOOM_INCREMENT * ZOOM_INCREMENT * step), 1 << 31)
        if self._zoom_levels > 0:
            self._spool = _Spool(self._spool_memory, os.path.dirname(os.path.abspath(self.path)))
        for k in range(max(1, self._zoom_levels)):
            if r > _U32:
                break
            self._levels.append(_ZoomLevel(r, k, self._spool, _deflate, self._pool, self._threads))
            r *= ZOOM_INCREMENT
        self._levels[0].on_section = self._total_and_up
        for lower, upper in zip(self._levels[1:], self._levels[2:]):
            lower.on_section = upper.push_reduced

    def _summarise(self, start: int, step: int, vals: np.ndarray, ok: np.ndarray, nan_free: bool) -> None:
        """Level-0 records of emitted values. The last bin, while the values may go on in it, is
        held back as raw values (at most r/step + 1) and summed with the next values in it."""
        zc = self._zc
        floor_bin = -1
        if zc is not None:
            self._zc = None
            cid, c_start, c_step, c_vals, c_bin = zc
            c_end = c_start + len(c_vals) * c_step
            r = self._levels[0].reduction
            if (cid == self._cid and c_step == step and c_end <= start < (c_bin + 1) * r
                    and (start - c_end) % step == 0):  # goes on in the held back bin (NaN between)
                gap = np.full((start - c_end) // step, np.nan, np.float32)
                vals = np.concatenate([c_vals, gap, vals])
                ok = ~np.isnan(vals)
                nan_free = bool(ok.all())
                start, floor_bin = c_start, c_bin
            else:  # the bin is complete
                self._zoom_batch(cid, c_start, c_step, c_vals, c_bin, final=True)
        self._zoom_batch(self._cid, start, step, vals, floor_bin, final=False, ok=ok, nan_free=nan_free)

    def _flush_zoom(self) -> None:
        if self._zc is not None:
            cid, start, step, vals, floor_bin = self._zc
            self._zc = None
            self._zoom_batch(cid, start, step, vals, floor_bin, final=True)

    def _zoom_batch(self, cid: int, start: int, step: int, vals: np.ndarray, floor_bin: int, final: bool,
                    ok: np.ndarray | None = None, nan_free: bool | None = None) -> None:
        level0 = self._levels[0]
        r = level0.reduction
        if ok is None:
            ok = ~np.isnan(vals)
            nan_free = bool(ok.all())
        rec = _level0(cid, start, step, vals, ok, nan_free, r)
        if floor_bin >= 0:  # bins before the held back one were complete already
            rec = rec.take(slice(int(np.searchsorted(rec.bin, floor_bin)), None))
        if not final and len(rec):
            last = int(rec.bin[-1])
            if start + len(vals) * step < (last + 1) * r:  # values may go on in the last bin
                t = max(0, (last * r - start) // step)  # the first item in it
                self._zc = (cid, start + t * step, step, vals[t:].copy(), last)
                rec = rec.take(slice(0, -1))
        if len(rec):
            level0.add(rec)

    def _total_and_up(self, done: _Records) -> None:
        """A section of level-0 records into the total summary and level 1."""
        t = self._total
        t[0] += int(done.count.sum())
        t[1] = min(t[1], float(done.min.min()))
        t[2] = max(t[2], float(done.max.max()))
        t[3] += float(done.sum.sum())
        t[4] += float(done.sumsq.sum())
        if len(self._levels) > 1:
            self._levels[1].push_reduced(done)

    # -- closing --------------------------------------------------------------------------

    def _finish(self) -> None:
        fh = self._fh
        self._flush_zoom()
        levels = self._levels
        for level in levels:  # each level's last section goes into the next level
            level.finish_carry()
            level.flush()
        entries = self._data.finish()
        max_raw = self._data.max_raw
        index_offset = fh.tell()
        assert index_offset == self._data.offset
        fh.write(_rtree(entries, index_offset, index_offset, 1))
        # zoom levels: kept while each has fewer records than the one below (UCSC's rule)
        kept: list[_ZoomLevel] = []
        for level in levels:
            if not level.write or level.records == 0 or (kept and level.records >= kept[-1].records):
                break
            kept.append(level)
        zoom_headers = []
        for level in levels:
            zoom_entries = level.finish()
            if level not in kept:
                continue
            max_raw = max(max_raw, level.sections.max_raw)
            data_offset = fh.tell()
            fh.write(struct.pack("<I", level.records))
            base = fh.tell()
            self._spool.copy(level.shift, fh)
            zoom_index = fh.tell()
            assert zoom_index == base + level.sections.offset
            zoom_entries["offset"] += np.uint64(base)
            fh.write(_rtree(zoom_entries, zoom_index, zoom_index, ITEMS_PER_SLOT))
            zoom_headers.append(_ZOOM_HEADER.pack(level.reduction, 0, data_offset, zoom_index))
        for level in levels:
            level.close()
        self._close_spool()
        fh.write(struct.pack("<I", BIGWIG_MAGIC))
        bases, mn, mx, s, ss = self._total
        if not bases:
            mn = mx = 0.0
        fh.seek(0)
        fh.write(_HEADER.pack(BIGWIG_MAGIC, VERSION, len(zoom_headers), self._chrom_tree_offset, self._data_offset,
                              index_offset, 0, 0, 0, self._summary_offset, max_raw, 0))
        fh.write(b"".join(zoom_headers))
        fh.seek(self._summary_offset)
        fh.write(_SUMMARY.pack(bases, mn, mx, s, ss))
        fh.seek(self._data_offset)
        fh.write(struct.pack("<Q", self._data.count))
        fh.close()

    def _abort(self) -> None:
        """Stop without finishing the file (the caller removes its temporary path)."""
        if self._closed:
            return
        self._closed = True
        for sections in [getattr(self, "_data", None)] + [lv.sections for lv in getattr(self, "_levels", [])]:
            if sections is not None:
                sections.cancel()
        self._shutdown()
        for level in getattr(self, "_levels", []):
            level.close()
        self._close_spool()
        self._fh.close()

    def _close_spool(self) -> None:
        spool, self._spool = getattr(self, "_spool", None), None
        if spool is not None:
            spool.close()

    def _shutdown(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=True, cancel_futures=True)
            self._pool = None


def write_runs(path: str | os.PathLike, header: Iterable[tuple[str, int]],
               runs: Iterable[tuple[str, int, int, np.ndarray]], zoom_levels: int = 10, threads: int = 1,
               chunk: int = 1 << 20) -> None:
    """A BigWig of runs (chrom, first, step, values), as dbtools.io.tracks.write_bigwig takes them
    (values: an array, or a lazy reader that slicing and np.asarray turn into one)."""
    with BigWigWriter(path, header, zoom_levels=zoom_levels, threads=threads) as w:
        for chrom, first, step, values in runs:
            for c in range(0, len(values), chunk):
                w.add(chrom, first + c * step, step, np.asarray(values[c:c + chunk]))
