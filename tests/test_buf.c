/*
 * tests/test_buf.c - kr_buf: growth, the cap, sticky refusal, consume.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "util/buf.h"

static void test_init_empty(void **state)
{
    (void)state;
    kr_buf b;
    kr_buf_init(&b, 100);
    assert_null(b.data);
    assert_int_equal(b.len, 0);
    assert_int_equal(b.cap, 0);
    assert_int_equal(b.max, 100);
    assert_false(b.failed);
    kr_buf_free(&b);
    kr_buf_free(NULL);
}

static void test_append_grows(void **state)
{
    (void)state;
    kr_buf b;
    kr_buf_init(&b, SIZE_MAX);
    for (int i = 0; i < 10000; i++) {
        uint8_t c = (uint8_t)i;
        assert_int_equal(kr_buf_append(&b, &c, 1), 0);
    }
    assert_int_equal(b.len, 10000);
    assert_true(b.cap >= 10000);
    for (int i = 0; i < 10000; i++)
        assert_int_equal(b.data[i], (uint8_t)i);
    assert_false(b.failed);
    kr_buf_free(&b);
    assert_null(b.data);
    assert_int_equal(b.len, 0);
    /* Usable again after free. */
    assert_int_equal(kr_buf_append(&b, "xy", 2), 0);
    assert_memory_equal(b.data, "xy", 2);
    kr_buf_free(&b);
}

static void test_cap_refuses_and_keeps_contents(void **state)
{
    (void)state;
    kr_buf b;
    kr_buf_init(&b, 10);
    assert_int_equal(kr_buf_append(&b, "0123456789", 10), 0);
    assert_int_equal(b.len, 10);
    assert_true(b.cap <= 10);
    assert_int_equal(kr_buf_append(&b, "a", 1), -1);
    assert_true(b.failed);
    assert_int_equal(b.len, 10);
    assert_memory_equal(b.data, "0123456789", 10);
    kr_buf_free(&b);
}

static void test_failed_is_sticky_until_reset(void **state)
{
    (void)state;
    kr_buf b;
    kr_buf_init(&b, 8);
    assert_int_equal(kr_buf_append(&b, "abcd", 4), 0);
    assert_int_equal(kr_buf_append(&b, "efghijkl", 8), -1);
    assert_true(b.failed);
    /* A small append that would fit is refused too: no half-written message. */
    assert_int_equal(kr_buf_append(&b, "e", 1), -1);
    assert_int_equal(kr_buf_reserve(&b, 1), -1);
    assert_int_equal(kr_buf_append(&b, "", 0), -1);
    assert_int_equal(b.len, 4);
    kr_buf_reset(&b);
    assert_false(b.failed);
    assert_int_equal(b.len, 0);
    assert_int_equal(kr_buf_append(&b, "12345678", 8), 0);
    assert_memory_equal(b.data, "12345678", 8);
    kr_buf_free(&b);
}

static void test_reserve(void **state)
{
    (void)state;
    kr_buf b;
    kr_buf_init(&b, 1000);
    assert_int_equal(kr_buf_reserve(&b, 500), 0);
    assert_true(b.cap >= 500);
    assert_int_equal(b.len, 0);
    uint8_t *before = b.data;
    for (int i = 0; i < 500; i++)
        assert_int_equal(kr_buf_append(&b, "z", 1), 0);
    assert_ptr_equal(b.data, before); /* no move within the reservation */
    assert_int_equal(kr_buf_reserve(&b, 501), -1);
    assert_true(b.failed);
    kr_buf_reset(&b);
    assert_int_equal(kr_buf_reserve(&b, 1000), 0);
    assert_int_equal(b.cap, 1000);
    assert_int_equal(kr_buf_reserve(&b, 1001), -1);
    kr_buf_reset(&b);
    assert_int_equal(kr_buf_reserve(&b, SIZE_MAX), -1);
    kr_buf_free(&b);
}

static void test_consume(void **state)
{
    (void)state;
    kr_buf b;
    kr_buf_init(&b, 100);
    kr_buf_append(&b, "hello world", 11);
    kr_buf_consume(&b, 6);
    assert_int_equal(b.len, 5);
    assert_memory_equal(b.data, "world", 5);
    kr_buf_consume(&b, 0);
    assert_int_equal(b.len, 5);
    kr_buf_consume(&b, 5);
    assert_int_equal(b.len, 0);
    kr_buf_append(&b, "ab", 2);
    kr_buf_consume(&b, 99);
    assert_int_equal(b.len, 0);
    kr_buf_free(&b);
}

static void test_zero_max(void **state)
{
    (void)state;
    kr_buf b;
    kr_buf_init(&b, 0);
    assert_int_equal(kr_buf_append(&b, "", 0), 0);
    assert_int_equal(kr_buf_append(&b, "a", 1), -1);
    assert_true(b.failed);
    assert_int_equal(b.len, 0);
    kr_buf_free(&b);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_init_empty),
        cmocka_unit_test(test_append_grows),
        cmocka_unit_test(test_cap_refuses_and_keeps_contents),
        cmocka_unit_test(test_failed_is_sticky_until_reset),
        cmocka_unit_test(test_reserve),
        cmocka_unit_test(test_consume),
        cmocka_unit_test(test_zero_max),
    };
    return cmocka_run_group_tests_name("buf", tests, NULL, NULL);
}
