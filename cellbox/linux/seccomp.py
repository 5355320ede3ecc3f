"""seccomp: the syscall policy, compiled with libseccomp in the parent, loaded in the child.

Parent side: ``compile_filters`` turns a policy (``cellbox.policy``) into classic BPF once per
policy and process (libseccomp, through pyseccomp), ready to load. Child side: the box init
(``cellbox/boxinit/seccomp.c``) hands the raw BPF to the kernel, the last step before execve.

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

import errno
import os
import struct
from functools import lru_cache

from cellbox.errors import SandboxSetupError
from cellbox.linux import syscalls as sc
from cellbox.policy import CHECKED, Policy, libseccomp, syscall_number

MAX_SYSCALL = 512  # x86_64's own numbers stay below 512 (512-547 are x32-only)

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


@lru_cache(maxsize=1)
def highest_syscall() -> int:
    """The highest x86_64 syscall number libseccomp knows: newer ones are refused."""
    lib = libseccomp()
    for nr in reversed(range(MAX_SYSCALL)):
        try:
            lib.resolve_syscall(lib.Arch.NATIVE, nr)
        except ValueError:
            continue
        return nr
    raise SandboxSetupError("libseccomp knows no x86_64 syscall; reinstall libseccomp2")


# -- compiling (parent) -----------------------------------------------------------------------

def _export(f: object) -> bytes:
    fd = os.memfd_create("cellbox-seccomp", os.MFD_CLOEXEC)
    with os.fdopen(fd, "w+b") as out:
        f.export_bpf(out)  # type: ignore[attr-defined]
        out.seek(0)
        return out.read()


def _policy_filter(policy: Policy) -> bytes:
    """Filter 2 (libseccomp): the policy's denials and the argument checks; the rest passes.
    Exported, never loaded here: the box init installs the BPF."""
    lib = libseccomp()
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
            (_JEQ, 0, "allow", syscall_number("personality")),
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
    """The policy as classic BPF programs, to be installed in this order (by the box init,
    ``cellbox/boxinit/seccomp.c``). Cached per process."""
    try:
        return (_abi_filter(policy), _policy_filter(policy))
    except OSError as e:
        raise SandboxSetupError(f"libseccomp could not build the filter for {policy.name}: "
                                f"{e}; check that libseccomp2 is installed") from None
