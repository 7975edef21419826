/*
 * store/view_ckpt.c - what a checkpoint needs of the view (see view.h):
 * writing it as one table file that RocksDB ingests at once, and probes
 * that say which of its keys the view holds, in sorted batches of lookups.
 */
#include "store/view_int.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* ---- checkpoints as table files ---- */

struct kr_view_ckpt {
    kr_view *v;
    rocksdb_envoptions_t *env;
    rocksdb_sstfilewriter_t *w;
    char *path; /* beside the database directory: DIR.ingest */
    kr_buf key;
    size_t entries;
    char failed[256]; /* the first failure, or "" */
};

/* The file a checkpoint is built in. It is never inside the database
 * directory (RocksDB owns that); ingestion links it in and removes it. */
static char *ckpt_path(const kr_view *v)
{
    size_t n = strlen(v->path) + sizeof ".ingest";
    char *p = malloc(n);
    if (p != NULL)
        snprintf(p, n, "%s.ingest", v->path);
    return p;
}

static void ckpt_free(kr_view_ckpt *c)
{
    if (c->w != NULL)
        rocksdb_sstfilewriter_destroy(c->w);
    if (c->env != NULL)
        rocksdb_envoptions_destroy(c->env);
    if (c->path != NULL)
        unlink(c->path); /* after a failure; gone already after an ingest */
    free(c->path);
    kr_buf_free(&c->key);
    free(c);
}

kr_view_ckpt *kr_view_ckpt_new(kr_view *v, char *err, size_t errlen)
{
    kr_view_ckpt *c = calloc(1, sizeof *c);
    if (c == NULL) {
        kr_view_say(err, errlen, "out of memory", NULL);
        return NULL;
    }
    c->v = v;
    kr_buf_init(&c->key, SIZE_MAX);
    c->path = ckpt_path(v);
    c->env = rocksdb_envoptions_create();
    /* The database's options: the same table format (block size, bloom
     * filter, no compression) as the files flushes and compactions write. */
    c->w = c->env != NULL ? rocksdb_sstfilewriter_create(c->env, v->opts) : NULL;
    if (c->path == NULL || c->w == NULL) {
        kr_view_say(err, errlen, "out of memory", NULL);
        ckpt_free(c);
        return NULL;
    }
    unlink(c->path); /* left by a crash during an earlier checkpoint */
    char *e = NULL;
    rocksdb_sstfilewriter_open(c->w, c->path, &e);
    if (e != NULL) {
        kr_view_say_rdb(err, errlen, "cannot start a checkpoint file", e);
        ckpt_free(c);
        return NULL;
    }
    return c;
}

/* Build tag | tlen | topic | part into c->key. @return 0, or -1 (failed). */
static int ckpt_key(kr_view_ckpt *c, char tag, const char *topic, size_t tlen, const uint8_t *part,
                    size_t plen)
{
    if (c->failed[0] != '\0')
        return -1;
    const char *why = kr_view_key_into(&c->key, tag, topic, tlen, part, plen);
    if (why != NULL) {
        snprintf(c->failed, sizeof c->failed, "%s", why);
        return -1;
    }
    return 0;
}

static void ckpt_result(kr_view_ckpt *c, char *e)
{
    if (e == NULL) {
        c->entries++;
        return;
    }
    snprintf(c->failed, sizeof c->failed, "writing the checkpoint file failed: %s", e);
    rocksdb_free(e);
}

void kr_view_ckpt_entry(kr_view_ckpt *c, char tag, const char *topic, size_t tlen,
                        const uint8_t *part, size_t plen, const uint8_t *val, size_t vlen)
{
    if (ckpt_key(c, tag, topic, tlen, part, plen) < 0)
        return;
    char *e = NULL;
    if (val != NULL)
        rocksdb_sstfilewriter_put(c->w, (const char *)c->key.data, c->key.len, (const char *)val,
                                  vlen, &e);
    else
        rocksdb_sstfilewriter_delete(c->w, (const char *)c->key.data, c->key.len, &e);
    ckpt_result(c, e);
}

void kr_view_ckpt_put(kr_view_ckpt *c, const char *topic, size_t tlen, const uint8_t *key,
                      size_t klen, const uint8_t *event, size_t elen)
{
    kr_view_ckpt_entry(c, TAG_KEY, topic, tlen, key, klen, event, elen);
}

void kr_view_ckpt_delete(kr_view_ckpt *c, const char *topic, size_t tlen, const uint8_t *key,
                         size_t klen)
{
    kr_view_ckpt_entry(c, TAG_KEY, topic, tlen, key, klen, NULL, 0);
}

void kr_view_ckpt_marker(kr_view_ckpt *c, const char *topic, size_t tlen, uint64_t next,
                         uint64_t keys)
{
    uint8_t val[32];
    size_t vlen = kr_view_encode_marker(val, next, keys);
    if (vlen == 0) {
        if (c->failed[0] == '\0')
            snprintf(c->failed, sizeof c->failed, "out of memory");
        return;
    }
    kr_view_ckpt_entry(c, TAG_MARKER, topic, tlen, NULL, 0, val, vlen);
}

void kr_view_ckpt_abort(kr_view_ckpt *c)
{
    if (c != NULL)
        ckpt_free(c);
}

static int unlocked_ingest(kr_view *v, const char *path, char *err, size_t errlen)
{
    if (v->db == NULL) {
        kr_view_say(err, errlen, kr_view_closed_msg, NULL);
        return -1;
    }
    rocksdb_ingestexternalfileoptions_t *io = rocksdb_ingestexternalfileoptions_create();
    if (io == NULL) {
        kr_view_say(err, errlen, "out of memory", NULL);
        return -1;
    }
    /* Link the file in rather than copy it; give it a sequence number newer
     * than everything (its keys overlap what the view holds); snapshots -
     * SCAN cursors - keep seeing what they saw; a memtable that overlaps it
     * (only cursors live there, in another key range) is flushed first. */
    rocksdb_ingestexternalfileoptions_set_move_files(io, 1);
    rocksdb_ingestexternalfileoptions_set_allow_global_seqno(io, 1);
    rocksdb_ingestexternalfileoptions_set_snapshot_consistency(io, 1);
    rocksdb_ingestexternalfileoptions_set_allow_blocking_flush(io, 1);
    const char *files[1] = {path};
    char *e = NULL;
    rocksdb_ingest_external_file(v->db, files, 1, io, &e);
    rocksdb_ingestexternalfileoptions_destroy(io);
    if (e != NULL) {
        kr_view_say_rdb(err, errlen, "RocksDB did not take the checkpoint file", e);
        return -1;
    }
    return 0;
}

int kr_view_ckpt_commit(kr_view_ckpt *c, char *err, size_t errlen)
{
    int rc = -1;
    if (c->failed[0] != '\0') {
        kr_view_say(err, errlen, c->failed, NULL);
        goto out;
    }
    if (c->entries == 0) {
        rc = 0; /* nothing to write (a table file cannot be empty) */
        goto out;
    }
    char *e = NULL;
    rocksdb_sstfilewriter_finish(c->w, &e); /* writes and syncs the file */
    if (e != NULL) {
        kr_view_say_rdb(err, errlen, "writing the checkpoint file failed", e);
        goto out;
    }
    pthread_rwlock_rdlock(&c->v->lock);
    rc = unlocked_ingest(c->v, c->path, err, errlen) < 0 ? -2 : 0;
    pthread_rwlock_unlock(&c->v->lock);
out:
    ckpt_free(c);
    return rc;
}

/* ---- probes ---- */

/*
 * A probe looks its keys up in sorted batches (RocksDB's batched MultiGet)
 * instead of walking an iterator: every checkpoint file overlaps the whole
 * key space, so the view is several sorted runs (the L0 files and the last
 * level), and each step of an iterator merges them all and skips the older
 * versions of the key it passes - as much work per key stepped over as per
 * key probed. A batched lookup asks each run's bloom filter for the whole
 * batch, reads a data block only where a key may be, and reads it once for
 * the keys of the batch that share it. A key new to the view costs the
 * filters alone.
 */
struct kr_view_probe {
    kr_view *v;
    rocksdb_readoptions_t *ro;
    const rocksdb_snapshot_t *snap;
    kr_buf keys; /* the batch's full keys, end to end */
    char tag_topic[2 + KR_VIEW_TOPIC_MAX];
    size_t tlen;
    /* One batch's arguments and answers. */
    const char *kp[KR_VIEW_PROBE_BATCH];
    size_t kl[KR_VIEW_PROBE_BATCH];
    rocksdb_pinnableslice_t *val[KR_VIEW_PROBE_BATCH];
    char *errs[KR_VIEW_PROBE_BATCH];
    bool failed;
    char err[256]; /* why it failed */
};

kr_view_probe *kr_view_probe_new(kr_view *v, const char *topic, size_t tlen)
{
    if (tlen > KR_VIEW_TOPIC_MAX)
        return NULL;
    kr_view_probe *p = calloc(1, sizeof *p);
    if (p == NULL)
        return NULL;
    p->v = v;
    p->tlen = tlen;
    p->tag_topic[0] = TAG_KEY;
    p->tag_topic[1] = (char)tlen;
    memcpy(p->tag_topic + 2, topic, tlen);
    kr_buf_init(&p->keys, SIZE_MAX);
    pthread_rwlock_rdlock(&v->lock);
    if (v->db == NULL || (p->ro = rocksdb_readoptions_create()) == NULL)
        goto fail;
    /* A checkpoint reads the blocks of keys it is about to replace: caching
     * them would evict what GETs use, for no second read (a batch reads a
     * block once for all its keys there). */
    rocksdb_readoptions_set_fill_cache(p->ro, 0);
    p->snap = rocksdb_create_snapshot(v->db);
    if (p->snap == NULL)
        goto fail;
    rocksdb_readoptions_set_snapshot(p->ro, p->snap);
    return p;
fail:
    if (p->ro != NULL)
        rocksdb_readoptions_destroy(p->ro);
    pthread_rwlock_unlock(&v->lock);
    kr_buf_free(&p->keys);
    free(p);
    return NULL;
}

void kr_view_probe_free(kr_view_probe *p)
{
    if (p == NULL)
        return;
    rocksdb_release_snapshot(p->v->db, p->snap);
    rocksdb_readoptions_destroy(p->ro);
    pthread_rwlock_unlock(&p->v->lock);
    kr_buf_free(&p->keys);
    free(p);
}

/* Look up n <= KR_VIEW_PROBE_BATCH keys, each answer to fn with its index
 * plus base. @return 0, or -1 (p failed). */
static int probe_batch(kr_view_probe *p, const kr_view_probe_key *keys, size_t n, size_t base,
                       kr_view_probe_fn fn, void *arg)
{
    size_t plen = 2 + p->tlen;
    kr_buf_reset(&p->keys);
    for (size_t i = 0; i < n; i++) {
        kr_buf_append(&p->keys, p->tag_topic, plen);
        kr_buf_append(&p->keys, keys[i].key, keys[i].klen);
    }
    if (p->keys.failed) {
        snprintf(p->err, sizeof p->err, "out of memory building %zu keys", n);
        p->failed = true;
        return -1;
    }
    /* Pointers only once the buffer has stopped moving. */
    size_t at = 0;
    for (size_t i = 0; i < n; i++) {
        p->kp[i] = (const char *)p->keys.data + at;
        p->kl[i] = plen + keys[i].klen;
        at += p->kl[i];
    }
    rocksdb_batched_multi_get_cf(p->v->db, p->ro, p->v->cf, n, p->kp, p->kl, p->val, p->errs, true);
    for (size_t i = 0; i < n; i++) {
        if (p->errs[i] != NULL && !p->failed) {
            snprintf(p->err, sizeof p->err, "reading RocksDB failed: %s", p->errs[i]);
            p->failed = true;
        }
        if (!p->failed) {
            size_t vlen = 0;
            const char *val = NULL;
            if (p->val[i] != NULL && (val = rocksdb_pinnableslice_value(p->val[i], &vlen)) == NULL)
                val = ""; /* present, empty */
            const char *why = NULL;
            if (fn(arg, base + i, (const uint8_t *)val, vlen, &why) < 0) {
                snprintf(p->err, sizeof p->err, "%s", why != NULL ? why : "stopped");
                p->failed = true;
            }
        }
        if (p->val[i] != NULL)
            rocksdb_pinnableslice_destroy(p->val[i]);
        rocksdb_free(p->errs[i]);
    }
    return p->failed ? -1 : 0;
}

int kr_view_probe_values(kr_view_probe *p, const kr_view_probe_key *keys, size_t n,
                         kr_view_probe_fn fn, void *arg)
{
    if (p->failed)
        return -1;
    for (size_t i = 0; i < n; i += KR_VIEW_PROBE_BATCH) {
        size_t m = n - i < KR_VIEW_PROBE_BATCH ? n - i : KR_VIEW_PROBE_BATCH;
        if (probe_batch(p, keys + i, m, i, fn, arg) < 0)
            return -1;
    }
    return 0;
}

static int set_live(void *arg, size_t i, const uint8_t *val, size_t vlen, const char **why)
{
    (void)vlen;
    (void)why;
    ((bool *)arg)[i] = val != NULL;
    return 0;
}

int kr_view_probe_many(kr_view_probe *p, const kr_view_probe_key *keys, size_t n, bool *live)
{
    return kr_view_probe_values(p, keys, n, set_live, live);
}

int kr_view_probe_has(kr_view_probe *p, const uint8_t *key, size_t klen)
{
    kr_view_probe_key k = {.key = key, .klen = klen};
    bool live;
    return kr_view_probe_many(p, &k, 1, &live) < 0 ? -1 : live;
}

const char *kr_view_probe_error(const kr_view_probe *p)
{
    return p->failed ? p->err : "";
}
