"""`dbtools evaluate`: metrics of a bank's models on labelled data."""

from __future__ import annotations

import sys
from typing import Annotated, Optional

import typer

from dbtools.device import resolve_device
from dbtools.evaluate import evaluate as run_evaluate
from dbtools.score import ScoreOptions

from . import options


def evaluate(
    data: Annotated[list[str], typer.Argument(metavar="DATA...", help="Labelled files (as for train).")],
    bank: options.Bank = None,
    models: options.Models = None,
    window_size: options.WindowSize = None,
    average: options.Average = False,
    fmt: Annotated[str, typer.Option("--format", help="auto|deepbind|tsv|fasta|bed")] = "auto",
    rows: Annotated[Optional[str], typer.Option("--rows", help="Rows FIRST:LAST of each file.")] = None,
    seed: Annotated[int, typer.Option("--seed", help="Seed of shuffled negatives for positives-only data.")] = 0,
    device: options.Device = "auto",
) -> None:
    """Metrics of every selected model on every DATA file (AUC/AUPRC or Pearson/Spearman); TSV on stdout.

    Sequences are scored as `dbtools score` scores them (same --window-size/--average);
    positives-only files get one dinucleotide shuffle per positive as negatives (--seed).

    Example: dbtools evaluate encode/GABPA_B.seq.gz --bank gabpa.bank
    """
    run_evaluate(data, sys.stdout, bank=bank, models=models,
                 options=ScoreOptions(window_size=window_size, average=average),
                 fmt=fmt, rows=rows, seed=seed, device=resolve_device(device))
