"""How many CPU threads a command uses, and independent steps of a batched pass run side by side on them.

One policy for every command: threads = `--threads N`, else the CPUs this process may run on
(`os.sched_getaffinity`, which Slurm and taskset set), never the machine's core count. Batched
passes are many small tensor operations; one operation split over cores spends much of its time
synchronising them, and when another process holds one of the cores every split operation waits
for it (a run measured 3-8x slower). So on the CPU each worker thread runs whole steps of its own
with torch's intra-op threads at 1 meanwhile (torch and our C kernels release the GIL), and a
step that itself asks for parallel steps runs them in order: threads never nest.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from typing import TypeVar

import torch

T = TypeVar("T")

_command_threads: int | None = None  # set by use_threads: a command's --threads
_lock = threading.Lock()  # torch's thread count is process-wide: one pass at a time sets it
_in_step = threading.local()


def cpu_count(requested: int | None = None) -> int:
    """Threads to use: `requested`, else the command's --threads (`use_threads`), else the CPUs this
    process may run on (a Slurm allocation or taskset, as os.sched_getaffinity reports them), fewer
    if torch's thread count was set lower (OMP_NUM_THREADS, or a command's torch.set_num_threads)."""
    return requested or _command_threads or min(len(os.sched_getaffinity(0)), torch.get_num_threads())


def use_threads(requested: int | None) -> int:
    """A command's thread count (--threads, else the CPUs it may use): every later pool and torch's
    intra-op threads (for large operations such as training's, outside parallel steps) take it."""
    global _command_threads
    _command_threads = requested or len(os.sched_getaffinity(0))
    torch.set_num_threads(_command_threads)
    return _command_threads


def parallel_steps(run: Callable[[T], None], steps: Sequence[T], device: torch.device,
                   threads: int | None = None) -> None:
    """Call run(step) for every step. On a GPU in order; on the CPU on min(cpu_count(threads),
    steps) worker threads (one: in order in the caller's thread), torch's intra-op threads at 1
    throughout. Called from inside a step, the steps run in order there (no nested pools).
    Results are identical either way: every step writes its own slice of the output."""
    if device.type != "cpu" or getattr(_in_step, "active", False):
        for step in steps:
            run(step)
        return
    workers = min(cpu_count(threads), len(steps))
    inference, grad = torch.is_inference_mode_enabled(), torch.is_grad_enabled()

    def worker(step: T) -> None:  # autograd modes are per thread: the caller's apply
        _in_step.active = True
        try:
            with torch.inference_mode(inference), torch.set_grad_enabled(grad):
                run(step)
        finally:
            _in_step.active = False

    with _lock:
        n = torch.get_num_threads()
        torch.set_num_threads(1)
        try:
            if workers <= 1:
                for step in steps:
                    worker(step)
            else:
                with ThreadPoolExecutor(workers) as pool:
                    for _ in pool.map(worker, steps):
                        pass
        finally:
            torch.set_num_threads(n)


@contextmanager
def small_ops(device: torch.device) -> Iterator[None]:
    """A pass of many small torch operations (a training loop) on the CPU: torch's intra-op threads
    at 1 meanwhile, while parallel steps inside keep the command's threads. Split over cores, each
    small operation waits for all of them: on a shared 2-core machine a calibration took 8x longer."""
    global _command_threads
    if device.type != "cpu":
        yield
        return
    saved, n = _command_threads, torch.get_num_threads()
    _command_threads = cpu_count()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(n)
        _command_threads = saved
