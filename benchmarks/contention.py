"""Benchmark every command on a busy machine: alone, beside a CPU-bound process, and pinned to one CPU.

HPC nodes are shared and a Slurm allocation is smaller than the node, so a command must neither
collapse when another process holds one of its cores nor use more threads than it was given.
For score, scan, vareffect, mutmap, train and calibrate (small real workloads, 16 published models
for the scoring commands), each whole command is timed

  * alone, with its default threads (the CPUs this process may use);
  * while this script keeps one core busy (a spinning process pinned to CPU 0): the slowdown
    against alone must stay at or under 2.5x;
  * under `taskset -c 0`: the threads that did work (more than 10% of the busiest thread's CPU
    time, read from /proc while it runs) must be one.

Runs alternate per command (alone, busy, pinned), and --repeats keeps each one's best; the
machine is shared, so the ratios come from the same run.

    python benchmarks/contention.py
    python benchmarks/contention.py --commands mutmap score --repeats 2
"""

from __future__ import annotations

import argparse
import gzip
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT.parent / "shared" / "data"
GENOME = DATA / "genome" / "20.fa.gz"
LIMIT = 2.5  # slowest allowed: this many times the time alone


def model_ids(n: int = 16) -> str:
    """The same fixed sample of the bank as benchmarks/mutmap.py."""
    sys.path.insert(0, str(ROOT))
    from dbtools.bank.store import default_bank_path, load_bank

    bank = load_bank(default_bank_path())
    idx = sorted(np.random.default_rng(0).choice(len(bank), n, replace=False).tolist())
    return ",".join(bank.models[i].info.id for i in idx)


def workloads(tmp: Path, models: str) -> dict[str, list[str]]:
    """Each command's arguments (after `dbtools`), on files written into tmp."""
    encode = sorted((DATA / "encode").glob("*_AC.seq.gz"))[0]
    with gzip.open(encode, "rt") as fh:
        rows = [line.rstrip("\n") for line in fh][1:]
    (tmp / "peaks.txt").write_text("".join(r.split("\t")[2] + "\n" for r in rows[:3000]))
    (tmp / "mutmap.txt").write_text("".join(r.split("\t")[2] + "\n" for r in rows[:40]))
    (tmp / "train.tsv").write_text("\n".join(["FoldID\tEventID\tseq\tBound"] + rows[:400]) + "\n")
    (tmp / "scan.bed").write_text("20\t30000000\t30300000\n")
    vcf = (DATA / "vcf" / "deepfind_derived_promoter_snvs_chr20_b37.vcf").read_text().splitlines()
    head = [ln for ln in vcf if ln.startswith("#")]
    body = [ln for ln in vcf if not ln.startswith("#")][:1500]
    (tmp / "snvs.vcf").write_text("\n".join(head + body) + "\n")
    return {
        "score": ["score", str(tmp / "peaks.txt"), "-m", models],
        "scan": ["scan", str(GENOME), "--regions", str(tmp / "scan.bed"), "-m", models, "-f", "bedgraph",
                 "-o", str(tmp / "scan")],
        "vareffect": ["vareffect", str(tmp / "snvs.vcf"), "-g", str(GENOME), "-m", models,
                      "-o", str(tmp / "out.vcf")],
        "mutmap": ["mutmap", str(tmp / "mutmap.txt"), "-m", models, "-f", "npz", "-o", str(tmp / "maps")],
        "train": ["train", str(tmp / "train.tsv"), "-o", str(tmp / "bank.safetensors"), "--steps", "300",
                  "--restarts", "1", "--device", "cpu"],
        "calibrate": ["calibrate", str(tmp / "train.tsv"), "-o", str(tmp / "cal.json"), "--quick",
                      "--max-steps", "200", "--no-plots", "--device", "cpu"],
    }


def thread_times(pid: int) -> dict[int, float]:
    """CPU seconds of each thread of a running process (utime + stime from /proc)."""
    out = {}
    tick = os.sysconf("SC_CLK_TCK")
    try:
        for tid in os.listdir(f"/proc/{pid}/task"):
            with open(f"/proc/{pid}/task/{tid}/stat") as fh:
                fields = fh.read().rsplit(")", 1)[1].split()
            out[int(tid)] = (int(fields[11]) + int(fields[12])) / tick
    except (FileNotFoundError, ProcessLookupError):
        pass
    return out


def run(args: list[str], cpus: set[int] | None = None) -> tuple[float, float, int]:
    """Wall seconds, CPU seconds and working threads of one `dbtools` run (cpus: its affinity)."""
    exe = str(Path(sys.executable).with_name("dbtools"))
    pre = (lambda: os.sched_setaffinity(0, cpus)) if cpus else None
    t = time.perf_counter()
    proc = subprocess.Popen([exe, *args], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, preexec_fn=pre)
    seen: dict[int, float] = {}
    while proc.poll() is None:
        seen.update(thread_times(proc.pid))
        time.sleep(0.05)
    wall = time.perf_counter() - t
    _, err = proc.communicate()
    if proc.returncode:
        raise SystemExit(f"dbtools {' '.join(args)} failed:\n{err.decode()[-2000:]}")
    busiest = max(seen.values(), default=0.0)
    working = sum(1 for v in seen.values() if v > 0.1 * busiest) if busiest else 1
    return wall, sum(seen.values()), working


def spinner() -> subprocess.Popen:
    """A CPU-bound process pinned to CPU 0."""
    return subprocess.Popen([sys.executable, "-c", "while True: pass"],
                            preexec_fn=lambda: os.sched_setaffinity(0, {0}))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--commands", nargs="+", default=["score", "scan", "vareffect", "mutmap", "train", "calibrate"])
    ap.add_argument("--repeats", type=int, default=1)
    args = ap.parse_args()
    cpus = sorted(os.sched_getaffinity(0))
    if len(cpus) < 2 or 0 not in cpus:
        raise SystemExit("needs CPU 0 and at least one more")
    print(f"{len(cpus)} CPUs; one kept busy by a spinning process pinned to CPU 0 in the busy runs")
    print(f"{'command':<10} {'alone s':>8} {'busy s':>8} {'slowdown':>9} {'1 CPU s':>8} {'threads':>8}  verdict")
    failed = []
    with tempfile.TemporaryDirectory() as tmp:
        jobs = workloads(Path(tmp), model_ids())
        for name in args.commands:
            alone = busy = pinned = float("inf")
            threads = 0
            for _ in range(args.repeats):
                alone = min(alone, run(jobs[name])[0])
                spin = spinner()
                try:
                    time.sleep(0.2)
                    busy = min(busy, run(jobs[name])[0])
                finally:
                    spin.kill()
                    spin.wait()
                wall, _, working = run(jobs[name], {0})
                pinned, threads = min(pinned, wall), max(threads, working)
            ok = busy / alone <= LIMIT and threads == 1
            if not ok:
                failed.append(name)
            print(f"{name:<10} {alone:8.2f} {busy:8.2f} {busy / alone:8.2f}x {pinned:8.2f} {threads:8d}  "
                  f"{'ok' if ok else 'FAIL'}", flush=True)
    print(f"\nall within {LIMIT}x and one thread on one CPU" if not failed else f"\nfailed: {', '.join(failed)}")


if __name__ == "__main__":
    main()
