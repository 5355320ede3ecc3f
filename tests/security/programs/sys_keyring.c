/* Kernel keyrings: a user keyring outlives the run and is shared by every process of the uid.
 * "add TOKEN" tries to plant a key named TOKEN; "find TOKEN" looks for one (the test runs it
 * with keyctl allowed, in a later run of the same box); "clear" empties the user keyring. */
#include "sys_common.h"
#include <stdlib.h>

#define KEY_SPEC_USER_KEYRING -4
#define KEY_SPEC_SESSION_KEYRING -3
#define KEYCTL_GET_KEYRING_ID 0
#define KEYCTL_JOIN_SESSION_KEYRING 1
#define KEYCTL_SEARCH 10
#define KEYCTL_CLEAR 7

int main(int argc, char **argv) {
    if (argc != 3) return 2;
    if (strcmp(argv[1], "add") == 0) {
        report("add_key", syscall(SYS_add_key, "user", argv[2], "secret", 6,
                                  KEY_SPEC_USER_KEYRING));
        report("request_key", syscall(SYS_request_key, "user", argv[2], NULL,
                                      KEY_SPEC_USER_KEYRING));
        report("keyctl_join", syscall(SYS_keyctl, KEYCTL_JOIN_SESSION_KEYRING, argv[2]));
        report("keyctl_get", syscall(SYS_keyctl, KEYCTL_GET_KEYRING_ID,
                                     KEY_SPEC_USER_KEYRING, 0));
    } else if (strcmp(argv[1], "clear") == 0) {
        report("clear", syscall(SYS_keyctl, KEYCTL_CLEAR, KEY_SPEC_USER_KEYRING));
    } else {
        long id = syscall(SYS_keyctl, KEYCTL_SEARCH, KEY_SPEC_USER_KEYRING, "user", argv[2], 0);
        printf("search=%s\n", id == -1 ? strerrorname_np(errno) : "FOUND");
    }
    return 0;
}
