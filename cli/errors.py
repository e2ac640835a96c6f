"""Turning errors into one stderr line and an exit code (the table is docs/exit-codes.md)."""

from __future__ import annotations

import os
import sys

import typer

from dbtools.errors import EXIT_PIPE_CLOSED, DbtoolsError

# the parser's error base class, found from a public subclass (typer ships its own copy of click)
ClickException = next(c for c in typer.BadParameter.__mro__ if c.__name__ == "ClickException")


class StdoutClosed(Exception):
    """The reader of stdout went away (`| head`); not an OSError, so click's handler misses it."""


def report(err: DbtoolsError) -> int:
    print(f"dbtools: error: {err}", file=sys.stderr)
    return err.exit_code


def report_click(err: ClickException) -> int:
    """A usage error from option parsing as one line (not a box), naming where help is."""
    if type(err).__name__ == "NoArgsIsHelpError":  # `dbtools` alone: the help
        err.show()
        return err.exit_code
    message = " ".join(err.format_message().split())
    ctx = getattr(err, "ctx", None)
    hint = f" (see '{ctx.command_path} -h')" if ctx is not None else ""
    print(f"dbtools: error: {message}{hint}", file=sys.stderr)
    return err.exit_code


def stdout_closed() -> int:
    """Silence stdout for good (the interpreter flushes it on exit) and give the exit code of SIGPIPE."""
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, sys.stdout.fileno())
    return EXIT_PIPE_CLOSED
