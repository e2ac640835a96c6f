"""Benchmark `dbtools score`: 10,000 real 101-bp ENCODE sequences x all 927 published models.

Prints, from one run: sequences x models per second for the batched bank and for the same
work done one model at a time, the fraction of the FLOP bound, and the peak memory of the
`dbtools score` command on the same input. The bound is one convolution pass over each
padded sequence and strand (positions x detectors x m x 4 x 2 FLOPs) at the rate of a large
float32 matmul measured in this run. The machine is shared and its speed drifts, so the work is
timed in chunks of 1,000 sequences with the matmul rate measured right beside each chunk; the
fraction of the bound is (sum of the chunks' bound times) / (sum of their times).

    python benchmarks/score.py              # full run (a few minutes on 2 cores)
    python benchmarks/score.py --n 1000     # quicker
"""

from __future__ import annotations

import argparse
import gzip
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from matmul_rate import matmul_gflops  # noqa: E402
from dbtools.bank.store import default_bank_path, load_bank  # noqa: E402
from dbtools.io.encode import encode  # noqa: E402
from dbtools.engine.bank_engine import BankEngine  # noqa: E402
from dbtools.score import ScoreOptions, score_codes  # noqa: E402

ENCODE = ROOT.parent / "shared" / "data" / "encode"


def load_sequences(n: int) -> list[str]:
    seqs: list[str] = []
    for path in sorted(ENCODE.glob("*_AC.seq.gz")):
        with gzip.open(path, "rt") as fh:
            next(fh)
            seqs.extend(line.split("\t")[2] for line in fh)
    seqs = [s for s in seqs if len(s) == 101]
    if len(seqs) < n:
        sys.exit(f"only {len(seqs)} 101-bp sequences in {ENCODE}")
    return seqs[:n]


def bound_flops(bank, n: int, length: int) -> float:
    total = 0
    for m in bank.models:
        a = m.info.arch
        strands = 2 if a.reverse_complement else 1
        total += (length + a.detector_len - 1) * a.num_detectors * a.detector_len * 4 * 2 * strands
    return float(total) * n


def timed(fn) -> float:
    t = time.perf_counter()
    fn()
    return time.perf_counter() - t


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=10_000, help="sequences (default 10,000)")
    ap.add_argument("--single-models", type=int, default=24,
                    help="models timed one at a time; their rate is scaled to the whole bank")
    ap.add_argument("--skip-cli", action="store_true", help="skip the end-to-end CLI memory run")
    args = ap.parse_args()

    bank = load_bank(default_bank_path())
    seqs = load_sequences(args.n)
    codes = [encode(s) for s in seqs]
    engine = BankEngine(bank, "cpu")
    gflops = matmul_gflops()
    bound_s = bound_flops(bank, len(seqs), 101) / (gflops * 1e9)
    M = len(bank)
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads; float32 matmul {gflops:.0f} GFLOP/s")
    print(f"{len(seqs)} sequences x {M} models; FLOP bound {bound_s:.2f} s")

    rng = np.random.default_rng(0)
    sample = sorted(rng.choice(M, size=min(args.single_models, M), replace=False).tolist())
    sample_bank = bank.subset(sample)
    sample_bound = bound_flops(sample_bank, len(seqs), 101) / (gflops * 1e9)
    singles = [BankEngine(bank.subset([i]), "cpu") for i in sample]

    chunk = 1000
    for label, opts in (("whole sequence (--window-size 101)", ScoreOptions(window_size=101)),
                        ("default (window int(1.5 m))", ScoreOptions())):
        t_bank = bound_local = 0.0
        fractions = []
        for c in range(0, len(codes), chunk):
            part = codes[c:c + chunk]
            rate_here = (matmul_gflops() + 0.0) * 1e9
            dt = timed(lambda: score_codes(engine, part, opts))
            rate_here = max(rate_here, matmul_gflops() * 1e9)
            b = bound_flops(bank, len(part), 101) / rate_here
            t_bank += dt
            bound_local += b
            fractions.append(b / dt)
        t_single = timed(lambda: [score_codes(e, codes, opts) for e in singles])
        # scale the sampled models' time by their share of the bound's work
        t_single_all = t_single * bound_s / sample_bound
        rate = len(seqs) * M / t_bank
        print(f"\n[{label}]")
        print(f"  batched bank        {t_bank:8.2f} s  {rate:12,.0f} seq x models/s  "
              f"{100 * bound_local / t_bank:5.1f}% of FLOP bound (chunks: min {100 * min(fractions):.1f}%, "
              f"median {100 * float(np.median(fractions)):.1f}%, max {100 * max(fractions):.1f}%)")
        print(f"  one model at a time {t_single_all:8.2f} s  {len(seqs) * M / t_single_all:12,.0f} seq x models/s  "
              f"(timed on {len(sample)} models, scaled by FLOPs)")
        print(f"  speed-up of the bank over one at a time: {t_single_all / t_bank:.1f}x")

    if not args.skip_cli:
        with tempfile.NamedTemporaryFile("w", suffix=".seq") as fh:
            fh.write("\n".join(seqs) + "\n")
            fh.flush()
            t = time.perf_counter()
            subprocess.run([sys.executable, "-m", "dbtools_cli.main", "score", fh.name, "--device", "cpu"],
                           check=True, stdout=subprocess.DEVNULL)
            wall = time.perf_counter() - t
        peak = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
        print(f"\n`dbtools score` CLI, default mode, all models: {wall:.1f} s wall, peak memory {peak:,.0f} MB"
              f" (target < 2,048 MB)")


if __name__ == "__main__":
    main()
