"""The `dbtools` command: one Typer app, one module per subcommand."""

from __future__ import annotations

import os
import sys
from typing import Annotated

import typer

from dbtools import __version__
from dbtools.errors import DbtoolsError

from . import bank, calibrate, evaluate, import_deepbind, models, mutmap, scan, score, train, vareffect, vcf
from .errors import report

app = typer.Typer(
    name="dbtools",
    help="DeepBind models, batched: score sequences, scan genomes, score variants, train banks.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
    context_settings={"help_option_names": ["-h", "--help"]},
)


def _version(value: bool) -> None:
    if value:
        print(f"dbtools {__version__}")
        raise typer.Exit()


@app.callback()
def main(
    version: Annotated[bool, typer.Option("--version", callback=_version, is_eager=True,
                                          help="Print the version and exit.")] = False,
) -> None:
    """DeepBind models, batched: score sequences, scan genomes, score variants, train banks."""


app.command("score")(score.score)
app.command("models")(models.models)
app.command("import-deepbind")(import_deepbind.import_deepbind)
app.command("train")(train.train)
app.command("evaluate")(evaluate.evaluate)
app.command("calibrate")(calibrate.calibrate)
app.add_typer(bank.app, name="bank")
app.command("mutmap")(mutmap.mutmap)
app.command("scan")(scan.scan)
app.command("merge-tracks")(scan.merge_tracks)
app.command("vareffect")(vareffect.vareffect)
app.add_typer(vcf.app, name="vcf")


def run() -> None:
    """Console entry point: user errors become one line on stderr and a non-zero exit."""
    try:
        app()
    except DbtoolsError as e:
        sys.exit(report(e))
    except BrokenPipeError:
        # downstream closed the pipe (e.g. `| head`): stop quietly
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        sys.exit(141)
    except KeyboardInterrupt:
        print("dbtools: interrupted", file=sys.stderr)
        sys.exit(130)


if __name__ == "__main__":
    run()
