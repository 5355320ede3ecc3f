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


def set_fs_ids(uid: int, gid: int) -> None:
    """This thread's filesystem uid and gid (the ids that file permission checks use).
    setfsuid(2) reports no error, only the previous id: the change is checked by asking
    again."""
    _libc.setfsgid(gid)
    _libc.setfsuid(uid)
    if _libc.setfsuid(0xFFFFFFFF) != uid or _libc.setfsgid(0xFFFFFFFF) != gid:
        raise OSError(1, f"setfsuid({uid}) / setfsgid({gid}) did not take effect")


def prctl(option: int, arg2: int = 0, arg3: int = 0, arg4: int = 0, arg5: int = 0) -> int:
    return _check(_libc.prctl(option, arg2, arg3, arg4, arg5), f"prctl({option})")


# capabilities (rootless mode: init keeps its user-namespace capabilities across execve)
SYS_CAPSET = 126
_LINUX_CAPABILITY_VERSION_3 = 0x20080522


class _CapHeader(ctypes.Structure):
    _fields_ = [("version", ctypes.c_uint32), ("pid", ctypes.c_int)]


class _CapData(ctypes.Structure):
    _fields_ = [("effective", ctypes.c_uint32), ("permitted", ctypes.c_uint32),
                ("inheritable", ctypes.c_uint32)]


def capset(effective: int, permitted: int, inheritable: int) -> None:
    """Set this thread's capability sets (64 bits each; within what the kernel allows)."""
    head = _CapHeader(_LINUX_CAPABILITY_VERSION_3, 0)
    data = (_CapData * 2)(*((effective >> s & 0xFFFFFFFF, permitted >> s & 0xFFFFFFFF,
                             inheritable >> s & 0xFFFFFFFF) for s in (0, 32)))
    _check(_libc.syscall(ctypes.c_long(SYS_CAPSET), ctypes.byref(head), data), "capset")
