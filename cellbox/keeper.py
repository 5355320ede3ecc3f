"""The keeper supervises runs: spawn, timers, I/O, accounting, kill, result.

    keeper (host namespaces, root; or any user: rootless mode)
      └─ posix_spawn → launcher (the box init binary, cellbox/boxinit/, a few hundred µs:
         │  makes the namespaces, clones the box init as the keeper's child, exits)
         box init (pid 1 of the box: builds the root, then serves runs)
            └─ fork → program (confines itself step by step, execve)

The keeper resolves each run into a plan (``boxinit.plan``: a ``BoxPlan`` once per box, a
``RunPlan`` per run) and sends it over a unix socket; the box init makes no decision of its
own. Killing the box init makes the kernel kill every process of the box's pid namespace, so
ending a run needs one signal; the box init dies with the keeper too (PR_SET_PDEATHSIG). One
keeper process drives any number of runs from one poll loop (``Run``, ``supervise``,
``run_many``). A ``Slot`` is one box init: the pool keeps one per box for many runs (warm);
a fresh run starts one, sends it its run and closes the socket, so it exits after that run.
"""

from __future__ import annotations

# _socket, the C module: socket.py imports selectors, array and enum helpers (a few ms of
# every command's start-up) for a socketpair and one sendmsg.
import _socket
import json
import os
import resource
import select
import signal
import struct
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from cellbox import boxinit
from cellbox.boxinit.plan import BoxPlan, RunPlan
from cellbox.cgroup import BoxCgroup, CgroupStats
from cellbox.errors import SandboxSetupError
from cellbox.linux import seccomp
from cellbox.result import RunResult, Status
from cellbox.spec import RunSpec

POLL_INTERVAL = 0.02  # seconds between CPU-time checks (the issue asks for <= 50 ms)
DEFAULT_CAPTURE = 64 << 20
INIT_GRACE = 1.0  # seconds init has to report after the program was killed
CHUNK = 1 << 16


@dataclass
class _Capture:
    fd: int
    limit: int
    data: bytearray = field(default_factory=bytearray)
    truncated: bool = False

    def read(self) -> bool:
        """Read what is there; False at EOF."""
        chunk = os.read(self.fd, CHUNK)
        if not chunk:
            return False
        room = self.limit - len(self.data)
        if len(chunk) > room:
            self.truncated = True
        self.data += chunk[: max(room, 0)]
        return True


@dataclass
class _Feed:
    """Data for a pipe to the box (the request, stdin), written as the pipe takes it."""

    fd: int
    data: bytes = b""
    sent: int = 0

    def write(self) -> bool:
        """Write what the pipe takes; at the end (or if the reader is gone) close the pipe,
        so the reader sees EOF, and return False."""
        try:
            self.sent += os.write(self.fd, self.data[self.sent:self.sent + CHUNK])
        except BrokenPipeError:
            self.sent = len(self.data)
        if self.sent < len(self.data):
            return True
        os.close(self.fd)
        self.fd = -1
        return False


@dataclass
class _Outcome:
    messages: list[dict[str, object]] = field(default_factory=list)
    killed_for: Status | None = None
    program_started: float | None = None  # CLOCK_MONOTONIC, when init forked the program


def _require_single_thread() -> None:
    if len(os.listdir("/proc/self/task")) > 1:  # any thread, Python's or a C library's
        raise SandboxSetupError("cellbox cannot start a run from a multi-threaded process "
                                "(fork hazards); start runs from a single-threaded process")


class Slot:
    """One box init: launched into the box's new namespaces, with ``spec``'s root (rules,
    box, network) built, taking one run per request; ``cgroup`` is the box's, for its runs.
    Warm (the pool's): ``start`` waits until it is ready, and it takes runs until ``close``.
    Each run gets fresh IPC and network namespaces, hostname and tmpfs mounts; the box layer
    empties the box's files and the run its cgroup. A fresh run's box init (``warm=False``)
    takes its one run and exits."""

    def __init__(self, spec: RunSpec, cgroup: BoxCgroup, warm: bool = True) -> None:
        self.spec, self.cgroup, self.warm = spec, cgroup, warm
        self.pid: int | None = None
        self._sock: _socket.socket | None = None
        self._launcher: int | None = None
        self._lifeline: int | None = None

    def launch(self, status_w: int, lifeline_r: int) -> None:
        """Start the launcher and send it the box's plan; setup failures are reported on
        ``status_w``. The box init dies when the last copy of ``lifeline_r``'s other end is
        closed before it has armed its death signal."""
        _require_single_thread()
        path = boxinit.binary()
        ours, theirs = _socket.socketpair(_socket.AF_UNIX, _socket.SOCK_STREAM)
        try:
            fd = theirs.fileno()  # dup2 onto itself: kept across exec, nothing else is
            self._launcher = os.posix_spawn(path, ["cellbox-boxinit", str(fd)], {},
                                            file_actions=[(os.POSIX_SPAWN_DUP2, fd, fd)])
        finally:
            theirs.close()
        self._sock = ours
        self.send(BoxPlan.of(self.spec, self.warm).encode(), [status_w, lifeline_r])

    def started(self) -> int | None:
        """The box init's pid, once the launcher has cloned it (None: the launcher failed and
        reported why on the status fd); the launcher is reaped."""
        assert self._sock is not None and self._launcher is not None
        raw = self._sock.recv(4, _socket.MSG_WAITALL)
        os.waitpid(self._launcher, 0)
        self._launcher = None
        self.pid = struct.unpack("<I", raw)[0] if len(raw) == 4 else None
        return self.pid

    def start(self) -> None:
        """Launch a warm box init and wait until it is ready; raises SandboxSetupError if it
        fails."""
        status_r, status_w = os.pipe2(os.O_CLOEXEC)
        life_r, self._lifeline = os.pipe2(os.O_CLOEXEC)
        try:
            self.launch(status_w, life_r)
        finally:
            os.close(status_w)
            os.close(life_r)
        with os.fdopen(status_r, "rb") as status:  # EOF, or an error then EOF
            self.started()
            messages = [json.loads(line) for line in status]
        if messages or self.pid is None:
            self.close()
            errors = [m for m in messages if m.get("kind") == "error"]
            raise SandboxSetupError(
                "Sandbox setup failed while " + (f"{errors[0]['step']}: {errors[0]['error']}"
                                                 if errors else "starting a warm box's init"))

    @property
    def alive(self) -> bool:
        """False once the box init has died (it is then reaped and the slot closed)."""
        if self.pid is None:
            return False
        if os.waitpid(self.pid, os.WNOHANG)[0] == 0:
            return True
        self.pid = None
        self.close()
        return False

    def send(self, data: bytes, fds: list[int]) -> None:
        """One message, its fds attached to the first bytes."""
        if self._sock is None:
            raise SandboxSetupError("This warm box was closed; start it again")
        rights = (_socket.SOL_SOCKET, _socket.SCM_RIGHTS, struct.pack(f"{len(fds)}i", *fds))
        # One message, so init wakes once: it takes the fds with the size (the first 4
        # bytes), then reads the rest, which a large request sends in more writes.
        sent = self._sock.sendmsg([data], [rights])
        self._sock.sendall(data[sent:])

    def hang_up(self) -> None:
        """No more runs: the box init exits after the one it has."""
        if self._sock is not None:
            self._sock.close()
            self._sock = None

    def close(self) -> None:
        """``kill``, and release the cgroup files kept open between runs."""
        self.kill()
        self.cgroup.close()

    def kill(self) -> None:
        """Kill the box init (and with it the box's pid namespace) and reap it."""
        if self._launcher is not None:
            os.kill(self._launcher, signal.SIGKILL)
            os.waitpid(self._launcher, 0)
            self._launcher = None
        if self.pid is not None:
            os.kill(self.pid, signal.SIGKILL)
            os.waitpid(self.pid, 0)
            self.pid = None
        self.hang_up()
        if self._lifeline is not None:
            os.close(self._lifeline)
            self._lifeline = None


def run_many(jobs: list[tuple[RunSpec, BoxCgroup, Slot | None]],
             started: Callable[[], None] | None = None) -> list[RunResult]:
    """Start every run (in a box init of its own, or in the warm box given), supervise them all in
    this one process, and return their results in order. If a start fails, the runs already
    started are killed and ended first. ``started`` is called once every run has started
    (e.g. to close the caller's copies of the fds it handed them)."""
    _raise_fd_limit(len(jobs))
    runs: list[Run] = []
    try:
        for spec, cgroup, slot in jobs:
            runs.append(Run(spec, cgroup, slot))
            runs[-1].start()
        if started is not None:
            started()
        supervise(runs)
    except BaseException:
        for r in runs:
            r.abort()
        raise
    results = []
    try:
        for r in runs:
            results.append(r.finish())
    except BaseException:
        for r in runs[len(results) + 1:]:
            r.abort()
        raise
    return results


def _raise_fd_limit(runs: int) -> None:
    """Each run holds up to ~15 pipe and cgroup fds in the keeper: raise the soft open-file
    limit towards the hard one when many runs go at once (only this process's)."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    want = 64 + 16 * runs
    if soft != resource.RLIM_INFINITY and soft < want:
        resource.setrlimit(resource.RLIMIT_NOFILE, (want if hard == resource.RLIM_INFINITY
                                                    else min(want, hard), hard))


class Run:
    """One run under supervision: ``start`` launches its box init (or sends the run to a
    warm one), a poll loop (``supervise``)
    drives it through ``watched``, ``handle`` and ``tick``, and ``finish`` (or ``abort``)
    ends it. Many runs share one single-threaded process: nothing here blocks but the final
    reap of an init that has already reported."""

    def __init__(self, spec: RunSpec, cgroup: BoxCgroup, slot: Slot | None = None) -> None:
        """``slot``: run in that warm box (its init and root already there) instead of
        launching a box init for this run alone."""
        self.spec, self.cgroup, self.slot = spec, cgroup, slot
        lim = spec.limits
        self._cpu_cap = None if lim.time is None else int((lim.time + lim.extra_time) * 1e9)
        self.outcome = _Outcome()
        self.pid: int | None = None
        self._started = 0.0
        self._parent_ends: list[int] = []
        self._feeds: dict[int, _Feed] = {}
        self._readers: dict[int, _Capture | None] = {}
        self._captures: tuple[_Capture, _Capture] | None = None
        self._status_buf = bytearray()
        self._init_deadline: float | None = None
        self._cgroup_started = False
        self._box: Slot | None = None  # a fresh run's box init, until the keeper knows its pid

    def start(self) -> None:
        """Launch the run's box init (a fresh run), prepare the cgroup and pipes, and send the
        run to the box init. Raises on failure (then ``abort``)."""
        _require_single_thread()
        spec = self.spec
        child_ends: list[int] = []
        try:
            status_r, status_w = self._pipe(child_ends, parent_reads=True)
            self._readers[status_r] = None
            self._started = time.monotonic()
            if self.slot is None:
                # First: the box init makes its namespaces and root (on another CPU, if there
                # is one) while this process prepares the run.
                self._launch(child_ends, status_w)
            filters = seccomp.compile_filters(spec.seccomp)  # once per policy and process
            join = self.cgroup.start_run(spec.limits.memory, spec.limits.processes)
            self._cgroup_started = True
            out = err = stdin = None
            if spec.capture_output:
                limit = spec.limits.output if spec.limits.output is not None else DEFAULT_CAPTURE
                r, out = self._pipe(child_ends, parent_reads=True)
                r2, err = self._pipe(child_ends, parent_reads=True)
                self._captures = (_Capture(r, limit), _Capture(r2, limit))
                self._readers.update({r: self._captures[0], r2: self._captures[1]})
                # A stream with a file of its own (-o, -r) goes there; its pipe stays empty.
                out = out if spec.stdout is None else None
                err = err if spec.stderr is None else None
            if spec.stdin_fd is not None:
                stdin = spec.stdin_fd
            elif spec.stdin_data is not None:
                stdin, in_w = self._pipe(child_ends, parent_reads=False)
                self._feed(in_w, spec.stdin_data)
            if spec.stdout_fd is not None:
                out = spec.stdout_fd  # a captured stdout, if any, stays empty
            run = RunPlan(spec, status_w, (stdin, out, err), join, filters)
            if self.slot is None:
                self._hand_over(run)
            else:
                self.slot.send(run.encode(), run.fds())
        finally:
            for fd in child_ends:
                os.close(fd)

    def _launch(self, child_ends: list[int], status_w: int) -> None:
        """A box init of its own for this one run (``_hand_over`` gives it the run)."""
        life_r, _ = self._pipe(child_ends, parent_reads=False)
        box = Slot(self.spec, self.cgroup, warm=False)
        try:
            box.launch(status_w, life_r)  # the run's status fd: setup failures end the run
        except BaseException:
            box.kill()
            raise
        self._box = box

    def _hand_over(self, run: RunPlan) -> None:
        """Send the run to this run's box init and hang up: it exits after the run."""
        assert self._box is not None
        try:
            self._box.send(run.encode(), run.fds())
        except (BrokenPipeError, ConnectionResetError):
            pass  # the launch failed: its report is on the status pipe
        self._known_pid()

    def _known_pid(self) -> None:
        """Learn the box init's pid from its launcher (None: the launch failed), hang up."""
        box, self._box = self._box, None
        if box is None:
            return
        try:
            self.pid = box.started()
        except BaseException:
            box.kill()
            raise
        box.hang_up()

    def _pipe(self, child_ends: list[int], parent_reads: bool) -> tuple[int, int]:
        r, w = os.pipe2(os.O_CLOEXEC)
        child_ends.append(w if parent_reads else r)
        self._parent_ends.append(r if parent_reads else w)
        return r, w

    def _feed(self, fd: int, data: bytes) -> None:
        os.set_blocking(fd, False)
        self._feeds[fd] = _Feed(fd, data)
        self._parent_ends.remove(fd)  # the feed closes it

    @property
    def done(self) -> bool:
        """init has reported and every output pipe is shut."""
        return not self._readers

    def watched(self) -> dict[int, int]:
        """The fds to poll and for what."""
        return {**{fd: select.POLLIN for fd in self._readers},
                **{fd: select.POLLOUT for fd in self._feeds}}

    def handle(self, fd: int) -> bool:
        """Serve one ready fd; False once it is finished with (stop polling it)."""
        if fd in self._feeds:
            if self._feeds[fd].write():
                return True
            del self._feeds[fd]
            return False
        cap = self._readers[fd]
        if cap.read() if cap else _read_status(fd, self._status_buf, self.outcome):
            return True
        del self._readers[fd]
        if cap and cap.truncated and self.spec.limits.output is not None:
            self.outcome.killed_for = self.outcome.killed_for or Status.OUTPUT_LIMIT
        return False

    def _sweep(self) -> None:
        if self.cgroup.populated():
            self.cgroup.kill_all()

    def tick(self, now: float) -> None:
        """Check the limits; at one, kill the run."""
        lim, outcome = self.spec.limits, self.outcome
        if outcome.killed_for is None:
            if self._cpu_cap is not None and self.cgroup.cpu_ns() > self._cpu_cap:
                outcome.killed_for = Status.TIME_LIMIT
            elif (lim.wall_time is not None  # isolate grants --extra-time to CPU time only
                  and now - (outcome.program_started or self._started) > lim.wall_time):
                outcome.killed_for = Status.WALL_TIME_LIMIT
            elif lim.output is not None and any(c.truncated for c in self._captures or ()):
                outcome.killed_for = Status.OUTPUT_LIMIT
            if outcome.killed_for is not None:
                # Kill through the cgroup so init survives to report the program's rusage;
                # init itself goes too if it has not reported soon after.
                self.cgroup.kill_all()
                self._init_deadline = now + (INIT_GRACE if self.cgroup.kills else 0)
        elif self._init_deadline is not None and now > self._init_deadline:
            if self.slot is not None:
                # Reaped now: the slot must read as dead before the pool's next run (rootless
                # without a cgroup, every wall-time kill comes here)
                self.slot.close()
            elif self.pid is not None:
                os.kill(self.pid, signal.SIGKILL)
            self._init_deadline = None

    def finish(self) -> RunResult:
        """Reap init (a fresh one), collect the stats and build the result (after ``done``)."""
        try:
            if self.pid is not None:
                os.wait4(self.pid, 0)
                self.pid = None
            wall_fallback = time.monotonic() - self._started
            # A fresh run cannot leave any while pid namespaces hold; a warm box's must not.
            self._sweep()
            stats = self.cgroup.stats()
        finally:
            self._close()
        result = _result(self.spec, self.outcome, stats, wall_fallback)
        result.seccomp_weakened = list(self.spec.seccomp.weakened)
        result.started_at = self.outcome.program_started
        if self._captures:
            out, err = self._captures
            result.stdout, result.stdout_truncated = bytes(out.data), out.truncated
            result.stderr, result.stderr_truncated = bytes(err.data), err.truncated
        return result

    def abort(self) -> None:
        """End a run that will not be finished: kill it, reap init, release everything. A
        warm box's init goes too: what state the run left it in is unknown."""
        self._known_pid()
        if self.pid is not None:
            os.kill(self.pid, signal.SIGKILL)  # the kernel kills its whole pid namespace
            os.waitpid(self.pid, 0)
            self.pid = None
        if self.slot is not None:
            self.slot.close()
        if self._cgroup_started:
            self._sweep()
        self._close()

    def _close(self) -> None:
        for fd in self._parent_ends + list(self._feeds):
            os.close(fd)
        self._parent_ends, self._feeds = [], {}
        if self._cgroup_started:
            self._cgroup_started = False
            self.cgroup.end_run()
        if self.slot is None:
            self.cgroup.close()  # a warm box's cgroup keeps its files until the slot closes


def supervise(runs: list[Run]) -> None:
    """Drive every run until each is done, from one poll loop: feed the requests and stdin,
    pump output, and check the limits of every run every POLL_INTERVAL."""
    poller = select.poll()
    owner: dict[int, Run] = {}
    for r in runs:
        for fd, events in r.watched().items():
            poller.register(fd, events)
            owner[fd] = r
    active = list(runs)
    next_tick = time.monotonic()
    while active:
        for fd, _ in poller.poll(max(0.0, next_tick - time.monotonic()) * 1000):
            if fd in owner and not owner[fd].handle(fd):
                poller.unregister(fd)
                del owner[fd]
        for r in [r for r in active if r.done]:
            active.remove(r)
            for fd in r.watched():  # stdin the program never read: finish() closes it
                poller.unregister(fd)
                del owner[fd]
        now = time.monotonic()
        if now >= next_tick:
            for r in active:
                r.tick(now)
            next_tick = now + POLL_INTERVAL


def _read_status(fd: int, buf: bytearray, outcome: _Outcome) -> bool:
    """Take in the child's JSON status lines as they come; False at EOF."""
    chunk = os.read(fd, CHUNK)
    buf += chunk
    *lines, rest = buf.split(b"\n")
    buf[:] = rest
    for line in lines:
        msg = json.loads(line)
        if msg.get("kind") == "started":
            outcome.program_started = float(msg["at"])
        else:
            outcome.messages.append(msg)
    return bool(chunk)


_SIGNAL_STATUS = {signal.SIGXFSZ: Status.FILE_SIZE_LIMIT}


def _result(spec: RunSpec, outcome: _Outcome, stats: CgroupStats, wall: float) -> RunResult:
    lim = spec.limits
    r = RunResult(status=Status.OK, cpu_time=(stats.cpu_ns or 0) / 1e9, wall_time=wall,
                  peak_memory=stats.peak_memory, oom_killed=stats.oom_kills > 0,
                  processes_limit_hit=stats.pids_limit_hits > 0)
    errors = [m for m in outcome.messages if m.get("kind") == "error"]
    exits = [m for m in outcome.messages if m.get("kind") == "exit"]
    exec_errors = [m for m in outcome.messages if m.get("kind") == "exec-error"]
    if exits:
        e = exits[0]
        r.wall_time = float(e["wall"])  # type: ignore[arg-type]
        r.max_rss = int(e["maxrss"])  # type: ignore[call-overload]
        r.csw_voluntary, r.csw_forced = int(e["nvcsw"]), int(e["nivcsw"])  # type: ignore
        if stats.cpu_ns is None:  # no cgroup: the program and the children it waited for
            r.cpu_time = float(e["cpu"])  # type: ignore[arg-type]
        ws = int(e["status"])  # type: ignore[call-overload]
        if os.WIFEXITED(ws):
            r.exit_code = os.WEXITSTATUS(ws)
        elif os.WIFSIGNALED(ws):
            r.signal = os.WTERMSIG(ws)
    if errors:
        err = errors[0]
        r.status = Status.INTERNAL_ERROR
        r.exit_code = r.signal = None
        r.message = f"Sandbox setup failed while {err['step']}: {err['error']}"
        return r
    if outcome.killed_for is not None:
        r.status, r.killed = outcome.killed_for, True
        if not exits:
            r.signal = signal.SIGKILL
    elif not exits:
        r.status = Status.INTERNAL_ERROR
        r.message = "The box's init process died without reporting the program's status"
        return r
    elif lim.time is not None and r.cpu_time > lim.time:
        r.status = Status.TIME_LIMIT
    elif lim.wall_time is not None and r.wall_time > lim.wall_time:
        r.status = Status.WALL_TIME_LIMIT
    elif r.oom_killed and r.exit_code != 0:
        r.status = Status.MEMORY_LIMIT
    elif r.signal is not None:
        r.status = _SIGNAL_STATUS.get(signal.Signals(r.signal), Status.SIGNALED)
        if r.signal == signal.SIGKILL and lim.time is not None and r.cpu_time >= lim.time:
            r.status = Status.TIME_LIMIT  # the RLIMIT_CPU backstop fired
    elif exec_errors:
        r.status = Status.EXEC_ERROR
    elif r.exit_code:
        r.status = Status.RUNTIME_ERROR
    r.message = _message(r)
    if exec_errors:  # the detail (isolate's message, then execve's error)
        r.message += f" (cannot execute {spec.argv[0]}: " \
                     f"{os.strerror(int(exec_errors[0]['errno']))})"  # type: ignore[call-overload]
    return r


def _message(r: RunResult) -> str:
    return {
        Status.OK: "",
        Status.RUNTIME_ERROR: f"Exited with error status {r.exit_code}",
        Status.EXEC_ERROR: f"Exited with error status {r.exit_code}",
        Status.SIGNALED: f"Caught fatal signal {r.signal}",
        Status.TIME_LIMIT: "Time limit exceeded",
        Status.WALL_TIME_LIMIT: "Time limit exceeded (wall clock)",
        Status.MEMORY_LIMIT: "Memory limit exceeded",
        Status.FILE_SIZE_LIMIT: "File size limit exceeded",
        Status.OUTPUT_LIMIT: "Output limit exceeded",
        Status.INTERNAL_ERROR: r.message,
    }[r.status]
