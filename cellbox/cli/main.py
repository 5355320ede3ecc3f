"""Entry point of the ``cellbox`` command."""

from __future__ import annotations

import sys


def main() -> None:
    from cellbox.cli.commands import run_cli

    sys.exit(run_cli(sys.argv[1:]))
