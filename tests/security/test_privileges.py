"""Privileges: no capability in any set, securebits locked, no_new_privs, seccomp in force,
and setuid/setgid files (made in the box, or bound from the host) that raise nothing."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

from tests.support.proof import hostile, parse_results, run_checked, run_py
from tests.support.rootless import in_both_modes

pytestmark = pytest.mark.security

SECBIT_LOCKS = 0x2 | 0x8 | 0x20 | 0x80  # NOROOT, NO_SETUID_FIXUP, KEEP_CAPS, NO_CAP_AMBIENT_RAISE


@pytest.mark.cgroup2
def test_capabilities_cannot_be_regained(box, sys_program) -> None:  # noqa: ANN001
    got, _ = hostile(box, sys_program, "sys_caps")
    for label in ("capset_all", "ambient_raise", "securebits_clear", "keepcaps", "setuid_0",
                  "setgid_0"):
        assert got[label] == "EPERM", (label, got)
    assert int(got["securebits"]) & SECBIT_LOCKS == SECBIT_LOCKS
    assert got["no_new_privs"] == "1"
    assert got["bounding_caps"] == "0"


@in_both_modes
def test_seccomp_filters_are_in_force(box) -> None:  # noqa: ANN001
    proc, _ = run_py(box, "print(open('/proc/self/status').read())")
    status = dict(line.split(":", 1) for line in proc.stdout.decode().splitlines() if ":" in line)
    assert status["Seccomp"].strip() == "2"  # SECCOMP_MODE_FILTER
    assert status["Seccomp_filters"].strip() == "2"  # the ABI filter and the policy filter
    assert status["NoNewPrivs"].strip() == "1"


def _setuid_root(path: Path) -> None:
    os.chown(path, 0, 0)
    os.chmod(path, 0o6755)  # setuid and setgid root


@in_both_modes
def test_setuid_binary_bound_from_the_host_raises_nothing(
        box, sys_program, host_dir: Path) -> None:  # noqa: ANN001
    tools, target = host_dir / "tools", host_dir / "rootonly"
    tools.mkdir(mode=0o755)
    target.mkdir(mode=0o755)  # root-owned: only root could create the canary in it
    shutil.copy(sys_program("sys_whoami"), tools / "whoami")
    _setuid_root(tools / "whoami")
    proc, meta = run_checked(box, "/tools/whoami", "/rootonly", opts=(
        f"--dir=/tools={tools}", f"--dir=/rootonly={target}:rw"))
    got = parse_results(proc.stdout)
    assert meta["cellbox-status"] == "OK", proc.stderr
    assert got["euid"] != "0" and got["egid"] != "0" and got["suid"] != "0"
    assert int(got["capeff"], 16) == 0
    assert got["create_in_root_dir"] == "EACCES"
    assert list(target.iterdir()) == []


@in_both_modes
def test_setuid_binary_made_in_the_box_raises_nothing(box, sys_program) -> None:  # noqa: ANN001
    shutil.copy(sys_program("sys_whoami"), box.work / "whoami")
    _setuid_root(box.work / "whoami")
    proc, _ = run_checked(box, "./whoami")
    got = parse_results(proc.stdout)
    assert got["euid"] != "0" and got["suid"] != "0" and int(got["capeff"], 16) == 0


@in_both_modes
def test_no_root_inside_a_user_namespace(box, sys_program) -> None:  # noqa: ANN001
    got, _ = hostile(box, sys_program, "sys_userns", opts=("--processes=4",))
    for label in ("unshare_user", "uid_map", "mount_as_ns_root", "clone_newuser"):
        assert got[label] == "EPERM", (label, got)
    assert got["uid_map_changed"] == "no"
    assert got["uid"] != "0"


def test_the_filter_cannot_be_loosened_from_inside(box, sys_program) -> None:  # noqa: ANN001
    got, _ = hostile(box, sys_program, "sys_seccomp_escape", opts=("--wall-time=10",))
    assert got["stack_allow_all"] == "OK"  # allowed: a new filter only adds restrictions
    assert got["disable"] == "EINVAL"
    assert got["get_filter"] == "EPERM"
    for label in ("mount_after", "ptrace_after", "unshare_after"):
        assert got[label] == "EPERM", (label, got)
