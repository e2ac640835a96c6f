"""The public Python API: its doctests, and its numbers against the commands it mirrors on the demo data."""

from __future__ import annotations

import doctest
import os
import subprocess
import sys

import numpy as np
import pytest

import dbtools
import dbtools.api
from conftest import ROOT

DEMO = ROOT / "demo"


def cli(*args: str, cwd=ROOT) -> str:
    proc = subprocess.run([sys.executable, "-m", "dbtools_cli.main", *args], capture_output=True, text=True, cwd=cwd)
    assert proc.returncode == 0, proc.stderr
    return proc.stdout


def printed(values: np.ndarray) -> list[list[str]]:
    """Values as the commands print them (6 decimals)."""
    return [["%.6f" % v for v in row] for row in np.atleast_2d(values).tolist()]


@pytest.fixture(scope="module")
def shipped():
    return dbtools.load_bank()


def test_doctests_pass(monkeypatch):
    monkeypatch.chdir(ROOT)
    result = doctest.testmod(dbtools.api, extraglobs={"dbtools": dbtools, "np": np},
                             optionflags=doctest.NORMALIZE_WHITESPACE)
    assert result.attempted >= 20
    assert result.failed == 0


def test_import_is_cheap_and_exports_the_api():
    code = "import sys, dbtools; print('torch' in sys.modules, sorted(set(dbtools.__all__) - set(dir(dbtools))))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.split() == ["False", "[]"]
    assert all(getattr(dbtools, name) is getattr(dbtools.api, name) for name in dbtools.__all__)
    assert dbtools.__all__ == dbtools.api.__all__
    with pytest.raises(AttributeError):
        dbtools.no_such_name


def test_bank_select_and_table_match_dbtools_models(shipped):
    chosen = shipped.select("CTCF", "type:ChIP-seq")
    rows = cli("models", "-m", "CTCF", "-m", "type:ChIP-seq", "--tsv").splitlines()
    header = rows[0].split("\t")
    assert [dict(zip(header, r.split("\t"))) for r in rows[1:]] == chosen.table()
    assert isinstance(chosen, dbtools.Bank) and repr(chosen) == f"Bank({len(chosen)} models)"
    with pytest.raises(dbtools.api.UsageError, match="no model in the bank matches"):
        shipped.select("NO_SUCH_PROTEIN")


@pytest.mark.parametrize("flags, kwargs", [
    ((), {}),
    (("--window-size", "30", "--average"), {"window_size": 30, "average": True}),
    (("--window-size", "101", "--class-prob"), {"window_size": 101, "class_prob": True}),
])
def test_score_sequences_equals_dbtools_score(shipped, flags, kwargs):
    selectors = "CTCF,GABPA,D00210.001"
    lines = cli("score", str(DEMO / "ctcf_peaks.fa"), "-m", selectors, "--device", "cpu", *flags).splitlines()
    names, seqs = dbtools.load_sequences(DEMO / "ctcf_peaks.fa")
    scores = dbtools.score_sequences(shipped.select(selectors), seqs, device="cpu", **kwargs)
    assert lines[0].split("\t") == shipped.select(selectors).ids
    assert printed(scores) == [ln.split("\t") for ln in lines[1:]]
    frame = dbtools.score_sequences(shipped.select(selectors), seqs, names=names, as_frame=True, **kwargs)
    assert list(frame.index) == names and np.array_equal(frame.to_numpy(), scores)


def test_score_sequences_takes_a_bank_file_and_one_sequence(tmp_path, shipped):
    path = tmp_path / "two.bank"
    shipped.select("D00328.003", "D00409.004").save(path)
    one = dbtools.score_sequences(str(path), "ACGTACGTTTGACCCGGAAGTG")
    assert one.shape == (1, 2)
    assert np.array_equal(one, dbtools.score_sequences(shipped.select("D00328.003,D00409.004"),
                                                       ["ACGTACGTTTGACCCGGAAGTG"]))
    with pytest.raises(dbtools.api.DbtoolsError, match="sequence 1"):
        dbtools.score_sequences(str(path), "ACGT!")


def test_mutation_map_equals_dbtools_mutmap(tmp_path, shipped):
    cli("mutmap", str(DEMO / "ctcf_peaks.fa"), "-m", "D00328.003", "-f", "npz", "-o", str(tmp_path), "--device", "cpu")
    names, seqs = dbtools.load_sequences(DEMO / "ctcf_peaks.fa")
    m = dbtools.mutation_map(shipped.select("D00328.003"), seqs[2], device="cpu")
    saved = np.load(next(tmp_path.glob(f"{names[2].replace(':', '_')}*.npz")))
    assert np.array_equal(saved["delta"], m.delta[:, :, 0])
    assert float(saved["wild_type"]) == pytest.approx(float(m.wild_type[0]), abs=0)
    whole = dbtools.score_sequences(shipped.select("D00328.003"), seqs[2])
    assert m.wild_type[0] == pytest.approx(whole[0, 0], abs=1e-5)  # the mapper's own path, within float32 rounding


def test_plot_mutation_map_draws_a_figure(shipped):
    m = dbtools.mutation_map(shipped.select("D00328.003"), "ACGTCCGCGCGGTGGCAGCAGCTA")
    fig = dbtools.plot_mutation_map(m.delta[:, :, 0], "ACGTCCGCGCGGTGGCAGCAGCTA", title="t")
    assert fig.axes
    import matplotlib.pyplot as plt
    plt.close(fig)


def test_variant_effects_equal_dbtools_vareffect(shipped):
    selectors = "CTCF,GABPA"
    out = cli("vareffect", str(DEMO / "variants.vcf"), "-g", str(DEMO / "chr20_61M.fa"), "-m", selectors,
              "--info-layout", "keys", "--device", "cpu")
    bank = shipped.select(selectors)
    keys = {f"DBT_{i.replace('.', '_')}_{k}" for i in bank.ids for k in ("REF", "ALT", "DIFF")}
    expected = []
    for line in out.splitlines():
        if line.startswith("#"):
            continue
        info = dict(kv.split("=", 1) for kv in line.split("\t")[7].split(";") if "=" in kv)
        assert keys <= set(info)
        expected.append([[info[f"DBT_{i.replace('.', '_')}_{k}"] for i in bank.ids] for k in ("REF", "ALT", "DIFF")])
    variants = dbtools.read_variants(DEMO / "variants.vcf")
    effects = dbtools.variant_effects(bank, variants, DEMO / "chr20_61M.fa", device="cpu")
    assert len(expected) == len(variants) == 259
    got = [[printed(effects.ref[n])[0], printed(effects.alt[n])[0], printed(effects.diff[n])[0]]
           for n in range(len(variants))]
    assert got == expected
    assert effects.ids == bank.ids and effects.ref_mismatch.dtype == bool


def test_variant_effects_name_a_bad_variant(shipped):
    with pytest.raises(dbtools.api.DbtoolsError, match=r"variant 2 \(chrX:10"):
        dbtools.variant_effects(shipped.select("D00328.003"), [("20_61M", 3215, "T", "C"), ("chrX", 10, "A", "G")],
                                DEMO / "chr20_61M.fa")


@pytest.mark.parametrize("step", [1, 7])
def test_scan_region_equals_dbtools_scan(tmp_path, shipped, step):
    bed = tmp_path / "region.bed"
    bed.write_text("20_61M\t71000\t72500\n")
    out = cli("scan", str(DEMO / "chr20_61M.fa"), "-m", "D00328.018", "--regions", str(bed), "--step", str(step),
              "--format", "bedgraph", "--device", "cpu")
    track = dbtools.scan_region(shipped.select("D00328.018"), DEMO / "chr20_61M.fa", "20_61M", 71000, 72500,
                                step=step, device="cpu", chunk_size=400)
    expected = np.full(1500, np.nan)
    for line in out.splitlines():
        _, s, e, v = line.split("\t")
        expected[int(s) - 71000:int(e) - 71000] = float(v)
    got = track.values[:, 0]
    assert np.array_equal(np.isnan(got), np.isnan(expected))
    keep = ~np.isnan(got)
    assert ["%.6f" % v for v in got[keep]] == ["%.6f" % v for v in expected[keep]]
    assert track.positions[0] == 71000 and len(track.positions) == 1500


def test_scan_region_places_models_of_different_windows_each_on_its_own(shipped):
    from dataclasses import replace

    model = shipped.select("D00328.018").models[0]
    short = replace(model, info=replace(model.info, id="short", train_length=51))
    both = dbtools.Bank([model, short])
    track = dbtools.scan_region(both, DEMO / "chr20_61M.fa", "20_61M", 71000, 71400, step=3)
    for j, alone in enumerate([dbtools.Bank([model]), dbtools.Bank([short])]):
        single = dbtools.scan_region(alone, DEMO / "chr20_61M.fa", "20_61M", 71000, 71400, step=3)
        assert np.array_equal(track.values[:, j], single.values[:, 0], equal_nan=True)
    first = [int(np.flatnonzero(~np.isnan(track.values[:, j]))[0]) for j in range(2)]
    assert first == [(101 - 3) // 2, (51 - 3) // 2]


def test_train_models_equals_dbtools_train(tmp_path):
    args = dict(rows="1:60", steps=20, checkpoint_every=10, restarts=2, detector_len=(10, 12), seed=3, shuffles=5)
    cli("train", str(DEMO / "gabpa_A.seq"), "--rows", "1:60", "--steps", "20", "--checkpoint-every", "10",
        "--restarts", "2", "--detector-len", "10,12", "--seed", "3", "--shuffles", "5", "--device", "cpu", "-o", str(tmp_path / "t.bank"))
    written = dbtools.load_bank(tmp_path / "t.bank")
    trained = dbtools.train_models(str(DEMO / "gabpa_A.seq"), device="cpu", **args)
    assert trained.ids == written.ids == ["gabpa_A"]
    for a, b in zip(trained.models, written.models):
        assert a.info.arch == b.info.arch
        assert a.info.provenance["selection"] == b.info.provenance["selection"]
        for name, array in b.arrays.items():
            assert np.array_equal(a.arrays[name], array), name


def test_score_sequences_p_values_equal_dbtools_score_pvalue(tmp_path):
    with_bg = tmp_path / "bg.bank"
    cli("background", str(DEMO / "chr20_61M.fa"), "-m", "D00328.018,D00409.004", "--windows", "2000", "--tail-fraction", "0.05",
        "-o", str(with_bg), "--device", "cpu")
    bank = dbtools.load_bank(with_bg).select("D00328.018,D00409.004")  # the others have no background
    names, seqs = dbtools.load_sequences(DEMO / "ctcf_peaks.fa")
    for flag, values, fmt in (("--pvalue", "pvalue", "%.4g"), ("--log10", "log10p", "%.6f")):
        lines = cli("score", str(DEMO / "ctcf_peaks.fa"), "--bank", str(with_bg), "-m", "D00328.018,D00409.004", flag,
                    "--device", "cpu").splitlines()
        got = dbtools.score_sequences(bank, seqs, values=values, device="cpu")
        assert [[fmt % v for v in row] for row in got.tolist()] == [ln.split("\t") for ln in lines[1:]]
    with pytest.raises(dbtools.api.UsageError, match="exclude"):
        dbtools.score_sequences(bank, seqs, values="pvalue", class_prob=True)
