/* Signal host processes by their host pids (argv[1..]): kill, kill of the process group,
 * sigqueue, pidfd_send_signal, and SIGIO routed to them with F_SETOWN; with "-all" first,
 * also kill(-1). Every signal is SIGKILL aimed at a canary the test started. */
#define _GNU_SOURCE
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>

int main(int argc, char **argv) {
    int all = argc > 1 && !strcmp(argv[1], "-all");
    for (int i = 1 + all; i < argc; i++) {
        pid_t pid = atoi(argv[i]);
        union sigval v = {0};
        printf("kill %d: %d\n", pid, kill(pid, SIGKILL));
        printf("sigqueue %d: %d\n", pid, sigqueue(pid, SIGKILL, v));
        printf("kill pgrp %d: %d\n", pid, kill(-pid, SIGKILL));
        int pfd = (int)syscall(SYS_pidfd_open, pid, 0);
        printf("pidfd_open %d: %d\n", pid, pfd);
        if (pfd >= 0) printf("pidfd_send_signal: %ld\n", syscall(SYS_pidfd_send_signal, pfd, SIGKILL, NULL, 0));
        int p[2];
        if (pipe(p) == 0) {
            int r = fcntl(p[0], F_SETOWN, pid);
            fcntl(p[0], F_SETFL, O_ASYNC);
            fcntl(p[0], F_SETSIG, SIGKILL);
            printf("F_SETOWN %d: %d, write %zd\n", pid, r, write(p[1], "x", 1));
        }
    }
    if (all) printf("kill -1: %d\n", kill(-1, SIGKILL));
    return 0;
}
