/*
 * store/publish.c - the PUBLISH path: a request encoded into its stored
 * form (segment.h) and queued for the writer; when the writer is done, the
 * batch folded into the active overlay, long polls woken, the producer
 * acknowledged - or the acknowledgement held while the overlays are over
 * their memory budget (back-pressure).
 */
#include "store/store_int.h"
#include "store/store_producers.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "proto/cbor.h"
#include "util/clock.h"
#include "util/log.h"

/*
 * ---- PUBLISH: encode, block, queue ----
 *
 * The loop encodes a PUBLISH into its stored form (segment.h) in the
 * store's scratch buffers, copies it into a block of its own, and queues
 * the append; the writer seals and writes it. Per-event facts (where each
 * event and key is) are recorded while encoding, so the completion can
 * fold the batch into the overlay without parsing it again.
 */

/* A batch being encoded: s->enc holds header room and the events, s->meta
 * one kr_ev_meta per event, extra the joined indefinite-length keys. */
typedef struct batch_enc {
    uint64_t base; /* offset of the first event */
    uint64_t count;
    uint64_t max_ts;
    kr_buf extra;
    kr_batch_hdr hdr; /* the producer fields (an idempotent PUBLISH's) */
} batch_enc;

/* Bytes `v` takes as a CBOR head. */
static size_t head_size(uint64_t v)
{
    return kr_cbor_uint_size(v);
}

/* Encode one event in delivered form ([offset, ts, key, value(,
 * headers)]) after the batch so far, and record its facts. */
static void encode_event(kr_store *s, batch_enc *be, const kr_event_in *ev, uint64_t off,
                         uint64_t ts)
{
    kr_buf *b = &s->enc;
    kr_ev_meta m = {.ev_pos = (uint32_t)b->len,
                    .ts = ts,
                    .has_key = ev->key.present,
                    .tombstone = ev->tombstone};
    kr_cbor_put_array(b, ev->has_headers ? 5 : 4);
    kr_cbor_put_uint(b, off);
    kr_cbor_put_uint(b, ts);
    if (ev->key.present) {
        size_t key_at = b->len;
        kr_cbor_put_raw(b, ev->key.raw.ptr, ev->key.raw.len);
        m.key_len = (uint32_t)ev->key.content.len;
        /* A definite key's content ends its raw encoding; an indefinite
         * one is joined after the batch. */
        if (ev->key.content.ptr + ev->key.content.len == ev->key.raw.ptr + ev->key.raw.len) {
            m.key_pos = (uint32_t)(key_at + ev->key.raw.len - ev->key.content.len);
        } else {
            m.key_pos = (uint32_t)be->extra.len;
            m.key_joined = 1;
            kr_buf_append(&be->extra, ev->key.content.ptr, ev->key.content.len);
        }
    } else {
        kr_cbor_put_null(b);
    }
    kr_cbor_put_raw(b, ev->value.ptr, ev->value.len);
    if (ev->has_headers)
        kr_cbor_put_raw(b, ev->headers.ptr, ev->headers.len);
    m.ev_len = (uint32_t)(b->len - m.ev_pos);
    kr_buf_append(&s->meta, &m, sizeof m);
}

/*
 * Encode every event of the request, refusing the whole request when one
 * is too large to be delivered (INVALID_ARGUMENT naming it).
 */
static krappy_err encode_batch(kr_store *s, const kr_request *req, kr_buf *scratch, batch_enc *be,
                               uint64_t ts_now, char *msg, size_t msglen, uint64_t *bad_index)
{
    const uint64_t limit = (uint64_t)s->o.max_frame - KRAPPY_REPLY_SLACK_BYTES;
    uint8_t zero[KR_BATCH_HEADER_MAX] = {0};
    kr_buf_reset(&s->enc);
    kr_buf_reset(&s->meta);
    kr_buf_append(&s->enc, zero, kr_batch_header_size(&be->hdr)); /* the header goes there */

    kr_events_iter it;
    kr_event_in ev;
    int more;
    kr_events_iter_init(&it, req, scratch);
    while ((more = kr_events_iter_next(&it, &ev)) == 1) {
        uint64_t i = be->count, off = be->base + i, ts = ev.has_ts ? ev.ts : ts_now;
        size_t key_raw_len = ev.key.present ? ev.key.raw.len : 1;
        uint64_t size = 1 + head_size(off) + head_size(ts) + key_raw_len + ev.value.len +
                        (ev.has_headers ? ev.headers.len : 0);
        if (size > limit) {
            snprintf(msg, msglen,
                     "event %llu is %llu bytes as delivered, over the limit of %llu (max_frame "
                     "- 1024); make it smaller",
                     (unsigned long long)i, (unsigned long long)size, (unsigned long long)limit);
            *bad_index = i;
            return KRAPPY_E_INVALID_ARGUMENT;
        }
        encode_event(s, be, &ev, off, ts);
        if (ts > be->max_ts)
            be->max_ts = ts;
        be->count++;
    }
    if (s->enc.len - kr_batch_header_size(&be->hdr) > KR_BATCH_MAX_PAYLOAD) {
        /* Only under a --max-frame near its 1 GiB limit. */
        snprintf(msg, msglen,
                 "the %llu events take more than %u bytes as stored, the most one batch holds; "
                 "send them in smaller batches",
                 (unsigned long long)be->count, KR_BATCH_MAX_PAYLOAD);
        return KRAPPY_E_INVALID_ARGUMENT;
    }
    if (more < 0 || be->count != req->u.publish.count || s->enc.failed || s->meta.failed ||
        be->extra.failed) {
        snprintf(msg, msglen, "out of memory encoding the batch of %llu events",
                 (unsigned long long)req->u.publish.count);
        return KRAPPY_E_STORAGE;
    }
    return KRAPPY_OK;
}

/*
 * Copy the encoded batch into a block of its own (joined keys after it)
 * with its header put, and the facts into an allocation of their own,
 * freed once the batch is folded: the block outlives the fold (the writer
 * keeps it until the stream is synced) and should hold only what it needs.
 */
static int take_batch(kr_store *s, const batch_enc *be, kr_block **blk_out, kr_ev_meta **m_out)
{
    size_t batch_len = s->enc.len;
    kr_block *blk = kr_block_new(batch_len + be->extra.len);
    kr_ev_meta *m = malloc(s->meta.len ? s->meta.len : 1);
    if (blk == NULL || m == NULL) {
        kr_block_unref(blk);
        free(m);
        return -1;
    }
    memcpy(blk->data, s->enc.data, batch_len);
    if (be->extra.len > 0)
        memcpy(blk->data + batch_len, be->extra.data, be->extra.len);
    blk->len = batch_len;
    memcpy(m, s->meta.data, s->meta.len);
    for (uint64_t k = 0; k < be->count; k++)
        if (m[k].key_joined)
            m[k].key_pos += (uint32_t)batch_len;
    /* The header, but for its CRC: the writer seals the batch. */
    kr_batch_hdr h = be->hdr;
    h.base = be->base;
    h.count = (uint32_t)be->count;
    h.max_ts = be->max_ts;
    h.len = (uint32_t)(batch_len - kr_batch_header_size(&h));
    kr_batch_header_put(blk->data, &h);
    *blk_out = blk;
    *m_out = m;
    return 0;
}

int kr_topic_reserve_segment(kr_topic *t)
{
    size_t need = t->n_segs + t->appends_in_flight + 1;
    if (need <= t->cap_segs)
        return 0;
    size_t cap = t->cap_segs ? t->cap_segs : 8;
    while (cap < need)
        cap *= 2;
    kr_segment **n = realloc(t->segs, cap * sizeof *n);
    if (n == NULL)
        return -1;
    t->segs = n;
    t->cap_segs = cap;
    return 0;
}

/* kr_store_publish and kr_store_publish_applied: `ts_now` stamps events
 * without a ts, `raft_index` goes into the batch header (0: none). */
static krappy_err publish(kr_store *s, kr_topic *t, const kr_request *req, kr_buf *scratch,
                          bool sync, kr_idem *idem, uint64_t ts_now, uint64_t raft_index,
                          kr_store_done done, void *arg, char *msg, size_t msglen,
                          uint64_t *bad_index)
{
    uint64_t count = req->u.publish.count;
    if (count > s->o.max_publish_events) {
        snprintf(msg, msglen,
                 "a PUBLISH may carry at most %u events (this one has %llu); send smaller "
                 "batches",
                 s->o.max_publish_events, (unsigned long long)count);
        return KRAPPY_E_INVALID_ARGUMENT;
    }
    kr_producer *prod = NULL;
    if (idem != NULL) {
        krappy_err v = kr_store_idem_check(s, t, idem, count, sync, done, arg, &prod, msg, msglen);
        if (v != KRAPPY_OK || prod == NULL)
            return v; /* refused, or a repeat (answered) */
    }
    batch_enc be = {.base = t->assigned};
    if (prod != NULL)
        be.hdr = (kr_batch_hdr){.producer = prod->pid, .epoch = idem->epoch, .seq = idem->seq};
    be.hdr.raft_index = raft_index;
    kr_buf_init(&be.extra, (size_t)s->o.max_frame);
    kr_block *blk = NULL;
    kr_ev_meta *m = NULL;
    kr_job *j = NULL;
    krappy_err rc = encode_batch(s, req, scratch, &be, ts_now, msg, msglen, bad_index);
    if (rc != KRAPPY_OK)
        goto out;
    if (kr_topic_reserve_segment(t) < 0 || take_batch(s, &be, &blk, &m) < 0 ||
        (j = kr_job_new(KR_JOB_APPEND, t)) == NULL) {
        kr_block_unref(blk);
        free(m);
        snprintf(msg, msglen, "out of memory queueing the batch of %llu events",
                 (unsigned long long)count);
        rc = KRAPPY_E_STORAGE;
        goto out;
    }
    j->append.block = blk;
    j->append.base = be.base;
    j->append.count = (uint32_t)be.count;
    j->append.max_ts = be.max_ts;
    j->append.sync = sync;
    j->append.segment_bytes = t->cfg.v[KR_TC_SEGMENT_BYTES];
    j->append.meta = m;
    j->done = done;
    j->arg = arg;
    t->assigned += be.count;
    t->appends_in_flight++;
    if (raft_index > t->raft_index)
        t->raft_index = raft_index;
    if (prod != NULL)
        kr_store_idem_accepted(prod, j, idem->seq, be.base, (uint32_t)be.count, sync);
    kr_writer_submit(s->writer, j);
out:
    kr_buf_free(&be.extra);
    return rc;
}

krappy_err kr_store_publish(kr_store *s, kr_topic *t, const kr_request *req, kr_buf *scratch,
                            bool sync, kr_idem *idem, kr_store_done done, void *arg, char *msg,
                            size_t msglen, uint64_t *bad_index)
{
    return publish(s, t, req, scratch, sync, idem, kr_wall_ms(), 0, done, arg, msg, msglen,
                   bad_index);
}

krappy_err kr_store_publish_applied(kr_store *s, kr_topic *t, const kr_request *req,
                                    kr_buf *scratch, kr_idem *idem, uint64_t ts,
                                    uint64_t raft_index, kr_store_done done, void *arg, char *msg,
                                    size_t msglen, uint64_t *bad_index)
{
    return publish(s, t, req, scratch, false, idem, ts, raft_index, done, arg, msg, msglen,
                   bad_index);
}

/* ---- completion ---- */

static int fold_meta(kr_topic *t, kr_block *b, const kr_ev_meta *m, uint32_t n, uint64_t base)
{
    for (uint32_t i = 0; i < n; i++) {
        if (!m[i].has_key)
            continue;
        kr_ov_entry e = {.key = b->data + m[i].key_pos,
                         .key_len = m[i].key_len,
                         .event = b->data + m[i].ev_pos,
                         .ev_len = m[i].ev_len,
                         .offset = base + i,
                         .ts = m[i].ts,
                         .tombstone = m[i].tombstone};
        if (kr_overlay_put(t->active, &e) < 0)
            return -1;
    }
    return 0;
}

/*
 * The overlays' memory budget, --overlay-bytes, is shared by the active
 * overlays (filling) and the frozen ones (being checkpointed): each side
 * may hold half of it.
 */
size_t kr_store_fill_limit(const kr_store *s)
{
    return (size_t)(s->o.overlay_bytes / 2);
}

/*
 * Back-pressure. When the active overlays pass fill_limit a checkpoint
 * freezes them - unless one is running already, and then the
 * acknowledgements of further appends wait here until a checkpoint has made
 * room (or failed: a view that keeps failing slows writers down but does
 * not hang them). The events are stored and visible meanwhile; only the
 * replies wait, so producers - which keep a bounded number of batches in
 * flight - pause, and the overlays stay within the budget plus what is in
 * flight. Without this, a checkpoint slower than the ingest let the active
 * overlay grow without bound (1.2 GB for 10M events over 1M keys).
 */
static void ack_append(kr_job *j)
{
    kr_store_result res = {.err = KRAPPY_OK, .first = j->append.base, .count = j->append.count};
    if (j->done != NULL)
        j->done(j->arg, &res);
}

void kr_store_release_held(kr_store *s, bool all)
{
    kr_job *j;
    while ((j = TAILQ_FIRST(&s->held)) != NULL &&
           (all || s->active_bytes <= kr_store_fill_limit(s))) {
        TAILQ_REMOVE(&s->held, j, link);
        ack_append(j);
        kr_job_free(j);
    }
}

bool kr_store_append_done(kr_store *s, kr_job *j)
{
    kr_topic *t = j->t;
    kr_job_append *a = &j->append;
    t->appends_in_flight--;
    if (a->new_seg != NULL) {
        /* The writer appends there from now on, even when this batch did
         * not land. Cannot fail: kr_topic_reserve_segment made room. */
        (void)kr_topic_add_segment(t, a->new_seg);
        a->new_seg = NULL;
        t->bytes += KR_SEG_HEADER_BYTES;
    }
    if (j->err != KRAPPY_OK) {
        /* Offsets assigned after this one were assigned in vain. */
        t->assigned = t->next;
        kr_store_idem_completed(s, j); /* its producer expects these numbers again */
        kr_store_result res = {.err = j->err};
        snprintf(res.msg, sizeof res.msg, "%s", kr_job_msg(j));
        if (j->done != NULL)
            j->done(j->arg, &res);
        return false;
    }
    kr_segment *seg = t->segs[t->n_segs - 1];
    if (seg->next == seg->base)
        seg->first_write_ms = kr_wall_ms(); /* segment_ms counts from here */
    seg->size = a->pos + a->block->len;
    seg->next = a->base + a->count;
    if (a->max_ts > seg->max_ts)
        seg->max_ts = a->max_ts;
    kr_index_add(&seg->idx, a->base, a->pos);
    t->next = a->base + a->count;
    t->bytes += a->block->len;
    t->events_in += a->count;
    kr_counter_add(s->m_events_in, a->count);
    kr_counter_add(s->m_bytes_in, a->block->len);
    kr_counter_add(t->m_events_in, a->count);
    kr_counter_add(t->m_bytes_in, a->block->len);
    size_t before = kr_overlay_bytes(t->active);
    if (fold_meta(t, a->block, a->meta, a->count, a->base) < 0)
        kr_log(KR_LOG_ERROR,
               "out of memory updating the latest-value view; GET and SCAN may miss these "
               "events' keys until a restart replays them",
               KR_LOG_STR("topic", t->name), KR_LOG_U64("first", a->base),
               KR_LOG_U64("next", a->base + a->count));
    s->active_bytes += kr_overlay_bytes(t->active) - before; /* overlays only grow */
    /* The overlay has its copies: the batch and its facts can go now (the
     * writer keeps its own reference until the stream is synced). */
    free(a->meta);
    a->meta = NULL;
    kr_block_unref(a->block);
    a->block = NULL;
    kr_store_wake(s, t);
    /* Visible now: its producer's state records it, and repeats of it
     * waiting are answered. */
    kr_store_idem_completed(s, j);
    if (s->active_bytes > kr_store_fill_limit(s)) {
        kr_store_checkpoint(s); /* freezes them, or runs next when one is running */
        if (s->active_bytes > kr_store_fill_limit(s) && s->ckpt_running && !s->closing) {
            TAILQ_INSERT_TAIL(&s->held, j, link);
            return true;
        }
    }
    ack_append(j);
    return false;
}
