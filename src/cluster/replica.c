/*
 * cluster/replica.c - the store's commands applied on every node (see
 * replica.h).
 */
#include "cluster/replica.h"

#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cluster/cmd.h"
#include "cluster/fsm.h"
#include "util/log.h"

/* A committed store command, from the raft thread's push until the store
 * completed it. */
typedef struct item {
    uint64_t index;
    bool completed;
    kr_store_result res;
    struct item *next;
    kr_replica *rp;
    size_t len;
    uint8_t data[];
} item;

/* A request waiting for the result at `index`. */
typedef struct waiter {
    uint64_t index;
    kr_replica_done done;
    void *arg;
    struct waiter *next;
} waiter;

/* What the loop keeps of the result at an index (slot index % N). */
typedef struct slot {
    uint64_t index; /* 0: empty */
    bool known;
    kr_store_result res;
    waiter *waiting; /* for this slot's indexes, any of them */
} slot;

struct kr_replica {
    kr_store *store;
    struct event *ev;

    /* Shared with the raft thread, under mu. */
    pthread_mutex_t mu;
    pthread_cond_t cond;
    item *in_head, *in_tail; /* pushed, not yet taken by the loop */
    uint64_t pushed;         /* highest index pushed */
    uint64_t stored_shared;  /* highest index below which all completed */

    /* The loop's. */
    item *fly_head, *fly_tail; /* applied, in log order, until completed */
    uint64_t stored;
    uint64_t skipped;
    kr_buf scratch;
    slot *slots;
};

/* ---- results and waiters (loop) ---- */

static void answer(waiter *w, const kr_store_result *res)
{
    w->done(w->arg, res);
    free(w);
}

/* The result at `index` is known: keep it and answer who waits for it. */
static void post(kr_replica *rp, uint64_t index, const kr_store_result *res)
{
    slot *s = &rp->slots[index % KR_REPLICA_RESULTS];
    s->index = index;
    s->known = true;
    s->res = *res;
    waiter **pp = &s->waiting;
    while (*pp != NULL) {
        waiter *w = *pp;
        if (w->index == index) {
            *pp = w->next;
            answer(w, res);
        } else {
            pp = &w->next;
        }
    }
}

void kr_replica_wait(kr_replica *rp, uint64_t index, kr_replica_done done, void *arg)
{
    slot *s = &rp->slots[index % KR_REPLICA_RESULTS];
    if (s->known && s->index == index) {
        done(arg, &s->res);
        return;
    }
    if (index + KR_REPLICA_RESULTS <= rp->stored) {
        kr_store_result res = {.err = KRAPPY_E_STORAGE};
        snprintf(res.msg, sizeof res.msg,
                 "the result of raft entry %llu was forgotten before it was asked for (more "
                 "than %u entries applied since); its outcome is unknown",
                 (unsigned long long)index, KR_REPLICA_RESULTS);
        done(arg, &res);
        return;
    }
    waiter *w = malloc(sizeof *w);
    if (w == NULL) {
        kr_store_result res = {.err = KRAPPY_E_STORAGE};
        snprintf(res.msg, sizeof res.msg, "out of memory waiting for raft entry %llu",
                 (unsigned long long)index);
        done(arg, &res);
        return;
    }
    *w = (waiter){.index = index, .done = done, .arg = arg, .next = s->waiting};
    s->waiting = w;
}

/* ---- completion (loop) ---- */

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
        post(rp, it->index, &it->res);
        free(it);
    }
    if (moved) {
        pthread_mutex_lock(&rp->mu);
        rp->stored_shared = rp->stored;
        pthread_cond_broadcast(&rp->cond);
        pthread_mutex_unlock(&rp->mu);
    }
}

static void complete(item *it, const kr_store_result *res)
{
    it->res = *res;
    it->completed = true;
    advance(it->rp);
}

static void stored_cb(void *arg, const kr_store_result *res)
{
    complete(arg, res);
}

/* A topic made by a PUBLISH that found none: its creation's result is the
 * PUBLISH's (queued behind it). */
static void created_quietly(void *arg, const kr_store_result *res)
{
    (void)arg;
    if (res->err != KRAPPY_OK)
        kr_log(KR_LOG_ERROR, "topic creation for a replicated PUBLISH failed",
               KR_LOG_STR("reason", res->msg));
}

/* ---- apply (loop) ---- */

static kr_topic *find_or_create(kr_replica *rp, const kr_str *name, kr_store_result *res)
{
    kr_topic *t = kr_store_topic(rp->store, name->ptr, name->len);
    if (t != NULL)
        return t;
    if (kr_store_register(rp->store, name->ptr, name->len, &t, created_quietly, NULL, res) < 0)
        return NULL;
    return t;
}

static void apply_publish(kr_replica *rp, item *it, const kr_cmd *cmd)
{
    kr_store_result res = {.err = KRAPPY_OK};
    kr_topic *t = find_or_create(rp, &cmd->topic, &res);
    if (t == NULL) {
        complete(it, &res);
        return;
    }
    kr_request req;
    char msg[256];
    krappy_err rc = kr_req_decode(KRAPPY_T_PUBLISH, cmd->payload.ptr, cmd->payload.len,
                                  &rp->scratch, &req, msg, sizeof msg);
    if (rc == KRAPPY_OK && it->index <= t->raft_index) {
        /* Held already: a restart replays what its stream has. */
        rp->skipped++;
        res.count = req.u.publish.count;
        complete(it, &res);
        return;
    }
    uint64_t bad = UINT64_MAX;
    kr_idem idem = {.id = cmd->producer.ptr,
                    .id_len = cmd->producer.len,
                    .epoch = (uint32_t)cmd->epoch,
                    .seq = req.u.publish.seq};
    if (rc == KRAPPY_OK)
        rc = kr_store_publish_applied(rp->store, t, &req, &rp->scratch,
                                      cmd->has_producer ? &idem : NULL, cmd->value, it->index,
                                      stored_cb, it, msg, sizeof msg, &bad);
    if (rc != KRAPPY_OK) {
        /* Every node refuses it alike (the same request, the same state). */
        res.err = rc;
        res.seq = idem.expected;
        res.first = bad;
        snprintf(res.msg, sizeof res.msg, "%s", msg);
        complete(it, &res);
    }
}

static void apply_one(kr_replica *rp, item *it)
{
    kr_cmd cmd;
    char err[256];
    kr_store_result res = {.err = KRAPPY_OK};
    if (kr_cmd_decode(it->data, it->len, &cmd, err, sizeof err) < 0) {
        res.err = KRAPPY_E_STORAGE; /* the raft thread decoded it: cannot happen */
        snprintf(res.msg, sizeof res.msg, "%s", err);
        complete(it, &res);
        return;
    }
    switch (cmd.type) {
    case KR_CMD_TOPIC_CREATE: {
        kr_topic *t;
        if (kr_store_register(rp->store, cmd.topic.ptr, cmd.topic.len, &t, stored_cb, it, &res) < 0)
            complete(it, &res);
        return;
    }
    case KR_CMD_PUBLISH:
        apply_publish(rp, it, &cmd);
        return;
    default:
        res.err = KRAPPY_E_INVALID_ARGUMENT;
        snprintf(res.msg, sizeof res.msg, "%s is not replicated by this krappyd yet",
                 kr_cmd_name(cmd.type));
        complete(it, &res);
        return;
    }
}

static void on_pushed(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    kr_replica *rp = arg;
    pthread_mutex_lock(&rp->mu);
    item *list = rp->in_head;
    rp->in_head = rp->in_tail = NULL;
    pthread_mutex_unlock(&rp->mu);
    while (list != NULL) {
        item *it = list;
        list = it->next;
        it->next = NULL;
        /* In flight first: a completion at once advances over it. */
        if (rp->fly_tail != NULL)
            rp->fly_tail->next = it;
        else
            rp->fly_head = it;
        rp->fly_tail = it;
        apply_one(rp, it);
    }
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
    if (rp->in_tail != NULL)
        rp->in_tail->next = it;
    else
        rp->in_head = it;
    rp->in_tail = it;
    rp->pushed = index;
    pthread_mutex_unlock(&rp->mu);
    event_active(rp->ev, EV_READ, 0);
    return 0;
}

bool kr_replica_wait_stored(kr_replica *rp, unsigned ms)
{
    struct timespec until;
    clock_gettime(CLOCK_REALTIME, &until);
    until.tv_sec += ms / 1000;
    until.tv_nsec += (long)(ms % 1000) * 1000000L;
    if (until.tv_nsec >= 1000000000L) {
        until.tv_sec++;
        until.tv_nsec -= 1000000000L;
    }
    pthread_mutex_lock(&rp->mu);
    int rc = 0;
    while (rp->stored_shared < rp->pushed && rc != ETIMEDOUT)
        rc = pthread_cond_timedwait(&rp->cond, &rp->mu, &until);
    bool ok = rp->stored_shared >= rp->pushed;
    pthread_mutex_unlock(&rp->mu);
    return ok;
}

/* ---- life ---- */

kr_replica *kr_replica_new(kr_store *store, struct event_base *base)
{
    kr_replica *rp = calloc(1, sizeof *rp);
    if (rp == NULL)
        return NULL;
    rp->store = store;
    pthread_mutex_init(&rp->mu, NULL);
    pthread_cond_init(&rp->cond, NULL);
    kr_buf_init(&rp->scratch, KR_ENTRY_MAX_BYTES);
    rp->slots = calloc(KR_REPLICA_RESULTS, sizeof *rp->slots);
    rp->ev = event_new(base, -1, 0, on_pushed, rp);
    if (rp->slots == NULL || rp->ev == NULL) {
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
            answer(w, &gone);
        }
    for (item *it = rp->in_head, *n; it != NULL; it = n) {
        n = it->next;
        free(it);
    }
    for (item *it = rp->fly_head, *n; it != NULL; it = n) {
        n = it->next;
        free(it);
    }
    if (rp->ev != NULL)
        event_free(rp->ev);
    free(rp->slots);
    kr_buf_free(&rp->scratch);
    pthread_cond_destroy(&rp->cond);
    pthread_mutex_destroy(&rp->mu);
    free(rp);
}

uint64_t kr_replica_stored(kr_replica *rp)
{
    return rp->stored;
}

uint64_t kr_replica_skipped(kr_replica *rp)
{
    return rp->skipped;
}
