"""`dbtools train`: train a bank of DeepBind models, many at once."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from dbtools.device import resolve_device
from dbtools.errors import UsageError
from dbtools.train.interrupt import StopRequest
from dbtools.train.calibrate import train_from_calibration
from dbtools.train.bank_training import DataOptions, RunOptions, specs_from_args, train_to_file
from dbtools.train.hyper import CLASSIFICATION_RATE, REGRESSION_RATE, Hyper
from dbtools.train.schedule import parse_detector_lens

from . import options
from .progress import stderr, steps_bar


def train(
    data: Annotated[Optional[list[str]], typer.Argument(
        metavar="DATA...", help="Training files, one model each (DeepBind table, seq<TAB>target TSV, FASTA, "
                                "BED with --genome). Or use --spec.")] = None,
    output: Annotated[Path, typer.Option("--output", "-o", help="Bank file to write.")] = Path("trained.bank"),
    spec: Annotated[Optional[Path], typer.Option(
        "--spec", help="TSV of models to train together: id, train, and optionally protein, task, "
                       "validation, rows, hyperparameters (key=value;key=value).")] = None,
    fmt: options.DataFormat = DataOptions.fmt,
    task: Annotated[str, typer.Option("--task", help="auto|classification|regression (auto: 0/1 targets "
                                                     "mean classification).")] = "auto",
    rows: Annotated[Optional[str], typer.Option("--rows", help="Rows FIRST:LAST (1-based, inclusive) of each "
                                                               "file, e.g. 1:500 for DeepBind's fold A.")] = None,
    validation: Annotated[Optional[str], typer.Option("--validation", help="Validation file (with one DATA file).")] = None,
    negatives: Annotated[Optional[str], typer.Option(
        "--negatives", help="Negatives for positives-only data: shuffle (dinucleotide shuffles, the default), "
                            "flank (BED input: genomic windows 1 kb beside each peak) or a FASTA file.")] = None,
    shuffles: options.Shuffles = None,
    genome: options.BedGenome = None,
    length: options.PeakLength = DataOptions.length,
    steps: Annotated[int, typer.Option("--steps", min=1, help="SGD steps per model.")] = RunOptions.steps,
    checkpoint_every: Annotated[int, typer.Option(
        "--checkpoint-every", min=1, help="Validate (and maybe keep) every N steps.")] = RunOptions.checkpoint_every,
    batch_size: Annotated[int, typer.Option("--batch-size", min=1)] = RunOptions.batch_size,
    val_fraction: Annotated[float, typer.Option("--val-fraction", min=0, max=0.9,
                                                help="Rows held out for choosing the step when there is no "
                                                     "validation file.")] = RunOptions.val_fraction,
    seed: Annotated[int, typer.Option(
        "--seed", help="Seed of every random choice (recorded in the bank).")] = RunOptions.seed,
    restarts: Annotated[int, typer.Option(
        "--restarts", min=1, help="Train each model N times (per detector length) from different seeds, on the "
                                  "same data, in one batched run, and keep the best on validation (training "
                                  "loss without validation).")
    ] = RunOptions.restarts,
    detector_len: Annotated[str, typer.Option(
        "--detector-len", help="Detector length, or comma-separated lengths to try: each is trained "
                               "--restarts times and the best on validation is kept (a spec row's "
                               "detector_len overrides).")] = ",".join(map(str, RunOptions.detector_lens)),
    hidden: Annotated[int, typer.Option("--hidden", min=0, help="Hidden units (0 or 32 in DeepBind).")] = Hyper.num_hidden,
    pooling: Annotated[str, typer.Option("--pooling", help="max|maxavg")] = "max",
    learning_rate: Annotated[Optional[float], typer.Option(
        "--learning-rate", help=f"Default: {CLASSIFICATION_RATE} for classification, {REGRESSION_RATE} for "
                                "regression.")] = Hyper.learning_rate,
    momentum: Annotated[float, typer.Option("--momentum")] = Hyper.momentum,
    dropout: Annotated[float, typer.Option("--dropout", min=0, max=0.9)] = Hyper.dropout,
    device: options.Device = "auto",
    calibration: Annotated[Optional[Path], typer.Option(
        "--calibration", help="Train the final models chosen by `dbtools calibrate -o FILE` (its data, "
                              "hyperparameters and step counts).")] = None,
    resume: Annotated[bool, typer.Option(
        "--resume", help="Continue an interrupted run from OUTPUT.ckpt/ (same command and data); the result "
                         "equals an uninterrupted run's.")] = False,
) -> None:
    """Train one DeepBind model per data file (or per --spec row), all in one batched run.

    Ctrl-C or SIGTERM stops at the next step and saves the state in OUTPUT.ckpt/ (the bank is
    only written when training is complete); rerun the same command with --resume to continue.

    Example: dbtools train encode/GABPA_AC.seq.gz --rows 1:500 -o gabpa.bank
    """
    if pooling not in ("max", "maxavg"):
        raise UsageError(f"--pooling {pooling}: expected max or maxavg")
    lengths = parse_detector_lens(detector_len)
    base = Hyper(detector_len=lengths[0], num_hidden=hidden, avg_pooling=pooling == "maxavg",
                 learning_rate=learning_rate, momentum=momentum, dropout=dropout)
    if calibration is not None:
        if data or spec is not None:
            raise UsageError("--calibration trains the models of the calibration file: give no DATA or --spec")
        with steps_bar() as advance, StopRequest().installed() as stop:
            bank = train_from_calibration(str(calibration), str(output), resolve_device(device), advance,
                                          resume=resume, stop=stop)
        stderr.print(f"wrote {len(bank)} models to {output}")
        return
    specs = specs_from_args(data, None if spec is None else str(spec), base, task, rows, validation)
    run = RunOptions(steps=steps, checkpoint_every=checkpoint_every, batch_size=batch_size,
                     val_fraction=val_fraction, seed=seed, restarts=restarts, detector_lens=lengths)
    with steps_bar() as advance, StopRequest().installed() as stop:
        bank = train_to_file(specs, str(output), DataOptions(fmt=fmt, negatives=negatives, genome=genome, shuffles=shuffles,
                                                             length=length), run, resolve_device(device), advance,
                             resume=resume, stop=stop)
    for m in bank.models:
        p = m.info.provenance
        stderr.print(f"{m.info.id}: candidate {p['selection']['chosen'] + 1} of {len(p['selection']['candidates'])} "
                     f"(m={m.info.arch.detector_len}), step {p['chosen_step']}, " +
                     ", ".join(f"{k} {v:.4f}" for k, v in p["metrics"].items()))
    stderr.print(f"wrote {len(bank)} models to {output}")
