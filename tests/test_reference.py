"""The forward pass equals the original DeepBind v0.11 scorer for all 927 published models."""

from __future__ import annotations

import csv
import subprocess
import sys

import numpy as np
import pytest

from conftest import ROOT, shared_path

MODES = {"default": [], "average": ["--average"], "window20": ["--window-size", "20"]}


def read_expected(mode: str):
    path = shared_path("deepbind_reference", f"expected_{mode}_all927.tsv")
    with open(path) as fh:
        rows = list(csv.reader(fh, delimiter="\t"))
    return rows[0][1:], [r[0] for r in rows[1:]], np.array([[float(v) for v in r[1:]] for r in rows[1:]])


@pytest.mark.parametrize("mode", MODES)
def test_cli_matches_original_scorer_on_all_927_models(mode, tmp_path):
    ids, seqs, expected = read_expected(mode)
    seq_file = shared_path("deepbind_reference", "test_sequences.seq")
    ids_file = tmp_path / "models.ids"
    ids_file.write_text("\n".join(ids) + "\n")
    proc = subprocess.run(
        [sys.executable, "-m", "dbtools_cli.main", "score", str(seq_file), "-m", f"@{ids_file}",
         "--device", "cpu", "--echo", *MODES[mode]],
        capture_output=True, text=True, cwd=ROOT, check=True)
    rows = [line.split("\t") for line in proc.stdout.splitlines()]
    assert rows[0] == ["sequence", *ids]
    assert [r[0] for r in rows[1:]] == seqs
    got = np.array([[float(v) for v in r[1:]] for r in rows[1:]])
    assert got.shape == expected.shape == (45, 927)
    err = np.abs(got - expected)
    worst = np.unravel_index(err.argmax(), err.shape)
    assert err.max() <= 1e-4, f"max |diff| {err.max():.2e} at sequence {worst[0]}, model {ids[worst[1]]}"
