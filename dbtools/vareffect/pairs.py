"""Scores of reference windows and of alternative windows that differ from them in a few bases.

`dbtools score` scores a sequence longer than a model's window w as the max (or, with
--average, the sum / L) over its stride-1 windows of w bp, each padded on its own. A window
that does not overlap the bases where an alternative differs from its reference has the same
score in both, so for each alternative only the windows overlapping the differing span are
computed (for an SNV in a 101-bp window and a 36-bp model window, 36 of the 66); the others
are taken from the reference's per-window scores, which the reference pass yields anyway.
The per-window scores come from `BankEngine.window_scores`, the same code `score` reduces,
so the results equal `score_codes` on the two windows (max exactly; sums up to float
rounding of the summation order). On the CPU with the fused kernel (`engine.native`) every
window of both sequences is scored instead: that is faster there.
"""

from __future__ import annotations

import numpy as np
import torch

from dbtools.engine.bank_engine import MIN_SHARED_WINDOWS, BankEngine
from dbtools.engine.options import ScoreOptions
from dbtools.engine.sliding import row_max
from dbtools.parallel import parallel_steps

def _window_scores(engine: BankEngine, g, codes: torch.Tensor, w: int, p0: int, p1: int):
    """window_scores over all sequences of `codes`, in steps: ([B, nw, G], [B, nw, Grc])."""
    step = engine.sequences_per_step(g, w, p1 - p0)
    starts = list(range(0, codes.shape[0], step))
    parts: list = [None] * len(starts)

    def run(k: int) -> None:
        parts[k] = engine.window_scores(g, codes[starts[k]:starts[k] + step], w, p0, p1)

    parallel_steps(run, range(len(starts)), engine.device)
    return torch.cat([f for f, _ in parts]), torch.cat([r for _, r in parts])


def _reduce(scores: torch.Tensor, average: bool) -> torch.Tensor:
    return scores.sum(1) if average else row_max(scores)


def _combine(a: torch.Tensor, b: torch.Tensor, average: bool) -> torch.Tensor:
    return a + b if average else torch.maximum(a, b)


@torch.inference_mode()
def score_pairs(engine: BankEngine, ref: np.ndarray, alt: np.ndarray, owner: np.ndarray,
                options: ScoreOptions) -> tuple[np.ndarray, np.ndarray]:
    """Scores of reference windows and of alternatives that differ from them in a few bases, as
    `score_codes` gives them.

    Parameters
    ----------
    engine : the compiled bank
    ref : [n, L] base codes of the reference windows
    alt : [k, L] base codes of the alternative windows
    owner : [k] alt[i] is a variant of ref[owner[i]]
    options : scoring options (raw scores: no class probability)

    Returns
    -------
    ref_scores : [n, M] float32
    alt_scores : [k, M] float32
    """
    if options.class_prob:
        raise ValueError("score_pairs returns raw scores")
    n, L = ref.shape
    k = alt.shape[0]
    M = len(engine)
    out_ref = torch.empty(n, M)
    out_alt = torch.empty(k, M)
    if n == 0:
        return out_ref.numpy(), out_alt.numpy()
    dev = engine.device
    ref_t = torch.as_tensor(ref, dtype=torch.long, device=dev)
    alt_t = torch.as_tensor(alt, dtype=torch.long, device=dev)
    if all(engine.fused_scores(g) for g in engine.groups):
        # the fused CPU kernel scores every window of both sequences faster than the bookkeeping of
        # sharing the reference's windows saves (docs/development.md)
        both = engine.score(torch.cat([ref_t, alt_t]), options.window_size, options.average)
        return both[:n].numpy(), both[n:].numpy()
    differs = alt != ref[owner]  # [k, L]
    any_diff = differs.any(1)
    first = np.where(any_diff, differs.argmax(1), 0)
    last = np.where(any_diff, L - 1 - differs[:, ::-1].argmax(1), -1)
    owner_t = torch.as_tensor(owner, dtype=torch.long)
    both = None
    for g in engine.groups:
        w = options.scoring_window(g.m, L)
        nw = L - w + 1
        if nw < MIN_SHARED_WINDOWS:  # (nearly) whole-sequence scoring: every window sees the change
            if both is None:  # (all groups at once; used for each group in this case)
                both = engine.score(torch.cat([ref_t, alt_t]), options.window_size, options.average)
            idx = g.bank_index.cpu()
            out_ref[:, idx] = both[:n, g.bank_index].cpu()
            out_alt[:, idx] = both[n:, g.bank_index].cpu()
            continue
        f_ref, r_ref = _window_scores(engine, g, ref_t, w, 0, nw)  # [n, nw, G], [n, nw, Grc]
        rc = g.rc_local.numel() > 0
        # alternatives grouped by the range of windows [p0, p1) that overlap their differing span
        p0 = np.clip(first - w + 1, 0, nw)
        p1 = np.clip(last + 1, 0, nw)
        fa = torch.empty(k, g.size, device=dev)
        ra = torch.empty(k, max(1, int(g.rc_local.numel())), device=dev)
        keys = np.stack([p0, p1], 1)
        for a, b in np.unique(keys, axis=0):
            rows = np.flatnonzero((p0 == a) & (p1 == b))
            rows_t = torch.as_tensor(rows, dtype=torch.long, device=dev)
            own = owner_t[rows].to(dev)
            if a >= b:  # identical to the reference: its scores
                fa[rows_t] = _reduce(f_ref[own], options.average)
                if rc:
                    ra[rows_t] = _reduce(r_ref[own], options.average)
                continue
            f, r = _window_scores(engine, g, alt_t[rows_t], w, int(a), int(b))
            fa[rows_t] = _outside_and_inside(f_ref[own], f, int(a), int(b), options.average)
            if rc:
                ra[rows_t] = _outside_and_inside(r_ref[own], r, int(a), int(b), options.average)
        fr = _reduce(f_ref, options.average)
        for scores, strand, other in ((out_ref, fr, r_ref), (out_alt, fa, None)):
            if rc:
                rev = _reduce(other, options.average) if other is not None else ra
                strand[:, g.rc_local] = torch.maximum(strand[:, g.rc_local], rev)
            if options.average and nw > 1:
                strand = strand / L
            scores[:, g.bank_index.cpu()] = strand.cpu()
    return out_ref.numpy(), out_alt.numpy()


def _outside_and_inside(ref_windows: torch.Tensor, alt_inside: torch.Tensor, p0: int, p1: int,
                        average: bool) -> torch.Tensor:
    """Reduce the reference's windows outside [p0, p1) with the alternative's inside: [B, G]."""
    acc = _reduce(alt_inside, average)
    if p0 > 0:
        acc = _combine(acc, _reduce(ref_windows[:, :p0], average), average)
    if p1 < ref_windows.shape[1]:
        acc = _combine(acc, _reduce(ref_windows[:, p1:], average), average)
    return acc
