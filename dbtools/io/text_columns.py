"""Tab-separated text built from numpy columns, with no Python work per value.

Each column becomes a matrix of ASCII bytes, one row per line, padded with NUL; the columns
are laid side by side with tabs and a newline, and the NULs are dropped. Numbers come out
exactly as Python's "%d" and "%.6f" print them: a float32 times 10**6 is exact in float64 (24 +
14 significant bits), so rounding it half to even is the correctly rounded decimal that "%.6f"
prints.
"""

from __future__ import annotations

import numpy as np

_TAB, _NEWLINE, _ZERO = ord("\t"), ord("\n"), ord("0")
_MAX_FIXED = 1e12  # beyond this |value| (never a DeepBind score) the fixed-point integers could overflow


def int_column(x: np.ndarray) -> np.ndarray:
    """Non-negative integers [n] as right-aligned ASCII digits [n, width] (NUL-padded)."""
    x = np.asarray(x)
    if x.dtype.kind not in "ui":
        x = x.astype(np.int64)
    if x.size and x.min() < 0:
        raise ValueError("int_column takes non-negative integers")
    top = int(x.max()) if x.size else 0
    width = len(str(top))
    q = x.astype(np.uint32 if top < 2 ** 32 else np.uint64)  # 32-bit division is much faster
    out = np.empty((len(x), width), dtype=np.uint8)
    for k in range(width - 1, -1, -1):  # a column of digits at a time
        out[:, k] = q % 10
        q //= 10
    out += _ZERO
    digits = np.ones(len(x), dtype=np.int64)
    for k in range(1, width):
        digits += x >= 10 ** k
    out[np.arange(width) < (width - digits)[:, None]] = 0  # leading zeros are padding
    return out


def fixed_column(v: np.ndarray, decimals: int = 6) -> np.ndarray | None:
    """Finite float32 values [n] as "%.{decimals}f" text [n, width], or None if a value is too
    large for the exact path (the caller then formats those in Python)."""
    v = np.asarray(v, dtype=np.float32).astype(np.float64)
    if v.size and not np.all(np.abs(v) < _MAX_FIXED):
        return None
    scaled = np.rint(np.abs(v) * 10.0 ** decimals)  # exact product, then half to even
    small = not scaled.size or scaled.max() < 2 ** 32
    scaled = scaled.astype(np.uint32 if small else np.uint64)  # 32-bit division is much faster
    frac = np.empty((len(v), decimals), dtype=np.uint8)
    for k in range(decimals - 1, -1, -1):
        frac[:, k] = scaled % 10
        scaled //= 10
    frac += _ZERO
    sign = np.where(np.signbit(v), ord("-"), 0).astype(np.uint8)[:, None]
    point = np.full((len(v), 1), ord("."), dtype=np.uint8)
    return np.hstack([sign, int_column(scaled), point, frac])


def text_column(strings: np.ndarray | list[str]) -> np.ndarray:
    """Strings [n] (ASCII, no NUL) as [n, width] bytes, NUL-padded."""
    a = np.asarray(strings, dtype=np.bytes_)
    width = max(1, a.dtype.itemsize)
    return np.ascontiguousarray(a.astype(f"S{width}")).view(np.uint8).reshape(len(a), width)


def constant_column(text: str, n: int) -> np.ndarray:
    """The same text on n lines."""
    b = np.frombuffer(text.encode(), dtype=np.uint8)
    return np.broadcast_to(b, (n, len(b)))


def lines(*columns: np.ndarray) -> str:
    """Tab-separated lines, one per row of the columns (each [n, width], NUL-padded)."""
    n = columns[0].shape[0]
    if n == 0:
        return ""
    tab = np.full((n, 1), _TAB, dtype=np.uint8)
    parts = []
    for c in columns:
        parts += [c, tab]
    parts[-1] = np.full((n, 1), _NEWLINE, dtype=np.uint8)
    flat = np.hstack(parts).ravel()
    return flat[flat != 0].tobytes().decode("ascii")
