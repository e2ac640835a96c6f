"""Interrupted training leaves a resumable state and no bank; --resume ends where an
uninterrupted run ends, bit for bit."""

from __future__ import annotations

import signal
import subprocess
import sys
import time

import numpy as np
import pytest
import torch

from dbtools.bank.store import load_bank
from dbtools.errors import EXIT_TERMINATED, DbtoolsError
from dbtools.train.interrupt import Interrupted
from dbtools.train.bank_training import DataOptions, ModelSpec, RunOptions, checkpoint_folder, train_to_file
from dbtools.train.hyper import Hyper
from test_train_cli import planted

CPU = torch.device("cpu")


class StopAfter:
    """Asks to stop after `n` queries (the trainer asks once per step)."""

    def __init__(self, n: int):
        self.n, self.signum = n, signal.SIGTERM

    def __call__(self) -> bool:
        self.n -= 1
        return self.n < 0


def specs(tmp_path):
    hyper = Hyper(detector_len=8, init_conv=0.01, init_fc=0.01, dropout=0.25)
    return [ModelSpec(id="a", train=str(planted(tmp_path / "a.tsv", n=120, seed=1)), hyper=hyper),
            ModelSpec(id="b", train=str(planted(tmp_path / "b.tsv", n=100, seed=2)),
                      hyper=Hyper(detector_len=8, num_hidden=32, init_conv=0.01, init_fc=0.01)),
            ModelSpec(id="c", train=str(planted(tmp_path / "c.tsv", n=90, seed=3)),
                      hyper=Hyper(detector_len=6, init_conv=0.01, init_fc=0.01))]  # a second group


@pytest.mark.parametrize("stop_at", [7, 20, 45])  # mid-interval, on a checkpoint, in the second group
def test_resume_gives_the_uninterrupted_bank(tmp_path, stop_at):
    run = RunOptions(steps=30, checkpoint_every=10, batch_size=16, seed=3)
    whole = train_to_file(specs(tmp_path), str(tmp_path / "whole.bank"), DataOptions(), run, CPU)
    out = tmp_path / "resumed.bank"
    with pytest.raises(Interrupted, match="rerun the same command with --resume") as err:
        train_to_file(specs(tmp_path), str(out), DataOptions(), run, CPU, stop=StopAfter(stop_at))
    assert err.value.exit_code == 128 + signal.SIGTERM
    assert not out.exists() and checkpoint_folder(out).is_dir()
    resumed = train_to_file(specs(tmp_path), str(out), DataOptions(), run, CPU, resume=True)
    assert not checkpoint_folder(out).exists()
    for a, b in zip(whole.models, resumed.models):
        assert a.info.provenance == b.info.provenance
        for k in a.arrays:
            np.testing.assert_array_equal(a.arrays[k], b.arrays[k])


def test_resume_refuses_the_state_of_another_run(tmp_path):
    run = RunOptions(steps=20, checkpoint_every=10, batch_size=16)
    out = tmp_path / "x.bank"
    with pytest.raises(Interrupted):
        train_to_file(specs(tmp_path), str(out), DataOptions(), run, CPU, stop=StopAfter(12))
    with pytest.raises(DbtoolsError, match="different run"):
        train_to_file(specs(tmp_path), str(out), DataOptions(), RunOptions(steps=40, checkpoint_every=10,
                                                                          batch_size=16), CPU, resume=True)


def test_sigterm_then_resume_on_the_command_line(tmp_path):
    data = planted(tmp_path / "a.tsv", n=200)
    args = [sys.executable, "-m", "dbtools_cli.main", "train", str(data), "--detector-len", "8",
            "--batch-size", "32", "--checkpoint-every", "10", "--seed", "2", "--device", "cpu"]
    args += ["--steps", "400"]
    whole = subprocess.run(args + ["-o", str(tmp_path / "whole.bank")], capture_output=True, text=True)
    assert whole.returncode == 0, whole.stderr
    out = tmp_path / "killed.bank"
    proc = subprocess.Popen(args + ["-o", str(out)], stderr=subprocess.PIPE, text=True)
    folder = checkpoint_folder(out)
    deadline = time.time() + 120
    while not folder.is_dir() and time.time() < deadline and proc.poll() is None:
        time.sleep(0.02)
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == EXIT_TERMINATED == 128 + signal.SIGTERM, err
    assert err.count("\n") == 1 and "interrupted after step" in err and "--resume" in err
    assert not out.exists() and folder.is_dir()
    # a different step budget is a different run
    bad = subprocess.run(args + ["--steps", "500", "-o", str(out), "--resume"], capture_output=True, text=True)
    assert bad.returncode == 1 and "different run" in bad.stderr
    resumed = subprocess.run(args + ["-o", str(out), "--resume"], capture_output=True, text=True)
    assert resumed.returncode == 0, resumed.stderr
    a, b = load_bank(tmp_path / "whole.bank").models[0], load_bank(out).models[0]
    assert a.info.provenance == b.info.provenance
    for k in a.arrays:
        np.testing.assert_array_equal(a.arrays[k], b.arrays[k])
