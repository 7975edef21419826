/*
 * tests/fuzz/fuzz_kafka.c - fuzz the Kafka codec and hold it to its promises.
 *
 * Input: byte 0 selects a mode (its low 2 bits), the rest is the subject:
 *   0  a request frame (the bytes after the size). When it decodes, it is
 *      encoded, decoded and encoded again: both encodings must be the same
 *      bytes. A Produce request's record batches are then walked to events.
 *   1  a records field: every batch, every record, every header, and the
 *      PUBLISH events of each batch (decompression capped at 1 MiB).
 *   2  a response: bytes 1-2 the API key, 3-4 the version, then the frame;
 *      decoded, and when it decodes, re-encoded twice as in mode 0.
 *   3  delivered events (CBOR items one after the other) written as one
 *      record batch, which must then read back as that many records at the
 *      events' offsets.
 * Nothing may crash, leak, read out of bounds or break a promise (a trap).
 */
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "kafka/codec.h"
#include "proto/cbor.h"
#include "proto/msg.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define CHECK(c)                                                                                   \
    do {                                                                                           \
        if (!(c))                                                                                  \
            __builtin_trap();                                                                      \
    } while (0)

#define ARENA_MAX   (1u << 20)
#define RECORDS_MAX (1u << 20)
#define BUF_MAX     (1u << 24)

/* Walk a records field to the end, converting each batch to events. */
static void walk_records(const uint8_t *p, size_t n)
{
    kr_kafka_batch_iter bi;
    kr_kafka_batch b;
    kr_kafka_err e;
    kr_buf records, events, scratch;
    char msg[256];
    int got;

    kr_buf_init(&records, RECORDS_MAX);
    kr_buf_init(&events, BUF_MAX);
    kr_buf_init(&scratch, BUF_MAX);
    kr_kafka_batch_iter_init(&bi, p, n);
    while ((got = kr_kafka_batch_next(&bi, &b, &e, msg, sizeof msg)) == 1) {
        kr_kafka_record_iter it;
        kr_kafka_record r;
        int32_t seen = 0;
        CHECK(b.count >= 0);
        if (kr_kafka_record_iter_init(&it, &b, &records, RECORDS_MAX, msg, sizeof msg) == 0) {
            int rgot;
            while ((rgot = kr_kafka_record_next(&it, &r, &e, msg, sizeof msg)) == 1) {
                kr_kafka_rd hr;
                kr_kafka_header h;
                int32_t headers = 0;
                CHECK(r.index == seen);
                kr_kafka_header_iter_init(&hr, &r);
                while (kr_kafka_header_next(&hr, &h)) {
                    CHECK(h.key.len >= 0 && h.value.len >= -1);
                    headers++;
                }
                CHECK(headers == r.header_count);
                seen++;
            }
            CHECK(rgot == -1 || seen == b.count);
        }
        kr_buf_reset(&events);
        if (kr_kafka_batch_to_events(&b, &records, RECORDS_MAX, &events, &scratch, msg,
                                     sizeof msg) == KR_KAFKA_ERR_NONE) {
            /* the events form one CBOR array of count items */
            kr_cbor_item arr;
            CHECK(kr_cbor_read_exact(events.data, events.len, &arr) == 0);
            CHECK(arr.kind == KR_CBOR_ARRAY && arr.u == (uint64_t)b.count);
        }
    }
    CHECK(got == 0 || got == -1);
    kr_buf_free(&records);
    kr_buf_free(&events);
    kr_buf_free(&scratch);
}

static void fuzz_request(const uint8_t *p, size_t n)
{
    kr_kafka_arena a;
    kr_kafka_request req, again;
    kr_buf one, two;
    char msg[256];

    kr_kafka_arena_init(&a, ARENA_MAX);
    kr_buf_init(&one, BUF_MAX);
    kr_buf_init(&two, BUF_MAX);
    kr_kafka_status st = kr_kafka_request_decode(p, n, &a, &req, msg, sizeof msg);
    if (st == KR_KAFKA_OK) {
        const kr_kafka_api *api = kr_kafka_api_find(req.h.api_key);
        CHECK(api != NULL && req.h.api_version >= api->min_version &&
              req.h.api_version <= api->max_version);
        CHECK(kr_kafka_request_encode(&one, &req.h, &req.u, msg, sizeof msg) == KR_KAFKA_OK);
        CHECK(kr_kafka_request_decode(one.data + 4, one.len - 4, &a, &again, msg, sizeof msg) ==
              KR_KAFKA_OK);
        CHECK(kr_kafka_request_encode(&two, &again.h, &again.u, msg, sizeof msg) == KR_KAFKA_OK);
        CHECK(one.len == two.len && memcmp(one.data, two.data, one.len) == 0);
        if (req.h.api_key == KR_KAFKA_PRODUCE)
            for (int32_t t = 0; t < req.u.produce.topics.n; t++)
                for (int32_t i = 0; i < req.u.produce.topics.v[t].partitions.n; i++) {
                    kr_kafka_bytes r = req.u.produce.topics.v[t].partitions.v[i].records;
                    if (r.len > 0)
                        walk_records(r.ptr, (size_t)r.len);
                }
    } else {
        CHECK(st == KR_KAFKA_MALFORMED || st == KR_KAFKA_UNSUPPORTED || st == KR_KAFKA_TOO_BIG);
    }
    kr_buf_free(&one);
    kr_buf_free(&two);
    kr_kafka_arena_free(&a);
}

static void fuzz_response(int16_t key, int16_t version, const uint8_t *p, size_t n)
{
    _Alignas(max_align_t) uint8_t x[512], y[512];
    kr_kafka_arena a;
    kr_buf one, two;
    int32_t corr, corr2;
    char msg[256];

    kr_kafka_arena_init(&a, ARENA_MAX);
    kr_buf_init(&one, BUF_MAX);
    kr_buf_init(&two, BUF_MAX);
    if (kr_kafka_response_decode(p, n, key, version, &a, &corr, x, msg, sizeof msg) ==
        KR_KAFKA_OK) {
        CHECK(kr_kafka_response_encode(&one, key, version, corr, x, msg, sizeof msg) ==
              KR_KAFKA_OK);
        CHECK(kr_kafka_response_decode(one.data + 4, one.len - 4, key, version, &a, &corr2, y, msg,
                                       sizeof msg) == KR_KAFKA_OK);
        CHECK(corr2 == corr);
        CHECK(kr_kafka_response_encode(&two, key, version, corr, y, msg, sizeof msg) ==
              KR_KAFKA_OK);
        CHECK(one.len == two.len && memcmp(one.data, two.data, one.len) == 0);
    }
    kr_buf_free(&one);
    kr_buf_free(&two);
    kr_kafka_arena_free(&a);
}

/* Delivered events to one batch, read back. */
static void fuzz_events(const uint8_t *p, size_t n)
{
    kr_kafka_batch_writer w;
    kr_buf out, scratch;
    uint64_t offsets[64];
    int32_t count = 0;
    char msg[256];
    bool ok = true;

    kr_buf_init(&out, BUF_MAX);
    kr_buf_init(&scratch, BUF_MAX);
    kr_kafka_batch_begin(&w, &out);
    while (n > 0 && count < 64) {
        kr_cbor_item it;
        kr_event_view e;
        if (kr_cbor_read(p, n, &it) != 0)
            break;
        if (kr_kafka_event_to_record(&w, p, it.raw_len, &scratch, msg, sizeof msg) != 0) {
            ok = false;
            break;
        }
        CHECK(kr_event_view_read(&it, &e) == 0);
        offsets[count++] = e.offset;
        p += it.raw_len;
        n -= it.raw_len;
    }
    int32_t got = kr_kafka_batch_end(&w);
    if (!ok) {
        CHECK(got == -1 && out.len == 0);
    } else if (got > 0) {
        kr_kafka_batch_iter bi;
        kr_kafka_batch b;
        kr_kafka_record_iter ri;
        kr_kafka_record r;
        kr_kafka_err e;
        kr_buf records;
        int32_t i = 0;
        CHECK(got == count);
        kr_buf_init(&records, RECORDS_MAX);
        kr_kafka_batch_iter_init(&bi, out.data, out.len);
        CHECK(kr_kafka_batch_next(&bi, &b, &e, msg, sizeof msg) == 1);
        CHECK(b.count == count && (uint64_t)b.base_offset == offsets[0]);
        CHECK((uint64_t)b.base_offset + (uint64_t)b.last_offset_delta == offsets[count - 1]);
        CHECK(kr_kafka_record_iter_init(&ri, &b, &records, RECORDS_MAX, msg, sizeof msg) == 0);
        while (kr_kafka_record_next(&ri, &r, &e, msg, sizeof msg) == 1) {
            CHECK(i < count && (uint64_t)r.offset == offsets[i]);
            i++;
        }
        CHECK(i == count);
        CHECK(kr_kafka_batch_next(&bi, &b, &e, msg, sizeof msg) == 0);
        kr_buf_free(&records);
    }
    kr_buf_free(&out);
    kr_buf_free(&scratch);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1)
        return 0;
    const uint8_t *p = data + 1;
    size_t n = size - 1;
    switch (data[0] & 3) {
    case 0:
        fuzz_request(p, n);
        break;
    case 1:
        walk_records(p, n);
        break;
    case 2:
        if (n >= 4)
            fuzz_response((int16_t)(p[0] << 8 | p[1]), (int16_t)(p[2] << 8 | p[3]), p + 4, n - 4);
        break;
    default:
        fuzz_events(p, n);
        break;
    }
    return 0;
}
