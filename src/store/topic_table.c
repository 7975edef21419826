/*
 * store/topic_table.c - the store's table of topics, sorted by name (so
 * TOPICS lists in order): a topic made, inserted, found, removed and
 * freed; and the list of a topic's segments.
 */
#include "store/compact.h"
#include "store/store_int.h"
#include "store/store_producers.h"
#include "store/topic_config.h"
#include "util/grow.h"

#include <fcntl.h>
#include <stdlib.h>
#include <string.h>

/* ---- topics table (sorted by name, so TOPICS lists in order) ---- */

static const char *topic_name_at(const void *table, size_t i, size_t *len)
{
    const kr_topic *t = ((const kr_store *)table)->topics[i];
    *len = t->name_len;
    return t->name;
}

size_t kr_store_topic_slot(const kr_store *s, const uint8_t *name, size_t len, bool *found)
{
    return kr_name_slot(s, s->n_topics, topic_name_at, name, len, found);
}

kr_topic *kr_store_topic_new(kr_store *s, const uint8_t *name, size_t len)
{
    kr_topic *t = calloc(1, sizeof *t);
    if (t == NULL)
        return NULL;
    t->store = s;
    memcpy(t->name, name, len);
    t->name[len] = '\0';
    t->name_len = len;
    t->dir = kr_store_path(s->topics_dir, t->name);
    if (t->dir == NULL) {
        free(t);
        return NULL;
    }
    TAILQ_INIT(&t->waiters);
    kr_retry_init(&t->roll_retry, s->o.checkpoint_ms, KR_STORE_RETRY_CAP_MS); /* the tick's */
    char labels[KRAPPY_MAX_NAME_BYTES + 16];
    snprintf(labels, sizeof labels, "topic=\"%s\"", t->name); /* [A-Za-z0-9._-] */
    t->m_events_in = kr_counter(s->metrics, "krappy_topic_events_in_total", labels,
                                "Events stored in the topic.");
    t->m_bytes_in = kr_counter(s->metrics, "krappy_topic_bytes_in_total", labels,
                               "Bytes stored in the topic's stream (batches with headers).");
    t->m_events_out = kr_counter(s->metrics, "krappy_topic_events_out_total", labels,
                                 "Events sent by FETCH and POLL.");
    t->m_bytes_out = kr_counter(s->metrics, "krappy_topic_bytes_out_total", labels,
                                "Event bytes sent by FETCH and POLL.");
    t->m_stream_bytes = kr_gauge(s->metrics, "krappy_topic_stream_bytes", labels,
                                 "Size of the topic's segment files.");
    t->m_segments =
        kr_gauge(s->metrics, "krappy_topic_segments", labels, "Segment files of the topic.");
    kr_topic_config_refresh(s, t);
    t->active = kr_overlay_new();
    if (t->active == NULL || kr_store_producers_topic_new(s, t) < 0) {
        kr_overlay_free(t->active);
        free(t->dir);
        free(t);
        return NULL;
    }
    return t;
}

int kr_store_topic_insert(kr_store *s, kr_topic *t)
{
    bool found;
    size_t at = kr_store_topic_slot(s, (const uint8_t *)t->name, t->name_len, &found);
    if (found)
        return -1;
    kr_topic **n = kr_grow(s->topics, s->n_topics, &s->cap_topics, sizeof *n, 16);
    if (n == NULL)
        return -1;
    s->topics = n;
    memmove(s->topics + at + 1, s->topics + at, (s->n_topics - at) * sizeof *s->topics);
    s->topics[at] = t;
    s->n_topics++;
    return 0;
}

void kr_store_topic_remove(kr_store *s, kr_topic *t)
{
    bool found;
    size_t at = kr_store_topic_slot(s, (const uint8_t *)t->name, t->name_len, &found);
    if (!found || s->topics[at] != t)
        return;
    memmove(s->topics + at, s->topics + at + 1, (s->n_topics - at - 1) * sizeof *s->topics);
    s->n_topics--;
}

void kr_store_topic_free(kr_topic *t)
{
    if (t == NULL)
        return;
    kr_store_groups_free(t);
    kr_stream_free(t->stream); /* its pins on the segment files first */
    for (size_t i = 0; i < t->n_segs; i++)
        kr_segment_free(t->segs[i]);
    free(t->segs);
    kr_overlay_free(t->active);
    kr_overlay_free(t->frozen);
    kr_overlay_free(t->readcache);
    kr_compact_topic_free(t);
    kr_store_producers_topic_free(t);
    free(t->dir);
    free(t);
}

kr_topic *kr_store_topic(kr_store *s, const uint8_t *name, size_t len)
{
    bool found;
    size_t at = kr_store_topic_slot(s, name, len, &found);
    return found && !s->topics[at]->failed ? s->topics[at] : NULL;
}

size_t kr_store_topics(kr_store *s, kr_topic ***out)
{
    *out = s->topics;
    return s->n_topics;
}

uint64_t kr_topic_bytes(const kr_topic *t)
{
    return t->bytes;
}

uint64_t kr_topic_keys(const kr_topic *t)
{
    return t->keys;
}

kr_segment *kr_segment_new(kr_fdcache *files, const char *dir, uint64_t base, uint32_t start)
{
    static uint64_t last_id; /* segments are made on three threads */
    kr_segment *seg = calloc(1, sizeof *seg);
    if (seg == NULL)
        return NULL;
    char name[KR_SEG_NAME_BYTES];
    kr_seg_name(name, base);
    seg->file = kr_fdfile_new(files, dir, name, O_RDONLY);
    if (seg->file == NULL) {
        free(seg);
        return NULL;
    }
    seg->id = __atomic_add_fetch(&last_id, 1, __ATOMIC_RELAXED);
    seg->base = seg->next = base;
    seg->size = seg->start = start;
    return seg;
}

int kr_topic_reserve_segment(kr_topic *t)
{
    kr_segment **n = kr_grow(t->segs, t->n_segs, &t->cap_segs, sizeof *n, 8);
    if (n == NULL)
        return -1;
    t->segs = n;
    return 0;
}

int kr_topic_add_segment(kr_topic *t, kr_segment *seg)
{
    if (kr_topic_reserve_segment(t) < 0)
        return -1;
    t->segs[t->n_segs++] = seg;
    return 0;
}
