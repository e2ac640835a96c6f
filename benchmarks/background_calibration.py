"""Are the p-values calibrated on windows the background never saw?

`dbtools background` runs on the first half of chr20 (0-31.5 Mbp), with its defaults; then
--test-windows windows of the second half are scored and looked up, all-N windows left out:
independent 101-bp windows drawn uniformly (seed 2), or with --test-block B > 1, random blocks
of B contiguous windows, every window of a block (step 1), or with --test-step S every 101-bp
window of the second half placed every S bases. For each alpha the script prints the
distribution over models of (share of windows with p <= alpha) / alpha, the share of models
within [1/2, 2], and the models that miss with their protein, type, background floor and the GC
content of their hits. With --shuffle the background is dinucleotide-shuffled first-half
windows and the test windows are fresh shuffles of second-half windows under another seed.
Models go 64 at a time, so memory stays small for the whole bank.

Windows of one block share their best site, so their hits come in clusters of tens of windows:
at equal compute, independent windows count many more sites, and their rates vary less.

    python benchmarks/background_calibration.py                  # all 927 models
    python benchmarks/background_calibration.py --shuffle
    python benchmarks/background_calibration.py --every 8 --test-windows 1250000
    python benchmarks/background_calibration.py --test-step 25 --half-bank HALF.bank   # 1.25e6 windows
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
CHUNK = 64  # models scored together
PIECE = 4096  # windows of a piece of the second half (--test-step)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--genome", default=str(GENOME))
    ap.add_argument("--every", type=int, default=1, help="use every k-th model of the shipped bank")
    ap.add_argument("--windows", type=int, default=BackgroundOptions().windows, help="background windows")
    ap.add_argument("--block", type=int, default=BackgroundOptions().block, help="background windows per block")
    ap.add_argument("--tail-fraction", type=float, default=BackgroundOptions().tail_fraction)
    ap.add_argument("--shuffle", action="store_true")
    ap.add_argument("--test-windows", type=int, default=200_000, help="test windows (second half)")
    ap.add_argument("--test-block", type=int, default=1, help="test windows per block (1: independent windows)")
    ap.add_argument("--test-step", type=int, help="test every window of the second half placed every S bases "
                                                  "(instead of drawn windows; --test-windows is then ignored)")
    ap.add_argument("--half-bank", help="reuse this first-half background bank (made by an earlier run: "
                                        "it must hold the selected models) instead of computing it")
    ap.add_argument("--keep-half-bank", help="save the first-half background bank here")
    ap.add_argument("--free-shape", action="store_true", help="also report the tail shape as fitted, "
                                                              "not raised to 0")
    a = ap.parse_args()
    full = load_bank(default_bank_path())
    ids = full.ids[::a.every]
    shapes = {"tail shape raised to 0": MIN_TAIL_SHAPE, **({"tail shape as fitted": None} if a.free_shape else {})}
    with tempfile.TemporaryDirectory() as tmp, Genome(a.genome) as g:
        first, second = Path(tmp) / "first.bed", Path(tmp) / "second.bed"
        first.write_text(f"20\t0\t{HALF}\n")
        second.write_text(f"20\t{HALF}\t{g.sizes['20']}\n")
        out = Path(a.half_bank or a.keep_half_bank or Path(tmp) / "half.bank")
        t0 = time.time()
        if not a.half_bank:
            background(a.genome, bank=None, models=ids, bank_out=str(out), regions=str(first),
                       options=BackgroundOptions(windows=a.windows, block=a.block, tail_fraction=a.tail_fraction,
                                                 shuffle=a.shuffle))
        t1 = time.time()
        bank = load_bank(out).subset([full.ids.index(i) for i in ids])
        if a.test_step:
            if a.shuffle:
                sys.exit("--test-step: genome windows only, not with --shuffle")
            test_block = PIECE
            length = W + (test_block - 1) * a.test_step
            second_codes = encode(g.fetch("20", HALF, g.sizes["20"]))
            blocks = sliding_pieces(second_codes, a.test_step)
        else:
            test_block = a.test_block
            length = W + test_block - 1
            blocks, _ = draw_windows(g, sampling_intervals(g, str(second)), length,
                                     -(-a.test_windows // test_block), seed=2, shuffle=a.shuffle)
    step = a.test_step or 1
    # GC of every test window, and which are all N
    gc_base = np.isin(blocks, (G, C)).astype(np.int64)
    csum = np.concatenate([np.zeros((len(blocks), 1), dtype=np.int64), np.cumsum(gc_base, axis=1)], axis=1)
    gc = ((csum[:, W::step] - csum[:, :-W:step]) / W).reshape(-1)
    ncum = np.concatenate([np.zeros((len(blocks), 1), dtype=np.int64), np.cumsum(blocks != N, axis=1)], axis=1)
    called = ((ncum[:, W::step] - ncum[:, :-W:step]) > 0).reshape(-1)
    if a.test_step:  # the padding's windows are not test windows
        called[(len(second_codes) - W) // step + 1:] = False
    M = len(bank)
    hits = {k: np.zeros((len(ALPHAS), M)) for k in shapes}
    hit_gc = {k: np.zeros((len(ALPHAS), M)) for k in shapes}
    per_piece = max(1, 100_000 // length)  # blocks per engine call
    for c0 in range(0, M, CHUNK):
        chunk = list(range(c0, min(M, c0 + CHUNK)))
        sub = bank.subset(chunk)
        engine = BankEngine(sub)
        tables = background_tables(sub, ScoreOptions())
        for b0 in range(0, len(blocks), per_piece):
            piece = blocks[b0:b0 + per_piece]
            if test_block == 1:
                inside = engine.score(torch.from_numpy(piece)).numpy()
            elif step > 1:  # each row one piece of the second half
                inside = np.concatenate([window_values(engine, row, W, step, ScoreOptions())[0] for row in piece])
            else:
                v, _ = window_values(engine, np.ascontiguousarray(piece).reshape(-1), W, 1, ScoreOptions())
                full_v = np.full((len(piece) * length, len(chunk)), np.nan, dtype=np.float32)
                full_v[:len(v)] = v
                inside = full_v.reshape(len(piece), length, -1)[:, :test_block].reshape(-1, len(chunk))
            rows = slice(b0 * test_block, (b0 + len(piece)) * test_block)
            ok = called[rows]
            x, wgc = inside[ok], gc[rows][ok]
            for name, cap in shapes.items():
                lp = log10_pvalues(torch.from_numpy(x), tables, min_shape=cap).numpy()
                for k, alpha in enumerate(ALPHAS):
                    hit = lp <= np.log10(alpha)
                    hits[name][k, chunk] += hit.sum(axis=0)
                    hit_gc[name][k, chunk] += (hit * wgc[:, None]).sum(axis=0)
        print(f"# {chunk[-1] + 1} of {M} models tested ({time.time() - t1:.0f} s)", file=sys.stderr)
    t2 = time.time()
    n = int(called.sum())
    kind = "shuffled" if a.shuffle else "genome"
    test = f"every {step} bp" if a.test_step else f"in blocks of {a.test_block}"
    print(f"# {len(ids)} models (every {a.every}th), {kind} background of {a.windows} windows in blocks of "
          f"{a.block} on 0-{HALF} ({t1 - t0:.0f} s); {n} test windows {test} ({t2 - t1:.0f} s); "
          f"GC of test windows {gc[called].mean():.3f}", file=sys.stderr)
    floors = background_tables(bank, ScoreOptions()).floor
    for name in shapes:
        print(f"# {name}")
        report(hits[name] / n, hit_gc[name] / np.maximum(hits[name], 1), hits[name], n, bank, floors)


def sliding_pieces(codes: np.ndarray, step: int) -> np.ndarray:
    """[pieces, W + (PIECE - 1) * step] codes: consecutive pieces of PIECE windows each, every window
    start of `codes` at `step` in exactly one piece (the last piece padded with N, all-N windows)."""
    n = (len(codes) - W) // step + 1
    pieces = -(-n // PIECE)
    length = W + (PIECE - 1) * step
    padded = np.full(pieces * PIECE * step + W, N, dtype=codes.dtype)
    padded[:len(codes)] = codes
    padded[(n - 1) * step + W:] = N  # past the last whole window
    return np.stack([padded[p * PIECE * step:p * PIECE * step + length] for p in range(pieces)])


def report(rate: np.ndarray, hit_gc: np.ndarray, hits: np.ndarray, n: int, bank, floors: np.ndarray) -> None:
    """The ratio distribution per alpha, and the models outside [1/2, 2]."""
    print("alpha\tmodels\twithin_2x\tq05\tq25\tmedian\tq75\tq95")
    misses = {}
    for k, alpha in enumerate(ALPHAS):
        if alpha * n < 10:
            continue
        ratio = rate[k] / alpha
        ok = (ratio >= 0.5) & (ratio <= 2)
        q = np.quantile(ratio, [0.05, 0.25, 0.5, 0.75, 0.95])
        print(f"{alpha:g}\t{len(ratio)}\t{ok.mean():.3f}\t" + "\t".join(f"{v:.3f}" for v in q))
        for j in np.flatnonzero(~ok):
            g = hit_gc[k, j] if hits[k, j] else float("nan")
            misses.setdefault(j, []).append(f"{alpha:g}:{ratio[j]:.2f}(hit GC {g:.2f})")
    print("\n# models outside [1/2, 2] (alpha:ratio, mean GC of the windows at p <= alpha; floor of the background)")
    for j, what in misses.items():
        info = bank.models[j].info
        print(f"{info.id}\t{info.protein}\t{info.protein_type}/{info.experiment}\tfloor {floors[j]:.3g}\t" + " ".join(what))


if __name__ == "__main__":
    main()
