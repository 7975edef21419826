/*
 * tests/fuzz/fuzz_cmd.c - fuzz the decoder of the replicated log's commands
 * (src/cluster/cmd.h): any bytes are decoded; a command that decodes is
 * encoded again with the encoders and must decode to the same fields (a
 * BATCH's sub-commands each), so that what a leader writes, every node
 * reads back the same.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "cluster/cmd.h"
#include "fuzz_check.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static int same(const kr_str *a, const kr_str *b)
{
    return a->len == b->len && (a->len == 0 || memcmp(a->ptr, b->ptr, a->len) == 0);
}

/* Encode c again into b. */
static void reencode(kr_buf *b, const kr_cmd *c)
{
    char id[KR_CMD_ID_MAX + 1], addr[KR_CMD_ADDR_MAX + 1], kafka[KR_CMD_ADDR_MAX + 1];
    switch (c->type) {
    case KR_CMD_CLUSTER_ID:
        snprintf(id, sizeof id, "%.*s", (int)c->name.len, (const char *)c->name.ptr);
        kr_cmd_put_cluster_id(b, id);
        break;
    case KR_CMD_NODE_INFO:
        snprintf(addr, sizeof addr, "%.*s", (int)c->addr.len, (const char *)c->addr.ptr);
        snprintf(kafka, sizeof kafka, "%.*s", (int)c->kafka.len, (const char *)c->kafka.ptr);
        kr_cmd_put_node_info(b, c->node, addr, kafka);
        break;
    case KR_CMD_TOPIC_CREATE:
    case KR_CMD_TOPIC_DELETE:
        kr_cmd_put_topic(b, c->type, &c->topic);
        break;
    case KR_CMD_PUBLISH:
        kr_cmd_put_publish(b, &c->topic, c->value, c->has_producer ? &c->producer : NULL, c->epoch,
                           &c->payload);
        break;
    case KR_CMD_PRODUCER_REGISTER:
        kr_cmd_put_producer_register(b, &c->topic, &c->name, c->epoch);
        break;
    case KR_CMD_GROUP_CREATE:
    case KR_CMD_GROUP_SEEK:
        kr_cmd_put_group_at(b, c->type, &c->topic, &c->name, c->value);
        break;
    case KR_CMD_GROUP_DELETE:
        kr_cmd_put_group_delete(b, &c->topic, &c->name);
        break;
    case KR_CMD_GROUP_CURSORS: {
        kr_cmd_cursor_iter ci;
        kr_str g;
        uint64_t v;
        kr_cmd_put_cursors_begin(b, &c->topic, (size_t)c->n_cursors);
        kr_cmd_cursor_iter_init(&ci, c);
        while (kr_cmd_cursor_next(&ci, &g, &v) == 1)
            kr_cmd_put_cursor(b, &g, v);
        break;
    }
    case KR_CMD_RETENTION:
        kr_cmd_put_retention(b, &c->topic, c->value);
        break;
    case KR_CMD_TOPIC_CONFIG:
        kr_cmd_put_topic_config(b, &c->topic, &c->cfg);
        break;
    case KR_CMD_KOFFSET_COMMIT:
        kr_cmd_put_koffset(b, &c->topic, &c->name, c->value,
                           c->has_metadata ? c->payload.ptr : NULL, c->payload.len);
        break;
    case KR_CMD_BATCH: {
        kr_cmd_sub_iter si;
        kr_cmd sub;
        kr_buf one;
        kr_buf_init(&one, b->max);
        kr_cmd_put_batch_begin(b, (size_t)c->n_subs);
        kr_cmd_sub_iter_init(&si, c);
        while (kr_cmd_sub_next(&si, &sub) == 1) {
            kr_buf_reset(&one);
            reencode(&one, &sub);
            kr_cmd_put_batch_sub(b, one.data, one.len);
        }
        kr_buf_free(&one);
        break;
    }
    }
}

/* d, decoded from c encoded again, says what c says. */
static void check_same(const kr_cmd *c, const kr_cmd *d)
{
    FUZZ_CHECK(d->type == c->type && same(&d->topic, &c->topic) && same(&d->name, &c->name));
    FUZZ_CHECK(d->node == c->node && same(&d->addr, &c->addr) && same(&d->kafka, &c->kafka));
    FUZZ_CHECK(d->value == c->value && d->has_producer == c->has_producer);
    FUZZ_CHECK(same(&d->producer, &c->producer) && d->epoch == c->epoch);
    FUZZ_CHECK(same(&d->payload, &c->payload) && d->n_cursors == c->n_cursors);
    FUZZ_CHECK(d->has_metadata == c->has_metadata && d->n_subs == c->n_subs);
    FUZZ_CHECK(d->cfg.mask == c->cfg.mask && d->cfg.reset == c->cfg.reset);
    for (int i = 0; i < KR_TC_N; i++)
        FUZZ_CHECK(!((c->cfg.mask >> i) & 1u) || d->cfg.v[i] == c->cfg.v[i]);
    if (c->type == KR_CMD_BATCH) {
        kr_cmd_sub_iter ci, di;
        kr_cmd c1, d1;
        kr_cmd_sub_iter_init(&ci, c);
        kr_cmd_sub_iter_init(&di, d);
        while (kr_cmd_sub_next(&ci, &c1) == 1) {
            FUZZ_CHECK(kr_cmd_sub_next(&di, &d1) == 1);
            check_same(&c1, &d1);
        }
        FUZZ_CHECK(kr_cmd_sub_next(&di, &d1) == 0);
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    kr_cmd c, d;
    char err[256];
    if (kr_cmd_decode(data, size, &c, err, sizeof err) < 0) {
        FUZZ_CHECK(err[0] != '\0');
        return 0;
    }
    FUZZ_CHECK(kr_cmd_name(c.type)[0] != 'u');
    kr_buf b;
    kr_buf_init(&b, size + 64);
    reencode(&b, &c);
    FUZZ_CHECK(!b.failed);
    FUZZ_CHECK(kr_cmd_decode(b.data, b.len, &d, err, sizeof err) == 0);
    check_same(&c, &d);
    if (c.type == KR_CMD_GROUP_CURSORS) {
        kr_cmd_cursor_iter ci, di;
        kr_str g1, g2;
        uint64_t v1, v2;
        kr_cmd_cursor_iter_init(&ci, &c);
        kr_cmd_cursor_iter_init(&di, &d);
        while (kr_cmd_cursor_next(&ci, &g1, &v1) == 1) {
            FUZZ_CHECK(kr_cmd_cursor_next(&di, &g2, &v2) == 1);
            FUZZ_CHECK(same(&g1, &g2) && v1 == v2);
        }
        FUZZ_CHECK(kr_cmd_cursor_next(&di, &g2, &v2) == 0);
    }
    kr_buf_free(&b);
    return 0;
}
