"""Errors a user can fix, each carrying the exit code the CLI returns for it; the other exit codes.

docs/exit-codes.md lists them all in one table (a test holds it to this module)."""

EXIT_OK = 0
EXIT_INTERRUPTED = 130  # 128 + SIGINT: Ctrl-C (training saves a checkpoint first)
EXIT_TERMINATED = 143  # 128 + SIGTERM: a scheduler's stop (training saves a checkpoint first)
EXIT_PIPE_CLOSED = 141  # 128 + SIGPIPE: the reader of stdout went away (`| head`); nothing is printed


class DbtoolsError(Exception):
    """Bad input data (exit 1): the message names the file/record and what is wrong."""

    exit_code = 1


class UsageError(DbtoolsError):
    """Bad options or selectors (exit 2), like click's own usage errors."""

    exit_code = 2
