/*
 * client/call.c - one request, one reply: krappy_call, HELLO (which learns
 * the server's max_frame), PING, and what the typed requests share to send
 * the request built in c->enc and judge its reply, alone or pipelined
 * (POLL and ACK, through the replies-due ring).
 */
#include "krappy/client.h"

#include <limits.h>
#include <stdio.h>
#include <string.h>

#include "client/client_internal.h"
#include "proto/cbor.h"
#include "proto/msg.h"

/* A timeout extended by extra_ms (long polls), clamped; negative = none. */
static int extend_timeout(int timeout_ms, uint64_t extra_ms)
{
    if (timeout_ms < 0)
        return -1;
    uint64_t t = (uint64_t)timeout_ms + extra_ms;
    return t > INT_MAX ? INT_MAX : (int)t;
}

/* Send one request and receive its reply (an ERROR is returned as a frame
 * like any other), the timeout extended by extra_ms; errors not cleared. */
static krappy_err call_raw(krappy_client *c, uint32_t type, const void *payload, size_t len,
                           krappy_frame *reply, uint64_t extra_ms)
{
    krappy_err e;
    int timeout_ms = extend_timeout(c->timeout_ms, extra_ms);
    int64_t deadline = kr_client_deadline_after(timeout_ms);
    size_t before = c->in_flight;

    if ((e = kr_client_send_frame(c, type, payload, len, deadline, -1)) != KRAPPY_OK)
        return e;
    if (c->in_flight == before) {
        /* No reply will come (PUBLISH with ack "none"): make sure it left. */
        reply->type = 0;
        reply->payload = NULL;
        reply->len = 0;
        return kr_client_flush(c, deadline, timeout_ms);
    }
    return kr_client_recv_frame(c, reply, deadline, timeout_ms);
}

/* krappy_call with the timeout extended by extra_ms; errors not cleared. */
static krappy_err call_ext(krappy_client *c, uint32_t type, const void *payload, size_t len,
                           krappy_frame *reply, uint64_t extra_ms)
{
    krappy_err e = call_raw(c, type, payload, len, reply, extra_ms);
    if (e != KRAPPY_OK)
        return e;
    return krappy_reply_error(c, reply);
}

krappy_err krappy_call(krappy_client *c, uint32_t type, const void *payload, size_t len,
                       krappy_frame *reply)
{
    krappy_err e;

    if (c == NULL || reply == NULL)
        return c ? kr_client_fail(c, KRAPPY_E_USAGE, "krappy_call: reply is NULL") : KRAPPY_E_USAGE;
    kr_client_clear_error(c);
    if ((e = kr_client_check_no_pipeline(c, "krappy_call")) != KRAPPY_OK)
        return e;
    return call_ext(c, type, payload, len, reply, 0);
}

krappy_err krappy_hello(krappy_client *c, krappy_server_info *info)
{
    kr_buf b;
    krappy_frame f;
    kr_reply r;
    kr_cbor_item it;
    krappy_err e;
    uint64_t version = 0, max_frame = 0, max_events = 0;

    if (c == NULL)
        return KRAPPY_E_USAGE;
    kr_buf_init(&b, (size_t)c->send_max);
    kr_enc_hello(&b, (kr_cid){false, 0}, KRAPPY_PROTOCOL_VERSION, c->client_name, c->token);
    if (b.failed) {
        kr_buf_free(&b);
        kr_client_clear_error(c);
        return kr_client_fail(c, KRAPPY_E_NOMEM,
                              "cannot build the HELLO request (out of memory, or the "
                              "token and client name are too long)");
    }
    e = krappy_call(c, KRAPPY_T_HELLO, b.data, b.len, &f);
    kr_buf_free(&b);
    if (e != KRAPPY_OK)
        return e;

    if (f.type != KRAPPY_T_OK || kr_reply_decode(f.type, f.payload, f.len, &r) < 0 ||
        !kr_reply_uint(&r, "version", &version))
        return kr_client_fail_close(
            c, KRAPPY_E_PROTOCOL,
            "%s answered HELLO with something other than OK {version, ...}; is it "
            "really krappyd? connection closed",
            c->peer);
    if (version != KRAPPY_PROTOCOL_VERSION)
        return kr_client_fail_close(
            c, KRAPPY_E_PROTOCOL,
            "%s agreed to protocol version %llu, but this client speaks %d; "
            "connection closed",
            c->peer, (unsigned long long)version, KRAPPY_PROTOCOL_VERSION);
    kr_reply_uint(&r, "max_frame", &max_frame);
    kr_reply_uint(&r, "max_events", &max_events);

    if (max_frame >= KRAPPY_FRAME_MIN_SIZE) {
        uint32_t mf = max_frame > UINT32_MAX ? UINT32_MAX : (uint32_t)max_frame;
        c->send_max = mf;
        size_t out_max = (size_t)KR_CLIENT_OUT_HIGH_WATER + KRAPPY_FRAME_HEADER_BYTES + mf;
        if (out_max > c->out.max)
            c->out.max = out_max;
        if (mf > c->in.max_frame)
            c->in.max_frame = mf;
    }

    if (info != NULL) {
        memset(info, 0, sizeof *info);
        info->version = (uint32_t)version;
        info->max_frame = max_frame;
        info->max_events = max_events;
        if (kr_cbor_map_find(&r.map, "server", &it) == 1 && it.kind == KR_CBOR_TEXT) {
            uint8_t raw[sizeof info->server];
            size_t n = kr_cbor_str_copy(&it, raw, sizeof raw - 1);
            if (n > sizeof raw - 1)
                n = sizeof raw - 1;
            kr_client_sanitize(info->server, sizeof info->server, raw, n);
        }
    }
    return KRAPPY_OK;
}

krappy_err krappy_ping(krappy_client *c)
{
    krappy_frame f;
    krappy_err e;

    if (c == NULL)
        return KRAPPY_E_USAGE;
    if ((e = krappy_call(c, KRAPPY_T_PING, NULL, 0, &f)) != KRAPPY_OK)
        return e;
    if (f.type != KRAPPY_T_OK)
        return kr_client_fail_close(
            c, KRAPPY_E_PROTOCOL,
            "%s answered PING with a reply of type %u instead of OK; connection "
            "closed",
            c->peer, (unsigned)f.type);
    return KRAPPY_OK;
}

/* Start building a request in c->enc. */
kr_buf *kr_client_enc_begin(krappy_client *c)
{
    kr_buf_reset(&c->enc);
    return &c->enc;
}

/*
 * Judge the reply f to a typed `type` request, which should be of type
 * `want`, decoding its map into *r. Server errors come back as their code,
 * errmsg set by krappy_reply_error. The typed requests carry no cid, so an
 * ERROR with the cid of a batch sent with ack "none" is that batch's
 * refusal, arriving in place of our reply just before the server closes: it
 * is reported as such.
 */
static krappy_err judge_reply(krappy_client *c, uint32_t type, uint32_t want, krappy_frame *f,
                              kr_reply *r)
{
    char b1[24], b2[24];
    const char *name = krappy_type_name(type);

    if (f->type == KRAPPY_T_ERROR) {
        if (c->pub_seq > 0 && kr_reply_decode(f->type, f->payload, f->len, r) == 0 && r->cid.set &&
            r->cid.v >= 1 && r->cid.v <= c->pub_seq)
            return kr_publish_error(c, f, r, NULL);
        return krappy_reply_error(c, f);
    }
    if (f->type != want)
        return kr_client_fail_close(c, KRAPPY_E_PROTOCOL,
                                    "%s answered %s with %s instead of %s; connection closed",
                                    c->peer, name, kr_client_type_label(f->type, b1, sizeof b1),
                                    kr_client_type_label(want, b2, sizeof b2));
    if (kr_reply_decode(f->type, f->payload, f->len, r) < 0)
        return kr_client_bad_reply(c, name, "not a CBOR map with text keys");
    return KRAPPY_OK;
}

/* Send the request built in c->enc, wait for its reply (timeout extended by
 * extra_ms) and judge it (judge_reply). */
krappy_err kr_client_request(krappy_client *c, uint32_t type, uint32_t want, uint64_t extra_ms,
                             krappy_frame *f, kr_reply *r)
{
    krappy_err e;
    const char *name = krappy_type_name(type);

    f->type = 0;
    if (c->enc.failed)
        return kr_client_fail(c, KRAPPY_E_NOMEM, "out of memory building a %s request", name);
    if ((e = kr_client_check_no_pipeline(c, name)) != KRAPPY_OK)
        return e;
    if ((e = call_raw(c, type, c->enc.data, c->enc.len, f, extra_ms)) != KRAPPY_OK)
        return e;
    return judge_reply(c, type, want, f, r);
}

/* ---- pipelined typed requests (POLL, ACK) ---- */

/*
 * Each request that gets a reply has an ordinal on its connection (1, 2,
 * ...; n_asked counts them) and replies come in that order (n_answered
 * counts those returned), so a remembered request's reply is the next one
 * exactly when its ordinal is n_answered + 1. Entries whose replies were
 * taken some other way (krappy_recv) are stale and dropped.
 */
krappy_err kr_client_send_due(krappy_client *c, uint32_t type, uint64_t wait_ms)
{
    krappy_err e;
    const char *name = krappy_type_name(type);

    if (c->fd < 0)
        return kr_client_not_connected(c);
    if (c->enc.failed)
        return kr_client_fail(c, KRAPPY_E_NOMEM, "out of memory building a %s request", name);
    if (kr_ring_reserve(&c->due) < 0)
        return kr_client_fail(c, KRAPPY_E_NOMEM, "out of memory queueing a %s request", name);
    e = kr_client_send_frame(c, type, c->enc.data, c->enc.len,
                             kr_client_deadline_after(c->timeout_ms), 1);
    if (e != KRAPPY_OK)
        return e;
    kr_due *d = kr_ring_push(&c->due);
    d->ordinal = c->n_asked;
    d->type = type;
    d->wait_ms = wait_ms;
    return KRAPPY_OK;
}

krappy_err kr_client_recv_due(krappy_client *c, uint32_t type, uint32_t want, const char *fn,
                              krappy_frame *f, kr_reply *r)
{
    krappy_err e;
    const char *name = krappy_type_name(type);

    f->type = 0;
    const kr_due *d;
    while ((d = kr_ring_front(&c->due)) != NULL && d->ordinal <= c->n_answered)
        kr_ring_pop(&c->due);
    if (d == NULL) {
        if (c->fd < 0)
            return kr_client_not_connected(c);
        return kr_client_fail(c, KRAPPY_E_USAGE, "%s: no pipelined %s reply is due", fn, name);
    }
    if (d->type != type)
        return kr_client_fail(c, KRAPPY_E_USAGE,
                              "%s: the reply to an earlier %s request is due first; receive it "
                              "before this one",
                              fn, krappy_type_name(d->type));
    if (d->ordinal != c->n_answered + 1)
        return kr_client_fail(c, KRAPPY_E_USAGE,
                              "%s: %llu earlier repl%s (PUBLISH or krappy_send) must be received "
                              "first",
                              fn, (unsigned long long)(d->ordinal - c->n_answered - 1),
                              d->ordinal - c->n_answered - 1 == 1 ? "y" : "ies");
    int timeout_ms = extend_timeout(c->timeout_ms, d->wait_ms);
    kr_ring_pop(&c->due);
    if ((e = kr_client_recv_frame(c, f, kr_client_deadline_after(timeout_ms), timeout_ms)) !=
        KRAPPY_OK)
        return e;
    return judge_reply(c, type, want, f, r);
}
