/*
 * server/budget.c - the memory budget of requests, --max-pending-bytes:
 * every connection's input buffer and what its started requests are
 * charged until they finish (session.c charges a request its frame, and a
 * PUBLISH KR_PUBLISH_EVENT_COST bytes per event more; kafka_listener.c a
 * Produce the same), counted for all connections of both ports together.
 * A connection takes part through the kr_breader it embeds.
 *
 * A frame reserves its whole size, as Kafka's request memory pool does:
 * once a connection has read the header of a frame it may read the rest
 * only when the budget has room for all of it (the frame is admitted), and
 * a connection with no frame begun may read only when there is room for a
 * read chunk. Reservations, not bytes received, fill the budget, so
 * connections that each send part of a frame cannot fill it with frames
 * that wait for each other: at most the budget's worth are admitted, and
 * an admitted frame that stops arriving while others wait is the client's
 * doing (nothing else stops it): its connection is closed after
 * KR_STALL_MS.
 *
 * A connection without room waits. When bytes are released the waiters
 * that fit read again, smallest frame first (a PING is not stuck behind
 * frames of megabytes). So that a large frame is not passed forever, the
 * connection that has waited longest is let through without room once it
 * has waited KR_QUEUE_AGE_MS - one such at a time: the requests of all
 * connections take at most --max-pending-bytes plus one frame. Starting a
 * request already whole in the input is never held back: it moves bytes
 * from the input to the request.
 */
#include "server/server.h"

#include <stdlib.h>

#include <event2/buffer.h>
#include <event2/event.h>

#include "util/byteorder.h"
#include "util/clock.h"
#include "util/log.h"

/* What b itself holds of the pending bytes. */
static uint64_t own(const kr_breader *b)
{
    return b->in_bytes + b->charged(b) + b->reserved;
}

/* Bytes b must find room for before it reads: the rest of its frame, or a
 * chunk to learn the next one. */
static uint64_t need(const kr_breader *b)
{
    size_t rest = b->unfinished(b);
    return rest > 0 ? rest : KR_CONN_READ_CHUNK;
}

/* Room for `n` more bytes: within the budget, or nobody else holds any
 * (a frame larger than the budget is read alone). */
static bool room_for(const kr_server *srv, const kr_breader *b, uint64_t n)
{
    return srv->pending_bytes + n <= srv->cfg->max_pending_bytes || srv->pending_bytes == own(b);
}

/* Make b's reservation `bytes` (the rest of its admitted frame). */
static void reserve(kr_breader *b, uint64_t bytes)
{
    int64_t delta = (int64_t)bytes - (int64_t)b->reserved;
    b->reserved = bytes;
    kr_budget_add(b->srv, delta);
}

static void leave_queue(kr_breader *b)
{
    if (!b->wait)
        return;
    b->wait = false;
    TAILQ_REMOVE(&b->srv->budget_waiters, b, link);
}

/* Let waiter b decide again, past the budget when `past` (kr_budget_may_read
 * knows it from budget_resuming). */
static void let_through(kr_server *srv, kr_breader *b, bool past)
{
    leave_queue(b);
    srv->budget_resuming = b;
    srv->budget_resuming_past = past;
    b->update_read(b);
    srv->budget_resuming = NULL;
    srv->budget_resuming_past = false;
}

/* Bytes were released: let the waiters look again, from the loop rather
 * than from under whoever released them. */
static void resume_soon(kr_server *srv)
{
    if (!TAILQ_EMPTY(&srv->budget_waiters) && srv->budget_resume != NULL)
        event_active(srv->budget_resume, EV_READ, 0);
}

typedef struct waiter {
    kr_breader *b;
    uint64_t need;
} waiter;

static int by_need(const void *a, const void *b)
{
    uint64_t x = ((const waiter *)a)->need, y = ((const waiter *)b)->need;
    return x < y ? -1 : x > y;
}

/* The waiters that fit read again, the smallest frames first. */
static void on_resume(evutil_socket_t fd, short what, void *arg)
{
    kr_server *srv = arg;
    (void)fd;
    (void)what;
    size_t n = 0;
    kr_breader *b;
    TAILQ_FOREACH(b, &srv->budget_waiters, link)
    n++;
    waiter *w = n > 0 ? malloc(n * sizeof *w) : NULL;
    if (w == NULL) { /* in the order they came, then */
        kr_breader *next;
        for (b = TAILQ_FIRST(&srv->budget_waiters); b != NULL; b = next) {
            next = TAILQ_NEXT(b, link);
            if (room_for(srv, b, need(b)))
                let_through(srv, b, false);
        }
        return;
    }
    n = 0;
    TAILQ_FOREACH(b, &srv->budget_waiters, link)
    w[n++] = (waiter){b, need(b)};
    qsort(w, n, sizeof *w, by_need);
    for (size_t i = 0; i < n && room_for(srv, w[i].b, w[i].need); i++)
        let_through(srv, w[i].b, false);
    free(w);
}

int kr_budget_init(kr_server *srv)
{
    TAILQ_INIT(&srv->budget_waiters);
    srv->budget_resume = event_new(srv->base, -1, 0, on_resume, srv);
    return srv->budget_resume != NULL ? 0 : -1;
}

void kr_budget_free(kr_server *srv)
{
    if (srv->budget_resume != NULL)
        event_free(srv->budget_resume);
    srv->budget_resume = NULL;
}

void kr_budget_add(kr_server *srv, int64_t delta)
{
    srv->pending_bytes += (uint64_t)delta; /* wraps back for a negative delta */
    kr_gauge_set(srv->m.pending_bytes, (int64_t)srv->pending_bytes);
    if (delta < 0)
        resume_soon(srv);
}

bool kr_budget_may_read(kr_breader *b)
{
    kr_server *srv = b->srv;
    size_t rest = b->unfinished(b);
    if (b->admitted) {
        if (rest > 0) {
            reserve(b, rest); /* what arrived since replaces its reservation */
            return true;
        }
        b->admitted = false;
        reserve(b, 0);
        if (srv->budget_past == b)
            srv->budget_past = NULL;
    }
    bool resuming = b == srv->budget_resuming;
    if (b->wait && !resuming)
        return false; /* its turn comes in on_resume or kr_budget_tick */
    bool past = resuming && srv->budget_resuming_past;
    if (past || room_for(srv, b, rest > 0 ? rest : KR_CONN_READ_CHUNK)) {
        leave_queue(b);
        if (rest > 0) {
            b->admitted = true;
            b->last_read_ns = kr_mono_ns(); /* a stall counts from now */
            reserve(b, rest);
            if (past)
                srv->budget_past = b;
        }
        return true;
    }
    if (!b->wait) {
        b->wait = true;
        b->since_ns = kr_mono_ns();
        TAILQ_INSERT_TAIL(&srv->budget_waiters, b, link);
        kr_counter_add(srv->m.budget_waits, 1);
    }
    return false;
}

void kr_budget_frame_taken(kr_breader *b)
{
    if (!b->admitted)
        return;
    b->admitted = false;
    reserve(b, 0);
    if (b->srv->budget_past == b)
        b->srv->budget_past = NULL;
}

size_t kr_budget_frame_rest(struct evbuffer *in, uint32_t min, uint32_t max)
{
    size_t have = evbuffer_get_length(in);
    if (have == 0)
        return 0;
    if (have < 4)
        return 4 - have + min; /* its size, and the least a frame holds */
    uint8_t hdr[4];
    evbuffer_copyout(in, hdr, 4);
    uint32_t size = kr_get_be32(hdr);
    if (size < min || size > max)
        return 0; /* refused once read: nothing to reserve */
    return have >= (size_t)size + 4 ? 0 : (size_t)size + 4 - have;
}

void kr_budget_on_input(struct evbuffer *buf, const struct evbuffer_cb_info *info, void *arg)
{
    kr_breader *b = arg;
    (void)buf;
    int64_t delta = (int64_t)info->n_added - (int64_t)info->n_deleted;
    if (info->n_added > 0)
        b->last_read_ns = kr_mono_ns();
    b->in_bytes += (uint64_t)delta;
    kr_budget_add(b->srv, delta);
}

void kr_budget_conn_gone(kr_breader *b)
{
    kr_budget_add(b->srv, -(int64_t)b->in_bytes);
    b->in_bytes = 0;
    leave_queue(b);
    b->admitted = false;
    reserve(b, 0);
    if (b->srv->budget_past == b)
        b->srv->budget_past = NULL;
}

void kr_budget_tick(kr_server *srv, uint64_t now_ns)
{
    kr_breader *oldest = TAILQ_FIRST(&srv->budget_waiters);
    if (oldest != NULL && srv->budget_past == NULL &&
        now_ns - oldest->since_ns >= (uint64_t)KR_QUEUE_AGE_MS * 1000000)
        let_through(srv, oldest, true);
}

bool kr_budget_stalled(const kr_breader *b, bool read_paused, uint64_t now_ns)
{
    /* now_ns may be older than an admission made since (a Kafka connection
     * is looked at after kr_budget_tick let it through). */
    return b->admitted && !read_paused && !TAILQ_EMPTY(&b->srv->budget_waiters) &&
           now_ns > b->last_read_ns && now_ns - b->last_read_ns > (uint64_t)KR_STALL_MS * 1000000 &&
           b->unfinished(b) > 0;
}
