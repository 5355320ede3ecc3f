"""The benchmark suite behind ``cellbox bench`` (see benchmarks/README.md).

Every case runs ``/bin/true`` (or a language's hello) once per round, and the cases take turns
within each round, so that load from other processes on the machine hits them all alike: the
ratios between cases are what matters, not the absolute milliseconds.

Cases:
- floor: posix_spawn + wait of the program, no sandbox at all;
- unshare: util-linux ``unshare --pid --fork --mount --net --ipc --uts``;
- bwrap: bubblewrap ``--unshare-all`` with a read-only /usr, fresh /proc, /dev and /tmp;
- isolate (only when ``isolate`` is on PATH): ``--run`` on an initialised box, and a full
  ``--cg`` init + run + cleanup cycle;
- cellbox: the library from fresh namespaces (a leased box, one ``Box.run`` per round, in a
  worker process), the library's warm pool (``Pool.run`` on a one-box pool, in a worker
  process), the CLI ``--run`` on an initialised box, and the CLI init + run + cleanup, each
  both in-process and through a resident keeper daemon (``cellbox keeperd``, started for the
  run);
- with ``langs``: ``python3 -c pass``, a C hello world and a Java hello world, bare and in the
  cellbox library (Java with 64 processes allowed: the JVM starts a dozen threads); and the
  judging case (``cellbox.bench.judging``): what judging a problem package adds per test.
Then runs/s with 2 workers for the floor, the peers, the cellbox library and the pool, and the
many-boxes case (``cellbox.bench.many``): N boxes whose programs all live at once under one
keeper, with the host memory per live box.

The suite has a configuration of its own (temporary box and lock roots, cgroup directory
``cellbox/bench-<pid>``, box uids from ``first_uid``) and checks at the end that it left
nothing behind: no process with a bench uid, no mount, no cgroup, no file.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from cellbox.bench.judging import BOXES as JUDGING_BOXES
from cellbox.box import Boxes
from cellbox.chaos import uid_processes
from cellbox.config import ENV_VAR, write_private_config

TRUE = ["/bin/true"]
PYTHON = ["/usr/bin/python3", "-c", "pass"]
HELLO_C = '#include <stdio.h>\nint main(void) { puts("hello"); return 0; }\n'
HELLO_JAVA = ('public class Hello { public static void main(String[] a) '
              '{ System.out.println("hello"); } }\n')
JAVA_PROCESSES = 64
# 0: CLI --run, 1: CLI cycle, 2 and 3: library workers, 4 and 5: pool workers, 6: CMS's calls
NUM_BOXES = 7
CLI_RUN_BOX, CLI_CYCLE_BOX, LIB_BOXES, POOL_BOXES, CMS_BOX = 0, 1, (2, 3), (4, 5), 6
LIB, POOL = "cellbox library, fresh namespaces", "cellbox pool, warm box"
KEEPER_RUN = "cellbox --run via the resident keeper"
KEEPER_CYCLE = "cellbox --init, --run, --cleanup via the resident keeper"
NATIVE_RUN = "cellbox --run, native client via the keeper"
NATIVE_CYCLE = "cellbox --init, --run, --cleanup, native client via the keeper"
NATIVE_CMS = "CMS batch test case (5 calls), native client via the keeper"
ISOLATE_CMS = "CMS batch test case (5 calls), isolate"
UNSHARE = ["unshare", "--pid", "--fork", "--mount", "--net", "--ipc", "--uts"]
# The same kind of root as a cellbox run: read-only system dirs, fresh proc, dev and tmp.
BWRAP = ["bwrap", "--unshare-all", "--die-with-parent", "--ro-bind", "/usr", "/usr",
         *(a for d in ("/bin", "/lib", "/lib64", "/sbin") if os.path.exists(d)
           for a in ("--ro-bind", d, d)),
         "--proc", "/proc", "--dev", "/dev", "--tmpfs", "/tmp"]
# isolate's own configuration picks its uids; one box for --run, another for the --cg cycle.
ISOLATE_RUN_BOX, ISOLATE_CYCLE_BOX, ISOLATE_CMS_BOX = "--box-id=73", "--box-id=74", 75


@dataclass
class Case:
    name: str
    group: str  # floor | peer | cellbox
    once: Callable[[], float]  # one timed run; seconds
    samples: list[float] = field(default_factory=list)


@dataclass
class CaseResult:
    group: str
    samples_ms: list[float]
    median_ms: float = 0.0  # filled in by report.summarise
    p90_ms: float = 0.0


@dataclass
class Results:
    load_before: tuple[float, float, float]
    load_after: tuple[float, float, float] = (0.0, 0.0, 0.0)
    rounds: int = 0
    skipped: list[str] = field(default_factory=list)
    latency: dict[str, CaseResult] = field(default_factory=dict)
    throughput: dict[str, float] = field(default_factory=dict)  # runs/s with 2 workers
    many_boxes: dict[str, Any] = field(default_factory=dict)  # cellbox.bench.many.measure
    judging: dict[str, Any] = field(default_factory=dict)  # cellbox.bench.judging.measure
    failures: list[str] = field(default_factory=list)


def spawn_wait(argv: list[str], env: dict[str, str] | None = None) -> int:
    """posix_spawn + wait with stdio on /dev/null: the exit status (vfork-like, so the size of
    this process does not count)."""
    devnull = [(os.POSIX_SPAWN_OPEN, fd, "/dev/null", os.O_RDWR, 0) for fd in (0, 1, 2)]
    pid = os.posix_spawnp(argv[0], argv, env if env is not None else os.environ,
                          file_actions=devnull)
    return os.waitstatus_to_exitcode(os.waitpid(pid, 0)[1])


class LibraryWorker:
    """A ``cellbox.bench.worker`` process holding a lease on one box (``pool``: keeping it
    warm)."""

    def __init__(self, box_id: int, env: dict[str, str], pool: bool = False) -> None:
        self.proc = subprocess.Popen([sys.executable, "-m", "cellbox.bench.worker", str(box_id),
                                      *(["pool"] if pool else [])],
                                     env=env, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                     text=True)
        self._reply()  # ready

    def _reply(self) -> dict[str, Any]:  # JSON, see cellbox.bench.worker
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline()
        if not line:
            raise RuntimeError(f"the library worker exited ({self.proc.wait()})")
        reply: dict[str, Any] = json.loads(line)
        return reply

    def ask(self, **request: object) -> dict[str, Any]:
        assert self.proc.stdin is not None
        self.proc.stdin.write(json.dumps(request) + "\n")
        self.proc.stdin.flush()
        return self._reply()

    def close(self) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.close()
        self.proc.wait(30)


@dataclass(frozen=True)
class DaemonSwitches:
    """The environment variables by which the command line skips the keeper daemon, and
    names its socket (the command line's own; given by it, so the bench imports no CLI)."""

    no_daemon: str
    socket: str


class Bench:
    def __init__(self, daemon: DaemonSwitches, first_uid: int = 73000,
                 cli: list[str] | None = None, many_boxes: int = 0) -> None:
        self.first_uid = first_uid
        # the judging and many-boxes cases lease their own
        self.num_boxes = NUM_BOXES + JUDGING_BOXES + many_boxes
        self.top = tempfile.mkdtemp(prefix="cellbox-bench-")
        # Locks and records in /run, as with the default lock_root (/run/cellbox).
        self.lock_root = tempfile.mkdtemp(prefix="cellbox-bench-locks-", dir="/run")
        self.config, cfg = write_private_config(self.top, "bench", self.num_boxes, first_uid,
                                                lock_root=self.lock_root)
        # The CLI cases in-process, whatever daemon the machine runs; the keeper cases
        # through the suite's own daemon.
        self.daemon = daemon
        self.env = {**os.environ, ENV_VAR: cfg, daemon.no_daemon: "1"}
        self.keeper_env = {**os.environ, ENV_VAR: cfg,
                           daemon.socket: os.path.join(self.lock_root, "keeper.sock")}
        self.keeper_env.pop(daemon.no_daemon, None)
        self.keeper: subprocess.Popen[bytes] | None = None
        self.cli = cli or default_cli()
        self.results = Results(load_before=os.getloadavg())
        self.workers: list[LibraryWorker] = []
        self.pool_workers: list[LibraryWorker] = []

    # -- cases ---------------------------------------------------------------------------

    def _timed(self, argv: list[str], env: dict[str, str] | None = None) -> Callable[[], float]:
        def once() -> float:
            start = time.perf_counter()
            code = spawn_wait(argv, env)
            took = time.perf_counter() - start
            if code != 0:
                self.results.failures.append(f"{' '.join(argv)} exited {code}")
            return took
        return once

    def _cli_cycle(self, env: dict[str, str],
                   cli: list[str] | None = None) -> Callable[[], float]:
        def once() -> float:
            box = f"--box-id={CLI_CYCLE_BOX}"
            start = time.perf_counter()
            for cmd in (["--init"], ["--run", "--", *TRUE], ["--cleanup"]):
                code = spawn_wait((cli or self.cli) + [box, *cmd], env)
                if code != 0:
                    self.results.failures.append(f"cellbox {cmd[0]} exited {code}")
            return time.perf_counter() - start
        return once

    def _cms_test_case(self, command: list[str], box_id: int,
                       env: dict[str, str] | None = None) -> Callable[[], float]:
        """The 5 calls CMS's IsolateSandbox makes for one batch test case (its constructor's
        --cleanup and --init, the evaluation with build_box_options' options, and
        cleanup(delete=True)'s chmod run and --cleanup), ``command`` for ``isolate``."""
        home = os.path.join(self.top, f"cms-{box_id}")
        os.makedirs(home, exist_ok=True)
        os.chmod(home, 0o777)
        with open(os.path.join(home, "input.txt"), "w") as f:
            f.write("1 2\n")
        box, cg, tmp = f"--box-id={box_id}", "--cg", f"--dir=/tmp={home}:rw"
        calls = [[box, cg, "--cleanup"], [box, cg, "--init"],
                 [cg, box, "--chdir=/tmp", tmp, "--dir=/dev/shm:tmp", "--env=HOME=/tmp",
                  "--fsize=1048576", "--stdin=/tmp/input.txt", "--cg-mem=262144",
                  "--stdout=/tmp/output.txt", "--processes=1", "--stderr=/tmp/stderr.txt",
                  "--time=1", "--wall-time=3", f"--meta={home}.meta", "--run", "--", *TRUE],
                 [box, cg, tmp, "--run", "--", "/bin/chmod", "777", "-R", "/tmp"],
                 [box, cg, "--cleanup"]]

        def once() -> float:
            start = time.perf_counter()
            for i, call in enumerate(calls):
                code = spawn_wait(command + call, env)
                if code != 0 and i != 3:  # CMS ignores the chmod's (root's files stay root's)
                    self.results.failures.append(f"{command[0]} {' '.join(call)} exited {code}")
            return time.perf_counter() - start
        return once

    def _library(self, argv: list[str], pool: bool = False,
                 processes: int = 1) -> Callable[[], float]:
        def once() -> float:
            worker = (self.pool_workers if pool else self.workers)[0]
            reply = worker.ask(argv=argv, runs=1, processes=processes)
            self.results.failures += reply["failed"]
            return float(reply["ns"][0]) / 1e9
        return once

    def cases(self, langs: bool) -> list[Case]:
        cli_run = self.cli + [f"--box-id={CLI_RUN_BOX}", "--run", "--", *TRUE]
        cases = [
            Case("floor: posix_spawn + wait", "floor", self._timed(TRUE)),
            Case("unshare (pid, mnt, net, ipc, uts)", "peer", self._timed(UNSHARE + TRUE)),
            Case("bwrap --unshare-all", "peer", self._timed(BWRAP + TRUE)),
        ]
        if shutil.which("isolate"):
            cases += [
                Case("isolate --run", "peer",
                     self._timed(["isolate", ISOLATE_RUN_BOX, "--run", "--", *TRUE])),
                Case("isolate --cg init+run+cleanup", "peer", self._isolate_cycle),
                Case(ISOLATE_CMS, "peer", self._cms_test_case(["isolate"], ISOLATE_CMS_BOX)),
            ]
        else:
            self.results.skipped.append("isolate: not on PATH (Debian does not package it)")
        cases += [
            Case(LIB, "cellbox", self._library(TRUE)),
            Case(POOL, "cellbox", self._library(TRUE, pool=True)),
            Case("cellbox --run (CLI)", "cellbox", self._timed(cli_run, self.env)),
            Case("cellbox --init, --run, --cleanup (CLI)", "cellbox",
                 self._cli_cycle(self.env)),
            Case(KEEPER_RUN, "cellbox", self._timed(cli_run, self.keeper_env)),
            Case(KEEPER_CYCLE, "cellbox", self._cli_cycle(self.keeper_env)),
        ]
        native = native_client()
        if native is None:
            self.results.skipped.append("the native client: not built (scripts/bootstrap.sh)")
        else:
            native_run = [native, f"--box-id={CLI_RUN_BOX}", "--run", "--", *TRUE]
            cases += [
                Case(NATIVE_RUN, "cellbox", self._timed(native_run, self.keeper_env)),
                Case(NATIVE_CYCLE, "cellbox", self._cli_cycle(self.keeper_env, [native])),
                Case(NATIVE_CMS, "cellbox",
                     self._cms_test_case([native], CMS_BOX, self.keeper_env)),
            ]
        if langs:
            hello = self._hello_c()
            cases += [
                Case("python3 -c pass, bare", "floor", self._timed(PYTHON)),
                Case("python3 -c pass, cellbox library", "cellbox", self._library(PYTHON)),
                Case("C hello, bare", "floor", self._timed([hello])),
                Case("C hello, cellbox library", "cellbox", self._library(["/box/hello"])),
            ]
            classes = self._hello_java()
            # The JDK's own path: /usr/bin/java links through /etc/alternatives, which the
            # default rules do not bind. No perf data: no /tmp/hsperfdata_* left behind.
            java = [os.path.realpath(shutil.which("java") or "java"), "-XX:-UsePerfData", "-cp"]
            cases += [
                Case("Java hello, bare", "floor", self._timed([*java, classes, "Hello"])),
                Case("Java hello, cellbox library", "cellbox",
                     self._library([*java, "/box", "Hello"], processes=JAVA_PROCESSES)),
            ]
        return cases

    def _hello_c(self) -> str:
        """Compile the C hello world on the host and copy it into the library worker's box."""
        source = os.path.join(self.top, "hello.c")
        binary = os.path.join(self.top, "hello")
        with open(source, "w") as f:
            f.write(HELLO_C)
        subprocess.run(["gcc", "-O2", "-o", binary, source], check=True)
        self.workers[0].ask(copy=binary, name="hello")
        return binary

    def _hello_java(self) -> str:
        """Compile the Java hello world on the host and copy the class into the library
        worker's box; returns the host directory that holds the class."""
        source = os.path.join(self.top, "Hello.java")
        with open(source, "w") as f:
            f.write(HELLO_JAVA)
        subprocess.run(["javac", "-J-XX:-UsePerfData", "-d", self.top, source], check=True)
        self.workers[0].ask(copy=os.path.join(self.top, "Hello.class"), name="Hello.class")
        return self.top

    def _isolate_cycle(self) -> float:
        start = time.perf_counter()
        for cmd in (["--init"], ["--run", "--", *TRUE], ["--cleanup"]):
            code = spawn_wait(["isolate", "--cg", ISOLATE_CYCLE_BOX, *cmd])
            if code != 0:
                self.results.failures.append(f"isolate --cg {cmd[0]} exited {code}")
        return time.perf_counter() - start

    # -- the run -------------------------------------------------------------------------

    def setup(self) -> None:
        """Initialise the CLI's box, start the keeper daemon and the library workers (each
        leases a box)."""
        # setpriv: the daemon (and so its runs) dies with the bench, even with a SIGKILLed one.
        self.keeper = subprocess.Popen(
            ["setpriv", "--pdeathsig", "KILL", *self.cli, "keeperd", "--socket",
             self.keeper_env[self.daemon.socket]],
            env=self.env, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE)
        assert self.keeper.stderr is not None
        if b"listening on" not in self.keeper.stderr.readline():
            raise RuntimeError("cellbox keeperd did not start; try "
                               f"{' '.join(self.cli)} keeperd by hand to see why")
        code = spawn_wait(self.cli + [f"--box-id={CLI_RUN_BOX}", "--init"], self.env)
        if code != 0:
            raise RuntimeError(f"cellbox --init of the bench box exited {code}; try "
                               f"{' '.join(self.cli)} --init by hand to see why")
        if shutil.which("isolate"):
            spawn_wait(["isolate", ISOLATE_RUN_BOX, "--init"])
        self.workers = [LibraryWorker(b, self.env) for b in LIB_BOXES]
        self.pool_workers = [LibraryWorker(b, self.env, pool=True) for b in POOL_BOXES]

    def latency(self, cases: list[Case], rounds: int, warmup: int,
                tick: Callable[[], None]) -> None:
        for r in range(warmup + rounds):
            for case in cases:
                took = case.once()
                if r >= warmup:
                    case.samples.append(took)
            tick()
        self.results.rounds = rounds
        for case in cases:
            self.results.latency[case.name] = CaseResult(case.group,
                                                         [s * 1e3 for s in case.samples])

    def throughput(self, seconds: float, tick: Callable[[], None]) -> None:
        """Runs/s with 2 workers: 2 spawning processes for the floor and peers, the 2 library
        workers, then the 2 pool workers, for cellbox."""
        for name, argv in (("floor: posix_spawn + wait", TRUE),
                           ("unshare (pid, mnt, net, ipc, uts)", UNSHARE + TRUE),
                           ("bwrap --unshare-all", BWRAP + TRUE)):
            self.results.throughput[name] = _processes_rate(argv, seconds)
            tick()
        for name, workers in ((LIB, self.workers), (POOL, self.pool_workers)):
            replies: list[dict[str, Any]] = []
            threads = [threading.Thread(target=lambda w=w, out=replies: out.append(
                w.ask(argv=TRUE, seconds=seconds))) for w in workers]
            for t in threads:
                t.start()
            for t in threads:
                t.join()
            self.results.throughput[name] = sum(r["runs"] / r["elapsed"] for r in replies)
            for r in replies:
                self.results.failures += r["failed"]
            tick()

    def judging(self, tests: int, rounds: int) -> None:
        """The per-test overhead of judging a package of ``tests`` tests on warm boxes."""
        from cellbox.bench.judging import measure

        self.results.judging = measure(tests, rounds, self.env)
        self.results.failures += self.results.judging["failed"]

    def many_boxes(self, count: int) -> None:
        """``count`` boxes running at once under one keeper (after the other cases: it takes
        boxes the CLI cases use)."""
        from cellbox.bench.many import measure

        self.results.many_boxes = measure(count, self.env)
        self.results.failures += self.results.many_boxes["failed"]

    def close(self) -> None:
        """End the leases, clean the CLI's boxes, then check that nothing is left."""
        for w in self.workers + self.pool_workers:
            w.close()
        if self.keeper is not None:
            self.keeper.terminate()  # it ends once its commands have
            self.keeper.wait()
        for box in (CLI_RUN_BOX, CLI_CYCLE_BOX, CMS_BOX):
            spawn_wait(self.cli + [f"--box-id={box}", "--cleanup"], self.env)
        if shutil.which("isolate"):
            spawn_wait(["isolate", ISOLATE_RUN_BOX, "--cleanup"])
            spawn_wait(["isolate", "--cg", f"--box-id={ISOLATE_CMS_BOX}", "--cleanup"])
        self.results.load_after = os.getloadavg()
        left = uid_processes(self.first_uid, self.num_boxes)
        with open("/proc/self/mountinfo") as f:
            left += [line.split()[4] for line in f
                     if line.split()[4].startswith(self.config.box_root + "/")]
        if left:
            raise RuntimeError(f"the benchmark left these behind: {left}; bench files are in "
                               f"{self.top}")
        Boxes(self.config).cgroups.remove_root()
        shutil.rmtree(self.lock_root)
        shutil.rmtree(self.top)


# One worker of a throughput case: spawn argv until the deadline, print how many ran and in
# how long. A process of its own, so that two workers never share a GIL.
_SPAWN_LOOP = """
import sys, time
from cellbox.bench.suite import spawn_wait
start, n = time.monotonic(), 0
while time.monotonic() < start + float(sys.argv[1]):
    spawn_wait(sys.argv[2:])
    n += 1
print(n, time.monotonic() - start)
"""


def _processes_rate(argv: list[str], seconds: float, workers: int = 2) -> float:
    procs = [subprocess.Popen([sys.executable, "-c", _SPAWN_LOOP, str(seconds), *argv],
                              stdout=subprocess.PIPE, text=True) for _ in range(workers)]
    rate = 0.0
    for p in procs:
        runs, elapsed = p.communicate()[0].split()
        rate += int(runs) / float(elapsed)
    return rate


def native_client() -> str | None:
    """The native front door scripts/bootstrap.sh built next to this interpreter, if any."""
    path = os.path.join(os.path.dirname(sys.executable), "cellbox")
    try:
        with open(path, "rb") as f:
            return path if f.read(4) == b"\x7fELF" else None
    except OSError:
        return None


def default_cli() -> list[str]:
    """The ``cellbox`` command as scripts/bootstrap.sh's launcher starts it (``python -I -S``,
    no ``site``), but for this checkout: the installed launcher names the checkout it was
    written for, which is not this one in a git worktree."""
    import cellbox

    # This process's site-packages, not sysconfig's: under the launcher (-S) sysconfig names
    # the base interpreter's, without the virtual environment's packages.
    paths = [os.path.dirname(os.path.dirname(os.path.abspath(cellbox.__file__))),
             *(p for p in sys.path if p.endswith("site-packages"))]
    return [sys.executable, "-I", "-S", "-c",
            f"import sys; sys.path += {paths!r}; from cellbox.cli.main import main; main()"]
