/*
 * proto/msg_reply.c - reply decoders (client side; msg.h): a reply payload
 * checked as one map with its cid, the fields of ERROR, and delivered events.
 * Everything read points into the payload.
 */
#include "proto/msg.h"

#include <string.h>

/* The empty map, for empty payloads. */
static const uint8_t cbor_empty_map[1] = {0xa0};

/* A reply must be one map with text keys; its cid is read if it is a uint. */
int kr_reply_decode(uint32_t type, const uint8_t *payload, size_t len, kr_reply *r)
{
    kr_cbor_item v;

    r->type = type;
    r->cid.set = false;
    r->cid.v = 0;
    if (len == 0) {
        payload = cbor_empty_map;
        len = sizeof cbor_empty_map;
    }
    if (kr_cbor_read_exact(payload, len, &r->map) < 0 || r->map.kind != KR_CBOR_MAP)
        return -1;
    int found = kr_cbor_map_find(&r->map, "cid", &v);
    if (found < 0)
        return -1;
    if (found == 1 && v.kind == KR_CBOR_UINT) {
        r->cid.set = true;
        r->cid.v = v.u;
    }
    return 0;
}

int kr_reply_uint(const kr_reply *r, const char *field, uint64_t *v)
{
    kr_cbor_item x;
    if (kr_cbor_map_find(&r->map, field, &x) != 1 || x.kind != KR_CBOR_UINT)
        return 0;
    *v = x.u;
    return 1;
}

/* An indefinite-length message cannot be pointed to; it reads as empty. */
int kr_reply_error(const kr_reply *r, kr_error_in *e)
{
    kr_cbor_item m;
    uint64_t code;

    memset(e, 0, sizeof *e);
    if (!kr_reply_uint(r, "code", &code) || code > INT32_MAX)
        return -1;
    e->code = (int)code;
    if (kr_cbor_map_find(&r->map, "message", &m) == 1 && m.kind == KR_CBOR_TEXT && !m.indefinite) {
        e->message.ptr = m.str;
        e->message.len = m.str_len;
    }
    e->has_range = kr_reply_uint(r, "first", &e->first) && kr_reply_uint(r, "next", &e->next);
    if (!e->has_range)
        e->first = e->next = 0;
    e->has_expected = kr_reply_uint(r, "expected", &e->expected);
    if (!e->has_expected)
        e->expected = 0;
    if (kr_cbor_map_find(&r->map, "leader", &m) == 1 && m.kind == KR_CBOR_TEXT && !m.indefinite) {
        e->leader.ptr = m.str;
        e->leader.len = m.str_len;
    }
    return 0;
}

/* The parts of a delivered event, read from `it` (its array's iterator)
 * straight into *out and checked as they come. @return 0, or -1 when they
 * are not a delivered event's (*out then half filled). */
static int view_parts(kr_cbor_iter *it, kr_event_view *out)
{
    kr_cbor_item x;

    if (kr_cbor_iter_next(it, &x) != 1 || x.kind != KR_CBOR_UINT)
        return -1;
    out->offset = x.u;
    if (kr_cbor_iter_next(it, &x) != 1 || x.kind != KR_CBOR_UINT)
        return -1;
    out->ts = x.u;
    if (kr_cbor_iter_next(it, &out->key) != 1 ||
        (out->key.kind != KR_CBOR_NULL && out->key.kind != KR_CBOR_BYTES &&
         out->key.kind != KR_CBOR_TEXT))
        return -1;
    if (kr_cbor_iter_next(it, &out->value) != 1)
        return -1;
    int r = kr_cbor_iter_next(it, &out->headers);
    out->has_headers = r == 1;
    if (r == 0) {
        memset(&out->headers, 0, sizeof out->headers);
        return 0;
    }
    if (r < 0 || out->headers.kind != KR_CBOR_MAP)
        return -1;
    return kr_cbor_iter_next(it, &x) == 0 ? 0 : -1; /* five parts at most */
}

int kr_event_view_read(const kr_cbor_item *ev, kr_event_view *out)
{
    kr_cbor_iter it;

    if (ev->kind != KR_CBOR_ARRAY)
        return -1;
    kr_cbor_iter_init(&it, ev);
    return view_parts(&it, out);
}

int kr_event_view_parse_len(const uint8_t *p, size_t len, kr_event_view *out, size_t *raw_len)
{
    kr_cbor_item ev;
    kr_cbor_iter it;

    if (kr_cbor_iter_open(p, len, &ev, &it) < 0 || ev.kind != KR_CBOR_ARRAY ||
        view_parts(&it, out) < 0)
        return -1;
    *raw_len = (size_t)(kr_cbor_iter_end(&it) - p);
    return 0;
}

int kr_event_view_parse(const uint8_t *p, size_t len, kr_event_view *out)
{
    size_t n;
    return kr_event_view_parse_len(p, len, out, &n);
}
