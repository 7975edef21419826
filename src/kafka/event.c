/*
 * kafka/event.c - Kafka records <-> krappy events (see event.h).
 */
#include "kafka/event.h"

#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "krappy/protocol.h"
#include "proto/cbor.h"
#include "proto/cbor_text.h"
#include "util/byteorder.h"
#include "util/utf8.h"
#include "proto/msg.h"

/* One header of a record, and whether it survives a later one of the same
 * name. */
typedef struct hview {
    kr_kafka_header h;
    int32_t index;
    bool keep;
} hview;

/* Header names in bytewise order. */
static int name_cmp(const kr_kafka_bytes *x, const kr_kafka_bytes *y)
{
    size_t n = (size_t)(x->len < y->len ? x->len : y->len);
    int c = n > 0 ? memcmp(x->ptr, y->ptr, n) : 0;
    if (c != 0)
        return c;
    return x->len < y->len ? -1 : x->len > y->len;
}

static int by_name_then_index(const void *a, const void *b)
{
    const hview *x = a, *y = b;
    int c = name_cmp(&x->h.key, &y->h.key);
    if (c != 0)
        return c;
    return x->index < y->index ? -1 : x->index > y->index;
}

static int by_index(const void *a, const void *b)
{
    const hview *x = a, *y = b;
    return x->index < y->index ? -1 : x->index > y->index;
}

/*
 * The last of each name wins: the views go into scratch, are sorted by
 * name (then position) to find the losers, and back by position to keep
 * the order they came in.
 */
kr_kafka_err kr_kafka_record_headers(const kr_kafka_record *r, kr_buf *out, kr_buf *scratch,
                                     char *msg, size_t msglen)
{
    size_t n = (size_t)r->header_count;
    kr_kafka_rd hr;
    size_t kept = 0;

    kr_buf_reset(scratch);
    if (n > SIZE_MAX / sizeof(hview) || kr_buf_reserve(scratch, n * sizeof(hview)) < 0)
        return kr_kafka_say(KR_KAFKA_ERR_MESSAGE_TOO_LARGE, msg, msglen,
                            "record %d: %zu headers are more than this server takes", r->index, n);
    hview *v = (hview *)(void *)scratch->data;
    kr_kafka_header_iter_init(&hr, r);
    for (size_t i = 0; i < n; i++) {
        if (!kr_kafka_header_next(&hr, &v[i].h))
            return kr_kafka_say(KR_KAFKA_ERR_CORRUPT_MESSAGE, msg, msglen,
                                "record %d: header %zu cannot be read", r->index, i);
        if (!kr_utf8_valid(v[i].h.key.ptr, (size_t)v[i].h.key.len))
            return kr_kafka_say(KR_KAFKA_ERR_INVALID_RECORD, msg, msglen,
                                "record %d: header %zu has a name that is not UTF-8 text", r->index,
                                i);
        v[i].index = (int32_t)i;
        v[i].keep = true;
    }
    if (n > 1) {
        qsort(v, n, sizeof *v, by_name_then_index);
        for (size_t i = 0; i + 1 < n; i++)
            if (name_cmp(&v[i].h.key, &v[i + 1].h.key) == 0)
                v[i].keep = false;
        qsort(v, n, sizeof *v, by_index);
    }
    for (size_t i = 0; i < n; i++)
        kept += v[i].keep;
    kr_cbor_put_map(out, kept);
    for (size_t i = 0; i < n; i++) {
        if (!v[i].keep)
            continue;
        kr_cbor_put_text(out, (const char *)v[i].h.key.ptr, (size_t)v[i].h.key.len);
        kr_cbor_put_bytes(out, v[i].h.value.ptr,
                          v[i].h.value.len > 0 ? (size_t)v[i].h.value.len : 0);
    }
    return KR_KAFKA_ERR_NONE;
}

/* Record bytes as a CBOR byte string, or null. */
static void put_nullable_bytes(kr_buf *out, kr_kafka_bytes b)
{
    if (b.len < 0)
        kr_cbor_put_null(out);
    else
        kr_cbor_put_bytes(out, b.ptr, (size_t)b.len);
}

kr_kafka_err kr_kafka_record_check(const kr_kafka_record *r, char *msg, size_t msglen)
{
    if (r->key.len > (int32_t)KRAPPY_MAX_KEY_BYTES)
        return kr_kafka_say(KR_KAFKA_ERR_INVALID_RECORD, msg, msglen,
                            "record %d: its key of %d bytes is longer than krappy's %u", r->index,
                            r->key.len, KRAPPY_MAX_KEY_BYTES);
    return KR_KAFKA_ERR_NONE;
}

bool kr_kafka_record_ts(const kr_kafka_batch *b, const kr_kafka_record *r, uint64_t *ts)
{
    if ((b->attributes & KR_KAFKA_ATTR_LOG_APPEND_TIME) != 0 || r->timestamp < 0)
        return false;
    *ts = (uint64_t)r->timestamp;
    return true;
}

kr_kafka_err kr_kafka_record_to_event(const kr_kafka_batch *b, const kr_kafka_record *r,
                                      kr_buf *out, kr_buf *scratch, char *msg, size_t msglen)
{
    kr_kafka_err e = kr_kafka_record_check(r, msg, msglen);
    if (e != KR_KAFKA_ERR_NONE)
        return e;
    uint64_t ts;
    kr_cbor_put_array(out, r->header_count > 0 ? 4 : 3);
    put_nullable_bytes(out, r->key);
    put_nullable_bytes(out, r->value);
    if (kr_kafka_record_ts(b, r, &ts))
        kr_cbor_put_uint(out, ts);
    else
        kr_cbor_put_null(out);
    if (r->header_count > 0) {
        e = kr_kafka_record_headers(r, out, scratch, msg, msglen);
        if (e != KR_KAFKA_ERR_NONE)
            return e;
    }
    if (out->failed)
        return kr_kafka_say(KR_KAFKA_ERR_MESSAGE_TOO_LARGE, msg, msglen,
                            "record %d: the events are larger than this server takes", r->index);
    return KR_KAFKA_ERR_NONE;
}

kr_kafka_err kr_kafka_batch_to_events(const kr_kafka_batch *b, kr_buf *records, size_t max_bytes,
                                      kr_buf *out, kr_buf *scratch, char *msg, size_t msglen)
{
    kr_kafka_record_iter it;
    kr_kafka_record r;
    kr_kafka_err e = kr_kafka_record_iter_init(&it, b, records, max_bytes, msg, msglen);
    int got;

    if (e != KR_KAFKA_ERR_NONE)
        return e;
    kr_cbor_put_array(out, (size_t)b->count);
    while ((got = kr_kafka_record_next(&it, &r, &e, msg, msglen)) == 1) {
        e = kr_kafka_record_to_event(b, &r, out, scratch, msg, msglen);
        if (e != KR_KAFKA_ERR_NONE)
            return e;
    }
    return got < 0 ? e : KR_KAFKA_ERR_NONE;
}

/* ---- delivered events to records ---- */

/* A key, value or header part as record bytes: either borrowed from the
 * event, or at an offset in scratch (scratch may move until it is done). */
typedef struct part {
    const uint8_t *ptr; /* borrowed, when !in_scratch */
    size_t off;         /* in scratch, when in_scratch */
    int32_t len;        /* -1: null */
    bool in_scratch;
} part;

/* Turn one CBOR item into record bytes (event.h says how).
 * @return 0, or -1 when scratch refused to grow or rendering failed. */
static int to_part(const kr_cbor_item *it, kr_buf *scratch, part *p)
{
    memset(p, 0, sizeof *p);
    if (it->kind == KR_CBOR_NULL) {
        p->len = -1;
        return 0;
    }
    size_t start = scratch->len;
    if ((it->kind == KR_CBOR_BYTES || it->kind == KR_CBOR_TEXT) && !it->indefinite) {
        if (it->str_len > INT32_MAX)
            return -1;
        p->ptr = it->str != NULL ? it->str : (const uint8_t *)"";
        p->len = (int32_t)it->str_len;
        return 0;
    }
    if (it->kind == KR_CBOR_BYTES || it->kind == KR_CBOR_TEXT) {
        if (kr_buf_reserve(scratch, it->str_len) < 0)
            return -1;
        if (it->str_len > 0) /* an empty one may have no buffer yet */
            kr_cbor_str_copy(it, scratch->data + start, it->str_len);
        scratch->len += it->str_len;
    } else if (kr_cbor_render(it->raw, it->raw_len, true, 0, scratch) != 0) {
        return -1;
    }
    if (scratch->failed || scratch->len - start > INT32_MAX)
        return -1;
    p->in_scratch = true;
    p->off = start;
    p->len = (int32_t)(scratch->len - start);
    return 0;
}

static kr_kafka_bytes resolve(const part *p, const kr_buf *scratch)
{
    kr_kafka_bytes b = {p->ptr, p->len};
    if (p->in_scratch)
        b.ptr = p->len > 0 ? scratch->data + p->off : (const uint8_t *)"";
    return b;
}

/* The number of name/value pairs of a headers map (an indefinite one is
 * counted). */
static int64_t map_pairs(const kr_cbor_item *m)
{
    if (!m->indefinite)
        return (int64_t)m->u;
    kr_cbor_iter it;
    kr_cbor_item x;
    int64_t n = 0;
    kr_cbor_iter_init(&it, m);
    while (kr_cbor_iter_next(&it, &x) == 1)
        n++;
    return n / 2;
}

/* Write the headers of a delivered event to the open record. */
static int put_record_headers(kr_kafka_batch_writer *w, const kr_cbor_item *m, kr_buf *scratch)
{
    kr_cbor_iter it;
    kr_cbor_item k, v;
    part pk, pv;

    kr_cbor_iter_init(&it, m);
    while (kr_cbor_iter_next(&it, &k) == 1) {
        if (kr_cbor_iter_next(&it, &v) != 1)
            return -1;
        kr_buf_reset(scratch);
        if (to_part(&k, scratch, &pk) < 0 || to_part(&v, scratch, &pv) < 0)
            return -1;
        kr_kafka_bytes key = resolve(&pk, scratch);
        if (key.len < 0)
            key = (kr_kafka_bytes){(const uint8_t *)"", 0};
        if (kr_kafka_record_header(w, key, resolve(&pv, scratch)) < 0)
            return -1;
    }
    return 0;
}

/* Refuse the batch for the event at `offset`: why names the limit.
 * @return -1. */
static int refuse_event(kr_kafka_batch_writer *w, kr_kafka_err code, uint64_t offset,
                        const char *why, char *msg, size_t msglen)
{
    kr_kafka_say(code, msg, msglen, "the event at offset %llu %s", (unsigned long long)offset, why);
    w->bad = true;
    return -1;
}

#define OUT_OF_RANGE "is beyond Kafka's range of offsets"
#define OUT_OF_ORDER "does not follow the batch's last offset"
#define TOO_LARGE    "does not fit this server's limits"

/* Open the record of the event at `offset`. @return 0, or -1 (msg says
 * why; the writer is refused at kr_kafka_batch_end). */
static int open_record(kr_kafka_batch_writer *w, uint64_t offset, uint64_t ts, kr_kafka_bytes key,
                       kr_kafka_bytes value, int32_t headers, char *msg, size_t msglen)
{
    if (offset > INT64_MAX)
        return refuse_event(w, KR_KAFKA_ERR_CORRUPT_MESSAGE, offset, OUT_OF_RANGE, msg, msglen);
    if (kr_kafka_record_begin(w, (int64_t)offset, ts > INT64_MAX ? INT64_MAX : (int64_t)ts, key,
                              value, headers) < 0)
        return refuse_event(w, KR_KAFKA_ERR_UNKNOWN_SERVER_ERROR, offset, OUT_OF_ORDER, msg,
                            msglen);
    return 0;
}

/* Close the record of the event at `offset` (its headers written when
 * headers_ok). @return 0, or -1 as open_record. */
static int close_record(kr_kafka_batch_writer *w, uint64_t offset, bool headers_ok, char *msg,
                        size_t msglen)
{
    if (!headers_ok || kr_kafka_record_end(w) < 0 || w->out->failed)
        return refuse_event(w, KR_KAFKA_ERR_MESSAGE_TOO_LARGE, offset, TOO_LARGE, msg, msglen);
    return 0;
}

/* The record of a plain event (no headers) in one call to the batch
 * writer. @return 0, or -1 as open_record. */
static int put_plain_record(kr_kafka_batch_writer *w, uint64_t offset, uint64_t ts,
                            kr_kafka_bytes key, kr_kafka_bytes value, char *msg, size_t msglen)
{
    if (offset > INT64_MAX)
        return refuse_event(w, KR_KAFKA_ERR_CORRUPT_MESSAGE, offset, OUT_OF_RANGE, msg, msglen);
    if (kr_kafka_record_put(w, (int64_t)offset, ts > INT64_MAX ? INT64_MAX : (int64_t)ts, key,
                            value) == 0)
        return 0;
    if (w->out->failed)
        return refuse_event(w, KR_KAFKA_ERR_MESSAGE_TOO_LARGE, offset, TOO_LARGE, msg, msglen);
    return refuse_event(w, KR_KAFKA_ERR_UNKNOWN_SERVER_ERROR, offset, OUT_OF_ORDER, msg, msglen);
}

/* Add one delivered event, read into e, to the batch. @return 0, or -1
 * (msg says why; the writer is refused at kr_kafka_batch_end). */
static int view_to_record(kr_kafka_batch_writer *w, const kr_event_view *e, kr_buf *scratch,
                          char *msg, size_t msglen)
{
    part key, value;
    int64_t headers = e->has_headers ? map_pairs(&e->headers) : 0;
    kr_buf_reset(scratch);
    if (headers > INT32_MAX || to_part(&e->key, scratch, &key) < 0 ||
        to_part(&e->value, scratch, &value) < 0) {
        kr_kafka_say(KR_KAFKA_ERR_MESSAGE_TOO_LARGE, msg, msglen,
                     "the event at offset %llu cannot be rendered within this server's limits",
                     (unsigned long long)e->offset);
        w->bad = true;
        return -1;
    }
    if (open_record(w, e->offset, e->ts, resolve(&key, scratch), resolve(&value, scratch),
                    (int32_t)headers, msg, msglen) < 0)
        return -1;
    bool headers_ok = !e->has_headers || put_record_headers(w, &e->headers, scratch) == 0;
    return close_record(w, e->offset, headers_ok, msg, msglen);
}

int kr_kafka_event_to_record(kr_kafka_batch_writer *w, const uint8_t *ev, size_t len,
                             kr_buf *scratch, char *msg, size_t msglen)
{
    kr_cbor_item item;
    kr_event_view e;

    if (kr_cbor_read_exact(ev, len, &item) != 0 || kr_event_view_read(&item, &e) != 0) {
        kr_kafka_say(KR_KAFKA_ERR_CORRUPT_MESSAGE, msg, msglen,
                     "a stored event is not [offset, ts, key, value(, headers)]");
        w->bad = true;
        return -1;
    }
    return view_to_record(w, &e, scratch, msg, msglen);
}

/*
 * Read the delivered event at p (at most len bytes) in one pass: its array
 * is opened, not read whole first, so each byte is looked at once.
 * @return its length, or 0 when it is not a delivered event.
 */
static size_t read_event(const uint8_t *p, size_t len, kr_event_view *e)
{
    kr_cbor_item head, item[5];
    kr_cbor_iter it;
    int n = 0, r;
    if (kr_cbor_iter_open(p, len, &head, &it) < 0 || head.kind != KR_CBOR_ARRAY)
        return 0;
    while ((r = kr_cbor_iter_next(&it, &item[n < 5 ? n : 4])) == 1)
        if (++n > 5)
            return 0;
    if (r < 0 || n < 4 || item[0].kind != KR_CBOR_UINT || item[1].kind != KR_CBOR_UINT ||
        (item[2].kind != KR_CBOR_NULL && item[2].kind != KR_CBOR_BYTES &&
         item[2].kind != KR_CBOR_TEXT) ||
        (n == 5 && item[4].kind != KR_CBOR_MAP))
        return 0;
    e->offset = item[0].u;
    e->ts = item[1].u;
    e->key = item[2];
    e->value = item[3];
    e->has_headers = n == 5;
    if (n == 5)
        e->headers = item[4];
    return (size_t)(kr_cbor_iter_end(&it) - p);
}

/*
 * The argument of the definite CBOR head at p (before end): an unsigned
 * integer's value, a string's length - read as one load per width, not byte
 * by byte, as a Fetch reads four of these per record (the offset's four
 * bytes and the timestamp's eight among them). @return the bytes of the
 * head, or 0 for an indefinite or reserved one, or one cut short.
 */
static inline size_t head_arg(const uint8_t *p, const uint8_t *end, uint64_t *v)
{
    unsigned info = p[0] & 0x1f;
    if (info < 24) {
        *v = info;
        return 1;
    }
    if (info > 27)
        return 0;
    size_t n = (size_t)1 << (info - 24);
    if ((size_t)(end - p) <= n)
        return 0;
    switch (n) {
    case 1:
        *v = p[1];
        break;
    case 2:
        *v = kr_get_be16(p + 1);
        break;
    case 4:
        *v = kr_get_be32(p + 1);
        break;
    default:
        *v = kr_get_be64(p + 1);
    }
    return 1 + n;
}

/* An unsigned integer at *p. @return false when it is something else. */
static inline bool plain_uint(const uint8_t **p, const uint8_t *end, uint64_t *v)
{
    size_t n;
    if (*p >= end || (**p >> 5) != 0 || (n = head_arg(*p, end, v)) == 0)
        return false;
    *p += n;
    return true;
}

/* A definite byte or text string, or null, at *p as record bytes.
 * @return false when it is something else. */
static inline bool plain_bytes(const uint8_t **p, const uint8_t *end, kr_kafka_bytes *b)
{
    const uint8_t *q = *p;
    uint64_t len;
    size_t n;
    if (q >= end)
        return false;
    if (*q == 0xf6) { /* null */
        *b = (kr_kafka_bytes){NULL, -1};
        *p = q + 1;
        return true;
    }
    unsigned major = *q >> 5;
    if ((major != 2 && major != 3) || (n = head_arg(q, end, &len)) == 0 ||
        len > (uint64_t)(end - q) - n || len > INT32_MAX)
        return false;
    *b = (kr_kafka_bytes){q + n, (int32_t)len};
    *p = q + n + len;
    return true;
}

/*
 * The usual delivered event - [offset, ts, key, value] with a key and a
 * value that are byte strings, text or null, as every Kafka-produced event
 * is - read with no more than a look at each head: a Fetch turns a
 * megabyte of these into records per answer, and the general reader
 * (read_event) costs several times the rest of the record. Their bytes
 * become the record's as they are, as to_part makes them.
 * @return its length, or 0 when it is anything else (read_event's turn).
 */
static size_t read_plain_event(const uint8_t *p, size_t len, uint64_t *offset, uint64_t *ts,
                               kr_kafka_bytes *key, kr_kafka_bytes *value)
{
    const uint8_t *q = p + 1, *end = p + len;
    if (len == 0 || p[0] != 0x84 /* an array of 4 */ || !plain_uint(&q, end, offset) ||
        !plain_uint(&q, end, ts) || !plain_bytes(&q, end, key) || !plain_bytes(&q, end, value))
        return 0;
    return (size_t)(q - p);
}

int32_t kr_kafka_events_to_records(kr_kafka_batch_writer *w, const uint8_t *p, size_t len,
                                   kr_buf *scratch, char *msg, size_t msglen)
{
    const uint8_t *end = p + len;
    int32_t n = 0;
    while (p < end) {
        uint64_t offset, ts;
        kr_kafka_bytes key, value;
        size_t used = read_plain_event(p, (size_t)(end - p), &offset, &ts, &key, &value);
        if (used > 0) {
            if (put_plain_record(w, offset, ts, key, value, msg, msglen) < 0)
                return -1;
            p += used;
            n++;
            continue;
        }
        kr_event_view e;
        used = read_event(p, (size_t)(end - p), &e);
        if (used == 0) {
            kr_kafka_say(KR_KAFKA_ERR_CORRUPT_MESSAGE, msg, msglen,
                         "a stored event is not [offset, ts, key, value(, headers)]");
            w->bad = true;
            return -1;
        }
        if (view_to_record(w, &e, scratch, msg, msglen) < 0)
            return -1;
        p += used;
        n++;
    }
    return n;
}
