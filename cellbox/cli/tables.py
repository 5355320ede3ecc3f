"""The console that the commands print their tables to (rich is imported only here)."""

from __future__ import annotations

import os
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from rich.console import Console

UNWRAPPED = 1000  # no terminal at all (a log file): one line per row, as wide as it needs


def console(stderr: bool = False) -> Console:
    """rich's console, as wide as the user's terminal even when the output goes to a pipe or
    a file: $COLUMNS if set, else the terminal on stdout, stderr or stdin, else unwrapped."""
    from rich.console import Console

    width = None if os.environ.get("COLUMNS") else _terminal_width()
    # rich reads $COLUMNS itself, for a pipe as well as a terminal.
    return Console(stderr=stderr, width=width)


def _terminal_width() -> int:
    for fd in (1, 2, 0):
        try:
            return os.get_terminal_size(fd).columns
        except OSError:
            continue
    return UNWRAPPED
