/*
 * tests/test_producers.c - idempotent producers' rules and tables
 * (store/producers.c): an exact repeat, the repeat of an older PUBLISH,
 * gaps, fencing, the remembered window wrapping around, repeats of batches
 * still in flight, failed batches handing their numbers back, the durable
 * state (what a checkpoint keeps) restored and replayed, the indexes by id
 * and by pid under churn, and forgetting producers by age and by number.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "store/producers.h"

#define NOW   UINT64_C(1700000000000) /* ms */
#define DAY   (24ull * 3600 * 1000)
#define ID(s) (const uint8_t *)(s), strlen(s)

typedef struct fixture {
    kr_prod_set *set;
    kr_prod_table *t;
} fixture;

static int setup(void **state)
{
    fixture *f = calloc(1, sizeof *f);
    f->set = kr_prod_set_new(0, KR_PRODUCER_KEEP_MS);
    f->t = kr_prod_table_new(f->set, f);
    *state = f;
    return f->set != NULL && f->t != NULL ? 0 : -1;
}

static int teardown(void **state)
{
    fixture *f = *state;
    kr_prod_table_free(f->t);
    assert_int_equal(kr_prod_set_count(f->set), 0);
    kr_prod_set_free(f->set);
    free(f);
    return 0;
}

/* A registered producer (epoch 1). */
static kr_producer *reg(fixture *f, const char *id)
{
    kr_producer *p = kr_prod_find(f->t, ID(id));
    if (p == NULL)
        p = kr_prod_add(f->t, ID(id), 0, NOW);
    assert_non_null(p);
    kr_producer_register(p, NOW);
    return p;
}

static kr_prod_verdict check(kr_producer *p, uint64_t seq, uint64_t count, uint64_t *first,
                             uint64_t *expected)
{
    const kr_prod_batch *hit = NULL;
    kr_prod_verdict v = kr_producer_check(p, p->epoch, seq, count, &hit, expected);
    if (v == KR_PROD_DUPLICATE || v == KR_PROD_IN_FLIGHT) {
        assert_non_null(hit);
        assert_int_equal(hit->seq, seq);
        assert_int_equal(hit->count, count);
        if (first != NULL)
            *first = hit->first;
    }
    return v;
}

/* Accept and land a PUBLISH of `count` at offset `first`. */
static void publish(kr_producer *p, uint64_t seq, uint32_t count, uint64_t first)
{
    assert_int_equal(check(p, seq, count, NULL, NULL), KR_PROD_ACCEPT);
    kr_producer_accept(p, seq, count, first, false, NOW);
    kr_producer_stored(p, seq, count, first);
}

static void test_sequence_rules(void **state)
{
    fixture *f = *state;
    kr_producer *p = reg(f, "p1");
    uint64_t first = 0, expected = 0;
    assert_int_equal(p->epoch, 1);
    assert_int_equal(p->next_seq, 0);

    publish(p, 0, 3, 100); /* events 0..2 at offsets 100..102 */
    publish(p, 3, 1, 110);
    publish(p, 4, 10, 120);
    assert_int_equal(p->next_seq, 14);

    /* An exact repeat of the newest: its original offsets. */
    assert_int_equal(check(p, 4, 10, &first, NULL), KR_PROD_DUPLICATE);
    assert_int_equal(first, 120);
    /* A repeat of an older one. */
    assert_int_equal(check(p, 0, 3, &first, NULL), KR_PROD_DUPLICATE);
    assert_int_equal(first, 100);
    assert_int_equal(check(p, 3, 1, &first, NULL), KR_PROD_DUPLICATE);
    assert_int_equal(first, 110);
    /* The same seq with another count is no repeat. */
    assert_int_equal(check(p, 0, 2, NULL, &expected), KR_PROD_OUT_OF_ORDER);
    assert_int_equal(expected, 14);
    /* Inside a PUBLISH but not its start. */
    assert_int_equal(check(p, 1, 2, NULL, &expected), KR_PROD_OUT_OF_ORDER);
    /* A gap. */
    assert_int_equal(check(p, 15, 1, NULL, &expected), KR_PROD_OUT_OF_ORDER);
    assert_int_equal(expected, 14);
    /* Overflow and an empty PUBLISH never match. */
    assert_int_equal(check(p, 14, 0, NULL, NULL), KR_PROD_OUT_OF_ORDER);
    assert_int_equal(check(p, UINT64_MAX, 2, NULL, NULL), KR_PROD_OUT_OF_ORDER);
    /* The next one. */
    assert_int_equal(check(p, 14, 1, NULL, NULL), KR_PROD_ACCEPT);
}

static void test_fencing(void **state)
{
    fixture *f = *state;
    kr_producer *p = reg(f, "p1");
    uint32_t old = p->epoch;
    publish(p, 0, 1, 0);
    reg(f, "p1"); /* a newer registration of the same id */
    assert_int_equal(p->epoch, old + 1);
    uint64_t expected = 99;
    assert_int_equal(kr_producer_check(p, old, 1, 1, NULL, &expected), KR_PROD_FENCED);
    /* Even a repeat is fenced: the older registration is done. */
    assert_int_equal(kr_producer_check(p, old, 0, 1, NULL, NULL), KR_PROD_FENCED);
    /* The new one goes on where the producer is. */
    assert_int_equal(kr_producer_check(p, old + 1, 1, 1, NULL, NULL), KR_PROD_ACCEPT);
    assert_int_equal(kr_producer_check(p, old + 1, 0, 1, NULL, NULL), KR_PROD_DUPLICATE);
    assert_int_equal(kr_producer_check(p, old + 7, 1, 1, NULL, NULL), KR_PROD_FENCED);
}

static void test_window_wraps(void **state)
{
    fixture *f = *state;
    kr_producer *p = reg(f, "p1");
    /* 23 PUBLISHes of 2 events: the ring wraps more than four times. */
    for (uint64_t i = 0; i < 23; i++)
        publish(p, 2 * i, 2, 1000 + 10 * i);
    uint64_t first;
    for (uint64_t i = 0; i < 23; i++) {
        kr_prod_verdict v = check(p, 2 * i, 2, &first, NULL);
        if (i >= 23 - KR_PRODUCER_WINDOW) {
            assert_int_equal(v, KR_PROD_DUPLICATE);
            assert_int_equal(first, 1000 + 10 * i);
        } else {
            assert_int_equal(v, KR_PROD_OUT_OF_ORDER); /* forgotten */
        }
    }
    kr_prod_batch b[KR_PRODUCER_WINDOW];
    uint64_t next;
    assert_int_equal(kr_producer_stored_state(p, &next, b), KR_PRODUCER_WINDOW);
    assert_int_equal(next, 46);
    for (size_t i = 0; i < KR_PRODUCER_WINDOW; i++)
        assert_int_equal(b[i].seq, 2 * (23 - KR_PRODUCER_WINDOW + i)); /* oldest first */
}

/* A repeat's wait, recorded. */
typedef struct answer {
    kr_prod_wait w;
    int calls;
    bool ok;
    uint64_t first;
    uint32_t count;
} answer;

static void on_answer(kr_prod_wait *w, bool ok, uint64_t first, uint32_t count)
{
    answer *a = (answer *)w;
    a->calls++;
    a->ok = ok;
    a->first = first;
    a->count = count;
}

static void test_in_flight(void **state)
{
    fixture *f = *state;
    kr_producer *p = reg(f, "p1");
    kr_producer_accept(p, 0, 5, 50, false, NOW);
    kr_producer_accept(p, 5, 5, 55, false, NOW);
    assert_int_equal(p->in_flight, 2);
    assert_int_equal(p->next_seq, 10); /* pipelined: judged against both */
    assert_int_equal(check(p, 10, 1, NULL, NULL), KR_PROD_ACCEPT);
    assert_int_equal(check(p, 0, 5, NULL, NULL), KR_PROD_IN_FLIGHT);
    answer a = {.w = {.seq = 0, .fn = on_answer}}, b = {.w = {.seq = 5, .fn = on_answer}};
    kr_producer_wait(p, &a.w);
    kr_producer_wait(p, &b.w);
    /* Nothing landed: nothing durable. */
    kr_prod_batch st[KR_PRODUCER_WINDOW];
    uint64_t next = 99;
    assert_int_equal(kr_producer_stored_state(p, &next, st), 0);
    assert_int_equal(next, 0);

    kr_producer_stored(p, 0, 5, 50);
    assert_int_equal(a.calls, 1);
    assert_true(a.ok);
    assert_int_equal(a.first, 50);
    assert_int_equal(a.count, 5);
    assert_int_equal(b.calls, 0);
    assert_int_equal(check(p, 0, 5, NULL, NULL), KR_PROD_DUPLICATE);
    assert_int_equal(kr_producer_stored_state(p, &next, st), 1);
    assert_int_equal(next, 5);

    /* The second fails: its numbers are expected again. */
    kr_producer_failed(p, 5);
    assert_int_equal(b.calls, 1);
    assert_false(b.ok);
    assert_int_equal(p->in_flight, 0);
    assert_int_equal(p->next_seq, 5);
    assert_int_equal(check(p, 5, 5, NULL, NULL), KR_PROD_ACCEPT);
    assert_int_equal(check(p, 10, 1, NULL, NULL), KR_PROD_OUT_OF_ORDER);
}

/* A failure hands back the numbers of the batches queued after it too
 * (they fail with it), and their own failures later change nothing more. */
static void test_failure_of_a_pipeline(void **state)
{
    fixture *f = *state;
    kr_producer *p = reg(f, "p1");
    publish(p, 0, 1, 0);
    kr_producer_accept(p, 1, 1, 1, false, NOW);
    kr_producer_accept(p, 2, 1, 2, false, NOW);
    kr_producer_accept(p, 3, 1, 3, false, NOW);
    kr_producer_failed(p, 1);
    assert_int_equal(p->next_seq, 1);
    assert_int_equal(check(p, 2, 1, NULL, NULL), KR_PROD_OUT_OF_ORDER);
    /* The producer sends 1 again before the later failures come back. */
    kr_producer_accept(p, 1, 1, 1, false, NOW);
    kr_producer_failed(p, 2);
    kr_producer_failed(p, 3);
    assert_int_equal(p->next_seq, 2);
    assert_int_equal(p->in_flight, 1);
    kr_producer_stored(p, 1, 1, 1);
    assert_int_equal(check(p, 1, 1, NULL, NULL), KR_PROD_DUPLICATE);
    assert_int_equal(check(p, 0, 1, NULL, NULL), KR_PROD_DUPLICATE);
    assert_int_equal(check(p, 2, 1, NULL, NULL), KR_PROD_ACCEPT);
}

/* What a checkpoint keeps, restored into a fresh table, then the stream
 * after the checkpoint replayed: the same answers as before. */
static void test_checkpoint_and_replay(void **state)
{
    fixture *f = *state;
    kr_producer *p = reg(f, "orders-1");
    for (uint64_t i = 0; i < 8; i++)
        publish(p, 3 * i, 3, 30 * i);
    kr_producer_accept(p, 24, 3, 240, false, NOW); /* in flight at the checkpoint */
    struct kr_producer_list dirty = TAILQ_HEAD_INITIALIZER(dirty);
    kr_prod_take_dirty(f->t, &dirty);
    assert_ptr_equal(TAILQ_FIRST(&dirty), p);
    kr_prod_batch st[KR_PRODUCER_WINDOW];
    uint64_t next;
    size_t n = kr_producer_stored_state(p, &next, st);
    assert_int_equal(n, 4); /* 4 stored of the 5 remembered */
    assert_int_equal(next, 24);
    uint64_t pid = p->pid;

    kr_prod_set *set2 = kr_prod_set_new(0, KR_PRODUCER_KEEP_MS);
    kr_prod_table *t2 = kr_prod_table_new(set2, NULL);
    kr_producer *q = kr_prod_add(t2, ID("orders-1"), pid, NOW);
    assert_non_null(q);
    assert_int_equal(kr_prod_table_next_pid(t2), pid + 1);
    q->epoch = 1;
    kr_producer_restore(q, next, st, n, NOW - DAY);
    assert_int_equal(q->last_ms, NOW - DAY);
    assert_int_equal(check(q, 24, 3, NULL, NULL), KR_PROD_ACCEPT);
    uint64_t first;
    assert_int_equal(check(q, 21, 3, &first, NULL), KR_PROD_DUPLICATE);
    assert_int_equal(first, 210);
    /* The in-flight batch had landed before the crash: the replay finds it. */
    kr_producer_replay(q, 24, 3, 240, NOW);
    assert_int_equal(check(q, 24, 3, &first, NULL), KR_PROD_DUPLICATE);
    assert_int_equal(first, 240);
    assert_int_equal(check(q, 12, 3, NULL, NULL), KR_PROD_DUPLICATE);
    assert_int_equal(check(q, 9, 3, NULL, NULL), KR_PROD_OUT_OF_ORDER); /* 6th oldest */
    assert_int_equal(check(q, 27, 1, NULL, NULL), KR_PROD_ACCEPT);
    assert_true(q->dirty); /* the replay must reach the next checkpoint */

    /* A restore of more than the window keeps the newest. */
    kr_prod_batch many[7];
    for (int i = 0; i < 7; i++)
        many[i] = (kr_prod_batch){
            .seq = (uint64_t)i, .first = 100 + (uint64_t)i, .count = 1, .stored = true};
    kr_producer_restore(q, 7, many, 7, 0);
    assert_int_equal(check(q, 1, 1, NULL, NULL), KR_PROD_OUT_OF_ORDER);
    assert_int_equal(check(q, 2, 1, &first, NULL), KR_PROD_DUPLICATE);
    assert_int_equal(first, 102);
    kr_prod_table_free(t2);
    kr_prod_set_free(set2);

    /* Taken: clean until it changes again, or a checkpoint fails. */
    assert_false(p->dirty);
    TAILQ_INIT(&dirty);
    kr_prod_take_dirty(f->t, &dirty);
    assert_true(TAILQ_EMPTY(&dirty));
    kr_prod_mark_all_dirty(f->t);
    assert_true(p->dirty);
    kr_producer_stored(p, 24, 3, 240);
    kr_prod_take_dirty(f->t, &dirty);
    assert_ptr_equal(TAILQ_FIRST(&dirty), p);
    assert_null(TAILQ_NEXT(p, dirty_link));
}

static void test_table_churn(void **state)
{
    fixture *f = *state;
    char id[32];
    /* Grow past several resizes, remove every third, look everything up. */
    for (int i = 0; i < 3000; i++) {
        snprintf(id, sizeof id, "producer-%d", i);
        kr_producer *p = kr_prod_add(f->t, ID(id), 0, NOW);
        assert_non_null(p);
        assert_int_equal(p->pid, (uint64_t)i + 1);
    }
    assert_null(kr_prod_add(f->t, ID("producer-7"), 0, NOW)); /* taken */
    assert_null(kr_prod_add(f->t, ID("other"), 5, NOW));      /* pid taken */
    assert_null(kr_prod_add(f->t, (const uint8_t *)"", 0, 0, NOW));
    assert_int_equal(kr_prod_table_count(f->t), 3000);
    /* Forget every third through the set (the oldest first: all are idle
     * and expired 8 days later). */
    kr_prod_set *set = f->set;
    for (int i = 0; i < 3000; i += 3) {
        snprintf(id, sizeof id, "producer-%d", i);
        kr_producer *p = kr_prod_find(f->t, ID(id));
        assert_non_null(p);
        p->last_ms = 0; /* make them the expired ones */
    }
    kr_prod_set_sort(set); /* as a restart does after restoring */
    size_t gone = kr_prod_set_trim(set, 8 * DAY, SIZE_MAX, NULL, NULL);
    assert_int_equal(gone, 1000);
    for (int i = 0; i < 3000; i++) {
        snprintf(id, sizeof id, "producer-%d", i);
        kr_producer *p = kr_prod_find(f->t, ID(id)), *q = kr_prod_find_pid(f->t, (uint64_t)i + 1);
        if (i % 3 == 0) {
            assert_null(p);
            assert_null(q);
        } else {
            assert_non_null(p);
            assert_ptr_equal(p, q);
        }
    }
    /* pids are never reused. */
    kr_producer *n = kr_prod_add(f->t, ID("producer-0"), 0, NOW);
    assert_int_equal(n->pid, 3001);
    kr_prod_table_raise_pid(f->t, 10);
    assert_int_equal(kr_prod_table_next_pid(f->t), 3002);
    kr_prod_table_raise_pid(f->t, 5000);
    assert_int_equal(kr_prod_add(f->t, ID("x"), 0, NOW)->pid, 5000);
    assert_true(kr_producer_bytes(10) > sizeof(kr_producer));
}

static void count_gone(void *arg, kr_producer *p)
{
    (void)p;
    (*(int *)arg)++;
}

static void test_forgetting(void **state)
{
    fixture *f = *state;
    kr_prod_set *set = kr_prod_set_new(3, KR_PRODUCER_KEEP_MS);
    kr_prod_table *t = kr_prod_table_new(set, NULL);
    kr_producer *a = kr_prod_add(t, ID("a"), 0, NOW), *b = kr_prod_add(t, ID("b"), 0, NOW + 1),
                *c = kr_prod_add(t, ID("c"), 0, NOW + 2);
    (void)f;
    (void)c;
    int gone = 0;
    /* Within the limit and young: nothing goes. */
    assert_int_equal(kr_prod_set_trim(set, NOW + 10, 3, count_gone, &gone), 0);
    /* Room for one more: the least recently active goes - but a is held
     * by a live registration, so b goes. */
    kr_producer_hold(a);
    assert_int_equal(kr_prod_set_trim(set, NOW + 10, 2, count_gone, &gone), 1);
    assert_int_equal(gone, 1);
    assert_null(kr_prod_find(t, ID("b")));
    assert_non_null(kr_prod_find(t, ID("a")));
    (void)b;
    /* Activity moves a producer to the back. */
    kr_producer_release(a);
    kr_producer *d = kr_prod_add(t, ID("d"), 0, NOW + 3);
    kr_producer_register(a, NOW + 4); /* now c, d, a */
    assert_int_equal(kr_prod_set_trim(set, NOW + 10, 2, count_gone, &gone), 1);
    assert_null(kr_prod_find(t, ID("c")));
    /* One in flight or with a waiting repeat is busy too. */
    kr_producer_register(d, NOW + 5);
    kr_producer_accept(d, 0, 1, 0, false, NOW + 5);
    kr_producer_register(a, NOW + 6); /* d, a */
    assert_int_equal(kr_prod_set_trim(set, NOW + 10, 1, count_gone, &gone), 1);
    assert_null(kr_prod_find(t, ID("a")));
    assert_non_null(kr_prod_find(t, ID("d")));
    /* Age: 7 days after its last activity a producer is forgotten, limit
     * or not; a day earlier it is kept. */
    kr_producer_stored(d, 0, 1, 0);
    assert_int_equal(kr_prod_set_trim(set, NOW + 5 + 6 * DAY, 3, count_gone, &gone), 0);
    assert_int_equal(kr_prod_set_trim(set, NOW + 5 + 7 * DAY, 3, count_gone, &gone), 1);
    assert_int_equal(kr_prod_set_count(set), 0);
    assert_int_equal(gone, 4);
    kr_prod_table_free(t);
    kr_prod_set_free(set);
}

/* A table freed with repeats still waiting drops them (the store closes
 * only after every append completed, so this is the teardown path). */
static void test_free_with_waits(void **state)
{
    fixture *f = *state;
    kr_producer *p = reg(f, "p1");
    kr_producer_accept(p, 0, 1, 0, false, NOW);
    answer a = {.w = {.seq = 0, .fn = on_answer}};
    kr_producer_wait(p, &a.w);
    kr_prod_table_free(f->t);
    f->t = kr_prod_table_new(f->set, f);
    assert_int_equal(a.calls, 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_sequence_rules, setup, teardown),
        cmocka_unit_test_setup_teardown(test_fencing, setup, teardown),
        cmocka_unit_test_setup_teardown(test_window_wraps, setup, teardown),
        cmocka_unit_test_setup_teardown(test_in_flight, setup, teardown),
        cmocka_unit_test_setup_teardown(test_failure_of_a_pipeline, setup, teardown),
        cmocka_unit_test_setup_teardown(test_checkpoint_and_replay, setup, teardown),
        cmocka_unit_test_setup_teardown(test_table_churn, setup, teardown),
        cmocka_unit_test_setup_teardown(test_forgetting, setup, teardown),
        cmocka_unit_test_setup_teardown(test_free_with_waits, setup, teardown),
    };
    return cmocka_run_group_tests_name("producers", tests, NULL, NULL);
}
