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

from dbtools.significance.tail import fit_pareto, fit_quadratic, log10_pareto_survival, log10_quadratic_survival

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
# with block sampling, neighbouring windows share sequence (a site scores high in several), so
# the check stops where this many windows remain
BLOCK_CHECK_EXCEEDANCES = 100
# a quadratic (Gaussian-like) tail fitted from this upper-tail probability down may answer beyond
# the table instead of the generalized Pareto tail; None: it is not fitted. Against 1e8
# brute-force windows of 17 held-out models it did worse than the Pareto tail (docs/significance.md),
# so backgrounds do not use it; benchmarks/background_tail.py compares it
QUADRATIC_FROM = None
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
    # the quadratic tail (NaN slope: none, the Pareto tail answers)
    anchor: np.ndarray = None     # [M] the score where its fit starts
    slope: np.ndarray = None      # [M] d log10 p / d score there (< 0)
    curvature: np.ndarray = None  # [M] (<= 0)

    def __post_init__(self):
        for f in ("anchor", "slope", "curvature"):
            if getattr(self, f) is None:
                setattr(self, f, np.full(len(self.threshold), np.nan))

    def rows(self, models: np.ndarray | list[int]) -> "Tables":
        """The tables of some of the models, in the order given."""
        idx = np.asarray(models, dtype=np.int64)
        return Tables(**{f: getattr(self, f)[idx] for f in self.__dataclass_fields__})


def summarize(samples: torch.Tensor, fraction: float, floor: float = TAIL_FLOOR,
              min_shape: float | None = MIN_TAIL_SHAPE, check_exceedances: int = CHECK_EXCEEDANCES,
              quadratic_from: float | None = QUADRATIC_FROM) -> Tables:
    """The tables of M models from their scores on N background windows.

    Parameters
    ----------
    samples : [N, M] scores, finite
    fraction : the share of the top samples the tail is fitted to (the table stops there)
    floor : the smallest p-value a well-fitted tail answers
    min_shape : the lower bound on the shape that p-values use (the fit is checked with it);
        the table keeps the shape as fitted
    check_exceedances : the fit is checked down to where this many samples remain
    quadratic_from : fit the quadratic tail from this upper-tail probability down, and answer
        with it beyond the table (None: the generalized Pareto tail)

    Returns
    -------
    Tables; a model whose tail misses its empirical quantiles by more than MAX_FIT_RATIO
    answers no lower than the deepest checked quantile.
    """
    a = torch.sort(samples.to(torch.float64).T.contiguous(), dim=1).values  # [M, N]
    return summarize_ranked(a, a.shape[1], a, fraction, floor, min_shape, check_exceedances, quadratic_from)


def summarize_ranked(top: torch.Tensor, n: int, bulk: torch.Tensor, fraction: float, floor: float = TAIL_FLOOR,
                     min_shape: float | None = MIN_TAIL_SHAPE, check_exceedances: int = CHECK_EXCEEDANCES,
                     quadratic_from: float | None = QUADRATIC_FROM) -> Tables:
    """The tables of M models from the largest scores of n samples and a sample of the rest.

    Parameters
    ----------
    top : [M, K] the K largest of each model's n scores, ascending (K = n: all of them)
    n : the number of samples
    bulk : [M, B] ascending, a sample of the n scores (or all of them), for the quantiles
        whose survival is above (K - 1) / n, where `top` does not reach
    fraction : the tail fraction; fraction * n must be below K
    floor, min_shape, check_exceedances, quadratic_from : as for `summarize`
    """
    top, bulk = top.to(torch.float64).contiguous(), bulk.to(torch.float64).contiguous()
    M, K = top.shape
    B = bulk.shape[1]
    N = n
    if math.ceil(fraction * N) >= K and K < N:
        raise ValueError(f"tail fraction {fraction} of {N} samples needs more than the {K} largest")
    grid = survival_grid(fraction)
    count = np.ceil(grid * N).astype(np.int64)  # the knot at p is the count-th largest sample
    exact = (count <= K - 1) | (K == N)
    tidx = np.clip(K - count, 0, K - 1)
    bidx = np.clip(B - np.ceil(grid * B).astype(np.int64), 0, B - 1)
    from_top = top[:, torch.from_numpy(tidx)]
    from_bulk = bulk[:, torch.from_numpy(bidx)]
    # the share of samples >= each knot, ties counted: exact where the top reaches, else the bulk's share
    s_top = (K - torch.searchsorted(top, from_top.contiguous(), side="left")).to(torch.float64) / N
    s_bulk = (B - torch.searchsorted(bulk, from_bulk.contiguous(), side="left")).to(torch.float64) / B
    use = torch.from_numpy(exact)[None]
    knots = torch.where(use, from_top, from_bulk)
    survival = torch.where(use, s_top, s_bulk)
    # where the two meet, keep the table monotone (scores up, survival down)
    knots = torch.cummax(knots, dim=1).values
    survival = torch.cummin(survival, dim=1).values
    threshold, tail_fraction = knots[:, -1], survival[:, -1]
    first = int(tidx[-1])
    above = top[:, first:]  # the samples at and above the threshold, as ranked
    shape, scale = fit_pareto((above - threshold[:, None]).T)
    deepest = check_exceedances / N
    if quadratic_from is not None and deepest < quadratic_from and math.ceil(quadratic_from * N) <= K:
        anchor, slope, curvature = fit_quadratic(top, N, max(quadratic_from, fraction), check_exceedances)
    else:
        anchor = slope = curvature = torch.full((M,), math.nan, dtype=torch.float64)
    # checked quantiles: from the tail fraction down to where check_exceedances samples remain
    if deepest < fraction:
        check = np.logspace(math.log10(fraction), math.log10(deepest), 9)[1:]
        cidx = np.clip(K - np.ceil(check * N).astype(np.int64), 0, K - 1)
        cs = top[:, torch.from_numpy(cidx)].contiguous()
        emp = torch.log10((K - torch.searchsorted(top, cs, side="left")).to(torch.float64) / N)
        fit = torch.log10(tail_fraction)[:, None] + _log10_tail(cs, threshold, shape, scale, anchor, slope, curvature,
                                                               min_shape)
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
        fit_error=torch.where(torch.isfinite(fit_error), fit_error, torch.full_like(fit_error, 99.0)).numpy(),
        anchor=anchor.numpy(), slope=slope.numpy(), curvature=curvature.numpy())


def _log10_tail(x: torch.Tensor, threshold, shape, scale, anchor, slope, curvature, min_shape) -> torch.Tensor:
    """log10 P(S >= x) / P(S >= threshold) for x [M, n] beyond each model's threshold: the
    quadratic tail where a model has one (finite slope), else the generalized Pareto tail."""
    def col(v):
        return torch.as_tensor(v, dtype=torch.float64, device=x.device)[:, None]

    used_shape, used_scale = bounded_shape(shape, scale, min_shape)
    x = x.to(torch.float64)
    pareto = log10_pareto_survival(x - col(threshold), col(used_shape), col(used_scale))
    slope = col(slope)
    quad = torch.isfinite(slope)
    if not bool(quad.any()):
        return pareto
    safe = torch.where(quad, slope, torch.full_like(slope, -1.0))
    quadratic = log10_quadratic_survival(x, col(threshold), torch.nan_to_num(col(anchor)), safe,
                                         torch.nan_to_num(col(curvature)))
    return torch.where(quad, quadratic, pareto)


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
    tail = (torch.log10(torch.as_tensor(tables.fraction, device=device, dtype=torch.float64))[:, None]
            + _log10_tail(x, tables.threshold, tables.shape, tables.scale, tables.anchor, tables.slope,
                          tables.curvature, min_shape))
    out = torch.where(i == 0, torch.zeros_like(x), torch.where(i >= K, tail.float(), inside))
    out = torch.maximum(out, torch.log10(torch.as_tensor(tables.floor, device=device, dtype=torch.float32))[:, None])
    out = torch.where(torch.isnan(x), x, out.clamp_max(0.0))
    return out.T.contiguous()
