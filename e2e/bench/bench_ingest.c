/*
 * e2e/bench/bench_ingest.c - ingest and FETCH rates of one krappyd, the
 * figures issue 3 asks for:
 *   ingest: 1 connection, batches of 1000 events, 16-byte keys drawn from
 *           100,000, 100-byte values, ack "write" (and "sync"), several
 *           batches in flight;
 *   fetch:  FETCH from offset 0 to the end, `max` at the server's cap,
 *           every event decoded and counted;
 *   idempotent producers (issue 14): the same ingest from a plain and from
 *           an idempotent registration (each PUBLISH with its `seq`),
 *           alternated, with batches of 1000 and of 10 events: what the
 *           sequence check and the longer batch header cost.
 *
 *   bench_ingest [EVENTS [IN_FLIGHT [KEYS]]]   defaults 1000000, 8, 100000
 * KEYS may also come from $KRAPPY_BENCH_KEYS (the argument wins).
 * Uses $KRAPPYD (default bin/krappyd) in a temp dir, or $KRAPPY_E2E_ADDR.
 *
 * Memory (issue 7): with a server of its own it also prints krappyd's
 * resident set right after the "write" load and again 3 s later (once the
 * last checkpoints have run), split into anonymous and file-backed pages
 * from /proc/PID/smaps_rollup, e.g. for the target load
 *   bench_ingest 10000000 8 1000000      (RSS must stay <= 256 MiB)
 * $KRAPPY_BENCH_HOLD=SECONDS pauses that long after those readings (it says
 * so on stderr), to look at the server (smaps, malloc_stats, /metrics).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

#include "../harness.h"
#include "krappy/client.h"
#include "proto/msg.h"

#define BATCH        1000
#define DEFAULT_KEYS 100000
/* Seconds between the two RSS readings after the load. */
#define RSS_SETTLE_S 3

static uint32_t n_keys = DEFAULT_KEYS;

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

static double cpu_s(void)
{
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    return (double)ru.ru_utime.tv_sec + ru.ru_utime.tv_usec / 1e6 + (double)ru.ru_stime.tv_sec +
           ru.ru_stime.tv_usec / 1e6;
}

static double proc_cpu_s(const e2e_server *s)
{
    return e2e_pid_cpu_s(s->pid, 0);
}

/* krappyd's resident set, and its anonymous and file-backed parts. */
typedef struct rss {
    long total, anon, file;
} rss;

static rss read_rss(const e2e_server *s)
{
    rss r = {e2e_rss_kib(s), -1, -1};
    char path[64], line[256];
    snprintf(path, sizeof path, "/proc/%d/smaps_rollup", (int)s->pid);
    FILE *f = fopen(path, "r");
    if (f == NULL)
        return r;
    long v;
    while (fgets(line, sizeof line, f) != NULL) {
        if (sscanf(line, "Anonymous: %ld kB", &v) == 1)
            r.anon = v;
        else if (sscanf(line, "Rss: %ld kB", &v) == 1)
            r.file = v; /* minus anon below */
    }
    fclose(f);
    if (r.file >= 0 && r.anon >= 0)
        r.file -= r.anon;
    return r;
}

static void die(krappy_client *c, const char *what)
{
    fprintf(stderr, "bench_ingest: %s: %s\n", what, krappy_client_errmsg(c));
    exit(1);
}

/* One batch payload: n events (at most BATCH) with keys "key-%011u" (16
 * bytes); an idempotent producer's (`seq` given, advanced by n) or not. */
static void build_batch(kr_buf *b, uint32_t *seed, kr_ack_mode ack, int n, uint64_t *seq)
{
    static char keys[BATCH][17];
    static uint8_t value[101];
    static kr_event_out_spec ev[BATCH];
    value[0] = 0x78; /* text string, 1-byte length */
    value[1] = 98;
    memset(value + 2, 'v', 98);
    for (int i = 0; i < n; i++) {
        *seed = *seed * 1103515245u + 12345u;
        snprintf(keys[i], sizeof keys[i], "key-%011u", (*seed >> 8) % n_keys);
        ev[i] = (kr_event_out_spec){
            .key = keys[i], .key_len = 16, .key_is_text = true, .value = value, .value_len = 100};
    }
    kr_buf_reset(b);
    if (seq != NULL) {
        kr_enc_publish_seq(b, (kr_cid){0}, ack, *seq, ev, (size_t)n);
        *seq += (uint64_t)n;
    } else {
        kr_enc_publish(b, (kr_cid){0}, ack, ev, (size_t)n);
    }
}

/* Publish `events` in batches of `per` (window in flight); seq: an
 * idempotent producer's next sequence number, or NULL. @return events/s. */
static double ingest_batches(krappy_client *c, const e2e_server *s, long events, long window,
                             int per, kr_ack_mode ack, uint64_t *seq, double *srv_cpu,
                             double *cli_cpu)
{
    kr_buf b;
    kr_buf_init(&b, 64u << 20);
    uint32_t seed = 42;
    long batches = events / per, sent = 0, got = 0;
    double t0 = now_s(), c0 = cpu_s(), s0 = proc_cpu_s(s);
    while (got < batches) {
        while (sent < batches && sent - got < window) {
            build_batch(&b, &seed, ack, per, seq);
            if (krappy_send(c, KRAPPY_T_PUBLISH, b.data, b.len) != KRAPPY_OK)
                die(c, "send");
            sent++;
        }
        krappy_frame f;
        if (krappy_recv(c, &f) != KRAPPY_OK)
            die(c, "recv");
        if (krappy_reply_error(c, &f) != KRAPPY_OK)
            die(c, "publish");
        got++;
    }
    double secs = now_s() - t0;
    *cli_cpu = (cpu_s() - c0) / secs;
    *srv_cpu = (proc_cpu_s(s) - s0) / secs;
    kr_buf_free(&b);
    return (double)batches * per / secs;
}

static double ingest(krappy_client *c, const e2e_server *s, long events, long window,
                     kr_ack_mode ack, double *srv_cpu, double *cli_cpu)
{
    return ingest_batches(c, s, events, window, BATCH, ack, NULL, srv_cpu, cli_cpu);
}

/* A connection registered as a producer of `topic`, idempotent or not;
 * *seq gets the sequence number the server expects. */
static krappy_client *producer(const e2e_server *s, const char *topic, bool idempotent,
                               uint64_t *seq)
{
    krappy_client *c = krappy_client_new(NULL);
    krappy_producer_reg reg = {0};
    if (c == NULL || krappy_connect(c, s->host, s->port) != KRAPPY_OK ||
        krappy_hello(c, NULL) != KRAPPY_OK)
        die(c, "connect");
    krappy_err e = idempotent ? krappy_register_producer_idempotent(c, topic, "bench", &reg)
                              : krappy_register_producer(c, topic, "bench", NULL);
    if (e != KRAPPY_OK)
        die(c, "register");
    *seq = reg.seq;
    return c;
}

/*
 * Plain and idempotent ingest of `events` in batches of `per`, four runs
 * each in the order P I I P P I I P, each after a pause that lets the
 * checkpoint of the run before finish (it would take the cores from the
 * next run): the best rate of each, and the least server CPU per event -
 * the cost, which other load on the machine disturbs less than the rate.
 */
static void compare_idempotent(const e2e_server *s, long events, long window, int per)
{
    static const bool order[8] = {false, true, true, false, false, true, true, false};
    uint64_t seq, ignored;
    krappy_client *plain = producer(s, "bench-plain", false, &ignored);
    krappy_client *idem = producer(s, "bench-idem", true, &seq);
    double rate[2] = {0, 0}, cost[2] = {1e18, 1e18}, sc, cc;
    for (int run = 0; run < 8; run++) {
        int k = order[run];
        usleep(1500 * 1000);
        double r = ingest_batches(k ? idem : plain, s, events, window, per, KR_ACK_WRITE,
                                  k ? &seq : NULL, &sc, &cc);
        double us = 1e6 * sc / r; /* server CPU per event */
        if (r > rate[k])
            rate[k] = r;
        if (us < cost[k])
            cost[k] = us;
    }
    printf("| batches of %d, %ld events | %.0f (%.2f us) | %.0f (%.2f us) | %.1f%% (%.1f%%) |\n",
           per, events, rate[0], cost[0], rate[1], cost[1], 100.0 * rate[1] / rate[0],
           100.0 * cost[1] / cost[0]);
    krappy_client_free(plain);
    krappy_client_free(idem);
}

static double fetch_all(krappy_client *c, const e2e_server *s, uint64_t end, double *srv_cpu,
                        double *cli_cpu)
{
    kr_buf b;
    kr_buf_init(&b, 1 << 20);
    uint64_t off = 0, seen = 0;
    double t0 = now_s(), c0 = cpu_s(), s0 = proc_cpu_s(s);
    while (off < end) {
        kr_buf_reset(&b);
        kr_enc_fetch(&b, (kr_cid){0}, "bench", off, 100000, 0, 64u << 20);
        krappy_frame f;
        if (krappy_call(c, KRAPPY_T_FETCH, b.data, b.len, &f) != KRAPPY_OK)
            die(c, "fetch");
        uint64_t next;
        if (e2e_events_in_order(f.type, f.payload, f.len, &seen, &next) < 0)
            die(c, "fetch reply");
        if (next <= off)
            die(c, "next");
        off = next;
    }
    double secs = now_s() - t0;
    *cli_cpu = (cpu_s() - c0) / secs;
    *srv_cpu = (proc_cpu_s(s) - s0) / secs;
    kr_buf_free(&b);
    return (double)seen / secs;
}

int main(int argc, char **argv)
{
    long events = argc > 1 ? atol(argv[1]) : 1000000;
    long window = argc > 2 ? atol(argv[2]) : 8;
    const char *keys_env = getenv("KRAPPY_BENCH_KEYS");
    long keys = argc > 3 ? atol(argv[3]) : keys_env != NULL ? atol(keys_env) : DEFAULT_KEYS;
    if (events < BATCH || window < 1 || keys < 1 || keys > (1l << 24)) {
        fprintf(stderr, "usage: bench_ingest [EVENTS >= 1000 [IN_FLIGHT [KEYS <= 16777216]]]\n");
        return 2;
    }
    n_keys = (uint32_t)keys;
    e2e_server s;
    if (e2e_start_or_external(&s) < 0)
        return 1;
    krappy_client *c = krappy_client_new(NULL);
    if (c == NULL || krappy_connect(c, s.host, s.port) != KRAPPY_OK ||
        krappy_hello(c, NULL) != KRAPPY_OK)
        die(c, "connect");
    kr_buf b;
    kr_buf_init(&b, 4096);
    kr_enc_producer_register(&b, (kr_cid){0}, "bench", "bench");
    krappy_frame f;
    if (krappy_call(c, KRAPPY_T_PRODUCER_REGISTER, b.data, b.len, &f) != KRAPPY_OK)
        die(c, "register");
    kr_buf_free(&b);

    double sc, cc, sc2, cc2, sc3, cc3;
    double w = ingest(c, &s, events, window, KR_ACK_WRITE, &sc, &cc);
    rss r0 = {-1, -1, -1}, r1 = {-1, -1, -1};
    if (s.pid > 0) {
        r0 = read_rss(&s);
        sleep(RSS_SETTLE_S);
        r1 = read_rss(&s);
    }
    const char *hold = getenv("KRAPPY_BENCH_HOLD");
    if (hold != NULL) {
        fprintf(stderr, "bench_ingest: write load done; holding %s s (server pid %d)\n", hold,
                (int)s.pid);
        sleep((unsigned)atoi(hold));
    }
    double y = ingest(c, &s, events / 4, window, KR_ACK_SYNC, &sc2, &cc2);
    double r = fetch_all(c, &s, (uint64_t)(events + events / 4 / BATCH * BATCH), &sc3, &cc3);
    printf("| krappyd, 1 connection, batches of %d, %ld in flight, %ld keys | events/s | server "
           "CPU | client CPU |\n|---|---|---|---|\n",
           BATCH, window, keys);
    printf("| ingest, ack write (%ld events) | %.0f | %.0f%% | %.0f%% |\n", events, w, 100 * sc,
           100 * cc);
    printf("| ingest, ack sync (%ld events) | %.0f | %.0f%% | %.0f%% |\n", events / 4, y, 100 * sc2,
           100 * cc2);
    printf("| FETCH from 0, every event decoded | %.0f | %.0f%% | %.0f%% |\n", r, 100 * sc3,
           100 * cc3);
    printf("\n| idempotent producer vs plain, ack write, %ld in flight, best of 4 | plain "
           "events/s (server CPU per event) | idempotent | idempotent / plain rate (CPU) "
           "|\n|---|---|---|---|\n",
           window);
    compare_idempotent(&s, events / 2, window, BATCH);
    compare_idempotent(&s, events / 5, window * 4, 10);
    if (s.pid > 0) {
        printf("| server RSS after the write load | %ld KiB (%.1f MiB; anon %ld, file %ld) | | |\n",
               r0.total, r0.total / 1024.0, r0.anon, r0.file);
        printf("| server RSS %d s later | %ld KiB (%.1f MiB; anon %ld, file %ld) | | |\n",
               RSS_SETTLE_S, r1.total, r1.total / 1024.0, r1.anon, r1.file);
        printf("| server RSS at the end | %ld KiB | | |\n", e2e_rss_kib(&s));
    }
    krappy_client_free(c);
    return e2e_stop(&s, 20000) == 0 ? 0 : 1;
}
