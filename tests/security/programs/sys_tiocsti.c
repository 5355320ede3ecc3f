/* Typing into a terminal: TIOCSTI pushes characters into a terminal's input queue (on the
 * caller's terminal, commands run after the sandbox ends), TIOCLINUX does it on a console.
 * The program opens a pty of its own (/dev/pts on request) and makes it its controlling
 * terminal, so that only the filter stands in the way; then it reads what reached the queue. */
#include "sys_common.h"
#include <fcntl.h>
#include <poll.h>
#include <stdlib.h>
#include <sys/ioctl.h>
#include <termios.h>

int main(void) {
    int master = posix_openpt(O_RDWR | O_NOCTTY);
    if (master < 0 || grantpt(master) || unlockpt(master)) { perror("pty"); return 2; }
    int slave = open(ptsname(master), O_RDWR); /* no O_NOCTTY: it becomes ours (setsid) */
    report("controlling_tty", ioctl(slave, TIOCSCTTY, 0));
    char c = 'X';
    report("tiocsti", ioctl(slave, TIOCSTI, &c));
    report("tiocsti_highbits", syscall(SYS_ioctl, slave, 0xffffffff00000000UL | TIOCSTI, &c));
    char sub = 2; /* TIOCL_SETSEL and friends: a console ioctl */
    report("tioclinux", ioctl(slave, TIOCLINUX, &sub));
    struct termios t;
    report("tcgetattr", tcgetattr(slave, &t)); /* ordinary terminal ioctls still work */
    struct pollfd p = {slave, POLLIN, 0};
    printf("injected=%s\n", poll(&p, 1, 100) > 0 ? "yes" : "no");
    return 0;
}
