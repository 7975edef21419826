/*
 * server/handlers_group.c - the data port's consumer groups (PROTOCOL.md
 * section 4, and GROUP_SEEK and GROUP_DELETE of section 9): CONSUMER_REGISTER,
 * POLL, ACK on the store's groups. On a cluster (section 8) they run on the
 * leader, and what must survive it - a new group, a cursor an ACK or an
 * auto-ack POLL moved, a seek, a deletion - goes through the log first
 * (cluster_groups.c); the rest (members, hand-outs) is the same code as a
 * single node's.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <event2/buffer.h>

#include "proto/cbor.h"
#include "server/server.h"
#include "util/clock.h"

static kr_store *store_of(kr_conn *c)
{
    return c->srv->store;
}

static kr_str topic_str(const kr_topic *t)
{
    return (kr_str){(const uint8_t *)t->name, t->name_len};
}

/* ---- CONSUMER_REGISTER ---- */

void kr_consumer_drop(kr_conn *c)
{
    if (c->consumer == NULL)
        return;
    kr_store_group_leave(store_of(c), c->consumer_group, c->consumer);
    c->consumer = NULL;
    c->consumer_group = NULL;
}

void kr_consumer_bind(kr_conn *c, kr_tgroup *tg, kr_member *m, void *taken)
{
    if (taken == c) { /* its own member of that name, taken over: gone already */
        c->consumer = NULL;
        c->consumer_group = NULL;
    } else if (taken != NULL) {
        kr_conn *old = taken;
        old->consumer = NULL;
        old->consumer_group = NULL;
        kr_conn_cancel_parked(old, KRAPPY_E_NOT_REGISTERED);
    }
    kr_consumer_drop(c); /* one registered while this one waited for the log */
    c->consumer = m;
    c->consumer_group = tg;
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
        kr_server_write_error(r, res);
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
kr_hresult kr_handle_consumer_register(kr_conn *c, kr_req *r, const kr_request *req)
{
    const typeof(req->u.consumer_register) *q = &req->u.consumer_register;
    kr_topic *t = kr_need_topic(c, r, &q->topic);
    if (t == NULL)
        return KR_H_DONE;
    if (c->srv->cluster != NULL)
        return kr_server_cluster_join(c, r, req, t);
    joined_ctx *j = calloc(1, sizeof *j);
    if (j == NULL) {
        kr_req_error(r, KRAPPY_E_STORAGE, "out of memory registering a consumer", NULL);
        return KR_H_DONE;
    }
    kr_consumer_drop(c);
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
    kr_consumer_bind(c, tg, m, taken);
    return KR_H_ASYNC;
}

/* ---- POLL, ACK ---- */

/* tg's cursor made durable - on a cluster, committed through the log -
 * then done(arg, res). @return 0, or -1 with res filled (no done). */
static int cursor_commit(kr_conn *c, kr_tgroup *tg, kr_store_done done, void *arg,
                         kr_store_result *res)
{
    if (c->srv->cluster == NULL)
        return kr_store_group_persist(store_of(c), tg, done, arg, res);
    kr_server_cluster_cursor(c->srv, tg, done, arg);
    return 0;
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
        kr_server_write_error(r, res);
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
        if (cursor_commit(c, tg, poll_persisted, ps, &res) == 0)
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

kr_hresult kr_handle_poll(kr_conn *c, kr_req *r, const kr_request *req)
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
        kr_server_write_error(r, res);
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
kr_hresult kr_handle_ack(kr_conn *c, kr_req *r, const kr_request *req)
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
    if (cursor_commit(c, tg, acked, r, &sr) < 0) {
        r->ctx = NULL;
        free(a->ignored);
        free(a);
        kr_req_error(r, sr.err, sr.msg, NULL);
    }
    return KR_H_ASYNC;
}

/* ---- GROUP_SEEK, GROUP_DELETE ---- */

/* The group a request names, or NOT_FOUND (after NO_SUCH_TOPIC). */
static kr_tgroup *need_group(kr_conn *c, kr_req *r, const kr_str *topic, const kr_str *group)
{
    kr_topic *t = kr_need_topic(c, r, topic);
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

/* GROUP_SEEK's and GROUP_DELETE's completion: OK {cursor} or OK {}. */
static void group_changed(void *arg, const kr_store_result *res)
{
    kr_req *r = arg;
    kr_conn *c = r->conn;
    if (res->err != KRAPPY_OK) {
        kr_server_write_error(r, res);
        return;
    }
    kr_buf_reset(&c->enc);
    if (r->type == KRAPPY_T_GROUP_SEEK)
        kr_enc_ok_cursor(&c->enc, r->cid, res->first);
    else
        kr_enc_ok_empty(&c->enc, r->cid);
    kr_req_reply(r, KRAPPY_T_OK, c->enc.data, c->enc.len);
}

kr_hresult kr_handle_group_seek(kr_conn *c, kr_req *r, const kr_request *req)
{
    const typeof(req->u.group_seek) *q = &req->u.group_seek;
    kr_tgroup *tg = need_group(c, r, &q->topic, &q->group);
    if (tg == NULL)
        return KR_H_DONE;
    kr_topic *t = tg->t;
    kr_req_async(r);
    krappy_err e = kr_ops_group_seek(c->srv, tg, q->to, q->value, group_changed, r, c->errmsg,
                                     sizeof c->errmsg);
    if (e != KRAPPY_OK) {
        kr_error_extra extra = {
            .has_range = e == KRAPPY_E_OFFSET_OUT_OF_RANGE, .first = t->first, .next = t->next};
        kr_req_error(r, e, c->errmsg, &extra);
    }
    return KR_H_ASYNC;
}

kr_hresult kr_handle_group_delete(kr_conn *c, kr_req *r, const kr_request *req)
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
