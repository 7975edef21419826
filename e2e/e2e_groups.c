/*
 * e2e/e2e_groups.c - consumer groups end to end against a real krappyd:
 * competing members, redelivery on disconnect and on expiry (to a parked
 * POLL), long polls woken by a publish, cursors surviving kill -9, start
 * positions kept across restarts, auto acks, member take-over, errors.
 */
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>

#include "conn.h"
#include "harness.h"

/* Publish n events "e<offset>" with keys k<offset % 7>. */
static void produce(conn *x, uint64_t first, int n)
{
    kr_event_out_spec ev[256];
    char keys[256][16];
    uint8_t vals[256][32];
    assert_true(n <= 256);
    for (int i = 0; i < n; i++) {
        snprintf(keys[i], sizeof keys[i], "k%d", (int)((first + (uint64_t)i) % 7));
        char v[24];
        snprintf(v, sizeof v, "e%llu", (unsigned long long)(first + (uint64_t)i));
        kr_buf vb;
        kr_buf_init(&vb, 32);
        kr_cbor_put_cstr(&vb, v);
        memcpy(vals[i], vb.data, vb.len);
        ev[i] = (kr_event_out_spec){.key = keys[i],
                                    .key_len = strlen(keys[i]),
                                    .key_is_text = true,
                                    .value = vals[i],
                                    .value_len = vb.len};
        kr_buf_free(&vb);
    }
    kr_buf_reset(&x->b);
    kr_enc_publish(&x->b, (kr_cid){0}, KR_ACK_WRITE, ev, (size_t)n);
    assert_int_equal(conn_call(x, KRAPPY_T_PUBLISH), 0);
    assert_int_equal(reply_u(x, "first"), first);
}

static int join(conn *x, const char *group, const char *member, kr_start_kind start,
                uint64_t start_offset, kr_consumer_ack ack, uint64_t ack_wait_ms)
{
    kr_buf_reset(&x->b);
    kr_enc_consumer_register(&x->b, (kr_cid){0}, "g", group, member, start, start_offset, ack,
                             ack_wait_ms);
    return conn_call(x, KRAPPY_T_CONSUMER_REGISTER);
}

/* POLL; the offsets handed out go to out (n returned). */
static size_t poll_offsets(conn *x, uint64_t max, uint64_t wait_ms, uint64_t *out, size_t cap)
{
    kr_buf_reset(&x->b);
    kr_enc_poll(&x->b, (kr_cid){0}, max, wait_ms, 1u << 20);
    assert_int_equal(conn_call(x, KRAPPY_T_POLL), 0);
    kr_cbor_item events, e;
    assert_int_equal(kr_cbor_map_find(&x->r.map, "events", &events), 1);
    kr_cbor_iter it;
    kr_cbor_iter_init(&it, &events);
    size_t n = 0;
    while (kr_cbor_iter_next(&it, &e) == 1 && n < cap) {
        kr_event_view v;
        assert_int_equal(kr_event_view_read(&e, &v), 0);
        char got[32] = {0}, want[32];
        kr_cbor_str_copy(&v.value, (uint8_t *)got, 31);
        snprintf(want, sizeof want, "e%llu", (unsigned long long)v.offset);
        assert_string_equal(got, want);
        out[n++] = v.offset;
    }
    return n;
}

static uint64_t ack_upto(conn *x, uint64_t upto)
{
    kr_buf_reset(&x->b);
    kr_enc_ack_upto(&x->b, (kr_cid){0}, upto);
    assert_int_equal(conn_call(x, KRAPPY_T_ACK), 0);
    return reply_u(x, "cursor");
}

static void setup_topic(const e2e_server *s, int events)
{
    conn p;
    conn_open(&p, s);
    assert_int_equal(conn_register(&p, "g"), 0);
    uint64_t next = reply_u(&p, "next");
    for (int done = 0; done < events; done += 100)
        produce(&p, next + (uint64_t)done, events - done < 100 ? events - done : 100);
    conn_close(&p);
}

static uint64_t group_stat(const e2e_server *s, const char *group, const char *field)
{
    conn x;
    conn_open(&x, s);
    kr_buf_reset(&x.b);
    kr_enc_stats(&x.b, (kr_cid){0}, "g", group);
    assert_int_equal(conn_call(&x, KRAPPY_T_STATS), 0);
    kr_cbor_item groups, g0, v;
    assert_int_equal(kr_cbor_map_find(&x.r.map, "groups", &groups), 1);
    kr_cbor_iter it;
    kr_cbor_iter_init(&it, &groups);
    assert_int_equal(kr_cbor_iter_next(&it, &g0), 1);
    assert_int_equal(kr_cbor_map_find(&g0, field, &v), 1);
    conn_close(&x);
    return v.u;
}

static void test_members_get_disjoint_events(void **state)
{
    (void)state;
    e2e_server s;
    assert_int_equal(e2e_start(&s, NULL), 0);
    setup_topic(&s, 100);
    conn a, b;
    conn_open(&a, &s);
    conn_open(&b, &s);
    assert_int_equal(join(&a, "grp", "A", KR_START_EARLIEST, 0, KR_CACK_EXPLICIT, 30000), 0);
    assert_int_equal(join(&b, "grp", NULL, KR_START_EARLIEST, 0, KR_CACK_EXPLICIT, 30000), 0);
    uint8_t seen[100] = {0};
    uint64_t offs[100];
    for (int round = 0; round < 10; round++) {
        conn *x = round % 2 ? &b : &a;
        size_t n = poll_offsets(x, 10, 0, offs, 100);
        assert_int_equal(n, 10);
        for (size_t i = 0; i < n; i++) {
            assert_int_equal(seen[offs[i]], 0); /* nobody gets an event twice */
            seen[offs[i]] = 1;
        }
        uint64_t next = reply_u(x, "next");
        assert_int_equal(next, (uint64_t)(round + 1) * 10);
    }
    assert_int_equal(poll_offsets(&a, 10, 0, offs, 100), 0);
    /* upto acknowledges only the caller's own pending events. */
    assert_int_equal(ack_upto(&a, 100), 10); /* b still holds 10..19 */
    assert_int_equal(group_stat(&s, "grp", "pending"), 50);
    assert_int_equal(ack_upto(&b, 100), 100);
    assert_int_equal(group_stat(&s, "grp", "lag"), 0);
    assert_int_equal(group_stat(&s, "grp", "members"), 2);
    conn_close(&a);
    conn_close(&b);
    assert_int_equal(e2e_stop(&s, 10000), 0);
}

static void test_disconnect_redelivers_to_other(void **state)
{
    (void)state;
    e2e_server s;
    assert_int_equal(e2e_start(&s, NULL), 0);
    setup_topic(&s, 20);
    conn a, b;
    conn_open(&a, &s);
    conn_open(&b, &s);
    assert_int_equal(join(&a, "grp", "A", KR_START_EARLIEST, 0, KR_CACK_EXPLICIT, 30000), 0);
    assert_int_equal(join(&b, "grp", "B", KR_START_EARLIEST, 0, KR_CACK_EXPLICIT, 30000), 0);
    uint64_t offs[32];
    assert_int_equal(poll_offsets(&a, 5, 0, offs, 32), 5); /* A holds 0..4 */
    conn_close(&a);                                        /* ... and vanishes */
    usleep(100 * 1000);
    size_t n = poll_offsets(&b, 10, 0, offs, 32);
    assert_int_equal(n, 10);
    for (int i = 0; i < 5; i++)
        assert_int_equal(offs[i], (uint64_t)i); /* redeliveries first, oldest first */
    assert_int_equal(offs[5], 5);
    assert_int_equal(ack_upto(&b, 10), 10);
    conn_close(&b);
    assert_int_equal(e2e_stop(&s, 10000), 0);
}

/* A member that goes away while its POLL is parked leaves at once. */
static void test_leave_during_long_poll(void **state)
{
    (void)state;
    e2e_server s;
    assert_int_equal(e2e_start(&s, NULL), 0);
    setup_topic(&s, 5);
    conn a, b;
    conn_open(&a, &s);
    conn_open(&b, &s);
    assert_int_equal(join(&a, "grp", "A", KR_START_EARLIEST, 0, KR_CACK_EXPLICIT, 30000), 0);
    assert_int_equal(join(&b, "grp", "B", KR_START_EARLIEST, 0, KR_CACK_EXPLICIT, 30000), 0);
    uint64_t offs[8];
    assert_int_equal(poll_offsets(&a, 5, 0, offs, 8), 5);
    kr_buf_reset(&a.b);
    kr_enc_poll(&a.b, (kr_cid){0}, 10, 20000, 1u << 20);
    assert_int_equal(krappy_send(a.c, KRAPPY_T_POLL, a.b.data, a.b.len), KRAPPY_OK);
    assert_int_equal(krappy_flush(a.c), KRAPPY_OK);
    usleep(100 * 1000);
    conn_close(&a); /* gone mid long poll, holding 0..4 */
    usleep(200 * 1000);
    assert_int_equal(group_stat(&s, "grp", "members"), 1);
    assert_int_equal(poll_offsets(&b, 10, 0, offs, 8), 5); /* handed to B now */
    conn_close(&b);
    assert_int_equal(e2e_stop(&s, 10000), 0);
}

static void test_expiry_redelivers_to_parked_poll(void **state)
{
    (void)state;
    e2e_server s;
    assert_int_equal(e2e_start(&s, NULL), 0);
    setup_topic(&s, 5);
    conn a, b;
    conn_open(&a, &s);
    conn_open(&b, &s);
    assert_int_equal(join(&a, "grp", "A", KR_START_EARLIEST, 0, KR_CACK_EXPLICIT, 500), 0);
    assert_int_equal(join(&b, "grp", "B", KR_START_EARLIEST, 0, KR_CACK_EXPLICIT, 30000), 0);
    uint64_t offs[8];
    assert_int_equal(poll_offsets(&a, 5, 0, offs, 8), 5);
    uint64_t t0 = e2e_now_ms();
    size_t n = poll_offsets(&b, 5, 5000, offs, 8); /* parks, woken by the expiry */
    uint64_t waited = e2e_now_ms() - t0;
    print_message("      A's deadline 500 ms; B's parked POLL got them after %llu ms\n",
                  (unsigned long long)waited);
    assert_int_equal(n, 5);
    assert_true(waited >= 400 && waited < 2000);
    /* A's late ACK by offsets still counts. */
    kr_buf_reset(&a.b);
    uint64_t late[] = {0, 1, 2, 3, 4};
    kr_enc_ack_offsets(&a.b, (kr_cid){0}, late, 5);
    assert_int_equal(conn_call(&a, KRAPPY_T_ACK), 0);
    assert_int_equal(reply_u(&a, "cursor"), 5);
    conn_close(&a);
    conn_close(&b);
    assert_int_equal(e2e_stop(&s, 10000), 0);
}

static void test_long_poll_woken_by_publish(void **state)
{
    (void)state;
    e2e_server s;
    assert_int_equal(e2e_start(&s, NULL), 0);
    setup_topic(&s, 0);
    conn a, p;
    conn_open(&a, &s);
    conn_open(&p, &s);
    assert_int_equal(join(&a, "grp", "A", KR_START_LATEST, 0, KR_CACK_EXPLICIT, 30000), 0);
    kr_buf_reset(&a.b);
    kr_enc_poll(&a.b, (kr_cid){0}, 10, 10000, 1u << 20);
    assert_int_equal(krappy_send(a.c, KRAPPY_T_POLL, a.b.data, a.b.len), KRAPPY_OK);
    assert_int_equal(krappy_flush(a.c), KRAPPY_OK);
    usleep(200 * 1000);
    assert_int_equal(conn_register(&p, "g"), 0);
    uint64_t t0 = e2e_now_ms();
    produce(&p, 0, 3);
    assert_int_equal(krappy_recv(a.c, &a.f), KRAPPY_OK);
    assert_true(e2e_now_ms() - t0 < 2000);
    assert_int_equal(a.f.type, KRAPPY_T_EVENTS);
    conn_close(&a);
    conn_close(&p);
    assert_int_equal(e2e_stop(&s, 10000), 0);
}

static void test_cursor_survives_kill9(void **state)
{
    (void)state;
    e2e_server s;
    assert_int_equal(e2e_start(&s, NULL), 0);
    setup_topic(&s, 50);
    conn a;
    conn_open(&a, &s);
    assert_int_equal(join(&a, "grp", "A", KR_START_EARLIEST, 0, KR_CACK_EXPLICIT, 30000), 0);
    uint64_t offs[64];
    assert_int_equal(poll_offsets(&a, 30, 0, offs, 64), 30);
    assert_int_equal(ack_upto(&a, 20), 20); /* 20..29 stay pending */
    conn_close(&a);
    kill(s.pid, SIGKILL);
    waitpid(s.pid, NULL, 0);
    s.pid = 0;
    assert_int_equal(e2e_restart(&s, NULL), 0);
    conn_open(&a, &s);
    assert_int_equal(join(&a, "grp", "A", KR_START_LATEST, 0, KR_CACK_EXPLICIT, 30000), 0);
    assert_int_equal(reply_u(&a, "cursor"), 20); /* `start` ignored: the group exists */
    size_t n = poll_offsets(&a, 100, 0, offs, 64);
    assert_int_equal(n, 30);
    assert_int_equal(offs[0], 20); /* none skipped: 20..29 come again */
    conn_close(&a);
    assert_int_equal(e2e_stop(&s, 10000), 0);
}

static void test_start_positions_kept_across_restart(void **state)
{
    (void)state;
    e2e_server s;
    assert_int_equal(e2e_start(&s, NULL), 0);
    setup_topic(&s, 30);
    conn a;
    conn_open(&a, &s);
    assert_int_equal(join(&a, "late", NULL, KR_START_LATEST, 0, KR_CACK_EXPLICIT, 30000), 0);
    assert_int_equal(reply_u(&a, "cursor"), 30);
    /* Offsets below where the group started were never handed out by it. */
    kr_buf_reset(&a.b);
    uint64_t before[] = {29};
    kr_enc_ack_offsets(&a.b, (kr_cid){0}, before, 1);
    assert_int_equal(conn_call(&a, KRAPPY_T_ACK), KRAPPY_E_INVALID_ARGUMENT);
    assert_int_equal(join(&a, "mid", NULL, KR_START_OFFSET, 12, KR_CACK_EXPLICIT, 30000), 0);
    assert_int_equal(reply_u(&a, "cursor"), 12);
    assert_int_equal(join(&a, "bad", NULL, KR_START_OFFSET, 31, KR_CACK_EXPLICIT, 30000),
                     KRAPPY_E_OFFSET_OUT_OF_RANGE);
    assert_int_equal(reply_u(&a, "first"), 0);
    assert_int_equal(reply_u(&a, "next"), 30);
    conn_close(&a);
    kill(s.pid, SIGKILL);
    waitpid(s.pid, NULL, 0);
    s.pid = 0;
    assert_int_equal(e2e_restart(&s, NULL), 0);
    setup_topic(&s, 5); /* 30..34 */
    conn_open(&a, &s);
    assert_int_equal(join(&a, "late", NULL, KR_START_EARLIEST, 0, KR_CACK_EXPLICIT, 30000), 0);
    assert_int_equal(reply_u(&a, "cursor"), 30);
    kr_buf_reset(&a.b);
    kr_enc_ack_offsets(&a.b, (kr_cid){0}, before, 1); /* the origin was kept */
    assert_int_equal(conn_call(&a, KRAPPY_T_ACK), KRAPPY_E_INVALID_ARGUMENT);
    uint64_t offs[16];
    assert_int_equal(poll_offsets(&a, 16, 0, offs, 16), 5);
    assert_int_equal(offs[0], 30);
    assert_int_equal(join(&a, "mid", NULL, KR_START_EARLIEST, 0, KR_CACK_EXPLICIT, 30000), 0);
    assert_int_equal(reply_u(&a, "cursor"), 12);
    conn_close(&a);
    assert_int_equal(e2e_stop(&s, 10000), 0);
}

static void test_auto_ack(void **state)
{
    (void)state;
    e2e_server s;
    assert_int_equal(e2e_start(&s, NULL), 0);
    setup_topic(&s, 10);
    conn a;
    conn_open(&a, &s);
    assert_int_equal(join(&a, "grp", "A", KR_START_EARLIEST, 0, KR_CACK_AUTO, 30000), 0);
    uint64_t offs[16];
    assert_int_equal(poll_offsets(&a, 4, 0, offs, 16), 4);
    conn_close(&a);
    /* Handed out = acknowledged, durably, before the EVENTS reply. */
    assert_int_equal(group_stat(&s, "grp", "cursor"), 4);
    assert_int_equal(group_stat(&s, "grp", "pending"), 0);
    kill(s.pid, SIGKILL);
    waitpid(s.pid, NULL, 0);
    s.pid = 0;
    assert_int_equal(e2e_restart(&s, NULL), 0);
    conn_open(&a, &s);
    assert_int_equal(join(&a, "grp", "A", KR_START_EARLIEST, 0, KR_CACK_AUTO, 30000), 0);
    assert_int_equal(reply_u(&a, "cursor"), 4);
    conn_close(&a);
    assert_int_equal(e2e_stop(&s, 10000), 0);
}

static void test_member_takeover(void **state)
{
    (void)state;
    e2e_server s;
    assert_int_equal(e2e_start(&s, NULL), 0);
    setup_topic(&s, 10);
    conn a, a2;
    conn_open(&a, &s);
    conn_open(&a2, &s);
    assert_int_equal(join(&a, "grp", "same", KR_START_EARLIEST, 0, KR_CACK_EXPLICIT, 30000), 0);
    uint64_t offs[16];
    assert_int_equal(poll_offsets(&a, 6, 0, offs, 16), 6);
    /* A parked POLL on the old connection is answered NOT_REGISTERED. */
    kr_buf_reset(&a.b);
    kr_enc_poll(&a.b, (kr_cid){0}, 10, 10000, 1u << 20);
    assert_int_equal(krappy_send(a.c, KRAPPY_T_POLL, a.b.data, a.b.len), KRAPPY_OK);
    assert_int_equal(krappy_flush(a.c), KRAPPY_OK);
    usleep(100 * 1000);
    /* ... the poll got 6..9 at once; park a second one. */
    assert_int_equal(krappy_recv(a.c, &a.f), KRAPPY_OK);
    kr_buf_reset(&a.b);
    kr_enc_poll(&a.b, (kr_cid){0}, 10, 10000, 1u << 20);
    assert_int_equal(krappy_send(a.c, KRAPPY_T_POLL, a.b.data, a.b.len), KRAPPY_OK);
    assert_int_equal(krappy_flush(a.c), KRAPPY_OK);
    usleep(100 * 1000);
    assert_int_equal(join(&a2, "grp", "same", KR_START_EARLIEST, 0, KR_CACK_EXPLICIT, 30000), 0);
    assert_int_equal(krappy_recv(a.c, &a.f), KRAPPY_OK);
    assert_int_equal(krappy_reply_error(a.c, &a.f), KRAPPY_E_NOT_REGISTERED);
    /* The new connection owns the pending events: upto acknowledges them. */
    assert_int_equal(ack_upto(&a2, 10), 10);
    conn_close(&a);
    conn_close(&a2);
    assert_int_equal(e2e_stop(&s, 10000), 0);
}

static void test_errors(void **state)
{
    (void)state;
    e2e_server s;
    assert_int_equal(e2e_start(&s, NULL), 0);
    setup_topic(&s, 5);
    conn a;
    conn_open(&a, &s);
    kr_buf_reset(&a.b);
    kr_enc_poll(&a.b, (kr_cid){0}, 10, 0, 1u << 20);
    assert_int_equal(conn_call(&a, KRAPPY_T_POLL), KRAPPY_E_NOT_REGISTERED);
    kr_buf_reset(&a.b);
    kr_enc_ack_upto(&a.b, (kr_cid){0}, 1);
    assert_int_equal(conn_call(&a, KRAPPY_T_ACK), KRAPPY_E_NOT_REGISTERED);
    kr_buf_reset(&a.b);
    kr_enc_consumer_register(&a.b, (kr_cid){0}, "nope", "grp", NULL, KR_START_EARLIEST, 0,
                             KR_CACK_EXPLICIT, 1000);
    assert_int_equal(conn_call(&a, KRAPPY_T_CONSUMER_REGISTER), KRAPPY_E_NO_SUCH_TOPIC);
    assert_int_equal(join(&a, "grp", "A", KR_START_EARLIEST, 0, KR_CACK_EXPLICIT, 30000), 0);
    uint64_t offs[8];
    assert_int_equal(poll_offsets(&a, 2, 0, offs, 8), 2);
    /* Never handed out: refused, nothing applied. */
    kr_buf_reset(&a.b);
    uint64_t bad[] = {0, 3};
    kr_enc_ack_offsets(&a.b, (kr_cid){0}, bad, 2);
    assert_int_equal(conn_call(&a, KRAPPY_T_ACK), KRAPPY_E_INVALID_ARGUMENT);
    assert_int_equal(group_stat(&s, "grp", "pending"), 2);
    /* Acknowledged twice: listed in `ignored`. */
    assert_int_equal(ack_upto(&a, 2), 2);
    kr_buf_reset(&a.b);
    uint64_t again[] = {1, 1};
    kr_enc_ack_offsets(&a.b, (kr_cid){0}, again, 2);
    assert_int_equal(conn_call(&a, KRAPPY_T_ACK), 0);
    kr_cbor_item ign;
    assert_int_equal(kr_cbor_map_find(&a.r.map, "ignored", &ign), 1);
    assert_int_equal(ign.u, 1);
    kr_buf_reset(&a.b);
    kr_enc_stats(&a.b, (kr_cid){0}, "g", "nosuchgroup");
    assert_int_equal(conn_call(&a, KRAPPY_T_STATS), KRAPPY_E_NOT_FOUND);
    conn_close(&a);
    assert_int_equal(e2e_stop(&s, 10000), 0);
}

/* krappy consume / groups, as a user types them. */
static void test_cli_consume_and_groups(void **state)
{
    (void)state;
    e2e_server s;
    assert_int_equal(e2e_start(&s, NULL), 0);
    setup_topic(&s, 10);
    char cmd[600], out[8192];
    const char *k = e2e_cli();
    snprintf(cmd, sizeof cmd, "%s -p %s --json consume g --group cli --max 5", k, s.port);
    assert_int_equal(e2e_run(cmd, out, sizeof out), 0);
    assert_non_null(strstr(out, "\"offset\":0"));
    assert_non_null(strstr(out, "\"offset\":4"));
    assert_null(strstr(out, "\"offset\":5"));
    assert_int_equal(e2e_run(cmd, out, sizeof out), 0); /* the next five */
    assert_non_null(strstr(out, "\"offset\":5"));
    assert_non_null(strstr(out, "\"offset\":9"));
    assert_null(strstr(out, "\"offset\":4,"));
    snprintf(cmd, sizeof cmd, "%s -p %s --json groups g", k, s.port);
    assert_int_equal(e2e_run(cmd, out, sizeof out), 0);
    assert_non_null(strstr(out, "\"cursor\":10"));
    assert_non_null(strstr(out, "\"lag\":0"));
    snprintf(cmd, sizeof cmd, "%s -p %s consume g --group x --start 99 2>&1", k, s.port);
    assert_int_equal(e2e_run(cmd, out, sizeof out), 1);
    assert_non_null(strstr(out, "outside"));
    assert_int_equal(e2e_stop(&s, 10000), 0);
}

int main(void)
{
    signal(SIGPIPE, SIG_IGN);
    if (e2e_external_addr() != NULL) {
        printf("e2e_groups: starts and kills its own servers; skipped with KRAPPY_E2E_ADDR\n");
        return 0;
    }
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_members_get_disjoint_events),
        cmocka_unit_test(test_disconnect_redelivers_to_other),
        cmocka_unit_test(test_leave_during_long_poll),
        cmocka_unit_test(test_expiry_redelivers_to_parked_poll),
        cmocka_unit_test(test_long_poll_woken_by_publish),
        cmocka_unit_test(test_cursor_survives_kill9),
        cmocka_unit_test(test_start_positions_kept_across_restart),
        cmocka_unit_test(test_auto_ack),
        cmocka_unit_test(test_member_takeover),
        cmocka_unit_test(test_errors),
        cmocka_unit_test(test_cli_consume_and_groups),
    };
    return cmocka_run_group_tests_name("e2e_groups", tests, NULL, NULL);
}
