"""cellbox's own subcommands (beyond isolate's grammar). Each module that implements some
registers them in its ``COMMANDS`` table: name -> (handler ``(argv) -> int``, parser maker).

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

Handler = Callable[[list[str]], int]
ParserMaker = Callable[[], "argparse.ArgumentParser"]

# name -> the module whose COMMANDS has it, grouped as ``cellbox --help`` lists them
GROUPS: dict[str, dict[str, str]] = {
    "administration": {"boxes": "cellbox.cli.admin", "reap": "cellbox.cli.admin",
                       "chaos": "cellbox.cli.admin", "bench": "cellbox.cli.admin",
                       "doctor": "cellbox.cli.admin", "delegate": "cellbox.cli.delegate"},
    "languages and judging": {"languages": "cellbox.cli.judge", "exec": "cellbox.cli.judge",
                              "judge": "cellbox.cli.judge",
                              "verify-problem": "cellbox.cli.judge"},
    "the service": {"serve": "cellbox.cli.service", "worker": "cellbox.cli.service"},
    "the keeper daemon": {"keeperd": "cellbox.cli.keeperd"},
}
SUBCOMMANDS: dict[str, str] = {name: module for group in GROUPS.values()
                               for name, module in group.items()}
HELP_WIDTH = 100  # fixed, so docs/cli.md does not depend on the terminal


def resolve(name: str) -> tuple[Handler, ParserMaker]:
    commands: dict[str, tuple[Handler, ParserMaker]] = \
        importlib.import_module(SUBCOMMANDS[name]).COMMANDS
    return commands[name]


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
