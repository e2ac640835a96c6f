"""Benchmark `dbtools mutmap`'s maps against scoring every mutant through the engine of `dbtools score`.

The baseline is what a user would do instead: write all 3L single-base mutants and score them
with `dbtools score`, whose engine (`BankEngine` through `score_codes`) runs here in the same
process; startup (loading the bank, building engine and mapper) is left out of both sides.

Workloads: 100 ENCODE ChIP-seq peaks of 101 bp and 10 windows of 1 kb of chr20 around CTCF
peaks, with 16 published models (a fixed random sample) and with all 927. Each workload's maps
are timed on all its sequences (with 927 models on --fast-927 of them), the baseline on a sample
of its mutants (every mutant of the first --brute-101 peaks; --brute-1k positions of the first 1-kb
window), both as a rate in mutants x models per second, so the ratio does not depend on the
sample; the speed-up is that ratio. Fast and baseline runs alternate and each side keeps its best
repeat (the machine is shared). The largest difference between the two on the sampled mutants is
printed too.

    python benchmarks/mutmap.py                       # 16 and 927 models
    python benchmarks/mutmap.py --models 16 --repeats 3
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

from dbtools.bank.store import default_bank_path, load_bank  # noqa: E402
from dbtools.engine.bank_engine import BankEngine  # noqa: E402
from dbtools.io.encode import encode  # noqa: E402
from dbtools.io.genome import Genome  # noqa: E402
from dbtools.mutmap.mapper import MutationMapper  # noqa: E402
from dbtools.parallel import cpu_count  # noqa: E402
from dbtools.score import ScoreOptions, score_codes  # noqa: E402

DATA = ROOT.parent / "shared" / "data"


def peaks_101(n: int) -> list[str]:
    path = sorted((DATA / "encode").glob("*_AC.seq.gz"))[0]
    with gzip.open(path, "rt") as fh:
        next(fh)
        return [next(fh).split("\t")[2] for _ in range(n)]


def regions_1000(n: int) -> list[str]:
    lines = (DATA / "peaks" / "Gm12878.CTCF.top500.w200.bed").read_text().splitlines()
    out = []
    with Genome(DATA / "genome" / "20.fa.gz") as g:
        for line in [ln for ln in lines if ln.startswith("chr20\t")][:n]:
            mid = (int(line.split("\t")[1]) + int(line.split("\t")[2])) // 2
            out.append(g.fetch("20", mid - 500, mid + 500))
    return out


def mutants_at(codes: np.ndarray, positions) -> tuple[list[np.ndarray], list[tuple[int, int]]]:
    """The substituted sequences at `positions` and their (position, base)."""
    out, where = [], []
    for i in positions:
        for b in range(4):
            if b != codes[i]:
                v = codes.copy()
                v[i] = b
                out.append(v)
                where.append((i, b))
    return out, where


def workload(name: str, seqs: list[str], engine: BankEngine, mapper: MutationMapper, options: ScoreOptions,
             fast_n: int, brute: list[tuple[int, list[int]]], repeats: int, threads: int) -> None:
    """Time the maps of seqs[:fast_n] and the baseline on the mutants `brute` lists (sequence, positions)."""
    M = len(mapper)
    codes = [encode(s) for s in seqs]
    fast_codes = codes[:fast_n]
    n_fast = sum(3 * c.size for c in fast_codes)
    todo = [(k, *mutants_at(codes[k], pos)) for k, pos in brute]
    n_brute = sum(len(v) for _, v, _ in todo)
    fast_best = brute_best = float("inf")
    worst = 0.0
    for _ in range(repeats):
        t = time.perf_counter()
        maps = mapper.scores_many(fast_codes, options, threads)
        fast_best = min(fast_best, time.perf_counter() - t)
        t = time.perf_counter()
        got = [score_codes(engine, v, options) for _, v, _ in todo]
        brute_best = min(brute_best, time.perf_counter() - t)
        for (k, _, where), scores in zip(todo, got):
            mut = maps[k][1] if k < fast_n else mapper.scores(codes[k], options, threads)[1]
            want = np.stack([mut[i, b] for i, b in where])
            worst = max(worst, float(np.abs(want - scores).max()))
    fast_rate, brute_rate = n_fast * M / fast_best, n_brute * M / brute_best
    print(f"\n[{name}: {len(seqs)} x {len(seqs[0])} bp, {M} models]")
    print(f"  maps        {fast_rate:14,.0f} mutants x models/s  ({fast_n} sequences, {n_fast:,} mutants: "
          f"{fast_best:.2f} s)")
    print(f"  baseline    {brute_rate:14,.0f} mutants x models/s  ({n_brute:,} mutants: {brute_best:.2f} s; "
          f"all {3 * sum(c.size for c in codes):,} would take {3 * sum(c.size for c in codes) * M / brute_rate:,.1f} s)")
    print(f"  speed-up {fast_rate / brute_rate:.1f}x; max |maps - baseline| = {worst:.2e}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--models", type=int, nargs="+", default=[16, 927], help="model counts (927: the whole bank)")
    ap.add_argument("--window-size", type=int, default=None)
    ap.add_argument("--average", action="store_true")
    ap.add_argument("--threads", type=int, default=None, help="default: the CPUs this process may use")
    ap.add_argument("--repeats", type=int, default=2)
    ap.add_argument("--fast-927", type=int, nargs=2, default=[20, 2], metavar=("N101", "N1K"),
                    help="sequences mapped with 927 models (of 100 and of 10)")
    ap.add_argument("--brute-101", type=int, nargs=2, default=[10, 1], metavar=("M16", "M927"),
                    help="101-bp peaks whose every mutant the baseline scores, with 16 and with 927 models")
    ap.add_argument("--brute-1k", type=int, nargs=2, default=[60, 10], metavar=("M16", "M927"),
                    help="positions of the first 1-kb window whose mutants the baseline scores")
    args = ap.parse_args()
    options = ScoreOptions(window_size=args.window_size, average=args.average)
    threads = cpu_count(args.threads)
    torch.set_num_threads(threads)
    bank = load_bank(default_bank_path())
    peaks, windows = peaks_101(100), regions_1000(10)
    print(f"torch {torch.__version__}, {threads} threads; options {options}")
    for count in args.models:
        idx = sorted(np.random.default_rng(0).choice(len(bank), count, replace=False).tolist())
        sub = bank.subset(idx) if count < len(bank) else bank
        engine, mapper = BankEngine(sub, "cpu"), MutationMapper(sub, "cpu")
        archs = sorted({m.info.arch.describe() for m in sub.models})
        print(f"\n{len(sub)} models ({len(archs)} architectures; {len(mapper.kernel_groups)} in the substitution "
              f"kernel, {len(mapper.stacks)} torch stacks)")
        all_sequences = count < len(bank)  # the whole bank maps a subset of the sequences
        rng = np.random.default_rng(1)
        n101 = 100 if all_sequences else args.fast_927[0]
        n1k = 10 if all_sequences else args.fast_927[1]
        b101 = args.brute_101[0 if all_sequences else 1]
        b1k = args.brute_1k[0 if all_sequences else 1]
        workload("101 bp", peaks, engine, mapper, options, n101, [(k, range(101)) for k in range(b101)],
                 args.repeats if all_sequences else 1, threads)
        workload("1 kb", windows, engine, mapper, options, n1k,
                 [(0, sorted(rng.choice(1000, b1k, replace=False).tolist()))], args.repeats if all_sequences else 1, threads)
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"\npeak memory {peak:,.0f} MB")


if __name__ == "__main__":
    main()
