"""Stacks of detector columns for mutation maps: models whose detectors share a length and pooling
share one set of columns (forward detectors, then the flipped detectors of reverse-complement
models, as in `engine.groups`), with each architecture's dense layers ("heads", one per model strand)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from dbtools.bank.store import Bank
from dbtools.engine.groups import strand_detectors


@dataclass
class Heads:
    """Dense layers of models of one architecture, reading columns c0..c1-1 of their stack.

    Head h (the forward strand of each model, then the reverse strands) owns columns
    c0 + h*d .. c0 + (h+1)*d - 1 and is head h0 + h of the stack.
    """

    d: int
    bank_index: np.ndarray  # [G] positions of these models in the bank
    rc_local: torch.Tensor  # [Grc] positions among these models of reverse-complement ones
    c0: int
    c1: int
    h0: int
    h1: int
    w_max: torch.Tensor  # [H, d, hid | 1] dense weights of the max features
    w_mean: torch.Tensor | None  # [H, d, hid | 1] of the mean features
    b1: torch.Tensor  # [H, hid | 1]
    lin_max: torch.Tensor | None  # without hidden layer: [H, c1 - c0] block-diagonal w_max (one GEMM)
    lin_mean: torch.Tensor | None
    w2: torch.Tensor | None  # [H, hid, 1]
    b2: torch.Tensor | None  # [H]

    @property
    def size(self) -> int:
        return len(self.bank_index)

    @property
    def hidden(self) -> int:
        return 0 if self.w2 is None else self.w2.shape[1]


@dataclass
class Stack:
    """Models whose detectors share a length and pooling, with stacked detector columns (each
    architecture's forward columns, then its reverse-complement ones); dead detectors are kept
    (they pool to 0)."""

    m: int
    avg: bool
    centred: torch.Tensor  # [5m, C] row 5j + code: W[j, b] - mean_b W[j, b] (0 for N)
    const: torch.Tensor  # [C] threshold + sum of the row means: the response to m N
    subst: torch.Tensor  # [4, 3mC] per reference base x: W[j, x+r+1 mod 4] - W[j, x] (r = 0..2, j' = m-1-j)
    subst_n: torch.Tensor  # [5, 4mC] per reference code x (N: the mean row): W[j, b] - W[j, x] (b = 0..3)
    parts: list[Heads]

    @property
    def heads(self) -> int:
        return self.parts[-1].h1


def _build_heads(bank: Bank, members: list[int], c0: int, h0: int, device: torch.device):
    """Dense layers of `members` (one architecture) and their detector columns [m, 4, c] / thresholds."""
    arch = bank.models[members[0]].info.arch
    d = arch.num_detectors
    w3, thr, rc_local = strand_detectors(bank, members)
    heads = list(range(len(members))) + rc_local
    H, C = len(heads), w3.shape[2]
    w1 = np.stack([bank.models[members[k]].arrays["weights1"] for k in heads])  # [H, nf, hid|1]
    b1 = np.stack([bank.models[members[k]].arrays["biases1"] for k in heads])  # [H, hid|1]
    # features interleaved [max0, avg0, max1, avg1, ...] per head, as the published weights expect
    w_max, w_mean = (w1[:, 0::2], w1[:, 1::2]) if arch.avg_pooling else (w1, None)

    def t(a):
        return None if a is None else torch.as_tensor(np.ascontiguousarray(a), dtype=torch.float32, device=device)

    def block_diagonal(w):  # [H, d, 1] -> [H, C]
        out = np.zeros((H, C))
        for h in range(H):
            out[h, h * d:(h + 1) * d] = w[h, :, 0]
        return out

    linear = not arch.num_hidden
    if arch.num_hidden:
        w2 = np.stack([bank.models[members[k]].arrays["weights2"] for k in heads])  # [H, hid, 1]
        b2 = np.stack([bank.models[members[k]].arrays["biases2"][0] for k in heads])
    else:
        w2 = b2 = None
    part = Heads(
        d=d, bank_index=np.asarray(members),
        rc_local=torch.as_tensor(rc_local, dtype=torch.long, device=device),
        c0=c0, c1=c0 + C, h0=h0, h1=h0 + H,
        w_max=t(w_max), w_mean=t(w_mean), b1=t(b1),
        lin_max=t(block_diagonal(w_max)) if linear else None,
        lin_mean=t(block_diagonal(w_mean)) if linear and w_mean is not None else None,
        w2=t(w2), b2=t(b2),
    )
    return part, w3, thr


def build_stack(bank: Bank, groups: list[list[int]], device: torch.device) -> Stack:
    """A stack of `groups` (models of one architecture each; all of one detector length and pooling)."""
    arch = bank.models[groups[0][0]].info.arch
    m = arch.detector_len
    parts, ws, thrs = [], [], []
    c0 = h0 = 0
    for members in groups:
        part, w3, thr = _build_heads(bank, members, c0, h0, device)
        parts.append(part)
        ws.append(w3)
        thrs.append(thr)
        c0, h0 = part.c1, part.h1
    w3, thr = np.concatenate(ws, axis=2), np.concatenate(thrs)  # [m, 4, C], [C]
    C = w3.shape[2]
    mean = w3.mean(axis=1)  # [m, C]
    centred = np.concatenate([w3 - mean[:, None], np.zeros_like(mean)[:, None]], axis=1)  # [m, 5, C]
    rows = w3[::-1].transpose(1, 0, 2)  # [4, m, C] W[j, b] in j' = m-1-j order
    by_code = np.concatenate([rows, rows.mean(axis=0, keepdims=True)])  # [5, m, C]
    subst = np.stack([np.stack([rows[(x + r + 1) % 4] - rows[x] for r in range(3)]) for x in range(4)])
    subst_n = rows[None] - by_code[:, None]  # [5, 4, m, C]

    def t(a):
        return torch.as_tensor(np.ascontiguousarray(a), dtype=torch.float32, device=device)

    return Stack(m=m, avg=arch.avg_pooling, centred=t(centred.reshape(5 * m, C)), const=t(thr + mean.sum(axis=0)),
                  subst=t(subst.reshape(4, -1)), subst_n=t(subst_n.reshape(5, -1)), parts=parts)


def dense(s: Stack, mx: torch.Tensor, mean: torch.Tensor | None) -> torch.Tensor:
    """Scores of every head (model strand) of a stack from pooled features [R, C] (max, and mean): [R, H]."""
    R = mx.shape[0]
    out = mx.new_empty(R, s.heads)
    for p in s.parts:
        f_max = mx[:, p.c0:p.c1]
        f_mean = None if mean is None else mean[:, p.c0:p.c1]
        if p.lin_max is not None:  # one output per head: a block-diagonal GEMM for all heads at once
            z = torch.mm(p.lin_max, f_max.t())  # [H, R]: faster than [R, C] x [C, H] with few heads
            if f_mean is not None:
                z.addmm_(p.lin_mean, f_mean.t())
            out[:, p.h0:p.h1] = z.add_(p.b1).t()
            continue
        for h in range(p.h1 - p.h0):  # a GEMM per head (faster than bmm over the heads' strided features)
            cols = slice(h * p.d, (h + 1) * p.d)
            z = torch.addmm(p.b1[h], f_max[:, cols], p.w_max[h])  # [R, hid]
            if f_mean is not None:
                z.addmm_(f_mean[:, cols], p.w_mean[h])
            torch.addmv(p.b2[h], z.clamp_(min=0), p.w2[h, :, 0], out=out[:, p.h0 + h])
    return out


def models_of(p: Heads, per_head: torch.Tensor) -> torch.Tensor:
    """[..., H] strand scores -> [..., G] model scores (the max of the strands, as the original)."""
    out = per_head[..., :p.size].clone()
    if p.rc_local.numel():
        out[..., p.rc_local] = torch.maximum(out[..., p.rc_local], per_head[..., p.size:])
    return out
