"""The batched engine against an independent per-model oracle, on random sequences and options."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from dbtools.io.encode import encode
from dbtools.engine.bank_engine import BankEngine
from dbtools.score import ScoreOptions, score_codes
from oracle import score as oracle_score


def pick_architectures(bank) -> list[int]:
    """One model of every architecture in the bank (detector length, pooling, hidden, strands)."""
    seen, chosen = set(), []
    for i, m in enumerate(bank.models):
        a = m.info.arch
        key = (a.detector_len, a.avg_pooling, a.num_hidden, a.reverse_complement)
        if key not in seen:
            seen.add(key)
            chosen.append(i)
    return chosen


@pytest.fixture(scope="module")
def mixed(bank):
    idx = pick_architectures(bank)
    sub = bank.subset(idx)
    return sub, BankEngine(sub, "cpu")


def test_mixed_bank_covers_every_published_architecture(mixed):
    sub, _ = mixed
    archs = {m.info.arch for m in sub.models}
    assert {a.detector_len for a in archs} == {14, 16, 20, 24, 32, 36}
    assert {a.avg_pooling for a in archs} == {False, True}
    assert {a.num_hidden for a in archs} == {0, 32}
    assert {a.reverse_complement for a in archs} == {False, True}


seqs = st.text(alphabet="ACGTNacgtnRY", min_size=1, max_size=70)


@settings(max_examples=25, deadline=None)
@given(seq=seqs, window=st.sampled_from([None, 1, 7, 20, 40]), average=st.booleans(), data=st.data())
def test_engine_equals_oracle(mixed, seq, window, average, data):
    sub, engine = mixed
    cols = data.draw(st.lists(st.integers(0, len(sub) - 1), min_size=1, max_size=4, unique=True))
    got = engine.score(encode(seq)[None], window, average)[0].numpy()
    for j in cols:
        want = oracle_score(sub.models[j], seq, window, average)
        assert got[j] == pytest.approx(want, abs=2e-5), (sub.models[j].info.id, seq, window, average)


def test_batched_bank_equals_one_model_at_a_time(bank):
    rng = np.random.default_rng(1)
    idx = sorted(rng.choice(len(bank), 40, replace=False).tolist())
    sub = bank.subset(idx)
    codes = [rng.integers(0, 5, size=n).astype(np.int8) for n in (3, 30, 30, 101, 101, 101, 250)]
    for opts in (ScoreOptions(), ScoreOptions(window_size=101), ScoreOptions(average=True)):
        together = score_codes(BankEngine(sub), codes, opts, batch_size=2)
        alone = np.concatenate([score_codes(BankEngine(sub.subset([k])), codes, opts) for k in range(len(sub))], 1)
        np.testing.assert_allclose(together, alone, atol=1e-5)


def test_small_memory_budget_gives_the_same_scores(mixed):
    sub, engine = mixed
    tight = BankEngine(sub, "cpu", budget=4096)
    # 70 bp: more than one window for every detector length (windows of int(1.5 m) <= 54)
    codes = torch.from_numpy(np.random.default_rng(2).integers(0, 5, size=(3, 70)).astype(np.int8))
    for window, average in ((None, False), (None, True), (24, False)):
        torch.testing.assert_close(tight.score(codes, window, average), engine.score(codes, window, average),
                                   atol=1e-5, rtol=0)


def test_class_probability_is_the_sigmoid_of_the_score(mixed):
    _, engine = mixed
    codes = [encode("ACGTTGCAAGCTAGCTAGGATCGATCGATGCA")]
    raw = score_codes(engine, codes, ScoreOptions())
    prob = score_codes(engine, codes, ScoreOptions(class_prob=True))
    np.testing.assert_allclose(prob, 1 / (1 + np.exp(-raw)), rtol=1e-6)
    assert ((prob > 0) & (prob < 1)).all()


def test_long_whole_sequence_is_scored_in_bounded_chunks(mixed):
    """A window longer than the memory budget allows is pooled in position chunks, same scores."""
    sub, engine = mixed
    codes = torch.from_numpy(np.random.default_rng(3).integers(0, 5, size=(2, 3000)).astype(np.int8))
    tight = BankEngine(sub, "cpu", budget=20_000)
    for window, average in ((3000, False), (2999, True)):
        torch.testing.assert_close(tight.score(codes, window, average), engine.score(codes, window, average),
                                   atol=2e-5, rtol=0)
    # the default short windows: many steps under this budget, each a Python call (kept short)
    short = codes[:, :300]
    torch.testing.assert_close(tight.score(short), engine.score(short), atol=2e-5, rtol=0)


def test_cpu_threads_run_whole_steps_with_identical_scores(mixed):
    """With several CPU threads the engine runs steps side by side; scores equal one thread's, bit for bit."""
    sub, _ = mixed
    engine = BankEngine(sub, "cpu", budget=1 << 14)  # small steps: many of them to share out
    codes = torch.from_numpy(np.random.default_rng(5).integers(0, 5, size=(6, 60)).astype(np.int8))
    before = torch.get_num_threads()
    try:
        torch.set_num_threads(1)
        alone = [engine.score(codes, w, avg) for w, avg in ((None, False), (None, True), (60, False))]
        torch.set_num_threads(3)
        shared = [engine.score(codes, w, avg) for w, avg in ((None, False), (None, True), (60, False))]
        assert torch.get_num_threads() == 3  # restored after the parallel pass
    finally:
        torch.set_num_threads(before)
    for a, s in zip(alone, shared):
        assert torch.equal(a, s)


def test_one_thread_steps_run_in_order_on_one_thread_and_restore_the_count():
    from dbtools.parallel import parallel_steps

    seen = []
    before = torch.get_num_threads()
    try:
        torch.set_num_threads(2)
        parallel_steps(lambda s: seen.append((s, torch.get_num_threads())), range(5), torch.device("cpu"), threads=1)
        assert seen == [(s, 1) for s in range(5)] and torch.get_num_threads() == 2
    finally:
        torch.set_num_threads(before)
