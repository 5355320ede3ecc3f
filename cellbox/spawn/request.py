"""The request the keeper sends the C init: one run, length-prefixed binary (``init.c`` has
the layout). Built in the keeper, so the child does no Python work for it."""

from __future__ import annotations

import resource
import struct
from dataclasses import dataclass
from functools import lru_cache

from cellbox.linux.privileges import LAST_CAP
from cellbox.policy import Policy
from cellbox.spec import RunSpec

FLAG_TTY_HACK = 1
FLAG_STDERR_TO_STDOUT = 2
FLAG_SHARE_NET = 4
FLAG_ROOTLESS = 8  # a user namespace: no setgroups; stdio opened without capabilities
FLAG_NET_REUSABLE = 16  # a warm box may keep its network namespace (init.c, net_untouched)


@dataclass(frozen=True)
class RunFds:
    """The fds of a run, by their numbers in init (for a warm box: their indices among the
    fds sent with the request): init's status pipe, the captured stdio pipe ends (or None)
    and the cgroup files the program writes b"0" to, to join."""

    status: int
    stdin: int | None
    stdout: int | None
    stderr: int | None
    join: tuple[int, ...]


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


def _str(s: str) -> bytes:
    raw = s.encode("utf-8", "surrogateescape")
    return struct.pack("<I", len(raw)) + raw + b"\0"


def _list(items: list[bytes]) -> bytes:
    return struct.pack("<I", len(items)) + b"".join(items)


def _fd(fd: int | None) -> int:
    return -1 if fd is None else fd


@lru_cache(maxsize=8)
def _net_reusable(policy: Policy) -> bool:
    """An io_uring ring drops its files after its owner's exit, so a socket could outlive a
    run unseen: a warm box keeps its network namespace only under a policy refusing them."""
    return "io_uring_setup" in dict(policy.denied)


def encode(spec: RunSpec, fds: RunFds, filters: tuple[bytes, ...],
           renew: tuple[tuple[str, str], ...] = ()) -> bytes:
    """The request for one run of ``spec``; ``filters``: the compiled seccomp BPF; ``renew``:
    (path, options) of the tmpfs mounts a warm box mounts again before the run."""
    flags = (FLAG_TTY_HACK if spec.tty_hack else 0) | (
        FLAG_STDERR_TO_STDOUT if spec.stderr_to_stdout else 0) | (
        FLAG_SHARE_NET if spec.share_net else 0) | (
        FLAG_ROOTLESS if spec.id_map is not None else 0) | (
        FLAG_NET_REUSABLE if not spec.fresh_net and _net_reusable(spec.seccomp) else 0)
    body = b"".join([
        struct.pack("<IIIIiiii", spec.uid, spec.gid, LAST_CAP, flags, fds.status,
                    _fd(fds.stdin), _fd(fds.stdout), _fd(fds.stderr)),
        _str(spec.chdir), _str(spec.stdin or ""), _str(spec.stdout or ""),
        _str(spec.stderr or ""),
        _list([struct.pack("<IIQ", res, value is not None, value or 0) + _str(name)
               for name, res, value in _rlimits(spec)]),
        _list([struct.pack("<i", fd) for fd in fds.join]),
        _list([struct.pack("<I", len(code)) + code for code in filters]),
        _list([_str(path) + _str(options) for path, options in renew]),
        _list([_str(a) for a in spec.argv]),
        _list([_str(f"{k}={v}") for k, v in spec.env.items()]),
    ])
    return struct.pack("<I", len(body)) + body
