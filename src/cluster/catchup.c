/*
 * cluster/catchup.c - events a node lacks, fetched from the leader (see
 * catchup.h).
 */
#include "cluster/catchup.h"

#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "krappy/client.h"
#include "proto/msg.h"
#include "util/buf.h"
#include "util/hostport.h"
#include "util/log.h"

struct kr_catchup {
    struct event *ev;
    char *nodes, *token;
    unsigned n_nodes; /* addresses in nodes */
    kr_catchup_range *ranges;
    size_t n;
    kr_catchup_chunk_fn chunk;
    kr_catchup_done_fn done;
    void *arg;
    pthread_t th;

    /* Shared, under mu. */
    pthread_mutex_t mu;
    pthread_cond_t cond;
    bool stop;
    bool finished; /* the thread is done (the loop calls done once) */
    bool have;     /* a chunk waits for the loop */
    size_t cur;    /* the chunk's range */
    kr_catchup_kind kind;
    uint64_t first;   /* the chunk's first offset */
    uint64_t count;   /* the chunk's events */
    kr_buf payload;   /* the chunk as a PUBLISH payload */
    bool taken;       /* the loop took the last chunk (or skip) */
    bool done_called; /* loop only */
};

static bool stopping(kr_catchup *cu)
{
    pthread_mutex_lock(&cu->mu);
    bool s = cu->stop;
    pthread_mutex_unlock(&cu->mu);
    return s;
}

static void pause_ms(unsigned ms)
{
    struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

/* Hand the events in cu->payload (or, with count 0, a gap or a skip to
 * `first`; or a seed's page) to the loop and wait until it looked at them. @return 0 taken,
 * -1 not taken (try again later), -2 when stopped. */
static int hand_over(kr_catchup *cu, size_t cur, kr_catchup_kind kind, uint64_t first,
                     uint64_t count)
{
    pthread_mutex_lock(&cu->mu);
    if (count == 0 && kind != KR_CATCHUP_SEED && kind != KR_CATCHUP_SEED_LAST)
        kr_buf_reset(&cu->payload);
    cu->have = true;
    cu->cur = cur;
    cu->kind = kind;
    cu->first = first;
    cu->count = count;
    pthread_mutex_unlock(&cu->mu);
    event_active(cu->ev, EV_READ, 0);
    pthread_mutex_lock(&cu->mu);
    while (cu->have && !cu->stop)
        pthread_cond_wait(&cu->cond, &cu->mu);
    int rc = cu->stop ? -2 : cu->taken ? 0 : -1;
    pthread_mutex_unlock(&cu->mu);
    return rc;
}

/* Append v as a delivered event to cu->payload. @return false when out
 * of memory. */
static bool encode_value(kr_catchup *cu, const krappy_value *v)
{
    kr_buf key;
    kr_buf_init(&key, SIZE_MAX);
    if (v->key_is_text)
        kr_cbor_put_text(&key, (const char *)v->key, v->key_len);
    else
        kr_cbor_put_bytes(&key, v->key, v->key_len);
    kr_str kr = {key.data, key.len}, vr = {v->value, v->value_len},
           hr = {v->headers, v->headers_len};
    pthread_mutex_lock(&cu->mu);
    kr_enc_event(&cu->payload, v->offset, v->ts, &kr, &vr, v->has_headers ? &hr : NULL);
    bool ok = !key.failed && !cu->payload.failed;
    pthread_mutex_unlock(&cu->mu);
    kr_buf_free(&key);
    return ok;
}

static void reset_payload(kr_catchup *cu)
{
    pthread_mutex_lock(&cu->mu);
    kr_buf_reset(&cu->payload);
    pthread_mutex_unlock(&cu->mu);
}

/*
 * One SCAN page's keys whose latest event lies below `first`, each GET for
 * the whole event (headers too), into cu->payload, *put of them; each
 * KR_CATCHUP_CHUNK_BYTES of them are handed over on their way. A key the
 * GET finds at or past `first`, or not at all, is left to the stream.
 * @return 0; -1 a hand-over not taken; -2 stopped; -3 a GET failed (or
 *         no memory).
 */
static int seed_page(kr_catchup *cu, krappy_client *k, size_t i, uint64_t first,
                     const krappy_event *ent, size_t n, uint64_t *put)
{
    *put = 0;
    reset_payload(cu);
    for (size_t j = 0; j < n; j++) {
        if (ent[j].offset >= first || !ent[j].has_key)
            continue;
        krappy_value *v = NULL;
        krappy_err e = krappy_get(k, cu->ranges[i].topic, ent[j].key, ent[j].key_len, &v);
        if (e == KRAPPY_E_NOT_FOUND)
            continue;
        if (e != KRAPPY_OK || (v->offset < first && !encode_value(cu, v))) {
            krappy_value_free(v);
            return -3;
        }
        *put += v->offset < first;
        krappy_value_free(v);
        if (cu->payload.len >= KR_CATCHUP_CHUNK_BYTES) { /* only this thread changes it */
            int rc = hand_over(cu, i, KR_CATCHUP_SEED, first, *put);
            if (rc < 0)
                return rc;
            *put = 0;
            reset_payload(cu);
        }
    }
    return 0;
}

/*
 * The view's latest values below a skip's `first` (range i), from the node
 * k is connected to, a SCAN page at a time, each handed to the loop.
 * @return 0, -1 (try again: the seed starts over), -2 when stopped.
 */
static int seed_view(kr_catchup *cu, krappy_client *k, size_t i, uint64_t first)
{
    const char *topic = cu->ranges[i].topic;
    const char *pause = getenv("KRAPPY_TEST_CATCHUP_SEED_PAUSE_MS");
    if (pause != NULL)
        pause_ms((unsigned)strtoul(pause, NULL, 10)); /* e2e: a kill -9 right after a skip */
    krappy_scan *sc = NULL;
    krappy_err e = krappy_scan_begin(k, topic, NULL, 0, NULL, 0, KR_CATCHUP_SEED_PAGE, &sc);
    int rc = 0;
    while (e == KRAPPY_OK && rc == 0) {
        size_t n;
        const krappy_event *ent = krappy_scan_entries(sc, &n);
        uint64_t put;
        rc = seed_page(cu, k, i, first, ent, n, &put);
        if (rc == -3) {
            rc = 0;
            e = KRAPPY_E_STORAGE;
            break;
        }
        if (rc < 0)
            break;
        bool more = krappy_scan_more(sc);
        rc = hand_over(cu, i, more ? KR_CATCHUP_SEED : KR_CATCHUP_SEED_LAST, first, put);
        if (rc != 0 || !more)
            break;
        e = krappy_scan_next_page(k, sc);
    }
    krappy_scan_free(sc);
    if (e == KRAPPY_E_NO_SUCH_TOPIC && rc == 0) { /* deleted there: nothing below `first` */
        reset_payload(cu);
        rc = hand_over(cu, i, KR_CATCHUP_SEED_LAST, first, 0);
    }
    if (e != KRAPPY_OK && e != KRAPPY_E_NO_SUCH_TOPIC) {
        kr_log(KR_LOG_WARN,
               "catching up: the latest values below the skip could not be read; trying again "
               "on the next node",
               KR_LOG_STR("topic", topic), KR_LOG_U64("first", first),
               KR_LOG_STR("reason", krappy_client_errmsg(k)));
        return -1;
    }
    if (rc == 0)
        cu->ranges[i].seed_to = 0;
    return rc;
}

/*
 * The node asked answered OFFSET_OUT_OF_RANGE: when its first retained
 * offset lies past *at, hand the loop a skip to it (no further than the
 * range's end) and move *at there; the view's seed is due.
 * @return 0 skipped, -1 not (try again), -2 when stopped.
 */
static int skip_retired(kr_catchup *cu, krappy_client *k, size_t i, uint64_t *at)
{
    uint64_t first, next;
    if (!krappy_client_error_range(k, &first, &next) || first <= *at)
        return -1;
    uint64_t to = first < cu->ranges[i].to ? first : cu->ranges[i].to;
    kr_log(KR_LOG_WARN, "catching up: the events asked for are retired; skipping to the first kept",
           KR_LOG_STR("topic", cu->ranges[i].topic), KR_LOG_U64("offset", *at),
           KR_LOG_U64("first", to));
    int rc = hand_over(cu, i, KR_CATCHUP_RETIRED, to, 0);
    if (rc == 0) {
        *at = to;
        cu->ranges[i].seed_to = to; /* fetch_range seeds the view next */
    }
    return rc;
}

/* Events ev[0 .. n-1] as a PUBLISH payload in cu->payload. @return false
 * when out of memory. */
static bool encode_run(kr_catchup *cu, const krappy_event *ev, size_t n)
{
    kr_event_out_spec *spec = calloc(n, sizeof *spec);
    if (spec == NULL)
        return false;
    for (size_t i = 0; i < n; i++) {
        const krappy_event *e = &ev[i];
        spec[i] = (kr_event_out_spec){.key = e->has_key ? e->key : NULL,
                                      .key_len = e->key_len,
                                      .key_is_text = e->key_is_text,
                                      .value = e->value,
                                      .value_len = e->value_len,
                                      .has_ts = true,
                                      .ts = e->ts,
                                      .headers = e->has_headers ? e->headers : NULL,
                                      .headers_len = e->headers_len};
    }
    pthread_mutex_lock(&cu->mu);
    kr_buf_reset(&cu->payload);
    kr_enc_publish(&cu->payload, (kr_cid){0}, KR_ACK_WRITE, spec, n);
    bool failed = cu->payload.failed;
    pthread_mutex_unlock(&cu->mu);
    free(spec);
    return !failed;
}

/* How many of the n events from offset `at` on lie below `to`, when their
 * offsets ascend (a node's FETCH skips the gaps compaction left, never
 * goes back). @return the count, or -1 when they do not ascend. */
static long events_below(const krappy_events *ev, uint64_t at, uint64_t to)
{
    size_t n = 0;
    for (; n < ev->count && ev->events[n].offset < to; n++)
        if (ev->events[n].offset < at ||
            (n > 0 && ev->events[n].offset <= ev->events[n - 1].offset))
            return -1;
    return (long)n;
}

/* Hand the n events of a FETCH over, one run of consecutive offsets at a
 * time (a run after a gap starts past the stream's next); *at follows.
 * @return 0, -1 (try again), -2 when stopped. */
static int hand_over_runs(kr_catchup *cu, size_t i, const krappy_event *ev, size_t n, uint64_t *at)
{
    for (size_t j = 0; j < n;) {
        size_t m = 1;
        while (j + m < n && ev[j + m].offset == ev[j].offset + m)
            m++;
        if (!encode_run(cu, ev + j, m))
            return -1;
        int rc = hand_over(cu, i, KR_CATCHUP_EVENTS, ev[j].offset, m);
        if (rc < 0)
            return rc;
        *at = ev[j].offset + m;
        j += m;
    }
    return 0;
}

/*
 * A FETCH from *at found no event below the range's end: the node asked
 * removed them all (compaction), or it lacks them (it is behind). Only a
 * node that holds the end - it has events past it (`past`), or a FETCH
 * from the end is no OFFSET_OUT_OF_RANGE - proves the gap: the loop is
 * handed it. @return 0, -1 (try another node), -2 when stopped.
 */
static int gap_to_end(kr_catchup *cu, krappy_client *k, size_t i, bool past, uint64_t *at)
{
    const kr_catchup_range *r = &cu->ranges[i];
    if (!past) {
        krappy_events *probe = NULL;
        krappy_err e = krappy_fetch(k, r->topic, r->to, 1, KR_CATCHUP_CHUNK_BYTES, 0, &probe);
        krappy_events_free(probe);
        if (e != KRAPPY_OK) {
            kr_log(KR_LOG_WARN,
                   "catching up: the node asked holds nothing from the offset on; "
                   "trying again on the next node",
                   KR_LOG_STR("topic", r->topic), KR_LOG_U64("offset", *at),
                   KR_LOG_STR("reason", krappy_client_errmsg(k)));
            return -1;
        }
    }
    int rc = hand_over(cu, i, KR_CATCHUP_GAP, r->to, 0);
    if (rc == 0)
        *at = r->to;
    return rc;
}

/* Fetch range i from offset *at on; *at moves. @return 0 when done, -1 on
 * an error (try again), -2 when stopped. */
static int fetch_range(kr_catchup *cu, krappy_client *k, size_t i, uint64_t *at)
{
    const kr_catchup_range *r = &cu->ranges[i];
    for (;;) {
        if (stopping(cu))
            return -2;
        if (r->seed_to > 0) {
            int rc = seed_view(cu, k, i, r->seed_to);
            if (rc < 0)
                return rc;
        }
        if (*at >= r->to)
            break;
        krappy_events *ev = NULL;
        uint64_t want = r->to - *at < KR_CATCHUP_CHUNK ? r->to - *at : KR_CATCHUP_CHUNK;
        krappy_err e = krappy_fetch(k, r->topic, *at, want, KR_CATCHUP_CHUNK_BYTES, 0, &ev);
        if (e == KRAPPY_E_OFFSET_OUT_OF_RANGE) {
            krappy_events_free(ev);
            ev = NULL;
            int rc = skip_retired(cu, k, i, at);
            if (rc == 0)
                continue;
            if (rc == -2)
                return -2;
        }
        long n = e == KRAPPY_OK ? events_below(ev, *at, r->to) : -1;
        if (n < 0) {
            kr_log(KR_LOG_WARN, "catching up: FETCH failed; trying again on the next node",
                   KR_LOG_STR("topic", r->topic), KR_LOG_U64("offset", *at),
                   KR_LOG_STR("reason", e != KRAPPY_OK ? krappy_client_errmsg(k)
                                                       : "the events' offsets do not ascend"));
            krappy_events_free(ev);
            return -1;
        }
        int rc = n > 0 ? hand_over_runs(cu, i, ev->events, (size_t)n, at)
                       : gap_to_end(cu, k, i, ev->count > 0, at);
        krappy_events_free(ev);
        if (rc < 0)
            return rc;
    }
    return 0;
}

/* Address number `nth` of the list `nodes` into out. @return false when
 * the list has fewer. */
static bool nth_node(const char *nodes, unsigned nth, char *out, size_t len)
{
    const char *p = nodes;
    for (unsigned i = 0; i < nth; i++) {
        p = strchr(p, ',');
        if (p == NULL)
            return false;
        p++;
    }
    size_t n = strcspn(p, ",");
    if (n == 0 || n >= len)
        return false;
    memcpy(out, p, n);
    out[n] = '\0';
    return true;
}

/*
 * Connect to where the events are, for attempt number `attempt`: the
 * leader first, then, after a failed attempt, each node of the list in
 * turn. Every node's streams are the committed log's, byte for byte, so
 * any node that holds the events serves them; and the leader itself may
 * lack them - a node elected while it catches up would otherwise ask
 * itself forever.
 */
static krappy_err connect_source(kr_catchup *cu, krappy_client *k, unsigned attempt)
{
    char addr[KR_HOSTPORT_MAX + 1];
    unsigned turn = attempt % (cu->n_nodes + 1);
    if (turn == 0 || !nth_node(cu->nodes, turn - 1, addr, sizeof addr))
        return krappy_connect_leader(k, cu->nodes, NULL);
    krappy_err e = krappy_connect_addr(k, addr);
    if (e == KRAPPY_OK)
        e = krappy_hello(k, NULL);
    return e;
}

static void *catchup_main(void *arg)
{
    kr_catchup *cu = arg;
    krappy_client *k = krappy_client_new(
        &(krappy_opts){.timeout_ms = 10000, .token = cu->token, .client_name = "krappyd catch-up"});
    size_t i = 0;
    uint64_t at = cu->n > 0 ? cu->ranges[0].from : 0;
    unsigned attempt = 0;
    while (k != NULL && i < cu->n) {
        if (!krappy_connected(k) && connect_source(cu, k, attempt) != KRAPPY_OK) {
            if (stopping(cu))
                break;
            krappy_close(k);
            attempt++;
            pause_ms(KR_CATCHUP_RETRY_MS);
            continue;
        }
        int rc = fetch_range(cu, k, i, &at);
        if (rc == -2)
            break;
        if (rc == -1) {
            krappy_close(k);
            attempt++;
            pause_ms(KR_CATCHUP_RETRY_MS);
            continue;
        }
        if (++i < cu->n)
            at = cu->ranges[i].from;
    }
    krappy_client_free(k);
    pthread_mutex_lock(&cu->mu);
    cu->finished = true;
    pthread_mutex_unlock(&cu->mu);
    event_active(cu->ev, EV_READ, 0);
    return NULL;
}

/* The loop: take a chunk, or learn the thread finished. */
static void on_event(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    kr_catchup *cu = arg;
    pthread_mutex_lock(&cu->mu);
    bool have = cu->have, finished = cu->finished && !cu->stop;
    pthread_mutex_unlock(&cu->mu);
    if (have) {
        /* The thread waits meanwhile: payload and range stay put. */
        bool data =
            cu->count > 0 || cu->kind == KR_CATCHUP_SEED || cu->kind == KR_CATCHUP_SEED_LAST;
        bool taken = cu->chunk(cu->arg, cu->ranges[cu->cur].topic, cu->kind, cu->first, cu->count,
                               data ? cu->payload.data : NULL, data ? cu->payload.len : 0);
        pthread_mutex_lock(&cu->mu);
        cu->taken = taken;
        cu->have = false;
        pthread_cond_broadcast(&cu->cond);
        pthread_mutex_unlock(&cu->mu);
    }
    if (finished && !cu->done_called) {
        cu->done_called = true;
        cu->done(cu->arg);
    }
}

/* Everything but the thread (joined or never started). */
static void free_catchup(kr_catchup *cu)
{
    if (cu->ev != NULL)
        event_free(cu->ev);
    free(cu->ranges);
    free(cu->nodes);
    free(cu->token);
    kr_buf_free(&cu->payload);
    pthread_cond_destroy(&cu->cond);
    pthread_mutex_destroy(&cu->mu);
    free(cu);
}

kr_catchup *kr_catchup_start(struct event_base *base, const char *nodes, const char *token,
                             const kr_catchup_range *ranges, size_t n, kr_catchup_chunk_fn chunk,
                             kr_catchup_done_fn done, void *arg)
{
    kr_catchup *cu = calloc(1, sizeof *cu);
    if (cu == NULL)
        return NULL;
    pthread_mutex_init(&cu->mu, NULL);
    pthread_cond_init(&cu->cond, NULL);
    kr_buf_init(&cu->payload, (size_t)64 << 20);
    cu->chunk = chunk;
    cu->done = done;
    cu->arg = arg;
    cu->n = n;
    cu->nodes = strdup(nodes);
    cu->token = token != NULL ? strdup(token) : NULL;
    cu->ranges = malloc((n ? n : 1) * sizeof *ranges);
    cu->ev = event_new(base, -1, 0, on_event, cu);
    if (cu->nodes == NULL || (token != NULL && cu->token == NULL) || cu->ranges == NULL ||
        cu->ev == NULL)
        goto fail;
    memcpy(cu->ranges, ranges, n * sizeof *ranges);
    cu->n_nodes = 1;
    for (const char *c = nodes; *c != '\0'; c++)
        cu->n_nodes += *c == ',';
    if (pthread_create(&cu->th, NULL, catchup_main, cu) != 0)
        goto fail;
    return cu;
fail:
    free_catchup(cu);
    return NULL;
}

void kr_catchup_stop(kr_catchup *cu)
{
    if (cu == NULL)
        return;
    pthread_mutex_lock(&cu->mu);
    cu->stop = true;
    pthread_cond_broadcast(&cu->cond);
    pthread_mutex_unlock(&cu->mu);
    pthread_join(cu->th, NULL);
    free_catchup(cu);
}
