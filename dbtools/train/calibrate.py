"""`dbtools calibrate`: random hyperparameter search with cross-validation, every trial and fold
in one batched run.

For each protein, `trials` random hyperparameter sets (half without a hidden layer, half with
32 rectified units; distributions of the DeepBind supplement) are trained on `folds`-fold
cross-validation splits. Two protocols choose among them:

- `dbtools` (the default): the defaults of `dbtools train` are candidates too (one trial per
  detector length, before the random ones). Each trial is scored at its checkpoint of highest
  mean CV metric (AUC, or Pearson for regression); the best random trial is chosen only if it
  beats the best defaults trial by more than one standard error of their paired per-fold
  difference, else the defaults are kept, and the protein's model is then `dbtools train`'s
  (its candidates, seeds and held-out rows: the same model).
- `deepbind` (the original): every checkpoint of every random trial is a candidate; the lowest
  mean validation loss (classification) or highest mean Pearson (regression) fixes the
  hyperparameters and the step count.

A chosen random trial (either protocol) is trained on all the data `final_trials` times with
different seeds up to the chosen step, and the one with the lowest training loss is kept.

All models of all proteins (trials x folds, then final candidates) advance in shared batched
runs of the trainer, one per architecture group (detector length and pooling; models with and
without the hidden layer share a group), split only when a group exceeds the memory budget.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import asdict, dataclass, replace
from pathlib import Path

import numpy as np
import torch

from dbtools import __version__
from dbtools.bank.store import Architecture, Bank, Model, ModelInfo, save_bank
from dbtools.errors import DbtoolsError, UsageError
from dbtools.io.atomic import atomic_path, check_writable
from dbtools.train.bank_training import (DataOptions, ModelSpec, Prepared, RunOptions, candidate_lengths,
                                         candidate_model, candidate_task, prepare, select_candidate, validation_set)
from dbtools.train.checkpoints import Checkpoints, fingerprint
from dbtools.train.datasets import balance_weights, split_by_origin
from dbtools.train.hyper import DETECTORS, Hyper, Task, group_key
from dbtools.train.runs import Runs
from dbtools.train.schedule import Schedule

CALIBRATION_FORMAT = "dbtools-calibration"
# floats of one batched run's per-position activations (batch x positions x 32 x models)
RUN_BUDGET = 1 << 27


# `--quick`: small enough for tests and demos
QUICK = {"trials": 3, "folds": 2, "final_trials": 2, "steps": 200, "checkpoint_every": 50}
PROTOCOLS = ("dbtools", "deepbind")


@dataclass(frozen=True)
class Protocol(Schedule):
    """The calibration protocol; every number is a command-line flag.

    `trials` hyperparameter sets are each trained on `folds` cross-validation splits, the chosen
    one then `final_trials` times on all the data. `pooling` None: max for classification,
    max+avg for regression. Detector lengths are shared out among the trials: trial i has
    `detector_lens[(i // 2) % n]`, so each length gets trials with and without the hidden layer.
    `name`: how the choice and the final models are made (`dbtools` or `deepbind`, see the module).
    """

    trials: int = 30
    folds: int = 3
    final_trials: int = 6
    pooling: str | None = None
    name: str = "dbtools"

    @classmethod
    def quick(cls, **changes) -> Protocol:
        """The `QUICK` protocol, with `changes`."""
        return cls(**(QUICK | changes))

    def validate(self) -> None:
        super().validate(("trials", "folds", "final_trials"))
        if self.folds < 2:
            raise UsageError(f"--folds must be at least 2 for cross-validation, not {self.folds}")
        if self.pooling not in (None, "max", "maxavg"):
            raise UsageError(f"--pooling {self.pooling}: expected max or maxavg")
        if self.name not in PROTOCOLS:
            raise UsageError(f"--protocol {self.name}: expected {' or '.join(PROTOCOLS)}")

    def to_json(self) -> dict:
        """The protocol as calibration documents record it (their fields in their first order)."""
        d = asdict(self)
        keys = ("trials", "folds", "final_trials", "steps", "checkpoint_every", "batch_size", "seed", "pooling",
                "detector_lens")
        return {k: d[k] for k in keys} | ({"name": self.name} if self.name != "deepbind" else {})

    @classmethod
    def from_json(cls, d: dict) -> Protocol:
        """The protocol a calibration document records (one without a name is `deepbind`'s)."""
        return cls(**({"name": "deepbind"} | d | {"detector_lens": tuple(d["detector_lens"])}))

    def final_run(self) -> RunOptions:
        """How the `dbtools` protocol trains final models: `dbtools train`'s run with this schedule."""
        return RunOptions(steps=self.steps, checkpoint_every=self.checkpoint_every, batch_size=self.batch_size,
                          seed=self.seed, detector_lens=tuple(self.detector_lens))


def _log_uniform(rng: np.random.Generator, lo: float, hi: float) -> float:
    return float(10 ** rng.uniform(math.log10(lo), math.log10(hi)))


def sample_trials(n: int, rng: np.random.Generator, base: Hyper, fixed: dict,
                  lengths: tuple[int, ...] = ()) -> list[Hyper]:
    """`n` hyperparameter sets drawn as DeepBind's calibration draws them; even trials have
    no hidden layer, odd ones 32 units, whose output layer draws its own init scale and L1
    (the original's M2 draws each fully connected layer's); trial i has detector length
    lengths[(i // 2) % len] (if given). Values in `fixed` (from the spec) are kept as given."""
    drawn = []
    for i in range(n):
        drawn.append({
            "learning_rate": _log_uniform(rng, 5e-4, 5e-2),
            "momentum": 0.95 + 0.04 * math.sqrt(rng.uniform()),
            "init_conv": _log_uniform(rng, 1e-7, 1e-3),
            "init_fc": _log_uniform(rng, 1e-5, 1e-2),
            "l1_conv": _log_uniform(rng, 1e-15, 1e-3),
            "l1_fc": _log_uniform(rng, 1e-10, 1e-3),
            "dropout": float(rng.choice([0.0, 0.0, 0.25, 0.5])),
            "num_hidden": 0 if i % 2 == 0 else 32,
        })
        if lengths:
            drawn[-1]["detector_len"] = lengths[(i // 2) % len(lengths)]
    for d in drawn[1::2]:  # drawn after all the others, which stay those of a single-draw stream
        d |= {"init_out": _log_uniform(rng, 1e-5, 1e-2), "l1_out": _log_uniform(rng, 1e-10, 1e-3)}
        for layer, out in (("init_fc", "init_out"), ("l1_fc", "l1_out")):
            if layer in fixed:  # a spec that fixes the fully connected value fixes both layers' (unless it sets both)
                d[out] = None
    return [replace(base, **(d | fixed)) for d in drawn]


def _model_seed(seed: int, protein: int, trial: int, fold: int, stage: int) -> int:
    """A distinct, reproducible seed for every model of a calibration."""
    return int(np.random.SeedSequence([seed, protein, trial, fold, stage]).generate_state(1, np.uint32)[0])


@dataclass
class _Protein:
    spec: ModelSpec
    prepared: Prepared  # with the full training set
    trials: list[Hyper]  # the defaults candidates first, then the random trials
    folds: list[np.ndarray]  # row indices of each fold
    defaults: int = 0  # how many of `trials` are the defaults of `dbtools train` (one per detector length)


def defaults_candidates(spec: ModelSpec, classification: bool, protocol: Protocol) -> list[Hyper]:
    """The settings `dbtools train` would train for this spec, one per detector length it tries
    (its pooling unless `--pooling` is given; values the spec sets are kept)."""
    hyper = spec.hyper.for_task(classification)
    if protocol.pooling is not None and "avg_pooling" not in spec.fixed:
        hyper = replace(hyper, avg_pooling=protocol.pooling == "maxavg")
    return [replace(hyper, detector_len=m) for m in candidate_lengths(spec, protocol.final_run())]


def _all_rows(protocol: Protocol) -> RunOptions:
    """How a calibration reads each protein's data: every row kept (the folds validate), its seed."""
    return RunOptions(val_fraction=0.0, seed=protocol.seed, batch_size=protocol.batch_size)


def prepare_proteins(specs: list[ModelSpec], data: DataOptions, protocol: Protocol) -> list[_Protein]:
    """Read each protein's data, check it suits the protocol, draw its trials and folds."""
    run = _all_rows(protocol)
    proteins = []
    for i, spec in enumerate(specs):
        p = prepare(spec, data, run, i)
        n = len(p.task.codes)
        if n < protocol.folds * protocol.batch_size:
            raise DbtoolsError(f"{spec.train}: {n} examples are fewer than folds x batch size "
                               f"({protocol.folds} x {protocol.batch_size}); give more data or lower "
                               f"--folds/--batch-size")
        if not p.task.classification and np.ptp(p.task.targets) == 0:
            raise DbtoolsError(f"{spec.train}: regression targets are all the same value; nothing to learn")
        avg = (not p.task.classification) if protocol.pooling is None else protocol.pooling == "maxavg"
        fixed = {k: getattr(spec.hyper, k) for k in spec.fixed}
        base = replace(spec.hyper, avg_pooling=fixed.get("avg_pooling", avg))
        trials = sample_trials(protocol.trials, np.random.default_rng([protocol.seed, i, 11]), base, fixed,
                               tuple(protocol.detector_lens))
        defaults = defaults_candidates(spec, p.task.classification, protocol) if protocol.name == "dbtools" else []
        folds = split_by_origin(p.origin, protocol.folds, np.random.default_rng([protocol.seed, i, 13]))
        proteins.append(_Protein(spec, p, defaults + trials, folds, len(defaults)))
    return proteins


def _budgeted_groups(keys: list[tuple], positions: int, batch: int) -> list[list[int]]:
    """Indices of models grouped by architecture, each group split to fit RUN_BUDGET."""
    per_model = batch * positions * 2 * DETECTORS * 2  # activations and their one-hot input, both strands
    cap = max(1, RUN_BUDGET // per_model)
    groups: dict[tuple, list[int]] = {}
    for i, k in enumerate(keys):
        groups.setdefault(k, []).append(i)
    return [members[a:a + cap] for members in groups.values() for a in range(0, len(members), cap)]


def _train_runs(runs: Runs, stage: str, tasks: list[Task], vals: list, steps: int, checkpoint_every: int,
                batch: int, device: torch.device, until: list[int] | None = None) -> dict[int, tuple]:
    """Train `tasks` in as few batched runs as the budget allows; per task (run result, index)."""
    longest = max(max(len(c) for c in t.codes) for t in tasks)
    m = max(t.hyper.detector_len for t in tasks)
    groups = _budgeted_groups([group_key(t.hyper) for t in tasks], longest + m - 1, batch)
    out = {}
    for r, members in enumerate(groups):
        result = runs.train(f"{stage}{r}", f"{stage} {r + 1}/{len(groups)}: {len(members)} models",
                            [tasks[i] for i in members], [vals[i] for i in members], steps, checkpoint_every,
                            device, batch, None if until is None else [until[i] for i in members])
        for g, i in enumerate(members):
            out[i] = (result, g)
    return out


def _trial_seed(seed: int, protein: int, trial: int, fold: int, defaults: int) -> int:
    """The seed of a trial's model on a fold: a random trial keeps the seed it has in the `deepbind`
    protocol (its number among the random trials); the defaults candidates draw from their own stage."""
    if trial < defaults:
        return _model_seed(seed, protein, trial, fold, 2)
    return _model_seed(seed, protein, trial - defaults, fold, 0)


def _curves(result_of: dict, index: dict, protein: int, n_trials: int, n_folds: int) -> list[dict]:
    """Per trial, its checkpoints and the folds' validation curves, with their means."""
    trials = []
    for t in range(n_trials):
        folds = []
        for k in range(n_folds):
            res, g = result_of[index[protein, t, k]]
            folds.append({"fold": k, "val_loss": res.val_loss[:, g].tolist(), "val_metric": res.val_metric[:, g].tolist()})
        trials.append({"trial": t, "checkpoints": list(res.checkpoints), "folds": folds,
                       "mean_val_loss": np.mean([f["val_loss"] for f in folds], axis=0).tolist(),
                       "mean_val_metric": np.nanmean([f["val_metric"] for f in folds], axis=0).tolist()})
    return trials


def _choose_deepbind(trials: list[dict], classification: bool) -> dict:
    """The `deepbind` protocol's choice: the (trial, checkpoint) of lowest mean validation loss
    (classification) or highest mean Pearson correlation (regression)."""
    best = None
    for t, trial in enumerate(trials):
        loss, metric = np.array(trial["mean_val_loss"]), np.array(trial["mean_val_metric"])
        score = -loss if classification else np.nan_to_num(metric, nan=-np.inf)
        c = int(np.argmax(score))
        if best is None or score[c] > best[0]:
            best = (float(score[c]), t, c)
    _, t, c = best
    chosen = trials[t]
    return {"trial": t, "step": chosen["checkpoints"][c], "cv_loss": chosen["mean_val_loss"][c],
            "cv_metric": chosen["mean_val_metric"][c]}


def one_se_rule(metric: np.ndarray, defaults: int) -> dict:
    """The `dbtools` protocol's choice between the defaults candidates and the random trials.

    Parameters
    ----------
    metric : np.ndarray, shape (trials, checkpoints, folds)
        Each trial's validation metric (higher is better) per checkpoint and fold; the first
        `defaults` trials are the defaults candidates. NaN counts as chance (0.5 AUC or 0 Pearson
        is the caller's to fill in).
    defaults : int
        How many leading trials are defaults candidates (at least 1).

    Returns
    -------
    dict
        `defaults` and `challenger`: (trial, checkpoint) of the best defaults trial and of the
        best random trial (None without random trials), each trial at its checkpoint of highest
        mean over the folds (the first of equals); `difference` and `difference_se`: the mean over
        folds of the challenger's metric minus the defaults', and its standard error (paired,
        sd / sqrt(folds)); `chosen`: the challenger if the difference exceeds one standard error,
        else the defaults.
    """
    means = metric.mean(axis=2)
    at = means.argmax(axis=1)
    best = means[np.arange(len(means)), at]
    d = int(np.argmax(best[:defaults]))
    out = {"defaults": (d, int(at[d])), "challenger": None, "difference": None, "difference_se": None,
           "chosen": (d, int(at[d]))}
    if len(metric) > defaults:
        r = defaults + int(np.argmax(best[defaults:]))
        diff = metric[r, at[r]] - metric[d, at[d]]
        se = float(diff.std(ddof=1) / math.sqrt(len(diff))) if len(diff) > 1 else math.inf
        out |= {"challenger": (r, int(at[r])), "difference": float(diff.mean()), "difference_se": se}
        if diff.mean() > se:
            out["chosen"] = (r, int(at[r]))
    return out


def _choose_dbtools(trials: list[dict], defaults: int, classification: bool, metric_name: str) -> tuple[dict, dict]:
    """The `dbtools` protocol's choice (`one_se_rule` on the folds' metrics) and the report of why."""
    chance = 0.5 if classification else 0.0
    metric = np.nan_to_num(np.array([[f["val_metric"] for f in t["folds"]] for t in trials], dtype=float),
                           nan=chance).transpose(0, 2, 1)
    rule = one_se_rule(metric, defaults)

    def candidate(tc):
        if tc is None:
            return None
        t, c = tc
        folds = metric[t, c]
        return {"trial": t, "step": trials[t]["checkpoints"][c], "cv_metric": float(folds.mean()),
                "cv_metric_se": float(folds.std(ddof=1) / math.sqrt(len(folds))), "folds": folds.tolist()}

    d, r = candidate(rule["defaults"]), candidate(rule["challenger"])
    won = rule["chosen"] != rule["defaults"]
    name = metric_name.upper() if metric_name == "auc" else metric_name.capitalize()
    if r is None:
        reason = "no random trials: the defaults of dbtools train are kept"
    else:
        diff, se = rule["difference"], rule["difference_se"]
        reason = (f"random trial {r['trial']} (CV {name} {r['cv_metric']:.4f}) "
                  + ("beats" if won else "does not beat")
                  + f" the defaults (trial {d['trial']}, CV {name} {d['cv_metric']:.4f}) by more than one standard "
                  f"error: difference {diff:+.4f}, standard error {se:.4f} over {metric.shape[2]} folds"
                  + ("" if won else "; the defaults of dbtools train are kept"))
    t, c = rule["chosen"]
    choice = {"trial": t, "step": trials[t]["checkpoints"][c], "cv_loss": trials[t]["mean_val_loss"][c],
              "cv_metric": float(metric[t, c].mean()), "candidate": "random" if won else "defaults"}
    selection = {"rule": "one standard error", "defaults": d, "best_random": r, "difference": rule["difference"],
                 "difference_se": rule["difference_se"], "chosen": choice["candidate"], "reason": reason}
    return choice, selection


def trial_tasks(proteins: list[_Protein], protocol: Protocol) -> tuple[list[Task], list, dict]:
    """Every (protein, trial, fold) model: its task, its validation fold, and an index.

    A fold's training and validation lists are built once and shared by all its trials (the
    trainer stores a shared set once). Validation folds are `validation_set`s.
    """
    tasks, vals, index = [], [], {}
    for i, p in enumerate(proteins):
        task, origin = p.prepared.task, p.prepared.origin
        codes, y, cls = task.codes, task.targets, task.classification
        folds = []
        for rows in p.folds:
            train_rows = np.setdiff1d(np.arange(len(codes)), rows)
            folds.append(([codes[j] for j in train_rows], y[train_rows],
                          balance_weights(y[train_rows], origin[train_rows]) if cls else None,
                          origin[train_rows] if cls else None, validation_set(codes, y, origin, rows)))
        for t, hyper in enumerate(p.trials):
            for k, (train, ty, weights, made_from, val) in enumerate(folds):
                index[i, t, k] = len(tasks)
                tasks.append(Task(train, ty, cls, hyper, seed=_trial_seed(protocol.seed, i, t, k, p.defaults),
                                  weights=weights, origin=made_from))
                vals.append(val)
    return tasks, vals, index


def calibration_fingerprint(proteins: list[_Protein], data: DataOptions, protocol: Protocol) -> str:
    return fingerprint({"specs": [asdict(p.spec) for p in proteins], "sources": [p.prepared.sources for p in proteins],
                        "data": asdict(data), "protocol": asdict(protocol), "version": __version__})


def calibrate(specs: list[ModelSpec], data: DataOptions, protocol: Protocol, device: torch.device,
              progress: Callable | None = None, state_folder: str | Path | None = None, resume: bool = False,
              stop: Callable[[], bool] | None = None, command: str = "") -> dict:
    """Calibrate every spec: all trials and folds of all proteins in shared batched runs.

    Parameters
    ----------
    specs : list of ModelSpec
        One protein each; a hyperparameter its spec sets is kept, the others drawn.
    data, protocol : DataOptions, Protocol
    device : torch.device
    progress, state_folder, resume, stop :
        As for `train_bank` (progress, resumable state, stopping on request).
    command : str
        The command line, recorded in the document.

    Returns
    -------
    dict
        The calibration document: the protocol, and per protein its trials' hyperparameters,
        per-fold validation curves and the chosen (trial, step); `write_json` writes it.
    """
    protocol.validate()
    if not specs:
        raise UsageError("nothing to calibrate")
    proteins = prepare_proteins(specs, data, protocol)
    runs = Runs.open(state_folder, calibration_fingerprint(proteins, data, protocol), resume, stop, progress)
    tasks, vals, index = trial_tasks(proteins, protocol)
    results = _train_runs(runs, "calibration", tasks, vals, protocol.steps, protocol.checkpoint_every,
                          protocol.batch_size, device)
    doc = {"format": CALIBRATION_FORMAT, "dbtools_version": __version__, "command": command,
           "protocol": protocol.to_json(), "data_options": asdict(data), "proteins": []}
    for i, p in enumerate(proteins):
        cls = p.prepared.task.classification
        entry = {"id": p.spec.id, "protein": p.spec.protein,
                 "task": "classification" if cls else "regression",
                 "examples": len(p.prepared.task.codes), "spec": _spec_json(p.spec), "data": p.prepared.sources,
                 "hyperparameters": [h.to_json() for h in p.trials],
                 "metric": "auc" if cls else "pearson"}
        entry["trials"] = _curves(results, index, i, len(p.trials), protocol.folds)
        if protocol.name == "deepbind":
            entry["choice"] = _choose_deepbind(entry["trials"], cls)
        else:
            entry["defaults_trials"] = p.defaults
            entry["choice"], entry["selection"] = _choose_dbtools(entry["trials"], p.defaults, cls, entry["metric"])
        entry["choice"]["hyperparameters"] = p.trials[entry["choice"]["trial"]].to_json()
        doc["proteins"].append(entry)
    return doc


def _spec_json(spec: ModelSpec) -> dict:
    d = asdict(spec)
    d["hyper"] = spec.hyper.to_json()
    return d


def _spec_from_json(d: dict) -> ModelSpec:
    d = dict(d)
    d["hyper"] = Hyper(**d["hyper"])
    d["fixed"] = tuple(d.get("fixed", ()))
    return ModelSpec(**d)


def final_models(doc: dict, device: torch.device, progress: Callable | None = None,
                 state_folder: str | Path | None = None, resume: bool = False,
                 stop: Callable[[], bool] | None = None) -> Bank:
    """Train each protein's final model from its chosen setting, all proteins in shared batched runs.

    A chosen random trial (every choice of the `deepbind` protocol): its setting on all the data
    `final_trials` times (seeds differ) up to the chosen step, the lowest training loss kept.
    The defaults kept (`dbtools` protocol): `dbtools train`'s candidates (`defaults_final`), the
    best on a held-out tenth of the rows kept, which is `dbtools train`'s model.

    Parameters
    ----------
    doc : dict
        A calibration document (`calibrate`, `read_json`); each protein's entry gains `final`.
    device, progress, state_folder, resume, stop :
        As for `calibrate`.

    Returns
    -------
    Bank
        One model per protein, in the document's order.
    """
    if doc.get("format") != CALIBRATION_FORMAT:
        raise DbtoolsError("not a dbtools calibration document (format field missing or wrong)")
    protocol = Protocol.from_json(doc["protocol"])
    data = DataOptions(**doc["data_options"])
    entries = doc["proteins"]
    specs = [_spec_from_json(e["spec"]) for e in entries]
    kept = [i for i, e in enumerate(entries) if e["choice"].get("candidate") == "defaults"]
    searched = [i for i in range(len(entries)) if i not in kept]
    prepared = [prepare(s, data, protocol.final_run() if i in kept else _all_rows(protocol), i)
                for i, s in enumerate(specs)]
    runs = Runs.open(state_folder, fingerprint({"final": entries, "sources": [p.sources for p in prepared]}),
                     resume, stop, progress)
    models = {}
    if searched:
        tasks, vals, until, owner = _final_tasks(entries, prepared, searched, protocol)
        steps = max(until)
        results = _train_runs(runs, "final", tasks, vals, steps, steps, protocol.batch_size, device, until)
        for i in searched:
            mine = [j for j, o in enumerate(owner) if o == i]
            models[i] = _final_model(entries[i], prepared[i], [tasks[j] for j in mine], [results[j] for j in mine],
                                     protocol)
    if kept:
        models |= _defaults_models(entries, prepared, kept, protocol, runs, device)
    return Bank([models[i] for i in range(len(entries))], description=f"calibrated and trained with dbtools {__version__}")


def defaults_final(p: Prepared, protocol: Protocol) -> tuple[list[Task], RunOptions]:
    """The final candidates of a protein whose defaults were kept, `p` read as `dbtools train`
    reads it: `train`'s candidates (each detector length x its restarts, the same seeds), and
    the run options that describe them."""
    run = protocol.final_run()
    hyper = defaults_candidates(p.spec, p.task.classification, protocol)[0]
    return [candidate_task(replace(p.task, hyper=hyper), m, r)
            for m in candidate_lengths(p.spec, run) for r in range(run.restarts)], run


def _defaults_models(entries: list[dict], prepared: list[Prepared], kept: list[int], protocol: Protocol, runs: Runs,
                     device: torch.device) -> dict[int, Model]:
    """The models of the proteins that kept the defaults (`kept`), trained and chosen on their
    held-out rows as `dbtools train` trains and chooses them."""
    tasks, vals, owner = [], [], []
    for i in kept:
        mine, run = defaults_final(prepared[i], protocol)
        tasks += mine
        vals += [prepared[i].validation] * len(mine)
        owner += [i] * len(mine)
    results = _train_runs(runs, "defaults", tasks, vals, run.steps, run.checkpoint_every, run.batch_size, device)
    models = {}
    for i in kept:
        entry, p = entries[i], prepared[i]
        mine = [j for j, o in enumerate(owner) if o == i]
        found = [candidate_model(p, tasks[j], *results[j], run) for j in mine]
        model = select_candidate(found, candidate_lengths(p.spec, run), run)
        chosen = model.info.provenance["selection"]
        entry["final"] = {"candidates": chosen["candidates"], "kept": chosen["chosen"]}
        model.info.source = f"calibrated and trained with dbtools {__version__}"
        model.info.provenance["calibration"] = _provenance(entry, protocol)
        models[i] = model
    return models


def _provenance(entry: dict, protocol: Protocol) -> dict:
    """What a final model records of its calibration."""
    out = {"trials": protocol.trials, "folds": protocol.folds, "chosen_trial": entry["choice"]["trial"],
           "cv_loss": entry["choice"]["cv_loss"], "cv_" + entry["metric"]: entry["choice"]["cv_metric"],
           "calibration_seed": protocol.seed}
    if protocol.name == "dbtools":
        out |= {"protocol": protocol.name, "candidate": entry["choice"]["candidate"], "cv_step": entry["choice"]["step"],
                "selection": {k: entry["selection"][k] for k in ("rule", "difference", "difference_se", "reason")}}
    return out


def _final_tasks(entries: list[dict], prepared: list[Prepared], proteins: list[int],
                 protocol: Protocol) -> tuple[list[Task], list, list[int], list[int]]:
    """Every final trial of the `proteins` (indices into `entries`): its task (the chosen
    hyperparameters on all the data), its evaluation set (all the data: the training loss), its
    step budget and its protein."""
    tasks, vals, until, owner = [], [], [], []
    for i in proteins:
        entry, p = entries[i], prepared[i]
        hyper = Hyper(**entry["choice"]["hyperparameters"])
        everything = (p.task.codes, p.task.targets, p.task.weights)  # evaluated at the end: the training loss
        for f in range(protocol.final_trials):
            tasks.append(Task(p.task.codes, p.task.targets, p.task.classification, hyper,
                              seed=_model_seed(protocol.seed, i, f, 0, 1), weights=p.task.weights,
                              origin=p.task.origin))
            vals.append(everything)
            until.append(int(entry["choice"]["step"]))
            owner.append(i)
    return tasks, vals, until, owner


def _final_model(entry: dict, p: Prepared, tasks: list[Task], results: list[tuple], protocol: Protocol) -> Model:
    """A protein's final trials (`tasks`, with their (run result, index)): the one with the lowest
    training loss as a bank model; `entry["final"]` records them all."""
    losses = [float(res.val_loss[-1, g]) for res, g in results]
    keep = int(np.argmin(losses))
    res, g = results[keep]
    hyper = tasks[keep].hyper
    entry["final"] = {"training_loss": losses, "seeds": [t.seed for t in tasks], "kept": keep}
    arch = Architecture(detector_len=hyper.detector_len, num_detectors=DETECTORS, reverse_complement=True,
                        avg_pooling=hyper.avg_pooling, num_hidden=hyper.num_hidden)
    info = ModelInfo(
        id=entry["id"], protein=entry["protein"], arch=arch, experiment=entry["task"],
        source=f"calibrated and trained with dbtools {__version__}", train_length=p.train_length,
        provenance={"data": p.sources, "seed": tasks[keep].seed, "hyperparameters": hyper.to_json(),
                    "steps": entry["choice"]["step"], "calibration": _provenance(entry, protocol),
                    "final_trials": entry["final"], "batch_size": protocol.batch_size,
                    "target_transform": p.transform, "metrics": {"train_loss": losses[keep]},
                    "dbtools_version": __version__})
    return Model(info, res.params.model_arrays(g))


def write_json(doc: dict, path: str | Path) -> None:
    """Write a calibration document atomically (NaN metrics become null)."""
    import json

    def clean(v):
        if isinstance(v, float) and not math.isfinite(v):
            return None
        if isinstance(v, dict):
            return {k: clean(x) for k, x in v.items()}
        if isinstance(v, list):
            return [clean(x) for x in v]
        return v

    with atomic_path(path) as tmp:
        tmp.write_text(json.dumps(clean(doc), indent=1) + "\n")


def read_json(path: str | Path) -> dict:
    import json

    try:
        doc = json.loads(Path(path).read_text())
    except OSError as e:
        raise DbtoolsError(f"{path}: cannot read calibration ({e.strerror or e})") from None
    except json.JSONDecodeError as e:
        raise DbtoolsError(f"{path}: not valid JSON (line {e.lineno}: {e.msg})") from None
    if not isinstance(doc, dict) or doc.get("format") != CALIBRATION_FORMAT:
        raise DbtoolsError(f"{path}: not a dbtools calibration file (written by `dbtools calibrate -o`)")
    return doc


def calibrate_to_files(specs: list[ModelSpec], data: DataOptions, protocol: Protocol, device: torch.device,
                       output: str | Path, bank_out: str | Path | None = None, plot_dir: str | Path | None = None,
                       progress: Callable | None = None, resume: bool = False,
                       stop: Callable[[], bool] | None = None, command: str = "") -> tuple[dict, Bank | None]:
    """`calibrate`, its document written to `output` (JSON); with `bank_out`, `final_models`
    written there; with `plot_dir`, one PNG per protein.

    The resumable state lives in `OUTPUT.ckpt/` until everything is written. Returns the
    document and the bank (None without `bank_out`).
    """
    check_writable(output)
    if bank_out is not None:
        check_writable(bank_out)
    folder = Path(f"{output}.ckpt")
    doc = calibrate(specs, data, protocol, device, progress, folder / "calibration", resume, stop, command)
    bank = None
    if bank_out is not None:
        bank = final_models(doc, device, progress, folder / "final", resume, stop)
        save_bank(bank, bank_out)
    write_json(doc, output)
    if plot_dir is not None:
        from dbtools.train.plots import plot_protein

        Path(plot_dir).mkdir(parents=True, exist_ok=True)
        for entry in doc["proteins"]:
            plot_protein(entry, Path(plot_dir) / f"{entry['id']}.calibration.png")
    Checkpoints(folder, "").clear()
    return doc, bank


def train_from_calibration(calibration: str | Path, output: str | Path, device: torch.device,
                           progress: Callable | None = None, resume: bool = False,
                           stop: Callable[[], bool] | None = None) -> Bank:
    """`dbtools train --calibration`: the final models of a calibration file, as a bank."""
    check_writable(output)
    doc = read_json(calibration)
    folder = Path(f"{output}.ckpt")
    bank = final_models(doc, device, progress, folder, resume, stop)
    save_bank(bank, output)
    Checkpoints(folder, "").clear()
    return bank
