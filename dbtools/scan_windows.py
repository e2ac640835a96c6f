"""Window values of one genome chunk: every model, every W-bp window placed every S bp.

The value of window [s, s + W) is exactly what `dbtools score` returns for those W bases
(`score_codes` with the same `ScoreOptions`). The work is done once per base: the engine's
stride-1 scoring windows (each padded on its own, as the original scorer does) are computed
for the whole chunk from shared convolutions (`BankEngine.window_scores`), and each genomic
window's value is then a sliding max (or sum / W with `--average`) over the scoring windows
inside it, per strand, before the strands' max.
"""

from __future__ import annotations

import numpy as np
import torch

from .encode import N
from .forward import BankEngine, _sliding_max, _sliding_sum
from .score import ScoreOptions

STRIDED_FROM = 4  # whole-window scoring at this step or more: only the kept windows' edges are computed


def window_count(length: int, window: int, step: int) -> int:
    """Windows of `window` bp placed every `step` bp from the start of `length` bases."""
    return 0 if length < window else (length - window) // step + 1


def gap_windows(codes: np.ndarray, window: int, step: int) -> np.ndarray:
    """[nwin] True where the window at k * step is all N (a gap: no value is written)."""
    nwin = window_count(len(codes), window, step)
    called = np.concatenate([[0], np.cumsum(codes != N, dtype=np.int64)])
    starts = np.arange(nwin, dtype=np.int64) * step
    return called[starts + window] == called[starts]


@torch.inference_mode()
def window_values(engine: BankEngine, codes: np.ndarray, window: int, step: int, scoring: ScoreOptions,
                  batch_windows: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Score windows codes[k*step : k*step + window] with every model of `engine`.

    Returns values [nwin, M] float32 (NaN for all-N windows) and rc_won [nwin, M] (True where
    the reverse strand gave the value). `batch_windows` caps the scoring windows per engine call.
    """
    M = len(engine)
    nwin = window_count(len(codes), window, step)
    values = np.full((nwin, M), np.nan, dtype=np.float32)
    rc_won = np.zeros((nwin, M), dtype=bool)
    if nwin == 0:
        return values, rc_won
    gaps = gap_windows(codes, window, step)
    if gaps.all():
        return values, rc_won
    span = (nwin - 1) * step + 1  # stride-1 genomic windows from the first to the last one kept
    x = torch.from_numpy(np.ascontiguousarray(codes[:span + window - 1]))[None].to(engine.device, torch.long)
    for g in engine.groups:
        w = min(scoring.window_size or int(1.5 * g.m), window)  # as BankEngine.score on `window` bases
        if w == window and step >= STRIDED_FROM and w >= g.m:  # whole-window values, sparse windows
            fwd, rev = _strided_scores(engine, g, x, w, step, nwin, batch_windows)
            _store(g, fwd, rev, values, rc_won)
            continue
        n_score = span + window - w  # scoring windows of length w inside the kept genomic windows
        wc, _ = engine._steps(g, 1, w, n_score)
        if batch_windows:
            wc = min(wc, batch_windows)
        fwd = torch.empty(g.size, n_score, device=engine.device)
        rev = torch.empty(int(g.rc_local.numel()), n_score, device=engine.device)
        for p0 in range(0, n_score, wc):
            p1 = min(n_score, p0 + wc)
            f, r = engine.window_scores(g, x, w, p0, p1)
            fwd[:, p0:p1] = f[0].t()
            rev[:, p0:p1] = r[0].t()
        fwd = _over_window(fwd, window - w + 1, scoring.average, window)[:, ::step]
        rev = _over_window(rev, window - w + 1, scoring.average, window)[:, ::step]
        _store(g, fwd, rev, values, rc_won)
    values[gaps] = np.nan
    rc_won[gaps] = False
    return values, rc_won


def _store(g, fwd: torch.Tensor, rev: torch.Tensor, values: np.ndarray, rc_won: np.ndarray) -> None:
    """Strands [G, n] and [Grc, n] of group g -> its columns of values and rc_won [n, M]."""
    won = torch.zeros_like(fwd, dtype=torch.bool)
    if rev.numel():
        won[g.rc_local] = rev > fwd[g.rc_local]
        fwd[g.rc_local] = torch.maximum(fwd[g.rc_local], rev)
    cols = g.bank_index.cpu().numpy()
    values[:, cols] = fwd.t().cpu().numpy()
    rc_won[:, cols] = won.t().cpu().numpy()


def _strided_scores(engine: BankEngine, g, x: torch.Tensor, w: int, step: int, n: int,
                    batch_windows: int | None) -> tuple[torch.Tensor, torch.Tensor]:
    """Whole-window scores of the n windows of length w at 0, step, ... of x [1, L] (w >= m):
    forward [G, n], reverse [Grc, n]. The detector positions wholly inside a window are
    convolved once for all windows (sliding max/sum); only the 2(m-1) positions that see the
    window's N padding are computed per window. Cheaper than every stride-1 window when
    windows are sparse (the engine's `_pooled`, without its per-window interior)."""
    m, dev = g.m, x.device
    inner, F = w - m + 1, g.weight.shape[1]
    rel = torch.cat([torch.arange(-(m - 1), 0, device=dev), torch.arange(w - m + 1, w, device=dev)])
    rel = rel[:, None] + torch.arange(m, device=dev)[None, :]  # [E, m] edge positions from the window start
    inside = (rel >= 0) & (rel < w)
    E = rel.shape[0]
    per = max(1, engine.budget // (E * (4 * m + F) + 4 * step * F))
    if batch_windows:
        per = min(per, batch_windows)
    fwd = torch.empty(g.size, n, device=dev)
    rev = torch.empty(int(g.rc_local.numel()), n, device=dev)
    for k0 in range(0, n, per):
        k1 = min(n, k0 + per)
        seg = x[0, k0 * step:(k1 - 1) * step + w]
        z = engine._conv(g, seg.unfold(0, m, 1)).t()  # [F, filter starts]
        span = (k1 - k0 - 1) * step + 1
        mx = z.new_empty(F, span)
        _sliding_max(z, inner, mx)
        if g.avg:
            total = z.new_empty(F, span)
            _sliding_sum(z, inner, total)
        starts = torch.arange(0, span, step, device=dev)
        idx = starts[:, None, None] + rel.clamp(0, w - 1)[None]
        ze = engine._conv(g, torch.where(inside, seg[idx], N))  # [nw, E, F]
        pooled = torch.maximum(mx[:, ::step].t(), ze.amax(1))
        mean = (total[:, ::step].t() + ze.sum(1)) / (w + m - 1) if g.avg else None
        f, r = engine._dense(g, pooled, mean, g.live)
        fwd[:, k0:k1] = f
        rev[:, k0:k1] = r
    return fwd, rev


def _over_window(scores: torch.Tensor, n: int, average: bool, length: int) -> torch.Tensor:
    """Each genomic window's value from its n scoring windows [C, span + n - 1] -> [C, span]:
    the max, or with `average` the sum / length (a sequence with one window is not divided)."""
    if n == 1 or scores.shape[0] == 0:
        return scores[:, :scores.shape[1] - n + 1]
    out = scores.new_empty(scores.shape[0], scores.shape[1] - n + 1)
    if average:
        _sliding_sum(scores, n, out)
        return out.div_(length)
    _sliding_max(scores, n, out)
    return out
