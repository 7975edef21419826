/*
 * e2e/e2e_compact.c - topic settings and log compaction (issue 16,
 * PROTOCOL.md section 9) against a real krappyd: TOPIC_CONFIG through
 * libkrappy and the CLI (refusals change nothing; settings survive a
 * restart); a compacted topic of overwrites and tombstones checked by the
 * invariant - FETCH from the first offset yields each live key's latest
 * event exactly as GET returns it, in offset order, and no deleted key is
 * alive in it - with kill -9 and power cuts (the fault shim) stalled at
 * each step of a rewrite (writing, syncing, renaming, deleting a merged
 * segment) and at random moments.
 */
#include <dirent.h>
#include <sched.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "harness.h"
#include "krappy/client.h"

#define NKEYS 40

/* What the test wrote: each key's latest value ("" when deleted). */
typedef struct model {
    char value[NKEYS][32];
    bool written[NKEYS];
    int round;
} model;

static krappy_client *client(const e2e_server *s)
{
    krappy_opts o = {.timeout_ms = 30000};
    krappy_client *c = krappy_client_new(&o);
    assert_non_null(c);
    assert_int_equal(krappy_connect(c, s->host, s->port), KRAPPY_OK);
    return c;
}

/* One round: every key written `per` times (the last write wins), then a
 * few keys deleted, then some events without a key; all acknowledged
 * "sync", so that they survive a power cut. */
static void write_round(krappy_client *c, const char *topic, model *m, int per)
{
    uint64_t next;
    assert_int_equal(krappy_register_producer(c, topic, "e2e-compact", &next), KRAPPY_OK);
    krappy_batch *b = krappy_batch_new();
    for (int p = 0; p < per; p++) {
        for (int k = 0; k < NKEYS; k++) {
            char key[16], v[32];
            snprintf(key, sizeof key, "k%d", k);
            snprintf(v, sizeof v, "r%d-%d-%d", m->round, p, k);
            assert_int_equal(
                krappy_batch_add_text(b, KRAPPY_KEY_TEXT, key, strlen(key), v, strlen(v)),
                KRAPPY_OK);
            snprintf(m->value[k], sizeof m->value[k], "%s", v);
            m->written[k] = true;
        }
        krappy_publish_result r;
        assert_int_equal(krappy_publish(c, b, KRAPPY_ACK_SYNC, &r), KRAPPY_OK);
        krappy_batch_reset(b);
    }
    for (int k = m->round % 5; k < NKEYS; k += 9) {
        char key[16];
        snprintf(key, sizeof key, "k%d", k);
        assert_int_equal(krappy_batch_add(b, KRAPPY_KEY_TEXT, key, strlen(key), NULL, 0),
                         KRAPPY_OK);
        m->value[k][0] = '\0';
    }
    for (int i = 0; i < 3; i++)
        assert_int_equal(krappy_batch_add_text(b, KRAPPY_KEY_NONE, NULL, 0, "streamed", 8),
                         KRAPPY_OK);
    krappy_publish_result r;
    assert_int_equal(krappy_publish(c, b, KRAPPY_ACK_SYNC, &r), KRAPPY_OK);
    krappy_batch_free(b);
    m->round++;
}

/* A CBOR text value as a C string (the test's values are short text). */
static void text_of(const uint8_t *v, size_t n, char *out, size_t cap)
{
    out[0] = '\0';
    if (n == 0 || (v[0] & 0xe0) != 0x60 || (v[0] & 0x1f) >= 24 || (size_t)(v[0] & 0x1f) + 1 > n)
        return;
    size_t len = v[0] & 0x1f;
    if (len >= cap)
        len = cap - 1;
    memcpy(out, v + 1, len);
    out[len] = '\0';
}

/*
 * The invariant and the model: FETCH everything from the first offset
 * (offsets ascending, none twice); for each key the last event of the
 * stream is the model's value (a tombstone, or no event at all, for a
 * deleted key) and GET answers the same. @return the events fetched.
 */
static size_t check(const e2e_server *s, const char *topic, const model *m)
{
    krappy_client *c = client(s);
    krappy_topic_stats *st;
    assert_int_equal(krappy_stats(c, topic, NULL, &st), KRAPPY_OK);
    uint64_t at = st->first, end = st->next;
    krappy_topic_stats_free(st);
    static char last[NKEYS][32];
    static bool seen[NKEYS];
    memset(seen, 0, sizeof seen);
    size_t n = 0;
    uint64_t prev = 0;
    bool any = false;
    for (int guard = 0; guard < 100000 && at < end; guard++) {
        krappy_events *ev;
        krappy_err fe = krappy_fetch(c, topic, at, 500, 0, 0, &ev);
        if (fe != KRAPPY_OK)
            fail_msg("FETCH %s from %llu: %s", topic, (unsigned long long)at,
                     krappy_client_errmsg(c));
        if (ev->count == 0) {
            krappy_events_free(ev);
            break;
        }
        for (size_t i = 0; i < ev->count; i++) {
            const krappy_event *e = &ev->events[i];
            if (any && e->offset <= prev)
                fail_msg("offset %llu after %llu", (unsigned long long)e->offset,
                         (unsigned long long)prev);
            prev = e->offset;
            any = true;
            n++;
            if (!e->has_key)
                continue;
            char key[16] = {0};
            memcpy(key, e->key, e->key_len < 15 ? e->key_len : 15);
            int k = atoi(key + 1);
            assert_true(k >= 0 && k < NKEYS);
            seen[k] = true;
            if (e->is_tombstone)
                last[k][0] = '\0';
            else
                text_of(e->value, e->value_len, last[k], sizeof last[k]);
        }
        at = ev->next;
        krappy_events_free(ev);
    }
    for (int k = 0; k < NKEYS; k++) {
        if (!m->written[k])
            continue;
        char key[16];
        snprintf(key, sizeof key, "k%d", k);
        krappy_value *v = NULL;
        krappy_err e = krappy_get(c, topic, key, strlen(key), &v);
        if (m->value[k][0] == '\0') {
            assert_int_equal(e, KRAPPY_E_NOT_FOUND);
            if (seen[k] && last[k][0] != '\0')
                fail_msg("deleted key %s is alive in the stream as %s", key, last[k]);
            continue;
        }
        assert_int_equal(e, KRAPPY_OK);
        char got[32];
        text_of(v->value, v->value_len, got, sizeof got);
        assert_string_equal(got, m->value[k]);
        if (!seen[k] || strcmp(last[k], m->value[k]) != 0)
            fail_msg("key %s: FETCH from the first offset ends with '%s', GET says '%s'", key,
                     seen[k] ? last[k] : "(nothing)", got);
        krappy_value_free(v);
    }
    krappy_client_free(c);
    return n;
}

static int count_files(const e2e_server *s, const char *topic, const char *suffix)
{
    char path[512];
    snprintf(path, sizeof path, "%s/data/topics/%s", s->dir, topic);
    DIR *d = opendir(path);
    int n = 0;
    struct dirent *e;
    while (d != NULL && (e = readdir(d)) != NULL) {
        size_t l = strlen(e->d_name), sl = strlen(suffix);
        n += l > sl && strcmp(e->d_name + l - sl, suffix) == 0;
    }
    if (d != NULL)
        closedir(d);
    return n;
}

/* Compaction's figures from STATS (the CLI's --json has them not). */
static uint64_t rewritten(const e2e_server *s, const char *topic)
{
    krappy_client *c = client(s);
    krappy_topic_stats *st;
    assert_int_equal(krappy_stats(c, topic, NULL, &st), KRAPPY_OK);
    assert_true(st->has_config);
    uint64_t n = st->has_compaction ? st->segments_rewritten : 0;
    krappy_topic_stats_free(st);
    krappy_client_free(c);
    return n;
}

static void configure(const e2e_server *s, const char *topic)
{
    krappy_client *c = client(s);
    const char *set[] = {"cleanup=compact", "segment_bytes=4K", "delete_retention_ms=0",
                         "segment_ms=200"};
    krappy_topic_settings ts;
    assert_int_equal(krappy_topic_config(c, topic, set, 4, &ts), KRAPPY_OK);
    assert_int_equal(ts.cleanup, KRAPPY_CLEANUP_COMPACT);
    krappy_client_free(c);
}

/* Wait (bounded) until compaction rewrote at least `want` segments. */
static void wait_rewritten(const e2e_server *s, const char *topic, uint64_t want)
{
    uint64_t t0 = e2e_now_ms();
    while (rewritten(s, topic) < want && e2e_now_ms() - t0 < 20000)
        usleep(50000);
    assert_true(rewritten(s, topic) >= want);
}

static const char *const fast[] = {"--checkpoint-interval", "50ms", NULL};

/* TOPIC_CONFIG end to end: reading a missing topic, creating one with
 * settings, refusals that change nothing, the server's flags as defaults,
 * a restart, the CLI. */
static void test_topic_config(void **state)
{
    (void)state;
    e2e_server s;
    const char *args[] = {"--cleanup", "compact,delete", "--segment-ms", "1h", NULL};
    assert_int_equal(e2e_start(&s, args), 0);
    krappy_client *c = client(&s);
    krappy_topic_settings ts;
    assert_int_equal(krappy_topic_config(c, "cfg", NULL, 0, &ts), KRAPPY_E_NO_SUCH_TOPIC);
    const char *set[] = {"retention_ms=7d", "segment_bytes=1M"};
    assert_int_equal(krappy_topic_config(c, "cfg", set, 2, &ts), KRAPPY_OK);
    assert_int_equal(ts.cleanup, KRAPPY_CLEANUP_COMPACT | KRAPPY_CLEANUP_DELETE); /* the flag */
    assert_int_equal(ts.segment_ms, 3600000);
    assert_int_equal(ts.retention_ms, 7ull * 86400000);
    assert_int_equal(ts.segment_bytes, 1u << 20);
    /* A value out of range from a client that did not check: refused,
     * nothing of the request changed. */
    int fd = e2e_connect(&s);
    kr_buf b;
    kr_buf_init(&b, 4096);
    kr_topic_config bad = {.mask = (1u << KR_TC_SEGMENT_MS) | (1u << KR_TC_SEGMENT_BYTES)};
    bad.v[KR_TC_SEGMENT_MS] = 5;
    bad.v[KR_TC_SEGMENT_BYTES] = 8192;
    kr_enc_topic_config(&b, (kr_cid){0}, "cfg", &bad);
    assert_int_equal(e2e_send_frame(fd, KRAPPY_T_TOPIC_CONFIG, b.data, b.len), 0);
    char msg[256];
    assert_int_equal(e2e_expect_error(fd, KRAPPY_E_INVALID_ARGUMENT, msg, sizeof msg), 0);
    assert_non_null(strstr(msg, "segment_ms"));
    kr_buf_free(&b);
    close(fd);
    assert_int_equal(krappy_topic_config(c, "cfg", NULL, 0, &ts), KRAPPY_OK);
    assert_int_equal(ts.segment_bytes, 1u << 20);
    krappy_topic_stats *st;
    assert_int_equal(krappy_stats(c, "cfg", NULL, &st), KRAPPY_OK);
    assert_true(st->has_config);
    assert_int_equal(st->config.retention_ms, 7ull * 86400000);
    krappy_topic_stats_free(st);
    krappy_client_free(c);

    /* A restart with other flags: the topic keeps what it set. */
    assert_int_equal(e2e_stop_keep(&s, 10000), 0);
    const char *args2[] = {"--cleanup", "delete", NULL};
    assert_int_equal(e2e_restart(&s, args2), 0);
    char out[2048];
    char cmd[512];
    snprintf(cmd, sizeof cmd, "%s -h 127.0.0.1 -p %s topic-config cfg", e2e_cli(), s.port);
    assert_int_equal(e2e_run(cmd, out, sizeof out), 0);
    assert_non_null(strstr(out, "cleanup              delete"));
    assert_non_null(strstr(out, "retention_ms         604800000"));
    assert_non_null(strstr(out, "segment_bytes        1048576"));
    snprintf(cmd, sizeof cmd, "%s -h 127.0.0.1 -p %s topic-config cfg --set colour=red 2>&1",
             e2e_cli(), s.port);
    assert_true(e2e_run(cmd, out, sizeof out) != 0);
    assert_non_null(strstr(out, "colour=red"));

    /* --reset (a null in `set`): the topic's own value goes, the flag
     * applies - also after a restart with another flag. */
    snprintf(cmd, sizeof cmd,
             "%s -h 127.0.0.1 -p %s topic-config cfg --reset retention_ms --set "
             "segment_bytes=default --set segment_ms=5s",
             e2e_cli(), s.port);
    assert_int_equal(e2e_run(cmd, out, sizeof out), 0);
    assert_non_null(strstr(out, "retention_ms         0\n"));
    assert_null(strstr(out, "segment_bytes        1048576"));
    assert_non_null(strstr(out, "segment_ms           5000"));
    assert_int_equal(e2e_stop_keep(&s, 10000), 0);
    const char *args3[] = {"--retention-ms", "2h", NULL};
    assert_int_equal(e2e_restart(&s, args3), 0);
    c = client(&s);
    assert_int_equal(krappy_topic_config(c, "cfg", NULL, 0, &ts), KRAPPY_OK);
    assert_int_equal(ts.retention_ms, 2ull * 3600000);
    assert_int_equal(ts.segment_ms, 5000);
    /* Resetting what the topic does not set changes nothing. */
    const char *again[] = {"retention_ms=default"};
    assert_int_equal(krappy_topic_config(c, "cfg", again, 1, &ts), KRAPPY_OK);
    assert_int_equal(ts.retention_ms, 2ull * 3600000);
    krappy_client_free(c);
    assert_int_equal(e2e_stop(&s, 10000), 0);
}

/* A compacted topic: the invariant before and after compaction and after
 * a restart; the disk shrinks; a consumer group reads what is left. */
static void test_compaction(void **state)
{
    (void)state;
    e2e_server s;
    assert_int_equal(e2e_start(&s, fast), 0);
    configure(&s, "kv");
    krappy_client *c = client(&s);
    model m = {0};
    for (int r = 0; r < 6; r++)
        write_round(c, "kv", &m, 8);
    krappy_client_free(c);
    size_t before = check(&s, "kv", &m);
    wait_rewritten(&s, "kv", 4);
    /* segment_ms rolls the last one; another pass takes it (bounded: a
     * loaded machine gives the compaction thread little time). */
    size_t after = check(&s, "kv", &m);
    for (uint64_t t0 = e2e_now_ms(); after >= before / 3 && e2e_now_ms() - t0 < 20000;) {
        usleep(100000);
        after = check(&s, "kv", &m);
    }
    assert_true(after < before / 3);
    char cmd[512], out[4096];
    snprintf(cmd, sizeof cmd, "%s -h 127.0.0.1 -p %s stats kv", e2e_cli(), s.port);
    assert_int_equal(e2e_run(cmd, out, sizeof out), 0);
    assert_non_null(strstr(out, "cleanup  compact"));
    assert_non_null(strstr(out, "segments rewritten"));
    snprintf(cmd, sizeof cmd, "%s -h 127.0.0.1 -p %s --json stats kv", e2e_cli(), s.port);
    assert_int_equal(e2e_run(cmd, out, sizeof out), 0);
    assert_non_null(strstr(out, "\"config\":{\"cleanup\":\"compact\""));
    assert_non_null(strstr(out, "\"reclaimed_bytes\":"));
    assert_int_equal(e2e_stop_keep(&s, 10000), 0);
    assert_int_equal(e2e_restart(&s, fast), 0);
    assert_true(check(&s, "kv", &m) <= after);
    assert_int_equal(e2e_stop(&s, 10000), 0);
}

/*
 * kill -9 or a power cut with a rewrite stalled at one step (the shim
 * delays that call): after the restart the topic is whole - the invariant
 * holds, no *.compact file is left, every "sync"-acknowledged write is
 * there. Steps: writing the new file, its fdatasync, the rename, and the
 * deletion of a segment a merge took in. make test crashes each step one
 * way (a power cut after the sync and the rename, kill -9 after the write
 * and the unlink); KRAPPY_E2E_TORTURE=1 both ways.
 */
static void test_crash_at_each_step(void **state)
{
    (void)state;
    if (!e2e_have_shim())
        skip();
    static const char *const rules[] = {
        "write .compact DELAY ms=30000 times=1\n",
        "sync .compact DELAY ms=30000 times=1\n",
        "rename .compact DELAY ms=30000 times=1\n",
        "unlink .seg DELAY ms=30000 times=1\n",
    };
    for (size_t i = 0; i < sizeof rules / sizeof rules[0]; i++) {
        for (int power = 0; power < 2; power++) {
            if (!e2e_torture() && power != (i == 1 || i == 2))
                continue;
            e2e_server s;
            assert_int_equal(e2e_start_shimmed(&s, fast), 0);
            configure(&s, "kv");
            krappy_client *c = client(&s);
            model m = {0};
            write_round(c, "kv", &m, 6);
            /* A stall holds every other tracked call too (the shim's DELAY,
             * as on a stalled disk), so a write round would wait it out (as
             * long as the client's timeout) and the kill come after it: the
             * step is stalled only once the rounds are in. A rewrite still
             * follows - segment_ms rolls the last segment, and its rewrite
             * merges its compacted neighbours. */
            for (int r = 0; r < 4; r++)
                write_round(c, "kv", &m, 6);
            assert_int_equal(e2e_shim_faults(&s, rules[i]), 0);
            krappy_client_free(c);
            /* Wait for the stall (the shim logs each fault it fires). */
            char path[512], out[256];
            snprintf(path, sizeof path, "grep -c '^fault' %s/shim.log", s.dir);
            uint64_t t0 = e2e_now_ms();
            while (e2e_run(path, out, sizeof out) != 0 && e2e_now_ms() - t0 < 20000)
                usleep(20000);
            if (atoi(out) < 1)
                fail_msg("the rule '%.40s' never fired", rules[i]);
            if (power)
                assert_int_equal(e2e_powercut(&s), 0);
            else
                e2e_kill9(&s);
            assert_int_equal(e2e_shim_faults(&s, ""), 0);
            int left = count_files(&s, "kv", ".compact");
            assert_int_equal(e2e_restart_shimmed(&s, fast), 0);
            check(&s, "kv", &m);
            /* (Counting them now would race with the next rewrite's.) */
            if (left > 0)
                assert_true(e2e_logged(&s, "unfinished compaction output removed"));
            /* Stalled deleting a merged segment, after the rename: start-up
             * deleted it (it would serve its offsets twice). */
            if (strstr(rules[i], "unlink") != NULL && !power)
                assert_true(e2e_logged(&s, "segment merged by an interrupted compaction removed"));
            /* And compaction goes on from there. */
            c = client(&s);
            write_round(c, "kv", &m, 6);
            krappy_client_free(c);
            wait_rewritten(&s, "kv", 1);
            check(&s, "kv", &m);
            assert_int_equal(e2e_stop(&s, 10000), 0);
        }
    }
}

/* kill -9 at random moments while compaction runs, throttled so that a
 * rewrite is often in flight: 4 of them, 30 with KRAPPY_E2E_TORTURE=1. */
static void test_kill9_random(void **state)
{
    (void)state;
    e2e_server s;
    const char *args[] = {"--checkpoint-interval", "50ms", "--compact-rate", "256K", NULL};
    assert_int_equal(e2e_start(&s, args), 0);
    configure(&s, "kv");
    model m = {0};
    unsigned seed = (unsigned)time(NULL);
    int rounds = e2e_torture() ? 30 : 4;
    for (int r = 0; r < rounds; r++) {
        krappy_client *c = client(&s);
        write_round(c, "kv", &m, 5);
        krappy_client_free(c);
        usleep((useconds_t)(rand_r(&seed) % 400000));
        e2e_kill9(&s);
        int left = count_files(&s, "kv", ".compact");
        assert_int_equal(e2e_restart(&s, args), 0);
        check(&s, "kv", &m);
        if (left > 0)
            assert_true(e2e_logged(&s, "unfinished compaction output removed"));
    }
    printf("e2e_compact: %d kill -9s during compaction (seed %u)\n", rounds, seed);
    assert_int_equal(e2e_stop(&s, 10000), 0);
}

/* The scheduling policy (sched_getscheduler) of process pid's thread named
 * comm, or -1 when no thread has that name. */
static int thread_policy(pid_t pid, const char *comm)
{
    pid_t tid = e2e_thread_named(pid, comm);
    return tid < 0 ? -1 : sched_getscheduler(tid);
}

/* --compact-priority: the compaction thread under SCHED_IDLE by default,
 * under SCHED_OTHER with "normal". */
static void test_priority(void **state)
{
    (void)state;
    e2e_server s;
    assert_int_equal(e2e_start(&s, NULL), 0);
    assert_int_equal(thread_policy(s.pid, "kr-compact"), SCHED_IDLE);
    assert_int_equal(thread_policy(s.pid, "kr-writer"), SCHED_OTHER);
    const char *normal[] = {"--compact-priority", "normal", NULL};
    assert_int_equal(e2e_stop_keep(&s, 10000), 0);
    assert_int_equal(e2e_restart(&s, normal), 0);
    assert_int_equal(thread_policy(s.pid, "kr-compact"), SCHED_OTHER);
    assert_int_equal(e2e_stop(&s, 10000), 0);
}

int main(void)
{
    signal(SIGPIPE, SIG_IGN);
    if (e2e_external_addr() != NULL) {
        printf("e2e_compact: starts and kills its own servers; skipped with KRAPPY_E2E_ADDR\n");
        return 0;
    }
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_topic_config),       cmocka_unit_test(test_compaction),
        cmocka_unit_test(test_crash_at_each_step), cmocka_unit_test(test_kill9_random),
        cmocka_unit_test(test_priority),
    };
    return cmocka_run_group_tests_name("e2e_compact", tests, NULL, NULL);
}
