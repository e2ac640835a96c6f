"""Benchmark the batched trainer: examples x models per second for banks of M models.

For M = 1, 8, 32, 96 models (101-bp ENCODE sequences, each model its own seed), times
`--steps` SGD steps of the bank trained together and of the same models trained one at a
time (timed on up to 8 of them and scaled), and prints the fraction of the FLOP bound:
forward + weight-gradient convolution FLOPs (2 x positions x 2 strands x 16 detectors x
4m x 2 per example) over the rate of a large float32 matmul measured in the same run. The
trainer does far fewer operations than this dense count (3-mer table lookups instead of
multiply-adds; the weight gradient only at each detector's best window), so the fraction
can pass 100%: it compares with what a dense convolution could at best achieve.

    python benchmarks/train.py [--steps 40] [--device cpu|cuda]
"""

from __future__ import annotations

import argparse
import gzip
import resource
import sys
import time
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from dbtools.io.encode import encode  # noqa: E402
from dbtools.train.hyper import Hyper, Task  # noqa: E402
from dbtools.train.loop import train_group  # noqa: E402

ENCODE = ROOT.parent / "shared" / "data" / "encode"


def matmul_gflops(device: torch.device) -> float:
    a, b = torch.randn(4096, 4096, device=device), torch.randn(4096, 4096, device=device)
    a @ b
    best = float("inf")
    for _ in range(3):
        if device.type == "cuda":
            torch.cuda.synchronize()
        t = time.perf_counter()
        a @ b
        if device.type == "cuda":
            torch.cuda.synchronize()
        best = min(best, time.perf_counter() - t)
    return 2 * 4096**3 / best / 1e9


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--steps", type=int, default=40)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--sizes", default="1,8,32,96")
    ap.add_argument("--encode", type=Path, default=ENCODE, help="folder of the ENCODE *_AC.seq.gz files")
    args = ap.parse_args()
    device = torch.device(args.device)
    path = next(args.encode.glob("GABPA_*_AC.seq.gz"))
    with gzip.open(path, "rt") as fh:
        next(fh)
        seqs = [ln.split("\t")[2] for ln in fh][:1000]
    codes = [encode(s) for s in seqs]
    y = (np.arange(len(codes)) % 2).astype(np.float32)
    hyper = Hyper(detector_len=24, num_hidden=32)
    m, batch = hyper.detector_len, 64
    flops_per_example = 2 * (101 + m - 1) * 2 * 16 * 4 * m * 2
    gflops = matmul_gflops(device)
    print(f"torch {torch.__version__} on {device}; float32 matmul {gflops:.0f} GFLOP/s; "
          f"{args.steps} steps of batch {batch}, m={m}, 32 hidden units")

    def run(tasks):
        if device.type == "cuda":
            torch.cuda.synchronize()
        t = time.perf_counter()
        train_group(tasks, None, args.steps, args.steps, device, batch)
        if device.type == "cuda":
            torch.cuda.synchronize()
        return time.perf_counter() - t

    run([Task(codes, y, True, hyper, seed=0)])  # warm-up
    for M in (int(s) for s in args.sizes.split(",")):
        tasks = [Task(codes, y, True, hyper, seed=s) for s in range(M)]
        t_bank = run(tasks)
        k = min(M, 8)
        t_single = sum(run([t]) for t in tasks[:k]) * M / k
        examples = args.steps * batch * M
        frac = examples * flops_per_example / t_bank / (gflops * 1e9)
        print(f"M={M:3d}: bank {examples / t_bank:10,.0f} examples x models/s, one at a time "
              f"{examples / t_single:10,.0f}; speed-up {t_single / t_bank:5.1f}x; {100 * frac:5.1f}% of FLOP bound")
    print(f"peak memory {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:,.0f} MB")
    if device.type == "cuda":
        print(f"peak CUDA memory {torch.cuda.max_memory_allocated() / 2**20:,.0f} MiB")


if __name__ == "__main__":
    main()
