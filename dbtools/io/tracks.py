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


BED_COLUMNS = ("chrom", "start", "end", "name", "score", "strand", "signal", "pvalue")


def bed_score(log10p: np.ndarray) -> np.ndarray:
    """BED's 0-1000 integer score from log10 p-values: 100 x -log10 p, capped at 1000 (p <= 1e-10);
    0 where there is no p-value (NaN)."""
    with np.errstate(invalid="ignore"):
        score = np.rint(np.minimum(1000.0, -100.0 * np.asarray(log10p, dtype=np.float64)))
    return np.where(np.isnan(score), 0, np.maximum(score, 0)).astype(np.int64)


def bed_sites_text(chrom: str, start: np.ndarray, end: np.ndarray, names: np.ndarray, minus: np.ndarray,
                   score: np.ndarray, log10p: np.ndarray) -> str:
    """BED6+2 lines: chrom, start, end, name, 0-1000 score (`bed_score`), strand, the window's
    score (%.6f) and its p-value (%.4g; -1 where there is none, as in narrowPeak)."""
    n = len(start)
    if n == 0:
        return ""
    score = np.asarray(score, dtype=np.float32)
    signal = fixed_column(score)
    with np.errstate(over="ignore"):
        p = np.where(np.isnan(log10p), -1.0, 10.0 ** np.asarray(log10p, dtype=np.float64))
    pvalue = text_column(np.char.mod("%.4g", p))
    strand = text_column(np.where(minus, "-", "+"))
    if signal is None:  # a value too large for the exact vectorised path
        signal = text_column(np.char.mod("%.6f", score.astype(np.float64)))
    return lines(constant_column(chrom, n), int_column(np.asarray(start, np.int64)),
                 int_column(np.asarray(end, np.int64)), text_column(names), int_column(bed_score(log10p)),
                 strand, signal, pvalue)
