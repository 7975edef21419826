/*
 * client/client.c - libkrappy: one blocking TCP connection to krappyd
 * (include/krappy/client.h is the manual).
 *
 * The socket is non-blocking underneath; every public call that waits does so
 * in poll() against a deadline taken when the call starts (timeout_ms, or
 * connect_timeout_ms for connect). Requests go into an output buffer and
 * replies come out of a proto/frame.h parser. The one loop that moves bytes,
 * pump(), always reads while it waits to write: krappyd stops reading from a
 * connection whose replies are not being read, so a client that only wrote
 * would deadlock against it on a long pipeline.
 *
 * Bounds: the output buffer holds at most KR_CLIENT_OUT_HIGH_WATER bytes of
 * queued requests plus the frame being added (krappy_send waits, reading,
 * above that); unread replies are buffered up to the reply frame limit plus
 * KR_CLIENT_IN_SLACK, after which the client stops reading and a call that
 * still cannot write times out with a sentence saying why.
 *
 * The file in order: moving bytes (pump) and the raw API; typed requests
 * built on it (batches and PUBLISH with its sequence numbers, then the
 * reads, each decoded into one allocation the caller frees); CBOR rendered
 * for people (diagnostic notation, JSON); JSON parsed into CBOR. Request
 * and reply payloads go through proto/msg.h's codecs only.
 */
#include "krappy/client.h"

#include <errno.h>
#include <limits.h>
#include <locale.h>
#include <math.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "client/client_internal.h"
#include "proto/buf.h"
#include "proto/cbor.h"
#include "proto/frame.h"
#include "proto/msg.h"

#ifndef KRAPPY_VERSION
#define KRAPPY_VERSION "0.0.0"
#endif

/* krappy_send waits (reading replies) while this many request bytes are
 * queued and unwritten. */
#define KR_CLIENT_OUT_HIGH_WATER (1u << 20)

/* Unread replies may fill this much beyond one largest reply frame. */
#define KR_CLIENT_IN_SLACK (16u << 20)

/* Bytes read from the socket per recv(2). */
#define KR_CLIENT_READ_CHUNK 65536

/* Longest error sentence kept; server messages are cut to fit. */
#define KR_CLIENT_ERRMSG_MAX 512

/* Longest part of a server's ERROR message copied into errmsg. */
#define KR_CLIENT_SERVER_MSG_MAX 300

/* "HOST:PORT" with brackets for IPv6. */
#define KR_CLIENT_PEER_MAX (KR_CLIENT_HOST_MAX + KR_CLIENT_PORT_MAX + 4)

/* Requests built by the typed calls never exceed this (a frame's size is a
 * u32); the server's max_frame, checked when sending, is usually lower. */
#define KR_CLIENT_REQUEST_MAX ((size_t)UINT32_MAX - KRAPPY_FRAME_MIN_SIZE)

/* The PUBLISH sequence numbers of batches awaiting acknowledgement, oldest
 * first (a ring). Batches sent with ack "none" are not in it. */
typedef struct seq_fifo {
    uint64_t *v;
    size_t head, len, cap;
} seq_fifo;

/* What pump() waits for. */
typedef enum pump_goal {
    PUMP_FRAME, /* a whole reply is parsed (writing meanwhile) */
    PUMP_FLUSH, /* every queued request is written (reading meanwhile) */
    PUMP_BELOW  /* queued requests are below the high-water mark */
} pump_goal;

struct krappy_client {
    int fd; /* -1 when not connected */
    int connect_timeout_ms;
    int timeout_ms;     /* negative: none */
    uint32_t reply_max; /* largest reply size accepted */
    uint32_t send_max;  /* largest request size: the server's max_frame */
    char *token;        /* owned; NULL when unset */
    char *client_name;  /* owned; NULL when unset */

    kr_buf out; /* queued requests; out.data[out_off..len) unwritten */
    size_t out_off;
    kr_frame_parser in; /* received, not yet returned replies */
    size_t in_flight;   /* requests that will get a reply not yet returned */
    bool eof;           /* the server closed its side; buffered replies remain */

    char peer[KR_CLIENT_PEER_MAX + 1]; /* "host:port" for messages */
    char errmsg[KR_CLIENT_ERRMSG_MAX];
    char close_why[KR_CLIENT_ERRMSG_MAX]; /* why the last connection ended */
    int err_errno;
    bool err_range; /* the last ERROR carried first/next */
    uint64_t err_first, err_next;

    kr_buf enc;               /* the typed calls build requests here */
    kr_buf hdrs;              /* PUBLISH: the events' header maps */
    kr_event_out_spec *specs; /* PUBLISH: one per event of the batch */
    size_t specs_cap;
    uint64_t pub_seq;  /* the last PUBLISH sequence number used */
    seq_fifo pub_wait; /* acknowledgements due */
};

/* ---- small helpers ---- */

static int64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* A deadline timeout_ms from now; -1 for none (negative timeout). */
static int64_t deadline_after(int timeout_ms)
{
    return timeout_ms < 0 ? -1 : now_ms() + timeout_ms;
}

/* Milliseconds left before the deadline, for poll(): -1 = no deadline. */
static int ms_left(int64_t deadline)
{
    if (deadline < 0)
        return -1;
    int64_t left = deadline - now_ms();
    if (left <= 0)
        return 0;
    return left > INT_MAX ? INT_MAX : (int)left;
}

static void clear_error(krappy_client *c)
{
    c->errmsg[0] = '\0';
    c->err_errno = 0;
    c->err_range = false;
}

/* Set the error sentence and return `e`. */
__attribute__((format(printf, 3, 4))) static krappy_err fail(krappy_client *c, krappy_err e,
                                                             const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(c->errmsg, sizeof c->errmsg, fmt, ap);
    va_end(ap);
    return e;
}

/* Close the socket but keep the buffered bytes: a frame returned by the last
 * krappy_recv stays readable until the next call, as the header promises. */
static void drop_conn(krappy_client *c)
{
    if (c->fd >= 0)
        close(c->fd);
    c->fd = -1;
    c->in_flight = 0;
    c->eof = false;
    kr_buf_reset(&c->out);
    c->out_off = 0;
}

/* Set the error sentence, close the connection, return `e`. */
__attribute__((format(printf, 3, 4))) static krappy_err fail_close(krappy_client *c, krappy_err e,
                                                                   const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(c->errmsg, sizeof c->errmsg, fmt, ap);
    va_end(ap);
    snprintf(c->close_why, sizeof c->close_why, "%s", c->errmsg);
    drop_conn(c);
    return e;
}

/* KRAPPY_E_USAGE for a call that needs a connection, saying why there is none. */
static krappy_err not_connected(krappy_client *c)
{
    if (c->close_why[0] != '\0')
        return fail(c, KRAPPY_E_USAGE, "not connected (%s); call krappy_connect again",
                    c->close_why);
    return fail(c, KRAPPY_E_USAGE, "not connected: call krappy_connect first");
}

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
    c->pub_wait.head = c->pub_wait.len = 0;
}

/* Copy server text into dst for an error sentence: control characters become
 * '?', invalid UTF-8 bytes too; a cut never splits a UTF-8 sequence. */
static void sanitize(char *dst, size_t dstlen, const uint8_t *src, size_t n)
{
    size_t j = 0;
    bool cut = n > dstlen - 1;

    if (cut)
        n = dstlen - 1;
    for (size_t i = 0; i < n; i++) {
        uint8_t ch = src[i];
        dst[j++] = (ch < 0x20 || ch == 0x7f) ? '?' : (char)ch;
    }
    if (cut) {
        /* back off to the start of a possibly split sequence */
        size_t k = j;
        while (k > 0 && ((uint8_t)dst[k - 1] & 0xC0) == 0x80)
            k--;
        if (k > 0 && (uint8_t)dst[k - 1] >= 0xC0)
            j = k - 1;
    }
    dst[j] = '\0';
    if (!kr_utf8_valid((const uint8_t *)dst, j)) {
        for (size_t i = 0; i < j; i++)
            if ((uint8_t)dst[i] >= 0x80)
                dst[i] = '?';
    }
}

/* 1 when the request gets no reply: a PUBLISH with ack "none". */
static int expects_no_reply(uint32_t type, const void *payload, size_t len)
{
    kr_cbor_item map, ack;

    if (type != KRAPPY_T_PUBLISH || len == 0)
        return 0;
    if (kr_cbor_read_exact(payload, len, &map) < 0 || map.kind != KR_CBOR_MAP)
        return 0;
    if (kr_cbor_map_find(&map, "ack", &ack) != 1)
        return 0;
    return ack.kind == KR_CBOR_TEXT && kr_cbor_text_eq(&ack, "none");
}

/*
 * When the server closes the connection it often says why first (an ERROR
 * reply the caller has not read yet, e.g. UNAUTHENTICATED or SHUTTING_DOWN).
 * Look for a whole ERROR frame among the unread bytes, without consuming
 * anything, and describe it in `out` ("" when there is none).
 */
static void peek_error(const krappy_client *c, char *out, size_t outlen)
{
    const kr_frame_parser *p = &c->in;
    size_t pos = p->pos;

    out[0] = '\0';
    if (p->err != KRAPPY_OK || p->in.data == NULL)
        return;
    while (p->in.len - pos >= KRAPPY_FRAME_HEADER_BYTES) {
        const uint8_t *h = p->in.data + pos;
        uint32_t size = kr_get_be32(h);
        if (kr_frame_check_size(size, p->max_frame) != KRAPPY_OK || p->in.len - pos - 4 < size)
            return;
        if (kr_get_be32(h + 4) == KRAPPY_T_ERROR) {
            kr_reply r;
            kr_error_in e;
            char msg[KR_CLIENT_SERVER_MSG_MAX];
            if (kr_reply_decode(KRAPPY_T_ERROR, h + 8, size - 4, &r) < 0 ||
                kr_reply_error(&r, &e) < 0)
                return;
            sanitize(msg, sizeof msg, e.message.ptr, e.message.len);
            snprintf(out, outlen, " after replying %s: %s", krappy_err_name(e.code), msg);
            return;
        }
        pos += 4 + (size_t)size;
    }
}

/* ---- moving bytes ---- */

static size_t out_pending(const krappy_client *c)
{
    return c->out.len - c->out_off;
}

/* Unread reply bytes the client is willing to hold. */
static size_t in_cap(const krappy_client *c)
{
    return (size_t)c->in.max_frame + KRAPPY_FRAME_HEADER_BYTES + KR_CLIENT_IN_SLACK;
}

/* Take in what the socket still holds, ignoring errors: a server that
 * closes often sent its reason just before. */
static void drain_input(krappy_client *c)
{
    uint8_t chunk[KR_CLIENT_READ_CHUNK];
    while (kr_frame_parser_pending(&c->in) < in_cap(c)) {
        ssize_t n = recv(c->fd, chunk, sizeof chunk, MSG_DONTWAIT);
        if (n <= 0 || kr_frame_parser_feed(&c->in, chunk, (size_t)n) < 0)
            return;
    }
}

/* The connection was lost while writing (EPIPE, ECONNRESET) or reading. */
static krappy_err lost(krappy_client *c, int err)
{
    char why[KR_CLIENT_SERVER_MSG_MAX + 64];
    drain_input(c);
    peek_error(c, why, sizeof why);
    if (why[0] != '\0')
        return fail_close(c, KRAPPY_E_CLOSED, "%s closed the connection%s", c->peer, why);
    if (err == ECONNRESET || err == EPIPE)
        return fail_close(c, KRAPPY_E_CLOSED, "%s closed the connection (%s)", c->peer,
                          strerror(err));
    c->err_errno = err;
    return fail_close(c, KRAPPY_E_IO, "connection to %s failed: %s", c->peer, strerror(err));
}

/* Write what the socket takes now. @return OK (possibly partial) or an error. */
static krappy_err write_some(krappy_client *c)
{
    while (out_pending(c) > 0) {
        ssize_t n =
            send(c->fd, c->out.data + c->out_off, out_pending(c), MSG_NOSIGNAL | MSG_DONTWAIT);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            if (errno == EAGAIN || errno == EWOULDBLOCK)
                return KRAPPY_OK;
            return lost(c, errno);
        }
        c->out_off += (size_t)n;
    }
    kr_buf_reset(&c->out);
    c->out_off = 0;
    return KRAPPY_OK;
}

/* Read what the socket has now (up to the unread-reply cap) into the parser. */
static krappy_err read_some(krappy_client *c)
{
    uint8_t chunk[KR_CLIENT_READ_CHUNK];

    for (;;) {
        size_t pending = kr_frame_parser_pending(&c->in);
        size_t cap = in_cap(c);
        if (pending >= cap)
            return KRAPPY_OK;
        size_t want = cap - pending < sizeof chunk ? cap - pending : sizeof chunk;
        ssize_t n = recv(c->fd, chunk, want, MSG_DONTWAIT);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            if (errno == EAGAIN || errno == EWOULDBLOCK)
                return KRAPPY_OK;
            return lost(c, errno);
        }
        if (n == 0) {
            c->eof = true;
            return KRAPPY_OK;
        }
        if (kr_frame_parser_feed(&c->in, chunk, (size_t)n) < 0)
            return fail_close(c, KRAPPY_E_NOMEM,
                              "out of memory buffering %zu bytes of replies from %s",
                              pending + (size_t)n, c->peer);
        if ((size_t)n < want)
            return KRAPPY_OK;
    }
}

/* The parser refused a size field: say what it was. */
static krappy_err bad_frame(krappy_client *c)
{
    uint32_t size = 0;
    if (c->in.in.len - c->in.pos >= 4)
        size = kr_get_be32(c->in.in.data + c->in.pos);
    if (c->in.err == KRAPPY_E_FRAME_TOO_LARGE)
        return fail_close(c, KRAPPY_E_PROTOCOL,
                          "%s sent a reply of %u bytes, larger than this client's limit of %u "
                          "bytes (raise krappy_opts.max_frame, or call krappy_hello to learn "
                          "the server's max_frame); connection closed",
                          c->peer, size, c->in.max_frame);
    return fail_close(c, KRAPPY_E_PROTOCOL,
                      "%s sent a malformed reply frame (size field %u, the minimum is %u); is it "
                      "really krappyd? connection closed",
                      c->peer, size, (unsigned)KRAPPY_FRAME_MIN_SIZE);
}

/*
 * Move bytes until `goal` is reached or the deadline passes. Reads whenever
 * the socket has data (up to the unread-reply cap) and writes whenever there
 * are queued requests, whatever the goal, so neither side can stall the
 * other. For PUMP_FRAME, *f receives the frame.
 */
static krappy_err pump(krappy_client *c, pump_goal goal, int64_t deadline, int timeout_ms,
                       kr_frame *f)
{
    for (;;) {
        if (goal == PUMP_FRAME) {
            int r = kr_frame_parser_next(&c->in, f);
            if (r > 0)
                return KRAPPY_OK;
            if (r < 0)
                return bad_frame(c);
            if (c->eof) {
                size_t partial = kr_frame_parser_pending(&c->in);
                if (partial > 0)
                    return fail_close(c, KRAPPY_E_CLOSED,
                                      "%s closed the connection in the middle of a reply "
                                      "(%zu bytes of it received)",
                                      c->peer, partial);
                return fail_close(c, KRAPPY_E_CLOSED,
                                  "%s closed the connection with %zu request%s unanswered "
                                  "(did the server stop, or close an idle connection?)",
                                  c->peer, c->in_flight, c->in_flight == 1 ? "" : "s");
            }
        } else if (goal == PUMP_FLUSH ? out_pending(c) == 0
                                      : out_pending(c) < KR_CLIENT_OUT_HIGH_WATER) {
            return KRAPPY_OK;
        }

        struct pollfd pfd = {.fd = c->fd, .events = 0, .revents = 0};
        bool can_read = !c->eof && kr_frame_parser_pending(&c->in) < in_cap(c);
        if (can_read)
            pfd.events |= POLLIN;
        if (out_pending(c) > 0)
            pfd.events |= POLLOUT;
        if (pfd.events == 0) /* cannot happen: eof and a full buffer end above */
            return lost(c, EPIPE);

        int n = poll(&pfd, 1, ms_left(deadline));
        if (n < 0) {
            if (errno == EINTR)
                continue;
            c->err_errno = errno;
            return fail_close(c, KRAPPY_E_IO, "poll on the connection to %s failed: %s", c->peer,
                              strerror(errno));
        }
        if (n == 0) {
            if (goal == PUMP_FRAME)
                return fail_close(c, KRAPPY_E_TIMEOUT,
                                  "no reply from %s within %d ms; connection closed", c->peer,
                                  timeout_ms);
            if (!can_read && !c->eof)
                return fail_close(c, KRAPPY_E_TIMEOUT,
                                  "could not send to %s within %d ms: the server is not "
                                  "reading and %zu bytes of replies are waiting unread (call "
                                  "krappy_recv while pipelining); connection closed",
                                  c->peer, timeout_ms, kr_frame_parser_pending(&c->in));
            return fail_close(c, KRAPPY_E_TIMEOUT,
                              "could not send to %s within %d ms: the server is not reading; "
                              "connection closed",
                              c->peer, timeout_ms);
        }

        krappy_err e;
        if (can_read && (pfd.revents & (POLLIN | POLLHUP | POLLERR))) {
            if ((e = read_some(c)) != KRAPPY_OK)
                return e;
        }
        if (out_pending(c) > 0 && (pfd.revents & (POLLOUT | POLLHUP | POLLERR))) {
            if ((e = write_some(c)) != KRAPPY_OK)
                return e;
        }
    }
}

/* ---- the public API ---- */

krappy_client *krappy_client_new(const krappy_opts *opts)
{
    krappy_opts o = {0};
    if (opts != NULL)
        o = *opts;

    krappy_client *c = calloc(1, sizeof *c);
    if (c == NULL)
        return NULL;
    c->fd = -1;
    c->connect_timeout_ms =
        o.connect_timeout_ms == 0 ? KRAPPY_DEFAULT_CONNECT_TIMEOUT_MS : o.connect_timeout_ms;
    c->timeout_ms = o.timeout_ms == 0 ? KRAPPY_DEFAULT_TIMEOUT_MS : o.timeout_ms;
    c->reply_max = o.max_frame == 0 ? KRAPPY_DEFAULT_MAX_FRAME : o.max_frame;
    if (c->reply_max < KRAPPY_FRAME_MIN_SIZE)
        c->reply_max = KRAPPY_FRAME_MIN_SIZE;
    c->send_max = c->reply_max;
    if (o.token != NULL && (c->token = strdup(o.token)) == NULL)
        goto fail;
    if (o.client_name != NULL && (c->client_name = strdup(o.client_name)) == NULL)
        goto fail;
    kr_frame_parser_init(&c->in, c->reply_max);
    kr_buf_init(&c->out, 0);
    kr_buf_init(&c->enc, KR_CLIENT_REQUEST_MAX);
    kr_buf_init(&c->hdrs, KR_CLIENT_REQUEST_MAX);
    return c;

fail:
    free(c->token);
    free(c);
    return NULL;
}

void krappy_client_free(krappy_client *c)
{
    if (c == NULL)
        return;
    drop_conn(c);
    kr_frame_parser_free(&c->in);
    kr_buf_free(&c->out);
    kr_buf_free(&c->enc);
    kr_buf_free(&c->hdrs);
    free(c->specs);
    free(c->pub_wait.v);
    free(c->token);
    free(c->client_name);
    free(c);
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
    int64_t deadline = deadline_after(budget_ms);
    for (;;) {
        struct pollfd pfd = {.fd = fd, .events = POLLOUT, .revents = 0};
        int n = poll(&pfd, 1, ms_left(deadline));
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
    clear_error(c);
    krappy_err e = connect_to(c, host, port);
    if (e != KRAPPY_OK) /* later calls say why there is no connection */
        snprintf(c->close_why, sizeof c->close_why, "%s", c->errmsg);
    return e;
}

/* krappy_connect without the bookkeeping. */
static krappy_err connect_to(krappy_client *c, const char *host, const char *port)
{
    drop_conn(c);
    if (host == NULL || host[0] == '\0')
        host = KR_CLIENT_DEFAULT_HOST;
    if (port == NULL || port[0] == '\0')
        port = KR_CLIENT_DEFAULT_PORT;
    kr_client_format_addr(c->peer, sizeof c->peer, host, port);
    c->send_max = c->reply_max;
    reset_buffers(c);

    struct addrinfo hints = {0}, *res = NULL;
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    int g = getaddrinfo(host, port, &hints, &res);
    if (g != 0) {
        if (g == EAI_SYSTEM) {
            c->err_errno = errno;
            return fail(c, KRAPPY_E_IO, "cannot resolve %s: %s", c->peer, strerror(errno));
        }
        return fail(c, KRAPPY_E_IO, "cannot resolve %s: %s (check the host name and port)", c->peer,
                    gai_strerror(g));
    }

    int n_addrs = 0;
    for (struct addrinfo *ai = res; ai != NULL; ai = ai->ai_next)
        n_addrs++;

    /* Each address gets an equal share of what is left, so one address
     * that swallows packets does not use up the time of the others. */
    int64_t deadline = deadline_after(c->connect_timeout_ms);
    int fd = -1, last_err = 0, left = n_addrs;
    bool timed_out = false;
    for (struct addrinfo *ai = res; ai != NULL && fd < 0; ai = ai->ai_next, left--) {
        int budget = ms_left(deadline);
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
            return fail(c, KRAPPY_E_IO, "cannot connect to %s: %s%s", c->peer, strerror(last_err),
                        connect_hint(last_err));
        }
        if (timed_out)
            return fail(c, KRAPPY_E_TIMEOUT,
                        "cannot connect to %s within %d ms (is the address right, and is "
                        "krappyd reachable from here?)",
                        c->peer, c->connect_timeout_ms);
        return fail(c, KRAPPY_E_IO, "cannot connect to %s: the name has no usable address",
                    c->peer);
    }

    int one = 1;
    (void)setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    c->fd = fd;
    c->close_why[0] = '\0';
    return KRAPPY_OK;
}

int kr_client_port_valid(const char *port)
{
    size_t n = strlen(port);
    if (n == 0 || n > KR_CLIENT_PORT_MAX)
        return 0;
    unsigned long v = 0;
    for (size_t i = 0; i < n; i++) {
        if (port[i] < '0' || port[i] > '9')
            return 0;
        v = v * 10 + (unsigned long)(port[i] - '0');
    }
    return v >= 1 && v <= 65535;
}

void kr_client_format_addr(char *out, size_t outlen, const char *host, const char *port)
{
    if (strchr(host, ':') != NULL)
        snprintf(out, outlen, "[%s]:%s", host, port);
    else
        snprintf(out, outlen, "%s:%s", host, port);
}

/* Copy n bytes of s as a NUL-terminated string into dst (cap+1 bytes). */
static int take(char *dst, size_t cap, const char *s, size_t n)
{
    if (n > cap)
        return -1;
    memcpy(dst, s, n);
    dst[n] = '\0';
    return 0;
}

int kr_client_split_addr(const char *addr, char host[KR_CLIENT_HOST_MAX + 1],
                         char port[KR_CLIENT_PORT_MAX + 1], char *why, size_t whylen)
{
    char dummy[1];
    if (why == NULL) {
        why = dummy;
        whylen = sizeof dummy;
    }
    why[0] = '\0';
    strcpy(host, KR_CLIENT_DEFAULT_HOST);
    strcpy(port, KR_CLIENT_DEFAULT_PORT);
    if (addr == NULL || addr[0] == '\0')
        return 0;

    const char *port_part = NULL; /* text after the host's ':' */
    if (addr[0] == '[') {
        const char *close = strchr(addr, ']');
        if (close == NULL) {
            snprintf(why, whylen, "address \"%s\" has '[' without ']' (write [::1]:7070)", addr);
            return -1;
        }
        size_t hlen = (size_t)(close - addr - 1);
        if (hlen == 0) {
            snprintf(why, whylen, "address \"%s\" has an empty host in brackets", addr);
            return -1;
        }
        if (take(host, KR_CLIENT_HOST_MAX, addr + 1, hlen) < 0)
            goto too_long;
        if (close[1] == ':')
            port_part = close + 2;
        else if (close[1] != '\0') {
            snprintf(why, whylen, "address \"%s\": expected ':PORT' after ']'", addr);
            return -1;
        }
    } else {
        const char *colon = strchr(addr, ':');
        if (colon != NULL && strchr(colon + 1, ':') != NULL) {
            snprintf(why, whylen,
                     "address \"%s\" has more than one ':'; write an IPv6 address in brackets, "
                     "e.g. [::1]:7070",
                     addr);
            return -1;
        }
        size_t hlen = colon != NULL ? (size_t)(colon - addr) : strlen(addr);
        if (hlen > 0 && take(host, KR_CLIENT_HOST_MAX, addr, hlen) < 0)
            goto too_long;
        if (colon != NULL)
            port_part = colon + 1;
    }
    if (port_part != NULL) {
        if (!kr_client_port_valid(port_part)) {
            snprintf(why, whylen, "address \"%s\": port \"%s\" is not a number from 1 to 65535",
                     addr, port_part);
            return -1;
        }
        strcpy(port, port_part);
    }
    return 0;

too_long:
    snprintf(why, whylen, "address \"%.40s...\": the host is longer than %d bytes", addr,
             KR_CLIENT_HOST_MAX);
    return -1;
}

krappy_err krappy_connect_addr(krappy_client *c, const char *addr)
{
    char host[KR_CLIENT_HOST_MAX + 1], port[KR_CLIENT_PORT_MAX + 1];

    if (c == NULL)
        return KRAPPY_E_USAGE;
    clear_error(c);
    if (kr_client_split_addr(addr, host, port, c->errmsg, sizeof c->errmsg) < 0) {
        drop_conn(c);
        snprintf(c->close_why, sizeof c->close_why, "%s", c->errmsg);
        return KRAPPY_E_USAGE;
    }
    return krappy_connect(c, host, port);
}

void krappy_close(krappy_client *c)
{
    if (c == NULL)
        return;
    if (c->fd >= 0)
        snprintf(c->close_why, sizeof c->close_why, "closed by krappy_close");
    drop_conn(c);
    reset_buffers(c); /* nothing left to read after an explicit close */
}

int krappy_connected(const krappy_client *c)
{
    return c != NULL && c->fd >= 0;
}

const char *krappy_client_errmsg(const krappy_client *c)
{
    return c != NULL ? c->errmsg : "no client (NULL)";
}

int krappy_client_errno(const krappy_client *c)
{
    return c != NULL ? c->err_errno : 0;
}

int krappy_client_fd(const krappy_client *c)
{
    return c != NULL ? c->fd : -1;
}

/* Queue one frame and write what the socket takes; no error cleared.
 * `replies` says whether the request gets a reply (-1: find out). */
static krappy_err send_frame_ex(krappy_client *c, uint32_t type, const void *payload, size_t len,
                                int64_t deadline, int replies)
{
    krappy_err e;

    if (c->fd < 0)
        return not_connected(c);
    if (len > 0 && payload == NULL)
        return fail(c, KRAPPY_E_USAGE, "payload is NULL but its length is %zu", len);
    if (len > (size_t)c->send_max - KRAPPY_FRAME_MIN_SIZE)
        return fail(c, KRAPPY_E_USAGE,
                    "a request (type %u) with a payload of %zu bytes is larger than the "
                    "server's max_frame of %u bytes; send less per request",
                    (unsigned)type, len, c->send_max);

    if (out_pending(c) >= KR_CLIENT_OUT_HIGH_WATER &&
        (e = pump(c, PUMP_BELOW, deadline, c->timeout_ms, NULL)) != KRAPPY_OK)
        return e;

    /* Drop what is written once it is half the buffer: amortised O(1) per
     * byte, where compacting on every send would be quadratic while the
     * socket is full. */
    if (c->out_off > 0 && c->out_off >= c->out.len / 2) {
        kr_buf_consume(&c->out, c->out_off);
        c->out_off = 0;
    }
    if (kr_frame_append(&c->out, type, payload, len) < 0) {
        c->out.failed = false;
        return fail(c, KRAPPY_E_NOMEM, "out of memory queueing a request of %zu bytes", len);
    }
    if (replies < 0)
        replies = !expects_no_reply(type, payload, len);
    if (replies)
        c->in_flight++;
    if ((e = write_some(c)) != KRAPPY_OK)
        return e;
    /* The socket is full: take in the replies already there, so the server
     * (which may have stopped reading until its replies are read) goes on. */
    if (out_pending(c) > 0 && !c->eof && kr_frame_parser_pending(&c->in) < in_cap(c))
        return read_some(c);
    return KRAPPY_OK;
}

static krappy_err send_frame(krappy_client *c, uint32_t type, const void *payload, size_t len,
                             int64_t deadline)
{
    return send_frame_ex(c, type, payload, len, deadline, -1);
}

krappy_err krappy_send(krappy_client *c, uint32_t type, const void *payload, size_t len)
{
    if (c == NULL)
        return KRAPPY_E_USAGE;
    clear_error(c);
    return send_frame(c, type, payload, len, deadline_after(c->timeout_ms));
}

krappy_err krappy_flush(krappy_client *c)
{
    if (c == NULL)
        return KRAPPY_E_USAGE;
    clear_error(c);
    if (c->fd < 0)
        return not_connected(c);
    return pump(c, PUMP_FLUSH, deadline_after(c->timeout_ms), c->timeout_ms, NULL);
}

/* The next reply; timeout_ms is the one the deadline came from (for
 * messages). */
static krappy_err recv_frame(krappy_client *c, krappy_frame *f, int64_t deadline, int timeout_ms)
{
    kr_frame fr;
    krappy_err e;

    if (c->fd < 0) {
        /* Replies that arrived before the connection was lost. */
        if (c->close_why[0] != '\0' && kr_frame_parser_next(&c->in, &fr) == 1)
            goto got;
        return not_connected(c);
    }
    /* Flush first (reading meanwhile): the reply awaited may be to a request
     * still queued, and a caller who stops after its last recv must not
     * leave requests unsent. */
    if ((e = pump(c, PUMP_FLUSH, deadline, timeout_ms, NULL)) != KRAPPY_OK) {
        /* The server closed while we were writing; what it said before
         * closing (often an ERROR saying why) is still returned. */
        if (e != KRAPPY_E_CLOSED || kr_frame_parser_next(&c->in, &fr) != 1)
            return e;
        clear_error(c);
    } else if ((e = pump(c, PUMP_FRAME, deadline, timeout_ms, &fr)) != KRAPPY_OK) {
        return e;
    }
got:
    if (c->in_flight > 0)
        c->in_flight--;
    f->type = fr.type;
    f->payload = fr.payload;
    f->len = fr.len;
    return KRAPPY_OK;
}

krappy_err krappy_recv(krappy_client *c, krappy_frame *f)
{
    if (c == NULL || f == NULL)
        return c ? fail(c, KRAPPY_E_USAGE, "krappy_recv: frame is NULL") : KRAPPY_E_USAGE;
    clear_error(c);
    return recv_frame(c, f, deadline_after(c->timeout_ms), c->timeout_ms);
}

krappy_err krappy_reply_error(krappy_client *c, const krappy_frame *f)
{
    kr_reply r;
    kr_error_in e;
    char msg[KR_CLIENT_SERVER_MSG_MAX];

    if (c == NULL || f == NULL)
        return c ? fail(c, KRAPPY_E_USAGE, "krappy_reply_error: frame is NULL") : KRAPPY_E_USAGE;
    if (f->type != KRAPPY_T_ERROR)
        return KRAPPY_OK;
    if (kr_reply_decode(f->type, f->payload, f->len, &r) < 0 || kr_reply_error(&r, &e) < 0 ||
        e.code <= 0 || e.code >= 256)
        return fail_close(c, KRAPPY_E_PROTOCOL,
                          "%s sent a malformed ERROR reply (no valid `code`); connection closed",
                          c->peer);
    if (e.has_range) {
        c->err_range = true;
        c->err_first = e.first;
        c->err_next = e.next;
    }
    if (e.message.len > 0)
        sanitize(msg, sizeof msg, e.message.ptr, e.message.len);
    else
        snprintf(msg, sizeof msg, "%s", krappy_strerror(e.code));
    if (krappy_err_closes(e.code))
        return fail_close(c, (krappy_err)e.code,
                          "server error %s: %s; the server closed the connection",
                          krappy_err_name(e.code), msg);
    return fail(c, (krappy_err)e.code, "server error %s: %s", krappy_err_name(e.code), msg);
}

/* KRAPPY_E_USAGE when pipelined replies are still unread, as a call would
 * take them for its own. */
static krappy_err check_no_pipeline(krappy_client *c, const char *what)
{
    if (c->in_flight == 0)
        return KRAPPY_OK;
    return fail(c, KRAPPY_E_USAGE,
                "%zu pipelined repl%s still unread: receive them with krappy_recv (or "
                "krappy_publish_recv) before %s",
                c->in_flight, c->in_flight == 1 ? "y is" : "ies are", what);
}

/* A timeout extended by extra_ms (long polls), clamped; negative = none. */
static int extend_timeout(int timeout_ms, uint64_t extra_ms)
{
    if (timeout_ms < 0)
        return -1;
    uint64_t t = (uint64_t)timeout_ms + extra_ms;
    return t > INT_MAX ? INT_MAX : (int)t;
}

/* krappy_call with the timeout extended by extra_ms; errors not cleared. */
static krappy_err call_ext(krappy_client *c, uint32_t type, const void *payload, size_t len,
                           krappy_frame *reply, uint64_t extra_ms)
{
    krappy_err e;
    int timeout_ms = extend_timeout(c->timeout_ms, extra_ms);
    int64_t deadline = deadline_after(timeout_ms);
    size_t before = c->in_flight;

    if ((e = send_frame(c, type, payload, len, deadline)) != KRAPPY_OK)
        return e;
    if (c->in_flight == before) {
        /* No reply will come (PUBLISH with ack "none"): make sure it left. */
        reply->type = 0;
        reply->payload = NULL;
        reply->len = 0;
        return pump(c, PUMP_FLUSH, deadline, timeout_ms, NULL);
    }
    if ((e = recv_frame(c, reply, deadline, timeout_ms)) != KRAPPY_OK)
        return e;
    return krappy_reply_error(c, reply);
}

krappy_err krappy_call(krappy_client *c, uint32_t type, const void *payload, size_t len,
                       krappy_frame *reply)
{
    krappy_err e;

    if (c == NULL || reply == NULL)
        return c ? fail(c, KRAPPY_E_USAGE, "krappy_call: reply is NULL") : KRAPPY_E_USAGE;
    clear_error(c);
    if ((e = check_no_pipeline(c, "krappy_call")) != KRAPPY_OK)
        return e;
    return call_ext(c, type, payload, len, reply, 0);
}

krappy_err krappy_hello(krappy_client *c, krappy_server_info *info)
{
    kr_buf b;
    krappy_frame f;
    kr_reply r;
    kr_cbor_item it;
    krappy_err e;
    uint64_t version = 0, max_frame = 0, max_events = 0;

    if (c == NULL)
        return KRAPPY_E_USAGE;
    kr_buf_init(&b, (size_t)c->send_max);
    kr_enc_hello(&b, (kr_cid){false, 0}, KRAPPY_PROTOCOL_VERSION, c->client_name, c->token);
    if (b.failed) {
        kr_buf_free(&b);
        clear_error(c);
        return fail(c, KRAPPY_E_NOMEM,
                    "cannot build the HELLO request (out of memory, or the "
                    "token and client name are too long)");
    }
    e = krappy_call(c, KRAPPY_T_HELLO, b.data, b.len, &f);
    kr_buf_free(&b);
    if (e != KRAPPY_OK)
        return e;

    if (f.type != KRAPPY_T_OK || kr_reply_decode(f.type, f.payload, f.len, &r) < 0 ||
        !kr_reply_uint(&r, "version", &version))
        return fail_close(c, KRAPPY_E_PROTOCOL,
                          "%s answered HELLO with something other than OK {version, ...}; is it "
                          "really krappyd? connection closed",
                          c->peer);
    if (version != KRAPPY_PROTOCOL_VERSION)
        return fail_close(c, KRAPPY_E_PROTOCOL,
                          "%s agreed to protocol version %llu, but this client speaks %d; "
                          "connection closed",
                          c->peer, (unsigned long long)version, KRAPPY_PROTOCOL_VERSION);
    kr_reply_uint(&r, "max_frame", &max_frame);
    kr_reply_uint(&r, "max_events", &max_events);

    if (max_frame >= KRAPPY_FRAME_MIN_SIZE) {
        uint32_t mf = max_frame > UINT32_MAX ? UINT32_MAX : (uint32_t)max_frame;
        c->send_max = mf;
        size_t out_max = (size_t)KR_CLIENT_OUT_HIGH_WATER + KRAPPY_FRAME_HEADER_BYTES + mf;
        if (out_max > c->out.max)
            c->out.max = out_max;
        if (mf > c->in.max_frame)
            c->in.max_frame = mf;
    }

    if (info != NULL) {
        memset(info, 0, sizeof *info);
        info->version = (uint32_t)version;
        info->max_frame = max_frame;
        info->max_events = max_events;
        if (kr_cbor_map_find(&r.map, "server", &it) == 1 && it.kind == KR_CBOR_TEXT) {
            uint8_t raw[sizeof info->server];
            size_t n = kr_cbor_str_copy(&it, raw, sizeof raw - 1);
            if (n > sizeof raw - 1)
                n = sizeof raw - 1;
            sanitize(info->server, sizeof info->server, raw, n);
        }
    }
    return KRAPPY_OK;
}

krappy_err krappy_ping(krappy_client *c)
{
    krappy_frame f;
    krappy_err e;

    if (c == NULL)
        return KRAPPY_E_USAGE;
    if ((e = krappy_call(c, KRAPPY_T_PING, NULL, 0, &f)) != KRAPPY_OK)
        return e;
    if (f.type != KRAPPY_T_OK)
        return fail_close(c, KRAPPY_E_PROTOCOL,
                          "%s answered PING with a reply of type %u instead of OK; connection "
                          "closed",
                          c->peer, (unsigned)f.type);
    return KRAPPY_OK;
}

/* ======================================================================
 * Typed requests: shared helpers
 * ====================================================================== */

int krappy_client_error_range(const krappy_client *c, uint64_t *first, uint64_t *next)
{
    if (c == NULL || !c->err_range)
        return 0;
    if (first != NULL)
        *first = c->err_first;
    if (next != NULL)
        *next = c->err_next;
    return 1;
}

/* A reply type for messages: "EVENTS", or "type 77". */
static const char *type_label(uint32_t type, char *buf, size_t len)
{
    const char *n = krappy_type_name(type);
    if (n != NULL)
        return n;
    snprintf(buf, len, "type %u", (unsigned)type);
    return buf;
}

/* The server's reply is not what the protocol says: close (the connection
 * cannot be trusted to be in step any more). */
static krappy_err bad_reply(krappy_client *c, const char *request, const char *what)
{
    return fail_close(c, KRAPPY_E_PROTOCOL,
                      "%s answered %s with a malformed reply (%s); connection closed", c->peer,
                      request, what);
}

/* Start building a request in c->enc. */
static kr_buf *enc_begin(krappy_client *c)
{
    kr_buf_reset(&c->enc);
    return &c->enc;
}

static krappy_err publish_error(krappy_client *c, const krappy_frame *f, const kr_reply *r,
                                krappy_publish_result *out);

/*
 * Send the request built in c->enc, wait for its reply (timeout extended by
 * extra_ms) and check it is of type `want`, decoding its map into *r.
 * Server errors come back as their code, errmsg set by krappy_reply_error.
 * The typed requests carry no cid, so an ERROR with the cid of a batch sent
 * with ack "none" is that batch's refusal, arriving in place of our reply
 * just before the server closes: it is reported as such.
 */
static krappy_err request(krappy_client *c, uint32_t type, uint32_t want, uint64_t extra_ms,
                          krappy_frame *f, kr_reply *r)
{
    krappy_err e;
    char b1[24], b2[24];
    const char *name = krappy_type_name(type);

    f->type = 0;
    if (c->enc.failed)
        return fail(c, KRAPPY_E_NOMEM, "out of memory building a %s request", name);
    if ((e = check_no_pipeline(c, name)) != KRAPPY_OK)
        return e;
    if ((e = call_ext(c, type, c->enc.data, c->enc.len, f, extra_ms)) != KRAPPY_OK) {
        if (f->type == KRAPPY_T_ERROR && c->pub_seq > 0 &&
            kr_reply_decode(f->type, f->payload, f->len, r) == 0 && r->cid.set && r->cid.v >= 1 &&
            r->cid.v <= c->pub_seq)
            return publish_error(c, f, r, NULL);
        return e;
    }
    if (f->type != want)
        return fail_close(c, KRAPPY_E_PROTOCOL,
                          "%s answered %s with %s instead of %s; connection closed", c->peer, name,
                          type_label(f->type, b1, sizeof b1), type_label(want, b2, sizeof b2));
    if (kr_reply_decode(f->type, f->payload, f->len, r) < 0)
        return bad_reply(c, name, "not a CBOR map with text keys");
    return KRAPPY_OK;
}

/* A required topic argument. */
static krappy_err need_name(krappy_client *c, const char *fn, const char *what, const char *s)
{
    if (s == NULL || s[0] == '\0')
        return fail(c, KRAPPY_E_USAGE, "%s: the %s is %s", fn, what, s == NULL ? "NULL" : "empty");
    return KRAPPY_OK;
}

/* ---- sequence numbers awaiting acknowledgement ---- */

static int fifo_reserve(seq_fifo *q)
{
    if (q->len < q->cap)
        return 0;
    size_t ncap = q->cap ? q->cap * 2 : 16;
    uint64_t *v = malloc(ncap * sizeof *v);
    if (v == NULL)
        return -1;
    for (size_t i = 0; i < q->len; i++)
        v[i] = q->v[(q->head + i) % q->cap];
    free(q->v);
    q->v = v;
    q->cap = ncap;
    q->head = 0;
    return 0;
}

/* Only after fifo_reserve succeeded. */
static void fifo_push(seq_fifo *q, uint64_t seq)
{
    q->v[(q->head + q->len) % q->cap] = seq;
    q->len++;
}

static uint64_t fifo_front(const seq_fifo *q)
{
    return q->len > 0 ? q->v[q->head] : 0;
}

static void fifo_pop(seq_fifo *q)
{
    if (q->len == 0)
        return;
    q->head = (q->head + 1) % q->cap;
    q->len--;
}

/* ======================================================================
 * Batches
 * ====================================================================== */

/* One event of a batch: offsets into the batch's data. */
typedef struct batch_event {
    krappy_key_type kt;
    bool tombstone; /* value null */
    bool has_ts;
    uint64_t ts;
    size_t key_off, key_len;
    size_t value_off, value_len; /* one encoded CBOR item */
    size_t hdr_off, hdr_len;     /* header pairs (text, bytes, ...), encoded */
    size_t n_hdr;
} batch_event;

struct krappy_batch {
    batch_event *ev;
    size_t n, cap;
    kr_buf data; /* keys, values and header pairs, in order */
    size_t size; /* upper bound of the payload: see krappy_batch_size */
    char errmsg[256];
};

/* The PUBLISH map around the events: {cid, ack, events: [...]}. */
#define KR_BATCH_OVERHEAD 48
/* Per event: the array head, key head, ts and headers map head. */
#define KR_EVENT_OVERHEAD 28

__attribute__((format(printf, 3, 4))) static krappy_err batch_fail(krappy_batch *b, krappy_err e,
                                                                   const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(b->errmsg, sizeof b->errmsg, fmt, ap);
    va_end(ap);
    return e;
}

krappy_batch *krappy_batch_new(void)
{
    krappy_batch *b = calloc(1, sizeof *b);
    if (b == NULL)
        return NULL;
    kr_buf_init(&b->data, KRAPPY_BATCH_MAX_BYTES);
    b->size = KR_BATCH_OVERHEAD;
    return b;
}

void krappy_batch_free(krappy_batch *b)
{
    if (b == NULL)
        return;
    kr_buf_free(&b->data);
    free(b->ev);
    free(b);
}

void krappy_batch_reset(krappy_batch *b)
{
    if (b == NULL)
        return;
    b->n = 0;
    kr_buf_reset(&b->data);
    b->size = KR_BATCH_OVERHEAD;
    b->errmsg[0] = '\0';
}

size_t krappy_batch_count(const krappy_batch *b)
{
    return b != NULL ? b->n : 0;
}

size_t krappy_batch_size(const krappy_batch *b)
{
    return b != NULL ? b->size : 0;
}

const char *krappy_batch_errmsg(const krappy_batch *b)
{
    return b != NULL ? b->errmsg : "no batch (NULL)";
}

/* Room for `more` bytes of data: KRAPPY_E_USAGE past the cap, NOMEM. */
static krappy_err batch_room(krappy_batch *b, size_t more)
{
    if (more > b->data.max - b->data.len)
        return batch_fail(b, KRAPPY_E_USAGE,
                          "the batch would exceed %zu bytes; publish it and start another",
                          (size_t)KRAPPY_BATCH_MAX_BYTES);
    if (kr_buf_reserve(&b->data, more) < 0) {
        b->data.failed = false;
        return batch_fail(b, KRAPPY_E_NOMEM, "out of memory adding %zu bytes to a batch", more);
    }
    return KRAPPY_OK;
}

/* How a value is given to batch_add. */
typedef enum value_form { V_RAW, V_TEXT, V_BYTES } value_form;

static krappy_err batch_add(krappy_batch *b, krappy_key_type kt, const void *key, size_t key_len,
                            value_form vf, const void *value, size_t value_len)
{
    krappy_err e;
    kr_cbor_item item;

    if (b == NULL)
        return KRAPPY_E_USAGE;
    b->errmsg[0] = '\0';
    if (kt != KRAPPY_KEY_NONE && kt != KRAPPY_KEY_BYTES && kt != KRAPPY_KEY_TEXT)
        return batch_fail(b, KRAPPY_E_USAGE, "unknown key type %d", (int)kt);
    if (kt == KRAPPY_KEY_NONE)
        key_len = 0;
    else if (key == NULL && key_len > 0)
        return batch_fail(b, KRAPPY_E_USAGE, "the key is NULL but its length is %zu", key_len);
    if (key_len > KRAPPY_MAX_KEY_BYTES)
        return batch_fail(b, KRAPPY_E_USAGE, "the key has %zu bytes; keys have at most %u", key_len,
                          (unsigned)KRAPPY_MAX_KEY_BYTES);
    if (kt == KRAPPY_KEY_TEXT && !kr_utf8_valid(key, key_len))
        return batch_fail(b, KRAPPY_E_USAGE,
                          "the text key is not valid UTF-8; give it as KRAPPY_KEY_BYTES");
    if (value == NULL && value_len > 0)
        return batch_fail(b, KRAPPY_E_USAGE, "the value is NULL but its length is %zu", value_len);
    bool tomb = vf == V_RAW && value == NULL;
    if (vf == V_RAW && !tomb && kr_cbor_read_exact(value, value_len, &item) < 0)
        return batch_fail(b, KRAPPY_E_USAGE,
                          "the value (%zu bytes) is not exactly one well-formed CBOR item; use "
                          "krappy_batch_add_bytes or _text for plain data",
                          value_len);
    if (vf == V_TEXT && !kr_utf8_valid(value, value_len))
        return batch_fail(b, KRAPPY_E_USAGE,
                          "the text value is not valid UTF-8; add it with krappy_batch_add_bytes");

    if (b->n == b->cap) {
        size_t ncap = b->cap ? b->cap * 2 : 64;
        batch_event *ev = realloc(b->ev, ncap * sizeof *ev);
        if (ev == NULL)
            return batch_fail(b, KRAPPY_E_NOMEM, "out of memory growing a batch");
        b->ev = ev;
        b->cap = ncap;
    }
    if (value_len > SIZE_MAX / 2 || key_len + value_len > SIZE_MAX / 2)
        return batch_fail(b, KRAPPY_E_USAGE, "the event is too large");
    if ((e = batch_room(b, key_len + value_len + 9)) != KRAPPY_OK)
        return e;

    batch_event *ev = &b->ev[b->n];
    memset(ev, 0, sizeof *ev);
    ev->kt = kt;
    ev->key_off = b->data.len;
    ev->key_len = key_len;
    if (key_len > 0)
        kr_buf_append(&b->data, key, key_len);
    ev->value_off = b->data.len;
    if (vf == V_TEXT)
        kr_cbor_put_text(&b->data, value, value_len);
    else if (vf == V_BYTES)
        kr_cbor_put_bytes(&b->data, value, value_len);
    else if (tomb)
        kr_cbor_put_null(&b->data);
    else
        kr_buf_append(&b->data, value, value_len);
    ev->value_len = b->data.len - ev->value_off;
    ev->tombstone = tomb;
    ev->hdr_off = b->data.len;
    b->size += KR_EVENT_OVERHEAD + key_len + ev->value_len;
    b->n++;
    return KRAPPY_OK;
}

krappy_err krappy_batch_add(krappy_batch *b, krappy_key_type kt, const void *key, size_t key_len,
                            const void *value, size_t value_len)
{
    return batch_add(b, kt, key, key_len, V_RAW, value, value_len);
}

krappy_err krappy_batch_add_text(krappy_batch *b, krappy_key_type kt, const void *key,
                                 size_t key_len, const char *text, size_t text_len)
{
    if (b != NULL && text == NULL && text_len == 0)
        text = "";
    return batch_add(b, kt, key, key_len, V_TEXT, text, text_len);
}

krappy_err krappy_batch_add_bytes(krappy_batch *b, krappy_key_type kt, const void *key,
                                  size_t key_len, const void *bytes, size_t len)
{
    if (b != NULL && bytes == NULL && len == 0)
        bytes = "";
    return batch_add(b, kt, key, key_len, V_BYTES, bytes, len);
}

krappy_err krappy_batch_set_ts(krappy_batch *b, uint64_t ts_ms)
{
    if (b == NULL)
        return KRAPPY_E_USAGE;
    b->errmsg[0] = '\0';
    if (b->n == 0)
        return batch_fail(b, KRAPPY_E_USAGE, "krappy_batch_set_ts: the batch has no event yet");
    b->ev[b->n - 1].has_ts = true;
    b->ev[b->n - 1].ts = ts_ms;
    return KRAPPY_OK;
}

/* The last event's header pairs are always at the end of the data: nothing
 * else is appended after an event's value but its own headers. */
krappy_err krappy_batch_add_header(krappy_batch *b, const char *name, size_t name_len,
                                   const void *value, size_t value_len)
{
    krappy_err e;

    if (b == NULL)
        return KRAPPY_E_USAGE;
    b->errmsg[0] = '\0';
    if (b->n == 0)
        return batch_fail(b, KRAPPY_E_USAGE, "krappy_batch_add_header: the batch has no event yet");
    if ((name == NULL && name_len > 0) || (value == NULL && value_len > 0))
        return batch_fail(b, KRAPPY_E_USAGE, "krappy_batch_add_header: NULL with a length");
    if (name_len > SIZE_MAX / 4 || value_len > SIZE_MAX / 4)
        return batch_fail(b, KRAPPY_E_USAGE, "the header is too large");
    if (!kr_utf8_valid((const uint8_t *)name, name_len))
        return batch_fail(b, KRAPPY_E_USAGE, "the header name is not valid UTF-8");
    if ((e = batch_room(b, name_len + value_len + 18)) != KRAPPY_OK)
        return e;
    batch_event *ev = &b->ev[b->n - 1];
    size_t before = b->data.len;
    kr_cbor_put_text(&b->data, name_len ? name : "", name_len);
    kr_cbor_put_bytes(&b->data, value_len ? value : "", value_len);
    ev->hdr_len += b->data.len - before;
    ev->n_hdr++;
    b->size += b->data.len - before;
    return KRAPPY_OK;
}

/* ======================================================================
 * Producing
 * ====================================================================== */

krappy_err krappy_register_producer(krappy_client *c, const char *topic, const char *producer_id,
                                    uint64_t *next)
{
    krappy_frame f;
    kr_reply r;
    krappy_err e;
    uint64_t n;

    if (c == NULL)
        return KRAPPY_E_USAGE;
    clear_error(c);
    if ((e = need_name(c, "krappy_register_producer", "topic", topic)) != KRAPPY_OK ||
        (e = need_name(c, "krappy_register_producer", "producer id", producer_id)) != KRAPPY_OK)
        return e;
    kr_enc_producer_register(enc_begin(c), (kr_cid){false, 0}, topic, producer_id);
    if ((e = request(c, KRAPPY_T_PRODUCER_REGISTER, KRAPPY_T_OK, 0, &f, &r)) != KRAPPY_OK)
        return e;
    if (!kr_reply_uint(&r, "next", &n))
        return bad_reply(c, "PRODUCER_REGISTER", "no uint `next`");
    if (next != NULL)
        *next = n;
    return KRAPPY_OK;
}

/* Encode batch b as the PUBLISH payload with cid `seq`, into c->enc. */
static krappy_err encode_publish(krappy_client *c, const krappy_batch *b, krappy_ack ack,
                                 uint64_t seq)
{
    if (b->n > c->specs_cap) {
        size_t ncap = b->n;
        kr_event_out_spec *s = realloc(c->specs, ncap * sizeof *s);
        if (s == NULL)
            return fail(c, KRAPPY_E_NOMEM, "out of memory encoding a batch of %zu events", b->n);
        c->specs = s;
        c->specs_cap = ncap;
    }
    /* Every header map is built in c->hdrs, reserved at once so that the
     * pointers taken into it stay put. */
    size_t hdr_total = 0;
    for (size_t i = 0; i < b->n; i++)
        if (b->ev[i].n_hdr > 0)
            hdr_total += b->ev[i].hdr_len + 9;
    kr_buf_reset(&c->hdrs);
    if (hdr_total > 0 && kr_buf_reserve(&c->hdrs, hdr_total) < 0)
        return fail(c, KRAPPY_E_NOMEM, "out of memory encoding the headers of a batch");

    for (size_t i = 0; i < b->n; i++) {
        const batch_event *ev = &b->ev[i];
        kr_event_out_spec *s = &c->specs[i];
        memset(s, 0, sizeof *s);
        if (ev->kt != KRAPPY_KEY_NONE) {
            s->key = ev->key_len > 0 ? (const void *)(b->data.data + ev->key_off) : "";
            s->key_len = ev->key_len;
            s->key_is_text = ev->kt == KRAPPY_KEY_TEXT;
        }
        if (!ev->tombstone) {
            s->value = b->data.data + ev->value_off;
            s->value_len = ev->value_len;
        }
        s->has_ts = ev->has_ts;
        s->ts = ev->ts;
        if (ev->n_hdr > 0) {
            size_t at = c->hdrs.len;
            kr_cbor_put_map(&c->hdrs, ev->n_hdr);
            kr_cbor_put_raw(&c->hdrs, b->data.data + ev->hdr_off, ev->hdr_len);
            s->headers = c->hdrs.data + at;
            s->headers_len = c->hdrs.len - at;
        }
    }
    kr_ack_mode mode = ack == KRAPPY_ACK_SYNC   ? KR_ACK_SYNC
                       : ack == KRAPPY_ACK_NONE ? KR_ACK_NONE
                                                : KR_ACK_WRITE;
    kr_enc_publish(enc_begin(c), (kr_cid){true, seq}, mode, c->specs, b->n);
    if (c->enc.failed || c->hdrs.failed)
        return fail(c, KRAPPY_E_NOMEM, "out of memory encoding a batch of %zu events", b->n);
    if (c->enc.len > (size_t)c->send_max - KRAPPY_FRAME_MIN_SIZE && b->n == 1)
        return fail(c, KRAPPY_E_USAGE,
                    "the event encodes to a PUBLISH of %zu bytes, more than the server's "
                    "max_frame of %u bytes allows; make it smaller",
                    c->enc.len, c->send_max);
    if (c->enc.len > (size_t)c->send_max - KRAPPY_FRAME_MIN_SIZE)
        return fail(c, KRAPPY_E_USAGE,
                    "the batch of %zu events encodes to %zu bytes, more than the server's "
                    "max_frame of %u bytes allows; publish fewer events per batch",
                    b->n, c->enc.len, c->send_max);
    return KRAPPY_OK;
}

static krappy_err publish_send(krappy_client *c, const krappy_batch *b, krappy_ack ack,
                               uint64_t *seq_out, int64_t deadline)
{
    krappy_err e;

    if (c->fd < 0)
        return not_connected(c);
    if (b == NULL || b->n == 0)
        return fail(c, KRAPPY_E_USAGE,
                    "cannot publish an empty batch (the protocol wants one "
                    "event at least)");
    if (ack != KRAPPY_ACK_WRITE && ack != KRAPPY_ACK_SYNC && ack != KRAPPY_ACK_NONE)
        return fail(c, KRAPPY_E_USAGE, "unknown ack mode %d", (int)ack);
    uint64_t seq = c->pub_seq + 1;
    if ((e = encode_publish(c, b, ack, seq)) != KRAPPY_OK)
        return e;
    if (ack != KRAPPY_ACK_NONE && fifo_reserve(&c->pub_wait) < 0)
        return fail(c, KRAPPY_E_NOMEM, "out of memory queueing a PUBLISH");
    e = send_frame_ex(c, KRAPPY_T_PUBLISH, c->enc.data, c->enc.len, deadline,
                      ack != KRAPPY_ACK_NONE);
    /* Once queued, the request counts even if writing then failed: the
     * connection is gone then, and the queue with it. */
    if (e != KRAPPY_OK && c->fd >= 0)
        return e;
    c->pub_seq = seq;
    if (ack != KRAPPY_ACK_NONE && c->fd >= 0)
        fifo_push(&c->pub_wait, seq);
    if (seq_out != NULL)
        *seq_out = seq;
    return e;
}

krappy_err krappy_publish_send(krappy_client *c, const krappy_batch *b, krappy_ack ack,
                               uint64_t *seq)
{
    if (c == NULL)
        return KRAPPY_E_USAGE;
    clear_error(c);
    return publish_send(c, b, ack, seq, deadline_after(c->timeout_ms));
}

/*
 * An ERROR came where a PUBLISH acknowledgement (or the confirming PING's
 * reply) was due. Acknowledged batches are answered in order, so an ERROR
 * whose cid is one of our sequence numbers other than the oldest awaited
 * one belongs to a batch sent with ack "none": the server closes after it.
 */
static krappy_err publish_error(krappy_client *c, const krappy_frame *f, const kr_reply *r,
                                krappy_publish_result *out)
{
    char msg[KR_CLIENT_ERRMSG_MAX];
    uint64_t front = fifo_front(&c->pub_wait);
    bool ours = r->cid.set && r->cid.v >= 1 && r->cid.v <= c->pub_seq;

    krappy_err e = krappy_reply_error(c, f);
    if (e == KRAPPY_E_PROTOCOL)
        return e;
    snprintf(msg, sizeof msg, "%s", c->errmsg);
    if (ours && r->cid.v != front) {
        uint64_t seq = r->cid.v;
        if (out != NULL)
            out->seq = seq;
        if (seq == c->pub_seq)
            return fail_close(c, e,
                              "batch #%llu (ack none) was refused, %s; the server closes the "
                              "connection after that",
                              (unsigned long long)seq, msg);
        return fail_close(c, e,
                          "batch #%llu (ack none) was refused, %s; the server closes the "
                          "connection after that, so batches #%llu to #%llu were not stored",
                          (unsigned long long)seq, msg, (unsigned long long)seq,
                          (unsigned long long)c->pub_seq);
    }
    if (front == 0) /* the confirming PING's own error */
        return e;
    fifo_pop(&c->pub_wait);
    if (out != NULL)
        out->seq = front;
    return fail(c, e, "batch #%llu was refused, %s", (unsigned long long)front, msg);
}

static krappy_err publish_recv(krappy_client *c, krappy_publish_result *out, int64_t deadline,
                               int timeout_ms)
{
    krappy_frame f;
    kr_reply r;
    krappy_err e;
    uint64_t first, count;
    char b1[24];

    if (c->pub_wait.len == 0) {
        if (c->fd < 0)
            return not_connected(c);
        return fail(c, KRAPPY_E_USAGE,
                    "no PUBLISH acknowledgement is due (batches sent with ack none get none: "
                    "see krappy_publish_confirm)");
    }
    uint64_t front = fifo_front(&c->pub_wait);
    if ((e = recv_frame(c, &f, deadline, timeout_ms)) != KRAPPY_OK)
        return e;
    if (kr_reply_decode(f.type, f.payload, f.len, &r) < 0)
        return bad_reply(c, "PUBLISH", "not a CBOR map with text keys");
    if (f.type == KRAPPY_T_ERROR)
        return publish_error(c, &f, &r, out);
    if (f.type != KRAPPY_T_OK)
        return fail_close(c, KRAPPY_E_PROTOCOL,
                          "%s answered PUBLISH with %s instead of OK (was another pipelined "
                          "request's reply due?); connection closed",
                          c->peer, type_label(f.type, b1, sizeof b1));
    if (r.cid.set && r.cid.v != front)
        return fail_close(c, KRAPPY_E_PROTOCOL,
                          "%s acknowledged batch #%llu where batch #%llu was due; connection "
                          "closed",
                          c->peer, (unsigned long long)r.cid.v, (unsigned long long)front);
    if (!kr_reply_uint(&r, "first", &first) || !kr_reply_uint(&r, "count", &count))
        return bad_reply(c, "PUBLISH", "no uint `first` and `count`");
    fifo_pop(&c->pub_wait);
    if (out != NULL) {
        out->seq = front;
        out->first = first;
        out->count = count;
    }
    return KRAPPY_OK;
}

krappy_err krappy_publish_recv(krappy_client *c, krappy_publish_result *out)
{
    if (c == NULL)
        return KRAPPY_E_USAGE;
    clear_error(c);
    if (out != NULL)
        memset(out, 0, sizeof *out);
    return publish_recv(c, out, deadline_after(c->timeout_ms), c->timeout_ms);
}

krappy_err krappy_publish(krappy_client *c, const krappy_batch *b, krappy_ack ack,
                          krappy_publish_result *out)
{
    krappy_err e;
    uint64_t seq = 0;

    if (c == NULL)
        return KRAPPY_E_USAGE;
    clear_error(c);
    if (out != NULL)
        memset(out, 0, sizeof *out);
    if ((e = check_no_pipeline(c, "krappy_publish")) != KRAPPY_OK)
        return e;
    int64_t deadline = deadline_after(c->timeout_ms);
    if ((e = publish_send(c, b, ack, &seq, deadline)) != KRAPPY_OK)
        return e;
    if (ack == KRAPPY_ACK_NONE) {
        if (out != NULL)
            out->seq = seq;
        return pump(c, PUMP_FLUSH, deadline, c->timeout_ms, NULL);
    }
    return publish_recv(c, out, deadline, c->timeout_ms);
}

krappy_err krappy_publish_confirm(krappy_client *c)
{
    krappy_frame f;
    kr_reply r;
    krappy_err e;
    char b1[24];

    if (c == NULL)
        return KRAPPY_E_USAGE;
    clear_error(c);
    if ((e = check_no_pipeline(c, "krappy_publish_confirm")) != KRAPPY_OK)
        return e;
    if (c->fd < 0)
        return not_connected(c);
    int64_t deadline = deadline_after(c->timeout_ms);
    if ((e = send_frame_ex(c, KRAPPY_T_PING, NULL, 0, deadline, 1)) != KRAPPY_OK)
        return e;
    if ((e = recv_frame(c, &f, deadline, c->timeout_ms)) != KRAPPY_OK)
        return e;
    if (kr_reply_decode(f.type, f.payload, f.len, &r) < 0)
        return bad_reply(c, "PING", "not a CBOR map with text keys");
    if (f.type == KRAPPY_T_ERROR)
        return publish_error(c, &f, &r, NULL);
    if (f.type != KRAPPY_T_OK)
        return fail_close(c, KRAPPY_E_PROTOCOL,
                          "%s answered PING with %s instead of OK; connection closed", c->peer,
                          type_label(f.type, b1, sizeof b1));
    return KRAPPY_OK;
}

/* ======================================================================
 * Reading: results live in one allocation each
 * ====================================================================== */

/* A record of EVENTS ([offset, ts, key, value(, headers)]) or of ENTRIES
 * ([key, offset, ts, value]), as views into a payload. */
typedef struct rec_view {
    uint64_t offset, ts;
    kr_cbor_item key, value;
    bool has_headers;
    kr_cbor_item headers;
} rec_view;

typedef int (*rec_reader)(const kr_cbor_item *item, rec_view *v);

static int read_event_rec(const kr_cbor_item *item, rec_view *v)
{
    kr_event_view ev;
    if (kr_event_view_read(item, &ev) < 0)
        return -1;
    v->offset = ev.offset;
    v->ts = ev.ts;
    v->key = ev.key;
    v->value = ev.value;
    v->has_headers = ev.has_headers;
    v->headers = ev.headers;
    return 0;
}

static int read_entry_rec(const kr_cbor_item *item, rec_view *v)
{
    kr_cbor_iter it;
    kr_cbor_item part[4];
    int n = 0;

    if (item->kind != KR_CBOR_ARRAY)
        return -1;
    kr_cbor_iter_init(&it, item);
    for (;;) {
        kr_cbor_item x;
        int r = kr_cbor_iter_next(&it, &x);
        if (r == 0)
            break;
        if (r < 0 || n == 4)
            return -1;
        part[n++] = x;
    }
    if (n != 4 || (part[0].kind != KR_CBOR_BYTES && part[0].kind != KR_CBOR_TEXT) ||
        part[1].kind != KR_CBOR_UINT || part[2].kind != KR_CBOR_UINT)
        return -1;
    v->key = part[0];
    v->offset = part[1].u;
    v->ts = part[2].u;
    v->value = part[3];
    v->has_headers = false;
    return 0;
}

/* Bytes needed to join an indefinite-length key (0 for a definite one). */
static size_t join_need(const kr_cbor_item *s)
{
    return (s->kind == KR_CBOR_BYTES || s->kind == KR_CBOR_TEXT) && s->indefinite ? s->str_len : 0;
}

/* Point at a string's content, joining an indefinite one at *join. */
static const uint8_t *str_content(const kr_cbor_item *s, uint8_t **join)
{
    if (!s->indefinite)
        return s->str != NULL ? s->str : s->raw + s->raw_len;
    const uint8_t *p = *join;
    kr_cbor_str_copy(s, *join, s->str_len);
    *join += s->str_len;
    return p;
}

static void fill_event(krappy_event *e, const rec_view *v, uint8_t **join)
{
    memset(e, 0, sizeof *e);
    e->offset = v->offset;
    e->ts = v->ts;
    if (v->key.kind != KR_CBOR_NULL) {
        e->has_key = 1;
        e->key_is_text = v->key.kind == KR_CBOR_TEXT;
        e->key = str_content(&v->key, join);
        e->key_len = v->key.str_len;
    }
    e->value = v->value.raw;
    e->value_len = v->value.raw_len;
    e->is_tombstone = v->value.kind == KR_CBOR_NULL;
    if (v->has_headers) {
        e->has_headers = 1;
        e->headers = v->headers.raw;
        e->headers_len = v->headers.raw_len;
    }
}

/* Round up to a multiple of 8 (keeps what follows aligned for pointers). */
#define ALIGN8(n) (((n) + 7) & ~(size_t)7)

/*
 * Decode the array `field` of records in a reply into one allocation:
 * [head bytes (zeroed)][krappy_event x n][copy of the payload][joined keys].
 * The reply map is decoded again from the copy into *r, so what the caller
 * reads from it points into the allocation too.
 */
static krappy_err decode_records(krappy_client *c, const krappy_frame *f, const char *request,
                                 const char *field, rec_reader read, size_t head, void **block,
                                 krappy_event **events, size_t *count, kr_reply *r)
{
    kr_reply r0;
    kr_cbor_item arr, item;
    kr_cbor_iter it;
    rec_view v;
    size_t n = 0, join = 0;
    char what[64];

    if (kr_reply_decode(f->type, f->payload, f->len, &r0) < 0)
        return bad_reply(c, request, "not a CBOR map with text keys");
    if (kr_cbor_map_find(&r0.map, field, &arr) != 1 || arr.kind != KR_CBOR_ARRAY) {
        snprintf(what, sizeof what, "no array `%s`", field);
        return bad_reply(c, request, what);
    }
    kr_cbor_iter_init(&it, &arr);
    while (kr_cbor_iter_next(&it, &item) == 1) {
        if (read(&item, &v) < 0) {
            snprintf(what, sizeof what, "%s[%zu] is malformed", field, n);
            return bad_reply(c, request, what);
        }
        join += join_need(&v.key);
        n++;
    }

    head = ALIGN8(head);
    if (n > (SIZE_MAX - head - f->len - join) / sizeof(krappy_event))
        return fail(c, KRAPPY_E_NOMEM, "a %s reply too large to hold", request);
    size_t total = head + n * sizeof(krappy_event) + f->len + join;
    uint8_t *mem = malloc(total > 0 ? total : 1);
    if (mem == NULL)
        return fail(c, KRAPPY_E_NOMEM, "out of memory holding a %s reply of %zu bytes", request,
                    f->len);
    memset(mem, 0, head);
    krappy_event *ev = (krappy_event *)(void *)(mem + head);
    uint8_t *copy = mem + head + n * sizeof(krappy_event);
    uint8_t *jp = copy + f->len;
    if (f->len > 0)
        memcpy(copy, f->payload, f->len);

    /* The copy decodes as the original did. */
    kr_reply_decode(f->type, copy, f->len, r);
    kr_cbor_map_find(&r->map, field, &arr);
    kr_cbor_iter_init(&it, &arr);
    for (size_t i = 0; i < n && kr_cbor_iter_next(&it, &item) == 1; i++) {
        read(&item, &v);
        fill_event(&ev[i], &v, &jp);
    }
    *block = mem;
    *events = n > 0 ? ev : NULL;
    *count = n;
    return KRAPPY_OK;
}

krappy_err krappy_fetch(krappy_client *c, const char *topic, uint64_t offset, uint64_t max,
                        uint64_t max_bytes, uint64_t wait_ms, krappy_events **out)
{
    krappy_frame f;
    kr_reply r;
    krappy_err e;
    void *mem;
    krappy_event *ev;
    size_t n;

    if (out != NULL)
        *out = NULL;
    if (c == NULL)
        return KRAPPY_E_USAGE;
    clear_error(c);
    if (out == NULL)
        return fail(c, KRAPPY_E_USAGE, "krappy_fetch: out is NULL");
    if ((e = need_name(c, "krappy_fetch", "topic", topic)) != KRAPPY_OK)
        return e;
    kr_enc_fetch(enc_begin(c), (kr_cid){false, 0}, topic, offset,
                 max != 0 ? max : KRAPPY_DEFAULT_MAX, wait_ms,
                 max_bytes != 0 ? max_bytes : KRAPPY_DEFAULT_MAX_BYTES);
    if ((e = request(c, KRAPPY_T_FETCH, KRAPPY_T_EVENTS, wait_ms, &f, &r)) != KRAPPY_OK)
        return e;
    if ((e = decode_records(c, &f, "FETCH", "events", read_event_rec, sizeof(krappy_events), &mem,
                            &ev, &n, &r)) != KRAPPY_OK)
        return e;
    krappy_events *res = mem;
    if (!kr_reply_uint(&r, "next", &res->next)) {
        free(mem);
        return bad_reply(c, "FETCH", "no uint `next`");
    }
    res->count = n;
    res->events = ev;
    *out = res;
    return KRAPPY_OK;
}

void krappy_events_free(krappy_events *ev)
{
    free(ev);
}

krappy_err krappy_get(krappy_client *c, const char *topic, const void *key, size_t key_len,
                      krappy_value **out)
{
    krappy_frame f;
    kr_reply r;
    krappy_err e;
    rec_view v;
    kr_cbor_item hd;

    if (out != NULL)
        *out = NULL;
    if (c == NULL)
        return KRAPPY_E_USAGE;
    clear_error(c);
    if (out == NULL)
        return fail(c, KRAPPY_E_USAGE, "krappy_get: out is NULL");
    if ((e = need_name(c, "krappy_get", "topic", topic)) != KRAPPY_OK)
        return e;
    if (key == NULL && key_len > 0)
        return fail(c, KRAPPY_E_USAGE, "krappy_get: the key is NULL but its length is %zu",
                    key_len);
    kr_enc_get(enc_begin(c), (kr_cid){false, 0}, topic, key_len > 0 ? key : "", key_len);
    if ((e = request(c, KRAPPY_T_GET, KRAPPY_T_VALUE, 0, &f, &r)) != KRAPPY_OK)
        return e;

    /* Read the fields from the payload, then again from the copy. */
    for (int pass = 0; pass < 2; pass++) {
        memset(&v, 0, sizeof v);
        if (kr_cbor_map_find(&r.map, "key", &v.key) != 1 ||
            (v.key.kind != KR_CBOR_BYTES && v.key.kind != KR_CBOR_TEXT) ||
            !kr_reply_uint(&r, "offset", &v.offset) || !kr_reply_uint(&r, "ts", &v.ts) ||
            kr_cbor_map_find(&r.map, "value", &v.value) != 1)
            return bad_reply(c, "GET", "VALUE needs key, offset, ts and value");
        if (kr_cbor_map_find(&r.map, "headers", &hd) == 1 && hd.kind != KR_CBOR_NULL) {
            if (hd.kind != KR_CBOR_MAP)
                return bad_reply(c, "GET", "`headers` is not a map");
            v.has_headers = true;
            v.headers = hd;
        }
        if (pass == 1)
            break;
        size_t head = ALIGN8(sizeof(krappy_value));
        size_t join = join_need(&v.key);
        uint8_t *mem = malloc(head + f.len + join);
        if (mem == NULL)
            return fail(c, KRAPPY_E_NOMEM, "out of memory holding a VALUE of %zu bytes", f.len);
        memcpy(mem + head, f.payload, f.len);
        kr_reply_decode(f.type, mem + head, f.len, &r);
        *out = (krappy_value *)(void *)mem;
    }
    uint8_t *jp = (uint8_t *)*out + ALIGN8(sizeof(krappy_value)) + f.len;
    krappy_event ev;
    fill_event(&ev, &v, &jp);
    krappy_value *val = *out;
    memset(val, 0, sizeof *val);
    val->offset = ev.offset;
    val->ts = ev.ts;
    val->key_is_text = ev.key_is_text;
    val->key = ev.key;
    val->key_len = ev.key_len;
    val->value = ev.value;
    val->value_len = ev.value_len;
    val->has_headers = ev.has_headers;
    val->headers = ev.headers;
    val->headers_len = ev.headers_len;
    return KRAPPY_OK;
}

void krappy_value_free(krappy_value *v)
{
    free(v);
}

/* ---- SCAN ---- */

struct krappy_scan {
    char *topic;
    uint64_t limit;
    uint8_t *cursor; /* NULL at the end */
    size_t cursor_len;
    uint64_t snapshot;
    void *page; /* the current page's allocation */
    krappy_event *entries;
    size_t count;
};

/* Take the ENTRIES reply f as the scan's current page. */
static krappy_err scan_take_page(krappy_client *c, krappy_scan *s, const krappy_frame *f)
{
    kr_reply r;
    kr_cbor_item cur;
    krappy_err e;
    void *mem;
    krappy_event *ent;
    size_t n;
    uint64_t snapshot;
    uint8_t *cursor = NULL;
    size_t cursor_len = 0;

    if ((e = decode_records(c, f, "SCAN", "entries", read_entry_rec, 0, &mem, &ent, &n, &r)) !=
        KRAPPY_OK)
        return e;
    if (!kr_reply_uint(&r, "snapshot", &snapshot)) {
        free(mem);
        return bad_reply(c, "SCAN", "no uint `snapshot`");
    }
    int found = kr_cbor_map_find(&r.map, "cursor", &cur);
    if (found == 1 && cur.kind != KR_CBOR_NULL) {
        if (cur.kind != KR_CBOR_BYTES) {
            free(mem);
            return bad_reply(c, "SCAN", "`cursor` is not a byte string");
        }
        cursor_len = cur.str_len;
        cursor = malloc(cursor_len > 0 ? cursor_len : 1);
        if (cursor == NULL) {
            free(mem);
            return fail(c, KRAPPY_E_NOMEM, "out of memory keeping a scan cursor");
        }
        kr_cbor_str_copy(&cur, cursor, cursor_len);
    }
    free(s->page);
    free(s->cursor);
    s->page = mem;
    s->entries = ent;
    s->count = n;
    s->snapshot = snapshot;
    s->cursor = cursor;
    s->cursor_len = cursor_len;
    return KRAPPY_OK;
}

krappy_err krappy_scan_begin(krappy_client *c, const char *topic, const void *prefix,
                             size_t prefix_len, const void *after, size_t after_len, uint64_t limit,
                             krappy_scan **out)
{
    krappy_frame f;
    kr_reply r;
    krappy_err e;

    if (out != NULL)
        *out = NULL;
    if (c == NULL)
        return KRAPPY_E_USAGE;
    clear_error(c);
    if (out == NULL)
        return fail(c, KRAPPY_E_USAGE, "krappy_scan_begin: out is NULL");
    if ((e = need_name(c, "krappy_scan_begin", "topic", topic)) != KRAPPY_OK)
        return e;
    krappy_scan *s = calloc(1, sizeof *s);
    if (s == NULL || (s->topic = strdup(topic)) == NULL) {
        free(s);
        return fail(c, KRAPPY_E_NOMEM, "out of memory starting a scan");
    }
    s->limit = limit;
    /* A non-NULL empty prefix is no restriction; an empty `after` is one. */
    kr_enc_scan(enc_begin(c), (kr_cid){false, 0}, topic, prefix_len > 0 ? prefix : NULL, prefix_len,
                after != NULL ? (after_len > 0 ? after : "") : NULL, after_len, limit, NULL, 0);
    if ((e = request(c, KRAPPY_T_SCAN, KRAPPY_T_ENTRIES, 0, &f, &r)) != KRAPPY_OK ||
        (e = scan_take_page(c, s, &f)) != KRAPPY_OK) {
        krappy_scan_free(s);
        return e;
    }
    *out = s;
    return KRAPPY_OK;
}

krappy_err krappy_scan_next_page(krappy_client *c, krappy_scan *s)
{
    krappy_frame f;
    kr_reply r;
    krappy_err e;

    if (c == NULL)
        return KRAPPY_E_USAGE;
    clear_error(c);
    if (s == NULL)
        return fail(c, KRAPPY_E_USAGE, "krappy_scan_next_page: the scan is NULL");
    if (s->cursor == NULL) { /* the end: an empty page */
        free(s->page);
        s->page = NULL;
        s->entries = NULL;
        s->count = 0;
        return KRAPPY_OK;
    }
    kr_enc_scan(enc_begin(c), (kr_cid){false, 0}, s->topic, NULL, 0, NULL, 0, s->limit,
                s->cursor_len > 0 ? (const void *)s->cursor : "", s->cursor_len);
    if ((e = request(c, KRAPPY_T_SCAN, KRAPPY_T_ENTRIES, 0, &f, &r)) != KRAPPY_OK)
        return e;
    return scan_take_page(c, s, &f);
}

const krappy_event *krappy_scan_entries(const krappy_scan *s, size_t *count)
{
    if (count != NULL)
        *count = s != NULL ? s->count : 0;
    return s != NULL ? s->entries : NULL;
}

int krappy_scan_more(const krappy_scan *s)
{
    return s != NULL && s->cursor != NULL;
}

uint64_t krappy_scan_snapshot(const krappy_scan *s)
{
    return s != NULL ? s->snapshot : 0;
}

void krappy_scan_free(krappy_scan *s)
{
    if (s == NULL)
        return;
    free(s->topic);
    free(s->cursor);
    free(s->page);
    free(s);
}

/* ---- TOPICS and STATS ---- */

/* Copy a text item as a NUL-terminated string at *strs. */
static const char *take_text(const kr_cbor_item *t, char **strs)
{
    char *p = *strs;
    kr_cbor_str_copy(t, (uint8_t *)p, t->str_len);
    p[t->str_len] = '\0';
    *strs += t->str_len + 1;
    return p;
}

/* Read {name, first, next} of TOPICS. */
static int read_topic(const kr_cbor_item *m, kr_cbor_item *name, uint64_t *first, uint64_t *next)
{
    kr_cbor_item a, b;
    if (m->kind != KR_CBOR_MAP || kr_cbor_map_find(m, "name", name) != 1 ||
        name->kind != KR_CBOR_TEXT || kr_cbor_map_find(m, "first", &a) != 1 ||
        a.kind != KR_CBOR_UINT || kr_cbor_map_find(m, "next", &b) != 1 || b.kind != KR_CBOR_UINT)
        return -1;
    *first = a.u;
    *next = b.u;
    return 0;
}

krappy_err krappy_topics(krappy_client *c, krappy_topic_list **out)
{
    krappy_frame f;
    kr_reply r;
    krappy_err e;
    kr_cbor_item arr, item, name;
    kr_cbor_iter it;
    uint64_t first, next;
    size_t n = 0, strs = 0;

    if (out != NULL)
        *out = NULL;
    if (c == NULL)
        return KRAPPY_E_USAGE;
    clear_error(c);
    if (out == NULL)
        return fail(c, KRAPPY_E_USAGE, "krappy_topics: out is NULL");
    kr_enc_empty(enc_begin(c), (kr_cid){false, 0});
    if ((e = request(c, KRAPPY_T_TOPICS, KRAPPY_T_OK, 0, &f, &r)) != KRAPPY_OK)
        return e;
    if (kr_cbor_map_find(&r.map, "topics", &arr) != 1 || arr.kind != KR_CBOR_ARRAY)
        return bad_reply(c, "TOPICS", "no array `topics`");
    kr_cbor_iter_init(&it, &arr);
    while (kr_cbor_iter_next(&it, &item) == 1) {
        if (read_topic(&item, &name, &first, &next) < 0)
            return bad_reply(c, "TOPICS", "a topic lacks a text `name` or uint `first`/`next`");
        strs += name.str_len + 1;
        n++;
    }
    size_t head = ALIGN8(sizeof(krappy_topic_list));
    if (n > (SIZE_MAX - head - strs) / sizeof(krappy_topic_info))
        return fail(c, KRAPPY_E_NOMEM, "a TOPICS reply too large to hold");
    uint8_t *mem = malloc(head + n * sizeof(krappy_topic_info) + strs + 1);
    if (mem == NULL)
        return fail(c, KRAPPY_E_NOMEM, "out of memory holding %zu topics", n);
    krappy_topic_list *l = (krappy_topic_list *)(void *)mem;
    krappy_topic_info *t = (krappy_topic_info *)(void *)(mem + head);
    char *sp = (char *)(mem + head + n * sizeof(krappy_topic_info));
    kr_cbor_iter_init(&it, &arr);
    for (size_t i = 0; i < n && kr_cbor_iter_next(&it, &item) == 1; i++) {
        read_topic(&item, &name, &t[i].first, &t[i].next);
        t[i].name_len = name.str_len;
        t[i].name = take_text(&name, &sp);
    }
    l->count = n;
    l->topics = n > 0 ? t : NULL;
    *out = l;
    return KRAPPY_OK;
}

void krappy_topic_list_free(krappy_topic_list *l)
{
    free(l);
}

/* Read one {group, cursor, pending, lag, members} of STATS. */
static int read_group(const kr_cbor_item *m, kr_cbor_item *name, krappy_group_stats *g)
{
    static const char *const fields[] = {"cursor", "pending", "lag", "members"};
    uint64_t *dst[] = {&g->cursor, &g->pending, &g->lag, &g->members};
    kr_cbor_item x;

    if (m->kind != KR_CBOR_MAP || kr_cbor_map_find(m, "group", name) != 1 ||
        name->kind != KR_CBOR_TEXT)
        return -1;
    for (size_t i = 0; i < 4; i++) {
        if (kr_cbor_map_find(m, fields[i], &x) != 1 || x.kind != KR_CBOR_UINT)
            return -1;
        *dst[i] = x.u;
    }
    return 0;
}

krappy_err krappy_stats(krappy_client *c, const char *topic, const char *group,
                        krappy_topic_stats **out)
{
    krappy_frame f;
    kr_reply r;
    krappy_err e;
    kr_cbor_item arr, item, name, tname;
    kr_cbor_iter it;
    krappy_group_stats g;
    krappy_topic_stats st;
    size_t n = 0, strs = 0;

    if (out != NULL)
        *out = NULL;
    if (c == NULL)
        return KRAPPY_E_USAGE;
    clear_error(c);
    if (out == NULL)
        return fail(c, KRAPPY_E_USAGE, "krappy_stats: out is NULL");
    if ((e = need_name(c, "krappy_stats", "topic", topic)) != KRAPPY_OK)
        return e;
    kr_enc_stats(enc_begin(c), (kr_cid){false, 0}, topic, group);
    if ((e = request(c, KRAPPY_T_STATS, KRAPPY_T_OK, 0, &f, &r)) != KRAPPY_OK)
        return e;
    memset(&st, 0, sizeof st);
    if (kr_cbor_map_find(&r.map, "topic", &tname) != 1 || tname.kind != KR_CBOR_TEXT ||
        !kr_reply_uint(&r, "first", &st.first) || !kr_reply_uint(&r, "next", &st.next) ||
        !kr_reply_uint(&r, "bytes", &st.bytes) || !kr_reply_uint(&r, "keys", &st.keys))
        return bad_reply(c, "STATS", "it needs topic, first, next, bytes and keys");
    if (kr_cbor_map_find(&r.map, "groups", &arr) != 1 || arr.kind != KR_CBOR_ARRAY)
        return bad_reply(c, "STATS", "no array `groups`");
    kr_cbor_iter_init(&it, &arr);
    while (kr_cbor_iter_next(&it, &item) == 1) {
        if (read_group(&item, &name, &g) < 0)
            return bad_reply(c, "STATS", "a group lacks a field");
        strs += name.str_len + 1;
        n++;
    }
    strs += tname.str_len + 1;
    size_t head = ALIGN8(sizeof(krappy_topic_stats));
    if (n > (SIZE_MAX - head - strs) / sizeof(krappy_group_stats))
        return fail(c, KRAPPY_E_NOMEM, "a STATS reply too large to hold");
    uint8_t *mem = malloc(head + n * sizeof(krappy_group_stats) + strs);
    if (mem == NULL)
        return fail(c, KRAPPY_E_NOMEM, "out of memory holding the stats of %zu groups", n);
    krappy_topic_stats *res = (krappy_topic_stats *)(void *)mem;
    krappy_group_stats *gs = (krappy_group_stats *)(void *)(mem + head);
    char *sp = (char *)(mem + head + n * sizeof(krappy_group_stats));
    *res = st;
    res->topic = take_text(&tname, &sp);
    kr_cbor_iter_init(&it, &arr);
    for (size_t i = 0; i < n && kr_cbor_iter_next(&it, &item) == 1; i++) {
        read_group(&item, &name, &gs[i]);
        gs[i].group_len = name.str_len;
        gs[i].group = take_text(&name, &sp);
    }
    res->n_groups = n;
    res->groups = n > 0 ? gs : NULL;
    *out = res;
    return KRAPPY_OK;
}

void krappy_topic_stats_free(krappy_topic_stats *s)
{
    free(s);
}

/* ======================================================================
 * CBOR for people: diagnostic notation and JSON
 * ====================================================================== */

int krappy_header_next(const void *map, size_t len, size_t *pos, const char **name,
                       size_t *name_len, const uint8_t **value, size_t *value_len)
{
    const uint8_t *m = map;
    kr_cbor_item it, k, v;

    if (m == NULL || len == 0 || pos == NULL || *pos > len)
        return -1;
    if (*pos == 0) {
        if (kr_cbor_read_exact(m, len, &it) < 0 || it.kind != KR_CBOR_MAP)
            return -1;
        *pos = it.head_len;
    }
    bool indefinite = (m[0] & 0x1f) == 31;
    if (indefinite ? (*pos + 1 == len && m[*pos] == 0xff) : *pos == len)
        return 0;
    if (kr_cbor_read(m + *pos, len - *pos, &k) < 0 || k.kind != KR_CBOR_TEXT || k.indefinite)
        return -1;
    size_t at = *pos + k.raw_len;
    if (kr_cbor_read(m + at, len - at, &v) < 0 || v.kind != KR_CBOR_BYTES || v.indefinite)
        return -1;
    *pos = at + v.raw_len;
    if (name != NULL)
        *name = (const char *)(k.str != NULL ? k.str : k.raw + k.head_len);
    if (name_len != NULL)
        *name_len = k.str_len;
    if (value != NULL)
        *value = v.str != NULL ? v.str : v.raw + v.head_len;
    if (value_len != NULL)
        *value_len = v.str_len;
    return 1;
}

int krappy_cbor_text(const void *item, size_t len, const char **text, size_t *text_len)
{
    kr_cbor_item it;
    if (item == NULL || kr_cbor_read_exact(item, len, &it) < 0 || it.kind != KR_CBOR_TEXT ||
        it.indefinite)
        return 0;
    if (text != NULL)
        *text = (const char *)(it.str != NULL ? it.str : it.raw + it.head_len);
    if (text_len != NULL)
        *text_len = it.str_len;
    return 1;
}

void krappy_free(void *p)
{
    free(p);
}

static void put_str(kr_buf *o, const char *s)
{
    kr_buf_append(o, s, strlen(s));
}

/* Length of the UTF-8 sequence at p (RFC 3629), or 0 when invalid. */
static size_t utf8_len(const uint8_t *p, size_t n)
{
    size_t l = p[0] < 0x80                    ? 1
               : p[0] >= 0xc2 && p[0] <= 0xdf ? 2
               : p[0] >= 0xe0 && p[0] <= 0xef ? 3
               : p[0] >= 0xf0 && p[0] <= 0xf4 ? 4
                                              : 0;
    if (l == 0 || l > n || !kr_utf8_valid(p, l))
        return 0;
    return l;
}

/*
 * Text content as the inside of a JSON string: quote, backslash and control
 * characters (C0, DEL and C1) escaped, invalid UTF-8 replaced by U+FFFD, so
 * the result is valid UTF-8 and safe on a terminal.
 */
static void put_escaped(kr_buf *o, const uint8_t *p, size_t n)
{
    char esc[8];
    size_t i = 0;
    while (i < n) {
        size_t run = i;
        while (run < n && p[run] >= 0x20 && p[run] < 0x7f && p[run] != '"' && p[run] != '\\')
            run++;
        if (run > i) {
            kr_buf_append(o, p + i, run - i);
            i = run;
            continue;
        }
        uint8_t ch = p[i];
        if (ch < 0x80) {
            switch (ch) {
            case '"':
                put_str(o, "\\\"");
                break;
            case '\\':
                put_str(o, "\\\\");
                break;
            case '\b':
                put_str(o, "\\b");
                break;
            case '\f':
                put_str(o, "\\f");
                break;
            case '\n':
                put_str(o, "\\n");
                break;
            case '\r':
                put_str(o, "\\r");
                break;
            case '\t':
                put_str(o, "\\t");
                break;
            default:
                snprintf(esc, sizeof esc, "\\u%04x", ch);
                put_str(o, esc);
            }
            i++;
            continue;
        }
        size_t l = utf8_len(p + i, n - i);
        if (l == 0) {
            put_str(o, "\\ufffd");
            i++;
        } else if (l == 2 && ch == 0xc2 && p[i + 1] < 0xa0) { /* C1 control */
            snprintf(esc, sizeof esc, "\\u%04x", p[i + 1]);
            put_str(o, esc);
            i += 2;
        } else {
            kr_buf_append(o, p + i, l);
            i += l;
        }
    }
}

/* 1 when the decimal digits[0..k) x 10^(exp10 - k + 1) reads back as d. */
static int digits_read_back(const char *digits, size_t k, int exp10, bool neg, double d)
{
    char t[48];
    snprintf(t, sizeof t, "%s%c.%se%d", neg ? "-" : "", digits[0], k > 1 ? digits + 1 : "0", exp10);
    /* "1.5" may not be how this locale writes a decimal: swap in its radix
     * by going through printf once */
    char radix[8];
    snprintf(radix, sizeof radix, "%.1f", 1.5);
    if (radix[1] != '.') {
        char u[64];
        char *dot = strchr(t, '.');
        snprintf(u, sizeof u, "%.*s%.*s%s", (int)(dot - t), t, (int)(strlen(radix) - 2), radix + 1,
                 dot + 1);
        return strtod(u, NULL) == d;
    }
    return strtod(t, NULL) == d;
}

/*
 * The shortest decimal that reads back as d: for each precision p, printf's
 * correctly rounded p digits, or the p-digit numbers one unit above and
 * below (needed where the rounding interval is lopsided, at powers of two:
 * 2^-24 is 5.960464477539063e-8, though printf rounds to ...062).
 * Then laid out as ECMAScript's Number::toString does (plain from 1e-6 up to
 * 1e21, else an exponent), but always with a fraction or an exponent and
 * ".0" where it would have neither, as RFC 8949 section 8 writes floats:
 * 1.5, 100000.0, 1.0e+300, 5.960464477539063e-8, 0.00006103515625.
 * d is finite and not zero. Digits are read around whatever radix
 * character the locale gives printf.
 */
static void put_finite(kr_buf *o, double d)
{
    char t[48], digits[24], out[64];
    int exp10 = 0;
    size_t k = 0;
    bool neg = d < 0, found = false;

    for (int p = 1; p <= 17 && !found; p++) {
        snprintf(t, sizeof t, "%.*e", p - 1, d);
        const char *s = t + neg;
        k = 0;
        for (; *s != '\0' && *s != 'e' && *s != 'E'; s++)
            if (*s >= '0' && *s <= '9' && k < sizeof digits - 1)
                digits[k++] = *s;
        digits[k] = '\0';
        exp10 = (*s == 'e' || *s == 'E') ? atoi(s + 1) : 0;
        if (p == 17 || digits_read_back(digits, k, exp10, neg, d)) {
            found = true;
            break;
        }
        for (int dir = 1; dir >= -1 && !found; dir -= 2) {
            char c2[24];
            int e2 = exp10;
            memcpy(c2, digits, k + 1);
            size_t i = k;
            while (i > 0) { /* add or subtract one unit in the last place */
                i--;
                if (dir > 0 && c2[i] == '9') {
                    c2[i] = '0';
                } else if (dir < 0 && c2[i] == '0') {
                    c2[i] = '9';
                } else {
                    c2[i] = (char)(c2[i] + dir);
                    break;
                }
                if (i == 0) {
                    i = SIZE_MAX; /* carried out of the first digit */
                    break;
                }
            }
            if (i == SIZE_MAX) {
                if (dir < 0)
                    continue;           /* 1000 - 1: found at a smaller p if at all */
                memmove(c2 + 1, c2, k); /* 999 + 1 = 1000: one more digit */
                c2[0] = '1';
                c2[k] = '\0';
                e2++;
            }
            if (c2[0] == '0')
                continue;
            if (digits_read_back(c2, k, e2, neg, d)) {
                memcpy(digits, c2, k + 1);
                exp10 = e2;
                found = true;
            }
        }
    }
    while (k > 1 && digits[k - 1] == '0')
        k--;
    digits[k] = '\0';

    int n = exp10 + 1; /* the decimal point is after n digits */
    char *w = out;
    size_t left = sizeof out;
    if (neg)
        *w++ = '-', left--;
    if ((int)k <= n && n <= 21)
        snprintf(w, left, "%s%.*s.0", digits, n - (int)k, "000000000000000000000");
    else if (0 < n && n <= 21)
        snprintf(w, left, "%.*s.%s", n, digits, digits + n);
    else if (-6 < n && n <= 0)
        snprintf(w, left, "0.%.*s%s", -n, "000000", digits);
    else
        snprintf(w, left, "%c.%se%c%d", digits[0], k > 1 ? digits + 1 : "0", n - 1 < 0 ? '-' : '+',
                 abs(n - 1));
    put_str(o, out);
}

static void put_float(kr_buf *o, double d, bool json)
{
    if (isnan(d))
        put_str(o, json ? "null" : "NaN");
    else if (isinf(d))
        put_str(o, json ? "null" : d > 0 ? "Infinity" : "-Infinity");
    else if (d == 0)
        put_str(o, signbit(d) ? "-0.0" : "0.0");
    else
        put_finite(o, d);
}

static void put_hex(kr_buf *o, const uint8_t *p, size_t n)
{
    static const char hex[] = "0123456789abcdef";
    char pair[2];
    for (size_t i = 0; i < n; i++) {
        pair[0] = hex[p[i] >> 4];
        pair[1] = hex[p[i] & 15];
        kr_buf_append(o, pair, 2);
    }
}

/* base64url without padding (RFC 4648 section 5), as RFC 8949 6.1 wants. */
static void put_base64url(kr_buf *o, const uint8_t *p, size_t n)
{
    static const char al[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    char q[4];
    size_t i = 0;
    for (; i + 3 <= n; i += 3) {
        uint32_t v = (uint32_t)p[i] << 16 | (uint32_t)p[i + 1] << 8 | p[i + 2];
        q[0] = al[v >> 18], q[1] = al[(v >> 12) & 63], q[2] = al[(v >> 6) & 63], q[3] = al[v & 63];
        kr_buf_append(o, q, 4);
    }
    if (n - i == 1) {
        uint32_t v = (uint32_t)p[i] << 16;
        q[0] = al[v >> 18], q[1] = al[(v >> 12) & 63];
        kr_buf_append(o, q, 2);
    } else if (n - i == 2) {
        uint32_t v = (uint32_t)p[i] << 16 | (uint32_t)p[i + 1] << 8;
        q[0] = al[v >> 18], q[1] = al[(v >> 12) & 63], q[2] = al[(v >> 6) & 63];
        kr_buf_append(o, q, 3);
    }
}

typedef struct render {
    kr_buf *o;
    bool json;
    unsigned flags;
} render;

static int render_item(render *r, const kr_cbor_item *it, int depth);

/* Byte or text string content; chunks of an indefinite one in turn. */
static void render_string(render *r, const kr_cbor_item *it)
{
    kr_buf *o = r->o;
    bool text = it->kind == KR_CBOR_TEXT;
    kr_cbor_iter ci;
    kr_cbor_item ch;

    if (!it->indefinite || r->json) {
        const kr_cbor_item *one = it;
        bool chunked = it->indefinite;
        if (chunked)
            kr_cbor_iter_init(&ci, it);
        if (!r->json || text)
            put_str(o, text ? "\"" : "h'");
        else
            put_str(o, "\"");
        if (!text && r->json && !(r->flags & KRAPPY_JSON_BYTES_HEX)) {
            /* base64 groups straddle chunks: join them first */
            uint8_t *tmp = malloc(it->str_len > 0 ? it->str_len : 1);
            if (tmp == NULL) {
                o->failed = true;
                return;
            }
            kr_cbor_str_copy(it, tmp, it->str_len);
            put_base64url(o, tmp, it->str_len);
            free(tmp);
        } else {
            while (!chunked || kr_cbor_iter_next(&ci, &ch) == 1) {
                if (chunked)
                    one = &ch;
                if (text)
                    put_escaped(o, one->str, one->str_len);
                else
                    put_hex(o, one->str, one->str_len);
                if (!chunked)
                    break;
            }
        }
        put_str(o, text || r->json ? "\"" : "'");
        return;
    }
    /* diagnostic notation of an indefinite string: (_ "a", "b") */
    kr_cbor_iter_init(&ci, it);
    bool first = true;
    while (kr_cbor_iter_next(&ci, &ch) == 1) {
        put_str(o, first ? "(_ " : ", ");
        first = false;
        render_string(r, &ch);
    }
    put_str(o, first ? (text ? "\"\"_" : "''_") : ")");
}

static int render_container(render *r, const kr_cbor_item *it, int depth)
{
    kr_buf *o = r->o;
    bool map = it->kind == KR_CBOR_MAP;
    kr_cbor_iter ci;
    kr_cbor_item ch;
    size_t i = 0;

    put_str(o, map ? "{" : "[");
    if (it->indefinite && !r->json)
        put_str(o, "_ ");
    kr_cbor_iter_init(&ci, it);
    while (kr_cbor_iter_next(&ci, &ch) == 1) {
        bool is_key = map && i % 2 == 0;
        if (i > 0 && map && !is_key)
            put_str(o, r->json ? ":" : ": ");
        else if (i > 0)
            put_str(o, r->json ? "," : ", ");
        if (is_key && r->json && ch.kind != KR_CBOR_TEXT) {
            /* JSON keys are strings: the key's diagnostic notation */
            kr_buf tmp;
            render d = {&tmp, false, 0};
            kr_buf_init(&tmp, o->max);
            int rc = render_item(&d, &ch, depth + 1);
            if (rc == 0 && !tmp.failed) {
                put_str(o, "\"");
                put_escaped(o, tmp.data, tmp.len);
                put_str(o, "\"");
            }
            if (tmp.failed)
                o->failed = true;
            kr_buf_free(&tmp);
            if (rc < 0)
                return rc;
        } else if (render_item(r, &ch, depth + 1) < 0) {
            return -1;
        }
        i++;
    }
    put_str(o, map ? "}" : "]");
    return 0;
}

/* @return 0, or -1 when nested deeper than KRAPPY_CBOR_MAX_DEPTH. */
static int render_item(render *r, const kr_cbor_item *it, int depth)
{
    kr_buf *o = r->o;
    char num[32];
    kr_cbor_iter ci;
    kr_cbor_item ch;

    if (depth > KRAPPY_CBOR_MAX_DEPTH)
        return -1;
    if (o->failed)
        return 0;
    switch (it->kind) {
    case KR_CBOR_UINT:
        snprintf(num, sizeof num, "%llu", (unsigned long long)it->u);
        put_str(o, num);
        break;
    case KR_CBOR_NEGINT:
        if (it->u == UINT64_MAX)
            put_str(o, "-18446744073709551616");
        else {
            snprintf(num, sizeof num, "-%llu", (unsigned long long)it->u + 1);
            put_str(o, num);
        }
        break;
    case KR_CBOR_BYTES:
    case KR_CBOR_TEXT:
        render_string(r, it);
        break;
    case KR_CBOR_ARRAY:
    case KR_CBOR_MAP:
        return render_container(r, it, depth);
    case KR_CBOR_TAG:
        if (!r->json) {
            snprintf(num, sizeof num, "%llu(", (unsigned long long)it->u);
            put_str(o, num);
        }
        kr_cbor_iter_init(&ci, it);
        if (kr_cbor_iter_next(&ci, &ch) == 1 && render_item(r, &ch, depth + 1) < 0)
            return -1;
        if (!r->json)
            put_str(o, ")");
        break;
    case KR_CBOR_FLOAT:
        put_float(o, it->f, r->json);
        break;
    case KR_CBOR_FALSE:
        put_str(o, "false");
        break;
    case KR_CBOR_TRUE:
        put_str(o, "true");
        break;
    case KR_CBOR_NULL:
        put_str(o, "null");
        break;
    case KR_CBOR_UNDEF:
        put_str(o, r->json ? "null" : "undefined");
        break;
    case KR_CBOR_SIMPLE:
        if (r->json)
            put_str(o, "null");
        else {
            snprintf(num, sizeof num, "simple(%llu)", (unsigned long long)it->u);
            put_str(o, num);
        }
        break;
    }
    return 0;
}

static krappy_err render_to(const void *item, size_t len, bool json, unsigned flags, char **out)
{
    kr_cbor_item it;
    kr_buf o;

    if (out == NULL)
        return KRAPPY_E_USAGE;
    *out = NULL;
    if (item == NULL || len == 0 || kr_cbor_read_exact(item, len, &it) < 0)
        return KRAPPY_E_USAGE;
    /* No item renders to more than ~16 bytes per input byte (a simple
     * value as "simple(19), "); the cap only stops a runaway. */
    size_t cap = len < (SIZE_MAX - 256) / 32 ? len * 32 + 256 : SIZE_MAX;
    kr_buf_init(&o, cap);
    render r = {&o, json, flags};
    int rc = render_item(&r, &it, 0);
    kr_buf_append(&o, "", 1);
    if (rc < 0 || o.failed) {
        kr_buf_free(&o);
        return rc < 0 ? KRAPPY_E_USAGE : KRAPPY_E_NOMEM;
    }
    *out = (char *)o.data;
    return KRAPPY_OK;
}

krappy_err krappy_cbor_to_diag(const void *item, size_t len, char **out)
{
    return render_to(item, len, false, 0, out);
}

krappy_err krappy_cbor_to_json(const void *item, size_t len, unsigned flags, char **out)
{
    return render_to(item, len, true, flags, out);
}

/* ======================================================================
 * JSON to CBOR
 * ====================================================================== */

typedef struct jparse {
    const uint8_t *s;
    size_t len, pos;
    kr_buf *o;
    char *why;
    size_t whylen;
    locale_t c_locale; /* made on the first float, for strtod_l */
    int depth;
    bool nomem;
} jparse;

__attribute__((format(printf, 2, 3))) static int jfail(jparse *j, const char *fmt, ...)
{
    char msg[200];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    if (j->why != NULL && j->whylen > 0) {
        if (j->pos < j->len)
            snprintf(j->why, j->whylen, "%s at byte %zu", msg, j->pos + 1);
        else
            snprintf(j->why, j->whylen, "%s at the end of the text", msg);
    }
    return -1;
}

static void jws(jparse *j)
{
    while (j->pos < j->len && (j->s[j->pos] == ' ' || j->s[j->pos] == '\t' ||
                               j->s[j->pos] == '\n' || j->s[j->pos] == '\r'))
        j->pos++;
}

/* A shortest CBOR head for major type `major` and argument n. */
static size_t cbor_head(uint8_t h[9], unsigned major, uint64_t n)
{
    uint8_t m = (uint8_t)(major << 5);
    if (n < 24) {
        h[0] = (uint8_t)(m | n);
        return 1;
    }
    int bytes = n <= 0xff ? 1 : n <= 0xffff ? 2 : n <= 0xffffffffu ? 4 : 8;
    h[0] = (uint8_t)(m | (bytes == 1 ? 24 : bytes == 2 ? 25 : bytes == 4 ? 26 : 27));
    for (int i = 0; i < bytes; i++)
        h[1 + i] = (uint8_t)(n >> (8 * (bytes - 1 - i)));
    return (size_t)bytes + 1;
}

/* Insert a head before the bytes written since `at` (a string's content or
 * a container's children, whose length or count is known only now). */
static int insert_head(jparse *j, size_t at, unsigned major, uint64_t n)
{
    uint8_t h[9];
    size_t hl = cbor_head(h, major, n);
    kr_buf *o = j->o;
    if (kr_buf_reserve(o, hl) < 0) {
        j->nomem = true;
        return -1;
    }
    memmove(o->data + at + hl, o->data + at, o->len - at);
    memcpy(o->data + at, h, hl);
    o->len += hl;
    return 0;
}

/* 1 with the value of 4 hex digits at p, else 0. */
static int hex4(const uint8_t *p, unsigned *v)
{
    *v = 0;
    for (int i = 0; i < 4; i++) {
        uint8_t ch = p[i];
        unsigned d = ch >= '0' && ch <= '9'   ? (unsigned)(ch - '0')
                     : ch >= 'a' && ch <= 'f' ? (unsigned)(ch - 'a' + 10)
                     : ch >= 'A' && ch <= 'F' ? (unsigned)(ch - 'A' + 10)
                                              : 16;
        if (d == 16)
            return 0;
        *v = *v << 4 | d;
    }
    return 1;
}

static void put_utf8(kr_buf *o, uint32_t cp)
{
    uint8_t u[4];
    size_t n;
    if (cp < 0x80) {
        u[0] = (uint8_t)cp, n = 1;
    } else if (cp < 0x800) {
        u[0] = (uint8_t)(0xc0 | cp >> 6), u[1] = (uint8_t)(0x80 | (cp & 63)), n = 2;
    } else if (cp < 0x10000) {
        u[0] = (uint8_t)(0xe0 | cp >> 12), u[1] = (uint8_t)(0x80 | ((cp >> 6) & 63));
        u[2] = (uint8_t)(0x80 | (cp & 63)), n = 3;
    } else {
        u[0] = (uint8_t)(0xf0 | cp >> 18), u[1] = (uint8_t)(0x80 | ((cp >> 12) & 63));
        u[2] = (uint8_t)(0x80 | ((cp >> 6) & 63)), u[3] = (uint8_t)(0x80 | (cp & 63)), n = 4;
    }
    kr_buf_append(o, u, n);
}

/* A JSON string at j->pos (the opening quote) as a CBOR text string. */
static int jstring(jparse *j)
{
    kr_buf *o = j->o;
    size_t at = o->len;

    j->pos++;
    for (;;) {
        size_t run = j->pos;
        while (run < j->len && j->s[run] != '"' && j->s[run] != '\\' && j->s[run] >= 0x20)
            run++;
        kr_buf_append(o, j->s + j->pos, run - j->pos);
        j->pos = run;
        if (j->pos >= j->len)
            return jfail(j, "unterminated string");
        uint8_t ch = j->s[j->pos];
        if (ch == '"') {
            j->pos++;
            break;
        }
        if (ch < 0x20)
            return jfail(j, "control character 0x%02x in a string (write it as \\u%04x)", ch, ch);
        /* a backslash */
        if (j->pos + 1 >= j->len)
            return jfail(j, "unterminated string");
        uint8_t e = j->s[j->pos + 1];
        const char *simple = NULL;
        switch (e) {
        case '"':
            simple = "\"";
            break;
        case '\\':
            simple = "\\";
            break;
        case '/':
            simple = "/";
            break;
        case 'b':
            simple = "\b";
            break;
        case 'f':
            simple = "\f";
            break;
        case 'n':
            simple = "\n";
            break;
        case 'r':
            simple = "\r";
            break;
        case 't':
            simple = "\t";
            break;
        case 'u':
            break;
        default:
            j->pos++;
            return jfail(j, "unknown escape '\\%c' in a string", e >= 0x20 && e < 0x7f ? e : '?');
        }
        if (simple != NULL) {
            kr_buf_append(o, simple, 1);
            j->pos += 2;
            continue;
        }
        unsigned u, lo;
        if (j->len - j->pos < 6 || !hex4(j->s + j->pos + 2, &u))
            return jfail(j, "\\u needs four hex digits");
        j->pos += 6;
        uint32_t cp = u;
        if (u >= 0xdc00 && u <= 0xdfff) {
            j->pos -= 6;
            return jfail(j, "\\u%04x is a lone low surrogate", u);
        }
        if (u >= 0xd800 && u <= 0xdbff) {
            if (j->len - j->pos < 6 || j->s[j->pos] != '\\' || j->s[j->pos + 1] != 'u' ||
                !hex4(j->s + j->pos + 2, &lo) || lo < 0xdc00 || lo > 0xdfff) {
                j->pos -= 6;
                return jfail(j, "\\u%04x (a high surrogate) is not followed by a low one", u);
            }
            j->pos += 6;
            cp = 0x10000 + ((u - 0xd800) << 10) + (lo - 0xdc00);
        }
        put_utf8(o, cp);
    }
    if (o->failed) {
        j->nomem = true;
        return -1;
    }
    return insert_head(j, at, 3, o->len - at);
}

/* Half precision bits holding d exactly, or -1. d is finite, not zero. */
static int32_t half_exact(double d)
{
    uint32_t sign = signbit(d) ? 0x8000 : 0;
    double a = fabs(d);
    int e;
    double m = frexp(a, &e); /* a = m * 2^e, 0.5 <= m < 1 */
    int ex = e - 1;          /* a = (2m) * 2^ex, 1 <= 2m < 2 */
    if (ex > 15)
        return -1;
    if (ex >= -14) {
        double frac = (2 * m - 1) * 1024;
        if (frac != floor(frac))
            return -1;
        return (int32_t)(sign | (uint32_t)(ex + 15) << 10 | (uint32_t)frac);
    }
    double frac = a * 16777216.0; /* subnormal: a = frac * 2^-24 */
    if (frac != floor(frac) || frac >= 1024)
        return -1;
    return (int32_t)(sign | (uint32_t)frac);
}

/* A float in the shortest of half, single and double that holds it. */
static void put_cbor_float(kr_buf *o, double d)
{
    uint8_t b[9];
    size_t n;
    int32_t h = -1;

    if (isnan(d))
        h = 0x7e00;
    else if (isinf(d))
        h = d > 0 ? 0x7c00 : 0xfc00;
    else if (d == 0)
        h = signbit(d) ? 0x8000 : 0;
    else
        h = half_exact(d);
    if (h >= 0) {
        b[0] = 0xf9, b[1] = (uint8_t)(h >> 8), b[2] = (uint8_t)h, n = 3;
    } else if ((double)(float)d == d) {
        float f = (float)d;
        uint32_t u;
        memcpy(&u, &f, 4);
        b[0] = 0xfa;
        for (int i = 0; i < 4; i++)
            b[1 + i] = (uint8_t)(u >> (24 - 8 * i));
        n = 5;
    } else {
        uint64_t u;
        memcpy(&u, &d, 8);
        b[0] = 0xfb;
        for (int i = 0; i < 8; i++)
            b[1 + i] = (uint8_t)(u >> (56 - 8 * i));
        n = 9;
    }
    kr_buf_append(o, b, n);
}

/* Longest number text read (beyond it no double gains precision). */
#define KR_JSON_NUMBER_MAX 800

static int jnumber(jparse *j)
{
    size_t st = j->pos;
    bool neg = false, integer = true;
    const uint8_t *s = j->s;
#define DIGIT(i) ((i) < j->len && s[(i)] >= '0' && s[(i)] <= '9')

    if (s[j->pos] == '-') {
        neg = true;
        j->pos++;
    }
    if (!DIGIT(j->pos))
        return jfail(j, "expected a digit");
    if (s[j->pos] == '0')
        j->pos++;
    else
        while (DIGIT(j->pos))
            j->pos++;
    size_t int_end = j->pos;
    if (j->pos < j->len && s[j->pos] == '.') {
        j->pos++;
        if (!DIGIT(j->pos))
            return jfail(j, "expected a digit after the decimal point");
        while (DIGIT(j->pos))
            j->pos++;
        integer = false;
    }
    if (j->pos < j->len && (s[j->pos] == 'e' || s[j->pos] == 'E')) {
        j->pos++;
        if (j->pos < j->len && (s[j->pos] == '+' || s[j->pos] == '-'))
            j->pos++;
        if (!DIGIT(j->pos))
            return jfail(j, "expected a digit in the exponent");
        while (DIGIT(j->pos))
            j->pos++;
        integer = false;
    }
#undef DIGIT
    if (integer) {
        uint64_t mag = 0;
        bool over = false;
        for (size_t i = st + neg; i < int_end; i++) {
            unsigned d = (unsigned)(s[i] - '0');
            if (mag > (UINT64_MAX - d) / 10)
                over = true;
            else
                mag = mag * 10 + d;
        }
        if (!over) {
            if (!neg)
                kr_cbor_put_uint(j->o, mag);
            else if (mag == 0)
                kr_cbor_put_uint(j->o, 0);
            else
                kr_cbor_put_negint(j->o, mag - 1);
            return 0;
        }
        static const char two64[] = "18446744073709551616";
        if (neg && int_end - st - 1 == sizeof two64 - 1 &&
            memcmp(s + st + 1, two64, sizeof two64 - 1) == 0) {
            kr_cbor_put_negint(j->o, UINT64_MAX);
            return 0;
        }
    }
    size_t n = j->pos - st;
    char buf[KR_JSON_NUMBER_MAX + 1];
    if (n > KR_JSON_NUMBER_MAX) {
        j->pos = st;
        return jfail(j, "number longer than %d characters", KR_JSON_NUMBER_MAX);
    }
    memcpy(buf, s + st, n);
    buf[n] = '\0';
    if (j->c_locale == (locale_t)0) {
        j->c_locale = newlocale(LC_ALL_MASK, "C", (locale_t)0);
        if (j->c_locale == (locale_t)0) {
            j->nomem = true;
            return -1;
        }
    }
    put_cbor_float(j->o, strtod_l(buf, NULL, j->c_locale));
    return 0;
}

static int jvalue(jparse *j);

/* An array or object at j->pos, as a definite CBOR array or map. */
static int jcontainer(jparse *j)
{
    bool obj = j->s[j->pos] == '{';
    char close = obj ? '}' : ']';
    size_t at = j->o->len;
    uint64_t n = 0;

    if (++j->depth > KRAPPY_CBOR_MAX_DEPTH)
        return jfail(j, "nested deeper than %d levels", KRAPPY_CBOR_MAX_DEPTH);
    j->pos++;
    jws(j);
    if (j->pos < j->len && j->s[j->pos] == close) {
        j->pos++;
    } else {
        for (;;) {
            if (obj) {
                if (j->pos >= j->len || j->s[j->pos] != '"')
                    return jfail(j, "expected a member name (a string)");
                if (jstring(j) < 0)
                    return -1;
                jws(j);
                if (j->pos >= j->len || j->s[j->pos] != ':')
                    return jfail(j, "expected ':'");
                j->pos++;
            }
            if (jvalue(j) < 0)
                return -1;
            n++;
            jws(j);
            if (j->pos < j->len && j->s[j->pos] == ',') {
                j->pos++;
                jws(j);
                continue;
            }
            if (j->pos < j->len && j->s[j->pos] == close) {
                j->pos++;
                break;
            }
            return jfail(j, obj ? "expected ',' or '}'" : "expected ',' or ']'");
        }
    }
    j->depth--;
    return insert_head(j, at, obj ? 5 : 4, n);
}

static int jliteral(jparse *j, const char *word, uint8_t byte)
{
    size_t n = strlen(word);
    if (j->len - j->pos < n || memcmp(j->s + j->pos, word, n) != 0)
        return jfail(j, "expected a value");
    j->pos += n;
    kr_buf_append(j->o, &byte, 1);
    return 0;
}

static int jvalue(jparse *j)
{
    jws(j);
    if (j->pos >= j->len)
        return jfail(j, "expected a value");
    int rc;
    switch (j->s[j->pos]) {
    case '{':
    case '[':
        rc = jcontainer(j);
        break;
    case '"':
        rc = jstring(j);
        break;
    case 't':
        rc = jliteral(j, "true", 0xf5);
        break;
    case 'f':
        rc = jliteral(j, "false", 0xf4);
        break;
    case 'n':
        rc = jliteral(j, "null", 0xf6);
        break;
    default:
        if (j->s[j->pos] == '-' || (j->s[j->pos] >= '0' && j->s[j->pos] <= '9'))
            rc = jnumber(j);
        else
            rc = jfail(j, "expected a value");
    }
    if (rc == 0 && j->o->failed) {
        j->nomem = true;
        rc = -1;
    }
    return rc;
}

krappy_err kr_json_to_cbor(const char *json, size_t len, kr_buf *out, char *why, size_t whylen)
{
    jparse j = {(const uint8_t *)json, len, 0, out, why, whylen, (locale_t)0, 0, false};
    krappy_err e = KRAPPY_OK;

    if (why != NULL && whylen > 0)
        why[0] = '\0';
    if (json == NULL && len > 0)
        return KRAPPY_E_USAGE;
    size_t start = out->len;
    if (!kr_utf8_valid(j.s, len)) {
        jfail(&j, "the text is not valid UTF-8");
        return KRAPPY_E_USAGE;
    }
    if (jvalue(&j) < 0) {
        e = j.nomem ? KRAPPY_E_NOMEM : KRAPPY_E_USAGE;
    } else {
        jws(&j);
        if (j.pos < j.len) {
            jfail(&j, "unexpected text after the JSON value");
            e = KRAPPY_E_USAGE;
        }
    }
    if (j.c_locale != (locale_t)0)
        freelocale(j.c_locale);
    if (e == KRAPPY_E_NOMEM && why != NULL && whylen > 0)
        snprintf(why, whylen, "out of memory (or over the output limit) encoding JSON");
    if (e != KRAPPY_OK) {
        out->len = start;
        out->failed = false;
    }
    return e;
}

krappy_err krappy_json_to_cbor(const char *json, size_t len, uint8_t **out, size_t *out_len,
                               char *why, size_t whylen)
{
    kr_buf o;

    if (out == NULL || out_len == NULL)
        return KRAPPY_E_USAGE;
    *out = NULL;
    *out_len = 0;
    /* A JSON value never takes more than 3 CBOR bytes per byte of text (a
     * three-digit number as a double: 9). */
    kr_buf_init(&o, len < (SIZE_MAX - 64) / 4 ? len * 4 + 64 : SIZE_MAX);
    krappy_err e = kr_json_to_cbor(json, len, &o, why, whylen);
    if (e != KRAPPY_OK) {
        kr_buf_free(&o);
        return e;
    }
    *out = o.data;
    *out_len = o.len;
    return KRAPPY_OK;
}

/* A member name as C text, for messages (names are short). */
static void name_of(const kr_cbor_item *k, char *buf, size_t len)
{
    uint8_t raw[64];
    size_t n = kr_cbor_str_copy(k, raw, sizeof raw);
    sanitize(buf, len, raw, n < sizeof raw ? n : sizeof raw);
}

krappy_err kr_json_event_parse(const char *line, size_t len, kr_buf *scratch, kr_json_event *ev,
                               char *why, size_t whylen)
{
    kr_cbor_item map, k, v, hk, hv;
    kr_cbor_iter it, hit;
    char name[80];
    unsigned seen = 0;
    krappy_err e;
    size_t key_at = 0, value_at = 0, value_len = 0, hdr_at = 0;

    memset(ev, 0, sizeof *ev);
    kr_buf_reset(scratch);
    if ((e = kr_json_to_cbor(line, len, scratch, why, whylen)) != KRAPPY_OK)
        return e;
#define BAD(...)                                                                                   \
    do {                                                                                           \
        if (why != NULL && whylen > 0)                                                             \
            snprintf(why, whylen, __VA_ARGS__);                                                    \
        return KRAPPY_E_USAGE;                                                                     \
    } while (0)
    /* Room for the headers' re-encoding (never longer than the JSON's
     * CBOR), reserved now: the items read below point into scratch. */
    if (kr_buf_reserve(scratch, scratch->len) < 0) {
        kr_buf_reset(scratch);
        return KRAPPY_E_NOMEM;
    }
    kr_cbor_read_exact(scratch->data, scratch->len, &map);
    if (map.kind != KR_CBOR_MAP)
        BAD("expected a JSON object like {\"key\": \"k\", \"value\": ...}");
    kr_cbor_iter_init(&it, &map);
    while (kr_cbor_iter_next(&it, &k) == 1 && kr_cbor_iter_next(&it, &v) == 1) {
        unsigned bit = kr_cbor_text_eq(&k, "key")       ? 1u
                       : kr_cbor_text_eq(&k, "value")   ? 2u
                       : kr_cbor_text_eq(&k, "ts")      ? 4u
                       : kr_cbor_text_eq(&k, "headers") ? 8u
                                                        : 0u;
        name_of(&k, name, sizeof name);
        if (bit == 0)
            BAD("unknown member \"%s\" (an event has \"key\", \"value\", \"ts\" and "
                "\"headers\")",
                name);
        if (seen & bit)
            BAD("member \"%s\" appears twice", name);
        seen |= bit;
        switch (bit) {
        case 1:
            if (v.kind == KR_CBOR_TEXT) {
                if (v.str_len > KRAPPY_MAX_KEY_BYTES)
                    BAD("\"key\" has %zu bytes; keys have at most %u", v.str_len,
                        (unsigned)KRAPPY_MAX_KEY_BYTES);
                ev->has_key = true;
                key_at = (size_t)(v.str - scratch->data);
                ev->key_len = v.str_len;
            } else if (v.kind != KR_CBOR_NULL) {
                BAD("\"key\" must be a string, or null for no key");
            }
            break;
        case 2:
            value_at = (size_t)(v.raw - scratch->data);
            value_len = v.raw_len;
            break;
        case 4:
            if (v.kind == KR_CBOR_UINT) {
                ev->has_ts = true;
                ev->ts = v.u;
            } else if (v.kind != KR_CBOR_NULL) {
                BAD("\"ts\" must be a whole number of milliseconds since 1970 (or null for "
                    "the server's time)");
            }
            break;
        case 8:
            if (v.kind == KR_CBOR_NULL)
                break;
            if (v.kind != KR_CBOR_MAP)
                BAD("\"headers\" must be an object of strings");
            /* Re-encode as text -> bytes after the JSON's CBOR (in the
             * room reserved above); pointers are taken at the end. */
            hdr_at = scratch->len;
            kr_cbor_put_map(scratch, v.u);
            kr_cbor_iter_init(&hit, &v);
            while (kr_cbor_iter_next(&hit, &hk) == 1 && kr_cbor_iter_next(&hit, &hv) == 1) {
                if (hv.kind != KR_CBOR_TEXT) {
                    name_of(&hk, name, sizeof name);
                    BAD("header \"%s\" must be a string", name);
                }
                kr_cbor_put_text(scratch, (const char *)hk.str, hk.str_len);
                kr_cbor_put_bytes(scratch, hv.str, hv.str_len);
                ev->n_headers++;
            }
            break;
        }
    }
    if (!(seen & 2))
        BAD("no \"value\" member (use \"value\": null to delete the key)");
#undef BAD
    if (scratch->failed)
        return KRAPPY_E_NOMEM;
    ev->value = scratch->data + value_at;
    ev->value_len = value_len;
    if (ev->has_key)
        ev->key = scratch->data + key_at;
    if (seen & 8 && hdr_at > 0 && ev->n_headers > 0) {
        ev->headers = scratch->data + hdr_at;
        ev->headers_len = scratch->len - hdr_at;
    }
    return KRAPPY_OK;
}

size_t krappy_in_flight(const krappy_client *c)
{
    return c != NULL ? c->in_flight : 0;
}

const char *krappy_version(void)
{
    return KRAPPY_VERSION;
}
