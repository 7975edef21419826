/*
 * client/client_internal.h - helpers of libkrappy shared with the krappy CLI
 * and the unit tests, but not part of the public API.
 *
 * They are built into libkrappy.a and libkrappy.so like everything else, but
 * the version script (libkrappy.map) hides every kr_ symbol from the .so:
 * only programs linking the static library (the CLI, the tests) see them.
 */
#ifndef KR_CLIENT_INTERNAL_H
#define KR_CLIENT_INTERNAL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "krappy/protocol.h"
#include "proto/buf.h"

/* Longest host name or address accepted in "HOST:PORT" (bytes, without NUL). */
#define KR_CLIENT_HOST_MAX 255
/* Longest port text: "65535". */
#define KR_CLIENT_PORT_MAX 5

/* The address used when none is given. */
#define KR_CLIENT_DEFAULT_HOST "127.0.0.1"
#define KR_CLIENT_DEFAULT_PORT "7070"

/*
 * kr_client_split_addr - split an address in the form of KRAPPY_ADDR:
 * "HOST:PORT", "HOST" (port 7070), ":PORT" (host 127.0.0.1),
 * "[V6ADDR]:PORT" or "[V6ADDR]"; NULL or "" gives 127.0.0.1 and 7070.
 * A port is decimal 1..65535. An IPv6 address must be written in brackets
 * (in "::1:7070" the port cannot be told apart from the address).
 * @param host  receives the host, NUL-terminated (KR_CLIENT_HOST_MAX + 1 bytes)
 * @param port  receives the port, NUL-terminated (KR_CLIENT_PORT_MAX + 1 bytes)
 * @param why   on failure, a sentence saying what is wrong (may be NULL)
 * @return 0 on success, -1 for a malformed address.
 */
int kr_client_split_addr(const char *addr, char host[KR_CLIENT_HOST_MAX + 1],
                         char port[KR_CLIENT_PORT_MAX + 1], char *why, size_t whylen);

/*
 * kr_client_port_valid - 1 when `port` is 1..5 decimal digits naming a
 * port 1..65535 (no sign, no spaces), else 0.
 */
int kr_client_port_valid(const char *port);

/*
 * kr_client_format_addr - "HOST:PORT", with the host in brackets when it
 * contains ':' (an IPv6 address). Always NUL-terminates (truncates).
 */
void kr_client_format_addr(char *out, size_t outlen, const char *host, const char *port);

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
    const uint8_t *key; /* UTF-8 text, key_len bytes; sent as a text key */
    size_t key_len;
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
 * object whose values are strings (sent as bytes, their UTF-8) or null. Any
 * other member, or one given twice, is refused.
 * @param scratch  reset, then holds what ev points to (valid until the next
 *                 use of scratch)
 * @param why      on KRAPPY_E_USAGE, a sentence saying what is wrong
 * @return KRAPPY_OK, KRAPPY_E_USAGE or KRAPPY_E_NOMEM.
 */
krappy_err kr_json_event_parse(const char *line, size_t len, kr_buf *scratch, kr_json_event *ev,
                               char *why, size_t whylen);

#endif
