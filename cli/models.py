"""`dbtools models`: list what a bank holds."""

from __future__ import annotations

import sys
from typing import Annotated

import typer
from rich.table import Table

from dbtools.bank.catalog import COLUMNS, model_rows, write_tsv
from dbtools.bank.selection import open_selected

from . import options
from .progress import Console


def models(
    bank: options.Bank = None,
    models: options.Models = None,
    tsv: Annotated[bool, typer.Option("--tsv", help="Write TSV (the default when stdout is not a terminal).")] = False,
) -> None:
    """List the models of a bank: ID, protein, type, experiment, species, architecture.

    Example: dbtools models -m CTCF -m type:ChIP-seq
    """
    selected = open_selected(bank, models)
    console = Console()
    if tsv or not console.is_terminal:
        write_tsv(selected, sys.stdout)
        return
    table = Table(*COLUMNS, title=f"{len(selected)} models")
    for row in model_rows(selected):
        table.add_row(*row)
    console.print(table)
