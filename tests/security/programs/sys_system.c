/* Host-wide state: modules, kexec, reboot, swap, clocks. Every argument is invalid or empty
 * (a NULL image, a module name that does not exist, a time with tv_nsec = -1), so that even an
 * unfiltered kernel would refuse after its checks; the filter must refuse first, with EPERM. */
#include "sys_common.h"
#include <fcntl.h>
#include <sys/time.h>
#include <sys/timex.h>
#include <time.h>

int main(void) {
    report("init_module", syscall(SYS_init_module, NULL, 0, ""));
    int fd = open("/dev/null", O_RDONLY);
    report("finit_module", syscall(SYS_finit_module, fd, "", 0));
    report("delete_module", syscall(SYS_delete_module, "cellbox_canary_no_such_module", 0));
    report("kexec_load", syscall(SYS_kexec_load, 0, 0, NULL, 0xdead0000UL)); /* bad flags */
    report("kexec_file_load", syscall(SYS_kexec_file_load, -1, -1, 0, "", 0));
    /* An invalid magic: the kernel itself answers EINVAL when the filter lets it through. */
    report("reboot", syscall(SYS_reboot, 0, 0, 0, NULL));
    report("swapon", syscall(SYS_swapon, "/dev/null", 0));
    report("swapoff", syscall(SYS_swapoff, "/cellbox-no-such-swap"));
    struct timeval tv = {0, -1};
    report("settimeofday", syscall(SYS_settimeofday, &tv, NULL));
    struct timespec ts = {0, -1};
    report("clock_settime", syscall(SYS_clock_settime, CLOCK_REALTIME, &ts));
    struct timex tx;
    memset(&tx, 0, sizeof tx); /* modes 0: a read, which only the filter refuses */
    report("adjtimex", syscall(SYS_adjtimex, &tx));
    report("clock_adjtime", syscall(SYS_clock_adjtime, CLOCK_REALTIME, &tx));
    return 0;
}
