/*
 * proto/msg.h - the payload of every Krappy message (PROTOCOL.md section 3).
 *
 * Requests are decoded into kr_request by kr_req_decode, which applies the
 * check order of PROTOCOL.md section 5 from "payload well-formed" to "fields
 * valid": BAD_PAYLOAD (not exactly one CBOR map with text keys), then
 * UNKNOWN_TYPE, then INVALID_ARGUMENT (missing field, wrong type, value out of
 * range). Protocol defaults are filled in for absent optional fields; a field
 * given as null counts as absent (except an event's ts). Unknown keys are
 * ignored and the last of duplicated keys wins.
 *
 * Decoding never allocates. Decoded strings point into the payload, except
 * indefinite-length strings, whose chunks are joined into the caller's
 * scratch buffer; the payload and scratch must outlive the request.
 * PUBLISH events are not materialised: kr_events_iter walks them one by one.
 *
 * Encoders append a whole payload (not the frame header) to a kr_buf,
 * shortest form, definite lengths, `cid` first when the request had one.
 * Reply decoders (client side) mirror them.
 *
 * One header, three files by direction: msg_request.c (request decoding,
 * server side), msg_encode.c (encoders, both sides), msg_reply.c (reply
 * decoding, client side).
 */
#ifndef KR_PROTO_MSG_H
#define KR_PROTO_MSG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "krappy/protocol.h"
#include "util/buf.h"
#include "proto/cbor.h"
#include "proto/topic_config.h"

/* Content bytes of a string (not NUL-terminated). */
typedef struct kr_str {
    const uint8_t *ptr;
    size_t len;
} kr_str;

/* A request's correlation id, echoed by every reply to it. */
typedef struct kr_cid {
    bool set;
    uint64_t v;
} kr_cid;

typedef enum kr_ack_mode { KR_ACK_WRITE = 0, KR_ACK_SYNC, KR_ACK_NONE } kr_ack_mode;
typedef enum kr_consumer_ack { KR_CACK_EXPLICIT = 0, KR_CACK_AUTO } kr_consumer_ack;
typedef enum kr_start_kind {
    KR_START_EARLIEST = 0,
    KR_START_LATEST,
    KR_START_OFFSET
} kr_start_kind;

/* Where GROUP_SEEK moves a cursor. KR_SEEK_TIME is krappyd's addition
 * (`ts` instead of `to`: the first offset whose event has ts >= it). */
typedef enum kr_seek_kind {
    KR_SEEK_EARLIEST = 0,
    KR_SEEK_LATEST,
    KR_SEEK_OFFSET,
    KR_SEEK_TIME
} kr_seek_kind;

/* An event key: absent (null = no key) or byte/text content. `raw` is the key
 * item exactly as sent (for delivering it back). */
typedef struct kr_key {
    bool present;
    bool is_text;
    kr_str content; /* identity: content bytes (joined if indefinite) */
    kr_str raw;     /* the encoded item as sent; for null, the null byte */
} kr_key;

/* One event of a PUBLISH, as produced by kr_events_iter_next. */
typedef struct kr_event_in {
    kr_key key;
    kr_str value;   /* encoded value item, byte for byte; null = tombstone */
    bool tombstone; /* value is CBOR null */
    bool has_ts;    /* false: server time */
    uint64_t ts;
    bool has_headers;
    kr_str headers; /* encoded headers map, as sent (validated) */
} kr_event_in;

typedef struct kr_request {
    uint32_t type;
    kr_cid cid;
    union {
        struct {
            kr_str topic, id;
            bool idempotent; /* section 7: absent or null is false */
        } producer_register;
        struct {
            kr_str topic, group;
            bool has_member;
            kr_str member;
            kr_start_kind start;
            uint64_t start_offset; /* KR_START_OFFSET */
            kr_consumer_ack ack;
            uint64_t ack_wait_ms;
        } consumer_register;
        struct {
            kr_ack_mode ack;
            bool batch;          /* `events` form */
            kr_cbor_item events; /* batch: the events array */
            kr_cbor_iter rest;   /* batch: the events after the first */
            uint64_t count;      /* number of events (1 for the single form) */
            kr_event_in first;   /* the first (single form: only) event */
            bool has_seq;        /* section 7: the first event's sequence */
            uint64_t seq;        /* number (required on an idempotent
                                    registration; the handler judges that) */
        } publish;
        struct {
            uint64_t max, wait_ms, max_bytes;
        } poll;
        struct {
            bool has_upto;
            uint64_t upto;
            kr_cbor_item offsets; /* array of uint, when !has_upto */
            uint64_t n_offsets;
        } ack;
        struct {
            kr_str topic;
            kr_key key;
        } get;
        struct {
            kr_str topic;
            bool has_prefix, has_after, has_cursor;
            kr_str prefix, after; /* key content bytes */
            kr_str cursor;        /* opaque bytes from an earlier ENTRIES */
            uint64_t limit;
        } scan;
        struct {
            kr_str topic;
            uint64_t offset, max, wait_ms, max_bytes;
        } fetch;
        struct {
            uint64_t version;
            bool has_client, has_token;
            kr_str client, token;
        } hello;
        struct {
            kr_str topic;
            bool has_group;
            kr_str group;
        } stats;
        struct {
            kr_str topic;
        } delete_topic;
        struct {
            kr_str topic, group;
            kr_seek_kind to;
            uint64_t value; /* KR_SEEK_OFFSET: the offset; KR_SEEK_TIME: ms */
        } group_seek;
        struct {
            kr_str topic, group;
        } group_delete;
        struct {
            /* krappyd's membership changes (the leader only): `add`
             * {id, raft} or `remove` id; neither: just the picture. */
            bool has_add, has_remove;
            uint64_t id;
            kr_str raft; /* add: the node's raft "host:port" */
        } cluster;
        struct {
            kr_str topic;
            bool has_set;        /* `set` given (and not null): a change */
            kr_topic_config set; /* the settings named, validated */
        } topic_config;
    } u;
} kr_request;

/*
 * kr_req_decode - decode and validate a request payload.
 * @param type     the frame type
 * @param payload  the payload bytes (len 0 means the empty map); borrowed
 * @param scratch  receives joined indefinite strings; it is reset, and len
 *                 bytes are reserved before the first join, so pointers into
 *                 it stay valid (KRAPPY_E_NOMEM when that memory cannot be
 *                 had). Nothing is allocated when the payload has no
 *                 indefinite-length string to join. NULL: such strings get
 *                 KRAPPY_E_NOMEM.
 * @param req      filled on success; req->cid is filled whenever the payload
 *                 was a well-formed map with a valid cid, even on error
 * @param msg      receives a sentence a person can act on, on error
 * @return KRAPPY_OK, KRAPPY_E_BAD_PAYLOAD, KRAPPY_E_UNKNOWN_TYPE,
 *         KRAPPY_E_INVALID_ARGUMENT, KRAPPY_E_UNSUPPORTED_VERSION (HELLO
 *         with a version other than 1), or KRAPPY_E_NOMEM.
 */
krappy_err kr_req_decode(uint32_t type, const uint8_t *payload, size_t len, kr_buf *scratch,
                         kr_request *req, char *msg, size_t msglen);

/*
 * kr_req_peek_cid - find a valid `cid` in a payload without judging the rest.
 * Used to echo the cid on errors found before field validation.
 * @return 1 and *cid set when the payload is a well-formed map with a uint
 *         cid; 0 otherwise.
 */
int kr_req_peek_cid(const uint8_t *payload, size_t len, uint64_t *cid);

/*
 * kr_req_peek_ack_none - does a PUBLISH payload ask for `ack: "none"`?
 * For a payload kr_req_decode refused: a fire-and-forget producer's refused
 * PUBLISH must close the connection (PROTOCOL.md section 4) whatever the
 * fault. The map's entries are read in order up to its end or its first
 * malformed entry (so a truncated payload, trailing bytes or a non-text key
 * do not hide an `ack` read before them); the last `ack` read counts.
 * @return 1 when that `ack` is the text "none"; 0 otherwise (no map, no ack,
 *         another value).
 */
int kr_req_peek_ack_none(const uint8_t *payload, size_t len);

/* Iterates over the events of a decoded PUBLISH (either form). */
typedef struct kr_events_iter {
    const kr_request *req;
    kr_cbor_iter it;
    uint64_t index;
    kr_buf *scratch;
} kr_events_iter;

void kr_events_iter_init(kr_events_iter *ei, const kr_request *publish, kr_buf *scratch);

/*
 * kr_events_iter_next - the next event, in order.
 * Events were validated by kr_req_decode, which also decoded the first (so
 * a single-event PUBLISH is not walked again). The content of an indefinite-length
 * key is joined by appending to scratch, which must be the buffer given to
 * kr_req_decode: that reserved room for one pass over the events, so every
 * pointer of that pass stays valid. A second pass appends again and may
 * move the buffer, invalidating the pointers of the first.
 * @return 1 and *ev filled; 0 at the end; -1 only when scratch refuses an
 *         indefinite key (not on the single pass described above).
 */
int kr_events_iter_next(kr_events_iter *ei, kr_event_in *ev);

/* Name validation (PROTOCOL.md section 2). @return 1 when valid. */
int kr_topic_name_valid(const uint8_t *p, size_t n);
int kr_id_valid(const uint8_t *p, size_t n); /* group, member, producer ids */

/* ---- Request encoders (client side). Each appends a whole payload. ---- */

typedef struct kr_event_out_spec {
    const void *key; /* NULL = no key */
    size_t key_len;
    bool key_is_text;
    const void *value; /* encoded CBOR item; NULL = null (tombstone) */
    size_t value_len;
    bool has_ts;
    uint64_t ts;
    const void *headers; /* encoded CBOR map of text -> bytes, or NULL */
    size_t headers_len;
} kr_event_out_spec;

void kr_enc_hello(kr_buf *b, kr_cid cid, uint64_t version, const char *client, const char *token);
void kr_enc_empty(kr_buf *b, kr_cid cid); /* PING, TOPICS: {} or {cid} */
void kr_enc_producer_register(kr_buf *b, kr_cid cid, const char *topic, const char *id);
/* PRODUCER_REGISTER with `idempotent: true` (section 7). */
void kr_enc_producer_register_idempotent(kr_buf *b, kr_cid cid, const char *topic, const char *id);
void kr_enc_consumer_register(kr_buf *b, kr_cid cid, const char *topic, const char *group,
                              const char *member, kr_start_kind start, uint64_t start_offset,
                              kr_consumer_ack ack, uint64_t ack_wait_ms);
void kr_enc_publish(kr_buf *b, kr_cid cid, kr_ack_mode ack, const kr_event_out_spec *events,
                    size_t n);
/* PUBLISH carrying `seq`, the first event's sequence number (section 7). */
void kr_enc_publish_seq(kr_buf *b, kr_cid cid, kr_ack_mode ack, uint64_t seq,
                        const kr_event_out_spec *events, size_t n);
void kr_enc_poll(kr_buf *b, kr_cid cid, uint64_t max, uint64_t wait_ms, uint64_t max_bytes);
void kr_enc_ack_upto(kr_buf *b, kr_cid cid, uint64_t upto);
void kr_enc_ack_offsets(kr_buf *b, kr_cid cid, const uint64_t *offsets, size_t n);
void kr_enc_get(kr_buf *b, kr_cid cid, const char *topic, const void *key, size_t key_len);
void kr_enc_scan(kr_buf *b, kr_cid cid, const char *topic, const void *prefix, size_t prefix_len,
                 const void *after, size_t after_len, uint64_t limit, const void *cursor,
                 size_t cursor_len); /* NULL / 0 leave a field out */
void kr_enc_fetch(kr_buf *b, kr_cid cid, const char *topic, uint64_t offset, uint64_t max,
                  uint64_t wait_ms, uint64_t max_bytes);
void kr_enc_stats(kr_buf *b, kr_cid cid, const char *topic, const char *group);
void kr_enc_delete_topic(kr_buf *b, kr_cid cid, const char *topic);
/* GROUP_SEEK {topic, group, to} (`to` "earliest", "latest" or the offset
 * `value`), or with KR_SEEK_TIME {topic, group, ts: value}. */
void kr_enc_group_seek(kr_buf *b, kr_cid cid, const char *topic, const char *group, kr_seek_kind to,
                       uint64_t value);
void kr_enc_group_delete(kr_buf *b, kr_cid cid, const char *topic, const char *group);
/* CLUSTER {}, or with add {id, raft} (raft not NULL) or remove id (id > 0,
 * raft NULL) - krappyd's membership changes. id 0: neither. */
void kr_enc_cluster(kr_buf *b, kr_cid cid, uint64_t id, const char *raft);
/* TOPIC_CONFIG {topic, set?}: set NULL (or naming nothing) reads. */
void kr_enc_topic_config(kr_buf *b, kr_cid cid, const char *topic, const kr_topic_config *set);

/* ---- Reply encoders (server side). ---- */

/* ERROR {cid?, code, message, first?, next?, versions?, index?, expected?}. */
typedef struct kr_error_extra {
    bool has_range; /* OFFSET_OUT_OF_RANGE: first, next */
    uint64_t first, next;
    bool has_versions; /* UNSUPPORTED_VERSION: versions [1] */
    bool has_index;    /* PUBLISH: index of the offending event */
    uint64_t index;
    bool has_expected; /* OUT_OF_ORDER_SEQUENCE: the seq the server expects */
    uint64_t expected;
    const char *leader; /* NOT_LEADER: the leader's data "host:port" (NULL: none known) */
} kr_error_extra;

void kr_enc_error(kr_buf *b, kr_cid cid, krappy_err code, const char *message,
                  const kr_error_extra *extra); /* extra may be NULL */
void kr_enc_ok_empty(kr_buf *b, kr_cid cid);    /* PING */
void kr_enc_ok_hello(kr_buf *b, kr_cid cid, uint64_t version, const char *server,
                     uint64_t max_frame, uint64_t max_events);
void kr_enc_ok_producer(kr_buf *b, kr_cid cid, const kr_str *topic, uint64_t next);
/* OK {cid?, topic, next, epoch, seq}: an idempotent registration. */
void kr_enc_ok_producer_idempotent(kr_buf *b, kr_cid cid, const kr_str *topic, uint64_t next,
                                   uint64_t epoch, uint64_t seq);
void kr_enc_ok_consumer(kr_buf *b, kr_cid cid, const kr_str *topic, const kr_str *group,
                        const kr_str *member, uint64_t cursor);
void kr_enc_ok_publish(kr_buf *b, kr_cid cid, uint64_t first, uint64_t count);
/* OK {cid?, first, count, duplicate: true}: a repeated idempotent PUBLISH,
 * answered with the original's offsets. */
void kr_enc_ok_publish_duplicate(kr_buf *b, kr_cid cid, uint64_t first, uint64_t count);
void kr_enc_ok_ack(kr_buf *b, kr_cid cid, uint64_t cursor, const uint64_t *ignored, size_t n);
void kr_enc_ok_topic(kr_buf *b, kr_cid cid, const kr_str *topic); /* DELETE_TOPIC */
void kr_enc_ok_cursor(kr_buf *b, kr_cid cid, uint64_t cursor);    /* GROUP_SEEK */

/* CLUSTER's OK (PROTOCOL.md section 8): {cid?, cluster, node, term, leader
 * (null when 0), nodes, commit, applied, halted?} - `commit`, `applied` and
 * `halted` (true, and only there when the answering node's store failed
 * to apply the raft log) are krappyd's additions - then one
 * kr_enc_cluster_node per node. */
typedef struct kr_cluster_head {
    const char *cluster;
    uint64_t node, term, leader, commit, applied;
    bool halted;
} kr_cluster_head;
void kr_enc_ok_cluster_begin(kr_buf *b, kr_cid cid, const kr_cluster_head *h, size_t n_nodes);

/* One node: {id, addr, role} and krappyd's `raft` and `kafka` (when it has
 * them; NULL or "": none) and, as the leader sees it, `match` and `lag`
 * (has_lag). */
typedef struct kr_cluster_node_out {
    uint64_t id;
    const char *addr, *role, *raft, *kafka; /* kafka NULL or "": none */
    bool has_lag;
    uint64_t match, lag;
} kr_cluster_node_out;
void kr_enc_cluster_node(kr_buf *b, const kr_cluster_node_out *n);

/* OK {cid?, topic, config}: TOPIC_CONFIG's reply, every setting of cfg. */
void kr_enc_ok_topic_config(kr_buf *b, kr_cid cid, const kr_str *topic, const kr_topic_config *cfg);

/* OK {cid?, topics: [{name, first, next, config?}...]}: begin with the
 * count, then one kr_enc_topic per topic (cfg NULL: no `config`). */
void kr_enc_ok_topics_begin(kr_buf *b, kr_cid cid, size_t n);
void kr_enc_topic(kr_buf *b, const kr_str *name, uint64_t first, uint64_t next,
                  const kr_topic_config *cfg);

/* OK {cid?, topic, first, next, bytes, keys, producers, groups: [...]}:
 * then one kr_enc_group_stats per group. `producers`: the idempotent
 * producers the server keeps for the topic (krappyd's addition). */
void kr_enc_ok_stats_begin(kr_buf *b, kr_cid cid, const kr_str *topic, uint64_t first,
                           uint64_t next, uint64_t bytes, uint64_t keys, uint64_t producers,
                           size_t n_groups);
/* What STATS adds for krappyd's topic settings and compaction (section 9):
 * `config` (every setting) and `compaction` {dirty_bytes, reclaimed_bytes,
 * segments_rewritten, events_removed, ms}. */
typedef struct kr_stats_more {
    const kr_topic_config *cfg; /* NULL: no `config` */
    bool has_compaction;
    uint64_t dirty_bytes;        /* bytes of closed segments not compacted yet */
    uint64_t reclaimed_bytes;    /* disk compaction gave back, since the start */
    uint64_t segments_rewritten; /* since the start */
    uint64_t events_removed;     /* since the start */
    uint64_t ms;                 /* time spent compacting, since the start */
} kr_stats_more;
void kr_enc_ok_stats_begin_more(kr_buf *b, kr_cid cid, const kr_str *topic, uint64_t first,
                                uint64_t next, uint64_t bytes, uint64_t keys, uint64_t producers,
                                const kr_stats_more *more, size_t n_groups);
void kr_enc_group_stats(kr_buf *b, const kr_str *group, uint64_t cursor, uint64_t pending,
                        uint64_t lag, uint64_t members);
/* The same for a group of another kind, which the entry names (`kind`:
 * "kafka" for a Kafka consumer group: cursor is its committed offset). */
void kr_enc_group_stats_kind(kr_buf *b, const kr_str *group, uint64_t cursor, uint64_t pending,
                             uint64_t lag, uint64_t members, const char *kind);

/* EVENTS {cid?, events: [...], next}: begin with the count, append each
 * event's delivered encoding (kr_enc_event or stored bytes), then end. */
void kr_enc_events_begin(kr_buf *b, kr_cid cid, size_t n);
void kr_enc_events_end(kr_buf *b, uint64_t next);

/* One event in delivered form [offset, ts, key, value(, headers)], from the
 * raw items of an incoming event. */
void kr_enc_event(kr_buf *b, uint64_t offset, uint64_t ts, const kr_str *key_raw,
                  const kr_str *value_raw, const kr_str *headers_raw /* NULL: none */);

/* VALUE {cid?, key, offset, ts, value, headers?}; key/value/headers raw. */
void kr_enc_value(kr_buf *b, kr_cid cid, const kr_str *key_raw, uint64_t offset, uint64_t ts,
                  const kr_str *value_raw, const kr_str *headers_raw);

/* ENTRIES {cid?, entries: [[key, offset, ts, value]...], snapshot, cursor?}:
 * begin, then kr_enc_entry n times, then end (cursor NULL at the end). */
void kr_enc_entries_begin(kr_buf *b, kr_cid cid, size_t n, bool has_cursor);
void kr_enc_entry(kr_buf *b, const kr_str *key_raw, uint64_t offset, uint64_t ts,
                  const kr_str *value_raw);
void kr_enc_entries_end(kr_buf *b, uint64_t snapshot, const kr_str *cursor);

/* ---- Reply decoders (client side). ---- */

/* Any reply: the payload as a map, plus its cid. */
typedef struct kr_reply {
    uint32_t type;
    kr_cid cid;
    kr_cbor_item map;
} kr_reply;

/*
 * kr_reply_decode - check a reply payload is one well-formed map and find
 * its cid. Fields are then read with kr_cbor_map_find or the helpers below.
 * @return 0 on success, -1 when the payload is malformed.
 */
int kr_reply_decode(uint32_t type, const uint8_t *payload, size_t len, kr_reply *r);

/* ERROR fields. message points into the payload (not NUL-terminated). */
typedef struct kr_error_in {
    int code;
    kr_str message;
    bool has_range;
    uint64_t first, next;
    bool has_expected; /* OUT_OF_ORDER_SEQUENCE */
    uint64_t expected;
    kr_str leader; /* NOT_LEADER: the leader's "host:port" (len 0: none) */
} kr_error_in;

/* @return 0 on success, -1 when the ERROR payload lacks a uint code. */
int kr_reply_error(const kr_reply *r, kr_error_in *e);

/* Read a uint field of a reply map. @return 1 found, 0 absent/other type. */
int kr_reply_uint(const kr_reply *r, const char *field, uint64_t *v);

/* An event as delivered in EVENTS: items view into the payload. */
typedef struct kr_event_view {
    uint64_t offset, ts;
    kr_cbor_item key;   /* KR_CBOR_NULL, BYTES or TEXT */
    kr_cbor_item value; /* any item */
    bool has_headers;
    kr_cbor_item headers;
} kr_event_view;

/*
 * kr_event_view_read - read one delivered event (an array of 4 or 5 items).
 * @return 0 on success, -1 when it is not a delivered event.
 */
int kr_event_view_read(const kr_cbor_item *ev, kr_event_view *out);

/*
 * kr_event_view_parse - as kr_event_view_read, for the event whose encoding
 * starts at p (len bytes at most; what follows it is not looked at), read
 * in one pass: its parts are read and checked as they come, the array not
 * walked first.
 * @return 0 on success, -1 when it is not a delivered event (or malformed).
 */
int kr_event_view_parse(const uint8_t *p, size_t len, kr_event_view *out);

/* kr_event_view_parse, and *raw_len the bytes of the event's encoding. */
int kr_event_view_parse_len(const uint8_t *p, size_t len, kr_event_view *out, size_t *raw_len);

#endif
