"""Evaluation metrics: AUC (with DeLong's standard errors) and AUPRC for classification, Pearson
and Spearman for regression."""

from __future__ import annotations

import numpy as np


def _ranks(x: np.ndarray) -> np.ndarray:
    """Ranks 1..n with ties given their average rank."""
    order = np.argsort(x, kind="mergesort")
    ranks = np.empty(len(x), dtype=np.float64)
    xs = x[order]
    boundaries = np.flatnonzero(np.diff(xs)) + 1
    starts = np.concatenate([[0], boundaries])
    ends = np.concatenate([boundaries, [len(x)]])
    for s, e in zip(starts, ends):
        ranks[order[s:e]] = (s + e + 1) / 2
    return ranks


def auc(labels: np.ndarray, scores: np.ndarray) -> float:
    """Area under the ROC curve (Mann-Whitney, ties count half)."""
    labels = np.asarray(labels) > 0.5
    n_pos, n_neg = labels.sum(), (~labels).sum()
    if n_pos == 0 or n_neg == 0:
        return float("nan")
    r = _ranks(np.asarray(scores, dtype=np.float64))
    return float((r[labels].sum() - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg))


def auc_delong(labels: np.ndarray, scores: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """AUCs of several scorings of the same examples and their covariance matrix (DeLong et al.
    1988), so that a difference in AUC can be weighed against its standard error.

    `scores` is (k, n): k scorings of n examples. Returns (aucs (k,), covariance (k, k)).
    """
    labels = np.asarray(labels) > 0.5
    scores = np.atleast_2d(np.asarray(scores, dtype=np.float64))
    m, n = int(labels.sum()), int((~labels).sum())
    if m < 2 or n < 2:
        raise ValueError("DeLong's covariance needs at least 2 positives and 2 negatives")
    # structural components: for each positive, the share of negatives it outranks (ties half);
    # for each negative, the share of positives that outrank it
    v10 = np.empty((len(scores), m))
    v01 = np.empty((len(scores), n))
    for k, s in enumerate(scores):
        r = _ranks(s)
        v10[k] = (r[labels] - _ranks(s[labels])) / n
        v01[k] = 1.0 - (r[~labels] - _ranks(s[~labels])) / m
    aucs = v10.mean(axis=1)
    cov = np.atleast_2d(np.cov(v10, ddof=1)) / m + np.atleast_2d(np.cov(v01, ddof=1)) / n
    return aucs, cov


def auprc(labels: np.ndarray, scores: np.ndarray) -> float:
    """Area under the precision-recall curve (average precision)."""
    labels = np.asarray(labels) > 0.5
    if labels.sum() == 0:
        return float("nan")
    order = np.argsort(-np.asarray(scores, dtype=np.float64), kind="mergesort")
    hits = labels[order]
    precision = np.cumsum(hits) / np.arange(1, len(hits) + 1)
    return float(precision[hits].sum() / hits.sum())


def pearson(x: np.ndarray, y: np.ndarray) -> float:
    x, y = np.asarray(x, np.float64), np.asarray(y, np.float64)
    x, y = x - x.mean(), y - y.mean()
    denom = np.sqrt((x * x).sum() * (y * y).sum())
    return float((x * y).sum() / denom) if denom > 0 else float("nan")


def spearman(x: np.ndarray, y: np.ndarray) -> float:
    return pearson(_ranks(np.asarray(x, np.float64)), _ranks(np.asarray(y, np.float64)))
