"""Selection rules of `dbtools calibrate` compared on one saved calibration of the ENCODE sets.

Reads what `benchmarks/calibrate_encode.py --protocol a --method dbtools --save DIR` wrote (every
trial's per-fold curves, the defaults candidates among them; its random trials are those of
`--method deepbind` to the number), chooses again by each rule, trains each rule's final models
and prints their AUC on the held-out peaks of fold C (rows 501:1000, which protocol (a) never
sees: the set to decide on) and on the test sets B. Rules whose choices equal an earlier rule's
are not trained again. The saved bank is the `dbtools` protocol's (the one-standard-error rule).

    python benchmarks/calibrate_rules.py DIR [--rules deepbind,deepbind-choice,best-auc,best-loss,two-se]
"""

from __future__ import annotations

import argparse
import copy
import csv
import sys
import time
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from calibrate_encode import ENCODE, b_aucs, held_out_aucs  # noqa: E402
from dbtools.bank.store import load_bank  # noqa: E402
from dbtools.train.calibrate import final_models, one_se_rule, read_json  # noqa: E402

RULES = {
    "deepbind": "the original: lowest mean CV loss over the random trials; final: 6 seeds on all rows, lowest "
                "training loss",
    "deepbind-choice": "deepbind's choice, final models as dbtools train trains them (held-out rows choose)",
    "best-loss": "lowest mean CV loss over all trials, the defaults candidates included; final as dbtools train",
    "best-auc": "highest mean CV AUC over all trials, the defaults candidates included (no margin); final as "
                "dbtools train",
    "two-se": "a random trial only if it beats the defaults by more than two standard errors; final as dbtools "
              "train",
}


def _auc_array(entry: dict) -> np.ndarray:
    """[trials, checkpoints, folds] CV AUC (undefined: chance)."""
    return np.nan_to_num(np.array([[f["val_metric"] for f in t["folds"]] for t in entry["trials"]], dtype=float),
                         nan=0.5).transpose(0, 2, 1)


def choose(rule: str, entry: dict) -> tuple[int, int]:
    """(trial, checkpoint) that `rule` picks in a `dbtools` calibration entry."""
    n = entry["defaults_trials"]
    loss = np.array([t["mean_val_loss"] for t in entry["trials"]])
    auc = _auc_array(entry)
    if rule in ("deepbind", "deepbind-choice"):
        t, c = np.unravel_index(np.argmin(loss[n:]), loss[n:].shape)
        return n + int(t), int(c)
    if rule == "best-loss":
        t, c = np.unravel_index(np.argmin(loss), loss.shape)
        return int(t), int(c)
    means = auc.mean(axis=2)
    if rule == "best-auc":
        t = int(np.argmax(means.max(axis=1)))
        return t, int(np.argmax(means[t]))
    if rule == "two-se":
        out = one_se_rule(auc, n)
        if out["challenger"] is not None and out["difference"] > 2 * out["difference_se"]:
            return out["challenger"]
        return out["defaults"]
    raise ValueError(rule)


def rule_doc(doc: dict, rule: str) -> tuple[dict, list[str]]:
    """A copy of `doc` whose choices are the rule's (a `deepbind` document for rule `deepbind`)."""
    new = copy.deepcopy(doc)
    labels = []
    for entry in new["proteins"]:
        n = entry["defaults_trials"]
        t, c = choose(rule, entry)
        trial = entry["trials"][t]
        entry["choice"] = {"trial": t, "step": trial["checkpoints"][c], "cv_loss": trial["mean_val_loss"][c],
                           "cv_metric": trial["mean_val_metric"][c], "candidate": "defaults" if t < n else "random",
                           "hyperparameters": entry["hyperparameters"][t]}
        labels.append("defaults" if t < n else f"{t}@{trial['checkpoints'][c]}")
        if rule == "deepbind":
            entry["choice"]["trial"] = t - n
            entry["choice"].pop("candidate")
    if rule == "deepbind":
        new["protocol"] = {k: v for k, v in new["protocol"].items() if k != "name"}
    return new, labels


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("saved", type=Path, help="the --save folder of calibrate_encode.py (protocol a, method dbtools)")
    ap.add_argument("--rules", default=",".join(RULES), help=f"comma-separated, of: {', '.join(RULES)}")
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--encode", type=Path, default=ENCODE)
    args = ap.parse_args()
    device = torch.device(args.device)
    doc = read_json(args.saved / "calibration_a.json")
    if doc["protocol"].get("name") != "dbtools":
        ap.error(f"{args.saved}: not a calibration of the dbtools protocol")
    with open(args.encode / "paper_aucs.tsv") as fh:
        paper = [r for r in csv.DictReader(fh, delimiter="\t") if r["dataset"] in [e["id"] for e in doc["proteins"]]]
    names = [r["dataset"].split("_")[0] for r in paper]
    print(f"calibration {args.saved}: seed {doc['protocol']['seed']}, {doc['protocol']['trials']} random trials, "
          f"{doc['protocol']['folds']} folds, {doc['protocol']['steps']} steps")
    print("rule\twhere\t" + "\t".join(names) + "\tmean\tchoices\tfinal wall")
    one_se = load_bank(args.saved / "final_a.bank")
    labels = ["defaults" if e["choice"]["candidate"] == "defaults" else f"{e['choice']['trial']}@{e['choice']['step']}"
              for e in doc["proteins"]]
    seen = {("dbtools", tuple(labels)): "one-se"}
    _print("one-se", one_se, labels, paper, args, device, "saved")
    for rule in filter(None, args.rules.split(",")):
        if rule not in RULES:
            ap.error(f"--rules: unknown rule {rule!r}")
        new, labels = rule_doc(doc, rule)
        key = ("deepbind" if rule == "deepbind" else "dbtools", tuple(labels))
        if key in seen:
            print(f"{rule}\t(the choices of {seen[key]}: {' '.join(labels)})")
            continue
        seen[key] = rule
        t = time.perf_counter()
        bank = final_models(new, device)
        _print(rule, bank, labels, paper, args, device, f"{time.perf_counter() - t:.0f} s")
    for rule, text in RULES.items():
        print(f"# {rule}: {text}")


def _print(rule: str, bank, labels: list[str], paper: list[dict], args, device, wall: str) -> None:
    for where, aucs in (("C", held_out_aucs(bank, paper, args, device)), ("B", b_aucs(bank, paper, args, device))):
        print(f"{rule}\t{where}\t" + "\t".join(f"{a:.4f}" for a in aucs) + f"\t{np.mean(aucs):.4f}\t"
              f"{' '.join(labels)}\t{wall}", flush=True)


if __name__ == "__main__":
    main()
