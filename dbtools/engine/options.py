"""Scoring options shared by every command that scores, and the rules they imply."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class ScoreOptions:
    """Scoring options shared by score, scan, mutmap and vareffect (the original scorer's flags)."""

    window_size: int | None = None  # None: int(1.5 * m) per model
    average: bool = False
    class_prob: bool = False

    def scoring_window(self, m: int, length: int) -> int:
        """The scoring window of a model with detectors of length m on a sequence of `length`
        bases: `window_size`, or int(1.5 m) as the original scorer, at most the sequence."""
        return min(self.window_size or int(1.5 * m), length)
