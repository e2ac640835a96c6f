"""A slow, independent float64 DeepBind scorer written straight from the paper's description.

Used as the oracle for the batched engine: one model, one window, one strand at a time.
"""

from __future__ import annotations

import numpy as np

CODES = {"A": 0, "C": 1, "G": 2, "T": 3, "U": 3}
COMP = {"A": "T", "C": "G", "G": "C", "T": "A", "U": "A"}


def one_hot(seq: str) -> np.ndarray:
    x = np.full((len(seq), 4), 0.25)
    for i, ch in enumerate(seq.upper()):
        if ch in CODES:
            x[i] = 0
            x[i, CODES[ch]] = 1
    return x


def revcomp(seq: str) -> str:
    return "".join(COMP.get(ch, "N") for ch in reversed(seq.upper()))


def predict(model, seq: str) -> float:
    """One strand of one sequence, padded with m-1 N on each side."""
    a, arch = model.arrays, model.info.arch
    m = arch.detector_len
    W = a["detectors"].astype(np.float64)
    pad = np.full((m - 1, 4), 0.25)
    x = np.concatenate([pad, one_hot(seq), pad])
    conv = np.array([np.einsum("jb,jbd->d", x[i:i + m], W) for i in range(len(x) - m + 1)])
    z = np.maximum(conv + a["thresholds"], 0)
    feats = np.stack([z.max(0), z.mean(0)], 1).ravel() if arch.avg_pooling else z.max(0)
    if arch.num_hidden:
        h = np.maximum(feats @ a["weights1"] + a["biases1"], 0)
        return float(h @ a["weights2"][:, 0] + a["biases2"][0])
    return float(feats @ a["weights1"][:, 0] + a["biases1"][0])


def score(model, seq: str, window_size: int | None = None, average: bool = False) -> float:
    """DeepBind v0.11 semantics: whole if short, else max (or sum / length) over windows."""
    arch = model.info.arch
    w = window_size or int(1.5 * arch.detector_len)
    strands = [seq, revcomp(seq)] if arch.reverse_complement else [seq]
    if len(seq) <= w:
        return max(predict(model, s) for s in strands)
    per_strand = []
    for s in strands:
        vals = [predict(model, s[i:i + w]) for i in range(len(s) - w + 1)]
        per_strand.append(sum(vals) / len(seq) if average else max(vals))
    return max(per_strand)


def brute_force_scores(engine, codes: np.ndarray, options=None) -> np.ndarray:
    """The slow reference for mutation maps: `score_codes` on all 4L single-base variants of
    `codes`: [L, 4, M]."""
    from dbtools.score import ScoreOptions, score_codes

    L = len(codes)
    mutants = np.repeat(np.asarray(codes, dtype=np.int8)[None], 4 * L, 0)
    mutants[np.arange(4 * L), np.repeat(np.arange(L), 4)] = np.tile(np.arange(4), L)
    return score_codes(engine, list(mutants), options or ScoreOptions()).reshape(L, 4, -1)
