/*
 * e2e/hammer/producer.c - the producers of e2e/hammer: each publishes
 * batches of verifiable events (value "p<producer>-<seq>", each seq sent
 * once) with several PUBLISHes in flight, and records in the per-offset
 * records what every acknowledgement said is stored where. With
 * --idempotent they publish through libkrappy's idempotent handle
 * (krappy_producer), which sends what is unacknowledged again after a
 * kill: nothing is uncertain, and every event must be stored once.
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>

#include "hammer.h"

typedef struct inflight {
    uint64_t seq;
    uint32_t n;
    krappy_ack mode;
} inflight;

static void record_publish(unsigned p, const inflight *f, const krappy_publish_result *res)
{
    if (res->count != f->n) {
        hm_fail(C_ACKED, "producer %u: PUBLISH of %u events acknowledged with count %" PRIu64, p,
                f->n, res->count);
        return;
    }
    uint64_t mode = f->mode == KRAPPY_ACK_SYNC ? MODE_SYNC : MODE_WRIT;
    atomic_fetch_add(f->mode == KRAPPY_ACK_SYNC ? &hm_st.acked_sync : &hm_st.acked_write, f->n);
    hm_atomic_max(&hm_acked_hi, res->first + res->count);
    if (hm_opt.powercut && mode == MODE_WRIT)
        return; /* a power cut may take these */
    for (uint32_t i = 0; i < f->n; i++) {
        uint64_t o = res->first + i;
        if (o >= hm_cap) {
            hm_fail(C_ACKED, "offset %" PRIu64 " beyond the records (--max-events)", o);
            return;
        }
        uint64_t v = mode << 60 | hm_pack_id(p, f->seq + i);
        uint64_t old = __atomic_exchange_n(&hm_exp_at[o], v, __ATOMIC_RELAXED);
        if (old != 0)
            hm_fail(C_ACKED, "offset %" PRIu64 " acknowledged twice (p%u-%" PRIu64 " after %s)", o,
                    p, f->seq + i, hm_id_text(old).s);
    }
}

/* Fill b with producer p's events seq .. seq+n-1: value "p<P>-<seq>",
 * key "k<P>-<seq % HM_KEYS>" (so keys repeat, and a key's events come in
 * the order of their seqs). */
static void fill_batch(krappy_batch *b, unsigned p, uint64_t seq, uint32_t n)
{
    char text[48], key[32];
    krappy_batch_reset(b);
    for (uint32_t i = 0; i < n; i++) {
        int tl = snprintf(text, sizeof text, "p%u-%" PRIu64, p, seq + i);
        int kl = snprintf(key, sizeof key, "k%u-%" PRIu64, p, (seq + i) % HM_KEYS);
        if (krappy_batch_add_text(b, KRAPPY_KEY_TEXT, key, (size_t)kl, text, (size_t)tl) !=
            KRAPPY_OK)
            abort();
    }
}

atomic_int hm_all_acked[MAX_PRODUCERS + 1];

/* An idempotent producer's batches, in the order the handle acknowledges
 * them. */
typedef struct idem_state {
    unsigned p;
    inflight q[MAX_INFLIGHT];
    size_t qh, qn;
} idem_state;

static void idem_acked(void *arg, const krappy_producer_ack *a)
{
    idem_state *st = arg;
    inflight f = st->q[st->qh];
    st->qh = (st->qh + 1) % MAX_INFLIGHT;
    st->qn--;
    if (a->first == UINT64_MAX) {
        /* Stored before, where no longer known: check 9 finds it. */
        atomic_fetch_add(f.mode == KRAPPY_ACK_SYNC ? &hm_st.acked_sync : &hm_st.acked_write, f.n);
        return;
    }
    krappy_publish_result res = {.first = a->first, .count = a->count};
    record_publish(st->p, &f, &res);
}

/* The address of the server now, as "host:port". */
static void current_addr(char *out, size_t n)
{
    pthread_mutex_lock(&hm_srv_mu);
    snprintf(out, n, "%s:%s", hm_srv.host, hm_srv.port);
    pthread_mutex_unlock(&hm_srv_mu);
}

static void *idempotent_main(void *arg)
{
    static idem_state states[MAX_PRODUCERS];
    unsigned p = (unsigned)(uintptr_t)arg;
    idem_state *st = &states[p];
    st->p = p;
    /* --sync is the share of producers acknowledged "sync". */
    krappy_ack mode =
        (int)p * 100 < hm_opt.sync_pct * hm_opt.producers ? KRAPPY_ACK_SYNC : KRAPPY_ACK_WRITE;
    char who[32], addr[96];
    snprintf(who, sizeof who, "hammer-i%u", p);
    krappy_opts o = {.timeout_ms = CLIENT_TIMEOUT};
    krappy_producer_opts po = {.client = &o,
                               .ack = mode,
                               .max_unacked = hm_opt.inflight < KRAPPY_PRODUCER_MAX_UNACKED
                                                  ? (size_t)hm_opt.inflight
                                                  : KRAPPY_PRODUCER_MAX_UNACKED,
                               .reconnect_ms = RECONNECT_LIMIT,
                               .on_ack = idem_acked,
                               .arg = st};
    krappy_producer *h = NULL;
    krappy_batch *b = krappy_batch_new();
    uint64_t seq = 0, deadline = e2e_now_ms() + RECONNECT_LIMIT;
    bool ok = true;
    for (;;) { /* the first contact; the handle gets the server back later */
        current_addr(addr, sizeof addr);
        if (krappy_producer_open(addr, hm_topic, who, &po, &h) == KRAPPY_OK)
            break;
        if (e2e_now_ms() > deadline || atomic_load(&hm_aborting)) {
            hm_fail(C_ERRORS, "%s: %s", who, krappy_producer_errmsg(h));
            ok = false;
            break;
        }
        krappy_producer_free(h);
        h = NULL;
        hm_sleep_ms(20);
    }
    while (ok && !atomic_load(&hm_stop_produce) && !atomic_load(&hm_aborting)) {
        if (atomic_load(&hm_acked_hi) > atomic_load(&hm_ack_cursor_max) + hm_opt.max_lag) {
            hm_sleep_ms(1);
            continue;
        }
        uint32_t n = (uint32_t)hm_opt.batch;
        if (atomic_fetch_add(&hm_st.sent, n) + n > hm_opt.max_events) {
            atomic_fetch_sub(&hm_st.sent, n);
            break;
        }
        fill_batch(b, p, seq, n);
        atomic_store(&hm_sent_seq[p], seq + n);
        st->q[(st->qh + st->qn) % MAX_INFLIGHT] = (inflight){seq, n, mode};
        st->qn++;
        if (krappy_producer_send(h, b, NULL) != KRAPPY_OK) {
            hm_fail(C_ERRORS, "%s: %s", who, krappy_producer_errmsg(h));
            ok = false;
            break;
        }
        seq += n;
        atomic_fetch_add(&hm_st.batches, 1);
    }
    if (ok && krappy_producer_flush(h) != KRAPPY_OK) {
        hm_fail(C_ERRORS, "%s: flush: %s", who, krappy_producer_errmsg(h));
        ok = false;
    }
    /* Power cuts may take what was acknowledged only "write". */
    if (ok && !(hm_opt.powercut && mode == KRAPPY_ACK_WRITE))
        atomic_store(&hm_all_acked[p], 1);
    krappy_producer_info in;
    krappy_producer_info_get(h, &in);
    atomic_fetch_add(&hm_st.prod_reconnects, in.reconnects);
    hm_say("%s: %" PRIu64 " batches acknowledged, %" PRIu64 " duplicates, %" PRIu64
           " sent again, %" PRIu64 " reconnects",
           who, in.acked, in.duplicates, in.resent, in.reconnects);
    krappy_producer_free(h);
    krappy_batch_free(b);
    return NULL;
}

static void *producer_main(void *arg)
{
    unsigned p = (unsigned)(uintptr_t)arg;
    hm_rng r;
    hm_rng_seed(&r, hm_opt.seed, 1000 + p);
    krappy_opts o = {.timeout_ms = CLIENT_TIMEOUT};
    krappy_client *c = krappy_client_new(&o);
    krappy_batch *b = krappy_batch_new();
    char who[32];
    snprintf(who, sizeof who, "hammer-p%u", p);
    inflight q[MAX_INFLIGHT];
    size_t qh = 0, qn = 0;
    uint64_t seq = 0;
    unsigned long gen = 0;
    bool up = false, budget_left = true;
    if (c == NULL || b == NULL)
        abort();
    for (;;) {
        bool stopping = atomic_load(&hm_stop_produce) || !budget_left || atomic_load(&hm_aborting);
        if (stopping && (!up || qn == 0))
            break;
        if (!up) {
            if (hm_connect_retry(c, &gen) < 0)
                break;
            krappy_err e = krappy_register_producer(c, hm_topic, who, NULL);
            if (e > KRAPPY_E_WIRE_MAX) {
                hm_lost(c, gen, who, "PRODUCER_REGISTER");
                continue;
            }
            if (e != KRAPPY_OK) {
                hm_fail(C_ERRORS, "%s: PRODUCER_REGISTER: %s", who, krappy_client_errmsg(c));
                krappy_close(c);
                hm_sleep_ms(100);
                continue;
            }
            up = true;
        }
        bool throttled =
            atomic_load(&hm_acked_hi) > atomic_load(&hm_ack_cursor_max) + hm_opt.max_lag;
        if (!stopping && !throttled && qn < (size_t)hm_opt.inflight) {
            uint32_t n = (uint32_t)hm_opt.batch;
            if (atomic_fetch_add(&hm_st.sent, n) + n > hm_opt.max_events) {
                atomic_fetch_sub(&hm_st.sent, n);
                budget_left = false;
                continue;
            }
            fill_batch(b, p, seq, n);
            krappy_ack mode =
                (int)(hm_rnd(&r) % 100) < hm_opt.sync_pct ? KRAPPY_ACK_SYNC : KRAPPY_ACK_WRITE;
            /* Counted as sent before it is: it may be stored either way. */
            atomic_store(&hm_sent_seq[p], seq + n);
            krappy_err e = krappy_publish_send(c, b, mode, NULL);
            if (e != KRAPPY_OK) {
                atomic_fetch_add(&hm_st.uncertain, n);
                seq += n;
                hm_lost(c, gen, who, "PUBLISH send");
                goto connection_lost;
            }
            q[(qh + qn) % MAX_INFLIGHT] = (inflight){seq, n, mode};
            qn++;
            seq += n;
            atomic_fetch_add(&hm_st.batches, 1);
            if (qn < (size_t)hm_opt.inflight)
                continue;
        }
        if (qn == 0) {
            hm_sleep_ms(1);
            continue;
        }
        krappy_publish_result res;
        krappy_err e = krappy_publish_recv(c, &res);
        inflight f = q[qh];
        if (e == KRAPPY_OK) {
            qh = (qh + 1) % MAX_INFLIGHT;
            qn--;
            record_publish(p, &f, &res);
            continue;
        }
        if (e <= KRAPPY_E_WIRE_MAX) {
            /* Refused: not stored. */
            qh = (qh + 1) % MAX_INFLIGHT;
            qn--;
            hm_fail(C_ERRORS, "%s: PUBLISH refused: %s", who, krappy_client_errmsg(c));
            if (krappy_connected(c))
                continue;
            krappy_close(c);
        } else {
            hm_lost(c, gen, who, "PUBLISH reply");
        }
    connection_lost:
        for (; qn > 0; qn--, qh = (qh + 1) % MAX_INFLIGHT)
            atomic_fetch_add(&hm_st.uncertain, q[qh].n);
        up = false;
        atomic_fetch_add(&hm_st.prod_reconnects, 1);
    }
    for (; qn > 0; qn--, qh = (qh + 1) % MAX_INFLIGHT)
        atomic_fetch_add(&hm_st.uncertain, q[qh].n);
    krappy_batch_free(b);
    krappy_client_free(c);
    return NULL;
}

/* Publish the prefill as "producer" number opt.producers, ack write (one
 * PUBLISH at a time). */
int hm_prefill(void)
{
    krappy_opts o = {.timeout_ms = 60000};
    krappy_client *c = krappy_client_new(&o);
    krappy_batch *b = krappy_batch_new();
    unsigned p = (unsigned)hm_opt.producers;
    int rc = -1;
    if (c == NULL || b == NULL)
        abort();
    if (krappy_connect(c, hm_srv.host, hm_srv.port) != KRAPPY_OK ||
        krappy_register_producer(c, hm_topic, "hammer-prefill", NULL) != KRAPPY_OK)
        goto out;
    for (uint64_t seq = 0; seq < hm_opt.prefill;) {
        uint32_t n = hm_opt.prefill - seq < 1000 ? (uint32_t)(hm_opt.prefill - seq) : 1000;
        fill_batch(b, p, seq, n);
        atomic_store(&hm_sent_seq[p], seq + n);
        atomic_fetch_add(&hm_st.sent, n);
        /* The last one "sync": everything durable before the load starts. */
        krappy_ack mode = seq + n == hm_opt.prefill ? KRAPPY_ACK_SYNC : KRAPPY_ACK_WRITE;
        krappy_publish_result res;
        if (krappy_publish(c, b, mode, &res) != KRAPPY_OK)
            goto out;
        inflight f = {seq, n, mode};
        record_publish(p, &f, &res);
        seq += n;
    }
    rc = 0;
out:
    if (rc < 0)
        fprintf(stderr, "hammer: prefill failed: %s\n", krappy_client_errmsg(c));
    krappy_batch_free(b);
    krappy_client_free(c);
    return rc;
}

static pthread_t threads[MAX_PRODUCERS];

void hm_producers_start(void)
{
    for (int i = 0; i < hm_opt.producers; i++)
        pthread_create(&threads[i], NULL, hm_opt.idempotent ? idempotent_main : producer_main,
                       (void *)(uintptr_t)i);
}

void hm_producers_join(void)
{
    for (int i = 0; i < hm_opt.producers; i++)
        pthread_join(threads[i], NULL);
}
