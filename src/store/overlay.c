/*
 * store/overlay.c - the newest entry per key since the last checkpoint (see
 * overlay.h).
 *
 * An open-addressing hash table with linear probing: a power-of-two number
 * of 64-byte slots (the entry plus its key's hash), kept at most 70% full and
 * doubled when an insert would pass that. Entries are never removed one by
 * one (a deleted key is a tombstone entry), so probing needs no deletion
 * markers: a slot whose hash is 0 is empty and ends every probe sequence.
 *
 * The hash is a wyhash-style multiply-and-fold over the key bytes (after
 * Wang Yi's public-domain wyhash), seeded per overlay from getrandom so that
 * clients cannot pick keys that all land in one probe run.
 */
#include "store/overlay.h"

#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>

/* The first table; a power of two. */
#define OV_MIN_SLOTS 16
/* Grow when more than OV_LOAD_NUM/OV_LOAD_DEN of the slots would be used. */
#define OV_LOAD_NUM 7
#define OV_LOAD_DEN 10

/* One table slot: hash 0 means empty (real hashes are never 0). */
typedef struct slot {
    uint64_t hash;
    kr_ov_entry e;
} slot;

struct kr_overlay {
    slot *tab;
    size_t nslots;      /* power of two */
    size_t count;       /* occupied slots */
    size_t grow_at;     /* grow before count would exceed this */
    size_t block_bytes; /* sum of cap of the blocks entries point to */
    uint64_t next;      /* highest offset + 1, 0 when empty */
    uint64_t seed;
};

/* ---- blocks ---- */

kr_block *kr_block_new(size_t cap)
{
    if (cap > SIZE_MAX - sizeof(kr_block))
        return NULL;
    kr_block *b = malloc(sizeof(kr_block) + cap);
    if (b == NULL)
        return NULL;
    b->refs = 1;
    b->ov_refs = 0;
    b->len = 0;
    b->cap = cap;
    return b;
}

/* References are taken and dropped by the loop (overlays, jobs) and by the
 * storage writer (batches not yet synced) at once: atomic counts. The last
 * release frees, so it must see every write made through other references:
 * release order on the way down, acquire before the free. */
void kr_block_ref(kr_block *b)
{
    __atomic_fetch_add(&b->refs, 1, __ATOMIC_RELAXED);
}

void kr_block_unref(kr_block *b)
{
    if (b == NULL)
        return;
    if (__atomic_sub_fetch(&b->refs, 1, __ATOMIC_ACQ_REL) == 0)
        free(b);
}

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

/* ---- the table ---- */

static slot *table_new(size_t nslots)
{
    void *p = NULL;
    /* One slot per cache line when slots are 64 bytes. */
    if (posix_memalign(&p, 64, nslots * sizeof(slot)) != 0)
        return NULL;
    memset(p, 0, nslots * sizeof(slot));
    return p;
}

kr_overlay *kr_overlay_new(void)
{
    kr_overlay *ov = calloc(1, sizeof *ov);
    if (ov == NULL)
        return NULL;
    ov->tab = table_new(OV_MIN_SLOTS);
    if (ov->tab == NULL) {
        free(ov);
        return NULL;
    }
    ov->nslots = OV_MIN_SLOTS;
    ov->grow_at = OV_MIN_SLOTS * OV_LOAD_NUM / OV_LOAD_DEN;
    if (getrandom(&ov->seed, sizeof ov->seed, GRND_NONBLOCK) != (ssize_t)sizeof ov->seed) {
        /* No entropy yet (early boot): still differs per overlay and run. */
        struct timespec ts;
        clock_gettime(CLOCK_MONOTONIC, &ts);
        ov->seed = wy_mix((uint64_t)ts.tv_nsec ^ ((uint64_t)ts.tv_sec << 32),
                          (uint64_t)(uintptr_t)ov ^ wy_secret[2]);
    }
    return ov;
}

/* The overlay stops pointing at b: the reference and the accounting go. */
static void drop_block(kr_overlay *ov, kr_block *b)
{
    if (--b->ov_refs == 0)
        ov->block_bytes -= b->cap;
    kr_block_unref(b);
}

static void hold_block(kr_overlay *ov, kr_block *b)
{
    kr_block_ref(b);
    if (b->ov_refs++ == 0)
        ov->block_bytes += b->cap;
}

void kr_overlay_free(kr_overlay *ov)
{
    if (ov == NULL)
        return;
    for (size_t i = 0; i < ov->nslots; i++)
        if (ov->tab[i].hash != 0)
            drop_block(ov, ov->tab[i].e.block);
    free(ov->tab);
    free(ov);
}

/* The slot holding key, or the empty slot where it would go. */
static slot *find(const kr_overlay *ov, uint64_t h, const uint8_t *key, size_t len)
{
    size_t mask = ov->nslots - 1;
    for (size_t i = (size_t)h & mask;; i = (i + 1) & mask) {
        slot *s = &ov->tab[i];
        if (s->hash == 0)
            return s;
        if (s->hash == h && s->e.key_len == len && (len == 0 || memcmp(s->e.key, key, len) == 0))
            return s;
    }
}

/* Double the table, moving every slot by its stored hash. */
static int grow(kr_overlay *ov)
{
    if (ov->nslots > SIZE_MAX / 2 / sizeof(slot))
        return -1;
    size_t n = ov->nslots * 2;
    slot *tab = table_new(n);
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
    free(ov->tab);
    ov->tab = tab;
    ov->nslots = n;
    ov->grow_at = n * OV_LOAD_NUM / OV_LOAD_DEN;
    return 0;
}

/*
 * Shared by put and put_older: find the key's slot; replace it (when
 * `replace`) or fill a new one, growing first if the insert would pass the
 * load limit (so a failed growth leaves everything as it was).
 */
static int put(kr_overlay *ov, const kr_ov_entry *e, bool replace)
{
    uint64_t h = key_hash(ov, e->key, e->key_len);
    slot *s = find(ov, h, e->key, e->key_len);
    if (s->hash != 0) {
        if (!replace)
            return 0;
        /* Hold the new block before dropping the old: they may be the same. */
        hold_block(ov, e->block);
        drop_block(ov, s->e.block);
        s->e = *e;
    } else {
        if (ov->count + 1 > ov->grow_at) {
            if (grow(ov) < 0)
                return -1;
            s = find(ov, h, e->key, e->key_len);
        }
        hold_block(ov, e->block);
        s->hash = h;
        s->e = *e;
        ov->count++;
    }
    if (e->offset >= ov->next)
        ov->next = e->offset + 1;
    return 1;
}

int kr_overlay_put(kr_overlay *ov, const kr_ov_entry *e)
{
    return put(ov, e, true) < 0 ? -1 : 0;
}

int kr_overlay_put_older(kr_overlay *ov, const kr_ov_entry *e)
{
    return put(ov, e, false);
}

const kr_ov_entry *kr_overlay_get(const kr_overlay *ov, const uint8_t *key, size_t len)
{
    const slot *s = find(ov, key_hash(ov, key, len), key, len);
    return s->hash != 0 ? &s->e : NULL;
}

size_t kr_overlay_count(const kr_overlay *ov)
{
    return ov->count;
}

size_t kr_overlay_bytes(const kr_overlay *ov)
{
    return ov->block_bytes + ov->nslots * sizeof(slot) + sizeof *ov;
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
        int rc = fn(arg, &ov->tab[i].e);
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
        const kr_ov_entry *e = &s->e;
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
