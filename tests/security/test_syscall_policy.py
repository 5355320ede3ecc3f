"""--syscalls and --seccomp-policy: the grammar, policy files, errors, and weakening that is
always reported (meta, -v, the library's RunResult)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from cellbox import Box
from cellbox.errors import UsageError
from cellbox.policy import load_policy
from tests.support.boxes import PY, cellbox
from tests.support.proof import hostile

pytestmark = pytest.mark.security


@pytest.mark.cgroup2
def test_allowing_a_denied_syscall_works_and_is_reported(box, sys_program) -> None:  # noqa: ANN001
    got, meta = hostile(box, sys_program, "sys_ptrace",
                        opts=("--processes=4", "--syscalls=+ptrace,+process_vm_readv"))
    assert got["ptrace_traceme"] == "OK"
    assert got["process_vm_readv"] == "OK"
    assert got["process_vm_writev"] == "EPERM"  # still denied: only what was named is allowed
    assert meta["cellbox-seccomp-weakened"] == "process_vm_readv,ptrace"


def test_verbose_names_the_weakening(box) -> None:  # noqa: ANN001
    proc = cellbox("-b", str(box.id), "-v", "--syscalls=+mount", "--run", "--", "/bin/true")
    assert proc.returncode == 0, proc.stderr
    assert b"WEAKENED, allows mount" in proc.stderr


def test_default_policy_reports_no_weakening(box) -> None:  # noqa: ANN001
    _, meta = box.run("/bin/true")
    assert "cellbox-seccomp-weakened" not in meta


def test_lifting_an_argument_check_is_reported(box, sys_program) -> None:  # noqa: ANN001
    got, meta = hostile(box, sys_program, "sys_socket", opts=("--syscalls=+socket",))
    assert got["appletalk"] in ("EAFNOSUPPORT", "OK")  # the kernel decides now, not the filter
    assert meta["cellbox-seccomp-weakened"] == "socket"


def test_denying_more_with_a_chosen_errno(box) -> None:  # noqa: ANN001
    code = "import os\ntry:\n    os.getcwd()\nexcept OSError as e:\n    print(e.errno)"
    proc, meta = box.run(PY, "-c", code, opts=("--syscalls=-getcwd:EACCES",))
    assert meta["cellbox-status"] == "OK", proc.stderr
    assert proc.stdout.strip() == b"13"
    assert "cellbox-seccomp-weakened" not in meta


def test_repeated_option_and_later_items_win(box, sys_program) -> None:  # noqa: ANN001
    got, meta = hostile(box, sys_program, "sys_kernel",
                        opts=("--syscalls=+acct", "--syscalls=-acct:ENOSYS"))
    assert got["acct"] == "ENOSYS"
    assert "cellbox-seccomp-weakened" not in meta


@pytest.mark.unit
def test_later_items_win_in_the_weakening_report_too() -> None:
    assert load_policy("default", ("+socket", "-socket")).weakened == ()
    assert load_policy("default", ("-ptrace:ENOSYS", "+ptrace")).weakened == ("ptrace",)
    assert load_policy("default", ("+mount", "-mount:EACCES")).weakened == ()


def test_policy_file_extending_the_default(box, sys_program, tmp_path: Path) -> None:  # noqa: ANN001
    policy = tmp_path / "judge.toml"
    policy.write_text('description = "default, plus ptrace for a debugger task"\n'
                      'extends = "default"\nsyscalls = ["+ptrace", "-sysinfo"]\n')
    got, meta = hostile(box, sys_program, "sys_ptrace",
                        opts=("--processes=4", f"--seccomp-policy={policy}"))
    assert got["ptrace_traceme"] == "OK"
    assert meta["cellbox-seccomp-weakened"] == "ptrace"


def test_policy_file_without_the_default_reports_everything_it_drops(
        box, tmp_path: Path) -> None:  # noqa: ANN001
    policy = tmp_path / "bare.toml"
    policy.write_text('syscalls = ["-mount"]\n')
    _, meta = box.run("/bin/true", opts=(f"--seccomp-policy={policy}",))
    weakened = meta["cellbox-seccomp-weakened"].split(",")
    assert "ptrace" in weakened and "keyctl" in weakened and "mount" not in weakened


BAD_POLICIES = {
    "bad-toml.toml": ("syscalls = [", "not valid TOML"),
    "unknown-key.toml": ('allow = ["ptrace"]\n', "unknown keys ['allow']"),
    "not-a-list.toml": ('syscalls = "-mount"\n', "must be a list of strings"),
    "bad-item.toml": ('syscalls = ["mount"]\n', "must be +NAME (allow) or -NAME[:ERRNO]"),
    "loop.toml": ('extends = "{dir}/loop.toml"\n', "extends itself"),
}


@pytest.mark.parametrize("name", sorted(BAD_POLICIES))
def test_invalid_policy_file_is_a_clear_error(box, tmp_path: Path, name: str) -> None:  # noqa: ANN001
    text, message = BAD_POLICIES[name]
    (tmp_path / name).write_text(text.replace("{dir}", str(tmp_path)))
    proc = cellbox("-b", str(box.id), f"--seccomp-policy={tmp_path / name}", "--run", "--",
               "/bin/true")
    assert proc.returncode == 2
    assert message.encode() in proc.stderr, proc.stderr


@pytest.mark.unit
@pytest.mark.parametrize("name", sorted(BAD_POLICIES))
def test_the_policy_grammar_refuses_bad_files(tmp_path: Path, name: str) -> None:
    text, message = BAD_POLICIES[name]
    (tmp_path / name).write_text(text.replace("{dir}", str(tmp_path)))
    with pytest.raises(UsageError) as e:
        load_policy(str(tmp_path / name))
    assert message in str(e.value)


BAD_CHANGES = [
    ("--syscalls=ptrace", "must be +NAME (allow) or -NAME[:ERRNO] (deny)"),
    ("--syscalls=+no_such_call", "'no_such_call' is not an x86_64 syscall"),
    ("--syscalls=-mount:EWHATEVER", "'EWHATEVER' is not an errno name"),
    ("--syscalls=+mount:EPERM", "an allowed syscall takes no errno"),
    ("--syscalls=+socketcall", "'socketcall' is not an x86_64 syscall"),
    ("--seccomp-policy=no-such-policy", "built-in policies are default"),
    ("--seccomp-policy=/nonexistent/p.toml", "Cannot read seccomp policy"),
]


@pytest.mark.unit
@pytest.mark.parametrize("option, message", BAD_CHANGES)
def test_the_policy_grammar_refuses_bad_changes(option: str, message: str) -> None:
    name, _, value = option.partition("=")
    with pytest.raises(UsageError) as e:
        if name == "--syscalls":
            load_policy("default", (value,))
        else:
            load_policy(value)
    assert message in str(e.value)


@pytest.mark.parametrize("option, message", BAD_CHANGES)
def test_invalid_syscall_changes_are_clear_errors(box, option: str, message: str) -> None:  # noqa: ANN001
    canary = box.work / "canary"
    canary.write_text("untouched")
    proc = cellbox("-b", str(box.id), option, "--run", "--", "/bin/rm", "-f", "/box/canary")
    assert proc.returncode == 2
    assert message.encode() in proc.stderr, proc.stderr
    assert canary.read_text() == "untouched"  # nothing ran


def test_library_keyword_and_result_field() -> None:
    with Box() as box:
        result = box.run([PY, "-c", "import ctypes; print(ctypes.CDLL(None).mount(0,0,0,0,0))"],
                         syscalls=["+mount"])
        assert result.seccomp_weakened == ["mount"]
        assert result.stdout.strip() == b"-1"  # allowed by the filter, refused by the kernel
        with pytest.raises(UsageError, match="not an x86_64 syscall"):
            box.run(["/bin/true"], syscalls=["+nope"])
        assert box.run(["/bin/true"]).seccomp_weakened == []


def test_no_seccomp_no_run(box, tmp_path) -> None:  # noqa: ANN001
    """Fail closed: without pyseccomp the run does not start. A real cellbox process whose
    import path has a pyseccomp that fails to load, as when libseccomp2 is missing."""
    (tmp_path / "pyseccomp.py").write_text(
        'raise OSError("libseccomp.so.2: cannot open shared object file")\n')
    canary = box.work / "canary"
    canary.write_text("untouched")
    env = {**os.environ, "PYTHONPATH": str(tmp_path)}
    proc = subprocess.run([sys.executable, "-m", "cellbox", "-b", str(box.id), "--run", "--",
                           "/bin/rm", "-f", "/box/canary"], capture_output=True, env=env,
                          timeout=60)
    assert proc.returncode == 2
    assert b"seccomp is unavailable" in proc.stderr, proc.stderr
    assert b"install libseccomp2" in proc.stderr
    assert canary.read_text() == "untouched"
