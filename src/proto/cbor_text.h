/*
 * proto/cbor_text.h - render an encoded CBOR item as diagnostic notation or
 * JSON (libkrappy's krappy_cbor_to_diag/json and krappyd's admin API).
 */
#ifndef KR_PROTO_CBOR_TEXT_H
#define KR_PROTO_CBOR_TEXT_H

#include <stdbool.h>
#include <stddef.h>

#include "util/buf.h"
#include "proto/cbor.h"
#include "proto/msg.h"

/* JSON: byte strings as hex rather than base64url (= KRAPPY_JSON_BYTES_HEX). */
#define KR_CBOR_JSON_BYTES_HEX 1u
/* Arrays, maps and tags nested at most (= KRAPPY_CBOR_MAX_DEPTH); scalars
 * inside the innermost do not count. */
#define KR_CBOR_TEXT_MAX_DEPTH 64

/*
 * kr_cbor_render - append the text of the one item in item[0..len) to out:
 * JSON when `json` (text, numbers, bools, null, arrays, maps with text keys;
 * anything else in diagnostic notation as a JSON string), else diagnostic
 * notation.
 * Text is valid UTF-8 with every control character escaped; JSON output
 * reads back with the JSON reader (client/json.c), whose nesting limit is
 * the same.
 * @return 0; -1 when the bytes are not exactly one well-formed item or nest
 *         deeper than KR_CBOR_TEXT_MAX_DEPTH; -2 when out refused to grow.
 *         On failure out is as it was (no partial text).
 */
int kr_cbor_render(const void *item, size_t len, bool json, unsigned flags, kr_buf *out);

/*
 * kr_cbor_render_event_json - append one delivered event as the JSON object
 * of krappyd's admin API: {"offset", "ts", "key", "value", "headers"?},
 * byte strings in base64url. The object is valid JSON whatever the event
 * holds, nested at most KR_CBOR_TEXT_MAX_DEPTH deep with its own level: a
 * part nested deeper than KR_CBOR_TEXT_MAX_DEPTH - 1 is written as null,
 * and an "error" member then says which part was not shown and why.
 * @param v  an event read by kr_event_view_read; borrowed
 * @return 0; -2 when out refused to grow (out is then as it was).
 */
int kr_cbor_render_event_json(const kr_event_view *v, kr_buf *out);

/* How kr_cbor_render_event_json_opts renders an event. */
typedef struct kr_event_json_opts {
    size_t value_limit; /* 0: the whole value. Else a value of more CBOR bytes is
                           cut: "value" is then a string with its first
                           value_limit bytes of text (a text string's own
                           characters, anything else its JSON), and
                           "value_truncated": true, "value_bytes": its size */
    bool text_headers;  /* header values that are UTF-8 as JSON strings, the
                           others as {"base64url": "..."} */
} kr_event_json_opts;

/* kr_cbor_render_event_json with options (kr_cbor_render_event_json: none,
 * byte strings everywhere in base64url). @return as it. */
int kr_cbor_render_event_json_opts(const kr_event_view *v, const kr_event_json_opts *o,
                                   kr_buf *out);

#endif
