/* The box's (or a warm box's run's) network and UTS namespaces: loopback up, the hostname. */
#define _GNU_SOURCE
#include <errno.h>
#include <net/if.h>
#include <stdio.h>
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

/* Loopback up (in a new network namespace) and the hostname. */
void finish_namespaces(const struct box *b) {
    if (!(b->flags & BOX_SHARE_NET)) {
        step = "bringing up the loopback interface";
        bring_loopback_up();
    }
    step = "setting the hostname";
    if (sethostname(b->hostname, strlen(b->hostname)) < 0)
        fail_errno();
}
