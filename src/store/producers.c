/*
 * store/producers.c - idempotent producers' state (see producers.h).
 *
 * A table finds its producers through two open-addressing arrays with
 * linear probing - one hashed by id, one by pid - of pointers to the
 * producers, each at most half full; a removal shifts the entries of its
 * probe run back instead of leaving a marker. The id hash is seeded per set
 * (getrandom), so that ids chosen to collide cost a client its own topic's
 * speed at most, and only until a restart.
 */
#include "store/producers.h"

#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>

struct kr_prod_set {
    size_t max;
    uint64_t keep_ms;
    size_t count;
    uint64_t seed;
    struct kr_producer_list lru; /* least recently active first */
};

/* One of a table's two indexes: cap slots (a power of two), n used. */
typedef struct pindex {
    kr_producer **slot;
    size_t cap, n;
    bool by_id; /* hashed by id, else by pid */
} pindex;

struct kr_prod_table {
    kr_prod_set *set;
    void *owner;
    pindex by_id, by_pid;
    uint64_t next_pid;
    struct kr_producer_list dirty;
};

/* ---- the rules ---- */

static kr_prod_batch *win_at(kr_producer *p, size_t i)
{
    return &p->win[(p->head + i) % KR_PRODUCER_WINDOW];
}

static const kr_prod_batch *cwin_at(const kr_producer *p, size_t i)
{
    return &p->win[(p->head + i) % KR_PRODUCER_WINDOW];
}

kr_prod_verdict kr_producer_check(const kr_producer *p, uint32_t epoch, uint64_t seq,
                                  uint64_t count, const kr_prod_batch **hit, uint64_t *expected)
{
    if (expected != NULL)
        *expected = p->next_seq;
    if (epoch != p->epoch)
        return KR_PROD_FENCED;
    if (count == 0 || count > UINT64_MAX - seq)
        return KR_PROD_OUT_OF_ORDER;
    if (seq == p->next_seq)
        return KR_PROD_ACCEPT;
    for (size_t i = p->n_win; i-- > 0;) {
        const kr_prod_batch *b = cwin_at(p, i);
        if (b->seq != seq)
            continue;
        if (b->count != count)
            break;
        if (hit != NULL)
            *hit = b;
        return b->stored ? KR_PROD_DUPLICATE : KR_PROD_IN_FLIGHT;
    }
    return KR_PROD_OUT_OF_ORDER;
}

/* Make p the most recently active producer of its set. */
static void touch(kr_producer *p, uint64_t now_ms)
{
    kr_prod_set *set = p->table->set;
    if (now_ms > p->last_ms)
        p->last_ms = now_ms;
    TAILQ_REMOVE(&set->lru, p, lru);
    TAILQ_INSERT_TAIL(&set->lru, p, lru);
}

static void mark_dirty(kr_producer *p)
{
    if (!p->dirty) {
        p->dirty = true;
        TAILQ_INSERT_TAIL(&p->table->dirty, p, dirty_link);
    }
}

/* Remember a batch as the newest of the window (the oldest goes when it
 * is full). */
static void win_push(kr_producer *p, uint64_t seq, uint32_t count, uint64_t first, bool stored,
                     bool synced)
{
    if (p->n_win == KR_PRODUCER_WINDOW) {
        p->head = (uint8_t)((p->head + 1) % KR_PRODUCER_WINDOW);
        p->n_win--;
    }
    *win_at(p, p->n_win) = (kr_prod_batch){
        .seq = seq, .first = first, .count = count, .stored = stored, .synced = synced};
    p->n_win++;
}

void kr_producer_accept(kr_producer *p, uint64_t seq, uint32_t count, uint64_t first, bool sync,
                        uint64_t now_ms)
{
    win_push(p, seq, count, first, false, sync);
    p->next_seq = seq + count;
    p->in_flight++;
    touch(p, now_ms);
}

/* Answer the repeats waiting for `seq`. */
static void answer_waits(kr_producer *p, uint64_t seq, bool ok, uint64_t first, uint32_t count)
{
    kr_prod_wait **at = &p->waits;
    while (*at != NULL) {
        kr_prod_wait *w = *at;
        if (w->seq != seq) {
            at = &w->next;
            continue;
        }
        *at = w->next;
        w->next = NULL;
        w->fn(w, ok, first, count);
    }
}

void kr_producer_stored(kr_producer *p, uint64_t seq, uint32_t count, uint64_t first)
{
    for (size_t i = 0; i < p->n_win; i++) {
        kr_prod_batch *b = win_at(p, i);
        if (b->seq == seq && !b->stored) {
            b->stored = true;
            break;
        }
    }
    if (p->in_flight > 0)
        p->in_flight--;
    p->stored_next = seq + count;
    mark_dirty(p);
    answer_waits(p, seq, true, first, count);
}

void kr_producer_failed(kr_producer *p, uint64_t seq)
{
    if (p->in_flight > 0)
        p->in_flight--;
    if (p->next_seq > seq)
        p->next_seq = seq;
    /* The window is in acceptance order: what follows the failed batch was
     * accepted after it. */
    for (size_t i = 0; i < p->n_win; i++) {
        kr_prod_batch *b = win_at(p, i);
        if (!b->stored && b->seq >= seq) {
            p->n_win = (uint8_t)i;
            break;
        }
    }
    answer_waits(p, seq, false, 0, 0);
}

void kr_producer_wait(kr_producer *p, kr_prod_wait *w)
{
    w->next = p->waits;
    p->waits = w;
}

void kr_producer_hold(kr_producer *p)
{
    p->holds++;
}

void kr_producer_release(kr_producer *p)
{
    if (p->holds > 0)
        p->holds--;
}

void kr_producer_register(kr_producer *p, uint64_t now_ms)
{
    p->epoch++;
    touch(p, now_ms);
}

size_t kr_producer_stored_state(const kr_producer *p, uint64_t *stored_next, kr_prod_batch *out)
{
    size_t n = 0;
    for (size_t i = 0; i < p->n_win; i++) {
        const kr_prod_batch *b = cwin_at(p, i);
        if (b->stored)
            out[n++] = *b;
    }
    *stored_next = p->stored_next;
    return n;
}

void kr_producer_restore(kr_producer *p, uint64_t stored_next, const kr_prod_batch *b, size_t n,
                         uint64_t last_ms)
{
    p->head = p->n_win = 0;
    for (size_t i = n > KR_PRODUCER_WINDOW ? n - KR_PRODUCER_WINDOW : 0; i < n; i++)
        win_push(p, b[i].seq, b[i].count, b[i].first, true, b[i].synced);
    p->next_seq = p->stored_next = stored_next;
    p->last_ms = last_ms;
}

void kr_producer_replay(kr_producer *p, uint64_t seq, uint32_t count, uint64_t first,
                        uint64_t now_ms)
{
    win_push(p, seq, count, first, true, false);
    p->next_seq = p->stored_next = seq + count;
    mark_dirty(p);
    touch(p, now_ms);
}

/* ---- indexes ---- */

static uint64_t mix64(uint64_t x)
{
    x ^= x >> 33;
    x *= UINT64_C(0xff51afd7ed558ccd);
    x ^= x >> 33;
    x *= UINT64_C(0xc4ceb9fe1a85ec53);
    x ^= x >> 33;
    return x;
}

static uint64_t id_hash(uint64_t seed, const uint8_t *id, size_t len)
{
    uint64_t h = seed ^ (len * UINT64_C(0x9E3779B97F4A7C15));
    while (len >= 8) {
        uint64_t w;
        memcpy(&w, id, 8);
        h = mix64(h ^ w);
        id += 8;
        len -= 8;
    }
    uint64_t tail = 0;
    memcpy(&tail, id, len);
    return mix64(h ^ tail);
}

static uint64_t hash_of(const kr_prod_table *t, const pindex *ix, const kr_producer *p)
{
    return ix->by_id ? id_hash(t->set->seed, p->id, p->id_len) : mix64(p->pid);
}

static void ix_put(const kr_prod_table *t, pindex *ix, kr_producer *p)
{
    size_t mask = ix->cap - 1, i = (size_t)hash_of(t, ix, p) & mask;
    while (ix->slot[i] != NULL)
        i = (i + 1) & mask;
    ix->slot[i] = p;
    ix->n++;
}

/* Room for one more entry at most half full. @return 0, or -1 on ENOMEM. */
static int ix_room(const kr_prod_table *t, pindex *ix)
{
    if ((ix->n + 1) * 2 <= ix->cap)
        return 0;
    size_t cap = ix->cap ? ix->cap * 2 : 16;
    kr_producer **slot = calloc(cap, sizeof *slot);
    if (slot == NULL)
        return -1;
    pindex grown = {slot, cap, 0, ix->by_id};
    for (size_t i = 0; i < ix->cap; i++)
        if (ix->slot[i] != NULL)
            ix_put(t, &grown, ix->slot[i]);
    free(ix->slot);
    *ix = grown;
    return 0;
}

/* Remove p, shifting back the entries of its probe run that would
 * otherwise no longer be found. */
static void ix_remove(const kr_prod_table *t, pindex *ix, const kr_producer *p)
{
    size_t mask = ix->cap - 1, i = (size_t)hash_of(t, ix, p) & mask;
    while (ix->slot[i] != p) {
        if (ix->slot[i] == NULL)
            return;
        i = (i + 1) & mask;
    }
    ix->slot[i] = NULL;
    ix->n--;
    for (size_t j = (i + 1) & mask; ix->slot[j] != NULL; j = (j + 1) & mask) {
        size_t home = (size_t)hash_of(t, ix, ix->slot[j]) & mask;
        /* The entry at j may move to the hole at i when its home is not in
         * the cyclic range (i, j]. */
        bool stays = i <= j ? (home > i && home <= j) : (home > i || home <= j);
        if (!stays) {
            ix->slot[i] = ix->slot[j];
            ix->slot[j] = NULL;
            i = j;
        }
    }
}

kr_producer *kr_prod_find(const kr_prod_table *t, const uint8_t *id, size_t len)
{
    const pindex *ix = &t->by_id;
    if (ix->n == 0)
        return NULL;
    size_t mask = ix->cap - 1, i = (size_t)id_hash(t->set->seed, id, len) & mask;
    for (kr_producer *p; (p = ix->slot[i]) != NULL; i = (i + 1) & mask)
        if (p->id_len == len && memcmp(p->id, id, len) == 0)
            return p;
    return NULL;
}

kr_producer *kr_prod_find_pid(const kr_prod_table *t, uint64_t pid)
{
    const pindex *ix = &t->by_pid;
    if (ix->n == 0)
        return NULL;
    size_t mask = ix->cap - 1, i = (size_t)mix64(pid) & mask;
    for (kr_producer *p; (p = ix->slot[i]) != NULL; i = (i + 1) & mask)
        if (p->pid == pid)
            return p;
    return NULL;
}

/* ---- tables and the set ---- */

static uint64_t random_seed(void)
{
    uint64_t seed;
    if (getrandom(&seed, sizeof seed, GRND_NONBLOCK) != (ssize_t)sizeof seed) {
        struct timespec ts;
        clock_gettime(CLOCK_MONOTONIC, &ts);
        seed = mix64((uint64_t)ts.tv_nsec ^ (uint64_t)ts.tv_sec << 30);
    }
    return seed;
}

kr_prod_set *kr_prod_set_new(size_t max, uint64_t keep_ms)
{
    kr_prod_set *set = calloc(1, sizeof *set);
    if (set == NULL)
        return NULL;
    set->max = max;
    set->keep_ms = keep_ms;
    set->seed = random_seed();
    TAILQ_INIT(&set->lru);
    return set;
}

void kr_prod_set_free(kr_prod_set *set)
{
    free(set);
}

size_t kr_prod_set_count(const kr_prod_set *set)
{
    return set->count;
}

static int cmp_last(const void *a, const void *b)
{
    uint64_t x = (*(kr_producer *const *)a)->last_ms, y = (*(kr_producer *const *)b)->last_ms;
    return x < y ? -1 : x > y;
}

void kr_prod_set_sort(kr_prod_set *set)
{
    kr_producer **all = malloc((set->count ? set->count : 1) * sizeof *all), *p;
    size_t n = 0;
    if (all == NULL)
        return; /* the order stays that of the restart: forgetting is late */
    TAILQ_FOREACH(p, &set->lru, lru)
    all[n++] = p;
    qsort(all, n, sizeof *all, cmp_last); /* stable enough: ties are equals */
    TAILQ_INIT(&set->lru);
    for (size_t i = 0; i < n; i++)
        TAILQ_INSERT_TAIL(&set->lru, all[i], lru);
    free(all);
}

size_t kr_prod_set_max(const kr_prod_set *set)
{
    return set->max;
}

kr_prod_table *kr_prod_table_new(kr_prod_set *set, void *owner)
{
    kr_prod_table *t = calloc(1, sizeof *t);
    if (t == NULL)
        return NULL;
    t->set = set;
    t->owner = owner;
    t->next_pid = 1;
    t->by_id.by_id = true;
    TAILQ_INIT(&t->dirty);
    return t;
}

/* Take p out of its table and the set, and free it (never busy: no waits). */
static void producer_free(kr_producer *p)
{
    kr_prod_table *t = p->table;
    ix_remove(t, &t->by_id, p);
    ix_remove(t, &t->by_pid, p);
    TAILQ_REMOVE(&t->set->lru, p, lru);
    if (p->dirty)
        TAILQ_REMOVE(&t->dirty, p, dirty_link);
    t->set->count--;
    free(p);
}

void kr_prod_table_free(kr_prod_table *t)
{
    if (t == NULL)
        return;
    for (size_t i = 0; i < t->by_pid.cap; i++) {
        kr_producer *p = t->by_pid.slot[i];
        if (p == NULL)
            continue;
        TAILQ_REMOVE(&t->set->lru, p, lru);
        t->set->count--;
        free(p);
    }
    free(t->by_id.slot);
    free(t->by_pid.slot);
    free(t);
}

void *kr_prod_table_owner(const kr_prod_table *t)
{
    return t->owner;
}

size_t kr_prod_table_count(const kr_prod_table *t)
{
    return t->by_pid.n;
}

uint64_t kr_prod_table_next_pid(const kr_prod_table *t)
{
    return t->next_pid;
}

void kr_prod_table_raise_pid(kr_prod_table *t, uint64_t next_pid)
{
    if (next_pid > t->next_pid)
        t->next_pid = next_pid;
}

kr_producer *kr_prod_add(kr_prod_table *t, const uint8_t *id, size_t len, uint64_t pid,
                         uint64_t now_ms)
{
    if (len == 0 || len > 255 || kr_prod_find(t, id, len) != NULL ||
        (pid != 0 && kr_prod_find_pid(t, pid) != NULL) || (pid == 0 && t->next_pid == UINT64_MAX))
        return NULL;
    if (ix_room(t, &t->by_id) < 0 || ix_room(t, &t->by_pid) < 0)
        return NULL;
    kr_producer *p = calloc(1, sizeof *p + len);
    if (p == NULL)
        return NULL;
    p->table = t;
    p->pid = pid != 0 ? pid : t->next_pid;
    if (p->pid >= t->next_pid)
        t->next_pid = p->pid == UINT64_MAX ? UINT64_MAX : p->pid + 1;
    p->last_ms = now_ms;
    p->id_len = len;
    memcpy(p->id, id, len);
    ix_put(t, &t->by_id, p);
    ix_put(t, &t->by_pid, p);
    TAILQ_INSERT_TAIL(&t->set->lru, p, lru);
    t->set->count++;
    return p;
}

void kr_prod_take_dirty(kr_prod_table *t, struct kr_producer_list *out)
{
    kr_producer *p;
    while ((p = TAILQ_FIRST(&t->dirty)) != NULL) {
        TAILQ_REMOVE(&t->dirty, p, dirty_link);
        p->dirty = false;
        TAILQ_INSERT_TAIL(out, p, dirty_link);
    }
}

void kr_prod_mark_all_dirty(kr_prod_table *t)
{
    for (size_t i = 0; i < t->by_pid.cap; i++)
        if (t->by_pid.slot[i] != NULL)
            mark_dirty(t->by_pid.slot[i]);
}

int kr_prod_foreach(kr_prod_table *t, int (*fn)(void *arg, kr_producer *p), void *arg)
{
    for (size_t i = 0; i < t->by_pid.cap; i++) {
        kr_producer *p = t->by_pid.slot[i];
        int rc = p != NULL ? fn(arg, p) : 0;
        if (rc != 0)
            return rc;
    }
    return 0;
}

static bool busy(const kr_producer *p)
{
    return p->holds > 0 || p->in_flight > 0 || p->waits != NULL;
}

size_t kr_prod_set_trim(kr_prod_set *set, uint64_t now_ms, size_t want,
                        void (*gone)(void *arg, kr_producer *p), void *arg)
{
    size_t n = 0;
    kr_producer *p = TAILQ_FIRST(&set->lru), *next;
    for (; p != NULL; p = next) {
        next = TAILQ_NEXT(p, lru);
        bool expired = p->last_ms + set->keep_ms <= now_ms;
        if (!expired && set->count <= want)
            break; /* the rest are younger still */
        if (busy(p))
            continue;
        if (gone != NULL)
            gone(arg, p);
        producer_free(p);
        n++;
    }
    return n;
}

size_t kr_producer_bytes(size_t id_len)
{
    /* The record, and two index slots per index at the fullest (half
     * full): 4 pointers. */
    return sizeof(kr_producer) + id_len + 4 * sizeof(kr_producer *);
}
