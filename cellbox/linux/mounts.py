"""The mount namespace of a box: a tmpfs root built from directory rules, then pivot_root.

Child side only (runs inside the new mount namespace, as root). Mount points are created and
mounted through O_NOFOLLOW directory fds, so a symlink planted anywhere under the root (e.g.
inside the box's own directory) can never redirect a mount.
"""

from __future__ import annotations

import os
import stat
from collections.abc import Iterable

from cellbox.linux import syscalls as sc
from cellbox.rules import DirRule, Kind

DEV_NODES = {"null": (1, 3), "zero": (1, 5), "full": (1, 7), "random": (1, 8),
             "urandom": (1, 9)}
DEV_LINKS = {"fd": "/proc/self/fd", "stdin": "/proc/self/fd/0", "stdout": "/proc/self/fd/1",
             "stderr": "/proc/self/fd/2"}
# /dev/shm: a tmpfs of its own per box (and, in a warm box, mounted again by the C init before
# every run, with shm_options() and MS_NOSUID | MS_NODEV).
_DIR = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC

# Docker's masked and read-only paths. Masked files get /dev/null bound over them, masked
# directories an empty read-only tmpfs; a path the kernel does not have is skipped.
PROC_MASKED = ("kcore", "keys", "timer_list", "timer_stats", "sched_debug", "latency_stats",
               "kallsyms", "kmsg", "acpi", "asound", "scsi", "sysrq-trigger",
               # the machine-wide count of ptys, which another box would read exactly
               "sys/kernel/pty")
PROC_READ_ONLY = ("sys", "irq", "bus", "fs")
SYS_MASKED = ("firmware", "devices/virtual/powercap", "kernel/security", "kernel/debug")
_MASK_FLAGS = sc.MOUNT_ATTR_RDONLY | sc.MOUNT_ATTR_NOSUID | sc.MOUNT_ATTR_NODEV \
    | sc.MOUNT_ATTR_NOEXEC


def shm_options(box_dir: str) -> str:
    """/dev/shm's tmpfs options: the size and inodes of the box's storage, i.e. its disk quota
    (pages there are not the box's storage, but no fewer limits apply to them). A rootless box
    has no storage of its own to copy them from, and no quota: half the RAM, the default."""
    if not os.path.ismount(box_dir):
        return "mode=1777,size=50%"
    vfs = os.statvfs(box_dir)
    return f"mode=1777,size={vfs.f_blocks * vfs.f_frsize // 1024}k,nr_inodes={vfs.f_files}"


def _fd_path(fd: int) -> str:
    return f"/proc/self/fd/{fd}"


def _make_mountpoint(root_fd: int, inside: str, as_file: bool) -> int:
    """Create (if needed) the mount point for ``inside`` under the root; return an O_PATH fd."""
    parts = inside.strip("/").split("/")
    fd = os.dup(root_fd)
    try:
        for name in parts[:-1]:
            try:
                os.mkdir(name, 0o755, dir_fd=fd)
            except FileExistsError:
                pass
            nfd = os.open(name, _DIR, dir_fd=fd)
            os.close(fd)
            fd = nfd
        last = parts[-1]
        if as_file:
            try:
                os.close(os.open(last, os.O_CREAT | os.O_EXCL | os.O_WRONLY | os.O_NOFOLLOW
                                 | os.O_CLOEXEC, 0o644, dir_fd=fd))
            except FileExistsError:
                pass
        else:
            try:
                os.mkdir(last, 0o755, dir_fd=fd)
            except FileExistsError:
                pass
        target = os.open(last, os.O_PATH | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=fd)
        if stat.S_ISLNK(os.fstat(target).st_mode):
            os.close(target)
            raise OSError(f"mount point {inside} is a symbolic link; refusing to follow it")
        return target
    finally:
        os.close(fd)


def _attrs(rule: DirRule) -> int:
    a = sc.MOUNT_ATTR_NOSUID
    if not rule.rw:
        a |= sc.MOUNT_ATTR_RDONLY
    if not rule.dev:
        a |= sc.MOUNT_ATTR_NODEV
    if rule.noexec:
        a |= sc.MOUNT_ATTR_NOEXEC
    return a


def _bind(source: str, target_fd: int, mounted_at: str, rule: DirRule) -> None:
    sc.mount(source, _fd_path(target_fd), None, sc.MS_BIND | (0 if rule.norec else sc.MS_REC))
    # The fd names the covered directory, not the new mount: set attributes by path (built
    # from components just checked to be plain directories). mount_setattr reaches every
    # submount of a recursive bind, where a plain remount would leave them writable and suid.
    sc.mount_setattr(mounted_at, _attrs(rule), recursive=not rule.norec)


def _minimal_dev(target_fd: int, mounted_at: str) -> None:
    sc.mount("cellbox-dev", _fd_path(target_fd), "tmpfs", sc.MS_NOSUID | sc.MS_NOEXEC,
             "mode=0755,size=64k,nr_inodes=64")
    dev_fd = os.open(mounted_at, _DIR)
    try:
        for name, (major, minor) in DEV_NODES.items():
            try:
                os.mknod(name, stat.S_IFCHR | 0o666, os.makedev(major, minor), dir_fd=dev_fd)
            except PermissionError:
                # A user namespace (rootless mode) may not make device nodes: bind the
                # host's node of the same name, checked to be that device, over a file.
                _bind_host_node(dev_fd, name, os.makedev(major, minor))
                continue
            os.chmod(name, 0o666, dir_fd=dev_fd)  # mknod's mode went through the umask
        for name, dest in DEV_LINKS.items():
            os.symlink(dest, name, dir_fd=dev_fd)
        os.mkdir("shm", 0o755, dir_fd=dev_fd)
    finally:
        os.close(dev_fd)


def _bind_host_node(dev_fd: int, name: str, device: int) -> None:
    host = os.open(f"/dev/{name}", os.O_PATH | os.O_NOFOLLOW | os.O_CLOEXEC)
    try:
        st = os.fstat(host)
        if not stat.S_ISCHR(st.st_mode) or st.st_rdev != device:
            raise OSError(f"/dev/{name} on the host is not the expected character device")
        os.close(os.open(name, os.O_CREAT | os.O_EXCL | os.O_WRONLY | os.O_NOFOLLOW
                         | os.O_CLOEXEC, 0o644, dir_fd=dev_fd))
        target = os.open(name, os.O_PATH | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=dev_fd)
        try:
            sc.mount(_fd_path(host), _fd_path(target), None, sc.MS_BIND)
        finally:
            os.close(target)
    finally:
        os.close(host)


def _mask(mounted_at: str, masked: tuple[str, ...], read_only: tuple[str, ...]) -> None:
    """Hide kernel files of a fresh proc or sysfs mount (trusted: nothing of the box's is in
    it yet, so plain paths cannot be redirected)."""
    for name in masked:
        path = os.path.join(mounted_at, name)
        if not os.path.lexists(path):
            continue
        if os.path.isdir(path):
            sc.mount("cellbox-masked", path, "tmpfs", sc.MS_RDONLY | sc.MS_NOSUID | sc.MS_NODEV
                     | sc.MS_NOEXEC, "mode=0555,size=4k,nr_inodes=1")
        else:
            sc.mount("/dev/null", path, None, sc.MS_BIND)
            sc.mount_setattr(path, _MASK_FLAGS, recursive=False)
    for name in read_only:
        path = os.path.join(mounted_at, name)
        if os.path.isdir(path):
            sc.mount(path, path, None, sc.MS_BIND | sc.MS_REC)
            sc.mount_setattr(path, _MASK_FLAGS)


def _mount_fs(fd: int, at: str, rule: DirRule) -> None:
    assert rule.source is not None
    # devpts holds only the ptys of its own instance: they must open, so no nodev there.
    flags = sc.MS_NOSUID | (0 if rule.dev or rule.source == "devpts" else sc.MS_NODEV) | (
        # proc's and devpts's files carry their own modes; ptys are made by writing to ptmx.
        0 if rule.rw or rule.source in ("proc", "devpts") else sc.MS_RDONLY) | (
        sc.MS_NOEXEC if rule.noexec or rule.source in ("proc", "sysfs", "devpts") else 0)
    data = {"proc": "hidepid=invisible",
            # A new instance of its own; ptmx usable by the box user, no group tty needed. Its
            # ptys come from the machine's pool (kernel.pty.max): 64 at most per box.
            "devpts": "newinstance,ptmxmode=0666,mode=0620,max=64"}.get(rule.source)
    sc.mount(rule.source, _fd_path(fd), rule.source, flags, data)
    if rule.source == "proc":
        _mask(at, PROC_MASKED, PROC_READ_ONLY)
    elif rule.source == "sysfs":
        _mask(at, SYS_MASKED, ())
    elif rule.source == "devpts":
        # /dev/ptmx must open this instance's multiplexer: a link into it, next to pts. An
        # existing ptmx (a /dev bound from the host by a rule) is left alone.
        parent_fd = os.open(os.path.dirname(at), _DIR)
        try:
            os.symlink("pts/ptmx", "ptmx", dir_fd=parent_fd)
        except FileExistsError:
            pass
        finally:
            os.close(parent_fd)


def _mount_rule(root: str, root_fd: int, rule: DirRule, box_dir: str, tmp_dir: str) -> None:
    as_file = rule.kind is Kind.BIND and not os.path.isdir(rule.source or "")
    fd = _make_mountpoint(root_fd, rule.inside, as_file)
    at = root + rule.inside
    try:
        if rule.kind is Kind.BIND:
            assert rule.source is not None
            _bind(rule.source, fd, at, rule)
        elif rule.kind is Kind.BOX:
            _bind(os.path.join(box_dir, "box"), fd, at, rule)
        elif rule.kind is Kind.TMP:
            _bind(tmp_dir, fd, at, rule)
        elif rule.kind is Kind.FS:
            _mount_fs(fd, at, rule)
        elif rule.kind is Kind.DEV:
            _minimal_dev(fd, at)
        elif rule.kind is Kind.SHM:
            sc.mount("cellbox-shm", _fd_path(fd), "tmpfs", sc.MS_NOSUID | sc.MS_NODEV,
                     shm_options(box_dir))
    finally:
        os.close(fd)


def build_root(root: str, rules: Iterable[DirRule], box_dir: str, tmp_dir: str) -> None:
    """Make every mount private, build the new root on a tmpfs at ``root``, pivot into it."""
    sc.mount(None, "/", None, sc.MS_REC | sc.MS_PRIVATE)
    sc.mount("cellbox-root", root, "tmpfs", sc.MS_NOSUID | sc.MS_NODEV,
             "mode=0755,size=1m,nr_inodes=4096")
    root_fd = os.open(root, _DIR)
    try:
        rule_list = list(rules)
        for rule in rule_list:
            _mount_rule(root, root_fd, rule, box_dir, tmp_dir)
        for rule in rule_list:  # /dev is made read-only once /dev/shm has its mount point
            if rule.kind is Kind.DEV:
                sc.mount_setattr(root + rule.inside,
                                 sc.MOUNT_ATTR_RDONLY | sc.MOUNT_ATTR_NOSUID
                                 | sc.MOUNT_ATTR_NOEXEC, recursive=False)
        sc.mount_setattr(root, sc.MOUNT_ATTR_RDONLY | sc.MOUNT_ATTR_NOSUID
                         | sc.MOUNT_ATTR_NODEV, recursive=False)
        os.fchdir(root_fd)
    finally:
        os.close(root_fd)
    # pivot_root(".", ".") stacks the old root under the new one; detaching "." drops it.
    sc.pivot_root(".", ".")
    sc.umount2(".", sc.MNT_DETACH)
    os.chdir("/")
