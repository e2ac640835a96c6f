"""`dbtools calibrate`: the sampling protocol, one batched run for all trials and folds, the
choice of both protocols (the defaults candidate and the one-standard-error rule; deepbind's
lowest mean loss), interrupt-and-resume, `train --calibration`, and bad input."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch

import dbtools.train.calibrate as cal
import dbtools.train.runs as runs
from dbtools.bank.store import load_bank
from dbtools.train.calibrate import Protocol, calibrate_to_files, one_se_rule, sample_trials, train_from_calibration
from dbtools.errors import DbtoolsError
from dbtools.train.interrupt import Interrupted
from dbtools.train.bank_training import DataOptions, ModelSpec, RunOptions, train_bank
from dbtools.train.hyper import Hyper
from test_cli import assert_one_line_error, dbtools
from test_resume import StopAfter
from test_train_cli import planted

CPU = torch.device("cpu")
SMALL = dict(trials=4, folds=2, final_trials=2, steps=40, checkpoint_every=20, batch_size=16, seed=4, detector_lens=(8,))


def test_trials_are_drawn_from_the_published_ranges():
    trials = sample_trials(400, np.random.default_rng(0), Hyper(detector_len=12), {"dropout": 0.1})
    assert [t.num_hidden for t in trials[:4]] == [0, 32, 0, 32]
    for name, lo, hi in (("learning_rate", 5e-4, 5e-2), ("init_conv", 1e-7, 1e-3), ("init_fc", 1e-5, 1e-2),
                         ("l1_conv", 1e-15, 1e-3), ("l1_fc", 1e-10, 1e-3), ("momentum", 0.95, 0.99)):
        v = np.array([getattr(t, name) for t in trials])
        assert v.min() >= lo and v.max() <= hi, name
        if name != "momentum":  # log-uniform: the median sits near the geometric middle
            assert abs(np.log10(np.median(v)) - (math.log10(lo) + math.log10(hi)) / 2) < 0.1 * math.log10(hi / lo)
    assert {t.dropout for t in trials} == {0.1} and {t.detector_len for t in trials} == {12}
    # the hidden models' output layer: its own draws, from the fully connected ranges (the original's M2)
    hidden, plain = trials[1::2], trials[::2]
    assert {t.init_out for t in plain} == {None} and {t.l1_out for t in plain} == {None}
    for name, lo, hi in (("init_out", 1e-5, 1e-2), ("l1_out", 1e-10, 1e-3)):
        v = np.array([getattr(t, name) for t in hidden])
        assert v.min() >= lo and v.max() <= hi, name
        assert abs(np.log10(np.median(v)) - (math.log10(lo) + math.log10(hi)) / 2) < 0.15 * math.log10(hi / lo)
    assert not any(t.init_out == t.init_fc or t.l1_out == t.l1_fc for t in hidden)
    # a spec that fixes init_fc fixes the output layer's too, unless it also sets init_out
    fixed = sample_trials(4, np.random.default_rng(0), Hyper(init_fc=0.05), {"init_fc": 0.05})
    assert fixed[1].init_out is None and fixed[1].l1_out is not None
    both = sample_trials(4, np.random.default_rng(0), Hyper(), {"init_fc": 0.05, "init_out": 0.002})
    assert both[1].init_out == 0.002 and both[0].init_out == 0.002
    free = sample_trials(400, np.random.default_rng(1), Hyper(), {})
    share = np.mean([t.dropout == 0 for t in free])
    assert 0.4 < share < 0.6 and {t.dropout for t in free} == {0.0, 0.25, 0.5}


def test_detector_lengths_are_shared_out_among_the_trials():
    trials = sample_trials(8, np.random.default_rng(0), Hyper(), {}, (10, 16))
    assert [(t.detector_len, t.num_hidden) for t in trials[:4]] == [(10, 0), (10, 32), (16, 0), (16, 32)]
    plain = sample_trials(8, np.random.default_rng(0), Hyper(), {})
    assert [t.learning_rate for t in trials] == [t.learning_rate for t in plain]  # the same draws otherwise
    fixed = sample_trials(4, np.random.default_rng(0), Hyper(), {"detector_len": 12}, (10, 16))
    assert {t.detector_len for t in fixed} == {12}  # a spec that sets the length keeps it


@pytest.fixture
def calls(monkeypatch) -> list[int]:
    """The number of tasks of every batched training run, in order."""
    seen = []
    real = runs.train_group

    def counting(tasks, *a, **k):
        seen.append(len(tasks))
        return real(tasks, *a, **k)

    monkeypatch.setattr(runs, "train_group", counting)
    return seen


def specs(tmp_path, n=(160, 140)):
    return [ModelSpec(id=f"p{i}", train=str(planted(tmp_path / f"p{i}.tsv", n=k, seed=i)), protein=f"P{i}",
                      hyper=Hyper(detector_len=8)) for i, k in enumerate(n)]


def test_deepbind_protocol_shares_one_batched_run_and_chooses_the_lowest_mean_loss(tmp_path, calls):
    doc, bank = calibrate_to_files(specs(tmp_path), DataOptions(), Protocol(**SMALL, name="deepbind"), CPU,
                                   tmp_path / "c.json", tmp_path / "c.bank", tmp_path / "plots")
    assert calls == [2 * 4 * 2, 2 * 2]  # every trial x fold of both proteins, then every final trial
    saved = json.loads((tmp_path / "c.json").read_text())
    assert saved["protocol"]["trials"] == 4 and saved["protocol"]["seed"] == 4
    assert "name" not in saved["protocol"]  # the document the protocol wrote before it had a name
    for entry in saved["proteins"]:
        assert len(entry["trials"]) == 4 and all(len(t["folds"]) == 2 for t in entry["trials"])
        assert all(t["checkpoints"] == [20, 40] for t in entry["trials"])
        means = np.array([[np.mean([f["val_loss"][c] for f in t["folds"]]) for c in range(2)] for t in entry["trials"]])
        t, c = np.unravel_index(np.argmin(means), means.shape)
        assert entry["choice"]["trial"] == t and entry["choice"]["step"] == [20, 40][c]
        assert len(entry["final"]["training_loss"]) == 2
        assert entry["final"]["kept"] == int(np.argmin(entry["final"]["training_loss"]))
        assert (tmp_path / "plots" / f"{entry['id']}.calibration.png").stat().st_size > 10_000
    assert bank.ids == ["p0", "p1"]
    m = bank.models[0].info
    assert m.arch.num_hidden == saved["proteins"][0]["choice"]["hyperparameters"]["num_hidden"]
    # `dbtools train --calibration` trains the same final models
    again = train_from_calibration(tmp_path / "c.json", tmp_path / "again.bank", CPU)
    for a, b in zip(bank.models, again.models):
        for k in a.arrays:
            np.testing.assert_array_equal(a.arrays[k], b.arrays[k])


def test_one_se_rule_keeps_the_defaults_unless_a_trial_beats_them_by_one_standard_error():
    defaults = np.array([[0.80, 0.81, 0.79], [0.82, 0.83, 0.81]])  # [checkpoints, folds]: best at 1, mean 0.82
    worse = defaults - 0.1
    steady = defaults + [[0.0, 0.0, 0.0], [0.01, 0.01, 0.01]]  # +0.01 on every fold
    out = one_se_rule(np.stack([defaults, steady, worse]), 1)
    assert out["defaults"] == (0, 1) and out["challenger"] == (1, 1) and out["chosen"] == (1, 1)
    assert out["difference"] == pytest.approx(0.01) and out["difference_se"] == pytest.approx(0, abs=1e-12)
    # a higher mean carried by one fold: +0.03 on average, but a standard error of 0.045
    lucky = defaults + [[0.0, 0.0, 0.0], [0.12, -0.01, -0.02]]
    out = one_se_rule(np.stack([defaults, worse, lucky]), 1)
    assert out["challenger"] == (2, 1) and out["chosen"] == (0, 1)
    assert out["difference"] == pytest.approx(0.03) and out["difference_se"] == pytest.approx(0.0451, abs=1e-4)
    # the best of several defaults candidates is the reference; each trial at its own best checkpoint
    early = np.array([[0.90, 0.91, 0.89], [0.70, 0.70, 0.70]])
    out = one_se_rule(np.stack([worse, defaults, early, worse]), 2)
    assert out["defaults"] == (1, 1) and out["challenger"] == (2, 0) and out["chosen"] == (2, 0)
    assert one_se_rule(defaults[None], 1)["chosen"] == (0, 1) and one_se_rule(defaults[None], 1)["challenger"] is None


def test_dbtools_protocol_has_the_defaults_candidate_and_reports_why_it_chose(tmp_path, calls):
    doc, bank = calibrate_to_files(specs(tmp_path), DataOptions(), Protocol(**SMALL), CPU, tmp_path / "c.json",
                                   tmp_path / "c.bank")
    assert calls[0] == 2 * (1 + 4) * 2  # per protein the defaults (one detector length) and 4 random trials, 2 folds
    saved = json.loads((tmp_path / "c.json").read_text())
    assert saved["protocol"]["name"] == "dbtools"
    for entry in saved["proteins"]:
        assert entry["defaults_trials"] == 1
        assert entry["hyperparameters"][0] == Hyper(detector_len=8).for_task(True).to_json()  # dbtools train's
        metric = np.array([[f["val_metric"] for f in t["folds"]] for t in entry["trials"]]).transpose(0, 2, 1)
        rule = one_se_rule(metric, 1)
        choice, why = entry["choice"], entry["selection"]
        assert (choice["trial"], entry["trials"][choice["trial"]]["checkpoints"].index(choice["step"])) == rule["chosen"]
        assert choice["candidate"] == why["chosen"] == ("defaults" if rule["chosen"] == rule["defaults"] else "random")
        for candidate in (why["defaults"], why["best_random"]):
            assert set(candidate) == {"trial", "step", "cv_metric", "cv_metric_se", "folds"}
            assert candidate["cv_metric"] == pytest.approx(np.mean(candidate["folds"]))
        assert why["difference"] == pytest.approx(why["best_random"]["cv_metric"] - why["defaults"]["cv_metric"])
        assert why["difference_se"] == pytest.approx(rule["difference_se"]) and "standard error" in why["reason"]
    # the random trials are the deepbind protocol's, to the number
    old, _ = calibrate_to_files(specs(tmp_path), DataOptions(), Protocol(**SMALL, name="deepbind"), CPU,
                                tmp_path / "d.json")
    for a, b in zip(old["proteins"], doc["proteins"]):
        assert a["hyperparameters"] == b["hyperparameters"][1:]
        assert [t["folds"] for t in a["trials"]] == [t["folds"] for t in b["trials"][1:]]
    # where the defaults are kept, the model is the one dbtools train trains, array for array
    trained = train_bank(specs(tmp_path), DataOptions(), RunOptions(steps=40, checkpoint_every=20, batch_size=16,
                                                                    seed=4, detector_lens=(8,)), CPU)
    kept = [i for i, e in enumerate(doc["proteins"]) if e["choice"]["candidate"] == "defaults"]
    assert kept
    for i in kept:
        assert all(np.array_equal(v, trained.models[i].arrays[k]) for k, v in bank.models[i].arrays.items())
        assert bank.models[i].info.provenance["calibration"]["candidate"] == "defaults"
    # a random trial chosen: its setting on all rows from final_trials seeds up to the chosen step, as deepbind's
    entry = doc["proteins"][1]
    entry["choice"] = {"trial": 2, "step": 20, "candidate": "random", "cv_metric": 0.5, "cv_loss": 0.7,
                       "hyperparameters": entry["hyperparameters"][2]}
    model = cal.final_models(doc, CPU).models[1]
    assert model.info.provenance["hyperparameters"] == entry["hyperparameters"][2]
    assert len(entry["final"]["training_loss"]) == 2 and model.info.provenance["steps"] == 20
    assert model.info.provenance["calibration"]["chosen_trial"] == 2
    assert model.info.provenance["calibration"]["candidate"] == "random"
    # `dbtools train --calibration` trains the same final models
    again = train_from_calibration(tmp_path / "c.json", tmp_path / "again.bank", CPU)
    for a, b in zip(bank.models, again.models):
        assert all(np.array_equal(v, b.arrays[k]) for k, v in a.arrays.items())


@pytest.mark.parametrize("stop_at", [25, 50])  # inside the trials, inside the final training
def test_interrupt_and_resume_give_the_same_report_and_bank(tmp_path, stop_at):
    protocol = Protocol(**SMALL)
    whole, wbank = calibrate_to_files(specs(tmp_path, (130,)), DataOptions(), protocol, CPU, tmp_path / "w.json",
                                      tmp_path / "w.bank")
    with pytest.raises(Interrupted):
        calibrate_to_files(specs(tmp_path, (130,)), DataOptions(), protocol, CPU, tmp_path / "r.json",
                           tmp_path / "r.bank", stop=StopAfter(stop_at))
    assert not (tmp_path / "r.json").exists() and not (tmp_path / "r.bank").exists()
    resumed, rbank = calibrate_to_files(specs(tmp_path, (130,)), DataOptions(), protocol, CPU, tmp_path / "r.json",
                                        tmp_path / "r.bank", resume=True)
    assert (tmp_path / "w.json").read_text() == (tmp_path / "r.json").read_text()
    for a, b in zip(wbank.models, rbank.models):
        for k in a.arrays:
            np.testing.assert_array_equal(a.arrays[k], b.arrays[k])


def test_too_few_examples_and_constant_targets(tmp_path):
    with pytest.raises(DbtoolsError, match=r"p0.tsv: 10 examples are fewer than folds x batch size \(2 x 16\)"):
        cal.calibrate(specs(tmp_path, (10,)), DataOptions(), Protocol(**SMALL), CPU)
    flat = tmp_path / "flat.tsv"
    flat.write_text("".join(f"{'ACGT' * 10}\t2.5\n" for _ in range(100)))
    with pytest.raises(DbtoolsError, match="flat.tsv: all targets are 2.5: regression needs targets that vary"):
        cal.calibrate([ModelSpec(id="f", train=str(flat))], DataOptions(), Protocol(**SMALL), CPU)


def test_command_line_errors(tmp_path):
    data = planted(tmp_path / "a.tsv", n=100)
    proc = dbtools("calibrate", str(data), "--trials", "0", "-o", str(tmp_path / "c.json"))
    assert_one_line_error(proc, 2, "--trials must be at least 1")
    proc = dbtools("calibrate", str(data), "--protocol", "paper", "-o", str(tmp_path / "c.json"))
    assert_one_line_error(proc, 2, "--protocol paper: expected dbtools or deepbind")
    (tmp_path / "spec.tsv").write_text("id\ttrain\thyperparameters\nx\ta.tsv\tlearnig_rate=0.1\n")
    proc = dbtools("calibrate", "--spec", str(tmp_path / "spec.tsv"), "-o", str(tmp_path / "c.json"))
    assert_one_line_error(proc, 1, "spec.tsv: line 2: unknown hyperparameter 'learnig_rate=0.1'")
    proc = dbtools("train", "--calibration", str(data), "-o", str(tmp_path / "x.bank"))
    assert_one_line_error(proc, 1, "a.tsv: not valid JSON")


def test_quick_calibration_on_the_command_line(tmp_path):
    data = planted(tmp_path / "a.tsv", n=160)
    proc = dbtools("calibrate", str(data), "--quick", "--max-steps", "40", "--checkpoint-every", "20",
                   "--batch-size", "16", "--detector-len", "8", "-o", str(tmp_path / "q.json"),
                   "--bank-out", str(tmp_path / "q.bank"), "--device", "cpu")
    assert proc.returncode == 0, proc.stderr
    doc = json.loads((tmp_path / "q.json").read_text())
    assert doc["protocol"]["folds"] == 2 and doc["protocol"]["steps"] == 40
    assert len(doc["proteins"][0]["trials"]) == 1 + 3 and doc["command"].startswith("dbtools calibrate")
    assert doc["protocol"]["name"] == "dbtools" and "reason" in doc["proteins"][0]["selection"]
    assert "CV" in proc.stderr and (tmp_path / "q_plots" / "a.calibration.png").exists()
    assert load_bank(tmp_path / "q.bank").ids == ["a"]


def test_folds_keep_each_peak_with_its_shuffles(tmp_path):
    fa = tmp_path / "peaks.fa"
    rng = np.random.default_rng(5)
    fa.write_text("".join(f">p{i}\n{''.join(rng.choice(list('ACGT'), 30))}\n" for i in range(60)))
    spec = ModelSpec(id="p", train=str(fa), protein="P", hyper=Hyper(detector_len=8))
    (protein,) = cal.prepare_proteins([spec], DataOptions(shuffles=5), Protocol(**SMALL))
    origin, y = protein.prepared.origin, protein.prepared.task.targets
    assert len(y) == 60 * 6 and y.sum() == 60
    seen = [set(origin[rows]) for rows in protein.folds]
    assert sum(map(len, seen)) == 60 and seen[0].isdisjoint(seen[1])  # no peak in two folds
    tasks, vals, index = cal.trial_tasks([protein], Protocol(**SMALL))
    assert tasks[index[0, 0, 0]].codes is tasks[index[0, 1, 0]].codes  # trials of a fold share their set
    codes, targets, weights = vals[index[0, 0, 1]]
    assert set(weights[targets == 1]) == {5.0} and (targets == 0).sum() == 5 * (targets == 1).sum()

