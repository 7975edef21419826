/*
 * e2e/hammer/producer.c - the producers of e2e/hammer: each publishes
 * batches of verifiable events (value "p<producer>-<seq>", each seq sent
 * once) with several PUBLISHes in flight, and records in the per-offset
 * records what every acknowledgement said is stored where.
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
 * key "k<P>-<seq % 97>" (so keys repeat). */
static void fill_batch(krappy_batch *b, unsigned p, uint64_t seq, uint32_t n)
{
    char text[48], key[32];
    krappy_batch_reset(b);
    for (uint32_t i = 0; i < n; i++) {
        int tl = snprintf(text, sizeof text, "p%u-%" PRIu64, p, seq + i);
        int kl = snprintf(key, sizeof key, "k%u-%" PRIu64, p, (seq + i) % 97);
        if (krappy_batch_add_text(b, KRAPPY_KEY_TEXT, key, (size_t)kl, text, (size_t)tl) !=
            KRAPPY_OK)
            abort();
    }
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
        pthread_create(&threads[i], NULL, producer_main, (void *)(uintptr_t)i);
}

void hm_producers_join(void)
{
    for (int i = 0; i < hm_opt.producers; i++)
        pthread_join(threads[i], NULL);
}
