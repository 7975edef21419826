/*
 * server/budget.c - the memory budget of requests, --max-pending-bytes:
 * every connection's input buffer and what its started requests are
 * charged until they finish (session.c charges a request its frame, and a
 * PUBLISH KR_PUBLISH_EVENT_COST bytes per event more), counted for all
 * connections together.
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

#include <event2/event.h>

#include "util/clock.h"
#include "util/log.h"

/* What c itself holds of the pending bytes. */
static uint64_t own(const kr_conn *c)
{
    return c->in_bytes + c->charged_bytes + c->reserved;
}

/* Bytes c must find room for before it reads: the rest of its frame, or a
 * chunk to learn the next one. */
static uint64_t need(const kr_conn *c)
{
    size_t rest = kr_conn_unfinished(c);
    return rest > 0 ? rest : KR_CONN_READ_CHUNK;
}

/* Room for `n` more bytes: within the budget, or nobody else holds any
 * (a frame larger than the budget is read alone). */
static bool room_for(const kr_server *srv, const kr_conn *c, uint64_t n)
{
    return srv->pending_bytes + n <= srv->cfg->max_pending_bytes || srv->pending_bytes == own(c);
}

/* Make c's reservation `bytes` (the rest of its admitted frame). */
static void reserve(kr_conn *c, uint64_t bytes)
{
    int64_t delta = (int64_t)bytes - (int64_t)c->reserved;
    c->reserved = bytes;
    kr_budget_add(c->srv, delta);
}

static void leave_queue(kr_conn *c)
{
    if (!c->budget_wait)
        return;
    c->budget_wait = false;
    TAILQ_REMOVE(&c->srv->budget_waiters, c, budget_link);
}

/* Let waiter c decide again, past the budget when `past` (kr_budget_may_read
 * knows it from budget_resuming). */
static void let_through(kr_server *srv, kr_conn *c, bool past)
{
    leave_queue(c);
    srv->budget_resuming = c;
    srv->budget_resuming_past = past;
    kr_conn_update_read(c);
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
    kr_conn *c;
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
    kr_conn *c;
    TAILQ_FOREACH(c, &srv->budget_waiters, budget_link)
    n++;
    waiter *w = n > 0 ? malloc(n * sizeof *w) : NULL;
    if (w == NULL) { /* in the order they came, then */
        kr_conn *next;
        for (c = TAILQ_FIRST(&srv->budget_waiters); c != NULL; c = next) {
            next = TAILQ_NEXT(c, budget_link);
            if (room_for(srv, c, need(c)))
                let_through(srv, c, false);
        }
        return;
    }
    n = 0;
    TAILQ_FOREACH(c, &srv->budget_waiters, budget_link)
    w[n++] = (waiter){c, need(c)};
    qsort(w, n, sizeof *w, by_need);
    for (size_t i = 0; i < n && room_for(srv, w[i].c, w[i].need); i++)
        let_through(srv, w[i].c, false);
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

bool kr_budget_may_read(kr_conn *c)
{
    kr_server *srv = c->srv;
    size_t rest = kr_conn_unfinished(c);
    if (c->admitted) {
        if (rest > 0) {
            reserve(c, rest); /* what arrived since replaces its reservation */
            return true;
        }
        c->admitted = false;
        reserve(c, 0);
        if (srv->budget_past == c)
            srv->budget_past = NULL;
    }
    bool resuming = c == srv->budget_resuming;
    if (c->budget_wait && !resuming)
        return false; /* its turn comes in on_resume or kr_budget_tick */
    bool past = resuming && srv->budget_resuming_past;
    if (past || room_for(srv, c, rest > 0 ? rest : KR_CONN_READ_CHUNK)) {
        leave_queue(c);
        if (rest > 0) {
            c->admitted = true;
            c->last_read_ns = kr_mono_ns(); /* a stall counts from now */
            reserve(c, rest);
            if (past)
                srv->budget_past = c;
        }
        return true;
    }
    if (!c->budget_wait) {
        c->budget_wait = true;
        c->budget_since_ns = kr_mono_ns();
        TAILQ_INSERT_TAIL(&srv->budget_waiters, c, budget_link);
        kr_counter_add(srv->m.budget_waits, 1);
    }
    return false;
}

void kr_budget_conn_gone(kr_conn *c)
{
    leave_queue(c);
    c->admitted = false;
    reserve(c, 0);
    if (c->srv->budget_past == c)
        c->srv->budget_past = NULL;
}

void kr_budget_tick(kr_server *srv, uint64_t now_ns)
{
    kr_conn *oldest = TAILQ_FIRST(&srv->budget_waiters);
    if (oldest != NULL && srv->budget_past == NULL &&
        now_ns - oldest->budget_since_ns >= (uint64_t)KR_QUEUE_AGE_MS * 1000000)
        let_through(srv, oldest, true);
}

bool kr_budget_stalled(const kr_conn *c, uint64_t now_ns)
{
    return c->admitted && !c->read_paused && !TAILQ_EMPTY(&c->srv->budget_waiters) &&
           now_ns - c->last_read_ns > (uint64_t)KR_STALL_MS * 1000000 && kr_conn_unfinished(c) > 0;
}
