"""Independent steps of a batched pass run side by side on the CPU's cores.

The bank's steps are many small tensor operations; one operation split over cores spends much
of its time synchronising them, so on the CPU each core instead runs whole steps of its own
(one thread per step, torch's intra-op threads set to 1 meanwhile; torch releases the GIL
inside operations). Results are identical: every step writes its own slice of the output.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import TypeVar

import torch

T = TypeVar("T")


def cpu_count(requested: int | None = None) -> int:
    """Threads to use: `requested` (--threads), else the CPUs this process may run on (a Slurm
    allocation or taskset, as os.sched_getaffinity reports them)."""
    return requested or len(os.sched_getaffinity(0))
_lock = threading.Lock()


def parallel_steps(run: Callable[[T], None], steps: Sequence[T], device: torch.device,
                   threads: int | None = None) -> None:
    """Call run(step) for every step: in order on a GPU or with one CPU thread, else one worker per
    thread. `threads=1` runs the steps in order on one CPU thread (torch's intra-op threads too):
    for passes of many tiny operations, where two threads contend for the interpreter."""
    if device.type == "cpu" and threads == 1:
        with _lock:
            n = torch.get_num_threads()
            torch.set_num_threads(1)
            try:
                for step in steps:
                    run(step)
            finally:
                torch.set_num_threads(n)
        return
    workers = min(threads or torch.get_num_threads(), len(steps))
    if device.type != "cpu" or workers <= 1:
        for step in steps:
            run(step)
        return
    inference, grad = torch.is_inference_mode_enabled(), torch.is_grad_enabled()

    def worker(step: T) -> None:  # autograd modes are per thread: the caller's apply
        with torch.inference_mode(inference), torch.set_grad_enabled(grad):
            run(step)

    with _lock:  # torch's thread count is process-wide
        torch.set_num_threads(1)
        try:
            with ThreadPoolExecutor(workers) as pool:
                for _ in pool.map(worker, steps):
                    pass
        finally:
            torch.set_num_threads(workers)
