"""Is the fitted tail right far beyond the background's samples? One model, 10^8 windows.

Background and brute force both come from the same source, so that only the tail fit is on
trial: random sequence from a first-order Markov chain with chr20's dinucleotide frequencies.
The background is drawn as `dbtools background` draws it: --windows windows in blocks of
--block contiguous 101-bp windows (each block from its own chain, scored at step 1 with the
sliding-window engine; --block 1: independent windows), seed 1, summarised as `dbtools
background` does (empirical quantiles to the tail fraction, generalized Pareto beyond). The
brute force is every 101-bp window (step 1) of --brute bases drawn under seed 2, of which the
largest scores are kept. For p in 1e-4, 1e-5, 1e-6 the script prints the brute-force score at
that p (the (p x n)-th largest), the background's p-value of that score, and their ratio.
Overlapping windows are correlated, so the brute-force p-values are unbiased but noisier than
10^8 independent draws would be.

    python benchmarks/background_tail.py                          # D00328.018 (CTCF ChIP-seq)
    python benchmarks/background_tail.py --model D00210.001 --brute 20000000
    python benchmarks/background_tail.py --block 1 --windows 100000 --fractions 0.001
    python benchmarks/background_tail.py --block 1 --windows 100000 --fractions 0.001 --subwindow

--subwindow adds a candidate that fits the tail one level down. A window's score (default
scoring) is the best of its scoring windows of int(1.5 m) bp, so the scores of every scoring
window inside the background windows (about 100 - 1.5 m of them a window) give the far tail
many more exceedances. p(window >= s) = R * p(scoring window >= s) beyond the window table's
tail, with R (the number of scoring windows a window is worth, about the extremal index times
their count) measured where both are empirical: at the window table's tail threshold.
"""

from __future__ import annotations

import argparse
import math
import sys
import time
from pathlib import Path

import numpy as np
import torch

from dbtools.bank.store import default_bank_path, load_bank
from dbtools.engine.bank_engine import BankEngine
from dbtools.engine.options import ScoreOptions
from dbtools.engine.windows import window_values
from dbtools.io.encode import N, encode
from dbtools.io.genome import Genome
from dbtools.significance.compute import DEFAULT_BLOCK, DEFAULT_TAIL_FRACTION, DEFAULT_WINDOWS, score_blocks
from dbtools.significance.tables import BLOCK_CHECK_EXCEEDANCES, log10_pvalues, summarize, summarize_ranked

GENOME = Path(__file__).resolve().parents[1].parent / "shared/data/genome/20.fa.gz"
W = 101
CHAINS = 1000  # Markov chains drawn side by side


def transitions(genome: str) -> np.ndarray:
    """[4, 4] first-order transition probabilities of 5 Mbp of chr20 (N left out)."""
    with Genome(genome) as g:
        c = encode(g.fetch("20", 30_000_000, 35_000_000)).astype(np.int64)
    a, b = c[:-1], c[1:]
    ok = (a < N) & (b < N)
    counts = np.bincount(a[ok] * 4 + b[ok], minlength=16).reshape(4, 4).astype(np.float64)
    return counts / counts.sum(axis=1, keepdims=True)


def markov(trans: np.ndarray, length: int, rng: np.random.Generator) -> np.ndarray:
    """CHAINS chains of `length` bases each, [CHAINS, length] int8, started at their stationary mix."""
    cum = np.cumsum(trans, axis=1)
    out = np.empty((CHAINS, length), dtype=np.int8)
    state = rng.integers(0, 4, CHAINS)
    u = rng.random((length, CHAINS))
    for i in range(length):
        state = (u[i][:, None] > cum[state]).sum(axis=1).clip(0, 3)
        out[:, i] = state
    return out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", default="D00328.018", help="model IDs, comma-separated")
    ap.add_argument("--shape-bounds", default=">=0", help="tail shapes to compare, comma-separated: free (as "
                                                          "fitted), '>=0' (raised to 0: what dbtools uses)")
    ap.add_argument("--windows", type=int, default=DEFAULT_WINDOWS)
    ap.add_argument("--block", type=int, default=DEFAULT_BLOCK, help="windows per background block (1: independent)")
    ap.add_argument("--fractions", type=float, nargs="+", default=[DEFAULT_TAIL_FRACTION, 0.001])
    ap.add_argument("--quadratic", type=float, nargs="*", default=[], help="also the quadratic (Gaussian-like) "
                    "tail fitted from these upper-tail probabilities down, beyond each tail fraction")
    ap.add_argument("--brute", type=int, default=100_000_000, help="brute-force windows (bases)")
    ap.add_argument("--genome", default=str(GENOME))
    ap.add_argument("--subwindow", action="store_true", help="also the tail fitted to the scoring windows (--block 1)")
    a = ap.parse_args()
    bank = load_bank(default_bank_path())
    ids = a.model.split(",")
    engine = BankEngine(bank.subset([bank.ids.index(i) for i in ids]))
    bounds = {"free": None, ">=0": 0.0, ">=-0.1": -0.1}
    caps = a.shape_bounds.split(",")
    trans = transitions(a.genome)
    t0 = time.time()
    length = W + a.block - 1
    blocks = math.ceil(a.windows / a.block)
    bg = markov(trans, math.ceil(blocks / CHAINS) * length, np.random.default_rng(1)).reshape(-1, length)[:blocks]
    if a.block == 1:
        samples = torch.cat([engine.score(torch.from_numpy(bg[i:i + 4096])) for i in range(0, len(bg), 4096)])

        def tables_at(f, cap, quad=None):
            return summarize(samples, f, min_shape=cap, quadratic_from=quad)
    else:
        bg_top, n_bg, bulk, _ = score_blocks(engine, bg, W, ScoreOptions())

        def tables_at(f, cap, quad=None):
            return summarize_ranked(bg_top, n_bg, bulk, f, min_shape=cap, check_exceedances=BLOCK_CHECK_EXCEEDANCES,
                                    quadratic_from=quad)
    sub = subwindow_tables(bank, ids, bg, a.fractions) if a.subwindow and a.block == 1 else None
    t1 = time.time()
    rng = np.random.default_rng(2)
    keep = 20_000
    top = np.empty((0, len(ids)), dtype=np.float32)
    n = 0
    block = 10_000  # bases per chain and round; the chains are joined end to end (a join is a
    piece = 2_000_000  # fresh start, which the stationary start makes harmless) and scored in pieces
    while n < a.brute:
        seq = markov(trans, block, rng).reshape(-1)
        for p0 in range(0, len(seq) - W + 1, piece):
            v, _ = window_values(engine, seq[p0:p0 + piece + W - 1], W, 1, ScoreOptions())
            v = v[:min(len(v), a.brute - n)]
            top = np.concatenate([top, np.partition(v, len(v) - keep, axis=0)[-keep:] if len(v) > keep else v])
            top = np.partition(top, len(top) - keep, axis=0)[-keep:] if len(top) > keep else top
            n += len(v)
            if n >= a.brute:
                break
    t2 = time.time()
    top = -np.sort(-top, axis=0)
    print(f"# {a.model}: background {a.windows} windows in blocks of {a.block} ({t1 - t0:.0f} s), brute force {n} windows ({t2 - t1:.0f} s)",
          file=sys.stderr)
    print("model\tfraction\ttail\tp_brute\tscore\tp_fitted\tratio\tshape\tfloor\tfit_error")
    tails = [(cap, None) for cap in caps] + [(f"quadratic from {q:g}", q) for q in a.quadratic]
    for f in a.fractions:
        for cap, quad in tails:
            tables = tables_at(f, bounds.get(cap, 0.0), quad)
            for p in (1e-4, 1e-5, 1e-6):
                k = int(round(p * n))
                if k < 10 or k > len(top):
                    continue
                s = torch.from_numpy(top[k - 1][None].copy())
                fitted = 10 ** log10_pvalues(s, tables, min_shape=bounds.get(cap, 0.0))[0].double().numpy()
                emp = k / n
                for j, i in enumerate(ids):
                    print(f"{i}\t{f}\t{cap}\t{emp:.3g}\t{float(s[0, j]):.4f}\t{fitted[j]:.3g}\t{fitted[j] / emp:.3f}\t"
                          f"{tables.shape[j]:.3f}\t{tables.floor[j]:.3g}\t{tables.fit_error[j]:.3f}")
        if sub is not None:
            window_tables = tables_at(f, 0.0)
            for p in (1e-4, 1e-5, 1e-6):
                k = int(round(p * n))
                if k < 10 or k > len(top):
                    continue
                for j, i in enumerate(ids):
                    score = float(top[k - 1][j])
                    fitted = subwindow_pvalue(sub[f][j], window_tables, j, score)
                    print(f"{i}\t{f}\tscoring windows\t{k / n:.3g}\t{score:.4f}\t{fitted:.3g}\t{fitted / (k / n):.3f}\t"
                          f"{sub[f][j][1].shape[0]:.3f}\t{sub[f][j][0]:.1f}\t{sub[f][j][1].fit_error[0]:.3f}")


def subwindow_tables(bank, ids: list[str], bg: np.ndarray, fractions: list[float]) -> dict:
    """Per fraction and model: (R, tables of the scoring-window scores), R the scoring windows a
    window is worth at the window tail's threshold."""
    out: dict[float, list] = {f: [] for f in fractions}
    flat = np.ascontiguousarray(bg).reshape(-1)
    for i in ids:
        model = bank.subset([bank.ids.index(i)])
        engine = BankEngine(model)
        ws = int(1.5 * model.models[0].info.arch.detector_len)  # the scoring window
        x, _ = window_values(engine, flat, ws, 1, ScoreOptions())
        x = x[:, 0]
        start = np.arange(len(x))
        inside = (start % W) <= W - ws  # scoring windows wholly inside one background window
        x = torch.from_numpy(np.ascontiguousarray(x[inside], dtype=np.float32))[:, None]
        windows = torch.cat([engine.score(torch.from_numpy(bg[k:k + 4096])) for k in range(0, len(bg), 4096)])[:, 0]
        for f in fractions:
            u = torch.quantile(windows.double(), 1 - f).item()
            r = f / float((x[:, 0] >= u).double().mean())
            # the scoring windows' table: empirical down to R's level, at least 1000 exceedances fitted
            out[f].append((r, summarize(x, max(f / r, 1000 / len(x)), floor=1e-12, min_shape=0.0)))
    return out


def subwindow_pvalue(entry, window_tables, j: int, score: float) -> float:
    """The window p-value of `score`: the window table's above its tail threshold, else R times
    the scoring windows' p-value."""
    r, tables = entry
    s = torch.tensor([[score]], dtype=torch.float32)
    if score <= float(window_tables.threshold[j]):
        return float(10 ** log10_pvalues(s.expand(1, len(window_tables.threshold)), window_tables, min_shape=0.0)[0, j])
    return float(r * 10 ** log10_pvalues(s, tables, min_shape=0.0)[0, 0])


if __name__ == "__main__":
    main()
