"""cgroup v1: one directory per controller, ``<mount>/<cg_root>/box-<id>`` in each.

Killing sends SIGKILL to every task, round after round, until the cgroup is empty (see
``kill_all`` for why not the freezer). Counters that cannot be reset are read as offsets at
run start.
"""

from __future__ import annotations

import os
import signal
import time

from cellbox.cgroup.run import CgroupStats, Join
from cellbox.cgroup.files import keyed, read, rmdir_when_empty, swap_in_use, write
from cellbox.errors import SandboxSetupError

REQUIRED = ("memory", "cpuacct", "pids")


def find_mounts() -> dict[str, str]:
    """controller -> mount point, from /proc/self/mountinfo."""
    found: dict[str, str] = {}
    with open("/proc/self/mountinfo") as f:
        for line in f:
            pre, _, post = line.partition(" - ")
            fstype, _src, superopts = post.split()[:3]
            if fstype != "cgroup":
                continue
            mountpoint = pre.split()[4]
            for opt in superopts.split(","):
                if opt in REQUIRED and opt not in found:
                    found[opt] = mountpoint
    return found


def user_root(uid: int) -> str:
    """Where ``cellbox delegate`` puts the subtree of a user (relative to each controller)."""
    return f"cellbox/user-{uid}"


def delegated_to_user(mounts: dict[str, str], cg_root: str) -> CgroupV1 | None:
    """For a user who is not root: cg_root from the configuration, else
    ``cellbox/user-<uid>``, if that directory exists in every controller and they may create
    cgroups in it; else None. Cgroups they create are theirs, files included."""
    root = user_root(os.geteuid()) if cg_root == "auto" else cg_root.strip("/")
    for c in REQUIRED:
        if not os.access(os.path.join(mounts[c], root), os.W_OK | os.X_OK):
            return None
    return CgroupV1(mounts, root, "a subtree delegated to this user")


def delegate(mounts: dict[str, str], uid: int, gid: int) -> list[str]:
    """(root) Make ``cellbox/user-<uid>`` in every controller, owned by the user, with
    tasks and cgroup.procs theirs too (so they may also move their own processes in). Its
    limits stay root's: write them to cap the user's boxes together. Returns the dirs."""
    made = []
    for c in REQUIRED:
        d = os.path.join(mounts[c], user_root(uid))
        os.makedirs(d, exist_ok=True)
        for path in (d, os.path.join(d, "tasks"), os.path.join(d, "cgroup.procs")):
            os.chown(path, uid, gid)
        made.append(d)
    return made


def undelegate(mounts: dict[str, str], uid: int) -> list[str]:
    """(root) Remove the user's subtree, killing whatever still runs in its box cgroups."""
    removed = []
    for c in REQUIRED:
        d = os.path.join(mounts[c], user_root(uid))
        if not os.path.isdir(d):
            continue
        for sub in sorted(os.listdir(d)):
            if sub.startswith("box-"):
                CgroupV1(mounts, user_root(uid), "").box(int(sub[4:]), create=False).remove()
        rmdir_when_empty(d)
        removed.append(d)
    return removed


def _kill_if_in(pid: int, cgroup_dir: str) -> None:
    """SIGKILL ``pid`` if it is still a task of ``cgroup_dir``."""
    try:
        pidfd = os.pidfd_open(pid)
    except ProcessLookupError:
        return
    try:
        if cgroup_dir.endswith(_cgroup_of(pid, "pids")):  # checked after the pidfd pinned it
            signal.pidfd_send_signal(pidfd, signal.SIGKILL)
    except (ProcessLookupError, FileNotFoundError):
        pass
    finally:
        os.close(pidfd)


def _cgroup_of(pid: int, controller: str) -> str:
    for line in read(f"/proc/{pid}/cgroup").splitlines():
        _, controllers, path = line.split(":", 2)
        if controller in controllers.split(","):
            return path
    return "\0"  # matches no directory


class BoxCgroupV1:
    """One box's three cgroups. The cpuacct and pids cgroups live as long as the box: their
    files stay open from the first run to ``close`` (a warm pool's slot runs many times on
    one object). The memory cgroup is made again for every run (see
    ``_fresh_memory_cgroup``)."""

    kills = True

    def __init__(self, dirs: dict[str, str]) -> None:
        self.dirs = dirs  # controller -> directory of this box
        self._pids_base = 0
        self._pids_max = ""  # the value last written to pids.max ("": none yet)
        self._memsw: bool | None = None  # whether memory.memsw.* exists (the kernel's)
        self._kept: dict[str, int] = {}  # path -> fd, open from the first run to close()
        self._memory_fds: list[int] = []  # this run's memory cgroup: tasks, peak, oom_control

    def _p(self, controller: str, name: str) -> str:
        return os.path.join(self.dirs[controller], name)

    def _fd(self, controller: str, name: str, flags: int) -> int:
        """The kept fd of a cpuacct or pids file, opened on first use."""
        path = self._p(controller, name)
        if path not in self._kept:
            self._kept[path] = os.open(path, flags | os.O_CLOEXEC)
        return self._kept[path]

    def _fresh_memory_cgroup(self) -> None:
        """A new memory cgroup for every run: pages of files left in the box's tmpfs stay
        charged to the cgroup that wrote them, and would count against the next run. Nor can
        v1 reset the old one exactly: after even /bin/true it still holds ~50 KiB of kernel
        memory and the per-CPU charge stock (``memory.force_empty`` leaves the former and
        costs ~1.3 ms here, ten times an rmdir + mkdir). Removing the old one hands its
        charges to the parent."""
        d = self.dirs["memory"]
        rmdir_when_empty(d)
        os.mkdir(d)

    def _set_limits(self, memory: int | None, pids: int | None) -> None:
        """The run's limits. A new memory cgroup has none, so ``memory=None`` writes
        nothing there; pids.max is written when it changes."""
        if self._memsw is None:
            self._memsw = os.path.exists(self._p("memory", "memory.memsw.limit_in_bytes"))
        memsw = self._memsw
        if memory is not None and not memsw and swap_in_use():
            raise SandboxSetupError(
                "A memory limit was asked for, but swap is on and the kernel does not account "
                "swap in cgroups (no memory.memsw.*): the program could swap past the limit. "
                "Boot with swapaccount=1, or turn swap off (swapoff -a).")
        try:
            if memory is not None:
                write(self._p("memory", "memory.limit_in_bytes"), memory)
                if memsw:  # memsw >= limit at every moment: set after the limit
                    write(self._p("memory", "memory.memsw.limit_in_bytes"), memory)
                # v1 charges socket buffers (TCP and, once this is set, UDP) to a counter of
                # their own, unlimited by default: loopback sockets held hundreds of MiB.
                write(self._p("memory", "memory.kmem.tcp.limit_in_bytes"), memory)
            pids_max = "max" if pids is None else str(pids)
            if pids_max != self._pids_max:
                os.pwrite(self._fd("pids", "pids.max", os.O_WRONLY), pids_max.encode(), 0)
                self._pids_max = pids_max
        except OSError as e:
            raise SandboxSetupError(f"Cannot set cgroup limits (memory={memory}, "
                                    f"pids={pids}): {e}") from e

    def start_run(self, memory: int | None, pids: int | None) -> Join:
        self._fresh_memory_cgroup()
        self._set_limits(memory, pids)
        os.pwrite(self._fd("cpuacct", "cpuacct.usage", os.O_RDWR), b"0", 0)
        self._pids_base = self._pids_max_events()
        self._memory_fds = [os.open(self._p("memory", name), flags | os.O_CLOEXEC)
                            for name, flags in (("tasks", os.O_WRONLY),
                                                ("memory.max_usage_in_bytes", os.O_RDONLY),
                                                ("memory.oom_control", os.O_RDONLY))]
        # The program joins by writing "0" (itself) to ``tasks``: it has a single thread, so
        # that moves all of it. A write to ``cgroup.procs`` moves a whole thread group, which
        # takes the threadgroup rwsem for writing and waits for an RCU grace period: 10-14 ms
        # per controller here, against 0.04 ms for ``tasks`` (DESIGN.md, performance notes).
        # pids first: then every task of the box's cgroups is in the pids one, and an empty
        # pids.current proves the box empty (``populated``).
        return Join(tasks=(self._fd("pids", "tasks", os.O_WRONLY),
                           self._fd("cpuacct", "tasks", os.O_WRONLY), self._memory_fds[0]))

    def exists(self) -> bool:
        return any(os.path.isdir(d) for d in self.dirs.values())

    def _pids_max_events(self) -> int:
        try:
            return keyed(_pread(self._fd("pids", "pids.events", os.O_RDONLY)), "max")
        except FileNotFoundError:  # before Linux 4.19
            return 0

    def cpu_ns(self) -> int:
        return int(_pread(self._fd("cpuacct", "cpuacct.usage", os.O_RDWR)))

    def stats(self) -> CgroupStats:
        _, peak, oom = self._memory_fds
        return CgroupStats(
            cpu_ns=self.cpu_ns(),
            peak_memory=int(_pread(peak)),
            oom_kills=keyed(_pread(oom), "oom_kill"),
            pids_limit_hits=self._pids_max_events() - self._pids_base,
        )

    def pids(self) -> list[int]:
        seen: set[int] = set()
        for d in self.dirs.values():
            try:
                seen.update(int(p) for p in read(os.path.join(d, "cgroup.procs")).split())
            except FileNotFoundError:
                pass
        return sorted(seen)

    def kill_all(self, timeout: float = 5.0) -> None:
        """SIGKILL every task until the cgroup is empty.

        No freezer: a keeper killed while the cgroup was frozen would leave the box's
        processes frozen, and unkillable, until someone thawed it (the chaos test found
        this). Each round kills every task listed; a task forked meanwhile is listed in the
        next round, and the pids limit bounds how many there can be. Signals go through
        pidfds, so a pid reused after its task died is never signalled."""
        deadline = time.monotonic() + timeout
        while pids := self.pids():
            for pid in pids:
                _kill_if_in(pid, self.dirs["pids"])
            if time.monotonic() > deadline:
                raise SandboxSetupError(f"Processes {self.pids()} of box cgroup "
                                        f"{self.dirs['pids']} survived SIGKILL")
            time.sleep(0.001)

    def populated(self) -> bool:
        """Whether any task (a zombie too) of a run is in the box's cgroups: the pids one
        holds them all, as the program joins it first (``start_run``)."""
        try:
            return int(_pread(self._fd("pids", "pids.current", os.O_RDONLY))) > 0
        except FileNotFoundError:
            return False

    def end_run(self) -> None:
        for fd in self._memory_fds:
            os.close(fd)
        self._memory_fds = []

    def close(self) -> None:
        self.end_run()
        for fd in self._kept.values():
            os.close(fd)
        self._kept = {}

    def remove(self) -> None:
        self.close()
        if self.pids():
            self.kill_all()
        for d in self.dirs.values():
            rmdir_when_empty(d)


def _pread(fd: int) -> str:
    return os.pread(fd, 4096, 0).decode()


class CgroupV1:
    version = 1

    def __init__(self, mounts: dict[str, str], cg_root: str, found: str) -> None:
        self.mounts = mounts
        self.root = "cellbox" if cg_root == "auto" else cg_root.strip("/")
        self.found = found  # what detection saw, for describe()

    def describe(self) -> str:
        dirs = ", ".join(f"{c}={d}" for c, d in zip(REQUIRED, self.base_dirs(), strict=True))
        return f"cgroup v1: {dirs}; found: {self.found}"

    def base_dirs(self) -> list[str]:
        return [os.path.join(self.mounts[c], self.root) for c in REQUIRED]

    def remove_root(self) -> None:
        """Remove the (empty) cellbox directory itself, e.g. after a test or chaos run."""
        for c in REQUIRED:
            try:
                os.rmdir(os.path.join(self.mounts[c], self.root))
            except FileNotFoundError:
                pass

    def box(self, box_id: int, create: bool = True) -> BoxCgroupV1:
        dirs = {c: os.path.join(self.mounts[c], self.root, f"box-{box_id}") for c in REQUIRED}
        if create:
            for c, d in dirs.items():
                try:
                    # the memory one's parent only: every run makes its own memory cgroup
                    # (BoxCgroupV1._fresh_memory_cgroup)
                    os.makedirs(os.path.dirname(d) if c == "memory" else d, exist_ok=True)
                except OSError as e:
                    raise SandboxSetupError(
                        f"Cannot create cgroup {d} for controller {c}: {e}. cellbox must run "
                        "as root (or with a delegated cgroup) to apply limits.") from e
        return BoxCgroupV1(dirs)
