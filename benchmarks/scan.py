"""Benchmark `dbtools scan`: a slice of chr20 x 16 published models of different shapes.

Prints, from one run, Mbp x models per second of the scan (every window's value from shared
convolutions, `dbtools.engine.windows.window_values`) against

  (a) batched window-by-window prediction in the same run: each W-bp window extracted,
      one-hot encoded and scored by the batched bank (`score_codes`), timed on a sample of
      windows spread over the slice and scaled to the slice's window count, and
  (b) the FLOP bound: one convolution pass per base, strand and detector
      (m x 4 x 2 FLOPs each) at the rate of a large float32 matmul measured in this run,

at --step 1 and --step 20, for whole-window scoring (--window-size 101 = W) and the default
scoring (window int(1.5 m) per model, max over windows). The machine is shared and its speed
drifts, so the slice is timed in pieces with the baseline sample and the matmul rate measured
right beside each piece, all in CPU seconds of this process (on a shared machine wall-clock
time measures the other users' load too). Finally the peak memory (max RSS) of the
`dbtools scan` command with the 16 models, writing BigWigs, on --memory-mbp of chr20
(0 = skip; --memory-mbp 63 = all of it).

    python benchmarks/scan.py                       # 2-Mbp slice (long on 2 shared cores)
    python benchmarks/scan.py --mbp 0.2 --memory-mbp 2
    python benchmarks/scan.py --mbp 0.1 --threads 1      # on a machine other jobs share
"""

from __future__ import annotations

import argparse
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
from dbtools.io.genome import Genome  # noqa: E402
from dbtools.engine.windows import window_values  # noqa: E402
from dbtools.score import ScoreOptions, score_codes  # noqa: E402

# CPU seconds of this process (all its threads): the machine is shared, and wall-clock time
# measures the other users' load as much as this work; every figure here uses the same clock
clock = time.process_time
GENOME = ROOT.parent / "shared" / "data" / "genome" / "20.fa.gz"
W = 101


def sixteen_models(bank) -> list[int]:
    """One model of each of the 15 published architectures, plus the first CTCF model."""
    chosen: dict[tuple, int] = {}
    for i, m in enumerate(bank.models):
        a = m.info.arch
        chosen.setdefault((a.detector_len, a.avg_pooling, a.num_hidden, a.reverse_complement), i)
    idx = set(chosen.values())
    idx.add(bank.ids.index("D00328.003"))
    for i in range(len(bank)):  # fill up to 16 if the shipped bank differs
        if len(idx) >= 16:
            break
        idx.add(i)
    return sorted(idx)[:16]


def conv_flops_per_base(bank) -> float:
    total = 0
    for m in bank.models:
        a = m.info.arch
        total += a.num_detectors * a.detector_len * 4 * 2 * (2 if a.reverse_complement else 1)
    return float(total)


def run_config(engine, bank, codes: np.ndarray, step: int, opts: ScoreOptions, piece: int, sample: int,
               rng: np.random.Generator) -> dict:
    """Time the scan of `codes` piece by piece; beside each piece a share of the baseline sample."""
    L = len(codes)
    pieces = list(range(0, L - W + 1, piece))
    per_piece = max(1, sample // len(pieces))
    t_scan = t_base = bound = 0.0
    n_base = n_windows = 0
    for p in pieces:
        sub = codes[p:min(L, p + piece + W - 1)]
        rate = matmul_gflops(clock) * 1e9
        t = clock()
        values, _ = window_values(engine, sub, W, step, opts)
        t_scan += clock() - t
        n_windows += len(values)
        starts = p + step * rng.integers(0, max(1, (len(sub) - W) // step + 1), size=per_piece)
        wins = [codes[s:s + W] for s in starts]
        t = clock()
        score_codes(engine, wins, opts)
        t_base += clock() - t
        n_base += len(wins)
        rate = max(rate, matmul_gflops(clock) * 1e9)
        bound += (len(sub) - W + 1) * conv_flops_per_base(bank) / rate
    t_base_all = t_base / n_base * n_windows
    bases = L - W + 1
    return {"scan_s": t_scan, "base_s": t_base_all, "bound_s": bound, "bases": bases, "windows": n_windows,
            "sampled": n_base}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--start", type=int, default=31_000_000, help="slice start on chr20 (default 31,000,000)")
    ap.add_argument("--mbp", type=float, default=2.0, help="slice length in Mbp (default 2)")
    ap.add_argument("--piece", type=int, default=100_000, help="bases timed at a time (default 100,000)")
    ap.add_argument("--sample", type=int, default=2000, help="baseline windows per configuration (default 2,000)")
    ap.add_argument("--memory-mbp", type=float, default=4.0,
                    help="Mbp of chr20 for the CLI peak-memory run (default 4; 0 skips; 63 = all of chr20)")
    ap.add_argument("--threads", type=int, default=0,
                    help="torch threads (default: torch's choice); 1 makes CPU time a fair clock on a busy machine")
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)

    bank = load_bank(default_bank_path())
    sub = bank.subset(sixteen_models(bank))
    engine = BankEngine(sub, "cpu")
    with Genome(GENOME) as genome:
        codes = encode(genome.fetch("20", args.start, args.start + int(args.mbp * 1e6)))
    M = len(sub)
    shapes = sorted({m.info.arch.describe() for m in sub.models})
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads; float32 matmul {matmul_gflops(clock):.0f} GFLOP/s")
    print(f"chr20:{args.start:,}-{args.start + len(codes):,} ({len(codes) / 1e6:.2f} Mbp, "
          f"{int((codes == 4).sum()):,} N) x {M} models in {len(engine.groups)} architectures; W = {W}")
    rng = np.random.default_rng(0)
    for label, opts in (("whole-window (--window-size 101)", ScoreOptions(window_size=W)),
                        ("default scoring (window int(1.5 m), max)", ScoreOptions())):
        for step in (1, 20):
            r = run_config(engine, sub, codes, step, opts, args.piece, args.sample, rng)
            mbp = r["bases"] / 1e6
            print(f"\n[{label}, --step {step}]  {r['windows']:,} windows")
            print(f"  scan                  {r['scan_s']:9.2f} s  {mbp * M / r['scan_s']:8.3f} Mbp x models/s  "
                  f"{100 * r['bound_s'] / r['scan_s']:5.1f}% of the FLOP bound ({r['bound_s']:.2f} s)")
            print(f"  window-by-window      {r['base_s']:9.2f} s  {mbp * M / r['base_s']:8.3f} Mbp x models/s  "
                  f"(timed on {r['sampled']:,} windows, scaled)")
            print(f"  speed-up over window-by-window: {r['base_s'] / r['scan_s']:.1f}x")

    if args.memory_mbp > 0:
        n = int(args.memory_mbp * 1e6)
        with tempfile.TemporaryDirectory() as tmp:
            bed = Path(tmp) / "slice.bed"
            bed.write_text(f"20\t{args.start if n < 60_000_000 else 0}\t{args.start + n if n < 60_000_000 else n}\n")
            cmd = [sys.executable, "-m", "dbtools_cli.main", "scan", str(GENOME), "-m", ",".join(sub.ids),
                   "--out-dir", str(Path(tmp) / "out"), "--device", "cpu"]
            if n < 60_000_000:
                cmd += ["--regions", str(bed)]
            t = time.perf_counter()
            subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL)
            wall = time.perf_counter() - t
        peak = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
        what = "all of chr20" if n >= 60_000_000 else f"{n / 1e6:.1f} Mbp of chr20 (chunks of 1 Mbp)"
        print(f"\n`dbtools scan` CLI, {M} models, --step 1, BigWig, {what}: {wall:.1f} s wall, "
              f"peak memory {peak:,.0f} MB (target <= 2,048 MB for all of chr20)")


if __name__ == "__main__":
    main()
