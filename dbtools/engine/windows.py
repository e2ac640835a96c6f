"""Window values of one genome chunk: every model, every W-bp window placed every S bp.

The value of window [s, s + W) is exactly what `dbtools score` returns for those W bases
(`score_codes` with the same `ScoreOptions`). The work is done once per base: the engine's
stride-1 scoring windows (each padded on its own, as the original scorer does) are computed
for the whole chunk from shared convolutions (`BankEngine.window_scores`), and each genomic
window's value is then a sliding max (or sum / W with `--average`) over the scoring windows
inside it, per strand, before the strands' max. Windows scored whole at a step of a few bp or
more are each computed on their own instead (`dbtools.engine.strided`): their edge work is not
shared, and most of the stride-1 windows are not wanted.
"""

from __future__ import annotations

import numpy as np
import torch

from dbtools.engine.bank_engine import BankEngine, Path
from dbtools.engine.options import ScoreOptions
from dbtools.engine.sliding import sliding_max, sliding_sum
from dbtools.engine.strided import strided_windows
from dbtools.io.encode import N
from dbtools.parallel import parallel_steps

_FUSED_BASES = 1 << 18  # bases per fused-kernel call when windows are kept every few bp


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
    """Score the genomic windows codes[k*step : k*step + window] with every model of `engine`.

    Parameters
    ----------
    engine : the compiled bank
    codes : [L] base codes of one chunk of a contig
    window, step : genomic window W and the step S between window starts
    scoring : the scoring options each window is scored with, exactly as `dbtools score`
    batch_windows : a cap on the scoring windows per engine call

    Returns
    -------
    values : [nwin, M] float32, NaN for all-N windows
    rc_won : [nwin, M] bool, True where the reverse strand gave the value
        Both are column-major (each model's values contiguous), as tracks are written per model.
    """
    M = len(engine)
    nwin = window_count(len(codes), window, step)
    gaps = gap_windows(codes, window, step)
    if nwin == 0 or gaps.all():
        return np.full((M, nwin), np.nan, dtype=np.float32).T, np.zeros((M, nwin), dtype=bool).T
    # every column is filled below: each model is in exactly one group
    values = np.empty((M, nwin), dtype=np.float32).T
    rc_won = np.empty((M, nwin), dtype=bool).T
    span = (nwin - 1) * step + 1  # stride-1 genomic windows from the first to the last one kept
    x = torch.from_numpy(np.ascontiguousarray(codes[:span + window - 1]))[None].to(engine.device, torch.long)
    paths = {id(g): engine.genomic_path(g, window, step, scoring) for g in engine.groups}
    fused = {id(g) for g in engine.groups if paths[id(g)] is Path.KEPT_KERNEL}
    # groups of one shape side by side
    strided = [g for g in engine.groups if paths[id(g)] is Path.STRIDED]
    if strided:
        for g, fwd, rev in _strided_values(engine, strided, x[0], window, step, nwin, batch_windows):
            _store(g, fwd, rev, values, rc_won)
    done = {id(g) for g in strided}
    # the rest in one pool of steps (one per group and chunk), so the cores stay busy across groups
    parts, steps = [], []
    for g in engine.groups:
        if id(g) in done:
            continue
        kept = id(g) in fused
        w = window if kept else scoring.scoring_window(g.m, window)
        n = nwin if kept else span + window - w  # kept windows, or every scoring window of length w
        if kept:
            wc = max(1, _FUSED_BASES // step)
        else:
            wc = engine.steps(g, 1, w, n)[0]
        if batch_windows:
            wc = min(wc, batch_windows)
        part = (g, w, kept, torch.empty(g.size, n, device=engine.device),
                torch.empty(int(g.rc_local.numel()), n, device=engine.device))
        parts.append(part)
        steps.extend((part, i0, min(n, i0 + wc)) for i0 in range(0, n, wc))

    def run(job) -> None:
        (g, w, kept, fwd, rev), i0, i1 = job
        if kept:
            f, r = engine.scores_fused(g, x, w, i0 * step, (i1 - 1) * step + 1, step)
        else:
            f, r = engine.window_scores(g, x, w, i0, i1)
        fwd[:, i0:i1] = f[0].t()
        rev[:, i0:i1] = r[0].t()

    parallel_steps(run, steps, engine.device)
    for g, w, kept, fwd, rev in parts:
        if not kept:
            fwd = _over_window(fwd, window - w + 1, scoring.average, window)[:, ::step]
            rev = _over_window(rev, window - w + 1, scoring.average, window)[:, ::step]
        _store(g, fwd, rev, values, rc_won)
    values[gaps] = np.nan
    rc_won[gaps] = False
    return values, rc_won


def _strided_values(engine: BankEngine, groups: list, codes: torch.Tensor, w: int, step: int, nwin: int,
                    batch_windows: int | None) -> list[tuple]:
    """Whole-window scores of windows every `step` bp: per group, (g, strands [G, nwin] and [Grc, nwin])."""
    strided = strided_windows(engine)
    out = []
    for unit in strided.units(groups):
        per = strided.windows_per_step(unit[1], w, step)
        if batch_windows:
            per = min(per, batch_windows)
        mine = [(g, torch.empty(g.size, nwin, device=engine.device),
                 torch.empty(int(g.rc_local.numel()), nwin, device=engine.device)) for g in unit[0]]

        def run(i0: int) -> None:  # called within this iteration: the loop's names are current
            n = min(nwin, i0 + per) - i0
            for (_, fwd, rev), (f, r) in zip(mine, strided.scores(unit, codes, w, step, i0 * step, n)):
                fwd[:, i0:i0 + n] = f
                rev[:, i0:i0 + n] = r

        # one thread: many small operations, where threads contend for the interpreter (docs/development.md)
        parallel_steps(run, range(0, nwin, per), engine.device, threads=1)
        out.extend(mine)
    return out


def _store(g, fwd: torch.Tensor, rev: torch.Tensor, values: np.ndarray, rc_won: np.ndarray) -> None:
    """Strands [G, n] and [Grc, n] of group g -> its columns of values and rc_won [n, M]."""
    won = torch.zeros_like(fwd, dtype=torch.bool)
    if rev.numel():
        won[g.rc_local] = rev > fwd[g.rc_local]
        fwd[g.rc_local] = torch.maximum(fwd[g.rc_local], rev)
    cols = g.bank_index.cpu().numpy()
    values.T[cols] = fwd.cpu().numpy()
    rc_won.T[cols] = won.cpu().numpy()


def _over_window(scores: torch.Tensor, n: int, average: bool, length: int) -> torch.Tensor:
    """Each genomic window's value from its n scoring windows [C, span + n - 1] -> [C, span]:
    the max, or with `average` the sum / length (a sequence with one window is not divided)."""
    if n == 1 or scores.shape[0] == 0:
        return scores[:, :scores.shape[1] - n + 1]
    out = scores.new_empty(scores.shape[0], scores.shape[1] - n + 1)
    if average:
        sliding_sum(scores, n, out)
        return out.div_(length)
    sliding_max(scores, n, out)
    return out
