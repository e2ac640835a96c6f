"""The tail beyond the last empirical quantile, fitted to the largest background scores: a
generalized Pareto tail, or a quadratic (Gaussian-like) log-survival. Pure functions over
tensors, one column per model."""

from __future__ import annotations

import math

import numpy as np
import torch

# |shape| below this is the exponential limit of the generalized Pareto distribution
_EXPONENTIAL = 1e-6


def fit_pareto(excess: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Shape xi and scale sigma of a generalized Pareto fit by probability-weighted moments
    (Hosking & Wallis 1987): closed form, so every model's tail is fitted at once.

    Parameters
    ----------
    excess : [n, M] exceedances over each model's threshold (>= 0), any order

    Returns
    -------
    shape, scale : [M] float64; survival (1 + xi y / sigma) ** (-1 / xi)
    """
    y = torch.sort(excess.to(torch.float64), dim=0).values
    n = y.shape[0]
    plotting = (torch.arange(1, n + 1, dtype=torch.float64, device=y.device) - 0.35) / n
    a0 = y.mean(dim=0)
    a1 = ((1 - plotting)[:, None] * y).mean(dim=0)
    denom = (a0 - 2 * a1).clamp_min(1e-30)
    k = a0 / denom - 2  # Hosking's k is -xi
    scale = (2 * a0 * a1 / denom).clamp_min(1e-30)
    return -k, scale


def log10_pareto_survival(excess: torch.Tensor, shape: torch.Tensor, scale: torch.Tensor) -> torch.Tensor:
    """log10 P(Y >= excess) under the generalized Pareto distribution; -inf past a bounded
    tail's end point. Shapes broadcast; float64."""
    excess = excess.to(torch.float64)
    shape = shape.to(torch.float64)
    scale = scale.to(torch.float64)
    exponential = shape.abs() < _EXPONENTIAL
    safe_shape = torch.where(exponential, torch.ones_like(shape), shape)
    z = 1 + safe_shape * excess / scale
    pareto = torch.where(z > 0, -torch.log(z.clamp_min(1e-300)) / safe_shape, torch.full_like(z, -math.inf))
    log_survival = torch.where(exponential, -excess / scale, pareto)
    return log_survival / math.log(10)


def fit_quadratic(top: torch.Tensor, n: int, p_hi: float, deepest: int, points: int = 40
                  ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """A Gaussian-like tail: log10 P(S >= t) = log10 p_hi + b (t - u) + c (t - u)^2 with b < 0 and
    c <= 0 (c = 0: an exponential tail), u the score at p_hi. Fitted by least squares, each point
    weighted by the square root of its count, to the empirical survival at `points` quantiles
    log-spaced from p_hi down to where `deepest` samples remain.

    Parameters
    ----------
    top : [M, K] each model's K largest of n scores, ascending (K >= p_hi * n)

    Returns
    -------
    anchor u, slope b, curvature c : [M] float64; b is NaN where the scores above u do not
    spread (no fit)
    """
    top = top.to(torch.float64).contiguous()
    K = top.shape[1]
    ps = np.logspace(math.log10(p_hi), math.log10(deepest / n), points)
    counts = np.unique(np.ceil(ps * n).astype(np.int64))[::-1]
    t = top[:, torch.from_numpy(np.clip(K - counts, 0, K - 1))]
    u = t[:, 0]
    x = t - u[:, None]
    y = torch.from_numpy(np.log10(counts / n) - math.log10(p_hi))[None]
    w2 = torch.from_numpy(counts.astype(np.float64))[None]
    s2, s3, s4 = (w2 * x ** 2).sum(1), (w2 * x ** 3).sum(1), (w2 * x ** 4).sum(1)
    r1, r2 = (w2 * x * y).sum(1), (w2 * x * x * y).sum(1)
    det = s2 * s4 - s3 * s3
    ok = det > 1e-12 * s2 * s4
    b = torch.where(ok, (r1 * s4 - r2 * s3) / torch.where(ok, det, torch.ones_like(det)), torch.zeros_like(det))
    c = torch.where(ok, (s2 * r2 - s3 * r1) / torch.where(ok, det, torch.ones_like(det)), torch.zeros_like(det))
    linear = ~ok | (c > 0) | (b >= 0)
    b_lin = r1 / s2.clamp_min(1e-300)
    b = torch.where(linear, b_lin, b)
    c = torch.where(linear, torch.zeros_like(c), c)
    b = torch.where((s2 > 0) & (b < 0), b, torch.full_like(b, math.nan))
    return u, b, c


def log10_quadratic_survival(x: torch.Tensor, threshold: torch.Tensor, anchor: torch.Tensor, slope: torch.Tensor,
                             curvature: torch.Tensor) -> torch.Tensor:
    """log10 P(S >= x) / P(S >= threshold) under the quadratic tail, for x >= threshold >= anchor
    (0 at the threshold, decreasing beyond it). Broadcasts; float64."""
    x, threshold = x.to(torch.float64), threshold.to(torch.float64)

    def q(t):
        d = t - anchor
        return slope * d + curvature * d * d

    return q(torch.maximum(x, threshold)) - q(threshold)
