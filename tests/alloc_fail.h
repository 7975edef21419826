/*
 * tests/alloc_fail.h - make the n-th allocation fail, to test that code
 * handles every allocation failure: a clean error (or a recovery), nothing
 * leaked and nothing left half-changed.
 *
 * A unit test that uses it is linked with
 *     -Wl,--wrap=malloc,--wrap=calloc,--wrap=realloc,--wrap=strdup,--wrap=mmap
 * and tests/alloc_fail.o (the Makefile's ALLOC_TESTS): every call to those
 * from the program's own objects - libkrappy and the server's modules
 * included, not libc's or other shared libraries' internal ones - goes
 * through the counter here. Unarmed, the wrappers only pass the call on,
 * and under ASan the real calls are still ASan's. Only anonymous mappings
 * count as allocations (a mapped file is I/O). The count is atomic, so
 * allocations on other threads (the store's writer) count too: the n-th
 * is whichever thread makes it.
 */
#ifndef KR_TESTS_ALLOC_FAIL_H
#define KR_TESTS_ALLOC_FAIL_H

#include <stdbool.h>
#include <stddef.h>

/* Make the n-th allocation from now on fail (n >= 1), once; 0 disarms. */
void alloc_fail_arm(unsigned long n);

/* Stop failing. @return whether the armed allocation failed. */
bool alloc_fail_disarm(void);

/* Stop counting while the test itself allocates (building a request the
 * code under test receives), and go on counting where it stopped. Call
 * them in pairs, on the test's thread. */
void alloc_fail_pause(void);
void alloc_fail_resume(void);

/* Under LeakSanitizer (ASan builds), check for leaks now, reporting them
 * on stderr; it can run more than once. @return true when something
 * leaked; false, also when there is no LeakSanitizer. */
bool alloc_fail_leaked(void);

/*
 * alloc_fail_each - for n = 1, 2, ...: arm the n-th allocation to fail and
 * call run(arg), which performs the operation under test from scratch and
 * undoes it (frees what it made), checking what it can see with cmocka's
 * asserts. It returns 0 when the operation succeeded and 1 when it
 * reported a failure. After each call:
 *   - a run in which an allocation failed must have returned 1 - or 0 when
 *     `may_absorb` (the code recovers: a fallback, a later retry);
 *   - a run in which none failed must have returned 0, and ends the loop;
 *   - under LeakSanitizer, nothing may have leaked.
 * Fails the test after `max_runs` runs.
 * @return the number of allocations the operation makes (runs - 1).
 */
unsigned long alloc_fail_each(int (*run)(void *arg), void *arg, bool may_absorb,
                              unsigned long max_runs);

#endif
