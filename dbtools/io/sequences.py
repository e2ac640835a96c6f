"""Reading sequences: one per line or FASTA, from a file (optionally gzipped) or stdin ('-')."""

from __future__ import annotations

import gzip
import io
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from dbtools.errors import DbtoolsError


@contextmanager
def open_text(path: str):
    """Open `path` for reading text ('-' = stdin; '.gz' or gzip magic = decompressed)."""
    if path == "-":
        yield sys.stdin
        return
    p = Path(path)
    if not p.exists():
        raise DbtoolsError(f"{path}: file not found")
    if p.is_dir():
        raise DbtoolsError(f"{path}: is a directory")
    with open(p, "rb") as raw:
        magic = raw.read(2)
    try:
        if magic == b"\x1f\x8b":
            fh = io.TextIOWrapper(gzip.open(p, "rb"), encoding="ascii", errors="replace")
        else:
            fh = open(p, encoding="ascii", errors="replace")
    except OSError as e:
        raise DbtoolsError(f"{path}: cannot open ({e.strerror or e})") from None
    with fh:
        yield fh


def read_sequences(path: str) -> Iterator[tuple[str, str, bool]]:
    """Yield (name, sequence, from_fasta) records; names say where each record came from.

    FASTA is recognised by a leading '>'; otherwise every non-blank line is one sequence,
    named by its line number.
    """
    display = "stdin" if path == "-" else path
    with open_text(path) as fh:
        fasta = None
        name, parts, count = "", [], 0
        for lineno, line in enumerate(fh, 1):
            line = line.strip()
            if not line:
                continue
            if fasta is None:
                fasta = line.startswith(">")
            if fasta:
                if line.startswith(">"):
                    if count:
                        yield _fasta_record(display, name, parts, count)
                    count += 1
                    name, parts = line[1:].split()[0] if line[1:].split() else f"record{count}", []
                else:
                    parts.append(line)
            else:
                count += 1
                yield f"{display}: sequence {count} (line {lineno})", line, False
        if fasta and count:
            yield _fasta_record(display, name, parts, count)
    if not count:
        raise DbtoolsError(f"{display}: no sequences")


def _fasta_record(display: str, name: str, parts: list[str], count: int) -> tuple[str, str, bool]:
    seq = "".join(parts)
    if not seq:
        raise DbtoolsError(f"{display}: FASTA record {count} ({name}) has no sequence")
    return name, seq, True
