"""The inputs and outputs of `dbtools mutmap`: sequences or BED regions in, TSV and NPZ maps out."""

from __future__ import annotations

import enum
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from dbtools.engine.options import ScoreOptions
from dbtools.errors import DbtoolsError, UsageError
from dbtools.io.atomic import atomic_path
from dbtools.io.genome import Genome
from dbtools.io.regions import read_regions
from dbtools.io.sequences import read_sequences



class MapFormat(enum.StrEnum):
    """--format of `dbtools mutmap`: tables (tsv, npz) and figures (png, svg)."""

    TSV = "tsv"
    NPZ = "npz"
    PNG = "png"
    SVG = "svg"


FORMATS = tuple(MapFormat)


@dataclass(frozen=True)
class Target:
    """A sequence to map: its name, bases and, for a BED region, where it lies (0-based, half open)."""

    name: str
    sequence: str
    where: str  # for error messages: the file and record or line
    contig: str | None = None
    start: int | None = None
    end: int | None = None


def read_targets(sequences: str | None, regions: str | None, genome: str | None) -> Iterator[Target]:
    """Sequences (FASTA or one per line, '-' = stdin) or BED regions cut from a genome FASTA."""
    if regions is None:
        if genome is not None:
            raise UsageError("--genome needs --regions (the BED intervals to map)")
        path = sequences or "-"
        display = "stdin" if path == "-" else path
        for i, (name, seq, fasta) in enumerate(read_sequences(path), 1):
            yield Target(name, seq, f"{display}: record {i} ({name})") if fasta else Target(f"seq{i}", seq, name)
        return
    if genome is None:
        raise UsageError("--regions needs --genome (the FASTA the intervals are cut from)")
    if sequences not in (None, "-"):
        raise UsageError("give either SEQUENCES or --regions, not both")
    with Genome(genome) as g:
        for r in read_regions(regions):
            where = f"{regions}: line {r.line}"
            contig = g.require(r.contig, where)
            if r.end == r.start:
                raise DbtoolsError(f"{where}: region {r.contig}:{r.start}-{r.end} is empty")
            if r.end > g.sizes[contig]:
                raise DbtoolsError(f"{where}: region {r.contig}:{r.start}-{r.end} runs past the end of "
                                   f"{r.contig} ({g.sizes[contig]:,} bp)")
            yield Target(r.name, g.fetch(contig, r.start, r.end), f"{where} ({r.name})", r.contig, r.start, r.end)


def safe_name(name: str) -> str:
    """A file-name-safe form of a sequence or region name."""
    return re.sub(r"[^A-Za-z0-9._-]+", "_", name).strip("._") or "sequence"


def describe(options: ScoreOptions, scale: str) -> str:
    """What the values of a map are, for the header of its files."""
    window = options.window_size or "int(1.5 m)"
    what = ("(score(mutant) - score(wild type)) x max(0, wild type, mutant)" if scale == "deepbind"
            else "score(mutant) - score(wild type)")
    prob = " of sigmoid(score)" if options.class_prob else ""
    return f"delta = {what}{prob}; window {window}, {'average' if options.average else 'max'} over windows"


def write_tsv(path: Path, target: Target, info, wild_type: float, delta: np.ndarray, note: str) -> None:
    """Positions x A, C, G, T, with the reference base and, for a region, the genomic coordinate."""
    region = target.contig is not None
    with atomic_path(path) as tmp, open(tmp, "w") as fh:
        fh.write(f"# dbtools mutmap: {note}\n")
        fh.write(f"# model {info.id} ({info.protein}); sequence {target.name}, {len(target.sequence)} bp"
                 + (f", {target.contig}:{target.start}-{target.end} (BED)" if region else "")
                 + f"; wild-type score {wild_type:.6f}\n")
        fh.write("\t".join(["position"] + (["chrom", "coordinate"] if region else []) + ["ref", "A", "C", "G", "T"])
                 + "\n")
        lines = []
        for i, (base, row) in enumerate(zip(target.sequence.upper(), delta)):
            where = [str(i + 1)] + ([target.contig, str(target.start + i + 1)] if region else [])
            lines.append("\t".join(where + [base] + ["%.6f" % v for v in row.tolist()]))
        fh.write("\n".join(lines) + "\n")


def write_npz(path: Path, target: Target, info, wild_type: float, delta: np.ndarray, note: str) -> None:
    """delta [L, 4] (A, C, G, T) with the sequence, model and, for a region, its coordinates."""
    extra = {}
    if target.contig is not None:
        extra = dict(contig=target.contig, start=target.start, end=target.end)
    with atomic_path(path) as tmp, open(tmp, "wb") as fh:
        np.savez_compressed(fh, delta=delta.astype(np.float32), bases=np.array(list("ACGT")),
                            sequence=target.sequence, name=target.name, model=info.id, protein=info.protein,
                            wild_type=np.float32(wild_type), note=note, **extra)
