"""`dbtools background`: per-model background score distributions, stored in the bank."""

from __future__ import annotations

from typing import Annotated, Optional

import torch
import typer

from dbtools.device import resolve_device
from dbtools.parallel import cpu_count
from dbtools.significance.compute import (DEFAULT_BLOCK, DEFAULT_SEED, DEFAULT_TAIL_FRACTION, DEFAULT_WINDOWS,
                                          BackgroundOptions, background as run_background)

from . import options
from .progress import counter, stderr


def background(
    genome: Annotated[str, typer.Argument(metavar="GENOME", help="Genome FASTA (plain or bgzip, indexed) to draw windows from.")],
    bank: options.Bank = None,
    models: options.Models = None,
    bank_out: Annotated[Optional[str], typer.Option("--bank-out", "-o", metavar="FILE",
                                                    help="Write the bank with its backgrounds here (default: rewrite --bank in place).")] = None,
    regions: Annotated[Optional[str], typer.Option("--regions", metavar="BED", help="Draw windows only inside these regions.")] = None,
    windows: Annotated[int, typer.Option("--windows", min=1, help="Background windows per model.")] = DEFAULT_WINDOWS,
    seed: Annotated[int, typer.Option("--seed", help="Seed of the window draw (recorded in the bank).")] = DEFAULT_SEED,
    block: Annotated[int, typer.Option("--block", min=1, help="Windows per block: each drawn block of contiguous "
                                       "sequence gives this many windows at step 1; 1 draws independent windows.")] = DEFAULT_BLOCK,
    shuffle: Annotated[bool, typer.Option("--shuffle", help="Dinucleotide-shuffle every drawn block (or window).")] = False,
    window: Annotated[Optional[int], typer.Option("--window", min=1, metavar="W",
                                                  help="Window length in bp (default: each model's training length).")] = None,
    window_size: options.WindowSize = None,
    average: options.Average = False,
    tail_fraction: Annotated[float, typer.Option("--tail-fraction", help="Share of the top windows the tail is fitted to.")] = DEFAULT_TAIL_FRACTION,
    device: options.Device = "auto",
    threads: options.Threads = None,
) -> None:
    """Score random background windows with every selected model and store each model's score
    distribution in the bank, for p-values (`score --pvalue`, `scan --pvalue`, `vareffect --pvalues`).
    An interrupted run resumes when rerun with the same settings.

    Example: dbtools background hg19.fa.gz -b my.bank -o my_with_backgrounds.bank
    """
    torch.set_num_threads(cpu_count(threads))
    opts = BackgroundOptions(windows=windows, seed=seed, block=block, shuffle=shuffle, window=window, window_size=window_size,
                             average=average, tail_fraction=tail_fraction)
    with counter("background of", "models") as advance:
        summary = run_background(genome, bank=bank, models=models, bank_out=bank_out, regions=regions,
                                 options=opts, device=resolve_device(device), progress=advance)
    stderr.print(f"backgrounds of {summary.models} models ({summary.computed} computed, {summary.resumed} resumed) "
                 f"in {summary.seconds:.0f} s -> {summary.out}", highlight=False)
