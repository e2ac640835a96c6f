from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from dbtools.metrics import auc, auc_delong, auprc, pearson, spearman


@settings(max_examples=50)
@given(st.lists(st.tuples(st.booleans(), st.integers(-5, 5)), min_size=2, max_size=40))
def test_auc_is_the_probability_a_positive_outranks_a_negative(pairs):
    labels = np.array([p[0] for p in pairs])
    scores = np.array([p[1] for p in pairs], float)
    pos, neg = scores[labels], scores[~labels]
    if len(pos) == 0 or len(neg) == 0:
        assert np.isnan(auc(labels, scores))
        return
    brute = np.mean([(p > n) + 0.5 * (p == n) for p in pos for n in neg])
    assert abs(auc(labels, scores) - brute) < 1e-12


def test_auprc_perfect_and_known_value():
    assert auprc(np.array([1, 1, 0, 0]), np.array([4, 3, 2, 1])) == 1.0
    # ranking 1,0,1: precision at the two hits is 1 and 2/3
    assert abs(auprc(np.array([1, 0, 1]), np.array([3, 2, 1])) - (1 + 2 / 3) / 2) < 1e-12


def test_correlations():
    x = np.arange(10.0)
    assert abs(pearson(x, 2 * x + 1) - 1) < 1e-12
    assert abs(spearman(x, np.exp(x)) - 1) < 1e-12
    rng = np.random.default_rng(0)
    a, b = rng.normal(size=100), rng.normal(size=100)
    assert abs(pearson(a, b) - np.corrcoef(a, b)[0, 1]) < 1e-12


@settings(max_examples=40)
@given(st.lists(st.tuples(st.booleans(), st.integers(-4, 4), st.integers(-4, 4)), min_size=6, max_size=40))
def test_delong_covariance_matches_its_definition(rows):
    """AUCs and covariance from ranks equal the pairwise definition (DeLong et al. 1988)."""
    labels = np.array([r[0] for r in rows])
    scores = np.array([[r[1] for r in rows], [r[2] for r in rows]], float)
    m, n = labels.sum(), (~labels).sum()
    if m < 2 or n < 2:
        with pytest.raises(ValueError):
            auc_delong(labels, scores)
        return
    aucs, cov = auc_delong(labels, scores)
    psi = [(s[labels][:, None] > s[~labels][None, :]) + 0.5 * (s[labels][:, None] == s[~labels][None, :])
           for s in scores]
    v10 = np.array([p.mean(axis=1) for p in psi])
    v01 = np.array([p.mean(axis=0) for p in psi])
    brute = np.array([[np.sum((v10[a] - v10[a].mean()) * (v10[b] - v10[b].mean())) / (m - 1) / m
                       + np.sum((v01[a] - v01[a].mean()) * (v01[b] - v01[b].mean())) / (n - 1) / n
                       for b in range(2)] for a in range(2)])
    assert np.allclose(aucs, [auc(labels, s) for s in scores], atol=1e-12)
    assert np.allclose(cov, brute, atol=1e-12)


def test_delong_standard_error_near_the_bootstrap():
    """On 300 + 300 examples, DeLong's standard error agrees with a stratified bootstrap to 15%."""
    rng = np.random.default_rng(5)
    labels = np.r_[np.ones(300, bool), np.zeros(300, bool)]
    scores = rng.normal(size=600) + 1.2 * labels
    _, cov = auc_delong(labels, scores)
    pos, neg = np.flatnonzero(labels), np.flatnonzero(~labels)
    boot = [auc(labels[idx], scores[idx]) for idx in
            (np.r_[rng.choice(pos, 300), rng.choice(neg, 300)] for _ in range(400))]
    assert abs(np.sqrt(cov[0, 0]) / np.std(boot) - 1) < 0.15
