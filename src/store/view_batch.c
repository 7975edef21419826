/*
 * store/view_batch.c - the view's write batches (see view.h): the records a
 * checkpoint or a logged write puts and deletes - keys, markers, group
 * cursors, Kafka committed offsets - each built as tag | len(topic) |
 * topic | part (view_int.h) into the batch's scratch key. A batch remembers
 * the first thing that failed, and writing it then says so.
 */
#include "store/view.h"
#include "store/view_int.h"

#include <rocksdb/c.h>
#include <stdlib.h>
#include <string.h>

#include "proto/cbor.h"

kr_view_batch *kr_view_batch_new(void)
{
    kr_view_batch *b = calloc(1, sizeof *b);
    if (b == NULL)
        return NULL;
    b->wb = rocksdb_writebatch_create();
    if (b->wb == NULL) {
        free(b);
        return NULL;
    }
    kr_buf_init(&b->key, SIZE_MAX);
    return b;
}

void kr_view_batch_free(kr_view_batch *b)
{
    if (b == NULL)
        return;
    rocksdb_writebatch_destroy(b->wb);
    kr_buf_free(&b->key);
    free(b);
}

/* Build tag | tlen | topic | part into k (reset first), the layout of every
 * key of a topic. @return NULL, or why it cannot be built. */
const char *kr_view_key_into(kr_buf *k, char tag, const char *topic, size_t tlen,
                             const uint8_t *part, size_t plen)
{
    if (tlen > KR_VIEW_TOPIC_MAX)
        return kr_view_topic_msg;
    uint8_t h[2] = {(uint8_t)tag, (uint8_t)tlen};
    kr_buf_reset(k);
    kr_buf_append(k, h, 2);
    kr_buf_append(k, topic, tlen);
    kr_buf_append(k, part, plen);
    return k->failed ? "out of memory" : NULL;
}

int kr_view_batch_key(kr_view_batch *b, char tag, const char *topic, size_t tlen,
                      const uint8_t *part, size_t plen)
{
    if (b->failed)
        return -1;
    b->failed = kr_view_key_into(&b->key, tag, topic, tlen, part, plen);
    return b->failed != NULL ? -1 : 0;
}

void kr_view_batch_put(kr_view_batch *b, const char *topic, size_t tlen, const uint8_t *key,
                       size_t klen, const uint8_t *event, size_t elen)
{
    if (kr_view_batch_key(b, TAG_KEY, topic, tlen, key, klen) < 0)
        return;
    rocksdb_writebatch_put(b->wb, (const char *)b->key.data, b->key.len, (const char *)event, elen);
}

void kr_view_batch_delete(kr_view_batch *b, const char *topic, size_t tlen, const uint8_t *key,
                          size_t klen)
{
    if (kr_view_batch_key(b, TAG_KEY, topic, tlen, key, klen) < 0)
        return;
    rocksdb_writebatch_delete(b->wb, (const char *)b->key.data, b->key.len);
}

size_t kr_view_encode_uints(uint8_t val[32], const uint64_t *v, size_t n)
{
    kr_buf vb;
    kr_buf_init(&vb, 32);
    kr_cbor_put_array(&vb, n);
    for (size_t i = 0; i < n; i++)
        kr_cbor_put_uint(&vb, v[i]);
    size_t len = vb.failed ? 0 : vb.len;
    if (len > 0)
        memcpy(val, vb.data, len);
    kr_buf_free(&vb);
    return len;
}

/* A marker's value, CBOR [next, keys], into val (32 bytes).
 * @return its length, or 0 on ENOMEM. */
size_t kr_view_encode_marker(uint8_t val[32], uint64_t next, uint64_t keys)
{
    uint64_t v[2] = {next, keys};
    return kr_view_encode_uints(val, v, 2);
}

void kr_view_batch_marker(kr_view_batch *b, const char *topic, size_t tlen, uint64_t next,
                          uint64_t keys)
{
    uint8_t val[32];
    if (kr_view_batch_key(b, TAG_MARKER, topic, tlen, NULL, 0) < 0)
        return;
    size_t vlen = kr_view_encode_marker(val, next, keys);
    if (vlen == 0) {
        b->failed = "out of memory";
        return;
    }
    rocksdb_writebatch_put(b->wb, (const char *)b->key.data, b->key.len, (const char *)val, vlen);
}

void kr_view_batch_drop_tag(kr_view_batch *b, char tag, const char *topic, size_t tlen)
{
    /* [tag|tlen|topic, successor of it). */
    if (kr_view_batch_key(b, tag, topic, tlen, NULL, 0) < 0)
        return;
    uint8_t end[2 + KR_VIEW_TOPIC_MAX];
    memcpy(end, b->key.data, b->key.len);
    size_t endlen = kr_view_prefix_successor(end, b->key.len);
    rocksdb_writebatch_delete_range(b->wb, (const char *)b->key.data, b->key.len, (const char *)end,
                                    endlen);
}

void kr_view_batch_drop_keys(kr_view_batch *b, const char *topic, size_t tlen)
{
    kr_view_batch_drop_tag(b, TAG_KEY, topic, tlen);
}

void kr_view_batch_drop_topic(kr_view_batch *b, const char *topic, size_t tlen)
{
    kr_view_batch_drop_tag(b, TAG_KEY, topic, tlen);
    if (kr_view_batch_key(b, TAG_MARKER, topic, tlen, NULL, 0) < 0)
        return;
    rocksdb_writebatch_delete(b->wb, (const char *)b->key.data, b->key.len);
}

void kr_view_batch_cursor(kr_view_batch *b, const char *topic, size_t tlen, const uint8_t *group,
                          size_t glen, uint64_t cursor, uint64_t origin)
{
    uint8_t val[32];
    uint64_t v[2] = {cursor, origin};
    if (kr_view_batch_key(b, TAG_CURSOR, topic, tlen, group, glen) < 0)
        return;
    size_t vlen = kr_view_encode_uints(val, v, 2);
    if (vlen == 0) {
        b->failed = "out of memory";
        return;
    }
    rocksdb_writebatch_put(b->wb, (const char *)b->key.data, b->key.len, (const char *)val, vlen);
}

void kr_view_batch_cursor_delete(kr_view_batch *b, const char *topic, size_t tlen,
                                 const uint8_t *group, size_t glen)
{
    if (kr_view_batch_key(b, TAG_CURSOR, topic, tlen, group, glen) < 0)
        return;
    rocksdb_writebatch_delete(b->wb, (const char *)b->key.data, b->key.len);
}

void kr_view_batch_koffset(kr_view_batch *b, const char *topic, size_t tlen, const uint8_t *group,
                           size_t glen, const uint8_t *value, size_t vlen)
{
    if (kr_view_batch_key(b, TAG_KOFFSET, topic, tlen, group, glen) < 0)
        return;
    rocksdb_writebatch_put(b->wb, (const char *)b->key.data, b->key.len, (const char *)value, vlen);
}

size_t kr_view_batch_count(const kr_view_batch *b)
{
    int n = rocksdb_writebatch_count(b->wb);
    return n > 0 ? (size_t)n : 0;
}
