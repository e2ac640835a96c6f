"""What a model to train is: its hyperparameters (`Hyper`), its data and seed (`Task`), and
which models can share a batched group (`group_key`)."""

from __future__ import annotations

from dataclasses import asdict, dataclass, replace

import numpy as np

DETECTORS = 16
DEFAULT_HIDDEN = 32
# the learning rate of a model whose hyperparameters leave it None
CLASSIFICATION_RATE, REGRESSION_RATE = 0.02, 0.005


@dataclass(frozen=True)
class Hyper:
    """Hyperparameters of one model (the names of the DeepBind calibration)."""

    # defaults: the best settings measured on ENCODE and PBM data (docs/development.md);
    # None: CLASSIFICATION_RATE or REGRESSION_RATE, by task
    learning_rate: float | None = None
    momentum: float = 0.95
    init_conv: float = 1e-3
    init_fc: float = 1e-2
    l1_conv: float = 1e-6
    l1_fc: float = 1e-6
    # the output layer of a model with a hidden layer has its own draws, as in the original's M2
    # (None: the same as the hidden layer's init_fc / l1_fc)
    init_out: float | None = None
    l1_out: float | None = None
    dropout: float = 0.5
    num_hidden: int = 0
    detector_len: int = 16
    avg_pooling: bool = False

    def to_json(self) -> dict:
        return asdict(self)

    @property
    def output_init(self) -> float:
        """Init scale of a hidden model's output layer."""
        return self.init_fc if self.init_out is None else self.init_out

    @property
    def output_l1(self) -> float:
        """L1 of a hidden model's output layer."""
        return self.l1_fc if self.l1_out is None else self.l1_out

    def for_task(self, classification: bool) -> Hyper:
        """These hyperparameters with the task's default learning rate filled in."""
        if self.learning_rate is not None:
            return self
        return replace(self, learning_rate=CLASSIFICATION_RATE if classification else REGRESSION_RATE)


@dataclass
class Task:
    """One model to train: its data (codes, targets), kind of task, hyperparameters and seed."""

    codes: list[np.ndarray]
    targets: np.ndarray
    classification: bool
    hyper: Hyper
    seed: int
    reverse_complement: bool = True
    weights: np.ndarray | None = None  # rows are drawn in proportion to these (None: uniformly)
    origin: np.ndarray | None = None  # [rows] the row each was made from: batches pair peaks with their shuffles


def group_key(h: Hyper) -> tuple[int, bool, int]:
    """Models with equal keys train in one batched group: same detector length and pooling;
    models without a hidden layer join the group of their hidden size (32 by default)."""
    return h.detector_len, h.avg_pooling, h.num_hidden or DEFAULT_HIDDEN
