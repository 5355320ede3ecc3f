/* Raw disk access: make a block device node for the host disk (argv[1] major, argv[2]
 * minor) at each path in argv[3..], also try the usual disk names, and read the first
 * sector of whatever opens. Prints what it managed. Harmless: reads only. */
#define _GNU_SOURCE
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <unistd.h>

static void try_read(const char *path) {
    char buf[512];
    int fd = open(path, O_RDONLY);
    if (fd < 0) return;
    printf("%s: OPENED, read %zd bytes\n", path, read(fd, buf, sizeof buf));
    close(fd);
}

int main(int argc, char **argv) {
    if (argc < 4) return 2;
    dev_t dev = makedev(atoi(argv[1]), atoi(argv[2]));
    const char *known[] = {"/dev/vda", "/dev/sda", "/dev/nvme0n1", "/dev/xvda"};
    for (int i = 3; i < argc; i++) {
        int r = mknod(argv[i], S_IFBLK | 0666, dev);
        printf("mknod %s: %d\n", argv[i], r);
        try_read(argv[i]);
        r = mknod(argv[i], S_IFCHR | 0666, makedev(1, 1)); /* /dev/mem */
        printf("mknod mem %s: %d\n", argv[i], r);
    }
    for (unsigned i = 0; i < sizeof known / sizeof *known; i++) try_read(known[i]);
    return 0;
}
