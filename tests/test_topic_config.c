/*
 * tests/test_topic_config.c - topic settings as the protocol names them
 * (proto/topic_config.h): names, cleanup policies, ranges, the CBOR map
 * both ways (strict for requests, lenient for replies and records), merge,
 * and "name=value" text with unit suffixes.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "proto/topic_config.h"

static void test_names(void **state)
{
    (void)state;
    for (int i = 0; i < KR_TC_N; i++) {
        const char *n = kr_tc_name(i);
        assert_non_null(n);
        assert_int_equal(kr_tc_lookup(n, strlen(n)), i);
    }
    assert_null(kr_tc_name(-1));
    assert_null(kr_tc_name(KR_TC_N));
    assert_int_equal(kr_tc_lookup("cleanup", 7), KR_TC_CLEANUP);
    assert_int_equal(kr_tc_lookup("cleanupx", 8), -1);
    assert_int_equal(kr_tc_lookup("clean", 5), -1);
    assert_int_equal(kr_tc_lookup("", 0), -1);
}

static void test_cleanup(void **state)
{
    (void)state;
    uint64_t v = 0;
    assert_int_equal(kr_cleanup_parse("delete", 6, &v), 0);
    assert_int_equal(v, KR_CLEANUP_DELETE);
    assert_int_equal(kr_cleanup_parse("compact", 7, &v), 0);
    assert_int_equal(v, KR_CLEANUP_COMPACT);
    assert_int_equal(kr_cleanup_parse("compact,delete", 14, &v), 0);
    assert_int_equal(v, KR_CLEANUP_COMPACT | KR_CLEANUP_DELETE);
    v = 0;
    assert_int_equal(kr_cleanup_parse("delete,compact", 14, &v), 0);
    assert_int_equal(v, KR_CLEANUP_COMPACT | KR_CLEANUP_DELETE);
    assert_int_equal(kr_cleanup_parse("Delete", 6, &v), -1);
    assert_int_equal(kr_cleanup_parse("compact, delete", 15, &v), -1);
    assert_int_equal(kr_cleanup_parse("", 0, &v), -1);
    assert_string_equal(kr_cleanup_name(KR_CLEANUP_DELETE), "delete");
    assert_string_equal(kr_cleanup_name(KR_CLEANUP_COMPACT), "compact");
    assert_string_equal(kr_cleanup_name(3), "compact,delete");
    assert_null(kr_cleanup_name(0));
    assert_null(kr_cleanup_name(4));
}

static void test_ranges(void **state)
{
    (void)state;
    char msg[256];
    assert_int_equal(kr_tc_check(KR_TC_SEGMENT_BYTES, 4096, msg, sizeof msg), 0);
    assert_int_equal(kr_tc_check(KR_TC_SEGMENT_BYTES, 1ull << 40, msg, sizeof msg), 0);
    assert_int_equal(kr_tc_check(KR_TC_SEGMENT_BYTES, 4095, msg, sizeof msg), -1);
    assert_non_null(strstr(msg, "segment_bytes"));
    assert_int_equal(kr_tc_check(KR_TC_SEGMENT_BYTES, (1ull << 40) + 1, msg, sizeof msg), -1);
    assert_int_equal(kr_tc_check(KR_TC_SEGMENT_MS, 0, msg, sizeof msg), 0);
    assert_int_equal(kr_tc_check(KR_TC_SEGMENT_MS, 100, msg, sizeof msg), 0);
    assert_int_equal(kr_tc_check(KR_TC_SEGMENT_MS, 99, msg, sizeof msg), -1);
    assert_non_null(strstr(msg, "segment_ms"));
    assert_int_equal(kr_tc_check(KR_TC_RETENTION_MS, 0, msg, sizeof msg), 0);
    assert_int_equal(kr_tc_check(KR_TC_RETENTION_BYTES, UINT64_MAX, msg, sizeof msg), 0);
    assert_int_equal(kr_tc_check(KR_TC_CLEANUP, 0, msg, sizeof msg), -1);
    assert_int_equal(kr_tc_check(KR_TC_CLEANUP, 3, msg, sizeof msg), 0);
    assert_int_equal(kr_tc_check(KR_TC_N, 0, msg, sizeof msg), -1);
}

/* Decode a map built by the encoder (or by hand, as raw CBOR). */
static krappy_err decode(const uint8_t *p, size_t n, bool strict, kr_topic_config *out, char *msg,
                         size_t msglen)
{
    kr_cbor_item m;
    assert_int_equal(kr_cbor_read_exact(p, n, &m), 0);
    return kr_tc_decode(&m, strict, out, msg, msglen);
}

static void test_map_round_trip(void **state)
{
    (void)state;
    kr_topic_config c = {.mask = KR_TC_ALL}, d;
    c.v[KR_TC_CLEANUP] = KR_CLEANUP_COMPACT | KR_CLEANUP_DELETE;
    c.v[KR_TC_RETENTION_BYTES] = 1ull << 33;
    c.v[KR_TC_RETENTION_MS] = 0;
    c.v[KR_TC_DELETE_RETENTION_MS] = 86400000;
    c.v[KR_TC_SEGMENT_BYTES] = 1 << 20;
    c.v[KR_TC_SEGMENT_MS] = 600000;
    kr_buf b;
    kr_buf_init(&b, 1024);
    kr_tc_encode(&b, &c);
    char msg[256];
    assert_int_equal(decode(b.data, b.len, true, &d, msg, sizeof msg), KRAPPY_OK);
    assert_memory_equal(&c, &d, sizeof c);

    /* Only the masked ones go out. */
    kr_buf_reset(&b);
    kr_topic_config one = {.mask = 1u << KR_TC_SEGMENT_MS};
    one.v[KR_TC_SEGMENT_MS] = 1000;
    one.v[KR_TC_RETENTION_MS] = 5; /* not masked: not sent */
    kr_tc_encode(&b, &one);
    assert_int_equal(decode(b.data, b.len, true, &d, msg, sizeof msg), KRAPPY_OK);
    assert_int_equal(d.mask, 1u << KR_TC_SEGMENT_MS);
    assert_int_equal(d.v[KR_TC_SEGMENT_MS], 1000);
    assert_int_equal(d.v[KR_TC_RETENTION_MS], 0);
    kr_buf_free(&b);
}

static void test_map_refusals(void **state)
{
    (void)state;
    kr_topic_config d;
    char msg[256];
    /* {"nope": 1}: strict refuses, naming it; lenient skips it. */
    static const uint8_t unknown[] = {0xa1, 0x64, 'n', 'o', 'p', 'e', 0x01};
    assert_int_equal(decode(unknown, sizeof unknown, true, &d, msg, sizeof msg),
                     KRAPPY_E_INVALID_ARGUMENT);
    assert_non_null(strstr(msg, "'nope'"));
    assert_int_equal(decode(unknown, sizeof unknown, false, &d, msg, sizeof msg), KRAPPY_OK);
    assert_int_equal(d.mask, 0);
    /* {"cleanup": 1}: not text. */
    static const uint8_t cl_uint[] = {0xa1, 0x67, 'c', 'l', 'e', 'a', 'n', 'u', 'p', 0x01};
    assert_int_equal(decode(cl_uint, sizeof cl_uint, true, &d, msg, sizeof msg),
                     KRAPPY_E_INVALID_ARGUMENT);
    assert_non_null(strstr(msg, "cleanup"));
    /* {"cleanup": "all"}. */
    static const uint8_t cl_bad[] = {0xa1, 0x67, 'c',  'l', 'e', 'a', 'n',
                                     'u',  'p',  0x63, 'a', 'l', 'l'};
    assert_int_equal(decode(cl_bad, sizeof cl_bad, false, &d, msg, sizeof msg),
                     KRAPPY_E_INVALID_ARGUMENT);
    /* {"segment_ms": "1h"}: a uint setting given text. */
    static const uint8_t ms_text[] = {0xa1, 0x6a, 's', 'e', 'g',  'm', 'e', 'n',
                                      't',  '_',  'm', 's', 0x62, '1', 'h'};
    assert_int_equal(decode(ms_text, sizeof ms_text, true, &d, msg, sizeof msg),
                     KRAPPY_E_INVALID_ARGUMENT);
    assert_non_null(strstr(msg, "segment_ms"));
    /* {"segment_ms": 5}: out of range. */
    static const uint8_t ms_low[] = {0xa1, 0x6a, 's', 'e', 'g', 'm', 'e',
                                     'n',  't',  '_', 'm', 's', 0x05};
    assert_int_equal(decode(ms_low, sizeof ms_low, true, &d, msg, sizeof msg),
                     KRAPPY_E_INVALID_ARGUMENT);
    /* {"segment_ms": null}: a change resets it; a record or a reply does
     * not hold it. */
    static const uint8_t ms_null[] = {0xa1, 0x6a, 's', 'e', 'g', 'm', 'e',
                                      'n',  't',  '_', 'm', 's', 0xf6};
    assert_int_equal(decode(ms_null, sizeof ms_null, true, &d, msg, sizeof msg), KRAPPY_OK);
    assert_int_equal(d.mask, 0);
    assert_int_equal(d.reset, 1u << KR_TC_SEGMENT_MS);
    assert_int_equal(decode(ms_null, sizeof ms_null, false, &d, msg, sizeof msg), KRAPPY_OK);
    assert_int_equal(d.mask, 0);
    assert_int_equal(d.reset, 0);
    /* {1: 2}: a key that is not text; [] : not a map. */
    static const uint8_t int_key[] = {0xa1, 0x01, 0x02}, arr[] = {0x80};
    assert_int_equal(decode(int_key, sizeof int_key, true, &d, msg, sizeof msg),
                     KRAPPY_E_INVALID_ARGUMENT);
    assert_int_equal(decode(arr, sizeof arr, true, &d, msg, sizeof msg), KRAPPY_E_INVALID_ARGUMENT);
    /* An indefinite-length text key is read too: {_ "cleanup"_: "compact"}. */
    static const uint8_t indef[] = {0xa1, 0x7f, 0x63, 'c', 'l', 'e', 0x64, 'a', 'n', 'u',
                                    'p',  0xff, 0x67, 'c', 'o', 'm', 'p',  'a', 'c', 't'};
    assert_int_equal(decode(indef, sizeof indef, true, &d, msg, sizeof msg), KRAPPY_OK);
    assert_int_equal(d.v[KR_TC_CLEANUP], KR_CLEANUP_COMPACT);
}

static void test_merge(void **state)
{
    (void)state;
    kr_topic_config a = {.mask = 1u << KR_TC_CLEANUP}, b = {.mask = 1u << KR_TC_SEGMENT_MS};
    a.v[KR_TC_CLEANUP] = KR_CLEANUP_DELETE;
    b.v[KR_TC_SEGMENT_MS] = 200;
    b.v[KR_TC_CLEANUP] = KR_CLEANUP_COMPACT; /* not masked: a keeps its own */
    kr_tc_merge(&a, &b);
    assert_int_equal(a.mask, (1u << KR_TC_CLEANUP) | (1u << KR_TC_SEGMENT_MS));
    assert_int_equal(a.v[KR_TC_CLEANUP], KR_CLEANUP_DELETE);
    assert_int_equal(a.v[KR_TC_SEGMENT_MS], 200);
    /* A reset drops the setting; one that a is without changes nothing. */
    kr_topic_config r = {.reset = (1u << KR_TC_CLEANUP) | (1u << KR_TC_RETENTION_MS)};
    kr_tc_merge(&a, &r);
    assert_int_equal(a.mask, 1u << KR_TC_SEGMENT_MS);
    assert_int_equal(a.reset, 0);
}

/* A change with resets goes on the wire as nulls, and comes back. */
static void test_reset_round_trip(void **state)
{
    (void)state;
    kr_topic_config c = {0}, d;
    char msg[256];
    assert_int_equal(kr_tc_parse_assign("segment_ms=1s", &c, msg, sizeof msg), 0);
    assert_int_equal(kr_tc_parse_assign("cleanup=default", &c, msg, sizeof msg), 0);
    assert_int_equal(kr_tc_parse_assign("retention_ms=default", &c, msg, sizeof msg), 0);
    assert_int_equal(kr_tc_parse_assign("retention_ms=5s", &c, msg, sizeof msg), 0); /* last wins */
    assert_int_equal(kr_tc_parse_assign("segment_bytes=default", &c, msg, sizeof msg), 0);
    assert_int_equal(c.mask, (1u << KR_TC_SEGMENT_MS) | (1u << KR_TC_RETENTION_MS));
    assert_int_equal(c.reset, (1u << KR_TC_CLEANUP) | (1u << KR_TC_SEGMENT_BYTES));
    kr_buf b;
    kr_buf_init(&b, 4096);
    kr_tc_encode(&b, &c);
    assert_int_equal(decode(b.data, b.len, true, &d, msg, sizeof msg), KRAPPY_OK);
    assert_int_equal(d.mask, c.mask);
    assert_int_equal(d.reset, c.reset);
    assert_int_equal(d.v[KR_TC_SEGMENT_MS], 1000);
    assert_int_equal(d.v[KR_TC_RETENTION_MS], 5000);
    kr_buf_free(&b);
    /* "default" is no value of a setting: only the word resets. */
    kr_topic_config x = {0};
    assert_int_equal(kr_tc_parse_assign("cleanup=defaults", &x, msg, sizeof msg), -1);
    assert_non_null(strstr(msg, "default"));
}

static void test_assign(void **state)
{
    (void)state;
    kr_topic_config c = {0};
    char msg[256];
    assert_int_equal(kr_tc_parse_assign("cleanup=compact,delete", &c, msg, sizeof msg), 0);
    assert_int_equal(kr_tc_parse_assign("segment_bytes=16M", &c, msg, sizeof msg), 0);
    assert_int_equal(kr_tc_parse_assign("retention_bytes=2G", &c, msg, sizeof msg), 0);
    assert_int_equal(kr_tc_parse_assign("retention_ms=7d", &c, msg, sizeof msg), 0);
    assert_int_equal(kr_tc_parse_assign("delete_retention_ms=90s", &c, msg, sizeof msg), 0);
    assert_int_equal(kr_tc_parse_assign("segment_ms=250", &c, msg, sizeof msg), 0);
    assert_int_equal(c.mask, KR_TC_ALL);
    assert_int_equal(c.v[KR_TC_CLEANUP], 3);
    assert_int_equal(c.v[KR_TC_SEGMENT_BYTES], 16u << 20);
    assert_int_equal(c.v[KR_TC_RETENTION_BYTES], 2ull << 30);
    assert_int_equal(c.v[KR_TC_RETENTION_MS], 7ull * 86400000);
    assert_int_equal(c.v[KR_TC_DELETE_RETENTION_MS], 90000);
    assert_int_equal(c.v[KR_TC_SEGMENT_MS], 250);
    assert_int_equal(kr_tc_parse_assign("segment_ms=1h", &c, msg, sizeof msg), 0);
    assert_int_equal(c.v[KR_TC_SEGMENT_MS], 3600000);
    assert_int_equal(kr_tc_parse_assign("retention_ms=5m", &c, msg, sizeof msg), 0);
    assert_int_equal(c.v[KR_TC_RETENTION_MS], 300000);
    assert_int_equal(kr_tc_parse_assign("retention_bytes=3K", &c, msg, sizeof msg), 0);
    assert_int_equal(c.v[KR_TC_RETENTION_BYTES], 3072);

    static const char *const bad[] = {"cleanup",
                                      "cleanup=",
                                      "=compact",
                                      "colour=red",
                                      "cleanup=both",
                                      "segment_bytes=1",
                                      "segment_bytes=16Q",
                                      "segment_ms=1G",
                                      "retention_ms=-1",
                                      "retention_ms=",
                                      "segment_bytes=M",
                                      "retention_bytes=99999999999999999999",
                                      "retention_bytes=17179869184G",
                                      "segment_ms=50"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        kr_topic_config x = {0};
        msg[0] = '\0';
        assert_int_equal(kr_tc_parse_assign(bad[i], &x, msg, sizeof msg), -1);
        assert_int_equal(x.mask, 0);
        assert_true(strlen(msg) > 10);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_names),        cmocka_unit_test(test_cleanup),
        cmocka_unit_test(test_ranges),       cmocka_unit_test(test_map_round_trip),
        cmocka_unit_test(test_map_refusals), cmocka_unit_test(test_merge),
        cmocka_unit_test(test_assign),       cmocka_unit_test(test_reset_round_trip),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
