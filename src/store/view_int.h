/*
 * store/view_int.h - what view.c, view_batch.c and view_ckpt.c share (internal to the
 * view: the rest of the store goes through view.h).
 *
 * Keys of the view: tag | len(topic) | topic | part, compared bytewise.
 */
#ifndef KR_STORE_VIEW_INT_H
#define KR_STORE_VIEW_INT_H

#include <pthread.h>
#include <rocksdb/c.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "util/buf.h"
#include "store/view.h"

#define TAG_KEY      'k'
#define TAG_MARKER   'm'
#define TAG_CURSOR   'c'
#define TAG_KOFFSET  'o' /* a Kafka group's committed offset (WAL on) */
#define TAG_PRODUCER 'p' /* a producer's durable state, by pid (checkpoints) */
#define TAG_REGISTER 'r' /* a producer's registration, by id (WAL on) */
/* A topic's own settings (WAL on; after 'r', so never inside a checkpoint
 * file's key range). */
#define TAG_SETTINGS 's'

struct kr_view_batch {
    rocksdb_writebatch_t *wb;
    kr_buf key;         /* scratch for building keys */
    const char *failed; /* why the batch cannot be written, or NULL */
};

/* Run expr with the view's lock held shared (every use of db but reopen
 * and close). */
#define SHARED(v, expr)                                                                            \
    do {                                                                                           \
        pthread_rwlock_rdlock(&(v)->lock);                                                         \
        expr;                                                                                      \
        pthread_rwlock_unlock(&(v)->lock);                                                         \
    } while (0)

struct kr_view {
    rocksdb_t *db;                      /* NULL after a failed reopen */
    rocksdb_column_family_handle_t *cf; /* the default (only) one, for batched lookups */
    rocksdb_options_t *opts;
    rocksdb_cache_t *cache;
    rocksdb_readoptions_t *ropts;
    rocksdb_writeoptions_t *wopts;
    rocksdb_writeoptions_t *walopts;  /* cursors: WAL on */
    rocksdb_writeoptions_t *syncopts; /* cursors: WAL on, fsync'd */
    rocksdb_flushoptions_t *fopts;
    rocksdb_env_t *env; /* NULL: RocksDB's default, untouched */
    char *path;
    bool fsync_writes;
    /* Every call uses db under the lock shared; reopen and close take it
     * alone: the writer thread writes cursors while the loop may reopen. */
    pthread_rwlock_t lock;
};

/* err = "what: detail" (or "what" when detail is NULL); NULL err ok. */
void kr_view_say(char *err, size_t errlen, const char *what, const char *detail);

/* kr_view_say with RocksDB's error string as the detail, which it frees. */
void kr_view_say_rdb(char *err, size_t errlen, const char *what, char *rdb_err);

/* The sentence for a call on a view closed after a failed reopen. */
extern const char *const kr_view_closed_msg;
/* The sentence for a topic name too long for a key. */
extern const char *const kr_view_topic_msg;

/* Build tag | tlen | topic | part into the batch's scratch key.
 * @return 0, or -1 with the batch marked failed. */
int kr_view_batch_key(kr_view_batch *b, char tag, const char *topic, size_t tlen,
                      const uint8_t *part, size_t plen);

/* Delete every record tag | tlen | topic | ... of the topic, in the batch. */
void kr_view_batch_drop_tag(kr_view_batch *b, char tag, const char *topic, size_t tlen);

/*
 * kr_view_each_unlocked - call fn for every record tag | tlen | topic | part
 * in key order (part and the value are valid during the call) until it
 * returns non-zero. The caller holds the lock shared (SHARED).
 * @return 0, or -1 with err filled (`what` names the read that failed).
 */
int kr_view_each_unlocked(kr_view *v, char tag, const char *topic, size_t tlen,
                          int (*fn)(void *arg, const uint8_t *part, size_t plen, const uint8_t *val,
                                    size_t vlen),
                          void *arg, const char *what, char *err, size_t errlen);

/* Add a record of a checkpoint file: tag | tlen | topic | part -> val, or a
 * deletion of it when val is NULL (see kr_view_ckpt_*). */
void kr_view_ckpt_entry(kr_view_ckpt *c, char tag, const char *topic, size_t tlen,
                        const uint8_t *part, size_t plen, const uint8_t *val, size_t vlen);

/* Build tag | tlen | topic | part into k (reset first), the layout of every
 * key of a topic. @return NULL, or why it cannot be built. */
const char *kr_view_key_into(kr_buf *k, char tag, const char *topic, size_t tlen,
                             const uint8_t *part, size_t plen);

/* CBOR [v[0], ..., v[n-1]] into val (32 bytes: n at most 3).
 * @return its length, or 0 on ENOMEM. */
size_t kr_view_encode_uints(uint8_t val[32], const uint64_t *v, size_t n);

/* A marker's value, CBOR [next, keys], into val (32 bytes).
 * @return its length, or 0 on ENOMEM. */
size_t kr_view_encode_marker(uint8_t val[32], uint64_t next, uint64_t keys);

/* The smallest key greater than every key that starts with k[0..n), made
 * in place. @return its length. */
size_t kr_view_prefix_successor(uint8_t *k, size_t n);

/* Unsigned bytewise, a prefix first (RocksDB's default order). */
int kr_view_key_cmp(const uint8_t *a, size_t alen, const uint8_t *b, size_t blen);

#endif
