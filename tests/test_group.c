/*
 * tests/test_group.c - the window of a consumer group (store/group.c) against
 * PROTOCOL.md section 4: take/hand_out from the frontier within `max`, `end`,
 * `max_grants` and the window bound; the cursor under in-order and
 * out-of-order acks; ACK `upto` (this member's pending only) and `offsets`
 * (pending for anyone or awaiting redelivery, late acks count, a never
 * handed-out offset refuses the whole ACK, repeats listed once in ignored);
 * redelivery on leave, oldest first, before new offsets; expiry deadlines;
 * auto-ack; take-over of a member name; generated names; retention
 * (skip_to); the run count staying small; a randomized check of 20,000
 * operations against a per-offset reference model (fixed seed); and every
 * allocation failing in turn (tests/alloc_fail.h).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "alloc_fail.h"
#include "store/group.h"

#define U8(s) ((const uint8_t *)(s))
#define T(s)  U8(s), (sizeof(s) - 1)

/* ---- helpers ---- */

static kr_group *new_group(uint64_t cursor, uint64_t max_window)
{
    kr_group *g = kr_group_new(T("g"), cursor, max_window);
    assert_non_null(g);
    return g;
}

/* Join under `name` (NULL: generated), expecting no take-over. */
static kr_member *join(kr_group *g, const char *name, bool auto_ack, uint64_t wait, void *owner)
{
    void *taken = (void *)1;
    kr_member *m = kr_group_join(g, (const uint8_t *)name, name ? strlen(name) : 0, auto_ack, wait,
                                 owner, &taken);
    assert_non_null(m);
    assert_null(taken);
    assert_ptr_equal(m->group, g);
    return m;
}

/* The run holding `off`, or NULL outside [cursor, frontier). */
static const kr_run *run_of(const kr_group *g, uint64_t off)
{
    for (size_t i = 0; i < g->n_runs; i++)
        if (g->runs[i].first <= off && off < g->runs[i].next)
            return &g->runs[i];
    return NULL;
}

static kr_run_state state_of(const kr_group *g, uint64_t off)
{
    const kr_run *r = run_of(g, off);
    assert_non_null(r);
    return r->state;
}

static void assert_run(const kr_group *g, size_t i, uint64_t first, uint64_t next, kr_run_state st,
                       const kr_member *m)
{
    assert_true(i < g->n_runs);
    assert_int_equal(g->runs[i].first, first);
    assert_int_equal(g->runs[i].next, next);
    assert_int_equal(g->runs[i].state, st);
    if (st == KR_RUN_PENDING)
        assert_ptr_equal(g->runs[i].member, m);
}

static bool is_member(const kr_group *g, const kr_member *m)
{
    const kr_member *x;
    TAILQ_FOREACH(x, &g->members, link)
    {
        if (x == m)
            return true;
    }
    return false;
}

/* The module's invariant: runs sorted, adjacent, non-empty, covering exactly
 * [cursor, frontier); the first not ACKED; pending ones owned by a live
 * member; no two neighbours that could have been merged. */
static void check_invariants(const kr_group *g)
{
    size_t n = 0;
    const kr_member *m;
    TAILQ_FOREACH(m, &g->members, link)
    {
        n++;
    }
    assert_int_equal(n, g->n_members);
    assert_true(g->cursor <= g->frontier);
    assert_true(g->n_runs <= g->cap_runs || g->n_runs == 0);
    if (g->n_runs == 0) {
        assert_int_equal(g->cursor, g->frontier);
        return;
    }
    assert_int_equal(g->runs[0].first, g->cursor);
    assert_int_equal(g->runs[g->n_runs - 1].next, g->frontier);
    assert_int_not_equal(g->runs[0].state, KR_RUN_ACKED);
    for (size_t i = 0; i < g->n_runs; i++) {
        const kr_run *r = &g->runs[i];
        assert_true(r->first < r->next);
        if (i > 0)
            assert_int_equal(g->runs[i - 1].next, r->first);
        if (r->state == KR_RUN_PENDING) {
            assert_non_null(r->member);
            assert_true(is_member(g, r->member));
        } else {
            assert_null(r->member);
        }
        if (r->state != KR_RUN_ACKED)
            assert_true(r->deliveries >= 1);
        if (i > 0) {
            const kr_run *p = &g->runs[i - 1];
            bool same = p->state == r->state &&
                        (r->state == KR_RUN_ACKED ||
                         (p->deliveries == r->deliveries &&
                          (r->state == KR_RUN_REDELIVER ||
                           (p->member == r->member && p->deadline_ms == r->deadline_ms))));
            assert_false(same);
        }
    }
}

static size_t take(kr_group *g, uint64_t end, uint64_t max, kr_grant *out, size_t max_grants)
{
    size_t n = kr_group_take(g, end, max, out, max_grants);
    assert_true(n <= max_grants);
    return n;
}

static void assert_grant(const kr_grant *gr, uint64_t first, uint64_t next, bool redelivery)
{
    assert_int_equal(gr->first, first);
    assert_int_equal(gr->next, next);
    assert_int_equal(gr->redelivery, redelivery);
}

/* Take what `max` allows from `end` and hand all of it to m at `now`. */
static uint64_t poll_all(kr_group *g, kr_member *m, uint64_t end, uint64_t max, uint64_t now)
{
    kr_grant gr[8];
    size_t n = take(g, end, max, gr, 8);
    uint64_t sent = 0;
    for (size_t i = 0; i < n; i++) {
        kr_group_hand_out(g, m, gr[i].first, gr[i].next, now);
        sent += gr[i].next - gr[i].first;
    }
    check_invariants(g);
    return sent;
}

static kr_ack_result ack_upto(kr_group *g, kr_member *m, uint64_t upto)
{
    kr_ack_result res;
    memset(&res, 0xa5, sizeof res);
    kr_group_ack_upto(g, m, upto, &res);
    assert_int_equal(res.err, KRAPPY_OK);
    assert_int_equal(res.n_ignored, 0);
    free(res.ignored);
    res.ignored = NULL;
    check_invariants(g);
    return res;
}

/* ACK offsets that must succeed; returns newly acknowledged and checks the
 * ignored list against `ign` (n_ign entries, in ascending order). */
static uint64_t ack_offsets(kr_group *g, const uint64_t *offs, size_t n, const uint64_t *ign,
                            size_t n_ign)
{
    kr_ack_result res;
    memset(&res, 0xa5, sizeof res);
    kr_group_ack_offsets(g, offs, n, &res);
    assert_int_equal(res.err, KRAPPY_OK);
    assert_int_equal(res.n_ignored, n_ign);
    for (size_t i = 0; i < n_ign; i++)
        assert_int_equal(res.ignored[i], ign[i]);
    free(res.ignored);
    check_invariants(g);
    return res.acked;
}

static uint64_t ack_range(kr_group *g, uint64_t first, uint64_t next)
{
    uint64_t offs[64];
    assert_true(next - first <= 64);
    for (uint64_t o = first; o < next; o++)
        offs[o - first] = o;
    return ack_offsets(g, offs, (size_t)(next - first), NULL, 0);
}

static uint64_t expire(kr_group *g, uint64_t now, uint64_t *next_deadline)
{
    uint64_t back = kr_group_expire(g, now, next_deadline);
    check_invariants(g);
    return back;
}

/* ---- creation ---- */

static void test_new_free(void **state)
{
    (void)state;
    kr_group *g = kr_group_new(T("orders"), 42, 0);
    assert_non_null(g);
    assert_string_equal(g->name, "orders");
    assert_int_equal(g->name_len, 6);
    assert_int_equal(g->cursor, 42);
    assert_int_equal(g->frontier, 42);
    assert_int_equal(g->durable, 42);
    assert_int_equal(g->max_window, KR_GROUP_DEFAULT_WINDOW);
    assert_int_equal(g->n_runs, 0);
    assert_int_equal(g->n_members, 0);
    assert_int_equal(kr_group_pending(g), 0);
    assert_false(kr_group_has_redelivery(g));
    assert_int_equal(kr_group_max_deliveries(g), 0);
    check_invariants(g);
    kr_group_free(g);
    kr_group_free(NULL);

    g = new_group(0, 7);
    assert_int_equal(g->max_window, 7);
    /* Members still joined are freed with the group (ASan/valgrind check). */
    join(g, "a", false, 100, NULL);
    join(g, NULL, true, 0, NULL);
    assert_int_equal(g->n_members, 2);
    kr_group_free(g);
}

/* ---- take / hand_out ---- */

static void test_take_new_offsets(void **state)
{
    (void)state;
    kr_group *g = new_group(5, 100);
    kr_member *a = join(g, "a", false, 1000, NULL);
    kr_grant gr[4];

    /* The topic holds nothing past the cursor. */
    assert_int_equal(take(g, 5, 10, gr, 4), 0);
    assert_int_equal(take(g, 0, 10, gr, 4), 0);

    /* `max` bounds the slice; take changes nothing. */
    assert_int_equal(take(g, 20, 4, gr, 4), 1);
    assert_grant(&gr[0], 5, 9, false);
    assert_int_equal(take(g, 20, 4, gr, 4), 1);
    assert_grant(&gr[0], 5, 9, false);
    assert_int_equal(g->frontier, 5);
    assert_int_equal(g->n_runs, 0);

    kr_group_hand_out(g, a, 5, 9, 100);
    check_invariants(g);
    assert_int_equal(g->cursor, 5);
    assert_int_equal(g->frontier, 9);
    assert_int_equal(kr_group_pending(g), 4);
    assert_int_equal(g->n_runs, 1);
    assert_run(g, 0, 5, 9, KR_RUN_PENDING, a);
    assert_int_equal(g->runs[0].deadline_ms, 1100);
    assert_int_equal(g->runs[0].deliveries, 1);
    assert_int_equal(kr_group_max_deliveries(g), 1);
    assert_false(kr_group_has_redelivery(g));

    /* Next take starts at the frontier; up to `end` when max allows. */
    assert_int_equal(take(g, 20, 100, gr, 4), 1);
    assert_grant(&gr[0], 9, 20, false);
    assert_int_equal(take(g, 20, 0, gr, 4), 0);   /* max 0 */
    assert_int_equal(take(g, 20, 100, gr, 0), 0); /* no room for a slice */

    /* Same member, same deadline, same count: one run. */
    kr_group_hand_out(g, a, 9, 12, 100);
    check_invariants(g);
    assert_int_equal(g->n_runs, 1);
    assert_run(g, 0, 5, 12, KR_RUN_PENDING, a);
    /* Another deadline: a run of its own. */
    kr_group_hand_out(g, a, 12, 14, 200);
    check_invariants(g);
    assert_int_equal(g->n_runs, 2);
    assert_run(g, 1, 12, 14, KR_RUN_PENDING, a);
    assert_int_equal(g->runs[1].deadline_ms, 1200);
    /* An empty slice is nothing. */
    kr_group_hand_out(g, a, 14, 14, 300);
    assert_int_equal(g->frontier, 14);
    assert_int_equal(g->n_runs, 2);
    kr_group_free(g);
}

static void test_take_end(void **state)
{
    (void)state;
    kr_group *g = new_group(0, 100);
    kr_member *a = join(g, "a", false, 1000, NULL);
    kr_grant gr[4];
    assert_int_equal(take(g, 3, 10, gr, 4), 1);
    assert_grant(&gr[0], 0, 3, false);
    kr_group_hand_out(g, a, 0, 3, 0);
    assert_int_equal(take(g, 3, 10, gr, 4), 0); /* all handed out */
    assert_int_equal(take(g, 2, 10, gr, 4), 0); /* end below the frontier */
    assert_int_equal(take(g, 4, 10, gr, 4), 1);
    assert_grant(&gr[0], 3, 4, false);
    kr_group_free(g);
}

/* A stuck pending offset at the cursor stops new hand-outs once the window
 * (frontier - cursor) is full; acking it opens the window again. */
static void test_take_window_bound(void **state)
{
    (void)state;
    kr_group *g = new_group(0, 10);
    kr_member *a = join(g, "a", false, 1000, NULL);
    kr_member *b = join(g, "b", false, 1000, NULL);
    kr_grant gr[4];

    assert_int_equal(poll_all(g, a, 100, 1, 0), 1); /* offset 0: stuck with a */
    /* Room for 9 only, though max and end allow more. */
    assert_int_equal(take(g, 100, 100, gr, 4), 1);
    assert_grant(&gr[0], 1, 10, false);
    assert_int_equal(poll_all(g, b, 100, 5, 0), 5); /* 1..5 */
    assert_int_equal(take(g, 100, 100, gr, 4), 1);
    assert_grant(&gr[0], 6, 10, false); /* fewer: 4 */
    assert_int_equal(poll_all(g, b, 100, 100, 0), 4);
    assert_int_equal(g->frontier, 10);

    /* b acks everything it has: the window stays full behind offset 0. */
    assert_int_equal(ack_upto(g, b, 10).acked, 9);
    assert_int_equal(g->cursor, 0);
    assert_int_equal(kr_group_pending(g), 1);
    assert_int_equal(take(g, 100, 100, gr, 4), 0);
    assert_int_equal(poll_all(g, b, 100, 100, 0), 0);

    /* The stuck offset is acked: cursor jumps to 10, window free again. */
    assert_int_equal(ack_upto(g, a, 1).acked, 1);
    assert_int_equal(g->cursor, 10);
    assert_int_equal(g->n_runs, 0);
    assert_int_equal(take(g, 100, 100, gr, 4), 1);
    assert_grant(&gr[0], 10, 20, false);
    assert_int_equal(poll_all(g, a, 100, 3, 0), 3);
    assert_int_equal(take(g, 100, 100, gr, 4), 1);
    assert_grant(&gr[0], 13, 20, false);
    kr_group_free(g);
}

/* Redeliveries first, oldest first, then new offsets; max and max_grants. */
static void test_take_redeliveries_first(void **state)
{
    (void)state;
    kr_group *g = new_group(0, 100);
    kr_member *a = join(g, "a", false, 1000, NULL);
    kr_member *b = join(g, "b", false, 1000, NULL);
    kr_grant gr[8];

    kr_group_hand_out(g, a, 0, 3, 0);
    kr_group_hand_out(g, b, 3, 5, 0);
    kr_group_hand_out(g, a, 5, 8, 10);
    check_invariants(g);
    assert_int_equal(g->n_runs, 3);

    /* a disconnects: its 6 pending go back to the group. */
    assert_int_equal(kr_group_leave(g, a), 6);
    check_invariants(g);
    assert_int_equal(g->n_members, 1);
    assert_true(kr_group_has_redelivery(g));
    assert_int_equal(kr_group_pending(g), 8);
    assert_int_equal(g->frontier, 8); /* redeliveries do not move it */
    assert_run(g, 0, 0, 3, KR_RUN_REDELIVER, NULL);
    assert_run(g, 1, 3, 5, KR_RUN_PENDING, b);
    assert_run(g, 2, 5, 8, KR_RUN_REDELIVER, NULL);

    assert_int_equal(take(g, 20, 100, gr, 8), 3);
    assert_grant(&gr[0], 0, 3, true);
    assert_grant(&gr[1], 5, 8, true);
    assert_grant(&gr[2], 8, 20, false);
    assert_int_equal(take(g, 20, 4, gr, 8), 2); /* max cuts the second */
    assert_grant(&gr[0], 0, 3, true);
    assert_grant(&gr[1], 5, 6, true);
    assert_int_equal(take(g, 20, 2, gr, 8), 1);
    assert_grant(&gr[0], 0, 2, true);
    assert_int_equal(take(g, 20, 100, gr, 1), 1);
    assert_grant(&gr[0], 0, 3, true);
    assert_int_equal(take(g, 20, 100, gr, 2), 2);
    assert_grant(&gr[1], 5, 8, true);
    assert_int_equal(take(g, 8, 100, gr, 8), 2); /* nothing new in the topic */

    /* c takes the redeliveries: counted, deliveries 2. */
    kr_member *c = join(g, "c", false, 500, NULL);
    kr_group_hand_out(g, c, 0, 3, 50);
    check_invariants(g);
    assert_int_equal(g->redeliveries, 3);
    assert_int_equal(kr_group_max_deliveries(g), 2);
    assert_int_equal(run_of(g, 0)->deliveries, 2);
    assert_int_equal(run_of(g, 0)->deadline_ms, 550);
    assert_ptr_equal(run_of(g, 0)->member, c);
    assert_int_equal(run_of(g, 5)->deliveries, 1);
    kr_group_hand_out(g, c, 5, 8, 50);
    check_invariants(g);
    assert_int_equal(g->redeliveries, 6);
    assert_false(kr_group_has_redelivery(g));
    assert_int_equal(kr_group_pending(g), 8);
    assert_int_equal(take(g, 20, 100, gr, 8), 1);
    assert_grant(&gr[0], 8, 20, false);

    /* Expired and handed out again: deliveries 3. */
    uint64_t nd;
    assert_int_equal(expire(g, 550, &nd), 6);
    assert_int_equal(nd, 1000); /* b's */
    assert_int_equal(g->n_runs, 3);
    assert_int_equal(take(g, 8, 100, gr, 8), 2);
    assert_grant(&gr[0], 0, 3, true);
    assert_grant(&gr[1], 5, 8, true);
    kr_group_hand_out(g, b, 0, 1, 600);
    check_invariants(g);
    assert_int_equal(run_of(g, 0)->deliveries, 3);
    assert_int_equal(run_of(g, 1)->deliveries, 2);
    assert_int_equal(kr_group_max_deliveries(g), 3);
    assert_int_equal(g->redeliveries, 7);
    /* The remaining redelivery of 1..2 is now the oldest. */
    assert_int_equal(take(g, 8, 100, gr, 8), 2);
    assert_grant(&gr[0], 1, 3, true);
    assert_grant(&gr[1], 5, 8, true);
    kr_group_free(g);
}

/* ---- cursor and acks ---- */

static void test_ack_in_order(void **state)
{
    (void)state;
    kr_group *g = new_group(0, 100);
    kr_member *a = join(g, "a", false, 1000, NULL);
    assert_int_equal(poll_all(g, a, 10, 100, 0), 10);
    assert_int_equal(ack_upto(g, a, 3).acked, 3);
    assert_int_equal(g->cursor, 3);
    assert_int_equal(g->n_runs, 1);
    assert_run(g, 0, 3, 10, KR_RUN_PENDING, a);
    assert_int_equal(kr_group_pending(g), 7);
    assert_int_equal(ack_upto(g, a, 3).acked, 0); /* again: nothing */
    assert_int_equal(ack_upto(g, a, 2).acked, 0); /* below the cursor */
    assert_int_equal(ack_upto(g, a, 7).acked, 4);
    assert_int_equal(g->cursor, 7);
    assert_int_equal(ack_upto(g, a, 1000).acked, 3); /* past the frontier */
    assert_int_equal(g->cursor, 10);
    assert_int_equal(g->frontier, 10);
    assert_int_equal(g->n_runs, 0);
    assert_int_equal(kr_group_pending(g), 0);
    kr_group_free(g);
}

static void test_ack_out_of_order(void **state)
{
    (void)state;
    kr_group *g = new_group(0, 100);
    kr_member *a = join(g, "a", false, 1000, NULL);
    kr_group_hand_out(g, a, 0, 5, 0);
    kr_group_hand_out(g, a, 5, 10, 1);

    /* 5..9 first: the cursor waits for the gap. */
    assert_int_equal(ack_range(g, 5, 10), 5);
    assert_int_equal(g->cursor, 0);
    assert_int_equal(kr_group_pending(g), 5);
    assert_int_equal(g->n_runs, 2);
    assert_run(g, 0, 0, 5, KR_RUN_PENDING, a);
    assert_run(g, 1, 5, 10, KR_RUN_ACKED, NULL);

    uint64_t two = 2;
    assert_int_equal(ack_offsets(g, &two, 1, NULL, 0), 1);
    assert_int_equal(g->cursor, 0);
    assert_int_equal(g->n_runs, 4); /* [0,2) P, [2,3) A, [3,5) P, [5,10) A */
    assert_int_equal(ack_range(g, 0, 2), 2);
    assert_int_equal(g->cursor, 3); /* 0..2 acknowledged */
    assert_int_equal(ack_range(g, 3, 5), 2);
    assert_int_equal(g->cursor, 10); /* the gap filled: jump */
    assert_int_equal(g->n_runs, 0);

    /* The same through ack upto of two members. */
    kr_member *b = join(g, "b", false, 1000, NULL);
    kr_group_hand_out(g, a, 10, 15, 0);
    kr_group_hand_out(g, b, 15, 20, 0);
    assert_int_equal(ack_upto(g, b, 20).acked, 5);
    assert_int_equal(g->cursor, 10);
    assert_int_equal(ack_upto(g, a, 14).acked, 4);
    assert_int_equal(g->cursor, 14);
    assert_int_equal(ack_upto(g, a, 15).acked, 1);
    assert_int_equal(g->cursor, 20);
    kr_group_free(g);
}

/* ACK upto touches only this member's pending offsets: another member's, and
 * those awaiting redelivery, stay. */
static void test_ack_upto_own_only(void **state)
{
    (void)state;
    kr_group *g = new_group(0, 100);
    kr_member *a = join(g, "a", false, 1000, NULL);
    kr_member *b = join(g, "b", false, 1000, NULL);
    kr_member *c = join(g, "c", false, 1000, NULL);
    kr_group_hand_out(g, a, 0, 3, 0);
    kr_group_hand_out(g, b, 3, 6, 0);
    kr_group_hand_out(g, a, 6, 9, 5);
    kr_group_hand_out(g, c, 9, 12, 0);
    kr_group_hand_out(g, a, 12, 20, 7);
    assert_int_equal(kr_group_leave(g, c), 3);
    check_invariants(g);

    /* Upto 15 cuts a's last run in two. */
    assert_int_equal(ack_upto(g, a, 15).acked, 9);
    assert_int_equal(g->cursor, 3);
    assert_int_equal(kr_group_pending(g), 3 + 3 + 5);
    for (uint64_t o = 3; o < 6; o++) {
        assert_int_equal(state_of(g, o), KR_RUN_PENDING);
        assert_ptr_equal(run_of(g, o)->member, b);
    }
    for (uint64_t o = 6; o < 9; o++)
        assert_int_equal(state_of(g, o), KR_RUN_ACKED);
    for (uint64_t o = 9; o < 12; o++)
        assert_int_equal(state_of(g, o), KR_RUN_REDELIVER);
    for (uint64_t o = 12; o < 15; o++)
        assert_int_equal(state_of(g, o), KR_RUN_ACKED);
    for (uint64_t o = 15; o < 20; o++) {
        assert_int_equal(state_of(g, o), KR_RUN_PENDING);
        assert_ptr_equal(run_of(g, o)->member, a);
        assert_int_equal(run_of(g, o)->deadline_ms, 1007);
    }
    /* b acking upto 20 touches only 3..5. */
    assert_int_equal(ack_upto(g, b, 20).acked, 3);
    assert_int_equal(g->cursor, 9);
    assert_int_equal(kr_group_pending(g), 8);
    assert_int_equal(state_of(g, 9), KR_RUN_REDELIVER);
    kr_group_free(g);
}

/* ACK offsets acknowledges what is pending for anyone or awaiting redelivery. */
static void test_ack_offsets_any(void **state)
{
    (void)state;
    kr_group *g = new_group(0, 100);
    kr_member *a = join(g, "a", false, 1000, NULL);
    kr_member *b = join(g, "b", false, 1000, NULL);
    kr_member *c = join(g, "c", false, 1000, NULL);
    kr_group_hand_out(g, a, 0, 3, 0);
    kr_group_hand_out(g, b, 3, 6, 0);
    kr_group_hand_out(g, c, 6, 9, 0);
    assert_int_equal(kr_group_leave(g, c), 3);

    uint64_t some[] = {4, 7, 1};
    assert_int_equal(ack_offsets(g, some, 3, NULL, 0), 3);
    assert_int_equal(g->cursor, 0);
    assert_int_equal(kr_group_pending(g), 6);
    assert_int_equal(state_of(g, 1), KR_RUN_ACKED);
    assert_int_equal(state_of(g, 4), KR_RUN_ACKED);
    assert_int_equal(state_of(g, 7), KR_RUN_ACKED);
    assert_int_equal(state_of(g, 0), KR_RUN_PENDING);
    assert_int_equal(state_of(g, 3), KR_RUN_PENDING);
    assert_int_equal(state_of(g, 6), KR_RUN_REDELIVER);

    uint64_t rest[] = {8, 6, 5, 3, 2, 0};
    assert_int_equal(ack_offsets(g, rest, 6, NULL, 0), 6);
    assert_int_equal(g->cursor, 9);
    assert_int_equal(g->n_runs, 0);
    assert_false(kr_group_has_redelivery(g));
    /* An empty list is no error and does nothing. */
    assert_int_equal(ack_offsets(g, NULL, 0, NULL, 0), 0);
    assert_int_equal(g->cursor, 9);
    kr_group_free(g);
}

/* Offset handed to a, expired, handed to b: a's late ACK still counts. */
static void test_late_ack_after_redelivery(void **state)
{
    (void)state;
    kr_group *g = new_group(0, 100);
    kr_member *a = join(g, "a", false, 100, NULL);
    kr_member *b = join(g, "b", false, 1000, NULL);
    uint64_t nd;
    assert_int_equal(poll_all(g, a, 4, 100, 0), 4);
    assert_int_equal(expire(g, 100, &nd), 4);
    assert_int_equal(nd, UINT64_MAX);
    assert_int_equal(poll_all(g, b, 4, 100, 100), 4);
    assert_ptr_equal(run_of(g, 0)->member, b);
    assert_int_equal(run_of(g, 0)->deliveries, 2);

    /* a's late upto does nothing: none of these is a's any more. */
    assert_int_equal(ack_upto(g, a, 4).acked, 0);
    assert_int_equal(kr_group_pending(g), 4);
    /* a's late offsets do count. */
    uint64_t late[] = {1, 2};
    assert_int_equal(ack_offsets(g, late, 2, NULL, 0), 2);
    assert_int_equal(state_of(g, 1), KR_RUN_ACKED);
    assert_int_equal(state_of(g, 2), KR_RUN_ACKED);
    assert_int_equal(kr_group_pending(g), 2);
    assert_int_equal(g->cursor, 0);
    assert_int_equal(ack_upto(g, b, 4).acked, 2);
    assert_int_equal(g->cursor, 4);
    kr_group_free(g);
}

/* Snapshot of the run list, to prove an operation changed nothing. */
typedef struct snap {
    uint64_t cursor, frontier, pending, redeliveries;
    size_t n_runs, n_members;
    kr_run runs[64];
} snap;

static void take_snap(const kr_group *g, snap *s)
{
    memset(s, 0, sizeof *s);
    assert_true(g->n_runs <= 64);
    s->cursor = g->cursor;
    s->frontier = g->frontier;
    s->pending = kr_group_pending(g);
    s->redeliveries = g->redeliveries;
    s->n_runs = g->n_runs;
    s->n_members = g->n_members;
    if (g->n_runs > 0)
        memcpy(s->runs, g->runs, g->n_runs * sizeof *g->runs);
}

static void assert_snap(const kr_group *g, const snap *s)
{
    snap now;
    take_snap(g, &now);
    assert_int_equal(now.cursor, s->cursor);
    assert_int_equal(now.frontier, s->frontier);
    assert_int_equal(now.pending, s->pending);
    assert_int_equal(now.n_runs, s->n_runs);
    assert_int_equal(now.n_members, s->n_members);
    for (size_t i = 0; i < s->n_runs; i++) {
        assert_int_equal(now.runs[i].first, s->runs[i].first);
        assert_int_equal(now.runs[i].next, s->runs[i].next);
        assert_int_equal(now.runs[i].state, s->runs[i].state);
        assert_ptr_equal(now.runs[i].member, s->runs[i].member);
        assert_int_equal(now.runs[i].deadline_ms, s->runs[i].deadline_ms);
        assert_int_equal(now.runs[i].deliveries, s->runs[i].deliveries);
    }
}

static void refused(kr_group *g, const uint64_t *offs, size_t n, uint64_t bad)
{
    snap s;
    take_snap(g, &s);
    kr_ack_result res;
    memset(&res, 0xa5, sizeof res);
    kr_group_ack_offsets(g, offs, n, &res);
    assert_int_equal(res.err, KRAPPY_E_INVALID_ARGUMENT);
    assert_int_equal(res.bad_offset, bad);
    assert_int_equal(res.acked, 0);
    assert_int_equal(res.n_ignored, 0);
    assert_null(res.ignored);
    assert_snap(g, &s);
    check_invariants(g);
}

/* An offset never handed out refuses the whole ACK: nothing applied. */
static void test_ack_never_handed_out(void **state)
{
    (void)state;
    kr_group *g = new_group(0, 100);
    kr_member *a = join(g, "a", false, 1000, NULL);
    kr_member *c = join(g, "c", false, 1000, NULL);
    kr_group_hand_out(g, a, 0, 5, 0);
    kr_group_hand_out(g, c, 5, 7, 0);
    assert_int_equal(kr_group_leave(g, c), 2);
    uint64_t one = 1;
    assert_int_equal(ack_offsets(g, &one, 1, NULL, 0), 1);

    const uint64_t r1[] = {0, 2, 5, 7}; /* 7 = the frontier */
    refused(g, r1, 4, 7);
    const uint64_t r2[] = {1000, 0, 6};
    refused(g, r2, 3, 1000);
    const uint64_t r3[] = {2, UINT64_MAX};
    refused(g, r3, 2, UINT64_MAX);
    const uint64_t r4[] = {8, 8};
    refused(g, r4, 2, 8);
    assert_int_equal(g->cursor, 0);
    assert_int_equal(kr_group_pending(g), 6);

    /* On an empty window everything is never handed out. */
    assert_int_equal(ack_upto(g, a, 5).acked, 4);
    assert_int_equal(ack_range(g, 5, 7), 2);
    assert_int_equal(g->cursor, 7);
    const uint64_t r5[] = {7};
    refused(g, r5, 1, 7);
    kr_group_free(g);
}

/* Offsets already acknowledged are listed in `ignored`, each once. */
static void test_ack_ignored_once(void **state)
{
    (void)state;
    kr_group *g = new_group(0, 100);
    kr_member *a = join(g, "a", false, 1000, NULL);
    kr_group_hand_out(g, a, 0, 10, 0);
    assert_int_equal(ack_upto(g, a, 3).acked, 3);
    uint64_t five = 5;
    assert_int_equal(ack_offsets(g, &five, 1, NULL, 0), 1);

    /* 0 and 1 below the cursor, 5 acknowledged above it; 6 new (twice). */
    const uint64_t req[] = {1, 5, 1, 6, 5, 0, 6, 1};
    const uint64_t ign[] = {0, 1, 5};
    assert_int_equal(ack_offsets(g, req, 8, ign, 3), 1);
    assert_int_equal(state_of(g, 6), KR_RUN_ACKED);
    assert_int_equal(g->cursor, 3);
    assert_int_equal(kr_group_pending(g), 5); /* 3,4,7,8,9 */

    /* Again: now 6 is ignored too. */
    const uint64_t req2[] = {6, 6, 6};
    const uint64_t ign2[] = {6};
    assert_int_equal(ack_offsets(g, req2, 3, ign2, 1), 0);
    kr_group_free(g);
}

/* ---- redelivery and expiry ---- */

static void test_leave(void **state)
{
    (void)state;
    kr_group *g = new_group(0, 100);
    kr_member *a = join(g, "a", false, 1000, NULL);
    kr_member *b = join(g, "b", false, 1000, NULL);
    kr_member *idle = join(g, "idle", false, 1000, NULL);
    kr_group_hand_out(g, a, 0, 4, 0);
    kr_group_hand_out(g, b, 4, 6, 0);
    uint64_t two = 2;
    assert_int_equal(ack_offsets(g, &two, 1, NULL, 0), 1);

    assert_int_equal(kr_group_leave(g, idle), 0);
    assert_int_equal(g->n_members, 2);
    assert_null(kr_group_member(g, T("idle")));
    assert_int_equal(kr_group_leave(g, a), 3); /* 0, 1, 3: 2 was acked */
    check_invariants(g);
    assert_null(kr_group_member(g, T("a")));
    assert_ptr_equal(kr_group_member(g, T("b")), b);
    assert_int_equal(state_of(g, 0), KR_RUN_REDELIVER);
    assert_int_equal(state_of(g, 2), KR_RUN_ACKED);
    assert_int_equal(state_of(g, 3), KR_RUN_REDELIVER);
    assert_int_equal(kr_group_pending(g), 5);
    assert_int_equal(g->cursor, 0);
    /* Redeliveries keep their count: max_deliveries still 1. */
    assert_int_equal(kr_group_max_deliveries(g), 1);

    /* b polls: the redeliveries come first, oldest first. */
    kr_grant gr[8];
    assert_int_equal(take(g, 10, 100, gr, 8), 3);
    assert_grant(&gr[0], 0, 2, true);
    assert_grant(&gr[1], 3, 4, true);
    assert_grant(&gr[2], 6, 10, false);
    assert_int_equal(poll_all(g, b, 10, 100, 10), 7);
    assert_int_equal(g->redeliveries, 3);
    assert_int_equal(kr_group_max_deliveries(g), 2);
    assert_int_equal(kr_group_leave(g, b), 9);
    assert_int_equal(g->n_members, 0);
    assert_int_equal(kr_group_pending(g), 9);
    assert_int_equal(g->frontier, 10);
    kr_group_free(g);
}

static void test_expire(void **state)
{
    (void)state;
    kr_group *g = new_group(0, 100);
    kr_member *a = join(g, "a", false, 100, NULL);
    kr_member *b = join(g, "b", false, 500, NULL);
    uint64_t nd = 0;

    assert_int_equal(expire(g, 1000000, &nd), 0); /* nothing pending */
    assert_int_equal(nd, UINT64_MAX);

    kr_group_hand_out(g, a, 0, 2, 0);  /* deadline 100 */
    kr_group_hand_out(g, b, 2, 4, 0);  /* deadline 500 */
    kr_group_hand_out(g, a, 4, 6, 50); /* deadline 150 */
    assert_int_equal(g->runs[0].deadline_ms, 100);
    assert_int_equal(g->runs[1].deadline_ms, 500);
    assert_int_equal(g->runs[2].deadline_ms, 150);

    assert_int_equal(expire(g, 99, &nd), 0);
    assert_int_equal(nd, 100);
    assert_int_equal(expire(g, 100, &nd), 2); /* now == deadline expires */
    assert_int_equal(nd, 150);
    assert_int_equal(state_of(g, 0), KR_RUN_REDELIVER);
    assert_int_equal(state_of(g, 1), KR_RUN_REDELIVER);
    assert_int_equal(state_of(g, 2), KR_RUN_PENDING);
    assert_int_equal(state_of(g, 4), KR_RUN_PENDING);
    assert_int_equal(expire(g, 149, &nd), 0);
    assert_int_equal(nd, 150);
    assert_int_equal(expire(g, 151, &nd), 2);
    assert_int_equal(nd, 500);
    assert_int_equal(state_of(g, 4), KR_RUN_REDELIVER);
    assert_int_equal(state_of(g, 2), KR_RUN_PENDING);
    assert_int_equal(expire(g, 100000, &nd), 2);
    assert_int_equal(nd, UINT64_MAX);
    assert_int_equal(g->n_runs, 1); /* all redeliveries, merged */
    assert_run(g, 0, 0, 6, KR_RUN_REDELIVER, NULL);
    assert_int_equal(expire(g, 100000, &nd), 0);
    assert_int_equal(nd, UINT64_MAX);
    assert_int_equal(kr_group_pending(g), 6);
    /* The members themselves stay. */
    assert_int_equal(g->n_members, 2);

    /* ack_wait 0: pending until the next expiry at all. */
    kr_member *z = join(g, "z", false, 0, NULL);
    kr_group_hand_out(g, z, 0, 6, 200000);
    assert_int_equal(g->runs[0].deadline_ms, 200000);
    assert_int_equal(expire(g, 199999, &nd), 0);
    assert_int_equal(nd, 200000);
    assert_int_equal(expire(g, 200000, &nd), 6);
    kr_group_free(g);
}

/* A huge ack_wait_ms must not wrap the deadline into the past. */
static void test_expire_huge_wait(void **state)
{
    (void)state;
    kr_group *g = new_group(0, 100);
    kr_member *a = join(g, "a", false, UINT64_MAX, NULL);
    kr_member *b = join(g, "b", false, UINT64_MAX - 10, NULL);
    uint64_t nd;
    kr_group_hand_out(g, a, 0, 2, 1000);
    kr_group_hand_out(g, b, 2, 4, 1000);
    assert_int_equal(expire(g, 5000, &nd), 0);
    assert_int_equal(kr_group_pending(g), 4);
    assert_int_equal(state_of(g, 0), KR_RUN_PENDING);
    assert_int_equal(state_of(g, 2), KR_RUN_PENDING);
    kr_group_free(g);
}

/* Auto-ack members' hand-outs are acknowledged at once. */
static void test_auto_ack(void **state)
{
    (void)state;
    kr_group *g = new_group(0, 100);
    kr_member *a = join(g, "auto", true, 1000, NULL);
    kr_member *b = join(g, "b", false, 1000, NULL);
    kr_grant gr[4];
    assert_int_equal(take(g, 10, 100, gr, 4), 1);
    assert_grant(&gr[0], 0, 10, false);
    kr_group_hand_out(g, a, 0, 10, 0);
    check_invariants(g);
    assert_int_equal(g->cursor, 10);
    assert_int_equal(g->frontier, 10);
    assert_int_equal(g->n_runs, 0);
    assert_int_equal(kr_group_pending(g), 0);
    uint64_t nd;
    assert_int_equal(expire(g, UINT64_MAX, &nd), 0);
    assert_int_equal(kr_group_leave(g, a), 0);

    /* Behind an explicit member's pending: acked, but the cursor waits. */
    a = join(g, "auto", true, 1000, NULL);
    kr_group_hand_out(g, b, 10, 12, 0);
    kr_group_hand_out(g, a, 12, 20, 0);
    check_invariants(g);
    assert_int_equal(g->cursor, 10);
    assert_int_equal(kr_group_pending(g), 2);
    assert_run(g, 1, 12, 20, KR_RUN_ACKED, NULL);
    assert_int_equal(ack_upto(g, a, 20).acked, 0); /* nothing of a's pending */
    assert_int_equal(ack_upto(g, b, 12).acked, 2);
    assert_int_equal(g->cursor, 20);

    /* A redelivery to an auto member: acknowledged, counted as redelivery. */
    kr_group_hand_out(g, b, 20, 22, 0);
    assert_int_equal(kr_group_leave(g, b), 2);
    assert_int_equal(take(g, 22, 100, gr, 4), 1);
    assert_grant(&gr[0], 20, 22, true);
    kr_group_hand_out(g, a, 20, 22, 0);
    check_invariants(g);
    assert_int_equal(g->cursor, 22);
    assert_int_equal(g->redeliveries, 2);
    assert_int_equal(kr_group_pending(g), 0);
    kr_group_free(g);
}

/* ---- members ---- */

static void test_take_over(void **state)
{
    (void)state;
    int conn1, conn2, conn3;
    kr_group *g = new_group(0, 100);
    kr_member *w1 = join(g, "worker", false, 100, &conn1);
    kr_member *o = join(g, "other", false, 100, &conn3);
    kr_group_hand_out(g, w1, 0, 3, 0);  /* deadline 100 */
    kr_group_hand_out(g, w1, 3, 5, 10); /* deadline 110 */
    kr_group_hand_out(g, o, 5, 6, 0);
    kr_group_hand_out(g, w1, 6, 8, 0); /* deadline 100 */
    assert_int_equal(g->n_runs, 4);

    void *taken = NULL;
    kr_member *w2 = kr_group_join(g, T("worker"), false, 99999, &conn2, &taken);
    assert_non_null(w2);
    assert_ptr_equal(taken, &conn1);
    check_invariants(g);
    assert_int_equal(g->n_members, 2);
    assert_ptr_equal(kr_group_member(g, T("worker")), w2);
    assert_ptr_equal(w2->owner, &conn2);
    assert_int_equal(w2->ack_wait_ms, 99999);
    /* The pending runs moved, deadlines as they were. */
    assert_int_equal(g->n_runs, 4);
    assert_run(g, 0, 0, 3, KR_RUN_PENDING, w2);
    assert_int_equal(g->runs[0].deadline_ms, 100);
    assert_run(g, 1, 3, 5, KR_RUN_PENDING, w2);
    assert_int_equal(g->runs[1].deadline_ms, 110);
    assert_run(g, 2, 5, 6, KR_RUN_PENDING, o);
    assert_run(g, 3, 6, 8, KR_RUN_PENDING, w2);
    assert_int_equal(kr_group_pending(g), 8);

    /* The new holder can ack them; the deadlines still run. */
    assert_int_equal(ack_upto(g, w2, 2).acked, 2);
    uint64_t nd;
    assert_int_equal(expire(g, 100, &nd), 4); /* 2, 5, 6, 7 */
    assert_int_equal(nd, 110);
    assert_int_equal(state_of(g, 3), KR_RUN_PENDING);
    assert_ptr_equal(run_of(g, 3)->member, w2);
    /* New deliveries to the new holder use its own ack_wait. */
    kr_group_hand_out(g, w2, 8, 9, 1000);
    assert_int_equal(run_of(g, 8)->deadline_ms, 100999);
    /* Its leave returns all of them. */
    assert_int_equal(kr_group_leave(g, w2), 3);
    assert_int_equal(g->n_members, 1);
    assert_null(kr_group_member(g, T("worker")));
    kr_group_free(g);
}

static void test_generated_names(void **state)
{
    (void)state;
    kr_group *g = new_group(0, 100);
    kr_member *m1 = join(g, NULL, false, 1000, NULL);
    kr_member *m2 = join(g, NULL, false, 1000, NULL);
    assert_string_equal(m1->name, "member-1");
    assert_int_equal(m1->name_len, 8);
    assert_string_equal(m2->name, "member-2");
    /* A client picked the next generated name itself: skipped. */
    kr_member *x = join(g, "member-3", false, 1000, NULL);
    kr_member *m4 = join(g, NULL, false, 1000, NULL);
    assert_string_equal(m4->name, "member-4");
    assert_ptr_equal(kr_group_member(g, T("member-3")), x);
    assert_int_equal(kr_group_leave(g, m1), 0);
    kr_member *m5 = join(g, NULL, false, 1000, NULL);
    assert_string_equal(m5->name, "member-5"); /* never reused */
    /* All distinct. */
    kr_member *ms[] = {m2, x, m4, m5};
    for (size_t i = 0; i < 4; i++)
        for (size_t j = i + 1; j < 4; j++)
            assert_string_not_equal(ms[i]->name, ms[j]->name);
    assert_int_equal(g->n_members, 4);
    /* Names are binary-exact: "member" is not "member-2". */
    assert_null(kr_group_member(g, T("member")));
    assert_null(kr_group_member(g, T("member-22")));
    kr_group_free(g);
}

/* ---- retention ---- */

static void test_skip_to(void **state)
{
    (void)state;
    kr_group *g = new_group(0, 100);
    kr_member *a = join(g, "a", false, 1000, NULL);
    kr_group_hand_out(g, a, 0, 10, 0);
    uint64_t acked[] = {2, 3};
    assert_int_equal(ack_offsets(g, acked, 2, NULL, 0), 2);

    assert_int_equal(kr_group_skip_to(g, 5), 3); /* 0, 1, 4 */
    check_invariants(g);
    assert_int_equal(g->cursor, 5);
    assert_int_equal(g->frontier, 10);
    assert_int_equal(g->skipped, 3);
    assert_int_equal(g->n_runs, 1);
    assert_run(g, 0, 5, 10, KR_RUN_PENDING, a);
    assert_int_equal(kr_group_pending(g), 5);

    assert_int_equal(kr_group_skip_to(g, 5), 0); /* at the cursor */
    assert_int_equal(kr_group_skip_to(g, 3), 0); /* below it */
    assert_int_equal(g->cursor, 5);

    /* Past the frontier: the frontier follows. */
    assert_int_equal(kr_group_skip_to(g, 20), 5);
    check_invariants(g);
    assert_int_equal(g->cursor, 20);
    assert_int_equal(g->frontier, 20);
    assert_int_equal(g->n_runs, 0);
    assert_int_equal(g->skipped, 8);
    kr_grant gr[4];
    assert_int_equal(take(g, 25, 100, gr, 4), 1);
    assert_grant(&gr[0], 20, 25, false);

    /* The cursor lands past acknowledged offsets just above the cut. */
    kr_group_hand_out(g, a, 20, 25, 0);
    uint64_t ack22 = 22;
    assert_int_equal(ack_offsets(g, &ack22, 1, NULL, 0), 1);
    assert_int_equal(kr_group_skip_to(g, 22), 2);
    check_invariants(g);
    assert_int_equal(g->cursor, 23);
    assert_int_equal(kr_group_pending(g), 2);

    /* Redelivery-queued offsets skipped count too; empty window: none. */
    assert_int_equal(kr_group_leave(g, a), 2);
    assert_int_equal(kr_group_skip_to(g, 24), 1);
    assert_int_equal(kr_group_skip_to(g, 30), 1);
    assert_int_equal(kr_group_skip_to(g, 40), 0);
    assert_int_equal(g->cursor, 40);
    assert_int_equal(g->frontier, 40);
    assert_int_equal(g->skipped, 12);
    kr_group_free(g);
}

/* GROUP_SEEK: the window is forgotten, cursor and frontier move (back or
 * ahead), members stay; ACKs of what was handed out before are ignored,
 * not refused, while offsets never handed out still are. */
static void test_seek(void **state)
{
    (void)state;
    kr_group *g = new_group(10, 100);
    kr_member *a = join(g, "a", false, 1000, NULL);
    kr_member *b = join(g, "b", false, 1000, NULL);
    assert_int_equal(poll_all(g, a, 30, 5, 0), 5); /* 10..14 to a */
    assert_int_equal(poll_all(g, b, 30, 5, 0), 5); /* 15..19 to b */
    uint64_t twelve = 12;
    assert_int_equal(ack_offsets(g, &twelve, 1, NULL, 0), 1);
    assert_int_equal(kr_group_leave(g, b), 5); /* 15..19 awaiting redelivery */

    /* Back to 0, below where the group started. */
    assert_int_equal(kr_group_seek(g, 0), 9);
    check_invariants(g);
    assert_int_equal(g->cursor, 0);
    assert_int_equal(g->frontier, 0);
    assert_int_equal(g->origin, 0);
    assert_int_equal(kr_group_pending(g), 0);
    assert_false(kr_group_has_redelivery(g));
    assert_int_equal(g->n_members, 1);
    /* A late ACK of what a had: ignored and listed; so is one of 12. */
    const uint64_t late[] = {11, 12, 19};
    assert_int_equal(ack_offsets(g, late, 3, late, 3), 0);
    /* Past everything ever handed out: refused. */
    kr_ack_result res;
    uint64_t never = 20;
    kr_group_ack_offsets(g, &never, 1, &res);
    assert_int_equal(res.err, KRAPPY_E_INVALID_ARGUMENT);
    assert_int_equal(res.bad_offset, 20);
    /* ACK upto with nothing pending for a: nothing changes. */
    assert_int_equal(ack_upto(g, a, 15).acked, 0);
    assert_int_equal(g->cursor, 0);

    /* Polls hand out from the new cursor. */
    kr_grant gr[4];
    assert_int_equal(take(g, 30, 3, gr, 4), 1);
    assert_grant(&gr[0], 0, 3, false);
    kr_group_hand_out(g, a, 0, 3, 0);
    assert_int_equal(ack_upto(g, a, 3).acked, 3);
    assert_int_equal(g->cursor, 3);

    /* Ahead: everything below counts as acknowledged. */
    assert_int_equal(poll_all(g, a, 30, 4, 0), 4);
    assert_int_equal(kr_group_seek(g, 25), 4);
    check_invariants(g);
    assert_int_equal(g->cursor, 25);
    assert_int_equal(g->origin, 0);
    const uint64_t below[] = {4, 24};
    assert_int_equal(ack_offsets(g, below, 2, below, 2), 0);
    assert_int_equal(kr_group_seek(g, 25), 0); /* to where it is: a no-op */
    kr_group_free(g);
}

/* ---- run count ---- */

static void test_run_count_small(void **state)
{
    (void)state;
    enum { N = 10000 };
    kr_group *g = new_group(0, 100);
    kr_member *a = join(g, "a", false, 1000, NULL);
    kr_member *b = join(g, "b", false, 1000, NULL);

    /* One offset per hand-out, each acked right away, by upto and offsets. */
    for (uint64_t i = 0; i < N; i++) {
        kr_member *m = (i & 1) ? b : a;
        kr_group_hand_out(g, m, i, i + 1, i);
        kr_ack_result res;
        if (i % 3 == 0) {
            kr_group_ack_upto(g, m, i + 1, &res);
        } else {
            kr_group_ack_offsets(g, &i, 1, &res);
        }
        assert_int_equal(res.acked, 1);
        free(res.ignored);
        assert_int_equal(g->n_runs, 0);
        assert_int_equal(g->cursor, i + 1);
    }
    assert_true(g->cap_runs <= 16);

    /* One stuck offset at the front: acked ones behind it stay one run. */
    kr_group_hand_out(g, a, N, N + 1, 0);
    for (uint64_t i = N + 1; i < N + 90; i++) {
        kr_group_hand_out(g, b, i, i + 1, i);
        kr_ack_result res;
        kr_group_ack_upto(g, b, i + 1, &res);
        assert_int_equal(res.acked, 1);
        assert_int_equal(g->n_runs, 2);
    }
    assert_int_equal(ack_upto(g, a, N + 1).acked, 1);
    assert_int_equal(g->n_runs, 0);
    assert_int_equal(g->cursor, N + 90);
    kr_group_free(g);

    /* 10,000 single hand-outs at one time merge into one run; acked from
     * the top down they stay two runs. */
    g = new_group(0, N);
    a = join(g, "a", false, 1000, NULL);
    for (uint64_t i = 0; i < N; i++) {
        kr_group_hand_out(g, a, i, i + 1, 5);
        assert_int_equal(g->n_runs, 1);
    }
    kr_grant gr[2];
    assert_int_equal(take(g, 2 * N, N, gr, 2), 0); /* the window is full */
    for (uint64_t i = N; i-- > 1;) {
        kr_ack_result res;
        kr_group_ack_offsets(g, &i, 1, &res);
        assert_int_equal(res.acked, 1);
        free(res.ignored);
        assert_int_equal(g->n_runs, 2);
    }
    check_invariants(g);
    assert_int_equal(g->cursor, 0);
    assert_int_equal(ack_upto(g, a, 1).acked, 1);
    assert_int_equal(g->cursor, N);
    assert_int_equal(g->n_runs, 0);
    kr_group_free(g);
}

/* ---- randomized check against a reference model ---- */

/*
 * The model keeps one record per offset of the topic: its state, who holds
 * it, its deadline and delivery count. Offsets below its cursor are done,
 * those at or past its frontier never handed out. Every operation is done
 * on both, then everything observable is compared: cursor, frontier,
 * counters, the state of each offset of the window, the number of runs (the
 * number of maximal stretches of equal offsets, so merging is checked too),
 * and the results of each call.
 */
enum { M_SLOTS = 3, M_STEPS = 20000, M_WINDOW = 48 };

typedef struct moff {
    uint8_t state; /* kr_run_state */
    uint8_t slot;  /* PENDING: which member */
    uint32_t deliveries;
    uint64_t deadline;
} moff;

typedef struct mslot {
    kr_member *m; /* NULL: not joined */
    bool auto_ack;
    uint64_t wait;
    char name[8];
    int *owner;
} mslot;

typedef struct model {
    moff *o;
    size_t cap;
    uint64_t cursor, frontier, end, redeliveries, skipped, now;
    mslot slot[M_SLOTS];
    int conns[16];
    size_t next_conn;
    uint64_t rng;
} model;

static uint64_t rnd(model *md)
{
    /* xorshift64*: deterministic, good enough for choosing operations */
    md->rng ^= md->rng >> 12;
    md->rng ^= md->rng << 25;
    md->rng ^= md->rng >> 27;
    return md->rng * 2685821657736338717ULL;
}

static uint64_t rnd_below(model *md, uint64_t n)
{
    return n ? rnd(md) % n : 0;
}

static void m_grow(model *md, uint64_t end)
{
    if (end <= md->cap)
        return;
    size_t cap = md->cap ? md->cap : 1024;
    while (cap < end)
        cap *= 2;
    md->o = realloc(md->o, cap * sizeof *md->o);
    assert_non_null(md->o);
    memset(md->o + md->cap, 0, (cap - md->cap) * sizeof *md->o);
    md->cap = cap;
}

static void m_settle(model *md)
{
    while (md->cursor < md->frontier && md->o[md->cursor].state == KR_RUN_ACKED)
        md->cursor++;
}

static bool m_same(const moff *a, const moff *b)
{
    if (a->state != b->state)
        return false;
    if (a->state == KR_RUN_ACKED)
        return true;
    if (a->deliveries != b->deliveries)
        return false;
    return a->state == KR_RUN_REDELIVER || (a->slot == b->slot && a->deadline == b->deadline);
}

static void m_compare(const kr_group *g, model *md)
{
    check_invariants(g);
    assert_int_equal(g->cursor, md->cursor);
    assert_int_equal(g->frontier, md->frontier);
    assert_int_equal(g->redeliveries, md->redeliveries);
    assert_int_equal(g->skipped, md->skipped);
    assert_true(g->frontier - g->cursor <= M_WINDOW);
    uint64_t pending = 0;
    uint32_t maxd = 0;
    bool redeliver = false;
    size_t segs = 0;
    for (uint64_t o = md->cursor; o < md->frontier; o++) {
        const moff *x = &md->o[o];
        if (o == md->cursor || !m_same(&md->o[o - 1], x))
            segs++;
        if (x->state != KR_RUN_ACKED) {
            pending++;
            if (x->deliveries > maxd)
                maxd = x->deliveries;
        }
        redeliver |= x->state == KR_RUN_REDELIVER;
    }
    assert_int_equal(g->n_runs, segs);
    assert_int_equal(kr_group_pending(g), pending);
    assert_int_equal(kr_group_max_deliveries(g), maxd);
    assert_int_equal(kr_group_has_redelivery(g), redeliver);
    for (size_t i = 0; i < g->n_runs; i++) {
        const kr_run *r = &g->runs[i];
        for (uint64_t o = r->first; o < r->next; o++) {
            const moff *x = &md->o[o];
            if (r->state != x->state)
                fail_msg("offset %llu: state %d, model %d", (unsigned long long)o, r->state,
                         x->state);
            if (x->state == KR_RUN_PENDING) {
                assert_ptr_equal(r->member, md->slot[x->slot].m);
                assert_int_equal(r->deadline_ms, x->deadline);
            }
            if (x->state != KR_RUN_ACKED)
                assert_int_equal(r->deliveries, x->deliveries);
        }
    }
}

static int *m_conn(model *md)
{
    return &md->conns[md->next_conn++ % 16];
}

static void m_join(kr_group *g, model *md, size_t s)
{
    mslot *sl = &md->slot[s];
    void *taken = (void *)1;
    bool takeover = sl->m != NULL;
    int *prev = sl->owner;
    sl->auto_ack = rnd_below(md, 5) == 0;
    sl->wait = 50 + rnd_below(md, 400);
    sl->owner = m_conn(md);
    kr_member *m =
        kr_group_join(g, U8(sl->name), strlen(sl->name), sl->auto_ack, sl->wait, sl->owner, &taken);
    assert_non_null(m);
    /* Take-over: the model's pending offsets stay with the slot. */
    assert_ptr_equal(taken, takeover ? (void *)prev : NULL);
    sl->m = m;
}

static void m_leave(kr_group *g, model *md, size_t s)
{
    uint64_t back = 0;
    for (uint64_t o = md->cursor; o < md->frontier; o++) {
        moff *x = &md->o[o];
        if (x->state == KR_RUN_PENDING && x->slot == s) {
            x->state = KR_RUN_REDELIVER;
            back++;
        }
    }
    assert_int_equal(kr_group_leave(g, md->slot[s].m), back);
    md->slot[s].m = NULL;
}

/* What take must answer, from the model. */
static size_t m_take(model *md, uint64_t max, kr_grant *out, size_t max_grants)
{
    size_t n = 0;
    uint64_t left = max;
    for (uint64_t o = md->cursor; o < md->frontier && left > 0 && n < max_grants; o++) {
        if (md->o[o].state != KR_RUN_REDELIVER)
            continue;
        uint64_t e = o + 1;
        while (e < md->frontier && e - o < left && m_same(&md->o[e], &md->o[o]))
            e++;
        out[n++] = (kr_grant){o, e, true};
        left -= e - o;
        o = e - 1;
    }
    if (left > 0 && n < max_grants && md->frontier < md->end) {
        uint64_t room = M_WINDOW - (md->frontier - md->cursor);
        uint64_t len = md->end - md->frontier;
        len = len < room ? len : room;
        len = len < left ? len : left;
        if (len > 0)
            out[n++] = (kr_grant){md->frontier, md->frontier + len, false};
    }
    return n;
}

static void m_hand_out(model *md, size_t s, uint64_t first, uint64_t next)
{
    const mslot *sl = &md->slot[s];
    for (uint64_t o = first; o < next; o++) {
        moff *x = &md->o[o];
        if (o >= md->frontier) {
            x->deliveries = 1;
        } else {
            if (x->state == KR_RUN_REDELIVER)
                md->redeliveries++;
            x->deliveries++;
        }
        x->state = sl->auto_ack ? KR_RUN_ACKED : KR_RUN_PENDING;
        x->slot = (uint8_t)s;
        x->deadline = md->now + sl->wait;
    }
    if (next > md->frontier)
        md->frontier = next;
    m_settle(md);
}

static void op_poll(kr_group *g, model *md, size_t s)
{
    md->end += rnd_below(md, 12);
    m_grow(md, md->end);
    uint64_t max = 1 + rnd_below(md, 40);
    size_t max_grants = 1 + (size_t)rnd_below(md, 4);
    kr_grant got[4], want[4];
    size_t n = kr_group_take(g, md->end, max, got, max_grants);
    size_t nw = m_take(md, max, want, max_grants);
    assert_int_equal(n, nw);
    uint64_t total = 0;
    for (size_t i = 0; i < n; i++) {
        assert_grant(&got[i], want[i].first, want[i].next, want[i].redelivery);
        total += got[i].next - got[i].first;
    }
    assert_true(total <= max);
    /* Usually all of it is sent; sometimes max_bytes cuts it short. */
    uint64_t send = rnd_below(md, 4) ? total : rnd_below(md, total + 1);
    for (size_t i = 0; i < n && send > 0; i++) {
        uint64_t len = got[i].next - got[i].first;
        if (len > send)
            len = send;
        kr_group_hand_out(g, md->slot[s].m, got[i].first, got[i].first + len, md->now);
        m_hand_out(md, s, got[i].first, got[i].first + len);
        send -= len;
    }
}

static void op_ack_upto(kr_group *g, model *md, size_t s)
{
    uint64_t lo = md->cursor > 3 ? md->cursor - 3 : 0;
    uint64_t upto = lo + rnd_below(md, md->frontier + 4 - lo);
    uint64_t acked = 0;
    for (uint64_t o = md->cursor; o < md->frontier && o < upto; o++) {
        moff *x = &md->o[o];
        if (x->state == KR_RUN_PENDING && x->slot == s) {
            x->state = KR_RUN_ACKED;
            acked++;
        }
    }
    m_settle(md);
    kr_ack_result res;
    kr_group_ack_upto(g, md->slot[s].m, upto, &res);
    assert_int_equal(res.err, KRAPPY_OK);
    assert_int_equal(res.acked, acked);
    assert_int_equal(res.n_ignored, 0);
    free(res.ignored);
}

static int cmp_u64(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x < y ? -1 : x > y;
}

/* Where the model's group starts (test_model_random). */
#define M_ORIGIN 100

static void op_ack_offsets(kr_group *g, model *md)
{
    uint64_t offs[8];
    size_t n = 1 + (size_t)rnd_below(md, 8);
    uint64_t lo = md->cursor > 4 ? md->cursor - 4 : 0;
    bool want_bad = rnd_below(md, 10) == 0 || md->frontier == 0;
    for (size_t i = 0; i < n; i++)
        offs[i] = lo + rnd_below(md, md->frontier - lo);
    if (want_bad)
        offs[rnd_below(md, n)] = md->frontier + rnd_below(md, 3);
    /* The model: refused as a whole (an offset at/after the frontier, or below
     * the group's origin, M_ORIGIN: never handed out by the group), or each
     * unique offset acked/ignored. */
    bool bad = false;
    for (size_t i = 0; i < n; i++)
        bad |= offs[i] >= md->frontier || offs[i] < M_ORIGIN;
    uint64_t sorted[8], ign[8];
    size_t n_ign = 0;
    uint64_t acked = 0;
    if (!bad) {
        memcpy(sorted, offs, n * sizeof *offs);
        qsort(sorted, n, sizeof *sorted, cmp_u64);
        for (size_t i = 0; i < n; i++) {
            if (i > 0 && sorted[i] == sorted[i - 1])
                continue;
            uint64_t o = sorted[i];
            if (o < md->cursor || md->o[o].state == KR_RUN_ACKED) {
                ign[n_ign++] = o;
            } else {
                md->o[o].state = KR_RUN_ACKED;
                acked++;
            }
        }
        m_settle(md);
    }
    kr_ack_result res;
    kr_group_ack_offsets(g, offs, n, &res);
    if (bad) {
        assert_int_equal(res.err, KRAPPY_E_INVALID_ARGUMENT);
        assert_true(res.bad_offset >= md->frontier || res.bad_offset < M_ORIGIN);
        bool named = false;
        for (size_t i = 0; i < n; i++)
            named |= offs[i] == res.bad_offset;
        assert_true(named);
        assert_int_equal(res.acked, 0);
    } else {
        assert_int_equal(res.err, KRAPPY_OK);
        assert_int_equal(res.acked, acked);
        assert_int_equal(res.n_ignored, n_ign);
        for (size_t i = 0; i < n_ign; i++)
            assert_int_equal(res.ignored[i], ign[i]);
    }
    free(res.ignored);
}

static void op_expire(kr_group *g, model *md)
{
    md->now += rnd_below(md, 300);
    uint64_t back = 0, next = UINT64_MAX;
    for (uint64_t o = md->cursor; o < md->frontier; o++) {
        moff *x = &md->o[o];
        if (x->state != KR_RUN_PENDING)
            continue;
        if (x->deadline <= md->now) {
            x->state = KR_RUN_REDELIVER;
            back++;
        } else if (x->deadline < next) {
            next = x->deadline;
        }
    }
    uint64_t nd = 0;
    assert_int_equal(kr_group_expire(g, md->now, &nd), back);
    assert_int_equal(nd, next);
}

static void op_skip_to(kr_group *g, model *md)
{
    uint64_t first = md->cursor + rnd_below(md, md->end - md->cursor + 1);
    uint64_t skipped = 0;
    if (first > md->cursor) {
        uint64_t stop = first < md->frontier ? first : md->frontier;
        for (uint64_t o = md->cursor; o < stop; o++)
            skipped += md->o[o].state != KR_RUN_ACKED;
        md->cursor = first;
        if (md->frontier < first)
            md->frontier = first;
        md->skipped += skipped;
        m_settle(md);
    }
    assert_int_equal(kr_group_skip_to(g, first), skipped);
}

static void test_model_random(void **state)
{
    (void)state;
    model *md = calloc(1, sizeof *md);
    assert_non_null(md);
    md->rng = 0x9e3779b97f4a7c15ULL;
    md->cursor = md->frontier = md->end = M_ORIGIN;
    m_grow(md, md->end);
    kr_group *g = new_group(M_ORIGIN, M_WINDOW);
    for (size_t s = 0; s < M_SLOTS; s++)
        snprintf(md->slot[s].name, sizeof md->slot[s].name, "w%zu", s);
    uint64_t counts[8] = {0};
    for (int step = 0; step < M_STEPS; step++) {
        size_t s = (size_t)rnd_below(md, M_SLOTS);
        unsigned op = (unsigned)rnd_below(md, 100);
        md->now += rnd_below(md, 8);
        if (md->slot[s].m == NULL && op < 75) {
            m_join(g, md, s); /* acting members join first */
            counts[7]++;
        }
        if (op < 35) {
            op_poll(g, md, s);
            counts[0]++;
        } else if (op < 55) {
            op_ack_upto(g, md, s);
            counts[1]++;
        } else if (op < 75) {
            op_ack_offsets(g, md);
            counts[2]++;
        } else if (op < 86) {
            op_expire(g, md);
            counts[3]++;
        } else if (op < 92) {
            if (md->slot[s].m != NULL) {
                m_leave(g, md, s);
                counts[4]++;
            }
        } else if (op < 97) {
            if (md->slot[s].m != NULL) {
                m_join(g, md, s); /* take-over of a live name */
                counts[5]++;
            }
        } else if (op < 98) {
            op_skip_to(g, md);
            counts[6]++;
        }
        m_compare(g, md);
    }
    printf(
        "[ group ] model: %d steps: %llu polls, %llu acks upto, %llu acks offsets, %llu expiries, "
        "%llu leaves, %llu take-overs, %llu skips, %llu joins; cursor %llu, %llu redelivered\n",
        M_STEPS, (unsigned long long)counts[0], (unsigned long long)counts[1],
        (unsigned long long)counts[2], (unsigned long long)counts[3], (unsigned long long)counts[4],
        (unsigned long long)counts[5], (unsigned long long)counts[6], (unsigned long long)counts[7],
        (unsigned long long)md->cursor, (unsigned long long)md->redeliveries);
    /* Every kind of operation really happened, and the group moved on. */
    for (size_t i = 0; i < 8; i++)
        assert_true(counts[i] > 50);
    assert_true(md->redeliveries > 100);
    assert_true(md->cursor > 10000);
    kr_group_free(g);
    free(md->o);
    free(md);
}

/* ---- allocation failures ---- */

/* Take up to `max` and hand it to m at `now`. @return 0, or 1 when take
 * could not have the memory (the group is then unchanged). */
static int af_poll(kr_group *g, kr_member *m, uint64_t end, uint64_t max, uint64_t now)
{
    snap before;
    kr_grant gr[4];
    take_snap(g, &before);
    size_t n = kr_group_take(g, end, max, gr, 4);
    if (n == 0) {
        assert_snap(g, &before); /* there was always something to take */
        return 1;
    }
    for (size_t i = 0; i < n; i++)
        kr_group_hand_out(g, m, gr[i].first, gr[i].next, now);
    check_invariants(g);
    return 0;
}

/* ACK offsets or upto (m != NULL); 1 when refused for memory, unchanged. */
static int af_ack(kr_group *g, kr_member *m, const uint64_t *offs, size_t n, uint64_t upto)
{
    snap before;
    kr_ack_result res;
    take_snap(g, &before);
    if (m != NULL)
        kr_group_ack_upto(g, m, upto, &res);
    else
        kr_group_ack_offsets(g, offs, n, &res);
    if (res.err != KRAPPY_OK) {
        assert_int_equal(res.err, KRAPPY_E_STORAGE);
        assert_null(res.ignored);
        assert_snap(g, &before);
        return 1;
    }
    free(res.ignored);
    check_invariants(g);
    return 0;
}

/*
 * A group's life in which every allocation may fail: members join (named,
 * generated, taken over), slices are handed out at distinct deadlines (one
 * run each), scattered ACKs cut runs, a member leaves and its events are
 * handed out again in parts, retention skips ahead. Each step either works
 * or refuses with the group as it was.
 */
static int group_life(void *arg)
{
    (void)arg;
    kr_group *g = kr_group_new(T("g"), 100, 1000);
    if (g == NULL)
        return 1;
    void *taken;
    int rc = 1;
    kr_member *a = kr_group_join(g, T("a"), false, 1000, NULL, &taken);
    if (a == NULL)
        goto out;
    kr_member *b = kr_group_join(g, NULL, 0, false, 1000, NULL, &taken);
    if (b == NULL)
        goto out;
    for (uint64_t i = 0; i < 8; i++)
        if (af_poll(g, i % 2 ? b : a, 300, 10, i) != 0)
            goto out;
    static const uint64_t scattered[] = {101, 103, 105, 107, 150, 151, 152, 171, 177, 179, 103};
    if (af_ack(g, NULL, scattered, sizeof scattered / sizeof scattered[0], 0) != 0)
        goto out;
    if (af_ack(g, a, NULL, 0, 125) != 0)
        goto out;
    kr_group_leave(g, b);
    check_invariants(g);
    kr_member *c = kr_group_join(g, T("c"), false, 5000, NULL, &taken);
    if (c == NULL)
        goto out;
    for (uint64_t i = 0; i < 3; i++) /* redeliveries in parts: cut at both ends */
        if (af_poll(g, c, 300, 3, 100 + i) != 0)
            goto out;
    snap before;
    take_snap(g, &before);
    kr_member *a2 = kr_group_join(g, T("a"), false, 1000, NULL, &taken); /* take-over */
    if (a2 == NULL) {
        assert_snap(g, &before);
        goto out;
    }
    if (af_ack(g, a2, NULL, 0, 175) != 0)
        goto out;
    kr_group_skip_to(g, 158);
    check_invariants(g);
    assert_true(g->cursor >= 158);
    rc = 0;
out:
    kr_group_free(g);
    return rc;
}

static void test_allocation_failures(void **state)
{
    (void)state;
    unsigned long allocs = alloc_fail_each(group_life, NULL, false, 1000);
    assert_true(allocs >= 6); /* the group, three members, the runs growing */
}

static const struct CMUnitTest tests[] = {
    cmocka_unit_test(test_new_free),
    cmocka_unit_test(test_take_new_offsets),
    cmocka_unit_test(test_take_end),
    cmocka_unit_test(test_take_window_bound),
    cmocka_unit_test(test_take_redeliveries_first),
    cmocka_unit_test(test_ack_in_order),
    cmocka_unit_test(test_ack_out_of_order),
    cmocka_unit_test(test_ack_upto_own_only),
    cmocka_unit_test(test_ack_offsets_any),
    cmocka_unit_test(test_late_ack_after_redelivery),
    cmocka_unit_test(test_ack_never_handed_out),
    cmocka_unit_test(test_ack_ignored_once),
    cmocka_unit_test(test_leave),
    cmocka_unit_test(test_expire),
    cmocka_unit_test(test_expire_huge_wait),
    cmocka_unit_test(test_auto_ack),
    cmocka_unit_test(test_take_over),
    cmocka_unit_test(test_generated_names),
    cmocka_unit_test(test_skip_to),
    cmocka_unit_test(test_seek),
    cmocka_unit_test(test_run_count_small),
    cmocka_unit_test(test_model_random),
    cmocka_unit_test(test_allocation_failures),
};

int main(void)
{
    return cmocka_run_group_tests_name("group", tests, NULL, NULL);
}
