"""Thread policy: pools sized from the CPUs the process may use and --threads, torch's intra-op
threads at 1 inside steps, no nested pools."""

from __future__ import annotations

import threading

import pytest
import torch

from dbtools import parallel


@pytest.fixture
def one_cpu(monkeypatch):
    monkeypatch.setattr(parallel.os, "sched_getaffinity", lambda pid: {0})
    monkeypatch.setattr(parallel, "_command_threads", None)


def record_steps(threads=None):
    seen = []

    def run(step):
        seen.append((step, threading.get_ident(), torch.get_num_threads()))

    parallel.parallel_steps(run, range(8), torch.device("cpu"), threads)
    return seen


def test_one_allowed_cpu_means_one_thread(one_cpu):
    assert parallel.cpu_count() == 1 and parallel.cpu_count(3) == 3
    seen = record_steps()
    assert [s for s, _, _ in seen] == list(range(8))
    assert {t for _, t, _ in seen} == {threading.get_ident()} and {n for _, _, n in seen} == {1}


def test_threads_flag_sizes_the_pool_and_torch_threads_are_one_inside(monkeypatch):
    before = torch.get_num_threads()
    monkeypatch.setattr(parallel, "_command_threads", None)
    seen = record_steps(threads=2)
    assert sorted(s for s, _, _ in seen) == list(range(8))
    assert len({t for _, t, _ in seen}) <= 2 and {n for _, _, n in seen} == {1}
    assert torch.get_num_threads() == before  # restored
    monkeypatch.setattr(parallel, "_command_threads", 1)  # a command's --threads 1
    assert {t for _, t, _ in record_steps()} == {threading.get_ident()}


def test_use_threads_sets_the_command_default(monkeypatch):
    before = torch.get_num_threads()
    monkeypatch.setattr(parallel, "_command_threads", None)
    try:
        assert parallel.use_threads(None) == len(parallel.os.sched_getaffinity(0))
        assert parallel.use_threads(3) == 3 and parallel.cpu_count() == 3 and torch.get_num_threads() == 3
    finally:
        torch.set_num_threads(before)


def test_steps_inside_a_step_run_in_that_thread():
    inner = []

    def outer(step):
        me = threading.get_ident()
        parallel.parallel_steps(lambda s: inner.append((step, s, threading.get_ident() == me)), range(3),
                                torch.device("cpu"), threads=2)

    parallel.parallel_steps(outer, range(4), torch.device("cpu"), threads=2)
    assert sorted((a, b) for a, b, _ in inner) == [(a, b) for a in range(4) for b in range(3)]
    assert all(same for _, _, same in inner)


def test_tracks_are_written_in_the_callers_thread_on_one_cpu(tmp_path, monkeypatch):
    """A scan allowed one thread writes its tracks in its own thread, not beside it; the files are
    the same either way."""
    import numpy as np

    from dbtools.scan import writers

    fed = []
    feed = writers.feed
    monkeypatch.setattr(writers, "feed", lambda *a: (fed.append(threading.get_ident()), feed(*a)))
    values = np.arange(40, dtype=np.float32).reshape(20, 2) / 7
    texts = []
    for threads in (1, 2):
        paths = [tmp_path / f"{threads}_{k}.bedGraph" for k in range(2)]
        fed.clear()
        with writers.OpenTracks(paths, "bedgraph", [("chr1", 1000)], threads) as tracks:
            tracks.add_columns([0, 1], "chr1", 100, 5, values)
        assert (set(fed) == {threading.get_ident()}) == (threads == 1)
        texts.append([p.read_text() for p in paths])
    assert texts[0] == texts[1] and texts[0][0].count("\n") >= 10


def test_small_ops_run_on_one_intra_op_thread_and_keep_the_pools(monkeypatch):
    before = torch.get_num_threads()
    monkeypatch.setattr(parallel, "_command_threads", 2)
    with parallel.small_ops(torch.device("cpu")):
        assert torch.get_num_threads() == 1 and parallel.cpu_count() == 2
        seen = record_steps()
        assert len({t for _, t, _ in seen}) <= 2
    assert torch.get_num_threads() == before and parallel.cpu_count() == 2
