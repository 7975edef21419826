/*
 * tests/test_cbor.c - the allocation-free CBOR reader and the shortest-form
 * writer, against RFC 8949 Appendix A (examples) and Appendix F (malformed
 * items), plus the hostile inputs a server must survive.
 */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include <cbor.h>

#include "proto/cbor.h"

/* Bytes of a hex string ("83 01 02" or "830102"); returns the length. */
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
        else if (*p >= 'A' && *p <= 'F')
            v = *p - 'A' + 10;
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

/* Read hex exactly; assert it is well-formed and return the item. */
static kr_cbor_item read_ok(const char *hex, uint8_t *buf)
{
    size_t n = unhex(hex, buf);
    kr_cbor_item it;
    if (kr_cbor_read_exact(buf, n, &it) != 0)
        fail_msg("expected well-formed: %s", hex);
    assert_ptr_equal(it.raw, buf);
    assert_int_equal(it.raw_len, n);
    return it;
}

static void read_bad(const char *hex)
{
    uint8_t buf[64];
    size_t n = unhex(hex, buf);
    kr_cbor_item it;
    if (kr_cbor_read(buf, n, &it) != -1)
        fail_msg("expected malformed: %s", hex);
}

/* ---- reading: every kind ---- */

static void test_read_uints(void **state)
{
    (void)state;
    static const struct {
        const char *hex;
        uint64_t v;
        size_t len;
    } cases[] = {
        {"00", 0, 1},
        {"01", 1, 1},
        {"0a", 10, 1},
        {"17", 23, 1},
        {"1818", 24, 2},
        {"1819", 25, 2},
        {"1864", 100, 2},
        {"18ff", 255, 2},
        {"190100", 256, 3},
        {"1903e8", 1000, 3},
        {"19ffff", 65535, 3},
        {"1a00010000", 65536, 5},
        {"1a000f4240", 1000000, 5},
        {"1affffffff", 4294967295u, 5},
        {"1b0000000100000000", 4294967296u, 9},
        {"1b000000e8d4a51000", 1000000000000u, 9},
        {"1bffffffffffffffff", UINT64_MAX, 9},
        /* non-shortest forms are well-formed too */
        {"1800", 0, 2},
        {"1b0000000000000001", 1, 9},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        uint8_t buf[16];
        kr_cbor_item it = read_ok(cases[i].hex, buf);
        assert_int_equal(it.kind, KR_CBOR_UINT);
        assert_true(it.u == cases[i].v);
        assert_int_equal(it.raw_len, cases[i].len);
        assert_int_equal(it.head_len, cases[i].len);
        assert_false(it.indefinite);
    }
}

static void test_read_negints(void **state)
{
    (void)state;
    static const struct {
        const char *hex;
        uint64_t u; /* value is -1 - u */
    } cases[] = {
        {"20", 0},       /* -1 */
        {"29", 9},       /* -10 */
        {"37", 23},      /* -24 */
        {"3818", 24},    /* -25 */
        {"3863", 99},    /* -100 */
        {"3903e7", 999}, /* -1000 */
        {"3a0001869f", 99999},
        {"3bffffffffffffffff", UINT64_MAX}, /* -18446744073709551616 */
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        uint8_t buf[16];
        kr_cbor_item it = read_ok(cases[i].hex, buf);
        assert_int_equal(it.kind, KR_CBOR_NEGINT);
        assert_true(it.u == cases[i].u);
    }
}

static void test_read_floats(void **state)
{
    (void)state;
    static const struct {
        const char *hex;
        double f;
    } cases[] = {
        {"f90000", 0.0},
        {"f93c00", 1.0},
        {"fb3ff199999999999a", 1.1},
        {"f93e00", 1.5},
        {"f97bff", 65504.0},
        {"fa47c35000", 100000.0},
        {"fa7f7fffff", 3.4028234663852886e+38},
        {"fb7e37e43c8800759c", 1.0e+300},
        {"f90001", 5.960464477539063e-8},
        {"f90400", 0.00006103515625},
        {"f9c400", -4.0},
        {"fbc010666666666666", -4.1},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        uint8_t buf[16];
        kr_cbor_item it = read_ok(cases[i].hex, buf);
        assert_int_equal(it.kind, KR_CBOR_FLOAT);
        assert_true(it.f == cases[i].f);
    }
    uint8_t buf[16];
    kr_cbor_item it = read_ok("f98000", buf);
    assert_true(it.f == 0.0 && signbit(it.f));
    it = read_ok("f97c00", buf);
    assert_true(isinf(it.f) && it.f > 0);
    it = read_ok("f9fc00", buf);
    assert_true(isinf(it.f) && it.f < 0);
    it = read_ok("f97e00", buf);
    assert_true(isnan(it.f));
    it = read_ok("fa7fc00000", buf);
    assert_true(isnan(it.f));
    it = read_ok("fb7ff8000000000000", buf);
    assert_true(isnan(it.f));
}

static void test_read_simple(void **state)
{
    (void)state;
    uint8_t buf[16];
    assert_int_equal(read_ok("f4", buf).kind, KR_CBOR_FALSE);
    assert_int_equal(read_ok("f5", buf).kind, KR_CBOR_TRUE);
    assert_int_equal(read_ok("f6", buf).kind, KR_CBOR_NULL);
    assert_int_equal(read_ok("f7", buf).kind, KR_CBOR_UNDEF);
    /* Unassigned simple values are well-formed (libcbor 0.8 refuses them). */
    kr_cbor_item it = read_ok("f0", buf);
    assert_int_equal(it.kind, KR_CBOR_SIMPLE);
    assert_int_equal(it.u, 16);
    it = read_ok("e0", buf);
    assert_int_equal(it.kind, KR_CBOR_SIMPLE);
    assert_int_equal(it.u, 0);
    it = read_ok("f3", buf);
    assert_int_equal(it.u, 19);
    it = read_ok("f8ff", buf);
    assert_int_equal(it.kind, KR_CBOR_SIMPLE);
    assert_int_equal(it.u, 255);
    it = read_ok("f820", buf);
    assert_int_equal(it.u, 32);
    /* Two-byte forms of values below 32 are not well-formed. */
    for (int v = 0; v < 32; v++) {
        uint8_t b[2] = {0xf8, (uint8_t)v};
        assert_int_equal(kr_cbor_read(b, 2, &it), -1);
    }
}

static void test_read_strings(void **state)
{
    (void)state;
    uint8_t buf[64];
    kr_cbor_item it = read_ok("40", buf);
    assert_int_equal(it.kind, KR_CBOR_BYTES);
    assert_int_equal(it.str_len, 0);
    assert_int_equal(it.head_len, 1);

    it = read_ok("4401020304", buf);
    assert_int_equal(it.kind, KR_CBOR_BYTES);
    assert_int_equal(it.str_len, 4);
    assert_ptr_equal(it.str, buf + 1);
    assert_memory_equal(it.str, "\x01\x02\x03\x04", 4);
    assert_int_equal(it.head_len, 1);

    it = read_ok("60", buf);
    assert_int_equal(it.kind, KR_CBOR_TEXT);
    assert_int_equal(it.str_len, 0);

    it = read_ok("6449455446", buf);
    assert_int_equal(it.kind, KR_CBOR_TEXT);
    assert_memory_equal(it.str, "IETF", 4);
    assert_true(kr_cbor_text_eq(&it, "IETF"));
    assert_false(kr_cbor_text_eq(&it, "IETG"));
    assert_false(kr_cbor_text_eq(&it, "IET"));

    it = read_ok("62c3bc", buf);
    assert_true(kr_cbor_text_eq(&it, "\xc3\xbc"));
    it = read_ok("63e6b0b4", buf);
    assert_true(kr_cbor_text_eq(&it, "\xe6\xb0\xb4"));

    /* 1-, 2-, 4- and 8-byte lengths. */
    it = read_ok("7818 4142434445464748494a4b4c4d4e4f505152535455565758", buf);
    assert_int_equal(it.str_len, 24);
    assert_int_equal(it.head_len, 2);
    it = read_ok("590003 616263", buf);
    assert_int_equal(it.kind, KR_CBOR_BYTES);
    assert_int_equal(it.head_len, 3);
    assert_memory_equal(it.str, "abc", 3);
    it = read_ok("7a00000002 6869", buf);
    assert_int_equal(it.head_len, 5);
    assert_true(kr_cbor_text_eq(&it, "hi"));
    it = read_ok("5b0000000000000001 ff", buf);
    assert_int_equal(it.head_len, 9);
    assert_int_equal(it.str_len, 1);
    assert_int_equal(it.str[0], 0xff);

    /* Bytes are not text. */
    it = read_ok("4449455446", buf);
    assert_false(kr_cbor_text_eq(&it, "IETF"));
}

static void test_read_indefinite_strings(void **state)
{
    (void)state;
    uint8_t buf[64], out[16];
    kr_cbor_item it = read_ok("5f42010243030405ff", buf);
    assert_int_equal(it.kind, KR_CBOR_BYTES);
    assert_true(it.indefinite);
    assert_null(it.str);
    assert_int_equal(it.str_len, 5);
    assert_int_equal(it.head_len, 1);
    assert_int_equal(kr_cbor_str_copy(&it, out, sizeof out), 5);
    assert_memory_equal(out, "\x01\x02\x03\x04\x05", 5);
    /* A short destination gets the first bytes; the full length is told. */
    memset(out, 0, sizeof out);
    assert_int_equal(kr_cbor_str_copy(&it, out, 3), 5);
    assert_memory_equal(out, "\x01\x02\x03\x00", 4);

    it = read_ok("7f657374726561646d696e67ff", buf);
    assert_int_equal(it.kind, KR_CBOR_TEXT);
    assert_int_equal(it.str_len, 9);
    assert_true(kr_cbor_text_eq(&it, "streaming"));
    assert_false(kr_cbor_text_eq(&it, "streamint"));
    assert_false(kr_cbor_text_eq(&it, "streamin"));

    /* No chunks, empty chunks. */
    it = read_ok("7fff", buf);
    assert_int_equal(it.str_len, 0);
    assert_true(kr_cbor_text_eq(&it, ""));
    it = read_ok("5f4040ff", buf);
    assert_int_equal(it.str_len, 0);
    assert_int_equal(kr_cbor_str_copy(&it, out, sizeof out), 0);

    /* Chunks iterate. */
    it = read_ok("7f6161 6162 ff", buf);
    kr_cbor_iter ci;
    kr_cbor_item chunk;
    kr_cbor_iter_init(&ci, &it);
    assert_int_equal(kr_cbor_iter_next(&ci, &chunk), 1);
    assert_true(kr_cbor_text_eq(&chunk, "a"));
    assert_int_equal(kr_cbor_iter_next(&ci, &chunk), 1);
    assert_true(kr_cbor_text_eq(&chunk, "b"));
    assert_int_equal(kr_cbor_iter_next(&ci, &chunk), 0);
    assert_true(kr_cbor_text_eq(&it, "ab"));

    /* Chunks must be definite strings of the same major type. */
    read_bad("5f6161ff"); /* text chunk in bytes */
    read_bad("7f4161ff"); /* bytes chunk in text */
    read_bad("5f00ff");   /* int chunk */
    read_bad("5f21ff");
    read_bad("5f80ff");
    read_bad("5fa0ff");
    read_bad("5fc000ff");
    read_bad("5fe0ff");
    read_bad("5ff6ff");
    read_bad("5f5f4100ffff"); /* nested indefinite */
    read_bad("7f7f6100ffff");
    read_bad("5f4100"); /* no break */
}

static void test_read_arrays_maps(void **state)
{
    (void)state;
    uint8_t buf[128];
    kr_cbor_item it = read_ok("80", buf);
    assert_int_equal(it.kind, KR_CBOR_ARRAY);
    assert_int_equal(it.u, 0);

    it = read_ok("83010203", buf);
    assert_int_equal(it.u, 3);
    assert_int_equal(it.head_len, 1);
    kr_cbor_iter ai;
    kr_cbor_item x;
    kr_cbor_iter_init(&ai, &it);
    for (uint64_t k = 1; k <= 3; k++) {
        assert_int_equal(kr_cbor_iter_next(&ai, &x), 1);
        assert_int_equal(x.kind, KR_CBOR_UINT);
        assert_int_equal(x.u, k);
    }
    assert_int_equal(kr_cbor_iter_next(&ai, &x), 0);

    it = read_ok("8301820203820405", buf);
    assert_int_equal(it.u, 3);
    kr_cbor_iter_init(&ai, &it);
    assert_int_equal(kr_cbor_iter_next(&ai, &x), 1);
    assert_int_equal(kr_cbor_iter_next(&ai, &x), 1);
    assert_int_equal(x.kind, KR_CBOR_ARRAY);
    assert_int_equal(x.raw_len, 3);
    assert_ptr_equal(x.raw, buf + 2);

    /* [1, 2, ..., 25] with a one-byte count. */
    it = read_ok("98190102030405060708090a0b0c0d0e0f101112131415161718181819", buf);
    assert_int_equal(it.u, 25);
    assert_int_equal(it.head_len, 2);

    it = read_ok("a0", buf);
    assert_int_equal(it.kind, KR_CBOR_MAP);
    assert_int_equal(it.u, 0);
    it = read_ok("a201020304", buf);
    assert_int_equal(it.u, 2);
    it = read_ok("a26161016162820203", buf);
    assert_int_equal(it.u, 2);
    it = read_ok("826161a161626163", buf);
    assert_int_equal(it.u, 2);
    it = read_ok("a56161614161626142616361436164614461656145", buf);
    assert_int_equal(it.u, 5);
}

static void test_read_indefinite_containers(void **state)
{
    (void)state;
    uint8_t buf[128];
    kr_cbor_item it = read_ok("9fff", buf);
    assert_int_equal(it.kind, KR_CBOR_ARRAY);
    assert_true(it.indefinite);
    assert_int_equal(it.u, 0);
    kr_cbor_iter ai;
    kr_cbor_item x;
    kr_cbor_iter_init(&ai, &it);
    assert_int_equal(kr_cbor_iter_next(&ai, &x), 0);

    it = read_ok("9f018202039f0405ffff", buf);
    kr_cbor_iter_init(&ai, &it);
    assert_int_equal(kr_cbor_iter_next(&ai, &x), 1);
    assert_int_equal(x.u, 1);
    assert_int_equal(kr_cbor_iter_next(&ai, &x), 1);
    assert_int_equal(x.kind, KR_CBOR_ARRAY);
    assert_int_equal(kr_cbor_iter_next(&ai, &x), 1);
    assert_true(x.indefinite);
    assert_int_equal(x.raw_len, 4);
    assert_int_equal(kr_cbor_iter_next(&ai, &x), 0);

    read_ok("9f01820203820405ff", buf);
    read_ok("83018202039f0405ff", buf);
    read_ok("83019f0203ff820405", buf);
    it = read_ok("bf61610161629f0203ffff", buf);
    assert_int_equal(it.kind, KR_CBOR_MAP);
    assert_true(it.indefinite);
    read_ok("826161bf61626163ff", buf);
    it = read_ok("bf6346756ef563416d7421ff", buf);
    kr_cbor_item v;
    assert_int_equal(kr_cbor_map_find(&it, "Fun", &v), 1);
    assert_int_equal(v.kind, KR_CBOR_TRUE);
    assert_int_equal(kr_cbor_map_find(&it, "Amt", &v), 1);
    assert_int_equal(v.kind, KR_CBOR_NEGINT);
    assert_int_equal(v.u, 1);
    assert_int_equal(kr_cbor_map_find(&it, "Fum", &v), 0);

    /* An odd number of items in an indefinite map. */
    read_bad("bf00ff");
    read_bad("bf000000ff");
    read_bad("bf6161ff");
}

static void test_read_tags(void **state)
{
    (void)state;
    uint8_t buf[64];
    kr_cbor_item it = read_ok("c074323031332d30332d32315432303a30343a30305a", buf);
    assert_int_equal(it.kind, KR_CBOR_TAG);
    assert_int_equal(it.u, 0);
    assert_int_equal(it.head_len, 1);
    kr_cbor_iter ti;
    kr_cbor_item x;
    kr_cbor_iter_init(&ti, &it);
    assert_int_equal(kr_cbor_iter_next(&ti, &x), 1);
    assert_int_equal(x.kind, KR_CBOR_TEXT);
    assert_int_equal(x.str_len, 20);
    assert_int_equal(kr_cbor_iter_next(&ti, &x), 0);

    it = read_ok("c11a514b67b0", buf);
    assert_int_equal(it.u, 1);
    it = read_ok("d74401020304", buf);
    assert_int_equal(it.u, 23);
    it = read_ok("d818456449455446", buf);
    assert_int_equal(it.u, 24);
    assert_int_equal(it.head_len, 2);
    it = read_ok("d82076687474703a2f2f7777772e6578616d706c652e636f6d", buf);
    assert_int_equal(it.u, 32);
    it = read_ok("c249010000000000000000", buf);
    assert_int_equal(it.u, 2);
    it = read_ok("db000000010000000000", buf);
    assert_true(it.u == 4294967296u);
    /* One-byte tags 6..20 (libcbor 0.8 refuses them). */
    it = read_ok("c601", buf);
    assert_int_equal(it.kind, KR_CBOR_TAG);
    assert_int_equal(it.u, 6);
    it = read_ok("d4f6", buf);
    assert_int_equal(it.u, 20);
    /* Tag of a tag. */
    it = read_ok("c1c2c300", buf);
    assert_int_equal(it.raw_len, 4);
    /* A tag needs its item. */
    read_bad("c0");
    read_bad("c6");
    read_bad("81c0");
    read_bad("9fc0ff");
}

/* ---- malformed ---- */

static void test_reserved_and_lone_break(void **state)
{
    (void)state;
    static const char *const bad[] = {
        "1c",     "1d",   "1e",     "1f",     "3c",       "3d",     "3e",
        "3f",     "5c",   "5d",     "5e",     "7c",       "7d",     "7e",
        "9c",     "9d",   "9e",     "bc",     "bd",       "be",     "dc",
        "dd",     "de",   "df",     "fc",     "fd",       "fe",     "ff", /* lone break */
        "81ff", /* break in a definite array */
        "8200ff", "a1ff", "a1ff00", "a100ff", "a20000ff", "9f81ff", "9f829f819f9fffffffff",
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        read_bad(bad[i]);
}

static void test_truncated(void **state)
{
    (void)state;
    static const char *const bad[] = {
        "",
        "18",
        "1901",
        "1a010203",
        "1b01020304050607",
        "38",
        "58",
        "78",
        "98",
        "9a01ff00",
        "b8",
        "d8",
        "f8",
        "f900",
        "fa0000",
        "fb000000",
        "41",
        "61",
        "5affffffff00",
        "5bffffffffffffffff010203",
        "7affffffff00",
        "7b7fffffffffffffff010203",
        "81",
        "818181818181818181",
        "8200",
        "a1",
        "a20102",
        "a100",
        "a2000000",
        "c0",
        "5f4100",
        "7f6100",
        "9f",
        "9f0102",
        "bf",
        "bf01020102",
        "819f",
        "9f8000",
        "9f9f9f9f9fffffffff",
        "9f819f819f9fffffff",
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        read_bad(bad[i]);
}

/* Every proper prefix of a well-formed item is malformed (CBOR is
 * prefix-free), and the whole is read. */
static void test_truncation_every_byte(void **state)
{
    (void)state;
    static const char *const samples[] = {
        "bf61610161629f0203ffff",
        "a3 63636964 1864 65746f706963 6474657374 666576656e7473 82"
        "  82 4161 a1 61 78 f93c00"
        "  84 7f 6161 6162 ff 5f 4101 ff 1b0000000100000000 a1 6168 4401020304",
        "d8209f c2 4101 f8ff e0 fb3ff199999999999a 3bffffffffffffffff ff",
    };
    for (size_t s = 0; s < sizeof samples / sizeof samples[0]; s++) {
        uint8_t buf[256];
        size_t n = unhex(samples[s], buf);
        kr_cbor_item it;
        assert_int_equal(kr_cbor_read_exact(buf, n, &it), 0);
        for (size_t cut = 0; cut < n; cut++) {
            /* A fresh allocation of exactly `cut` bytes so ASan catches
             * any read past the end. */
            uint8_t *p = malloc(cut ? cut : 1);
            assert_non_null(p);
            memcpy(p, buf, cut);
            if (kr_cbor_read(p, cut, &it) != -1)
                fail_msg("sample %zu prefix of %zu bytes read as well-formed", s, cut);
            free(p);
        }
    }
}

static void test_trailing_bytes(void **state)
{
    (void)state;
    uint8_t buf[8];
    size_t n = unhex("a0 00", buf);
    kr_cbor_item it;
    assert_int_equal(kr_cbor_read(buf, n, &it), 0);
    assert_int_equal(it.raw_len, 1);
    assert_int_equal(kr_cbor_read_exact(buf, n, &it), -1);
    assert_int_equal(kr_cbor_read_exact(buf, 1, &it), 0);
    n = unhex("830102 03 ff", buf);
    assert_int_equal(kr_cbor_read(buf, n, &it), 0);
    assert_int_equal(it.raw_len, 4);
    assert_int_equal(kr_cbor_read_exact(buf, n, &it), -1);
}

/* Counts that cannot fit the bytes present are malformed at once (and a
 * count near 2^64 must not wrap the walker's counter). */
static void test_huge_counts(void **state)
{
    (void)state;
    read_bad("9b1000000000000000 00");   /* array of 2^60 */
    read_bad("9bffffffffffffffff 00");   /* array of 2^64-1 */
    read_bad("bbffffffffffffffff 0000"); /* map of 2^64-1 */
    read_bad("bb8000000000000000 0000"); /* map of 2^63: 2n wraps */
    read_bad("bb4000000000000001 0000");
    read_bad("5b8000000000000000 00"); /* bytes of 2^63 */
    read_bad("7bffffffffffffffff 00");
    read_bad("9affffffff 00");
    read_bad("82 9bffffffffffffffff 00"); /* wrap of pending */
    read_bad("82 9bfffffffffffffffe 0000");
    read_bad("83 01 9bfffffffffffffffd 00");
    read_bad("9f 9bffffffffffffffff ff");
    read_bad("a1 00 bbffffffffffffffff");
    read_bad("5f 5bffffffffffffffff 00 ff");
    /* Count exactly fits. */
    uint8_t buf[16];
    read_ok("85 0000000000", buf);
    read_bad("86 0000000000");
    read_ok("a2 00000000", buf);
    read_bad("a3 00000000");
}

static void test_deep_nesting(void **state)
{
    (void)state;
    const size_t depth = 1000000;
    uint8_t *p = malloc(depth + 1);
    assert_non_null(p);
    kr_cbor_item it;

    /* A million definite arrays: well-formed, no stack. */
    memset(p, 0x81, depth);
    p[depth] = 0x00;
    assert_int_equal(kr_cbor_read_exact(p, depth + 1, &it), 0);
    assert_int_equal(it.kind, KR_CBOR_ARRAY);
    assert_int_equal(it.raw_len, depth + 1);
    /* ... and without the innermost item: truncated. */
    assert_int_equal(kr_cbor_read(p, depth, &it), -1);

    /* A million tags. */
    memset(p, 0xc1, depth);
    p[depth] = 0x00;
    assert_int_equal(kr_cbor_read_exact(p, depth + 1, &it), 0);

    /* A million single-pair maps {0: {0: ...}}: a1 00 a1 00 ... 00. */
    for (size_t i = 0; i < depth; i++)
        p[i] = (i & 1) ? 0x00 : 0xa1;
    p[depth] = 0x00;
    assert_int_equal(kr_cbor_read_exact(p, depth + 1, &it), 0);

    /* A million indefinite arrays: refused past KR_CBOR_MAX_NEST. */
    memset(p, 0x9f, depth);
    assert_int_equal(kr_cbor_read(p, depth, &it), -1);
    free(p);

    /* Exactly KR_CBOR_MAX_NEST indefinite levels are fine; one more is not. */
    uint8_t q[2 * KR_CBOR_MAX_NEST + 4];
    memset(q, 0x9f, KR_CBOR_MAX_NEST);
    memset(q + KR_CBOR_MAX_NEST, 0xff, KR_CBOR_MAX_NEST);
    assert_int_equal(kr_cbor_read_exact(q, 2 * KR_CBOR_MAX_NEST, &it), 0);
    memset(q, 0x9f, KR_CBOR_MAX_NEST + 1);
    memset(q + KR_CBOR_MAX_NEST + 1, 0xff, KR_CBOR_MAX_NEST + 1);
    assert_int_equal(kr_cbor_read(q, 2 * KR_CBOR_MAX_NEST + 2, &it), -1);
    /* Indefinite levels with definite ones between still count:
     * [_ [ [_ [ ... 0 ]]]] */
    uint8_t r[4 * KR_CBOR_MAX_NEST + 8];
    for (int k = KR_CBOR_MAX_NEST; k <= KR_CBOR_MAX_NEST + 1; k++) {
        size_t n = 0;
        for (int i = 0; i < k; i++) {
            r[n++] = 0x9f;
            r[n++] = 0x81;
        }
        r[n++] = 0x00;
        for (int i = 0; i < k; i++)
            r[n++] = 0xff;
        assert_int_equal(kr_cbor_read_exact(r, n, &it), k == KR_CBOR_MAX_NEST ? 0 : -1);
    }
}

/* kr_cbor_iter_open reads children once and finds the container's end. */
static void test_iter_open(void **state)
{
    (void)state;
    uint8_t buf[64];
    kr_cbor_item c, x;
    kr_cbor_iter it;

    size_t n = unhex("83 01 82 02 03 04 ee", buf);
    assert_int_equal(kr_cbor_iter_open(buf, n, &c, &it), 0);
    assert_int_equal(c.kind, KR_CBOR_ARRAY);
    assert_int_equal(c.u, 3);
    assert_int_equal(c.head_len, 1);
    assert_int_equal(c.raw_len, 0);
    assert_int_equal(kr_cbor_iter_next(&it, &x), 1);
    assert_int_equal(x.u, 1);
    assert_int_equal(kr_cbor_iter_next(&it, &x), 1);
    assert_int_equal(x.kind, KR_CBOR_ARRAY);
    assert_int_equal(x.raw_len, 3);
    assert_int_equal(kr_cbor_iter_next(&it, &x), 1);
    assert_int_equal(x.u, 4);
    assert_int_equal(kr_cbor_iter_next(&it, &x), 0);
    assert_ptr_equal(kr_cbor_iter_end(&it), buf + 6);

    n = unhex("bf 6161 01 6162 9f ff ff 00", buf);
    assert_int_equal(kr_cbor_iter_open(buf, n, &c, &it), 0);
    assert_true(c.indefinite);
    int kids = 0;
    while (kr_cbor_iter_next(&it, &x) == 1)
        kids++;
    assert_int_equal(kids, 4);
    assert_ptr_equal(kr_cbor_iter_end(&it), buf + 9);

    n = unhex("c1 1a514b67b0", buf);
    assert_int_equal(kr_cbor_iter_open(buf, n, &c, &it), 0);
    assert_int_equal(kr_cbor_iter_next(&it, &x), 1);
    assert_int_equal(kr_cbor_iter_next(&it, &x), 0);
    assert_ptr_equal(kr_cbor_iter_end(&it), buf + n);

    /* Malformed children show up one by one; impossible counts at once. */
    n = unhex("82 01 1c", buf);
    assert_int_equal(kr_cbor_iter_open(buf, n, &c, &it), 0);
    assert_int_equal(kr_cbor_iter_next(&it, &x), 1);
    assert_int_equal(kr_cbor_iter_next(&it, &x), -1);
    n = unhex("9f 01", buf);
    assert_int_equal(kr_cbor_iter_open(buf, n, &c, &it), 0);
    assert_int_equal(kr_cbor_iter_next(&it, &x), 1);
    assert_int_equal(kr_cbor_iter_next(&it, &x), -1);
    n = unhex("9bffffffffffffffff 00", buf);
    assert_int_equal(kr_cbor_iter_open(buf, n, &c, &it), -1);
    n = unhex("bb4000000000000000 0000", buf);
    assert_int_equal(kr_cbor_iter_open(buf, n, &c, &it), -1);
    /* Not containers. */
    n = unhex("01", buf);
    assert_int_equal(kr_cbor_iter_open(buf, n, &c, &it), -1);
    n = unhex("5f 4101 ff", buf);
    assert_int_equal(kr_cbor_iter_open(buf, n, &c, &it), -1);
    assert_int_equal(kr_cbor_iter_open(buf, 0, &c, &it), -1);
}

/* ---- map_find and helpers ---- */

static void test_map_find(void **state)
{
    (void)state;
    uint8_t buf[64];
    kr_cbor_item m = read_ok("a3 6161 01 6162 02 6161 03", buf), v;
    assert_int_equal(kr_cbor_map_find(&m, "a", &v), 1);
    assert_int_equal(v.u, 3); /* last wins */
    assert_int_equal(kr_cbor_map_find(&m, "b", &v), 1);
    assert_int_equal(v.u, 2);
    assert_int_equal(kr_cbor_map_find(&m, "c", &v), 0);
    assert_int_equal(kr_cbor_map_find(&m, "", &v), 0);

    /* An indefinite-length key matches by content. */
    m = read_ok("a2 7f6161ff 05 60 06", buf);
    assert_int_equal(kr_cbor_map_find(&m, "a", &v), 1);
    assert_int_equal(v.u, 5);
    assert_int_equal(kr_cbor_map_find(&m, "", &v), 1);
    assert_int_equal(v.u, 6);

    /* A non-text key anywhere: -1. */
    m = read_ok("a2 6161 01 01 02", buf);
    assert_int_equal(kr_cbor_map_find(&m, "a", &v), -1);
    m = read_ok("a2 4161 01 6162 02", buf);
    assert_int_equal(kr_cbor_map_find(&m, "b", &v), -1);

    /* Not a map. */
    m = read_ok("80", buf);
    assert_int_equal(kr_cbor_map_find(&m, "a", &v), -1);

    m = read_ok("a0", buf);
    assert_int_equal(kr_cbor_map_find(&m, "a", &v), 0);
}

/* ---- writing: RFC 8949 Appendix A, byte for byte ---- */

static void expect_bytes(kr_buf *b, const char *hex)
{
    uint8_t want[512];
    size_t n = unhex(hex, want);
    assert_false(b->failed);
    if (b->len != n || memcmp(b->data, want, n) != 0)
        fail_msg("writer output differs from %s (got %zu bytes)", hex, b->len);
    /* Everything the writer emits reads back. */
    kr_cbor_item it;
    assert_int_equal(kr_cbor_read_exact(b->data, b->len, &it), 0);
    kr_buf_reset(b);
}

static void test_write_ints(void **state)
{
    (void)state;
    kr_buf b;
    kr_buf_init(&b, 1024);
    static const struct {
        uint64_t v;
        const char *hex;
    } u[] = {
        {0, "00"},
        {1, "01"},
        {10, "0a"},
        {23, "17"},
        {24, "1818"},
        {25, "1819"},
        {100, "1864"},
        {255, "18ff"},
        {256, "190100"},
        {1000, "1903e8"},
        {65535, "19ffff"},
        {65536, "1a00010000"},
        {1000000, "1a000f4240"},
        {4294967295u, "1affffffff"},
        {4294967296u, "1b0000000100000000"},
        {1000000000000u, "1b000000e8d4a51000"},
        {UINT64_MAX, "1bffffffffffffffff"},
    };
    for (size_t i = 0; i < sizeof u / sizeof u[0]; i++) {
        kr_cbor_put_uint(&b, u[i].v);
        assert_int_equal(kr_cbor_uint_size(u[i].v), b.len);
        expect_bytes(&b, u[i].hex);
    }
    static const struct {
        uint64_t v;
        const char *hex;
    } n[] = {
        {0, "20"}, {9, "29"}, {99, "3863"}, {999, "3903e7"}, {UINT64_MAX, "3bffffffffffffffff"},
    };
    for (size_t i = 0; i < sizeof n / sizeof n[0]; i++) {
        kr_cbor_put_negint(&b, n[i].v);
        expect_bytes(&b, n[i].hex);
    }
    /* kr_cbor_head writes what libcbor writes, for every major type */
    for (size_t i = 0; i < sizeof u / sizeof u[0]; i++) {
        uint8_t mine[9], theirs[9];
        size_t len = kr_cbor_head(mine, KR_CBOR_MAJOR_BYTES, u[i].v);
        assert_int_equal(cbor_encode_bytestring_start(u[i].v, theirs, sizeof theirs), len);
        assert_memory_equal(mine, theirs, len);
        len = kr_cbor_head(mine, KR_CBOR_MAJOR_TEXT, u[i].v);
        assert_int_equal(cbor_encode_string_start(u[i].v, theirs, sizeof theirs), len);
        assert_memory_equal(mine, theirs, len);
        len = kr_cbor_head(mine, KR_CBOR_MAJOR_ARRAY, u[i].v);
        assert_int_equal(cbor_encode_array_start(u[i].v, theirs, sizeof theirs), len);
        assert_memory_equal(mine, theirs, len);
        len = kr_cbor_head(mine, KR_CBOR_MAJOR_MAP, u[i].v);
        assert_int_equal(cbor_encode_map_start(u[i].v, theirs, sizeof theirs), len);
        assert_memory_equal(mine, theirs, len);
    }
    kr_buf_free(&b);
}

static void test_write_simple_and_strings(void **state)
{
    (void)state;
    kr_buf b;
    kr_buf_init(&b, 1024);
    kr_cbor_put_bool(&b, false);
    expect_bytes(&b, "f4");
    kr_cbor_put_bool(&b, true);
    expect_bytes(&b, "f5");
    kr_cbor_put_null(&b);
    expect_bytes(&b, "f6");
    kr_cbor_put_bytes(&b, "", 0);
    expect_bytes(&b, "40");
    kr_cbor_put_bytes(&b, "\x01\x02\x03\x04", 4);
    expect_bytes(&b, "4401020304");
    kr_cbor_put_cstr(&b, "");
    expect_bytes(&b, "60");
    kr_cbor_put_cstr(&b, "a");
    expect_bytes(&b, "6161");
    kr_cbor_put_cstr(&b, "IETF");
    expect_bytes(&b, "6449455446");
    kr_cbor_put_cstr(&b, "\"\\");
    expect_bytes(&b, "62225c");
    kr_cbor_put_cstr(&b, "\xc3\xbc");
    expect_bytes(&b, "62c3bc");
    kr_cbor_put_cstr(&b, "\xe6\xb0\xb4");
    expect_bytes(&b, "63e6b0b4");
    kr_cbor_put_cstr(&b, "\xf0\x90\x85\x91");
    expect_bytes(&b, "64f0908591");
    kr_cbor_put_text(&b, "abcdefghijklmnopqrstuvwx", 24);
    expect_bytes(&b, "7818 6162636465666768696a6b6c6d6e6f707172737475767778");
    kr_cbor_put_raw(&b, "\x83\x01\x02\x03", 4);
    expect_bytes(&b, "83010203");

    /* Length heads of 2 and 3 bytes. */
    uint8_t big[300];
    memset(big, 'x', sizeof big);
    kr_cbor_put_bytes(&b, big, 300);
    assert_int_equal(b.len, 303);
    assert_memory_equal(b.data, "\x59\x01\x2c", 3);
    kr_buf_free(&b);
}

static void test_write_containers(void **state)
{
    (void)state;
    kr_buf b;
    kr_buf_init(&b, 1024);
    kr_cbor_put_array(&b, 0);
    expect_bytes(&b, "80");
    kr_cbor_put_array(&b, 3);
    for (uint64_t i = 1; i <= 3; i++)
        kr_cbor_put_uint(&b, i);
    expect_bytes(&b, "83010203");

    kr_cbor_put_array(&b, 3);
    kr_cbor_put_uint(&b, 1);
    kr_cbor_put_array(&b, 2);
    kr_cbor_put_uint(&b, 2);
    kr_cbor_put_uint(&b, 3);
    kr_cbor_put_array(&b, 2);
    kr_cbor_put_uint(&b, 4);
    kr_cbor_put_uint(&b, 5);
    expect_bytes(&b, "8301820203820405");

    kr_cbor_put_array(&b, 25);
    for (uint64_t i = 1; i <= 25; i++)
        kr_cbor_put_uint(&b, i);
    expect_bytes(&b, "98190102030405060708090a0b0c0d0e0f101112131415161718181819");

    kr_cbor_put_map(&b, 0);
    expect_bytes(&b, "a0");
    kr_cbor_put_map(&b, 2);
    kr_cbor_put_uint(&b, 1);
    kr_cbor_put_uint(&b, 2);
    kr_cbor_put_uint(&b, 3);
    kr_cbor_put_uint(&b, 4);
    expect_bytes(&b, "a201020304");

    kr_cbor_put_map(&b, 2);
    kr_cbor_put_cstr(&b, "a");
    kr_cbor_put_uint(&b, 1);
    kr_cbor_put_cstr(&b, "b");
    kr_cbor_put_array(&b, 2);
    kr_cbor_put_uint(&b, 2);
    kr_cbor_put_uint(&b, 3);
    expect_bytes(&b, "a26161016162820203");

    kr_cbor_put_array(&b, 2);
    kr_cbor_put_cstr(&b, "a");
    kr_cbor_put_map(&b, 1);
    kr_cbor_put_cstr(&b, "b");
    kr_cbor_put_cstr(&b, "c");
    expect_bytes(&b, "826161a161626163");

    kr_cbor_put_map(&b, 5);
    const char *kv[] = {"a", "A", "b", "B", "c", "C", "d", "D", "e", "E"};
    for (int i = 0; i < 10; i++)
        kr_cbor_put_cstr(&b, kv[i]);
    expect_bytes(&b, "a56161614161626142616361436164614461656145");

    kr_cbor_put_array(&b, 65536);
    assert_int_equal(b.len, 5);
    assert_memory_equal(b.data, "\x9a\x00\x01\x00\x00", 5);
    kr_buf_reset(&b);
    kr_cbor_put_map(&b, 256);
    assert_int_equal(b.len, 3);
    assert_memory_equal(b.data, "\xb9\x01\x00", 3);
    kr_buf_free(&b);
}

/* A refused write sets failed and leaves the earlier bytes. */
static void test_write_refused(void **state)
{
    (void)state;
    kr_buf b;
    kr_buf_init(&b, 4);
    kr_cbor_put_uint(&b, 1);
    kr_cbor_put_cstr(&b, "abcdef");
    assert_true(b.failed);
    size_t len = b.len;
    assert_true(len <= 4);
    assert_int_equal(b.data[0], 0x01);
    /* Sticky: nothing more is written until a reset. */
    kr_cbor_put_uint(&b, 2);
    assert_int_equal(b.len, len);
    kr_buf_reset(&b);
    kr_cbor_put_uint(&b, 2);
    expect_bytes(&b, "02");
    kr_buf_free(&b);
}

/*
 * The hand decoder of heads (major types 0..6) against libcbor itself: every
 * initial byte below 0xe0, with the bytes after it complete, truncated at
 * every length, and holding a string's content or not. For scalars and
 * strings both must agree on success, kind, value and length; for
 * containers (whose children libcbor's cbor_load would need) on the head.
 */
typedef struct ref_head {
    int kind; /* -1 none */
    uint64_t u;
    size_t str_len;
} ref_head;

#define RH(ctx) ((ref_head *)(ctx))
static void r_u8(void *c, uint8_t v)
{
    RH(c)->kind = KR_CBOR_UINT, RH(c)->u = v;
}
static void r_u16(void *c, uint16_t v)
{
    RH(c)->kind = KR_CBOR_UINT, RH(c)->u = v;
}
static void r_u32(void *c, uint32_t v)
{
    RH(c)->kind = KR_CBOR_UINT, RH(c)->u = v;
}
static void r_u64(void *c, uint64_t v)
{
    RH(c)->kind = KR_CBOR_UINT, RH(c)->u = v;
}
static void r_n8(void *c, uint8_t v)
{
    RH(c)->kind = KR_CBOR_NEGINT, RH(c)->u = v;
}
static void r_n16(void *c, uint16_t v)
{
    RH(c)->kind = KR_CBOR_NEGINT, RH(c)->u = v;
}
static void r_n32(void *c, uint32_t v)
{
    RH(c)->kind = KR_CBOR_NEGINT, RH(c)->u = v;
}
static void r_n64(void *c, uint64_t v)
{
    RH(c)->kind = KR_CBOR_NEGINT, RH(c)->u = v;
}
static void r_bytes(void *c, cbor_data p, size_t n)
{
    (void)p;
    RH(c)->kind = KR_CBOR_BYTES, RH(c)->str_len = n;
}
static void r_text(void *c, cbor_data p, size_t n)
{
    (void)p;
    RH(c)->kind = KR_CBOR_TEXT, RH(c)->str_len = n;
}
static void r_bytes_i(void *c)
{
    RH(c)->kind = KR_CBOR_BYTES, RH(c)->u = UINT64_MAX;
}
static void r_text_i(void *c)
{
    RH(c)->kind = KR_CBOR_TEXT, RH(c)->u = UINT64_MAX;
}
static void r_arr(void *c, size_t n)
{
    RH(c)->kind = KR_CBOR_ARRAY, RH(c)->u = n;
}
static void r_arr_i(void *c)
{
    RH(c)->kind = KR_CBOR_ARRAY, RH(c)->u = UINT64_MAX;
}
static void r_map(void *c, size_t n)
{
    RH(c)->kind = KR_CBOR_MAP, RH(c)->u = n;
}
static void r_map_i(void *c)
{
    RH(c)->kind = KR_CBOR_MAP, RH(c)->u = UINT64_MAX;
}
static void r_tag(void *c, uint64_t v)
{
    RH(c)->kind = KR_CBOR_TAG, RH(c)->u = v;
}
#undef RH

static void test_heads_match_libcbor(void **state)
{
    (void)state;
    static const struct cbor_callbacks cb = {.uint8 = r_u8,
                                             .uint16 = r_u16,
                                             .uint32 = r_u32,
                                             .uint64 = r_u64,
                                             .negint8 = r_n8,
                                             .negint16 = r_n16,
                                             .negint32 = r_n32,
                                             .negint64 = r_n64,
                                             .byte_string = r_bytes,
                                             .byte_string_start = r_bytes_i,
                                             .string = r_text,
                                             .string_start = r_text_i,
                                             .array_start = r_arr,
                                             .indef_array_start = r_arr_i,
                                             .map_start = r_map,
                                             .indef_map_start = r_map_i,
                                             .tag = r_tag};
    uint8_t buf[16];
    for (int b = 0; b < 0xe0; b++) {
        for (int fill = 0; fill < 2; fill++) {
            buf[0] = (uint8_t)b;
            /* Arguments small enough that a string's content can be there. */
            for (size_t i = 1; i < sizeof buf; i++)
                buf[i] = fill ? 0x00 : (uint8_t)(i == 1 ? 0x03 : 0x01);
            for (size_t len = 1; len <= sizeof buf; len++) {
                ref_head ref = {.kind = -1};
                struct cbor_decoder_result r = cbor_stream_decode(buf, len, &cb, &ref);
                bool ref_ok = r.status == CBOR_DECODER_FINISHED;
                kr_cbor_item it;
                int major = b >> 5;
                bool scalar = major <= 3 && ref.u != UINT64_MAX;
                if (scalar) {
                    int got = kr_cbor_read(buf, len, &it);
                    if ((got == 0) != ref_ok)
                        fail_msg("byte 0x%02x, %zu bytes, fill %d: kr_cbor_read %d, libcbor %d", b,
                                 len, fill, got, (int)r.status);
                    if (!ref_ok)
                        continue;
                    assert_int_equal(it.kind, ref.kind);
                    assert_int_equal(it.raw_len, r.read);
                    if (major <= 1)
                        assert_int_equal(it.u, ref.u);
                    else
                        assert_int_equal(it.str_len, ref.str_len);
                } else if (ref_ok && major >= 4 && major <= 6 && ref.u != UINT64_MAX &&
                           (major == 6 ? 1 : ref.u * (major == 5 ? 2 : 1)) <= len - r.read) {
                    /* Head agrees: an iterator opens on it with that count
                     * (when the children could fit: iter_open refuses
                     * impossible counts at once). */
                    kr_cbor_iter iter;
                    if (kr_cbor_iter_open(buf, len, &it, &iter) != 0)
                        fail_msg("byte 0x%02x, %zu bytes, fill %d: iter_open fails", b, len, fill);
                    assert_int_equal(it.kind, ref.kind);
                    assert_int_equal(it.head_len, r.read);
                    assert_int_equal(it.u, ref.u);
                }
            }
        }
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_heads_match_libcbor),
        cmocka_unit_test(test_read_uints),
        cmocka_unit_test(test_read_negints),
        cmocka_unit_test(test_read_floats),
        cmocka_unit_test(test_read_simple),
        cmocka_unit_test(test_read_strings),
        cmocka_unit_test(test_read_indefinite_strings),
        cmocka_unit_test(test_read_arrays_maps),
        cmocka_unit_test(test_read_indefinite_containers),
        cmocka_unit_test(test_read_tags),
        cmocka_unit_test(test_reserved_and_lone_break),
        cmocka_unit_test(test_truncated),
        cmocka_unit_test(test_truncation_every_byte),
        cmocka_unit_test(test_trailing_bytes),
        cmocka_unit_test(test_huge_counts),
        cmocka_unit_test(test_deep_nesting),
        cmocka_unit_test(test_iter_open),
        cmocka_unit_test(test_map_find),
        cmocka_unit_test(test_write_ints),
        cmocka_unit_test(test_write_simple_and_strings),
        cmocka_unit_test(test_write_containers),
        cmocka_unit_test(test_write_refused),
    };
    return cmocka_run_group_tests_name("cbor", tests, NULL, NULL);
}
