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
MNT_DETACH = 2

# mount_setattr(2) (the box init's bind mounts, cellbox/linux/mounts.py)
MOUNT_ATTR_RDONLY = 0x1
MOUNT_ATTR_NOSUID = 0x2
MOUNT_ATTR_NODEV = 0x4
MOUNT_ATTR_NOEXEC = 0x8

_libc.syscall.restype = ctypes.c_long
_libc.mount.argtypes = [ctypes.c_char_p, ctypes.c_char_p, ctypes.c_char_p, ctypes.c_ulong,
                        ctypes.c_char_p]
_libc.umount2.argtypes = [ctypes.c_char_p, ctypes.c_int]


def _check(ret: int, what: str) -> int:
    if ret == -1:
        err = ctypes.get_errno()
        raise OSError(err, f"{what}: {os.strerror(err)}")
    return ret


def _b(s: str | bytes | None) -> bytes | None:
    return s.encode() if isinstance(s, str) else s


def clone(flags: int) -> int:
    """fork(2)-like clone with namespace flags: returns 0 in the child, the pid in the parent.

    The child shares nothing with the parent but copy-on-write memory, like fork. Only call
    it from a single-threaded process (``cellbox doctor``'s user namespace probe).
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


_libc.prctl.argtypes = [ctypes.c_int, ctypes.c_ulong, ctypes.c_ulong, ctypes.c_ulong,
                        ctypes.c_ulong]


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
