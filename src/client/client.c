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
 * This file owns the connection: moving bytes (pump), errors, the raw API
 * (send, recv, call), HELLO and PING, and the helpers the typed requests
 * share (client_internal.h). The typed requests are built on it elsewhere:
 * batches and PUBLISH with its sequence numbers in publish.c; the reads,
 * each decoded into one allocation the caller frees, in read.c; consumer
 * groups (CONSUMER_REGISTER, POLL, ACK, pipelined through the replies-due
 * ring kept here) in consume.c. CBOR
 * rendered for people (diagnostic notation, JSON) is in values.c, JSON
 * parsed into CBOR in json_parse.c. Request and reply payloads go through
 * proto/msg.h's codecs only.
 */
#include "krappy/client.h"

#include <errno.h>
#include <limits.h>
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
#include <unistd.h>

#include "client/client_internal.h"
#include "proto/cbor.h"
#include "proto/frame.h"
#include "proto/msg.h"
#include "util/buf.h"
#include "util/byteorder.h"
#include "util/clock.h"
#include "util/hostport.h"
#include "util/utf8.h"

#ifndef KRAPPY_VERSION
#define KRAPPY_VERSION "0.0.0"
#endif

/* krappy_send waits (reading replies) while this many request bytes are
 * queued and unwritten. */
#define KR_CLIENT_OUT_HIGH_WATER (1u << 20)

/* Unread replies may fill this much beyond one largest reply frame. */
#define KR_CLIENT_IN_SLACK (16u << 20)

/* Requests queued behind unanswered ones are written once this many bytes
 * wait, or when a reply is needed that is not in the buffer yet. Small: a
 * few dozen GETs per write keep the server busy while the client reads
 * replies (at 4 KiB, 100 GETs in flight went out as one batch, and client
 * and server took turns: 380k GETs/s against 555k at 0.5 to 2 KiB). */
#define KR_CLIENT_CORK_BYTES 1024u

/* Bytes read from the socket per recv(2). */
#define KR_CLIENT_READ_CHUNK 65536

/* Longest part of a server's ERROR message copied into errmsg. */
#define KR_CLIENT_SERVER_MSG_MAX 300

/* Requests built by the typed calls never exceed this (a frame's size is a
 * u32); the server's max_frame, checked when sending, is usually lower. */
#define KR_CLIENT_REQUEST_MAX ((size_t)UINT32_MAX - KRAPPY_FRAME_MIN_SIZE)

/* What pump() waits for. */
typedef enum pump_goal {
    PUMP_FRAME, /* a whole reply is parsed (writing meanwhile) */
    PUMP_FLUSH, /* every queued request is written (reading meanwhile) */
    PUMP_BELOW  /* queued requests are below the high-water mark */
} pump_goal;

/* ---- small helpers ---- */

/* A deadline timeout_ms from now; -1 for none (negative timeout). */
int64_t kr_client_deadline_after(int timeout_ms)
{
    return timeout_ms < 0 ? -1 : (int64_t)kr_mono_ms() + timeout_ms;
}

/* Milliseconds left before the deadline, for poll(): -1 = no deadline. */
static int ms_left(int64_t deadline)
{
    if (deadline < 0)
        return -1;
    int64_t left = deadline - (int64_t)kr_mono_ms();
    if (left <= 0)
        return 0;
    return left > INT_MAX ? INT_MAX : (int)left;
}

void kr_client_clear_error(krappy_client *c)
{
    c->errmsg[0] = '\0';
    c->err_errno = 0;
    c->err_range = false;
    c->err_has_expected = false;
    c->err_leader[0] = '\0';
}

/* Set the error sentence and return `e`. */
krappy_err kr_client_fail(krappy_client *c, krappy_err e, const char *fmt, ...)
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

/* The error sentence becomes why there is no connection: later calls that
 * need one say it. */
static void keep_close_why(krappy_client *c)
{
    snprintf(c->close_why, sizeof c->close_why, "%s", c->errmsg);
}

/* Set the error sentence, close the connection, return `e`. */
krappy_err kr_client_fail_close(krappy_client *c, krappy_err e, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(c->errmsg, sizeof c->errmsg, fmt, ap);
    va_end(ap);
    keep_close_why(c);
    drop_conn(c);
    return e;
}

/* KRAPPY_E_USAGE for a call that needs a connection, saying why there is none. */
krappy_err kr_client_not_connected(krappy_client *c)
{
    if (c->close_why[0] != '\0')
        return kr_client_fail(c, KRAPPY_E_USAGE, "not connected (%s); call krappy_connect again",
                              c->close_why);
    return kr_client_fail(c, KRAPPY_E_USAGE, "not connected: call krappy_connect first");
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
    kr_ring_clear(&c->pub_wait);
    c->n_asked = c->n_answered = 0;
    kr_ring_clear(&c->due);
}

/* Copy server text into dst for an error sentence: control characters become
 * '?', invalid UTF-8 bytes too; a cut never splits a UTF-8 sequence. */
void kr_client_sanitize(char *dst, size_t dstlen, const uint8_t *src, size_t n)
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
            kr_client_sanitize(msg, sizeof msg, e.message.ptr, e.message.len);
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
        return kr_client_fail_close(c, KRAPPY_E_CLOSED, "%s closed the connection%s", c->peer, why);
    if (err == ECONNRESET || err == EPIPE)
        return kr_client_fail_close(c, KRAPPY_E_CLOSED, "%s closed the connection (%s)", c->peer,
                                    strerror(err));
    c->err_errno = err;
    return kr_client_fail_close(c, KRAPPY_E_IO, "connection to %s failed: %s", c->peer,
                                strerror(err));
}

/* send(2) or recv(2) failed (not with EINTR, which the caller retries):
 * KRAPPY_OK when the socket only has nothing more for now, else the
 * connection is lost. */
static krappy_err io_error(krappy_client *c)
{
    if (errno == EAGAIN || errno == EWOULDBLOCK)
        return KRAPPY_OK;
    return lost(c, errno);
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
            return io_error(c);
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
            return io_error(c);
        }
        if (n == 0) {
            c->eof = true;
            return KRAPPY_OK;
        }
        if (kr_frame_parser_feed(&c->in, chunk, (size_t)n) < 0)
            return kr_client_fail_close(c, KRAPPY_E_NOMEM,
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
        return kr_client_fail_close(
            c, KRAPPY_E_PROTOCOL,
            "%s sent a reply of %u bytes, larger than this client's limit of %u "
            "bytes (raise krappy_opts.max_frame, or call krappy_hello to learn "
            "the server's max_frame); connection closed",
            c->peer, size, c->in.max_frame);
    return kr_client_fail_close(
        c, KRAPPY_E_PROTOCOL,
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
                    return kr_client_fail_close(c, KRAPPY_E_CLOSED,
                                                "%s closed the connection in the middle of a reply "
                                                "(%zu bytes of it received)",
                                                c->peer, partial);
                return kr_client_fail_close(
                    c, KRAPPY_E_CLOSED,
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
            return kr_client_fail_close(c, KRAPPY_E_IO, "poll on the connection to %s failed: %s",
                                        c->peer, strerror(errno));
        }
        if (n == 0) {
            if (goal == PUMP_FRAME)
                return kr_client_fail_close(c, KRAPPY_E_TIMEOUT,
                                            "no reply from %s within %d ms; connection closed",
                                            c->peer, timeout_ms);
            if (!can_read && !c->eof)
                return kr_client_fail_close(
                    c, KRAPPY_E_TIMEOUT,
                    "could not send to %s within %d ms: the server is not "
                    "reading and %zu bytes of replies are waiting unread (call "
                    "krappy_recv while pipelining); connection closed",
                    c->peer, timeout_ms, kr_frame_parser_pending(&c->in));
            return kr_client_fail_close(
                c, KRAPPY_E_TIMEOUT,
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
    kr_ring_init(&c->pub_wait, sizeof(uint64_t), 16);
    kr_ring_init(&c->due, sizeof(kr_due), 8);
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
    kr_ring_free(&c->pub_wait);
    kr_ring_free(&c->due);
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
    int64_t deadline = kr_client_deadline_after(budget_ms);
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
    kr_client_clear_error(c);
    krappy_err e = connect_to(c, host, port);
    if (e != KRAPPY_OK) /* later calls say why there is no connection */
        keep_close_why(c);
    return e;
}

/* krappy_connect without the bookkeeping. */
static krappy_err connect_to(krappy_client *c, const char *host, const char *port)
{
    drop_conn(c);
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
        drop_conn(c);
        keep_close_why(c);
        return kr_client_fail(c, KRAPPY_E_USAGE, "address \"%.40s...\" is too long", s);
    }
    memcpy(one, s, n);
    one[n] = '\0';
    if (kr_hostport_parse(one, 0, &hp, c->errmsg, sizeof c->errmsg) < 0) {
        drop_conn(c);
        keep_close_why(c);
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
            drop_conn(c);
            keep_close_why(c);
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
        (void)write_some(c); /* queued requests go out as far as the socket takes them */
    }
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
krappy_err kr_client_send_frame(krappy_client *c, uint32_t type, const void *payload, size_t len,
                                int64_t deadline, int replies)
{
    krappy_err e;

    if (c->fd < 0)
        return kr_client_not_connected(c);
    if (len > 0 && payload == NULL)
        return kr_client_fail(c, KRAPPY_E_USAGE, "payload is NULL but its length is %zu", len);
    if (len > (size_t)c->send_max - KRAPPY_FRAME_MIN_SIZE)
        return kr_client_fail(c, KRAPPY_E_USAGE,
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
        return kr_client_fail(c, KRAPPY_E_NOMEM, "out of memory queueing a request of %zu bytes",
                              len);
    }
    if (replies < 0)
        replies = !expects_no_reply(type, payload, len);
    /* Coalesce a pipeline: while earlier replies are still due, a request
     * that expects a reply waits in the buffer (up to KR_CLIENT_CORK_BYTES)
     * for the krappy_recv that must come for them, which writes everything
     * queued before it blocks. One write then carries many requests, and the
     * server reads them in one go: a syscall and a wake-up per request were
     * what limited pipelined GETs. A request with no reply, or the first of
     * a pipeline, is written at once. */
    bool cork = replies && c->in_flight > 0 && out_pending(c) < KR_CLIENT_CORK_BYTES;
    if (replies) {
        c->in_flight++;
        c->n_asked++;
    }
    if (cork)
        return KRAPPY_OK;
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
    return kr_client_send_frame(c, type, payload, len, deadline, -1);
}

krappy_err krappy_send(krappy_client *c, uint32_t type, const void *payload, size_t len)
{
    if (c == NULL)
        return KRAPPY_E_USAGE;
    kr_client_clear_error(c);
    return send_frame(c, type, payload, len, kr_client_deadline_after(c->timeout_ms));
}

/* pump() to PUMP_FLUSH, for the typed requests. */
krappy_err kr_client_flush(krappy_client *c, int64_t deadline, int timeout_ms)
{
    return pump(c, PUMP_FLUSH, deadline, timeout_ms, NULL);
}

krappy_err krappy_flush(krappy_client *c)
{
    if (c == NULL)
        return KRAPPY_E_USAGE;
    kr_client_clear_error(c);
    if (c->fd < 0)
        return kr_client_not_connected(c);
    return pump(c, PUMP_FLUSH, kr_client_deadline_after(c->timeout_ms), c->timeout_ms, NULL);
}

/* The next reply; timeout_ms is the one the deadline came from (for
 * messages). */
krappy_err kr_client_recv_frame(krappy_client *c, krappy_frame *f, int64_t deadline, int timeout_ms)
{
    kr_frame fr;
    krappy_err e;

    if (c->fd < 0) {
        /* Replies that arrived before the connection was lost. */
        if (c->close_why[0] != '\0' && kr_frame_parser_next(&c->in, &fr) == 1)
            goto got;
        return kr_client_not_connected(c);
    }
    /* A reply already buffered is returned without writing when more
     * replies are due after it: the recv that takes the last of those writes
     * what is queued (see KR_CLIENT_CORK_BYTES). */
    if (c->in_flight > 1 && kr_frame_parser_next(&c->in, &fr) == 1)
        goto got;
    /* Flush first (reading meanwhile): the reply awaited may be to a request
     * still queued, and a caller who stops after its last recv must not
     * leave requests unsent. */
    if ((e = pump(c, PUMP_FLUSH, deadline, timeout_ms, NULL)) != KRAPPY_OK) {
        /* The server closed while we were writing; what it said before
         * closing (often an ERROR saying why) is still returned. */
        if (e != KRAPPY_E_CLOSED || kr_frame_parser_next(&c->in, &fr) != 1)
            return e;
        kr_client_clear_error(c);
    } else if ((e = pump(c, PUMP_FRAME, deadline, timeout_ms, &fr)) != KRAPPY_OK) {
        return e;
    }
got:
    if (c->in_flight > 0)
        c->in_flight--;
    c->n_answered++;
    f->type = fr.type;
    f->payload = fr.payload;
    f->len = fr.len;
    return KRAPPY_OK;
}

krappy_err krappy_recv(krappy_client *c, krappy_frame *f)
{
    if (c == NULL || f == NULL)
        return c ? kr_client_fail(c, KRAPPY_E_USAGE, "krappy_recv: frame is NULL") : KRAPPY_E_USAGE;
    kr_client_clear_error(c);
    return kr_client_recv_frame(c, f, kr_client_deadline_after(c->timeout_ms), c->timeout_ms);
}

krappy_err krappy_reply_error(krappy_client *c, const krappy_frame *f)
{
    kr_reply r;
    kr_error_in e;
    char msg[KR_CLIENT_SERVER_MSG_MAX];

    if (c == NULL || f == NULL)
        return c ? kr_client_fail(c, KRAPPY_E_USAGE, "krappy_reply_error: frame is NULL")
                 : KRAPPY_E_USAGE;
    if (f->type != KRAPPY_T_ERROR)
        return KRAPPY_OK;
    if (kr_reply_decode(f->type, f->payload, f->len, &r) < 0 || kr_reply_error(&r, &e) < 0 ||
        e.code <= 0 || e.code >= 256)
        return kr_client_fail_close(
            c, KRAPPY_E_PROTOCOL,
            "%s sent a malformed ERROR reply (no valid `code`); connection closed", c->peer);
    if (e.has_range) {
        c->err_range = true;
        c->err_first = e.first;
        c->err_next = e.next;
    }
    if (e.has_expected) {
        c->err_has_expected = true;
        c->err_expected = e.expected;
    }
    if (e.leader.len > 0 && e.leader.len < sizeof c->err_leader &&
        memchr(e.leader.ptr, 0, e.leader.len) == NULL) {
        memcpy(c->err_leader, e.leader.ptr, e.leader.len);
        c->err_leader[e.leader.len] = '\0';
    }
    if (e.message.len > 0)
        kr_client_sanitize(msg, sizeof msg, e.message.ptr, e.message.len);
    else
        snprintf(msg, sizeof msg, "%s", krappy_strerror(e.code));
    if (krappy_err_closes(e.code))
        return kr_client_fail_close(c, (krappy_err)e.code,
                                    "server error %s: %s; the server closed the connection",
                                    krappy_err_name(e.code), msg);
    return kr_client_fail(c, (krappy_err)e.code, "server error %s: %s", krappy_err_name(e.code),
                          msg);
}

/* KRAPPY_E_USAGE when pipelined replies are still unread, as a call would
 * take them for its own. */
krappy_err kr_client_check_no_pipeline(krappy_client *c, const char *what)
{
    if (c->in_flight == 0)
        return KRAPPY_OK;
    return kr_client_fail(c, KRAPPY_E_USAGE,
                          "%zu pipelined repl%s still unread: receive them with krappy_recv (or "
                          "krappy_publish_recv, krappy_poll_recv, krappy_ack_recv) before %s",
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

/* Send one request and receive its reply (an ERROR is returned as a frame
 * like any other), the timeout extended by extra_ms; errors not cleared. */
static krappy_err call_raw(krappy_client *c, uint32_t type, const void *payload, size_t len,
                           krappy_frame *reply, uint64_t extra_ms)
{
    krappy_err e;
    int timeout_ms = extend_timeout(c->timeout_ms, extra_ms);
    int64_t deadline = kr_client_deadline_after(timeout_ms);
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
    return kr_client_recv_frame(c, reply, deadline, timeout_ms);
}

/* krappy_call with the timeout extended by extra_ms; errors not cleared. */
static krappy_err call_ext(krappy_client *c, uint32_t type, const void *payload, size_t len,
                           krappy_frame *reply, uint64_t extra_ms)
{
    krappy_err e = call_raw(c, type, payload, len, reply, extra_ms);
    if (e != KRAPPY_OK)
        return e;
    return krappy_reply_error(c, reply);
}

krappy_err krappy_call(krappy_client *c, uint32_t type, const void *payload, size_t len,
                       krappy_frame *reply)
{
    krappy_err e;

    if (c == NULL || reply == NULL)
        return c ? kr_client_fail(c, KRAPPY_E_USAGE, "krappy_call: reply is NULL") : KRAPPY_E_USAGE;
    kr_client_clear_error(c);
    if ((e = kr_client_check_no_pipeline(c, "krappy_call")) != KRAPPY_OK)
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
        kr_client_clear_error(c);
        return kr_client_fail(c, KRAPPY_E_NOMEM,
                              "cannot build the HELLO request (out of memory, or the "
                              "token and client name are too long)");
    }
    e = krappy_call(c, KRAPPY_T_HELLO, b.data, b.len, &f);
    kr_buf_free(&b);
    if (e != KRAPPY_OK)
        return e;

    if (f.type != KRAPPY_T_OK || kr_reply_decode(f.type, f.payload, f.len, &r) < 0 ||
        !kr_reply_uint(&r, "version", &version))
        return kr_client_fail_close(
            c, KRAPPY_E_PROTOCOL,
            "%s answered HELLO with something other than OK {version, ...}; is it "
            "really krappyd? connection closed",
            c->peer);
    if (version != KRAPPY_PROTOCOL_VERSION)
        return kr_client_fail_close(
            c, KRAPPY_E_PROTOCOL,
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
            kr_client_sanitize(info->server, sizeof info->server, raw, n);
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
        return kr_client_fail_close(
            c, KRAPPY_E_PROTOCOL,
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

const char *krappy_client_error_leader(const krappy_client *c)
{
    return c != NULL ? c->err_leader : "";
}

int krappy_client_error_expected(const krappy_client *c, uint64_t *expected)
{
    if (c == NULL || !c->err_has_expected)
        return 0;
    if (expected != NULL)
        *expected = c->err_expected;
    return 1;
}

/* A reply type for messages: "EVENTS", or "type 77". */
const char *kr_client_type_label(uint32_t type, char *buf, size_t len)
{
    const char *n = krappy_type_name(type);
    if (n != NULL)
        return n;
    snprintf(buf, len, "type %u", (unsigned)type);
    return buf;
}

/* The server's reply is not what the protocol says: close (the connection
 * cannot be trusted to be in step any more). */
krappy_err kr_client_bad_reply(krappy_client *c, const char *request, const char *what)
{
    return kr_client_fail_close(c, KRAPPY_E_PROTOCOL,
                                "%s answered %s with a malformed reply (%s); connection closed",
                                c->peer, request, what);
}

/* Start building a request in c->enc. */
kr_buf *kr_client_enc_begin(krappy_client *c)
{
    kr_buf_reset(&c->enc);
    return &c->enc;
}

/*
 * Judge the reply f to a typed `type` request, which should be of type
 * `want`, decoding its map into *r. Server errors come back as their code,
 * errmsg set by krappy_reply_error. The typed requests carry no cid, so an
 * ERROR with the cid of a batch sent with ack "none" is that batch's
 * refusal, arriving in place of our reply just before the server closes: it
 * is reported as such.
 */
static krappy_err judge_reply(krappy_client *c, uint32_t type, uint32_t want, krappy_frame *f,
                              kr_reply *r)
{
    char b1[24], b2[24];
    const char *name = krappy_type_name(type);

    if (f->type == KRAPPY_T_ERROR) {
        if (c->pub_seq > 0 && kr_reply_decode(f->type, f->payload, f->len, r) == 0 && r->cid.set &&
            r->cid.v >= 1 && r->cid.v <= c->pub_seq)
            return kr_publish_error(c, f, r, NULL);
        return krappy_reply_error(c, f);
    }
    if (f->type != want)
        return kr_client_fail_close(c, KRAPPY_E_PROTOCOL,
                                    "%s answered %s with %s instead of %s; connection closed",
                                    c->peer, name, kr_client_type_label(f->type, b1, sizeof b1),
                                    kr_client_type_label(want, b2, sizeof b2));
    if (kr_reply_decode(f->type, f->payload, f->len, r) < 0)
        return kr_client_bad_reply(c, name, "not a CBOR map with text keys");
    return KRAPPY_OK;
}

/* Send the request built in c->enc, wait for its reply (timeout extended by
 * extra_ms) and judge it (judge_reply). */
krappy_err kr_client_request(krappy_client *c, uint32_t type, uint32_t want, uint64_t extra_ms,
                             krappy_frame *f, kr_reply *r)
{
    krappy_err e;
    const char *name = krappy_type_name(type);

    f->type = 0;
    if (c->enc.failed)
        return kr_client_fail(c, KRAPPY_E_NOMEM, "out of memory building a %s request", name);
    if ((e = kr_client_check_no_pipeline(c, name)) != KRAPPY_OK)
        return e;
    if ((e = call_raw(c, type, c->enc.data, c->enc.len, f, extra_ms)) != KRAPPY_OK)
        return e;
    return judge_reply(c, type, want, f, r);
}

/* ---- pipelined typed requests (POLL, ACK) ---- */

/*
 * Each request that gets a reply has an ordinal on its connection (1, 2,
 * ...; n_asked counts them) and replies come in that order (n_answered
 * counts those returned), so a remembered request's reply is the next one
 * exactly when its ordinal is n_answered + 1. Entries whose replies were
 * taken some other way (krappy_recv) are stale and dropped.
 */
krappy_err kr_client_send_due(krappy_client *c, uint32_t type, uint64_t wait_ms)
{
    krappy_err e;
    const char *name = krappy_type_name(type);

    if (c->fd < 0)
        return kr_client_not_connected(c);
    if (c->enc.failed)
        return kr_client_fail(c, KRAPPY_E_NOMEM, "out of memory building a %s request", name);
    if (kr_ring_reserve(&c->due) < 0)
        return kr_client_fail(c, KRAPPY_E_NOMEM, "out of memory queueing a %s request", name);
    e = kr_client_send_frame(c, type, c->enc.data, c->enc.len,
                             kr_client_deadline_after(c->timeout_ms), 1);
    if (e != KRAPPY_OK)
        return e;
    kr_due *d = kr_ring_push(&c->due);
    d->ordinal = c->n_asked;
    d->type = type;
    d->wait_ms = wait_ms;
    return KRAPPY_OK;
}

krappy_err kr_client_recv_due(krappy_client *c, uint32_t type, uint32_t want, const char *fn,
                              krappy_frame *f, kr_reply *r)
{
    krappy_err e;
    const char *name = krappy_type_name(type);

    f->type = 0;
    const kr_due *d;
    while ((d = kr_ring_front(&c->due)) != NULL && d->ordinal <= c->n_answered)
        kr_ring_pop(&c->due);
    if (d == NULL) {
        if (c->fd < 0)
            return kr_client_not_connected(c);
        return kr_client_fail(c, KRAPPY_E_USAGE, "%s: no pipelined %s reply is due", fn, name);
    }
    if (d->type != type)
        return kr_client_fail(c, KRAPPY_E_USAGE,
                              "%s: the reply to an earlier %s request is due first; receive it "
                              "before this one",
                              fn, krappy_type_name(d->type));
    if (d->ordinal != c->n_answered + 1)
        return kr_client_fail(c, KRAPPY_E_USAGE,
                              "%s: %llu earlier repl%s (PUBLISH or krappy_send) must be received "
                              "first",
                              fn, (unsigned long long)(d->ordinal - c->n_answered - 1),
                              d->ordinal - c->n_answered - 1 == 1 ? "y" : "ies");
    int timeout_ms = extend_timeout(c->timeout_ms, d->wait_ms);
    kr_ring_pop(&c->due);
    if ((e = kr_client_recv_frame(c, f, kr_client_deadline_after(timeout_ms), timeout_ms)) !=
        KRAPPY_OK)
        return e;
    return judge_reply(c, type, want, f, r);
}

/* A required topic argument. */
krappy_err kr_client_need_name(krappy_client *c, const char *fn, const char *what, const char *s)
{
    if (s == NULL || s[0] == '\0')
        return kr_client_fail(c, KRAPPY_E_USAGE, "%s: the %s is %s", fn, what,
                              s == NULL ? "NULL" : "empty");
    return KRAPPY_OK;
}

size_t krappy_in_flight(const krappy_client *c)
{
    return c != NULL ? c->in_flight : 0;
}

void krappy_client_set_timeout(krappy_client *c, int timeout_ms)
{
    if (c != NULL)
        c->timeout_ms = timeout_ms == 0 ? KRAPPY_DEFAULT_TIMEOUT_MS : timeout_ms;
}

const char *krappy_version(void)
{
    return KRAPPY_VERSION;
}
