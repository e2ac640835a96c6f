"""The fused CPU pooling kernel: same values as the torch path, and a clean fallback without a compiler."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from dbtools.engine import native as pooling_native
from dbtools.io.encode import N, encode
from dbtools.engine.bank_engine import BankEngine
from oracle import score as oracle_score
from test_forward import pick_architectures


@pytest.fixture(autouse=True)
def kernel_forced_on(monkeypatch):
    """The kernel is tested on every CPU, though only CPUs with AVX-512 use it by default."""
    monkeypatch.setenv("DBTOOLS_NATIVE", "1")


@pytest.fixture(scope="module")
def mixed(bank):
    sub = bank.subset(pick_architectures(bank))
    return sub, BankEngine(sub, "cpu")


def test_kernel_is_built_here(mixed):
    """CI machines have a C compiler: the fast path must really be the one under test."""
    assert pooling_native.library() is not None
    _, engine = mixed
    assert all(engine._fused(g, torch.device("cpu")) for g in engine.groups)


@pytest.mark.parametrize("length, window, average", [
    (101, None, False), (101, None, True),  # the default window int(1.5 m), many per sequence
    (150, 101, False), (150, 101, True),  # long windows, a few per sequence
    (40, 36, True), (64, 40, False),  # windows as long as the longest detector (36) and just above
    (101, 101, False), (90, 500, True),  # whole sequences: one window each
])
def test_fused_kernel_equals_torch_path(mixed, monkeypatch, length, window, average):
    sub, engine = mixed
    rng = np.random.default_rng(length + (window or 0))
    codes = rng.integers(0, 4, size=(5, length))
    codes[1, 10:30] = N  # a run of N inside windows
    codes[2, :] = N  # all N
    codes[3, -7:] = N  # N at the end
    fused = engine.score(codes, window, average).numpy()
    monkeypatch.setattr(BankEngine, "_fused", staticmethod(lambda g, device: False))
    plain = engine.score(codes, window, average).numpy()
    np.testing.assert_allclose(fused, plain, rtol=1e-5, atol=2e-5)


def test_fused_kernel_equals_oracle_on_a_long_sequence(mixed):
    """More windows than one kernel tile (1,024), with N runs across tile boundaries."""
    sub, engine = mixed
    rng = np.random.default_rng(7)
    seq = "".join(rng.choice(list("ACGT"), size=2300))
    seq = seq[:1000] + "N" * 60 + seq[1060:2000] + "n" * 5 + seq[2005:]
    got = engine.score(encode(seq)[None], 60, False)[0].numpy()
    for j in range(0, len(sub), 3):
        want = oracle_score(sub.models[j], seq, 60, False)
        assert got[j] == pytest.approx(want, abs=2e-5, rel=1e-5), sub.models[j].info.id


def test_no_compiler_falls_back_to_torch_with_one_note(mixed, monkeypatch, tmp_path, capsys):
    sub, _ = mixed
    monkeypatch.setattr(pooling_native, "_state", {})
    monkeypatch.setenv("CC", str(tmp_path / "no-such-cc"))
    monkeypatch.setenv("DBTOOLS_CACHE", str(tmp_path / "cache"))
    assert pooling_native.library() is None
    assert pooling_native.library() is None
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "no-such-cc" in err and "torch path" in err
    engine = BankEngine(sub, "cpu")
    seq = "ACGTTGCAAGGCTAGCTAGGATCCGATCGATNNNACGTAGCTAGCTAGCATCGACTAGCTAGCATGCATCGAT"
    got = engine.score(encode(seq)[None])[0].numpy()
    for j in range(len(sub)):
        assert got[j] == pytest.approx(oracle_score(sub.models[j], seq, None, False), abs=2e-5)


def test_a_build_past_its_time_leaves_no_compiler_running(monkeypatch, tmp_path, capsys):
    # a compiler driver whose child (as cc1 is) outlives it unless its whole group is killed
    child = tmp_path / "child.pid"
    cc = tmp_path / "slow-cc"
    cc.write_text(f"#!/bin/sh\nsleep 60 &\necho $! > {child}\nwait\n")
    cc.chmod(0o755)
    monkeypatch.setattr(pooling_native, "_state", {})
    monkeypatch.setattr(pooling_native, "BUILD_TIMEOUT", 1)
    monkeypatch.setenv("CC", str(cc))
    monkeypatch.setenv("DBTOOLS_CACHE", str(tmp_path / "cache"))
    assert pooling_native.library() is None
    assert "timed out" in capsys.readouterr().err
    pid = int(child.read_text())
    try:
        with open(f"/proc/{pid}/stat") as fh:
            state = fh.read().rsplit(")", 1)[1].split()[0]
    except FileNotFoundError:
        state = "gone"
    assert state in ("gone", "Z", "X")  # killed (a zombie until its new parent reaps it)
    assert not list((tmp_path / "cache").glob("*.so"))


@pytest.mark.parametrize("avx512", [True, False])
def test_by_default_the_kernel_is_used_only_with_avx512(monkeypatch, capsys, avx512):
    monkeypatch.setenv("DBTOOLS_NATIVE", "auto")
    monkeypatch.setattr(pooling_native, "has_avx512", lambda: avx512)
    assert (pooling_native.library() is not None) == avx512
    assert capsys.readouterr().err == ""  # the torch path is the right one there: nothing to say


def test_native_can_be_switched_off(monkeypatch):
    monkeypatch.setenv("DBTOOLS_NATIVE", "0")
    assert pooling_native.library() is None


@pytest.fixture
def stub_source(monkeypatch, tmp_path):
    """A stand-in kernel that builds in a blink (the real one takes half a minute without
    AVX-512): these tests are about where builds go and when they are reused."""
    src = tmp_path / "stub" / "kernel.c"
    src.parent.mkdir()
    src.write_text("int dbt_pool_windows(void) { return 0; }\n")
    monkeypatch.setattr(pooling_native, "SOURCE", src)
    return src


def test_built_kernel_is_cached_per_source_and_cpu(monkeypatch, tmp_path, stub_source):
    cache = tmp_path / "cache"
    monkeypatch.setattr(pooling_native, "_state", {})
    monkeypatch.setenv("DBTOOLS_CACHE", str(cache))
    assert pooling_native.library() is not None
    built = list(cache.glob("pooling_kernel-*.so"))
    assert len(built) == 1 and not list(cache.glob("*.so.*")) and not list(cache.glob("tmp*"))
    monkeypatch.setattr(pooling_native, "_state", {})
    mtime = built[0].stat().st_mtime_ns
    assert pooling_native.library() is not None
    assert built[0].stat().st_mtime_ns == mtime  # loaded from the cache, not rebuilt
    stub_source.write_text("int dbt_pool_windows(void) { return 1; }\n")
    monkeypatch.setattr(pooling_native, "_state", {})
    assert pooling_native.library() is not None
    assert len(list(cache.glob("pooling_kernel-*.so"))) == 2  # a changed source is built anew


def test_kernel_without_fused_heads_equals_torch_path(mixed, monkeypatch):
    """Groups whose shape does not fit a fused head (more than 16 detectors, an odd hidden
    layer) take pooled features from the kernel and run the dense layers in torch."""
    sub, _ = mixed
    engine = BankEngine(sub, "cpu")
    assert all(g.strands is not None for g in engine.groups)
    for g in engine.groups:
        g.strands = None
    rng = np.random.default_rng(3)
    codes = rng.integers(0, 5, size=(4, 120))
    for window, average in ((None, False), (None, True), (101, False)):
        features = engine.score(codes, window, average).numpy()
        with monkeypatch.context() as mp:
            mp.setattr(BankEngine, "_fused", staticmethod(lambda g, device: False))
            plain = engine.score(codes, window, average).numpy()
        np.testing.assert_allclose(features, plain, rtol=1e-5, atol=2e-5)


def test_a_cache_others_can_write_is_not_used(monkeypatch, tmp_path, stub_source):
    """The compiled kernel is code: a cache folder writable by others is passed over."""
    shared = tmp_path / "shared"
    shared.mkdir()
    shared.chmod(0o777)
    monkeypatch.setattr(pooling_native, "_state", {})
    monkeypatch.setenv("DBTOOLS_CACHE", str(shared))
    monkeypatch.setattr(pooling_native.tempfile, "gettempdir", lambda: str(tmp_path / "private"))
    assert pooling_native.library() is not None
    assert not list(shared.iterdir())
    assert list((tmp_path / "private").glob("dbtools-*/pooling_kernel-*.so"))
