/* Installed setuid root by the test: prints its effective uid, then appends to argv[1] (a
 * root-only canary). Inside a box, nosuid and no_new_privs must leave it unprivileged. */
#include <fcntl.h>
#include <stdio.h>
#include <unistd.h>

int main(int argc, char **argv) {
    printf("euid %d\n", (int)geteuid());
    if (argc < 2) return 2;
    setuid(0);
    int fd = open(argv[1], O_WRONLY | O_APPEND);
    if (fd < 0) { perror("open"); return 1; }
    printf("write %zd\n", write(fd, "pwned\n", 6));
    return 0;
}
