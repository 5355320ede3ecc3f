/* Shared by the sys_*.c hostile programs: each attempt prints one line "label=RESULT", where
 * RESULT is OK or the errno name (EPERM, ENOSYS...), so the tests can assert every denial.
 * The programs only ever target canaries and invalid or harmless arguments, so that they stay
 * harmless even if the sandbox failed to stop them. */
#define _GNU_SOURCE
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>

static inline void report(const char *label, long ret) {
    printf("%s=%s\n", label, ret == -1 ? strerrorname_np(errno) : "OK");
    fflush(stdout);
}

/* For raw calls that return -errno themselves (inline assembly). */
static inline void report_raw(const char *label, long ret) {
    printf("%s=%s\n", label, ret < 0 && ret > -4096 ? strerrorname_np((int)-ret) : "OK");
    fflush(stdout);
}
