"""RunSpec: everything one run needs, resolved and validated, handed from the box layer to
the keeper, which turns it into the box init's plan (``boxinit.plan``)."""

from __future__ import annotations

from dataclasses import dataclass, field

from cellbox.limits import Limits
from cellbox.policy import Policy, default_policy
from cellbox.rules import DirRule


@dataclass(frozen=True)
class RunSpec:
    argv: list[str]
    env: dict[str, str]
    rules: list[DirRule]  # the box layer resolves them (sources checked, parents first)
    limits: Limits = field(default_factory=Limits)
    stdin: str | None = None  # paths inside the box; None: inherited (or captured)
    stdout: str | None = None
    stderr: str | None = None
    stderr_to_stdout: bool = False
    chdir: str = "/box"
    share_net: bool = False
    inherit_fds: bool = False
    seccomp: Policy = field(default_factory=default_policy)
    tty_hack: bool = False  # isolate's --tty-hack: stay in the caller's terminal session
    capture_output: bool = False  # stdout/stderr into RunResult (library)
    stdin_data: bytes | None = None  # fed through a pipe (library)
    # Fds of the caller's own (e.g. the pipes of an interactive run) handed to the program as
    # its stdin / stdout; borrowed: the caller closes them once the run has started
    stdin_fd: int | None = None
    stdout_fd: int | None = None
    # Rootless mode without a delegated cgroup: run anyway, with the limits that need a
    # cgroup reported in RunResult.limits_weakened (docs/security.md, "Rootless mode")
    allow_no_cgroup: bool = False
    # Filled in by the box layer:
    box_dir: str = ""  # <box_root>/<id>
    uid: int = -1  # the program's uid/gid (inside the user namespace in rootless mode)
    gid: int = -1
    # Rootless mode: the (uid, gid) outside that uid/gid map to, in a new user namespace
    id_map: tuple[int, int] | None = None
    # Rootless mode without a cgroup: RLIMIT_NPROC, which counts the tasks of the box uid in
    # the box's own user namespace (the box init's included), so it is a per-box processes limit
    nproc: int | None = None
