/*
 * tests/test_overlay.c - the in-memory latest-value overlay: put, get and
 * replace; tombstones; entries are copies (the caller's bytes can go at
 * once), replaced in place or moved, keys inside or outside the event, big
 * records; byte accounting; growth; the batch path (hashes taken ahead,
 * prefetches, put_hashed); put_older; foreach; sorted selection
 * (prefix, after, limit, binary keys) and the full sort; a timing figure
 * for 1M inserts over 100k keys (printed, not asserted); and every
 * allocation failing in turn (tests/alloc_fail.h).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <cmocka.h>

#include "alloc_fail.h"
#include "store/block.h"
#include "store/overlay.h"

/* A block holding `n` keys given as (bytes, len), packed one after the
 * other; entries for them point into the block. */
typedef struct kblock {
    kr_block *b;
    size_t used;
} kblock;

static kblock kb_new(size_t cap)
{
    kblock k = {kr_block_new(cap), 0};
    assert_non_null(k.b);
    return k;
}

/* Copy the key into the block and describe an entry for it (the "event" is
 * the key's bytes: the key lies inside it, as in a delivered event). */
static kr_ov_entry kb_entry(kblock *k, const void *key, size_t len, uint64_t offset, bool tomb)
{
    assert_true(k->used + len <= k->b->cap);
    memcpy(k->b->data + k->used, key, len);
    kr_ov_entry e = {
        .key = k->b->data + k->used,
        .key_len = (uint32_t)len,
        .event = k->b->data + k->used,
        .ev_len = (uint32_t)len,
        .offset = offset,
        .ts = 1000 + offset,
        .tombstone = tomb,
    };
    k->used += len;
    k->b->len = k->used;
    return e;
}

static const kr_ov_entry *get_str(kr_overlay *ov, const char *key)
{
    return kr_overlay_get(ov, (const uint8_t *)key, strlen(key));
}

static void test_new_free(void **state)
{
    (void)state;
    kr_overlay *ov = kr_overlay_new();
    assert_non_null(ov);
    assert_int_equal(kr_overlay_count(ov), 0);
    assert_int_equal(kr_overlay_next(ov), 0);
    assert_true(kr_overlay_bytes(ov) > 0);
    assert_null(get_str(ov, "x"));
    assert_null(kr_overlay_get(ov, NULL, 0));
    const kr_ov_entry *out[4];
    assert_int_equal(kr_overlay_sorted(ov, NULL, 0, false, NULL, 0, 4, out), 0);
    kr_overlay_free(ov);
    kr_overlay_free(NULL);
    kr_block_unref(NULL);
}

static void test_put_get_replace(void **state)
{
    (void)state;
    kr_overlay *ov = kr_overlay_new();
    kblock k = kb_new(256);
    kr_ov_entry a1 = kb_entry(&k, "alpha", 5, 10, false);
    kr_ov_entry b1 = kb_entry(&k, "beta", 4, 11, false);
    assert_int_equal(kr_overlay_put(ov, &a1), 0);
    assert_int_equal(kr_overlay_put(ov, &b1), 0);
    assert_int_equal(kr_overlay_count(ov), 2);
    assert_int_equal(kr_overlay_next(ov), 12);

    const kr_ov_entry *g = get_str(ov, "alpha");
    assert_non_null(g);
    assert_int_equal(g->offset, 10);
    assert_int_equal(g->ts, 1010);
    assert_false(g->tombstone);
    assert_memory_equal(g->key, "alpha", 5);
    assert_null(get_str(ov, "alph"));
    assert_null(get_str(ov, "alphab"));
    assert_null(get_str(ov, "gamma"));

    /* The overlay holds copies, not the caller's bytes. */
    assert_ptr_not_equal(g->key, a1.key);
    assert_ptr_equal(g->event, g->key);
    assert_int_equal(g->ev_len, 5);

    /* Replacing: same key, a newer offset; the same size fits the record,
     * which is overwritten where it is. */
    kr_ov_entry a2 = kb_entry(&k, "alpha", 5, 20, false);
    size_t bytes = kr_overlay_bytes(ov);
    assert_int_equal(kr_overlay_put(ov, &a2), 0);
    assert_int_equal(kr_overlay_count(ov), 2);
    const kr_ov_entry *g2 = get_str(ov, "alpha");
    assert_ptr_equal(g2, g);
    assert_int_equal(g2->offset, 20);
    assert_int_equal(kr_overlay_bytes(ov), bytes);
    assert_int_equal(kr_overlay_next(ov), 21);
    assert_int_equal(get_str(ov, "beta")->offset, 11);

    /* The empty key is a key like any other. */
    kr_ov_entry empty = kb_entry(&k, "", 0, 21, false);
    assert_int_equal(kr_overlay_put(ov, &empty), 0);
    assert_int_equal(kr_overlay_count(ov), 3);
    g = kr_overlay_get(ov, (const uint8_t *)"", 0);
    assert_non_null(g);
    assert_int_equal(g->offset, 21);
    assert_int_equal(kr_overlay_next(ov), 22);

    kr_overlay_free(ov);
    assert_int_equal(k.b->refs, 1); /* the overlay never took a reference */
    kr_block_unref(k.b);
}

static void test_tombstone_is_entry(void **state)
{
    (void)state;
    kr_overlay *ov = kr_overlay_new();
    kblock k = kb_new(64);
    kr_ov_entry a = kb_entry(&k, "k", 1, 1, false);
    kr_ov_entry t = kb_entry(&k, "k", 1, 2, true);
    assert_int_equal(kr_overlay_put(ov, &a), 0);
    assert_int_equal(kr_overlay_put(ov, &t), 0);
    assert_int_equal(kr_overlay_count(ov), 1);
    const kr_ov_entry *g = get_str(ov, "k");
    assert_non_null(g);
    assert_true(g->tombstone);
    assert_int_equal(g->offset, 2);
    /* A tombstone for a key never seen is kept too (it hides RocksDB's). */
    kr_ov_entry t2 = kb_entry(&k, "z", 1, 3, true);
    assert_int_equal(kr_overlay_put(ov, &t2), 0);
    assert_int_equal(kr_overlay_count(ov), 2);
    assert_true(get_str(ov, "z")->tombstone);
    /* And a value after a tombstone brings the key back. */
    kr_ov_entry a3 = kb_entry(&k, "k", 1, 4, false);
    assert_int_equal(kr_overlay_put(ov, &a3), 0);
    assert_false(get_str(ov, "k")->tombstone);
    kr_overlay_free(ov);
    kr_block_unref(k.b);
}

/*
 * Entries are copies: the caller's buffer is freed right after each put
 * (ASan reports any use of it), and the overlay's answers stay intact. A
 * replacement that does not fit moves the key to a new record; the bytes
 * account for records, left-behind ones included, and the table.
 */
static void test_copies_and_bytes(void **state)
{
    (void)state;
    kr_overlay *ov = kr_overlay_new();
    size_t base = kr_overlay_bytes(ov); /* the table alone */
    uint8_t ev[600];

    /* A key inside its event: [ "k1", 100 x 'a' ] stands for an event. */
    kr_block *b = kr_block_new(200);
    memcpy(b->data, "xxk1", 4);
    memset(b->data + 4, 'a', 100);
    kr_ov_entry e = {
        .key = b->data + 2, .key_len = 2, .event = b->data, .ev_len = 104, .offset = 1, .ts = 7};
    assert_int_equal(kr_overlay_put(ov, &e), 0);
    kr_block_unref(b);
    const kr_ov_entry *g = get_str(ov, "k1");
    assert_non_null(g);
    assert_int_equal(g->ev_len, 104);
    assert_ptr_equal(g->key, g->event + 2);
    assert_memory_equal(g->event, "xxk1aaa", 7);
    assert_int_equal(g->ts, 7);
    size_t one = kr_overlay_bytes(ov);
    assert_true(one > base);

    /* A key outside its event (a joined indefinite-length key). */
    memset(ev, 'b', 50);
    char key[] = "k2";
    kr_ov_entry o = {
        .key = (const uint8_t *)key, .key_len = 2, .event = ev, .ev_len = 50, .offset = 2};
    assert_int_equal(kr_overlay_put(ov, &o), 0);
    memset(ev, 0, sizeof ev);
    key[0] = 'z';
    g = get_str(ov, "k2");
    assert_non_null(g);
    assert_memory_equal(g->key, "k2", 2);
    assert_int_equal(g->event[0], 'b');
    assert_int_equal(g->event[49], 'b');
    assert_int_equal(g->ev_len, 50);

    /* Smaller: in place, nothing more held. */
    size_t before = kr_overlay_bytes(ov);
    memset(ev, 'c', 10);
    memcpy(ev + 10, "k1", 2);
    kr_ov_entry s1 = {.key = ev + 10, .key_len = 2, .event = ev, .ev_len = 12, .offset = 3};
    assert_int_equal(kr_overlay_put(ov, &s1), 0);
    memset(ev, 0, sizeof ev);
    g = get_str(ov, "k1");
    assert_int_equal(g->ev_len, 12);
    assert_int_equal(g->offset, 3);
    assert_int_equal(g->event[0], 'c');
    assert_memory_equal(g->key, "k1", 2);
    assert_int_equal(kr_overlay_bytes(ov), before);

    /* Larger than its record: a new one (in a chunk that may grow). */
    memset(ev, 'd', sizeof ev);
    memcpy(ev, "k1", 2);
    kr_ov_entry l1 = {.key = ev, .key_len = 2, .event = ev, .ev_len = 600, .offset = 4};
    assert_int_equal(kr_overlay_put(ov, &l1), 0);
    memset(ev, 0, sizeof ev);
    g = get_str(ov, "k1");
    assert_int_equal(g->ev_len, 600);
    assert_int_equal(g->event[599], 'd');
    assert_memory_equal(g->key, "k1", 2);
    assert_true(kr_overlay_bytes(ov) >= before);
    assert_int_equal(kr_overlay_count(ov), 2);
    assert_int_equal(kr_overlay_next(ov), 5);

    /* Putting an overlay's own entry again changes nothing. */
    assert_int_equal(kr_overlay_put(ov, g), 0);
    g = get_str(ov, "k1");
    assert_int_equal(g->ev_len, 600);
    assert_memory_equal(g->key, "k1", 2);
    assert_int_equal(g->event[599], 'd');

    /* A big record (over a quarter of a chunk) gets a chunk of its own. */
    size_t big = 512 * 1024;
    uint8_t *bev = malloc(big);
    assert_non_null(bev);
    memset(bev, 'e', big);
    memcpy(bev + 100, "big", 3);
    before = kr_overlay_bytes(ov);
    kr_ov_entry bg = {
        .key = bev + 100, .key_len = 3, .event = bev, .ev_len = (uint32_t)big, .offset = 9};
    assert_int_equal(kr_overlay_put(ov, &bg), 0);
    free(bev);
    g = get_str(ov, "big");
    assert_non_null(g);
    assert_int_equal(g->ev_len, big);
    assert_int_equal(g->event[big - 1], 'e');
    assert_true(kr_overlay_bytes(ov) >= before + big);
    /* Small records still go to the shared chunks afterwards. */
    kr_ov_entry small = {.key = (const uint8_t *)"s",
                         .key_len = 1,
                         .event = (const uint8_t *)"s",
                         .ev_len = 1,
                         .offset = 10};
    assert_int_equal(kr_overlay_put(ov, &small), 0);
    assert_non_null(get_str(ov, "s"));
    assert_non_null(get_str(ov, "k2"));
    kr_overlay_free(ov);
}

static void test_block_new(void **state)
{
    (void)state;
    kr_block *b = kr_block_new(0);
    assert_non_null(b);
    assert_int_equal(b->refs, 1);
    assert_int_equal(b->len, 0);
    assert_int_equal(b->cap, 0);
    kr_block_unref(b);
    assert_null(kr_block_new(SIZE_MAX));
    assert_null(kr_block_new(SIZE_MAX - 8));
}

/* Many thousands of keys across many blocks: every key found, the table
 * grew and stays under 70% full, replacing all of them (same sizes) holds
 * no more memory, and the blocks can go as soon as they were put. */
#define GROW_KEYS      60000
#define GROW_PER_BLOCK 1000

static void test_growth(void **state)
{
    (void)state;
    kr_overlay *ov = kr_overlay_new();
    size_t nblocks = GROW_KEYS / GROW_PER_BLOCK;
    char key[32];
    size_t held = 0;
    for (int round = 0; round < 2; round++) {
        for (size_t bi = 0; bi < nblocks; bi++) {
            kblock k = kb_new(GROW_PER_BLOCK * 16);
            for (size_t j = 0; j < GROW_PER_BLOCK; j++) {
                size_t i = bi * GROW_PER_BLOCK + j;
                int n = snprintf(key, sizeof key, "key-%05zu", i);
                uint64_t off = (uint64_t)round * GROW_KEYS + i;
                kr_ov_entry e = kb_entry(&k, key, (size_t)n, off, false);
                assert_int_equal(kr_overlay_put(ov, &e), 0);
            }
            kr_block_unref(k.b);
        }
        assert_int_equal(kr_overlay_count(ov), GROW_KEYS);
        assert_int_equal(kr_overlay_next(ov), (uint64_t)(round + 1) * GROW_KEYS);
        for (size_t i = 0; i < GROW_KEYS; i++) {
            int n = snprintf(key, sizeof key, "key-%05zu", i);
            const kr_ov_entry *g = kr_overlay_get(ov, (const uint8_t *)key, (size_t)n);
            assert_non_null(g);
            assert_int_equal(g->offset, (uint64_t)round * GROW_KEYS + i);
            assert_memory_equal(g->event, key, (size_t)n);
        }
        assert_null(get_str(ov, "key-60000"));
        assert_null(get_str(ov, "key-"));
        /* Records of 9 bytes: the entry and the bytes, rounded to 8, in
         * chunks; the table at least count / 0.7 slots of 16 bytes and at
         * most twice that. */
        size_t bytes = kr_overlay_bytes(ov);
        size_t table_min = (size_t)GROW_KEYS * 16 * 10 / 7;
        size_t recs = (size_t)GROW_KEYS * (sizeof(kr_ov_entry) + 9);
        assert_true(bytes >= table_min + recs);
        assert_true(bytes <= table_min * 2 + recs * 2 + 2 * 1024 * 1024);
        if (round == 0)
            held = bytes;
        else
            assert_int_equal(bytes, held); /* replaced in place */
    }
    kr_overlay_free(ov);
}

/* The batch path (kr_overlay_hash, kr_overlay_prefetch, kr_overlay_put_hashed)
 * as the store's fold uses it: every hash taken before the puts of the
 * batch - the table doubles several times in between - and each slot and
 * record asked for ahead; the overlay ends as kr_overlay_put makes it, and
 * replacing the keys again finds every one. */
static void test_put_hashed_batch(void **state)
{
    (void)state;
    kr_overlay *ov = kr_overlay_new();
    kr_overlay *ref = kr_overlay_new();
    enum { N = 5000 };
    static uint64_t hashes[N];
    char key[32];
    for (int round = 0; round < 2; round++) {
        kblock k = kb_new(N * 16);
        kr_ov_entry *es = calloc(N, sizeof *es);
        assert_non_null(es);
        for (size_t i = 0; i < N; i++) {
            int n = snprintf(key, sizeof key, "k%zu", i);
            es[i] = kb_entry(&k, key, (size_t)n, (uint64_t)round * N + i, i % 7 == 0);
            hashes[i] = kr_overlay_hash(ov, es[i].key, es[i].key_len);
            assert_true(hashes[i] != 0);
            kr_overlay_prefetch(ov, hashes[i], false);
        }
        for (size_t i = 0; i < N; i++) {
            if (i + 4 < N)
                kr_overlay_prefetch(ov, hashes[i + 4], true);
            assert_int_equal(kr_overlay_put_hashed(ov, &es[i], hashes[i]), 0);
            assert_int_equal(kr_overlay_put(ref, &es[i]), 0);
        }
        free(es);
        kr_block_unref(k.b);
        assert_int_equal(kr_overlay_count(ov), N);
        assert_int_equal(kr_overlay_next(ov), kr_overlay_next(ref));
        for (size_t i = 0; i < N; i++) {
            int n = snprintf(key, sizeof key, "k%zu", i);
            const kr_ov_entry *g = kr_overlay_get(ov, (const uint8_t *)key, (size_t)n);
            const kr_ov_entry *w = kr_overlay_get(ref, (const uint8_t *)key, (size_t)n);
            assert_non_null(g);
            assert_non_null(w);
            assert_int_equal(g->offset, (uint64_t)round * N + i);
            assert_int_equal(g->offset, w->offset);
            assert_int_equal(g->tombstone, w->tombstone);
            assert_memory_equal(g->key, key, (size_t)n);
        }
        assert_int_equal(kr_overlay_bytes(ov), kr_overlay_bytes(ref));
    }
    kr_overlay_free(ov);
    kr_overlay_free(ref);
}

static void test_put_older(void **state)
{
    (void)state;
    kr_overlay *ov = kr_overlay_new();
    kblock k = kb_new(64);
    kr_ov_entry a5 = kb_entry(&k, "a", 1, 5, false);
    kr_ov_entry a3 = kb_entry(&k, "a", 1, 3, true);
    kr_ov_entry b2 = kb_entry(&k, "b", 1, 2, false);
    assert_int_equal(kr_overlay_put(ov, &a5), 0);
    size_t bytes = kr_overlay_bytes(ov);
    assert_int_equal(kr_overlay_put_older(ov, &a3), 0);
    assert_int_equal(kr_overlay_bytes(ov), bytes); /* nothing taken */
    const kr_ov_entry *g = get_str(ov, "a");
    assert_int_equal(g->offset, 5);
    assert_false(g->tombstone);
    assert_int_equal(kr_overlay_put_older(ov, &b2), 1);
    assert_int_equal(get_str(ov, "b")->offset, 2);
    assert_int_equal(kr_overlay_count(ov), 2);
    assert_int_equal(kr_overlay_next(ov), 6);
    /* Into an empty overlay, put_older sets next too. */
    kr_overlay *ov2 = kr_overlay_new();
    assert_int_equal(kr_overlay_put_older(ov2, &a3), 1);
    assert_int_equal(kr_overlay_next(ov2), 4);
    assert_true(get_str(ov2, "a")->tombstone);
    kr_overlay_free(ov2);
    kr_overlay_free(ov);
    assert_int_equal(k.b->refs, 1);
    kr_block_unref(k.b);
}

typedef struct fe_state {
    size_t calls;
    size_t stop_at;
    uint64_t offsets;
} fe_state;

static int fe_cb(void *arg, const kr_ov_entry *e)
{
    fe_state *st = arg;
    st->calls++;
    st->offsets += e->offset;
    return st->calls == st->stop_at ? 42 : 0;
}

static void test_foreach(void **state)
{
    (void)state;
    kr_overlay *ov = kr_overlay_new();
    kblock k = kb_new(1024);
    char key[16];
    uint64_t sum = 0;
    for (int i = 0; i < 100; i++) {
        int n = snprintf(key, sizeof key, "k%d", i);
        kr_ov_entry e = kb_entry(&k, key, (size_t)n, (uint64_t)i, i % 3 == 0);
        assert_int_equal(kr_overlay_put(ov, &e), 0);
        sum += (uint64_t)i;
    }
    fe_state st = {0, 0, 0};
    assert_int_equal(kr_overlay_foreach(ov, fe_cb, &st), 0);
    assert_int_equal(st.calls, 100);
    assert_int_equal(st.offsets, sum);
    fe_state st2 = {0, 7, 0};
    assert_int_equal(kr_overlay_foreach(ov, fe_cb, &st2), 42);
    assert_int_equal(st2.calls, 7);
    kr_overlay_free(ov);
    kr_block_unref(k.b);
}

/* ---- sorted ---- */

typedef struct bkey {
    const char *p;
    size_t n;
} bkey;

#define BK(s)                                                                                      \
    {                                                                                              \
        s, sizeof(s) - 1                                                                           \
    }

/* In the unsigned bytewise order RocksDB uses. */
static const bkey sorted_keys[] = {
    BK(""),     BK("\x00"), BK("\x00\x00"), BK("\x00\xff"), BK("a"),        BK("a\x00"),
    BK("ab"),   BK("abc"),  BK("a\x7f"),    BK("a\x80"),    BK("a\xff"),    BK("b"),
    BK("\x7f"), BK("\x80"), BK("\xff"),     BK("\xff\x00"), BK("\xff\xff"),
};
#define NSORTED (sizeof sorted_keys / sizeof sorted_keys[0])

static kr_overlay *sorted_fixture(kblock *k)
{
    kr_overlay *ov = kr_overlay_new();
    *k = kb_new(256);
    /* Insert in a scrambled order. */
    for (size_t i = 0; i < NSORTED; i++) {
        size_t j = (i * 7 + 3) % NSORTED;
        kr_ov_entry e = kb_entry(k, sorted_keys[j].p, sorted_keys[j].n, j, false);
        assert_int_equal(kr_overlay_put(ov, &e), 0);
    }
    assert_int_equal(kr_overlay_count(ov), NSORTED);
    return ov;
}

/* out[0..n) must be sorted_keys[from..from+n). */
static void expect_run(const kr_ov_entry **out, size_t n, size_t from, size_t want_n)
{
    assert_int_equal(n, want_n);
    for (size_t i = 0; i < n; i++) {
        assert_int_equal(out[i]->key_len, sorted_keys[from + i].n);
        if (out[i]->key_len)
            assert_memory_equal(out[i]->key, sorted_keys[from + i].p, out[i]->key_len);
        assert_int_equal(out[i]->offset, from + i);
    }
}

static size_t idx_of(const char *p, size_t n)
{
    for (size_t i = 0; i < NSORTED; i++)
        if (sorted_keys[i].n == n && memcmp(sorted_keys[i].p, p, n) == 0)
            return i;
    fail_msg("no such key");
    return 0;
}

#define IDX(s) idx_of(s, sizeof(s) - 1)
#define U8(s)  ((const uint8_t *)(s))

static void test_sorted(void **state)
{
    (void)state;
    kblock k;
    kr_overlay *ov = sorted_fixture(&k);
    const kr_ov_entry *out[NSORTED + 4];
    size_t n;

    /* Everything. */
    n = kr_overlay_sorted(ov, NULL, 0, false, NULL, 0, NSORTED + 4, out);
    expect_run(out, n, 0, NSORTED);
    /* limit 0 and limit 1. */
    assert_int_equal(kr_overlay_sorted(ov, NULL, 0, false, NULL, 0, 0, out), 0);
    n = kr_overlay_sorted(ov, NULL, 0, false, NULL, 0, 1, out);
    expect_run(out, n, 0, 1);
    /* Limit: the first 5. */
    n = kr_overlay_sorted(ov, NULL, 0, false, NULL, 0, 5, out);
    expect_run(out, n, 0, 5);

    /* Prefix "a": a, a\0, ab, abc, a\x7f, a\x80, a\xff. */
    n = kr_overlay_sorted(ov, U8("a"), 1, false, NULL, 0, NSORTED, out);
    expect_run(out, n, IDX("a"), 7);
    /* Prefix "ab": ab, abc (keys that are prefixes of each other). */
    n = kr_overlay_sorted(ov, U8("ab"), 2, false, NULL, 0, NSORTED, out);
    expect_run(out, n, IDX("ab"), 2);
    /* Prefix "abc": only itself; "abcd": nothing. */
    n = kr_overlay_sorted(ov, U8("abc"), 3, false, NULL, 0, NSORTED, out);
    expect_run(out, n, IDX("abc"), 1);
    assert_int_equal(kr_overlay_sorted(ov, U8("abcd"), 4, false, NULL, 0, NSORTED, out), 0);
    /* Binary prefixes. */
    n = kr_overlay_sorted(ov, U8("\x00"), 1, false, NULL, 0, NSORTED, out);
    expect_run(out, n, IDX("\x00"), 3);
    n = kr_overlay_sorted(ov, U8("\xff"), 1, false, NULL, 0, NSORTED, out);
    expect_run(out, n, IDX("\xff"), 3);
    n = kr_overlay_sorted(ov, U8("\xff\xff"), 2, false, NULL, 0, NSORTED, out);
    expect_run(out, n, IDX("\xff\xff"), 1);

    /* After a key that exists: strictly after it. */
    n = kr_overlay_sorted(ov, NULL, 0, true, U8("a"), 1, NSORTED, out);
    expect_run(out, n, IDX("a\x00"), NSORTED - IDX("a\x00"));
    n = kr_overlay_sorted(ov, NULL, 0, true, U8("ab"), 2, NSORTED, out);
    expect_run(out, n, IDX("abc"), NSORTED - IDX("abc"));
    /* After the empty key (exists): everything but it. */
    n = kr_overlay_sorted(ov, NULL, 0, true, U8(""), 0, NSORTED, out);
    expect_run(out, n, 1, NSORTED - 1);
    /* After a key that does not exist. */
    n = kr_overlay_sorted(ov, NULL, 0, true, U8("aa"), 2, NSORTED, out);
    expect_run(out, n, IDX("ab"), NSORTED - IDX("ab"));
    n = kr_overlay_sorted(ov, NULL, 0, true, U8("a\x00\x00"), 3, NSORTED, out);
    expect_run(out, n, IDX("ab"), NSORTED - IDX("ab"));
    n = kr_overlay_sorted(ov, NULL, 0, true, U8("abd"), 3, NSORTED, out);
    expect_run(out, n, IDX("a\x7f"), NSORTED - IDX("a\x7f"));
    /* After the last key, and past it. */
    assert_int_equal(kr_overlay_sorted(ov, NULL, 0, true, U8("\xff\xff"), 2, NSORTED, out), 0);
    assert_int_equal(kr_overlay_sorted(ov, NULL, 0, true, U8("\xff\xff\x00"), 3, NSORTED, out), 0);
    /* Prefix + after + limit. */
    n = kr_overlay_sorted(ov, U8("a"), 1, true, U8("a"), 1, 2, out);
    expect_run(out, n, IDX("a\x00"), 2);
    n = kr_overlay_sorted(ov, U8("a"), 1, true, U8("a\x80"), 2, 10, out);
    expect_run(out, n, IDX("a\xff"), 1);
    n = kr_overlay_sorted(ov, U8("a"), 1, true, U8("ab"), 2, 2, out);
    expect_run(out, n, IDX("abc"), 2);
    /* `after` before the prefix range: the whole range. */
    n = kr_overlay_sorted(ov, U8("b"), 1, true, U8("\x00"), 1, 10, out);
    expect_run(out, n, IDX("b"), 1);
    /* `after` past the prefix range: nothing. */
    assert_int_equal(kr_overlay_sorted(ov, U8("a"), 1, true, U8("b"), 1, 10, out), 0);

    kr_overlay_free(ov);
    kr_block_unref(k.b);
}

/* Random binary keys against qsort: many prefix/after/limit combinations. */
static int ref_cmp(const void *pa, const void *pb)
{
    const kr_ov_entry *a = *(const kr_ov_entry *const *)pa;
    const kr_ov_entry *b = *(const kr_ov_entry *const *)pb;
    size_t n = a->key_len < b->key_len ? a->key_len : b->key_len;
    int c = n ? memcmp(a->key, b->key, n) : 0;
    if (c)
        return c;
    return a->key_len < b->key_len ? -1 : a->key_len > b->key_len;
}

static uint64_t rng_state = 0x9e3779b97f4a7c15ull;

static uint64_t rng(void)
{
    rng_state ^= rng_state << 13;
    rng_state ^= rng_state >> 7;
    rng_state ^= rng_state << 17;
    return rng_state;
}

static size_t rand_key(uint8_t *k)
{
    static const uint8_t alpha[] = {0x00, 0x01, 0x7f, 0x80, 0xfe, 0xff};
    size_t n = rng() % 5;
    for (size_t i = 0; i < n; i++)
        k[i] = alpha[rng() % sizeof alpha];
    return n;
}

#define RND_KEYS 1500

static int has_prefix(const kr_ov_entry *e, const uint8_t *p, size_t n)
{
    return e->key_len >= n && (n == 0 || memcmp(e->key, p, n) == 0);
}

typedef struct collect_state {
    const kr_ov_entry **v;
    size_t n;
} collect_state;

static int collect_cb(void *arg, const kr_ov_entry *e)
{
    collect_state *cs = arg;
    cs->v[cs->n++] = e;
    return 0;
}

static void test_sorted_random(void **state)
{
    (void)state;
    kr_overlay *ov = kr_overlay_new();
    kblock k = kb_new(RND_KEYS * 4);
    uint8_t key[8];
    for (int i = 0; i < RND_KEYS; i++) {
        size_t n = rand_key(key);
        if (kr_overlay_get(ov, key, n))
            continue;
        kr_ov_entry e = kb_entry(&k, key, n, (uint64_t)i, false);
        assert_int_equal(kr_overlay_put(ov, &e), 0);
    }
    size_t total = kr_overlay_count(ov);
    assert_true(total > 300);

    /* The reference: every entry, sorted. */
    const kr_ov_entry **all = calloc(total, sizeof *all);
    const kr_ov_entry **out = calloc(total + 1, sizeof *out);
    const kr_ov_entry **want = calloc(total, sizeof *want);
    assert_non_null(all);
    assert_non_null(out);
    assert_non_null(want);
    collect_state cs = {all, 0};
    assert_int_equal(kr_overlay_foreach(ov, collect_cb, &cs), 0);
    assert_int_equal(cs.n, total);
    qsort(all, total, sizeof *all, ref_cmp);
    assert_int_equal(kr_overlay_sorted(ov, NULL, 0, false, NULL, 0, total + 1, out), total);
    for (size_t i = 0; i < total; i++)
        assert_ptr_equal(all[i], out[i]);
    kr_ov_sortmem sm = {0};
    const kr_ov_entry **sorted = NULL;
    assert_int_equal(kr_overlay_sort_all(ov, &sm, &sorted, NULL), 0);
    for (size_t i = 0; i < total; i++)
        assert_ptr_equal(all[i], sorted[i]);
    kr_ov_sortmem_release(&sm);

    for (int iter = 0; iter < 400; iter++) {
        uint8_t pre[8], aft[8];
        size_t pn = rng() % 3 == 0 ? 0 : rand_key(pre) % 3;
        bool has_after = rng() % 2;
        size_t an = rand_key(aft);
        size_t limit = (size_t)(rng() % (total + 2));
        size_t wn = 0;
        for (size_t i = 0; i < total && wn < limit; i++) {
            if (!has_prefix(all[i], pre, pn))
                continue;
            if (has_after) {
                kr_ov_entry a = {.key = aft, .key_len = (uint32_t)an};
                const kr_ov_entry *ap = &a, *ip = all[i];
                if (ref_cmp(&ip, &ap) <= 0)
                    continue;
            }
            want[wn++] = all[i];
        }
        size_t n = kr_overlay_sorted(ov, pre, pn, has_after, aft, an, limit, out);
        assert_int_equal(n, wn);
        for (size_t i = 0; i < n; i++)
            assert_ptr_equal(out[i], want[i]);
    }
    free(all);
    free(out);
    free(want);
    kr_overlay_free(ov);
    kr_block_unref(k.b);
}

/* An overlay of n distinct random keys (0 to 20 bytes over three byte
 * values: many share their first 8 bytes and differ later) in k. */
static kr_overlay *random_overlay(kblock *k, size_t n)
{
    static const uint8_t alpha[] = {0x00, 'a', 0xff};
    kr_overlay *ov = kr_overlay_new();
    assert_non_null(ov);
    uint8_t key[20];
    while (kr_overlay_count(ov) < n) {
        size_t len = rng() % (sizeof key + 1);
        for (size_t i = 0; i < len; i++)
            key[i] = alpha[rng() % sizeof alpha];
        if (kr_overlay_get(ov, key, len) != NULL)
            continue;
        kr_ov_entry e = kb_entry(k, key, len, kr_overlay_count(ov), false);
        assert_int_equal(kr_overlay_put(ov, &e), 0);
    }
    return ov;
}

/* kr_overlay_sort_all of ov in sm (paced by p, unless NULL) gives qsort's
 * order of the same entries. */
static void check_sort_all(const kr_overlay *ov, kr_ov_sortmem *sm, kr_sched_pacer *p)
{
    size_t n = kr_overlay_count(ov);
    const kr_ov_entry **all = calloc(n + 1, sizeof *all), **sorted = NULL;
    assert_non_null(all);
    collect_state cs = {all, 0};
    assert_int_equal(kr_overlay_foreach(ov, collect_cb, &cs), 0);
    qsort(all, n, sizeof *all, ref_cmp);
    assert_int_equal(kr_overlay_sort_all(ov, sm, &sorted, p), 0);
    for (size_t i = 0; i < n; i++)
        assert_ptr_equal(sorted[i], all[i]);
    free(all);
}

/* Sorts of overlays of every size around the merge sort's runs, in one
 * kept memory: each against qsort's order; the memory grows for the
 * largest and does not move for the smaller ones after it. */
static void test_sort_all_sizes_in_kept_memory(void **state)
{
    (void)state;
    static const size_t sizes[] = {3000, 0, 1, 2, 15, 16, 17, 31, 32, 33, 100, 1000, 2999, 4000};
    kr_ov_sortmem sm = {0};
    void *grown = NULL;
    for (size_t si = 0; si < sizeof sizes / sizeof *sizes; si++) {
        size_t n = sizes[si];
        kblock k = kb_new(n * 20 + 1);
        kr_overlay *ov = random_overlay(&k, n);
        check_sort_all(ov, &sm, NULL);
        if (si == 0)
            grown = sm.mem;
        else if (n <= sizes[0])
            assert_ptr_equal(sm.mem, grown); /* kept, not allocated again */
        else
            assert_true(sm.cap >= n);
        assert_true(kr_ov_sortmem_bytes(&sm) >= n * 2 * 16);
        kr_overlay_free(ov);
        kr_block_unref(k.b);
    }
    kr_ov_sortmem_release(&sm);
    assert_null(sm.mem);
    assert_int_equal(kr_ov_sortmem_bytes(&sm), 0);
    kr_ov_sortmem_release(NULL);
}

/* A paced sort (a checkpoint's) sorts the same, and steps aside on the way:
 * fifty thousand keys are milliseconds of work, many quanta. */
static void test_sort_all_paced(void **state)
{
    (void)state;
    size_t n = 50000;
    kblock k = kb_new(n * 20 + 1);
    kr_overlay *ov = random_overlay(&k, n);
    kr_ov_sortmem sm = {0};
    kr_sched_pacer pace = {0};
    check_sort_all(ov, &sm, &pace);
    assert_true(pace.last_ns > 0);
    assert_true(pace.steps > 0);
    kr_ov_sortmem_release(&sm);
    kr_overlay_free(ov);
    kr_block_unref(k.b);
}

/* ---- timing (a figure, never asserted) ---- */

#define T_INSERTS   1000000
#define T_KEYS      100000
#define T_PER_BLOCK 1000

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void test_timing_1m_inserts(void **state)
{
    (void)state;
    kr_ov_entry *es = malloc(sizeof *es * T_INSERTS);
    kr_block **blocks = malloc(sizeof *blocks * (T_INSERTS / T_PER_BLOCK));
    assert_non_null(es);
    assert_non_null(blocks);
    char key[32];
    for (size_t bi = 0; bi < T_INSERTS / T_PER_BLOCK; bi++) {
        kblock k = kb_new(T_PER_BLOCK * 16);
        blocks[bi] = k.b;
        for (size_t j = 0; j < T_PER_BLOCK; j++) {
            size_t i = bi * T_PER_BLOCK + j;
            int n = snprintf(key, sizeof key, "user-%08u", (unsigned)(rng() % T_KEYS));
            es[i] = kb_entry(&k, key, (size_t)n, i, false);
        }
    }
    kr_overlay *ov = kr_overlay_new();
    double t0 = now_s();
    for (size_t i = 0; i < T_INSERTS; i++)
        if (kr_overlay_put(ov, &es[i]) != 0)
            fail_msg("put failed");
    double t1 = now_s();
    double t_put = t1 - t0;
    size_t keys = kr_overlay_count(ov);
    assert_true(keys > T_KEYS * 99 / 100 && keys <= T_KEYS);
    assert_int_equal(kr_overlay_next(ov), T_INSERTS);
    /* Gets of every key in random order, keys formatted beforehand. */
    char(*gk)[16] = malloc(sizeof *gk * T_KEYS);
    assert_non_null(gk);
    for (size_t i = 0; i < T_KEYS; i++)
        snprintf(gk[i], sizeof gk[i], "user-%08u", (unsigned)(rng() % T_KEYS));
    size_t found = 0;
    t1 = now_s();
    for (size_t i = 0; i < T_KEYS; i++)
        found += kr_overlay_get(ov, (const uint8_t *)gk[i], 13) != NULL;
    double t2 = now_s();
    assert_true(found > T_KEYS * 99 / 100);
    free(gk);
    kr_ov_sortmem sm = {0};
    const kr_ov_entry **order;
    assert_int_equal(kr_overlay_sort_all(ov, &sm, &order, NULL), 0);
    double t3 = now_s();
    for (size_t i = 1; i < keys; i++)
        assert_true(memcmp(order[i - 1]->key, order[i]->key, 13) < 0);
    printf("[ overlay ] %d inserts over %zu keys: %.1f ns/insert; %d gets: %.1f ns/get; "
           "sorted in %.1f ms; %zu bytes held\n",
           T_INSERTS, keys, t_put * 1e9 / T_INSERTS, T_KEYS, (t2 - t1) * 1e9 / T_KEYS,
           (t3 - t2) * 1e3, kr_overlay_bytes(ov));
    kr_overlay_free(ov);
    for (size_t bi = 0; bi < T_INSERTS / T_PER_BLOCK; bi++) {
        assert_int_equal(blocks[bi]->refs, 1);
        kr_block_unref(blocks[bi]);
    }
    kr_ov_sortmem_release(&sm);
    free(blocks);
    free(es);
}

/* ---- allocation failures ---- */

#define AF_KEYS 3000

static uint8_t af_events[300 * 1024];   /* event bytes (content irrelevant) */
static uint64_t af_model[AF_KEYS + 64]; /* offset + 1 of each key's newest put */

/* Every key the model knows has its newest entry, and nothing else is in. */
static void af_check(const kr_overlay *ov)
{
    size_t n = 0;
    for (size_t i = 0; i < AF_KEYS + 64; i++) {
        char key[16];
        int kl = snprintf(key, sizeof key, "key-%05zu", i);
        const kr_ov_entry *e = kr_overlay_get(ov, (const uint8_t *)key, (size_t)kl);
        if (af_model[i] == 0) {
            assert_null(e);
            continue;
        }
        assert_non_null(e);
        assert_int_equal(e->offset, af_model[i] - 1);
        n++;
    }
    assert_int_equal(kr_overlay_count(ov), n);
}

/* Put key i with an event of ev_len bytes. @return put's result. */
static int af_put(kr_overlay *ov, size_t i, size_t ev_len, uint64_t off, bool older)
{
    char key[16];
    int kl = snprintf(key, sizeof key, "key-%05zu", i);
    kr_ov_entry e = {.key = (const uint8_t *)key,
                     .key_len = (uint32_t)kl,
                     .event = af_events,
                     .ev_len = (uint32_t)ev_len,
                     .offset = off,
                     .ts = off};
    int rc = older ? kr_overlay_put_older(ov, &e) : kr_overlay_put(ov, &e);
    if (rc > 0 || (rc == 0 && !older))
        af_model[i] = off + 1;
    return rc;
}

/*
 * An overlay's life in which every allocation (calloc, table, mapped
 * chunks) may fail: 3000 keys (the table doubles up to a mapped one, chunks
 * double to 1 MiB), a record over a quarter of a chunk (a chunk of its
 * own), every key again with larger events (new records), older events
 * re-folded, then the full sort. A put that fails leaves the overlay as it
 * was: every key still has its newest entry.
 */
static int overlay_life(void *arg)
{
    (void)arg;
    memset(af_model, 0, sizeof af_model);
    kr_overlay *ov = kr_overlay_new();
    if (ov == NULL)
        return 1;
    kr_ov_sortmem sm = {0};
    int rc = 1;
    uint64_t off = 0;
    for (size_t round = 0; round < 2; round++) {
        for (size_t i = 0; i < AF_KEYS; i++, off++) {
            size_t len = i == 7 ? 280 * 1024 : (round == 0 ? 8 : 40) + i % 64;
            if (af_put(ov, i, len, off, false) < 0)
                goto out;
        }
    }
    for (size_t i = AF_KEYS - 32; i < AF_KEYS + 64; i++)
        if (af_put(ov, i, 24, i, true) < 0)
            goto out;
    const kr_ov_entry **sorted;
    if (kr_overlay_sort_all(ov, &sm, &sorted, NULL) < 0)
        goto out;
    for (size_t i = 1; i < kr_overlay_count(ov); i++)
        assert_true(memcmp(sorted[i - 1]->key, sorted[i]->key, 9) < 0);
    rc = 0;
out:
    kr_ov_sortmem_release(&sm);
    af_check(ov);
    kr_overlay_free(ov);
    return rc;
}

/* Counts the entries foreach visits, and those whose key starts with
 * `prefix`. */
struct prefix_count {
    const char *prefix;
    size_t all, matching;
};

static int count_prefix(void *arg, const kr_ov_entry *e)
{
    struct prefix_count *pc = arg;
    size_t n = strlen(pc->prefix);
    pc->all++;
    if (e->key_len >= n && memcmp(e->key, pc->prefix, n) == 0)
        pc->matching++;
    return 0;
}

/* Round r's key i and its value; @return their lengths. */
static int round_key(char *buf, size_t cap, int round, int i)
{
    return snprintf(buf, cap, "r%d-key-%d", round, i);
}

static int round_value(char *buf, size_t cap, int round, int i)
{
    return snprintf(buf, cap, "value-%d-%d-%s", round, i, "padding-padding");
}

/* Put keys 0..n of a round, key i at offset i. */
static void put_round(kr_overlay *ov, int n, int round)
{
    char key[32], val[64];
    for (int i = 0; i < n; i++) {
        int k = round_key(key, sizeof key, round, i);
        int v = round_value(val, sizeof val, round, i);
        kr_ov_entry e = {.key = (const uint8_t *)key,
                         .key_len = (uint32_t)k,
                         .event = (const uint8_t *)val,
                         .ev_len = (uint32_t)v,
                         .offset = (uint64_t)i};
        assert_int_equal(kr_overlay_put(ov, &e), 0);
    }
}

/* The first overlay grows through every table size, leaving none in the
 * pool (they once filled its four places for good); the checkpoint-sized
 * table it ends with gets a place, and the next overlay, sized from its
 * count, takes it - also when it asks for half the pooled size. */
static void test_pool_keeps_the_big_table(void **state)
{
    (void)state;
    enum { N = 150000 };
    kr_overlay_pool_release();
    kr_overlay *ov = kr_overlay_new();
    assert_non_null(ov);
    put_round(ov, N, 0);
    kr_ov_pool_stats st;
    kr_overlay_pool_stats(&st);
    assert_int_equal(st.tables, 0); /* the tables it grew out of are not kept */
    kr_overlay_free(ov);
    kr_overlay_pool_stats(&st);
    assert_int_equal(st.tables, 1);
    assert_true(st.largest_slots * 7 / 10 >= N);
    for (int round = 1; round <= 2; round++) {
        /* round 1 asks for as many keys as the pooled table is for (with
         * new_sized's quarter more), round 2 for half its size */
        ov = kr_overlay_new_sized(round == 1 ? N * 4 / 5 : N / 3);
        assert_non_null(ov);
        kr_overlay_pool_stats(&st);
        assert_int_equal(st.tables, 0); /* taken */
        put_round(ov, N, round);
        kr_overlay_pool_stats(&st);
        assert_int_equal(st.tables, 0); /* and it did not grow */
        kr_overlay_free(ov);
        kr_overlay_pool_stats(&st);
        assert_int_equal(st.tables, 1);
    }
    kr_overlay_pool_release();
    kr_overlay_pool_stats(&st);
    assert_int_equal(st.tables, 0);
    assert_int_equal(st.bytes, 0);
}

/*
 * Memory of freed overlays is used again (full-size chunks and mapped
 * tables, overlay.c's pool; a pooled table is zeroed when it is kept, not
 * when it is taken): an overlay made after one was freed, sized for as
 * many keys, holds its own keys exactly - nothing of the old one shows
 * through, not even to a walk over every slot.
 */
static void test_reuse_after_free(void **state)
{
    (void)state;
    enum { N = 20000 };
    char key[32], val[64];
    for (int round = 0; round < 3; round++) {
        kr_overlay *ov = kr_overlay_new_sized(round == 0 ? 0 : N);
        assert_non_null(ov);
        put_round(ov, N, round);
        assert_int_equal(kr_overlay_count(ov), N);
        for (int i = 0; i < N; i += 7) {
            int k = round_key(key, sizeof key, round, i);
            int v = round_value(val, sizeof val, round, i);
            const kr_ov_entry *e = kr_overlay_get(ov, (const uint8_t *)key, (size_t)k);
            assert_non_null(e);
            assert_int_equal(e->ev_len, v);
            assert_memory_equal(e->event, val, (size_t)v);
            assert_int_equal(e->offset, (uint64_t)i);
        }
        /* The previous round's keys are not there. */
        int k = round_key(key, sizeof key, round - 1, 5);
        assert_null(kr_overlay_get(ov, (const uint8_t *)key, (size_t)k));
        char prefix[16];
        snprintf(prefix, sizeof prefix, "r%d-", round);
        struct prefix_count pc = {.prefix = prefix};
        assert_int_equal(kr_overlay_foreach(ov, count_prefix, &pc), 0);
        assert_int_equal(pc.all, N);
        assert_int_equal(pc.matching, N);
        kr_overlay_free(ov);
    }
    kr_overlay_pool_release();
}

static void test_allocation_failures(void **state)
{
    (void)state;
    unsigned long allocs = alloc_fail_each(overlay_life, NULL, false, 1000);
    assert_true(allocs >= 15); /* overlay, tables, chunks, the big record, the sort */

    /* A block that cannot be had is NULL. */
    alloc_fail_arm(1);
    assert_null(kr_block_new(64));
    assert_true(alloc_fail_disarm());
}

static const struct CMUnitTest tests[] = {
    cmocka_unit_test(test_new_free),
    cmocka_unit_test(test_put_get_replace),
    cmocka_unit_test(test_tombstone_is_entry),
    cmocka_unit_test(test_copies_and_bytes),
    cmocka_unit_test(test_block_new),
    cmocka_unit_test(test_growth),
    cmocka_unit_test(test_put_hashed_batch),
    cmocka_unit_test(test_put_older),
    cmocka_unit_test(test_foreach),
    cmocka_unit_test(test_sorted),
    cmocka_unit_test(test_sorted_random),
    cmocka_unit_test(test_sort_all_sizes_in_kept_memory),
    cmocka_unit_test(test_sort_all_paced),
    cmocka_unit_test(test_timing_1m_inserts),
    cmocka_unit_test(test_pool_keeps_the_big_table),
    cmocka_unit_test(test_reuse_after_free),
    cmocka_unit_test(test_allocation_failures),
};

int main(void)
{
    return cmocka_run_group_tests(tests, NULL, NULL);
}
