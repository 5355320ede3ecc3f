/* The caller's terminal: is there a controlling terminal (/dev/tty opens only then), which
 * session and group this is, and can stdin (the caller's terminal in the test) be made the
 * controlling one or have input pushed into it. */
#include "sys_common.h"
#include <fcntl.h>
#include <sys/ioctl.h>

int main(void) {
    printf("isatty0=%d\n", isatty(0));
    printf("session_leader=%d\n", getsid(0) == getpid());
    printf("foreground=%d\n", tcgetpgrp(0) == getpgrp());
    report("open_dev_tty", open("/dev/tty", O_RDWR));
    report("tiocsctty", ioctl(0, TIOCSCTTY, 0));
    char c = 'X';
    report("tiocsti", ioctl(0, TIOCSTI, &c));
    return 0;
}
