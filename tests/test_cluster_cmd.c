/*
 * tests/test_cluster_cmd.c - cluster/cmd.c: every command encodes and
 * decodes to the same fields (TOPIC_CONFIG's settings and resets too);
 * malformed commands, unknown numbers and bad
 * names are refused with a sentence, never applied; a BATCH gives back
 * its sub-commands and takes only well-formed PUBLISHes and registrations.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "cluster/cmd.h"
#include "proto/cbor.h"

#define S(lit) ((kr_str){(const uint8_t *)(lit), sizeof(lit) - 1})

static kr_buf b;
static char err[256];

static int setup(void **state)
{
    (void)state;
    kr_buf_init(&b, 1 << 20);
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    kr_buf_free(&b);
    return 0;
}

static void assert_str(const kr_str *s, const char *want)
{
    assert_int_equal(s->len, strlen(want));
    assert_memory_equal(s->ptr, want, s->len);
}

/* Decode what b holds. */
static kr_cmd decoded(void)
{
    kr_cmd c;
    assert_false(b.failed);
    assert_int_equal(kr_cmd_decode(b.data, b.len, &c, err, sizeof err), 0);
    return c;
}

static void test_roundtrips(void **state)
{
    (void)state;
    kr_cmd c;
    kr_str topic = S("orders"), group = S("billing"), id = S("shop-1"), payload = S("\xa0");

    kr_cmd_put_cluster_id(&b, "c0ffee");
    c = decoded();
    assert_int_equal(c.type, KR_CMD_CLUSTER_ID);
    assert_str(&c.name, "c0ffee");

    kr_buf_reset(&b);
    kr_cmd_put_node_info(&b, 3, "n3:7070", "n3:9092");
    c = decoded();
    assert_int_equal(c.node, 3);
    assert_str(&c.addr, "n3:7070");
    assert_str(&c.kafka, "n3:9092");
    kr_buf_reset(&b);
    kr_cmd_put_node_info(&b, 1, "n1:7070", NULL);
    c = decoded();
    assert_int_equal(c.kafka.len, 0);

    kr_buf_reset(&b);
    kr_cmd_put_topic(&b, KR_CMD_TOPIC_DELETE, &topic);
    c = decoded();
    assert_int_equal(c.type, KR_CMD_TOPIC_DELETE);
    assert_str(&c.topic, "orders");

    kr_buf_reset(&b);
    kr_cmd_put_publish(&b, &topic, 1234, &id, 7, &payload);
    c = decoded();
    assert_int_equal(c.type, KR_CMD_PUBLISH);
    assert_int_equal(c.value, 1234);
    assert_true(c.has_producer);
    assert_str(&c.producer, "shop-1");
    assert_int_equal(c.epoch, 7);
    assert_str(&c.payload, "\xa0");
    kr_buf_reset(&b);
    kr_cmd_put_publish(&b, &topic, 5, NULL, 0, &payload);
    c = decoded();
    assert_false(c.has_producer);

    kr_buf_reset(&b);
    kr_cmd_put_producer_register(&b, &topic, &id, 3);
    c = decoded();
    assert_str(&c.name, "shop-1");
    assert_int_equal(c.epoch, 3);

    kr_buf_reset(&b);
    kr_cmd_put_group_at(&b, KR_CMD_GROUP_SEEK, &topic, &group, 99);
    c = decoded();
    assert_int_equal(c.type, KR_CMD_GROUP_SEEK);
    assert_str(&c.name, "billing");
    assert_int_equal(c.value, 99);

    kr_buf_reset(&b);
    kr_cmd_put_group_delete(&b, &topic, &group);
    c = decoded();
    assert_int_equal(c.type, KR_CMD_GROUP_DELETE);

    kr_buf_reset(&b);
    kr_cmd_put_cursors_begin(&b, &topic, 2);
    kr_cmd_put_cursor(&b, &group, 10);
    kr_cmd_put_cursor(&b, &id, 11);
    c = decoded();
    assert_int_equal(c.n_cursors, 2);
    kr_cmd_cursor_iter ci;
    kr_str g;
    uint64_t v;
    kr_cmd_cursor_iter_init(&ci, &c);
    assert_int_equal(kr_cmd_cursor_next(&ci, &g, &v), 1);
    assert_str(&g, "billing");
    assert_int_equal(v, 10);
    assert_int_equal(kr_cmd_cursor_next(&ci, &g, &v), 1);
    assert_int_equal(v, 11);
    assert_int_equal(kr_cmd_cursor_next(&ci, &g, &v), 0);

    kr_buf_reset(&b);
    kr_cmd_put_retention(&b, &topic, 500);
    c = decoded();
    assert_int_equal(c.type, KR_CMD_RETENTION);
    assert_int_equal(c.value, 500);
    assert_string_equal(kr_cmd_name(c.type), "RETENTION");

    kr_buf_reset(&b);
    kr_cmd_put_koffset(&b, &topic, &group, 42, (const uint8_t *)"meta", 4);
    c = decoded();
    assert_int_equal(c.type, KR_CMD_KOFFSET_COMMIT);
    assert_str(&c.name, "billing");
    assert_int_equal(c.value, 42);
    assert_true(c.has_metadata);
    assert_str(&c.payload, "meta");
    kr_buf_reset(&b);
    kr_cmd_put_koffset(&b, &topic, &group, 0, NULL, 0);
    c = decoded();
    assert_false(c.has_metadata);
    assert_string_equal(kr_cmd_name(c.type), "KOFFSET_COMMIT");

    kr_topic_config set = {.mask = 1u << KR_TC_RETENTION_MS | 1u << KR_TC_CLEANUP,
                           .reset = 1u << KR_TC_SEGMENT_MS};
    set.v[KR_TC_RETENTION_MS] = 60000;
    set.v[KR_TC_CLEANUP] = KR_CLEANUP_COMPACT;
    kr_buf_reset(&b);
    kr_cmd_put_topic_config(&b, &topic, &set);
    c = decoded();
    assert_int_equal(c.type, KR_CMD_TOPIC_CONFIG);
    assert_str(&c.topic, "orders");
    assert_int_equal(c.cfg.mask, set.mask);
    assert_int_equal(c.cfg.reset, set.reset);
    assert_int_equal(c.cfg.v[KR_TC_RETENTION_MS], 60000);
    assert_int_equal(c.cfg.v[KR_TC_CLEANUP], KR_CLEANUP_COMPACT);
    assert_string_equal(kr_cmd_name(c.type), "TOPIC_CONFIG");
}

/* Refused with a sentence naming what is wrong. */
static void refused(const char *want)
{
    kr_cmd c;
    err[0] = '\0';
    assert_int_equal(kr_cmd_decode(b.data, b.len, &c, err, sizeof err), -1);
    if (strstr(err, want) == NULL)
        fail_msg("message \"%s\" lacks \"%s\"", err, want);
}

static void test_refusals(void **state)
{
    (void)state;
    kr_str bad_topic = S("a/b"), topic = S("t"), empty = S("");
    kr_buf_reset(&b);
    refused("not a non-empty CBOR array");
    kr_cbor_put_array(&b, 2);
    kr_cbor_put_uint(&b, 99);
    kr_cbor_put_uint(&b, 1);
    refused("not known to this build");
    kr_buf_reset(&b);
    kr_cmd_put_topic(&b, KR_CMD_TOPIC_CREATE, &bad_topic);
    refused("not a topic name");
    kr_buf_reset(&b);
    kr_cmd_put_topic(&b, KR_CMD_TOPIC_CREATE, &topic);
    kr_cbor_put_uint(&b, 0); /* trailing bytes */
    refused("not a non-empty CBOR array");
    kr_buf_reset(&b);
    kr_cbor_put_array(&b, 3);
    kr_cbor_put_uint(&b, KR_CMD_TOPIC_CREATE);
    kr_cbor_put_cstr(&b, "t");
    kr_cbor_put_uint(&b, 1);
    refused("wrong number of items");
    kr_buf_reset(&b);
    kr_cmd_put_group_delete(&b, &topic, &empty);
    refused("the group is not valid");
    kr_buf_reset(&b);
    kr_cmd_put_node_info(&b, 0, "a:1", NULL);
    refused("node 0");
    kr_buf_reset(&b);
    kr_cbor_put_array(&b, 3);
    kr_cbor_put_uint(&b, KR_CMD_GROUP_CURSORS);
    kr_cbor_put_cstr(&b, "t");
    kr_cbor_put_array(&b, 1);
    kr_cbor_put_array(&b, 2);
    kr_cbor_put_bytes(&b, "g", 1);
    kr_cbor_put_cstr(&b, "x");
    refused("cursor");
    kr_buf_reset(&b);
    kr_cbor_put_array(&b, 5);
    kr_cbor_put_uint(&b, KR_CMD_PUBLISH);
    kr_cbor_put_cstr(&b, "t");
    kr_cbor_put_uint(&b, 1);
    kr_cbor_put_uint(&b, 1);
    kr_cbor_put_bytes(&b, "", 0);
    refused("the producer");
    /* A setting's value is checked as a client's `set` is. */
    kr_buf_reset(&b);
    kr_cbor_put_array(&b, 3);
    kr_cbor_put_uint(&b, KR_CMD_TOPIC_CONFIG);
    kr_cbor_put_cstr(&b, "t");
    kr_cbor_put_map(&b, 1);
    kr_cbor_put_cstr(&b, "segment_bytes");
    kr_cbor_put_uint(&b, 1);
    refused("segment_bytes");
    kr_buf_reset(&b);
    kr_cbor_put_array(&b, 3);
    kr_cbor_put_uint(&b, KR_CMD_TOPIC_CONFIG);
    kr_cbor_put_cstr(&b, "t");
    kr_cbor_put_uint(&b, 1);
    refused("map");
}

/* A BATCH: its sub-commands come back in order, decoded; only PUBLISHes
 * and registrations, each well-formed, are taken. */
static void test_batch(void **state)
{
    (void)state;
    kr_str topic = S("orders"), id = S("shop-1"), payload = S("\xa0");
    kr_buf sub;
    kr_buf_init(&sub, 1 << 16);
    kr_buf_reset(&b);
    kr_cmd_put_batch_begin(&b, 3);
    kr_cmd_put_publish(&sub, &topic, 1, &id, 2, &payload);
    kr_cmd_put_batch_sub(&b, sub.data, sub.len);
    kr_buf_reset(&sub);
    kr_cmd_put_producer_register(&sub, &topic, &id, 3);
    kr_cmd_put_batch_sub(&b, sub.data, sub.len);
    kr_buf_reset(&sub);
    kr_cmd_put_publish(&sub, &topic, 9, NULL, 0, &payload);
    kr_cmd_put_batch_sub(&b, sub.data, sub.len);
    kr_cmd c = decoded(), one;
    assert_int_equal(c.type, KR_CMD_BATCH);
    assert_string_equal(kr_cmd_name(c.type), "BATCH");
    assert_int_equal(c.n_subs, 3);
    kr_cmd_sub_iter si;
    kr_cmd_sub_iter_init(&si, &c);
    assert_int_equal(kr_cmd_sub_next(&si, &one), 1);
    assert_int_equal(one.type, KR_CMD_PUBLISH);
    assert_int_equal(one.epoch, 2);
    assert_str(&one.payload, "\xa0");
    assert_int_equal(kr_cmd_sub_next(&si, &one), 1);
    assert_int_equal(one.type, KR_CMD_PRODUCER_REGISTER);
    assert_int_equal(one.epoch, 3);
    assert_int_equal(kr_cmd_sub_next(&si, &one), 1);
    assert_false(one.has_producer);
    assert_int_equal(one.value, 9);
    assert_int_equal(kr_cmd_sub_next(&si, &one), 0);

    /* Refusals: no sub-command, another kind, a BATCH inside, a bad one,
     * one not in a byte string. */
    kr_buf_reset(&b);
    kr_cbor_put_array(&b, 2);
    kr_cbor_put_uint(&b, KR_CMD_BATCH);
    kr_cbor_put_array(&b, 0);
    refused("1 to 2^20-1");
    kr_buf_reset(&sub);
    kr_cmd_put_topic(&sub, KR_CMD_TOPIC_CREATE, &topic);
    kr_buf_reset(&b);
    kr_cmd_put_batch_begin(&b, 1);
    kr_cmd_put_batch_sub(&b, sub.data, sub.len);
    refused("neither a PUBLISH nor a PRODUCER_REGISTER");
    kr_buf inner;
    kr_buf_init(&inner, 1 << 16);
    kr_buf_reset(&sub);
    kr_cmd_put_publish(&sub, &topic, 1, NULL, 0, &payload);
    kr_cmd_put_batch_begin(&inner, 1);
    kr_cmd_put_batch_sub(&inner, sub.data, sub.len);
    kr_buf_reset(&b);
    kr_cmd_put_batch_begin(&b, 1);
    kr_cmd_put_batch_sub(&b, inner.data, inner.len);
    refused("neither a PUBLISH nor a PRODUCER_REGISTER");
    kr_buf_free(&inner);
    kr_buf_reset(&b);
    kr_cmd_put_batch_begin(&b, 2);
    kr_cmd_put_batch_sub(&b, sub.data, sub.len);
    kr_cmd_put_batch_sub(&b, sub.data, sub.len - 1); /* cut short */
    refused("sub-command 1:");
    kr_buf_reset(&b);
    kr_cmd_put_batch_begin(&b, 1);
    kr_cbor_put_raw(&b, sub.data, sub.len); /* an array, not bytes */
    refused("not a byte string");
    kr_buf_free(&sub);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_roundtrips, setup, teardown),
        cmocka_unit_test_setup_teardown(test_refusals, setup, teardown),
        cmocka_unit_test_setup_teardown(test_batch, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
