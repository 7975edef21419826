/*
 * tests/alloc_fail.c - the counting allocator of alloc_fail.h: the linker's
 * --wrap turns calls to malloc & co. into calls to __wrap_malloc & co.,
 * which fail the armed one and pass the rest on to __real_malloc & co.
 */
#include "alloc_fail.h"

#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#include <cmocka.h>

void *__real_malloc(size_t n);
void *__real_calloc(size_t n, size_t size);
void *__real_realloc(void *p, size_t n);
char *__real_strdup(const char *s);
void *__real_mmap(void *addr, size_t len, int prot, int flags, int fd, off_t off);
void *__wrap_malloc(size_t n);
void *__wrap_calloc(size_t n, size_t size);
void *__wrap_realloc(void *p, size_t n);
char *__wrap_strdup(const char *s);
void *__wrap_mmap(void *addr, size_t len, int prot, int flags, int fd, off_t off);

/* LeakSanitizer's check that can run more than once (ASan builds only). */
int __lsan_do_recoverable_leak_check(void) __attribute__((weak));

static atomic_ulong left; /* allocations until the failing one; 0: unarmed */
static atomic_bool fired;
static unsigned long paused; /* what left was when alloc_fail_pause ran */

/* Count one allocation. @return true when it is the one to fail. */
static bool failing(void)
{
    unsigned long l = atomic_load(&left);
    while (l != 0 && !atomic_compare_exchange_weak(&left, &l, l - 1))
        ;
    if (l != 1)
        return false;
    atomic_store(&fired, true);
    errno = ENOMEM;
    return true;
}

void *__wrap_malloc(size_t n)
{
    return failing() ? NULL : __real_malloc(n);
}

void *__wrap_calloc(size_t n, size_t size)
{
    return failing() ? NULL : __real_calloc(n, size);
}

void *__wrap_realloc(void *p, size_t n)
{
    return failing() ? NULL : __real_realloc(p, n);
}

char *__wrap_strdup(const char *s)
{
    return failing() ? NULL : __real_strdup(s);
}

void *__wrap_mmap(void *addr, size_t len, int prot, int flags, int fd, off_t off)
{
    if ((flags & MAP_ANONYMOUS) && failing())
        return MAP_FAILED;
    return __real_mmap(addr, len, prot, flags, fd, off);
}

void alloc_fail_arm(unsigned long n)
{
    atomic_store(&fired, false);
    atomic_store(&left, n);
}

bool alloc_fail_disarm(void)
{
    atomic_store(&left, 0);
    return atomic_load(&fired);
}

void alloc_fail_pause(void)
{
    paused = atomic_exchange(&left, 0);
}

void alloc_fail_resume(void)
{
    atomic_store(&left, paused);
}

bool alloc_fail_leaked(void)
{
    return __lsan_do_recoverable_leak_check != NULL && __lsan_do_recoverable_leak_check() != 0;
}

unsigned long alloc_fail_each(int (*run)(void *arg), void *arg, bool may_absorb,
                              unsigned long max_runs)
{
    for (unsigned long n = 1; n <= max_runs; n++) {
        alloc_fail_arm(n);
        int rc = run(arg);
        bool failed = alloc_fail_disarm();
        if (failed && rc != 1 && !(may_absorb && rc == 0))
            fail_msg("allocation %lu failed and the operation returned %d, not a clean error", n,
                     rc);
        if (!failed && rc != 0)
            fail_msg("no allocation failed (run %lu) and the operation returned %d", n, rc);
        if (alloc_fail_leaked())
            fail_msg("memory leaked when allocation %lu failed (report above)", n);
        if (!failed)
            return n - 1;
    }
    fail_msg("the operation still allocates after %lu runs", max_runs);
    return max_runs;
}
