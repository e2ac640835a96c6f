"""Biology check of the p-values: GM12878 CTCF peaks on chr20 against the same intervals 50 kb away.

Every 101-bp window inside each interval is scored with the CTCF ChIP-seq model (D00328.018)
and the interval's best window p-value is looked up in the model's background (the shipped
bank's, computed on chr20). Prints the AUC of -log10 of the best p-value (peaks against shifted
intervals), and the share of peaks and of shifted intervals with a window at p < 1e-4 (and
1e-3, 1e-5). Intervals shorter than 101 bp are widened around their centre.

    python benchmarks/background_ctcf.py
    python benchmarks/background_ctcf.py --bank my_with_backgrounds.bank --model D00328.003
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from scan_ctcf_auc import GENOME, PEAKS, SHIFT, chr20_peaks, overlaps  # noqa: E402
from dbtools.bank.store import default_bank_path, load_bank  # noqa: E402
from dbtools.engine.bank_engine import BankEngine  # noqa: E402
from dbtools.engine.options import ScoreOptions  # noqa: E402
from dbtools.engine.windows import window_values  # noqa: E402
from dbtools.io.encode import encode  # noqa: E402
from dbtools.io.genome import Genome  # noqa: E402
from dbtools.metrics import auc  # noqa: E402
from dbtools.significance.lookup import background_tables  # noqa: E402
from dbtools.significance.tables import log10_pvalues  # noqa: E402

W = 101


def best_log10p(genome: Genome, engine: BankEngine, tables, regions: list[tuple[int, int]]) -> np.ndarray:
    """log10 of the best window p-value of each region (NaN: no called window)."""
    out = np.full(len(regions), np.nan)
    for i, (s, e) in enumerate(regions):
        if e - s < W:
            s = (s + e) // 2 - W // 2
            e = s + W
        v, _ = window_values(engine, encode(genome.fetch("20", s, e)), W, 1, ScoreOptions())
        v = v[~np.isnan(v[:, 0])]
        if len(v):
            out[i] = float(log10_pvalues(torch.from_numpy(v.max(axis=0, keepdims=True)), tables)[0, 0])
    return out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--bank", default=None, help="bank with backgrounds (default: the shipped one)")
    ap.add_argument("--model", default="D00328.018")
    ap.add_argument("--peaks", default=str(PEAKS))
    a = ap.parse_args()
    bank = load_bank(a.bank or default_bank_path())
    model = bank.subset([bank.ids.index(a.model)])
    tables = background_tables(model, ScoreOptions())
    engine = BankEngine(model)
    peaks = chr20_peaks(Path(a.peaks))
    shifted = [(s + SHIFT, e + SHIFT) for s, e in peaks if not overlaps(s + SHIFT, e + SHIFT, peaks)]
    with Genome(str(GENOME)) as g:
        p = best_log10p(g, engine, tables, peaks)
        n = best_log10p(g, engine, tables, shifted)
    p, n = p[~np.isnan(p)], n[~np.isnan(n)]
    labels = np.concatenate([np.ones(len(p)), np.zeros(len(n))])
    info = model.models[0].info
    print(f"{a.model} ({info.protein}, {info.experiment}): {len(p)} peaks, {len(n)} intervals 50 kb away")
    print(f"AUC of -log10 best p: {auc(labels, -np.concatenate([p, n])):.3f}")
    for alpha in (1e-3, 1e-4, 1e-5):
        print(f"share with a window at p < {alpha:g}: peaks {np.mean(p < np.log10(alpha)):.3f}, "
              f"shifted {np.mean(n < np.log10(alpha)):.3f}")


if __name__ == "__main__":
    main()
