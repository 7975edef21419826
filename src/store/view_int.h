/*
 * store/view_int.h - what view.c and view_ckpt.c share (internal to the
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

#define TAG_KEY     'k'
#define TAG_MARKER  'm'
#define TAG_CURSOR  'c'
#define TAG_KOFFSET 'o'

struct kr_view {
    rocksdb_t *db; /* NULL after a failed reopen */
    rocksdb_options_t *opts;
    rocksdb_cache_t *cache;
    rocksdb_readoptions_t *ropts;
    rocksdb_writeoptions_t *wopts;
    rocksdb_writeoptions_t *walopts;  /* cursors: WAL on */
    rocksdb_writeoptions_t *syncopts; /* cursors: WAL on, fsync'd */
    rocksdb_flushoptions_t *fopts;
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

/* Build tag | tlen | topic | part into k (reset first), the layout of every
 * key of a topic. @return NULL, or why it cannot be built. */
const char *kr_view_key_into(kr_buf *k, char tag, const char *topic, size_t tlen,
                             const uint8_t *part, size_t plen);

/* A marker's value, CBOR [next, keys], into val (32 bytes).
 * @return its length, or 0 on ENOMEM. */
size_t kr_view_encode_marker(uint8_t val[32], uint64_t next, uint64_t keys);

/* The smallest key greater than every key that starts with k[0..n), made
 * in place. @return its length. */
size_t kr_view_prefix_successor(uint8_t *k, size_t n);

/* Unsigned bytewise, a prefix first (RocksDB's default order). */
int kr_view_key_cmp(const uint8_t *a, size_t alen, const uint8_t *b, size_t blen);

#endif
