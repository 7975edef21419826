/*
 * tests/test_kafka_records.c - record batches v2, their codecs and the
 * mapping to krappy events: kcat's own batches (one per codec) read back,
 * batches written here and compressed with zlib, snappy (raw and xerial),
 * lz4 and zstd, CRC errors (in small and ~57 KiB batches), legacy and
 * transactional batches, bad varints,
 * truncation at every length, decompression bombs, records to PUBLISH
 * events and delivered events to records (with gaps in the offsets; the
 * shortcut for plain events writes what the general path writes).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <lz4frame.h>
#include <snappy-c.h>
#include <zlib.h>
#include <zstd.h>

#include "kafka/codec.h"
#include "kafka_golden.h"
#include "krappy/protocol.h"
#include "proto/cbor.h"
#include "util/crc32c.h"

#define MAX_OUT (1u << 20)

static bool bytes_are(kr_kafka_bytes b, const char *c)
{
    return b.len >= 0 && (size_t)b.len == strlen(c) && memcmp(b.ptr, c, (size_t)b.len) == 0;
}

/* The records field of the Produce request captured in `scenario`. */
static kr_kafka_bytes produce_records(const char *scenario, kr_kafka_arena *a,
                                      kr_kafka_request *req)
{
    char msg[256];
    const kafka_golden *g = kafka_capture(scenario, KR_KAFKA_PRODUCE, 0, 0);
    if (g == NULL)
        fail_msg("no Produce captured in %s", scenario);
    assert_int_equal(kr_kafka_request_decode(g->bytes, g->len, a, req, msg, sizeof msg),
                     KR_KAFKA_OK);
    assert_int_equal(req->h.api_key, KR_KAFKA_PRODUCE);
    return req->u.produce.topics.v[0].partitions.v[0].records;
}

/* ---- kcat's batches ---- */

/* What kcat -P read from the capture script's stdin. */
static void check_kcat_records(const kr_kafka_batch *b, kr_buf *scratch, bool tombstones)
{
    static const char *keys[] = {"alice", "bob", "", "carol"};
    static const char *values[] = {"pending", "paid", "no-key", NULL};
    kr_kafka_record_iter it;
    kr_kafka_record r;
    kr_kafka_err e;
    char msg[256];
    int n = 0, got;

    assert_int_equal(kr_kafka_record_iter_init(&it, b, scratch, MAX_OUT, msg, sizeof msg),
                     KR_KAFKA_ERR_NONE);
    while ((got = kr_kafka_record_next(&it, &r, &e, msg, sizeof msg)) == 1) {
        assert_int_equal(r.index, n);
        assert_int_equal(r.offset_delta, n);
        assert_int_equal(r.offset, b->base_offset + n);
        assert_true(r.timestamp >= b->base_timestamp && r.timestamp <= b->max_timestamp);
        assert_true(bytes_are(r.key, keys[n]));
        if (tombstones)
            assert_int_equal(r.value.len, -1);
        else if (values[n] != NULL)
            assert_true(bytes_are(r.value, values[n]));
        else
            assert_int_equal(r.value.len, 300);
        n++;
    }
    if (got < 0)
        fail_msg("%s", msg);
    assert_int_equal(n, b->count);
    assert_int_equal(b->last_offset_delta, n - 1);
}

static void test_kcat_batches(void **state)
{
    (void)state;
    static const struct {
        const char *name;
        int codec;
    } cases[] = {
        {"produce-none", KR_KAFKA_CODEC_NONE},     {"produce-gzip", KR_KAFKA_CODEC_GZIP},
        {"produce-snappy", KR_KAFKA_CODEC_SNAPPY}, {"produce-lz4", KR_KAFKA_CODEC_LZ4},
        {"produce-zstd", KR_KAFKA_CODEC_ZSTD},     {"produce-idempotent", KR_KAFKA_CODEC_NONE},
        {"produce-acks0", KR_KAFKA_CODEC_NONE},
    };
    kr_kafka_arena a;
    kr_kafka_request req;
    kr_buf scratch;
    char msg[256];
    kr_kafka_err e;

    kr_kafka_arena_init(&a, 1u << 20);
    kr_buf_init(&scratch, 1u << 24);
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        kr_kafka_batch_iter bi;
        kr_kafka_batch b;
        kr_kafka_bytes recs = produce_records(cases[i].name, &a, &req);
        kr_kafka_batch_iter_init(&bi, recs.ptr, (size_t)recs.len);
        assert_int_equal(kr_kafka_batch_next(&bi, &b, &e, msg, sizeof msg), 1);
        assert_int_equal(b.attributes & KR_KAFKA_CODEC_MASK, cases[i].codec);
        assert_int_equal(b.base_offset, 0);
        assert_int_equal(b.count, 4);
        check_kcat_records(&b, &scratch, false);
        if (strstr(cases[i].name, "idempotent") != NULL) {
            assert_int_equal(b.producer_id, 4242); /* what the stand-in answered */
            assert_int_equal(b.producer_epoch, 0);
            assert_int_equal(b.base_sequence, 0);
        } else {
            assert_int_equal(b.producer_id, -1);
            assert_int_equal(b.base_sequence, -1);
        }
        assert_int_equal(kr_kafka_batch_next(&bi, &b, &e, msg, sizeof msg), 0);
        kr_kafka_arena_reset(&a);
    }
    /* -Z: empty values are null, the tombstones */
    kr_kafka_batch_iter bi;
    kr_kafka_batch b;
    kr_kafka_bytes recs = produce_records("produce-tombstone", &a, &req);
    kr_kafka_batch_iter_init(&bi, recs.ptr, (size_t)recs.len);
    assert_int_equal(kr_kafka_batch_next(&bi, &b, &e, msg, sizeof msg), 1);
    assert_int_equal(b.count, 2);
    check_kcat_records(&b, &scratch, true);
    kr_buf_free(&scratch);
    kr_kafka_arena_free(&a);
}

/* kcat -H h1=v1 -H h1=v2 -H h2: three headers, the last with a null value. */
static void test_kcat_headers(void **state)
{
    (void)state;
    kr_kafka_arena a;
    kr_kafka_request req;
    kr_kafka_batch_iter bi;
    kr_kafka_batch b;
    kr_kafka_record_iter it;
    kr_kafka_record r;
    kr_kafka_header h;
    kr_kafka_rd hr;
    kr_buf scratch;
    kr_kafka_err e;
    char msg[256];

    kr_kafka_arena_init(&a, 1u << 20);
    kr_buf_init(&scratch, 1u << 20);
    kr_kafka_bytes recs = produce_records("produce-none", &a, &req);
    kr_kafka_batch_iter_init(&bi, recs.ptr, (size_t)recs.len);
    assert_int_equal(kr_kafka_batch_next(&bi, &b, &e, msg, sizeof msg), 1);
    assert_int_equal(kr_kafka_record_iter_init(&it, &b, &scratch, MAX_OUT, msg, sizeof msg), 0);
    assert_int_equal(kr_kafka_record_next(&it, &r, &e, msg, sizeof msg), 1);
    assert_int_equal(r.header_count, 3);
    kr_kafka_header_iter_init(&hr, &r);
    assert_true(kr_kafka_header_next(&hr, &h));
    assert_true(bytes_are(h.key, "h1") && bytes_are(h.value, "v1"));
    assert_true(kr_kafka_header_next(&hr, &h));
    assert_true(bytes_are(h.key, "h1") && bytes_are(h.value, "v2"));
    assert_true(kr_kafka_header_next(&hr, &h));
    assert_true(bytes_are(h.key, "h2"));
    assert_int_equal(h.value.len, -1);
    assert_false(kr_kafka_header_next(&hr, &h));
    kr_buf_free(&scratch);
    kr_kafka_arena_free(&a);
}

/* ---- batches written here ---- */

typedef struct spec {
    int64_t offset, ts;
    const char *key, *value; /* NULL: null */
    const char *hkey, *hvalue;
} spec;

static kr_kafka_bytes cbytes(const char *s)
{
    kr_kafka_bytes b = {(const uint8_t *)s, s != NULL ? (int32_t)strlen(s) : -1};
    return b;
}

static void write_batch(kr_buf *out, const spec *s, size_t n)
{
    kr_kafka_batch_writer w;
    kr_kafka_batch_begin(&w, out);
    for (size_t i = 0; i < n; i++) {
        assert_int_equal(kr_kafka_record_begin(&w, s[i].offset, s[i].ts, cbytes(s[i].key),
                                               cbytes(s[i].value), s[i].hkey != NULL),
                         0);
        if (s[i].hkey != NULL)
            assert_int_equal(kr_kafka_record_header(&w, cbytes(s[i].hkey), cbytes(s[i].hvalue)), 0);
        assert_int_equal(kr_kafka_record_end(&w), 0);
    }
    assert_int_equal(kr_kafka_batch_end(&w), (int32_t)n);
}

/* Read batch[0..len) and check its records against s. */
static void read_batch(const uint8_t *batch, size_t len, const spec *s, size_t n)
{
    kr_kafka_batch_iter bi;
    kr_kafka_batch b;
    kr_kafka_record_iter it;
    kr_kafka_record r;
    kr_buf scratch;
    kr_kafka_err e;
    char msg[256];
    size_t i = 0;
    int got;

    kr_buf_init(&scratch, 1u << 24);
    kr_kafka_batch_iter_init(&bi, batch, len);
    if (kr_kafka_batch_next(&bi, &b, &e, msg, sizeof msg) != 1)
        fail_msg("%s", msg);
    assert_int_equal(b.count, (int32_t)n);
    assert_int_equal(b.base_offset, s[0].offset);
    assert_int_equal(b.last_offset_delta, s[n - 1].offset - s[0].offset);
    assert_int_equal(b.base_timestamp, s[0].ts);
    if (kr_kafka_record_iter_init(&it, &b, &scratch, MAX_OUT, msg, sizeof msg) != 0)
        fail_msg("%s", msg);
    while ((got = kr_kafka_record_next(&it, &r, &e, msg, sizeof msg)) == 1) {
        assert_true(i < n);
        assert_int_equal(r.offset, s[i].offset);
        assert_int_equal(r.timestamp, s[i].ts);
        if (s[i].key == NULL)
            assert_int_equal(r.key.len, -1);
        else
            assert_true(bytes_are(r.key, s[i].key));
        if (s[i].value == NULL)
            assert_int_equal(r.value.len, -1);
        else
            assert_true(bytes_are(r.value, s[i].value));
        assert_int_equal(r.header_count, s[i].hkey != NULL);
        i++;
    }
    if (got < 0)
        fail_msg("%s", msg);
    assert_int_equal(i, n);
    assert_int_equal(kr_kafka_batch_next(&bi, &b, &e, msg, sizeof msg), 0);
    kr_buf_free(&scratch);
}

/* Offsets with gaps (a compacted topic), a timestamp before the base, null
 * keys and values, a header: written, read back, and the header's numbers
 * (last offset delta, max timestamp, CRC) right. */
static void test_write_read(void **state)
{
    (void)state;
    static const spec s[] = {
        {100, 5000, "a", "1", NULL, NULL},
        {105, 5003, NULL, "2", "h", "x"},
        {109, 4990, "c", NULL, NULL, NULL},
        {110, 5001, "", "", "k", NULL},
    };
    kr_buf out;
    kr_buf_init(&out, 1u << 20);
    kr_kafka_put_i32(&out, 7); /* the batch need not start the buffer */
    write_batch(&out, s, 4);
    const uint8_t *b = out.data + 4;
    size_t len = out.len - 4;
    read_batch(b, len, s, 4);
    /* the header, byte by byte where it is fixed */
    assert_int_equal(b[16], 2);                                           /* magic */
    assert_int_equal(b[23] << 24 | b[24] << 16 | b[25] << 8 | b[26], 10); /* last delta */
    assert_int_equal(b[57] << 24 | b[58] << 16 | b[59] << 8 | b[60], 4);  /* count */
    assert_int_equal((uint32_t)(b[8] << 24 | b[9] << 16 | b[10] << 8 | b[11]), len - 12);
    uint32_t crc = (uint32_t)b[17] << 24 | (uint32_t)b[18] << 16 | (uint32_t)b[19] << 8 | b[20];
    assert_int_equal(crc, kr_crc32c_table(0, b + 21, len - 21));
    for (int i = 43; i < 57; i++) /* producer id, epoch, base sequence: -1 */
        assert_int_equal(b[i], 0xff);

    /* two batches in one records field */
    kr_buf two;
    kr_buf_init(&two, 1u << 20);
    write_batch(&two, s, 2);
    size_t first = two.len;
    write_batch(&two, s + 2, 2);
    kr_kafka_batch_iter bi;
    kr_kafka_batch bb;
    kr_kafka_err e;
    char msg[256];
    kr_kafka_batch_iter_init(&bi, two.data, two.len);
    assert_int_equal(kr_kafka_batch_next(&bi, &bb, &e, msg, sizeof msg), 1);
    assert_int_equal(bb.base_offset, 100);
    assert_int_equal(bb.last_offset_delta, 5);
    assert_int_equal(kr_kafka_batch_next(&bi, &bb, &e, msg, sizeof msg), 1);
    assert_int_equal(bb.base_offset, 109);
    assert_int_equal(kr_kafka_batch_next(&bi, &bb, &e, msg, sizeof msg), 0);
    assert_true(first > KR_KAFKA_BATCH_HEADER);
    kr_buf_free(&two);
    kr_buf_free(&out);
}

/* Calls out of order refuse the batch and leave the buffer as it was. */
static void test_writer_misuse(void **state)
{
    (void)state;
    kr_kafka_batch_writer w;
    kr_buf out;
    kr_kafka_bytes k = cbytes("k");

    kr_buf_init(&out, 1u << 20);
    kr_kafka_put_i32(&out, 1);
    /* nothing added: no batch at all */
    kr_kafka_batch_begin(&w, &out);
    assert_int_equal(kr_kafka_batch_end(&w), 0);
    assert_int_equal(out.len, 4);
    /* an offset that goes back */
    kr_kafka_batch_begin(&w, &out);
    assert_int_equal(kr_kafka_record_begin(&w, 10, 0, k, k, 0), 0);
    assert_int_equal(kr_kafka_record_end(&w), 0);
    assert_int_equal(kr_kafka_record_begin(&w, 10, 0, k, k, 0), -1);
    assert_int_equal(kr_kafka_batch_end(&w), -1);
    assert_int_equal(out.len, 4);
    /* fewer headers than announced, then a header too many */
    kr_kafka_batch_begin(&w, &out);
    assert_int_equal(kr_kafka_record_begin(&w, 1, 0, k, k, 1), 0);
    assert_int_equal(kr_kafka_record_end(&w), -1);
    assert_int_equal(kr_kafka_batch_end(&w), -1);
    kr_kafka_batch_begin(&w, &out);
    assert_int_equal(kr_kafka_record_begin(&w, 1, 0, k, k, 0), 0);
    assert_int_equal(kr_kafka_record_header(&w, k, k), -1);
    assert_int_equal(kr_kafka_batch_end(&w), -1);
    /* an offset 2^31 past the base */
    kr_kafka_batch_begin(&w, &out);
    assert_int_equal(kr_kafka_record_begin(&w, 0, 0, k, k, 0), 0);
    assert_int_equal(kr_kafka_record_end(&w), 0);
    assert_int_equal(kr_kafka_record_begin(&w, (int64_t)INT32_MAX + 1, 0, k, k, 0), -1);
    assert_int_equal(kr_kafka_batch_end(&w), -1);
    /* a record left open */
    kr_kafka_batch_begin(&w, &out);
    assert_int_equal(kr_kafka_record_begin(&w, 0, 0, k, k, 0), 0);
    assert_int_equal(kr_kafka_batch_end(&w), -1);
    assert_int_equal(out.len, 4);
    /* the buffer's cap */
    kr_buf small;
    kr_buf_init(&small, 80);
    kr_kafka_batch_begin(&w, &small);
    kr_kafka_record_begin(&w, 0, 0, k, cbytes("a value that does not fit"), 0);
    kr_kafka_record_end(&w);
    assert_int_equal(kr_kafka_batch_end(&w), -1);
    assert_int_equal(small.len, 0);
    kr_buf_free(&small);
    kr_buf_free(&out);
}

/* ---- compression ---- */

static void gzip_into(const uint8_t *in, size_t n, kr_buf *out)
{
    z_stream zs;
    memset(&zs, 0, sizeof zs);
    assert_int_equal(deflateInit2(&zs, 1, Z_DEFLATED, 15 + 16, 8, Z_DEFAULT_STRATEGY), Z_OK);
    size_t bound = deflateBound(&zs, n);
    assert_int_equal(kr_buf_reserve(out, bound), 0);
    zs.next_in = (Bytef *)(uintptr_t)in;
    zs.avail_in = (uInt)n;
    zs.next_out = out->data + out->len;
    zs.avail_out = (uInt)bound;
    assert_int_equal(deflate(&zs, Z_FINISH), Z_STREAM_END);
    out->len += bound - zs.avail_out;
    deflateEnd(&zs);
}

static void snappy_into(const uint8_t *in, size_t n, kr_buf *out)
{
    size_t cap = snappy_max_compressed_length(n);
    assert_int_equal(kr_buf_reserve(out, cap), 0);
    assert_int_equal(snappy_compress((const char *)in, n, (char *)out->data + out->len, &cap),
                     SNAPPY_OK);
    out->len += cap;
}

/* Kafka's Java framing: magic, version 1, compatible 1, then blocks of at
 * most `block` input bytes, each [int32 length][raw snappy]. */
static void xerial_into(const uint8_t *in, size_t n, size_t block, kr_buf *out)
{
    static const uint8_t head[16] = {0x82, 'S', 'N', 'A', 'P', 'P', 'Y', 0, 0, 0, 0, 1, 0, 0, 0, 1};
    kr_buf_append(out, head, sizeof head);
    for (size_t off = 0; off < n; off += block) {
        size_t at = out->len;
        kr_kafka_put_i32(out, 0);
        snappy_into(in + off, n - off < block ? n - off : block, out);
        kr_kafka_patch_be(out, at, out->len - at - 4, 4);
    }
}

static void lz4_into(const uint8_t *in, size_t n, kr_buf *out)
{
    LZ4F_preferences_t prefs;
    memset(&prefs, 0, sizeof prefs);
    prefs.frameInfo.contentChecksumFlag = LZ4F_contentChecksumEnabled;
    size_t cap = LZ4F_compressFrameBound(n, &prefs);
    assert_int_equal(kr_buf_reserve(out, cap), 0);
    size_t got = LZ4F_compressFrame(out->data + out->len, cap, in, n, &prefs);
    assert_false(LZ4F_isError(got));
    out->len += got;
}

static void zstd_into(const uint8_t *in, size_t n, kr_buf *out)
{
    size_t cap = ZSTD_compressBound(n);
    assert_int_equal(kr_buf_reserve(out, cap), 0);
    size_t got = ZSTD_compress(out->data + out->len, cap, in, n, 1);
    assert_false(ZSTD_isError(got));
    out->len += got;
}

/* Compress in[0..n) with `codec` (xerial: 6) into out. */
static void compress_into(int codec, const uint8_t *in, size_t n, kr_buf *out)
{
    switch (codec) {
    case KR_KAFKA_CODEC_GZIP:
        gzip_into(in, n, out);
        break;
    case KR_KAFKA_CODEC_SNAPPY:
        snappy_into(in, n, out);
        break;
    case 6:
        xerial_into(in, n, 1000, out);
        break;
    case KR_KAFKA_CODEC_LZ4:
        lz4_into(in, n, out);
        break;
    case KR_KAFKA_CODEC_ZSTD:
        zstd_into(in, n, out);
        break;
    default:
        fail_msg("no codec %d", codec);
    }
}

/* A copy of batch b with new attributes and records section; length and
 * CRC made right. */
static void rebatch(const uint8_t *b, int16_t attrs, const uint8_t *records, size_t rlen,
                    kr_buf *out)
{
    size_t at = out->len;
    kr_buf_append(out, b, KR_KAFKA_BATCH_HEADER);
    kr_buf_append(out, records, rlen);
    kr_kafka_patch_be(out, at + 8, KR_KAFKA_BATCH_HEADER - 12 + rlen, 4);
    kr_kafka_patch_be(out, at + 21, (uint16_t)attrs, 2);
    uint32_t crc = kr_crc32c(0, out->data + at + 21, out->len - at - 21);
    kr_kafka_patch_be(out, at + 17, crc, 4);
}

/* 50 records, written, then their records section compressed with each
 * codec, read back the same. */
static void test_codecs_roundtrip(void **state)
{
    (void)state;
    static const int codecs[] = {KR_KAFKA_CODEC_GZIP, KR_KAFKA_CODEC_SNAPPY, 6, KR_KAFKA_CODEC_LZ4,
                                 KR_KAFKA_CODEC_ZSTD};
    spec s[50];
    char keys[50][16], values[50][64];
    kr_buf plain, packed, batch;

    for (int i = 0; i < 50; i++) {
        snprintf(keys[i], sizeof keys[i], "key-%d", i % 7);
        snprintf(values[i], sizeof values[i], "value %d of the batch, repeated, repeated", i);
        s[i] = (spec){1000 + 2 * i, 1700000000000 + i,      keys[i],
                      values[i],    i % 3 ? NULL : "trace", i % 3 ? NULL : "abc"};
    }
    kr_buf_init(&plain, 1u << 20);
    kr_buf_init(&packed, 1u << 20);
    kr_buf_init(&batch, 1u << 20);
    write_batch(&plain, s, 50);
    for (size_t c = 0; c < sizeof codecs / sizeof codecs[0]; c++) {
        kr_buf_reset(&packed);
        kr_buf_reset(&batch);
        compress_into(codecs[c], plain.data + KR_KAFKA_BATCH_HEADER,
                      plain.len - KR_KAFKA_BATCH_HEADER, &packed);
        int16_t codec = codecs[c] == 6 ? KR_KAFKA_CODEC_SNAPPY : (int16_t)codecs[c];
        rebatch(plain.data, codec, packed.data, packed.len, &batch);
        assert_true(batch.len < plain.len);
        read_batch(batch.data, batch.len, s, 50);

        /* the compressed stream cut short: CORRUPT_MESSAGE, with a sentence */
        kr_kafka_batch_iter bi;
        kr_kafka_batch b;
        kr_kafka_record_iter it;
        kr_buf scratch;
        kr_kafka_err e;
        char msg[256];
        kr_buf_reset(&batch);
        rebatch(plain.data, codec, packed.data, packed.len / 2, &batch);
        kr_buf_init(&scratch, 1u << 20);
        kr_kafka_batch_iter_init(&bi, batch.data, batch.len);
        assert_int_equal(kr_kafka_batch_next(&bi, &b, &e, msg, sizeof msg), 1);
        e = kr_kafka_record_iter_init(&it, &b, &scratch, MAX_OUT, msg, sizeof msg);
        if (e == KR_KAFKA_ERR_NONE) {
            /* xerial: whole blocks may decode; the records then stop short */
            kr_kafka_record r;
            int got;
            while ((got = kr_kafka_record_next(&it, &r, &e, msg, sizeof msg)) == 1)
                ;
            assert_int_equal(got, -1);
        }
        assert_int_equal(e, KR_KAFKA_ERR_CORRUPT_MESSAGE);
        assert_true(strlen(msg) > 10);
        kr_buf_free(&scratch);
    }
    kr_buf_free(&plain);
    kr_buf_free(&packed);
    kr_buf_free(&batch);
}

/* Bombs: 32 MiB of zeros in a few kilobytes must not become 32 MiB here. */
static void test_bombs(void **state)
{
    (void)state;
    static const int codecs[] = {KR_KAFKA_CODEC_GZIP, 6, KR_KAFKA_CODEC_LZ4, KR_KAFKA_CODEC_ZSTD};
    const size_t big = 32u << 20;
    uint8_t *zeros = calloc(big, 1);
    kr_buf packed, out;
    char msg[256];

    assert_non_null(zeros);
    kr_buf_init(&packed, 1u << 26);
    kr_buf_init(&out, SIZE_MAX);
    for (size_t c = 0; c < sizeof codecs / sizeof codecs[0]; c++) {
        kr_buf_reset(&packed);
        kr_buf_reset(&out);
        if (codecs[c] == 6)
            xerial_into(zeros, big, 1u << 20, &packed);
        else
            compress_into(codecs[c], zeros, big, &packed);
        int codec = codecs[c] == 6 ? KR_KAFKA_CODEC_SNAPPY : codecs[c];
        assert_true(packed.len < big / 16);
        assert_int_equal(
            kr_kafka_decompress(codec, packed.data, packed.len, &out, MAX_OUT, msg, sizeof msg),
            KR_KAFKA_ERR_MESSAGE_TOO_LARGE);
        assert_true(out.cap <= MAX_OUT);
        assert_non_null(strstr(msg, "more than 1048576 bytes"));
        /* the buffer's own cap counts too */
        kr_buf capped;
        kr_buf_init(&capped, 4096);
        assert_int_equal(
            kr_kafka_decompress(codec, packed.data, packed.len, &capped, SIZE_MAX, msg, sizeof msg),
            KR_KAFKA_ERR_MESSAGE_TOO_LARGE);
        assert_true(capped.cap <= 4096);
        kr_buf_free(&capped);
    }
    /* raw snappy says its length first: refused before anything is made */
    static const uint8_t claim[] = {0x80, 0x80, 0x80, 0x80, 0x04, 0x00}; /* 1 GiB */
    kr_buf fresh;
    kr_buf_init(&fresh, SIZE_MAX);
    assert_int_equal(kr_kafka_decompress(KR_KAFKA_CODEC_SNAPPY, claim, sizeof claim, &fresh,
                                         MAX_OUT, msg, sizeof msg),
                     KR_KAFKA_ERR_MESSAGE_TOO_LARGE);
    assert_int_equal(fresh.cap, 0);
    kr_buf_free(&fresh);
    kr_buf_free(&packed);
    kr_buf_free(&out);
    free(zeros);
}

/* Output of exactly the cap fits; one byte less does not. */
static void test_exact_limit(void **state)
{
    (void)state;
    static const int codecs[] = {KR_KAFKA_CODEC_GZIP, KR_KAFKA_CODEC_SNAPPY, 6, KR_KAFKA_CODEC_LZ4,
                                 KR_KAFKA_CODEC_ZSTD};
    enum { N = 200000 };
    uint8_t *in = malloc(N);
    kr_buf packed, out;
    char msg[256];

    assert_non_null(in);
    for (size_t i = 0; i < N; i++)
        in[i] = (uint8_t)(i * 7 / 13);
    kr_buf_init(&packed, 1u << 22);
    kr_buf_init(&out, 1u << 22);
    for (size_t c = 0; c < sizeof codecs / sizeof codecs[0]; c++) {
        int codec = codecs[c] == 6 ? KR_KAFKA_CODEC_SNAPPY : codecs[c];
        kr_buf_reset(&packed);
        compress_into(codecs[c], in, N, &packed);
        kr_buf_reset(&out);
        if (kr_kafka_decompress(codec, packed.data, packed.len, &out, N, msg, sizeof msg) != 0)
            fail_msg("codec %d: %s", codecs[c], msg);
        assert_int_equal(out.len, N);
        assert_memory_equal(out.data, in, N);
        kr_buf_reset(&out);
        assert_int_equal(
            kr_kafka_decompress(codec, packed.data, packed.len, &out, N - 1, msg, sizeof msg),
            KR_KAFKA_ERR_MESSAGE_TOO_LARGE);
        /* appended after what out already held */
        kr_buf_reset(&out);
        kr_buf_append(&out, "xy", 2);
        assert_int_equal(
            kr_kafka_decompress(codec, packed.data, packed.len, &out, N, msg, sizeof msg), 0);
        assert_int_equal(out.len, N + 2);
        assert_memory_equal(out.data + 2, in, N);
    }
    kr_buf_free(&packed);
    kr_buf_free(&out);
    free(in);
}

/* Streams of several members or frames; garbage after one; no codec. */
static void test_multi_and_garbage(void **state)
{
    (void)state;
    kr_buf packed, out;
    char msg[256];

    kr_buf_init(&packed, 1u << 20);
    kr_buf_init(&out, 1u << 20);
    static const int codecs[] = {KR_KAFKA_CODEC_GZIP, KR_KAFKA_CODEC_LZ4, KR_KAFKA_CODEC_ZSTD};
    for (size_t c = 0; c < sizeof codecs / sizeof codecs[0]; c++) {
        kr_buf_reset(&packed);
        kr_buf_reset(&out);
        compress_into(codecs[c], (const uint8_t *)"hello ", 6, &packed);
        compress_into(codecs[c], (const uint8_t *)"world", 5, &packed);
        if (kr_kafka_decompress(codecs[c], packed.data, packed.len, &out, 100, msg, sizeof msg))
            fail_msg("codec %d: %s", codecs[c], msg);
        assert_int_equal(out.len, 11);
        assert_memory_equal(out.data, "hello world", 11);
        /* a stray byte after the last frame */
        kr_buf_append(&packed, "\x07", 1);
        kr_buf_reset(&out);
        assert_int_equal(
            kr_kafka_decompress(codecs[c], packed.data, packed.len, &out, 100, msg, sizeof msg),
            KR_KAFKA_ERR_CORRUPT_MESSAGE);
    }
    /* not a stream of the codec at all */
    static const uint8_t junk[] = "this is not compressed";
    for (int codec = 1; codec <= 4; codec++) {
        kr_buf_reset(&out);
        assert_int_equal(kr_kafka_decompress(codec, junk, sizeof junk, &out, 1000, msg, sizeof msg),
                         KR_KAFKA_ERR_CORRUPT_MESSAGE);
    }
    kr_buf_reset(&out);
    assert_int_equal(kr_kafka_decompress(7, junk, sizeof junk, &out, 100, msg, sizeof msg),
                     KR_KAFKA_ERR_UNSUPPORTED_COMPRESSION_TYPE);
    assert_int_equal(kr_kafka_decompress(0, junk, sizeof junk, &out, 100, msg, sizeof msg),
                     KR_KAFKA_ERR_UNSUPPORTED_COMPRESSION_TYPE);
    assert_string_equal(kr_kafka_codec_name(KR_KAFKA_CODEC_ZSTD), "zstd");
    assert_string_equal(kr_kafka_codec_name(9), "unknown");
    /* a xerial block length past the end */
    static const uint8_t xbad[] = {0x82, 'S', 'N', 'A', 'P', 'P', 'Y', 0, 0, 0, 0,
                                   1,    0,   0,   0,   1,   0,   0,   0, 9, 1, 2};
    assert_int_equal(
        kr_kafka_decompress(KR_KAFKA_CODEC_SNAPPY, xbad, sizeof xbad, &out, 100, msg, sizeof msg),
        KR_KAFKA_ERR_CORRUPT_MESSAGE);
    kr_buf_free(&packed);
    kr_buf_free(&out);
}

/* ---- refused batches ---- */

/* The first batch of bytes[0..len): its status, error and message. */
static int first_batch(const uint8_t *bytes, size_t len, kr_kafka_batch *b, kr_kafka_err *e,
                       char *msg, size_t msglen)
{
    kr_kafka_batch_iter bi;
    kr_kafka_batch_iter_init(&bi, bytes, len);
    return kr_kafka_batch_next(&bi, b, e, msg, msglen);
}

/* All records of a batch; @return 0, or -1 with e and msg. */
static int all_records(const kr_kafka_batch *b, kr_kafka_err *e, char *msg, size_t msglen)
{
    kr_kafka_record_iter it;
    kr_kafka_record r;
    kr_buf scratch;
    int got;
    kr_buf_init(&scratch, 1u << 20);
    *e = kr_kafka_record_iter_init(&it, b, &scratch, MAX_OUT, msg, msglen);
    if (*e != KR_KAFKA_ERR_NONE) {
        kr_buf_free(&scratch);
        return -1;
    }
    while ((got = kr_kafka_record_next(&it, &r, e, msg, msglen)) == 1)
        ;
    kr_buf_free(&scratch);
    return got;
}

/* The batch `good` with byte i XOR `flip` (copied into bad) is refused
 * for its CRC. */
static void expect_crc_refused(const kr_buf *good, kr_buf *bad, size_t i, uint8_t flip)
{
    kr_kafka_batch b;
    kr_kafka_err e;
    char msg[256];
    kr_buf_reset(bad);
    kr_buf_append(bad, good->data, good->len);
    bad->data[i] ^= flip;
    assert_int_equal(first_batch(bad->data, bad->len, &b, &e, msg, sizeof msg), -1);
    assert_int_equal(e, KR_KAFKA_ERR_CORRUPT_MESSAGE);
    assert_non_null(strstr(msg, "CRC-32C"));
}

/* A batch of ~57 KiB: 500 records of 100-byte values. */
static void write_large_batch(kr_buf *out)
{
    enum { N = 500 };
    static char keys[N][16];
    static char value[101];
    static spec s[N];
    memset(value, 'v', 100);
    for (int i = 0; i < N; i++) {
        snprintf(keys[i], sizeof keys[i], "key-%d", i);
        s[i] = (spec){i, 1000 + i, keys[i], value, NULL, NULL};
    }
    write_batch(out, s, N);
}

static void test_refused_batches(void **state)
{
    (void)state;
    static const spec s[] = {{0, 1, "k", "v", NULL, NULL}, {1, 2, "k2", "v2", NULL, NULL}};
    kr_buf good, bad;
    kr_kafka_batch b;
    kr_kafka_err e;
    char msg[256];

    kr_buf_init(&good, 1u << 20);
    kr_buf_init(&bad, 1u << 20);
    write_batch(&good, s, 2);

    /* one flipped bit anywhere after the CRC */
    for (size_t i = 21; i < good.len; i++)
        expect_crc_refused(&good, &bad, i, 0x10);
    /* legacy message sets, and an unknown magic */
    for (int magic = 0; magic <= 3; magic++) {
        if (magic == 2)
            continue;
        kr_buf_reset(&bad);
        kr_buf_append(&bad, good.data, good.len);
        bad.data[16] = (uint8_t)magic;
        assert_int_equal(first_batch(bad.data, bad.len, &b, &e, msg, sizeof msg), -1);
        assert_int_equal(e, magic < 2 ? KR_KAFKA_ERR_UNSUPPORTED_FOR_MESSAGE_FORMAT
                                      : KR_KAFKA_ERR_CORRUPT_MESSAGE);
    }
    assert_int_equal(first_batch(good.data, good.len, &b, &e, msg, sizeof msg), 1);
    /* attributes: codec 5, transactional, control (CRC made right) */
    static const struct {
        int16_t attrs;
        kr_kafka_err want;
    } attrs[] = {
        {5, KR_KAFKA_ERR_UNSUPPORTED_COMPRESSION_TYPE},
        {7, KR_KAFKA_ERR_UNSUPPORTED_COMPRESSION_TYPE},
        {KR_KAFKA_ATTR_TRANSACTIONAL, KR_KAFKA_ERR_INVALID_RECORD},
        {KR_KAFKA_ATTR_CONTROL | KR_KAFKA_ATTR_TRANSACTIONAL, KR_KAFKA_ERR_INVALID_RECORD}};
    for (size_t i = 0; i < sizeof attrs / sizeof attrs[0]; i++) {
        kr_buf_reset(&bad);
        rebatch(good.data, attrs[i].attrs, good.data + KR_KAFKA_BATCH_HEADER,
                good.len - KR_KAFKA_BATCH_HEADER, &bad);
        assert_int_equal(first_batch(bad.data, bad.len, &b, &e, msg, sizeof msg), -1);
        assert_int_equal(e, attrs[i].want);
    }
    assert_non_null(strstr(msg, "transaction"));
    /* a negative record count */
    kr_buf_reset(&bad);
    rebatch(good.data, 0, good.data + KR_KAFKA_BATCH_HEADER, good.len - KR_KAFKA_BATCH_HEADER,
            &bad);
    kr_kafka_patch_be(&bad, 57, 0xffffffffu, 4);
    kr_kafka_patch_be(&bad, 17, kr_crc32c(0, bad.data + 21, bad.len - 21), 4);
    assert_int_equal(first_batch(bad.data, bad.len, &b, &e, msg, sizeof msg), -1);
    assert_int_equal(e, KR_KAFKA_ERR_CORRUPT_MESSAGE);

    /* every proper prefix of a good batch */
    for (size_t n = 0; n < good.len; n++) {
        uint8_t *cut = malloc(n ? n : 1);
        assert_non_null(cut);
        memcpy(cut, good.data, n);
        int got = first_batch(cut, n, &b, &e, msg, sizeof msg);
        assert_int_equal(got, n == 0 ? 0 : -1);
        free(cut);
    }

    /* A large batch, its CRC taken by the hardware path's three streams
     * over 8 KiB blocks, then 256-byte ones, then the rest: it reads whole,
     * and one flipped bit in any of its parts - each block, the joints
     * between them, the tail - refuses it. */
    kr_buf_reset(&good);
    write_large_batch(&good);
    assert_true(good.len > 2 * 3 * 8192);
    assert_int_equal(first_batch(good.data, good.len, &b, &e, msg, sizeof msg), 1);
    assert_int_equal(b.count, 500);
    for (size_t i = 21; i < good.len; i += (i % 8192 < 16 || i + 32 > good.len) ? 1 : 61)
        expect_crc_refused(&good, &bad, i, 0x01);
    kr_buf_free(&good);
    kr_buf_free(&bad);
}

/* A batch with good's header but records recs[0..n) (and records_count
 * `count` unless it is negative), its CRC right: the batch reads, its
 * records are refused. @return their error (msg set). */
static kr_kafka_err refused_records(const kr_buf *good, const uint8_t *recs, size_t n,
                                    int32_t count, char *msg, size_t msglen)
{
    kr_buf bad;
    kr_kafka_batch b;
    kr_kafka_err e;

    kr_buf_init(&bad, 1u << 20);
    rebatch(good->data, 0, recs, n, &bad);
    if (count >= 0) {
        kr_kafka_patch_be(&bad, 57, (uint32_t)count, 4);
        kr_kafka_patch_be(&bad, 17, kr_crc32c(0, bad.data + 21, bad.len - 21), 4);
    }
    assert_int_equal(first_batch(bad.data, bad.len, &b, &e, msg, msglen), 1);
    assert_int_equal(all_records(&b, &e, msg, msglen), -1);
    kr_buf_free(&bad);
    return e;
}

/* Records that do not add up inside a batch whose CRC is right. */
static void test_bad_records(void **state)
{
    (void)state;
    static const spec s[] = {{0, 1, "k", "v", "h", "x"}, {1, 2, "k2", "v2", NULL, NULL}};
    kr_buf good;
    char msg[256];

    kr_buf_init(&good, 1u << 20);
    write_batch(&good, s, 2);
    const uint8_t *recs = good.data + KR_KAFKA_BATCH_HEADER;
    size_t rlen = good.len - KR_KAFKA_BATCH_HEADER;

    /* the count says 3: the third record is missing */
    assert_int_equal(refused_records(&good, recs, rlen, 3, msg, sizeof msg),
                     KR_KAFKA_ERR_CORRUPT_MESSAGE);
    assert_non_null(strstr(msg, "record 2 of 3"));
    /* the count says 1: bytes are left over */
    assert_int_equal(refused_records(&good, recs, rlen, 1, msg, sizeof msg),
                     KR_KAFKA_ERR_CORRUPT_MESSAGE);
    assert_non_null(strstr(msg, "after its 1 records"));
    /* a record length varint of six bytes */
    static const uint8_t longvar[] = {0xff, 0xff, 0xff, 0xff, 0xff, 0x01, 0, 0, 0, 0, 0, 0, 0};
    refused_records(&good, longvar, sizeof longvar, -1, msg, sizeof msg);
    assert_non_null(strstr(msg, "bad varint"));
    /* a record that takes in its neighbour, one longer than the batch */
    uint8_t changed[256];
    assert_true(rlen < 63 && rlen <= sizeof changed);
    memcpy(changed, recs, rlen);
    changed[0] = (uint8_t)(changed[0] + 20);
    refused_records(&good, changed, rlen, -1, msg, sizeof msg);
    assert_non_null(strstr(msg, "record 0 of 2: bytes after its last header"));
    changed[0] = 0x7e; /* 63 */
    refused_records(&good, changed, rlen, -1, msg, sizeof msg);
    assert_non_null(strstr(msg, "its length does not fit the batch"));
    /* the first record's header key made null (varint -1 = 0x01): after
     * the record's length, attributes, two deltas, key and value (length
     * and one byte each) and the header count */
    memcpy(changed, recs, rlen);
    size_t hk = 1 + 1 + 1 + 1 + 2 + 2 + 1;
    assert_int_equal(changed[hk], 2); /* "h": length 1 */
    changed[hk] = 0x01;
    refused_records(&good, changed, rlen, -1, msg, sizeof msg);
    assert_non_null(strstr(msg, "header key is null"));
    /* every cut of the records section */
    for (size_t n = 0; n < rlen; n++)
        assert_int_equal(refused_records(&good, recs, n, -1, msg, sizeof msg),
                         KR_KAFKA_ERR_CORRUPT_MESSAGE);
    kr_buf_free(&good);
}

/* ---- records to events ---- */

/* The events of the first batch of a captured Produce request. */
static void kcat_events(const char *name, kr_buf *out)
{
    kr_kafka_arena a;
    kr_kafka_request req;
    kr_kafka_batch b;
    kr_kafka_err e;
    kr_buf records, scratch;
    char msg[256];

    kr_kafka_arena_init(&a, 1u << 20);
    kr_buf_init(&records, 1u << 20);
    kr_buf_init(&scratch, 1u << 20);
    kr_kafka_bytes recs = produce_records(name, &a, &req);
    assert_int_equal(first_batch(recs.ptr, (size_t)recs.len, &b, &e, msg, sizeof msg), 1);
    e = kr_kafka_batch_to_events(&b, &records, MAX_OUT, out, &scratch, msg, sizeof msg);
    if (e != KR_KAFKA_ERR_NONE)
        fail_msg("%s: %s", name, msg);
    kr_buf_free(&records);
    kr_buf_free(&scratch);
    kr_kafka_arena_free(&a);
}

static void test_records_to_events(void **state)
{
    (void)state;
    kr_buf ev;
    kr_cbor_item arr, x;
    kr_cbor_iter it;

    kr_buf_init(&ev, 1u << 20);
    /* kcat -H h1=v1 -H h1=v2 -H h2: the last h1 wins, h2's null is empty */
    kcat_events("produce-none", &ev);
    assert_int_equal(kr_cbor_read_exact(ev.data, ev.len, &arr), 0);
    assert_int_equal(arr.kind, KR_CBOR_ARRAY);
    assert_int_equal(arr.u, 4);
    kr_cbor_iter_init(&it, &arr);
    assert_int_equal(kr_cbor_iter_next(&it, &x), 1);
    /* [h'alice', h'pending', ts, {"h1": h'v2', "h2": h''}] */
    static const uint8_t head[] = {0x84, 0x45, 'a', 'l', 'i', 'c', 'e', 0x47,
                                   'p',  'e',  'n', 'd', 'i', 'n', 'g', 0x1b};
    static const uint8_t tail[] = {0xa2, 0x62, 'h', '1', 0x42, 'v', '2', 0x62, 'h', '2', 0x40};
    assert_int_equal(x.raw_len, sizeof head + 8 + sizeof tail);
    assert_memory_equal(x.raw, head, sizeof head);
    assert_memory_equal(x.raw + sizeof head + 8, tail, sizeof tail);
    /* the third: an empty key is a key (h''), not null */
    assert_int_equal(kr_cbor_iter_next(&it, &x), 1);
    assert_int_equal(kr_cbor_iter_next(&it, &x), 1);
    assert_int_equal(x.raw[1], 0x40);

    /* every codec gives the same events but for the headers */
    static const char *codecs[] = {"produce-gzip", "produce-snappy", "produce-lz4", "produce-zstd"};
    kr_buf first;
    kr_buf_init(&first, 1u << 20);
    for (size_t i = 0; i < 4; i++) {
        kr_buf_reset(&ev);
        kcat_events(codecs[i], &ev);
        assert_int_equal(kr_cbor_read_exact(ev.data, ev.len, &arr), 0);
        assert_int_equal(arr.u, 4);
        kr_cbor_iter_init(&it, &arr);
        assert_int_equal(kr_cbor_iter_next(&it, &x), 1);
        assert_int_equal(x.raw[0], 0x83); /* [key, value, ts]: no headers */
        assert_memory_equal(x.raw + 1,
                            "\x45"
                            "alice"
                            "\x47"
                            "pending",
                            14);
    }
    /* tombstones: a null value */
    kr_buf_reset(&ev);
    kcat_events("produce-tombstone", &ev);
    assert_memory_equal(ev.data,
                        "\x82\x83\x45"
                        "alice"
                        "\xf6",
                        9);
    kr_buf_free(&first);
    kr_buf_free(&ev);
}

/* One record of a batch written here, as an event. */
static kr_kafka_err one_event(kr_kafka_batch_writer *w, kr_buf *batch, int16_t attrs, kr_buf *ev,
                              char *msg, size_t msglen)
{
    kr_kafka_batch b;
    kr_kafka_err e;
    kr_buf out, scratch;
    assert_int_equal(kr_kafka_batch_end(w), 1);
    kr_buf_init(&out, 1u << 20);
    if (attrs != 0) {
        rebatch(batch->data, attrs, batch->data + KR_KAFKA_BATCH_HEADER,
                batch->len - KR_KAFKA_BATCH_HEADER, &out);
        kr_buf_reset(batch);
        kr_buf_append(batch, out.data, out.len);
    }
    kr_buf_init(&scratch, 1u << 20);
    assert_int_equal(first_batch(batch->data, batch->len, &b, &e, msg, msglen), 1);
    kr_buf_reset(&out);
    e = kr_kafka_batch_to_events(&b, &out, MAX_OUT, ev, &scratch, msg, msglen);
    kr_buf_free(&out);
    kr_buf_free(&scratch);
    return e;
}

static void test_event_rules(void **state)
{
    (void)state;
    kr_kafka_batch_writer w;
    kr_buf batch, ev;
    char msg[256];
    kr_kafka_bytes k = cbytes("k"), v = cbytes("v");

    kr_buf_init(&batch, 1u << 20);
    kr_buf_init(&ev, 1u << 20);

    /* a=1 b=2 a=3 c=null: b, then a=3 where it last was, then c empty */
    kr_kafka_batch_begin(&w, &batch);
    kr_kafka_record_begin(&w, 0, 1000, k, v, 4);
    kr_kafka_record_header(&w, cbytes("a"), cbytes("1"));
    kr_kafka_record_header(&w, cbytes("b"), cbytes("2"));
    kr_kafka_record_header(&w, cbytes("a"), cbytes("3"));
    kr_kafka_record_header(&w, cbytes("c"), cbytes(NULL));
    kr_kafka_record_end(&w);
    assert_int_equal(one_event(&w, &batch, 0, &ev, msg, sizeof msg), 0);
    static const uint8_t want[] = {0x81, 0x84, 0x41, 'k',  0x41, 'v',  0x19, 0x03, 0xe8, 0xa3, 0x61,
                                   'b',  0x41, '2',  0x61, 'a',  0x41, '3',  0x61, 'c',  0x40};
    assert_int_equal(ev.len, sizeof want);
    assert_memory_equal(ev.data, want, sizeof want);

    /* log append time, or a negative timestamp: server time (null) */
    kr_buf_reset(&batch);
    kr_buf_reset(&ev);
    kr_kafka_batch_begin(&w, &batch);
    kr_kafka_record_begin(&w, 0, 1000, cbytes(NULL), v, 0);
    kr_kafka_record_end(&w);
    assert_int_equal(one_event(&w, &batch, KR_KAFKA_ATTR_LOG_APPEND_TIME, &ev, msg, sizeof msg), 0);
    assert_memory_equal(ev.data, "\x81\x83\xf6\x41v\xf6", 6);
    kr_buf_reset(&batch);
    kr_buf_reset(&ev);
    kr_kafka_batch_begin(&w, &batch);
    kr_kafka_record_begin(&w, 0, -1, k, v, 0);
    kr_kafka_record_end(&w);
    assert_int_equal(one_event(&w, &batch, 0, &ev, msg, sizeof msg), 0);
    assert_memory_equal(ev.data, "\x81\x83\x41k\x41v\xf6", 7);

    /* a header name that is not UTF-8 */
    kr_buf_reset(&batch);
    kr_buf_reset(&ev);
    kr_kafka_batch_begin(&w, &batch);
    kr_kafka_record_begin(&w, 0, 1, k, v, 1);
    kr_kafka_record_header(&w, cbytes("\xff\xfe"), v);
    kr_kafka_record_end(&w);
    assert_int_equal(one_event(&w, &batch, 0, &ev, msg, sizeof msg), KR_KAFKA_ERR_INVALID_RECORD);
    assert_non_null(strstr(msg, "not UTF-8"));

    /* a key longer than krappy allows */
    char *longkey = malloc(KRAPPY_MAX_KEY_BYTES + 2);
    assert_non_null(longkey);
    memset(longkey, 'k', KRAPPY_MAX_KEY_BYTES + 1);
    longkey[KRAPPY_MAX_KEY_BYTES + 1] = 0;
    kr_buf_reset(&batch);
    kr_buf_reset(&ev);
    kr_kafka_batch_begin(&w, &batch);
    kr_kafka_record_begin(&w, 0, 1, cbytes(longkey), v, 0);
    kr_kafka_record_end(&w);
    assert_int_equal(one_event(&w, &batch, 0, &ev, msg, sizeof msg), KR_KAFKA_ERR_INVALID_RECORD);
    assert_non_null(strstr(msg, "16384"));
    free(longkey);
    kr_buf_free(&batch);
    kr_buf_free(&ev);
}

/* ---- delivered events to records ---- */

static void test_events_to_records(void **state)
{
    (void)state;
    kr_kafka_batch_writer w;
    kr_buf out, scratch, ev;
    char msg[256];

    kr_buf_init(&out, 1u << 20);
    kr_buf_init(&scratch, 1u << 20);
    kr_buf_init(&ev, 1u << 20);
    kr_kafka_batch_begin(&w, &out);
    /* [5, 1000, h'k', h'v'] */
    kr_cbor_put_array(&ev, 4);
    kr_cbor_put_uint(&ev, 5);
    kr_cbor_put_uint(&ev, 1000);
    kr_cbor_put_bytes(&ev, "k", 1);
    kr_cbor_put_bytes(&ev, "v", 1);
    size_t e1 = ev.len;
    /* [9, 1001, "txt", 42] */
    kr_cbor_put_array(&ev, 4);
    kr_cbor_put_uint(&ev, 9);
    kr_cbor_put_uint(&ev, 1001);
    kr_cbor_put_text(&ev, "txt", 3);
    kr_cbor_put_uint(&ev, 42);
    size_t e2 = ev.len;
    /* [12, 999, null, {"a": [1, -2, true, null, h'00ff']}, {"h": h'78', "t": h''}] */
    static const uint8_t e3[] = {0x85, 0x0c, 0x19, 0x03, 0xe7, 0xf6, 0xa1, 0x61, 'a',
                                 0x85, 0x01, 0x21, 0xf5, 0xf6, 0x42, 0x00, 0xff, 0xa2,
                                 0x61, 'h',  0x41, 'x',  0x61, 't',  0x40};
    kr_buf_append(&ev, e3, sizeof e3);
    size_t e3end = ev.len;
    /* [13, 1002, (_ h'ab', h'cd'), null]: an indefinite key, a tombstone */
    static const uint8_t e4[] = {0x84, 0x0d, 0x19, 0x03, 0xea, 0x5f, 0x42,
                                 'a',  'b',  0x42, 'c',  'd',  0xff, 0xf6};
    kr_buf_append(&ev, e4, sizeof e4);
    /* [14, 1003, h'k', 1.5] */
    static const uint8_t e5[] = {0x84, 0x0e, 0x19, 0x03, 0xeb, 0x41, 'k', 0xf9, 0x3e, 0x00};
    kr_buf_append(&ev, e5, sizeof e5);
    size_t e5end = ev.len;
    /* [15, 1004, (_ ), h'']: an empty indefinite key is a key */
    static const uint8_t e6[] = {0x84, 0x0f, 0x19, 0x03, 0xec, 0x5f, 0xff, 0x40};
    kr_buf_append(&ev, e6, sizeof e6);

    const size_t ends[] = {e1, e2, e3end, e3end + sizeof e4, e5end, ev.len};
    size_t at = 0;
    for (size_t i = 0; i < 6; i++) {
        if (kr_kafka_event_to_record(&w, ev.data + at, ends[i] - at, &scratch, msg, sizeof msg))
            fail_msg("event %zu: %s", i, msg);
        at = ends[i];
    }
    assert_int_equal(kr_kafka_batch_end(&w), 6);

    kr_kafka_batch b;
    kr_kafka_err e;
    kr_kafka_record_iter it;
    kr_kafka_record r;
    kr_kafka_rd hr;
    kr_kafka_header h;
    kr_buf rs;
    kr_buf_init(&rs, 1u << 20);
    assert_int_equal(first_batch(out.data, out.len, &b, &e, msg, sizeof msg), 1);
    assert_int_equal(b.base_offset, 5);
    assert_int_equal(b.last_offset_delta, 10);
    assert_int_equal(b.base_timestamp, 1000);
    assert_int_equal(b.max_timestamp, 1004);
    assert_int_equal(kr_kafka_record_iter_init(&it, &b, &rs, MAX_OUT, msg, sizeof msg), 0);
    assert_int_equal(kr_kafka_record_next(&it, &r, &e, msg, sizeof msg), 1);
    assert_true(r.offset == 5 && bytes_are(r.key, "k") && bytes_are(r.value, "v"));
    assert_int_equal(kr_kafka_record_next(&it, &r, &e, msg, sizeof msg), 1);
    assert_true(r.offset == 9 && r.offset_delta == 4);
    assert_true(bytes_are(r.key, "txt") && bytes_are(r.value, "42"));
    assert_int_equal(kr_kafka_record_next(&it, &r, &e, msg, sizeof msg), 1);
    assert_int_equal(r.offset, 12);
    assert_int_equal(r.timestamp, 999);
    assert_int_equal(r.key.len, -1);
    assert_true(bytes_are(r.value, "{\"a\":[1,-2,true,null,\"AP8\"]}"));
    assert_int_equal(r.header_count, 2);
    kr_kafka_header_iter_init(&hr, &r);
    assert_true(kr_kafka_header_next(&hr, &h));
    assert_true(bytes_are(h.key, "h") && bytes_are(h.value, "x"));
    assert_true(kr_kafka_header_next(&hr, &h));
    assert_true(bytes_are(h.key, "t") && bytes_are(h.value, ""));
    assert_int_equal(kr_kafka_record_next(&it, &r, &e, msg, sizeof msg), 1);
    assert_int_equal(r.offset, 13);
    assert_true(bytes_are(r.key, "abcd"));
    assert_int_equal(r.value.len, -1);
    assert_int_equal(kr_kafka_record_next(&it, &r, &e, msg, sizeof msg), 1);
    assert_true(bytes_are(r.value, "1.5"));
    assert_int_equal(kr_kafka_record_next(&it, &r, &e, msg, sizeof msg), 1);
    assert_true(bytes_are(r.key, "") && bytes_are(r.value, ""));
    assert_int_equal(kr_kafka_record_next(&it, &r, &e, msg, sizeof msg), 0);

    /* refused: not an event, an offset that goes back; the batch is then
     * refused whole */
    kr_buf_reset(&out);
    kr_kafka_put_i32(&out, 3);
    kr_kafka_batch_begin(&w, &out);
    assert_int_equal(kr_kafka_event_to_record(&w, ev.data, e1, &scratch, msg, sizeof msg), 0);
    assert_int_equal(
        kr_kafka_event_to_record(&w, (const uint8_t *)"\x01", 1, &scratch, msg, sizeof msg), -1);
    assert_non_null(strstr(msg, "not [offset, ts, key, value"));
    assert_int_equal(kr_kafka_batch_end(&w), -1);
    assert_int_equal(out.len, 4);
    kr_kafka_batch_begin(&w, &out);
    assert_int_equal(kr_kafka_event_to_record(&w, ev.data + e1, e2 - e1, &scratch, msg, sizeof msg),
                     0);
    assert_int_equal(kr_kafka_event_to_record(&w, ev.data, e1, &scratch, msg, sizeof msg), -1);
    assert_non_null(strstr(msg, "does not follow"));
    assert_int_equal(kr_kafka_batch_end(&w), -1);
    assert_int_equal(out.len, 4);
    kr_buf_free(&rs);
    kr_buf_free(&out);
    kr_buf_free(&scratch);
    kr_buf_free(&ev);
}

/* Delivered events of every shape kr_kafka_events_to_records reads: plain
 * ones (its shortcut) and the others. @return how many; ends[i] is where
 * event i ends. */
static size_t mixed_events(kr_buf *ev, size_t ends[16])
{
    static uint8_t big[300];
    size_t n = 0;
    memset(big, 'b', sizeof big);
    kr_cbor_put_array(ev, 4); /* [5, 1000, h'k', h'v'] */
    kr_cbor_put_uint(ev, 5);
    kr_cbor_put_uint(ev, 1000);
    kr_cbor_put_bytes(ev, "k", 1);
    kr_cbor_put_bytes(ev, "v", 1);
    ends[n++] = ev->len;
    kr_cbor_put_array(ev, 4); /* [6, 1001, "txt", null]: a tombstone */
    kr_cbor_put_uint(ev, 6);
    kr_cbor_put_uint(ev, 1001);
    kr_cbor_put_text(ev, "txt", 3);
    kr_cbor_put_null(ev);
    ends[n++] = ev->len;
    kr_cbor_put_array(ev, 4); /* [7, 1002, null, h''] */
    kr_cbor_put_uint(ev, 7);
    kr_cbor_put_uint(ev, 1002);
    kr_cbor_put_null(ev);
    kr_cbor_put_bytes(ev, "", 0);
    ends[n++] = ev->len;
    /* [8 in two bytes, a timestamp in eight, h'...' of 300, "t" in two] */
    static const uint8_t e4[] = {0x84, 0x18, 0x08, 0x1b, 0, 0, 0x01, 0x8b, 0xcf, 0xe5, 0x68, 0x00};
    kr_buf_append(ev, e4, sizeof e4);
    kr_cbor_put_bytes(ev, big, sizeof big);
    kr_buf_append(ev, "\x78\x01t", 3);
    ends[n++] = ev->len;
    kr_cbor_put_array(ev, 4); /* [9, 1004, h'k', 42]: a value that is not a string */
    kr_cbor_put_uint(ev, 9);
    kr_cbor_put_uint(ev, 1004);
    kr_cbor_put_bytes(ev, "k", 1);
    kr_cbor_put_uint(ev, 42);
    ends[n++] = ev->len;
    /* [10, 1005, h'k', h'v', {"h": h'78'}]: headers */
    static const uint8_t e6[] = {0x85, 0x0a, 0x19, 0x03, 0xed, 0x41, 'k',
                                 0x41, 'v',  0xa1, 0x61, 'h',  0x41, 'x'};
    kr_buf_append(ev, e6, sizeof e6);
    ends[n++] = ev->len;
    /* [11, 1006, (_ h'ab'), h'v']: an indefinite key */
    static const uint8_t e7[] = {0x84, 0x0b, 0x19, 0x03, 0xee, 0x5f,
                                 0x42, 'a',  'b',  0xff, 0x41, 'v'};
    kr_buf_append(ev, e7, sizeof e7);
    ends[n++] = ev->len;
    kr_cbor_put_array(ev, 4); /* [12, 1007, h'k', h'...' of 300] */
    kr_cbor_put_uint(ev, 12);
    kr_cbor_put_uint(ev, 1007);
    kr_cbor_put_bytes(ev, "k", 1);
    kr_cbor_put_bytes(ev, big, sizeof big);
    ends[n++] = ev->len;
    return n;
}

/* kr_kafka_events_to_records, its shortcut for plain events included,
 * writes the batch kr_kafka_event_to_record writes event by event; events
 * cut short anywhere are refused, never read past. */
static void test_events_to_records_shortcut(void **state)
{
    (void)state;
    kr_kafka_batch_writer w;
    kr_buf ev, one, all, scratch;
    char msg[256];
    size_t ends[16];
    kr_buf_init(&ev, 1u << 20);
    kr_buf_init(&one, 1u << 20);
    kr_buf_init(&all, 1u << 20);
    kr_buf_init(&scratch, 1u << 20);
    size_t n = mixed_events(&ev, ends);

    kr_kafka_batch_begin(&w, &one);
    for (size_t i = 0, at = 0; i < n; at = ends[i++])
        if (kr_kafka_event_to_record(&w, ev.data + at, ends[i] - at, &scratch, msg, sizeof msg))
            fail_msg("event %zu: %s", i, msg);
    assert_int_equal(kr_kafka_batch_end(&w), n);
    kr_kafka_batch_begin(&w, &all);
    assert_int_equal(kr_kafka_events_to_records(&w, ev.data, ev.len, &scratch, msg, sizeof msg), n);
    assert_int_equal(kr_kafka_batch_end(&w), n);
    assert_int_equal(all.len, one.len);
    assert_memory_equal(all.data, one.data, one.len);

    for (size_t cut = 0; cut < ev.len; cut++) {
        uint8_t *part = malloc(cut > 0 ? cut : 1); /* exactly: ASan sees a read past */
        assert_non_null(part);
        memcpy(part, ev.data, cut);
        size_t whole = 0;
        while (whole < n && ends[whole] <= cut)
            whole++;
        bool at_end = whole > 0 ? ends[whole - 1] == cut : cut == 0;
        kr_buf_reset(&all);
        kr_kafka_batch_begin(&w, &all);
        int32_t got = kr_kafka_events_to_records(&w, part, cut, &scratch, msg, sizeof msg);
        if (at_end) {
            assert_int_equal(got, whole);
        } else {
            assert_int_equal(got, -1);
            assert_non_null(strstr(msg, "not [offset, ts, key, value"));
        }
        (void)kr_kafka_batch_end(&w);
        free(part);
    }

    /* An offset past Kafka's int64, plain or not: refused. */
    static const uint8_t huge[] = {0x84, 0x1b, 0x80, 0, 0, 0, 0, 0, 0, 0, 0x01, 0x41, 'k', 0xf6};
    kr_buf_reset(&all);
    kr_kafka_batch_begin(&w, &all);
    assert_int_equal(kr_kafka_events_to_records(&w, huge, sizeof huge, &scratch, msg, sizeof msg),
                     -1);
    assert_non_null(strstr(msg, "beyond Kafka's range"));
    assert_int_equal(kr_kafka_batch_end(&w), -1);
    kr_kafka_batch_begin(&w, &all);
    assert_int_equal(kr_kafka_event_to_record(&w, huge, sizeof huge, &scratch, msg, sizeof msg),
                     -1);
    assert_non_null(strstr(msg, "beyond Kafka's range"));
    assert_int_equal(kr_kafka_batch_end(&w), -1);
    kr_buf_free(&ev);
    kr_buf_free(&one);
    kr_buf_free(&all);
    kr_buf_free(&scratch);
}

/* The record kr_kafka_record_put should write, from wire.c's general
 * varint writers, its length in front. */
static void reference_record(kr_buf *out, int64_t ts_delta, int32_t offset_delta,
                             kr_kafka_bytes key, kr_kafka_bytes value)
{
    kr_buf body;
    kr_buf_init(&body, 1u << 20);
    kr_kafka_put_i8(&body, 0);
    kr_kafka_put_varlong(&body, ts_delta);
    kr_kafka_put_varint(&body, offset_delta);
    kr_kafka_put_vbytes(&body, key.ptr, key.len);
    kr_kafka_put_vbytes(&body, value.ptr, value.len);
    kr_kafka_put_varint(&body, 0);
    kr_kafka_put_varint(out, (int32_t)body.len);
    kr_buf_append(out, body.data, body.len);
    kr_buf_free(&body);
}

/* One record fits out (its max: the batch header and 50 bytes), a second
 * one of 100 bytes does not: refused, out->failed, the batch refused. */
static void put_past_max(kr_buf *out, const uint8_t *big)
{
    kr_kafka_batch_writer w;
    kr_kafka_bytes k = cbytes("k");
    kr_kafka_batch_begin(&w, out);
    assert_int_equal(kr_kafka_record_put(&w, 5, 0, k, k), 0);
    assert_int_equal(kr_kafka_record_put(&w, 6, 0, k, (kr_kafka_bytes){big, 100}), -1);
    assert_true(out->failed);
    assert_int_equal(kr_kafka_batch_end(&w), -1);
}

/* kr_kafka_record_put (a Fetch's one-call record) writes what the general
 * writers write, at every varint width of every field: record_begin and
 * record_end's bytes, and a record built field by field with wire.c; the
 * batch reads back. Out of order, or out of room: refused. */
static void test_record_put(void **state)
{
    (void)state;
    static uint8_t big[20000];
    /* lengths around the one-, two- and three-byte varints (zigzag: 63 is
     * the last one-byte length, 8191 the last two-byte one) */
    static const int32_t lens[] = {-1, 0, 1, 63, 64, 100, 8191, 8192, 20000};
    /* offset gaps (compaction) and timestamps that go back and jump */
    static const int64_t gaps[] = {1, 63, 64, 8191, 8192, 1 << 20};
    static const int64_t tss[] = {0, -1, 63, 64, -65, 8191, 8192, 1LL << 40, -(1LL << 50)};
    size_t nl = sizeof lens / sizeof *lens, ng = sizeof gaps / sizeof *gaps;
    size_t nt = sizeof tss / sizeof *tss;
    kr_buf put, general, ref;
    kr_kafka_batch_writer w, g;
    memset(big, 'x', sizeof big);
    kr_buf_init(&put, 16u << 20);
    kr_buf_init(&general, 16u << 20);
    kr_buf_init(&ref, 16u << 20);

    kr_kafka_batch_begin(&w, &put);
    kr_kafka_batch_begin(&g, &general);
    int64_t offset = 1000, base_ts = 1700000000000;
    int32_t count = 0;
    for (size_t i = 0; i < nl * nl; i++) {
        int32_t kl = lens[i % nl], vl = lens[i / nl];
        kr_kafka_bytes key = {kl < 0 ? NULL : big, kl}, value = {vl < 0 ? NULL : big, vl};
        int64_t ts = base_ts + (i == 0 ? 0 : tss[i % nt]);
        if (i > 0)
            offset += gaps[i % ng];
        assert_int_equal(kr_kafka_record_put(&w, offset, ts, key, value), 0);
        assert_int_equal(kr_kafka_record_begin(&g, offset, ts, key, value, 0), 0);
        assert_int_equal(kr_kafka_record_end(&g), 0);
        reference_record(&ref, ts - base_ts, (int32_t)(offset - 1000), key, value);
        count++;
    }
    size_t records = put.len - KR_KAFKA_BATCH_HEADER;
    assert_int_equal(records, ref.len);
    assert_memory_equal(put.data + KR_KAFKA_BATCH_HEADER, ref.data, ref.len);
    assert_int_equal(kr_kafka_batch_end(&w), count);
    assert_int_equal(kr_kafka_batch_end(&g), count);
    assert_int_equal(put.len, general.len);
    assert_memory_equal(put.data, general.data, put.len);

    /* it reads back */
    kr_kafka_batch_iter bi;
    kr_kafka_batch b;
    kr_kafka_record_iter ri;
    kr_kafka_record r;
    kr_kafka_err e;
    kr_buf scratch;
    char msg[256];
    kr_buf_init(&scratch, 16u << 20);
    kr_kafka_batch_iter_init(&bi, put.data, put.len);
    assert_int_equal(kr_kafka_batch_next(&bi, &b, &e, msg, sizeof msg), 1);
    assert_int_equal(kr_kafka_record_iter_init(&ri, &b, &scratch, 16u << 20, msg, sizeof msg),
                     KR_KAFKA_ERR_NONE);
    int32_t seen = 0;
    while (kr_kafka_record_next(&ri, &r, &e, msg, sizeof msg) == 1) {
        assert_int_equal(r.key.len, lens[(size_t)seen % nl]);
        assert_int_equal(r.value.len, lens[(size_t)seen / nl]);
        assert_int_equal(r.header_count, 0);
        seen++;
    }
    assert_int_equal(seen, count);

    /* out of order: refused, the buffer as before */
    kr_buf_reset(&put);
    kr_kafka_batch_begin(&w, &put);
    kr_kafka_bytes k = cbytes("k");
    assert_int_equal(kr_kafka_record_put(&w, 5, 0, k, k), 0);
    assert_int_equal(kr_kafka_record_put(&w, 5, 0, k, k), -1);
    assert_int_equal(kr_kafka_batch_end(&w), -1);
    assert_int_equal(put.len, 0);
    kr_kafka_batch_begin(&w, &put);
    assert_int_equal(kr_kafka_record_put(&w, 5, 0, k, k), 0);
    assert_int_equal(kr_kafka_record_put(&w, 5 + (1LL << 31), 0, k, k), -1);
    assert_int_equal(kr_kafka_batch_end(&w), -1);
    kr_kafka_batch_begin(&w, &put);
    assert_int_equal(kr_kafka_record_put(&w, 5, 0, (kr_kafka_bytes){NULL, -2}, k), -1);
    assert_int_equal(kr_kafka_batch_end(&w), -1);
    /* out of room: refused, out->failed */
    kr_buf small;
    kr_buf_init(&small, KR_KAFKA_BATCH_HEADER + 50);
    put_past_max(&small, big);
    /* room allocated past max (a buffer handed over): max still holds */
    kr_buf_reset(&small);
    small.max = 1u << 20;
    assert_int_equal(kr_buf_reserve(&small, 1u << 20), 0);
    small.max = KR_KAFKA_BATCH_HEADER + 50;
    put_past_max(&small, big);
    kr_buf_free(&small);
    kr_buf_free(&scratch);
    kr_buf_free(&put);
    kr_buf_free(&general);
    kr_buf_free(&ref);
}

/* ---- reading records: the usual ones' shortcut against the general way ---- */

/* Append a record: its fields as given, the varints of `pad` fields written
 * a byte longer than needed (non-canonical, as the protocol allows). */
static void put_rec(kr_buf *out, int64_t ts_delta, int32_t off_delta, int32_t klen, int32_t vlen,
                    int32_t headers, bool pad)
{
    static uint8_t fill[20000];
    kr_buf body;
    kr_buf_init(&body, 1u << 20);
    kr_kafka_put_i8(&body, 0);
    kr_kafka_put_varlong(&body, ts_delta);
    kr_kafka_put_varint(&body, off_delta);
    kr_kafka_put_vbytes(&body, fill, klen);
    if (pad) { /* the value's length in two bytes, however small */
        uint32_t u = (uint32_t)kr_kafka_zigzag64(vlen);
        assert_true(u < 0x80);
        kr_buf_append(&body, (uint8_t[]){(uint8_t)(u | 0x80), 0}, 2);
        kr_buf_append(&body, fill, vlen > 0 ? (size_t)vlen : 0);
    } else {
        kr_kafka_put_vbytes(&body, fill, vlen);
    }
    kr_kafka_put_varint(&body, headers);
    for (int32_t i = 0; i < headers; i++) {
        kr_kafka_put_vbytes(&body, "h", 1);
        kr_kafka_put_vbytes(&body, NULL, -1);
    }
    kr_kafka_put_varint(out, (int32_t)body.len);
    kr_buf_append(out, body.data, body.len);
    assert_false(body.failed || out->failed);
    kr_buf_free(&body);
}

/* Read the records section rec[0..len) of n records with the wire.h
 * primitives, each checked against what kr_kafka_record_next gave. */
static void same_as_primitives(const kr_kafka_batch *b, const kr_kafka_record *got, int32_t n)
{
    kr_kafka_rd r;
    kr_kafka_rd_init(&r, b->records, b->records_len);
    for (int32_t i = 0; i < n; i++) {
        const kr_kafka_record *g = &got[i];
        int32_t len = kr_kafka_rd_varint(&r);
        const uint8_t *start = r.p;
        assert_int_equal(g->index, i);
        assert_int_equal(g->attributes, kr_kafka_rd_i8(&r));
        int64_t ts = kr_kafka_rd_varlong(&r);
        assert_int_equal(g->timestamp, b->base_timestamp + ts);
        int32_t od = kr_kafka_rd_varint(&r);
        assert_int_equal(g->offset_delta, od);
        assert_int_equal(g->offset, b->base_offset + od);
        kr_kafka_bytes k = kr_kafka_rd_vbytes(&r), v = kr_kafka_rd_vbytes(&r);
        assert_int_equal(g->key.len, k.len);
        assert_int_equal(g->value.len, v.len);
        assert_true(k.len <= 0 || g->key.ptr == k.ptr);
        assert_true(v.len <= 0 || g->value.ptr == v.ptr);
        assert_true(g->key.len != 0 || g->key.ptr != NULL);
        assert_int_equal(g->header_count, kr_kafka_rd_varint(&r));
        assert_ptr_equal(g->headers, r.p);
        r.p = start + len;
        assert_int_equal(g->headers_len, (size_t)(r.p - g->headers));
        assert_true(kr_kafka_rd_ok(&r));
    }
    assert_int_equal(kr_kafka_rd_left(&r), 0);
}

static void test_record_next_widths(void **state)
{
    (void)state;
    static const int32_t lens[] = {-1, 0, 1, 63, 64, 100, 8191, 8192, 9000};
    static const int64_t ts_deltas[] = {0, -1, 63, -64, 64, 8191, -8192, 8192, -100000, 1LL << 40};
    static const int32_t off_deltas[] = {0, 1, 63, 64, 4000, 8191, 8192, 100000};
    enum { N = 9 * 9 };
    kr_kafka_record got[N + 4];
    kr_buf recs, scratch;
    char msg[256];
    kr_buf_init(&recs, 8u << 20);
    kr_buf_init(&scratch, 1u << 20);
    for (size_t t = 0; t < sizeof ts_deltas / sizeof ts_deltas[0]; t++) {
        for (size_t o = 0; o < sizeof off_deltas / sizeof off_deltas[0]; o++) {
            kr_buf_reset(&recs);
            int32_t n = 0;
            for (size_t k = 0; k < 9; k++)
                for (size_t v = 0; v < 9; v++, n++)
                    put_rec(&recs, ts_deltas[t], off_deltas[o] + n, lens[k], lens[v], 0, false);
            /* and the others: headers, padded varints, a record too short */
            put_rec(&recs, ts_deltas[t], off_deltas[o] + n++, 3, 5, 2, false);
            put_rec(&recs, ts_deltas[t], off_deltas[o] + n++, 3, 5, 0, true);
            put_rec(&recs, ts_deltas[t], off_deltas[o] + n++, -1, -1, 1, false);
            kr_kafka_batch b = {.base_offset = 1000,
                                .base_timestamp = 1700000000000,
                                .count = n,
                                .records = recs.data,
                                .records_len = recs.len};
            kr_kafka_record_iter it;
            kr_kafka_err e;
            int32_t i = 0;
            int rc;
            assert_int_equal(kr_kafka_record_iter_init(&it, &b, &scratch, MAX_OUT, msg, sizeof msg),
                             KR_KAFKA_ERR_NONE);
            while ((rc = kr_kafka_record_next(&it, &got[i], &e, msg, sizeof msg)) == 1)
                i++;
            if (rc < 0)
                fail_msg("%s", msg);
            assert_int_equal(i, n);
            same_as_primitives(&b, got, n);
        }
    }
    /* A short record's length (5) or a value past its record: the general
     * reader's errors. */
    kr_buf_reset(&recs);
    kr_buf_append(&recs, (uint8_t[]){10, 0, 0, 0, 0, 0}, 6);
    kr_kafka_batch bad = {.count = 1, .records = recs.data, .records_len = recs.len};
    kr_kafka_record_iter it;
    kr_kafka_err e;
    assert_int_equal(kr_kafka_record_iter_init(&it, &bad, &scratch, MAX_OUT, msg, sizeof msg),
                     KR_KAFKA_ERR_NONE);
    assert_int_equal(kr_kafka_record_next(&it, &got[0], &e, msg, sizeof msg), -1);
    assert_non_null(strstr(msg, "its length does not fit the batch"));
    kr_buf_reset(&recs);
    kr_buf_append(&recs, (uint8_t[]){12, 0, 0, 0, 0, 20, 0}, 7);
    bad.records = recs.data;
    bad.records_len = recs.len;
    assert_int_equal(kr_kafka_record_iter_init(&it, &bad, &scratch, MAX_OUT, msg, sizeof msg),
                     KR_KAFKA_ERR_NONE);
    assert_int_equal(kr_kafka_record_next(&it, &got[0], &e, msg, sizeof msg), -1);
    assert_int_equal(e, KR_KAFKA_ERR_CORRUPT_MESSAGE);
    kr_buf_free(&recs);
    kr_buf_free(&scratch);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_kcat_batches),      cmocka_unit_test(test_kcat_headers),
        cmocka_unit_test(test_write_read),        cmocka_unit_test(test_writer_misuse),
        cmocka_unit_test(test_codecs_roundtrip),  cmocka_unit_test(test_bombs),
        cmocka_unit_test(test_exact_limit),       cmocka_unit_test(test_multi_and_garbage),
        cmocka_unit_test(test_refused_batches),   cmocka_unit_test(test_bad_records),
        cmocka_unit_test(test_records_to_events), cmocka_unit_test(test_event_rules),
        cmocka_unit_test(test_events_to_records), cmocka_unit_test(test_events_to_records_shortcut),
        cmocka_unit_test(test_record_put),        cmocka_unit_test(test_record_next_widths),
    };
    return cmocka_run_group_tests_name("kafka_records", tests, NULL, NULL);
}
