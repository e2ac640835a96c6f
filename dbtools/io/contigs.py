"""Contig names across naming schemes (`chr20` vs `20`, `chrM` vs `MT`): reconciling inputs,
and the names output files give contigs (`--contig-names`)."""

from __future__ import annotations

import enum
import os
from collections.abc import Collection
from pathlib import Path

from dbtools.errors import DbtoolsError

_MITO = ("chrM", "MT", "chrMT", "M")


def candidates(name: str) -> list[str]:
    """Other spellings of the same contig, in order of preference."""
    if name in _MITO:
        return [n for n in _MITO if n != name]
    if name.startswith("chr"):
        return [name[3:]]
    return ["chr" + name]


def reconcile(name: str, available: Collection[str]) -> str | None:
    """The spelling of `name` that `available` uses, or None if it has none."""
    if name in available:
        return name
    return next((c for c in candidates(name) if c in available), None)


class Naming(enum.StrEnum):
    """--contig-names: how output files name contigs (or a chromAlias file's path)."""

    FASTA = "fasta"
    UCSC = "ucsc"
    ENSEMBL = "ensembl"


def ucsc_name(name: str) -> str:
    """UCSC's spelling: `20` -> `chr20`, `MT` -> `chrM`; a name with `chr` already is kept."""
    if name in _MITO:
        return "chrM"
    return name if name.startswith("chr") else "chr" + name


def ensembl_name(name: str) -> str:
    """Ensembl's spelling: `chr20` -> `20`, `chrM` -> `MT`."""
    if name in _MITO:
        return "MT"
    return name[3:] if name.startswith("chr") and len(name) > 3 else name


def read_alias(path: str | os.PathLike) -> dict[str, str]:
    """A chromAlias file (UCSC's chromAlias.txt, or two columns): every name on a line -> the
    line's first name. Lines starting with '#' are comments."""
    table: dict[str, str] = {}
    try:
        lines = Path(path).read_text().splitlines()
    except (OSError, UnicodeDecodeError) as e:
        raise DbtoolsError(f"{path}: cannot read the contig alias file ({getattr(e, 'strerror', None) or e})") from None
    for n, line in enumerate(lines, 1):
        if not line.strip() or line.startswith("#"):
            continue
        names = [f for f in line.rstrip("\r").split("\t") if f]
        if len(names) < 2 and " " in line.strip():
            names = line.split()
        for alias in names:
            if table.get(alias, names[0]) != names[0]:
                raise DbtoolsError(f"{path}: line {n}: {alias!r} is already an alias of {table[alias]!r}")
            table[alias] = names[0]
    if not table:
        raise DbtoolsError(f"{path}: no contig names in the alias file")
    return table


def output_names(contigs: list[str], naming: str) -> dict[str, str]:
    """FASTA contig -> the name output files give it, for `naming` ('fasta', 'ucsc', 'ensembl' or
    the path of a chromAlias file). Contigs an alias file lacks keep their names; two contigs
    given one name is an error."""
    if naming == Naming.FASTA:
        return {c: c for c in contigs}
    if naming == Naming.UCSC:
        names = {c: ucsc_name(c) for c in contigs}
    elif naming == Naming.ENSEMBL:
        names = {c: ensembl_name(c) for c in contigs}
    else:
        alias = read_alias(naming)
        names = {c: alias.get(c, c) for c in contigs}
    seen: dict[str, str] = {}
    for c, out in names.items():
        if out in seen:
            raise DbtoolsError(f"--contig-names {naming}: contigs {seen[out]!r} and {c!r} would both be named {out!r}")
        seen[out] = c
    return names
