/*
 * tests/test_sched.c - util/sched.c: a pacer steps aside once a quantum of
 * the clock has passed since its last step, and not before; a thread put
 * under SCHED_IDLE reads back as such.
 */
#include <pthread.h>
#include <sched.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "util/clock.h"
#include "util/sched.h"

/* Spin (no sleep: a pacer counts the clock, not the CPU) past ns. */
static void spin_past(uint64_t from, uint64_t ns)
{
    while (kr_mono_ns() - from <= ns)
        ;
}

static void test_pace_steps_after_a_quantum(void **state)
{
    (void)state;
    kr_sched_pacer p = {0};
    kr_sched_pace(&p); /* the first call starts the clock */
    assert_true(p.last_ns > 0);
    assert_int_equal(p.steps, 0);
    uint64_t start = p.last_ns;
    kr_sched_pace(&p); /* within the quantum: nothing */
    assert_int_equal(p.steps, 0);
    assert_int_equal(p.last_ns, start);
    spin_past(start, KR_SCHED_QUANTUM_NS);
    uint64_t before = kr_mono_ns();
    kr_sched_pace(&p);
    assert_int_equal(p.steps, 1);
    assert_true(p.last_ns >= before); /* the next quantum counts from the step */
    kr_sched_pace(&p);
    assert_int_equal(p.steps, 1);
    spin_past(p.last_ns, KR_SCHED_QUANTUM_NS);
    kr_sched_pace(&p);
    assert_int_equal(p.steps, 2);
}

static void *idle_thread(void *arg)
{
    int *policy = arg;
    struct sched_param sp;
    if (kr_sched_idle(pthread_self()) != 0 ||
        pthread_getschedparam(pthread_self(), policy, &sp) != 0)
        *policy = -1;
    return NULL;
}

static void test_idle_policy(void **state)
{
    (void)state;
    int policy = 0;
    pthread_t t;
    assert_int_equal(pthread_create(&t, NULL, idle_thread, &policy), 0);
    assert_int_equal(pthread_join(t, NULL), 0);
    assert_int_equal(policy, SCHED_IDLE);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_pace_steps_after_a_quantum),
        cmocka_unit_test(test_idle_policy),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
