/*
 * tests/test_names.c - name order and the binary search the store's
 * name-sorted tables (topics, groups) share.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <string.h>

#include <cmocka.h>

#include "store/names.h"

static int cmp(const char *a, const char *b)
{
    return kr_name_cmp(a, strlen(a), (const uint8_t *)b, strlen(b));
}

static void test_order(void **state)
{
    (void)state;
    assert_int_equal(cmp("abc", "abc"), 0);
    assert_true(cmp("ab", "abc") < 0); /* a prefix first */
    assert_true(cmp("abc", "ab") > 0);
    assert_true(cmp("abd", "abc") > 0);
    assert_true(cmp("", "a") < 0);
    assert_true(cmp("\xc3\xa9", "z") > 0); /* unsigned bytes */
}

static const char *const sorted[] = {"a", "a.b", "b", "b-1", "b_1", "orders", "orders2", "z"};
#define N_SORTED (sizeof sorted / sizeof sorted[0])

static const char *name_at(const void *table, size_t i, size_t *len)
{
    const char *const *t = table;
    *len = strlen(t[i]);
    return t[i];
}

static size_t slot(size_t n, const char *name, bool *found)
{
    return kr_name_slot(sorted, n, name_at, (const uint8_t *)name, strlen(name), found);
}

static void test_slot(void **state)
{
    (void)state;
    bool found;
    for (size_t i = 0; i < N_SORTED; i++) {
        assert_int_equal(slot(N_SORTED, sorted[i], &found), i);
        assert_true(found);
    }
    assert_int_equal(slot(N_SORTED, "", &found), 0);
    assert_false(found);
    assert_int_equal(slot(N_SORTED, "a.a", &found), 1);
    assert_false(found);
    assert_int_equal(slot(N_SORTED, "order", &found), 5);
    assert_false(found);
    assert_int_equal(slot(N_SORTED, "zz", &found), N_SORTED);
    assert_false(found);
    assert_int_equal(slot(0, "a", &found), 0); /* an empty table */
    assert_false(found);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_order),
        cmocka_unit_test(test_slot),
    };
    return cmocka_run_group_tests_name("names", tests, NULL, NULL);
}
