"""PID, mount, network, IPC and UTS namespaces (and the user namespace's flag; see userns).

Parent side: ``clone_flags`` picks the namespaces for a run. Child side: ``bring_loopback_up``
and ``set_hostname`` finish the network and UTS namespaces from inside.
"""

from __future__ import annotations

# _socket, the C module, not socket: socket.py imports selectors, array and enum helpers (a
# few ms of every command's start-up) for one ioctl. Imported here, in the parent: the child
# calls it after pivot_root, where Python's library directory is gone.
import _socket
import fcntl
import struct

from cellbox.linux import syscalls as sc

SIOCGIFFLAGS = 0x8913
SIOCSIFFLAGS = 0x8914
IFF_UP = 0x1


def clone_flags(share_net: bool, user: bool = False) -> int:
    """``user``: rootless mode; the kernel creates the user namespace first and makes it the
    owner of the others, so the child holds every capability over them and none outside."""
    flags = sc.CLONE_NEWNS | sc.CLONE_NEWPID | sc.CLONE_NEWIPC | sc.CLONE_NEWUTS
    if user:
        flags |= sc.CLONE_NEWUSER
    if not share_net:
        flags |= sc.CLONE_NEWNET
    return flags


def bring_loopback_up() -> None:
    """A fresh network namespace has only ``lo``, and it is down: bring it up."""
    s = _socket.socket(_socket.AF_INET, _socket.SOCK_DGRAM)
    try:
        ifreq = struct.pack("16sH14x", b"lo", 0)
        flags = struct.unpack("16sH14x", fcntl.ioctl(s.fileno(), SIOCGIFFLAGS, ifreq))[1]
        fcntl.ioctl(s.fileno(), SIOCSIFFLAGS, struct.pack("16sH14x", b"lo", flags | IFF_UP))
    finally:
        s.close()


def set_hostname(name: str) -> None:
    sc.sethostname(name)
