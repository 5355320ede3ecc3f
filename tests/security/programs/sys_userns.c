/* Root inside a user namespace (the usual first step of container escapes): unshare a user
 * namespace and map uid 0 to our uid, or do it in a cloned child; then try to act as root
 * there (mount a tmpfs). Prints the uid_map the process ends with. */
#include "sys_common.h"
#include <fcntl.h>
#include <sched.h>
#include <signal.h>
#include <sys/mount.h>
#include <sys/wait.h>

static void write_file(const char *label, const char *path, const char *text) {
    int fd = open(path, O_WRONLY);
    report(label, fd < 0 ? -1 : (write(fd, text, strlen(text)) < 0 ? -1 : 0));
    if (fd >= 0) close(fd);
}

int main(void) {
    char map[64];
    snprintf(map, sizeof map, "0 %u 1\n", getuid());
    report("unshare_user", unshare(CLONE_NEWUSER));
    write_file("setgroups_deny", "/proc/self/setgroups", "deny");
    write_file("uid_map", "/proc/self/uid_map", map);
    report("mount_as_ns_root", mount("cellbox-hostile", "/cellbox-no-such-target", "tmpfs", 0,
                                      NULL));
    long pid = syscall(SYS_clone, CLONE_NEWUSER | CLONE_NEWNS | SIGCHLD, 0, 0, 0, 0);
    if (pid == 0)
        _exit(mount("cellbox-hostile", "/cellbox-no-such-target", "tmpfs", 0, NULL) == 0 ? 3 : 0);
    report("clone_newuser", pid);
    if (pid > 0) waitpid(pid, NULL, 0);
    FILE *f = fopen("/proc/self/uid_map", "r");
    unsigned inside = 0, outside = 0, count = 0;
    if (f && fscanf(f, "%u %u %u", &inside, &outside, &count) == 3)
        printf("uid_map_changed=%s\n", inside == 0 && outside == getuid() ? "yes" : "no");
    printf("uid=%u\n", getuid());
    return 0;
}
