"""Real-data sanity check of `dbtools scan`: CTCF peak windows outscore windows 50 kb away.

GM12878 CTCF ChIP-seq peaks on chr20 (ENCODE uniform peaks, ../shared/data/peaks, contig
names `chr20` while the genome says `20`) and the same intervals shifted by +50 kb (those
overlapping a peak dropped) are scanned with the published CTCF models through the
`dbtools scan` command (BigWig, --step 1, W = 101). A region's score is the max of the
windows inside it, read back from the BigWig; the AUC of peaks against shifted regions is
printed per model. The shipped bank has no GM12878 CTCF model; its CTCF models are
D00328.003 (SELEX) and D00328.018 (ChIP-seq, GM12801), both used by default.

    python benchmarks/scan_ctcf_auc.py                   # scan only the peaks and shifted regions
    python benchmarks/scan_ctcf_auc.py --whole-chr20     # scan all of chr20, then read the regions
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pyBigWig

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from dbtools.metrics import auc  # noqa: E402

DATA = ROOT.parent / "shared" / "data"
GENOME = DATA / "genome" / "20.fa.gz"
PEAKS = DATA / "peaks" / "Gm12878_ctcf_UniPk_hg19_startend.bed"
SHIFT = 50_000


def chr20_peaks(path: Path) -> list[tuple[int, int]]:
    out = []
    for line in path.read_text().splitlines():
        cols = line.split()
        if cols and cols[0] == "chr20":
            out.append((int(cols[1]), int(cols[2])))
    return sorted(out)


def overlaps(a: int, b: int, peaks: list[tuple[int, int]]) -> bool:
    return any(s < b and a < e for s, e in peaks)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--models", default="D00328.003,D00328.018", help="model selectors (default: the CTCF models)")
    ap.add_argument("--peaks", default=str(PEAKS), help="peak BED (contig chr20 used)")
    ap.add_argument("--whole-chr20", action="store_true", help="scan all of chr20 instead of the regions only")
    args = ap.parse_args()

    peaks = chr20_peaks(Path(args.peaks))
    shifted = [(s + SHIFT, e + SHIFT) for s, e in peaks if not overlaps(s + SHIFT, e + SHIFT, peaks)]
    with tempfile.TemporaryDirectory() as tmp:
        bed = Path(tmp) / "regions.bed"
        bed.write_text("".join(f"chr20\t{s}\t{e}\n" for s, e in sorted(peaks + shifted)))
        out = Path(tmp) / "tracks"
        cmd = [sys.executable, "-m", "dbtools_cli.main", "scan", str(GENOME), "-m", args.models,
               "--out-dir", str(out), "--device", "cpu"]
        if not args.whole_chr20:
            cmd += ["--regions", str(bed)]
        t = time.perf_counter()
        subprocess.run(cmd, check=True)
        wall = time.perf_counter() - t
        span = "all of chr20" if args.whole_chr20 else f"{len(peaks)} peaks + {len(shifted)} shifted regions"
        print(f"scanned {span} in {wall:.1f} s")
        for bw_path in sorted(out.glob("*.bw")):
            bw = pyBigWig.open(str(bw_path))

            def best(regions):
                vals = []
                for s, e in regions:
                    v = bw.stats("20", s, e, type="max", exact=True)[0]
                    vals.append(np.nan if v is None else v)
                return np.array(vals, dtype=float)

            p, n = best(peaks), best(shifted)
            p, n = p[~np.isnan(p)], n[~np.isnan(n)]  # regions inside N runs have no windows
            labels = np.concatenate([np.ones(len(p)), np.zeros(len(n))])
            print(f"{bw_path.stem}: AUC {auc(labels, np.concatenate([p, n])):.3f} "
                  f"({len(p)} peaks, {len(n)} regions 50 kb away; median max score {np.median(p):.3f} vs "
                  f"{np.median(n):.3f})")
            bw.close()


if __name__ == "__main__":
    main()
