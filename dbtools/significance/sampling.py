"""Background windows: W-bp windows drawn uniformly at random (seeded) from a genome or from
BED regions of it, all-N windows left out; optionally each one dinucleotide-shuffled."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from dbtools.errors import DbtoolsError
from dbtools.io.encode import N, decode, encode
from dbtools.io.genome import Genome
from dbtools.io.regions import read_regions
from dbtools.train.shuffle import dinucleotide_shuffle
from dbtools.io.checksum import file_sha256

_FETCH_BASES = 1 << 22  # bases fetched and encoded at a time


@dataclass(frozen=True)
class Interval:
    contig: str
    start: int
    end: int


def sampling_intervals(genome: Genome, regions: str | None) -> list[Interval]:
    """Where windows are drawn: the BED regions (clipped to their contigs), else every contig."""
    if regions is None:
        return [Interval(c, 0, genome.sizes[c]) for c in genome.contigs]
    out = []
    for r in read_regions(regions):
        contig = genome.require(r.contig, f"{regions}: line {r.line}")
        end = min(r.end, genome.sizes[contig])
        if end > r.start:
            out.append(Interval(contig, r.start, end))
    if not out:
        raise DbtoolsError(f"{regions}: no region overlaps a contig of {genome.path}")
    return out


def draw_windows(genome: Genome, intervals: list[Interval], window: int, n: int, seed: int,
                 shuffle: bool = False) -> tuple[np.ndarray, int]:
    """`n` windows of `window` bp, starts uniform over every start inside the intervals.

    Returns
    -------
    codes : [n, window] int8 base codes, in genome order (with `shuffle`, each window
        dinucleotide-shuffled with its own draw)
    left_out : windows drawn but left out because they were all N
    """
    starts_in = np.array([max(0, iv.end - iv.start - window + 1) for iv in intervals], dtype=np.int64)
    total = int(starts_in.sum())
    if total == 0:
        raise DbtoolsError(f"{genome.path}: no {window}-bp window fits in the sampled sequence")
    rng = np.random.default_rng(seed)
    bounds = np.cumsum(starts_in)
    kept: list[np.ndarray] = []
    have, left_out, tries = 0, 0, 0
    while have < n:
        want = n - have
        draws = np.sort(rng.integers(0, total, size=want + want // 8 + 16))
        codes = _fetch(genome, intervals, bounds, starts_in, draws, window)
        called = codes != N
        ok = called.any(axis=1)
        left_out += int((~ok).sum())
        codes = codes[ok][:want]
        kept.append(codes)
        have += len(codes)
        tries += 1
        if tries > 50 and have == 0:
            raise DbtoolsError(f"{genome.path}: every sampled {window}-bp window is all N")
    codes = np.concatenate(kept)[:n]
    if shuffle:
        srng = np.random.default_rng([seed, 1])
        codes = np.stack([encode(dinucleotide_shuffle(decode(c), srng)) for c in codes])
    return codes, left_out


def _fetch(genome: Genome, intervals: list[Interval], bounds: np.ndarray, starts_in: np.ndarray,
           draws: np.ndarray, window: int) -> np.ndarray:
    """The windows at sorted global start indexes `draws`, read a few Mbp at a time."""
    out = np.empty((len(draws), window), dtype=np.int8)
    which = np.searchsorted(bounds, draws, side="right")
    offset = draws - (bounds[which] - starts_in[which])
    for k in np.unique(which):
        rows = np.flatnonzero(which == k)
        iv = intervals[k]
        starts = iv.start + offset[rows]
        i = 0
        while i < len(rows):
            lo = int(starts[i])
            j = int(np.searchsorted(starts, lo + _FETCH_BASES, side="left"))
            hi = int(starts[j - 1]) + window
            codes = encode(genome.fetch(iv.contig, lo, hi), f"{genome.path}: {iv.contig}:{lo}-{hi}")
            sel = starts[i:j] - lo
            out[rows[i:j]] = codes[sel[:, None] + np.arange(window)]
            i = j
    return out


def describe_source(genome: Genome, regions: str | None) -> dict:
    """The background's provenance: genome file name and checksum, regions file name and checksum."""
    rec = {"genome": Path(genome.path).name, "genome_sha256": file_sha256(genome.path)}
    if regions is not None:
        rec["regions"] = Path(regions).name
        rec["regions_sha256"] = file_sha256(regions) if regions != "-" else ""
    return rec
