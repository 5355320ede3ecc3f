/* The classic judge attacks; the first word of stdin picks one. */
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/select.h>
#include <sys/stat.h>
#include <unistd.h>

static void try_write(const char *path) {
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0755);
    if (fd >= 0 && write(fd, "#!/bin/sh\necho pwned\n", 21) == 21) printf("WROTE %s\n", path);
    else puts("denied");
    if (fd >= 0) close(fd);
}

static void try_exec(const char *path) {
    char *argv[] = {(char *)path, NULL}, *envp[] = {NULL};
    execve(path, argv, envp);
    puts("denied");
}

int main(void) {
    char mode[32] = {0};
    if (scanf("%31s", mode) != 1) return 9;
    if (!strcmp(mode, "pause")) pause();
    else if (!strcmp(mode, "stop")) raise(SIGSTOP);
    else if (!strcmp(mode, "select")) select(0, NULL, NULL, NULL, NULL);
    else if (!strcmp(mode, "escape")) {
        const char *paths[] = {"/etc/cellbox-escape", "/usr/cellbox-escape", "/cellbox-escape",
                               "/bin/cellbox-escape", "/lib/cellbox-escape",
                               "/proc/cellbox-escape", "/box/../cellbox-escape"};
        for (unsigned i = 0; i < sizeof paths / sizeof *paths; i++) try_write(paths[i]);
    } else if (!strcmp(mode, "exec-output")) {
        fflush(stdout);
        try_write("/tmp/own");
        fflush(stdout);
        try_exec("/tmp/own");  /* /tmp is noexec in a judged run */
        fflush(stdout);
        try_exec("/proc/self/fd/1");  /* its stdout is a pipe to the host, not a file */
    } else if (!strcmp(mode, "fsize")) {
        int fd = open("big", O_WRONLY | O_CREAT, 0644);
        if (pwrite(fd, "x", 1, (off_t)2 << 30) == 1) puts("wrote at 2 GiB");
    }
    return 0;
}
