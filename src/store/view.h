/*
 * store/view.h - the durable part of the latest-value view, in RocksDB.
 *
 * One RocksDB database under DATA/view, default column family, bytewise
 * order, no compression, bloom filters, an LRU block cache. Keys:
 *
 *   'k' | len(topic) u8 | topic | key content   -> the key's newest event in
 *                                                  delivered form (CBOR array
 *                                                  [offset, ts, key, value(, headers)])
 *   'm' | len(topic) u8 | topic                  -> marker: CBOR [next, keys]:
 *                                                  the view holds exactly the
 *                                                  events with offset < next;
 *                                                  keys = live keys then
 *   'c' | ...                                    -> reserved (group cursors)
 *
 * Checkpoints are written with the WAL off, data and marker in one write
 * batch, followed by a flush that waits, so what a checkpoint wrote is on
 * disk when kr_view_write returns and a marker is never ahead of its data.
 * Thread-safety: RocksDB is; the storage writer writes while the loop reads.
 * Error strings are sentences (they end up in logs and STORAGE errors).
 */
#ifndef KR_STORE_VIEW_H
#define KR_STORE_VIEW_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "proto/buf.h"

/* Longest topic name a key can carry (its length is one byte). */
#define KR_VIEW_TOPIC_MAX 255

typedef struct kr_view kr_view;
typedef struct kr_view_batch kr_view_batch;
typedef struct kr_view_snap kr_view_snap;

typedef struct kr_view_opts {
    size_t block_cache_bytes;  /* 0: 64 MiB */
    size_t write_buffer_bytes; /* 0: 64 MiB */
    bool fsync_writes;         /* reserved for cursors (--fsync-cursors) */
    const char *log_dir;       /* RocksDB's info log directory; NULL/"": inside the DB */
} kr_view_opts;

/*
 * kr_view_open - open (creating if missing) the database at `path`
 * (o NULL: all defaults). @return 0 and *out, or -1 with err filled.
 */
int kr_view_open(const char *path, const kr_view_opts *o, kr_view **out, char *err, size_t errlen);

/* Close it. NULL ok. Outstanding snapshots must have been released. */
void kr_view_close(kr_view *v);

/*
 * kr_view_marker - read a topic's marker.
 * @return 1 found (*next, *keys set), 0 absent, -1 error (err filled).
 */
int kr_view_marker(kr_view *v, const char *topic, size_t tlen, uint64_t *next, uint64_t *keys,
                   char *err, size_t errlen);

/* A write batch (a checkpoint). All functions copy their arguments. A topic
 * longer than KR_VIEW_TOPIC_MAX (or ENOMEM while building a key) marks the
 * batch failed, and kr_view_write then refuses it with a sentence.
 * kr_view_batch_new returns NULL on ENOMEM; kr_view_batch_free takes NULL. */
kr_view_batch *kr_view_batch_new(void);
void kr_view_batch_free(kr_view_batch *b);
void kr_view_batch_put(kr_view_batch *b, const char *topic, size_t tlen, const uint8_t *key,
                       size_t klen, const uint8_t *event, size_t elen);
void kr_view_batch_delete(kr_view_batch *b, const char *topic, size_t tlen, const uint8_t *key,
                          size_t klen);
void kr_view_batch_marker(kr_view_batch *b, const char *topic, size_t tlen, uint64_t next,
                          uint64_t keys);
/* A group's cursor record ('c' | len(topic) | topic | group -> CBOR
 * [cursor, origin]: origin is where the group started). */
void kr_view_batch_cursor(kr_view_batch *b, const char *topic, size_t tlen, const uint8_t *group,
                          size_t glen, uint64_t cursor, uint64_t origin);

/*
 * kr_view_write_logged - apply a batch with RocksDB's WAL on (cursors):
 * durable against kill -9 when it returns, and against a power cut too when
 * `sync` (an fsync of the WAL). No flush.
 * @return 0, or -1 with err filled.
 */
int kr_view_write_logged(kr_view *v, kr_view_batch *b, bool sync, char *err, size_t errlen);

/*
 * kr_view_cursors - call fn for every group cursor record of a topic (in
 * group name order) until it returns non-zero.
 * @return 0, or -1 with err filled.
 */
int kr_view_cursors(kr_view *v, const char *topic, size_t tlen,
                    int (*fn)(void *arg, const uint8_t *group, size_t glen, uint64_t cursor,
                              uint64_t origin),
                    void *arg, char *err, size_t errlen);

/* Delete every key of a topic and its marker (rebuilding a view). */
void kr_view_batch_drop_topic(kr_view_batch *b, const char *topic, size_t tlen);
size_t kr_view_batch_count(const kr_view_batch *b);

/*
 * kr_view_write - apply a batch (WAL off) and flush it to disk, waiting.
 * @return 0, or -1 with err filled (the batch may or may not be applied in
 *         memory; after an error the caller reopens the view - see
 *         kr_view_reopen - and trusts only the markers it then reads).
 */
int kr_view_write(kr_view *v, kr_view_batch *b, char *err, size_t errlen);

/*
 * kr_view_exists - whether a key is live in the view (for counting keys).
 * @return 1 yes, 0 no, -1 error.
 */
int kr_view_exists(kr_view *v, const char *topic, size_t tlen, const uint8_t *key, size_t klen);

/*
 * kr_view_get - a key's newest event (delivered form) appended to out.
 * @return 1 found, 0 absent, -1 error (err filled; also when out refuses
 *         the bytes, e.g. its cap).
 */
int kr_view_get(kr_view *v, const char *topic, size_t tlen, const uint8_t *key, size_t klen,
                kr_buf *out, char *err, size_t errlen);

/* A consistent read view of the database, held until released.
 * @return NULL on ENOMEM or when the view is closed after a failed reopen. */
kr_view_snap *kr_view_snapshot(kr_view *v);
void kr_view_snapshot_release(kr_view *v, kr_view_snap *s);

/*
 * kr_view_scan - on a snapshot, the topic's keys that start with `prefix`
 * and sort strictly after `after` (when has_after), in unsigned bytewise
 * order; fn is called for each (key content, event in delivered form) until
 * it returns non-zero or `limit` keys were given. The pointers passed to fn
 * are valid only during that call. s NULL reads the latest state instead of
 * a snapshot.
 * @return the number of keys given to fn (counting the one for which fn
 *         returned non-zero); *more is set when keys remain after the last
 *         one given; -1 on error (err filled, *more false).
 */
long kr_view_scan(kr_view *v, kr_view_snap *s, const char *topic, size_t tlen,
                  const uint8_t *prefix, size_t plen, bool has_after, const uint8_t *after,
                  size_t alen, size_t limit,
                  int (*fn)(void *arg, const uint8_t *key, size_t klen, const uint8_t *event,
                            size_t elen),
                  void *arg, bool *more, char *err, size_t errlen);

/*
 * kr_view_reopen - close and open the database again (after a write or
 * background error: RocksDB 7.8's C API has no Resume). Snapshots must have
 * been released. @return 0, or -1 with err filled (the view is then closed;
 * retry later).
 */
int kr_view_reopen(kr_view *v, char *err, size_t errlen);

/* Approximate bytes on disk (for metrics). */
uint64_t kr_view_disk_bytes(kr_view *v);

#endif
