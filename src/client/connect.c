/*
 * client/connect.c - connecting a krappy_client: a name resolved to its
 * addresses, each tried with its share of connect_timeout_ms; "HOST:PORT"
 * and lists of them (the first that answers); closing.
 */
#include "krappy/client.h"

#include <errno.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "client/client_internal.h"
#include "util/hostport.h"

/* Fresh buffers for a new connection. */
static void reset_buffers(krappy_client *c)
{
    kr_frame_parser_free(&c->in);
    kr_frame_parser_init(&c->in, c->reply_max);
    kr_buf_free(&c->out);
    kr_buf_init(&c->out,
                (size_t)KR_CLIENT_OUT_HIGH_WATER + KRAPPY_FRAME_HEADER_BYTES + c->send_max);
    c->out_off = 0;
    c->in_flight = 0;
    c->eof = false;
    c->pub_seq = 0;
    kr_ring_clear(&c->pub_wait);
    c->n_asked = c->n_answered = 0;
    kr_ring_clear(&c->due);
}

/* Why a connect failed, with a hint for the usual causes. */
static const char *connect_hint(int err)
{
    switch (err) {
    case ECONNREFUSED:
        return " (is krappyd running? start it with `make run`)";
    case ENETUNREACH:
    case EHOSTUNREACH:
        return " (check the host name and the network)";
    default:
        return "";
    }
}

/*
 * Connect one socket to one address within `budget_ms` (negative: none).
 * @return the fd; -1 with *err set (errno value), or -2 on timeout.
 */
static int connect_one(const struct addrinfo *ai, int budget_ms, int *err)
{
    int fd = socket(ai->ai_family, ai->ai_socktype | SOCK_NONBLOCK | SOCK_CLOEXEC, ai->ai_protocol);
    if (fd < 0) {
        *err = errno;
        return -1;
    }
    if (connect(fd, ai->ai_addr, ai->ai_addrlen) == 0)
        return fd;
    if (errno != EINPROGRESS && errno != EINTR) {
        *err = errno;
        close(fd);
        return -1;
    }
    int64_t deadline = kr_client_deadline_after(budget_ms);
    for (;;) {
        struct pollfd pfd = {.fd = fd, .events = POLLOUT, .revents = 0};
        int n = poll(&pfd, 1, kr_client_ms_left(deadline));
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0) {
            *err = errno;
            close(fd);
            return -1;
        }
        if (n == 0) {
            close(fd);
            return -2;
        }
        break;
    }
    int soerr = 0;
    socklen_t sl = sizeof soerr;
    if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &soerr, &sl) < 0)
        soerr = errno;
    if (soerr != 0) {
        *err = soerr;
        close(fd);
        return -1;
    }
    return fd;
}

static krappy_err connect_to(krappy_client *c, const char *host, const char *port);

krappy_err krappy_connect(krappy_client *c, const char *host, const char *port)
{
    if (c == NULL)
        return KRAPPY_E_USAGE;
    kr_client_clear_error(c);
    krappy_err e = connect_to(c, host, port);
    if (e != KRAPPY_OK) /* later calls say why there is no connection */
        kr_client_keep_close_why(c);
    return e;
}

/* krappy_connect without the bookkeeping. */
static krappy_err connect_to(krappy_client *c, const char *host, const char *port)
{
    kr_client_drop_conn(c);
    if (host == NULL || host[0] == '\0')
        host = KRAPPY_DEFAULT_HOST;
    if (port == NULL || port[0] == '\0')
        port = KR_CLIENT_DEFAULT_PORT;
    kr_hostport_format(c->peer, sizeof c->peer, host, port);
    c->send_max = c->reply_max;
    reset_buffers(c);

    struct addrinfo hints = {0}, *res = NULL;
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    int g = getaddrinfo(host, port, &hints, &res);
    if (g != 0) {
        if (g == EAI_SYSTEM) {
            c->err_errno = errno;
            return kr_client_fail(c, KRAPPY_E_IO, "cannot resolve %s: %s", c->peer,
                                  strerror(errno));
        }
        return kr_client_fail(c, KRAPPY_E_IO,
                              "cannot resolve %s: %s (check the host name and port)", c->peer,
                              gai_strerror(g));
    }

    int n_addrs = 0;
    for (struct addrinfo *ai = res; ai != NULL; ai = ai->ai_next)
        n_addrs++;

    /* Each address gets an equal share of what is left, so one address
     * that swallows packets does not use up the time of the others. */
    int64_t deadline = kr_client_deadline_after(c->connect_timeout_ms);
    int fd = -1, last_err = 0, left = n_addrs;
    bool timed_out = false;
    for (struct addrinfo *ai = res; ai != NULL && fd < 0; ai = ai->ai_next, left--) {
        int budget = kr_client_ms_left(deadline);
        if (budget == 0) {
            timed_out = true;
            break;
        }
        if (budget > 0 && left > 1)
            budget = budget / left > 0 ? budget / left : 1;
        int err = 0;
        fd = connect_one(ai, budget, &err);
        if (fd == -2) {
            timed_out = true;
            fd = -1;
        } else if (fd < 0) {
            last_err = err;
        }
    }
    freeaddrinfo(res);

    if (fd < 0) {
        if (last_err != 0) {
            c->err_errno = last_err;
            return kr_client_fail(c, KRAPPY_E_IO, "cannot connect to %s: %s%s", c->peer,
                                  strerror(last_err), connect_hint(last_err));
        }
        if (timed_out)
            return kr_client_fail(c, KRAPPY_E_TIMEOUT,
                                  "cannot connect to %s within %d ms (is the address right, and is "
                                  "krappyd reachable from here?)",
                                  c->peer, c->connect_timeout_ms);
        return kr_client_fail(c, KRAPPY_E_IO,
                              "cannot connect to %s: the name has no usable address", c->peer);
    }

    int one = 1;
    (void)setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    c->fd = fd;
    c->close_why[0] = '\0';
    return KRAPPY_OK;
}

/* Connect to one "HOST:PORT" of a list (n bytes at s). */
static krappy_err connect_one_addr(krappy_client *c, const char *s, size_t n)
{
    kr_hostport hp = {KRAPPY_DEFAULT_HOST, KR_CLIENT_DEFAULT_PORT};
    char one[KR_HOSTPORT_MAX + 1];
    if (n > KR_HOSTPORT_MAX) {
        kr_client_drop_conn(c);
        kr_client_keep_close_why(c);
        return kr_client_fail(c, KRAPPY_E_USAGE, "address \"%.40s...\" is too long", s);
    }
    memcpy(one, s, n);
    one[n] = '\0';
    if (kr_hostport_parse(one, 0, &hp, c->errmsg, sizeof c->errmsg) < 0) {
        kr_client_drop_conn(c);
        kr_client_keep_close_why(c);
        return KRAPPY_E_USAGE;
    }
    return krappy_connect(c, hp.host, hp.port);
}

krappy_err krappy_connect_addr(krappy_client *c, const char *addr)
{
    if (c == NULL)
        return KRAPPY_E_USAGE;
    kr_client_clear_error(c);
    if (addr == NULL || strchr(addr, ',') == NULL)
        return connect_one_addr(c, addr != NULL ? addr : "", addr != NULL ? strlen(addr) : 0);
    /* A list: the first that takes the connection; the failures said. */
    char tried[KR_CLIENT_ERRMSG_MAX] = "";
    size_t used = 0;
    krappy_err e = KRAPPY_E_USAGE;
    for (const char *p = addr;;) {
        const char *comma = strchr(p, ',');
        size_t n = comma != NULL ? (size_t)(comma - p) : strlen(p);
        if (n == 0) {
            kr_client_drop_conn(c);
            kr_client_keep_close_why(c);
            return kr_client_fail(c, KRAPPY_E_USAGE, "address list \"%.100s\" has an empty entry",
                                  addr);
        }
        e = connect_one_addr(c, p, n);
        if (e == KRAPPY_OK || e == KRAPPY_E_USAGE)
            return e;
        int w = snprintf(tried + used, sizeof tried - used, "%s%s", used ? "; " : "", c->errmsg);
        if (w > 0)
            used = used + (size_t)w < sizeof tried ? used + (size_t)w : sizeof tried - 1;
        if (comma == NULL)
            break;
        p = comma + 1;
    }
    return kr_client_fail(c, e, "no address of the list answered: %s", tried);
}

void krappy_close(krappy_client *c)
{
    if (c == NULL)
        return;
    if (c->fd >= 0) {
        snprintf(c->close_why, sizeof c->close_why, "closed by krappy_close");
        (void)kr_client_write_some(c); /* queued requests go out as far as the socket takes them */
    }
    kr_client_drop_conn(c);
    reset_buffers(c); /* nothing left to read after an explicit close */
}

int krappy_connected(const krappy_client *c)
{
    return c != NULL && c->fd >= 0;
}
