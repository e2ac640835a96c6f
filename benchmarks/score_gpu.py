"""On a CUDA machine: the reference check and the score benchmark, CPU vs CUDA in one run.

    python benchmarks/score_gpu.py --reference DIR --encode DIR

DIR(s) are copies of ../shared/data/deepbind_reference and ../shared/data/encode (the shared
folder does not travel to a lent GPU machine). Prints the max |diff| of CUDA scores against
the original scorer for all 927 models in the three modes, and sequences x models per second
on CUDA for 10,000 101-bp sequences (default mode and whole sequence).
"""

from __future__ import annotations

import argparse
import csv
import gzip
import sys
import time
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from dbtools.bank.store import default_bank_path, load_bank  # noqa: E402
from dbtools.io.encode import encode  # noqa: E402
from dbtools.engine.bank_engine import BankEngine  # noqa: E402
from dbtools.score import ScoreOptions, score_codes  # noqa: E402

MODES = {"default": ScoreOptions(), "average": ScoreOptions(average=True), "window20": ScoreOptions(window_size=20)}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--reference", type=Path, required=True)
    ap.add_argument("--encode", type=Path, required=True)
    ap.add_argument("--n", type=int, default=10_000)
    args = ap.parse_args()
    bank = load_bank(default_bank_path())
    dev = torch.device("cuda")
    print(torch.__version__, torch.cuda.get_device_name(0))
    gpu = BankEngine(bank, dev)

    seqs = [ln.strip() for ln in open(args.reference / "test_sequences.seq")]
    codes = [encode(s) for s in seqs]
    for mode, opts in MODES.items():
        with open(args.reference / f"expected_{mode}_all927.tsv") as fh:
            rows = list(csv.reader(fh, delimiter="\t"))
        order = [bank.ids.index(i) for i in rows[0][1:]]
        expected = np.array([[float(v) for v in r[1:]] for r in rows[1:]])
        got = score_codes(gpu, codes, opts)[:, order]
        print(f"reference {mode}: max |CUDA - original| = {np.abs(got - expected).max():.2e}")

    bench: list[str] = []
    for path in sorted(args.encode.glob("*_AC.seq.gz")):
        with gzip.open(path, "rt") as fh:
            next(fh)
            bench.extend(ln.split("\t")[2] for ln in fh)
    bench_codes = [encode(s) for s in bench if len(s) == 101][: args.n]
    for label, opts, bs in (("whole (--window-size 101)", ScoreOptions(window_size=101), 4096),
                            ("default", ScoreOptions(), 512)):
        score_codes(gpu, bench_codes[:bs], opts, batch_size=bs)
        torch.cuda.synchronize()
        t = time.perf_counter()
        out = score_codes(gpu, bench_codes, opts, batch_size=bs)
        torch.cuda.synchronize()
        dt = time.perf_counter() - t
        print(f"CUDA {label}: {len(bench_codes)} x {len(bank)} in {dt:.2f} s = "
              f"{len(bench_codes) * len(bank) / dt:,.0f} seq x models/s (checksum {out.sum():.3f})")
        if label == "default":
            cpu = BankEngine(bank, "cpu")
            sub = bench_codes[:50]
            diff = np.abs(score_codes(cpu, sub, opts) - score_codes(gpu, sub, opts)).max()
            print(f"CUDA vs CPU on 50 sequences, default mode: max |diff| = {diff:.2e}")
    print(f"peak CUDA memory {torch.cuda.max_memory_allocated() / 2**20:,.0f} MiB")


if __name__ == "__main__":
    main()
