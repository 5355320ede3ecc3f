/* Classic container escapes through /proc: core_pattern (a "|program" there runs as root on
 * the host at the next crash), modprobe, a lower OOM score for ourselves, kernel messages.
 * Each write puts back the value just read (or an invalid one), so that even an unfiltered,
 * unprivileged run changes nothing. */
#include "sys_common.h"
#include <fcntl.h>

static void rewrite(const char *label, const char *path) {
    char value[256] = "";
    int fd = open(path, O_RDONLY);
    ssize_t n = fd >= 0 ? read(fd, value, sizeof value - 1) : -1;
    if (fd >= 0) close(fd);
    value[n > 0 ? n : 0] = 0;
    fd = open(path, O_WRONLY);
    report(label, fd < 0 ? -1 : (write(fd, value, strlen(value)) < 0 ? -1 : 0));
    if (fd >= 0) close(fd);
}

int main(void) {
    rewrite("core_pattern", "/proc/sys/kernel/core_pattern");
    rewrite("modprobe", "/proc/sys/kernel/modprobe");
    rewrite("hostname_sysctl", "/proc/sys/kernel/hostname");
    int fd = open("/proc/self/oom_score_adj", O_WRONLY);
    report("oom_score_adj_lower", fd < 0 ? -1 : (write(fd, "-1000", 5) < 0 ? -1 : 0));
    report("open_kmsg", open("/proc/kmsg", O_RDONLY));
    report("open_kcore", open("/proc/kcore", O_RDONLY));
    report("open_keys", open("/proc/keys", O_RDONLY));
    return 0;
}
