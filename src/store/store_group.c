/*
 * store/store_group.c - consumer groups in the store: which groups a topic
 * has, their cursors in RocksDB (loaded at start, written through the
 * storage writer), POLL fetching what the window hands out, parked POLLs,
 * deadlines and retention skips.
 */
#include "store/store_int.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <event2/buffer.h>

#include "util/clock.h"
#include "util/grow.h"
#include "util/log.h"

/* Slices one POLL may hand out (redelivery runs + the new tail). */
#define KR_POLL_MAX_GRANTS 64

static const char *group_name_at(const void *table, size_t i, size_t *len)
{
    const kr_group *g = ((const kr_topic *)table)->groups[i]->g;
    *len = g->name_len;
    return g->name;
}

static size_t group_slot(const kr_topic *t, const uint8_t *name, size_t len, bool *found)
{
    return kr_name_slot(t, t->n_groups, group_name_at, name, len, found);
}

kr_tgroup *kr_store_group(kr_topic *t, const uint8_t *name, size_t len)
{
    bool found;
    size_t at = group_slot(t, name, len, &found);
    return found ? t->groups[at] : NULL;
}

size_t kr_store_groups(const kr_topic *t, kr_tgroup *const **out)
{
    *out = t->groups;
    return t->n_groups;
}

const char *kr_store_group_name(const kr_tgroup *tg, size_t *len)
{
    *len = tg->g->name_len;
    return tg->g->name;
}

uint64_t kr_store_group_cursor(const kr_tgroup *tg)
{
    return tg->g->cursor;
}

uint64_t kr_store_group_frontier(const kr_tgroup *tg)
{
    return tg->g->frontier;
}

void kr_store_group_stats(const kr_tgroup *tg, kr_group_stats *out)
{
    const kr_group *g = tg->g;
    out->name = g->name;
    out->name_len = g->name_len;
    out->cursor = g->cursor;
    out->pending = kr_group_pending(g);
    out->lag = tg->t->next > g->cursor ? tg->t->next - g->cursor : 0;
    out->members = g->n_members;
}

size_t kr_store_group_members(const kr_tgroup *tg, kr_member_stats *out, size_t max)
{
    size_t n = 0;
    const kr_member *m;
    TAILQ_FOREACH(m, &tg->g->members, link)
    {
        if (n < max)
            out[n] = (kr_member_stats){m->name, m->name_len, kr_group_member_pending(tg->g, m),
                                       m->auto_ack, m->ack_wait_ms};
        n++;
    }
    return n;
}

void kr_store_group_ack_upto(kr_store *s, kr_tgroup *tg, kr_member *m, uint64_t upto,
                             kr_ack_result *res)
{
    uint64_t before = tg->g->cursor;
    kr_group_ack_upto(tg->g, m, upto, res);
    if (tg->g->cursor != before)
        kr_store_wake_group(s, tg); /* room in the window */
}

void kr_store_group_ack_offsets(kr_store *s, kr_tgroup *tg, const uint64_t *offsets, size_t n,
                                kr_ack_result *res)
{
    uint64_t before = tg->g->cursor;
    kr_group_ack_offsets(tg->g, offsets, n, res);
    if (tg->g->cursor != before)
        kr_store_wake_group(s, tg); /* room in the window */
}

/* Prometheus label value: backslash, double quote and newline escaped. */
static void label_escape(char *out, size_t outlen, const char *in, size_t len)
{
    size_t o = 0;
    for (size_t i = 0; i < len && o + 3 < outlen; i++) {
        char ch = in[i];
        if (ch == '\\' || ch == '"') {
            out[o++] = '\\';
            out[o++] = ch;
        } else if (ch == '\n') {
            out[o++] = '\\';
            out[o++] = 'n';
        } else {
            out[o++] = ch;
        }
    }
    out[o] = '\0';
}

static void group_metrics(kr_store *s, kr_tgroup *tg)
{
    char t[600], g[600], labels[1300];
    label_escape(t, sizeof t, tg->t->name, tg->t->name_len);
    label_escape(g, sizeof g, tg->g->name, tg->g->name_len);
    snprintf(labels, sizeof labels, "topic=\"%s\",group=\"%s\"", t, g);
    tg->m_cursor = kr_gauge(s->metrics, "krappy_group_cursor", labels,
                            "The group's cursor: its lowest unacknowledged offset.");
    tg->m_pending = kr_gauge(s->metrics, "krappy_group_pending", labels,
                             "Events handed out or awaiting redelivery, not acknowledged.");
    tg->m_lag = kr_gauge(s->metrics, "krappy_group_lag", labels,
                         "The topic's next offset minus the group's cursor.");
    tg->m_members = kr_gauge(s->metrics, "krappy_group_members", labels, "Live members.");
    tg->m_max_deliveries =
        kr_gauge(s->metrics, "krappy_group_max_deliveries", labels,
                 "The most times any unacknowledged event of the group was handed out.");
    tg->m_redeliveries = kr_counter(s->metrics, "krappy_group_redeliveries_total", labels,
                                    "Events handed out again after a disconnect or expiry.");
}

/* Refresh a group's metrics (the group tick). */
static void group_metrics_update(kr_tgroup *tg)
{
    const kr_group *g = tg->g;
    kr_group_stats gs;
    kr_store_group_stats(tg, &gs);
    kr_gauge_set(tg->m_cursor, (int64_t)gs.cursor);
    kr_gauge_set(tg->m_pending, (int64_t)gs.pending);
    kr_gauge_set(tg->m_lag, (int64_t)gs.lag);
    kr_gauge_set(tg->m_members, (int64_t)gs.members);
    kr_gauge_set(tg->m_max_deliveries, (int64_t)kr_group_max_deliveries(g));
    kr_counter_add(tg->m_redeliveries, g->redeliveries - tg->redeliveries_seen);
    tg->redeliveries_seen = g->redeliveries;
}

/* A new group of t at `cursor`, in name order. */
kr_tgroup *kr_store_group_add(kr_store *s, kr_topic *t, const uint8_t *name, size_t len,
                              uint64_t cursor)
{
    bool found;
    size_t at = group_slot(t, name, len, &found);
    if (found)
        return t->groups[at];
    kr_tgroup **n = kr_grow(t->groups, t->n_groups, &t->cap_groups, sizeof *n, 4);
    if (n == NULL)
        return NULL;
    t->groups = n;
    kr_tgroup *tg = calloc(1, sizeof *tg);
    if (tg == NULL)
        return NULL;
    tg->g = kr_group_new(name, len, cursor, s->o.group_window);
    if (tg->g == NULL) {
        free(tg);
        return NULL;
    }
    tg->g->ctx = tg;
    tg->t = t;
    TAILQ_INIT(&tg->waiters);
    group_metrics(s, tg);
    memmove(t->groups + at + 1, t->groups + at, (t->n_groups - at) * sizeof *t->groups);
    t->groups[at] = tg;
    t->n_groups++;
    return tg;
}

void kr_store_groups_free(kr_topic *t)
{
    kr_store_koffsets_free(t);
    for (size_t i = 0; i < t->n_groups; i++) {
        kr_group_free(t->groups[i]->g);
        free(t->groups[i]);
    }
    free(t->groups);
    t->groups = NULL;
    t->n_groups = t->cap_groups = 0;
}

/* ---- start-up ---- */

struct load_ctx {
    kr_store *s;
    kr_topic *t;
    int failed;
};

static int load_one(void *arg, const uint8_t *name, size_t len, uint64_t cursor, uint64_t origin)
{
    struct load_ctx *c = arg;
    kr_topic *t = c->t;
    if (len == 0 || len > KRAPPY_MAX_NAME_BYTES) {
        /* Not a name this version writes: a damaged or foreign view. */
        kr_log(KR_LOG_WARN, "a group cursor record with a name of a wrong length was ignored",
               KR_LOG_STR("topic", t->name), KR_LOG_U64("length", len));
        return 0;
    }
    uint64_t at = cursor;
    if (at > t->next)
        at = t->next; /* a power cut took events the group had acknowledged */
    if (at < t->first)
        at = t->first; /* retention passed the cursor */
    if (at != cursor) {
        /* The name comes from a RocksDB key: not NUL-terminated. */
        char group[KRAPPY_MAX_NAME_BYTES + 1];
        snprintf(group, sizeof group, "%.*s", (int)len, (const char *)name);
        kr_log(KR_LOG_WARN, "group cursor outside the stream moved", KR_LOG_STR("topic", t->name),
               KR_LOG_STR("group", group), KR_LOG_U64("cursor", cursor), KR_LOG_U64("now", at));
    }
    kr_tgroup *tg = kr_store_group_add(c->s, t, name, len, at);
    if (tg == NULL) {
        c->failed = 1;
        return 1;
    }
    tg->g->durable = cursor;
    tg->g->origin = origin < at ? origin : at;
    tg->logged = at;
    return 0;
}

int kr_store_groups_load(kr_store *s, kr_topic *t, char *err, size_t errlen)
{
    if (kr_store_koffsets_load(s, t, err, errlen) < 0)
        return -1;
    struct load_ctx c = {s, t, 0};
    if (kr_view_cursors(s->view, t->name, t->name_len, load_one, &c, err, errlen) < 0)
        return -1;
    if (c.failed) {
        snprintf(err, errlen, "out of memory loading the groups of %s", t->name);
        return -1;
    }
    return 0;
}

/* ---- persistence ---- */

kr_job *kr_store_cursor_job(kr_store *s, kr_tgroup *tg)
{
    kr_job *j = kr_job_new(KR_JOB_CURSOR, tg->t);
    if (j == NULL)
        return NULL;
    j->cursor.tg = tg;
    j->cursor.group = tg->g->name;
    j->cursor.group_len = tg->g->name_len;
    j->cursor.cursor = tg->g->cursor;
    j->cursor.origin = tg->g->origin;
    j->cursor.sync = s->o.fsync_cursors;
    return j;
}

/* Write `cursor` as tg's (see kr_store_group_persist). */
static int persist_at(kr_store *s, kr_tgroup *tg, uint64_t cursor, kr_store_done done, void *arg,
                      kr_store_result *res)
{
    kr_job *j = s->draining ? NULL : kr_store_cursor_job(s, tg);
    if (j == NULL) {
        res->err = KRAPPY_E_STORAGE;
        snprintf(res->msg, sizeof res->msg, "%s",
                 s->draining ? "the store is closing" : "out of memory persisting a group cursor");
        return -1;
    }
    j->cursor.cursor = cursor;
    j->done = done;
    j->arg = arg;
    kr_writer_submit(s->writer, j);
    return 0;
}

int kr_store_group_persist(kr_store *s, kr_tgroup *tg, kr_store_done done, void *arg,
                           kr_store_result *res)
{
    return persist_at(s, tg, tg->g->cursor, done, arg, res);
}

int kr_store_group_apply(kr_store *s, kr_topic *t, const uint8_t *name, size_t len, uint64_t cursor,
                         kr_store_done done, void *arg, kr_store_result *res)
{
    kr_tgroup *tg = kr_store_group(t, name, len);
    if (tg == NULL) {
        tg = kr_store_group_add(s, t, name, len, cursor);
        if (tg == NULL) {
            res->err = KRAPPY_E_STORAGE;
            snprintf(res->msg, sizeof res->msg, "out of memory creating a group");
            return -1;
        }
        kr_log(KR_LOG_INFO, "group created", KR_LOG_STR("topic", t->name),
               KR_LOG_STR("group", tg->g->name), KR_LOG_U64("cursor", cursor));
    } else if (cursor > tg->g->cursor) {
        kr_group_skip_to(tg->g, cursor);
        kr_store_wake_group(s, tg); /* room in the window */
    }
    tg->logged = cursor;
    return persist_at(s, tg, cursor, done, arg, res);
}

/* Completion of a cursor job (store.c dispatches here). */
void kr_store_cursor_done(kr_store *s, kr_job *j)
{
    if (j->cursor.koffset != NULL) {
        kr_store_koffset_done(s, j);
        return;
    }
    kr_tgroup *tg = j->cursor.tg;
    if (j->err == KRAPPY_OK && j->cursor.cursor > tg->g->durable)
        tg->g->durable = j->cursor.cursor;
    if (j->err != KRAPPY_OK)
        s->view_reopen = true; /* its log write failed: the checkpoint tick reopens it
                                  once there is room (not now: cursors handed out
                                  this round would go with it) */
    kr_store_result res = {.err = j->err, .first = j->cursor.cursor};
    snprintf(res.msg, sizeof res.msg, "%s", kr_job_msg(j));
    if (j->done != NULL)
        j->done(j->arg, &res);
}

/* ---- members ---- */

krappy_err kr_store_group_join(kr_store *s, kr_topic *t, const kr_join *a, kr_tgroup **out,
                               kr_member **m, void **taken_from, kr_store_done done, void *arg,
                               char *msg, size_t msglen)
{
    kr_tgroup *tg = kr_store_group(t, a->group, a->glen);
    if (tg == NULL) {
        uint64_t at = t->first;
        if (a->start == KR_START_LATEST) {
            at = t->next;
        } else if (a->start == KR_START_OFFSET) {
            if (a->start_offset < t->first || a->start_offset > t->next) {
                snprintf(msg, msglen,
                         "start offset %llu is outside topic %s's retained range: first %llu, "
                         "next %llu",
                         (unsigned long long)a->start_offset, t->name, (unsigned long long)t->first,
                         (unsigned long long)t->next);
                return KRAPPY_E_OFFSET_OUT_OF_RANGE;
            }
            at = a->start_offset;
        }
        tg = kr_store_group_add(s, t, a->group, a->glen, at);
        if (tg == NULL)
            goto nomem;
        tg->g->durable = UINT64_MAX; /* not written yet: see the job below */
        kr_log(KR_LOG_INFO, "group created", KR_LOG_STR("topic", t->name),
               KR_LOG_STR("group", tg->g->name), KR_LOG_U64("cursor", at));
    }
    kr_member *mem =
        kr_group_join(tg->g, a->member, a->mlen, a->auto_ack, a->ack_wait_ms, a->owner, taken_from);
    if (mem == NULL)
        goto nomem;
    /* The group's record goes (again) through the writer: when the reply
     * is sent, the group survives kill -9. */
    kr_job *j = kr_store_cursor_job(s, tg);
    if (j == NULL) {
        kr_group_leave(tg->g, mem);
        goto nomem;
    }
    j->done = done;
    j->arg = arg;
    kr_writer_submit(s->writer, j);
    *out = tg;
    *m = mem;
    return KRAPPY_OK;
nomem:
    snprintf(msg, msglen, "out of memory registering the consumer");
    return KRAPPY_E_STORAGE;
}

void kr_store_group_leave(kr_store *s, kr_tgroup *tg, kr_member *m)
{
    if (kr_group_leave(tg->g, m) > 0)
        kr_store_wake_group(s, tg);
}

/* ---- POLL ---- */

/*
 * Record what a fetch from `first` handed to m: each range of events
 * pending (or acknowledged, for an auto member), and the offsets between
 * and after them up to r->scanned - removed by compaction - acknowledged
 * at once, so that nobody waits for events that are not there.
 */
static void hand_out_fetched(kr_group *g, kr_member *m, uint64_t first, const kr_fetch_result *r,
                             uint64_t now)
{
    uint64_t at = first;
    for (size_t k = 0; k < r->n_ranges; k++) {
        const kr_fetch_range *x = &r->ranges[k];
        kr_group_hand_out_gap(g, at, x->first);
        kr_group_hand_out(g, m, x->first, x->first + x->count, now);
        at = x->first + x->count;
    }
    kr_group_hand_out_gap(g, at, r->scanned);
}

/*
 * On a compacted topic the offsets from the group's frontier on may all be
 * removed for a long way (a whole rewritten segment): move the frontier to
 * the next event that is there (one FETCH of one event), the offsets
 * skipped acknowledged. @return true when it moved.
 */
static bool skip_removed(kr_store *s, kr_tgroup *tg)
{
    kr_topic *t = tg->t;
    kr_group *g = tg->g;
    kr_fetch_result r;
    char msg[256];
    if (g->frontier >= t->next || g->frontier < t->first ||
        kr_store_fetch(s, t, g->frontier, 1, 0, &r, msg, sizeof msg) != KRAPPY_OK)
        return false;
    uint64_t to = r.count > 0 ? r.ranges[0].first : r.scanned;
    if (to <= g->frontier)
        return false;
    kr_group_hand_out_gap(g, g->frontier, to);
    return true;
}

krappy_err kr_store_poll(kr_store *s, kr_tgroup *tg, kr_member *m, uint64_t max, uint64_t max_bytes,
                         struct evbuffer *events, uint64_t *count, char *msg, size_t msglen)
{
    kr_topic *t = tg->t;
    kr_group *g = tg->g;
    *count = 0;
    if (g->cursor < t->first) {
        uint64_t skipped = kr_group_skip_to(g, t->first);
        if (skipped > 0) {
            kr_log(KR_LOG_WARN, "retention removed events a group had not acknowledged",
                   KR_LOG_STR("topic", t->name), KR_LOG_STR("group", g->name),
                   KR_LOG_U64("skipped", skipped));
        }
    }
    if (max > s->o.max_events)
        max = s->o.max_events;
    uint64_t cap = (uint64_t)s->o.max_frame - 128;
    uint64_t budget = max_bytes == 0 || max_bytes > cap ? cap : max_bytes, used = 0;
    if (max_bytes == 0)
        max = 1;
    kr_grant grants[KR_POLL_MAX_GRANTS];
    uint64_t now = kr_mono_ms();
    /* Twice at most: when the first round found only removed offsets, once
     * more past them. */
    for (int round = 0; round < 2; round++) {
        size_t n = kr_group_take(g, t->next, max, grants, KR_POLL_MAX_GRANTS);
        for (size_t i = 0; i < n && used < budget; i++) {
            uint64_t want = grants[i].next - grants[i].first;
            kr_fetch_result r;
            krappy_err rc = kr_store_fetch_range(s, t, grants[i].first, grants[i].next, want,
                                                 budget - used, &r, msg, msglen);
            if (rc != KRAPPY_OK)
                return *count > 0 ? KRAPPY_OK : KRAPPY_E_STORAGE;
            if (*count > 0 && used + r.bytes > budget)
                break;
            if (r.count > 0 && kr_store_fetch_emit(s, &r, events, msg, msglen) < 0)
                return KRAPPY_E_STORAGE;
            hand_out_fetched(g, m, grants[i].first, &r, now);
            *count += r.count;
            used += r.bytes;
            if (r.scanned < grants[i].next || used >= budget)
                break;
        }
        if (*count > 0 || !skip_removed(s, tg))
            break;
    }
    return KRAPPY_OK;
}

void kr_store_groups_metrics(kr_topic *t)
{
    for (size_t i = 0; i < t->n_groups; i++)
        group_metrics_update(t->groups[i]);
}

/* ---- deadlines and retention ---- */

void kr_store_groups_tick(kr_store *s, kr_topic *t)
{
    uint64_t now = kr_mono_ms(), next;
    for (size_t i = 0; i < t->n_groups; i++) {
        kr_tgroup *tg = t->groups[i];
        if (kr_group_expire(tg->g, now, &next) > 0)
            kr_store_wake_group(s, tg);
        group_metrics_update(tg);
    }
}

void kr_store_groups_retained(kr_store *s, kr_topic *t)
{
    for (size_t i = 0; i < t->n_groups; i++) {
        kr_tgroup *tg = t->groups[i];
        if (tg->g->cursor >= t->first)
            continue;
        uint64_t skipped = kr_group_skip_to(tg->g, t->first);
        kr_log(KR_LOG_WARN, "retention moved a group cursor past unacknowledged events",
               KR_LOG_STR("topic", t->name), KR_LOG_STR("group", tg->g->name),
               KR_LOG_U64("skipped", skipped), KR_LOG_U64("cursor", t->first));
        kr_counter_add(s->m_group_skipped, skipped);
        kr_store_result res;
        if (kr_store_group_persist(s, tg, NULL, NULL, &res) < 0)
            kr_log(KR_LOG_ERROR,
                   "cannot persist a group cursor moved by retention; it moves "
                   "again at the next start",
                   KR_LOG_STR("topic", t->name), KR_LOG_STR("group", tg->g->name),
                   KR_LOG_STR("reason", res.msg));
    }
}
