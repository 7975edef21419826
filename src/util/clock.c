/*
 * util/clock.c - the monotonic and the wall clock (see clock.h).
 */
#include "util/clock.h"

#include <errno.h>
#include <time.h>

/* clock_gettime cannot fail for these clocks with a valid pointer. */
static uint64_t read_ns(clockid_t id)
{
    struct timespec ts;
    clock_gettime(id, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

uint64_t kr_mono_ns(void)
{
    return read_ns(CLOCK_MONOTONIC);
}

uint64_t kr_mono_ms(void)
{
    return read_ns(CLOCK_MONOTONIC) / 1000000u;
}

uint64_t kr_wall_ms(void)
{
    return read_ns(CLOCK_REALTIME) / 1000000u;
}

int kr_cond_init_monotonic(pthread_cond_t *cv)
{
    pthread_condattr_t ca;
    int e = pthread_condattr_init(&ca);
    if (e != 0)
        return e;
    e = pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    if (e == 0)
        e = pthread_cond_init(cv, &ca);
    pthread_condattr_destroy(&ca);
    return e;
}

int kr_cond_wait_ms(pthread_cond_t *cv, pthread_mutex_t *mu, uint64_t ms)
{
    uint64_t until = read_ns(CLOCK_MONOTONIC) + ms * 1000000u;
    struct timespec ts = {(time_t)(until / 1000000000u), (long)(until % 1000000000u)};
    return pthread_cond_timedwait(cv, mu, &ts) == ETIMEDOUT ? ETIMEDOUT : 0;
}
