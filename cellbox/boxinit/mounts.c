/* The box's mount namespace: a tmpfs root built from the plan's mount steps, then pivot_root.
 *
 * Mount points are created and opened through O_NOFOLLOW directory fds from the new root
 * down, so a symlink planted anywhere under the root (e.g. inside the box's own directory)
 * can never redirect a mount. The steps' paths are inside the box; the keeper resolved and
 * checked every rule and source (cellbox/linux/mounts.py).
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <limits.h>
#include <linux/mount.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/fsuid.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/sysmacros.h>
#include <unistd.h>

#include "boxinit.h"

#define DIR_FLAGS (O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC)
#define MASK_ATTRS (MOUNT_ATTR_RDONLY | MOUNT_ATTR_NOSUID | MOUNT_ATTR_NODEV | MOUNT_ATTR_NOEXEC)

static void set_attrs(const char *path, uint64_t attrs, int recursive) {
    struct mount_attr a = {.attr_set = attrs};
    if (syscall(SYS_mount_setattr, AT_FDCWD, path, recursive ? AT_RECURSIVE : 0, &a,
                sizeof a) < 0)
        fail("mount_setattr %s: %s", path, strerror(errno));
}

static void do_mount(const char *source, const char *target, const char *fstype,
                     unsigned long flags, const char *data) {
    if (mount(source, target, fstype, flags, data) < 0)
        fail("mount %s on %s: %s", fstype && *fstype ? fstype : source ? source : "(none)", target,
             strerror(errno));
}

/* The directory that holds ``inside``'s last component, walked from ``root_fd`` without
 * following any link; missing directories are made. *last points into ``inside``. */
static int open_parent(int root_fd, const char *inside, const char **last) {
    char part[NAME_MAX + 1];
    int fd = dup(root_fd);
    if (fd < 0)
        fail_errno();
    const char *p = inside;
    for (;;) {
        while (*p == '/')
            p++;
        size_t len = strcspn(p, "/");
        if (p[len] == '\0' || strspn(p + len, "/") == strlen(p + len)) {
            *last = p;
            return fd;
        }
        if (len > NAME_MAX)
            fail("%s: a name is too long", inside);
        memcpy(part, p, len);
        part[len] = '\0';
        if (mkdirat(fd, part, 0755) < 0 && errno != EEXIST)
            fail("mkdir %s in %s: %s", part, inside, strerror(errno));
        int next = openat(fd, part, DIR_FLAGS);
        if (next < 0)
            fail("%s: %s (a mount point's parents must be plain directories)", inside,
                 strerror(errno));
        close(fd);
        fd = next;
        p += len;
    }
}

/* Create (if needed) the mount point ``inside``; return an O_PATH fd to it. */
static int mount_point(int root_fd, const char *inside, int as_file) {
    const char *last;
    int dir = open_parent(root_fd, inside, &last);
    char name[NAME_MAX + 1];
    snprintf(name, sizeof name, "%.*s", (int)strcspn(last, "/"), last);
    if (as_file) {
        int f = openat(dir, name, O_CREAT | O_EXCL | O_WRONLY | O_NOFOLLOW | O_CLOEXEC, 0644);
        if (f < 0 && errno != EEXIST)
            fail("create %s: %s", inside, strerror(errno));
        if (f >= 0)
            close(f);
    } else if (mkdirat(dir, name, 0755) < 0 && errno != EEXIST) {
        fail("mkdir %s: %s", inside, strerror(errno));
    }
    int target = openat(dir, name, O_PATH | O_NOFOLLOW | O_CLOEXEC);
    struct stat st;
    if (target < 0 || fstat(target, &st) < 0)
        fail("%s: %s", inside, strerror(errno));
    if (S_ISLNK(st.st_mode))
        fail("mount point %s is a symbolic link; refusing to follow it", inside);
    close(dir);
    return target;
}

static void fd_path(char *out, size_t cap, int fd) { snprintf(out, cap, "/proc/self/fd/%d", fd); }

/* A path of the new root as seen from outside it (before pivot_root). */
static void at_root(char *out, size_t cap, const struct box *b, const char *inside) {
    if ((size_t)snprintf(out, cap, "%s%s", b->root, inside) >= cap)
        fail("%s: the path is too long", inside);
}

/* A bind source, opened for the mount. When root serves an ordinary user, with that user's
 * file-system ids and groups: the keeper checked the path as the user too, but only this open
 * is the one the mount uses, so a path component swapped in between (a link to a directory
 * of root's) binds nothing the user could not open themselves. */
static int open_source(const struct box *b, const char *source) {
    int for_user = b->flags & BOX_FOR_USER;
    if (for_user) {
        if (setgroups(b->n_user_groups, b->user_groups) < 0)
            fail_errno();
        setfsgid(b->user_gid);
        setfsuid(b->user_uid);
        if ((uid_t)setfsuid((uid_t)-1) != b->user_uid
            || (gid_t)setfsgid((gid_t)-1) != b->user_gid)
            fail("could not take uid %u's file access to open %s", b->user_uid, source);
    }
    int fd = open(source, O_PATH | O_CLOEXEC);
    int err = errno;
    if (for_user) { /* the box init needs no groups: the program's are set before its exec */
        setfsuid(0);
        setfsgid(0);
        if (setgroups(0, NULL) < 0)
            fail_errno();
    }
    if (fd < 0)
        fail("%s: %s", source, strerror(err));
    return fd;
}

static void bind(const struct box *b, const struct mount_step *m, int target, const char *at) {
    char from[64], fdp[64];
    int source = open_source(b, m->source);
    fd_path(from, sizeof from, source);
    fd_path(fdp, sizeof fdp, target);
    int rec = m->flags & MOUNT_RECURSIVE;
    if (mount(from, fdp, NULL, MS_BIND | (rec ? MS_REC : 0), NULL) < 0)
        fail("bind %s on %s: %s", m->source, m->inside, strerror(errno));
    close(source);
    /* The fd names the covered directory, not the new mount: attributes go by path (built
     * from components just checked to be plain directories). mount_setattr reaches every
     * submount of a recursive bind, where a remount would leave them writable and suid. */
    set_attrs(at, m->attrs, rec);
}

/* A file or directory of a fresh proc or sysfs mount, hidden (nothing of the box's is in it
 * yet, so its plain path cannot be redirected). */
static void mask(const char *at) {
    struct stat st;
    if (lstat(at, &st) < 0)
        return; /* the kernel has no such file here */
    if (S_ISDIR(st.st_mode)) {
        do_mount("cellbox-masked", at, "tmpfs",
                 MS_RDONLY | MS_NOSUID | MS_NODEV | MS_NOEXEC, "mode=0555,size=4k,nr_inodes=1");
    } else {
        do_mount("/dev/null", at, NULL, MS_BIND, NULL);
        set_attrs(at, MASK_ATTRS, 0);
    }
}

static void read_only(const char *at) {
    struct stat st;
    if (stat(at, &st) < 0 || !S_ISDIR(st.st_mode))
        return;
    do_mount(at, at, NULL, MS_BIND | MS_REC, NULL);
    set_attrs(at, MASK_ATTRS, 1);
}

/* A device node; a user namespace (rootless mode) may not make one, so there the host's
 * node of the same device is bound over a file instead. */
static void dev_node(int root_fd, const struct mount_step *m) {
    const char *last;
    int dir = open_parent(root_fd, m->inside, &last);
    if (mknodat(dir, last, S_IFCHR | 0666, (dev_t)m->dev) == 0) {
        if (fchmodat(dir, last, 0666, 0) < 0) /* mknod's mode went through the umask */
            fail("chmod %s: %s", m->inside, strerror(errno));
        close(dir);
        return;
    }
    if (errno != EPERM)
        fail("mknod %s: %s", m->inside, strerror(errno));
    close(dir);
    int host = open(m->source, O_PATH | O_NOFOLLOW | O_CLOEXEC);
    struct stat st;
    if (host < 0 || fstat(host, &st) < 0)
        fail("%s: %s", m->source, strerror(errno));
    if (!S_ISCHR(st.st_mode) || st.st_rdev != (dev_t)m->dev)
        fail("%s on the host is not the expected character device", m->source);
    int target = mount_point(root_fd, m->inside, 1);
    char from[64], to[64];
    fd_path(from, sizeof from, host);
    fd_path(to, sizeof to, target);
    do_mount(from, to, NULL, MS_BIND, NULL);
    close(target);
    close(host);
}

static void one_step(const struct box *b, int root_fd, const struct mount_step *m) {
    char at[PATH_MAX];
    at_root(at, sizeof at, b, m->inside);
    const char *last;
    int fd;
    switch (m->op) {
    case OP_BIND:
        fd = mount_point(root_fd, m->inside, m->flags & MOUNT_AS_FILE);
        bind(b, m, fd, at);
        close(fd);
        break;
    case OP_FS:
        /* On the mount point as the working directory: a warm box's run init mounts its proc
         * where no proc is yet, so there is no /proc/self/fd to name it by. */
        fd = mount_point(root_fd, m->inside, 0);
        if (fchdir(fd) < 0)
            fail("%s: %s", m->inside, strerror(errno));
        do_mount(m->source, ".", m->fstype, (unsigned long)m->attrs, *m->data ? m->data : NULL);
        close(fd);
        break;
    case OP_MASK:
        mask(at);
        break;
    case OP_READONLY:
        read_only(at);
        break;
    case OP_DEVNODE:
        dev_node(root_fd, m);
        break;
    case OP_SYMLINK:
        fd = open_parent(root_fd, m->inside, &last);
        if (symlinkat(m->source, fd, last) < 0 && errno != EEXIST)
            fail("symlink %s: %s", m->inside, strerror(errno));
        close(fd);
        break;
    case OP_MKDIR:
        fd = open_parent(root_fd, m->inside, &last);
        if (mkdirat(fd, last, 0755) < 0 && errno != EEXIST)
            fail("mkdir %s: %s", m->inside, strerror(errno));
        close(fd);
        break;
    case OP_SETATTR:
        set_attrs(at, m->attrs, m->flags & MOUNT_RECURSIVE);
        break;
    default:
        fail("unknown mount step %u", m->op);
    }
}

/* Every mount private, the new root a tmpfs at b->root built step by step, read-only, and
 * pivoted into; the old root detached. */
void build_root(const struct box *b) {
    do_mount(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL);
    do_mount("cellbox-root", b->root, "tmpfs", MS_NOSUID | MS_NODEV,
             "mode=0755,size=1m,nr_inodes=4096");
    int root_fd = open(b->root, DIR_FLAGS);
    if (root_fd < 0)
        fail("%s: %s", b->root, strerror(errno));
    /* A warm box's runs each mount the RENEW filesystems in namespaces of their own, so its
     * init makes only their mount points: each run's copy of the mount table is then smaller.
     * Rootless, the kernel lets a run mount a proc or sysfs only where one is fully visible
     * already: there the box init mounts them too (per_run_mounts). */
    int renew_later = (b->flags & BOX_WARM) && !(b->flags & BOX_ROOTLESS);
    for (uint32_t i = 0; i < b->n_mounts; i++) {
        const struct mount_step *m = &b->mounts[i];
        if (!renew_later || !(m->flags & MOUNT_RENEW))
            one_step(b, root_fd, m);
        else if (m->op == OP_FS)
            close(mount_point(root_fd, m->inside, 0));
    }
    set_attrs(b->root, MOUNT_ATTR_RDONLY | MOUNT_ATTR_NOSUID | MOUNT_ATTR_NODEV, 0);
    /* pivot_root(".", ".") stacks the old root under the new one; detaching "." drops it. */
    if (fchdir(root_fd) < 0 || syscall(SYS_pivot_root, ".", ".") < 0
        || umount2(".", MNT_DETACH) < 0 || chdir("/") < 0)
        fail("pivot_root into %s: %s", b->root, strerror(errno));
    close(root_fd);
}

/* A warm box's run init, in the run's own mount namespace: every filesystem of the plan whose
 * contents are a run's (a new proc shows the run's pid namespace, sysfs its network namespace,
 * mqueue its IPC namespace; /dev/shm and any tmpfs a rule mounts start empty), with its masks.
 * Nothing of these outlives the run: the namespace dies with the run init. As root they go on
 * the bare mount points the box init left (build_root). Rootless they go over the box init's
 * own: the kernel lets a user namespace mount a proc or sysfs only where one is fully visible
 * already (its masks, made in this user namespace, are not locked, so they do not count). */
void per_run_mounts(const struct box *b) {
    struct box here = *b;
    here.root = ""; /* after pivot_root the box's paths are the real ones */
    int root_fd = open("/", DIR_FLAGS);
    if (root_fd < 0)
        fail_errno();
    for (uint32_t i = 0; i < b->n_mounts; i++)
        if (b->mounts[i].flags & MOUNT_RENEW)
            one_step(&here, root_fd, &b->mounts[i]);
    close(root_fd);
    if (chdir("/") < 0)
        fail_errno();
}
