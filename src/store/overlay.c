/*
 * store/overlay.c - the newest entry per key since the last checkpoint (see
 * overlay.h).
 *
 * An open-addressing hash table with linear probing: a power-of-two number
 * of 16-byte slots (the key's hash and its record), kept at most 70% full
 * and doubled when an insert would pass that. Entries are never removed one
 * by one (a deleted key is a tombstone entry), so probing needs no deletion
 * markers: a slot whose hash is 0 is empty and ends every probe sequence.
 *
 * Records (the entry, then the event bytes, then the key when it is not
 * inside the event) are carved from chunks that start small and double up
 * to OV_CHUNK_MAX, so an overlay of a quiet topic stays small and a busy one
 * costs one allocation per megabyte, never one per event.
 *
 * Chunks and large tables are mapped from the system (mmap), not taken
 * from malloc: an overlay lives for one checkpoint interval and then all of
 * it goes at once, and that memory must go back to the system with it.
 * Through malloc it landed in the heap between the PUBLISH batches, and the
 * heap kept ~90 MB of free pages after the overlays were gone.
 *
 * Mapping and faulting in a megabyte, or rehashing a table that doubles,
 * took milliseconds of the loop thread on a virtual machine - every few
 * thousand new keys, again after each checkpoint. So freed full-size
 * chunks and mapped tables are kept, up to OV_POOL_BYTES for the whole
 * process, for the next overlays (whose pages are then already there; a
 * table comes first, as a table from the system costs the loop a fault and
 * a TLB shootdown per page), and an overlay made to follow another is sized
 * for a quarter more keys (kr_overlay_new_sized).
 *
 * The hash is a wyhash-style multiply-and-fold over the key bytes (after
 * Wang Yi's public-domain wyhash), seeded per overlay from getrandom so that
 * clients cannot pick keys that all land in one probe run.
 */
#include "store/overlay.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/random.h>

#include "util/clock.h"
#include "util/sched.h"

/* The first table; a power of two. */
#define OV_MIN_SLOTS 16
/* Grow when more than OV_LOAD_NUM/OV_LOAD_DEN of the slots would be used. */
#define OV_LOAD_NUM 7
#define OV_LOAD_DEN 10
/* Record chunks (mapped sizes, their header included): the first this
 * big, each next one twice the last, up to OV_CHUNK_MAX (1 MiB: per-chunk
 * waste stays small against a checkpoint's worth of records). */
#define OV_CHUNK_MIN (4u * 1024)
#define OV_CHUNK_MAX (1024u * 1024)
/* A record larger than this gets a chunk of its own. */
#define OV_BIG_RECORD (OV_CHUNK_MAX / 4)
/* Tables of this many bytes or more are mapped (smaller ones: calloc). */
#define OV_MAP_TABLE (64u * 1024)
/* An overlay sized for this many keys or more starts with OV_CHUNK_MAX. */
#define OV_BIG_START 4096
/* Freed chunks of OV_CHUNK_MAX and mapped tables kept for reuse, at most
 * this many bytes in all; and at most this many tables. */
#define OV_POOL_BYTES  (16u * 1024 * 1024)
#define OV_POOL_TABLES 4

/* One key's record: its entry (whose pointers point into data) and room
 * for `cap` bytes. */
typedef struct rec {
    kr_ov_entry e;
    uint32_t cap;
    uint8_t data[];
} rec;

/* A mapped chunk: this header, then records. */
typedef struct chunk {
    struct chunk *next;
    size_t span; /* bytes mapped, this header included */
    size_t used; /* bytes of data[] given out */
    uint8_t data[];
} chunk;

/* One table slot: hash 0 means empty (real hashes are never 0). */
typedef struct slot {
    uint64_t hash;
    rec *r;
} slot;

struct kr_overlay {
    slot *tab;
    size_t nslots;      /* power of two */
    size_t count;       /* occupied slots */
    size_t grow_at;     /* grow before count would exceed this */
    chunk *chunks;      /* the newest (being filled) first */
    size_t chunk_bytes; /* allocated for chunks, headers included */
    uint64_t next;      /* highest offset + 1, 0 when empty */
    uint64_t seed;
    size_t first_span; /* its first chunk's size */
};

/* ---- hashing ---- */

static const uint64_t wy_secret[4] = {0x2d358dccaa6c78a5ull, 0x8bb84b93962eacc9ull,
                                      0x4b33a62ed433d4a3ull, 0x4d5a2da51de1aa47ull};

/* 64x64 -> 128 multiply; *a gets the low half, *b the high half. */
static inline void wy_mum(uint64_t *a, uint64_t *b)
{
#ifdef __SIZEOF_INT128__
    unsigned __int128 r = (unsigned __int128)*a * *b;
    *a = (uint64_t)r;
    *b = (uint64_t)(r >> 64);
#else
    uint64_t ha = *a >> 32, hb = *b >> 32, la = (uint32_t)*a, lb = (uint32_t)*b;
    uint64_t rh = ha * hb, rm0 = ha * lb, rm1 = hb * la, rl = la * lb;
    uint64_t t = rl + (rm0 << 32), c = t < rl;
    uint64_t lo = t + (rm1 << 32);
    c += lo < t;
    *a = lo;
    *b = rh + (rm0 >> 32) + (rm1 >> 32) + c;
#endif
}

static inline uint64_t wy_mix(uint64_t a, uint64_t b)
{
    wy_mum(&a, &b);
    return a ^ b;
}

/* Native-endian loads: the hash never leaves the process. */
static inline uint64_t wy_r8(const uint8_t *p)
{
    uint64_t v;
    memcpy(&v, p, 8);
    return v;
}

static inline uint64_t wy_r4(const uint8_t *p)
{
    uint32_t v;
    memcpy(&v, p, 4);
    return v;
}

static inline uint64_t wy_r3(const uint8_t *p, size_t k)
{
    return ((uint64_t)p[0] << 16) | ((uint64_t)p[k >> 1] << 8) | p[k - 1];
}

static uint64_t wy_hash(const uint8_t *p, size_t len, uint64_t seed)
{
    uint64_t a, b;
    seed ^= wy_mix(seed ^ wy_secret[0], wy_secret[1]);
    if (len <= 16) {
        if (len >= 4) {
            a = (wy_r4(p) << 32) | wy_r4(p + ((len >> 3) << 2));
            b = (wy_r4(p + len - 4) << 32) | wy_r4(p + len - 4 - ((len >> 3) << 2));
        } else if (len > 0) {
            a = wy_r3(p, len);
            b = 0;
        } else {
            a = b = 0;
        }
    } else {
        size_t i = len;
        if (i > 48) {
            uint64_t s1 = seed, s2 = seed;
            do {
                seed = wy_mix(wy_r8(p) ^ wy_secret[1], wy_r8(p + 8) ^ seed);
                s1 = wy_mix(wy_r8(p + 16) ^ wy_secret[2], wy_r8(p + 24) ^ s1);
                s2 = wy_mix(wy_r8(p + 32) ^ wy_secret[3], wy_r8(p + 40) ^ s2);
                p += 48;
                i -= 48;
            } while (i > 48);
            seed ^= s1 ^ s2;
        }
        while (i > 16) {
            seed = wy_mix(wy_r8(p) ^ wy_secret[1], wy_r8(p + 8) ^ seed);
            i -= 16;
            p += 16;
        }
        a = wy_r8(p + i - 16);
        b = wy_r8(p + i - 8);
    }
    a ^= wy_secret[1];
    b ^= seed;
    wy_mum(&a, &b);
    return wy_mix(a ^ wy_secret[0] ^ len, b ^ wy_secret[1]);
}

static inline uint64_t key_hash(const kr_overlay *ov, const uint8_t *key, size_t len)
{
    uint64_t h = wy_hash(key, len, ov->seed);
    return h != 0 ? h : 1; /* 0 marks an empty slot */
}

/* ---- the table and the records ---- */

/* Zeroed memory straight from the system, or NULL. Its pages are faulted
 * in at once (MAP_POPULATE): a chunk, or a table a rehash fills, is written
 * soon after it is made, and on a virtual machine a page fault apiece - a megabyte every few
 * thousand new keys, again after every checkpoint - cost more than the
 * copies into them (a fifth of the loop thread under single-event
 * PUBLISHes). */
static void *map_new(size_t bytes)
{
    void *p = mmap(NULL, bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_POPULATE,
                   -1, 0);
    return p == MAP_FAILED ? NULL : p;
}

/* Zeroed memory whose pages fault in as they are first written. For the
 * table an overlay starts with at a checkpoint: populating megabytes at
 * once holds the loop for milliseconds in the middle of the request
 * stream, where one fault now and then over the first few thousand
 * inserts holds no request long. */
static void *map_lazy(size_t bytes)
{
    void *p = mmap(NULL, bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    return p == MAP_FAILED ? NULL : p;
}

/* ---- the pool of freed chunks and tables (process-wide) ---- */

static struct {
    pthread_mutex_t mu;
    chunk *chunks; /* OV_CHUNK_MAX each, linked through next */
    struct pooled_table {
        slot *tab;
        size_t nslots;
    } tabs[OV_POOL_TABLES];
    size_t ntabs;
    size_t bytes;
} pool = {.mu = PTHREAD_MUTEX_INITIALIZER};

/* Take a pooled chunk (NULL: none). */
static chunk *pool_chunk(void)
{
    pthread_mutex_lock(&pool.mu);
    chunk *c = pool.chunks;
    if (c != NULL) {
        pool.chunks = c->next;
        pool.bytes -= c->span;
    }
    pthread_mutex_unlock(&pool.mu);
    return c;
}

/* Keep a chunk for reuse. @return false when the pool is full. */
static bool pool_keep_chunk(chunk *c)
{
    bool kept = false;
    pthread_mutex_lock(&pool.mu);
    if (pool.bytes + c->span <= OV_POOL_BYTES) {
        c->next = pool.chunks;
        pool.chunks = c;
        pool.bytes += c->span;
        kept = true;
    }
    pthread_mutex_unlock(&pool.mu);
    return kept;
}

/* Pooled tables up to this many times the slots asked for are taken. */
#define OV_POOL_TABLE_SLACK 4

/*
 * Take a pooled table of at least *nslots slots and at most `slack` times as
 * many, the smallest there is; *nslots becomes its size. NULL: none. A
 * checkpoint's overlay is sized from the last one's count, which may move
 * across a power of two from one checkpoint to the next; a table that
 * misses the pool comes from the system unpopulated (map_lazy), its pages
 * faulted in by the loop as keys land - each a read fault and a write fault
 * with a TLB shootdown (an IPI, a VM exit on a virtual machine): 10 to 16 ms
 * of the loop per checkpoint at 100k keys. Pooled tables are zeroed already
 * (pool_keep_table).
 */
static slot *pool_table(size_t *nslots, size_t slack)
{
    slot *tab = NULL;
    pthread_mutex_lock(&pool.mu);
    size_t best = SIZE_MAX;
    for (size_t i = 0; i < pool.ntabs; i++) {
        size_t n = pool.tabs[i].nslots;
        if (n >= *nslots && n / slack <= *nslots &&
            (best == SIZE_MAX || n < pool.tabs[best].nslots))
            best = i;
    }
    if (best != SIZE_MAX) {
        tab = pool.tabs[best].tab;
        *nslots = pool.tabs[best].nslots;
        pool.bytes -= *nslots * sizeof(slot);
        pool.tabs[best] = pool.tabs[--pool.ntabs];
    }
    pthread_mutex_unlock(&pool.mu);
    return tab;
}

/* Whether a table of `bytes` fits the pool now (locked). */
static bool pool_fits(size_t bytes)
{
    return pool.ntabs < OV_POOL_TABLES && pool.bytes + bytes <= OV_POOL_BYTES;
}

/* What pool_make_room took out of the pool, to be unmapped with the pool's
 * lock released (the loop takes chunks under it). */
struct pool_dropped {
    struct pooled_table tabs[OV_POOL_TABLES];
    size_t ntabs;
    chunk *chunks;
};

/*
 * Make room in the pool (locked) for a table of nslots slots: tables come
 * first. Pooled tables smaller than it go (the next overlay is sized from
 * the last one's count: the newest table is the one it will ask for), and
 * then chunks, which the loop maps populated (a pooled table spares it a
 * table's page faults; a chunk from the system costs only its zeroing).
 * Tables a growing overlay left behind were once pooled too, and four of
 * them filled every place for good: every checkpoint's table then came from
 * the system. @return whether there is room now.
 */
static bool pool_make_room(size_t nslots, struct pool_dropped *d)
{
    for (size_t i = 0; i < pool.ntabs;) {
        if (pool.tabs[i].nslots < nslots) {
            d->tabs[d->ntabs++] = pool.tabs[i];
            pool.bytes -= pool.tabs[i].nslots * sizeof(slot);
            pool.tabs[i] = pool.tabs[--pool.ntabs];
        } else {
            i++;
        }
    }
    size_t bytes = nslots * sizeof(slot);
    while (pool.bytes + bytes > OV_POOL_BYTES && pool.chunks != NULL) {
        chunk *c = pool.chunks;
        pool.chunks = c->next;
        pool.bytes -= c->span;
        c->next = d->chunks;
        d->chunks = c;
    }
    return pool_fits(bytes);
}

static void pool_unmap_dropped(struct pool_dropped *d)
{
    for (size_t i = 0; i < d->ntabs; i++)
        munmap(d->tabs[i].tab, d->tabs[i].nslots * sizeof(slot));
    while (d->chunks != NULL) {
        chunk *c = d->chunks;
        d->chunks = c->next;
        munmap(c, c->span);
    }
}

/*
 * Keep a table for reuse, zeroed here: the thread that frees an overlay is
 * usually the view thread (the loop hands it the overlays it is done with),
 * and zeroing megabytes there spares the loop that work when the next
 * checkpoint starts a table. @return false when it does not fit the pool.
 */
static bool pool_keep_table(slot *tab, size_t nslots)
{
    if (nslots * sizeof(slot) > OV_POOL_BYTES)
        return false;
    struct pool_dropped d = {.ntabs = 0};
    pthread_mutex_lock(&pool.mu);
    bool room = pool_make_room(nslots, &d);
    pthread_mutex_unlock(&pool.mu);
    pool_unmap_dropped(&d);
    if (!room)
        return false;
    memset(tab, 0, nslots * sizeof(slot));
    bool kept = false;
    pthread_mutex_lock(&pool.mu);
    if (pool_fits(nslots * sizeof(slot))) { /* still: the lock was let go */
        pool.tabs[pool.ntabs++] = (struct pooled_table){tab, nslots};
        pool.bytes += nslots * sizeof(slot);
        kept = true;
    }
    pthread_mutex_unlock(&pool.mu);
    return kept;
}

void kr_overlay_pool_stats(kr_ov_pool_stats *st)
{
    pthread_mutex_lock(&pool.mu);
    *st = (kr_ov_pool_stats){.tables = pool.ntabs, .bytes = pool.bytes};
    for (size_t i = 0; i < pool.ntabs; i++)
        if (pool.tabs[i].nslots > st->largest_slots)
            st->largest_slots = pool.tabs[i].nslots;
    pthread_mutex_unlock(&pool.mu);
}

void kr_overlay_pool_release(void)
{
    pthread_mutex_lock(&pool.mu);
    while (pool.chunks != NULL) {
        chunk *c = pool.chunks;
        pool.chunks = c->next;
        munmap(c, c->span);
    }
    for (size_t i = 0; i < pool.ntabs; i++)
        munmap(pool.tabs[i].tab, pool.tabs[i].nslots * sizeof(slot));
    pool.ntabs = 0;
    pool.bytes = 0;
    pthread_mutex_unlock(&pool.mu);
}

/* A zeroed table of *nslots slots. A growing table (`populate`: the rehash
 * writes all of it now) is that size, and one new from the system has its
 * pages faulted in at once; a starting one may be a larger pooled table
 * (*nslots says), and one new from the system has its pages faulted in as
 * they are written. */
static slot *table_new(size_t *nslots, bool populate)
{
    if (*nslots * sizeof(slot) < OV_MAP_TABLE)
        return calloc(*nslots, sizeof(slot));
    slot *tab = pool_table(nslots, populate ? 1 : OV_POOL_TABLE_SLACK);
    if (tab != NULL)
        return tab;
    return populate ? map_new(*nslots * sizeof(slot)) : map_lazy(*nslots * sizeof(slot));
}

/* Free a table, keeping it for the next overlays when `keep` (an overlay's
 * last table; not one a growing overlay left behind: new overlays are sized
 * past it, nothing asks for its size again). */
static void table_free(slot *tab, size_t nslots, bool keep)
{
    if (nslots * sizeof(slot) < OV_MAP_TABLE)
        free(tab);
    else if (!keep || !pool_keep_table(tab, nslots))
        munmap(tab, nslots * sizeof(slot));
}

static chunk *chunk_new(size_t span)
{
    chunk *c = span == OV_CHUNK_MAX ? pool_chunk() : NULL;
    if (c == NULL)
        c = map_new(span);
    if (c != NULL)
        c->span = span;
    return c;
}

static void chunk_free(chunk *c)
{
    if (c->span != OV_CHUNK_MAX || !pool_keep_chunk(c))
        munmap(c, c->span);
}

static size_t chunk_room(const chunk *c)
{
    return c->span - sizeof(chunk) - c->used;
}

kr_overlay *kr_overlay_new(void)
{
    return kr_overlay_new_sized(0);
}

kr_overlay *kr_overlay_new_sized(size_t keys)
{
    kr_overlay *ov = calloc(1, sizeof *ov);
    if (ov == NULL)
        return NULL;
    /* One that will hold many keys starts with full-size chunks (kept by
     * the pool, their pages there): no string of small mappings. */
    ov->first_span = keys >= OV_BIG_START ? OV_CHUNK_MAX : OV_CHUNK_MIN;
    /* A quarter more than asked: the next checkpoint's overlay holds about
     * as many keys as the last one, give or take, and growing it on the
     * loop (a rehash into a new table) costs more than the slack. */
    size_t want = keys + keys / 4, nslots = OV_MIN_SLOTS;
    while (nslots < SIZE_MAX / 4 / sizeof(slot) && nslots * OV_LOAD_NUM / OV_LOAD_DEN < want)
        nslots *= 2;
    ov->tab = table_new(&nslots, false);
    if (ov->tab == NULL && nslots > OV_MIN_SLOTS) {
        nslots = OV_MIN_SLOTS; /* the size was a hint only */
        ov->tab = table_new(&nslots, false);
    }
    if (ov->tab == NULL) {
        free(ov);
        return NULL;
    }
    ov->nslots = nslots;
    ov->grow_at = nslots * OV_LOAD_NUM / OV_LOAD_DEN;
    if (getrandom(&ov->seed, sizeof ov->seed, GRND_NONBLOCK) != (ssize_t)sizeof ov->seed) {
        /* No entropy yet (early boot): still differs per overlay and run. */
        ov->seed = wy_mix(kr_mono_ns(), (uint64_t)(uintptr_t)ov ^ wy_secret[2]);
    }
    return ov;
}

void kr_overlay_free(kr_overlay *ov)
{
    if (ov == NULL)
        return;
    /* The table first: it gets the pool's room before the chunks, since
     * a new table must be zeroed and a chunk need not. */
    table_free(ov->tab, ov->nslots, true);
    chunk *c = ov->chunks;
    while (c != NULL) {
        chunk *n = c->next;
        chunk_free(c);
        c = n;
    }
    free(ov);
}

/* Whether the key lies inside the event bytes (it usually does: the key
 * content of a definite-length string is part of the delivered encoding).
 * Compared as integers: the two may point into different objects. */
static bool key_inside(const kr_ov_entry *e)
{
    uintptr_t k = (uintptr_t)e->key, ev = (uintptr_t)e->event;
    return e->key_len == 0 ||
           (k >= ev && k - ev <= e->ev_len && e->key_len <= e->ev_len - (k - ev));
}

/* Bytes a record needs for e. */
static size_t rec_need(const kr_ov_entry *e)
{
    return (size_t)e->ev_len + (key_inside(e) ? 0 : e->key_len);
}

/* A record with room for `need` bytes, from the newest chunk or a new one.
 * @return NULL on ENOMEM. */
static rec *rec_alloc(kr_overlay *ov, size_t need)
{
    if (need > UINT32_MAX - 64)
        return NULL;
    size_t size = (offsetof(rec, data) + need + 7) & ~(size_t)7;
    chunk *c = ov->chunks;
    if (size > OV_BIG_RECORD) {
        chunk *big = chunk_new((sizeof(chunk) + size + 4095) & ~(size_t)4095);
        if (big == NULL)
            return NULL;
        big->used = size;
        /* Behind the chunk being filled, which goes on being filled. */
        if (c != NULL) {
            big->next = c->next;
            c->next = big;
        } else {
            big->next = NULL;
            ov->chunks = big;
        }
        ov->chunk_bytes += big->span;
        rec *r = (rec *)(void *)big->data;
        r->cap = (uint32_t)(size - offsetof(rec, data));
        return r;
    }
    if (c == NULL || chunk_room(c) < size) {
        size_t span = c == NULL ? ov->first_span : c->span * 2;
        while (span - sizeof(chunk) < size)
            span *= 2;
        if (span > OV_CHUNK_MAX)
            span = OV_CHUNK_MAX; /* still room for size: size <= OV_BIG_RECORD */
        chunk *n = chunk_new(span);
        if (n == NULL)
            return NULL;
        n->used = 0;
        n->next = c;
        ov->chunks = c = n;
        ov->chunk_bytes += span;
    }
    rec *r = (rec *)(void *)(c->data + c->used);
    c->used += size;
    r->cap = (uint32_t)(size - offsetof(rec, data));
    return r;
}

/* Copy e (event, key) into r, which has room for it. e may be r's own
 * entry (then nothing moves). */
static void rec_fill(rec *r, const kr_ov_entry *e)
{
    kr_ov_entry in = *e;
    bool inside = key_inside(&in);
    size_t key_at = inside ? (size_t)((uintptr_t)in.key - (uintptr_t)in.event) : in.ev_len;
    if (in.ev_len > 0)
        memmove(r->data, in.event, in.ev_len);
    if (!inside)
        memmove(r->data + in.ev_len, in.key, in.key_len);
    r->e = in;
    r->e.event = r->data;
    r->e.key = r->data + key_at;
}

/* The slot holding key, or the empty slot where it would go. */
static slot *find(const kr_overlay *ov, uint64_t h, const uint8_t *key, size_t len)
{
    size_t mask = ov->nslots - 1;
    for (size_t i = (size_t)h & mask;; i = (i + 1) & mask) {
        slot *s = &ov->tab[i];
        if (s->hash == 0)
            return s;
        if (s->hash == h && s->r->e.key_len == len &&
            (len == 0 || memcmp(s->r->e.key, key, len) == 0))
            return s;
    }
}

/* Double the table, moving every slot by its stored hash. */
static int grow(kr_overlay *ov)
{
    if (ov->nslots > SIZE_MAX / 2 / sizeof(slot))
        return -1;
    size_t n = ov->nslots * 2;
    slot *tab = table_new(&n, true);
    if (tab == NULL)
        return -1;
    size_t mask = n - 1;
    for (size_t i = 0; i < ov->nslots; i++) {
        const slot *s = &ov->tab[i];
        if (s->hash == 0)
            continue;
        size_t j = (size_t)s->hash & mask;
        while (tab[j].hash != 0)
            j = (j + 1) & mask;
        tab[j] = *s;
    }
    table_free(ov->tab, ov->nslots, false);
    ov->tab = tab;
    ov->nslots = n;
    ov->grow_at = n * OV_LOAD_NUM / OV_LOAD_DEN;
    return 0;
}

/*
 * Shared by put and put_older: find the key's slot; replace its record's
 * contents (when `replace`: in place when the new event fits, else in a new
 * record) or fill a new slot, growing first if the insert would pass the
 * load limit (so a failed growth leaves everything as it was).
 */
static int put(kr_overlay *ov, const kr_ov_entry *e, uint64_t h, bool replace)
{
    slot *s = find(ov, h, e->key, e->key_len);
    size_t need = rec_need(e);
    uint64_t offset = e->offset;
    if (s->hash != 0) {
        if (!replace)
            return 0;
        if (need <= s->r->cap) {
            rec_fill(s->r, e);
        } else {
            rec *r = rec_alloc(ov, need);
            if (r == NULL)
                return -1;
            rec_fill(r, e);
            s->r = r; /* the old record stays, counted, until the overlay goes */
        }
    } else {
        if (ov->count + 1 > ov->grow_at) {
            if (grow(ov) < 0)
                return -1;
            s = find(ov, h, e->key, e->key_len);
        }
        rec *r = rec_alloc(ov, need);
        if (r == NULL)
            return -1;
        rec_fill(r, e);
        s->hash = h;
        s->r = r;
        ov->count++;
    }
    if (offset >= ov->next)
        ov->next = offset + 1;
    return 1;
}

int kr_overlay_put(kr_overlay *ov, const kr_ov_entry *e)
{
    return put(ov, e, key_hash(ov, e->key, e->key_len), true) < 0 ? -1 : 0;
}

int kr_overlay_put_older(kr_overlay *ov, const kr_ov_entry *e)
{
    return put(ov, e, key_hash(ov, e->key, e->key_len), false);
}

uint64_t kr_overlay_hash(const kr_overlay *ov, const uint8_t *key, size_t len)
{
    return key_hash(ov, key, len);
}

void kr_overlay_prefetch(const kr_overlay *ov, uint64_t hash, bool record)
{
    const slot *s = &ov->tab[(size_t)hash & (ov->nslots - 1)];
    if (!record) {
        __builtin_prefetch(s, 1);
        return;
    }
    /* The probe's first slot is usually the key's own (a table at most 70%
     * full): its record is compared, then overwritten by the new event -
     * the entry and the first bytes of the event, the key among them. */
    if (s->hash == hash) {
        __builtin_prefetch(s->r, 1);
        __builtin_prefetch((const uint8_t *)s->r + 64, 1);
    }
}

int kr_overlay_put_hashed(kr_overlay *ov, const kr_ov_entry *e, uint64_t hash)
{
    return put(ov, e, hash, true) < 0 ? -1 : 0;
}

const kr_ov_entry *kr_overlay_get(const kr_overlay *ov, const uint8_t *key, size_t len)
{
    const slot *s = find(ov, key_hash(ov, key, len), key, len);
    return s->hash != 0 ? &s->r->e : NULL;
}

size_t kr_overlay_count(const kr_overlay *ov)
{
    return ov->count;
}

size_t kr_overlay_bytes(const kr_overlay *ov)
{
    return ov->chunk_bytes + ov->nslots * sizeof(slot) + sizeof *ov;
}

uint64_t kr_overlay_next(const kr_overlay *ov)
{
    return ov->next;
}

int kr_overlay_foreach(const kr_overlay *ov, int (*fn)(void *arg, const kr_ov_entry *e), void *arg)
{
    for (size_t i = 0; i < ov->nslots; i++) {
        if (ov->tab[i].hash == 0)
            continue;
        int rc = fn(arg, &ov->tab[i].r->e);
        if (rc != 0)
            return rc;
    }
    return 0;
}

/* ---- sorted selection ---- */

/* Unsigned bytewise order, a prefix before its extensions (RocksDB's). */
static int key_cmp(const uint8_t *a, size_t alen, const uint8_t *b, size_t blen)
{
    size_t n = alen < blen ? alen : blen;
    int c = n != 0 ? memcmp(a, b, n) : 0;
    if (c != 0)
        return c;
    return alen < blen ? -1 : alen > blen;
}

static int entry_cmp(const kr_ov_entry *a, const kr_ov_entry *b)
{
    return key_cmp(a->key, a->key_len, b->key, b->key_len);
}

/* Restore the max-heap property of h[0..n) below position i. */
static void sift_down(const kr_ov_entry **h, size_t n, size_t i)
{
    const kr_ov_entry *x = h[i];
    for (;;) {
        size_t c = 2 * i + 1;
        if (c >= n)
            break;
        if (c + 1 < n && entry_cmp(h[c + 1], h[c]) > 0)
            c++;
        if (entry_cmp(h[c], x) <= 0)
            break;
        h[i] = h[c];
        i = c;
    }
    h[i] = x;
}

static void sift_up(const kr_ov_entry **h, size_t i)
{
    const kr_ov_entry *x = h[i];
    while (i > 0) {
        size_t p = (i - 1) / 2;
        if (entry_cmp(h[p], x) >= 0)
            break;
        h[i] = h[p];
        i = p;
    }
    h[i] = x;
}

/*
 * The `limit` smallest matching keys without allocating: out[] is used as a
 * max-heap of the best ones seen so far (a smaller key evicts the largest),
 * then heap-sorted in place. O(n log limit) for n entries.
 */
size_t kr_overlay_sorted(const kr_overlay *ov, const uint8_t *prefix, size_t prefix_len,
                         bool has_after, const uint8_t *after, size_t after_len, size_t limit,
                         const kr_ov_entry **out)
{
    if (limit == 0)
        return 0;
    size_t n = 0;
    for (size_t i = 0; i < ov->nslots; i++) {
        const slot *s = &ov->tab[i];
        if (s->hash == 0)
            continue;
        const kr_ov_entry *e = &s->r->e;
        if (e->key_len < prefix_len || (prefix_len != 0 && memcmp(e->key, prefix, prefix_len) != 0))
            continue;
        if (has_after && key_cmp(e->key, e->key_len, after, after_len) <= 0)
            continue;
        if (n < limit) {
            out[n] = e;
            sift_up(out, n);
            n++;
        } else if (entry_cmp(e, out[0]) < 0) {
            out[0] = e;
            sift_down(out, n, 0);
        }
    }
    for (size_t end = n; end > 1; end--) {
        const kr_ov_entry *top = out[0];
        out[0] = out[end - 1];
        out[end - 1] = top;
        sift_down(out, end - 1, 0);
    }
    return n;
}

/* ---- everything, sorted ---- */

/* A sort key: the 8 key bytes after the prefix every key shares (so keys
 * like "user-00012345" differ in it), big-endian, zero-padded; equal ones
 * fall back to comparing the whole keys. */
typedef struct sort_item {
    uint64_t k;
    const kr_ov_entry *e;
} sort_item;

/* The caller's memory holds two arrays of sort items (the sort's and its
 * merge target); the sorted pointers go into whichever is free at the end. */
_Static_assert(sizeof(sort_item) >= sizeof(const kr_ov_entry *), "pointers fit the spare array");

static int sort_item_cmp(const sort_item *a, const sort_item *b)
{
    if (a->k != b->k)
        return a->k < b->k ? -1 : 1;
    return entry_cmp(a->e, b->e);
}

/* Runs this long are sorted by insertion before the merges. */
#define SORT_RUN 16

static void insertion_sort(sort_item *a, size_t n)
{
    for (size_t i = 1; i < n; i++) {
        sort_item x = a[i];
        size_t j = i;
        for (; j > 0 && sort_item_cmp(&x, &a[j - 1]) < 0; j--)
            a[j] = a[j - 1];
        a[j] = x;
    }
}

/* Sort items handled between two looks at the clock (kr_sched_pace). */
#define SORT_PACE_ITEMS 4096

static void pace(kr_sched_pacer *p, size_t i)
{
    if (p != NULL && i % SORT_PACE_ITEMS == SORT_PACE_ITEMS - 1)
        kr_sched_pace(p);
}

static void merge(const sort_item *a, size_t na, const sort_item *b, size_t nb, sort_item *out,
                  kr_sched_pacer *p)
{
    size_t i = 0, j = 0, k = 0;
    while (i < na && j < nb) {
        out[k] = sort_item_cmp(&b[j], &a[i]) < 0 ? b[j++] : a[i++];
        pace(p, k++);
    }
    while (i < na)
        out[k++] = a[i++];
    while (j < nb)
        out[k++] = b[j++];
}

/*
 * Sort a[0..n), tmp (room for n) being the merges' target: a merge sort of
 * our own rather than qsort, which allocates (and for a checkpoint's
 * hundred thousand keys maps and unmaps) a scratch array of its own each
 * call. @return whichever of a and tmp holds the sorted items.
 */
static sort_item *sort_items(sort_item *a, sort_item *tmp, size_t n, kr_sched_pacer *p)
{
    for (size_t lo = 0; lo < n; lo += SORT_RUN) {
        insertion_sort(a + lo, n - lo < SORT_RUN ? n - lo : SORT_RUN);
        pace(p, lo + SORT_RUN - 1);
    }
    sort_item *src = a, *dst = tmp;
    for (size_t w = SORT_RUN; w < n; w *= 2) {
        for (size_t lo = 0; lo < n; lo += 2 * w) {
            size_t mid = n - lo > w ? lo + w : n;
            size_t hi = n - mid > w ? mid + w : n;
            merge(src + lo, mid - lo, src + mid, hi - mid, dst + lo, p);
        }
        sort_item *t = src;
        src = dst;
        dst = t;
    }
    return src;
}

/* Sort memory grows by this many entries at a time. */
#define SORTMEM_STEP 16384

/* Room in m for n entries (two arrays of sort items). @return 0, or -1. */
static int sortmem_reserve(kr_ov_sortmem *m, size_t n)
{
    if (n <= m->cap)
        return 0;
    /* Rounded up (512 KiB), so that an overlay a few keys larger than the
     * one before does not make the memory move again. */
    if (n > SIZE_MAX / 4 / (2 * sizeof(sort_item)))
        return -1;
    size_t cap = (n + SORTMEM_STEP - 1) / SORTMEM_STEP * SORTMEM_STEP;
    void *p = malloc(cap * 2 * sizeof(sort_item));
    if (p == NULL)
        return -1;
    free(m->mem);
    m->mem = p;
    m->cap = cap;
    return 0;
}

size_t kr_ov_sortmem_bytes(const kr_ov_sortmem *m)
{
    return m->cap * 2 * sizeof(sort_item);
}

void kr_ov_sortmem_release(kr_ov_sortmem *m)
{
    if (m == NULL)
        return;
    free(m->mem);
    m->mem = NULL;
    m->cap = 0;
}

int kr_overlay_sort_all(const kr_overlay *ov, kr_ov_sortmem *m, const kr_ov_entry ***sorted,
                        kr_sched_pacer *p)
{
    size_t n = ov->count;
    if (sortmem_reserve(m, n) < 0)
        return -1;
    *sorted = m->mem;
    if (n == 0)
        return 0;
    sort_item *items = m->mem, *tmp = items + n;
    size_t k = 0, lcp = SIZE_MAX;
    const kr_ov_entry *first = NULL;
    for (size_t i = 0; i < ov->nslots; i++) {
        pace(p, i);
        if (ov->tab[i].hash == 0)
            continue;
        const kr_ov_entry *e = &ov->tab[i].r->e;
        if (first == NULL) {
            first = e;
            lcp = e->key_len;
        } else {
            size_t mm = e->key_len < lcp ? e->key_len : lcp, j = 0;
            while (j < mm && e->key[j] == first->key[j])
                j++;
            lcp = j;
        }
        items[k++].e = e;
    }
    for (size_t i = 0; i < n; i++) {
        pace(p, i);
        const kr_ov_entry *e = items[i].e;
        uint64_t v = 0;
        for (size_t j = 0; j < 8; j++)
            v = v << 8 | (lcp + j < e->key_len ? e->key[lcp + j] : 0);
        items[i].k = v;
    }
    const sort_item *res = sort_items(items, tmp, n, p);
    const kr_ov_entry **out = (const kr_ov_entry **)(void *)(res == items ? tmp : items);
    for (size_t i = 0; i < n; i++)
        out[i] = res[i].e;
    *sorted = out;
    return 0;
}
