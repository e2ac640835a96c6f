"""Training many independent DeepBind models at once.

The unit of work is a group of G models that share an architecture (detector length,
hidden layer, pooling); each model has its own data, hyperparameters, random stream and
optimizer state, and all of them advance in one batched forward/backward pass (tables and
matrix products batched over the model axis). The loss is the sum of the models' own losses, so each model's gradient
is exactly what it would get alone: no cross-talk.

As the original DeepBind: both strands are fed and the higher-scoring one carries the
loss; logistic loss for classification, squared error for (standardised) regression targets;
SGD with Nesterov momentum; L1 penalty on detector and fully connected weights (not biases),
after the first L1_START steps (until then weights grow from their tiny initial scales unopposed);
dropout on the pooled features (inverted: kept features scaled by 1 / (1 - rate) in training;
the original scales by 1 - rate when predicting instead, which did worse here, see README);
weights N(0, 1) x init scale, biases 0.
"""

from __future__ import annotations

import functools
import warnings
from dataclasses import asdict, dataclass, replace

import numpy as np
import torch

from dbtools.io.encode import N, PAD, kmer_digits, kmer_index, one_hot
from dbtools.parallel import parallel_steps

DETECTORS = 16
L1_START = 100  # the original's weight_decay_start: no L1 penalty in the first 100 steps


@dataclass(frozen=True)
class Hyper:
    """Hyperparameters of one model (the names of the DeepBind calibration)."""

    # defaults: the best of the settings tried on the 5 ENCODE sets (fold A, AUC on B); see README.
    # None: 0.02 for classification, 0.005 for regression (0.05 kills PBM regression models)
    learning_rate: float | None = None
    momentum: float = 0.95
    init_conv: float = 1e-3
    init_fc: float = 1e-2
    l1_conv: float = 1e-6
    l1_fc: float = 1e-6
    # the output layer of a model with a hidden layer has its own draws, as in the original's M2
    # (None: the same as the hidden layer's init_fc / l1_fc)
    init_out: float | None = None
    l1_out: float | None = None
    dropout: float = 0.5
    num_hidden: int = 0
    detector_len: int = 16
    avg_pooling: bool = False

    def to_json(self) -> dict:
        return asdict(self)

    @property
    def output_init(self) -> float:
        """Init scale of a hidden model's output layer."""
        return self.init_fc if self.init_out is None else self.init_out

    @property
    def output_l1(self) -> float:
        """L1 of a hidden model's output layer."""
        return self.l1_fc if self.l1_out is None else self.l1_out

    def for_task(self, classification: bool) -> "Hyper":
        """These hyperparameters with the task's default learning rate filled in."""
        if self.learning_rate is not None:
            return self
        return replace(self, learning_rate=0.02 if classification else 0.005)


@dataclass
class Task:
    """One model to train: its data (codes, targets), kind of task, hyperparameters and seed."""

    codes: list[np.ndarray]
    targets: np.ndarray
    classification: bool
    hyper: Hyper
    seed: int
    reverse_complement: bool = True
    weights: np.ndarray | None = None  # rows are drawn in proportion to these (None: uniformly)
    origin: np.ndarray | None = None  # [rows] the row each was made from: batches pair peaks with their shuffles


def pad_batch(codes: list[np.ndarray], m: int) -> tuple[np.ndarray, np.ndarray]:
    """[B, Lmax + 2(m-1)] codes: each sequence padded with m-1 N, then PAD to a common length.

    Returns the padded codes and each sequence's number of detector positions (L + m - 1);
    positions past it overlap PAD and are masked out of pooling, so no `N` is ever added.
    """
    lmax = max(len(c) for c in codes)
    out = np.full((len(codes), lmax + 2 * (m - 1)), PAD, dtype=np.int8)
    for i, c in enumerate(codes):
        out[i, : m - 1] = N
        out[i, m - 1: m - 1 + len(c)] = c
        out[i, m - 1 + len(c): 2 * (m - 1) + len(c)] = N
    return out, np.array([len(c) + m - 1 for c in codes], dtype=np.int64)


def group_key(h: Hyper) -> tuple[int, bool, int]:
    """Models with equal keys train in one batched group: same detector length and pooling;
    models without a hidden layer join the group of their hidden size (32 by default)."""
    return h.detector_len, h.avg_pooling, h.num_hidden or DEFAULT_HIDDEN


DEFAULT_HIDDEN = 32


_KMER = 3  # bases per table row in the convolution over all positions
_CPU_MODELS = 4  # models per step of the argmax search on the CPU (keeps its activations in cache)


def _tables(w: torch.Tensor, m: int) -> torch.Tensor:
    """[5**k, G, nb, E] responses of every k-mer (N = 0.25 per base) to each block of k
    detector rows, from w [G, m, 4, E]; rows past m are zero. Differentiable; one GEMM."""
    G, _, _, E = w.shape
    k = _KMER
    nb = -(-m // k)
    w5 = torch.cat([w, w.mean(2, keepdim=True)], 2)  # N reads 0.25 of each base
    w5 = torch.nn.functional.pad(w5, (0, 0, 0, 0, 0, nb * k - m)).view(G, nb, k * 5, E)
    return (_kmer_picks(w.device) @ w5.permute(2, 0, 1, 3).reshape(k * 5, -1)).view(5 ** k, G, nb, E)


@functools.lru_cache(maxsize=None)
def _kmer_picks(device: torch.device) -> torch.Tensor:
    """[5**k, 5k] 0/1: row i picks, for each of k-mer i's bases, its row in a block of k
    detector rows x 5 codes. Built once per device (no host-to-device copy per step)."""
    k = _KMER
    with torch.inference_mode(False), torch.no_grad():  # a normal tensor, usable under autograd
        digits = torch.as_tensor(kmer_digits(k))
        pick = torch.zeros(5 ** k, k * 5)
        pick.scatter_(1, digits + 5 * torch.arange(k), 1.0)
        return pick.to(device)


def _pooled_max(tables: torch.Tensor, rows: torch.Tensor, P: int, valid: torch.Tensor | None,
                with_entries: bool) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Each detector's best response [G, B, E] (before its threshold) over the positions of
    the k-mers' first table rows [G, B, P + (nb-1)k], and, `with_entries`, the flat indices
    [G, B, E, nb] of the table entries summed at its first best window (its gradient's way).

    Responses are sums of nb table rows per position (`embedding_bag`); steps of a few
    models keep them in cache, and the CPU's cores take steps side by side."""
    _, G, nb, E = tables.shape
    B = rows.shape[1]
    flat = tables.reshape(-1, E)  # row (k-mer, model, block)
    base = torch.arange(G * nb, device=rows.device).view(G, 1, 1, nb)
    top = torch.empty(G, B, E, device=rows.device)
    entries = torch.empty(G, B, E, nb, dtype=torch.long, device=rows.device) if with_entries else None
    column = torch.arange(E, device=rows.device)[:, None]
    size = _CPU_MODELS if rows.device.type == "cpu" else G

    def step(g: int) -> None:
        sl = slice(g, g + size)
        idx = torch.empty(rows[sl].shape[0], B, P, nb, dtype=torch.long, device=rows.device)
        torch.add(rows[sl].unfold(2, (nb - 1) * _KMER + 1, 1)[..., ::_KMER], base[sl], out=idx)
        z = torch.nn.functional.embedding_bag(idx.view(-1, nb), flat, mode="sum").view(-1, B, P, E)
        if valid is not None:
            z.masked_fill_(~valid[sl, :, :, None], -torch.inf)
        # max pooling's kernel (vectorised over detectors) is much faster than max(dim) with indices
        best, at = torch.nn.functional.max_pool1d(z.view(-1, P, E).transpose(1, 2), P, return_indices=True)
        top[sl] = best.view(-1, B, E)
        at = at.view(-1, B, E)
        if with_entries:  # entry (row, column e) of each summed table row: row x E + e
            at += torch.arange(0, at.shape[0] * B * P, P, device=at.device).view(-1, B, 1)
            torch.add(column, idx.view(-1, nb).index_select(0, at.view(-1)).view(-1, B, E, nb), alpha=E,
                      out=entries[sl])

    parallel_steps(step, range(0, G, size), rows.device)
    return top, entries


class _TableMax(torch.autograd.Function):
    """A detector's best response as a function of the k-mer tables: the value comes from
    `_pooled_max`; the gradient goes to the table entries summed at the best window."""

    @staticmethod
    def forward(ctx, tables, top, entries):  # [5**k, G, nb, E], [G, B, E], [G, B, E, nb]
        ctx.save_for_backward(entries)
        ctx.shape = tables.shape
        return top.clone()

    @staticmethod
    def backward(ctx, grad):  # grad [G, B, E]
        (entries,) = ctx.saved_tensors
        d = torch.zeros(ctx.shape.numel(), device=grad.device, dtype=grad.dtype)
        d.index_add_(0, entries.view(-1), grad[..., None].expand(entries.shape).reshape(-1))
        return d.view(ctx.shape), None, None


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
        shapes = {"detectors": (4 * self.m, DETECTORS), "thresholds": (DETECTORS,)}
        if not all(flags):
            shapes |= {"linear_w": (nf,), "linear_b": ()}
        if any(flags):
            shapes |= {"weights1": (nf, self.hidden), "biases1": (self.hidden,),
                       "weights2": (self.hidden,), "biases2": ()}
        self.shapes = shapes
        per_model = [self._init(t, shapes, nf) for t in tasks]
        self.params = {k: torch.stack([torch.from_numpy(p[k]) for p in per_model]).to(device).requires_grad_()
                       for k in shapes}
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

    @staticmethod
    def _init(task: Task, shapes: dict, nf: int) -> dict[str, np.ndarray]:
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

    def forward(self, codes: torch.Tensor, positions: torch.Tensor,
                dropout_keep: torch.Tensor | None = None, ragged: bool | None = None) -> torch.Tensor:
        """Scores [G, B] for padded codes [G, B, Lp] with valid position counts [G, B].

        `ragged` says whether some sequence is shorter than the padding allows (its positions
        past its end are masked); None finds out from `positions`, one host-device sync.

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
        p = self.params
        G, B, _ = codes.shape
        m, D, k = self.m, DETECTORS, _KMER
        P = codes.shape[2] - m + 1
        w = p["detectors"].view(G, m, 4, D)
        # reverse strand == forward input scanned with W[m-1-j, 3-b]
        w2 = torch.cat([w, w.flip(1, 2)], 3)  # [G, m, 4, 2D]: forward detectors, then reverse
        thr = torch.cat([p["thresholds"], p["thresholds"]], 1)  # [G, 2D]
        tables = _tables(w2, m)  # [5**k, G, nb, 2D]
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
            top, entries = _pooled_max(tables.detach(), rows, P, valid, grad)
            if self.avg:
                x = one_hot(codes).unfold(2, m, 1).reshape(G, B * P, 4 * m)
                z = torch.baddbmm(thr[:, None, :], x, w_bj).view(G, B, P, 2 * D)
                active = z > 0
                if ragged:
                    active &= valid[..., None]
                active = active.float()
                summed = torch.bmm(active.view(G * B, P, 2 * D).transpose(1, 2),
                                   x.view(G * B, P, 4 * m)).view(G, B, 2 * D, 4 * m)  # (base, offset) layout
                count = active.sum(2)  # [G, B, 2D]
                del x, z
        if grad:
            top = _TableMax.apply(tables, top, entries)
        pooled = (top + thr[:, None, :]).clamp(min=0)  # [G, B, 2D]
        if self.avg:
            mean = ((summed * w_bj.transpose(1, 2)[:, None]).sum(-1) + thr[:, None, :] * count) / positions[:, :, None]
            pooled = torch.stack([pooled, mean], -1)  # [G, B, 2D, 2]: max, avg interleaved per detector
        pooled = pooled.reshape(G, B, 2, -1)
        if dropout_keep is not None:
            pooled = pooled * dropout_keep[:, :, None, :]
        out = None
        if "linear_w" in p:
            out = torch.einsum("gbsi,gi->gbs", pooled, p["linear_w"]) + p["linear_b"][:, None, None]
        if "weights1" in p:
            h = torch.einsum("gbsi,gih->gbsh", pooled, p["weights1"]) + p["biases1"][:, None, None, :]
            deep = torch.einsum("gbsh,gh->gbs", h.clamp(min=0), p["weights2"]) + p["biases2"][:, None, None]
            out = deep if out is None else torch.where(self.has_hidden[:, None, None], deep, out)
        fwd, rev = out[..., 0], out[..., 1]
        return torch.where(self.rc[:, None], torch.maximum(fwd, rev), fwd)

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


def pick_models(which: torch.Tensor, new: dict[str, torch.Tensor],
                old: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Per model (bool [G]), the tensors of `new` where `which`, else those of `old`."""
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


def _mix(z: torch.Tensor) -> torch.Tensor:
    """splitmix64's finaliser on int64 tensors (logical shifts emulated by masking)."""
    def shr(x, s):
        return (x >> s) & ((1 << (64 - s)) - 1)

    z = (z ^ shr(z, 30)) * -4658895280553007687  # 0xbf58476d1ce4e5b9
    z = (z ^ shr(z, 27)) * -7723592293110705685  # 0x94d049bb133111eb
    return z ^ shr(z, 31)


def _mix_int(z: int) -> int:
    """`_mix` of one int64 in Python integers (no tensor, so no host-to-device copy per step)."""
    mask = (1 << 64) - 1
    z &= mask
    z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & mask
    z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & mask
    z ^= z >> 31
    return z - (1 << 64) if z >> 63 else z


def uniform(seeds: torch.Tensor, stream: int, step: int | torch.Tensor, n: int) -> torch.Tensor:
    """[G, n] uniforms in [0, 1), a pure function of (model seed, stream, step, index).

    Counter-based, so a model draws the same numbers whether it trains alone or in a bank,
    on any device. `step` is a Python int, or an int64 scalar on the device (a captured step).
    """
    idx = torch.arange(n, device=seeds.device, dtype=torch.int64)
    mixed = _mix_int(step) if isinstance(step, int) else _mix(step)
    key = _mix(seeds[:, None] * 1_000_003 + stream * 7_919 + mixed)
    bits = _mix(key + idx[None, :] * -7046029254386353131)  # golden-ratio increment
    return ((bits >> 11) & ((1 << 53) - 1)).double().mul_(2.0 ** -53).float()


class GroupData:
    """The training (or validation) sets of a group's models in one device tensor.

    `sets` holds per model (codes, targets), (codes, targets, weights) or (codes, targets,
    weights, origin). Models given the same list of codes (the same object) share its storage:
    the trials of one calibration fold, the restarts of one model. Rows are drawn in proportion
    to their weights (`sample`), and validation losses are weighted means; a classification set
    whose negatives were all made from its positives (`origin`, shuffles) is drawn in pairs
    instead, as the original DeepBind built its batches: half the batch peaks, half one shuffle
    of each.
    """

    def __init__(self, sets: list[tuple], m: int, device: torch.device):
        unique: dict[tuple[int, ...], int] = {}
        stored: list[tuple] = []
        of_model = []
        for entry in sets:
            key = tuple(id(x) for x in entry)
            if key not in unique:
                unique[key] = len(stored)
                stored.append(entry)
            of_model.append(unique[key])
        padded = [pad_batch(entry[0], m) for entry in stored]
        width = max(p.shape[1] for p, _ in padded)
        sizes = [p.shape[0] for p, _ in padded]
        starts = np.concatenate([[0], np.cumsum(sizes)])
        self.codes = torch.full((int(starts[-1]), width), PAD, dtype=torch.int8)
        self.positions = torch.ones(int(starts[-1]), dtype=torch.int64)
        self.targets = torch.zeros(int(starts[-1]), dtype=torch.float32)
        self.weights = torch.ones(int(starts[-1]), dtype=torch.float32)
        for k, ((p, pos), entry) in enumerate(zip(padded, stored)):
            a, b = int(starts[k]), int(starts[k + 1])
            self.codes[a:b, : p.shape[1]] = torch.from_numpy(p)
            self.positions[a:b] = torch.from_numpy(pos)
            self.targets[a:b] = torch.from_numpy(np.asarray(entry[1], np.float32))
            if len(entry) > 2 and entry[2] is not None:
                self.weights[a:b] = torch.from_numpy(np.asarray(entry[2], np.float32))
        self._pairs(stored, starts, of_model)
        # a Python bool, known before training: no host-device sync per step
        self.ragged = bool((self.positions < width - m + 1).any())
        # cumulative weights over all rows: a model draws within its own set's range
        self.cumulative = torch.cumsum(self.weights.double(), 0)
        self.start = torch.tensor([int(starts[k]) for k in of_model])
        self.sizes = torch.tensor([sizes[k] for k in of_model])
        below = torch.cat([torch.zeros(1, dtype=torch.float64), self.cumulative])
        self.weight_start = below[self.start]
        self.weight_total = below[self.start + self.sizes] - self.weight_start
        for name in ("codes", "positions", "targets", "weights", "cumulative", "start", "sizes",
                     "weight_start", "weight_total", "paired", "pair_start", "pair_size", "pair_row",
                     "pair_first", "pair_count", "made_row"):
            setattr(self, name, getattr(self, name).to(device))

    def _pairs(self, stored: list[tuple], starts: np.ndarray, of_model: list[int]) -> None:
        """Pairing tables: per paired set its positives (global rows) and, for each, the range of
        its negatives in `made_row` (global rows grouped by origin)."""
        pos_rows, first, count, made = [], [], [], []
        start, size, paired = np.zeros(len(stored), np.int64), np.zeros(len(stored), np.int64), []
        n_pos = n_made = 0
        for k, entry in enumerate(stored):
            y = np.asarray(entry[1])
            origin = np.asarray(entry[3]) if len(entry) > 3 and entry[3] is not None else None
            ok = origin is not None and len(y) > 0 and bool(np.isin(y, (0, 1)).all()) and (y == 1).any()
            if ok:
                pos = np.flatnonzero(y == 1)
                neg = np.flatnonzero(y == 0)
                neg = neg[np.argsort(origin[neg], kind="stable")]
                keys = origin[neg]
                lo = np.searchsorted(keys, origin[pos], "left")
                hi = np.searchsorted(keys, origin[pos], "right")
                # every positive has a negative made from it, and every negative comes from a positive
                ok = bool((hi > lo).all()) and int((hi - lo).sum()) == len(neg)
            paired.append(ok)
            if not ok:
                continue
            start[k], size[k] = n_pos, len(pos)
            pos_rows.append(pos + starts[k])
            first.append(lo + n_made)
            count.append(hi - lo)
            made.append(neg + starts[k])
            n_pos += len(pos)
            n_made += len(neg)

        def cat(parts: list[np.ndarray]) -> torch.Tensor:
            return torch.from_numpy(np.concatenate(parts).astype(np.int64)) if parts else torch.zeros(1, dtype=torch.int64)

        self.any_paired = any(paired[k] for k in of_model)  # a Python bool: no device sync per step
        self.paired = torch.tensor([paired[k] for k in of_model], dtype=torch.bool)
        self.pair_start = torch.from_numpy(start[of_model])
        self.pair_size = torch.from_numpy(np.maximum(size[of_model], 1))
        self.pair_row, self.pair_first, self.pair_count, self.made_row = cat(pos_rows), cat(first), cat(count), cat(made)

    def sample(self, u: torch.Tensor) -> torch.Tensor:
        """Rows [G, B] of each model's own set for uniforms u [G, B]: drawn in proportion to
        weight, or for a paired set, B // 2 peaks then one negative made from each (in the same
        order), plus a weighted draw when B is odd."""
        v = self.weight_start[:, None] + u.double() * self.weight_total[:, None]
        rows = torch.searchsorted(self.cumulative, v, right=True) - self.start[:, None]
        rows = torch.minimum(rows.clamp_(min=0), self.sizes[:, None] - 1)
        h = u.shape[1] // 2
        if not h or not self.any_paired:
            return rows
        size = self.pair_size[:, None]
        i = self.pair_start[:, None] + torch.minimum((u[:, :h].double() * size).long(), size - 1)
        count = self.pair_count[i]
        j = self.pair_first[i] + torch.minimum((u[:, h:2 * h].double() * count).long(), count - 1)
        pairs = torch.cat([self.pair_row[i], self.made_row[j]], 1) - self.start[:, None]
        rows[:, :2 * h] = torch.where(self.paired[:, None], pairs, rows[:, :2 * h])
        return rows

    def batch(self, rows: torch.Tensor):
        """Rows [G, B] of each model's own set: codes, positions, targets."""
        r = self.start[:, None] + rows
        return self.codes[r], self.positions[r], self.targets[r]

    def rows(self, g: int) -> slice:
        """Model g's rows in the stored tensors."""
        a = int(self.start[g])
        return slice(a, a + int(self.sizes[g]))


@dataclass
class GroupResult:
    """Trained group: parameters at each model's best checkpoint and the validation curves."""

    params: GroupParams
    best_step: list[int]
    checkpoints: list[int]
    val_loss: np.ndarray  # [checkpoints, G]
    val_metric: np.ndarray  # [checkpoints, G] AUC (classification) or Pearson (regression)
    train_loss: np.ndarray  # [checkpoints, G] mean training loss since the last checkpoint


# floats of per-position activations in one evaluation batch (bounds memory for large groups)
EVAL_BUDGET = 1 << 25


def evaluate_group(params: GroupParams, data: GroupData, classification: torch.Tensor,
                   batch_size: int = 256) -> tuple[np.ndarray, list[np.ndarray]]:
    """Mean loss per model [G] and each model's scores on its whole set (no dropout)."""
    G = params.G
    n = int(data.sizes.max())
    positions = data.codes.shape[1] - params.m + 1
    batch_size = max(1, min(batch_size, EVAL_BUDGET // (G * positions * 2 * DETECTORS * (2 if params.avg else 1))))
    scores = torch.empty(G, n, device=data.codes.device)
    with torch.no_grad():
        for c in range(0, n, batch_size):
            rows = torch.arange(c, min(n, c + batch_size), device=data.codes.device)[None, :].expand(G, -1)
            rows = torch.minimum(rows, data.sizes[:, None] - 1)
            codes, pos, _ = data.batch(rows)
            scores[:, c:c + rows.shape[1]] = params.forward(codes, pos, ragged=data.ragged)
    out, loss = [], np.empty(G)
    for g in range(G):
        k, own = int(data.sizes[g]), data.rows(g)
        s, y, w = scores[g, :k], data.targets[own], data.weights[own]
        loss[g] = float(losses(s[None], y[None], classification[g:g + 1], w[None])[0])
        out.append(s.cpu().numpy())
    return loss, out


class Stopped(Exception):
    """Training stopped on request at `step`, after its state was handed to `save`."""

    def __init__(self, step: int):
        super().__init__(f"stopped after step {step}")
        self.step = step


class StepRunner:
    """Runs a training step `fn(step, penalize)` with the step number as an int64 scalar on the
    device, so that one captured CUDA graph per `penalize` serves every step.

    A step of a group is a few hundred small kernels; launched one by one from Python their
    launch cost, not the GPU, sets the pace. Captured once and replayed, they launch together.
    Capture needs warm-up runs first (lazy initialisation, on a side stream); they change the
    weights, so `state` (every tensor a step updates in place) is saved before and restored
    after. On a device other than CUDA the same runs happen without capture (how tests check
    the device-side step counter and the restore). If capture fails, steps run one by one.
    """

    WARMUP = 2

    def __init__(self, fn, state: list[torch.Tensor], device: torch.device):
        self.fn, self.state, self.device = fn, state, device
        self.step = torch.zeros((), dtype=torch.int64, device=device)
        self.graphs: dict[bool, object] = {}
        self.eager = False

    def __call__(self, step: int, penalize: bool) -> None:
        if not self.eager and penalize not in self.graphs:
            self.graphs[penalize] = self._capture(step, penalize)
        if self.eager:
            self.fn(step, penalize)
            return
        self.step.fill_(step)
        graph = self.graphs[penalize]
        if graph is None:  # no capture on this device: the same step, eagerly
            self.fn(self.step, penalize)
        else:
            graph.replay()

    def _capture(self, step: int, penalize: bool):
        with torch.no_grad():
            saved = [t.detach().clone() for t in self.state]
        self.step.fill_(step)
        cuda = self.device.type == "cuda"
        graph = None
        try:
            if cuda:
                side = torch.cuda.Stream(self.device)
                side.wait_stream(torch.cuda.current_stream(self.device))
                with torch.cuda.stream(side):
                    for _ in range(self.WARMUP):
                        self.fn(self.step, penalize)
                torch.cuda.current_stream(self.device).wait_stream(side)
                graph = torch.cuda.CUDAGraph()
                with torch.cuda.graph(graph):
                    self.fn(self.step, penalize)
            else:
                for _ in range(self.WARMUP):
                    self.fn(self.step, penalize)
        except RuntimeError as e:  # a step that cannot be captured still trains, launch by launch
            warnings.warn(f"training steps run one by one: CUDA graph capture failed ({e})")
            self.eager, graph = True, None
        with torch.no_grad():
            for t, v in zip(self.state, saved):
                t.copy_(v)
                if t.grad is not None:  # a warm-up that failed after its backward pass left gradients
                    t.grad = None
        return graph


def _state(step, params, best, running, since, best_score, best_step, checkpoints, vl, vm, tl) -> dict:
    """Everything needed to continue a group's training exactly (tensors on the CPU)."""
    def cpu(v: torch.Tensor) -> torch.Tensor:
        return v.detach().to("cpu", copy=True).contiguous()

    tensors = {f"param.{k}": cpu(v) for k, v in params.params.items()}
    tensors |= {f"velocity.{k}": cpu(v) for k, v in params.velocity.items()}
    tensors |= {f"best.{k}": cpu(v) for k, v in best.items()}
    tensors["running"] = cpu(running)
    return {"tensors": tensors,
            "step": step, "since": since, "best_score": [float(x) for x in best_score],
            "best_step": list(best_step), "checkpoints": list(checkpoints),
            "val_loss": [list(map(float, x)) for x in vl], "val_metric": [list(map(float, x)) for x in vm],
            "train_loss": [list(map(float, x)) for x in tl]}


def train_group(tasks: list[Task], validation: list[tuple[list[np.ndarray], np.ndarray]] | None,
                steps: int, checkpoint_every: int, device: torch.device, batch_size: int = 64,
                progress=None, resume: dict | None = None, save=None, stop=None,
                until: list[int] | None = None, graphs: bool | None = None) -> GroupResult:
    """Train the tasks (one architecture) together; keep each model's best checkpoint.

    With validation sets, the best checkpoint has the lowest validation loss (classification)
    or the highest Pearson correlation (regression); without, the last one is kept.

    Resumable: at every checkpoint `save(state)` receives the full training state; when
    `stop()` turns true, the state after the last finished step is saved and `Stopped` is
    raised. Given that state as `resume`, training continues to exactly the result of an
    uninterrupted run (the random streams are functions of the step number).

    `until` [G] gives each model its own step budget: a model stops updating after its own
    number of steps (used to train final models of different lengths in one group).

    `graphs` (default: on CUDA) replays each step as a captured CUDA graph (`StepRunner`):
    the same kernels on the same tensors, launched at once instead of one by one.
    """
    from dbtools.metrics import auc, pearson

    params = GroupParams(tasks, device)
    m = params.m
    data = GroupData([(t.codes, t.targets, t.weights, t.origin) for t in tasks], m, device)
    val = GroupData(validation, m, device) if validation else None
    cls = torch.tensor([t.classification for t in tasks], device=device)
    seeds = torch.tensor([t.seed for t in tasks], dtype=torch.int64, device=device)
    nf = DETECTORS * (2 if params.avg else 1)
    p_drop = params.dropout[:, None]
    best_score = np.full(params.G, -np.inf)
    best_step = [steps] * params.G
    best = params.snapshot()
    checkpoints, vl, vm, tl = [], [], [], []
    running = torch.zeros(params.G, device=device)
    since, first = 0, 1
    if resume is not None:
        t = resume["tensors"]
        with torch.no_grad():
            for k in params.params:
                params.params[k].copy_(t[f"param.{k}"])
                params.velocity[k].copy_(t[f"velocity.{k}"])
        best = {k: t[f"best.{k}"].to(device) for k in params.params}
        running = t["running"].to(device)
        since, first = resume["since"], resume["step"] + 1
        best_score = np.array(resume["best_score"], dtype=np.float64)
        best_step = list(resume["best_step"])
        checkpoints = list(resume["checkpoints"])
        vl, vm, tl = ([np.array(x) for x in resume[k]] for k in ("val_loss", "val_metric", "train_loss"))

    def state(step):
        return _state(step, params, best, running, since, best_score, best_step, checkpoints, vl, vm, tl)

    budgets = torch.tensor(until, device=device) if until is not None else None

    def one_step(step: int | torch.Tensor, penalize: bool) -> None:
        rows = data.sample(uniform(seeds, 1, step, batch_size))
        keep = (uniform(seeds, 2, step, batch_size * nf) >= p_drop).float() / (1 - p_drop)
        codes, pos, y = data.batch(rows)
        scores = params.forward(codes, pos, keep.reshape(params.G, batch_size, nf), ragged=data.ragged)
        per_model = losses(scores, y, cls)
        (per_model.sum() + (params.penalty() if penalize else 0)).backward()
        params.step(None if budgets is None else budgets >= step)
        running.add_(per_model.detach())

    use_graphs = device.type == "cuda" if graphs is None else graphs
    runner = StepRunner(one_step, [*params.params.values(), *params.velocity.values(), running],
                        device) if use_graphs else None
    for step in range(first, steps + 1):
        if stop is not None and stop():
            if save is not None:
                save(state(step - 1))
            raise Stopped(step - 1)
        if runner is not None:
            runner(step, step > L1_START)
        else:
            one_step(step, step > L1_START)
        since += 1
        if step % checkpoint_every == 0 or step == steps:
            checkpoints.append(step)
            tl.append((running / since).cpu().numpy())
            running.zero_()
            since = 0
            if val is not None:
                loss, scores_v = evaluate_group(params, val, cls)
                metric = np.array([
                    auc(val.targets[val.rows(g)].cpu().numpy(), scores_v[g]) if tasks[g].classification
                    else pearson(val.targets[val.rows(g)].cpu().numpy(), scores_v[g])
                    for g in range(params.G)])
                vl.append(loss)
                vm.append(metric)
                score = np.where(cls.cpu().numpy(), -loss, np.nan_to_num(metric, nan=-np.inf))
                better = score > best_score
                if better.any():
                    best = pick_models(torch.from_numpy(better).to(device), params.snapshot(), best)
                    best_score = np.where(better, score, best_score)
                    best_step = [step if b else s for b, s in zip(better, best_step)]
            if save is not None:
                save(state(step))
        if progress:
            progress(step, float(np.mean(tl[-1])) if tl else None)
    if val is not None:
        params.load(best)
    empty = np.zeros((0, params.G))
    return GroupResult(params, best_step, checkpoints, np.array(vl) if vl else empty,
                       np.array(vm) if vm else empty, np.array(tl))
