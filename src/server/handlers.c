/*
 * server/handlers.c - one function per request type (consumer groups'
 * in handlers_group.c).
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

kr_topic *kr_need_topic(kr_conn *c, kr_req *r, const kr_str *name)
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

bool kr_publish_topic_gone(kr_conn *c, kr_req *r)
{
    if (!c->producer_gone)
        return false;
    kr_req_error(r, KRAPPY_E_NO_SUCH_TOPIC,
                 "the topic this connection registered to produce to was deleted; register "
                 "again (PRODUCER_REGISTER) to create it anew",
                 NULL);
    return true;
}

static kr_hresult publish(kr_conn *c, kr_req *r, const kr_request *req)
{
    if (c->srv->cluster != NULL)
        return kr_server_cluster_publish(c, r, req);
    if (kr_publish_lacks_seq(c, r, req))
        return KR_H_DONE;
    if (kr_publish_topic_gone(c, r))
        return KR_H_DONE;
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
    kr_topic *t = kr_need_topic(c, r, &req->u.fetch.topic);
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
    kr_topic *t = kr_need_topic(c, r, &req->u.get.topic);
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
    kr_event_view v;
    if (kr_event_view_parse(c->tmp.data, c->tmp.len, &v) < 0) {
        kr_req_error(r, KRAPPY_E_STORAGE, "the stored value is damaged", NULL);
        return KR_H_DONE;
    }
    kr_str k = {v.key.raw, v.key.raw_len}, val = {v.value.raw, v.value.raw_len},
           h = {v.headers.raw, v.headers.raw_len};
    kr_buf_reset(&c->enc);
    kr_enc_value(&c->enc, r->cid, &k, v.offset, v.ts, &val, v.has_headers ? &h : NULL);
    if (c->enc.failed) {
        kr_req_error(r, KRAPPY_E_STORAGE, "out of memory encoding the value", NULL);
        return KR_H_DONE;
    }
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
    kr_topic *t = kr_need_topic(c, r, &req->u.scan.topic);
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

void kr_handlers_conn_closed(kr_conn *c)
{
    if (c->srv->store != NULL) {
        kr_consumer_drop(c);
        producer_drop(c);
    }
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
    kr_topic *t = kr_need_topic(c, r, &req->u.stats.topic);
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

/* ---- DELETE_TOPIC ---- */

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
    kr_topic *t = kr_need_topic(c, r, &req->u.delete_topic.topic);
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
        kr_topic *t = kr_need_topic(c, r, &q->topic);
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
    [KRAPPY_T_CONSUMER_REGISTER] = {"CONSUMER_REGISTER", true, kr_handle_consumer_register},
    [KRAPPY_T_PUBLISH] = {"PUBLISH", true, publish},
    [KRAPPY_T_POLL] = {"POLL", false, kr_handle_poll},
    [KRAPPY_T_ACK] = {"ACK", true, kr_handle_ack},
    [KRAPPY_T_GET] = {"GET", false, get},
    [KRAPPY_T_SCAN] = {"SCAN", false, scan},
    [KRAPPY_T_FETCH] = {"FETCH", false, fetch},
    [KRAPPY_T_HELLO] = {"HELLO", false, hello},
    [KRAPPY_T_PING] = {"PING", false, ping},
    [KRAPPY_T_TOPICS] = {"TOPICS", false, topics},
    [KRAPPY_T_STATS] = {"STATS", false, stats},
    [KRAPPY_T_CLUSTER] = {"CLUSTER", false, kr_handle_cluster},
    [KRAPPY_T_DELETE_TOPIC] = {"DELETE_TOPIC", true, delete_topic},
    [KRAPPY_T_GROUP_SEEK] = {"GROUP_SEEK", true, kr_handle_group_seek},
    [KRAPPY_T_GROUP_DELETE] = {"GROUP_DELETE", true, kr_handle_group_delete},
    [KRAPPY_T_TOPIC_CONFIG] = {"TOPIC_CONFIG", true, topic_config},
};

const kr_handler *kr_handler_for(uint32_t type)
{
    if (type >= sizeof handlers / sizeof handlers[0] || handlers[type].run == NULL)
        return NULL;
    return &handlers[type];
}
