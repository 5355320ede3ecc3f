/* Attach to a host process (argv[1], its host pid) with PTRACE_ATTACH and PTRACE_SEIZE,
 * read its memory with process_vm_readv and /proc/PID/mem. Detaches if it ever attached. */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ptrace.h>
#include <sys/uio.h>
#include <sys/wait.h>
#include <unistd.h>

int main(int argc, char **argv) {
    if (argc != 2) return 2;
    pid_t pid = atoi(argv[1]);
    long r = ptrace(PTRACE_ATTACH, pid, 0, 0);
    printf("PTRACE_ATTACH: %ld (%s)\n", r, r ? strerror(errno) : "ATTACHED");
    if (r == 0) { waitpid(pid, NULL, __WALL); ptrace(PTRACE_DETACH, pid, 0, 0); }
    r = ptrace(PTRACE_SEIZE, pid, 0, 0);
    printf("PTRACE_SEIZE: %ld (%s)\n", r, r ? strerror(errno) : "ATTACHED");
    if (r == 0) ptrace(PTRACE_DETACH, pid, 0, 0);
    char buf[64];
    struct iovec local = {buf, sizeof buf}, remote = {(void *)0x400000, sizeof buf};
    printf("process_vm_readv: %zd\n", process_vm_readv(pid, &local, 1, &remote, 1, 0));
    char path[64];
    snprintf(path, sizeof path, "/proc/%d/mem", pid);
    printf("open mem: %d\n", open(path, O_RDONLY));
    return 0;
}
