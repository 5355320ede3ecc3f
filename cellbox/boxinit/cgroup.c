/* The program enters the run's cgroups (the keeper made and limited them, cellbox/cgroup/):
 * on v2 the box init forks it straight into the run's leaf, on v1 it moves itself. */
#define _GNU_SOURCE
#include <linux/sched.h>
#include <signal.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "boxinit.h"

/* fork(), into q->cgroup_fd if the run has one (clone3, Linux >= 5.7; cellbox's v2 needs
 * 5.19): the program is in its cgroup from its first instruction, and no write to
 * cgroup.procs waits for an RCU grace period. */
pid_t fork_program(const struct run *q) {
    if (q->cgroup_fd < 0)
        return fork();
    struct clone_args args;
    memset(&args, 0, sizeof args);
    args.flags = CLONE_INTO_CGROUP;
    args.exit_signal = SIGCHLD;
    args.cgroup = (uint64_t)q->cgroup_fd;
    return (pid_t)syscall(SYS_clone3, &args, sizeof args);
}

/* v1: any process may move itself (v1 checks only that the uids match). Writing "0" to
 * `tasks` skips the RCU grace period a write of a pid to cgroup.procs waits for. */
void join_cgroups(const struct run *q) {
    for (uint32_t i = 0; i < q->n_join; i++)
        if (write(q->join[i], "0", 1) != 1)
            fail_errno();
}
