/*
 * server/kafka_listener.c - the Kafka port: accepting, connections, frames,
 * the request pipeline, back-pressure, timeouts and the SASL gate (see
 * kafka.h for the rules).
 *
 * The socket side of a connection - accepting, reading into the budget,
 * EOF and half-close, the last responses and lingering, timeouts, closing,
 * references - is netconn.c's, the same as the Krappy port's; this file is
 * the Kafka protocol on it.
 */
#include "server/kafka.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <unistd.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>
#include <event2/listener.h>

#include "server/kafka_groups.h"
#include "server/kafka_resp.h"
#include "util/byteorder.h"
#include "util/clock.h"
#include "util/log.h"

/* Recycled request structs kept per connection. */
#define KR_KCONN_FREE_REQS 8
/* A recycled response buffer above this is released rather than kept. */
#define KR_KREQ_KEEP_BYTES (64u * 1024)
/* The arrays of one decoded request: at most this many bytes per frame
 * byte (array elements are never more than 8 times their wire size), plus
 * a little for an empty request's defaults. */
#define KR_KDEC_PER_BYTE 8
#define KR_KDEC_BASE     (64u * 1024)

static void kconn_process(kr_kconn *c);
static void kconn_abort(kr_kconn *c, const char *why);
static void kconn_begin_flush(kr_kconn *c);

static size_t out_len(const kr_kconn *c)
{
    return kr_netconn_out_len(&c->net);
}

void kr_kconn_log(kr_log_level lvl, const kr_kconn *c, const char *msg, const char *why)
{
    if (!kr_log_enabled(lvl))
        return;
    kr_log(lvl, msg, KR_LOG_STR("port", "kafka"), KR_LOG_U64("conn", c->net.id),
           KR_LOG_STR("peer", c->net.peer),
           KR_LOG_STR(c->client_id[0] ? "client" : NULL, c->client_id),
           KR_LOG_STR(why ? "reason" : NULL, why));
}

/* ---- the request timeline (debug log) ---- */

/* Answered requests whose replies are queued and not yet all taken by the
 * socket: their timelines wait here for the moment the output drains. */
#define KR_KTRACE_MAX 16

typedef struct ktrace_entry {
    int16_t api_key;
    int32_t correlation_id;
    uint64_t seen_ns, read_ns, handed_ns, done_ns, queued_ns;
    uint64_t frame_bytes, sock_unread, seen_cpu_ns;
} ktrace_entry;

struct kr_ktrace {
    size_t n;
    ktrace_entry e[KR_KTRACE_MAX];
};

static uint64_t us_after(uint64_t t, uint64_t from)
{
    return t >= from && from > 0 ? (t - from) / 1000 : 0;
}

/* The loop thread's CPU time (the timeline tells work from waiting). */
static uint64_t loop_cpu_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

/* One line per request: when its frame was first seen (after the
 * connection's accept), then its steps in microseconds after that (drained
 * 0: the connection went first), and the loop thread's CPU time in
 * between. */
static void ktrace_log(const kr_kconn *c, const ktrace_entry *e, uint64_t drained_ns,
                       uint64_t cpu_ns)
{
    kr_log(KR_LOG_DEBUG, "Kafka request timeline", KR_LOG_U64("conn", c->net.id),
           KR_LOG_STR("api", kr_kafka_api_name(e->api_key)),
           KR_LOG_I64("correlation_id", e->correlation_id),
           KR_LOG_U64("frame_bytes", e->frame_bytes),
           KR_LOG_U64("socket_unread_bytes", e->sock_unread),
           KR_LOG_U64("seen_at_us", us_after(e->seen_ns, c->net.accepted_ns)),
           KR_LOG_U64("read_us", us_after(e->read_ns, e->seen_ns)),
           KR_LOG_U64("handed_us", us_after(e->handed_ns, e->seen_ns)),
           KR_LOG_U64("done_us", us_after(e->done_ns, e->seen_ns)),
           KR_LOG_U64("queued_us", us_after(e->queued_ns, e->seen_ns)),
           KR_LOG_U64("drained_us", us_after(drained_ns, e->seen_ns)),
           KR_LOG_U64("loop_cpu_us", us_after(cpu_ns, e->seen_cpu_ns)));
}

static void ktrace_flush(kr_kconn *c, uint64_t drained_ns)
{
    uint64_t cpu = loop_cpu_ns();
    for (size_t i = 0; i < c->trace->n; i++)
        ktrace_log(c, &c->trace->e[i], drained_ns, cpu);
    c->trace->n = 0;
}

/* The output lost bytes and is empty: every reply queued is written. */
static void on_output_trace(struct evbuffer *out, const struct evbuffer_cb_info *info, void *arg)
{
    kr_kconn *c = arg;
    if (info->n_deleted > 0 && evbuffer_get_length(out) == 0 && c->trace->n > 0)
        ktrace_flush(c, kr_mono_ns());
}

/* r's response was just queued: its timeline waits for the output to
 * drain. */
static void ktrace_queued(kr_kconn *c, const kr_kreq *r)
{
    if (c->trace->n == KR_KTRACE_MAX)
        ktrace_flush(c, 0);
    c->trace->e[c->trace->n++] = (ktrace_entry){.api_key = r->api_key,
                                                .correlation_id = r->correlation_id,
                                                .seen_ns = r->seen_ns,
                                                .read_ns = r->start_ns,
                                                .handed_ns = r->handed_ns,
                                                .done_ns = r->done_ns,
                                                .queued_ns = kr_mono_ns(),
                                                .frame_bytes = r->frame_bytes,
                                                .sock_unread = r->sock_unread,
                                                .seen_cpu_ns = r->seen_cpu_ns};
    if (out_len(c) == 0)
        ktrace_flush(c, c->trace->e[c->trace->n - 1].queued_ns);
}

/* With the debug log on, a connection keeps its requests' timelines. */
static void ktrace_open(kr_kconn *c)
{
    if (!kr_log_enabled(KR_LOG_DEBUG))
        return;
    c->trace = calloc(1, sizeof *c->trace);
    if (c->trace != NULL &&
        evbuffer_add_cb(bufferevent_get_output(c->net.bev), on_output_trace, c) == NULL) {
        free(c->trace);
        c->trace = NULL;
    }
}

/* Bytes the socket holds unread (the debug log's timeline). */
static uint64_t sock_unread(const kr_kconn *c)
{
    int n = 0;
    if (c->trace == NULL || ioctl(bufferevent_getfd(c->net.bev), FIONREAD, &n) < 0 || n < 0)
        return 0;
    return (uint64_t)n;
}

/* ---- request structs ---- */

static kr_kreq *kreq_new(kr_kconn *c)
{
    kr_kreq *r = TAILQ_FIRST(&c->free_reqs);
    if (r != NULL) {
        TAILQ_REMOVE(&c->free_reqs, r, link);
        c->n_free_reqs--;
    } else {
        r = calloc(1, sizeof *r);
        if (r == NULL)
            return NULL;
        kr_buf_init(&r->resp, (size_t)c->k->cfg->max_frame + 4);
        kr_kafka_arena_init(&r->arena, (size_t)c->k->cfg->max_frame);
    }
    r->conn = c;
    r->api_key = r->api_version = -1;
    r->correlation_id = 0;
    r->done = r->fifo = r->async = r->close_after = false;
    r->pending = 0;
    r->cost = 0;
    r->ctx = NULL;
    r->cancel = NULL;
    r->start_ns = kr_mono_ns();
    r->seen_ns = c->frame_seen_ns != 0 ? c->frame_seen_ns : r->start_ns;
    r->sock_unread = c->frame_sock_unread;
    r->seen_cpu_ns = c->frame_seen_cpu_ns;
    r->handed_ns = r->done_ns = 0;
    r->frame_bytes = 0;
    c->frame_seen_ns = 0;
    return r;
}

static void kreq_destroy(kr_kreq *r)
{
    kr_buf_free(&r->resp);
    kr_buf_free(&r->tail);
    kr_kafka_arena_free(&r->arena);
    free(r);
}

static void kreq_recycle(kr_kconn *c, kr_kreq *r)
{
    kr_buf_reset(&r->resp);
    if (r->resp.cap > KR_KREQ_KEEP_BYTES)
        kr_buf_free(&r->resp);
    kr_buf_free(&r->tail);
    kr_kafka_arena_reset(&r->arena);
    if (c->n_free_reqs < KR_KCONN_FREE_REQS) {
        TAILQ_INSERT_HEAD(&c->free_reqs, r, link);
        c->n_free_reqs++;
    } else {
        kreq_destroy(r);
    }
}

void *kr_kreq_array(kr_kreq *r, int32_t n, size_t size)
{
    return kr_kafka_arena_alloc(&r->arena, (size_t)kr_kcount(n) * size);
}

kr_khresult kr_kreq_nomem(kr_kreq *r)
{
    kr_kreq_close(r, "out of memory building a response");
    return KR_KH_DONE;
}

const char *kr_kreq_strdup(kr_kreq *r, const char *p, int32_t n)
{
    if (n < 0)
        return NULL;
    char *d = kr_kafka_arena_alloc(&r->arena, (size_t)n + 1);
    if (d != NULL && n > 0)
        memcpy(d, p, (size_t)n);
    return d;
}

void kr_kreq_async(kr_kreq *r)
{
    if (r->async)
        return;
    r->async = true;
    r->conn->net.refs++;
}

/* Queue r's response on the socket, then its tail: small ones copied,
 * large ones by reference (the buffer then belongs to the output).
 * @return 0 or -1 (the frame may be queued in part: the caller closes). */
static int kreq_send(kr_kconn *c, kr_kreq *r)
{
    struct evbuffer *out = bufferevent_get_output(c->net.bev);
    if (kr_kresp_send(out, &r->resp) < 0)
        return -1;
    return r->tail.len > 0 ? kr_kresp_send(out, &r->tail) : 0;
}

/* ---- responses ---- */

/* Write the responses of finished requests at the head of the pipeline, in
 * order; stop at the first still running. */
static void kconn_flush_done(kr_kconn *c)
{
    kr_kreq *r;
    while (c->net.bev != NULL && (r = TAILQ_FIRST(&c->reqs)) != NULL && r->done) {
        TAILQ_REMOVE(&c->reqs, r, link);
        bool close_after = r->close_after;
        if (r->resp.len > 0) {
            size_t n = r->resp.len + r->tail.len;
            if (kreq_send(c, r) < 0) {
                kreq_recycle(c, r);
                kconn_abort(c, "out of memory writing a response");
                return;
            }
            kr_counter_add(c->k->m.bytes_out, n);
        }
        if (c->trace != NULL)
            ktrace_queued(c, r);
        kreq_recycle(c, r);
        if (close_after) {
            kconn_begin_flush(c);
            return;
        }
    }
}

void kr_kreq_charge(kr_kreq *r, uint64_t bytes)
{
    r->cost += bytes;
    kr_netconn_charge(&r->conn->net, (int64_t)bytes);
}

/* The one way a request ends: its memory released, counted, written when
 * its turn comes, and - for an asynchronous one - the frames that waited
 * for it started. */
static void kreq_finish(kr_kreq *r)
{
    kr_kconn *c = r->conn;
    bool was_async = r->async;
    kr_netconn_charge(&c->net, -(int64_t)r->cost);
    r->cost = 0;
    r->done = true;
    if (c->trace != NULL)
        r->done_ns = kr_mono_ns();
    c->net.running--;
    if (r->fifo)
        c->net.running_fifo--;
    int i = kr_kafka_api_index(r->api_key);
    if (i >= 0) {
        kr_counter_add(c->k->m.requests[i], 1);
        kr_histogram_observe_ns(c->k->m.latency[i], kr_mono_ns() - r->start_ns);
    }
    if (c->net.bev == NULL) {
        /* The connection closed while the request ran: nothing to send. */
        if (was_async) {
            TAILQ_REMOVE(&c->reqs, r, link);
            kreq_destroy(r);
            kr_kconn_release(c);
        }
        return;
    }
    kconn_flush_done(c);
    if (was_async) {
        if (c->net.bev != NULL && !c->net.in_process && !c->resume_pending) {
            c->resume_pending = true;
            c->net.refs++;
            event_active(c->resume, EV_TIMEOUT, 0);
        }
        kr_kconn_release(c);
    }
}

static void on_resume(evutil_socket_t fd, short what, void *arg)
{
    kr_kconn *c = arg;
    (void)fd;
    (void)what;
    c->resume_pending = false;
    if (c->net.bev != NULL)
        kconn_process(c);
    kr_kconn_release(c);
}

/*
 * Encode r's answer into r->resp, lengthened by `tail` bytes to come after
 * it (kr_kafka_response_extend; 0: none). A response that cannot be encoded
 * is logged and closes the connection. @return true when encoded.
 */
static bool kreq_encode(kr_kreq *r, const void *body, size_t tail)
{
    kr_kconn *c = r->conn;
    /* ApiVersions v3+ is answered in v0's layout (kafka/codec.h). */
    int16_t version =
        r->api_key == KR_KAFKA_API_VERSIONS && r->api_version > 2 ? 0 : r->api_version;
    kr_buf_reset(&r->resp);
    if (tail == 0) /* else the answer is small: the tail is the bulk */
        kr_kresp_pool_take(&r->resp);
    kr_kafka_status st = kr_kafka_response_encode(&r->resp, r->api_key, version, r->correlation_id,
                                                  body, c->msg, sizeof c->msg);
    if (st == KR_KAFKA_OK && tail > 0) {
        if (tail > r->resp.max || r->resp.len > r->resp.max - tail)
            st = KR_KAFKA_TOO_BIG;
        else if (kr_kafka_response_extend(&r->resp, 0, tail) < 0)
            st = KR_KAFKA_INVALID;
        if (st == KR_KAFKA_INVALID)
            snprintf(c->msg, sizeof c->msg, "the %s response does not end with empty bytes",
                     kr_kafka_api_name(r->api_key));
    }
    if (st == KR_KAFKA_OK)
        return true;
    kr_buf_reset(&r->resp);
    if (st == KR_KAFKA_TOO_BIG)
        snprintf(c->msg, sizeof c->msg,
                 "the %s response would exceed --max-frame (%u bytes); closing",
                 kr_kafka_api_name(r->api_key), c->k->cfg->max_frame);
    kr_log(KR_LOG_ERROR, "a Kafka response could not be encoded", KR_LOG_U64("conn", c->net.id),
           KR_LOG_STR("api", kr_kafka_api_name(r->api_key)), KR_LOG_STR("reason", c->msg));
    r->close_after = true;
    c->net.no_more = true;
    return false;
}

void kr_kreq_respond(kr_kreq *r, const void *body)
{
    (void)kreq_encode(r, body, 0);
    kreq_finish(r);
}

void kr_kreq_respond_tail(kr_kreq *r, const void *body, kr_buf *tail)
{
    kr_buf taken = *tail;
    *tail = (kr_buf){.max = tail->max};
    kr_buf_free(&r->tail);
    if (kreq_encode(r, body, taken.len))
        r->tail = taken;
    else
        kr_buf_free(&taken);
    kreq_finish(r);
}

void kr_kreq_respond_raw(kr_kreq *r, const void *p, size_t n)
{
    kr_buf_reset(&r->resp);
    kr_kafka_put_i32(&r->resp, (int32_t)n);
    kr_buf_append(&r->resp, p, n);
    kreq_finish(r);
}

void kr_kreq_silent(kr_kreq *r)
{
    kr_buf_reset(&r->resp);
    kreq_finish(r);
}

void kr_kreq_close(kr_kreq *r, const char *why)
{
    kr_kconn *c = r->conn;
    kr_counter_add(c->k->m.closed_bad, 1);
    kr_kconn_log(KR_LOG_WARN, c, "closing a Kafka connection", why);
    kr_buf_reset(&r->resp);
    r->close_after = true;
    c->net.no_more = true;
    kreq_finish(r);
}

/* ---- reading ---- */

/* Start a request that cannot run: close after the earlier responses. */
static void kconn_refuse(kr_kconn *c, kr_kreq *r, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void kconn_refuse(kr_kconn *c, kr_kreq *r, const char *fmt, ...)
{
    char why[sizeof c->msg];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(why, sizeof why, fmt, ap);
    va_end(ap);
    kr_kreq_close(r, why);
}

/* Add a request at the tail of the pipeline, counted as running. */
static kr_kreq *kreq_start(kr_kconn *c)
{
    kr_kreq *r = kreq_new(c);
    if (r == NULL) {
        kconn_abort(c, "out of memory for a request");
        return NULL;
    }
    TAILQ_INSERT_TAIL(&c->reqs, r, link);
    c->net.running++;
    return r;
}

/* With --token, what may come before the SASL exchange is done. */
static bool sasl_allows(const kr_kconn *c, int16_t key)
{
    if (c->sasl == KR_KSASL_DONE || key == KR_KAFKA_API_VERSIONS)
        return true;
    if (c->sasl == KR_KSASL_START)
        return key == KR_KAFKA_SASL_HANDSHAKE;
    return c->sasl == KR_KSASL_HANDSHAKE && key == KR_KAFKA_SASL_AUTHENTICATE;
}

/* One request frame (the bytes after its size): header, SASL gate,
 * decode, handler. */
static void kconn_start(kr_kconn *c, const uint8_t *p, size_t len)
{
    kr_kreq *r = kreq_start(c);
    if (r == NULL)
        return;
    r->frame_bytes = len + 4;
    if (c->sasl == KR_KSASL_RAW) {
        /* SaslHandshake v0: this frame is the bare PLAIN token. */
        kr_khandle_sasl_raw(c, r, p, len);
        return;
    }
    kr_kafka_req_header h;
    size_t body_off;
    if (kr_kafka_header_decode(p, len, &h, &body_off) != KR_KAFKA_OK) {
        kconn_refuse(c, r, "a request of %zu bytes is shorter than its header", len);
        return;
    }
    r->api_key = h.api_key;
    r->api_version = h.api_version;
    r->correlation_id = h.correlation_id;
    if (c->client_id[0] == '\0' && h.client_id.len > 0)
        snprintf(c->client_id, sizeof c->client_id, "%.*s", (int)h.client_id.len, h.client_id.ptr);
    if (!sasl_allows(c, h.api_key)) {
        kconn_refuse(c, r,
                     "%s before SASL/PLAIN authentication: this server has --token, so clients "
                     "authenticate with security.protocol=SASL_PLAINTEXT, sasl.mechanism=PLAIN and "
                     "the token as the password",
                     kr_kafka_api_name(h.api_key));
        return;
    }
    kr_kafka_request req;
    kr_kafka_status st = kr_kafka_request_decode(p, len, &c->dec, &req, c->msg, sizeof c->msg);
    if (st == KR_KAFKA_UNSUPPORTED && h.api_key == KR_KAFKA_API_VERSIONS) {
        /* A newer ApiVersions than we speak: the table, with the error
         * that makes clients retry with a version we know. */
        kr_kafka_api_versions_resp resp;
        kr_kafka_api_version table[KR_KAFKA_NAPIS];
        kr_kafka_api_versions_fill(&resp, KR_KAFKA_ERR_UNSUPPORTED_VERSION, table);
        kr_kreq_respond(r, &resp);
        return;
    }
    if (st != KR_KAFKA_OK) {
        /* No response can be framed for what we cannot read. */
        kconn_refuse(c, r, "%s request v%d refused: %s", kr_kafka_api_name(h.api_key),
                     h.api_version, c->msg);
        kr_kafka_arena_reset(&c->dec);
        return;
    }
    const kr_khandler *kh = kr_khandler_for(h.api_key);
    if (kh == NULL) {
        kconn_refuse(c, r, "%s is not served by this broker", kr_kafka_api_name(h.api_key));
        kr_kafka_arena_reset(&c->dec);
        return;
    }
    if (kh->fifo) {
        r->fifo = true;
        c->net.running_fifo++;
    }
    (void)kh->run(c, r, &req);
    kr_kafka_arena_reset(&c->dec);
}

/*
 * A whole frame's bytes, valid until the next call: in place when the input
 * holds it in one piece; else moved out of the input into the listener's
 * frame buffer (reused: a megabyte Produce made contiguous in new memory
 * each time costs its page faults). @return NULL on ENOMEM.
 */
static const uint8_t *frame_bytes(kr_kafka *k, struct evbuffer *in, size_t n)
{
    if (evbuffer_get_contiguous_space(in) >= n)
        return evbuffer_pullup(in, (ssize_t)n);
    kr_buf_reset(&k->frame);
    if (kr_buf_reserve(&k->frame, n) < 0 || evbuffer_remove(in, k->frame.data, n) != (int)n)
        return NULL;
    k->frame.len = n;
    return k->frame.data;
}

/*
 * Take whole frames off the input and start them while the pipeline rule
 * allows; then decide whether to read on. Callers hold a reference.
 */
static void kconn_process(kr_kconn *c)
{
    if (c->net.in_process)
        return;
    c->net.in_process = true;
    kr_store *store = c->k->srv->store;
    kr_store_hold(store); /* the requests of this read: one writer round */
    while (c->net.bev != NULL && c->net.phase == KR_NETCONN_OPEN && !c->net.no_more) {
        if (out_len(c) >= KR_CONN_OUT_HIGH)
            break;
        struct evbuffer *in = bufferevent_get_input(c->net.bev);
        size_t have = evbuffer_get_length(in);
        if (have < 4)
            break;
        if (c->trace != NULL && c->frame_seen_ns == 0) {
            c->frame_seen_ns = kr_mono_ns();
            c->frame_sock_unread = sock_unread(c);
            c->frame_seen_cpu_ns = loop_cpu_ns();
        }
        uint8_t hdr[6];
        evbuffer_copyout(in, hdr, have < sizeof hdr ? have : sizeof hdr);
        int32_t size = (int32_t)kr_get_be32(hdr);
        int32_t min = c->sasl == KR_KSASL_RAW ? 0 : KR_KAFKA_REQ_HEADER_MIN;
        if (size < min || (uint32_t)size > c->k->cfg->max_frame) {
            /* Framing is lost: nothing can be answered. */
            snprintf(c->msg, sizeof c->msg,
                     size < min ? "frame size %d is below the smallest request (%d bytes)"
                                : "frame size %d exceeds --max-frame (%d bytes)",
                     size, size < min ? min : (int32_t)c->k->cfg->max_frame);
            kr_kreq *r = kreq_start(c);
            if (r != NULL)
                kr_kreq_close(r, c->msg);
            break;
        }
        if (have < (size_t)size + 4) {
            if (kr_netconn_read_rest(&c->net))
                continue;
            break;
        }
        if (c->net.running > 0) {
            /* A Produce may follow Produces still being written; anything
             * else waits for every earlier request. */
            const kr_khandler *kh =
                c->sasl == KR_KSASL_RAW ? NULL : kr_khandler_for((int16_t)kr_get_be16(hdr + 4));
            if (!(kh != NULL && kh->fifo && c->net.running == c->net.running_fifo))
                break;
        }
        const uint8_t *frame = frame_bytes(c->k, in, (size_t)size + 4);
        if (frame == NULL) {
            kconn_abort(c, "out of memory reading a frame");
            break;
        }
        kr_budget_frame_taken(&c->net.budget);
        c->net.last_request_ns = kr_mono_ns();
        kr_counter_add(c->k->m.bytes_in, (uint64_t)size + 4);
        kconn_start(c, frame + 4, (size_t)size);
        if (c->net.bev != NULL && frame != c->k->frame.data)
            evbuffer_drain(in, (size_t)size + 4);
    }
    kr_store_release(store);
    c->net.in_process = false;
    if (c->net.bev == NULL)
        return;
    /* Done with the connection: the client shut its side, or the server
     * stops. */
    if (c->net.phase == KR_NETCONN_OPEN && TAILQ_EMPTY(&c->reqs) &&
        (c->net.eof || c->k->srv->shutting_down || c->net.no_more))
        kconn_begin_flush(c);
    kr_netconn_update_read(&c->net);
}

/* ---- life cycle ---- */

static void net_process(kr_netconn *n)
{
    kconn_process(KR_NETCONN_OWNER(n, kr_kconn));
}

static const char *net_eof_closes(const kr_netconn *n)
{
    const kr_kconn *c = KR_NETCONN_OWNER(n, const kr_kconn);
    return c->parked > 0 ? "closed by the client while waiting" : NULL;
}

static void net_closed(kr_netconn *n, const char *why);
static void net_free(kr_netconn *n);

/* A request's frame is refused below KR_KAFKA_REQ_HEADER_MIN once read,
 * and a SASL token frame may be short: the budget counts from 0. */
static const kr_netconn_ops kconn_ops = {
    .process = net_process,
    .eof_closes = net_eof_closes,
    .closed = net_closed,
    .free = net_free,
    .min_frame = 0,
};

static kr_kconn *kconn_new(kr_kafka *k, int fd, const struct sockaddr *sa)
{
    kr_kconn *c = calloc(1, sizeof *c);
    if (c == NULL)
        return NULL;
    c->k = k;
    c->sasl = k->cfg->token != NULL ? KR_KSASL_START : KR_KSASL_DONE;
    TAILQ_INIT(&c->reqs);
    TAILQ_INIT(&c->free_reqs);
    kr_kafka_arena_init(&c->dec, (size_t)k->cfg->max_frame * KR_KDEC_PER_BYTE + KR_KDEC_BASE);
    c->resume = event_new(k->srv->base, -1, 0, on_resume, c);
    if (c->resume == NULL ||
        kr_netconn_init(&c->net, k->srv, &kconn_ops, ++k->next_conn_id, fd, sa) < 0) {
        if (c->resume != NULL)
            event_free(c->resume);
        kr_kafka_arena_free(&c->dec);
        free(c);
        return NULL;
    }
    ktrace_open(c);
    kr_netconn_update_read(&c->net);
    TAILQ_INSERT_TAIL(&k->conns, c, link);
    k->n_conns++;
    kr_kconn_log(KR_LOG_DEBUG, c, "Kafka connection accepted", NULL);
    return c;
}

void kr_kconn_release(kr_kconn *c)
{
    kr_netconn_release(&c->net);
}

/* The last reference went. */
static void net_free(kr_netconn *n)
{
    kr_kconn *c = KR_NETCONN_OWNER(n, kr_kconn);
    kr_kfetch_conn_free(c);
    kr_kreq *r;
    while ((r = TAILQ_FIRST(&c->reqs)) != NULL) {
        TAILQ_REMOVE(&c->reqs, r, link);
        kreq_destroy(r);
    }
    while ((r = TAILQ_FIRST(&c->free_reqs)) != NULL) {
        TAILQ_REMOVE(&c->free_reqs, r, link);
        kreq_destroy(r);
    }
    kr_kafka_arena_free(&c->dec);
    event_free(c->resume);
    free(c->trace);
    free(c);
}

/* Withdraw the parked requests (they finish silently). */
static void cancel_parked(kr_kconn *c)
{
    kr_kreq *r, *next;
    c->net.refs++;
    for (r = TAILQ_FIRST(&c->reqs); r != NULL; r = next) {
        next = TAILQ_NEXT(r, link);
        if (!r->done && r->cancel != NULL) {
            void (*cancel)(kr_kreq *) = r->cancel;
            r->cancel = NULL;
            cancel(r);
        }
    }
    kr_kconn_release(c);
}

static void kconn_abort(kr_kconn *c, const char *why)
{
    kr_netconn_abort(&c->net, why);
}

/* The socket closed (kr_netconn_abort): parked requests are withdrawn;
 * running ones finish as orphans; the rest go with the last reference. */
static void net_closed(kr_netconn *n, const char *why)
{
    kr_kconn *c = KR_NETCONN_OWNER(n, kr_kconn);
    kr_kconn_log(KR_LOG_DEBUG, c, "Kafka connection closed", why);
    if (c->trace != NULL)
        ktrace_flush(c, 0);
    TAILQ_REMOVE(&c->k->conns, c, link);
    c->k->n_conns--;
    cancel_parked(c);
    kr_kfetch_conn_closed(c);
    kr_kproduce_conn_closed(c);
}

static void kconn_begin_flush(kr_kconn *c)
{
    if (c->net.bev == NULL || c->net.phase != KR_NETCONN_OPEN)
        return;
    c->net.no_more = true;
    kr_netconn_begin_flush(&c->net, true);
}

static void kconn_tick(kr_kconn *c, uint64_t now)
{
    if (kr_netconn_tick_closing(&c->net, now, "responses left unread while closing"))
        return;
    if (c->sasl != KR_KSASL_DONE && TAILQ_EMPTY(&c->reqs) && kr_netconn_hello_late(&c->net, now)) {
        kr_kconn_log(KR_LOG_INFO, c, "Kafka connection closed",
                     "no SASL authentication within --hello-timeout");
        kconn_abort(c, NULL);
        return;
    }
    if (kr_netconn_frame_stalled(&c->net, now)) {
        kr_counter_add(c->k->m.closed_stalled, 1);
        kr_kconn_log(KR_LOG_INFO, c, "Kafka connection closed",
                     "its frame stopped arriving while others wait for request memory");
        kconn_abort(c, NULL);
        return;
    }
    if (kr_netconn_write_stalled(&c->net, now)) {
        kr_counter_add(c->k->m.closed_stalled, 1);
        kr_kconn_log(KR_LOG_INFO, c, "Kafka connection closed",
                     "responses left unread past --write-timeout");
        kconn_abort(c, NULL);
        return;
    }
    if (kr_netconn_idle(&c->net, now)) {
        kr_counter_add(c->k->m.closed_idle, 1);
        kconn_abort(c, "idle");
    }
}

/* ---- the listener ---- */

static void on_accept(struct evconnlistener *l, evutil_socket_t fd, struct sockaddr *sa, int salen,
                      void *arg)
{
    kr_server *srv = arg;
    kr_kafka *k = srv->kafka;
    (void)l;
    (void)salen;
    if (k == NULL || srv->shutting_down) {
        close(fd);
        return;
    }
    if (srv->n_conns >= srv->max_conns) {
        /* Kafka has no answer for a refused connection: a log line. The
         * limit is the Krappy port's, shared (server/fdplan.h). */
        kr_counter_add(srv->m.rejected, 1);
        kr_log(KR_LOG_WARN,
               srv->max_conns < srv->cfg->max_connections
                   ? "Kafka connection refused: the connection limit (--max-connections, "
                     "lowered to fit the open file limit) is reached"
                   : "Kafka connection refused: --max-connections reached",
               KR_LOG_U64("max_connections", srv->max_conns));
        close(fd);
        return;
    }
    if (kconn_new(k, fd, sa) == NULL) {
        kr_log(KR_LOG_ERROR, "cannot set up a Kafka connection",
               KR_LOG_STR("reason", "out of memory"));
        close(fd);
        return;
    }
    kr_counter_add(k->m.accepted, 1);
}

static void register_metrics(kr_kafka *k)
{
    kr_metrics *m = k->srv->metrics;
    kr_kafka_metrics *km = &k->m;
    km->accepted = kr_counter(m, "krappy_kafka_connections_accepted_total", NULL,
                              "Connections accepted on the Kafka port.");
    km->closed_idle = kr_counter(m, "krappy_kafka_connections_closed_idle_total", NULL,
                                 "Kafka connections closed after --idle-timeout.");
    km->closed_stalled = kr_counter(m, "krappy_kafka_connections_closed_stalled_total", NULL,
                                    "Kafka connections closed for leaving responses unread.");
    km->closed_bad =
        kr_counter(m, "krappy_kafka_connections_closed_refused_total", NULL,
                   "Kafka connections closed for a request that cannot be answered (malformed, "
                   "unsupported, before SASL, a refused acks=0 Produce).");
    km->bytes_in = kr_counter(m, "krappy_kafka_received_bytes_total", NULL,
                              "Request bytes received on the Kafka port.");
    km->bytes_out = kr_counter(m, "krappy_kafka_sent_bytes_total", NULL,
                               "Response bytes sent on the Kafka port.");
    km->produced = kr_counter(m, "krappy_kafka_produced_records_total", NULL,
                              "Records stored from Kafka Produce requests.");
    km->fetched = kr_counter(m, "krappy_kafka_fetched_records_total", NULL,
                             "Records sent in Kafka Fetch responses.");
    km->prefetch_used = kr_counter(m, "krappy_kafka_prefetches_total", "result=\"used\"",
                                   "Fetch answers made ahead of their request, by outcome.");
    km->prefetch_dropped = kr_counter(m, "krappy_kafka_prefetches_total", "result=\"dropped\"",
                                      "Fetch answers made ahead of their request, by outcome.");
    char labels[64];
    for (int i = 0; i < KR_KAFKA_NAPIS; i++) {
        snprintf(labels, sizeof labels, "api=\"%s\"", kr_kafka_apis[i].name);
        km->requests[i] = kr_counter(m, "krappy_kafka_requests_total", labels,
                                     "Kafka requests answered, by API.");
        km->latency[i] = kr_histogram(m, "krappy_kafka_request_duration_seconds", labels,
                                      "Time from a Kafka request's arrival to its answer, by API.");
    }
}

/* The advertised address: --kafka-advertise, else the bound one, a wildcard
 * host replaced by this machine's name. */
static int set_advertised(kr_kafka *k)
{
    kr_hostport hp = {0};
    if (k->cfg->kafka_advertise != NULL) {
        if (kr_hostport_parse(k->cfg->kafka_advertise, 0, &hp, NULL, 0) < 0)
            return -1;
    } else {
        if (kr_hostport_parse(k->cfg->kafka_listen, KR_HOSTPORT_PORT_ZERO, &hp, NULL, 0) < 0)
            return -1;
        snprintf(hp.port, sizeof hp.port, "%hu", (unsigned short)k->port);
        if (hp.host[0] == '\0' || strcmp(hp.host, "0.0.0.0") == 0 || strcmp(hp.host, "::") == 0) {
            if (gethostname(hp.host, sizeof hp.host) < 0)
                snprintf(hp.host, sizeof hp.host, "localhost");
            hp.host[sizeof hp.host - 1] = '\0';
        }
    }
    snprintf(k->host, sizeof k->host, "%s", hp.host);
    k->adv_port = atoi(hp.port);
    /* A cluster member tells the others (the leader's is Metadata's). */
    kr_hostport_format(k->srv->kafka_advertise, sizeof k->srv->kafka_advertise, hp.host, hp.port);
    return 0;
}

static int kafka_buffers_init(kr_kafka *k)
{
    size_t cap = (size_t)k->cfg->max_frame;
    /* Produce: events and decompressed records may take more than the
     * request frame (CBOR around each record, codecs); twice is the cap. */
    kr_buf_init(&k->events, 2 * cap);
    kr_buf_init(&k->records, 2 * cap);
    kr_buf_init(&k->scratch, cap);
    kr_buf_init(&k->decode, 2 * cap);
    kr_buf_init(&k->stored, cap);
    kr_buf_init(&k->views, (size_t)k->cfg->max_publish_events * sizeof(kr_store_event));
    kr_buf_init(&k->frame, cap + 4);
    return 0;
}

int kr_kafka_start(kr_server *srv)
{
    kr_kafka *k = calloc(1, sizeof *k);
    if (k == NULL) {
        kr_log(KR_LOG_ERROR, "cannot start the Kafka listener",
               KR_LOG_STR("reason", "out of memory"));
        return -1;
    }
    k->srv = srv;
    k->cfg = srv->cfg;
    TAILQ_INIT(&k->conns);
    kafka_buffers_init(k);
    /* Producer ids of InitProducerId: from the clock, so that ids handed out
     * before a restart are not handed out again after it. */
    k->producer_ids = (kr_wall_ms() << 12) & (INT64_MAX >> 8);
    srv->kafka = k; /* before binding: the accept callback finds it there */
    kr_kresp_pool_open();
    k->groups = kr_kgroups_new();
    if (k->groups == NULL) {
        kr_log(KR_LOG_ERROR, "cannot start the Kafka listener",
               KR_LOG_STR("reason", "out of memory"));
        goto fail;
    }
    register_metrics(k);
    k->listener =
        kr_server_bind(srv, srv->cfg->kafka_listen, on_accept, k->bound, sizeof k->bound, &k->port);
    if (k->listener == NULL || set_advertised(k) < 0)
        goto fail;
    kr_log(KR_LOG_INFO, "listening for Kafka clients", KR_LOG_STR("addr", k->bound),
           KR_LOG_STR("advertised", k->host), KR_LOG_U64("advertised_port", (uint64_t)k->adv_port),
           KR_LOG_STR("auth", srv->cfg->token ? "SASL/PLAIN" : "none"),
           KR_LOG_STR("auto_create", srv->cfg->kafka_auto_create ? "on" : "off"));
    return 0;
fail:
    kr_kafka_free(k);
    srv->kafka = NULL;
    return -1;
}

uint16_t kr_kafka_port(const kr_kafka *k)
{
    return k != NULL ? k->port : 0;
}

void kr_kafka_tick(kr_kafka *k, uint64_t now_ns)
{
    if (k == NULL)
        return;
    kr_kconn *c, *next;
    for (c = TAILQ_FIRST(&k->conns); c != NULL; c = next) {
        next = TAILQ_NEXT(c, link);
        c->net.refs++;
        kconn_tick(c, now_ns);
        kr_kconn_release(c);
    }
    if (!kr_kafka_coordinates(k))
        kr_kgroups_resign(k->groups);
    kr_kgroups_tick(k->groups, now_ns / 1000000);
}

void kr_kafka_shutdown(kr_kafka *k)
{
    if (k == NULL)
        return;
    if (k->listener != NULL) {
        evconnlistener_free(k->listener);
        k->listener = NULL;
    }
    kr_kconn *c, *next;
    for (c = TAILQ_FIRST(&k->conns); c != NULL; c = next) {
        next = TAILQ_NEXT(c, link);
        c->net.refs++;
        cancel_parked(c);
        c->net.no_more = true;
        if (c->net.bev != NULL && c->net.running == 0)
            kconn_begin_flush(c);
        kr_kconn_release(c);
    }
}

void kr_kafka_abort_all(kr_kafka *k, const char *why)
{
    if (k == NULL)
        return;
    kr_kconn *c;
    while ((c = TAILQ_FIRST(&k->conns)) != NULL)
        kconn_abort(c, why);
}

void kr_kafka_accept_resume(kr_kafka *k)
{
    if (k != NULL && k->listener != NULL)
        evconnlistener_enable(k->listener);
}

void kr_kafka_topic_deleted(kr_kafka *k, const kr_topic *t)
{
    if (k == NULL)
        return;
    kr_kconn *c;
    TAILQ_FOREACH(c, &k->conns, link)
    {
        kr_kfetch_topic_deleted(c, t);
        kr_kproduce_topic_deleted(c, t);
    }
}

void kr_kafka_free(kr_kafka *k)
{
    if (k == NULL)
        return;
    kr_kafka_abort_all(k, "server stopped");
    if (k->listener != NULL)
        evconnlistener_free(k->listener);
    kr_kgroups_free(k->groups);
    kr_buf_free(&k->events);
    kr_buf_free(&k->records);
    kr_buf_free(&k->scratch);
    kr_buf_free(&k->decode);
    kr_buf_free(&k->stored);
    kr_buf_free(&k->views);
    kr_buf_free(&k->frame);
    kr_kresp_pool_close();
    free(k);
}
