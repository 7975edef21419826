/*
 * tests/test_compact.c - log compaction and topic settings in the store:
 * the keep rule; a rewrite on disk against a table of latest offsets (kept
 * and dropped events, a batch kept whole copied as it is, nothing to gain,
 * a merge, a failed lookup and a stop leaving the old files); and through
 * the store - settings kept across a reopen, retention and segment_bytes
 * per topic, segment_ms rolling a quiet segment, compaction of a topic
 * with overwrites and tombstones checked by the invariant (FETCH from the
 * first offset yields each live key's latest event as GET returns it, in
 * offset order), POLL across the gaps, and start-up after a crash in the
 * middle of a merge.
 */
#include <dirent.h>
#include <fcntl.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>
#include <event2/event.h>

#include "proto/cbor.h"
#include "store/compact.h"
#include "store/store.h"
#include "store/store_int.h"
#include "store/topic_config.h"
#include "util/clock.h"
#include "util/io.h"
#include "util/log.h"
#include "util/metrics.h"

#include "store_env.h"

KR_TEST_STORE_ENV("krappy-compact")

/* ---- the keep rule ---- */

static void test_keep_rule(void **state)
{
    (void)state;
    uint64_t now = 1000000, dr = 1000;
    kr_keep_in no_key = {.has_key = false, .offset = 5};
    assert_true(kr_compact_keep(&no_key, now, dr));
    kr_keep_in latest = {.has_key = true, .offset = 5, .found = 1, .latest = 5};
    assert_true(kr_compact_keep(&latest, now, dr));
    kr_keep_in older = {.has_key = true, .offset = 5, .found = 1, .latest = 9};
    assert_false(kr_compact_keep(&older, now, dr));
    kr_keep_in behind = {.has_key = true, .offset = 5, .found = 1, .latest = 3};
    assert_true(kr_compact_keep(&behind, now, dr)); /* a view behind: keep */
    kr_keep_in deleted = {.has_key = true, .offset = 5, .found = 0};
    assert_false(kr_compact_keep(&deleted, now, dr));
    kr_keep_in young_tomb = {.has_key = true, .tombstone = true, .offset = 5, .ts = now - 999};
    assert_true(kr_compact_keep(&young_tomb, now, dr));
    kr_keep_in old_tomb = {.has_key = true, .tombstone = true, .offset = 5, .ts = now - 1000};
    assert_false(kr_compact_keep(&old_tomb, now, dr));
    kr_keep_in future_tomb = {.has_key = true, .tombstone = true, .offset = 5, .ts = now + 5};
    assert_true(kr_compact_keep(&future_tomb, now, dr));
    assert_true(kr_compact_keep(&old_tomb, now, UINT64_MAX)); /* kept for ever */
    assert_false(kr_compact_keep(&young_tomb, now, 0));
    kr_keep_in tomb_superseded = {
        .has_key = true, .tombstone = true, .offset = 5, .ts = now, .found = 1, .latest = 7};
    assert_false(kr_compact_keep(&tomb_superseded, now, dr));
    assert_true(kr_compact_is_temp("00000000000000000000.compact"));
    assert_false(kr_compact_is_temp("00000000000000000000.seg"));
    assert_false(kr_compact_is_temp(".compact"));
}

/* ---- a rewrite on disk ---- */

/* Event i of a hand-made stream: key "k<i % nkeys>" (no key when i % 7 ==
 * 6), value "v<i>", a tombstone when i % 11 == 10, ts 1000 + i. */
/* Keys of their own for put_event, when set: event i gets key i % n. */
typedef struct test_key {
    const char *p;
    size_t n;
} test_key;
static const test_key *own_keys;
static size_t n_own_keys;

static void put_event(kr_buf *b, uint64_t i, int nkeys)
{
    char k[16], v[16];
    snprintf(k, sizeof k, "k%d", (int)(i % (uint64_t)nkeys));
    snprintf(v, sizeof v, "v%llu", (unsigned long long)i);
    kr_buf kb, vb;
    kr_buf_init(&kb, 64);
    kr_buf_init(&vb, 64);
    if (own_keys != NULL) {
        const test_key *tk = &own_keys[i % n_own_keys];
        kr_cbor_put_bytes(&kb, (const uint8_t *)tk->p, tk->n);
    } else if (i % 7 == 6) {
        kr_cbor_put_null(&kb);
    } else {
        kr_cbor_put_cstr(&kb, k);
    }
    if (i % 11 == 10)
        kr_cbor_put_null(&vb);
    else
        kr_cbor_put_cstr(&vb, v);
    kr_str key = {kb.data, kb.len}, val = {vb.data, vb.len};
    kr_enc_event(b, i, 1000 + i, &key, &val, NULL);
    kr_buf_free(&kb);
    kr_buf_free(&vb);
}

/* Write segment `sbase` of dirfd: batches of `per` events up to `end`. */
static void write_segment(int dirfd, uint64_t sbase, uint64_t end, uint32_t per, int nkeys)
{
    char name[KR_SEG_NAME_BYTES];
    kr_seg_name(name, sbase);
    int fd = openat(dirfd, name, O_RDWR | O_CREAT | O_TRUNC, 0640);
    assert_true(fd >= 0);
    uint8_t h[KR_SEG_HEADER_V2_BYTES];
    kr_seg_header_encode(h, sbase);
    uint64_t pos = 0;
    assert_int_equal(kr_pwrite_all(fd, h, sizeof h, pos), 0);
    pos += sizeof h;
    for (uint64_t b = sbase; b < end; b += per) {
        uint32_t n = (uint32_t)(end - b < per ? end - b : per);
        kr_buf pl;
        kr_buf_init(&pl, 1u << 20);
        for (uint32_t i = 0; i < n; i++)
            put_event(&pl, b + i, nkeys);
        kr_batch_hdr bh = {.base = b, .count = n, .len = (uint32_t)pl.len, .max_ts = 1000 + b + n};
        uint8_t hb[KR_BATCH_HEADER_MAX];
        uint32_t hl = kr_batch_header_encode(hb, &bh, pl.data);
        assert_int_equal(kr_pwrite_all(fd, hb, hl, pos), 0);
        assert_int_equal(kr_pwrite_all(fd, pl.data, pl.len, pos + hl), 0);
        pos += hl + pl.len;
        kr_buf_free(&pl);
    }
    close(fd);
}

/* The latest offsets of the keys, as the view would say: built from the
 * same stream (tombstoned keys absent). */
typedef struct table {
    uint64_t latest[64];
    bool live[64];
    int nkeys;
    bool fail;
    size_t calls, asked; /* lookups, and keys asked about */
} table;

static void table_fill(table *tb, uint64_t end, int nkeys)
{
    memset(tb, 0, sizeof *tb);
    tb->nkeys = nkeys;
    for (uint64_t i = 0; i < end; i++) {
        if (i % 7 == 6)
            continue;
        int k = (int)(i % (uint64_t)nkeys);
        tb->latest[k] = i;
        tb->live[k] = i % 11 != 10;
    }
}

/* The table's answers, checking what a rewrite promises: distinct keys. */
static int table_lookup(void *arg, kr_compact_key *keys, size_t n, char *err, size_t errlen)
{
    table *tb = arg;
    if (tb->fail) {
        snprintf(err, errlen, "the view is closed");
        return -1;
    }
    tb->calls++;
    tb->asked += n;
    for (size_t i = 0; i < n; i++) {
        const uint8_t *key = keys[i].key;
        size_t klen = keys[i].klen;
        assert_true(klen >= 2 && klen < 16 && key[0] == 'k');
        for (size_t j = 0; j < i; j++)
            assert_false(keys[j].klen == klen && memcmp(keys[j].key, key, klen) == 0);
        /* Ascending, as the view orders them (bytewise, shorter first). */
        if (i > 0) {
            size_t m = keys[i - 1].klen < klen ? keys[i - 1].klen : klen;
            int c = memcmp(keys[i - 1].key, key, m);
            assert_true(c < 0 || (c == 0 && keys[i - 1].klen < klen));
        }
        char num[16] = {0};
        memcpy(num, key + 1, klen - 1); /* key content: not NUL-terminated */
        int k = atoi(num);
        assert_true(k < tb->nkeys);
        keys[i].found = tb->live[k];
        keys[i].latest = tb->live[k] ? tb->latest[k] : 0;
    }
    return 0;
}

/* The offsets of the events of a segment file, in order (scan + walk). */
static size_t read_offsets(int dirfd, uint64_t sbase, uint64_t *out, size_t cap, bool *compacted)
{
    char name[KR_SEG_NAME_BYTES];
    kr_seg_name(name, sbase);
    int fd = openat(dirfd, name, O_RDONLY);
    assert_true(fd >= 0);
    kr_seg_scan sc;
    assert_int_equal(kr_seg_scan_fd(fd, &sc, NULL, NULL), 0);
    assert_false(sc.torn);
    assert_int_equal(sc.n_corrupt, 0);
    *compacted = sc.compacted;
    struct stat st;
    assert_int_equal(fstat(fd, &st), 0);
    uint8_t *all = malloc((size_t)st.st_size);
    assert_int_equal(pread(fd, all, (size_t)st.st_size, 0), st.st_size);
    size_t n = 0;
    for (uint64_t pos = sc.hdr.len; pos < (uint64_t)st.st_size;) {
        kr_batch_hdr h;
        assert_int_equal(kr_batch_header_decode(all + pos, (size_t)st.st_size - pos, &h), 0);
        const uint8_t *p = all + pos + h.hlen;
        for (uint32_t i = 0; i < h.count; i++) {
            kr_cbor_item ev;
            kr_event_view v;
            assert_int_equal(kr_cbor_read(p, h.len, &ev), 0);
            assert_int_equal(kr_event_view_read(&ev, &v), 0);
            assert_int_equal(v.offset, h.base + i);
            assert_true(n < cap);
            out[n++] = v.offset;
            p += ev.raw_len;
        }
        pos += h.hlen + h.len;
    }
    free(all);
    close(fd);
    return n;
}

static bool file_exists(int dirfd, const char *name)
{
    struct stat st;
    return fstatat(dirfd, name, &st, 0) == 0;
}

static void test_rewrite_keep_drop(void **state)
{
    (void)state;
    int dirfd = open(dir, O_RDONLY | O_DIRECTORY);
    assert_true(dirfd >= 0);
    /* Two segments [0, 100) and [100, 150) over 8 keys, batches of 10. */
    write_segment(dirfd, 0, 100, 10, 8);
    write_segment(dirfd, 100, 150, 10, 8);
    table tb;
    table_fill(&tb, 200, 8); /* as if the stream went on to 200 */
    /* Events 150..199 are not on disk: keys whose latest is there lose
     * every event of [0, 150) but their no-key ones. */
    uint64_t bases[2] = {0, 100};
    kr_rewrite rw = {.dirfd = dirfd,
                     .bases = bases,
                     .n = 2,
                     .end = 150,
                     .now_ms = 1000 + 200,
                     .delete_retention_ms = 0,
                     .lookup = table_lookup,
                     .lookup_arg = &tb};
    assert_int_equal(kr_compact_rewrite(&rw), 0);
    assert_int_equal(rw.events_in, 150);
    uint64_t got[200];
    bool compacted;
    size_t n = read_offsets(dirfd, 0, got, 200, &compacted);
    assert_true(compacted);
    assert_int_equal(rw.events_kept, n);
    /* Exactly the rule's choice: no-key events only (every key's latest
     * is at 192..199, all of them past the segments). */
    size_t k = 0;
    for (uint64_t i = 0; i < 150; i++)
        if (i % 7 == 6)
            assert_int_equal(got[k++], i);
    assert_int_equal(k, n);
    assert_false(file_exists(dirfd, "00000000000000000100.seg")); /* merged */
    assert_false(file_exists(dirfd, "00000000000000000000.compact"));
    assert_true(file_exists(dirfd, "00000000000000000000.idx"));
    kr_index_meta im;
    kr_index ix = {0};
    struct stat st;
    assert_int_equal(fstatat(dirfd, "00000000000000000000.seg", &st, 0), 0);
    assert_int_equal((uint64_t)st.st_size, rw.size);
    assert_int_equal(kr_index_load(dirfd, 0, rw.size, &im, &ix), 0);
    assert_int_equal(im.next, 150);
    kr_index_free(&ix);
    kr_index_free(&rw.idx);
    close(dirfd);
}

/* A segment larger than a read-ahead window, of batches larger than a
 * read: it is read in steps (and its kept bytes written in steps) and
 * keeps exactly the rule's events. */
static void test_rewrite_big_batches(void **state)
{
    (void)state;
    int dirfd = open(dir, O_RDONLY | O_DIRECTORY);
    assert_true(dirfd >= 0);
    enum { END = 90000, PER = 9000 };
    write_segment(dirfd, 0, END, PER, 8);
    struct stat st;
    assert_int_equal(fstatat(dirfd, "00000000000000000000.seg", &st, 0), 0);
    assert_true(st.st_size > 512 * 1024); /* two read-ahead windows at least */
    table tb;
    table_fill(&tb, END + 50, 8); /* every key's latest past the segment */
    uint64_t bases[1] = {0};
    kr_rewrite rw = {.dirfd = dirfd,
                     .bases = bases,
                     .n = 1,
                     .end = END,
                     .now_ms = 1000 + END + 50,
                     .lookup = table_lookup,
                     .lookup_arg = &tb};
    assert_int_equal(kr_compact_rewrite(&rw), 0);
    assert_int_equal(rw.events_in, END);
    assert_true(rw.size > 64 * 1024); /* written in several steps */
    static uint64_t got[END];
    bool compacted;
    size_t n = read_offsets(dirfd, 0, got, END, &compacted), k = 0;
    assert_true(compacted);
    for (uint64_t i = 0; i < END; i++)
        if (i % 7 == 6)
            assert_int_equal(got[k++], i);
    assert_int_equal(k, n);
    assert_int_equal(rw.events_kept, n);
    kr_index_free(&rw.idx);
    close(dirfd);
}

/* The whole of a file of dirfd (malloc'd). */
static uint8_t *slurp(int dirfd, const char *name, size_t *len)
{
    int fd = openat(dirfd, name, O_RDONLY);
    assert_true(fd >= 0);
    struct stat st;
    assert_int_equal(fstat(fd, &st), 0);
    uint8_t *p = malloc((size_t)st.st_size + 1);
    assert_non_null(p);
    assert_int_equal(pread(fd, p, (size_t)st.st_size, 0), st.st_size);
    close(fd);
    *len = (size_t)st.st_size;
    return p;
}

/* Rewrite segment 0 as rw says (it must succeed) and read the new file
 * (malloc'd), its hints gone again. */
static uint8_t *rewrite_and_read(int dirfd, kr_rewrite *rw, size_t *len)
{
    assert_int_equal(kr_compact_rewrite(rw), 0);
    kr_index_free(&rw->idx);
    uint8_t *p = slurp(dirfd, "00000000000000000000.seg", len);
    (void)unlinkat(dirfd, "00000000000000000000.idx", 0);
    return p;
}

/* The n files are the same bytes; they are freed, segment 0 removed. */
static void assert_same_files(int dirfd, uint8_t **file, const size_t *len, int n)
{
    for (int r = 1; r < n; r++) {
        assert_int_equal(len[r], len[0]);
        assert_memory_equal(file[r], file[0], len[0]);
    }
    for (int r = 0; r < n; r++)
        free(file[r]);
    assert_int_equal(unlinkat(dirfd, "00000000000000000000.seg", 0), 0);
}

/* Segment 0 written afresh (300 events over 40 keys, batches of 10), the
 * view's answers for it in *tb, and its rewrite. */
static kr_rewrite fresh_300(int dirfd, const uint64_t *bases, table *tb)
{
    write_segment(dirfd, 0, 300, 10, 40);
    table_fill(tb, 320, 40);
    return (kr_rewrite){.dirfd = dirfd,
                        .bases = bases,
                        .n = 1,
                        .end = 300,
                        .now_ms = 1320,
                        .delete_retention_ms = 10,
                        .lookup = table_lookup,
                        .lookup_arg = tb};
}

/* The keys of a few MiB of batches are looked up in one call, each once
 * (table_lookup checks it); a rewrite that looks them up batch by batch
 * writes the same bytes. */
static void test_rewrite_lookup_chunks(void **state)
{
    (void)state;
    int dirfd = open(dir, O_RDONLY | O_DIRECTORY);
    uint64_t bases[1] = {0};
    size_t len[2];
    uint8_t *file[2];
    size_t chunk[2] = {0, 1}, calls[2];
    for (int r = 0; r < 2; r++) {
        table tb;
        kr_rewrite rw = fresh_300(dirfd, bases, &tb);
        rw.chunk_bytes = chunk[r];
        file[r] = rewrite_and_read(dirfd, &rw, &len[r]);
        calls[r] = tb.calls;
        if (r == 0)
            assert_int_equal(tb.asked, 40); /* every key once */
    }
    assert_int_equal(calls[0], 1);
    assert_int_equal(calls[1], 30); /* a lookup per batch */
    assert_same_files(dirfd, file, len, 2);
    close(dirfd);
}

/* A rewrite in the compaction thread's memory, reused after a rewrite
 * that failed half way through its chunk and after one of another shape,
 * writes the same bytes as a rewrite in memory of its own. */
static void test_rewrite_reused_memory(void **state)
{
    (void)state;
    int dirfd = open(dir, O_RDONLY | O_DIRECTORY);
    uint64_t bases[1] = {0};
    kr_rewrite_mem *m = kr_rewrite_mem_new();
    assert_non_null(m);
    size_t len[3];
    uint8_t *file[3];
    for (int r = 0; r < 3; r++) {
        table tb;
        kr_rewrite rw = fresh_300(dirfd, bases, &tb);
        rw.mem = r == 0 ? NULL : m;
        if (r == 1) { /* a failure leaves the memory with a chunk in it */
            tb.fail = true;
            assert_int_equal(kr_compact_rewrite(&rw), -1);
            tb.fail = false;
        }
        if (r == 2) { /* a rewrite of many small chunks first */
            rw.chunk_bytes = 1;
            size_t n;
            free(rewrite_and_read(dirfd, &rw, &n));
            rw.chunk_bytes = 0;
            write_segment(dirfd, 0, 300, 10, 40);
        }
        file[r] = rewrite_and_read(dirfd, &rw, &len[r]);
    }
    assert_same_files(dirfd, file, len, 3);
    kr_rewrite_mem_free(m);
    close(dirfd);
}

typedef struct ingest_feed {
    kr_metric *bytes;
    atomic_bool stop;
} ingest_feed;

/* A server taking in 1 MiB a millisecond, far above KR_COMPACT_BUSY_BPS. */
static void *feed_main(void *arg)
{
    ingest_feed *f = arg;
    while (!atomic_load(&f->stop)) {
        kr_counter_add(f->bytes, 1u << 20);
        usleep(1000);
    }
    return NULL;
}

/* While the server takes in more than KR_COMPACT_BUSY_BPS a rewrite rests
 * after each work slice; with the server quiet it never does; and either
 * way it writes the same bytes. */
static void test_rewrite_yields_to_ingest(void **state)
{
    (void)state;
    int dirfd = open(dir, O_RDONLY | O_DIRECTORY);
    kr_metrics *m = kr_metrics_new();
    assert_non_null(m);
    ingest_feed f = {.bytes = kr_counter(m, "bytes_in", NULL, NULL)};
    assert_non_null(f.bytes);
    uint64_t bases[1] = {0};
    size_t len[2];
    uint8_t *file[2];
    uint64_t rests[2];
    for (int busy = 0; busy < 2; busy++) {
        write_segment(dirfd, 0, 3000, 10, 40);
        struct stat st;
        assert_int_equal(fstatat(dirfd, "00000000000000000000.seg", &st, 0), 0);
        table tb;
        table_fill(&tb, 3020, 40);
        /* A rate that makes the rewrite last 100 ms at least: several
         * work slices. */
        kr_rewrite rw = {.dirfd = dirfd,
                         .bases = bases,
                         .n = 1,
                         .end = 3000,
                         .now_ms = 4020,
                         .lookup = table_lookup,
                         .lookup_arg = &tb,
                         .rate = (uint64_t)st.st_size * 10,
                         .busy_bytes = f.bytes};
        pthread_t th;
        atomic_init(&f.stop, false);
        if (busy)
            assert_int_equal(pthread_create(&th, NULL, feed_main, &f), 0);
        file[busy] = rewrite_and_read(dirfd, &rw, &len[busy]);
        if (busy) {
            atomic_store(&f.stop, true);
            pthread_join(th, NULL);
        }
        rests[busy] = rw.rests;
    }
    assert_int_equal(rests[0], 0);
    assert_true(rests[1] >= 1);
    assert_same_files(dirfd, file, len, 2);
    kr_metrics_free(m);
    close(dirfd);
}

/* Checks that keys come in the view's order and says none is in it. */
static int ordered_lookup(void *arg, kr_compact_key *keys, size_t n, char *err, size_t errlen)
{
    (void)err;
    (void)errlen;
    kr_compact_key *last = arg;
    for (size_t i = 0; i < n; i++) {
        if (last->key != NULL) {
            size_t m = last->klen < keys[i].klen ? last->klen : keys[i].klen;
            int c = m > 0 ? memcmp(last->key, keys[i].key, m) : 0;
            assert_true(c < 0 || (c == 0 && last->klen < keys[i].klen));
        }
        *last = keys[i];
        keys[i].found = 0;
    }
    return 0;
}

/* Keys that share their first 8 bytes or more, a prefix of another, an
 * empty one, bytes above 0x7f: the view is asked about them in its order
 * (bytewise, the shorter first), each once. */
static void test_rewrite_asks_in_view_order(void **state)
{
    (void)state;
    static const test_key ks[] = {
        {"user:000000002", 14},
        {"user:000000001", 14},
        {"user:00000001", 13},
        {"", 0},
        {"a\0", 2},
        {"a", 1},
        {"\xff\xfe", 2},
        {"user:000", 8},
        {"user:0000000010", 15},
        {"userX", 5},
        {"user:000\xff", 9},
        {"user:000\x01", 9},
    };
    own_keys = ks;
    n_own_keys = sizeof ks / sizeof ks[0];
    int dirfd = open(dir, O_RDONLY | O_DIRECTORY);
    write_segment(dirfd, 0, 120, 7, 4);
    own_keys = NULL;
    kr_compact_key last = {0};
    uint64_t bases[1] = {0};
    kr_rewrite rw = {.dirfd = dirfd,
                     .bases = bases,
                     .n = 1,
                     .end = 120,
                     .now_ms = 2000,
                     .lookup = ordered_lookup,
                     .lookup_arg = &last};
    assert_int_equal(kr_compact_rewrite(&rw), 0);
    assert_non_null(last.key);      /* asked */
    assert_int_equal(last.klen, 2); /* the largest: "\xff\xfe" */
    assert_int_equal(rw.events_kept, 0);
    kr_index_free(&rw.idx);
    close(dirfd);
}

/* The stream ends where the segment ends: each key's latest event stays,
 * tombstones younger than delete_retention_ms stay, a batch kept whole is
 * copied byte for byte, and a rewrite that would change nothing leaves
 * the file as it is. */
static void test_rewrite_latest_and_tombstones(void **state)
{
    (void)state;
    int dirfd = open(dir, O_RDONLY | O_DIRECTORY);
    write_segment(dirfd, 0, 60, 5, 4);
    table tb;
    table_fill(&tb, 60, 4);
    uint64_t bases[1] = {0};
    /* Tombstones at 10, 21, 32, 43, 54 (keys 2, 1, 0, 3, 2): all but the
     * latest of their key are superseded or absent-with-age; with a long
     * delete_retention_ms the absent-key tombstones stay. */
    kr_rewrite rw = {.dirfd = dirfd,
                     .bases = bases,
                     .n = 1,
                     .end = 60,
                     .now_ms = 1060,
                     .delete_retention_ms = 1000000,
                     .lookup = table_lookup,
                     .lookup_arg = &tb};
    assert_int_equal(kr_compact_rewrite(&rw), 0);
    uint64_t got[64];
    bool compacted;
    size_t n = read_offsets(dirfd, 0, got, 64, &compacted);
    size_t k = 0;
    for (uint64_t i = 0; i < 60; i++) {
        kr_keep_in e = {
            .has_key = i % 7 != 6, .tombstone = i % 11 == 10, .offset = i, .ts = 1000 + i};
        int key = (int)(i % 4);
        e.found = tb.live[key];
        e.latest = tb.latest[key];
        if (kr_compact_keep(&e, 1060, 1000000)) {
            assert_true(k < n);
            assert_int_equal(got[k++], i);
        }
    }
    assert_int_equal(k, n);
    assert_true(n > 0 && n < 60);
    kr_index_free(&rw.idx);

    /* Again: nothing more goes - the file stays as it is. */
    struct stat before, after;
    assert_int_equal(fstatat(dirfd, "00000000000000000000.seg", &before, 0), 0);
    assert_int_equal(kr_compact_rewrite(&rw), 1);
    assert_int_equal(fstatat(dirfd, "00000000000000000000.seg", &after, 0), 0);
    assert_int_equal(before.st_ino, after.st_ino);
    assert_false(file_exists(dirfd, "00000000000000000000.compact"));
    kr_index_free(&rw.idx);
    close(dirfd);
}

/* A lookup that fails, or a stop, leaves the old segments whole. */
static void test_rewrite_failures_leave_old(void **state)
{
    (void)state;
    int dirfd = open(dir, O_RDONLY | O_DIRECTORY);
    write_segment(dirfd, 0, 40, 10, 4);
    write_segment(dirfd, 40, 80, 10, 4);
    struct stat before, after;
    assert_int_equal(fstatat(dirfd, "00000000000000000000.seg", &before, 0), 0);
    table tb;
    table_fill(&tb, 80, 4);
    tb.fail = true;
    uint64_t bases[2] = {0, 40};
    kr_rewrite rw = {.dirfd = dirfd,
                     .bases = bases,
                     .n = 2,
                     .end = 80,
                     .now_ms = 2000,
                     .lookup = table_lookup,
                     .lookup_arg = &tb};
    assert_int_equal(kr_compact_rewrite(&rw), -1);
    assert_non_null(strstr(rw.err, "closed"));
    kr_index_free(&rw.idx);
    atomic_bool stop;
    atomic_init(&stop, true);
    tb.fail = false;
    rw.stop = &stop;
    assert_int_equal(kr_compact_rewrite(&rw), -1);
    assert_string_equal(rw.err, "stopped");
    kr_index_free(&rw.idx);
    assert_int_equal(fstatat(dirfd, "00000000000000000000.seg", &after, 0), 0);
    assert_int_equal(before.st_ino, after.st_ino);
    assert_true(file_exists(dirfd, "00000000000000000040.seg"));
    assert_false(file_exists(dirfd, "00000000000000000000.compact"));
    /* A damaged batch: refused, left as it is. */
    int fd = openat(dirfd, "00000000000000000040.seg", O_RDWR);
    uint8_t x = 0x55;
    assert_int_equal(pwrite(fd, &x, 1, 100), 1);
    close(fd);
    rw.stop = NULL;
    assert_int_equal(kr_compact_rewrite(&rw), -1);
    assert_non_null(strstr(rw.err, "damaged"));
    kr_index_free(&rw.idx);
    assert_true(file_exists(dirfd, "00000000000000000040.seg"));
    close(dirfd);
}

/* ---- through the store ---- */

static kr_store *open_store(uint64_t segment_bytes, uint32_t cleanup)
{
    kr_store_opts o = {.data_dir = dir,
                       .segment_bytes = segment_bytes,
                       .checkpoint_ms = 3600000, /* by hand */
                       .overlay_bytes = 1u << 30,
                       .max_frame = 1u << 20,
                       .max_events = 1000,
                       .max_publish_events = 100000,
                       .max_wait_ms = 1000,
                       .rocksdb_log_dir = "",
                       .cleanup = cleanup,
                       .delete_retention_ms = 0};
    return kr_test_store_open(&o, base, metrics);
}

static kr_topic *configure(kr_store *s, const char *name, const char *const *set, size_t n)
{
    kr_topic_config c = {0};
    char msg[256];
    for (size_t i = 0; i < n; i++)
        assert_int_equal(kr_tc_parse_assign(set[i], &c, msg, sizeof msg), 0);
    done d = {0};
    kr_topic *t;
    assert_int_equal(kr_store_topic_configure(s, (const uint8_t *)name, strlen(name), &c, &t,
                                              on_done, &d, msg, sizeof msg),
                     KRAPPY_OK);
    kr_test_run_until(base, &d.calls, 1);
    assert_int_equal(d.res.err, KRAPPY_OK);
    return t;
}

/* Publish events: keys "k<j>" (nkeys of them, in turn from `from`) with
 * values "v<offset>"; a tombstone instead when `tomb`. */
static void pub(kr_store *s, kr_topic *t, int n, int nkeys, int from, bool tomb)
{
    kr_event_out_spec ev[256];
    char keys[256][16];
    uint8_t vals[256][32];
    assert_true(n <= 256);
    for (int j = 0; j < n; j++) {
        snprintf(keys[j], sizeof keys[j], "k%d", (from + j) % nkeys);
        char v[24];
        snprintf(v, sizeof v, "v%llu", (unsigned long long)(t->assigned + (uint64_t)j));
        kr_buf vb;
        kr_buf_init(&vb, 32);
        kr_cbor_put_cstr(&vb, v);
        memcpy(vals[j], vb.data, vb.len);
        ev[j] = (kr_event_out_spec){.key = keys[j],
                                    .key_len = strlen(keys[j]),
                                    .key_is_text = true,
                                    .value = tomb ? NULL : vals[j],
                                    .value_len = tomb ? 0 : vb.len};
        kr_buf_free(&vb);
    }
    kr_buf b, scratch;
    kr_request req;
    char msg[256];
    kr_test_publish_request(ev, (size_t)n, &b, &scratch, &req);
    done d = {0};
    uint64_t bad;
    assert_int_equal(
        kr_store_publish(s, t, &req, &scratch, false, NULL, on_done, &d, msg, sizeof msg, &bad),
        KRAPPY_OK);
    kr_test_run_until(base, &d.calls, 1);
    assert_int_equal(d.res.err, KRAPPY_OK);
    kr_buf_free(&b);
    kr_buf_free(&scratch);
}

static void checkpoint(kr_store *s, kr_topic *t)
{
    kr_store_checkpoint(s);
    for (int i = 0; i < 10000 && (t->marker < t->next || t->frozen != NULL); i++)
        event_base_loop(base, EVLOOP_ONCE);
    assert_int_equal(t->marker, t->next);
}

/* Let compaction run until nothing more is due (bounded). */
static void compact_all(kr_store *s, kr_topic *t)
{
    for (int round = 0; round < 2000; round++) {
        kr_compact_poke(s, t);
        if (!kr_compact_busy(s))
            break;
        while (kr_compact_busy(s))
            event_base_loop(base, EVLOOP_ONCE);
    }
}

/* One event read back: offset, key text ("" for none), value text
 * ("" for a tombstone). */
typedef struct got_ev {
    uint64_t offset;
    char key[16], value[24];
} got_ev;

static void decode_events(const uint8_t *p, size_t len, got_ev *out, size_t *n, size_t cap)
{
    while (len > 0) {
        kr_cbor_item ev;
        kr_event_view v;
        assert_int_equal(kr_cbor_read(p, len, &ev), 0);
        assert_int_equal(kr_event_view_read(&ev, &v), 0);
        assert_true(*n < cap);
        got_ev *g = &out[(*n)++];
        memset(g, 0, sizeof *g);
        g->offset = v.offset;
        if (v.key.kind != KR_CBOR_NULL)
            kr_cbor_str_copy(&v.key, (uint8_t *)g->key, sizeof g->key - 1);
        if (v.value.kind != KR_CBOR_NULL)
            kr_cbor_str_copy(&v.value, (uint8_t *)g->value, sizeof g->value - 1);
        p += ev.raw_len;
        len -= ev.raw_len;
    }
}

/* FETCH everything from the first offset, small pages. @return events. */
static size_t fetch_all(kr_store *s, kr_topic *t, got_ev *out, size_t cap)
{
    size_t n = 0;
    uint64_t at = t->first;
    char msg[256];
    for (int guard = 0; guard < 100000 && at < t->next; guard++) {
        kr_fetch_result r;
        assert_int_equal(kr_store_fetch(s, t, at, 7, 1u << 20, &r, msg, sizeof msg), KRAPPY_OK);
        if (r.count == 0)
            break;
        struct evbuffer *eb = evbuffer_new();
        assert_int_equal(kr_store_fetch_emit(s, &r, eb, msg, sizeof msg), 0);
        size_t len = evbuffer_get_length(eb);
        decode_events(evbuffer_pullup(eb, (ssize_t)len), len, out, &n, cap);
        evbuffer_free(eb);
        assert_true(r.next > at);
        at = r.next;
    }
    for (size_t i = 1; i < n; i++)
        assert_true(out[i].offset > out[i - 1].offset);
    return n;
}

/* The invariant: each live key's latest event, as GET returns it, is in
 * the FETCH from the first offset, and nothing after it has that key. */
static void check_invariant(kr_store *s, kr_topic *t, int nkeys)
{
    static got_ev evs[20000];
    size_t n = fetch_all(s, t, evs, sizeof evs / sizeof evs[0]);
    for (int k = 0; k < nkeys; k++) {
        char key[16];
        snprintf(key, sizeof key, "k%d", k);
        kr_buf b;
        kr_buf_init(&b, 1u << 20);
        char msg[128];
        int rc = kr_store_get(s, t, (const uint8_t *)key, strlen(key), &b, msg, sizeof msg);
        assert_true(rc >= 0);
        if (rc == 1) {
            size_t gn = 0;
            got_ev g;
            decode_events(b.data, b.len, &g, &gn, 1);
            size_t last = SIZE_MAX;
            for (size_t i = 0; i < n; i++)
                if (strcmp(evs[i].key, key) == 0)
                    last = i;
            assert_true(last != SIZE_MAX);
            assert_int_equal(evs[last].offset, g.offset);
            assert_string_equal(evs[last].value, g.value);
        }
        kr_buf_free(&b);
    }
}

static void test_store_settings_persist(void **state)
{
    (void)state;
    kr_store *s = open_store(1u << 20, 0);
    static const char *const set[] = {"cleanup=compact,delete", "segment_ms=5s",
                                      "retention_bytes=1M"};
    kr_topic *t = configure(s, "t", set, 3);
    assert_true(t->ready);
    assert_int_equal(t->cfg.v[KR_TC_CLEANUP], 3);
    assert_int_equal(t->cfg.v[KR_TC_SEGMENT_MS], 5000);
    assert_int_equal(t->cfg.v[KR_TC_SEGMENT_BYTES], 1u << 20); /* the server's */
    assert_int_equal(t->own.mask, (1u << KR_TC_CLEANUP) | (1u << KR_TC_SEGMENT_MS) |
                                      (1u << KR_TC_RETENTION_BYTES));
    kr_store_close(s);
    /* Reopened with other defaults: the topic keeps its own, takes the rest. */
    s = open_store(2u << 20, KR_CLEANUP_COMPACT);
    t = kr_store_topic(s, (const uint8_t *)"t", 1);
    assert_non_null(t);
    assert_int_equal(t->cfg.v[KR_TC_CLEANUP], 3);
    assert_int_equal(t->cfg.v[KR_TC_SEGMENT_MS], 5000);
    assert_int_equal(t->cfg.v[KR_TC_RETENTION_BYTES], 1u << 20);
    assert_int_equal(t->cfg.v[KR_TC_SEGMENT_BYTES], 2u << 20);
    /* A topic made now takes the new defaults. */
    static const char *const one[] = {"segment_bytes=64K"};
    kr_topic *u = configure(s, "u", one, 1);
    assert_int_equal(u->cfg.v[KR_TC_CLEANUP], KR_CLEANUP_COMPACT);
    /* Deleting a topic deletes its settings: the name comes back plain. */
    done d = {0};
    char msg[256];
    assert_int_equal(kr_store_delete_topic(s, u, on_done, &d, msg, sizeof msg), KRAPPY_OK);
    kr_test_run_until(base, &d.calls, 1);
    kr_store_close(s);
    s = open_store(1u << 20, 0);
    static const char *const none[] = {"retention_ms=1h"};
    u = configure(s, "u", none, 1);
    assert_int_equal(u->cfg.v[KR_TC_SEGMENT_BYTES], 1u << 20);
    assert_int_equal(u->own.mask, 1u << KR_TC_RETENTION_MS);
    kr_store_close(s);
}

/* segment_bytes and retention per topic; segment_ms rolls a quiet one. */
static void test_store_segments_per_topic(void **state)
{
    (void)state;
    kr_store *s = open_store(1u << 20, 0);
    static const char *const small[] = {"segment_bytes=4K", "retention_bytes=12K"};
    kr_topic *a = configure(s, "a", small, 2);
    static const char *const big[] = {"cleanup=compact"};
    kr_topic *b = configure(s, "b", big, 1);
    for (int i = 0; i < 40; i++) {
        pub(s, a, 20, 1000, i * 20, false);
        pub(s, b, 20, 1000, i * 20, false);
    }
    assert_true(a->n_segs >= 4); /* ~19 KiB in segments of 4 KiB */
    assert_int_equal(b->n_segs, 1);
    checkpoint(s, a);
    checkpoint(s, b);
    /* Retention retired a's oldest segments (delete policy); b has none. */
    assert_true(a->first > 0);
    assert_true(a->bytes <= 12 * 1024 + 4096);
    /* segment_ms: b's quiet active segment is rolled. */
    static const char *const quick[] = {"segment_ms=100"};
    configure(s, "b", quick, 1);
    uint64_t first = b->segs[0]->first_write_ms;
    assert_true(first > 0);
    kr_store_roll_quiet(s, b, first + 50); /* not old enough yet */
    assert_int_equal(b->n_segs, 1);
    /* A roll that fails (a directory where the new segment's file goes) is
     * tried again after the tick's interval, doubling - an hour here - not
     * at every tick. */
    char seg[600], name[KR_SEG_NAME_BYTES];
    kr_seg_name(name, b->next);
    snprintf(seg, sizeof seg, "%s/%s", b->dir, name);
    assert_int_equal(mkdir(seg, 0755), 0);
    for (int i = 0; i < 10000 && b->roll_retry.failures == 0; i++) {
        kr_store_roll_quiet(s, b, first + 100);
        if (b->roll_retry.failures == 0)
            event_base_loop(base, EVLOOP_ONCE);
    }
    assert_int_equal(b->roll_retry.failures, 1);
    for (int i = 0; i < 5; i++)
        kr_store_roll_quiet(s, b, first + 100);
    assert_int_equal(b->roll_retry.failures, 1);
    assert_int_equal(b->n_segs, 1);
    assert_int_equal(rmdir(seg), 0);
    kr_retry_now(&b->roll_retry); /* as if the hour had passed */
    /* The loop rolls it (once the stream has no sync to wait for). */
    for (int i = 0; i < 10000 && b->n_segs == 1; i++) {
        kr_store_roll_quiet(s, b, first + 100);
        if (b->n_segs == 1)
            event_base_loop(base, EVLOOP_ONCE);
    }
    assert_int_equal(b->n_segs, 2);
    assert_int_equal(b->segs[1]->base, b->next);
    assert_int_equal(b->roll_retry.failures, 0);
    kr_store_roll_quiet(s, b, UINT64_MAX / 2); /* empty: nothing to roll */
    assert_int_equal(b->n_segs, 2);
    pub(s, b, 5, 1000, 0, false); /* the new segment takes appends */
    assert_int_equal(b->segs[1]->next, b->next);
    kr_store_close(s);
}

/* Overwrites and tombstones compacted: the invariant holds, the disk
 * shrinks, a reopen and a POLL see the same. */
static void test_store_compaction(void **state)
{
    (void)state;
    kr_store *s = open_store(1u << 20, 0);
    static const char *const set[] = {"cleanup=compact", "segment_bytes=4K",
                                      "delete_retention_ms=0"};
    kr_topic *t = configure(s, "t", set, 3);
    for (int i = 0; i < 60; i++)
        pub(s, t, 25, 30, i * 25, false);
    pub(s, t, 3, 30, 4, true); /* k4, k5, k6 deleted */
    pub(s, t, 10, 30, 100, false);
    checkpoint(s, t);
    check_invariant(s, t, 30);
    uint64_t before = t->bytes;
    size_t segs_before = t->n_segs;
    compact_all(s, t);
    kr_compact_stats cs;
    kr_compact_topic_stats(t, &cs);
    assert_true(cs.segments_rewritten > 0);
    assert_true(cs.events_removed > 0);
    assert_true(t->bytes < before / 4);
    assert_true(t->n_segs < segs_before);
    assert_int_equal(t->first, 0); /* compaction never moves first */
    check_invariant(s, t, 30);
    /* The deleted keys are gone from the stream below the active segment. */
    static got_ev evs[2000];
    size_t n = fetch_all(s, t, evs, 2000);
    assert_true(n < 200);
    for (size_t i = 0; i < n; i++)
        if (evs[i].offset < t->segs[t->n_segs - 1]->base)
            assert_true(strcmp(evs[i].key, "k4") != 0 || evs[i].value[0] != '\0');

    /* A consumer group from the first offset gets exactly those events. */
    kr_tgroup *tg;
    kr_member *m;
    void *taken;
    done d = {0};
    char msg[256];
    kr_join j = {.group = (const uint8_t *)"g",
                 .glen = 1,
                 .start = KR_START_EARLIEST,
                 .ack_wait_ms = 30000,
                 .owner = &d};
    assert_int_equal(kr_store_group_join(s, t, &j, &tg, &m, &taken, on_done, &d, msg, sizeof msg),
                     KRAPPY_OK);
    kr_test_run_until(base, &d.calls, 1);
    size_t polled = 0;
    for (int guard = 0; guard < 1000; guard++) {
        struct evbuffer *eb = evbuffer_new();
        uint64_t cnt;
        assert_int_equal(kr_store_poll(s, tg, m, 13, 1u << 20, eb, &cnt, msg, sizeof msg),
                         KRAPPY_OK);
        size_t len = evbuffer_get_length(eb);
        static got_ev pe[64];
        size_t pn = 0;
        decode_events(evbuffer_pullup(eb, (ssize_t)len), len, pe, &pn, 64);
        evbuffer_free(eb);
        assert_int_equal(pn, cnt);
        for (size_t i = 0; i < pn; i++) {
            assert_int_equal(pe[i].offset, evs[polled].offset);
            polled++;
        }
        if (cnt == 0)
            break;
        kr_ack_result ar;
        kr_store_group_ack_upto(s, tg, m, pe[pn - 1].offset + 1, &ar);
        free(ar.ignored);
    }
    assert_int_equal(polled, n);
    assert_int_equal(kr_store_group_cursor(tg), t->next);
    kr_store_group_leave(s, tg, m);
    kr_store_close(s);

    /* Reopen: the same stream, and nothing compacted twice. */
    s = open_store(1u << 20, 0);
    t = kr_store_topic(s, (const uint8_t *)"t", 1);
    static got_ev again[2000];
    assert_int_equal(fetch_all(s, t, again, 2000), n);
    for (size_t i = 0; i < n; i++)
        assert_int_equal(again[i].offset, evs[i].offset);
    check_invariant(s, t, 30);
    kr_store_close(s);
}

/* A crash after a merge's rename, before the merged segments were deleted,
 * and one before the rename (a .compact file): start-up serves no offset
 * twice and removes the leftovers. */
static void test_recovery_after_interrupted_merge(void **state)
{
    (void)state;
    kr_store *s = open_store(1u << 20, 0);
    static const char *const set[] = {"segment_bytes=4K"};
    kr_topic *t = configure(s, "t", set, 1);
    for (int i = 0; i < 40; i++)
        pub(s, t, 25, 10, i * 25, false);
    checkpoint(s, t);
    assert_true(t->n_segs >= 4);
    uint64_t b0 = t->segs[0]->base, b1 = t->segs[1]->base, b2 = t->segs[2]->base;
    uint64_t next = t->next;
    kr_store_close(s);

    /* By hand: segments 0 and 1 merged into 0 keeping everything, as a
     * rewrite would have, but segment 1 still there; and a .compact file. */
    char tdir[128];
    snprintf(tdir, sizeof tdir, "%s/topics/t", dir);
    int dirfd = open(tdir, O_RDONLY | O_DIRECTORY);
    assert_true(dirfd >= 0);
    char n1[KR_SEG_NAME_BYTES];
    kr_seg_name(n1, b1);
    /* Segment 1's batches appended to segment 0 under a compacted header:
     * what a merge keeping every event writes. */
    char n0[KR_SEG_NAME_BYTES];
    kr_seg_name(n0, b0);
    struct stat s0, s1;
    assert_int_equal(fstatat(dirfd, n0, &s0, 0), 0);
    assert_int_equal(fstatat(dirfd, n1, &s1, 0), 0);
    int f0 = openat(dirfd, n0, O_RDWR), f1 = openat(dirfd, n1, O_RDONLY);
    /* The store wrote them with version 2 headers; compaction's output has
     * a version 1 header (segment.h). */
    size_t l0 = (size_t)s0.st_size - KR_SEG_HEADER_V2_BYTES;
    size_t l1 = (size_t)s1.st_size - KR_SEG_HEADER_V2_BYTES;
    uint8_t *body = malloc(KR_SEG_HEADER_BYTES + l0 + l1);
    kr_seg_header_encode_v1(body, b0, KR_SEG_F_COMPACTED);
    assert_int_equal(pread(f0, body + KR_SEG_HEADER_BYTES, l0, KR_SEG_HEADER_V2_BYTES),
                     (ssize_t)l0);
    assert_int_equal(pread(f1, body + KR_SEG_HEADER_BYTES + l0, l1, KR_SEG_HEADER_V2_BYTES),
                     (ssize_t)l1);
    assert_int_equal(ftruncate(f0, 0), 0);
    assert_int_equal(pwrite(f0, body, KR_SEG_HEADER_BYTES + l0 + l1, 0),
                     (ssize_t)(KR_SEG_HEADER_BYTES + l0 + l1));
    free(body);
    close(f0);
    close(f1);
    char idx0[KR_INDEX_NAME_BYTES];
    kr_index_file_name(idx0, b0);
    (void)unlinkat(dirfd, idx0, 0);
    int tf = openat(dirfd, "00000000000000000000.compact", O_RDWR | O_CREAT, 0640);
    assert_true(tf >= 0);
    assert_int_equal(write(tf, "junk", 4), 4);
    close(tf);

    s = open_store(1u << 20, 0);
    t = kr_store_topic(s, (const uint8_t *)"t", 1);
    assert_non_null(t);
    assert_false(file_exists(dirfd, n1));
    assert_false(file_exists(dirfd, "00000000000000000000.compact"));
    assert_int_equal(t->next, next);
    assert_true(t->segs[0]->compacted);
    assert_int_equal(t->segs[0]->next, b2);
    static got_ev evs[1000];
    size_t n = fetch_all(s, t, evs, 1000);
    assert_int_equal(n, next); /* every offset once, none twice */
    for (size_t i = 0; i < n; i++)
        assert_int_equal(evs[i].offset, i);
    kr_store_close(s);
    close(dirfd);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_keep_rule),
        cmocka_unit_test_setup_teardown(test_rewrite_keep_drop, setup, teardown),
        cmocka_unit_test_setup_teardown(test_rewrite_latest_and_tombstones, setup, teardown),
        cmocka_unit_test_setup_teardown(test_rewrite_lookup_chunks, setup, teardown),
        cmocka_unit_test_setup_teardown(test_rewrite_reused_memory, setup, teardown),
        cmocka_unit_test_setup_teardown(test_rewrite_yields_to_ingest, setup, teardown),
        cmocka_unit_test_setup_teardown(test_rewrite_asks_in_view_order, setup, teardown),
        cmocka_unit_test_setup_teardown(test_rewrite_big_batches, setup, teardown),
        cmocka_unit_test_setup_teardown(test_rewrite_failures_leave_old, setup, teardown),
        cmocka_unit_test_setup_teardown(test_store_settings_persist, setup, teardown),
        cmocka_unit_test_setup_teardown(test_store_segments_per_topic, setup, teardown),
        cmocka_unit_test_setup_teardown(test_store_compaction, setup, teardown),
        cmocka_unit_test_setup_teardown(test_recovery_after_interrupted_merge, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
