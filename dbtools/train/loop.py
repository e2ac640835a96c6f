"""Training many independent DeepBind models at once.

The unit of work is a group of G models that share an architecture (detector length,
hidden layer, pooling); each model has its own data, hyperparameters, random stream and
optimizer state, and all of them advance in one batched forward/backward pass (tables and
matrix products batched over the model axis). The loss is the sum of the models' own losses, so each model's gradient
is exactly what it would get alone: no cross-talk. The model itself is in `model.py`.

As the original DeepBind, the L1 penalty starts after the first L1_START steps (until then
weights grow from their tiny initial scales unopposed).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from dbtools.train.data import GroupData
from dbtools.train.graphs import StepRunner
from dbtools.train.hyper import DETECTORS, Task
from dbtools.train.model import GroupParams, losses, pick_models
from dbtools.train.rng import uniform

L1_START = 100  # the original's weight_decay_start: no L1 penalty in the first 100 steps


@dataclass
class GroupResult:
    """Trained group: parameters at each model's best checkpoint and the validation curves."""

    params: GroupParams
    best_step: list[int]
    checkpoints: list[int]
    val_loss: np.ndarray  # [checkpoints, G]
    val_metric: np.ndarray  # [checkpoints, G] AUC (classification) or Pearson (regression)
    train_loss: np.ndarray  # [checkpoints, G] mean training loss since the last checkpoint


# floats of per-position activations in one evaluation batch (bounds memory for large groups)
EVAL_BUDGET = 1 << 25


def evaluate_group(params: GroupParams, data: GroupData, classification: torch.Tensor,
                   batch_size: int = 256) -> tuple[np.ndarray, list[np.ndarray]]:
    """Mean loss per model [G] and each model's scores on its whole set (no dropout)."""
    G = params.G
    n = int(data.sizes.max())
    positions = data.codes.shape[1] - params.m + 1
    batch_size = max(1, min(batch_size, EVAL_BUDGET // (G * positions * 2 * DETECTORS * (2 if params.avg else 1))))
    scores = torch.empty(G, n, device=data.codes.device)
    with torch.no_grad():
        for c in range(0, n, batch_size):
            rows = torch.arange(c, min(n, c + batch_size), device=data.codes.device)[None, :].expand(G, -1)
            rows = torch.minimum(rows, data.sizes[:, None] - 1)
            codes, pos, _ = data.batch(rows)
            scores[:, c:c + rows.shape[1]] = params.forward(codes, pos, ragged=data.ragged)
    out, loss = [], np.empty(G)
    for g in range(G):
        k, own = int(data.sizes[g]), data.rows(g)
        s, y, w = scores[g, :k], data.targets[own], data.weights[own]
        loss[g] = float(losses(s[None], y[None], classification[g:g + 1], w[None])[0])
        out.append(s.cpu().numpy())
    return loss, out


class Stopped(Exception):
    """Training stopped on request at `step`, after its state was handed to `save`."""

    def __init__(self, step: int):
        super().__init__(f"stopped after step {step}")
        self.step = step



def _state(step, params, best, running, since, best_score, best_step, checkpoints, vl, vm, tl) -> dict:
    """Everything needed to continue a group's training exactly (tensors on the CPU)."""
    def cpu(v: torch.Tensor) -> torch.Tensor:
        return v.detach().to("cpu", copy=True).contiguous()

    tensors = {f"param.{k}": cpu(v) for k, v in params.params.items()}
    tensors |= {f"velocity.{k}": cpu(v) for k, v in params.velocity.items()}
    tensors |= {f"best.{k}": cpu(v) for k, v in best.items()}
    tensors["running"] = cpu(running)
    return {"tensors": tensors,
            "step": step, "since": since, "best_score": [float(x) for x in best_score],
            "best_step": list(best_step), "checkpoints": list(checkpoints),
            "val_loss": [list(map(float, x)) for x in vl], "val_metric": [list(map(float, x)) for x in vm],
            "train_loss": [list(map(float, x)) for x in tl]}


def train_group(tasks: list[Task], validation: list[tuple[list[np.ndarray], np.ndarray]] | None,
                steps: int, checkpoint_every: int, device: torch.device, batch_size: int = 64,
                progress=None, resume: dict | None = None, save=None, stop=None,
                until: list[int] | None = None, graphs: bool | None = None) -> GroupResult:
    """Train the tasks (one architecture) together; keep each model's best checkpoint.

    With validation sets, the best checkpoint has the lowest validation loss (classification)
    or the highest Pearson correlation (regression); without, the last one is kept.

    Resumable: at every checkpoint `save(state)` receives the full training state; when
    `stop()` turns true, the state after the last finished step is saved and `Stopped` is
    raised. Given that state as `resume`, training continues to exactly the result of an
    uninterrupted run (the random streams are functions of the step number).

    `until` [G] gives each model its own step budget: a model stops updating after its own
    number of steps (used to train final models of different lengths in one group).

    `graphs` (default: on CUDA) replays each step as a captured CUDA graph (`StepRunner`):
    the same kernels on the same tensors, launched at once instead of one by one.
    """
    from dbtools.metrics import auc, pearson

    params = GroupParams(tasks, device)
    m = params.m
    data = GroupData([(t.codes, t.targets, t.weights, t.origin) for t in tasks], m, device)
    val = GroupData(validation, m, device) if validation else None
    cls = torch.tensor([t.classification for t in tasks], device=device)
    seeds = torch.tensor([t.seed for t in tasks], dtype=torch.int64, device=device)
    nf = DETECTORS * (2 if params.avg else 1)
    p_drop = params.dropout[:, None]
    best_score = np.full(params.G, -np.inf)
    best_step = [steps] * params.G
    best = params.snapshot()
    checkpoints, vl, vm, tl = [], [], [], []
    running = torch.zeros(params.G, device=device)
    since, first = 0, 1
    if resume is not None:
        t = resume["tensors"]
        with torch.no_grad():
            for k in params.params:
                params.params[k].copy_(t[f"param.{k}"])
                params.velocity[k].copy_(t[f"velocity.{k}"])
        best = {k: t[f"best.{k}"].to(device) for k in params.params}
        running = t["running"].to(device)
        since, first = resume["since"], resume["step"] + 1
        best_score = np.array(resume["best_score"], dtype=np.float64)
        best_step = list(resume["best_step"])
        checkpoints = list(resume["checkpoints"])
        vl, vm, tl = ([np.array(x) for x in resume[k]] for k in ("val_loss", "val_metric", "train_loss"))

    def state(step):
        return _state(step, params, best, running, since, best_score, best_step, checkpoints, vl, vm, tl)

    budgets = torch.tensor(until, device=device) if until is not None else None

    def one_step(step: int | torch.Tensor, penalize: bool) -> None:
        rows = data.sample(uniform(seeds, 1, step, batch_size))
        keep = (uniform(seeds, 2, step, batch_size * nf) >= p_drop).float() / (1 - p_drop)
        codes, pos, y = data.batch(rows)
        scores = params.forward(codes, pos, keep.reshape(params.G, batch_size, nf), ragged=data.ragged)
        per_model = losses(scores, y, cls)
        (per_model.sum() + (params.penalty() if penalize else 0)).backward()
        params.step(None if budgets is None else budgets >= step)
        running.add_(per_model.detach())

    use_graphs = device.type == "cuda" if graphs is None else graphs
    runner = StepRunner(one_step, [*params.params.values(), *params.velocity.values(), running],
                        device) if use_graphs else None
    for step in range(first, steps + 1):
        if stop is not None and stop():
            if save is not None:
                save(state(step - 1))
            raise Stopped(step - 1)
        if runner is not None:
            runner(step, step > L1_START)
        else:
            one_step(step, step > L1_START)
        since += 1
        if step % checkpoint_every == 0 or step == steps:
            checkpoints.append(step)
            tl.append((running / since).cpu().numpy())
            running.zero_()
            since = 0
            if val is not None:
                loss, scores_v = evaluate_group(params, val, cls)
                metric = np.array([
                    auc(val.targets[val.rows(g)].cpu().numpy(), scores_v[g]) if tasks[g].classification
                    else pearson(val.targets[val.rows(g)].cpu().numpy(), scores_v[g])
                    for g in range(params.G)])
                vl.append(loss)
                vm.append(metric)
                score = np.where(cls.cpu().numpy(), -loss, np.nan_to_num(metric, nan=-np.inf))
                better = score > best_score
                if better.any():
                    best = pick_models(torch.from_numpy(better).to(device), params.snapshot(), best)
                    best_score = np.where(better, score, best_score)
                    best_step = [step if b else s for b, s in zip(better, best_step)]
            if save is not None:
                save(state(step))
        if progress:
            progress(step, float(np.mean(tl[-1])) if tl else None)
    if val is not None:
        params.load(best)
    empty = np.zeros((0, params.G))
    return GroupResult(params, best_step, checkpoints, np.array(vl) if vl else empty,
                       np.array(vm) if vm else empty, np.array(tl))
