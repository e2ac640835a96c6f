"""The batched model: stacked parameters of a group's models, their forward pass, L1 penalty and
SGD step, and the per-model losses.

As the original DeepBind: both strands are fed and the higher-scoring one carries the
loss; logistic loss for classification, squared error for (standardised) regression targets;
SGD with Nesterov momentum; L1 penalty on detector and fully connected weights (not biases);
dropout on the pooled features (inverted: kept features scaled by 1 / (1 - rate) in training;
the original scales by 1 - rate when predicting instead, which did worse here: docs/development.md);
weights N(0, 1) x init scale, biases 0.
"""

from __future__ import annotations

import numpy as np
import torch

from dbtools.io.encode import N, kmer_index, one_hot
from dbtools.train.hyper import DETECTORS, Task, group_key
from dbtools.train.tables import KMER, TableMax, kmer_tables, pooled_max


class GroupParams:
    """Stacked parameters of G models sharing detector length and pooling, with optimizer state.

    Models with and without the hidden layer share a group: each has both output paths
    (the unused one is zero and receives no gradient and no penalty) and a flag picks its own.
    """

    def __init__(self, tasks: list[Task], device: torch.device):
        h0 = tasks[0].hyper
        self.m, self.avg = h0.detector_len, h0.avg_pooling
        sizes = {t.hyper.num_hidden for t in tasks} - {0}
        if len({group_key(t.hyper) for t in tasks}) != 1 or len(sizes) > 1:
            raise ValueError("a group's models must share detector length, pooling and hidden size")
        self.hidden = sizes.pop() if sizes else 0
        self.device = device
        self.G = len(tasks)
        flags = [t.hyper.num_hidden > 0 for t in tasks]
        nf = DETECTORS * (2 if self.avg else 1)
        self.shapes = _shapes(self.m, nf, self.hidden, plain=not all(flags), deep=any(flags))
        per_model = [_initial_weights(t, self.shapes, nf) for t in tasks]
        self.params = {k: torch.stack([torch.from_numpy(p[k]) for p in per_model]).to(device).requires_grad_()
                       for k in self.shapes}
        self.velocity = {k: torch.zeros_like(v) for k, v in self.params.items()}

        def col(vals):
            return torch.tensor(vals, dtype=torch.float32, device=device)

        self.has_hidden = torch.tensor(flags, device=device)
        self.lr = col([t.hyper.for_task(t.classification).learning_rate for t in tasks])
        self.mom = col([t.hyper.momentum for t in tasks])
        fc = [t.hyper.l1_fc for t in tasks]
        out = [t.hyper.output_l1 for t in tasks]
        self.l1 = {"detectors": col([t.hyper.l1_conv for t in tasks]),
                   "linear_w": col([0.0 if f else c for f, c in zip(flags, fc)]),
                   "weights1": col([c if f else 0.0 for f, c in zip(flags, fc)]),
                   "weights2": col([c if f else 0.0 for f, c in zip(flags, out)])}
        self.dropout = col([t.hyper.dropout for t in tasks])
        self.rc = torch.tensor([t.reverse_complement for t in tasks], device=device)

    def forward(self, codes: torch.Tensor, positions: torch.Tensor,
                dropout_keep: torch.Tensor | None = None, ragged: bool | None = None) -> torch.Tensor:
        """Each model's scores of its own batch.

        Parameters
        ----------
        codes : torch.Tensor, shape (G, B, Lp)
            Padded codes (`pad_batch`).
        positions : torch.Tensor, shape (G, B)
            Each sequence's number of detector positions.
        dropout_keep : torch.Tensor, shape (G, B, nf), optional
            Scale of each pooled feature (0 drops it); None: no dropout.
        ragged : bool, optional
            Whether some sequence is shorter than the padding allows (its positions past its
            end are masked); None finds out from `positions`, one host-device sync.

        Returns
        -------
        torch.Tensor, shape (G, B)
            The better strand's score (the forward strand's for models without reverse complement).

        The convolution over every position runs without autograd, from tables of each
        k-mer's response to each block of k = 3 detector rows (one table row added per
        position and block instead of 4k multiply-adds per detector); only the pooled values
        are rebuilt differentiably: the max of a detector is its response at the argmax window
        (rectified after pooling: max and ReLU commute), its gradient going to the same table
        entries; the mean of its rectified responses is (sum of the windows where it is
        active) . W + threshold x (their count), over the number of positions. Values and gradients are
        those of the plain formulation (ties in the max are identical windows, so their
        gradients agree too); the backward pass never touches the per-position tensors.
        """
        pooled = self._pooled(codes, positions, ragged)
        if dropout_keep is not None:
            pooled = pooled * dropout_keep[:, :, None, :]
        out = self._dense(pooled)
        fwd, rev = out[..., 0], out[..., 1]
        return torch.where(self.rc[:, None], torch.maximum(fwd, rev), fwd)

    def _pooled(self, codes: torch.Tensor, positions: torch.Tensor, ragged: bool | None) -> torch.Tensor:
        """Pooled features [G, B, 2, nf] of both strands (forward, reverse): each detector's
        rectified max, and with average pooling its mean beside it."""
        p = self.params
        G, B, _ = codes.shape
        m, D, k = self.m, DETECTORS, KMER
        P = codes.shape[2] - m + 1
        w = p["detectors"].view(G, m, 4, D)
        # reverse strand == forward input scanned with W[m-1-j, 3-b]
        w2 = torch.cat([w, w.flip(1, 2)], 3)  # [G, m, 4, 2D]: forward detectors, then reverse
        thr = torch.cat([p["thresholds"], p["thresholds"]], 1)  # [G, 2D]
        tables = kmer_tables(w2, m)  # [5**k, G, nb, 2D]
        nb = tables.shape[2]
        # the (base, offset) weight layout unfolds the one-hot sequence directly (average pooling)
        w_bj = w2.transpose(1, 2).reshape(G, 4 * m, 2 * D) if self.avg else None
        if ragged is None:
            ragged = bool((positions < P).any())
        grad = torch.is_grad_enabled()
        with torch.no_grad():
            valid = torch.arange(P, device=codes.device) < positions[:, :, None] if ragged else None  # [G, B, P]
            # block j of the window at p reads the k-mer at p + jk; rows past m read N (zero weight)
            kmers = kmer_index(torch.nn.functional.pad(codes, (0, nb * k - m), value=N), k)
            rows = kmers.mul_(G * nb)  # each k-mer's first table row (rows are k-mer, model, block)
            top, entries = pooled_max(tables.detach(), rows, P, valid, grad)
            if self.avg:
                summed, count = _active_sums(codes, w_bj, thr, valid, m)
        if grad:
            top = TableMax.apply(tables, top, entries)
        pooled = (top + thr[:, None, :]).clamp(min=0)  # [G, B, 2D]
        if self.avg:
            mean = ((summed * w_bj.transpose(1, 2)[:, None]).sum(-1) + thr[:, None, :] * count) / positions[:, :, None]
            pooled = torch.stack([pooled, mean], -1)  # [G, B, 2D, 2]: max, avg interleaved per detector
        return pooled.reshape(G, B, 2, -1)

    def _dense(self, pooled: torch.Tensor) -> torch.Tensor:
        """Scores [G, B, 2] of pooled features [G, B, 2, nf], each model through its own output path."""
        p = self.params
        out = None
        if "linear_w" in p:
            out = torch.einsum("gbsi,gi->gbs", pooled, p["linear_w"]) + p["linear_b"][:, None, None]
        if "weights1" in p:
            h = torch.einsum("gbsi,gih->gbsh", pooled, p["weights1"]) + p["biases1"][:, None, None, :]
            deep = torch.einsum("gbsh,gh->gbs", h.clamp(min=0), p["weights2"]) + p["biases2"][:, None, None]
            out = deep if out is None else torch.where(self.has_hidden[:, None, None], deep, out)
        return out

    def penalty(self) -> torch.Tensor:
        """Sum over models of their L1 penalties (each model's own coefficients)."""
        total = 0
        for k, lam in self.l1.items():
            if k in self.params:
                w = self.params[k]
                total = total + (lam * w.abs().reshape(self.G, -1).sum(1)).sum()
        return total

    @torch.no_grad()
    def step(self, active: torch.Tensor | None = None) -> None:
        """One Nesterov momentum step per model, with that model's rate and momentum
        (models where `active` [G] is false keep their weights and velocity)."""
        for k, w in self.params.items():
            shape = (self.G,) + (1,) * (w.dim() - 1)
            lr, mom = self.lr.reshape(shape), self.mom.reshape(shape)
            v = self.velocity[k]
            if active is None:
                v.mul_(mom).sub_(lr * w.grad)
                w.add_(mom * v - lr * w.grad)
            else:
                a = active.reshape(shape)
                v.copy_(torch.where(a, v * mom - lr * w.grad, v))
                w.add_(torch.where(a, mom * v - lr * w.grad, 0.0))
            w.grad = None

    def model_arrays(self, g: int) -> dict[str, np.ndarray]:
        """Model g's parameters in the bank's array shapes."""
        p = {k: v[g].detach().cpu().numpy() for k, v in self.params.items()}
        out = {"detectors": p["detectors"].reshape(self.m, 4, DETECTORS),
               "thresholds": p["thresholds"]}
        if bool(self.has_hidden[g]):
            out |= {"weights1": p["weights1"], "biases1": p["biases1"],
                    "weights2": p["weights2"][:, None], "biases2": p["biases2"].reshape(1)}
        else:
            out |= {"weights1": p["linear_w"][:, None], "biases1": p["linear_b"].reshape(1),
                    "weights2": np.zeros((0, 1), np.float32), "biases2": np.zeros(0, np.float32)}
        return out

    def snapshot(self) -> dict[str, torch.Tensor]:
        return {k: v.detach().clone() for k, v in self.params.items()}

    def load(self, snap: dict[str, torch.Tensor]) -> None:
        """Set the live parameters to a snapshot."""
        with torch.no_grad():
            for k, v in self.params.items():
                v.copy_(snap[k])


def _shapes(m: int, nf: int, hidden: int, plain: bool, deep: bool) -> dict[str, tuple[int, ...]]:
    """Per-model parameter shapes of a group: detectors [4m, D] and thresholds, then the output
    path of models without a hidden layer (`plain`) and that of models with one (`deep`)."""
    shapes = {"detectors": (4 * m, DETECTORS), "thresholds": (DETECTORS,)}
    if plain:
        shapes |= {"linear_w": (nf,), "linear_b": ()}
    if deep:
        shapes |= {"weights1": (nf, hidden), "biases1": (hidden,), "weights2": (hidden,), "biases2": ()}
    return shapes


def _initial_weights(task: Task, shapes: dict, nf: int) -> dict[str, np.ndarray]:
    """A model's initial weights, drawn from its own seed in its own architecture's order
    (so it starts the same in any group); the other output path is zero."""
    rng = np.random.default_rng([task.seed, 0])
    h = task.hyper
    own = {"detectors": (h.init_conv, shapes["detectors"]), "thresholds": (0.0, shapes["thresholds"])}
    if h.num_hidden:
        own |= {"weights1": (h.init_fc, (nf, h.num_hidden)), "biases1": (0.0, (h.num_hidden,)),
                "weights2": (h.output_init, (h.num_hidden,)), "biases2": (0.0, ())}
    else:
        own |= {"linear_w": (h.init_fc, (nf,)), "linear_b": (0.0, ())}
    out = {k: np.zeros(shape, dtype=np.float32) for k, shape in shapes.items()}
    for k, (scale, shape) in own.items():
        if scale:
            out[k] = (rng.standard_normal(shape) * scale).astype(np.float32)
    return out


def _active_sums(codes: torch.Tensor, w_bj: torch.Tensor, thr: torch.Tensor, valid: torch.Tensor | None,
                 m: int) -> tuple[torch.Tensor, torch.Tensor]:
    """For the mean of each detector's rectified responses: the one-hot windows summed over the
    positions where it is active [G, B, 2D, 4m] ((base, offset) layout), and their count [G, B, 2D].

    codes [G, B, Lp]; w_bj [G, 4m, 2D] the detectors of both strands; thr [G, 2D]; valid
    [G, B, P] the positions inside each sequence (None: all of them)."""
    G, B, _ = codes.shape
    P, D2 = codes.shape[2] - m + 1, w_bj.shape[2]
    x = one_hot(codes).unfold(2, m, 1).reshape(G, B * P, 4 * m)
    active = torch.baddbmm(thr[:, None, :], x, w_bj).view(G, B, P, D2) > 0
    if valid is not None:
        active &= valid[..., None]
    active = active.float()
    summed = torch.bmm(active.view(G * B, P, D2).transpose(1, 2), x.view(G * B, P, 4 * m)).view(G, B, D2, 4 * m)
    return summed, active.sum(2)


def pick_models(which: torch.Tensor, new: dict[str, torch.Tensor],
                old: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Per model, the tensors of `new` where `which` [G] (bool) is true, else those of `old`
    (tensors [G, ...] under the same names)."""
    out = {}
    for k, v in old.items():
        shape = (v.shape[0],) + (1,) * (v.dim() - 1)
        out[k] = torch.where(which.reshape(shape), new[k], v)
    return out


def losses(scores: torch.Tensor, targets: torch.Tensor, classification: torch.Tensor,
           weights: torch.Tensor | None = None) -> torch.Tensor:
    """Per-model mean loss [G] (weighted by `weights` [G, B] if given): logistic for
    classification rows, squared error otherwise."""
    logistic = torch.nn.functional.binary_cross_entropy_with_logits(scores, targets, reduction="none")
    squared = (scores - targets) ** 2
    each = torch.where(classification[:, None], logistic, squared)
    if weights is None:
        return each.mean(1)
    return (each * weights).sum(1) / weights.sum(1)
