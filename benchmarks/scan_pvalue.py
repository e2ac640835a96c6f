"""What `scan --format bed --pvalue` costs over `--threshold`: the same scan, hits picked by a
p-value lookup instead of a score threshold, measured side by side in one run.

A bank with backgrounds for the 16 benchmark models (one per architecture, `scan.sixteen_models`)
is made first (`dbtools background`, few windows: the lookup costs the same for any table), then
`dbtools scan GENOME -r REGION -m MODELS --format bed` runs with `--threshold 3` and with
`--pvalue 1e-4`, alternately, --repeat times. Prints the median wall and CPU seconds of each
and their ratio (target: at most 1.10).

    python benchmarks/scan_pvalue.py                 # 1 Mbp of chr20, step 1
    python benchmarks/scan_pvalue.py --kb 200 --repeat 3
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from scan import sixteen_models  # noqa: E402
from scan_end_to_end import CPU_SECONDS, GENOME, START, cli  # noqa: E402
from dbtools.bank.store import default_bank_path, load_bank  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--kb", type=int, default=1000, help="kbp of chr20 scanned")
    ap.add_argument("--step", type=int, default=1)
    ap.add_argument("--repeat", type=int, default=3)
    a = ap.parse_args()
    bank = load_bank(default_bank_path())
    ids = ",".join(bank.ids[i] for i in sixteen_models(bank))
    with tempfile.TemporaryDirectory() as tmp:
        bg = Path(tmp) / "bg.bank"
        cli("background", str(GENOME), "-m", ids, "-o", str(bg), "--windows", "20000", "--tail-fraction", "0.01")
        region = Path(tmp) / "r.bed"
        region.write_text(f"20\t{START}\t{START + a.kb * 1000}\n")
        base = ["scan", str(GENOME), "-r", str(region), "-b", str(bg), "-m", ids, "--step", str(a.step),
                "--format", "bed", "--device", "cpu"]
        wall = {"threshold": [], "pvalue": []}
        cpu = {"threshold": [], "pvalue": []}
        for _ in range(a.repeat):
            for name, extra in (("threshold", ["--threshold", "3"]), ("pvalue", ["--pvalue", "1e-4"])):
                wall[name].append(cli(*base, *extra))
                cpu[name].append(CPU_SECONDS[-1])
    w = {k: statistics.median(v) for k, v in wall.items()}
    c = {k: statistics.median(v) for k, v in cpu.items()}
    print(f"16 models, {a.kb} kbp, step {a.step}, median of {a.repeat}")
    print(f"--threshold 3:   {w['threshold']:.2f} s wall, {c['threshold']:.2f} s CPU")
    print(f"--pvalue 1e-4:   {w['pvalue']:.2f} s wall, {c['pvalue']:.2f} s CPU")
    print(f"ratio pvalue/threshold: wall {w['pvalue'] / w['threshold']:.3f}, CPU {c['pvalue'] / c['threshold']:.3f}")


if __name__ == "__main__":
    main()
