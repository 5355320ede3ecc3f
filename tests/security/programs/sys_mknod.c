/* Device nodes: make a block device for the first disk and a char device for /dev/mem in the
 * box's writable directories (removed again if made), and open the host's disks by their usual
 * names, read-only. */
#include "sys_common.h"
#include <fcntl.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>

static void try_mknod(const char *label, const char *path, mode_t mode, dev_t dev) {
    long ret = mknod(path, mode, dev);
    report(label, ret);
    if (ret == 0) unlink(path);
}

int main(void) {
    try_mknod("mknod_disk_tmp", "/tmp/cellbox-sda", S_IFBLK | 0600, makedev(8, 0));
    try_mknod("mknod_mem_box", "/box/cellbox-mem", S_IFCHR | 0600, makedev(1, 1));
    try_mknod("mknod_shm", "/dev/shm/cellbox-kmsg", S_IFCHR | 0600, makedev(1, 11));
    report("open_sda", open("/dev/sda", O_RDONLY));
    report("open_vda", open("/dev/vda", O_RDONLY));
    report("open_mem", open("/dev/mem", O_RDONLY));
    report("open_tty", open("/dev/tty", O_RDWR));
    report("open_console", open("/dev/console", O_RDWR));
    return 0;
}
