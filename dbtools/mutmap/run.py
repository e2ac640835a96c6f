"""`dbtools mutmap`: a mutation map of every sequence or region under every selected model, as files."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass

import torch

from dbtools.bank.selection import open_selected
from dbtools.engine.options import ScoreOptions
from dbtools.errors import UsageError
from dbtools.io.atomic import output_folder, staged_folder
from dbtools.io.encode import encode
from dbtools.mutmap.files import FORMATS, Target, describe, read_targets, safe_name, write_npz, write_tsv
from dbtools.mutmap.mapper import SCALES, MutationMapper, mutation_maps


@dataclass
class MutmapSummary:
    sequences: int
    models: int
    files: int


# bases x models of one batch of sequences mapped together (their scores take ~64 bytes each)
BATCH_CELLS = 1 << 22


def mutmap(sequences: str | None, out_dir: str, *, regions: str | None = None, genome: str | None = None,
           bank: str | None = None, models: list[str] | None = None, options: ScoreOptions = ScoreOptions(),
           scale: str = "none", formats: list[str] = ("tsv",), device: torch.device | str = "cpu",
           threads: int | None = None, progress: Callable[[int], None] | None = None) -> MutmapSummary:
    """Map every sequence (or region) with every selected model; one file per sequence, model and format.

    Sequences are mapped in batches (all sequences and models of a batch together, on `threads`
    CPU threads); the files appear in `out_dir` only once every sequence has been mapped.
    """
    formats = list(dict.fromkeys(f.lower() for f in formats))
    bad = [f for f in formats if f not in FORMATS]
    if bad or not formats:
        raise UsageError(f"--format must be among {', '.join(FORMATS)} (got {', '.join(bad) or 'none'})")
    if scale not in SCALES:
        raise UsageError(f"--scale must be one of {', '.join(SCALES)} (got {scale!r})")
    folder = output_folder(out_dir)
    selected = open_selected(bank, models)
    mapper = MutationMapper(selected, device)
    note = describe(options, scale)
    figures = [f for f in formats if f in ("png", "svg")]
    if figures:
        from dbtools.mutmap import plot
    used: set[str] = set()
    n = files = 0
    with staged_folder(folder) as stage:
        for batch in _batches(read_targets(sequences, regions, genome), len(selected)):
            codes = [encode(t.sequence, t.where) for t in batch]
            for target, result in zip(batch, mutation_maps(mapper, codes, options, scale, threads)):
                stem = safe_name(target.name)
                k = 2
                while stem in used:
                    stem = f"{safe_name(target.name)}_{k}"
                    k += 1
                used.add(stem)
                for j, model in enumerate(selected.models):
                    info, wt, delta = model.info, float(result.wild_type[j]), result.delta[:, :, j]
                    base = stage / f"{stem}.{safe_name(info.id)}"
                    if "tsv" in formats:
                        write_tsv(base.with_name(base.name + ".tsv"), target, info, wt, delta, note)
                    if "npz" in formats:
                        write_npz(base.with_name(base.name + ".npz"), target, info, wt, delta, note)
                    for fmt in figures:
                        plot.save(base.with_name(base.name + "." + fmt), delta, target.sequence, fmt=fmt,
                                  title=plot.title(info, target, wt, scale),
                                  first=None if target.start is None else target.start + 1)
                    files += len(formats)
            n += len(batch)
            if progress:
                progress(len(batch))
    return MutmapSummary(sequences=n, models=len(selected), files=files)


def _batches(targets: Iterable[Target], models: int) -> Iterator[list[Target]]:
    """Targets in batches, each closed once it holds BATCH_CELLS bases x models."""
    batch, cells = [], 0
    for target in targets:
        batch.append(target)
        cells += len(target.sequence) * models
        if cells >= BATCH_CELLS:
            yield batch
            batch, cells = [], 0
    if batch:
        yield batch
