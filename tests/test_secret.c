/*
 * tests/test_secret.c - util/secret.c: equal secrets and every way of
 * differing (a byte, a prefix, a longer string, NULs inside) compare as
 * they should.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <string.h>

#include <cmocka.h>

#include "util/secret.h"

static void test_equal_and_different(void **state)
{
    (void)state;
    const char *secret = "t0k3n-s3cret";
    assert_true(kr_secret_equal(secret, strlen(secret), secret));
    assert_false(kr_secret_equal("t0k3n-s3creT", 12, secret));
    assert_false(kr_secret_equal("x0k3n-s3cret", 12, secret));
    /* A prefix, a longer string, and one that only differs past the end. */
    assert_false(kr_secret_equal(secret, 5, secret));
    assert_false(kr_secret_equal("t0k3n-s3cretX", 13, secret));
    assert_false(kr_secret_equal("t0k3n-s3cret\0", 13, secret));
    assert_false(kr_secret_equal("", 0, secret));
    /* NULs in what a client sent are bytes like any other. */
    assert_false(kr_secret_equal("t0k3n\0s3cret", 12, secret));
    /* Bytes above 0x7f compare as bytes. */
    assert_true(kr_secret_equal("\xc3\xa9", 2, "\xc3\xa9"));
    assert_false(kr_secret_equal("\xc3\xa8", 2, "\xc3\xa9"));
}

static void test_empty_secret(void **state)
{
    (void)state;
    assert_true(kr_secret_equal("", 0, ""));
    assert_false(kr_secret_equal("a", 1, ""));
    assert_false(kr_secret_equal("\0", 1, ""));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_equal_and_different),
        cmocka_unit_test(test_empty_secret),
    };
    return cmocka_run_group_tests_name("secret", tests, NULL, NULL);
}
