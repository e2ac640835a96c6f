"""Text written BGZF-compressed with a tabix index beside it (`.vcf.gz`, `.bed.gz`), atomically."""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from dbtools.io.atomic import atomic_path


class BgzfText:
    """A write-only text adapter over pysam's BGZFile."""

    def __init__(self, path: Path):
        import pysam

        self._f = pysam.BGZFile(str(path), "wb")

    def write(self, text: str) -> None:
        self._f.write(text.encode())

    def close(self) -> None:
        self._f.close()


def tabix_index(data: Path, tbi: Path, preset: str, final: str) -> bool:
    """Build a tabix index; False (with a warning) when the records are not sorted."""
    import pysam

    try:
        pysam.tabix_index(str(data), preset=preset, index=str(tbi), force=True, keep_original=True)
    except (OSError, ValueError) as e:
        print(f"dbtools: warning: {final}: no tabix index written (records not sorted by position?): {e}",
              file=sys.stderr)
        if tbi.exists():
            tbi.unlink()
        return False
    return True


@contextmanager
def open_indexed_text(path: str | os.PathLike, preset: str) -> Iterator[BgzfText]:
    """A BGZF text file and its tabix index (`preset`: 'vcf' or 'bed'); both appear only when complete."""
    path = str(path)
    with atomic_path(path, f".{preset}.gz") as tmp, atomic_path(path + ".tbi", ".tbi") as tmp_tbi:
        stream = BgzfText(tmp)
        try:
            yield stream
        finally:
            stream.close()
        if not tabix_index(tmp, tmp_tbi, preset, path) and Path(path + ".tbi").exists():
            os.unlink(path + ".tbi")  # a stale index would not match the new file
