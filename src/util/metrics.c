/*
 * util/metrics.c - the metrics registry (see metrics.h).
 *
 * A registry is a list of families (one per metric name, in the order the
 * names were first registered), each a list of series (one per label set).
 * The lists only grow, under the registry's mutex; rendering takes the same
 * mutex to walk them. A series' value is a set of atomics updated with
 * relaxed operations, so hot paths never lock, never allocate and never
 * wait for a scrape.
 *
 * Histograms keep one non-cumulative counter per bucket and the sum of the
 * observations in nanoseconds; rendering accumulates the buckets and prints
 * the sum in seconds. The count is derived from the buckets, which keeps
 * `_count` equal to the `+Inf` bucket even while observations race with a
 * scrape.
 */
#include "util/metrics.h"

#include <inttypes.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef enum kind { KIND_COUNTER, KIND_GAUGE, KIND_HISTOGRAM, KIND_SIZES } kind;

static const char *const kind_names[] = {"counter", "gauge", "histogram", "histogram"};

/* Bucket upper bounds in ns and as rendered in `le`, from metrics.h. The
 * last bucket (+Inf) has no bound. */
static const uint64_t bucket_ns[KR_HIST_BUCKETS - 1] = {
    1000ULL,      5000ULL,       10000ULL,      50000ULL,      100000ULL,
    250000ULL,    500000ULL,     1000000ULL,    2500000ULL,    5000000ULL,
    10000000ULL,  25000000ULL,   50000000ULL,   100000000ULL,  250000000ULL,
    500000000ULL, 1000000000ULL, 2500000000ULL, 5000000000ULL, 10000000000ULL,
};

static const char *const bucket_le[KR_HIST_BUCKETS] = {
    "0.000001", "0.000005", "0.00001", "0.00005", "0.0001", "0.00025", "0.0005",
    "0.001",    "0.0025",   "0.005",   "0.01",    "0.025",  "0.05",    "0.1",
    "0.25",     "0.5",      "1",       "2.5",     "5",      "10",      "+Inf",
};

struct kr_metric {
    kind kind;
    char *labels; /* owned; "" when the series has none */
    struct kr_metric *next;
    union {
        atomic_uint_least64_t counter;
        atomic_int_least64_t gauge;
        struct {
            atomic_uint_least64_t buckets[KR_HIST_BUCKETS];
            atomic_uint_least64_t sum_ns;
        } hist;
    } v;
};

typedef struct family {
    char *name;       /* owned */
    const char *help; /* static, from the first registration; may be NULL */
    kind kind;
    kr_metric *series, **series_tail;
    struct family *next;
} family;

struct kr_metrics {
    pthread_mutex_t lock;
    family *families, **families_tail;
};

kr_metrics *kr_metrics_new(void)
{
    kr_metrics *m = calloc(1, sizeof(*m));

    if (m == NULL)
        return NULL;
    if (pthread_mutex_init(&m->lock, NULL) != 0) {
        free(m);
        return NULL;
    }
    m->families_tail = &m->families;
    return m;
}

void kr_metrics_free(kr_metrics *m)
{
    family *f, *fnext;

    if (m == NULL)
        return;
    for (f = m->families; f != NULL; f = fnext) {
        kr_metric *s, *snext;

        fnext = f->next;
        for (s = f->series; s != NULL; s = snext) {
            snext = s->next;
            free(s->labels);
            free(s);
        }
        free(f->name);
        free(f);
    }
    pthread_mutex_destroy(&m->lock);
    free(m);
}

static kr_metrics *global_registry;
static pthread_once_t global_once = PTHREAD_ONCE_INIT;

static void global_init(void)
{
    global_registry = kr_metrics_new();
}

/* Created on first use and never freed: modules may update their metrics
 * until the very end of the process. NULL only if the first call ran out of
 * memory (and then every registration returns NULL, which updates ignore). */
kr_metrics *kr_metrics_global(void)
{
    pthread_once(&global_once, global_init);
    return global_registry;
}

/* Prometheus metric names: [a-zA-Z_:][a-zA-Z0-9_:]*. Anything else would
 * make the whole exposition unparseable, so it is refused at registration. */
static bool valid_name(const char *s)
{
    if (s == NULL || *s == '\0')
        return false;
    for (const char *p = s; *p; p++) {
        char c = *p;
        bool alpha = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_' || c == ':';

        if (!alpha && !(p != s && c >= '0' && c <= '9'))
            return false;
    }
    return true;
}

/*
 * Find or create the series (name, labels) of kind k. A name keeps the kind
 * it was first registered with; asking for it as another kind is a
 * programming error reported as NULL. A failed allocation leaves the
 * registry as it was.
 */
static kr_metric *reg(kr_metrics *m, kind k, const char *name, const char *labels, const char *help)
{
    family *f;
    kr_metric *s = NULL;

    if (m == NULL || !valid_name(name))
        return NULL;
    if (labels == NULL)
        labels = "";
    pthread_mutex_lock(&m->lock);
    for (f = m->families; f != NULL; f = f->next)
        if (strcmp(f->name, name) == 0)
            break;
    if (f != NULL) {
        if (f->kind != k)
            goto done;
        for (s = f->series; s != NULL; s = s->next)
            if (strcmp(s->labels, labels) == 0)
                goto done;
    }

    s = calloc(1, sizeof(*s));
    if (s == NULL)
        goto done;
    s->kind = k;
    s->labels = strdup(labels);
    if (s->labels == NULL)
        goto fail;
    if (f == NULL) {
        f = calloc(1, sizeof(*f));
        if (f == NULL)
            goto fail;
        f->name = strdup(name);
        if (f->name == NULL) {
            free(f);
            goto fail;
        }
        f->help = help;
        f->kind = k;
        f->series_tail = &f->series;
        *m->families_tail = f;
        m->families_tail = &f->next;
    }
    *f->series_tail = s;
    f->series_tail = &s->next;
    goto done;

fail:
    free(s->labels);
    free(s);
    s = NULL;
done:
    pthread_mutex_unlock(&m->lock);
    return s;
}

kr_metric *kr_counter(kr_metrics *m, const char *name, const char *labels, const char *help)
{
    return reg(m, KIND_COUNTER, name, labels, help);
}

kr_metric *kr_gauge(kr_metrics *m, const char *name, const char *labels, const char *help)
{
    return reg(m, KIND_GAUGE, name, labels, help);
}

kr_metric *kr_histogram(kr_metrics *m, const char *name, const char *labels, const char *help)
{
    return reg(m, KIND_HISTOGRAM, name, labels, help);
}

kr_metric *kr_size_histogram(kr_metrics *m, const char *name, const char *labels, const char *help)
{
    return reg(m, KIND_SIZES, name, labels, help);
}

/* Updates on NULL or on a metric of another kind are ignored. */
void kr_counter_add(kr_metric *c, uint64_t n)
{
    if (c == NULL || c->kind != KIND_COUNTER)
        return;
    atomic_fetch_add_explicit(&c->v.counter, n, memory_order_relaxed);
}

void kr_gauge_set(kr_metric *g, int64_t v)
{
    if (g == NULL || g->kind != KIND_GAUGE)
        return;
    atomic_store_explicit(&g->v.gauge, v, memory_order_relaxed);
}

void kr_gauge_add(kr_metric *g, int64_t delta)
{
    if (g == NULL || g->kind != KIND_GAUGE)
        return;
    atomic_fetch_add_explicit(&g->v.gauge, delta, memory_order_relaxed);
}

/* Bucket i holds observations in (bound[i-1], bound[i]]; `le` is inclusive. */
void kr_histogram_observe_ns(kr_metric *h, uint64_t ns)
{
    size_t i = 0;

    if (h == NULL || h->kind != KIND_HISTOGRAM)
        return;
    while (i < KR_HIST_BUCKETS - 1 && ns > bucket_ns[i])
        i++;
    atomic_fetch_add_explicit(&h->v.hist.buckets[i], 1, memory_order_relaxed);
    atomic_fetch_add_explicit(&h->v.hist.sum_ns, ns, memory_order_relaxed);
}

/* Size bucket i holds (2^(i-1), 2^i]; bucket 0 holds 0 and 1. */
void kr_size_histogram_observe(kr_metric *h, uint64_t n)
{
    size_t i = 0;

    if (h == NULL || h->kind != KIND_SIZES)
        return;
    while (i < KR_HIST_BUCKETS - 1 && n > (1ULL << i))
        i++;
    atomic_fetch_add_explicit(&h->v.hist.buckets[i], 1, memory_order_relaxed);
    atomic_fetch_add_explicit(&h->v.hist.sum_ns, n, memory_order_relaxed);
}

uint64_t kr_counter_value(const kr_metric *c)
{
    if (c == NULL || c->kind != KIND_COUNTER)
        return 0;
    return atomic_load_explicit(&c->v.counter, memory_order_relaxed);
}

int64_t kr_gauge_value(const kr_metric *g)
{
    if (g == NULL || g->kind != KIND_GAUGE)
        return 0;
    return atomic_load_explicit(&g->v.gauge, memory_order_relaxed);
}

uint64_t kr_histogram_count(const kr_metric *h)
{
    uint64_t n = 0;

    if (h == NULL || (h->kind != KIND_HISTOGRAM && h->kind != KIND_SIZES))
        return 0;
    for (size_t i = 0; i < KR_HIST_BUCKETS; i++)
        n += atomic_load_explicit(&h->v.hist.buckets[i], memory_order_relaxed);
    return n;
}

/* A render in progress: appends stop at the first refusal. */
typedef struct out {
    kr_buf *b;
    int rc;
} out;

static void put(out *o, const char *s, size_t n)
{
    if (o->rc == 0 && kr_buf_append(o->b, s, n) != 0)
        o->rc = -1;
}

static void puts_(out *o, const char *s)
{
    put(o, s, strlen(s));
}

static void putu(out *o, uint64_t v)
{
    char tmp[24];
    int n = snprintf(tmp, sizeof(tmp), "%" PRIu64, v);

    put(o, tmp, (size_t)n);
}

/* HELP text escapes backslash and newline (exposition format spec). */
static void put_help(out *o, const char *s)
{
    for (; *s; s++) {
        if (*s == '\\')
            puts_(o, "\\\\");
        else if (*s == '\n')
            puts_(o, "\\n");
        else
            put(o, s, 1);
    }
}

/* Nanoseconds as exact decimal seconds, without trailing zeros: 1500 ->
 * "0.0000015", 2000000000 -> "2". */
static void put_seconds(out *o, uint64_t ns)
{
    char frac[16];
    int n;

    putu(o, ns / 1000000000ULL);
    if (ns % 1000000000ULL == 0)
        return;
    n = snprintf(frac, sizeof(frac), ".%09" PRIu64, (uint64_t)(ns % 1000000000ULL));
    while (n > 0 && frac[n - 1] == '0')
        n--;
    put(o, frac, (size_t)n);
}

/* name + suffix + {labels[,extra]}; no braces when there are neither. */
static void put_series(out *o, const char *name, const char *suffix, const char *labels,
                       const char *extra)
{
    puts_(o, name);
    puts_(o, suffix);
    if (*labels == '\0' && extra == NULL)
        return;
    puts_(o, "{");
    puts_(o, labels);
    if (extra != NULL) {
        if (*labels != '\0')
            puts_(o, ",");
        puts_(o, extra);
    }
    puts_(o, "}");
}

static void render_histogram(out *o, const char *name, const kr_metric *s)
{
    uint64_t cum = 0;

    for (size_t i = 0; i < KR_HIST_BUCKETS; i++) {
        char le[32];

        cum += atomic_load_explicit(&s->v.hist.buckets[i], memory_order_relaxed);
        if (s->kind == KIND_HISTOGRAM || i == KR_HIST_BUCKETS - 1)
            snprintf(le, sizeof(le), "le=\"%s\"", bucket_le[i]);
        else
            snprintf(le, sizeof(le), "le=\"%llu\"", 1ULL << i);
        put_series(o, name, "_bucket", s->labels, le);
        puts_(o, " ");
        putu(o, cum);
        puts_(o, "\n");
    }
    put_series(o, name, "_sum", s->labels, NULL);
    puts_(o, " ");
    uint64_t sum = atomic_load_explicit(&s->v.hist.sum_ns, memory_order_relaxed);
    if (s->kind == KIND_HISTOGRAM)
        put_seconds(o, sum);
    else
        putu(o, sum);
    puts_(o, "\n");
    put_series(o, name, "_count", s->labels, NULL);
    puts_(o, " ");
    putu(o, cum);
    puts_(o, "\n");
}

int kr_metrics_render(kr_metrics *m, kr_buf *b)
{
    out o = {b, 0};

    if (m == NULL || b == NULL)
        return -1;
    pthread_mutex_lock(&m->lock);
    for (const family *f = m->families; f != NULL && o.rc == 0; f = f->next) {
        if (f->help != NULL) {
            puts_(&o, "# HELP ");
            puts_(&o, f->name);
            puts_(&o, " ");
            put_help(&o, f->help);
            puts_(&o, "\n");
        }
        puts_(&o, "# TYPE ");
        puts_(&o, f->name);
        puts_(&o, " ");
        puts_(&o, kind_names[f->kind]);
        puts_(&o, "\n");
        for (const kr_metric *s = f->series; s != NULL; s = s->next) {
            if (s->kind == KIND_HISTOGRAM || s->kind == KIND_SIZES) {
                render_histogram(&o, f->name, s);
                continue;
            }
            put_series(&o, f->name, "", s->labels, NULL);
            puts_(&o, " ");
            if (s->kind == KIND_COUNTER) {
                putu(&o, atomic_load_explicit(&s->v.counter, memory_order_relaxed));
            } else {
                char tmp[24];
                int n = snprintf(tmp, sizeof(tmp), "%" PRId64,
                                 (int64_t)atomic_load_explicit(&s->v.gauge, memory_order_relaxed));

                put(&o, tmp, (size_t)n);
            }
            puts_(&o, "\n");
        }
    }
    pthread_mutex_unlock(&m->lock);
    return o.rc;
}
