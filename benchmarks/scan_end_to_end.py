"""End-to-end `dbtools scan` against its own engine: how much of a whole scan is scoring.

For each configuration, in one run:

  (a) the whole command, BigWig out: `dbtools scan GENOME -r REGION -m MODELS -o DIR`, from
      process start to the last file renamed;
  (b) the same scan through the engine with nothing written: `--format bed --threshold 1e9`
      scores every window and writes no line (the CLI route a user can time too);
  (c) the engine alone in this process: `engine.windows.window_values` over the region, chunk by
      chunk as the scan does it, no reading of the FASTA timed, no writing.

It prints the wall time of each and the end-to-end rate as a fraction of (b) and of (c), and
the CPU seconds of (a) and (b), whose ratio is steadier on a shared machine. `--repeat N` runs
(a) and (b) N times, alternately, and reports medians. The
configurations are the issue's: 16 models (one per published architecture) at --step 1 on
5 Mbp of chr20, and all 927 models at --step 10 on 500 kb. Targets on a 2-core machine:
(a) at least 70% of the engine's rate with 16 models, 85% with 927.

    python benchmarks/scan_end_to_end.py
    python benchmarks/scan_end_to_end.py --mbp16 1 --kb927 100      # quicker
    python benchmarks/scan_end_to_end.py --repeat 3                 # on a busy machine
"""

from __future__ import annotations

import argparse
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from scan import sixteen_models  # noqa: E402
from dbtools.bank.store import default_bank_path, load_bank  # noqa: E402
from dbtools.engine.bank_engine import BankEngine  # noqa: E402
from dbtools.engine.options import ScoreOptions  # noqa: E402
from dbtools.engine.windows import window_values  # noqa: E402
from dbtools.io.encode import encode  # noqa: E402
from dbtools.io.genome import Genome  # noqa: E402
from dbtools.scan.run import default_chunk  # noqa: E402

GENOME = ROOT.parent / "shared" / "data" / "genome" / "20.fa.gz"
START = 31_000_000


CPU_SECONDS: list[float] = []  # CPU seconds (user + system) of each `cli` call, in order


def cli(*args: str, stdout=subprocess.DEVNULL) -> float:
    """Wall seconds of one whole `dbtools` process (its CPU seconds go to CPU_SECONDS)."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.perf_counter()
    done = subprocess.run([sys.executable, "-m", "dbtools_cli.main", *args], stdout=stdout,
                          stderr=subprocess.PIPE, text=True)
    seconds = time.perf_counter() - t0
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    CPU_SECONDS.append(after.ru_utime - before.ru_utime + after.ru_stime - before.ru_stime)
    if done.returncode:
        sys.exit(f"dbtools {' '.join(args)} failed:\n{done.stderr}")
    return seconds


def engine_only(genome: Path, contig: str, start: int, end: int, bank, step: int) -> float:
    """Wall seconds of the engine over [start, end), models grouped by their genomic window and
    the region chunked as the scan does it."""
    with Genome(str(genome)) as g:
        seq = g.fetch(contig, start, end)
    codes = encode(seq, "region")
    chunk = default_chunk(len(bank))
    per_chunk = max(1, chunk // step)
    engines = [(w, BankEngine(bank.subset(idx), "cpu")) for w, idx in bank.by_genomic_window().items()]
    t0 = time.perf_counter()
    for window, engine in engines:
        n = (len(codes) - window) // step + 1
        for k0 in range(0, n, per_chunk):
            k1 = min(n, k0 + per_chunk)
            window_values(engine, codes[k0 * step:(k1 - 1) * step + window], window, step, ScoreOptions())
    return time.perf_counter() - t0


def run(label: str, models: list[str] | None, bank, step: int, length: int, genome: Path, threads: list[str],
        repeat: int) -> None:
    end = START + length
    wholes, nothings, cpu_whole, cpu_nothing = [], [], [], []
    with tempfile.TemporaryDirectory() as tmp:
        bed = Path(tmp) / "region.bed"
        bed.write_text(f"20\t{START}\t{end}\n")
        pick = []
        if models:
            ids = Path(tmp) / "models.txt"
            ids.write_text("\n".join(models) + "\n")
            pick = ["-m", f"@{ids}"]
        common = [str(genome), "-r", str(bed), *pick, "--step", str(step), "--device", "cpu", *threads]
        for _ in range(repeat):  # (a) and (b) alternate, so a busy spell of the machine hits both
            out = Path(tmp) / "tracks"
            wholes.append(cli("scan", *common, "-o", str(out)))
            cpu_whole.append(CPU_SECONDS[-1])
            written = sum(f.stat().st_size for f in out.glob("*.bw"))
            shutil.rmtree(out)
            nothings.append(cli("scan", *common, "--format", "bed", "--threshold", "1e9"))
            cpu_nothing.append(CPU_SECONDS[-1])
        inner = engine_only(genome, "20", START, end, bank, step)
    whole, nothing = statistics.median(wholes), statistics.median(nothings)
    mbp = length / 1e6
    print(f"{label}: {mbp:g} Mbp x {len(bank)} models, --step {step}, {written / 1e6:.1f} MB of BigWig"
          + (f", median of {repeat} runs" if repeat > 1 else ""))
    print(f"  (a) whole command, BigWig out     {whole:8.2f} s  {mbp * len(bank) / whole:8.2f} Mbp x models/s")
    print(f"  (b) same scan, nothing written    {nothing:8.2f} s  {mbp * len(bank) / nothing:8.2f} Mbp x models/s")
    print(f"  (c) engine alone, in process      {inner:8.2f} s  {mbp * len(bank) / inner:8.2f} Mbp x models/s")
    if repeat > 1:
        print("  (b)/(a) of each pair: " + " ".join(f"{n / w:.2f}" for w, n in zip(wholes, nothings)))
    print(f"  end-to-end rate / (b): {nothing / whole:.2f}    / (c): {inner / whole:.2f}")
    cw, cn = statistics.median(cpu_whole), statistics.median(cpu_nothing)
    print(f"  CPU seconds (user + system): (a) {cw:.2f}, (b) {cn:.2f}, (b)/(a) {cn / cw:.2f} "
          "(steadier than wall time on a busy machine)")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--genome", type=Path, default=GENOME)
    ap.add_argument("--mbp16", type=float, default=5.0, help="Mbp scanned with 16 models at step 1 (default 5)")
    ap.add_argument("--kb927", type=float, default=500.0, help="kb scanned with all 927 models at step 10 (default 500)")
    ap.add_argument("--repeat", type=int, default=1, help="pairs of (a) and (b) runs; medians are reported")
    ap.add_argument("--threads", type=int, default=0, help="passed to dbtools scan --threads (0: its default)")
    args = ap.parse_args()
    if not args.genome.exists():
        sys.exit(f"{args.genome}: not found (the chr20 FASTA of ../shared/data/genome)")
    threads = ["--threads", str(args.threads)] if args.threads else []
    print(f"CPUs this process may use: {len(os.sched_getaffinity(0))}")
    bank = load_bank(default_bank_path())
    if args.mbp16 > 0:
        idx = sixteen_models(bank)
        sub = bank.subset(idx)
        run("16 models", sub.ids, sub, 1, int(args.mbp16 * 1e6), args.genome, threads, args.repeat)
    if args.kb927 > 0:
        run("927 models", None, bank, 10, int(args.kb927 * 1e3), args.genome, threads, args.repeat)


if __name__ == "__main__":
    main()
