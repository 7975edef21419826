/*
 * server/kafka_produce.c - Produce: each partition's record batch becomes
 * one PUBLISH of the same events, through the store call the Krappy port's
 * PUBLISH uses.
 *
 * A batch is read (CRC, codec, records; kafka/batch.h), its records turned
 * into the PUBLISH `events` array (kafka/event.h), and that payload decoded
 * as a PUBLISH (so the key-length and event-size rules of the Krappy port
 * apply) and handed to kr_store_publish: the batch is stored atomically, at
 * consecutive offsets, or not at all. acks 0/1/-1 are the Krappy acks
 * none/write/sync; with acks 0 no response is sent, and a refused batch
 * closes the connection (what Kafka's brokers do).
 *
 * Idempotent producers: a batch with a producer id carries its epoch and
 * base sequence; the sequence check of PROTOCOL.md section 7 belongs to the
 * store (being built) and is to be called from publish_batch with them, its
 * answers mapped to DUPLICATE_SEQUENCE_NUMBER (with the original offset),
 * OUT_OF_ORDER_SEQUENCE_NUMBER and INVALID_PRODUCER_EPOCH. Until then the
 * batches of idempotent producers are stored as any other.
 */
#include <stdio.h>
#include <string.h>

#include "proto/cbor.h"
#include "server/kafka.h"

/* One partition's batch being written. */
typedef struct kpart {
    kr_kreq *r;
    kr_topic *t;
    kr_kafka_produce_resp_partition *p;
    int32_t records;
} kpart;

/* A Produce request being answered. */
typedef struct kproduce {
    kr_kafka_produce_resp resp;
    int16_t acks;
    bool failed; /* some partition was refused (acks 0 closes then) */
    bool oom;    /* the response could not be built whole */
    const char *first_error;
} kproduce;

/* Set a partition's error and message (copied into r's arena; v8+ sends
 * it). */
static void part_fail(kr_kreq *r, kproduce *pr, kr_kafka_produce_resp_partition *p, int16_t code,
                      const char *msg)
{
    p->error_code = code;
    if (msg != NULL) {
        const char *m = kr_kreq_strdup(r, msg, (int32_t)strlen(msg));
        if (m != NULL)
            p->error_message = (kr_kafka_str){m, (int32_t)strlen(m)};
        if (pr->first_error == NULL)
            pr->first_error = m;
    }
    pr->failed = true;
}

static void produce_finish(kr_kreq *r)
{
    kproduce *pr = r->ctx;
    if (pr->oom) {
        kr_kreq_close(r, "out of memory reading a Produce request");
        return;
    }
    if (pr->acks != 0) {
        kr_kreq_respond(r, &pr->resp);
        return;
    }
    if (!pr->failed) {
        kr_kreq_silent(r);
        return;
    }
    char why[600];
    snprintf(why, sizeof why,
             "a Produce with acks=0 was refused (%s); Kafka closes the "
             "connection so the producer learns of it",
             pr->first_error != NULL ? pr->first_error : "see the partition errors");
    kr_kreq_close(r, why);
}

static void published(void *arg, const kr_store_result *res)
{
    kpart *kp = arg;
    kr_kreq *r = kp->r;
    kproduce *pr = r->ctx;
    if (res->err != KRAPPY_OK) {
        part_fail(r, pr, kp->p, kr_kafka_err_from(res->err), res->msg);
    } else {
        kp->p->base_offset = (int64_t)res->first;
        kp->p->log_start_offset = (int64_t)kp->t->first;
        kr_counter_add(r->conn->k->m.produced, (uint64_t)kp->records);
    }
    if (--r->pending == 0)
        produce_finish(r);
}

/*
 * Turn the one record batch of a partition into a PUBLISH and queue it.
 * @return 1 when queued (published() follows), 0 when refused (the
 *         partition's error is set).
 */
static int publish_batch(kr_kconn *c, kr_kreq *r, kproduce *pr, kpart *kp,
                         const kr_kafka_produce_req_partition *src)
{
    kr_kafka *k = c->k;
    kr_kafka_produce_resp_partition *p = kp->p;
    kr_kafka_batch_iter it;
    kr_kafka_batch b, extra;
    kr_kafka_err e = KR_KAFKA_ERR_NONE;
    if (src->records.len <= 0) {
        part_fail(r, pr, p, KR_KAFKA_ERR_INVALID_RECORD, "the partition carries no record batch");
        return 0;
    }
    kr_kafka_batch_iter_init(&it, src->records.ptr, (size_t)src->records.len);
    int got = kr_kafka_batch_next(&it, &b, &e, c->msg, sizeof c->msg);
    if (got <= 0) {
        part_fail(r, pr, p, got < 0 ? (int16_t)e : KR_KAFKA_ERR_INVALID_RECORD,
                  got < 0 ? c->msg : "the partition carries no record batch");
        return 0;
    }
    if (kr_kafka_batch_next(&it, &extra, &e, c->msg, sizeof c->msg) != 0) {
        part_fail(r, pr, p, KR_KAFKA_ERR_INVALID_RECORD,
                  "a Produce (v3+) carries exactly one record batch per partition");
        return 0;
    }
    /* The PUBLISH payload {events: [...]}: the codec writes the array. */
    kr_buf *ev = &k->events;
    kr_buf_reset(ev);
    kr_cbor_put_map(ev, 1);
    kr_cbor_put_text(ev, "events", 6);
    e = kr_kafka_batch_to_events(&b, &k->records, (size_t)k->cfg->max_frame, ev, &k->scratch,
                                 c->msg, sizeof c->msg);
    if (e != KR_KAFKA_ERR_NONE || ev->failed) {
        part_fail(r, pr, p, e != KR_KAFKA_ERR_NONE ? (int16_t)e : KR_KAFKA_ERR_MESSAGE_TOO_LARGE,
                  e != KR_KAFKA_ERR_NONE ? c->msg : "the batch's events exceed --max-frame");
        return 0;
    }
    kr_request req;
    krappy_err rc =
        kr_req_decode(KRAPPY_T_PUBLISH, ev->data, ev->len, &k->decode, &req, c->msg, sizeof c->msg);
    if (rc != KRAPPY_OK) {
        part_fail(r, pr, p, KR_KAFKA_ERR_INVALID_RECORD, c->msg);
        return 0;
    }
    uint64_t bad = UINT64_MAX;
    kp->records = b.count;
    rc = kr_store_publish(k->srv->store, kp->t, &req, &k->decode, pr->acks == -1, NULL, published,
                          kp, c->msg, sizeof c->msg, &bad);
    if (rc != KRAPPY_OK) {
        int16_t code = rc == KRAPPY_E_INVALID_ARGUMENT
                           ? (bad != UINT64_MAX ? KR_KAFKA_ERR_MESSAGE_TOO_LARGE
                                                : KR_KAFKA_ERR_RECORD_LIST_TOO_LARGE)
                           : kr_kafka_err_from(rc);
        part_fail(r, pr, p, code, c->msg);
        return 0;
    }
    r->pending++;
    return 1;
}

kr_khresult kr_khandle_produce(kr_kconn *c, kr_kreq *r, const kr_kafka_request *req)
{
    const kr_kafka_produce_req *q = &req->u.produce;
    int32_t nt = kr_kcount(q->topics.n);
    kproduce *pr = kr_kreq_array(r, 1, sizeof *pr);
    kr_kafka_produce_resp_topic *topics = kr_kreq_array(r, nt, sizeof *topics);
    if (pr == NULL || topics == NULL) {
        return kr_kreq_nomem(r);
    }
    pr->acks = q->acks;
    pr->resp.responses.v = topics;
    pr->resp.responses.n = nt;
    r->ctx = pr;
    bool acks_ok = q->acks == 0 || q->acks == 1 || q->acks == -1;
    /* One reference for the loop below, so no completion answers early. */
    r->pending = 1;
    kr_kreq_async(r);
    for (int32_t i = 0; i < nt; i++) {
        const kr_kafka_produce_req_topic *qt = &q->topics.v[i];
        int32_t np = kr_kcount(qt->partitions.n);
        kpart *kps = kr_kreq_array(r, np, sizeof *kps);
        kr_kafka_produce_resp_partition *parts = kr_kreq_array(r, np, sizeof *parts);
        const char *name = kr_kreq_strdup(r, qt->name.ptr, qt->name.len);
        if (kps == NULL || parts == NULL || (name == NULL && qt->name.len >= 0)) {
            pr->oom = true; /* answered once the batches queued so far are written */
            pr->resp.responses.n = i;
            break;
        }
        topics[i].name = (kr_kafka_str){name, qt->name.len};
        topics[i].partitions.v = parts;
        topics[i].partitions.n = np;
        int16_t err = 0;
        kr_topic *t = acks_ok ? kr_kafka_topic_for(c->k, qt->name, true, &err) : NULL;
        for (int32_t j = 0; j < np; j++) {
            kr_kafka_produce_resp_partition *p = &parts[j];
            const kr_kafka_produce_req_partition *src = &qt->partitions.v[j];
            p->index = src->index;
            p->base_offset = -1;
            p->log_append_time_ms = -1;
            p->log_start_offset = -1;
            p->error_message = (kr_kafka_str){NULL, -1};
            if (!acks_ok) {
                part_fail(r, pr, p, KR_KAFKA_ERR_INVALID_REQUIRED_ACKS,
                          "acks must be 0, 1 or -1 (all)");
            } else if (t == NULL) {
                part_fail(r, pr, p, err,
                          err == KR_KAFKA_ERR_UNKNOWN_TOPIC_OR_PARTITION
                              ? "the topic does not exist and --kafka-auto-create is off"
                              : NULL);
            } else if (src->index != 0) {
                part_fail(r, pr, p, KR_KAFKA_ERR_UNKNOWN_TOPIC_OR_PARTITION,
                          "krappy topics have one partition, 0");
            } else {
                kps[j] = (kpart){.r = r, .t = t, .p = p};
                (void)publish_batch(c, r, pr, &kps[j], src);
            }
        }
    }
    if (--r->pending == 0)
        produce_finish(r);
    return KR_KH_ASYNC;
}
