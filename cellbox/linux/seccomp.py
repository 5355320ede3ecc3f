"""seccomp: the syscall policy, compiled with libseccomp in the parent, loaded in the child.

Parent side: ``load_policy`` reads a policy (a TOML file, built-in or given by path) and applies
``--syscalls`` changes; ``compile_filters`` turns it into classic BPF once per policy and process
(libseccomp, through pyseccomp). Child side: ``install`` hands the ready BPF to the kernel, the
last step before execve, with no library call and no allocation in libseccomp.

Two filters are stacked; for each syscall the kernel applies the stricter answer of the two:

1. the allow-list. Every syscall libseccomp knows for x86_64 is allowed unless the policy
   denies it (EPERM, or the errno the policy names). Anything else fails with ENOSYS, as on a
   kernel that lacks it: syscalls newer than libseccomp, and i386 or x32 calls (non-native
   ABIs). ``personality`` passes only with the values Docker allows.
2. the argument checks, each on by default and each lifted by ``+NAME``: clone with namespace
   flags (EPERM), socket families other than AF_UNIX, AF_INET, AF_INET6 and NETLINK_ROUTE
   (EPERM), ioctl TIOCSTI and TIOCLINUX (EPERM), and file locks, flock and fcntl's
   F_SETLK/F_SETLKW/F_OFD_SETLK/F_OFD_SETLKW, which succeed without effect (see docs/security.md).

Two filters, because an unconditional libseccomp rule overrides a conditional one for the same
syscall: one filter with an ENOSYS default cannot say "allow ioctl, except TIOCSTI".
"""

from __future__ import annotations

import ctypes.util
import errno
import tempfile
import tomllib
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from types import ModuleType

from cellbox.errors import SandboxSetupError, UsageError
from cellbox.linux import syscalls as sc

POLICY_DIR = Path(__file__).resolve().parent.parent / "policies"
DEFAULT_POLICY = "default"
MAX_SYSCALL = 1024  # x86_64 numbers in use are below 500; the rest is reserved

# Syscalls that take an argument check in filter 2 (or, for personality, in filter 1).
CHECKED = ("clone", "socket", "personality", "ioctl", "fcntl", "flock")

CLONE_NAMESPACE_FLAGS = (sc.CLONE_NEWNS, sc.CLONE_NEWCGROUP, sc.CLONE_NEWUTS, sc.CLONE_NEWIPC,
                         sc.CLONE_NEWUSER, sc.CLONE_NEWPID, sc.CLONE_NEWNET)
AF_UNIX, AF_INET, AF_INET6, AF_NETLINK, AF_MAX = 1, 2, 10, 16, 46
ALLOWED_FAMILIES = (AF_UNIX, AF_INET, AF_INET6, AF_NETLINK)
NETLINK_ROUTE = 0  # glibc's getaddrinfo and if_nameindex use it
TIOCSTI, TIOCLINUX = 0x5412, 0x541C
F_SETLK, F_SETLKW, F_OFD_SETLK, F_OFD_SETLKW = 6, 7, 37, 38
# Docker's: PER_LINUX, UNAME26, PER_LINUX32, PER_LINUX32|UNAME26 and the query 0xffffffff.
PERSONALITIES = (0x0, 0x0008, 0x20000, 0x20008, 0xFFFFFFFF)
LOW32 = 0xFFFFFFFF  # the kernel reads int/unsigned int arguments from the low 32 bits only


@dataclass(frozen=True)
class Policy:
    """A resolved syscall policy: plain, hashable data (the compiled BPF is cached by it)."""

    name: str
    denied: tuple[tuple[str, int], ...]  # (syscall, errno), sorted by name
    unchecked: frozenset[str] = frozenset()  # argument checks lifted with +NAME
    weakened: tuple[str, ...] = ()  # what the default policy refuses and this one allows

    def describe(self) -> str:
        text = f"seccomp policy {self.name}: {len(self.denied)} syscalls denied"
        if self.weakened:
            text += f"; WEAKENED, allows {', '.join(self.weakened)}"
        return text


# -- libseccomp -------------------------------------------------------------------------------

@lru_cache(maxsize=1)
def _lib() -> ModuleType:
    """pyseccomp, imported once. It looks its libraries up with ctypes.util.find_library, which
    runs ``ldconfig -p`` twice (30 ms per process); the sonames are fixed, so answer directly."""
    sonames = {"c": "libc.so.6", "seccomp": "libseccomp.so.2"}
    real = ctypes.util.find_library
    ctypes.util.find_library = lambda name: sonames.get(name) or real(name)
    try:
        import pyseccomp
    except (ImportError, OSError, RuntimeError) as e:
        raise SandboxSetupError(
            f"seccomp is unavailable ({e}); install libseccomp2 and pyseccomp "
            "(scripts/bootstrap.sh does both). cellbox never runs a program without it") from None
    finally:
        ctypes.util.find_library = real
    return pyseccomp


@lru_cache(maxsize=1)
def known_syscalls() -> tuple[str, ...]:
    """Every x86_64 syscall name libseccomp knows, by number."""
    lib = _lib()
    names = []
    for nr in range(MAX_SYSCALL):
        try:
            names.append(lib.resolve_syscall(lib.Arch.NATIVE, nr).decode())
        except ValueError:
            continue
    return tuple(names)


def _check_name(name: str, where: str) -> None:
    if name not in _known_set():
        raise UsageError(f"{where}: {name!r} is not an x86_64 syscall that libseccomp knows "
                         "(check the spelling, e.g. 'ptrace', 'io_uring_setup')")


@lru_cache(maxsize=1)
def _known_set() -> frozenset[str]:
    return frozenset(known_syscalls())


# -- policies ---------------------------------------------------------------------------------

def _errno_value(name: str, where: str) -> int:
    value = getattr(errno, name, None)
    if not name.startswith("E") or not isinstance(value, int):
        raise UsageError(f"{where}: {name!r} is not an errno name (e.g. EPERM, ENOSYS)")
    return value


def _apply(item: str, denied: dict[str, int], unchecked: set[str], where: str) -> None:
    """One change: ``+NAME`` allows NAME with any arguments, ``-NAME[:ERRNO]`` denies it."""
    sign, body = item[:1], item[1:]
    name, colon, err = body.partition(":")
    if sign not in ("+", "-") or not name:
        raise UsageError(f"{where}: {item!r} must be +NAME (allow) or -NAME[:ERRNO] (deny), "
                         "e.g. --syscalls=+ptrace,-acct:ENOSYS")
    _check_name(name, where)
    if sign == "+":
        if colon:
            raise UsageError(f"{where}: {item!r}: an allowed syscall takes no errno")
        denied.pop(name, None)
        if name in CHECKED:
            unchecked.add(name)
    else:
        denied[name] = _errno_value(err, where) if colon else errno.EPERM


def _read_policy_file(ref: str) -> tuple[str, dict[str, object]]:
    builtin = "/" not in ref and not ref.endswith(".toml")
    path = POLICY_DIR / f"{ref}.toml" if builtin else Path(ref)
    if builtin and not path.is_file():
        known = ", ".join(sorted(p.stem for p in POLICY_DIR.glob("*.toml")))
        raise UsageError(f"Unknown seccomp policy {ref!r}: built-in policies are {known}; "
                         "give a file as a path (containing '/' or ending in .toml)")
    try:
        data = tomllib.loads(path.read_text())
    except OSError as e:
        raise UsageError(f"Cannot read seccomp policy {path}: {e.strerror}") from None
    except tomllib.TOMLDecodeError as e:
        raise UsageError(f"Seccomp policy {path} is not valid TOML: {e}") from None
    unknown = set(data) - {"description", "extends", "syscalls"}
    if unknown:
        raise UsageError(f"Seccomp policy {path}: unknown keys {sorted(unknown)}; a policy has "
                         "description, extends (a built-in policy name) and syscalls (a list)")
    items = data.get("syscalls", [])
    if not isinstance(items, list) or not all(isinstance(i, str) for i in items):
        raise UsageError(f"Seccomp policy {path}: syscalls must be a list of strings such as "
                         "\"-mount\" or \"+ptrace\"")
    return (ref if builtin else str(path)), data


def _resolve(ref: str, denied: dict[str, int], unchecked: set[str], seen: tuple[str, ...]) -> None:
    if ref in seen:
        raise UsageError(f"Seccomp policy {ref!r} extends itself (through {' -> '.join(seen)})")
    name, data = _read_policy_file(ref)
    base = data.get("extends")
    if base is not None:
        if not isinstance(base, str):
            raise UsageError(f"Seccomp policy {name}: extends must be a policy name")
        _resolve(base, denied, unchecked, (*seen, ref))
    for item in data.get("syscalls", []):  # type: ignore[union-attr]
        _apply(str(item), denied, unchecked, f"seccomp policy {name}")


def load_policy(ref: str = DEFAULT_POLICY, changes: tuple[str, ...] = ()) -> Policy:
    """The policy ``ref`` (a built-in name or a TOML file) with ``changes`` (``+NAME``,
    ``-NAME[:ERRNO]``) applied in order. Raises UsageError on anything invalid."""
    denied: dict[str, int] = {}
    unchecked: set[str] = set()
    _resolve(ref, denied, unchecked, ())
    for item in changes:
        _apply(item, denied, unchecked, "--syscalls")
    name = ref if not changes else f"{ref} with {','.join(changes)}"
    base = default_policy() if (ref, changes) != (DEFAULT_POLICY, ()) else None
    weakened: list[str] = []
    if base is not None:
        weakened = sorted({n for n, _ in base.denied if n not in denied}
                          | (set(unchecked) - set(base.unchecked)))
    return Policy(name, tuple(sorted(denied.items())), frozenset(unchecked), tuple(weakened))


@lru_cache(maxsize=1)
def default_policy() -> Policy:
    return load_policy()


def parse_changes(values: list[str]) -> tuple[str, ...]:
    """``--syscalls`` values (repeatable, each a comma-separated list) as one list of items."""
    return tuple(item.strip() for v in values for item in v.split(",") if item.strip())


# -- compiling (parent) -----------------------------------------------------------------------

def _export(f: object) -> bytes:
    with tempfile.TemporaryFile() as out:
        f.export_bpf(out)  # type: ignore[attr-defined]
        out.seek(0)
        return out.read()


def _new_filter(default_action: int) -> object:
    lib = _lib()
    f = lib.SyscallFilter(default_action)
    # Non-native ABIs (i386 via int 0x80, x32) get ENOSYS too: never kill, runtimes probe.
    f.set_attr(lib.Attr.ACT_BADARCH, lib.ERRNO(errno.ENOSYS))
    f.set_attr(lib.Attr.CTL_NNP, 0)  # the child sets no_new_privs itself, checked
    f.set_attr(lib.Attr.CTL_OPTIMIZE, 2)  # a binary tree: a few comparisons per syscall
    return f


def _allow_list(policy: Policy) -> bytes:
    lib = _lib()
    f = _new_filter(lib.ERRNO(errno.ENOSYS))
    denied = dict(policy.denied)
    for name in known_syscalls():
        if name in denied:
            if denied[name] != errno.ENOSYS:  # libseccomp refuses a rule equal to the default
                f.add_rule(lib.ERRNO(denied[name]), name)
        elif name == "personality" and name not in policy.unchecked:
            for value in PERSONALITIES:
                f.add_rule(lib.ALLOW, name, lib.Arg(0, lib.EQ, value))
        else:
            f.add_rule(lib.ALLOW, name)
    return _export(f)


def _argument_checks(policy: Policy) -> bytes:
    lib = _lib()
    f = _new_filter(lib.ALLOW)
    checks = set(CHECKED) - policy.unchecked - {name for name, _ in policy.denied}
    eperm, no_effect = lib.ERRNO(errno.EPERM), lib.ERRNO(0)  # errno 0: returns 0, does nothing
    if "clone" in checks:
        for flag in CLONE_NAMESPACE_FLAGS:
            f.add_rule(eperm, "clone", lib.Arg(0, lib.MASKED_EQ, flag, flag))
    if "socket" in checks:
        for family in range(AF_MAX):
            if family not in ALLOWED_FAMILIES:
                f.add_rule(eperm, "socket", lib.Arg(0, lib.MASKED_EQ, LOW32, family))
        f.add_rule(eperm, "socket", lib.Arg(0, lib.GE, AF_MAX))  # or garbage in the high bits
        f.add_rule(eperm, "socket", lib.Arg(0, lib.EQ, AF_NETLINK),
                   lib.Arg(2, lib.NE, NETLINK_ROUTE))
    if "ioctl" in checks:
        for request in (TIOCSTI, TIOCLINUX):
            f.add_rule(eperm, "ioctl", lib.Arg(1, lib.MASKED_EQ, LOW32, request))
    if "fcntl" in checks:
        for cmd in (F_SETLK, F_SETLKW, F_OFD_SETLK, F_OFD_SETLKW):
            f.add_rule(no_effect, "fcntl", lib.Arg(1, lib.MASKED_EQ, LOW32, cmd))
    if "flock" in checks:
        f.add_rule(no_effect, "flock")
    return _export(f)


@lru_cache(maxsize=8)
def compile_filters(policy: Policy) -> tuple[bytes, ...]:
    """The policy as BPF programs, to install in order. Parent side, cached per process."""
    try:
        return (_allow_list(policy), _argument_checks(policy))
    except OSError as e:
        raise SandboxSetupError(f"libseccomp could not build the filter for {policy.name}: "
                                f"{e}; check that libseccomp2 is installed") from None


# -- installing (child) -----------------------------------------------------------------------

def install(programs: tuple[bytes, ...]) -> None:
    """Load the compiled filters into this process (needs no_new_privs or CAP_SYS_ADMIN)."""
    if not programs:
        raise OSError(errno.EINVAL, "no seccomp filter to load")
    for program in programs:
        sc.seccomp_set_filter(program)
    if sc.seccomp_mode() != sc.SECCOMP_MODE_FILTER:
        raise OSError(errno.EPERM, "the seccomp filter is not in force after loading it")
