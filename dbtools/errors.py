"""Errors a user can fix, each carrying the exit code the CLI returns for it."""


class DbtoolsError(Exception):
    """Bad input data (exit 1): the message names the file/record and what is wrong."""

    exit_code = 1


class UsageError(DbtoolsError):
    """Bad options or selectors (exit 2), like click's own usage errors."""

    exit_code = 2
