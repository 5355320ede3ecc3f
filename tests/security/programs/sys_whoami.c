/* Installed setuid-root and setgid-root by the test (in the box, or bound from the host): prints
 * the ids and the effective capabilities it runs with, then tries a root-only act on a canary:
 * creating a file in the read-only, root-owned directory given as argv[1]. */
#include "sys_common.h"
#include <fcntl.h>

int main(int argc, char **argv) {
    uid_t r, e, s;
    gid_t rg, eg, sg;
    getresuid(&r, &e, &s);
    getresgid(&rg, &eg, &sg);
    printf("euid=%u\negid=%u\nsuid=%u\n", e, eg, s);
    FILE *f = fopen("/proc/self/status", "r");
    char line[256];
    while (f && fgets(line, sizeof line, f))
        if (strncmp(line, "CapEff:", 7) == 0)
            printf("capeff=%s", line + 8 + strspn(line + 7, "\t ") - 1);
    if (argc > 1) {
        char path[512];
        snprintf(path, sizeof path, "%s/cellbox-canary-suid", argv[1]);
        report("create_in_root_dir", open(path, O_CREAT | O_WRONLY | O_EXCL, 0600));
    }
    return 0;
}
