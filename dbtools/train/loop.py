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
from dbtools.train.model import GroupParams, losses
from dbtools.train.rng import uniform
from dbtools.train.state import TrainState

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
    """Each model's loss and scores on its whole set (no dropout).

    Parameters
    ----------
    params : GroupParams
    data : GroupData
        One set per model.
    classification : torch.Tensor, shape (G,)
        Which models are classifiers (logistic loss; squared error otherwise).
    batch_size : int
        Rows per model and batch, at most (lowered to bound memory).

    Returns
    -------
    loss : np.ndarray, shape (G,)
        Weighted mean loss.
    scores : list of np.ndarray
        Model g's scores, shape (rows of its set,).
    """
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


def train_group(tasks: list[Task], validation: list[tuple[list[np.ndarray], np.ndarray]] | None,
                steps: int, checkpoint_every: int, device: torch.device, batch_size: int = 64,
                progress=None, resume: dict | None = None, save=None, stop=None,
                until: list[int] | None = None, graphs: bool | None = None) -> GroupResult:
    """Train the tasks (one architecture) together; keep each model's best checkpoint.

    With validation sets, the best checkpoint has the lowest validation loss (classification)
    or the highest Pearson correlation (regression); without, the last one is kept.

    Parameters
    ----------
    tasks : list of Task
        G models sharing `group_key`.
    validation : list, optional
        Per model (codes, targets) or (codes, targets, weights); None: no validation.
    steps, checkpoint_every, batch_size : int
        SGD steps, steps between checkpoints, rows per model and step.
    device : torch.device
    progress : callable, optional
        progress(step, mean training loss at the last checkpoint or None), after every step.
    resume : dict, optional
        A state `save` received: training continues to exactly the result of an uninterrupted
        run (the random streams are functions of the step number).
    save : callable, optional
        save(state) at every checkpoint, and when `stop` stops the run.
    stop : callable, optional
        Asked before every step; once true, the state after the last finished step is saved
        and `Stopped` is raised.
    until : list of int, optional
        Each model's own step budget [G]: a model stops updating after it (final models of
        different lengths in one group).
    graphs : bool, optional
        Replay each step as a captured CUDA graph (`StepRunner`; default: on CUDA): the same
        kernels on the same tensors, launched at once instead of one by one.

    Returns
    -------
    GroupResult
        The parameters at each model's best checkpoint and the curves [checkpoints, G].
    """
    params = GroupParams(tasks, device)
    data = GroupData([(t.codes, t.targets, t.weights, t.origin) for t in tasks], params.m, device)
    val = GroupData(validation, params.m, device) if validation else None
    cls = torch.tensor([t.classification for t in tasks], device=device)
    state = TrainState.start(params, steps) if resume is None else TrainState.from_checkpoint(params, resume)
    one_step = _step_function(tasks, params, data, cls, state.running, batch_size, until)
    use_graphs = device.type == "cuda" if graphs is None else graphs
    if use_graphs:
        one_step = StepRunner(one_step, [*params.params.values(), *params.velocity.values(), state.running], device)
    for step in range(state.step + 1, steps + 1):
        if stop is not None and stop():
            if save is not None:
                save(state.to_checkpoint())
            raise Stopped(state.step)
        one_step(step, step > L1_START)
        state.step, state.since = step, state.since + 1
        if step % checkpoint_every == 0 or step == steps:
            state.close_interval()
            if val is not None:
                loss, metric = _validate(tasks, params, val, cls)
                state.val_loss.append(loss)
                state.val_metric.append(metric)
                state.keep_better(np.where(cls.cpu().numpy(), -loss, np.nan_to_num(metric, nan=-np.inf)))
            if save is not None:
                save(state.to_checkpoint())
        if progress:
            progress(step, float(np.mean(state.train_loss[-1])) if state.train_loss else None)
    if val is not None:
        params.load(state.best)
    empty = np.zeros((0, params.G))
    return GroupResult(params, state.best_step, state.checkpoints,
                       np.array(state.val_loss) if state.val_loss else empty,
                       np.array(state.val_metric) if state.val_metric else empty, np.array(state.train_loss))


def _step_function(tasks: list[Task], params: GroupParams, data: GroupData, classification: torch.Tensor,
                   running: torch.Tensor, batch_size: int, until: list[int] | None):
    """One SGD step of every model, `(step, penalize) -> None`: each model's batch and dropout
    mask drawn for `step` from its own stream, its loss added to `running` [G]; with `until`,
    models past their own budget keep their weights."""
    device = params.device
    seeds = torch.tensor([t.seed for t in tasks], dtype=torch.int64, device=device)
    nf = DETECTORS * (2 if params.avg else 1)
    p_drop = params.dropout[:, None]
    budgets = torch.tensor(until, device=device) if until is not None else None

    def one_step(step: int | torch.Tensor, penalize: bool) -> None:
        rows = data.sample(uniform(seeds, 1, step, batch_size))
        keep = (uniform(seeds, 2, step, batch_size * nf) >= p_drop).float() / (1 - p_drop)
        codes, pos, y = data.batch(rows)
        scores = params.forward(codes, pos, keep.reshape(params.G, batch_size, nf), ragged=data.ragged)
        per_model = losses(scores, y, classification)
        (per_model.sum() + (params.penalty() if penalize else 0)).backward()
        params.step(None if budgets is None else budgets >= step)
        running.add_(per_model.detach())

    return one_step


def _validate(tasks: list[Task], params: GroupParams, val: GroupData,
              classification: torch.Tensor) -> tuple[np.ndarray, np.ndarray]:
    """Each model's validation loss [G] and AUC (classification) or Pearson correlation [G]."""
    from dbtools.metrics import auc, pearson

    loss, scores = evaluate_group(params, val, classification)
    metric = np.array([(auc if tasks[g].classification else pearson)(val.targets[val.rows(g)].cpu().numpy(), scores[g])
                       for g in range(params.G)])
    return loss, metric
