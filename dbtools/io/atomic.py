"""Outputs appear complete or not at all: write under a temporary name, rename when done."""

from __future__ import annotations

import os
import shutil
import tempfile
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from dbtools.errors import DbtoolsError


_umask_lock = threading.Lock()


def _umask() -> int:
    """The process's umask (reading it means setting it: a lock, as tracks are written in threads)."""
    with _umask_lock:
        mask = os.umask(0)
        os.umask(mask)
    return mask


def check_writable(path: str | os.PathLike) -> Path:
    """Fail early, with one line, when `path` is a folder or its folder does not exist or cannot be
    written (commands call it before any work, so a bad `-o` costs nothing)."""
    path = Path(path)
    if path.is_dir():
        raise DbtoolsError(f"{path}: cannot write: it is a folder (give a file name)")
    folder = path.parent if str(path.parent) else Path(".")
    if not folder.is_dir():
        raise DbtoolsError(f"{path}: cannot write: folder {folder} does not exist")
    if not os.access(folder, os.W_OK):
        raise DbtoolsError(f"{path}: cannot write: folder {folder} is not writable")
    return path


def output_folder(path: str | os.PathLike, create: bool = True) -> Path:
    """Create an output folder if needed; a folder that cannot be made or written is one clear error.
    With create=False only check, so a run that fails later on its inputs leaves no empty folder."""
    folder = Path(path)
    if folder.exists() and not folder.is_dir():
        raise DbtoolsError(f"{path}: output folder is a file, not a folder")
    if not create and not folder.exists():
        parent = next((p for p in folder.absolute().parents if p.exists()), None)
        if parent is None or not parent.is_dir() or not os.access(parent, os.W_OK | os.X_OK):
            raise DbtoolsError(f"{path}: cannot create the output folder ({parent} is not a writable folder)")
        return folder
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise DbtoolsError(f"{path}: cannot create the output folder ({e.strerror or e})") from None
    if not os.access(folder, os.W_OK | os.X_OK):
        raise DbtoolsError(f"{path}: output folder is not writable")
    return folder


@contextmanager
def staged_folder(folder: str | os.PathLike) -> Iterator[Path]:
    """Yield a hidden folder inside `folder` for a command's output files; when the block ends
    without error they are moved into `folder`, on any error (or Ctrl-C) removed, so a failed
    run leaves none of its files behind."""
    folder = Path(folder)
    stage = Path(tempfile.mkdtemp(prefix=f".dbtools-{os.getpid()}-", dir=folder))
    try:
        yield stage
        for path in sorted(stage.iterdir()):
            os.replace(path, folder / path.name)
    finally:
        shutil.rmtree(stage, ignore_errors=True)


@contextmanager
def atomic_path(path: str | os.PathLike, suffix: str = "") -> Iterator[Path]:
    """Yield a temporary path beside `path`; on success it is renamed to `path`, on any
    error (or Ctrl-C) it is removed, so a half-written file never carries the final name.

    `suffix` keeps an extension the writer needs to see (e.g. ".vcf.gz"). The file gets
    the usual permissions (0666 less the umask), not the 0600 of temporary files.
    """
    path = check_writable(path)
    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}{suffix}")
    try:
        yield tmp
        if tmp.exists():
            os.chmod(tmp, 0o666 & ~_umask())
            os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()
