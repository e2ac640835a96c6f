"""Are the p-values calibrated on windows the background never saw?

`dbtools background` runs on the first half of chr20 (0-31.5 Mbp); then every W-bp window of
the second half placed every --step bp is scored and looked up, and for each alpha the script
prints the distribution over models of (share of windows with p <= alpha) / alpha, the share of
models within [1/2, 2], and the models that miss with their protein, type and the GC content
of their hits. With --shuffle the background is dinucleotide-shuffled first-half windows and
the test windows are fresh shuffles of second-half windows under another seed.

    python benchmarks/background_calibration.py --every 8            # every 8th model
    python benchmarks/background_calibration.py --every 8 --shuffle --test-windows 100000
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from dbtools.bank.store import default_bank_path, load_bank
from dbtools.engine.bank_engine import BankEngine
from dbtools.engine.options import ScoreOptions
from dbtools.engine.windows import window_values
from dbtools.io.encode import G, C, N, encode
from dbtools.io.genome import Genome
from dbtools.significance.compute import BackgroundOptions, background
from dbtools.significance.lookup import background_tables
from dbtools.significance.sampling import draw_windows, sampling_intervals
from dbtools.significance.tables import MIN_TAIL_SHAPE, log10_pvalues

GENOME = Path(__file__).resolve().parents[1].parent / "shared/data/genome/20.fa.gz"
HALF = 31_500_000
ALPHAS = (1e-2, 1e-3, 1e-4)
W = 101


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--genome", default=str(GENOME))
    ap.add_argument("--every", type=int, default=1, help="use every k-th model of the shipped bank")
    ap.add_argument("--windows", type=int, default=BackgroundOptions().windows)
    ap.add_argument("--step", type=int, default=25, help="test windows every S bp of the second half")
    ap.add_argument("--shuffle", action="store_true")
    ap.add_argument("--test-windows", type=int, default=100_000, help="--shuffle: fresh shuffled test windows")
    ap.add_argument("--half-bank", help="reuse this first-half background bank (made by an earlier run: "
                                        "it must hold the selected models) instead of computing it")
    ap.add_argument("--free-shape", action="store_true", help="also report the tail shape as fitted, "
                                                              "not raised to 0")
    a = ap.parse_args()
    full = load_bank(default_bank_path())
    ids = full.ids[::a.every]
    with tempfile.TemporaryDirectory() as tmp, Genome(a.genome) as g:
        first, second = Path(tmp) / "first.bed", Path(tmp) / "second.bed"
        first.write_text(f"20\t0\t{HALF}\n")
        second.write_text(f"20\t{HALF}\t{g.sizes['20']}\n")
        out = Path(a.half_bank) if a.half_bank else Path(tmp) / "half.bank"
        t0 = time.time()
        if not a.half_bank:
            background(a.genome, bank=None, models=ids, bank_out=str(out), regions=str(first),
                       options=BackgroundOptions(windows=a.windows, shuffle=a.shuffle))
        t1 = time.time()
        bank = load_bank(out).subset([full.ids.index(i) for i in ids])
        engine = BankEngine(bank)
        tables = background_tables(bank, ScoreOptions())
        shapes = {"tail shape raised to 0": MIN_TAIL_SHAPE, **({"tail shape as fitted": None} if a.free_shape else {})}

        def lookup(x: np.ndarray) -> dict[str, np.ndarray]:
            return {k: log10_pvalues(torch.from_numpy(x), tables, min_shape=v).numpy() for k, v in shapes.items()}
        if a.shuffle:
            codes, _ = draw_windows(g, sampling_intervals(g, str(second)), W, a.test_windows, seed=2, shuffle=True)
            scores = torch.cat([engine.score(torch.from_numpy(codes[i:i + 1024])) for i in range(0, len(codes), 1024)])
            gc = np.isin(codes, (G, C)).mean(axis=1)
            logps = lookup(scores.numpy())
        else:
            parts, gcs = [], []
            for lo in range(HALF, g.sizes["20"], 2_000_000):
                hi = min(g.sizes["20"], lo + 2_000_000)
                codes = encode(g.fetch("20", lo, hi + W - 1))
                v, _ = window_values(engine, codes, W, a.step, ScoreOptions())
                keep = ~np.isnan(v).any(axis=1)
                starts = np.arange(len(v))[keep] * a.step
                called = np.isin(codes, (G, C)).astype(np.int64)
                csum = np.concatenate([[0], np.cumsum(called)])
                gcs.append((csum[starts + W] - csum[starts]) / W)
                parts.append(lookup(v[keep]))
            logps = {k: np.concatenate([p[k] for p in parts]) for k in shapes}
            gc = np.concatenate(gcs)
        t2 = time.time()
    kind = "shuffled" if a.shuffle else "genome"
    print(f"# {len(ids)} models (every {a.every}th), {kind} background of {a.windows} windows on 0-{HALF} "
          f"({t1 - t0:.0f} s); {len(gc)} test windows ({t2 - t1:.0f} s); "
          f"GC of test windows {gc.mean():.3f}", file=sys.stderr)
    for name, logp in logps.items():
        print(f"# {name}")
        report(logp, gc, bank)


def report(logp: np.ndarray, gc: np.ndarray, bank) -> None:
    """The ratio distribution per alpha, and the models outside [1/2, 2]."""
    print("alpha\tmodels\twithin_2x\tq05\tq25\tmedian\tq75\tq95")
    misses = {}
    for alpha in ALPHAS:
        if alpha * len(logp) < 10:
            continue
        hit = logp <= np.log10(alpha)
        ratio = hit.mean(axis=0) / alpha
        ok = (ratio >= 0.5) & (ratio <= 2)
        q = np.quantile(ratio, [0.05, 0.25, 0.5, 0.75, 0.95])
        print(f"{alpha:g}\t{len(ratio)}\t{ok.mean():.3f}\t" + "\t".join(f"{v:.3f}" for v in q))
        for j in np.flatnonzero(~ok):
            hit_gc = gc[hit[:, j]].mean() if hit[:, j].any() else float("nan")
            misses.setdefault(j, []).append(f"{alpha:g}:{ratio[j]:.2f}(hit GC {hit_gc:.2f})")
    print("\n# models outside [1/2, 2] (alpha:ratio, mean GC of the windows at p <= alpha)")
    for j, what in misses.items():
        info = bank.models[j].info
        print(f"{info.id}\t{info.protein}\t{info.protein_type}/{info.experiment}\t" + " ".join(what))


if __name__ == "__main__":
    main()
