"""The controlling terminal.

By default the program starts a new session (setsid), so it has no controlling terminal: it
cannot open /dev/tty, signal the caller's job or take over the caller's terminal, even when one
of its stdio descriptors is that terminal (and TIOCSTI on a terminal that is not one's own needs
CAP_SYS_ADMIN, on top of the seccomp check).

``--tty-hack`` is isolate's option for interactive programs: the program stays in the caller's
session, in its own process group, which is the terminal's foreground group while it runs;
the caller takes the foreground back afterwards. The child side (``setsid``, or ``setpgid`` and
``tcsetpgrp``) is in the box init (``cellbox/boxinit/``); the parent side is
``foreground_restored``.
"""

from __future__ import annotations

import os
import signal
from collections.abc import Iterator
from contextlib import contextmanager


def _terminal_fd() -> int | None:
    """The first of stdin, stdout, stderr that is a terminal."""
    return next((fd for fd in (0, 1, 2) if os.isatty(fd)), None)


@contextmanager
def _sigttou_ignored() -> Iterator[None]:
    # tcsetpgrp from a background process group raises SIGTTOU, which would stop the caller.
    old = signal.signal(signal.SIGTTOU, signal.SIG_IGN)
    try:
        yield
    finally:
        signal.signal(signal.SIGTTOU, old)


@contextmanager
def foreground_restored() -> Iterator[None]:
    """Parent (--tty-hack): give the terminal's foreground back to the caller after the run."""
    fd = _terminal_fd()
    group = os.tcgetpgrp(fd) if fd is not None else None
    try:
        yield
    finally:
        if fd is not None and group is not None:
            with _sigttou_ignored():
                os.tcsetpgrp(fd, group)
