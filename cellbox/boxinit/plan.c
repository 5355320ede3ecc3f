/* The run plan as the keeper sent it (cellbox/boxinit/plan.py writes it).
 *
 * Messages on the unix stream socket, little-endian: u32 size, then a body of that size
 * starting with u32 kind; the fds of a message are attached to its first 4 bytes (SCM_RIGHTS),
 * and the body names them by index.
 *
 * box (kind 1): u32 flags, uid, gid (the box's, inside), outside_uid, outside_gid (rootless
 *   mode's map), last_cap; str root (the host directory the root is built on), hostname; u32 n ×
 *   {u32 op, flags; u64 attrs, dev; str source, inside, fstype, data} mount steps; u32 uid,
 *   gid, n × u32 supplementary groups of the user root serves (flag BOX_FOR_USER; else zeros).
 *   fds: [status, lifeline].
 * run (kind 2): u32 uid, gid, last_cap, flags; i32 stdin, stdout, stderr, cgroup (-1: none;
 *   cgroup: a v2 directory to fork the program into); str
 *   chdir, stdin, stdout, stderr (empty: none); u32 n × {u32 resource, u32 has_value, u64
 *   value, str name} rlimits; u32 n × i32 cgroup files to write "0" to (v1); u32 n × blob seccomp BPF; u32 n ×
 *   str argv; u32 n × str env.  fds: [status, then those the body names].
 * str = u32 length, bytes, NUL; blob = u32 length, bytes.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "boxinit.h"

#define MAX_MESSAGE (256u << 20)
#define MAX_ITEMS 65536u

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

static int passed(int32_t index, const int *fds, int n_fds) {
    if (index < 0)
        return -1;
    if (index >= n_fds)
        fail("the request names fd %d of the %d passed", index, n_fds);
    return fds[index];
}

/* Receive the next message's size and fds (close-on-exec); false at EOF. The first fd is
 * the message's status fd: from here on, failures are reported there. */
int next_message(int sock, uint32_t *size, int *fds, int *n_fds) {
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
    if (*n_fds > 0)
        status_fd = fds[0];
    if (got != 4 || (msg.msg_flags & MSG_CTRUNC))
        fail("a request came with a truncated header or too many fds");
    if (*n_fds == 0)
        fail("a request came without its status fd");
    return 1;
}

static void read_fully(int fd, void *buf, size_t n) {
    for (size_t done = 0; done < n;) {
        ssize_t got = read(fd, (char *)buf + done, n - done);
        if (got < 0 && errno == EINTR)
            continue;
        if (got < 0)
            fail_errno();
        if (got == 0)
            fail("the keeper closed the socket in the middle of a request");
        done += (size_t)got;
    }
}

/* The body of a message of ``size`` bytes, checked to be of kind ``kind``. */
static struct reader body(int sock, uint32_t size, uint32_t kind) {
    if (size > MAX_MESSAGE)
        fail("the request is %u bytes long", size);
    struct reader r = {malloc(size ? size : 1), size, 0};
    if (!r.buf)
        fail_errno();
    read_fully(sock, r.buf, size);
    if (u32(&r) != kind)
        fail("a request of the wrong kind came (%s expected)", kind == MSG_BOX ? "box" : "run");
    return r;
}

static void done(const struct reader *r) {
    if (r->pos != r->size)
        fail("the request has %zu bytes left over", r->size - r->pos);
}

void read_box(int sock, uint32_t size, const int *fds, int n_fds, struct box *b) {
    struct reader r = body(sock, size, MSG_BOX);
    b->buf = r.buf;
    b->flags = u32(&r);
    b->uid = u32(&r);
    b->gid = u32(&r);
    b->outside_uid = u32(&r);
    b->outside_gid = u32(&r);
    b->last_cap = u32(&r);
    b->status_fd = passed(0, fds, n_fds);
    b->lifeline_fd = passed(1, fds, n_fds);
    b->root = str(&r);
    b->hostname = str(&r);
    b->n_mounts = count(&r);
    b->mounts = items(b->n_mounts, sizeof *b->mounts);
    for (uint32_t i = 0; i < b->n_mounts; i++) {
        struct mount_step *m = &b->mounts[i];
        m->op = u32(&r);
        m->flags = u32(&r);
        m->attrs = u64(&r);
        m->dev = u64(&r);
        m->source = str(&r);
        m->inside = str(&r);
        m->fstype = str(&r);
        m->data = str(&r);
    }
    b->user_uid = u32(&r);
    b->user_gid = u32(&r);
    b->n_user_groups = count(&r);
    b->user_groups = items(b->n_user_groups, sizeof *b->user_groups);
    for (uint32_t i = 0; i < b->n_user_groups; i++)
        b->user_groups[i] = u32(&r);
    done(&r);
}

void read_run(int sock, uint32_t size, const int *fds, int n_fds, const struct box *b,
              struct run *q) {
    struct reader r = body(sock, size, MSG_RUN);
    q->box = b;
    q->buf = r.buf;
    q->status_fd = fds[0];
    q->uid = u32(&r);
    q->gid = u32(&r);
    q->last_cap = u32(&r);
    q->flags = u32(&r);
    for (int i = 0; i < 3; i++)
        q->pipe_fd[i] = passed((int32_t)u32(&r), fds, n_fds);
    q->cgroup_fd = passed((int32_t)u32(&r), fds, n_fds);
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
        q->join[i] = passed((int32_t)u32(&r), fds, n_fds);
    q->n_filters = count(&r);
    q->filters = items(q->n_filters, sizeof *q->filters);
    for (uint32_t i = 0; i < q->n_filters; i++) {
        q->filters[i].size = u32(&r);
        q->filters[i].data = take(&r, q->filters[i].size);
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
    done(&r);
}
