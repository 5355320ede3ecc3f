"""Entry point of the ``cellbox`` command."""

from __future__ import annotations

import sys


def main() -> None:
    from cellbox.cli import client

    argv = sys.argv[1:]
    code = client.run(argv) if client.wanted(argv) else None
    if code is None:  # no resident keeper daemon: the CLI runs in this process
        from cellbox.cli.commands import run_cli

        code = run_cli(argv)
    sys.exit(code)
