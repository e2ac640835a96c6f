"""Turning dbtools errors into one stderr line and an exit code."""

from __future__ import annotations

import sys

from dbtools.errors import DbtoolsError


def report(err: DbtoolsError) -> int:
    print(f"dbtools: error: {err}", file=sys.stderr)
    return err.exit_code
