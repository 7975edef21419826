/*
 * e2e/bench/vs/vs.h - krappyd side by side with NATS JetStream and Redis
 * Streams (issue 7). One program, bench_vs, runs every workload against
 * every system in the same invocation; each system is a backend (a
 * vs_system) that starts its own server on 127.0.0.1 in a fresh directory
 * and runs the workloads with its own client library:
 *
 *   krappy.c  libkrappy            krappyd
 *   nats.c    libnats (nats.c 3.x) nats-server 2.9, JetStream file storage
 *   redis.c   hiredis              redis-server 7, AOF
 *
 * The driver (main.c) owns timing, CPU accounting, repetitions, medians and
 * the table. A backend owns only what is specific to its system, and brackets
 * the timed part of each workload with vs_meter_start/vs_meter_stop so that
 * connecting and setting up are never counted.
 *
 * Fair by construction: every backend gets the same vs_params (events, keys,
 * value size, batch size, in-flight window) and the same event sequence:
 * event n has key vs_key(vs_key_of(p, n)) and value vs_value(n, ts).
 * Consumers decode every event and check its index (vs_value_index) against
 * the count they expect, so a system that drops or reorders fails loudly.
 *
 * 3-node clusters (issue 18): vs_krappy3 (three krappyd on Raft) and
 * vs_nats3 (three nats-server, R3 streams) run ingest, produce->consume and
 * recover, with cluster_events and cluster_rate, on 127.0.0.1.
 */
#ifndef KRAPPY_BENCH_VS_H
#define KRAPPY_BENCH_VS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#define VS_KEY_LEN   16  /* "key-%011u" */
#define VS_VALUE_LEN 100 /* "%020llu" index, "%020llu" stamp, 'v' fill */

/* What every backend is asked to do; the same for all of them. */
typedef struct vs_params {
    long events;         /* events per ingest run (workloads 1 and 2) */
    long keys;           /* keys drawn from (100,000) */
    int batch;           /* events per PUBLISH / fetch / poll (1,000) */
    int window;          /* batches in flight while ingesting (8) */
    int get_window;      /* GET requests in flight when pipelined */
    long gets;           /* GETs one at a time (latency) */
    long gets_piped;     /* GETs pipelined (throughput) */
    double rate;         /* produce->consume: events/s (100,000) */
    double lat_secs;     /* produce->consume: how long (seconds) */
    long rss_events;     /* RSS load: events (10,000,000) */
    long rss_keys;       /* RSS load: keys (1,000,000) */
    long pub_events;     /* single-event publishes, pipelined (1,000,000) */
    int pub_window;      /* ... this many in flight (64) */
    long pubs_one;       /* single-event publishes one at a time (20,000) */
    long pings;          /* PINGs one at a time (20,000) */
    double long_secs;    /* produce->consume, the long run (30 s) */
    long cluster_events; /* 3-node clusters: events per ingest run (200,000) */
    double cluster_rate; /* 3-node clusters: produce->consume events/s (1,000) */
} vs_params;

/* A running server, filled in by the backend's start(). */
typedef struct vs_server {
    pid_t pid;     /* the server process (for CPU and RSS) */
    char host[64]; /* "127.0.0.1" */
    int port;
    char dir[256]; /* its data directory (vs_mkdtemp; removed by e2e_rm_tmp) */
    void *priv;    /* the backend's own state */
} vs_server;

/* Timing of one workload run. The backend calls vs_meter_start right before
 * the first timed request and vs_meter_stop right after the last reply; the
 * driver reads wall time and CPU (client process, server pid) in between.
 * Latency workloads add one sample (nanoseconds) per operation. */
typedef struct vs_meter {
    pid_t server;
    double t0, t1;     /* CLOCK_MONOTONIC seconds */
    double cli0, cli1; /* this process's CPU seconds (all threads) */
    double srv0, srv1; /* the server's CPU seconds (all threads) */
    uint64_t *lat;     /* latency samples, ns */
    size_t nlat, caplat;
} vs_meter;

void vs_meter_start(vs_meter *m);
void vs_meter_stop(vs_meter *m);
/* Thread-safe only in the sense that one thread adds samples at a time. */
void vs_lat_add(vs_meter *m, uint64_t ns);

/* Per-run context handed to each workload. */
typedef struct vs_ctx {
    const vs_params *p;
    vs_server *srv;
    char err[512];  /* a sentence when a workload returns VS_FAIL */
    char note[256]; /* a sentence when it returns VS_SKIP (e.g. the
                       system has no such mode) */
} vs_ctx;

enum { VS_OK = 0, VS_SKIP = 1, VS_FAIL = -1 };

/*
 * A system under test. Every function returns VS_OK, VS_SKIP (with
 * ctx->note) or VS_FAIL (with ctx->err); *done is how many events or
 * requests the timed part completed (the driver divides by wall time).
 *
 * One server lifetime runs, in this order: ping, ingest(write) into stream
 * "bench", consume, group, get_one, get_piped (all on "bench"),
 * ingest(sync) into "bench-sync", publish_piped, publish_one, latency on a
 * stream of its own. The RSS load and the long produce->consume run (latency
 * with p->lat_secs = p->long_secs) each get their own fresh server.
 */
typedef struct vs_system {
    const char *name; /* "krappyd", "NATS JetStream", "Redis Streams" */
    const char *id;   /* "krappy", "nats", "redis" (for --only) */
    /* Start a fresh server in a fresh directory, wait until it serves. */
    int (*start)(vs_ctx *x);
    /* Stop it (SIGTERM, then SIGKILL), remove its directory. */
    void (*stop)(vs_ctx *x);
    /* 1 and 2. p->events events into "bench" (sync false: no fsync before
     * ack) or "bench-sync" (sync true: fsync before ack), batches of
     * p->batch, p->window batches in flight. */
    int (*ingest)(vs_ctx *x, vs_meter *m, bool sync, long *done);
    /* 3. Read "bench" from the start by offset/position, batches of
     * p->batch, one request in flight, every event decoded and its index
     * checked; *done = events read (must equal p->events). */
    int (*consume)(vs_ctx *x, vs_meter *m, long *done);
    /* 4. A durable consumer group on "bench": take batches of p->batch,
     * acknowledge each batch, the ack of one batch pipelined with the
     * request for the next; every event decoded and checked. */
    int (*group)(vs_ctx *x, vs_meter *m, long *done);
    /* 5a. p->gets latest-value reads, one at a time, of keys that exist
     * (vs_key_of(p, n) for n drawn from [0, p->events)); one latency
     * sample per read; the value is checked to be a vs_value. */
    int (*get_one)(vs_ctx *x, vs_meter *m, long *done);
    /* 5b. p->gets_piped reads with p->get_window in flight. */
    int (*get_piped)(vs_ctx *x, vs_meter *m, long *done);
    /* 6. Produce at p->rate events/s for p->lat_secs into a stream of its own
     * (one event per publish, sent from the VS_TICK_NS grid and stamped with
     * its scheduled send time, vs_value(n, due)), while a consumer on its own
     * connection reads them as they arrive; one sample per event:
     * receive time - stamp. */
    int (*latency)(vs_ctx *x, vs_meter *m, long *done);
    /* 7. Load p->rss_events events over p->rss_keys keys into a stream
     * as ingest(write) does; the driver reads the server's RSS after. */
    int (*load)(vs_ctx *x, vs_meter *m, long *done);
    /* 8a. p->pub_events events, each its own publish acknowledged without
     * fsync (krappyd: ack "write"), p->pub_window in flight, into a stream
     * of its own ("bench-one"); every acknowledgement checked. */
    int (*publish_piped)(vs_ctx *x, vs_meter *m, long *done);
    /* 8b. p->pubs_one such publishes one at a time (into "bench-one1"),
     * one latency sample each: send to acknowledgement. */
    int (*publish_one)(vs_ctx *x, vs_meter *m, long *done);
    /* 8c. p->pings of the system's no-op round trip (PING), one at a time,
     * one latency sample each: the floor a server adds to the network's. */
    int (*ping)(vs_ctx *x, vs_meter *m, long *done);
    /* C3 (3-node clusters only). After ingest: SIGKILL the leader (the
     * stream's leader for NATS), then publish one event through the
     * survivors until one is acknowledged; one sample (ns): kill to that
     * acknowledgement. Every event acknowledged before the kill must then
     * be served by the survivors. *done = 1. */
    int (*recover)(vs_ctx *x, vs_meter *m, long *done);
} vs_system;

extern const vs_system vs_krappy, vs_nats, vs_redis, vs_krappy3, vs_nats3;

/* ---- shared helpers (util.c) ---- */

/* Produce->consume: producers wake on a grid of this step from the start
 * of the schedule and send every event that fell due, each its own publish
 * stamped with its own due time. Waking for each event (every 10 us at
 * 100k/s) cost a VM more in timer interrupts than the work itself; the
 * grid adds at most this much (half on average) to every system's figure. */
#define VS_TICK_NS 50000u

/* Sleep until the first grid point (t0 + k * VS_TICK_NS) at or after
 * `due`; at once when that has passed. Sets a 1 us timer slack on the
 * calling thread (Linux's default 50 us would be late past every point). */
void vs_sleep_until_tick(uint64_t t0, uint64_t due);

/* Monotonic clock. */
uint64_t vs_now_ns(void);
double vs_now_s(void);

/* Which key event n uses: a fixed pseudo-random draw from [0, keys),
 * the same for every system. */
uint32_t vs_key_of(long keys, uint64_t n);
/* The key number the i-th latest-value read looks up: the key of an event
 * drawn pseudo-randomly from [0, p->events), so it exists; the same keys in
 * the same order for every system. */
uint32_t vs_read_key(const vs_params *p, long i);
/* Writes the 16-byte key for key number k (not NUL-terminated; out must
 * hold VS_KEY_LEN + 1, a NUL is written after). */
void vs_key(char *out, uint32_t k);
/* Writes event n's 100-byte value with stamp ts (0 unless latency); out
 * must hold VS_VALUE_LEN + 1. */
void vs_value(char *out, uint64_t n, uint64_t ts);
/* The index and stamp back from a value; -1 if len/format is wrong. */
int vs_value_parse(const void *v, size_t len, uint64_t *n, uint64_t *ts);

/* A free TCP port on 127.0.0.1 (bind to 0, read it, close). */
int vs_free_port(void);
/* A fresh directory under $TMPDIR (or /tmp), named like the e2e harness's
 * (e2e_tmp_template), so that e2e_rm_tmp removes it. 0 or -1. */
int vs_mkdtemp(char *out, size_t n);
/* fork+exec argv with stdout/stderr to log (a file path), in its own
 * process group; returns the pid or -1. */
pid_t vs_spawn(char *const argv[], const char *log);
/* Wait until host:port accepts a TCP connection, up to timeout_ms, while
 * pid is alive. 0 or -1. */
int vs_wait_port(const char *host, int port, pid_t pid, int timeout_ms);
/* SIGTERM, wait up to timeout_ms, then SIGKILL; reaps. */
void vs_kill(pid_t pid, int timeout_ms);
/* Formats into x->err and returns VS_FAIL. */
int vs_fail(vs_ctx *x, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* The path of a program: $ENV if set (a path, which must be executable),
 * else the first of the candidates that is executable, else NULL. */
const char *vs_program(const char *env, const char *const *candidates);

#endif
