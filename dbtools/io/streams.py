"""Input byte streams: a file or stdin ('-'), gzip recognised by its magic bytes (not its name),
and a truncated or corrupt compressed stream reported as one error naming the input."""

from __future__ import annotations

import gzip
import io
import sys
import zlib
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import BinaryIO

from dbtools.errors import DbtoolsError

GZIP_MAGIC = b"\x1f\x8b"
# what a damaged gzip stream raises while it is read: truncated (EOFError), bad data (zlib.error),
# a bad header or trailer (gzip.BadGzipFile, an OSError)
READ_ERRORS = (OSError, EOFError, zlib.error)


def display_name(path: str) -> str:
    """How messages name an input: its path, or 'stdin' for '-'."""
    return "stdin" if path == "-" else path


def peek(stream: BinaryIO, n: int = 4) -> bytes:
    """The first `n` bytes of a buffered stream, left unread (b'' where it cannot peek)."""
    return stream.peek(n)[:n] if hasattr(stream, "peek") else b""


def read_error(name: str, err: BaseException) -> DbtoolsError:
    """The one-line error for a stream that could not be read to its end."""
    detail = str(err) or type(err).__name__
    return DbtoolsError(f"{name}: cannot read (truncated or corrupt compressed file?): {detail}")


@contextmanager
def open_binary(path: str, what: str = "file") -> Iterator[BinaryIO]:
    """Bytes of `path` ('-' = stdin), decompressed when they start with the gzip magic.

    `what` names the input in a not-found message ("VCF", "file"). Neither stdin nor its buffer
    is closed on exit.
    """
    name = display_name(path)
    closers: list = []
    try:
        if path == "-":
            raw = sys.stdin.buffer if hasattr(sys.stdin, "buffer") else sys.stdin
            if not hasattr(raw, "peek"):
                raw = io.BufferedReader(raw)
        else:
            p = Path(path)
            if not p.exists():
                raise DbtoolsError(f"{path}: {what} not found")
            if p.is_dir():
                raise DbtoolsError(f"{path}: is a directory, not a {what}")
            try:
                raw = open(p, "rb")  # noqa: SIM115 (closed below)
            except OSError as e:
                raise DbtoolsError(f"{path}: cannot open ({e.strerror or e})") from None
            closers.append(raw)
        stream: BinaryIO = raw
        try:
            magic = peek(raw, 2)
        except READ_ERRORS as e:
            raise read_error(name, e) from None
        if magic == GZIP_MAGIC:
            stream = io.BufferedReader(gzip.GzipFile(fileobj=raw, mode="rb"))
            closers.append(stream)
        yield stream
    finally:
        for c in reversed(closers):
            try:
                c.close()
            except Exception:  # noqa: BLE001 (closing after an error must not hide it)
                pass


@contextmanager
def open_lines(path: str, what: str = "file") -> Iterator[Iterator[str]]:
    """The text lines of `path` ('-' = stdin; gzip by magic), ASCII with any other byte replaced
    by U+FFFD, so a binary file fails on its content, never on decoding."""
    name = display_name(path)
    with open_binary(path, what) as stream:
        text = io.TextIOWrapper(stream, encoding="ascii", errors="replace", newline=None)
        try:
            yield checked_lines(text, name)
        finally:
            text.detach()  # the byte stream stays with open_binary, which closes it


def checked_lines(text: io.TextIOBase, name: str) -> Iterator[str]:
    """Lines of `text`, with a truncated or corrupt compressed stream raised as one DbtoolsError."""
    try:
        for line in text:  # not `yield from`: closing this generator must not close `text`
            yield line
    except READ_ERRORS as e:
        raise read_error(name, e) from None
