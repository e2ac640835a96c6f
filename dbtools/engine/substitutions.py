"""Scores of every single-base substitution of a sequence, from the substitution kernel
(`substitution_kernel.c`, built and loaded as `native` builds the pooling kernel).

A substitution changes a detector's response only at the m filter starts that read it, and only
in the windows that hold it; the kernel updates the wild type's pooled features from those and
scores just the changed windows (see the C source for the method). Model strands are laid out
as the fused pooling kernel's heads (`groups.Strands`, one tile of LANES columns per strand).
"""

from __future__ import annotations

import ctypes
import os
import threading
from pathlib import Path

import torch

from dbtools.engine import native
from dbtools.engine.groups import Strands

SOURCE = Path(__file__).with_name("substitution_kernel.c")

_lock = threading.Lock()
_state: dict = {}


def library():
    """The loaded kernel; None with DBTOOLS_NATIVE=0 or without a working compiler (said once).
    Unlike the pooling kernel it keeps no shift register in registers, so it is used without AVX-512 too."""
    if os.environ.get("DBTOOLS_NATIVE") == "0":
        return None
    with _lock:
        if "lib" not in _state:
            _state["lib"] = native.load(SOURCE, "substitution_kernel", _declare, "substitution kernel")
        return _state["lib"]


def _declare(lib: ctypes.CDLL) -> None:
    fn = lib.dbt_substitution_scores
    fn.restype = ctypes.c_int
    i64, ptr = ctypes.c_int64, ctypes.c_void_p
    fn.argtypes = [ptr, i64, i64, i64, ptr, ptr, i64, i64, i64, i64, i64, ptr, ptr, ptr, ptr, i64, ptr, ptr]


def substitution_scores(x: torch.Tensor, window: int, strands: Strands, avg: bool, average_windows: bool,
                        wild_type: torch.Tensor, mutant: torch.Tensor, u0: int = 0, u1: int | None = None) -> None:
    """Model strands u0..u1-1 of `strands` on one sequence and on each of its substitutions.

    x : [L] uint8 codes (>= 4 is N); window : scoring window, 1 <= window <= L
    avg : the models pool the average too; average_windows : --average (the mean over windows)
    wild_type : [U] float32, strand u's score into wild_type[u]
    mutant : [U, L, 4] float32, strand u's score with base b at i into mutant[u, i, b] (the wild
        type's score at the sequence's own base)
    """
    lib = library()
    L = x.numel()
    m, _, F = strands.centred.shape
    U = F // native.LANES
    u1 = U if u1 is None else u1
    hidden = strands.head.hidden
    assert x.dtype == torch.uint8 and x.is_contiguous() and 1 <= window <= L
    assert wild_type.dtype == torch.float32 and wild_type.is_contiguous() and wild_type.shape == (U,)
    assert mutant.dtype == torch.float32 and mutant.is_contiguous() and mutant.shape == (U, L, 4)
    head = strands.head
    rc = lib.dbt_substitution_scores(
        x.data_ptr(), L, window, m, strands.centred.data_ptr(), strands.const.data_ptr(), F, u0, u1, int(avg),
        hidden, head.w1.data_ptr(), head.b1.data_ptr(), head.w2.data_ptr() if hidden else None,
        head.b2.data_ptr() if hidden else None, int(average_windows), wild_type.data_ptr(), mutant.data_ptr())
    if rc == -1:
        raise MemoryError("the substitution kernel could not allocate its work space")
    if rc != 0:
        raise ValueError(f"the substitution kernel refused m={m}, window={window}, L={L}")
