"""Sequence encoding: integer base codes, one-hot with N = 0.25, reverse complement.

Sequences are kept as int8 codes (A=0, C=1, G=2, T/U=3, N and other IUPAC
ambiguity letters=4); PAD=5 marks positions outside a sequence (encoded as all 0).
"""

from __future__ import annotations

import functools
import re

import numpy as np
import torch

from dbtools.errors import DbtoolsError

A, C, G, T, N, PAD = 0, 1, 2, 3, 4, 5
ALPHABET = "ACGT"

_LUT = np.full(256, -1, dtype=np.int8)
for _letters, _code in (("A", A), ("C", C), ("G", G), ("TU", T), ("NRYSWKMBDHV", N)):
    for _ch in _letters:
        _LUT[ord(_ch)] = _code
        _LUT[ord(_ch.lower())] = _code

_INVALID = re.compile("[^" + "".join(chr(c) for c in np.flatnonzero(_LUT >= 0)) + "]")


def first_invalid(text: str) -> int:
    """Index of the first character of `text` that `encode` rejects, or -1 (a check per line, cheap)."""
    m = _INVALID.search(text)
    return m.start() if m else -1


# one-hot rows indexed by code: A, C, G, T, N (0.25 each), PAD (zeros)
ONE_HOT_TABLE = np.array(
    [[1, 0, 0, 0], [0, 1, 0, 0], [0, 0, 1, 0], [0, 0, 0, 1], [0.25] * 4, [0] * 4],
    dtype=np.float32,
)
_COMPLEMENT = np.array([T, G, C, A, N, PAD], dtype=np.int8)


def encode(seq: str | bytes, name: str = "sequence") -> np.ndarray:
    """Encode a DNA/RNA string as int8 codes; any non-IUPAC character is an error naming `name`."""
    raw = seq.encode("ascii", "replace") if isinstance(seq, str) else bytes(seq)
    if not raw:
        raise DbtoolsError(f"{name}: empty sequence")
    codes = _LUT[np.frombuffer(raw, dtype=np.uint8)]
    bad = np.flatnonzero(codes < 0)
    if bad.size:
        i = int(bad[0])
        ch = seq[i] if isinstance(seq, str) else chr(raw[i])
        raise DbtoolsError(f"{name}: invalid character {ch!r} at position {i + 1}")
    return codes


def encode_all(seqs: list[str], source: str) -> list[np.ndarray]:
    """Encode many sequences; an error names `source` and the sequence number (1-based)."""
    return [encode(s, f"{source}: sequence {i + 1}") for i, s in enumerate(seqs)]


def decode(codes: np.ndarray) -> str:
    """Inverse of `encode` up to case and ambiguity letters (which become N)."""
    return "".join("ACGTN-"[c] for c in np.asarray(codes))


def reverse_complement(codes: np.ndarray) -> np.ndarray:
    """Reverse complement of a code array (N stays N)."""
    return _COMPLEMENT[np.asarray(codes)[..., ::-1]]


def kmer_digits(k: int) -> np.ndarray:
    """[5**k, k]: the letter (A, C, G, T, N = 0..4) at each offset of every k-mer index."""
    return (np.arange(5 ** k)[:, None] // 5 ** np.arange(k)[None, :]) % 5


def kmer_index(codes: torch.Tensor, k: int, dim: int = -1) -> torch.Tensor:
    """Index of the k-mer starting at each position along `dim` (letter x 5**offset summed;
    PAD read as N), so a k-mer's response is one row of a [5**k, ...] table (`kmer_digits`)."""
    c = codes.clamp(max=N).long()
    n = c.shape[dim] - k + 1
    out = c.narrow(dim, k - 1, n).clone()
    for r in range(k - 2, -1, -1):  # Horner: ((c[k-1] x 5 + c[k-2]) x 5 + ...)
        out.mul_(5).add_(c.narrow(dim, r, n))
    return out


def one_hot(codes: torch.Tensor) -> torch.Tensor:
    """[..., L] integer codes -> [..., L, 4] float32 (N = 0.25 per channel, PAD = 0)."""
    return _one_hot_table(codes.device)[codes.long()]


@functools.lru_cache(maxsize=None)
def _one_hot_table(device: torch.device) -> torch.Tensor:
    """ONE_HOT_TABLE on a device, copied there once (a copy per call would sync a GPU)."""
    with torch.inference_mode(False):  # a normal tensor, usable under autograd too
        return torch.as_tensor(ONE_HOT_TABLE).to(device)
