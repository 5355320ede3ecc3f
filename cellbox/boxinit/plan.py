"""The run plan: everything a box init needs, resolved in the keeper and sent as
length-prefixed binary messages (``plan.c`` has the layout): one ``BoxPlan`` when the box
init starts, then one ``RunPlan`` per run. The box init makes no decision of its own."""

from __future__ import annotations

import resource
import struct
from dataclasses import dataclass
from functools import lru_cache

from cellbox.cgroup.run import Join
from cellbox.linux import privileges
from cellbox.linux.mounts import MountStep, root_steps
from cellbox.spec import RunSpec

MSG_BOX, MSG_RUN = 1, 2
BOX_SHARE_NET, BOX_ROOTLESS, BOX_WARM, BOX_INHERIT_FDS, BOX_FOR_USER = 1, 2, 4, 8, 16
RUN_TTY_HACK, RUN_STDERR_TO_STDOUT, RUN_OWN_USERNS = 1, 2, 4
HOSTNAME = "cellbox"


def _last_cap() -> int:
    with open("/proc/sys/kernel/cap_last_cap", "rb") as f:
        return int(f.read())


LAST_CAP = _last_cap()


def _str(s: str) -> bytes:
    raw = s.encode("utf-8", "surrogateescape")
    return struct.pack("<I", len(raw)) + raw + b"\0"


def _list(items: list[bytes]) -> bytes:
    return struct.pack("<I", len(items)) + b"".join(items)


def _message(kind: int, body: bytes) -> bytes:
    return struct.pack("<II", len(body) + 4, kind) + body


@dataclass(frozen=True)
class BoxPlan:
    """What the launcher and the box init set up once: the namespaces (a user namespace with
    ``id_map`` in rootless mode; the host's network with ``share_net``), the root built on
    ``root`` by ``mounts``, the hostname and loopback. ``warm``: more than one run will come.
    ``for_user``: the ordinary user a root daemon serves, with whose file access the box init
    opens bind sources. Passed fds: [status, lifeline]."""

    root: str
    mounts: tuple[MountStep, ...]
    uid: int
    gid: int
    id_map: tuple[int, int] | None
    share_net: bool
    warm: bool
    inherit_fds: bool
    for_user: privileges.Credentials | None = None
    hostname: str = HOSTNAME

    @classmethod
    def of(cls, spec: RunSpec, warm: bool) -> BoxPlan:
        return cls(f"{spec.box_dir}/root", root_steps(spec.rules, spec.box_dir),
                   spec.uid, spec.gid, spec.id_map, spec.share_net, warm, spec.inherit_fds,
                   privileges.served_user())

    def encode(self) -> bytes:
        return _encode_box(self)


@lru_cache(maxsize=64)
def _encode_box(plan: BoxPlan) -> bytes:
    """A box plan's message, kept: a box's runs send the same one again and again."""
    flags = (BOX_SHARE_NET if plan.share_net else 0) | (
        BOX_ROOTLESS if plan.id_map is not None else 0) | (
        BOX_WARM if plan.warm else 0) | (BOX_INHERIT_FDS if plan.inherit_fds else 0) | (
        BOX_FOR_USER if plan.for_user else 0)
    outside = plan.id_map or (0, 0)
    user = plan.for_user or privileges.Credentials(0, 0)
    return _message(MSG_BOX, b"".join([
        struct.pack("<6I", flags, plan.uid, plan.gid, *outside, LAST_CAP),
        _str(plan.root), _str(plan.hostname),
        _list([struct.pack("<IIQQ", m.op, m.flags, m.attrs, m.dev) + _str(m.source)
               + _str(m.inside) + _str(m.fstype) + _str(m.data) for m in plan.mounts]),
        struct.pack("<II", user.uid, user.gid),
        _list([struct.pack("<I", g) for g in user.groups]),
    ]))


def _rlimits(spec: RunSpec) -> list[tuple[str, int, int | None]]:
    """(name, resource, value); None: as high as init may go (its hard limit)."""
    lim = spec.limits
    nproc = [] if spec.nproc is None else [("nproc", resource.RLIMIT_NPROC, spec.nproc)]
    return [*nproc,
        ("as", resource.RLIMIT_AS, lim.address_space),
        ("stack", resource.RLIMIT_STACK, lim.stack),
        ("fsize", resource.RLIMIT_FSIZE, lim.file_size),
        # Processes are limited by the pids cgroup, which counts the hits; RLIMIT_NPROC
        # would refuse the fork first and hide them. It serves only without a cgroup.
        ("core", resource.RLIMIT_CORE, lim.core),
        # RLIM_INFINITY is not a valid open-file limit: "unlimited" is the hard limit we have.
        ("nofile", resource.RLIMIT_NOFILE,
         lim.open_files or resource.getrlimit(resource.RLIMIT_NOFILE)[1]),
        ("cpu", resource.RLIMIT_CPU, lim.cpu_rlimit()),
        ("memlock", resource.RLIMIT_MEMLOCK, 0),
    ]


@dataclass(frozen=True)
class RunPlan:
    """One run: the program's stdio (pipes the keeper reads or feeds, else paths inside the
    box), credentials, rlimits, how it joins its cgroups, the compiled seccomp filters, argv
    and env. Passed fds: [status, the stdio pipes given, the cgroup's]."""

    spec: RunSpec
    status: int
    stdio: tuple[int | None, int | None, int | None]
    join: Join
    filters: tuple[bytes, ...]

    def fds(self) -> list[int]:
        into = () if self.join.into is None else (self.join.into,)
        return [self.status, *(fd for fd in self.stdio if fd is not None), *into,
                *self.join.tasks]

    def encode(self) -> bytes:
        spec, passed = self.spec, self.fds()
        flags = (RUN_TTY_HACK if spec.tty_hack else 0) | (
            RUN_STDERR_TO_STDOUT if spec.stderr_to_stdout else 0) | (
            RUN_OWN_USERNS if spec.nproc is not None else 0)  # RLIMIT_NPROC counts it alone
        return _message(MSG_RUN, b"".join([
            struct.pack("<IIII", spec.uid, spec.gid, LAST_CAP, flags),
            struct.pack("<iiii", *(-1 if fd is None else passed.index(fd)
                                   for fd in (*self.stdio, self.join.into))),
            _str(spec.chdir), _str(spec.stdin or ""), _str(spec.stdout or ""),
            _str(spec.stderr or ""),
            _list([struct.pack("<IIQ", res, value is not None, value or 0) + _str(name)
                   for name, res, value in _rlimits(spec)]),
            _list([struct.pack("<i", passed.index(fd)) for fd in self.join.tasks]),
            _list([struct.pack("<I", len(code)) + code for code in self.filters]),
            _list([_str(a) for a in spec.argv]),
            _list([_str(f"{k}={v}") for k, v in spec.env.items()]),
        ]))
