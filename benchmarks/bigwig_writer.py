"""BigWig writing: pyBigWig (as dbtools.io.tracks.write_bigwig does it) against dbtools.io.bigwig.

For each size (values at step 1 on one contig: a float32 random walk, smooth like a track of
scores, with a few NaN gaps), in one run on one machine:

  pyBigWig     tracks.write_bigwig: float64 blocks of 1 << 20 values, one addEntries(span=step,
               step=step) per run of finite values, maxZooms=10;
  ours t=1     BigWigWriter(threads=1): add() a block of 1 << 20 float32 values at a time;
  ours t=2     the same with threads=2 (sections compressed in two threads).

It prints the best of --repeat wall times (seconds) of each, pyBigWig's time over ours, the file
sizes, and checks that both files hold the same values. Target: ours with threads=1 at least 3x
faster than pyBigWig.

    python benchmarks/bigwig_writer.py
    python benchmarks/bigwig_writer.py --sizes 2 --repeat 1      # quicker
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from dbtools.io.bigwig import BigWigWriter  # noqa: E402
from dbtools.io.tracks import write_bigwig  # noqa: E402

BLOCK = 1 << 20


def track(n: int, seed: int = 0) -> np.ndarray:
    """A float32 random walk of n values with a few NaN gaps (N runs of a genome)."""
    rng = np.random.default_rng(seed)
    values = np.cumsum(rng.normal(0.0, 0.05, n)).astype(np.float32)
    for start in rng.integers(0, n - 20_000, 6):
        values[start:start + int(rng.integers(100, 20_000))] = np.nan
    return values


def ours(path: str, header, values: np.ndarray, threads: int) -> None:
    with BigWigWriter(path, header, zoom_levels=10, threads=threads) as w:
        for c in range(0, len(values), BLOCK):
            w.add("chr1", c, 1, values[c:c + BLOCK])


def timed(fn, repeat: int) -> list[float]:
    times = []
    for _ in range(repeat):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return times


def same_values(a: str, b: str, n: int) -> bool:
    import pyBigWig

    x, y = pyBigWig.open(a), pyBigWig.open(b)
    try:
        return bool(np.array_equal(x.values("chr1", 0, n, numpy=True), y.values("chr1", 0, n, numpy=True),
                                   equal_nan=True))
    finally:
        x.close()
        y.close()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sizes", type=float, nargs="+", default=[2, 10], help="millions of values (default 2 10)")
    ap.add_argument("--repeat", type=int, default=3, help="runs of each writer; the best is shown (default 3)")
    args = ap.parse_args()
    print(f"{'values':>8} {'writer':>9} {'best s':>8} {'median s':>9} {'ns/value':>9} {'pyBigWig/ours':>14} {'MB':>7}")
    with tempfile.TemporaryDirectory() as tmp:
        for millions in args.sizes:
            n = int(millions * 1_000_000)
            values = track(n)
            header = [("chr1", n + 1000)]
            ref = os.path.join(tmp, "pybigwig.bw")
            rows = [("pyBigWig", ref, lambda r=ref, h=header, v=values: write_bigwig(r, h, [("chr1", 0, 1, v)]))]
            for threads in (1, 2):
                path = os.path.join(tmp, f"ours{threads}.bw")
                rows.append((f"ours t={threads}", path,
                             lambda p=path, t=threads, h=header, v=values: ours(p, h, v, t)))
            base = None
            for name, path, fn in rows:
                times = timed(fn, args.repeat)
                best = min(times)
                base = base or best
                ratio = "" if name == "pyBigWig" else f"{base / best:.2f}x"
                print(f"{n:>8} {name:>9} {best:8.3f} {statistics.median(times):9.3f} {best / n * 1e9:9.1f} "
                      f"{ratio:>14} {os.path.getsize(path) / 1e6:7.2f}", flush=True)
            print(f"{'':>8} same values as pyBigWig's file: "
                  f"{all(same_values(ref, os.path.join(tmp, f'ours{t}.bw'), n + 1000) for t in (1, 2))}; "
                  f"threads=1 and 2 byte-identical: "
                  f"{Path(tmp, 'ours1.bw').read_bytes() == Path(tmp, 'ours2.bw').read_bytes()}")


if __name__ == "__main__":
    main()
