"""Reading sequences: one per line or FASTA, from a file (optionally gzipped) or stdin ('-')."""

from __future__ import annotations

from collections.abc import Iterator

from dbtools.errors import DbtoolsError
from dbtools.io.encode import first_invalid
from dbtools.io.streams import display_name, open_lines


def read_sequences(path: str) -> Iterator[tuple[str, str, bool]]:
    """Yield (name, sequence, from_fasta) records; names say where each record came from.

    FASTA is recognised by a leading '>'; otherwise every non-blank line is one sequence,
    named by its line number.
    """
    display = display_name(path)
    with open_lines(path) as fh:
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
                    bad = first_invalid(line)
                    if bad >= 0:
                        raise DbtoolsError(f"{display}: line {lineno} (FASTA record {count}, {name}): "
                                           f"invalid character {line[bad]!r} at column {bad + 1}")
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
