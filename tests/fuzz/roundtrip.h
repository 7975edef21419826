/*
 * tests/fuzz/roundtrip.h - shared by the fuzz targets: re-encode a request
 * that kr_req_decode accepted, decode the result, and trap unless both
 * decodings agree field by field. This checks the encoders against the
 * decoder on inputs no person would write.
 */
#ifndef KR_FUZZ_ROUNDTRIP_H
#define KR_FUZZ_ROUNDTRIP_H

#include <stdlib.h>
#include <string.h>

#include "fuzz_check.h"
#include "proto/msg.h"

/* Most events a re-encoded PUBLISH is built from; bigger ones are skipped. */
#define RT_MAX_EVENTS 4096

/* A NUL-terminated copy of a decoded string, or NULL when it holds a NUL
 * (the encoders take C strings, so such a string cannot round-trip). */
static char *rt_cstr(kr_str s)
{
    if (s.len > 0 && memchr(s.ptr, 0, s.len) != NULL)
        return NULL;
    char *c = malloc(s.len + 1);
    if (c == NULL)
        return NULL;
    if (s.len > 0)
        memcpy(c, s.ptr, s.len);
    c[s.len] = '\0';
    return c;
}

static int rt_str_eq(kr_str a, kr_str b)
{
    return a.len == b.len && (a.len == 0 || memcmp(a.ptr, b.ptr, a.len) == 0);
}

/* An empty string may carry a NULL pointer; encoders want non-NULL. */
static const void *rt_ptr(kr_str s)
{
    return s.ptr != NULL ? (const void *)s.ptr : (const void *)"";
}

/* Compare two decoded PUBLISH requests event by event. */
static void rt_check_events(const kr_request *a, kr_buf *sa, const kr_request *b, kr_buf *sb)
{
    kr_events_iter ia, ib;
    kr_event_in ea, eb;
    kr_events_iter_init(&ia, a, sa);
    kr_events_iter_init(&ib, b, sb);
    for (;;) {
        int ra = kr_events_iter_next(&ia, &ea);
        int rb = kr_events_iter_next(&ib, &eb);
        FUZZ_CHECK(ra == rb);
        if (ra != 1)
            break;
        FUZZ_CHECK(ea.key.present == eb.key.present);
        if (ea.key.present) {
            FUZZ_CHECK(ea.key.is_text == eb.key.is_text);
            FUZZ_CHECK(rt_str_eq(ea.key.content, eb.key.content));
        }
        FUZZ_CHECK(rt_str_eq(ea.value, eb.value));
        FUZZ_CHECK(ea.tombstone == eb.tombstone);
        FUZZ_CHECK(ea.has_ts == eb.has_ts && ea.ts == eb.ts);
        FUZZ_CHECK(ea.has_headers == eb.has_headers);
        if (ea.has_headers)
            FUZZ_CHECK(rt_str_eq(ea.headers, eb.headers));
    }
}

/* Re-encode a PUBLISH from its events. @return 0, or -1 to skip. */
static int rt_enc_publish(kr_buf *b, const kr_request *r, kr_buf *scratch)
{
    if (r->u.publish.count > RT_MAX_EVENTS)
        return -1;
    kr_event_out_spec *spec = calloc((size_t)r->u.publish.count, sizeof *spec);
    if (spec == NULL)
        return -1;
    kr_events_iter it;
    kr_event_in e;
    size_t n = 0;
    kr_events_iter_init(&it, r, scratch);
    while (kr_events_iter_next(&it, &e) == 1) {
        FUZZ_CHECK(n < r->u.publish.count);
        kr_event_out_spec *s = &spec[n++];
        if (e.key.present) {
            s->key = rt_ptr(e.key.content);
            s->key_len = e.key.content.len;
            s->key_is_text = e.key.is_text;
        }
        if (!e.tombstone) {
            s->value = e.value.ptr;
            s->value_len = e.value.len;
        }
        s->has_ts = e.has_ts;
        s->ts = e.ts;
        if (e.has_headers) {
            s->headers = e.headers.ptr;
            s->headers_len = e.headers.len;
        }
    }
    FUZZ_CHECK(n == r->u.publish.count);
    kr_enc_publish(b, r->cid, r->u.publish.ack, spec, n);
    free(spec);
    return 0;
}

/* Re-encode `r` into b. @return 0, or -1 when this request is skipped. */
static int rt_encode(kr_buf *b, const kr_request *r, kr_buf *scratch)
{
    char *s1 = NULL, *s2 = NULL, *s3 = NULL;
    int rc = -1;

    switch (r->type) {
    case KRAPPY_T_PRODUCER_REGISTER:
        s1 = rt_cstr(r->u.producer_register.topic);
        s2 = rt_cstr(r->u.producer_register.id);
        if (s1 == NULL || s2 == NULL)
            goto out;
        kr_enc_producer_register(b, r->cid, s1, s2);
        break;
    case KRAPPY_T_CONSUMER_REGISTER:
        s1 = rt_cstr(r->u.consumer_register.topic);
        s2 = rt_cstr(r->u.consumer_register.group);
        if (r->u.consumer_register.has_member &&
            (s3 = rt_cstr(r->u.consumer_register.member)) == NULL)
            goto out;
        if (s1 == NULL || s2 == NULL)
            goto out;
        kr_enc_consumer_register(b, r->cid, s1, s2, s3, r->u.consumer_register.start,
                                 r->u.consumer_register.start_offset, r->u.consumer_register.ack,
                                 r->u.consumer_register.ack_wait_ms);
        break;
    case KRAPPY_T_PUBLISH:
        if (rt_enc_publish(b, r, scratch) < 0)
            goto out;
        break;
    case KRAPPY_T_POLL:
        kr_enc_poll(b, r->cid, r->u.poll.max, r->u.poll.wait_ms, r->u.poll.max_bytes);
        break;
    case KRAPPY_T_ACK:
        if (r->u.ack.has_upto) {
            kr_enc_ack_upto(b, r->cid, r->u.ack.upto);
        } else {
            uint64_t *o = calloc((size_t)r->u.ack.n_offsets + 1, sizeof *o);
            kr_cbor_iter it;
            kr_cbor_item x;
            size_t n = 0;
            if (o == NULL)
                goto out;
            kr_cbor_iter_init(&it, &r->u.ack.offsets);
            while (kr_cbor_iter_next(&it, &x) == 1 && n < r->u.ack.n_offsets)
                o[n++] = x.u;
            FUZZ_CHECK(n == r->u.ack.n_offsets);
            kr_enc_ack_offsets(b, r->cid, o, n);
            free(o);
        }
        break;
    case KRAPPY_T_GET:
        s1 = rt_cstr(r->u.get.topic);
        if (s1 == NULL)
            goto out;
        kr_enc_get(b, r->cid, s1, rt_ptr(r->u.get.key.content), r->u.get.key.content.len);
        break;
    case KRAPPY_T_SCAN:
        s1 = rt_cstr(r->u.scan.topic);
        if (s1 == NULL)
            goto out;
        kr_enc_scan(b, r->cid, s1, r->u.scan.has_prefix ? rt_ptr(r->u.scan.prefix) : NULL,
                    r->u.scan.prefix.len, r->u.scan.has_after ? rt_ptr(r->u.scan.after) : NULL,
                    r->u.scan.after.len, r->u.scan.limit,
                    r->u.scan.has_cursor ? rt_ptr(r->u.scan.cursor) : NULL, r->u.scan.cursor.len);
        break;
    case KRAPPY_T_FETCH:
        s1 = rt_cstr(r->u.fetch.topic);
        if (s1 == NULL)
            goto out;
        kr_enc_fetch(b, r->cid, s1, r->u.fetch.offset, r->u.fetch.max, r->u.fetch.wait_ms,
                     r->u.fetch.max_bytes);
        break;
    case KRAPPY_T_HELLO:
        if (r->u.hello.has_client && (s1 = rt_cstr(r->u.hello.client)) == NULL)
            goto out;
        if (r->u.hello.has_token && (s2 = rt_cstr(r->u.hello.token)) == NULL)
            goto out;
        kr_enc_hello(b, r->cid, r->u.hello.version, s1, s2);
        break;
    case KRAPPY_T_PING:
    case KRAPPY_T_TOPICS:
        kr_enc_empty(b, r->cid);
        break;
    case KRAPPY_T_STATS:
        s1 = rt_cstr(r->u.stats.topic);
        if (r->u.stats.has_group && (s2 = rt_cstr(r->u.stats.group)) == NULL)
            goto out;
        if (s1 == NULL)
            goto out;
        kr_enc_stats(b, r->cid, s1, s2);
        break;
    case KRAPPY_T_DELETE_TOPIC:
        if ((s1 = rt_cstr(r->u.delete_topic.topic)) == NULL)
            goto out;
        kr_enc_delete_topic(b, r->cid, s1);
        break;
    case KRAPPY_T_GROUP_SEEK:
        if ((s1 = rt_cstr(r->u.group_seek.topic)) == NULL ||
            (s2 = rt_cstr(r->u.group_seek.group)) == NULL)
            goto out;
        kr_enc_group_seek(b, r->cid, s1, s2, r->u.group_seek.to, r->u.group_seek.value);
        break;
    case KRAPPY_T_GROUP_DELETE:
        if ((s1 = rt_cstr(r->u.group_delete.topic)) == NULL ||
            (s2 = rt_cstr(r->u.group_delete.group)) == NULL)
            goto out;
        kr_enc_group_delete(b, r->cid, s1, s2);
        break;
    case KRAPPY_T_CLUSTER:
        if (r->u.cluster.has_add && (s1 = rt_cstr(r->u.cluster.raft)) == NULL)
            goto out;
        kr_enc_cluster(b, r->cid,
                       r->u.cluster.has_add || r->u.cluster.has_remove ? r->u.cluster.id : 0, s1);
        break;
    case KRAPPY_T_TOPIC_CONFIG:
        if ((s1 = rt_cstr(r->u.topic_config.topic)) == NULL)
            goto out;
        kr_enc_topic_config(b, r->cid, s1,
                            r->u.topic_config.has_set ? &r->u.topic_config.set : NULL);
        break;
    default:
        goto out;
    }
    rc = 0;
out:
    free(s1);
    free(s2);
    free(s3);
    return rc;
}

/* Compare the fields of two decodings of the same request. */
static void rt_compare(const kr_request *a, kr_buf *sa, const kr_request *b, kr_buf *sb)
{
    FUZZ_CHECK(a->type == b->type);
    FUZZ_CHECK(a->cid.set == b->cid.set && a->cid.v == b->cid.v);
    switch (a->type) {
    case KRAPPY_T_PRODUCER_REGISTER:
        FUZZ_CHECK(rt_str_eq(a->u.producer_register.topic, b->u.producer_register.topic));
        FUZZ_CHECK(rt_str_eq(a->u.producer_register.id, b->u.producer_register.id));
        break;
    case KRAPPY_T_CONSUMER_REGISTER: {
        const __typeof__(a->u.consumer_register) *x = &a->u.consumer_register,
                                                 *y = &b->u.consumer_register;
        FUZZ_CHECK(rt_str_eq(x->topic, y->topic) && rt_str_eq(x->group, y->group));
        FUZZ_CHECK(x->has_member == y->has_member);
        if (x->has_member)
            FUZZ_CHECK(rt_str_eq(x->member, y->member));
        FUZZ_CHECK(x->start == y->start && x->start_offset == y->start_offset);
        FUZZ_CHECK(x->ack == y->ack && x->ack_wait_ms == y->ack_wait_ms);
        break;
    }
    case KRAPPY_T_PUBLISH:
        FUZZ_CHECK(a->u.publish.ack == b->u.publish.ack);
        FUZZ_CHECK(a->u.publish.count == b->u.publish.count);
        rt_check_events(a, sa, b, sb);
        break;
    case KRAPPY_T_POLL:
        FUZZ_CHECK(a->u.poll.max == b->u.poll.max && a->u.poll.wait_ms == b->u.poll.wait_ms &&
                   a->u.poll.max_bytes == b->u.poll.max_bytes);
        break;
    case KRAPPY_T_ACK:
        FUZZ_CHECK(a->u.ack.has_upto == b->u.ack.has_upto);
        if (a->u.ack.has_upto)
            FUZZ_CHECK(a->u.ack.upto == b->u.ack.upto);
        else
            FUZZ_CHECK(a->u.ack.n_offsets == b->u.ack.n_offsets);
        break;
    case KRAPPY_T_GET:
        FUZZ_CHECK(rt_str_eq(a->u.get.topic, b->u.get.topic));
        FUZZ_CHECK(rt_str_eq(a->u.get.key.content, b->u.get.key.content));
        break;
    case KRAPPY_T_SCAN:
        FUZZ_CHECK(rt_str_eq(a->u.scan.topic, b->u.scan.topic));
        FUZZ_CHECK(a->u.scan.has_prefix == b->u.scan.has_prefix &&
                   rt_str_eq(a->u.scan.prefix, b->u.scan.prefix));
        FUZZ_CHECK(a->u.scan.has_after == b->u.scan.has_after &&
                   rt_str_eq(a->u.scan.after, b->u.scan.after));
        FUZZ_CHECK(a->u.scan.has_cursor == b->u.scan.has_cursor &&
                   rt_str_eq(a->u.scan.cursor, b->u.scan.cursor));
        FUZZ_CHECK(a->u.scan.limit == b->u.scan.limit);
        break;
    case KRAPPY_T_FETCH:
        FUZZ_CHECK(rt_str_eq(a->u.fetch.topic, b->u.fetch.topic));
        FUZZ_CHECK(a->u.fetch.offset == b->u.fetch.offset && a->u.fetch.max == b->u.fetch.max &&
                   a->u.fetch.wait_ms == b->u.fetch.wait_ms &&
                   a->u.fetch.max_bytes == b->u.fetch.max_bytes);
        break;
    case KRAPPY_T_HELLO:
        FUZZ_CHECK(a->u.hello.version == b->u.hello.version);
        FUZZ_CHECK(a->u.hello.has_client == b->u.hello.has_client &&
                   rt_str_eq(a->u.hello.client, b->u.hello.client));
        FUZZ_CHECK(a->u.hello.has_token == b->u.hello.has_token &&
                   rt_str_eq(a->u.hello.token, b->u.hello.token));
        break;
    case KRAPPY_T_STATS:
        FUZZ_CHECK(rt_str_eq(a->u.stats.topic, b->u.stats.topic));
        FUZZ_CHECK(a->u.stats.has_group == b->u.stats.has_group &&
                   rt_str_eq(a->u.stats.group, b->u.stats.group));
        break;
    case KRAPPY_T_DELETE_TOPIC:
        FUZZ_CHECK(rt_str_eq(a->u.delete_topic.topic, b->u.delete_topic.topic));
        break;
    case KRAPPY_T_GROUP_SEEK:
        FUZZ_CHECK(rt_str_eq(a->u.group_seek.topic, b->u.group_seek.topic) &&
                   rt_str_eq(a->u.group_seek.group, b->u.group_seek.group));
        FUZZ_CHECK(a->u.group_seek.to == b->u.group_seek.to &&
                   a->u.group_seek.value == b->u.group_seek.value);
        break;
    case KRAPPY_T_GROUP_DELETE:
        FUZZ_CHECK(rt_str_eq(a->u.group_delete.topic, b->u.group_delete.topic) &&
                   rt_str_eq(a->u.group_delete.group, b->u.group_delete.group));
        break;
    case KRAPPY_T_CLUSTER:
        FUZZ_CHECK(a->u.cluster.has_add == b->u.cluster.has_add &&
                   a->u.cluster.has_remove == b->u.cluster.has_remove &&
                   a->u.cluster.id == b->u.cluster.id);
        FUZZ_CHECK(!a->u.cluster.has_add || rt_str_eq(a->u.cluster.raft, b->u.cluster.raft));
        break;
    case KRAPPY_T_TOPIC_CONFIG:
        FUZZ_CHECK(rt_str_eq(a->u.topic_config.topic, b->u.topic_config.topic));
        FUZZ_CHECK(a->u.topic_config.has_set == b->u.topic_config.has_set &&
                   memcmp(&a->u.topic_config.set, &b->u.topic_config.set,
                          sizeof a->u.topic_config.set) == 0);
        break;
    default:
        break;
    }
}

/*
 * Decode a payload; when it is a valid request, re-encode it, decode that,
 * and compare. Decodes afresh so that PUBLISH events are iterated once per
 * decoding (a second pass may move the scratch buffer).
 */
static void rt_check(uint32_t type, const uint8_t *payload, size_t len)
{
    kr_buf enc, s1, s2;
    kr_request r1, r2;
    char msg[256];

    kr_buf_init(&enc, (size_t)1 << 26);
    kr_buf_init(&s1, (size_t)1 << 26);
    kr_buf_init(&s2, (size_t)1 << 26);
    if (kr_req_decode(type, payload, len, &s1, &r1, msg, sizeof msg) == KRAPPY_OK &&
        rt_encode(&enc, &r1, &s1) == 0 && !enc.failed) {
        krappy_err e = kr_req_decode(type, enc.data, enc.len, &s2, &r2, msg, sizeof msg);
        FUZZ_CHECK(e == KRAPPY_OK);
        /* Decode the original again: rt_encode made a pass over its events. */
        FUZZ_CHECK(kr_req_decode(type, payload, len, &s1, &r1, msg, sizeof msg) == KRAPPY_OK);
        rt_compare(&r1, &s1, &r2, &s2);
    }
    kr_buf_free(&enc);
    kr_buf_free(&s1);
    kr_buf_free(&s2);
}

#endif
