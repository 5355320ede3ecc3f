/* cellbox's box init: the one C program that starts every box (the .c files here).
 *
 * The keeper (Python) posix_spawns it with one end of a unix stream socket and sends it the
 * run plan (cellbox/boxinit/plan.py writes it): first the box part, then one run part per
 * run. The program has two phases, each one ordered step list in main.c:
 *
 *   launcher (host namespaces, a child of the keeper, lives a few hundred microseconds):
 *       reads the box part, makes the user namespace (rootless mode), clones the box init
 *       into new pid/mount/ipc/uts/net namespaces (a warm box's as root: pid/mount only) as
 *       the keeper's child (CLONE_PARENT), tells the keeper its pid, exits.
 *   box init (pid 1 of the box): builds the root (mounts.c), finishes the namespaces
 *       (net.c), drops what it never needs (creds.c), then serves runs (warm.c): fork the
 *       program, whose steps (stdio.c, creds.c, cgroup.c, seccomp.c) end in execve; reap;
 *       report. A fresh box is a box init that serves one run and exits.
 *   run init (a warm box's, one per run, warm.c): the box init never runs a program itself;
 *       it clones a run init into new pid/mount/ipc/uts/net namespaces, which mounts the
 *       run's proc and /dev/shm, brings up its loopback and sets its hostname, ahead of the
 *       run (while the run before is still going), then serves exactly one run as pid 1 of
 *       the run's pid namespace and exits; the namespaces die with it.
 *
 * A failed step reaches the keeper as {"kind": "error", "step": ..., "error": ...} on the
 * current status fd and becomes "Sandbox setup failed while <step>: <reason>".
 */
#ifndef CELLBOX_BOXINIT_H
#define CELLBOX_BOXINIT_H

#include <stdint.h>
#include <stddef.h>
#include <sys/types.h>

/* The box part's flags */
#define BOX_SHARE_NET 1u
#define BOX_ROOTLESS 2u   /* a user namespace: no setgroups; stdio opened without capabilities */
#define BOX_WARM 4u       /* more runs will follow: each in a run init of its own */
#define BOX_INHERIT_FDS 8u
#define BOX_FOR_USER 16u /* root serves an ordinary user: bind sources are opened as them */

/* A run part's flags */
#define RUN_TTY_HACK 1u
#define RUN_STDERR_TO_STDOUT 2u
#define RUN_OWN_USERNS 4u /* the program in a user namespace of its own (creds.c) */

#define MSG_BOX 1u
#define MSG_RUN 2u
#define MAX_PASSED_FDS 64

/* Mount steps of the box part, in order (mounts.c) */
enum mount_op {
    OP_BIND = 1,     /* source (host) on inside; flags AS_FILE, RECURSIVE; attrs MOUNT_ATTR_* */
    OP_FS = 2,       /* mount(source, inside, fstype, attrs as MS_* flags, data); RENEW */
    OP_MASK = 3,     /* hide inside (a fresh proc/sysfs file or directory), if it exists */
    OP_READONLY = 4, /* bind inside on itself read-only, if it is a directory */
    OP_DEVNODE = 5,  /* a character device inside (dev), else the host's source bound there */
    OP_SYMLINK = 6,  /* source (the link's target) at inside; an existing one is left */
    OP_MKDIR = 7,
    OP_SETATTR = 8,  /* attrs on the mount at inside; flag RECURSIVE */
};
#define MOUNT_AS_FILE 1u
#define MOUNT_RECURSIVE 2u
#define MOUNT_RENEW 4u /* each run init of a warm box mounts it (proc, /dev/shm, ...): mounts.c */

struct mount_step {
    uint32_t op, flags;
    uint64_t attrs, dev;
    const char *source, *inside, *fstype, *data;
};

struct box {
    unsigned char *buf; /* the strings below point into it */
    uint32_t flags, uid, gid, outside_uid, outside_gid, last_cap;
    int status_fd, lifeline_fd;
    const char *root, *hostname;
    uint32_t n_mounts;
    struct mount_step *mounts;
    uint32_t user_uid, user_gid, n_user_groups; /* BOX_FOR_USER: whom root serves */
    gid_t *user_groups;
};

struct rlim {
    uint32_t resource, has_value;
    uint64_t value;
    const char *name;
};

struct blob {
    uint32_t size;
    const unsigned char *data;
};

struct run {
    const struct box *box;
    unsigned char *buf;
    uint32_t uid, gid, last_cap, flags;
    int status_fd, pipe_fd[3], cgroup_fd;
    const char *chdir, *path[3];
    uint32_t n_rlimits, n_join, n_filters;
    struct rlim *rlimits;
    int *join;
    struct blob *filters;
    char **argv, **env;
};

/* report.c */
extern int status_fd;
extern const char *step;
void send_line(const char *line, size_t len);
void fail(const char *fmt, ...) __attribute__((noreturn, format(printf, 1, 2)));
void fail_errno(void) __attribute__((noreturn));
void cloexec(int fd);
double monotonic(void);

/* plan.c */
int next_message(int sock, uint32_t *size, int *fds, int *n_fds);
void read_box(int sock, uint32_t size, const int *fds, int n_fds, struct box *b);
void read_run(int sock, uint32_t size, const int *fds, int n_fds, const struct box *b,
              struct run *q);

/* mounts.c */
void build_root(const struct box *b);
void per_run_mounts(const struct box *b);

/* net.c */
void finish_namespaces(const struct box *b);

/* creds.c */
void enter_user_namespace(const struct box *b);
void own_user_namespace(const struct run *q);
void drop_bounding_set(uint32_t last_cap);
void drop_capabilities(const struct run *q);
void become_box_user(const struct run *q);
void fresh_keyrings(void);
void check_unprivileged(void);
void set_no_new_privs(void);
void set_rlimits(const struct run *q);
void rootless_effective_caps(int on);

/* stdio.c */
void redirect_stdio(const struct run *q);
void leave_terminal(const struct run *q);

/* cgroup.c */
pid_t fork_program(const struct run *q);
void join_cgroups(const struct run *q);

/* seccomp.c */
void load_seccomp(const struct run *q);

/* warm.c */
void serve(const struct box *b, int sock) __attribute__((noreturn));
void program(const struct run *q) __attribute__((noreturn));

#endif
