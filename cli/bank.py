"""`dbtools bank merge|subset`: combine banks and cut them down (e.g. per-group banks of a cluster run)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from dbtools.bank.store import load_bank, merge_banks, save_bank
from dbtools.bank.selection import open_selected

from . import options
from .progress import stderr

app = typer.Typer(help="Merge or subset model banks.", no_args_is_help=True)


@app.command("merge")
def merge(
    banks: Annotated[list[Path], typer.Argument(metavar="BANK...", help="Banks to merge, in order.")],
    output: Annotated[Path, typer.Option("--output", "-o", help="Bank file to write.")],
) -> None:
    """Write the models of several banks, in order, as one bank (IDs must be unique).

    Example: dbtools bank merge group1.bank group2.bank -o all.bank
    """
    merged = merge_banks([load_bank(b) for b in banks], [str(b) for b in banks])
    save_bank(merged, output)
    stderr.print(f"wrote {len(merged)} models from {len(banks)} banks to {output}")


@app.command("subset")
def subset(
    output: Annotated[Path, typer.Option("--output", "-o", help="Bank file to write.")],
    bank: options.Bank = None,
    models: options.Models = None,
) -> None:
    """Write the selected models of a bank as a new bank.

    Example: dbtools bank subset -m CTCF -m species:'Homo sapiens' -o ctcf.bank
    """
    selected = open_selected(bank, models)
    save_bank(selected, output)
    stderr.print(f"wrote {len(selected)} models to {output}")
