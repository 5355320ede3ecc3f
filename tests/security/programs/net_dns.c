/* DNS from the box: point the resolver at a "DNS server" on 127.0.0.1:argv[1] (the test's
 * UDP listener on the host) and look up a canary name with res_query. Prints the result. */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <resolv.h>
#include <stdio.h>
#include <stdlib.h>

int main(int argc, char **argv) {
    if (argc != 2) return 2;
    res_init();
    _res.nscount = 1;
    _res.nsaddr_list[0].sin_family = AF_INET;
    _res.nsaddr_list[0].sin_port = htons(atoi(argv[1]));
    _res.nsaddr_list[0].sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    _res.retrans = 1;
    _res.retry = 1;
    unsigned char answer[512];
    int n = res_query("canary.cellbox.test", C_IN, T_A, answer, sizeof answer);
    printf("res_query: %d\n", n);
    return 0;
}
