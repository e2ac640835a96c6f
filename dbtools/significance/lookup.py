"""The stored backgrounds of a bank's models, stacked for p-value lookup under one scoring; a
model without a matching background is an error naming it and the command that computes one."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from dbtools.bank.backgrounds import BackgroundKey, find_background
from dbtools.bank.store import Bank
from dbtools.engine.options import ScoreOptions
from dbtools.errors import DbtoolsError, UsageError
from dbtools.significance.tables import Tables


def check_pvalue(p: float, option: str = "--pvalue") -> float:
    """A p-value threshold must lie in (0, 1]."""
    if not (0 < p <= 1):
        raise UsageError(f"{option} {p}: a p-value must be in (0, 1]")
    return p


def background_tables(bank: Bank, options: ScoreOptions, window: int | None = None, where: str = "") -> Tables:
    """Every model's background under the scoring `options` and genomic `window` (None: each
    model's own), stacked (tables of unequal length padded with their last point)."""
    rows = []
    for m in bank.models:
        key = BackgroundKey(m.info.genomic_window(window), options.window_size, options.average)
        bg = find_background(m.backgrounds, key)
        if bg is None:
            rows.append(_missing(m, key, where))
        rows.append(bg)
    K = max(len(b.scores) for b in rows)

    def padded(a: np.ndarray) -> np.ndarray:
        return np.concatenate([a, np.full(K - len(a), a[-1], dtype=a.dtype)])

    def tail(field: str) -> np.ndarray:
        return np.array([b.tail[field] for b in rows], dtype=np.float64)

    return Tables(scores=np.stack([padded(b.scores) for b in rows]).astype(np.float32),
                  log10_survival=np.stack([padded(b.log10_survival) for b in rows]).astype(np.float32),
                  threshold=tail("threshold"), fraction=tail("fraction"), shape=tail("shape"),
                  scale=tail("scale"), floor=tail("floor"), fit_error=tail("fit_error"))


def _missing(model, key: BackgroundKey, where: str):
    have = "; ".join(b.key.describe() for b in model.backgrounds) or "none"
    flags = f" --window {key.window}"
    if key.window_size is not None:
        flags += f" --window-size {key.window_size}"
    if key.average:
        flags += " --average"
    prefix = f"{where}: " if where else ""
    raise DbtoolsError(f"{prefix}model {model.info.id} has no background for {key.describe()} (it has: {have}); "
                       f"compute one with `dbtools background GENOME.fa -m {model.info.id}{flags}`")


def check_floor(tables: Tables, ids: list[str], p: float, option: str = "--pvalue",
                warn: Callable[[str], None] = lambda message: None) -> None:
    """Models whose background answers no p-value as small as `p` can give no hit: a warning
    naming them, or, when no model can, an error (a threshold that selects nothing)."""
    low = np.flatnonzero(tables.floor > p)
    if low.size == len(ids):
        i = int(low[0])
        raise UsageError(f"{option} {p:g}: model {ids[i]}'s background answers p-values down to "
                         f"{tables.floor[i]:.3g} only; use a larger threshold (or more --windows)")
    if low.size:
        shown = ", ".join(f"{ids[i]} ({tables.floor[i]:.3g})" for i in low[:5]) + (", ..." if low.size > 5 else "")
        warn(f"{option} {p:g}: {low.size} model(s) answer no p-value that small and give no hits: {shown} "
             f"(their backgrounds' smallest p-values; see docs/significance.md)")
