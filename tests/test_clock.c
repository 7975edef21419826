/*
 * tests/test_clock.c - util/clock.c: the monotonic clock never goes back and
 * measures a sleep; the wall clock agrees with time(2); a timed wait
 * counts on the monotonic clock.
 */
#include <errno.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <time.h>

#include "util/clock.h"

static void test_mono(void **state)
{
    struct timespec ten_ms = {0, 10000000};
    uint64_t a, b, prev;

    (void)state;
    a = kr_mono_ns();
    assert_true(a > 0);
    prev = a;
    for (int i = 0; i < 1000; i++) {
        b = kr_mono_ns();
        assert_true(b >= prev);
        prev = b;
    }
    nanosleep(&ten_ms, NULL);
    b = kr_mono_ns();
    assert_true(b - a >= 10000000);
    assert_true(b - a < 10000000000ULL);
}

/* Milliseconds are the same clock: they sit between two ns readings. */
static void test_mono_ms(void **state)
{
    (void)state;
    uint64_t before = kr_mono_ns() / 1000000;
    uint64_t ms = kr_mono_ms();
    uint64_t after = kr_mono_ns() / 1000000;
    assert_true(before <= ms);
    assert_true(ms <= after);
}

static void test_wall(void **state)
{
    (void)state;
    time_t before = time(NULL);
    uint64_t ms = kr_wall_ms();
    time_t after = time(NULL);
    /* time(2) may read a coarser clock: a second of slack either way. */
    assert_true(ms / 1000 + 1 >= (uint64_t)before);
    assert_true(ms / 1000 <= (uint64_t)after + 1);
    /* Later than 2020-01-01: the epoch, not the boot. */
    assert_true(ms > 1577836800000ULL);
}

/* A timed wait on a monotonic condition variable runs out after its time,
 * not before it (a deadline on the wrong clock would be long past). */
static void test_cond_wait_ms(void **state)
{
    (void)state;
    pthread_cond_t cv;
    pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
    assert_int_equal(kr_cond_init_monotonic(&cv), 0);
    pthread_mutex_lock(&mu);
    uint64_t t0 = kr_mono_ns();
    int rc;
    while ((rc = kr_cond_wait_ms(&cv, &mu, 30)) == 0 && kr_mono_ns() - t0 < 30000000u)
        ; /* spurious wake-ups */
    assert_int_equal(rc, ETIMEDOUT);
    assert_true(kr_mono_ns() - t0 >= 30000000u);
    pthread_mutex_unlock(&mu);
    pthread_cond_destroy(&cv);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_mono),
        cmocka_unit_test(test_mono_ms),
        cmocka_unit_test(test_wall),
        cmocka_unit_test(test_cond_wait_ms),
    };

    return cmocka_run_group_tests_name("clock", tests, NULL, NULL);
}
