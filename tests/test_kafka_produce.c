/*
 * tests/test_kafka_produce.c - Produce without the PUBLISH payload: the
 * records of a batch read by kr_kproduce_events and stored by
 * kr_store_publish_events are what the PUBLISH path (kr_kafka_batch_to_events,
 * kr_req_decode, kr_store_publish) stores - the same segment bytes, the same
 * charge - for kcat's batches in every codec and for batches written here
 * (null, empty and longest keys, tombstones, repeated and null headers,
 * values and timestamps of every CBOR head size); the limits each path
 * applies; an idempotent producer's repeats and gaps.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "kafka/codec.h"
#include "kafka_golden.h"
#include "proto/cbor.h"
#include "server/kafka.h"
#include "store_env.h"
#include "util/log.h"

#define MAX_FRAME    (1u << 20)
#define MAX_EVENTS   1000u
#define BUF_MAX      (8u << 20)
#define PAYLOAD_MAX  (2u * MAX_FRAME) /* the listener's `events` buffer */
#define SEG_PATH_MAX 512

KR_TEST_STORE_ENV("krappy-kprod")

static kr_store *open_store(void)
{
    kr_store_opts o = {.data_dir = dir,
                       .segment_bytes = 64u << 20,
                       .checkpoint_ms = 3600000,
                       .overlay_bytes = 1u << 30,
                       .max_frame = MAX_FRAME,
                       .max_events = 1000,
                       .max_publish_events = MAX_EVENTS,
                       .max_wait_ms = 1000,
                       .rocksdb_log_dir = ""};
    return kr_test_store_open(&o, base, metrics);
}

/* The buffers of a Produce's conversion, as the listener has them. */
typedef struct bufs {
    kr_buf events, records, scratch, decode, views, headers;
} bufs;

static void bufs_init(bufs *b)
{
    kr_buf_init(&b->events, PAYLOAD_MAX);
    kr_buf_init(&b->records, BUF_MAX);
    kr_buf_init(&b->scratch, BUF_MAX);
    kr_buf_init(&b->decode, BUF_MAX);
    kr_buf_init(&b->views, MAX_EVENTS * sizeof(kr_store_event));
    kr_buf_init(&b->headers, BUF_MAX);
}

static void bufs_free(bufs *b)
{
    kr_buf_free(&b->events);
    kr_buf_free(&b->records);
    kr_buf_free(&b->scratch);
    kr_buf_free(&b->decode);
    kr_buf_free(&b->views);
    kr_buf_free(&b->headers);
}

/* The one batch of records[0..len). */
static void read_batch(const uint8_t *records, size_t len, kr_kafka_batch *b)
{
    kr_kafka_batch_iter it;
    kr_kafka_err e;
    char msg[256];
    kr_kafka_batch_iter_init(&it, records, len);
    if (kr_kafka_batch_next(&it, b, &e, msg, sizeof msg) != 1)
        fail_msg("the batch cannot be read: %s", msg);
}

/* The PUBLISH path: b as a payload, decoded and stored in ta. @return the
 * payload's length. */
static size_t store_as_publish(kr_store *s, kr_topic *ta, const kr_kafka_batch *b, bufs *u)
{
    char msg[256];
    kr_request req;
    done d = {0};
    uint64_t bad = UINT64_MAX;
    kr_buf_reset(&u->events);
    kr_cbor_put_map(&u->events, 1);
    kr_cbor_put_text(&u->events, "events", 6);
    if (kr_kafka_batch_to_events(b, &u->records, MAX_FRAME, &u->events, &u->scratch, msg,
                                 sizeof msg) != KR_KAFKA_ERR_NONE)
        fail_msg("to events: %s", msg);
    assert_false(u->events.failed);
    assert_int_equal(kr_req_decode(KRAPPY_T_PUBLISH, u->events.data, u->events.len, &u->decode,
                                   &req, msg, sizeof msg),
                     KRAPPY_OK);
    assert_int_equal(
        kr_store_publish(s, ta, &req, &u->decode, false, NULL, on_done, &d, msg, sizeof msg, &bad),
        KRAPPY_OK);
    kr_test_run_until(base, &d.calls, 1);
    assert_int_equal(d.res.err, KRAPPY_OK);
    return u->events.len;
}

/* The direct path: b's records as kr_store_events stored in tb. @return
 * the payload length kr_kproduce_events counted. */
static uint64_t store_as_views(kr_store *s, kr_topic *tb, const kr_kafka_batch *b, bufs *u)
{
    char msg[256];
    done d = {0};
    uint64_t len = 0, bad = UINT64_MAX;
    if (kr_kproduce_events(b, MAX_FRAME, MAX_EVENTS, &u->records, &u->views, &u->headers,
                           &u->scratch, &len, msg, sizeof msg) != KR_KAFKA_ERR_NONE)
        fail_msg("views: %s", msg);
    assert_int_equal(u->views.len, (size_t)b->count * sizeof(kr_store_event));
    assert_int_equal(kr_store_publish_events(s, tb, (const kr_store_event *)(void *)u->views.data,
                                             (uint64_t)b->count, false, NULL, on_done, &d, msg,
                                             sizeof msg, &bad),
                     KRAPPY_OK);
    kr_test_run_until(base, &d.calls, 1);
    assert_int_equal(d.res.err, KRAPPY_OK);
    return len;
}

/* Store b both ways, in ta and tb: the same offsets and payload length. */
static void both_ways(kr_store *s, kr_topic *ta, kr_topic *tb, const kr_kafka_batch *b)
{
    bufs u;
    bufs_init(&u);
    uint64_t before = ta->next;
    assert_int_equal(tb->next, before);
    size_t publish_len = store_as_publish(s, ta, b, &u);
    uint64_t views_len = store_as_views(s, tb, b, &u);
    assert_int_equal(views_len, publish_len); /* the same charge and limit */
    assert_int_equal(ta->next, before + (uint64_t)b->count);
    assert_int_equal(tb->next, ta->next);
    bufs_free(&u);
}

/* The whole of a file. */
static void read_file(const char *path, kr_buf *out)
{
    FILE *f = fopen(path, "rb");
    if (f == NULL)
        fail_msg("cannot open %s", path);
    uint8_t chunk[4096];
    size_t n;
    while ((n = fread(chunk, 1, sizeof chunk, f)) > 0)
        assert_int_equal(kr_buf_append(out, chunk, n), 0);
    fclose(f);
}

/* ta and tb hold the same bytes: their first segment files (batch headers,
 * CRCs and events), and the events FETCH reads back. */
static void same_stored(kr_store *s, kr_topic *ta, kr_topic *tb)
{
    char pa[SEG_PATH_MAX], pb[SEG_PATH_MAX], msg[256];
    kr_buf fa, fb;
    kr_buf_init(&fa, 64u << 20);
    kr_buf_init(&fb, 64u << 20);
    assert_int_equal(ta->n_segs, 1);
    assert_int_equal(tb->n_segs, 1);
    snprintf(pa, sizeof pa, "%s/topics/%s/%020llu.seg", dir, ta->name, 0ULL);
    snprintf(pb, sizeof pb, "%s/topics/%s/%020llu.seg", dir, tb->name, 0ULL);
    read_file(pa, &fa);
    read_file(pb, &fb);
    assert_true(fa.len > 0);
    assert_int_equal(fa.len, fb.len);
    assert_memory_equal(fa.data, fb.data, fa.len);

    kr_fetch_result ra, rb;
    kr_buf_reset(&fa);
    kr_buf_reset(&fb);
    assert_int_equal(kr_store_fetch(s, ta, 0, 100000, 64u << 20, &ra, msg, sizeof msg), KRAPPY_OK);
    assert_int_equal(kr_store_fetch(s, tb, 0, 100000, 64u << 20, &rb, msg, sizeof msg), KRAPPY_OK);
    assert_int_equal(ra.count, ta->next);
    assert_int_equal(rb.count, ra.count);
    assert_int_equal(kr_store_fetch_copy(s, &ra, &fa, msg, sizeof msg), 0);
    assert_int_equal(kr_store_fetch_copy(s, &rb, &fb, msg, sizeof msg), 0);
    assert_int_equal(fa.len, fb.len);
    assert_memory_equal(fa.data, fb.data, fa.len);
    kr_buf_free(&fa);
    kr_buf_free(&fb);
}

/* The records field of the Produce captured in `scenario`. */
static kr_kafka_bytes produce_records(const char *scenario, kr_kafka_arena *a)
{
    char msg[256];
    kr_kafka_request req;
    const kafka_golden *g = kafka_capture(scenario, KR_KAFKA_PRODUCE, 0, 0);
    if (g == NULL)
        fail_msg("no Produce captured in %s", scenario);
    assert_int_equal(kr_kafka_request_decode(g->bytes, g->len, a, &req, msg, sizeof msg),
                     KR_KAFKA_OK);
    return req.u.produce.topics.v[0].partitions.v[0].records;
}

/* kcat's batches: headers, a null key, an empty key, tombstones, every
 * codec. */
static void test_kcat_batches_store_the_same(void **state)
{
    (void)state;
    static const char *scenarios[] = {"produce-none", "produce-gzip", "produce-snappy",
                                      "produce-lz4",  "produce-zstd", "produce-tombstone"};
    kr_store *s = open_store();
    kr_topic *ta = kr_test_register(s, base, "via-publish");
    kr_topic *tb = kr_test_register(s, base, "via-events");
    for (size_t i = 0; i < sizeof scenarios / sizeof scenarios[0]; i++) {
        kr_kafka_arena a;
        kr_kafka_batch b;
        kr_kafka_arena_init(&a, 1u << 20);
        kr_kafka_bytes recs = produce_records(scenarios[i], &a);
        read_batch(recs.ptr, (size_t)recs.len, &b);
        both_ways(s, ta, tb, &b);
        kr_kafka_arena_free(&a);
    }
    same_stored(s, ta, tb);
    kr_store_close(s);
}

static kr_kafka_bytes kb(const void *p, int32_t len)
{
    return (kr_kafka_bytes){p, len};
}

/* A batch written here with what CBOR heads can differ on: keys null,
 * empty, 1, 24 and KRAPPY_MAX_KEY_BYTES long; values null, empty, 23, 24,
 * 300 and 70000 bytes; timestamps 0, 23, 24, 1000, 2^32 and today's;
 * headers repeated, null and absent. */
static void write_mixed_batch(kr_buf *out)
{
    static uint8_t big[70000];
    static uint8_t longkey[KRAPPY_MAX_KEY_BYTES];
    memset(big, 'v', sizeof big);
    memset(longkey, 'k', sizeof longkey);
    static const int64_t ts[] = {0, 23, 24, 1000, INT64_C(4294967296), INT64_C(1765000000000)};
    const kr_kafka_bytes keys[] = {kb(NULL, -1), kb("", 0), kb("a", 1), kb(big, 24),
                                   kb(longkey, (int32_t)sizeof longkey)};
    const kr_kafka_bytes values[] = {kb(NULL, -1), kb("", 0),    kb(big, 23),
                                     kb(big, 24),  kb(big, 300), kb(big, (int32_t)sizeof big)};
    kr_kafka_batch_writer w;
    kr_kafka_batch_begin(&w, out);
    int64_t off = 0;
    for (size_t k = 0; k < sizeof keys / sizeof keys[0]; k++)
        for (size_t v = 0; v < sizeof values / sizeof values[0]; v++) {
            int32_t nh = (int32_t)((k + v) % 3 == 0 ? 4 : 0);
            int64_t t = ts[(k * 7 + v) % (sizeof ts / sizeof ts[0])];
            if (values[v].len == (int32_t)sizeof big && keys[k].len == (int32_t)sizeof longkey)
                continue; /* keep each event within the frame */
            assert_int_equal(kr_kafka_record_begin(&w, off++, t, keys[k], values[v], nh), 0);
            if (nh > 0) {
                kr_kafka_record_header(&w, kb("a", 1), kb("1", 1));
                kr_kafka_record_header(&w, kb("b", 1), kb(NULL, -1));
                kr_kafka_record_header(&w, kb("a", 1), kb("3", 1));
                kr_kafka_record_header(&w, kb("", 0), kb(big, 30));
            }
            assert_int_equal(kr_kafka_record_end(&w), 0);
        }
    assert_true(kr_kafka_batch_end(&w) > 0);
}

static void test_written_batches_store_the_same(void **state)
{
    (void)state;
    kr_store *s = open_store();
    kr_topic *ta = kr_test_register(s, base, "via-publish");
    kr_topic *tb = kr_test_register(s, base, "via-events");
    kr_buf out;
    kr_kafka_batch b;
    kr_buf_init(&out, BUF_MAX);
    write_mixed_batch(&out);
    read_batch(out.data, out.len, &b);
    assert_true(b.count > 20);
    both_ways(s, ta, tb, &b);
    /* A second batch after the first: the offsets go on alike. */
    both_ways(s, ta, tb, &b);
    same_stored(s, ta, tb);

    /* GET sees the same latest event of a key through either topic. */
    kr_buf ga, gb;
    char msg[256];
    kr_buf_init(&ga, BUF_MAX);
    kr_buf_init(&gb, BUF_MAX);
    assert_int_equal(kr_store_get(s, ta, (const uint8_t *)"a", 1, &ga, msg, sizeof msg), 1);
    assert_int_equal(kr_store_get(s, tb, (const uint8_t *)"a", 1, &gb, msg, sizeof msg), 1);
    assert_int_equal(ga.len, gb.len);
    assert_memory_equal(ga.data, gb.data, ga.len);
    kr_buf_free(&ga);
    kr_buf_free(&gb);
    kr_buf_free(&out);
    kr_store_close(s);
}

/* kr_kproduce_events of b, at most max_events records. */
static kr_kafka_err events_of(const kr_kafka_batch *b, uint32_t max_events, bufs *u, char *msg,
                              size_t msglen)
{
    uint64_t len;
    return kr_kproduce_events(b, MAX_FRAME, max_events, &u->records, &u->views, &u->headers,
                              &u->scratch, &len, msg, msglen);
}

/* A batch of n records with key `key` and timestamp ts (and a header named
 * hname when not NULL) written into out (reset) and read into *b. */
static void records_batch(kr_buf *out, int n, kr_kafka_bytes key, int64_t ts, const char *hname,
                          kr_kafka_batch *b)
{
    kr_kafka_batch_writer w;
    kr_buf_reset(out);
    kr_kafka_batch_begin(&w, out);
    for (int i = 0; i < n; i++) {
        kr_kafka_record_begin(&w, i, ts, key, kb("v", 1), hname != NULL);
        if (hname != NULL)
            kr_kafka_record_header(&w, kb(hname, (int32_t)strlen(hname)), kb("x", 1));
        kr_kafka_record_end(&w);
    }
    assert_int_equal(kr_kafka_batch_end(&w), n);
    read_batch(out->data, out->len, b);
}

/* What kr_kproduce_events refuses, with the Kafka error a producer gets. */
static void test_events_refused(void **state)
{
    (void)state;
    bufs u;
    char msg[256];
    kr_kafka_batch b;
    kr_buf out;
    static uint8_t longkey[KRAPPY_MAX_KEY_BYTES + 1];
    bufs_init(&u);
    kr_buf_init(&out, BUF_MAX);

    kr_kafka_batch none = {.count = 0, .producer_id = -1};
    assert_int_equal(events_of(&none, MAX_EVENTS, &u, msg, sizeof msg),
                     KR_KAFKA_ERR_INVALID_RECORD);
    assert_non_null(strstr(msg, "no records"));

    /* more records than --max-publish-events */
    records_batch(&out, 3, kb("k", 1), 1000, NULL, &b);
    assert_int_equal(events_of(&b, 2, &u, msg, sizeof msg), KR_KAFKA_ERR_RECORD_LIST_TOO_LARGE);
    assert_non_null(strstr(msg, "at most 2 records"));
    assert_int_equal(events_of(&b, 3, &u, msg, sizeof msg), KR_KAFKA_ERR_NONE);

    /* a key over KRAPPY_MAX_KEY_BYTES; a header name that is not UTF-8 */
    records_batch(&out, 1, kb(longkey, (int32_t)sizeof longkey), 1000, NULL, &b);
    assert_int_equal(events_of(&b, MAX_EVENTS, &u, msg, sizeof msg), KR_KAFKA_ERR_INVALID_RECORD);
    assert_non_null(strstr(msg, "longer than krappy's"));
    records_batch(&out, 1, kb("k", 1), 1000, "\xff", &b);
    assert_int_equal(events_of(&b, MAX_EVENTS, &u, msg, sizeof msg), KR_KAFKA_ERR_INVALID_RECORD);
    assert_non_null(strstr(msg, "not UTF-8"));

    /* a negative timestamp: no ts, the server's clock */
    records_batch(&out, 1, kb("k", 1), -1, NULL, &b);
    assert_int_equal(events_of(&b, MAX_EVENTS, &u, msg, sizeof msg), KR_KAFKA_ERR_NONE);
    assert_false(((const kr_store_event *)(void *)u.views.data)[0].has_ts);
    kr_buf_free(&out);
    bufs_free(&u);
}

/* What kr_store_publish_events refuses itself, and an idempotent
 * producer's repeat and gap through it. */
static void test_store_events_rules(void **state)
{
    (void)state;
    kr_store *s = open_store();
    kr_topic *t = NULL;
    char msg[256];
    uint64_t bad = UINT64_MAX;
    done d = {0};
    static uint8_t big[MAX_FRAME];
    static uint8_t longkey[KRAPPY_MAX_KEY_BYTES + 1];
    kr_store_result res;
    assert_int_equal(kr_store_producer_register(s, (const uint8_t *)"orders", 6,
                                                (const uint8_t *)"kafka-7", 7, &t, on_done, &d,
                                                &res),
                     0);
    kr_test_run_until(base, &d.calls, 1);
    assert_int_equal(d.res.err, KRAPPY_OK);
    uint32_t epoch = d.res.epoch;

    kr_store_event ev[2] = {
        {.key = (const uint8_t *)"k", .key_len = 1, .value = (const uint8_t *)"v", .value_len = 1},
        {.key = longkey, .key_len = sizeof longkey, .value = NULL}};
    assert_int_equal(
        kr_store_publish_events(s, t, ev, 0, false, NULL, on_done, &d, msg, sizeof msg, &bad),
        KRAPPY_E_INVALID_ARGUMENT);
    assert_int_equal(
        kr_store_publish_events(s, t, ev, 2, false, NULL, on_done, &d, msg, sizeof msg, &bad),
        KRAPPY_E_INVALID_ARGUMENT);
    assert_int_equal(bad, 1);
    ev[1] = (kr_store_event){.value = big, .value_len = sizeof big};
    bad = UINT64_MAX;
    assert_int_equal(
        kr_store_publish_events(s, t, ev, 2, false, NULL, on_done, &d, msg, sizeof msg, &bad),
        KRAPPY_E_INVALID_ARGUMENT);
    assert_int_equal(bad, 1);
    assert_non_null(strstr(msg, "as delivered"));
    assert_int_equal(t->assigned, 0); /* nothing queued */

    /* seq 0 (2 events), its repeat, then a gap */
    ev[1] =
        (kr_store_event){.value = (const uint8_t *)"w", .value_len = 1, .has_ts = true, .ts = 5};
    kr_idem idem = {.id = (const uint8_t *)"kafka-7", .id_len = 7, .epoch = epoch, .seq = 0};
    d = (done){0};
    assert_int_equal(
        kr_store_publish_events(s, t, ev, 2, false, &idem, on_done, &d, msg, sizeof msg, &bad),
        KRAPPY_OK);
    kr_test_run_until(base, &d.calls, 1);
    assert_int_equal(d.res.err, KRAPPY_OK);
    assert_false(d.res.duplicate);
    assert_int_equal(d.res.first, 0);
    d = (done){0};
    assert_int_equal(
        kr_store_publish_events(s, t, ev, 2, false, &idem, on_done, &d, msg, sizeof msg, &bad),
        KRAPPY_OK);
    kr_test_run_until(base, &d.calls, 1);
    assert_true(d.res.duplicate);
    assert_int_equal(d.res.first, 0);
    assert_int_equal(t->next, 2);
    idem.seq = 5;
    assert_int_equal(
        kr_store_publish_events(s, t, ev, 2, false, &idem, on_done, &d, msg, sizeof msg, &bad),
        KRAPPY_E_OUT_OF_ORDER_SEQUENCE);
    assert_int_equal(idem.expected, 2);
    kr_store_producer_release(s, t, (const uint8_t *)"kafka-7", 7);
    kr_store_close(s);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_kcat_batches_store_the_same, setup, teardown),
        cmocka_unit_test_setup_teardown(test_written_batches_store_the_same, setup, teardown),
        cmocka_unit_test(test_events_refused),
        cmocka_unit_test_setup_teardown(test_store_events_rules, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
