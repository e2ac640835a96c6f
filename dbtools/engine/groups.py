"""Groups of models that share one architecture, laid out for the batched forward pass.

A group stacks the detectors of all its models (and the flipped detectors of its
reverse-complement models) as the columns of one weight matrix, drops the columns that can never
be positive, and prepares the edge-cut tables (`Cuts`) and the fused kernel's layout (`Strands`).
See `dbtools.engine.bank_engine` for how the windowed pass uses them.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from dbtools.bank.store import Bank
from dbtools.engine import native
from dbtools.io.encode import kmer_digits

BLOCK = 4  # filter rows per block in the edge decomposition
_DEAD_MARGIN = 1e-3
_CPU_COLS = 1000  # detector columns per step on the CPU (the GPU takes a group's columns at once)


def architecture_groups(bank: Bank, with_hidden: bool = True) -> dict[tuple, list[int]]:
    """Bank positions of the models of each architecture, in bank order.

    The key is (detector length, detectors, pooling with average, hidden units); without
    `with_hidden` the hidden units are left out of the key (models that share their detectors'
    shape but not their dense layers).
    """
    by_arch: dict[tuple, list[int]] = {}
    for i, model in enumerate(bank.models):
        a = model.info.arch
        key = (a.detector_len, a.num_detectors, a.avg_pooling) + ((a.num_hidden,) if with_hidden else ())
        by_arch.setdefault(key, []).append(i)
    return by_arch


def strand_detectors(bank: Bank, members: list[int]) -> tuple[np.ndarray, np.ndarray, list[int]]:
    """The detector columns of `members` (one architecture) on both strands.

    Returns
    -------
    weights : [m, 4, F] float64, the forward detectors of every model, then the flipped detectors
        of the reverse-complement models (scanning the forward sequence with W[m-1-j, 3-b] scores
        the reverse strand)
    thresholds : [F] float64, in the same column order
    rc_local : positions within `members` of the reverse-complement models
    """
    rc_local = [k for k, i in enumerate(members) if bank.models[i].info.arch.reverse_complement]
    fwd = [bank.models[i].arrays["detectors"] for i in members]  # each [m, 4, d]
    rc = [fwd[k][::-1, ::-1, :] for k in rc_local]
    thr = [bank.models[i].arrays["thresholds"] for i in members]
    weights = np.concatenate(fwd + rc, axis=2).astype(np.float64)
    thresholds = np.concatenate(thr + [thr[k] for k in rc_local]).astype(np.float64)
    return weights, thresholds, rc_local


@dataclass
class Group:
    """Models sharing one architecture, with stacked weights on the device."""

    m: int
    num_detectors: int
    avg: bool
    hidden: int
    bank_index: torch.Tensor  # [G] positions of these models in the bank
    rc_local: torch.Tensor  # [Grc] positions within the group of reverse-complement models
    weight: torch.Tensor  # [4m, F_live] conv weights of live detector columns
    threshold: torch.Tensor  # [F_live]
    live: torch.Tensor  # [F_live] column index into the full column list
    n_columns: int  # 16 * (G + Grc) forward then reverse-complement columns
    w1: torch.Tensor  # [G, nf, H] (H = 1 without hidden layer)
    b1: torch.Tensor  # [G, H]
    w2: torch.Tensor | None  # [G, H]
    b2: torch.Tensor | None  # [G]
    cuts: Cuts
    features: torch.Tensor  # [n_columns * k] pooled column of each dense input (the zero column if dead)
    feature_rows: torch.Tensor  # [k, F_live] dense input of each live column in the cut order (max, then avg)
    dead_features: torch.Tensor  # dense inputs of dead columns (always 0)
    strands: Strands | None  # the whole network per model strand, for the fused CPU kernel (None: not fit)

    @property
    def size(self) -> int:
        return int(self.bank_index.numel())


@dataclass
class Cuts:
    """Edge-cut data of a group's live columns, in one column order shared by both window edges
    (live columns first, by the last cut at which either edge is live)."""

    order: np.ndarray  # [F_live] positions in the group's live columns
    const: torch.Tensor  # [F_live] threshold + sum of row means (response to all N)
    tables: list[list[torch.Tensor]]  # per chunk of `width` columns, per block: [5**b, fw] response to each b-mer
    rows: list[list[torch.Tensor]]  # per chunk, per block: [4 * rows, fw] centred weights (row, then base)
    nb: int  # blocks of `BLOCK` rows (the last one may be shorter)
    width: int
    live_left: list[int]  # live_left[k]: columns alive at the left cut k (a prefix of the order)
    live_right: list[int]  # live_right[h]: columns alive at the right cut h
    centred: torch.Tensor  # [m, 5, F_live] centred weights in this order (the N row 0), for the fused kernel


@dataclass
class Strands:
    """A group laid out for the fused CPU kernel with its dense layers (`native.Head`):
    one tile of LANES columns per model strand (forward strands, then reverse-complement ones),
    every detector kept (a dead one pools to 0 there as here)."""

    centred: torch.Tensor  # [m, 5, U * LANES] centred weights, N row and unused lanes 0
    const: torch.Tensor  # [U * LANES]
    head: native.Head
    rows: torch.Tensor  # [U] output row of each strand: arange(U)


def fused_strands(bank: Bank, members: list[int]) -> Strands | None:
    """The fused kernel's layout of `members` (one architecture) alone, or None if its shape does not fit."""
    w3, thresholds, rc_local = strand_detectors(bank, members)
    return _build_strands(bank, members, rc_local, w3, thresholds)


def _build_strands(bank: Bank, members: list[int], rc_local: list[int], w3: np.ndarray,
                   thresholds: np.ndarray) -> Strands | None:
    """The fused layout of a group (w3 [m, 4, n_columns] float64), or None if its shape does not fit."""
    arch = bank.models[members[0]].info.arch
    d, hidden, lanes = arch.num_detectors, arch.num_hidden, native.LANES
    if d > lanes or (hidden and (hidden % lanes or hidden > native.MAX_HIDDEN)):
        return None
    m = w3.shape[0]
    k = 2 if arch.avg_pooling else 1
    owner = list(range(len(members))) + list(rc_local)  # the model of each strand
    U = len(owner)
    mean = w3.mean(axis=1)
    const = thresholds + mean.sum(axis=0)
    centred = np.zeros((m, 5, U, lanes))
    centred[:, :4, :, :d] = (w3 - mean[:, None]).reshape(m, 4, U, d)
    cst = np.zeros((U, lanes))
    cst[:, :d] = const.reshape(U, d)
    hp = hidden or 1
    w1 = np.zeros((U, k, lanes, hp))
    for u, j in enumerate(owner):
        a = bank.models[members[j]].arrays
        for t in range(k):
            w1[u, t, :d] = a["weights1"][t::k]  # features interleave [max0, avg0, max1, avg1, ...]
    b1 = np.stack([bank.models[members[j]].arrays["biases1"] for j in owner])
    f32 = lambda v: torch.as_tensor(np.ascontiguousarray(v, dtype=np.float32))  # noqa: E731
    w2 = b2 = None
    if hidden:
        w2 = f32(np.stack([bank.models[members[j]].arrays["weights2"][:, 0] for j in owner]))
        b2 = f32(np.stack([bank.models[members[j]].arrays["biases2"][0] for j in owner]))
    return Strands(centred=f32(centred.reshape(m, 5, U * lanes)), const=f32(cst.reshape(-1)),
                    head=native.Head(hidden=hidden, w1=f32(w1), b1=f32(b1), w2=w2, b2=b2),
                    rows=torch.arange(U))


def _build_cuts(w: np.ndarray, thr: np.ndarray, device: torch.device, width: int) -> Cuts:
    """Cut data for live columns w [m, 4, F] (float64), thresholds [F]."""
    m, _, F = w.shape
    b = BLOCK
    mean = w.mean(axis=1)  # [m, F]
    wc = w - mean[:, None]
    const = thr + mean.sum(axis=0)
    top = wc.max(axis=1)  # [m, F], >= 0
    # upper bounds: left cut k keeps rows k.., right cut h keeps rows ..m-1-h
    ub_left = const + np.cumsum(top[::-1], axis=0)[::-1]
    ub_right = const + np.cumsum(top, axis=0)
    last_left = (ub_left[1:] > -_DEAD_MARGIN).sum(axis=0)  # live cuts are k = 1..last_left
    last_right = (ub_right[:m - 1] > -_DEAD_MARGIN).sum(axis=0)  # live cuts are h = 1..last_right
    order = np.argsort(-np.maximum(last_left, last_right), kind="stable")
    position = np.empty(F, dtype=np.int64)
    position[order] = np.arange(F)

    def live(last: np.ndarray) -> list[int]:  # a prefix long enough for every column alive at cut c
        return [0] + [int(position[last >= c].max()) + 1 if (last >= c).any() else 0 for c in range(1, m)]

    nb = -(-m // b)
    padded = np.zeros((nb * b, 5, F))  # rows past m and the N channel respond 0 (centred weights)
    padded[:m, :4] = wc[:, :, order]
    digits = kmer_digits(b)
    tables, rows = [], []
    for c in range(0, F, width):
        blk = padded[:, :, c:c + width]
        tables.append([torch.as_tensor(sum(blk[beta * b + r][digits[:, r]] for r in range(b)).astype(np.float32),
                                       device=device) for beta in range(nb)])
        rows.append([torch.as_tensor(np.ascontiguousarray(
            blk[beta * b:min((beta + 1) * b, m), :4].reshape(-1, blk.shape[2]).astype(np.float32)), device=device)
            for beta in range(nb)])
    return Cuts(order=order, const=torch.as_tensor(const[order].astype(np.float32), device=device),
                 tables=tables, rows=rows, nb=nb, width=width,
                 live_left=live(last_left), live_right=live(last_right),
                 centred=torch.as_tensor(np.ascontiguousarray(padded[:m]).astype(np.float32), device=device))


def build_group(bank: Bank, members: list[int], device: torch.device) -> Group:
    """The models `members` of `bank` (one architecture) stacked for the forward pass on `device`."""
    arch = bank.models[members[0]].info.arch
    m, d = arch.detector_len, arch.num_detectors
    dtype = bank.models[members[0]].arrays["detectors"].dtype
    w64, thr64, rc_local = strand_detectors(bank, members)
    w3, thresholds = w64.astype(dtype), thr64.astype(dtype)  # exact: the bank's own values
    cols = w3.reshape(4 * m, -1)
    # a detector whose best possible response stays below zero is always 0 after rectification
    best = w3.max(axis=1).sum(axis=0) + thresholds
    live = np.flatnonzero(best > -_DEAD_MARGIN)
    if live.size == 0:
        live = np.array([0])
    width = _CPU_COLS if device.type == "cpu" else live.size
    cuts = _build_cuts(w3[:, :, live].astype(np.float64), thresholds[live].astype(np.float64), device, width)
    k, F = (2 if arch.avg_pooling else 1), live.size
    features = np.full((cols.shape[1], k), k * F, dtype=np.int64)
    for t in range(k):
        features[live[cuts.order], t] = np.arange(F) + t * F
    nf = arch.num_features
    w1 = np.stack([bank.models[i].arrays["weights1"] for i in members])  # [G, nf, H|1]
    b1 = np.stack([bank.models[i].arrays["biases1"] for i in members])  # [G, H|1]
    if arch.num_hidden:
        w2 = torch.as_tensor(np.stack([bank.models[i].arrays["weights2"][:, 0] for i in members]))
        b2 = torch.as_tensor(np.stack([bank.models[i].arrays["biases2"][0] for i in members]))
        w2, b2 = w2.to(device), b2.to(device)
    else:
        w2 = b2 = None
    assert w1.shape[1] == nf
    return Group(
        m=m, num_detectors=d, avg=arch.avg_pooling, hidden=arch.num_hidden,
        bank_index=torch.as_tensor(members, dtype=torch.long, device=device),
        rc_local=torch.as_tensor(rc_local, dtype=torch.long, device=device),
        weight=torch.as_tensor(np.ascontiguousarray(cols[:, live]), device=device),
        threshold=torch.as_tensor(thresholds[live], device=device),
        live=torch.as_tensor(live, dtype=torch.long, device=device),
        n_columns=cols.shape[1],
        w1=torch.as_tensor(w1, device=device), b1=torch.as_tensor(b1, device=device), w2=w2, b2=b2,
        cuts=cuts,
        features=torch.as_tensor(features.reshape(-1), device=device),
        feature_rows=torch.as_tensor(np.stack([live[cuts.order] * k + t for t in range(k)])),
        dead_features=torch.as_tensor(np.flatnonzero(features.reshape(-1) == k * F)),
        strands=_build_strands(bank, members, rc_local, w64, thr64)
        if device.type == "cpu" else None,
    )


def cast_group(g: Group, dtype: torch.dtype) -> None:
    """Hold a group's weights and tables in `dtype` (the torch path computes in it)."""
    for name in ("weight", "threshold", "w1", "b1", "w2", "b2"):
        if getattr(g, name) is not None:
            setattr(g, name, getattr(g, name).to(dtype))
    c = g.cuts
    c.const, c.centred = c.const.to(dtype), c.centred.to(dtype)
    c.tables = [[t.to(dtype) for t in chunk] for chunk in c.tables]
    c.rows = [[t.to(dtype) for t in chunk] for chunk in c.rows]
    g.strands = None

