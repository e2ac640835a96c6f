"""Reading a VCF (plain, gzip/BGZF, or BCF; a file or '-' for stdin) as header text plus records.

Records keep their columns as text, so everything a tool does not touch passes through
byte for byte; only CHROM, POS, REF and ALT are parsed (and checked). Errors name the file
and the line (or, for BCF, the record number). BCF is decoded with pysam; BCF on stdin is
first spooled to a temporary file, since htslib reads it by file name.
"""

from __future__ import annotations

import io
import os
import re
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from dbtools.errors import DbtoolsError
from dbtools.io.htslib import quiet_pysam
from dbtools.io.streams import READ_ERRORS, checked_lines, display_name, open_binary, peek, read_error

_BASES = re.compile(r"^[ACGTNRYSWKMBDHVacgtnryswkmbdhv]+$")
_HEADER_ID = re.compile(r"^##(INFO|FORMAT|FILTER|contig)=<.*?\bID=([^,>]+)")


@dataclass
class VcfHeader:
    """The meta lines (`##...`, no newline) and the `#CHROM` line of a VCF."""

    meta: list[str]
    columns: str
    declared: dict[str, set[str]] = field(default_factory=dict)  # INFO/FORMAT/FILTER/contig -> IDs

    def __post_init__(self) -> None:
        for kind in ("INFO", "FORMAT", "FILTER", "contig"):
            self.declared.setdefault(kind, set())
        for line in self.meta:
            m = _HEADER_ID.match(line)
            if m:
                self.declared[m.group(1)].add(m.group(2))

    @property
    def n_columns(self) -> int:
        return self.columns.count("\t") + 1


@dataclass(slots=True)
class VcfRecord:
    """One data line: its columns as text, with POS/REF/ALT parsed. `where` names it in messages."""

    fields: list[str]
    pos: int  # 1-based, as written
    alts: list[str]  # [] when ALT is '.'
    where: str

    @property
    def chrom(self) -> str:
        return self.fields[0]

    @property
    def ref(self) -> str:
        return self.fields[3]


def is_sequence_allele(allele: str) -> bool:
    """True for an ALT made of bases (scorable); False for `<DEL>`, `*`, breakends and the like."""
    return bool(_BASES.match(allele))


def _parse_record(line: str, where: str, n_columns: int) -> VcfRecord:
    fields = line.split("\t")
    if len(fields) < 8:
        raise DbtoolsError(f"{where}: expected at least 8 tab-separated columns (CHROM..INFO), found {len(fields)}")
    if len(fields) != n_columns:
        raise DbtoolsError(f"{where}: {len(fields)} columns but the #CHROM header line has {n_columns}")
    chrom, pos, _, ref, alt = fields[:5]
    if not chrom:
        raise DbtoolsError(f"{where}: empty CHROM")
    try:
        p = int(pos)
    except ValueError:
        raise DbtoolsError(f"{where}: POS {pos!r} is not an integer") from None
    if p < 0:
        raise DbtoolsError(f"{where}: POS {p} is negative")
    if not _BASES.match(ref):
        raise DbtoolsError(f"{where}: REF {ref!r} is not a sequence of bases")
    if alt == "." or alt == "":
        if not alt:
            raise DbtoolsError(f"{where}: empty ALT (use '.' for none)")
        alts = []
    else:
        alts = alt.split(",")
        if any(not a for a in alts):
            raise DbtoolsError(f"{where}: empty allele in ALT {alt!r}")
    return VcfRecord(fields, p, alts, where)


def _text_records(lines: Iterator[str], name: str) -> tuple[VcfHeader, Iterator[VcfRecord]]:
    """Header and records of VCF text lines (line numbers 1-based)."""
    meta: list[str] = []
    n = 0
    for n, line in enumerate(lines, 1):
        line = line.rstrip("\r\n")
        if n == 1 and not line.startswith("##fileformat=VCF"):
            raise DbtoolsError(f"{name} line 1: not a VCF: the first line must be '##fileformat=VCFv4.x' "
                               f"(is the header missing?), found {line[:40]!r}")
        if line.startswith("##"):
            meta.append(line)
            continue
        if not line.startswith("#CHROM"):
            raise DbtoolsError(f"{name} line {n}: expected the '#CHROM POS ID REF ALT QUAL FILTER INFO' header "
                               f"line before the records, found {line[:40]!r}")
        if len(line.split("\t")) < 8:
            raise DbtoolsError(f"{name} line {n}: the #CHROM header line needs 8 tab-separated columns")
        header = VcfHeader(meta, line)
        break
    else:
        what = "is empty" if n == 0 else "has no #CHROM header line"
        raise DbtoolsError(f"{name}: not a VCF: the file {what}")

    def records() -> Iterator[VcfRecord]:
        k = header.n_columns
        for i, line in enumerate(lines, n + 1):
            line = line.rstrip("\r\n")
            if line:
                yield _parse_record(line, f"{name} line {i}", k)

    return header, records()


def _bcf_records(path: str, name: str) -> tuple[VcfHeader, Iterator[VcfRecord], object]:
    pysam = quiet_pysam()
    try:
        vf = pysam.VariantFile(path)
    except (OSError, ValueError) as e:
        raise DbtoolsError(f"{name}: cannot read BCF: {e}") from None
    text = str(vf.header).rstrip("\n").split("\n")
    header = VcfHeader(text[:-1], text[-1])

    def records() -> Iterator[VcfRecord]:
        k = header.n_columns
        try:
            for i, rec in enumerate(vf, 1):
                yield _parse_record(str(rec).rstrip("\n"), f"{name} record {i}", k)
        except (OSError, ValueError) as e:
            raise DbtoolsError(f"{name}: cannot read BCF: {e}") from None

    return header, records(), vf


@contextmanager
def open_vcf(path: str) -> Iterator[tuple[VcfHeader, Iterator[VcfRecord]]]:
    """Open a VCF/BCF file or '-' (stdin); yields (header, records)."""
    name = display_name(path)
    if path != "-" and Path(path).exists() and not os.access(path, os.R_OK):
        raise DbtoolsError(f"{path}: VCF is not a readable file")
    spool = None
    vf = None
    try:
        with open_binary(path, "VCF") as stream:
            try:
                is_bcf = peek(stream, 3) == b"BCF"
            except READ_ERRORS as e:
                raise read_error(name, e) from None
            if is_bcf:
                bcf_path = path
                if path == "-":
                    spool = tempfile.NamedTemporaryFile(prefix="dbtools-stdin-", suffix=".bcf", delete=False)
                    shutil.copyfileobj(stream, spool)  # decompressed: htslib reads plain BCF too
                    spool.close()
                    bcf_path = spool.name
                header, records, vf = _bcf_records(bcf_path, name)
                yield header, records
            else:
                text = io.TextIOWrapper(stream, encoding="utf-8", errors="replace", newline="")
                lines = checked_lines(text, name)
                try:
                    header, records = _text_records(lines, name)
                    yield header, records
                finally:
                    lines.close()
                    text.detach()  # the byte stream stays with open_binary, which closes it
    finally:
        if vf is not None:
            vf.close()
        if spool is not None:
            os.unlink(spool.name)
