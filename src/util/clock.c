/*
 * util/clock.c - the monotonic and the wall clock (see clock.h).
 */
#include "util/clock.h"

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
