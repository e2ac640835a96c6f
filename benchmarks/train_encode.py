"""Fidelity of `dbtools train` on the DeepBind paper's ENCODE sets.

Trains the 5 ENCODE ChIP-seq sets of ../shared/data/encode as ONE bank, each on its fold A
(first 500 peaks) plus dinucleotide-shuffled negatives with default hyperparameters, then
prints, per set, the AUC on its test set B (each model scored as `dbtools evaluate` scores it: on
windows of its training length) next to the paper's figures and the published
model's AUC as scored here. Then the regression check: the WT1 universal PBM of
../shared/data/pbm, trained on 4/5 of the probes (max+avg pooling, m = 16), with Pearson and
Spearman on the held-out fifth.

    python benchmarks/train_encode.py [--steps 1500] [--device cpu|cuda]
"""

from __future__ import annotations

import argparse
import csv
import sys
import tempfile
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from dbtools.train.datasets import read_dataset  # noqa: E402
from dbtools.io.encode import encode_all  # noqa: E402
from dbtools.evaluate import bank_scores  # noqa: E402
from dbtools.engine.bank_engine import BankEngine  # noqa: E402
from dbtools.metrics import auc, pearson, spearman  # noqa: E402
from dbtools.score import ScoreOptions, score_codes  # noqa: E402
from dbtools.bank.selection import open_selected  # noqa: E402
from dbtools.train.bank_training import DataOptions, ModelSpec, RunOptions, train_bank  # noqa: E402
from dbtools.train.hyper import Hyper  # noqa: E402

ENCODE = ROOT.parent / "shared" / "data" / "encode"
PBM = ROOT.parent / "shared" / "data" / "pbm" / "WT1_REF_R1_combinatorial.txt"


def pbm_regression(steps: int, seed: int, device: torch.device) -> None:
    """Train on 4/5 of the WT1 probes, print Pearson and Spearman on the held-out fifth."""
    pairs = [ln.split("\t") for ln in PBM.read_text().splitlines()]
    with tempfile.TemporaryDirectory() as tmp:
        train = Path(tmp) / "train.tsv"
        train.write_text("".join(f"{s}\t{v}\n" for k, (v, s) in enumerate(pairs) if k % 5))
        spec = ModelSpec(id="WT1_PBM", protein="WT1", train=str(train),
                         hyper=Hyper(avg_pooling=True, detector_len=16))
        t = time.perf_counter()
        bank = train_bank([spec], DataOptions(), RunOptions(steps=steps, seed=seed), device)
        wall = time.perf_counter() - t
    held = [(s.strip(), float(v)) for k, (v, s) in enumerate(pairs) if k % 5 == 0]
    codes = encode_all([s for s, _ in held], "WT1 held-out probes")
    y = [v for _, v in held]
    pred = bank_scores(bank, codes, ScoreOptions(), device)[:, 0]
    print(f"WT1 PBM regression ({len(pairs) - len(held)} training probes, {len(held)} held out; {wall:.1f} s "
          f"on {device}): Pearson {pearson(y, pred):.4f}, Spearman {spearman(y, pred):.4f}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--steps", type=int, default=RunOptions.steps)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--encode", type=Path, default=ENCODE)
    args = ap.parse_args()
    device = torch.device(args.device)
    with open(args.encode / "paper_aucs.tsv") as fh:
        paper = list(csv.DictReader(fh, delimiter="\t"))
    specs = [ModelSpec(id=r["dataset"], protein=r["dataset"].split("_")[0],
                       train=str(args.encode / f"{r['dataset']}_AC.seq.gz"), rows="1:500", hyper=Hyper())
             for r in paper]
    t = time.perf_counter()
    bank = train_bank(specs, DataOptions(), RunOptions(steps=args.steps, seed=args.seed), device)
    wall = time.perf_counter() - t
    print(f"trained {len(bank)} models as one bank in {wall:.1f} s on {device} ({args.steps} steps)")
    print("dataset\tpaper_A\tpaper_AC\tpublished\tours\tchosen_step")
    for j, r in enumerate(paper):
        test = read_dataset(str(args.encode / f"{r['dataset']}_B.seq.gz"))
        codes = encode_all(test.sequences, r["dataset"])
        ours = auc(test.targets, bank_scores(bank.subset([j]), codes, ScoreOptions(), device)[:, 0])
        published = BankEngine(open_selected(None, [r["published_model_id"]]), device)
        pub = auc(test.targets, score_codes(published, codes, ScoreOptions())[:, 0])
        print(f"{r['dataset']}\t{float(r['paper_auc_trained_on_A']):.4f}\t{float(r['paper_auc_trained_on_AC']):.4f}"
              f"\t{pub:.4f}\t{ours:.4f}\t{bank.models[j].info.provenance['chosen_step']}")
    pbm_regression(args.steps, args.seed, device)


if __name__ == "__main__":
    main()
