"""Track writers: BigWig (`bigwig.BigWigWriter`), bedGraph and BED lines, from runs of window values.

A run is (chrom, first, step, values): values[k] describes bases [first + k*step, first + (k+1)*step)
(values: an array, or a lazy reader that np.asarray turns into one); NaN values are gaps and
are not written. BigWig files are written under a temporary name and
renamed when complete (dbtools/io/atomic.py).
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from typing import Protocol

import numpy as np

from dbtools.io.atomic import atomic_path
from dbtools.io.bigwig import BigWigWriter, write_runs
from dbtools.io.text_columns import constant_column, fixed_column, int_column, lines, text_column

Run = tuple[str, int, int, np.ndarray]
_BLOCK = 1 << 20  # values converted and added at a time


def write_bigwig(path: str | os.PathLike, header: list[tuple[str, int]], runs: Iterable[Run]) -> None:
    """One BigWig with the contigs of `header` (in that order) and the runs' values, which must
    come in header order and increasing positions. Zoom levels are built so browsers open it fast."""
    with atomic_path(path, ".bw") as tmp:
        write_runs(tmp, [(c, int(n)) for c, n in header], runs, chunk=_BLOCK)


class TrackWriter(Protocol):
    def add(self, chrom: str, start: int, step: int, values: np.ndarray) -> None:
        """Values at start, start + step, ... each covering `step` bases (NaN: no value)."""


class _BedGraphWriter:
    """bedGraph lines appended to an open text file, a block of values at a time."""

    def __init__(self, fh):
        self.fh = fh

    def add(self, chrom: str, start: int, step: int, values) -> None:
        for k in range(0, len(values), _BLOCK):
            self.fh.write(bedgraph_text(chrom, start + k * step, step, np.asarray(values[k:k + _BLOCK])))


@contextmanager
def open_track(path: str | os.PathLike, fmt: str, header: list[tuple[str, int]]) -> Iterator[TrackWriter]:
    """A track file being written ("bigwig" or "bedgraph"): values added contig by contig in
    `header` order and increasing positions; renamed into place when the block exits normally."""
    if fmt == "bigwig":
        with atomic_path(path, ".bw") as tmp, BigWigWriter(tmp, [(c, int(n)) for c, n in header]) as w:
            yield w
    elif fmt == "bedgraph":
        with atomic_path(path) as tmp, open(tmp, "w") as fh:
            yield _BedGraphWriter(fh)
    else:
        raise ValueError(f"track format {fmt!r}: expected bigwig or bedgraph")


def bedgraph_text(chrom: str, first: int, step: int, values: np.ndarray) -> str:
    """bedGraph lines (chrom, start, end, value) for a run, gaps left out."""
    values = np.asarray(values, dtype=np.float32)
    keep = np.flatnonzero(~np.isnan(values))
    starts = first + keep.astype(np.int64) * step
    kept = values[keep]
    score = fixed_column(kept)
    if score is None:  # a value too large for the exact vectorised path
        return "".join(f"{chrom}\t{s}\t{s + step}\t{v:.6f}\n" for s, v in zip(starts.tolist(), kept.tolist()))
    n = len(keep)
    return lines(constant_column(chrom, n), int_column(starts), int_column(starts + step), score)


def bed_hits_text(chrom: str, first: int, step: int, width: int, values: np.ndarray, rc_won: np.ndarray,
                  ids: list[str], threshold: float) -> str:
    """BED6 lines (chrom, start, end, model, score, strand) for windows scoring >= threshold;
    window k is [first + k*step, first + k*step + width); lines ordered by window, then model."""
    with np.errstate(invalid="ignore"):
        rows, cols = np.nonzero(values >= threshold)
    starts = first + rows.astype(np.int64) * step
    scores = np.asarray(values[rows, cols], dtype=np.float32)
    strands = np.where(rc_won[rows, cols], "-", "+")
    score = fixed_column(scores)
    if score is None:  # a value too large for the exact vectorised path
        return "".join(f"{chrom}\t{s}\t{s + width}\t{ids[c]}\t{v:.6f}\t{r}\n"
                       for s, c, v, r in zip(starts.tolist(), cols.tolist(), scores.tolist(), strands.tolist()))
    names = text_column(np.asarray(ids, dtype=np.bytes_)[cols]) if len(cols) else np.zeros((0, 1), np.uint8)
    n = len(rows)
    return lines(constant_column(chrom, n), int_column(starts), int_column(starts + width), names, score,
                 text_column(strands))


def bed_pvalue_hits_text(chrom: str, first: int, step: int, width: int, values: np.ndarray, log10p: np.ndarray,
                         rc_won: np.ndarray, ids: list[str], max_log10p: float) -> str:
    """BED6 + p-value lines (chrom, start, end, model, score, strand, p-value) for windows whose
    log10 p-value is at most `max_log10p`; ordered by window, then model. p-values as %.4g."""
    with np.errstate(invalid="ignore"):
        rows, cols = np.nonzero(log10p <= max_log10p)
    if len(rows) == 0:
        return ""
    starts = first + rows.astype(np.int64) * step
    scores = np.asarray(values[rows, cols], dtype=np.float32)
    pvalues = np.char.mod("%.4g", 10.0 ** np.asarray(log10p[rows, cols], dtype=np.float64))
    strands = np.where(rc_won[rows, cols], "-", "+")
    return "".join(f"{chrom}\t{s}\t{s + width}\t{ids[c]}\t{v:.6f}\t{r}\t{p}\n" for s, c, v, r, p in
                   zip(starts.tolist(), cols.tolist(), scores.tolist(), strands.tolist(), pvalues.tolist()))
