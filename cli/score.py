"""`dbtools score`: a drop-in for the original `deepbind` scorer."""

from __future__ import annotations

import sys
from typing import Annotated

import typer

from dbtools.device import resolve_device
from dbtools.score import ScoreOptions, Values
from dbtools.score import score as run_score

from . import options
from .progress import counter


def score(
    sequences: Annotated[str, typer.Argument(metavar="SEQUENCES",
                                             help="Sequences, one per line or FASTA (gzip ok); '-' = stdin.")] = "-",
    bank: options.Bank = None,
    models: options.Models = None,
    window_size: options.WindowSize = None,
    average: options.Average = False,
    echo: Annotated[bool, typer.Option("--echo", help="First column repeats the sequence (FASTA: the record name).")] = False,
    no_head: Annotated[bool, typer.Option("--no-head", help="Do not print the header line of model IDs.")] = False,
    class_prob: Annotated[bool, typer.Option("--class-prob", help="Print sigmoid(score), the class probability.")] = False,
    pvalue: Annotated[bool, typer.Option("--pvalue", help="Print each score's p-value against the model's background "
                                                           "(computed by `dbtools background` for sequences of this length).")] = False,
    log10: Annotated[bool, typer.Option("--log10", help="Print -log10 of the p-value (implies --pvalue).")] = False,
    device: options.Device = "auto",
    batch_size: Annotated[int, typer.Option("--batch-size", min=1, help="Sequences per batch.")] = 256,
) -> None:
    """Score sequences with every selected model; TSV on stdout, one column per model.

    Example: dbtools score peaks.fa -m CTCF --echo > ctcf_scores.tsv
    """
    with counter("scoring", "sequences") as advance:
        run_score(
            sequences, sys.stdout, bank=bank, models=models,
            options=ScoreOptions(window_size=window_size, average=average, class_prob=class_prob),
            echo=echo, header=not no_head, device=resolve_device(device), batch_size=batch_size,
            progress=advance, values=Values.LOG10P if log10 else Values.PVALUE if pvalue else Values.SCORE,
        )
