"""The thin client: ``cellbox --init/--run/--cleanup`` through a resident keeper daemon, when
the Python CLI is called directly (the ``cellbox`` command is the native client,
``client.c``, which speaks the same protocol without starting an interpreter).

Importing the CLI costs ~50 ms of CPU per command; ``cellbox keeperd`` pays it once. This
client hands the daemon its argv, environment, umask, working directory and stdio (the
descriptors themselves, SCM_RIGHTS) over a unix socket; the daemon runs the same CLI code in a
worker forked for the request and returns its exit status. When no daemon answers, the caller
starts one (root, ``keeperd.start_on_demand``) or runs the CLI in-process
(``CELLBOX_NO_DAEMON=1`` forces that), unless ``CELLBOX_REQUIRE_DAEMON=1`` says that only the
daemon may serve: then the command fails.

It imports nothing beyond what the interpreter has already loaded, ``_socket`` and
``_signal``: that is the point. The wire format is in ``cellbox.cli.keeperd``.
"""

import os
import sys

SOCKET_ENV = "CELLBOX_KEEPER_SOCKET"
DEFAULT_SOCKET = "/run/cellbox/keeper.sock"
NO_DAEMON_ENV = "CELLBOX_NO_DAEMON"
REQUIRE_DAEMON_ENV = "CELLBOX_REQUIRE_DAEMON"
MAGIC = b"cellbox-keeper-1"
# Signals that end today's CLI: the worker receives them instead, so it behaves the same.
FORWARDED = (1, 2, 3, 15)  # SIGHUP, SIGINT, SIGQUIT, SIGTERM


def socket_path() -> str:
    """Where a daemon run by this user listens: $CELLBOX_KEEPER_SOCKET, else root's socket for
    root, else (rootless mode) the user's own, next to their boxes as cellbox.config places
    those."""
    return socket_paths()[0]


def socket_paths() -> list[str]:
    """Where this user's commands look for a daemon, in order: $CELLBOX_KEEPER_SOCKET alone,
    else their own daemon's socket (users who are not root) and then root's."""
    runtime = os.environ.get("XDG_RUNTIME_DIR", "")
    if os.environ.get(SOCKET_ENV):
        return [os.environ[SOCKET_ENV]]
    if os.getuid() != 0 and os.path.isabs(runtime):
        return [os.path.join(runtime, "cellbox", "keeper.sock"), DEFAULT_SOCKET]
    return [DEFAULT_SOCKET]


def wanted(argv: list[str]) -> bool:
    """isolate's grammar only (subcommands stay in-process), and not --tty-hack, whose run
    must stay in the caller's terminal session."""
    if os.environ.get(NO_DAEMON_ENV, "") not in ("", "0") or not argv[:1]:
        return False
    if not argv[0].startswith("-"):
        return False
    options = argv[:argv.index("--")] if "--" in argv else argv
    return not any(len(a) > 3 and "--tty-hack".startswith(a) for a in options)


def request(argv: list[str]) -> bytes:
    umask = os.umask(0o22)
    os.umask(umask)
    fields = [MAGIC, b"%d" % umask, b"%d" % len(argv), *map(os.fsencode, argv),
              *(k + b"=" + v for k, v in os.environb.items())]
    return b"\0".join(fields)


def _no_daemon(where: str, why: str) -> int | None:
    """No daemon took the command and nothing has started: None (run it in-process), or 2
    when only a daemon may serve (REQUIRE_DAEMON_ENV)."""
    if os.environ.get(REQUIRE_DAEMON_ENV, "") in ("", "0"):
        return None
    print(f"cellbox: no keeper daemon took this command at {where} ({why}), and "
          f"{REQUIRE_DAEMON_ENV} is set: start cellbox keeperd, or unset it", file=sys.stderr)
    return 2


def run(argv: list[str]) -> int | None:
    """The exit code of the command run by the daemon, or None when no daemon takes it."""
    import _socket

    for path in socket_paths():
        sock = _socket.socket(_socket.AF_UNIX, _socket.SOCK_SEQPACKET | _socket.SOCK_CLOEXEC)
        try:
            sock.connect(path)
            break
        except OSError:
            sock.close()
    else:
        return _no_daemon(", ".join(socket_paths()), "nobody listens")
    try:
        cwd = os.open(".", os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC)
        try:
            peer = sock.getsockopt(_socket.SOL_SOCKET, _socket.SO_PEERCRED, 12)  # pid, uid, gid
            if int.from_bytes(peer[4:8], sys.byteorder) not in (0, os.geteuid()):
                raise PermissionError("another user's socket: it gets neither fds nor env")
            fds = b"".join(fd.to_bytes(4, sys.byteorder) for fd in (0, 1, 2, cwd))
            sock.sendmsg([request(argv)], [(_socket.SOL_SOCKET, _socket.SCM_RIGHTS, fds)])
        finally:
            os.close(cwd)
    except OSError as e:
        sock.close()
        return _no_daemon(path, str(e))
    _forward_signals(sock)
    try:
        reply = sock.recv(4096)
    except OSError:
        reply = b""
    return _finish(reply, path)


def _forward_signals(sock) -> None:  # noqa: ANN001
    import _signal

    def forward(signum: int, frame: object) -> None:
        try:
            sock.send(b"kill %d" % signum)
        except OSError:
            pass  # the daemon is gone: the reply says so

    for signum in FORWARDED:
        if _signal.getsignal(signum) != _signal.SIG_IGN:  # ignored stays ignored, as today
            _signal.signal(signum, forward)


def _finish(reply: bytes, path: str) -> int:
    kind, _, value = reply.partition(b" ")
    if kind == b"exit":
        return int(value)
    if kind == b"signal":  # the worker died of a signal we forwarded: die of it too
        import _signal

        signum = int(value)
        _signal.signal(signum, _signal.SIG_DFL)
        sys.stdout.flush()
        os.kill(os.getpid(), signum)
        return 128 + signum
    if kind == b"refused":
        print(f"cellbox: the keeper daemon at {path} refused this request: "
              f"{value.decode(errors='replace')}", file=sys.stderr)
        return 2
    print(f"cellbox: the keeper daemon at {path} ended before the command did; if it was a "
          "run, the box's next command repairs it (see cellbox boxes)", file=sys.stderr)
    return 2
