/*
 * e2e/e2e_faults.c - power cuts and I/O faults, made to happen.
 *
 * krappyd runs under the LD_PRELOAD shim (tests/shim/krshim.c), which logs
 * the length of every file at each fsync/fdatasync and injects faults from
 * a control file. A "power cut" is kill -9 plus tests/shim/powercut, which
 * cuts every file under the data directory back to what was made durable.
 *
 * Environment: KRAPPY_SHIM (libkrshim.so), KRAPPY_POWERCUT (the tool),
 * KRAPPYD; KRAPPY_E2E_TORTURE=1 runs 30 power cuts instead of 3.
 */
#include <errno.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>

#include "conn.h"
#include "harness.h"
#include "krappy/client.h"
#include "proto/msg.h"

static char shim_log[300]; /* the current server's durability log */
static e2e_server shimmed; /* ... and the server, for set_faults */

/* Point the next server start at the shim, tracking `s->dir/data`. */
static void shim_env(const e2e_server *s)
{
    assert_int_equal(e2e_shim_on(s), 0);
    shimmed = *s;
    snprintf(shim_log, sizeof shim_log, "%s/shim.log", s->dir);
}

static void shim_env_clear(void)
{
    e2e_shim_off();
}

/* Replace the current server's fault rules. */
static void set_faults(const char *rules)
{
    assert_int_equal(e2e_shim_faults(&shimmed, rules), 0);
}

/* Start a fresh server in its own directory under the shim. */
static void start_shimmed(e2e_server *s, const char *const *args)
{
    assert_int_equal(e2e_start_shimmed(s, args), 0);
    shim_env(s);
    shim_env_clear();
}

static void restart_shimmed(e2e_server *s, const char *const *args)
{
    shim_env(s);
    assert_int_equal(e2e_restart(s, args), 0);
    shim_env_clear();
}

static void powercut(e2e_server *s)
{
    assert_int_equal(e2e_powercut(s), 0);
}

/* ---- helpers on e2e/conn.h ---- */

static uint64_t reg(conn *x, const char *topic)
{
    assert_int_equal(conn_register(x, topic), 0);
    return reply_u(x, "next");
}

/* Publish n events "key<i % 17>" = "<tag>-<offset guess>"; value text holds
 * the expected offset so a check can verify content. */
static int pub(conn *x, uint64_t expect_first, int n, kr_ack_mode ack, uint64_t *first)
{
    kr_event_out_spec ev[64];
    char keys[64][16];
    uint8_t vals[64][32];
    for (int i = 0; i < n; i++) {
        snprintf(keys[i], sizeof keys[i], "key%d", (int)((expect_first + i) % 17));
        char text[24];
        snprintf(text, sizeof text, "e%llu", (unsigned long long)(expect_first + i));
        kr_buf vb;
        kr_buf_init(&vb, 32);
        kr_cbor_put_cstr(&vb, text);
        memcpy(vals[i], vb.data, vb.len);
        ev[i] = (kr_event_out_spec){.key = keys[i],
                                    .key_len = strlen(keys[i]),
                                    .key_is_text = true,
                                    .value = vals[i],
                                    .value_len = vb.len};
        kr_buf_free(&vb);
    }
    kr_buf_reset(&x->b);
    kr_enc_publish(&x->b, (kr_cid){0}, ack, ev, (size_t)n);
    int rc = conn_call(x, KRAPPY_T_PUBLISH);
    if (rc == 0 && first != NULL)
        *first = reply_u(x, "first");
    return rc;
}

/* Every event in [from, to) is there and says "e<offset>". */
static void check_events(conn *x, const char *topic, uint64_t from, uint64_t to)
{
    uint64_t off = from;
    while (off < to) {
        kr_buf_reset(&x->b);
        kr_enc_fetch(&x->b, (kr_cid){0}, topic, off, 1000, 0, 1u << 20);
        assert_int_equal(conn_call(x, KRAPPY_T_FETCH), 0);
        kr_cbor_item events, e;
        assert_int_equal(kr_cbor_map_find(&x->r.map, "events", &events), 1);
        kr_cbor_iter it;
        kr_cbor_iter_init(&it, &events);
        size_t n = 0;
        while (kr_cbor_iter_next(&it, &e) == 1 && off < to) {
            kr_event_view v;
            assert_int_equal(kr_event_view_read(&e, &v), 0);
            char got[32] = {0}, want[32];
            kr_cbor_str_copy(&v.value, (uint8_t *)got, 31);
            snprintf(want, sizeof want, "e%llu", (unsigned long long)off);
            assert_int_equal(v.offset, off);
            assert_string_equal(got, want);
            off++;
            n++;
        }
        assert_true(n > 0);
    }
}

/* No view entry points at or past the stream's next (SCAN everything). */
static void check_view_not_ahead(conn *x, const char *topic, uint64_t next)
{
    kr_buf_reset(&x->b);
    kr_enc_scan(&x->b, (kr_cid){0}, topic, NULL, 0, NULL, 0, 1000, NULL, 0);
    assert_int_equal(conn_call(x, KRAPPY_T_SCAN), 0);
    assert_true(reply_u(x, "snapshot") <= next);
    kr_cbor_item entries, e, f0, off;
    assert_int_equal(kr_cbor_map_find(&x->r.map, "entries", &entries), 1);
    kr_cbor_iter it;
    kr_cbor_iter_init(&it, &entries);
    while (kr_cbor_iter_next(&it, &e) == 1) {
        kr_cbor_iter fi;
        kr_cbor_iter_init(&fi, &e);
        kr_cbor_iter_next(&fi, &f0);
        kr_cbor_iter_next(&fi, &off);
        assert_true(off.u < next);
    }
}

/* ---- power cuts ---- */

static void test_power_cuts(void **state)
{
    (void)state;
    if (!e2e_have_shim())
        skip();
    int rounds = getenv("KRAPPY_E2E_TORTURE") ? 30 : 3;
    const char *args[] = {"--checkpoint-interval", "30ms", "--segment-bytes", "32K", NULL};
    e2e_server s;
    start_shimmed(&s, args);
    uint64_t synced = 0; /* [0, synced) acknowledged "sync" */
    uint32_t seed = 99;
    for (int round = 0; round < rounds; round++) {
        conn x;
        conn_open(&x, &s);
        uint64_t next = reg(&x, "pc");
        assert_true(next >= synced);
        check_events(&x, "pc", 0, synced);
        check_view_not_ahead(&x, "pc", next);
        /* Events after `synced` that survived must be intact too: the
         * offsets a restart reports continue exactly after them. */
        check_events(&x, "pc", synced, next);
        seed = seed * 1103515245u + 12345u;
        int batches = 3 + (int)((seed >> 8) % 20);
        uint64_t expect = next;
        for (int b = 0; b < batches; b++) {
            kr_ack_mode ack = (seed >> (b % 16)) & 1 ? KR_ACK_SYNC : KR_ACK_WRITE;
            uint64_t first;
            assert_int_equal(pub(&x, expect, 40, ack, &first), 0);
            assert_int_equal(first, expect);
            expect += 40;
            if (ack == KR_ACK_SYNC)
                synced = expect;
        }
        usleep((useconds_t)((seed >> 4) % 50) * 1000);
        conn_close(&x);
        powercut(&s);
        restart_shimmed(&s, args);
    }
    conn x;
    conn_open(&x, &s);
    uint64_t next = reg(&x, "pc");
    check_events(&x, "pc", 0, next);
    print_message("      %d power cuts; %llu events survive, %llu acknowledged sync\n", rounds,
                  (unsigned long long)next, (unsigned long long)synced);
    conn_close(&x);
    assert_int_equal(e2e_stop(&s, 10000), 0);
}

/* Many "sync" acks share one fdatasync under concurrent load. */
static void test_sync_acks_share_fsyncs(void **state)
{
    (void)state;
    if (!e2e_have_shim())
        skip();
    e2e_server s;
    const char *args[] = {"--checkpoint-interval", "10s", NULL};
    start_shimmed(&s, args);
    enum { CONNS = 8, BATCHES = 60, WINDOW = 4 };
    krappy_client *c[CONNS];
    kr_buf b;
    kr_buf_init(&b, 1 << 20);
    for (int i = 0; i < CONNS; i++) {
        c[i] = krappy_client_new(NULL);
        assert_int_equal(krappy_connect(c[i], s.host, s.port), KRAPPY_OK);
        kr_buf_reset(&b);
        kr_enc_producer_register(&b, (kr_cid){0}, "fs", "p");
        krappy_frame f;
        assert_int_equal(krappy_call(c[i], KRAPPY_T_PRODUCER_REGISTER, b.data, b.len, &f),
                         KRAPPY_OK);
    }
    char count_cmd[600], out[64];
    snprintf(count_cmd, sizeof count_cmd, "grep -c '^sync .*/topics/fs/' %s", shim_log);
    e2e_run(count_cmd, out, sizeof out);
    long before = atol(out);
    uint8_t val[] = {0x63, 'a', 'b', 'c'};
    kr_event_out_spec ev = {
        .key = "k", .key_len = 1, .key_is_text = true, .value = val, .value_len = sizeof val};
    kr_buf_reset(&b);
    kr_enc_publish(&b, (kr_cid){0}, KR_ACK_SYNC, &ev, 1);
    /* Every connection keeps WINDOW sync publishes in flight. */
    int sent[CONNS] = {0}, got[CONNS] = {0}, total = 0;
    for (int i = 0; i < CONNS; i++)
        for (; sent[i] < WINDOW; sent[i]++)
            assert_int_equal(krappy_send(c[i], KRAPPY_T_PUBLISH, b.data, b.len), KRAPPY_OK);
    while (total < CONNS * BATCHES) {
        for (int i = 0; i < CONNS; i++) {
            if (got[i] == BATCHES)
                continue;
            krappy_frame f;
            assert_int_equal(krappy_recv(c[i], &f), KRAPPY_OK);
            assert_int_equal(f.type, KRAPPY_T_OK);
            got[i]++;
            total++;
            if (sent[i] < BATCHES) {
                assert_int_equal(krappy_send(c[i], KRAPPY_T_PUBLISH, b.data, b.len), KRAPPY_OK);
                sent[i]++;
            }
        }
    }
    e2e_run(count_cmd, out, sizeof out);
    long fsyncs = atol(out) - before;
    print_message("      %d sync acks, %ld fdatasync calls on the stream: %.1f acks per fsync\n",
                  total, fsyncs, fsyncs > 0 ? (double)total / (double)fsyncs : 0.0);
    assert_true(fsyncs > 0);
    assert_true(fsyncs < total); /* group commit: fewer syncs than acks */
    for (int i = 0; i < CONNS; i++)
        krappy_client_free(c[i]);
    kr_buf_free(&b);
    assert_int_equal(e2e_stop(&s, 10000), 0);
}

/* ---- faults ---- */

static void test_stream_enospc_and_recovery(void **state)
{
    (void)state;
    if (!e2e_have_shim())
        skip();
    e2e_server s;
    start_shimmed(&s, NULL);
    conn x;
    conn_open(&x, &s);
    reg(&x, "ns");
    uint64_t first;
    assert_int_equal(pub(&x, 0, 10, KR_ACK_WRITE, &first), 0);

    set_faults("write /topics/ns/ ENOSPC\n");
    assert_int_equal(pub(&x, 10, 10, KR_ACK_WRITE, NULL), KRAPPY_E_STORAGE);
    assert_non_null(strstr(krappy_client_errmsg(x.c), "disk is full"));
    assert_int_equal(pub(&x, 10, 10, KR_ACK_SYNC, NULL), KRAPPY_E_STORAGE);
    check_events(&x, "ns", 0, 10); /* reads keep working */

    set_faults(""); /* space is back */
    assert_int_equal(pub(&x, 10, 10, KR_ACK_SYNC, &first), 0);
    assert_int_equal(first, 10); /* the failures took no offsets */
    check_events(&x, "ns", 0, 20);

    /* A short write is finished, never left torn. */
    set_faults("write /topics/ns/ SHORT\n");
    assert_int_equal(pub(&x, 20, 30, KR_ACK_SYNC, &first), 0);
    assert_int_equal(first, 20);
    set_faults("");
    conn_close(&x);
    powercut(&s);
    restart_shimmed(&s, NULL);
    conn_open(&x, &s);
    assert_int_equal(reg(&x, "ns"), 50);
    check_events(&x, "ns", 0, 50);

    /* ack "none": a failure is reported and the connection closed. */
    set_faults("write /topics/ns/ ENOSPC\n");
    kr_event_out_spec ev = {.key = "k",
                            .key_len = 1,
                            .key_is_text = true,
                            .value = (const uint8_t *)"\x61x",
                            .value_len = 2};
    kr_buf_reset(&x.b);
    kr_enc_publish(&x.b, (kr_cid){0}, KR_ACK_NONE, &ev, 1);
    assert_int_equal(krappy_send(x.c, KRAPPY_T_PUBLISH, x.b.data, x.b.len), KRAPPY_OK);
    krappy_frame f;
    assert_int_equal(krappy_recv(x.c, &f), KRAPPY_OK);
    assert_int_equal(f.type, KRAPPY_T_ERROR);
    assert_int_equal(krappy_reply_error(x.c, &f), KRAPPY_E_STORAGE);
    assert_int_not_equal(krappy_recv(x.c, &f), KRAPPY_OK); /* then closed */
    set_faults("");
    conn_close(&x);
    assert_int_equal(e2e_stop(&s, 10000), 0);
}

static void test_fdatasync_failures(void **state)
{
    (void)state;
    if (!e2e_have_shim())
        skip();
    e2e_server s;
    start_shimmed(&s, NULL);
    conn x;
    conn_open(&x, &s);
    reg(&x, "fs");
    assert_int_equal(pub(&x, 0, 10, KR_ACK_WRITE, NULL), 0);
    /* One failed fdatasync: the writer rewrites from memory and syncs again;
     * the ack is good and the data survives a power cut. */
    set_faults("sync /topics/fs/ EIO times=1\n");
    uint64_t first;
    assert_int_equal(pub(&x, 10, 10, KR_ACK_SYNC, &first), 0);
    set_faults("");
    conn_close(&x);
    powercut(&s);
    restart_shimmed(&s, NULL);
    conn_open(&x, &s);
    assert_int_equal(reg(&x, "fs"), 20);
    check_events(&x, "fs", 0, 20);

    /* fdatasync keeps failing: sync acks fail, then recover. */
    set_faults("sync /topics/fs/ EIO\n");
    assert_int_equal(pub(&x, 20, 10, KR_ACK_SYNC, NULL), KRAPPY_E_STORAGE);
    set_faults("");
    uint64_t next = reg(&x, "fs");
    assert_int_equal(pub(&x, next, 10, KR_ACK_SYNC, &first), 0);
    assert_int_equal(first, next);
    conn_close(&x);
    powercut(&s);
    restart_shimmed(&s, NULL);
    conn_open(&x, &s);
    uint64_t after = reg(&x, "fs");
    assert_true(after >= next + 10);
    check_events(&x, "fs", 0, 20);
    check_events(&x, "fs", next, next + 10);
    conn_close(&x);
    assert_int_equal(e2e_stop(&s, 10000), 0);
}

/* RocksDB's writes fail: checkpoints fail and are retried after a reopen;
 * publishes and GETs go on through the overlay meanwhile. */
static void test_view_write_failures(void **state)
{
    (void)state;
    if (!e2e_have_shim())
        skip();
    e2e_server s;
    const char *args[] = {"--checkpoint-interval", "50ms", NULL};
    start_shimmed(&s, args);
    conn x;
    conn_open(&x, &s);
    reg(&x, "vw");
    set_faults("write,sync /view/ ENOSPC\n");
    for (int i = 0; i < 5; i++) {
        assert_int_equal(pub(&x, (uint64_t)i * 10, 10, KR_ACK_WRITE, NULL), 0);
        usleep(60 * 1000);
    }
    kr_buf_reset(&x.b);
    kr_enc_get(&x.b, (kr_cid){0}, "vw", "key3", 4);
    assert_int_equal(conn_call(&x, KRAPPY_T_GET), 0);
    set_faults("");
    usleep(400 * 1000); /* a checkpoint succeeds */
    check_view_not_ahead(&x, "vw", 50);
    conn_close(&x);
    kill(s.pid, SIGKILL);
    waitpid(s.pid, NULL, 0);
    s.pid = 0;
    restart_shimmed(&s, args);
    conn_open(&x, &s);
    kr_buf_reset(&x.b);
    kr_enc_get(&x.b, (kr_cid){0}, "vw", "key3", 4);
    assert_int_equal(conn_call(&x, KRAPPY_T_GET), 0);
    conn_close(&x);
    char cmd[600], out[64];
    snprintf(cmd, sizeof cmd, "grep -c 'checkpoint failed' %s", s.log_path);
    assert_int_equal(e2e_run(cmd, out, sizeof out), 0);
    assert_int_equal(e2e_stop(&s, 10000), 0);
}

/* Every key a SCAN of the whole topic returns, with its value's text,
 * page by page (`limit` a page), into out ("key=value;..."). */
static void scan_all(conn *x, const char *topic, uint64_t limit, char *out, size_t len,
                     uint64_t *snapshot)
{
    krappy_scan *sc = NULL;
    assert_int_equal(krappy_scan_begin(x->c, topic, NULL, 0, NULL, 0, limit, &sc), KRAPPY_OK);
    out[0] = '\0';
    *snapshot = krappy_scan_snapshot(sc);
    int pages = 0;
    for (;;) {
        size_t n;
        const krappy_event *e = krappy_scan_entries(sc, &n);
        assert_true(n <= limit);
        for (size_t i = 0; i < n; i++) {
            const char *text;
            size_t tlen;
            assert_int_equal(krappy_cbor_text(e[i].value, e[i].value_len, &text, &tlen), 1);
            size_t at = strlen(out);
            snprintf(out + at, len - at, "%.*s=%.*s;", (int)e[i].key_len, (const char *)e[i].key,
                     (int)tlen, text);
        }
        pages++;
        if (!krappy_scan_more(sc))
            break;
        assert_int_equal(krappy_scan_next_page(x->c, sc), KRAPPY_OK);
        assert_int_equal(krappy_scan_snapshot(sc), *snapshot); /* one view */
    }
    krappy_scan_free(sc);
    assert_true(pages > 1 || limit > 10);
}

/* Publish one event key=value (value NULL: a tombstone). */
static void put(conn *x, const char *key, const char *value)
{
    kr_buf vb;
    kr_buf_init(&vb, 64);
    if (value != NULL)
        kr_cbor_put_cstr(&vb, value);
    kr_event_out_spec ev = {.key = key,
                            .key_len = strlen(key),
                            .key_is_text = true,
                            .value = value != NULL ? vb.data : NULL,
                            .value_len = vb.len};
    kr_buf_reset(&x->b);
    kr_enc_publish(&x->b, (kr_cid){0}, KR_ACK_WRITE, &ev, 1);
    assert_int_equal(conn_call(x, KRAPPY_T_PUBLISH), 0);
    kr_buf_free(&vb);
}

/*
 * SCAN needs a checkpoint first when the view lacks recent events; when
 * none can be written (the checkpoint file cannot be), it still answers
 * (issue 12: reads never depend on writing a checkpoint): the view of the
 * last checkpoint and the newer keys over it, newer values winning,
 * tombstones hiding keys, in order, across pages, one snapshot.
 */
static void test_scan_without_checkpoint(void **state)
{
    (void)state;
    if (!e2e_have_shim())
        skip();
    e2e_server s;
    const char *args[] = {"--checkpoint-interval", "50ms", NULL};
    start_shimmed(&s, args);
    conn x;
    conn_open(&x, &s);
    reg(&x, "sc");
    const char *keys[] = {"a", "b", "c", "d", "e", "f", "g"};
    for (int i = 0; i < 7; i++)
        put(&x, keys[i], "old");
    usleep(300 * 1000); /* checkpointed */
    set_faults("write,open view.ingest ENOSPC\n");
    put(&x, "c", NULL);   /* deleted */
    put(&x, "e", "new");  /* changed */
    put(&x, "bb", "new"); /* added, between two old keys */
    put(&x, "zz", "new"); /* added, after them all */
    put(&x, "g", NULL);   /* the last old key deleted */
    usleep(200 * 1000);   /* checkpoints fail meanwhile */
    char got[512];
    uint64_t snapshot;
    scan_all(&x, "sc", 2, got, sizeof got, &snapshot);
    assert_string_equal(got, "a=old;b=old;bb=new;d=old;e=new;f=old;zz=new;");
    assert_int_equal(snapshot, 12);
    scan_all(&x, "sc", 100, got, sizeof got, &snapshot);
    assert_string_equal(got, "a=old;b=old;bb=new;d=old;e=new;f=old;zz=new;");
    kr_buf_reset(&x.b);
    kr_enc_get(&x.b, (kr_cid){0}, "sc", "a", 1); /* the view still reads */
    assert_int_equal(conn_call(&x, KRAPPY_T_GET), 0);
    set_faults("");
    usleep(300 * 1000); /* a checkpoint succeeds */
    scan_all(&x, "sc", 2, got, sizeof got, &snapshot);
    assert_string_equal(got, "a=old;b=old;bb=new;d=old;e=new;f=old;zz=new;");
    conn_close(&x);
    char cmd[600], out[64];
    snprintf(cmd, sizeof cmd, "grep -c 'checkpoint failed' %s", s.log_path);
    assert_int_equal(e2e_run(cmd, out, sizeof out), 0);
    assert_int_equal(e2e_stop(&s, 10000), 0);
}

/*
 * While checkpoints fail (a directory sits where the checkpoint's table
 * file goes), the overlays hold at most --overlay-bytes: past it a PUBLISH
 * is refused with STORAGE saying why and what to do, nothing of it stored,
 * and the CLI ends with that sentence; what was taken stays readable. Once
 * the file can be made, a SCAN's checkpoint succeeds (it does not wait for
 * the backed-off retry) and PUBLISH is taken again.
 */
static void test_view_full_refuses_publish(void **state)
{
    (void)state;
    e2e_server s;
    const char *args[] = {"--checkpoint-interval", "50ms", "--overlay-bytes", "1M", NULL};
    assert_int_equal(e2e_start(&s, args), 0);
    char ingest[400], cmd[1400], out[8192];
    snprintf(ingest, sizeof ingest, "%s/data/view.ingest", s.dir);
    assert_int_equal(mkdir(ingest, 0755), 0);
    /* 40,000 new keys of 100-byte values: some 6 MiB of overlay. */
    char target[64];
    snprintf(target, sizeof target, "-p %s", s.port);
    e2e_produce_new_keys_cmd(cmd, sizeof cmd, 40000, "k", target, "vf");
    assert_int_not_equal(e2e_run(cmd, out, sizeof out), 0);
    assert_non_null(strstr(out, "nothing was stored"));
    assert_non_null(strstr(out, "publish again once one succeeds"));
    assert_true(e2e_logged(&s, "checkpoint failed"));
    /* Still serving: what was taken reads back, and a PUBLISH is refused. */
    snprintf(cmd, sizeof cmd, "%s -p %s get vf k0 2>&1", e2e_cli(), s.port);
    assert_int_equal(e2e_run(cmd, out, sizeof out), 0);
    snprintf(cmd, sizeof cmd, "%s -p %s produce vf late=1 2>&1", e2e_cli(), s.port);
    assert_int_not_equal(e2e_run(cmd, out, sizeof out), 0);
    assert_non_null(strstr(out, "nothing was stored"));
    assert_int_equal(rmdir(ingest), 0);
    snprintf(cmd, sizeof cmd,
             "%s -p %s scan vf --limit 1 >/dev/null 2>&1 && "
             "%s -p %s produce vf late=1 2>&1",
             e2e_cli(), s.port, e2e_cli(), s.port);
    assert_int_equal(e2e_run(cmd, out, sizeof out), 0);
    snprintf(cmd, sizeof cmd, "%s -p %s get vf late 2>&1", e2e_cli(), s.port);
    assert_int_equal(e2e_run(cmd, out, sizeof out), 0);
    assert_non_null(strstr(out, "1"));
    assert_true(e2e_logged(&s, "checkpoints succeed again"));
    assert_int_equal(e2e_stop(&s, 10000), 0);
}

int main(void)
{
    signal(SIGPIPE, SIG_IGN);
    if (e2e_external_addr() != NULL) {
        printf("e2e_faults: needs its own servers; skipped with KRAPPY_E2E_ADDR\n");
        return 0;
    }
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_power_cuts),
        cmocka_unit_test(test_sync_acks_share_fsyncs),
        cmocka_unit_test(test_stream_enospc_and_recovery),
        cmocka_unit_test(test_fdatasync_failures),
        cmocka_unit_test(test_view_write_failures),
        cmocka_unit_test(test_scan_without_checkpoint),
        cmocka_unit_test(test_view_full_refuses_publish),
    };
    return cmocka_run_group_tests_name("e2e_faults", tests, NULL, NULL);
}
