/*
 * server/handlers.c - one function per request type.
 *
 * A handler runs on the loop thread after the request passed every check up
 * to "fields valid" (PROTOCOL.md section 5); it checks registration and the
 * topic itself, in that order. It finishes the request with kr_req_reply,
 * kr_req_error or kr_req_silent - before returning KR_H_DONE, or later after
 * calling kr_req_async and returning KR_H_ASYNC (storage completions, long
 * polls, scans waiting for a checkpoint). Types without a handler are
 * answered UNKNOWN_TYPE by the session.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <event2/buffer.h>

#include "proto/cbor.h"
#include "server/group_rows.h"
#include "server/server.h"
#include "store/compact.h"
#include "store/topic_config.h"
#include "util/clock.h"
#include "util/log.h"

#define KR_SERVER_NAME "krappyd " KRAPPY_VERSION
/* SCAN `limit` above this is lowered to it. */
#define KR_MAX_SCAN_LIMIT 10000
/* Room kept in an ENTRIES reply for the map around the entries. */
#define KR_SCAN_REPLY_OVERHEAD 128

static kr_store *store_of(kr_conn *c)
{
    return c->srv->store;
}

/* NO_SUCH_TOPIC, or the topic. */
static kr_topic *need_topic(kr_conn *c, kr_req *r, const kr_str *name)
{
    kr_topic *t = kr_store_topic(store_of(c), name->ptr, name->len);
    if (t == NULL) {
        snprintf(c->errmsg, sizeof c->errmsg,
                 "topic '%.*s' does not exist; a producer creates it with PRODUCER_REGISTER",
                 (int)name->len, (const char *)name->ptr);
        kr_req_error(r, KRAPPY_E_NO_SUCH_TOPIC, c->errmsg, NULL);
    }
    return t;
}

static kr_str topic_str(const kr_topic *t)
{
    return (kr_str){(const uint8_t *)t->name, t->name_len};
}

/* ---- HELLO, PING ---- */

static kr_hresult hello(kr_conn *c, kr_req *r, const kr_request *req)
{
    (void)req; /* version 1 is the only one; kr_req_decode refused others */
    kr_buf_reset(&c->enc);
    kr_enc_ok_hello(&c->enc, r->cid, KRAPPY_PROTOCOL_VERSION, KR_SERVER_NAME,
                    c->srv->cfg->max_frame, c->srv->cfg->max_events);
    kr_req_reply(r, KRAPPY_T_OK, c->enc.data, c->enc.len);
    return KR_H_DONE;
}

static kr_hresult ping(kr_conn *c, kr_req *r, const kr_request *req)
{
    (void)req;
    kr_buf_reset(&c->enc);
    kr_enc_ok_empty(&c->enc, r->cid);
    kr_req_reply(r, KRAPPY_T_OK, c->enc.data, c->enc.len);
    return KR_H_DONE;
}

/* ---- PRODUCER_REGISTER ---- */

/* The connection's producer registration ends (an idempotent one lets its
 * producer be forgotten again once idle). */
static void producer_drop(kr_conn *c)
{
    if (c->producer != NULL && c->idem)
        kr_store_producer_release(store_of(c), c->producer, c->idem_id, c->idem_id_len);
    c->producer = NULL;
    c->idem = false;
}

static void registered(void *arg, const kr_store_result *res)
{
    kr_req *r = arg;
    kr_conn *c = r->conn;
    if (res->err != KRAPPY_OK) {
        if (c->producer == r->topic)
            producer_drop(c);
        kr_req_error(r, res->err, res->msg, NULL);
        return;
    }
    kr_str name = topic_str(r->topic);
    kr_buf_reset(&c->enc);
    if (r->ctx != NULL) /* idempotent */
        kr_enc_ok_producer_idempotent(&c->enc, r->cid, &name, res->first, res->epoch, res->seq);
    else
        kr_enc_ok_producer(&c->enc, r->cid, &name, res->first);
    r->ctx = NULL;
    kr_req_reply(r, KRAPPY_T_OK, c->enc.data, c->enc.len);
}

/*
 * The topic is created if absent. The registration binds at once, so that
 * a PUBLISH pipelined behind it is accepted; the reply (with the topic's
 * next offset) comes once every earlier write has taken effect. An
 * idempotent one (section 7) starts the producer's new epoch at once too -
 * fencing older registrations - and is answered once it is durable.
 */
static kr_hresult producer_register(kr_conn *c, kr_req *r, const kr_request *req)
{
    const kr_str *name = &req->u.producer_register.topic, *id = &req->u.producer_register.id;
    bool idempotent = req->u.producer_register.idempotent;
    kr_store_result res;
    kr_topic *t;
    int rc;
    if (c->srv->cluster != NULL)
        return kr_server_cluster_register(c, r, req);
    producer_drop(c);
    kr_req_async(r);
    r->ctx = idempotent ? r : NULL; /* registered() tells the two apart */
    if (idempotent)
        rc = kr_store_producer_register(store_of(c), name->ptr, name->len, id->ptr, id->len, &t,
                                        registered, r, &res);
    else
        rc = kr_store_register(store_of(c), name->ptr, name->len, &t, registered, r, &res);
    if (rc < 0) {
        r->ctx = NULL;
        kr_req_error(r, res.err, res.msg, NULL);
        return KR_H_ASYNC;
    }
    r->topic = t;
    c->producer = t;
    if (idempotent) {
        c->idem = true;
        c->idem_epoch = res.epoch;
        memcpy(c->idem_id, id->ptr, id->len);
        c->idem_id_len = id->len;
    }
    c->producer_gone = false;
    return KR_H_ASYNC;
}

/* ---- PUBLISH ---- */

static void published(void *arg, const kr_store_result *res)
{
    kr_req *r = arg;
    if (res->err != KRAPPY_OK) {
        kr_req_error(r, res->err, res->msg, NULL); /* closes when ack "none" */
        return;
    }
    kr_reply_published(r, res);
}

void kr_reply_published(kr_req *r, const kr_store_result *res)
{
    kr_conn *c = r->conn;
    if (r->ack_none) {
        kr_req_silent(r);
        return;
    }
    kr_buf_reset(&c->enc);
    if (res->duplicate)
        kr_enc_ok_publish_duplicate(&c->enc, r->cid, res->first, res->count);
    else
        kr_enc_ok_publish(&c->enc, r->cid, res->first, res->count);
    kr_req_reply(r, KRAPPY_T_OK, c->enc.data, c->enc.len);
}

bool kr_publish_lacks_seq(kr_conn *c, kr_req *r, const kr_request *req)
{
    if (!c->idem || req->u.publish.has_seq)
        return false;
    kr_req_error(r, KRAPPY_E_INVALID_ARGUMENT,
                 "field 'seq' is required: this connection's producer registration is "
                 "idempotent, and each PUBLISH carries the sequence number of its first "
                 "event (an unsigned integer)",
                 NULL);
    return true;
}

static kr_hresult publish(kr_conn *c, kr_req *r, const kr_request *req)
{
    if (c->srv->cluster != NULL)
        return kr_server_cluster_publish(c, r, req);
    if (kr_publish_lacks_seq(c, r, req))
        return KR_H_DONE;
    if (c->producer_gone) {
        kr_req_error(r, KRAPPY_E_NO_SUCH_TOPIC,
                     "the topic this connection registered to produce to was deleted; register "
                     "again (PRODUCER_REGISTER) to create it anew",
                     NULL);
        return KR_H_DONE;
    }
    if (c->producer == NULL || c->producer->failed) {
        kr_req_error(r, KRAPPY_E_NOT_REGISTERED,
                     "PUBLISH needs a PRODUCER_REGISTER for a topic on this connection first",
                     NULL);
        return KR_H_DONE;
    }
    kr_idem idem = {.id = c->idem_id,
                    .id_len = c->idem_id_len,
                    .epoch = c->idem_epoch,
                    .seq = req->u.publish.seq};
    uint64_t bad = UINT64_MAX; /* set by the store only when one event is at fault */
    kr_req_async(r);
    krappy_err rc = kr_store_publish(store_of(c), c->producer, req, &c->scratch,
                                     req->u.publish.ack == KR_ACK_SYNC, c->idem ? &idem : NULL,
                                     published, r, c->errmsg, sizeof c->errmsg, &bad);
    if (rc == KRAPPY_E_FENCED)
        producer_drop(c); /* register again to publish */
    if (rc != KRAPPY_OK) {
        kr_error_extra extra = {.has_index = rc == KRAPPY_E_INVALID_ARGUMENT && bad != UINT64_MAX,
                                .index = bad,
                                .has_expected = rc == KRAPPY_E_OUT_OF_ORDER_SEQUENCE,
                                .expected = idem.expected};
        kr_req_error(r, rc, c->errmsg, &extra);
    }
    return KR_H_ASYNC;
}

/* ---- FETCH ---- */

typedef struct fetch_wait {
    kr_waiter w;
    kr_req *r;
    uint64_t offset, max, max_bytes;
} fetch_wait;

/* Send what kr_store_fetch found as EVENTS {cid?, events, next}. */
static void fetch_reply(kr_conn *c, kr_req *r, const kr_fetch_result *res)
{
    struct evbuffer *buf = evbuffer_new();
    if (buf == NULL) {
        kr_req_error(r, KRAPPY_E_STORAGE, "out of memory building a reply", NULL);
        return;
    }
    /* Bound for a socket: libevent then keeps file segments as sendfile
     * ranges instead of mapping the segment files into memory. */
    evbuffer_set_flags(buf, EVBUFFER_FLAG_DRAINS_TO_FD);
    kr_buf_reset(&c->enc);
    kr_enc_events_begin(&c->enc, r->cid, (size_t)res->count);
    evbuffer_add(buf, c->enc.data, c->enc.len);
    if (kr_store_fetch_emit(store_of(c), res, buf, c->errmsg, sizeof c->errmsg) < 0) {
        evbuffer_free(buf);
        kr_req_error(r, KRAPPY_E_STORAGE, c->errmsg, NULL);
        return;
    }
    kr_buf_reset(&c->enc);
    kr_enc_events_end(&c->enc, res->next);
    evbuffer_add(buf, c->enc.data, c->enc.len);
    kr_req_reply_evbuffer(r, KRAPPY_T_EVENTS, buf);
    evbuffer_free(buf);
}

/* Fetch and answer; 0 when there was nothing to send yet. */
static int fetch_now(kr_conn *c, kr_req *r, kr_topic *t, uint64_t offset, uint64_t max,
                     uint64_t max_bytes, bool reply_empty)
{
    kr_fetch_result res;
    krappy_err rc =
        kr_store_fetch(store_of(c), t, offset, max, max_bytes, &res, c->errmsg, sizeof c->errmsg);
    if (rc == KRAPPY_E_OFFSET_OUT_OF_RANGE) {
        kr_error_extra extra = {.has_range = true, .first = t->first, .next = t->next};
        kr_req_error(r, rc, c->errmsg, &extra);
        return 1;
    }
    if (rc != KRAPPY_OK) {
        kr_error_extra extra = {.has_range = true, .first = offset, .next = res.next};
        kr_req_error(r, rc, c->errmsg, &extra);
        return 1;
    }
    if (res.count == 0 && !reply_empty)
        return 0;
    fetch_reply(c, r, &res);
    return 1;
}

static void fetch_woken(kr_waiter *w, bool timed_out)
{
    fetch_wait *fw = (fetch_wait *)w;
    kr_req *r = fw->r;
    kr_conn *c = r->conn;
    r->cancel = NULL;
    c->parked--;
    (void)timed_out;
    if (w->gone) {
        snprintf(c->errmsg, sizeof c->errmsg, "topic '%s' was deleted while this FETCH waited",
                 w->topic->name);
        kr_req_error(r, KRAPPY_E_NO_SUCH_TOPIC, c->errmsg, NULL);
    } else {
        (void)fetch_now(c, r, w->topic, fw->offset, fw->max, fw->max_bytes, true);
    }
    free(fw);
}

static void fetch_cancel(kr_req *r, krappy_err code)
{
    fetch_wait *fw = r->ctx;
    kr_conn *c = r->conn;
    kr_store_unpark(store_of(c), &fw->w);
    c->parked--;
    free(fw);
    if (code == KRAPPY_OK)
        kr_req_silent(r);
    else
        kr_req_error(r, code, "the server is shutting down; reconnect in a moment", NULL);
}

static kr_hresult fetch(kr_conn *c, kr_req *r, const kr_request *req)
{
    kr_topic *t = need_topic(c, r, &req->u.fetch.topic);
    if (t == NULL)
        return KR_H_DONE;
    uint64_t offset = req->u.fetch.offset, max = req->u.fetch.max,
             max_bytes = req->u.fetch.max_bytes, wait_ms = req->u.fetch.wait_ms;
    if (fetch_now(c, r, t, offset, max, max_bytes, wait_ms == 0))
        return KR_H_DONE;
    /* Nothing yet: a long poll, parked on the topic. */
    fetch_wait *fw = calloc(1, sizeof *fw);
    if (fw == NULL) {
        kr_req_error(r, KRAPPY_E_STORAGE, "out of memory parking a long poll", NULL);
        return KR_H_DONE;
    }
    fw->r = r;
    fw->offset = offset;
    fw->max = max;
    fw->max_bytes = max_bytes;
    fw->w.topic = t;
    fw->w.offset = offset;
    fw->w.wake = fetch_woken;
    if (kr_store_park(store_of(c), &fw->w, wait_ms) < 0) {
        free(fw);
        kr_req_error(r, KRAPPY_E_STORAGE, "out of memory parking a long poll", NULL);
        return KR_H_DONE;
    }
    r->ctx = fw;
    r->cancel = fetch_cancel;
    c->parked++;
    kr_req_async(r);
    return KR_H_ASYNC;
}

/* ---- GET ---- */

static kr_hresult get(kr_conn *c, kr_req *r, const kr_request *req)
{
    kr_topic *t = need_topic(c, r, &req->u.get.topic);
    if (t == NULL)
        return KR_H_DONE;
    const kr_key *key = &req->u.get.key;
    kr_buf_reset(&c->tmp);
    int rc = kr_store_get(store_of(c), t, key->content.ptr, key->content.len, &c->tmp, c->errmsg,
                          sizeof c->errmsg);
    if (rc < 0 || c->tmp.failed) {
        kr_req_error(r, KRAPPY_E_STORAGE, c->errmsg, NULL);
        return KR_H_DONE;
    }
    if (rc == 0) {
        kr_req_error(r, KRAPPY_E_NOT_FOUND,
                     "no value for that key (never written, or deleted by a null value)", NULL);
        return KR_H_DONE;
    }
    kr_cbor_item ev;
    kr_event_view v;
    if (kr_cbor_read(c->tmp.data, c->tmp.len, &ev) < 0 || kr_event_view_read(&ev, &v) < 0) {
        kr_req_error(r, KRAPPY_E_STORAGE, "the stored value is damaged", NULL);
        return KR_H_DONE;
    }
    kr_str k = {v.key.raw, v.key.raw_len}, val = {v.value.raw, v.value.raw_len},
           h = {v.headers.raw, v.headers.raw_len};
    kr_buf_reset(&c->enc);
    kr_enc_value(&c->enc, r->cid, &k, v.offset, v.ts, &val, v.has_headers ? &h : NULL);
    kr_req_reply(r, KRAPPY_T_VALUE, c->enc.data, c->enc.len);
    return KR_H_DONE;
}

/* ---- SCAN ---- */

typedef struct scan_page {
    kr_conn *c;
    size_t n;
    size_t room;      /* bytes the entries may take in the reply */
    bool rejected;    /* an entry did not fit: more remain */
    size_t too_large; /* the first entry alone is this large: no page holds it */
    int bad;
} scan_page;

/* Bytes kr_enc_entry writes for one entry (a null stands in for an empty
 * raw item). */
static size_t entry_bytes(const kr_str *key, uint64_t offset, uint64_t ts, const kr_str *value)
{
    return 1 + (key->len ? key->len : 1) + kr_cbor_uint_size(offset) + kr_cbor_uint_size(ts) +
           (value->len ? value->len : 1);
}

/*
 * One entry into the page, or - when it would not fit - none, so that the
 * cursor continues with it: sized before it is encoded, as an entry that
 * outgrew the page buffer used to leave the buffer failed and the reply a
 * STORAGE error without a sentence.
 */
static int scan_entry(void *arg, const uint8_t *key, size_t klen, const uint8_t *event, size_t elen)
{
    scan_page *p = arg;
    (void)key;
    (void)klen;
    kr_cbor_item ev;
    kr_event_view v;
    if (kr_cbor_read(event, elen, &ev) < 0 || kr_event_view_read(&ev, &v) < 0) {
        p->bad = 1;
        return 1;
    }
    kr_str k = {v.key.raw, v.key.raw_len}, val = {v.value.raw, v.value.raw_len};
    size_t need = entry_bytes(&k, v.offset, v.ts, &val);
    if (p->c->tmp.len + need > p->room) {
        if (p->n == 0)
            p->too_large = need;
        else
            p->rejected = true; /* the next page starts here */
        return 1;
    }
    kr_enc_entry(&p->c->tmp, &k, v.offset, v.ts, &val);
    p->n++;
    return 0;
}

static void scan_page_reply(kr_conn *c, kr_req *r, kr_scan_cursor *cur, uint64_t limit)
{
    scan_page p = {.c = c, .room = (size_t)c->srv->cfg->max_frame - KR_SCAN_REPLY_OVERHEAD};
    bool more = false;
    if (limit > KR_MAX_SCAN_LIMIT)
        limit = KR_MAX_SCAN_LIMIT;
    kr_buf_reset(&c->tmp);
    long n = kr_store_scan_page(store_of(c), cur, (size_t)limit, scan_entry, &p, &more, c->errmsg,
                                sizeof c->errmsg);
    if (n >= 0 && p.too_large > 0) {
        /* Stored under a larger --max-frame than this run's. */
        kr_store_scan_end(store_of(c), cur);
        snprintf(c->errmsg, sizeof c->errmsg,
                 "the next entry of this scan is %zu bytes, more than a reply within this "
                 "server's max_frame of %u bytes holds; restart krappyd with a larger --max-frame "
                 "to read it",
                 p.too_large, c->srv->cfg->max_frame);
        kr_req_error(r, KRAPPY_E_INVALID_ARGUMENT, c->errmsg, NULL);
        return;
    }
    if (n < 0 || p.bad || c->tmp.failed) {
        kr_store_scan_end(store_of(c), cur);
        kr_req_error(r, KRAPPY_E_STORAGE,
                     p.bad           ? "a stored value is damaged"
                     : c->tmp.failed ? "out of memory building a SCAN reply"
                                     : c->errmsg,
                     NULL);
        return;
    }
    more = more || p.rejected;
    kr_str token = {kr_scan_token(cur), KR_SCAN_CURSOR_BYTES};
    uint64_t snapshot = kr_scan_snapshot(cur);
    kr_buf_reset(&c->enc);
    kr_enc_entries_begin(&c->enc, r->cid, p.n, more);
    kr_buf_append(&c->enc, c->tmp.data, c->tmp.len);
    kr_enc_entries_end(&c->enc, snapshot, more ? &token : NULL);
    if (!more)
        kr_store_scan_end(store_of(c), cur);
    kr_req_reply(r, KRAPPY_T_ENTRIES, c->enc.data, c->enc.len);
}

static void scan_started(void *arg, kr_scan_cursor *cur, const kr_store_result *res)
{
    kr_req *r = arg;
    kr_conn *c = r->conn;
    uint64_t limit = (uint64_t)(uintptr_t)r->ctx;
    if (res->err != KRAPPY_OK) {
        kr_req_error(r, res->err, res->msg, NULL);
        return;
    }
    if (c->bev == NULL) { /* the client left meanwhile */
        kr_store_scan_end(store_of(c), cur);
        kr_req_silent(r);
        return;
    }
    scan_page_reply(c, r, cur, limit);
}

static kr_hresult scan(kr_conn *c, kr_req *r, const kr_request *req)
{
    kr_topic *t = need_topic(c, r, &req->u.scan.topic);
    if (t == NULL)
        return KR_H_DONE;
    if (req->u.scan.has_cursor) {
        kr_scan_cursor *cur =
            kr_store_scan_find(store_of(c), req->u.scan.cursor.ptr, req->u.scan.cursor.len);
        if (cur == NULL) {
            kr_req_error(r, KRAPPY_E_INVALID_ARGUMENT, "scan cursor expired; start the scan again",
                         NULL);
            return KR_H_DONE;
        }
        if (kr_scan_topic(cur) != t) {
            kr_req_error(r, KRAPPY_E_INVALID_ARGUMENT, "this scan cursor belongs to another topic",
                         NULL);
            return KR_H_DONE;
        }
        scan_page_reply(c, r, cur, req->u.scan.limit);
        return KR_H_DONE;
    }
    r->ctx = (void *)(uintptr_t)req->u.scan.limit;
    kr_req_async(r);
    kr_store_scan_start(store_of(c), t, req->u.scan.prefix.ptr,
                        req->u.scan.has_prefix ? req->u.scan.prefix.len : 0, req->u.scan.has_after,
                        req->u.scan.after.ptr, req->u.scan.has_after ? req->u.scan.after.len : 0,
                        scan_started, r);
    return KR_H_ASYNC;
}

/* ---- consumer groups ---- */

static void consumer_drop(kr_conn *c)
{
    if (c->consumer == NULL)
        return;
    kr_store_group_leave(store_of(c), c->consumer_group, c->consumer);
    c->consumer = NULL;
    c->consumer_group = NULL;
}

void kr_handlers_conn_closed(kr_conn *c)
{
    if (c->srv->store != NULL) {
        consumer_drop(c);
        producer_drop(c);
    }
}

typedef struct joined_ctx {
    kr_topic *t;
    kr_tgroup *tg;
    char member[KRAPPY_MAX_NAME_BYTES + 1];
    size_t member_len;
} joined_ctx;

static void joined(void *arg, const kr_store_result *res)
{
    kr_req *r = arg;
    kr_conn *c = r->conn;
    joined_ctx *j = r->ctx;
    r->ctx = NULL;
    if (res->err != KRAPPY_OK) {
        free(j);
        kr_req_error(r, res->err, res->msg, NULL);
        return;
    }
    size_t glen;
    const char *gname = kr_store_group_name(j->tg, &glen);
    kr_str topic = topic_str(j->t), group = {(const uint8_t *)gname, glen},
           member = {(const uint8_t *)j->member, j->member_len};
    kr_buf_reset(&c->enc);
    kr_enc_ok_consumer(&c->enc, r->cid, &topic, &group, &member, res->first);
    free(j);
    kr_req_reply(r, KRAPPY_T_OK, c->enc.data, c->enc.len);
}

/*
 * CONSUMER_REGISTER: join (creating the group at `start` when it is new);
 * a rebind first returns this connection's pending events; a member name
 * held by another connection is taken over, and that connection loses its
 * registration (a POLL parked there is answered NOT_REGISTERED).
 */
static kr_hresult consumer_register(kr_conn *c, kr_req *r, const kr_request *req)
{
    const typeof(req->u.consumer_register) *q = &req->u.consumer_register;
    kr_topic *t = need_topic(c, r, &q->topic);
    if (t == NULL)
        return KR_H_DONE;
    joined_ctx *j = calloc(1, sizeof *j);
    if (j == NULL) {
        kr_req_error(r, KRAPPY_E_STORAGE, "out of memory registering a consumer", NULL);
        return KR_H_DONE;
    }
    consumer_drop(c);
    kr_join a = {.group = q->group.ptr,
                 .glen = q->group.len,
                 .member = q->has_member ? q->member.ptr : NULL,
                 .mlen = q->has_member ? q->member.len : 0,
                 .start = q->start,
                 .start_offset = q->start_offset,
                 .auto_ack = q->ack == KR_CACK_AUTO,
                 .ack_wait_ms = q->ack_wait_ms,
                 .owner = c};
    kr_tgroup *tg;
    kr_member *m;
    void *taken = NULL;
    kr_req_async(r);
    krappy_err rc = kr_store_group_join(store_of(c), t, &a, &tg, &m, &taken, joined, r, c->errmsg,
                                        sizeof c->errmsg);
    if (rc != KRAPPY_OK) {
        free(j);
        kr_error_extra extra = {
            .has_range = rc == KRAPPY_E_OFFSET_OUT_OF_RANGE, .first = t->first, .next = t->next};
        kr_req_error(r, rc, c->errmsg, &extra);
        return KR_H_ASYNC;
    }
    j->t = t;
    j->tg = tg;
    memcpy(j->member, m->name, m->name_len);
    j->member_len = m->name_len;
    r->ctx = j;
    c->consumer = m;
    c->consumer_group = tg;
    if (taken != NULL && taken != c) {
        kr_conn *old = taken;
        old->consumer = NULL;
        old->consumer_group = NULL;
        kr_conn_cancel_parked(old, KRAPPY_E_NOT_REGISTERED);
    }
    return KR_H_ASYNC;
}

/* A POLL in progress: parked, or waiting for its auto-ack cursor. */
typedef struct poll_state {
    kr_waiter w;
    kr_req *r;
    uint64_t max, max_bytes, deadline_ms;
    struct evbuffer *events;
    uint64_t count;
    uint64_t next; /* the group's frontier after handing out */
} poll_state;

static void poll_send(kr_req *r, poll_state *ps)
{
    kr_conn *c = r->conn;
    struct evbuffer *buf = evbuffer_new();
    uint64_t next = ps->next;
    if (buf == NULL) {
        kr_req_error(r, KRAPPY_E_STORAGE, "out of memory building a reply", NULL);
        return;
    }
    evbuffer_set_flags(buf, EVBUFFER_FLAG_DRAINS_TO_FD);
    kr_buf_reset(&c->enc);
    kr_enc_events_begin(&c->enc, r->cid, (size_t)ps->count);
    evbuffer_add(buf, c->enc.data, c->enc.len);
    evbuffer_add_buffer(buf, ps->events);
    kr_buf_reset(&c->enc);
    kr_enc_events_end(&c->enc, next);
    evbuffer_add(buf, c->enc.data, c->enc.len);
    kr_req_reply_evbuffer(r, KRAPPY_T_EVENTS, buf);
    evbuffer_free(buf);
}

static void poll_finish(poll_state *ps)
{
    if (ps->events != NULL)
        evbuffer_free(ps->events);
    free(ps);
}

static void poll_persisted(void *arg, const kr_store_result *res)
{
    poll_state *ps = arg;
    kr_req *r = ps->r;
    r->ctx = NULL;
    if (res->err != KRAPPY_OK)
        kr_req_error(r, res->err, res->msg, NULL);
    else
        poll_send(r, ps);
    poll_finish(ps);
}

static void poll_woken(kr_waiter *w, bool timed_out);

static void poll_cancel(kr_req *r, krappy_err code)
{
    poll_state *ps = r->ctx;
    kr_conn *c = r->conn;
    kr_store_unpark(store_of(c), &ps->w);
    c->parked--;
    r->ctx = NULL;
    poll_finish(ps);
    if (code == KRAPPY_OK)
        kr_req_silent(r);
    else if (code == KRAPPY_E_NOT_REGISTERED)
        kr_req_error(r, code, "another connection took over this member; register again to poll",
                     NULL);
    else
        kr_req_error(r, code, "the server is shutting down; reconnect in a moment", NULL);
}

/*
 * Hand out what there is. Returns KR_H_DONE when the request was answered
 * now, KR_H_ASYNC when it waits (parked, or for its auto-ack cursor).
 */
static kr_hresult poll_try(kr_conn *c, kr_req *r, poll_state *ps)
{
    kr_member *m = c->consumer;
    kr_tgroup *tg = c->consumer_group;
    if (m == NULL) {
        poll_finish(ps);
        kr_req_error(r, KRAPPY_E_NOT_REGISTERED,
                     "POLL needs a CONSUMER_REGISTER on this "
                     "connection first",
                     NULL);
        return KR_H_DONE;
    }
    uint64_t before = kr_store_group_cursor(tg);
    krappy_err rc = kr_store_poll(store_of(c), tg, m, ps->max, ps->max_bytes, ps->events,
                                  &ps->count, c->errmsg, sizeof c->errmsg);
    if (rc != KRAPPY_OK) {
        poll_finish(ps);
        kr_req_error(r, rc, c->errmsg, NULL);
        return KR_H_DONE;
    }
    ps->next = kr_store_group_frontier(tg);
    uint64_t now = kr_mono_ms();
    if (ps->count == 0 && now < ps->deadline_ms) {
        ps->w.topic = tg->t;
        ps->w.offset = 0;
        ps->w.wake = poll_woken;
        if (kr_store_park_group(store_of(c), tg, &ps->w, ps->deadline_ms - now) < 0) {
            poll_finish(ps);
            kr_req_error(r, KRAPPY_E_STORAGE, "out of memory parking a POLL", NULL);
            return KR_H_DONE;
        }
        r->ctx = ps;
        r->cancel = poll_cancel;
        c->parked++;
        return KR_H_ASYNC;
    }
    bool moved = kr_store_group_cursor(tg) != before;
    if (m->auto_ack && moved) {
        /* At-most-once: the cursor is durable before the events go out. */
        kr_store_result res;
        r->ctx = ps;
        if (kr_store_group_persist(store_of(c), tg, poll_persisted, ps, &res) == 0)
            return KR_H_ASYNC;
        r->ctx = NULL;
        poll_finish(ps);
        kr_req_error(r, res.err, res.msg, NULL);
        return KR_H_DONE;
    }
    if (moved)
        kr_store_wake_group(store_of(c), tg);
    poll_send(r, ps);
    poll_finish(ps);
    return KR_H_DONE;
}

static void poll_woken(kr_waiter *w, bool timed_out)
{
    poll_state *ps = (poll_state *)w;
    kr_req *r = ps->r;
    kr_conn *c = r->conn;
    (void)timed_out;
    r->cancel = NULL;
    r->ctx = NULL;
    c->parked--;
    if (w->gone) {
        poll_finish(ps);
        kr_req_error(r, KRAPPY_E_NOT_REGISTERED,
                     "this consumer's group was deleted (GROUP_DELETE or DELETE_TOPIC); register "
                     "again to poll",
                     NULL);
        return;
    }
    (void)poll_try(c, r, ps); /* answers, parks again, or waits for its cursor */
}

static kr_hresult poll(kr_conn *c, kr_req *r, const kr_request *req)
{
    if (c->consumer == NULL) {
        kr_req_error(r, KRAPPY_E_NOT_REGISTERED,
                     "POLL needs a CONSUMER_REGISTER on this connection first", NULL);
        return KR_H_DONE;
    }
    poll_state *ps = calloc(1, sizeof *ps);
    if (ps != NULL)
        ps->events = evbuffer_new();
    if (ps == NULL || ps->events == NULL) {
        free(ps);
        kr_req_error(r, KRAPPY_E_STORAGE, "out of memory polling", NULL);
        return KR_H_DONE;
    }
    evbuffer_set_flags(ps->events, EVBUFFER_FLAG_DRAINS_TO_FD);
    ps->r = r;
    ps->max = req->u.poll.max;
    ps->max_bytes = req->u.poll.max_bytes;
    ps->deadline_ms = kr_mono_ms() + req->u.poll.wait_ms;
    kr_req_async(r);
    if (poll_try(c, r, ps) == KR_H_DONE) {
        /* Answered at once: the async reference was dropped by the reply. */
    }
    return KR_H_ASYNC;
}

typedef struct acked_ctx {
    uint64_t *ignored;
    size_t n_ignored;
} acked_ctx;

static void acked(void *arg, const kr_store_result *res)
{
    kr_req *r = arg;
    kr_conn *c = r->conn;
    acked_ctx *a = r->ctx;
    r->ctx = NULL;
    if (res->err != KRAPPY_OK) {
        free(a->ignored);
        free(a);
        kr_req_error(r, res->err, res->msg, NULL);
        return;
    }
    kr_buf_reset(&c->enc);
    kr_enc_ok_ack(&c->enc, r->cid, res->first, a->ignored, a->n_ignored);
    free(a->ignored);
    free(a);
    kr_req_reply(r, KRAPPY_T_OK, c->enc.data, c->enc.len);
}

/*
 * ACK: applied to the window at once (so a POLL after it sees it), then
 * answered once the group's cursor survives kill -9 - always through the
 * writer, in order after every earlier write of the connection.
 */
static kr_hresult ack(kr_conn *c, kr_req *r, const kr_request *req)
{
    kr_member *m = c->consumer;
    kr_tgroup *tg = c->consumer_group;
    if (m == NULL) {
        kr_req_error(r, KRAPPY_E_NOT_REGISTERED,
                     "ACK needs a CONSUMER_REGISTER on this connection first", NULL);
        return KR_H_DONE;
    }
    kr_ack_result res;
    if (req->u.ack.has_upto) {
        kr_store_group_ack_upto(store_of(c), tg, m, req->u.ack.upto, &res);
    } else {
        size_t n = (size_t)req->u.ack.n_offsets;
        uint64_t *offs = malloc((n ? n : 1) * sizeof *offs);
        if (offs == NULL) {
            kr_req_error(r, KRAPPY_E_STORAGE, "out of memory reading the offsets", NULL);
            return KR_H_DONE;
        }
        kr_cbor_iter it;
        kr_cbor_item o;
        size_t k = 0;
        kr_cbor_iter_init(&it, &req->u.ack.offsets);
        while (k < n && kr_cbor_iter_next(&it, &o) == 1)
            offs[k++] = o.u;
        kr_store_group_ack_offsets(store_of(c), tg, offs, k, &res);
        free(offs);
    }
    if (res.err != KRAPPY_OK) {
        free(res.ignored);
        size_t glen;
        const char *gname = kr_store_group_name(tg, &glen);
        if (res.err == KRAPPY_E_INVALID_ARGUMENT)
            snprintf(c->errmsg, sizeof c->errmsg,
                     "offset %llu was never handed out to group '%.*s'; nothing of this ACK was "
                     "applied",
                     (unsigned long long)res.bad_offset, (int)glen, gname);
        else
            snprintf(c->errmsg, sizeof c->errmsg, "out of memory applying the ACK");
        kr_req_error(r, res.err, c->errmsg, NULL);
        return KR_H_DONE;
    }
    acked_ctx *a = calloc(1, sizeof *a);
    if (a == NULL) {
        free(res.ignored);
        kr_req_error(r, KRAPPY_E_STORAGE, "out of memory applying the ACK", NULL);
        return KR_H_DONE;
    }
    a->ignored = res.ignored;
    a->n_ignored = res.n_ignored;
    r->ctx = a;
    kr_req_async(r);
    kr_store_result sr;
    if (kr_store_group_persist(store_of(c), tg, acked, r, &sr) < 0) {
        r->ctx = NULL;
        free(a->ignored);
        free(a);
        kr_req_error(r, sr.err, sr.msg, NULL);
    }
    return KR_H_ASYNC;
}

/* ---- TOPICS, STATS ---- */

static kr_hresult topics(kr_conn *c, kr_req *r, const kr_request *req)
{
    (void)req;
    kr_topic **all;
    size_t n = kr_store_topics(store_of(c), &all), live = 0;
    for (size_t i = 0; i < n; i++)
        live += all[i]->ready && !all[i]->failed;
    kr_buf_reset(&c->enc);
    kr_enc_ok_topics_begin(&c->enc, r->cid, live);
    for (size_t i = 0; i < n; i++) {
        if (!all[i]->ready || all[i]->failed)
            continue;
        kr_str name = topic_str(all[i]);
        kr_enc_topic(&c->enc, &name, all[i]->first, all[i]->next, &all[i]->cfg);
    }
    if (c->enc.failed) {
        /* Not a storage failure: the list outgrew the reply. */
        snprintf(c->errmsg, sizeof c->errmsg,
                 "the %zu topics do not fit in one reply within this server's max_frame of %u "
                 "bytes; restart krappyd with a larger --max-frame to list them",
                 live, c->srv->cfg->max_frame);
        kr_req_error(r, KRAPPY_E_INVALID_ARGUMENT, c->errmsg, NULL);
        return KR_H_DONE;
    }
    kr_req_reply(r, KRAPPY_T_OK, c->enc.data, c->enc.len);
    return KR_H_DONE;
}

static void put_group(void *arg, const kr_group_row *g)
{
    kr_str name = {(const uint8_t *)g->name, g->name_len};
    kr_enc_group_stats_kind(arg, &name, g->cursor, g->pending, g->lag, g->members,
                            g->kafka ? "kafka" : NULL);
}

/* STATS: the topic, and its groups of both kinds (group_rows.h). */
static kr_hresult stats(kr_conn *c, kr_req *r, const kr_request *req)
{
    kr_topic *t = need_topic(c, r, &req->u.stats.topic);
    if (t == NULL)
        return KR_H_DONE;
    const uint8_t *only = req->u.stats.has_group ? req->u.stats.group.ptr : NULL;
    size_t only_len = req->u.stats.has_group ? req->u.stats.group.len : 0;
    size_t n = kr_group_rows(c->srv, t, only, only_len, NULL, NULL);
    if (only != NULL && n == 0) {
        snprintf(c->errmsg, sizeof c->errmsg, "topic '%s' has no group '%.*s'", t->name,
                 (int)only_len, (const char *)only);
        kr_req_error(r, KRAPPY_E_NOT_FOUND, c->errmsg, NULL);
        return KR_H_DONE;
    }
    kr_str name = topic_str(t);
    kr_buf_reset(&c->enc);
    kr_compact_stats cs;
    kr_compact_topic_stats(t, &cs);
    kr_stats_more more = {.cfg = &t->cfg,
                          .has_compaction = (t->cfg.v[KR_TC_CLEANUP] & KR_CLEANUP_COMPACT) != 0 ||
                                            cs.segments_rewritten > 0,
                          .dirty_bytes = cs.dirty_bytes,
                          .reclaimed_bytes = cs.reclaimed_bytes,
                          .segments_rewritten = cs.segments_rewritten,
                          .events_removed = cs.events_removed,
                          .ms = cs.ns / 1000000};
    kr_enc_ok_stats_begin_more(&c->enc, r->cid, &name, t->first, t->next, kr_topic_bytes(t),
                               kr_topic_keys(t), kr_topic_producers(t), &more, n);
    kr_group_rows(c->srv, t, only, only_len, put_group, &c->enc);
    if (c->enc.failed) {
        snprintf(c->errmsg, sizeof c->errmsg,
                 "the %zu groups of topic '%s' do not fit in one reply within this server's "
                 "max_frame of %u bytes; ask for one with `group`",
                 n, t->name, c->srv->cfg->max_frame);
        kr_req_error(r, KRAPPY_E_INVALID_ARGUMENT, c->errmsg, NULL);
        return KR_H_DONE;
    }
    kr_req_reply(r, KRAPPY_T_OK, c->enc.data, c->enc.len);
    return KR_H_DONE;
}

/* ---- administration: DELETE_TOPIC, GROUP_SEEK, GROUP_DELETE ---- */

/* The group a request names, or NOT_FOUND (after NO_SUCH_TOPIC). */
static kr_tgroup *need_group(kr_conn *c, kr_req *r, const kr_str *topic, const kr_str *group)
{
    kr_topic *t = need_topic(c, r, topic);
    if (t == NULL)
        return NULL;
    kr_tgroup *tg = kr_store_group(t, group->ptr, group->len);
    if (tg == NULL) {
        snprintf(c->errmsg, sizeof c->errmsg, "topic '%s' has no group '%.*s'", t->name,
                 (int)group->len, (const char *)group->ptr);
        kr_req_error(r, KRAPPY_E_NOT_FOUND, c->errmsg, NULL);
    }
    return tg;
}

static void topic_deleted(void *arg, const kr_store_result *res)
{
    kr_req *r = arg;
    kr_conn *c = r->conn;
    kr_str *name = r->ctx;
    r->ctx = NULL;
    if (res->err != KRAPPY_OK) {
        free(name);
        kr_req_error(r, res->err, res->msg, NULL);
        return;
    }
    kr_buf_reset(&c->enc);
    kr_enc_ok_topic(&c->enc, r->cid, name);
    free(name);
    kr_req_reply(r, KRAPPY_T_OK, c->enc.data, c->enc.len);
}

/* The topic's name outlives the topic (freed before `done` runs): kept in
 * the request's context, the bytes right after the kr_str. */
static kr_str *name_copy(const kr_topic *t)
{
    kr_str *s = malloc(sizeof *s + t->name_len);
    if (s != NULL) {
        memcpy(s + 1, t->name, t->name_len);
        s->ptr = (const uint8_t *)(s + 1);
        s->len = t->name_len;
    }
    return s;
}

static kr_hresult delete_topic(kr_conn *c, kr_req *r, const kr_request *req)
{
    kr_topic *t = need_topic(c, r, &req->u.delete_topic.topic);
    if (t == NULL)
        return KR_H_DONE;
    kr_str *name = name_copy(t);
    if (name == NULL) {
        kr_req_error(r, KRAPPY_E_STORAGE, "out of memory deleting the topic; nothing was deleted",
                     NULL);
        return KR_H_DONE;
    }
    r->ctx = name;
    kr_req_async(r);
    krappy_err e = kr_ops_delete_topic(c->srv, t, topic_deleted, r, c->errmsg, sizeof c->errmsg);
    if (e != KRAPPY_OK) {
        r->ctx = NULL;
        free(name);
        kr_req_error(r, e, c->errmsg, NULL);
    }
    return KR_H_ASYNC;
}

/* GROUP_SEEK's and GROUP_DELETE's completion: OK {cursor} or OK {}. */
static void group_changed(void *arg, const kr_store_result *res)
{
    kr_req *r = arg;
    kr_conn *c = r->conn;
    if (res->err != KRAPPY_OK) {
        kr_req_error(r, res->err, res->msg, NULL);
        return;
    }
    kr_buf_reset(&c->enc);
    if (r->type == KRAPPY_T_GROUP_SEEK)
        kr_enc_ok_cursor(&c->enc, r->cid, res->first);
    else
        kr_enc_ok_empty(&c->enc, r->cid);
    kr_req_reply(r, KRAPPY_T_OK, c->enc.data, c->enc.len);
}

static kr_hresult group_seek(kr_conn *c, kr_req *r, const kr_request *req)
{
    const typeof(req->u.group_seek) *q = &req->u.group_seek;
    kr_tgroup *tg = need_group(c, r, &q->topic, &q->group);
    if (tg == NULL)
        return KR_H_DONE;
    kr_topic *t = tg->t;
    kr_req_async(r);
    krappy_err e = kr_store_group_seek(store_of(c), tg, q->to, q->value, group_changed, r,
                                       c->errmsg, sizeof c->errmsg);
    if (e != KRAPPY_OK) {
        kr_error_extra extra = {
            .has_range = e == KRAPPY_E_OFFSET_OUT_OF_RANGE, .first = t->first, .next = t->next};
        kr_req_error(r, e, c->errmsg, &extra);
    }
    return KR_H_ASYNC;
}

static kr_hresult group_delete(kr_conn *c, kr_req *r, const kr_request *req)
{
    const typeof(req->u.group_delete) *q = &req->u.group_delete;
    kr_tgroup *tg = need_group(c, r, &q->topic, &q->group);
    if (tg == NULL)
        return KR_H_DONE;
    kr_req_async(r);
    krappy_err e = kr_ops_group_delete(c->srv, tg, group_changed, r, c->errmsg, sizeof c->errmsg);
    if (e != KRAPPY_OK)
        kr_req_error(r, e, c->errmsg, NULL);
    return KR_H_ASYNC;
}

/* ---- TOPIC_CONFIG ---- */

/* OK {topic, config}: the topic's settings now. */
static void reply_config(kr_conn *c, kr_req *r, const kr_topic *t)
{
    kr_str name = topic_str(t);
    kr_buf_reset(&c->enc);
    kr_enc_ok_topic_config(&c->enc, r->cid, &name, &t->cfg);
    kr_req_reply(r, KRAPPY_T_OK, c->enc.data, c->enc.len);
}

/* A change is durable: answer with the settings of the topic of that name
 * (the request's context holds the name: see name_copy). */
static void config_written(void *arg, const kr_store_result *res)
{
    kr_req *r = arg;
    kr_conn *c = r->conn;
    kr_str *name = r->ctx;
    r->ctx = NULL;
    kr_topic *t = res->err == KRAPPY_OK ? kr_store_topic(store_of(c), name->ptr, name->len) : NULL;
    free(name);
    if (res->err != KRAPPY_OK)
        kr_req_error(r, res->err, res->msg, NULL);
    else if (t == NULL)
        kr_req_error(r, KRAPPY_E_NO_SUCH_TOPIC,
                     "the topic was deleted while its settings were being written", NULL);
    else
        reply_config(c, r, t);
}

static kr_hresult topic_config(kr_conn *c, kr_req *r, const kr_request *req)
{
    const typeof(req->u.topic_config) *q = &req->u.topic_config;
    if (!q->has_set) {
        kr_topic *t = need_topic(c, r, &q->topic);
        if (t != NULL)
            reply_config(c, r, t);
        return KR_H_DONE;
    }
    kr_str *name = malloc(sizeof *name + q->topic.len);
    if (name == NULL) {
        kr_req_error(r, KRAPPY_E_STORAGE, "out of memory changing topic settings; nothing changed",
                     NULL);
        return KR_H_DONE;
    }
    memcpy(name + 1, q->topic.ptr, q->topic.len);
    *name = (kr_str){(const uint8_t *)(name + 1), q->topic.len};
    r->ctx = name;
    kr_req_async(r);
    kr_topic *t;
    krappy_err e = kr_ops_topic_configure(c->srv, q->topic.ptr, q->topic.len, &q->set, &t,
                                          config_written, r, c->errmsg, sizeof c->errmsg);
    if (e != KRAPPY_OK) {
        r->ctx = NULL;
        free(name);
        kr_req_error(r, e, c->errmsg, NULL);
    }
    return KR_H_ASYNC;
}

static const kr_handler handlers[KRAPPY_T_REQUEST_MAX + 1] = {
    [KRAPPY_T_PRODUCER_REGISTER] = {"PRODUCER_REGISTER", true, producer_register},
    [KRAPPY_T_CONSUMER_REGISTER] = {"CONSUMER_REGISTER", true, consumer_register},
    [KRAPPY_T_PUBLISH] = {"PUBLISH", true, publish},
    [KRAPPY_T_POLL] = {"POLL", false, poll},
    [KRAPPY_T_ACK] = {"ACK", true, ack},
    [KRAPPY_T_GET] = {"GET", false, get},
    [KRAPPY_T_SCAN] = {"SCAN", false, scan},
    [KRAPPY_T_FETCH] = {"FETCH", false, fetch},
    [KRAPPY_T_HELLO] = {"HELLO", false, hello},
    [KRAPPY_T_PING] = {"PING", false, ping},
    [KRAPPY_T_TOPICS] = {"TOPICS", false, topics},
    [KRAPPY_T_STATS] = {"STATS", false, stats},
    [KRAPPY_T_CLUSTER] = {"CLUSTER", false, kr_handle_cluster},
    [KRAPPY_T_DELETE_TOPIC] = {"DELETE_TOPIC", true, delete_topic},
    [KRAPPY_T_GROUP_SEEK] = {"GROUP_SEEK", true, group_seek},
    [KRAPPY_T_GROUP_DELETE] = {"GROUP_DELETE", true, group_delete},
    [KRAPPY_T_TOPIC_CONFIG] = {"TOPIC_CONFIG", true, topic_config},
};

const kr_handler *kr_handler_for(uint32_t type)
{
    if (type >= sizeof handlers / sizeof handlers[0] || handlers[type].run == NULL)
        return NULL;
    return &handlers[type];
}
