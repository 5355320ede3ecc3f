/* Advisory locks on a file bound read-only into several boxes. "hold FILE": take every kind of
 * lock on FILE, print "locked", keep them until the file /box/release appears (30 s at most).
 * "probe FILE": report whether a lock is seen (F_GETLK) and whether exclusive non-blocking
 * locks are granted. */
#include "sys_common.h"
#include <fcntl.h>
#include <sys/file.h>

int main(int argc, char **argv) {
    if (argc < 3) return 2;
    int fd = open(argv[2], O_RDONLY);
    if (fd < 0) { perror(argv[2]); return 2; }
    struct flock fl = {.l_type = F_RDLCK, .l_whence = SEEK_SET};
    if (strcmp(argv[1], "hold") == 0) {
        report("flock", flock(fd, LOCK_SH));
        report("setlk", fcntl(fd, F_SETLK, &fl));
        int ofd = open(argv[2], O_RDONLY);
        report("ofd_setlk", fcntl(ofd, F_OFD_SETLK, &fl));
        printf("locked\n");
        fflush(stdout);
        for (int i = 0; i < 600 && access("/box/release", F_OK) != 0; i++)
            usleep(50000);
        return 0;
    }
    struct flock probe = {.l_type = F_WRLCK, .l_whence = SEEK_SET};
    report("getlk", fcntl(fd, F_GETLK, &probe));
    printf("getlk_sees=%s\n", probe.l_type == F_UNLCK ? "none" : "lock");
    report("flock_ex_nb", flock(fd, LOCK_EX | LOCK_NB));
    return 0;
}
