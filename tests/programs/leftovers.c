/* leftovers make|check: "make" leaves a marker in each channel a warm box must reset between
 * runs; "check" prints the name of each marker it still finds (nothing when all is clean):
 * SysV shared memory, semaphore and message queue (fixed keys), a POSIX message queue, a
 * POSIX shared memory file in /dev/shm, files in /box and /tmp, and a process listening on
 * 127.0.0.1:PORT (a child left behind, as is the sleeping one); "check" also says when the
 * hostname is not the box's. Any step that fails other than by finding nothing is reported
 * on stderr and makes the exit status 1, so that a broken program never passes for a clean
 * box. */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <mqueue.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/ipc.h>
#include <sys/msg.h>
#include <sys/sem.h>
#include <sys/shm.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#define KEY 0x0ce11b0
#define PORT 40123
#define MQ "/cellbox-marker"

static int failed;

static void fail(const char *what) {
    perror(what);
    failed = 1;
}

/* A lookup's result: 1 found, 0 absent (errno is one of the "not there" errors), and any
 * other error is a failure. */
static int found(int ok, const char *what, int absent1, int absent2) {
    if (ok)
        return 1;
    if (errno != absent1 && errno != absent2)
        fail(what);
    return 0;
}

static int listening(void) {
    int s = socket(AF_INET, SOCK_STREAM, 0);
    if (s < 0) {
        fail("socket");
        return 0;
    }
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons(PORT)};
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    int ok = connect(s, (struct sockaddr *)&a, sizeof a) == 0;
    ok = found(ok, "connect", ECONNREFUSED, ECONNREFUSED);
    close(s);
    return ok;
}

static void make(void) {
    if (shmget(KEY, 4096, IPC_CREAT | 0666) < 0 || semget(KEY, 1, IPC_CREAT | 0666) < 0
        || msgget(KEY, IPC_CREAT | 0666) < 0)
        fail("sysv");
    struct mq_attr attr = {.mq_maxmsg = 1, .mq_msgsize = 16};
    if (mq_open(MQ, O_CREAT | O_RDWR, 0666, &attr) < 0)
        fail("mq_open");
    int fds[] = {open("/dev/shm/marker", O_CREAT | O_WRONLY, 0666),
                 open("/box/marker", O_CREAT | O_WRONLY, 0666),
                 open("/tmp/marker", O_CREAT | O_WRONLY, 0666)};
    for (int i = 0; i < 3; i++)
        if (fds[i] < 0)
            fail("open");
    int s = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons(PORT)};
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (bind(s, (struct sockaddr *)&a, sizeof a) < 0 || listen(s, 1) < 0)
        fail("listen");
    pid_t child = fork();
    if (child < 0)
        fail("fork");
    if (child == 0) { /* keeps the socket; must not outlive the run */
        alarm(60);
        pause();
        _exit(0);
    }
    close(s);
    puts(listening() ? "made" : "not listening");
}

static void check(void) {
    struct stat st;
    char host[64] = "";
    if (found(shmget(KEY, 0, 0) >= 0, "shmget", ENOENT, ENOENT)) puts("sysv-shm");
    if (found(semget(KEY, 0, 0) >= 0, "semget", ENOENT, ENOENT)) puts("sysv-sem");
    if (found(msgget(KEY, 0) >= 0, "msgget", ENOENT, ENOENT)) puts("sysv-msg");
    if (found(mq_open(MQ, O_RDONLY) >= 0, "mq_open", ENOENT, ENOENT)) puts("mqueue");
    if (found(stat("/dev/shm/marker", &st) == 0, "stat", ENOENT, ENOENT)) puts("posix-shm");
    if (found(stat("/box/marker", &st) == 0, "stat", ENOENT, ENOENT)) puts("box-file");
    if (found(stat("/tmp/marker", &st) == 0, "stat", ENOENT, ENOENT)) puts("tmp-file");
    if (gethostname(host, sizeof host) < 0)
        fail("gethostname");
    else if (strcmp(host, "cellbox") != 0)
        puts("hostname");
    if (listening()) puts("listener");
}

int main(int argc, char **argv) {
    if (argc == 2 && strcmp(argv[1], "make") == 0)
        make();
    else if (argc == 2 && strcmp(argv[1], "check") == 0)
        check();
    else
        return 2;
    return failed;
}
