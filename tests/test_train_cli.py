"""`dbtools train` and `dbtools evaluate` end to end on small data, and their input errors."""

from __future__ import annotations

import numpy as np
import pytest

from dbtools.bank.store import load_bank
from dbtools.train.bank_training import restart_seed
from test_cli import assert_one_line_error, dbtools

MOTIF = "GATAAGCT"


def planted(path, n=300, seed=0, with_header=False):
    rng = np.random.default_rng(seed)
    lines = ["sequence\tlabel"] if with_header else []
    for i in range(n):
        s = list(rng.choice(list("ACGT"), 40))
        if i % 2:
            p = int(rng.integers(0, 32))
            s[p:p + 8] = MOTIF
        lines.append("".join(s) + f"\t{i % 2}")
    path.write_text("\n".join(lines) + "\n")
    return path


def test_train_spec_then_evaluate(tmp_path):
    planted(tmp_path / "a.tsv", seed=1)
    planted(tmp_path / "b.tsv", seed=2, with_header=True)
    planted(tmp_path / "test.tsv", seed=3)
    (tmp_path / "spec.tsv").write_text(
        "id\tprotein\ttask\ttrain\thyperparameters\n"
        "m1\tGATA\tclassification\ta.tsv\tlearning_rate=0.05;momentum=0.95;init_conv=0.01;init_fc=0.01\n"
        "m2\tGATA\t\tb.tsv\tlearning_rate=0.02;num_hidden=32;init_conv=0.01;init_fc=0.01\n")
    out = tmp_path / "out.bank"
    proc = dbtools("train", "--spec", str(tmp_path / "spec.tsv"), "-o", str(out), "--steps", "200",
                   "--checkpoint-every", "50", "--hidden", "0", "--detector-len", "10", "--seed", "5",
                   "--device", "cpu")
    assert proc.returncode == 0, proc.stderr
    bank = load_bank(out)
    assert bank.ids == ["m1", "m2"]
    m1, m2 = (m.info for m in bank.models)
    assert m1.arch.num_hidden == 0 and m2.arch.num_hidden == 32 and m1.arch.detector_len == 10
    assert m1.train_length == 40 and m1.protein == "GATA"
    prov = m1.provenance
    assert prov["chosen_step"] in (50, 100, 150, 200)
    # one length given, 4 restarts by default: the one kept has the lowest validation loss and
    # its seed is recorded
    sel = prov["selection"]
    losses = [c["metrics"]["validation_loss"] for c in sel["candidates"]]
    assert sel["restarts"] == 4 and sel["detector_lens"] == [10] and len(set(losses)) == 4
    assert sel["chosen"] == int(np.argmin(losses))
    chosen = sel["candidates"][sel["chosen"]]
    assert prov["metrics"] == chosen["metrics"] and prov["chosen_step"] == chosen["chosen_step"]
    assert prov["seed"] == chosen["seed"] == restart_seed(5 * 100_003, sel["chosen"])
    assert prov["data"][0]["sha256"] and prov["hyperparameters"]["learning_rate"] == 0.05
    assert {"train_loss", "validation_loss", "validation_auc"} <= set(prov["metrics"])
    ev = dbtools("evaluate", str(tmp_path / "test.tsv"), "--bank", str(out), "--device", "cpu")
    assert ev.returncode == 0, ev.stderr
    rows = [ln.split("\t") for ln in ev.stdout.splitlines()]
    assert rows[0][:6] == ["model", "protein", "data", "n", "positives", "auc"]
    aucs = {r[0]: float(r[5]) for r in rows[1:]}
    assert aucs["m1"] > 0.9  # the planted motif is learned


def test_same_seed_same_bank(tmp_path):
    data = planted(tmp_path / "a.tsv")
    outs = []
    for k in range(2):
        out = tmp_path / f"{k}.bank"
        proc = dbtools("train", str(data), "-o", str(out), "--steps", "20", "--checkpoint-every", "10",
                       "--detector-len", "8", "--seed", "3", "--device", "cpu")
        assert proc.returncode == 0, proc.stderr
        outs.append(load_bank(out).models[0].arrays)
    for k in outs[0]:
        np.testing.assert_array_equal(outs[0][k], outs[1][k])


@pytest.mark.parametrize("content,fragments", [
    ("ACGT\t0\nACGT\t2\n", ["labels must be 0 or 1"]),
    ("ACGT\t0\nACGT\tnan\n", ["line 2", "not finite"]),
    ("", ["empty file"]),
    ("ACGT\t0\nACZT\t1\n", ["line 2", "'Z'"]),
])
def test_bad_training_data(tmp_path, content, fragments):
    data = tmp_path / "bad.tsv"
    data.write_text(content)
    proc = dbtools("train", str(data), "--task", "classification", "-o", str(tmp_path / "x.bank"), "--steps", "2")
    assert_one_line_error(proc, 1, str(data), *fragments)
    assert not (tmp_path / "x.bank").exists()


def test_spec_naming_a_missing_file(tmp_path):
    (tmp_path / "spec.tsv").write_text("id\ttrain\nm1\tnope.tsv\n")
    proc = dbtools("train", "--spec", str(tmp_path / "spec.tsv"), "-o", str(tmp_path / "x.bank"))
    assert_one_line_error(proc, 1, "spec.tsv: line 2", "nope.tsv", "not found")


def test_unknown_format(tmp_path):
    data = planted(tmp_path / "a.tsv")
    proc = dbtools("train", str(data), "--format", "xml", "-o", str(tmp_path / "x.bank"))
    assert_one_line_error(proc, 2, "--format xml")


def test_regression_on_real_pbm_probes(tmp_path):
    """WT1 universal PBM: train on 4/5 of the probes, Pearson and Spearman on the held-out fifth."""
    from conftest import shared_path

    rows = shared_path("pbm", "WT1_REF_R1_combinatorial.txt").read_text().splitlines()
    train = tmp_path / "train.tsv"
    test = tmp_path / "test.tsv"
    pairs = [ln.split("\t") for ln in rows]
    train.write_text("".join(f"{s}\t{v}\n" for k, (v, s) in enumerate(pairs) if k % 5))
    test.write_text("".join(f"{s}\t{v}\n" for k, (v, s) in enumerate(pairs) if k % 5 == 0))
    out = tmp_path / "pbm.bank"
    proc = dbtools("train", str(train), "--pooling", "maxavg", "--detector-len", "16", "--steps", "1500",
                   "--checkpoint-every", "250", "--restarts", "1", "-o", str(out), "--device", "cpu")
    assert proc.returncode == 0, proc.stderr
    info = load_bank(out).models[0].info
    assert info.experiment == "regression" and info.train_length == 60
    assert info.provenance["hyperparameters"]["learning_rate"] == 0.005
    assert info.provenance["target_transform"]["sd"] > 0
    ev = dbtools("evaluate", str(test), "--bank", str(out), "--device", "cpu")
    row = ev.stdout.splitlines()[1].split("\t")
    assert float(row[7]) > 0.7 and float(row[8]) > 0.7  # Pearson, Spearman on held-out probes


def test_detector_lengths_are_candidates_on_the_same_validation_rows(tmp_path):
    """Each length x restart trains on the same rows; the kept model is the lowest validation
    loss of all; a spec that sets detector_len trains that length only."""
    import torch

    from dbtools.train.bank_training import DataOptions, ModelSpec, RunOptions, train_bank
    from dbtools.train.hyper import Hyper

    data = str(planted(tmp_path / "a.tsv"))
    specs = [ModelSpec(id="free", train=data, hyper=Hyper(detector_len=6)),
             ModelSpec(id="fixed", train=data, hyper=Hyper(detector_len=8), fixed=("detector_len",))]
    run = RunOptions(steps=40, checkpoint_every=20, restarts=2, detector_lens=(6, 9), seed=1)
    bank = train_bank(specs, DataOptions(), run, torch.device("cpu"))
    free, fixed = (m.info for m in bank.models)
    sel = free.provenance["selection"]
    assert [c["detector_len"] for c in sel["candidates"]] == [6, 6, 9, 9]
    losses = [c["metrics"]["validation_loss"] for c in sel["candidates"]]
    assert sel["chosen"] == int(np.argmin(losses))
    assert free.arch.detector_len == sel["candidates"][sel["chosen"]]["detector_len"]
    assert bank.models[0].arrays["detectors"].shape[0] == free.arch.detector_len
    assert [c["detector_len"] for c in fixed.provenance["selection"]["candidates"]] == [8, 8]
    assert fixed.arch.detector_len == 8
