/* Socket families: vsock (a channel to the host and other VMs' guests), packet, alg, bluetooth,
 * netlink other than NETLINK_ROUTE, and the high-bits trick (the kernel reads the family as an
 * int, a filter comparing 64 bits would see another number). Allowed ones must still work. */
#include "sys_common.h"
#include <sys/socket.h>
#include <linux/netlink.h>

static void try(const char *label, unsigned long family, int type, unsigned long proto) {
    long fd = syscall(SYS_socket, family, type, proto);
    report(label, fd);
    if (fd >= 0) close((int)fd);
}

int main(void) {
    try("vsock", 40 /* AF_VSOCK */, SOCK_STREAM, 0);
    try("vsock_highbits", 0x100000000UL | 40, SOCK_STREAM, 0);
    try("inet_highbits", 0x100000000UL | AF_INET, SOCK_STREAM, 0);
    try("packet", AF_PACKET, SOCK_RAW, 0);
    try("alg", 38 /* AF_ALG */, SOCK_SEQPACKET, 0);
    try("bluetooth", 31 /* AF_BLUETOOTH */, SOCK_STREAM, 0);
    try("key", 15 /* PF_KEY */, SOCK_RAW, 2);
    try("appletalk", 5, SOCK_DGRAM, 0);
    try("netlink_uevent", AF_NETLINK, SOCK_RAW, NETLINK_KOBJECT_UEVENT);
    try("netlink_audit", AF_NETLINK, SOCK_RAW, NETLINK_AUDIT);
    try("netlink_route", AF_NETLINK, SOCK_RAW, NETLINK_ROUTE);
    try("unix", AF_UNIX, SOCK_STREAM, 0);
    try("inet", AF_INET, SOCK_STREAM, 0);
    try("inet6", AF_INET6, SOCK_DGRAM, 0);
    return 0;
}
