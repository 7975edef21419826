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

#include "cluster/catchup.h"
#include "cluster/cmd.h"
#include "cluster/fsm.h"
#include "store/topic_config.h"
#include "util/log.h"

#define SNAPSHOT_POLL_MS 2 /* the loop's look at the syncs a snapshot waits for */

/* A committed store command, from the raft thread's push until the store
 * completed it. */
typedef struct item {
    uint64_t index; /* 0: a catch-up to the snapshot in data (kr_replica_restore) */
    bool completed;
    uint32_t jobs; /* GROUP_CURSORS: its store jobs still running */
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
    struct event_base *base;
    struct event *ev;
    char *token;
    kr_replica_nodes_fn nodes;
    void *nodes_arg;
    kr_replica_forget_fn forget;
    void *forget_arg;

    /* Shared with the raft thread, under mu. */
    pthread_mutex_t mu;
    pthread_cond_t cond;
    item *in_head, *in_tail; /* pushed, not yet taken by the loop */
    uint64_t pushed;         /* highest index pushed */
    uint64_t stored_shared;  /* highest index below which all completed */
    bool snap_asked;         /* the raft thread waits for the store's part */
    bool snap_ready;
    kr_buf snap; /* [index, [topic...]] as of `pushed` (put_topic) */

    /* The loop's. */
    item *wait_head, *wait_tail; /* taken from the raft thread, not yet applied */
    kr_catchup *catching;        /* a catch-up runs: nothing is applied meanwhile */
    uint64_t catch_index;        /* the index its batches record */
    bool halted;
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
                 (unsigned long long)index, (unsigned)KR_REPLICA_RESULTS);
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

/* ---- snapshots (loop side) ---- */

static int count_one(void *arg, const kr_prod_state *st)
{
    (void)st;
    (*(size_t *)arg)++;
    return 0;
}

/* [id, epoch, next_seq, [[seq, first, count, synced]...]] */
static int put_producer(void *arg, const kr_prod_state *st)
{
    kr_buf *b = arg;
    kr_cbor_put_array(b, 4);
    kr_cbor_put_bytes(b, st->id, st->id_len);
    kr_cbor_put_uint(b, st->epoch);
    kr_cbor_put_uint(b, st->next_seq);
    kr_cbor_put_array(b, st->n);
    for (size_t i = 0; i < st->n; i++) {
        kr_cbor_put_array(b, 4);
        kr_cbor_put_uint(b, st->win[i].seq);
        kr_cbor_put_uint(b, st->win[i].first);
        kr_cbor_put_uint(b, st->win[i].count);
        kr_cbor_put_uint(b, st->win[i].synced);
    }
    return 0;
}

/* [topic, next, [producer...], [[group, cursor]...], settings]: each
 * group at the cursor the log gave it (on the leader its own may be
 * ahead); settings: the ones the topic sets itself (TOPIC_CONFIG's map). */
static void put_topic(kr_buf *b, kr_topic *t)
{
    size_t n = 0;
    kr_store_producers_each(t, count_one, &n);
    kr_cbor_put_array(b, 5);
    kr_cbor_put_text(b, t->name, t->name_len);
    kr_cbor_put_uint(b, t->next);
    kr_cbor_put_array(b, n);
    kr_store_producers_each(t, put_producer, b);
    kr_tgroup *const *gs;
    size_t ng = kr_store_groups(t, &gs);
    kr_cbor_put_array(b, ng);
    for (size_t i = 0; i < ng; i++) {
        size_t len;
        const char *name = kr_store_group_name(gs[i], &len);
        kr_cbor_put_array(b, 2);
        kr_cbor_put_bytes(b, name, len);
        kr_cbor_put_uint(b, gs[i]->logged);
    }
    kr_tc_encode(b, &t->own);
}

/*
 * Whether every topic's stream is durable as far as it is visible, asking
 * for the syncs that are missing. An applied PUBLISH is not synced on its
 * own (the raft log is the durable copy), and a snapshot lets raft drop
 * the entries it covers: taken over unsynced batches, a power cut of
 * every node would lose them (each restarts behind its snapshot, and no
 * leader has them to fetch).
 */
static bool streams_durable(kr_replica *rp)
{
    kr_topic **all;
    size_t n = kr_store_topics(rp->store, &all);
    bool durable = true;
    for (size_t i = 0; i < n; i++) {
        if (kr_store_synced(all[i]) < all[i]->next) {
            kr_store_sync(rp->store, all[i]);
            durable = false;
        }
    }
    return durable;
}

/* The raft thread asked for the store's part of a snapshot: give it once
 * the store holds every command pushed, durably (and no catch-up runs). */
static void serve_snapshot(kr_replica *rp)
{
    pthread_mutex_lock(&rp->mu);
    bool ready = rp->snap_asked && !rp->snap_ready && rp->in_head == NULL &&
                 rp->wait_head == NULL && rp->fly_head == NULL && rp->catching == NULL &&
                 rp->stored_shared >= rp->pushed && streams_durable(rp);
    if (ready) {
        kr_topic **all;
        size_t n = kr_store_topics(rp->store, &all);
        kr_buf_reset(&rp->snap);
        kr_cbor_put_array(&rp->snap, 2);
        kr_cbor_put_uint(&rp->snap, rp->pushed);
        kr_cbor_put_array(&rp->snap, n);
        for (size_t i = 0; i < n; i++)
            put_topic(&rp->snap, all[i]);
        rp->snap_ready = true;
        pthread_cond_broadcast(&rp->cond);
    }
    pthread_mutex_unlock(&rp->mu);
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
        serve_snapshot(rp);
    }
}

static void complete(item *it, const kr_store_result *res)
{
    kr_replica *rp = it->rp;
    it->res = *res;
    it->completed = true;
    /* The store could not do what every other node did (a disk, memory):
     * applying more would shift this node's offsets. Stop here; a restart
     * applies the log again from what the streams hold. */
    if (res->err == KRAPPY_E_STORAGE && !rp->halted) {
        rp->halted = true;
        kr_log(KR_LOG_ERROR,
               "the store failed a command of the raft log; this node applies no "
               "more until it is restarted",
               KR_LOG_U64("index", it->index), KR_LOG_STR("reason", res->msg));
    }
    advance(rp);
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

/* An idempotent registration: a new epoch, unless the producer has the
 * command's already (a restart's replay, or a registration racing another
 * of the same id: both then hold that epoch). No connection holds it here:
 * the leader's connection learns its epoch from the result. */
static void apply_register(kr_replica *rp, item *it, const kr_cmd *cmd)
{
    kr_store_result res = {.err = KRAPPY_OK};
    kr_topic *t = kr_store_topic(rp->store, cmd->topic.ptr, cmd->topic.len);
    uint32_t epoch = kr_store_producer_epoch(t, cmd->name.ptr, cmd->name.len, &res.seq);
    if (epoch >= cmd->epoch) {
        rp->skipped++;
        res.first = t->next;
        res.epoch = epoch;
        complete(it, &res);
        return;
    }
    if (kr_store_producer_register(rp->store, cmd->topic.ptr, cmd->topic.len, cmd->name.ptr,
                                   cmd->name.len, &t, stored_cb, it, &res) < 0) {
        complete(it, &res);
        return;
    }
    kr_store_producer_release(rp->store, t, cmd->name.ptr, cmd->name.len);
}

/* ---- consumer groups (replica.h) ---- */

/* The topic or group a command names is not there (deleted before the
 * command's turn): every node refuses it alike. */
static void missing(item *it, krappy_err err, const char *what, const kr_str *name)
{
    kr_store_result res = {.err = err};
    snprintf(res.msg, sizeof res.msg, "%s '%.*s' does not exist (deleted meanwhile?)", what,
             (int)name->len, (const char *)name->ptr);
    complete(it, &res);
}

/* The command's group, or NULL with the command answered NO_SUCH_TOPIC
 * or NOT_FOUND. */
static kr_tgroup *need_group(kr_replica *rp, item *it, const kr_cmd *cmd)
{
    kr_topic *t = kr_store_topic(rp->store, cmd->topic.ptr, cmd->topic.len);
    kr_tgroup *tg = t != NULL ? kr_store_group(t, cmd->name.ptr, cmd->name.len) : NULL;
    if (t == NULL)
        missing(it, KRAPPY_E_NO_SUCH_TOPIC, "topic", &cmd->topic);
    else if (tg == NULL)
        missing(it, KRAPPY_E_NOT_FOUND, "group", &cmd->name);
    return tg;
}

/* A GROUP_CREATE of a group that exists is a no-op (a replay, or a
 * registration that only waited for the log): res.first is its cursor. */
static void apply_group_create(kr_replica *rp, item *it, const kr_cmd *cmd)
{
    kr_store_result res = {.err = KRAPPY_OK};
    kr_topic *t = kr_store_topic(rp->store, cmd->topic.ptr, cmd->topic.len);
    if (t == NULL) {
        missing(it, KRAPPY_E_NO_SUCH_TOPIC, "topic", &cmd->topic);
        return;
    }
    kr_tgroup *tg = kr_store_group(t, cmd->name.ptr, cmd->name.len);
    if (tg != NULL) {
        res.first = kr_store_group_cursor(tg);
        complete(it, &res);
        return;
    }
    if (kr_store_group_apply(rp->store, t, cmd->name.ptr, cmd->name.len, cmd->value, stored_cb, it,
                             &res) < 0)
        complete(it, &res);
}

/* One of a GROUP_CURSORS' jobs finished: the command completes with the
 * last (with the first error, if any). */
static void cursor_written(void *arg, const kr_store_result *res)
{
    item *it = arg;
    if (res->err != KRAPPY_OK && it->res.err == KRAPPY_OK)
        it->res = *res;
    if (--it->jobs == 0) {
        kr_store_result all = it->res;
        complete(it, &all);
    }
}

/* A round of ACKs: each group named moves up to its cursor, and that
 * cursor is written. A group deleted since is skipped (by every node). */
static void apply_group_cursors(kr_replica *rp, item *it, const kr_cmd *cmd)
{
    kr_topic *t = kr_store_topic(rp->store, cmd->topic.ptr, cmd->topic.len);
    if (t == NULL) {
        missing(it, KRAPPY_E_NO_SUCH_TOPIC, "topic", &cmd->topic);
        return;
    }
    kr_cmd_cursor_iter ci;
    kr_str g;
    uint64_t cursor;
    it->res = (kr_store_result){.err = KRAPPY_OK};
    it->jobs = 1; /* this loop's own, dropped below */
    kr_cmd_cursor_iter_init(&ci, cmd);
    while (kr_cmd_cursor_next(&ci, &g, &cursor)) {
        kr_store_result res;
        if (kr_store_group(t, g.ptr, g.len) == NULL)
            continue;
        it->jobs++;
        if (kr_store_group_apply(rp->store, t, g.ptr, g.len, cursor, cursor_written, it, &res) < 0)
            cursor_written(it, &res);
    }
    kr_store_result done = {.err = KRAPPY_OK};
    cursor_written(it, &done);
}

static void apply_group_seek(kr_replica *rp, item *it, const kr_cmd *cmd)
{
    kr_tgroup *tg = need_group(rp, it, cmd);
    if (tg == NULL)
        return;
    kr_store_result res = {.err = KRAPPY_OK};
    res.err = kr_store_group_seek(rp->store, tg, KR_SEEK_OFFSET, cmd->value, stored_cb, it, res.msg,
                                  sizeof res.msg);
    if (res.err == KRAPPY_OK)
        tg->logged = cmd->value;
    else
        complete(it, &res);
}

/* The group goes on every node; on the leader its members lose their
 * registrations. */
static void apply_group_delete(kr_replica *rp, item *it, const kr_cmd *cmd)
{
    kr_tgroup *tg = need_group(rp, it, cmd);
    if (tg == NULL)
        return;
    kr_store_result res = {.err = KRAPPY_OK};
    res.err = kr_store_group_delete(rp->store, tg, stored_cb, it, res.msg, sizeof res.msg);
    if (res.err != KRAPPY_OK) {
        complete(it, &res);
        return;
    }
    if (rp->forget != NULL)
        rp->forget(rp->forget_arg, tg->t, tg);
}

/* A Kafka group's committed offset, written as on a single node. */
static void apply_koffset(kr_replica *rp, item *it, const kr_cmd *cmd)
{
    kr_topic *t = kr_store_topic(rp->store, cmd->topic.ptr, cmd->topic.len);
    if (t == NULL) {
        missing(it, KRAPPY_E_NO_SUCH_TOPIC, "topic", &cmd->topic);
        return;
    }
    kr_store_result res;
    if (kr_store_koffset_commit(rp->store, t, cmd->name.ptr, cmd->name.len, cmd->value,
                                cmd->has_metadata ? (const char *)cmd->payload.ptr : NULL,
                                cmd->has_metadata ? (int32_t)cmd->payload.len : -1, stored_cb, it,
                                &res) < 0)
        complete(it, &res);
}

/* ---- topics (replica.h) ---- */

/* The topic goes on every node, with all it holds; connections let go of
 * it. A restart's replay deletes it too when the topic here is one made
 * again after this deletion: the log since the snapshot holds every
 * command that made it, and the replay makes it again from them. Skipping
 * instead would leave the old topic's commands replayed before it (a
 * group, a producer's epoch, a setting) on the new one. */
static void apply_topic_delete(kr_replica *rp, item *it, const kr_cmd *cmd)
{
    kr_topic *t = kr_store_topic(rp->store, cmd->topic.ptr, cmd->topic.len);
    kr_store_result res = {.err = KRAPPY_OK};
    if (t == NULL) {
        missing(it, KRAPPY_E_NO_SUCH_TOPIC, "topic", &cmd->topic);
        return;
    }
    res.err = kr_store_delete_topic(rp->store, t, stored_cb, it, res.msg, sizeof res.msg);
    if (res.err != KRAPPY_OK)
        complete(it, &res);
    else if (rp->forget != NULL)
        rp->forget(rp->forget_arg, t, NULL);
}

/* A change of settings (creating the topic when it is missing), as a
 * single node makes it. */
static void apply_topic_config(kr_replica *rp, item *it, const kr_cmd *cmd)
{
    kr_topic *t;
    kr_store_result res = {.err = KRAPPY_OK};
    res.err = kr_store_topic_configure(rp->store, cmd->topic.ptr, cmd->topic.len, &cmd->cfg, &t,
                                       stored_cb, it, res.msg, sizeof res.msg);
    if (res.err != KRAPPY_OK)
        complete(it, &res);
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
    case KR_CMD_PRODUCER_REGISTER:
        apply_register(rp, it, &cmd);
        return;
    case KR_CMD_GROUP_CREATE:
        apply_group_create(rp, it, &cmd);
        return;
    case KR_CMD_GROUP_CURSORS:
        apply_group_cursors(rp, it, &cmd);
        return;
    case KR_CMD_GROUP_SEEK:
        apply_group_seek(rp, it, &cmd);
        return;
    case KR_CMD_GROUP_DELETE:
        apply_group_delete(rp, it, &cmd);
        return;
    case KR_CMD_KOFFSET_COMMIT:
        apply_koffset(rp, it, &cmd);
        return;
    case KR_CMD_TOPIC_DELETE:
        apply_topic_delete(rp, it, &cmd);
        return;
    case KR_CMD_TOPIC_CONFIG:
        apply_topic_config(rp, it, &cmd);
        return;
    default:
        res.err = KRAPPY_E_INVALID_ARGUMENT;
        snprintf(res.msg, sizeof res.msg, "%s is not replicated by this krappyd yet",
                 kr_cmd_name(cmd.type));
        complete(it, &res);
        return;
    }
}

/* ---- catching up after a snapshot (loop) ---- */

static void pump(kr_replica *rp);

static void caught_chunk(void *arg, const char *topic, uint64_t first, uint64_t count,
                         const uint8_t *payload, size_t len)
{
    kr_replica *rp = arg;
    kr_store_result res;
    kr_str name = {(const uint8_t *)topic, strlen(topic)};
    kr_topic *t = find_or_create(rp, &name, &res);
    kr_request req;
    char msg[256];
    uint64_t bad;
    krappy_err rc = t == NULL ? KRAPPY_E_STORAGE
                              : kr_req_decode(KRAPPY_T_PUBLISH, payload, len, &rp->scratch, &req,
                                              msg, sizeof msg);
    if (rc == KRAPPY_OK && t->assigned != first) {
        snprintf(msg, sizeof msg, "the topic is at offset %llu here, the events start at %llu",
                 (unsigned long long)t->assigned, (unsigned long long)first);
        rc = KRAPPY_E_STORAGE;
    }
    if (rc == KRAPPY_OK)
        rc = kr_store_publish_applied(rp->store, t, &req, &rp->scratch, NULL, 0, rp->catch_index,
                                      created_quietly, NULL, msg, sizeof msg, &bad);
    if (rc != KRAPPY_OK)
        kr_log(KR_LOG_ERROR, "events fetched from the leader cannot be stored here",
               KR_LOG_STR("topic", topic), KR_LOG_U64("first", first), KR_LOG_U64("count", count),
               KR_LOG_STR("reason", msg));
}

static void caught_up(void *arg)
{
    kr_replica *rp = arg;
    kr_catchup_stop(rp->catching);
    rp->catching = NULL;
    kr_log(KR_LOG_INFO, "caught up with the leader's streams",
           KR_LOG_U64("index", rp->catch_index));
    pump(rp);
}

/* A part of a restored snapshot stored (arg: what, for the log). */
static void adopted(void *arg, const kr_store_result *res)
{
    if (res->err != KRAPPY_OK)
        kr_log(KR_LOG_ERROR, "state from a raft snapshot was not stored",
               KR_LOG_STR("what", (const char *)arg), KR_LOG_STR("reason", res->msg));
}

/* The snapshot's producers of t, where the store's are older. */
static void adopt_producers(kr_replica *rp, kr_topic *t, const kr_cbor_item *list)
{
    kr_cbor_item p, id, epoch, next, win, b, v[4];
    kr_cbor_iter pi, fi, wi, bi;
    kr_cbor_iter_init(&pi, list);
    while (kr_cbor_iter_next(&pi, &p) == 1) {
        kr_prod_state st = {0};
        kr_cbor_iter_init(&fi, &p);
        if (p.kind != KR_CBOR_ARRAY || p.u != 4 || kr_cbor_iter_next(&fi, &id) != 1 ||
            id.kind != KR_CBOR_BYTES || id.str == NULL || kr_cbor_iter_next(&fi, &epoch) != 1 ||
            epoch.kind != KR_CBOR_UINT || epoch.u > UINT32_MAX ||
            kr_cbor_iter_next(&fi, &next) != 1 || next.kind != KR_CBOR_UINT ||
            kr_cbor_iter_next(&fi, &win) != 1 || win.kind != KR_CBOR_ARRAY)
            continue;
        st = (kr_prod_state){
            .id = id.str, .id_len = id.str_len, .epoch = (uint32_t)epoch.u, .next_seq = next.u};
        kr_cbor_iter_init(&wi, &win);
        while (st.n < KR_PRODUCER_WINDOW && kr_cbor_iter_next(&wi, &b) == 1) {
            int k = 0;
            kr_cbor_iter_init(&bi, &b);
            while (k < 4 && kr_cbor_iter_next(&bi, &v[k]) == 1 && v[k].kind == KR_CBOR_UINT)
                k++;
            if (b.kind != KR_CBOR_ARRAY || k != 4 || v[2].u > UINT32_MAX)
                break;
            st.win[st.n++] = (kr_prod_batch){.seq = v[0].u,
                                             .first = v[1].u,
                                             .count = (uint32_t)v[2].u,
                                             .stored = true,
                                             .synced = v[3].u != 0};
        }
        kr_store_result res;
        if (kr_store_producer_adopt(rp->store, t, &st, adopted, (void *)"a producer", &res) < 0)
            adopted((void *)"a producer", &res);
    }
}

/* Is `name` in the snapshot's list of groups (BYTES) or topics (TEXT):
 * an array of arrays, each led by a name of that kind? */
static bool listed(const kr_cbor_item *list, kr_cbor_kind kind, const char *name, size_t len)
{
    kr_cbor_item g, n;
    kr_cbor_iter gi, fi;
    kr_cbor_iter_init(&gi, list);
    while (kr_cbor_iter_next(&gi, &g) == 1) {
        kr_cbor_iter_init(&fi, &g);
        if (g.kind == KR_CBOR_ARRAY && kr_cbor_iter_next(&fi, &n) == 1 && n.kind == kind &&
            n.str_len == len && memcmp(n.str, name, len) == 0)
            return true;
    }
    return false;
}

/* The snapshot's groups of t (list: [[group, cursor]...]): each at least
 * at its cursor (a node ahead - restarted on its own snapshot - replays
 * the rest; one that missed a seek back stays ahead until the group's next
 * command); a group of this node's that it lacks was deleted meanwhile (or,
 * on a restart, made after it: the replay makes it again). */
static void adopt_groups(kr_replica *rp, kr_topic *t, const kr_cbor_item *list)
{
    kr_cbor_item g, name, cur;
    kr_cbor_iter gi, fi;
    kr_cbor_iter_init(&gi, list);
    while (kr_cbor_iter_next(&gi, &g) == 1) {
        kr_cbor_iter_init(&fi, &g);
        if (g.kind != KR_CBOR_ARRAY || g.u != 2 || kr_cbor_iter_next(&fi, &name) != 1 ||
            name.kind != KR_CBOR_BYTES || name.str == NULL || name.str_len == 0 ||
            name.str_len > KRAPPY_MAX_NAME_BYTES || kr_cbor_iter_next(&fi, &cur) != 1 ||
            cur.kind != KR_CBOR_UINT)
            continue;
        kr_tgroup *tg = kr_store_group(t, name.str, name.str_len);
        kr_store_result res;
        if (tg != NULL && cur.u <= kr_store_group_cursor(tg))
            continue; /* never back: a restart's replay brings it where the log says */
        if (kr_store_group_apply(rp->store, t, name.str, name.str_len, cur.u, adopted,
                                 (void *)"a group's cursor", &res) < 0)
            adopted((void *)"a group's cursor", &res);
    }
    kr_tgroup *const *gs;
    for (size_t i = kr_store_groups(t, &gs); i-- > 0;) {
        size_t len;
        const char *gname = kr_store_group_name(gs[i], &len);
        kr_tgroup *gone = gs[i];
        if (listed(list, KR_CBOR_BYTES, gname, len))
            continue;
        kr_store_result res = {.err = KRAPPY_OK};
        res.err = kr_store_group_delete(rp->store, gone, adopted, (void *)"a group's deletion",
                                        res.msg, sizeof res.msg);
        if (res.err != KRAPPY_OK)
            adopted((void *)"a group's deletion", &res);
        else if (rp->forget != NULL)
            rp->forget(rp->forget_arg, t, gone);
    }
}

/* The snapshot's settings of t, where they differ from its own. */
static void adopt_settings(kr_replica *rp, kr_topic *t, const kr_cbor_item *map)
{
    kr_topic_config own, set;
    char msg[200];
    if (kr_tc_decode(map, false, &own, msg, sizeof msg) != KRAPPY_OK)
        return;
    bool same = own.mask == t->own.mask;
    for (int i = 0; same && i < KR_TC_N; i++)
        same = !((own.mask >> i) & 1u) || own.v[i] == t->own.v[i];
    if (same)
        return;
    set = own;
    set.reset = KR_TC_ALL & ~own.mask;
    kr_topic *it;
    kr_store_result res = {.err = KRAPPY_OK};
    res.err =
        kr_store_topic_configure(rp->store, (const uint8_t *)t->name, t->name_len, &set, &it,
                                 adopted, (void *)"a topic's settings", res.msg, sizeof res.msg);
    if (res.err != KRAPPY_OK)
        adopted((void *)"a topic's settings", &res);
}

/* A topic of this node's that the snapshot lacks and that holds nothing
 * after it was deleted before it: it goes, as the log's TOPIC_DELETE would
 * have done it. (One made after the snapshot - a restart's replay of its
 * own - either holds batches past `index` and stays, or holds none and the
 * replay makes it again.) */
static void drop_unlisted(kr_replica *rp, const kr_cbor_item *list, uint64_t index)
{
    kr_topic **all;
    for (size_t i = kr_store_topics(rp->store, &all); i-- > 0;) {
        kr_topic *t = all[i];
        if (t->raft_index > index || listed(list, KR_CBOR_TEXT, t->name, t->name_len))
            continue;
        kr_store_result res = {.err = KRAPPY_OK};
        kr_log(KR_LOG_INFO, "a topic deleted before the raft snapshot goes here too",
               KR_LOG_STR("topic", t->name), KR_LOG_U64("index", index));
        res.err = kr_store_delete_topic(rp->store, t, adopted, (void *)"a topic's deletion",
                                        res.msg, sizeof res.msg);
        if (res.err != KRAPPY_OK)
            adopted((void *)"a topic's deletion", &res);
        else if (rp->forget != NULL)
            rp->forget(rp->forget_arg, t, NULL);
        kr_store_topics(rp->store, &all);
    }
}

/*
 * A snapshot was restored (item->data: [index, [topic...]] in put_topic's
 * form; an older krappyd's has no groups, or no settings): every topic must hold its
 * offsets up to `next` before the commands after `index` apply. What this node lacks - it was too
 * far behind, and the leader sent the snapshot instead of the commands - is fetched from the
 * leader. @return true when a catch-up runs (pump waits for it).
 */
static bool catch_up(kr_replica *rp, const item *it)
{
    kr_cbor_item a, idx, list, e;
    kr_cbor_iter ai, li;
    if (kr_cbor_read_exact(it->data, it->len, &a) < 0 || a.kind != KR_CBOR_ARRAY || a.u != 2)
        goto bad;
    kr_cbor_iter_init(&ai, &a);
    if (kr_cbor_iter_next(&ai, &idx) != 1 || idx.kind != KR_CBOR_UINT ||
        kr_cbor_iter_next(&ai, &list) != 1 || list.kind != KR_CBOR_ARRAY)
        goto bad;
    kr_catchup_range *r = calloc(list.u ? list.u : 1, sizeof *r);
    size_t n = 0;
    if (r == NULL)
        goto bad;
    kr_cbor_iter_init(&li, &list);
    while (kr_cbor_iter_next(&li, &e) == 1) {
        kr_cbor_item name, next, prods, groups, settings;
        kr_cbor_iter ei;
        if (e.kind != KR_CBOR_ARRAY || e.u < 3 || e.u > 5)
            continue;
        kr_cbor_iter_init(&ei, &e);
        if (kr_cbor_iter_next(&ei, &name) != 1 || name.kind != KR_CBOR_TEXT || name.str == NULL ||
            name.str_len > KRAPPY_MAX_NAME_BYTES || kr_cbor_iter_next(&ei, &next) != 1 ||
            next.kind != KR_CBOR_UINT || kr_cbor_iter_next(&ei, &prods) != 1 ||
            prods.kind != KR_CBOR_ARRAY)
            continue;
        kr_str tn = {name.str, name.str_len};
        kr_store_result res;
        kr_topic *t = find_or_create(rp, &tn, &res);
        if (t == NULL)
            continue;
        adopt_producers(rp, t, &prods);
        if (e.u >= 4 && kr_cbor_iter_next(&ei, &groups) == 1 && groups.kind == KR_CBOR_ARRAY)
            adopt_groups(rp, t, &groups);
        if (e.u == 5 && kr_cbor_iter_next(&ei, &settings) == 1)
            adopt_settings(rp, t, &settings);
        /* A topic with batches after the snapshot holds what it covers
         * (or is one made again after a deletion the replay holds). */
        if (t->assigned >= next.u || t->raft_index > idx.u)
            continue;
        memcpy(r[n].topic, name.str, name.str_len);
        r[n].from = t->assigned;
        r[n].to = next.u;
        n++;
    }
    drop_unlisted(rp, &list, idx.u);
    if (n == 0) {
        free(r);
        return false;
    }
    char nodes[2048] = "";
    rp->nodes(rp->nodes_arg, nodes, sizeof nodes);
    rp->catch_index = idx.u;
    kr_log(KR_LOG_WARN,
           "this node's streams are behind the snapshot it restored; fetching the "
           "rest from the leader",
           KR_LOG_U64("index", idx.u), KR_LOG_U64("topics", n), KR_LOG_STR("nodes", nodes));
    rp->catching = kr_catchup_start(rp->base, nodes, rp->token, r, n, caught_chunk, caught_up, rp);
    free(r);
    if (rp->catching == NULL)
        kr_log(KR_LOG_ERROR, "cannot start catching up with the leader (no memory); this node's "
                             "streams lack what the snapshot covers");
    return rp->catching != NULL;
bad:
    kr_log(KR_LOG_ERROR, "the store's part of a raft snapshot is malformed; ignored");
    return false;
}

/* Apply what waits, in order, unless a catch-up runs. */
static void pump(kr_replica *rp)
{
    item *it;
    while (!rp->halted && rp->catching == NULL && (it = rp->wait_head) != NULL) {
        rp->wait_head = it->next;
        if (rp->wait_head == NULL)
            rp->wait_tail = NULL;
        it->next = NULL;
        if (it->index == 0) {
            (void)catch_up(rp, it);
            free(it);
            continue;
        }
        /* In flight first: a completion at once advances over it. */
        if (rp->fly_tail != NULL)
            rp->fly_tail->next = it;
        else
            rp->fly_head = it;
        rp->fly_tail = it;
        apply_one(rp, it);
    }
    serve_snapshot(rp);
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
    if (list != NULL) {
        if (rp->wait_tail != NULL)
            rp->wait_tail->next = list;
        else
            rp->wait_head = list;
        rp->wait_tail = last;
    }
    pump(rp);
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
    if (index > 0)
        rp->pushed = index;
    pthread_mutex_unlock(&rp->mu);
    event_active(rp->ev, EV_READ, 0);
    return 0;
}

/* CLOCK_REALTIME (the condition variable's) ms from now. */
static struct timespec ms_from_now(unsigned ms)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    ts.tv_sec += ms / 1000;
    ts.tv_nsec += (long)(ms % 1000) * 1000000L;
    if (ts.tv_nsec >= 1000000000L) {
        ts.tv_sec++;
        ts.tv_nsec -= 1000000000L;
    }
    return ts;
}

int kr_replica_snapshot(kr_replica *rp, unsigned ms, kr_buf *out)
{
    /* The loop looks again every SNAPSHOT_POLL_MS: a sync's completion
     * does not call the replica (streams_durable). */
    unsigned waited = 0;
    pthread_mutex_lock(&rp->mu);
    rp->snap_asked = true;
    rp->snap_ready = false;
    while (!rp->snap_ready && waited < ms) {
        unsigned slice = ms - waited < SNAPSHOT_POLL_MS ? ms - waited : SNAPSHOT_POLL_MS;
        struct timespec until = ms_from_now(slice);
        pthread_mutex_unlock(&rp->mu);
        event_active(rp->ev, EV_READ, 0);
        pthread_mutex_lock(&rp->mu);
        while (!rp->snap_ready && pthread_cond_timedwait(&rp->cond, &rp->mu, &until) != ETIMEDOUT)
            ;
        waited += slice;
    }
    bool ok = rp->snap_ready;
    if (ok)
        kr_buf_append(out, rp->snap.data, rp->snap.len);
    rp->snap_asked = false;
    rp->snap_ready = false;
    pthread_mutex_unlock(&rp->mu);
    return ok && !out->failed ? 0 : -1;
}

int kr_replica_restore(kr_replica *rp, const void *data, size_t len)
{
    return kr_replica_push(rp, 0, data, len);
}

void kr_replica_halt(kr_replica *rp)
{
    if (rp == NULL)
        return;
    rp->halted = true;
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
    for (item *it = rp->wait_head, *n; it != NULL; it = n) {
        n = it->next;
        free(it);
    }
    kr_catchup_stop(rp->catching);
    free(rp->token);
    kr_buf_free(&rp->snap);
    if (rp->ev != NULL)
        event_free(rp->ev);
    free(rp->slots);
    kr_buf_free(&rp->scratch);
    pthread_cond_destroy(&rp->cond);
    pthread_mutex_destroy(&rp->mu);
    free(rp);
}

bool kr_replica_ready(kr_replica *rp, char *why, size_t whylen)
{
    if (rp->halted)
        snprintf(why, whylen, "cluster: the store failed a command of the log; restart this node");
    else if (rp->catching != NULL)
        snprintf(why, whylen, "cluster: fetching the events a snapshot covers from the leader");
    return !rp->halted && rp->catching == NULL;
}

uint64_t kr_replica_stored(kr_replica *rp)
{
    return rp->stored;
}

uint64_t kr_replica_skipped(kr_replica *rp)
{
    return rp->skipped;
}
