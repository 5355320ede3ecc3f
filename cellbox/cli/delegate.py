"""``cellbox delegate``: (root) give a user a cgroup v1 subtree for rootless boxes."""

from __future__ import annotations

import os
import pwd
from typing import TYPE_CHECKING

from cellbox.cli.subcommands import parser as _parser
from cellbox.errors import SandboxSetupError, UsageError

if TYPE_CHECKING:
    import argparse


def delegate_parser() -> argparse.ArgumentParser:
    p = _parser("delegate", "(root, cgroup v1) Give a user the cgroup subtree "
                "cellbox/user-UID in the memory, cpuacct and pids hierarchies, owned by them, "
                "so that cellbox run by that user (rootless mode) applies every limit with "
                "cgroups, as for root. Lasts until reboot (cgroups live in memory): run it "
                "from a boot-time unit. On cgroup v2 there is nothing to do here: run "
                "cellbox in a cgroup systemd delegates, e.g. systemd-run --user --scope -p "
                "Delegate=yes cellbox ... (docs/cgroups.md).")
    p.add_argument("--uid", type=int, required=True, help="the user's numeric uid")
    p.add_argument("--gid", type=int, help="their group (default: the uid's primary group, "
                   "else the same number as the uid)")
    p.add_argument("--remove", action="store_true", help="remove the subtree instead, "
                   "killing whatever still runs in its box cgroups")
    return p


def delegate_main(argv: list[str]) -> int:
    args = delegate_parser().parse_args(argv)
    if os.geteuid() != 0:
        raise UsageError("cellbox delegate hands out cgroups: run it as root")
    if args.uid <= 0:
        raise UsageError("--uid must be a user's uid, above 0")
    from cellbox.cgroup import v1, v2

    mounts = v1.find_mounts()
    if not all(c in mounts for c in v1.REQUIRED):
        where = "this machine uses cgroup v2" if v2.find_mount() else "no cgroup v1 hierarchy"
        raise SandboxSetupError(f"cellbox delegate is for cgroup v1, and {where}: on v2 run "
                                "cellbox in a cgroup systemd delegates to the user "
                                "(docs/cgroups.md)")
    if args.remove:
        for d in v1.undelegate(mounts, args.uid):
            print(f"removed {d}")
        return 0
    gid = args.gid if args.gid is not None else _primary_gid(args.uid)
    for d in v1.delegate(mounts, args.uid, gid):
        print(f"delegated {d} to uid {args.uid}, gid {gid}")
    return 0


def _primary_gid(uid: int) -> int:
    try:
        return pwd.getpwuid(uid).pw_gid
    except KeyError:
        return uid


# Registered with cellbox.cli.subcommands: name -> (handler, parser maker).
COMMANDS = {
    "delegate": (delegate_main, delegate_parser),
}
