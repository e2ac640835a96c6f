"""Stopping long runs cleanly: Ctrl-C or SIGTERM asks the run to stop at its next safe point.

Training checks the request between SGD steps, saves a resumable checkpoint and raises
`Interrupted`, so a kill never leaves half-updated parameters or a half-written bank.
A second Ctrl-C stops at once (KeyboardInterrupt).
"""

from __future__ import annotations

import signal
import threading
from collections.abc import Iterator
from contextlib import contextmanager

from dbtools.errors import DbtoolsError


class Interrupted(DbtoolsError):
    """A run stopped on request after saving its state; exit code 128 + signal number."""

    def __init__(self, message: str, signum: int = signal.SIGINT):
        super().__init__(message)
        self.signum = signum
        self.exit_code = 128 + int(signum)


class StopRequest:
    """Callable flag: true once SIGINT or SIGTERM arrived while `installed()` is active."""

    def __init__(self) -> None:
        self.signum: int | None = None

    def __call__(self) -> bool:
        return self.signum is not None

    def request(self, signum: int = signal.SIGINT) -> None:
        self.signum = signum

    @contextmanager
    def installed(self) -> Iterator["StopRequest"]:
        if threading.current_thread() is not threading.main_thread():
            yield self  # signals only reach the main thread
            return

        def handler(signum, frame):
            if self.signum is not None and signum == signal.SIGINT:
                raise KeyboardInterrupt  # asked twice: stop now
            self.signum = signum

        previous = {s: signal.signal(s, handler) for s in (signal.SIGINT, signal.SIGTERM)}
        try:
            yield self
        finally:
            for s, h in previous.items():
                signal.signal(s, h)
