/*
 * tests/test_crc32c.c - kr_crc32c: the RFC 3720 check values, hardware
 * against table on random lengths and alignments (and long ones, through
 * the hardware path's three streams), incremental extension.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "util/crc32c.h"

typedef uint32_t (*crc_fn)(uint32_t, const void *, size_t);

/* Both implementations give the known answer. */
static void check_both(const void *p, size_t n, uint32_t want)
{
    assert_int_equal(kr_crc32c(0, p, n), want);
    assert_int_equal(kr_crc32c_table(0, p, n), want);
}

static void test_check_values(void **state)
{
    (void)state;
    uint8_t b[32];

    check_both("123456789", 9, 0xE3069283u);
    memset(b, 0, sizeof b);
    check_both(b, sizeof b, 0x8A9136AAu);
    memset(b, 0xff, sizeof b);
    check_both(b, sizeof b, 0x62A8AB43u);
    for (int i = 0; i < 32; i++)
        b[i] = (uint8_t)i;
    check_both(b, sizeof b, 0x46DD794Eu);
    for (int i = 0; i < 32; i++)
        b[i] = (uint8_t)(31 - i);
    check_both(b, sizeof b, 0x113FDB5Cu);
    check_both("", 0, 0);
    assert_int_equal(kr_crc32c(0x12345678u, "", 0), 0x12345678u);
}

static void test_impl_named(void **state)
{
    (void)state;
    const char *impl = kr_crc32c_impl();
    assert_non_null(impl);
    assert_true(strcmp(impl, "sse4.2") == 0 || strcmp(impl, "armv8") == 0 ||
                strcmp(impl, "table") == 0);
#if defined(__x86_64__)
    if (__builtin_cpu_supports("sse4.2"))
        assert_string_equal(impl, "sse4.2");
#endif
    print_message("crc32c implementation: %s\n", impl);
}

/* xorshift, so failures reproduce. */
static uint64_t rng_state = 0x9E3779B97F4A7C15ull;
static uint64_t rnd(void)
{
    rng_state ^= rng_state << 13;
    rng_state ^= rng_state >> 7;
    rng_state ^= rng_state << 17;
    return rng_state;
}

/* kr_crc32c against the table on `rounds` random seeds, alignments (up to
 * 64) and lengths within buf[0..max). */
static void check_random(const uint8_t *buf, size_t max, int rounds)
{
    for (int k = 0; k < rounds; k++) {
        size_t off = rnd() % 64;
        size_t n = rnd() % (max - 64);
        uint32_t seed = (uint32_t)rnd();
        assert_int_equal(kr_crc32c(seed, buf + off, n), kr_crc32c_table(seed, buf + off, n));
    }
}

static void test_hw_equals_table(void **state)
{
    (void)state;
    enum { MAX = 4096 + 64 };
    uint8_t *buf = malloc(MAX);
    assert_non_null(buf);
    for (size_t i = 0; i < MAX; i++)
        buf[i] = (uint8_t)rnd();
    /* Every length and alignment for short inputs, then random ones. */
    for (size_t off = 0; off < 16; off++)
        for (size_t n = 0; n <= 80; n++)
            assert_int_equal(kr_crc32c(0, buf + off, n), kr_crc32c_table(0, buf + off, n));
    check_random(buf, MAX, 5000);
    free(buf);
}

/* Long inputs: the hardware path's three streams over blocks of 8 KiB and
 * 256 bytes, joined, and what is left after them - every kind of length
 * around the block bounds, at odd alignments. */
static void test_hw_equals_table_long(void **state)
{
    (void)state;
    enum { MAX = 3 * 8192 * 4 + 3 * 256 * 3 + 64 };
    uint8_t *buf = malloc(MAX);
    assert_non_null(buf);
    for (size_t i = 0; i < MAX; i++)
        buf[i] = (uint8_t)rnd();
    static const size_t around[] = {3 * 256, 3 * 8192, 2 * 3 * 8192, 3 * 8192 + 3 * 256,
                                    4 * 3 * 8192 + 2 * 3 * 256};
    for (size_t a = 0; a < sizeof around / sizeof around[0]; a++)
        for (size_t off = 0; off < 9; off++)
            for (size_t n = around[a] - 9; n <= around[a] + 9; n++)
                assert_int_equal(kr_crc32c(7, buf + off, n), kr_crc32c_table(7, buf + off, n));
    check_random(buf, MAX, 300);
    free(buf);
}

static void check_incremental(crc_fn f)
{
    enum { N = 1000 };
    uint8_t buf[N];
    for (size_t i = 0; i < N; i++)
        buf[i] = (uint8_t)rnd();
    uint32_t whole = f(0, buf, N);
    for (size_t cut = 0; cut <= N; cut += 7)
        assert_int_equal(f(f(0, buf, cut), buf + cut, N - cut), whole);
    /* Many small pieces of random sizes. */
    for (int k = 0; k < 200; k++) {
        uint32_t c = 0;
        size_t at = 0;
        while (at < N) {
            size_t n = 1 + rnd() % 37;
            if (n > N - at)
                n = N - at;
            c = f(c, buf + at, n);
            at += n;
        }
        assert_int_equal(c, whole);
    }
}

static void test_incremental(void **state)
{
    (void)state;
    check_incremental(kr_crc32c);
    check_incremental(kr_crc32c_table);
}

/* A single flipped bit always changes the CRC. */
static void test_bit_flips_detected(void **state)
{
    (void)state;
    uint8_t buf[256];
    for (size_t i = 0; i < sizeof buf; i++)
        buf[i] = (uint8_t)rnd();
    uint32_t c = kr_crc32c(0, buf, sizeof buf);
    for (size_t i = 0; i < sizeof buf * 8; i++) {
        buf[i / 8] ^= (uint8_t)(1u << (i % 8));
        assert_int_not_equal(kr_crc32c(0, buf, sizeof buf), c);
        buf[i / 8] ^= (uint8_t)(1u << (i % 8));
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_check_values),    cmocka_unit_test(test_impl_named),
        cmocka_unit_test(test_hw_equals_table), cmocka_unit_test(test_hw_equals_table_long),
        cmocka_unit_test(test_incremental),     cmocka_unit_test(test_bit_flips_detected),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
