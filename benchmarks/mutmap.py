"""Benchmark `dbtools mutmap`: exact mutation maps against brute force (`score_codes` on every mutant).

For real sequences of 101 bp (ENCODE ChIP-seq peaks) and 1,000 bp (chr20 around CTCF peaks) and
16 published models (a fixed random sample of the bank, several architectures), prints the rate
in mutants x models per second of the fast maps (all 3L substitutions) and of brute force in the
same run, their ratio, and the largest difference between the two on the mutants brute force
scored. The machine is shared and its speed drifts, so fast and brute-force runs alternate and
each side's best repeat is kept; brute force at 1,000 bp scores a sample of positions (its rate
does not depend on how many).

    python benchmarks/mutmap.py                 # default scoring
    python benchmarks/mutmap.py --average       # or --window-size N
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
from dbtools.io.encode import encode  # noqa: E402
from dbtools.engine.bank_engine import BankEngine  # noqa: E402
from dbtools.io.genome import Genome  # noqa: E402
from dbtools.mutmap.mapper import MutationMapper  # noqa: E402
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


def mutants_at(codes: np.ndarray, positions) -> list[np.ndarray]:
    out = []
    for i in positions:
        for b in range(4):
            if b != codes[i]:
                v = codes.copy()
                v[i] = b
                out.append(v)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--models", type=int, default=16)
    ap.add_argument("--window-size", type=int, default=None)
    ap.add_argument("--average", action="store_true")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--brute-positions", type=int, default=25, help="positions brute force scores at 1,000 bp")
    args = ap.parse_args()
    options = ScoreOptions(window_size=args.window_size, average=args.average)

    bank = load_bank(default_bank_path())
    idx = sorted(np.random.default_rng(0).choice(len(bank), args.models, replace=False).tolist())
    sub = bank.subset(idx)
    engine, mapper = BankEngine(sub, "cpu"), MutationMapper(sub, "cpu")
    M = len(sub)
    archs = sorted({m.info.arch.describe() for m in sub.models})
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads; {M} models ({len(archs)} architectures); "
          f"options {options}")
    for length, seqs in ((101, peaks_101(3)), (1000, regions_1000(1))):
        fast_best = brute_best = float("inf")
        worst = 0.0
        n_fast = n_brute = 0
        rng = np.random.default_rng(1)
        for _ in range(args.repeats):
            t = time.perf_counter()
            maps = [mapper.scores(encode(s), options)[1] for s in seqs]
            fast_best = min(fast_best, (time.perf_counter() - t) / sum(3 * len(s) for s in seqs))
            n_fast = sum(3 * len(s) for s in seqs)
            t = time.perf_counter()
            todo = []
            for s, mut in zip(seqs, maps):
                codes = encode(s)
                pos = range(len(s)) if length <= 101 else sorted(rng.choice(len(s), args.brute_positions, replace=False))
                variants = mutants_at(codes, pos)
                todo.append((codes, pos, variants, mut))
            t = time.perf_counter()
            brute = [score_codes(engine, v, options) for _, _, v, _ in todo]
            n_brute = sum(len(v) for _, _, v, _ in todo)
            brute_best = min(brute_best, (time.perf_counter() - t) / n_brute)
            for (codes, pos, _, mut), got in zip(todo, brute):
                want = np.stack([mut[i, b] for i in pos for b in range(4) if b != codes[i]])
                worst = max(worst, float(np.abs(want - got).max()))
        fast_rate, brute_rate = M / fast_best, M / brute_best
        print(f"\n[{length} bp, {len(seqs)} sequence(s)]")
        print(f"  fast maps    {fast_rate:12,.0f} mutants x models/s  ({n_fast:,} mutants per repeat)")
        print(f"  brute force  {brute_rate:12,.0f} mutants x models/s  ({n_brute:,} mutants per repeat)")
        print(f"  speed-up {fast_rate / brute_rate:.1f}x; max |fast - brute| = {worst:.2e}")
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"\npeak memory {peak:,.0f} MB")


if __name__ == "__main__":
    main()
