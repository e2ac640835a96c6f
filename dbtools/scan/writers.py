"""Track files of a scan: written while it scores (one open track per model, fed from a thread
pool), or afterwards from its part store (a few tracks at a time, in worker processes).

While scoring, the scan hands each chunk's window values over and goes on scoring the next chunk
while the pool writes (and compresses) this one, so writing overlaps scoring and the tracks are
written side by side. Each model's values go to its writer in order: a model's next block waits
for its previous one, so at most one chunk per model is held in memory.

From a part store, each track is written by one worker from start to rename. The writer is numpy
and deflate calls that mostly hold the GIL, so threads would take turns: the workers are
processes (forked where the platform allows it, so they start at once and import nothing).
"""

from __future__ import annotations

import multiprocessing
import os
import re
import sys
from concurrent.futures import Executor, Future, ProcessPoolExecutor, ThreadPoolExecutor
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from dbtools.io.tracks import TrackWriter, open_track
from dbtools.scan.parts import PartStore

BLOCK = 1 << 20  # values handed to a writer at a time
TRACK_SUFFIX = {"bigwig": ".bw", "bedgraph": ".bedGraph"}
MAX_OPEN_TRACKS = 32  # more models than this are written from the part store, a few tracks at a time
# worker processes of PartTracks: forked on Linux (they start at once and import nothing), else
# spawned (macOS and Windows, where fork is unsafe or missing)
START_METHOD = "fork" if sys.platform == "linux" else "spawn"


def feed(writer: TrackWriter, chrom: str, first: int, step: int, values) -> None:
    """Values (an array, or a lazy reader that slicing and np.asarray turn into one) into a writer,
    a block at a time, so a whole contig of a part store is never read at once."""
    for k in range(0, len(values), BLOCK):
        writer.add(chrom, first + k * step, step, np.asarray(values[k:k + BLOCK], dtype=np.float32))


def track_path(out_dir: str | os.PathLike, name: str, fmt: str) -> Path:
    return Path(out_dir) / f"{name}{TRACK_SUFFIX[fmt]}"


def track_file_name(model_id: str) -> str:
    """The file name (without extension) of a model's track: the ID with unsafe characters as `_`."""
    return re.sub(r"[^A-Za-z0-9._+-]", "_", model_id)


def track_offset(window: int, step: int) -> int:
    """Where a window's value is written, from its start: the S bases centred on its centre."""
    return (window - step) // 2


def part_runs(store: PartStore, contigs: list[tuple[int, str]], model: int, window: int, step: int):
    """(contig name, first track base, step, values) of one model from a part store, for `contigs`
    ((index in the store, name in the output), in the order given)."""
    for index, name in contigs:
        values = store.values(index, model)
        off = 0
        for first, n in store.layout(index)["segments"].get(str(window), []):
            yield name, first + track_offset(window, step), step, values[off:off + n]
            off += n


@dataclass(frozen=True)
class PartTracks:
    """What writing any model's track from a complete part store takes (picklable, sent once to
    each worker process)."""
    out_dir: str
    fmt: str
    step: int
    header: list[tuple[str, int]]  # the output's contigs (renamed) and lengths, in order
    contigs: list[tuple[int, str]]  # (contig index in the store, output name) of the scanned ones, in order
    ids: list[str]
    windows: list[int]

    def write(self, model: int) -> str:
        """One model's track, renamed into place when complete; its path."""
        store = PartStore(self.out_dir)
        window = self.windows[model]
        path = track_path(self.out_dir, track_file_name(self.ids[model]), self.fmt)
        with open_track(path, self.fmt, self.header) as track:
            for name, first, step, values in part_runs(store, self.contigs, model, window, self.step):
                feed(track, name, first, step, values)
        return str(path)

    def write_all(self, workers: int) -> list[str]:
        """Every model's track, `workers` at a time; their paths in model order."""
        models = range(len(self.ids))
        workers = min(workers, len(self.ids))
        if workers <= 1:
            return [self.write(m) for m in models]
        # the job reaches each worker once, through its initializer (forked workers inherit it)
        with ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context(START_METHOD),
                                 initializer=_receive, initargs=(self,)) as pool:
            return list(pool.map(_write_job, models))


_worker_job: list[PartTracks | None] = [None]  # the job of this worker process


def _receive(job: PartTracks) -> None:
    _worker_job[0] = job


def _write_job(model: int) -> str:
    return _worker_job[0].write(model)


def remove_stale_temporaries(out_dir: str | os.PathLike, files: list[str]) -> list[str]:
    """Temporaries of these output files that a killed run left (`.<file>.tmp<pid>...` of a process
    that is gone) are removed; their names are returned."""
    removed = []
    for name in files:
        for tmp in Path(out_dir).glob(f".{name}.tmp*"):
            pid = tmp.name[len(name) + 5:].split(".")[0]
            if pid.isdigit() and int(pid) != os.getpid() and not _alive(int(pid)):
                tmp.unlink(missing_ok=True)
                removed.append(tmp.name)
    return removed


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


class _CallerThread(Executor):
    """Runs each submitted call at once in the caller's thread."""

    def submit(self, fn, /, *args, **kwargs) -> Future:
        done: Future = Future()
        try:
            done.set_result(fn(*args, **kwargs))
        except BaseException as e:
            done.set_exception(e)
        return done


class OpenTracks:
    """Every model's track open at once, written by `threads` workers while the caller scores.

    Use as a context manager: on normal exit every file is completed (side by side) and renamed
    into place; on an error none is, and their temporaries are removed.
    """

    def __init__(self, paths: list[Path], fmt: str, header: list[tuple[str, int]], threads: int):
        self.paths = paths
        self._files: list[ExitStack] = []
        self._writers: list[TrackWriter] = []
        try:
            for p in paths:
                stack = ExitStack()
                self._files.append(stack)
                self._writers.append(stack.enter_context(open_track(p, fmt, header)))
        except BaseException as e:
            self._abort(e)
            raise
        # one thread allowed (--threads 1, a one-CPU allocation): written in the caller's thread
        self._pool = (ThreadPoolExecutor(max(1, min(threads, len(paths))), thread_name_prefix="tracks")
                      if threads > 1 else _CallerThread())
        self._last: list[Future | None] = [None] * len(paths)

    def __enter__(self) -> OpenTracks:
        return self

    def add(self, model: int, chrom: str, first: int, step: int, values) -> None:
        """Queue values of `model` (values[k] covers [first + k*step, first + (k+1)*step))."""
        prev = self._last[model]
        if prev is not None:
            prev.result()
        self._last[model] = self._pool.submit(feed, self._writers[model], chrom, first, step, values)

    def add_columns(self, models: list[int], chrom: str, first: int, step: int, values: np.ndarray) -> None:
        """Queue values[:, j] of models[j], for every j."""
        cols = np.ascontiguousarray(values.T, dtype=np.float32)
        for j, m in enumerate(models):
            self.add(m, chrom, first, step, cols[j])

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc_type is not None:
            self._pool.shutdown(wait=True, cancel_futures=True)
            self._abort(exc)
            return
        try:
            for f in self._last:
                if f is not None:
                    f.result()
            # each file completed (zoom levels, index) and renamed, side by side
            for f in [self._pool.submit(stack.close) for stack in self._files]:
                f.result()
        except BaseException as e:
            self._pool.shutdown(wait=True, cancel_futures=True)
            self._abort(e)
            raise
        self._pool.shutdown(wait=True)

    def _abort(self, exc: BaseException) -> None:
        """Every file not yet renamed is removed."""
        for stack in self._files:
            try:
                stack.__exit__(type(exc), exc, exc.__traceback__)
            except BaseException:
                pass
