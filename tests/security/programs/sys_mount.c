/* Mounts and root changes: a tmpfs over /tmp, a bind of /, unmounting /proc, pivot_root,
 * chroot, the new mount API. The test checks the box's and the host's mount tables too. */
#include "sys_common.h"
#include <sys/mount.h>

int main(void) {
    report("mount", mount("cellbox-hostile", "/tmp", "tmpfs", 0, NULL));
    report("bind", mount("/", "/tmp", NULL, MS_BIND | MS_REC, NULL));
    report("remount", mount(NULL, "/usr", NULL, MS_REMOUNT | MS_BIND, NULL));
    report("umount2", umount2("/proc", MNT_DETACH));
    report("pivot_root", syscall(SYS_pivot_root, "/tmp", "/tmp"));
    report("chroot", chroot("/tmp"));
    report("fsopen", syscall(SYS_fsopen, "tmpfs", 0));
    report("open_tree", syscall(SYS_open_tree, -100, "/usr", 1 /* OPEN_TREE_CLONE */));
    report("mount_setattr", syscall(SYS_mount_setattr, -100, "/usr", 0, NULL, 0));
    FILE *m = fopen("/proc/self/mounts", "r");
    char line[1024];
    int seen = 0;
    while (m && fgets(line, sizeof line, m))
        seen |= strstr(line, "cellbox-hostile") != NULL || strncmp(line, "none /tmp", 9) == 0;
    printf("hostile_mount_visible=%s\n", seen ? "yes" : "no");
    return 0;
}
