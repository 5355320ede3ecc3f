/* Kernel attack surface: bpf, perf_event_open, userfaultfd, io_uring, and the calls Docker
 * refuses to containers (acct, syslog, iopl, ioperm, quotactl, modify_ldt, lookup_dcookie,
 * fanotify_init, mbind, uselib), and inotify and dnotify, which would tell a box what
 * another does with the files they share. Arguments are empty or invalid: harmless if allowed. */
#include "sys_common.h"
#include <fcntl.h>
#include <linux/bpf.h>
#include <linux/perf_event.h>

int main(void) {
    union bpf_attr attr;
    memset(&attr, 0, sizeof attr);
    report("bpf", syscall(SYS_bpf, BPF_MAP_CREATE, &attr, sizeof attr));
    struct perf_event_attr pe;
    memset(&pe, 0, sizeof pe);
    pe.size = sizeof pe;
    pe.type = PERF_TYPE_SOFTWARE;
    pe.config = PERF_COUNT_SW_CPU_CLOCK;
    pe.exclude_kernel = 1;
    report("perf_event_open", syscall(SYS_perf_event_open, &pe, 0, -1, -1, 0));
    report("userfaultfd", syscall(SYS_userfaultfd, 0));
    char params[120] = {0};
    report("io_uring_setup", syscall(SYS_io_uring_setup, 1, params));
    report("io_uring_enter", syscall(SYS_io_uring_enter, -1, 0, 0, 0, NULL, 0));
    report("io_uring_register", syscall(SYS_io_uring_register, -1, 0, NULL, 0));
    report("acct", syscall(SYS_acct, "/cellbox-no-such-dir/acct"));
    report("syslog", syscall(SYS_syslog, 10 /* SYSLOG_ACTION_SIZE_BUFFER */, NULL, 0));
    report("iopl", syscall(SYS_iopl, 0));
    report("ioperm", syscall(SYS_ioperm, 0x80, 1, 0));
    report("quotactl", syscall(SYS_quotactl, 0, NULL, 0, NULL));
    report("modify_ldt", syscall(SYS_modify_ldt, 0, NULL, 0));
    report("lookup_dcookie", syscall(SYS_lookup_dcookie, 0, NULL, 0));
    report("fanotify_init", syscall(SYS_fanotify_init, 0, 0));
    report("mbind", syscall(SYS_mbind, NULL, 0, 0, NULL, 0, 0));
    report("uselib", syscall(SYS_uselib, "/nonexistent"));
    report("inotify_init1", syscall(SYS_inotify_init1, 0));
    int dir = open("/usr", O_RDONLY | O_DIRECTORY);
    report("dnotify", fcntl(dir, F_NOTIFY, DN_ACCESS | DN_MULTISHOT));
    return 0;
}
