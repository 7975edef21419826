/*
 * server/kafka_produce.c - Produce: each partition's record batch becomes
 * one PUBLISH of the same events, through the store call the Krappy port's
 * PUBLISH uses.
 *
 * A batch is read (CRC, codec, records; kafka/batch.h) and its records
 * handed to kr_store_publish_events as views of their bytes, mapped as
 * kafka/event.h says: the store writes the events a PUBLISH of the same
 * `events` would write, under the same limits (key length, event size,
 * events per PUBLISH, payload size) and charge, without a CBOR payload
 * built and decoded in between. The batch is stored atomically, at
 * consecutive offsets, or not at all. In a cluster the batch still becomes
 * that PUBLISH payload, which is what the log carries (PROTOCOL.md section
 * 8). acks 0/1/-1 are the Krappy acks
 * none/write/sync; with acks 0 no response is sent, and a refused batch
 * closes the connection (what Kafka's brokers do).
 *
 * Idempotent producers: a batch with a producer id (handed out by
 * InitProducerId, epoch 0) carries its base sequence. Each (topic, producer
 * id) is a producer of the store's (PROTOCOL.md section 7) named
 * "kafka-<id>", registered on the connection the first time one of its
 * batches arrives there (registering again on a new connection - after a
 * reconnect, or a restart of krappyd - keeps its sequence state), and the
 * batch goes to kr_store_publish with its sequence number: a repeat of one
 * of the producer's last batches stores nothing and is answered with the
 * original's offset and no error (as Kafka's brokers answer a duplicate),
 * a gap is OUT_OF_ORDER_SEQUENCE_NUMBER, a registration fenced by a newer
 * one INVALID_PRODUCER_EPOCH, a producer the store forgot
 * UNKNOWN_PRODUCER_ID.
 *
 * On a cluster (PROTOCOL.md section 8) a batch is a PUBLISH command of the
 * raft log (cluster_publish): an idempotent one carries the producer, its
 * epoch and its base sequence as the PUBLISH's seq, behind its binding's
 * PRODUCER_REGISTER, so that every node - a new leader too - finds the
 * same duplicates.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cluster/cmd.h"
#include "proto/cbor.h"
#include "server/kafka.h"
#include "util/clock.h"

/* One partition's batch being written. */
typedef struct kpart {
    kr_kreq *r;
    kr_topic *t;
    kr_kafka_produce_resp_partition *p;
    int32_t records;
    int64_t pid; /* the batch's producer id, -1 for none */
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

/* A Kafka producer id bound to the store's producer on this connection.
 * On a cluster the binding is the log's: its PRODUCER_REGISTER goes into
 * the log just before the first PUBLISH that needs it (unlogged until
 * then), and the store holds nothing for the connection. */
struct kr_kprod {
    kr_topic *t;
    int64_t pid;
    uint32_t epoch; /* the store's, of this connection's registration */
    bool logged;    /* a cluster's binding (nothing to release) */
    bool unlogged;  /* a cluster's, its PRODUCER_REGISTER still to send */
    char id[32];    /* "kafka-<pid>" */
    size_t id_len;
};

/* The binding of (t, pid) on c, or NULL. */
static kr_kprod *prod_find(kr_kconn *c, const kr_topic *t, int64_t pid)
{
    for (size_t i = 0; i < c->n_prods; i++)
        if (c->prods[i].t == t && c->prods[i].pid == pid)
            return &c->prods[i];
    return NULL;
}

/* A cluster's binding the log refused (not the leader any more, fenced,
 * forgotten): the next batch of the producer registers again. */
static void prod_drop(kr_kconn *c, const kr_topic *t, int64_t pid)
{
    kr_kprod *kp = prod_find(c, t, pid);
    if (kp != NULL)
        *kp = c->prods[--c->n_prods];
}

/* The Kafka error for a PUBLISH the store refused. */
static int16_t publish_error(krappy_err rc, uint64_t bad)
{
    switch (rc) {
    case KRAPPY_E_INVALID_ARGUMENT:
        return bad != UINT64_MAX ? KR_KAFKA_ERR_MESSAGE_TOO_LARGE
                                 : KR_KAFKA_ERR_RECORD_LIST_TOO_LARGE;
    case KRAPPY_E_FENCED:
        return KR_KAFKA_ERR_INVALID_PRODUCER_EPOCH;
    case KRAPPY_E_OUT_OF_ORDER_SEQUENCE:
        return KR_KAFKA_ERR_OUT_OF_ORDER_SEQUENCE_NUMBER;
    case KRAPPY_E_NOT_REGISTERED:
        return KR_KAFKA_ERR_UNKNOWN_PRODUCER_ID;
    case KRAPPY_E_NOT_LEADER:
        /* Lost the lead, the batch's outcome unknown: the producer asks
         * Metadata again and resends it to the new leader, where its
         * sequence number makes a repeat a duplicate. */
        return KR_KAFKA_ERR_NOT_LEADER_OR_FOLLOWER;
    default:
        return kr_kafka_err_from(rc);
    }
}

static void published(void *arg, const kr_store_result *res)
{
    kpart *kp = arg;
    kr_kreq *r = kp->r;
    kproduce *pr = r->ctx;
    if (res->err != KRAPPY_OK) {
        int16_t code = publish_error(res->err, res->first);
        if (kp->pid >= 0 && r->conn->k->srv->cluster != NULL) {
            /* Registered again by the next batch. Fenced here means a
             * newer registration of this connection's binding (a new
             * leader's stale picture of the epoch), not of the Kafka
             * producer's epoch: the producer retries, it is not fenced. */
            prod_drop(r->conn, kp->t, kp->pid);
            if (res->err == KRAPPY_E_FENCED)
                code = KR_KAFKA_ERR_NOT_LEADER_OR_FOLLOWER;
        }
        part_fail(r, pr, kp->p, code, res->msg);
    } else {
        /* A duplicate: the original's offset, nothing stored again. */
        kp->p->base_offset = (int64_t)res->first;
        kp->p->log_start_offset = (int64_t)kp->t->first;
        if (!res->duplicate)
            kr_counter_add(r->conn->k->m.produced, (uint64_t)kp->records);
    }
    if (--r->pending == 0)
        produce_finish(r);
}

/* ---- idempotent producers ---- */

/*
 * The store's view of Kafka producer `pid` on topic t for this
 * connection, registered now when it is the first batch of the pair here
 * (on a cluster: bound now, the registration logged with the batch, at
 * the epoch after the one this node knows).
 * @return 0 with idem's id and epoch set (valid while c lives); -1 with
 *         the Kafka error and msg.
 */
static int producer_bind(kr_kconn *c, kr_topic *t, int64_t pid, kr_idem *idem, int16_t *err)
{
    kr_kprod *kp = prod_find(c, t, pid);
    if (kp == NULL) {
        if (c->n_prods == c->cap_prods) {
            size_t cap = c->cap_prods ? c->cap_prods * 2 : 4;
            kr_kprod *n = realloc(c->prods, cap * sizeof *n);
            if (n == NULL) {
                *err = KR_KAFKA_ERR_UNKNOWN_SERVER_ERROR;
                snprintf(c->msg, sizeof c->msg, "out of memory registering the producer");
                return -1;
            }
            c->prods = n;
            c->cap_prods = cap;
        }
        kp = &c->prods[c->n_prods];
        *kp = (kr_kprod){.t = t, .pid = pid};
        kp->id_len = (size_t)snprintf(kp->id, sizeof kp->id, "kafka-%lld", (long long)pid);
        kr_store_result res;
        kr_topic *same;
        if (c->k->srv->cluster != NULL) {
            kp->epoch = kr_store_producer_epoch(t, (const uint8_t *)kp->id, kp->id_len, NULL) + 1;
            kp->logged = kp->unlogged = true;
        } else if (kr_store_producer_register(c->k->srv->store, (const uint8_t *)t->name,
                                              t->name_len, (const uint8_t *)kp->id, kp->id_len,
                                              &same, NULL, NULL, &res) < 0) {
            *err = res.err == KRAPPY_E_BUSY ? KR_KAFKA_ERR_UNKNOWN_SERVER_ERROR
                                            : KR_KAFKA_ERR_KAFKA_STORAGE_ERROR;
            snprintf(c->msg, sizeof c->msg, "%s", res.msg);
            return -1;
        } else {
            kp->epoch = res.epoch;
        }
        c->n_prods++;
    }
    idem->id = (const uint8_t *)kp->id;
    idem->id_len = kp->id_len;
    idem->epoch = kp->epoch;
    return 0;
}

void kr_kproduce_conn_closed(kr_kconn *c)
{
    for (size_t i = 0; i < c->n_prods; i++)
        if (!c->prods[i].logged)
            kr_store_producer_release(c->k->srv->store, c->prods[i].t,
                                      (const uint8_t *)c->prods[i].id, c->prods[i].id_len);
    free(c->prods);
    c->prods = NULL;
    c->n_prods = c->cap_prods = 0;
}

void kr_kproduce_topic_deleted(kr_kconn *c, const kr_topic *t)
{
    size_t keep = 0;
    for (size_t i = 0; i < c->n_prods; i++)
        if (c->prods[i].t != t)
            c->prods[keep++] = c->prods[i];
    c->n_prods = keep;
}

/* The idempotent producer's part of a batch: kr_idem, or NULL for a batch
 * without a producer id. @return 0, or -1 with the partition's error set. */
static int batch_idem(kr_kconn *c, kr_kreq *r, kproduce *pr, kpart *kp, const kr_kafka_batch *b,
                      kr_idem *idem, kr_idem **out)
{
    *out = NULL;
    if (b->producer_id < 0)
        return 0;
    int16_t err;
    if (b->producer_epoch != 0) {
        snprintf(c->msg, sizeof c->msg,
                 "producer epoch %d: this broker hands out epoch 0 (InitProducerId v0-v1)",
                 b->producer_epoch);
        part_fail(r, pr, kp->p, KR_KAFKA_ERR_INVALID_PRODUCER_EPOCH, c->msg);
        return -1;
    }
    if (b->base_sequence < 0) {
        part_fail(r, pr, kp->p, KR_KAFKA_ERR_OUT_OF_ORDER_SEQUENCE_NUMBER,
                  "an idempotent batch needs a base sequence of 0 or more");
        return -1;
    }
    if (producer_bind(c, kp->t, b->producer_id, idem, &err) < 0) {
        part_fail(r, pr, kp->p, err, c->msg);
        return -1;
    }
    idem->seq = (uint64_t)b->base_sequence;
    kp->pid = b->producer_id;
    *out = idem;
    return 0;
}

/* A cluster's PRODUCER_REGISTER of a Kafka producer's binding was
 * applied: the binding takes the epoch the log gave (a registration racing
 * another of the same id shares its epoch). A refusal drops it; the
 * PUBLISH behind it is refused too, and says so. */
static void registered(void *arg, const kr_store_result *res)
{
    kpart *kp = arg;
    kr_kreq *r = kp->r;
    kr_kprod *b = prod_find(r->conn, kp->t, kp->pid);
    if (res->err != KRAPPY_OK) {
        kr_kconn_log(KR_LOG_WARN, r->conn,
                     "registering a Kafka producer in the cluster's log failed", res->msg);
        if (b != NULL)
            prod_drop(r->conn, kp->t, kp->pid);
    } else if (b != NULL) {
        b->epoch = res->epoch;
    }
    if (--r->pending == 0)
        produce_finish(r);
}

/*
 * On a cluster's leader: the batch's PUBLISH into the log, an idempotent
 * one (ip) behind its binding's PRODUCER_REGISTER when that is still to be
 * logged. Both go in at once: the log keeps their order, and every node
 * applies the registration before the PUBLISH. The PUBLISH carries the
 * producer and its epoch, the payload its seq: every node finds the same
 * duplicates, so a batch librdkafka resends to a new leader after a
 * leader change is stored once.
 * @return KRAPPY_OK (published() follows), else the error with msg.
 */
static krappy_err cluster_publish(kr_kconn *c, kpart *kp, const kr_buf *ev, const kr_idem *ip,
                                  char *msg, size_t msglen)
{
    kr_server *srv = c->k->srv;
    kr_str topic = {(const uint8_t *)kp->t->name, kp->t->name_len}, body = {ev->data, ev->len};
    if (ip == NULL) /* it asks kr_store_view_full itself */
        return kr_server_cluster_produce(srv, kp->t->name, kp->t->name_len, ev->data, ev->len,
                                         published, kp, msg, msglen);
    if (kr_store_view_full(srv->store, msg, msglen))
        return KRAPPY_E_STORAGE;
    kr_str id = {ip->id, ip->id_len};
    kr_kprod *b = prod_find(c, kp->t, kp->pid);
    if (b != NULL && b->unlogged) {
        kr_buf_reset(&srv->cmd);
        kr_cmd_put_producer_register(&srv->cmd, &topic, &id, b->epoch);
        kp->r->pending++;
        krappy_err rc = kr_server_cluster_command(srv, registered, kp, msg, msglen);
        if (rc != KRAPPY_OK) {
            kp->r->pending--;
            prod_drop(c, kp->t, kp->pid);
            return rc;
        }
        b->unlogged = false;
    }
    kr_buf_reset(&srv->cmd);
    kr_cmd_put_publish(&srv->cmd, &topic, kr_wall_ms(), &id, ip->epoch, &body);
    krappy_err rc = kr_server_cluster_command(srv, published, kp, msg, msglen);
    if (rc != KRAPPY_OK)
        prod_drop(c, kp->t, kp->pid);
    return rc;
}

/* Record bytes as a kr_store_event part: NULL for null, never NULL else. */
static const uint8_t *part_bytes(kr_kafka_bytes b)
{
    if (b.len < 0)
        return NULL;
    return b.ptr != NULL ? b.ptr : (const uint8_t *)"";
}

/* Bytes a CBOR byte string of b takes (null: 1). */
static uint64_t part_cbor_len(kr_kafka_bytes b)
{
    return b.len < 0 ? 1 : kr_cbor_uint_size((uint64_t)b.len) + (uint64_t)b.len;
}

kr_kafka_err kr_kproduce_events(const kr_kafka_batch *b, size_t max_bytes, uint32_t max_events,
                                kr_buf *records, kr_buf *views, kr_buf *headers, kr_buf *scratch,
                                uint64_t *cbor_len, char *msg, size_t msglen)
{
    kr_kafka_record_iter it;
    kr_kafka_record rec;
    kr_kafka_err e;
    int32_t n = 0;
    int got;
    bool any_headers = false;

    if (b->count <= 0)
        return kr_kafka_say(KR_KAFKA_ERR_INVALID_RECORD, msg, msglen,
                            "the record batch holds no records; a Produce stores at least one");
    if ((uint64_t)b->count > max_events)
        return kr_kafka_say(KR_KAFKA_ERR_RECORD_LIST_TOO_LARGE, msg, msglen,
                            "a batch may carry at most %u records (this one has %d, see "
                            "--max-publish-events); send smaller batches",
                            max_events, b->count);
    kr_buf_reset(views);
    kr_buf_reset(headers);
    if (kr_buf_reserve(views, (size_t)b->count * sizeof(kr_store_event)) < 0)
        return kr_kafka_say(KR_KAFKA_ERR_UNKNOWN_SERVER_ERROR, msg, msglen,
                            "out of memory reading a batch of %d records", b->count);
    kr_store_event *evs = (kr_store_event *)(void *)views->data;
    e = kr_kafka_record_iter_init(&it, b, records, max_bytes, msg, msglen);
    if (e != KR_KAFKA_ERR_NONE)
        return e;
    /* {"events": [...]}: a map head, the text, the array head. */
    uint64_t len = 1 + 7 + kr_cbor_uint_size((uint64_t)b->count);
    while ((got = kr_kafka_record_next(&it, &rec, &e, msg, msglen)) == 1) {
        if ((e = kr_kafka_record_check(&rec, msg, msglen)) != KR_KAFKA_ERR_NONE)
            return e;
        kr_store_event *v = &evs[n++];
        *v = (kr_store_event){.key = part_bytes(rec.key),
                              .value = part_bytes(rec.value),
                              .key_len = rec.key.len > 0 ? (uint32_t)rec.key.len : 0,
                              .value_len = rec.value.len > 0 ? (uint32_t)rec.value.len : 0};
        v->has_ts = kr_kafka_record_ts(b, &rec, &v->ts);
        len += 1 + part_cbor_len(rec.key) + part_cbor_len(rec.value) +
               (v->has_ts ? kr_cbor_uint_size(v->ts) : 1);
        if (rec.header_count > 0) {
            size_t at = headers->len;
            e = kr_kafka_record_headers(&rec, headers, scratch, msg, msglen);
            if (e != KR_KAFKA_ERR_NONE)
                return e;
            if (headers->failed)
                return kr_kafka_say(
                    KR_KAFKA_ERR_MESSAGE_TOO_LARGE, msg, msglen,
                    "record %d: the batch's headers are larger than this server takes", rec.index);
            /* Placed below, once `headers` has stopped moving. */
            v->headers = (const uint8_t *)"";
            v->headers_len = (uint32_t)(headers->len - at);
            len += v->headers_len;
            any_headers = true;
        }
    }
    if (got < 0)
        return e;
    size_t at = 0;
    for (int32_t i = 0; any_headers && i < n; i++) {
        if (evs[i].headers == NULL)
            continue;
        evs[i].headers = headers->data + at;
        at += evs[i].headers_len;
    }
    views->len = (size_t)n * sizeof(kr_store_event);
    *cbor_len = len;
    return KR_KAFKA_ERR_NONE;
}

/* A batch the store refused: the partition's Kafka error. */
static void publish_refused(kr_kconn *c, kr_kreq *r, kproduce *pr, kpart *kp,
                            const kr_kafka_batch *b, const kr_idem *idem, krappy_err rc,
                            uint64_t bad)
{
    if (rc == KRAPPY_E_OUT_OF_ORDER_SEQUENCE)
        snprintf(c->msg, sizeof c->msg,
                 "base sequence %d is not the one expected (%llu): a batch before it is "
                 "missing",
                 b->base_sequence, (unsigned long long)idem->expected);
    part_fail(r, pr, kp->p, publish_error(rc, bad), c->msg);
}

/*
 * A single node's store takes the batch's records as they are
 * (kr_store_publish_events). @return as publish_batch.
 */
static int publish_local(kr_kconn *c, kr_kreq *r, kproduce *pr, kpart *kp, const kr_kafka_batch *b)
{
    kr_kafka *k = c->k;
    uint64_t len = 0;
    kr_kafka_err e =
        kr_kproduce_events(b, (size_t)k->cfg->max_frame, k->cfg->max_publish_events, &k->records,
                           &k->views, &k->decode, &k->scratch, &len, c->msg, sizeof c->msg);
    if (e != KR_KAFKA_ERR_NONE) {
        part_fail(r, pr, kp->p, (int16_t)e, c->msg);
        return 0;
    }
    if (len > k->events.max) { /* the PUBLISH payload's limit */
        part_fail(r, pr, kp->p, KR_KAFKA_ERR_MESSAGE_TOO_LARGE,
                  "the batch's events exceed --max-frame");
        return 0;
    }
    kr_idem idem, *ip;
    if (batch_idem(c, r, pr, kp, b, &idem, &ip) < 0)
        return 0;
    uint64_t bad = UINT64_MAX;
    kp->records = b->count;
    /* Charged as the PUBLISH of these events (see publish_batch). */
    kr_kreq_charge(r, len + (uint64_t)b->count * KR_PUBLISH_EVENT_COST);
    r->pending++; /* first: a repeat may be answered from within the call */
    krappy_err rc = kr_store_publish_events(
        k->srv->store, kp->t, (const kr_store_event *)(const void *)k->views.data,
        (uint64_t)b->count, pr->acks == -1, ip, published, kp, c->msg, sizeof c->msg, &bad);
    if (rc != KRAPPY_OK) {
        r->pending--;
        publish_refused(c, r, pr, kp, b, &idem, rc, bad);
        return 0;
    }
    return 1;
}

/*
 * Read the one record batch of a partition and queue it: as its records
 * on a single node (publish_local), as a PUBLISH payload through a
 * cluster's log.
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
    if (k->srv->cluster == NULL)
        return publish_local(c, r, pr, kp, &b);
    /* On a cluster, the PUBLISH payload {events: [...], seq}: the codec
     * writes the array; an idempotent batch's base sequence is the
     * PUBLISH's seq, which the cluster's log carries. */
    bool with_seq = b.producer_id >= 0 && b.base_sequence >= 0;
    kr_buf *ev = &k->events;
    kr_buf_reset(ev);
    kr_cbor_put_map(ev, with_seq ? 2 : 1);
    kr_cbor_put_text(ev, "events", 6);
    e = kr_kafka_batch_to_events(&b, &k->records, (size_t)k->cfg->max_frame, ev, &k->scratch,
                                 c->msg, sizeof c->msg);
    if (with_seq) {
        kr_cbor_put_text(ev, "seq", 3);
        kr_cbor_put_uint(ev, (uint64_t)b.base_sequence);
    }
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
    kr_idem idem, *ip;
    if (batch_idem(c, r, pr, kp, &b, &idem, &ip) < 0)
        return 0;
    uint64_t bad = UINT64_MAX;
    kp->records = b.count;
    /* The store holds the events until they are written: request memory,
     * as a PUBLISH of the Krappy port is charged (decompressed, they may
     * take far more than the frame did). */
    kr_kreq_charge(r, ev->len + (uint64_t)req.u.publish.count * KR_PUBLISH_EVENT_COST);
    /* Counted first: a repeat of an idempotent batch may be answered from
     * within the call. */
    r->pending++;
    rc = cluster_publish(c, kp, ev, ip, c->msg, sizeof c->msg);
    if (rc != KRAPPY_OK) {
        r->pending--;
        publish_refused(c, r, pr, kp, &b, &idem, rc, bad);
        return 0;
    }
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
        bool led = c->k->srv->cluster == NULL || kr_cluster_is_leader(c->k->srv->cluster);
        kr_topic *t = acks_ok && led ? kr_kafka_topic_for(c->k, qt->name, true, &err) : NULL;
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
            } else if (!led) {
                part_fail(r, pr, p, KR_KAFKA_ERR_NOT_LEADER_OR_FOLLOWER,
                          "this node is not the cluster's leader; Metadata names the one that is");
            } else if (t == NULL) {
                part_fail(r, pr, p, err,
                          err == KR_KAFKA_ERR_UNKNOWN_TOPIC_OR_PARTITION
                              ? "the topic does not exist and --kafka-auto-create is off"
                              : NULL);
            } else if (src->index != 0) {
                part_fail(r, pr, p, KR_KAFKA_ERR_UNKNOWN_TOPIC_OR_PARTITION,
                          "krappy topics have one partition, 0");
            } else {
                kps[j] = (kpart){.r = r, .t = t, .p = p, .pid = -1};
                (void)publish_batch(c, r, pr, &kps[j], src);
            }
        }
    }
    if (c->trace != NULL)
        r->handed_ns = kr_mono_ns();
    if (--r->pending == 0)
        produce_finish(r);
    return KR_KH_ASYNC;
}
