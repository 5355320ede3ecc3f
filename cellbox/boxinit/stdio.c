/* The program's stdio and terminal session. */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <signal.h>
#include <sys/fsuid.h>
#include <sys/stat.h>
#include <termios.h>
#include <unistd.h>

#include "boxinit.h"

/* A FIFO as stdio (CMS's Communication task binds a directory of FIFOs into the box): only
 * where the program cannot have planted it, a directory the box user may not write; opened
 * blocking, as isolate does, so that the run's wall clock bounds the wait for the other end.
 * (Called with the box user's fs ids: faccessat's AT_EACCESS checks with those.) */
static int open_fifo(const char *path, int flags) {
    char real[PATH_MAX], dir[PATH_MAX];
    if (!realpath(path, real))
        fail_errno();
    snprintf(dir, sizeof dir, "%s", real);
    char *slash = strrchr(dir, '/');
    slash[slash == dir] = '\0';
    if (faccessat(AT_FDCWD, dir, W_OK, AT_EACCESS) == 0)
        fail("%s is a FIFO in a directory the box may write: a FIFO as stdio must come from "
             "a directory the box user cannot write (bound in with --dir)", path);
    int fd = open(real, flags & ~O_NONBLOCK, 0666);
    if (fd < 0)
        fail_errno();
    return fd;
}

static int open_stdio(const char *path, int write_mode) {
    int flags = O_CLOEXEC | O_NOCTTY | O_NONBLOCK;
    flags |= write_mode ? O_WRONLY | O_CREAT | O_TRUNC : O_RDONLY;
    struct stat named;
    if (stat(path, &named) == 0 && S_ISFIFO(named.st_mode))
        return open_fifo(path, flags);
    int fd = open(path, flags, 0666);
    if (fd < 0)
        fail_errno();
    struct stat st;
    if (fstat(fd, &st) < 0)
        fail_errno();
    if (!S_ISREG(st.st_mode) && !S_ISCHR(st.st_mode))
        fail("%s is not a regular file", path);
    if (fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) & ~O_NONBLOCK) < 0)
        fail_errno();
    return fd;
}

/* Open the stdio files and enter the working directory with the box user's permissions
 * (fs ids, no supplementary groups: the caller's, e.g. group 0 under sudo, would grant the
 * box user their access), then become root again for the steps that need capabilities.
 * Rootless: see creds.c. */
void redirect_stdio(const struct run *q) {
    int rootless = q->box->flags & BOX_ROOTLESS;
    if (rootless) {
        rootless_effective_caps(0);
    } else {
        if (setgroups(0, NULL) < 0)
            fail_errno();
        setfsgid(q->gid);
        setfsuid(q->uid);
    }
    if (chdir(q->chdir) < 0)
        fail_errno();
    int fd[3];
    for (int i = 0; i < 3; i++)
        fd[i] = q->pipe_fd[i] >= 0 ? q->pipe_fd[i]
                : q->path[i][0] ? open_stdio(q->path[i], i > 0) : -1;
    if (rootless) {
        rootless_effective_caps(1);
    } else {
        setfsuid(0);
        setfsgid(0);
    }
    for (int i = 0; i < 3; i++)
        if (fd[i] >= 0 && dup2(fd[i], i) < 0)
            fail_errno();
    if ((q->flags & RUN_STDERR_TO_STDOUT) && dup2(1, 2) < 0)
        fail_errno();
}

void leave_terminal(const struct run *q) {
    if (!(q->flags & RUN_TTY_HACK)) {
        if (setsid() < 0) /* a new session: no controlling terminal */
            fail_errno();
        return;
    }
    /* --tty-hack: own process group, the terminal's foreground group while it runs */
    if (setpgid(0, 0) < 0)
        fail_errno();
    for (int fd = 0; fd < 3; fd++) {
        if (!isatty(fd))
            continue;
        /* tcsetpgrp from a background group raises SIGTTOU, which would stop us */
        signal(SIGTTOU, SIG_IGN);
        if (tcsetpgrp(fd, getpgrp()) < 0)
            fail_errno();
        signal(SIGTTOU, SIG_DFL);
        return;
    }
}
