"""Binding sites from hit windows: the overlapping hit windows of one model and strand are one site.

At a step smaller than the window, one site is hit by many overlapping windows; a browser and
a peak counter want it once. Windows [s, s + W) of one model whose strand won alike are chained
while each next one starts before the previous one ends (s' < s + W); the chain is one site,
reported as its best window (highest score; the first on ties): its start, width, score and
p-value. Windows come a chunk at a time; the last open chain of each model and strand is
carried into the next chunk, so a site across a chunk boundary is still one site.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass
class Sites:
    """Sites (or hit windows) as columns: window start, width, model, strand (True: minus), score,
    log10 p-value (NaN where none)."""

    start: np.ndarray
    width: np.ndarray
    model: np.ndarray
    minus: np.ndarray
    score: np.ndarray
    log10p: np.ndarray

    @staticmethod
    def empty() -> Sites:
        return Sites(np.zeros(0, np.int64), np.zeros(0, np.int64), np.zeros(0, np.int64), np.zeros(0, bool),
                     np.zeros(0, np.float32), np.zeros(0, np.float32))

    def __len__(self) -> int:
        return len(self.start)

    def take(self, idx) -> Sites:
        return Sites(*(a[idx] for a in self._columns()))

    def _columns(self):
        return self.start, self.width, self.model, self.minus, self.score, self.log10p

    @staticmethod
    def concat(parts: list[Sites]) -> Sites:
        parts = [p for p in parts if len(p)]
        if not parts:
            return Sites.empty()
        return Sites(*(np.concatenate(cols) for cols in zip(*(p._columns() for p in parts))))

    def sorted(self) -> Sites:
        """By start, then model, then strand: the order of a sorted BED."""
        return self.take(np.lexsort((self.minus, self.model, self.start)))


def hit_windows(first: int, step: int, width: int, models: list[int], values: np.ndarray, rc_won: np.ndarray,
                keep: np.ndarray, log10p: np.ndarray | None = None) -> Sites:
    """The windows where `keep` [n, len(models)] is True; window k starts at first + k*step."""
    rows, cols = np.nonzero(keep)
    return Sites(start=first + rows.astype(np.int64) * step, width=np.full(len(rows), width, np.int64),
                 model=np.asarray(models, dtype=np.int64)[cols], minus=np.asarray(rc_won[rows, cols], dtype=bool),
                 score=np.asarray(values[rows, cols], dtype=np.float32),
                 log10p=(np.full(len(rows), np.nan, np.float32) if log10p is None
                         else np.asarray(log10p[rows, cols], dtype=np.float32)))


class SiteMerger:
    """Hit windows in, sites out, one contig at a time (`add` per chunk, `finish` at its end)."""

    def __init__(self):
        self._carry = Sites.empty()  # per model and strand: the open chain's best window
        self._carry_last = np.zeros(0, np.int64)  # ... and the start of its last window

    def add(self, hits: Sites) -> Sites:
        """Windows of the next chunk (starts after every window given before, per model); the
        sites now complete."""
        if not len(hits) and not len(self._carry):
            return Sites.empty()
        both = Sites.concat([self._carry, hits])
        last = np.concatenate([self._carry_last, hits.start])
        key = both.model * 2 + both.minus
        order = np.lexsort((last, key))
        both, last, key = both.take(order), last[order], key[order]
        new = np.ones(len(both), bool)
        new[1:] = (key[1:] != key[:-1]) | (last[1:] >= last[:-1] + both.width[:-1])
        chain = np.cumsum(new) - 1
        # the best window of each chain: highest score, then the earliest start
        pick = np.lexsort((both.start, -both.score, chain))
        first_of = np.ones(len(pick), bool)
        first_of[1:] = chain[pick][1:] != chain[pick][:-1]
        best = both.take(pick[first_of])  # one per chain, in chain order
        chain_last = last[np.r_[np.flatnonzero(new)[1:] - 1, len(last) - 1]]
        chain_key = key[new]
        open_chain = np.ones(len(chain_key), bool)  # the last chain of each key stays open
        open_chain[:-1] = chain_key[:-1] != chain_key[1:]
        self._carry, self._carry_last = best.take(open_chain), chain_last[open_chain]
        return best.take(~open_chain)

    @property
    def open(self) -> Sites:
        """The open chains' best windows (one per model and strand)."""
        return self._carry

    def finish(self) -> Sites:
        """The sites still open at the end of the contig."""
        done, self._carry, self._carry_last = self._carry, Sites.empty(), np.zeros(0, np.int64)
        return done
