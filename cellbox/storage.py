"""Box storage on the host: a per-box tmpfs (the disk quota) and every host-side file access.

Layout of ``<box_root>/<id>`` (the tmpfs): ``box/`` the program's working directory (/box),
``tmp/`` its /tmp, ``root/`` the mount point of its root filesystem (used only inside the box's
own mount namespace).

The host never follows a link the box could have made: paths inside the box are walked one
component at a time with O_NOFOLLOW directory fds, reads refuse anything but regular files,
and tree walks (chown, removal) use fd-relative calls, iteratively (any depth).
"""

from __future__ import annotations

import errno
import fcntl
import os
import stat
import struct
from collections.abc import Callable

from cellbox.errors import BoxStateError, UsageError
from cellbox.linux import syscalls as sc

_DIR = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
BOX_MODE = 0o700  # box/ (/box), between runs and during them
TMP_MODE = 0o1777  # tmp/ (/tmp) during a run
FS_IOC_GETFLAGS, FS_IOC_SETFLAGS = 0x80086601, 0x40086602
FS_FL_USER_MODIFIABLE = 0x000380FF  # chattr's flags; the filesystem's own (extents...) stay

# What a run may change about a directory of box storage it can write to (/box, /tmp), not
# its contents: every attribute the kernel shows, and what ``renew_dir`` does with it before the
# next run. "renewed": set back and checked; "now": set to the time of the renewal, which
# says nothing of the run; "contents": follows what is in it (emptied, or the caller's files);
# "per-box": fixed for the box's life (its inode and device). tests/security/test_warm_state.py
# fails when the kernel shows an attribute this list does not name.
DIR_STATE = {
    "st_mode": "renewed", "st_uid": "renewed", "st_gid": "renewed",
    "xattrs": "renewed",  # user.* up to 64 KiB each, POSIX ACLs (system.posix_acl_*)
    "flags": "renewed",  # inode flags: nodump, noatime (chattr), which the owner may set
    "st_atime": "now", "st_mtime": "now", "st_ctime": "now",
    "st_atime_ns": "now", "st_mtime_ns": "now", "st_ctime_ns": "now",
    "st_nlink": "contents", "st_size": "contents", "st_blocks": "contents",
    "st_ino": "per-box", "st_dev": "per-box", "st_rdev": "per-box", "st_blksize": "per-box",
}


def mount_storage(box_dir: str, size_kb: int, inodes: int, owner_uid: int) -> None:
    """The box's tmpfs. Its top directory is root's, mode 0700, and the box's owner may pass
    through it (an ACL entry, --x) to reach ``box/``: no other host user may enter what a run
    left, however open it made it, and the owner may not rename what root relies on."""
    os.makedirs(box_dir, mode=0o755, exist_ok=True)
    sc.mount("cellbox-box", box_dir, "tmpfs", sc.MS_NOSUID | sc.MS_NODEV,
             f"size={size_kb}k,nr_inodes={inodes},mode=0700")
    if owner_uid != 0:
        os.setxattr(box_dir, "system.posix_acl_access", _acl_passage(owner_uid))
    os.mkdir(os.path.join(box_dir, "root"), 0o755)
    os.mkdir(os.path.join(box_dir, "tmp"), 0o755)
    os.mkdir(os.path.join(box_dir, "box"), 0o700)


def _acl_passage(uid: int) -> bytes:
    """A POSIX ACL (the kernel's xattr form) of rwx for the owner, --x for ``uid``, and
    nothing for anyone else."""
    user_obj, user, group_obj, mask, other = 0x01, 0x02, 0x04, 0x10, 0x20
    entries = ((user_obj, 7, 0xFFFFFFFF), (user, 1, uid), (group_obj, 0, 0xFFFFFFFF),
               (mask, 1, 0xFFFFFFFF), (other, 0, 0xFFFFFFFF))
    return struct.pack("<I", 2) + b"".join(struct.pack("<HHI", *e) for e in entries)


def make_plain_storage(box_dir: str) -> None:
    """Rootless mode: a plain directory of the user's, without a quota (a tmpfs needs root)."""
    os.makedirs(box_dir, mode=0o700)
    for name in ("root", "tmp", "box"):
        os.mkdir(os.path.join(box_dir, name), 0o700)


def renew_dir(path: str, mode: int, owner: tuple[int, int]) -> None:
    """Put back everything a run may have changed about the directory ``path`` itself
    (``DIR_STATE``): xattrs and ACLs removed, chattr's flags cleared, ``owner`` and ``mode``,
    both times now; each checked. Raises BoxStateError if something would not go back."""
    fd = os.open(path, _DIR)
    try:
        want = (mode, owner, [], 0)
        if _dir_state(fd) != want:  # the usual case costs three reads
            for name in os.listxattr(fd):
                os.removexattr(fd, name)
            flags = _flags(fd)
            if flags & FS_FL_USER_MODIFIABLE:
                fcntl.ioctl(fd, FS_IOC_SETFLAGS, struct.pack("i", flags & ~FS_FL_USER_MODIFIABLE))
            os.fchown(fd, *owner)
            os.fchmod(fd, mode)
            left = [what for what, now, wanted in zip(
                ("mode", "owner", "extended attributes", "inode flags"), _dir_state(fd), want)
                if now != wanted]
            if left:
                raise BoxStateError(f"{path}: cannot reset its {', '.join(left)} after a run; "
                                    "run --cleanup and --init the box again")
        os.utime(fd)
    finally:
        os.close(fd)


def _dir_state(fd: int) -> tuple[int, tuple[int, int], list[str], int]:
    st = os.fstat(fd)
    return (stat.S_IMODE(st.st_mode), (st.st_uid, st.st_gid), os.listxattr(fd),
            _flags(fd) & FS_FL_USER_MODIFIABLE)


def _flags(fd: int) -> int:
    """The inode flags (chattr) of ``fd``; 0 where the filesystem has none."""
    try:
        return int(struct.unpack("i", fcntl.ioctl(fd, FS_IOC_GETFLAGS, bytes(4)))[0])
    except OSError as e:
        if e.errno in (errno.ENOTTY, errno.EOPNOTSUPP, errno.EINVAL):
            return 0
        raise


def remove_plain_storage(box_dir: str) -> None:
    if os.path.isdir(box_dir):
        empty_dir(box_dir)
        os.rmdir(box_dir)


def is_mounted(box_dir: str) -> bool:
    return os.path.ismount(box_dir)


def unmount_storage(box_dir: str) -> None:
    if is_mounted(box_dir):
        try:
            sc.umount2(box_dir)
        except OSError as e:
            if e.errno != errno.EBUSY:
                raise
            sc.umount2(box_dir, sc.MNT_DETACH)
    try:
        os.rmdir(box_dir)
    except FileNotFoundError:
        pass


def _split(rel: str) -> list[str]:
    parts = [p for p in rel.split("/") if p not in ("", ".")]
    if not parts or ".." in parts:
        raise UsageError(f"Path {rel!r} must name a file inside the box, without '..'")
    return parts


def _open_parent(top: str, rel: str, create_dirs: bool = False) -> tuple[int, str]:
    """An fd of the directory holding ``rel`` under ``top``, reached without following links."""
    parts = _split(rel)
    fd = os.open(top, _DIR)
    try:
        for name in parts[:-1]:
            if create_dirs:
                try:
                    os.mkdir(name, 0o755, dir_fd=fd)
                except FileExistsError:
                    pass
            nfd = os.open(name, _DIR, dir_fd=fd)
            os.close(fd)
            fd = nfd
    except OSError as e:
        os.close(fd)
        if e.errno == errno.ELOOP or e.errno == errno.ENOTDIR:
            raise BoxStateError(f"{rel}: a component is a symlink or not a directory; "
                                "cellbox does not follow links inside a box") from None
        raise
    return fd, parts[-1]


def write_file(top: str, rel: str, data: bytes, mode: int = 0o644,
               owner: tuple[int, int] | None = None) -> None:
    fd = _create(top, rel, mode, owner)
    try:
        view = memoryview(data)
        while view:
            view = view[os.write(fd, view):]
    finally:
        os.close(fd)


def make_dir(top: str, rel: str, owner: tuple[int, int] | None = None) -> None:
    """Create the directory ``rel`` (and its parents) in the box, never through a link."""
    dfd, name = _open_parent(top, rel, create_dirs=True)
    try:
        try:
            os.mkdir(name, 0o755, dir_fd=dfd)
        except FileExistsError:
            pass
        if owner:
            os.chown(name, *owner, dir_fd=dfd, follow_symlinks=False)
    finally:
        os.close(dfd)


def list_files(top: str, rel: str) -> list[str]:
    """The names of the regular files directly in the box's directory ``rel`` (reached
    without following links; nothing if it is gone)."""
    try:
        dfd, name = _open_parent(top, rel)
        try:
            fd = os.open(name, _DIR, dir_fd=dfd)
        finally:
            os.close(dfd)
    except (OSError, BoxStateError):  # gone, or replaced by a link or a file
        return []
    try:
        return sorted(n for n in os.listdir(fd)
                      if stat.S_ISREG(os.stat(n, dir_fd=fd, follow_symlinks=False).st_mode))
    finally:
        os.close(fd)


def copy_in(top: str, rel: str, source: str, mode: int = 0o644,
            owner: tuple[int, int] | None = None) -> None:
    """Copy the host file ``source`` to ``rel`` in the box, streamed, holes kept."""
    fd = _create(top, rel, mode, owner)
    try:
        with open(source, "rb") as f:
            copy_sparse(f.fileno(), fd)
    finally:
        os.close(fd)


def copy_out(top: str, rel: str, target: str, limit: int) -> int:
    """Copy the regular file ``rel`` of the box to the new host file ``target``, streamed,
    holes kept (never following a link); refuse one larger than ``limit`` bytes. Its size."""
    fd = _open_regular(top, rel)
    try:
        size = os.fstat(fd).st_size
        if size > limit:
            raise BoxStateError(f"{rel} is {size} bytes, more than the {limit} allowed")
        out = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o600)
        try:
            copy_sparse(fd, out)
        finally:
            os.close(out)
        return size
    finally:
        os.close(fd)


def copy_sparse(src: int, dst: int) -> None:
    """Copy the data of ``src`` to ``dst`` a chunk at a time, skipping holes (a sparse file
    stays sparse, and is never read whole into memory)."""
    size = os.fstat(src).st_size
    at = 0
    while at < size:
        try:
            at = os.lseek(src, at, os.SEEK_DATA)
        except OSError as e:
            if e.errno != errno.ENXIO:  # ENXIO: only a hole is left
                raise
            break
        end = os.lseek(src, at, os.SEEK_HOLE)
        while at < end:
            chunk = os.pread(src, min(end - at, 1 << 20), at)
            if not chunk:
                break
            view = memoryview(chunk)
            while view:
                n = os.pwrite(dst, view, at)
                view, at = view[n:], at + n
    os.ftruncate(dst, size)


def _create(top: str, rel: str, mode: int, owner: tuple[int, int] | None) -> int:
    """A new file at ``rel`` (replacing what was there), reached without following links."""
    dfd, name = _open_parent(top, rel, create_dirs=True)
    try:
        try:
            os.unlink(name, dir_fd=dfd)
        except FileNotFoundError:
            pass
        fd = os.open(name, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC,
                     mode, dir_fd=dfd)
        try:
            os.fchmod(fd, mode)
            if owner:
                os.fchown(fd, *owner)
        except BaseException:
            os.close(fd)
            raise
        return fd
    finally:
        os.close(dfd)


def read_file(top: str, rel: str, limit: int | None = None) -> bytes:
    fd = _open_regular(top, rel)
    try:
        st = os.fstat(fd)
        vfs = os.fstatvfs(fd)
        if limit is None and st.st_size > vfs.f_blocks * vfs.f_frsize:
            raise BoxStateError(f"{rel} is larger than the box's whole storage (a sparse "
                                f"file of {st.st_size} bytes); pass a limit to read part "
                                "of it")
        chunks = []
        total = 0
        while limit is None or total < limit:
            chunk = os.read(fd, 1 << 20 if limit is None else min(1 << 20, limit - total))
            if not chunk:
                break
            chunks.append(chunk)
            total += len(chunk)
        return b"".join(chunks)
    finally:
        os.close(fd)


def _open_regular(top: str, rel: str) -> int:
    """An fd of the regular file ``rel`` under ``top`` (refuses links and specials)."""
    dfd, name = _open_parent(top, rel)
    try:
        try:
            fd = os.open(name, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC,
                         dir_fd=dfd)
        except OSError as e:
            if e.errno == errno.ELOOP:
                raise BoxStateError(f"{rel} is a symlink; cellbox reads only regular files "
                                    "out of a box") from None
            raise
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            os.close(fd)
            raise BoxStateError(f"{rel} is not a regular file; refusing to read it")
        return fd
    finally:
        os.close(dfd)


def _walk(top: str, visit: Callable[[int, str, os.stat_result], None],
          leave: Callable[[int, str], None] | None = None) -> None:
    """Depth-first over everything below ``top``, never following a link: ``visit(dir_fd,
    name, lstat)`` for each entry (before descending into a directory), ``leave(dir_fd, name)``
    after a subdirectory's contents. Iterative with one directory fd open at a time (it climbs
    back through ".."), so a hostile tree of any depth neither overflows the stack nor runs out
    of fds. Only for trees no box process can change meanwhile (between runs)."""
    fd = os.open(top, _DIR)
    stack = [(os.listdir(fd), "", _ident(os.fstat(fd)))]
    try:
        while stack:
            names, dirname, _ = stack[-1]
            if names:
                name = names.pop()
                try:
                    st = os.stat(name, dir_fd=fd, follow_symlinks=False)
                    visit(fd, name, st)
                    if not stat.S_ISDIR(st.st_mode):
                        continue
                    _let_owner_in(fd, name, st)
                    sub = os.open(name, _DIR, dir_fd=fd)
                except FileNotFoundError:
                    continue
                os.close(fd)
                fd = sub
                stack.append((os.listdir(fd), name, _ident(os.fstat(fd))))
                continue
            stack.pop()
            if stack:
                up = os.open("..", _DIR, dir_fd=fd)
                os.close(fd)
                fd = up
                if _ident(os.fstat(fd)) != stack[-1][2]:
                    raise BoxStateError(f"{top} changed while cellbox walked it")
                if leave:
                    leave(fd, dirname)
    finally:
        os.close(fd)


def _let_owner_in(dfd: int, name: str, st: os.stat_result) -> None:
    """Rootless mode: a directory the program made unreadable (it runs as the user) must
    still be walked; root needs no permission."""
    if (st.st_mode & 0o700) != 0o700 and st.st_uid == os.geteuid() != 0:
        os.chmod(name, stat.S_IMODE(st.st_mode) | 0o700, dir_fd=dfd, follow_symlinks=False)


def _ident(st: os.stat_result) -> tuple[int, int]:
    return st.st_dev, st.st_ino


def chown_tree(top: str, uid: int, gid: int) -> None:
    """chown ``top`` and everything below it, never following a symlink."""
    os.chown(top, uid, gid, follow_symlinks=False)

    def chown(dfd: int, name: str, st: os.stat_result) -> None:
        os.chown(name, uid, gid, dir_fd=dfd, follow_symlinks=False)

    _walk(top, chown)


def remove_special_files(top: str) -> None:
    """Delete what is neither a regular file nor a directory (links, FIFOs, sockets, devices)."""
    def remove(dfd: int, name: str, st: os.stat_result) -> None:
        if not (stat.S_ISREG(st.st_mode) or stat.S_ISDIR(st.st_mode)):
            os.unlink(name, dir_fd=dfd)

    _walk(top, remove)


def empty_dir(path: str) -> None:
    """Remove everything inside ``path`` (fd-based: safe against links; any depth)."""
    def remove(dfd: int, name: str, st: os.stat_result) -> None:
        if not stat.S_ISDIR(st.st_mode):
            os.unlink(name, dir_fd=dfd)

    _walk(path, remove, leave=lambda dfd, name: os.rmdir(name, dir_fd=dfd))
