/* alloc MIB: malloc MIB MiB and touch every byte (memset). Exit 3 if malloc fails.
 * Prints "ok" when done. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int main(int argc, char **argv) {
    if (argc != 2) return 2;
    size_t n = (size_t)atol(argv[1]) << 20;
    char *p = malloc(n);
    if (!p) {
        printf("malloc failed\n");
        return 3;
    }
    memset(p, 1, n);
    printf("ok %zu\n", n);
    return p[n - 1] == 1 ? 0 : 4;
}
