"""`dbtools evaluate`: per-model metrics of a bank on labelled data, scored as `dbtools score` does."""

from __future__ import annotations

from dataclasses import replace
from typing import TextIO

import numpy as np
import torch

from dbtools.bank.store import Bank
from dbtools.train.datasets import read_dataset
from dbtools.io.encode import encode_all
from dbtools.engine.bank_engine import BankEngine
from dbtools.metrics import auc, auprc, pearson, spearman
from dbtools.engine.options import ScoreOptions
from dbtools.score import score_codes
from dbtools.bank.selection import open_selected

COLUMNS = ("model", "protein", "data", "n", "positives", "auc", "auprc", "pearson", "spearman")


def bank_scores(bank: Bank, codes: list[np.ndarray], options: ScoreOptions,
                device: torch.device | str = "cpu") -> np.ndarray:
    """[N, M] scores; without `options.window_size`, a model that records its training length
    scores windows of that length (a trained model sees what it was trained on), the others
    use `dbtools score`'s default."""
    by_window: dict[int | None, list[int]] = {}
    for j, m in enumerate(bank.models):
        w = options.window_size if options.window_size is not None else m.info.train_length
        by_window.setdefault(w, []).append(j)
    scores = np.empty((len(codes), len(bank)), dtype=np.float32)
    for w, cols in by_window.items():
        scores[:, cols] = score_codes(BankEngine(bank.subset(cols), device), codes, replace(options, window_size=w))
    return scores


def evaluate(data_paths: list[str], out: TextIO, *, bank: str | None, models: list[str] | None,
             options: ScoreOptions, fmt: str = "auto", rows: str | None = None, seed: int = 0,
             device: torch.device | str = "cpu") -> list[dict]:
    """Score every data file with every selected model and write one TSV row per pair.

    Models that record a training sequence length are scored on windows of that length
    unless `options.window_size` is set. Classification data gets AUC and AUPRC (positives-only
    files get one dinucleotide shuffle per positive as negatives, with `seed`, as the paper's
    test sets have); regression data gets Pearson and Spearman correlations.
    """
    selected = open_selected(bank, models)
    out.write("\t".join(COLUMNS) + "\n")
    results = []
    for path in data_paths:
        ds = read_dataset(path, fmt=fmt, rows=rows, seed=seed, shuffles=1)
        codes = encode_all(ds.sequences, path)
        scores = bank_scores(selected, codes, options, device)
        for j, model in enumerate(selected.models):
            s = scores[:, j]
            row = {"model": model.info.id, "protein": model.info.protein, "data": path, "n": len(ds),
                   "positives": int((ds.targets == 1).sum()) if ds.task == "classification" else ""}
            if ds.task == "classification":
                row |= {"auc": auc(ds.targets, s), "auprc": auprc(ds.targets, s), "pearson": "", "spearman": ""}
            else:
                row |= {"auc": "", "auprc": "", "pearson": pearson(ds.targets, s), "spearman": spearman(ds.targets, s)}
            results.append(row)
            out.write("\t".join(_cell(row[c]) for c in COLUMNS) + "\n")
    return results


def _cell(value) -> str:
    """A TSV cell: metrics with 4 decimals, NA where a metric is undefined (constant scores)."""
    if isinstance(value, float):
        return f"{value:.4f}" if np.isfinite(value) else "NA"
    return str(value)
