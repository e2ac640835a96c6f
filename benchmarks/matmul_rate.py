"""The float32 matmul rate that the benchmarks' FLOP bounds divide by, measured in their own run."""

from __future__ import annotations

import time
from collections.abc import Callable

import torch


def matmul_gflops(clock: Callable[[], float] = time.perf_counter, n: int = 2048) -> float:
    """GFLOP/s of an n x n float32 matmul on the CPU: the best of three, timed with `clock`."""
    a, b = torch.randn(n, n), torch.randn(n, n)
    a @ b
    best = float("inf")
    for _ in range(3):
        t = clock()
        a @ b
        best = min(best, clock() - t)
    return 2 * n**3 / best / 1e9
