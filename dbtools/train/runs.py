"""The batched runs of a command (`train`, `calibrate`): each saved at its checkpoints under a
name, resumed from there, stopped on request with `Interrupted`, its progress reported."""

from __future__ import annotations

import signal
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch

from dbtools.parallel import small_ops
from dbtools.train.checkpoints import Checkpoints
from dbtools.train.hyper import Task
from dbtools.train.interrupt import Interrupted
from dbtools.train.loop import GroupResult, Stopped, train_group


@dataclass
class Runs:
    """What every batched run of one command shares.

    Attributes
    ----------
    states : where each run's state is saved at its checkpoints (None: nowhere).
    resume : whether each run continues from its saved state.
    stop : asked between steps; once true, the run saves its state and raises `Interrupted`.
    progress : called as progress(label, step, steps, mean training loss or None).
    """

    states: Checkpoints | None = None
    resume: bool = False
    stop: Callable[[], bool] | None = None
    progress: Callable[[str, int, int, float | None], None] | None = None

    @classmethod
    def open(cls, folder: str | Path | None, fingerprint: str, resume: bool = False,
             stop: Callable[[], bool] | None = None, progress: Callable | None = None) -> Runs:
        """Runs whose states live in `folder` (None: states are not kept). With `resume` the states
        there must be of the run `fingerprint` describes; without, the folder starts empty."""
        states = None
        if folder is not None:
            states = Checkpoints(folder, fingerprint)
            if resume:
                states.check()
            else:
                states.clear()
        return cls(states, resume, stop, progress)

    def train(self, key: str, label: str, tasks: list[Task], validation: list | None, steps: int,
              checkpoint_every: int, device: torch.device, batch_size: int,
              until: list[int] | None = None) -> GroupResult:
        """`train_group` as the run named `key` (its saved state), reported as `label`.

        Parameters
        ----------
        key : the run's name among the command's saved states.
        label : how progress and an interruption name the run.
        tasks, validation, steps, checkpoint_every, device, batch_size, until : as `train_group`'s.

        Returns
        -------
        The `GroupResult`. Raises `Interrupted` (exit code 128 + the signal) when `stop` stopped it.
        """
        states, progress = self.states, self.progress
        try:
            with small_ops(device):  # many small operations: one intra-op thread each
                return train_group(
                    tasks, validation, steps, checkpoint_every, device, batch_size,
                    progress=(lambda step, loss: progress(label, step, steps, loss)) if progress else None,
                    resume=states.load(key) if states is not None and self.resume else None,
                    save=(lambda state: states.save(key, state)) if states is not None else None,
                    stop=self.stop, until=until)
        except Stopped as e:
            where = f"; state saved in {states.folder}: rerun the same command with --resume" if states else ""
            raise Interrupted(f"interrupted after step {e.step} of {steps} ({label}){where}",
                              getattr(self.stop, "signum", None) or signal.SIGINT) from None
