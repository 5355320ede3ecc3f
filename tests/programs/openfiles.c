/* openfiles N: open /dev/null up to N times (at most 10000). Prints "opened=K errno=E"
 * (E is the errno of the first failure, 0 if none). */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>

int main(int argc, char **argv) {
    if (argc != 2) return 2;
    int n = atoi(argv[1]);
    if (n > 10000) n = 10000;
    int opened = 0, err = 0;
    for (int i = 0; i < n; i++) {
        if (open("/dev/null", O_RDONLY) < 0) {
            err = errno;
            break;
        }
        opened++;
    }
    printf("opened=%d errno=%d\n", opened, err);
    return 0;
}
