"""Fidelity of `dbtools calibrate` on the DeepBind paper's ENCODE sets.

Calibrates and trains the 5 ENCODE ChIP-seq sets of ../shared/data/encode in ONE run, either
(a) on fold A (first 500 peaks) plus dinucleotide-shuffled negatives, the paper's "DeepBind"
protocol, or (b) on all of AC, the paper's "DeepBind*"; then prints, per set, the AUC on its
test set B next to the paper's figures and the published model's AUC, with wall time and device.
Every model scores each whole 101-bp test sequence, as the paper's evaluation did (ours do so by
default, since they record their training length; the published models are told to).
`--defaults` also trains the same sets with the defaults of `dbtools train` (the same seed) in the
same run: the baseline a calibration must not lose to, with both wall times and their ratio.

    python benchmarks/calibrate_encode.py --protocol a [--method dbtools|deepbind] [--defaults --held-out]
"""

from __future__ import annotations

import argparse
import csv
import sys
import time
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from dbtools.bank.store import load_bank, save_bank  # noqa: E402
from dbtools.train.calibrate import Protocol, calibrate, final_models, read_json, write_json  # noqa: E402
from dbtools.train.datasets import read_dataset  # noqa: E402
from dbtools.io.encode import encode_all  # noqa: E402
from dbtools.evaluate import bank_scores  # noqa: E402
from dbtools.metrics import auc, auc_delong  # noqa: E402
from dbtools.score import ScoreOptions  # noqa: E402
from dbtools.bank.selection import open_selected  # noqa: E402
from dbtools.train.bank_training import DataOptions, ModelSpec, RunOptions, train_bank  # noqa: E402
from dbtools.train.hyper import Hyper  # noqa: E402

ENCODE = ROOT.parent / "shared" / "data" / "encode"


class Progress:
    """Prints the run, step and elapsed time to stderr at a run's start and every `every` seconds."""

    def __init__(self, start: float, every: float):
        self.start, self.every, self.label, self.last = start, every, None, 0.0

    def __call__(self, label: str, step: int, steps: int, loss) -> None:
        now = time.perf_counter()
        if label != self.label or now - self.last >= self.every:
            self.label, self.last = label, now
            print(f"[{now - self.start:7.1f} s] {label}: step {step} of {steps}", file=sys.stderr, flush=True)


def run(args, specs: list[ModelSpec], protocol: Protocol, device: torch.device):
    """Calibrate and train the final models, timed; save them if asked."""
    t = time.perf_counter()
    state = (lambda name: args.state / name) if args.state else (lambda name: None)
    progress = Progress(t, args.progress_every) if args.progress_every else None
    doc = calibrate(specs, DataOptions(), protocol, device, progress, state_folder=state(f"calibration_{args.protocol}"),
                    resume=args.resume, command=" ".join(sys.argv))
    t_cal = time.perf_counter() - t
    bank = final_models(doc, device, progress, state_folder=state(f"final_{args.protocol}"), resume=args.resume)
    wall = time.perf_counter() - t
    if args.save:
        args.save.mkdir(parents=True, exist_ok=True)
        write_json(doc, args.save / f"calibration_{args.protocol}.json")
        save_bank(bank, args.save / f"final_{args.protocol}.bank")
    n_trials = len(doc["proteins"][0]["trials"])
    print(f"protocol ({args.protocol}, {args.method}): {len(specs)} proteins x {n_trials} trials x {args.folds} folds, "
          f"then the final models; {args.max_steps} steps; calibration {t_cal:.0f} s, total {wall:.0f} s on {device}")
    return doc, bank, wall


def held_out_aucs(bank, paper: list[dict], args, device: torch.device) -> list[float]:
    """Each model's AUC on rows 501:1000 of its AC file (fold C's strongest peaks), one shuffle each."""
    held = []
    for j, r in enumerate(paper):
        c_set = read_dataset(str(args.encode / f"{r['dataset']}_AC.seq.gz"), rows="501:1000", shuffles=1, seed=7)
        codes = encode_all(c_set.sequences, r["dataset"])
        held.append(auc(c_set.targets, bank_scores(bank.subset([j]), codes, ScoreOptions(), device)[:, 0]))
    return held


def b_aucs(bank, paper: list[dict], args, device: torch.device) -> list[float]:
    """Each model's AUC on its test set B."""
    out = []
    for j, r in enumerate(paper):
        test = read_dataset(str(args.encode / f"{r['dataset']}_B.seq.gz"))
        out.append(auc(test.targets, bank_scores(bank.subset([j]), encode_all(test.sequences, r["dataset"]),
                                                 ScoreOptions(), device)[:, 0]))
    return out


def against_defaults(args, specs: list[ModelSpec], paper: list[dict], bank, wall: float | None,
                     device: torch.device) -> None:
    """Train the defaults of `dbtools train` (same seed, same run) and print both banks' AUCs on B
    (and on held-out C with --held-out), with the wall-time ratio."""
    t = time.perf_counter()
    defaults = train_bank(specs, DataOptions(), RunOptions(seed=args.seed, steps=args.max_steps), device)
    t_def = time.perf_counter() - t
    names = [r["dataset"].split("_")[0] for r in paper]
    rows = [("B", b_aucs(bank, paper, args, device), b_aucs(defaults, paper, args, device))]
    if args.held_out:
        rows.append(("held-out C", held_out_aucs(bank, paper, args, device), held_out_aucs(defaults, paper, args, device)))
    for label, ours, base in rows:
        print(f"{label}: calibrate - defaults: " + " ".join(f"{n} {o:.4f}-{b:.4f}={o - b:+.4f}"
                                                           for n, o, b in zip(names, ours, base))
              + f"; mean {np.mean(ours):.4f} - {np.mean(base):.4f} = {np.mean(ours) - np.mean(base):+.4f}")
    if wall is not None:
        print(f"defaults (dbtools train, seed {args.seed}): {t_def:.0f} s; calibration / defaults wall time "
              f"{wall / t_def:.2f}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--protocol", choices=("a", "b"), default="a", help="a: fold A (rows 1:500); b: all of AC")
    ap.add_argument("--max-steps", type=int, default=Protocol.steps)
    ap.add_argument("--checkpoint-every", type=int, default=Protocol.checkpoint_every)
    ap.add_argument("--trials", type=int, default=Protocol.trials)
    ap.add_argument("--folds", type=int, default=Protocol.folds)
    ap.add_argument("--final-trials", type=int, default=Protocol.final_trials)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--method", choices=("dbtools", "deepbind"), default=Protocol.name,
                    help="the calibration protocol (`dbtools calibrate --protocol`)")
    ap.add_argument("--defaults", action="store_true", help="also train the defaults of dbtools train (same seed) "
                    "and print both banks' AUCs and the difference")
    ap.add_argument("--detector-lens", default=",".join(map(str, Protocol.detector_lens)),
                    help="detector lengths shared out among the trials, e.g. 10,16 (default: the protocol's)")
    ap.add_argument("--sets", default="", help="only these sets, by name prefix, comma-separated (e.g. ARID3A,CTCFL); "
                    "trials and folds are drawn by a set's place in the run, so only leading sets draw as in a full run")
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--progress-every", type=float, default=0, metavar="SECONDS",
                    help="print the run and step to stderr this often (default: never)")
    ap.add_argument("--encode", type=Path, default=ENCODE)
    ap.add_argument("--save", type=Path, help="write the calibration (JSON) and the final bank to this folder")
    ap.add_argument("--state", type=Path, help="keep resumable training state in this folder (saved at every "
                    "checkpoint), so a long run can be continued with --resume")
    ap.add_argument("--resume", action="store_true", help="continue from the state in --state")
    ap.add_argument("--held-out", action="store_true", help="protocol (a): also the AUC on rows 501:1000 of AC (the "
                    "strongest 500 peaks of fold C, which (a) never sees) with one dinucleotide shuffle each: a "
                    "set for choosing settings that is not the test set B")
    ap.add_argument("--evaluate", type=Path, help="train nothing: score the calibration and bank that --save wrote "
                    "to this folder")
    args = ap.parse_args()
    device = torch.device(args.device)
    with open(args.encode / "paper_aucs.tsv") as fh:
        paper = list(csv.DictReader(fh, delimiter="\t"))
    if args.sets:
        paper = [r for r in paper if r["dataset"].startswith(tuple(args.sets.split(",")))]
        if not paper:
            ap.error(f"--sets {args.sets}: no such set in {args.encode}")
    rows = "1:500" if args.protocol == "a" else None
    specs = [ModelSpec(id=r["dataset"], protein=r["dataset"].split("_")[0],
                       train=str(args.encode / f"{r['dataset']}_AC.seq.gz"), rows=rows, hyper=Hyper())
             for r in paper]
    if args.held_out and args.protocol != "a":
        ap.error("--held-out: only protocol (a) leaves fold C unseen")
    if args.resume and args.state is None:
        ap.error("--resume needs --state")
    protocol = Protocol(trials=args.trials, folds=args.folds, final_trials=args.final_trials, steps=args.max_steps,
                        checkpoint_every=args.checkpoint_every, seed=args.seed, name=args.method,
                        detector_lens=tuple(int(v) for v in args.detector_lens.split(",") if v))
    if args.evaluate:
        doc = read_json(args.evaluate / f"calibration_{args.protocol}.json")
        bank = load_bank(args.evaluate / f"final_{args.protocol}.bank")
        if [p["id"] for p in doc["proteins"]] != [s.id for s in specs]:
            ap.error(f"--evaluate {args.evaluate}: its proteins are not the sets asked for (see --sets)")
        print(f"protocol ({args.protocol}): evaluating {args.evaluate}, {doc['protocol']['steps']} steps, "
              f"seed {doc['protocol']['seed']}")
        wall = None
    else:
        doc, bank, wall = run(args, specs, protocol, device)
    key = "paper_auc_trained_on_A" if args.protocol == "a" else "paper_auc_trained_on_AC"
    print(f"dataset\tpaper_A\tpaper_AC\tpublished_whole\tours\tours_se\tcv_auc\ttrial\thidden\tsteps\tchosen")
    ours_all, paper_all, pub_all, covs = [], [], [], []
    for j, r in enumerate(paper):
        test = read_dataset(str(args.encode / f"{r['dataset']}_B.seq.gz"))
        codes = encode_all(test.sequences, r["dataset"])
        mine = bank_scores(bank.subset([j]), codes, ScoreOptions(), device)[:, 0]
        whole = ScoreOptions(window_size=max(len(c) for c in codes))
        published = bank_scores(open_selected(None, [r["published_model_id"]]), codes, whole, device)[:, 0]
        (ours, pub), cov = auc_delong(test.targets, np.stack([mine, published]))
        c = doc["proteins"][j]["choice"]
        ours_all.append(ours)
        pub_all.append(pub)
        covs.append(cov)
        paper_all.append(float(r[key]))
        print(f"{r['dataset']}\t{float(r['paper_auc_trained_on_A']):.4f}\t{float(r['paper_auc_trained_on_AC']):.4f}"
              f"\t{pub:.4f}\t{ours:.4f}\t{np.sqrt(cov[0, 0]):.4f}\t{c['cv_metric']:.4f}\t{c['trial']}"
              f"\t{c['hyperparameters']['num_hidden']}\t{c['step']}\t{c.get('candidate', 'random')}")
    if args.held_out:
        held = held_out_aucs(bank, paper, args, device)
        print("held-out C (rows 501:1000 + 1 shuffle each): " + " ".join(f"{r['dataset'].split('_')[0]} {a:.4f}"
              for r, a in zip(paper, held)) + f" mean {np.mean(held):.4f}")
    at_or_above = sum(o >= p for o, p in zip(ours_all, paper_all))
    print(f"mean: ours {np.mean(ours_all):.4f}, paper ({key}) {np.mean(paper_all):.4f}, published models "
          f"{np.mean(pub_all):.4f}; "
          f"at or above the paper on {at_or_above} of {len(paper_all)}")
    # the test sets are independent, so the variance of a mean over sets is the sum of theirs / k^2
    k = len(covs)
    se_mean = np.sqrt(sum(c[0, 0] for c in covs)) / k
    se_diff = np.sqrt(sum(c[0, 0] + c[1, 1] - 2 * c[0, 1] for c in covs)) / k
    print(f"standard errors (DeLong, over the test sets): ours {np.mean(ours_all):.4f} +- {se_mean:.4f}, "
          f"{(np.mean(ours_all) - np.mean(paper_all)) / se_mean:+.2f} SE from the paper's mean; "
          f"ours - published models {np.mean(ours_all) - np.mean(pub_all):+.4f} +- {se_diff:.4f} (paired)")
    if args.defaults:
        against_defaults(args, specs, paper, bank, wall, device)


if __name__ == "__main__":
    main()
