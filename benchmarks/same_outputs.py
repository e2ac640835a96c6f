"""Check that `score`, `scan`, `vareffect`, `mutmap` and `train` write byte-identical files at
two commits, on the demo data: the check that a refactoring changed no behaviour.

    python benchmarks/same_outputs.py --base HEAD~5             # the working tree against HEAD~5
    python benchmarks/same_outputs.py --base HEAD~5 --repeat 3  # and the time of each command

The base commit is checked out into a temporary git worktree and run from its source folders
(put first on PYTHONPATH), the working tree through the installed `dbtools`. Every output file
is compared by SHA-256; the script prints one line per file and exits 1 on any difference.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import statistics
import struct
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

# (name, arguments); {demo} is the demo folder; outputs are relative to the run's folder, so that
# command lines recorded in them are the same in both runs
COMMANDS = [
    ("score.tsv", "score {demo}/ctcf_peaks.fa -m CTCF --echo"),
    ("score_avg.tsv", "score {demo}/ctcf_peaks.fa -m GABPA --average --window-size 20"),
    ("scan_bw", "scan {demo}/chr20_61M.fa -m D00328.003 -m D00409.004 -r {demo}/ctcf_peaks.bed -o scan_bw"),
    ("scan_step", "scan {demo}/chr20_61M.fa -m CTCF --step 10 --window 101 -r {demo}/ctcf_peaks.bed "
                  "-f bedgraph -o scan_step"),
    ("scan_bed", "scan {demo}/chr20_61M.fa -m D00328.003 -f bed --threshold 3 -r {demo}/ctcf_peaks.bed "
                 "-o scan_bed"),
    ("vareffect.vcf", "vareffect {demo}/variants.vcf -g {demo}/chr20_61M.fa -m CTCF -m GABPA "
                      "-o vareffect.vcf"),
    ("mutmap", "mutmap {demo}/ctcf_peaks.fa -m D00328.003 -m D00409.004 -f tsv -f npz -o mutmap"),
    ("train.bank", "train {demo}/gabpa_A.seq --seed 1 --steps 40 -o train.bank"),
]


def run_all(cmd_prefix: list[str], out: Path, env: dict) -> dict[str, float]:
    """Run every command with its outputs in `out`; the wall time of each whole command."""
    out.mkdir(parents=True, exist_ok=True)
    seconds = {}
    for name, args in COMMANDS:
        argv = cmd_prefix + args.format(demo=ROOT / "demo", out=out).split()
        t0 = time.perf_counter()
        with open(out / f"{name}.stdout", "w") as stdout:  # the data of commands that write to stdout
            done = subprocess.run(argv, env=env, cwd=out, stdout=stdout, stderr=subprocess.PIPE, text=True)
        seconds[name] = time.perf_counter() - t0
        if done.returncode:
            sys.exit(f"failed ({done.returncode}): {' '.join(argv)}\n{done.stderr}")
    return seconds


def content(path: Path) -> bytes:
    """A file's bytes; for a bank, its header as sorted JSON then its tensors (safetensors writes
    the keys of its metadata in no fixed order, so two writes of one bank may differ in bytes)."""
    data = path.read_bytes()
    if path.suffix != ".bank":
        return data
    n = struct.unpack("<Q", data[:8])[0]
    return json.dumps(json.loads(data[8:8 + n]), sort_keys=True).encode() + data[8 + n:]


def digests(folder: Path) -> dict[str, str]:
    return {str(p.relative_to(folder)): hashlib.sha256(content(p)).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file()}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--base", required=True, help="git commit to compare the working tree with")
    ap.add_argument("--verbose", action="store_true", help="list every file, not only those that differ")
    ap.add_argument("--repeat", type=int, default=1,
                    help="run both N times, alternating, and print each command's median wall time and ratio")
    ap.add_argument("--keep", type=Path, help="keep the two output folders here")
    args = ap.parse_args()
    work = Path(tempfile.mkdtemp(prefix="same-outputs-")) if args.keep is None else args.keep
    tree = work / "base-tree"
    subprocess.run(["git", "-C", str(ROOT), "worktree", "add", "--detach", str(tree), args.base],
                   check=True, capture_output=True)
    try:
        pkgs = work / "base-packages"  # the base's packages under their installed names
        pkgs.mkdir(exist_ok=True)
        for name, folder in (("dbtools", "dbtools"), ("dbtools_cli", "cli"), ("dbtools_models", "models")):
            link = pkgs / name
            if not link.exists():
                link.symlink_to(tree / folder)
        env = dict(os.environ, PYTHONHASHSEED="0")
        base_env = dict(env, PYTHONPATH=str(pkgs))
        runner = [sys.executable, "-c", "from dbtools_cli.main import run; run()"]
        times: dict[str, list[dict[str, float]]] = {"base": [], "head": []}
        for r in range(args.repeat):  # alternate which goes first, so drift on a busy machine evens out
            order = [("base", base_env), ("head", env)]
            for label, e in order if r % 2 == 0 else order[::-1]:
                times[label].append(run_all(runner, work / (label if r == 0 else f"{label}{r}"), e))
    finally:
        subprocess.run(["git", "-C", str(ROOT), "worktree", "remove", "--force", str(tree)], check=False)
    a, b = digests(work / "base"), digests(work / "head")
    differ = 0
    for name in sorted(set(a) | set(b)):
        same = a.get(name) == b.get(name)
        differ += not same
        if not same or args.verbose:
            print(f"{'same' if same else 'DIFFERS'}\t{name}")
    print(f"{len(set(a) | set(b))} files, {differ} differ", file=sys.stderr)
    if args.repeat > 1:
        print("command\tbase_s\thead_s\thead/base (medians of whole commands)")
        for name, _ in COMMANDS:
            tb = statistics.median(t[name] for t in times["base"])
            th = statistics.median(t[name] for t in times["head"])
            print(f"{name}\t{tb:.2f}\t{th:.2f}\t{th / tb:.3f}")
    sys.exit(1 if differ else 0)


if __name__ == "__main__":
    main()
