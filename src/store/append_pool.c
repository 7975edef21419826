/*
 * store/append_pool.c - the recycled memory of the append path (append.h):
 * the chunks PUBLISH batches are encoded into, the append records that
 * follow them to the disk, and the blocks of the copies kept until a sync.
 * Each is reused rather than freed, so a busy stream allocates nothing per
 * request; each pool is bounded, so a burst does not stay in memory.
 */
#include "store/append.h"

#include <stdlib.h>
#include <string.h>

#include "store/store_int.h"

/* Recycled chunks and append records the store keeps. */
#define KR_CHUNKS_KEPT  32
#define KR_APPENDS_KEPT 1024
/* A recycled chunk keeps at most this much memory... */
#define KR_CHUNK_KEEP_BYTES (256u * 1024)
/*
 * ...but one may keep up to this much: a Kafka Produce's batch of a few
 * thousand records reserves its whole room (over a megabyte), which malloc
 * maps and unmaps each time, so every Produce would fault its pages in
 * afresh. One such chunk is all the loop needs at once per stream turn; the
 * bound is the memory this costs at rest.
 */
#define KR_CHUNK_BIG_KEPT       1
#define KR_CHUNK_BIG_KEEP_BYTES (4u * 1024 * 1024)
/* A chunk's parts are addressed with 32-bit positions (kr_ev_meta). */
#define KR_CHUNK_MAX ((size_t)UINT32_MAX)

/* ---- chunks and append records ---- */

/* Whether one of the chunk's buffers holds more than this. */
static bool chunk_over(const kr_chunk *c, size_t bytes)
{
    return c->data.cap > bytes || c->meta.cap > bytes || c->extra.cap > bytes;
}

static kr_chunk *chunk_get(kr_store *s)
{
    kr_chunk *c = TAILQ_FIRST(&s->free_chunks);
    if (c != NULL) {
        TAILQ_REMOVE(&s->free_chunks, c, link);
        s->n_free_chunks--;
        if (chunk_over(c, KR_CHUNK_KEEP_BYTES))
            s->n_free_big_chunks--;
    } else {
        c = calloc(1, sizeof *c);
        if (c == NULL)
            return NULL;
        kr_buf_init(&c->data, KR_CHUNK_MAX);
        kr_buf_init(&c->meta, KR_CHUNK_MAX);
        kr_buf_init(&c->extra, KR_CHUNK_MAX);
    }
    c->pos = 0;
    c->refs = 0;
    return c;
}

void kr_chunk_free(kr_chunk *c)
{
    kr_buf_free(&c->data);
    kr_buf_free(&c->meta);
    kr_buf_free(&c->extra);
    free(c);
}

/* Drop a reference; the last one recycles the chunk (or frees it). */
void kr_chunk_unref(kr_store *s, kr_chunk *c)
{
    if (c == NULL || --c->refs > 0)
        return;
    bool big = chunk_over(c, KR_CHUNK_KEEP_BYTES);
    if (s->n_free_chunks >= KR_CHUNKS_KEPT || (big && (s->n_free_big_chunks >= KR_CHUNK_BIG_KEPT ||
                                                       chunk_over(c, KR_CHUNK_BIG_KEEP_BYTES)))) {
        kr_chunk_free(c);
        return;
    }
    kr_buf_reset(&c->data);
    kr_buf_reset(&c->meta);
    kr_buf_reset(&c->extra);
    /* At the head: the next batch, likely as big, takes it first. */
    TAILQ_INSERT_HEAD(&s->free_chunks, c, link);
    s->n_free_chunks++;
    s->n_free_big_chunks += big;
}

kr_append *kr_append_new(kr_store *s, kr_topic *t)
{
    kr_append *a = TAILQ_FIRST(&s->free_appends);
    if (a != NULL) {
        TAILQ_REMOVE(&s->free_appends, a, link);
        s->n_free_appends--;
        memset(a, 0, sizeof *a);
    } else if ((a = calloc(1, sizeof *a)) == NULL) {
        return NULL;
    }
    a->t = t;
    return a;
}

void kr_append_free(kr_store *s, kr_append *a)
{
    if (a == NULL)
        return;
    kr_chunk_unref(s, a->chunk);
    a->chunk = NULL;
    if (s->n_free_appends >= KR_APPENDS_KEPT) {
        free(a);
        return;
    }
    TAILQ_INSERT_HEAD(&s->free_appends, a, link);
    s->n_free_appends++;
}

void kr_append_free_chunk(kr_store *s, kr_append *a)
{
    kr_chunk_unref(s, a->chunk);
    a->chunk = NULL;
}

void kr_stream_pools_free(kr_store *s)
{
    kr_chunk *c;
    while ((c = TAILQ_FIRST(&s->free_chunks)) != NULL) {
        TAILQ_REMOVE(&s->free_chunks, c, link);
        kr_chunk_free(c);
    }
    kr_append *a;
    while ((a = TAILQ_FIRST(&s->free_appends)) != NULL) {
        TAILQ_REMOVE(&s->free_appends, a, link);
        free(a);
    }
    kr_kblock *k;
    while ((k = TAILQ_FIRST(&s->free_kblocks)) != NULL) {
        TAILQ_REMOVE(&s->free_kblocks, k, link);
        free(k);
    }
    s->n_free_kblocks = 0;
    s->n_free_chunks = s->n_free_appends = s->n_free_big_chunks = 0;
}

kr_chunk *kr_stream_chunk(kr_store *s, kr_stream *st)
{
    if (st->open == NULL && (st->open = chunk_get(s)) != NULL)
        st->open->refs = 1; /* the open reference */
    return st->open;
}

/* Recycled blocks of kept copies the store holds on to (4 MiB). */
#define KR_KBLOCKS_KEPT 256

kr_kblock *kr_kblock_get(kr_store *s)
{
    kr_kblock *k = TAILQ_FIRST(&s->free_kblocks);
    if (k != NULL) {
        TAILQ_REMOVE(&s->free_kblocks, k, link);
        s->n_free_kblocks--;
    } else if ((k = malloc(sizeof *k)) == NULL) {
        return NULL;
    }
    k->len = 0;
    return k;
}

void kr_kblock_put(kr_store *s, kr_kblock *k)
{
    if (s->n_free_kblocks >= KR_KBLOCKS_KEPT) {
        free(k);
        return;
    }
    TAILQ_INSERT_HEAD(&s->free_kblocks, k, link);
    s->n_free_kblocks++;
}
