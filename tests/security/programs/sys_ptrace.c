/* Other processes' memory: ptrace, process_vm_readv/writev, kcmp, pidfd_getfd against a child
 * that holds a canary. The child exits 0 only if its canary is unchanged. */
#include "sys_common.h"
#include <signal.h>
#include <sys/ptrace.h>
#include <sys/uio.h>
#include <sys/wait.h>

static volatile char canary[16] = "cellbox-canary";

int main(void) {
    int go[2];
    if (pipe(go)) return 2;
    pid_t child = fork();
    if (child == 0) {
        char c;
        read(go[0], &c, 1); /* wait until the parent has tried everything */
        _exit(strcmp((const char *)canary, "cellbox-canary") == 0 ? 0 : 1);
    }
    report("ptrace_attach", ptrace(PTRACE_ATTACH, child, 0, 0));
    report("ptrace_seize", ptrace(PTRACE_SEIZE, child, 0, 0));
    char buf[16] = "overwritten!!!!";
    struct iovec local = {buf, sizeof buf}, remote = {(void *)canary, sizeof canary};
    report("process_vm_readv", process_vm_readv(child, &local, 1, &remote, 1, 0));
    report("process_vm_writev", process_vm_writev(child, &local, 1, &remote, 1, 0));
    report("kcmp", syscall(SYS_kcmp, getpid(), child, 0 /* KCMP_FILE */, 0, 0));
    int pidfd = (int)syscall(SYS_pidfd_open, child, 0);
    report("pidfd_getfd", syscall(SYS_pidfd_getfd, pidfd, 0, 0));
    report("ptrace_traceme", ptrace(PTRACE_TRACEME, 0, 0, 0));
    write(go[1], "x", 1);
    int status = 0;
    waitpid(child, &status, 0);
    printf("child_canary=%s\n", WIFEXITED(status) && WEXITSTATUS(status) == 0 ? "intact" : "changed");
    return 0;
}
