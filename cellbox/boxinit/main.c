/* The box init's phases, each one ordered step list (boxinit.h has the overview):
 *
 *   launcher  (host namespaces): launch()
 *   box init  (pid 1 of the box): box_init(), then serve() (warm.c)
 *   run init  (a warm box's, pid 1 of one run's namespaces): warm.c
 *   program   (the box or run init's child): program(), ending in execve
 *
 * Usage: boxinit SOCKET_FD (the keeper starts it; cellbox/keeper.py).
 * pid 1 has no signal handlers: the kernel then drops every signal sent to it from inside.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <limits.h>
#include <linux/close_range.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "boxinit.h"

static void reset_signals(void) {
    sigset_t none;
    sigemptyset(&none);
    if (sigprocmask(SIG_SETMASK, &none, NULL) < 0)
        fail_errno();
    for (int sig = 1; sig < NSIG; sig++)
        if (sig != SIGKILL && sig != SIGSTOP)
            signal(sig, SIG_DFL); /* EINVAL for the libc-reserved ones: they stay default */
}

/* The launcher: the box's namespaces, and its init cloned into them as the keeper's own
 * child (CLONE_PARENT: the keeper reaps it, and it dies with the keeper). Returns in the
 * box init; the launcher tells the keeper the init's pid and exits. */
static void launch(const struct box *b, int sock) {
    if (b->flags & BOX_ROOTLESS) {
        step = "creating the box's user namespace";
        enter_user_namespace(b);
    }
    step = "creating the box's namespaces";
    /* A warm box's init runs no program: each run's init makes the run's network, IPC and UTS
     * namespaces (warm.c), so as root it makes none of its own, which would only hold kernel
     * memory. Rootless, it keeps them: there its user namespace must own the network and IPC
     * namespaces where it mounts sysfs or mqueue (mounts.c, per_run_mounts). */
    int runs_only = (b->flags & BOX_WARM) && !(b->flags & BOX_ROOTLESS);
    long flags = CLONE_PARENT | CLONE_NEWPID | CLONE_NEWNS
                 | (runs_only ? 0 : CLONE_NEWIPC | CLONE_NEWUTS)
                 | (runs_only || b->flags & BOX_SHARE_NET ? 0 : CLONE_NEWNET);
    long pid = syscall(SYS_clone, flags, 0, 0, 0, 0);
    if (pid < 0)
        fail_errno();
    if (pid > 0) {
        uint32_t p = (uint32_t)pid;
        _exit(write(sock, &p, 4) == 4 ? 0 : 1);
    }
}

/* pid 1 of the box, up to its first request. */
static void box_init(const struct box *b) {
    step = "arming the parent-death signal";
    if (prctl(PR_SET_PDEATHSIG, SIGKILL, 0, 0, 0) < 0)
        fail_errno();
    struct pollfd life = {b->lifeline_fd, POLLIN, 0};
    if (poll(&life, 1, 0) != 0)
        _exit(1); /* the keeper died before the death signal was armed */
    close(b->lifeline_fd);
    step = "hiding the box's init from the box";
    if (prctl(PR_SET_DUMPABLE, 0, 0, 0, 0) < 0) /* no one in the box may trace it */
        fail_errno();
    reset_signals(); /* the keeper's ignored signals (SIGPIPE, SIGXFSZ) survived the exec */
    if (!(b->flags & BOX_INHERIT_FDS)) {
        step = "closing the caller's files";
        if (syscall(SYS_close_range, 3, ~0U, CLOSE_RANGE_CLOEXEC) < 0)
            fail_errno();
    }
    umask(022);
    step = "building the box's root filesystem";
    build_root(b);
    if (!(b->flags & BOX_WARM)) /* (a warm box's runs each have their own: warm.c) */
        finish_namespaces(b);
    step = "dropping capabilities";
    drop_bounding_set(b->last_cap);
}

/* The program cannot be executed: as isolate, the error on the program's stderr and exit code
 * 127 (the keeper reports RE with the detail, not a sandbox failure). */
static void __attribute__((noreturn)) fail_exec(const char *file) {
    int err = errno;
    dprintf(2, "execve(\"%s\"): %s\n", file, strerror(err));
    char line[256];
    send_line(line, (size_t)snprintf(line, sizeof line, "{\"kind\": \"exec-error\", "
                                     "\"errno\": %d}\n", err));
    _exit(127);
}

/* execvpe with the request's PATH (glibc's looks at init's own environment and runs
 * ENOEXEC files with /bin/sh): the first error other than "not found" wins. */
static void __attribute__((noreturn)) exec_program(const struct run *q) {
    const char *file = q->argv[0];
    if (strchr(file, '/')) {
        execve(file, q->argv, q->env);
        fail_exec(file);
    }
    const char *path = "/bin:/usr/bin";
    for (char **e = q->env; *e; e++)
        if (strncmp(*e, "PATH=", 5) == 0)
            path = *e + 5;
    int saved = 0, last = ENOENT;
    char full[PATH_MAX];
    for (const char *dir = path;; dir = strchr(dir, ':') + 1) {
        size_t len = strcspn(dir, ":");
        if (len == 0)
            snprintf(full, sizeof full, "%s", file);
        else
            snprintf(full, sizeof full, "%.*s/%s", (int)len, dir, file);
        execve(full, q->argv, q->env);
        last = errno;
        if (!saved && errno != ENOENT && errno != ENOTDIR)
            saved = errno;
        if (dir[len] == '\0')
            break;
    }
    errno = saved ? saved : last;
    fail_exec(file);
}

/* The program's side, in the order of DESIGN.md ("One run"). */
void program(const struct run *q) {
    char what[64 + PATH_MAX];
    if (q->flags & RUN_OWN_USERNS) {
        step = "making the program's user namespace";
        own_user_namespace(q);
    }
    step = "opening stdin/stdout/stderr inside the box";
    redirect_stdio(q);
    step = "leaving the caller's terminal session";
    leave_terminal(q);
    step = "setting resource limits";
    set_rlimits(q);
    step = "dropping capabilities";
    drop_capabilities(q);
    snprintf(what, sizeof what, "switching to uid %u / gid %u", q->uid, q->gid);
    step = what;
    become_box_user(q);
    step = "emptying the box user's keyrings";
    fresh_keyrings();
    step = "checking that no capability is left";
    check_unprivileged();
    step = "setting no_new_privs";
    set_no_new_privs();
    /* (no signal reset: init reset its dispositions and mask at start and never changes
     * them, and fork keeps them) */
    step = "joining the box's cgroups";
    join_cgroups(q);
    step = "loading the seccomp filter"; /* last: from here on only execve and the report */
    load_seccomp(q);
    snprintf(what, sizeof what, "executing %s", q->argv[0]);
    step = what;
    exec_program(q);
}

static int to_fd(const char *s) {
    char *end;
    long v = strtol(s, &end, 10);
    if (*s == '\0' || *end != '\0' || v < 0 || v > INT_MAX)
        return -1;
    return (int)v;
}

int main(int argc, char **argv) {
    int sock = argc == 2 ? to_fd(argv[1]) : -1;
    if (sock < 0) {
        fprintf(stderr, "usage: %s SOCKET_FD (cellbox starts this program)\n", argv[0]);
        return 2;
    }
    cloexec(sock);
    step = "reading the box's plan";
    struct box b;
    uint32_t size;
    int fds[MAX_PASSED_FDS], n_fds;
    if (!next_message(sock, &size, fds, &n_fds))
        return 1;
    read_box(sock, size, fds, n_fds, &b);
    launch(&b, sock);
    box_init(&b);
    serve(&b, sock);
}
