"""A model's background score distribution as the bank stores it (what `dbtools background` writes).

A background is a table of scores at known upper-tail probabilities (the empirical quantiles of
the model's scores on background windows) plus a tail fitted beyond the last one; the scoring
options it was computed under are its key. `dbtools.significance` computes and reads it.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from dbtools.errors import DbtoolsError

# the settings that decide what a score means: a background answers only for scores made this way
KEY_FIELDS = ("window", "window_size", "average")
TAIL_FIELDS = ("threshold", "fraction", "shape", "scale", "floor", "fit_error")


@dataclass(frozen=True)
class BackgroundKey:
    """The scoring a background describes: genomic window W and the scorer's window/average."""

    window: int
    window_size: int | None = None
    average: bool = False

    def describe(self) -> str:
        ws = "default" if self.window_size is None else str(self.window_size)
        return f"window {self.window} bp, --window-size {ws}, --average {'on' if self.average else 'off'}"


@dataclass
class Background:
    """One model's background under one scoring (`key`).

    scores : [K] float32, ascending; log10_survival : [K] float32, descending from 0: the
    fraction of background windows scoring at least scores[k] is 10**log10_survival[k].
    tail : the generalized Pareto tail above the last quantile (TAIL_FIELDS); settings :
    how the windows were drawn (genome name and checksum, windows, seed, ...), JSON values.
    """

    key: BackgroundKey
    scores: np.ndarray
    log10_survival: np.ndarray
    tail: dict
    settings: dict

    def to_json(self) -> dict:
        return {"key": {f: getattr(self.key, f) for f in KEY_FIELDS}, "tail": dict(self.tail),
                "settings": dict(self.settings)}

    @classmethod
    def from_json(cls, doc: dict, scores: np.ndarray, log10_survival: np.ndarray) -> "Background":
        key = BackgroundKey(**{f: doc["key"][f] for f in KEY_FIELDS})
        return cls(key, scores, log10_survival, dict(doc["tail"]), dict(doc["settings"]))

    def validate(self, where: str) -> None:
        """Shapes, order and finiteness: a damaged table is an error, never a wrong p-value."""
        s, q = self.scores, self.log10_survival
        if s.ndim != 1 or s.shape != q.shape or len(s) < 2:
            raise DbtoolsError(f"{where}: background table of shape {s.shape} / {q.shape}, expected two equal [K>=2]")
        if not (np.all(np.isfinite(s)) and np.all(np.isfinite(q))):
            raise DbtoolsError(f"{where}: background table has non-finite values")
        if np.any(np.diff(s) < 0) or np.any(np.diff(q) > 0) or q[0] != 0 or np.any(q > 0):
            raise DbtoolsError(f"{where}: background table is not monotone (scores up, survival down from 1)")
        missing = [f for f in TAIL_FIELDS if f not in self.tail]
        if missing:
            raise DbtoolsError(f"{where}: background tail lacks {', '.join(missing)}")
        values = [self.tail[f] for f in TAIL_FIELDS]
        if not all(isinstance(v, (int, float)) and np.isfinite(v) for v in values):
            raise DbtoolsError(f"{where}: background tail has non-numeric or non-finite values")
        if not (0 < self.tail["floor"] <= self.tail["fraction"] <= 1 and self.tail["scale"] > 0):
            raise DbtoolsError(f"{where}: background tail out of range (need 0 < floor <= fraction <= 1, scale > 0)")


def find_background(backgrounds: list[Background], key: BackgroundKey) -> Background | None:
    """The background computed under `key`, or None."""
    for b in backgrounds:
        if b.key == key:
            return b
    return None


def replace_background(backgrounds: list[Background], new: Background) -> list[Background]:
    """`backgrounds` with the one under new.key replaced by `new` (or `new` added)."""
    return [b for b in backgrounds if b.key != new.key] + [new]
