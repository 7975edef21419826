/*
 * e2e/bench/vs/krappy.c - the krappyd backend of bench_vs, through
 * libkrappy's public API only (krappy/client.h), as a user would write it.
 *
 * Events are published with a text key and the 100-byte value as a CBOR
 * byte string (102 bytes on the wire); readers check the string header and
 * parse the value inside.
 */
#include <pthread.h>
#include <poll.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "../../harness.h"
#include "krappy/client.h"
#include "vs.h"

typedef struct kpriv {
    e2e_server srv; /* started and stopped by the e2e harness */
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
    if (krappy_connect(c, k->srv.host, k->srv.port) != KRAPPY_OK ||
        krappy_hello(c, NULL) != KRAPPY_OK) {
        vs_fail(x, "cannot connect to krappyd on %s:%s: %s", k->srv.host, k->srv.port,
                krappy_client_errmsg(c));
        krappy_client_free(c);
        return NULL;
    }
    return c;
}

static int k_start(vs_ctx *x)
{
    static const char *const where[] = {"bin/krappyd", NULL};
    if (vs_program("KRAPPYD", where) == NULL) {
        snprintf(x->note, sizeof x->note, "no krappyd: run `make` first, or set $KRAPPYD");
        return VS_SKIP;
    }
    kpriv *k = calloc(1, sizeof *k);
    if (k == NULL)
        return vs_fail(x, "out of memory");
    x->srv->priv = k;
    /* The harness's server, quieter and without the admin port. */
    static const char *const extra[] = {"--http",       "off",  "--log-level", "warn",
                                        "--log-format", "text", NULL};
    /* Generous: $KRAPPYD may be krappyd under valgrind (profiling). */
    e2e_set_start_timeout(120000);
    if (e2e_start(&k->srv, extra) < 0)
        return vs_fail(x, "krappyd did not start listening; see %s", k->srv.log_path);
    x->srv->pid = k->srv.pid;
    snprintf(x->srv->host, sizeof x->srv->host, "%s", k->srv.host);
    x->srv->port = atoi(k->srv.port);
    if ((k->c = dial(x)) == NULL)
        return VS_FAIL;
    if ((k->b = krappy_batch_new()) == NULL)
        return vs_fail(x, "out of memory");
    return VS_OK;
}

static void k_stop(vs_ctx *x)
{
    kpriv *k = priv(x);
    if (k == NULL)
        return;
    krappy_client_free(k->c);
    krappy_batch_free(k->b);
    (void)e2e_stop(&k->srv, 20000); /* removes its directory too */
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
    int rc;
    char err[256];
    /* With $BENCH_VS_SPLIT set, each event's latency is split in two and
     * both halves printed to stderr: due -> written by the producer (a late
     * producer: the client starved of CPU) and written -> received (the
     * server, the network and the consumer). NULL otherwise. */
    _Atomic uint64_t *sent; /* when event n was written (ns) */
    uint64_t *s2r;          /* written -> received, per event */
    uint64_t *due2s;        /* due -> written, per event */
    long fetches;
} lat_run;

static int u64cmp(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x < y ? -1 : x > y;
}

/* Percentiles of v[0..n) (sorted here) to stderr, in microseconds. */
static void split_print(const char *what, uint64_t *v, long n)
{
    if (n <= 0)
        return;
    qsort(v, (size_t)n, sizeof *v, u64cmp);
    fprintf(stderr, "split %-10s n=%ld p50=%.1f p90=%.1f p99=%.1f p999=%.1f max=%.1f us\n", what, n,
            v[n / 2] / 1e3, v[(long)(n * 0.9)] / 1e3, v[(long)(n * 0.99)] / 1e3,
            v[(long)(n * 0.999)] / 1e3, v[n - 1] / 1e3);
}

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
            if (L->sent != NULL) {
                uint64_t st = atomic_load_explicit(&L->sent[L->received], memory_order_relaxed);
                L->s2r[L->received] = st && now > st ? now - st : 0;
                L->due2s[L->received] = st > ts ? st - ts : 0;
            }
            L->received++;
        }
        off = ev->next;
        L->fetches++;
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

static int k_latency(vs_ctx *x, vs_meter *m, long *done)
{
    kpriv *k = priv(x);
    const vs_params *p = x->p;
    if (krappy_register_producer(k->c, "bench-lat", "lat", NULL) != KRAPPY_OK)
        return vs_fail(x, "PRODUCER_REGISTER: %s", krappy_client_errmsg(k->c));
    lat_run L = {.x = x, .m = m, .rc = VS_OK};
    if ((L.c = dial(x)) == NULL)
        return VS_FAIL;
    pthread_t th;
    if (pthread_create(&th, NULL, lat_consumer, &L) != 0) {
        krappy_client_free(L.c);
        return vs_fail(x, "cannot start the consumer thread");
    }
    long total = (long)(p->rate * p->lat_secs), n = 0;
    int rc = VS_OK;
    if (getenv("BENCH_VS_SPLIT") != NULL) {
        L.sent = calloc((size_t)total + 1, sizeof *L.sent);
        L.s2r = calloc((size_t)total + 1, sizeof *L.s2r);
        L.due2s = calloc((size_t)total + 1, sizeof *L.due2s);
    }
    vs_meter_start(m);
    uint64_t t0 = vs_now_ns();
    while (n < total && rc == VS_OK) {
        uint64_t now = vs_now_ns();
        /* Everything due by now, each event its own PUBLISH. */
        while (n < total) {
            uint64_t due = t0 + (uint64_t)((double)n * 1e9 / p->rate);
            if (due > now)
                break;
            krappy_batch_reset(k->b);
            if ((rc = add_event(x, k->b, (uint64_t)n, p->keys, due)) != VS_OK)
                break;
            if (L.sent != NULL) /* before the send: the reply may beat a stamp after it */
                atomic_store_explicit(&L.sent[n], vs_now_ns(), memory_order_relaxed);
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
    if (L.sent != NULL) {
        fprintf(stderr, "split fetches=%ld events=%ld per-fetch=%.1f\n", L.fetches, L.received,
                L.fetches ? (double)L.received / (double)L.fetches : 0.0);
        long win = (long)(p->rate / 4) > 0 ? (long)(p->rate / 4) : 1;
        fprintf(stderr, "split max written->received per 250 ms (ms):");
        for (long w = 0; w < L.received; w += win) {
            uint64_t mx = 0;
            for (long i = w; i < w + win && i < L.received; i++)
                mx = L.s2r[i] > mx ? L.s2r[i] : mx;
            fprintf(stderr, " %.1f", mx / 1e6);
        }
        fprintf(stderr, "\n");
        split_print("due->written", L.due2s, L.received);
        split_print("written->received", L.s2r, L.received);
        free((void *)L.sent);
        free(L.s2r);
        free(L.due2s);
    }
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
