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

from dbtools.io.contigs import reconcile
from dbtools.errors import DbtoolsError


class Genome:
    """An indexed FASTA; `fetch` pads with N past contig ends."""

    def __init__(self, path: str | os.PathLike):
        import pysam

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

    def require(self, name: str, where: str) -> str:
        """As `resolve`, but an unknown contig is an error naming `where` and the contigs there are."""
        contig = self.resolve(name)
        if contig is None:
            shown = ", ".join(self.contigs[:20]) + (", ..." if len(self.contigs) > 20 else "")
            raise DbtoolsError(f"{where}: contig {name!r} is not in {self.path} (it has: {shown})")
        return contig

    def fetch(self, contig: str, start: int, end: int) -> str:
        """Bases [start, end) of `contig` (0-based, half open), with N where it runs off an end."""
        size = self.sizes[contig]
        if end <= start:
            return ""
        lo, hi = max(0, start), min(size, end)
        if hi <= lo:
            return "N" * (end - start)
        return "N" * (lo - start) + self._fa.fetch(contig, lo, hi) + "N" * (end - hi)

    def close(self) -> None:
        self._fa.close()

    def __enter__(self) -> "Genome":
        return self

    def __exit__(self, *exc) -> None:
        self.close()
