"""Reading a genome FASTA (plain or BGZF-compressed, indexed) for windows, scans and variants.

One class, `Genome`, is the only way dbtools reads genomic sequence: it opens the FASTA
with pysam (building the `.fai` index when it is missing and the folder is writable), keeps
the contigs in file order with their sizes, reconciles contig names from other files
(`chr20` vs `20`, `chrM` vs `MT`), and fetches intervals that may run past either end of a
contig, padded with `N` there (the same 0.25-per-base padding the network uses).
"""

from __future__ import annotations

import os
from pathlib import Path

from dbtools.errors import DbtoolsError
from dbtools.io.contigs import reconcile
from dbtools.io.htslib import quiet_pysam
from dbtools.io.streams import GZIP_MAGIC


class Genome:
    """An indexed FASTA; `fetch` pads with N past contig ends."""

    def __init__(self, path: str | os.PathLike):
        pysam = quiet_pysam()
        self.path = str(path)
        p = Path(self.path)
        if self.path == "-":
            raise DbtoolsError("the genome FASTA must be a file (it is read by random access), not '-'")
        if not p.is_file():
            raise DbtoolsError(f"{self.path}: genome FASTA not found")
        if not os.access(p, os.R_OK):
            raise DbtoolsError(f"{self.path}: genome FASTA is not readable")
        has_index = Path(self.path + ".fai").exists()
        if not has_index and not os.access(p.parent, os.W_OK):
            raise DbtoolsError(f"{self.path}: no index ({p.name}.fai) and its folder is not writable to build one; "
                               f"run `samtools faidx {self.path}` where you can write")
        _check_not_plain_gzip(self.path)
        if has_index:
            _check_index(self.path)
        try:
            self._fa = pysam.FastaFile(self.path)
        except (OSError, ValueError) as e:
            hint = " (a gzip FASTA must be BGZF-compressed: bgzip it)" if self.path.endswith(".gz") else ""
            raise DbtoolsError(f"{self.path}: cannot open genome FASTA{hint}: {e}") from None
        self.contigs: list[str] = list(self._fa.references)
        self.sizes: dict[str, int] = dict(zip(self._fa.references, self._fa.lengths))
        if not self.contigs:
            raise DbtoolsError(f"{self.path}: genome FASTA has no sequences")

    def resolve(self, name: str) -> str | None:
        """The genome's spelling of contig `name` (`chr20` -> `20`), or None if it has none."""
        return reconcile(name, self.sizes)

    def require(self, name: str, where: str, error: type[DbtoolsError] = DbtoolsError) -> str:
        """As `resolve`, but an unknown contig is an `error` naming `where` and the contigs there are
        (a UsageError, exit 2, where the name came from an option)."""
        contig = self.resolve(name)
        if contig is None:
            shown = ", ".join(self.contigs[:20]) + (", ..." if len(self.contigs) > 20 else "")
            raise error(f"{where}: contig {name!r} is not in {self.path} (it has: {shown})")
        return contig

    def fetch(self, contig: str, start: int, end: int) -> str:
        """Bases [start, end) of `contig` (0-based, half open), with N where it runs off an end."""
        size = self.sizes[contig]
        if end <= start:
            return ""
        lo, hi = max(0, start), min(size, end)
        if hi <= lo:
            return "N" * (end - start)
        try:
            bases = self._fa.fetch(contig, lo, hi)
        except (OSError, ValueError):
            bases = ""
        if len(bases) != hi - lo:
            raise DbtoolsError(f"{self.path}: cannot read {contig}:{lo + 1}-{hi}; its index {self.path}.fai is "
                               f"stale or the file is damaged: delete the .fai to rebuild it")
        return "N" * (lo - start) + bases + "N" * (end - hi)

    def close(self) -> None:
        self._fa.close()

    def __enter__(self) -> "Genome":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def _check_not_plain_gzip(path: str) -> None:
    """A gzip FASTA must be BGZF (gzip blocks with a 'BC' extra field) for random access."""
    with open(path, "rb") as f:
        head = f.read(16)
    if head[:2] == GZIP_MAGIC and not (len(head) >= 14 and head[3] & 4 and head[12:14] == b"BC"):
        raise DbtoolsError(f"{path}: plain gzip, not BGZF: recompress it with bgzip "
                           f"(zcat {path} | bgzip > new.fa.gz)")


def _check_index(path: str) -> None:
    """A `.fai` that claims more bytes than a plain FASTA holds is stale (the FASTA changed after it)."""
    with open(path, "rb") as f:
        if f.read(2) == GZIP_MAGIC:
            return  # BGZF: offsets are virtual; `fetch` finds a stale index
    size = os.path.getsize(path)
    fai = path + ".fai"
    try:
        with open(fai) as f:
            rows = [line.split("\t") for line in f if line.strip()]
        # the byte after each contig's last base: offset + (length - 1) bases placed in lines of r[3]
        # bases that take r[4] bytes each
        ends = {r[0]: int(r[2]) + ((int(r[1]) - 1) // int(r[3])) * int(r[4]) + (int(r[1]) - 1) % int(r[3]) + 1
                for r in rows if int(r[1]) > 0}
    except (OSError, ValueError, IndexError, ZeroDivisionError):
        raise DbtoolsError(f"{fai}: not a FASTA index: delete it to rebuild it") from None
    for contig, end in ends.items():
        if end > size:
            raise DbtoolsError(f"{fai}: stale index: it places {contig} past the end of {path}; "
                               f"delete it to rebuild it")
