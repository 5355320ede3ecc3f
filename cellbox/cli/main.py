"""Entry point of the ``cellbox`` command."""

from __future__ import annotations

import os
import sys


def main() -> None:
    from cellbox.cli import client

    argv = sys.argv[1:]
    code = None
    if client.wanted(argv):
        code = client.run(argv)
        if code is None and os.geteuid() == 0:
            from cellbox.cli.keeperd import start_on_demand

            if start_on_demand():
                code = client.run(argv)
    if code is None:  # no resident keeper daemon: the CLI runs in this process
        from cellbox.cli.commands import run_cli

        code = run_cli(argv)
    sys.exit(code)
