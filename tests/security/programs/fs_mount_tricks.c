/* Mount tricks to reach host files: mount proc/sysfs/tmpfs, bind "/" elsewhere, detach the
 * box's mounts to see what lies beneath, pivot_root; then the same again after unshare()
 * of a user and mount namespace. After each step, try to read argv[1] (a host canary) at its
 * own path and under every mount made. Harmless: mounts only inside the box's namespaces. */
#define _GNU_SOURCE
#include <fcntl.h>
#include <sched.h>
#include <stdio.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

static const char *target;

static void look(const char *step) {
    char path[512], buf[256];
    const char *prefixes[] = {"", "/tmp/bind", "/tmp/proc/1/root", "/tmp/proc/self/root"};
    for (unsigned i = 0; i < sizeof prefixes / sizeof *prefixes; i++) {
        snprintf(path, sizeof path, "%s%s", prefixes[i], target);
        int fd = open(path, O_RDONLY);
        if (fd < 0) continue;
        ssize_t n = read(fd, buf, sizeof buf - 1);
        close(fd);
        buf[n > 0 ? n : 0] = 0;
        printf("%s: READ %s: %s\n", step, path, buf);
    }
}

static void attempts(const char *phase) {
    char step[128];
    mkdir("/tmp/proc", 0755); mkdir("/tmp/bind", 0755); mkdir("/tmp/sys", 0755);
#define TRY(name, call) do { int r = (call); snprintf(step, sizeof step, "%s %s=%d", phase, name, r); \
        printf("%s\n", step); look(step); } while (0)
    TRY("mount proc", mount("proc", "/tmp/proc", "proc", 0, NULL));
    TRY("mount sysfs", mount("sysfs", "/tmp/sys", "sysfs", 0, NULL));
    TRY("mount tmpfs", mount("tmpfs", "/tmp/bind", "tmpfs", 0, NULL));
    TRY("bind /", mount("/", "/tmp/bind", NULL, MS_BIND | MS_REC, NULL));
    TRY("remount / rw", mount(NULL, "/", NULL, MS_REMOUNT | MS_BIND, NULL));
    TRY("umount /proc", umount2("/proc", MNT_DETACH));
    TRY("umount /usr", umount2("/usr", MNT_DETACH));
    TRY("pivot_root", (int)syscall(SYS_pivot_root, ".", "."));
    TRY("umount /", umount2("/", MNT_DETACH));
}

int main(int argc, char **argv) {
    target = argc > 1 ? argv[1] : "/etc/hostname";
    attempts("box");
    if (unshare(CLONE_NEWUSER | CLONE_NEWNS) == 0) {
        printf("unshare: user and mount namespace made\n");
        attempts("userns");
    }
    look("end");
    return 0;
}
