/*
 * util/clock.h - the two clocks: monotonic for durations, deadlines and
 * timeouts; wall for timestamps people and other machines read.
 *
 * Never mix them: the wall clock jumps (NTP, an operator), so a deadline
 * taken from it can fire early or never; the monotonic clock means nothing
 * outside this boot, so it never goes into a stored event or a log line.
 */
#ifndef KR_UTIL_CLOCK_H
#define KR_UTIL_CLOCK_H

#include <pthread.h>
#include <stdint.h>

/* Nanoseconds on the monotonic clock (CLOCK_MONOTONIC; the origin is
 * arbitrary, only differences mean something). */
uint64_t kr_mono_ns(void);

/* The same clock in milliseconds. */
uint64_t kr_mono_ms(void);

/* Milliseconds since the Unix epoch, UTC (CLOCK_REALTIME): event
 * timestamps, log lines. */
uint64_t kr_wall_ms(void);

/* Initialise cv so that kr_cond_wait_ms counts on the monotonic clock
 * (pthread_cond_init's default is the wall clock). @return 0, or an errno
 * value. */
int kr_cond_init_monotonic(pthread_cond_t *cv);

/* Wait on cv (made by kr_cond_init_monotonic; mu held) for ms at most.
 * @return 0 when woken (perhaps spuriously), ETIMEDOUT when the time ran
 * out. */
int kr_cond_wait_ms(pthread_cond_t *cv, pthread_mutex_t *mu, uint64_t ms);

#endif
