"""The generalized Pareto tail: fitted to the largest background scores, it answers p-values
beyond the last empirical quantile. Pure functions over tensors, one column per model."""

from __future__ import annotations

import math

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
