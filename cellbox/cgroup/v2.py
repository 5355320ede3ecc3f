"""cgroup v2: one unified hierarchy; box N is the leaf ``<base>/box-<N>``.

Where ``<base>`` lies (see ``place``):

- ``cg_root`` set in the config: ``<mount>/<cg_root>``;
- ``cg_root = "auto"`` in a delegated cgroup D (a systemd service with ``Delegate=yes``, or
  any non-root cgroup on a machine without systemd): ``D/cellbox``. The no-internal-processes
  rule forbids enabling controllers for D's children while D holds processes, so the
  processes of D (this one among them) first move into the leaf ``D/supervisor``;
- ``cg_root = "auto"`` in the root cgroup, or in a cgroup that systemd did not delegate:
  ``<mount>/cellbox``, a child of the root (which the rule does not bind).

Every run gets a fresh leaf, so every counter (``cpu.stat``, ``memory.peak``, which
cannot be reset before Linux 6.12, ``memory.events``, ``pids.events``) is per run.
Killing writes ``cgroup.kill``, which the kernel applies to every process, forks included.
"""

from __future__ import annotations

import errno
import os
from dataclasses import dataclass

from cellbox.cgroup.run import CgroupStats, Join
from cellbox.cgroup.files import keyed, read, rmdir_when_empty, swap_in_use, wait_until, write
from cellbox.errors import SandboxSetupError

NEEDED = ("memory", "pids")  # cpu.stat's usage_usec needs no controller
BOXES = "cellbox"  # the directory of box cgroups in a delegated cgroup, or under the root
LEAF = "supervisor"  # where a delegated cgroup's own processes go
# Files that appeared in later kernels than the rest: cgroup.kill in 5.14, memory.peak in 5.19.
NEWER_FILES = {"cgroup.kill": "5.14", "memory.peak": "5.19"}


def find_mount() -> str | None:
    """The mount point of the cgroup2 hierarchy as this process sees it, if any."""
    with open("/proc/self/mountinfo") as f:
        for line in f:
            pre, _, post = line.partition(" - ")
            fields = pre.split()
            if post.split()[0] == "cgroup2" and fields[3] == "/":
                return fields[4]
    return None


def controllers(d: str, name: str = "cgroup.controllers") -> set[str]:
    return set(read(os.path.join(d, name)).split())


def own_cgroup() -> str:
    """This process's cgroup v2 path, e.g. "/job" or "/" (from /proc/self/cgroup)."""
    with open("/proc/self/cgroup") as f:
        for line in f:
            if line.startswith("0::"):
                return line[3:].strip()
    raise SandboxSetupError("/proc/self/cgroup has no cgroup v2 entry (0::): this process "
                            "is not in the unified hierarchy")


def _systemd_delegated(d: str) -> bool:
    """systemd (>= 251) marks the cgroups it delegates with the trusted.delegate xattr."""
    try:
        return os.getxattr(d, "trusted.delegate") == b"1"
    except OSError:
        return False


def _user_may_write(d: str) -> bool:
    """For a user who is not root (who cannot read trusted.* attributes): whether cgroup
    ``d`` is delegated to them, i.e. they own it as systemd's Delegate=yes makes them."""
    return os.geteuid() != 0 and all(
        os.access(os.path.join(d, name), os.W_OK)
        for name in ("", "cgroup.procs", "cgroup.subtree_control"))


@dataclass(frozen=True)
class Placement:
    base: str  # the directory holding box-<N>
    delegated: str | None  # the delegated cgroup whose processes move into LEAF, if any
    why: str


def place(mount: str, cg_root: str) -> Placement:
    """Where box cgroups go, and why, without changing anything."""
    if cg_root != "auto":
        return Placement(os.path.join(mount, cg_root.strip("/")), None,
                         f"cg_root = {cg_root!r} in the configuration")
    own = own_cgroup()
    if os.path.basename(own) == LEAF:
        # Moved into the leaf already, by an earlier cellbox process or by systemd
        # (DelegateSubgroup=supervisor): the delegated cgroup is the parent.
        own = os.path.dirname(own)
    top = os.path.join(mount, BOXES)
    d = os.path.join(mount, own.lstrip("/")).rstrip("/")
    if not os.path.exists(os.path.join(d, "cgroup.type")):  # the one cgroup without it
        return Placement(top, None, "this process runs in the root cgroup")
    # Otherwise d is a real cgroup, even when it is "/": the root of a cgroup namespace.
    if os.path.isdir("/run/systemd/system") and not (_systemd_delegated(d)
                                                     or _user_may_write(d)):
        return Placement(top, None, f"this process runs in {own}, which systemd did not "
                         "delegate (no trusted.delegate attribute)")
    return Placement(os.path.join(d, BOXES), d, f"this process runs in {own}, a delegated "
                     f"cgroup: its processes move into {os.path.join(own, LEAF)}")


def _enable_controllers(d: str) -> None:
    """Let the children of ``d`` use the NEEDED controllers (if they cannot already)."""
    missing = [c for c in NEEDED if c not in controllers(d, "cgroup.subtree_control")]
    if missing:
        write(os.path.join(d, "cgroup.subtree_control"), " ".join("+" + c for c in missing))


def _take_delegation(d: str) -> None:
    """Move every process of the delegated cgroup ``d`` into ``d/supervisor``, then enable
    the controllers for d's children. The processes of d are the service's that was given
    d (a judge and the cellbox commands it runs): all of them move, or the kernel refuses."""
    missing = [c for c in NEEDED if c not in controllers(d)]
    if missing:  # checked before anything moves
        raise SandboxSetupError(
            f"cellbox runs in the cgroup {d}, which has no {' and '.join(missing)} controller: "
            "it was not delegated them. Run cellbox in a service with Delegate=memory pids "
            "(systemd/cellbox.service, docs/cgroups.md), or set cg_root in the configuration.")
    leaf = os.path.join(d, LEAF)
    os.makedirs(leaf, exist_ok=True)
    for _ in range(20):  # a process in d may fork between the moves and the enabling
        for pid in read(os.path.join(d, "cgroup.procs")).split():
            try:
                write(os.path.join(leaf, "cgroup.procs"), pid)
            except ProcessLookupError:
                pass  # it exited meanwhile
        try:
            _enable_controllers(d)
            return
        except OSError as e:
            if e.errno != errno.EBUSY:
                raise
    raise SandboxSetupError(f"Cannot enable controllers in {d}: processes keep appearing in it")


class BoxCgroupV2:
    kills = True

    def __init__(self, path: str) -> None:
        self.path = path
        self._cpu_fd: int | None = None
        self._join_fd: int | None = None

    def _p(self, name: str) -> str:
        return os.path.join(self.path, name)

    def _set_limits(self, memory: int | None, pids: int | None) -> None:
        try:
            if memory is not None:
                write(self._p("memory.max"), memory)
                if os.path.exists(self._p("memory.swap.max")):
                    write(self._p("memory.swap.max"), 0)
                elif swap_in_use():
                    raise SandboxSetupError(
                        "A memory limit was asked for, but swap is on and the kernel does not "
                        "account swap in cgroups (no memory.swap.max): the program could swap "
                        "past the limit. Boot with swapaccount=1, or turn swap off (swapoff -a).")
            if pids is not None:
                write(self._p("pids.max"), pids)
        except OSError as e:
            raise SandboxSetupError(f"Cannot set cgroup limits (memory={memory}, "
                                    f"pids={pids}) in {self.path}: {e}") from e

    def start_run(self, memory: int | None, pids: int | None) -> Join:
        # A fresh leaf per run: every counter starts at zero and the limits of the previous
        # run are gone; the pages of files left in the box stay with the removed cgroup.
        rmdir_when_empty(self.path)
        os.mkdir(self.path)
        self._set_limits(memory, pids)
        self._cpu_fd = os.open(self._p("cpu.stat"), os.O_RDONLY | os.O_CLOEXEC)
        # The box init forks the program into the leaf (clone3 CLONE_INTO_CGROUP): atomic,
        # without the RCU grace period a write to cgroup.procs may wait for. What the
        # program's side does before execve (a few C steps) is charged too (docs/cgroups.md).
        self._join_fd = os.open(self.path, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
        return Join(into=self._join_fd)

    def exists(self) -> bool:
        return os.path.isdir(self.path)

    def cpu_ns(self) -> int:
        assert self._cpu_fd is not None
        return keyed(os.pread(self._cpu_fd, 4096, 0).decode(), "usage_usec") * 1000

    def stats(self) -> CgroupStats:
        return CgroupStats(
            cpu_ns=keyed(read(self._p("cpu.stat")), "usage_usec") * 1000,
            peak_memory=int(read(self._p("memory.peak"))),
            oom_kills=keyed(read(self._p("memory.events")), "oom_kill"),
            pids_limit_hits=keyed(read(self._p("pids.events")), "max"),
        )

    def pids(self) -> list[int]:
        try:
            return sorted(int(p) for p in read(self._p("cgroup.procs")).split())
        except FileNotFoundError:
            return []

    def populated(self) -> bool:
        """Whether any process is in the box's cgroup."""
        try:
            return keyed(read(self._p("cgroup.events")), "populated") != 0
        except FileNotFoundError:
            return False

    def kill_all(self, timeout: float = 5.0) -> None:
        """SIGKILL every process of the cgroup at once, and wait until it is empty."""
        if not self.populated():
            return
        write(self._p("cgroup.kill"), 1)
        wait_until(lambda: not self.populated(), timeout,
                   f"Processes of box cgroup {self.path} survived cgroup.kill")

    def end_run(self) -> None:
        for fd in (self._join_fd, self._cpu_fd):
            if fd is not None:
                os.close(fd)
        self._join_fd = self._cpu_fd = None

    def close(self) -> None:
        self.end_run()  # nothing is kept between runs: each has a new leaf

    def remove(self) -> None:
        self.kill_all()
        rmdir_when_empty(self.path)


class CgroupV2:
    version = 2

    def __init__(self, mount: str, cg_root: str, found: str) -> None:
        self.mount = mount
        self.placement = place(mount, cg_root)
        self.found = found  # what detection saw, for describe()
        self._prepared = False

    def describe(self) -> str:
        p = self.placement
        return (f"cgroup v2 at {self.mount}: boxes in {p.base}/box-<id> ({p.why}); "
                f"found: {self.found}")

    def base_dirs(self) -> list[str]:
        return [self.placement.base]

    def _prepare(self) -> None:
        """Take the delegation if there is one, then create the path down to the base,
        enabling the controllers on the way (where the parent does not already)."""
        p = self.placement
        if p.delegated is not None:
            _take_delegation(p.delegated)
        rel = os.path.relpath(p.base, self.mount)
        d = self.mount
        for part in rel.split("/"):
            _enable_controllers(d)
            d = os.path.join(d, part)
            os.makedirs(d, exist_ok=True)
        _enable_controllers(d)
        self._prepared = True

    def remove_root(self) -> None:
        """Remove the (empty) base directory itself, e.g. after a test run. A delegated
        cgroup's leaf stays: it holds the processes of the service."""
        try:
            os.rmdir(self.placement.base)
        except FileNotFoundError:
            pass

    def box(self, box_id: int, create: bool = True) -> BoxCgroupV2:
        path = os.path.join(self.placement.base, f"box-{box_id}")
        if create:
            try:
                if not self._prepared:
                    self._prepare()
                os.makedirs(path, exist_ok=True)
            except OSError as e:
                raise SandboxSetupError(
                    f"Cannot create cgroup {path}: {e}. cellbox needs root, and either the root "
                    "cgroup or a delegated one (a systemd service with Delegate=yes; see "
                    "docs/cgroups.md); a cg_root whose parents hold processes cannot work "
                    "(the no-internal-processes rule).") from e
            for name, version in NEWER_FILES.items():
                if not os.path.exists(os.path.join(path, name)):
                    raise SandboxSetupError(f"cgroup {path} has no {name}: cellbox's cgroup v2 "
                                            f"backend needs Linux >= {version}")
        return BoxCgroupV2(path)


def delegated_to_user(mount: str, cg_root: str) -> CgroupV2 | None:
    """For a user who is not root: the backend, if the cgroup its boxes would go to is
    theirs (the delegated cgroup this process runs in, or an existing cg_root); else None."""
    p = place(mount, cg_root)
    usable = (_user_may_write(p.delegated) if p.delegated is not None
              else cg_root != "auto" and os.access(p.base, os.W_OK))
    return CgroupV2(mount, cg_root, "a cgroup delegated to this user") if usable else None
