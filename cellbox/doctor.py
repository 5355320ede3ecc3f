"""``cellbox doctor``: is this host fit to run cellbox, and to give reproducible figures?

Each check passes, warns or fails, and says how to fix what it found. A check that can be
fixed for the running system only (a sysctl or sysfs write, lost at reboot) carries that
fix; ``--fix`` applies those. In the spirit of isolate's isolate-check-environment, plus
what cellbox itself relies on.
"""

from __future__ import annotations

import ctypes
import errno
import glob
import os
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from enum import StrEnum

from cellbox.config import config_path, host_problems, load_config
from cellbox.errors import CellboxError


class Level(StrEnum):
    PASS = "pass"
    WARN = "warn"
    FAIL = "fail"


@dataclass
class Check:
    name: str
    level: Level
    found: str
    advice: str = ""  # what to do, when not PASS
    fix: dict[str, str] = field(default_factory=dict)  # path -> value: a runtime-only fix

    def to_dict(self) -> dict[str, object]:
        return {**asdict(self), "level": self.level.value}


def _read(path: str) -> str | None:
    try:
        with open(path) as f:
            return f.read().strip()
    except OSError:
        return None


def _selected(text: str) -> str:
    """The [bracketed] choice of a sysfs multiple-choice file."""
    return text[text.index("[") + 1:text.index("]")] if "[" in text else text


# -- the checks ----------------------------------------------------------------------------


def check_cgroups() -> Check:
    from cellbox.cgroup import detect

    try:
        backend = detect(load_config().cg_root)
    except CellboxError as e:
        return Check("cgroups", Level.FAIL, str(e), "cellbox cannot apply limits without "
                     "cgroups: mount the controllers, or run under a delegated cgroup "
                     "(docs/config.md)")
    return Check("cgroups", Level.PASS, backend.describe())


def check_config() -> Check:
    path = config_path()
    try:
        config = load_config()
    except CellboxError as e:
        return Check("configuration", Level.FAIL, str(e), "fix the file: cellbox "
                     "--check-config checks it (docs/config.md)")
    problems = host_problems(config, path)
    if problems:
        return Check("configuration", Level.FAIL, "; ".join(problems),
                     "fix the file: cellbox --check-config checks it (docs/config.md)")
    found = "built-in defaults" if not os.path.exists(path) else path
    return Check("configuration", Level.PASS, f"{found}: boxes 0..{config.num_boxes - 1}, "
                 f"uids {config.first_uid}..{config.first_uid + config.num_boxes - 1}")


def check_swap() -> Check:
    swaps = (_read("/proc/swaps") or "").splitlines()[1:]
    if not swaps:
        return Check("swap", Level.PASS, "no swap")
    return Check("swap", Level.WARN, f"{len(swaps)} swap area(s) on",
                 "a program that swaps runs slower and its memory figures mislead; memory "
                 "limits still count swap (memsw / memory.swap.max=0). Turn it off: swapoff -a")


def check_thp() -> Check:
    base = "/sys/kernel/mm/transparent_hugepage"
    enabled, defrag = _read(f"{base}/enabled"), _read(f"{base}/defrag")
    if enabled is None:
        return Check("transparent huge pages", Level.PASS, "not available in this kernel")
    found = f"enabled={_selected(enabled)}, defrag={_selected(defrag or '')}"
    if _selected(enabled) == "always":
        return Check("transparent huge pages", Level.WARN, found,
                     "with 'always', memory use and timing of a program jump by 2 MiB pages "
                     "at random; use madvise or never",
                     {f"{base}/enabled": "madvise", f"{base}/defrag": "madvise"})
    return Check("transparent huge pages", Level.PASS, found)


def check_aslr() -> Check:
    value = _read("/proc/sys/kernel/randomize_va_space")
    if value == "2":
        return Check("ASLR", Level.PASS, "randomize_va_space=2 (full)")
    return Check("ASLR", Level.WARN, f"randomize_va_space={value}",
                 "address-space randomisation is a defence against exploits of the programs "
                 "a sandbox runs; isolate suggests 0 for reproducible memory figures, but the "
                 "difference is a few pages. Set it to 2",
                 {"/proc/sys/kernel/randomize_va_space": "2"})


def check_smt() -> Check:
    active = _read("/sys/devices/system/cpu/smt/active")
    control = _read("/sys/devices/system/cpu/smt/control")
    if active != "1":
        return Check("SMT", Level.PASS, f"not active (control={control or 'n/a'})")
    return Check("SMT", Level.WARN, "active: sibling hardware threads share a core",
                 "a program's CPU time depends on what runs on its sibling thread; for "
                 "reproducible timing turn SMT off",
                 {"/sys/devices/system/cpu/smt/control": "off"})


def check_governor() -> Check:
    files = sorted(glob.glob("/sys/devices/system/cpu/cpu[0-9]*/cpufreq/scaling_governor"))
    if not files:
        return Check("CPU frequency governor", Level.PASS,
                     "no frequency scaling exposed (e.g. a virtual machine)")
    governors = {(_read(f) or "?") for f in files}
    if governors == {"performance"}:
        return Check("CPU frequency governor", Level.PASS, "performance")
    return Check("CPU frequency governor", Level.WARN, ", ".join(sorted(governors)),
                 "a scaling governor changes the clock under a running program, and so its "
                 "CPU time; use performance", {f: "performance" for f in files})


def check_boost() -> Check:
    boost, no_turbo = "/sys/devices/system/cpu/cpufreq/boost", \
        "/sys/devices/system/cpu/intel_pstate/no_turbo"
    if _read(boost) == "1":
        return Check("CPU boost", Level.WARN, "boost on", "turbo frequencies depend on "
                     "temperature and load, so CPU times vary; turn boost off", {boost: "0"})
    if _read(no_turbo) == "0":
        return Check("CPU boost", Level.WARN, "turbo on (intel_pstate)", "turbo frequencies "
                     "depend on temperature and load; turn turbo off", {no_turbo: "1"})
    return Check("CPU boost", Level.PASS, "off or not exposed")


def check_protected_links() -> Check:
    values = {n: _read(f"/proc/sys/fs/protected_{n}") for n in ("hardlinks", "symlinks")}
    found = ", ".join(f"protected_{n}={v}" for n, v in values.items())
    if all(v == "1" for v in values.values()):
        return Check("protected links", Level.PASS, found)
    return Check("protected links", Level.WARN, found,
                 "cellbox never follows links in box storage, but the kernel's protection "
                 "is a second wall for everything else; set both to 1",
                 {f"/proc/sys/fs/protected_{n}": "1" for n, v in values.items() if v != "1"})


def check_user_namespaces() -> Check:
    limit = _read("/proc/sys/user/max_user_namespaces")
    debian = _read("/proc/sys/kernel/unprivileged_userns_clone")
    apparmor = _read("/proc/sys/kernel/apparmor_restrict_unprivileged_userns")
    found = f"max_user_namespaces={limit}"
    if limit == "0":
        return Check("user namespaces", Level.WARN, found, "user namespaces are disabled: "
                     "rootless use is impossible (root use is not affected)",
                     {"/proc/sys/user/max_user_namespaces": "15000"})
    if debian == "0":
        return Check("user namespaces", Level.WARN, found + ", unprivileged_userns_clone=0",
                     "unprivileged users cannot create user namespaces (rootless use)",
                     {"/proc/sys/kernel/unprivileged_userns_clone": "1"})
    if apparmor == "1":
        return Check("user namespaces", Level.WARN,
                     found + ", apparmor_restrict_unprivileged_userns=1",
                     "AppArmor (Ubuntu 24.04+) restricts unprivileged user namespaces: give "
                     "cellbox an AppArmor profile with 'userns,' for rootless use")
    return Check("user namespaces", Level.PASS, found + ", unprivileged use allowed")


def _can_create_user_namespace() -> str | None:
    """None if this process may create a user namespace, else why not (tried for real)."""
    import signal

    from cellbox.linux import syscalls as sc

    try:
        pid = sc.clone(sc.CLONE_NEWUSER | signal.SIGCHLD)
    except OSError as e:
        return e.strerror or str(e)
    if pid == 0:
        os._exit(0)
    os.waitpid(pid, 0)
    return None


def check_rootless() -> Check:
    """Whether the current user can use rootless mode, and with which cgroups."""
    name = "rootless mode"
    if os.geteuid() == 0:
        return Check(name, Level.PASS, "running as root: the full mode, not rootless")
    denied = _can_create_user_namespace()
    if denied is not None:
        return Check(name, Level.FAIL, f"cannot create a user namespace: {denied}",
                     "rootless mode needs unprivileged user namespaces: see the user "
                     "namespaces check (as root), or run cellbox as root")
    from cellbox.cgroup import detect_rootless

    try:
        config = load_config()
        backend = detect_rootless(config.cg_root)
    except CellboxError as e:
        return Check(name, Level.FAIL, str(e), "fix the configuration (docs/config.md)")
    found = f"user namespaces allowed; boxes in {config.box_root}; {backend.describe()}"
    if backend.version == 0:
        return Check(name, Level.WARN, found, "without a delegated cgroup, runs with a memory "
                     "or time limit fail unless --no-cgroups (then they are not enforced; "
                     "docs/security.md, rootless mode)")
    return Check(name, Level.PASS, found)


def check_seccomp() -> Check:
    status = _read("/proc/self/status") or ""
    if "Seccomp:" not in status:
        return Check("seccomp", Level.FAIL, "the kernel has no seccomp",
                     "cellbox refuses to run without its syscall filter; use a kernel built "
                     "with CONFIG_SECCOMP_FILTER")
    try:
        from cellbox import policy
        from cellbox.linux import seccomp

        seccomp.compile_filters(policy.default_policy())
    except Exception as e:  # noqa: BLE001 - any failure here means no filter
        return Check("seccomp", Level.FAIL, f"the filter cannot be built: {e}",
                     "install libseccomp2 and pyseccomp (scripts/bootstrap.sh does both)")
    return Check("seccomp", Level.PASS, "kernel filter support and libseccomp work")


def _syscall_exists(number: int, *args: int) -> bool:
    """Call with arguments the kernel rejects; ENOSYS means the syscall is missing."""
    libc = ctypes.CDLL(None, use_errno=True)
    libc.syscall.restype = ctypes.c_long
    if libc.syscall(ctypes.c_long(number), *(ctypes.c_long(a) for a in args)) == -1:
        return ctypes.get_errno() != errno.ENOSYS
    return True


def _kernel() -> tuple[int, int]:
    major, minor = os.uname().release.split(".")[:2]
    return int(major), int("".join(c for c in minor if c.isdigit()) or 0)


def check_kernel_features() -> Check:
    have = {
        "openat2": _syscall_exists(437, -1, 0, 0, 0),  # bad dirfd/size -> EINVAL/EBADF
        "clone3 (CLONE_INTO_CGROUP)": _syscall_exists(435, 0, 0) and _kernel() >= (5, 7),
        "cgroup.kill": _kernel() >= (5, 14),
        "memory.peak": _kernel() >= (5, 19),
        "procfs subset=pid": _kernel() >= (5, 8),
        "pidfd_open": _syscall_exists(434, -1, 0),
    }
    missing = [k for k, ok in have.items() if not ok]
    found = f"kernel {os.uname().release}: " + ", ".join(
        f"{k} {'yes' if ok else 'no'}" for k, ok in have.items())
    if "pidfd_open" in missing:
        return Check("kernel features", Level.FAIL, found, "cellbox needs Linux 5.3 or "
                     "later (pidfds, to signal processes without pid-reuse races)")
    if missing:
        return Check("kernel features", Level.WARN, found, "an older kernel: the cgroup v2 "
                     "backend needs cgroup.kill and memory.peak (5.19 or later)")
    return Check("kernel features", Level.PASS, found)


CHECKS: tuple[Callable[[], Check], ...] = (
    check_config, check_cgroups, check_swap, check_thp, check_aslr, check_smt, check_governor,
    check_boost, check_protected_links, check_user_namespaces, check_rootless, check_seccomp,
    check_kernel_features,
)


def run_checks() -> list[Check]:
    return [check() for check in CHECKS]


def apply_fixes(checks: list[Check]) -> list[str]:
    """Write every runtime-only fix; returns what was done (or why it failed)."""
    done = []
    for c in checks:
        for path, value in c.fix.items():
            try:
                with open(path, "w") as f:
                    f.write(value)
                done.append(f"{c.name}: wrote {value} to {path}")
            except OSError as e:
                done.append(f"{c.name}: could not write {value} to {path}: {e.strerror}")
    return done
