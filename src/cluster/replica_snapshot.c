/*
 * cluster/replica_snapshot.c - the store's part of a raft snapshot (see
 * replica.h, "Restarts"): taken once the store holds every command it
 * covers, durably; restored by adopting its producers and groups and
 * fetching what the streams lack from the leader (catchup.h).
 */
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cluster/replica_int.h"
#include "store/topic_config.h"
#include "util/log.h"

#define SNAPSHOT_POLL_MS 2 /* the loop's look at the syncs a snapshot waits for */

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

/* [topic, next, [producer...], [[group, cursor]...], settings, first?]:
 * each group at the cursor the log gave it (on the leader its own may be
 * ahead); settings: the ones the topic sets itself (TOPIC_CONFIG's map);
 * first: the last RETENTION's, when there was one (a restart that begins
 * at this snapshot learns it here). */
static void put_topic(kr_buf *b, kr_topic *t)
{
    size_t n = 0;
    kr_store_producers_each(t, count_one, &n);
    kr_cbor_put_array(b, t->retain_to > 0 ? 6 : 5);
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
    if (t->retain_to > 0)
        kr_cbor_put_uint(b, t->retain_to);
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
void kr_replica_serve_snapshot(kr_replica *rp)
{
    pthread_mutex_lock(&rp->mu);
    bool ready = rp->snap_asked && !rp->snap_ready && rp->in_head == NULL &&
                 rp->wait_head == NULL && rp->fly_head == NULL && rp->catching == NULL &&
                 rp->catch_writes == 0 && rp->stored_shared >= rp->pushed && streams_durable(rp);
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

/* ---- catching up after a snapshot (loop) ---- */

/* A skip (kr_store_skip_to) of t to `first`: the offsets below it are
 * retired on every node. @return false when the store is not ready for it
 * yet (try again later). */
static bool skip_retired(kr_replica *rp, kr_topic *t, uint64_t first)
{
    char msg[256];
    krappy_err rc = kr_store_skip_to(rp->store, t, first, msg, sizeof msg);
    if (rc == KRAPPY_E_STORAGE)
        kr_log(KR_LOG_ERROR, "this node's stream cannot skip the events every node retired",
               KR_LOG_STR("topic", t->name), KR_LOG_U64("first", first), KR_LOG_STR("reason", msg));
    return rc == KRAPPY_OK;
}

/* The offsets below `next` were compacted away on the peers the events
 * come from: t's next append goes to `next` (kr_store_gap_to). @return
 * false when the store is not ready for it yet (try again later). */
static bool gap_to(kr_replica *rp, kr_topic *t, uint64_t next)
{
    char msg[256];
    return kr_store_gap_to(rp->store, t, next, msg, sizeof msg) == KRAPPY_OK;
}

/* A page of the peers' latest values below the skip to `first`
 * (kr_store_seed_view). @return false when the store is not ready for it
 * or refused it (the catch-up seeds again from the first page). */
static bool seed_page(kr_replica *rp, kr_topic *t, uint64_t first, uint64_t count,
                      const uint8_t *payload, size_t len, bool last)
{
    char msg[256];
    if (kr_store_seed_pending(t) != first)
        return true; /* no skip here (the stream holds events past it): nothing to seed */
    krappy_err rc =
        kr_store_seed_view(rp->store, t, first, payload, len, count, last, msg, sizeof msg);
    if (rc != KRAPPY_OK && rc != KRAPPY_E_BUSY)
        kr_log(KR_LOG_ERROR, "the latest values below the skip cannot be stored here",
               KR_LOG_STR("topic", t->name), KR_LOG_U64("first", first), KR_LOG_STR("reason", msg));
    return rc == KRAPPY_OK;
}

/* Events fetched from the leader that this node cannot store: the
 * replica halts (a restart fetches them again). The catch-up runs on,
 * storing nothing (caught_chunk): it may be what called, and stopping it
 * here would free it under its own callback. */
static void catch_failed(kr_replica *rp, const char *why)
{
    kr_replica_halt_because(rp,
                            "events fetched from the leader cannot be stored here; this node "
                            "applies no more until it is restarted",
                            rp->catch_index, KR_POS_SUB_ALL, why);
}

/* The store completed a run of fetched events (arg: the replica). Until
 * the last has, the node is not ready (kr_replica_ready) and serves no
 * snapshot: its streams do not hold yet what it restored. */
static void caught_stored(void *arg, const kr_store_result *res)
{
    kr_replica *rp = arg;
    rp->catch_writes--;
    if (res->err != KRAPPY_OK)
        catch_failed(rp, res->msg);
    if (rp->catch_writes == 0)
        kr_replica_serve_snapshot(rp);
}

static bool caught_chunk(void *arg, const char *topic, kr_catchup_kind kind, uint64_t first,
                         uint64_t count, const uint8_t *payload, size_t len)
{
    kr_replica *rp = arg;
    if (rp->halted)
        return true;
    kr_store_result res = {.err = KRAPPY_OK};
    kr_str name = {(const uint8_t *)topic, strlen(topic)};
    kr_topic *t = kr_replica_find_or_create(rp, &name, &res);
    if (kind == KR_CATCHUP_RETIRED)
        return t != NULL && skip_retired(rp, t, first);
    if (kind == KR_CATCHUP_SEED || kind == KR_CATCHUP_SEED_LAST)
        return t != NULL &&
               seed_page(rp, t, first, count, payload, len, kind == KR_CATCHUP_SEED_LAST);
    /* Each event at its own offset, as on the peers: after their
     * compaction's gaps too. */
    if (t != NULL && first > t->assigned && !gap_to(rp, t, first))
        return false;
    if (kind == KR_CATCHUP_GAP)
        return t != NULL;
    kr_request req;
    char msg[256];
    uint64_t bad;
    krappy_err rc = t == NULL ? KRAPPY_E_STORAGE
                              : kr_req_decode(KRAPPY_T_PUBLISH, payload, len, &rp->scratch, &req,
                                              msg, sizeof msg);
    if (t == NULL)
        snprintf(msg, sizeof msg, "%s", res.msg);
    if (rc == KRAPPY_OK && t->assigned != first) {
        snprintf(msg, sizeof msg, "the topic is at offset %llu here, the events start at %llu",
                 (unsigned long long)t->assigned, (unsigned long long)first);
        rc = KRAPPY_E_STORAGE;
    }
    if (rc == KRAPPY_OK)
        rc = kr_store_publish_applied(rp->store, t, &req, &rp->scratch, NULL, 0,
                                      kr_replica_pos(rp->catch_index, KR_POS_SUB_ALL),
                                      caught_stored, rp, msg, sizeof msg, &bad);
    if (rc == KRAPPY_OK)
        rp->catch_writes++;
    else if (rc == KRAPPY_E_BUSY)
        return false; /* the topic is still being created: the chunk comes again */
    else {
        char why[sizeof msg + KRAPPY_MAX_NAME_BYTES + 64];
        snprintf(why, sizeof why, "topic %s, events from offset %llu: %s", topic,
                 (unsigned long long)first, msg);
        catch_failed(rp, why);
    }
    return true;
}

static void caught_up(void *arg)
{
    kr_replica *rp = arg;
    kr_catchup_stop(rp->catching);
    rp->catching = NULL;
    kr_log(KR_LOG_INFO, "caught up with the leader's streams",
           KR_LOG_U64("index", rp->catch_index));
    kr_replica_pump(rp);
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
        if (kr_replica_pos_index(t->raft_index) > index ||
            listed(list, KR_CBOR_TEXT, t->name, t->name_len))
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
bool kr_replica_catch_up(kr_replica *rp, const item *it)
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
        kr_cbor_item name, next, prods, groups, settings, first;
        kr_cbor_iter ei;
        if (e.kind != KR_CBOR_ARRAY || e.u < 3 || e.u > 6)
            continue;
        kr_cbor_iter_init(&ei, &e);
        if (kr_cbor_iter_next(&ei, &name) != 1 || name.kind != KR_CBOR_TEXT || name.str == NULL ||
            name.str_len > KRAPPY_MAX_NAME_BYTES || kr_cbor_iter_next(&ei, &next) != 1 ||
            next.kind != KR_CBOR_UINT || kr_cbor_iter_next(&ei, &prods) != 1 ||
            prods.kind != KR_CBOR_ARRAY)
            continue;
        kr_str tn = {name.str, name.str_len};
        kr_store_result res;
        kr_topic *t = kr_replica_find_or_create(rp, &tn, &res);
        if (t == NULL)
            continue;
        adopt_producers(rp, t, &prods);
        if (e.u >= 4 && kr_cbor_iter_next(&ei, &groups) == 1 && groups.kind == KR_CBOR_ARRAY)
            adopt_groups(rp, t, &groups);
        if (e.u >= 5 && kr_cbor_iter_next(&ei, &settings) == 1)
            adopt_settings(rp, t, &settings);
        bool retired =
            e.u == 6 && kr_cbor_iter_next(&ei, &first) == 1 && first.kind == KR_CBOR_UINT;
        if (retired)
            kr_store_retain(rp->store, t, first.u);
        /* A topic with batches after the snapshot holds what it covers
         * (or is one made again after a deletion the replay holds). */
        bool behind = t->assigned < next.u && kr_replica_pos_index(t->raft_index) <= idx.u;
        /* Below the snapshot's first, every node retired the events: the
         * stream skips them (one not ready for it - a topic still being
         * created, appends or a roll waiting for a sync - skips once the
         * catch-up's FETCH learns the first kept offset). */
        if (behind && retired && first.u > t->assigned)
            (void)skip_retired(rp, t, first.u < next.u ? first.u : next.u);
        /* A skip's view takes the peers' latest values below it first -
         * this one's, or one a restart found unseeded. */
        uint64_t seed = kr_store_seed_pending(t);
        if (seed == 0 && (!behind || t->assigned >= next.u))
            continue;
        memcpy(r[n].topic, name.str, name.str_len);
        r[n].from = t->assigned;
        r[n].to = behind && next.u > t->assigned ? next.u : t->assigned;
        r[n].seed_to = seed;
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
    while (!rp->snap_ready && !rp->halted_shared && waited < ms) {
        unsigned slice = ms - waited < SNAPSHOT_POLL_MS ? ms - waited : SNAPSHOT_POLL_MS;
        struct timespec until = ms_from_now(slice);
        pthread_mutex_unlock(&rp->mu);
        event_active(rp->ev, EV_READ, 0);
        pthread_mutex_lock(&rp->mu);
        while (!rp->snap_ready && !rp->halted_shared &&
               pthread_cond_timedwait(&rp->cond, &rp->mu, &until) != ETIMEDOUT)
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
