/* personality flags that weaken the process's own hardening (no ASLR, READ_IMPLIES_EXEC,
 * MMAP_PAGE_ZERO): refused; the default values Docker allows (and the query) pass. */
#include "sys_common.h"
#include <sys/personality.h>

int main(void) {
    report("no_randomize", personality(PER_LINUX | ADDR_NO_RANDOMIZE));
    report("read_implies_exec", personality(PER_LINUX | READ_IMPLIES_EXEC));
    report("mmap_page_zero", personality(PER_LINUX | MMAP_PAGE_ZERO));
    report("highbits", syscall(SYS_personality, 0x100000000UL | PER_LINUX));
    report("query", personality(0xffffffff));
    report("linux", personality(PER_LINUX));
    report("linux32", personality(PER_LINUX32));
    printf("now=%x\n", personality(0xffffffff));
    return 0;
}
