/*
 * store/koffsets.c - the committed offsets of Kafka consumer groups: the
 * Kafka listener's bookkeeping (OffsetCommit, OffsetFetch), durable in
 * RocksDB beside the groups' cursors under a key namespace of their own
 * (view.h: 'o' | topic | group -> CBOR [offset, metadata]).
 *
 * Each topic keeps its groups' offsets in memory, by group name, loaded at
 * start with the cursors. A commit goes through the storage writer as a
 * cursor job (one WAL-on write per round for every cursor and offset), and
 * the table takes the new offset only when the write completed: what
 * OffsetFetch answers has survived kill -9.
 */
#include "store/store_int.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "proto/cbor.h"
#include "store/job.h"
#include "util/log.h"

static const char *koffset_name_at(const void *table, size_t i, size_t *len)
{
    const kr_koffset *k = &((const kr_topic *)table)->koffsets[i];
    *len = k->group_len;
    return k->group;
}

static size_t koffset_slot(const kr_topic *t, const uint8_t *name, size_t len, bool *found)
{
    return kr_name_slot(t, t->n_koffsets, koffset_name_at, name, len, found);
}

const kr_koffset *kr_store_koffset(const kr_topic *t, const uint8_t *group, size_t len)
{
    bool found;
    size_t at = koffset_slot(t, group, len, &found);
    return found ? &t->koffsets[at] : NULL;
}

size_t kr_store_koffsets(const kr_topic *t, const kr_koffset **out)
{
    *out = t->koffsets;
    return t->n_koffsets;
}

static char *dup_text(const void *p, size_t n)
{
    char *s = malloc(n + 1);
    if (s != NULL) {
        if (n > 0)
            memcpy(s, p, n);
        s[n] = '\0';
    }
    return s;
}

/* Room for one more entry in t's table. @return 0, or -1 on ENOMEM. */
static int grow(kr_topic *t)
{
    if (t->n_koffsets < t->cap_koffsets)
        return 0;
    size_t cap = t->cap_koffsets ? t->cap_koffsets * 2 : 4;
    kr_koffset *n = realloc(t->koffsets, cap * sizeof *n);
    if (n == NULL)
        return -1;
    t->koffsets = n;
    t->cap_koffsets = cap;
    return 0;
}

/*
 * Set group's offset and metadata (mlen -1: null) in t's table, adding the
 * group in name order when it is new. @return 0, or -1 on ENOMEM (the
 * table is as it was).
 */
static int koffset_set(kr_topic *t, const uint8_t *group, size_t glen, uint64_t offset,
                       const uint8_t *metadata, int64_t mlen)
{
    char *meta = NULL;
    if (mlen >= 0 && (meta = dup_text(metadata, (size_t)mlen)) == NULL)
        return -1;
    bool found;
    size_t at = koffset_slot(t, group, glen, &found);
    if (!found) {
        char *name = dup_text(group, glen);
        if (name == NULL || grow(t) < 0) {
            free(name);
            free(meta);
            return -1;
        }
        memmove(t->koffsets + at + 1, t->koffsets + at, (t->n_koffsets - at) * sizeof *t->koffsets);
        t->koffsets[at] = (kr_koffset){.group = name, .group_len = glen};
        t->n_koffsets++;
    }
    kr_koffset *k = &t->koffsets[at];
    free(k->metadata);
    k->offset = offset;
    k->metadata = meta;
    k->metadata_len = mlen >= 0 ? (size_t)mlen : 0;
    return 0;
}

void kr_store_koffsets_free(kr_topic *t)
{
    for (size_t i = 0; i < t->n_koffsets; i++) {
        free(t->koffsets[i].group);
        free(t->koffsets[i].metadata);
    }
    free(t->koffsets);
    t->koffsets = NULL;
    t->n_koffsets = t->cap_koffsets = 0;
}

/* ---- start-up ---- */

typedef struct load_ctx {
    kr_topic *t;
    int failed;
} load_ctx;

/* One record: CBOR [offset, metadata text or null]. A record this version
 * did not write is skipped with a warning, not fatal. */
static int load_one(void *arg, const uint8_t *group, size_t glen, const uint8_t *val, size_t vlen)
{
    load_ctx *c = arg;
    kr_cbor_item arr, off, meta;
    kr_cbor_iter it;
    if (glen == 0 || glen > KR_KOFFSET_GROUP_MAX || kr_cbor_read_exact(val, vlen, &arr) < 0 ||
        arr.kind != KR_CBOR_ARRAY)
        goto skip;
    kr_cbor_iter_init(&it, &arr);
    if (kr_cbor_iter_next(&it, &off) != 1 || off.kind != KR_CBOR_UINT ||
        kr_cbor_iter_next(&it, &meta) != 1 ||
        (meta.kind != KR_CBOR_NULL && (meta.kind != KR_CBOR_TEXT || meta.indefinite)))
        goto skip;
    if (koffset_set(c->t, group, glen, off.u, meta.kind == KR_CBOR_NULL ? NULL : meta.str,
                    meta.kind == KR_CBOR_NULL ? -1 : (int64_t)meta.str_len) < 0) {
        c->failed = 1;
        return 1;
    }
    return 0;
skip:
    kr_log(KR_LOG_WARN, "a Kafka committed offset record this version cannot read was ignored",
           KR_LOG_STR("topic", c->t->name), KR_LOG_U64("group_bytes", glen));
    return 0;
}

int kr_store_koffsets_load(kr_store *s, kr_topic *t, char *err, size_t errlen)
{
    load_ctx c = {t, 0};
    if (kr_view_koffsets(s->view, t->name, t->name_len, load_one, &c, err, errlen) < 0)
        return -1;
    if (c.failed) {
        snprintf(err, errlen, "out of memory loading the Kafka offsets of %s", t->name);
        return -1;
    }
    return 0;
}

/* ---- commits ---- */

int kr_store_koffset_commit(kr_store *s, kr_topic *t, const uint8_t *group, size_t glen,
                            uint64_t offset, const char *metadata, int32_t mlen, kr_store_done done,
                            void *arg, kr_store_result *res)
{
    *res = (kr_store_result){.err = KRAPPY_E_INVALID_ARGUMENT};
    if (glen == 0 || glen > KR_KOFFSET_GROUP_MAX) {
        snprintf(res->msg, sizeof res->msg, "a group id must be 1 to %d bytes (this one has %zu)",
                 KR_KOFFSET_GROUP_MAX, glen);
        return -1;
    }
    if (mlen > KR_KOFFSET_METADATA_MAX) {
        snprintf(res->msg, sizeof res->msg,
                 "offset metadata may be at most %d bytes (this one has %d)",
                 KR_KOFFSET_METADATA_MAX, mlen);
        return -1;
    }
    res->err = KRAPPY_E_STORAGE;
    if (s->draining) {
        snprintf(res->msg, sizeof res->msg, "the store is closing");
        return -1;
    }
    /* The record: the group name, then the value [offset, metadata]. */
    kr_buf b;
    kr_buf_init(&b, glen + (size_t)(mlen > 0 ? mlen : 0) + 32);
    kr_buf_append(&b, group, glen);
    kr_cbor_put_array(&b, 2);
    kr_cbor_put_uint(&b, offset);
    if (mlen < 0)
        kr_cbor_put_null(&b);
    else
        kr_cbor_put_text(&b, metadata, (size_t)mlen);
    kr_job *j = b.failed ? NULL : kr_job_new(KR_JOB_CURSOR, t);
    if (j == NULL) {
        kr_buf_free(&b);
        snprintf(res->msg, sizeof res->msg, "out of memory committing an offset");
        return -1;
    }
    j->cursor.koffset = b.data; /* the job's now */
    j->cursor.group = (const char *)b.data;
    j->cursor.group_len = glen;
    j->cursor.koffset_len = b.len - glen;
    j->cursor.cursor = offset;
    j->cursor.sync = s->o.fsync_cursors;
    j->done = done;
    j->arg = arg;
    kr_writer_submit(s->writer, j);
    res->err = KRAPPY_OK;
    return 0;
}

/* The record is in RocksDB: the table takes it (store_group.c dispatches
 * here from the cursor jobs' completion). */
void kr_store_koffset_done(kr_store *s, kr_job *j)
{
    (void)s;
    const kr_job_cursor *c = &j->cursor;
    kr_store_result res = {.err = j->err, .first = c->cursor};
    if (j->err == KRAPPY_OK) {
        kr_cbor_item arr, off, meta;
        kr_cbor_iter it;
        /* The value was encoded above: [uint, null or definite text]. */
        (void)kr_cbor_read_exact(c->koffset + c->group_len, c->koffset_len, &arr);
        kr_cbor_iter_init(&it, &arr);
        (void)kr_cbor_iter_next(&it, &off);
        (void)kr_cbor_iter_next(&it, &meta);
        bool null = meta.kind == KR_CBOR_NULL;
        if (koffset_set(j->t, c->koffset, c->group_len, c->cursor, null ? NULL : meta.str,
                        null ? -1 : (int64_t)meta.str_len) < 0) {
            res.err = KRAPPY_E_STORAGE;
            snprintf(res.msg, sizeof res.msg,
                     "out of memory recording a committed offset (it is on disk: the next "
                     "start reads it)");
        }
    } else {
        snprintf(res.msg, sizeof res.msg, "%s", kr_job_msg(j));
    }
    if (j->done != NULL)
        j->done(j->arg, &res);
}
