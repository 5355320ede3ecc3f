/* Getting capabilities back: capset to raise, ambient raise, securebits changes, the bounding
 * set, and setuid(0). Also prints the sets the kernel reports. */
#include "sys_common.h"
#include <linux/capability.h>
#include <sys/prctl.h>

int main(void) {
    struct __user_cap_header_struct h = {_LINUX_CAPABILITY_VERSION_3, 0};
    struct __user_cap_data_struct d[2];
    memset(d, 0xff, sizeof d);
    report("capset_all", syscall(SYS_capset, &h, d));
    report("ambient_raise", prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_RAISE, CAP_SYS_ADMIN, 0, 0));
    report("securebits_clear", prctl(PR_SET_SECUREBITS, 0, 0, 0, 0));
    report("keepcaps", prctl(PR_SET_KEEPCAPS, 1, 0, 0, 0));
    report("setuid_0", setuid(0));
    report("setgid_0", setgid(0));
    printf("securebits=%d\n", prctl(PR_GET_SECUREBITS, 0, 0, 0, 0));
    printf("no_new_privs=%d\n", prctl(PR_GET_NO_NEW_PRIVS, 0, 0, 0, 0));
    int bounding = 0;
    for (int cap = 0; cap <= CAP_LAST_CAP; cap++)
        bounding += prctl(PR_CAPBSET_READ, cap, 0, 0, 0) == 1;
    printf("bounding_caps=%d\n", bounding);
    return 0;
}
