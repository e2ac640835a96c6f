"""Per-chromosome results of a scan, kept in DIR/.dbtools-scan until the tracks are assembled.

A scan writes each chromosome into a temporary folder (one float32 file of window values per
model, and the BED hits) and renames the folder when the chromosome is complete, so a
chromosome folder exists only when it is whole: `--resume` skips those, and shards of one scan
(`--shard i/n`, `--chroms`) fill the same store from independent jobs. `scan.json` records
what the scan computes (models, windows, options, chromosomes); a store written by a
different scan is never mixed in.
"""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import numpy as np

from dbtools.errors import DbtoolsError

STORE = ".dbtools-scan"


class PartStore:
    """The parts folder of one scan in `out_dir`."""

    def __init__(self, out_dir: str | os.PathLike):
        self.out_dir = Path(out_dir)
        self.root = self.out_dir / STORE

    @property
    def signature_path(self) -> Path:
        return self.root / "scan.json"

    def signature(self) -> dict | None:
        """The recorded description of the scan, or None when there is no store."""
        try:
            return json.loads(self.signature_path.read_text())
        except FileNotFoundError:
            return None
        except (OSError, ValueError) as e:
            raise DbtoolsError(f"{self.signature_path}: unreadable scan record ({e}); delete {self.root}") from None

    def start(self, signature: dict, keep_existing: bool) -> None:
        """Open the store for `signature`. A store of another scan is an error when its parts
        must be kept (resume, shards), else it is cleared."""
        old = self.signature()
        if old is not None and old != signature:
            if keep_existing:
                raise DbtoolsError(f"{self.out_dir}: holds the parts of a different scan (other models, "
                                   f"options or regions); use another --out-dir or delete {self.root}")
            shutil.rmtree(self.root)
        self.root.mkdir(parents=True, exist_ok=True)
        if old != signature:
            tmp = self.root / f".scan.json.tmp{os.getpid()}"
            tmp.write_text(json.dumps(signature, indent=1))
            os.replace(tmp, self.signature_path)

    def chrom_dir(self, index: int) -> Path:
        return self.root / f"contig{index:05d}"

    def is_done(self, index: int) -> bool:
        return (self.chrom_dir(index) / "layout.json").is_file()

    @contextmanager
    def writing(self, index: int, n_models: int, with_values: bool) -> Iterator["ChromPart"]:
        """A ChromPart for contig `index`, moved into place only when the block exits normally."""
        tmp = self.root / f".contig{index:05d}.tmp{os.getpid()}"
        if tmp.exists():
            shutil.rmtree(tmp)
        tmp.mkdir()
        part = ChromPart(tmp, n_models, with_values)
        try:
            yield part
            part.close()
            final = self.chrom_dir(index)
            if final.exists():
                shutil.rmtree(final)
            os.replace(tmp, final)
        finally:
            part.close()
            if tmp.exists():
                shutil.rmtree(tmp)

    def layout(self, index: int) -> dict:
        return json.loads((self.chrom_dir(index) / "layout.json").read_text())

    def values(self, index: int, model: int) -> "FloatFile":
        """The window values of one model on one contig (float32, read when sliced into an array)."""
        path = self.chrom_dir(index) / f"model{model:05d}.f32"
        return FloatFile(path, 0, path.stat().st_size // 4)

    def hits_path(self, index: int) -> Path:
        return self.chrom_dir(index) / "hits.bed"

    def remove(self) -> None:
        shutil.rmtree(self.root, ignore_errors=True)


class FloatFile:
    """float32 values [start, start + count) of a raw file, read only when turned into an array
    (np.asarray), so long contigs are assembled a block at a time without mapping whole files."""

    def __init__(self, path: Path, start: int, count: int):
        self.path, self.start, self.count = path, start, count

    def __len__(self) -> int:
        return self.count

    def __getitem__(self, item: slice) -> "FloatFile":
        a, b, step = item.indices(self.count)
        assert step == 1
        return FloatFile(self.path, self.start + a, max(0, b - a))

    def __array__(self, dtype=None, copy=None) -> np.ndarray:
        out = np.fromfile(self.path, dtype=np.float32, count=self.count, offset=4 * self.start)
        return out if dtype is None else out.astype(dtype)


class ChromPart:
    """The files of one contig being written: values appended chunk by chunk."""

    def __init__(self, folder: Path, n_models: int, with_values: bool):
        self.folder = folder
        self.files = [open(folder / f"model{j:05d}.f32", "wb") for j in range(n_models)] if with_values else []
        self.hits = open(folder / "hits.bed", "w")
        self.segments: dict[str, list[list[int]]] = {}
        self.closed = False

    def add(self, window: int, first: int, step: int, models: list[int], values: np.ndarray) -> None:
        """Append windows first, first + step, ... (values [n, len(models)]) of one window class."""
        segs = self.segments.setdefault(str(window), [])
        n = values.shape[0]
        if segs and segs[-1][0] + segs[-1][1] * step == first:
            segs[-1][1] += n
        else:
            segs.append([first, n])
        if self.files:
            cols = np.ascontiguousarray(values.T)
            for j, m in enumerate(models):
                self.files[m].write(cols[j].tobytes())

    def add_hits(self, text: str) -> None:
        """BED lines of the contig, in order."""
        if text:
            self.hits.write(text)

    def close(self) -> None:
        if self.closed:
            return
        self.closed = True
        for f in self.files:
            f.close()
        self.hits.close()
        (self.folder / "layout.json").write_text(json.dumps({"segments": self.segments}))
