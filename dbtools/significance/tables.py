"""A background's table from its sampled scores, and p-values from the table: pure functions
over tensors, one column per model.

The table holds scores at fixed upper-tail probabilities (from 1 down to the tail fraction;
linear in the bulk, log-spaced towards the tail); between them log10 p is interpolated
linearly in the score. Above the last one a generalized Pareto tail fitted to the top
`fraction` of the samples answers, down to the tail's `floor`: no p-value is ever below the
floor, and none is 0.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch

from dbtools.significance.tail import fit_pareto, log10_pareto_survival

# the fitted tail answers down to this p-value when it matches the deepest empirical quantiles
TAIL_FLOOR = 1e-7
# p-values use a tail no lighter than exponential (the fitted shape raised to 0 when negative):
# against 2e7 brute-force windows of 8 models, free shapes put 4 of 8 models 10x too low at
# p = 1e-6 (a bounded tail ending too early), raised ones none (docs/significance.md)
MIN_TAIL_SHAPE = 0.0
# the fit is trusted when, at every checked quantile with at least CHECK_EXCEEDANCES samples
# beyond it, fitted and empirical p-values are within this factor
MAX_FIT_RATIO = 2.0
CHECK_EXCEEDANCES = 30
_BULK_POINTS = 96
_TAIL_POINTS_PER_DECADE = 20


def survival_grid(fraction: float) -> np.ndarray:
    """The upper-tail probabilities a table records, descending from 1 to `fraction`."""
    bulk = np.linspace(1.0, 0.05, _BULK_POINTS)
    lo = min(0.05, fraction)
    decades = math.log10(0.05 / lo)
    tail = np.logspace(math.log10(0.05), math.log10(lo), max(2, int(round(decades * _TAIL_POINTS_PER_DECADE)) + 1))
    return np.concatenate([bulk[bulk > 0.05], tail])


@dataclass
class Tables:
    """Stacked background tables of M models (numpy, one row per model)."""

    scores: np.ndarray          # [M, K] float32, ascending
    log10_survival: np.ndarray  # [M, K] float32, descending from 0
    threshold: np.ndarray       # [M] the score where the tail starts (= scores[:, -1])
    fraction: np.ndarray        # [M] the empirical p-value there
    shape: np.ndarray           # [M] generalized Pareto shape
    scale: np.ndarray           # [M] and scale
    floor: np.ndarray           # [M] the smallest p-value answered
    fit_error: np.ndarray       # [M] worst |log10(fitted / empirical)| at the checked quantiles

    def rows(self, models: np.ndarray | list[int]) -> "Tables":
        """The tables of some of the models, in the order given."""
        idx = np.asarray(models, dtype=np.int64)
        return Tables(**{f: getattr(self, f)[idx] for f in self.__dataclass_fields__})


def summarize(samples: torch.Tensor, fraction: float, floor: float = TAIL_FLOOR,
              min_shape: float | None = MIN_TAIL_SHAPE) -> Tables:
    """The tables of M models from their scores on N background windows.

    Parameters
    ----------
    samples : [N, M] scores, finite
    fraction : the share of the top samples the tail is fitted to (the table stops there)
    floor : the smallest p-value a well-fitted tail answers
    min_shape : the lower bound on the shape that p-values use (the fit is checked with it);
        the table keeps the shape as fitted

    Returns
    -------
    Tables; a model whose tail misses its empirical quantiles by more than MAX_FIT_RATIO
    answers no lower than the deepest checked quantile.
    """
    a = torch.sort(samples.to(torch.float64).T.contiguous(), dim=1).values  # [M, N]
    M, N = a.shape
    grid = survival_grid(fraction)
    idx = np.clip(N - np.ceil(grid * N).astype(np.int64), 0, N - 1)
    knots = a[:, torch.from_numpy(idx)]
    # exact survival of each knot, ties counted: the share of samples >= it
    survival = (N - torch.searchsorted(a, knots, side="left")).to(torch.float64) / N
    threshold, tail_fraction = knots[:, -1], survival[:, -1]
    top = a[:, idx[-1]:]  # the samples at and above the threshold, as ranked
    shape, scale = fit_pareto((top - threshold[:, None]).T)
    # checked quantiles: from the tail fraction down to where CHECK_EXCEEDANCES samples remain
    deepest = CHECK_EXCEEDANCES / N
    if deepest < fraction:
        check = np.logspace(math.log10(fraction), math.log10(deepest), 9)[1:]
        cidx = np.clip(N - np.ceil(check * N).astype(np.int64), 0, N - 1)
        cs = a[:, torch.from_numpy(cidx)]
        emp = torch.log10((N - torch.searchsorted(a, cs, side="left")).to(torch.float64) / N)
        used_shape, used_scale = bounded_shape(shape, scale, min_shape)
        fit = torch.log10(tail_fraction)[:, None] + log10_pareto_survival(cs - threshold[:, None], used_shape[:, None],
                                                                          used_scale[:, None])
        fit_error = (fit - emp).abs().amax(dim=1)
        fit_error = torch.where(torch.isfinite(fit_error), fit_error, torch.full_like(fit_error, math.inf))
    else:
        fit_error = torch.full((M,), math.inf, dtype=torch.float64)
        deepest = fraction
    good = (fit_error <= math.log10(MAX_FIT_RATIO)) & (shape < 0.5)
    floors = torch.where(good, torch.full_like(shape, floor), torch.full_like(shape, min(deepest, fraction)))
    floors = torch.minimum(floors, tail_fraction)
    return Tables(
        scores=knots.float().numpy(), log10_survival=torch.log10(survival).float().numpy(),
        threshold=threshold.float().numpy(), fraction=tail_fraction.numpy(), shape=shape.numpy(),
        scale=scale.numpy(), floor=floors.numpy(),
        fit_error=torch.where(torch.isfinite(fit_error), fit_error, torch.full_like(fit_error, 99.0)).numpy())


def bounded_shape(shape, scale, low: float | None):
    """Shapes raised to at least `low` (None: as they are), the scale of a raised one refitted to
    keep the mean excess sigma / (1 - xi), which the moment fit matches exactly (no samples needed)."""
    shape, scale = torch.as_tensor(shape, dtype=torch.float64), torch.as_tensor(scale, dtype=torch.float64)
    if low is None:
        return shape, scale
    raised = shape.clamp(min=low)
    return raised, torch.where(raised != shape, scale / (1 - shape) * (1 - raised), scale)


def candidate_cutoffs(tables: Tables, log10p: float) -> np.ndarray:
    """Per model, a score at or below which no p-value reaches 10**log10p: only windows scoring
    above it need their p-value computed to find those at or below it (-inf: every window)."""
    # knots strictly above log10p (with a margin for float32 interpolation) bound the p-values below them
    above = tables.log10_survival > np.float32(log10p) + np.float32(1e-4)  # a True prefix of each row
    k = above.sum(axis=1) - 1
    return np.where(k >= 0, tables.scores[np.arange(len(k)), np.maximum(k, 0)], -np.inf).astype(np.float32)


def log10_pvalues(scores: torch.Tensor, tables: Tables, min_shape: float | None = MIN_TAIL_SHAPE) -> torch.Tensor:
    """log10 P(background score >= score) for each model's column of `scores`.

    Parameters
    ----------
    scores : [n, M] scores of the M models of `tables` (NaN stays NaN)
    tables : the models' background tables
    min_shape : the lower bound on the tail's shape (MIN_TAIL_SHAPE; None: the shape as fitted)

    Returns
    -------
    [n, M] float32, in [log10 floor, 0]: never -inf (no p-value of 0)
    """
    device = scores.device
    knots = torch.as_tensor(tables.scores, device=device)
    logq = torch.as_tensor(tables.log10_survival, device=device)
    x = scores.to(torch.float32).T.contiguous()  # [M, n]
    K = knots.shape[1]
    i = torch.searchsorted(knots, x, side="left")  # x in (knots[i-1], knots[i]]
    lo = (i - 1).clamp(0, K - 1)
    hi = i.clamp(0, K - 1)
    s_lo, s_hi = knots.gather(1, lo), knots.gather(1, hi)
    q_lo, q_hi = logq.gather(1, lo), logq.gather(1, hi)
    width = (s_hi - s_lo)
    t = torch.where(width > 0, (x - s_lo) / torch.where(width > 0, width, torch.ones_like(width)), torch.ones_like(x))
    inside = q_lo + t * (q_hi - q_lo)
    threshold = torch.as_tensor(tables.threshold, device=device, dtype=torch.float64)[:, None]
    shape, scale = bounded_shape(tables.shape, tables.scale, min_shape)
    tail = (torch.log10(torch.as_tensor(tables.fraction, device=device, dtype=torch.float64))[:, None]
            + log10_pareto_survival(x.double() - threshold, shape.to(device)[:, None], scale.to(device)[:, None]))
    out = torch.where(i == 0, torch.zeros_like(x), torch.where(i >= K, tail.float(), inside))
    out = torch.maximum(out, torch.log10(torch.as_tensor(tables.floor, device=device, dtype=torch.float32))[:, None])
    out = torch.where(torch.isnan(x), x, out.clamp_max(0.0))
    return out.T.contiguous()
