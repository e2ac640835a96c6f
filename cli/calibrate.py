"""`dbtools calibrate`: hyperparameter search with cross-validation for many proteins in batched runs."""

from __future__ import annotations

import shlex
import sys
from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.table import Table

from dbtools.train.calibrate import QUICK, Protocol, calibrate_to_files
from dbtools.device import resolve_device
from dbtools.train.interrupt import StopRequest
from dbtools.train.bank_training import DataOptions, specs_from_args
from dbtools.train.hyper import Hyper
from dbtools.train.schedule import parse_detector_lens

from . import options
from .progress import stderr, steps_bar


def calibrate(
    data: Annotated[Optional[list[str]], typer.Argument(
        metavar="DATA...", help="Training files, one protein each (DeepBind table, seq<TAB>target TSV, FASTA, "
                                "BED with --genome). Or use --spec.")] = None,
    output: Annotated[Path, typer.Option("--output", "-o", help="Calibration report to write (JSON).")] = Path(
        "calibration.json"),
    bank_out: Annotated[Optional[Path], typer.Option(
        "--bank-out", help="Also train the final models and write them as a bank.")] = None,
    spec: Annotated[Optional[Path], typer.Option(
        "--spec", help="TSV of proteins (as for `dbtools train`); a hyperparameters cell fixes those values "
                       "instead of sampling them.")] = None,
    fmt: options.DataFormat = DataOptions.fmt,
    task: Annotated[str, typer.Option("--task", help="auto|classification|regression")] = "auto",
    rows: Annotated[Optional[str], typer.Option("--rows", help="Rows FIRST:LAST of each file (1:500 = fold A).")] = None,
    negatives: Annotated[Optional[str], typer.Option(
        "--negatives", help="shuffle (default), flank (BED input) or a FASTA of negatives.")] = None,
    shuffles: options.Shuffles = None,
    genome: options.BedGenome = None,
    length: options.PeakLength = DataOptions.length,
    trials: Annotated[Optional[int], typer.Option(
        "--trials", help=f"Random hyperparameter sets [{Protocol.trials}].")] = None,
    folds: Annotated[Optional[int], typer.Option(
        "--folds", help=f"Cross-validation folds [{Protocol.folds}].")] = None,
    protocol_name: Annotated[str, typer.Option(
        "--protocol", help="dbtools: the defaults of `dbtools train` are a candidate, kept unless a random trial "
                           "beats them by more than one standard error of the CV; deepbind: the original (lowest "
                           "mean CV loss, final seed by training loss).")] = Protocol.name,
    final_trials: Annotated[Optional[int], typer.Option(
        "--final-trials",
        help=f"Seeds of a chosen random trial's final training on all the data; the lowest training loss is kept "
             f"[{Protocol.final_trials}].")] = None,
    max_steps: Annotated[Optional[int], typer.Option(
        "--max-steps", help=f"SGD steps per trial [{Protocol.steps}].")] = None,
    checkpoint_every: Annotated[Optional[int], typer.Option(
        "--checkpoint-every",
        help=f"Candidate step counts: validate every N steps [{Protocol.checkpoint_every}].")] = None,
    batch_size: Annotated[int, typer.Option("--batch-size", min=1)] = Protocol.batch_size,
    detector_len: Annotated[str, typer.Option(
        "--detector-len", help="Detector length, or comma-separated lengths shared out among the trials "
                               "(each length gets trials with and without the hidden layer; the CV "
                               "chooses).")] = ",".join(map(str, Protocol.detector_lens)),
    pooling: Annotated[Optional[str], typer.Option(
        "--pooling", help="max|maxavg (default: max for classification, maxavg for regression).")] = None,
    quick: Annotated[bool, typer.Option(
        "--quick", help=f"{QUICK['folds']} folds, {QUICK['trials']} trials, {QUICK['final_trials']} final trials, "
                        f"{QUICK['steps']} steps (checkpoints every {QUICK['checkpoint_every']}): tests and "
                        "demos.")] = False,
    plot_dir: Annotated[Optional[Path], typer.Option(
        "--plot-dir", help="Folder for one PNG per protein (default: OUTPUT without .json + '_plots').")] = None,
    no_plots: Annotated[bool, typer.Option("--no-plots", help="Write no figures.")] = False,
    seed: Annotated[int, typer.Option(
        "--seed", help="Seed of every random choice (recorded in the report).")] = Protocol.seed,
    device: options.Device = "auto",
    resume: Annotated[bool, typer.Option(
        "--resume", help="Continue an interrupted calibration from OUTPUT.ckpt/ to the same result.")] = False,
) -> None:
    """Choose each protein's hyperparameters and step count by random search with cross-validation.

    Every trial and fold of every protein trains in shared batched runs. Writes the report
    (every trial's hyperparameters and per-fold, per-checkpoint validation metrics, and the
    choice); with --bank-out also the final models. Ctrl-C saves a resumable state.

    Example: dbtools calibrate encode/GABPA_AC.seq.gz --rows 1:500 -o gabpa.json --bank-out gabpa.bank
    """
    lengths = parse_detector_lens(detector_len)
    base = Hyper(detector_len=lengths[0])
    specs = specs_from_args(data, None if spec is None else str(spec), base, task, rows)
    given = {k: v for k, v in (("trials", trials), ("folds", folds), ("final_trials", final_trials),
                                ("steps", max_steps), ("checkpoint_every", checkpoint_every)) if v is not None}
    common = dict(batch_size=batch_size, seed=seed, pooling=pooling, detector_lens=lengths, name=protocol_name)
    protocol = Protocol.quick(**given, **common) if quick else Protocol(**given, **common)
    plots = None if no_plots else (plot_dir or output.with_name(output.name.removesuffix(".json") + "_plots"))
    with steps_bar() as advance, StopRequest().installed() as stop:
        doc, bank = calibrate_to_files(
            specs, DataOptions(fmt=fmt, negatives=negatives, genome=genome, shuffles=shuffles, length=length), protocol,
            resolve_device(device), output, bank_out, plots, advance, resume, stop,
            command=shlex.join(["dbtools"] + sys.argv[1:]))
    table = Table(title=f"calibration ({protocol.name}): {protocol.trials} trials x {protocol.folds} folds, "
                        f"{protocol.steps} steps", title_justify="left")
    for col in ("model", "protein", "trial", "hidden", "lr", "mom.", "drop", "CV", "steps"):
        table.add_column(col, no_wrap=True)
    for e in doc["proteins"]:
        c, h = e["choice"], e["choice"]["hyperparameters"]
        trial = f"{c['trial']} (defaults)" if c.get("candidate") == "defaults" else str(c["trial"])
        table.add_row(e["id"], e["protein"], trial, str(h["num_hidden"]), f"{h['learning_rate']:.2g}",
                      f"{h['momentum']:.3f}", f"{h['dropout']:g}", f"{e['metric']} {c['cv_metric']:.3f}", str(c["step"]))
    stderr.print(table)
    stderr.print(f"wrote {output}" + (f" and {len(bank)} models to {bank_out}" if bank is not None else "")
                 + (f"; figures in {plots}/" if plots else ""))
