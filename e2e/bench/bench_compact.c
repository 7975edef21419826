/*
 * e2e/bench/bench_compact.c - log compaction's figures (issue 16):
 *   disk:    a compacted topic of EVENTS events over KEYS keys (16-byte
 *            keys, 100-byte values, batches of 1000, ack "write"): its
 *            stream's bytes once written, and once compaction is through,
 *            against its live data (KEYS events);
 *   rate:    the bytes compaction read and wrote per second of its own
 *            time (throttled by --compact-rate: the bench sets it high, to
 *            see what the machine does), and its CPU;
 *   then krappyd is restarted with its default --compact-rate, the
 *   throttle the bounds below are about:
 *   ingest:  batched ingest of PROBE_EVENTS into PROBE_TOPIC (one topic,
 *            the same keys in every row), in INGEST_ROUNDS rows with
 *            compaction of a second plain topic of EVENTS events off and
 *            as many with it on, alternated like the latency rows below
 *            (bound: all the rows' events over all their time 10% slower
 *            at most); a row gives the compaction thread's CPU in it,
 *            which says that a rewrite ran;
 *   latency: produce->consume, each event its own PUBLISH (ack "write") at
 *            LAT_RATE events/s for LAT_SECS, a consumer tailing the topic
 *            with long-poll FETCHes: p50 and p99 of LAT_ROUNDS rows with
 *            compaction off and as many with it on (the plain topic
 *            compacted for the row's time), alternated on the same server
 *            once the compacted topic's pass is through, so that both kinds
 *            of row see the same machine (bound: the p99 of all the rows'
 *            samples 10% higher at most);
 *   bounds:  after each kind of row, a table puts the rows pooled against
 *            the bound, and the median row beside them. One row
 *            swings by a fifth from the next on a small shared machine;
 *            the rows together do much less.
 *
 *   bench_compact [EVENTS [KEYS [RATE]]]   defaults 10000000, 100000, 64M
 *
 *   bench_compact --ab ROUNDS [EVENTS [KEYS [RATE]]]
 *            only the latency rows, side by side in one server: the topic
 *            is filled with compaction off (cleanup=delete), then ROUNDS
 *            times a row with it off and a row with it on (cleanup=compact
 *            for the row's time), so that both see the same machine; a
 *            row gives the segments rewritten and bytes reclaimed in it,
 *            and the last table the bound on the rows pooled. With
 *            $BENCH_SLOW_US, every event slower than that is printed with
 *            its send time (CLOCK_MONOTONIC), to line up with a trace of
 *            krappyd.
 * Uses $KRAPPYD (default bin/krappyd) in a temp dir.
 */
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "../harness.h"
#include "krappy/client.h"
#include "proto/msg.h"

#define BATCH    1000
#define WINDOW   8
#define EV_BYTES 100
/* Events of each ingest row (compaction off, or on), all rows into one
 * topic over the same 100,000 keys: a topic a row would add its keys to
 * the view, and a view grown by a million keys slows every checkpoint -
 * the last rows would measure that. Retention keeps its disk bounded. */
#define PROBE_EVENTS 3000000
#define PROBE_TOPIC  "probe"
/* The latency measurement: events/s, seconds. */
#define LAT_RATE 1000
#define LAT_SECS 5
/* Rows of each bound, with compaction off then on, each: latency, ingest. */
#define LAT_ROUNDS    9
#define INGEST_ROUNDS 7
/* Seconds a row waits at most for an idle server. */
#define SETTLE_MAX_S 20
#define LAT_BOUND    "produce->consume p99 (of all samples) at most 10% higher"

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

static void die(krappy_client *c, const char *what)
{
    fprintf(stderr, "bench_compact: %s: %s\n", what, c ? krappy_client_errmsg(c) : "");
    exit(1);
}

static krappy_client *connect_to(const e2e_server *s)
{
    krappy_opts o = {.timeout_ms = 120000};
    krappy_client *c = krappy_client_new(&o);
    if (c == NULL || krappy_connect(c, s->host, s->port) != KRAPPY_OK)
        die(c, "connect");
    return c;
}

/* Publish `events` to topic, keys drawn from `keys` (pipelined batches of
 * 1000, ack "write"). @return events/s. */
static double ingest(const e2e_server *s, const char *topic, long events, uint32_t keys,
                     uint32_t seed)
{
    krappy_client *c = connect_to(s);
    if (krappy_register_producer(c, topic, "bench", NULL) != KRAPPY_OK)
        die(c, "register");
    static char kbuf[BATCH][17];
    static uint8_t value[EV_BYTES + 1];
    static kr_event_out_spec ev[BATCH];
    value[0] = 0x78; /* text, 1-byte length */
    value[1] = EV_BYTES - 2;
    memset(value + 2, 'v', EV_BYTES - 2);
    kr_buf b;
    kr_buf_init(&b, 64u << 20);
    long batches = events / BATCH, sent = 0, got = 0;
    double t0 = now_s();
    while (got < batches) {
        while (sent < batches && sent - got < WINDOW) {
            for (int i = 0; i < BATCH; i++) {
                seed = seed * 1103515245u + 12345u;
                snprintf(kbuf[i], sizeof kbuf[i], "key-%011u", (seed >> 8) % keys);
                ev[i] = (kr_event_out_spec){.key = kbuf[i],
                                            .key_len = 16,
                                            .key_is_text = true,
                                            .value = value,
                                            .value_len = EV_BYTES};
            }
            kr_buf_reset(&b);
            kr_enc_publish(&b, (kr_cid){0}, KR_ACK_WRITE, ev, BATCH);
            if (krappy_send(c, KRAPPY_T_PUBLISH, b.data, b.len) != KRAPPY_OK)
                die(c, "send");
            sent++;
        }
        krappy_frame f;
        if (krappy_recv(c, &f) != KRAPPY_OK || krappy_reply_error(c, &f) != KRAPPY_OK)
            die(c, "publish");
        got++;
    }
    double secs = now_s() - t0;
    kr_buf_free(&b);
    krappy_client_free(c);
    return (double)batches * BATCH / secs;
}

static uint64_t mono_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

/* The consumer of a latency run: tails the topic until `total` events
 * came, one sample (ns) per event from the send time in its value. */
typedef struct lat_run {
    const e2e_server *s;
    const char *topic;
    long total;
    uint64_t *lat;
    long got;
} lat_run;

static void *lat_consumer(void *arg)
{
    lat_run *L = arg;
    const char *slow_env = getenv("BENCH_SLOW_US");
    uint64_t slow_ns = slow_env != NULL ? strtoull(slow_env, NULL, 10) * 1000 : 0;
    krappy_client *c = connect_to(L->s);
    uint64_t off = 0, give_up = mono_ns() + (LAT_SECS + 60) * 1000000000ull;
    while (L->got < L->total && mono_ns() < give_up) {
        krappy_events *ev;
        krappy_err e = krappy_fetch(c, L->topic, off, 1000, 0, 100, &ev);
        if (e == KRAPPY_E_NO_SUCH_TOPIC) { /* the producer has not registered yet */
            usleep(1000);
            continue;
        }
        if (e != KRAPPY_OK)
            die(c, "fetch");
        uint64_t now = mono_ns();
        for (size_t i = 0; i < ev->count && L->got < L->total; i++) {
            const krappy_event *x = &ev->events[i];
            uint64_t sent = 0;
            if (x->value_len != 9 || x->value[0] != 0x48)
                die(NULL, "a latency event came back damaged");
            memcpy(&sent, x->value + 1, 8);
            L->lat[L->got++] = now > sent ? now - sent : 0;
            if (slow_ns != 0 && now > sent + slow_ns) {
                fprintf(stderr, "slow %s sent %.6f %llu us\n", L->topic, sent / 1e9,
                        (unsigned long long)((now - sent) / 1000));
            }
        }
        off = ev->next;
        krappy_events_free(ev);
    }
    krappy_client_free(c);
    return NULL;
}

static int cmp_u64(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return (x > y) - (x < y);
}

/* Produce->consume latency on a fresh topic: LAT_RATE single-event
 * PUBLISHes (ack "write") a second for LAT_SECS, keyed over 1000 keys; its
 * LAT_RATE * LAT_SECS samples (ns) are copied to pool. @return p99 in us
 * (*p50 too). */
static double latency(const e2e_server *s, const char *topic, uint64_t *pool, double *p50)
{
    long total = (long)LAT_RATE * LAT_SECS;
    lat_run L = {.s = s, .topic = topic, .total = total, .lat = calloc((size_t)total, 8)};
    krappy_client *c = connect_to(s);
    krappy_batch *b = krappy_batch_new();
    pthread_t th;
    if (L.lat == NULL || b == NULL)
        die(NULL, "out of memory");
    if (krappy_register_producer(c, topic, "lat", NULL) != KRAPPY_OK)
        die(c, "register");
    if (pthread_create(&th, NULL, lat_consumer, &L) != 0)
        die(NULL, "cannot start the consumer thread");
    uint64_t t0 = mono_ns();
    for (long n = 0; n < total; n++) {
        uint64_t due = t0 + (uint64_t)n * (1000000000ull / LAT_RATE), now = mono_ns();
        if (due > now)
            usleep((useconds_t)((due - now) / 1000));
        char key[16];
        uint8_t val[8];
        snprintf(key, sizeof key, "lat-%05ld", n % 1000);
        now = mono_ns();
        memcpy(val, &now, 8);
        krappy_batch_reset(b);
        if (krappy_batch_add_bytes(b, KRAPPY_KEY_TEXT, key, strlen(key), val, 8) != KRAPPY_OK ||
            krappy_publish(c, b, KRAPPY_ACK_WRITE, NULL) != KRAPPY_OK)
            die(c, "publish");
    }
    pthread_join(th, NULL);
    if (L.got < total)
        die(NULL, "latency events did not all come back");
    memcpy(pool, L.lat, (size_t)total * sizeof *pool);
    qsort(L.lat, (size_t)total, 8, cmp_u64);
    *p50 = (double)L.lat[total / 2] / 1e3;
    double p99 = (double)L.lat[total * 99 / 100] / 1e3;
    free(L.lat);
    krappy_batch_free(b);
    krappy_client_free(c);
    return p99;
}

static krappy_topic_stats *stats(const e2e_server *s, const char *topic)
{
    krappy_client *c = connect_to(s);
    krappy_topic_stats *st;
    if (krappy_stats(c, topic, NULL, &st) != KRAPPY_OK)
        die(c, "stats");
    krappy_client_free(c);
    return st;
}

/* The compacted topic's settings; cleanup= as given (compaction on or off). */
static void configure(const e2e_server *s, const char *topic, const char *cleanup)
{
    krappy_client *c = connect_to(s);
    const char *set[] = {cleanup, "segment_bytes=16M", "segment_ms=1s", "delete_retention_ms=0"};
    if (krappy_topic_config(c, topic, set, 4, NULL) != KRAPPY_OK)
        die(c, "topic-config");
    krappy_client_free(c);
}

/* A mark on stderr: CLOCK_MONOTONIC, which perf's timestamps follow. */
static void print_mark(const char *what)
{
    double la[3] = {0, 0, 0};
    (void)getloadavg(la, 3);
    fprintf(stderr, "%s at %.6f (load %.2f)\n", what, (double)mono_ns() / 1e9, la[0]);
}

/* Of krappyd's loop thread (its main thread): the time it spent waiting
 * for a CPU while runnable, in ns (/proc/PID/task/PID/schedstat), and the
 * times it was preempted (nonvoluntary_ctxt_switches in .../status); 0 when
 * unknown. */
static void loop_sched(const e2e_server *s, uint64_t *runq_ns, uint64_t *preempted)
{
    char path[64], line[128];
    unsigned long long run = 0, wait = 0, n = 0;
    *runq_ns = *preempted = 0;
    snprintf(path, sizeof path, "/proc/%d/task/%d/schedstat", (int)s->pid, (int)s->pid);
    FILE *f = fopen(path, "r");
    if (f != NULL) {
        if (fscanf(f, "%llu %llu", &run, &wait) == 2)
            *runq_ns = wait;
        fclose(f);
    }
    snprintf(path, sizeof path, "/proc/%d/task/%d/status", (int)s->pid, (int)s->pid);
    if ((f = fopen(path, "r")) == NULL)
        return;
    while (fgets(line, sizeof line, f) != NULL)
        if (sscanf(line, "nonvoluntary_ctxt_switches: %llu", &n) == 1)
            *preempted = n;
    fclose(f);
}

/* CPU seconds so far of krappyd's compaction thread (0 before it runs). */
static double compact_cpu_s(const e2e_server *s)
{
    pid_t tid = e2e_thread_named(s->pid, "kr-compact");
    return tid < 0 ? 0 : e2e_pid_cpu_s(s->pid, tid);
}

/* The rewrites of topic so far (and the bytes they gave back, if asked). */
static uint64_t rewritten(const e2e_server *s, const char *topic, uint64_t *reclaimed)
{
    krappy_topic_stats *st = stats(s, topic);
    uint64_t n = st->segments_rewritten;
    if (reclaimed != NULL)
        *reclaimed = st->reclaimed_bytes;
    krappy_topic_stats_free(st);
    return n;
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

/* The median of v[0..n) (sorts v). */
static double median(double *v, int n)
{
    qsort(v, (size_t)n, sizeof *v, cmp_double);
    return n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

/* The bound as a table row: `with` at most 10% worse than
 * `without` (higher when higher_is_worse, else lower). */
static void print_bound(const char *what, const char *unit, double without, double with,
                        bool higher_is_worse)
{
    double ratio = with / without;
    bool met = higher_is_worse ? ratio <= 1.10 : ratio >= 0.90;
    printf("| %s | %.0f %s | %.0f %s | %.1f%% | %s |\n", what, without, unit, with, unit,
           100.0 * ratio, met ? "met" : "MISSED");
}

/* What ab_rows measured, for rows without compaction [0] and with it [1]:
 * the rows pooled (latency: p99 and p50 of all their samples, in us;
 * ingest: all their events over all their time), and the median row. */
typedef struct ab_result {
    double pooled[2], median[2];
    double p50[2]; /* latency rows: pooled p50 */
    int idle;      /* rows with compaction in which no rewrite ran */
} ab_result;

/*
 * ROUNDS rows with compaction of topic off, then on, alternated on one
 * server (topic holds closed segments never compacted: cleanup "delete"),
 * so that both see the same machine; a row with compaction off starts once
 * the last rewrite is through (nothing rewritten for 2 s), every row once
 * the server is idle, and compaction is turned on as a row with it starts. A row
 * measures produce->consume latency (p50, p99), or with ingest_rows batched
 * ingest of PROBE_EVENTS into PROBE_TOPIC (events/s). Prints a row each;
 * fills *res (idle: the rows with compaction in which its thread took no
 * CPU, which measured nothing).
 */
static void ab_rows(const e2e_server *s, const char *topic, int rounds, bool ingest_rows,
                    ab_result *res)
{
    long per_row = (long)LAT_RATE * LAT_SECS;
    double *fig[2] = {calloc((size_t)rounds, sizeof(double)),
                      calloc((size_t)rounds, sizeof(double))};
    uint64_t *pool[2] = {NULL, NULL};
    double secs[2] = {0, 0};
    if (!ingest_rows) {
        pool[0] = calloc((size_t)(rounds * per_row), sizeof(uint64_t));
        pool[1] = calloc((size_t)(rounds * per_row), sizeof(uint64_t));
    }
    if (fig[0] == NULL || fig[1] == NULL || (!ingest_rows && (pool[0] == NULL || pool[1] == NULL)))
        die(NULL, "out of memory");
    *res = (ab_result){.idle = 0};
    printf("| row | compaction | its CPU | segments rewritten, bytes reclaimed meanwhile | load | "
           "loop: waited for a CPU, preempted | %s |\n|---|---|---|---|---|---|%s\n",
           ingest_rows ? "events/s" : "p50 | p99", ingest_rows ? "---|" : "---|---|");
    for (int r = 0; r < rounds; r++) {
        for (int c = 0; c < 2; c++) {
            char name[32];
            snprintf(name, sizeof name, "%s-%s%d", ingest_rows ? "probe" : "lat", c ? "on" : "off",
                     r);
            if (!c) {
                configure(s, topic, "cleanup=delete");
                uint64_t n = rewritten(s, topic, NULL);
                for (int i = 0; i < 30; i++) { /* at most 60 s */
                    usleep(2000000);
                    uint64_t m = rewritten(s, topic, NULL);
                    if (m == n)
                        break;
                    n = m;
                }
            }
            /* Every row starts on an idle server: the previous row's
             * checkpoints and the view's compactions after them are
             * through (after an ingest row, seconds of work). Compaction
             * starts with the row, so that the topic has work left for
             * every row. */
            e2e_wait_idle(s, 500, 0.02, SETTLE_MAX_S * 1000); /* no CPU tick in 0.5 s */
            if (c)
                configure(s, topic, "cleanup=compact");
            uint64_t rc0, n0 = rewritten(s, topic, &rc0);
            print_mark(name);
            double la[3] = {0, 0, 0};
            (void)getloadavg(la, 3);
            uint64_t rq0, pre0, rq1, pre1;
            loop_sched(s, &rq0, &pre0);
            double cpu0 = compact_cpu_s(s);
            double x = 0,
                   v = ingest_rows
                           ? ingest(s, PROBE_TOPIC, PROBE_EVENTS, 100000, (uint32_t)(7 + 2 * r + c))
                           : latency(s, name, pool[c] + (size_t)r * (size_t)per_row, &x);
            loop_sched(s, &rq1, &pre1);
            double cpu1 = compact_cpu_s(s);
            print_mark("  done");
            uint64_t rc1, n1 = rewritten(s, topic, &rc1);
            printf("| %d | %s | %.0f ms | %llu, %.1f MiB | %.1f | %.1f ms, %llu times | ", r + 1,
                   c ? "on" : "off", (cpu1 - cpu0) * 1e3, (unsigned long long)(n1 - n0),
                   (double)(rc1 - rc0) / 1048576.0, la[0], (double)(rq1 - rq0) / 1e6,
                   (unsigned long long)(pre1 - pre0));
            if (ingest_rows)
                printf("%.0f |\n", v);
            else
                printf("%.0f us | %.0f us |\n", x, v);
            fflush(stdout);
            fig[c][r] = v;
            secs[c] += ingest_rows ? (double)PROBE_EVENTS / v : 0;
            res->idle += c && cpu1 - cpu0 < 0.005; /* not one clock tick */
        }
    }
    configure(s, topic, "cleanup=delete");
    for (int c = 0; c < 2; c++) {
        res->median[c] = median(fig[c], rounds);
        if (ingest_rows) {
            res->pooled[c] = (double)PROBE_EVENTS * rounds / secs[c];
        } else {
            size_t n = (size_t)(rounds * per_row);
            qsort(pool[c], n, sizeof *pool[c], cmp_u64);
            res->pooled[c] = (double)pool[c][n * 99 / 100] / 1e3;
            res->p50[c] = (double)pool[c][n / 2] / 1e3;
        }
        free(fig[c]);
        free(pool[c]);
    }
}

/* Says so when rows with compaction saw no rewrite run. */
static void print_idle(int idle)
{
    if (idle > 0)
        printf("\n%d of the rows with compaction saw no rewrite run (the topic had nothing "
               "left to compact): they measured nothing.\n",
               idle);
}

/* The bound's table: the pooled rows against the bound, and the
 * median row for reference. */
static void print_bounds(const char *what, const char *unit, int rounds, const ab_result *res,
                         bool higher_is_worse)
{
    printf("\n| bound (issue 16), the %d rows of each kind | without compaction | with "
           "compaction | with / without | bound |\n|---|---|---|---|---|\n",
           rounds);
    print_bound(what, unit, res->pooled[0], res->pooled[1], higher_is_worse);
    printf("| (the median row, for reference) | %.0f %s | %.0f %s | %.1f%% | |\n", res->median[0],
           unit, res->median[1], unit, 100.0 * res->median[1] / res->median[0]);
    if (res->p50[0] > 0)
        printf("| (p50 of all samples, for reference) | %.0f us | %.0f us | %.1f%% | |\n",
               res->p50[0], res->p50[1], 100.0 * res->p50[1] / res->p50[0]);
    print_idle(res->idle);
}

/* --ab: only the latency rows, on topic "kv" of EVENTS events over KEYS
 * keys. */
static int run_ab(int rounds, long events, long keys, const char *rate)
{
    e2e_server s;
    const char *args[] = {"--compact-rate", rate, NULL};
    if (e2e_start(&s, args) < 0)
        die(NULL, "cannot start krappyd");
    configure(&s, "kv", "cleanup=delete");
    double fill = ingest(&s, "kv", events, (uint32_t)keys, 42);
    fprintf(stderr, "filled kv: %ld events, %.0f events/s; krappyd pid %d\n", events, fill,
            (int)s.pid);
    sleep(5); /* its checkpoint */
    ab_result res;
    ab_rows(&s, "kv", rounds, false, &res);
    print_bounds(LAT_BOUND, "us", rounds, &res, true);
    fprintf(stderr, "krappyd VmRSS at the end: %ld KiB\n", e2e_rss_kib(&s));
    e2e_stop(&s, 30000);
    return 0;
}

int main(int argc, char **argv)
{
    int ab = 0;
    if (argc > 2 && strcmp(argv[1], "--ab") == 0) {
        ab = atoi(argv[2]);
        argc -= 2;
        argv += 2;
        if (ab < 1) {
            fprintf(stderr, "bench_compact: --ab wants a number of rounds >= 1\n");
            return 2;
        }
    }
    long events = argc > 1 ? atol(argv[1]) : 10000000;
    long keys = argc > 2 ? atol(argv[2]) : 100000;
    const char *rate = argc > 3 ? argv[3] : "64M";
    if (events < BATCH || keys < 1 || keys > 100000000) {
        fprintf(stderr, "usage: bench_compact [--ab ROUNDS] [EVENTS >= 1000 [KEYS [RATE]]]\n");
        return 2;
    }
    if (ab > 0)
        return run_ab(ab, events, keys, rate);
    e2e_server s;
    const char *args[] = {"--compact-rate", rate, NULL};
    if (e2e_start(&s, args) < 0)
        die(NULL, "cannot start krappyd");

    /* The reference: the same fill into a plain topic, then the probe. */
    (void)ingest(&s, "plain", events, (uint32_t)keys, 42);
    sleep(5); /* its checkpoint */

    configure(&s, "plain", "cleanup=delete");
    configure(&s, "kv", "cleanup=compact");
    double t0 = now_s();
    double fill = ingest(&s, "kv", events, (uint32_t)keys, 42);
    double fill_s = now_s() - t0;
    krappy_topic_stats *st = stats(&s, "kv");
    uint64_t written = st->bytes;
    uint64_t live = (uint64_t)keys * 130; /* ~130 bytes an event as stored */
    krappy_topic_stats_free(st);

    /* Until compaction is through: nothing dirty, nothing rewritten for a
     * few seconds (segment_ms closed the last segment). */
    uint64_t last = 0, quiet_since = 0;
    for (int i = 0; i < 6000; i++) {
        st = stats(&s, "kv");
        uint64_t n = st->segments_rewritten, dirty = st->dirty_bytes;
        krappy_topic_stats_free(st);
        if (n != last) {
            last = n;
            quiet_since = (uint64_t)i;
        } else if (dirty == 0 && (uint64_t)i - quiet_since > 30) {
            break;
        }
        usleep(100000);
    }
    st = stats(&s, "kv");
    uint64_t after = st->bytes, reclaimed = st->reclaimed_bytes, ms = st->compact_ms;
    uint64_t segs = st->segments_rewritten, removed = st->events_removed;
    krappy_topic_stats_free(st);
    /* Bytes compaction read: what it gave back plus what it kept, at
     * least; it wrote what it kept. */
    double moved = (double)reclaimed + 2.0 * (double)after;
    printf("| events | keys | written | after compaction | live data | after / live |\n");
    printf("|---|---|---|---|---|---|\n");
    printf("| %ld | %ld | %.1f MiB | %.1f MiB | %.1f MiB | %.2f |\n", events, keys,
           written / 1048576.0, after / 1048576.0, live / 1048576.0, (double)after / live);
    printf("\n| compaction | segments rewritten | events removed | time | rate |\n");
    printf("|---|---|---|---|---|\n");
    printf("| --compact-rate %s | %llu | %llu | %.1f s | %.0f MiB/s |\n", rate,
           (unsigned long long)segs, (unsigned long long)removed, ms / 1000.0,
           ms > 0 ? moved / 1048576.0 / (ms / 1000.0) : 0.0);
    printf("\n| batched ingest (1000/batch, 8 in flight) | events/s |\n|---|---|\n");
    printf("| filling the compacted topic (%.1f s) | %.0f |\n", fill_s, fill);

    /* The bounds are the at the throttle krappyd ships with: the
     * rows below run it with its default --compact-rate (RATE above shows
     * what the machine does). */
    if (e2e_stop_keep(&s, 30000) != 0 || e2e_restart(&s, NULL) < 0)
        die(NULL, "cannot restart krappyd");
    printf("\nThe rows below: krappyd restarted with its default --compact-rate.\n");

    /* Produce->consume: rows with compaction off and on alternated, the
     * compacted topic's pass through; the plain topic's EVENTS events are
     * what the rows with compaction rewrite. */
    printf("\n| produce->consume (%d events/s, 1 a PUBLISH, ack write), topic \"plain\" "
           "compacted in the rows with compaction |\n\n",
           LAT_RATE);
    ab_result res;
    ab_rows(&s, "plain", LAT_ROUNDS, false, &res);
    print_bounds(LAT_BOUND, "us", LAT_ROUNDS, &res, true);

    /* Batched ingest likewise, against a topic of EVENTS events not yet
     * compacted (the latency rows' rewrites went through most of plain):
     * every row with compaction overlaps a rewrite. */
    configure(&s, "plain2", "cleanup=delete");
    (void)ingest(&s, "plain2", events, (uint32_t)keys, 43);
    krappy_client *c = connect_to(&s);
    const char *probe[] = {"cleanup=delete", "retention_bytes=1G"};
    if (krappy_topic_config(c, PROBE_TOPIC, probe, 2, NULL) != KRAPPY_OK)
        die(c, "topic-config");
    krappy_client_free(c);
    (void)ingest(&s, PROBE_TOPIC, PROBE_EVENTS, 100000, 5); /* its keys in the view */
    sleep(5);                                               /* the checkpoints */
    printf("\n| batched ingest of %d events (1000/batch, 8 in flight) into a topic of its own, "
           "topic \"plain2\" (%ld events) compacted in the rows with compaction |\n\n",
           PROBE_EVENTS, events);
    ab_rows(&s, "plain2", INGEST_ROUNDS, true, &res);
    print_bounds("batched ingest at most 10% slower (all events over all the time)", "events/s",
                 INGEST_ROUNDS, &res, false);
    e2e_stop(&s, 30000);
    return 0;
}
