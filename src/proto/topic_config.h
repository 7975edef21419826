/*
 * proto/topic_config.h - a topic's settings as the protocol names them
 * (PROTOCOL.md section 9, TOPIC_CONFIG): their names, their ranges, the
 * CBOR map that carries them (a request's `set`, a reply's `config`, and
 * the record the server keeps per topic), and "name=value" text for the
 * CLI and the admin API. No I/O.
 *
 * A kr_topic_config holds any subset of the settings: `mask` says which
 * (bit 1 << KR_TC_...). A change (`set`) or a topic's own overrides name
 * some; a topic's effective settings name all of them. A change may also
 * reset settings (`reset`): a topic's own value of each goes, and the
 * server's default applies again (a `set` naming the setting with null).
 */
#ifndef KR_PROTO_TOPIC_CONFIG_H
#define KR_PROTO_TOPIC_CONFIG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "krappy/protocol.h"
#include "util/buf.h"
#include "proto/cbor.h"

/* The settings, in the order replies list them. */
typedef enum kr_tc_field {
    KR_TC_CLEANUP = 0,         /* text on the wire: KR_CLEANUP_* bits here */
    KR_TC_RETENTION_BYTES,     /* 0 = no size limit */
    KR_TC_RETENTION_MS,        /* 0 = no age limit */
    KR_TC_DELETE_RETENTION_MS, /* how long a compacted tombstone stays */
    KR_TC_SEGMENT_BYTES,       /* roll the active segment at this size */
    KR_TC_SEGMENT_MS,          /* roll a non-empty active segment this old (0 = never) */
    KR_TC_N
} kr_tc_field;

#define KR_TC_ALL ((1u << KR_TC_N) - 1)

/* `cleanup` bits: "delete" = DELETE, "compact" = COMPACT, "compact,delete"
 * (or "delete,compact") = both. Never 0. */
#define KR_CLEANUP_DELETE  1u
#define KR_CLEANUP_COMPACT 2u

/* Ranges of the uint settings (both ends included). */
#define KR_TC_SEGMENT_BYTES_MIN 4096ull
#define KR_TC_SEGMENT_BYTES_MAX (1ull << 40)
#define KR_TC_SEGMENT_MS_MIN    100ull /* or 0: never */

typedef struct kr_topic_config {
    uint32_t mask;       /* bit per kr_tc_field: the settings held */
    uint32_t reset;      /* bit per kr_tc_field: settings a change resets
                            (never in mask) */
    uint64_t v[KR_TC_N]; /* by kr_tc_field; only masked ones mean anything */
} kr_topic_config;

/* The word that resets a setting in "name=value" text. */
#define KR_TC_RESET_WORD "default"

/* The setting's wire name ("cleanup", "retention_bytes", ...), or NULL
 * for a number that is no setting. Static storage. */
const char *kr_tc_name(int field);

/* The setting named name[0..len), or -1 when there is none by that name. */
int kr_tc_lookup(const char *name, size_t len);

/* "delete", "compact" or "compact,delete" for KR_CLEANUP_* bits (NULL for
 * anything else). Static storage. */
const char *kr_cleanup_name(uint64_t cleanup);

/* Parse a cleanup policy: "delete", "compact", "compact,delete" or
 * "delete,compact". @return 0 and *out, or -1. */
int kr_cleanup_parse(const char *s, size_t len, uint64_t *out);

/*
 * kr_tc_check - is v allowed for the setting?
 * @return 0, or -1 with msg holding a sentence that names the setting and
 *         its range.
 */
int kr_tc_check(int field, uint64_t v, char *msg, size_t msglen);

/*
 * kr_tc_decode - read a CBOR map of settings (a TOPIC_CONFIG `set`, a
 * reply's `config`, a stored record) into out (mask = the names found).
 * Values: text for `cleanup`, uint for the others, each within its range.
 * With `strict` (a change), null resets the setting (out->reset), and an
 * unknown name is refused; without (a reply from a newer server, a stored
 * record), null counts as absent and an unknown name is skipped. A name
 * given twice: the last one counts.
 * @return KRAPPY_OK, or KRAPPY_E_INVALID_ARGUMENT with msg naming the
 *         setting and what it takes.
 */
krappy_err kr_tc_decode(const kr_cbor_item *map, bool strict, kr_topic_config *out, char *msg,
                        size_t msglen);

/* Append the CBOR map of the masked settings of c to b, in field order,
 * then those it resets, with null. */
void kr_tc_encode(kr_buf *b, const kr_topic_config *c);

/* Apply the change src to dst: the settings src holds copied in
 * (dst->mask grows by src->mask), those it resets dropped from dst->mask. */
void kr_tc_merge(kr_topic_config *dst, const kr_topic_config *src);

/*
 * kr_tc_parse_assign - "name=value" text (the CLI's --set, the admin API)
 * into out, added to what it holds. `cleanup` takes its policy names;
 * byte settings take a number with an optional K, M or G (powers of
 * 1024); ms settings a number with an optional ms, s, m, h or d (a bare
 * number is milliseconds). "name=default" (KR_TC_RESET_WORD) resets it.
 * @return 0, or -1 with msg holding a sentence naming what was wrong.
 */
int kr_tc_parse_assign(const char *text, kr_topic_config *out, char *msg, size_t msglen);

#endif
