/*
 * proto/msg_encode.c - the encoders of every message (msg.h): requests, which
 * the client sends, and replies, which the server sends. Each appends one
 * whole payload (not the frame header) to a kr_buf, shortest form, definite
 * lengths, `cid` first when the request had one.
 */
#include "proto/msg.h"

#include <string.h>

#define PUT_KEY(b, lit) kr_cbor_put_text((b), (lit), sizeof(lit) - 1)

/* Open a map of n fields (plus cid when set), cid first. */
static void map_open(kr_buf *b, kr_cid cid, size_t n)
{
    kr_cbor_put_map(b, n + (cid.set ? 1 : 0));
    if (cid.set) {
        PUT_KEY(b, "cid");
        kr_cbor_put_uint(b, cid.v);
    }
}

static void put_kr_text(kr_buf *b, const kr_str *s)
{
    kr_cbor_put_text(b, (const char *)s->ptr, s->len);
}

/* A raw item, or null when absent. */
static void put_raw_or_null(kr_buf *b, const kr_str *s)
{
    if (s == NULL || s->ptr == NULL || s->len == 0)
        kr_cbor_put_null(b);
    else
        kr_cbor_put_raw(b, s->ptr, s->len);
}

void kr_enc_hello(kr_buf *b, kr_cid cid, uint64_t version, const char *client, const char *token)
{
    map_open(b, cid, 1 + (client != NULL) + (token != NULL));
    PUT_KEY(b, "version");
    kr_cbor_put_uint(b, version);
    if (client != NULL) {
        PUT_KEY(b, "client");
        kr_cbor_put_cstr(b, client);
    }
    if (token != NULL) {
        PUT_KEY(b, "token");
        kr_cbor_put_cstr(b, token);
    }
}

void kr_enc_empty(kr_buf *b, kr_cid cid)
{
    map_open(b, cid, 0);
}

static void producer_register(kr_buf *b, kr_cid cid, const char *topic, const char *id,
                              bool idempotent)
{
    map_open(b, cid, 2 + idempotent);
    PUT_KEY(b, "topic");
    kr_cbor_put_cstr(b, topic);
    PUT_KEY(b, "id");
    kr_cbor_put_cstr(b, id);
    if (idempotent) {
        PUT_KEY(b, "idempotent");
        kr_cbor_put_bool(b, true);
    }
}

void kr_enc_producer_register(kr_buf *b, kr_cid cid, const char *topic, const char *id)
{
    producer_register(b, cid, topic, id, false);
}

void kr_enc_producer_register_idempotent(kr_buf *b, kr_cid cid, const char *topic, const char *id)
{
    producer_register(b, cid, topic, id, true);
}

void kr_enc_consumer_register(kr_buf *b, kr_cid cid, const char *topic, const char *group,
                              const char *member, kr_start_kind start, uint64_t start_offset,
                              kr_consumer_ack ack, uint64_t ack_wait_ms)
{
    map_open(b, cid, 5 + (member != NULL));
    PUT_KEY(b, "topic");
    kr_cbor_put_cstr(b, topic);
    PUT_KEY(b, "group");
    kr_cbor_put_cstr(b, group);
    if (member != NULL) {
        PUT_KEY(b, "member");
        kr_cbor_put_cstr(b, member);
    }
    PUT_KEY(b, "start");
    if (start == KR_START_OFFSET)
        kr_cbor_put_uint(b, start_offset);
    else if (start == KR_START_LATEST)
        PUT_KEY(b, "latest");
    else
        PUT_KEY(b, "earliest");
    PUT_KEY(b, "ack");
    if (ack == KR_CACK_AUTO)
        PUT_KEY(b, "auto");
    else
        PUT_KEY(b, "explicit");
    PUT_KEY(b, "ack_wait_ms");
    kr_cbor_put_uint(b, ack_wait_ms);
}

/* Events go as [key, value], [key, value, ts] or [key, value, ts, headers]
 * (ts null when only headers are given). */
static void publish(kr_buf *b, kr_cid cid, kr_ack_mode ack, const uint64_t *seq,
                    const kr_event_out_spec *events, size_t n)
{
    map_open(b, cid, 2 + (seq != NULL));
    if (seq != NULL) {
        PUT_KEY(b, "seq");
        kr_cbor_put_uint(b, *seq);
    }
    PUT_KEY(b, "ack");
    if (ack == KR_ACK_SYNC)
        PUT_KEY(b, "sync");
    else if (ack == KR_ACK_NONE)
        PUT_KEY(b, "none");
    else
        PUT_KEY(b, "write");
    PUT_KEY(b, "events");
    kr_cbor_put_array(b, n);
    for (size_t i = 0; i < n; i++) {
        const kr_event_out_spec *e = &events[i];
        kr_cbor_put_array(b, e->headers != NULL ? 4 : e->has_ts ? 3 : 2);
        if (e->key == NULL)
            kr_cbor_put_null(b);
        else if (e->key_is_text)
            kr_cbor_put_text(b, e->key, e->key_len);
        else
            kr_cbor_put_bytes(b, e->key, e->key_len);
        if (e->value == NULL)
            kr_cbor_put_null(b);
        else
            kr_cbor_put_raw(b, e->value, e->value_len);
        if (e->has_ts)
            kr_cbor_put_uint(b, e->ts);
        else if (e->headers != NULL)
            kr_cbor_put_null(b);
        if (e->headers != NULL)
            kr_cbor_put_raw(b, e->headers, e->headers_len);
    }
}

void kr_enc_publish(kr_buf *b, kr_cid cid, kr_ack_mode ack, const kr_event_out_spec *events,
                    size_t n)
{
    publish(b, cid, ack, NULL, events, n);
}

void kr_enc_publish_seq(kr_buf *b, kr_cid cid, kr_ack_mode ack, uint64_t seq,
                        const kr_event_out_spec *events, size_t n)
{
    publish(b, cid, ack, &seq, events, n);
}

/* The limits of a read that may wait (FETCH, POLL). */
static void put_read_limits(kr_buf *b, uint64_t max, uint64_t wait_ms, uint64_t max_bytes)
{
    PUT_KEY(b, "max");
    kr_cbor_put_uint(b, max);
    PUT_KEY(b, "wait_ms");
    kr_cbor_put_uint(b, wait_ms);
    PUT_KEY(b, "max_bytes");
    kr_cbor_put_uint(b, max_bytes);
}

void kr_enc_poll(kr_buf *b, kr_cid cid, uint64_t max, uint64_t wait_ms, uint64_t max_bytes)
{
    map_open(b, cid, 3);
    put_read_limits(b, max, wait_ms, max_bytes);
}

void kr_enc_ack_upto(kr_buf *b, kr_cid cid, uint64_t upto)
{
    map_open(b, cid, 1);
    PUT_KEY(b, "upto");
    kr_cbor_put_uint(b, upto);
}

void kr_enc_ack_offsets(kr_buf *b, kr_cid cid, const uint64_t *offsets, size_t n)
{
    map_open(b, cid, 1);
    PUT_KEY(b, "offsets");
    kr_cbor_put_array(b, n);
    for (size_t i = 0; i < n; i++)
        kr_cbor_put_uint(b, offsets[i]);
}

void kr_enc_get(kr_buf *b, kr_cid cid, const char *topic, const void *key, size_t key_len)
{
    map_open(b, cid, 2);
    PUT_KEY(b, "topic");
    kr_cbor_put_cstr(b, topic);
    PUT_KEY(b, "key");
    kr_cbor_put_bytes(b, key, key_len);
}

void kr_enc_scan(kr_buf *b, kr_cid cid, const char *topic, const void *prefix, size_t prefix_len,
                 const void *after, size_t after_len, uint64_t limit, const void *cursor,
                 size_t cursor_len)
{
    map_open(b, cid, 1 + (prefix != NULL) + (after != NULL) + (limit != 0) + (cursor != NULL));
    PUT_KEY(b, "topic");
    kr_cbor_put_cstr(b, topic);
    if (prefix != NULL) {
        PUT_KEY(b, "prefix");
        kr_cbor_put_bytes(b, prefix, prefix_len);
    }
    if (after != NULL) {
        PUT_KEY(b, "after");
        kr_cbor_put_bytes(b, after, after_len);
    }
    if (limit != 0) {
        PUT_KEY(b, "limit");
        kr_cbor_put_uint(b, limit);
    }
    if (cursor != NULL) {
        PUT_KEY(b, "cursor");
        kr_cbor_put_bytes(b, cursor, cursor_len);
    }
}

void kr_enc_fetch(kr_buf *b, kr_cid cid, const char *topic, uint64_t offset, uint64_t max,
                  uint64_t wait_ms, uint64_t max_bytes)
{
    map_open(b, cid, 5);
    PUT_KEY(b, "topic");
    kr_cbor_put_cstr(b, topic);
    PUT_KEY(b, "offset");
    kr_cbor_put_uint(b, offset);
    put_read_limits(b, max, wait_ms, max_bytes);
}

void kr_enc_stats(kr_buf *b, kr_cid cid, const char *topic, const char *group)
{
    map_open(b, cid, 1 + (group != NULL));
    PUT_KEY(b, "topic");
    kr_cbor_put_cstr(b, topic);
    if (group != NULL) {
        PUT_KEY(b, "group");
        kr_cbor_put_cstr(b, group);
    }
}

void kr_enc_delete_topic(kr_buf *b, kr_cid cid, const char *topic)
{
    map_open(b, cid, 1);
    PUT_KEY(b, "topic");
    kr_cbor_put_cstr(b, topic);
}

void kr_enc_group_seek(kr_buf *b, kr_cid cid, const char *topic, const char *group, kr_seek_kind to,
                       uint64_t value)
{
    map_open(b, cid, 3);
    PUT_KEY(b, "topic");
    kr_cbor_put_cstr(b, topic);
    PUT_KEY(b, "group");
    kr_cbor_put_cstr(b, group);
    if (to == KR_SEEK_TIME) {
        PUT_KEY(b, "ts");
        kr_cbor_put_uint(b, value);
        return;
    }
    PUT_KEY(b, "to");
    if (to == KR_SEEK_OFFSET)
        kr_cbor_put_uint(b, value);
    else
        kr_cbor_put_cstr(b, to == KR_SEEK_LATEST ? "latest" : "earliest");
}

void kr_enc_group_delete(kr_buf *b, kr_cid cid, const char *topic, const char *group)
{
    map_open(b, cid, 2);
    PUT_KEY(b, "topic");
    kr_cbor_put_cstr(b, topic);
    PUT_KEY(b, "group");
    kr_cbor_put_cstr(b, group);
}

void kr_enc_error(kr_buf *b, kr_cid cid, krappy_err code, const char *message,
                  const kr_error_extra *x)
{
    size_t n = 2;
    if (x != NULL)
        n += (x->has_range ? 2 : 0) + x->has_versions + x->has_index + x->has_expected +
             (x->leader != NULL);
    map_open(b, cid, n);
    PUT_KEY(b, "code");
    kr_cbor_put_uint(b, (uint64_t)code);
    PUT_KEY(b, "message");
    kr_cbor_put_cstr(b, message != NULL ? message : krappy_strerror(code));
    if (x == NULL)
        return;
    if (x->has_range) {
        PUT_KEY(b, "first");
        kr_cbor_put_uint(b, x->first);
        PUT_KEY(b, "next");
        kr_cbor_put_uint(b, x->next);
    }
    if (x->has_versions) {
        PUT_KEY(b, "versions");
        kr_cbor_put_array(b, 1);
        kr_cbor_put_uint(b, KRAPPY_PROTOCOL_VERSION);
    }
    if (x->has_index) {
        PUT_KEY(b, "index");
        kr_cbor_put_uint(b, x->index);
    }
    if (x->has_expected) {
        PUT_KEY(b, "expected");
        kr_cbor_put_uint(b, x->expected);
    }
    if (x->leader != NULL) {
        PUT_KEY(b, "leader");
        kr_cbor_put_cstr(b, x->leader);
    }
}

void kr_enc_cluster(kr_buf *b, kr_cid cid, uint64_t id, const char *raft)
{
    map_open(b, cid, id > 0);
    if (id == 0)
        return;
    if (raft != NULL) {
        PUT_KEY(b, "add");
        kr_cbor_put_map(b, 2);
        PUT_KEY(b, "id");
        kr_cbor_put_uint(b, id);
        PUT_KEY(b, "raft");
        kr_cbor_put_cstr(b, raft);
    } else {
        PUT_KEY(b, "remove");
        kr_cbor_put_uint(b, id);
    }
}

void kr_enc_ok_cluster_begin(kr_buf *b, kr_cid cid, const kr_cluster_head *h, size_t n_nodes)
{
    map_open(b, cid, 7 + h->halted);
    PUT_KEY(b, "cluster");
    kr_cbor_put_cstr(b, h->cluster);
    PUT_KEY(b, "node");
    kr_cbor_put_uint(b, h->node);
    PUT_KEY(b, "term");
    kr_cbor_put_uint(b, h->term);
    PUT_KEY(b, "leader");
    if (h->leader != 0)
        kr_cbor_put_uint(b, h->leader);
    else
        kr_cbor_put_null(b);
    PUT_KEY(b, "commit");
    kr_cbor_put_uint(b, h->commit);
    PUT_KEY(b, "applied");
    kr_cbor_put_uint(b, h->applied);
    if (h->halted) {
        PUT_KEY(b, "halted");
        kr_cbor_put_bool(b, true);
    }
    PUT_KEY(b, "nodes");
    kr_cbor_put_array(b, n_nodes);
}

void kr_enc_cluster_node(kr_buf *b, const kr_cluster_node_out *n)
{
    bool kafka = n->kafka != NULL && n->kafka[0] != '\0';
    bool raft = n->raft != NULL && n->raft[0] != '\0';
    kr_cbor_put_map(b, 3 + raft + kafka + (n->has_lag ? 2 : 0));
    PUT_KEY(b, "id");
    kr_cbor_put_uint(b, n->id);
    PUT_KEY(b, "addr");
    kr_cbor_put_cstr(b, n->addr);
    PUT_KEY(b, "role");
    kr_cbor_put_cstr(b, n->role);
    if (raft) {
        PUT_KEY(b, "raft");
        kr_cbor_put_cstr(b, n->raft);
    }
    if (kafka) {
        PUT_KEY(b, "kafka");
        kr_cbor_put_cstr(b, n->kafka);
    }
    if (n->has_lag) {
        PUT_KEY(b, "match");
        kr_cbor_put_uint(b, n->match);
        PUT_KEY(b, "lag");
        kr_cbor_put_uint(b, n->lag);
    }
}

void kr_enc_ok_empty(kr_buf *b, kr_cid cid)
{
    map_open(b, cid, 0);
}

void kr_enc_ok_hello(kr_buf *b, kr_cid cid, uint64_t version, const char *server,
                     uint64_t max_frame, uint64_t max_events)
{
    map_open(b, cid, 4);
    PUT_KEY(b, "version");
    kr_cbor_put_uint(b, version);
    PUT_KEY(b, "server");
    kr_cbor_put_cstr(b, server);
    PUT_KEY(b, "max_frame");
    kr_cbor_put_uint(b, max_frame);
    PUT_KEY(b, "max_events");
    kr_cbor_put_uint(b, max_events);
}

void kr_enc_ok_producer(kr_buf *b, kr_cid cid, const kr_str *topic, uint64_t next)
{
    map_open(b, cid, 2);
    PUT_KEY(b, "topic");
    put_kr_text(b, topic);
    PUT_KEY(b, "next");
    kr_cbor_put_uint(b, next);
}

void kr_enc_ok_producer_idempotent(kr_buf *b, kr_cid cid, const kr_str *topic, uint64_t next,
                                   uint64_t epoch, uint64_t seq)
{
    map_open(b, cid, 4);
    PUT_KEY(b, "topic");
    put_kr_text(b, topic);
    PUT_KEY(b, "next");
    kr_cbor_put_uint(b, next);
    PUT_KEY(b, "epoch");
    kr_cbor_put_uint(b, epoch);
    PUT_KEY(b, "seq");
    kr_cbor_put_uint(b, seq);
}

void kr_enc_ok_consumer(kr_buf *b, kr_cid cid, const kr_str *topic, const kr_str *group,
                        const kr_str *member, uint64_t cursor)
{
    map_open(b, cid, 4);
    PUT_KEY(b, "topic");
    put_kr_text(b, topic);
    PUT_KEY(b, "group");
    put_kr_text(b, group);
    PUT_KEY(b, "member");
    put_kr_text(b, member);
    PUT_KEY(b, "cursor");
    kr_cbor_put_uint(b, cursor);
}

/* Write a text key of under 24 bytes (its head is one byte) at p.
 * @return the bytes written. */
#define PUT_SHORT_KEY(p, lit)                                                                      \
    ((p)[0] = (uint8_t)(0x60 | (sizeof(lit) - 1)), memcpy((p) + 1, (lit), sizeof(lit) - 1),        \
     sizeof(lit))

/*
 * {cid?, first, count, duplicate?}: the reply to every PUBLISH, so it is
 * written into one reservation of its largest size rather than item by
 * item through the buffer.
 */
static void ok_publish(kr_buf *b, kr_cid cid, uint64_t first, uint64_t count, bool duplicate)
{
    /* map head 1, "cid" 4 + 9, "first" 6 + 9, "count" 6 + 9, "duplicate" 10 + 1 */
    if (kr_buf_reserve(b, 55) < 0)
        return;
    uint8_t *p = b->data + b->len, *start = p;
    p += kr_cbor_head(p, KR_CBOR_MAJOR_MAP, 2 + duplicate + cid.set);
    if (cid.set) {
        p += PUT_SHORT_KEY(p, "cid");
        p += kr_cbor_head(p, KR_CBOR_MAJOR_UINT, cid.v);
    }
    p += PUT_SHORT_KEY(p, "first");
    p += kr_cbor_head(p, KR_CBOR_MAJOR_UINT, first);
    p += PUT_SHORT_KEY(p, "count");
    p += kr_cbor_head(p, KR_CBOR_MAJOR_UINT, count);
    if (duplicate) {
        p += PUT_SHORT_KEY(p, "duplicate");
        *p++ = 0xf5; /* true */
    }
    b->len += (size_t)(p - start);
}

void kr_enc_ok_publish(kr_buf *b, kr_cid cid, uint64_t first, uint64_t count)
{
    ok_publish(b, cid, first, count, false);
}

void kr_enc_ok_publish_duplicate(kr_buf *b, kr_cid cid, uint64_t first, uint64_t count)
{
    ok_publish(b, cid, first, count, true);
}

void kr_enc_ok_ack(kr_buf *b, kr_cid cid, uint64_t cursor, const uint64_t *ignored, size_t n)
{
    map_open(b, cid, 1 + (n > 0));
    PUT_KEY(b, "cursor");
    kr_cbor_put_uint(b, cursor);
    if (n > 0) {
        PUT_KEY(b, "ignored");
        kr_cbor_put_array(b, n);
        for (size_t i = 0; i < n; i++)
            kr_cbor_put_uint(b, ignored[i]);
    }
}

void kr_enc_ok_topic(kr_buf *b, kr_cid cid, const kr_str *topic)
{
    map_open(b, cid, 1);
    PUT_KEY(b, "topic");
    put_kr_text(b, topic);
}

void kr_enc_ok_cursor(kr_buf *b, kr_cid cid, uint64_t cursor)
{
    kr_enc_ok_ack(b, cid, cursor, NULL, 0);
}

void kr_enc_ok_topics_begin(kr_buf *b, kr_cid cid, size_t n)
{
    map_open(b, cid, 1);
    PUT_KEY(b, "topics");
    kr_cbor_put_array(b, n);
}

void kr_enc_topic(kr_buf *b, const kr_str *name, uint64_t first, uint64_t next,
                  const kr_topic_config *cfg)
{
    kr_cbor_put_map(b, 3 + (cfg != NULL));
    PUT_KEY(b, "name");
    put_kr_text(b, name);
    PUT_KEY(b, "first");
    kr_cbor_put_uint(b, first);
    PUT_KEY(b, "next");
    kr_cbor_put_uint(b, next);
    if (cfg != NULL) {
        PUT_KEY(b, "config");
        kr_tc_encode(b, cfg);
    }
}

void kr_enc_topic_config(kr_buf *b, kr_cid cid, const char *topic, const kr_topic_config *set)
{
    bool has_set = set != NULL && set->mask != 0;
    map_open(b, cid, 1 + has_set);
    PUT_KEY(b, "topic");
    kr_cbor_put_cstr(b, topic);
    if (has_set) {
        PUT_KEY(b, "set");
        kr_tc_encode(b, set);
    }
}

void kr_enc_ok_topic_config(kr_buf *b, kr_cid cid, const kr_str *topic, const kr_topic_config *cfg)
{
    map_open(b, cid, 2);
    PUT_KEY(b, "topic");
    put_kr_text(b, topic);
    PUT_KEY(b, "config");
    kr_tc_encode(b, cfg);
}

void kr_enc_ok_stats_begin(kr_buf *b, kr_cid cid, const kr_str *topic, uint64_t first,
                           uint64_t next, uint64_t bytes, uint64_t keys, uint64_t producers,
                           size_t n_groups)
{
    kr_enc_ok_stats_begin_more(b, cid, topic, first, next, bytes, keys, producers, NULL, n_groups);
}

void kr_enc_ok_stats_begin_more(kr_buf *b, kr_cid cid, const kr_str *topic, uint64_t first,
                                uint64_t next, uint64_t bytes, uint64_t keys, uint64_t producers,
                                const kr_stats_more *more, size_t n_groups)
{
    bool cfg = more != NULL && more->cfg != NULL, cmp = more != NULL && more->has_compaction;
    map_open(b, cid, 7 + cfg + cmp);
    PUT_KEY(b, "topic");
    put_kr_text(b, topic);
    PUT_KEY(b, "first");
    kr_cbor_put_uint(b, first);
    PUT_KEY(b, "next");
    kr_cbor_put_uint(b, next);
    PUT_KEY(b, "bytes");
    kr_cbor_put_uint(b, bytes);
    PUT_KEY(b, "keys");
    kr_cbor_put_uint(b, keys);
    PUT_KEY(b, "producers");
    kr_cbor_put_uint(b, producers);
    if (cfg) {
        PUT_KEY(b, "config");
        kr_tc_encode(b, more->cfg);
    }
    if (cmp) {
        PUT_KEY(b, "compaction");
        kr_cbor_put_map(b, 5);
        PUT_KEY(b, "dirty_bytes");
        kr_cbor_put_uint(b, more->dirty_bytes);
        PUT_KEY(b, "reclaimed_bytes");
        kr_cbor_put_uint(b, more->reclaimed_bytes);
        PUT_KEY(b, "segments_rewritten");
        kr_cbor_put_uint(b, more->segments_rewritten);
        PUT_KEY(b, "events_removed");
        kr_cbor_put_uint(b, more->events_removed);
        PUT_KEY(b, "ms");
        kr_cbor_put_uint(b, more->ms);
    }
    PUT_KEY(b, "groups");
    kr_cbor_put_array(b, n_groups);
}

void kr_enc_group_stats(kr_buf *b, const kr_str *group, uint64_t cursor, uint64_t pending,
                        uint64_t lag, uint64_t members)
{
    kr_enc_group_stats_kind(b, group, cursor, pending, lag, members, NULL);
}

void kr_enc_group_stats_kind(kr_buf *b, const kr_str *group, uint64_t cursor, uint64_t pending,
                             uint64_t lag, uint64_t members, const char *kind)
{
    kr_cbor_put_map(b, kind != NULL ? 6 : 5);
    PUT_KEY(b, "group");
    put_kr_text(b, group);
    PUT_KEY(b, "cursor");
    kr_cbor_put_uint(b, cursor);
    PUT_KEY(b, "pending");
    kr_cbor_put_uint(b, pending);
    PUT_KEY(b, "lag");
    kr_cbor_put_uint(b, lag);
    PUT_KEY(b, "members");
    kr_cbor_put_uint(b, members);
    if (kind != NULL) {
        PUT_KEY(b, "kind");
        kr_cbor_put_cstr(b, kind);
    }
}

void kr_enc_events_begin(kr_buf *b, kr_cid cid, size_t n)
{
    map_open(b, cid, 2);
    PUT_KEY(b, "events");
    kr_cbor_put_array(b, n);
}

void kr_enc_events_end(kr_buf *b, uint64_t next)
{
    PUT_KEY(b, "next");
    kr_cbor_put_uint(b, next);
}

void kr_enc_event(kr_buf *b, uint64_t offset, uint64_t ts, const kr_str *key_raw,
                  const kr_str *value_raw, const kr_str *headers_raw)
{
    kr_cbor_put_array(b, headers_raw != NULL ? 5 : 4);
    kr_cbor_put_uint(b, offset);
    kr_cbor_put_uint(b, ts);
    put_raw_or_null(b, key_raw);
    put_raw_or_null(b, value_raw);
    if (headers_raw != NULL)
        put_raw_or_null(b, headers_raw);
}

/* A raw item, or null when absent, at p. @return the bytes written. */
static size_t raw_or_null_at(uint8_t *p, const kr_str *s)
{
    if (s == NULL || s->ptr == NULL || s->len == 0) {
        *p = 0xf6;
        return 1;
    }
    memcpy(p, s->ptr, s->len);
    return s->len;
}

/*
 * {cid?, key, offset, ts, value, headers?}: the reply to every GET, written
 * into one reservation of its largest size, as ok_publish.
 */
void kr_enc_value(kr_buf *b, kr_cid cid, const kr_str *key_raw, uint64_t offset, uint64_t ts,
                  const kr_str *value_raw, const kr_str *headers_raw)
{
    /* map head 1, "cid" 4 + 9, "key" 4, "offset" 7 + 9, "ts" 3 + 9,
     * "value" 6, "headers" 8, and the raw items (3 nulls at most) */
    size_t most = 63 + (key_raw != NULL ? key_raw->len : 0) +
                  (value_raw != NULL ? value_raw->len : 0) +
                  (headers_raw != NULL ? headers_raw->len : 0);
    if (kr_buf_reserve(b, most) < 0)
        return;
    uint8_t *p = b->data + b->len, *start = p;
    p += kr_cbor_head(p, KR_CBOR_MAJOR_MAP, 4 + (headers_raw != NULL) + cid.set);
    if (cid.set) {
        p += PUT_SHORT_KEY(p, "cid");
        p += kr_cbor_head(p, KR_CBOR_MAJOR_UINT, cid.v);
    }
    p += PUT_SHORT_KEY(p, "key");
    p += raw_or_null_at(p, key_raw);
    p += PUT_SHORT_KEY(p, "offset");
    p += kr_cbor_head(p, KR_CBOR_MAJOR_UINT, offset);
    p += PUT_SHORT_KEY(p, "ts");
    p += kr_cbor_head(p, KR_CBOR_MAJOR_UINT, ts);
    p += PUT_SHORT_KEY(p, "value");
    p += raw_or_null_at(p, value_raw);
    if (headers_raw != NULL) {
        p += PUT_SHORT_KEY(p, "headers");
        p += raw_or_null_at(p, headers_raw);
    }
    b->len += (size_t)(p - start);
}

void kr_enc_entries_begin(kr_buf *b, kr_cid cid, size_t n, bool has_cursor)
{
    map_open(b, cid, 2 + has_cursor);
    PUT_KEY(b, "entries");
    kr_cbor_put_array(b, n);
}

void kr_enc_entry(kr_buf *b, const kr_str *key_raw, uint64_t offset, uint64_t ts,
                  const kr_str *value_raw)
{
    kr_cbor_put_array(b, 4);
    put_raw_or_null(b, key_raw);
    kr_cbor_put_uint(b, offset);
    kr_cbor_put_uint(b, ts);
    put_raw_or_null(b, value_raw);
}

void kr_enc_entries_end(kr_buf *b, uint64_t snapshot, const kr_str *cursor)
{
    PUT_KEY(b, "snapshot");
    kr_cbor_put_uint(b, snapshot);
    if (cursor != NULL) {
        PUT_KEY(b, "cursor");
        kr_cbor_put_bytes(b, cursor->ptr, cursor->len);
    }
}
