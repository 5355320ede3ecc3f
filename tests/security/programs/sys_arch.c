/* Non-native system call ABIs on x86_64: i386 (int 0x80) and x32 (bit 30 of the number).
 * Each calls getpid, which the native ABI allows; the filter must answer ENOSYS. */
#include "sys_common.h"

int main(void) {
    long ret;
    __asm__ volatile("int $0x80" : "=a"(ret) : "a"(20 /* i386 getpid */) : "memory");
    report_raw("i386_getpid", ret);
    __asm__ volatile("syscall" : "=a"(ret) : "a"(0x40000000L | 39 /* x32 getpid */)
                     : "rcx", "r11", "memory");
    report_raw("x32_getpid", ret);
    report_raw("native_getpid", syscall(SYS_getpid) > 0 ? 0 : -errno);
    report("beyond_table", syscall(1000)); /* a number no kernel has yet */
    return 0;
}
