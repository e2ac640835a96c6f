"""The batched trainer: no cross-talk, exact masking, agreement with the scoring engine and with
the original's SGD, learning."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from dbtools.bank.store import Architecture, Bank, Model, ModelInfo
from dbtools.io.encode import encode
from dbtools.engine.bank_engine import BankEngine
from dbtools.metrics import auc
from dbtools.train.data import GroupData
from dbtools.train.hyper import Hyper, Task
from dbtools.train.loop import evaluate_group, train_group
from dbtools.train.model import GroupParams

CPU = torch.device("cpu")


def random_codes(rng, n, lengths):
    return [rng.integers(0, 4, size=int(rng.choice(lengths))).astype(np.int8) for _ in range(n)]


def make_task(seed, lengths=(30,), hyper=None, n=40):
    rng = np.random.default_rng(seed)
    codes = random_codes(rng, n, lengths)
    return Task(codes, rng.integers(0, 2, n).astype(np.float32), True,
                hyper or Hyper(detector_len=8, num_hidden=0, init_conv=0.1, init_fc=0.1), seed=seed)


def test_training_together_equals_training_alone():
    # models with and without the hidden layer share one batched group; 6 models run as
    # several steps of the trainer's argmax search (4 models a step on the CPU)
    hypers = [Hyper(detector_len=8, num_hidden=h, learning_rate=lr, dropout=d, init_conv=0.1, init_fc=0.1,
                    l1_fc=1e-3) for lr, d, h in ((0.01, 0.0, 32), (0.03, 0.5, 0), (0.005, 0.25, 32))] * 2
    tasks = [make_task(s, (25, 30), h) for s, h in zip((1, 2, 3, 4, 5, 6), hypers)]
    together = train_group(tasks, None, steps=25, checkpoint_every=25, device=CPU, batch_size=16)
    for g, task in enumerate(tasks):
        alone = train_group([task], None, steps=25, checkpoint_every=25, device=CPU, batch_size=16)
        mine = alone.params.model_arrays(0)
        for k, v in together.params.model_arrays(g).items():
            np.testing.assert_allclose(v, mine[k], atol=1e-5, rtol=1e-4)


def test_padding_to_a_longer_neighbour_changes_no_score():
    task = make_task(4, (12, 40, 33))
    params = GroupParams([task], CPU)
    gen = torch.Generator().manual_seed(4)
    with torch.no_grad():
        for v in params.params.values():
            v.normal_(generator=gen)
    mixed = GroupData([(task.codes, task.targets)], 8, CPU)
    _, together = evaluate_group(params, mixed, torch.tensor([True]))
    for i, c in enumerate(task.codes):
        single = GroupData([([c], task.targets[i:i + 1])], 8, CPU)
        _, alone = evaluate_group(params, single, torch.tensor([True]))
        assert together[0][i] == pytest.approx(alone[0][0], rel=1e-6, abs=1e-5)  # float32, |score| ~ 50


def test_the_data_says_before_training_whether_any_sequence_is_short():
    """The trainer hands this flag to every step instead of asking the device (a GPU sync a step)."""
    equal, mixed, longer = make_task(10, (30,)), make_task(11, (25, 30)), make_task(12, (40,))
    assert not GroupData([(equal.codes, equal.targets)], 8, CPU).ragged
    assert GroupData([(mixed.codes, mixed.targets)], 8, CPU).ragged
    assert GroupData([(equal.codes, equal.targets), (longer.codes, longer.targets)], 8, CPU).ragged
    params = GroupParams([equal], CPU)
    with torch.no_grad():
        for v in params.params.values():
            v.normal_(generator=torch.Generator().manual_seed(10))
        codes, pos, _ = GroupData([(equal.codes, equal.targets)], 8, CPU).batch(torch.arange(20)[None])
        assert torch.equal(params.forward(codes, pos, ragged=True), params.forward(codes, pos, ragged=False))


@pytest.mark.parametrize("hidden,avg", [(0, False), (32, True)])
def test_trained_model_scores_the_same_in_the_engine(hidden, avg):
    task = make_task(5, (20, 50), Hyper(detector_len=8, num_hidden=hidden, avg_pooling=avg))
    params = GroupParams([task], CPU)
    with torch.no_grad():
        for v in params.params.values():
            v.normal_()
    arch = Architecture(detector_len=8, reverse_complement=True, avg_pooling=avg, num_hidden=hidden)
    bank = Bank([Model(ModelInfo(id="T1", protein="X", arch=arch), params.model_arrays(0))])
    engine = BankEngine(bank)
    _, scores = evaluate_group(params, GroupData([(task.codes, task.targets)], 8, CPU), torch.tensor([True]))
    for c, s in zip(task.codes, scores[0]):
        assert engine.score(c[None], window_size=len(c))[0, 0].item() == pytest.approx(s, abs=1e-4)


def test_learns_a_planted_motif():
    rng = np.random.default_rng(0)
    motif = encode("GATAAGCT")
    seqs, labels = [], []
    for i in range(600):
        c = rng.integers(0, 4, 40).astype(np.int8)
        if i % 2:
            p = rng.integers(0, 32)
            c[p:p + 8] = motif
        seqs.append(c)
        labels.append(i % 2)
    y = np.array(labels, np.float32)
    hyper = Hyper(detector_len=10, num_hidden=0, learning_rate=0.05, momentum=0.95, init_conv=0.01, init_fc=0.01)
    task = Task(seqs[:400], y[:400], True, hyper, seed=0)
    res = train_group([task], [(seqs[400:], y[400:])], steps=300, checkpoint_every=100, device=CPU)
    _, scores = evaluate_group(res.params, GroupData([(seqs[400:], y[400:])], 10, CPU), torch.tensor([True]))
    assert auc(y[400:], scores[0]) > 0.95
    assert res.best_step[0] in res.checkpoints


def plain_forward(params: GroupParams, codes, positions):
    """The textbook formulation: rectify every position, mask, pool; autograd through all of it."""
    p, m, D = params.params, params.m, 16
    G, B, _ = codes.shape
    from dbtools.io.encode import one_hot
    x = one_hot(codes.unfold(2, m, 1))
    P = x.shape[2]
    x = x.reshape(G, B * P, 4 * m)
    w = p["detectors"]
    w_rc = w.reshape(G, m, 4, D).flip(1, 2).reshape(G, 4 * m, D)
    z = torch.bmm(x, torch.cat([w, w_rc], 2)) + torch.cat([p["thresholds"]] * 2, 1)[:, None, :]
    z = z.clamp(min=0).reshape(G, B, P, 2, D)
    z = z * (torch.arange(P)[None, None, :] < positions[:, :, None])[..., None, None]
    pooled = z.amax(2)
    if params.avg:
        pooled = torch.stack([pooled, z.sum(2) / positions[:, :, None, None]], -1).reshape(G, B, 2, 2 * D)
    if params.hidden:
        h = torch.einsum("gbsi,gih->gbsh", pooled, p["weights1"]) + p["biases1"][:, None, None, :]
        out = torch.einsum("gbsh,gh->gbs", h.clamp(min=0), p["weights2"]) + p["biases2"][:, None, None]
    else:
        out = torch.einsum("gbsi,gi->gbs", pooled, p["linear_w"]) + p["linear_b"][:, None, None]
    return out.amax(-1)


@pytest.mark.parametrize("hidden,avg", [(0, False), (32, False), (0, True), (32, True)])
def test_pooled_gradients_equal_the_plain_formulation(hidden, avg):
    tasks = [make_task(s, (14, 30, 22), Hyper(detector_len=6, num_hidden=hidden, avg_pooling=avg)) for s in (7, 8)]
    params = GroupParams(tasks, CPU)
    with torch.no_grad():
        for v in params.params.values():
            v.normal_()
    data = GroupData([(t.codes, t.targets) for t in tasks], 6, CPU)
    rows = torch.arange(20)[None].expand(2, -1)
    codes, pos, y = data.batch(rows)
    grads = []
    for fn in (params.forward, lambda c, q: plain_forward(params, c, q)):
        out = fn(codes, pos)
        (out * torch.linspace(-1, 1, out.numel()).reshape(out.shape)).sum().backward()
        grads.append({k: v.grad.clone() for k, v in params.params.items()})
        for v in params.params.values():
            v.grad = None
        grads[-1]["out"] = out.detach()
    for k in grads[0]:
        torch.testing.assert_close(grads[0][k], grads[1][k], atol=1e-4, rtol=1e-4)


@pytest.mark.parametrize("rate", [0.25, 0.5])
def test_dropout_is_inverted_kept_features_scaled_up_in_training_and_left_as_they_are_when_predicting(rate):
    # not the original's convention (an unscaled mask, then x (1 - rate) when predicting); see README
    task = make_task(9, (30,), Hyper(detector_len=8, num_hidden=0, dropout=rate))
    params = GroupParams([task], CPU)
    with torch.no_grad():
        for v in params.params.values():
            v.normal_()
    codes, pos, _ = GroupData([(task.codes, task.targets)], 8, CPU).batch(torch.arange(10)[None])
    b = params.params["linear_b"][0].item()
    keep = torch.full((1, 10, 16), 1 / (1 - rate))
    with torch.no_grad():
        predicted = params.forward(codes, pos)
        all_kept = params.forward(codes, pos, keep)
        keep[..., 8:] = 0
        half_kept = params.forward(codes, pos, keep)
        params.params["linear_w"][:, 8:] = 0
        first_half = params.forward(codes, pos)
    torch.testing.assert_close(all_kept - b, (predicted - b) / (1 - rate))
    torch.testing.assert_close(half_kept - b, (first_half - b) / (1 - rate))


def test_the_step_is_mixed_in_python_as_on_the_device():
    """The step's key is mixed in Python integers (no copy to the device each step), bit for bit as
    the tensor mixer, so draws and resumed runs are unchanged."""
    from dbtools.train.rng import _mix, _mix_int

    for step in (0, 1, 100, 101, 20_000, 2 ** 31 + 5, 2 ** 62 + 3, -1, -2 ** 63):
        assert _mix_int(step) == int(_mix(torch.tensor(step, dtype=torch.int64))), step


def test_rows_are_drawn_in_proportion_to_their_weights_and_shared_sets_are_stored_once():
    from dbtools.train.rng import uniform

    rng = np.random.default_rng(3)
    codes = random_codes(rng, 4, (12,))
    y = np.array([1, 0, 0, 0], dtype=np.float32)
    weights = np.array([3, 1, 1, 1], dtype=np.float32)  # one positive balancing its three shuffles
    other = random_codes(rng, 2, (12,))
    data = GroupData([(codes, y, weights), (codes, y, weights), (other, y[:2])], 4, CPU)
    assert data.codes.shape[0] == 4 + 2  # the first two models share one stored set
    u = uniform(torch.tensor([1, 2, 3]), 1, 1, 20_000)
    rows = data.sample(u)
    assert int(rows.min()) == 0 and rows[:2].max() == 3 and rows[2].max() == 1
    share = (rows[:2] == 0).float().mean().item()
    assert share == pytest.approx(0.5, abs=0.02)  # weight 3 of 6
    assert (rows[2] == 0).float().mean().item() == pytest.approx(0.5, abs=0.02)  # unweighted: uniform
    codes_b, _, targets_b = data.batch(rows[:, :5])
    np.testing.assert_array_equal(targets_b[0].numpy(), y[rows[0, :5].numpy()])
    # the validation loss is the weighted mean
    params = GroupParams([make_task(1, (12,), n=4)], CPU)
    loss, scores = evaluate_group(params, GroupData([(codes, y, weights)], 8, CPU), torch.tensor([True]))
    each = torch.nn.functional.binary_cross_entropy_with_logits(torch.tensor(scores[0]), torch.tensor(y), reduction="none")
    assert loss[0] == pytest.approx(float((each * torch.tensor(weights)).sum() / 6), rel=1e-5)


def test_shuffled_sets_are_drawn_as_peaks_paired_with_one_of_their_own_shuffles():
    from dbtools.train.rng import uniform

    rng = np.random.default_rng(4)
    codes = random_codes(rng, 9, (12,))
    y = np.array([1, 0, 1, 0, 0, 0, 1, 0, 0], dtype=np.float32)
    origin = np.array([0, 0, 2, 2, 2, 2, 6, 6, 0])  # peaks 0, 2 and 6 with 2, 3 and 1 shuffles
    explicit = np.array([1, 0, 0, 0], dtype=np.float32)  # negatives of their own: not pairable
    data = GroupData([(codes, y, None, origin), (codes[:4], explicit, None, np.arange(4))], 4, CPU)
    rows = data.sample(uniform(torch.tensor([5, 6]), 1, 3, 6001)).numpy()
    peaks, shuffles = rows[0, :3000], rows[0, 3000:6000]
    assert (y[peaks] == 1).all() and (y[shuffles] == 0).all()
    np.testing.assert_array_equal(origin[shuffles], origin[peaks])  # each peak beside its own shuffle
    for p in (0, 2, 6):  # peaks equally often, and a peak's shuffles equally often
        assert (peaks == p).mean() == pytest.approx(1 / 3, abs=0.03)
    assert (shuffles == 8).sum() == pytest.approx((peaks == 0).sum() / 2, rel=0.15)
    assert 0 <= rows[0, 6000] < 9  # an odd batch's last row: a weighted draw
    assert rows[1].max() == 3 and (explicit[rows[1]] == 1).mean() == pytest.approx(0.25, abs=0.03)


def test_the_l1_penalty_starts_after_the_first_hundred_steps_as_in_the_original():
    from dbtools.train.loop import L1_START

    base = Hyper(detector_len=8, num_hidden=0, init_conv=0.1, init_fc=0.1, l1_conv=0.0, l1_fc=0.0)
    strong = Hyper(detector_len=8, num_hidden=0, init_conv=0.1, init_fc=0.1, l1_conv=1e-2, l1_fc=1e-2)
    tasks = [make_task(9, (20,), h) for h in (base, strong)]
    for steps, same in ((L1_START, True), (L1_START + 5, False)):
        res = train_group(tasks, None, steps=steps, checkpoint_every=steps, device=CPU, batch_size=8)
        a, b = res.params.model_arrays(0), res.params.model_arrays(1)
        assert all(np.array_equal(a[k], b[k]) for k in a) == same


def test_the_output_layer_of_a_hidden_model_has_its_own_init_scale_and_l1():
    shared = Hyper(detector_len=8, num_hidden=32, init_conv=0.1, init_fc=0.1, l1_fc=1e-3)
    own = Hyper(detector_len=8, num_hidden=32, init_conv=0.1, init_fc=0.1, l1_fc=1e-3, init_out=1e-4, l1_out=1e-8)
    same = Hyper(detector_len=8, num_hidden=32, init_conv=0.1, init_fc=0.1, l1_fc=1e-3, init_out=0.1, l1_out=1e-3)
    params = GroupParams([make_task(3, hyper=h) for h in (shared, own, same)], CPU)
    w2 = params.params["weights2"].detach()
    assert torch.equal(w2[0], w2[2]) and torch.allclose(w2[1], w2[0] * 1e-3)  # the same draws, rescaled
    assert torch.equal(params.params["weights1"][0], params.params["weights1"][1])
    assert params.l1["weights2"].tolist() == pytest.approx([1e-3, 1e-8, 1e-3])
    assert params.l1["weights1"].tolist() == pytest.approx([1e-3, 1e-3, 1e-3])


@pytest.mark.parametrize("hidden", [0, 32])
def test_training_steps_are_the_originals_sgd_run_step_by_step_by_a_plain_reference(hidden):
    # deepity's SGD: Nesterov momentum with the gradient taken at P + momentum x velocity, each
    # model's own rate and momentum, L1 as decay x sign(W) on the weights (not the biases) from
    # step 101; the reference runs it on the same batches with the textbook forward pass
    from dbtools.train.loop import L1_START
    from dbtools.train.rng import uniform

    settings = ((0.05, 0.95, 1e-3), (0.01, 0.99, 3e-2))
    hypers = [Hyper(detector_len=6, num_hidden=hidden, learning_rate=lr, momentum=mom, init_conv=0.1,
                    init_fc=0.1, l1_conv=l1, l1_fc=l1, dropout=0.0) for lr, mom, l1 in settings]
    tasks = [make_task(s, (14, 30, 22), h) for s, h in zip((4, 5), hypers)]
    steps, batch = L1_START + 20, 8
    ours = train_group(tasks, None, steps, steps, CPU, batch_size=batch).params.params

    ref = GroupParams(tasks, CPU)  # the same initial weights: drawn from each model's seed
    data = GroupData([(t.codes, t.targets) for t in tasks], 6, CPU)
    seeds = torch.tensor([t.seed for t in tasks])
    lr, mom, l1 = (torch.tensor(v) for v in zip(*settings))
    decayed = {"detectors", "linear_w", "weights1", "weights2"}
    P = {k: v.detach().clone() for k, v in ref.params.items()}
    V = {k: torch.zeros_like(v) for k, v in P.items()}

    def per_model(v, w):
        return v.reshape((-1,) + (1,) * (w.dim() - 1))

    for step in range(1, steps + 1):
        codes, pos, y = data.batch(data.sample(uniform(seeds, 1, step, batch)))
        with torch.no_grad():
            for k, w in ref.params.items():
                w.copy_(P[k] + per_model(mom, w) * V[k])
        scores = plain_forward(ref, codes, pos)
        torch.nn.functional.binary_cross_entropy_with_logits(scores, y, reduction="none").mean(1).sum().backward()
        with torch.no_grad():
            for k, w in ref.params.items():
                g = w.grad + (per_model(l1, w) * w.sign() if k in decayed and step > L1_START else 0)
                V[k] = per_model(mom, w) * V[k] - per_model(lr, w) * g
                P[k] = P[k] + V[k]
                w.grad = None
    assert set(ours) == set(P)
    for k in P:  # ours keeps the look-ahead point P + momentum x velocity as its weights
        torch.testing.assert_close(ours[k].detach(), P[k] + per_model(mom, P[k]) * V[k], rtol=1e-4, atol=1e-5)


def test_a_step_counted_on_the_device_trains_exactly_as_one_counted_in_python():
    """The CUDA-graph path (a step number held on the device, warm-up runs undone) gives the same
    weights, curves and penalty switch as the plain loop; on the CPU it runs without capture.
    Past L1_START, with per-model budgets and validation, so every branch of a step is taken."""
    hypers = [Hyper(detector_len=8, num_hidden=h, dropout=d, init_conv=0.1, init_fc=0.1, l1_fc=1e-3)
              for h, d in ((0, 0.25), (32, 0.0), (0, 0.0))]
    tasks = [make_task(s, (25, 30), h) for s, h in zip((7, 8, 9), hypers)]
    val = [(t.codes[:20], t.targets[:20]) for t in tasks]
    runs = [train_group(tasks, val, steps=130, checkpoint_every=40, device=CPU, batch_size=8,
                        until=[130, 60, 110], graphs=g) for g in (False, True)]
    plain, counted = runs
    for k, v in plain.params.params.items():
        assert torch.equal(v, counted.params.params[k]), k
    np.testing.assert_array_equal(plain.val_loss, counted.val_loss)
    np.testing.assert_array_equal(plain.train_loss, counted.train_loss)
    assert plain.best_step == counted.best_step


def test_a_step_that_cannot_be_captured_runs_one_by_one_from_the_same_weights():
    from dbtools.train.graphs import StepRunner

    w = torch.zeros(3)
    calls = []

    def step(n, penalize):
        w.add_(1.0)  # the warm-up's change, undone before the step runs for real
        calls.append(type(n))
        if isinstance(n, torch.Tensor):
            raise RuntimeError("operation not permitted when stream is capturing")

    runner = StepRunner(step, [w], CPU)
    with pytest.warns(UserWarning, match="one by one"):
        runner(5, False)
    assert torch.equal(w, torch.ones(3))  # one real step, the failed warm-up undone
    runner(6, True)
    assert torch.equal(w, torch.full((3,), 2.0)) and calls[-2:] == [int, int]
