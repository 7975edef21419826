/*
 * tests/test_ring.c - the growable FIFO ring (util/ring.h): order kept
 * across growth while wrapped, front and pop on an empty ring, clear and
 * free, elements larger than a pointer.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "util/ring.h"

static void push_u64(kr_ring *r, uint64_t v)
{
    assert_int_equal(kr_ring_reserve(r), 0);
    *(uint64_t *)kr_ring_push(r) = v;
}

static uint64_t pop_u64(kr_ring *r)
{
    const uint64_t *f = kr_ring_front(r);
    assert_non_null(f);
    uint64_t v = *f;
    kr_ring_pop(r);
    return v;
}

static void test_fifo_across_growth(void **state)
{
    (void)state;
    kr_ring r = KR_RING_INIT(uint64_t, 4);
    assert_null(kr_ring_front(&r));
    kr_ring_pop(&r); /* nothing to pop: fine */
    assert_int_equal(kr_ring_len(&r), 0);
    /* Wrap the ring, then grow it while wrapped, several times over. */
    uint64_t next_in = 1, next_out = 1;
    for (int round = 0; round < 6; round++) {
        for (int i = 0; i < 3; i++)
            push_u64(&r, next_in++);
        for (int i = 0; i < 2; i++)
            assert_int_equal(pop_u64(&r), next_out++);
        for (int i = 0; i < 5 + round * 3; i++)
            push_u64(&r, next_in++);
    }
    assert_int_equal(kr_ring_len(&r), next_in - next_out);
    while (kr_ring_len(&r) > 0)
        assert_int_equal(pop_u64(&r), next_out++);
    assert_int_equal(next_out, next_in);
    assert_null(kr_ring_front(&r));

    push_u64(&r, 7);
    kr_ring_clear(&r);
    assert_int_equal(kr_ring_len(&r), 0);
    assert_null(kr_ring_front(&r));
    push_u64(&r, 8); /* usable after a clear */
    assert_int_equal(pop_u64(&r), 8);
    kr_ring_free(&r);
    push_u64(&r, 9); /* and after a free */
    assert_int_equal(pop_u64(&r), 9);
    kr_ring_free(&r);
    kr_ring_free(NULL);
}

typedef struct wide {
    uint64_t a;
    uint32_t b;
    char name[20];
} wide;

static void test_wide_elements(void **state)
{
    (void)state;
    kr_ring r;
    kr_ring_init(&r, sizeof(wide), 0); /* 0: one at first */
    for (uint32_t i = 0; i < 100; i++) {
        assert_int_equal(kr_ring_reserve(&r), 0);
        wide *w = kr_ring_push(&r);
        w->a = i * 1000u;
        w->b = i;
        memset(w->name, 'a' + (int)(i % 26), sizeof w->name);
        if (i % 3 == 2)
            kr_ring_pop(&r);
    }
    uint32_t expect = 33; /* 33 popped, one for every third push */
    while (kr_ring_len(&r) > 0) {
        const wide *w = kr_ring_front(&r);
        assert_int_equal(w->b, expect);
        assert_int_equal(w->a, expect * 1000u);
        assert_int_equal(w->name[19], 'a' + (int)(expect % 26));
        kr_ring_pop(&r);
        expect++;
    }
    assert_int_equal(expect, 100);
    kr_ring_free(&r);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_fifo_across_growth),
        cmocka_unit_test(test_wide_elements),
    };
    return cmocka_run_group_tests_name("ring", tests, NULL, NULL);
}
