/*
 * tests/fuzz/fuzz_cbor_text.c - fuzz the CBOR renderer (proto/cbor_text.c):
 * what `krappy` prints and what krappyd's admin API serves for any stored
 * value.
 *
 * Input: a mode byte, then the bytes of one CBOR item. Mode bit 0: JSON
 * (else diagnostic notation); bit 1: byte strings as hex. The item is
 * rendered with kr_cbor_render and, when it reads as a delivered event, with
 * kr_cbor_render_event_json, and as the admin API renders it (values cut at a
 * limit from the mode byte's upper bits, headers as text). The checks:
 *   - it renders exactly when it is one well-formed item nested at most
 *     KR_CBOR_TEXT_MAX_DEPTH deep (counted here independently), and within
 *     32 bytes of text per byte of CBOR (the cap libkrappy gives it);
 *   - a failure leaves the output buffer as it was;
 *   - the text is valid UTF-8 with no control character (safe on a
 *     terminal);
 *   - JSON reads back with the JSON reader (client/json.c), and what it
 *     reads is a fixed point: rendered and read again, the same CBOR;
 *   - an event always renders as a valid JSON object.
 */
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "proto/json_parse.h"
#include "proto/cbor.h"
#include "proto/cbor_text.h"
#include "proto/msg.h"
#include "util/json.h"
#include "util/utf8.h"
#include "fuzz_check.h"
#include "json_check.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* Bytes already in the output buffer before a render: they must survive. */
static const char prefix[] = "<prefix>";

/* Deepest nesting of arrays, maps and tags in a well-formed item, counted
 * with the reader alone (not the renderer's own count). Stops counting
 * past `limit`. */
static int nesting(const kr_cbor_item *it, int limit)
{
    if (it->kind != KR_CBOR_ARRAY && it->kind != KR_CBOR_MAP && it->kind != KR_CBOR_TAG)
        return 0;
    if (limit <= 0)
        return 1;
    kr_cbor_iter ci;
    kr_cbor_item ch;
    int deepest = 0;
    kr_cbor_iter_init(&ci, it);
    while (kr_cbor_iter_next(&ci, &ch) == 1) {
        int d = nesting(&ch, limit - 1);
        if (d > deepest)
            deepest = d;
    }
    return 1 + deepest;
}

/* Valid UTF-8 without C0, DEL or C1 control characters. */
static int terminal_safe(const uint8_t *p, size_t n)
{
    if (!kr_utf8_valid(p, n))
        return 0;
    for (size_t i = 0; i < n; i++) {
        if (p[i] < 0x20 || p[i] == 0x7f)
            return 0;
        if (p[i] == 0xc2 && i + 1 < n && p[i + 1] >= 0x80 && p[i + 1] < 0xa0)
            return 0;
    }
    return 1;
}

static void check_event(const kr_cbor_item *it, const kr_event_json_opts *o)
{
    kr_event_view v;
    if (kr_event_view_read(it, &v) < 0)
        return;
    kr_buf out;
    kr_buf_init(&out, it->raw_len * 32 + 512);
    FUZZ_CHECK((o ? kr_cbor_render_event_json_opts(&v, o, &out)
                  : kr_cbor_render_event_json(&v, &out)) == 0);
    FUZZ_CHECK(terminal_safe(out.data, out.len));
    kr_buf cbor;
    kr_cbor_item map, x;
    char why[200];
    kr_buf_init(&cbor, out.len * 4 + 64);
    FUZZ_CHECK(kr_json_to_cbor((const char *)out.data, out.len, &cbor, why, sizeof why) ==
               KRAPPY_OK);
    FUZZ_CHECK(kr_cbor_read_exact(cbor.data, cbor.len, &map) == 0 && map.kind == KR_CBOR_MAP);
    FUZZ_CHECK(kr_cbor_map_find(&map, "offset", &x) == 1 && x.kind == KR_CBOR_UINT &&
               x.u == v.offset);
    FUZZ_CHECK(kr_cbor_map_find(&map, "value", &x) == 1);
    FUZZ_CHECK((kr_cbor_map_find(&map, "headers", &x) == 1) == v.has_headers);
    bool cut = o != NULL && o->value_limit > 0 && v.value.raw_len > o->value_limit;
    FUZZ_CHECK((kr_cbor_map_find(&map, "value_truncated", &x) == 1) == cut);
    if (cut) {
        FUZZ_CHECK(kr_cbor_map_find(&map, "value", &x) == 1 && x.kind == KR_CBOR_TEXT &&
                   x.str_len <= o->value_limit * KR_JSON_ESC_MAX);
    }
    kr_buf_free(&cbor);
    kr_buf_free(&out);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1)
        return 0;
    bool json = data[0] & 1;
    unsigned flags = data[0] & 2 ? KR_CBOR_JSON_BYTES_HEX : 0;
    const uint8_t *item = data + 1;
    size_t len = size - 1;

    kr_cbor_item it;
    bool readable = len > 0 && kr_cbor_read_exact(item, len, &it) == 0;
    bool renders = readable && nesting(&it, KR_CBOR_TEXT_MAX_DEPTH + 1) <= KR_CBOR_TEXT_MAX_DEPTH;

    kr_buf out;
    kr_buf_init(&out, sizeof prefix - 1 + len * 32 + 256);
    kr_buf_append(&out, prefix, sizeof prefix - 1);
    int rc = kr_cbor_render(item, len, json, flags, &out);
    FUZZ_CHECK(rc == (renders ? 0 : -1));
    FUZZ_CHECK(out.len >= sizeof prefix - 1 && memcmp(out.data, prefix, sizeof prefix - 1) == 0);
    if (rc < 0) {
        FUZZ_CHECK(out.len == sizeof prefix - 1 && !out.failed);
    } else {
        const uint8_t *text = out.data + sizeof prefix - 1;
        size_t n = out.len - (sizeof prefix - 1);
        FUZZ_CHECK(n > 0 && terminal_safe(text, n));
        if (json)
            json_fixed_point(text, n, flags);
    }
    kr_buf_free(&out);
    if (readable) {
        /* As the admin API shows events: values cut at a limit taken from
         * the mode byte, headers as text. */
        const kr_event_json_opts o = {(size_t)(data[0] >> 2), true};
        check_event(&it, NULL);
        check_event(&it, &o);
    }
    return 0;
}
