/*
 * e2e/e2e_idempotent.c - idempotent producers (PROTOCOL.md section 7)
 * against real krappyd processes: the sequence rules on the wire (ack
 * "none" included), fencing between connections, a kill -9 between the
 * write and the ack (the shim stalls the fdatasync of a "sync" PUBLISH),
 * a power cut after a "sync" ack, libkrappy's producer handle publishing
 * across a kill -9 and a restart (every event exactly once), and a data
 * directory written by krappyd 0.1.0 (e2e/fixtures/data-0.1.0.tar.gz)
 * opened and written to idempotently.
 *
 * Environment: KRAPPYD; KRAPPY_SHIM and KRAPPY_POWERCUT for the tests that
 * need them (skipped otherwise).
 */
#include <errno.h>
#include <pthread.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include "conn.h"
#include "harness.h"
#include "krappy/client.h"
#include "proto/msg.h"

/* ---- helpers on e2e/conn.h ---- */

/* An idempotent PRODUCER_REGISTER: the error code (0: the reply's epoch,
 * seq and next are in x->r). */
static int reg_idem(conn *x, const char *topic, const char *id)
{
    kr_buf_reset(&x->b);
    kr_enc_producer_register_idempotent(&x->b, (kr_cid){0}, topic, id);
    return conn_call(x, KRAPPY_T_PRODUCER_REGISTER);
}

/* Events "<tag>-<seq + i>" (i < n), keys "k<i>", as a PUBLISH into x->b
 * (with `seq` when has_seq). */
static void build_pub(conn *x, bool has_seq, uint64_t seq, int n, kr_ack_mode ack, const char *tag)
{
    kr_event_out_spec ev[64];
    char keys[64][16];
    uint8_t vals[64][48];
    assert_true(n <= 64);
    for (int i = 0; i < n; i++) {
        char text[40];
        snprintf(keys[i], sizeof keys[i], "k%d", i);
        snprintf(text, sizeof text, "%s-%llu", tag, (unsigned long long)(seq + (uint64_t)i));
        ev[i] = conn_text_event(keys[i], text, vals[i]);
    }
    kr_buf_reset(&x->b);
    if (has_seq)
        kr_enc_publish_seq(&x->b, (kr_cid){0}, ack, seq, ev, (size_t)n);
    else
        kr_enc_publish(&x->b, (kr_cid){0}, ack, ev, (size_t)n);
}

/* PUBLISH with seq; the error code (0: x->r holds first, count,
 * duplicate?). */
static int pub_seq(conn *x, uint64_t seq, int n, kr_ack_mode ack, const char *tag)
{
    build_pub(x, true, seq, n, ack, tag);
    return conn_call(x, KRAPPY_T_PUBLISH);
}

static bool is_duplicate(conn *x)
{
    kr_cbor_item d;
    return kr_cbor_map_find(&x->r.map, "duplicate", &d) == 1 && d.kind == KR_CBOR_TRUE;
}

/* Every event value of a topic, in offset order, into one string
 * "v0 v1 ..." (values are text). @return how many. */
static size_t fetch_values(conn *x, const char *topic, char *out, size_t outlen)
{
    uint64_t off = 0;
    size_t n = 0, used = 0;
    out[0] = '\0';
    for (;;) {
        kr_buf_reset(&x->b);
        kr_enc_fetch(&x->b, (kr_cid){0}, topic, off, 1000, 0, 1u << 20);
        assert_int_equal(conn_call(x, KRAPPY_T_FETCH), 0);
        kr_cbor_item events, e;
        assert_int_equal(kr_cbor_map_find(&x->r.map, "events", &events), 1);
        if (events.u == 0)
            return n;
        kr_cbor_iter it;
        kr_cbor_iter_init(&it, &events);
        while (kr_cbor_iter_next(&it, &e) == 1) {
            kr_event_view v;
            assert_int_equal(kr_event_view_read(&e, &v), 0);
            assert_int_equal(v.offset, off);
            char val[64] = {0};
            kr_cbor_str_copy(&v.value, (uint8_t *)val, sizeof val - 1);
            int w = snprintf(out + used, outlen - used, "%s%s", n ? " " : "", val);
            assert_true(w > 0 && (size_t)w < outlen - used);
            used += (size_t)w;
            n++;
            off++;
        }
    }
}

/* How often `what` occurs in s as a whole word. */
static int occurrences(const char *s, const char *what)
{
    int n = 0;
    size_t len = strlen(what);
    for (const char *p = s; (p = strstr(p, what)) != NULL; p += len)
        if ((p == s || p[-1] == ' ') && (p[len] == ' ' || p[len] == '\0'))
            n++;
    return n;
}

/* ---- the rules on the wire ---- */

static void test_sequence_on_the_wire(void **state)
{
    (void)state;
    if (e2e_external_addr() != NULL)
        skip();
    e2e_server s;
    assert_int_equal(e2e_start(&s, NULL), 0);
    conn x;
    conn_open(&x, &s);
    assert_int_equal(reg_idem(&x, "w", "a"), 0);
    assert_int_equal(reply_u(&x, "epoch"), 1);
    assert_int_equal(reply_u(&x, "seq"), 0);
    assert_int_equal(reply_u(&x, "next"), 0);

    /* seq is required on an idempotent registration. */
    build_pub(&x, false, 0, 1, KR_ACK_WRITE, "a");
    assert_int_equal(conn_call(&x, KRAPPY_T_PUBLISH), KRAPPY_E_INVALID_ARGUMENT);
    assert_non_null(strstr(krappy_client_errmsg(x.c), "'seq' is required"));

    assert_int_equal(pub_seq(&x, 0, 2, KR_ACK_WRITE, "a"), 0);
    assert_int_equal(reply_u(&x, "first"), 0);
    assert_false(is_duplicate(&x));
    /* An exact repeat: nothing stored, the original offsets. */
    assert_int_equal(pub_seq(&x, 0, 2, KR_ACK_SYNC, "a"), 0);
    assert_true(is_duplicate(&x));
    assert_int_equal(reply_u(&x, "first"), 0);
    assert_int_equal(reply_u(&x, "count"), 2);
    /* A gap: OUT_OF_ORDER_SEQUENCE carrying expected. */
    assert_int_equal(pub_seq(&x, 5, 1, KR_ACK_WRITE, "a"), KRAPPY_E_OUT_OF_ORDER_SEQUENCE);
    assert_int_equal(reply_u(&x, "expected"), 2);
    uint64_t expected = 0;
    assert_int_equal(krappy_client_error_expected(x.c, &expected), 1);
    assert_int_equal(expected, 2);
    /* ack "none": a repeat gets no reply either (it succeeded). */
    build_pub(&x, true, 2, 3, KR_ACK_NONE, "a");
    assert_int_equal(krappy_send(x.c, KRAPPY_T_PUBLISH, x.b.data, x.b.len), KRAPPY_OK);
    assert_int_equal(krappy_send(x.c, KRAPPY_T_PUBLISH, x.b.data, x.b.len), KRAPPY_OK);
    assert_int_equal(krappy_ping(x.c), KRAPPY_OK);
    char vals[4096];
    assert_int_equal(fetch_values(&x, "w", vals, sizeof vals), 5);
    assert_string_equal(vals, "a-0 a-1 a-2 a-3 a-4");

    /* STATS and /metrics count the producer and the duplicates. */
    kr_buf_reset(&x.b);
    kr_enc_stats(&x.b, (kr_cid){0}, "w", NULL);
    assert_int_equal(conn_call(&x, KRAPPY_T_STATS), 0);
    assert_int_equal(reply_u(&x, "producers"), 1);
    char cmd[300], out[512];
    snprintf(cmd, sizeof cmd,
             "command -v curl >/dev/null && curl -s http://127.0.0.1:%s/metrics | grep "
             "'^krappy_topic_[a-z_]*{topic=\"w\"}' | grep 'producers\\|duplicates'",
             s.http_port);
    if (e2e_run(cmd, out, sizeof out) == 0) {
        assert_non_null(strstr(out, "krappy_topic_producers{topic=\"w\"} 1"));
        assert_non_null(strstr(out, "krappy_topic_duplicates_total{topic=\"w\"} 2"));
    }

    /* An ordinary registration of the same id neither fences nor is
     * fenced, and ignores seq. */
    conn y;
    conn_open(&y, &s);
    kr_buf_reset(&y.b);
    kr_enc_producer_register(&y.b, (kr_cid){0}, "w", "a");
    assert_int_equal(conn_call(&y, KRAPPY_T_PRODUCER_REGISTER), 0);
    assert_int_equal(pub_seq(&y, 0, 1, KR_ACK_WRITE, "plain"), 0);
    assert_false(is_duplicate(&y));
    assert_int_equal(reply_u(&y, "first"), 5);
    conn_close(&y);
    assert_int_equal(pub_seq(&x, 5, 1, KR_ACK_WRITE, "a"), 0);
    assert_int_equal(reply_u(&x, "first"), 6);

    /* ack "none" refused: its ERROR, then the connection closes. */
    build_pub(&x, true, 9, 1, KR_ACK_NONE, "a");
    assert_int_equal(krappy_send(x.c, KRAPPY_T_PUBLISH, x.b.data, x.b.len), KRAPPY_OK);
    krappy_frame f;
    assert_int_equal(krappy_recv(x.c, &f), KRAPPY_OK);
    assert_int_equal(krappy_reply_error(x.c, &f), KRAPPY_E_OUT_OF_ORDER_SEQUENCE);
    assert_int_not_equal(krappy_recv(x.c, &f), KRAPPY_OK);
    conn_close(&x);
    assert_int_equal(e2e_stop(&s, 10000), 0);
}

static void test_fencing(void **state)
{
    (void)state;
    if (e2e_external_addr() != NULL)
        skip();
    e2e_server s;
    assert_int_equal(e2e_start(&s, NULL), 0);
    conn a, b;
    conn_open(&a, &s);
    conn_open(&b, &s);
    assert_int_equal(reg_idem(&a, "f", "p"), 0);
    assert_int_equal(reply_u(&a, "epoch"), 1);
    assert_int_equal(pub_seq(&a, 0, 1, KR_ACK_WRITE, "a"), 0);
    assert_int_equal(reg_idem(&b, "f", "p"), 0);
    assert_int_equal(reply_u(&b, "epoch"), 2);
    assert_int_equal(reply_u(&b, "seq"), 1);
    /* The older registration is fenced, then dropped. */
    assert_int_equal(pub_seq(&a, 1, 1, KR_ACK_WRITE, "a"), KRAPPY_E_FENCED);
    assert_non_null(strstr(krappy_client_errmsg(a.c), "register again"));
    assert_int_equal(pub_seq(&a, 1, 1, KR_ACK_WRITE, "a"), KRAPPY_E_NOT_REGISTERED);
    assert_int_equal(pub_seq(&b, 1, 1, KR_ACK_WRITE, "b"), 0);
    assert_int_equal(reply_u(&b, "first"), 1);
    /* Registering again takes over in turn. */
    assert_int_equal(reg_idem(&a, "f", "p"), 0);
    assert_int_equal(reply_u(&a, "epoch"), 3);
    assert_int_equal(reply_u(&a, "seq"), 2);
    assert_int_equal(pub_seq(&b, 2, 1, KR_ACK_WRITE, "b"), KRAPPY_E_FENCED);
    assert_int_equal(pub_seq(&a, 2, 1, KR_ACK_WRITE, "a"), 0);
    char vals[256];
    assert_int_equal(fetch_values(&a, "f", vals, sizeof vals), 3);
    assert_string_equal(vals, "a-0 b-1 a-2");
    conn_close(&a);
    conn_close(&b);
    assert_int_equal(e2e_stop(&s, 10000), 0);
}

/* ---- crashes ---- */

/* Size of the topic's first segment file (0 when none). */
static long long segment_size(const e2e_server *s, const char *topic)
{
    char path[400];
    struct stat st;
    snprintf(path, sizeof path, "%s/data/topics/%s/00000000000000000000.seg", s->dir, topic);
    return stat(path, &st) == 0 ? (long long)st.st_size : 0;
}

/* kill -9 between the write and the ack: the fdatasync of a "sync"
 * PUBLISH stalls (the shim), the batch is in the file, the server dies
 * before it answers. After the restart the same PUBLISH is a duplicate,
 * with the offsets it got. */
static void test_kill9_between_write_and_ack(void **state)
{
    (void)state;
    if (!e2e_have_shim())
        skip();
    e2e_server s;
    const char *args[] = {"--checkpoint-interval", "1h", NULL};
    assert_int_equal(e2e_start_shimmed(&s, args), 0);
    conn x;
    conn_open(&x, &s);
    assert_int_equal(reg_idem(&x, "ka", "p"), 0);
    assert_int_equal(pub_seq(&x, 0, 3, KR_ACK_SYNC, "e"), 0);
    long long before = segment_size(&s, "ka");
    assert_int_equal(e2e_shim_faults(&s, "sync /topics/ka/ DELAY ms=5000\n"), 0);
    build_pub(&x, true, 3, 4, KR_ACK_SYNC, "e");
    assert_int_equal(krappy_send(x.c, KRAPPY_T_PUBLISH, x.b.data, x.b.len), KRAPPY_OK);
    assert_int_equal(krappy_flush(x.c), KRAPPY_OK);
    uint64_t deadline = e2e_now_ms() + 4000;
    while (segment_size(&s, "ka") == before && e2e_now_ms() < deadline)
        usleep(5000);
    assert_true(segment_size(&s, "ka") > before); /* written, not acknowledged */
    e2e_kill9(&s);
    conn_close(&x);

    assert_int_equal(e2e_restart(&s, args), 0);
    conn_open(&x, &s);
    assert_int_equal(reg_idem(&x, "ka", "p"), 0);
    assert_int_equal(reply_u(&x, "epoch"), 2);
    assert_int_equal(reply_u(&x, "seq"), 7);
    assert_int_equal(pub_seq(&x, 3, 4, KR_ACK_SYNC, "e"), 0);
    assert_true(is_duplicate(&x));
    assert_int_equal(reply_u(&x, "first"), 3);
    assert_int_equal(pub_seq(&x, 7, 1, KR_ACK_SYNC, "e"), 0);
    assert_int_equal(reply_u(&x, "first"), 7);
    char vals[512];
    assert_int_equal(fetch_values(&x, "ka", vals, sizeof vals), 8);
    assert_string_equal(vals, "e-0 e-1 e-2 e-3 e-4 e-5 e-6 e-7");
    conn_close(&x);
    assert_int_equal(e2e_stop(&s, 10000), 0);
}

/* A power cut after a "sync" ack: the PUBLISH sent again is a duplicate
 * with its original offsets; one acknowledged only "write" may be lost,
 * and sent again it is then stored (once). */
static void test_power_cut_after_sync(void **state)
{
    (void)state;
    if (!e2e_have_shim())
        skip();
    e2e_server s;
    const char *args[] = {"--checkpoint-interval", "1h", NULL};
    assert_int_equal(e2e_start_shimmed(&s, args), 0);
    for (int round = 0; round < 3; round++) {
        conn x;
        conn_open(&x, &s);
        assert_int_equal(reg_idem(&x, "pc", "p"), 0);
        uint64_t seq = reply_u(&x, "seq"), next = reply_u(&x, "next");
        char tag[16];
        snprintf(tag, sizeof tag, "r%d", round);
        assert_int_equal(pub_seq(&x, seq, 5, KR_ACK_SYNC, tag), 0);
        uint64_t first = reply_u(&x, "first");
        assert_int_equal(first, next);
        assert_int_equal(pub_seq(&x, seq + 5, 2, KR_ACK_WRITE, tag), 0);
        conn_close(&x);
        assert_int_equal(e2e_powercut(&s), 0);
        assert_int_equal(e2e_restart_shimmed(&s, args), 0);

        conn_open(&x, &s);
        assert_int_equal(reg_idem(&x, "pc", "p"), 0);
        uint64_t after = reply_u(&x, "seq");
        assert_true(after == seq + 5 || after == seq + 7);
        assert_int_equal(pub_seq(&x, seq, 5, KR_ACK_SYNC, tag), 0);
        assert_true(is_duplicate(&x));
        assert_int_equal(reply_u(&x, "first"), first);
        assert_int_equal(pub_seq(&x, seq + 5, 2, KR_ACK_SYNC, tag), 0);
        assert_true(is_duplicate(&x) == (after == seq + 7));
        conn_close(&x);
    }
    conn x;
    conn_open(&x, &s);
    char vals[2048];
    assert_int_equal(fetch_values(&x, "pc", vals, sizeof vals), 21);
    for (int round = 0; round < 3; round++)
        for (int i = 0; i < 7; i++) {
            char v[16];
            snprintf(v, sizeof v, "r%d-%d", round, 7 * round + i);
            if (occurrences(vals, v) != 1)
                fail_msg("%s is there %d times: %s", v, occurrences(vals, v), vals);
        }
    conn_close(&x);
    assert_int_equal(e2e_stop(&s, 10000), 0);
}

/* ---- libkrappy's handle ---- */

typedef struct crasher {
    e2e_server *s;
    int after_ms, down_ms;
    const char *const *args; /* the restart's: the same port */
} crasher;

static void *crash_and_restart(void *arg)
{
    crasher *c = arg;
    usleep((useconds_t)c->after_ms * 1000);
    e2e_kill9(c->s);
    usleep((useconds_t)c->down_ms * 1000);
    if (e2e_restart(c->s, c->args) != 0)
        fprintf(stderr, "e2e: the server did not come back\n");
    return NULL;
}

static void count_ack(void *arg, const krappy_producer_ack *a)
{
    uint64_t *n = arg;
    n[0]++;
    n[1] += a->duplicate != 0;
}

/* A caller that keeps publishing through the handle while the server is
 * killed and restarted ends with every event stored exactly once. */
static void test_handle_across_a_kill9(void **state)
{
    (void)state;
    if (e2e_external_addr() != NULL)
        skip();
    e2e_server s;
    assert_int_equal(e2e_start(&s, NULL), 0);
    char addr[96];
    snprintf(addr, sizeof addr, "%s:%s", s.host, s.port);
    enum { BATCHES = 400, PER = 10 };
    uint64_t acks[2] = {0, 0};
    krappy_producer_opts o = {.ack = KRAPPY_ACK_WRITE, .on_ack = count_ack, .arg = acks};
    krappy_producer *p;
    assert_int_equal(krappy_producer_open(addr, "h", "handle", &o, &p), KRAPPY_OK);
    /* The handle's address is fixed: the server comes back on its port. */
    char listen[64];
    snprintf(listen, sizeof listen, "127.0.0.1:%s", s.port);
    const char *args[] = {"--listen", listen, NULL};
    crasher c = {&s, 150, 300, args};
    pthread_t th;
    krappy_batch *b = krappy_batch_new();
    for (int i = 0; i < BATCHES; i++) {
        if (i == 40)
            assert_int_equal(e2e_thread_start(&th, crash_and_restart, &c), 0);
        krappy_batch_reset(b);
        for (int j = 0; j < PER; j++) {
            char v[32];
            int n = snprintf(v, sizeof v, "h-%d", i * PER + j);
            assert_int_equal(krappy_batch_add_text(b, KRAPPY_KEY_NONE, NULL, 0, v, (size_t)n),
                             KRAPPY_OK);
        }
        if (krappy_producer_send(p, b, NULL) != KRAPPY_OK)
            fail_msg("batch %d: %s", i, krappy_producer_errmsg(p));
        usleep(2000);
    }
    e2e_thread_join(th);
    if (krappy_producer_flush(p) != KRAPPY_OK)
        fail_msg("flush: %s", krappy_producer_errmsg(p));
    krappy_producer_info in;
    krappy_producer_info_get(p, &in);
    print_message("      %llu batches acknowledged (%llu duplicates), %llu resent, %llu "
                  "reconnects\n",
                  (unsigned long long)in.acked, (unsigned long long)in.duplicates,
                  (unsigned long long)in.resent, (unsigned long long)in.reconnects);
    assert_int_equal(in.acked, BATCHES);
    assert_int_equal(acks[0], BATCHES);
    assert_true(in.reconnects >= 1);
    krappy_producer_free(p);
    krappy_batch_free(b);

    conn x;
    conn_open(&x, &s);
    static char vals[BATCHES * PER * 12];
    assert_int_equal(fetch_values(&x, "h", vals, sizeof vals), BATCHES * PER);
    /* In order and each once: the stream is h-0 h-1 ... */
    const char *at = vals;
    for (int i = 0; i < BATCHES * PER; i++) {
        char v[32];
        int n = snprintf(v, sizeof v, "h-%d", i);
        if (strncmp(at, v, (size_t)n) != 0 || (at[n] != ' ' && at[n] != '\0'))
            fail_msg("event %d is not %s: %.40s", i, v, at);
        at += n + (at[n] == ' ');
    }
    conn_close(&x);
    assert_int_equal(e2e_stop(&s, 10000), 0);
}

/* ---- a data directory of 0.1.0 ---- */

/* How often a 4-byte batch magic occurs in a file. */
static int count_magic(const char *path, const char *magic)
{
    FILE *f = fopen(path, "rb");
    assert_non_null(f);
    static char buf[1 << 16];
    size_t n = fread(buf, 1, sizeof buf, f);
    fclose(f);
    int k = 0;
    for (size_t i = 0; i + 4 <= n; i++)
        k += memcmp(buf + i, magic, 4) == 0;
    return k;
}

static void test_data_of_0_1_0(void **state)
{
    (void)state;
    if (e2e_external_addr() != NULL)
        skip();
    const char *dir = getenv("KRAPPY_E2E_FIXTURES");
    char tarball[512], cmd[1024], out[256];
    snprintf(tarball, sizeof tarball, "%s/data-0.1.0.tar.gz", dir ? dir : "e2e/fixtures");
    if (access(tarball, R_OK) != 0)
        fail_msg("no fixture %s (run from the repository's top directory)", tarball);
    e2e_server s;
    memset(&s, 0, sizeof s);
    e2e_tmp_template(s.dir, sizeof s.dir);
    assert_non_null(mkdtemp(s.dir));
    snprintf(cmd, sizeof cmd, "tar xzf '%s' -C '%s'", tarball, s.dir);
    assert_int_equal(e2e_run(cmd, out, sizeof out), 0);
    assert_int_equal(e2e_restart(&s, NULL), 0);

    /* What 0.1.0 stored: "old-orders" alice=pending bob=paid carol=new,
     * alice=shipped, bob=refunded dave=new; group billing at 2; "plain"
     * dave=1 erin=2. */
    conn x;
    conn_open(&x, &s);
    char vals[1024];
    assert_int_equal(fetch_values(&x, "old-orders", vals, sizeof vals), 6);
    assert_string_equal(vals, "pending paid new shipped refunded new");
    assert_int_equal(fetch_values(&x, "plain", vals, sizeof vals), 2);
    kr_buf_reset(&x.b);
    kr_enc_get(&x.b, (kr_cid){0}, "old-orders", "alice", 5);
    assert_int_equal(conn_call(&x, KRAPPY_T_GET), 0);
    kr_buf_reset(&x.b);
    kr_enc_stats(&x.b, (kr_cid){0}, "old-orders", "billing");
    assert_int_equal(conn_call(&x, KRAPPY_T_STATS), 0);

    /* Written to idempotently, and plainly. */
    assert_int_equal(reg_idem(&x, "old-orders", "new"), 0);
    assert_int_equal(reply_u(&x, "next"), 6);
    assert_int_equal(reply_u(&x, "seq"), 0);
    assert_int_equal(pub_seq(&x, 0, 2, KR_ACK_SYNC, "n"), 0);
    assert_int_equal(reply_u(&x, "first"), 6);
    conn y;
    conn_open(&y, &s);
    assert_int_equal(conn_register(&y, "plain"), 0);
    build_pub(&y, false, 0, 1, KR_ACK_SYNC, "p");
    assert_int_equal(conn_call(&y, KRAPPY_T_PUBLISH), 0);
    assert_int_equal(reply_u(&y, "first"), 2);
    conn_close(&y);
    conn_close(&x);

    /* And after a restart. */
    assert_int_equal(e2e_stop_keep(&s, 10000), 0);
    assert_int_equal(e2e_restart(&s, NULL), 0);
    conn_open(&x, &s);
    assert_int_equal(reg_idem(&x, "old-orders", "new"), 0);
    assert_int_equal(pub_seq(&x, 0, 2, KR_ACK_SYNC, "n"), 0);
    assert_true(is_duplicate(&x));
    assert_int_equal(reply_u(&x, "first"), 6);
    assert_int_equal(fetch_values(&x, "old-orders", vals, sizeof vals), 8);
    assert_string_equal(vals, "pending paid new shipped refunded new n-0 n-1");
    conn_close(&x);
    /* Version 1 headers stay for plain batches; the idempotent one is 2. */
    char seg[400];
    snprintf(seg, sizeof seg, "%s/data/topics/old-orders/00000000000000000000.seg", s.dir);
    assert_int_equal(count_magic(seg, "KRB1"), 3); /* its three PUBLISHes */
    assert_int_equal(count_magic(seg, "KRB2"), 1);
    snprintf(seg, sizeof seg, "%s/data/topics/plain/00000000000000000000.seg", s.dir);
    assert_int_equal(count_magic(seg, "KRB2"), 0);
    assert_int_equal(e2e_stop(&s, 10000), 0);
}

int main(void)
{
    signal(SIGPIPE, SIG_IGN);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_teardown(test_sequence_on_the_wire, e2e_after_test),
        cmocka_unit_test_teardown(test_fencing, e2e_after_test),
        cmocka_unit_test_teardown(test_kill9_between_write_and_ack, e2e_after_test),
        cmocka_unit_test_teardown(test_power_cut_after_sync, e2e_after_test),
        cmocka_unit_test_teardown(test_handle_across_a_kill9, e2e_after_test),
        cmocka_unit_test_teardown(test_data_of_0_1_0, e2e_after_test),
    };
    return cmocka_run_group_tests_name("e2e idempotent producers", tests, NULL, NULL);
}
