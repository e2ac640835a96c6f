"""How many background windows and which tail fraction: measured on held-out windows of the
first half of chr20 only (the second half is kept for benchmarks/background_calibration.py).

A background is drawn from 0-15.75 Mbp; validation windows are every window of W bp placed
every --step bp in 15.75-31.5 Mbp. For each tail fraction and number of windows the script
prints, per alpha, the median and the spread of observed/alpha over the models, and the share
of models whose ratio lies within [1/2, 2].

    python benchmarks/background_choice.py --models 32 --step 16
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
from dbtools.io.encode import encode
from dbtools.io.genome import Genome
from dbtools.significance.sampling import draw_windows, sampling_intervals
from dbtools.significance.tables import log10_pvalues, summarize

GENOME = Path(__file__).resolve().parents[1].parent / "shared/data/genome/20.fa.gz"
HALF = 31_500_000


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--genome", default=str(GENOME))
    ap.add_argument("--models", type=int, default=32, help="every k-th model so that this many are used")
    ap.add_argument("--windows", type=int, nargs="+", default=[50_000, 100_000, 200_000])
    ap.add_argument("--fractions", type=float, nargs="+", default=[0.01, 0.003, 0.001])
    ap.add_argument("--step", type=int, default=16)
    ap.add_argument("--seed", type=int, default=7)
    a = ap.parse_args()
    bank = load_bank(default_bank_path())
    pick = list(range(0, len(bank), max(1, len(bank) // a.models)))[:a.models]
    sub = bank.subset(pick)
    engine = BankEngine(sub)
    W = 101
    with Genome(a.genome) as g, tempfile.TemporaryDirectory() as tmp:
        bed = Path(tmp) / "first_quarter.bed"
        bed.write_text(f"20\t0\t{HALF // 2}\n")
        t0 = time.time()
        codes, _ = draw_windows(g, sampling_intervals(g, str(bed)), W, max(a.windows), a.seed)
        bg = torch.cat([engine.score(torch.from_numpy(codes[i:i + 1024])) for i in range(0, len(codes), 1024)])
        t1 = time.time()
        vals = []
        for lo in range(HALF // 2, HALF, 1_000_000):
            seq = g.fetch("20", lo, min(HALF, lo + 1_000_000) + W - 1)
            v, _ = window_values(engine, encode(seq), W, a.step, ScoreOptions())
            vals.append(v)
        held = torch.from_numpy(np.concatenate(vals))
        held = held[~torch.isnan(held).any(dim=1)]
        t2 = time.time()
    print(f"{len(sub)} models, background {len(codes)} windows ({t1 - t0:.0f} s), held-out {len(held)} windows "
          f"every {a.step} bp ({t2 - t1:.0f} s)", file=sys.stderr)
    alphas = [1e-2, 1e-3, 1e-4, 1e-5]
    print("windows\tfraction\talpha\tmedian_ratio\tq10\tq90\tshare_within_2x")
    for n in a.windows:
        for f in a.fractions:
            if f * n < 50:
                continue
            tables = summarize(bg[:n], f)
            logp = log10_pvalues(held, tables)
            for alpha in alphas:
                if alpha * len(held) < 10:
                    continue
                ratio = ((logp <= np.log10(alpha)).double().mean(dim=0) / alpha).numpy()
                within = np.mean((ratio >= 0.5) & (ratio <= 2))
                print(f"{n}\t{f}\t{alpha:g}\t{np.median(ratio):.3f}\t{np.quantile(ratio, 0.1):.3f}\t"
                      f"{np.quantile(ratio, 0.9):.3f}\t{within:.3f}")


if __name__ == "__main__":
    main()
