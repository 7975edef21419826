/*
 * e2e/suite.c - what every e2e suite shares as a cmocka program (the
 * benches and the hammer link harness.c without it): KRAPPY_E2E_ONLY=NAME
 * runs only the tests NAME matches (harness.h).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>

#include <cmocka.h>

/* Before main, so no suite needs a line of its own for it. */
__attribute__((constructor)) static void run_only_the_asked_tests(void)
{
    if (getenv("KRAPPY_E2E_ONLY") != NULL)
        cmocka_set_test_filter(getenv("KRAPPY_E2E_ONLY"));
}
