"""cellbox doctor: every check runs on the real host and says what to do when not passing."""

from __future__ import annotations

import json
import os

import pytest

from cellbox import doctor
from tests.support.boxes import cellbox

pytestmark = pytest.mark.operations


@pytest.mark.cgroup2  # runs in the cgroup v2 VM too
def test_doctor_checks_this_host():
    proc = cellbox("doctor", "--json")
    report = json.loads(proc.stdout)
    checks = {c["name"]: c for c in report["checks"]}
    assert set(checks) == {check().name for check in doctor.CHECKS}
    for c in checks.values():
        assert c["level"] in ("pass", "warn", "fail")
        assert c["found"], c
        assert c["level"] == "pass" or c["advice"], f"{c['name']}: no advice"
    assert checks["cgroups"]["level"] == "pass"  # the suite itself runs on these cgroups
    assert checks["seccomp"]["level"] == "pass"
    assert report["ok"] and proc.returncode == 0


def test_doctor_reads_the_real_sysctls():
    aslr = doctor.check_aslr()
    with open("/proc/sys/kernel/randomize_va_space") as f:
        assert f"randomize_va_space={f.read().strip()}" in aslr.found
    links = doctor.check_protected_links()
    with open("/proc/sys/fs/protected_symlinks") as f:
        assert f"protected_symlinks={f.read().strip()}" in links.found
    assert (links.level is doctor.Level.PASS) == (not links.fix)


def test_a_failing_check_fails_the_doctor(tmp_path):
    env_before = os.environ["CELLBOX_CONFIG"]
    os.environ["CELLBOX_CONFIG"] = str(tmp_path / "missing.toml")
    try:
        proc = cellbox("doctor")
    finally:
        os.environ["CELLBOX_CONFIG"] = env_before
    assert proc.returncode == 1
    assert b"fail" in proc.stdout and b"missing.toml" in proc.stdout


def test_doctor_table_and_help():
    assert b"what to do" in cellbox("doctor", check=True).stdout
    assert b"--fix" in cellbox("doctor", "--help", check=True).stdout
