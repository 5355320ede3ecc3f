"""``cellbox keeperd``: the resident keeper daemon behind the thin client (``cellbox.cli.client``).

One single-threaded process (cellbox forks runs only from single-threaded processes) with the
CLI's imports done once: an epoll loop over the listening socket, the clients' connections and
the workers' pidfds. A worker takes the client's stdio, working directory, umask, gid and
environment and calls the CLI's own ``run_cli``: same code, same messages, same meta file.
The worker is a CLI process in every way that matters to the lifecycle: it holds the box lock
while it works, and it dies with the daemon (PR_SET_PDEATHSIG), so a killed daemon is a killed
CLI: the box's next command repairs it. If the client goes away first (EOF: it was
SIGKILLed), the daemon SIGKILLs the worker, as the kernel would have the CLI.

Root's daemon keeps one resident worker per box that it has served ``--init`` or ``--run``:
it takes that box's commands one at a time, and keeps the box's init warm between them
(``box.WarmInits``), so that a ``--run`` costs neither a fork nor a new box init. After each
command it puts its own process state back (stdio, directory, umask, gid, resource limits,
whom it acts for; the next command's environment replaces the last one's), and tells its
client the exit code itself. After the box's ``--cleanup`` it stays ``LINGER`` seconds for
the box's next ``--init`` (a judge's next test case), then goes; the daemon's end ends it too
(its box inits die with it: the boxes stay initialised, and their next ``--run`` warms them
again). A command for a box whose resident is busy gets a worker forked for it alone, which
waits for the box's lock or says that the box is busy, as a CLI would; so does any other
command.

Whom it serves (SO_PEERCRED, SO_PEERGROUPS): a daemon run by a user serves only that uid, on a
socket of mode 0600 (rootless mode). Root's daemon listens on a socket any user may connect to
and serves root and the users and groups its config allows (``daemon_users``,
``daemon_groups``; default: group ``cellbox``), isolate's grammar only, and refuses anyone
else with a message. Its worker for a user acts as isolate's setuid binary does for its caller:
that user initialises and owns the box, and every host path the command names is reached with
the user's permissions (``cellbox.linux.privileges.requester_access``); the config is the
daemon's own, whatever ``CELLBOX_CONFIG`` the user passes.

Wire format, one SOCK_SEQPACKET message each:
- client to daemon: ``MAGIC, umask, argc, argv..., environment...``, NUL-separated, with
  stdin, stdout, stderr and the working directory (O_PATH) attached (SCM_RIGHTS);
- client to daemon while the command runs: ``kill N`` forwards signal N (``client.FORWARDED``);
- daemon to client, once: ``exit N``, ``signal N`` (the worker died of it) or ``refused WHY``;
- daemon to a resident worker: the ``Request`` (pickled) with its descriptors and the
  client's connection, on which the resident replies itself after telling the daemon ``done``.
"""

from __future__ import annotations

import gc
import os
import pickle
import selectors
import signal
import socket
import struct
import sys
import time
import traceback
from dataclasses import dataclass, replace
from functools import partial
from typing import TYPE_CHECKING

from cellbox.cli import client
from cellbox.cli.subcommands import parser
from cellbox.config import ENV_VAR, Config, ConfigCache, load_config
from cellbox.errors import CellboxError
from cellbox.linux import privileges
from cellbox.linux.proc import RLIMITS

if TYPE_CHECKING:
    from collections.abc import Callable

    from cellbox.box import WarmInits
    from cellbox.cgroup import CgroupBackend

FDS = 4  # stdin, stdout, stderr, working directory
DONE = b"done"  # from a resident worker: it has told the client the exit code itself
LINGER = 2.0  # seconds a resident stays after its box's --cleanup, for the box's next --init
MAX_REQUEST = 1 << 18  # above the default socket send buffer: a bigger request cannot be sent
CREDS = struct.Struct("3i")  # struct ucred: pid, uid, gid
SO_PEERGROUPS = 59
MAX_GROUPS = 256  # the most getsockopt's 1024-byte buffer holds


class Refused(Exception):
    """A request the daemon will not run; the client is told why."""


@dataclass
class Request:
    argv: list[str]
    env: list[tuple[bytes, bytes]]
    umask: int
    pid: int  # the client's, from SO_PEERCRED
    client: privileges.Credentials  # from SO_PEERCRED and SO_PEERGROUPS
    fds: list[int]  # FDS of them


@dataclass
class Worker:
    """A forked process that runs clients' commands: one (then it exits), or, a resident,
    those of one box, one at a time."""

    conn: socket.socket | None  # the client of the command in progress
    pid: int
    pidfd: int
    client_gone: bool = False
    box: tuple[str | None, int] | None = None  # a resident's: (config file, box id)
    channel: socket.socket | None = None  # a resident's: requests to it, DONE back
    last: bool = False  # a resident's: its box is gone after this command (a --cleanup)
    linger: float | None = None  # a resident's whose box is gone: dismissed then, if unused


def keeperd_parser():  # noqa: ANN201 - argparse, imported lazily
    p = parser("keeperd", "The resident keeper daemon: it serves cellbox --init, --run and "
               "--cleanup for the cellbox client over a unix socket, so that a command pays "
               "no Python start-up and imports. A command runs in a worker, with the caller's "
               "stdio, working directory, umask and environment. Root's daemon keeps a "
               "worker per initialised box that keeps the box's init warm between its --run "
               "commands, until --cleanup. Run by "
               "root, it also serves the users and groups the config allows (daemon_users, "
               "daemon_groups; default: group cellbox) as a setuid isolate would: the box "
               "belongs to the user, and every path they name is reached with their own "
               "permissions. Without a daemon (or with "
               f"{client.NO_DAEMON_ENV}=1) the CLI runs in-process, with the same results; with "
               f"{client.REQUIRE_DAEMON_ENV}=1 it fails instead. "
               "Stop it with SIGTERM: it finishes the commands in progress first.")
    p.add_argument("--socket", metavar="PATH",
                   help=f"the socket to listen on (default: ${client.SOCKET_ENV}, else "
                        f"{client.DEFAULT_SOCKET} for root and "
                        "$XDG_RUNTIME_DIR/cellbox/keeper.sock for other users; clients look in "
                        "the same place); root's is open to every user, who is then served "
                        "or told why not; another user's is mode 0600, for that user only")
    p.add_argument("--idle-exit", metavar="SECONDS", type=float,
                   help="stop after this many seconds without a command (default: never; "
                        "a daemon that the client starts on demand uses daemon_idle_exit "
                        "from the config)")
    return p


def keeperd_main(argv: list[str]) -> int:
    args = keeperd_parser().parse_args(argv)
    if args.idle_exit is not None and not args.idle_exit > 0:
        raise CellboxError(f"--idle-exit={args.idle_exit}: give a number of seconds above 0")
    config = load_config()
    _warm()
    listener = _from_systemd()
    if listener is not None:  # systemd's socket unit listens; it stays when we stop
        daemon = Daemon(listener.getsockname(), listener, None, config, args.idle_exit)
    else:
        path = args.socket or client.socket_path()
        listener = _listen(path)
        st = os.stat(path)
        daemon = Daemon(path, listener, (st.st_dev, st.st_ino), config, args.idle_exit)
    print(f"cellbox keeperd: listening on {daemon.path}", file=sys.stderr, flush=True)
    daemon.serve()
    return 0


def start_on_demand() -> bool:
    """Root's command found no daemon: start one (unless the config's daemon_autostart is
    off), which stops after daemon_idle_exit seconds without a command. True once one
    listens. One starter at a time (a lock file next to the socket)."""
    import fcntl
    import subprocess

    try:
        config = load_config()
    except CellboxError:
        return False  # the command, in-process, says what is wrong with it
    if not config.daemon_autostart:
        return False
    path = client.socket_path()
    os.makedirs(os.path.dirname(path) or ".", mode=0o755, exist_ok=True)
    with open(path + ".lock", "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if _listening(path):  # another command started it meanwhile
            return True
        code = (f"import sys; sys.path[:0] = {sys.path!r}; "
                "from cellbox.cli.main import main; main()")
        daemon = subprocess.Popen(
            [sys.executable, "-I", "-S", "-c", code, "keeperd", "--socket", path,
             "--idle-exit", str(config.daemon_idle_exit)],
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
            cwd="/", start_new_session=True)
        deadline = time.monotonic() + 10
        while daemon.poll() is None and time.monotonic() < deadline:
            if _listening(path):
                return True
            time.sleep(0.002)
        return False


def _listening(path: str) -> bool:
    probe = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET)
    try:
        probe.connect(path)
        return True
    except OSError:
        return False
    finally:
        probe.close()


def _warm() -> None:
    """What the CLI imports lazily, imported once here rather than in every worker."""
    import hashlib  # noqa: F401
    import resource  # noqa: F401

    import pyseccomp  # noqa: F401

    from cellbox import box, boxinit, keeper, policy, rules, spec, storage  # noqa: F401
    from cellbox.boxinit import plan  # noqa: F401
    from cellbox.cgroup import v1, v2  # noqa: F401
    from cellbox.cli import commands, options  # noqa: F401
    from cellbox.linux import mounts, seccomp, terminal  # noqa: F401

    # The built-in seccomp policy, compiled once (the package's own file: restart the daemon
    # after an upgrade, as any process that has imported cellbox); the box init's build found
    # (its sources hashed) once.
    seccomp.compile_filters(policy.default_policy())
    boxinit.binary()

    # Descriptors 0-2 must be taken, so that no client's descriptor is received as one.
    while (fd := os.open(os.devnull, os.O_RDWR)) <= 2:
        pass
    os.close(fd)

    # What is loaded now stays: the workers' collector need not visit it, which would copy
    # every page of it into each forked worker.
    gc.freeze()


class Daemon:
    def __init__(self, path: str, listener: socket.socket, socket_id: tuple[int, int] | None,
                 config: Config, idle_exit: float | None = None) -> None:
        self.path = path
        # (device, inode) of the socket file it made and removes when it stops, unless a
        # later daemon has bound the path meanwhile; None: systemd's, which stays
        self.socket_id = socket_id
        self.config = config
        self.idle_exit = idle_exit  # seconds without a command, then stop (None: never)
        self.pid = os.getpid()
        self.selector = selectors.DefaultSelector()
        self.workers: dict[int, Worker] = {}  # by pidfd
        # (config file, box id) -> its resident worker; root's daemon only (a resident puts
        # back resource limits that a user's process could not raise again)
        self.residents: dict[tuple[str | None, int], Worker] | None = \
            {} if os.geteuid() == 0 else None
        self.backends: dict[tuple[str, bool], CgroupBackend] = {}  # detected once, by cg_root
        self.configs = ConfigCache()  # the commands' config files, read again when changed
        self.connecting: set[socket.socket] = set()  # accepted, their request not yet read
        self.in_hand: socket.socket | None = None  # the client whose request is being served
        self.last_command = time.monotonic()  # (or the start)
        self.listener: socket.socket | None = listener
        self.wake_r, wake_w = os.pipe2(os.O_NONBLOCK | os.O_CLOEXEC)
        self.wake_w = wake_w
        signal.set_wakeup_fd(wake_w)
        for signum in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
            signal.signal(signum, lambda *_: None)  # the wakeup fd tells the loop
        self.selector.register(self.listener, selectors.EVENT_READ, self._accept)
        self.selector.register(self.wake_r, selectors.EVENT_READ, self._stop)

    def serve(self) -> None:
        """Until stopped, then until the commands in progress have ended."""
        while self.listener is not None or self.workers or self.connecting:
            busy = self.connecting or any(w.conn for w in self.workers.values())
            now = time.monotonic()
            deadlines = [w.linger for w in self.workers.values() if w.linger is not None]
            if not busy and self.idle_exit is not None:
                deadlines.append(self.last_command + self.idle_exit)
            events = self.selector.select(max(0.0, min(deadlines) - now) if deadlines
                                          else None)
            now = time.monotonic()
            for worker in list(self.workers.values()):
                if worker.linger is not None and worker.linger <= now:
                    self._dismiss(worker)
            if not events and self.listener is not None and not busy \
                    and self.idle_exit is not None \
                    and now >= self.last_command + self.idle_exit:
                self._idle()
            for key, _ in events:
                if self.selector.get_map().get(key.fd) is key:  # not closed by an earlier one
                    key.data()

    def _stop(self) -> None:
        os.read(self.wake_r, 64)
        self._close_listener()
        for conn in self.connecting:  # connected, but sent nothing yet: nothing started
            self.selector.unregister(conn)
            conn.close()
        self.connecting.clear()

    def _close_listener(self) -> None:
        if self.listener is not None:
            self.selector.unregister(self.listener)
            self.listener.close()
            self.listener = None
            self._unlink()
        for resident in list((self.residents or {}).values()):
            if not self._if_done(resident) and resident.conn is None:
                self._dismiss(resident)  # (a busy one ends after its command)

    def _unlink(self) -> None:
        if self.socket_id is None:
            return
        try:
            st = os.stat(self.path)
            if (st.st_dev, st.st_ino) == self.socket_id:
                os.unlink(self.path)
        except FileNotFoundError:
            pass

    def _idle(self) -> None:
        """No command for idle_exit seconds: stop, serving first the clients that connected
        before the socket went (a new daemon may take its path at once)."""
        assert self.listener is not None
        self._unlink()
        self.listener.setblocking(False)
        while True:
            try:
                self._accept()
            except BlockingIOError:
                break
        self._close_listener()

    def _accept(self) -> None:
        """A new client: its request is read at once if it has come (the client sends it as
        soon as it has connected), else when it comes (a client that connects and sends
        nothing holds up nobody)."""
        assert self.listener is not None  # registered only while it is open
        conn, _ = self.listener.accept()
        if _pending(conn):
            self._serve(conn)
            return
        self.connecting.add(conn)
        self.selector.register(conn, selectors.EVENT_READ, partial(self._request, conn))

    def _request(self, conn: socket.socket) -> None:
        self.connecting.discard(conn)
        self.selector.unregister(conn)
        self._serve(conn)

    def _serve(self, conn: socket.socket) -> None:
        """The client's request, read: answered, handed to a worker, or refused."""
        self.last_command = time.monotonic()
        try:
            request = _receive(conn, self.config)
        except (Refused, OSError, ValueError) as e:
            _refuse(conn, e)
            return
        target = _box_command(request.argv)
        if target is not None and target[0] == "cleanup" and self._nothing_to_clean(request):
            for fd in request.fds:
                os.close(fd)
            _reply(conn, b"exit 0")
            conn.close()
            return
        self.in_hand = conn
        try:
            worker = self._resident_for(request, target)
            if worker is not None:
                _hand_over(worker, request, conn)
            else:
                worker = self._fork(lambda _: self._work(request))
        except OSError as e:  # out of processes or memory: a CLI could not start either
            _refuse(conn, e)
            return
        finally:
            self.in_hand = None
            for fd in request.fds:
                os.close(fd)
        worker.conn = conn
        self.selector.register(conn, selectors.EVENT_READ, partial(self._from_client, worker))

    def _fork(self, child: Callable[[socket.socket | None], None],
              box: tuple[str | None, int] | None = None) -> Worker:
        """A worker running ``child`` (which never returns); with ``box``, that box's
        resident, to which ``child`` gets its end of the channel."""
        channel = theirs = None
        if box is not None:
            channel, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        try:
            pid = os.fork()
            if pid == 0:
                if channel is not None:
                    channel.close()
                child(theirs)
        except OSError:
            for end in (channel, theirs):
                if end is not None:
                    end.close()
            raise
        if theirs is not None:
            theirs.close()
        worker = Worker(None, pid, os.pidfd_open(pid), box=box, channel=channel)
        self.workers[worker.pidfd] = worker
        self.selector.register(worker.pidfd, selectors.EVENT_READ, partial(self._reap, worker))
        return worker

    def _nothing_to_clean(self, request: Request) -> bool:
        """Root's daemon answers itself, without a worker, a --cleanup that would find
        nothing to do (``commands.cleanup_finds_nothing``), checked for its client (the
        requester) with the config the command would use."""
        from cellbox.box import Boxes
        from cellbox.cli.commands import cleanup_finds_nothing

        config = _config_of(request)
        if self.residents is None or (config is None and ENV_VAR in os.environ):
            return False  # (the default config file, which the daemon's environment hides)
        privileges.act_for(request.client if request.client.uid != os.geteuid() else None)
        try:
            return cleanup_finds_nothing(
                request.argv, lambda: Boxes(self.configs.get(config), backends=self.backends))
        finally:
            privileges.act_for(None)

    def _resident_for(self, request: Request, target: tuple[str, int] | None
                      ) -> Worker | None:
        """The idle resident worker of the request's box (``target``: its command and box id;
        a resident is started for an --init or --run), or None: a worker of its own."""
        if self.residents is None or target is None:
            return None
        command, box_id = target
        box = (_config_of(request), box_id)
        resident = self.residents.get(box)
        if resident is None and command != "cleanup":
            # (the request's descriptors are handed over to it below, not inherited)
            resident = self._fork(lambda channel: self._reside(channel, request.fds), box)
            self.residents[box] = resident
        if resident is not None and resident.conn is not None:
            self._if_done(resident)  # (its last client has not hung up yet)
        if resident is None or resident.conn is not None:
            return None
        resident.last, resident.linger = command == "cleanup", None
        return resident

    def _if_done(self, worker: Worker) -> bool:
        """Whether the resident's command has ended (it said DONE, then told its client the
        exit code itself). The daemon does not watch the channel, so that no wake-up of its
        own comes between the command's end and the client's answer: it looks when the
        client hangs up or signals, when another command comes for the box, and when it
        stops. A --cleanup or the daemon's end then dismisses the resident."""
        if worker.channel is None or _pending(worker.channel) != DONE:
            return False
        worker.channel.recv(len(DONE))
        if worker.conn is not None:
            if not worker.client_gone:
                self.selector.unregister(worker.conn)
            worker.conn.close()
            worker.conn = None
        if self.listener is None:
            self._dismiss(worker)
        elif worker.last:  # kept a while for the box's next --init (a judge's next test)
            worker.linger = time.monotonic() + LINGER
        return True

    def _dismiss(self, worker: Worker) -> None:
        """No more commands for this resident: it ends its box's init and exits."""
        worker.linger = None
        if self.residents is not None and worker.box is not None \
                and self.residents.get(worker.box) is worker:
            del self.residents[worker.box]
        if worker.channel is not None:
            worker.channel.close()
            worker.channel = None

    def _from_client(self, worker: Worker) -> None:
        assert worker.conn is not None  # registered only while it has a client
        try:
            data = worker.conn.recv(64)
        except OSError:
            data = b""
        if self._if_done(worker):  # the command is over: the client left, or signalled
            return  # too late
        if not data:  # the client is gone, as if a CLI process had been SIGKILLed
            worker.client_gone = True
            self.selector.unregister(worker.conn)
            signal.pidfd_send_signal(worker.pidfd, signal.SIGKILL)
            return
        kind, _, value = data.partition(b" ")
        if kind == b"kill" and value.isdigit() and int(value) in client.FORWARDED:
            signal.pidfd_send_signal(worker.pidfd, int(value))

    def _reap(self, worker: Worker) -> None:
        del self.workers[worker.pidfd]
        self.selector.unregister(worker.pidfd)
        _, status = os.waitpid(worker.pid, 0)
        os.close(worker.pidfd)
        self._dismiss(worker)
        if worker.conn is None:  # a resident between commands
            return
        code = os.waitstatus_to_exitcode(status)
        if not worker.client_gone:
            self.selector.unregister(worker.conn)
            _reply(worker.conn, b"exit %d" % code if code >= 0 else b"signal %d" % -code)
        worker.conn.close()

    def _work(self, request: Request) -> None:
        """The forked worker: run the command as the client's CLI process would; never
        returns."""
        code = 2
        try:
            self._become_worker()
            code = _run_command(request, os.environ.get(ENV_VAR))
        except BaseException:  # noqa: BLE001 - a bug of ours: say where, on the client's stderr
            traceback.print_exc()
            _flush()
        finally:
            os._exit(code)

    def _reside(self, channel: socket.socket | None, inherited: list[int]) -> None:
        """The forked resident worker of a box: its commands, one at a time, until the
        daemon hangs up; never returns."""
        from cellbox.box import WarmInits

        assert channel is not None
        code = 2
        warm = WarmInits()
        config = os.environ.get(ENV_VAR)  # the daemon's: the commands change the environment
        try:
            self._become_worker()
            for fd in inherited:
                os.close(fd)
            own = _Own.save()
            while (handed := _next_request(channel)) is not None:
                request, conn = handed
                try:
                    code = _run_command(request, config, warm)
                except BaseException:  # noqa: BLE001 - a bug of ours, on the client's stderr
                    traceback.print_exc()
                    _flush()
                    code = 2
                finally:
                    own.restore()
                _answer(channel, conn, code)
            code = 0
        finally:
            warm.close()
            os._exit(code)

    def _become_worker(self) -> None:
        """In a forked worker: die with the daemon, and drop the daemon's descriptors."""
        privileges.die_with_parent()
        if os.getppid() != self.pid:  # it died before the line above: end now
            os._exit(2)
        self._close_daemon_fds()

    def _close_daemon_fds(self) -> None:
        signal.set_wakeup_fd(-1)
        signal.signal(signal.SIGINT, signal.default_int_handler)
        for signum in (signal.SIGTERM, signal.SIGHUP):
            signal.signal(signum, signal.SIG_DFL)
        for worker in self.workers.values():
            for end in (worker.conn, worker.channel):
                if end is not None:
                    end.close()
            os.close(worker.pidfd)
        for conn in [*self.connecting, *([self.in_hand] if self.in_hand else [])]:
            conn.close()
        self.selector.close()
        if self.listener is not None:
            self.listener.close()
        os.close(self.wake_r)
        os.close(self.wake_w)


def _from_systemd() -> socket.socket | None:
    """The listening socket that systemd's socket unit passed (sd_listen_fds: fd 3)."""
    if os.environ.get("LISTEN_PID") != str(os.getpid()) or os.environ.get("LISTEN_FDS") != "1":
        return None
    for name in ("LISTEN_PID", "LISTEN_FDS", "LISTEN_FDNAMES"):
        os.environ.pop(name, None)  # not for the workers' children
    listener = socket.socket(fileno=3)
    if listener.family != socket.AF_UNIX or listener.type != socket.SOCK_SEQPACKET:
        raise CellboxError("the socket systemd passed is not a unix SOCK_SEQPACKET socket: "
                           "use systemd/cellbox-keeperd.socket (ListenSequentialPacket=)")
    os.set_inheritable(3, False)
    return listener


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
    # A user's daemon: mode 0600 from the start, no window for other users. Root's: anyone
    # may connect, and is told whether they are served (_authorise).
    old = os.umask(0o111 if os.geteuid() == 0 else 0o177)
    try:
        listener.bind(path)
    finally:
        os.umask(old)
    listener.listen(64)
    return listener


def _receive(conn: socket.socket, config: Config) -> Request:
    msg, fds, flags = _receive_fds(conn, MAX_REQUEST, flags=socket.MSG_DONTWAIT)
    try:
        return _parse(conn, msg, flags, fds, config)
    except (Refused, ValueError):
        for fd in fds:
            os.close(fd)
        raise


def _receive_fds(conn: socket.socket, size: int, most: int = FDS, flags: int = 0
                 ) -> tuple[bytes, list[int], int]:
    """One message and the descriptors attached to it, up to ``most`` (close-on-exec: no
    box init started later may inherit a client's), and the message flags."""
    msg, ancillary, msg_flags, _ = conn.recvmsg(size, socket.CMSG_SPACE(most * 4),
                                                socket.MSG_CMSG_CLOEXEC | flags)
    fds: list[int] = []
    for level, kind, data in ancillary:
        if level == socket.SOL_SOCKET and kind == socket.SCM_RIGHTS:
            fds += struct.unpack(f"{len(data) // 4}i", data[:len(data) // 4 * 4])
    return msg, fds, msg_flags


def _box_command(argv: list[str]) -> tuple[str, int] | None:
    """(init, run or cleanup; the box id) of a command of isolate's grammar; None for any
    other (or one that the CLI will refuse, and explain)."""
    from cellbox.cli.commands import COMMANDS
    from cellbox.cli.options import parse

    try:
        values, _ = parse(argv)
        box_id = int(str(values.get("box-id") or 0))
    except (CellboxError, ValueError):
        return None
    chosen = [c for c in COMMANDS if c in values]
    if len(chosen) != 1 or chosen[0] not in ("init", "run", "cleanup"):
        return None
    return chosen[0], box_id


def _config_of(request: Request) -> str | None:
    """The config file the request's command will use (None: the default): root's names its
    own; a user's, the daemon's."""
    env = dict(request.env) if request.client.uid == os.geteuid() else os.environb
    config = env.get(ENV_VAR.encode())
    return None if config is None else os.fsdecode(config)


def _hand_over(resident: Worker, request: Request, conn: socket.socket) -> None:
    """The request to an idle resident worker, with the client's connection for the reply."""
    assert resident.channel is not None
    fds = [*request.fds, conn.fileno()]
    rights = [(socket.SOL_SOCKET, socket.SCM_RIGHTS, struct.pack(f"{len(fds)}i", *fds))]
    resident.channel.sendmsg([pickle.dumps(replace(request, fds=[]))], rights)


def _next_request(channel: socket.socket) -> tuple[Request, socket.socket] | None:
    """In a resident worker: the next request the daemon hands over, and the client's
    connection (None: the daemon hung up)."""
    msg, fds, flags = _receive_fds(channel, 4 * MAX_REQUEST, FDS + 1)
    if not msg:
        return None
    if len(fds) != FDS + 1 or flags & (socket.MSG_TRUNC | socket.MSG_CTRUNC):
        raise RuntimeError(f"a request came from the daemon with {len(fds)} descriptors")
    return replace(pickle.loads(msg), fds=fds[:FDS]), socket.socket(fileno=fds[FDS])


def _answer(channel: socket.socket, conn: socket.socket, code: int) -> None:
    """In a resident worker: the command's exit code to its client, after telling the
    daemon that the command is done (so that the client's leaving is no surprise to it)."""
    channel.send(DONE)
    _reply(conn, b"exit %d" % code)
    conn.close()


def _pending(channel: socket.socket) -> bytes:
    """The start of the message waiting on a socket (a resident's channel, a client's
    connection), left there (b"": none, or the peer has hung up)."""
    try:
        return channel.recv(64, socket.MSG_PEEK | socket.MSG_DONTWAIT)
    except BlockingIOError:
        return b""


def _parse(conn: socket.socket, msg: bytes, flags: int, fds: list[int],
           config: Config) -> Request:
    # The peer is checked after the read, so that the client gets the refusal, not a reset.
    pid, uid, gid = CREDS.unpack(conn.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED,
                                               CREDS.size))
    peer = privileges.Credentials(uid, gid, _peer_groups(conn))
    _authorise(peer, config)
    fields = msg.split(b"\0")
    if flags & (socket.MSG_TRUNC | socket.MSG_CTRUNC) or len(fds) != FDS \
            or fields[0] != client.MAGIC or len(fields) < 3:
        raise Refused("not a request of this version of the cellbox client")
    argc = int(fields[2])
    env = [tuple(item.split(b"=", 1)) for item in fields[3 + argc:] if b"=" in item]
    argv = [os.fsdecode(a) for a in fields[3:3 + argc]]
    if uid != os.geteuid() and (not argv or not argv[0].startswith("-")):
        # (what a setuid isolate would do; the rest of the CLI runs as its user, in-process)
        raise Refused("this daemon serves other users isolate's grammar only (--init, --run, "
                      "--cleanup and their options)")
    return Request(argv=argv, env=env, umask=int(fields[1]), pid=pid,  # type: ignore[arg-type]
                   client=peer, fds=fds)


def _peer_groups(conn: socket.socket) -> tuple[int, ...]:
    try:
        data = conn.getsockopt(socket.SOL_SOCKET, SO_PEERGROUPS, 4 * MAX_GROUPS)
    except OSError as e:
        raise Refused(f"cannot read your groups ({e.strerror}; more than {MAX_GROUPS}?)") \
            from None
    return struct.unpack(f"{len(data) // 4}I", data)


def _authorise(peer: privileges.Credentials, config: Config) -> None:
    """Root's daemon serves root, the config's daemon_users and the members of its
    daemon_groups; a user's daemon, that user only."""
    me = os.geteuid()
    if peer.uid in (0, me):
        return
    if me != 0:
        raise Refused(f"uid {peer.uid} is not the daemon's uid {me}: run your own cellbox "
                      f"keeperd with ${client.SOCKET_ENV} set")
    import grp
    import pwd

    try:
        name = pwd.getpwuid(peer.uid).pw_name
    except KeyError:
        name = str(peer.uid)
    gids = set()
    for group in config.daemon_groups:
        try:
            gids.add(grp.getgrnam(group).gr_gid)
        except KeyError:
            pass  # a group this host lacks has no members
    if name in config.daemon_users or gids & {peer.gid, *peer.groups}:
        return
    allowed = ", ".join([*(f"user {u}" for u in config.daemon_users),
                         *(f"group {g}" for g in config.daemon_groups)]) or "root only"
    raise Refused(f"user {name} (uid {peer.uid}) may not use root's cellbox daemon (it serves "
                  f"root and: {allowed}); an administrator can add you to one of those groups "
                  "(then log in again), or you can use cellbox in rootless mode with "
                  f"{client.NO_DAEMON_ENV}=1")


def _refuse(conn: socket.socket, why: Exception) -> None:
    _reply(conn, b"refused %s" % str(why).encode())
    conn.close()


def _reply(conn: socket.socket, data: bytes) -> None:
    try:
        conn.send(data)
    except OSError:
        pass  # the client is gone: nobody to tell


def _run_command(request: Request, config: str | None, warm: WarmInits | None = None) -> int:
    """In the worker: become the client's CLI process, then run its command (``config``: the
    daemon's own config file, if named; ``warm``: a resident's box inits)."""
    for target, fd in enumerate(request.fds[:3]):
        os.dup2(fd, target)
    os.fchdir(request.fds[3])
    for fd in request.fds:
        os.close(fd)
    os.umask(request.umask)
    _set_environ(dict(request.env))
    sys.stdin, sys.stdout, sys.stderr = (
        open(fd, "r" if fd == 0 else "w", buffering=1 if fd == 2 or os.isatty(fd) else -1,
             encoding="utf-8", errors="backslashreplace" if fd == 2 else "strict",
             closefd=False) for fd in (0, 1, 2))
    sys.argv = ["cellbox", *request.argv]
    try:
        _take_identity(request, config)
    except OSError as e:
        print(f"cellbox: this keeper daemon cannot run as your process would ({e}): set "
              f"{client.NO_DAEMON_ENV}=1", file=sys.stderr)
        return 2
    try:
        from cellbox.cli.commands import run_cli

        code = run_cli(request.argv, warm)
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


def _set_environ(env: dict[bytes, bytes]) -> None:
    """The process's environment made equal to ``env``, changing only what differs (each
    change is a putenv or unsetenv; a resident's next command, from the same kind of client,
    usually changes nothing)."""
    current = os.environb
    for key in [k for k in current if k not in env]:
        del current[key]
    for key, value in env.items():
        if current.get(key) != value:
            current[key] = value


def _take_identity(request: Request, config: str | None) -> None:
    """The client's resource limits (the run's unset limits are its keeper's), and: from
    root's daemon for a user, that user as the requester, with the daemon's config; else the
    client's gid."""
    import resource

    client = request.client
    for_user = client.uid != os.geteuid()
    if for_user:
        privileges.act_for(client)
        os.environ.pop(ENV_VAR, None)
        if config is not None:
            os.environ[ENV_VAR] = config
    elif client.gid != os.getgid():
        os.setresgid(client.gid, client.gid, client.gid)
    for which, (soft, hard) in enumerate(_limits_of(request.pid)):
        if for_user:  # as a setuid isolate: no higher than root's own
            own = resource.getrlimit(which)[1]
            hard = own if hard < 0 or 0 <= own < hard else hard
            soft = hard if soft < 0 or 0 <= hard < soft else soft
        try:
            _set_rlimit(which, (soft, hard))
        except ValueError as e:  # a hard limit above the daemon's, which it may not raise
            raise PermissionError(f"resource limit {which}: {e}") from None


def _set_rlimit(which: int, limits: tuple[int, int]) -> None:
    import resource

    if resource.getrlimit(which) != limits:
        resource.setrlimit(which, limits)


def _limits_of(pid: int) -> list[tuple[int, int]]:
    """The process's resource limits, by RLIMIT_ number, from /proc (prlimit on another
    user's process needs CAP_SYS_RESOURCE, which a container's root may lack)."""
    import resource

    fd = os.open(f"/proc/{pid}/limits", os.O_RDONLY | os.O_CLOEXEC)
    try:
        rows = os.read(fd, 1 << 16).split(b"\n")[1:1 + RLIMITS]
    finally:
        os.close(fd)
    values = [row[26:].split()[:2] for row in rows]  # (the names have spaces)
    return [tuple(resource.RLIM_INFINITY if v == b"unlimited" else int(v)  # type: ignore[misc]
                  for v in pair) for pair in values]


@dataclass
class _Own:
    """A resident worker's own process state, put back after each command (but for the
    environment, which the next command's replaces, and the commands do not read between)."""

    stdio: list[int]  # copies of 0, 1, 2
    cwd: int
    umask: int
    gid: int
    limits: list[tuple[int, int]]

    @classmethod
    def save(cls) -> _Own:
        import resource

        umask = os.umask(0o022)
        os.umask(umask)
        return cls([os.dup(fd) for fd in (0, 1, 2)], os.open("/", os.O_PATH | os.O_CLOEXEC),
                   umask, os.getgid(),
                   [resource.getrlimit(r) for r in range(RLIMITS)])

    def restore(self) -> None:
        _flush()
        for target, fd in enumerate(self.stdio):
            os.dup2(fd, target)
        os.fchdir(self.cwd)
        os.umask(self.umask)
        privileges.act_for(None)
        os.setresgid(self.gid, self.gid, self.gid)
        for which, limits in enumerate(self.limits):  # root's: raised back as they were
            _set_rlimit(which, limits)


def _flush() -> None:
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except OSError:
            pass


# Registered with cellbox.cli.subcommands: name -> (handler, parser maker).
COMMANDS = {
    "keeperd": (keeperd_main, keeperd_parser),
}
