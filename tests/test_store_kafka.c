/*
 * tests/test_store_kafka.c - the store entry points the Kafka listener
 * uses: Kafka groups' committed offsets (durable, reloaded at open, kept by
 * --rebuild-view, refused when malformed), fetched events read into memory, fetches that
 * end where a stored batch ends, and the first offset at or after a timestamp.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "proto/cbor.h"
#include "store_env.h"
#include "util/log.h"

KR_TEST_STORE_ENV("krappy-skafka")

/* The store, its view rebuilt from the streams when `rebuild`. */
static kr_store *open_store_with(bool rebuild)
{
    kr_store_opts o = {.rebuild_view = rebuild,
                       .data_dir = dir,
                       .segment_bytes = 4096, /* several segments for the time search */
                       .checkpoint_ms = 3600000,
                       .overlay_bytes = 1u << 30,
                       .max_frame = 1u << 20,
                       .max_events = 1000,
                       .max_publish_events = 100000,
                       .max_wait_ms = 1000,
                       .rocksdb_log_dir = ""};
    return kr_test_store_open(&o, base, metrics);
}

static kr_store *open_store(void)
{
    return open_store_with(false);
}

static void run_until(int *flag, int want)
{
    kr_test_run_until(base, flag, want);
}

/* Publish n events with timestamps ts0, ts0 + 10, ... */
static void pub_at(kr_store *s, kr_topic *t, int n, uint64_t ts0)
{
    kr_event_out_spec ev[64];
    assert_true(n <= 64);
    static uint8_t value[102] = {0x58, 100}; /* 100 zero bytes */
    for (int j = 0; j < n; j++)
        ev[j] = (kr_event_out_spec){.key = "k",
                                    .key_len = 1,
                                    .key_is_text = true,
                                    .value = value,
                                    .value_len = sizeof value,
                                    .has_ts = true,
                                    .ts = ts0 + 10 * (uint64_t)j};
    kr_buf b, scratch;
    kr_request req;
    char msg[256];
    kr_test_publish_request(ev, (size_t)n, &b, &scratch, &req);
    done d = {0};
    uint64_t bad;
    assert_int_equal(
        kr_store_publish(s, t, &req, &scratch, false, NULL, on_done, &d, msg, sizeof msg, &bad),
        KRAPPY_OK);
    run_until(&d.calls, 1);
    assert_int_equal(d.res.err, KRAPPY_OK);
    kr_buf_free(&b);
    kr_buf_free(&scratch);
}

static void commit(kr_store *s, kr_topic *t, const char *group, uint64_t offset, const char *meta)
{
    done d = {0};
    kr_store_result res;
    assert_int_equal(kr_store_koffset_commit(s, t, (const uint8_t *)group, strlen(group), offset,
                                             meta, meta ? (int32_t)strlen(meta) : -1, on_done, &d,
                                             &res),
                     0);
    /* Not answered before it is durable, and not shown before either. */
    const kr_koffset *before = kr_store_koffset(t, (const uint8_t *)group, strlen(group));
    assert_true(before == NULL || before->offset != offset || offset == 0);
    run_until(&d.calls, 1);
    assert_int_equal(d.res.err, KRAPPY_OK);
    assert_int_equal(d.res.first, offset);
}

static void test_committed_offsets(void **state)
{
    (void)state;
    kr_store *s = open_store();
    kr_topic *t = kr_test_register(s, base, "orders");
    assert_null(kr_store_koffset(t, (const uint8_t *)"g", 1));
    commit(s, t, "g", 7, "meta");
    commit(s, t, "b-group", 3, NULL);
    commit(s, t, "g", 9, "");
    const kr_koffset *k = kr_store_koffset(t, (const uint8_t *)"g", 1);
    assert_non_null(k);
    assert_int_equal(k->offset, 9);
    assert_string_equal(k->metadata, "");
    const kr_koffset *all;
    assert_int_equal(kr_store_koffsets(t, &all), 2);
    assert_string_equal(all[0].group, "b-group"); /* by name */
    assert_null(all[0].metadata);
    assert_string_equal(all[1].group, "g");

    /* Refused: no name, a name too long, metadata too long. */
    done d = {0};
    kr_store_result res;
    char big[KR_KOFFSET_METADATA_MAX + 2];
    memset(big, 'm', sizeof big);
    assert_int_equal(
        kr_store_koffset_commit(s, t, (const uint8_t *)"", 0, 1, NULL, -1, on_done, &d, &res), -1);
    assert_int_equal(res.err, KRAPPY_E_INVALID_ARGUMENT);
    assert_non_null(strstr(res.msg, "group id"));
    assert_int_equal(kr_store_koffset_commit(s, t, (const uint8_t *)big, KR_KOFFSET_GROUP_MAX + 1,
                                             1, NULL, -1, on_done, &d, &res),
                     -1);
    assert_int_equal(kr_store_koffset_commit(s, t, (const uint8_t *)"g", 1, 1, big,
                                             (int32_t)sizeof big, on_done, &d, &res),
                     -1);
    assert_non_null(strstr(res.msg, "metadata"));
    assert_int_equal(d.calls, 0);

    /* They are in RocksDB: a new store finds them, beside the topic. */
    kr_store_close(s);
    s = open_store();
    t = kr_store_topic(s, (const uint8_t *)"orders", 6);
    assert_non_null(t);
    assert_int_equal(kr_store_koffsets(t, &all), 2);
    assert_string_equal(all[0].group, "b-group");
    assert_int_equal(all[0].offset, 3);
    assert_null(all[0].metadata);
    assert_string_equal(all[1].group, "g");
    assert_int_equal(all[1].offset, 9);
    assert_string_equal(all[1].metadata, "");
    kr_store_close(s);

    /* No stream holds them: --rebuild-view carries them over. */
    s = open_store_with(true);
    t = kr_store_topic(s, (const uint8_t *)"orders", 6);
    assert_non_null(t);
    assert_int_equal(kr_store_koffsets(t, &all), 2);
    assert_string_equal(all[0].group, "b-group");
    assert_int_equal(all[0].offset, 3);
    assert_string_equal(all[1].group, "g");
    assert_int_equal(all[1].offset, 9);
    assert_string_equal(all[1].metadata, "");
    kr_store_close(s);
}

/* The offsets of the events kr_store_fetch_copy reads for r: from, from
 * + 1, ... up to r->next. */
static void check_copy(kr_store *s, const kr_fetch_result *r, uint64_t from)
{
    char msg[256];
    kr_buf b;
    kr_buf_init(&b, 1u << 20);
    assert_int_equal(kr_store_fetch_copy(s, r, &b, msg, sizeof msg), 0);
    assert_int_equal(b.len, r->bytes);
    /* The bytes are the delivered events, back to back. */
    const uint8_t *p = b.data, *end = b.data + b.len;
    while (p < end) {
        kr_cbor_item it;
        kr_event_view v;
        assert_int_equal(kr_cbor_read(p, (size_t)(end - p), &it), 0);
        assert_int_equal(kr_event_view_read(&it, &v), 0);
        assert_int_equal(v.offset, from++);
        p += it.raw_len;
    }
    assert_int_equal(from, r->next);
    kr_buf_free(&b);
}

static void test_fetch_copy_and_time(void **state)
{
    (void)state;
    kr_store *s = open_store();
    kr_topic *t = kr_test_register(s, base, "times");
    /* 5 batches of 20 events, timestamps 1000, 1010, ... 1990; 4 KiB
     * segments, so the events spread over several. */
    for (int b = 0; b < 5; b++)
        pub_at(s, t, 20, 1000 + 200 * (uint64_t)b);
    assert_true(t->n_segs > 1);

    kr_fetch_result r;
    char msg[256];
    assert_int_equal(kr_store_fetch(s, t, 30, 1000, 1u << 20, &r, msg, sizeof msg), KRAPPY_OK);
    check_copy(s, &r, 30);

    /* By time: the first event at or after it. */
    uint64_t off, ts;
    assert_int_equal(kr_store_offset_for_time(s, t, 0, &off, &ts, msg, sizeof msg), KRAPPY_OK);
    assert_int_equal(off, 0);
    assert_int_equal(ts, 1000);
    assert_int_equal(kr_store_offset_for_time(s, t, 1405, &off, &ts, msg, sizeof msg), KRAPPY_OK);
    assert_int_equal(off, 41); /* 1410: batch 2 starts at 1400 */
    assert_int_equal(ts, 1410);
    assert_int_equal(kr_store_offset_for_time(s, t, 1990, &off, &ts, msg, sizeof msg), KRAPPY_OK);
    assert_int_equal(off, 99);
    assert_int_equal(ts, 1990);
    ts = 7;
    assert_int_equal(kr_store_offset_for_time(s, t, 1991, &off, &ts, msg, sizeof msg), KRAPPY_OK);
    assert_int_equal(off, t->next); /* none: the topic's next, ts untouched */
    assert_int_equal(ts, 7);
    kr_store_close(s);
}

static void test_fetch_batches(void **state)
{
    (void)state;
    kr_store *s = open_store();
    kr_topic *t = kr_test_register(s, base, "whole");
    for (int b = 0; b < 5; b++) /* batches 0-19, 20-39, ... 80-99 */
        pub_at(s, t, 20, 1000 + 200 * (uint64_t)b);

    kr_fetch_result r;
    char msg[256];
    /* The bytes of events 30..69: kr_store_fetch cuts the batch 60-79
     * there, kr_store_fetch_batches stops before it. */
    assert_int_equal(kr_store_fetch(s, t, 30, 40, 1u << 20, &r, msg, sizeof msg), KRAPPY_OK);
    assert_int_equal(r.next, 70);
    uint64_t budget = r.bytes;
    assert_int_equal(kr_store_fetch(s, t, 30, 1000, budget, &r, msg, sizeof msg), KRAPPY_OK);
    assert_int_equal(r.next, 70);
    assert_int_equal(kr_store_fetch_batches(s, t, 30, 1000, budget, 0, &r, msg, sizeof msg),
                     KRAPPY_OK);
    assert_int_equal(r.count, 30);
    assert_int_equal(r.next, 60);
    check_copy(s, &r, 30);
    /* The next read starts at a batch: whole ones while they fit (events
     * 60..99 take as many bytes as 30..69). */
    assert_int_equal(kr_store_fetch_batches(s, t, 60, 1000, budget, 0, &r, msg, sizeof msg),
                     KRAPPY_OK);
    assert_int_equal(r.next, 100);
    check_copy(s, &r, 60);
    assert_int_equal(kr_store_fetch_batches(s, t, 60, 1000, budget - 1, 0, &r, msg, sizeof msg),
                     KRAPPY_OK);
    assert_int_equal(r.next, 80);
    check_copy(s, &r, 60);
    assert_int_equal(kr_store_fetch(s, t, 60, 1000, budget - 1, &r, msg, sizeof msg), KRAPPY_OK);
    assert_int_equal(r.next, 99);

    /* --max-events ends it before a batch too. */
    assert_int_equal(kr_store_fetch_batches(s, t, 20, 30, 1u << 20, 0, &r, msg, sizeof msg),
                     KRAPPY_OK);
    assert_int_equal(r.next, 40);
    assert_int_equal(kr_store_fetch(s, t, 20, 30, 1u << 20, &r, msg, sizeof msg), KRAPPY_OK);
    assert_int_equal(r.next, 50);

    /* A first batch over the limits is cut (one event at least)... */
    assert_int_equal(kr_store_fetch_batches(s, t, 0, 1000, 1, 0, &r, msg, sizeof msg), KRAPPY_OK);
    assert_int_equal(r.count, 1);
    assert_int_equal(r.next, 1);
    /* ...unless it fits `stretch`: then it is whole, and only it. */
    assert_int_equal(kr_store_fetch_batches(s, t, 25, 1000, 1, 1u << 20, &r, msg, sizeof msg),
                     KRAPPY_OK);
    assert_int_equal(r.next, 40);
    check_copy(s, &r, 25);
    assert_int_equal(kr_store_fetch_batches(s, t, 25, 1000, 1, 30, &r, msg, sizeof msg), KRAPPY_OK);
    assert_int_equal(r.next, 26);
    assert_int_equal(kr_store_fetch_batches(s, t, 85, 5, 1u << 20, 0, &r, msg, sizeof msg),
                     KRAPPY_OK);
    assert_int_equal(r.next, 90);
    check_copy(s, &r, 85);
    /* At the end: nothing. */
    assert_int_equal(kr_store_fetch_batches(s, t, 100, 1000, 1u << 20, 0, &r, msg, sizeof msg),
                     KRAPPY_OK);
    assert_int_equal(r.count, 0);
    assert_int_equal(r.next, 100);
    kr_store_close(s);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_committed_offsets, setup, teardown),
        cmocka_unit_test_setup_teardown(test_fetch_copy_and_time, setup, teardown),
        cmocka_unit_test_setup_teardown(test_fetch_batches, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
