"""cellbox's own subcommands (beyond isolate's grammar), each named with the module that
implements it as ``<name>_main(argv) -> int`` and ``<name>_parser()``.

A module is imported only when its command runs (or its help is generated), so the isolate
path, ``cellbox --run``, pays for none of them. They use ordinary argparse grammar.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from typing import TYPE_CHECKING

from cellbox.errors import UsageError

if TYPE_CHECKING:
    import argparse

SUBCOMMANDS: dict[str, str] = {
    "boxes": "cellbox.cli.admin",
    "reap": "cellbox.cli.admin",
    "chaos": "cellbox.cli.admin",
    "bench": "cellbox.cli.admin",
    "doctor": "cellbox.cli.admin",
    "delegate": "cellbox.cli.delegate",
    "languages": "cellbox.cli.judge",
    "exec": "cellbox.cli.judge",
    "judge": "cellbox.cli.judge",
    "verify-problem": "cellbox.cli.judge",
    "serve": "cellbox.cli.service",
    "worker": "cellbox.cli.service",
    "keeperd": "cellbox.cli.keeperd",
}
HELP_WIDTH = 100  # fixed, so docs/cli.md does not depend on the terminal


def resolve(name: str) -> tuple[Callable[[list[str]], int],
                                Callable[[], argparse.ArgumentParser]]:
    module = importlib.import_module(SUBCOMMANDS[name])
    attr = name.replace("-", "_")
    return getattr(module, f"{attr}_main"), getattr(module, f"{attr}_parser")


def main(argv: list[str]) -> int:
    handler, _ = resolve(argv[0])
    return handler(argv[1:])


def parser(name: str, description: str) -> argparse.ArgumentParser:
    """An argparse parser whose errors are cellbox usage errors (exit 2, with a hint)."""
    import argparse

    class Parser(argparse.ArgumentParser):
        def error(self, message: str) -> None:  # type: ignore[override]
            raise UsageError(f"{message} (see cellbox {name} --help)")

    return Parser(prog=f"cellbox {name}", description=description,
                  formatter_class=lambda prog: argparse.HelpFormatter(prog, width=HELP_WIDTH))
