"""`dbtools mutmap`: mutation maps (every single-base substitution's score change) and their figures."""

from __future__ import annotations

from typing import Annotated, Optional

import typer

from dbtools.device import resolve_device
from dbtools.mutmap.files import MapFormat
from dbtools.mutmap.mapper import Scale
from dbtools.mutmap.run import mutmap as run_mutmap
from dbtools.score import ScoreOptions

from . import options
from .progress import counter, stderr


def mutmap(
    sequences: Annotated[Optional[str], typer.Argument(
        metavar="SEQUENCES", help="Sequences, one per line or FASTA (gzip ok); '-' = stdin. "
                                  "Leave out with --regions.")] = None,
    out_dir: Annotated[str, typer.Option("--out-dir", "-o", metavar="DIR",
                                         help="Folder for the outputs (created if missing).")] = "mutmaps",
    formats: Annotated[list[str], typer.Option(
        "--format", "-f", metavar=options.choices(MapFormat),
        help="Output formats (repeatable or comma-separated): one file per sequence, model and format.")] = ["tsv"],
    regions: Annotated[Optional[str], typer.Option(
        "--regions", metavar="BED", help="Map these BED intervals of --genome instead of SEQUENCES ('-' = stdin).")] = None,
    genome: Annotated[Optional[str], typer.Option(
        "--genome", metavar="FASTA", help="Indexed genome FASTA (plain or bgzip) the --regions are cut from.")] = None,
    scale: Annotated[str, typer.Option(
        "--scale", metavar=options.choices(Scale),
        help="none: delta = score(mutant) - score(wild type). deepbind: the paper's scaling, "
             "delta x max(0, wild-type score, mutant score) (a change counts only where either scores above 0).")] = Scale.NONE,
    bank: options.Bank = None,
    models: options.Models = None,
    window_size: options.WindowSize = None,
    average: options.Average = False,
    class_prob: Annotated[bool, typer.Option("--class-prob", help="Map sigmoid(score), the class probability.")] = False,
    device: options.Device = "auto",
    threads: options.Threads = None,
) -> None:
    """Mutation maps: the score change of every single-base substitution, per sequence and model.

    Example: dbtools mutmap peak.fa -m D00328.003 -f tsv,png -o maps/
    """
    fmts = [f.strip() for item in formats for f in item.split(",") if f.strip()]
    with counter("mapping", "sequences") as advance:
        summary = run_mutmap(
            sequences, out_dir, regions=regions, genome=genome, bank=bank, models=models,
            options=ScoreOptions(window_size=window_size, average=average, class_prob=class_prob),
            scale=scale, formats=fmts, device=resolve_device(device), threads=threads, progress=advance,
        )
    stderr.print(f"{summary.sequences:,} sequence(s) x {summary.models:,} model(s): "
                 f"{summary.files:,} file(s) in {out_dir}", highlight=False)
