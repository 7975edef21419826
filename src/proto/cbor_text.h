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

/* JSON: byte strings as hex rather than base64url (= KRAPPY_JSON_BYTES_HEX). */
#define KR_CBOR_JSON_BYTES_HEX 1u
/* Nesting rendered at most (= KRAPPY_CBOR_MAX_DEPTH). */
#define KR_CBOR_TEXT_MAX_DEPTH 64

/*
 * kr_cbor_render - append the text of the one item in item[0..len) to out:
 * JSON when `json` (text, numbers, bools, null, arrays, maps with text keys;
 * anything else in diagnostic notation as a JSON string), else diagnostic
 * notation.
 * @return 0; -1 when the bytes are not exactly one well-formed item or nest
 *         deeper than KR_CBOR_TEXT_MAX_DEPTH; -2 when out refused to grow.
 */
int kr_cbor_render(const void *item, size_t len, bool json, unsigned flags, kr_buf *out);

#endif
