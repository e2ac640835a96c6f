"""Track files written while a scan scores: one open track per model, fed from a thread pool.

The scan hands each chunk's window values over and goes on scoring the next chunk while the
pool writes (and compresses) this one, so writing overlaps scoring and the tracks are written
side by side. Each model's values go to its writer in order: a model's next block waits for its
previous one, so at most one chunk per model is held in memory.
"""

from __future__ import annotations

import os
from concurrent.futures import Executor, Future, ThreadPoolExecutor
from contextlib import ExitStack
from pathlib import Path

import numpy as np

from dbtools.io.tracks import TrackWriter, open_track

BLOCK = 1 << 20  # values handed to a writer at a time
TRACK_SUFFIX = {"bigwig": ".bw", "bedgraph": ".bedGraph"}
MAX_OPEN_TRACKS = 32  # more models than this are written from the part store, a few tracks at a time


def feed(writer: TrackWriter, chrom: str, first: int, step: int, values) -> None:
    """Values (an array, or a lazy reader that slicing and np.asarray turn into one) into a writer,
    a block at a time, so a whole contig of a part store is never read at once."""
    for k in range(0, len(values), BLOCK):
        writer.add(chrom, first + k * step, step, np.asarray(values[k:k + BLOCK], dtype=np.float32))


def track_path(out_dir: str | os.PathLike, name: str, fmt: str) -> Path:
    return Path(out_dir) / f"{name}{TRACK_SUFFIX[fmt]}"


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
