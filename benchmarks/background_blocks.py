"""What a background window costs, drawn in blocks or alone: the same models score windows inside
blocks of contiguous chr20 (every window at step 1, `score_blocks`, the sliding-window engine)
and independent windows (`BankEngine.score`), both exactly `dbtools score`'s values.

    python benchmarks/background_blocks.py                 # 62 models (every 15th), 1e5 and 2e4 windows
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
import torch

from dbtools.bank.store import default_bank_path, load_bank
from dbtools.engine.bank_engine import BankEngine
from dbtools.engine.options import ScoreOptions
from dbtools.io.genome import Genome
from dbtools.significance.compute import score_blocks
from dbtools.significance.sampling import draw_windows, sampling_intervals

GENOME = Path(__file__).resolve().parents[1].parent / "shared/data/genome/20.fa.gz"
W = 101


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--every", type=int, default=15)
    ap.add_argument("--models", type=int, default=64)
    ap.add_argument("--block-windows", type=int, default=100_000)
    ap.add_argument("--windows", type=int, default=20_000)
    ap.add_argument("--repeat", type=int, default=3)
    a = ap.parse_args()
    bank = load_bank(default_bank_path())
    engine = BankEngine(bank.subset(list(range(0, len(bank), a.every))[:a.models]))
    with Genome(str(GENOME)) as g:
        iv = sampling_intervals(g, None)
        blocks, _ = draw_windows(g, iv, W + 999, a.block_windows // 1000, 3)
        windows, _ = draw_windows(g, iv, W, a.windows, 3)
    tb, tw = [], []
    for _ in range(a.repeat):
        t = time.perf_counter()
        score_blocks(engine, blocks, W, ScoreOptions())
        tb.append(time.perf_counter() - t)
        t = time.perf_counter()
        for i in range(0, len(windows), 1024):
            engine.score(torch.from_numpy(windows[i:i + 1024]))
        tw.append(time.perf_counter() - t)
    b, w = np.median(tb), np.median(tw)
    print(f"{len(engine)} models, {torch.get_num_threads()} threads, median of {a.repeat}")
    print(f"blocks: {a.block_windows} windows in {b:.2f} s, {a.block_windows / b:,.0f} windows/s")
    print(f"independent: {a.windows} windows in {w:.2f} s, {a.windows / w:,.0f} windows/s")
    print(f"a block window costs {(a.windows / w) / (a.block_windows / b):.3f} of an "
          f"independent one")


if __name__ == "__main__":
    main()
