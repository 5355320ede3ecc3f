"""The progress display of the long commands (judge, bench, chaos, reap).

A rich progress bar on stderr when stderr is a terminal; nothing at all in a pipe or a file,
so scripts and logs get only the command's results. rich is imported only on a terminal.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from rich.progress import Progress

Advance = Callable[[], None]  # one step done; safe to call from any thread


def _nothing() -> None:
    pass


class Bars:
    """Hands out one advance function per task (a bar); all no-ops when quiet."""

    def __init__(self, progress: Progress | None) -> None:
        self._progress = progress

    def task(self, description: str, total: int | None) -> Advance:
        """A bar of ``total`` steps (None: a count with no end known)."""
        progress = self._progress
        if progress is None:
            return _nothing
        task_id = progress.add_task(description, total=total)
        progress.refresh()

        def advance() -> None:
            progress.advance(task_id)
            progress.refresh()

        return advance


@contextmanager
def progress_bars() -> Iterator[Bars]:
    if not sys.stderr.isatty():
        yield Bars(None)
        return
    from rich.console import Console
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeElapsedColumn,
    )

    columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
               TimeElapsedColumn())
    # No auto-refresh: its thread would make this process multi-threaded, and cellbox never
    # forks a run from one (DESIGN.md, fork safety); each step redraws instead. transient: the
    # bar disappears at the end, and the command's own output stays clean.
    with Progress(*columns, console=Console(stderr=True), transient=True,
                  auto_refresh=False) as progress:
        yield Bars(progress)
