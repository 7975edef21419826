/*
 * tests/test_grow.c - a doubling array's room for one more element
 * (util/grow.h): the first allocation, doubling, no move while there is
 * room, and the refusal of a size that overflows (array left as it was).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>

#include <cmocka.h>

#include "util/grow.h"

static void first_then_doubles(void **state)
{
    (void)state;
    uint32_t *a = NULL;
    size_t n = 0, cap = 0;
    for (uint32_t i = 0; i < 100; i++) {
        uint32_t *g = kr_grow(a, n, &cap, sizeof *a, 3);
        assert_non_null(g);
        a = g;
        a[n++] = i;
        assert_true(cap >= n);
        if (n <= 3)
            assert_int_equal(cap, 3);
    }
    assert_int_equal(cap, 192); /* 3, 6, 12, 24, 48, 96, 192 */
    for (uint32_t i = 0; i < 100; i++)
        assert_int_equal(a[i], i);
    free(a);
}

static void room_left_no_move(void **state)
{
    (void)state;
    size_t cap = 0;
    int *a = kr_grow(NULL, 0, &cap, sizeof *a, 8);
    assert_non_null(a);
    assert_int_equal(cap, 8);
    for (size_t n = 1; n < 8; n++) {
        assert_ptr_equal(kr_grow(a, n, &cap, sizeof *a, 8), a);
        assert_int_equal(cap, 8);
    }
    free(a);
}

static void overflow_refused(void **state)
{
    (void)state;
    size_t cap = 4;
    char *a = malloc(4);
    assert_non_null(a);
    size_t huge = SIZE_MAX / 4; /* 8 elements of this size overflow */
    assert_null(kr_grow(a, 4, &cap, huge, 1));
    assert_int_equal(cap, 4);
    cap = (SIZE_MAX / 2) + 1; /* doubling it overflows */
    assert_null(kr_grow(a, cap, &cap, 1, 1));
    assert_int_equal(cap, (SIZE_MAX / 2) + 1);
    free(a);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(first_then_doubles),
        cmocka_unit_test(room_left_no_move),
        cmocka_unit_test(overflow_refused),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
