/*
 * tests/test_retry.c - util/retry.c: attempts spaced from the base,
 * doubling to the cap (a base of 0 counts as 1 ms); the first failure, a
 * new reason and a reminder a minute on are logged, the rest counted; a
 * success ends the run.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "util/retry.h"

static void test_nothing_failing_is_always_due(void **state)
{
    (void)state;
    kr_retry r;
    kr_retry_init(&r, 2000, 32000);
    assert_true(kr_retry_due(&r, 0));
    assert_true(kr_retry_due(&r, 123456));
    assert_int_equal(kr_retry_delay(&r), 0);
    assert_int_equal(kr_retry_succeeded(&r), 0);
}

/* 2 s, 4, 8, 16, 32, 32: each due only once its delay has passed (half a
 * base early counts). */
static void test_delays_double_to_the_cap(void **state)
{
    (void)state;
    kr_retry r;
    uint32_t unsaid;
    kr_retry_init(&r, 2000, 32000);
    uint64_t now = 1000000;
    const uint64_t want[] = {2000, 4000, 8000, 16000, 32000, 32000, 32000};
    for (size_t i = 0; i < sizeof want / sizeof want[0]; i++) {
        kr_retry_failed(&r, now, "disk", &unsaid);
        assert_int_equal(kr_retry_delay(&r), want[i]);
        assert_false(kr_retry_due(&r, now));
        assert_false(kr_retry_due(&r, now + want[i] - 1001));
        assert_true(kr_retry_due(&r, now + want[i] - 1000));
        now += want[i];
    }
    assert_int_equal(kr_retry_succeeded(&r), 7);
    assert_true(kr_retry_due(&r, now));
    kr_retry_failed(&r, now, "disk", &unsaid); /* a new run starts at the base */
    assert_int_equal(kr_retry_delay(&r), 2000);
}

/* A cap below the base is the base; the doubling never overflows. */
static void test_cap_and_many_failures(void **state)
{
    (void)state;
    kr_retry r;
    uint32_t unsaid;
    kr_retry_init(&r, 3600000, 30000);
    kr_retry_failed(&r, 0, "x", &unsaid);
    kr_retry_failed(&r, 0, "x", &unsaid);
    assert_int_equal(kr_retry_delay(&r), 3600000);
    kr_retry_init(&r, 50, 30000);
    for (int i = 0; i < 100000; i++)
        kr_retry_failed(&r, (uint64_t)i, "x", &unsaid);
    assert_int_equal(kr_retry_delay(&r), 30000);
    kr_retry_init(&r, 0, 8); /* a base of 0 is 1 ms: the delays still reach the cap */
    for (int i = 0; i < 10; i++)
        kr_retry_failed(&r, 0, "x", &unsaid);
    assert_int_equal(kr_retry_delay(&r), 8);
}

/* Logged: the first, a changed reason, and one a minute after the last
 * logged (with the count of those not logged between). */
static void test_what_is_logged(void **state)
{
    (void)state;
    kr_retry r;
    uint32_t unsaid = 99;
    kr_retry_init(&r, 100, 1000);
    assert_true(kr_retry_failed(&r, 0, "disk full", &unsaid));
    assert_int_equal(unsaid, 0);
    for (uint64_t t = 1; t <= 10; t++)
        assert_false(kr_retry_failed(&r, t * 1000, "disk full", &unsaid));
    assert_true(kr_retry_failed(&r, 11000, "permission denied", &unsaid));
    assert_int_equal(unsaid, 10);
    assert_false(kr_retry_failed(&r, 12000, "permission denied", &unsaid));
    assert_false(kr_retry_failed(&r, 11000 + KR_RETRY_REMIND_MS - 1, "permission denied", &unsaid));
    assert_true(kr_retry_failed(&r, 11000 + KR_RETRY_REMIND_MS, "permission denied", &unsaid));
    assert_int_equal(unsaid, 2);
    assert_int_equal(kr_retry_succeeded(&r), 15);
    assert_true(kr_retry_failed(&r, 80000, "permission denied", &unsaid)); /* a new run */
    assert_int_equal(unsaid, 0);
}

/* kr_retry_now: due at once, but the next failure waits longer still. */
static void test_now_keeps_the_count(void **state)
{
    (void)state;
    kr_retry r;
    uint32_t unsaid;
    kr_retry_init(&r, 1000, 60000);
    kr_retry_failed(&r, 0, "x", &unsaid);
    kr_retry_failed(&r, 1000, "x", &unsaid);
    assert_false(kr_retry_due(&r, 1000));
    kr_retry_now(&r);
    assert_true(kr_retry_due(&r, 1000));
    kr_retry_failed(&r, 1000, "x", &unsaid);
    assert_int_equal(kr_retry_delay(&r), 4000);
    assert_false(kr_retry_due(&r, 1000));
}

/* A long reason is cut, and a failure with that same long reason is
 * recognised as the same. */
static void test_long_reason(void **state)
{
    (void)state;
    kr_retry r;
    uint32_t unsaid;
    char big[400];
    for (size_t i = 0; i < sizeof big - 1; i++)
        big[i] = (char)('a' + i % 26);
    big[sizeof big - 1] = '\0';
    kr_retry_init(&r, 10, 100);
    assert_true(kr_retry_failed(&r, 0, big, &unsaid));
    assert_false(kr_retry_failed(&r, 10, big, &unsaid));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_nothing_failing_is_always_due),
        cmocka_unit_test(test_delays_double_to_the_cap),
        cmocka_unit_test(test_cap_and_many_failures),
        cmocka_unit_test(test_what_is_logged),
        cmocka_unit_test(test_now_keeps_the_count),
        cmocka_unit_test(test_long_reason),
    };
    return cmocka_run_group_tests_name("retry", tests, NULL, NULL);
}
