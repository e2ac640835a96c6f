"""BED hits of a scan, one contig at a time: windows selected by score or p-value, merged into
sites (dbtools/scan/sites.py) or kept one row a window, written sorted by start.

Rows (BED6+2): contig, start, end, PROTEIN:ID, a 0-1000 score from the p-value, the strand that
won, the window's score and its p-value (-1 where the model has no background). Rows are
released in start order as soon as no later window can come before them, so memory holds
the open sites, not the contig.
"""

from __future__ import annotations

import enum
import re

import numpy as np
import torch

from dbtools.bank.store import Bank
from dbtools.io.tracks import BED_COLUMNS, bed_sites_text
from dbtools.scan.sites import SiteMerger, Sites, hit_windows
from dbtools.significance.tables import Tables, candidate_cutoffs, log10_pvalues

HEADER = "#" + "\t".join(BED_COLUMNS) + "\n"


class HitsMerge(enum.StrEnum):
    """--hits-merge: overlapping hit windows of a model and strand as one site, or one row each."""

    SITE = "site"
    NONE = "none"


def hit_names(bank: Bank) -> np.ndarray:
    """The BED name of each model's hits: PROTEIN:ID (whitespace as '_')."""
    return np.array([re.sub(r"\s+", "_", f"{m.info.protein}:{m.info.id}" if m.info.protein else m.info.id)
                     for m in bank.models])


class ContigHits:
    """The hits of one contig: `add` per block of windows, `chunk_done` after each chunk (the
    rows that can be written now), `finish` at the contig's end (the rest)."""

    def __init__(self, chrom: str, names: np.ndarray, *, threshold: float | None, pvalue: float | None,
                 tables: Tables | None, merge: str = HitsMerge.SITE):
        self.chrom, self.names, self.tables, self.merge = chrom, names, tables, merge
        self.threshold, self.pvalue = threshold, pvalue
        if pvalue is not None:
            self._cutoffs = candidate_cutoffs(tables, float(np.log10(pvalue)))
        self._merger = SiteMerger() if merge == HitsMerge.SITE else None
        self._ready: list[Sites] = []  # complete rows not yet written
        self._last_start = -1  # the largest window start seen

    def add(self, window: int, first: int, step: int, models: list[int], values: np.ndarray,
            rc_won: np.ndarray) -> None:
        """Windows first, first + step, ... (values, rc_won [n, len(models)]) of one window class."""
        log10p = None
        with np.errstate(invalid="ignore"):
            if self.pvalue is None:
                keep = values >= self.threshold
            else:  # the candidates: only they can reach the p-value
                keep = values > self._cutoffs[np.asarray(models)]
            if self.tables is not None and keep.any():
                # p-values of the rows and models with a candidate only: the cost follows the hits
                r, c = np.flatnonzero(keep.any(axis=1)), np.flatnonzero(keep.any(axis=0))
                log10p = np.full(values.shape, np.nan, np.float32)
                sub = np.ascontiguousarray(values[np.ix_(r, c)])
                rows = self.tables.rows(np.asarray(models)[c])
                log10p[np.ix_(r, c)] = log10_pvalues(torch.from_numpy(sub), rows).numpy()
                if self.pvalue is not None:
                    keep &= log10p <= np.float32(np.log10(self.pvalue))
        hits = hit_windows(first, step, window, models, values, rc_won, keep, log10p)
        if len(values):
            self._last_start = max(self._last_start, first + (len(values) - 1) * step)
        self._ready.append(self._merger.add(hits) if self._merger is not None else hits)

    def chunk_done(self) -> str:
        """Rows no later window can precede: before the open sites and after every window so far."""
        ready = Sites.concat(self._ready)
        cutoff = self._last_start + 1
        if self._merger is not None and len(self._merger.open):
            cutoff = min(cutoff, int(self._merger.open.start.min()))
        now = ready.start < cutoff
        self._ready = [ready.take(~now)]
        return self._text(ready.take(now))

    def finish(self) -> str:
        rest = [*self._ready, self._merger.finish()] if self._merger is not None else self._ready
        self._ready = []
        return self._text(Sites.concat(rest))

    def _text(self, sites: Sites) -> str:
        s = sites.sorted()
        return bed_sites_text(self.chrom, s.start, s.start + s.width, self.names[s.model], s.minus, s.score, s.log10p)
