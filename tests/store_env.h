/*
 * tests/store_env.h - what the tests that open a store share: a libevent
 * loop made thread-aware (the storage writer hands rounds back through
 * it), a metrics registry, a scratch directory, and a recorder for the
 * store's completions. Include after cmocka.h.
 */
#ifndef KR_TEST_STORE_ENV_H
#define KR_TEST_STORE_ENV_H

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <event2/event.h>
#include <event2/thread.h>

#include "proto/msg.h"
#include "util/log.h"
#include "util/metrics.h"
#include "store/store.h"
#include "tmpdir.h"

/* Make *base, *metrics and a fresh directory $TMPDIR/PREFIX-XXXXXX in dir
 * (dirlen bytes: keep it short, mkdtemp fails on long paths). */
static inline void kr_test_env_up(struct event_base **base, kr_metrics **metrics, char *dir,
                                  size_t dirlen, const char *prefix)
{
    evthread_use_pthreads();
    snprintf(dir, dirlen, "%s/%s-XXXXXX", kr_test_tmpdir(), prefix);
    assert_non_null(mkdtemp(dir));
    *base = event_base_new();
    *metrics = kr_metrics_new();
    assert_non_null(*base);
    assert_non_null(*metrics);
}

/* Remove a directory and everything in it. */
static inline void kr_test_rm_rf(const char *dir)
{
    char cmd[256];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    assert_int_equal(system(cmd), 0);
}

/* Undo kr_test_env_up. */
static inline void kr_test_env_down(struct event_base *base, kr_metrics *metrics, const char *dir)
{
    kr_test_rm_rf(dir);
    event_base_free(base);
    kr_metrics_free(metrics);
}

/*
 * KR_TEST_STORE_ENV(PREFIX) - a store test's file-scope environment: `dir`
 * ($TMPDIR/PREFIX-XXXXXX, short: mkdtemp fails on long paths), `base` and
 * `metrics`, and the cmocka group's `setup` and `teardown` that make and
 * remove them (the log says errors only).
 */
#define KR_TEST_STORE_ENV(prefix)                                                                  \
    static char dir[64];                                                                           \
    static struct event_base *base;                                                                \
    static kr_metrics *metrics;                                                                    \
    static int setup(void **state)                                                                 \
    {                                                                                              \
        (void)state;                                                                               \
        kr_log_setup(KR_LOG_ERROR, KR_LOG_TEXT);                                                   \
        kr_test_env_up(&base, &metrics, dir, sizeof dir, prefix);                                  \
        return 0;                                                                                  \
    }                                                                                              \
    static int teardown(void **state)                                                              \
    {                                                                                              \
        (void)state;                                                                               \
        kr_test_env_down(base, metrics, dir);                                                      \
        return 0;                                                                                  \
    }

/* Open the store with o, or fail the test saying why. */
static inline kr_store *kr_test_store_open(const kr_store_opts *o, struct event_base *base,
                                           kr_metrics *metrics)
{
    kr_store *s;
    char err[256];
    if (kr_store_open(o, base, metrics, &s, err, sizeof err) < 0)
        fail_msg("open: %s", err);
    return s;
}

/* A decoded PUBLISH (ack "write") of n events, as the server hands it to
 * kr_store_publish: *enc holds the request, *scratch what *req points to
 * (both set up here; the caller frees them). */
static inline void kr_test_publish_request(const kr_event_out_spec *ev, size_t n, kr_buf *enc,
                                           kr_buf *scratch, kr_request *req)
{
    char msg[256];
    kr_buf_init(enc, 1u << 20);
    kr_buf_init(scratch, 1u << 20);
    kr_enc_publish(enc, (kr_cid){0}, KR_ACK_WRITE, ev, n);
    assert_int_equal(
        kr_req_decode(KRAPPY_T_PUBLISH, enc->data, enc->len, scratch, req, msg, sizeof msg),
        KRAPPY_OK);
}

/* A completion of the store: how many came, and the last result. */
typedef struct done {
    int calls;
    kr_store_result res;
} done;

static inline void on_done(void *arg, const kr_store_result *res)
{
    done *d = arg;
    d->calls++;
    d->res = *res;
}

/* Run the loop until *flag reaches want (bounded: 10000 turns). */
static inline void kr_test_run_until(struct event_base *base, int *flag, int want)
{
    for (int i = 0; i < 10000 && *flag < want; i++)
        event_base_loop(base, EVLOOP_ONCE);
    assert_int_equal(*flag, want);
}

/* Find or create topic `name` and wait until it is on disk. */
static inline kr_topic *kr_test_register(kr_store *s, struct event_base *base, const char *name)
{
    done d = {0};
    kr_topic *t;
    kr_store_result res;
    assert_int_equal(
        kr_store_register(s, (const uint8_t *)name, strlen(name), &t, on_done, &d, &res), 0);
    kr_test_run_until(base, &d.calls, 1);
    assert_int_equal(d.res.err, KRAPPY_OK);
    return t;
}

#endif
