"""``cellbox keeperd``: the resident keeper daemon behind the thin client (``cellbox.cli.client``).

One single-threaded process (cellbox forks runs only from single-threaded processes) with the
CLI's imports done once: an epoll loop over the listening socket, the clients' connections and
the workers' pidfds. Per request it forks a worker that takes the client's stdio, working
directory, umask, gid and environment and calls the CLI's own ``run_cli``: same code, same
messages, same meta file. The worker is a CLI process in every way that matters to the
lifecycle: it holds the box lock, and it dies with the daemon (PR_SET_PDEATHSIG), so a killed
daemon is a killed CLI: the box's next command repairs it. If the client goes away first
(EOF: it was SIGKILLed), the daemon SIGKILLs the worker, as the kernel would have the CLI.

Only peers with the daemon's own uid are served (SO_PEERCRED), and the socket is mode 0600.

Wire format, one SOCK_SEQPACKET message each:
- client to daemon: ``MAGIC, umask, argc, argv..., environment...``, NUL-separated, with
  stdin, stdout, stderr and the working directory (O_PATH) attached (SCM_RIGHTS);
- client to daemon while the command runs: ``kill N`` forwards signal N (``client.FORWARDED``);
- daemon to client, once: ``exit N``, ``signal N`` (the worker died of it) or ``refused WHY``.
"""

from __future__ import annotations

import os
import selectors
import signal
import socket
import struct
import sys
import traceback
from dataclasses import dataclass
from functools import partial

from cellbox.cli import client
from cellbox.cli.subcommands import parser
from cellbox.errors import CellboxError
from cellbox.linux import privileges

FDS = 4  # stdin, stdout, stderr, working directory
MAX_REQUEST = 1 << 18  # above the default socket send buffer: a bigger request cannot be sent
CREDS = struct.Struct("3i")  # struct ucred: pid, uid, gid


class Refused(Exception):
    """A request the daemon will not run; the client is told why."""


@dataclass
class Request:
    argv: list[str]
    env: list[tuple[bytes, bytes]]
    umask: int
    pid: int  # the client's, from SO_PEERCRED
    gid: int
    fds: list[int]  # FDS of them


@dataclass
class Job:
    conn: socket.socket
    pid: int
    pidfd: int
    client_gone: bool = False


def keeperd_parser():  # noqa: ANN201 - argparse, imported lazily
    p = parser("keeperd", "The resident keeper daemon: it serves cellbox --init, --run and "
               "--cleanup for the thin client over a unix socket, so that a command pays no "
               "Python start-up and imports. Each command runs in a worker forked for it, "
               "with the caller's stdio, working directory, umask, gid and environment. "
               f"Without a daemon (or with {client.NO_DAEMON_ENV}=1) the CLI runs "
               f"in-process, with the same results; with {client.REQUIRE_DAEMON_ENV}=1 it "
               "fails instead. Stop it with SIGTERM: it finishes the "
               "commands in progress first.")
    p.add_argument("--socket", metavar="PATH",
                   help=f"the socket to listen on (default: ${client.SOCKET_ENV}, else "
                        f"{client.DEFAULT_SOCKET} for root and "
                        "$XDG_RUNTIME_DIR/cellbox/keeper.sock for other users; clients look in "
                        "the same place); it is made mode 0600 and only clients with the "
                        "daemon's uid are served")
    return p


def keeperd_main(argv: list[str]) -> int:
    args = keeperd_parser().parse_args(argv)
    _warm()
    daemon = Daemon(args.socket or client.socket_path())
    print(f"cellbox keeperd: listening on {daemon.path}", file=sys.stderr, flush=True)
    daemon.serve()
    return 0


def _warm() -> None:
    """What the CLI imports lazily, imported once here rather than in every worker."""
    import hashlib  # noqa: F401
    import resource  # noqa: F401

    import pyseccomp  # noqa: F401

    from cellbox import box, inside, keeper, rules, spawn, spec, storage  # noqa: F401
    from cellbox.cgroup import v1, v2  # noqa: F401
    from cellbox.cli import commands, options  # noqa: F401
    from cellbox.linux import mounts, namespaces, seccomp, terminal  # noqa: F401
    from cellbox.spawn import request  # noqa: F401

    # The built-in seccomp policy, compiled once (the package's own file: restart the daemon
    # after an upgrade, as any process that has imported cellbox).
    seccomp.compile_filters(seccomp.default_policy())

    # Descriptors 0-2 must be taken, so that no client's descriptor is received as one.
    while (fd := os.open(os.devnull, os.O_RDWR)) <= 2:
        pass
    os.close(fd)


class Daemon:
    def __init__(self, path: str) -> None:
        self.path = path
        self.pid = os.getpid()
        self.selector = selectors.DefaultSelector()
        self.jobs: dict[int, Job] = {}  # by pidfd
        self.listener: socket.socket | None = _listen(path)
        self.wake_r, wake_w = os.pipe2(os.O_NONBLOCK | os.O_CLOEXEC)
        self.wake_w = wake_w
        signal.set_wakeup_fd(wake_w)
        for signum in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
            signal.signal(signum, lambda *_: None)  # the wakeup fd tells the loop
        self.selector.register(self.listener, selectors.EVENT_READ, self._accept)
        self.selector.register(self.wake_r, selectors.EVENT_READ, self._stop)

    def serve(self) -> None:
        """Until stopped, then until the commands in progress have ended."""
        while self.listener is not None or self.jobs:
            for key, _ in self.selector.select():
                if self.selector.get_map().get(key.fd) is key:  # not closed by an earlier one
                    key.data()

    def _stop(self) -> None:
        os.read(self.wake_r, 64)
        if self.listener is not None:
            self.selector.unregister(self.listener)
            self.listener.close()
            self.listener = None
            os.unlink(self.path)

    def _accept(self) -> None:
        assert self.listener is not None  # registered only while it is open
        conn, _ = self.listener.accept()
        try:
            request = _receive(conn)
        except (Refused, OSError, ValueError) as e:
            _refuse(conn, e)
            return
        try:
            pid = os.fork()
            if pid == 0:
                self._worker(conn, request)
        except OSError as e:  # out of processes or memory: a CLI could not start either
            _refuse(conn, e)
            return
        finally:
            for fd in request.fds:
                os.close(fd)
        job = Job(conn, pid, os.pidfd_open(pid))
        self.jobs[job.pidfd] = job
        self.selector.register(conn, selectors.EVENT_READ, partial(self._from_client, job))
        self.selector.register(job.pidfd, selectors.EVENT_READ, partial(self._reap, job))

    def _from_client(self, job: Job) -> None:
        try:
            data = job.conn.recv(64)
        except OSError:
            data = b""
        if not data:  # the client is gone, as if a CLI process had been SIGKILLed
            job.client_gone = True
            self.selector.unregister(job.conn)
            signal.pidfd_send_signal(job.pidfd, signal.SIGKILL)
            return
        kind, _, value = data.partition(b" ")
        if kind == b"kill" and value.isdigit() and int(value) in client.FORWARDED:
            signal.pidfd_send_signal(job.pidfd, int(value))

    def _reap(self, job: Job) -> None:
        del self.jobs[job.pidfd]
        self.selector.unregister(job.pidfd)
        _, status = os.waitpid(job.pid, 0)
        os.close(job.pidfd)
        code = os.waitstatus_to_exitcode(status)
        if not job.client_gone:
            self.selector.unregister(job.conn)
            _reply(job.conn, b"exit %d" % code if code >= 0 else b"signal %d" % -code)
        job.conn.close()

    def _worker(self, conn: socket.socket, request: Request) -> None:
        """The forked worker: run the command as the client's CLI process would; never
        returns."""
        code = 2
        try:
            privileges.die_with_parent()
            if os.getppid() != self.pid:  # it died before the line above: end now
                os._exit(code)
            conn.close()
            self._close_daemon_fds()
            code = _run_command(request)
        except BaseException:  # noqa: BLE001 - a bug of ours: say where, on the client's stderr
            traceback.print_exc()
            _flush()
        finally:
            os._exit(code)

    def _close_daemon_fds(self) -> None:
        signal.set_wakeup_fd(-1)
        signal.signal(signal.SIGINT, signal.default_int_handler)
        for signum in (signal.SIGTERM, signal.SIGHUP):
            signal.signal(signum, signal.SIG_DFL)
        for job in self.jobs.values():
            job.conn.close()
            os.close(job.pidfd)
        self.selector.close()
        if self.listener is not None:
            self.listener.close()
        os.close(self.wake_r)
        os.close(self.wake_w)


def _listen(path: str) -> socket.socket:
    os.makedirs(os.path.dirname(path) or ".", mode=0o755, exist_ok=True)
    probe = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET)
    try:
        probe.connect(path)
        raise CellboxError(f"another keeper daemon is listening at {path}: stop it first, or "
                           "give this one another --socket")
    except (FileNotFoundError, ConnectionRefusedError):
        if os.path.lexists(path):
            os.unlink(path)  # a dead daemon's socket
    finally:
        probe.close()
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET)
    old = os.umask(0o177)  # mode 0600 from the start: no window for other users
    try:
        listener.bind(path)
    finally:
        os.umask(old)
    listener.listen(64)
    return listener


def _receive(conn: socket.socket) -> Request:
    conn.settimeout(5)  # the client sends its request right after connecting
    msg, ancillary, flags, _ = conn.recvmsg(MAX_REQUEST, socket.CMSG_SPACE(FDS * 4),
                                            socket.MSG_CMSG_CLOEXEC)
    conn.settimeout(None)
    fds: list[int] = []
    for level, kind, data in ancillary:
        if level == socket.SOL_SOCKET and kind == socket.SCM_RIGHTS:
            fds += struct.unpack(f"{len(data) // 4}i", data[:len(data) // 4 * 4])
    try:
        return _parse(conn, msg, flags, fds)
    except (Refused, ValueError):
        for fd in fds:
            os.close(fd)
        raise


def _parse(conn: socket.socket, msg: bytes, flags: int, fds: list[int]) -> Request:
    # The uid is checked after the read, so that the client gets the refusal, not a reset.
    pid, uid, gid = CREDS.unpack(conn.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED,
                                               CREDS.size))
    if uid != os.geteuid():
        raise Refused(f"uid {uid} is not the daemon's uid {os.geteuid()}: run your own "
                      f"cellbox keeperd with ${client.SOCKET_ENV} set")
    fields = msg.split(b"\0")
    if flags & (socket.MSG_TRUNC | socket.MSG_CTRUNC) or len(fds) != FDS \
            or fields[0] != client.MAGIC or len(fields) < 3:
        raise Refused("not a request of this version of the cellbox client")
    argc = int(fields[2])
    env = [tuple(item.split(b"=", 1)) for item in fields[3 + argc:] if b"=" in item]
    return Request(argv=[os.fsdecode(a) for a in fields[3:3 + argc]],
                   env=env, umask=int(fields[1]), pid=pid, gid=gid, fds=fds)  # type: ignore[arg-type]


def _refuse(conn: socket.socket, why: Exception) -> None:
    _reply(conn, b"refused %s" % str(why).encode())
    conn.close()


def _reply(conn: socket.socket, data: bytes) -> None:
    try:
        conn.send(data)
    except OSError:
        pass  # the client is gone: nobody to tell


def _run_command(request: Request) -> int:
    """In the worker: become the client's CLI process, then run its command."""
    for target, fd in enumerate(request.fds[:3]):
        os.dup2(fd, target)
    os.fchdir(request.fds[3])
    for fd in request.fds:
        os.close(fd)
    os.umask(request.umask)
    os.environ.clear()
    for key, value in request.env:
        os.environb[key] = value
    sys.stdin, sys.stdout, sys.stderr = (
        open(fd, "r" if fd == 0 else "w", buffering=1 if fd == 2 or os.isatty(fd) else -1,
             encoding="utf-8", errors="backslashreplace" if fd == 2 else "strict",
             closefd=False) for fd in (0, 1, 2))
    sys.argv = ["cellbox", *request.argv]
    try:
        _take_identity(request)
    except OSError as e:
        print(f"cellbox: this keeper daemon cannot run as your process would ({e}): set "
              f"{client.NO_DAEMON_ENV}=1", file=sys.stderr)
        return 2
    try:
        from cellbox.cli.commands import run_cli

        code = run_cli(request.argv)
    except SystemExit as e:
        code = e.code if isinstance(e.code, int) else 1
    except KeyboardInterrupt:  # as Python does: the traceback, then death by SIGINT
        traceback.print_exc()
        _flush()
        signal.signal(signal.SIGINT, signal.SIG_DFL)
        os.kill(os.getpid(), signal.SIGINT)
        code = 130
    except BaseException:  # noqa: BLE001 - as Python does for an uncaught exception
        traceback.print_exc()
        code = 1
    _flush()
    return code


def _take_identity(request: Request) -> None:
    """The client's gid and resource limits: the run's unset limits are its keeper's."""
    import resource

    if request.gid != os.getgid():
        os.setresgid(request.gid, request.gid, request.gid)
    for name in dir(resource):
        if name.startswith("RLIMIT_"):
            which = getattr(resource, name)
            try:
                resource.setrlimit(which, resource.prlimit(request.pid, which))
            except ValueError as e:  # a hard limit above the daemon's, which it may not raise
                raise PermissionError(f"{name}: {e}") from None


def _flush() -> None:
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except OSError:
            pass
