/*
 * tests/fuzz/fuzz_json.c - fuzz the JSON reader (proto/json_parse.c):
 * kr_json_to_cbor (krappy_json_to_cbor, `krappy produce` values) and
 * kr_json_event_parse (the lines of `krappy produce --json`).
 *
 * Input: a mode byte, then the text. Mode bit 0: read the text as an event
 * line (else as one JSON value). The checks:
 *   - a value reads to exactly one well-formed CBOR item appended to the
 *     output, within the 4 bytes per byte of text libkrappy allots it, or
 *     fails with a sentence and leaves the output as it was;
 *   - what it read renders as JSON (proto/cbor_text.c) that reads back, and
 *     from there rendering and reading again is a fixed point (the two
 *     agree on every value JSON can say);
 *   - an event line gives a key within the key limit (valid UTF-8 unless
 *     "key_is_hex" made it bytes), a
 *     value that is one CBOR item, and headers that are a map of text to
 *     bytes with as many entries as it says - all inside the scratch buffer.
 */
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "proto/json_parse.h"
#include "proto/cbor.h"
#include "proto/cbor_text.h"
#include "util/utf8.h"
#include "fuzz_check.h"
#include "json_check.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* Bytes already in the output buffer before a read: they must survive. */
static const uint8_t prefix[] = {0xde, 0xad};

/* p[0..n) lies inside the buffer b. */
static int inside(const kr_buf *b, const uint8_t *p, size_t n)
{
    return p >= b->data && n <= b->len && (size_t)(p - b->data) <= b->len - n;
}

static void check_value(const char *text, size_t n)
{
    kr_buf out, json;
    char why[200] = "unset";
    kr_cbor_item it;

    kr_buf_init(&out, sizeof prefix + n * 4 + 64);
    kr_buf_append(&out, prefix, sizeof prefix);
    krappy_err e = kr_json_to_cbor(text, n, &out, why, sizeof why);
    FUZZ_CHECK(out.len >= sizeof prefix && memcmp(out.data, prefix, sizeof prefix) == 0);
    FUZZ_CHECK(memchr(why, 0, sizeof why) != NULL);
    if (e != KRAPPY_OK) {
        FUZZ_CHECK(e == KRAPPY_E_USAGE); /* never out of room: the allotment holds */
        FUZZ_CHECK(why[0] != '\0');
        FUZZ_CHECK(out.len == sizeof prefix && !out.failed);
        kr_buf_free(&out);
        return;
    }
    const uint8_t *item = out.data + sizeof prefix;
    size_t len = out.len - sizeof prefix;
    FUZZ_CHECK(kr_cbor_read_exact(item, len, &it) == 0);

    kr_buf_init(&json, len * 32 + 256);
    FUZZ_CHECK(kr_cbor_render(item, len, true, 0, &json) == 0);
    /* From the rendering on a fixed point (the first may lose what JSON
     * cannot say: an overflowing number read as infinity comes back null). */
    json_fixed_point(json.data, json.len, 0);
    kr_buf_free(&json);
    kr_buf_free(&out);
}

static void check_event(const char *text, size_t n)
{
    kr_buf scratch;
    kr_json_event ev;
    char why[200] = "unset";
    kr_cbor_item it, k, v;

    kr_buf_init(&scratch, n * 8 + 256); /* the value (4n + 64) and room for headers */
    krappy_err e = kr_json_event_parse(text, n, &scratch, &ev, why, sizeof why);
    FUZZ_CHECK(memchr(why, 0, sizeof why) != NULL);
    if (e != KRAPPY_OK) {
        FUZZ_CHECK(e == KRAPPY_E_USAGE);
        FUZZ_CHECK(why[0] != '\0');
        kr_buf_free(&scratch);
        return;
    }
    FUZZ_CHECK(inside(&scratch, ev.value, ev.value_len));
    FUZZ_CHECK(kr_cbor_read_exact(ev.value, ev.value_len, &it) == 0);
    if (ev.has_key) {
        FUZZ_CHECK(ev.key_len <= KRAPPY_MAX_KEY_BYTES);
        FUZZ_CHECK(ev.key_len == 0 || inside(&scratch, ev.key, ev.key_len));
        FUZZ_CHECK(ev.key_len == 0 || ev.key_is_bytes || kr_utf8_valid(ev.key, ev.key_len));
    }
    if (ev.headers != NULL) {
        FUZZ_CHECK(inside(&scratch, ev.headers, ev.headers_len));
        FUZZ_CHECK(kr_cbor_read_exact(ev.headers, ev.headers_len, &it) == 0);
        FUZZ_CHECK(it.kind == KR_CBOR_MAP && it.u == ev.n_headers);
        kr_cbor_iter ci;
        size_t pairs = 0;
        kr_cbor_iter_init(&ci, &it);
        while (kr_cbor_iter_next(&ci, &k) == 1) {
            FUZZ_CHECK(kr_cbor_iter_next(&ci, &v) == 1);
            FUZZ_CHECK(k.kind == KR_CBOR_TEXT && v.kind == KR_CBOR_BYTES);
            pairs++;
        }
        FUZZ_CHECK(pairs == ev.n_headers);
    } else {
        FUZZ_CHECK(ev.n_headers == 0);
    }
    kr_buf_free(&scratch);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1)
        return 0;
    const char *text = (const char *)data + 1;
    if (data[0] & 1)
        check_event(text, size - 1);
    else
        check_value(text, size - 1);
    return 0;
}
