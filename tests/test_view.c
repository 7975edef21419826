/*
 * tests/test_view.c - the RocksDB latest-value view: open/close/reopen,
 * markers, put/get/delete surviving a reopen (the flush), scans in bytewise
 * order with prefix/after/limit, topic isolation, snapshots, dropping a
 * topic, error sentences, checkpoints as ingested table files (order,
 * tombstones, atomicity, snapshots, failures), probes (which keys a topic
 * holds, asked in ascending order), and timing figures for a 100k-key
 * checkpoint (printed, never asserted). Each test works in its own mkdtemp directory,
 * removed afterwards.
 */
#include <ftw.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>
#include <rocksdb/c.h>

#include "util/buf.h"
#include "store/view.h"

#include "tmpdir.h"

#define U8(s) ((const uint8_t *)(s))
#define T(s)  (s), (sizeof(s) - 1)

typedef struct fixture {
    char dir[64];
    char path[96]; /* dir/view */
    kr_view *v;
    char err[512];
} fixture;

static int rm_cb(const char *p, const struct stat *sb, int flag, struct FTW *ftw)
{
    (void)sb;
    (void)flag;
    (void)ftw;
    return remove(p);
}

static int setup(void **state)
{
    fixture *f = calloc(1, sizeof *f);
    assert_non_null(f);
    snprintf(f->dir, sizeof f->dir, "%s/krappy-test-view-XXXXXX", kr_test_tmpdir());
    assert_non_null(mkdtemp(f->dir));
    snprintf(f->path, sizeof f->path, "%s/view", f->dir);
    assert_int_equal(kr_view_open(f->path, NULL, &f->v, f->err, sizeof f->err), 0);
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    fixture *f = *state;
    kr_view_close(f->v);
    nftw(f->dir, rm_cb, 16, FTW_DEPTH | FTW_PHYS);
    free(f);
    return 0;
}

/* Close and open again (a process restart, as far as RocksDB knows). */
static void restart(fixture *f)
{
    kr_view_close(f->v);
    f->v = NULL;
    assert_int_equal(kr_view_open(f->path, NULL, &f->v, f->err, sizeof f->err), 0);
}

static void write_ok(fixture *f, kr_view_batch *b)
{
    int rc = kr_view_write(f->v, b, f->err, sizeof f->err);
    if (rc != 0)
        fail_msg("write: %s", f->err);
    kr_view_batch_free(b);
}

static void put(kr_view_batch *b, const char *topic, const void *key, size_t klen, const char *ev)
{
    kr_view_batch_put(b, topic, strlen(topic), key, klen, U8(ev), strlen(ev));
}

/* 1 and the event in *buf (NUL-terminated), 0 absent. */
static int get(fixture *f, const char *topic, const void *key, size_t klen, char *buf, size_t cap)
{
    kr_buf out;
    kr_buf_init(&out, SIZE_MAX);
    int rc = kr_view_get(f->v, topic, strlen(topic), key, klen, &out, f->err, sizeof f->err);
    assert_true(rc == 0 || rc == 1);
    if (rc == 1) {
        assert_true(out.len < cap);
        memcpy(buf, out.data, out.len);
        buf[out.len] = 0;
    }
    kr_buf_free(&out);
    return rc;
}

static void expect_get(fixture *f, const char *topic, const void *key, size_t klen,
                       const char *want)
{
    char buf[256];
    if (want == NULL) {
        assert_int_equal(get(f, topic, key, klen, buf, sizeof buf), 0);
        assert_int_equal(kr_view_exists(f->v, topic, strlen(topic), key, klen), 0);
    } else {
        assert_int_equal(get(f, topic, key, klen, buf, sizeof buf), 1);
        assert_string_equal(buf, want);
        assert_int_equal(kr_view_exists(f->v, topic, strlen(topic), key, klen), 1);
    }
}

/* ---- scan helper: collects keys as (len, bytes) ---- */

typedef struct collected {
    size_t n;
    size_t stop_at; /* fn returns 1 on this call (1-based); 0 never */
    bool bad;       /* more keys or longer events than this holds */
    size_t full_klen[64];
    uint8_t keys[64][32];
    size_t klen[64];
    char evs[64][32];
} collected;

static int collect_cb(void *arg, const uint8_t *key, size_t klen, const uint8_t *ev, size_t elen)
{
    collected *c = arg;
    /* No assert here: a longjmp out of the scan would leave its iterator. */
    if (c->n >= 64 || elen >= 32) {
        c->bad = true;
        return 1;
    }
    c->full_klen[c->n] = klen;
    if (klen > 32)
        klen = 32;
    memcpy(c->keys[c->n], key, klen);
    c->klen[c->n] = klen;
    memcpy(c->evs[c->n], ev, elen);
    c->evs[c->n][elen] = 0;
    c->n++;
    return c->n == c->stop_at;
}

typedef struct bkey {
    const char *p;
    size_t n;
} bkey;

#define BK(s)                                                                                      \
    {                                                                                              \
        s, sizeof(s) - 1                                                                           \
    }

/* In unsigned bytewise order. */
static const bkey skeys[] = {
    BK(""),     BK("\x00"), BK("\x00\x00"), BK("\x00\xff"), BK("a"),        BK("a\x00"),
    BK("ab"),   BK("abc"),  BK("a\x7f"),    BK("a\x80"),    BK("a\xff"),    BK("b"),
    BK("\x7f"), BK("\x80"), BK("\xff"),     BK("\xff\x00"), BK("\xff\xff"),
};
#define NSKEYS (sizeof skeys / sizeof skeys[0])

static size_t sidx(const char *p, size_t n)
{
    for (size_t i = 0; i < NSKEYS; i++)
        if (skeys[i].n == n && memcmp(skeys[i].p, p, n) == 0)
            return i;
    fail_msg("no such key");
    return 0;
}

#define SIDX(s) sidx(s, sizeof(s) - 1)

static long scan(fixture *f, kr_view_snap *s, const char *topic, const void *prefix, size_t plen,
                 bool has_after, const void *after, size_t alen, size_t limit, collected *c,
                 bool *more)
{
    long n = kr_view_scan(f->v, s, topic, strlen(topic), prefix, plen, has_after, after, alen,
                          limit, collect_cb, c, more, f->err, sizeof f->err);
    if (n < 0)
        fail_msg("scan: %s", f->err);
    assert_false(c->bad);
    assert_int_equal((size_t)n, c->n);
    return n;
}

/* c holds skeys[from..from+want) with events "e<index>". */
static void expect_run(const collected *c, size_t from, size_t want)
{
    assert_int_equal(c->n, want);
    for (size_t i = 0; i < c->n; i++) {
        assert_int_equal(c->klen[i], skeys[from + i].n);
        if (c->klen[i])
            assert_memory_equal(c->keys[i], skeys[from + i].p, c->klen[i]);
        char ev[24];
        snprintf(ev, sizeof ev, "e%zu", from + i);
        assert_string_equal(c->evs[i], ev);
    }
}

/* ---- tests ---- */

static void test_open_close_reopen(void **state)
{
    fixture *f = *state;
    restart(f);
    assert_int_equal(kr_view_reopen(f->v, f->err, sizeof f->err), 0);
    assert_int_equal(kr_view_reopen(f->v, f->err, sizeof f->err), 0);
    kr_view_close(NULL);
    /* Explicit options. */
    kr_view_close(f->v);
    kr_view_opts o = {.block_cache_bytes = 1 << 20, .write_buffer_bytes = 1 << 20};
    assert_int_equal(kr_view_open(f->path, &o, &f->v, f->err, sizeof f->err), 0);
    assert_int_equal(kr_view_disk_bytes(f->v), 0);
}

static void test_open_file_fails(void **state)
{
    fixture *f = *state;
    char file[128];
    snprintf(file, sizeof file, "%s/plain-file", f->dir);
    FILE *fp = fopen(file, "w");
    assert_non_null(fp);
    fputs("not a database\n", fp);
    fclose(fp);
    kr_view *v = (kr_view *)1;
    char err[512] = "";
    assert_int_equal(kr_view_open(file, NULL, &v, err, sizeof err), -1);
    assert_null(v);
    assert_non_null(strstr(err, "cannot open the view at "));
    assert_non_null(strstr(err, file));
    assert_true(strlen(err) > strlen("cannot open the view at ") + strlen(file) + 2);
    /* Below a file too; and a tiny err buffer is cut, not overrun. */
    char below[160];
    snprintf(below, sizeof below, "%s/sub", file);
    char tiny[8];
    assert_int_equal(kr_view_open(below, NULL, &v, tiny, sizeof tiny), -1);
    assert_int_equal(strlen(tiny), sizeof tiny - 1);
    assert_int_equal(kr_view_open(below, NULL, &v, NULL, 0), -1);
}

static void test_marker(void **state)
{
    fixture *f = *state;
    uint64_t next = 7, keys = 7;
    assert_int_equal(kr_view_marker(f->v, T("orders"), &next, &keys, f->err, sizeof f->err), 0);
    assert_int_equal(next, 7);

    kr_view_batch *b = kr_view_batch_new();
    assert_non_null(b);
    put(b, "orders", "k1", 2, "ev1");
    put(b, "orders", "k2", 2, "ev2");
    kr_view_batch_marker(b, T("orders"), 1234567890123ull, 2);
    kr_view_batch_marker(b, T("big"), UINT64_MAX, UINT64_MAX - 1);
    kr_view_batch_marker(b, T(""), 0, 0);
    assert_int_equal(kr_view_batch_count(b), 5);
    write_ok(f, b);

    restart(f);
    assert_int_equal(kr_view_marker(f->v, T("orders"), &next, &keys, f->err, sizeof f->err), 1);
    assert_int_equal(next, 1234567890123ull);
    assert_int_equal(keys, 2);
    assert_int_equal(kr_view_marker(f->v, T("big"), &next, &keys, f->err, sizeof f->err), 1);
    assert_true(next == UINT64_MAX);
    assert_true(keys == UINT64_MAX - 1);
    assert_int_equal(kr_view_marker(f->v, T(""), &next, &keys, f->err, sizeof f->err), 1);
    assert_int_equal(next, 0);
    assert_int_equal(keys, 0);
    expect_get(f, "orders", "k1", 2, "ev1");
    expect_get(f, "orders", "k2", 2, "ev2");
    /* A marker is not a key, and a topic's key is not a marker. */
    expect_get(f, "orders", "", 0, NULL);
    assert_int_equal(kr_view_marker(f->v, T("orders2"), &next, &keys, f->err, sizeof f->err), 0);

    /* A newer marker replaces the old one. */
    b = kr_view_batch_new();
    kr_view_batch_marker(b, T("orders"), 99, 1);
    write_ok(f, b);
    assert_int_equal(kr_view_marker(f->v, T("orders"), &next, &keys, f->err, sizeof f->err), 1);
    assert_int_equal(next, 99);
    assert_int_equal(keys, 1);
}

/* With RocksDB's thread pool lowered: the view works the same, across a
 * reopen (the options, and their Env, are used again), and closes clean. */
static void test_background_low(void **state)
{
    fixture *f = *state;
    kr_view_close(f->v);
    kr_view_opts o = {.background_low = true};
    assert_int_equal(kr_view_open(f->path, &o, &f->v, f->err, sizeof f->err), 0);
    kr_view_batch *b = kr_view_batch_new();
    put(b, "t", "k1", 2, "one");
    write_ok(f, b);
    assert_int_equal(kr_view_reopen(f->v, f->err, sizeof f->err), 0);
    expect_get(f, "t", "k1", 2, "one");
    kr_view_close(f->v);
    assert_int_equal(kr_view_open(f->path, &o, &f->v, f->err, sizeof f->err), 0);
    expect_get(f, "t", "k1", 2, "one");
}

static void test_put_get_delete(void **state)
{
    fixture *f = *state;
    expect_get(f, "t", "absent", 6, NULL);

    kr_view_batch *b = kr_view_batch_new();
    put(b, "t", "k1", 2, "one");
    put(b, "t", "k2", 2, "two");
    put(b, "t", "\x00\xff", 2, "bin");
    put(b, "t", "", 0, "empty");
    write_ok(f, b);
    expect_get(f, "t", "k1", 2, "one");
    expect_get(f, "t", "", 0, "empty");
    assert_true(kr_view_disk_bytes(f->v) > 0);

    /* Survives a reopen (WAL off: only the flush put it on disk). */
    assert_int_equal(kr_view_reopen(f->v, f->err, sizeof f->err), 0);
    expect_get(f, "t", "k1", 2, "one");
    expect_get(f, "t", "k2", 2, "two");
    expect_get(f, "t", "\x00\xff", 2, "bin");
    expect_get(f, "t", "k", 1, NULL);
    expect_get(f, "t", "k1\x00", 3, NULL);
    expect_get(f, "u", "k1", 2, NULL);

    b = kr_view_batch_new();
    kr_view_batch_delete(b, T("t"), U8("k1"), 2);
    put(b, "t", "k2", 2, "two-b");
    kr_view_batch_delete(b, T("t"), U8("never"), 5);
    write_ok(f, b);
    restart(f);
    expect_get(f, "t", "k1", 2, NULL);
    expect_get(f, "t", "k2", 2, "two-b");
    expect_get(f, "t", "never", 5, NULL);

    /* A key longer than the stack buffers. */
    uint8_t big[2000];
    for (size_t i = 0; i < sizeof big; i++)
        big[i] = (uint8_t)(i * 7);
    b = kr_view_batch_new();
    kr_view_batch_put(b, T("t"), big, sizeof big, U8("huge"), 4);
    write_ok(f, b);
    expect_get(f, "t", big, sizeof big, "huge");
    expect_get(f, "t", big, sizeof big - 1, NULL);
    collected c = {0};
    bool more;
    assert_int_equal(scan(f, NULL, "t", big, 1000, true, big, 1999, 10, &c, &more), 1);
    assert_false(more);
    assert_string_equal(c.evs[0], "huge");
    assert_int_equal(c.full_klen[0], sizeof big);
    assert_memory_equal(c.keys[0], big, 32);

    /* An output buffer that refuses the bytes: -1 and a sentence. */
    kr_buf small;
    kr_buf_init(&small, 2);
    assert_int_equal(kr_view_get(f->v, T("t"), U8("k2"), 2, &small, f->err, sizeof f->err), -1);
    assert_true(strlen(f->err) > 0);
    kr_buf_free(&small);
}

/* All skeys in topic "t" with event "e<i>", plus neighbours in other topics. */
static void load_skeys(fixture *f)
{
    kr_view_batch *b = kr_view_batch_new();
    for (size_t i = 0; i < NSKEYS; i++) {
        char ev[24];
        snprintf(ev, sizeof ev, "e%zu", (NSKEYS - 1 - i));
        size_t j = NSKEYS - 1 - i; /* insert in reverse order */
        kr_view_batch_put(b, T("t"), U8(skeys[j].p), skeys[j].n, U8(ev), strlen(ev));
    }
    put(b, "s", "a", 1, "other");
    put(b, "u", "", 0, "other");
    kr_view_batch_put(b, T("t\x00"), U8("a"), 1, U8("other"), 5);
    kr_view_batch_marker(b, T("t"), 100, NSKEYS);
    write_ok(f, b);
}

static void test_scan_order_prefix_after_limit(void **state)
{
    fixture *f = *state;
    load_skeys(f);
    collected c;
    bool more;

#define RESET() memset(&c, 0, sizeof c)
    RESET();
    scan(f, NULL, "t", NULL, 0, false, NULL, 0, 100, &c, &more);
    expect_run(&c, 0, NSKEYS);
    assert_false(more);

    /* Limit and the more flag. */
    RESET();
    scan(f, NULL, "t", NULL, 0, false, NULL, 0, 5, &c, &more);
    expect_run(&c, 0, 5);
    assert_true(more);
    RESET();
    scan(f, NULL, "t", NULL, 0, false, NULL, 0, NSKEYS, &c, &more);
    expect_run(&c, 0, NSKEYS);
    assert_false(more);
    RESET();
    scan(f, NULL, "t", NULL, 0, false, NULL, 0, 0, &c, &more);
    assert_int_equal(c.n, 0);
    assert_true(more);

    /* Prefixes, including keys that are prefixes of each other. */
    RESET();
    scan(f, NULL, "t", "a", 1, false, NULL, 0, 100, &c, &more);
    expect_run(&c, SIDX("a"), 7);
    assert_false(more);
    RESET();
    scan(f, NULL, "t", "ab", 2, false, NULL, 0, 100, &c, &more);
    expect_run(&c, SIDX("ab"), 2);
    RESET();
    scan(f, NULL, "t", "abcd", 4, false, NULL, 0, 100, &c, &more);
    assert_int_equal(c.n, 0);
    assert_false(more);
    RESET();
    scan(f, NULL, "t", "\x00", 1, false, NULL, 0, 100, &c, &more);
    expect_run(&c, SIDX("\x00"), 3);
    RESET();
    scan(f, NULL, "t", "\xff", 1, false, NULL, 0, 100, &c, &more);
    expect_run(&c, SIDX("\xff"), 3);
    RESET();
    scan(f, NULL, "t", "\xff\xff", 2, false, NULL, 0, 100, &c, &more);
    expect_run(&c, SIDX("\xff\xff"), 1);
    RESET();
    scan(f, NULL, "t", "a", 1, false, NULL, 0, 3, &c, &more);
    expect_run(&c, SIDX("a"), 3);
    assert_true(more);

    /* After a key that exists: strictly after. */
    RESET();
    scan(f, NULL, "t", NULL, 0, true, "a", 1, 100, &c, &more);
    expect_run(&c, SIDX("a\x00"), NSKEYS - SIDX("a\x00"));
    RESET();
    scan(f, NULL, "t", NULL, 0, true, "", 0, 100, &c, &more);
    expect_run(&c, 1, NSKEYS - 1);
    RESET();
    scan(f, NULL, "t", NULL, 0, true, "\x00", 1, 100, &c, &more);
    expect_run(&c, SIDX("\x00\x00"), NSKEYS - SIDX("\x00\x00"));
    /* After a key that does not exist. */
    RESET();
    scan(f, NULL, "t", NULL, 0, true, "aa", 2, 100, &c, &more);
    expect_run(&c, SIDX("ab"), NSKEYS - SIDX("ab"));
    RESET();
    scan(f, NULL, "t", NULL, 0, true, "abd", 3, 100, &c, &more);
    expect_run(&c, SIDX("a\x7f"), NSKEYS - SIDX("a\x7f"));
    /* After the last key, or beyond it. */
    RESET();
    scan(f, NULL, "t", NULL, 0, true, "\xff\xff", 2, 100, &c, &more);
    assert_int_equal(c.n, 0);
    assert_false(more);
    RESET();
    scan(f, NULL, "t", NULL, 0, true, "\xff\xff\xff", 3, 100, &c, &more);
    assert_int_equal(c.n, 0);

    /* Prefix + after + limit: paging through prefix "a" two at a time. */
    RESET();
    scan(f, NULL, "t", "a", 1, true, "a", 1, 2, &c, &more);
    expect_run(&c, SIDX("a\x00"), 2);
    assert_true(more);
    RESET();
    scan(f, NULL, "t", "a", 1, true, "ab", 2, 2, &c, &more);
    expect_run(&c, SIDX("abc"), 2);
    assert_true(more);
    RESET();
    scan(f, NULL, "t", "a", 1, true, "a\x80", 2, 2, &c, &more);
    expect_run(&c, SIDX("a\xff"), 1);
    assert_false(more); /* "b" is outside the prefix */
    /* `after` before the prefix range, and past it. */
    RESET();
    scan(f, NULL, "t", "b", 1, true, "\x00", 1, 10, &c, &more);
    expect_run(&c, SIDX("b"), 1);
    RESET();
    scan(f, NULL, "t", "a", 1, true, "b", 1, 10, &c, &more);
    assert_int_equal(c.n, 0);
    assert_false(more);

    /* fn stopping early: the key it stopped on counts; more is told. */
    RESET();
    c.stop_at = 2;
    assert_int_equal(scan(f, NULL, "t", NULL, 0, false, NULL, 0, 100, &c, &more), 2);
    expect_run(&c, 0, 2);
    assert_true(more);
    RESET();
    c.stop_at = NSKEYS;
    scan(f, NULL, "t", NULL, 0, false, NULL, 0, 100, &c, &more);
    assert_int_equal(c.n, NSKEYS);
    assert_false(more);
#undef RESET
}

static void test_topic_isolation(void **state)
{
    fixture *f = *state;
    /* Without the length byte, ("a", "bx") and ("ab", "x") would be the
     * same RocksDB key, and topic "a"'s range would include topic "ab". */
    kr_view_batch *b = kr_view_batch_new();
    put(b, "a", "bx", 2, "a/bx");
    put(b, "ab", "x", 1, "ab/x");
    put(b, "a", "\xff\xff", 2, "a/ff");
    put(b, "\xff", "\xff", 1, "ff/ff");
    put(b, "\xff\xff", "", 0, "ffff/");
    put(b, "", "a", 1, "/a");
    write_ok(f, b);
    expect_get(f, "a", "bx", 2, "a/bx");
    expect_get(f, "ab", "x", 1, "ab/x");
    expect_get(f, "a", "b", 1, NULL);
    expect_get(f, "ab", "bx", 2, NULL);

    collected c = {0};
    bool more;
    scan(f, NULL, "a", NULL, 0, false, NULL, 0, 100, &c, &more);
    assert_int_equal(c.n, 2);
    assert_string_equal(c.evs[0], "a/bx");
    assert_string_equal(c.evs[1], "a/ff");
    memset(&c, 0, sizeof c);
    scan(f, NULL, "ab", NULL, 0, false, NULL, 0, 100, &c, &more);
    assert_int_equal(c.n, 1);
    assert_string_equal(c.evs[0], "ab/x");
    memset(&c, 0, sizeof c);
    scan(f, NULL, "\xff", NULL, 0, false, NULL, 0, 100, &c, &more);
    assert_int_equal(c.n, 1);
    assert_string_equal(c.evs[0], "ff/ff");
    memset(&c, 0, sizeof c);
    scan(f, NULL, "", NULL, 0, false, NULL, 0, 100, &c, &more);
    assert_int_equal(c.n, 1);
    assert_string_equal(c.evs[0], "/a");
    memset(&c, 0, sizeof c);
    scan(f, NULL, "none", NULL, 0, false, NULL, 0, 100, &c, &more);
    assert_int_equal(c.n, 0);
    assert_false(more);
}

static void test_snapshot_isolation(void **state)
{
    fixture *f = *state;
    kr_view_batch *b = kr_view_batch_new();
    put(b, "t", "k1", 2, "v1");
    put(b, "t", "k2", 2, "v2");
    kr_view_batch_marker(b, T("t"), 2, 2);
    write_ok(f, b);

    kr_view_snap *s = kr_view_snapshot(f->v);
    assert_non_null(s);
    b = kr_view_batch_new();
    kr_view_batch_delete(b, T("t"), U8("k1"), 2);
    put(b, "t", "k2", 2, "v2b");
    put(b, "t", "k3", 2, "v3");
    kr_view_batch_marker(b, T("t"), 5, 2);
    write_ok(f, b);

    collected c = {0};
    bool more;
    scan(f, s, "t", NULL, 0, false, NULL, 0, 100, &c, &more);
    assert_int_equal(c.n, 2);
    assert_string_equal(c.evs[0], "v1");
    assert_string_equal(c.evs[1], "v2");
    memset(&c, 0, sizeof c);
    scan(f, s, "t", NULL, 0, true, "k1", 2, 1, &c, &more);
    assert_int_equal(c.n, 1);
    assert_string_equal(c.evs[0], "v2");
    assert_false(more);
    /* The latest state. */
    memset(&c, 0, sizeof c);
    scan(f, NULL, "t", NULL, 0, false, NULL, 0, 100, &c, &more);
    assert_int_equal(c.n, 2);
    assert_string_equal(c.evs[0], "v2b");
    assert_string_equal(c.evs[1], "v3");
    expect_get(f, "t", "k1", 2, NULL);

    kr_view_snapshot_release(f->v, s);
    kr_view_snapshot_release(f->v, NULL);
}

static size_t count_topic(fixture *f, const char *topic)
{
    collected c = {0};
    bool more;
    scan(f, NULL, topic, NULL, 0, false, NULL, 0, 64, &c, &more);
    return c.n;
}

static void test_drop_topic(void **state)
{
    fixture *f = *state;
    static const char *topics[] = {"a", "ab", "b", "\xff", "a\xff", "\xff\xff"};
    kr_view_batch *b = kr_view_batch_new();
    for (size_t t = 0; t < sizeof topics / sizeof topics[0]; t++) {
        put(b, topics[t], "", 0, "x");
        put(b, topics[t], "k", 1, "x");
        put(b, topics[t], "\xff\xff", 2, "x");
        kr_view_batch_marker(b, topics[t], strlen(topics[t]), 10, 3);
    }
    write_ok(f, b);

    b = kr_view_batch_new();
    kr_view_batch_drop_topic(b, T("a"));
    kr_view_batch_drop_topic(b, T("\xff"));
    write_ok(f, b);
    restart(f);

    uint64_t next, keys;
    for (size_t t = 0; t < sizeof topics / sizeof topics[0]; t++) {
        const char *tp = topics[t];
        bool dropped = strcmp(tp, "a") == 0 || strcmp(tp, "\xff") == 0;
        assert_int_equal(count_topic(f, tp), dropped ? 0 : 3);
        assert_int_equal(kr_view_marker(f->v, tp, strlen(tp), &next, &keys, f->err, sizeof f->err),
                         dropped ? 0 : 1);
        expect_get(f, tp, "k", 1, dropped ? NULL : "x");
    }

    /* A dropped topic can be rebuilt in the same batch as the drop. */
    b = kr_view_batch_new();
    kr_view_batch_drop_topic(b, T("ab"));
    put(b, "ab", "new", 3, "y");
    kr_view_batch_marker(b, T("ab"), 20, 1);
    write_ok(f, b);
    assert_int_equal(count_topic(f, "ab"), 1);
    expect_get(f, "ab", "new", 3, "y");
    expect_get(f, "ab", "k", 1, NULL);
    assert_int_equal(kr_view_marker(f->v, T("ab"), &next, &keys, f->err, sizeof f->err), 1);
    assert_int_equal(next, 20);
}

/* ---- checkpoint files and probes ---- */

static void ckpt_ok(fixture *f, kr_view_ckpt *c)
{
    if (kr_view_ckpt_commit(c, f->err, sizeof f->err) != 0)
        fail_msg("commit: %s", f->err);
}

/* Whether DIR/view.ingest is there (it must not be after a checkpoint). */
static bool ingest_file_left(fixture *f)
{
    char p[128];
    snprintf(p, sizeof p, "%s.ingest", f->path);
    return access(p, F_OK) == 0;
}

static void test_ckpt_ingest(void **state)
{
    fixture *f = *state;
    /* Something from a batch first: the file's entries must win over it. */
    kr_view_batch *b = kr_view_batch_new();
    put(b, "t", "a", 1, "old-a");
    put(b, "t", "gone", 4, "old-gone");
    put(b, "t", "z", 1, "old-z");
    kr_view_batch_marker(b, T("t"), 3, 3);
    write_ok(f, b);
    kr_view_snap *snap = kr_view_snapshot(f->v);
    assert_non_null(snap);

    /* Topics in (length, name) order: "u" before "aa"; keys ascending;
     * markers last. */
    kr_view_ckpt *c = kr_view_ckpt_new(f->v, f->err, sizeof f->err);
    assert_non_null(c);
    kr_view_ckpt_put(c, T("t"), U8("a"), 1, U8("new-a"), 5);
    kr_view_ckpt_put(c, T("t"), U8("b"), 1, U8("new-b"), 5);
    kr_view_ckpt_delete(c, T("t"), U8("gone"), 4);
    kr_view_ckpt_put(c, T("u"), U8(""), 0, U8("empty"), 5);
    kr_view_ckpt_put(c, T("aa"), U8("\xff"), 1, U8("ff"), 2);
    kr_view_ckpt_marker(c, T("t"), 10, 3);
    kr_view_ckpt_marker(c, T("u"), 1, 1);
    kr_view_ckpt_marker(c, T("aa"), 7, 1);
    ckpt_ok(f, c);
    assert_false(ingest_file_left(f));

    expect_get(f, "t", "a", 1, "new-a");
    expect_get(f, "t", "b", 1, "new-b");
    expect_get(f, "t", "gone", 4, NULL);
    expect_get(f, "t", "z", 1, "old-z");
    expect_get(f, "u", "", 0, "empty");
    expect_get(f, "aa", "\xff", 1, "ff");
    uint64_t next, keys;
    assert_int_equal(kr_view_marker(f->v, T("t"), &next, &keys, f->err, sizeof f->err), 1);
    assert_int_equal(next, 10);
    assert_int_equal(keys, 3);
    /* A snapshot taken before still sees what it saw (SCAN cursors). */
    collected col = {0};
    bool more;
    scan(f, snap, "t", NULL, 0, false, NULL, 0, 100, &col, &more);
    assert_int_equal(col.n, 3);
    assert_string_equal(col.evs[0], "old-a");
    assert_string_equal(col.evs[1], "old-gone");
    kr_view_snapshot_release(f->v, snap);

    /* Durable: a restart keeps all of it. */
    restart(f);
    expect_get(f, "t", "a", 1, "new-a");
    expect_get(f, "t", "gone", 4, NULL);
    assert_int_equal(kr_view_marker(f->v, T("aa"), &next, &keys, f->err, sizeof f->err), 1);
    assert_int_equal(next, 7);

    /* A second checkpoint over the same keys. */
    c = kr_view_ckpt_new(f->v, f->err, sizeof f->err);
    assert_non_null(c);
    kr_view_ckpt_put(c, T("t"), U8("a"), 1, U8("newer-a"), 7);
    kr_view_ckpt_marker(c, T("t"), 11, 3);
    ckpt_ok(f, c);
    expect_get(f, "t", "a", 1, "newer-a");
    memset(&col, 0, sizeof col);
    scan(f, NULL, "t", NULL, 0, false, NULL, 0, 100, &col, &more);
    assert_int_equal(col.n, 3); /* a, b, z */

    /* Nothing added: nothing written, and fine. */
    c = kr_view_ckpt_new(f->v, f->err, sizeof f->err);
    assert_non_null(c);
    ckpt_ok(f, c);
    assert_false(ingest_file_left(f));
}

/* Out of order, or a failed write: nothing of the checkpoint lands, the
 * sentence says why, and the next one works. */
static void test_ckpt_refused(void **state)
{
    fixture *f = *state;
    kr_view_ckpt *c = kr_view_ckpt_new(f->v, f->err, sizeof f->err);
    assert_non_null(c);
    kr_view_ckpt_put(c, T("t"), U8("b"), 1, U8("vb"), 2);
    kr_view_ckpt_put(c, T("t"), U8("a"), 1, U8("va"), 2); /* out of order */
    kr_view_ckpt_marker(c, T("t"), 2, 2);
    assert_int_equal(kr_view_ckpt_commit(c, f->err, sizeof f->err), -1);
    assert_non_null(strstr(f->err, "checkpoint file"));
    expect_get(f, "t", "b", 1, NULL);
    uint64_t next, keys;
    assert_int_equal(kr_view_marker(f->v, T("t"), &next, &keys, f->err, sizeof f->err), 0);
    assert_false(ingest_file_left(f));

    /* Markers must come after every key. */
    c = kr_view_ckpt_new(f->v, f->err, sizeof f->err);
    kr_view_ckpt_marker(c, T("t"), 2, 2);
    kr_view_ckpt_put(c, T("t"), U8("a"), 1, U8("va"), 2);
    assert_int_equal(kr_view_ckpt_commit(c, f->err, sizeof f->err), -1);

    /* A topic name too long. */
    char topic[KR_VIEW_TOPIC_MAX + 1];
    memset(topic, 'x', sizeof topic);
    c = kr_view_ckpt_new(f->v, f->err, sizeof f->err);
    kr_view_ckpt_put(c, topic, sizeof topic, U8("a"), 1, U8("va"), 2);
    assert_int_equal(kr_view_ckpt_commit(c, f->err, sizeof f->err), -1);
    assert_non_null(strstr(f->err, "255"));

    /* Abandoned: no file left, nothing written. */
    c = kr_view_ckpt_new(f->v, f->err, sizeof f->err);
    kr_view_ckpt_put(c, T("t"), U8("a"), 1, U8("va"), 2);
    kr_view_ckpt_abort(c);
    kr_view_ckpt_abort(NULL);
    assert_false(ingest_file_left(f));
    expect_get(f, "t", "a", 1, NULL);

    c = kr_view_ckpt_new(f->v, f->err, sizeof f->err);
    kr_view_ckpt_put(c, T("t"), U8("a"), 1, U8("va"), 2);
    kr_view_ckpt_marker(c, T("t"), 1, 1);
    ckpt_ok(f, c);
    expect_get(f, "t", "a", 1, "va");
}

/* A probe against Gets: keys of a topic asked in ascending order - near
 * ones, far ones, before the first and past the last, other topics' keys
 * around it, deleted keys - one at a time and in batches. */
static void test_probe(void **state)
{
    fixture *f = *state;
    char key[32];
    kr_view_batch *b = kr_view_batch_new();
    for (unsigned i = 0; i < 2000; i += 2) { /* even keys live */
        int n = snprintf(key, sizeof key, "k%05u", i);
        put(b, "t", key, (size_t)n, "x");
    }
    put(b, "s", "k00001", 6, "other topic");
    put(b, "tt", "k00003", 6, "other topic");
    kr_view_batch_delete(b, T("t"), U8("k00010"), 6);
    write_ok(f, b);
    b = kr_view_batch_new();
    kr_view_batch_delete(b, T("t"), U8("k00012"), 6); /* a tombstone over a live key */
    write_ok(f, b);

    /* Dense: every key from k00000 to k02100. Answers are collected and
     * checked after the probe is freed (an assert must not jump out of a
     * probe holding the view's lock). */
    static int got[2200], want[2200];
    kr_view_probe *p = kr_view_probe_new(f->v, T("t"));
    assert_non_null(p);
    int before = kr_view_probe_has(p, U8("a"), 1); /* before every key */
    for (unsigned i = 0; i < 2100; i++) {
        int n = snprintf(key, sizeof key, "k%05u", i);
        want[i] = i % 2 == 0 && i < 2000 && i != 10 && i != 12;
        got[i] = kr_view_probe_has(p, U8(key), (size_t)n);
    }
    int after = kr_view_probe_has(p, U8("z"), 1); /* past the last */
    kr_view_probe_free(p);
    assert_int_equal(before, 0);
    assert_int_equal(after, 0);
    for (unsigned i = 0; i < 2100; i++)
        if (got[i] != want[i])
            fail_msg("probe k%05u: %d, want %d", i, got[i], want[i]);

    /* Sparse: far apart (seeks), and the same key twice. */
    p = kr_view_probe_new(f->v, T("t"));
    size_t m = 0;
    for (unsigned i = 0; i < 2000; i += 97) {
        int n = snprintf(key, sizeof key, "k%05u", i);
        want[m] = want[m + 1] = i % 2 == 0 && i != 10 && i != 12;
        got[m++] = kr_view_probe_has(p, U8(key), (size_t)n);
        got[m++] = kr_view_probe_has(p, U8(key), (size_t)n);
    }
    kr_view_probe_free(p);
    kr_view_probe_free(NULL);
    for (size_t i = 0; i < m; i++)
        if (got[i] != want[i])
            fail_msg("sparse probe %zu: %d, want %d", i, got[i], want[i]);

    /* All of them in one call: full batches of KR_VIEW_PROBE_BATCH and a
     * part of one, before the first key and past the last. */
    static char names[2102][8];
    static kr_view_probe_key keys[2102];
    static bool live[2102];
    keys[0] = (kr_view_probe_key){.key = U8("a"), .klen = 1};
    for (unsigned i = 0; i < 2100; i++) {
        int n = snprintf(names[i], sizeof names[i], "k%05u", i);
        keys[i + 1] = (kr_view_probe_key){.key = U8(names[i]), .klen = (size_t)n};
    }
    keys[2101] = (kr_view_probe_key){.key = U8("z"), .klen = 1};
    assert_true(2102 % KR_VIEW_PROBE_BATCH != 0);
    p = kr_view_probe_new(f->v, T("t"));
    assert_non_null(p);
    int many = kr_view_probe_many(p, keys, 2102, live);
    kr_view_probe_free(p);
    assert_int_equal(many, 0);
    assert_false(live[0]);
    assert_false(live[2101]);
    for (unsigned i = 0; i < 2100; i++) {
        bool w = i % 2 == 0 && i < 2000 && i != 10 && i != 12;
        if (live[i + 1] != w)
            fail_msg("batched probe k%05u: %d, want %d", i, live[i + 1], w);
    }

    /* A topic without keys, and one too long for a key. */
    p = kr_view_probe_new(f->v, T("none"));
    assert_non_null(p);
    int none = kr_view_probe_has(p, U8("k00000"), 6);
    kr_view_probe_free(p);
    assert_int_equal(none, 0);
    char topic[KR_VIEW_TOPIC_MAX + 1];
    memset(topic, 'x', sizeof topic);
    assert_null(kr_view_probe_new(f->v, topic, sizeof topic));
}

static void test_topic_too_long(void **state)
{
    fixture *f = *state;
    char topic[KR_VIEW_TOPIC_MAX + 2];
    memset(topic, 'x', sizeof topic);
    uint64_t next, keys;
    /* 255 bytes is fine. */
    kr_view_batch *b = kr_view_batch_new();
    kr_view_batch_put(b, topic, KR_VIEW_TOPIC_MAX, U8("k"), 1, U8("v"), 1);
    kr_view_batch_marker(b, topic, KR_VIEW_TOPIC_MAX, 1, 1);
    kr_view_batch_drop_topic(b, topic, KR_VIEW_TOPIC_MAX - 1);
    write_ok(f, b);
    assert_int_equal(
        kr_view_marker(f->v, topic, KR_VIEW_TOPIC_MAX, &next, &keys, f->err, sizeof f->err), 1);

    /* 256 is refused everywhere, with a sentence. */
    b = kr_view_batch_new();
    put(b, "ok", "k", 1, "v");
    kr_view_batch_put(b, topic, KR_VIEW_TOPIC_MAX + 1, U8("k"), 1, U8("v"), 1);
    f->err[0] = 0;
    assert_int_equal(kr_view_write(f->v, b, f->err, sizeof f->err), -1);
    assert_non_null(strstr(f->err, "255"));
    kr_view_batch_free(b);
    expect_get(f, "ok", "k", 1, NULL); /* nothing of it applied */

    kr_buf out;
    kr_buf_init(&out, 100);
    assert_int_equal(
        kr_view_get(f->v, topic, KR_VIEW_TOPIC_MAX + 1, U8("k"), 1, &out, f->err, sizeof f->err),
        -1);
    assert_int_equal(kr_view_exists(f->v, topic, KR_VIEW_TOPIC_MAX + 1, U8("k"), 1), -1);
    assert_int_equal(
        kr_view_marker(f->v, topic, KR_VIEW_TOPIC_MAX + 1, &next, &keys, f->err, sizeof f->err),
        -1);
    bool more = true;
    collected c = {0};
    assert_int_equal(kr_view_scan(f->v, NULL, topic, KR_VIEW_TOPIC_MAX + 1, NULL, 0, false, NULL, 0,
                                  10, collect_cb, &c, &more, f->err, sizeof f->err),
                     -1);
    assert_false(more);
    kr_buf_free(&out);
    kr_view_batch_free(NULL);
}

/* Write one raw key/value with RocksDB itself (the view closed). */
static void raw_put(fixture *f, const void *k, size_t klen, const void *v, size_t vlen)
{
    kr_view_close(f->v);
    f->v = NULL;
    rocksdb_options_t *o = rocksdb_options_create();
    char *e = NULL;
    rocksdb_t *db = rocksdb_open(o, f->path, &e);
    assert_null(e);
    rocksdb_writeoptions_t *wo = rocksdb_writeoptions_create();
    rocksdb_put(db, wo, k, klen, v, vlen, &e);
    assert_null(e);
    rocksdb_writeoptions_destroy(wo);
    rocksdb_close(db);
    rocksdb_options_destroy(o);
    assert_int_equal(kr_view_open(f->path, NULL, &f->v, f->err, sizeof f->err), 0);
}

static void test_malformed_marker(void **state)
{
    fixture *f = *state;
    uint64_t next = 5, keys = 5;
    /* Not CBOR [uint, uint]: garbage, a 3-array, a negative, trailing bytes. */
    static const struct {
        const char *v;
        size_t n;
    } bad[] = {
        {"\xff\xff", 2}, {"\x83\x01\x02\x03", 4}, {"\x82\x01\x20", 3}, {"\x82\x01\x02\x00", 4},
        {"", 0},         {"\x9f\x01\x02\xff", 4},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        raw_put(f, "m\x01t", 3, bad[i].v, bad[i].n);
        f->err[0] = 0;
        assert_int_equal(kr_view_marker(f->v, T("t"), &next, &keys, f->err, sizeof f->err), -1);
        assert_non_null(strstr(f->err, "malformed marker"));
        assert_int_equal(next, 5);
    }
    /* The same bytes written by hand the way the view writes them. */
    raw_put(f, "m\x01t", 3, "\x82\x18\x64\x07", 4);
    assert_int_equal(kr_view_marker(f->v, T("t"), &next, &keys, f->err, sizeof f->err), 1);
    assert_int_equal(next, 100);
    assert_int_equal(keys, 7);
}

/*
 * A reopen that fails leaves the view closed: every call answers with a
 * sentence instead of crashing, and a later reopen brings it back. The
 * database directory is moved away and a file put in its place to make the
 * open fail.
 */
static void test_reopen_fails_then_recovers(void **state)
{
    fixture *f = *state;
    kr_view_batch *b = kr_view_batch_new();
    put(b, "t", "k", 1, "v");
    kr_view_batch_marker(b, T("t"), 1, 1);
    write_ok(f, b);

    char moved[128];
    snprintf(moved, sizeof moved, "%s.moved", f->path);
    assert_int_equal(rename(f->path, moved), 0);
    FILE *fp = fopen(f->path, "w");
    assert_non_null(fp);
    fclose(fp);
    assert_int_equal(kr_view_reopen(f->v, f->err, sizeof f->err), -1);
    assert_non_null(strstr(f->err, "cannot open the view at "));

    uint64_t next, keys;
    char buf[64];
    f->err[0] = 0;
    assert_int_equal(kr_view_marker(f->v, T("t"), &next, &keys, f->err, sizeof f->err), -1);
    assert_non_null(strstr(f->err, "closed"));
    kr_buf out;
    kr_buf_init(&out, 100);
    assert_int_equal(kr_view_get(f->v, T("t"), U8("k"), 1, &out, f->err, sizeof f->err), -1);
    kr_buf_free(&out);
    assert_int_equal(kr_view_exists(f->v, T("t"), U8("k"), 1), -1);
    assert_null(kr_view_snapshot(f->v));
    assert_int_equal(kr_view_disk_bytes(f->v), 0);
    collected c = {0};
    bool more = true;
    assert_int_equal(kr_view_scan(f->v, NULL, T("t"), NULL, 0, false, NULL, 0, 10, collect_cb, &c,
                                  &more, f->err, sizeof f->err),
                     -1);
    assert_false(more);
    b = kr_view_batch_new();
    put(b, "t", "k2", 2, "v2");
    f->err[0] = 0;
    assert_int_equal(kr_view_write(f->v, b, f->err, sizeof f->err), -1);
    assert_non_null(strstr(f->err, "closed"));
    kr_view_batch_free(b);

    /* Put the directory back: the next reopen works and nothing was lost. */
    assert_int_equal(remove(f->path), 0);
    assert_int_equal(rename(moved, f->path), 0);
    assert_int_equal(kr_view_reopen(f->v, f->err, sizeof f->err), 0);
    assert_int_equal(get(f, "t", "k", 1, buf, sizeof buf), 1);
    assert_string_equal(buf, "v");
    assert_int_equal(kr_view_marker(f->v, T("t"), &next, &keys, f->err, sizeof f->err), 1);
    assert_int_equal(next, 1);
}

/* Two handles on one database in one process: the second is refused. */
static void test_open_twice_fails(void **state)
{
    fixture *f = *state;
    kr_view *v2 = NULL;
    char err[512] = "";
    assert_int_equal(kr_view_open(f->path, NULL, &v2, err, sizeof err), -1);
    assert_null(v2);
    assert_non_null(strstr(err, "cannot open the view at "));
}

/* ---- timing ---- */

#define T_KEYS 100000
#define T_GETS 20000 /* per pass: enough for a figure, short under valgrind */

typedef struct bench_page {
    size_t count;
    uint8_t last[64];
    size_t last_len;
    bool bad;
} bench_page;

static int bench_cb(void *arg, const uint8_t *key, size_t klen, const uint8_t *ev, size_t elen)
{
    bench_page *p = arg;
    (void)ev;
    if (klen > sizeof p->last || elen != 100) {
        p->bad = true;
        return 1;
    }
    memcpy(p->last, key, klen);
    p->last_len = klen;
    p->count++;
    return 0;
}

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void test_timing_100k_checkpoint(void **state)
{
    fixture *f = *state;
    /* An event ~100 bytes, like a small delivered [offset, ts, key, value]. */
    uint8_t ev[100];
    memset(ev, 'v', sizeof ev);
    char key[32];
    double t0 = now_s();
    kr_view_batch *b = kr_view_batch_new();
    for (unsigned i = 0; i < T_KEYS; i++) {
        int n = snprintf(key, sizeof key, "user-%08u", i);
        memcpy(ev, &i, sizeof i);
        kr_view_batch_put(b, T("bench"), U8(key), (size_t)n, ev, sizeof ev);
    }
    kr_view_batch_marker(b, T("bench"), T_KEYS, T_KEYS);
    double t1 = now_s();
    assert_int_equal(kr_view_write(f->v, b, f->err, sizeof f->err), 0);
    double t2 = now_s();
    kr_view_batch_free(b);

    /* Gets in a scrambled order: the first pass may read files, the second
     * is served from the block cache. */
    kr_buf out;
    kr_buf_init(&out, 1024);
    double pass[2];
    for (int p = 0; p < 2; p++) {
        double ta = now_s();
        for (unsigned i = 0; i < T_GETS; i++) {
            unsigned k = (i * 7919u) % T_KEYS;
            int n = snprintf(key, sizeof key, "user-%08u", k);
            kr_buf_reset(&out);
            if (kr_view_get(f->v, T("bench"), U8(key), (size_t)n, &out, f->err, sizeof f->err) != 1)
                fail_msg("get %s: %s", key, f->err);
        }
        pass[p] = now_s() - ta;
    }
    unsigned got;
    memcpy(&got, out.data, sizeof got);
    assert_int_equal(got, (T_GETS - 1) * 7919u % T_KEYS);
    kr_buf_free(&out);
    /* Misses (the bloom filter answers most). */
    double tm = now_s();
    for (unsigned i = 0; i < T_GETS; i++) {
        int n = snprintf(key, sizeof key, "nope-%08u", i);
        if (kr_view_exists(f->v, T("bench"), U8(key), (size_t)n) != 0)
            fail_msg("exists");
    }
    double tmiss = now_s() - tm;
    /* A full scan, in pages of 256 keys, each continuing strictly after
     * the last key of the one before. */
    double ts = now_s();
    bench_page pg = {0};
    size_t seen = 0;
    bool more = true;
    while (more) {
        pg.count = 0;
        long n = kr_view_scan(f->v, NULL, T("bench"), NULL, 0, seen != 0, pg.last, pg.last_len, 256,
                              bench_cb, &pg, &more, f->err, sizeof f->err);
        if (n < 0 || pg.bad || (size_t)n != pg.count || (n == 0 && more))
            fail_msg("scan page after %zu keys: %ld (%s)", seen, n, f->err);
        seen += (size_t)n;
    }
    double tscan = now_s() - ts;
    assert_int_equal(seen, T_KEYS);

    /* The same keys again as a checkpoint does it: probed in order (all
     * live) and written to a table file that is ingested. */
    double tc = now_s();
    kr_view_ckpt *c = kr_view_ckpt_new(f->v, f->err, sizeof f->err);
    kr_view_probe *p = kr_view_probe_new(f->v, T("bench"));
    assert_non_null(c);
    assert_non_null(p);
    unsigned live = 0;
    for (unsigned i = 0; i < T_KEYS; i++) {
        int n = snprintf(key, sizeof key, "user-%08u", i);
        live += kr_view_probe_has(p, U8(key), (size_t)n) == 1;
        kr_view_ckpt_put(c, T("bench"), U8(key), (size_t)n, ev, sizeof ev);
    }
    kr_view_probe_free(p);
    kr_view_ckpt_marker(c, T("bench"), 2 * T_KEYS, T_KEYS);
    double tc1 = now_s();
    assert_int_equal(kr_view_ckpt_commit(c, f->err, sizeof f->err), 0);
    double tc2 = now_s();
    assert_int_equal(live, T_KEYS);

    printf("[ view ] %d-key checkpoint: batch build %.1f ms, write+flush %.1f ms "
           "(%.0f keys/s); as a file: probe + build %.1f ms, ingest %.1f ms (%.0f keys/s); "
           "get %.2f us (first pass), %.2f us (cached); "
           "miss %.2f us; paged scan %.0f keys/s; %llu bytes on disk\n",
           T_KEYS, (t1 - t0) * 1e3, (t2 - t1) * 1e3, T_KEYS / (t2 - t1), (tc1 - tc) * 1e3,
           (tc2 - tc1) * 1e3, T_KEYS / (tc2 - tc), pass[0] * 1e6 / T_GETS, pass[1] * 1e6 / T_GETS,
           tmiss * 1e6 / T_GETS, T_KEYS / tscan, (unsigned long long)kr_view_disk_bytes(f->v));
}

#define VT(fn) cmocka_unit_test_setup_teardown(fn, setup, teardown)

static const struct CMUnitTest tests[] = {
    VT(test_open_close_reopen),
    VT(test_background_low),
    VT(test_open_file_fails),
    VT(test_marker),
    VT(test_put_get_delete),
    VT(test_scan_order_prefix_after_limit),
    VT(test_topic_isolation),
    VT(test_snapshot_isolation),
    VT(test_drop_topic),
    VT(test_ckpt_ingest),
    VT(test_ckpt_refused),
    VT(test_probe),
    VT(test_topic_too_long),
    VT(test_malformed_marker),
    VT(test_reopen_fails_then_recovers),
    VT(test_open_twice_fails),
    VT(test_timing_100k_checkpoint),
};

int main(void)
{
    return cmocka_run_group_tests(tests, NULL, NULL);
}
