/*
 * store/store_seed.c - a skipped stream's view takes its peers' latest
 * values of the keys below the skip (see kr_store_seed_view in store.h).
 */
#include "store/overlay.h"
#include "store/store_int.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "proto/cbor.h"
#include "util/log.h"

uint64_t kr_store_seed_pending(const kr_topic *t)
{
    return t->seed_to;
}

/* Keep the overlay entries at or past `first` (the events after the skip). */
struct keep_from {
    kr_overlay *to;
    uint64_t first;
    bool failed;
};

static int keep_entry(void *arg, const kr_ov_entry *e)
{
    struct keep_from *k = arg;
    if (e->offset >= k->first && kr_overlay_put(k->to, e) < 0) {
        k->failed = true;
        return 1;
    }
    return 0;
}

/*
 * The seed's first page here: every row of t's view goes (each lies below
 * the marker, which lies below `first`: stale or superseded once the peers'
 * rows come), and so do the overlay's entries below `first`.
 * @return KRAPPY_OK, or KRAPPY_E_STORAGE (msg).
 */
static krappy_err begin(kr_store *s, kr_topic *t, uint64_t first, char *msg, size_t msglen)
{
    struct keep_from k = {.to = kr_overlay_new(), .first = first};
    if (k.to != NULL)
        kr_overlay_foreach(t->active, keep_entry, &k);
    kr_view_batch *b = kr_view_batch_new();
    if (k.to == NULL || k.failed || b == NULL) {
        kr_overlay_free(k.to);
        kr_view_batch_free(b);
        snprintf(msg, msglen, "out of memory replacing the latest values of topic %s", t->name);
        return KRAPPY_E_STORAGE;
    }
    kr_view_batch_drop_keys(b, t->name, t->name_len);
    char err[256];
    int rc = kr_view_write(s->view, b, err, sizeof err);
    kr_view_batch_free(b);
    if (rc < 0) {
        kr_overlay_free(k.to);
        kr_store_view_failed(s);
        snprintf(msg, msglen, "the latest values of topic %s could not be dropped: %s", t->name,
                 err);
        return KRAPPY_E_STORAGE;
    }
    kr_overlay_free(t->active);
    t->active = k.to;
    kr_store_recount_active(s);
    kr_store_readcache_drop(s, t);
    t->keys = 0;
    t->seed_keys = 0;
    t->seed_begun = true;
    return KRAPPY_OK;
}

/*
 * Put the n delivered events of [p, p + len) into b, counting in *added
 * the keys the view does not hold yet (a page's keys are distinct; a key
 * repeated in a later page counts once). @return 0, or -1 with msg saying
 * which event is wrong.
 */
static int put_events(kr_store *s, kr_topic *t, uint64_t first, const uint8_t *p, size_t len,
                      size_t n, kr_view_batch *b, uint64_t *added, char *msg, size_t msglen)
{
    uint8_t key[KRAPPY_MAX_KEY_BYTES];
    size_t pos = 0;
    for (size_t i = 0; i < n; i++) {
        kr_cbor_item ev;
        kr_event_view v;
        if (kr_cbor_read(p + pos, len - pos, &ev) < 0 || kr_event_view_read(&ev, &v) < 0) {
            snprintf(msg, msglen, "latest value %zu of the seed is not a delivered event", i);
            return -1;
        }
        if (v.key.kind == KR_CBOR_NULL || v.key.str_len > sizeof key ||
            v.value.kind == KR_CBOR_NULL || v.offset >= first) {
            snprintf(msg, msglen,
                     "latest value %zu of the seed (offset %llu) lacks a key or a value, or lies "
                     "at or past the skip's offset %llu",
                     i, (unsigned long long)v.offset, (unsigned long long)first);
            return -1;
        }
        size_t klen = kr_cbor_str_copy(&v.key, key, sizeof key);
        int live = kr_view_exists(s->view, t->name, t->name_len, key, klen);
        if (live < 0) {
            snprintf(msg, msglen, "the view of topic %s could not be read", t->name);
            return -1;
        }
        if (live == 0)
            (*added)++;
        kr_view_batch_put(b, t->name, t->name_len, key, klen, p + pos, ev.raw_len);
        pos += ev.raw_len;
    }
    if (pos != len) {
        snprintf(msg, msglen, "the seed's page holds more than its %zu latest values", n);
        return -1;
    }
    return 0;
}

krappy_err kr_store_seed_view(kr_store *s, kr_topic *t, uint64_t first, const uint8_t *events,
                              size_t len, size_t n, bool last, char *msg, size_t msglen)
{
    if (t->seed_to == 0 || t->seed_to != first) {
        snprintf(msg, msglen, "topic %s awaits no latest values below offset %llu", t->name,
                 (unsigned long long)first);
        return KRAPPY_E_INVALID_ARGUMENT;
    }
    if (t->frozen != NULL) {
        snprintf(msg, msglen, "topic %s is being checkpointed; try again", t->name);
        return KRAPPY_E_BUSY;
    }
    if (!t->seed_begun) {
        krappy_err rc = begin(s, t, first, msg, msglen);
        if (rc != KRAPPY_OK)
            return rc;
    }
    kr_view_batch *b = kr_view_batch_new();
    uint64_t added = 0;
    if (b == NULL) {
        snprintf(msg, msglen, "out of memory replacing the latest values of topic %s", t->name);
        return KRAPPY_E_STORAGE;
    }
    if (put_events(s, t, first, events, len, n, b, &added, msg, msglen) < 0) {
        kr_view_batch_free(b);
        return KRAPPY_E_INVALID_ARGUMENT;
    }
    if (last)
        kr_view_batch_marker(b, t->name, t->name_len, first, t->seed_keys + added);
    char err[256];
    int rc = kr_view_write(s->view, b, err, sizeof err);
    kr_view_batch_free(b);
    if (rc < 0) {
        /* What of it is in the view is unknown: the seed starts over. */
        t->seed_begun = false;
        kr_store_view_failed(s);
        snprintf(msg, msglen, "the latest values of topic %s could not be written: %s", t->name,
                 err);
        return KRAPPY_E_STORAGE;
    }
    t->seed_keys += added;
    if (!last)
        return KRAPPY_OK;
    kr_log(KR_LOG_INFO, "the view took the latest values below a skip from the peers",
           KR_LOG_STR("topic", t->name), KR_LOG_U64("first", first),
           KR_LOG_U64("keys", t->seed_keys));
    t->marker = first;
    t->keys = t->seed_keys;
    t->seed_to = 0;
    t->seed_begun = false;
    t->seed_keys = 0;
    kr_store_readcache_drop(s, t);
    kr_store_retention(s, t);
    kr_store_scan_checkpointed(s, true, "");
    kr_store_checkpoint(s);
    return KRAPPY_OK;
}
