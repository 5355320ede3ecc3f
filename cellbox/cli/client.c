/* The cellbox command: the native front door.
 *
 * isolate's grammar (an argument list that starts with an option, as --init, --run and
 * --cleanup do) goes to the resident keeper daemon (cellbox keeperd) over its unix socket:
 * argv, the environment, umask, the working directory and stdio (the descriptors themselves,
 * SCM_RIGHTS), then signals as they come; the exit code is the command's. The wire format is
 * cellbox/cli/keeperd.py's and the same as the Python thin client's (cellbox/cli/client.py),
 * which this program replaces on the fast path.
 *
 * Everything else (cellbox run, judge, serve, ..., --tty-hack, CELLBOX_NO_DAEMON=1, no daemon
 * to take the command) is the Python CLI's: this program execs it, with the same arguments.
 * It is cellbox-cli next to this binary (scripts/bootstrap.sh installs both), which also
 * starts a daemon on demand when root has none.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#define MAGIC "cellbox-keeper-1"
#define DEFAULT_SOCKET "/run/cellbox/keeper.sock"
#define MAX_REQUEST (1 << 18)

extern char **environ;

static int sock = -1;
static const int forwarded[] = {SIGHUP, SIGINT, SIGQUIT, SIGTERM};

/* The Python CLI, with our arguments: cellbox-cli next to the real path of this binary. */
static void exec_python_cli(char **argv) {
    char self[PATH_MAX], cli[PATH_MAX + 16];
    ssize_t n = readlink("/proc/self/exe", self, sizeof self - 1);
    if (n < 0) {
        perror("cellbox: /proc/self/exe");
        exit(2);
    }
    self[n] = '\0';
    *strrchr(self, '/') = '\0';
    snprintf(cli, sizeof cli, "%s/cellbox-cli", self);
    execv(cli, argv);
    fprintf(stderr, "cellbox: cannot run the Python CLI %s: %s; run scripts/bootstrap.sh\n",
            cli, strerror(errno));
    exit(2);
}

/* isolate's grammar, and not --tty-hack (its run must stay in the caller's session). */
static int wanted(int argc, char **argv) {
    const char *off = getenv("CELLBOX_NO_DAEMON");
    if ((off && *off && strcmp(off, "0") != 0) || argc < 2 || argv[1][0] != '-')
        return 0;
    for (int i = 1; i < argc && strcmp(argv[i], "--") != 0; i++)
        if (strlen(argv[i]) > 3 && strncmp("--tty-hack", argv[i], strlen(argv[i])) == 0)
            return 0;
    return 1;
}

/* A connected socket to a daemon of ours or root's, or -1. */
static int connect_to(const char *path) {
    struct sockaddr_un addr = {.sun_family = AF_UNIX};
    if (strlen(path) >= sizeof addr.sun_path)
        return -1;
    strcpy(addr.sun_path, path);
    int s = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0);
    if (s < 0)
        return -1;
    struct ucred peer;
    socklen_t len = sizeof peer;
    if (connect(s, (struct sockaddr *)&addr, sizeof addr) == 0
        && getsockopt(s, SOL_SOCKET, SO_PEERCRED, &peer, &len) == 0
        && (peer.uid == 0 || peer.uid == geteuid())) /* others get neither fds nor env */
        return s;
    close(s);
    return -1;
}

/* $CELLBOX_KEEPER_SOCKET alone, else (not root) the user's own daemon's, then root's. */
static int connect_daemon(char *path, size_t size) {
    const char *env = getenv("CELLBOX_KEEPER_SOCKET");
    if (env && *env) {
        snprintf(path, size, "%s", env);
        return connect_to(path);
    }
    const char *runtime = getenv("XDG_RUNTIME_DIR");
    if (getuid() != 0 && runtime && runtime[0] == '/') {
        snprintf(path, size, "%s/cellbox/keeper.sock", runtime);
        int s = connect_to(path);
        if (s >= 0)
            return s;
    }
    snprintf(path, size, "%s", DEFAULT_SOCKET);
    return connect_to(path);
}

static int add(char *buf, size_t *len, const char *field) {
    size_t n = strlen(field) + 1;
    if (*len + n > MAX_REQUEST)
        return -1;
    memcpy(buf + *len, field, n);
    *len += n;
    return 0;
}

/* MAGIC, umask, argc, argv..., environment..., NUL-separated, with fds 0-2 and the working
 * directory; 0 when sent. */
static int send_request(int argc, char **argv) {
    static char buf[MAX_REQUEST];
    size_t len = 0;
    char num[32];
    mode_t mask = umask(022);
    umask(mask);
    int failed = add(buf, &len, MAGIC);
    snprintf(num, sizeof num, "%u", (unsigned)mask);
    failed |= add(buf, &len, num);
    snprintf(num, sizeof num, "%d", argc - 1);
    failed |= add(buf, &len, num);
    for (int i = 1; i < argc; i++)
        failed |= add(buf, &len, argv[i]);
    for (char **e = environ; *e; e++)
        failed |= add(buf, &len, *e);
    if (failed)
        return -1;
    int cwd = open(".", O_PATH | O_DIRECTORY | O_CLOEXEC);
    if (cwd < 0)
        return -1;
    int fds[4] = {0, 1, 2, cwd};
    char control[CMSG_SPACE(sizeof fds)];
    memset(control, 0, sizeof control);
    struct iovec iov = {buf, len - 1}; /* no NUL after the last field */
    struct msghdr msg = {.msg_iov = &iov, .msg_iovlen = 1, .msg_control = control,
                         .msg_controllen = sizeof control};
    struct cmsghdr *c = CMSG_FIRSTHDR(&msg);
    c->cmsg_level = SOL_SOCKET;
    c->cmsg_type = SCM_RIGHTS;
    c->cmsg_len = CMSG_LEN(sizeof fds);
    memcpy(CMSG_DATA(c), fds, sizeof fds);
    ssize_t sent = sendmsg(sock, &msg, MSG_NOSIGNAL);
    close(cwd);
    return sent == (ssize_t)iov.iov_len ? 0 : -1;
}

static void forward(int signum) {
    char line[16];
    int n = snprintf(line, sizeof line, "kill %d", signum);
    send(sock, line, (size_t)n, MSG_NOSIGNAL); /* the daemon gone: its reply says so */
}

static void forward_signals(void) {
    for (size_t i = 0; i < sizeof forwarded / sizeof *forwarded; i++) {
        struct sigaction old, sa = {.sa_handler = forward};
        sigemptyset(&sa.sa_mask);
        if (sigaction(forwarded[i], NULL, &old) == 0 && old.sa_handler != SIG_IGN)
            sigaction(forwarded[i], &sa, NULL); /* ignored stays ignored, as in-process */
    }
}

static int finish(const char *reply, const char *path) {
    if (strncmp(reply, "exit ", 5) == 0)
        return atoi(reply + 5);
    if (strncmp(reply, "signal ", 7) == 0) { /* the command died of a signal we forwarded */
        int signum = atoi(reply + 7);
        signal(signum, SIG_DFL);
        raise(signum);
        return 128 + signum;
    }
    if (strncmp(reply, "refused ", 8) == 0) {
        fprintf(stderr, "cellbox: the keeper daemon at %s refused this request: %s\n", path,
                reply + 8);
        return 2;
    }
    fprintf(stderr, "cellbox: the keeper daemon at %s ended before the command did; if it was "
                    "a run, the box's next command repairs it (see cellbox boxes)\n", path);
    return 2;
}

int main(int argc, char **argv) {
    char path[PATH_MAX];
    if (!wanted(argc, argv) || (sock = connect_daemon(path, sizeof path)) < 0
        || send_request(argc, argv) != 0)
        exec_python_cli(argv); /* nothing has started: the Python CLI takes the command */
    forward_signals();
    char reply[4096];
    ssize_t n;
    do
        n = recv(sock, reply, sizeof reply - 1, 0);
    while (n < 0 && errno == EINTR);
    reply[n > 0 ? n : 0] = '\0';
    return finish(reply, path);
}
