"""The one place where cellbox calls libc or raw syscalls through ctypes.

Everything else in ``cellbox.linux`` builds on these functions. Each one checks the
return value and raises ``OSError`` naming the call, so callers never see a silent -1.
"""

from __future__ import annotations

import ctypes
import os

_libc = ctypes.CDLL(None, use_errno=True)

if os.uname().machine != "x86_64":  # syscall numbers below are x86_64's (os.uname: the
    # platform module would add ~1 ms to every command's start-up)
    raise ImportError("cellbox supports x86_64 only for now")

SYS_CLONE = 56
SYS_PIVOT_ROOT = 155
SYS_MOUNT_SETATTR = 442

# clone(2) flags
CLONE_NEWNS = 0x00020000
CLONE_NEWCGROUP = 0x02000000
CLONE_NEWUTS = 0x04000000
CLONE_NEWIPC = 0x08000000
CLONE_NEWUSER = 0x10000000
CLONE_NEWPID = 0x20000000
CLONE_NEWNET = 0x40000000

# mount(2) flags
MS_RDONLY = 1
MS_NOSUID = 2
MS_NODEV = 4
MS_NOEXEC = 8
MS_REMOUNT = 32
MS_BIND = 4096
MS_REC = 16384
MS_PRIVATE = 1 << 18
MNT_DETACH = 2

# mount_setattr(2)
AT_RECURSIVE = 0x8000
MOUNT_ATTR_RDONLY = 0x1
MOUNT_ATTR_NOSUID = 0x2
MOUNT_ATTR_NODEV = 0x4
MOUNT_ATTR_NOEXEC = 0x8

_libc.syscall.restype = ctypes.c_long
_libc.mount.argtypes = [ctypes.c_char_p, ctypes.c_char_p, ctypes.c_char_p, ctypes.c_ulong,
                        ctypes.c_char_p]
_libc.umount2.argtypes = [ctypes.c_char_p, ctypes.c_int]
_libc.sethostname.argtypes = [ctypes.c_char_p, ctypes.c_size_t]
_libc.prctl.argtypes = [ctypes.c_int, ctypes.c_ulong, ctypes.c_ulong, ctypes.c_ulong,
                        ctypes.c_ulong]
_libc.setfsuid.argtypes = [ctypes.c_uint]
_libc.setfsgid.argtypes = [ctypes.c_uint]


def _check(ret: int, what: str) -> int:
    if ret == -1:
        err = ctypes.get_errno()
        raise OSError(err, f"{what}: {os.strerror(err)}")
    return ret


def _b(s: str | bytes | None) -> bytes | None:
    return s.encode() if isinstance(s, str) else s


def clone(flags: int) -> int:
    """fork(2)-like clone with namespace flags: returns 0 in the child, the pid in the parent.

    The child shares nothing with the parent but copy-on-write memory, like fork, so one
    raw clone replaces fork + unshare + fork. Only call it from a single-threaded process.
    """
    return _check(_libc.syscall(ctypes.c_long(SYS_CLONE), ctypes.c_ulong(flags), ctypes.c_ulong(0),
                                ctypes.c_ulong(0), ctypes.c_ulong(0), ctypes.c_ulong(0)),
                  "clone")


def mount(source: str | None, target: str, fstype: str | None, flags: int,
          data: str | None = None) -> None:
    _check(_libc.mount(_b(source), _b(target), _b(fstype), flags, _b(data)),
           f"mount {fstype or source} on {target}")


def umount2(target: str, flags: int = 0) -> None:
    _check(_libc.umount2(_b(target), flags), f"umount {target}")


def pivot_root(new_root: str, put_old: str) -> None:
    _check(_libc.syscall(ctypes.c_long(SYS_PIVOT_ROOT), _b(new_root), _b(put_old)), "pivot_root")


class _MountAttr(ctypes.Structure):
    _fields_ = [("attr_set", ctypes.c_uint64), ("attr_clr", ctypes.c_uint64),
                ("propagation", ctypes.c_uint64), ("userns_fd", ctypes.c_uint64)]


def mount_setattr(path: str, attr_set: int, attr_clr: int = 0, recursive: bool = True) -> None:
    """Set mount attributes on a mount and, with ``recursive``, on every mount below it."""
    attr = _MountAttr(attr_set, attr_clr, 0, 0)
    flags = AT_RECURSIVE if recursive else 0
    _check(_libc.syscall(ctypes.c_long(SYS_MOUNT_SETATTR), ctypes.c_int(-100), _b(path),
                         ctypes.c_uint(flags), ctypes.byref(attr),
                         ctypes.c_size_t(ctypes.sizeof(attr))),
           f"mount_setattr {path}")


def sethostname(name: str) -> None:
    raw = name.encode()
    _check(_libc.sethostname(raw, len(raw)), "sethostname")


def prctl(option: int, arg2: int = 0, arg3: int = 0, arg4: int = 0, arg5: int = 0) -> int:
    return _check(_libc.prctl(option, arg2, arg3, arg4, arg5), f"prctl({option})")


def setfsuid(uid: int) -> int:
    """Set the filesystem uid; returns the previous one (the call has no error return)."""
    return int(_libc.setfsuid(uid))


def setfsgid(gid: int) -> int:
    return int(_libc.setfsgid(gid))


# seccomp(2) and capabilities
SYS_SECCOMP = 317
SYS_CAPGET = 125
SYS_CAPSET = 126
SECCOMP_SET_MODE_FILTER = 1
SECCOMP_MODE_FILTER = 2
PR_GET_SECCOMP = 21
_LINUX_CAPABILITY_VERSION_3 = 0x20080522
_BPF_INSN = 8  # bytes in a struct sock_filter


class _SockFprog(ctypes.Structure):
    _fields_ = [("len", ctypes.c_ushort), ("filter", ctypes.c_void_p)]


class BpfProgram:
    """A classic BPF program (as libseccomp exports it), ready for seccomp(2). Built in the
    parent: in the forked child every Python object touched costs a copy-on-write fault, so
    the child only makes the call (≈ 0.1 ms less per run than building it there)."""

    def __init__(self, code: bytes) -> None:
        if not code or len(code) % _BPF_INSN:
            raise ValueError(f"{len(code)} bytes is not a BPF program")
        self.instructions = len(code) // _BPF_INSN
        self._code = ctypes.create_string_buffer(code, len(code))
        self._fprog = _SockFprog(self.instructions, ctypes.addressof(self._code))
        self.ref = ctypes.byref(self._fprog)


_NR_SECCOMP = ctypes.c_long(SYS_SECCOMP)
_SET_MODE_FILTER = ctypes.c_uint(SECCOMP_SET_MODE_FILTER)
_NO_FLAGS = ctypes.c_uint(0)


def seccomp_set_filter(program: BpfProgram) -> None:
    """Install one prepared BPF program as a seccomp filter of this thread."""
    _check(_libc.syscall(_NR_SECCOMP, _SET_MODE_FILTER, _NO_FLAGS, program.ref),
           "seccomp(SET_MODE_FILTER)")


def seccomp_mode() -> int:
    return prctl(PR_GET_SECCOMP)


class _CapHeader(ctypes.Structure):
    _fields_ = [("version", ctypes.c_uint32), ("pid", ctypes.c_int)]


class _CapData(ctypes.Structure):
    _fields_ = [("effective", ctypes.c_uint32), ("permitted", ctypes.c_uint32),
                ("inheritable", ctypes.c_uint32)]


# Made once, in the parent: in a freshly forked child, building ctypes types and objects costs
# ~0.1-0.2 ms (copy-on-write faults), and these calls run there, just before execve.
_CAP_HEADER = _CapHeader(_LINUX_CAPABILITY_VERSION_3, 0)
_CAP_DATA = (_CapData * 2)()
_CAP_HEADER_REF, _CAP_DATA_SIZE = ctypes.byref(_CAP_HEADER), ctypes.sizeof(_CAP_DATA)
_NR_CAPGET, _NR_CAPSET = ctypes.c_long(SYS_CAPGET), ctypes.c_long(SYS_CAPSET)


def capget() -> tuple[int, int, int]:
    """This thread's (effective, permitted, inheritable) capability sets, 64 bits each."""
    _CAP_HEADER.version = _LINUX_CAPABILITY_VERSION_3  # the kernel may rewrite it
    _check(_libc.syscall(_NR_CAPGET, _CAP_HEADER_REF, _CAP_DATA), "capget")
    low, high = _CAP_DATA
    return (low.effective | high.effective << 32, low.permitted | high.permitted << 32,
            low.inheritable | high.inheritable << 32)


def capset(effective: int, permitted: int, inheritable: int) -> None:
    """Set this thread's capability sets (64 bits each; within what the kernel allows)."""
    _CAP_HEADER.version = _LINUX_CAPABILITY_VERSION_3
    for i, part in enumerate(_CAP_DATA):
        shift = 32 * i
        part.effective = effective >> shift & 0xFFFFFFFF
        part.permitted = permitted >> shift & 0xFFFFFFFF
        part.inheritable = inheritable >> shift & 0xFFFFFFFF
    _check(_libc.syscall(_NR_CAPSET, _CAP_HEADER_REF, _CAP_DATA), "capset")


def capset_empty() -> None:
    """Empty this thread's effective, permitted and inheritable sets (always allowed)."""
    capset(0, 0, 0)
