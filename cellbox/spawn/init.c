/* cellbox's init: pid 1 of a box, and the only per-run spawner.
 *
 * The Python init (cellbox.inside) builds the box's root in the new namespaces, then execs
 * this program, which reads a request (cellbox/spawn/request.py writes it) and does the run:
 * finish the namespaces (loopback up, hostname), fork the program, confine it step by step,
 * exec it; report "started", reap orphans until the program ends, report "exit". A failed
 * step reaches the keeper as
 *     {"kind": "error", "step": "<step>", "error": "<reason>"}
 * on the run's status fd and becomes "Sandbox setup failed while <step>: <reason>".
 *
 *   init REQUEST_FD STATUS_FD         one run (fresh namespaces), then exit
 *   init --pool SOCKET_FD STATUS_FD   a warm box: report {"kind": "ready"} on STATUS_FD and
 *       close it, then one run per request on the unix stream socket, each with its fds
 *       attached (SCM_RIGHTS). After each run, init kills every process left in the box and
 *       makes fresh IPC and network namespaces, hostname and tmpfs mounts for the next (the
 *       network namespace is kept when the run left no trace in it: see net_untouched); it
 *       exits at EOF. The keeper empties the box's files and resets its cgroup.
 *
 * The request is length-prefixed binary, little-endian: u32 size, then: u32 uid, gid,
 * last_cap, flags; i32 fds status, stdin, stdout, stderr (-1: none); str chdir, stdin, stdout,
 * stderr (empty: none); u32 n × {u32 resource, u32 has_value, u64 value, str name} rlimits;
 * u32 n × i32 cgroup join fds; u32 n × blob seccomp BPF; u32 n × {str path, str options}
 * tmpfs mounts to renew; u32 n × str argv; u32 n × str env.
 * str = u32 length, bytes, NUL; blob = u32 length, bytes. With --pool, the fds are indices
 * into the fds attached to the request.
 * pid 1 has no signal handlers: the kernel then drops every signal sent to it from inside.
 *
 * Rootless mode (FLAG_ROOTLESS; docs/security.md): init runs as the box uid in the box's own
 * user namespace, with every capability there (ambient, kept across the Python init's
 * execve). The supplementary groups cannot change (setgroups is denied in the namespace) and
 * the fs ids are already the box's, so the stdio files are opened with no effective
 * capability instead; the uid switch changes no uid, and the capability checks after it
 * still hold (capset empties every set). The exit report's "cpu" (the program's and its
 * waited-for children's rusage) stands in for the cgroup's CPU time when there is none.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <limits.h>
#include <linux/capability.h>
#include <linux/filter.h>
#include <linux/keyctl.h>
#include <linux/seccomp.h>
#include <net/if.h>
#include <sched.h>
#include <signal.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/fsuid.h>
#include <sys/ioctl.h>
#include <sys/mount.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <termios.h>
#include <time.h>
#include <unistd.h>

#define FLAG_TTY_HACK 1u
#define FLAG_STDERR_TO_STDOUT 2u
#define FLAG_SHARE_NET 4u
#define FLAG_ROOTLESS 8u
#define FLAG_NET_REUSABLE 16u
#define MAX_REQUEST (256u << 20)
#define MAX_ITEMS 65536u
#define MAX_PASSED_FDS 64
#define HOSTNAME "cellbox"

/* The same securebits as before the Python init became this program: NOROOT and every lock,
 * with the setuid fix-up left on (it is what clears the capabilities at setresuid). */
#define SECUREBITS (SECBIT_NOROOT | SECBIT_NOROOT_LOCKED | SECBIT_NO_SETUID_FIXUP_LOCKED | \
                    SECBIT_KEEP_CAPS_LOCKED | SECBIT_NO_CAP_AMBIENT_RAISE | \
                    SECBIT_NO_CAP_AMBIENT_RAISE_LOCKED)
#define SECBIT_NOROOT (1 << 0)
#define SECBIT_NOROOT_LOCKED (1 << 1)
#define SECBIT_NO_SETUID_FIXUP_LOCKED (1 << 3)
#define SECBIT_KEEP_CAPS_LOCKED (1 << 5)
#define SECBIT_NO_CAP_AMBIENT_RAISE (1 << 6)
#define SECBIT_NO_CAP_AMBIENT_RAISE_LOCKED (1 << 7)

struct rlim {
    uint32_t resource, has_value;
    uint64_t value;
    const char *name;
};

struct blob {
    uint32_t size;
    const unsigned char *data;
};

struct tmpfs {
    const char *path, *options;
};

struct request {
    unsigned char *buf; /* everything below points into it */
    uint32_t uid, gid, last_cap, flags;
    int32_t status_fd, pipe_fd[3];
    const char *chdir, *path[3];
    uint32_t n_rlimits, n_join, n_filters, n_tmpfs;
    struct rlim *rlimits;
    int32_t *join;
    struct blob *filters;
    struct tmpfs *tmpfs;
    char **argv, **env;
};

static int status_fd = -1;
static const char *step = "starting the box's init";

/* ---- reporting ------------------------------------------------------------------------- */

static void put_json_string(char *out, size_t cap, size_t *len, const char *s) {
    static const char hex[] = "0123456789abcdef";
    for (; *s && *len + 7 < cap; s++) {
        unsigned char c = (unsigned char)*s;
        if (c == '"' || c == '\\') {
            out[(*len)++] = '\\';
            out[(*len)++] = (char)c;
        } else if (c < 0x20 || c >= 0x7f) { /* ASCII only: the keeper's JSON stays valid */
            memcpy(out + *len, "\\u00", 4);
            out[*len + 4] = hex[c >> 4];
            out[*len + 5] = hex[c & 15];
            *len += 6;
        } else {
            out[(*len)++] = (char)c;
        }
    }
}

static void send_line(const char *line, size_t len) {
    while (len > 0) {
        ssize_t n = write(status_fd, line, len);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            return; /* the keeper is gone; nothing left to tell */
        line += n;
        len -= (size_t)n;
    }
}

/* Report the current step's failure and exit 127 (never returns). */
static void fail(const char *fmt, ...) {
    char reason[1024], line[4096];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(reason, sizeof reason, fmt, ap);
    va_end(ap);
    size_t len = 0;
    const char *head = "{\"kind\": \"error\", \"step\": \"";
    memcpy(line, head, strlen(head));
    len = strlen(head);
    put_json_string(line, sizeof line - 32, &len, step);
    memcpy(line + len, "\", \"error\": \"", 13);
    len += 13;
    put_json_string(line, sizeof line - 8, &len, reason);
    memcpy(line + len, "\"}\n", 3);
    send_line(line, len + 3);
    _exit(127);
}

static void fail_errno(void) { fail("%s", strerror(errno)); }

static double monotonic(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* ---- the request ----------------------------------------------------------------------- */

struct reader {
    unsigned char *buf;
    size_t size, pos;
};

static const void *take(struct reader *r, size_t n) {
    if (n > r->size - r->pos)
        fail("the request is truncated");
    const void *p = r->buf + r->pos;
    r->pos += n;
    return p;
}

static uint32_t u32(struct reader *r) {
    uint32_t v;
    memcpy(&v, take(r, 4), 4);
    return v;
}

static uint64_t u64(struct reader *r) {
    uint64_t v;
    memcpy(&v, take(r, 8), 8);
    return v;
}

static const char *str(struct reader *r) {
    uint32_t n = u32(r);
    const char *s = take(r, (size_t)n + 1);
    if (s[n] != '\0' || strlen(s) != n)
        fail("a string in the request contains a NUL byte");
    return s;
}

static uint32_t count(struct reader *r) {
    uint32_t n = u32(r);
    if (n > MAX_ITEMS)
        fail("the request has %u items in a list", n);
    return n;
}

static void *items(uint32_t n, size_t size) {
    void *p = calloc((size_t)n + 1, size); /* + 1: argv and env end with NULL */
    if (!p)
        fail_errno();
    return p;
}

static void read_fully(int fd, void *buf, size_t n) {
    for (size_t done = 0; done < n;) {
        ssize_t got = read(fd, (char *)buf + done, n - done);
        if (got < 0 && errno == EINTR)
            continue;
        if (got < 0)
            fail_errno();
        if (got == 0)
            fail("the keeper closed the request pipe early");
        done += (size_t)got;
    }
}

/* The body of a request of ``size`` bytes (the size already read). */
static void read_request(int fd, uint32_t size, struct request *q) {
    if (size > MAX_REQUEST)
        fail("the request is %u bytes long", size);
    struct reader r = {malloc(size ? size : 1), size, 0};
    if (!r.buf)
        fail_errno();
    q->buf = r.buf;
    read_fully(fd, r.buf, size);
    q->uid = u32(&r);
    q->gid = u32(&r);
    q->last_cap = u32(&r);
    q->flags = u32(&r);
    q->status_fd = (int32_t)u32(&r);
    for (int i = 0; i < 3; i++)
        q->pipe_fd[i] = (int32_t)u32(&r);
    q->chdir = str(&r);
    for (int i = 0; i < 3; i++)
        q->path[i] = str(&r);
    q->n_rlimits = count(&r);
    q->rlimits = items(q->n_rlimits, sizeof *q->rlimits);
    for (uint32_t i = 0; i < q->n_rlimits; i++) {
        q->rlimits[i].resource = u32(&r);
        q->rlimits[i].has_value = u32(&r);
        q->rlimits[i].value = u64(&r);
        q->rlimits[i].name = str(&r);
    }
    q->n_join = count(&r);
    q->join = items(q->n_join, sizeof *q->join);
    for (uint32_t i = 0; i < q->n_join; i++)
        q->join[i] = (int32_t)u32(&r);
    q->n_filters = count(&r);
    q->filters = items(q->n_filters, sizeof *q->filters);
    for (uint32_t i = 0; i < q->n_filters; i++) {
        q->filters[i].size = u32(&r);
        q->filters[i].data = take(&r, q->filters[i].size);
    }
    q->n_tmpfs = count(&r);
    q->tmpfs = items(q->n_tmpfs, sizeof *q->tmpfs);
    for (uint32_t i = 0; i < q->n_tmpfs; i++) {
        q->tmpfs[i].path = str(&r);
        q->tmpfs[i].options = str(&r);
    }
    uint32_t n = count(&r);
    if (n == 0)
        fail("the request has no command");
    q->argv = items(n, sizeof *q->argv);
    for (uint32_t i = 0; i < n; i++)
        q->argv[i] = (char *)str(&r);
    n = count(&r);
    q->env = items(n, sizeof *q->env);
    for (uint32_t i = 0; i < n; i++)
        q->env[i] = (char *)str(&r);
    if (r.pos != r.size)
        fail("the request has %zu bytes left over", r.size - r.pos);
}

static void free_request(struct request *q) {
    free(q->rlimits);
    free(q->join);
    free(q->filters);
    free(q->tmpfs);
    free(q->argv);
    free(q->env);
    free(q->buf);
}

/* ---- init's own set-up ----------------------------------------------------------------- */

/* Every fd the keeper passed is close-on-exec from here: the program gets stdio only. */
static void keep_from_program(int fd) {
    if (fd >= 0 && fcntl(fd, F_SETFD, FD_CLOEXEC) < 0)
        fail_errno();
}

static void reset_signals(void) {
    sigset_t none;
    sigemptyset(&none);
    if (sigprocmask(SIG_SETMASK, &none, NULL) < 0)
        fail_errno();
    for (int sig = 1; sig < NSIG; sig++)
        if (sig != SIGKILL && sig != SIGSTOP)
            signal(sig, SIG_DFL); /* EINVAL for the libc-reserved ones: they stay default */
}

/* ---- the box's namespaces, finished (or renewed) before each run ----------------------- */

/* A fresh network namespace has only ``lo``, and it is down. */
static void bring_loopback_up(void) {
    int s = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    if (s < 0)
        fail_errno();
    struct ifreq ifr;
    memset(&ifr, 0, sizeof ifr);
    snprintf(ifr.ifr_name, sizeof ifr.ifr_name, "lo");
    if (ioctl(s, SIOCGIFFLAGS, &ifr) < 0)
        fail_errno();
    ifr.ifr_flags |= IFF_UP;
    if (ioctl(s, SIOCSIFFLAGS, &ifr) < 0)
        fail_errno();
    close(s);
}

/* The root of each tmpfs as init last mounted it: a run that left it so, to the
 * nanosecond of its atime, mtime and ctime, created nothing in it, removed nothing, and did
 * not even list it or touch its attributes (each would change a time), so the mount is as
 * fresh as a new one and is kept. */
#define KEPT_TMPFS 4
static struct {
    char *path;
    struct stat st;
} tmpfs_fresh[KEPT_TMPFS];

static int tmpfs_untouched(uint32_t i, const struct tmpfs *t) {
    struct stat now;
    return i < KEPT_TMPFS && tmpfs_fresh[i].path && strcmp(tmpfs_fresh[i].path, t->path) == 0
           && lstat(t->path, &now) == 0 && memcmp(&now, &tmpfs_fresh[i].st, sizeof now) == 0;
}

/* A warm box's tmpfs mounts (/dev/shm) are mounted again, empty, unless the last run left
 * them untouched; the box's own files (/box, /tmp) are the keeper's to empty. The mount
 * point itself is unmounted: nothing the last run left inside it is followed. */
static void renew_tmpfs(const struct request *q) {
    for (uint32_t i = 0; i < q->n_tmpfs; i++) {
        const struct tmpfs *t = &q->tmpfs[i];
        if (tmpfs_untouched(i, t))
            continue;
        if (umount2(t->path, MNT_DETACH | UMOUNT_NOFOLLOW) < 0
            || mount("cellbox-tmpfs", t->path, "tmpfs", MS_NOSUID | MS_NODEV, t->options) < 0)
            fail("%s: %s", t->path, strerror(errno));
        if (i < KEPT_TMPFS) {
            free(tmpfs_fresh[i].path);
            tmpfs_fresh[i].path = strdup(t->path);
            if (!tmpfs_fresh[i].path || lstat(t->path, &tmpfs_fresh[i].st) < 0)
                fail("%s: %s", t->path, strerror(errno));
        }
    }
}

/* What a program without capabilities can leave in a network namespace after all its
 * processes are gone, and where each shows (docs/performance.md, "the pool's network
 * namespace"). Everything that needs a packet (sockets in TIME_WAIT or orphaned, conntrack
 * entries, route exceptions, TCP metrics, neighbours) moves the counters: of lo, the only
 * device, for every packet sent or received, and of the protocols for one that never
 * reached a device (dev, snmp, snmp6, netstat). Without a packet, a socket outlives its
 * fds only in flight in a unix socket (unix) or as an IPv6 flow label left to linger
 * (ip6_flowlabel); routes, addresses, devices, raw and packet sockets and sysctls need
 * capabilities. Files are compared as raw bytes, so counters that a later run could read
 * are state too. (The lists of TCP, UDP and conntrack entries walk the host's global hash
 * tables, 3.5 ms for tcp here, and add nothing: their entries need packets or fds.) */
static const char *const NET_STATE[] = {"dev", "snmp", "snmp6", "netstat", "unix",
                                        "ip6_flowlabel"};

struct snapshot {
    char *data;
    size_t len, cap;
};

static struct snapshot net_fresh; /* the namespace as the next run gets it */

static void append(struct snapshot *s, const char *data, size_t n) {
    if (s->len + n > s->cap) {
        s->cap = 2 * (s->len + n);
        s->data = realloc(s->data, s->cap);
        if (!s->data)
            fail_errno();
    }
    memcpy(s->data + s->len, data, n);
    s->len += n;
}

/* Every NET_STATE file of init's network namespace, each with its name (a file the kernel
 * lacks is named with nothing after it, both times). */
static void read_net_state(struct snapshot *s) {
    char path[64], buf[8192];
    s->len = 0;
    for (size_t i = 0; i < sizeof NET_STATE / sizeof *NET_STATE; i++) {
        append(s, NET_STATE[i], strlen(NET_STATE[i]) + 1);
        snprintf(path, sizeof path, "/proc/self/net/%s", NET_STATE[i]);
        int fd = open(path, O_RDONLY | O_CLOEXEC);
        if (fd < 0 && errno == ENOENT)
            continue;
        if (fd < 0)
            fail("%s: %s", path, strerror(errno));
        ssize_t got;
        while ((got = read(fd, buf, sizeof buf)) > 0)
            append(s, buf, (size_t)got);
        if (got < 0)
            fail("%s: %s", path, strerror(errno));
        close(fd);
    }
}

/* Whether the run that just ended (every process of it reaped) left the network namespace
 * byte for byte as it got it. Only asked when the keeper allows it (FLAG_NET_REUSABLE: the
 * seccomp policy refuses io_uring, whose rings drop their files after their owner's exit,
 * so a socket could still be bound, unlisted, when init looks). */
static int net_untouched(const struct request *q) {
    if ((q->flags & (FLAG_SHARE_NET | FLAG_NET_REUSABLE)) != FLAG_NET_REUSABLE)
        return 0;
    struct snapshot now = {0};
    read_net_state(&now);
    int same = now.len == net_fresh.len && memcmp(now.data, net_fresh.data, now.len) == 0;
    free(now.data);
    return same;
}

/* Before each run of a warm box: no SysV IPC object, message queue, socket or route of the
 * last run survives (new namespaces: init is root in the box's user namespace; the network
 * one is kept if the last run left it untouched), the hostname is ours again, and /dev/shm
 * is empty. */
static void renew_namespaces(const struct request *q, int keep_net) {
    step = "giving the run fresh IPC and network namespaces";
    if (unshare(CLONE_NEWIPC | (q->flags & FLAG_SHARE_NET || keep_net ? 0 : CLONE_NEWNET)) < 0)
        fail_errno();
    step = "renewing the box's tmpfs mounts";
    renew_tmpfs(q);
}

static void finish_namespaces(const struct request *q) {
    if (!(q->flags & FLAG_SHARE_NET)) {
        step = "bringing up the loopback interface";
        bring_loopback_up();
    }
    step = "setting the hostname";
    if (sethostname(HOSTNAME, strlen(HOSTNAME)) < 0)
        fail_errno();
}

/* A warm box's namespaces for its next run (lo is up already in a kept network namespace:
 * setting IFF_UP again changes nothing), and, in a new network namespace, its state then. */
static void finish_pool_namespaces(const struct request *q, int kept_net) {
    finish_namespaces(q);
    if (!(q->flags & FLAG_SHARE_NET) && !kept_net) {
        step = "reading the network namespace's state";
        read_net_state(&net_fresh);
    }
}

/* ---- the program's steps, in order (see program()) ------------------------------------- */

static int open_stdio(const char *path, int write_mode) {
    int flags = O_CLOEXEC | O_NOCTTY | O_NONBLOCK;
    flags |= write_mode ? O_WRONLY | O_CREAT | O_TRUNC : O_RDONLY;
    int fd = open(path, flags, 0666);
    if (fd < 0)
        fail_errno();
    struct stat st;
    if (fstat(fd, &st) < 0)
        fail_errno();
    if (!S_ISREG(st.st_mode) && !S_ISCHR(st.st_mode))
        fail("%s is not a regular file", path);
    if (fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) & ~O_NONBLOCK) < 0)
        fail_errno();
    return fd;
}

static void set_caps(struct __user_cap_data_struct data[2]) {
    struct __user_cap_header_struct head = {_LINUX_CAPABILITY_VERSION_3, 0};
    if (syscall(SYS_capset, &head, data) < 0)
        fail_errno();
}

/* Rootless: the effective set, emptied while the stdio files are opened (DAC override, and
 * the ptrace access that would open init's /proc files: a planted -i link to
 * /proc/1/environ), then restored from the permitted set. */
static void rootless_effective_caps(int on) {
    struct __user_cap_header_struct head = {_LINUX_CAPABILITY_VERSION_3, 0};
    struct __user_cap_data_struct data[2];
    if (syscall(SYS_capget, &head, data) < 0)
        fail_errno();
    for (int i = 0; i < 2; i++)
        data[i].effective = on ? data[i].permitted : 0;
    set_caps(data);
}

/* Open the stdio files and enter the working directory with the box user's permissions
 * (fs ids, no supplementary groups: the caller's, e.g. group 0 under sudo, would grant the
 * box user their access), then become root again for the steps that need capabilities.
 * Rootless: see the top of this file. */
static void redirect_stdio(const struct request *q) {
    int rootless = q->flags & FLAG_ROOTLESS;
    if (rootless) {
        rootless_effective_caps(0);
    } else {
        if (setgroups(0, NULL) < 0)
            fail_errno();
        setfsgid(q->gid);
        setfsuid(q->uid);
    }
    if (chdir(q->chdir) < 0)
        fail_errno();
    int fd[3];
    for (int i = 0; i < 3; i++)
        fd[i] = q->pipe_fd[i] >= 0 ? q->pipe_fd[i]
                : q->path[i][0] ? open_stdio(q->path[i], i > 0) : -1;
    if (rootless) {
        rootless_effective_caps(1);
    } else {
        setfsuid(0);
        setfsgid(0);
    }
    for (int i = 0; i < 3; i++)
        if (fd[i] >= 0 && dup2(fd[i], i) < 0)
            fail_errno();
    if ((q->flags & FLAG_STDERR_TO_STDOUT) && dup2(1, 2) < 0)
        fail_errno();
}

static void leave_terminal(const struct request *q) {
    if (!(q->flags & FLAG_TTY_HACK)) {
        if (setsid() < 0) /* a new session: no controlling terminal */
            fail_errno();
        return;
    }
    /* --tty-hack: own process group, the terminal's foreground group while it runs */
    if (setpgid(0, 0) < 0)
        fail_errno();
    for (int fd = 0; fd < 3; fd++) {
        if (!isatty(fd))
            continue;
        /* tcsetpgrp from a background group raises SIGTTOU, which would stop us */
        signal(SIGTTOU, SIG_IGN);
        if (tcsetpgrp(fd, getpgrp()) < 0)
            fail_errno();
        signal(SIGTTOU, SIG_DFL);
        return;
    }
}

static void set_rlimits(const struct request *q) {
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
 * here; a cap dropped already is only read. A warm box's init empties its own once (it
 * never execs, so the set limits nothing of its own), and its programs inherit it. */
static void drop_bounding_set(const struct request *q) {
    for (uint32_t cap = 0; cap <= q->last_cap; cap++)
        if (prctl(PR_CAPBSET_READ, cap, 0, 0, 0) != 0
            && prctl(PR_CAPBSET_DROP, cap, 0, 0, 0) < 0)
            fail_errno();
}

/* Empty the ambient and bounding sets and lock the securebits (needs CAP_SETPCAP, so before
 * the uid switch). */
static void drop_capabilities(const struct request *q) {
    if (prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 0) < 0)
        fail_errno();
    drop_bounding_set(q);
    if (prctl(PR_SET_SECUREBITS, SECUREBITS, 0, 0, 0) < 0)
        fail_errno();
}

/* Every uid and gid becomes the box's; from root this clears all capabilities. Rootless: the
 * groups stay (setgroups is denied in the user namespace) and check_unprivileged() empties
 * the capabilities. */
static void become_box_user(const struct request *q) {
    if ((!(q->flags & FLAG_ROOTLESS) && setgroups(0, NULL) < 0)
        || setresgid(q->gid, q->gid, q->gid) < 0
        || setresuid(q->uid, q->uid, q->uid) < 0)
        fail_errno();
    if (getuid() == 0 || geteuid() == 0)
        fail("setresuid left the process as root");
}

/* Keyrings outlive a run: the box uid's user, user-session and persistent keyrings would
 * hand what one run stored (with keyctl and add_key allowed) to the uid's next run, and the
 * session keyring is init's. The program gets a new session keyring of its own, with the
 * user keyring linked in as pam_keyinit does, and finds the uid's keyrings empty. (A kernel
 * without keyrings, or without persistent ones, has nothing to clear.) */
static void fresh_keyrings(void) {
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
static void check_unprivileged(void) {
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

static void set_no_new_privs(void) {
    if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) < 0)
        fail_errno();
}

/* Any process may move itself: v1 checks only that the uids match. Writing "0" to v1's
 * `tasks` skips the RCU grace period a write of a pid to cgroup.procs waits for. */
static void join_cgroups(const struct request *q) {
    for (uint32_t i = 0; i < q->n_join; i++)
        if (write(q->join[i], "0", 1) != 1)
            fail_errno();
}

static void load_seccomp(const struct request *q) {
    if (q->n_filters == 0) {
        errno = EINVAL;
        fail("no seccomp filter to load");
    }
    for (uint32_t i = 0; i < q->n_filters; i++) {
        const struct blob *b = &q->filters[i];
        if (b->size == 0 || b->size % sizeof(struct sock_filter) || b->size / 8 > USHRT_MAX)
            fail("%u bytes is not a BPF program", b->size);
        struct sock_fprog prog = {(unsigned short)(b->size / sizeof(struct sock_filter)),
                                  (struct sock_filter *)b->data};
        if (syscall(SYS_seccomp, SECCOMP_SET_MODE_FILTER, 0, &prog) < 0)
            fail("seccomp(SET_MODE_FILTER): %s", strerror(errno));
    }
    if (prctl(PR_GET_SECCOMP, 0, 0, 0, 0) != SECCOMP_MODE_FILTER)
        fail("the seccomp filter is not in force after loading it");
}

/* execvpe with the request's PATH (glibc's looks at init's own environment and runs
 * ENOEXEC files with /bin/sh): the first error other than "not found" wins. */
static void exec_program(const struct request *q) {
    const char *file = q->argv[0];
    if (strchr(file, '/')) {
        execve(file, q->argv, q->env);
        fail_errno();
    }
    const char *path = "/bin:/usr/bin";
    for (char **e = q->env; *e; e++)
        if (strncmp(*e, "PATH=", 5) == 0)
            path = *e + 5;
    int saved = 0, last = ENOENT;
    char full[PATH_MAX];
    for (const char *dir = path;; dir = strchr(dir, ':') + 1) {
        size_t len = strcspn(dir, ":");
        if (len == 0)
            snprintf(full, sizeof full, "%s", file);
        else
            snprintf(full, sizeof full, "%.*s/%s", (int)len, dir, file);
        execve(full, q->argv, q->env);
        last = errno;
        if (!saved && errno != ENOENT && errno != ENOTDIR)
            saved = errno;
        if (dir[len] == '\0')
            break;
    }
    errno = saved ? saved : last;
    fail_errno();
}

/* The program's side, in the order of DESIGN.md ("One run"); never returns. */
static void program(const struct request *q) {
    char what[64 + PATH_MAX];
    step = "opening stdin/stdout/stderr inside the box";
    redirect_stdio(q);
    step = "leaving the caller's terminal session";
    leave_terminal(q);
    step = "setting resource limits";
    set_rlimits(q);
    step = "dropping capabilities";
    drop_capabilities(q);
    snprintf(what, sizeof what, "switching to uid %u / gid %u", q->uid, q->gid);
    step = what;
    become_box_user(q);
    step = "emptying the box user's keyrings";
    fresh_keyrings();
    step = "checking that no capability is left";
    check_unprivileged();
    step = "setting no_new_privs";
    set_no_new_privs();
    /* (no signal reset: init reset its dispositions and mask at start and never changes
     * them, and fork keeps them) */
    step = "joining the box's cgroups";
    join_cgroups(q);
    step = "loading the seccomp filter"; /* last: from here on only execve and the report */
    load_seccomp(q);
    snprintf(what, sizeof what, "executing %s", q->argv[0]);
    step = what;
    exec_program(q);
}

/* ---- pid 1 ----------------------------------------------------------------------------- */

static int to_fd(const char *s) {
    char *end;
    long v = strtol(s, &end, 10);
    if (*s == '\0' || *end != '\0' || v < 0 || v > INT_MAX)
        return -1;
    return (int)v;
}

/* The fds of one run: close-on-exec (the program gets stdio only), and closed by init once
 * the run is over. */
static void own_run_fds(struct request *q) {
    keep_from_program(q->status_fd);
    for (int i = 0; i < 3; i++)
        keep_from_program(q->pipe_fd[i]);
    for (uint32_t i = 0; i < q->n_join; i++)
        keep_from_program(q->join[i]);
}

/* (run() closed the stdio pipes when the program started.) */
static void close_run_fds(const struct request *q) {
    for (uint32_t i = 0; i < q->n_join; i++)
        close(q->join[i]);
    close(q->status_fd);
}

/* Fork the program, report its start, reap until it ends, report its end. */
static void run(const struct request *q) {
    step = "forking the program";
    double started = monotonic();
    pid_t pid = fork();
    if (pid < 0)
        fail_errno();
    if (pid == 0)
        program(q);
    /* The wall clock limit counts from here, not from the keeper's clone: building the root
     * is the sandbox's time, and the reported wall time starts here too. */
    char line[256];
    send_line(line, (size_t)snprintf(line, sizeof line,
                                     "{\"kind\": \"started\", \"at\": %.9f}\n", started));
    for (int i = 0; i < 3; i++)
        if (q->pipe_fd[i] >= 0)
            close(q->pipe_fd[i]);
    int status;
    struct rusage ru;
    for (;;) { /* reap orphans until the program itself ends */
        pid_t got = wait4(-1, &status, 0, &ru);
        if (got == pid)
            break;
        if (got < 0 && errno != EINTR)
            fail_errno();
    }
    send_line(line, (size_t)snprintf(
        line, sizeof line,
        "{\"kind\": \"exit\", \"status\": %d, \"wall\": %.9f, \"maxrss\": %lld, "
        "\"nvcsw\": %ld, \"nivcsw\": %ld, \"cpu\": %.6f}\n",
        status, monotonic() - started, (long long)ru.ru_maxrss * 1024, ru.ru_nvcsw,
        ru.ru_nivcsw,
        (double)(ru.ru_utime.tv_sec + ru.ru_stime.tv_sec)
            + (double)(ru.ru_utime.tv_usec + ru.ru_stime.tv_usec) / 1e6));
}

static int one_run(int request_fd) {
    step = "reading the run's request";
    uint32_t size;
    read_fully(request_fd, &size, 4);
    struct request q;
    read_request(request_fd, size, &q);
    close(request_fd);
    own_run_fds(&q);
    finish_namespaces(&q);
    run(&q);
    return 0;
}

/* Receive the next request's size and its fds; false at EOF (the pool is closing). */
static int next_request(int sock, uint32_t *size, int *fds, int *n_fds) {
    union {
        char buf[CMSG_SPACE(MAX_PASSED_FDS * sizeof(int))];
        struct cmsghdr align;
    } control;
    struct iovec iov = {size, 4};
    struct msghdr msg = {.msg_iov = &iov, .msg_iovlen = 1, .msg_control = control.buf,
                         .msg_controllen = sizeof control.buf};
    ssize_t got;
    do
        got = recvmsg(sock, &msg, MSG_CMSG_CLOEXEC | MSG_WAITALL);
    while (got < 0 && errno == EINTR);
    if (got == 0)
        return 0;
    if (got < 0)
        fail_errno();
    *n_fds = 0;
    for (struct cmsghdr *c = CMSG_FIRSTHDR(&msg); c; c = CMSG_NXTHDR(&msg, c))
        if (c->cmsg_level == SOL_SOCKET && c->cmsg_type == SCM_RIGHTS) {
            *n_fds = (int)((c->cmsg_len - CMSG_LEN(0)) / sizeof(int));
            memcpy(fds, CMSG_DATA(c), (size_t)*n_fds * sizeof(int));
        }
    if (got != 4 || (msg.msg_flags & MSG_CTRUNC))
        fail("a request came with a truncated header or too many fds");
    return 1;
}

static int32_t passed(int32_t index, const int *fds, int n_fds) {
    if (index < 0)
        return -1;
    if (index >= n_fds)
        fail("the request names fd %d of the %d passed", index, n_fds);
    return fds[index];
}

/* After a warm box's run: nothing of it may live on (pid 1's kill(-1) reaches every other
 * process of the box's pid namespace, and only those), then the next run's namespaces are
 * made now, off the next request's path. */
static void end_run(const struct request *q) {
    step = "killing what the run left";
    if (kill(-1, SIGKILL) < 0 && errno != ESRCH)
        fail_errno();
    while (waitpid(-1, NULL, 0) > 0 || errno == EINTR)
        ;
    if (errno != ECHILD)
        fail_errno();
    step = "reading the network namespace's state";
    int keep_net = net_untouched(q);
    renew_namespaces(q, keep_net);
    finish_pool_namespaces(q, keep_net);
}

/* A warm box: one run per request until the keeper closes the socket. */
static int pool(int sock) {
    keep_from_program(sock);
    int first = 1;
    for (;;) {
        step = "reading the run's request";
        uint32_t size;
        int fds[MAX_PASSED_FDS], n_fds;
        if (!next_request(sock, &size, fds, &n_fds))
            return 0;
        struct request q;
        read_request(sock, size, &q);
        q.status_fd = status_fd = passed(q.status_fd, fds, n_fds);
        if (status_fd < 0)
            fail("the request has no status fd");
        for (int i = 0; i < 3; i++)
            q.pipe_fd[i] = passed(q.pipe_fd[i], fds, n_fds);
        for (uint32_t i = 0; i < q.n_join; i++)
            q.join[i] = passed(q.join[i], fds, n_fds);
        /* (the fds came close-on-exec: MSG_CMSG_CLOEXEC) */
        if (first) { /* later runs find theirs made by the end of the run before */
            finish_pool_namespaces(&q, 0);
            step = "dropping capabilities";
            drop_bounding_set(&q);
        }
        first = 0;
        run(&q);
        close_run_fds(&q);
        status_fd = -1; /* the keeper has the result: what fails from here ends the slot */
        end_run(&q);
        free_request(&q);
    }
}

int main(int argc, char **argv) {
    int pool_mode = argc == 4 && strcmp(argv[1], "--pool") == 0;
    int in_fd = argc == 3 + pool_mode ? to_fd(argv[1 + pool_mode]) : -1;
    status_fd = argc == 3 + pool_mode ? to_fd(argv[2 + pool_mode]) : -1;
    if (in_fd < 0 || status_fd < 0) {
        fprintf(stderr, "usage: %s [--pool] REQUEST_FD STATUS_FD (cellbox starts this program)"
                "\n", argv[0]);
        return 2;
    }
    /* First: no one in the box may trace init or open its /proc files and fds. */
    if (prctl(PR_SET_DUMPABLE, 0, 0, 0, 0) < 0)
        fail_errno();
    reset_signals(); /* the Python init ignored SIGPIPE and SIGXFSZ; exec keeps that */
    keep_from_program(in_fd);
    keep_from_program(status_fd);
    if (!pool_mode)
        return one_run(in_fd);
    send_line("{\"kind\": \"ready\"}\n", 18);
    close(status_fd); /* the keeper reads up to EOF */
    status_fd = -1;
    return pool(in_fd);
}
