/*
 * e2e/bench/vs/krappy.c - the krappyd backends of bench_vs, through
 * libkrappy's public API only (krappy/client.h), as a user would write it:
 * one krappyd (vs_krappy), and three as one Raft cluster (vs_krappy3; the
 * e2e harness's e2e_cluster), where every connection goes to the leader
 * (krappy_connect_leader), reads included.
 *
 * Events are published with a text key and the 100-byte value as a CBOR
 * byte string (102 bytes on the wire); readers check the string header and
 * parse the value inside.
 */
#include <pthread.h>
#include <poll.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "../../cluster.h"
#include "../../harness.h"
#include "krappy/client.h"
#include "vs.h"

typedef struct kpriv {
    e2e_server srv;  /* started and stopped by the e2e harness */
    e2e_cluster *cl; /* vs_krappy3: the cluster instead (srv unused) */
    krappy_client *c;
    krappy_batch *b;
} kpriv;

static kpriv *priv(vs_ctx *x)
{
    return x->srv->priv;
}

/* A new connection to the server, HELLO done; NULL with x->err set. */
static krappy_client *dial(vs_ctx *x)
{
    kpriv *k = priv(x);
    krappy_client *c = krappy_client_new(NULL);
    if (c == NULL) {
        vs_fail(x, "out of memory");
        return NULL;
    }
    if (k->cl != NULL ? krappy_connect_leader(c, k->cl->addrs, NULL) != KRAPPY_OK
                      : krappy_connect(c, k->srv.host, k->srv.port) != KRAPPY_OK ||
                            krappy_hello(c, NULL) != KRAPPY_OK) {
        vs_fail(x, "cannot connect to krappyd on %s: %s",
                k->cl != NULL ? k->cl->addrs : k->srv.port, krappy_client_errmsg(c));
        krappy_client_free(c);
        return NULL;
    }
    return c;
}

/* The harness's server, quieter and without the admin port (every node of
 * a cluster too). */
static const char *const quiet[] = {"--http",       "off",  "--log-level", "warn",
                                    "--log-format", "text", NULL};

/* The backend's state for a start (with a cluster when asked), or VS_SKIP
 * without krappyd, VS_FAIL out of memory. */
static int k_begin(vs_ctx *x, bool cluster, kpriv **out)
{
    static const char *const where[] = {"bin/krappyd", NULL};
    if (vs_program("KRAPPYD", where) == NULL) {
        snprintf(x->note, sizeof x->note, "no krappyd: run `make` first, or set $KRAPPYD");
        return VS_SKIP;
    }
    kpriv *k = calloc(1, sizeof *k);
    if (k == NULL || (cluster && (k->cl = calloc(1, sizeof *k->cl)) == NULL)) {
        free(k);
        return vs_fail(x, "out of memory");
    }
    x->srv->priv = *out = k;
    return VS_OK;
}

/* The server s (the leader of a cluster) as the driver's, and a
 * connection to it. */
static int k_connect(vs_ctx *x, const e2e_server *s)
{
    kpriv *k = priv(x);
    x->srv->pid = s->pid; /* the CPU columns: the leader's in a cluster */
    snprintf(x->srv->host, sizeof x->srv->host, "%s", s->host);
    x->srv->port = atoi(s->port);
    if ((k->c = dial(x)) == NULL)
        return VS_FAIL;
    if ((k->b = krappy_batch_new()) == NULL)
        return vs_fail(x, "out of memory");
    return VS_OK;
}

static int k_start(vs_ctx *x)
{
    kpriv *k;
    int rc = k_begin(x, false, &k);
    if (rc != VS_OK)
        return rc;
    /* Generous: $KRAPPYD may be krappyd under valgrind (profiling). */
    e2e_set_start_timeout(120000);
    if (e2e_start(&k->srv, quiet) < 0)
        return vs_fail(x, "krappyd did not start listening; see %s", k->srv.log_path);
    return k_connect(x, &k->srv);
}

/* Three nodes on 127.0.0.1, a leader agreed, a connection to it. */
static int k3_start(vs_ctx *x)
{
    kpriv *k;
    int rc = k_begin(x, true, &k);
    if (rc != VS_OK)
        return rc;
    if (e2e_cluster_start(k->cl, 3, false, quiet) < 0)
        return vs_fail(x, "three krappyd did not form a cluster (see the e2e lines above)");
    int leader = e2e_cluster_leader(k->cl, 10000);
    if (leader < 0)
        return vs_fail(x, "the cluster names no leader");
    return k_connect(x, &k->cl->node[leader]);
}

static void k_stop(vs_ctx *x)
{
    kpriv *k = priv(x);
    if (k == NULL)
        return;
    krappy_client_free(k->c);
    krappy_batch_free(k->b);
    if (k->cl != NULL)
        (void)e2e_cluster_stop(k->cl); /* removes their directories too */
    else
        (void)e2e_stop(&k->srv, 20000); /* removes its directory too */
    free(k->cl);
    free(k);
    x->srv->priv = NULL;
    x->srv->pid = 0;
}

/* Event n (key drawn from `keys`) added to the batch. */
static int add_event(vs_ctx *x, krappy_batch *b, uint64_t n, long keys, uint64_t ts)
{
    char key[VS_KEY_LEN + 1], val[VS_VALUE_LEN + 1];
    vs_key(key, vs_key_of(keys, n));
    vs_value(val, n, ts);
    if (krappy_batch_add_bytes(b, KRAPPY_KEY_TEXT, key, VS_KEY_LEN, val, VS_VALUE_LEN) != KRAPPY_OK)
        return vs_fail(x, "building a batch: %s", krappy_batch_errmsg(b));
    return VS_OK;
}

/* A value as delivered: the CBOR byte string of 100 bytes. */
static int check_value(const krappy_event *e, uint64_t *n, uint64_t *ts)
{
    if (e->value_len != VS_VALUE_LEN + 2 || e->value[0] != 0x58 || e->value[1] != VS_VALUE_LEN)
        return -1;
    return vs_value_parse(e->value + 2, VS_VALUE_LEN, n, ts);
}

/* `events` events over `keys` keys into `topic`, p->window batches in
 * flight, each acknowledged as `ack`. */
static int publish_run(vs_ctx *x, vs_meter *m, const char *topic, long events, long keys,
                       krappy_ack ack, long *done)
{
    kpriv *k = priv(x);
    const vs_params *p = x->p;
    if (krappy_register_producer(k->c, topic, "bench", NULL) != KRAPPY_OK)
        return vs_fail(x, "PRODUCER_REGISTER %s: %s", topic, krappy_client_errmsg(k->c));
    long batches = events / p->batch, sent = 0, got = 0;
    vs_meter_start(m);
    while (got < batches) {
        while (sent < batches && sent - got < p->window) {
            krappy_batch_reset(k->b);
            for (int i = 0; i < p->batch; i++)
                if (add_event(x, k->b, (uint64_t)(sent * p->batch + i), keys, 0) != VS_OK)
                    return VS_FAIL;
            if (krappy_publish_send(k->c, k->b, ack, NULL) != KRAPPY_OK)
                return vs_fail(x, "PUBLISH: %s", krappy_client_errmsg(k->c));
            sent++;
        }
        krappy_publish_result r;
        if (krappy_publish_recv(k->c, &r) != KRAPPY_OK)
            return vs_fail(x, "PUBLISH: %s", krappy_client_errmsg(k->c));
        if (r.count != (uint64_t)p->batch || r.first != (uint64_t)(got * p->batch))
            return vs_fail(x, "PUBLISH %ld stored %llu events at %llu, not %d at %ld", got,
                           (unsigned long long)r.count, (unsigned long long)r.first, p->batch,
                           got * p->batch);
        got++;
    }
    vs_meter_stop(m);
    *done = batches * p->batch;
    return VS_OK;
}

static int k_ingest(vs_ctx *x, vs_meter *m, bool sync, long *done)
{
    return publish_run(x, m, sync ? "bench-sync" : "bench", x->p->events, x->p->keys,
                       sync ? KRAPPY_ACK_SYNC : KRAPPY_ACK_WRITE, done);
}

static int k_load(vs_ctx *x, vs_meter *m, long *done)
{
    return publish_run(x, m, "bench-rss", x->p->rss_events, x->p->rss_keys, KRAPPY_ACK_WRITE, done);
}

/* Every event of ev is the next one expected. */
static int check_events(vs_ctx *x, const krappy_events *ev, uint64_t *expect, const char *what)
{
    for (size_t i = 0; i < ev->count; i++) {
        uint64_t n;
        if (ev->events[i].offset != *expect || check_value(&ev->events[i], &n, NULL) < 0 ||
            n != *expect)
            return vs_fail(x, "%s: event at offset %llu is not event %llu", what,
                           (unsigned long long)ev->events[i].offset, (unsigned long long)*expect);
        (*expect)++;
    }
    return VS_OK;
}

static int k_consume(vs_ctx *x, vs_meter *m, long *done)
{
    kpriv *k = priv(x);
    const vs_params *p = x->p;
    uint64_t off = 0, expect = 0;
    vs_meter_start(m);
    while (expect < (uint64_t)p->events) {
        krappy_events *ev;
        if (krappy_fetch(k->c, "bench", off, (uint64_t)p->batch, 0, 0, &ev) != KRAPPY_OK)
            return vs_fail(x, "FETCH from %llu: %s", (unsigned long long)off,
                           krappy_client_errmsg(k->c));
        int rc = ev->count == 0 ? vs_fail(x, "FETCH from %llu: no events, %llu expected",
                                          (unsigned long long)off,
                                          (unsigned long long)(p->events - (long)expect))
                                : check_events(x, ev, &expect, "FETCH");
        off = ev->next;
        krappy_events_free(ev);
        if (rc != VS_OK)
            return rc;
    }
    vs_meter_stop(m);
    *done = (long)expect;
    return VS_OK;
}

static int k_group(vs_ctx *x, vs_meter *m, long *done)
{
    kpriv *k = priv(x);
    const vs_params *p = x->p;
    krappy_consumer_opts o = {.start = KRAPPY_START_EARLIEST, .member = "m"};
    if (krappy_register_consumer(k->c, "bench", "g", &o, NULL) != KRAPPY_OK)
        return vs_fail(x, "CONSUMER_REGISTER: %s", krappy_client_errmsg(k->c));
    uint64_t expect = 0;
    vs_meter_start(m);
    /* One POLL ahead: the ACK of batch n and the POLL of batch n+1 travel
     * together. */
    if (krappy_poll_send(k->c, (uint64_t)p->batch, 1000, 0) != KRAPPY_OK)
        return vs_fail(x, "POLL: %s", krappy_client_errmsg(k->c));
    while (expect < (uint64_t)p->events) {
        krappy_events *ev;
        if (krappy_poll_recv(k->c, &ev) != KRAPPY_OK)
            return vs_fail(x, "POLL: %s", krappy_client_errmsg(k->c));
        int rc = ev->count == 0
                     ? vs_fail(x, "POLL: no events after %llu", (unsigned long long)expect)
                     : check_events(x, ev, &expect, "POLL");
        krappy_events_free(ev);
        if (rc != VS_OK)
            return rc;
        if (krappy_ack_upto_send(k->c, expect) != KRAPPY_OK ||
            (expect < (uint64_t)p->events &&
             krappy_poll_send(k->c, (uint64_t)p->batch, 1000, 0) != KRAPPY_OK))
            return vs_fail(x, "ACK/POLL: %s", krappy_client_errmsg(k->c));
        uint64_t cursor;
        if (krappy_ack_recv(k->c, &cursor, NULL) != KRAPPY_OK)
            return vs_fail(x, "ACK: %s", krappy_client_errmsg(k->c));
        if (cursor != expect)
            return vs_fail(x, "ACK upto %llu left the cursor at %llu", (unsigned long long)expect,
                           (unsigned long long)cursor);
    }
    vs_meter_stop(m);
    *done = (long)expect;
    return VS_OK;
}

static void read_key(const vs_params *p, long i, char *key)
{
    vs_key(key, vs_read_key(p, i));
}

static int check_got(vs_ctx *x, krappy_value *v, const char *key)
{
    krappy_event e = {.value = v->value, .value_len = v->value_len};
    int rc = VS_OK;
    if (v->key_len != VS_KEY_LEN || memcmp(v->key, key, VS_KEY_LEN) != 0 ||
        check_value(&e, NULL, NULL) < 0)
        rc = vs_fail(x, "GET %s: the value is not the one written", key);
    krappy_value_free(v);
    return rc;
}

static int k_get_one(vs_ctx *x, vs_meter *m, long *done)
{
    kpriv *k = priv(x);
    vs_meter_start(m);
    for (long i = 0; i < x->p->gets; i++) {
        char key[VS_KEY_LEN + 1];
        krappy_value *v;
        read_key(x->p, i, key);
        uint64_t t = vs_now_ns();
        if (krappy_get(k->c, "bench", key, VS_KEY_LEN, &v) != KRAPPY_OK)
            return vs_fail(x, "GET %s: %s", key, krappy_client_errmsg(k->c));
        vs_lat_add(m, vs_now_ns() - t);
        if (check_got(x, v, key) != VS_OK)
            return VS_FAIL;
    }
    vs_meter_stop(m);
    *done = x->p->gets;
    return VS_OK;
}

static int k_get_piped(vs_ctx *x, vs_meter *m, long *done)
{
    kpriv *k = priv(x);
    const vs_params *p = x->p;
    long sent = 0, got = 0;
    vs_meter_start(m);
    while (got < p->gets_piped) {
        while (sent < p->gets_piped && sent - got < p->get_window) {
            char key[VS_KEY_LEN + 1];
            read_key(p, sent, key);
            if (krappy_get_send(k->c, "bench", key, VS_KEY_LEN) != KRAPPY_OK)
                return vs_fail(x, "GET: %s", krappy_client_errmsg(k->c));
            sent++;
        }
        char key[VS_KEY_LEN + 1];
        krappy_value *v;
        read_key(p, got, key);
        if (krappy_get_recv(k->c, &v) != KRAPPY_OK)
            return vs_fail(x, "GET %s: %s", key, krappy_client_errmsg(k->c));
        if (check_got(x, v, key) != VS_OK)
            return VS_FAIL;
        got++;
    }
    vs_meter_stop(m);
    *done = got;
    return VS_OK;
}

/* ---- produce -> consume latency ---- */

typedef struct lat_run {
    vs_ctx *x;
    vs_meter *m;
    krappy_client *c;
    _Atomic long produced; /* final count, valid once `finished` */
    atomic_bool finished;
    long received;
    FILE *trace; /* $VS_LAT_TRACE: "n due arrived" per event (CLOCK_MONOTONIC ns) */
    int rc;
    char err[256];
} lat_run;

/* The consumer: long-poll FETCH from offset 0 until every event produced
 * has arrived; one latency sample per event. */
static void *lat_consumer(void *arg)
{
    lat_run *L = arg;
    uint64_t off = 0;
    uint64_t give_up = 0;
    for (;;) {
        if (atomic_load(&L->finished)) {
            if (L->received >= atomic_load(&L->produced))
                break;
            if (give_up == 0)
                give_up = vs_now_ns() + 10000000000ull;
            else if (vs_now_ns() > give_up) {
                snprintf(L->err, sizeof L->err, "%ld of %ld events arrived within 10 s",
                         L->received, atomic_load(&L->produced));
                L->rc = VS_FAIL;
                return NULL;
            }
        }
        krappy_events *ev;
        if (krappy_fetch(L->c, "bench-lat", off, (uint64_t)L->x->p->batch, 0, 100, &ev) !=
            KRAPPY_OK) {
            snprintf(L->err, sizeof L->err, "FETCH: %s", krappy_client_errmsg(L->c));
            L->rc = VS_FAIL;
            return NULL;
        }
        uint64_t now = vs_now_ns();
        for (size_t i = 0; i < ev->count; i++) {
            uint64_t n, ts;
            if (check_value(&ev->events[i], &n, &ts) < 0 || n != (uint64_t)L->received) {
                snprintf(L->err, sizeof L->err, "event %ld arrived out of order or damaged",
                         L->received);
                L->rc = VS_FAIL;
                krappy_events_free(ev);
                return NULL;
            }
            vs_lat_add(L->m, now > ts ? now - ts : 0);
            if (L->trace != NULL)
                fprintf(L->trace, "%ld %llu %llu\n", L->received, (unsigned long long)ts,
                        (unsigned long long)now);
            L->received++;
        }
        off = ev->next;
        krappy_events_free(ev);
    }
    return NULL;
}

/* Receive the acknowledgements that have arrived, without waiting; all of
 * them when `all`. */
static int drain_acks(vs_ctx *x, krappy_client *c, bool all)
{
    struct pollfd pf = {.fd = krappy_client_fd(c), .events = POLLIN};
    while (krappy_in_flight(c) > 0 && (all || krappy_in_flight(c) > 10000 || poll(&pf, 1, 0) > 0)) {
        if (krappy_publish_recv(c, NULL) != KRAPPY_OK)
            return vs_fail(x, "PUBLISH: %s", krappy_client_errmsg(c));
    }
    return VS_OK;
}

#define LAT_BURST 1024

static int k_latency(vs_ctx *x, vs_meter *m, long *done)
{
    kpriv *k = priv(x);
    const vs_params *p = x->p;
    if (krappy_register_producer(k->c, "bench-lat", "lat", NULL) != KRAPPY_OK)
        return vs_fail(x, "PRODUCER_REGISTER: %s", krappy_client_errmsg(k->c));
    lat_run L = {.x = x, .m = m, .rc = VS_OK};
    if ((L.c = dial(x)) == NULL)
        return VS_FAIL;
    const char *trace = getenv("VS_LAT_TRACE");
    if (trace != NULL && trace[0] != '\0' && (L.trace = fopen(trace, "w")) == NULL)
        fprintf(stderr, "bench_vs: cannot write %s\n", trace);
    pthread_t th;
    if (pthread_create(&th, NULL, lat_consumer, &L) != 0) {
        krappy_client_free(L.c);
        if (L.trace != NULL)
            fclose(L.trace);
        return vs_fail(x, "cannot start the consumer thread");
    }
    long total = (long)(p->rate * p->lat_secs), n = 0;
    int rc = VS_OK;
    vs_meter_start(m);
    uint64_t t0 = vs_now_ns();
    while (n < total && rc == VS_OK) {
        uint64_t now = vs_now_ns();
        /* Everything due by now, each event its own PUBLISH - at most
         * LAT_BURST before the acknowledgements are read: a producer that
         * fell behind (a starved thread) would otherwise send seconds of
         * events unread, and the server stops reading a client whose
         * replies pile up (its memory budget), failing the run. */
        for (long burst = 0; n < total && burst < LAT_BURST; burst++) {
            uint64_t due = t0 + (uint64_t)((double)n * 1e9 / p->rate);
            if (due > now)
                break;
            krappy_batch_reset(k->b);
            if ((rc = add_event(x, k->b, (uint64_t)n, p->keys, due)) != VS_OK)
                break;
            if (krappy_publish_send(k->c, k->b, KRAPPY_ACK_WRITE, NULL) != KRAPPY_OK) {
                rc = vs_fail(x, "PUBLISH: %s", krappy_client_errmsg(k->c));
                break;
            }
            n++;
        }
        /* Requests queued behind unanswered ones wait for a recv or a
         * flush (libkrappy coalesces pipelines): send them now. */
        if (rc == VS_OK && krappy_flush(k->c) != KRAPPY_OK)
            rc = vs_fail(x, "PUBLISH: %s", krappy_client_errmsg(k->c));
        if (rc == VS_OK)
            rc = drain_acks(x, k->c, false);
        if (rc == VS_OK && n < total)
            vs_sleep_until_tick(t0, t0 + (uint64_t)((double)n * 1e9 / p->rate));
    }
    if (rc == VS_OK)
        rc = drain_acks(x, k->c, true);
    atomic_store(&L.produced, n);
    atomic_store(&L.finished, true);
    pthread_join(th, NULL);
    vs_meter_stop(m);
    krappy_client_free(L.c);
    if (L.trace != NULL)
        fclose(L.trace);
    if (rc != VS_OK)
        return rc;
    if (L.rc != VS_OK)
        return vs_fail(x, "%s", L.err);
    *done = L.received;
    return VS_OK;
}

/* ---- single-event publishes and PING ---- */

/* Checks one single-event acknowledgement: event n at offset n. */
static int check_one(vs_ctx *x, const krappy_publish_result *r, long n)
{
    if (r->count != 1 || r->first != (uint64_t)n)
        return vs_fail(x, "PUBLISH of event %ld stored %llu events at %llu", n,
                       (unsigned long long)r->count, (unsigned long long)r->first);
    return VS_OK;
}

/* 8a. Every event its own PUBLISH (ack "write"), p->pub_window in flight:
 * the window is topped up after each reply, libkrappy coalescing the sends
 * of a top-up into one write. */
static int k_publish_piped(vs_ctx *x, vs_meter *m, long *done)
{
    kpriv *k = priv(x);
    const vs_params *p = x->p;
    if (krappy_register_producer(k->c, "bench-one", "one", NULL) != KRAPPY_OK)
        return vs_fail(x, "PRODUCER_REGISTER: %s", krappy_client_errmsg(k->c));
    long sent = 0, got = 0;
    vs_meter_start(m);
    while (got < p->pub_events) {
        while (sent < p->pub_events && sent - got < p->pub_window) {
            krappy_batch_reset(k->b);
            if (add_event(x, k->b, (uint64_t)sent, p->keys, 0) != VS_OK)
                return VS_FAIL;
            if (krappy_publish_send(k->c, k->b, KRAPPY_ACK_WRITE, NULL) != KRAPPY_OK)
                return vs_fail(x, "PUBLISH: %s", krappy_client_errmsg(k->c));
            sent++;
        }
        krappy_publish_result r;
        if (krappy_publish_recv(k->c, &r) != KRAPPY_OK)
            return vs_fail(x, "PUBLISH: %s", krappy_client_errmsg(k->c));
        if (check_one(x, &r, got) != VS_OK)
            return VS_FAIL;
        got++;
    }
    vs_meter_stop(m);
    *done = got;
    return VS_OK;
}

/* 8b. One single-event PUBLISH (ack "write") at a time. */
static int k_publish_one(vs_ctx *x, vs_meter *m, long *done)
{
    kpriv *k = priv(x);
    const vs_params *p = x->p;
    if (krappy_register_producer(k->c, "bench-one1", "one1", NULL) != KRAPPY_OK)
        return vs_fail(x, "PRODUCER_REGISTER: %s", krappy_client_errmsg(k->c));
    vs_meter_start(m);
    for (long n = 0; n < p->pubs_one; n++) {
        krappy_batch_reset(k->b);
        if (add_event(x, k->b, (uint64_t)n, p->keys, 0) != VS_OK)
            return VS_FAIL;
        krappy_publish_result r;
        uint64_t t = vs_now_ns();
        if (krappy_publish(k->c, k->b, KRAPPY_ACK_WRITE, &r) != KRAPPY_OK)
            return vs_fail(x, "PUBLISH: %s", krappy_client_errmsg(k->c));
        vs_lat_add(m, vs_now_ns() - t);
        if (check_one(x, &r, n) != VS_OK)
            return VS_FAIL;
    }
    vs_meter_stop(m);
    *done = p->pubs_one;
    return VS_OK;
}

/* 8c. PING, one at a time. */
static int k_ping(vs_ctx *x, vs_meter *m, long *done)
{
    kpriv *k = priv(x);
    vs_meter_start(m);
    for (long i = 0; i < x->p->pings; i++) {
        uint64_t t = vs_now_ns();
        if (krappy_ping(k->c) != KRAPPY_OK)
            return vs_fail(x, "PING: %s", krappy_client_errmsg(k->c));
        vs_lat_add(m, vs_now_ns() - t);
    }
    vs_meter_stop(m);
    *done = x->p->pings;
    return VS_OK;
}

/* ---- C3: recovering from a killed leader ---- */

/* One event into "bench-recover" through a fresh connection to whichever
 * node leads now. @return VS_OK once acknowledged, else VS_FAIL (x->err). */
static int publish_after_kill(vs_ctx *x, krappy_client *c, uint64_t n)
{
    kpriv *k = priv(x);
    krappy_close(c);
    if (krappy_connect_leader(c, k->cl->addrs, NULL) != KRAPPY_OK ||
        krappy_register_producer(c, "bench-recover", "recover", NULL) != KRAPPY_OK)
        return vs_fail(x, "%s", krappy_client_errmsg(c));
    krappy_batch_reset(k->b);
    if (add_event(x, k->b, n, x->p->keys, 0) != VS_OK)
        return VS_FAIL;
    if (krappy_publish(c, k->b, KRAPPY_ACK_WRITE, NULL) != KRAPPY_OK)
        return vs_fail(x, "PUBLISH: %s", krappy_client_errmsg(c));
    return VS_OK;
}

/* SIGKILL the leader; time until a publish through the survivors is
 * acknowledged; then every event ingest acknowledged must be in "bench" on
 * the new leader. */
static int k_recover(vs_ctx *x, vs_meter *m, long *done)
{
    kpriv *k = priv(x);
    int old = e2e_cluster_leader(k->cl, 10000);
    if (old < 0)
        return vs_fail(x, "no leader before the kill");
    krappy_client *c =
        krappy_client_new(&(krappy_opts){.timeout_ms = 2000, .connect_timeout_ms = 500});
    if (c == NULL)
        return vs_fail(x, "out of memory");
    /* The driver's connection points at the node about to die. */
    krappy_close(k->c);
    vs_meter_start(m);
    uint64_t t0 = vs_now_ns(), end = t0 + 20000000000ull;
    kill(k->cl->node[old].pid, SIGKILL);
    int rc;
    /* Retried every 5 ms: a tight loop would take the survivors' CPU. */
    while ((rc = publish_after_kill(x, c, 0)) != VS_OK && vs_now_ns() < end)
        nanosleep(&(struct timespec){0, 5000000L}, NULL);
    vs_lat_add(m, vs_now_ns() - t0);
    vs_meter_stop(m);
    /* Reaped, quietly (e2e_wait_exit would print its status, 137, as a
     * failure): pid 0, and the cluster's stop skips it. */
    e2e_kill9(&k->cl->node[old]);
    if (rc != VS_OK) {
        krappy_client_free(c);
        return vs_fail(x, "no write acknowledged within 20 s of killing the leader: %s", x->err);
    }
    /* Every event ingest had acknowledged, from the new leader. */
    uint64_t off = 0, expect = 0;
    while (rc == VS_OK && expect < (uint64_t)x->p->events) {
        krappy_events *ev;
        if (krappy_fetch(c, "bench", off, (uint64_t)x->p->batch, 0, 0, &ev) != KRAPPY_OK) {
            rc = vs_fail(x, "FETCH after the failover: %s", krappy_client_errmsg(c));
            break;
        }
        rc = ev->count == 0 ? vs_fail(x, "after the failover \"bench\" ends at %llu of %ld events",
                                      (unsigned long long)expect, x->p->events)
                            : check_events(x, ev, &expect, "FETCH after the failover");
        off = ev->next;
        krappy_events_free(ev);
    }
    krappy_client_free(c);
    *done = 1;
    return rc;
}

const vs_system vs_krappy = {
    .name = "krappyd",
    .id = "krappy",
    .start = k_start,
    .stop = k_stop,
    .ingest = k_ingest,
    .consume = k_consume,
    .group = k_group,
    .get_one = k_get_one,
    .get_piped = k_get_piped,
    .latency = k_latency,
    .load = k_load,
    .publish_piped = k_publish_piped,
    .publish_one = k_publish_one,
    .ping = k_ping,
};

const vs_system vs_krappy3 = {
    .name = "krappyd, 3 nodes",
    .id = "krappy3",
    .start = k3_start,
    .stop = k_stop,
    .ingest = k_ingest,
    .latency = k_latency,
    .recover = k_recover,
};
