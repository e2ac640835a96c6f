"""Tab-separated text from numpy columns prints numbers exactly as Python's "%d" and "%.6f" do."""

from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from dbtools.io.text_columns import constant_column, fixed_column, int_column, lines, text_column
from dbtools.io.tracks import bed_sites_text, bedgraph_text

floats32 = st.floats(width=32, allow_nan=False, allow_infinity=False, min_value=-1e9, max_value=1e9)


@settings(max_examples=200, deadline=None)
@given(arrays(np.float32, st.integers(0, 60), elements=floats32),
       arrays(np.int64, st.integers(0, 60), elements=st.integers(0, 2 ** 40)))
def test_numbers_print_as_python_prints_them(values, ints):
    assert lines(fixed_column(values)) == "".join(f"{v:.6f}\n" for v in values.tolist())
    assert lines(int_column(ints)) == "".join(f"{i}\n" for i in ints.tolist())


def test_halfway_and_signed_zero_cases():
    """k/128 (k odd) times 10**6 ends in exactly .5: "%.6f" rounds those ties to even."""
    ties = np.arange(1, 40, 2) / 128
    assert lines(fixed_column(np.concatenate([ties, -ties]).astype(np.float32))) == \
        "".join(f"{x:.6f}\n" for x in np.concatenate([ties, -ties]).tolist())
    v = np.array([-0.0, 0.0, 2.5e-7, -2.5e-7, 5e-7, 1.5e-6, 0.0000015, 123.4567895, -1e-30, 4294.967295, 99999.99],
                 dtype=np.float32)
    assert lines(fixed_column(v)) == "".join(f"{x:.6f}\n" for x in v.tolist())


def test_columns_join_with_tabs_and_strings_keep_their_lengths():
    n = 3
    text = lines(constant_column("chr20", n), int_column(np.array([0, 10, 999])), text_column(["a", "bcd", "ef"]))
    assert text == "chr20\t0\ta\nchr20\t10\tbcd\nchr20\t999\tef\n"


def test_a_value_too_large_for_the_exact_path_is_formatted_all_the_same():
    assert fixed_column(np.array([1e13], dtype=np.float32)) is None
    text = bedgraph_text("c", 0, 1, np.array([1.0, 3e13, np.nan], dtype=np.float32))
    assert text == f"c\t0\t1\t1.000000\nc\t1\t2\t{np.float32(3e13).item():.6f}\n"


@settings(max_examples=50, deadline=None)
@given(st.data())
def test_track_text_equals_line_by_line_formatting(data):
    n = data.draw(st.integers(0, 40))
    values = data.draw(arrays(np.float32, (n, 3), elements=st.one_of(floats32, st.just(np.nan))))
    rc = data.draw(arrays(np.bool_, (n, 3)))
    first, step = data.draw(st.integers(0, 10 ** 9)), data.draw(st.integers(1, 50))
    ids = ["D00328.003", "x", "CTCF_model"]
    keep = ~np.isnan(values[:, 0])
    want = "".join(f"chr1\t{first + k * step}\t{first + (k + 1) * step}\t{v:.6f}\n"
                   for k, v in enumerate(values[:, 0].tolist()) if keep[k])
    assert bedgraph_text("chr1", first, step, values[:, 0]) == want
    with np.errstate(invalid="ignore"):
        rows, cols = np.nonzero(values >= 0.5)
    log10p = data.draw(arrays(np.float64, len(rows), elements=st.one_of(
        st.floats(-400, 0, allow_nan=False), st.just(np.nan))))
    score = [0 if np.isnan(q) else max(0, min(1000, round(-100 * q))) for q in log10p.tolist()]
    pvalue = ["-1" if np.isnan(q) else f"{10.0 ** q:.4g}" for q in log10p.tolist()]
    want = "".join(f"chr1\t{first + r * step}\t{first + r * step + 101}\t{ids[c]}\t{sc}\t"
                   f"{'-' if rc[r, c] else '+'}\t{values[r, c].item():.6f}\t{p}\n"
                   for r, c, sc, p in zip(rows.tolist(), cols.tolist(), score, pvalue))
    starts = first + rows.astype(np.int64) * step
    got = bed_sites_text("chr1", starts, starts + 101, np.array(ids)[cols], rc[rows, cols], values[rows, cols],
                         log10p)
    assert got == want
