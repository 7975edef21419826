/*
 * store/store_scan.c - SCAN cursors (see store.h): a cursor holds a RocksDB
 * snapshot of the view and, while a checkpoint has not yet taken the
 * topic's overlays in, a sorted copy of their entries, merged with the
 * view's keys page by page; cursors are named by a random token and expire
 * when left idle.
 */
#include "store/store_int.h"

#include <stdlib.h>
#include <string.h>
#include <sys/random.h>

#include "util/clock.h"
#include "util/log.h"

static uint8_t *dup_bytes(const uint8_t *p, size_t n)
{
    uint8_t *d = malloc(n ? n : 1);
    if (d != NULL && n > 0)
        memcpy(d, p, n);
    return d;
}

static void cursor_free(kr_store *s, kr_scan_cursor *c)
{
    TAILQ_REMOVE(&s->cursors, c, link);
    s->n_cursors--;
    kr_view_snapshot_release(s->view, c->snap);
    kr_overlay_free(c->ov);
    free(c->prefix);
    free(c->after);
    free(c);
}

static kr_scan_cursor *cursor_new(kr_store *s, kr_topic *t, const uint8_t *prefix, size_t plen,
                                  bool has_after, const uint8_t *after, size_t alen)
{
    kr_scan_cursor *c = calloc(1, sizeof *c);
    if (c == NULL)
        return NULL;
    if (getrandom(c->token, sizeof c->token, 0) != (ssize_t)sizeof c->token) {
        uint64_t x = kr_mono_ns() ^ (uint64_t)(uintptr_t)c;
        memcpy(c->token, &x, sizeof x);
    }
    c->t = t;
    c->prefix = dup_bytes(prefix, plen);
    c->plen = plen;
    c->has_after = has_after;
    c->after = dup_bytes(after, alen);
    c->alen = c->after_cap = alen;
    c->snap = kr_view_snapshot(s->view);
    c->snapshot = t->marker;
    c->expires_ns = kr_mono_ns() + (uint64_t)KR_SCAN_CURSOR_MS * 1000000;
    if (c->prefix == NULL || c->after == NULL || c->snap == NULL) {
        if (c->snap != NULL)
            kr_view_snapshot_release(s->view, c->snap);
        free(c->prefix);
        free(c->after);
        free(c);
        return NULL;
    }
    TAILQ_INSERT_HEAD(&s->cursors, c, link);
    if (++s->n_cursors > KR_SCAN_CURSORS_MAX)
        cursor_free(s, TAILQ_LAST(&s->cursors, kr_cursor_list));
    return c;
}

static void scan_ready(kr_store *s, kr_scan_wait *w)
{
    kr_store_result res = {.err = KRAPPY_OK};
    kr_scan_cursor *c = cursor_new(s, w->t, w->prefix, w->plen, w->has_after, w->after, w->alen);
    if (c == NULL) {
        res.err = KRAPPY_E_STORAGE;
        snprintf(res.msg, sizeof res.msg, "out of memory starting a scan");
    }
    w->ready(w->arg, c, &res);
}

/* Copying the overlays' entries under a scan's prefix into its own. */
struct ov_copy {
    kr_overlay *to;
    const uint8_t *prefix;
    size_t plen;
    int failed;
};

static int copy_entry(void *arg, const kr_ov_entry *e)
{
    struct ov_copy *oc = arg;
    if (e->key_len < oc->plen || (oc->plen > 0 && memcmp(e->key, oc->prefix, oc->plen) != 0))
        return 0;
    if (kr_overlay_put(oc->to, e) < 0) {
        oc->failed = 1;
        return 1;
    }
    return 0;
}

/*
 * No checkpoint could be written for a scan (a full disk, a failing view):
 * it is answered anyway, reads never waiting on a write. Its view is the
 * database as its last checkpoint left it (the snapshot: offsets below the
 * marker) and, over it, a private copy of the overlays' entries under the
 * scan's prefix (the offsets from the marker to the topic's next): together
 * exactly the events below `snapshot`, for as long as the cursor lives. The
 * copy costs the memory of the keys it holds; only a failing disk makes one.
 * @return the cursor, or NULL with res filled.
 */
static kr_scan_cursor *cursor_overlaid(kr_store *s, kr_scan_wait *w, kr_store_result *res)
{
    kr_topic *t = w->t;
    struct ov_copy oc = {.to = kr_overlay_new(), .prefix = w->prefix, .plen = w->plen};
    if (oc.to != NULL && t->frozen != NULL)
        kr_overlay_foreach(t->frozen, copy_entry, &oc); /* older first */
    if (oc.to != NULL && !oc.failed)
        kr_overlay_foreach(t->active, copy_entry, &oc);
    kr_scan_cursor *c = NULL;
    if (oc.to != NULL && !oc.failed)
        c = cursor_new(s, t, w->prefix, w->plen, w->has_after, w->after, w->alen);
    if (c == NULL) {
        kr_overlay_free(oc.to);
        res->err = KRAPPY_E_STORAGE;
        snprintf(res->msg, sizeof res->msg,
                 "the scan could not start: out of memory copying the newest keys");
        return NULL;
    }
    c->ov = oc.to;
    c->snapshot = t->next;
    return c;
}

void kr_store_scan_start(kr_store *s, kr_topic *t, const uint8_t *prefix, size_t plen,
                         bool has_after, const uint8_t *after, size_t alen,
                         void (*ready)(void *arg, kr_scan_cursor *cur, const kr_store_result *res),
                         void *arg)
{
    kr_scan_wait w = {.t = t,
                      .target = t->next,
                      .prefix = (uint8_t *)prefix,
                      .plen = plen,
                      .has_after = has_after,
                      .after = (uint8_t *)after,
                      .alen = alen,
                      .ready = ready,
                      .arg = arg};
    if (t->marker >= t->next && t->frozen == NULL) {
        scan_ready(s, &w);
        return;
    }
    /* The view lacks recent events: checkpoint first, then snapshot. */
    kr_scan_wait *pw = malloc(sizeof *pw);
    if (pw != NULL) {
        *pw = w;
        pw->prefix = dup_bytes(prefix, plen);
        pw->after = dup_bytes(after, alen);
    }
    if (pw == NULL || pw->prefix == NULL || pw->after == NULL) {
        if (pw != NULL) {
            free(pw->prefix);
            free(pw->after);
            free(pw);
        }
        kr_store_result res = {.err = KRAPPY_E_STORAGE};
        snprintf(res.msg, sizeof res.msg, "out of memory starting a scan");
        ready(arg, NULL, &res);
        return;
    }
    TAILQ_INSERT_TAIL(&s->scan_waits, pw, link);
    kr_counter_add(s->m_scan_ckpts, 1);
    kr_store_checkpoint(s);
}

void kr_store_scan_checkpointed(kr_store *s, bool ok, const char *msg)
{
    struct kr_scan_wait_list todo;
    TAILQ_INIT(&todo);
    TAILQ_CONCAT(&todo, &s->scan_waits, link);
    bool again = false;
    kr_scan_wait *w;
    while ((w = TAILQ_FIRST(&todo)) != NULL) {
        TAILQ_REMOVE(&todo, w, link);
        if (!ok) {
            kr_store_result res = {.err = KRAPPY_OK};
            kr_scan_cursor *c = cursor_overlaid(s, w, &res);
            if (c == NULL)
                kr_log(KR_LOG_WARN, "a scan could not start after a failed checkpoint",
                       KR_LOG_STR("topic", w->t->name), KR_LOG_STR("checkpoint", msg),
                       KR_LOG_STR("reason", res.msg));
            w->ready(w->arg, c, &res);
        } else if (w->t->marker >= w->target && w->t->frozen == NULL) {
            scan_ready(s, w);
        } else {
            TAILQ_INSERT_TAIL(&s->scan_waits, w, link);
            again = true;
            continue;
        }
        free(w->prefix);
        free(w->after);
        free(w);
    }
    if (again)
        kr_store_checkpoint(s);
}

kr_scan_cursor *kr_store_scan_find(kr_store *s, const uint8_t *token, size_t len)
{
    if (len != KR_SCAN_CURSOR_BYTES)
        return NULL;
    uint64_t now = kr_mono_ns();
    kr_scan_cursor *c;
    TAILQ_FOREACH(c, &s->cursors, link)
    {
        if (memcmp(c->token, token, KR_SCAN_CURSOR_BYTES) == 0)
            return c->expires_ns > now ? c : NULL;
    }
    return NULL;
}

struct page_ctx {
    kr_scan_cursor *c;
    kr_scan_fn fn;
    void *arg;
    int oom;
};

static int page_entry(void *arg, const uint8_t *key, size_t klen, const uint8_t *event, size_t elen)
{
    struct page_ctx *p = arg;
    kr_scan_cursor *c = p->c;
    int rc = p->fn(p->arg, key, klen, event, elen);
    if (rc != 0)
        return rc; /* not taken: the next page starts with this key */
    if (klen > c->after_cap) {
        uint8_t *n = realloc(c->after, klen);
        if (n == NULL) {
            p->oom = 1;
            return 1;
        }
        c->after = n;
        c->after_cap = klen;
    }
    memcpy(c->after, key, klen);
    c->alen = klen;
    c->has_after = true;
    return 0;
}

/* Unsigned bytewise order of keys, a prefix first. */
static int key_cmp(const uint8_t *a, size_t alen, const uint8_t *b, size_t blen)
{
    int c = memcmp(a, b, alen < blen ? alen : blen);
    return c != 0 ? c : (alen > blen) - (alen < blen);
}

/*
 * A page of a cursor that holds overlay entries (cursor_overlaid): the
 * view's keys and the overlay's merged in key order, the overlay's entry
 * winning on a key both have and its tombstones hiding the view's.
 */
typedef struct merge {
    struct page_ctx p;      /* gives an entry to the caller (page_entry) */
    const kr_ov_entry **ov; /* the overlay's entries after `after`, in order */
    size_t n, i;
    size_t limit, given;
    bool stopped; /* the page is full, or the caller took no more */
} merge;

/* Give an entry unless the page is full. @return 0 taken, 1 stop. */
static int merge_give(merge *m, const uint8_t *key, size_t klen, const uint8_t *ev, size_t elen)
{
    if (m->given >= m->limit || page_entry(&m->p, key, klen, ev, elen) != 0) {
        m->stopped = true;
        return 1;
    }
    m->given++;
    return 0;
}

/* The overlay's entries that sort before `key` (NULL: all that remain).
 * @return 0, or 1 when the page ended. */
static int merge_before(merge *m, const uint8_t *key, size_t klen)
{
    while (m->i < m->n) {
        const kr_ov_entry *e = m->ov[m->i];
        if (key != NULL && key_cmp(e->key, e->key_len, key, klen) >= 0)
            return 0;
        if (!e->tombstone && merge_give(m, e->key, e->key_len, e->event, e->ev_len) != 0)
            return 1;
        m->i++;
    }
    return 0;
}

static int merge_view_entry(void *arg, const uint8_t *key, size_t klen, const uint8_t *ev,
                            size_t elen)
{
    merge *m = arg;
    if (merge_before(m, key, klen) != 0)
        return 1;
    if (m->i < m->n && key_cmp(m->ov[m->i]->key, m->ov[m->i]->key_len, key, klen) == 0) {
        const kr_ov_entry *e = m->ov[m->i];
        if (!e->tombstone && merge_give(m, e->key, e->key_len, e->event, e->ev_len) != 0)
            return 1;
        m->i++;
        return 0; /* the view's older entry of the key is hidden */
    }
    return merge_give(m, key, klen, ev, elen);
}

static long scan_page_merged(kr_store *s, kr_scan_cursor *c, size_t limit, kr_scan_fn fn, void *arg,
                             bool *more, char *msg, size_t msglen)
{
    merge m = {.p = {c, fn, arg, 0}, .limit = limit};
    m.ov = malloc((limit + 1) * sizeof *m.ov);
    uint8_t *after = dup_bytes(c->after, c->alen);
    long n = -1;
    bool vmore = false;
    if (m.ov == NULL || after == NULL) {
        snprintf(msg, msglen, "out of memory continuing a scan");
        goto out;
    }
    /* One more than a page: whether the overlay has more than this page. */
    m.n =
        kr_overlay_sorted(c->ov, c->prefix, c->plen, c->has_after, after, c->alen, limit + 1, m.ov);
    n = kr_view_scan(s->view, c->snap, c->t->name, c->t->name_len, c->prefix, c->plen, c->has_after,
                     after, c->alen, limit, merge_view_entry, &m, &vmore, msg, msglen);
    if (n >= 0 && !m.stopped && !vmore)
        (void)merge_before(&m, NULL, 0);
    *more = m.stopped || vmore || m.i < m.n || m.n == limit + 1;
    if (m.p.oom) {
        snprintf(msg, msglen, "out of memory continuing a scan");
        n = -1;
    }
out:
    free(m.ov);
    free(after);
    return n < 0 ? -1 : (long)m.given;
}

long kr_store_scan_page(kr_store *s, kr_scan_cursor *c, size_t limit, kr_scan_fn fn, void *arg,
                        bool *more, char *msg, size_t msglen)
{
    if (c->ov != NULL) {
        long n = scan_page_merged(s, c, limit, fn, arg, more, msg, msglen);
        c->expires_ns = kr_mono_ns() + (uint64_t)KR_SCAN_CURSOR_MS * 1000000;
        return n;
    }
    struct page_ctx p = {c, fn, arg, 0};
    /* The callback overwrites c->after as it goes: scan from a copy. */
    uint8_t *after = dup_bytes(c->after, c->alen);
    if (after == NULL) {
        snprintf(msg, msglen, "out of memory continuing a scan");
        return -1;
    }
    long n = kr_view_scan(s->view, c->snap, c->t->name, c->t->name_len, c->prefix, c->plen,
                          c->has_after, after, c->alen, limit, page_entry, &p, more, msg, msglen);
    free(after);
    if (p.oom) {
        snprintf(msg, msglen, "out of memory continuing a scan");
        return -1;
    }
    c->expires_ns = kr_mono_ns() + (uint64_t)KR_SCAN_CURSOR_MS * 1000000;
    return n;
}

const uint8_t *kr_scan_token(const kr_scan_cursor *c)
{
    return c->token;
}

uint64_t kr_scan_snapshot(const kr_scan_cursor *c)
{
    return c->snapshot;
}

kr_topic *kr_scan_topic(const kr_scan_cursor *c)
{
    return c->t;
}

void kr_store_scan_end(kr_store *s, kr_scan_cursor *c)
{
    cursor_free(s, c);
}

void kr_store_cursors_expire(kr_store *s, bool all)
{
    uint64_t now = kr_mono_ns();
    kr_scan_cursor *c, *next;
    for (c = TAILQ_FIRST(&s->cursors); c != NULL; c = next) {
        next = TAILQ_NEXT(c, link);
        if (all || c->expires_ns <= now)
            cursor_free(s, c);
    }
}
