/*
 * cluster/transport_probe.c - the asking side of a probe (transport.h): a
 * blocking connect, request and reply on a plain socket against a
 * deadline, for start-up, before the loop runs. The answering side is
 * transport.c's.
 */
#include "cluster/transport.h"

#include <errno.h>
#include <netdb.h>
#include <poll.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "util/byteorder.h"
#include "util/hostport.h"

static int64_t ms_left(const struct timespec *end)
{
    struct timespec now;
    clock_gettime(CLOCK_MONOTONIC, &now);
    return (int64_t)(end->tv_sec - now.tv_sec) * 1000 + (end->tv_nsec - now.tv_nsec) / 1000000;
}

/* Wait for fd to be ready for `events` until end. @return 1 ready, 0 not. */
static int wait_fd(int fd, short events, const struct timespec *end)
{
    for (;;) {
        int64_t left = ms_left(end);
        if (left <= 0)
            return 0;
        struct pollfd p = {.fd = fd, .events = events};
        int r = poll(&p, 1, (int)left);
        if (r > 0)
            return 1;
        if (r < 0 && errno != EINTR)
            return 0;
    }
}

/* A non-blocking connect to one resolved address. @return fd or -1. */
static int probe_connect(const struct addrinfo *ai, const struct timespec *end)
{
    int fd = socket(ai->ai_family, ai->ai_socktype | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
    if (fd < 0)
        return -1;
    if (connect(fd, ai->ai_addr, ai->ai_addrlen) == 0)
        return fd;
    int soerr = 0;
    socklen_t sl = sizeof soerr;
    if (errno == EINPROGRESS && wait_fd(fd, POLLOUT, end) &&
        getsockopt(fd, SOL_SOCKET, SO_ERROR, &soerr, &sl) == 0 && soerr == 0)
        return fd;
    close(fd);
    return -1;
}

/* Move n bytes (write when out, read otherwise) before end. @return 0 or -1. */
static int probe_io(int fd, uint8_t *p, size_t n, bool out, const struct timespec *end)
{
    while (n > 0) {
        ssize_t r = out ? send(fd, p, n, MSG_NOSIGNAL) : recv(fd, p, n, 0);
        if (r > 0) {
            p += r;
            n -= (size_t)r;
            continue;
        }
        if (r == 0 || (errno != EAGAIN && errno != EINTR))
            return -1;
        if (!wait_fd(fd, out ? POLLOUT : POLLIN, end))
            return -1;
    }
    return 0;
}

long kr_transport_probe(const char *address, const uint8_t *req, size_t len, uint8_t *reply,
                        size_t cap, unsigned timeout_ms, char *err, size_t errlen)
{
    kr_hostport hp = {0}; /* no default port: one is required */
    if (address == NULL || kr_hostport_parse(address, 0, &hp, NULL, 0) < 0 || hp.host[0] == '\0') {
        snprintf(err, errlen, "raft address \"%.128s\" is not HOST:PORT",
                 address != NULL ? address : "");
        return -1;
    }
    if (len > KR_TRANSPORT_PROBE_MAX) {
        snprintf(err, errlen, "probe request longer than %d bytes", KR_TRANSPORT_PROBE_MAX);
        return -1;
    }
    struct timespec end;
    clock_gettime(CLOCK_MONOTONIC, &end);
    end.tv_sec += timeout_ms / 1000;
    end.tv_nsec += (long)(timeout_ms % 1000) * 1000000;
    if (end.tv_nsec >= 1000000000) {
        end.tv_sec++;
        end.tv_nsec -= 1000000000;
    }
    struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM};
    struct addrinfo *res = NULL;
    int gai = getaddrinfo(hp.host, hp.port, &hints, &res);
    if (gai != 0) {
        snprintf(err, errlen, "cannot resolve %.128s: %s", hp.host, gai_strerror(gai));
        return -1;
    }
    int fd = -1;
    for (struct addrinfo *ai = res; ai != NULL && fd < 0; ai = ai->ai_next)
        if (ai->ai_family == AF_INET || ai->ai_family == AF_INET6)
            fd = probe_connect(ai, &end);
    freeaddrinfo(res);
    if (fd < 0) {
        snprintf(err, errlen, "nothing answers at %.128s", address);
        return -1;
    }
    uint8_t head[KR_TRANSPORT_PROBE_HEADER];
    memcpy(head, KR_TRANSPORT_PROBE_MAGIC, 4);
    kr_put_be16(head + 4, KR_TRANSPORT_PROBE_VERSION);
    kr_put_be16(head + 6, (uint16_t)len);
    long got = -1;
    if (probe_io(fd, head, sizeof head, true, &end) < 0 ||
        probe_io(fd, (uint8_t *)req, len, true, &end) < 0 ||
        probe_io(fd, head, sizeof head, false, &end) < 0) {
        snprintf(err, errlen, "no probe reply from %.128s within %u ms", address, timeout_ms);
    } else if (memcmp(head, KR_TRANSPORT_PROBE_MAGIC, 4) != 0 ||
               kr_get_be16(head + 4) != KR_TRANSPORT_PROBE_VERSION || kr_get_be16(head + 6) > cap) {
        snprintf(err, errlen, "%.128s did not answer the probe as a krappy node does", address);
    } else if (probe_io(fd, reply, kr_get_be16(head + 6), false, &end) < 0) {
        snprintf(err, errlen, "%.128s's probe reply was cut short", address);
    } else {
        got = kr_get_be16(head + 6);
    }
    close(fd);
    return got;
}
