"""What a group's training carries from step to step, and its resumable checkpoint."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import torch

from dbtools.train.model import GroupParams, pick_models


@dataclass
class TrainState:
    """Everything needed to continue a group's training exactly: the live parameters and their
    velocities (`params`) and what the loop keeps beside them.

    Attributes
    ----------
    params : the group's parameters and optimizer state, updated in place by every step.
    best : each model's parameters at its best checkpoint so far, tensors [G, ...].
    running : [G] training loss summed over the `since` steps after the last checkpoint.
    best_score : [G] the score of each model's best checkpoint (higher is better).
    best_step : [G] the step of each model's best checkpoint.
    step : the last finished step (0 before the first).
    checkpoints : the steps of the checkpoints so far.
    val_loss, val_metric, train_loss : one [G] array per checkpoint.
    """

    params: GroupParams
    best: dict[str, torch.Tensor]
    running: torch.Tensor
    best_score: np.ndarray
    best_step: list[int]
    step: int = 0
    since: int = 0
    checkpoints: list[int] = field(default_factory=list)
    val_loss: list[np.ndarray] = field(default_factory=list)
    val_metric: list[np.ndarray] = field(default_factory=list)
    train_loss: list[np.ndarray] = field(default_factory=list)

    @classmethod
    def start(cls, params: GroupParams, steps: int) -> TrainState:
        """The state before the first step: the initial weights count as every model's best."""
        return cls(params, params.snapshot(), torch.zeros(params.G, device=params.device),
                   np.full(params.G, -np.inf), [steps] * params.G)

    @classmethod
    def from_checkpoint(cls, params: GroupParams, saved: dict) -> TrainState:
        """The state `to_checkpoint` wrote; `params` takes its weights and velocities."""
        t = saved["tensors"]
        with torch.no_grad():
            for k in params.params:
                params.params[k].copy_(t[f"param.{k}"])
                params.velocity[k].copy_(t[f"velocity.{k}"])
        return cls(params, {k: t[f"best.{k}"].to(params.device) for k in params.params},
                   t["running"].to(params.device), np.array(saved["best_score"], dtype=np.float64),
                   list(saved["best_step"]), saved["step"], saved["since"], list(saved["checkpoints"]),
                   *([np.array(x) for x in saved[k]] for k in ("val_loss", "val_metric", "train_loss")))

    def to_checkpoint(self) -> dict:
        """The state as plain values and CPU tensors (`Checkpoints.save` writes it)."""
        def cpu(v: torch.Tensor) -> torch.Tensor:
            return v.detach().to("cpu", copy=True).contiguous()

        tensors = {f"param.{k}": cpu(v) for k, v in self.params.params.items()}
        tensors |= {f"velocity.{k}": cpu(v) for k, v in self.params.velocity.items()}
        tensors |= {f"best.{k}": cpu(v) for k, v in self.best.items()}
        tensors["running"] = cpu(self.running)
        return {"tensors": tensors,
                "step": self.step, "since": self.since, "best_score": [float(x) for x in self.best_score],
                "best_step": list(self.best_step), "checkpoints": list(self.checkpoints),
                "val_loss": [list(map(float, x)) for x in self.val_loss],
                "val_metric": [list(map(float, x)) for x in self.val_metric],
                "train_loss": [list(map(float, x)) for x in self.train_loss]}

    def close_interval(self) -> None:
        """At a checkpoint: record the mean training loss since the last one and start anew."""
        self.checkpoints.append(self.step)
        self.train_loss.append((self.running / self.since).cpu().numpy())
        self.running.zero_()
        self.since = 0

    def keep_better(self, score: np.ndarray) -> None:
        """Take the current parameters as best for the models whose `score` [G] beats their best."""
        better = score > self.best_score
        if better.any():
            self.best = pick_models(torch.from_numpy(better).to(self.params.device), self.params.snapshot(), self.best)
            self.best_score = np.where(better, score, self.best_score)
            self.best_step = [self.step if b else s for b, s in zip(better, self.best_step)]
