/*
 * tests/test_json.c - util/json.c: every class of escape, UTF-8 passed
 * through or replaced, the three sinks agreeing, and cuts into a char array
 * that never split a unit.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "util/buf.h"
#include "util/json.h"

/* s escaped through the kr_buf sink, NUL-terminated in out. */
static void esc(const char *s, size_t n, char *out, size_t outlen)
{
    kr_buf b;
    kr_buf_init(&b, 1 << 16);
    kr_json_esc_buf(&b, s, n);
    assert_false(b.failed);
    assert_true(b.len < outlen);
    if (b.len > 0)
        memcpy(out, b.data, b.len);
    out[b.len] = '\0';
    kr_buf_free(&b);
}

static const struct {
    const char *in;
    size_t len;
    const char *want;
} cases[] = {
    {"plain text", 10, "plain text"},
    {"", 0, ""},
    {"say \"hi\"", 8, "say \\\"hi\\\""},
    {"C:\\dir", 6, "C:\\\\dir"},
    {"\b\f\n\r\t", 5, "\\b\\f\\n\\r\\t"},
    {"\x01\x1f\x7f", 3, "\\u0001\\u001f\\u007f"},
    {"a\0b", 3, "a\\u0000b"},
    {"\x1b[0m", 4, "\\u001b[0m"}, /* a terminal escape is defused */
    {"caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80", 14, "caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80"},
    {"\xc2\x85\xc2\x9f\xc2\xa0", 6, "\\u0085\\u009f\xc2\xa0"}, /* C1 escaped, NBSP not */
    {"x\x80y", 3, "x\\ufffdy"},                                /* a stray continuation */
    {"\xff", 1, "\\ufffd"},
    {"\xc0\xaf", 2, "\\ufffd\\ufffd"},                       /* overlong '/' */
    {"\xed\xa0\x80", 3, "\\ufffd\\ufffd\\ufffd"},            /* a surrogate */
    {"\xf4\x90\x80\x80", 4, "\\ufffd\\ufffd\\ufffd\\ufffd"}, /* past U+10FFFF */
    {"ok\xe2\x82", 4, "ok\\ufffd\\ufffd"},                   /* cut short */
    {"/", 1, "/"},
};

static void test_escapes(void **state)
{
    (void)state;
    char out[256];
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        esc(cases[i].in, cases[i].len, out, sizeof out);
        if (strcmp(out, cases[i].want) != 0)
            fail_msg("case %zu: got \"%s\", want \"%s\"", i, out, cases[i].want);
    }
}

/* The pieces: a run of plain ASCII in place, an escape in esc. */
static void test_pieces(void **state)
{
    (void)state;
    char e[KR_JSON_ESC_MAX];
    const char *out;
    size_t len;
    const uint8_t *s = (const uint8_t *)"abc\"d";

    assert_int_equal(kr_json_esc_next(s, 5, e, &out, &len), 3);
    assert_ptr_equal(out, (const char *)s);
    assert_int_equal(len, 3);
    assert_int_equal(kr_json_esc_next(s + 3, 2, e, &out, &len), 1);
    assert_ptr_equal(out, e);
    assert_int_equal(len, 2);
    assert_memory_equal(out, "\\\"", 2);

    s = (const uint8_t *)"\xe2\x82\xac!";
    assert_int_equal(kr_json_esc_next(s, 4, e, &out, &len), 3); /* one sequence, in place */
    assert_ptr_equal(out, (const char *)s);
    assert_int_equal(len, 3);
}

/* The FILE sink writes the same body as the kr_buf sink, in quotes. */
static void test_file_sink(void **state)
{
    (void)state;
    char want[256], got[300];
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        esc(cases[i].in, cases[i].len, want, sizeof want);
        FILE *f = fmemopen(got, sizeof got, "w");
        assert_non_null(f);
        kr_json_str_file(f, cases[i].in, cases[i].len);
        long n = ftell(f);
        fclose(f);
        assert_int_equal((size_t)n, strlen(want) + 2);
        assert_int_equal(got[0], '"');
        assert_memory_equal(got + 1, want, strlen(want));
        assert_int_equal(got[n - 1], '"');
    }
}

/*
 * Into a char array of every size from 0 up: what is written is always a
 * prefix of the whole escape that ends on a unit boundary, and the input
 * consumed is exactly what that prefix stands for; ASCII runs fill the
 * array to the last byte.
 */
static void test_mem_cuts(void **state)
{
    (void)state;
    static const char in[] = "ab\"c\xe2\x82\xac\x01\xff"
                             "defg\xf0\x9f\x98\x80h";
    size_t n = sizeof in - 1;
    char whole[128], dst[128];
    esc(in, n, whole, sizeof whole);
    size_t wl = strlen(whole);

    for (size_t cap = 0; cap <= wl + 1; cap++) {
        size_t w = 0;
        memset(dst, '#', sizeof dst);
        size_t used = kr_json_esc_mem(dst, cap, &w, in, n);
        assert_true(w <= cap);
        assert_int_equal(dst[cap], '#'); /* nothing past the end */
        assert_memory_equal(dst, whole, w);
        /* the prefix is the escape of exactly the input consumed */
        char again[128];
        esc(in, used, again, sizeof again);
        if (strlen(again) != w || memcmp(again, dst, w) != 0)
            fail_msg("cap %zu: wrote %zu bytes for %zu input bytes", cap, w, used);
        if (cap >= wl)
            assert_int_equal(used, n);
        else
            assert_true(used < n);
    }
    /* a run of ASCII fills the array exactly */
    size_t w;
    assert_int_equal(kr_json_esc_mem(dst, 5, &w, "abcdefgh", 8), 5);
    assert_int_equal(w, 5);
    /* an escape that does not fit is left out whole */
    assert_int_equal(kr_json_esc_mem(dst, 5, &w, "abcd\x01", 5), 4);
    assert_int_equal(w, 4);
}

/* A refused append marks the buffer failed instead of cutting silently. */
static void test_buf_cap(void **state)
{
    (void)state;
    kr_buf b;
    kr_buf_init(&b, 4);
    kr_json_esc_buf(&b, "\x01", 1);
    assert_true(b.failed);
    kr_buf_free(&b);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_escapes),   cmocka_unit_test(test_pieces),
        cmocka_unit_test(test_file_sink), cmocka_unit_test(test_mem_cuts),
        cmocka_unit_test(test_buf_cap),
    };

    return cmocka_run_group_tests_name("json", tests, NULL, NULL);
}
