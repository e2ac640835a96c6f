"""Rich progress on stderr (shown only when stderr is a terminal)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager

from rich.console import Console
from rich.progress import Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

stderr = Console(stderr=True)


@contextmanager
def counter(description: str, unit: str) -> Iterator[Callable[[int], None]]:
    """A progress line counting items of unknown total; yields `advance(n)`."""
    with Progress(SpinnerColumn(), TextColumn(f"{description} {{task.completed:,}} {unit}"),
                  TimeElapsedColumn(), console=stderr, transient=True,
                  disable=not stderr.is_terminal) as progress:
        task = progress.add_task(description, total=None)
        yield lambda n: progress.advance(task, n)


@contextmanager
def steps_bar() -> Iterator[Callable[[str, int, int], None]]:
    """A progress bar over training steps; yields `update(label, step, total)`."""
    from rich.progress import BarColumn, TimeRemainingColumn

    with Progress(TextColumn("{task.description}"), BarColumn(), TextColumn("{task.completed}/{task.total} steps"),
                  TimeRemainingColumn(), console=stderr, transient=True, disable=not stderr.is_terminal) as progress:
        tasks: dict[str, int] = {}

        def update(label: str, step: int, total: int) -> None:
            if label not in tasks:
                tasks[label] = progress.add_task(f"training {label}", total=total)
            progress.update(tasks[label], completed=step)

        yield update
