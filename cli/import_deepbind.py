"""`dbtools import-deepbind`: convert the original DeepBind text models into a bank."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from dbtools.bank.deepbind_import import write_imported_bank

from .progress import stderr


def import_deepbind(
    db_tsv: Annotated[Path, typer.Argument(metavar="DB_TSV", help="The DeepBind index (db.tsv).")],
    params_dir: Annotated[Path, typer.Argument(metavar="PARAMS_DIR", help="Folder of D*.txt params files.")],
    output: Annotated[Path, typer.Option("--output", "-o", help="Bank file to write.")],
) -> None:
    """Convert DeepBind v0.11 params files (every index row that has one) into one bank file.

    Example: dbtools import-deepbind db/db.tsv db/params -o deepbind.bank
    """
    n = write_imported_bank(db_tsv, params_dir, output)
    stderr.print(f"wrote {n} models to {output}")
