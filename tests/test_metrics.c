/*
 * tests/test_metrics.c - util/metrics.c: values, histogram buckets at
 * their boundaries, the exact exposition text, re-registration, NULL
 * metrics, and exact totals from concurrent updates.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>

#include "util/buf.h"
#include "util/metrics.h"

#define RENDER_MAX (1 << 20)

/* Render m into a NUL-terminated string held by b (caller frees b). */
static const char *render(kr_metrics *m, kr_buf *b)
{
    kr_buf_init(b, RENDER_MAX);
    assert_int_equal(kr_metrics_render(m, b), 0);
    assert_int_equal(kr_buf_append(b, "", 1), 0);
    return (const char *)b->data;
}

static void test_counter_gauge(void **state)
{
    kr_metrics *m = kr_metrics_new();
    kr_metric *c, *g;

    (void)state;
    assert_non_null(m);
    c = kr_counter(m, "krappy_things_total", NULL, "Things.");
    g = kr_gauge(m, "krappy_level", NULL, "Level.");
    assert_non_null(c);
    assert_non_null(g);
    assert_int_equal(kr_counter_value(c), 0);
    kr_counter_add(c, 1);
    kr_counter_add(c, 41);
    assert_int_equal(kr_counter_value(c), 42);
    kr_counter_add(c, UINT64_C(1) << 40);
    assert_int_equal(kr_counter_value(c), (UINT64_C(1) << 40) + 42);

    assert_int_equal(kr_gauge_value(g), 0);
    kr_gauge_set(g, 10);
    kr_gauge_add(g, -3);
    assert_int_equal(kr_gauge_value(g), 7);
    kr_gauge_add(g, -12);
    assert_int_equal(kr_gauge_value(g), -5);
    kr_gauge_set(g, INT64_MIN);
    assert_true(kr_gauge_value(g) == INT64_MIN);

    /* Updates of the wrong kind are ignored. */
    kr_gauge_set(c, 5);
    kr_counter_add(g, 5);
    kr_histogram_observe_ns(c, 5);
    assert_int_equal(kr_counter_value(c), (UINT64_C(1) << 40) + 42);
    assert_true(kr_gauge_value(g) == INT64_MIN);
    assert_int_equal(kr_gauge_value(c), 0);
    assert_int_equal(kr_histogram_count(g), 0);
    kr_metrics_free(m);
}

/* The cumulative count rendered for le="<le>" of histogram h (no labels). */
static uint64_t bucket(const char *text, const char *le)
{
    char key[64];
    const char *p;
    unsigned long long v;

    snprintf(key, sizeof(key), "\nh_bucket{le=\"%s\"} ", le);
    p = strstr(text, key);
    if (p == NULL)
        fail_msg("no bucket le=%s", le);
    assert_int_equal(sscanf(p + strlen(key), "%llu", &v), 1);
    return (uint64_t)v;
}

/*
 * Buckets are "less than or equal": an observation equal to a bound is
 * counted in that bound's bucket, one nanosecond more in the next.
 */
static void test_histogram_boundaries(void **state)
{
    static const uint64_t bound_ns[] = {1000,      5000,       10000,      50000,      100000,
                                        250000,    500000,     1000000,    2500000,    5000000,
                                        10000000,  25000000,   50000000,   100000000,  250000000,
                                        500000000, 1000000000, 2500000000, 5000000000, 10000000000};
    static const char *const le[] = {
        "0.000001", "0.000005", "0.00001", "0.00005", "0.0001", "0.00025", "0.0005",
        "0.001",    "0.0025",   "0.005",   "0.01",    "0.025",  "0.05",    "0.1",
        "0.25",     "0.5",      "1",       "2.5",     "5",      "10",      "+Inf"};

    (void)state;
    assert_int_equal(sizeof(le) / sizeof(le[0]), KR_HIST_BUCKETS);
    for (size_t i = 0; i < KR_HIST_BUCKETS - 1; i++) {
        kr_metrics *m = kr_metrics_new();
        kr_metric *h = kr_histogram(m, "h", NULL, NULL);
        kr_buf b;
        const char *text;

        kr_histogram_observe_ns(h, bound_ns[i]);
        kr_histogram_observe_ns(h, bound_ns[i] + 1);
        assert_int_equal(kr_histogram_count(h), 2);
        text = render(m, &b);
        if (i > 0)
            assert_int_equal(bucket(text, le[i - 1]), 0);
        assert_int_equal(bucket(text, le[i]), 1);
        assert_int_equal(bucket(text, le[i + 1]), 2);
        assert_int_equal(bucket(text, "+Inf"), 2);
        kr_buf_free(&b);
        kr_metrics_free(m);
    }

    /* 0 ns lands in the first bucket; the largest value in +Inf. */
    {
        kr_metrics *m = kr_metrics_new();
        kr_metric *h = kr_histogram(m, "h", NULL, NULL);
        kr_buf b;
        const char *text;

        kr_histogram_observe_ns(h, 0);
        kr_histogram_observe_ns(h, UINT64_MAX / 2);
        text = render(m, &b);
        assert_int_equal(bucket(text, "0.000001"), 1);
        assert_int_equal(bucket(text, "10"), 1);
        assert_int_equal(bucket(text, "+Inf"), 2);
        kr_buf_free(&b);
        kr_metrics_free(m);
    }
}

/* Size histograms: le is a power of two, inclusive; the sum is the plain
 * total; a size histogram and a time histogram are different kinds. */
static void test_size_histogram(void **state)
{
    kr_metrics *m = kr_metrics_new();
    kr_metric *h = kr_size_histogram(m, "h", NULL, "Sizes.");
    kr_buf b;
    const char *text;

    (void)state;
    assert_non_null(h);
    assert_null(kr_histogram(m, "h", NULL, NULL));
    kr_size_histogram_observe(h, 0);
    kr_size_histogram_observe(h, 1);
    kr_size_histogram_observe(h, 2);
    kr_size_histogram_observe(h, 3);
    kr_size_histogram_observe(h, 1024);
    kr_size_histogram_observe(h, UINT64_C(1) << 40);
    kr_histogram_observe_ns(h, 7); /* wrong kind: ignored */
    assert_int_equal(kr_histogram_count(h), 6);
    text = render(m, &b);
    assert_non_null(strstr(text, "# TYPE h histogram\n"));
    assert_int_equal(bucket(text, "1"), 2);
    assert_int_equal(bucket(text, "2"), 3);
    assert_int_equal(bucket(text, "4"), 4);
    assert_int_equal(bucket(text, "512"), 4);
    assert_int_equal(bucket(text, "1024"), 5);
    assert_int_equal(bucket(text, "524288"), 5);
    assert_int_equal(bucket(text, "+Inf"), 6);
    char sum[64];
    snprintf(sum, sizeof sum, "\nh_sum %llu\n", (unsigned long long)((UINT64_C(1) << 40) + 1030));
    assert_non_null(strstr(text, sum));
    assert_non_null(strstr(text, "\nh_count 6\n"));
    kr_buf_free(&b);
    kr_metrics_free(m);
}

static void test_render_exact(void **state)
{
    kr_metrics *m = kr_metrics_new();
    kr_metric *ping, *append, *read, *conns, *lat, *fsync;
    kr_buf b;

    (void)state;
    ping = kr_counter(m, "krappy_requests_total", "type=\"PING\"",
                      "Requests handled,\nby type (\\ escaped).");
    append = kr_counter(m, "krappy_requests_total", "type=\"APPEND\"", "ignored: first help wins");
    conns = kr_gauge(m, "krappy_connections", NULL, "Open connections.");
    /* A later series of an earlier name is rendered with that name. */
    read = kr_counter(m, "krappy_requests_total", "type=\"READ\",shard=\"2\"", NULL);
    lat = kr_histogram(m, "krappy_request_seconds", "type=\"PING\"", "Request latency.");
    fsync = kr_histogram(m, "krappy_fsync_seconds", NULL, NULL);
    assert_non_null(ping);
    assert_non_null(append);
    assert_non_null(read);
    assert_non_null(conns);
    assert_non_null(lat);
    assert_non_null(fsync);

    kr_counter_add(ping, 3);
    kr_counter_add(read, 7);
    kr_gauge_set(conns, 5);
    kr_gauge_add(conns, -7);
    kr_histogram_observe_ns(lat, 1000);                  /* le 0.000001 */
    kr_histogram_observe_ns(lat, 1001);                  /* le 0.000005 */
    kr_histogram_observe_ns(lat, 1000000);               /* le 0.001 */
    kr_histogram_observe_ns(lat, UINT64_C(10000000000)); /* le 10 */
    kr_histogram_observe_ns(lat, UINT64_C(10000000001)); /* +Inf */
    kr_histogram_observe_ns(fsync, 1500);

    assert_string_equal(render(m, &b),
                        "# HELP krappy_requests_total Requests handled,\\nby type (\\\\ escaped).\n"
                        "# TYPE krappy_requests_total counter\n"
                        "krappy_requests_total{type=\"PING\"} 3\n"
                        "krappy_requests_total{type=\"APPEND\"} 0\n"
                        "krappy_requests_total{type=\"READ\",shard=\"2\"} 7\n"
                        "# HELP krappy_connections Open connections.\n"
                        "# TYPE krappy_connections gauge\n"
                        "krappy_connections -2\n"
                        "# HELP krappy_request_seconds Request latency.\n"
                        "# TYPE krappy_request_seconds histogram\n"
                        "krappy_request_seconds_bucket{type=\"PING\",le=\"0.000001\"} 1\n"
                        "krappy_request_seconds_bucket{type=\"PING\",le=\"0.000005\"} 2\n"
                        "krappy_request_seconds_bucket{type=\"PING\",le=\"0.00001\"} 2\n"
                        "krappy_request_seconds_bucket{type=\"PING\",le=\"0.00005\"} 2\n"
                        "krappy_request_seconds_bucket{type=\"PING\",le=\"0.0001\"} 2\n"
                        "krappy_request_seconds_bucket{type=\"PING\",le=\"0.00025\"} 2\n"
                        "krappy_request_seconds_bucket{type=\"PING\",le=\"0.0005\"} 2\n"
                        "krappy_request_seconds_bucket{type=\"PING\",le=\"0.001\"} 3\n"
                        "krappy_request_seconds_bucket{type=\"PING\",le=\"0.0025\"} 3\n"
                        "krappy_request_seconds_bucket{type=\"PING\",le=\"0.005\"} 3\n"
                        "krappy_request_seconds_bucket{type=\"PING\",le=\"0.01\"} 3\n"
                        "krappy_request_seconds_bucket{type=\"PING\",le=\"0.025\"} 3\n"
                        "krappy_request_seconds_bucket{type=\"PING\",le=\"0.05\"} 3\n"
                        "krappy_request_seconds_bucket{type=\"PING\",le=\"0.1\"} 3\n"
                        "krappy_request_seconds_bucket{type=\"PING\",le=\"0.25\"} 3\n"
                        "krappy_request_seconds_bucket{type=\"PING\",le=\"0.5\"} 3\n"
                        "krappy_request_seconds_bucket{type=\"PING\",le=\"1\"} 3\n"
                        "krappy_request_seconds_bucket{type=\"PING\",le=\"2.5\"} 3\n"
                        "krappy_request_seconds_bucket{type=\"PING\",le=\"5\"} 3\n"
                        "krappy_request_seconds_bucket{type=\"PING\",le=\"10\"} 4\n"
                        "krappy_request_seconds_bucket{type=\"PING\",le=\"+Inf\"} 5\n"
                        "krappy_request_seconds_sum{type=\"PING\"} 20.001002002\n"
                        "krappy_request_seconds_count{type=\"PING\"} 5\n"
                        "# TYPE krappy_fsync_seconds histogram\n"
                        "krappy_fsync_seconds_bucket{le=\"0.000001\"} 0\n"
                        "krappy_fsync_seconds_bucket{le=\"0.000005\"} 1\n"
                        "krappy_fsync_seconds_bucket{le=\"0.00001\"} 1\n"
                        "krappy_fsync_seconds_bucket{le=\"0.00005\"} 1\n"
                        "krappy_fsync_seconds_bucket{le=\"0.0001\"} 1\n"
                        "krappy_fsync_seconds_bucket{le=\"0.00025\"} 1\n"
                        "krappy_fsync_seconds_bucket{le=\"0.0005\"} 1\n"
                        "krappy_fsync_seconds_bucket{le=\"0.001\"} 1\n"
                        "krappy_fsync_seconds_bucket{le=\"0.0025\"} 1\n"
                        "krappy_fsync_seconds_bucket{le=\"0.005\"} 1\n"
                        "krappy_fsync_seconds_bucket{le=\"0.01\"} 1\n"
                        "krappy_fsync_seconds_bucket{le=\"0.025\"} 1\n"
                        "krappy_fsync_seconds_bucket{le=\"0.05\"} 1\n"
                        "krappy_fsync_seconds_bucket{le=\"0.1\"} 1\n"
                        "krappy_fsync_seconds_bucket{le=\"0.25\"} 1\n"
                        "krappy_fsync_seconds_bucket{le=\"0.5\"} 1\n"
                        "krappy_fsync_seconds_bucket{le=\"1\"} 1\n"
                        "krappy_fsync_seconds_bucket{le=\"2.5\"} 1\n"
                        "krappy_fsync_seconds_bucket{le=\"5\"} 1\n"
                        "krappy_fsync_seconds_bucket{le=\"10\"} 1\n"
                        "krappy_fsync_seconds_bucket{le=\"+Inf\"} 1\n"
                        "krappy_fsync_seconds_sum 0.0000015\n"
                        "krappy_fsync_seconds_count 1\n");
    kr_buf_free(&b);
    kr_metrics_free(m);
}

/* Sums print as exact decimal seconds, without trailing zeros. */
static void test_render_sum(void **state)
{
    static const struct {
        uint64_t ns;
        const char *text;
    } cases[] = {
        {0, "h_sum 0\n"},
        {1, "h_sum 0.000000001\n"},
        {2000000000, "h_sum 2\n"},
        {2500000000, "h_sum 2.5\n"},
        {1234567890123, "h_sum 1234.567890123\n"},
    };

    (void)state;
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        kr_metrics *m = kr_metrics_new();
        kr_buf b;

        kr_histogram_observe_ns(kr_histogram(m, "h", NULL, NULL), cases[i].ns);
        assert_non_null(strstr(render(m, &b), cases[i].text));
        kr_buf_free(&b);
        kr_metrics_free(m);
    }
}

static void test_render_empty_and_full(void **state)
{
    kr_metrics *m = kr_metrics_new();
    kr_buf b;

    (void)state;
    kr_buf_init(&b, 64);
    assert_int_equal(kr_metrics_render(m, &b), 0);
    assert_int_equal(b.len, 0);

    kr_counter_add(kr_counter(m, "krappy_a_long_enough_name_total", NULL, "Help text."), 1);
    kr_histogram(m, "krappy_h_seconds", NULL, "Latency.");
    assert_int_equal(kr_metrics_render(m, &b), -1); /* the buffer refused to grow */
    kr_buf_free(&b);

    assert_int_equal(kr_metrics_render(NULL, &b), -1);
    kr_metrics_free(m);
}

static void test_reregistration(void **state)
{
    kr_metrics *m = kr_metrics_new();
    kr_metric *a, *b, *c;
    kr_buf buf;

    (void)state;
    a = kr_counter(m, "krappy_x_total", "type=\"A\"", "X.");
    b = kr_counter(m, "krappy_x_total", "type=\"B\"", "X.");
    c = kr_counter(m, "krappy_x_total", NULL, "X.");
    assert_non_null(a);
    assert_non_null(b);
    assert_non_null(c);
    assert_ptr_not_equal(a, b);
    assert_ptr_not_equal(a, c);
    /* Same name and labels: the same series (labels are copied, so a
     * different buffer with the same text matches). */
    {
        char labels[] = "type=\"A\"";

        assert_ptr_equal(kr_counter(m, "krappy_x_total", labels, "X."), a);
        labels[6] = 'B';
        assert_ptr_equal(kr_counter(m, "krappy_x_total", labels, "X."), b);
    }
    assert_ptr_equal(kr_counter(m, "krappy_x_total", "", "X."), c); /* "" is no labels */
    assert_ptr_equal(kr_counter(m, "krappy_x_total", NULL, NULL), c);

    /* Same name, another kind: refused, and the name keeps its kind. */
    assert_null(kr_gauge(m, "krappy_x_total", "type=\"A\"", "X."));
    assert_null(kr_gauge(m, "krappy_x_total", "type=\"new\"", "X."));
    assert_null(kr_histogram(m, "krappy_x_total", NULL, "X."));
    kr_counter_add(a, 2);
    assert_int_equal(kr_counter_value(kr_counter(m, "krappy_x_total", "type=\"A\"", NULL)), 2);

    kr_metric *h = kr_histogram(m, "krappy_y_seconds", NULL, "Y.");
    assert_ptr_equal(kr_histogram(m, "krappy_y_seconds", NULL, "Y."), h);
    assert_null(kr_counter(m, "krappy_y_seconds", NULL, "Y."));

    /* Names Prometheus would not parse are refused. */
    assert_null(kr_counter(m, "", NULL, NULL));
    assert_null(kr_counter(m, NULL, NULL, NULL));
    assert_null(kr_counter(m, "9lives", NULL, NULL));
    assert_null(kr_counter(m, "has space", NULL, NULL));
    assert_null(kr_counter(m, "dash-ed", NULL, NULL));
    assert_non_null(kr_counter(m, "ok:name_9", NULL, NULL));

    /* One HELP and TYPE for the name, three series. */
    {
        const char *text = render(m, &buf);

        assert_string_equal(text, "# HELP krappy_x_total X.\n"
                                  "# TYPE krappy_x_total counter\n"
                                  "krappy_x_total{type=\"A\"} 2\n"
                                  "krappy_x_total{type=\"B\"} 0\n"
                                  "krappy_x_total 0\n"
                                  "# HELP krappy_y_seconds Y.\n"
                                  "# TYPE krappy_y_seconds histogram\n"
                                  "krappy_y_seconds_bucket{le=\"0.000001\"} 0\n"
                                  "krappy_y_seconds_bucket{le=\"0.000005\"} 0\n"
                                  "krappy_y_seconds_bucket{le=\"0.00001\"} 0\n"
                                  "krappy_y_seconds_bucket{le=\"0.00005\"} 0\n"
                                  "krappy_y_seconds_bucket{le=\"0.0001\"} 0\n"
                                  "krappy_y_seconds_bucket{le=\"0.00025\"} 0\n"
                                  "krappy_y_seconds_bucket{le=\"0.0005\"} 0\n"
                                  "krappy_y_seconds_bucket{le=\"0.001\"} 0\n"
                                  "krappy_y_seconds_bucket{le=\"0.0025\"} 0\n"
                                  "krappy_y_seconds_bucket{le=\"0.005\"} 0\n"
                                  "krappy_y_seconds_bucket{le=\"0.01\"} 0\n"
                                  "krappy_y_seconds_bucket{le=\"0.025\"} 0\n"
                                  "krappy_y_seconds_bucket{le=\"0.05\"} 0\n"
                                  "krappy_y_seconds_bucket{le=\"0.1\"} 0\n"
                                  "krappy_y_seconds_bucket{le=\"0.25\"} 0\n"
                                  "krappy_y_seconds_bucket{le=\"0.5\"} 0\n"
                                  "krappy_y_seconds_bucket{le=\"1\"} 0\n"
                                  "krappy_y_seconds_bucket{le=\"2.5\"} 0\n"
                                  "krappy_y_seconds_bucket{le=\"5\"} 0\n"
                                  "krappy_y_seconds_bucket{le=\"10\"} 0\n"
                                  "krappy_y_seconds_bucket{le=\"+Inf\"} 0\n"
                                  "krappy_y_seconds_sum 0\n"
                                  "krappy_y_seconds_count 0\n"
                                  "# TYPE ok:name_9 counter\n"
                                  "ok:name_9 0\n");
        kr_buf_free(&buf);
    }
    kr_metrics_free(m);
}

static void test_null_metrics(void **state)
{
    (void)state;
    kr_counter_add(NULL, 1);
    kr_gauge_set(NULL, 1);
    kr_gauge_add(NULL, 1);
    kr_histogram_observe_ns(NULL, 1);
    assert_int_equal(kr_counter_value(NULL), 0);
    assert_int_equal(kr_gauge_value(NULL), 0);
    assert_int_equal(kr_histogram_count(NULL), 0);
    assert_null(kr_counter(NULL, "a", NULL, NULL));
    assert_null(kr_gauge(NULL, "a", NULL, NULL));
    assert_null(kr_histogram(NULL, "a", NULL, NULL));
    kr_metrics_free(NULL);
}

/* ---- concurrency ---- */

#define THREADS 4
#define ADDS    100000

typedef struct shared {
    kr_metrics *m;
    kr_metric *c, *g, *h;
    atomic_int running;
} shared;

static void *adder(void *arg)
{
    shared *s = arg;

    for (uint64_t i = 0; i < ADDS; i++) {
        kr_counter_add(s->c, 1);
        kr_gauge_add(s->g, (i & 1) ? -1 : 3);
        kr_histogram_observe_ns(s->h, i);
    }
    return NULL;
}

/* Renders and registers while the adders run, to give TSan something to
 * look at; every render must parse far enough to be non-empty. */
static void *scraper(void *arg)
{
    shared *s = arg;
    kr_buf b;
    int n = 0;

    kr_buf_init(&b, RENDER_MAX);
    while (atomic_load(&s->running) > 0) {
        char labels[32];

        kr_buf_reset(&b);
        if (kr_metrics_render(s->m, &b) != 0 || b.len == 0)
            return (void *)1;
        snprintf(labels, sizeof(labels), "n=\"%d\"", n++ % 50);
        kr_counter_add(kr_counter(s->m, "krappy_scrapes_total", labels, "Scrapes."), 1);
    }
    kr_buf_free(&b);
    return NULL;
}

static void *adder_then_done(void *arg)
{
    shared *s = arg;

    adder(s);
    atomic_fetch_sub(&s->running, 1);
    return NULL;
}

static void test_threads_exact_totals(void **state)
{
    shared s;
    pthread_t t[THREADS], scr;
    void *scr_rc;
    kr_buf b;

    (void)state;
    s.m = kr_metrics_new();
    s.c = kr_counter(s.m, "krappy_adds_total", NULL, "Adds.");
    s.g = kr_gauge(s.m, "krappy_level", NULL, "Level.");
    s.h = kr_histogram(s.m, "krappy_op_seconds", NULL, "Ops.");
    atomic_init(&s.running, THREADS);
    assert_int_equal(pthread_create(&scr, NULL, scraper, &s), 0);
    for (int i = 0; i < THREADS; i++)
        assert_int_equal(pthread_create(&t[i], NULL, adder_then_done, &s), 0);
    for (int i = 0; i < THREADS; i++)
        pthread_join(t[i], NULL);
    pthread_join(scr, &scr_rc);
    assert_null(scr_rc);

    assert_int_equal(kr_counter_value(s.c), (uint64_t)THREADS * ADDS);
    assert_int_equal(kr_gauge_value(s.g), (int64_t)THREADS * ADDS);
    assert_int_equal(kr_histogram_count(s.h), (uint64_t)THREADS * ADDS);
    /* 4 x (0 + 1 + ... + 99999) ns = 19999800000 ns */
    assert_non_null(strstr(render(s.m, &b), "\nkrappy_op_seconds_sum 19.9998\n"));
    assert_non_null(strstr((const char *)b.data, "\nkrappy_op_seconds_count 400000\n"));
    assert_non_null(strstr((const char *)b.data, "\nkrappy_adds_total 400000\n"));
    kr_buf_free(&b);
    kr_metrics_free(s.m);
}

static kr_metrics *seen[THREADS];

static void *get_global(void *arg)
{
    seen[(intptr_t)arg] = kr_metrics_global();
    return NULL;
}

static void test_global(void **state)
{
    pthread_t t[THREADS];

    (void)state;
    for (intptr_t i = 0; i < THREADS; i++)
        assert_int_equal(pthread_create(&t[i], NULL, get_global, (void *)i), 0);
    for (int i = 0; i < THREADS; i++)
        pthread_join(t[i], NULL);
    assert_non_null(seen[0]);
    for (int i = 0; i < THREADS; i++)
        assert_ptr_equal(seen[i], seen[0]);
    assert_ptr_equal(kr_metrics_global(), seen[0]);
    assert_non_null(kr_counter(kr_metrics_global(), "krappy_test_total", NULL, "Test."));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_counter_gauge),
        cmocka_unit_test(test_histogram_boundaries),
        cmocka_unit_test(test_size_histogram),
        cmocka_unit_test(test_render_exact),
        cmocka_unit_test(test_render_sum),
        cmocka_unit_test(test_render_empty_and_full),
        cmocka_unit_test(test_reregistration),
        cmocka_unit_test(test_null_metrics),
        cmocka_unit_test(test_threads_exact_totals),
        cmocka_unit_test(test_global), /* the process-wide registry, from threads */
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
