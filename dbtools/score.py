"""`dbtools score`: the original DeepBind scorer's semantics, batched over sequences and models."""

from __future__ import annotations

import enum
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from itertools import islice
from typing import TextIO

import numpy as np
import torch

from dbtools.io.encode import encode
from dbtools.engine.bank_engine import BankEngine
from dbtools.engine.options import ScoreOptions
from dbtools.bank.selection import open_selected
from dbtools.bank.store import Bank
from dbtools.errors import UsageError
from dbtools.io.sequences import read_sequences
from dbtools.significance.lookup import background_tables
from dbtools.significance.tables import Tables, log10_pvalues


class Values(enum.StrEnum):
    """What `dbtools score` prints per model: the score, its p-value, or -log10 of the p-value."""

    SCORE = "score"
    PVALUE = "pvalue"
    LOG10P = "log10p"


def score_codes(engine: BankEngine, codes: list[np.ndarray], options: ScoreOptions,
                batch_size: int = 256) -> np.ndarray:
    """Score encoded sequences of any lengths with every model of `engine`.

    Sequences are bucketed by exact length (never padded: padding changes scores).

    Parameters
    ----------
    engine : the compiled bank
    codes : N arrays of base codes (`io.encode`), any lengths
    options : scoring window, average, class probability
    batch_size : sequences per engine call

    Returns
    -------
    [N, M] float32 scores, rows in input order
    """
    out = np.empty((len(codes), len(engine)), dtype=np.float32)
    by_len: dict[int, list[int]] = {}
    for i, c in enumerate(codes):
        by_len.setdefault(len(c), []).append(i)
    for idx in by_len.values():
        for b0 in range(0, len(idx), batch_size):
            rows = idx[b0:b0 + batch_size]
            batch = torch.from_numpy(np.stack([codes[i] for i in rows]))
            s = engine.score(batch, options.window_size, options.average)
            if options.class_prob:
                s = torch.sigmoid(s)
            out[rows] = s.cpu().numpy()
    return out


def score_records(engine: BankEngine, records: Iterable[tuple[str, str, bool]], options: ScoreOptions,
                  chunk: int = 4096, batch_size: int = 256) -> Iterator[tuple[list, np.ndarray]]:
    """Stream (records, scores) chunk by chunk so memory stays bounded for any input size."""
    it = iter(records)
    while block := list(islice(it, chunk)):
        codes = [encode(seq, name) for name, seq, _ in block]
        yield block, score_codes(engine, codes, options, batch_size)


@dataclass
class ScoreSummary:
    sequences: int
    models: int


def score(sequences: str, out: TextIO, *, bank: str | None, models: list[str] | None,
          options: ScoreOptions, echo: bool = False, header: bool = True,
          device: torch.device | str = "cpu", batch_size: int = 256,
          progress: Callable[[int], None] | None = None, values: Values = Values.SCORE) -> ScoreSummary:
    """Score every sequence of a file/stdin with the selected models; TSV to `out`.

    The header names the model IDs; with `echo` the first column repeats the input
    (the sequence, or the record name for FASTA input). Scores and -log10 p are printed with
    6 decimals, p-values with 4 significant digits. A p-value is looked up in the model's
    background for windows of the sequence's length, scored under `options`.
    """
    values = Values(values)
    if values is not Values.SCORE and options.class_prob:
        raise UsageError("--class-prob and --pvalue/--log10 exclude each other (a p-value is the same for both)")
    selected = open_selected(bank, models)
    engine = BankEngine(selected, device)
    fmt = "\t".join(["%.4g" if values is Values.PVALUE else "%.6f"] * len(selected))
    tables: dict[int, Tables] = {}
    n = 0
    for block, scores in score_records(engine, read_sequences(sequences), options, batch_size=batch_size):
        if values is not Values.SCORE:
            scores = _significance(scores, block, selected, options, tables, sequences, values)
        if n == 0 and header:
            first = ("name" if block[0][2] else "sequence") if echo else None
            out.write("\t".join(([first] if first else []) + selected.ids) + "\n")
        lines = []
        for (name, seq, fasta), row in zip(block, scores):
            line = fmt % tuple(row.tolist())
            lines.append(f"{name if fasta else seq}\t{line}" if echo else line)
        out.write("\n".join(lines) + "\n")
        n += len(block)
        if progress:
            progress(len(block))
    return ScoreSummary(sequences=n, models=len(selected))


def _significance(scores: np.ndarray, block: list, bank: Bank, options: ScoreOptions, tables: dict[int, Tables],
                  source: str, values: Values) -> np.ndarray:
    """p-values (or -log10 p) of a block's scores, each row against the backgrounds of windows
    of its sequence's length (`tables` caches them by length)."""
    lengths = np.array([len(seq) for _, seq, _ in block])
    out = np.empty(scores.shape, dtype=np.float64)
    for length in np.unique(lengths).tolist():
        rows = np.flatnonzero(lengths == length)
        if length not in tables:
            name = block[rows[0]][0]
            tables[length] = background_tables(bank, options, window=length,
                                               where=f"{source}: sequence {name!r} ({length} bp)")
        logp = log10_pvalues(torch.from_numpy(scores[rows]), tables[length]).double().numpy()
        out[rows] = 10.0 ** logp if values is Values.PVALUE else 0.0 - logp  # no -0.0
    return out
