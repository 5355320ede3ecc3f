/* A daemon that tries to outlive the run: double fork, setsid, ignore every catchable
 * signal, then append a heartbeat to argv[1] every 20 ms for at most 30 s (capped). Also
 * writes its pid to every inherited fd and to any cgroup.procs it is given (argv[2..]), to
 * leave the box's cgroup. The first process exits once the first heartbeat is there
 * (proof that the daemon ran; waited for, since a loaded machine may take a while), or
 * after 10 s. */
#define _GNU_SOURCE
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

int main(int argc, char **argv) {
    if (argc < 2) return 2;
    if (fork() != 0) {
        struct stat st;
        for (int i = 0; i < 500 && (stat(argv[1], &st) != 0 || st.st_size == 0); i++)
            usleep(20000);
        return 0;
    }
    setsid();
    if (fork() != 0) return 0;
    for (int s = 1; s < 65; s++) signal(s, SIG_IGN);
    char pid[32];
    int n = snprintf(pid, sizeof pid, "%d\n", getpid());
    for (int fd = 3; fd < 1024; fd++) write(fd, pid, n);
    for (int i = 2; i < argc; i++) {
        int fd = open(argv[i], O_WRONLY);
        if (fd >= 0) write(fd, pid, n);
    }
    for (int i = 0; i < 1500; i++) {
        int fd = open(argv[1], O_WRONLY | O_APPEND | O_CREAT, 0644);
        if (fd >= 0) { write(fd, ".", 1); close(fd); }
        usleep(20000);
    }
    return 0;
}
