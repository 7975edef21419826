/*
 * store/view_topic.c - everything the view keeps per topic, as a whole:
 * dropping it (DELETE_TOPIC, and start-up finishing a deletion a crash
 * interrupted) and listing the topics that have anything in it.
 *
 * Every per-topic record of the view is keyed tag | len(topic) | topic |
 * ... (view_int.h), so "everything of a topic" is one key prefix per tag.
 * The records are removed one key at a time, not with a range deletion:
 * RocksDB's range deletions do not work with a row cache (facebook/rocksdb
 * #4122: a GET may still answer a deleted key; RocksDB 9.2 and later refuse
 * DeleteRange outright when one is configured). The view has none now
 * (view.c), but one key at a time works with or without it.
 */
#include "store/view.h"
#include "store/view_int.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/*
 * The tags of every record keyed by topic. A new kind of per-topic record
 * (topic settings, say) adds its tag here, and DELETE_TOPIC and start-up
 * then remove it with the rest.
 */
static const char topic_tags[] = {TAG_KEY,      TAG_MARKER,   TAG_CURSOR,  TAG_KOFFSET,
                                  TAG_PRODUCER, TAG_REGISTER, TAG_SETTINGS};
#define N_TOPIC_TAGS (sizeof topic_tags / sizeof topic_tags[0])

/* Keys deleted per write batch at most: bounds the batch's memory. */
#define DROP_BATCH_KEYS 65536

/* [lo, hi) of the keys with prefix tag | tlen | topic, built in lo and hi
 * (2 + KR_VIEW_TOPIC_MAX bytes each). @return the length of lo; *hilen. */
static size_t prefix_range(uint8_t *lo, uint8_t *hi, size_t *hilen, char tag, const char *topic,
                           size_t tlen)
{
    lo[0] = (uint8_t)tag;
    lo[1] = (uint8_t)tlen;
    if (tlen != 0)
        memcpy(lo + 2, topic, tlen);
    memcpy(hi, lo, 2 + tlen);
    *hilen = kr_view_prefix_successor(hi, 2 + tlen);
    return 2 + tlen;
}

/*
 * Add a delete of every key starting with tag | tlen | topic to wb, writing
 * wb out (with wopts) whenever it holds DROP_BATCH_KEYS. @return 0, or -1
 * (err filled).
 */
static int delete_prefix(kr_view *v, rocksdb_writebatch_t *wb, const rocksdb_writeoptions_t *wopts,
                         char tag, const char *topic, size_t tlen, char *err, size_t errlen)
{
    uint8_t lo[2 + KR_VIEW_TOPIC_MAX], hi[2 + KR_VIEW_TOPIC_MAX];
    size_t hilen, lolen = prefix_range(lo, hi, &hilen, tag, topic, tlen);
    rocksdb_readoptions_t *ro = rocksdb_readoptions_create();
    if (ro == NULL) {
        kr_view_say(err, errlen, "out of memory", NULL);
        return -1;
    }
    /* Not copied by RocksDB: hi outlives the iterator. */
    rocksdb_readoptions_set_iterate_upper_bound(ro, (const char *)hi, hilen);
    rocksdb_readoptions_set_fill_cache(ro, 0);
    rocksdb_iterator_t *it = rocksdb_create_iterator(v->db, ro);
    int rc = 0;
    char *e = NULL;
    for (rocksdb_iter_seek(it, (const char *)lo, lolen); rocksdb_iter_valid(it);
         rocksdb_iter_next(it)) {
        size_t kl;
        const char *k = rocksdb_iter_key(it, &kl);
        rocksdb_writebatch_delete(wb, k, kl);
        if (rocksdb_writebatch_count(wb) < DROP_BATCH_KEYS)
            continue;
        rocksdb_write(v->db, wopts, wb, &e);
        rocksdb_writebatch_clear(wb);
        if (e != NULL)
            break;
    }
    if (e == NULL)
        rocksdb_iter_get_error(it, &e);
    if (e != NULL) {
        kr_view_say_rdb(err, errlen, "removing a topic's records from the view failed", e);
        rc = -1;
    }
    rocksdb_iter_destroy(it);
    rocksdb_readoptions_destroy(ro);
    return rc;
}

static int unlocked_drop_topic(kr_view *v, const char *topic, size_t tlen, bool sync, char *err,
                               size_t errlen)
{
    if (v->db == NULL) {
        kr_view_say(err, errlen, kr_view_closed_msg, NULL);
        return -1;
    }
    if (tlen > KR_VIEW_TOPIC_MAX) {
        kr_view_say(err, errlen, "a topic name is longer than 255 bytes", NULL);
        return -1;
    }
    rocksdb_writebatch_t *wb = rocksdb_writebatch_create();
    if (wb == NULL) {
        kr_view_say(err, errlen, "out of memory", NULL);
        return -1;
    }
    int rc = 0;
    for (size_t i = 0; rc == 0 && i < N_TOPIC_TAGS; i++)
        rc = delete_prefix(v, wb, v->walopts, topic_tags[i], topic, tlen, err, errlen);
    /* The last write syncs the log, and with it every write before it. */
    char *e = NULL;
    if (rc == 0)
        rocksdb_write(v->db, sync ? v->syncopts : v->walopts, wb, &e);
    if (e != NULL) {
        kr_view_say_rdb(err, errlen, "removing a topic's records from the view failed", e);
        rc = -1;
    }
    rocksdb_writebatch_destroy(wb);
    return rc;
}

/*
 * Every distinct topic under one tag: seek to the tag, read the topic of the
 * key found, then seek past every key of that topic.
 */
static int topics_of_tag(kr_view *v, char tag, int (*fn)(void *arg, const char *topic, size_t tlen),
                         void *arg, char *err, size_t errlen)
{
    uint8_t seek[2 + KR_VIEW_TOPIC_MAX], hi[1];
    size_t seeklen = 1;
    seek[0] = (uint8_t)tag;
    hi[0] = (uint8_t)(tag + 1);
    rocksdb_readoptions_t *ro = rocksdb_readoptions_create();
    if (ro == NULL) {
        kr_view_say(err, errlen, "out of memory", NULL);
        return -1;
    }
    rocksdb_readoptions_set_iterate_upper_bound(ro, (const char *)hi, sizeof hi);
    rocksdb_readoptions_set_fill_cache(ro, 0);
    rocksdb_iterator_t *it = rocksdb_create_iterator(v->db, ro);
    int rc = 0;
    for (rocksdb_iter_seek(it, (const char *)seek, seeklen); rocksdb_iter_valid(it);
         rocksdb_iter_seek(it, (const char *)seek, seeklen)) {
        size_t kl;
        const uint8_t *k = (const uint8_t *)rocksdb_iter_key(it, &kl);
        if (kl < 2 || kl < 2 + (size_t)k[1])
            break; /* not a key this version writes: stop here */
        size_t tlen = k[1];
        char topic[KR_VIEW_TOPIC_MAX + 1];
        memcpy(topic, k + 2, tlen);
        topic[tlen] = '\0';
        if (fn(arg, topic, tlen) != 0)
            break;
        memcpy(seek, k, 2 + tlen);
        seeklen = kr_view_prefix_successor(seek, 2 + tlen);
        if (seeklen == 0 || seek[0] != (uint8_t)tag)
            break;
    }
    char *e = NULL;
    rocksdb_iter_get_error(it, &e);
    if (e != NULL) {
        kr_view_say_rdb(err, errlen, "listing the view's topics failed", e);
        rc = -1;
    }
    rocksdb_iter_destroy(it);
    rocksdb_readoptions_destroy(ro);
    return rc;
}

static int unlocked_topic_names(kr_view *v, int (*fn)(void *arg, const char *topic, size_t tlen),
                                void *arg, char *err, size_t errlen)
{
    if (v->db == NULL) {
        kr_view_say(err, errlen, kr_view_closed_msg, NULL);
        return -1;
    }
    for (size_t i = 0; i < N_TOPIC_TAGS; i++)
        if (topics_of_tag(v, topic_tags[i], fn, arg, err, errlen) < 0)
            return -1;
    return 0;
}

int kr_view_drop_topic(kr_view *v, const char *topic, size_t tlen, bool sync, char *err,
                       size_t errlen)
{
    pthread_rwlock_rdlock(&v->lock);
    int rc = unlocked_drop_topic(v, topic, tlen, sync, err, errlen);
    pthread_rwlock_unlock(&v->lock);
    return rc;
}

int kr_view_topic_names(kr_view *v, int (*fn)(void *arg, const char *topic, size_t tlen), void *arg,
                        char *err, size_t errlen)
{
    pthread_rwlock_rdlock(&v->lock);
    int rc = unlocked_topic_names(v, fn, arg, err, errlen);
    pthread_rwlock_unlock(&v->lock);
    return rc;
}

/* ---- a topic's settings ('s' | len | topic -> CBOR map) ---- */

void kr_view_batch_settings(kr_view_batch *b, const char *topic, size_t tlen, const uint8_t *val,
                            size_t len)
{
    if (kr_view_batch_key(b, TAG_SETTINGS, topic, tlen, NULL, 0) < 0)
        return;
    rocksdb_writebatch_put(b->wb, (const char *)b->key.data, b->key.len, (const char *)val, len);
}

/* The one record of the walk below, copied into the caller's buffer. */
static int settings_record(void *arg, const uint8_t *part, size_t plen, const uint8_t *val,
                           size_t vlen)
{
    kr_buf *out = arg;
    (void)part;
    if (plen != 0)
        return 0; /* not a record this version wrote */
    kr_buf_reset(out);
    kr_buf_append(out, val, vlen);
    return 1;
}

int kr_view_settings(kr_view *v, const char *topic, size_t tlen, kr_buf *out, char *err,
                     size_t errlen)
{
    int rc;
    kr_buf_reset(out);
    SHARED(v, rc = kr_view_each_unlocked(v, TAG_SETTINGS, topic, tlen, settings_record, out,
                                         "reading a topic's settings failed", err, errlen));
    if (rc < 0)
        return -1;
    if (out->failed) {
        kr_view_say(err, errlen, "out of memory reading a topic's settings", NULL);
        return -1;
    }
    return out->len > 0;
}
