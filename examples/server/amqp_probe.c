#include "amqp_probe.h"

#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <poll.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

static long amqp_probe_ms_left(const struct timespec *deadline)
{
    struct timespec now;
    clock_gettime(CLOCK_MONOTONIC, &now);
    long ms = (deadline->tv_sec - now.tv_sec) * 1000 + (deadline->tv_nsec - now.tv_nsec) / 1000000;
    return ms > 0 ? ms : 0;
}

/* Wait for @events on @fd until @deadline. Returns 1 when ready, 0 on time
 * out, -1 on error. */
static int amqp_probe_wait(int fd, short events, const struct timespec *deadline)
{
    for (;;) {
        struct pollfd pfd = {fd, events, 0};
        int r = poll(&pfd, 1, (int)amqp_probe_ms_left(deadline));
        if (r < 0 && errno == EINTR)
            continue;
        return r;
    }
}

static int amqp_probe_one(const struct addrinfo *ai, const struct timespec *deadline, char *err,
                          size_t errlen)
{
    int fd = socket(ai->ai_family, ai->ai_socktype | SOCK_NONBLOCK | SOCK_CLOEXEC, ai->ai_protocol);
    if (fd < 0) {
        snprintf(err, errlen, "socket: %s", strerror(errno));
        return -1;
    }
    int rc = -1;
    if (connect(fd, ai->ai_addr, ai->ai_addrlen) != 0 && errno != EINPROGRESS) {
        snprintf(err, errlen, "connect: %s", strerror(errno));
        goto out;
    }
    if (amqp_probe_wait(fd, POLLOUT, deadline) <= 0) {
        snprintf(err, errlen, "connect: timed out");
        goto out;
    }
    int so_error = 0;
    socklen_t len = sizeof so_error;
    getsockopt(fd, SOL_SOCKET, SO_ERROR, &so_error, &len);
    if (so_error) {
        snprintf(err, errlen, "connect: %s", strerror(so_error));
        goto out;
    }
    /* The AMQP 0-9-1 protocol header; a broker answers with Connection.Start. */
    static const unsigned char header[8] = {'A', 'M', 'Q', 'P', 0, 0, 9, 1};
    if (send(fd, header, sizeof header, MSG_NOSIGNAL) != (ssize_t)sizeof header) {
        snprintf(err, errlen, "send: %s", strerror(errno));
        goto out;
    }
    /* Frame: type 1 (method), channel 0, size (4 bytes), then class 10 and
     * method 10 (Connection.Start). */
    unsigned char frame[11];
    size_t got = 0;
    while (got < sizeof frame) {
        if (amqp_probe_wait(fd, POLLIN, deadline) <= 0) {
            snprintf(err, errlen, "no AMQP answer in time");
            goto out;
        }
        ssize_t n = recv(fd, frame + got, sizeof frame - got, 0);
        if (n < 0 && (errno == EINTR || errno == EAGAIN))
            continue;
        if (n <= 0) {
            snprintf(err, errlen, "%s after %zu bytes",
                     n == 0 ? "connection closed" : "recv failed", got);
            goto out;
        }
        got += (size_t)n;
    }
    if (frame[0] != 1 || frame[1] != 0 || frame[2] != 0 || frame[7] != 0 || frame[8] != 10 ||
        frame[9] != 0 || frame[10] != 10) {
        snprintf(err, errlen, "the answer is not an AMQP 0-9-1 Connection.Start");
        goto out;
    }
    rc = 0;
out:
    close(fd);
    return rc;
}

int amqp_probe(const char *host, int port, int timeout_ms, char *err, size_t errlen)
{
    struct timespec deadline;
    clock_gettime(CLOCK_MONOTONIC, &deadline);
    deadline.tv_sec += timeout_ms / 1000;
    deadline.tv_nsec += (long)(timeout_ms % 1000) * 1000000L;
    if (deadline.tv_nsec >= 1000000000L) {
        deadline.tv_sec++;
        deadline.tv_nsec -= 1000000000L;
    }
    char service[16];
    snprintf(service, sizeof service, "%d", port);
    struct addrinfo hints, *list = NULL;
    memset(&hints, 0, sizeof hints);
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    int gai = getaddrinfo(host, service, &hints, &list);
    if (gai != 0) {
        snprintf(err, errlen, "rabbitmq %s:%d: %s", host, port, gai_strerror(gai));
        return -1;
    }
    char reason[256] = "no address";
    int rc = -1;
    for (const struct addrinfo *ai = list; ai && rc != 0; ai = ai->ai_next)
        rc = amqp_probe_one(ai, &deadline, reason, sizeof reason);
    freeaddrinfo(list);
    if (rc != 0)
        snprintf(err, errlen, "rabbitmq %s:%d: %s", host, port, reason);
    return rc;
}
