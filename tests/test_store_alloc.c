/*
 * tests/test_store_alloc.c - the store under allocation failure.
 *
 * krappy's own calls to malloc, calloc, realloc, strdup and anonymous
 * mmap go through the counting allocator of tests/alloc_fail.h (RocksDB's
 * and libevent's allocations are not counted: they are not ours to
 * handle; the writer thread's are). A run of a
 * scenario with the wrapper armed at n fails the n-th allocation, and only
 * that one; n goes 1, 2, ... until a run gets through without meeting its
 * failure. Every run must end cleanly: each step that fails says why in a
 * sentence, nothing crashes, the store closes, and under ASan
 * LeakSanitizer finds nothing left behind after each run.
 *
 * Two scenarios: a fresh data directory driven through every kind of
 * storage job and read (register, publish, GET, FETCH, checkpoint, a
 * consumer group with POLL and ACK, SCAN, retention); and the start-up
 * recovery of a prepared directory (closed segments with and without their
 * index, a torn tail, markers, groups, a replay).
 *
 * KRAPPY_ALLOC_STEP=k tries every k-th n only (a quicker look, e.g. under
 * valgrind).
 */
#include <errno.h>
#include <fcntl.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>
#include <event2/buffer.h>
#include <event2/event.h>
#include <event2/thread.h>

#include "proto/cbor.h"
#include "store/store.h"
#include "store/store_int.h"
#include "util/clock.h"
#include "util/log.h"

#include "alloc_fail.h"
#include "store_env.h"

/* ---- the loop and the data directory ---- */

static struct event_base *base;
static kr_metrics *metrics;
static char root[64]; /* $TMPDIR/krappy-alloc-XXXXXX */
static char work[96]; /* root/NAME: the directory of one run */

static kr_store_opts opts(const char *dir, uint64_t retention)
{
    return (kr_store_opts){.data_dir = dir,
                           .segment_bytes = 2048,
                           .retention_bytes = retention,
                           .checkpoint_ms = 3600000, /* checkpoints by hand */
                           .overlay_bytes = 1u << 20,
                           .max_frame = 1u << 20,
                           .max_events = 1000,
                           .max_publish_events = 1000,
                           .max_wait_ms = 1000,
                           .rocksdb_log_dir = ""};
}

/* How long a step may take before the test calls it stuck. */
#define STEP_MS 3000

/* Drive the loop until *flag, for STEP_MS at most; with s, play the
 * checkpoint tick meanwhile (a checkpoint that could not start waits for
 * it). */
static bool wait_ticking(kr_store *s, const int *flag)
{
    uint64_t until = kr_mono_ms() + STEP_MS;
    for (unsigned i = 0; !*flag; i++) {
        event_base_loop(base, EVLOOP_NONBLOCK);
        if (*flag)
            break;
        if (kr_mono_ms() > until)
            return false;
        if (s != NULL && i % 50 == 49)
            kr_store_checkpoint(s);
        usleep(200);
    }
    return true;
}

static bool wait_for(const int *flag)
{
    return wait_ticking(NULL, flag);
}

/* ---- what a step may end in ---- */

/* A run's outcome: the step that failed (0: none) and its sentence. */
typedef struct outcome {
    int step;
    char why[300];
} outcome;

/* Record that `step` failed with sentence `why`; a failure without a
 * sentence is a defect. @return -1. */
static int step_failed(outcome *o, int step, const char *why)
{
    o->step = step;
    snprintf(o->why, sizeof o->why, "%s", why);
    if (why[0] == '\0')
        fail_msg("step %d failed without saying why", step);
    return -1;
}

/* Wait for an asynchronous step; @return 0 or -1 (recorded). */
static int finish(outcome *o, int step, done *d)
{
    if (!wait_for(&d->calls))
        fail_msg("step %d: no completion within %d ms", step, STEP_MS);
    if (d->res.err != KRAPPY_OK)
        return step_failed(o, step, d->res.msg);
    return 0;
}

/* ---- steps ---- */

static int publish(kr_store *s, kr_topic *t, int n, int nkeys, int step, outcome *o)
{
    kr_event_out_spec ev[64];
    char keys[64][16];
    uint8_t val[24];
    memset(val, 'v', sizeof val);
    val[0] = 0x57; /* a byte string of 23 */
    assert_true(n <= 64);
    for (int j = 0; j < n; j++) {
        snprintf(keys[j], sizeof keys[j], "k%d", j % nkeys);
        ev[j] = (kr_event_out_spec){.key = keys[j],
                                    .key_len = strlen(keys[j]),
                                    .key_is_text = true,
                                    .value = val,
                                    .value_len = sizeof val};
    }
    kr_buf b, scratch;
    kr_request req;
    char msg[256];
    alloc_fail_pause(); /* the request is the client's, not the store's */
    kr_test_publish_request(ev, (size_t)n, &b, &scratch, &req);
    alloc_fail_resume();
    done d = {0};
    uint64_t bad;
    krappy_err rc =
        kr_store_publish(s, t, &req, &scratch, false, NULL, on_done, &d, msg, sizeof msg, &bad);
    int r = rc != KRAPPY_OK ? step_failed(o, step, msg) : finish(o, step, &d);
    kr_buf_free(&b);
    kr_buf_free(&scratch);
    return r;
}

static int get_key(kr_store *s, kr_topic *t, const char *key, int step, outcome *o)
{
    kr_buf b;
    kr_buf_init(&b, 1u << 20);
    char msg[256] = "";
    int rc = kr_store_get(s, t, (const uint8_t *)key, strlen(key), &b, msg, sizeof msg);
    kr_buf_free(&b);
    return rc < 0 ? step_failed(o, step, msg) : 0;
}

static int fetch_all(kr_store *s, kr_topic *t, int step, outcome *o)
{
    kr_fetch_result r;
    char msg[256] = "";
    if (kr_store_fetch(s, t, t->first, 1000, 1u << 20, &r, msg, sizeof msg) != KRAPPY_OK)
        return step_failed(o, step, msg);
    struct evbuffer *out = evbuffer_new();
    if (out == NULL)
        return step_failed(o, step, "out of memory for an evbuffer");
    int rc = kr_store_fetch_emit(s, &r, out, msg, sizeof msg);
    evbuffer_free(out);
    return rc < 0 ? step_failed(o, step, msg) : 0;
}

/* Whatever failed, every event the topic says it has can be read: the
 * loop's idea of the stream matches the files. */
static void verify_stream(kr_store *s, kr_topic *t)
{
    if (t == NULL || !t->ready || t->failed)
        return;
    alloc_fail_pause();
    uint64_t cur = t->first;
    for (int i = 0; i < 1000 && cur < t->next; i++) {
        kr_fetch_result r;
        char msg[256];
        if (kr_store_fetch(s, t, cur, 1000, 1u << 20, &r, msg, sizeof msg) != KRAPPY_OK)
            fail_msg("after the failure, FETCH from %llu: %s", (unsigned long long)cur, msg);
        assert_true(r.count > 0);
        cur = r.next;
    }
    assert_int_equal(cur, t->next);
    alloc_fail_resume();
}

/* A checkpoint that cannot start is retried by the next tick: the test
 * plays the tick. */
static int checkpoint(kr_store *s, kr_topic *t, int step, outcome *o)
{
    for (int i = 0; i < 5 && (t->marker < t->next || t->frozen != NULL); i++) {
        kr_store_checkpoint(s);
        uint64_t until = kr_mono_ms() + STEP_MS;
        do {
            event_base_loop(base, EVLOOP_NONBLOCK);
            usleep(200);
        } while ((t->marker < t->next || s->ckpt_running) && kr_mono_ms() < until);
    }
    if (t->marker < t->next)
        return step_failed(o, step, "");
    return 0;
}

typedef struct scan_done {
    int calls;
    kr_scan_cursor *cur;
    kr_store_result res;
} scan_done;

static void on_scan(void *arg, kr_scan_cursor *cur, const kr_store_result *res)
{
    scan_done *d = arg;
    d->calls++;
    d->cur = cur;
    d->res = *res;
}

static int take_entry(void *arg, const uint8_t *key, size_t klen, const uint8_t *ev, size_t elen)
{
    (void)key;
    (void)klen;
    (void)ev;
    (void)elen;
    ++*(int *)arg;
    return 0;
}

static int scan(kr_store *s, kr_topic *t, int step, outcome *o)
{
    scan_done d = {0};
    kr_store_scan_start(s, t, (const uint8_t *)"k", 1, false, NULL, 0, on_scan, &d);
    if (!wait_ticking(s, &d.calls))
        fail_msg("step %d: the scan never started", step);
    if (d.cur == NULL)
        return step_failed(o, step, d.res.msg);
    char msg[256] = "";
    bool more = true;
    int entries = 0;
    long n = 0;
    while (more && n >= 0)
        n = kr_store_scan_page(s, d.cur, 3, take_entry, &entries, &more, msg, sizeof msg);
    kr_store_scan_end(s, d.cur);
    return n < 0 ? step_failed(o, step, msg) : 0;
}

static int group_round(kr_store *s, kr_topic *t, int step, outcome *o)
{
    kr_join a = {.group = (const uint8_t *)"g", .glen = 1, .start = KR_START_EARLIEST};
    kr_tgroup *tg;
    kr_member *m;
    void *taken = NULL;
    done d = {0};
    char msg[256] = "";
    if (kr_store_group_join(s, t, &a, &tg, &m, &taken, on_done, &d, msg, sizeof msg) != KRAPPY_OK)
        return step_failed(o, step, msg);
    if (finish(o, step, &d) < 0)
        return -1;
    struct evbuffer *ev = evbuffer_new();
    if (ev == NULL)
        return step_failed(o, step, "out of memory for an evbuffer");
    uint64_t count;
    krappy_err rc = kr_store_poll(s, tg, m, 5, 1u << 20, ev, &count, msg, sizeof msg);
    evbuffer_free(ev);
    if (rc != KRAPPY_OK)
        return step_failed(o, step + 1, msg);
    kr_ack_result res;
    kr_store_group_ack_upto(s, tg, m, kr_store_group_frontier(tg), &res);
    free(res.ignored);
    if (res.err != KRAPPY_OK)
        return step_failed(o, step + 1, "out of memory applying the ACK");
    done p = {0};
    kr_store_result pr;
    if (kr_store_group_persist(s, tg, on_done, &p, &pr) < 0)
        return step_failed(o, step + 2, pr.msg);
    if (finish(o, step + 2, &p) < 0)
        return -1;
    kr_store_group_leave(s, tg, m);
    return 0;
}

/* ---- scenarios ---- */

/* A fresh directory through every kind of job and read. */
static void fresh(const char *dir, outcome *o)
{
    kr_store_opts op = opts(dir, 4096);
    kr_store *s = NULL;
    char err[256] = "";
    if (kr_store_open(&op, base, metrics, &s, err, sizeof err) < 0) {
        step_failed(o, 1, err);
        return;
    }
    kr_topic *t = NULL;
    done d = {0};
    kr_store_result res;
    int rc = 0;
    if (kr_store_register(s, (const uint8_t *)"t", 1, &t, on_done, &d, &res) < 0)
        rc = step_failed(o, 2, res.msg);
    else
        rc = finish(o, 2, &d);
    /* Enough batches to roll segments, so retention has some to retire. */
    for (int b = 0; rc == 0 && b < 6; b++)
        rc = publish(s, t, 20 + b, 10, 3, o);
    if (rc == 0)
        rc = get_key(s, t, "k3", 4, o);
    if (rc == 0)
        rc = fetch_all(s, t, 5, o);
    if (rc == 0)
        rc = checkpoint(s, t, 6, o);
    if (rc == 0)
        rc = get_key(s, t, "k4", 7, o); /* from RocksDB, then cached */
    if (rc == 0)
        rc = group_round(s, t, 8, o);
    if (rc == 0)
        rc = publish(s, t, 5, 5, 11, o);
    if (rc == 0)
        rc = scan(s, t, 12, o); /* forces a checkpoint first */
    if (rc == 0)
        rc = checkpoint(s, t, 13, o); /* retention after it */
    verify_stream(s, t);
    kr_store_close(s);
}

/* A directory to recover, made once with the wrapper off: closed segments
 * (the first one's index removed, so it is scanned), a torn tail, a
 * marker behind the stream (events to replay) and a group. */
static void prepare_recovery(const char *dir)
{
    outcome o = {0};
    kr_store_opts op = opts(dir, 0);
    assert_int_equal(mkdir(dir, 0700), 0);
    kr_store *s = kr_test_store_open(&op, base, metrics);
    kr_topic *t;
    done d = {0};
    kr_store_result res;
    assert_int_equal(kr_store_register(s, (const uint8_t *)"t", 1, &t, on_done, &d, &res), 0);
    assert_int_equal(finish(&o, 1, &d), 0);
    for (int b = 0; b < 5; b++)
        assert_int_equal(publish(s, t, 30, 12, 2, &o), 0);
    assert_int_equal(checkpoint(s, t, 3, &o), 0);
    assert_int_equal(group_round(s, t, 4, &o), 0);
    for (int b = 0; b < 3; b++)
        assert_int_equal(publish(s, t, 30, 40, 5, &o), 0);
    assert_true(t->n_segs >= 3);
    /* Stop without the closing checkpoint: leave events to replay. */
    s->ckpt_running = true;
    kr_store_close(s);

    char path[160];
    snprintf(path, sizeof path, "%s/topics/t/00000000000000000000.idx", dir);
    assert_int_equal(unlink(path), 0);
    char cmd[256];
    snprintf(cmd, sizeof cmd, "ls %s/topics/t/*.seg | tail -1", dir);
    FILE *p = popen(cmd, "r");
    assert_non_null(p);
    assert_non_null(fgets(path, sizeof path, p));
    pclose(p);
    path[strcspn(path, "\n")] = '\0';
    int fd = open(path, O_WRONLY | O_APPEND);
    assert_true(fd >= 0);
    assert_int_equal(write(fd, "KRB1 torn", 9), 9);
    close(fd);
}

static void recover(const char *dir, outcome *o)
{
    kr_store_opts op = opts(dir, 0);
    kr_store *s = NULL;
    char err[256] = "";
    if (kr_store_open(&op, base, metrics, &s, err, sizeof err) < 0) {
        step_failed(o, 1, err);
        return;
    }
    kr_topic *t = kr_store_topic(s, (const uint8_t *)"t", 1);
    assert_non_null(t);
    int rc = get_key(s, t, "k30", 2, o);
    if (rc == 0)
        rc = fetch_all(s, t, 3, o);
    verify_stream(s, t);
    kr_store_close(s);
}

/*
 * Run `scenario` with the n-th allocation failing, n = 1, 2, ..., until a
 * run meets no failure. `prepared` (or NULL) is copied to the run's
 * directory first.
 */
static void every_n(const char *name, void (*scenario)(const char *dir, outcome *o),
                    const char *prepared)
{
    const char *e = getenv("KRAPPY_ALLOC_STEP");
    long step = e != NULL && atol(e) > 0 ? atol(e) : 1;
    long n, ended[16] = {0};
    bool through = false;
    snprintf(work, sizeof work, "%s/%s", root, name);
    for (n = 1; !through; n += step) {
        if (n >= 100000)
            fail_msg("%s: still failing at allocation %ld", name, n);
        kr_test_rm_rf(work);
        if (prepared != NULL) {
            char cmd[256];
            snprintf(cmd, sizeof cmd, "cp -a '%s' '%s'", prepared, work);
            assert_int_equal(system(cmd), 0);
        } else {
            assert_int_equal(mkdir(work, 0700), 0);
        }
        outcome o = {0};
        alloc_fail_arm((unsigned long)n);
        scenario(work, &o);
        bool failed = alloc_fail_disarm();
        if (alloc_fail_leaked())
            fail_msg("%s: leaks after the run failing allocation %ld", name, n);
        if (getenv("KRAPPY_ALLOC_VERBOSE") != NULL)
            print_message("[ alloc ] %s: n %ld: step %d: %s\n", name, n, o.step, o.why);
        if (failed) {
            if (o.step > 0 && o.step < 16)
                ended[o.step]++;
            continue;
        }
        /* The whole scenario ran without meeting its failure: then it must
         * have run to its end. */
        if (o.step != 0)
            fail_msg("%s: step %d failed with no allocation failing: %s", name, o.step, o.why);
        through = true;
    }
    print_message("[ alloc ] %s: %ld allocations failed one at a time%s, every run ended "
                  "cleanly; failed steps:",
                  name, n - step - 1, step > 1 ? " (a sample)" : "");
    for (int i = 1; i < 16; i++)
        if (ended[i] > 0)
            print_message(" %d x%ld", i, ended[i]);
    print_message("\n");
}

static void test_fresh(void **state)
{
    (void)state;
    every_n("fresh", fresh, NULL);
}

static void test_recovery(void **state)
{
    (void)state;
    char prepared[96];
    snprintf(prepared, sizeof prepared, "%s/prepared", root);
    prepare_recovery(prepared);
    every_n("recovery", recover, prepared);
}

static int setup(void **state)
{
    (void)state;
    /* Failures are expected by the thousand: log none of them. */
    kr_log_setup((kr_log_level)(KR_LOG_ERROR + 1), KR_LOG_TEXT);
    kr_test_env_up(&base, &metrics, root, sizeof root, "krappy-alloc");
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    kr_test_env_down(base, metrics, root);
    return 0;
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_fresh),
        cmocka_unit_test(test_recovery),
    };
    return cmocka_run_group_tests_name("store_alloc", tests, setup, teardown);
}
