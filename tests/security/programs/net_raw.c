/* Raw and packet sockets: send a hand-made UDP datagram to 127.0.0.1:argv[1] (the test's
 * listener) through a raw IP socket, and open an AF_PACKET socket and a raw ICMP socket.
 * Needs CAP_NET_RAW. Prints what it managed. */
#include <arpa/inet.h>
#include <linux/if_ether.h>
#include <netinet/in.h>
#include <netinet/udp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

int main(int argc, char **argv) {
    if (argc != 2) return 2;
    int s = socket(AF_INET, SOCK_RAW, IPPROTO_UDP);
    printf("raw udp socket: %d\n", s);
    if (s >= 0) {
        char pkt[64];
        const char *msg = "raw-datagram";
        struct udphdr *u = (struct udphdr *)pkt;
        memset(pkt, 0, sizeof pkt);
        u->source = htons(40000);
        u->dest = htons(atoi(argv[1]));
        u->len = htons(sizeof *u + strlen(msg));
        memcpy(pkt + sizeof *u, msg, strlen(msg));
        struct sockaddr_in to = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
        printf("raw sendto: %zd\n", sendto(s, pkt, sizeof *u + strlen(msg), 0,
                                          (struct sockaddr *)&to, sizeof to));
    }
    printf("packet socket: %d\n", socket(AF_PACKET, SOCK_RAW, htons(ETH_P_ALL)));
    printf("raw icmp socket: %d\n", socket(AF_INET, SOCK_RAW, IPPROTO_ICMP));
    return 0;
}
