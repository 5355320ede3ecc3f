/* Reporting to the keeper: one JSON line per message on the current status fd. */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "boxinit.h"

int status_fd = -1;
const char *step = "starting the box's init";

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

void send_line(const char *line, size_t len) {
    while (len > 0) {
        ssize_t n = write(status_fd, line, len);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            return; /* the keeper is gone (or no run is in progress): nothing left to tell */
        line += n;
        len -= (size_t)n;
    }
}

/* Report the current step's failure and exit 127. */
void fail(const char *fmt, ...) {
    char reason[1024], line[4096];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(reason, sizeof reason, fmt, ap);
    va_end(ap);
    static const char head[] = "{\"kind\": \"error\", \"step\": \"";
    size_t len = sizeof head - 1;
    memcpy(line, head, len);
    put_json_string(line, sizeof line - 32, &len, step);
    memcpy(line + len, "\", \"error\": \"", 13);
    len += 13;
    put_json_string(line, sizeof line - 8, &len, reason);
    memcpy(line + len, "\"}\n", 3);
    send_line(line, len + 3);
    _exit(127);
}

void fail_errno(void) { fail("%s", strerror(errno)); }

/* Every fd the keeper passed is close-on-exec: the program gets stdio only. */
void cloexec(int fd) {
    if (fd >= 0 && fcntl(fd, F_SETFD, FD_CLOEXEC) < 0)
        fail_errno();
}

double monotonic(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}
