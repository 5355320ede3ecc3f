"""The mount namespace of a box, as a plan: directory rules turned into the ordered mount
steps the box init executes (``cellbox/boxinit/mounts.c``) on a tmpfs root, before pivot_root.

Parent side only: every rule is resolved here (``Box`` checked its sources and made them
absolute), so the box init needs no Python and makes no decision of its own but the ones a
fresh proc or sysfs mount asks for (which of the masked files the kernel has).
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from dataclasses import dataclass
from functools import lru_cache

from cellbox.linux import syscalls as sc
from cellbox.rules import DirRule, Kind

DEV_NODES = {"null": (1, 3), "zero": (1, 5), "full": (1, 7), "random": (1, 8),
             "urandom": (1, 9)}
DEV_LINKS = {"fd": "/proc/self/fd", "stdin": "/proc/self/fd/0", "stdout": "/proc/self/fd/1",
             "stderr": "/proc/self/fd/2"}
# Docker's masked and read-only paths. Masked files get /dev/null bound over them, masked
# directories an empty read-only tmpfs; a path the kernel does not have is skipped.
PROC_MASKED = ("kcore", "keys", "timer_list", "timer_stats", "sched_debug", "latency_stats",
               "kallsyms", "kmsg", "acpi", "asound", "scsi", "sysrq-trigger",
               # the machine-wide count of ptys, which another box would read exactly
               "sys/kernel/pty")
PROC_READ_ONLY = ("sys", "irq", "bus", "fs")
SYS_MASKED = ("firmware", "devices/virtual/powercap", "kernel/security", "kernel/debug")

# The steps (boxinit.h, enum mount_op)
OP_BIND, OP_FS, OP_MASK, OP_READONLY, OP_DEVNODE, OP_SYMLINK, OP_MKDIR, OP_SETATTR = range(1, 9)
AS_FILE, RECURSIVE, RENEW = 1, 2, 4


def shm_options(box_dir: str) -> str:
    """/dev/shm's tmpfs options: the size and inodes of the box's storage, i.e. its disk quota
    (pages there are not the box's storage, but no fewer limits apply to them). A rootless box
    has no storage of its own to copy them from, and no quota: half the RAM, the default."""
    if not os.path.ismount(box_dir):
        return "mode=1777,size=50%"
    vfs = os.statvfs(box_dir)
    return f"mode=1777,size={vfs.f_blocks * vfs.f_frsize // 1024}k,nr_inodes={vfs.f_files}"


@dataclass(frozen=True)
class MountStep:
    """One step of building the root; paths are inside the box. ``attrs``: MOUNT_ATTR_*
    (bind, setattr) or MS_* flags (fs)."""

    op: int
    inside: str
    source: str = ""
    fstype: str = ""
    data: str = ""
    flags: int = 0
    attrs: int = 0
    dev: int = 0


def _attrs(rule: DirRule) -> int:
    a = sc.MOUNT_ATTR_NOSUID
    if not rule.rw:
        a |= sc.MOUNT_ATTR_RDONLY
    if not rule.dev:
        a |= sc.MOUNT_ATTR_NODEV
    if rule.noexec:
        a |= sc.MOUNT_ATTR_NOEXEC
    return a


def _bind(source: str, rule: DirRule, as_file: bool = False) -> MountStep:
    return MountStep(OP_BIND, rule.inside, source, attrs=_attrs(rule),
                     flags=(AS_FILE if as_file else 0) | (0 if rule.norec else RECURSIVE))


def _minimal_dev(inside: str) -> list[MountStep]:
    return [MountStep(OP_FS, inside, "cellbox-dev", "tmpfs", "mode=0755,size=64k,nr_inodes=64",
                      attrs=sc.MS_NOSUID | sc.MS_NOEXEC),
            # (a user namespace may not make device nodes: the host's are bound instead)
            *(MountStep(OP_DEVNODE, f"{inside}/{name}", f"/dev/{name}",
                        dev=os.makedev(major, minor))
              for name, (major, minor) in DEV_NODES.items()),
            *(MountStep(OP_SYMLINK, f"{inside}/{name}", dest) for name, dest in DEV_LINKS.items()),
            MountStep(OP_MKDIR, f"{inside}/shm")]


def _filesystem(rule: DirRule) -> list[MountStep]:
    assert rule.source is not None
    fs, at = rule.source, rule.inside
    # devpts holds only the ptys of its own instance: they must open, so no nodev there.
    flags = sc.MS_NOSUID | (0 if rule.dev or fs == "devpts" else sc.MS_NODEV) | (
        # proc's and devpts's files carry their own modes; ptys are made by writing to ptmx.
        0 if rule.rw or fs in ("proc", "devpts") else sc.MS_RDONLY) | (
        sc.MS_NOEXEC if rule.noexec or fs in ("proc", "sysfs", "devpts") else 0)
    data = {"proc": "hidepid=invisible",
            # A new instance of its own; ptmx usable by the box user, no group tty needed.
                        # Its ptys come from the machine's pool (kernel.pty.max): 64 at most per box.
            "devpts": "newinstance,ptmxmode=0666,mode=0620,max=64"}.get(fs, "")
    # A warm box mounts each for every run, in the run's namespaces (RENEW): a proc shows
    # the run's pids, a sysfs its network, any filesystem holds that run's files only.
    steps = [MountStep(OP_FS, at, fs, fs, data, attrs=flags, flags=RENEW)]
    if fs == "proc":
        steps += [MountStep(OP_MASK, f"{at}/{name}", flags=RENEW) for name in PROC_MASKED]
        steps += [MountStep(OP_READONLY, f"{at}/{name}", flags=RENEW) for name in PROC_READ_ONLY]
    elif fs == "sysfs":
        steps += [MountStep(OP_MASK, f"{at}/{name}", flags=RENEW) for name in SYS_MASKED]
    elif fs == "devpts":
        # /dev/ptmx must open this instance's multiplexer: a link into it, next to pts. An
        # existing ptmx (a /dev bound from the host by a rule) is left alone.
        steps.append(MountStep(OP_SYMLINK, f"{os.path.dirname(at)}/ptmx", "pts/ptmx"))
    return steps


def _rule_steps(rule: DirRule, box_dir: str, is_dir: bool, shm: str) -> list[MountStep]:
    if rule.kind is Kind.BIND:
        assert rule.source is not None
        return [_bind(rule.source, rule, as_file=not is_dir)]
    if rule.kind is Kind.BOX:
        return [_bind(os.path.join(box_dir, "box"), rule)]
    if rule.kind is Kind.TMP:
        return [_bind(os.path.join(box_dir, "tmp"), rule)]
    if rule.kind is Kind.FS:
        return _filesystem(rule)
    if rule.kind is Kind.DEV:
        return _minimal_dev(rule.inside)
    return [MountStep(OP_FS, rule.inside, "cellbox-shm", "tmpfs", shm,
                      flags=RENEW, attrs=sc.MS_NOSUID | sc.MS_NODEV)]


def root_steps(rules: Iterable[DirRule], box_dir: str) -> tuple[MountStep, ...]:
    """The steps that build a box's root from its resolved rules, in order."""
    rule_list = tuple(rules)
    # What the steps depend on besides the rules is looked up on every call; the steps built
    # from it are kept (a box's runs ask for the same ones again and again).
    dirs = tuple(r.source is not None and os.path.isdir(r.source)
                 for r in rule_list if r.kind is Kind.BIND)
    shm = shm_options(box_dir) if any(r.kind is Kind.SHM for r in rule_list) else ""
    return _root_steps(rule_list, box_dir, dirs, shm)


@lru_cache(maxsize=64)
def _root_steps(rules: tuple[DirRule, ...], box_dir: str, dirs: tuple[bool, ...],
                shm: str) -> tuple[MountStep, ...]:
    is_dir = iter(dirs)
    steps = [s for rule in rules for s in _rule_steps(
        rule, box_dir, next(is_dir) if rule.kind is Kind.BIND else False, shm)]
    # /dev is made read-only once /dev/shm has its mount point
    steps += [MountStep(OP_SETATTR, r.inside, attrs=sc.MOUNT_ATTR_RDONLY | sc.MOUNT_ATTR_NOSUID
                        | sc.MOUNT_ATTR_NOEXEC) for r in rules if r.kind is Kind.DEV]
    return tuple(steps)
