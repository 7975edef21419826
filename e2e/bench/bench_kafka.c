/*
 * e2e/bench/bench_kafka.c - the Kafka port against the Krappy port, on one
 * krappyd (issue 15's figures):
 *   produce: librdkafka 1M records (16-byte keys from 100,000, 100-byte
 *            values), default linger and batching, acks=1, as fast as it
 *            takes them; then krappy's own client on the Krappy port with
 *            batches of the size librdkafka sent (records per Produce, read
 *            from the server's /metrics), 8 in flight, ack "write";
 *   consume: librdkafka from offset 0 to the end of its topic (default
 *            fetch sizes, messages taken in batches from the consumer
 *            queue), every record's key and value looked at, timed once
 *            connected (warm_up); then FETCH
 *            from 0 on the Krappy port, every event decoded - each once the
 *            server is idle again after the produce phase before it.
 *
 *   bench_kafka [RECORDS [REPETITIONS]]      default 1000000, 5
 * Each repetition runs the four rows on a fresh krappyd; a row is the
 * median repetition's (with min and max), the targets compare medians, and
 * each repetition's ratios are printed too (a row lasts well under a
 * second: one run alone moves the ratios by 0.15).
 * Uses $KRAPPYD (default bin/krappyd) in a temp dir. Each row gives the
 * rate, the client's and the server's CPU, and the server's loop thread:
 * its CPU and its minor page faults per 1000 records.
 *
 * librdkafka runs with its defaults but acks=1 (and the consumer's
 * group.id, no auto-commit), as Kafka's own perf tools do: a consumer
 * fetches at most max.partition.fetch.bytes (1 MiB) per partition per Fetch
 * (fetch.max.bytes, 50 MiB, does not bind with one partition), keeps
 * queued.min.messages (100,000) ahead in its queue, and check.crcs is off;
 * fetch.wait.max.ms (500) only matters at the topic's end. None of them caps
 * a consumer reading from far behind. $KRAPPY_BENCH_RDKAFKA overrides them
 * for experiments.
 *
 * Where a request's time goes: with $KRAPPY_BENCH_TRACE set, krappyd runs
 * with --log-level debug - a "Kafka request timeline" line per request in
 * its log (kept, and its path printed: when the frame's first bytes were
 * seen, read whole, handed to the store, written, its reply queued and
 * taken by the socket) - and the producer prints librdkafka's
 * debug=protocol,msg lines (Sent/Received per request) on stderr.
 *
 * Between phases the server is left to go idle (its checkpoints of what was
 * produced are the producing phase's cost) and its /metrics are read. A
 * profiler can dump there: the server's instructions per phase, all
 * threads, are what a loaded machine measures faithfully -
 *   KRAPPYD=/path/to/krappyd-under-callgrind bench_kafka 100000 1
 * with a script that runs `valgrind --tool=callgrind
 * --dump-before=on_metrics bin/krappyd "$@"`: callgrind.out.PID.1 is start-up,
 * .2 the Kafka producer, .3 the Kafka consumer, .6 krappy's producer, .7
 * its FETCH (the others are the reads of the counters printed below).
 */
#include <poll.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <librdkafka/rdkafka.h>

#include "../harness.h"
#include "krappy/client.h"
#include "proto/msg.h"

#define KEYS        100000
#define VALUE_BYTES 100
#define IN_FLIGHT   8

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

/* A measured run: rate, CPU of client, server and the server's loop
 * thread in % of one core, and the loop thread's minor page faults per 1000
 * records (memory it touches for the first time, or again after malloc
 * gave it back to the kernel: kernel time its CPU includes). */
typedef struct run {
    double rate, cli, srv, loop, faults;
} run;

typedef struct meter {
    double t0, c0, s0, l0, f0;
} meter;

static meter start(const e2e_server *s)
{
    return (meter){now_s(), cpu_s(), e2e_pid_cpu_s(s->pid, 0), e2e_pid_cpu_s(s->pid, s->pid),
                   e2e_pid_minor_faults(s->pid, s->pid)};
}

static run stop(const meter *m, const e2e_server *s, double count)
{
    double secs = now_s() - m->t0;
    return (run){count / secs, 100 * (cpu_s() - m->c0) / secs,
                 100 * (e2e_pid_cpu_s(s->pid, 0) - m->s0) / secs,
                 100 * (e2e_pid_cpu_s(s->pid, s->pid) - m->l0) / secs,
                 1000 * (e2e_pid_minor_faults(s->pid, s->pid) - m->f0) / count};
}

/* Wait (at most 15 s) until the server is idle - its checkpoints of what
 * was just produced done - so that a consume phase is measured alone. */
static void settle(const e2e_server *s)
{
    e2e_wait_idle(s, 300, 0.05, 15000);
}

static void die(const char *what, const char *why)
{
    fprintf(stderr, "bench_kafka: %s: %s\n", what, why);
    exit(1);
}

/* A record's key is "key-%011u" of a number drawn from KEYS. The keys are
 * formatted once before anything is timed: formatting one per
 * record cost the producing thread ~15% of its time, in snprintf - a cost
 * of this program, not of either port, and librdkafka's producing thread is
 * what bounds its row. */
static char key_table[KEYS][17];

static void format_keys(void)
{
    for (unsigned k = 0; k < KEYS; k++)
        snprintf(key_table[k], sizeof key_table[k], "key-%011u", k);
}

static const char *key_of(uint32_t *seed)
{
    *seed = *seed * 1103515245u + 12345u;
    return key_table[(*seed >> 8) % KEYS];
}

/* ---- the Kafka port ---- */

static void set(rd_kafka_conf_t *conf, const char *k, const char *v);

/* $KRAPPY_BENCH_RDKAFKA: extra librdkafka settings, "k=v,k=v", for
 * experiments (the figures printed are with the defaults); separated by
 * ';' instead when a value holds commas ("debug=msg,protocol;linger.ms=5"). */
static void extra_settings(rd_kafka_conf_t *conf)
{
    const char *env = getenv("KRAPPY_BENCH_RDKAFKA");
    if (env == NULL)
        return;
    char buf[1024];
    snprintf(buf, sizeof buf, "%s", env);
    const char *sep = strchr(buf, ';') != NULL ? ";" : ",";
    char *save = NULL;
    for (char *kv = strtok_r(buf, sep, &save); kv != NULL; kv = strtok_r(NULL, sep, &save)) {
        char *eq = strchr(kv, '=');
        if (eq == NULL)
            die("KRAPPY_BENCH_RDKAFKA", "expected k=v,k=v or k=v;k=v");
        *eq = '\0';
        set(conf, kv, eq + 1);
    }
}

static rd_kafka_t *kafka_client(const e2e_server *s, rd_kafka_type_t type, rd_kafka_conf_t *conf)
{
    char bs[64], err[512];
    if (getenv("KRAPPY_BENCH_TRACE") != NULL && type == RD_KAFKA_PRODUCER)
        set(conf, "debug", "protocol,msg");
    extra_settings(conf);
    snprintf(bs, sizeof bs, "127.0.0.1:%s", s->kafka_port);
    if (rd_kafka_conf_set(conf, "bootstrap.servers", bs, err, sizeof err) != RD_KAFKA_CONF_OK)
        die("conf", err);
    rd_kafka_t *rk = rd_kafka_new(type, conf, err, sizeof err);
    if (rk == NULL)
        die("rd_kafka_new", err);
    return rk;
}

static void set(rd_kafka_conf_t *conf, const char *k, const char *v)
{
    char err[512];
    if (rd_kafka_conf_set(conf, k, v, err, sizeof err) != RD_KAFKA_CONF_OK)
        die(k, err);
}

/* Connect and learn the cluster and `topic`'s leader before a phase is
 * timed, as the Krappy port's client is connected and its topic registered
 * before its rows. Without the topic, librdkafka asks for a partition's
 * leader only late: a consumer assigned a partition whose leader it does
 * not know yet retries its offset query after a fixed 500 ms back-off, and
 * a producer whose first record names a topic missing from the full
 * metadata it just cached waits for its once-a-second scan of unknown
 * topics (up to 1 s before the first Produce, half of a million-record
 * produce). Asking for the topic creates it (Metadata's
 * allow_auto_topic_creation, librdkafka's default for a producer). */
static void warm_up(rd_kafka_t *rk, const char *topic)
{
    rd_kafka_topic_t *rkt = rd_kafka_topic_new(rk, topic, NULL);
    const struct rd_kafka_metadata *md;
    rd_kafka_resp_err_t e = rd_kafka_metadata(rk, 0, rkt, &md, 10000);
    if (e != RD_KAFKA_RESP_ERR_NO_ERROR)
        die("metadata", rd_kafka_err2str(e));
    rd_kafka_metadata_destroy(md);
    rd_kafka_topic_destroy(rkt);
}

static long delivered, failed;

static void on_delivery(rd_kafka_t *rk, const rd_kafka_message_t *m, void *opaque)
{
    (void)rk;
    (void)opaque;
    if (m->err)
        failed++;
    else
        delivered++;
}

static run kafka_produce(const e2e_server *s, long records)
{
    rd_kafka_conf_t *conf = rd_kafka_conf_new();
    set(conf, "acks", "1");
    rd_kafka_conf_set_dr_msg_cb(conf, on_delivery);
    delivered = failed = 0;
    rd_kafka_t *rk = kafka_client(s, RD_KAFKA_PRODUCER, conf);
    warm_up(rk, "kbench");
    char value[VALUE_BYTES];
    memset(value, 'v', sizeof value);
    uint32_t seed = 42;
    meter m = start(s);
    for (long i = 0; i < records; i++) {
        const char *key = key_of(&seed);
        for (;;) {
            rd_kafka_resp_err_t e =
                rd_kafka_producev(rk, RD_KAFKA_V_TOPIC("kbench"), RD_KAFKA_V_PARTITION(0),
                                  RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY), RD_KAFKA_V_KEY(key, 16),
                                  RD_KAFKA_V_VALUE(value, sizeof value), RD_KAFKA_V_END);
            if (e == RD_KAFKA_RESP_ERR_NO_ERROR)
                break;
            if (e != RD_KAFKA_RESP_ERR__QUEUE_FULL)
                die("produce", rd_kafka_err2str(e));
            rd_kafka_poll(rk, 10);
        }
        rd_kafka_poll(rk, 0);
    }
    if (rd_kafka_flush(rk, 60000) != RD_KAFKA_RESP_ERR_NO_ERROR)
        die("flush", "timed out");
    run r = stop(&m, s, (double)records);
    rd_kafka_destroy(rk);
    if (failed > 0 || delivered != records)
        die("produce", "records were not delivered");
    return r;
}

static run kafka_consume(const e2e_server *s, long records)
{
    rd_kafka_conf_t *conf = rd_kafka_conf_new();
    set(conf, "group.id", "kbench"); /* required by the consumer API; not joined */
    set(conf, "enable.auto.commit", "false");
    rd_kafka_t *rk = kafka_client(s, RD_KAFKA_CONSUMER, conf);
    rd_kafka_topic_partition_list_t *tp = rd_kafka_topic_partition_list_new(1);
    rd_kafka_topic_partition_list_add(tp, "kbench", 0)->offset = RD_KAFKA_OFFSET_BEGINNING;
    warm_up(rk, "kbench");
    meter m = start(s);
    if (rd_kafka_assign(rk, tp) != RD_KAFKA_RESP_ERR_NO_ERROR)
        die("assign", "refused");
    long seen = 0;
    uint64_t bytes = 0;
    double deadline = now_s() + 120;
    /* Messages in batches from the consumer queue (what a consumer that
     * wants speed does; one rd_kafka_consumer_poll per message costs more
     * client CPU than the broker spends on it). */
    rd_kafka_queue_t *q = rd_kafka_queue_get_consumer(rk);
    static rd_kafka_message_t *msgs[10000];
    while (seen < records && now_s() < deadline) {
        ssize_t n = rd_kafka_consume_batch_queue(q, 1000, msgs, 10000);
        for (ssize_t i = 0; i < n; i++) {
            rd_kafka_message_t *msg = msgs[i];
            if (msg->err == RD_KAFKA_RESP_ERR_NO_ERROR) {
                if (msg->offset != seen)
                    die("consume", "records out of order");
                bytes += msg->len + msg->key_len;
                seen++;
            } else if (msg->err != RD_KAFKA_RESP_ERR__PARTITION_EOF) {
                die("consume", rd_kafka_message_errstr(msg));
            }
            rd_kafka_message_destroy(msg);
        }
    }
    rd_kafka_queue_destroy(q);
    run r = stop(&m, s, (double)seen);
    if (seen < records || bytes != (uint64_t)seen * (VALUE_BYTES + 16))
        die("consume", "not every record came back whole");
    rd_kafka_topic_partition_list_destroy(tp);
    rd_kafka_consumer_close(rk);
    rd_kafka_destroy(rk);
    return r;
}

/* ---- the Krappy port ---- */

static void kdie(krappy_client *c, const char *what)
{
    die(what, krappy_client_errmsg(c));
}

static void build_batch(kr_buf *b, uint32_t *seed, int n)
{
    static uint8_t value[VALUE_BYTES + 2];
    static kr_event_out_spec ev[100000];
    value[0] = 0x58; /* byte string, 1-byte length: as Kafka values are stored */
    value[1] = VALUE_BYTES;
    memset(value + 2, 'v', VALUE_BYTES);
    for (int i = 0; i < n; i++) {
        ev[i] = (kr_event_out_spec){
            .key = key_of(seed), .key_len = 16, .value = value, .value_len = VALUE_BYTES + 2};
    }
    kr_buf_reset(b);
    kr_enc_publish(b, (kr_cid){0}, KR_ACK_WRITE, ev, (size_t)n);
}

static run port_produce(krappy_client *c, const e2e_server *s, long records, int batch)
{
    kr_buf b;
    kr_buf_init(&b, 64u << 20);
    uint32_t seed = 42;
    long batches = (records + batch - 1) / batch, sent = 0, got = 0;
    meter m = start(s);
    while (got < batches) {
        while (sent < batches && sent - got < IN_FLIGHT) {
            long left = records - sent * batch;
            build_batch(&b, &seed, (int)(left < batch ? left : batch));
            if (krappy_send(c, KRAPPY_T_PUBLISH, b.data, b.len) != KRAPPY_OK)
                kdie(c, "send");
            sent++;
        }
        krappy_frame f;
        if (krappy_recv(c, &f) != KRAPPY_OK || krappy_reply_error(c, &f) != KRAPPY_OK)
            kdie(c, "publish");
        got++;
    }
    kr_buf_free(&b);
    return stop(&m, s, (double)records);
}

static run port_fetch(krappy_client *c, const e2e_server *s, uint64_t end)
{
    kr_buf b;
    kr_buf_init(&b, 1 << 20);
    uint64_t off = 0;
    meter m = start(s);
    while (off < end) {
        kr_buf_reset(&b);
        kr_enc_fetch(&b, (kr_cid){0}, "kbench2", off, 100000, 0, 64u << 20);
        krappy_frame f;
        if (krappy_call(c, KRAPPY_T_FETCH, b.data, b.len, &f) != KRAPPY_OK)
            kdie(c, "fetch");
        if (e2e_events_in_order(f.type, f.payload, f.len, &off, NULL) < 0)
            kdie(c, "fetch reply");
    }
    kr_buf_free(&b);
    return stop(&m, s, (double)end);
}

/* A counter of the server's /metrics (0 when absent). */
static double metric(const e2e_server *s, const char *series)
{
    e2e_server h = *s;
    snprintf(h.port, sizeof h.port, "%s", s->http_port);
    int fd = e2e_connect(&h);
    static char resp[4 << 20];
    size_t got = 0;
    const char req[] = "GET /metrics HTTP/1.0\r\n\r\n";
    if (fd < 0 || e2e_send_all(fd, req, sizeof req - 1) < 0)
        die("metrics", "cannot reach the admin port");
    for (;;) {
        struct pollfd p = {fd, POLLIN, 0};
        if (poll(&p, 1, 5000) != 1)
            break;
        ssize_t r = recv(fd, resp + got, sizeof resp - 1 - got, 0);
        if (r <= 0)
            break;
        got += (size_t)r;
    }
    close(fd);
    resp[got] = '\0';
    size_t n = strlen(series);
    for (const char *p = resp; p != NULL && *p; p = strchr(p, '\n') ? strchr(p, '\n') + 1 : NULL)
        if (strncmp(p, series, n) == 0 && p[n] == ' ')
            return atof(p + n + 1);
    return 0;
}

/* The end of a phase: the server's counters read once (where a profiler
 * of the server dumps; see the top). */
static void phase_end(const e2e_server *s)
{
    (void)metric(s, "krappy_process_resident_memory_bytes");
}

/* The rows, in the order they run and print. */
enum { KAFKA_PRODUCE, KRAPPY_PRODUCE, KAFKA_CONSUME, KRAPPY_FETCH, ROWS };

static const char *const row_names[ROWS] = {
    "Kafka port: librdkafka producer, acks=1, default linger",
    "Krappy port: krappy client, the same batches, 8 in flight, ack write",
    "Kafka port: librdkafka consumer from offset 0",
    "Krappy port: FETCH from offset 0",
};

/* One repetition: the four rows on a fresh krappyd, and what its
 * counters said of librdkafka's requests. */
typedef struct measured {
    run row[ROWS];
    int batch; /* records per librdkafka Produce: the Krappy port's batches */
    double produces, fetches, used, dropped;
} measured;

static int measure(long records, bool trace, measured *m)
{
    e2e_server s;
    const char *args[] = {"--kafka-listen", "127.0.0.1:0", "--log-level", trace ? "debug" : "info",
                          NULL};
    if (e2e_start(&s, args) < 0)
        return -1;
    phase_end(&s);
    m->row[KAFKA_PRODUCE] = kafka_produce(&s, records);
    settle(&s);
    m->produces = metric(&s, "krappy_kafka_requests_total{api=\"Produce\"}");
    int batch = m->produces > 0 ? (int)(records / m->produces + 0.5) : 10000;
    m->batch = batch < 1 ? 1 : batch > 100000 ? 100000 : batch;
    m->row[KAFKA_CONSUME] = kafka_consume(&s, records);
    m->used = metric(&s, "krappy_kafka_prefetches_total{result=\"used\"}");
    m->dropped = metric(&s, "krappy_kafka_prefetches_total{result=\"dropped\"}");
    m->fetches = metric(&s, "krappy_kafka_requests_total{api=\"Fetch\"}");

    krappy_client *c = krappy_client_new(NULL);
    if (c == NULL || krappy_connect(c, s.host, s.port) != KRAPPY_OK ||
        krappy_hello(c, NULL) != KRAPPY_OK)
        kdie(c, "connect");
    kr_buf b;
    kr_buf_init(&b, 4096);
    kr_enc_producer_register(&b, (kr_cid){0}, "kbench2", "bench");
    krappy_frame f;
    if (krappy_call(c, KRAPPY_T_PRODUCER_REGISTER, b.data, b.len, &f) != KRAPPY_OK)
        kdie(c, "register");
    kr_buf_free(&b);
    m->row[KRAPPY_PRODUCE] = port_produce(c, &s, records, m->batch);
    settle(&s);
    phase_end(&s);
    m->row[KRAPPY_FETCH] = port_fetch(c, &s, (uint64_t)records);
    phase_end(&s);
    krappy_client_free(c);
    if (trace)
        fprintf(stderr, "bench_kafka: the server's request timelines are in %s\n", s.log_path);
    return e2e_stop(&s, 20000) == 0 ? 0 : -1;
}

#define REPS_MAX 15

/* Row `which` of the repetition where it had the median rate; min and max. */
static const run *median_of(const measured *m, int reps, int which, double *lo, double *hi)
{
    const run *by[REPS_MAX];
    for (int i = 0; i < reps; i++)
        by[i] = &m[i].row[which];
    for (int i = 1; i < reps; i++) /* insertion sort by rate: a handful */
        for (int j = i; j > 0 && by[j]->rate < by[j - 1]->rate; j--) {
            const run *t = by[j];
            by[j] = by[j - 1];
            by[j - 1] = t;
        }
    *lo = by[0]->rate;
    *hi = by[reps - 1]->rate;
    return by[reps / 2];
}

/* Print row `which` (its median repetition's figures). @return its rate. */
static double print_row(const measured *m, int reps, int which)
{
    double lo, hi;
    const run *r = median_of(m, reps, which, &lo, &hi);
    printf("| %s | %.0f | %.0f – %.0f | %.0f%% | %.0f%% | %.0f%% | %.0f | %.1f |\n",
           row_names[which], r->rate, lo, hi, r->cli, r->srv, r->loop,
           r->loop / 100 / r->rate * 1e9, r->faults);
    return r->rate;
}

static const char *met(double v, double goal)
{
    return v >= goal ? "yes" : "**no**";
}

/* Each repetition's Kafka rate over its Krappy port's, for the record. */
static void ratios(const char *what, const measured *m, int reps, int kafka, int krappy)
{
    printf("%s", what);
    for (int i = 0; i < reps; i++)
        printf(" %.2f", m[i].row[kafka].rate / m[i].row[krappy].rate);
    printf("\n");
}

int main(int argc, char **argv)
{
    long records = argc > 1 ? atol(argv[1]) : 1000000;
    int reps = argc > 2 ? atoi(argv[2]) : 5;
    bool trace = getenv("KRAPPY_BENCH_TRACE") != NULL;
    if (records < 1000 || reps < 1 || reps > REPS_MAX || argc > 3) {
        fprintf(stderr, "usage: bench_kafka [RECORDS >= 1000 [REPETITIONS 1-%d, default 5]]\n",
                REPS_MAX);
        return 2;
    }
    if (trace) {
        reps = 1;
        setenv("KRAPPY_E2E_KEEP", "1", 1); /* the server's log outlives the run */
    }
    e2e_set_start_timeout(120000); /* krappyd may run under a profiler */
    format_keys();
    measured m[REPS_MAX];
    for (int i = 0; i < reps; i++) {
        fprintf(stderr, "bench_kafka: repetition %d of %d\n", i + 1, reps);
        if (measure(records, trace, &m[i]) < 0)
            return 1;
    }

    printf("| krappyd, %ld records of 16-byte keys and %d-byte values, medians of %d "
           "repetitions | records/s | min – max | client CPU | server CPU | server loop thread | "
           "loop µs per 1000 records | loop page faults per 1000 records |\n"
           "|---|--:|--:|--:|--:|--:|--:|--:|\n",
           records, VALUE_BYTES, reps);
    double rate[ROWS];
    for (int r = 0; r < ROWS; r++)
        rate[r] = print_row(m, reps, r);
    double kp = rate[KAFKA_PRODUCE], yp = rate[KRAPPY_PRODUCE];
    double kc = rate[KAFKA_CONSUME], yc = rate[KRAPPY_FETCH];
    const measured *l = &m[reps - 1];
    printf("\nEach repetition on a fresh krappyd; the CPU columns are the median repetition's. In "
           "the last, librdkafka sent %.0f Produce requests, ~%d records each: the Krappy port's "
           "batches. Its consumer sent %.0f Fetch requests; %.0f answers were made ahead of "
           "their request and used, %.0f dropped.\n\n",
           l->produces, l->batch, l->fetches, l->used, l->dropped);
    ratios("Kafka port / Krappy port, each repetition: produce", m, reps, KAFKA_PRODUCE,
           KRAPPY_PRODUCE);
    ratios("Kafka port / Krappy port, each repetition: consume", m, reps, KAFKA_CONSUME,
           KRAPPY_FETCH);
    printf("\n| Kafka port target (medians) | wanted | measured | met |\n|---|--:|--:|:-:|\n");
    printf("| produce | >= 1000000 records/s | %.0f | %s |\n", kp, met(kp, 1e6));
    printf("| consume | >= 2000000 records/s | %.0f | %s |\n", kc, met(kc, 2e6));
    printf("| produce, within 30%% of the Krappy port | >= %.0f | %.0f | %s |\n", 0.7 * yp, kp,
           met(kp, 0.7 * yp));
    printf("| consume, within 30%% of the Krappy port | >= %.0f | %.0f | %s |\n", 0.7 * yc, kc,
           met(kc, 0.7 * yc));
    return 0;
}
