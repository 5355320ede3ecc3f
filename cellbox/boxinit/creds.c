/* Credentials and capabilities: the rootless box's user namespace, the program's resource
 * limits, and the privilege drop before execve.
 *
 * Rootless mode (BOX_ROOTLESS; docs/security.md): the launcher makes a user namespace in
 * which the box uid/gid is the caller's outside, and the box init holds every capability
 * there, as the box uid. The supplementary groups cannot change (setgroups is denied in the
 * namespace) and the fs ids are already the box's, so the stdio files are opened with no
 * effective capability instead (stdio.c); the uid switch changes no uid, and the capability
 * checks after it still hold (capset empties every set).
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <linux/capability.h>
#include <linux/keyctl.h>
#include <sched.h>
#include <stdio.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "boxinit.h"

/* NOROOT and every lock, with the setuid fix-up left on (it is what clears the capabilities
 * at setresuid). */
#define SECBIT_NOROOT (1 << 0)
#define SECBIT_NOROOT_LOCKED (1 << 1)
#define SECBIT_NO_SETUID_FIXUP_LOCKED (1 << 3)
#define SECBIT_KEEP_CAPS_LOCKED (1 << 5)
#define SECBIT_NO_CAP_AMBIENT_RAISE (1 << 6)
#define SECBIT_NO_CAP_AMBIENT_RAISE_LOCKED (1 << 7)
#define SECUREBITS (SECBIT_NOROOT | SECBIT_NOROOT_LOCKED | SECBIT_NO_SETUID_FIXUP_LOCKED | \
                    SECBIT_KEEP_CAPS_LOCKED | SECBIT_NO_CAP_AMBIENT_RAISE | \
                    SECBIT_NO_CAP_AMBIENT_RAISE_LOCKED)

static void write_file(const char *path, const char *text) {
    int fd = open(path, O_WRONLY | O_CLOEXEC);
    if (fd < 0 || write(fd, text, strlen(text)) != (ssize_t)strlen(text))
        fail("%s: %s", path, strerror(errno));
    close(fd);
}

/* One uid and one gid mapped in the user namespace just made: setgroups denied first (the
 * kernel takes an unprivileged gid map only then). */
static void map_ids(uint32_t uid, uint32_t gid, uint32_t outside_uid, uint32_t outside_gid) {
    char map[64];
    write_file("/proc/self/setgroups", "deny");
    snprintf(map, sizeof map, "%u %u 1\n", uid, outside_uid);
    write_file("/proc/self/uid_map", map);
    snprintf(map, sizeof map, "%u %u 1\n", gid, outside_gid);
    write_file("/proc/self/gid_map", map);
}

/* Rootless mode: a new user namespace, owner of the box's other namespaces, with one uid
 * and one gid mapped (the box's inside, the caller's outside: no privilege needed, no
 * newuidmap helper). With setgroups denied, the supplementary groups stay the caller's, for
 * good. */
void enter_user_namespace(const struct box *b) {
    if (unshare(CLONE_NEWUSER) < 0)
        fail("%s: this machine does not let unprivileged users create one. Run 'cellbox "
             "doctor' (user namespaces) for the fix, or run cellbox as root", strerror(errno));
    map_ids(b->uid, b->gid, b->outside_uid, b->outside_gid);
}

/* Rootless mode without a cgroup: the program in a user namespace of its own, below the
 * box's, with the box uid and gid mapped onto themselves. RLIMIT_NPROC then stands in for the
 * processes limit exactly: the kernel counts a uid's processes per user namespace, so there
 * it counts the program's alone, not the box's inits (a warm box has more than one, and not
 * always as many). The maps are written through the box's /proc. */
void own_user_namespace(const struct run *q) {
    if (access("/proc/self", F_OK) < 0)
        fail("%s: a rootless box without a cgroup needs /proc to limit its processes",
             strerror(errno));
    /* Its own /proc files are root's while it is not dumpable (as the box init left it) */
    if (unshare(CLONE_NEWUSER) < 0 || prctl(PR_SET_DUMPABLE, 1, 0, 0, 0) < 0)
        fail_errno();
    map_ids(q->box->uid, q->box->gid, q->box->uid, q->box->gid);
    if (prctl(PR_SET_DUMPABLE, 0, 0, 0, 0) < 0)
        fail_errno();
}

void set_rlimits(const struct run *q) {
    for (uint32_t i = 0; i < q->n_rlimits; i++) {
        const struct rlim *l = &q->rlimits[i];
        struct rlimit now;
        if (getrlimit(l->resource, &now) < 0)
            fail_errno();
        /* no value: as high as this process may go, its hard limit (root may lack
         * CAP_SYS_RESOURCE, e.g. in a container, and then cannot raise it) */
        rlim_t v = l->has_value ? (rlim_t)l->value : now.rlim_max;
        struct rlimit want = {v, v};
        if (setrlimit(l->resource, &want) < 0) {
            char hard[32], value[32];
            if (now.rlim_max == RLIM_INFINITY)
                snprintf(hard, sizeof hard, "unlimited");
            else
                snprintf(hard, sizeof hard, "%llu", (unsigned long long)now.rlim_max);
            if (l->has_value)
                snprintf(value, sizeof value, "%llu", (unsigned long long)l->value);
            else
                snprintf(value, sizeof value, "None");
            fail("cannot set the %s limit to %s: %s (the hard limit here is %s)", l->name,
                 value, strerror(errno), hard);
        }
    }
}

/* Empty the bounding set (needs CAP_SETPCAP). Each drop commits new credentials, ~1.5 µs
 * here; a cap dropped already is only read. The box init empties its own once (it never
 * execs, so the set limits nothing of its own), and its programs inherit it. */
void drop_bounding_set(uint32_t last_cap) {
    for (uint32_t cap = 0; cap <= last_cap; cap++)
        if (prctl(PR_CAPBSET_READ, cap, 0, 0, 0) != 0
            && prctl(PR_CAPBSET_DROP, cap, 0, 0, 0) < 0)
            fail_errno();
}

/* Empty the ambient and bounding sets and lock the securebits (needs CAP_SETPCAP, so before
 * the uid switch). */
void drop_capabilities(const struct run *q) {
    if (prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 0) < 0)
        fail_errno();
    drop_bounding_set(q->last_cap);
    if (prctl(PR_SET_SECUREBITS, SECUREBITS, 0, 0, 0) < 0)
        fail_errno();
}

/* Every uid and gid becomes the box's; from root this clears all capabilities. Rootless: the
 * groups stay (setgroups is denied in the user namespace) and check_unprivileged() empties
 * the capabilities. */
void become_box_user(const struct run *q) {
    if ((!(q->box->flags & BOX_ROOTLESS) && setgroups(0, NULL) < 0)
        || setresgid(q->gid, q->gid, q->gid) < 0
        || setresuid(q->uid, q->uid, q->uid) < 0)
        fail_errno();
    if (getuid() == 0 || geteuid() == 0)
        fail("setresuid left the process as root");
}

static void set_caps(struct __user_cap_data_struct data[2]) {
    struct __user_cap_header_struct head = {_LINUX_CAPABILITY_VERSION_3, 0};
    if (syscall(SYS_capset, &head, data) < 0)
        fail_errno();
}

/* Rootless: the effective set, emptied while the stdio files are opened (DAC override, and
 * the ptrace access that would open init's /proc files: a planted -i link to
 * /proc/1/environ), then restored from the permitted set. */
void rootless_effective_caps(int on) {
    struct __user_cap_header_struct head = {_LINUX_CAPABILITY_VERSION_3, 0};
    struct __user_cap_data_struct data[2];
    if (syscall(SYS_capget, &head, data) < 0)
        fail_errno();
    for (int i = 0; i < 2; i++)
        data[i].effective = on ? data[i].permitted : 0;
    set_caps(data);
}

/* Keyrings outlive a run: the box uid's user, user-session and persistent keyrings would
 * hand what one run stored (with keyctl and add_key allowed) to the uid's next run, and the
 * session keyring is the box init's. The program gets a new session keyring of its own, with
 * the user keyring linked in as pam_keyinit does, and finds the uid's keyrings empty. (A
 * kernel without keyrings, or without persistent ones, has nothing to clear.) */
void fresh_keyrings(void) {
    if (syscall(SYS_keyctl, KEYCTL_JOIN_SESSION_KEYRING, NULL) < 0) {
        if (errno == ENOSYS)
            return;
        fail_errno();
    }
    if (syscall(SYS_keyctl, KEYCTL_CLEAR, KEY_SPEC_USER_KEYRING) < 0
        || syscall(SYS_keyctl, KEYCTL_CLEAR, KEY_SPEC_USER_SESSION_KEYRING) < 0
        || syscall(SYS_keyctl, KEYCTL_LINK, KEY_SPEC_USER_KEYRING, KEY_SPEC_SESSION_KEYRING) < 0)
        fail_errno();
    long persistent = syscall(SYS_keyctl, KEYCTL_GET_PERSISTENT, -1, KEY_SPEC_SESSION_KEYRING);
    if (persistent < 0 ? errno != EOPNOTSUPP
                       : syscall(SYS_keyctl, KEYCTL_CLEAR, persistent) < 0)
        fail_errno();
}

/* Empty the inheritable set (setresuid leaves it alone), then check that the effective,
 * permitted and inheritable sets are empty and the securebits locked: a capability left here
 * would survive execve. The kernel keeps ambient within permitted and inheritable. */
void check_unprivileged(void) {
    struct __user_cap_header_struct head = {_LINUX_CAPABILITY_VERSION_3, 0};
    struct __user_cap_data_struct data[2];
    memset(data, 0, sizeof data);
    set_caps(data);
    if (syscall(SYS_capget, &head, data) < 0)
        fail_errno();
    const char *left[3];
    int n = 0;
    if (data[0].effective | data[1].effective)
        left[n++] = "effective";
    if (data[0].permitted | data[1].permitted)
        left[n++] = "permitted";
    if (data[0].inheritable | data[1].inheritable)
        left[n++] = "inheritable";
    if (n)
        fail("capabilities remain after the uid switch: %s%s%s%s%s", left[0],
             n > 1 ? ", " : "", n > 1 ? left[1] : "", n > 2 ? ", " : "", n > 2 ? left[2] : "");
    int bits = prctl(PR_GET_SECUREBITS, 0, 0, 0, 0);
    if (bits < 0)
        fail_errno();
    if (!(bits & SECBIT_NOROOT_LOCKED))
        fail("the securebits are not locked");
}

void set_no_new_privs(void) {
    if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) < 0)
        fail_errno();
}
