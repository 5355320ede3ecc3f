/* Device nodes: make a block device for the first disk and a char device for /dev/mem in the
 * box's writable directories, and open the host's disks by their usual names. */
#include "sys_common.h"
#include <fcntl.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>

int main(void) {
    report("mknod_disk_tmp", mknod("/tmp/cellbox-sda", S_IFBLK | 0600, makedev(8, 0)));
    report("mknod_mem_box", mknod("/box/cellbox-mem", S_IFCHR | 0600, makedev(1, 1)));
    report("mknod_shm", mknod("/dev/shm/cellbox-kmsg", S_IFCHR | 0600, makedev(1, 11)));
    report("open_sda", open("/dev/sda", O_RDONLY));
    report("open_vda", open("/dev/vda", O_RDONLY));
    report("open_mem", open("/dev/mem", O_RDONLY));
    report("open_tty", open("/dev/tty", O_RDWR));
    report("open_console", open("/dev/console", O_RDWR));
    return 0;
}
