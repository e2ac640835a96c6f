from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from dbtools.metrics import auc, auprc, pearson, spearman


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
