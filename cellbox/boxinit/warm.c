/* The box init's run loop: one run per request until the keeper closes the socket. A fresh
 * box's keeper sends one request and closes it at once, so its init exits after the run
 * (and the kernel kills what is left of the box's pid namespace); a warm box's init makes
 * the next run's namespaces right after each run, off the next request's path. */
#define _GNU_SOURCE
#include <errno.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include "boxinit.h"

/* Fork the program, report its start, reap until it ends, report its end. */
static void run(const struct run *q) {
    step = q->cgroup_fd >= 0 ? "forking the program into its cgroup" : "forking the program";
    double started = monotonic();
    pid_t pid = fork_program(q);
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

/* True when the keeper has closed its end and sent nothing more: the box's last run. */
static int last_run(int sock) {
    struct pollfd p = {sock, POLLIN, 0};
    char c;
    return poll(&p, 1, 0) == 1
           && (p.revents & POLLHUP || recv(sock, &c, 1, MSG_PEEK | MSG_DONTWAIT) == 0);
}

/* After a warm box's run: nothing of it may live on (pid 1's kill(-1) reaches every other
 * process of the box's pid namespace, and only those); then the next run's namespaces: no
 * SysV IPC object, message queue, socket or route of the last run survives (new IPC and
 * network namespaces; the network one is kept if the run left it untouched), the hostname
 * is ours again, and /dev/shm is empty. */
static void end_run(const struct run *q) {
    const struct box *b = q->box;
    step = "killing what the run left";
    if (kill(-1, SIGKILL) < 0 && errno != ESRCH)
        fail_errno();
    while (waitpid(-1, NULL, 0) > 0 || errno == EINTR)
        ;
    if (errno != ECHILD)
        fail_errno();
    int keep_net = net_untouched(q);
    step = "giving the run fresh IPC and network namespaces";
    if (unshare(CLONE_NEWIPC | (b->flags & BOX_SHARE_NET || keep_net ? 0 : CLONE_NEWNET)) < 0)
        fail_errno();
    step = "renewing the box's tmpfs mounts";
    renew_tmpfs(b);
    finish_namespaces(b);
    if (!(b->flags & BOX_SHARE_NET) && !keep_net)
        remember_fresh_net();
}

void serve(const struct box *b, int sock) {
    for (;;) {
        step = "reading the run's request";
        uint32_t size;
        int fds[MAX_PASSED_FDS], n_fds;
        if (!next_message(sock, &size, fds, &n_fds))
            _exit(0);
        struct run q;
        read_run(sock, size, fds, n_fds, b, &q); /* (its fds came close-on-exec) */
        run(&q);
        for (uint32_t i = 0; i < q.n_join; i++)
            close(q.join[i]);
        if (q.cgroup_fd >= 0)
            close(q.cgroup_fd);
        close(q.status_fd);
        status_fd = -1; /* the keeper has the result: what fails from here ends the box */
        if (last_run(sock))
            _exit(0);
        end_run(&q);
        free_run(&q);
    }
}
