/* recurse DEPTH: recursion DEPTH deep with about 1 KiB of stack per frame. Prints "ok". */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int down(int n) {
    volatile char frame[1024];
    memset((char *)frame, n & 0xff, sizeof frame);
    if (n == 0) return frame[0];
    return down(n - 1) + frame[n % sizeof frame];
}

int main(int argc, char **argv) {
    if (argc != 2) return 2;
    int depth = atoi(argv[1]);
    printf("ok %d\n", down(depth) & 1);
    return 0;
}
