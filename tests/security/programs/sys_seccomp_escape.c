/* Loosening the filter from inside: stack an allow-everything filter, stack a user-notification
 * filter for mount (a supervisor could then answer "done"), try to turn seccomp off, then
 * retry denied calls. Stacked filters only add restrictions (ERRNO outranks USER_NOTIF and
 * ALLOW), so every denied call must still fail at once. */
#include "sys_common.h"
#include <linux/filter.h>
#include <linux/seccomp.h>
#include <stddef.h>
#include <sys/mount.h>
#include <sys/prctl.h>
#include <sys/ptrace.h>

int main(void) {
    struct sock_filter allow_all[] = {BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW)};
    struct sock_fprog prog = {1, allow_all};
    report("stack_allow_all", syscall(SYS_seccomp, SECCOMP_SET_MODE_FILTER,
                                      SECCOMP_FILTER_FLAG_TSYNC, &prog));
    struct sock_filter notify_mount[] = {
        BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, nr)),
        BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, SYS_mount, 0, 1),
        BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_USER_NOTIF),
        BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW),
    };
    struct sock_fprog notify = {4, notify_mount};
    report("stack_user_notif", syscall(SYS_seccomp, SECCOMP_SET_MODE_FILTER,
                                       SECCOMP_FILTER_FLAG_NEW_LISTENER, &notify));
    report("disable", prctl(PR_SET_SECCOMP, SECCOMP_MODE_DISABLED, 0, 0, 0));
    report("get_filter", ptrace(PTRACE_SECCOMP_GET_FILTER, getpid(), 0, NULL));
    report("mount_after", mount("cellbox-hostile", "/cellbox-no-such-target", "tmpfs", 0, NULL));
    report("ptrace_after", ptrace(PTRACE_TRACEME, 0, 0, 0));
    report("unshare_after", syscall(SYS_unshare, 0x10000000 /* CLONE_NEWUSER */));
    return 0;
}
