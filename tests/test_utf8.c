/*
 * tests/test_utf8.c - util/utf8.c: the length of one sequence at every kind
 * of boundary (overlong forms, surrogates, past U+10FFFF, cut short), and
 * whole-string validation, ASCII fast path included.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <stdio.h>
#include <string.h>

#include "util/utf8.h"

/* "c3bc" -> {0xc3, 0xbc}; returns the byte count. */
static size_t unhex(const char *hex, uint8_t *out)
{
    size_t n = 0;
    for (const char *p = hex; p[0] != '\0' && p[1] != '\0'; p += 2) {
        unsigned v;
        sscanf(p, "%2x", &v);
        out[n++] = (uint8_t)v;
    }
    return n;
}

/* One sequence each, with the length it must have (0: not a sequence). */
static const struct {
    const char *hex;
    size_t len;
} seqs[] = {
    {"41", 1},     {"00", 1},       {"7f", 1},       {"c280", 2},     {"c3bc", 2},
    {"dfbf", 2},   {"e0a080", 3},   {"e6b0b4", 3},   {"ed9fbf", 3},   {"ee8080", 3},
    {"efbfbf", 3}, {"f0908080", 4}, {"f09d849e", 4}, {"f48fbfbf", 4}, {"80", 0},
    {"bf", 0},     {"c080", 0},     {"c1bf", 0},     {"c0af", 0},     {"c3", 0},
    {"c341", 0},   {"e08080", 0},   {"e09fbf", 0},   {"eda080", 0},   {"edbfbf", 0},
    {"e6b0", 0},   {"e6b041", 0},   {"f0808080", 0}, {"f08fbfbf", 0}, {"f4908080", 0},
    {"f09d84", 0}, {"f5808080", 0}, {"f8", 0},       {"fe", 0},       {"ff", 0},
};

static void test_seq_len(void **state)
{
    (void)state;
    uint8_t buf[16];
    for (size_t i = 0; i < sizeof seqs / sizeof seqs[0]; i++) {
        size_t n = unhex(seqs[i].hex, buf);
        size_t got = kr_utf8_seq_len(buf, n);
        if (got != seqs[i].len)
            fail_msg("%s: length %zu, want %zu", seqs[i].hex, got, seqs[i].len);
        /* A whole sequence followed by more bytes keeps its length; cut
         * short by n it is none. */
        buf[n] = 'x';
        assert_int_equal(kr_utf8_seq_len(buf, n + 1), seqs[i].len);
        if (seqs[i].len > 1)
            assert_int_equal(kr_utf8_seq_len(buf, seqs[i].len - 1), 0);
    }
    assert_int_equal(kr_utf8_seq_len(buf, 0), 0);
}

static void test_valid(void **state)
{
    (void)state;
    static const char *const good[] = {
        "",
        "616263",
        "c3bc",
        "e6b0b4",
        "f09d849e",
        "f48fbfbf",
        "ed9fbf",
        "ee8080",
        "c280",
        "e0a080",
        "f0908080",
        "7f",
        "6161616161616161616161c3bc61616161616161",
    };
    static const char *const bad[] = {
        "c080",
        "c1bf",
        "e08080",
        "e09fbf",
        "eda080",
        "edbfbf",
        "f0808080",
        "f08fbfbf",
        "f4908080",
        "f5808080",
        "f8",
        "ff",
        "80",
        "bf",
        "e6b0",
        "c3",
        "c341",
        "e6b041",
        "6161616161616161c3",
        "616161616161616180",
        "f09d84",
        "fe",
        "c0af",
    };
    uint8_t buf[64];
    for (size_t i = 0; i < sizeof good / sizeof good[0]; i++) {
        size_t n = unhex(good[i], buf);
        if (!kr_utf8_valid(buf, n))
            fail_msg("should be valid UTF-8: %s", good[i]);
    }
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        size_t n = unhex(bad[i], buf);
        if (kr_utf8_valid(buf, n))
            fail_msg("should be invalid UTF-8: %s", bad[i]);
    }
}

/* A bad byte at every position of a long ASCII run is found, whether it
 * falls inside an 8-byte word the fast path skips or in the tail. */
static void test_valid_every_position(void **state)
{
    (void)state;
    uint8_t buf[40];
    for (size_t len = 1; len <= sizeof buf; len++) {
        memset(buf, 'a', len);
        assert_true(kr_utf8_valid(buf, len));
        for (size_t at = 0; at < len; at++) {
            buf[at] = 0x80;
            if (kr_utf8_valid(buf, len))
                fail_msg("a stray 0x80 at %zu of %zu passed", at, len);
            buf[at] = 'a';
        }
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_seq_len),
        cmocka_unit_test(test_valid),
        cmocka_unit_test(test_valid_every_position),
    };

    return cmocka_run_group_tests_name("utf8", tests, NULL, NULL);
}
