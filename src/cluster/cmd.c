/*
 * cluster/cmd.c - the replicated log's commands as CBOR arrays (see cmd.h).
 */
#include "cluster/cmd.h"

#include <stdio.h>
#include <string.h>

#include "proto/cbor.h"

const char *kr_cmd_name(kr_cmd_type t)
{
    switch (t) {
    case KR_CMD_CLUSTER_ID:
        return "CLUSTER_ID";
    case KR_CMD_NODE_INFO:
        return "NODE_INFO";
    case KR_CMD_TOPIC_CREATE:
        return "TOPIC_CREATE";
    case KR_CMD_PUBLISH:
        return "PUBLISH";
    case KR_CMD_PRODUCER_REGISTER:
        return "PRODUCER_REGISTER";
    case KR_CMD_GROUP_CREATE:
        return "GROUP_CREATE";
    case KR_CMD_GROUP_CURSORS:
        return "GROUP_CURSORS";
    case KR_CMD_TOPIC_DELETE:
        return "TOPIC_DELETE";
    case KR_CMD_GROUP_SEEK:
        return "GROUP_SEEK";
    case KR_CMD_GROUP_DELETE:
        return "GROUP_DELETE";
    case KR_CMD_RETENTION:
        return "RETENTION";
    case KR_CMD_TOPIC_CONFIG:
        return "TOPIC_CONFIG";
    case KR_CMD_KOFFSET_COMMIT:
        return "KOFFSET_COMMIT";
    case KR_CMD_BATCH:
        return "BATCH";
    }
    return "unknown";
}

/* ---- decoding ---- */

typedef struct rd {
    kr_cbor_iter it;
    char *err;
    size_t errlen;
    const char *cmd; /* for messages */
} rd;

static int bad(rd *r, const char *what)
{
    snprintf(r->err, r->errlen, "raft command %s: %s", r->cmd, what);
    return -1;
}

static int next(rd *r, kr_cbor_item *it, const char *what)
{
    if (kr_cbor_iter_next(&r->it, it) != 1)
        return bad(r, what);
    return 0;
}

static int get_uint(rd *r, uint64_t *v, const char *what)
{
    kr_cbor_item it;
    if (next(r, &it, what) < 0 || it.kind != KR_CBOR_UINT)
        return bad(r, what);
    *v = it.u;
    return 0;
}

/* A definite text or byte string of 1..max bytes. */
static int get_str(rd *r, kr_str *s, size_t max, const char *what)
{
    kr_cbor_item it;
    if (next(r, &it, what) < 0 || (it.kind != KR_CBOR_TEXT && it.kind != KR_CBOR_BYTES) ||
        it.str == NULL || it.str_len == 0 || it.str_len > max)
        return bad(r, what);
    s->ptr = it.str;
    s->len = it.str_len;
    return 0;
}

static int get_topic(rd *r, kr_str *s)
{
    if (get_str(r, s, KRAPPY_MAX_NAME_BYTES, "the topic is not a topic name") < 0 ||
        !kr_topic_name_valid(s->ptr, s->len))
        return bad(r, "the topic is not a topic name");
    return 0;
}

static int get_id(rd *r, kr_str *s, const char *what)
{
    if (get_str(r, s, KRAPPY_MAX_NAME_BYTES, what) < 0 || !kr_id_valid(s->ptr, s->len))
        return bad(r, what);
    return 0;
}

static int decode_publish(rd *r, kr_cmd *c)
{
    kr_cbor_item it;
    if (get_topic(r, &c->topic) < 0 || get_uint(r, &c->value, "ts is not a uint") < 0 ||
        next(r, &it, "no producer") < 0)
        return -1;
    if (it.kind == KR_CBOR_ARRAY) {
        kr_cbor_iter outer = r->it;
        kr_cbor_iter_init(&r->it, &it);
        if (it.u != 2 || get_id(r, &c->producer, "the producer id is not valid") < 0 ||
            get_uint(r, &c->epoch, "the producer's epoch is not a uint") < 0)
            return bad(r, "the producer is not [id, epoch]");
        r->it = outer;
        c->has_producer = true;
    } else if (it.kind != KR_CBOR_NULL) {
        return bad(r, "the producer is not [id, epoch] or null");
    }
    if (next(r, &it, "no payload") < 0 || it.kind != KR_CBOR_BYTES || it.str == NULL)
        return bad(r, "the payload is not a byte string");
    c->payload.ptr = it.str;
    c->payload.len = it.str_len;
    return 0;
}

static int decode_cursors(rd *r, kr_cmd *c)
{
    if (get_topic(r, &c->topic) < 0 || next(r, &c->cursors, "no cursors") < 0 ||
        c->cursors.kind != KR_CBOR_ARRAY || c->cursors.indefinite || c->cursors.u == 0)
        return bad(r, "the cursors are not a non-empty array");
    c->n_cursors = c->cursors.u;
    /* Check every pair now, so that applying never meets a bad one. */
    kr_cbor_iter outer = r->it;
    kr_cbor_iter_init(&r->it, &c->cursors);
    kr_cbor_item pair;
    while (kr_cbor_iter_next(&r->it, &pair) == 1) {
        kr_str g;
        uint64_t v;
        kr_cbor_iter list = r->it;
        kr_cbor_iter_init(&r->it, &pair);
        if (pair.kind != KR_CBOR_ARRAY || pair.u != 2 ||
            get_id(r, &g, "a cursor's group is not valid") < 0 ||
            get_uint(r, &v, "a cursor is not a uint") < 0)
            return bad(r, "a cursor is not [group, offset]");
        r->it = list;
    }
    r->it = outer;
    return 0;
}

static int decode_koffset(rd *r, kr_cmd *c)
{
    kr_cbor_item it;
    if (get_topic(r, &c->topic) < 0 ||
        get_str(r, &c->name, KRAPPY_MAX_NAME_BYTES, "the group is not 1 to 249 bytes") < 0 ||
        get_uint(r, &c->value, "the offset is not a uint") < 0 || next(r, &it, "no metadata") < 0)
        return -1;
    if (it.kind == KR_CBOR_BYTES && it.str != NULL) {
        c->has_metadata = true;
        c->payload = (kr_str){it.str, it.str_len};
    } else if (it.kind != KR_CBOR_NULL) {
        return bad(r, "the metadata is not a byte string or null");
    }
    return 0;
}

/* The settings are checked as a client's `set` is (strict), so that
 * applying never meets a bad one. */
static int decode_topic_config(rd *r, kr_cmd *c)
{
    kr_cbor_item map;
    char msg[200];
    if (get_topic(r, &c->topic) < 0 || next(r, &map, "no settings") < 0)
        return -1;
    if (kr_tc_decode(&map, true, &c->cfg, msg, sizeof msg) != KRAPPY_OK)
        return bad(r, msg);
    return 0;
}

/* Every sub-command is checked now, so that applying never meets a bad
 * one: a whole PUBLISH or PRODUCER_REGISTER in a definite byte string. */
static int decode_batch(rd *r, kr_cmd *c)
{
    if (next(r, &c->subs, "no sub-commands") < 0 || c->subs.kind != KR_CBOR_ARRAY ||
        c->subs.indefinite || c->subs.u == 0 || c->subs.u > KR_CMD_BATCH_MAX)
        return bad(r, "the sub-commands are not an array of 1 to 2^20-1");
    c->n_subs = c->subs.u;
    kr_cbor_iter in;
    kr_cbor_iter_init(&in, &c->subs);
    kr_cbor_item it;
    uint64_t i = 0;
    while (kr_cbor_iter_next(&in, &it) == 1) {
        kr_cmd sub;
        char why[200];
        if (it.kind != KR_CBOR_BYTES || it.str == NULL)
            return bad(r, "a sub-command is not a byte string");
        if (kr_cmd_decode(it.str, it.str_len, &sub, why, sizeof why) < 0) {
            snprintf(r->err, r->errlen, "raft command BATCH: sub-command %llu: %s",
                     (unsigned long long)i, why);
            return -1;
        }
        if (sub.type != KR_CMD_PUBLISH && sub.type != KR_CMD_PRODUCER_REGISTER)
            return bad(r, "a sub-command is neither a PUBLISH nor a PRODUCER_REGISTER");
        i++;
    }
    return 0;
}

int kr_cmd_decode(const uint8_t *p, size_t len, kr_cmd *c, char *err, size_t errlen)
{
    kr_cbor_item arr;
    rd r = {.err = err, .errlen = errlen, .cmd = "?"};
    memset(c, 0, sizeof *c);
    if (kr_cbor_read_exact(p, len, &arr) < 0 || arr.kind != KR_CBOR_ARRAY || arr.u < 1)
        return bad(&r, "not a non-empty CBOR array");
    kr_cbor_iter_init(&r.it, &arr);
    uint64_t type;
    if (get_uint(&r, &type, "the command number is not a uint") < 0)
        return -1;
    c->type = (kr_cmd_type)type;
    r.cmd = kr_cmd_name(c->type);
    uint64_t want; /* items after the number */
    int rc;
    switch (type) {
    case KR_CMD_CLUSTER_ID:
        want = 1;
        rc = get_str(&r, &c->name, KR_CMD_ID_MAX, "the id is not 1 to 64 bytes");
        break;
    case KR_CMD_NODE_INFO: {
        kr_cbor_item k;
        want = 3;
        rc = get_uint(&r, &c->node, "the node is not a uint");
        if (rc == 0 && c->node == 0)
            rc = bad(&r, "node 0");
        if (rc == 0)
            rc = get_str(&r, &c->addr, KR_CMD_ADDR_MAX, "the address is not 1 to 263 bytes");
        if (rc == 0 && next(&r, &k, "no Kafka address") < 0)
            rc = -1;
        if (rc == 0 && k.kind != KR_CBOR_NULL) {
            if (k.kind != KR_CBOR_TEXT || k.str == NULL || k.str_len == 0 ||
                k.str_len > KR_CMD_ADDR_MAX)
                rc = bad(&r, "the Kafka address is not 1 to 263 bytes or null");
            else
                c->kafka = (kr_str){k.str, k.str_len};
        }
        break;
    }
    case KR_CMD_TOPIC_CREATE:
    case KR_CMD_TOPIC_DELETE:
        want = 1;
        rc = get_topic(&r, &c->topic);
        break;
    case KR_CMD_PUBLISH:
        want = 4;
        rc = decode_publish(&r, c);
        break;
    case KR_CMD_PRODUCER_REGISTER:
        want = 3;
        rc = get_topic(&r, &c->topic);
        if (rc == 0)
            rc = get_id(&r, &c->name, "the producer id is not valid");
        if (rc == 0)
            rc = get_uint(&r, &c->epoch, "the epoch is not a uint");
        if (rc == 0 && (c->epoch == 0 || c->epoch > UINT32_MAX))
            rc = bad(&r, "the epoch is not 1 to 2^32-1");
        break;
    case KR_CMD_GROUP_CREATE:
    case KR_CMD_GROUP_SEEK:
        want = 3;
        rc = get_topic(&r, &c->topic);
        if (rc == 0)
            rc = get_id(&r, &c->name, "the group is not valid");
        if (rc == 0)
            rc = get_uint(&r, &c->value, "the cursor is not a uint");
        break;
    case KR_CMD_GROUP_DELETE:
        want = 2;
        rc = get_topic(&r, &c->topic);
        if (rc == 0)
            rc = get_id(&r, &c->name, "the group is not valid");
        break;
    case KR_CMD_GROUP_CURSORS:
        want = 2;
        rc = decode_cursors(&r, c);
        break;
    case KR_CMD_RETENTION:
        want = 2;
        rc = get_topic(&r, &c->topic);
        if (rc == 0)
            rc = get_uint(&r, &c->value, "first is not a uint");
        break;
    case KR_CMD_TOPIC_CONFIG:
        want = 2;
        rc = decode_topic_config(&r, c);
        break;
    case KR_CMD_KOFFSET_COMMIT:
        want = 4;
        rc = decode_koffset(&r, c);
        break;
    case KR_CMD_BATCH:
        want = 1;
        rc = decode_batch(&r, c);
        break;
    default:
        snprintf(err, errlen,
                 "raft command number %llu is not known to this build (written by a newer "
                 "krappyd?)",
                 (unsigned long long)type);
        return -1;
    }
    if (rc < 0)
        return -1;
    if (arr.u != want + 1)
        return bad(&r, "wrong number of items");
    return 0;
}

void kr_cmd_cursor_iter_init(kr_cmd_cursor_iter *ci, const kr_cmd *c)
{
    kr_cbor_iter_init(&ci->it, &c->cursors);
}

int kr_cmd_cursor_next(kr_cmd_cursor_iter *ci, kr_str *group, uint64_t *cursor)
{
    kr_cbor_item pair, g, v;
    kr_cbor_iter in;
    if (kr_cbor_iter_next(&ci->it, &pair) != 1)
        return 0;
    /* Checked by kr_cmd_decode. */
    kr_cbor_iter_init(&in, &pair);
    kr_cbor_iter_next(&in, &g);
    kr_cbor_iter_next(&in, &v);
    group->ptr = g.str;
    group->len = g.str_len;
    *cursor = v.u;
    return 1;
}

void kr_cmd_sub_iter_init(kr_cmd_sub_iter *si, const kr_cmd *c)
{
    kr_cbor_iter_init(&si->it, &c->subs);
}

int kr_cmd_sub_next(kr_cmd_sub_iter *si, kr_cmd *sub)
{
    kr_cbor_item it;
    char err[8];
    if (kr_cbor_iter_next(&si->it, &it) != 1)
        return 0;
    /* Checked by kr_cmd_decode. */
    return kr_cmd_decode(it.str, it.str_len, sub, err, sizeof err) == 0;
}

/* ---- encoding ---- */

static void put_str(kr_buf *b, const kr_str *s)
{
    kr_cbor_put_text(b, (const char *)s->ptr, s->len);
}

void kr_cmd_put_cluster_id(kr_buf *b, const char *id)
{
    kr_cbor_put_array(b, 2);
    kr_cbor_put_uint(b, KR_CMD_CLUSTER_ID);
    kr_cbor_put_cstr(b, id);
}

void kr_cmd_put_node_info(kr_buf *b, uint64_t node, const char *addr, const char *kafka)
{
    kr_cbor_put_array(b, 4);
    kr_cbor_put_uint(b, KR_CMD_NODE_INFO);
    kr_cbor_put_uint(b, node);
    kr_cbor_put_cstr(b, addr);
    if (kafka != NULL && kafka[0] != '\0')
        kr_cbor_put_cstr(b, kafka);
    else
        kr_cbor_put_null(b);
}

void kr_cmd_put_topic(kr_buf *b, kr_cmd_type type, const kr_str *topic)
{
    kr_cbor_put_array(b, 2);
    kr_cbor_put_uint(b, type);
    put_str(b, topic);
}

void kr_cmd_put_publish(kr_buf *b, const kr_str *topic, uint64_t ts, const kr_str *producer,
                        uint64_t epoch, const kr_str *payload)
{
    kr_cbor_put_array(b, 5);
    kr_cbor_put_uint(b, KR_CMD_PUBLISH);
    put_str(b, topic);
    kr_cbor_put_uint(b, ts);
    if (producer != NULL) {
        kr_cbor_put_array(b, 2);
        kr_cbor_put_bytes(b, producer->ptr, producer->len);
        kr_cbor_put_uint(b, epoch);
    } else {
        kr_cbor_put_null(b);
    }
    kr_cbor_put_bytes(b, payload->ptr, payload->len);
}

void kr_cmd_put_producer_register(kr_buf *b, const kr_str *topic, const kr_str *id, uint64_t epoch)
{
    kr_cbor_put_array(b, 4);
    kr_cbor_put_uint(b, KR_CMD_PRODUCER_REGISTER);
    put_str(b, topic);
    kr_cbor_put_bytes(b, id->ptr, id->len);
    kr_cbor_put_uint(b, epoch);
}

void kr_cmd_put_group_at(kr_buf *b, kr_cmd_type type, const kr_str *topic, const kr_str *group,
                         uint64_t cursor)
{
    kr_cbor_put_array(b, 4);
    kr_cbor_put_uint(b, type);
    put_str(b, topic);
    kr_cbor_put_bytes(b, group->ptr, group->len);
    kr_cbor_put_uint(b, cursor);
}

void kr_cmd_put_group_delete(kr_buf *b, const kr_str *topic, const kr_str *group)
{
    kr_cbor_put_array(b, 3);
    kr_cbor_put_uint(b, KR_CMD_GROUP_DELETE);
    put_str(b, topic);
    kr_cbor_put_bytes(b, group->ptr, group->len);
}

void kr_cmd_put_cursors_begin(kr_buf *b, const kr_str *topic, size_t n)
{
    kr_cbor_put_array(b, 3);
    kr_cbor_put_uint(b, KR_CMD_GROUP_CURSORS);
    put_str(b, topic);
    kr_cbor_put_array(b, n);
}

void kr_cmd_put_cursor(kr_buf *b, const kr_str *group, uint64_t cursor)
{
    kr_cbor_put_array(b, 2);
    kr_cbor_put_bytes(b, group->ptr, group->len);
    kr_cbor_put_uint(b, cursor);
}

void kr_cmd_put_retention(kr_buf *b, const kr_str *topic, uint64_t first)
{
    kr_cbor_put_array(b, 3);
    kr_cbor_put_uint(b, KR_CMD_RETENTION);
    put_str(b, topic);
    kr_cbor_put_uint(b, first);
}

void kr_cmd_put_topic_config(kr_buf *b, const kr_str *topic, const kr_topic_config *set)
{
    kr_cbor_put_array(b, 3);
    kr_cbor_put_uint(b, KR_CMD_TOPIC_CONFIG);
    put_str(b, topic);
    kr_tc_encode(b, set);
}

void kr_cmd_put_koffset(kr_buf *b, const kr_str *topic, const kr_str *group, uint64_t offset,
                        const uint8_t *metadata, size_t mlen)
{
    kr_cbor_put_array(b, 5);
    kr_cbor_put_uint(b, KR_CMD_KOFFSET_COMMIT);
    put_str(b, topic);
    kr_cbor_put_bytes(b, group->ptr, group->len);
    kr_cbor_put_uint(b, offset);
    if (metadata != NULL)
        kr_cbor_put_bytes(b, metadata, mlen);
    else
        kr_cbor_put_null(b);
}

void kr_cmd_put_batch_begin(kr_buf *b, size_t n)
{
    kr_cbor_put_array(b, 2);
    kr_cbor_put_uint(b, KR_CMD_BATCH);
    kr_cbor_put_array(b, n);
}

void kr_cmd_put_batch_sub(kr_buf *b, const void *cmd, size_t len)
{
    kr_cbor_put_bytes(b, cmd, len);
}
