"""`dbtools train`: read a spec of models, train them as batched groups, write one bank.

Regression targets are transformed as the original DeepBind did before training: clamped
at the 99.95th percentile of the training targets, then standardised to mean 0 and standard
deviation 1 with the training set's statistics (the same transform is applied to validation
targets; both numbers are recorded in the bank). Without a validation file, a seeded
fraction of the training rows (`val_fraction`) is held out to choose the best checkpoint.
"""

from __future__ import annotations

import csv
import math
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, fields, replace
from pathlib import Path

import numpy as np
import torch

from dbtools import __version__
from dbtools.bank.store import Architecture, Bank, Model, ModelInfo, save_bank
from dbtools.errors import DbtoolsError, UsageError
from dbtools.io.atomic import check_writable
from dbtools.io.encode import encode_all
from dbtools.train.checkpoints import Checkpoints, fingerprint
from dbtools.train.datasets import balance_weights, cap_negatives, read_dataset
from dbtools.train.hyper import DETECTORS, Hyper, Task, group_key
from dbtools.train.loop import GroupResult
from dbtools.train.runs import Runs
from dbtools.train.schedule import Schedule

# negatives kept per held-out positive: its shuffles beyond these add little but evaluation time
VALIDATION_SHUFFLES = 20
SPEC_COLUMNS = ("id", "protein", "task", "train", "validation", "rows", "hyperparameters")
CLAMP_PERCENTILE = 99.95


@dataclass
class DataOptions:
    """How training files are read (shared by every model of a run)."""

    fmt: str = "auto"
    negatives: str | None = None  # "shuffle" (default), "flank" (BED input) or a FASTA of negatives
    genome: str | None = None
    length: int = 101
    shuffles: int | None = None  # dinucleotide shuffles per positive (None: `shuffles_per_positive`)


@dataclass
class ModelSpec:
    """One model to train: where its data is and how to train it."""

    id: str
    train: str
    protein: str = ""
    task: str | None = None
    validation: str | None = None
    rows: str | None = None
    hyper: Hyper = field(default_factory=Hyper)
    fixed: tuple[str, ...] = ()  # hyperparameters the spec sets (calibration does not sample them)


@dataclass(frozen=True)
class RunOptions(Schedule):
    """`dbtools train`'s schedule, and how each model's candidates are made and chosen.

    Every model trains `restarts` candidates per detector length of `detector_lens` (unless its
    spec sets one), all on the same data and validation rows; the best on validation is kept.
    Without a validation file, `val_fraction` of the rows (whole peaks with their shuffles) is
    held out.
    """

    val_fraction: float = 0.1
    # a model's accuracy varies from seed to seed (see docs/development.md)
    restarts: int = 4


def parse_hyper(text: str, base: Hyper, where: str) -> Hyper:
    """'learning_rate=0.01;num_hidden=0' applied over `base` (see `hyper_names` for the keys)."""
    types = {f.name: f.type for f in fields(Hyper)}
    changes = {}
    for item in filter(None, (s.strip() for s in text.split(";"))):
        key, sep, value = item.partition("=")
        key = key.strip()
        if not sep or key not in types:
            raise DbtoolsError(f"{where}: unknown hyperparameter {item!r} (known: {', '.join(types)})")
        try:
            if types[key] in ("bool", bool):
                changes[key] = value.strip().lower() in ("1", "true", "yes")
            elif types[key] in ("int", int):
                changes[key] = int(value)
            else:
                changes[key] = float(value)
        except ValueError:
            raise DbtoolsError(f"{where}: hyperparameter {key} has a bad value {value!r}") from None
    return replace(base, **changes)


def hyper_names(text: str) -> tuple[str, ...]:
    """The hyperparameter names a spec cell sets."""
    return tuple(item.partition("=")[0].strip() for item in text.split(";") if item.strip())


def read_spec(path: str, base: Hyper) -> list[ModelSpec]:
    """A TSV with a header naming some of SPEC_COLUMNS (`id` and `train` required).

    Relative data paths are taken relative to the spec file's folder.
    """
    spec_path = Path(path)
    try:
        lines = [ln for ln in spec_path.read_text().splitlines() if ln.strip() and not ln.startswith("#")]
    except OSError as e:
        raise DbtoolsError(f"{path}: cannot read spec ({e.strerror or e})") from None
    if not lines:
        raise DbtoolsError(f"{path}: empty spec")
    reader = csv.DictReader(lines, delimiter="\t")
    unknown = [c for c in reader.fieldnames or [] if c not in SPEC_COLUMNS]
    if unknown or not {"id", "train"} <= set(reader.fieldnames or []):
        raise DbtoolsError(f"{path}: line 1: spec header needs id and train, may have {', '.join(SPEC_COLUMNS)}"
                           + (f"; unknown column {unknown[0]!r}" if unknown else ""))

    def resolve(p: str | None) -> str | None:
        if not p:
            return None
        q = Path(p)
        return str(q if q.is_absolute() else spec_path.parent / q)

    specs, seen = [], set()
    for lineno, row in enumerate(reader, 2):
        where = f"{path}: line {lineno}"
        if None in row or any(row.get(c) is None for c in ("id", "train")):
            raise DbtoolsError(f"{where}: wrong number of columns")
        mid = row["id"].strip()
        if not mid or mid in seen:
            raise DbtoolsError(f"{where}: {'missing' if not mid else 'duplicate'} model id {mid!r}")
        seen.add(mid)
        train = resolve(row["train"].strip())
        if not train or not Path(train).exists():
            raise DbtoolsError(f"{where}: training data {row['train']!r} not found")
        validation = resolve((row.get("validation") or "").strip())
        if validation and not Path(validation).exists():
            raise DbtoolsError(f"{where}: validation data {row['validation']!r} not found")
        task = (row.get("task") or "").strip() or None
        if task not in (None, "auto", "classification", "regression"):
            raise DbtoolsError(f"{where}: task must be classification, regression or auto, not {task!r}")
        specs.append(ModelSpec(
            id=mid, train=train, protein=(row.get("protein") or "").strip() or mid,
            task=None if task == "auto" else task, validation=validation,
            rows=(row.get("rows") or "").strip() or None,
            hyper=parse_hyper(row.get("hyperparameters") or "", base, where),
            fixed=hyper_names(row.get("hyperparameters") or "")))
    return specs


def specs_from_args(data: list[str] | None, spec: str | None, base: Hyper, task: str = "auto",
                    rows: str | None = None, validation: str | None = None) -> list[ModelSpec]:
    """The models of a command line: one per DATA file (named after the file), or a spec file's rows."""
    if spec is not None:
        if data:
            raise UsageError("give DATA files or --spec, not both")
        return read_spec(spec, base)
    if not data:
        raise UsageError("give DATA files or --spec")
    if validation and len(data) > 1:
        raise UsageError("--validation needs exactly one DATA file (use --spec for several)")
    if task not in ("auto", "classification", "regression"):
        raise UsageError(f"--task {task}: expected auto, classification or regression")
    names = [Path(d).name.split(".")[0] for d in data]
    if len(set(names)) < len(names):
        raise UsageError("DATA files must have distinct names (they name the models); use --spec to name them")
    return [ModelSpec(id=n, train=d, protein=n, task=None if task == "auto" else task, validation=validation,
                      rows=rows, hyper=base) for n, d in zip(names, data)]


def regression_transform(y: np.ndarray) -> dict:
    """Clamp at the 99.95th percentile, then standardise: the numbers, recorded in the bank."""
    clamp = float(np.percentile(y, CLAMP_PERCENTILE))
    c = np.minimum(y, clamp)
    sd = float(c.std())
    return {"clamp_above": clamp, "mean": float(c.mean()), "sd": sd if sd > 0 else 1.0}


def apply_transform(y: np.ndarray, t: dict | None) -> np.ndarray:
    if t is None:
        return y
    return ((np.minimum(y, t["clamp_above"]) - t["mean"]) / t["sd"]).astype(np.float32)


@dataclass
class Prepared:
    """A model's data read and ready: its task, validation set, sources, target transform."""

    spec: ModelSpec
    task: Task
    validation: tuple[list[np.ndarray], np.ndarray, np.ndarray] | None  # codes, targets, weights
    sources: list[dict]
    transform: dict | None
    train_length: int | None
    origin: np.ndarray  # [rows of task] the row each one was made from (folds keep them together)


def prepare(spec: ModelSpec, data: DataOptions, run: RunOptions, index: int) -> Prepared:
    """Read a model's data, hold out validation rows (a peak with its shuffles), transform targets."""
    seed = run.seed * 100_003 + index
    kind = data.negatives if data.negatives in ("shuffle", "flank") else "shuffle"
    fasta = None if data.negatives in (None, "shuffle", "flank") else data.negatives
    ds = read_dataset(spec.train, fmt=data.fmt, task=spec.task, rows=spec.rows, negatives=fasta,
                      genome=data.genome, length=data.length, negatives_from=kind, seed=seed,
                      shuffles=data.shuffles)
    codes = encode_all(ds.sequences, spec.train)
    y, origin = ds.targets, ds.origin
    sources = list(ds.sources)
    if spec.validation:
        vds = read_dataset(spec.validation, fmt="auto", task=ds.task, seed=seed + 1, shuffles=VALIDATION_SHUFFLES)
        val = (encode_all(vds.sequences, spec.validation), vds.targets, balance_weights(vds.targets, vds.origin))
        sources += [dict(s, role="validation") for s in vds.sources]
    elif run.val_fraction > 0:
        n_val = max(1, int(round(len(np.unique(origin)) * run.val_fraction)))
        held, kept = _hold_out(origin, n_val, np.random.default_rng([seed, 7]))
        if len(kept) < 2:
            raise DbtoolsError(f"{spec.train}: too few rows ({len(codes)}) to hold out validation data")
        val = validation_set(codes, y, origin, held)
        codes, y, origin = [codes[i] for i in kept], y[kept], origin[kept]
        sources.append({"validation": f"held out {len(val[0])} rows", "fraction": run.val_fraction})
    else:
        val = None
    classification = ds.task == "classification"
    transform = None if classification else regression_transform(y)
    if val is not None:
        val = (val[0], apply_transform(val[1], transform), val[2])
    lengths = {len(c) for c in codes}
    hyper = spec.hyper.for_task(classification)
    weights = balance_weights(y, origin) if classification else None
    task = Task(codes, apply_transform(y, transform), classification, hyper, seed, weights=weights,
                origin=origin if classification else None)
    return Prepared(spec, task,
                     val, sources, transform, lengths.pop() if len(lengths) == 1 else None, origin)


def validation_set(codes: list[np.ndarray], y: np.ndarray, origin: np.ndarray,
                   rows: np.ndarray) -> tuple[list[np.ndarray], np.ndarray, np.ndarray]:
    """Held-out `rows` as (codes, targets, weights): each peak with its first VALIDATION_SHUFFLES
    shuffles, weighted to balance them (`balance_weights`); rows made from no other row (regression,
    given negatives) are all kept."""
    rows = cap_negatives(rows, y, origin, VALIDATION_SHUFFLES)
    return [codes[i] for i in rows], y[rows], balance_weights(y[rows], origin[rows])


def _hold_out(origin: np.ndarray, n: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Rows of `n` random origins (a peak and its shuffles) and the rows of the others, sorted."""
    keys = np.unique(origin)
    out = np.isin(origin, rng.permutation(keys)[:n])
    return np.flatnonzero(out), np.flatnonzero(~out)


def run_fingerprint(prepared: list[Prepared], data: DataOptions, run: RunOptions) -> str:
    """What determines a training run's result: specs, data checksums, options."""
    return fingerprint({"specs": [asdict(p.spec) for p in prepared], "sources": [p.sources for p in prepared],
                        "data": asdict(data), "run": asdict(run), "version": __version__})


def checkpoint_folder(output: str | Path) -> Path:
    """Where a run writing `output` keeps its resumable state."""
    return Path(f"{output}.ckpt")


def restart_seed(seed: int, restart: int) -> int:
    """The seed of a model's restart (restart 0 is the model's own seed)."""
    return seed + 1_000_003 * restart


def candidate_task(task: Task, length: int, restart: int) -> Task:
    """A model's candidate: its task with that detector length and the restart's seed."""
    return replace(task, seed=restart_seed(task.seed, restart), hyper=replace(task.hyper, detector_len=length))


def candidate_lengths(spec: ModelSpec, run: RunOptions) -> tuple[int, ...]:
    """The detector lengths tried for a model: its spec's own, or the run's."""
    if "detector_len" in spec.fixed or not run.detector_lens:
        return (spec.hyper.detector_len,)
    return tuple(run.detector_lens)


def train_bank(specs: list[ModelSpec], data: DataOptions, run: RunOptions, device: torch.device,
               progress: Callable[[str, int, int, float | None], None] | None = None,
               state_folder: str | Path | None = None, resume: bool = False,
               stop: Callable[[], bool] | None = None) -> Bank:
    """Train every spec; models sharing an architecture advance together in one batched run.

    Parameters
    ----------
    specs : list of ModelSpec
        The models, each trained as candidates (`RunOptions`) of which the best is kept.
    data, run : DataOptions, RunOptions
        How the data is read; the schedule and the candidates.
    device : torch.device
    progress : callable, optional
        progress(label of a batched run, step, steps, mean training loss or None).
    state_folder : path, optional
        Every checkpoint saves the run's state there.
    resume : bool
        Continue from the saved state to the result an uninterrupted run gives.
    stop : callable, optional
        Once true, the state after the current step is saved and `Interrupted` raised.

    Returns
    -------
    Bank
        One model per spec, in order; each records its data, seed, hyperparameters, chosen
        step, metrics and every candidate (`provenance`).
    """
    if not specs:
        raise UsageError("nothing to train")
    prepared = [prepare(s, data, run, i) for i, s in enumerate(specs)]
    runs = Runs.open(state_folder, run_fingerprint(prepared, data, run), resume, stop, progress)
    candidates: dict[int, list[tuple[float, Model]]] = {i: [] for i in range(len(prepared))}
    for number, (key, members) in enumerate(_groups(prepared, run).items()):
        label = f"{len(members)} models m={key[0]}{' max+avg' if key[1] else ''}"
        vals = [prepared[i].validation for i, _, _ in members]
        tasks = [candidate_task(prepared[i].task, length, r) for i, length, r in members]
        result = runs.train(f"group{number}", label, tasks, vals if all(v is not None for v in vals) else None,
                            run.steps, run.checkpoint_every, device, run.batch_size)
        for g, (i, _, _) in enumerate(members):
            candidates[i].append(candidate_model(prepared[i], tasks[g], result, g, run))
    models = [select_candidate(found, candidate_lengths(prepared[i].spec, run), run) for i, found in candidates.items()]
    return Bank(models, description=f"trained with dbtools {__version__}")


def _groups(prepared: list[Prepared], run: RunOptions) -> dict[tuple, list[tuple[int, int, int]]]:
    """Every candidate (model i, detector length, restart r) in its architecture's group."""
    groups: dict[tuple, list[tuple[int, int, int]]] = {}
    for i, p in enumerate(prepared):
        for length in candidate_lengths(p.spec, run):
            for r in range(run.restarts):
                groups.setdefault(group_key(replace(p.spec.hyper, detector_len=length)), []).append((i, length, r))
    return groups


def candidate_model(p: Prepared, task: Task, result: GroupResult, g: int, run: RunOptions) -> tuple[float, Model]:
    """Trained candidate g of a group as a bank model at its best checkpoint, and its rank: lower is
    better (validation loss for classification, -Pearson for regression, else training loss)."""
    hyper = task.hyper
    at = result.checkpoints.index(result.best_step[g])
    metrics = {"train_loss": float(result.train_loss[at, g])}
    rank = metrics["train_loss"]
    if len(result.val_loss):
        metric = float(result.val_metric[at, g])
        metrics |= {"validation_loss": float(result.val_loss[at, g]),
                    ("validation_auc" if p.task.classification else "validation_pearson"): metric}
        rank = metrics["validation_loss"] if p.task.classification else -np.nan_to_num(metric, nan=-np.inf)
    metrics = {k: v if math.isfinite(v) else None for k, v in metrics.items()}  # JSON has no NaN: null
    arch = Architecture(detector_len=hyper.detector_len, num_detectors=DETECTORS, reverse_complement=True,
                        avg_pooling=hyper.avg_pooling, num_hidden=hyper.num_hidden)
    info = ModelInfo(
        id=p.spec.id, protein=p.spec.protein, arch=arch,
        experiment="classification" if p.task.classification else "regression",
        source=f"trained with dbtools {__version__}", train_length=p.train_length,
        provenance={"data": p.sources, "seed": task.seed,
                    "hyperparameters": hyper.to_json(),
                    "steps": run.steps, "chosen_step": result.best_step[g],
                    "batch_size": run.batch_size, "target_transform": p.transform,
                    "metrics": metrics, "dbtools_version": __version__})
    return rank, Model(info, result.params.model_arrays(g))


def select_candidate(found: list[tuple[float, Model]], lengths: tuple[int, ...], run: RunOptions) -> Model:
    """The best-ranked of a model's candidates (the first of equals), its provenance listing them all."""
    best = min(range(len(found)), key=lambda k: found[k][0])
    model = found[best][1]
    model.info.provenance["selection"] = {
        "restarts": run.restarts, "detector_lens": list(lengths), "chosen": best,
        "candidates": [{"detector_len": m.info.arch.detector_len, "seed": m.info.provenance["seed"],
                        "chosen_step": m.info.provenance["chosen_step"], "metrics": m.info.provenance["metrics"]}
                       for _, m in found]}
    return model


def train_to_file(specs: list[ModelSpec], output: str, data: DataOptions, run: RunOptions,
                  device: torch.device, progress=None, resume: bool = False,
                  stop: Callable[[], bool] | None = None) -> Bank:
    """`train_bank`, the bank written to `output` atomically (a half-written bank never appears).

    The resumable state lives in `OUTPUT.ckpt/` while the run lasts and is removed once the
    bank is written. Returns the bank.
    """
    check_writable(output)
    folder = checkpoint_folder(output)
    bank = train_bank(specs, data, run, device, progress, folder, resume, stop)
    save_bank(bank, output)
    Checkpoints(folder, "").clear()
    return bank
