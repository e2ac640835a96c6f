"""What a bank holds, as rows for `dbtools models` (TSV or a table)."""

from __future__ import annotations

from typing import TextIO

from dbtools.bank.store import Bank

COLUMNS = ("id", "protein", "type", "experiment", "species", "architecture", "labels")


def model_rows(bank: Bank) -> list[tuple[str, ...]]:
    """One row per model in bank order, in the order of COLUMNS."""
    return [
        (i.id, i.protein, i.protein_type, i.experiment, i.species, i.arch.describe(), i.labels)
        for i in (m.info for m in bank.models)
    ]


def write_tsv(bank: Bank, out: TextIO) -> None:
    out.write("\t".join(COLUMNS) + "\n")
    for row in model_rows(bank):
        out.write("\t".join(row) + "\n")
