/*
 * tests/test_kafka_codec.c - the Kafka codec's primitives and API messages:
 * varints and lengths at their limits, what kcat (librdkafka 2.0) really
 * sent and accepted (tests/kafka_golden.h) decoded and re-encoded byte for
 * byte, hand-written bytes for versions kcat does not use, every API in
 * every advertised version round-tripped, truncation at every length,
 * unsupported keys and versions, encoder refusals and the arena's cap.
 * Record batches, codecs and the event mapping: test_kafka_records.c.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "kafka/codec.h"
#include "kafka_golden.h"

#define ARENA_MAX (1u << 20)

/* ---- primitives ---- */

static void check_varint(int32_t v, const uint8_t *bytes, size_t n)
{
    kr_buf b;
    kr_kafka_rd r;
    uint8_t tmp[5];

    kr_buf_init(&b, 64);
    kr_kafka_put_varint(&b, v);
    assert_int_equal(b.len, n);
    assert_memory_equal(b.data, bytes, n);
    assert_int_equal(kr_kafka_varint_size(v), n);
    assert_int_equal(kr_kafka_varint_write(tmp, v), n);
    assert_memory_equal(tmp, bytes, n);
    kr_kafka_rd_init(&r, bytes, n);
    assert_int_equal(kr_kafka_rd_varint(&r), v);
    assert_true(kr_kafka_rd_ok(&r));
    assert_int_equal(kr_kafka_rd_left(&r), 0);
    kr_buf_free(&b);
}

static void test_varints(void **state)
{
    (void)state;
    check_varint(0, (const uint8_t *)"\x00", 1);
    check_varint(-1, (const uint8_t *)"\x01", 1);
    check_varint(1, (const uint8_t *)"\x02", 1);
    check_varint(63, (const uint8_t *)"\x7e", 1);
    check_varint(-64, (const uint8_t *)"\x7f", 1);
    check_varint(64, (const uint8_t *)"\x80\x01", 2);
    check_varint(300, (const uint8_t *)"\xd8\x04", 2);
    check_varint(INT32_MAX, (const uint8_t *)"\xfe\xff\xff\xff\x0f", 5);
    check_varint(INT32_MIN, (const uint8_t *)"\xff\xff\xff\xff\x0f", 5);

    /* varlong: the extremes take 10 bytes. */
    kr_buf b;
    kr_kafka_rd r;
    kr_buf_init(&b, 64);
    int64_t longs[] = {0, -1, 1, INT64_MAX, INT64_MIN, 1700000000000LL, -1700000000000LL};
    for (size_t i = 0; i < sizeof longs / sizeof longs[0]; i++) {
        kr_buf_reset(&b);
        kr_kafka_put_varlong(&b, longs[i]);
        assert_int_equal(b.len, kr_kafka_varlong_size(longs[i]));
        uint8_t tmp[10];
        assert_int_equal(kr_kafka_varlong_write(tmp, longs[i]), b.len);
        assert_memory_equal(tmp, b.data, b.len);
        kr_kafka_rd_init(&r, b.data, b.len);
        assert_true(kr_kafka_rd_varlong(&r) == longs[i]);
        assert_true(kr_kafka_rd_ok(&r));
    }
    kr_buf_reset(&b);
    kr_kafka_put_varlong(&b, INT64_MIN);
    assert_int_equal(b.len, 10);

    /* unsigned varint */
    kr_buf_reset(&b);
    kr_kafka_put_uvarint(&b, UINT32_MAX);
    assert_int_equal(b.len, 5);
    kr_kafka_rd_init(&r, b.data, b.len);
    assert_true(kr_kafka_rd_uvarint(&r) == UINT32_MAX);
    kr_buf_free(&b);
}

/* Varints that are too long, overflow, or stop short: "bad varint" or
 * "truncated", and the reader is then empty and stays failed. */
static void test_bad_varints(void **state)
{
    (void)state;
    kr_kafka_rd r;

    /* six bytes for a 32-bit varint */
    kr_kafka_rd_init(&r, "\x80\x80\x80\x80\x80\x01", 6);
    assert_int_equal(kr_kafka_rd_varint(&r), 0);
    assert_string_equal(r.err, "bad varint");
    assert_int_equal(kr_kafka_rd_left(&r), 0);
    /* a fifth byte with bits above 32 */
    kr_kafka_rd_init(&r, "\xff\xff\xff\xff\x1f", 5);
    kr_kafka_rd_varint(&r);
    assert_string_equal(r.err, "bad varint");
    /* eleven bytes for a varlong */
    kr_kafka_rd_init(&r, "\x80\x80\x80\x80\x80\x80\x80\x80\x80\x80\x01", 11);
    kr_kafka_rd_varlong(&r);
    assert_string_equal(r.err, "bad varint");
    /* the tenth byte of a varlong may carry only one bit */
    kr_kafka_rd_init(&r, "\xff\xff\xff\xff\xff\xff\xff\xff\xff\x02", 10);
    kr_kafka_rd_varlong(&r);
    assert_string_equal(r.err, "bad varint");
    kr_kafka_rd_init(&r, "\xff\xff\xff\xff\xff\xff\xff\xff\xff\x01", 10);
    assert_true(kr_kafka_rd_varlong(&r) == INT64_MIN);
    assert_true(kr_kafka_rd_ok(&r));
    /* stops in the middle */
    kr_kafka_rd_init(&r, "\x80\x80", 2);
    kr_kafka_rd_varint(&r);
    assert_string_equal(r.err, "truncated");
    /* sticky: later reads fail quietly and keep the first reason */
    assert_int_equal(kr_kafka_rd_i32(&r), 0);
    assert_string_equal(r.err, "truncated");
}

static void test_lengths(void **state)
{
    (void)state;
    kr_kafka_rd r;
    kr_kafka_str s;
    kr_kafka_bytes b;

    kr_kafka_rd_init(&r,
                     "\x00\x03"
                     "abc",
                     5);
    s = kr_kafka_rd_str(&r, false);
    assert_int_equal(s.len, 3);
    assert_memory_equal(s.ptr, "abc", 3);
    /* null: allowed or not */
    kr_kafka_rd_init(&r, "\xff\xff", 2);
    s = kr_kafka_rd_str(&r, true);
    assert_int_equal(s.len, -1);
    assert_null(s.ptr);
    assert_true(kr_kafka_rd_ok(&r));
    kr_kafka_rd_init(&r, "\xff\xff", 2);
    kr_kafka_rd_str(&r, false);
    assert_false(kr_kafka_rd_ok(&r));
    /* -2 is never a length */
    kr_kafka_rd_init(&r, "\xff\xfe", 2);
    kr_kafka_rd_str(&r, true);
    assert_string_equal(r.err, "negative length");
    /* longer than what is left */
    kr_kafka_rd_init(&r,
                     "\x00\x04"
                     "abc",
                     5);
    kr_kafka_rd_str(&r, true);
    assert_false(kr_kafka_rd_ok(&r));
    kr_kafka_rd_init(&r,
                     "\x7f\xff\xff\xff"
                     "abc",
                     7);
    b = kr_kafka_rd_bytes(&r, true);
    assert_false(kr_kafka_rd_ok(&r));
    assert_int_equal(b.len, 0);
    /* the empty string is not null */
    kr_kafka_rd_init(&r, "\x00\x00\x00\x00", 4);
    b = kr_kafka_rd_bytes(&r, false);
    assert_int_equal(b.len, 0);
    assert_non_null(b.ptr);
    /* varint-length bytes */
    kr_kafka_rd_init(&r, "\x01\x06xyz", 5);
    b = kr_kafka_rd_vbytes(&r);
    assert_int_equal(b.len, -1);
    b = kr_kafka_rd_vbytes(&r);
    assert_int_equal(b.len, 3);
    assert_memory_equal(b.ptr, "xyz", 3);
    kr_kafka_rd_init(&r, "\x03", 1); /* -2 */
    kr_kafka_rd_vbytes(&r);
    assert_false(kr_kafka_rd_ok(&r));

    /* array counts against the least element size */
    kr_kafka_rd_init(&r,
                     "\x00\x00\x00\x02"
                     "12345678",
                     12);
    assert_int_equal(kr_kafka_rd_count(&r, false, 4), 2);
    kr_kafka_rd_init(&r,
                     "\x00\x00\x00\x03"
                     "12345678",
                     12);
    assert_int_equal(kr_kafka_rd_count(&r, false, 4), 0);
    assert_string_equal(r.err, "array count beyond the end of the input");
    kr_kafka_rd_init(&r, "\xff\xff\xff\xff", 4);
    assert_int_equal(kr_kafka_rd_count(&r, true, 4), -1);
    kr_kafka_rd_init(&r, "\xff\xff\xff\xff", 4);
    kr_kafka_rd_count(&r, false, 4);
    assert_false(kr_kafka_rd_ok(&r));
    kr_kafka_rd_init(&r, "\x80\x00\x00\x00", 4);
    kr_kafka_rd_count(&r, true, 1);
    assert_string_equal(r.err, "negative count");
}

static void test_writers(void **state)
{
    (void)state;
    kr_buf b;
    static const uint8_t want[] = {0xfe, 0x12, 0x34, 0x89, 0xab, 0xcd, 0xef, 0x00, 0x00,
                                   0x00, 0x00, 0x00, 0x00, 0x00, 0x07, 0xff, 0xff, 0x00,
                                   0x02, 'h',  'i',  0x00, 0x00, 0x00, 0x01, 'x'};
    kr_buf_init(&b, 1024);
    kr_kafka_put_i8(&b, -2);
    kr_kafka_put_i16(&b, 0x1234);
    kr_kafka_put_u32(&b, 0x89abcdefu);
    kr_kafka_put_i64(&b, 7);
    kr_kafka_put_cstr(&b, NULL);
    kr_kafka_put_cstr(&b, "hi");
    kr_kafka_put_bytes(&b, "x", 1);
    assert_false(b.failed);
    assert_int_equal(b.len, sizeof want);
    assert_memory_equal(b.data, want, sizeof want);
    kr_kafka_patch_be(&b, 1, 0xbeef, 2);
    assert_int_equal(b.data[1], 0xbe);
    assert_int_equal(b.data[2], 0xef);
    kr_kafka_patch_be(&b, b.len - 1, 0x1122, 2); /* out of range: ignored */
    assert_int_equal(b.data[b.len - 1], 'x');
    /* what the wire cannot carry */
    kr_kafka_put_str(&b, "", 40000);
    assert_true(b.failed);
    kr_buf_reset(&b);
    kr_kafka_put_bytes(&b, "", -2);
    assert_true(b.failed);
    kr_buf_free(&b);
}

static void test_error_names(void **state)
{
    (void)state;
    assert_string_equal(kr_kafka_err_name(KR_KAFKA_ERR_UNKNOWN_SERVER_ERROR),
                        "UNKNOWN_SERVER_ERROR");
    assert_string_equal(kr_kafka_err_name(KR_KAFKA_ERR_NONE), "NONE");
    assert_string_equal(kr_kafka_err_name(35), "UNSUPPORTED_VERSION");
    assert_string_equal(kr_kafka_err_name(KR_KAFKA_ERR_INVALID_RECORD), "INVALID_RECORD");
    assert_string_equal(kr_kafka_err_name(90), "PRODUCER_FENCED");
    assert_string_equal(kr_kafka_err_name(91), "UNKNOWN");
    assert_string_equal(kr_kafka_err_name(-2), "UNKNOWN");
    assert_string_equal(kr_kafka_err_name(INT16_MAX), "UNKNOWN");
}

static void test_arena(void **state)
{
    (void)state;
    kr_kafka_arena a;
    kr_kafka_arena_init(&a, 10000);
    uint8_t *p = kr_kafka_arena_alloc(&a, 3);
    uint64_t *q = kr_kafka_arena_alloc(&a, 16);
    assert_non_null(p);
    assert_non_null(q);
    assert_int_equal((uintptr_t)q % _Alignof(max_align_t), 0);
    assert_int_equal(q[0] | q[1], 0);
    assert_non_null(kr_kafka_arena_alloc(&a, 0));
    /* a block larger than the default, then the cap */
    assert_non_null(kr_kafka_arena_alloc(&a, 6000));
    assert_null(kr_kafka_arena_alloc(&a, 5000));
    assert_null(kr_kafka_arena_alloc(&a, SIZE_MAX));
    kr_kafka_arena_reset(&a);
    assert_int_equal(a.used, 0);
    assert_non_null(kr_kafka_arena_alloc(&a, 9000));
    kr_kafka_arena_free(&a);
    kr_kafka_arena_free(&a);
    kr_kafka_arena_free(NULL);
}

/* ---- the golden captures ---- */

static uint32_t be32(const uint8_t *p)
{
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

/* A capture that must exist. */
static const kafka_golden *capture(const char *scenario, int16_t api, int nth, int response)
{
    const kafka_golden *g = kafka_capture(scenario, api, nth, response);
    if (g == NULL)
        fail_msg("no capture %d of API %d in %s", nth, api, scenario);
    return g;
}

/* Decode the nth request of `api` captured in `scenario`. */
static void decode_capture(const char *scenario, int16_t api, int nth, kr_kafka_arena *a,
                           kr_kafka_request *req)
{
    char msg[256];
    const kafka_golden *g = capture(scenario, api, nth, 0);
    kr_kafka_status st = kr_kafka_request_decode(g->bytes, g->len, a, req, msg, sizeof msg);
    if (st != KR_KAFKA_OK)
        fail_msg("%s: %s", g->name, msg);
}

static bool str_is(kr_kafka_str s, const char *c)
{
    return s.len >= 0 && (size_t)s.len == strlen(c) && memcmp(s.ptr, c, (size_t)s.len) == 0;
}

/* The Metadata request of a scenario whose topic list has `n` entries (-1:
 * null, all topics; 1: topic "test"); librdkafka also asks for the brokers
 * alone (0), before or after, as timing has it. */
static void metadata_of(const char *scenario, int32_t n, kr_kafka_arena *a, kr_kafka_request *req)
{
    for (int nth = 0; kafka_capture(scenario, KR_KAFKA_METADATA, nth, 0) != NULL; nth++) {
        decode_capture(scenario, KR_KAFKA_METADATA, nth, a, req);
        if (req->u.metadata.topics.n == n) {
            if (n == 1)
                assert_true(str_is(req->u.metadata.topics.v[0], "test"));
            return;
        }
    }
    fail_msg("%s sent no Metadata request with %d topics", scenario, n);
}

/* Every capture decodes, and encodes back to exactly its bytes: the tables
 * agree with librdkafka on each version it used. */
static void test_golden_roundtrip(void **state)
{
    (void)state;
    kr_kafka_arena a;
    kr_buf out;
    char msg[256];
    size_t requests = 0, responses = 0;

    kr_kafka_arena_init(&a, ARENA_MAX);
    kr_buf_init(&out, 1u << 24);
    for (size_t i = 0; i < sizeof kafka_goldens / sizeof kafka_goldens[0]; i++) {
        const kafka_golden *g = &kafka_goldens[i];
        kr_kafka_status st;
        kr_kafka_arena_reset(&a);
        kr_buf_reset(&out);
        if (!g->response) {
            kr_kafka_request req;
            st = kr_kafka_request_decode(g->bytes, g->len, &a, &req, msg, sizeof msg);
            assert_int_equal(req.h.api_key, g->api_key);
            assert_int_equal(req.h.api_version, g->version);
            assert_true(str_is(req.h.client_id, "rdkafka"));
            if (g->api_key == KR_KAFKA_API_VERSIONS && g->version >= 3) {
                assert_int_equal(st, KR_KAFKA_UNSUPPORTED);
                continue;
            }
            if (st != KR_KAFKA_OK)
                fail_msg("%s: %s", g->name, msg);
            st = kr_kafka_request_encode(&out, &req.h, &req.u, msg, sizeof msg);
            requests++;
        } else {
            _Alignas(max_align_t) uint8_t body[512];
            int32_t corr;
            assert_true(kr_kafka_api_find(g->api_key)->response->size <= sizeof body);
            st = kr_kafka_response_decode(g->bytes, g->len, g->api_key, g->version, &a, &corr, body,
                                          msg, sizeof msg);
            if (st != KR_KAFKA_OK)
                fail_msg("%s: %s", g->name, msg);
            st =
                kr_kafka_response_encode(&out, g->api_key, g->version, corr, body, msg, sizeof msg);
            responses++;
        }
        if (st != KR_KAFKA_OK)
            fail_msg("%s: re-encoding: %s", g->name, msg);
        if (out.len != g->len + 4 || memcmp(out.data + 4, g->bytes, g->len) != 0)
            fail_msg("%s: re-encoded as %zu bytes, not the %zu captured", g->name, out.len - 4,
                     g->len);
        assert_int_equal(be32(out.data), g->len);
    }
    assert_true(requests >= 60);
    assert_true(responses >= 60);
    kr_buf_free(&out);
    kr_kafka_arena_free(&a);
}

/* What the captured requests say, field by field. */
static void test_golden_values(void **state)
{
    (void)state;
    kr_kafka_arena a;
    kr_kafka_request req;
    kr_kafka_arena_init(&a, ARENA_MAX);

    /* kcat -L: the brokers alone (no topics), then all topics (null) */
    metadata_of("list", 0, &a, &req);
    assert_false(req.u.metadata.allow_auto_topic_creation);
    metadata_of("list", -1, &a, &req);
    assert_true(req.u.metadata.allow_auto_topic_creation);
    /* the topic's: a consumer never asks for auto-creation, a producer does */
    metadata_of("consume", 1, &a, &req);
    assert_false(req.u.metadata.allow_auto_topic_creation);
    metadata_of("produce-none", 1, &a, &req);
    assert_true(req.u.metadata.allow_auto_topic_creation);
    metadata_of("list-topic", 1, &a, &req);

    /* kcat -P: acks -1, one topic, partition 0, one batch */
    decode_capture("produce-none", KR_KAFKA_PRODUCE, 0, &a, &req);
    const kr_kafka_produce_req *p = &req.u.produce;
    assert_int_equal(p->transactional_id.len, -1);
    assert_int_equal(p->acks, -1);
    assert_int_equal(p->timeout_ms, 30000);
    assert_int_equal(p->topics.n, 1);
    assert_true(str_is(p->topics.v[0].name, "test"));
    assert_int_equal(p->topics.v[0].partitions.n, 1);
    assert_int_equal(p->topics.v[0].partitions.v[0].index, 0);
    assert_true(p->topics.v[0].partitions.v[0].records.len > KR_KAFKA_BATCH_HEADER);
    decode_capture("produce-acks0", KR_KAFKA_PRODUCE, 0, &a, &req);
    assert_int_equal(req.u.produce.acks, 0);

    /* idempotence: a producer id for no transaction */
    decode_capture("produce-idempotent", KR_KAFKA_INIT_PRODUCER_ID, 0, &a, &req);
    assert_int_equal(req.u.init_producer_id.transactional_id.len, -1);

    /* the group: JoinGroup v5 without, then with a member id */
    decode_capture("group", KR_KAFKA_JOIN_GROUP, 0, &a, &req);
    const kr_kafka_join_group_req *j = &req.u.join_group;
    assert_true(str_is(j->group_id, "grp"));
    assert_int_equal(j->session_timeout_ms, 45000);
    assert_int_equal(j->rebalance_timeout_ms, 300000);
    assert_true(str_is(j->member_id, ""));
    assert_int_equal(j->group_instance_id.len, -1);
    assert_true(str_is(j->protocol_type, "consumer"));
    assert_int_equal(j->protocols.n, 2);
    assert_true(str_is(j->protocols.v[0].name, "range"));
    assert_true(str_is(j->protocols.v[1].name, "roundrobin"));
    decode_capture("group", KR_KAFKA_JOIN_GROUP, 1, &a, &req);
    assert_true(str_is(req.u.join_group.member_id, "member-1"));
    decode_capture("group", KR_KAFKA_SYNC_GROUP, 0, &a, &req);
    assert_int_equal(req.u.sync_group.generation_id, 1);
    assert_int_equal(req.u.sync_group.assignments.n, 1);
    decode_capture("group", KR_KAFKA_OFFSET_COMMIT, 0, &a, &req);
    assert_int_equal(req.u.offset_commit.topics.n, 1);
    assert_int_equal(req.u.offset_commit.topics.v[0].partitions.v[0].committed_offset, 2);
    decode_capture("group", KR_KAFKA_LIST_OFFSETS, 0, &a, &req);
    assert_int_equal(req.u.list_offsets.topics.v[0].partitions.v[0].timestamp,
                     KR_KAFKA_EARLIEST_TIMESTAMP);
    decode_capture("group", KR_KAFKA_FETCH, 0, &a, &req);
    assert_int_equal(req.u.fetch.replica_id, -1);
    assert_int_equal(req.u.fetch.session_id, 0);
    assert_int_equal(req.u.fetch.session_epoch, -1);
    assert_int_equal(req.u.fetch.topics.v[0].partitions.v[0].fetch_offset, 0);

    /* the admin client */
    decode_capture("admin", KR_KAFKA_CREATE_TOPICS, 0, &a, &req);
    const kr_kafka_create_topics_topic *ct = &req.u.create_topics.topics.v[0];
    assert_int_equal(req.u.create_topics.topics.n, 1);
    assert_true(str_is(ct->name, "made"));
    assert_int_equal(ct->num_partitions, 1);
    assert_int_equal(ct->replication_factor, 1);
    assert_int_equal(ct->configs.n, 1);
    assert_true(str_is(ct->configs.v[0].name, "cleanup.policy"));
    assert_true(str_is(ct->configs.v[0].value, "compact"));
    assert_false(req.u.create_topics.validate_only);
    decode_capture("admin", KR_KAFKA_DESCRIBE_CONFIGS, 0, &a, &req);
    assert_int_equal(req.u.describe_configs.resources.v[0].resource_type, KR_KAFKA_RESOURCE_TOPIC);
    assert_true(str_is(req.u.describe_configs.resources.v[0].resource_name, "test"));
    assert_int_equal(req.u.describe_configs.resources.v[0].configuration_keys.n, -1);
    decode_capture("admin", KR_KAFKA_ALTER_CONFIGS, 0, &a, &req);
    const kr_kafka_alter_configs_resource *ac = &req.u.alter_configs.resources.v[0];
    assert_true(str_is(ac->configs.v[0].name, "retention.ms"));
    assert_true(str_is(ac->configs.v[0].value, "86400000"));
    decode_capture("admin", KR_KAFKA_DELETE_TOPICS, 0, &a, &req);
    assert_int_equal(req.u.delete_topics.topic_names.n, 1);
    assert_true(str_is(req.u.delete_topics.topic_names.v[0], "made"));

    /* SASL/PLAIN */
    decode_capture("sasl", KR_KAFKA_SASL_HANDSHAKE, 0, &a, &req);
    assert_true(str_is(req.u.sasl_handshake.mechanism, "PLAIN"));
    decode_capture("sasl", KR_KAFKA_SASL_AUTHENTICATE, 0, &a, &req);
    assert_int_equal(req.u.sasl_authenticate.auth_bytes.len, 20);
    assert_memory_equal(req.u.sasl_authenticate.auth_bytes.ptr, "\0krappy\0secret-token", 20);
    kr_kafka_arena_free(&a);
}

/* ---- hand-written bytes, for versions kcat does not send ---- */

/* A request frame: header (corr 7, client "c") then the body. */
static size_t req_frame(uint8_t *out, int16_t key, int16_t ver, const void *body, size_t n)
{
    uint8_t h[11] = {(uint8_t)(key >> 8),
                     (uint8_t)key,
                     (uint8_t)(ver >> 8),
                     (uint8_t)ver,
                     0,
                     0,
                     0,
                     7,
                     0,
                     1,
                     'c'};
    memcpy(out, h, sizeof h);
    memcpy(out + sizeof h, body, n);
    return sizeof h + n;
}

/* Decode a request body of `key` v`ver` and check it encodes back the same. */
static void hand_request(int16_t key, int16_t ver, const void *body, size_t n, kr_kafka_arena *a,
                         kr_kafka_request *req)
{
    uint8_t frame[512];
    char msg[256];
    kr_buf out;
    size_t len = req_frame(frame, key, ver, body, n);
    kr_kafka_status st = kr_kafka_request_decode(frame, len, a, req, msg, sizeof msg);
    if (st != KR_KAFKA_OK)
        fail_msg("%d v%d: %s", key, ver, msg);
    assert_int_equal(req->h.correlation_id, 7);
    kr_buf_init(&out, 4096);
    assert_int_equal(kr_kafka_request_encode(&out, &req->h, &req->u, msg, sizeof msg), KR_KAFKA_OK);
    assert_int_equal(out.len, len + 4);
    assert_memory_equal(out.data + 4, frame, len);
    kr_buf_free(&out);
}

/* Decode a response of `key` v`ver` (corr 7 then body), encode it back. */
static void hand_response(int16_t key, int16_t ver, const void *body, size_t n, kr_kafka_arena *a,
                          void *resp)
{
    uint8_t frame[512] = {0, 0, 0, 7};
    char msg[256];
    int32_t corr;
    kr_buf out;
    memcpy(frame + 4, body, n);
    kr_kafka_status st =
        kr_kafka_response_decode(frame, n + 4, key, ver, a, &corr, resp, msg, sizeof msg);
    if (st != KR_KAFKA_OK)
        fail_msg("%d v%d: %s", key, ver, msg);
    assert_int_equal(corr, 7);
    kr_buf_init(&out, 4096);
    assert_int_equal(kr_kafka_response_encode(&out, key, ver, 7, resp, msg, sizeof msg),
                     KR_KAFKA_OK);
    assert_int_equal(out.len, n + 8);
    assert_memory_equal(out.data + 4, frame, n + 4);
    kr_buf_free(&out);
}

#define HAND_REQ(key, ver, bytes, a, req) hand_request(key, ver, bytes, sizeof(bytes) - 1, a, req)
#define HAND_RESP(key, ver, bytes, a, resp)                                                        \
    hand_response(key, ver, bytes, sizeof(bytes) - 1, a, resp)

static void test_hand_bytes(void **state)
{
    (void)state;
    kr_kafka_arena a;
    kr_kafka_request req;
    kr_kafka_arena_init(&a, ARENA_MAX);

    /* OffsetCommit v1: generation, member, and a commit timestamp */
    HAND_REQ(KR_KAFKA_OFFSET_COMMIT, 1,
             "\x00\x01g"
             "\x00\x00\x00\x05"
             "\x00\x01m"
             "\x00\x00\x00\x01"
             "\x00\x01t"
             "\x00\x00\x00\x01"
             "\x00\x00\x00\x00"
             "\x00\x00\x00\x00\x00\x00\x00\x07"
             "\x00\x00\x00\x00\x00\x00\x00\x63"
             "\xff\xff",
             &a, &req);
    const kr_kafka_offset_commit_req_partition *ocp =
        &req.u.offset_commit.topics.v[0].partitions.v[0];
    assert_int_equal(req.u.offset_commit.generation_id, 5);
    assert_int_equal(req.u.offset_commit.retention_time_ms, -1);
    assert_int_equal(ocp->committed_offset, 7);
    assert_int_equal(ocp->commit_timestamp, 99);
    assert_int_equal(ocp->committed_leader_epoch, -1);
    assert_int_equal(ocp->committed_metadata.len, -1);
    /* OffsetCommit v2: retention instead of the timestamp */
    HAND_REQ(KR_KAFKA_OFFSET_COMMIT, 2,
             "\x00\x01g"
             "\x00\x00\x00\x05"
             "\x00\x01m"
             "\x00\x00\x00\x00\x00\x00\x01\x00"
             "\x00\x00\x00\x00",
             &a, &req);
    assert_int_equal(req.u.offset_commit.retention_time_ms, 256);

    /* Fetch v4: no session, no leader epoch, no log start offset */
    HAND_REQ(KR_KAFKA_FETCH, 4,
             "\xff\xff\xff\xff"
             "\x00\x00\x01\xf4"
             "\x00\x00\x00\x01"
             "\x00\x10\x00\x00"
             "\x00"
             "\x00\x00\x00\x01"
             "\x00\x01t"
             "\x00\x00\x00\x01"
             "\x00\x00\x00\x00"
             "\x00\x00\x00\x00\x00\x00\x00\x03"
             "\x00\x00\x03\xe8",
             &a, &req);
    assert_int_equal(req.u.fetch.max_wait_ms, 500);
    assert_int_equal(req.u.fetch.max_bytes, 1 << 20);
    assert_int_equal(req.u.fetch.session_epoch, -1);
    assert_int_equal(req.u.fetch.topics.v[0].partitions.v[0].fetch_offset, 3);
    assert_int_equal(req.u.fetch.topics.v[0].partitions.v[0].log_start_offset, -1);
    assert_int_equal(req.u.fetch.forgotten_topics_data.n, 0);

    /* LeaveGroup v3: members instead of member_id */
    HAND_REQ(KR_KAFKA_LEAVE_GROUP, 3,
             "\x00\x01g"
             "\x00\x00\x00\x01"
             "\x00\x01m"
             "\xff\xff",
             &a, &req);
    assert_int_equal(req.u.leave_group.members.n, 1);
    assert_true(str_is(req.u.leave_group.members.v[0].member_id, "m"));
    assert_int_equal(req.u.leave_group.members.v[0].group_instance_id.len, -1);
    HAND_REQ(KR_KAFKA_LEAVE_GROUP, 0,
             "\x00\x01g"
             "\x00\x01m",
             &a, &req);
    assert_true(str_is(req.u.leave_group.member_id, "m"));

    /* JoinGroup v0: no rebalance timeout */
    HAND_REQ(KR_KAFKA_JOIN_GROUP, 0,
             "\x00\x01g"
             "\x00\x00\x27\x10"
             "\x00\x00"
             "\x00\x08"
             "consumer"
             "\x00\x00\x00\x01"
             "\x00\x05"
             "range"
             "\x00\x00\x00\x02\x01\x02",
             &a, &req);
    assert_int_equal(req.u.join_group.session_timeout_ms, 10000);
    assert_int_equal(req.u.join_group.rebalance_timeout_ms, -1);

    /* Metadata v0: an empty list (all topics); v1 null */
    HAND_REQ(KR_KAFKA_METADATA, 0, "\x00\x00\x00\x00", &a, &req);
    assert_int_equal(req.u.metadata.topics.n, 0);
    assert_true(req.u.metadata.allow_auto_topic_creation);
    HAND_REQ(KR_KAFKA_METADATA, 1, "\xff\xff\xff\xff", &a, &req);
    assert_int_equal(req.u.metadata.topics.n, -1);

    /* ListOffsets v0 response: the old offsets array, no timestamp */
    kr_kafka_list_offsets_resp lo;
    HAND_RESP(KR_KAFKA_LIST_OFFSETS, 0,
              "\x00\x00\x00\x01"
              "\x00\x01t"
              "\x00\x00\x00\x01"
              "\x00\x00\x00\x00"
              "\x00\x00"
              "\x00\x00\x00\x01"
              "\x00\x00\x00\x00\x00\x00\x00\x05",
              &a, &lo);
    assert_int_equal(lo.topics.v[0].partitions.v[0].old_style_offsets.n, 1);
    assert_int_equal(lo.topics.v[0].partitions.v[0].old_style_offsets.v[0], 5);
    assert_int_equal(lo.topics.v[0].partitions.v[0].offset, -1);

    /* DescribeConfigs v0 (is_default) and v1 (config_source, synonyms) */
    kr_kafka_describe_configs_resp dc;
    HAND_RESP(KR_KAFKA_DESCRIBE_CONFIGS, 0,
              "\x00\x00\x00\x00"
              "\x00\x00\x00\x01"
              "\x00\x00"
              "\xff\xff"
              "\x02"
              "\x00\x01t"
              "\x00\x00\x00\x01"
              "\x00\x01k"
              "\x00\x01v"
              "\x00"
              "\x01"
              "\x00",
              &a, &dc);
    assert_true(dc.results.v[0].configs.v[0].is_default);
    assert_int_equal(dc.results.v[0].configs.v[0].config_source, -1);
    HAND_RESP(KR_KAFKA_DESCRIBE_CONFIGS, 1,
              "\x00\x00\x00\x00"
              "\x00\x00\x00\x01"
              "\x00\x00"
              "\xff\xff"
              "\x02"
              "\x00\x01t"
              "\x00\x00\x00\x01"
              "\x00\x01k"
              "\x00\x01v"
              "\x00"
              "\x05"
              "\x00"
              "\x00\x00\x00\x00",
              &a, &dc);
    assert_false(dc.results.v[0].configs.v[0].is_default);
    assert_int_equal(dc.results.v[0].configs.v[0].config_source, 5);

    /* Metadata v0 response: no rack, controller, cluster id or is_internal */
    kr_kafka_metadata_resp md;
    HAND_RESP(KR_KAFKA_METADATA, 0,
              "\x00\x00\x00\x01"
              "\x00\x00\x00\x01"
              "\x00\x01h"
              "\x00\x00\x23\x84"
              "\x00\x00\x00\x01"
              "\x00\x00"
              "\x00\x01t"
              "\x00\x00\x00\x01"
              "\x00\x00"
              "\x00\x00\x00\x00"
              "\x00\x00\x00\x01"
              "\x00\x00\x00\x01\x00\x00\x00\x01"
              "\x00\x00\x00\x01\x00\x00\x00\x01",
              &a, &md);
    assert_int_equal(md.brokers.v[0].port, 9092);
    assert_int_equal(md.controller_id, -1);
    assert_int_equal(md.cluster_id.len, -1);

    /* Produce v3 response: log append time, no log start offset */
    kr_kafka_produce_resp pr;
    HAND_RESP(KR_KAFKA_PRODUCE, 3,
              "\x00\x00\x00\x01"
              "\x00\x01t"
              "\x00\x00\x00\x01"
              "\x00\x00\x00\x00"
              "\x00\x00"
              "\x00\x00\x00\x00\x00\x00\x00\x0a"
              "\xff\xff\xff\xff\xff\xff\xff\xff"
              "\x00\x00\x00\x00",
              &a, &pr);
    assert_int_equal(pr.responses.v[0].partitions.v[0].base_offset, 10);
    assert_int_equal(pr.responses.v[0].partitions.v[0].log_start_offset, -1);

    /* ApiVersions v0: no throttle time */
    kr_kafka_api_versions_resp av;
    HAND_RESP(KR_KAFKA_API_VERSIONS, 0,
              "\x00\x23"
              "\x00\x00\x00\x01"
              "\x00\x12\x00\x00\x00\x02",
              &a, &av);
    assert_int_equal(av.error_code, KR_KAFKA_ERR_UNSUPPORTED_VERSION);
    assert_int_equal(av.api_keys.v[0].max_version, 2);
    kr_kafka_arena_free(&a);
}

/* ---- every API, every version: filled from the schema, round-tripped ---- */

/* A pseudo-random stream for the filler (xorshift). */
static uint32_t next(uint32_t *s)
{
    *s ^= *s << 13;
    *s ^= *s >> 17;
    *s ^= *s << 5;
    return *s;
}

/* Fill a struct of schema s for `version` with values of every kind: numbers
 * across their range, strings and bytes (sometimes empty, sometimes null
 * where the version allows it), arrays of 0 to 2 elements (null sometimes). */
static void fill(const kr_kafka_schema *s, int16_t version, uint8_t *out, kr_kafka_arena *a,
                 uint32_t *seed)
{
    kr_kafka_schema_defaults(s, out);
    for (uint16_t i = 0; i < s->nfields; i++) {
        const kr_kafka_field *f = &s->fields[i];
        uint8_t *dst = out + f->off;
        bool can_null = version >= f->nullable_from;
        uint32_t r = next(seed);
        if (!kr_kafka_field_present(f, version))
            continue;
        switch (f->type) {
        case KR_KT_I8: {
            int8_t v = (int8_t)r;
            memcpy(dst, &v, sizeof v);
            break;
        }
        case KR_KT_I16: {
            int16_t v = (int16_t)r;
            memcpy(dst, &v, sizeof v);
            break;
        }
        case KR_KT_I32: {
            int32_t v = (int32_t)r;
            memcpy(dst, &v, sizeof v);
            break;
        }
        case KR_KT_I64: {
            int64_t v = (int64_t)((uint64_t)r << 32 | next(seed));
            memcpy(dst, &v, sizeof v);
            break;
        }
        case KR_KT_BOOL: {
            bool v = r & 1;
            memcpy(dst, &v, sizeof v);
            break;
        }
        case KR_KT_STR:
        case KR_KT_BYTES: {
            kr_kafka_bytes v = {NULL, -1};
            if (!(can_null && r % 4 == 0)) {
                size_t n = r % 7;
                uint8_t *p = kr_kafka_arena_alloc(a, n);
                assert_non_null(p);
                for (size_t k = 0; k < n; k++)
                    p[k] = (uint8_t)('a' + next(seed) % 26);
                v.ptr = p;
                v.len = (int32_t)n;
            }
            memcpy(dst, &v, sizeof v);
            break;
        }
        case KR_KT_ARRAY: {
            kr_kafka_array v = {NULL, -1};
            if (!(can_null && r % 5 == 0)) {
                v.n = (int32_t)(r % 3);
                uint8_t *items = kr_kafka_arena_alloc(a, (size_t)v.n * f->elem->size);
                assert_non_null(items);
                for (int32_t k = 0; k < v.n; k++)
                    fill(f->elem, version, items + (size_t)k * f->elem->size, a, seed);
                v.v = items;
            }
            memcpy(dst, &v, sizeof v);
            break;
        }
        default:
            fail_msg("unknown type in %s", s->name);
        }
    }
}

/* Two structs of schema s hold the same values (absent fields: both the
 * default). */
static void same(const kr_kafka_schema *s, const uint8_t *x, const uint8_t *y)
{
    for (uint16_t i = 0; i < s->nfields; i++) {
        const kr_kafka_field *f = &s->fields[i];
        const uint8_t *a = x + f->off, *b = y + f->off;
        switch (f->type) {
        case KR_KT_STR:
        case KR_KT_BYTES: {
            kr_kafka_bytes u, v;
            memcpy(&u, a, sizeof u);
            memcpy(&v, b, sizeof v);
            if (u.len != v.len || (u.len > 0 && memcmp(u.ptr, v.ptr, (size_t)u.len) != 0))
                fail_msg("%s.%s differs", s->name, f->name);
            break;
        }
        case KR_KT_ARRAY: {
            kr_kafka_array u, v;
            memcpy(&u, a, sizeof u);
            memcpy(&v, b, sizeof v);
            if (u.n != v.n)
                fail_msg("%s.%s: %d elements, then %d", s->name, f->name, u.n, v.n);
            for (int32_t k = 0; k < u.n; k++)
                same(f->elem, (const uint8_t *)u.v + (size_t)k * f->elem->size,
                     (const uint8_t *)v.v + (size_t)k * f->elem->size);
            break;
        }
        case KR_KT_BOOL:
            if (*(const bool *)a != *(const bool *)b)
                fail_msg("%s.%s differs", s->name, f->name);
            break;
        default: {
            static const size_t sizes[] = {
                [KR_KT_I8] = 1, [KR_KT_I16] = 2, [KR_KT_I32] = 4, [KR_KT_I64] = 8};
            if (memcmp(a, b, sizes[f->type]) != 0)
                fail_msg("%s.%s differs", s->name, f->name);
            break;
        }
        }
    }
}

static void test_every_api_roundtrip(void **state)
{
    (void)state;
    kr_kafka_arena a, b;
    kr_buf out, again;
    char msg[256];
    uint32_t seed = 2463534242u;
    int checked = 0;

    kr_kafka_arena_init(&a, ARENA_MAX);
    kr_kafka_arena_init(&b, ARENA_MAX);
    kr_buf_init(&out, 1u << 20);
    kr_buf_init(&again, 1u << 20);
    for (size_t i = 0; i < KR_KAFKA_NAPIS; i++) {
        const kr_kafka_api *api = &kr_kafka_apis[i];
        assert_ptr_equal(kr_kafka_api_find(api->key), api);
        assert_true(api->min_version <= api->max_version);
        for (int16_t v = api->min_version; v <= api->max_version; v++) {
            for (int round = 0; round < 8; round++) {
                _Alignas(max_align_t) uint8_t x[512], y[512];
                kr_kafka_req_header h = {api->key, v, round, kr_kafka_cstr("test-client")};
                kr_kafka_request req;
                int32_t corr;

                /* the request */
                kr_kafka_arena_reset(&a);
                kr_kafka_arena_reset(&b);
                kr_buf_reset(&out);
                kr_buf_reset(&again);
                assert_true(api->request->size <= sizeof x && api->response->size <= sizeof x);
                fill(api->request, v, x, &a, &seed);
                if (kr_kafka_request_encode(&out, &h, x, msg, sizeof msg) != KR_KAFKA_OK)
                    fail_msg("%s v%d request: %s", api->name, v, msg);
                assert_int_equal(be32(out.data), out.len - 4);
                if (kr_kafka_request_decode(out.data + 4, out.len - 4, &b, &req, msg, sizeof msg) !=
                    KR_KAFKA_OK)
                    fail_msg("%s v%d request: %s", api->name, v, msg);
                assert_int_equal(req.h.api_key, api->key);
                assert_int_equal(req.h.api_version, v);
                assert_int_equal(req.h.correlation_id, round);
                assert_true(str_is(req.h.client_id, "test-client"));
                same(api->request, x, (const uint8_t *)&req.u);
                assert_int_equal(kr_kafka_request_encode(&again, &req.h, &req.u, msg, sizeof msg),
                                 KR_KAFKA_OK);
                assert_int_equal(again.len, out.len);
                assert_memory_equal(again.data, out.data, out.len);

                /* the response */
                kr_buf_reset(&out);
                kr_buf_reset(&again);
                fill(api->response, v, x, &a, &seed);
                if (kr_kafka_response_encode(&out, api->key, v, round, x, msg, sizeof msg) !=
                    KR_KAFKA_OK)
                    fail_msg("%s v%d response: %s", api->name, v, msg);
                if (kr_kafka_response_decode(out.data + 4, out.len - 4, api->key, v, &b, &corr, y,
                                             msg, sizeof msg) != KR_KAFKA_OK)
                    fail_msg("%s v%d response: %s", api->name, v, msg);
                assert_int_equal(corr, round);
                same(api->response, x, y);
                assert_int_equal(
                    kr_kafka_response_encode(&again, api->key, v, round, y, msg, sizeof msg),
                    KR_KAFKA_OK);
                assert_int_equal(again.len, out.len);
                assert_memory_equal(again.data, out.data, out.len);
                checked++;
            }
        }
    }
    assert_true(checked > 500);
    kr_buf_free(&out);
    kr_buf_free(&again);
    kr_kafka_arena_free(&a);
    kr_kafka_arena_free(&b);
}

/* Every proper prefix of every captured request is refused, never read
 * past; so is the request with a byte too many. */
static void test_truncated_requests(void **state)
{
    (void)state;
    kr_kafka_arena a;
    kr_kafka_request req;
    char msg[256];

    kr_kafka_arena_init(&a, ARENA_MAX);
    for (size_t i = 0; i < sizeof kafka_goldens / sizeof kafka_goldens[0]; i++) {
        const kafka_golden *g = &kafka_goldens[i];
        if (g->response || (g->api_key == KR_KAFKA_API_VERSIONS && g->version >= 3))
            continue;
        for (size_t n = 0; n < g->len; n++) {
            uint8_t *copy = malloc(n ? n : 1);
            assert_non_null(copy);
            memcpy(copy, g->bytes, n);
            kr_kafka_arena_reset(&a);
            kr_kafka_status st = kr_kafka_request_decode(copy, n, &a, &req, msg, sizeof msg);
            /* ApiVersions v0 has an empty body: its header is the request */
            if (g->api_key == KR_KAFKA_API_VERSIONS && n >= KR_KAFKA_REQ_HEADER_MIN + 7)
                assert_int_equal(st, KR_KAFKA_OK);
            else if (st != KR_KAFKA_MALFORMED)
                fail_msg("%s cut to %zu bytes: status %d", g->name, n, st);
            free(copy);
        }
        uint8_t *longer = malloc(g->len + 1);
        assert_non_null(longer);
        memcpy(longer, g->bytes, g->len);
        longer[g->len] = 0;
        kr_kafka_arena_reset(&a);
        assert_int_equal(kr_kafka_request_decode(longer, g->len + 1, &a, &req, msg, sizeof msg),
                         KR_KAFKA_MALFORMED);
        assert_non_null(strstr(msg, "1 bytes after the end"));
        free(longer);
    }
    kr_kafka_arena_free(&a);
}

static void test_unsupported(void **state)
{
    (void)state;
    kr_kafka_arena a;
    kr_kafka_request req;
    char msg[256];
    uint8_t frame[64];

    kr_kafka_arena_init(&a, ARENA_MAX);
    /* an API we do not speak */
    size_t n = req_frame(frame, 57, 0, "", 0);
    assert_int_equal(kr_kafka_request_decode(frame, n, &a, &req, msg, sizeof msg),
                     KR_KAFKA_UNSUPPORTED);
    assert_int_equal(req.h.api_key, 57);
    assert_int_equal(req.h.correlation_id, 7);
    assert_string_equal(msg, "API key 57 is not supported");
    /* versions below and above the advertised range */
    n = req_frame(frame, KR_KAFKA_FETCH, 3, "", 0);
    assert_int_equal(kr_kafka_request_decode(frame, n, &a, &req, msg, sizeof msg),
                     KR_KAFKA_UNSUPPORTED);
    assert_string_equal(msg, "Fetch v3 is not supported (versions 4 to 11 are)");
    n = req_frame(frame, KR_KAFKA_FETCH, 12, "", 0);
    assert_int_equal(kr_kafka_request_decode(frame, n, &a, &req, msg, sizeof msg),
                     KR_KAFKA_UNSUPPORTED);
    assert_int_equal(req.h.api_version, 12);
    /* the ApiVersions v3 fallback: the full table, in v0 */
    const kafka_golden *g = capture("list", KR_KAFKA_API_VERSIONS, 0, 0);
    assert_int_equal(kr_kafka_request_decode(g->bytes, g->len, &a, &req, msg, sizeof msg),
                     KR_KAFKA_UNSUPPORTED);
    kr_kafka_api_version table[KR_KAFKA_NAPIS];
    kr_kafka_api_versions_resp av;
    kr_buf out;
    kr_buf_init(&out, 4096);
    kr_kafka_api_versions_fill(&av, KR_KAFKA_ERR_UNSUPPORTED_VERSION, table);
    assert_int_equal(kr_kafka_response_encode(&out, KR_KAFKA_API_VERSIONS, 0, req.h.correlation_id,
                                              &av, msg, sizeof msg),
                     KR_KAFKA_OK);
    const kafka_golden *want = capture("list", KR_KAFKA_API_VERSIONS, 0, 1);
    assert_int_equal(out.len, want->len + 4);
    assert_memory_equal(out.data + 4, want->bytes, want->len);
    /* no layout for an unknown version, even in responses */
    assert_int_equal(
        kr_kafka_response_encode(&out, KR_KAFKA_API_VERSIONS, 3, 1, &av, msg, sizeof msg),
        KR_KAFKA_UNSUPPORTED);
    assert_string_equal(kr_kafka_api_name(KR_KAFKA_SYNC_GROUP), "SyncGroup");
    assert_string_equal(kr_kafka_api_name(99), "Unknown");
    /* a header cut short */
    assert_int_equal(kr_kafka_request_decode(frame, 9, &a, &req, msg, sizeof msg),
                     KR_KAFKA_MALFORMED);
    kr_buf_free(&out);
    kr_kafka_arena_free(&a);
}

/* What a version cannot carry is refused with the field's name, and the
 * output is left as it was. */
static void test_encode_refusals(void **state)
{
    (void)state;
    kr_buf out;
    char msg[256];
    kr_kafka_metadata_topic topic;
    kr_kafka_metadata_resp md;

    kr_buf_init(&out, 1u << 20);
    kr_kafka_put_i32(&out, 42); /* earlier bytes stay */
    memset(&md, 0, sizeof md);
    memset(&topic, 0, sizeof topic);
    topic.name = kr_kafka_cstr(NULL); /* names are never null */
    md.topics.v = &topic;
    md.topics.n = 1;
    md.brokers.n = 0;
    md.cluster_id = kr_kafka_cstr(NULL);
    assert_int_equal(kr_kafka_response_encode(&out, KR_KAFKA_METADATA, 4, 1, &md, msg, sizeof msg),
                     KR_KAFKA_INVALID);
    assert_string_equal(msg, "MetadataResponse v4: MetadataResponseTopic name is null, which "
                             "this version does not allow");
    assert_int_equal(out.len, 4);
    /* a null array where the version wants one */
    topic.name = kr_kafka_cstr("t");
    md.brokers.n = -1;
    assert_int_equal(kr_kafka_response_encode(&out, KR_KAFKA_METADATA, 4, 1, &md, msg, sizeof msg),
                     KR_KAFKA_INVALID);
    assert_non_null(strstr(msg, "brokers is null"));
    /* a string too long for an int16 length */
    md.brokers.n = 0;
    char *big = malloc(40000);
    assert_non_null(big);
    memset(big, 'x', 40000);
    topic.name.ptr = big;
    topic.name.len = 40000;
    assert_int_equal(kr_kafka_response_encode(&out, KR_KAFKA_METADATA, 4, 1, &md, msg, sizeof msg),
                     KR_KAFKA_INVALID);
    assert_non_null(strstr(msg, "longer than 32767"));
    /* the buffer's cap */
    kr_buf small;
    kr_buf_init(&small, 100);
    topic.name.len = 1000;
    assert_int_equal(
        kr_kafka_response_encode(&small, KR_KAFKA_METADATA, 4, 1, &md, msg, sizeof msg),
        KR_KAFKA_TOO_BIG);
    assert_int_equal(small.len, 0);
    free(big);
    kr_buf_free(&small);
    assert_int_equal(out.len, 4);
    kr_buf_free(&out);
}

/* Arrays are allocated from the arena; its cap refuses a request whose
 * counts are honest but too many for this decoder. */
static void test_arena_cap(void **state)
{
    (void)state;
    kr_kafka_arena a;
    kr_kafka_request req;
    kr_buf out;
    char msg[256];
    enum { N = 1000 };
    kr_kafka_str *names = calloc(N, sizeof *names);

    assert_non_null(names);
    for (int i = 0; i < N; i++)
        names[i] = kr_kafka_cstr("t");
    kr_kafka_metadata_req md = {{names, N}, true, false, false};
    kr_kafka_req_header h = {KR_KAFKA_METADATA, 4, 1, kr_kafka_cstr(NULL)};
    kr_buf_init(&out, 1u << 20);
    assert_int_equal(kr_kafka_request_encode(&out, &h, &md, msg, sizeof msg), KR_KAFKA_OK);
    kr_kafka_arena_init(&a, 4096);
    assert_int_equal(kr_kafka_request_decode(out.data + 4, out.len - 4, &a, &req, msg, sizeof msg),
                     KR_KAFKA_TOO_BIG);
    assert_non_null(strstr(msg, "MetadataRequest v4"));
    kr_kafka_arena_free(&a);
    kr_kafka_arena_init(&a, N * sizeof(kr_kafka_str) + 64);
    assert_int_equal(kr_kafka_request_decode(out.data + 4, out.len - 4, &a, &req, msg, sizeof msg),
                     KR_KAFKA_OK);
    assert_int_equal(req.u.metadata.topics.n, N);
    /* a count that claims more elements than there are bytes */
    kr_kafka_arena_reset(&a);
    out.data[4 + 10 + 2] = 0x7f; /* the topics count, after a 10-byte header */
    assert_int_equal(kr_kafka_request_decode(out.data + 4, out.len - 4, &a, &req, msg, sizeof msg),
                     KR_KAFKA_MALFORMED);
    assert_non_null(strstr(msg, "array count beyond the end of the input"));
    assert_int_equal(a.used, 0);
    kr_kafka_arena_free(&a);
    kr_buf_free(&out);
    free(names);
}

/* A Fetch answer whose last partition's records follow the encoded frame
 * (kr_kafka_response_extend) is the same bytes as the general encoding,
 * in every Fetch version spoken, with records in an earlier partition too;
 * frames that do not end with empty bytes, or would outgrow int32, are
 * refused and left as they were. */
static void test_response_extend(void **state)
{
    (void)state;
    char msg[256];
    uint8_t early[3] = {1, 2, 3}, tail[300];
    for (size_t i = 0; i < sizeof tail; i++)
        tail[i] = (uint8_t)(i * 7 + 1);
    kr_kafka_fetch_resp_partition parts[2] = {
        {.partition_index = 0,
         .high_watermark = 9,
         .last_stable_offset = 9,
         .aborted_transactions = {NULL, -1},
         .preferred_read_replica = -1,
         .records = {early, (int32_t)sizeof early}},
        {.partition_index = 1,
         .high_watermark = 500,
         .last_stable_offset = 500,
         .log_start_offset = 4,
         .aborted_transactions = {NULL, 0},
         .preferred_read_replica = -1,
         .records = {tail, (int32_t)sizeof tail}},
    };
    kr_kafka_fetch_resp_topic topic = {.topic = kr_kafka_cstr("t"), .partitions = {parts, 2}};
    kr_kafka_fetch_resp resp = {.responses = {&topic, 1}};
    for (int16_t v = 4; v <= 11; v++) {
        kr_buf whole, split;
        kr_buf_init(&whole, 4096);
        kr_buf_init(&split, 4096);
        parts[1].records = (kr_kafka_bytes){tail, (int32_t)sizeof tail};
        assert_int_equal(
            kr_kafka_response_encode(&whole, KR_KAFKA_FETCH, v, 5, &resp, msg, sizeof msg),
            KR_KAFKA_OK);
        /* A frame ending with records is not extended. */
        assert_int_equal(kr_kafka_response_extend(&whole, 0, 1), -1);
        kr_buf_append(&split, "xy", 2); /* a frame after other bytes */
        parts[1].records = (kr_kafka_bytes){(const uint8_t *)"", 0};
        assert_int_equal(
            kr_kafka_response_encode(&split, KR_KAFKA_FETCH, v, 5, &resp, msg, sizeof msg),
            KR_KAFKA_OK);
        size_t len = split.len;
        assert_int_equal(kr_kafka_response_extend(&split, 2, (size_t)INT32_MAX), -1);
        assert_int_equal(split.len, len);
        assert_int_equal(kr_kafka_response_extend(&split, 2, sizeof tail), 0);
        kr_buf_append(&split, tail, sizeof tail);
        assert_int_equal(split.len, whole.len + 2);
        assert_memory_equal(split.data + 2, whole.data, whole.len);
        kr_buf_free(&whole);
        kr_buf_free(&split);
    }
    /* Too short to be a frame. */
    kr_buf b;
    kr_buf_init(&b, 64);
    kr_buf_append(&b, "\0\0\0\0\0\0\0\0", 8);
    assert_int_equal(kr_kafka_response_extend(&b, 0, 1), -1);
    assert_int_equal(kr_kafka_response_extend(&b, 9, 1), -1);
    kr_buf_free(&b);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_varints),
        cmocka_unit_test(test_bad_varints),
        cmocka_unit_test(test_lengths),
        cmocka_unit_test(test_writers),
        cmocka_unit_test(test_error_names),
        cmocka_unit_test(test_arena),
        cmocka_unit_test(test_golden_roundtrip),
        cmocka_unit_test(test_golden_values),
        cmocka_unit_test(test_hand_bytes),
        cmocka_unit_test(test_every_api_roundtrip),
        cmocka_unit_test(test_truncated_requests),
        cmocka_unit_test(test_unsupported),
        cmocka_unit_test(test_encode_refusals),
        cmocka_unit_test(test_arena_cap),
        cmocka_unit_test(test_response_extend),
    };
    return cmocka_run_group_tests_name("kafka_codec", tests, NULL, NULL);
}
