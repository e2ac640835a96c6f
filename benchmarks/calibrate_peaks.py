"""`dbtools calibrate` against `dbtools train`'s defaults on sets built from peaks and the genome.

The five ENCODE sets are all the curated ChIP-seq data in ../shared, so the comparison is
repeated on sets the calibration was never designed on: the GM12878 CTCF peaks of chr20
(ENCODE uniform peaks, `../shared/data/peaks`) as 101-bp windows of GRCh37 chr20, split into
two halves interleaved along the chromosome (peaks 1, 3, 5, ... train; 2, 4, 6, ... test), each
with its negatives made the same way: dinucleotide shuffles of each window ("shuffle", the
paper's protocol) or the genomic window 1 kb beside each peak ("flank", a harder background of
real sequence). For each negative kind and seed, the whole commands a user runs:

    dbtools calibrate train.bed --genome 20.fa.gz --negatives K --seed S --bank-out cal.bank
    dbtools train     train.bed --genome 20.fa.gz --negatives K --seed S -o defaults.bank

then the AUC of each bank on the test half (its peaks against its own negatives, made with
seed 1000 + S), the calibration's choice (the defaults kept, or a random trial and by how much
it beat them in cross-validation) and both wall times.

    python benchmarks/calibrate_peaks.py                          # shuffle and flank, seeds 0 1 2
    python benchmarks/calibrate_peaks.py --negatives flank --seeds 0 --trials 10
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from dbtools.api import score_sequences  # noqa: E402
from dbtools.metrics import auc  # noqa: E402
from dbtools.train.datasets import read_dataset  # noqa: E402

DATA = ROOT.parent / "shared" / "data"
PEAKS = DATA / "peaks" / "Gm12878_ctcf_UniPk_hg19_startend.bed"
GENOME = DATA / "genome" / "20.fa.gz"


def halves(tmp: Path) -> tuple[Path, Path, int]:
    """train.bed and test.bed: the chr20 peaks sorted by position, alternately."""
    rows = sorted({(int(f[1]), int(f[2])) for f in (ln.split("\t") for ln in PEAKS.read_text().splitlines())
                   if f[0] in ("chr20", "20")})
    paths = []
    for k, name in enumerate(("train.bed", "test.bed")):
        p = tmp / name
        p.write_text("".join(f"chr20\t{s}\t{e}\n" for s, e in rows[k::2]))
        paths.append(p)
    return paths[0], paths[1], len(rows)


def dbtools(*args: str) -> float:
    t0 = time.perf_counter()
    done = subprocess.run([sys.executable, "-m", "dbtools_cli.main", *args], capture_output=True, text=True)
    if done.returncode:
        sys.exit(f"dbtools {' '.join(args)} failed:\n{done.stderr}")
    return time.perf_counter() - t0


def test_auc(bank: Path, test: Path, negatives: str, seed: int) -> float:
    data = read_dataset(str(test), genome=str(GENOME), negatives_from=negatives, seed=1000 + seed)
    scores = np.asarray(score_sequences(str(bank), data.sequences, device="cpu"))[:, 0]
    return auc(data.targets.astype(int), scores)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--negatives", nargs="+", default=["shuffle", "flank"], choices=["shuffle", "flank"])
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    ap.add_argument("--trials", type=int, default=30, help="random trials of the calibration (default 30)")
    args = ap.parse_args()
    rows = []
    with tempfile.TemporaryDirectory() as d:
        tmp = Path(d)
        train, test, n = halves(tmp)
        print(f"GM12878 CTCF, chr20: {n} peaks, {(n + 1) // 2} to train, {n // 2} to test")
        for negatives in args.negatives:
            for seed in args.seeds:
                common = [str(train), "--genome", str(GENOME), "--negatives", negatives, "--seed", str(seed),
                          "--device", "cpu"]
                cal, report = tmp / f"cal_{negatives}_{seed}.bank", tmp / f"cal_{negatives}_{seed}.json"
                t_cal = dbtools("calibrate", *common, "--trials", str(args.trials), "--no-plots",
                                "-o", str(report), "--bank-out", str(cal))
                default = tmp / f"def_{negatives}_{seed}.bank"
                t_def = dbtools("train", *common, "-o", str(default))
                protein = json.loads(report.read_text())["proteins"][0]
                sel = protein.get("selection", {})
                if protein["choice"]["trial"] < protein.get("defaults_trials", 0):  # the leading trials
                    kept = "the defaults"
                else:
                    kept = (f"trial {protein['choice']['trial']} (CV AUC +{sel['difference']:.4f} "
                            f"+- {sel['difference_se']:.4f})")
                a_cal, a_def = test_auc(cal, test, negatives, seed), test_auc(default, test, negatives, seed)
                rows.append((negatives, seed, a_cal, a_def, kept, t_cal, t_def))
                print(f"{negatives:8s} seed {seed}: calibrate {a_cal:.4f}  defaults {a_def:.4f}  "
                      f"difference {a_cal - a_def:+.4f}  chose {kept}  ({t_cal:.0f} s against {t_def:.0f} s)",
                      flush=True)
    for negatives in args.negatives:
        mine = [r for r in rows if r[0] == negatives]
        print(f"{negatives}: mean AUC calibrate {statistics.mean(r[2] for r in mine):.4f}, defaults "
              f"{statistics.mean(r[3] for r in mine):.4f}; calibrate >= defaults in "
              f"{sum(r[2] >= r[3] for r in mine)} of {len(mine)} seeds")


if __name__ == "__main__":
    main()
