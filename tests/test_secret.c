/*
 * tests/test_secret.c - util/secret.c: secrets equal only byte for byte and
 * length for length (a prefix, a longer string, an empty one are not the
 * secret).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <string.h>

#include "util/secret.h"

static void test_equal(void **state)
{
    (void)state;
    assert_true(kr_secret_equal("s3cret", 6, "s3cret"));
    assert_false(kr_secret_equal("s3cre", 5, "s3cret"));   /* a prefix */
    assert_false(kr_secret_equal("s3cret!", 7, "s3cret")); /* longer */
    assert_false(kr_secret_equal("s3crex", 6, "s3cret"));  /* last byte */
    assert_false(kr_secret_equal("", 0, "s3cret"));
    assert_true(kr_secret_equal("", 0, ""));
    assert_false(kr_secret_equal("x", 1, ""));
    /* Bytes after a NUL count: the length given is the length compared. */
    assert_false(kr_secret_equal("s3cret\0x", 8, "s3cret"));
    /* Bytes above 0x7f compare as bytes. */
    assert_true(kr_secret_equal("\xc3\xa9", 2, "\xc3\xa9"));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_equal),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
