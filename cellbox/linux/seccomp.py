"""seccomp: the syscall policy, compiled with libseccomp in the parent, loaded in the child.

Parent side: ``load_policy`` reads a policy (a TOML file, built-in or given by path) and applies
``--syscalls`` changes; ``compile_filters`` turns it into classic BPF once per policy and process
(libseccomp, through pyseccomp), ready to load. Child side: the C init
(``cellbox/spawn/init.c``) hands the raw BPF to the kernel, the last step before execve.

Two filters are stacked; for each syscall the kernel applies the stricter answer of the two:

1. the ABI filter: only x86_64 syscalls that libseccomp knows pass. Anything else fails with
   ENOSYS, as on a kernel that lacks it: syscalls newer than libseccomp, and i386 or x32 calls
   (non-native ABIs). ``personality`` passes only with the values Docker allows.
2. the policy filter (libseccomp): every denial of the policy (EPERM, or the errno it names),
   and the argument checks, each on by default and each lifted by ``+NAME``: clone with
   namespace flags (EPERM), socket families other than AF_UNIX, AF_INET, AF_INET6 and
   NETLINK_ROUTE, and the type SOCK_PACKET (EPERM), socketpair of any family but AF_UNIX
   (EPERM), ioctl TIOCSTI and TIOCLINUX (EPERM), fcntl F_NOTIFY (EPERM), and
   file locks, flock and fcntl's F_SETLK/F_SETLKW/F_OFD_SETLK/F_OFD_SETLKW, which succeed
   without effect (see docs/security.md).

Two filters, because "everything unknown fails" and "allow ioctl, except TIOCSTI" cannot share
one libseccomp filter: its unconditional rule for a syscall overrides the conditional ones.
"""

from __future__ import annotations

import ctypes
import errno
import os
import struct
import sys
import tomllib
from dataclasses import dataclass
from functools import lru_cache
from types import ModuleType

from cellbox.errors import SandboxSetupError, UsageError
from cellbox.linux import syscalls as sc

# os.path, not pathlib: pathlib (with urllib.parse and ipaddress) costs the CLI a few ms.
POLICY_DIR = os.path.join(os.path.dirname(os.path.dirname(os.path.realpath(__file__))),
                          "policies")
DEFAULT_POLICY = "default"
MAX_SYSCALL = 512  # x86_64's own numbers stay below 512 (512-547 are x32-only)

# Syscalls that take an argument check in the policy filter (personality: in the ABI filter).
CHECKED = ("clone", "socket", "socketpair", "personality", "ioctl", "fcntl", "flock")

CLONE_NAMESPACE_FLAGS = (sc.CLONE_NEWNS, sc.CLONE_NEWCGROUP, sc.CLONE_NEWUTS, sc.CLONE_NEWIPC,
                         sc.CLONE_NEWUSER, sc.CLONE_NEWPID, sc.CLONE_NEWNET)
AF_UNIX, AF_INET, AF_INET6, AF_NETLINK = 1, 2, 10, 16
ALLOWED_FAMILIES = (AF_UNIX, AF_INET, AF_INET6, AF_NETLINK)
NETLINK_ROUTE = 0  # glibc's getaddrinfo and if_nameindex use it
# The obsolete (AF_INET, SOCK_PACKET), which the kernel turns into a packet socket; the type
# argument carries SOCK_NONBLOCK and SOCK_CLOEXEC above the type's 4 bits.
SOCK_PACKET, SOCK_TYPE_MASK = 10, 0xF
TIOCSTI, TIOCLINUX = 0x5412, 0x541C
F_SETLK, F_SETLKW, F_OFD_SETLK, F_OFD_SETLKW = 6, 7, 37, 38
F_NOTIFY = 1026  # dnotify: like inotify, it tells one box what another does in a shared dir
# Docker's: PER_LINUX, PER_LINUX32, UNAME26, UNAME26|PER_LINUX32 and the query 0xffffffff.
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
    """pyseccomp, imported once. It imports ctypes.util only to call find_library, which runs
    ``ldconfig -p`` twice, and ctypes.util imports shutil and subprocess: 30-50 ms per process
    on the --run path. The sonames are fixed, so while pyseccomp is imported, ctypes.util is
    a stand-in that knows just them; the real one (if loaded) is put back afterwards."""
    stand_in = ModuleType("ctypes.util")
    stand_in.find_library = {"c": "libc.so.6", "seccomp": "libseccomp.so.2"}.get  # type: ignore[attr-defined]
    saved = sys.modules.get("ctypes.util")
    sys.modules["ctypes.util"] = ctypes.util = stand_in  # type: ignore[attr-defined]
    try:
        import pyseccomp  # type: ignore[import-untyped]
    except (ImportError, OSError, RuntimeError) as e:
        raise SandboxSetupError(
            f"seccomp is unavailable ({e}); install libseccomp2 and pyseccomp "
            "(scripts/bootstrap.sh does both). cellbox never runs a program without it") from None
    finally:
        if saved is None:
            del sys.modules["ctypes.util"], ctypes.util  # type: ignore[attr-defined]
        else:
            sys.modules["ctypes.util"] = ctypes.util = saved  # type: ignore[attr-defined]
    return pyseccomp


@lru_cache(maxsize=1)
def highest_syscall() -> int:
    """The highest x86_64 syscall number libseccomp knows: newer ones are refused."""
    lib = _lib()
    for nr in reversed(range(MAX_SYSCALL)):
        try:
            lib.resolve_syscall(lib.Arch.NATIVE, nr)
        except ValueError:
            continue
        return nr
    raise SandboxSetupError("libseccomp knows no x86_64 syscall; reinstall libseccomp2")


def _syscall_number(name: str) -> int:
    lib = _lib()
    return int(lib.resolve_syscall(lib.Arch.NATIVE, name))


def _check_name(name: str, where: str) -> None:
    # libseccomp answers -1 for an unknown name, and another negative pseudo-number for a
    # syscall that exists on other architectures only (e.g. socketcall).
    if _syscall_number(name) < 0:
        raise UsageError(f"{where}: {name!r} is not an x86_64 syscall that libseccomp knows "
                         "(check the spelling, e.g. 'ptrace', 'io_uring_setup')")


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
        unchecked.discard(name)  # a later denial outranks an earlier +NAME


def _read_policy_file(ref: str) -> tuple[str, str | None, list[str]]:
    """(its name, the policy it extends or None, its items)."""
    builtin = "/" not in ref and not ref.endswith(".toml")
    path = os.path.join(POLICY_DIR, f"{ref}.toml") if builtin else ref
    if builtin and not os.path.isfile(path):
        known = ", ".join(sorted(n[:-5] for n in os.listdir(POLICY_DIR) if n.endswith(".toml")))
        raise UsageError(f"Unknown seccomp policy {ref!r}: built-in policies are {known}; "
                         "give a file as a path (containing '/' or ending in .toml)")
    try:
        with open(path, encoding="utf-8") as f:
            data = tomllib.loads(f.read())
    except OSError as e:
        raise UsageError(f"Cannot read seccomp policy {path}: {e.strerror}") from None
    except tomllib.TOMLDecodeError as e:
        raise UsageError(f"Seccomp policy {path} is not valid TOML: {e}") from None
    unknown = set(data) - {"description", "extends", "syscalls"}
    if unknown:
        raise UsageError(f"Seccomp policy {path}: unknown keys {sorted(unknown)}; a policy has "
                         "description, extends (a policy name or file) and syscalls (a list)")
    items, base = data.get("syscalls", []), data.get("extends")
    if not isinstance(items, list) or not all(isinstance(i, str) for i in items):
        raise UsageError(f"Seccomp policy {path}: syscalls must be a list of strings such as "
                         "\"-mount\" or \"+ptrace\"")
    if base is not None and not isinstance(base, str):
        raise UsageError(f"Seccomp policy {path}: extends must be a policy name or file")
    return (ref if builtin else str(path)), base, items


def _resolve(ref: str, denied: dict[str, int], unchecked: set[str], seen: tuple[str, ...]) -> None:
    if ref in seen:
        raise UsageError(f"Seccomp policy {ref!r} extends itself (through {' -> '.join(seen)})")
    name, base, items = _read_policy_file(ref)
    if base is not None:
        _resolve(base, denied, unchecked, (*seen, ref))
    for item in items:
        _apply(item, denied, unchecked, f"seccomp policy {name}")


def load_policy(ref: str = DEFAULT_POLICY, changes: tuple[str, ...] = ()) -> Policy:
    """The policy ``ref`` (a built-in name or a TOML file) with ``changes`` (``+NAME``,
    ``-NAME[:ERRNO]``) applied in order. Raises UsageError on anything invalid."""
    if (ref, changes) == (DEFAULT_POLICY, ()):
        return default_policy()
    base = default_policy()
    denied, unchecked = _collect(ref, changes)
    weakened = sorted({n for n, _ in base.denied if n not in denied}
                      | (unchecked - base.unchecked))
    name = ref if not changes else f"{ref} with {','.join(changes)}"
    return Policy(name, tuple(sorted(denied.items())), frozenset(unchecked), tuple(weakened))


@lru_cache(maxsize=1)
def default_policy() -> Policy:
    denied, unchecked = _collect(DEFAULT_POLICY, ())
    return Policy(DEFAULT_POLICY, tuple(sorted(denied.items())), frozenset(unchecked))


def _collect(ref: str, changes: tuple[str, ...]) -> tuple[dict[str, int], set[str]]:
    denied: dict[str, int] = {}
    unchecked: set[str] = set()
    _resolve(ref, denied, unchecked, ())
    for item in changes:
        _apply(item, denied, unchecked, "--syscalls")
    return denied, unchecked


def parse_changes(values: list[str]) -> tuple[str, ...]:
    """``--syscalls`` values (repeatable, each a comma-separated list) as one list of items."""
    return tuple(item.strip() for v in values for item in v.split(",") if item.strip())


# -- compiling (parent) -----------------------------------------------------------------------

def _export(f: object) -> bytes:
    fd = os.memfd_create("cellbox-seccomp", os.MFD_CLOEXEC)
    with os.fdopen(fd, "w+b") as out:
        f.export_bpf(out)  # type: ignore[attr-defined]
        out.seek(0)
        return out.read()


def _policy_filter(policy: Policy) -> bytes:
    """Filter 2 (libseccomp): the policy's denials and the argument checks; the rest passes.
    Exported, never loaded here: the C init installs the BPF."""
    lib = _lib()
    f = lib.SyscallFilter(lib.ALLOW)
    f.set_attr(lib.Attr.ACT_BADARCH, lib.ERRNO(errno.ENOSYS))  # never kill: runtimes probe
    f.set_attr(lib.Attr.CTL_OPTIMIZE, 2)  # a binary tree: a few comparisons per syscall
    for name, err in policy.denied:
        f.add_rule(lib.ERRNO(err), name)
    checks = set(CHECKED) - policy.unchecked - {name for name, _ in policy.denied}
    eperm, no_effect = lib.ERRNO(errno.EPERM), lib.ERRNO(0)  # errno 0: returns 0, does nothing
    if "clone" in checks:
        for flag in CLONE_NAMESPACE_FLAGS:
            f.add_rule(eperm, "clone", lib.Arg(0, lib.MASKED_EQ, flag, flag))
    if "socket" in checks:
        # Above AF_NETLINK (or with garbage in the high bits, which the kernel drops): refused;
        # below it, every family but the allowed ones.
        f.add_rule(eperm, "socket", lib.Arg(0, lib.GT, AF_NETLINK))
        for family in range(AF_NETLINK):
            if family not in ALLOWED_FAMILIES:
                f.add_rule(eperm, "socket", lib.Arg(0, lib.EQ, family))
        f.add_rule(eperm, "socket", lib.Arg(0, lib.EQ, AF_NETLINK),
                   lib.Arg(2, lib.NE, NETLINK_ROUTE))
        f.add_rule(eperm, "socket", lib.Arg(1, lib.MASKED_EQ, SOCK_TYPE_MASK, SOCK_PACKET))
    if "socketpair" in checks:
        # Only unix sockets come in pairs; any other family would reach its kernel code
        # (vsock, netlink audit...) before refusing. High bits set: refused as well.
        f.add_rule(eperm, "socketpair", lib.Arg(0, lib.NE, AF_UNIX))
    if "ioctl" in checks:
        for request in (TIOCSTI, TIOCLINUX):
            f.add_rule(eperm, "ioctl", lib.Arg(1, lib.MASKED_EQ, LOW32, request))
    if "fcntl" in checks:
        for cmd in (F_SETLK, F_SETLKW, F_OFD_SETLK, F_OFD_SETLKW):
            f.add_rule(no_effect, "fcntl", lib.Arg(1, lib.MASKED_EQ, LOW32, cmd))
        f.add_rule(eperm, "fcntl", lib.Arg(1, lib.MASKED_EQ, LOW32, F_NOTIFY))
    if "flock" in checks:
        f.add_rule(no_effect, "flock")
    return _export(f)


# Classic BPF, for the few instructions libseccomp cannot express (see _abi_filter).
_LD_ABS, _JEQ, _JGT, _RET = 0x20, 0x15, 0x25, 0x06  # BPF_LD|W|ABS, BPF_JMP|JEQ/JGT|K, BPF_RET|K
_NR, _ARCH, _ARG0_LOW, _ARG0_HIGH = 0, 4, 16, 20  # offsets in struct seccomp_data
AUDIT_ARCH_X86_64 = 0xC000003E
RET_ALLOW, RET_ERRNO = 0x7FFF0000, 0x00050000
_Insn = tuple[int, "int | str", "int | str", int]


def _assemble(code: list[_Insn | str]) -> bytes:
    """Encode struct sock_filter entries; a str entry is a label, jumps may name labels."""
    labels: dict[str, int] = {}
    insns: list[_Insn] = []
    for entry in code:
        if isinstance(entry, str):
            labels[entry] = len(insns)
        else:
            insns.append(entry)

    def offset(target: int | str, at: int) -> int:
        return labels[target] - at - 1 if isinstance(target, str) else target

    return b"".join(struct.pack("<HBBI", op, offset(jt, i), offset(jf, i), k)
                    for i, (op, jt, jf, k) in enumerate(insns))


def _abi_filter(policy: Policy) -> bytes:
    """Filter 1: only x86_64 syscalls libseccomp knows (anything else, i386, x32 or newer
    than libseccomp, gets ENOSYS as on a kernel without it), and personality only with the
    values Docker allows. Hand-assembled: libseccomp would list every known syscall one by
    one, ~475 instructions that cost the kernel ~0.5 ms to load per run."""
    code: list[_Insn | str] = [
        (_LD_ABS, 0, 0, _ARCH),
        (_JEQ, 0, "enosys", AUDIT_ARCH_X86_64),
        (_LD_ABS, 0, 0, _NR),
        (_JGT, "enosys", 0, highest_syscall()),  # so is the x32 bit (0x40000000)
    ]
    if "personality" not in policy.unchecked and "personality" not in dict(policy.denied):
        code += [
            (_JEQ, 0, "allow", _syscall_number("personality")),
            (_LD_ABS, 0, 0, _ARG0_HIGH),
            (_JEQ, 0, "eperm", 0),
            (_LD_ABS, 0, 0, _ARG0_LOW),
            *((_JEQ, "allow", 0, value) for value in PERSONALITIES),
            "eperm", (_RET, 0, 0, RET_ERRNO | errno.EPERM),
        ]
    code += ["allow", (_RET, 0, 0, RET_ALLOW), "enosys", (_RET, 0, 0, RET_ERRNO | errno.ENOSYS)]
    return _assemble(code)


@lru_cache(maxsize=8)
def compile_filters(policy: Policy) -> tuple[bytes, ...]:
    """The policy as classic BPF programs, to be installed in this order (by the C init,
    ``cellbox/spawn/init.c``). Cached per process."""
    try:
        return (_abi_filter(policy), _policy_filter(policy))
    except OSError as e:
        raise SandboxSetupError(f"libseccomp could not build the filter for {policy.name}: "
                                f"{e}; check that libseccomp2 is installed") from None
