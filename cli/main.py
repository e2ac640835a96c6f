"""The `dbtools` command: one Typer app, one module per subcommand."""

from __future__ import annotations

import sys
from typing import Annotated

import typer
from typer.core import TyperGroup

from dbtools import __version__
from dbtools.errors import EXIT_INTERRUPTED, DbtoolsError

from . import background, bank, calibrate, evaluate, import_deepbind, models, mutmap, scan, score, train, vareffect, vcf
from .errors import ClickException, StdoutClosed, report, report_click, stdout_closed


class _Commands(TyperGroup):
    """The top group; a closed stdout leaves a command as StdoutClosed, which click's own
    EPIPE handler (exit 1) does not catch."""

    def invoke(self, ctx: typer.Context):
        try:
            return super().invoke(ctx)
        except BrokenPipeError:
            raise StdoutClosed() from None


app = typer.Typer(
    cls=_Commands,
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
app.command("background")(background.background)
app.add_typer(vcf.app, name="vcf")


def run() -> None:
    """Console entry point: user errors become one line on stderr and a non-zero exit; a closed
    stdout (`| head`) exits 141 in silence."""
    try:
        code = app(standalone_mode=False, prog_name="dbtools")
        sys.stdout.flush()  # inside the try: a closed pipe found by the last flush is still 141
    except DbtoolsError as e:
        code = report(e)
    except ClickException as e:
        code = report_click(e)
    except (StdoutClosed, BrokenPipeError):
        code = stdout_closed()
    except typer.Abort:
        print("dbtools: error: aborted", file=sys.stderr)
        code = 1
    except KeyboardInterrupt:
        print("dbtools: interrupted", file=sys.stderr)
        code = EXIT_INTERRUPTED
    sys.exit(code if isinstance(code, int) else 0)


if __name__ == "__main__":
    run()
