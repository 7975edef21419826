/*
 * client/frames.c - moving a krappy_client's frames: requests go into an
 * output buffer and replies come out of a proto/frame.h parser. The one
 * loop that moves bytes, pump(), always reads while it waits to write:
 * krappyd stops reading from a connection whose replies are not being read,
 * so a client that only wrote would deadlock against it on a long pipeline.
 *
 * Bounds: the output buffer holds at most KR_CLIENT_OUT_HIGH_WATER bytes of
 * queued requests plus the frame being added (krappy_send waits, reading,
 * above that); unread replies are buffered up to the reply frame limit plus
 * KR_CLIENT_IN_SLACK, after which the client stops reading and a call that
 * still cannot write times out with a sentence saying why.
 */
#include "krappy/client.h"

#include <errno.h>
#include <poll.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>

#include "client/client_internal.h"
#include "proto/cbor.h"
#include "proto/frame.h"
#include "proto/msg.h"
#include "util/byteorder.h"

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

/* What pump() waits for. */
typedef enum pump_goal {
    PUMP_FRAME, /* a whole reply is parsed (writing meanwhile) */
    PUMP_FLUSH, /* every queued request is written (reading meanwhile) */
    PUMP_BELOW  /* queued requests are below the high-water mark */
} pump_goal;

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
krappy_err kr_client_write_some(krappy_client *c)
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

        int n = poll(&pfd, 1, kr_client_ms_left(deadline));
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
            if ((e = kr_client_write_some(c)) != KRAPPY_OK)
                return e;
        }
    }
}

/* ---- the raw API ---- */

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
    if ((e = kr_client_write_some(c)) != KRAPPY_OK)
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
