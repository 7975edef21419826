/*
 * proto/json_parse.h - JSON read into CBOR: the work behind
 * krappy_json_to_cbor, the event lines of `krappy produce --json` and the
 * JSON bodies of the admin API's POSTs.
 *
 * A parser that does no I/O (json_parse.c): libkrappy, the CLI, krappyd's
 * admin port and the tests call it. Not public API: the version script
 * hides it from libkrappy.so; programs that link libkrappy.a (the CLI) see
 * it.
 */
#ifndef KR_PROTO_JSON_PARSE_H
#define KR_PROTO_JSON_PARSE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "krappy/protocol.h"
#include "util/buf.h"

/*
 * kr_json_to_cbor - append the CBOR encoding of one JSON value to `out`
 * (the work of krappy_json_to_cbor, without the allocation). On failure
 * `out` is as it was.
 * @return KRAPPY_OK; KRAPPY_E_USAGE (why says what and at which byte);
 *         KRAPPY_E_NOMEM (also when `out` reached its cap).
 */
krappy_err kr_json_to_cbor(const char *json, size_t len, kr_buf *out, char *why, size_t whylen);

/* One event of `krappy produce --json`: pointers into the scratch buffer. */
typedef struct kr_json_event {
    bool has_key;
    const uint8_t *key; /* key_len bytes: UTF-8 text, sent as a text key, or
                           bytes (key_is_bytes: "key_is_hex": true, the key
                           given as hex digits) sent as a byte key */
    size_t key_len;
    bool key_is_bytes;
    const uint8_t *value; /* one CBOR item; 0xf6 (null) = tombstone */
    size_t value_len;
    bool has_ts;
    uint64_t ts;
    const uint8_t *headers; /* CBOR map text -> bytes; NULL when none */
    size_t headers_len;
    size_t n_headers;
} kr_json_event;

/*
 * kr_json_event_parse - read one JSON line {"key": .., "value": .., "ts":
 * .., "headers": {..}}: "value" (any JSON, encoded as krappy_json_to_cbor
 * does; null = tombstone) is required; "key" a string (text key) or null
 * (no key); "ts" a uint of milliseconds or null (server time); "headers" an
 * object whose values are strings (sent as bytes, their UTF-8), objects
 * {"hex": ..} or {"base64url": ..} (those bytes), or null. What `krappy
 * fetch --json` prints reads back: "offset" (ignored) and "key_is_hex" (the
 * key is hex for a byte key) are taken too. Any other member, or one given
 * twice, is refused.
 * @param scratch  reset, then holds what ev points to (valid until the next
 *                 use of scratch)
 * @param why      on KRAPPY_E_USAGE, a sentence saying what is wrong
 * @return KRAPPY_OK, KRAPPY_E_USAGE or KRAPPY_E_NOMEM.
 */
krappy_err kr_json_event_parse(const char *line, size_t len, kr_buf *scratch, kr_json_event *ev,
                               char *why, size_t whylen);

#endif
