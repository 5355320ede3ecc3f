/* The box's network and UTS namespaces: loopback up, the hostname, and for a warm box the
 * test of whether a run left any trace in its network namespace. */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <net/if.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <unistd.h>

#include "boxinit.h"

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

/* Loopback up (in a new network namespace; a kept one has it up already, and setting
 * IFF_UP again changes nothing) and the hostname. */
void finish_namespaces(const struct box *b) {
    if (!(b->flags & BOX_SHARE_NET)) {
        step = "bringing up the loopback interface";
        bring_loopback_up();
    }
    step = "setting the hostname";
    if (sethostname(b->hostname, strlen(b->hostname)) < 0)
        fail_errno();
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

/* A warm box's new network namespace, as its next run gets it. */
void remember_fresh_net(void) {
    step = "reading the network namespace's state";
    read_net_state(&net_fresh);
}

/* Whether the run that just ended (every process of it reaped) left the network namespace
 * byte for byte as it got it. Only asked when the keeper allows it (RUN_NET_REUSABLE: the
 * seccomp policy refuses io_uring, whose rings drop their files after their owner's exit,
 * so a socket could still be bound, unlisted, when init looks). */
int net_untouched(const struct run *q) {
    if (q->box->flags & BOX_SHARE_NET || !(q->flags & RUN_NET_REUSABLE))
        return 0;
    step = "reading the network namespace's state";
    struct snapshot now = {0};
    read_net_state(&now);
    int same = now.len == net_fresh.len && memcmp(now.data, net_fresh.data, now.len) == 0;
    free(now.data);
    return same;
}
