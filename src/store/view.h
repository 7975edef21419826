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
 *   'c' | len(topic) u8 | topic | group          -> a group's cursor (WAL on):
 *                                                  CBOR [cursor, origin]
 *   'o' | len(topic) u8 | topic | group          -> a Kafka group's committed
 *                                                  offset (the Kafka listener's
 *                                                  bookkeeping; WAL on): CBOR
 *                                                  [offset, metadata text or
 *                                                  null]
 *   'p' | len(topic) u8 | topic | pid u64 BE     -> an idempotent producer's
 *                                                  durable state (the store's
 *                                                  encoding), written by
 *                                                  checkpoints with the marker
 *   'r' | len(topic) u8 | topic | id             -> CBOR [pid, epoch]: a
 *                                                  producer's registration
 *                                                  (WAL on, synced)
 *   'r' | len(topic) u8 | topic                  -> CBOR [next pid]: the next
 *                                                  number a producer gets
 *
 * Checkpoints are one table file each, data and markers together, ingested
 * at once (kr_view_ckpt_*): what a checkpoint wrote is on disk when the
 * commit returns, and a marker is never ahead of its data. Batches
 * (kr_view_write: WAL off, then a flush that waits) give the same guarantee
 * for the odd rebuild; group cursors are written with the WAL on.
 * Thread-safety: RocksDB is; the storage writer writes while the loop reads.
 * Error strings are sentences (they end up in logs and STORAGE errors); an
 * error saying the files are corrupt is also logged, at error level, with
 * the way back (krappyd --rebuild-view).
 */
#ifndef KR_STORE_VIEW_H
#define KR_STORE_VIEW_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "util/buf.h"

/* Longest topic name a key can carry (its length is one byte). */
#define KR_VIEW_TOPIC_MAX 255

typedef struct kr_view kr_view;
typedef struct kr_view_batch kr_view_batch;
typedef struct kr_view_snap kr_view_snap;

/* The block cache when kr_view_opts.block_cache_bytes is 0 (see view.c). */
#define KR_VIEW_DEFAULT_CACHE (64u << 20)

typedef struct kr_view_opts {
    size_t block_cache_bytes;  /* 0: 64 MiB */
    size_t write_buffer_bytes; /* 0: 8 MiB (cursors only; checkpoints are ingested) */
    bool fsync_writes;         /* reserved for cursors (--fsync-cursors) */
    const char *log_dir;       /* RocksDB's info log directory; NULL/"": inside the DB */
    int max_open_files;        /* table files RocksDB keeps open; 0: KR_VIEW_DEFAULT_OPEN_FILES */
    bool background_low;       /* RocksDB's compaction threads at the lowest CPU (nice 19)
                                  and IO (idle class) priority */
} kr_view_opts;

/* RocksDB's table files kept open when kr_view_opts.max_open_files is 0
 * (RocksDB's own default keeps every one open: no bound at all). */
#define KR_VIEW_DEFAULT_OPEN_FILES 256

/*
 * kr_view_open - open (creating if missing) the database at `path`
 * (o NULL: all defaults). @return 0 and *out, or -1 with err filled.
 */
int kr_view_open(const char *path, const kr_view_opts *o, kr_view **out, char *err, size_t errlen);

/* Close it. NULL ok. Outstanding snapshots must have been released. */
void kr_view_close(kr_view *v);

/* kr_view_destroy - delete the (closed) database at path, every file of it.
 * @return 0, or -1 with err filled. */
int kr_view_destroy(const char *path, char *err, size_t errlen);

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
/* Remove a group's cursor record (GROUP_DELETE). */
void kr_view_batch_cursor_delete(kr_view_batch *b, const char *topic, size_t tlen,
                                 const uint8_t *group, size_t glen);

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

/* A Kafka group's committed offset record ('o' | len(topic) | topic |
 * group -> value, encoded by the caller: store/koffsets.c). Written with the
 * cursors (kr_view_write_logged). */
void kr_view_batch_koffset(kr_view_batch *b, const char *topic, size_t tlen, const uint8_t *group,
                           size_t glen, const uint8_t *value, size_t vlen);

/*
 * kr_view_koffsets - call fn for every Kafka committed offset record of a
 * topic (in group name order) until it returns non-zero; the pointers are
 * valid during the call only.
 * @return 0, or -1 with err filled.
 */
int kr_view_koffsets(kr_view *v, const char *topic, size_t tlen,
                     int (*fn)(void *arg, const uint8_t *group, size_t glen, const uint8_t *value,
                               size_t vlen),
                     void *arg, char *err, size_t errlen);

/*
 * kr_view_drop_topic - remove every record keyed by the topic (its keys,
 * marker, group cursors and any other per-topic record: view_topic.c lists
 * their tags) with the write-ahead log on, synced at the end when `sync`.
 * Durable against kill -9 when it returns. Not atomic: a crash part-way
 * leaves some records, which a second call removes.
 * @return 0, or -1 with err filled.
 */
int kr_view_drop_topic(kr_view *v, const char *topic, size_t tlen, bool sync, char *err,
                       size_t errlen);

/*
 * kr_view_topic_names - call fn with every topic that has any record in the
 * view (a topic may come more than once: once per kind of record), until it
 * returns non-zero. The name is NUL-terminated, valid during the call.
 * @return 0, or -1 with err filled.
 */
int kr_view_topic_names(kr_view *v, int (*fn)(void *arg, const char *topic, size_t tlen), void *arg,
                        char *err, size_t errlen);

/* A topic's own settings ('s'): the CBOR map of the settings it sets
 * (proto/topic_config.h), replacing the record before; written WAL on. */
void kr_view_batch_settings(kr_view_batch *b, const char *topic, size_t tlen, const uint8_t *val,
                            size_t len);

/*
 * kr_view_settings - a topic's settings record, copied into out (reset
 * first).
 * @return 1 found, 0 absent (out empty), -1 error (err filled).
 */
int kr_view_settings(kr_view *v, const char *topic, size_t tlen, kr_buf *out, char *err,
                     size_t errlen);

/* Delete every key of a topic and its marker (rebuilding a view). */
void kr_view_batch_drop_topic(kr_view_batch *b, const char *topic, size_t tlen);
/* Delete every key of a topic, its marker kept (a seed: kr_store_seed_view). */
void kr_view_batch_drop_keys(kr_view_batch *b, const char *topic, size_t tlen);
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

/*
 * A checkpoint as one table file: the caller adds entries in ascending
 * order of their stored keys - every topic's keys ('k' | len | topic |
 * key), topics ordered by (name length, name) and keys bytewise, then the
 * markers ('m' | len | topic) in the same topic order - and commit writes
 * the file and ingests it into the database. Ingestion is atomic (all of
 * the file or none of it) and durable when it returns, like a batch
 * written and flushed, but the entries go straight to a file instead of
 * through a write batch and a memtable (two more copies of a checkpoint in
 * memory) and a flush.
 * kr_view_ckpt_new returns NULL with err filled. The add functions record
 * the first failure (a key out of order, a write error), which commit then
 * reports; commit and abort free the checkpoint. Commit takes the view's
 * lock shared: no probe of this thread may be alive.
 */
typedef struct kr_view_ckpt kr_view_ckpt;
kr_view_ckpt *kr_view_ckpt_new(kr_view *v, char *err, size_t errlen);
void kr_view_ckpt_put(kr_view_ckpt *c, const char *topic, size_t tlen, const uint8_t *key,
                      size_t klen, const uint8_t *event, size_t elen);
void kr_view_ckpt_delete(kr_view_ckpt *c, const char *topic, size_t tlen, const uint8_t *key,
                         size_t klen);
void kr_view_ckpt_marker(kr_view_ckpt *c, const char *topic, size_t tlen, uint64_t next,
                         uint64_t keys);
/* @return 0; -1 with err filled when the file could not be made (the view
 *         is untouched); -2 when RocksDB refused it (the database may be
 *         in an error state: reopen it). Nothing of it is in the view then. */
int kr_view_ckpt_commit(kr_view_ckpt *c, char *err, size_t errlen);
void kr_view_ckpt_abort(kr_view_ckpt *c);

/*
 * A probe answers "is this key live in the view?" for the keys of one topic
 * asked in ascending order - a checkpoint counting the keys it adds. It
 * looks them up in batches of up to KR_VIEW_PROBE_BATCH (bloom filters
 * first, each data block read once per batch), and leaves the block cache
 * to GET's working set. It reads the view as of kr_view_probe_new and holds
 * the view's lock shared until freed (no reopen meanwhile; free it before
 * writing).
 * kr_view_probe_new returns NULL on ENOMEM, for a closed view or a topic
 * longer than KR_VIEW_TOPIC_MAX; kr_view_probe_free takes NULL.
 * kr_view_probe_many sets live[i] for each of n keys, ascending and
 * distinct (their bytes are only read during the call); it returns 0, or
 * -1 on a read error or out of memory (live is then undefined and the probe
 * unusable). kr_view_probe_has asks one key: 1 live, 0 absent, -1 error.
 * kr_view_probe_values asks the same of n keys, ascending and distinct,
 * and hands each one's value to fn (val NULL when the key is absent; the
 * bytes are valid during the call only); fn returns 0, or -1 to stop with
 * the reason in why (the probe is then unusable). It returns 0, or -1.
 * kr_view_probe_error then says why (the probe's memory, valid until it is
 * freed).
 */
#define KR_VIEW_PROBE_BATCH 64
typedef struct kr_view_probe kr_view_probe;
typedef struct kr_view_probe_key {
    const uint8_t *key;
    size_t klen;
} kr_view_probe_key;
kr_view_probe *kr_view_probe_new(kr_view *v, const char *topic, size_t tlen);
int kr_view_probe_many(kr_view_probe *p, const kr_view_probe_key *keys, size_t n, bool *live);
int kr_view_probe_has(kr_view_probe *p, const uint8_t *key, size_t klen);
typedef int (*kr_view_probe_fn)(void *arg, size_t i, const uint8_t *val, size_t vlen,
                                const char **why);
int kr_view_probe_values(kr_view_probe *p, const kr_view_probe_key *keys, size_t n,
                         kr_view_probe_fn fn, void *arg);
const char *kr_view_probe_error(const kr_view_probe *p);
void kr_view_probe_free(kr_view_probe *p);

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

/* ---- idempotent producers (view_producers.c) ---- */

/* A producer's registration ('r'): its number in the topic and the epoch of
 * its newest registration; and the topic's next producer number. */
void kr_view_batch_registration(kr_view_batch *b, const char *topic, size_t tlen, const uint8_t *id,
                                size_t idlen, uint64_t pid, uint32_t epoch);
void kr_view_batch_next_pid(kr_view_batch *b, const char *topic, size_t tlen, uint64_t next_pid);
/* Forget a producer: its registration, in the batch (its state goes with
 * the next checkpoint: kr_view_ckpt_producer with NULL). */
void kr_view_batch_unregister(kr_view_batch *b, const char *topic, size_t tlen, const uint8_t *id,
                              size_t idlen);
/* Delete every producer state ('p') of a topic (its registrations stay):
 * rebuilding the view from the stream rebuilds them too. */
void kr_view_batch_drop_producer_states(kr_view_batch *b, const char *topic, size_t tlen);

/* A producer's durable state in a checkpoint file, after the markers, in
 * ascending order of (topic as for markers, pid); state NULL deletes it. */
void kr_view_ckpt_producer(kr_view_ckpt *c, const char *topic, size_t tlen, uint64_t pid,
                           const uint8_t *state, size_t len);

/* One record kr_view_producers found. Pointers are valid during the call. */
typedef struct kr_view_prod_rec {
    enum { KR_VIEW_PROD_STATE, KR_VIEW_PROD_REG, KR_VIEW_PROD_NEXT_PID } kind;
    uint64_t pid;         /* STATE, REG; NEXT_PID: the topic's next pid */
    uint32_t epoch;       /* REG */
    const uint8_t *id;    /* REG */
    size_t id_len;        /* REG */
    const uint8_t *state; /* STATE */
    size_t state_len;     /* STATE */
} kr_view_prod_rec;

/*
 * kr_view_producers - call fn for every producer record of a topic: the
 * states (by pid), then the registrations and the next pid. Records this
 * version cannot read are skipped. fn returns non-zero to stop.
 * @return 0, or -1 with err filled.
 */
int kr_view_producers(kr_view *v, const char *topic, size_t tlen,
                      int (*fn)(void *arg, const kr_view_prod_rec *r), void *arg, char *err,
                      size_t errlen);

#endif
