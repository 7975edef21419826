/*
 * tests/test_segment.c - the segment format: names, headers, batches, the
 * payload check, locate, and the scan that recovers a segment (torn tails at
 * every byte, flipped bits at every byte, garbage, gaps, forged payloads,
 * batches larger than the scan window).
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "util/buf.h"
#include "proto/cbor.h"
#include "store/segment.h"

#include "tmpdir.h"

/* ---- helpers ---- */

static uint64_t rng_state = 0x2545F4914F6CDD1Dull;
static uint64_t rnd(void)
{
    rng_state ^= rng_state << 13;
    rng_state ^= rng_state >> 7;
    rng_state ^= rng_state << 17;
    return rng_state;
}

/* An unlinked temporary file under /tmp: nothing is left behind. */
static int tmp_fd(void)
{
    char path[512];
    snprintf(path, sizeof path, "%s/krappy-test-segment-XXXXXX", kr_test_tmpdir());
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    assert_int_equal(unlink(path), 0);
    return fd;
}

/* Make the file hold exactly data[0..len). */
static void put_file(int fd, const uint8_t *data, size_t len)
{
    assert_int_equal(ftruncate(fd, 0), 0);
    size_t at = 0;
    while (at < len) {
        ssize_t n = pwrite(fd, data + at, len - at, (off_t)at);
        assert_true(n > 0);
        at += (size_t)n;
    }
}

/* One delivered event with offset `off`; `big` asks for a large value. */
static void put_event(kr_buf *b, uint64_t off, uint64_t ts, size_t big)
{
    static const uint8_t filler[4096];
    int five = rnd() % 3 == 0;
    kr_cbor_put_array(b, five ? 5 : 4);
    kr_cbor_put_uint(b, off);
    kr_cbor_put_uint(b, ts);
    switch (rnd() % 4) { /* key */
    case 0:
        kr_cbor_put_null(b);
        break;
    case 1:
        kr_cbor_put_text(b, "user-17", 7);
        break;
    case 2:
        kr_cbor_put_bytes(b, "", 0);
        break;
    default: {
        char k[32];
        int n = snprintf(k, sizeof k, "key-%llu", (unsigned long long)(rnd() % 1000));
        kr_cbor_put_bytes(b, k, (size_t)n);
    }
    }
    if (big > 0) {
        /* A byte string of `big` bytes, written head then content. */
        uint8_t head[5] = {0x5a, (uint8_t)(big >> 24), (uint8_t)(big >> 16), (uint8_t)(big >> 8),
                           (uint8_t)big};
        kr_buf_append(b, head, 5);
        for (size_t left = big; left > 0;) {
            size_t n = left < sizeof filler ? left : sizeof filler;
            kr_buf_append(b, filler, n);
            left -= n;
        }
    } else {
        switch (rnd() % 5) { /* value: any CBOR item */
        case 0:
            kr_cbor_put_null(b);
            break;
        case 1:
            kr_cbor_put_uint(b, rnd());
            break;
        case 2:
            kr_cbor_put_map(b, 2);
            kr_cbor_put_cstr(b, "a");
            kr_cbor_put_array(b, 2);
            kr_cbor_put_uint(b, 0); /* an inner array starting with 0 */
            kr_cbor_put_negint(b, 5);
            kr_cbor_put_cstr(b, "b");
            kr_cbor_put_bool(b, true);
            break;
        default: {
            uint8_t v[300];
            size_t n = rnd() % sizeof v;
            for (size_t i = 0; i < n; i++)
                v[i] = (uint8_t)rnd();
            kr_cbor_put_bytes(b, v, n);
        }
        }
    }
    if (five) {
        kr_cbor_put_map(b, 1);
        kr_cbor_put_cstr(b, "trace");
        kr_cbor_put_bytes(b, "\x01\x02", 2);
    }
}

/* A segment image built in memory, with what is known of every batch. */
typedef struct image {
    kr_buf b;
    uint64_t base;
    size_t n;        /* batches */
    uint64_t *pos;   /* file position of each batch */
    uint64_t *first; /* base offset of each batch */
    uint32_t *count;
    uint64_t *max_ts;
    uint32_t *hlen;     /* header length of each batch (version 1 or 2) */
    uint64_t *producer; /* its producer (version 2), or 0 */
    uint32_t **evpos;   /* position of each event in its payload */
    uint64_t end_next;
    uint64_t all_max_ts;
} image;

static void image_init(image *im, uint64_t base, size_t cap_batches)
{
    memset(im, 0, sizeof *im);
    kr_buf_init(&im->b, (size_t)1 << 30);
    uint8_t h[KR_SEG_HEADER_BYTES];
    kr_seg_header_encode_v1(h, base, 0); /* the images are version 1: 0.1.0's */
    assert_int_equal(kr_buf_append(&im->b, h, sizeof h), 0);
    im->base = base;
    im->end_next = base;
    im->pos = calloc(cap_batches, sizeof *im->pos);
    im->first = calloc(cap_batches, sizeof *im->first);
    im->count = calloc(cap_batches, sizeof *im->count);
    im->max_ts = calloc(cap_batches, sizeof *im->max_ts);
    im->hlen = calloc(cap_batches, sizeof *im->hlen);
    im->producer = calloc(cap_batches, sizeof *im->producer);
    im->evpos = calloc(cap_batches, sizeof *im->evpos);
    assert_non_null(im->evpos);
}

static void image_free(image *im)
{
    for (size_t i = 0; i < im->n; i++)
        free(im->evpos[i]);
    free(im->pos);
    free(im->first);
    free(im->count);
    free(im->max_ts);
    free(im->hlen);
    free(im->producer);
    free(im->evpos);
    kr_buf_free(&im->b);
}

/* Append a batch of `count` events starting at offset `first` (normally
 * im->end_next); `big` > 0 makes the first event's value that large. One
 * batch in three is an idempotent producer's (a version 2 header), so
 * that every scan meets both versions. */
static void image_add(image *im, uint64_t first, uint32_t count, size_t big)
{
    kr_buf p;
    kr_buf_init(&p, (size_t)1 << 30);
    size_t i = im->n;
    im->evpos[i] = calloc(count, sizeof(uint32_t));
    assert_non_null(im->evpos[i]);
    uint64_t mts = 0;
    for (uint32_t e = 0; e < count; e++) {
        uint64_t ts = 1700000000000ull + rnd() % 100000;
        if (ts > mts)
            mts = ts;
        im->evpos[i][e] = (uint32_t)p.len;
        put_event(&p, first + e, ts, e == 0 ? big : 0);
    }
    assert_false(p.failed);
    uint8_t h[KR_BATCH_HEADER_MAX];
    kr_batch_hdr hd = {.base = first, .count = count, .max_ts = mts, .len = (uint32_t)p.len};
    if (rnd() % 3 == 0) {
        hd.producer = 1 + rnd() % 9;
        hd.seq = rnd() % 100000;
        hd.epoch = 1 + (uint32_t)(rnd() % 4);
    }
    uint32_t hl = kr_batch_header_encode(h, &hd, p.data);
    assert_int_equal(hl, hd.producer ? KR_BATCH_HEADER_V2 : KR_BATCH_HEADER_BYTES);
    im->pos[i] = im->b.len;
    im->first[i] = first;
    im->count[i] = count;
    im->max_ts[i] = mts;
    im->hlen[i] = hl;
    im->producer[i] = hd.producer;
    kr_buf_append(&im->b, h, hl);
    kr_buf_append(&im->b, p.data, p.len);
    assert_false(im->b.failed);
    kr_buf_free(&p);
    im->n++;
    im->end_next = first + count;
    if (mts > im->all_max_ts)
        im->all_max_ts = mts;
}

/* The standard test segment: 50 batches of 1..40 events. */
static void image_standard(image *im, uint64_t base)
{
    image_init(im, base, 64);
    for (int i = 0; i < 50; i++) {
        uint32_t count = (i % 7 == 0) ? 1 : 1 + (uint32_t)(rnd() % 40);
        image_add(im, im->end_next, count, 0);
    }
}

/* What the callback saw. */
typedef struct seen {
    size_t n;
    uint64_t pos[4096];
    kr_batch_hdr h[4096];
} seen;

static void on_batch(void *arg, const kr_batch_hdr *h, uint64_t pos)
{
    seen *s = arg;
    assert_true(s->n < 4096);
    s->pos[s->n] = pos;
    s->h[s->n] = *h;
    s->n++;
}

static int scan(int fd, kr_seg_scan *sc, seen *s)
{
    if (s != NULL)
        s->n = 0;
    return kr_seg_scan_fd(fd, sc, s != NULL ? on_batch : NULL, s);
}

/* The scan result of the first `k` batches of im being good and the bytes
 * from `end` on being a torn tail (or none when end == file length). */
static void expect_prefix(const image *im, const kr_seg_scan *sc, const seen *s, size_t k,
                          uint64_t end, uint64_t file_len)
{
    assert_int_equal(sc->base, im->base);
    assert_int_equal(sc->file_len, file_len);
    assert_int_equal(sc->batches, k);
    assert_int_equal(sc->n_corrupt, 0);
    assert_int_equal(sc->next, k == 0 ? im->base : im->first[k - 1] + im->count[k - 1]);
    assert_int_equal(sc->good_end, end);
    assert_int_equal(sc->torn, end != file_len);
    uint64_t mts = 0;
    for (size_t i = 0; i < k; i++)
        if (im->max_ts[i] > mts)
            mts = im->max_ts[i];
    assert_int_equal(sc->max_ts, mts);
    if (s != NULL) {
        assert_int_equal(s->n, k);
        for (size_t i = 0; i < k; i++) {
            assert_int_equal(s->pos[i], im->pos[i]);
            assert_int_equal(s->h[i].base, im->first[i]);
            assert_int_equal(s->h[i].count, im->count[i]);
            assert_int_equal(s->h[i].max_ts, im->max_ts[i]);
            assert_int_equal(s->h[i].hlen, im->hlen[i]);
            assert_int_equal(s->h[i].producer, im->producer[i]);
        }
    }
}

/* Byte range of batch i in the image. */
static uint64_t batch_end(const image *im, size_t i)
{
    return i + 1 < im->n ? im->pos[i + 1] : im->b.len;
}

/* ---- names and headers ---- */

static void test_names(void **state)
{
    (void)state;
    char name[KR_SEG_NAME_BYTES];
    uint64_t v, bases[] = {0, 1, 1234, 99999999999ull, UINT64_MAX - 1, UINT64_MAX};

    kr_seg_name(name, 1234);
    assert_string_equal(name, "00000000000000001234.seg");
    for (size_t i = 0; i < sizeof bases / sizeof bases[0]; i++) {
        kr_seg_name(name, bases[i]);
        assert_int_equal(strlen(name), KR_SEG_NAME_BYTES - 1);
        assert_int_equal(kr_seg_parse_name(name, &v), 0);
        assert_int_equal(v, bases[i]);
    }
    for (int i = 0; i < 1000; i++) {
        uint64_t b = rnd() >> (rnd() % 64);
        kr_seg_name(name, b);
        assert_int_equal(kr_seg_parse_name(name, &v), 0);
        assert_int_equal(v, b);
    }
    kr_seg_name(name, UINT64_MAX);
    assert_string_equal(name, "18446744073709551615.seg");

    const char *bad[] = {
        "",
        ".seg",
        "0000000000000001234.seg",   /* 19 digits */
        "000000000000000001234.seg", /* 21 digits */
        "00000000000000001234.sex",
        "00000000000000001234.seg.tmp",
        "00000000000000001234.SEG",
        "00000000000000001234",
        "0000000000000000123a.seg",
        "+0000000000000001234.seg",
        " 0000000000000001234.seg",
        "-0000000000000001234.seg",
        "18446744073709551616.seg", /* UINT64_MAX + 1 */
        "99999999999999999999.seg",
        "00000000000000001234.seg ",
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        v = 77;
        assert_int_equal(kr_seg_parse_name(bad[i], &v), -1);
        assert_int_equal(v, 77);
    }
    assert_int_equal(kr_seg_parse_name(NULL, &v), -1);
}

static void test_seg_header(void **state)
{
    (void)state;
    uint8_t h[KR_SEG_HEADER_BYTES];
    kr_seg_header d;

    /* Version 1, as krappy 0.1.0 wrote it. */
    kr_seg_header_encode_v1(h, 0x0102030405060708ull, 0);
    assert_memory_equal(h, "KRAPPYSG\0\0\0\x01\0\0\0\x20\x01\x02\x03\x04\x05\x06\x07\x08", 24);
    assert_memory_equal(h + 28, "\0\0\0\0", 4);
    assert_int_equal(kr_seg_header_decode(h, sizeof h, &d), 0);
    assert_int_equal(d.base, 0x0102030405060708ull);
    assert_int_equal(d.version, 1);
    assert_int_equal(d.len, KR_SEG_HEADER_BYTES);
    assert_false(d.has_sync);
    kr_seg_header_encode_v1(h, UINT64_MAX, 0);
    assert_int_equal(kr_seg_header_decode(h, sizeof h, &d), 0);
    assert_int_equal(d.base, UINT64_MAX);
    assert_int_equal(kr_seg_header_decode(h, sizeof h - 1, &d), -1); /* too short */

    /* Every byte, every bit, and a whole-byte change: rejected - but the
     * compacted and skipped flags (bits 0 and 1 of byte 31), which the CRC
     * does not cover. */
    kr_seg_header_encode_v1(h, 42, 0);
    for (size_t i = 0; i < sizeof h; i++) {
        for (int bit = 0; bit < 8; bit++) {
            h[i] ^= (uint8_t)(1u << bit);
            if (i == 31 && bit < 2) {
                assert_int_equal(kr_seg_header_decode(h, sizeof h, &d), 0);
                assert_int_equal(d.flags, bit == 0 ? KR_SEG_F_COMPACTED : KR_SEG_F_SKIPPED);
                assert_int_equal(d.base, 42);
            } else {
                assert_int_equal(kr_seg_header_decode(h, sizeof h, &d), -1);
            }
            h[i] ^= (uint8_t)(1u << bit);
        }
        h[i] ^= 0xff;
        assert_int_equal(kr_seg_header_decode(h, sizeof h, &d), -1);
        h[i] ^= 0xff;
    }
    assert_int_equal(kr_seg_header_decode(h, sizeof h, &d), 0);
    assert_int_equal(d.base, 42);
}

/* Version 2: 64 bytes with a sync record that is rewritten in place; a
 * damaged record is ignored (the header stays good), a damaged fixed part
 * refuses the header. */
static void test_seg_header_v2(void **state)
{
    (void)state;
    uint8_t h[KR_SEG_HEADER_V2_BYTES];
    kr_seg_header d;

    kr_seg_header_encode(h, 1000);
    assert_memory_equal(h, "KRAPPYSG\0\0\0\x02\0\0\0\x40", 16);
    assert_int_equal(kr_seg_header_decode(h, sizeof h, &d), 0);
    assert_int_equal(d.version, 2);
    assert_int_equal(d.len, KR_SEG_HEADER_V2_BYTES);
    assert_int_equal(d.base, 1000);
    assert_true(d.has_sync);
    assert_int_equal(d.synced, KR_SEG_HEADER_V2_BYTES); /* nothing synced yet */
    assert_int_equal(d.synced_next, 1000);
    /* A version 2 header needs all 64 bytes. */
    assert_int_equal(kr_seg_header_decode(h, KR_SEG_HEADER_V2_BYTES - 1, &d), -1);

    kr_seg_sync_encode(h + KR_SEG_SYNC_AT, 4096, 1234);
    assert_int_equal(kr_seg_header_decode(h, sizeof h, &d), 0);
    assert_true(d.has_sync);
    assert_int_equal(d.synced, 4096);
    assert_int_equal(d.synced_next, 1234);

    for (size_t i = KR_SEG_SYNC_AT; i < KR_SEG_SYNC_AT + KR_SEG_SYNC_BYTES; i++) {
        h[i] ^= 0x04;
        assert_int_equal(kr_seg_header_decode(h, sizeof h, &d), 0);
        assert_false(d.has_sync);
        assert_int_equal(d.base, 1000);
        h[i] ^= 0x04;
    }
    for (size_t i = 0; i < KR_SEG_HEADER_BYTES; i++) {
        h[i] ^= 0x80;
        assert_int_equal(kr_seg_header_decode(h, sizeof h, &d), -1);
        h[i] ^= 0x80;
    }
    /* The compacted flag is read in a version 2 header too. */
    h[31] |= KR_SEG_F_COMPACTED;
    assert_int_equal(kr_seg_header_decode(h, sizeof h, &d), 0);
    assert_int_equal(d.flags, KR_SEG_F_COMPACTED);
    assert_true(d.has_sync);
    h[31] &= (uint8_t)~KR_SEG_F_COMPACTED;
    /* A record below the header, or offsets below the base: not believed. */
    kr_seg_sync_encode(h + KR_SEG_SYNC_AT, 10, 1234);
    assert_int_equal(kr_seg_header_decode(h, sizeof h, &d), 0);
    assert_false(d.has_sync);
    kr_seg_sync_encode(h + KR_SEG_SYNC_AT, 4096, 999);
    assert_int_equal(kr_seg_header_decode(h, sizeof h, &d), 0);
    assert_false(d.has_sync);
}

/* A header of version v (1 or 2) for the payload. */
static uint32_t header(uint8_t *h, int v, uint64_t base, uint32_t count, uint64_t max_ts,
                       const void *payload, uint32_t len)
{
    kr_batch_hdr hd = {.base = base, .count = count, .max_ts = max_ts, .len = len};
    if (v == 2) {
        hd.producer = 0x0102030405060708ull;
        hd.seq = 0x1112131415161718ull;
        hd.epoch = 0x21222324u;
        hd.raft_index = 0x3132333435363738ull;
    }
    return kr_batch_header_encode(h, &hd, payload);
}

static void test_batch_header(void **state)
{
    (void)state;
    uint8_t h[KR_BATCH_HEADER_MAX], payload[64];
    kr_batch_hdr d;

    for (size_t i = 0; i < sizeof payload; i++)
        payload[i] = (uint8_t)i;
    for (int v = 1; v <= 2; v++) {
        uint32_t hl = header(h, v, 1000, 3, 1234567, payload, sizeof payload);
        assert_int_equal(hl, v == 1 ? 32 : 64);
        assert_memory_equal(h, v == 1 ? "KRB1" : "KRB2", 4);
        assert_int_equal(kr_batch_header_decode(h, hl, &d), 0);
        assert_int_equal(d.hlen, hl);
        assert_int_equal(d.base, 1000);
        assert_int_equal(d.count, 3);
        assert_int_equal(d.len, sizeof payload);
        assert_int_equal(d.max_ts, 1234567);
        assert_int_equal(d.producer, v == 1 ? 0 : 0x0102030405060708ull);
        assert_int_equal(d.seq, v == 1 ? 0 : 0x1112131415161718ull);
        assert_int_equal(d.epoch, v == 1 ? 0 : 0x21222324u);
        assert_int_equal(d.raft_index, v == 1 ? 0 : 0x3132333435363738ull);
        /* Cut short, a header is not one. */
        assert_int_equal(kr_batch_header_decode(h, hl - 1, &d), -1);
        assert_int_equal(kr_batch_verify(h, payload, sizeof payload), 1);
        /* The CRC covers the header from byte 8 on and the payload. */
        for (size_t i = 4; i < hl; i++) {
            h[i] ^= 0x10;
            assert_int_equal(kr_batch_verify(h, payload, sizeof payload), 0);
            h[i] ^= 0x10;
        }
        for (size_t i = 0; i < sizeof payload; i++) {
            payload[i] ^= 0x01;
            assert_int_equal(kr_batch_verify(h, payload, sizeof payload), 0);
            payload[i] ^= 0x01;
        }
        assert_int_equal(kr_batch_verify(h, payload, sizeof payload - 1), 0);
        for (size_t i = 0; i < 4; i++) { /* magic */
            h[i] ^= 0x01;
            assert_int_equal(kr_batch_header_decode(h, hl, &d), -1);
            h[i] ^= 0x01;
        }

        /* Sanity limits. */
        hl = header(h, v, 0, 0, 0, payload, 10); /* count 0 */
        assert_int_equal(kr_batch_header_decode(h, hl, &d), -1);
        hl = header(h, v, 0, 11, 0, payload, 10); /* len < count */
        assert_int_equal(kr_batch_header_decode(h, hl, &d), -1);
        hl = header(h, v, 0, 10, 0, payload, 10);
        assert_int_equal(kr_batch_header_decode(h, hl, &d), 0);
        hl = header(h, v, 0, 1, 0, NULL, 0); /* len 0 < count 1 */
        assert_int_equal(kr_batch_header_decode(h, hl, &d), -1);
        hl = header(h, v, UINT64_MAX - 3, 3, 0, payload, 3);
        assert_int_equal(kr_batch_header_decode(h, hl, &d), 0);
        hl = header(h, v, UINT64_MAX - 3, 4, 0, payload, 4); /* next wraps */
        assert_int_equal(kr_batch_header_decode(h, hl, &d), -1);
        /* A length over the cap (the CRC is not computed over it here). */
        hl = header(h, v, 0, 1, 0, payload, 1);
        h[20] = 0x40; /* len = 0x40000001 */
        assert_int_equal(kr_batch_header_decode(h, hl, &d), -1);
        h[20] = 0x40;
        h[23] = 0x00; /* exactly KR_BATCH_MAX_PAYLOAD */
        assert_int_equal(kr_batch_header_decode(h, hl, &d), 0);
        assert_int_equal(d.len, KR_BATCH_MAX_PAYLOAD);
    }
    /* Version 2's reserved word must be zero. */
    uint32_t hl = header(h, 2, 5, 1, 0, payload, 1);
    h[63] = 1;
    assert_int_equal(kr_batch_header_decode(h, hl, &d), -1);
    /* A Raft index alone makes a version 2 header too; plain is version 1. */
    kr_batch_hdr r = {.raft_index = 9};
    assert_int_equal(kr_batch_header_size(&r), 64);
    r.raft_index = 0;
    assert_int_equal(kr_batch_header_size(&r), 32);
}

/* ---- payload ---- */

/* Encode events as the caller lists them and run the payload check. */
static int check_events(uint64_t base, uint32_t count, void (*fill)(kr_buf *, uint64_t))
{
    kr_buf b;
    kr_batch_hdr h = {.base = base, .count = count};
    kr_buf_init(&b, 1 << 20);
    fill(&b, base);
    assert_false(b.failed);
    h.len = (uint32_t)b.len;
    int rc = kr_batch_payload_check(&h, b.data);
    kr_buf_free(&b);
    return rc;
}

static void ev4(kr_buf *b, uint64_t off)
{
    kr_cbor_put_array(b, 4);
    kr_cbor_put_uint(b, off);
    kr_cbor_put_uint(b, 5);
    kr_cbor_put_cstr(b, "k");
    kr_cbor_put_cstr(b, "v");
}

static void fill_good(kr_buf *b, uint64_t base)
{
    ev4(b, base);
    ev4(b, base + 1);
    kr_cbor_put_array(b, 5);
    kr_cbor_put_uint(b, base + 2);
    kr_cbor_put_uint(b, 5);
    kr_cbor_put_null(b);
    kr_cbor_put_null(b);
    kr_cbor_put_map(b, 0);
}
static void fill_skip(kr_buf *b, uint64_t base)
{
    ev4(b, base);
    ev4(b, base + 2);
    ev4(b, base + 3);
}
static void fill_repeat(kr_buf *b, uint64_t base)
{
    ev4(b, base);
    ev4(b, base);
    ev4(b, base + 1);
}
static void fill_first_wrong(kr_buf *b, uint64_t base)
{
    ev4(b, base + 1);
    ev4(b, base + 2);
    ev4(b, base + 3);
}
static void fill_short(kr_buf *b, uint64_t base)
{
    ev4(b, base);
    ev4(b, base + 1);
}
static void fill_trailing(kr_buf *b, uint64_t base)
{
    fill_good(b, base);
    kr_cbor_put_uint(b, 0);
}
static void fill_three(kr_buf *b, uint64_t base)
{
    ev4(b, base);
    ev4(b, base + 1);
    kr_cbor_put_array(b, 3);
    kr_cbor_put_uint(b, base + 2);
    kr_cbor_put_uint(b, 5);
    kr_cbor_put_null(b);
}
static void fill_six(kr_buf *b, uint64_t base)
{
    ev4(b, base);
    ev4(b, base + 1);
    kr_cbor_put_array(b, 6);
    kr_cbor_put_uint(b, base + 2);
    for (int i = 0; i < 5; i++)
        kr_cbor_put_null(b);
}
static void fill_not_array(kr_buf *b, uint64_t base)
{
    ev4(b, base);
    kr_cbor_put_map(b, 2);
    kr_cbor_put_uint(b, base + 1);
    kr_cbor_put_uint(b, 5);
    kr_cbor_put_null(b);
    kr_cbor_put_null(b);
    ev4(b, base + 2);
}
static void fill_indefinite(kr_buf *b, uint64_t base)
{
    ev4(b, base);
    ev4(b, base + 1);
    kr_buf_append(b, "\x9f", 1);
    kr_cbor_put_uint(b, base + 2);
    kr_cbor_put_uint(b, 5);
    kr_cbor_put_null(b);
    kr_cbor_put_null(b);
    kr_buf_append(b, "\xff", 1);
}
static void fill_offset_text(kr_buf *b, uint64_t base)
{
    ev4(b, base);
    kr_cbor_put_array(b, 4);
    kr_cbor_put_cstr(b, "1");
    kr_cbor_put_uint(b, 5);
    kr_cbor_put_null(b);
    kr_cbor_put_null(b);
    ev4(b, base + 2);
}
static void fill_truncated(kr_buf *b, uint64_t base)
{
    fill_good(b, base);
    b->len -= 1; /* the last event loses its last byte */
}

/* A batch put by the loop and sealed by the writer is the batch
 * kr_batch_header_encode makes in one step, in either version. */
static void test_batch_put_and_seal(void **state)
{
    (void)state;
    for (int v = 1; v <= 2; v++) {
        uint8_t one[KR_BATCH_HEADER_MAX + 40], two[sizeof one];
        kr_batch_hdr h = {.base = 77, .count = 5, .max_ts = 99, .len = 40};
        if (v == 2) {
            h.producer = 3;
            h.seq = 1000;
            h.epoch = 2;
        }
        uint32_t hl = kr_batch_header_size(&h);
        for (size_t i = 0; i < 40; i++)
            one[hl + i] = (uint8_t)(i * 7);
        assert_int_equal(kr_batch_header_encode(one, &h, one + hl), hl);
        memcpy(two + hl, one + hl, 40);
        assert_int_equal(kr_batch_header_put(two, &h), hl);
        assert_int_equal(kr_batch_verify(two, two + hl, 40), 0); /* no CRC yet */
        kr_batch_seal(two);
        assert_memory_equal(one, two, hl + 40);
        kr_batch_hdr d;
        assert_int_equal(kr_batch_header_decode(two, sizeof two, &d), 0);
        assert_int_equal(d.hlen, hl);
        assert_int_equal(d.seq, v == 2 ? 1000 : 0);
        assert_int_equal(kr_batch_verify(two, two + hl, d.len), 1);
    }
}

static void test_payload_check(void **state)
{
    (void)state;
    assert_int_equal(check_events(0, 3, fill_good), 0);
    assert_int_equal(check_events(1000000, 3, fill_good), 0);
    assert_int_equal(check_events(UINT64_MAX - 3, 3, fill_good), 0);
    assert_int_equal(check_events(7, 3, fill_skip), -1);
    assert_int_equal(check_events(7, 3, fill_repeat), -1);
    assert_int_equal(check_events(7, 3, fill_first_wrong), -1);
    assert_int_equal(check_events(7, 3, fill_short), -1);
    assert_int_equal(check_events(7, 2, fill_good), -1); /* one left over */
    assert_int_equal(check_events(7, 3, fill_trailing), -1);
    assert_int_equal(check_events(7, 3, fill_three), -1);
    assert_int_equal(check_events(7, 3, fill_six), -1);
    assert_int_equal(check_events(7, 3, fill_not_array), -1);
    assert_int_equal(check_events(7, 3, fill_indefinite), -1);
    assert_int_equal(check_events(7, 3, fill_offset_text), -1);
    assert_int_equal(check_events(7, 3, fill_truncated), -1);
}

/* A batch whose CRC is right but whose payload has a wrong offset inside:
 * the scan must not accept it, in the middle or at the end. */
static void test_scan_forged_payload(void **state)
{
    (void)state;
    kr_buf p;
    image im;
    kr_seg_scan sc;
    static seen s;
    int fd = tmp_fd();

    image_standard(&im, 500);
    /* Batch 50: 3 events at the right base, but offsets skip one. */
    kr_buf_init(&p, 1 << 20);
    fill_skip(&p, im.end_next);
    uint8_t h[KR_BATCH_HEADER_MAX];
    uint32_t hl = header(h, 2, im.end_next, 3, 1, p.data, (uint32_t)p.len);
    assert_int_equal(kr_batch_verify(h, p.data, (uint32_t)p.len), 1);
    uint64_t forged_at = im.b.len;
    kr_buf_append(&im.b, h, hl);
    kr_buf_append(&im.b, p.data, p.len);

    put_file(fd, im.b.data, im.b.len);
    assert_int_equal(scan(fd, &sc, &s), 0);
    expect_prefix(&im, &sc, &s, 50, forged_at, im.b.len);

    /* Followed by good batches that continue after it: a corrupt range. */
    uint64_t lost = im.end_next;
    im.end_next += 3;
    image_add(&im, im.end_next, 4, 0);
    image_add(&im, im.end_next, 2, 0);
    put_file(fd, im.b.data, im.b.len);
    assert_int_equal(scan(fd, &sc, &s), 0);
    assert_false(sc.torn);
    assert_int_equal(sc.batches, 52);
    assert_int_equal(sc.n_corrupt, 1);
    assert_int_equal(sc.corrupt[0].pos, forged_at);
    assert_int_equal(sc.corrupt[0].end, im.pos[50]);
    assert_int_equal(sc.corrupt[0].first, lost);
    assert_int_equal(sc.corrupt[0].next, lost + 3);
    assert_int_equal(sc.next, im.end_next);
    assert_int_equal(sc.good_end, im.b.len);
    kr_buf_free(&p);
    image_free(&im);
    close(fd);
}

static void test_locate(void **state)
{
    (void)state;
    image im;
    kr_batch_hdr h;

    image_standard(&im, 12345);
    for (size_t i = 0; i < im.n; i++) {
        const uint8_t *hdr = im.b.data + im.pos[i];
        assert_int_equal(kr_batch_header_decode(hdr, im.b.len - im.pos[i], &h), 0);
        assert_int_equal(h.hlen, im.hlen[i]);
        const uint8_t *payload = hdr + h.hlen;
        assert_int_equal(kr_batch_payload_check(&h, payload), 0);
        for (uint32_t e = 0; e < im.count[i]; e++)
            assert_int_equal(kr_batch_locate(&h, payload, im.first[i] + e), im.evpos[i][e]);
        assert_int_equal(kr_batch_locate(&h, payload, im.first[i] - 1), -1);
        assert_int_equal(kr_batch_locate(&h, payload, im.first[i] + im.count[i]), -1);
        assert_int_equal(kr_batch_locate(&h, payload, UINT64_MAX), -1);
        assert_int_equal(kr_batch_locate(&h, payload, 0), -1);
    }
    /* A malformed payload: locate of an event after the damage fails. */
    kr_buf b;
    kr_buf_init(&b, 1 << 20);
    fill_skip(&b, 10);
    kr_batch_hdr f = {.base = 10, .count = 3, .len = (uint32_t)b.len};
    assert_int_equal(kr_batch_locate(&f, b.data, 10), 0);
    assert_int_equal(kr_batch_locate(&f, b.data, 11), -1); /* holds offset 12 */
    b.len = 3;                                             /* cut inside event 0 */
    f.len = 3;
    assert_int_equal(kr_batch_locate(&f, b.data, 11), -1);
    kr_buf_free(&b);
    image_free(&im);
}

/* ---- scan ---- */

static void test_scan_all_good(void **state)
{
    (void)state;
    image im;
    kr_seg_scan sc;
    static seen s;
    int fd = tmp_fd();

    image_standard(&im, 1000);
    put_file(fd, im.b.data, im.b.len);
    assert_int_equal(scan(fd, &sc, &s), 0);
    expect_prefix(&im, &sc, &s, 50, im.b.len, im.b.len);
    assert_int_equal(sc.next, im.end_next);
    assert_int_equal(sc.max_ts, im.all_max_ts);
    /* No callback is fine. */
    assert_int_equal(scan(fd, &sc, NULL), 0);
    assert_int_equal(sc.batches, 50);

    /* An empty segment: header only. */
    put_file(fd, im.b.data, KR_SEG_HEADER_BYTES);
    assert_int_equal(scan(fd, &sc, &s), 0);
    expect_prefix(&im, &sc, &s, 0, KR_SEG_HEADER_BYTES, KR_SEG_HEADER_BYTES);
    assert_int_equal(sc.next, 1000);
    assert_int_equal(sc.max_ts, 0);
    image_free(&im);
    close(fd);
}

static void test_scan_bad_header(void **state)
{
    (void)state;
    image im;
    kr_seg_scan sc;
    int fd = tmp_fd();

    image_standard(&im, 0);
    for (size_t len = 0; len < KR_SEG_HEADER_BYTES; len++) {
        put_file(fd, im.b.data, len);
        errno = 0;
        assert_int_equal(scan(fd, &sc, NULL), -1);
        assert_int_equal(errno, EINVAL);
    }
    for (size_t i = 0; i < KR_SEG_HEADER_BYTES; i++) {
        im.b.data[i] ^= 0x20;
        put_file(fd, im.b.data, im.b.len);
        errno = 0;
        assert_int_equal(scan(fd, &sc, NULL), -1);
        assert_int_equal(errno, EINVAL);
        im.b.data[i] ^= 0x20;
    }
    /* Not a file descriptor. */
    errno = 0;
    assert_int_equal(kr_seg_scan_fd(-1, &sc, NULL, NULL), -1);
    assert_int_equal(errno, EBADF);
    image_free(&im);
    close(fd);
}

/* Cut the file at every byte of the last `k` batches. */
static void cut_last(size_t k)
{
    image im;
    kr_seg_scan sc;
    static seen s;
    int fd = tmp_fd();

    image_standard(&im, 77);
    size_t from = im.n - k;
    for (uint64_t len = im.pos[from]; len < im.b.len; len++) {
        put_file(fd, im.b.data, len);
        assert_int_equal(scan(fd, &sc, &s), 0);
        size_t cut = from; /* the batch the cut falls in (or starts at) */
        while (cut + 1 < im.n && im.pos[cut + 1] <= len)
            cut++;
        expect_prefix(&im, &sc, &s, cut, im.pos[cut], len);
        assert_int_equal(sc.next, im.first[cut]);
        assert_int_equal(sc.torn, len != im.pos[cut]);
    }
    image_free(&im);
    close(fd);
}

static void test_scan_cut_last(void **state)
{
    (void)state;
    cut_last(1);
}

static void test_scan_cut_last_two(void **state)
{
    (void)state;
    cut_last(2);
}

/* Flip one bit at every byte of batch `victim`. */
static void flip_every_byte(size_t victim)
{
    image im;
    kr_seg_scan sc;
    static seen s;
    int fd = tmp_fd();

    image_standard(&im, 5);
    uint64_t start = im.pos[victim], end = batch_end(&im, victim);
    for (uint64_t at = start; at < end; at++) {
        uint8_t bit = (uint8_t)(1u << (at % 8));
        im.b.data[at] ^= bit;
        put_file(fd, im.b.data, im.b.len);
        assert_int_equal(scan(fd, &sc, &s), 0);
        /* The damaged batch is never reported good. */
        for (size_t i = 0; i < s.n; i++)
            assert_int_not_equal(s.pos[i], start);
        if (victim + 1 == im.n) {
            expect_prefix(&im, &sc, &s, victim, start, im.b.len);
        } else {
            assert_false(sc.torn);
            assert_int_equal(sc.n_corrupt, 1);
            assert_int_equal(sc.corrupt[0].pos, start);
            assert_int_equal(sc.corrupt[0].end, end);
            assert_int_equal(sc.corrupt[0].first, im.first[victim]);
            assert_int_equal(sc.corrupt[0].next, im.first[victim + 1]);
            assert_int_equal(sc.batches, im.n - 1);
            assert_int_equal(sc.next, im.end_next);
            assert_int_equal(sc.good_end, im.b.len);
            assert_int_equal(s.n, im.n - 1);
            for (size_t i = 0, j = 0; i < im.n; i++) {
                if (i == victim)
                    continue;
                assert_int_equal(s.pos[j], im.pos[i]);
                assert_int_equal(s.h[j].base, im.first[i]);
                j++;
            }
        }
        im.b.data[at] ^= bit;
    }
    image_free(&im);
    close(fd);
}

static void test_scan_flip_middle(void **state)
{
    (void)state;
    flip_every_byte(25);
}

static void test_scan_flip_first_and_last(void **state)
{
    (void)state;
    flip_every_byte(0);
    flip_every_byte(49);
}

static void test_scan_garbage_tail(void **state)
{
    (void)state;
    image im;
    kr_seg_scan sc;
    static seen s;
    int fd = tmp_fd();

    image_standard(&im, 3);
    size_t good = im.b.len;
    uint8_t junk[2048];
    for (size_t i = 0; i < sizeof junk; i++)
        junk[i] = (uint8_t)rnd();
    /* Random bytes, then bytes full of batch magic, then zeros. */
    for (int kind = 0; kind < 4; kind++) {
        im.b.len = good;
        if (kind == 1)
            for (size_t i = 0; i + 4 <= sizeof junk; i += 7)
                memcpy(junk + i, (i / 7) % 2 ? "KRB1" : "KRB2", 4);
        if (kind == 2)
            memset(junk, 0, sizeof junk);
        if (kind == 3) {
            /* A valid batch header that claims more than the file has. */
            header(junk, 1 + (int)(rnd() % 2), im.end_next + 5, 1, 0, "\x01", 1);
            junk[20] = 0x01; /* len 16M+1 */
        }
        kr_buf_append(&im.b, junk, sizeof junk);
        put_file(fd, im.b.data, im.b.len);
        assert_int_equal(scan(fd, &sc, &s), 0);
        expect_prefix(&im, &sc, &s, 50, good, im.b.len);
        for (size_t len = good + 1; len < good + 40; len++) {
            put_file(fd, im.b.data, len);
            assert_int_equal(scan(fd, &sc, &s), 0);
            expect_prefix(&im, &sc, &s, 50, good, len);
        }
    }
    /* A copy of an earlier good batch after the end, right there or after
     * some noise: its offsets are old, so it is not a continuation. */
    for (size_t noise = 0; noise < 100; noise += 33) {
        im.b.len = good;
        kr_buf_append(&im.b, junk, noise);
        kr_buf_append(&im.b, im.b.data + im.pos[40], batch_end(&im, 40) - im.pos[40]);
        put_file(fd, im.b.data, im.b.len);
        assert_int_equal(scan(fd, &sc, &s), 0);
        expect_prefix(&im, &sc, &s, 50, good, im.b.len);
    }
    image_free(&im);
    close(fd);
}

static void test_scan_gap(void **state)
{
    (void)state;
    image im;
    kr_seg_scan sc;
    static seen s;
    int fd = tmp_fd();

    /* The last batch starts one offset too late: not accepted. */
    image_standard(&im, 0);
    uint64_t good = im.b.len, next = im.end_next;
    image_add(&im, next + 1, 3, 0);
    put_file(fd, im.b.data, im.b.len);
    assert_int_equal(scan(fd, &sc, &s), 0);
    expect_prefix(&im, &sc, &s, 50, good, im.b.len);
    assert_int_equal(sc.next, next);
    /* One too early (overlapping) neither. */
    im.b.len = good;
    im.n = 50;
    free(im.evpos[50]);
    image_add(&im, next - 1, 3, 0);
    put_file(fd, im.b.data, im.b.len);
    assert_int_equal(scan(fd, &sc, &s), 0);
    expect_prefix(&im, &sc, &s, 50, good, im.b.len);

    /* A gap in the middle with good batches after it: the gap batch and
     * what it skipped are a corrupt range; the rest is good. */
    im.b.len = good;
    im.n = 50;
    free(im.evpos[50]);
    image_add(&im, next + 10, 3, 0);
    image_add(&im, im.end_next, 3, 0);
    put_file(fd, im.b.data, im.b.len);
    assert_int_equal(scan(fd, &sc, &s), 0);
    assert_false(sc.torn);
    assert_int_equal(sc.batches, 51);
    assert_int_equal(sc.n_corrupt, 1);
    assert_int_equal(sc.corrupt[0].pos, good);
    assert_int_equal(sc.corrupt[0].end, im.pos[51]);
    assert_int_equal(sc.corrupt[0].first, next);
    assert_int_equal(sc.corrupt[0].next, next + 13);
    assert_int_equal(sc.next, next + 16);
    image_free(&im);
    close(fd);
}

/* More corrupt stretches than KR_SEG_MAX_CORRUPT: the rest is torn. */
static void test_scan_many_corrupt(void **state)
{
    (void)state;
    image im;
    kr_seg_scan sc;
    static seen s;
    int fd = tmp_fd();

    image_standard(&im, 0);
    /* Damage batches 1, 3, 5, ... 39: twenty stretches. */
    for (size_t i = 1; i < 40; i += 2)
        im.b.data[im.pos[i] + im.hlen[i]] ^= 0x80;
    put_file(fd, im.b.data, im.b.len);
    assert_int_equal(scan(fd, &sc, &s), 0);
    assert_int_equal(sc.n_corrupt, KR_SEG_MAX_CORRUPT);
    for (size_t k = 0; k < KR_SEG_MAX_CORRUPT; k++) {
        size_t i = 1 + 2 * k;
        assert_int_equal(sc.corrupt[k].pos, im.pos[i]);
        assert_int_equal(sc.corrupt[k].end, im.pos[i + 1]);
        assert_int_equal(sc.corrupt[k].first, im.first[i]);
        assert_int_equal(sc.corrupt[k].next, im.first[i + 1]);
    }
    size_t bad = 1 + 2 * KR_SEG_MAX_CORRUPT; /* the 17th damaged batch */
    assert_true(sc.torn);
    assert_int_equal(sc.good_end, im.pos[bad]);
    assert_int_equal(sc.next, im.first[bad]);
    assert_int_equal(sc.batches, bad - KR_SEG_MAX_CORRUPT);
    image_free(&im);
    close(fd);
}

/* Batches around and above the 1 MiB scan window: straddling batches,
 * a batch larger than the window, damage found across window edges. */
static void test_scan_large(void **state)
{
    (void)state;
    image im;
    kr_seg_scan sc;
    static seen s;
    int fd = tmp_fd();

    image_init(&im, 1 << 20, 128);
    for (int i = 0; i < 100; i++) {
        size_t big = (i % 10 == 3) ? 200000 + rnd() % 100000 : 0;
        if (i == 50)
            big = 3u << 20; /* larger than the window */
        image_add(&im, im.end_next, 1 + (uint32_t)(rnd() % 20), big);
    }
    put_file(fd, im.b.data, im.b.len);
    assert_int_equal(scan(fd, &sc, &s), 0);
    expect_prefix(&im, &sc, &s, 100, im.b.len, im.b.len);

    /* Damage in the big batch, in one after it, and at the batch
     * straddling the first window edge. */
    size_t straddle = 0;
    while (im.pos[straddle + 1] < (1u << 20))
        straddle++;
    size_t victims[] = {50, 51, straddle, 99};
    for (size_t v = 0; v < sizeof victims / sizeof victims[0]; v++) {
        size_t i = victims[v];
        uint64_t at = im.pos[i] + im.hlen[i] + (batch_end(&im, i) - im.pos[i]) / 2;
        im.b.data[at] ^= 0x04;
        put_file(fd, im.b.data, im.b.len);
        assert_int_equal(scan(fd, &sc, &s), 0);
        if (i == 99) {
            expect_prefix(&im, &sc, &s, 99, im.pos[99], im.b.len);
        } else {
            assert_false(sc.torn);
            assert_int_equal(sc.n_corrupt, 1);
            assert_int_equal(sc.corrupt[0].pos, im.pos[i]);
            assert_int_equal(sc.corrupt[0].end, im.pos[i + 1]);
            assert_int_equal(sc.batches, 99);
            assert_int_equal(sc.next, im.end_next);
        }
        im.b.data[at] ^= 0x04;
    }
    /* The big batch cut in half: torn there. */
    uint64_t cut = im.pos[50] + (batch_end(&im, 50) - im.pos[50]) / 2;
    put_file(fd, im.b.data, cut);
    assert_int_equal(scan(fd, &sc, &s), 0);
    expect_prefix(&im, &sc, &s, 50, im.pos[50], cut);
    image_free(&im);
    close(fd);
}

/* Garbage far longer than the window with no batch in it. */
static void test_scan_long_garbage(void **state)
{
    (void)state;
    image im;
    kr_seg_scan sc;
    static seen s;
    int fd = tmp_fd();

    image_standard(&im, 9);
    size_t good = im.b.len;
    /* A good batch after 3 MiB of noise sprinkled with magic: a corrupt
     * range spanning several windows. */
    uint8_t junk[4096];
    for (int k = 0; k < 768; k++) {
        for (size_t i = 0; i < sizeof junk; i++)
            junk[i] = (uint8_t)rnd();
        memcpy(junk + rnd() % (sizeof junk - 4), "KRB1", 4);
        kr_buf_append(&im.b, junk, sizeof junk);
    }
    uint64_t noise_end = im.b.len;
    uint64_t lost = im.end_next;
    image_add(&im, lost + 7, 5, 0);
    put_file(fd, im.b.data, im.b.len);
    assert_int_equal(scan(fd, &sc, &s), 0);
    assert_false(sc.torn);
    assert_int_equal(sc.batches, 51);
    assert_int_equal(sc.n_corrupt, 1);
    assert_int_equal(sc.corrupt[0].pos, good);
    assert_int_equal(sc.corrupt[0].end, noise_end);
    assert_int_equal(sc.corrupt[0].first, lost);
    assert_int_equal(sc.corrupt[0].next, lost + 7);
    assert_int_equal(sc.next, lost + 12);
    assert_int_equal(s.pos[50], noise_end);
    image_free(&im);
    close(fd);
}

/* A good batch after noise, placed so that its header straddles the edge
 * of the 1 MiB scan window by every amount: the search must find it. */
static void test_scan_window_edge(void **state)
{
    (void)state;
    image im;
    kr_seg_scan sc;
    static seen s;
    int fd = tmp_fd();
    const uint64_t edge = (uint64_t)1 << 20;

    for (uint64_t back = 0; back <= 40; back++) {
        image_standard(&im, 0);
        size_t good = im.b.len;
        uint64_t lost = im.end_next;
        /* Noise without the magic's first byte, up to edge - back. */
        while (im.b.len < edge - back) {
            uint8_t junk[4096];
            size_t n = sizeof junk;
            if (n > edge - back - im.b.len)
                n = (size_t)(edge - back - im.b.len);
            for (size_t i = 0; i < n; i++) {
                junk[i] = (uint8_t)rnd();
                if (junk[i] == 0x4B)
                    junk[i] = 0;
            }
            kr_buf_append(&im.b, junk, n);
        }
        image_add(&im, lost + 2, 3, 0);
        image_add(&im, im.end_next, 4, 0);
        put_file(fd, im.b.data, im.b.len);
        assert_int_equal(scan(fd, &sc, &s), 0);
        assert_false(sc.torn);
        assert_int_equal(sc.batches, 52);
        assert_int_equal(sc.n_corrupt, 1);
        assert_int_equal(sc.corrupt[0].pos, good);
        assert_int_equal(sc.corrupt[0].end, edge - back);
        assert_int_equal(sc.corrupt[0].first, lost);
        assert_int_equal(sc.corrupt[0].next, lost + 2);
        assert_int_equal(sc.next, lost + 9);
        image_free(&im);
    }
    close(fd);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_names),
        cmocka_unit_test(test_seg_header),
        cmocka_unit_test(test_seg_header_v2),
        cmocka_unit_test(test_batch_header),
        cmocka_unit_test(test_batch_put_and_seal),
        cmocka_unit_test(test_payload_check),
        cmocka_unit_test(test_locate),
        cmocka_unit_test(test_scan_all_good),
        cmocka_unit_test(test_scan_bad_header),
        cmocka_unit_test(test_scan_cut_last),
        cmocka_unit_test(test_scan_cut_last_two),
        cmocka_unit_test(test_scan_flip_middle),
        cmocka_unit_test(test_scan_flip_first_and_last),
        cmocka_unit_test(test_scan_forged_payload),
        cmocka_unit_test(test_scan_garbage_tail),
        cmocka_unit_test(test_scan_gap),
        cmocka_unit_test(test_scan_many_corrupt),
        cmocka_unit_test(test_scan_large),
        cmocka_unit_test(test_scan_long_garbage),
        cmocka_unit_test(test_scan_window_edge),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
