/*
 * store/view.c - the durable latest-value view in RocksDB (see view.h).
 *
 * Only the RocksDB C API functions present in both Debian's 7.8 and the 9.x
 * that nixpkgs ships are used: open/close (opened with its default column
 * family named, for that family's handle), write batches (put, delete,
 * delete_range), rocksdb_write, rocksdb_flush, rocksdb_get_pinned,
 * rocksdb_batched_multi_get_cf,
 * snapshots, iterators with an upper bound, the table-file writer
 * (rocksdb_sstfilewriter_*) and rocksdb_ingest_external_file,
 * rocksdb_property_value, and the long-standing option setters (LRU cache,
 * block-based table with a bloom filter, a memtable bloom filter of whole
 * keys, cached index and filter blocks,
 * data block hash index, compression, write buffers, dynamic level sizes,
 * background jobs, info-log limits).
 * Order is RocksDB's default comparator, which is bytewise; there is no
 * C-API call to name it explicitly in 7.8 and none is needed.
 *
 * Every error string RocksDB returns is malloc'd by RocksDB: it is copied
 * into the caller's sentence and released with rocksdb_free.
 *
 * Write batches live in view_batch.c; checkpoint files and the probes a
 * checkpoint counts keys with, in view_ckpt.c; what the files share, in
 * view_int.h.
 */
#include "store/view.h"
#include "store/view_int.h"

#include <rocksdb/c.h>
#include <stdatomic.h>
#include <stdio.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "proto/cbor.h"
#include "util/clock.h"
#include "util/log.h"

/*
 * Tuning, for what the view is: the latest value per key, written by
 * checkpoints (one sorted table file of up to half of --overlay-bytes,
 * ingested every few hundred milliseconds, its keys spread over the whole
 * key space), read by point GETs and the odd SCAN.
 *
 * KR_VIEW_DEFAULT_CACHE: the block cache (--block-cache) serves GETs, and
 *   holds the index and filter blocks too (cache_index_and_filter_blocks):
 *   the view's memory is then the cache plus small memtables, whatever the
 *   number of table files; L0 files' index and filter blocks - every lookup
 *   consults all of them - are pinned there, and index and filter blocks go
 *   to the cache's high-priority part, ahead of data blocks.
 * KR_VIEW_DEFAULT_WRITE_BUFFER: checkpoints bypass the memtable (they are
 *   ingested as table files), so only group cursors (WAL on) and the rare
 *   rebuild batch go through it: a small memtable, and at most twice that
 *   in all (db_write_buffer_size, RocksDB's write-buffer manager without a
 *   cache), where a checkpoint used to take 64 MiB memtables and more.
 * KR_VIEW_BLOOM_BITS: 10 bits per key, ~1% false positives: a GET of a key
 *   the view lacks (new keys, deleted keys) costs no data block read.
 * KR_VIEW_MEMTABLE_BLOOM: the memtable has a bloom filter of whole keys too
 *   (a fiftieth of the write buffer: 164 KiB of 8 MiB). It holds group
 *   cursors, each ACK a new version of one of a few keys, so up to ~100k
 *   entries of a handful of keys: without the filter, every view lookup -
 *   a GET past the store's cache, each key a checkpoint probes - searched
 *   that skip list first, for nothing (a fifth of a checkpoint's CPU
 *   after a group had consumed 1M events, BENCHMARKS.md).
 * Data blocks carry a hash index as well as binary-search restarts: a point
 *   lookup inside a block is one probe, for ~1 byte per key.
 * No compression: values are small CBOR events and the CPU is better spent
 *   on ingest; the view is a fraction of the stream's size.
 * Dynamic level sizes: each checkpoint file overlaps the whole key space,
 *   so with fixed level targets ingestion stacked them one per level (L6,
 *   L5, ... never compacted, as every level stayed under its target) and
 *   every lookup and checkpoint walked seven sorted runs; with dynamic
 *   levels they land in L0 and are merged into the last level once
 *   level0_file_num_compaction_trigger (4) of them are there.
 * KR_VIEW_BG_JOBS: one flush and one compaction at a time: krappyd runs on
 *   small machines, and the loop and the storage threads need the cores.
 */
#define KR_VIEW_DEFAULT_WRITE_BUFFER (8u << 20)
#define KR_VIEW_BLOOM_BITS           10
#define KR_VIEW_MEMTABLE_BLOOM       0.02
#define KR_VIEW_HASH_RATIO           0.75
#define KR_VIEW_BG_JOBS              2
/* RocksDB's own LOG files in the database directory stay bounded. */
#define KR_VIEW_LOG_FILES 4
#define KR_VIEW_LOG_BYTES (8u << 20)
/* Keys up to this size are built on the stack. */
#define KEY_STACK 512

struct kr_view_snap {
    const rocksdb_snapshot_t *snap;
};

/* ---- errors ---- */

void kr_view_say(char *err, size_t errlen, const char *what, const char *detail)
{
    if (err == NULL || errlen == 0)
        return;
    if (detail != NULL)
        snprintf(err, errlen, "%s: %s", what, detail);
    else
        snprintf(err, errlen, "%s", what);
}

/* Corruption logged at most this often (a GET of a damaged key fails each
 * time it is asked). */
#define KR_VIEW_CORRUPT_LOG_MS 10000

/*
 * A RocksDB error that says its files are damaged ("Corruption: ...", from
 * a block whose checksum does not match) is logged at error level with the
 * way back, whoever meets it: the reader only gets STORAGE.
 */
static void log_corruption(const char *what, const char *rdb_err)
{
    static _Atomic uint64_t last_ns, unlogged;
    uint64_t now = kr_mono_ns(), last = atomic_load(&last_ns);
    if (last != 0 && now - last < (uint64_t)KR_VIEW_CORRUPT_LOG_MS * 1000000) {
        atomic_fetch_add(&unlogged, 1);
        return;
    }
    atomic_store(&last_ns, now);
    kr_log(KR_LOG_ERROR,
           "the latest-value view (RocksDB, DATA/view) is corrupt: reads of the damaged keys "
           "fail with STORAGE; stop krappyd and start it once with --rebuild-view to rebuild "
           "the view from the streams (group cursors are kept)",
           KR_LOG_STR("during", what), KR_LOG_STR("reason", rdb_err),
           KR_LOG_U64("not_logged_since", atomic_exchange(&unlogged, 0)));
}

/* Turn RocksDB's error string into the caller's sentence and free it. */
void kr_view_say_rdb(char *err, size_t errlen, const char *what, char *rdb_err)
{
    if (rdb_err != NULL && strncmp(rdb_err, "Corruption", 10) == 0)
        log_corruption(what, rdb_err);
    kr_view_say(err, errlen, what, rdb_err);
    rocksdb_free(rdb_err);
}

const char *const kr_view_closed_msg = "the view is closed after a failed reopen";
const char *const kr_view_topic_msg = "a topic name is longer than 255 bytes";
#define topic_msg kr_view_topic_msg

/* ---- keys ---- */

/* Size of 'tag' | len(topic) | topic. */
static size_t head_len(size_t tlen)
{
    return 2 + tlen;
}

/*
 * Build tag | tlen | topic | part (| 0x00 when nul) into buf, or into a
 * malloc'd buffer (returned in *heap, for the caller to free) when it does
 * not fit `cap`. @return the key, or NULL on ENOMEM. tlen <= 255 (checked by
 * the caller).
 */
static uint8_t *build_key(uint8_t *buf, size_t cap, uint8_t **heap, size_t *len, char tag,
                          const char *topic, size_t tlen, const uint8_t *part, size_t plen,
                          bool nul)
{
    *heap = NULL;
    size_t h = head_len(tlen);
    if (plen > SIZE_MAX - h - 1)
        return NULL;
    size_t n = h + plen + (nul ? 1 : 0);
    uint8_t *k = buf;
    if (n > cap) {
        k = *heap = malloc(n);
        if (k == NULL)
            return NULL;
    }
    k[0] = (uint8_t)tag;
    k[1] = (uint8_t)tlen;
    if (tlen != 0)
        memcpy(k + 2, topic, tlen);
    if (plen != 0)
        memcpy(k + h, part, plen);
    if (nul)
        k[n - 1] = 0;
    *len = n;
    return k;
}

/*
 * The smallest key greater than every key that starts with k[0..n): drop
 * trailing 0xFF bytes and add one to the last byte left. Done in place;
 * @return the new length (never 0 here: every key starts with a tag that is
 * not 0xFF).
 */
size_t kr_view_prefix_successor(uint8_t *k, size_t n)
{
    while (n > 0 && k[n - 1] == 0xFF)
        n--;
    if (n > 0)
        k[n - 1]++;
    return n;
}

/* Unsigned bytewise, a prefix first (RocksDB's default order). */
int kr_view_key_cmp(const uint8_t *a, size_t alen, const uint8_t *b, size_t blen)
{
    size_t n = alen < blen ? alen : blen;
    int c = n != 0 ? memcmp(a, b, n) : 0;
    if (c != 0)
        return c;
    return alen < blen ? -1 : alen > blen;
}

/* ---- open and close ---- */

/* Build the options once; reopen uses them again. */
/* rocksdb::InfoLogLevel::FATAL_LEVEL */
#define KR_VIEW_INFO_LOG_FATAL 4

static int make_options(kr_view *v, const kr_view_opts *o)
{
    size_t cache_bytes = o && o->block_cache_bytes ? o->block_cache_bytes : KR_VIEW_DEFAULT_CACHE;
    size_t wb_bytes =
        o && o->write_buffer_bytes ? o->write_buffer_bytes : KR_VIEW_DEFAULT_WRITE_BUFFER;

    v->opts = rocksdb_options_create();
    v->cache = rocksdb_cache_create_lru(cache_bytes);
    v->ropts = rocksdb_readoptions_create();
    v->wopts = rocksdb_writeoptions_create();
    v->walopts = rocksdb_writeoptions_create();
    v->syncopts = rocksdb_writeoptions_create();
    v->fopts = rocksdb_flushoptions_create();
    rocksdb_block_based_table_options_t *bbo = rocksdb_block_based_options_create();
    if (!v->opts || !v->cache || !v->ropts || !v->wopts || !v->walopts || !v->syncopts ||
        !v->fopts || !bbo) {
        if (bbo)
            rocksdb_block_based_options_destroy(bbo);
        return -1;
    }

    rocksdb_options_set_create_if_missing(v->opts, 1);
    rocksdb_options_set_compression(v->opts, rocksdb_no_compression);
    rocksdb_options_set_write_buffer_size(v->opts, wb_bytes);
    rocksdb_options_set_db_write_buffer_size(v->opts, 2 * wb_bytes);
    rocksdb_options_set_memtable_prefix_bloom_size_ratio(v->opts, KR_VIEW_MEMTABLE_BLOOM);
    rocksdb_options_set_memtable_whole_key_filtering(v->opts, 1);
    rocksdb_options_set_max_background_jobs(v->opts, KR_VIEW_BG_JOBS);
    if (o != NULL && o->background_low) {
        /* Merging the view's files can always wait: its thread pool (the
         * process's default Env, shared by every view opened) yields the
         * CPU and the disk to the loop, the writer and the checkpoints. */
        v->env = rocksdb_create_default_env();
        if (v->env == NULL) {
            rocksdb_block_based_options_destroy(bbo);
            return -1;
        }
        rocksdb_env_lower_thread_pool_cpu_priority(v->env);
        rocksdb_env_lower_thread_pool_io_priority(v->env);
        rocksdb_options_set_env(v->opts, v->env);
    }
    rocksdb_options_set_level_compaction_dynamic_level_bytes(v->opts, 1);
    rocksdb_options_set_keep_log_file_num(v->opts, KR_VIEW_LOG_FILES);
    /* Debian's librocksdb keeps its assertions, and its info logger asserts
     * when it writes again after a failed write - on a full disk it would
     * abort krappyd. Log only fatal events there; krappyd logs the rest. */
    rocksdb_options_set_info_log_level(v->opts, KR_VIEW_INFO_LOG_FATAL);
    if (o != NULL && o->log_dir != NULL && o->log_dir[0] != '\0')
        rocksdb_options_set_db_log_dir(v->opts, o->log_dir);
    rocksdb_options_set_max_log_file_size(v->opts, KR_VIEW_LOG_BYTES);
    /* A bound on the descriptors of table files: the rest of krappyd's
     * descriptors are planned around it (server/fdplan.c). */
    rocksdb_options_set_max_open_files(
        v->opts, o && o->max_open_files > 0 ? o->max_open_files : KR_VIEW_DEFAULT_OPEN_FILES);

    /* The table options take ownership of the filter policy; the table
     * factory copies the table options (sharing the policy and the cache),
     * so bbo can go at once. The cache stays ours to destroy. */
    rocksdb_block_based_options_set_filter_policy(
        bbo, rocksdb_filterpolicy_create_bloom(KR_VIEW_BLOOM_BITS));
    rocksdb_block_based_options_set_block_cache(bbo, v->cache);
    rocksdb_block_based_options_set_cache_index_and_filter_blocks(bbo, 1);
    rocksdb_block_based_options_set_cache_index_and_filter_blocks_with_high_priority(bbo, 1);
    rocksdb_block_based_options_set_pin_l0_filter_and_index_blocks_in_cache(bbo, 1);
    rocksdb_block_based_options_set_data_block_index_type(
        bbo, rocksdb_block_based_table_data_block_index_type_binary_search_and_hash);
    rocksdb_block_based_options_set_data_block_hash_ratio(bbo, KR_VIEW_HASH_RATIO);
    rocksdb_options_set_block_based_table_factory(v->opts, bbo);
    rocksdb_block_based_options_destroy(bbo);
    /* No row cache. It once took pipelined GETs from 210k to 375k/s; the
     * store's own cache of view answers (store_read.c) serves repeated GETs
     * now, and RocksDB's MultiGet puts every key it finds into a row cache,
     * fill_cache or not: each checkpoint's probe and each compaction's
     * lookups filled it with values of files about to be shadowed - about a
     * quarter of kr-view's CPU after a heavy load - and random GETs over 1M
     * keys ran 134k-172k/s with it, 197k-207k/s without (BENCHMARKS.md). */

    rocksdb_writeoptions_disable_WAL(v->wopts, 1);
    rocksdb_writeoptions_set_sync(v->syncopts, 1);
    rocksdb_flushoptions_set_wait(v->fopts, 1);
    return 0;
}

static void free_options(kr_view *v)
{
    if (v->fopts)
        rocksdb_flushoptions_destroy(v->fopts);
    if (v->wopts)
        rocksdb_writeoptions_destroy(v->wopts);
    if (v->walopts)
        rocksdb_writeoptions_destroy(v->walopts);
    if (v->syncopts)
        rocksdb_writeoptions_destroy(v->syncopts);
    if (v->ropts)
        rocksdb_readoptions_destroy(v->ropts);
    if (v->opts)
        rocksdb_options_destroy(v->opts);
    if (v->cache)
        rocksdb_cache_destroy(v->cache);
    if (v->env)
        rocksdb_env_destroy(v->env); /* the handle; the default Env itself stays */
    v->env = NULL;
}

/* Close the database and the default column family's handle. */
static void close_db(kr_view *v)
{
    if (v->cf != NULL)
        rocksdb_column_family_handle_destroy(v->cf);
    v->cf = NULL;
    if (v->db != NULL)
        rocksdb_close(v->db);
    v->db = NULL;
}

/* Opened with its one column family named, for the handle batched lookups
 * take (the C API has no other way to it in RocksDB 7.8). */
static int open_db(kr_view *v, char *err, size_t errlen)
{
    static const char *const names[1] = {"default"};
    const rocksdb_options_t *cf_opts[1] = {v->opts};
    char *e = NULL;
    v->db = rocksdb_open_column_families(v->opts, v->path, 1, names, cf_opts, &v->cf, &e);
    if (e != NULL || v->db == NULL || v->cf == NULL) {
        char what[512];
        snprintf(what, sizeof what, "cannot open the view at %s", v->path);
        close_db(v);
        if (e != NULL)
            kr_view_say_rdb(err, errlen, what, e);
        else
            kr_view_say(err, errlen, what, "unknown RocksDB error");
        return -1;
    }
    return 0;
}

int kr_view_open(const char *path, const kr_view_opts *o, kr_view **out, char *err, size_t errlen)
{
    *out = NULL;
    kr_view *v = calloc(1, sizeof *v);
    if (v == NULL) {
        kr_view_say(err, errlen, "out of memory", NULL);
        return -1;
    }
    pthread_rwlock_init(&v->lock, NULL); /* first: kr_view_close takes it */
    if ((v->path = strdup(path)) == NULL) {
        kr_view_say(err, errlen, "out of memory", NULL);
        goto fail;
    }
    v->fsync_writes = o ? o->fsync_writes : false;
    if (make_options(v, o) < 0) {
        kr_view_say(err, errlen, "out of memory", NULL);
        goto fail;
    }
    if (open_db(v, err, errlen) < 0)
        goto fail;
    *out = v;
    return 0;

fail:
    kr_view_close(v);
    return -1;
}

void kr_view_close(kr_view *v)
{
    if (v == NULL)
        return;
    pthread_rwlock_wrlock(&v->lock);
    close_db(v);
    pthread_rwlock_unlock(&v->lock);
    pthread_rwlock_destroy(&v->lock);
    free_options(v);
    free(v->path);
    free(v);
}

int kr_view_destroy(const char *path, char *err, size_t errlen)
{
    rocksdb_options_t *o = rocksdb_options_create();
    if (o == NULL) {
        kr_view_say(err, errlen, "out of memory", NULL);
        return -1;
    }
    char *e = NULL;
    rocksdb_destroy_db(o, path, &e);
    rocksdb_options_destroy(o);
    if (e != NULL) {
        char what[512];
        snprintf(what, sizeof what, "cannot delete the view at %s", path);
        kr_view_say_rdb(err, errlen, what, e);
        return -1;
    }
    return 0;
}

int kr_view_reopen(kr_view *v, char *err, size_t errlen)
{
    pthread_rwlock_wrlock(&v->lock);
    close_db(v);
    int rc = open_db(v, err, errlen);
    pthread_rwlock_unlock(&v->lock);
    return rc;
}

/* ---- reads ---- */

/*
 * Look a full RocksDB key up. @return the pinned value (release with
 * rocksdb_pinnableslice_destroy), or NULL with *rc = 0 when absent, -1 on
 * error (err filled).
 */
static rocksdb_pinnableslice_t *lookup(kr_view *v, const uint8_t *k, size_t klen, int *rc,
                                       char *err, size_t errlen)
{
    char *e = NULL;
    rocksdb_pinnableslice_t *ps = rocksdb_get_pinned(v->db, v->ropts, (const char *)k, klen, &e);
    if (e != NULL) {
        kr_view_say_rdb(err, errlen, "RocksDB read failed", e);
        if (ps)
            rocksdb_pinnableslice_destroy(ps);
        *rc = -1;
        return NULL;
    }
    *rc = ps != NULL;
    return ps;
}

/* Decode a marker value: exactly a CBOR array [uint, uint]. */
static int decode_marker(const uint8_t *p, size_t n, uint64_t *next, uint64_t *keys)
{
    kr_cbor_item arr, it;
    kr_cbor_iter iter;
    if (kr_cbor_read_exact(p, n, &arr) < 0 || arr.kind != KR_CBOR_ARRAY || arr.indefinite ||
        arr.u != 2)
        return -1;
    kr_cbor_iter_init(&iter, &arr);
    if (kr_cbor_iter_next(&iter, &it) != 1 || it.kind != KR_CBOR_UINT)
        return -1;
    *next = it.u;
    if (kr_cbor_iter_next(&iter, &it) != 1 || it.kind != KR_CBOR_UINT)
        return -1;
    *keys = it.u;
    return 0;
}

static int unlocked_marker(kr_view *v, const char *topic, size_t tlen, uint64_t *next,
                           uint64_t *keys, char *err, size_t errlen)
{
    if (v->db == NULL) {
        kr_view_say(err, errlen, kr_view_closed_msg, NULL);
        return -1;
    }
    if (tlen > KR_VIEW_TOPIC_MAX) {
        kr_view_say(err, errlen, topic_msg, NULL);
        return -1;
    }
    uint8_t buf[2 + KR_VIEW_TOPIC_MAX], *heap;
    size_t klen;
    uint8_t *k = build_key(buf, sizeof buf, &heap, &klen, TAG_MARKER, topic, tlen, NULL, 0, false);
    int rc;
    rocksdb_pinnableslice_t *ps = lookup(v, k, klen, &rc, err, errlen);
    free(heap); /* never used: the buffer fits any topic */
    if (ps == NULL)
        return rc;
    size_t n;
    const char *val = rocksdb_pinnableslice_value(ps, &n);
    uint64_t nx = 0, ks = 0;
    if (decode_marker((const uint8_t *)val, n, &nx, &ks) < 0) {
        kr_view_say(err, errlen, "the view holds a malformed marker (not CBOR [next, keys])", NULL);
        rc = -1;
    } else {
        *next = nx;
        *keys = ks;
        rc = 1;
    }
    rocksdb_pinnableslice_destroy(ps);
    return rc;
}

/* Shared by get and exists: look a topic's key up; the pinned value or NULL. */
static rocksdb_pinnableslice_t *get_key(kr_view *v, const char *topic, size_t tlen,
                                        const uint8_t *key, size_t klen, int *rc, char *err,
                                        size_t errlen)
{
    *rc = -1;
    if (v->db == NULL) {
        kr_view_say(err, errlen, kr_view_closed_msg, NULL);
        return NULL;
    }
    if (tlen > KR_VIEW_TOPIC_MAX) {
        kr_view_say(err, errlen, topic_msg, NULL);
        return NULL;
    }
    uint8_t buf[KEY_STACK], *heap;
    size_t len;
    uint8_t *k = build_key(buf, sizeof buf, &heap, &len, TAG_KEY, topic, tlen, key, klen, false);
    if (k == NULL) {
        kr_view_say(err, errlen, "out of memory", NULL);
        return NULL;
    }
    rocksdb_pinnableslice_t *ps = lookup(v, k, len, rc, err, errlen);
    free(heap);
    return ps;
}

static int unlocked_exists(kr_view *v, const char *topic, size_t tlen, const uint8_t *key,
                           size_t klen)
{
    int rc;
    rocksdb_pinnableslice_t *ps = get_key(v, topic, tlen, key, klen, &rc, NULL, 0);
    if (ps)
        rocksdb_pinnableslice_destroy(ps);
    return rc;
}

static int unlocked_get(kr_view *v, const char *topic, size_t tlen, const uint8_t *key, size_t klen,
                        kr_buf *out, char *err, size_t errlen)
{
    int rc;
    rocksdb_pinnableslice_t *ps = get_key(v, topic, tlen, key, klen, &rc, err, errlen);
    if (ps == NULL)
        return rc;
    size_t n;
    const char *val = rocksdb_pinnableslice_value(ps, &n);
    if (kr_buf_append(out, val, n) < 0) {
        kr_view_say(err, errlen,
                    out->len + n > out->max ? "the event does not fit the output buffer"
                                            : "out of memory reading the event",
                    NULL);
        rc = -1;
    }
    rocksdb_pinnableslice_destroy(ps);
    return rc;
}

static int unlocked_write_logged(kr_view *v, kr_view_batch *b, bool sync, char *err, size_t errlen)
{
    if (v->db == NULL) {
        kr_view_say(err, errlen, kr_view_closed_msg, NULL);
        return -1;
    }
    if (b->failed) {
        kr_view_say(err, errlen, "the logged batch (cursors, registrations) is incomplete",
                    b->failed);
        return -1;
    }
    char *e = NULL;
    rocksdb_write(v->db, sync ? v->syncopts : v->walopts, b->wb, &e);
    if (e != NULL) {
        kr_view_say_rdb(err, errlen, "RocksDB write of cursors or registrations failed", e);
        return -1;
    }
    return 0;
}

int kr_view_each_unlocked(kr_view *v, char tag, const char *topic, size_t tlen,
                          int (*fn)(void *arg, const uint8_t *part, size_t plen, const uint8_t *val,
                                    size_t vlen),
                          void *arg, const char *what, char *err, size_t errlen)
{
    if (v->db == NULL) {
        kr_view_say(err, errlen, kr_view_closed_msg, NULL);
        return -1;
    }
    if (tlen > KR_VIEW_TOPIC_MAX) {
        kr_view_say(err, errlen, topic_msg, NULL);
        return -1;
    }
    uint8_t start[2 + KR_VIEW_TOPIC_MAX], end[2 + KR_VIEW_TOPIC_MAX];
    start[0] = (uint8_t)tag;
    start[1] = (uint8_t)tlen;
    memcpy(start + 2, topic, tlen);
    memcpy(end, start, 2 + tlen);
    size_t endlen = kr_view_prefix_successor(end, 2 + tlen);
    rocksdb_readoptions_t *ro = rocksdb_readoptions_create();
    if (ro == NULL) {
        kr_view_say(err, errlen, "out of memory", NULL);
        return -1;
    }
    rocksdb_readoptions_set_iterate_upper_bound(ro, (const char *)end, endlen);
    rocksdb_iterator_t *it = rocksdb_create_iterator(v->db, ro);
    int rc = 0;
    for (rocksdb_iter_seek(it, (const char *)start, 2 + tlen); rocksdb_iter_valid(it);
         rocksdb_iter_next(it)) {
        size_t kl, vl;
        const uint8_t *k = (const uint8_t *)rocksdb_iter_key(it, &kl);
        const uint8_t *val = (const uint8_t *)rocksdb_iter_value(it, &vl);
        if (fn(arg, k + 2 + tlen, kl - 2 - tlen, val, vl) != 0)
            break;
    }
    char *e = NULL;
    rocksdb_iter_get_error(it, &e);
    if (e != NULL) {
        kr_view_say_rdb(err, errlen, what, e);
        rc = -1;
    }
    rocksdb_iter_destroy(it);
    rocksdb_readoptions_destroy(ro);
    return rc;
}

/* A cursor record's part, decoded for kr_view_cursors. */
struct cursor_walk {
    int (*fn)(void *arg, const uint8_t *group, size_t glen, uint64_t cursor, uint64_t origin);
    void *arg;
};

static int cursor_record(void *arg, const uint8_t *group, size_t glen, const uint8_t *val,
                         size_t vl)
{
    struct cursor_walk *cw = arg;
    kr_cbor_item arr, cur;
    kr_cbor_iter ci;
    if (glen == 0 || kr_cbor_read_exact(val, vl, &arr) < 0 || arr.kind != KR_CBOR_ARRAY)
        return 0; /* not a record this version wrote: skip it */
    kr_cbor_iter_init(&ci, &arr);
    if (kr_cbor_iter_next(&ci, &cur) != 1 || cur.kind != KR_CBOR_UINT)
        return 0;
    kr_cbor_item org;
    uint64_t origin = 0; /* records without one: anything below the cursor */
    if (kr_cbor_iter_next(&ci, &org) == 1 && org.kind == KR_CBOR_UINT && org.u <= cur.u)
        origin = org.u;
    return cw->fn(cw->arg, group, glen, cur.u, origin);
}

static int unlocked_cursors(kr_view *v, const char *topic, size_t tlen,
                            int (*fn)(void *arg, const uint8_t *group, size_t glen, uint64_t cursor,
                                      uint64_t origin),
                            void *arg, char *err, size_t errlen)
{
    struct cursor_walk cw = {fn, arg};
    return kr_view_each_unlocked(v, TAG_CURSOR, topic, tlen, cursor_record, &cw,
                                 "reading group cursors failed", err, errlen);
}

static int unlocked_write(kr_view *v, kr_view_batch *b, char *err, size_t errlen)
{
    if (v->db == NULL) {
        kr_view_say(err, errlen, kr_view_closed_msg, NULL);
        return -1;
    }
    if (b->failed) {
        kr_view_say(err, errlen, "the checkpoint batch is incomplete", b->failed);
        return -1;
    }
    char *e = NULL;
    rocksdb_write(v->db, v->wopts, b->wb, &e);
    if (e != NULL) {
        kr_view_say_rdb(err, errlen, "RocksDB write failed", e);
        return -1;
    }
    rocksdb_flush(v->db, v->fopts, &e);
    if (e != NULL) {
        kr_view_say_rdb(err, errlen, "RocksDB flush failed", e);
        return -1;
    }
    return 0;
}

/* ---- snapshots and scans ---- */

static kr_view_snap *unlocked_snapshot(kr_view *v)
{
    if (v->db == NULL)
        return NULL;
    kr_view_snap *s = malloc(sizeof *s);
    if (s == NULL)
        return NULL;
    s->snap = rocksdb_create_snapshot(v->db);
    if (s->snap == NULL) {
        free(s);
        return NULL;
    }
    return s;
}

static void unlocked_snapshot_release(kr_view *v, kr_view_snap *s)
{
    if (s == NULL)
        return;
    if (v->db != NULL)
        rocksdb_release_snapshot(v->db, s->snap);
    free(s);
}

static long unlocked_scan(kr_view *v, kr_view_snap *s, const char *topic, size_t tlen,
                          const uint8_t *prefix, size_t plen, bool has_after, const uint8_t *after,
                          size_t alen, size_t limit,
                          int (*fn)(void *arg, const uint8_t *key, size_t klen,
                                    const uint8_t *event, size_t elen),
                          void *arg, bool *more, char *err, size_t errlen)
{
    long given = -1;
    uint8_t lo_buf[KEY_STACK], hi_buf[KEY_STACK], af_buf[KEY_STACK];
    uint8_t *lo_heap = NULL, *hi_heap = NULL, *af_heap = NULL;
    rocksdb_readoptions_t *ro = NULL;
    rocksdb_iterator_t *it = NULL;
    char *e = NULL;

    *more = false;
    if (v->db == NULL) {
        kr_view_say(err, errlen, kr_view_closed_msg, NULL);
        return -1;
    }
    if (tlen > KR_VIEW_TOPIC_MAX) {
        kr_view_say(err, errlen, topic_msg, NULL);
        return -1;
    }

    /* [lo, hi): the topic's keys starting with prefix. */
    size_t lolen, hilen, aflen = 0;
    uint8_t *lo = build_key(lo_buf, sizeof lo_buf, &lo_heap, &lolen, TAG_KEY, topic, tlen, prefix,
                            plen, false);
    uint8_t *hi = build_key(hi_buf, sizeof hi_buf, &hi_heap, &hilen, TAG_KEY, topic, tlen, prefix,
                            plen, false);
    if (lo == NULL || hi == NULL)
        goto oom;
    hilen = kr_view_prefix_successor(hi, hilen);

    /* Start at the first key strictly after `after` (its key + 0x00) when
     * that is past lo. */
    const uint8_t *seek = lo;
    size_t seeklen = lolen;
    if (has_after) {
        uint8_t *af = build_key(af_buf, sizeof af_buf, &af_heap, &aflen, TAG_KEY, topic, tlen,
                                after, alen, true);
        if (af == NULL)
            goto oom;
        if (kr_view_key_cmp(af, aflen, lo, lolen) > 0) {
            seek = af;
            seeklen = aflen;
        }
    }

    ro = rocksdb_readoptions_create();
    if (ro == NULL)
        goto oom;
    if (s != NULL)
        rocksdb_readoptions_set_snapshot(ro, s->snap);
    /* Not copied by RocksDB: hi must outlive the iterator (it does). */
    rocksdb_readoptions_set_iterate_upper_bound(ro, (const char *)hi, hilen);
    it = rocksdb_create_iterator(v->db, ro);
    if (it == NULL)
        goto oom;

    size_t hlen = head_len(tlen);
    long n = 0;
    for (rocksdb_iter_seek(it, (const char *)seek, seeklen); rocksdb_iter_valid(it);) {
        if ((size_t)n >= limit) {
            *more = true;
            break;
        }
        size_t kl, vl;
        const char *k = rocksdb_iter_key(it, &kl);
        const char *val = rocksdb_iter_value(it, &vl);
        if (kl < hlen) /* cannot happen inside [lo, hi) */
            break;
        n++;
        int stop = fn(arg, (const uint8_t *)k + hlen, kl - hlen, (const uint8_t *)val, vl);
        rocksdb_iter_next(it);
        if (stop) {
            *more = rocksdb_iter_valid(it);
            break;
        }
    }
    rocksdb_iter_get_error(it, &e);
    if (e != NULL) {
        kr_view_say_rdb(err, errlen, "RocksDB scan failed", e);
        *more = false;
        goto done;
    }
    given = n;
    goto done;

oom:
    kr_view_say(err, errlen, "out of memory", NULL);
done:
    if (it)
        rocksdb_iter_destroy(it);
    if (ro)
        rocksdb_readoptions_destroy(ro);
    free(lo_heap);
    free(hi_heap);
    free(af_heap);
    return given;
}

/* ---- metrics ---- */

static uint64_t unlocked_disk_bytes(kr_view *v)
{
    if (v == NULL || v->db == NULL)
        return 0;
    char *s = rocksdb_property_value(v->db, "rocksdb.total-sst-files-size");
    if (s == NULL)
        return 0;
    uint64_t n = strtoull(s, NULL, 10);
    rocksdb_free(s);
    return n;
}

/* ---- the public calls: the view's lock held shared around each ---- */

int kr_view_marker(kr_view *v, const char *topic, size_t tlen, uint64_t *next, uint64_t *keys,
                   char *err, size_t errlen)
{
    int rc;
    SHARED(v, rc = unlocked_marker(v, topic, tlen, next, keys, err, errlen));
    return rc;
}

int kr_view_exists(kr_view *v, const char *topic, size_t tlen, const uint8_t *key, size_t klen)
{
    int rc;
    SHARED(v, rc = unlocked_exists(v, topic, tlen, key, klen));
    return rc;
}

int kr_view_get(kr_view *v, const char *topic, size_t tlen, const uint8_t *key, size_t klen,
                kr_buf *out, char *err, size_t errlen)
{
    int rc;
    SHARED(v, rc = unlocked_get(v, topic, tlen, key, klen, out, err, errlen));
    return rc;
}

int kr_view_write_logged(kr_view *v, kr_view_batch *b, bool sync, char *err, size_t errlen)
{
    int rc;
    SHARED(v, rc = unlocked_write_logged(v, b, sync, err, errlen));
    return rc;
}

int kr_view_cursors(kr_view *v, const char *topic, size_t tlen,
                    int (*fn)(void *arg, const uint8_t *group, size_t glen, uint64_t cursor,
                              uint64_t origin),
                    void *arg, char *err, size_t errlen)
{
    int rc;
    SHARED(v, rc = unlocked_cursors(v, topic, tlen, fn, arg, err, errlen));
    return rc;
}

int kr_view_koffsets(kr_view *v, const char *topic, size_t tlen,
                     int (*fn)(void *arg, const uint8_t *group, size_t glen, const uint8_t *value,
                               size_t vlen),
                     void *arg, char *err, size_t errlen)
{
    int rc;
    SHARED(v, rc = kr_view_each_unlocked(v, TAG_KOFFSET, topic, tlen, fn, arg,
                                         "reading Kafka committed offsets failed", err, errlen));
    return rc;
}

int kr_view_write(kr_view *v, kr_view_batch *b, char *err, size_t errlen)
{
    int rc;
    SHARED(v, rc = unlocked_write(v, b, err, errlen));
    return rc;
}

kr_view_snap *kr_view_snapshot(kr_view *v)
{
    kr_view_snap *snap;
    SHARED(v, snap = unlocked_snapshot(v));
    return snap;
}

void kr_view_snapshot_release(kr_view *v, kr_view_snap *s)
{
    SHARED(v, unlocked_snapshot_release(v, s));
}

long kr_view_scan(kr_view *v, kr_view_snap *s, const char *topic, size_t tlen,
                  const uint8_t *prefix, size_t plen, bool has_after, const uint8_t *after,
                  size_t alen, size_t limit,
                  int (*fn)(void *arg, const uint8_t *key, size_t klen, const uint8_t *event,
                            size_t elen),
                  void *arg, bool *more, char *err, size_t errlen)
{
    long n;
    SHARED(v, n = unlocked_scan(v, s, topic, tlen, prefix, plen, has_after, after, alen, limit, fn,
                                arg, more, err, errlen));
    return n;
}

uint64_t kr_view_disk_bytes(kr_view *v)
{
    uint64_t n;
    SHARED(v, n = unlocked_disk_bytes(v));
    return n;
}
