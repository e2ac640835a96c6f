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
def steps_bar() -> Iterator[Callable[[str, int, int, float | None], None]]:
    """A progress bar per batched training run; yields `update(label, step, total, loss)`."""
    from rich.progress import BarColumn, TimeRemainingColumn

    with Progress(TextColumn("{task.description}"), BarColumn(), TextColumn("{task.completed}/{task.total} steps"),
                  TextColumn("{task.fields[loss]}"), TimeElapsedColumn(), TextColumn("ETA"), TimeRemainingColumn(),
                  console=stderr, transient=True, disable=not stderr.is_terminal) as progress:
        tasks: dict[str, int] = {}

        def update(label: str, step: int, total: int, loss: float | None = None) -> None:
            if label not in tasks:
                tasks[label] = progress.add_task(f"training {label}", total=total, loss="")
            progress.update(tasks[label], completed=step, loss="" if loss is None else f"loss {loss:.4f}")

        yield update
