"""BED regions (file or '-' for stdin), validated line by line."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

from dbtools.errors import DbtoolsError
from dbtools.io.streams import open_lines


@dataclass(frozen=True)
class Region:
    """A BED interval: 0-based start, exclusive end, as written in the file."""

    contig: str
    start: int
    end: int
    name: str
    line: int  # 1-based line in the BED file, for error messages


def read_regions(path: str) -> Iterator[Region]:
    """The regions of a BED file (3+ tab- or space-separated columns; header, track and
    browser lines skipped). Malformed lines are errors naming the file and line."""
    with open_lines(path) as fh:
        for lineno, line in enumerate(fh, 1):
            if not line.strip() or line.startswith(("#", "track", "browser")):
                continue
            cols = line.split()
            where = f"{path}: line {lineno}"
            if len(cols) < 3:
                raise DbtoolsError(f"{where}: expected 'chrom<TAB>start<TAB>end', found {len(cols)} column(s)")
            try:
                start, end = int(cols[1]), int(cols[2])
            except ValueError:
                raise DbtoolsError(f"{where}: start and end must be whole numbers, found "
                                   f"{cols[1]!r} and {cols[2]!r}") from None
            if start < 0:
                raise DbtoolsError(f"{where}: start {start} is negative")
            if start > end:
                raise DbtoolsError(f"{where}: start {start} is after end {end}")
            yield Region(cols[0], start, end, cols[3] if len(cols) > 3 else f"{cols[0]}:{start}-{end}", lineno)
