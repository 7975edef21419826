/*
 * client/publish.c - libkrappy's writing side: batches (krappy_batch, built
 * without a connection) and PUBLISH, one at a time or pipelined.
 *
 * Each PUBLISH carries a sequence number of this connection as its cid;
 * those awaiting acknowledgement wait in a ring (c->pub_wait), oldest
 * first, since the server answers acknowledged batches in order. Batches
 * sent with ack "none" get no reply unless refused, and a refusal comes
 * with their cid where another reply was due: kr_publish_error says which
 * batch it was, for krappy_publish_recv, krappy_publish_confirm and
 * kr_client_request alike.
 */
#include "krappy/client.h"

#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "client/client_internal.h"
#include "proto/cbor.h"
#include "proto/msg.h"
#include "util/buf.h"
#include "util/utf8.h"

/* ======================================================================
 * Batches
 * ====================================================================== */

/* One event of a batch: offsets into the batch's data. */
typedef struct batch_event {
    krappy_key_type kt;
    bool tombstone; /* value null */
    bool has_ts;
    uint64_t ts;
    size_t key_off, key_len;
    size_t value_off, value_len; /* one encoded CBOR item */
    size_t hdr_off, hdr_len;     /* header pairs (text, bytes, ...), encoded */
    size_t n_hdr;
} batch_event;

struct krappy_batch {
    batch_event *ev;
    size_t n, cap;
    kr_buf data; /* keys, values and header pairs, in order */
    size_t size; /* upper bound of the payload: see krappy_batch_size */
    char errmsg[256];
};

/* The PUBLISH map around the events: {cid, ack, events: [...]}. */
#define KR_BATCH_OVERHEAD 48
/* Per event: the array head, key head, ts and headers map head. */
#define KR_EVENT_OVERHEAD 28

__attribute__((format(printf, 3, 4))) static krappy_err batch_fail(krappy_batch *b, krappy_err e,
                                                                   const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(b->errmsg, sizeof b->errmsg, fmt, ap);
    va_end(ap);
    return e;
}

krappy_batch *krappy_batch_new(void)
{
    krappy_batch *b = calloc(1, sizeof *b);
    if (b == NULL)
        return NULL;
    kr_buf_init(&b->data, KRAPPY_BATCH_MAX_BYTES);
    b->size = KR_BATCH_OVERHEAD;
    return b;
}

void krappy_batch_free(krappy_batch *b)
{
    if (b == NULL)
        return;
    kr_buf_free(&b->data);
    free(b->ev);
    free(b);
}

void krappy_batch_reset(krappy_batch *b)
{
    if (b == NULL)
        return;
    b->n = 0;
    kr_buf_reset(&b->data);
    b->size = KR_BATCH_OVERHEAD;
    b->errmsg[0] = '\0';
}

size_t krappy_batch_count(const krappy_batch *b)
{
    return b != NULL ? b->n : 0;
}

size_t krappy_batch_size(const krappy_batch *b)
{
    return b != NULL ? b->size : 0;
}

const char *krappy_batch_errmsg(const krappy_batch *b)
{
    return b != NULL ? b->errmsg : "no batch (NULL)";
}

/* Room for `more` bytes of data: KRAPPY_E_USAGE past the cap, NOMEM. */
static krappy_err batch_room(krappy_batch *b, size_t more)
{
    if (more > b->data.max - b->data.len)
        return batch_fail(b, KRAPPY_E_USAGE,
                          "the batch would exceed %zu bytes; publish it and start another",
                          (size_t)KRAPPY_BATCH_MAX_BYTES);
    if (kr_buf_reserve(&b->data, more) < 0) {
        b->data.failed = false;
        return batch_fail(b, KRAPPY_E_NOMEM, "out of memory adding %zu bytes to a batch", more);
    }
    return KRAPPY_OK;
}

/* How a value is given to batch_add. */
typedef enum value_form { V_RAW, V_TEXT, V_BYTES } value_form;

static krappy_err batch_add(krappy_batch *b, krappy_key_type kt, const void *key, size_t key_len,
                            value_form vf, const void *value, size_t value_len)
{
    krappy_err e;
    kr_cbor_item item;

    if (b == NULL)
        return KRAPPY_E_USAGE;
    b->errmsg[0] = '\0';
    if (kt != KRAPPY_KEY_NONE && kt != KRAPPY_KEY_BYTES && kt != KRAPPY_KEY_TEXT)
        return batch_fail(b, KRAPPY_E_USAGE, "unknown key type %d", (int)kt);
    if (kt == KRAPPY_KEY_NONE)
        key_len = 0;
    else if (key == NULL && key_len > 0)
        return batch_fail(b, KRAPPY_E_USAGE, "the key is NULL but its length is %zu", key_len);
    if (key_len > KRAPPY_MAX_KEY_BYTES)
        return batch_fail(b, KRAPPY_E_USAGE, "the key has %zu bytes; keys have at most %u", key_len,
                          (unsigned)KRAPPY_MAX_KEY_BYTES);
    if (kt == KRAPPY_KEY_TEXT && !kr_utf8_valid(key, key_len))
        return batch_fail(b, KRAPPY_E_USAGE,
                          "the text key is not valid UTF-8; give it as KRAPPY_KEY_BYTES");
    if (value == NULL && value_len > 0)
        return batch_fail(b, KRAPPY_E_USAGE, "the value is NULL but its length is %zu", value_len);
    bool tomb = vf == V_RAW && value == NULL;
    if (vf == V_RAW && !tomb && kr_cbor_read_exact(value, value_len, &item) < 0)
        return batch_fail(b, KRAPPY_E_USAGE,
                          "the value (%zu bytes) is not exactly one well-formed CBOR item; use "
                          "krappy_batch_add_bytes or _text for plain data",
                          value_len);
    if (vf == V_TEXT && !kr_utf8_valid(value, value_len))
        return batch_fail(b, KRAPPY_E_USAGE,
                          "the text value is not valid UTF-8; add it with krappy_batch_add_bytes");

    if (b->n == b->cap) {
        size_t ncap = b->cap ? b->cap * 2 : 64;
        batch_event *ev = realloc(b->ev, ncap * sizeof *ev);
        if (ev == NULL)
            return batch_fail(b, KRAPPY_E_NOMEM, "out of memory growing a batch");
        b->ev = ev;
        b->cap = ncap;
    }
    if (value_len > SIZE_MAX / 2 || key_len + value_len > SIZE_MAX / 2)
        return batch_fail(b, KRAPPY_E_USAGE, "the event is too large");
    if ((e = batch_room(b, key_len + value_len + 9)) != KRAPPY_OK)
        return e;

    batch_event *ev = &b->ev[b->n];
    memset(ev, 0, sizeof *ev);
    ev->kt = kt;
    ev->key_off = b->data.len;
    ev->key_len = key_len;
    if (key_len > 0)
        kr_buf_append(&b->data, key, key_len);
    ev->value_off = b->data.len;
    if (vf == V_TEXT)
        kr_cbor_put_text(&b->data, value, value_len);
    else if (vf == V_BYTES)
        kr_cbor_put_bytes(&b->data, value, value_len);
    else if (tomb)
        kr_cbor_put_null(&b->data);
    else
        kr_buf_append(&b->data, value, value_len);
    ev->value_len = b->data.len - ev->value_off;
    ev->tombstone = tomb;
    ev->hdr_off = b->data.len;
    b->size += KR_EVENT_OVERHEAD + key_len + ev->value_len;
    b->n++;
    return KRAPPY_OK;
}

krappy_err krappy_batch_add(krappy_batch *b, krappy_key_type kt, const void *key, size_t key_len,
                            const void *value, size_t value_len)
{
    return batch_add(b, kt, key, key_len, V_RAW, value, value_len);
}

krappy_err krappy_batch_add_text(krappy_batch *b, krappy_key_type kt, const void *key,
                                 size_t key_len, const char *text, size_t text_len)
{
    if (b != NULL && text == NULL && text_len == 0)
        text = "";
    return batch_add(b, kt, key, key_len, V_TEXT, text, text_len);
}

krappy_err krappy_batch_add_bytes(krappy_batch *b, krappy_key_type kt, const void *key,
                                  size_t key_len, const void *bytes, size_t len)
{
    if (b != NULL && bytes == NULL && len == 0)
        bytes = "";
    return batch_add(b, kt, key, key_len, V_BYTES, bytes, len);
}

krappy_batch *kr_batch_clone(const krappy_batch *b)
{
    krappy_batch *n = krappy_batch_new();
    if (n == NULL)
        return NULL;
    n->ev = malloc((b->n ? b->n : 1) * sizeof *n->ev);
    if (n->ev == NULL || kr_buf_append(&n->data, b->data.data, b->data.len) < 0) {
        krappy_batch_free(n);
        return NULL;
    }
    memcpy(n->ev, b->ev, b->n * sizeof *n->ev);
    n->n = n->cap = b->n;
    n->size = b->size;
    return n;
}

/* The event that krappy_batch_set_ts and _add_header (fn) change: the last
 * one added. NULL (KRAPPY_E_USAGE; errmsg set when there is a batch) when
 * there is none. */
static batch_event *last_event(krappy_batch *b, const char *fn)
{
    if (b == NULL)
        return NULL;
    b->errmsg[0] = '\0';
    if (b->n == 0) {
        batch_fail(b, KRAPPY_E_USAGE, "%s: the batch has no event yet", fn);
        return NULL;
    }
    return &b->ev[b->n - 1];
}

krappy_err krappy_batch_set_ts(krappy_batch *b, uint64_t ts_ms)
{
    batch_event *ev = last_event(b, "krappy_batch_set_ts");
    if (ev == NULL)
        return KRAPPY_E_USAGE;
    ev->has_ts = true;
    ev->ts = ts_ms;
    return KRAPPY_OK;
}

/* The last event's header pairs are always at the end of the data: nothing
 * else is appended after an event's value but its own headers. */
krappy_err krappy_batch_add_header(krappy_batch *b, const char *name, size_t name_len,
                                   const void *value, size_t value_len)
{
    krappy_err e;
    batch_event *ev = last_event(b, "krappy_batch_add_header");

    if (ev == NULL)
        return KRAPPY_E_USAGE;
    if ((name == NULL && name_len > 0) || (value == NULL && value_len > 0))
        return batch_fail(b, KRAPPY_E_USAGE, "krappy_batch_add_header: NULL with a length");
    if (name_len > SIZE_MAX / 4 || value_len > SIZE_MAX / 4)
        return batch_fail(b, KRAPPY_E_USAGE, "the header is too large");
    if (!kr_utf8_valid((const uint8_t *)name, name_len))
        return batch_fail(b, KRAPPY_E_USAGE, "the header name is not valid UTF-8");
    if ((e = batch_room(b, name_len + value_len + 18)) != KRAPPY_OK)
        return e;
    size_t before = b->data.len;
    kr_cbor_put_text(&b->data, name_len ? name : "", name_len);
    kr_cbor_put_bytes(&b->data, value_len ? value : "", value_len);
    ev->hdr_len += b->data.len - before;
    ev->n_hdr++;
    b->size += b->data.len - before;
    return KRAPPY_OK;
}

/* ---- sequence numbers awaiting acknowledgement ---- */

/* The oldest sequence number awaiting acknowledgement, 0 when none. */
static uint64_t wait_front(const krappy_client *c)
{
    const uint64_t *front = kr_ring_front(&c->pub_wait);
    return front != NULL ? *front : 0;
}

/* ======================================================================
 * Producing
 * ====================================================================== */

/* PRODUCER_REGISTER, plain or idempotent (fn names the caller). */
static krappy_err register_producer(krappy_client *c, const char *fn, const char *topic,
                                    const char *producer_id, bool idempotent,
                                    krappy_producer_reg *out)
{
    krappy_frame f;
    kr_reply r;
    krappy_err e;
    uint64_t epoch = 0;

    if (c == NULL)
        return KRAPPY_E_USAGE;
    kr_client_clear_error(c);
    if ((e = kr_client_need_name(c, fn, "topic", topic)) != KRAPPY_OK ||
        (e = kr_client_need_name(c, fn, "producer id", producer_id)) != KRAPPY_OK)
        return e;
    if (idempotent)
        kr_enc_producer_register_idempotent(kr_client_enc_begin(c), (kr_cid){false, 0}, topic,
                                            producer_id);
    else
        kr_enc_producer_register(kr_client_enc_begin(c), (kr_cid){false, 0}, topic, producer_id);
    if ((e = kr_client_request(c, KRAPPY_T_PRODUCER_REGISTER, KRAPPY_T_OK, 0, &f, &r)) != KRAPPY_OK)
        return e;
    if (!kr_reply_uint(&r, "next", &out->next))
        return kr_client_bad_reply(c, "PRODUCER_REGISTER", "no uint `next`");
    if (idempotent && (!kr_reply_uint(&r, "epoch", &epoch) || epoch > UINT32_MAX ||
                       !kr_reply_uint(&r, "seq", &out->seq)))
        return kr_client_bad_reply(c, "PRODUCER_REGISTER",
                                   "no uint `epoch` and `seq` (does the server know "
                                   "idempotent producers?)");
    out->epoch = (uint32_t)epoch;
    return KRAPPY_OK;
}

krappy_err krappy_register_producer(krappy_client *c, const char *topic, const char *producer_id,
                                    uint64_t *next)
{
    krappy_producer_reg reg = {0};
    krappy_err e =
        register_producer(c, "krappy_register_producer", topic, producer_id, false, &reg);
    if (e == KRAPPY_OK && next != NULL)
        *next = reg.next;
    return e;
}

krappy_err krappy_register_producer_idempotent(krappy_client *c, const char *topic,
                                               const char *producer_id, krappy_producer_reg *out)
{
    krappy_producer_reg reg = {0};
    krappy_err e =
        register_producer(c, "krappy_register_producer_idempotent", topic, producer_id, true, &reg);
    if (e == KRAPPY_OK && out != NULL)
        *out = reg;
    return e;
}

krappy_err kr_publish_encode(krappy_client *c, const krappy_batch *b, krappy_ack ack, uint64_t cid,
                             const uint64_t *idem_seq)
{
    if (b->n > c->specs_cap) {
        size_t ncap = b->n;
        kr_event_out_spec *s = realloc(c->specs, ncap * sizeof *s);
        if (s == NULL)
            return kr_client_fail(c, KRAPPY_E_NOMEM, "out of memory encoding a batch of %zu events",
                                  b->n);
        c->specs = s;
        c->specs_cap = ncap;
    }
    /* Every header map is built in c->hdrs, reserved at once so that the
     * pointers taken into it stay put. */
    size_t hdr_total = 0;
    for (size_t i = 0; i < b->n; i++)
        if (b->ev[i].n_hdr > 0)
            hdr_total += b->ev[i].hdr_len + 9;
    kr_buf_reset(&c->hdrs);
    if (hdr_total > 0 && kr_buf_reserve(&c->hdrs, hdr_total) < 0)
        return kr_client_fail(c, KRAPPY_E_NOMEM, "out of memory encoding the headers of a batch");

    for (size_t i = 0; i < b->n; i++) {
        const batch_event *ev = &b->ev[i];
        kr_event_out_spec *s = &c->specs[i];
        memset(s, 0, sizeof *s);
        if (ev->kt != KRAPPY_KEY_NONE) {
            s->key = ev->key_len > 0 ? (const void *)(b->data.data + ev->key_off) : "";
            s->key_len = ev->key_len;
            s->key_is_text = ev->kt == KRAPPY_KEY_TEXT;
        }
        if (!ev->tombstone) {
            s->value = b->data.data + ev->value_off;
            s->value_len = ev->value_len;
        }
        s->has_ts = ev->has_ts;
        s->ts = ev->ts;
        if (ev->n_hdr > 0) {
            size_t at = c->hdrs.len;
            kr_cbor_put_map(&c->hdrs, ev->n_hdr);
            kr_cbor_put_raw(&c->hdrs, b->data.data + ev->hdr_off, ev->hdr_len);
            s->headers = c->hdrs.data + at;
            s->headers_len = c->hdrs.len - at;
        }
    }
    kr_ack_mode mode = ack == KRAPPY_ACK_SYNC   ? KR_ACK_SYNC
                       : ack == KRAPPY_ACK_NONE ? KR_ACK_NONE
                                                : KR_ACK_WRITE;
    if (idem_seq != NULL)
        kr_enc_publish_seq(kr_client_enc_begin(c), (kr_cid){true, cid}, mode, *idem_seq, c->specs,
                           b->n);
    else
        kr_enc_publish(kr_client_enc_begin(c), (kr_cid){true, cid}, mode, c->specs, b->n);
    if (c->enc.failed || c->hdrs.failed)
        return kr_client_fail(c, KRAPPY_E_NOMEM, "out of memory encoding a batch of %zu events",
                              b->n);
    if (c->enc.len > (size_t)c->send_max - KRAPPY_FRAME_MIN_SIZE && b->n == 1)
        return kr_client_fail(c, KRAPPY_E_USAGE,
                              "the event encodes to a PUBLISH of %zu bytes, more than the server's "
                              "max_frame of %u bytes allows; make it smaller",
                              c->enc.len, c->send_max);
    if (c->enc.len > (size_t)c->send_max - KRAPPY_FRAME_MIN_SIZE)
        return kr_client_fail(
            c, KRAPPY_E_USAGE,
            "the batch of %zu events encodes to %zu bytes, more than the server's "
            "max_frame of %u bytes allows; publish fewer events per batch",
            b->n, c->enc.len, c->send_max);
    return KRAPPY_OK;
}

static krappy_err publish_send(krappy_client *c, const krappy_batch *b, krappy_ack ack,
                               uint64_t *seq_out, int64_t deadline)
{
    krappy_err e;

    if (c->fd < 0)
        return kr_client_not_connected(c);
    if (b == NULL || b->n == 0)
        return kr_client_fail(c, KRAPPY_E_USAGE,
                              "cannot publish an empty batch (the protocol wants one "
                              "event at least)");
    if (ack != KRAPPY_ACK_WRITE && ack != KRAPPY_ACK_SYNC && ack != KRAPPY_ACK_NONE)
        return kr_client_fail(c, KRAPPY_E_USAGE, "unknown ack mode %d", (int)ack);
    uint64_t seq = c->pub_seq + 1;
    if ((e = kr_publish_encode(c, b, ack, seq, NULL)) != KRAPPY_OK)
        return e;
    if (ack != KRAPPY_ACK_NONE && kr_ring_reserve(&c->pub_wait) < 0)
        return kr_client_fail(c, KRAPPY_E_NOMEM, "out of memory queueing a PUBLISH");
    e = kr_client_send_frame(c, KRAPPY_T_PUBLISH, c->enc.data, c->enc.len, deadline,
                             ack != KRAPPY_ACK_NONE);
    /* Once queued, the request counts even if writing then failed: the
     * connection is gone then, and the queue with it. */
    if (e != KRAPPY_OK && c->fd >= 0)
        return e;
    c->pub_seq = seq;
    if (ack != KRAPPY_ACK_NONE && c->fd >= 0)
        *(uint64_t *)kr_ring_push(&c->pub_wait) = seq;
    if (seq_out != NULL)
        *seq_out = seq;
    return e;
}

krappy_err krappy_publish_send(krappy_client *c, const krappy_batch *b, krappy_ack ack,
                               uint64_t *seq)
{
    if (c == NULL)
        return KRAPPY_E_USAGE;
    kr_client_clear_error(c);
    return publish_send(c, b, ack, seq, kr_client_deadline_after(c->timeout_ms));
}

/*
 * An ERROR came where a PUBLISH acknowledgement (or the confirming PING's
 * reply) was due. Acknowledged batches are answered in order, so an ERROR
 * whose cid is one of our sequence numbers other than the oldest awaited
 * one belongs to a batch sent with ack "none": the server closes after it.
 */
krappy_err kr_publish_error(krappy_client *c, const krappy_frame *f, const kr_reply *r,
                            krappy_publish_result *out)
{
    char msg[KR_CLIENT_ERRMSG_MAX];
    uint64_t front = wait_front(c);
    bool ours = r->cid.set && r->cid.v >= 1 && r->cid.v <= c->pub_seq;

    krappy_err e = krappy_reply_error(c, f);
    if (e == KRAPPY_E_PROTOCOL)
        return e;
    snprintf(msg, sizeof msg, "%s", c->errmsg);
    if (ours && r->cid.v != front) {
        uint64_t seq = r->cid.v;
        if (out != NULL)
            out->seq = seq;
        if (seq == c->pub_seq)
            return kr_client_fail_close(
                c, e,
                "batch #%llu (ack none) was refused, %s; the server closes the "
                "connection after that",
                (unsigned long long)seq, msg);
        return kr_client_fail_close(
            c, e,
            "batch #%llu (ack none) was refused, %s; the server closes the "
            "connection after that, so batches #%llu to #%llu were not stored",
            (unsigned long long)seq, msg, (unsigned long long)seq, (unsigned long long)c->pub_seq);
    }
    if (front == 0) /* the confirming PING's own error */
        return e;
    kr_ring_pop(&c->pub_wait);
    if (out != NULL)
        out->seq = front;
    return kr_client_fail(c, e, "batch #%llu was refused, %s", (unsigned long long)front, msg);
}

/*
 * Receive the reply to `request` (a PUBLISH, or the PING confirming batches
 * sent with ack "none"), which must be OK, and decode its map into *r. An
 * ERROR in its place is a refused batch (kr_publish_error, out as there);
 * anything else closes the connection, `hint` added to the sentence.
 */
static krappy_err ack_reply(krappy_client *c, const char *request, const char *hint,
                            krappy_publish_result *out, int64_t deadline, int timeout_ms,
                            kr_reply *r)
{
    krappy_frame f;
    krappy_err e;
    char b1[24];

    if ((e = kr_client_recv_frame(c, &f, deadline, timeout_ms)) != KRAPPY_OK)
        return e;
    if (kr_reply_decode(f.type, f.payload, f.len, r) < 0)
        return kr_client_bad_reply(c, request, "not a CBOR map with text keys");
    if (f.type == KRAPPY_T_ERROR)
        return kr_publish_error(c, &f, r, out);
    if (f.type != KRAPPY_T_OK)
        return kr_client_fail_close(
            c, KRAPPY_E_PROTOCOL, "%s answered %s with %s instead of OK%s; connection closed",
            c->peer, request, kr_client_type_label(f.type, b1, sizeof b1), hint);
    return KRAPPY_OK;
}

static krappy_err publish_recv(krappy_client *c, krappy_publish_result *out, int64_t deadline,
                               int timeout_ms)
{
    kr_reply r;
    krappy_err e;
    uint64_t first, count;

    if (kr_ring_len(&c->pub_wait) == 0) {
        if (c->fd < 0)
            return kr_client_not_connected(c);
        return kr_client_fail(
            c, KRAPPY_E_USAGE,
            "no PUBLISH acknowledgement is due (batches sent with ack none get none: "
            "see krappy_publish_confirm)");
    }
    uint64_t front = wait_front(c);
    if ((e = ack_reply(c, "PUBLISH", " (was another pipelined request's reply due?)", out, deadline,
                       timeout_ms, &r)) != KRAPPY_OK)
        return e;
    if (r.cid.set && r.cid.v != front)
        return kr_client_fail_close(
            c, KRAPPY_E_PROTOCOL,
            "%s acknowledged batch #%llu where batch #%llu was due; connection "
            "closed",
            c->peer, (unsigned long long)r.cid.v, (unsigned long long)front);
    if (!kr_reply_uint(&r, "first", &first) || !kr_reply_uint(&r, "count", &count))
        return kr_client_bad_reply(c, "PUBLISH", "no uint `first` and `count`");
    kr_ring_pop(&c->pub_wait);
    if (out != NULL) {
        out->seq = front;
        out->first = first;
        out->count = count;
    }
    return KRAPPY_OK;
}

/* What krappy_publish and krappy_publish_recv start with: a client, whose
 * last error is then cleared, and the result zeroed. */
static krappy_err publish_begin(krappy_client *c, krappy_publish_result *out)
{
    if (c == NULL)
        return KRAPPY_E_USAGE;
    kr_client_clear_error(c);
    if (out != NULL)
        memset(out, 0, sizeof *out);
    return KRAPPY_OK;
}

krappy_err krappy_publish_recv(krappy_client *c, krappy_publish_result *out)
{
    krappy_err e;

    if ((e = publish_begin(c, out)) != KRAPPY_OK)
        return e;
    return publish_recv(c, out, kr_client_deadline_after(c->timeout_ms), c->timeout_ms);
}

krappy_err krappy_publish(krappy_client *c, const krappy_batch *b, krappy_ack ack,
                          krappy_publish_result *out)
{
    krappy_err e;
    uint64_t seq = 0;

    if ((e = publish_begin(c, out)) != KRAPPY_OK ||
        (e = kr_client_check_no_pipeline(c, "krappy_publish")) != KRAPPY_OK)
        return e;
    int64_t deadline = kr_client_deadline_after(c->timeout_ms);
    if ((e = publish_send(c, b, ack, &seq, deadline)) != KRAPPY_OK)
        return e;
    if (ack == KRAPPY_ACK_NONE) {
        if (out != NULL)
            out->seq = seq;
        return kr_client_flush(c, deadline, c->timeout_ms);
    }
    return publish_recv(c, out, deadline, c->timeout_ms);
}

krappy_err krappy_publish_confirm(krappy_client *c)
{
    kr_reply r;
    krappy_err e;

    if (c == NULL)
        return KRAPPY_E_USAGE;
    kr_client_clear_error(c);
    if ((e = kr_client_check_no_pipeline(c, "krappy_publish_confirm")) != KRAPPY_OK)
        return e;
    if (c->fd < 0)
        return kr_client_not_connected(c);
    int64_t deadline = kr_client_deadline_after(c->timeout_ms);
    if ((e = kr_client_send_frame(c, KRAPPY_T_PING, NULL, 0, deadline, 1)) != KRAPPY_OK)
        return e;
    return ack_reply(c, "PING", "", NULL, deadline, c->timeout_ms, &r);
}
