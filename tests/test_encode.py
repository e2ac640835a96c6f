from __future__ import annotations

import numpy as np
import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

from dbtools.io.encode import decode, encode, one_hot, reverse_complement
from dbtools.errors import DbtoolsError


def test_codes_for_dna_rna_any_case():
    np.testing.assert_array_equal(encode("ACGTUacgtu"), [0, 1, 2, 3, 3, 0, 1, 2, 3, 3])


def test_iupac_ambiguity_letters_count_as_n():
    assert set(encode("NRYSWKMBDHVnryswkmbdhv").tolist()) == {4}


def test_one_hot_n_is_a_quarter_in_each_channel():
    x = one_hot(torch.from_numpy(encode("AN")))
    torch.testing.assert_close(x, torch.tensor([[1.0, 0, 0, 0], [0.25, 0.25, 0.25, 0.25]]))


@pytest.mark.parametrize("bad,pos", [("ACGX", 4), ("AC GT", 3), ("A-C", 2), ("é", 1)])
def test_invalid_character_names_record_and_character(bad, pos):
    with pytest.raises(DbtoolsError) as e:
        encode(bad, "input.seq: sequence 7")
    msg = str(e.value)
    assert msg.startswith("input.seq: sequence 7: invalid character")
    assert f"position {pos}" in msg


def test_empty_sequence_is_an_error():
    with pytest.raises(DbtoolsError, match="empty"):
        encode("", "x")


@given(st.text(alphabet="ACGTN", min_size=1, max_size=200))
def test_reverse_complement_is_an_involution_and_flips_one_hot(seq):
    codes = encode(seq)
    rc = reverse_complement(codes)
    np.testing.assert_array_equal(reverse_complement(rc), codes)
    assert decode(rc) == seq[::-1].translate(str.maketrans("ACGTN", "TGCAN"))
    x = one_hot(torch.from_numpy(codes))
    torch.testing.assert_close(one_hot(torch.from_numpy(rc)), x.flip(0).flip(1))
