/*
 * cluster/replica.c - the store's commands applied on every node (see
 * replica.h): the hand-off from the raft thread, completion in log order,
 * the results its waiters are answered with, and the replica's life. The
 * commands are applied in replica_apply.c, snapshots taken and restored in
 * replica_snapshot.c.
 */
#include "cluster/replica.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cluster/catchup.h"
#include "cluster/fsm.h"
#include "cluster/replica_int.h"
#include "cluster/trace.h"
#include "util/log.h"

/* ---- results and waiters (loop) ---- */

/* Call w's callback (w stays). */
static void deliver(const waiter *w, const kr_store_result *res, const kr_store_result *subs,
                    size_t n)
{
    if (w->batch_done != NULL)
        w->batch_done(w->arg, res, res->err == KRAPPY_OK ? subs : NULL,
                      res->err == KRAPPY_OK ? n : 0);
    else
        w->done(w->arg, res);
}

static void answer(waiter *w, const kr_store_result *res, const kr_store_result *subs, size_t n)
{
    deliver(w, res, subs, n);
    free(w);
}

/* The result at `index` is known: keep it (and a BATCH's subs, taken) and
 * answer who waits for it. */
static void post(kr_replica *rp, uint64_t index, const kr_store_result *res, kr_store_result *subs,
                 uint32_t n)
{
    slot *s = &rp->slots[index % KR_REPLICA_RESULTS];
    free(s->subs);
    s->index = index;
    s->known = true;
    s->res = *res;
    s->subs = subs;
    s->n_subs = n;
    waiter **pp = &s->waiting;
    while (*pp != NULL) {
        waiter *w = *pp;
        if (w->index == index) {
            *pp = w->next;
            answer(w, res, subs, n);
        } else {
            pp = &w->next;
        }
    }
}

/* What a halted node answers for a committed write it did not apply: the
 * other nodes apply it, so its outcome is unknown here - NOT_LEADER, as
 * across a leader change (PROTOCOL.md section 8), never STORAGE's "nothing
 * was stored". */
static void unknown_outcome(kr_store_result *res, const char *why)
{
    *res = (kr_store_result){.err = KRAPPY_E_NOT_LEADER, .first = UINT64_MAX};
    snprintf(res->msg, sizeof res->msg,
             "this node could not apply a committed write (%.70s) and hands the lead over; its "
             "outcome is unknown (an idempotent producer sends it again to the new leader with "
             "the same seq)",
             why);
}

/* The replica halted: who waits for a result it will never post gets
 * unknown_outcome. */
static void answer_waiters_unknown(kr_replica *rp, const char *why)
{
    kr_store_result res;
    unknown_outcome(&res, why);
    for (size_t i = 0; i < KR_REPLICA_RESULTS; i++)
        while (rp->slots[i].waiting != NULL) {
            waiter *w = rp->slots[i].waiting;
            rp->slots[i].waiting = w->next;
            answer(w, &res, NULL, 0);
        }
}

static void wait_for(kr_replica *rp, uint64_t index, const waiter *how)
{
    slot *s = &rp->slots[index % KR_REPLICA_RESULTS];
    if (s->known && s->index == index) {
        deliver(how, &s->res, s->subs, s->n_subs);
        return;
    }
    kr_store_result res = {.err = KRAPPY_E_STORAGE};
    if (rp->halted) {
        unknown_outcome(&res, "it stopped applying the raft log before this write");
        deliver(how, &res, NULL, 0);
        return;
    }
    if (index + KR_REPLICA_RESULTS <= rp->stored) {
        snprintf(res.msg, sizeof res.msg,
                 "the result of raft entry %llu was forgotten before it was asked for (more "
                 "than %u entries applied since); its outcome is unknown",
                 (unsigned long long)index, (unsigned)KR_REPLICA_RESULTS);
        deliver(how, &res, NULL, 0);
        return;
    }
    waiter *w = malloc(sizeof *w);
    if (w == NULL) {
        snprintf(res.msg, sizeof res.msg, "out of memory waiting for raft entry %llu",
                 (unsigned long long)index);
        deliver(how, &res, NULL, 0);
        return;
    }
    *w = *how;
    w->next = s->waiting;
    s->waiting = w;
}

void kr_replica_wait(kr_replica *rp, uint64_t index, kr_replica_done done, void *arg)
{
    waiter how = {.index = index, .done = done, .arg = arg};
    wait_for(rp, index, &how);
}

void kr_replica_wait_batch(kr_replica *rp, uint64_t index, kr_replica_batch_done done, void *arg)
{
    waiter how = {.index = index, .batch_done = done, .arg = arg};
    wait_for(rp, index, &how);
}

/* ---- completion (loop) ---- */

/* What a completed entry stored, for the trace (trace.h). */
static void trace_events(const item *it)
{
    uint64_t count = it->res.count, first = it->res.first;
    for (uint32_t i = 0; i < it->n_subs; i++) {
        if (i == 0)
            first = it->subs[i].first;
        count += it->subs[i].count;
    }
    kr_trace_events(it->index, first, count);
}

/* Completed items leave the front in log order: `stored` moves, their
 * results are posted. */
static void advance(kr_replica *rp)
{
    item *it;
    bool moved = false;
    while ((it = rp->fly_head) != NULL && it->completed) {
        rp->fly_head = it->next;
        if (rp->fly_head == NULL)
            rp->fly_tail = NULL;
        rp->stored = it->index;
        moved = true;
        if (kr_trace_on())
            trace_events(it);
        kr_trace_mark(KR_TRACE_APPLIED, it->index);
        post(rp, it->index, &it->res, it->subs, it->n_subs);
        free(it);
    }
    if (moved) {
        pthread_mutex_lock(&rp->mu);
        rp->stored_shared = rp->stored;
        pthread_cond_broadcast(&rp->cond);
        pthread_mutex_unlock(&rp->mu);
        kr_replica_serve_snapshot(rp);
    }
}

void kr_replica_complete(item *it, const kr_store_result *res)
{
    kr_replica *rp = it->rp;
    kr_store_result unknown;
    if (res->err == KRAPPY_E_STORAGE) {
        kr_replica_halt_because(rp,
                                "the store failed a command of the raft log; this node applies "
                                "no more until it is restarted",
                                it->index, it->sub, res->msg);
        unknown_outcome(&unknown, res->msg);
        res = &unknown;
    }
    item *batch = it->parent;
    if (batch != NULL) {
        batch->subs[it->sub - 1] = *res;
        free(it);
        if (--batch->jobs == 0)
            kr_replica_complete(batch, &batch->res);
        return;
    }
    it->res = *res;
    it->completed = true;
    advance(rp);
}

void kr_replica_halt_because(kr_replica *rp, const char *what, uint64_t index, uint32_t sub,
                             const char *why)
{
    if (rp->halted)
        return;
    kr_replica_mark_halted(rp);
    kr_log(KR_LOG_ERROR, what, KR_LOG_U64("index", index), KR_LOG_U64("sub", sub),
           KR_LOG_STR("reason", why));
    answer_waiters_unknown(rp, "it stopped applying the raft log");
}

/* Apply what waits, in order, unless a catch-up runs. */
void kr_replica_pump(kr_replica *rp)
{
    item *it;
    while (!rp->halted && rp->catching == NULL && (it = rp->wait_head) != NULL) {
        rp->wait_head = it->next;
        if (rp->wait_head == NULL)
            rp->wait_tail = NULL;
        it->next = NULL;
        if (it->index == 0) {
            (void)kr_replica_catch_up(rp, it);
            free(it);
            continue;
        }
        /* In flight first: a completion at once advances over it. */
        if (rp->fly_tail != NULL)
            rp->fly_tail->next = it;
        else
            rp->fly_head = it;
        rp->fly_tail = it;
        kr_replica_apply(rp, it);
    }
    kr_replica_serve_snapshot(rp);
}

static void on_pushed(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    kr_replica *rp = arg;
    pthread_mutex_lock(&rp->mu);
    item *list = rp->in_head, *last = rp->in_tail;
    rp->in_head = rp->in_tail = NULL;
    pthread_mutex_unlock(&rp->mu);
    for (item *it = list; it != NULL && kr_trace_on(); it = it->next)
        kr_trace_mark(KR_TRACE_TAKEN, it->index);
    if (list != NULL) {
        if (rp->wait_tail != NULL)
            rp->wait_tail->next = list;
        else
            rp->wait_head = list;
        rp->wait_tail = last;
    }
    kr_replica_pump(rp);
}

/* ---- the raft thread's side ---- */

int kr_replica_push(kr_replica *rp, uint64_t index, const void *data, size_t len)
{
    item *it = malloc(sizeof *it + len);
    if (it == NULL)
        return -1;
    *it = (item){.index = index, .rp = rp, .len = len};
    memcpy(it->data, data, len);
    pthread_mutex_lock(&rp->mu);
    if (rp->halted_shared) {
        /* Never applied: raft's log keeps it for the restart's replay (the
         * replica takes no snapshot once halted), so holding a copy here
         * would only grow the memory of a node that waits to restart. */
        if (index > 0)
            rp->pushed = index;
        pthread_mutex_unlock(&rp->mu);
        free(it);
        return 0;
    }
    if (rp->in_tail != NULL)
        rp->in_tail->next = it;
    else
        rp->in_head = it;
    rp->in_tail = it;
    if (index > 0)
        rp->pushed = index;
    pthread_mutex_unlock(&rp->mu);
    event_active(rp->ev, EV_READ, 0);
    return 0;
}

void kr_replica_mark_halted(kr_replica *rp)
{
    rp->halted = true;
    pthread_mutex_lock(&rp->mu);
    rp->halted_shared = true;
    pthread_cond_broadcast(&rp->cond); /* a snapshot waiting gives up */
    pthread_mutex_unlock(&rp->mu);
}

void kr_replica_halt(kr_replica *rp)
{
    if (rp == NULL)
        return;
    kr_replica_mark_halted(rp);
    kr_catchup_stop(rp->catching);
    rp->catching = NULL;
}

/* ---- life ---- */

kr_replica *kr_replica_new(const kr_replica_opts *o)
{
    kr_replica *rp = calloc(1, sizeof *rp);
    if (rp == NULL)
        return NULL;
    rp->store = o->store;
    rp->base = o->base;
    rp->nodes = o->nodes;
    rp->nodes_arg = o->nodes_arg;
    rp->forget = o->forget;
    rp->forget_arg = o->forget_arg;
    rp->token = o->token != NULL ? strdup(o->token) : NULL;
    kr_buf_init(&rp->snap, KR_ENTRY_MAX_BYTES);
    pthread_mutex_init(&rp->mu, NULL);
    pthread_cond_init(&rp->cond, NULL);
    kr_buf_init(&rp->scratch, KR_ENTRY_MAX_BYTES);
    rp->slots = calloc(KR_REPLICA_RESULTS, sizeof *rp->slots);
    rp->ev = event_new(o->base, -1, 0, on_pushed, rp);
    if (rp->slots == NULL || rp->ev == NULL || (o->token != NULL && rp->token == NULL)) {
        kr_replica_free(rp);
        return NULL;
    }
    return rp;
}

void kr_replica_free(kr_replica *rp)
{
    if (rp == NULL)
        return;
    kr_store_result gone = {.err = KRAPPY_E_SHUTTING_DOWN};
    snprintf(gone.msg, sizeof gone.msg,
             "the server is shutting down; the write's outcome is unknown (a producer sends it "
             "again with the same seq)");
    for (size_t i = 0; rp->slots != NULL && i < KR_REPLICA_RESULTS; i++)
        while (rp->slots[i].waiting != NULL) {
            waiter *w = rp->slots[i].waiting;
            rp->slots[i].waiting = w->next;
            answer(w, &gone, NULL, 0);
        }
    for (item *it = rp->in_head, *n; it != NULL; it = n) {
        n = it->next;
        free(it);
    }
    for (item *it = rp->fly_head, *n; it != NULL; it = n) {
        n = it->next;
        free(it->subs);
        free(it);
    }
    for (item *it = rp->wait_head, *n; it != NULL; it = n) {
        n = it->next;
        free(it);
    }
    kr_catchup_stop(rp->catching);
    free(rp->token);
    kr_buf_free(&rp->snap);
    if (rp->ev != NULL)
        event_free(rp->ev);
    for (size_t i = 0; rp->slots != NULL && i < KR_REPLICA_RESULTS; i++)
        free(rp->slots[i].subs);
    free(rp->slots);
    kr_buf_free(&rp->scratch);
    pthread_cond_destroy(&rp->cond);
    pthread_mutex_destroy(&rp->mu);
    free(rp);
}

bool kr_replica_ready(kr_replica *rp, char *why, size_t whylen)
{
    if (rp->halted)
        snprintf(why, whylen, "cluster: %s", KR_REPLICA_HALTED_WHY);
    else if (rp->catching != NULL)
        snprintf(why, whylen, "cluster: fetching the events a snapshot covers from the leader");
    else if (rp->catch_writes > 0)
        snprintf(why, whylen, "cluster: storing the events fetched from the leader");
    return !rp->halted && rp->catching == NULL && rp->catch_writes == 0;
}

bool kr_replica_halted(const kr_replica *rp)
{
    return rp->halted;
}

bool kr_replica_view_full(const kr_replica *rp, char *why, size_t whylen)
{
    return kr_store_view_full(rp->store, why, whylen);
}

bool kr_replica_halt_on_view_overflow(kr_replica *rp)
{
    char why[256];
    if (rp->halted || !kr_store_view_overflow(rp->store, why, sizeof why))
        return false;
    kr_replica_halt_because(rp,
                            "the latest-value view cannot checkpoint and holds too much in "
                            "memory; this node applies no more until it is restarted",
                            rp->stored, 0, why);
    return true;
}

uint64_t kr_replica_stored(kr_replica *rp)
{
    return rp->stored;
}

uint64_t kr_replica_skipped(kr_replica *rp)
{
    return rp->skipped;
}
