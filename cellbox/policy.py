"""Syscall policies: plain data, and their grammar. A policy is a TOML file (built-in, in
``cellbox/policies``, or given by path) that may extend another and lists changes, ``+NAME``
(allow NAME with any arguments) and ``-NAME[:ERRNO]`` (deny it, EPERM by default); the
command line's ``--syscalls`` and the library's ``syscalls`` add changes of the same kind.
Names are checked against libseccomp's x86_64 syscall table, the one the filters are built
from. ``cellbox.linux.seccomp`` compiles a policy into the filters the box's init loads.
"""

from __future__ import annotations

import ctypes
import errno
import os
import sys
import tomllib
from dataclasses import dataclass
from functools import lru_cache
from types import ModuleType

from cellbox.errors import SandboxSetupError, UsageError

# os.path, not pathlib: pathlib (with urllib.parse and ipaddress) costs the CLI a few ms.
POLICY_DIR = os.path.join(os.path.dirname(os.path.realpath(__file__)), "policies")
DEFAULT_POLICY = "default"

# Syscalls that take an argument check in the policy filter (personality: in the ABI filter).
CHECKED = ("clone", "socket", "socketpair", "personality", "ioctl", "fcntl", "flock")

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


# -- libseccomp: the syscall names ----------------------------------------------------------------------------

@lru_cache(maxsize=1)
def libseccomp() -> ModuleType:
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


def syscall_number(name: str) -> int:
    lib = libseccomp()
    return int(lib.resolve_syscall(lib.Arch.NATIVE, name))


def _check_name(name: str, where: str) -> None:
    # libseccomp answers -1 for an unknown name, and another negative pseudo-number for a
    # syscall that exists on other architectures only (e.g. socketcall).
    if syscall_number(name) < 0:
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
