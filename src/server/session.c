/*
 * server/session.c - one client connection: frames in, requests through the
 * ordered pipeline, replies out, with back-pressure and timeouts.
 *
 * See server.h for the pipeline and back-pressure rules. The socket side
 * - accepting, reading into the budget, EOF and half-close, the last
 * replies and lingering, timeouts, closing, references - is netconn.c's,
 * the same for the Kafka port; this file is the Krappy protocol on it. An
 * asynchronous request still running holds a reference, and finishes as an
 * orphan when the socket closed meanwhile.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>

#include "proto/cbor.h"
#include "proto/frame.h"
#include "server/server.h"
#include "util/byteorder.h"
#include "util/clock.h"
#include "util/log.h"
#include "util/secret.h"

/* Recycled request structs kept per connection: as many as a pipelining
 * client keeps in flight (libkrappy's publishers: 64), so a pipeline's
 * requests are not allocated and freed one by one ... */
#define KR_CONN_FREE_REQS 64
/* ... of which this many keep their reply buffer. */
#define KR_CONN_FREE_REPLIES 16
/* A buffered reply's memory is released rather than kept above this. */
#define KR_REQ_KEEP_BYTES (64u * 1024)
/* The replies of a turn held in the connection's own buffer (c->out) for
 * on_flush's write, at most: a larger reply goes to the output itself. */
#define KR_CONN_OUT_HELD_MAX (64u * 1024)

static void conn_process(kr_conn *c);
static void conn_begin_flush(kr_conn *c, bool linger);
static void conn_release(kr_conn *c);
static void conn_output_added(kr_conn *c);

static size_t out_len(const kr_conn *c)
{
    return kr_netconn_out_len(&c->net);
}

static void log_conn(kr_log_level lvl, const kr_conn *c, const char *msg, const char *why)
{
    if (!kr_log_enabled(lvl))
        return;
    kr_log(lvl, msg, KR_LOG_U64("conn", c->net.id), KR_LOG_STR("peer", c->net.peer),
           KR_LOG_STR(why ? "reason" : NULL, why));
}

/* ---- request structs ---- */

static kr_req *req_alloc(kr_conn *c, uint64_t now_ns)
{
    kr_req *r = TAILQ_FIRST(&c->free_reqs);
    if (r != NULL) {
        TAILQ_REMOVE(&c->free_reqs, r, link);
        c->n_free_reqs--;
    } else {
        r = calloc(1, sizeof *r);
        if (r == NULL)
            return NULL;
        kr_buf_init(&r->reply, (size_t)c->srv->cfg->max_frame + KRAPPY_FRAME_HEADER_BYTES);
    }
    r->conn = c;
    r->type = 0;
    r->cid = (kr_cid){0};
    r->state = KR_REQ_RUNNING;
    r->fifo = false;
    r->async = false;
    r->close_after = false;
    r->topic = NULL;
    r->ack_none = false;
    r->cost = 0;
    r->ctx = NULL;
    r->cancel = NULL;
    r->start_ns = now_ns;
    kr_buf_reset(&r->reply);
    return r;
}

static void req_destroy(kr_req *r)
{
    kr_buf_free(&r->reply);
    free(r);
}

static void req_recycle(kr_conn *c, kr_req *r)
{
    if (r->reply.cap > KR_REQ_KEEP_BYTES || c->n_free_reqs >= KR_CONN_FREE_REPLIES)
        kr_buf_free(&r->reply);
    if (c->n_free_reqs < KR_CONN_FREE_REQS) {
        TAILQ_INSERT_HEAD(&c->free_reqs, r, link);
        c->n_free_reqs++;
    } else {
        req_destroy(r);
    }
}

/* Add a request at the tail of the pipeline, counted as running, begun
 * at now_ns (its latency counts from there). */
static kr_req *req_start(kr_conn *c, uint32_t type, uint64_t now_ns)
{
    kr_req *r = req_alloc(c, now_ns);
    if (r == NULL) {
        kr_conn_abort(c, "out of memory for a request");
        return NULL;
    }
    r->type = type;
    TAILQ_INSERT_TAIL(&c->reqs, r, link);
    c->net.running++;
    return r;
}

/* ---- reading control ---- */

/* 1 when the input holds at least one whole frame (or a bad size, which
 * also needs an answer). */
static bool input_has_frame(const kr_conn *c)
{
    struct evbuffer *in = bufferevent_get_input(c->bev);
    size_t have = evbuffer_get_length(in);
    if (have < 4)
        return false;
    uint8_t hdr[4];
    evbuffer_copyout(in, hdr, 4);
    uint32_t size = kr_get_be32(hdr);
    return kr_frame_check_size(size, c->srv->cfg->max_frame) != KRAPPY_OK ||
           have >= (size_t)size + 4;
}

void kr_conn_update_read(kr_conn *c)
{
    kr_netconn_update_read(&c->net);
}

/* ---- replies ---- */

/*
 * Replies are written by the connection itself, once per loop turn: a reply
 * goes into the connection's own buffer (c->out; a large one, or one of a
 * connection libevent writes for, into the output buffer) and activates
 * the connection's flush event,
 * which runs after the other callbacks of this turn of the loop (libevent
 * runs an event activated from a callback in the same pass), so that every
 * reply a turn produced - the answers to one read's pipeline, or a storage
 * completion round's acknowledgements - leaves in one write. The
 * bufferevent's own write event stays off while the socket takes
 * everything: arming it for each reply cost an epoll_ctl to add it, an
 * epoll_wait to see the socket writable and an epoll_ctl to remove it again
 * - on this kind of VM more than the request itself. Only a write the
 * socket does not take whole turns it on (libevent then writes the rest as
 * the client reads, and on_write turns it off once the output is empty).
 * c->out spares each reply an evbuffer_add (its lock, a chain's
 * bookkeeping and the output's callbacks): on_flush writes it to the
 * socket as one piece and gives libevent only what the socket did not
 * take. Its bytes count in kr_netconn_out_len (net.out_held), so
 * back-pressure sees them; they move to the output before anything else
 * does - a large reply, libevent's writing (write_armed), the close.
 */
/*
 * --write-timeout counts from the client's last taking of reply bytes
 * (kr_server_note_drain on the output). While the connection writes its
 * output itself - emptied in the turn it is filled - that callback is
 * off, sparing every reply's evbuffer_add a run of the callbacks; it is on
 * while libevent writes (the write event armed: the socket was full, or
 * the connection closes), counting from now.
 */
static void conn_watch_drain(kr_conn *c)
{
    c->net.last_drain_ns = kr_mono_ns();
    if (c->net.out_cb != NULL)
        evbuffer_cb_set_flags(bufferevent_get_output(c->bev), c->net.out_cb, EVBUFFER_CB_ENABLED);
}

/* The held replies to the end of the output, in order. @return 0, or -1
 * out of memory. */
static int out_spill(kr_conn *c)
{
    if (c->out.len == 0)
        return 0;
    int rc = evbuffer_add(bufferevent_get_output(c->bev), c->out.data, c->out.len);
    kr_buf_reset(&c->out);
    c->net.out_held = 0;
    return rc;
}

/*
 * One reply frame to the client, after those before it: `hdr` (the
 * frame's header, or NULL when `payload` starts with it) and the payload,
 * from bytes or, when evb is not NULL, the whole of evb. Small replies are
 * held in c->out for on_flush. @return 0, or -1 out of memory.
 */
static int out_put(kr_conn *c, const uint8_t *hdr, const uint8_t *payload, size_t len,
                   struct evbuffer *evb)
{
    size_t hlen = hdr != NULL ? KRAPPY_FRAME_HEADER_BYTES : 0;
    size_t frame = hlen + (evb != NULL ? evbuffer_get_length(evb) : len);
    if (evb == NULL && frame <= KR_CONN_OUT_HELD_MAX && !c->net.write_armed &&
        c->net.phase == KR_NETCONN_OPEN) {
        if (c->out.len + frame > KR_CONN_OUT_HELD_MAX && out_spill(c) < 0)
            return -1;
        if (kr_buf_reserve(&c->out, frame) < 0)
            return -1;
        uint8_t *p = c->out.data + c->out.len;
        if (hlen > 0)
            memcpy(p, hdr, hlen);
        if (len > 0)
            memcpy(p + hlen, payload, len);
        c->out.len += frame;
        c->net.out_held = c->out.len;
        return 0;
    }
    if (out_spill(c) < 0)
        return -1;
    struct evbuffer *out = bufferevent_get_output(c->bev);
    if (hlen > 0 && evbuffer_add(out, hdr, hlen) < 0)
        return -1;
    if (evb != NULL)
        return evbuffer_add_buffer(out, evb);
    return len > 0 ? evbuffer_add(out, payload, len) : 0;
}

/* Write what the turn's replies left: the held ones straight from c->out
 * when nothing is queued before them, else the output. @return the send
 * or evbuffer_write result, errno kept. */
static int out_write(kr_conn *c, struct evbuffer *out)
{
    int fd = bufferevent_getfd(c->bev);
    if (evbuffer_get_length(out) == 0) {
        ssize_t n = send(fd, c->out.data, c->out.len, MSG_DONTWAIT | MSG_NOSIGNAL);
        int err = errno;
        size_t sent = n > 0 ? (size_t)n : 0;
        /* What the socket did not take waits in the output for libevent. */
        if (sent < c->out.len && evbuffer_add(out, c->out.data + sent, c->out.len - sent) < 0) {
            kr_buf_reset(&c->out);
            c->net.out_held = 0;
            errno = ENOMEM;
            return -1;
        }
        kr_buf_reset(&c->out);
        c->net.out_held = 0;
        errno = err;
        return n < 0 ? -1 : (int)n;
    }
    if (out_spill(c) < 0) {
        errno = ENOMEM;
        return -1;
    }
    return kr_netconn_write_out(&c->net);
}

static void on_flush(evutil_socket_t fd, short what, void *arg)
{
    kr_conn *c = arg;
    (void)fd;
    (void)what;
    c->flush_active = false;
    if (c->bev == NULL || c->net.write_armed || c->net.phase != KR_NETCONN_OPEN)
        return;
    struct evbuffer *out = bufferevent_get_output(c->bev);
    size_t before = out_len(c);
    if (before == 0)
        return;
    int rc = out_write(c, out);
    int err = errno;
    if (rc < 0 && err != EAGAIN && err != EINTR) {
        kr_conn_abort(c, strerror(err));
        return;
    }
    if (evbuffer_get_length(out) > 0) {
        /* The socket is full: libevent writes the rest when it drains. */
        conn_watch_drain(c);
        c->net.write_armed = true;
        bufferevent_enable(c->bev, EV_WRITE);
    } else if (before >= KR_CONN_OUT_HIGH || c->net.read_paused) {
        c->net.refs++;
        conn_process(c); /* frames held back by back-pressure may start */
        conn_release(c);
    }
}

/* Every reply of a turn after the first finds the flush already due:
 * event_active takes the base's lock each time, so it is called once. */
static void conn_output_added(kr_conn *c)
{
    if (c->bev != NULL && !c->net.write_armed && c->net.phase == KR_NETCONN_OPEN &&
        !c->flush_active) {
        c->flush_active = true;
        event_active(c->flush_ev, EV_WRITE, 0);
    }
}

/*
 * Write the replies of finished requests at the head of the pipeline, in
 * order, and recycle them. Stops at the first request still running.
 */
static void conn_flush_done(kr_conn *c)
{
    kr_req *r;
    while (c->bev != NULL && (r = TAILQ_FIRST(&c->reqs)) != NULL && r->state == KR_REQ_DONE) {
        TAILQ_REMOVE(&c->reqs, r, link);
        bool close_after = r->close_after;
        if (r->reply.len >= KRAPPY_FRAME_HEADER_BYTES) {
            if (out_put(c, NULL, r->reply.data, r->reply.len, NULL) < 0) {
                req_recycle(c, r);
                kr_conn_abort(c, "out of memory writing a reply");
                return;
            }
            kr_counter_add(c->srv->m.bytes_out, r->reply.len);
            conn_output_added(c);
        }
        req_recycle(c, r);
        if (close_after && c->net.phase == KR_NETCONN_OPEN) {
            conn_begin_flush(c, true);
            return;
        }
    }
}

/* Start closing when nothing is left to do and the client or the server is
 * done with the connection. */
static void conn_maybe_finish(kr_conn *c)
{
    if (c->net.phase != KR_NETCONN_OPEN || c->bev == NULL || !TAILQ_EMPTY(&c->reqs))
        return;
    if (c->net.eof && input_has_frame(c) && !c->net.no_more)
        return; /* whole requests wait for back-pressure to ease */
    if (c->net.eof)
        conn_begin_flush(c, false);
    else if (c->srv->shutting_down)
        conn_begin_flush(c, true); /* FIN, then drain: late requests see EOF */
}

/* Charge a request's memory to its connection and the server's budget,
 * until it finishes. */
static void req_charge(kr_req *r, uint64_t bytes)
{
    r->cost += bytes;
    kr_netconn_charge(&r->conn->net, (int64_t)bytes);
}

static void req_mark_done(kr_req *r)
{
    kr_conn *c = r->conn;
    kr_netconn_charge(&c->net, -(int64_t)r->cost);
    r->cost = 0;
    r->state = KR_REQ_DONE;
    c->net.running--;
    if (r->fifo)
        c->net.running_fifo--;
    if (r->type <= KRAPPY_T_REQUEST_MAX) {
        kr_counter_add(c->srv->m.requests[r->type], 1);
        kr_histogram_observe_ns(c->srv->m.latency[r->type], kr_mono_ns() - r->start_ns);
    }
}

void kr_req_async(kr_req *r)
{
    r->async = true;
    r->conn->net.refs++;
}

bool kr_req_is_head(const kr_req *r)
{
    return TAILQ_FIRST(&r->conn->reqs) == r;
}

/* How a request's reply is given to req_finish. */
typedef struct reply_src {
    uint32_t type;
    const uint8_t *payload; /* bytes ... */
    size_t len;
    struct evbuffer *evb; /* ... or a whole evbuffer */
    bool silent;          /* ... or nothing at all */
} reply_src;

/*
 * Whether an asynchronous request's end may let the connection move on:
 * frames held back (the pipeline rule, back-pressure), reading paused or
 * to be paused (its replies reached KR_CONN_OUT_HIGH), an end to begin.
 * Otherwise - every PUBLISH of a pipeline whose frames all started -
 * conn_process would find nothing to do, at the cost of a look at the
 * input and the budget per request: a begun frame waits for its bytes
 * (on_read), and the request's memory released only widens the budget.
 */
static bool conn_may_move(const kr_conn *c)
{
    return c->frames_held || c->net.read_paused || c->net.eof || c->net.phase != KR_NETCONN_OPEN ||
           c->srv->shutting_down || out_len(c) >= KR_CONN_OUT_HIGH;
}

/*
 * The one way a request ends: count it, write its reply now when it is the
 * oldest request of the connection (else keep it until its turn), write the
 * replies that were waiting behind it, and - for an asynchronous request -
 * start the frames that waited for it and drop its reference.
 */
static void req_finish(kr_req *r, const reply_src *src)
{
    kr_conn *c = r->conn;
    bool was_async = r->async;
    req_mark_done(r);
    if (c->bev == NULL) {
        /* Closed while the request ran: nothing to send. */
        if (was_async) {
            TAILQ_REMOVE(&c->reqs, r, link);
            req_destroy(r);
            conn_release(c);
        }
        return;
    }
    uint8_t hdr[KRAPPY_FRAME_HEADER_BYTES];
    size_t len = src->evb ? evbuffer_get_length(src->evb) : src->len;
    if (!src->silent) {
        kr_frame_put_header(hdr, src->type, len);
        if (TAILQ_FIRST(&c->reqs) == r) {
            if (out_put(c, hdr, src->payload, len, src->evb) < 0) {
                kr_conn_abort(c, "out of memory writing a reply");
            } else {
                kr_counter_add(c->srv->m.bytes_out, sizeof hdr + len);
                conn_output_added(c);
            }
        } else {
            kr_buf_reset(&r->reply);
            kr_buf_append(&r->reply, hdr, sizeof hdr);
            if (src->evb != NULL) {
                if (kr_buf_reserve(&r->reply, len) == 0 &&
                    evbuffer_remove(src->evb, r->reply.data + r->reply.len, len) == (int)len)
                    r->reply.len += len;
                else
                    r->reply.failed = true;
            } else {
                kr_buf_append(&r->reply, src->payload, len);
            }
            if (r->reply.failed)
                kr_conn_abort(c, "out of memory buffering a reply");
        }
    }
    if (c->bev != NULL)
        conn_flush_done(c);
    if (was_async) {
        /* The request's reference guards c while later frames start. */
        if (c->bev != NULL && !c->net.in_process && conn_may_move(c))
            conn_process(c);
        conn_release(c);
    }
}

void kr_req_reply(kr_req *r, uint32_t type, const uint8_t *payload, size_t len)
{
    kr_conn *c = r->conn;
    if ((uint64_t)len + 4 > c->srv->cfg->max_frame && type != KRAPPY_T_ERROR) {
        /* A handler bug: never send a frame the protocol forbids. */
        kr_log(KR_LOG_ERROR, "reply larger than max_frame refused",
               KR_LOG_STR("type", krappy_type_name(type) ? krappy_type_name(type) : "?"));
        kr_req_error(r, KRAPPY_E_INVALID_ARGUMENT,
                     "the reply would exceed the server's max_frame; ask for less", NULL);
        return;
    }
    reply_src src = {.type = type, .payload = payload, .len = len};
    req_finish(r, &src);
}

void kr_req_reply_evbuffer(kr_req *r, uint32_t type, struct evbuffer *payload)
{
    reply_src src = {.type = type, .evb = payload};
    req_finish(r, &src);
}

void kr_req_silent(kr_req *r)
{
    reply_src src = {.silent = true};
    req_finish(r, &src);
}

void kr_req_error(kr_req *r, krappy_err code, const char *message, const kr_error_extra *extra)
{
    kr_conn *c = r->conn;
    if (code <= KRAPPY_E_WIRE_MAX)
        kr_counter_add(c->srv->m.errors[code], 1);
    /* A PUBLISH with ack "none" gets no reply on success, so its producer
     * learns of a refusal only by the ERROR and the close that follows
     * (PROTOCOL.md section 4). */
    if (krappy_err_closes(code) || r->ack_none) {
        r->close_after = true;
        c->net.no_more = true;
    }
    if (kr_log_enabled(KR_LOG_DEBUG)) {
        kr_log(KR_LOG_DEBUG, "request refused", KR_LOG_U64("conn", c->net.id),
               KR_LOG_STR("code", krappy_err_name(code)), KR_LOG_STR("message", message));
    }
    kr_buf_reset(&c->enc);
    kr_enc_error(&c->enc, r->cid, code, message, extra);
    if (c->enc.failed) {
        kr_conn_abort(c, "out of memory encoding an error");
        return;
    }
    kr_req_reply(r, KRAPPY_T_ERROR, c->enc.data, c->enc.len);
}

/* ---- starting requests ---- */

/*
 * With --token, the first request must be a well-formed HELLO whose `token`
 * matches. Fills msg with the reason when it is not.
 */
static bool check_auth(kr_conn *c, uint32_t type, const uint8_t *payload, size_t len, char *msg,
                       size_t msglen)
{
    if (type != KRAPPY_T_HELLO) {
        snprintf(msg, msglen,
                 "this server requires authentication: send HELLO with the token first");
        return false;
    }
    kr_cbor_item map, tok;
    if (len == 0 || kr_cbor_read_exact(payload, len, &map) < 0 || map.kind != KR_CBOR_MAP ||
        kr_cbor_map_find(&map, "token", &tok) != 1) {
        snprintf(msg, msglen, "HELLO must carry the server's token as `token` (a text string)");
        return false;
    }
    if (tok.kind != KR_CBOR_TEXT) {
        snprintf(msg, msglen, "the token in HELLO must be a text string");
        return false;
    }
    /* Join an indefinite-length token; the scratch fits any payload. */
    kr_buf_reset(&c->scratch);
    if (kr_buf_reserve(&c->scratch, tok.str_len) < 0) {
        snprintf(msg, msglen, "out of memory checking the token");
        return false;
    }
    size_t n = kr_cbor_str_copy(&tok, c->scratch.data, tok.str_len);
    if (!kr_secret_equal(c->scratch.data, n, c->srv->cfg->token)) {
        snprintf(msg, msglen, "the token in HELLO is wrong");
        return false;
    }
    return true;
}

/* The request's cid, when its payload has one, for a refusal made before
 * the payload is decoded. */
static void peek_cid(kr_req *r, const uint8_t *payload, size_t len)
{
    uint64_t cid;
    if (kr_req_peek_cid(payload, len, &cid)) {
        r->cid.set = true;
        r->cid.v = cid;
    }
}

/*
 * Run one frame through the checks of PROTOCOL.md section 5 in order
 * (authentication, payload, type, fields) and hand it to its handler.
 */
static void conn_start(kr_conn *c, uint32_t type, const uint8_t *payload, size_t len)
{
    kr_req *r = req_start(c, type, c->net.last_request_ns); /* set as its frame was taken */
    if (r == NULL)
        return;
    req_charge(r, len + KRAPPY_FRAME_HEADER_BYTES);

    /* Refusals before the decode echo the cid too: peek at it for them
     * only (a second walk of every payload cost as much as its decode). */
    if (c->srv->shutting_down) {
        peek_cid(r, payload, len);
        kr_req_error(r, KRAPPY_E_SHUTTING_DOWN,
                     "the server is shutting down; reconnect in a moment", NULL);
        return;
    }
    if (c->srv->cfg->token != NULL && !c->authed) {
        if (!check_auth(c, type, payload, len, c->errmsg, sizeof c->errmsg)) {
            peek_cid(r, payload, len);
            kr_req_error(r, KRAPPY_E_UNAUTHENTICATED, c->errmsg, NULL);
            return;
        }
        c->authed = true;
    }

    kr_request req;
    krappy_err rc =
        kr_req_decode(type, payload, len, &c->scratch, &req, c->errmsg, sizeof c->errmsg);
    r->cid = req.cid;
    /* A fire-and-forget PUBLISH refused for any reason closes the
     * connection (kr_req_error), even when its payload did not decode. */
    if (type == KRAPPY_T_PUBLISH)
        r->ack_none = rc == KRAPPY_OK ? req.u.publish.ack == KR_ACK_NONE
                                      : kr_req_peek_ack_none(payload, len) == 1;
    const kr_handler *h = c->srv->handler_for(type);
    if (rc == KRAPPY_E_BAD_PAYLOAD || rc == KRAPPY_E_NOMEM) {
        kr_req_error(r, KRAPPY_E_BAD_PAYLOAD, c->errmsg, NULL);
        return;
    }
    if (h == NULL || rc == KRAPPY_E_UNKNOWN_TYPE) {
        const char *name = krappy_type_name(type);
        if (name != NULL && type <= KRAPPY_T_REQUEST_MAX)
            snprintf(c->errmsg, sizeof c->errmsg,
                     "request type %u (%s) is not supported by this server yet", type, name);
        else
            snprintf(c->errmsg, sizeof c->errmsg,
                     "unknown request type %u; request types are 1 to 17", type);
        kr_req_error(r, KRAPPY_E_UNKNOWN_TYPE, c->errmsg, NULL);
        return;
    }
    if (rc != KRAPPY_OK) {
        kr_error_extra extra = {.has_versions = rc == KRAPPY_E_UNSUPPORTED_VERSION};
        kr_req_error(r, rc, c->errmsg, &extra);
        return;
    }
    if (c->srv->cluster != NULL && kr_server_not_leader(c, r, &req))
        return; /* PROTOCOL.md section 5: after the fields, before registration */
    if (type == KRAPPY_T_PUBLISH)
        req_charge(r, req.u.publish.count * KR_PUBLISH_EVENT_COST);
    if (h->fifo) {
        r->fifo = true;
        c->net.running_fifo++;
    }
    c->payload = payload; /* for a cluster's log (cluster_write.c) */
    c->payload_len = len;
    (void)h->run(c, r, &req); /* KR_H_ASYNC handlers took their reference */
    c->payload = NULL;
}

/* Frame-level errors lose the framing: answer (in order) and close. */
static void conn_frame_error(kr_conn *c, krappy_err code, uint32_t size)
{
    kr_req *r = req_start(c, 0, kr_mono_ns());
    if (r == NULL)
        return;
    if (code == KRAPPY_E_BAD_FRAME)
        snprintf(c->errmsg, sizeof c->errmsg,
                 "frame size %u is below the minimum of 4 (size counts the 4-byte type and the "
                 "payload); closing the connection",
                 size);
    else
        snprintf(c->errmsg, sizeof c->errmsg,
                 "frame size %u exceeds this server's max_frame of %u bytes; closing the "
                 "connection",
                 size, c->srv->cfg->max_frame);
    kr_req_error(r, code, c->errmsg, NULL);
}

/*
 * The input as conn_process takes frames off it. The frames started are
 * drained together at the end (or when a frame crosses into the next
 * chain), not one by one: every drain runs the input's callbacks (the
 * budget's count). And the frames of a read are found in the first chain
 * as last looked at, not by asking libevent per frame: each of its calls
 * takes the buffer's lock. Until drained, the frames' bytes count in the
 * input as well as in their requests, which only errs on the side of
 * reading less.
 */
typedef struct in_view {
    struct evbuffer *in;
    size_t len;       /* bytes in the input */
    size_t taken;     /* ... of which frames started, not drained yet */
    uint8_t *first;   /* the first chain's bytes (NULL: look again) */
    size_t first_len; /* ... this many of them at least */
    uint64_t read_ns; /* when its frames were first taken (0: not yet): they
                         arrived together, and a clock read costs per frame */
} in_view;

static void view_open(in_view *v, struct evbuffer *in)
{
    *v = (in_view){.in = in, .len = evbuffer_get_length(in)};
}

static void view_drain(in_view *v)
{
    if (v->taken == 0)
        return;
    evbuffer_drain(v->in, v->taken);
    v->len -= v->taken;
    v->taken = 0;
    v->first = NULL;
}

/* `need` contiguous bytes after those taken: in place when the first
 * chain holds them - the common case, a read's worth of small frames -
 * else pulled up after draining what was taken. @return NULL when out of
 * memory. */
static uint8_t *view_at(in_view *v, size_t need)
{
    if (v->first == NULL || v->first_len < v->taken + need) {
        struct evbuffer_iovec io;
        if (evbuffer_peek(v->in, 1, NULL, &io, 1) == 1) {
            v->first = io.iov_base;
            v->first_len = io.iov_len;
        }
    }
    if (v->first != NULL && v->first_len >= v->taken + need)
        return v->first + v->taken;
    view_drain(v);
    v->first = evbuffer_pullup(v->in, (ssize_t)need);
    v->first_len = need;
    return v->first;
}

/*
 * Every whole frame of the input is started (a frame of `begun` bytes, if
 * not 0, has only begun): read on from the socket in this turn when a
 * large frame has begun (a read takes a chunk at most). What was taken is
 * drained first. @return true when bytes were added.
 */
static bool conn_read_on(kr_conn *c, in_view *v, size_t begun)
{
    if (begun <= KR_CONN_READ_CHUNK || out_len(c) >= KR_CONN_OUT_HIGH)
        return false;
    view_drain(v);
    if (!kr_netconn_read_rest(&c->net))
        return false;
    view_open(v, v->in);
    return true;
}

/*
 * Take whole frames off the input and start them while the pipeline rule
 * allows, then decide whether to keep reading. Callers hold a reference on
 * c (the socket may close underneath; the memory stays).
 */
static void conn_process(kr_conn *c)
{
    if (c->net.in_process)
        return;
    c->net.in_process = true;
    c->frames_held = false;
    kr_store *store = c->srv->store; /* the requests of this read: one writer round */
    kr_store_hold(store);
    in_view v;
    view_open(&v, bufferevent_get_input(c->bev));
    while (c->bev != NULL && c->net.phase == KR_NETCONN_OPEN && !c->net.no_more) {
        /* Back-pressure - except that during shutdown the next frame gets
         * its (small) SHUTTING_DOWN at once, after which nothing starts. */
        if (out_len(c) >= KR_CONN_OUT_HIGH && !c->srv->shutting_down) {
            c->frames_held = true;
            break;
        }
        size_t have = v.len - v.taken;
        if (have < 4) {
            if (conn_read_on(c, &v, 0))
                continue;
            break;
        }
        uint8_t *hdr =
            view_at(&v, have < KRAPPY_FRAME_HEADER_BYTES ? have : KRAPPY_FRAME_HEADER_BYTES);
        if (hdr == NULL) {
            kr_conn_abort(c, "out of memory reading a frame");
            break;
        }
        uint32_t size = kr_get_be32(hdr);
        krappy_err rc = kr_frame_check_size(size, c->srv->cfg->max_frame);
        if (rc != KRAPPY_OK) {
            conn_frame_error(c, rc, size);
            break;
        }
        if (have < (size_t)size + 4) {
            if (conn_read_on(c, &v, (size_t)size + 4))
                continue;
            break;
        }
        uint32_t type = kr_get_be32(hdr + 4);
        const kr_handler *h = c->srv->handler_for(type);
        if (c->net.running > 0 &&
            !(h != NULL && h->fifo && c->net.running == c->net.running_fifo)) {
            c->frames_held = true; /* until earlier requests take effect */
            break;
        }

        uint8_t *frame = view_at(&v, (size_t)size + 4);
        if (frame == NULL) {
            kr_conn_abort(c, "out of memory reading a frame");
            break;
        }
        v.taken += (size_t)size + 4;
        kr_budget_frame_taken(&c->net.budget); /* the next frame asks for its own room */
        if (v.read_ns == 0)
            v.read_ns = kr_mono_ns();
        c->net.last_request_ns = v.read_ns;
        kr_counter_add(c->srv->m.bytes_in, (uint64_t)size + 4);
        conn_start(c, type, frame + KRAPPY_FRAME_HEADER_BYTES, size - 4);
    }
    if (c->bev != NULL)
        view_drain(&v);
    kr_store_release(store);
    c->net.in_process = false;
    if (c->bev != NULL) {
        conn_maybe_finish(c);
        kr_conn_update_read(c);
    }
}

/* ---- life cycle ---- */

static void net_process(kr_netconn *n)
{
    conn_process(KR_NETCONN_OWNER(n, kr_conn));
}

static const char *net_eof_closes(const kr_netconn *n)
{
    /* A parked long poll cannot be answered before its wait ends, and a
     * client that shut its side while waiting has gone: close now, so a
     * consumer's membership (and its pending events) is released at once. */
    const kr_conn *c = KR_NETCONN_OWNER(n, const kr_conn);
    return c->parked > 0 ? "closed by the client during a long poll" : NULL;
}

static void net_closed(kr_netconn *n, const char *why);

/* The last reference went. */
static void net_free(kr_netconn *n)
{
    kr_conn *c = KR_NETCONN_OWNER(n, kr_conn);
    kr_req *r;
    while ((r = TAILQ_FIRST(&c->reqs)) != NULL) {
        TAILQ_REMOVE(&c->reqs, r, link);
        req_destroy(r);
    }
    while ((r = TAILQ_FIRST(&c->free_reqs)) != NULL) {
        TAILQ_REMOVE(&c->free_reqs, r, link);
        req_destroy(r);
    }
    kr_buf_free(&c->out);
    kr_buf_free(&c->enc);
    kr_buf_free(&c->scratch);
    kr_buf_free(&c->tmp);
    free(c);
}

static const kr_netconn_ops conn_ops = {
    .process = net_process,
    .eof_closes = net_eof_closes,
    .closed = net_closed,
    .free = net_free,
    .min_frame = KRAPPY_FRAME_MIN_SIZE,
};

kr_conn *kr_conn_new(kr_server *srv, int fd, const struct sockaddr *sa, int salen)
{
    (void)salen;
    kr_conn *c = calloc(1, sizeof *c);
    if (c == NULL)
        return NULL;
    c->srv = srv;
    TAILQ_INIT(&c->reqs);
    TAILQ_INIT(&c->free_reqs);
    kr_buf_init(&c->out, KR_CONN_OUT_HELD_MAX);
    kr_buf_init(&c->enc, srv->cfg->max_frame);
    kr_buf_init(&c->scratch, srv->cfg->max_frame);
    kr_buf_init(&c->tmp, srv->cfg->max_frame);
    c->flush_ev = event_new(srv->base, -1, 0, on_flush, c);
    if (c->flush_ev == NULL ||
        kr_netconn_init(&c->net, srv, &conn_ops, ++srv->next_conn_id, fd, sa) < 0) {
        if (c->flush_ev != NULL)
            event_free(c->flush_ev);
        kr_buf_free(&c->out);
        kr_buf_free(&c->enc);
        kr_buf_free(&c->scratch);
        kr_buf_free(&c->tmp);
        free(c);
        return NULL;
    }
    /* Replies are written by on_flush; the write event only when the
     * socket is full (see "replies"). */
    bufferevent_disable(c->bev, EV_WRITE);
    if (c->net.out_cb != NULL)
        evbuffer_cb_clear_flags(bufferevent_get_output(c->bev), c->net.out_cb, EVBUFFER_CB_ENABLED);
    TAILQ_INSERT_TAIL(&srv->conns, c, link);
    kr_conn_update_read(c);
    log_conn(KR_LOG_DEBUG, c, "connection accepted", NULL);
    return c;
}

/* Drop one reference; the last one frees the memory. */
static void conn_release(kr_conn *c)
{
    kr_netconn_release(&c->net);
}

/* Cancel every running request that can be cancelled (parked ones). */
static void cancel_running(kr_conn *c, krappy_err code)
{
    kr_req *r, *next;
    for (r = TAILQ_FIRST(&c->reqs); r != NULL; r = next) {
        next = TAILQ_NEXT(r, link);
        if (r->state == KR_REQ_RUNNING && r->cancel != NULL) {
            void (*cancel)(kr_req *, krappy_err) = r->cancel;
            r->cancel = NULL;
            cancel(r, code);
        }
    }
}

void kr_conn_cancel_parked(kr_conn *c, krappy_err code)
{
    c->net.refs++;
    cancel_running(c, code);
    conn_release(c);
}

void kr_conn_abort(kr_conn *c, const char *why)
{
    kr_netconn_abort(&c->net, why);
}

/* The socket closed (kr_netconn_abort). */
static void net_closed(kr_netconn *n, const char *why)
{
    kr_conn *c = KR_NETCONN_OWNER(n, kr_conn);
    log_conn(KR_LOG_DEBUG, c, "connection closed", why);
    event_free(c->flush_ev);
    c->flush_ev = NULL;
    kr_buf_free(&c->out); /* replies no one will read */
    c->net.out_held = 0;
    TAILQ_REMOVE(&c->srv->conns, c, link);
    /* Parked requests are withdrawn now; other running asynchronous ones
     * finish as orphans. */
    cancel_running(c, KRAPPY_OK);
    if (c->srv->handler_for == kr_handler_for)
        kr_handlers_conn_closed(c);
}

static void conn_begin_flush(kr_conn *c, bool linger)
{
    if (out_spill(c) < 0) {
        kr_conn_abort(c, "out of memory writing a reply");
        return;
    }
    if (!c->net.write_armed && out_len(c) > 0)
        conn_watch_drain(c); /* libevent writes from now on */
    kr_netconn_begin_flush(&c->net, linger);
}

void kr_conn_shutdown(kr_conn *c)
{
    if (c->bev == NULL || c->net.phase != KR_NETCONN_OPEN)
        return;
    /* Requests already sent but not yet read deserve an answer too: take
     * what the socket holds, so the first of them gets SHUTTING_DOWN. */
    (void)kr_netconn_read_now(&c->net);
    c->net.refs++;
    cancel_running(c, KRAPPY_E_SHUTTING_DOWN); /* parked long polls */
    conn_process(c);                           /* answers waiting frames SHUTTING_DOWN, or closes */
    conn_release(c);
}

/* Give back the memory of a large reply or request once nothing runs: the
 * buffers grow to what one request needed (up to max_frame each) and
 * would otherwise keep it for the connection's life. */
static void conn_shrink(kr_conn *c)
{
    kr_buf *bufs[] = {&c->enc, &c->scratch, &c->tmp};
    for (size_t i = 0; i < sizeof bufs / sizeof bufs[0]; i++)
        if (bufs[i]->cap > KR_REQ_KEEP_BYTES)
            kr_buf_free(bufs[i]);
    /* The held replies' buffer is as large as a busy turn's replies were
     * (up to KR_CONN_OUT_HELD_MAX): an idle connection keeps none. */
    if (c->out.len == 0)
        kr_buf_free(&c->out);
}

static void conn_tick(kr_conn *c, uint64_t now)
{
    const kr_config *cfg = c->srv->cfg;
    if (c->net.running == 0)
        conn_shrink(c);
    if (kr_netconn_tick_closing(&c->net, now, "replies left unread while closing"))
        return;
    if (cfg->token != NULL && !c->authed && TAILQ_EMPTY(&c->reqs) && !c->net.no_more &&
        kr_netconn_hello_late(&c->net, now)) {
        kr_req *r = req_start(c, 0, now);
        if (r != NULL)
            kr_req_error(r, KRAPPY_E_UNAUTHENTICATED,
                         "no HELLO with the token arrived in time; closing the connection", NULL);
        return;
    }
    /* Only while libevent writes (write_armed): the drain clock runs then.
     * Replies the connection writes itself - held in c->out, or a large one
     * in the output - wait at most for the end of the loop's turn, which a
     * tick may fall into; with the clock stopped since the last time the
     * socket was full, they would look unread for ages and the connection
     * be closed with its client waiting for them. */
    if (c->net.write_armed && kr_netconn_write_stalled(&c->net, now)) {
        kr_counter_add(c->srv->m.closed_stalled, 1);
        log_conn(KR_LOG_INFO, c, "connection closed", "replies left unread past --write-timeout");
        kr_conn_abort(c, NULL);
        return;
    }
    if (kr_netconn_frame_stalled(&c->net, now)) {
        kr_counter_add(c->srv->m.closed_frame_stalled, 1);
        log_conn(KR_LOG_INFO, c, "connection closed",
                 "its frame stopped arriving while others waited for request memory "
                 "(--max-pending-bytes)");
        kr_conn_abort(c, NULL);
        return;
    }
    if (c->parked == 0 && kr_netconn_idle(&c->net, now)) {
        kr_counter_add(c->srv->m.closed_idle, 1);
        kr_conn_abort(c, "idle");
    }
}

void kr_conn_tick(kr_conn *c, uint64_t now)
{
    c->net.refs++;
    conn_tick(c, now);
    conn_release(c);
}
