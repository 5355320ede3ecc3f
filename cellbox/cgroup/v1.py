"""cgroup v1: one directory per controller, ``<mount>/<cg_root>/box-<id>`` in each.

Killing sends SIGKILL to every task, round after round, until the cgroup is empty (see
``kill_all`` for why not the freezer). Counters that cannot be reset are read as offsets at
run start.
"""

from __future__ import annotations

import os
import signal
import time

from cellbox.cgroup import CgroupStats
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
    kills = True

    def __init__(self, dirs: dict[str, str]) -> None:
        self.dirs = dirs  # controller -> directory of this box
        self._pids_base = 0
        self._cpu_fd: int | None = None
        self._join_fds: list[int] = []

    def _p(self, controller: str, name: str) -> str:
        return os.path.join(self.dirs[controller], name)

    def _fresh_memory_cgroup(self) -> None:
        """A new memory cgroup for every run: pages of files left in the box's tmpfs stay
        charged to the cgroup that wrote them, and would count against the next run.
        Removing the old one hands those charges to the parent."""
        d = self.dirs["memory"]
        rmdir_when_empty(d)
        os.mkdir(d)

    def _set_limits(self, memory: int | None, pids: int | None) -> None:
        memsw = os.path.exists(self._p("memory", "memory.memsw.limit_in_bytes"))
        if memory is not None and not memsw and swap_in_use():
            raise SandboxSetupError(
                "A memory limit was asked for, but swap is on and the kernel does not account "
                "swap in cgroups (no memory.memsw.*): the program could swap past the limit. "
                "Boot with swapaccount=1, or turn swap off (swapoff -a).")
        try:
            # memsw >= limit at every moment: lift memsw first, then set both.
            if memsw:
                write(self._p("memory", "memory.memsw.limit_in_bytes"), -1)
            write(self._p("memory", "memory.limit_in_bytes"), -1 if memory is None else memory)
            if memsw and memory is not None:
                write(self._p("memory", "memory.memsw.limit_in_bytes"), memory)
            write(self._p("pids", "pids.max"), "max" if pids is None else pids)
        except OSError as e:
            raise SandboxSetupError(f"Cannot set cgroup limits (memory={memory}, "
                                    f"pids={pids}): {e}") from e

    def start_run(self, memory: int | None, pids: int | None) -> list[int]:
        self._fresh_memory_cgroup()
        self._set_limits(memory, pids)
        write(self._p("cpuacct", "cpuacct.usage"), 0)
        self._pids_base = self._pids_max_events()
        self._cpu_fd = os.open(self._p("cpuacct", "cpuacct.usage"), os.O_RDONLY | os.O_CLOEXEC)
        # The program joins by writing "0" (itself) to ``tasks``: it has a single thread, so
        # that moves all of it. A write to ``cgroup.procs`` moves a whole thread group, which
        # takes the threadgroup rwsem for writing and waits for an RCU grace period: 10-14 ms
        # per controller here, against 0.04 ms for ``tasks`` (DESIGN.md, performance notes).
        self._join_fds = [os.open(os.path.join(d, "tasks"), os.O_WRONLY | os.O_CLOEXEC)
                          for d in self.dirs.values()]
        return self._join_fds

    def exists(self) -> bool:
        return any(os.path.isdir(d) for d in self.dirs.values())

    def _pids_max_events(self) -> int:
        try:
            return keyed(read(self._p("pids", "pids.events")), "max")
        except FileNotFoundError:
            return 0

    def cpu_ns(self) -> int:
        assert self._cpu_fd is not None
        return int(os.pread(self._cpu_fd, 64, 0))

    def stats(self) -> CgroupStats:
        return CgroupStats(
            cpu_ns=int(read(self._p("cpuacct", "cpuacct.usage"))),
            peak_memory=int(read(self._p("memory", "memory.max_usage_in_bytes"))),
            oom_kills=keyed(read(self._p("memory", "memory.oom_control")), "oom_kill"),
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

    def end_run(self) -> None:
        for fd in [*self._join_fds, *([self._cpu_fd] if self._cpu_fd is not None else [])]:
            os.close(fd)
        self._join_fds, self._cpu_fd = [], None

    def remove(self) -> None:
        if self.pids():
            self.kill_all()
        for d in self.dirs.values():
            rmdir_when_empty(d)


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
                    os.makedirs(d, exist_ok=True)
                except OSError as e:
                    raise SandboxSetupError(
                        f"Cannot create cgroup {d} for controller {c}: {e}. cellbox must run "
                        "as root (or with a delegated cgroup) to apply limits.") from e
        return BoxCgroupV1(dirs)
