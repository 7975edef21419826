/*
 * store/group.c - the window of a consumer group as runs of offsets.
 *
 * Invariant: runs are sorted, adjacent, non-empty and cover exactly
 * [cursor, frontier); the first run is never ACKED (acknowledged runs at the
 * front are dropped and the cursor moves past them). Every operation splits
 * runs at the offsets it touches, changes their state, then merges
 * neighbours that became equal again, so the number of runs stays near the
 * number of distinct hand-outs, not the number of offsets.
 */
#include "store/group.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

kr_group *kr_group_new(const uint8_t *name, size_t len, uint64_t cursor, uint64_t max_window)
{
    kr_group *g = calloc(1, sizeof *g);
    if (g == NULL)
        return NULL;
    memcpy(g->name, name, len);
    g->name[len] = '\0';
    g->name_len = len;
    g->cursor = g->frontier = g->durable = g->origin = cursor;
    g->max_window = max_window ? max_window : KR_GROUP_DEFAULT_WINDOW;
    TAILQ_INIT(&g->members);
    return g;
}

void kr_group_free(kr_group *g)
{
    if (g == NULL)
        return;
    kr_member *m;
    while ((m = TAILQ_FIRST(&g->members)) != NULL) {
        TAILQ_REMOVE(&g->members, m, link);
        free(m);
    }
    free(g->runs);
    free(g);
}

/* ---- the run list ---- */

static int reserve_runs(kr_group *g, size_t more)
{
    if (g->n_runs + more <= g->cap_runs)
        return 0;
    size_t cap = g->cap_runs ? g->cap_runs * 2 : 16;
    while (cap < g->n_runs + more)
        cap *= 2;
    kr_run *r = realloc(g->runs, cap * sizeof *r);
    if (r == NULL)
        return -1;
    g->runs = r;
    g->cap_runs = cap;
    return 0;
}

/* Index of the run holding offset `off` (cursor <= off < frontier). */
static size_t find_run(const kr_group *g, uint64_t off)
{
    size_t lo = 0, hi = g->n_runs;
    while (hi - lo > 1) {
        size_t mid = (lo + hi) / 2;
        if (g->runs[mid].first <= off)
            lo = mid;
        else
            hi = mid;
    }
    return lo;
}

/*
 * Make `off` the start of a run (when cursor < off < frontier) and return
 * the index of that run; n_runs when off == frontier. -1 on ENOMEM.
 */
static long split_at(kr_group *g, uint64_t off)
{
    if (off >= g->frontier)
        return (long)g->n_runs;
    size_t i = find_run(g, off);
    if (g->runs[i].first == off)
        return (long)i;
    if (reserve_runs(g, 1) < 0)
        return -1;
    memmove(g->runs + i + 2, g->runs + i + 1, (g->n_runs - i - 1) * sizeof *g->runs);
    g->runs[i + 1] = g->runs[i];
    g->runs[i].next = off;
    g->runs[i + 1].first = off;
    g->n_runs++;
    return (long)i + 1;
}

static bool same_state(const kr_run *a, const kr_run *b)
{
    if (a->state != b->state)
        return false;
    if (a->state == KR_RUN_ACKED)
        return true;
    if (a->deliveries != b->deliveries)
        return false;
    return a->state == KR_RUN_REDELIVER ||
           (a->member == b->member && a->deadline_ms == b->deadline_ms);
}

/* Merge equal neighbours and drop acknowledged runs at the front. */
static void normalize(kr_group *g)
{
    size_t w = 0;
    for (size_t i = 0; i < g->n_runs; i++) {
        if (w > 0 && same_state(&g->runs[w - 1], &g->runs[i]))
            g->runs[w - 1].next = g->runs[i].next;
        else
            g->runs[w++] = g->runs[i];
    }
    g->n_runs = w;
    size_t drop = 0;
    while (drop < g->n_runs && g->runs[drop].state == KR_RUN_ACKED)
        drop++;
    if (drop > 0) {
        g->cursor = drop < g->n_runs ? g->runs[drop].first : g->frontier;
        memmove(g->runs, g->runs + drop, (g->n_runs - drop) * sizeof *g->runs);
        g->n_runs -= drop;
    }
    if (g->n_runs == 0)
        g->cursor = g->frontier;
}

/* ---- members ---- */

kr_member *kr_group_member(kr_group *g, const uint8_t *name, size_t len)
{
    kr_member *m;
    TAILQ_FOREACH(m, &g->members, link)
    {
        if (m->name_len == len && memcmp(m->name, name, len) == 0)
            return m;
    }
    return NULL;
}

kr_member *kr_group_join(kr_group *g, const uint8_t *name, size_t len, bool auto_ack,
                         uint64_t ack_wait_ms, void *owner, void **taken_from)
{
    *taken_from = NULL;
    kr_member *m = calloc(1, sizeof *m);
    if (m == NULL)
        return NULL;
    if (name != NULL) {
        memcpy(m->name, name, len);
        m->name_len = len;
    } else {
        /* A name no member has: "member-N". */
        do {
            m->name_len = (size_t)snprintf(m->name, sizeof m->name, "member-%llu",
                                           (unsigned long long)++g->member_seq);
        } while (kr_group_member(g, (const uint8_t *)m->name, m->name_len) != NULL);
    }
    m->name[m->name_len] = '\0';
    m->group = g;
    m->auto_ack = auto_ack;
    m->ack_wait_ms = ack_wait_ms;
    m->owner = owner;
    kr_member *old = kr_group_member(g, (const uint8_t *)m->name, m->name_len);
    if (old != NULL) {
        /* Take-over: the pending events and their deadlines come along. */
        for (size_t i = 0; i < g->n_runs; i++)
            if (g->runs[i].state == KR_RUN_PENDING && g->runs[i].member == old)
                g->runs[i].member = m;
        *taken_from = old->owner;
        TAILQ_REMOVE(&g->members, old, link);
        g->n_members--;
        free(old);
        normalize(g);
    }
    TAILQ_INSERT_TAIL(&g->members, m, link);
    g->n_members++;
    return m;
}

uint64_t kr_group_leave(kr_group *g, kr_member *m)
{
    uint64_t back = 0;
    for (size_t i = 0; i < g->n_runs; i++) {
        kr_run *r = &g->runs[i];
        if (r->state == KR_RUN_PENDING && r->member == m) {
            r->state = KR_RUN_REDELIVER;
            r->member = NULL;
            r->deadline_ms = 0;
            back += r->next - r->first;
        }
    }
    normalize(g);
    TAILQ_REMOVE(&g->members, m, link);
    g->n_members--;
    free(m);
    return back;
}

/* ---- handing out ---- */

size_t kr_group_take(kr_group *g, uint64_t end, uint64_t max, kr_grant *out, size_t max_grants)
{
    size_t n = 0, splits = 0;
    uint64_t left = max;
    for (size_t i = 0; i < g->n_runs && left > 0 && n < max_grants; i++) {
        const kr_run *r = &g->runs[i];
        if (r->state != KR_RUN_REDELIVER)
            continue;
        uint64_t len = r->next - r->first;
        if (len > left)
            len = left;
        out[n++] = (kr_grant){r->first, r->first + len, true};
        left -= len;
        splits += 2; /* handing out part of a run cuts it at both ends */
    }
    if (left > 0 && n < max_grants && g->frontier < end) {
        uint64_t used = g->frontier - g->cursor;
        uint64_t room = used < g->max_window ? g->max_window - used : 0;
        uint64_t len = end - g->frontier;
        if (len > room)
            len = room;
        if (len > left)
            len = left;
        if (len > 0) {
            out[n++] = (kr_grant){g->frontier, g->frontier + len, false};
            splits += 1; /* one new run */
        }
    }
    /* Room for the runs kr_group_hand_out will add, taken now: a slice
     * sent to a client must be recorded, so recording cannot fail. */
    if (n > 0 && reserve_runs(g, splits) < 0)
        return 0;
    return n;
}

static void hand_out_as(kr_group *g, const kr_run *t, uint64_t first, uint64_t next);

void kr_group_hand_out(kr_group *g, kr_member *m, uint64_t first, uint64_t next, uint64_t now_ms)
{
    /* Saturating: a client's ack_wait_ms may be up to 2^64-1, and a wrapped
     * deadline would lie in the past (expired at once, not never). */
    uint64_t deadline = m->ack_wait_ms > UINT64_MAX - now_ms ? UINT64_MAX : now_ms + m->ack_wait_ms;
    kr_run tmpl = {.state = m->auto_ack ? KR_RUN_ACKED : KR_RUN_PENDING,
                   .member = m->auto_ack ? NULL : m,
                   .deadline_ms = m->auto_ack ? 0 : deadline};
    hand_out_as(g, &tmpl, first, next);
}

void kr_group_hand_out_gap(kr_group *g, uint64_t first, uint64_t next)
{
    kr_run tmpl = {.state = KR_RUN_ACKED};
    hand_out_as(g, &tmpl, first, next);
}

/* Record offsets [first, next) handed out in the state of tmpl. */
static void hand_out_as(kr_group *g, const kr_run *t, uint64_t first, uint64_t next)
{
    /* The runs needed were reserved by kr_group_take; the checks below
     * cannot fail for its slices. */
    if (next <= first)
        return;
    kr_run tmpl = *t;
    if (first >= g->frontier) {
        /* New offsets, at the frontier. */
        if (reserve_runs(g, 1) < 0)
            return;
        kr_run r = tmpl;
        r.first = g->frontier;
        r.next = next;
        r.deliveries = 1;
        g->runs[g->n_runs++] = r;
        g->frontier = next;
    } else {
        /* A redelivery inside the window. */
        long a = split_at(g, first), b = split_at(g, next);
        if (a < 0 || b < 0)
            return;
        for (long i = a; i < b; i++) {
            kr_run *r = &g->runs[i];
            uint32_t d = r->deliveries + 1;
            uint64_t f = r->first, x = r->next;
            if (r->state == KR_RUN_REDELIVER)
                g->redeliveries += x - f;
            *r = tmpl;
            r->first = f;
            r->next = x;
            r->deliveries = d;
        }
    }
    normalize(g);
}

/* ---- acknowledgements ---- */

static void set_acked(kr_group *g, uint64_t first, uint64_t next, uint64_t *count)
{
    long a = split_at(g, first), b = split_at(g, next);
    if (a < 0 || b < 0)
        return;
    for (long i = a; i < b; i++) {
        kr_run *r = &g->runs[i];
        if (r->state != KR_RUN_ACKED) {
            *count += r->next - r->first;
            r->state = KR_RUN_ACKED;
            r->member = NULL;
        }
    }
}

void kr_group_ack_upto(kr_group *g, kr_member *m, uint64_t upto, kr_ack_result *res)
{
    memset(res, 0, sizeof *res);
    /* Only the run holding `upto` may be cut: room for that first, so the
     * ACK is applied whole or not at all. */
    if (reserve_runs(g, 1) < 0) {
        res->err = KRAPPY_E_STORAGE;
        return;
    }
    for (size_t i = 0; i < g->n_runs && g->runs[i].first < upto; i++) {
        kr_run *r = &g->runs[i];
        if (r->state != KR_RUN_PENDING || r->member != m)
            continue;
        uint64_t first = r->first, next = r->next < upto ? r->next : upto;
        set_acked(g, first, next, &res->acked);
    }
    normalize(g);
}

/* 1 when offset o (in the window) is acknowledged already. */
static bool is_acked(const kr_group *g, uint64_t o)
{
    return o < g->cursor || g->runs[find_run(g, o)].state == KR_RUN_ACKED;
}

/*
 * The runs kr_group_ack_offsets will cut for the sorted offsets: each one
 * not yet acknowledged is cut out at o and at o + 1, where that is inside
 * the window and not already a run boundary. Counted first so the room
 * can be taken before anything changes.
 */
static size_t cuts_needed(const kr_group *g, const uint64_t *sorted, size_t n)
{
    size_t cuts = 0;
    uint64_t counted = 0; /* the last cut counted, + 1 (0: none) */
    for (size_t i = 0; i < n; i++) {
        uint64_t o = sorted[i];
        if ((i > 0 && sorted[i - 1] == o) || o >= g->frontier || is_acked(g, o))
            continue;
        const uint64_t at[2] = {o, o + 1}; /* o < frontier: no overflow */
        for (int k = 0; k < 2; k++) {
            uint64_t p = at[k];
            if (counted != 0 && p == counted - 1)
                continue;
            if (p > g->cursor && p < g->frontier && g->runs[find_run(g, p)].first != p) {
                cuts++;
                counted = p + 1;
            }
        }
    }
    return cuts;
}

static int cmp_u64(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x < y ? -1 : x > y;
}

void kr_group_ack_offsets(kr_group *g, const uint64_t *offsets, size_t n, kr_ack_result *res)
{
    memset(res, 0, sizeof *res);
    /* All or nothing: check every offset first. */
    for (size_t i = 0; i < n; i++) {
        if ((offsets[i] >= g->frontier && offsets[i] >= g->forgotten) || offsets[i] < g->origin) {
            res->err = KRAPPY_E_INVALID_ARGUMENT;
            res->bad_offset = offsets[i];
            return;
        }
    }
    uint64_t *sorted = malloc((n ? n : 1) * sizeof *sorted);
    res->ignored = malloc((n ? n : 1) * sizeof *res->ignored);
    if (sorted == NULL || res->ignored == NULL) {
        free(sorted);
        free(res->ignored);
        res->ignored = NULL;
        res->err = KRAPPY_E_STORAGE;
        return;
    }
    if (n > 0) /* offsets may be NULL when n == 0 (memcpy(_, NULL, 0) is UB) */
        memcpy(sorted, offsets, n * sizeof *sorted);
    qsort(sorted, n, sizeof *sorted, cmp_u64);
    if (reserve_runs(g, cuts_needed(g, sorted, n)) < 0) {
        free(sorted);
        free(res->ignored);
        res->ignored = NULL;
        res->err = KRAPPY_E_STORAGE;
        return;
    }
    for (size_t i = 0; i < n; i++) {
        uint64_t o = sorted[i];
        if (i > 0 && sorted[i - 1] == o)
            continue;                           /* listed once */
        if (o >= g->frontier || is_acked(g, o)) /* beyond it: forgotten by a seek */
            res->ignored[res->n_ignored++] = o;
        else
            set_acked(g, o, o + 1, &res->acked);
    }
    free(sorted);
    normalize(g);
}

/* ---- time and retention ---- */

uint64_t kr_group_expire(kr_group *g, uint64_t now_ms, uint64_t *next_deadline_ms)
{
    uint64_t back = 0, next = UINT64_MAX;
    for (size_t i = 0; i < g->n_runs; i++) {
        kr_run *r = &g->runs[i];
        if (r->state != KR_RUN_PENDING)
            continue;
        if (r->deadline_ms <= now_ms) {
            r->state = KR_RUN_REDELIVER;
            r->member = NULL;
            r->deadline_ms = 0;
            back += r->next - r->first;
        } else if (r->deadline_ms < next) {
            next = r->deadline_ms;
        }
    }
    if (back > 0)
        normalize(g);
    *next_deadline_ms = next;
    return back;
}

/* Everything below `first` goes, so the run holding it is trimmed rather
 * than cut in two: nothing to allocate. */
uint64_t kr_group_skip_to(kr_group *g, uint64_t first)
{
    if (first <= g->cursor)
        return 0;
    uint64_t skipped = 0;
    size_t keep = g->n_runs; /* the first run kept */
    if (first < g->frontier) {
        keep = find_run(g, first);
        if (g->runs[keep].state != KR_RUN_ACKED)
            skipped += first - g->runs[keep].first;
        g->runs[keep].first = first;
    }
    for (size_t i = 0; i < keep; i++)
        if (g->runs[i].state != KR_RUN_ACKED)
            skipped += g->runs[i].next - g->runs[i].first;
    if (keep > 0) { /* a group with nothing handed out has no runs array */
        memmove(g->runs, g->runs + keep, (g->n_runs - keep) * sizeof *g->runs);
        g->n_runs -= keep;
    }
    g->cursor = first;
    if (g->frontier < first)
        g->frontier = first;
    g->skipped += skipped;
    normalize(g);
    return skipped;
}

uint64_t kr_group_seek(kr_group *g, uint64_t to)
{
    uint64_t forgotten = kr_group_pending(g);
    if (g->frontier > g->forgotten)
        g->forgotten = g->frontier;
    g->n_runs = 0;
    g->cursor = g->frontier = to;
    if (to < g->origin)
        g->origin = to; /* offsets from `to` on may be handed out (and ACKed) now */
    return forgotten;
}

uint64_t kr_group_member_pending(const kr_group *g, const kr_member *m)
{
    uint64_t n = 0;
    for (size_t i = 0; i < g->n_runs; i++)
        if (g->runs[i].state == KR_RUN_PENDING && g->runs[i].member == m)
            n += g->runs[i].next - g->runs[i].first;
    return n;
}

uint64_t kr_group_pending(const kr_group *g)
{
    uint64_t n = 0;
    for (size_t i = 0; i < g->n_runs; i++)
        if (g->runs[i].state != KR_RUN_ACKED)
            n += g->runs[i].next - g->runs[i].first;
    return n;
}

bool kr_group_has_redelivery(const kr_group *g)
{
    for (size_t i = 0; i < g->n_runs; i++)
        if (g->runs[i].state == KR_RUN_REDELIVER)
            return true;
    return false;
}

uint32_t kr_group_max_deliveries(const kr_group *g)
{
    uint32_t m = 0;
    for (size_t i = 0; i < g->n_runs; i++)
        if (g->runs[i].state != KR_RUN_ACKED && g->runs[i].deliveries > m)
            m = g->runs[i].deliveries;
    return m;
}
