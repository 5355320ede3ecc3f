/* The program's seccomp filters: compiled by the keeper (cellbox/linux/seccomp.py, with
 * libseccomp), loaded here as raw BPF, last before execve. */
#define _GNU_SOURCE
#include <errno.h>
#include <limits.h>
#include <linux/filter.h>
#include <linux/seccomp.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "boxinit.h"

void load_seccomp(const struct run *q) {
    if (q->n_filters == 0) {
        errno = EINVAL;
        fail("no seccomp filter to load");
    }
    for (uint32_t i = 0; i < q->n_filters; i++) {
        const struct blob *b = &q->filters[i];
        if (b->size == 0 || b->size % sizeof(struct sock_filter) || b->size / 8 > USHRT_MAX)
            fail("%u bytes is not a BPF program", b->size);
        struct sock_fprog prog = {(unsigned short)(b->size / sizeof(struct sock_filter)),
                                  (struct sock_filter *)b->data};
        if (syscall(SYS_seccomp, SECCOMP_SET_MODE_FILTER, 0, &prog) < 0)
            fail("seccomp(SET_MODE_FILTER): %s", strerror(errno));
    }
    if (prctl(PR_GET_SECCOMP, 0, 0, 0, 0) != SECCOMP_MODE_FILTER)
        fail("the seccomp filter is not in force after loading it");
}
