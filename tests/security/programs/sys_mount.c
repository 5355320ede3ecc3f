/* Mounts and root changes: a tmpfs, a bind of /, a remount, an unmount, pivot_root, chroot,
 * the new mount API. Targets do not exist: for most of these calls an unfiltered kernel looks
 * the path up before it checks privileges and answers ENOENT (harmless even as root), so EPERM
 * means the filter answered. The test also checks the box's and the host's mount tables. */
#define NOWHERE "/cellbox-no-such-target"
#include "sys_common.h"
#include <sys/mount.h>

int main(void) {
    report("mount", mount("cellbox-hostile", NOWHERE, "tmpfs", 0, NULL));
    report("bind", mount("/", NOWHERE, NULL, MS_BIND | MS_REC, NULL));
    report("remount", mount(NULL, NOWHERE, NULL, MS_REMOUNT | MS_BIND, NULL));
    report("umount2", umount2(NOWHERE, MNT_DETACH));
    report("pivot_root", syscall(SYS_pivot_root, NOWHERE, NOWHERE));
    report("chroot", chroot(NOWHERE));
    report("fsopen", syscall(SYS_fsopen, "tmpfs", 0));
    report("open_tree", syscall(SYS_open_tree, -100, NOWHERE, 1 /* OPEN_TREE_CLONE */));
    report("mount_setattr", syscall(SYS_mount_setattr, -100, NOWHERE, 0, NULL, 0));
    FILE *m = fopen("/proc/self/mounts", "r");
    char line[1024];
    int seen = 0;
    while (m && fgets(line, sizeof line, m))
        seen |= strstr(line, "cellbox-hostile") != NULL;
    printf("hostile_mount_visible=%s\n", seen ? "yes" : "no");
    return 0;
}
