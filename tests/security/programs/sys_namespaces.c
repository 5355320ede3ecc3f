/* New namespaces, of every kind and by every route: unshare, setns, clone with namespace
 * flags (also with garbage in the flags' high bits) and clone3. */
#include "sys_common.h"
#include <fcntl.h>
#include <sched.h>
#include <signal.h>
#include <stdint.h>
#include <sys/wait.h>

static long clone_flags(unsigned long flags) {
    long pid = syscall(SYS_clone, flags | SIGCHLD, 0, 0, 0, 0);
    if (pid == 0)
        _exit(0); /* a child in a new namespace: leave at once */
    if (pid > 0)
        waitpid(pid, NULL, 0);
    return pid > 0 ? 0 : -1;
}

static void ns_links(char *out, size_t size) {
    static const char *kinds[] = {"user", "mnt", "pid", "net", "ipc", "uts", "cgroup"};
    char path[64], link[64];
    out[0] = 0;
    for (unsigned i = 0; i < 7; i++) {
        snprintf(path, sizeof path, "/proc/self/ns/%s", kinds[i]);
        ssize_t n = readlink(path, link, sizeof link - 1);
        link[n > 0 ? n : 0] = 0;
        strncat(out, link, size - strlen(out) - 1);
    }
}

int main(void) {
    char before[512], after[512];
    ns_links(before, sizeof before);
    static const struct { const char *name; int flag; } ns[] = {
        {"user", CLONE_NEWUSER}, {"mnt", CLONE_NEWNS}, {"pid", CLONE_NEWPID},
        {"net", CLONE_NEWNET}, {"ipc", CLONE_NEWIPC}, {"uts", CLONE_NEWUTS},
        {"cgroup", CLONE_NEWCGROUP},
    };
    char label[64];
    for (unsigned i = 0; i < sizeof ns / sizeof ns[0]; i++) {
        snprintf(label, sizeof label, "unshare_%s", ns[i].name);
        report(label, unshare(ns[i].flag));
        snprintf(label, sizeof label, "clone_%s", ns[i].name);
        report(label, clone_flags(ns[i].flag));
    }
    report("clone_user_highbits", clone_flags(0xffff000000000000UL | CLONE_NEWUSER));
    uint64_t args[11] = {CLONE_NEWUSER, 0, 0, 0, SIGCHLD};
    report("clone3", syscall(SYS_clone3, args, sizeof args));
    int fd = open("/proc/self/ns/net", O_RDONLY);
    report("setns", setns(fd, 0));
    report("plain_fork", clone_flags(0)); /* must still work: runtimes fork */
    ns_links(after, sizeof after);
    printf("namespaces_changed=%s\n", strcmp(before, after) ? "yes" : "no");
    return 0;
}
