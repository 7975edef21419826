/*
 * e2e/e2e_kafka.c - the Kafka listener of a real krappyd, driven by real
 * Kafka clients: Debian's kcat (librdkafka 2.0) for every mode a user
 * types - metadata, produce with keys, headers and tombstones, consume
 * from the beginning, the end, the last n and a timestamp, balanced groups
 * of two members that split two topics and take over when one leaves,
 * committed offsets across kill -9 of consumers and server, SASL/PLAIN with
 * a right and a wrong token - and librdkafka in this process for an
 * idempotent acks=all producer with each compression codec, the admin API
 * (CreateTopics, DeleteTopics with a Fetch parked on the topic,
 * DescribeConfigs) and raw frames the clients
 * never send (a newer ApiVersions, unknown APIs, bad sizes, acks 0).
 * On a three-node cluster: topics auto-created through the leader's log
 * (a follower makes none), idempotent batches and their
 * repeats across a leader kill, and librdkafka's idempotent producer
 * through kill -9 of the leader, every record once on every node.
 * Events cross both ports: Kafka-produced ones read with `krappy get` and
 * `krappy fetch`, Krappy-produced ones with kcat. Every wait is bounded.
 */
#include <arpa/inet.h>
#include <poll.h>
#include <pthread.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>
#include <librdkafka/rdkafka.h>

#include "cluster.h"
#include "harness.h"
#include "kafka/codec.h"
#include "util/crc32c.h"

/* Longest a kcat run may take (its own timeouts are shorter). */
#define KCAT_TIMEOUT_S 30

static char out[256 * 1024];

static bool have_kcat(void)
{
    return e2e_run("command -v kcat >/dev/null 2>&1", NULL, 0) == 0;
}

/* A server with the Kafka listener (and `extra` flags). */
static void start(e2e_server *s, const char *const *extra)
{
    const char *args[24] = {"--kafka-listen", "127.0.0.1:0"};
    int n = 2;
    for (int i = 0; extra != NULL && extra[i] != NULL && n < 23; i++)
        args[n++] = extra[i];
    args[n] = NULL;
    assert_int_equal(e2e_start(s, args), 0);
    assert_true(atoi(s->kafka_port) > 0);
}

static void restart(e2e_server *s)
{
    const char *args[] = {"--kafka-listen", "127.0.0.1:0", NULL};
    assert_int_equal(e2e_restart(s, args), 0);
}

/* Run a shell command (with a time limit) into `out`. @return its status. */
static int sh(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

static int sh(const char *fmt, ...)
{
    char cmd[4096], full[4200];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(cmd, sizeof cmd, fmt, ap);
    va_end(ap);
    snprintf(full, sizeof full, "timeout %d sh -c '%s'", KCAT_TIMEOUT_S, cmd);
    return e2e_run(full, out, sizeof out);
}

static const char *bs(const e2e_server *s)
{
    static char b[64];
    snprintf(b, sizeof b, "127.0.0.1:%s", s->kafka_port);
    return b;
}

/* How many lines of `text` are `line` exactly. */
static int count_lines(const char *text, const char *line)
{
    int n = 0;
    size_t len = strlen(line);
    for (const char *p = text; p != NULL && *p;) {
        const char *nl = strchr(p, '\n');
        size_t l = nl ? (size_t)(nl - p) : strlen(p);
        n += l == len && memcmp(p, line, len) == 0;
        p = nl ? nl + 1 : NULL;
    }
    return n;
}

static void sleep_ms(int ms)
{
    struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000};
    nanosleep(&ts, NULL);
}

static uint64_t wall_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

/* ---- kcat: metadata, produce, consume ---- */

static void test_kcat_metadata(void **state)
{
    (void)state;
    if (!have_kcat())
        skip();
    e2e_server s;
    start(&s, NULL);
    assert_int_equal(sh("%s -h 127.0.0.1 -p %s produce orders a=1", e2e_cli(), s.port), 0);
    assert_int_equal(sh("kcat -b %s -L", bs(&s)), 0);
    char want[128];
    snprintf(want, sizeof want, "broker 0 at 127.0.0.1:%s (controller)", s.kafka_port);
    assert_non_null(strstr(out, want));
    assert_non_null(strstr(out, "topic \"orders\" with 1 partitions"));
    assert_non_null(strstr(out, "partition 0, leader 0, replicas: 0, isrs: 0"));
    assert_int_equal(e2e_stop(&s, 10000), 0);
}

static void test_kcat_produce_consume(void **state)
{
    (void)state;
    if (!have_kcat())
        skip();
    e2e_server s;
    start(&s, NULL);
    /* Keys, values, headers (a repeated name: the last wins; a header
     * without a value), and an empty value sent as null (-Z): a tombstone. */
    assert_int_equal(
        sh("printf \"alice:pending\\nbob:paid\\nalice:\\ncarol:shipped\\n\" | kcat -b %s "
           "-P -t orders -K: -Z -H src=web -H src=app -H flag",
           bs(&s)),
        0);
    assert_int_equal(
        sh("kcat -b %s -C -t orders -o beginning -e -q -f \"%%o %%k=%%s (%%S) %%h\\n\"", bs(&s)),
        0);
    assert_int_equal(count_lines(out, "0 alice=pending (7) src=app,flag="), 1);
    assert_int_equal(count_lines(out, "1 bob=paid (4) src=app,flag="), 1);
    assert_int_equal(count_lines(out, "2 alice= (-1) src=app,flag="), 1);
    assert_int_equal(count_lines(out, "3 carol=shipped (7) src=app,flag="), 1);

    /* The latest value per key on the Krappy port: the tombstone deleted
     * alice; the stream has all four. */
    assert_int_equal(sh("%s -h 127.0.0.1 -p %s get orders bob --json", e2e_cli(), s.port), 0);
    assert_non_null(strstr(out, "\"value\":\"70616964\"")); /* h'paid', as hex */
    assert_int_equal(sh("%s -h 127.0.0.1 -p %s get orders alice", e2e_cli(), s.port), 1);
    assert_int_equal(sh("%s -h 127.0.0.1 -p %s fetch orders --json | wc -l", e2e_cli(), s.port), 0);
    assert_int_equal(atoi(out), 4);

    /* -o end: nothing; -o -2: the last two. */
    assert_int_equal(sh("kcat -b %s -C -t orders -o end -e -q -f \"%%o\\n\"", bs(&s)), 0);
    assert_string_equal(out, "");
    assert_int_equal(sh("kcat -b %s -C -t orders -o -2 -e -q -f \"%%o\\n\"", bs(&s)), 0);
    assert_string_equal(out, "2\n3\n");

    /* -o s@TIMESTAMP: the first record at or after it (records carry the
     * producer's time). */
    sleep_ms(50);
    uint64_t t = wall_ms();
    sleep_ms(50);
    assert_int_equal(sh("printf \"dave:new\\n\" | kcat -b %s -P -t orders -K:", bs(&s)), 0);
    assert_int_equal(sh("kcat -b %s -C -t orders -o s@%llu -e -q -f \"%%o %%k\\n\"", bs(&s),
                        (unsigned long long)t),
                     0);
    assert_string_equal(out, "4 dave\n");
    assert_int_equal(e2e_stop(&s, 10000), 0);
}

/* Events the Krappy port stored, read by a Kafka client: strings as their
 * bytes, other CBOR as JSON. */
static void test_krappy_events_to_kcat(void **state)
{
    (void)state;
    if (!have_kcat())
        skip();
    e2e_server s;
    start(&s, NULL);
    char path[300];
    snprintf(path, sizeof path, "%s/events.json", s.dir);
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    fputs("{\"key\":\"a\",\"value\":\"hello\"}\n"
          "{\"key\":\"b\",\"value\":{\"x\":[1,2]}}\n"
          "{\"key\":null,\"value\":42,\"headers\":{\"h\":\"v\"}}\n",
          f);
    fclose(f);
    assert_int_equal(sh("%s -h 127.0.0.1 -p %s produce mixed --json < %s", e2e_cli(), s.port, path),
                     0);
    assert_int_equal(
        sh("kcat -b %s -C -t mixed -o beginning -e -q -f \"%%o %%k=%%s %%h\\n\"", bs(&s)), 0);
    assert_int_equal(count_lines(out, "0 a=hello "), 1);
    assert_int_equal(count_lines(out, "1 b={\"x\":[1,2]} "), 1);
    assert_int_equal(count_lines(out, "2 =42 h=v"), 1);
    assert_int_equal(e2e_stop(&s, 10000), 0);
}

/* ---- librdkafka: idempotent acks=all producers, every codec ---- */

static rd_kafka_t *client(const e2e_server *s, rd_kafka_type_t type, const char *const *kv)
{
    char err[512];
    rd_kafka_conf_t *conf = rd_kafka_conf_new();
    assert_int_equal(rd_kafka_conf_set(conf, "bootstrap.servers", bs(s), err, sizeof err),
                     RD_KAFKA_CONF_OK);
    for (int i = 0; kv != NULL && kv[i] != NULL; i += 2)
        if (rd_kafka_conf_set(conf, kv[i], kv[i + 1], err, sizeof err) != RD_KAFKA_CONF_OK)
            fail_msg("%s=%s: %s", kv[i], kv[i + 1], err);
    rd_kafka_t *rk = rd_kafka_new(type, conf, err, sizeof err);
    if (rk == NULL)
        fail_msg("rd_kafka_new: %s", err);
    return rk;
}

static int dr_ok, dr_failed;

static void on_delivery(rd_kafka_t *rk, const rd_kafka_message_t *m, void *opaque)
{
    (void)rk;
    (void)opaque;
    if (m->err)
        dr_failed++;
    else
        dr_ok++;
}

/* Produce n records "k<i>" = "v<i>-<codec>" with a header. */
static void produce_n(const e2e_server *s, const char *topic, const char *codec, int n)
{
    char err[512];
    rd_kafka_conf_t *conf = rd_kafka_conf_new();
    const char *kv[] = {"bootstrap.servers", bs(s), "enable.idempotence", "true", "acks", "all",
                        "compression.codec", codec, "linger.ms",          "20",   NULL};
    for (int i = 0; kv[i] != NULL; i += 2)
        assert_int_equal(rd_kafka_conf_set(conf, kv[i], kv[i + 1], err, sizeof err),
                         RD_KAFKA_CONF_OK);
    rd_kafka_conf_set_dr_msg_cb(conf, on_delivery);
    rd_kafka_t *rk = rd_kafka_new(RD_KAFKA_PRODUCER, conf, err, sizeof err);
    assert_non_null(rk);
    dr_ok = dr_failed = 0;
    for (int i = 0; i < n; i++) {
        char k[32], v[64];
        snprintf(k, sizeof k, "k%d", i);
        snprintf(v, sizeof v, "v%d-%s", i, codec);
        rd_kafka_resp_err_t e;
        while ((e = rd_kafka_producev(rk, RD_KAFKA_V_TOPIC(topic), RD_KAFKA_V_KEY(k, strlen(k)),
                                      RD_KAFKA_V_VALUE(v, strlen(v)),
                                      RD_KAFKA_V_HEADER("codec", codec, (ssize_t)strlen(codec)),
                                      RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY), RD_KAFKA_V_END)) ==
               RD_KAFKA_RESP_ERR__QUEUE_FULL)
            rd_kafka_poll(rk, 10);
        assert_int_equal(e, RD_KAFKA_RESP_ERR_NO_ERROR);
        rd_kafka_poll(rk, 0);
    }
    assert_int_equal(rd_kafka_flush(rk, 20000), RD_KAFKA_RESP_ERR_NO_ERROR);
    assert_int_equal(dr_failed, 0);
    assert_int_equal(dr_ok, n);
    rd_kafka_destroy(rk);
}

/* Read a topic from offset 0 to `n` records; every record must be the
 * one produce_n wrote at that offset. */
static void consume_check(const e2e_server *s, const char *topic, const char *codec, int n)
{
    const char *kv[] = {"group.id", "e2e-check", "enable.auto.commit", "false", NULL};
    rd_kafka_t *rk = client(s, RD_KAFKA_CONSUMER, kv);
    rd_kafka_topic_partition_list_t *tp = rd_kafka_topic_partition_list_new(1);
    rd_kafka_topic_partition_list_add(tp, topic, 0)->offset = RD_KAFKA_OFFSET_BEGINNING;
    assert_int_equal(rd_kafka_assign(rk, tp), RD_KAFKA_RESP_ERR_NO_ERROR);
    int seen = 0;
    uint64_t deadline = e2e_now_ms() + 20000;
    while (seen < n && e2e_now_ms() < deadline) {
        rd_kafka_message_t *m = rd_kafka_consumer_poll(rk, 500);
        if (m == NULL)
            continue;
        if (m->err == RD_KAFKA_RESP_ERR_NO_ERROR) {
            char k[32], v[64];
            snprintf(k, sizeof k, "k%d", seen);
            snprintf(v, sizeof v, "v%d-%s", seen, codec);
            assert_int_equal(m->offset, seen);
            assert_int_equal(m->key_len, strlen(k));
            assert_memory_equal(m->key, k, m->key_len);
            assert_int_equal(m->len, strlen(v));
            assert_memory_equal(m->payload, v, m->len);
            rd_kafka_headers_t *h = NULL;
            const void *hv;
            size_t hl;
            assert_int_equal(rd_kafka_message_headers(m, &h), RD_KAFKA_RESP_ERR_NO_ERROR);
            assert_int_equal(rd_kafka_header_get_last(h, "codec", &hv, &hl),
                             RD_KAFKA_RESP_ERR_NO_ERROR);
            assert_int_equal(hl, strlen(codec));
            seen++;
        }
        rd_kafka_message_destroy(m);
    }
    assert_int_equal(seen, n);
    rd_kafka_topic_partition_list_destroy(tp);
    rd_kafka_consumer_close(rk);
    rd_kafka_destroy(rk);
}

static void test_librdkafka_codecs(void **state)
{
    (void)state;
    e2e_server s;
    start(&s, NULL);
    const char *codecs[] = {"none", "gzip", "snappy", "lz4", "zstd"};
    for (size_t i = 0; i < sizeof codecs / sizeof codecs[0]; i++) {
        char topic[32];
        snprintf(topic, sizeof topic, "codec-%s", codecs[i]);
        produce_n(&s, topic, codecs[i], 3000);
        consume_check(&s, topic, codecs[i], 3000);
    }
    /* The events are stored like any other: STATS counts them. */
    assert_int_equal(sh("%s -h 127.0.0.1 -p %s stats codec-zstd --json", e2e_cli(), s.port), 0);
    assert_non_null(strstr(out, "\"next\":3000"));
    assert_int_equal(e2e_stop(&s, 10000), 0);
}

/* A topic read in many Fetches: each answer but the first was made while
 * the client read the one before (the prefetch), and every record is the
 * one stored at its offset. */
static void test_consume_many_fetches(void **state)
{
    (void)state;
    e2e_server s;
    start(&s, NULL);
    produce_n(&s, "many", "lz4", 40000); /* ~3 MiB of records: 1 MiB per Fetch */
    consume_check(&s, "many", "lz4", 40000);
    if (e2e_run("command -v curl >/dev/null 2>&1", NULL, 0) != 0) {
        fprintf(stderr, "e2e_kafka: no curl: the prefetch counter is not checked\n");
        assert_int_equal(e2e_stop(&s, 10000), 0);
        return;
    }
    char cmd[200];
    snprintf(cmd, sizeof cmd, "curl -s http://127.0.0.1:%s/metrics", s.http_port);
    assert_int_equal(e2e_run(cmd, out, sizeof out), 0);
    const char *used = strstr(out, "krappy_kafka_prefetches_total{result=\"used\"} ");
    assert_non_null(used);
    assert_true(atoi(used + strlen("krappy_kafka_prefetches_total{result=\"used\"} ")) >= 1);
    assert_int_equal(e2e_stop(&s, 10000), 0);
}

/* ---- consumer groups ---- */

/* A kcat -G member of `group` on topic t1 (and t2 when not NULL) in the
 * background: its records go to `file`. */
static pid_t member(const e2e_server *s, const char *group, const char *name, const char *file,
                    const char *t1, const char *t2)
{
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        char fmt[64];
        snprintf(fmt, sizeof fmt, "%s %%t %%o\\n", name);
        FILE *f = freopen(file, "w", stdout);
        (void)f;
        if (freopen("/dev/null", "w", stderr) == NULL)
            _exit(127);
        const char *argv[] = {"kcat", "-b",
                              bs(s),  "-u",
                              "-f",   fmt,
                              "-X",   "partition.assignment.strategy=roundrobin",
                              "-X",   "session.timeout.ms=3000",
                              "-X",   "heartbeat.interval.ms=200",
                              "-X",   "auto.offset.reset=earliest",
                              "-X",   "auto.commit.interval.ms=200",
                              "-G",   group,
                              t1,     t2,
                              NULL};
        execvp("kcat", (char *const *)argv);
        _exit(127);
    }
    return pid;
}

/* Wait until `file` has a line `line`. @return true when it came. */
static bool wait_line(const char *file, const char *line, int ms)
{
    uint64_t deadline = e2e_now_ms() + (uint64_t)ms;
    char cmd[512];
    snprintf(cmd, sizeof cmd, "cat %s", file);
    while (e2e_now_ms() < deadline) {
        e2e_run(cmd, out, sizeof out);
        if (count_lines(out, line) > 0)
            return true;
        sleep_ms(100);
    }
    return false;
}

static void stop_member(pid_t pid, int sig)
{
    kill(pid, sig);
    uint64_t deadline = e2e_now_ms() + 10000;
    while (waitpid(pid, NULL, WNOHANG) == 0 && e2e_now_ms() < deadline)
        sleep_ms(50);
    if (waitpid(pid, NULL, WNOHANG) == 0) {
        kill(pid, SIGKILL);
        waitpid(pid, NULL, 0);
    }
}

static void produce_line(const e2e_server *s, const char *topic, const char *line)
{
    assert_int_equal(sh("printf \"%s\\n\" | kcat -b %s -P -t %s -K:", line, bs(s), topic), 0);
}

static void test_groups_split_and_rebalance(void **state)
{
    (void)state;
    if (!have_kcat())
        skip();
    e2e_server s;
    start(&s, NULL);
    produce_line(&s, "ga", "x:0");
    produce_line(&s, "gb", "x:0");
    char f1[300], f2[300];
    snprintf(f1, sizeof f1, "%s/m1.out", s.dir);
    snprintf(f2, sizeof f2, "%s/m2.out", s.dir);
    pid_t m1 = member(&s, "split", "m1", f1, "ga", "gb");
    assert_true(wait_line(f1, "m1 ga 0", 15000));
    assert_true(wait_line(f1, "m1 gb 0", 15000));
    /* A second member: the group rebalances and the two topics are split
     * (roundrobin); a record on each topic goes to exactly one member. */
    pid_t m2 = member(&s, "split", "m2", f2, "ga", "gb");
    uint64_t deadline = e2e_now_ms() + 20000;
    bool split = false;
    int round = 1;
    while (!split && e2e_now_ms() < deadline) {
        char line[32];
        snprintf(line, sizeof line, "x:%d", round);
        produce_line(&s, "ga", line);
        produce_line(&s, "gb", line);
        sleep_ms(700);
        char a1[32], b1[32], a2[32], b2[32];
        snprintf(a1, sizeof a1, "m1 ga %d", round);
        snprintf(b1, sizeof b1, "m1 gb %d", round);
        snprintf(a2, sizeof a2, "m2 ga %d", round);
        snprintf(b2, sizeof b2, "m2 gb %d", round);
        char cmd[700];
        snprintf(cmd, sizeof cmd, "cat %s %s", f1, f2);
        e2e_run(cmd, out, sizeof out);
        int ga = count_lines(out, a1) + count_lines(out, a2);
        int gb = count_lines(out, b1) + count_lines(out, b2);
        split = ga == 1 && gb == 1 &&
                ((count_lines(out, a1) && count_lines(out, b2)) ||
                 (count_lines(out, a2) && count_lines(out, b1)));
        round++;
    }
    assert_true(split);
    /* m2 leaves (SIGTERM: LeaveGroup): m1 takes both topics again. */
    stop_member(m2, SIGTERM);
    char line[32], want_a[32], want_b[32];
    snprintf(line, sizeof line, "x:%d", round);
    snprintf(want_a, sizeof want_a, "m1 ga %d", round);
    snprintf(want_b, sizeof want_b, "m1 gb %d", round);
    sleep_ms(1500);
    produce_line(&s, "ga", line);
    produce_line(&s, "gb", line);
    assert_true(wait_line(f1, want_a, 15000));
    assert_true(wait_line(f1, want_b, 15000));
    stop_member(m1, SIGTERM);

    /* krappy groups lists the Kafka group with its committed offsets. */
    assert_int_equal(sh("%s -h 127.0.0.1 -p %s groups ga", e2e_cli(), s.port), 0);
    assert_non_null(strstr(out, "split"));
    assert_non_null(strstr(out, "kafka"));
    assert_int_equal(e2e_stop(&s, 10000), 0);
}

/* Committed offsets survive kill -9 of the consumer and of krappyd: the
 * next member of the group starts after what was consumed. */
static void test_offsets_survive_kill9(void **state)
{
    (void)state;
    if (!have_kcat())
        skip();
    e2e_server s;
    start(&s, NULL);
    for (int i = 0; i < 5; i++) {
        char l[16];
        snprintf(l, sizeof l, "k:%d", i);
        produce_line(&s, "ga", l);
    }
    char f1[300], f2[300];
    snprintf(f1, sizeof f1, "%s/c1.out", s.dir);
    snprintf(f2, sizeof f2, "%s/c2.out", s.dir);
    pid_t m1 = member(&s, "durable", "c1", f1, "ga", NULL);
    assert_true(wait_line(f1, "c1 ga 4", 15000));
    /* kcat auto-commits (every 5 s, whatever auto.commit.interval.ms
     * says): wait until `krappy groups` shows the commit. */
    uint64_t deadline = e2e_now_ms() + 15000;
    bool committed = false;
    while (!committed && e2e_now_ms() < deadline) {
        sh("%s -h 127.0.0.1 -p %s groups ga --json", e2e_cli(), s.port);
        committed = strstr(out, "\"group\":\"durable\",\"kind\":\"kafka\",\"cursor\":5") != NULL;
        if (!committed)
            sleep_ms(200);
    }
    assert_true(committed);
    stop_member(m1, SIGKILL);
    kill(s.pid, SIGKILL);
    waitpid(s.pid, NULL, 0);
    restart(&s);
    produce_line(&s, "ga", "k:5");
    pid_t m2 = member(&s, "durable", "c2", f2, "ga", NULL);
    assert_true(wait_line(f2, "c2 ga 5", 20000));
    stop_member(m2, SIGTERM);
    char cmd[400];
    snprintf(cmd, sizeof cmd, "grep -c \"c2 ga\" %s", f2);
    e2e_run(cmd, out, sizeof out);
    assert_int_equal(atoi(out), 1); /* 0..4 were not read again */
    assert_int_equal(e2e_stop(&s, 10000), 0);
}

/* ---- SASL ---- */

static void test_sasl(void **state)
{
    (void)state;
    if (!have_kcat())
        skip();
    e2e_server s;
    const char *extra[] = {"--token", "s3cret", NULL};
    start(&s, extra);
    const char *sasl = "-X security.protocol=SASL_PLAINTEXT -X sasl.mechanisms=PLAIN "
                       "-X sasl.username=any";
    assert_int_equal(
        sh("printf \"k:v\\n\" | kcat -b %s -P -t sec -K: %s -X sasl.password=s3cret", bs(&s), sasl),
        0);
    assert_int_equal(sh("kcat -b %s -C -t sec -o beginning -e -q -f \"%%k=%%s\\n\" %s "
                        "-X sasl.password=s3cret",
                        bs(&s), sasl),
                     0);
    assert_string_equal(out, "k=v\n");
    /* A wrong password, and no SASL at all: refused. */
    assert_true(sh("kcat -b %s -L -m 5 %s -X sasl.password=wrong 2>&1", bs(&s), sasl) != 0);
    assert_non_null(strstr(out, "the SASL/PLAIN password must be the server"));
    assert_true(sh("kcat -b %s -L -m 3 2>&1", bs(&s)) != 0);
    char cmd[400];
    snprintf(cmd, sizeof cmd, "grep -c \"before SASL/PLAIN authentication\" %s", s.log_path);
    e2e_run(cmd, out, sizeof out);
    assert_true(atoi(out) >= 1);
    assert_int_equal(e2e_stop(&s, 10000), 0);
}

/* ---- the admin API ---- */

static rd_kafka_resp_err_t create_topic(rd_kafka_t *rk, const char *name, int partitions,
                                        const char *cfg_name, const char *cfg_value, char *msg,
                                        size_t msglen)
{
    char err[256];
    rd_kafka_NewTopic_t *nt = rd_kafka_NewTopic_new(name, partitions, -1, err, sizeof err);
    assert_non_null(nt);
    if (cfg_name != NULL)
        rd_kafka_NewTopic_set_config(nt, cfg_name, cfg_value);
    rd_kafka_queue_t *q = rd_kafka_queue_new(rk);
    rd_kafka_CreateTopics(rk, &nt, 1, NULL, q);
    rd_kafka_event_t *ev = rd_kafka_queue_poll(q, 10000);
    assert_non_null(ev);
    const rd_kafka_CreateTopics_result_t *res = rd_kafka_event_CreateTopics_result(ev);
    assert_non_null(res);
    size_t n;
    const rd_kafka_topic_result_t **tr = rd_kafka_CreateTopics_result_topics(res, &n);
    assert_int_equal(n, 1);
    rd_kafka_resp_err_t e = rd_kafka_topic_result_error(tr[0]);
    const char *m = rd_kafka_topic_result_error_string(tr[0]);
    snprintf(msg, msglen, "%s", m ? m : "");
    rd_kafka_event_destroy(ev);
    rd_kafka_queue_destroy(q);
    rd_kafka_NewTopic_destroy(nt);
    return e;
}

static void test_admin(void **state)
{
    (void)state;
    e2e_server s;
    start(&s, NULL);
    rd_kafka_t *rk = client(&s, RD_KAFKA_PRODUCER, NULL);
    char msg[512];
    assert_int_equal(create_topic(rk, "adm", 3, NULL, NULL, msg, sizeof msg),
                     RD_KAFKA_RESP_ERR_INVALID_PARTITIONS);
    assert_non_null(strstr(msg, "one partition"));
    assert_int_equal(create_topic(rk, "adm", 1, "cleanup.policy", "all", msg, sizeof msg),
                     RD_KAFKA_RESP_ERR_INVALID_CONFIG);
    assert_non_null(strstr(msg, "cleanup.policy"));
    assert_int_equal(create_topic(rk, "adm", 1, "compression.type", "zstd", msg, sizeof msg),
                     RD_KAFKA_RESP_ERR_INVALID_CONFIG);
    assert_int_equal(create_topic(rk, "adm", 1, "cleanup.policy", "compact", msg, sizeof msg),
                     RD_KAFKA_RESP_ERR_NO_ERROR);
    /* The topic's settings are krappy's (PROTOCOL.md section 9). */
    assert_int_equal(sh("%s -h 127.0.0.1 -p %s topic-config adm", e2e_cli(), s.port), 0);
    assert_non_null(strstr(out, "compact"));
    assert_int_equal(create_topic(rk, "adm", 1, NULL, NULL, msg, sizeof msg),
                     RD_KAFKA_RESP_ERR_TOPIC_ALREADY_EXISTS);
    assert_int_equal(sh("%s -h 127.0.0.1 -p %s topics", e2e_cli(), s.port), 0);
    assert_non_null(strstr(out, "adm"));

    /* AlterConfigs: retention.ms of the topic, durably (and what
     * TOPIC_CONFIG reads). */
    rd_kafka_ConfigResource_t *ar = rd_kafka_ConfigResource_new(RD_KAFKA_RESOURCE_TOPIC, "adm");
    assert_int_equal(rd_kafka_ConfigResource_set_config(ar, "retention.ms", "3600000"),
                     RD_KAFKA_RESP_ERR_NO_ERROR);
    rd_kafka_queue_t *aq = rd_kafka_queue_new(rk);
    rd_kafka_AlterConfigs(rk, &ar, 1, NULL, aq);
    rd_kafka_event_t *aev = rd_kafka_queue_poll(aq, 10000);
    assert_non_null(aev);
    size_t an;
    const rd_kafka_ConfigResource_t **ars =
        rd_kafka_AlterConfigs_result_resources(rd_kafka_event_AlterConfigs_result(aev), &an);
    assert_int_equal(an, 1);
    assert_int_equal(rd_kafka_ConfigResource_error(ars[0]), RD_KAFKA_RESP_ERR_NO_ERROR);
    rd_kafka_event_destroy(aev);
    rd_kafka_ConfigResource_destroy(ar);
    rd_kafka_queue_destroy(aq);
    assert_int_equal(sh("%s -h 127.0.0.1 -p %s topic-config adm", e2e_cli(), s.port), 0);
    assert_non_null(strstr(out, "3600000"));

    /* DescribeConfigs: the topic's settings - its own ones from the topic,
     * the rest the server's (DeleteTopics: test_delete_topic). */
    rd_kafka_ConfigResource_t *cr = rd_kafka_ConfigResource_new(RD_KAFKA_RESOURCE_TOPIC, "adm");
    rd_kafka_queue_t *q = rd_kafka_queue_new(rk);
    size_t n;
    rd_kafka_DescribeConfigs(rk, &cr, 1, NULL, q);
    rd_kafka_event_t *ev = rd_kafka_queue_poll(q, 10000);
    assert_non_null(ev);
    const rd_kafka_ConfigResource_t **rs =
        rd_kafka_DescribeConfigs_result_resources(rd_kafka_event_DescribeConfigs_result(ev), &n);
    assert_int_equal(n, 1);
    size_t nc;
    const rd_kafka_ConfigEntry_t **ce = rd_kafka_ConfigResource_configs(rs[0], &nc);
    int found = 0;
    for (size_t i = 0; i < nc; i++) {
        const char *name = rd_kafka_ConfigEntry_name(ce[i]);
        if (strcmp(name, "retention.ms") == 0) {
            assert_string_equal(rd_kafka_ConfigEntry_value(ce[i]), "3600000");
            assert_false(rd_kafka_ConfigEntry_is_read_only(ce[i]));
            assert_int_equal(rd_kafka_ConfigEntry_source(ce[i]),
                             RD_KAFKA_CONFIG_SOURCE_DYNAMIC_TOPIC_CONFIG);
            found++;
        } else if (strcmp(name, "cleanup.policy") == 0) {
            assert_string_equal(rd_kafka_ConfigEntry_value(ce[i]), "compact");
            found++;
        } else if (strcmp(name, "retention.bytes") == 0) {
            assert_string_equal(rd_kafka_ConfigEntry_value(ce[i]), "-1"); /* the server's */
            assert_int_equal(rd_kafka_ConfigEntry_source(ce[i]),
                             RD_KAFKA_CONFIG_SOURCE_STATIC_BROKER_CONFIG);
            found++;
        } else if (strcmp(name, "compression.type") == 0) {
            assert_true(rd_kafka_ConfigEntry_is_read_only(ce[i]));
            found++;
        }
    }
    assert_int_equal(found, 4);
    rd_kafka_event_destroy(ev);
    rd_kafka_ConfigResource_destroy(cr);
    rd_kafka_queue_destroy(q);
    rd_kafka_destroy(rk);
    assert_int_equal(e2e_stop(&s, 10000), 0);
}

/* ---- raw frames ---- */

static int kconnect(const e2e_server *s)
{
    e2e_server k = *s;
    snprintf(k.port, sizeof k.port, "%s", s->kafka_port);
    int fd = e2e_connect(&k);
    assert_true(fd >= 0);
    return fd;
}

/* Read one response frame (size, then that many bytes) into b. @return 1,
 * 0 on a clean close, -1 on timeout or error. */
static int recv_frame(int fd, kr_buf *b, int ms)
{
    uint8_t hdr[4];
    size_t got = 0, need = 4;
    kr_buf_reset(b);
    uint64_t deadline = e2e_now_ms() + (uint64_t)ms;
    while (got < need) {
        struct pollfd p = {fd, POLLIN, 0};
        int left = (int)(deadline - e2e_now_ms());
        if (left <= 0 || poll(&p, 1, left) != 1)
            return -1;
        uint8_t buf[65536];
        size_t want = need - got < sizeof buf ? need - got : sizeof buf;
        ssize_t r = recv(fd, buf, want, 0);
        if (r <= 0)
            return got == 0 && need == 4 ? 0 : -1;
        if (need == 4 && got < 4) {
            memcpy(hdr + got, buf, (size_t)r);
        } else {
            kr_buf_append(b, buf, (size_t)r);
        }
        got += (size_t)r;
        if (need == 4 && got == 4) {
            need = 4 + (size_t)ntohl(*(uint32_t *)(void *)hdr);
        }
    }
    return 1;
}

static void send_request(int fd, int16_t key, int16_t version, int32_t cid, const void *body)
{
    kr_buf b;
    char msg[256];
    kr_buf_init(&b, 1 << 20);
    kr_kafka_req_header h = {key, version, cid, kr_kafka_cstr("e2e")};
    assert_int_equal(kr_kafka_request_encode(&b, &h, body, msg, sizeof msg), KR_KAFKA_OK);
    assert_int_equal(e2e_send_all(fd, b.data, b.len), 0);
    kr_buf_free(&b);
}

/* A response read back: the frame and the arena its decoded form points
 * into. */
typedef struct kresp {
    kr_buf b;
    kr_kafka_arena a;
} kresp;

static void kresp_init(kresp *k)
{
    kr_buf_init(&k->b, 1 << 24);
    kr_kafka_arena_init(&k->a, 1 << 20);
}

static void kresp_free(kresp *k)
{
    kr_kafka_arena_free(&k->a);
    kr_buf_free(&k->b);
}

/* Read the response to request cid (key, version) within ms into resp,
 * which points into k until the next call. */
static void recv_response(int fd, kresp *k, int16_t key, int16_t version, int32_t cid, void *resp,
                          int ms)
{
    char msg[256];
    int32_t got;
    kr_kafka_arena_reset(&k->a);
    assert_int_equal(recv_frame(fd, &k->b, ms), 1);
    if (kr_kafka_response_decode(k->b.data, k->b.len, key, version, &k->a, &got, resp, msg,
                                 sizeof msg) != KR_KAFKA_OK)
        fail_msg("a response to API %d v%d does not decode: %s", key, version, msg);
    assert_int_equal(got, cid);
}

/* Send a request and read its response (as recv_response). */
static void round_trip(int fd, kresp *k, int16_t key, int16_t version, int32_t cid, const void *req,
                       void *resp, int ms)
{
    send_request(fd, key, version, cid, req);
    recv_response(fd, k, key, version, cid, resp, ms);
}

static void test_raw_frames(void **state)
{
    (void)state;
    e2e_server s;
    start(&s, NULL);
    kresp resp;
    kresp_init(&resp);

    /* ApiVersions v3 (flexible, as librdkafka sends first): a v0 answer
     * with UNSUPPORTED_VERSION and the table. */
    int fd = kconnect(&s);
    /* size, key 18, version 3, correlation 7, client_id "e2e", no tagged
     * fields; body: compact strings "x" and "1", no tagged fields. */
    static const uint8_t v3[] = {0, 0, 0,   19,  0,   18, 0, 3,   0, 0,   0, 7,
                                 0, 3, 'e', '2', 'e', 0,  2, 'x', 2, '1', 0};
    assert_int_equal(e2e_send_all(fd, v3, sizeof v3), 0);
    kr_kafka_api_versions_resp av;
    recv_response(fd, &resp, KR_KAFKA_API_VERSIONS, 0, 7, &av, 5000);
    assert_int_equal(av.error_code, KR_KAFKA_ERR_UNSUPPORTED_VERSION);
    assert_int_equal(av.api_keys.n, KR_KAFKA_NAPIS);

    /* Produce with acks 0: no response; the next request's comes next. */
    kr_buf batch;
    kr_buf_init(&batch, 1 << 20);
    kr_kafka_batch_writer w;
    kr_kafka_batch_begin(&w, &batch);
    kr_kafka_bytes k = {(const uint8_t *)"k", 1}, v = {(const uint8_t *)"v", 1};
    assert_int_equal(kr_kafka_record_begin(&w, 0, (int64_t)wall_ms(), k, v, 0), 0);
    assert_int_equal(kr_kafka_record_end(&w), 0);
    assert_int_equal(kr_kafka_batch_end(&w), 1);
    kr_kafka_produce_req_partition part = {0, {batch.data, (int32_t)batch.len}};
    kr_kafka_produce_req_topic topic = {kr_kafka_cstr("raw"), {&part, 1}};
    kr_kafka_produce_req pr = {
        .transactional_id = {NULL, -1}, .acks = 0, .timeout_ms = 1000, .topics = {&topic, 1}};
    send_request(fd, KR_KAFKA_PRODUCE, 7, 8, &pr);
    kr_kafka_api_versions_req avq = {0};
    send_request(fd, KR_KAFKA_API_VERSIONS, 0, 9, &avq);
    recv_response(fd, &resp, KR_KAFKA_API_VERSIONS, 0, 9, &av, 5000);
    assert_int_equal(av.error_code, 0);
    assert_int_equal(sh("%s -h 127.0.0.1 -p %s get raw k", e2e_cli(), s.port), 0);

    /* An API this broker does not speak: no response can be framed, the
     * connection closes. */
    static const uint8_t unknown[] = {0, 0, 0, 10, 0, 99, 0, 0, 0, 0, 0, 1, 0xff, 0xff};
    assert_int_equal(e2e_send_all(fd, unknown, sizeof unknown), 0);
    assert_int_equal(e2e_wait_closed(fd, 5000), 1);
    close(fd);

    /* Sizes: below a header, above --max-frame; a truncated body. */
    fd = kconnect(&s);
    static const uint8_t tiny[] = {0, 0, 0, 3, 0, 18, 0};
    assert_int_equal(e2e_send_all(fd, tiny, sizeof tiny), 0);
    assert_int_equal(e2e_wait_closed(fd, 5000), 1);
    close(fd);
    fd = kconnect(&s);
    static const uint8_t huge[] = {0x7f, 0, 0, 0, 0, 18, 0, 0};
    assert_int_equal(e2e_send_all(fd, huge, sizeof huge), 0);
    assert_int_equal(e2e_wait_closed(fd, 5000), 1);
    close(fd);
    fd = kconnect(&s);
    static const uint8_t trunc[] = {0, 0, 0, 14, 0, 3, 0, 4, 0, 0, 0, 1, 0, 0, 0, 0, 0, 9};
    assert_int_equal(e2e_send_all(fd, trunc, sizeof trunc), 0);
    assert_int_equal(e2e_wait_closed(fd, 5000), 1);
    close(fd);
    char cmd[400];
    snprintf(cmd, sizeof cmd, "grep -c \"closing a Kafka connection\" %s", s.log_path);
    e2e_run(cmd, out, sizeof out);
    assert_true(atoi(out) >= 4);

    kr_buf_free(&batch);
    kresp_free(&resp);
    assert_int_equal(e2e_stop(&s, 10000), 0);
}

/* A Produce (v7, acks 1) of `n` records "k<i>" = 200 bytes to `topic`,
 * correlation id cid, framed into f. */
static void produce_frame(kr_buf *f, const char *topic, int n, int32_t cid)
{
    kr_buf batch;
    kr_buf_init(&batch, 4u << 20);
    kr_kafka_batch_writer w;
    kr_kafka_batch_begin(&w, &batch);
    static uint8_t value[200];
    memset(value, 'p', sizeof value);
    for (int i = 0; i < n; i++) {
        char key[16];
        int kl = snprintf(key, sizeof key, "k%d", i);
        kr_kafka_bytes k = {(const uint8_t *)key, kl}, v = {value, sizeof value};
        assert_int_equal(kr_kafka_record_begin(&w, i, (int64_t)wall_ms(), k, v, 0), 0);
        assert_int_equal(kr_kafka_record_end(&w), 0);
    }
    assert_int_equal(kr_kafka_batch_end(&w), n);
    kr_kafka_produce_req_partition part = {0, {batch.data, (int32_t)batch.len}};
    kr_kafka_produce_req_topic t = {kr_kafka_cstr(topic), {&part, 1}};
    kr_kafka_produce_req pr = {
        .transactional_id = {NULL, -1}, .acks = 1, .timeout_ms = 10000, .topics = {&t, 1}};
    kr_kafka_req_header h = {KR_KAFKA_PRODUCE, 7, cid, kr_kafka_cstr("e2e")};
    char msg[256];
    kr_buf_reset(f);
    assert_int_equal(kr_kafka_request_encode(f, &h, &pr, msg, sizeof msg), KR_KAFKA_OK);
    kr_buf_free(&batch);
}

/* Large Produce frames that arrive in pieces, with pauses inside a frame
 * and the next frames right behind it on the same connection, are each
 * stored whole and answered in order (the server reads the rest of a begun
 * frame itself: kr_netconn_read_rest); a frame cut short by the client's
 * half-close stores nothing. */
static void test_produce_frames_in_pieces(void **state)
{
    (void)state;
    enum { RECORDS = 2000 };
    e2e_server s;
    start(&s, NULL);
    kresp resp;
    kresp_init(&resp);
    kr_buf f1, f2, f3;
    kr_buf_init(&f1, 4u << 20);
    kr_buf_init(&f2, 4u << 20);
    kr_buf_init(&f3, 4u << 20);
    produce_frame(&f1, "pieces", RECORDS, 1);
    produce_frame(&f2, "pieces", RECORDS, 2);
    produce_frame(&f3, "pieces", RECORDS, 3);
    assert_true(f1.len > 400000);

    int fd = kconnect(&s);
    /* The size and a few bytes; then most of the frame; then its end with
     * the next two frames and an ApiVersions behind it in one send. */
    size_t cuts[] = {7, f1.len / 2, f1.len};
    size_t at = 0;
    for (size_t i = 0; i < 2; i++) {
        assert_int_equal(e2e_send_all(fd, f1.data + at, cuts[i] - at), 0);
        at = cuts[i];
        usleep(50 * 1000);
    }
    kr_buf rest;
    kr_buf_init(&rest, 8u << 20);
    kr_buf_append(&rest, f1.data + at, f1.len - at);
    kr_buf_append(&rest, f2.data, f2.len);
    kr_buf_append(&rest, f3.data, f3.len);
    assert_int_equal(e2e_send_all(fd, rest.data, rest.len), 0);
    kr_kafka_api_versions_req avq = {0};
    send_request(fd, KR_KAFKA_API_VERSIONS, 0, 4, &avq);
    for (int32_t cid = 1; cid <= 3; cid++) {
        kr_kafka_produce_resp pr;
        recv_response(fd, &resp, KR_KAFKA_PRODUCE, 7, cid, &pr, 20000);
        assert_int_equal(pr.responses.n, 1);
        assert_int_equal(pr.responses.v[0].partitions.n, 1);
        assert_int_equal(pr.responses.v[0].partitions.v[0].error_code, 0);
        assert_int_equal(pr.responses.v[0].partitions.v[0].base_offset, (cid - 1) * RECORDS);
    }
    kr_kafka_api_versions_resp av;
    recv_response(fd, &resp, KR_KAFKA_API_VERSIONS, 0, 4, &av, 5000);
    assert_int_equal(av.error_code, 0);

    /* Half of a fourth frame, then the client's half-close: dropped. */
    produce_frame(&f1, "pieces", RECORDS, 5);
    assert_int_equal(e2e_send_all(fd, f1.data, f1.len / 2), 0);
    shutdown(fd, SHUT_WR);
    assert_int_equal(e2e_wait_closed(fd, 5000), 1);
    close(fd);
    assert_int_equal(sh("%s -h 127.0.0.1 -p %s get pieces k%d", e2e_cli(), s.port, RECORDS - 1), 0);
    /* The next batch follows the three whole ones. */
    fd = kconnect(&s);
    produce_frame(&f1, "pieces", 1, 6);
    assert_int_equal(e2e_send_all(fd, f1.data, f1.len), 0);
    kr_kafka_produce_resp last;
    recv_response(fd, &resp, KR_KAFKA_PRODUCE, 7, 6, &last, 10000);
    assert_int_equal(last.responses.v[0].partitions.v[0].error_code, 0);
    assert_int_equal(last.responses.v[0].partitions.v[0].base_offset, 3 * RECORDS);
    close(fd);

    kr_buf_free(&rest);
    kr_buf_free(&f1);
    kr_buf_free(&f2);
    kr_buf_free(&f3);
    kresp_free(&resp);
    assert_int_equal(e2e_stop(&s, 10000), 0);
}

/* A Kafka nullable string: NULL is null. */
static kr_kafka_str nullable(const char *v)
{
    return v != NULL ? kr_kafka_cstr(v) : (kr_kafka_str){NULL, -1};
}

/* One IncrementalAlterConfigs of topic `topic` (the entries given) over fd,
 * request cid: its error code, and its message into msg. */
static int16_t incremental_alter(int fd, int32_t cid, const char *topic,
                                 kr_kafka_alter_configs_entry *e, int32_t n, char *msg,
                                 size_t msglen)
{
    kr_kafka_alter_configs_resource res = {KR_KAFKA_RESOURCE_TOPIC, kr_kafka_cstr(topic), {e, n}};
    kr_kafka_alter_configs_req q = {.resources = {&res, 1}};
    send_request(fd, KR_KAFKA_INCREMENTAL_ALTER_CONFIGS, 0, cid, &q);
    kresp k;
    kresp_init(&k);
    kr_kafka_alter_configs_resp r;
    recv_response(fd, &k, KR_KAFKA_INCREMENTAL_ALTER_CONFIGS, 0, cid, &r, 10000);
    assert_int_equal(r.responses.n, 1);
    int16_t err = r.responses.v[0].error_code;
    kr_kafka_str m = r.responses.v[0].error_message;
    snprintf(msg, msglen, "%.*s", m.len > 0 ? (int)m.len : 0, m.len > 0 ? m.ptr : "");
    kresp_free(&k);
    return err;
}

/* IncrementalAlterConfigs (librdkafka 2.0 has no call for it: raw
 * frames): DELETE drops a topic's own setting (TOPIC_CONFIG then shows the
 * server's flag), APPEND and SUBTRACT change cleanup.policy's list, and
 * the rest are refused with a sentence, changing nothing. */
static void test_incremental_alter_configs(void **state)
{
    (void)state;
    e2e_server s;
    static const char *const flags[] = {"--retention-ms", "2h", NULL};
    start(&s, flags);
    assert_int_equal(sh("%s -h 127.0.0.1 -p %s topic-config inc --set retention_ms=1h "
                        "--set cleanup=compact",
                        e2e_cli(), s.port),
                     0);
    int fd = kconnect(&s);
    char msg[512];
#define ENTRY(n, op, v) {kr_kafka_cstr(n), op, nullable(v)}
    kr_kafka_alter_configs_entry ok[] = {ENTRY("retention.ms", 1, NULL),
                                         ENTRY("cleanup.policy", 2, "delete"),
                                         ENTRY("compression.type", 1, NULL)};
    assert_int_equal(incremental_alter(fd, 1, "inc", ok, 3, msg, sizeof msg), 0);
    assert_int_equal(sh("%s -h 127.0.0.1 -p %s topic-config inc", e2e_cli(), s.port), 0);
    assert_non_null(strstr(out, "retention_ms         7200000")); /* the flag's */
    assert_non_null(strstr(out, "cleanup              compact,delete"));
    kr_kafka_alter_configs_entry sub[] = {ENTRY("cleanup.policy", 3, "compact")};
    assert_int_equal(incremental_alter(fd, 2, "inc", sub, 1, msg, sizeof msg), 0);
    assert_int_equal(sh("%s -h 127.0.0.1 -p %s topic-config inc", e2e_cli(), s.port), 0);
    assert_non_null(strstr(out, "cleanup              delete"));
    /* Refused, nothing changed: an empty policy list, APPEND to a number,
     * an operation Kafka does not have; the good entry beside them goes
     * with them. */
    kr_kafka_alter_configs_entry empty[] = {ENTRY("retention.ms", 0, "60000"),
                                            ENTRY("cleanup.policy", 3, "delete")};
    assert_int_equal(incremental_alter(fd, 3, "inc", empty, 2, msg, sizeof msg),
                     KR_KAFKA_ERR_INVALID_CONFIG);
    assert_non_null(strstr(msg, "cleanup.policy"));
    kr_kafka_alter_configs_entry num[] = {ENTRY("retention.ms", 2, "5")};
    assert_int_equal(incremental_alter(fd, 4, "inc", num, 1, msg, sizeof msg),
                     KR_KAFKA_ERR_INVALID_REQUEST);
    assert_non_null(strstr(msg, "retention.ms"));
    kr_kafka_alter_configs_entry odd[] = {ENTRY("retention.ms", 9, "5")};
    assert_int_equal(incremental_alter(fd, 5, "inc", odd, 1, msg, sizeof msg),
                     KR_KAFKA_ERR_INVALID_REQUEST);
    assert_non_null(strstr(msg, "SUBTRACT"));
#undef ENTRY
    assert_int_equal(sh("%s -h 127.0.0.1 -p %s topic-config inc", e2e_cli(), s.port), 0);
    assert_non_null(strstr(out, "retention_ms         7200000"));
    assert_non_null(strstr(out, "cleanup              delete"));
    close(fd);
    /* The reset is durable: after a restart the flag, now another one,
     * still applies. */
    assert_int_equal(e2e_stop_keep(&s, 10000), 0);
    static const char *const again[] = {"--kafka-listen", "127.0.0.1:0", "--retention-ms", "3h",
                                        NULL};
    assert_int_equal(e2e_restart(&s, again), 0);
    assert_int_equal(sh("%s -h 127.0.0.1 -p %s topic-config inc", e2e_cli(), s.port), 0);
    assert_non_null(strstr(out, "retention_ms         10800000"));
    assert_int_equal(e2e_stop(&s, 10000), 0);
}

/* ---- idempotent producers ---- */

/* A record batch of n records "v<first+i>" from producer pid, epoch and
 * base sequence seq (the codec writes a producer-less batch; the fields are
 * patched in and the CRC-32C made again). */
static void idem_batch(kr_buf *b, int64_t pid, int16_t epoch, int32_t seq, int first, int n)
{
    kr_buf_reset(b);
    kr_kafka_batch_writer w;
    kr_kafka_batch_begin(&w, b);
    char v[16][16];
    assert_true(n <= 16);
    for (int i = 0; i < n; i++) {
        snprintf(v[i], sizeof v[i], "v%d", first + i);
        kr_kafka_bytes val = {(const uint8_t *)v[i], (int32_t)strlen(v[i])};
        assert_int_equal(
            kr_kafka_record_begin(&w, i, (int64_t)wall_ms(), (kr_kafka_bytes){NULL, -1}, val, 0),
            0);
        assert_int_equal(kr_kafka_record_end(&w), 0);
    }
    assert_int_equal(kr_kafka_batch_end(&w), n);
    kr_kafka_patch_be(b, 43, (uint64_t)pid, 8);
    kr_kafka_patch_be(b, 51, (uint16_t)epoch, 2);
    kr_kafka_patch_be(b, 53, (uint32_t)seq, 4);
    kr_kafka_patch_be(b, 17, kr_crc32c(0, b->data + 21, b->len - 21), 4);
}

/* Send a Produce (acks all) of one batch to topic "idem"; the partition's
 * error and base offset. */
static void produce_raw(int fd, const kr_buf *batch, int32_t cid, int16_t *err, int64_t *base)
{
    kr_kafka_produce_req_partition part = {0, {batch->data, (int32_t)batch->len}};
    kr_kafka_produce_req_topic topic = {kr_kafka_cstr("idem"), {&part, 1}};
    kr_kafka_produce_req pr = {
        .transactional_id = {NULL, -1}, .acks = -1, .timeout_ms = 5000, .topics = {&topic, 1}};
    kresp k;
    kresp_init(&k);
    kr_kafka_produce_resp resp;
    round_trip(fd, &k, KR_KAFKA_PRODUCE, 7, cid, &pr, &resp, 10000);
    assert_int_equal(resp.responses.n, 1);
    assert_int_equal(resp.responses.v[0].partitions.n, 1);
    *err = resp.responses.v[0].partitions.v[0].error_code;
    *base = resp.responses.v[0].partitions.v[0].base_offset;
    kresp_free(&k);
}

/* produce_raw, expecting the partition's error `err` and, without one,
 * base offset `base`. */
static void produce_expect(int fd, const kr_buf *batch, int32_t cid, int16_t err, int64_t base)
{
    int16_t got_err;
    int64_t got_base;
    produce_raw(fd, batch, cid, &got_err, &got_base);
    assert_int_equal(got_err, err);
    if (err == 0)
        assert_int_equal(got_base, base);
}

/* InitProducerId (no transactional id) on fd: the producer id given, with
 * epoch 0. */
static int64_t init_producer(int fd)
{
    kr_kafka_init_producer_id_req ip = {.transactional_id = {NULL, -1},
                                        .transaction_timeout_ms = 60000};
    kresp k;
    kresp_init(&k);
    kr_kafka_init_producer_id_resp id;
    round_trip(fd, &k, KR_KAFKA_INIT_PRODUCER_ID, 1, 1, &ip, &id, 5000);
    assert_int_equal(id.error_code, 0);
    assert_true(id.producer_id >= 0);
    assert_int_equal(id.producer_epoch, 0);
    kresp_free(&k);
    return id.producer_id;
}

/* The number of events of topic idem (krappy stats). */
static int idem_events(const e2e_server *s)
{
    int rc = sh("%s -h 127.0.0.1 -p %s stats idem --json 2>&1", e2e_cli(), s->port);
    if (rc != 0)
        fail_msg("krappy stats idem: %s", out);
    const char *n = strstr(out, "\"next\":");
    assert_non_null(n);
    return atoi(n + 7);
}

/* Repeats of a producer's batch are stored once, also after kill -9 of
 * krappyd; a gap in the sequence and another epoch are refused. */
static void test_idempotent_repeats(void **state)
{
    (void)state;
    e2e_server s;
    start(&s, NULL);
    int fd = kconnect(&s);
    int64_t pid = init_producer(fd);
    kr_buf batch;
    kr_buf_init(&batch, 1 << 20);
    idem_batch(&batch, pid, 0, 0, 0, 3);
    produce_expect(fd, &batch, 2, 0, 0);
    produce_expect(fd, &batch, 3, 0, 0); /* the same again: the original's offset */
    assert_int_equal(idem_events(&s), 3);
    idem_batch(&batch, pid, 0, 7, 3, 2); /* 3..6 are missing */
    produce_expect(fd, &batch, 4, KR_KAFKA_ERR_OUT_OF_ORDER_SEQUENCE_NUMBER, -1);
    idem_batch(&batch, pid, 1, 3, 3, 2);
    produce_expect(fd, &batch, 5, KR_KAFKA_ERR_INVALID_PRODUCER_EPOCH, -1);
    idem_batch(&batch, pid, 0, 3, 3, 2);
    produce_expect(fd, &batch, 6, 0, 3);
    close(fd);

    /* kill -9, and the same Kafka port again: the producer's repeat is
     * still known (its state comes back from the stream). */
    char port[16];
    snprintf(port, sizeof port, "%s", s.kafka_port);
    kill(s.pid, SIGKILL);
    waitpid(s.pid, NULL, 0);
    char listen[64];
    snprintf(listen, sizeof listen, "127.0.0.1:%s", port);
    const char *args[] = {"--kafka-listen", listen, NULL};
    assert_int_equal(e2e_restart(&s, args), 0);
    fd = kconnect(&s);
    produce_expect(fd, &batch, 7, 0, 3);
    idem_batch(&batch, pid, 0, 5, 5, 1);
    produce_expect(fd, &batch, 8, 0, 5);
    assert_int_equal(idem_events(&s), 6);
    close(fd);
    kr_buf_free(&batch);
    assert_int_equal(e2e_stop(&s, 10000), 0);
}

/*
 * A librdkafka idempotent producer (acks all) on `bootstrap` sends records
 * "m0".."m<n-1>" to topic "once"; `midway(arg, rk)` runs once, half of
 * them queued (a kill -9, say); every record is acknowledged in the end,
 * none failed.
 */
static void produce_once(const char *bootstrap, int n, void (*midway)(void *arg, rd_kafka_t *rk),
                         void *arg)
{
    char err[512];
    rd_kafka_conf_t *conf = rd_kafka_conf_new();
    const char *kv[] = {"bootstrap.servers",
                        bootstrap,
                        "enable.idempotence",
                        "true",
                        "acks",
                        "all",
                        "linger.ms",
                        "5",
                        "batch.num.messages",
                        "100", /* many batches: some in flight at the kill */
                        "message.timeout.ms",
                        "90000",
                        "reconnect.backoff.max.ms",
                        "200",
                        "topic.metadata.refresh.fast.interval.ms",
                        "100",
                        NULL};
    for (int i = 0; kv[i] != NULL; i += 2)
        assert_int_equal(rd_kafka_conf_set(conf, kv[i], kv[i + 1], err, sizeof err),
                         RD_KAFKA_CONF_OK);
    if (getenv("KRAPPY_E2E_RDKAFKA_DEBUG") != NULL) /* librdkafka's contexts, when debugging */
        (void)rd_kafka_conf_set(conf, "debug", getenv("KRAPPY_E2E_RDKAFKA_DEBUG"), err, sizeof err);
    rd_kafka_conf_set_dr_msg_cb(conf, on_delivery);
    rd_kafka_t *rk = rd_kafka_new(RD_KAFKA_PRODUCER, conf, err, sizeof err);
    assert_non_null(rk);
    dr_ok = dr_failed = 0;
    for (int i = 0; i < n; i++) {
        char v[32];
        snprintf(v, sizeof v, "m%d", i);
        rd_kafka_resp_err_t e;
        while ((e = rd_kafka_producev(rk, RD_KAFKA_V_TOPIC("once"), RD_KAFKA_V_VALUE(v, strlen(v)),
                                      RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY), RD_KAFKA_V_END)) ==
               RD_KAFKA_RESP_ERR__QUEUE_FULL)
            rd_kafka_poll(rk, 10);
        assert_int_equal(e, RD_KAFKA_RESP_ERR_NO_ERROR);
        rd_kafka_poll(rk, 0);
        if (i == n / 2)
            midway(arg, rk);
    }
    assert_int_equal(rd_kafka_flush(rk, 90000), RD_KAFKA_RESP_ERR_NO_ERROR);
    assert_int_equal(dr_failed, 0);
    assert_int_equal(dr_ok, n);
    rd_kafka_destroy(rk);
}

/* Batches in flight: kill -9 of the server, and back on the same Kafka
 * port. */
static void restart_server(void *arg, rd_kafka_t *rk)
{
    e2e_server *s = arg;
    (void)rk;
    char listen[64];
    snprintf(listen, sizeof listen, "127.0.0.1:%s", s->kafka_port);
    kill(s->pid, SIGKILL);
    waitpid(s->pid, NULL, 0);
    const char *args[] = {"--kafka-listen", listen, NULL};
    assert_int_equal(e2e_restart(s, args), 0);
}

/* A librdkafka idempotent producer (acks all) across a kill -9 of krappyd,
 * restarted on the same port: every message is in the stream exactly
 * once afterwards. */
static void test_idempotent_producer_kill9(void **state)
{
    (void)state;
    e2e_server s;
    start(&s, NULL);
    const int n = 20000;
    produce_once(bs(&s), n, restart_server, &s);

    /* Read it all back: each message once. */
    const char *ckv[] = {"group.id", "e2e-once", "enable.auto.commit", "false", NULL};
    rd_kafka_t *ck = client(&s, RD_KAFKA_CONSUMER, ckv);
    rd_kafka_topic_partition_list_t *tp = rd_kafka_topic_partition_list_new(1);
    rd_kafka_topic_partition_list_add(tp, "once", 0)->offset = RD_KAFKA_OFFSET_BEGINNING;
    assert_int_equal(rd_kafka_assign(ck, tp), RD_KAFKA_RESP_ERR_NO_ERROR);
    static unsigned char seen[20000];
    memset(seen, 0, sizeof seen);
    int total = 0, eof = 0;
    uint64_t deadline = e2e_now_ms() + 30000;
    while (!eof && e2e_now_ms() < deadline) {
        rd_kafka_message_t *m = rd_kafka_consumer_poll(ck, 500);
        if (m == NULL)
            continue;
        if (m->err == RD_KAFKA_RESP_ERR__PARTITION_EOF && total >= n) {
            eof = 1;
        } else if (m->err == RD_KAFKA_RESP_ERR_NO_ERROR) {
            char v[32];
            snprintf(v, sizeof v, "%.*s", (int)m->len, (const char *)m->payload);
            int k = atoi(v + 1);
            assert_true(v[0] == 'm' && k >= 0 && k < n);
            assert_int_equal(seen[k], 0); /* never twice */
            seen[k] = 1;
            total++;
        }
        rd_kafka_message_destroy(m);
    }
    assert_int_equal(total, n);
    rd_kafka_topic_partition_list_destroy(tp);
    rd_kafka_consumer_close(ck);
    rd_kafka_destroy(ck);
    assert_int_equal(e2e_stop(&s, 10000), 0);
}

/* ---- DeleteTopics ---- */

/* Send a Fetch (v11) of partition 0 of topic from offset. */
static void fetch_raw(int fd, const char *topic, int64_t offset, int32_t part_max, int32_t wait_ms,
                      int32_t cid)
{
    kr_kafka_fetch_req_partition part = {.partition = 0,
                                         .current_leader_epoch = -1,
                                         .fetch_offset = offset,
                                         .log_start_offset = -1,
                                         .partition_max_bytes = part_max};
    kr_kafka_fetch_req_topic t = {kr_kafka_cstr(topic), {&part, 1}};
    kr_kafka_fetch_req q = {.replica_id = -1,
                            .max_wait_ms = wait_ms,
                            .min_bytes = 1,
                            .max_bytes = 1 << 20,
                            .session_epoch = -1,
                            .topics = {&t, 1},
                            .rack_id = kr_kafka_cstr("")};
    send_request(fd, KR_KAFKA_FETCH, 11, cid, &q);
}

/* Read the answer to Fetch cid within ms: its partition's error, and the value of
 * its first record in value ("" when none). */
static int16_t fetch_answer(int fd, int32_t cid, int ms, char *value, size_t vlen)
{
    kresp k;
    kresp_init(&k);
    kr_buf scratch;
    kr_buf_init(&scratch, 1 << 24);
    char msg[256];
    kr_kafka_fetch_resp resp;
    recv_response(fd, &k, KR_KAFKA_FETCH, 11, cid, &resp, ms);
    assert_int_equal(resp.responses.n, 1);
    assert_int_equal(resp.responses.v[0].partitions.n, 1);
    const kr_kafka_fetch_resp_partition *p = &resp.responses.v[0].partitions.v[0];
    value[0] = '\0';
    kr_kafka_batch_iter bi;
    kr_kafka_batch batch;
    kr_kafka_err e;
    kr_kafka_batch_iter_init(&bi, p->records.ptr, p->records.len > 0 ? (size_t)p->records.len : 0);
    if (kr_kafka_batch_next(&bi, &batch, &e, msg, sizeof msg) == 1) {
        kr_kafka_record_iter ri;
        kr_kafka_record r;
        assert_int_equal(kr_kafka_record_iter_init(&ri, &batch, &scratch, 1 << 24, msg, sizeof msg),
                         KR_KAFKA_ERR_NONE);
        assert_int_equal(kr_kafka_record_next(&ri, &r, &e, msg, sizeof msg), 1);
        snprintf(value, vlen, "%.*s", r.value.len > 0 ? (int)r.value.len : 0,
                 r.value.len > 0 ? (const char *)r.value.ptr : "");
    }
    int16_t err = p->error_code;
    kr_buf_free(&scratch);
    kresp_free(&k);
    return err;
}

/* The offset group "gd" committed on idem, partition 0. */
static int64_t committed(rd_kafka_t *ck)
{
    rd_kafka_topic_partition_list_t *tp = rd_kafka_topic_partition_list_new(1);
    rd_kafka_topic_partition_list_add(tp, "idem", 0);
    assert_int_equal(rd_kafka_committed(ck, tp, 10000), RD_KAFKA_RESP_ERR_NO_ERROR);
    int64_t off = tp->elems[0].offset;
    rd_kafka_topic_partition_list_destroy(tp);
    return off;
}

/* DeleteTopics deletes (the store's DELETE_TOPIC): a Fetch parked on the
 * topic is answered UNKNOWN_TOPIC_OR_PARTITION at once, the Kafka group's
 * committed offset goes with it, an idempotent producer's connection lets
 * go of it (closing it later touches nothing freed: ASan), and a topic of
 * the same name starts again at offset 0 - with nothing prefetched from the
 * old one. */
static void test_delete_topic(void **state)
{
    (void)state;
    if (!have_kcat())
        skip();
    e2e_server s;
    start(&s, NULL);
    int producer = kconnect(&s);
    kr_buf batch;
    kr_buf_init(&batch, 1 << 20);
    char value[64];
    int16_t err;
    int64_t base;
    idem_batch(&batch, init_producer(producer), 0, 0, 0, 3);
    produce_raw(producer, &batch, 2, &err, &base);
    assert_int_equal(err, 0);

    /* A committed offset, a prefetch (one record read, the next made ahead)
     * and a Fetch parked at the end. */
    const char *ckv[] = {"group.id", "gd", "enable.auto.commit", "false", NULL};
    rd_kafka_t *ck = client(&s, RD_KAFKA_CONSUMER, ckv);
    rd_kafka_topic_partition_list_t *tp = rd_kafka_topic_partition_list_new(1);
    rd_kafka_topic_partition_list_add(tp, "idem", 0)->offset = 2;
    assert_int_equal(rd_kafka_commit(ck, tp, 0), RD_KAFKA_RESP_ERR_NO_ERROR);
    rd_kafka_topic_partition_list_destroy(tp);
    assert_int_equal(committed(ck), 2);
    int ahead = kconnect(&s), parked = kconnect(&s);
    fetch_raw(ahead, "idem", 0, 1, 0, 3);
    assert_int_equal(fetch_answer(ahead, 3, 5000, value, sizeof value), 0);
    assert_string_equal(value, "v0");
    fetch_raw(parked, "idem", 3, 1 << 20, 20000, 4);
    sleep_ms(300);

    rd_kafka_t *rk = client(&s, RD_KAFKA_PRODUCER, NULL);
    rd_kafka_DeleteTopic_t *dt = rd_kafka_DeleteTopic_new("idem");
    rd_kafka_queue_t *q = rd_kafka_queue_new(rk);
    uint64_t t0 = e2e_now_ms();
    rd_kafka_DeleteTopics(rk, &dt, 1, NULL, q);
    rd_kafka_event_t *ev = rd_kafka_queue_poll(q, 10000);
    assert_non_null(ev);
    size_t n;
    const rd_kafka_topic_result_t **tr =
        rd_kafka_DeleteTopics_result_topics(rd_kafka_event_DeleteTopics_result(ev), &n);
    assert_int_equal(n, 1);
    assert_int_equal(rd_kafka_topic_result_error(tr[0]), RD_KAFKA_RESP_ERR_NO_ERROR);
    rd_kafka_event_destroy(ev);
    assert_int_equal(fetch_answer(parked, 4, 5000, value, sizeof value),
                     KR_KAFKA_ERR_UNKNOWN_TOPIC_OR_PARTITION);
    assert_true(e2e_now_ms() - t0 < 10000); /* not its 20 s wait */
    /* Gone: from krappy's topics, and a second deletion finds nothing. */
    assert_int_equal(sh("%s -h 127.0.0.1 -p %s topics", e2e_cli(), s.port), 0);
    assert_null(strstr(out, "idem"));
    rd_kafka_DeleteTopics(rk, &dt, 1, NULL, q);
    ev = rd_kafka_queue_poll(q, 10000);
    assert_non_null(ev);
    tr = rd_kafka_DeleteTopics_result_topics(rd_kafka_event_DeleteTopics_result(ev), &n);
    assert_int_equal(n, 1);
    assert_int_equal(rd_kafka_topic_result_error(tr[0]), RD_KAFKA_RESP_ERR_UNKNOWN_TOPIC_OR_PART);
    rd_kafka_event_destroy(ev);
    rd_kafka_DeleteTopic_destroy(dt);
    rd_kafka_queue_destroy(q);
    rd_kafka_destroy(rk);
    close(producer); /* its registration went with the topic */

    /* The name again: from offset 0, without the old records or offset. */
    assert_int_equal(sh("printf \"n0\\nn1\\nn2\\n\" | kcat -b %s -P -t idem", bs(&s)), 0);
    fetch_raw(ahead, "idem", 1, 1, 0, 5);
    assert_int_equal(fetch_answer(ahead, 5, 5000, value, sizeof value), 0);
    assert_string_equal(value, "n1");
    assert_true(committed(ck) < 0);
    close(ahead);
    close(parked);
    rd_kafka_consumer_close(ck);
    rd_kafka_destroy(ck);
    kr_buf_free(&batch);
    assert_int_equal(e2e_stop(&s, 10000), 0);
}

/* An idle Kafka connection is closed after --idle-timeout. */
/* A number field of a JSON log line ("key":"N"), or -1. */
static long long log_field(const char *line, const char *key)
{
    char pat[64];
    snprintf(pat, sizeof pat, "\"%s\":\"", key);
    const char *p = strstr(line, pat);
    return p != NULL ? atoll(p + strlen(pat)) : -1;
}

/* With the debug log, every request leaves a timeline line once its reply
 * is written, its steps in order; at info there is none. */
static void test_request_timeline(void **state)
{
    (void)state;
    if (!have_kcat())
        skip();
    e2e_server s;
    start(&s, NULL); /* the harness runs krappyd with --log-level debug */
    assert_int_equal(sh("printf \"a:1\\nb:2\\n\" | kcat -b %s -P -t tl -K: -X acks=1", bs(&s)), 0);
    assert_int_equal(e2e_stop_keep(&s, 10000), 0);
    assert_int_equal(sh("grep -F \"Kafka request timeline\" %s | grep -F \"\\\"Produce\\\"\" | "
                        "head -n 1",
                        s.log_path),
                     0);
    assert_true(log_field(out, "frame_bytes") > 0);
    long long read = log_field(out, "read_us"), handed = log_field(out, "handed_us");
    long long done = log_field(out, "done_us"), queued = log_field(out, "queued_us");
    long long drained = log_field(out, "drained_us");
    assert_true(read >= 0 && read <= handed && handed <= done && done <= queued);
    assert_true(queued <= drained && drained < 10 * 1000 * 1000);
    assert_true(log_field(out, "loop_cpu_us") >= 0);
    assert_true(log_field(out, "socket_unread_bytes") >= 0);
    assert_true(log_field(out, "seen_at_us") > 0);
    assert_int_equal(e2e_stop(&s, 10000), 0);

    const char *info[] = {"--log-level", "info", NULL};
    start(&s, info);
    assert_int_equal(sh("printf \"a:1\\n\" | kcat -b %s -P -t tl -K:", bs(&s)), 0);
    assert_int_equal(e2e_stop_keep(&s, 10000), 0);
    assert_int_equal(sh("grep -c -F \"Kafka request timeline\" %s", s.log_path), 1);
    assert_int_equal(atoi(out), 0);
    assert_int_equal(e2e_stop(&s, 10000), 0);
}

static void test_idle_timeout(void **state)
{
    (void)state;
    e2e_server s;
    const char *extra[] = {"--idle-timeout", "1s", NULL};
    start(&s, extra);
    int fd = kconnect(&s);
    assert_int_equal(e2e_wait_closed(fd, 5000), 1);
    close(fd);
    assert_int_equal(e2e_stop(&s, 10000), 0);
}

/* Whether the Kafka connection answers an ApiVersions within 5 s. */
static bool kafka_answers(int fd)
{
    kr_kafka_api_versions_req q = {0};
    send_request(fd, KR_KAFKA_API_VERSIONS, 0, 1, &q);
    kr_buf b;
    kr_buf_init(&b, 1 << 20);
    int rc = recv_frame(fd, &b, 5000);
    kr_buf_free(&b);
    return rc == 1;
}

/* Both ports share --max-connections (as the fd plan counts them): the
 * Kafka connection over it is closed, a Krappy one gets BUSY, and a slot
 * freed on one port serves the other. */
static void test_connection_limit(void **state)
{
    (void)state;
    e2e_server s;
    const char *extra[] = {"--max-connections", "2", NULL};
    start(&s, extra);
    int krappy = e2e_connect(&s);
    assert_true(krappy >= 0);
    kr_buf b;
    kr_buf_init(&b, 256);
    kr_enc_empty(&b, (kr_cid){0});
    assert_int_equal(e2e_send_frame(krappy, KRAPPY_T_PING, b.data, b.len), 0);
    kr_buf_free(&b);
    assert_int_equal(e2e_expect_ok(krappy), 0); /* accepted: one slot taken */
    int kafka = kconnect(&s);
    assert_true(kafka_answers(kafka));

    int over = kconnect(&s);
    assert_int_equal(e2e_wait_closed(over, 5000), 1);
    close(over);
    over = e2e_connect(&s);
    assert_true(over >= 0);
    char msg[256];
    assert_int_equal(e2e_expect_error(over, KRAPPY_E_BUSY, msg, sizeof msg), 0);
    assert_non_null(strstr(msg, "--max-connections"));
    close(over);

    /* The Krappy connection's slot goes to a Kafka client once it is
     * closed (the server sees the close a moment later). */
    close(krappy);
    bool served = false;
    uint64_t deadline = e2e_now_ms() + 5000;
    while (!served && e2e_now_ms() < deadline) {
        int fd = kconnect(&s);
        served = kafka_answers(fd);
        close(fd);
    }
    assert_true(served);
    close(kafka);
    assert_int_equal(e2e_stop(&s, 10000), 0);
}

/* ---- request memory ---- */

/* One pipelining Kafka producer: a thread sends the same Produce frame
 * again and again, another reads the responses. */
typedef struct kpipe {
    int fd;
    const kr_buf *frame;
    atomic_bool stop, written; /* written: the writer is done */
    atomic_ulong sent, ok, refused, lost;
    pthread_t writer, reader;
} kpipe;

static void *kpipe_writer(void *arg)
{
    kpipe *p = arg;
    while (!atomic_load(&p->stop)) {
        if (e2e_send_all(p->fd, p->frame->data, p->frame->len) < 0)
            break;
        atomic_fetch_add(&p->sent, 1);
    }
    atomic_store(&p->written, true);
    return NULL;
}

/* Reads until every frame sent has its response (once the writer is
 * done); those without one when the connection closes or no response
 * comes for 60 s are counted lost. */
static void *kpipe_reader(void *arg)
{
    kpipe *p = arg;
    kresp k;
    kresp_init(&k);
    char msg[256];
    uint64_t last = e2e_now_ms();
    for (;;) {
        unsigned long got = atomic_load(&p->ok) + atomic_load(&p->refused);
        if (atomic_load(&p->written) && got >= atomic_load(&p->sent))
            break;
        if (e2e_now_ms() - last > 60000)
            break;
        struct pollfd pfd = {p->fd, POLLIN, 0};
        if (poll(&pfd, 1, 200) != 1)
            continue;
        /* A response begun is read whole (recv_frame cannot resume). */
        kr_kafka_arena_reset(&k.a);
        if (recv_frame(p->fd, &k.b, 60000) != 1)
            break;
        last = e2e_now_ms();
        kr_kafka_produce_resp resp;
        int32_t cid;
        if (kr_kafka_response_decode(k.b.data, k.b.len, KR_KAFKA_PRODUCE, 7, &k.a, &cid, &resp, msg,
                                     sizeof msg) == KR_KAFKA_OK &&
            resp.responses.n == 1 && resp.responses.v[0].partitions.n == 1 &&
            resp.responses.v[0].partitions.v[0].error_code == 0)
            atomic_fetch_add(&p->ok, 1);
        else
            atomic_fetch_add(&p->refused, 1);
    }
    unsigned long got = atomic_load(&p->ok) + atomic_load(&p->refused);
    atomic_store(&p->lost, atomic_load(&p->sent) - got);
    kresp_free(&k);
    return NULL;
}

/* A metric of the server's /metrics (0 when absent). */
static double metric(const e2e_server *s, const char *name)
{
    if (sh("curl -sf http://127.0.0.1:%s/metrics | grep \"^%s \"", s->http_port, name) != 0)
        return 0;
    return atof(out + strlen(name) + 1);
}

/*
 * Kafka Produce requests take request memory from --max-pending-bytes, with
 * the Krappy port's: eight producers pipeline 1 MiB batches (acks all)
 * while every fdatasync of a topic takes 250 ms, so the requests read
 * wait for the disk. krappyd stops reading them once the budget is taken
 * (its waits counted) - RSS grows by about the budget, not by what the
 * clients send (without it, ~100 MiB a second) - and every batch sent is
 * answered and stored once the load stops.
 */
static void test_produce_within_request_memory(void **state)
{
    (void)state;
    if (!e2e_have_shim() || getenv("KRAPPY_E2E_SMOKE") != NULL)
        skip();
    enum { PRODUCERS = 8, RECORDS = 1000, VALUE = 1000 };
    const long budget_mib = 16;
    const char *args[] = {"--kafka-listen", "127.0.0.1:0", "--max-pending-bytes", "16M", NULL};
    e2e_server s;
    memset(&s, 0, sizeof s);
    e2e_tmp_template(s.dir, sizeof s.dir);
    assert_non_null(mkdtemp(s.dir));
    assert_int_equal(e2e_shim_on(&s), 0);
    assert_int_equal(e2e_shim_faults(&s, "sync /topics/ DELAY ms=250 times=1000000\n"), 0);
    assert_int_equal(e2e_restart_small_quarantine(&s, args), 0);
    e2e_shim_off();

    /* One Produce of RECORDS records of VALUE bytes to topic "budget". */
    kr_buf batch, frame;
    kr_buf_init(&batch, 4u << 20);
    kr_buf_init(&frame, 4u << 20);
    static uint8_t value[VALUE];
    memset(value, 'b', sizeof value);
    kr_kafka_batch_writer w;
    kr_kafka_batch_begin(&w, &batch);
    for (int i = 0; i < RECORDS; i++) {
        kr_kafka_bytes v = {value, VALUE};
        assert_int_equal(
            kr_kafka_record_begin(&w, i, (int64_t)wall_ms(), (kr_kafka_bytes){NULL, -1}, v, 0), 0);
        assert_int_equal(kr_kafka_record_end(&w), 0);
    }
    assert_int_equal(kr_kafka_batch_end(&w), RECORDS);
    kr_kafka_produce_req_partition part = {0, {batch.data, (int32_t)batch.len}};
    kr_kafka_produce_req_topic topic = {kr_kafka_cstr("budget"), {&part, 1}};
    kr_kafka_produce_req pr = {
        .transactional_id = {NULL, -1}, .acks = -1, .timeout_ms = 60000, .topics = {&topic, 1}};
    kr_kafka_req_header h = {KR_KAFKA_PRODUCE, 7, 1, kr_kafka_cstr("e2e")};
    char msg[256];
    assert_int_equal(kr_kafka_request_encode(&frame, &h, &pr, msg, sizeof msg), KR_KAFKA_OK);

    kpipe p[PRODUCERS];
    memset(p, 0, sizeof p);
    long base = e2e_rss_kib(&s);
    for (int i = 0; i < PRODUCERS; i++) {
        p[i].fd = kconnect(&s);
        p[i].frame = &frame;
        assert_int_equal(e2e_thread_start(&p[i].writer, kpipe_writer, &p[i]), 0);
        assert_int_equal(e2e_thread_start(&p[i].reader, kpipe_reader, &p[i]), 0);
    }
    long peak = base;
    double pending = 0; /* the budget's own count, at its highest */
    for (int i = 0; i < 25; i++) {
        sleep_ms(200);
        long rss = e2e_rss_kib(&s);
        if (rss > peak)
            peak = rss;
        double now = metric(&s, "krappy_pending_request_bytes");
        if (now > pending)
            pending = now;
    }
    double waits = metric(&s, "krappy_request_memory_waits_total");
    unsigned long sent = 0, ok = 0, refused = 0, lost = 0;
    for (int i = 0; i < PRODUCERS; i++)
        atomic_store(&p[i].stop, true);
    for (int i = 0; i < PRODUCERS; i++) {
        /* A writer blocked in send() is freed by the reads the server
         * resumes as the disk catches up. */
        e2e_thread_join(p[i].writer);
        e2e_thread_join(p[i].reader);
        close(p[i].fd);
        sent += atomic_load(&p[i].sent);
        ok += atomic_load(&p[i].ok);
        refused += atomic_load(&p[i].refused);
        lost += atomic_load(&p[i].lost);
    }
    long growth_mib = (peak - base) / 1024;
    assert_int_equal(sh("%s -h 127.0.0.1 -p %s stats budget --json 2>&1", e2e_cli(), s.port), 0);
    const char *next = strstr(out, "\"next\":");
    assert_non_null(next);
    long stored = atol(next + 7);
    printf("      %d Kafka producers: %lu Produce requests of %zu KiB sent in 5 s of 250 ms "
           "fdatasyncs, %lu answered OK; request memory waits %.0f, pending at most %.1f MiB; "
           "RSS peak +%ld MiB (budget %ld MiB)\n",
           PRODUCERS, sent, frame.len >> 10, ok, waits, pending / (1 << 20), growth_mib,
           budget_mib);
    assert_true(sent > 0);
    assert_int_equal(refused, 0);
    assert_int_equal(lost, 0);
    assert_int_equal(ok, sent);
    assert_int_equal(stored, (long)ok * RECORDS);
    assert_true(waits > 0);
    /* The budget's frames grown into their events while the disk holds
     * them, with the frames read past it every KR_QUEUE_AGE_MS by the
     * longest waiter: under twice the budget; without it, 80 MiB and more
     * after 4 s, and growing. */
    assert_true(pending <= (double)((2 * budget_mib + 8) << 20));
    /* Those requests (each also in its stored form while written) and the
     * allocator's overhead (ASan's redzones and quarantine in the sanitized
     * build); without the budget, 220 MiB and more. */
    assert_true(growth_mib <= 8 * budget_mib + 32);
    kr_buf_free(&batch);
    kr_buf_free(&frame);
    assert_int_equal(e2e_stop(&s, 20000), 0);
}

/* ---- on a cluster ---- */

static const char *const kafka_cluster_args[] = {"--kafka-listen", "127.0.0.1:0", NULL};

/* Metadata v4 (auto-creation allowed) of topic `name` on fd: the topic's
 * error code. */
static int16_t metadata_auto(int fd, int32_t cid, const char *name)
{
    kr_kafka_str one = kr_kafka_cstr(name);
    kr_kafka_metadata_req q = {.topics = {&one, 1}, .allow_auto_topic_creation = true};
    kresp k;
    kresp_init(&k);
    kr_kafka_metadata_resp resp;
    round_trip(fd, &k, KR_KAFKA_METADATA, 4, cid, &q, &resp, 15000);
    assert_int_equal(resp.topics.n, 1);
    int16_t err = resp.topics.v[0].error_code;
    kresp_free(&k);
    return err;
}

static krappy_client *node_client(const e2e_cluster *c, unsigned i)
{
    krappy_client *k = e2e_cluster_client(c, i);
    assert_non_null(k);
    return k;
}

/* Whether node i has the topic. */
static bool node_has(const e2e_cluster *c, unsigned i, const char *topic)
{
    krappy_client *k = node_client(c, i);
    krappy_topic_list *tl = NULL;
    bool has = false;
    if (krappy_topics(k, &tl) == KRAPPY_OK)
        for (size_t n = 0; n < tl->count; n++)
            has = has || strcmp(tl->topics[n].name, topic) == 0;
    krappy_topic_list_free(tl);
    krappy_client_free(k);
    return has;
}

/*
 * The numbers of the events of `topic` on node i, in stream order, once
 * it holds `want` of them (within 30 s): each value is a byte string
 * "<letter><number>". @return how many were read into nums (at most cap).
 */
static size_t node_numbers(const e2e_cluster *c, unsigned i, const char *topic, size_t want,
                           int *nums, size_t cap)
{
    krappy_client *k = node_client(c, i);
    uint64_t end = e2e_now_ms() + 30000;
    size_t got;
    do {
        got = 0;
        uint64_t off = 0;
        for (;;) {
            krappy_events *ev = NULL;
            if (krappy_fetch(k, topic, off, 1000, 0, 0, &ev) != KRAPPY_OK)
                break;
            for (size_t n = 0; n < ev->count && got < cap; n++) {
                const krappy_event *e = &ev->events[n];
                /* A short CBOR byte string: one header byte. */
                assert_true(e->value_len >= 2 && (e->value[0] & 0xe0) == 0x40);
                char v[32];
                snprintf(v, sizeof v, "%.*s", (int)e->value_len - 2, (const char *)e->value + 2);
                nums[got++] = atoi(v);
            }
            off = ev->next;
            size_t count = ev->count;
            krappy_events_free(ev);
            if (count == 0)
                break;
        }
        if (got < want)
            usleep(100000);
    } while (got < want && e2e_now_ms() < end);
    krappy_client_free(k);
    return got;
}

/* Every node holds the same n events numbered 0..n-1, each once. */
static void expect_once_everywhere(const e2e_cluster *c, const char *topic, size_t n)
{
    int *first = calloc(n + 1, sizeof *first), *nums = calloc(n + 1, sizeof *nums);
    unsigned char *seen = calloc(n, 1);
    assert_true(first != NULL && nums != NULL && seen != NULL);
    for (unsigned i = 0; i < c->n; i++) {
        size_t got = node_numbers(c, i, topic, n, i == 0 ? first : nums, n + 1);
        if (got != n)
            fail_msg("node %u holds %zu events of %s, not %zu", i + 1, got, topic, n);
        if (i == 0) {
            for (size_t x = 0; x < n; x++) {
                assert_true(first[x] >= 0 && (size_t)first[x] < n);
                if (seen[first[x]]++ != 0)
                    fail_msg("event %d is twice in %s on node 1", first[x], topic);
            }
        } else if (memcmp(first, nums, n * sizeof *nums) != 0) {
            fail_msg("node %u holds %s in another order than node 1", i + 1, topic);
        }
    }
    free(first);
    free(nums);
    free(seen);
}

/*
 * Auto-creation goes through the leader's log (a follower sends the
 * client there and makes nothing); an idempotent producer's
 * repeats are answered with the original's offset, also by a new leader
 * after kill -9 of the old one; a follower refuses Produce; producer ids
 * carry the node's id.
 */
static void test_cluster_idempotent_batches(void **state)
{
    (void)state;
    e2e_cluster c;
    assert_int_equal(e2e_cluster_start(&c, 3, false, kafka_cluster_args), 0);
    int leader = e2e_cluster_leader(&c, 10000);
    assert_true(leader >= 0);
    unsigned f = ((unsigned)leader + 1) % 3;
    int ffd = kconnect(&c.node[f]), fd = kconnect(&c.node[leader]);
    /* A follower names the partition as the leader's (once it knows the
     * leader's Kafka address: LEADER_NOT_AVAILABLE until then), and makes
     * nothing. */
    int16_t merr;
    uint64_t until = e2e_now_ms() + 10000;
    while ((merr = metadata_auto(ffd, 1, "idem")) == KR_KAFKA_ERR_LEADER_NOT_AVAILABLE &&
           e2e_now_ms() < until)
        usleep(100000);
    assert_int_equal(merr, 0);
    for (unsigned i = 0; i < 3; i++)
        assert_false(node_has(&c, i, "idem"));
    assert_int_equal(metadata_auto(fd, 1, "idem"), 0); /* once the log made it */
    uint64_t end = e2e_now_ms() + 10000;
    while (!(node_has(&c, 0, "idem") && node_has(&c, 1, "idem") && node_has(&c, 2, "idem")) &&
           e2e_now_ms() < end)
        usleep(50000);
    assert_int_equal(metadata_auto(ffd, 2, "idem"), 0);

    int64_t pid = init_producer(fd);
    assert_int_equal(pid & 0xff, leader + 1);
    kr_buf batch;
    kr_buf_init(&batch, 1 << 20);
    idem_batch(&batch, pid, 0, 0, 0, 3);
    produce_expect(fd, &batch, 2, 0, 0);
    produce_expect(fd, &batch, 3, 0, 0); /* the same again: the original's offset */
    idem_batch(&batch, pid, 0, 7, 3, 2); /* 3..6 are missing */
    produce_expect(fd, &batch, 4, KR_KAFKA_ERR_OUT_OF_ORDER_SEQUENCE_NUMBER, -1);
    idem_batch(&batch, pid, 0, 3, 3, 2);
    produce_expect(ffd, &batch, 5, KR_KAFKA_ERR_NOT_LEADER_OR_FOLLOWER, -1);
    produce_expect(fd, &batch, 6, 0, 3);
    close(fd);
    close(ffd);

    /* kill -9 of the leader: the new one knows the producer's last
     * batches from the log. */
    e2e_kill9(&c.node[leader]);
    int next = e2e_cluster_leader(&c, 20000);
    assert_true(next >= 0 && next != leader);
    fd = kconnect(&c.node[next]);
    int64_t other = init_producer(fd);
    assert_int_equal(other & 0xff, next + 1);
    assert_true(other != pid);
    produce_expect(fd, &batch, 7, 0, 3);
    idem_batch(&batch, pid, 0, 5, 5, 1);
    produce_expect(fd, &batch, 8, 0, 5);
    close(fd);
    assert_int_equal(e2e_cluster_restart(&c, (unsigned)leader, kafka_cluster_args + 2), 0);
    expect_once_everywhere(&c, "idem", 6);
    kr_buf_free(&batch);
    assert_int_equal(e2e_cluster_stop(&c), 0);
}

typedef struct kill_leader_arg {
    e2e_cluster *c;
    int leader;
    int n;
} kill_leader_arg;

/* Some records acknowledged, batches in flight: kill -9 of the leader,
 * then it comes back on its directory. */
static void kill_leader(void *arg, rd_kafka_t *rk)
{
    kill_leader_arg *k = arg;
    uint64_t until = e2e_now_ms() + 30000;
    while (dr_ok < k->n / 4 && dr_failed == 0 && e2e_now_ms() < until)
        rd_kafka_poll(rk, 10);
    if (dr_ok < k->n / 4)
        fail_msg("the producer had %d records acknowledged, %d failed, before the kill", dr_ok,
                 dr_failed);
    printf("e2e_kafka: leader killed with %d of %d records queued, %d acknowledged\n", k->n / 2 + 1,
           k->n, dr_ok);
    e2e_kill9(&k->c->node[k->leader]);
    int next = e2e_cluster_leader(k->c, 20000);
    assert_true(next >= 0 && next != k->leader);
    assert_int_equal(e2e_cluster_restart(k->c, (unsigned)k->leader, kafka_cluster_args + 2), 0);
}

/* Three nodes with Kafka ports: boot gets every node's Kafka address.
 * @return the leader. */
static int kafka_cluster(e2e_cluster *c, char *boot, size_t len)
{
    assert_int_equal(e2e_cluster_start(c, 3, false, kafka_cluster_args), 0);
    int leader = e2e_cluster_leader(c, 10000);
    assert_true(leader >= 0);
    snprintf(boot, len, "127.0.0.1:%s,127.0.0.1:%s,127.0.0.1:%s", c->node[0].kafka_port,
             c->node[1].kafka_port, c->node[2].kafka_port);
    return leader;
}

/* A librdkafka idempotent producer (acks all), bootstrapped on every node,
 * through kill -9 of the leader (restarted on its directory): every
 * record once, in one order, on every node. */
static void test_cluster_idempotent_producer(void **state)
{
    (void)state;
    e2e_cluster c;
    char boot[256];
    int leader = kafka_cluster(&c, boot, sizeof boot);
    const int n = e2e_torture() ? 50000 : 4000;
    kill_leader_arg k = {&c, leader, n};
    produce_once(boot, n, kill_leader, &k);
    expect_once_everywhere(&c, "once", (size_t)n);
    assert_int_equal(e2e_cluster_stop(&c), 0);
}

static void nothing_midway(void *arg, rd_kafka_t *rk)
{
    (void)arg;
    (void)rk;
}

/* The committed offset of group `group` on partition 0 of `topic`, as the
 * coordinator answers OffsetFetch (-1001: none; -1: could not ask). */
static int64_t committed_offset(rd_kafka_t *ck, const char *topic)
{
    rd_kafka_topic_partition_list_t *tp = rd_kafka_topic_partition_list_new(1);
    rd_kafka_topic_partition_list_add(tp, topic, 0);
    int64_t off = -1;
    rd_kafka_resp_err_t e = rd_kafka_committed(ck, tp, 5000);
    if (e == RD_KAFKA_RESP_ERR_NO_ERROR && tp->elems[0].err == 0)
        off = tp->elems[0].offset;
    else
        printf("e2e_kafka: OffsetFetch: %s\n", rd_kafka_err2str(e ? e : tp->elems[0].err));
    rd_kafka_topic_partition_list_destroy(tp);
    return off;
}

/*
 * A consumer group on a cluster. The leader coordinates it; a follower
 * answers the group APIs NOT_COORDINATOR. kill -9 of the leader (not
 * restarted) while a member reads, a record a millisecond: the member
 * finds the new leader as its coordinator - another broker id at another
 * address (with one id whose address moved, librdkafka kept connecting to
 * the dead node's), joins again, reads every record (some twice: those
 * since its last commit before the kill), and the group's committed offset
 * reaches the end.
 */
static void test_cluster_consumer_group(void **state)
{
    (void)state;
    e2e_cluster c;
    char boot[256];
    int leader = kafka_cluster(&c, boot, sizeof boot);
    enum { N = 3000 };
    produce_once(boot, N, nothing_midway, NULL);

    unsigned f = ((unsigned)leader + 1) % 3;
    int ffd = kconnect(&c.node[f]);
    kresp k;
    kresp_init(&k);
    kr_kafka_heartbeat_req hq = {kr_kafka_cstr("cg"), 1, kr_kafka_cstr("someone"), {NULL, -1}};
    kr_kafka_heartbeat_resp hr;
    round_trip(ffd, &k, KR_KAFKA_HEARTBEAT, 3, 1, &hq, &hr, 5000);
    assert_int_equal(hr.error_code, KR_KAFKA_ERR_NOT_COORDINATOR);
    kresp_free(&k);
    close(ffd);

    char err[512];
    rd_kafka_conf_t *conf = rd_kafka_conf_new();
    const char *kv[] = {"bootstrap.servers",
                        boot,
                        "group.id",
                        "cg",
                        "auto.offset.reset",
                        "earliest",
                        "auto.commit.interval.ms",
                        "100",
                        "session.timeout.ms",
                        "6000",
                        "heartbeat.interval.ms",
                        "300",
                        "reconnect.backoff.max.ms",
                        "200",
                        NULL};
    for (int i = 0; kv[i] != NULL; i += 2)
        assert_int_equal(rd_kafka_conf_set(conf, kv[i], kv[i + 1], err, sizeof err),
                         RD_KAFKA_CONF_OK);
    if (getenv("KRAPPY_E2E_RDKAFKA_DEBUG") != NULL) /* librdkafka's contexts, when debugging */
        (void)rd_kafka_conf_set(conf, "debug", getenv("KRAPPY_E2E_RDKAFKA_DEBUG"), err, sizeof err);
    rd_kafka_t *ck = rd_kafka_new(RD_KAFKA_CONSUMER, conf, err, sizeof err);
    assert_non_null(ck);
    rd_kafka_poll_set_consumer(ck);
    rd_kafka_topic_partition_list_t *sub = rd_kafka_topic_partition_list_new(1);
    rd_kafka_topic_partition_list_add(sub, "once", RD_KAFKA_PARTITION_UA);
    assert_int_equal(rd_kafka_subscribe(ck, sub), RD_KAFKA_RESP_ERR_NO_ERROR);
    rd_kafka_topic_partition_list_destroy(sub);
    static unsigned char times[N];
    memset(times, 0, sizeof times);
    int distinct = 0, reads = 0;
    bool killed = false;
    uint64_t deadline = e2e_now_ms() + 90000;
    while (distinct < N && e2e_now_ms() < deadline) {
        rd_kafka_message_t *m = rd_kafka_consumer_poll(ck, 200);
        if (m == NULL)
            continue;
        if (m->err == RD_KAFKA_RESP_ERR_NO_ERROR) {
            assert_true(m->offset >= 0 && m->offset < N);
            distinct += times[m->offset]++ == 0;
            reads++;
            usleep(1000); /* the member's work on the record */
        }
        rd_kafka_message_destroy(m);
        if (!killed && distinct >= N / 3) {
            e2e_kill9(&c.node[leader]);
            killed = true;
        }
    }
    printf("e2e_kafka: the member read %d records, %d of them again\n", reads, reads - distinct);
    assert_int_equal(distinct, N);
    uint64_t until = e2e_now_ms() + 20000;
    int64_t done;
    while ((done = committed_offset(ck, "once")) != N && e2e_now_ms() < until) {
        rd_kafka_message_t *m = rd_kafka_consumer_poll(ck, 100);
        if (m != NULL)
            rd_kafka_message_destroy(m);
    }
    assert_int_equal(done, N);
    rd_kafka_consumer_close(ck);
    rd_kafka_destroy(ck);

    /* The new leader killed too: the last node knows no leader. Its
     * Metadata says so as Kafka's brokers do during an election (the
     * partition LEADER_NOT_AVAILABLE, leader -1, no controller), and
     * FindCoordinator answers COORDINATOR_NOT_AVAILABLE. */
    int second = e2e_cluster_leader(&c, 10000);
    assert_true(second >= 0 && second != leader);
    e2e_kill9(&c.node[second]);
    unsigned last = 3 - (unsigned)leader - (unsigned)second;
    int lfd = kconnect(&c.node[last]);
    kr_kafka_str one = kr_kafka_cstr("once");
    kr_kafka_metadata_req mq = {.topics = {&one, 1}};
    kr_kafka_metadata_resp mr;
    int16_t perr = 0;
    uint64_t until_lost = e2e_now_ms() + 15000;
    do {
        kresp_init(&k);
        round_trip(lfd, &k, KR_KAFKA_METADATA, 4, 2, &mq, &mr, 5000);
        assert_int_equal(mr.topics.n, 1);
        assert_int_equal(mr.topics.v[0].error_code, 0);
        assert_int_equal(mr.topics.v[0].partitions.n, 1);
        perr = mr.topics.v[0].partitions.v[0].error_code;
        if (perr != 0) {
            assert_int_equal(perr, KR_KAFKA_ERR_LEADER_NOT_AVAILABLE);
            assert_int_equal(mr.topics.v[0].partitions.v[0].leader_id, -1);
            assert_int_equal(mr.controller_id, -1);
            assert_int_equal(mr.brokers.n, 1);
            assert_int_equal(mr.brokers.v[0].node_id, (int32_t)last + 1);
        }
        kresp_free(&k);
    } while (perr == 0 && e2e_now_ms() < until_lost && usleep(100000) == 0);
    assert_int_equal(perr, KR_KAFKA_ERR_LEADER_NOT_AVAILABLE);
    kresp_init(&k);
    kr_kafka_find_coordinator_req fq = {kr_kafka_cstr("cg"), 0};
    kr_kafka_find_coordinator_resp fr;
    round_trip(lfd, &k, KR_KAFKA_FIND_COORDINATOR, 1, 3, &fq, &fr, 5000);
    assert_int_equal(fr.error_code, KR_KAFKA_ERR_COORDINATOR_NOT_AVAILABLE);
    kresp_free(&k);
    close(lfd);
    assert_int_equal(e2e_cluster_restart(&c, (unsigned)second, kafka_cluster_args + 2), 0);
    assert_int_equal(e2e_cluster_restart(&c, (unsigned)leader, kafka_cluster_args + 2), 0);
    assert_int_equal(e2e_cluster_stop(&c), 0);
}

int main(void)
{
    if (e2e_external_addr() != NULL) {
        fprintf(stderr, "e2e_kafka: skipped against an external server (it starts its own)\n");
        return 0;
    }
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_teardown(test_kcat_metadata, e2e_after_test),
        cmocka_unit_test_teardown(test_kcat_produce_consume, e2e_after_test),
        cmocka_unit_test_teardown(test_krappy_events_to_kcat, e2e_after_test),
        cmocka_unit_test_teardown(test_librdkafka_codecs, e2e_after_test),
        cmocka_unit_test_teardown(test_consume_many_fetches, e2e_after_test),
        cmocka_unit_test_teardown(test_groups_split_and_rebalance, e2e_after_test),
        cmocka_unit_test_teardown(test_offsets_survive_kill9, e2e_after_test),
        cmocka_unit_test_teardown(test_sasl, e2e_after_test),
        cmocka_unit_test_teardown(test_admin, e2e_after_test),
        cmocka_unit_test_teardown(test_raw_frames, e2e_after_test),
        cmocka_unit_test_teardown(test_produce_frames_in_pieces, e2e_after_test),
        cmocka_unit_test_teardown(test_incremental_alter_configs, e2e_after_test),
        cmocka_unit_test_teardown(test_idempotent_repeats, e2e_after_test),
        cmocka_unit_test_teardown(test_idempotent_producer_kill9, e2e_after_test),
        cmocka_unit_test_teardown(test_delete_topic, e2e_after_test),
        cmocka_unit_test_teardown(test_request_timeline, e2e_after_test),
        cmocka_unit_test_teardown(test_idle_timeout, e2e_after_test),
        cmocka_unit_test_teardown(test_connection_limit, e2e_after_test),
        cmocka_unit_test_teardown(test_produce_within_request_memory, e2e_after_test),
        cmocka_unit_test_teardown(test_cluster_idempotent_batches, e2e_after_test),
        cmocka_unit_test_teardown(test_cluster_idempotent_producer, e2e_after_test),
        cmocka_unit_test_teardown(test_cluster_consumer_group, e2e_after_test),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
