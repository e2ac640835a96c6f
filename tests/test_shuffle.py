from __future__ import annotations

from collections import Counter

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from dbtools.train.shuffle import dinucleotide_shuffle


def dinucs(s: str) -> Counter:
    return Counter(zip(s, s[1:]))


@settings(max_examples=200)
@given(seq=st.text(alphabet="ACGTN", min_size=1, max_size=150), seed=st.integers(0, 2**32 - 1))
def test_shuffle_keeps_dinucleotides_and_ends(seq, seed):
    out = dinucleotide_shuffle(seq, np.random.default_rng(seed))
    assert len(out) == len(seq)
    assert out[0] == seq[0] and out[-1] == seq[-1]
    assert dinucs(out) == dinucs(seq)


def test_shuffle_is_seeded_and_actually_shuffles():
    seq = "ACGTTGCAAGCTTAGGCATCGATCGGATCCATGCAAGTCGATGCTAGCTAGGCTA" * 2
    a = dinucleotide_shuffle(seq, np.random.default_rng(7))
    b = dinucleotide_shuffle(seq, np.random.default_rng(7))
    c = dinucleotide_shuffle(seq, np.random.default_rng(8))
    assert a == b and a != seq and c != a


def test_shuffles_of_a_short_sequence_are_uniform_over_its_eulerian_paths():
    # ACAGA: paths from A with edges {AC, CA, AG, GA}: ACAGA and AGACA, equally likely
    rng = np.random.default_rng(0)
    counts = Counter(dinucleotide_shuffle("ACAGA", rng) for _ in range(4000))
    assert set(counts) == {"ACAGA", "AGACA"}
    assert abs(counts["ACAGA"] - 2000) < 200
