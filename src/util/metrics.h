/*
 * util/metrics.h - the metrics registry every module records into.
 *
 * Counters, gauges and latency histograms, registered once (at start-up or
 * when a labelled series first appears) and updated lock-free with relaxed
 * atomics from any thread. A metric is a name, help text and an optional
 * fixed label set ("type=\"PING\""); series of one name share help and type.
 * kr_metrics_render() writes the Prometheus text exposition format (the
 * admin port serves it). Names follow Prometheus conventions: krappy_ prefix,
 * base units, _total for counters, _seconds for durations.
 *
 * Registration takes a mutex and may allocate; updates never do.
 */
#ifndef KR_UTIL_METRICS_H
#define KR_UTIL_METRICS_H

#include <stdint.h>

#include "util/buf.h"

typedef struct kr_metric kr_metric;

/* Histogram buckets: upper bounds in seconds, fixed for every histogram:
 * 1us 5us 10us 50us 100us 250us 500us 1ms 2.5ms 5ms 10ms 25ms 50ms 100ms
 * 250ms 500ms 1s 2.5s 5s 10s +Inf. */
#define KR_HIST_BUCKETS 21

/* A registry. Most code uses the process-wide one (kr_metrics_global()). */
typedef struct kr_metrics kr_metrics;

kr_metrics *kr_metrics_new(void);
void kr_metrics_free(kr_metrics *m); /* NULL ok; metrics become invalid */
kr_metrics *kr_metrics_global(void);

/*
 * Register (or find, when name and labels match an existing series) a
 * metric. `labels` is NULL or Prometheus label text without braces, e.g.
 * "type=\"PING\"" (copied). Help text is static.
 * @return the metric, valid until the registry is freed; NULL when out of
 *         memory or when the name is already registered with another kind
 *         (updates on NULL are ignored, so callers need not check).
 */
kr_metric *kr_counter(kr_metrics *m, const char *name, const char *labels, const char *help);
kr_metric *kr_gauge(kr_metrics *m, const char *name, const char *labels, const char *help);
kr_metric *kr_histogram(kr_metrics *m, const char *name, const char *labels, const char *help);
/* A histogram of sizes (counts, not time): buckets 1 2 4 ... 524288 +Inf. */
kr_metric *kr_size_histogram(kr_metrics *m, const char *name, const char *labels, const char *help);

void kr_counter_add(kr_metric *c, uint64_t n);
void kr_gauge_set(kr_metric *g, int64_t v);
void kr_gauge_add(kr_metric *g, int64_t delta);
/* Record one observation, in nanoseconds (rendered in seconds). */
void kr_histogram_observe_ns(kr_metric *h, uint64_t ns);
/* Record one size in a size histogram. */
void kr_size_histogram_observe(kr_metric *h, uint64_t n);

/* Current values (tests, STATS). */
uint64_t kr_counter_value(const kr_metric *c);
int64_t kr_gauge_value(const kr_metric *g);
uint64_t kr_histogram_count(const kr_metric *h); /* either kind */

/*
 * kr_metrics_render - append the Prometheus text exposition of every series
 * (grouped by name, # HELP and # TYPE once per name, histograms with
 * _bucket{le=...}, _sum and _count) to out.
 * @return 0, or -1 when out refused to grow.
 */
int kr_metrics_render(kr_metrics *m, kr_buf *out);

#endif
