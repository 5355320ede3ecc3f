#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

int main(void) {
    char mode[32] = {0};
    if (scanf("%31s", mode) != 1) return 9;
    getchar();
    if (!strcmp(mode, "hello")) puts("hello");
    else if (!strcmp(mode, "echo")) { int c; while ((c = getchar()) != EOF) putchar(c); }
    else if (!strcmp(mode, "re")) { volatile int *p = NULL; *p = 1; }
    else if (!strcmp(mode, "cpu")) { volatile unsigned long x = 0; for (;;) x++; }
    else if (!strcmp(mode, "sleep")) sleep(30);
    else if (!strcmp(mode, "mle")) {
        /* Each block is published through a volatile pointer, so that no compiler may
           drop the allocation (clang removes a malloc whose memory nothing reads). */
        static char *volatile last;
        for (;;) {
            char *p = malloc(16 << 20);
            if (!p) return 4;
            memset(p, 1, 16 << 20);
            last = p;
        }
    }
    else if (!strcmp(mode, "ole")) {
        static char b[65536]; memset(b, 'x', sizeof b);
        for (;;) fwrite(b, 1, sizeof b, stdout);
    }
    else if (!strcmp(mode, "exit")) return 3;
    return 0;
}
