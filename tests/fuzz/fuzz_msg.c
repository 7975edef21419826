/*
 * tests/fuzz/fuzz_msg.c - fuzz the payload decoders.
 *
 * Input: the first byte selects a message type, the rest is a payload. The
 * payload goes through kr_req_decode (and, when valid, a re-encode round
 * trip), kr_req_peek_cid, kr_req_peek_ack_none, kr_reply_decode with the reply readers
 * (kr_reply_error, kr_reply_uint, kr_event_view_read and kr_event_view_parse
 * over EVENTS and ENTRIES content), and the raw CBOR reader, whose answers are checked for
 * consistency. Nothing here may crash, leak or read out of bounds.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "proto/cbor.h"
#include "proto/msg.h"
#include "roundtrip.h"
#include "util/utf8.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* The types the selector byte maps to: every request, neighbours, replies
 * (the administration requests last, so older seeds keep their types). */
static const uint32_t fuzz_types[] = {
    0,  1,  2,   3,   4,   5,   6,   7,           8,  9,  10, 11,
    12, 13, 100, 101, 102, 103, 255, 0xffffffffu, 14, 15, 16, 17,
};

/* Walk an item's children (one level) and check the iterator agrees with
 * the reader about where the container ends. */
static void walk_children(const kr_cbor_item *it)
{
    kr_cbor_iter ci;
    kr_cbor_item c;
    uint64_t n = 0;
    size_t used = it->head_len;
    int r;

    if (it->kind != KR_CBOR_ARRAY && it->kind != KR_CBOR_MAP && it->kind != KR_CBOR_TAG &&
        !((it->kind == KR_CBOR_BYTES || it->kind == KR_CBOR_TEXT) && it->indefinite))
        return;
    kr_cbor_iter_init(&ci, it);
    while ((r = kr_cbor_iter_next(&ci, &c)) == 1) {
        FUZZ_CHECK(c.raw == it->raw + used);
        used += c.raw_len;
        n++;
    }
    FUZZ_CHECK(r == 0);
    if (it->indefinite)
        used++; /* the break */
    FUZZ_CHECK(used == it->raw_len);
    if (!it->indefinite && it->kind == KR_CBOR_ARRAY)
        FUZZ_CHECK(n == it->u);
    if (!it->indefinite && it->kind == KR_CBOR_MAP)
        FUZZ_CHECK(n == 2 * it->u);
    if (it->kind == KR_CBOR_TAG)
        FUZZ_CHECK(n == 1);
}

static void check_cbor(const uint8_t *p, size_t n)
{
    kr_cbor_item it, ex;
    int r = kr_cbor_read(p, n, &it);
    int rx = kr_cbor_read_exact(p, n, &ex);
    if (r != 0) {
        FUZZ_CHECK(rx != 0);
        return;
    }
    FUZZ_CHECK(it.raw == p && it.raw_len >= 1 && it.raw_len <= n);
    FUZZ_CHECK(it.head_len >= 1 && it.head_len <= it.raw_len);
    FUZZ_CHECK(rx == (it.raw_len == n ? 0 : -1));
    /* The item read alone, cut to its extent, is the same item. */
    FUZZ_CHECK(kr_cbor_read_exact(p, it.raw_len, &ex) == 0 && ex.raw_len == it.raw_len);
    walk_children(&it);
    if (it.kind == KR_CBOR_BYTES || it.kind == KR_CBOR_TEXT) {
        uint8_t small[8];
        FUZZ_CHECK(kr_cbor_str_copy(&it, small, sizeof small) == it.str_len);
        if (!it.indefinite)
            FUZZ_CHECK(it.str + it.str_len == it.raw + it.raw_len);
        (void)kr_cbor_text_eq(&it, "topic");
        if (!it.indefinite)
            (void)kr_utf8_valid(it.str, it.str_len);
    }
    if (it.kind == KR_CBOR_MAP) {
        kr_cbor_item v;
        (void)kr_cbor_map_find(&it, "cid", &v);
    }
}

/* Read every delivered event in a reply's `events` or `entries` array. */
static void check_events(const kr_reply *r, const char *field)
{
    kr_cbor_item arr, ev;
    kr_cbor_iter it;
    kr_event_view view;

    if (kr_cbor_map_find(&r->map, field, &arr) != 1 || arr.kind != KR_CBOR_ARRAY)
        return;
    kr_cbor_iter_init(&it, &arr);
    while (kr_cbor_iter_next(&it, &ev) == 1) {
        int read = kr_event_view_read(&ev, &view);
        if (read == 0) {
            FUZZ_CHECK(view.key.kind == KR_CBOR_NULL || view.key.kind == KR_CBOR_BYTES ||
                       view.key.kind == KR_CBOR_TEXT);
            FUZZ_CHECK(!view.has_headers || view.headers.kind == KR_CBOR_MAP);
        }
        /* The one-pass reader agrees with reading the item, then its parts. */
        kr_event_view once;
        size_t once_len = 0;
        FUZZ_CHECK(kr_event_view_parse_len(ev.raw, ev.raw_len, &once, &once_len) == read);
        FUZZ_CHECK(read != 0 || once_len == ev.raw_len);
        if (read == 0)
            FUZZ_CHECK(once.offset == view.offset && once.ts == view.ts &&
                       once.key.raw == view.key.raw && once.value.raw_len == view.value.raw_len &&
                       once.has_headers == view.has_headers &&
                       once.headers.raw_len == view.headers.raw_len);
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1)
        return 0;
    uint32_t type = fuzz_types[data[0] % (sizeof fuzz_types / sizeof fuzz_types[0])];
    const uint8_t *payload = data + 1;
    size_t len = size - 1;

    /* Requests. */
    kr_buf scratch;
    kr_request req;
    char msg[256];
    kr_buf_init(&scratch, (size_t)1 << 26);
    krappy_err e = kr_req_decode(type, payload, len, &scratch, &req, msg, sizeof msg);
    FUZZ_CHECK(memchr(msg, 0, sizeof msg) != NULL);
    FUZZ_CHECK(e == KRAPPY_OK || msg[0] != '\0');
    if (e == KRAPPY_OK && type == KRAPPY_T_PUBLISH) {
        kr_events_iter ei;
        kr_event_in ev;
        uint64_t n = 0;
        kr_events_iter_init(&ei, &req, &scratch);
        while (kr_events_iter_next(&ei, &ev) == 1) {
            FUZZ_CHECK(ev.key.content.len <= KRAPPY_MAX_KEY_BYTES);
            FUZZ_CHECK(ev.value.len > 0);
            n++;
        }
        FUZZ_CHECK(n == req.u.publish.count);
        /* The server's peek at `ack` (for refused PUBLISHes) agrees with
         * the decoder whenever the decoder accepts. */
        FUZZ_CHECK(kr_req_peek_ack_none(payload, len) == (req.u.publish.ack == KR_ACK_NONE));
    } else {
        (void)kr_req_peek_ack_none(payload, len);
    }
    uint64_t cid;
    if (kr_req_peek_cid(payload, len, &cid) == 1 && e != KRAPPY_E_BAD_PAYLOAD)
        FUZZ_CHECK(req.cid.set && req.cid.v == cid);
    kr_buf_free(&scratch);
    if (e == KRAPPY_OK)
        rt_check(type, payload, len);

    /* Replies. A payload the reply reader takes as a map with text keys is
     * well-formed for the request decoder too. */
    kr_reply r;
    if (kr_reply_decode(type, payload, len, &r) == 0) {
        FUZZ_CHECK(e != KRAPPY_E_BAD_PAYLOAD);
        kr_error_in err;
        uint64_t v;
        (void)kr_reply_error(&r, &err);
        (void)kr_reply_uint(&r, "next", &v);
        check_events(&r, "events");
        check_events(&r, "entries");
    }

    /* The raw reader, on the payload and on the whole input. */
    check_cbor(payload, len);
    check_cbor(data, size);
    return 0;
}
