/*
 * util/retry.h - when to try a failing job again, and when to say so.
 *
 * A job that fails for a lasting reason (a disk refusing writes) would
 * otherwise be retried, and logged, at every occasion: each tick, or in a
 * loop when each failure asks for the next attempt at once. A kr_retry
 * spaces the attempts (the first retry after `base` ms, then twice as long
 * each time up to `cap`), logs the first failure, a changed reason, and
 * a reminder at most once per KR_RETRY_REMIND_MS, and counts what it did
 * not log. The caller owns the clock: every function takes "now", in
 * monotonic milliseconds (kr_mono_ms), so tests can drive it.
 */
#ifndef KR_UTIL_RETRY_H
#define KR_UTIL_RETRY_H

#include <stdbool.h>
#include <stdint.h>

#define KR_RETRY_REMIND_MS 60000
#define KR_RETRY_REASON    160

typedef struct kr_retry {
    uint64_t base_ms, cap_ms;
    uint32_t failures;            /* in a row, since the last success */
    uint64_t next_ms;             /* no attempt of one's own before this */
    uint64_t logged_ms;           /* the last failure logged */
    uint32_t unsaid;              /* failures since then, not logged */
    char reason[KR_RETRY_REASON]; /* the last one logged */
} kr_retry;

/* Space attempts from base_ms (at least 1), doubling up to cap_ms (raised
 * to base_ms when below it). */
void kr_retry_init(kr_retry *r, uint64_t base_ms, uint64_t cap_ms);

/* Whether an attempt may start at now: always while nothing fails. Half a
 * base early counts, so that a caller ticking every base ms does not wait a
 * whole extra tick for missing the time by a hair. */
bool kr_retry_due(const kr_retry *r, uint64_t now);

/* An attempt failed for reason at now: the next waits longer. @return
 * whether to log this failure - the first in a row, one whose reason
 * differs from the last logged, or the first after KR_RETRY_REMIND_MS of
 * silence - and then *unsaid is how many failures went unlogged since the
 * last one logged. */
bool kr_retry_failed(kr_retry *r, uint64_t now, const char *reason, uint32_t *unsaid);

/* The delay before the next attempt, in ms (0 while nothing fails). */
uint64_t kr_retry_delay(const kr_retry *r);

/* Let the next attempt start at once (something changed that may have
 * mended the cause); the failures still count, so another failure waits
 * longer than the last. */
void kr_retry_now(kr_retry *r);

/* An attempt succeeded. @return the failures in a row it ends (0: there
 * were none, nothing to say). */
uint32_t kr_retry_succeeded(kr_retry *r);

#endif
