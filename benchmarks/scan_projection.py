"""Whole `dbtools scan` runs (BigWig out) timed, and the wall time of GRCh38 projected from them.

For 16 models (one per published architecture) and all 927, at `--step 1` and `--step 10`, it
runs the whole command on a stretch of chr20, from process start to the last track renamed, and
prints the rate (Mbp x models / s), the peak memory, the bytes written per Mbp per model, and
the projected wall time and output size for GRCh38 (3.1 Gbp, the same rate assumed genome-wide;
N runs make the real genome a little quicker). The stretch per configuration is sized so each
run takes about a minute on a 2-core CPU; `--scale` multiplies it.

    python benchmarks/scan_projection.py                     # the CPU figures of docs/performance.md
    python benchmarks/scan_projection.py --device cuda --whole-contig   # all of chr20 (a GPU machine)

With `--device cuda` the peak GPU memory of each run is printed as well (torch's allocator
statistics, read by a wrapper process around the scan).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from scan import sixteen_models  # noqa: E402
from dbtools.bank.store import default_bank_path, load_bank  # noqa: E402

GENOME = ROOT.parent / "shared" / "data" / "genome" / "20.fa.gz"
GRCH38 = 3.1e9
START = 30_000_000
# bases scanned per configuration on the CPU: about a minute each on 2 cores
CPU_BASES = {(16, 1): 3_000_000, (16, 10): 10_000_000, (927, 1): 30_000, (927, 10): 300_000}

# runs the scan in this process and prints torch's peak GPU memory as the last line of stderr
_WRAPPER = """
import sys, json, torch
from dbtools_cli.main import run
sys.argv = ["dbtools"] + sys.argv[1:]
try:
    run()
except SystemExit as e:
    code = e.code or 0
else:
    code = 0
if torch.cuda.is_available():
    print(json.dumps({"peak_gpu_bytes": torch.cuda.max_memory_allocated()}), file=sys.stderr)
sys.exit(code)
"""


def whole_scan(args: list[str]) -> tuple[float, int, int | None]:
    """Wall seconds, peak RSS (bytes) and peak GPU bytes (or None) of one `dbtools scan` process."""
    t0 = time.perf_counter()
    proc = subprocess.Popen([sys.executable, "-c", _WRAPPER, "scan", *args], stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE, text=True)
    stderr = proc.stderr.read()
    _, status, usage = os.wait4(proc.pid, 0)  # this child's own peak RSS
    seconds = time.perf_counter() - t0
    if os.waitstatus_to_exitcode(status):
        sys.exit(f"dbtools scan {' '.join(args)} failed:\n{stderr}")
    rss = usage.ru_maxrss * 1024
    gpu = None
    last = stderr.strip().splitlines()[-1:] if stderr.strip() else []
    if last and last[0].startswith("{"):
        gpu = json.loads(last[0])["peak_gpu_bytes"]
    return seconds, rss, gpu


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--genome", type=Path, default=GENOME)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--scale", type=float, default=1.0, help="multiply the bases scanned per configuration")
    ap.add_argument("--whole-contig", action="store_true", help="scan all of chr20 in every configuration")
    ap.add_argument("--only", default="", help="configurations to run, e.g. 16:1,927:10 (default: all four)")
    args = ap.parse_args()
    if not args.genome.exists():
        sys.exit(f"{args.genome}: not found (the chr20 FASTA of ../shared/data/genome)")
    bank = load_bank(default_bank_path())
    sixteen = bank.subset(sixteen_models(bank)).ids
    configs = list(CPU_BASES)
    if args.only:
        configs = [tuple(int(x) for x in c.split(":")) for c in args.only.split(",")]
    print(f"device {args.device}; CPUs this process may use: {len(os.sched_getaffinity(0))}; "
          f"load average at start: {os.getloadavg()[0]:.1f}")
    print("models  step   Mbp    wall s  Mbp x models/s  MB/Mbp/model  peak RSS GB  peak GPU GB  "
          "GRCh38 hours  GRCh38 output GB")
    for n_models, step in configs:
        with tempfile.TemporaryDirectory() as tmp:
            region = []
            if not args.whole_contig:
                length = int(CPU_BASES[(n_models, step)] * args.scale)
                bed = Path(tmp) / "region.bed"
                bed.write_text(f"20\t{START}\t{START + length}\n")
                region = ["-r", str(bed)]
            else:
                from dbtools.io.genome import Genome
                with Genome(str(args.genome)) as g:
                    length = g.sizes["20"]
            pick = []
            if n_models == 16:
                ids = Path(tmp) / "models.txt"
                ids.write_text("\n".join(sixteen) + "\n")
                pick = ["-m", f"@{ids}"]
            out = Path(tmp) / "tracks"
            seconds, rss, gpu = whole_scan([str(args.genome), *region, *pick, "--step", str(step),
                                            "--device", args.device, "-o", str(out)])
            written = sum(f.stat().st_size for f in out.glob("*.bw"))
        mbp = length / 1e6
        rate = mbp * n_models / seconds
        per = written / 1e6 / mbp / n_models
        hours = GRCH38 / 1e6 * n_models / rate / 3600
        gpu_text = f"{gpu / 2**30:11.2f}" if gpu is not None else "          -"
        print(f"{n_models:6d}  {step:4d}  {mbp:5.2f}  {seconds:8.1f}  {rate:14.2f}  {per:12.3f}  "
              f"{rss / 2**30:11.2f}  {gpu_text}  {hours:12.1f}  {per * GRCH38 / 1e6 * n_models / 1e3:16.0f}",
              flush=True)


if __name__ == "__main__":
    main()
