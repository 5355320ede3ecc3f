/* Serving runs. A fresh box's init serves its one run itself (its namespaces are new) and
 * exits. A warm box's init never runs a program: each run gets a run init of its own, cloned
 * into new pid, mount, IPC, UTS and network namespaces (network: unless the box shares the
 * host's) and prepared ahead of time, off the run's path: the next run's init is made as soon
 * as the current one has taken its request, and is let read the socket once every process of
 * the current run is dead. The program sees its run init as pid 1, and nothing of the box
 * init: whatever a program does to its pid 1 (in rootless mode they share a uid: prlimit,
 * setpriority, affinity, I/O class) ends with its run. */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include "boxinit.h"

/* Fork the program, report its start, reap until it ends, report its end. */
static void run(const struct run *q) {
    step = q->cgroup_fd >= 0 ? "forking the program into its cgroup" : "forking the program";
    double started = monotonic();
    /* vfork where it can: the program borrows this memory until its execve (this process only
     * waits meanwhile), so no page table is copied and neither side takes copy-on-write
     * faults. It must be called here, as the child never returns from this function. Not into
     * a v2 cgroup (the clone3 of fork_program would return on this stack in the child), nor
     * where the program makes a user namespace of its own (unshare refuses a shared mm). */
    pid_t pid = q->cgroup_fd < 0 && !(q->flags & RUN_OWN_USERNS) ? vfork() : fork_program(q);
    if (pid < 0)
        fail_errno();
    if (pid == 0)
        program(q);
    /* The wall clock limit counts from here, not from the launch: building the root is the
     * sandbox's time, and the reported wall time starts here too. */
    char line[256];
    send_line(line, (size_t)snprintf(line, sizeof line,
                                     "{\"kind\": \"started\", \"at\": %.9f}\n", started));
    for (int i = 0; i < 3; i++)
        if (q->pipe_fd[i] >= 0)
            close(q->pipe_fd[i]);
    int status;
    struct rusage ru;
    for (;;) { /* reap orphans until the program itself ends */
        pid_t got = wait4(-1, &status, 0, &ru);
        if (got == pid)
            break;
        if (got < 0 && errno != EINTR)
            fail_errno();
    }
    send_line(line, (size_t)snprintf(
        line, sizeof line,
        "{\"kind\": \"exit\", \"status\": %d, \"wall\": %.9f, \"maxrss\": %lld, "
        "\"nvcsw\": %ld, \"nivcsw\": %ld, \"cpu\": %.6f}\n",
        status, monotonic() - started, (long long)ru.ru_maxrss * 1024, ru.ru_nvcsw,
        ru.ru_nivcsw,
        (double)(ru.ru_utime.tv_sec + ru.ru_stime.tv_sec)
            + (double)(ru.ru_utime.tv_usec + ru.ru_stime.tv_usec) / 1e6));
}

/* Read one request and serve it; then nothing of the run may live on (pid 1's kill(-1)
 * reaches every other process of its pid namespace, and only those) before the status fd
 * closes: the keeper's end of file means the run is over. ``events``: a run init's pipe to
 * the box init ('t' once the request is taken), or -1. Returns 0 if the keeper hung up. */
static int serve_one(const struct box *b, int sock, int events) {
    step = "reading the run's request";
    uint32_t size;
    int fds[MAX_PASSED_FDS], n_fds;
    if (!next_message(sock, &size, fds, &n_fds))
        return 0;
    struct run q;
    read_run(sock, size, fds, n_fds, b, &q); /* (its fds came close-on-exec) */
    if (events >= 0 && write(events, "t", 1) != 1)
        fail_errno();
    run(&q);
    step = "killing what the run left";
    if (kill(-1, SIGKILL) < 0 && errno != ESRCH)
        fail_errno();
    while (waitpid(-1, NULL, 0) > 0 || errno == EINTR)
        ;
    if (errno != ECHILD)
        fail_errno();
    return 1;
}

struct run_init {
    pid_t pid;
    int events, go; /* the box init's ends: what the run init tells, and its turn */
};

static int ready_fd = -1; /* the box's status fd until the box is ready (the first run init) */

/* A run init's life: its namespaces prepared, its turn awaited, one run served. Until its
 * request comes, its failures go to the box init, which passes them on. */
static void __attribute__((noreturn)) run_init(const struct box *b, int sock, int events,
                                               int go) {
    status_fd = events;
    step = "mounting the run's proc and /dev/shm";
    per_run_mounts(b);
    finish_namespaces(b);
    char c;
    if (write(events, "r", 1) != 1 || read(go, &c, 1) != 1)
        _exit(0); /* the box init is gone */
    close(go);
    if (serve_one(b, sock, events) && write(events, "d", 1) != 1)
        _exit(1);
    _exit(0);
}

/* A new run init, or pid -1 (errno set) if the kernel refused one. */
static struct run_init start_run_init(const struct box *b, int sock,
                                      const struct run_init *other) {
    struct run_init r = {-1, -1, -1};
    int ev[2], go[2];
    if (pipe2(ev, O_CLOEXEC) < 0)
        return r;
    if (pipe2(go, O_CLOEXEC) < 0) {
        close(ev[0]);
        close(ev[1]);
        return r;
    }
    long flags = CLONE_NEWPID | CLONE_NEWNS | CLONE_NEWIPC | CLONE_NEWUTS | SIGCHLD
                 | (b->flags & BOX_SHARE_NET ? 0 : CLONE_NEWNET);
    long pid = syscall(SYS_clone, flags, 0, 0, 0, 0);
    if (pid == 0) {
        close(ev[0]);
        close(go[1]);
        if (ready_fd >= 0)
            close(ready_fd); /* else the keeper's "ready" would wait for this run's end */
        if (other) {
            close(other->events);
            close(other->go);
        }
        run_init(b, sock, ev[1], go[0]);
    }
    int err = errno;
    close(ev[1]);
    close(go[0]);
    if (pid > 0)
        return (struct run_init){(pid_t)pid, ev[0], go[1]};
    close(ev[0]);
    close(go[1]);
    errno = err;
    return r;
}

/* The next event of a run init: 'r' ready, 't' its request taken, 'd' its run over (every
 * process of it dead), 'e' a failure (its report in ``line``), 0 at its end. */
static char next_event(int fd, char *line, size_t cap) {
    ssize_t n;
    char c;
    do
        n = read(fd, &c, 1);
    while (n < 0 && errno == EINTR);
    if (n != 1)
        return 0;
    if (c != '{')
        return c;
    size_t len = 0;
    line[len++] = c;
    while (len + 1 < cap && read(fd, line + len, 1) == 1 && line[len++] != '\n')
        ;
    line[len] = '\0';
    return 'e';
}

static void reap(struct run_init *r) {
    close(r->events);
    close(r->go);
    while (waitpid(r->pid, NULL, 0) < 0 && errno == EINTR)
        ;
}

/* A run init that could not be made or prepared: the report (``line``, else the reason)
 * goes where the keeper waits for the run (the box's status fd if the box is not ready yet,
 * else the next request's), and the box ends (the pool starts a new one). */
static void __attribute__((noreturn)) prepare_failed(int sock, const char *line,
                                                     const char *reason) {
    uint32_t size;
    int fds[MAX_PASSED_FDS], n_fds;
    step = "preparing a run's namespaces";
    if (ready_fd < 0 && !next_message(sock, &size, fds, &n_fds))
        _exit(0);
    if (line)
        send_line(line, strlen(line));
    else
        fail("%s", reason);
    _exit(127);
}

/* A run init ready for its run (its report of what failed, else). */
static struct run_init ready_run_init(const struct box *b, int sock, struct run_init r) {
    char line[4096];
    if (r.pid < 0) /* the one made during the last run failed: once more, alone */
        r = start_run_init(b, sock, NULL);
    if (r.pid < 0)
        prepare_failed(sock, NULL, strerror(errno));
    char ev = next_event(r.events, line, sizeof line);
    if (ev != 'r')
        prepare_failed(sock, ev == 'e' ? line : NULL, "the run's init ended before it was ready");
    return r;
}

static void __attribute__((noreturn)) serve_warm(const struct box *b, int sock) {
    char line[4096];
    ready_fd = b->status_fd;
    struct run_init cur = ready_run_init(b, sock, start_run_init(b, sock, NULL));
    close(ready_fd); /* the keeper reads it up to EOF: the box is ready */
    ready_fd = status_fd = -1;
    for (;;) {
        if (write(cur.go, "g", 1) != 1 || next_event(cur.events, line, sizeof line) != 't') {
            reap(&cur); /* the keeper hung up */
            _exit(0);
        }
        struct run_init next = start_run_init(b, sock, &cur);
        next_event(cur.events, line, sizeof line); /* 'd', or its end: all of the run is dead */
        reap(&cur);
        cur = ready_run_init(b, sock, next);
    }
}

void serve(const struct box *b, int sock) {
    if (b->flags & BOX_WARM)
        serve_warm(b, sock);
    close(b->status_fd); /* the keeper reads it up to EOF: the box is ready */
    status_fd = -1;
    serve_one(b, sock, -1);
    _exit(0);
}
