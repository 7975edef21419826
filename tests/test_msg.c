/*
 * tests/test_msg.c - request decoding and validation, request and reply
 * encoders, reply decoders.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "alloc_fail.h"
#include "proto/msg.h"

/* The payload under construction, the scratch buffer, the decoded request
 * and its message. */
static kr_buf B;
static kr_buf S;
static kr_request R;
static char M[512];

static int group_setup(void **state)
{
    (void)state;
    kr_buf_init(&B, 1u << 24);
    kr_buf_init(&S, 1u << 24);
    return 0;
}

static int group_teardown(void **state)
{
    (void)state;
    kr_buf_free(&B);
    kr_buf_free(&S);
    return 0;
}

static int test_setup(void **state)
{
    (void)state;
    kr_buf_reset(&B);
    kr_buf_reset(&S);
    memset(M, 0, sizeof M);
    return 0;
}

/* ---- helpers ---- */

static size_t unhex(const char *hex, uint8_t *out)
{
    size_t n = 0;
    int hi = -1;
    for (const char *p = hex; *p; p++) {
        int v;
        if (*p >= '0' && *p <= '9')
            v = *p - '0';
        else if (*p >= 'a' && *p <= 'f')
            v = *p - 'a' + 10;
        else
            continue;
        if (hi < 0) {
            hi = v;
        } else {
            out[n++] = (uint8_t)(hi << 4 | v);
            hi = -1;
        }
    }
    assert_int_equal(hi, -1);
    return n;
}

static void put_hex(const char *hex)
{
    uint8_t tmp[1024];
    size_t n = unhex(hex, tmp);
    kr_cbor_put_raw(&B, tmp, n);
}

static void kt(const char *k, const char *v)
{
    kr_cbor_put_cstr(&B, k);
    kr_cbor_put_cstr(&B, v);
}

static void ku(const char *k, uint64_t v)
{
    kr_cbor_put_cstr(&B, k);
    kr_cbor_put_uint(&B, v);
}

static void kn(const char *k)
{
    kr_cbor_put_cstr(&B, k);
    kr_cbor_put_null(&B);
}

static void kx(const char *k, const char *hex)
{
    kr_cbor_put_cstr(&B, k);
    put_hex(hex);
}

static krappy_err dec(uint32_t type)
{
    assert_false(B.failed);
    return kr_req_decode(type, B.data, B.len, &S, &R, M, sizeof M);
}

static krappy_err dech(uint32_t type, const char *hex)
{
    kr_buf_reset(&B);
    put_hex(hex);
    return dec(type);
}

#define expect_msg(sub)                                                                            \
    do {                                                                                           \
        if (strstr(M, (sub)) == NULL)                                                              \
            fail_msg("message \"%s\" lacks \"%s\"", M, (sub));                                     \
    } while (0)

static void str_eq(kr_str s, const char *want)
{
    size_t n = strlen(want);
    if (s.len != n || (n > 0 && memcmp(s.ptr, want, n) != 0))
        fail_msg("string \"%.*s\" != \"%s\"", (int)s.len, s.ptr ? (const char *)s.ptr : "", want);
}

static void mem_eq(kr_str s, const void *want, size_t n)
{
    assert_int_equal(s.len, n);
    if (n > 0)
        assert_memory_equal(s.ptr, want, n);
}

static const kr_cid NOCID = {false, 0};

static kr_cid cid(uint64_t v)
{
    kr_cid c = {true, v};
    return c;
}

/* ---- request round trips ---- */

static void test_rt_producer_register(void **state)
{
    (void)state;
    kr_enc_producer_register(&B, cid(7), "orders", "p-1");
    assert_int_equal(dec(KRAPPY_T_PRODUCER_REGISTER), KRAPPY_OK);
    assert_int_equal(R.type, KRAPPY_T_PRODUCER_REGISTER);
    assert_true(R.cid.set);
    assert_int_equal(R.cid.v, 7);
    str_eq(R.u.producer_register.topic, "orders");
    str_eq(R.u.producer_register.id, "p-1");
    /* Definite strings point into the payload. */
    assert_true(R.u.producer_register.topic.ptr > B.data &&
                R.u.producer_register.topic.ptr < B.data + B.len);

    /* Byte-exact: cid first, then the fields in order. */
    kr_buf_reset(&B);
    kr_enc_producer_register(&B, cid(1), "t", "i");
    uint8_t want[32];
    size_t n = unhex("a3 63636964 01 65746f706963 6174 626964 6169", want);
    assert_int_equal(B.len, n);
    assert_memory_equal(B.data, want, n);

    kr_buf_reset(&B);
    kr_enc_producer_register(&B, NOCID, "t", "i");
    assert_int_equal(dec(KRAPPY_T_PRODUCER_REGISTER), KRAPPY_OK);
    assert_false(R.cid.set);
    assert_int_equal(B.data[0], 0xa2);
}

static void test_rt_consumer_register(void **state)
{
    (void)state;
    kr_enc_consumer_register(&B, cid(3), "orders", "billing", "m-1", KR_START_OFFSET, 42,
                             KR_CACK_AUTO, 5000);
    assert_int_equal(dec(KRAPPY_T_CONSUMER_REGISTER), KRAPPY_OK);
    assert_int_equal(R.cid.v, 3);
    str_eq(R.u.consumer_register.topic, "orders");
    str_eq(R.u.consumer_register.group, "billing");
    assert_true(R.u.consumer_register.has_member);
    str_eq(R.u.consumer_register.member, "m-1");
    assert_int_equal(R.u.consumer_register.start, KR_START_OFFSET);
    assert_int_equal(R.u.consumer_register.start_offset, 42);
    assert_int_equal(R.u.consumer_register.ack, KR_CACK_AUTO);
    assert_int_equal(R.u.consumer_register.ack_wait_ms, 5000);

    kr_buf_reset(&B);
    kr_enc_consumer_register(&B, NOCID, "o", "g", NULL, KR_START_LATEST, 0, KR_CACK_EXPLICIT,
                             30000);
    assert_int_equal(dec(KRAPPY_T_CONSUMER_REGISTER), KRAPPY_OK);
    assert_false(R.u.consumer_register.has_member);
    assert_int_equal(R.u.consumer_register.start, KR_START_LATEST);
    assert_int_equal(R.u.consumer_register.ack, KR_CACK_EXPLICIT);
    assert_int_equal(R.u.consumer_register.ack_wait_ms, 30000);

    kr_buf_reset(&B);
    kr_enc_consumer_register(&B, NOCID, "o", "g", NULL, KR_START_EARLIEST, 0, KR_CACK_AUTO, 1);
    assert_int_equal(dec(KRAPPY_T_CONSUMER_REGISTER), KRAPPY_OK);
    assert_int_equal(R.u.consumer_register.start, KR_START_EARLIEST);

    /* Defaults. */
    kr_buf_reset(&B);
    kr_cbor_put_map(&B, 2);
    kt("topic", "o");
    kt("group", "g");
    assert_int_equal(dec(KRAPPY_T_CONSUMER_REGISTER), KRAPPY_OK);
    assert_int_equal(R.u.consumer_register.start, KR_START_EARLIEST);
    assert_int_equal(R.u.consumer_register.ack, KR_CACK_EXPLICIT);
    assert_int_equal(R.u.consumer_register.ack_wait_ms, KRAPPY_DEFAULT_ACK_WAIT_MS);
    assert_false(R.u.consumer_register.has_member);
}

static void test_rt_publish(void **state)
{
    (void)state;
    uint8_t val1[] = {0x01};
    uint8_t val2[] = {0xa1, 0x61, 0x61, 0x82, 0x01, 0x02};
    uint8_t hdrs[] = {0xa1, 0x61, 0x68, 0x41, 0x78};
    kr_event_out_spec ev[5] = {
        {.key = "k1", .key_len = 2, .value = val1, .value_len = 1},
        {.key = "k2",
         .key_len = 2,
         .key_is_text = true,
         .value = val2,
         .value_len = 6,
         .has_ts = true,
         .ts = 1234},
        {.key = NULL, .value = NULL},
        {.key = "k4",
         .key_len = 2,
         .value = val1,
         .value_len = 1,
         .has_ts = true,
         .ts = 9,
         .headers = hdrs,
         .headers_len = sizeof hdrs},
        {.key = "",
         .key_len = 0,
         .value = val1,
         .value_len = 1,
         .headers = hdrs,
         .headers_len = sizeof hdrs},
    };
    kr_enc_publish(&B, cid(11), KR_ACK_SYNC, ev, 5);
    assert_int_equal(dec(KRAPPY_T_PUBLISH), KRAPPY_OK);
    assert_int_equal(R.cid.v, 11);
    assert_int_equal(R.u.publish.ack, KR_ACK_SYNC);
    assert_true(R.u.publish.batch);
    assert_int_equal(R.u.publish.count, 5);

    kr_events_iter ei;
    kr_event_in e;
    kr_events_iter_init(&ei, &R, &S);

    assert_int_equal(kr_events_iter_next(&ei, &e), 1);
    assert_true(e.key.present);
    assert_false(e.key.is_text);
    str_eq(e.key.content, "k1");
    mem_eq(e.key.raw, "\x42k1", 3);
    mem_eq(e.value, val1, 1);
    assert_false(e.tombstone);
    assert_false(e.has_ts);
    assert_false(e.has_headers);

    assert_int_equal(kr_events_iter_next(&ei, &e), 1);
    assert_true(e.key.is_text);
    str_eq(e.key.content, "k2");
    mem_eq(e.key.raw, "\x62k2", 3);
    mem_eq(e.value, val2, sizeof val2);
    assert_true(e.has_ts);
    assert_int_equal(e.ts, 1234);

    assert_int_equal(kr_events_iter_next(&ei, &e), 1);
    assert_false(e.key.present);
    mem_eq(e.key.raw, "\xf6", 1);
    assert_true(e.tombstone);
    mem_eq(e.value, "\xf6", 1);
    assert_false(e.has_ts);

    assert_int_equal(kr_events_iter_next(&ei, &e), 1);
    str_eq(e.key.content, "k4");
    assert_true(e.has_ts);
    assert_int_equal(e.ts, 9);
    assert_true(e.has_headers);
    mem_eq(e.headers, hdrs, sizeof hdrs);

    /* Headers without ts: ts goes as null. */
    assert_int_equal(kr_events_iter_next(&ei, &e), 1);
    assert_true(e.key.present);
    assert_int_equal(e.key.content.len, 0);
    assert_false(e.has_ts);
    assert_true(e.has_headers);

    assert_int_equal(kr_events_iter_next(&ei, &e), 0);
    assert_int_equal(kr_events_iter_next(&ei, &e), 0);

    /* Ack modes and the default. */
    const kr_ack_mode modes[] = {KR_ACK_WRITE, KR_ACK_SYNC, KR_ACK_NONE};
    for (int i = 0; i < 3; i++) {
        kr_buf_reset(&B);
        kr_enc_publish(&B, NOCID, modes[i], ev, 1);
        assert_int_equal(dec(KRAPPY_T_PUBLISH), KRAPPY_OK);
        assert_int_equal(R.u.publish.ack, modes[i]);
        assert_int_equal(R.u.publish.count, 1);
    }
    kr_buf_reset(&B);
    kr_cbor_put_map(&B, 1);
    kx("events", "81 82 f6 01");
    assert_int_equal(dec(KRAPPY_T_PUBLISH), KRAPPY_OK);
    assert_int_equal(R.u.publish.ack, KR_ACK_WRITE);
}

static void test_publish_single_form(void **state)
{
    (void)state;
    kr_cbor_put_map(&B, 5);
    kt("key", "user-1");
    kx("value", "a1 646e616d65 63626f62");
    ku("ts", 77);
    kx("headers", "a1 6163 4101");
    kt("ack", "none");
    assert_int_equal(dec(KRAPPY_T_PUBLISH), KRAPPY_OK);
    assert_false(R.u.publish.batch);
    assert_int_equal(R.u.publish.count, 1);
    assert_int_equal(R.u.publish.ack, KR_ACK_NONE);
    kr_events_iter ei;
    kr_event_in e;
    kr_events_iter_init(&ei, &R, &S);
    assert_int_equal(kr_events_iter_next(&ei, &e), 1);
    assert_true(e.key.present && e.key.is_text);
    str_eq(e.key.content, "user-1");
    uint8_t v[16];
    size_t vn = unhex("a1 646e616d65 63626f62", v);
    mem_eq(e.value, v, vn);
    assert_true(e.has_ts);
    assert_int_equal(e.ts, 77);
    assert_true(e.has_headers);
    mem_eq(e.headers, "\xa1\x61\x63\x41\x01", 5);
    assert_int_equal(kr_events_iter_next(&ei, &e), 0);

    /* Only a value; a null value is a tombstone, not "absent". */
    kr_buf_reset(&B);
    kr_cbor_put_map(&B, 1);
    kn("value");
    assert_int_equal(dec(KRAPPY_T_PUBLISH), KRAPPY_OK);
    assert_false(R.u.publish.batch);
    assert_true(R.u.publish.first.tombstone);
    assert_false(R.u.publish.first.key.present);
    mem_eq(R.u.publish.first.key.raw, "\xf6", 1);
    assert_false(R.u.publish.first.has_ts);
    assert_false(R.u.publish.first.has_headers);

    /* Nulls for the optional parts count as absent. */
    kr_buf_reset(&B);
    kr_cbor_put_map(&B, 4);
    kn("key");
    ku("value", 1);
    kn("ts");
    kn("headers");
    assert_int_equal(dec(KRAPPY_T_PUBLISH), KRAPPY_OK);
    assert_false(R.u.publish.first.key.present);
    assert_false(R.u.publish.first.has_ts);
    assert_false(R.u.publish.first.has_headers);
}

static void test_rt_poll(void **state)
{
    (void)state;
    kr_enc_poll(&B, cid(1), 5, 100, 0);
    assert_int_equal(dec(KRAPPY_T_POLL), KRAPPY_OK);
    assert_int_equal(R.u.poll.max, 5);
    assert_int_equal(R.u.poll.wait_ms, 100);
    assert_int_equal(R.u.poll.max_bytes, 0); /* "one event": kept as 0 */

    kr_buf_reset(&B);
    kr_enc_empty(&B, NOCID);
    assert_int_equal(dec(KRAPPY_T_POLL), KRAPPY_OK);
    assert_int_equal(R.u.poll.max, KRAPPY_DEFAULT_MAX);
    assert_int_equal(R.u.poll.wait_ms, 0);
    assert_int_equal(R.u.poll.max_bytes, KRAPPY_DEFAULT_MAX_BYTES);

    /* Empty payload = empty map. */
    assert_int_equal(kr_req_decode(KRAPPY_T_POLL, NULL, 0, &S, &R, M, sizeof M), KRAPPY_OK);
    assert_int_equal(R.u.poll.max, 100);
    assert_int_equal(R.u.poll.max_bytes, 1024 * 1024);

    kr_buf_reset(&B);
    kr_enc_poll(&B, NOCID, UINT64_MAX, UINT64_MAX, UINT64_MAX);
    assert_int_equal(dec(KRAPPY_T_POLL), KRAPPY_OK);
    assert_true(R.u.poll.max == UINT64_MAX);
    assert_true(R.u.poll.wait_ms == UINT64_MAX);
}

static void test_rt_ack(void **state)
{
    (void)state;
    kr_enc_ack_upto(&B, cid(2), 99);
    assert_int_equal(dec(KRAPPY_T_ACK), KRAPPY_OK);
    assert_true(R.u.ack.has_upto);
    assert_int_equal(R.u.ack.upto, 99);

    const uint64_t offs[] = {1, 5, 900000000000u};
    kr_buf_reset(&B);
    kr_enc_ack_offsets(&B, NOCID, offs, 3);
    assert_int_equal(dec(KRAPPY_T_ACK), KRAPPY_OK);
    assert_false(R.u.ack.has_upto);
    assert_int_equal(R.u.ack.n_offsets, 3);
    kr_cbor_iter it;
    kr_cbor_item x;
    kr_cbor_iter_init(&it, &R.u.ack.offsets);
    for (int i = 0; i < 3; i++) {
        assert_int_equal(kr_cbor_iter_next(&it, &x), 1);
        assert_true(x.u == offs[i]);
    }
    assert_int_equal(kr_cbor_iter_next(&it, &x), 0);

    kr_buf_reset(&B);
    kr_enc_ack_offsets(&B, NOCID, offs, 0);
    assert_int_equal(dec(KRAPPY_T_ACK), KRAPPY_OK);
    assert_int_equal(R.u.ack.n_offsets, 0);
}

static void test_rt_get(void **state)
{
    (void)state;
    kr_enc_get(&B, cid(4), "kv", "\x00\xffkey", 5);
    assert_int_equal(dec(KRAPPY_T_GET), KRAPPY_OK);
    str_eq(R.u.get.topic, "kv");
    assert_true(R.u.get.key.present);
    assert_false(R.u.get.key.is_text);
    mem_eq(R.u.get.key.content, "\x00\xffkey", 5);
    mem_eq(R.u.get.key.raw, "\x45\x00\xffkey", 6);

    /* A text key, and the empty key. */
    kr_buf_reset(&B);
    kr_cbor_put_map(&B, 2);
    kt("topic", "kv");
    kt("key", "");
    assert_int_equal(dec(KRAPPY_T_GET), KRAPPY_OK);
    assert_true(R.u.get.key.is_text);
    assert_int_equal(R.u.get.key.content.len, 0);
}

static void test_rt_scan(void **state)
{
    (void)state;
    kr_enc_scan(&B, cid(5), "kv", "pre", 3, "pref", 4, 10, "\x01\x02", 2);
    assert_int_equal(dec(KRAPPY_T_SCAN), KRAPPY_OK);
    str_eq(R.u.scan.topic, "kv");
    assert_true(R.u.scan.has_prefix);
    str_eq(R.u.scan.prefix, "pre");
    assert_true(R.u.scan.has_after);
    str_eq(R.u.scan.after, "pref");
    assert_int_equal(R.u.scan.limit, 10);
    assert_true(R.u.scan.has_cursor);
    mem_eq(R.u.scan.cursor, "\x01\x02", 2);

    kr_buf_reset(&B);
    kr_enc_scan(&B, NOCID, "kv", NULL, 0, NULL, 0, 0, NULL, 0);
    assert_int_equal(B.data[0], 0xa1);
    assert_int_equal(dec(KRAPPY_T_SCAN), KRAPPY_OK);
    assert_false(R.u.scan.has_prefix);
    assert_false(R.u.scan.has_after);
    assert_false(R.u.scan.has_cursor);
    assert_int_equal(R.u.scan.limit, KRAPPY_DEFAULT_SCAN_LIMIT);

    /* An empty `after` is a real value (after the empty key). */
    kr_buf_reset(&B);
    kr_enc_scan(&B, NOCID, "kv", NULL, 0, "", 0, 0, NULL, 0);
    assert_int_equal(dec(KRAPPY_T_SCAN), KRAPPY_OK);
    assert_true(R.u.scan.has_after);
    assert_int_equal(R.u.scan.after.len, 0);

    /* Text prefix and text cursor are accepted too. */
    kr_buf_reset(&B);
    kr_cbor_put_map(&B, 3);
    kt("topic", "kv");
    kt("prefix", "ab");
    kt("cursor", "c1");
    assert_int_equal(dec(KRAPPY_T_SCAN), KRAPPY_OK);
    str_eq(R.u.scan.prefix, "ab");
    str_eq(R.u.scan.cursor, "c1");
}

static void test_rt_fetch(void **state)
{
    (void)state;
    kr_enc_fetch(&B, cid(6), "orders", 1000, 50, 250, 4096);
    assert_int_equal(dec(KRAPPY_T_FETCH), KRAPPY_OK);
    str_eq(R.u.fetch.topic, "orders");
    assert_int_equal(R.u.fetch.offset, 1000);
    assert_int_equal(R.u.fetch.max, 50);
    assert_int_equal(R.u.fetch.wait_ms, 250);
    assert_int_equal(R.u.fetch.max_bytes, 4096);

    kr_buf_reset(&B);
    kr_cbor_put_map(&B, 2);
    kt("topic", "orders");
    ku("offset", 0);
    assert_int_equal(dec(KRAPPY_T_FETCH), KRAPPY_OK);
    assert_int_equal(R.u.fetch.offset, 0);
    assert_int_equal(R.u.fetch.max, 100);
    assert_int_equal(R.u.fetch.wait_ms, 0);
    assert_int_equal(R.u.fetch.max_bytes, 1024 * 1024);
}

static void test_rt_hello(void **state)
{
    (void)state;
    kr_enc_hello(&B, cid(8), 1, "krappy-cli/0.1", "s3cret");
    assert_int_equal(dec(KRAPPY_T_HELLO), KRAPPY_OK);
    assert_int_equal(R.cid.v, 8);
    assert_int_equal(R.u.hello.version, 1);
    assert_true(R.u.hello.has_client);
    str_eq(R.u.hello.client, "krappy-cli/0.1");
    assert_true(R.u.hello.has_token);
    str_eq(R.u.hello.token, "s3cret");

    kr_buf_reset(&B);
    kr_enc_hello(&B, NOCID, 1, NULL, NULL);
    assert_int_equal(dec(KRAPPY_T_HELLO), KRAPPY_OK);
    assert_false(R.u.hello.has_client);
    assert_false(R.u.hello.has_token);
}

static void test_rt_ping_topics_stats(void **state)
{
    (void)state;
    kr_enc_empty(&B, NOCID);
    assert_int_equal(B.len, 1);
    assert_int_equal(B.data[0], 0xa0);
    assert_int_equal(dec(KRAPPY_T_PING), KRAPPY_OK);
    assert_false(R.cid.set);
    kr_buf_reset(&B);
    kr_enc_empty(&B, cid(300));
    assert_int_equal(dec(KRAPPY_T_TOPICS), KRAPPY_OK);
    assert_true(R.cid.set);
    assert_int_equal(R.cid.v, 300);
    assert_int_equal(R.type, KRAPPY_T_TOPICS);
    assert_int_equal(kr_req_decode(KRAPPY_T_PING, NULL, 0, &S, &R, M, sizeof M), KRAPPY_OK);

    kr_buf_reset(&B);
    kr_enc_stats(&B, cid(9), "orders", "billing");
    assert_int_equal(dec(KRAPPY_T_STATS), KRAPPY_OK);
    str_eq(R.u.stats.topic, "orders");
    assert_true(R.u.stats.has_group);
    str_eq(R.u.stats.group, "billing");
    kr_buf_reset(&B);
    kr_enc_stats(&B, NOCID, "orders", NULL);
    assert_int_equal(dec(KRAPPY_T_STATS), KRAPPY_OK);
    assert_false(R.u.stats.has_group);
}

/* ---- malformed payloads ---- */

/* TOPIC_CONFIG: a read, a change (every setting both ways), and the
 * refusals naming the setting; the reply's map. */
static void test_rt_topic_config(void **state)
{
    (void)state;
    kr_enc_topic_config(&B, cid(9), "users", NULL);
    assert_int_equal(dec(KRAPPY_T_TOPIC_CONFIG), KRAPPY_OK);
    str_eq(R.u.topic_config.topic, "users");
    assert_false(R.u.topic_config.has_set);
    assert_int_equal(R.cid.v, 9);

    kr_topic_config set = {.mask = KR_TC_ALL};
    set.v[KR_TC_CLEANUP] = KR_CLEANUP_COMPACT;
    set.v[KR_TC_RETENTION_BYTES] = 1ull << 40;
    set.v[KR_TC_RETENTION_MS] = 3600000;
    set.v[KR_TC_DELETE_RETENTION_MS] = 1000;
    set.v[KR_TC_SEGMENT_BYTES] = 1 << 20;
    set.v[KR_TC_SEGMENT_MS] = 60000;
    kr_buf_reset(&B);
    kr_enc_topic_config(&B, NOCID, "users", &set);
    assert_int_equal(dec(KRAPPY_T_TOPIC_CONFIG), KRAPPY_OK);
    assert_true(R.u.topic_config.has_set);
    assert_memory_equal(&R.u.topic_config.set, &set, sizeof set);

    /* An empty or null `set` reads. */
    assert_int_equal(dech(KRAPPY_T_TOPIC_CONFIG, "a2 65746f706963 657573657273 63736574 a0"),
                     KRAPPY_OK);
    assert_false(R.u.topic_config.has_set);
    assert_int_equal(dech(KRAPPY_T_TOPIC_CONFIG, "a2 65746f706963 657573657273 63736574 f6"),
                     KRAPPY_OK);
    assert_false(R.u.topic_config.has_set);
    /* `set` not a map; an unknown setting; a bad value; no topic. */
    assert_int_equal(dech(KRAPPY_T_TOPIC_CONFIG, "a2 65746f706963 657573657273 63736574 01"),
                     KRAPPY_E_INVALID_ARGUMENT);
    expect_msg("'set'");
    assert_int_equal(
        dech(KRAPPY_T_TOPIC_CONFIG, "a2 65746f706963 657573657273 63736574 a1 63666f6f 01"),
        KRAPPY_E_INVALID_ARGUMENT);
    expect_msg("'foo'");
    assert_int_equal(dech(KRAPPY_T_TOPIC_CONFIG,
                          "a2 65746f706963 657573657273 63736574 a1 67636c65616e7570 6362616e"),
                     KRAPPY_E_INVALID_ARGUMENT);
    expect_msg("cleanup");
    assert_int_equal(dech(KRAPPY_T_TOPIC_CONFIG, "a1 63736574 a0"), KRAPPY_E_INVALID_ARGUMENT);
    expect_msg("'topic'");

    /* The reply: OK {topic, config}. */
    kr_buf_reset(&B);
    kr_str users = {(const uint8_t *)"users", 5};
    kr_enc_ok_topic_config(&B, NOCID, &users, &set);
    kr_reply rep;
    kr_cbor_item m;
    kr_topic_config got;
    char msg[128];
    assert_int_equal(kr_reply_decode(KRAPPY_T_OK, B.data, B.len, &rep), 0);
    assert_int_equal(kr_cbor_map_find(&rep.map, "config", &m), 1);
    assert_int_equal(kr_tc_decode(&m, false, &got, msg, sizeof msg), KRAPPY_OK);
    assert_memory_equal(&got, &set, sizeof set);
}

/* DELETE_TOPIC, GROUP_SEEK (to earliest, latest, an offset; ts), GROUP_DELETE. */
static void test_rt_admin(void **state)
{
    (void)state;
    kr_enc_delete_topic(&B, cid(5), "orders");
    assert_int_equal(dec(KRAPPY_T_DELETE_TOPIC), KRAPPY_OK);
    str_eq(R.u.delete_topic.topic, "orders");
    assert_int_equal(R.cid.v, 5);

    static const struct {
        kr_seek_kind to;
        uint64_t value;
    } seeks[] = {{KR_SEEK_EARLIEST, 0},
                 {KR_SEEK_LATEST, 0},
                 {KR_SEEK_OFFSET, 0},
                 {KR_SEEK_OFFSET, 1234567890123ull},
                 {KR_SEEK_TIME, 1764000000000ull}};
    for (size_t i = 0; i < sizeof seeks / sizeof seeks[0]; i++) {
        kr_buf_reset(&B);
        kr_enc_group_seek(&B, NOCID, "orders", "billing", seeks[i].to, seeks[i].value);
        assert_int_equal(dec(KRAPPY_T_GROUP_SEEK), KRAPPY_OK);
        str_eq(R.u.group_seek.topic, "orders");
        str_eq(R.u.group_seek.group, "billing");
        assert_int_equal(R.u.group_seek.to, seeks[i].to);
        assert_int_equal(R.u.group_seek.value, seeks[i].value);
    }

    kr_buf_reset(&B);
    kr_enc_group_delete(&B, NOCID, "orders", "billing");
    assert_int_equal(dec(KRAPPY_T_GROUP_DELETE), KRAPPY_OK);
    str_eq(R.u.group_delete.topic, "orders");
    str_eq(R.u.group_delete.group, "billing");

    /* Fields wrong or missing: INVALID_ARGUMENT naming them. */
    kr_buf_reset(&B);
    kr_cbor_put_map(&B, 0);
    assert_int_equal(dec(KRAPPY_T_DELETE_TOPIC), KRAPPY_E_INVALID_ARGUMENT);
    expect_msg("'topic'");
    kr_buf_reset(&B);
    kr_cbor_put_map(&B, 1);
    kt("topic", "a/b");
    assert_int_equal(dec(KRAPPY_T_DELETE_TOPIC), KRAPPY_E_INVALID_ARGUMENT);
    kr_buf_reset(&B);
    kr_cbor_put_map(&B, 1);
    kt("topic", "t");
    assert_int_equal(dec(KRAPPY_T_GROUP_DELETE), KRAPPY_E_INVALID_ARGUMENT);
    expect_msg("'group'");
    kr_buf_reset(&B);
    kr_cbor_put_map(&B, 2);
    kt("topic", "t");
    kt("group", "g");
    assert_int_equal(dec(KRAPPY_T_GROUP_SEEK), KRAPPY_E_INVALID_ARGUMENT);
    expect_msg("'to' is required");
    kr_buf_reset(&B);
    kr_cbor_put_map(&B, 3);
    kt("topic", "t");
    kt("group", "g");
    kt("to", "newest");
    assert_int_equal(dec(KRAPPY_T_GROUP_SEEK), KRAPPY_E_INVALID_ARGUMENT);
    expect_msg("\"earliest\", \"latest\" or an offset");
    kr_buf_reset(&B);
    kr_cbor_put_map(&B, 4);
    kt("topic", "t");
    kt("group", "g");
    ku("to", 3);
    ku("ts", 4);
    assert_int_equal(dec(KRAPPY_T_GROUP_SEEK), KRAPPY_E_INVALID_ARGUMENT);
    expect_msg("not both");
    kr_buf_reset(&B);
    kr_cbor_put_map(&B, 3);
    kt("topic", "t");
    kt("group", "g");
    kt("ts", "yesterday");
    assert_int_equal(dec(KRAPPY_T_GROUP_SEEK), KRAPPY_E_INVALID_ARGUMENT);
    expect_msg("'ts'");
    /* null counts as absent: `to` null with `ts` given is a time seek. */
    kr_buf_reset(&B);
    kr_cbor_put_map(&B, 4);
    kt("topic", "t");
    kt("group", "g");
    kn("to");
    ku("ts", 77);
    assert_int_equal(dec(KRAPPY_T_GROUP_SEEK), KRAPPY_OK);
    assert_int_equal(R.u.group_seek.to, KR_SEEK_TIME);
    assert_int_equal(R.u.group_seek.value, 77);

    /* The replies. */
    kr_buf_reset(&B);
    kr_str name = {(const uint8_t *)"orders", 6};
    kr_enc_ok_topic(&B, cid(2), &name);
    kr_reply r;
    assert_int_equal(kr_reply_decode(KRAPPY_T_OK, B.data, B.len, &r), 0);
    kr_cbor_item v;
    assert_int_equal(kr_cbor_map_find(&r.map, "topic", &v), 1);
    assert_true(kr_cbor_text_eq(&v, "orders"));
    kr_buf_reset(&B);
    kr_enc_ok_cursor(&B, NOCID, 42);
    uint64_t cur = 0;
    assert_int_equal(kr_reply_decode(KRAPPY_T_OK, B.data, B.len, &r), 0);
    assert_int_equal(kr_reply_uint(&r, "cursor", &cur), 1);
    assert_int_equal(cur, 42);
    assert_int_equal(r.map.u, 1);
}

/* CLUSTER: the picture, membership changes, and its OK; NOT_LEADER's leader. */
static void test_rt_cluster(void **state)
{
    (void)state;
    kr_buf_reset(&B);
    kr_enc_cluster(&B, cid(3), 0, NULL);
    assert_int_equal(dec(KRAPPY_T_CLUSTER), KRAPPY_OK);
    assert_false(R.u.cluster.has_add || R.u.cluster.has_remove);
    assert_int_equal(R.cid.v, 3);
    kr_buf_reset(&B);
    kr_enc_cluster(&B, NOCID, 4, "n4:7072");
    assert_int_equal(dec(KRAPPY_T_CLUSTER), KRAPPY_OK);
    assert_true(R.u.cluster.has_add);
    assert_int_equal(R.u.cluster.id, 4);
    assert_int_equal(R.u.cluster.raft.len, 7);
    assert_memory_equal(R.u.cluster.raft.ptr, "n4:7072", 7);
    kr_buf_reset(&B);
    kr_enc_cluster(&B, NOCID, 2, NULL);
    assert_int_equal(dec(KRAPPY_T_CLUSTER), KRAPPY_OK);
    assert_true(R.u.cluster.has_remove);
    assert_int_equal(R.u.cluster.id, 2);
    /* Refusals. */
    assert_int_equal(dech(KRAPPY_T_CLUSTER, "a1 6672656d6f7665 00"), KRAPPY_E_INVALID_ARGUMENT);
    expect_msg("remove");
    assert_int_equal(dech(KRAPPY_T_CLUSTER, "a1 63616464 a1 626964 01"), KRAPPY_E_INVALID_ARGUMENT);
    expect_msg("raft");
    assert_int_equal(dech(KRAPPY_T_CLUSTER, "a2 63616464 a0 6672656d6f7665 01"),
                     KRAPPY_E_INVALID_ARGUMENT);
    expect_msg("not both");

    /* The OK, read back as a reply. */
    kr_buf_reset(&B);
    kr_cluster_head h = {"c0ffee", 2, 7, 0, 10, 9, false};
    kr_enc_ok_cluster_begin(&B, cid(8), &h, 2);
    kr_enc_cluster_node(
        &B, &(kr_cluster_node_out){1, "a:7070", "follower", "a:7072", NULL, false, 0, 0});
    kr_enc_cluster_node(
        &B, &(kr_cluster_node_out){2, "b:7070", "leader", "b:7072", "b:9092", true, 10, 0});
    kr_reply r;
    assert_int_equal(kr_reply_decode(KRAPPY_T_OK, B.data, B.len, &r), 0);
    kr_cbor_item v, nodes;
    uint64_t u;
    assert_int_equal(kr_cbor_map_find(&r.map, "leader", &v), 1);
    assert_int_equal(v.kind, KR_CBOR_NULL);
    assert_int_equal(kr_reply_uint(&r, "term", &u), 1);
    assert_int_equal(u, 7);
    assert_int_equal(kr_reply_uint(&r, "applied", &u), 1);
    assert_int_equal(u, 9);
    assert_int_equal(kr_cbor_map_find(&r.map, "nodes", &nodes), 1);
    assert_int_equal(nodes.u, 2);
    assert_int_equal(kr_cbor_map_find(&r.map, "halted", &v), 0); /* only when halted */
    /* A node whose store halted says so. */
    kr_buf_reset(&B);
    h.halted = true;
    kr_enc_ok_cluster_begin(&B, cid(8), &h, 0);
    assert_int_equal(kr_reply_decode(KRAPPY_T_OK, B.data, B.len, &r), 0);
    assert_int_equal(kr_cbor_map_find(&r.map, "halted", &v), 1);
    assert_int_equal(v.kind, KR_CBOR_TRUE);
    assert_int_equal(kr_reply_uint(&r, "applied", &u), 1);
    assert_int_equal(kr_cbor_map_find(&r.map, "nodes", &nodes), 1);
    assert_int_equal(nodes.u, 0);

    /* NOT_LEADER carries the leader's address. */
    kr_buf_reset(&B);
    kr_error_extra x = {.leader = "b:7070"};
    kr_enc_error(&B, cid(9), KRAPPY_E_NOT_LEADER, "send it to the leader", &x);
    kr_error_in e;
    assert_int_equal(kr_reply_decode(KRAPPY_T_ERROR, B.data, B.len, &r), 0);
    assert_int_equal(kr_reply_error(&r, &e), 0);
    assert_int_equal(e.code, KRAPPY_E_NOT_LEADER);
    assert_int_equal(e.leader.len, 6);
    assert_memory_equal(e.leader.ptr, "b:7070", 6);
}

static void test_bad_payload(void **state)
{
    (void)state;
    static const char *const bad[] = {
        "a1",     /* truncated */
        "a16161", /* truncated value */
        "ff",     /* lone break */
        "80",     /* not a map */
        "01",
        "6161",
        "f6",
        "a0 00", /* trailing bytes */
        "a0 a0",
        "a1 01 02",   /* non-text key */
        "a1 4161 01", /* byte-string key */
        "a2 6161 01 f6 02",
        "bf 6161 ff",                 /* odd indefinite map */
        "1c",                         /* reserved */
        "a1 6161 9b1000000000000000", /* huge count */
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        krappy_err e = dech(KRAPPY_T_PING, bad[i]);
        if (e != KRAPPY_E_BAD_PAYLOAD)
            fail_msg("payload %s: got %d, want BAD_PAYLOAD", bad[i], e);
        assert_true(strlen(M) > 0);
        assert_false(R.cid.set);
    }
    /* Well-formedness is checked before the type. */
    assert_int_equal(dech(99, "80"), KRAPPY_E_BAD_PAYLOAD);
    expect_msg("map");
    assert_int_equal(dech(KRAPPY_T_PING, "a0 00"), KRAPPY_E_BAD_PAYLOAD);
    expect_msg("after");
    assert_int_equal(dech(KRAPPY_T_PING, "a1 01 02"), KRAPPY_E_BAD_PAYLOAD);
    expect_msg("text");
    /* A cid does not survive a bad payload. */
    assert_int_equal(dech(KRAPPY_T_PING, "a2 63636964 05 01 02"), KRAPPY_E_BAD_PAYLOAD);
    assert_false(R.cid.set);
}

static void test_unknown_type(void **state)
{
    (void)state;
    const uint32_t types[] = {0, 50, 99, 100, 101, 255, 0xffffffffu};
    for (size_t i = 0; i < sizeof types / sizeof types[0]; i++) {
        assert_int_equal(dech(types[i], "a0"), KRAPPY_E_UNKNOWN_TYPE);
        assert_int_equal(kr_req_decode(types[i], NULL, 0, &S, &R, M, sizeof M),
                         KRAPPY_E_UNKNOWN_TYPE);
    }
    assert_int_equal(dech(50, "a0"), KRAPPY_E_UNKNOWN_TYPE);
    expect_msg("50");
    assert_int_equal(dech(101, "a0"), KRAPPY_E_UNKNOWN_TYPE);
    expect_msg("reply");
    /* The cid is echoed. */
    assert_int_equal(dech(42, "a1 63636964 1864"), KRAPPY_E_UNKNOWN_TYPE);
    assert_true(R.cid.set);
    assert_int_equal(R.cid.v, 100);
    /* Type is judged before fields: a bad cid does not matter yet. */
    assert_int_equal(dech(42, "a1 63636964 6161"), KRAPPY_E_UNKNOWN_TYPE);
    assert_false(R.cid.set);
}

/* ---- invalid arguments ---- */

static krappy_err producer(const uint8_t *topic, size_t topic_len, const char *id)
{
    kr_buf_reset(&B);
    kr_cbor_put_map(&B, 2);
    kr_cbor_put_cstr(&B, "topic");
    kr_cbor_put_text(&B, (const char *)topic, topic_len);
    kt("id", id);
    return dec(KRAPPY_T_PRODUCER_REGISTER);
}

static void test_topic_names(void **state)
{
    (void)state;
    static const char *const bad[] = {"",       ".",   "..", "a/b", "a b", "caf\xc3\xa9",
                                      "a\x00b", "x:y", "*"};
    static const size_t bad_len[] = {0, 1, 2, 3, 3, 5, 3, 3, 1};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        if (producer((const uint8_t *)bad[i], bad_len[i], "p") != KRAPPY_E_INVALID_ARGUMENT)
            fail_msg("topic %zu accepted", i);
        expect_msg("field 'topic' must be");
        expect_msg("[A-Za-z0-9._-]");
    }
    uint8_t t[300];
    memset(t, 'a', sizeof t);
    assert_int_equal(producer(t, 250, "p"), KRAPPY_E_INVALID_ARGUMENT);
    expect_msg("topic");
    expect_msg("250 bytes");
    assert_int_equal(producer(t, 249, "p"), KRAPPY_OK);
    assert_int_equal(R.u.producer_register.topic.len, 249);
    static const char *const good[] = {"a", "...", ".a", "a..", "Orders-2024_v1.x", "_", "-"};
    for (size_t i = 0; i < sizeof good / sizeof good[0]; i++) {
        if (producer((const uint8_t *)good[i], strlen(good[i]), "p") != KRAPPY_OK)
            fail_msg("topic %s refused: %s", good[i], M);
    }

    assert_true(kr_topic_name_valid((const uint8_t *)"abc", 3));
    assert_false(kr_topic_name_valid((const uint8_t *)"..", 2));
    assert_false(kr_topic_name_valid((const uint8_t *)"", 0));
    assert_false(kr_topic_name_valid(t, 250));

    /* Missing, null, wrong type. */
    kr_buf_reset(&B);
    kr_cbor_put_map(&B, 1);
    kt("id", "p");
    assert_int_equal(dec(KRAPPY_T_PRODUCER_REGISTER), KRAPPY_E_INVALID_ARGUMENT);
    expect_msg("field 'topic' is required");
    kr_buf_reset(&B);
    kr_cbor_put_map(&B, 2);
    kn("topic");
    kt("id", "p");
    assert_int_equal(dec(KRAPPY_T_PRODUCER_REGISTER), KRAPPY_E_INVALID_ARGUMENT);
    expect_msg("field 'topic' is required");
    kr_buf_reset(&B);
    kr_cbor_put_map(&B, 2);
    ku("topic", 5);
    kt("id", "p");
    assert_int_equal(dec(KRAPPY_T_PRODUCER_REGISTER), KRAPPY_E_INVALID_ARGUMENT);
    expect_msg("field 'topic' must be");
    expect_msg("not an unsigned integer");
    /* A byte string is not a name. */
    kr_buf_reset(&B);
    kr_cbor_put_map(&B, 2);
    kx("topic", "43616263");
    kt("id", "p");
    assert_int_equal(dec(KRAPPY_T_PRODUCER_REGISTER), KRAPPY_E_INVALID_ARGUMENT);
    expect_msg("byte string");
}

static void test_id_names(void **state)
{
    (void)state;
    assert_int_equal(producer((const uint8_t *)"t", 1, "\xc3\xa9t\xc3\xa9 \xe6\xb0\xb4"),
                     KRAPPY_OK);
    assert_int_equal(producer((const uint8_t *)"t", 1, "\xff"), KRAPPY_E_INVALID_ARGUMENT);
    expect_msg("field 'id' must be a text string of 1-249 bytes of valid UTF-8");
    assert_int_equal(producer((const uint8_t *)"t", 1, ""), KRAPPY_E_INVALID_ARGUMENT);
    expect_msg("field 'id'");
    char id[251];
    memset(id, 'x', 250);
    id[250] = '\0';
    assert_int_equal(producer((const uint8_t *)"t", 1, id), KRAPPY_E_INVALID_ARGUMENT);
    id[249] = '\0';
    assert_int_equal(producer((const uint8_t *)"t", 1, id), KRAPPY_OK);

    assert_true(kr_id_valid((const uint8_t *)"a", 1));
    assert_false(kr_id_valid((const uint8_t *)"\xed\xa0\x80", 3));
    assert_false(kr_id_valid((const uint8_t *)"", 0));

    /* group and member follow the same rule. */
    kr_buf_reset(&B);
    kr_cbor_put_map(&B, 3);
    kt("topic", "t");
    kt("group", "g");
    kt("member", "\xc0\x80");
    assert_int_equal(dec(KRAPPY_T_CONSUMER_REGISTER), KRAPPY_E_INVALID_ARGUMENT);
    expect_msg("field 'member'");
    kr_buf_reset(&B);
    kr_cbor_put_map(&B, 1);
    kt("topic", "t");
    assert_int_equal(dec(KRAPPY_T_CONSUMER_REGISTER), KRAPPY_E_INVALID_ARGUMENT);
    expect_msg("field 'group' is required");
}

static void test_enums(void **state)
{
    (void)state;
    kr_cbor_put_map(&B, 3);
    kt("topic", "t");
    kt("group", "g");
    kt("ack", "sometimes");
    assert_int_equal(dec(KRAPPY_T_CONSUMER_REGISTER), KRAPPY_E_INVALID_ARGUMENT);
    expect_msg("field 'ack' must be \"explicit\" or \"auto\"");

    kr_buf_reset(&B);
    kr_cbor_put_map(&B, 3);
    kt("topic", "t");
    kt("group", "g");
    kt("start", "middle");
    assert_int_equal(dec(KRAPPY_T_CONSUMER_REGISTER), KRAPPY_E_INVALID_ARGUMENT);
    expect_msg("field 'start' must be \"earliest\", \"latest\" or an offset");
    kr_buf_reset(&B);
    kr_cbor_put_map(&B, 3);
    kt("topic", "t");
    kt("group", "g");
    kx("start", "20");
    assert_int_equal(dec(KRAPPY_T_CONSUMER_REGISTER), KRAPPY_E_INVALID_ARGUMENT);
    expect_msg("'start'");

    kr_buf_reset(&B);
    kr_cbor_put_map(&B, 2);
    kx("events", "81 82 f6 01");
    kt("ack", "maybe");
    assert_int_equal(dec(KRAPPY_T_PUBLISH), KRAPPY_E_INVALID_ARGUMENT);
    expect_msg("field 'ack' must be \"write\", \"sync\" or \"none\"");
    kr_buf_reset(&B);
    kr_cbor_put_map(&B, 2);
    kx("events", "81 82 f6 01");
    ku("ack", 1);
    assert_int_equal(dec(KRAPPY_T_PUBLISH), KRAPPY_E_INVALID_ARGUMENT);
    expect_msg("field 'ack'");
    /* Case matters. */
    kr_buf_reset(&B);
    kr_cbor_put_map(&B, 2);
    kx("events", "81 82 f6 01");
    kt("ack", "SYNC");
    assert_int_equal(dec(KRAPPY_T_PUBLISH), KRAPPY_E_INVALID_ARGUMENT);

    kr_buf_reset(&B);
    kr_cbor_put_map(&B, 4);
    kt("topic", "t");
    kt("group", "g");
    kt("start", "latest");
    kx("ack_wait_ms", "3863");
    assert_int_equal(dec(KRAPPY_T_CONSUMER_REGISTER), KRAPPY_E_INVALID_ARGUMENT);
    expect_msg("field 'ack_wait_ms' must be an unsigned integer");
    expect_msg("negative integer");
}

static void test_limits(void **state)
{
    (void)state;
    kr_cbor_put_map(&B, 1);
    ku("max", 0);
    assert_int_equal(dec(KRAPPY_T_POLL), KRAPPY_E_INVALID_ARGUMENT);
    expect_msg("field 'max' must be at least 1");

    kr_buf_reset(&B);
    kr_cbor_put_map(&B, 1);
    kt("max", "10");
    assert_int_equal(dec(KRAPPY_T_POLL), KRAPPY_E_INVALID_ARGUMENT);
    expect_msg("field 'max' must be an unsigned integer of at least 1, not a text string");

    kr_buf_reset(&B);
    kr_cbor_put_map(&B, 1);
    kx("wait_ms", "f93c00");
    assert_int_equal(dec(KRAPPY_T_POLL), KRAPPY_E_INVALID_ARGUMENT);
    expect_msg("field 'wait_ms' must be an unsigned integer, not a float");

    kr_buf_reset(&B);
    kr_cbor_put_map(&B, 1);
    kx("max_bytes", "20");
    assert_int_equal(dec(KRAPPY_T_POLL), KRAPPY_E_INVALID_ARGUMENT);
    expect_msg("'max_bytes'");

    kr_buf_reset(&B);
    kr_enc_fetch(&B, NOCID, "t", 0, 0, 0, 0);
    assert_int_equal(dec(KRAPPY_T_FETCH), KRAPPY_E_INVALID_ARGUMENT);
    expect_msg("field 'max' must be at least 1");

    kr_buf_reset(&B);
    kr_cbor_put_map(&B, 1);
    kt("topic", "t");
    assert_int_equal(dec(KRAPPY_T_FETCH), KRAPPY_E_INVALID_ARGUMENT);
    expect_msg("field 'offset' is required");

    kr_buf_reset(&B);
    kr_cbor_put_map(&B, 2);
    kt("topic", "t");
    ku("limit", 0);
    assert_int_equal(dec(KRAPPY_T_SCAN), KRAPPY_E_INVALID_ARGUMENT);
    expect_msg("field 'limit' must be at least 1");
}

static void test_keys(void **state)
{
    (void)state;
    uint8_t *big = calloc(1, KRAPPY_MAX_KEY_BYTES + 1);
    assert_non_null(big);

    kr_enc_get(&B, NOCID, "t", big, KRAPPY_MAX_KEY_BYTES);
    assert_int_equal(dec(KRAPPY_T_GET), KRAPPY_OK);
    assert_int_equal(R.u.get.key.content.len, KRAPPY_MAX_KEY_BYTES);
    kr_buf_reset(&B);
    kr_enc_get(&B, NOCID, "t", big, KRAPPY_MAX_KEY_BYTES + 1);
    assert_int_equal(dec(KRAPPY_T_GET), KRAPPY_E_INVALID_ARGUMENT);
    expect_msg("field 'key' must be a byte or text string of at most 16384 bytes");
    expect_msg("16385");

    kr_buf_reset(&B);
    kr_cbor_put_map(&B, 1);
    kt("topic", "t");
    assert_int_equal(dec(KRAPPY_T_GET), KRAPPY_E_INVALID_ARGUMENT);
    expect_msg("field 'key' is required");
    kr_buf_reset(&B);
    kr_cbor_put_map(&B, 2);
    kt("topic", "t");
    kn("key");
    assert_int_equal(dec(KRAPPY_T_GET), KRAPPY_E_INVALID_ARGUMENT);
    expect_msg("field 'key' is required");
    kr_buf_reset(&B);
    kr_cbor_put_map(&B, 2);
    kt("topic", "t");
    ku("key", 1);
    assert_int_equal(dec(KRAPPY_T_GET), KRAPPY_E_INVALID_ARGUMENT);
    expect_msg("field 'key' must be");

    /* SCAN prefix/after too long, cursor of the wrong type. */
    kr_buf_reset(&B);
    kr_enc_scan(&B, NOCID, "t", big, KRAPPY_MAX_KEY_BYTES + 1, NULL, 0, 0, NULL, 0);
    assert_int_equal(dec(KRAPPY_T_SCAN), KRAPPY_E_INVALID_ARGUMENT);
    expect_msg("field 'prefix'");
    kr_buf_reset(&B);
    kr_enc_scan(&B, NOCID, "t", NULL, 0, big, KRAPPY_MAX_KEY_BYTES + 1, 0, NULL, 0);
    assert_int_equal(dec(KRAPPY_T_SCAN), KRAPPY_E_INVALID_ARGUMENT);
    expect_msg("field 'after'");
    kr_buf_reset(&B);
    kr_cbor_put_map(&B, 2);
    kt("topic", "t");
    ku("cursor", 1);
    assert_int_equal(dec(KRAPPY_T_SCAN), KRAPPY_E_INVALID_ARGUMENT);
    expect_msg("field 'cursor'");

    /* PUBLISH event key too long: the event index is named. */
    kr_event_out_spec ev[3] = {
        {.key = "a", .key_len = 1, .value = "\x01", .value_len = 1},
        {.key = "b", .key_len = 1, .value = "\x01", .value_len = 1},
        {.key = big, .key_len = KRAPPY_MAX_KEY_BYTES + 1, .value = "\x01", .value_len = 1},
    };
    kr_buf_reset(&B);
    kr_enc_publish(&B, cid(5), KR_ACK_WRITE, ev, 3);
    assert_int_equal(dec(KRAPPY_T_PUBLISH), KRAPPY_E_INVALID_ARGUMENT);
    expect_msg("PUBLISH event 2: key must be a byte or text string of at most 16384 bytes, "
               "or null");
    assert_true(R.cid.set);
    assert_int_equal(R.cid.v, 5);
    ev[2].key_len = KRAPPY_MAX_KEY_BYTES;
    kr_buf_reset(&B);
    kr_enc_publish(&B, NOCID, KR_ACK_WRITE, ev, 3);
    assert_int_equal(dec(KRAPPY_T_PUBLISH), KRAPPY_OK);

    /* Single form: the field is named. */
    kr_buf_reset(&B);
    kr_cbor_put_map(&B, 2);
    kr_cbor_put_cstr(&B, "key");
    kr_cbor_put_bytes(&B, big, KRAPPY_MAX_KEY_BYTES + 1);
    ku("value", 1);
    assert_int_equal(dec(KRAPPY_T_PUBLISH), KRAPPY_E_INVALID_ARGUMENT);
    expect_msg("field 'key' must be a byte or text string of at most 16384 bytes, or null");
    free(big);
}

static void test_publish_invalid(void **state)
{
    (void)state;
    /* Both forms. */
    kr_cbor_put_map(&B, 2);
    kx("events", "81 82 f6 01");
    ku("value", 1);
    assert_int_equal(dec(KRAPPY_T_PUBLISH), KRAPPY_E_INVALID_ARGUMENT);
    expect_msg("either 'events' or one event");
    expect_msg("not both");
    kr_buf_reset(&B);
    kr_cbor_put_map(&B, 2);
    kx("events", "81 82 f6 01");
    kt("key", "k");
    assert_int_equal(dec(KRAPPY_T_PUBLISH), KRAPPY_E_INVALID_ARGUMENT);
    expect_msg("not both");
    /* A null value with events is still the single form's value. */
    kr_buf_reset(&B);
    kr_cbor_put_map(&B, 2);
    kx("events", "81 82 f6 01");
    kn("value");
    assert_int_equal(dec(KRAPPY_T_PUBLISH), KRAPPY_E_INVALID_ARGUMENT);
    /* ...but null key/ts/headers are absent. */
    kr_buf_reset(&B);
    kr_cbor_put_map(&B, 4);
    kx("events", "81 82 f6 01");
    kn("key");
    kn("ts");
    kn("headers");
    assert_int_equal(dec(KRAPPY_T_PUBLISH), KRAPPY_OK);
    assert_true(R.u.publish.batch);

    /* Neither form. */
    kr_buf_reset(&B);
    kr_enc_empty(&B, NOCID);
    assert_int_equal(dec(KRAPPY_T_PUBLISH), KRAPPY_E_INVALID_ARGUMENT);
    expect_msg("PUBLISH needs 'events'");
    kr_buf_reset(&B);
    kr_cbor_put_map(&B, 1);
    kt("key", "k");
    assert_int_equal(dec(KRAPPY_T_PUBLISH), KRAPPY_E_INVALID_ARGUMENT);
    expect_msg("field 'value' is required");

    static const struct {
        const char *events;
        const char *msg;
    } cases[] = {
        {"80", "field 'events' must be a non-empty array"},
        {"9fff", "field 'events' must be a non-empty array"},
        {"a0", "field 'events' must be a non-empty array of events, not a map"},
        {"6161", "field 'events' must be"},
        {"81 01", "PUBLISH event 0: the event must be an array [key, value]"},
        {"82 82f601 81f6", "PUBLISH event 1: the event must be"},
        {"81 80", "PUBLISH event 0: the event must be"},
        {"81 85 f6 01 01 a0 00", "PUBLISH event 0: the event must be"},
        {"81 82 01 01", "PUBLISH event 0: key must be a byte or text string"},
        {"81 82 a0 01", "PUBLISH event 0: key must be"},
        {"83 82f601 82f601 83 f6 01 6161",
         "PUBLISH event 2: ts must be an unsigned integer (milliseconds since the Unix epoch)"},
        {"81 83 f6 01 20", "PUBLISH event 0: ts must be"},
        {"81 84 f6 01 f6 80", "PUBLISH event 0: headers must be a map of text keys to byte "
                              "strings, or null"},
        {"81 84 f6 01 f6 a1 6161 6161", "PUBLISH event 0: headers must be"},
        {"81 84 f6 01 f6 a1 4161 4161", "PUBLISH event 0: headers must be"},
        {"81 84 f6 01 f6 a1 6161 01", "PUBLISH event 0: headers must be"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        kr_buf_reset(&B);
        kr_cbor_put_map(&B, 1);
        kx("events", cases[i].events);
        krappy_err e = dec(KRAPPY_T_PUBLISH);
        if (e != KRAPPY_E_INVALID_ARGUMENT)
            fail_msg("events %s: got %d", cases[i].events, e);
        expect_msg(cases[i].msg);
    }

    /* Valid event shapes, indefinite forms included. */
    static const char *const good[] = {
        "81 82 f6 f6",
        "81 83 4161 01 f6",
        "81 84 6161 01 1b0000000100000000 a0",
        "81 84 6161 01 f6 f6",
        "81 84 f6 01 f6 bf 6161 5f4161ff ff",
        "9f 9f f6 01 ff 82 4161 9f01ff ff",
        "81 82 f6 d820 67 687474703a2f2f",
        "81 82 5f 4161 4162 ff 01",
    };
    for (size_t i = 0; i < sizeof good / sizeof good[0]; i++) {
        kr_buf_reset(&B);
        kr_cbor_put_map(&B, 1);
        kx("events", good[i]);
        if (dec(KRAPPY_T_PUBLISH) != KRAPPY_OK)
            fail_msg("events %s refused: %s", good[i], M);
    }

    /* Single form: ts and headers validated. */
    kr_buf_reset(&B);
    kr_cbor_put_map(&B, 2);
    ku("value", 1);
    kt("ts", "now");
    assert_int_equal(dec(KRAPPY_T_PUBLISH), KRAPPY_E_INVALID_ARGUMENT);
    expect_msg("field 'ts' must be an unsigned integer");
    kr_buf_reset(&B);
    kr_cbor_put_map(&B, 2);
    ku("value", 1);
    ku("headers", 1);
    assert_int_equal(dec(KRAPPY_T_PUBLISH), KRAPPY_E_INVALID_ARGUMENT);
    expect_msg("field 'headers' must be a map");
}

/*
 * The first event of `events` is read with the map (one pass), yet judged
 * only once the whole payload is known to be well-formed: a malformed
 * later field is BAD_PAYLOAD before the event's INVALID_ARGUMENT
 * (PROTOCOL.md section 5), and the last of duplicated `events` counts.
 */
static void test_publish_events_one_pass(void **state)
{
    (void)state;
    static const struct {
        const char *payload;
        krappy_err want;
        const char *msg;
    } cases[] = {
        /* An invalid first event, then a truncated field: BAD_PAYLOAD. */
        {"a2 666576656e7473 81 82 01 01 63636964 19", KRAPPY_E_BAD_PAYLOAD, "not well-formed"},
        /* ... then a non-text key: BAD_PAYLOAD. */
        {"a2 666576656e7473 81 82 01 01 01 01", KRAPPY_E_BAD_PAYLOAD, "text string"},
        /* ... then trailing bytes: BAD_PAYLOAD. */
        {"a1 666576656e7473 81 82 01 01 00", KRAPPY_E_BAD_PAYLOAD, "after its CBOR map"},
        /* Too many parts, the fifth malformed: BAD_PAYLOAD. */
        {"a1 666576656e7473 81 85 f6 01 01 a0 1c", KRAPPY_E_BAD_PAYLOAD, "not well-formed"},
        /* The first event truncated, or a later one. */
        {"a1 666576656e7473 81 82 f6", KRAPPY_E_BAD_PAYLOAD, "not well-formed"},
        {"a1 666576656e7473 82 82 f6 01 82 f6", KRAPPY_E_BAD_PAYLOAD, "not well-formed"},
        /* Duplicates: the last `events` counts, either way round. */
        {"a2 666576656e7473 81 82 01 01 666576656e7473 81 82 f6 01", KRAPPY_OK, ""},
        {"a2 666576656e7473 81 82 f6 01 666576656e7473 81 82 01 01", KRAPPY_E_INVALID_ARGUMENT,
         "PUBLISH event 0: key must be"},
        {"a2 666576656e7473 81 82 f6 01 666576656e7473 80", KRAPPY_E_INVALID_ARGUMENT,
         "non-empty array"},
        {"a2 666576656e7473 81 82 f6 01 666576656e7473 9f 01 ff", KRAPPY_E_INVALID_ARGUMENT,
         "PUBLISH event 0: the event must be"},
        /* An indefinite first event in a definite array, judged the same. */
        {"a1 666576656e7473 81 9f 01 01 ff", KRAPPY_E_INVALID_ARGUMENT,
         "PUBLISH event 0: key must be"},
        /* In an indefinite map; then an invalid later field. */
        {"bf 666576656e7473 81 82 f6 01 ff", KRAPPY_OK, ""},
        {"bf 666576656e7473 81 82 f6 01 63 61636b 01 ff", KRAPPY_E_INVALID_ARGUMENT, "'ack'"},
        /* A first event of one part, then a second one that is fine. */
        {"a1 666576656e7473 82 81 f6 82 f6 01", KRAPPY_E_INVALID_ARGUMENT,
         "PUBLISH event 0: the event must be"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        krappy_err e = dech(KRAPPY_T_PUBLISH, cases[i].payload);
        if (e != cases[i].want)
            fail_msg("payload %s: got %d, want %d (%s)", cases[i].payload, e, cases[i].want, M);
        expect_msg(cases[i].msg);
    }

    /* The first event's parts as decoded, and the iterator after it. */
    assert_int_equal(
        dech(KRAPPY_T_PUBLISH, "a1 666576656e7473 82 83 4161 6162 05 84 f6 f6 f6 a1 6168 4101"),
        KRAPPY_OK);
    assert_int_equal(R.u.publish.count, 2);
    kr_events_iter ei;
    kr_event_in e;
    kr_events_iter_init(&ei, &R, &S);
    assert_int_equal(kr_events_iter_next(&ei, &e), 1);
    assert_true(e.key.present);
    assert_int_equal(e.key.content.len, 1);
    assert_memory_equal(e.key.content.ptr, "a", 1);
    assert_int_equal(e.value.len, 2);
    assert_true(e.has_ts);
    assert_int_equal(e.ts, 5);
    assert_false(e.has_headers);
    assert_int_equal(kr_events_iter_next(&ei, &e), 1);
    assert_false(e.key.present);
    assert_true(e.tombstone);
    assert_true(e.has_headers);
    assert_int_equal(kr_events_iter_next(&ei, &e), 0);

    /* Definite containers cost no nesting: 63 indefinite levels inside a
     * definite event are as well-formed as they were. */
    char deep[64 * 3 * 2 + 64];
    size_t at = (size_t)snprintf(deep, sizeof deep, "a1 666576656e7473 81 82 f6 ");
    for (int i = 0; i < 63; i++)
        at += (size_t)snprintf(deep + at, sizeof deep - at, "9f");
    for (int i = 0; i < 63; i++)
        at += (size_t)snprintf(deep + at, sizeof deep - at, "ff");
    assert_int_equal(dech(KRAPPY_T_PUBLISH, deep), KRAPPY_OK);
}

static void test_ack_invalid(void **state)
{
    (void)state;
    kr_cbor_put_map(&B, 2);
    ku("upto", 1);
    kx("offsets", "81 01");
    assert_int_equal(dec(KRAPPY_T_ACK), KRAPPY_E_INVALID_ARGUMENT);
    expect_msg("either 'upto' or 'offsets', not both");
    kr_buf_reset(&B);
    kr_enc_empty(&B, NOCID);
    assert_int_equal(dec(KRAPPY_T_ACK), KRAPPY_E_INVALID_ARGUMENT);
    expect_msg("ACK needs 'upto'");
    kr_buf_reset(&B);
    kr_cbor_put_map(&B, 1);
    kx("offsets", "83 01 6161 03");
    assert_int_equal(dec(KRAPPY_T_ACK), KRAPPY_E_INVALID_ARGUMENT);
    expect_msg("field 'offsets' must be an array of unsigned integers (item 1 is a text string)");
    kr_buf_reset(&B);
    kr_cbor_put_map(&B, 1);
    ku("offsets", 3);
    assert_int_equal(dec(KRAPPY_T_ACK), KRAPPY_E_INVALID_ARGUMENT);
    expect_msg("field 'offsets' must be an array");
    kr_buf_reset(&B);
    kr_cbor_put_map(&B, 1);
    kt("upto", "3");
    assert_int_equal(dec(KRAPPY_T_ACK), KRAPPY_E_INVALID_ARGUMENT);
    expect_msg("field 'upto' must be an unsigned integer");
    /* Null counts as absent: one of the two is enough. */
    kr_buf_reset(&B);
    kr_cbor_put_map(&B, 2);
    ku("upto", 4);
    kn("offsets");
    assert_int_equal(dec(KRAPPY_T_ACK), KRAPPY_OK);
    assert_int_equal(R.u.ack.upto, 4);
}

static void test_hello(void **state)
{
    (void)state;
    kr_enc_hello(&B, cid(12), 2, "c", NULL);
    assert_int_equal(dec(KRAPPY_T_HELLO), KRAPPY_E_UNSUPPORTED_VERSION);
    expect_msg("protocol version 2 is not supported; this server speaks version 1");
    assert_true(R.cid.set);
    assert_int_equal(R.cid.v, 12);
    kr_buf_reset(&B);
    kr_enc_hello(&B, NOCID, 0, NULL, NULL);
    assert_int_equal(dec(KRAPPY_T_HELLO), KRAPPY_E_UNSUPPORTED_VERSION);
    expect_msg("protocol version 0");

    kr_buf_reset(&B);
    kr_enc_empty(&B, NOCID);
    assert_int_equal(dec(KRAPPY_T_HELLO), KRAPPY_E_INVALID_ARGUMENT);
    expect_msg("field 'version' is required");
    kr_buf_reset(&B);
    kr_cbor_put_map(&B, 1);
    kt("version", "1");
    assert_int_equal(dec(KRAPPY_T_HELLO), KRAPPY_E_INVALID_ARGUMENT);
    expect_msg("field 'version' must be an unsigned integer");
    kr_buf_reset(&B);
    kr_cbor_put_map(&B, 2);
    ku("version", 1);
    ku("client", 1);
    assert_int_equal(dec(KRAPPY_T_HELLO), KRAPPY_E_INVALID_ARGUMENT);
    expect_msg("field 'client' must be a text string");
    kr_buf_reset(&B);
    kr_cbor_put_map(&B, 2);
    ku("version", 1);
    kx("token", "43616263");
    assert_int_equal(dec(KRAPPY_T_HELLO), KRAPPY_E_INVALID_ARGUMENT);
    expect_msg("field 'token' must be a text string");
    kr_buf_reset(&B);
    kr_cbor_put_map(&B, 3);
    ku("version", 1);
    kn("client");
    kn("token");
    assert_int_equal(dec(KRAPPY_T_HELLO), KRAPPY_OK);
    assert_false(R.u.hello.has_client);
    assert_false(R.u.hello.has_token);
}

/* ---- cid, null, duplicates, unknown keys, indefinite strings ---- */

static void test_cid(void **state)
{
    (void)state;
    /* Echoed on INVALID_ARGUMENT. */
    kr_cbor_put_map(&B, 1);
    ku("cid", 77);
    assert_int_equal(dec(KRAPPY_T_PRODUCER_REGISTER), KRAPPY_E_INVALID_ARGUMENT);
    assert_true(R.cid.set);
    assert_int_equal(R.cid.v, 77);

    /* A cid of the wrong type is INVALID_ARGUMENT and not echoed. */
    kr_buf_reset(&B);
    kr_cbor_put_map(&B, 1);
    kt("cid", "x");
    assert_int_equal(dec(KRAPPY_T_PING), KRAPPY_E_INVALID_ARGUMENT);
    expect_msg("field 'cid' must be an unsigned integer");
    assert_false(R.cid.set);
    kr_buf_reset(&B);
    kr_cbor_put_map(&B, 1);
    kx("cid", "20");
    assert_int_equal(dec(KRAPPY_T_PING), KRAPPY_E_INVALID_ARGUMENT);

    /* Null cid = none. */
    kr_buf_reset(&B);
    kr_cbor_put_map(&B, 1);
    kn("cid");
    assert_int_equal(dec(KRAPPY_T_PING), KRAPPY_OK);
    assert_false(R.cid.set);

    /* Largest cid, and last one wins. */
    kr_buf_reset(&B);
    kr_cbor_put_map(&B, 2);
    ku("cid", 1);
    ku("cid", UINT64_MAX);
    assert_int_equal(dec(KRAPPY_T_PING), KRAPPY_OK);
    assert_true(R.cid.v == UINT64_MAX);

    /* kr_req_peek_cid. */
    uint64_t c = 0;
    kr_buf_reset(&B);
    kr_enc_empty(&B, cid(31));
    assert_int_equal(kr_req_peek_cid(B.data, B.len, &c), 1);
    assert_int_equal(c, 31);
    kr_buf_reset(&B);
    kr_cbor_put_map(&B, 2);
    ku("cid", 31);
    ku("max", 0); /* invalid fields do not matter */
    assert_int_equal(kr_req_peek_cid(B.data, B.len, &c), 1);
    uint8_t p[16];
    size_t n = unhex("a1 63636964 6178", p);
    assert_int_equal(kr_req_peek_cid(p, n, &c), 0);
    n = unhex("a1 63636964 05 00", p);
    assert_int_equal(kr_req_peek_cid(p, n, &c), 0);
    n = unhex("a2 63636964 05 01 01", p);
    assert_int_equal(kr_req_peek_cid(p, n, &c), 0);
    assert_int_equal(kr_req_peek_cid(NULL, 0, &c), 0);
    n = unhex("a0", p);
    assert_int_equal(kr_req_peek_cid(p, n, &c), 0);
}

/* kr_req_peek_ack_none reads `ack` even from a payload that does not
 * decode, up to the first malformed entry; the last `ack` read counts. */
static void test_peek_ack_none(void **state)
{
    (void)state;
    static const struct {
        const char *hex;
        int none;
    } cases[] = {
        {"a1 63 61636b 64 6e6f6e65", 1},                    /* {ack: "none"} */
        {"a1 63 61636b 65 7772697465", 0},                  /* "write" */
        {"a1 63 61636b 44 6e6f6e65", 0},                    /* bytes 'none' */
        {"a1 63 61636b 7f 62 6e6f 62 6e65 ff", 1},          /* indefinite text */
        {"a2 63 61636b 64 6e6f6e65 63 61636b f6", 0},       /* then null: last wins */
        {"a2 63 61636b f6 63 61636b 64 6e6f6e65", 1},       /* null, then "none" */
        {"a1 63 61636b 64 6e6f6e65 00", 1},                 /* trailing byte */
        {"a2 63 61636b 64 6e6f6e65 01 02", 1},              /* a non-text key after */
        {"a2 01 02 63 61636b 64 6e6f6e65", 1},              /* ... or before */
        {"a2 63 61636b 64 6e6f6e65 66 6576656e7473 82", 1}, /* truncated after */
        {"a1 63 61636b 64 6e6f", 0},                        /* truncated inside */
        {"bf 63 61636b 64 6e6f6e65 ff", 1},                 /* indefinite map */
        {"81 64 6e6f6e65", 0},                              /* not a map */
        {"a0", 0},
        {"ff", 0},
    };
    uint8_t p[64];
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        size_t n = unhex(cases[i].hex, p);
        if (kr_req_peek_ack_none(p, n) != cases[i].none)
            fail_msg("case %zu (%s): want %d", i, cases[i].hex, cases[i].none);
    }
    assert_int_equal(kr_req_peek_ack_none(NULL, 0), 0);

    /* It agrees with kr_req_decode on what the encoder writes. */
    static const kr_ack_mode modes[] = {KR_ACK_WRITE, KR_ACK_SYNC, KR_ACK_NONE};
    kr_event_out_spec ev = {.value = "\x01", .value_len = 1};
    for (size_t i = 0; i < 3; i++) {
        kr_buf_reset(&B);
        kr_enc_publish(&B, cid(9), modes[i], &ev, 1);
        assert_int_equal(dec(KRAPPY_T_PUBLISH), KRAPPY_OK);
        assert_int_equal(kr_req_peek_ack_none(B.data, B.len), R.u.publish.ack == KR_ACK_NONE);
        assert_int_equal(kr_req_peek_ack_none(B.data, B.len), modes[i] == KR_ACK_NONE);
    }
}

static void test_nulls_duplicates_unknown(void **state)
{
    (void)state;
    kr_cbor_put_map(&B, 3);
    kn("max");
    kn("wait_ms");
    kn("max_bytes");
    assert_int_equal(dec(KRAPPY_T_POLL), KRAPPY_OK);
    assert_int_equal(R.u.poll.max, 100);
    assert_int_equal(R.u.poll.wait_ms, 0);
    assert_int_equal(R.u.poll.max_bytes, 1024 * 1024);

    kr_buf_reset(&B);
    kr_cbor_put_map(&B, 6);
    kt("topic", "t");
    kt("group", "g");
    kn("member");
    kn("start");
    kn("ack");
    kn("ack_wait_ms");
    assert_int_equal(dec(KRAPPY_T_CONSUMER_REGISTER), KRAPPY_OK);
    assert_false(R.u.consumer_register.has_member);
    assert_int_equal(R.u.consumer_register.start, KR_START_EARLIEST);
    assert_int_equal(R.u.consumer_register.ack, KR_CACK_EXPLICIT);
    assert_int_equal(R.u.consumer_register.ack_wait_ms, 30000);

    kr_buf_reset(&B);
    kr_cbor_put_map(&B, 2);
    kt("topic", "t");
    kn("group");
    assert_int_equal(dec(KRAPPY_T_STATS), KRAPPY_OK);
    assert_false(R.u.stats.has_group);

    kr_buf_reset(&B);
    kr_cbor_put_map(&B, 4);
    kt("topic", "t");
    kn("prefix");
    kn("limit");
    kn("cursor");
    assert_int_equal(dec(KRAPPY_T_SCAN), KRAPPY_OK);
    assert_false(R.u.scan.has_prefix);
    assert_int_equal(R.u.scan.limit, 1000);

    /* Duplicates: last wins, in both directions. */
    kr_buf_reset(&B);
    kr_cbor_put_map(&B, 3);
    kt("topic", "first");
    kt("id", "p");
    kt("topic", "second");
    assert_int_equal(dec(KRAPPY_T_PRODUCER_REGISTER), KRAPPY_OK);
    str_eq(R.u.producer_register.topic, "second");
    kr_buf_reset(&B);
    kr_cbor_put_map(&B, 3);
    ku("topic", 1);
    kt("id", "p");
    kt("topic", "ok");
    assert_int_equal(dec(KRAPPY_T_PRODUCER_REGISTER), KRAPPY_OK);
    kr_buf_reset(&B);
    kr_cbor_put_map(&B, 3);
    kt("topic", "ok");
    kt("id", "p");
    kt("topic", "a/b");
    assert_int_equal(dec(KRAPPY_T_PRODUCER_REGISTER), KRAPPY_E_INVALID_ARGUMENT);
    kr_buf_reset(&B);
    kr_cbor_put_map(&B, 3);
    kt("topic", "ok");
    kt("id", "p");
    kn("topic");
    assert_int_equal(dec(KRAPPY_T_PRODUCER_REGISTER), KRAPPY_E_INVALID_ARGUMENT);
    expect_msg("field 'topic' is required");
    kr_buf_reset(&B);
    kr_cbor_put_map(&B, 2);
    ku("max", 0);
    ku("max", 3);
    assert_int_equal(dec(KRAPPY_T_POLL), KRAPPY_OK);
    assert_int_equal(R.u.poll.max, 3);

    /* Unknown keys, of any type and name, are ignored. */
    kr_buf_reset(&B);
    kr_cbor_put_map(&B, 6);
    kx("future", "9f 01 a1 6161 c1 00 ff");
    kt("topic", "t");
    kx("", "f7");
    kt("id", "p");
    kx("a_much_longer_unknown_field_name", "fb3ff199999999999a");
    kx("TOPIC", "01");
    assert_int_equal(dec(KRAPPY_T_PRODUCER_REGISTER), KRAPPY_OK);
    str_eq(R.u.producer_register.topic, "t");
    /* Fields of other request types are ignored too. */
    kr_buf_reset(&B);
    kr_cbor_put_map(&B, 2);
    kt("topic", "a/b/c");
    ku("max", 0);
    assert_int_equal(dec(KRAPPY_T_PING), KRAPPY_OK);
}

static void test_indefinite_strings(void **state)
{
    (void)state;
    /* Indefinite map, indefinite topic and id; indefinite keys too. */
    put_hex("bf 65746f706963 7f 636f7264 63657273 ff"
            "   7f 6169 6164 ff 7f 6170 612d 6131 ff ff");
    assert_int_equal(dec(KRAPPY_T_PRODUCER_REGISTER), KRAPPY_OK);
    str_eq(R.u.producer_register.topic, "orders");
    str_eq(R.u.producer_register.id, "p-1");
    /* Joined into scratch. */
    assert_true(R.u.producer_register.topic.ptr >= S.data &&
                R.u.producer_register.topic.ptr < S.data + S.cap);
    assert_true(R.u.producer_register.id.ptr >= S.data &&
                R.u.producer_register.id.ptr < S.data + S.cap);

    /* An indefinite topic must obey the name rule once joined. */
    kr_buf_reset(&B);
    put_hex("a2 65746f706963 7f 6161 612f 6162 ff 626964 6170");
    assert_int_equal(dec(KRAPPY_T_PRODUCER_REGISTER), KRAPPY_E_INVALID_ARGUMENT);
    expect_msg("field 'topic'");

    /* GET with an indefinite byte-string key. */
    kr_buf_reset(&B);
    put_hex("a2 65746f706963 626b76 636b6579 5f 42 0001 41 02 40 ff");
    assert_int_equal(dec(KRAPPY_T_GET), KRAPPY_OK);
    mem_eq(R.u.get.key.content, "\x00\x01\x02", 3);
    assert_false(R.u.get.key.is_text);
    assert_int_equal(R.u.get.key.raw.len, 8);

    /* Single-form PUBLISH with an indefinite text key. */
    kr_buf_reset(&B);
    put_hex("a2 636b6579 7f 626b2d 6131 ff 6576616c7565 01");
    assert_int_equal(dec(KRAPPY_T_PUBLISH), KRAPPY_OK);
    assert_true(R.u.publish.first.key.is_text);
    str_eq(R.u.publish.first.key.content, "k-1");

    /* Batch PUBLISH: keys are joined while iterating, and every pointer
     * handed out stays valid to the end. */
    kr_buf_reset(&B);
    enum { NEV = 200 };
    kr_cbor_put_map(&B, 1);
    kr_cbor_put_cstr(&B, "events");
    kr_cbor_put_array(&B, NEV);
    for (int i = 0; i < NEV; i++) {
        char k[16];
        int n = snprintf(k, sizeof k, "key-%d", i);
        kr_cbor_put_array(&B, 2);
        put_hex("7f");
        kr_cbor_put_text(&B, k, 2);
        kr_cbor_put_text(&B, k + 2, (size_t)n - 2);
        put_hex("ff");
        kr_cbor_put_uint(&B, (uint64_t)i);
    }
    assert_int_equal(dec(KRAPPY_T_PUBLISH), KRAPPY_OK);
    assert_int_equal(R.u.publish.count, NEV);
    kr_str keys[NEV];
    kr_events_iter ei;
    kr_event_in e;
    kr_events_iter_init(&ei, &R, &S);
    for (int i = 0; i < NEV; i++) {
        assert_int_equal(kr_events_iter_next(&ei, &e), 1);
        keys[i] = e.key.content;
        assert_true(e.key.is_text);
    }
    assert_int_equal(kr_events_iter_next(&ei, &e), 0);
    for (int i = 0; i < NEV; i++) {
        char k[16];
        snprintf(k, sizeof k, "key-%d", i);
        str_eq(keys[i], k);
    }

    /* Indefinite events array and event arrays. */
    kr_buf_reset(&B);
    put_hex("a1 666576656e7473 9f 9f 4161 01 ff 9f f6 f6 05 ff ff");
    assert_int_equal(dec(KRAPPY_T_PUBLISH), KRAPPY_OK);
    assert_int_equal(R.u.publish.count, 2);
    kr_events_iter_init(&ei, &R, &S);
    assert_int_equal(kr_events_iter_next(&ei, &e), 1);
    str_eq(e.key.content, "a");
    assert_int_equal(kr_events_iter_next(&ei, &e), 1);
    assert_true(e.tombstone);
    assert_true(e.has_ts);
    assert_int_equal(e.ts, 5);
    assert_int_equal(kr_events_iter_next(&ei, &e), 0);

    /* Indefinite enumerations compare by content. */
    kr_buf_reset(&B);
    put_hex("a2 666576656e7473 81 82 f6 01 6361636b 7f 6273 79 626e63 ff");
    assert_int_equal(dec(KRAPPY_T_PUBLISH), KRAPPY_OK);
    assert_int_equal(R.u.publish.ack, KR_ACK_SYNC);
}

/* Scratch that cannot hold the joined strings: NOMEM, not a crash. */
static void test_scratch_nomem(void **state)
{
    (void)state;
    kr_buf small;
    kr_buf_init(&small, 4);
    put_hex("a2 65746f706963 7f 636f7264 63657273 ff 626964 6170");
    assert_int_equal(
        kr_req_decode(KRAPPY_T_PRODUCER_REGISTER, B.data, B.len, &small, &R, M, sizeof M),
        KRAPPY_E_NOMEM);
    kr_buf_free(&small);
    /* Without indefinite strings scratch is not touched. */
    kr_buf_init(&small, 0);
    kr_buf_reset(&B);
    kr_enc_producer_register(&B, NOCID, "orders", "p");
    assert_int_equal(
        kr_req_decode(KRAPPY_T_PRODUCER_REGISTER, B.data, B.len, &small, &R, M, sizeof M),
        KRAPPY_OK);
    assert_null(small.data);
    kr_buf_free(&small);
    /* A NULL message buffer is fine. */
    assert_int_equal(kr_req_decode(KRAPPY_T_POLL, B.data, B.len, &S, &R, NULL, 0), KRAPPY_OK);
    assert_int_equal(dech(KRAPPY_T_PING, "ff"), KRAPPY_E_BAD_PAYLOAD);
    assert_int_equal(kr_req_decode(KRAPPY_T_PING, B.data, B.len, &S, &R, NULL, 0),
                     KRAPPY_E_BAD_PAYLOAD);
    /* A tiny message buffer is truncated, NUL-terminated. */
    char tiny[8];
    assert_int_equal(kr_req_decode(KRAPPY_T_PING, B.data, B.len, &S, &R, tiny, sizeof tiny),
                     KRAPPY_E_BAD_PAYLOAD);
    assert_int_equal(strlen(tiny), 7);
}

/* ---- allocation failures ---- */

/* Payloads whose decoding joins indefinite-length strings into scratch
 * (the only allocation of decoding): a PUBLISH with chunked keys, one in
 * the single form, a PRODUCER_REGISTER with a chunked topic. */
static const struct {
    uint32_t type;
    const char *hex;
} af_payloads[] = {
    {KRAPPY_T_PUBLISH, "a2 66 6576656e7473 82 82 7f 62 6162 62 6364 ff 01 82 5f 41 01 41 02 ff 02"
                       "   63 61636b 7f 62 7772 63 697465 ff"},
    {KRAPPY_T_PUBLISH, "a2 63 6b6579 7f 61 6b 62 6579 ff 65 76616c7565 f5"},
    {KRAPPY_T_PRODUCER_REGISTER, "a2 65 746f706963 7f 63 6f7264 63 657273 ff 62 6964 61 70"},
};

/* Decode each payload with a fresh scratch (so joining allocates) and walk
 * a PUBLISH's events. A refusal is KRAPPY_E_NOMEM with a message. */
static int decode_all(void *arg)
{
    (void)arg;
    int rc = 0;
    for (size_t i = 0; i < sizeof af_payloads / sizeof af_payloads[0] && rc == 0; i++) {
        uint8_t p[128];
        size_t n = unhex(af_payloads[i].hex, p);
        kr_buf scratch;
        kr_buf_init(&scratch, 1u << 20);
        krappy_err e = kr_req_decode(af_payloads[i].type, p, n, &scratch, &R, M, sizeof M);
        if (e == KRAPPY_E_NOMEM) {
            expect_msg("out of memory");
            rc = 1;
        } else {
            assert_int_equal(e, KRAPPY_OK);
            if (af_payloads[i].type == KRAPPY_T_PUBLISH) {
                kr_events_iter it;
                kr_event_in ev;
                uint64_t k = 0;
                kr_events_iter_init(&it, &R, &scratch);
                while (kr_events_iter_next(&it, &ev) == 1) {
                    assert_true(ev.key.present);
                    assert_int_equal(ev.key.content.len, i == 0 && k == 1 ? 2 : i == 0 ? 4 : 3);
                    k++;
                }
                assert_int_equal(k, R.u.publish.count);
            } else {
                assert_int_equal(R.u.producer_register.topic.len, 6);
                assert_memory_equal(R.u.producer_register.topic.ptr, "orders", 6);
            }
        }
        kr_buf_free(&scratch);
    }
    return rc;
}

/* Encode a request and replies into a fresh buffer: a refused growth
 * shows as `failed`, which the caller checks once at the end. */
static int encode_all(void *arg)
{
    (void)arg;
    kr_buf b;
    kr_buf_init(&b, 1u << 20);
    static const uint8_t value[300] = {0x59, 0x01, 0x29}; /* bytes(297) */
    kr_event_out_spec ev[40];
    for (size_t i = 0; i < 40; i++)
        ev[i] = (kr_event_out_spec){
            .key = "key", .key_len = 3, .key_is_text = true, .value = value, .value_len = 300};
    kr_enc_publish(&b, cid(1), KR_ACK_SYNC, ev, 40);
    kr_enc_error(&b, cid(2), KRAPPY_E_INVALID_ARGUMENT, "event 3 is too large", NULL);
    kr_enc_ok_hello(&b, cid(3), 1, "krappyd", 1u << 24, 10000);
    int rc = b.failed ? 1 : 0;
    if (rc == 0)
        assert_true(b.len > 40 * 300);
    kr_buf_free(&b);
    return rc;
}

static void test_allocation_failures(void **state)
{
    (void)state;
    assert_int_equal(alloc_fail_each(decode_all, NULL, false, 100), 3);
    assert_true(alloc_fail_each(encode_all, NULL, false, 100) >= 2);
}

/* ---- replies ---- */
/* ---- replies ---- */

static kr_reply reply(uint32_t type)
{
    kr_reply r;
    assert_false(B.failed);
    assert_int_equal(kr_reply_decode(type, B.data, B.len, &r), 0);
    assert_int_equal(r.type, type);
    return r;
}

static void find_text(const kr_reply *r, const char *field, const char *want)
{
    kr_cbor_item v;
    assert_int_equal(kr_cbor_map_find(&r->map, field, &v), 1);
    if (!kr_cbor_text_eq(&v, want))
        fail_msg("field %s is not \"%s\"", field, want);
}

static uint64_t get_uint(const kr_reply *r, const char *field)
{
    uint64_t v = 0;
    if (!kr_reply_uint(r, field, &v))
        fail_msg("no uint field %s", field);
    return v;
}

static void test_reply_error(void **state)
{
    (void)state;
    kr_error_extra x = {.has_range = true,
                        .first = 10,
                        .next = 20,
                        .has_versions = true,
                        .has_index = true,
                        .index = 3};
    kr_enc_error(&B, cid(5), KRAPPY_E_OFFSET_OUT_OF_RANGE, "offset 25 is past next 20", &x);
    kr_reply r = reply(KRAPPY_T_ERROR);
    assert_true(r.cid.set);
    assert_int_equal(r.cid.v, 5);
    kr_error_in e;
    assert_int_equal(kr_reply_error(&r, &e), 0);
    assert_int_equal(e.code, KRAPPY_E_OFFSET_OUT_OF_RANGE);
    str_eq(e.message, "offset 25 is past next 20");
    assert_true(e.has_range);
    assert_int_equal(e.first, 10);
    assert_int_equal(e.next, 20);
    assert_int_equal(get_uint(&r, "index"), 3);
    kr_cbor_item v, one;
    assert_int_equal(kr_cbor_map_find(&r.map, "versions", &v), 1);
    assert_int_equal(v.kind, KR_CBOR_ARRAY);
    assert_int_equal(v.u, 1);
    kr_cbor_iter it;
    kr_cbor_iter_init(&it, &v);
    assert_int_equal(kr_cbor_iter_next(&it, &one), 1);
    assert_int_equal(one.u, 1);
    /* cid comes first. */
    assert_memory_equal(B.data,
                        "\xa7\x63"
                        "cid\x05",
                        6);

    kr_buf_reset(&B);
    kr_enc_error(&B, NOCID, KRAPPY_E_BAD_FRAME, "frame size 2 is below 4", NULL);
    uint8_t want[64];
    size_t n = unhex("a2 64636f6465 01 676d657373616765 77 6672616d652073697a65203220697320"
                     "62656c6f772034",
                     want);
    assert_int_equal(B.len, n);
    assert_memory_equal(B.data, want, n);
    r = reply(KRAPPY_T_ERROR);
    assert_false(r.cid.set);
    assert_int_equal(kr_reply_error(&r, &e), 0);
    assert_int_equal(e.code, 1);
    assert_false(e.has_range);

    /* No code: -1. */
    kr_buf_reset(&B);
    kr_enc_ok_empty(&B, NOCID);
    r = reply(KRAPPY_T_ERROR);
    assert_int_equal(kr_reply_error(&r, &e), -1);
}

static void test_reply_ok_variants(void **state)
{
    (void)state;
    kr_enc_ok_empty(&B, cid(1));
    kr_reply r = reply(KRAPPY_T_OK);
    assert_true(r.cid.set);
    assert_int_equal(r.map.u, 1);
    kr_buf_reset(&B);
    kr_enc_ok_empty(&B, NOCID);
    assert_int_equal(B.len, 1);

    kr_buf_reset(&B);
    kr_enc_ok_hello(&B, cid(2), 1, "krappyd 0.1.0", 16777216, 10000);
    r = reply(KRAPPY_T_OK);
    assert_int_equal(r.cid.v, 2);
    assert_int_equal(get_uint(&r, "version"), 1);
    find_text(&r, "server", "krappyd 0.1.0");
    assert_int_equal(get_uint(&r, "max_frame"), 16777216);
    assert_int_equal(get_uint(&r, "max_events"), 10000);

    kr_str topic = {(const uint8_t *)"orders", 6};
    kr_str group = {(const uint8_t *)"billing", 7};
    kr_str member = {(const uint8_t *)"m-7", 3};
    kr_buf_reset(&B);
    kr_enc_ok_producer(&B, NOCID, &topic, 42);
    r = reply(KRAPPY_T_OK);
    find_text(&r, "topic", "orders");
    assert_int_equal(get_uint(&r, "next"), 42);

    kr_buf_reset(&B);
    kr_enc_ok_consumer(&B, cid(3), &topic, &group, &member, 17);
    r = reply(KRAPPY_T_OK);
    find_text(&r, "topic", "orders");
    find_text(&r, "group", "billing");
    find_text(&r, "member", "m-7");
    assert_int_equal(get_uint(&r, "cursor"), 17);

    kr_buf_reset(&B);
    kr_enc_ok_publish(&B, cid(1), 0, 2);
    uint8_t want[32];
    size_t n = unhex("a3 63636964 01 656669727374 00 65636f756e74 02", want);
    assert_int_equal(B.len, n);
    assert_memory_equal(B.data, want, n);
    r = reply(KRAPPY_T_OK);
    assert_int_equal(get_uint(&r, "first"), 0);
    assert_int_equal(get_uint(&r, "count"), 2);

    const uint64_t ign[] = {4, 8};
    kr_buf_reset(&B);
    kr_enc_ok_ack(&B, NOCID, 100, ign, 2);
    r = reply(KRAPPY_T_OK);
    assert_int_equal(get_uint(&r, "cursor"), 100);
    kr_cbor_item v;
    assert_int_equal(kr_cbor_map_find(&r.map, "ignored", &v), 1);
    assert_int_equal(v.kind, KR_CBOR_ARRAY);
    assert_int_equal(v.u, 2);
    kr_buf_reset(&B);
    kr_enc_ok_ack(&B, NOCID, 100, NULL, 0);
    r = reply(KRAPPY_T_OK);
    assert_int_equal(kr_cbor_map_find(&r.map, "ignored", &v), 0);

    /* TOPICS */
    kr_str t2 = {(const uint8_t *)"logs", 4};
    kr_buf_reset(&B);
    kr_enc_ok_topics_begin(&B, cid(4), 2);
    kr_enc_topic(&B, &topic, 0, 10, NULL);
    kr_enc_topic(&B, &t2, 5, 7, NULL);
    r = reply(KRAPPY_T_OK);
    assert_int_equal(kr_cbor_map_find(&r.map, "topics", &v), 1);
    assert_int_equal(v.u, 2);
    kr_cbor_iter it;
    kr_cbor_item t;
    kr_cbor_iter_init(&it, &v);
    assert_int_equal(kr_cbor_iter_next(&it, &t), 1);
    kr_reply sub = {.map = t};
    find_text(&sub, "name", "orders");
    assert_int_equal(get_uint(&sub, "first"), 0);
    assert_int_equal(get_uint(&sub, "next"), 10);
    assert_int_equal(kr_cbor_iter_next(&it, &t), 1);
    sub.map = t;
    find_text(&sub, "name", "logs");
    assert_int_equal(get_uint(&sub, "first"), 5);
    assert_int_equal(kr_cbor_iter_next(&it, &t), 0);

    /* STATS */
    kr_buf_reset(&B);
    kr_enc_ok_stats_begin(&B, NOCID, &topic, 1, 2, 3, 4, 9, 1);
    kr_enc_group_stats(&B, &group, 5, 6, 7, 8);
    r = reply(KRAPPY_T_OK);
    find_text(&r, "topic", "orders");
    assert_int_equal(get_uint(&r, "first"), 1);
    assert_int_equal(get_uint(&r, "next"), 2);
    assert_int_equal(get_uint(&r, "bytes"), 3);
    assert_int_equal(get_uint(&r, "keys"), 4);
    assert_int_equal(get_uint(&r, "producers"), 9);
    assert_int_equal(kr_cbor_map_find(&r.map, "groups", &v), 1);
    kr_cbor_iter_init(&it, &v);
    assert_int_equal(kr_cbor_iter_next(&it, &t), 1);
    sub.map = t;
    find_text(&sub, "group", "billing");
    assert_int_equal(get_uint(&sub, "cursor"), 5);
    assert_int_equal(get_uint(&sub, "pending"), 6);
    assert_int_equal(get_uint(&sub, "lag"), 7);
    assert_int_equal(get_uint(&sub, "members"), 8);
}

static void test_reply_events(void **state)
{
    (void)state;
    kr_str k1 = {(const uint8_t *)"\x62k1", 3};
    kr_str v1 = {(const uint8_t *)"\x82\x01\x02", 3};
    kr_str knull = {(const uint8_t *)"\xf6", 1};
    kr_str vnull = {(const uint8_t *)"\xf6", 1};
    kr_str h = {(const uint8_t *)"\xa1\x61h\x41x", 5};
    kr_enc_events_begin(&B, cid(9), 3);
    kr_enc_event(&B, 10, 1000, &k1, &v1, NULL);
    kr_enc_event(&B, 11, 1001, &knull, &vnull, &h);
    kr_enc_event(&B, 12, 1002, NULL, NULL, NULL);
    kr_enc_events_end(&B, 13);
    kr_reply r = reply(KRAPPY_T_EVENTS);
    assert_int_equal(r.cid.v, 9);
    assert_int_equal(get_uint(&r, "next"), 13);
    kr_cbor_item evs, ev;
    assert_int_equal(kr_cbor_map_find(&r.map, "events", &evs), 1);
    assert_int_equal(evs.u, 3);
    kr_cbor_iter it;
    kr_event_view view;
    kr_cbor_iter_init(&it, &evs);

    assert_int_equal(kr_cbor_iter_next(&it, &ev), 1);
    assert_int_equal(kr_event_view_read(&ev, &view), 0);
    assert_int_equal(view.offset, 10);
    assert_int_equal(view.ts, 1000);
    assert_true(kr_cbor_text_eq(&view.key, "k1"));
    assert_int_equal(view.value.raw_len, 3);
    assert_memory_equal(view.value.raw, "\x82\x01\x02", 3);
    assert_false(view.has_headers);

    assert_int_equal(kr_cbor_iter_next(&it, &ev), 1);
    assert_int_equal(kr_event_view_read(&ev, &view), 0);
    assert_int_equal(view.offset, 11);
    assert_int_equal(view.key.kind, KR_CBOR_NULL);
    assert_int_equal(view.value.kind, KR_CBOR_NULL);
    assert_true(view.has_headers);
    assert_int_equal(view.headers.raw_len, 5);
    assert_memory_equal(view.headers.raw, "\xa1\x61h\x41x", 5);

    assert_int_equal(kr_cbor_iter_next(&it, &ev), 1);
    assert_int_equal(kr_event_view_read(&ev, &view), 0);
    assert_int_equal(view.key.kind, KR_CBOR_NULL);
    assert_int_equal(kr_cbor_iter_next(&it, &ev), 0);

    /* An empty EVENTS. */
    kr_buf_reset(&B);
    kr_enc_events_begin(&B, NOCID, 0);
    kr_enc_events_end(&B, 7);
    uint8_t want[32];
    size_t n = unhex("a2 666576656e7473 80 646e657874 07", want);
    assert_int_equal(B.len, n);
    assert_memory_equal(B.data, want, n);

    /* Not delivered events. */
    static const char *const bad[] = {
        "83 01 02 f6",          /* 3 items */
        "86 01 02 f6 f6 a0 00", /* 6 items */
        "84 6161 02 f6 f6",     /* offset not uint */
        "84 01 20 f6 f6",       /* ts not uint */
        "84 01 02 01 f6",       /* key not bytes/text/null */
        "85 01 02 f6 f6 80",    /* headers not a map */
        "a0",
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        uint8_t buf[32];
        kr_cbor_item x;
        size_t bn = unhex(bad[i], buf);
        assert_int_equal(kr_cbor_read_exact(buf, bn, &x), 0);
        if (kr_event_view_read(&x, &view) != -1)
            fail_msg("%s read as an event", bad[i]);
        if (kr_event_view_parse(buf, bn, &view) != -1)
            fail_msg("%s parsed as an event", bad[i]);
    }
    uint8_t ok[32];
    kr_cbor_item x;
    size_t on = unhex("9f 01 02 5f 4161 ff bf ff ff", ok);
    assert_int_equal(kr_cbor_read_exact(ok, on, &x), 0);
    assert_int_equal(kr_event_view_read(&x, &view), 0);
    assert_int_equal(view.value.kind, KR_CBOR_MAP);
    size_t used = 0;
    assert_int_equal(kr_event_view_parse_len(ok, on, &view, &used), 0);
    assert_int_equal(used, on); /* the break included */
    assert_int_equal(view.value.kind, KR_CBOR_MAP);
    assert_false(view.has_headers);
    /* Every shorter prefix is malformed, not an event. */
    for (size_t i = 0; i < on; i++)
        if (kr_event_view_parse(ok, i, &view) != -1)
            fail_msg("the first %zu bytes parsed as an event", i);
}

/* kr_event_view_parse reads what kr_event_view_read reads, in one pass. */
static void test_event_view_parse(void **state)
{
    (void)state;
    uint8_t buf[64];
    size_t n = unhex(
        "85 1b0000000200000000 07 6261 62 5818 000102030405060708090a0b0c0d0e0f1011121314151617"
        " a1 6168 4178 ff",
        buf);
    kr_event_view a, b;
    kr_cbor_item x;
    assert_int_equal(kr_cbor_read(buf, n, &x), 0);
    assert_int_equal(kr_event_view_read(&x, &a), 0);
    assert_int_equal(kr_event_view_parse(buf, n, &b), 0); /* the trailing byte is not read */
    size_t used = 0;
    assert_int_equal(kr_event_view_parse_len(buf, n, &b, &used), 0);
    assert_int_equal(used, x.raw_len);
    assert_int_equal(used, n - 1);
    assert_int_equal(b.offset, 1ull << 33);
    assert_int_equal(b.ts, 7);
    assert_int_equal(b.key.kind, KR_CBOR_TEXT);
    assert_true(b.key.raw == a.key.raw && b.key.raw_len == a.key.raw_len);
    assert_true(b.value.raw == a.value.raw && b.value.raw_len == a.value.raw_len);
    assert_int_equal(b.value.raw_len, 26);
    assert_true(b.has_headers);
    assert_true(b.headers.raw == a.headers.raw && b.headers.raw_len == a.headers.raw_len);
    assert_int_equal(kr_event_view_parse(buf, 0, &b), -1);
}

/* kr_enc_value writes one reservation: byte for byte what the items are,
 * and its largest fixed part (every number 9 bytes, every raw item null)
 * fits a buffer of exactly that size. */
static void test_reply_value_exact(void **state)
{
    (void)state;
    kr_str none = {NULL, 0};
    kr_cid big = {.set = true, .v = UINT64_MAX};
    kr_buf b;
    kr_buf_init(&b, 63);
    kr_enc_value(&b, big, &none, UINT64_MAX, UINT64_MAX, &none, &none);
    assert_false(b.failed);
    uint8_t want[80];
    size_t n = unhex("a6 63636964 1bffffffffffffffff 636b6579 f6"
                     " 666f6666736574 1bffffffffffffffff 627473 1bffffffffffffffff"
                     " 6576616c7565 f6 6768656164657273 f6",
                     want);
    assert_int_equal(n, 63);
    assert_int_equal(b.len, n);
    assert_memory_equal(b.data, want, n);
    kr_buf_free(&b);

    kr_str k = {(const uint8_t *)"\x41k", 2};
    kr_str v = {(const uint8_t *)"\x18\x2a", 2};
    kr_buf_reset(&B);
    kr_enc_value(&B, NOCID, &k, 1, 2, &v, NULL);
    n = unhex("a4 636b6579 416b 666f6666736574 01 627473 02 6576616c7565 182a", want);
    assert_int_equal(B.len, n);
    assert_memory_equal(B.data, want, n);
}

static void test_reply_value_entries(void **state)
{
    (void)state;
    kr_str k = {(const uint8_t *)"\x41k", 2};
    kr_str v = {(const uint8_t *)"\x18\x2a", 2};
    kr_str h = {(const uint8_t *)"\xa0", 1};
    kr_enc_value(&B, cid(3), &k, 5, 6, &v, NULL);
    kr_reply r = reply(KRAPPY_T_VALUE);
    kr_cbor_item x;
    assert_int_equal(kr_cbor_map_find(&r.map, "key", &x), 1);
    assert_int_equal(x.kind, KR_CBOR_BYTES);
    assert_int_equal(get_uint(&r, "offset"), 5);
    assert_int_equal(get_uint(&r, "ts"), 6);
    assert_int_equal(get_uint(&r, "value"), 42);
    assert_int_equal(kr_cbor_map_find(&r.map, "headers", &x), 0);
    assert_int_equal(r.map.u, 5);

    kr_buf_reset(&B);
    kr_enc_value(&B, NOCID, &k, 5, 6, &v, &h);
    r = reply(KRAPPY_T_VALUE);
    assert_int_equal(kr_cbor_map_find(&r.map, "headers", &x), 1);
    assert_int_equal(x.kind, KR_CBOR_MAP);

    kr_str cur = {(const uint8_t *)"\x00\x01", 2};
    kr_buf_reset(&B);
    kr_enc_entries_begin(&B, cid(4), 2, true);
    kr_enc_entry(&B, &k, 1, 2, &v);
    kr_enc_entry(&B, &k, 3, 4, &v);
    kr_enc_entries_end(&B, 99, &cur);
    r = reply(KRAPPY_T_ENTRIES);
    assert_int_equal(r.cid.v, 4);
    assert_int_equal(get_uint(&r, "snapshot"), 99);
    assert_int_equal(kr_cbor_map_find(&r.map, "cursor", &x), 1);
    assert_int_equal(x.kind, KR_CBOR_BYTES);
    assert_int_equal(x.str_len, 2);
    assert_memory_equal(x.str, "\x00\x01", 2);
    assert_int_equal(kr_cbor_map_find(&r.map, "entries", &x), 1);
    assert_int_equal(x.u, 2);
    kr_cbor_iter it, eit;
    kr_cbor_item e, part;
    kr_cbor_iter_init(&it, &x);
    assert_int_equal(kr_cbor_iter_next(&it, &e), 1);
    assert_int_equal(e.u, 4);
    kr_cbor_iter_init(&eit, &e);
    assert_int_equal(kr_cbor_iter_next(&eit, &part), 1);
    assert_int_equal(part.kind, KR_CBOR_BYTES);
    assert_int_equal(kr_cbor_iter_next(&eit, &part), 1);
    assert_int_equal(part.u, 1);
    assert_int_equal(kr_cbor_iter_next(&eit, &part), 1);
    assert_int_equal(part.u, 2);
    assert_int_equal(kr_cbor_iter_next(&eit, &part), 1);
    assert_int_equal(part.u, 42);

    kr_buf_reset(&B);
    kr_enc_entries_begin(&B, NOCID, 0, false);
    kr_enc_entries_end(&B, 0, NULL);
    r = reply(KRAPPY_T_ENTRIES);
    assert_int_equal(kr_cbor_map_find(&r.map, "cursor", &x), 0);
    assert_int_equal(r.map.u, 2);
}

static void test_reply_decode_malformed(void **state)
{
    (void)state;
    kr_reply r;
    static const char *const bad[] = {"ff", "80", "a1 01 02", "a0 00", "a1 6161", "01"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        uint8_t buf[16];
        size_t n = unhex(bad[i], buf);
        if (kr_reply_decode(KRAPPY_T_OK, buf, n, &r) != -1)
            fail_msg("reply %s accepted", bad[i]);
    }
    /* Empty payload: the empty map. */
    assert_int_equal(kr_reply_decode(KRAPPY_T_OK, NULL, 0, &r), 0);
    assert_int_equal(r.map.kind, KR_CBOR_MAP);
    assert_false(r.cid.set);
    uint64_t v;
    assert_int_equal(kr_reply_uint(&r, "next", &v), 0);
    /* A cid of another type is not a cid. */
    uint8_t buf[16];
    size_t n = unhex("a1 63636964 6178", buf);
    assert_int_equal(kr_reply_decode(KRAPPY_T_OK, buf, n, &r), 0);
    assert_false(r.cid.set);
}

/* Section 7: `idempotent` on PRODUCER_REGISTER, `seq` on PUBLISH, and
 * the replies that answer them. */
static void test_idempotent_fields(void **state)
{
    (void)state;
    kr_enc_producer_register_idempotent(&B, cid(2), "orders", "p-1");
    assert_int_equal(dec(KRAPPY_T_PRODUCER_REGISTER), KRAPPY_OK);
    assert_true(R.u.producer_register.idempotent);
    str_eq(R.u.producer_register.id, "p-1");
    kr_buf_reset(&B);
    kr_enc_producer_register(&B, NOCID, "orders", "p-1");
    assert_int_equal(dec(KRAPPY_T_PRODUCER_REGISTER), KRAPPY_OK);
    assert_false(R.u.producer_register.idempotent);

    /* false and null are "not idempotent"; anything else is refused. */
    kr_buf_reset(&B);
    kr_cbor_put_map(&B, 3);
    kt("topic", "t");
    kt("id", "i");
    kx("idempotent", "f4");
    assert_int_equal(dec(KRAPPY_T_PRODUCER_REGISTER), KRAPPY_OK);
    assert_false(R.u.producer_register.idempotent);
    kr_buf_reset(&B);
    kr_cbor_put_map(&B, 3);
    kt("topic", "t");
    kt("id", "i");
    kn("idempotent");
    assert_int_equal(dec(KRAPPY_T_PRODUCER_REGISTER), KRAPPY_OK);
    assert_false(R.u.producer_register.idempotent);
    kr_buf_reset(&B);
    kr_cbor_put_map(&B, 3);
    kt("topic", "t");
    kt("id", "i");
    ku("idempotent", 1);
    assert_int_equal(dec(KRAPPY_T_PRODUCER_REGISTER), KRAPPY_E_INVALID_ARGUMENT);
    expect_msg("'idempotent' must be true or false, not an unsigned integer");

    /* seq: judged when given, required by nobody here. */
    uint8_t one[] = {0x01};
    kr_event_out_spec ev = {.key = "k", .key_len = 1, .value = one, .value_len = 1};
    kr_buf_reset(&B);
    kr_enc_publish_seq(&B, cid(9), KR_ACK_SYNC, 40, &ev, 1);
    assert_int_equal(dec(KRAPPY_T_PUBLISH), KRAPPY_OK);
    assert_true(R.u.publish.has_seq);
    assert_int_equal(R.u.publish.seq, 40);
    assert_int_equal(R.u.publish.ack, KR_ACK_SYNC);
    assert_int_equal(R.u.publish.count, 1);
    kr_buf_reset(&B);
    kr_enc_publish(&B, NOCID, KR_ACK_WRITE, &ev, 1);
    assert_int_equal(dec(KRAPPY_T_PUBLISH), KRAPPY_OK);
    assert_false(R.u.publish.has_seq);
    kr_buf_reset(&B);
    kr_cbor_put_map(&B, 2);
    kx("value", "01");
    kt("seq", "7");
    assert_int_equal(dec(KRAPPY_T_PUBLISH), KRAPPY_E_INVALID_ARGUMENT);
    expect_msg("'seq' must be an unsigned integer, not a text string");
    kr_buf_reset(&B);
    kr_cbor_put_map(&B, 2);
    kx("value", "01");
    kn("seq");
    assert_int_equal(dec(KRAPPY_T_PUBLISH), KRAPPY_OK);
    assert_false(R.u.publish.has_seq);

    /* Replies. */
    kr_str topic = {(const uint8_t *)"orders", 6};
    kr_buf_reset(&B);
    kr_enc_ok_producer_idempotent(&B, cid(2), &topic, 17, 3, 250);
    kr_reply r = reply(KRAPPY_T_OK);
    assert_int_equal(get_uint(&r, "next"), 17);
    assert_int_equal(get_uint(&r, "epoch"), 3);
    assert_int_equal(get_uint(&r, "seq"), 250);
    kr_buf_reset(&B);
    kr_enc_ok_publish_duplicate(&B, NOCID, 100, 5);
    r = reply(KRAPPY_T_OK);
    assert_int_equal(get_uint(&r, "first"), 100);
    assert_int_equal(get_uint(&r, "count"), 5);
    kr_cbor_item d;
    assert_int_equal(kr_cbor_map_find(&r.map, "duplicate", &d), 1);
    assert_int_equal(d.kind, KR_CBOR_TRUE);
    kr_buf_reset(&B);
    kr_enc_ok_publish(&B, NOCID, 100, 5);
    r = reply(KRAPPY_T_OK);
    assert_int_equal(kr_cbor_map_find(&r.map, "duplicate", &d), 0);

    kr_error_extra x = {.has_expected = true, .expected = 12};
    kr_buf_reset(&B);
    kr_enc_error(&B, cid(4), KRAPPY_E_OUT_OF_ORDER_SEQUENCE, "expected 12", &x);
    r = reply(KRAPPY_T_ERROR);
    kr_error_in e;
    assert_int_equal(kr_reply_error(&r, &e), 0);
    assert_int_equal(e.code, 16);
    assert_true(e.has_expected);
    assert_int_equal(e.expected, 12);
    assert_false(e.has_range);
}

static void test_error_names(void **state)
{
    (void)state;
    assert_string_equal(krappy_err_name(KRAPPY_E_FRAME_TOO_LARGE), "FRAME_TOO_LARGE");
    assert_string_equal(krappy_err_name(KRAPPY_OK), "OK");
    assert_string_equal(krappy_err_name(KRAPPY_E_SHUTTING_DOWN), "SHUTTING_DOWN");
    assert_string_equal(krappy_err_name(15), "FENCED");
    assert_string_equal(krappy_err_name(16), "OUT_OF_ORDER_SEQUENCE");
    assert_string_equal(krappy_err_name(17), "NOT_LEADER");
    assert_int_equal(KRAPPY_E_WIRE_MAX, 17);
    assert_string_equal(krappy_err_name(KRAPPY_E_IO), "IO");
    assert_string_equal(krappy_err_name(12345), "UNKNOWN");
    assert_string_equal(krappy_strerror(KRAPPY_E_FRAME_TOO_LARGE), "frame too large");
    assert_string_equal(krappy_strerror(-1), "unknown error");
    for (int e = 1; e <= KRAPPY_E_WIRE_MAX; e++) {
        assert_string_not_equal(krappy_err_name(e), "UNKNOWN");
        assert_string_not_equal(krappy_strerror(e), "unknown error");
    }
    assert_string_equal(krappy_type_name(KRAPPY_T_HELLO), "HELLO");
    assert_string_equal(krappy_type_name(KRAPPY_T_ERROR), "ERROR");
    assert_null(krappy_type_name(0));
    assert_string_equal(krappy_type_name(13), "CLUSTER");
    assert_null(krappy_type_name(50));
    for (unsigned t = 1; t <= KRAPPY_T_REQUEST_MAX; t++)
        assert_true(krappy_type_name(t) != NULL);
    assert_string_equal(krappy_type_name(KRAPPY_T_GROUP_SEEK), "GROUP_SEEK");
    assert_int_equal(krappy_err_closes(KRAPPY_E_BAD_FRAME), 1);
    assert_int_equal(krappy_err_closes(KRAPPY_E_FRAME_TOO_LARGE), 1);
    assert_int_equal(krappy_err_closes(KRAPPY_E_UNAUTHENTICATED), 1);
    assert_int_equal(krappy_err_closes(KRAPPY_E_UNSUPPORTED_VERSION), 1);
    assert_int_equal(krappy_err_closes(KRAPPY_E_SHUTTING_DOWN), 1);
    assert_int_equal(krappy_err_closes(KRAPPY_E_BAD_PAYLOAD), 0);
    assert_int_equal(krappy_err_closes(KRAPPY_E_BUSY), 0);
    assert_int_equal(krappy_err_closes(KRAPPY_E_INVALID_ARGUMENT), 0);
    assert_int_equal(krappy_err_closes(KRAPPY_E_FENCED), 0);
    assert_int_equal(krappy_err_closes(KRAPPY_E_OUT_OF_ORDER_SEQUENCE), 0);
    assert_int_equal(krappy_err_closes(KRAPPY_E_NOT_LEADER), 0);
    assert_int_equal(krappy_err_closes(KRAPPY_OK), 0);
}

/* The PUBLISH reply is written by hand into one reservation: byte for byte
 * the map the generic writer makes, at every width of every number. */
static void test_ok_publish_every_width(void **state)
{
    (void)state;
    static const uint64_t widths[] = {0,     23,    24,         255,        256,
                                      65535, 65536, UINT32_MAX, 1ull << 32, UINT64_MAX};
    enum { NW = sizeof widths / sizeof widths[0] };
    kr_buf want;
    kr_buf_init(&want, 1024);
    for (int i = 0; i < NW; i++) {
        for (int dup = 0; dup < 2; dup++) {
            for (int has_cid = 0; has_cid < 2; has_cid++) {
                uint64_t first = widths[i], count = widths[NW - 1 - i];
                uint64_t c = widths[(i + 3) % NW];
                kr_buf_reset(&want);
                kr_cbor_put_map(&want, 2u + (unsigned)dup + (unsigned)has_cid);
                if (has_cid) {
                    kr_cbor_put_cstr(&want, "cid");
                    kr_cbor_put_uint(&want, c);
                }
                kr_cbor_put_cstr(&want, "first");
                kr_cbor_put_uint(&want, first);
                kr_cbor_put_cstr(&want, "count");
                kr_cbor_put_uint(&want, count);
                if (dup) {
                    kr_cbor_put_cstr(&want, "duplicate");
                    kr_cbor_put_bool(&want, true);
                }
                kr_buf_reset(&B);
                put_hex("ab"); /* what was there before stays */
                kr_cid cid = {.set = has_cid != 0, .v = c};
                if (dup)
                    kr_enc_ok_publish_duplicate(&B, cid, first, count);
                else
                    kr_enc_ok_publish(&B, cid, first, count);
                assert_false(B.failed);
                assert_int_equal(B.len, want.len + 1);
                assert_int_equal(B.data[0], 0xab);
                assert_memory_equal(B.data + 1, want.data, want.len);
            }
        }
    }
    kr_buf_free(&want);

    /* A buffer without room fails whole, as every writer does. */
    kr_buf small;
    kr_buf_init(&small, 8);
    kr_enc_ok_publish(&small, (kr_cid){.set = true, .v = UINT64_MAX}, 0, 1);
    assert_true(small.failed);
    assert_int_equal(small.len, 0);
    kr_buf_free(&small);
}

#define T(f) cmocka_unit_test_setup(f, test_setup)

int main(void)
{
    const struct CMUnitTest tests[] = {
        T(test_rt_producer_register),
        T(test_rt_consumer_register),
        T(test_rt_publish),
        T(test_publish_single_form),
        T(test_rt_poll),
        T(test_rt_ack),
        T(test_rt_get),
        T(test_rt_scan),
        T(test_rt_fetch),
        T(test_rt_hello),
        T(test_rt_ping_topics_stats),
        T(test_rt_admin),
        T(test_rt_cluster),
        T(test_rt_topic_config),
        T(test_bad_payload),
        T(test_unknown_type),
        T(test_topic_names),
        T(test_id_names),
        T(test_enums),
        T(test_limits),
        T(test_keys),
        T(test_publish_invalid),
        T(test_publish_events_one_pass),
        T(test_ack_invalid),
        T(test_hello),
        T(test_cid),
        T(test_peek_ack_none),
        T(test_nulls_duplicates_unknown),
        T(test_indefinite_strings),
        T(test_scratch_nomem),
        T(test_allocation_failures),
        T(test_reply_error),
        T(test_reply_ok_variants),
        T(test_reply_events),
        T(test_reply_value_entries),
        T(test_event_view_parse),
        T(test_reply_value_exact),
        T(test_reply_decode_malformed),
        T(test_ok_publish_every_width),
        T(test_idempotent_fields),
        T(test_error_names),
    };
    return cmocka_run_group_tests_name("msg", tests, group_setup, group_teardown);
}
