/* forker N: try to fork N children (at most 50). Each child waits until the parent has
 * finished forking (EOF on a pipe; at most 10 s) and exits, so every child is alive while
 * the parent forks. Prints "forked=F failed=E" and exits 0 after reaping every child. */
#include <stdio.h>
#include <stdlib.h>
#include <sys/wait.h>
#include <unistd.h>

int main(int argc, char **argv) {
    if (argc != 2) return 2;
    int n = atoi(argv[1]);
    if (n > 50) n = 50;
    int fds[2];
    if (pipe(fds) < 0) return 3;
    int forked = 0, failed = 0;
    for (int i = 0; i < n; i++) {
        pid_t pid = fork();
        if (pid == 0) {
            char c;
            alarm(10);
            close(fds[1]);
            while (read(fds[0], &c, 1) > 0) {
            }
            _exit(0);
        }
        if (pid < 0)
            failed++;
        else
            forked++;
    }
    close(fds[1]);
    while (wait(NULL) > 0) {
    }
    printf("forked=%d failed=%d\n", forked, failed);
    return 0;
}
