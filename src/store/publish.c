/*
 * store/publish.c - the PUBLISH path: a request (or the kr_store_event
 * views of kr_store_publish_events: the Kafka listener's records, stored as
 * the same PUBLISH would be) encoded into its stored
 * form (segment.h) in the topic's open chunk and queued (append.c writes
 * it this loop turn); once it counts, the batch folded into the active
 * overlay and the producer acknowledged - or the acknowledgement held while
 * the overlays are over their memory budget (back-pressure).
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
 * ---- PUBLISH: encode, queue ----
 *
 * The loop encodes a PUBLISH into its stored form (segment.h) straight into
 * the topic's open chunk - the bytes the loop writes to the segment at the
 * end of this turn (append.h) - with no copy in between. Per-event facts
 * (where each event and key is) are recorded while encoding, so the batch is
 * folded into the overlay without parsing it again.
 */

/* A batch being encoded into a chunk. */
typedef struct batch_enc {
    kr_chunk *c;
    size_t at;     /* where its header is in c->data */
    uint64_t base; /* offset of the first event */
    uint64_t count;
    uint64_t max_ts;
    kr_batch_hdr hdr; /* the producer fields (an idempotent PUBLISH's) */
} batch_enc;

/* Bytes `v` takes as a CBOR head. */
static size_t head_size(uint64_t v)
{
    return kr_cbor_uint_size(v);
}

/* Room for n more bytes at the end of b (the bytes themselves not yet
 * counted), or NULL when b refuses them (b->failed, which encode_batch
 * checks). The common case - room is there - stays in the caller. */
static inline uint8_t *room(kr_buf *b, size_t n)
{
    if ((b->cap - b->len < n || b->failed) && kr_buf_reserve(b, n) < 0)
        return NULL;
    return b->data + b->len;
}

/* Start one event of `size` bytes as delivered ([offset, ts, key, value(,
 * headers)]) after the batch so far: its whole room reserved at once and
 * written in place, as its parts are already encoded (or plain bytes),
 * rather than head by head through the buffer. m->ev_pos is set.
 * @return where the key goes, or NULL (no memory: the event is skipped). */
static uint8_t *event_begin(batch_enc *be, bool headers, uint64_t off, uint64_t ts, uint64_t size,
                            kr_ev_meta *m)
{
    kr_buf *b = &be->c->data;
    uint8_t *w = room(b, (size_t)size);
    if (w == NULL)
        return NULL;
    m->ev_pos = (uint32_t)b->len;
    *w++ = headers ? 0x85 : 0x84; /* an array of 5 or 4 */
    w += kr_cbor_head(w, KR_CBOR_MAJOR_UINT, off);
    w += kr_cbor_head(w, KR_CBOR_MAJOR_UINT, ts);
    return w;
}

/* End the event event_begin started at its end `w`, and record its facts
 * (the event's length is set here) for the fold. */
static void event_end(batch_enc *be, uint8_t *w, kr_ev_meta *m)
{
    kr_buf *b = &be->c->data;
    b->len = (size_t)(w - b->data);
    m->ev_len = (uint32_t)(b->len - m->ev_pos);
    uint8_t *at = room(&be->c->meta, sizeof *m);
    if (at == NULL)
        return; /* meta.failed: encode_batch refuses the batch */
    memcpy(at, m, sizeof *m);
    be->c->meta.len += sizeof *m;
}

/* Copy n bytes to *w and step past them. */
static void put(uint8_t **w, const void *p, size_t n)
{
    memcpy(*w, p, n);
    *w += n;
}

/* Encode one event of a PUBLISH, `size` bytes as delivered, after the
 * batch so far, and record its facts. */
static void encode_event(batch_enc *be, const kr_event_in *ev, uint64_t off, uint64_t ts,
                         uint64_t size)
{
    kr_ev_meta m = {.ts = ts, .has_key = ev->key.present, .tombstone = ev->tombstone};
    uint8_t *w = event_begin(be, ev->has_headers, off, ts, size, &m);
    if (w == NULL)
        return;
    if (ev->key.present) {
        put(&w, ev->key.raw.ptr, ev->key.raw.len);
        m.key_len = (uint32_t)ev->key.content.len;
        /* A definite key's content ends its raw encoding; an indefinite
         * one is joined in the chunk's extra area. */
        if (ev->key.content.ptr + ev->key.content.len == ev->key.raw.ptr + ev->key.raw.len) {
            m.key_pos = (uint32_t)(w - ev->key.content.len - be->c->data.data);
        } else {
            m.key_pos = (uint32_t)be->c->extra.len;
            m.key_joined = 1;
            kr_buf_append(&be->c->extra, ev->key.content.ptr, ev->key.content.len);
        }
    } else {
        *w++ = 0xf6; /* null */
    }
    put(&w, ev->value.ptr, ev->value.len);
    if (ev->has_headers)
        put(&w, ev->headers.ptr, ev->headers.len);
    event_end(be, w, &m);
}

/* Write the content bytes p[0..n) as a CBOR byte string at *w, or null
 * for NULL. @return where its content starts. */
static uint8_t *write_bytes(uint8_t **w, const uint8_t *p, uint32_t n)
{
    uint8_t *q = *w;
    if (p == NULL) {
        *q = 0xf6;
        *w = q + 1;
        return q + 1;
    }
    q += kr_cbor_head(q, KR_CBOR_MAJOR_BYTES, n);
    if (n > 0)
        memcpy(q, p, n);
    *w = q + n;
    return q;
}

/* Encode one kr_store_event as encode_event encodes the PUBLISH event with
 * the same parts (key and value as CBOR byte strings), `size` bytes long. */
static void encode_store_event(batch_enc *be, const kr_store_event *ev, uint64_t off, uint64_t ts,
                               uint64_t size)
{
    kr_ev_meta m = {.ts = ts, .has_key = ev->key != NULL, .tombstone = ev->value == NULL};
    uint8_t *w = event_begin(be, ev->headers != NULL, off, ts, size, &m);
    if (w == NULL)
        return;
    uint8_t *key = write_bytes(&w, ev->key, ev->key_len);
    if (ev->key != NULL) {
        m.key_len = ev->key_len;
        m.key_pos = (uint32_t)(key - be->c->data.data);
    }
    write_bytes(&w, ev->value, ev->value_len);
    if (ev->headers != NULL)
        put(&w, ev->headers, ev->headers_len);
    event_end(be, w, &m);
}

/* Bytes a CBOR byte string of n bytes, or null (NULL), takes. */
static uint64_t bytes_size(const uint8_t *p, uint32_t n)
{
    return p != NULL ? head_size(n) + n : 1;
}

/* The events of one batch: a decoded PUBLISH's, or a kr_store_event
 * array's. */
typedef struct ev_source {
    const kr_request *req; /* NULL: evs */
    kr_buf *scratch;       /* req's, for kr_events_iter */
    const kr_store_event *evs;
    uint64_t count;
} ev_source;

/* Room in the chunk for all of a kr_store_event batch at once (at most the
 * bytes it takes with 9-byte offset and ts heads), so that a large batch
 * does not grow the chunk, copying what it holds, step by step while it is
 * encoded. Only a hint: encode_batch still reserves each event's room (and
 * refuses a batch too large for it). */
static void reserve_events(batch_enc *be, const ev_source *src)
{
    uint64_t most = 0;
    for (uint64_t i = 0; i < src->count; i++) {
        const kr_store_event *v = &src->evs[i];
        most += 1 + 9 + 9 + bytes_size(v->key, v->key_len) + bytes_size(v->value, v->value_len) +
                v->headers_len;
    }
    if (most <= KR_BATCH_MAX_PAYLOAD && be->c->data.len + most <= be->c->data.max)
        (void)kr_buf_reserve(&be->c->data, (size_t)most);
    if (src->count <= KR_BATCH_MAX_PAYLOAD / sizeof(kr_ev_meta))
        (void)kr_buf_reserve(&be->c->meta, (size_t)src->count * sizeof(kr_ev_meta));
}

/*
 * The one place a batch is encoded: its header (segment.h) and every event
 * of the source after it in the chunk, the CRC sealed at the end. The
 * whole request is refused when one event is too large to be delivered
 * (INVALID_ARGUMENT naming it).
 */
static krappy_err encode_batch(kr_store *s, batch_enc *be, const ev_source *src, uint64_t ts_now,
                               char *msg, size_t msglen, uint64_t *bad_index)
{
    const uint64_t limit = (uint64_t)s->o.max_frame - KRAPPY_REPLY_SLACK_BYTES;
    kr_buf *b = &be->c->data;
    uint32_t hlen = kr_batch_header_size(&be->hdr);
    be->at = b->len;
    if (room(b, hlen) == NULL)
        goto oom;
    b->len += hlen; /* the header goes there, written whole below */

    kr_events_iter it;
    kr_event_in ev;
    if (src->req != NULL)
        kr_events_iter_init(&it, src->req, src->scratch);
    else
        reserve_events(be, src);
    for (uint64_t i = 0; i < src->count; i++) {
        const kr_store_event *v = src->req == NULL ? &src->evs[i] : NULL;
        bool has_ts;
        uint64_t ev_ts, body; /* body: key, value and headers as delivered */
        if (v != NULL) {
            if (v->key != NULL && v->key_len > KRAPPY_MAX_KEY_BYTES) {
                snprintf(msg, msglen, "event %llu has a key of %u bytes, over krappy's %u",
                         (unsigned long long)i, v->key_len, KRAPPY_MAX_KEY_BYTES);
                *bad_index = i;
                return KRAPPY_E_INVALID_ARGUMENT;
            }
            has_ts = v->has_ts;
            ev_ts = v->ts;
            body = bytes_size(v->key, v->key_len) + bytes_size(v->value, v->value_len) +
                   v->headers_len;
        } else {
            if (kr_events_iter_next(&it, &ev) != 1)
                break;
            has_ts = ev.has_ts;
            ev_ts = ev.ts;
            body = (ev.key.present ? ev.key.raw.len : 1) + ev.value.len +
                   (ev.has_headers ? ev.headers.len : 0);
        }
        uint64_t off = be->base + i, ts = has_ts ? ev_ts : ts_now;
        uint64_t size = 1 + head_size(off) + head_size(ts) + body;
        if (size > limit) {
            snprintf(msg, msglen,
                     "event %llu is %llu bytes as delivered, over the limit of %llu (max_frame "
                     "- 1024); make it smaller",
                     (unsigned long long)i, (unsigned long long)size, (unsigned long long)limit);
            *bad_index = i;
            return KRAPPY_E_INVALID_ARGUMENT;
        }
        if (v != NULL)
            encode_store_event(be, v, off, ts, size);
        else
            encode_event(be, &ev, off, ts, size);
        if (ts > be->max_ts)
            be->max_ts = ts;
        be->count++;
    }
    if (b->len - be->at - hlen > KR_BATCH_MAX_PAYLOAD) {
        /* Only under a --max-frame near its 1 GiB limit. */
        snprintf(msg, msglen,
                 "the %llu events take more than %u bytes as stored, the most one batch holds; "
                 "send them in smaller batches",
                 (unsigned long long)be->count, KR_BATCH_MAX_PAYLOAD);
        return KRAPPY_E_INVALID_ARGUMENT;
    }
    if (be->count != src->count || b->failed || be->c->meta.failed || be->c->extra.failed)
        goto oom;
    kr_batch_hdr h = be->hdr;
    h.base = be->base;
    h.count = (uint32_t)be->count;
    h.max_ts = be->max_ts;
    h.len = (uint32_t)(b->len - be->at - hlen);
    uint8_t *batch = b->data + be->at;
    kr_batch_header_put(batch, &h);
    kr_batch_seal(batch);
    return KRAPPY_OK;
oom:
    snprintf(msg, msglen, "out of memory encoding the batch of %llu events",
             (unsigned long long)src->count);
    return KRAPPY_E_STORAGE;
}

/* Take a refused batch back out of the chunk (its buffers as they were). */
static void chunk_rewind(kr_chunk *c, size_t data, size_t meta, size_t extra)
{
    c->data.len = data;
    c->meta.len = meta;
    c->extra.len = extra;
    c->data.failed = c->meta.failed = c->extra.failed = false;
}

/* kr_store_publish and kr_store_publish_applied: `ts_now` stamps events
 * without a ts, `raft_index` goes into the batch header (0: none). */
static krappy_err publish(kr_store *s, kr_topic *t, const ev_source *src, bool sync, kr_idem *idem,
                          uint64_t ts_now, uint64_t raft_index, kr_store_done done, void *arg,
                          char *msg, size_t msglen, uint64_t *bad_index)
{
    uint64_t count = src->count;
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
    kr_chunk *c = kr_stream_chunk(s, t->stream);
    kr_append *a = c != NULL ? kr_append_new(s, t) : NULL;
    if (a == NULL) {
        snprintf(msg, msglen, "out of memory queueing the batch of %llu events",
                 (unsigned long long)count);
        return KRAPPY_E_STORAGE;
    }
    size_t d0 = c->data.len, m0 = c->meta.len, x0 = c->extra.len;
    batch_enc be = {.c = c, .base = t->assigned};
    if (prod != NULL)
        be.hdr = (kr_batch_hdr){.producer = prod->pid, .epoch = idem->epoch, .seq = idem->seq};
    be.hdr.raft_index = raft_index;
    krappy_err rc = encode_batch(s, &be, src, ts_now, msg, msglen, bad_index);
    if (rc != KRAPPY_OK) {
        chunk_rewind(c, d0, m0, x0);
        kr_append_free(s, a);
        return rc;
    }
    a->chunk = c;
    a->off = be.at;
    a->len = c->data.len - be.at;
    a->meta = m0 / sizeof(kr_ev_meta);
    a->base = be.base;
    a->count = (uint32_t)be.count;
    a->max_ts = be.max_ts;
    a->sync = sync;
    a->done = done;
    a->arg = arg;
    t->assigned += be.count;
    if (raft_index > t->raft_index)
        t->raft_index = raft_index;
    if (prod != NULL)
        kr_store_idem_accepted(prod, a, idem->seq, be.base, (uint32_t)be.count, sync);
    kr_stream_queue(s, t->stream, a);
    return KRAPPY_OK;
}

/* Whether checkpoints fail and the active overlays hold more than limit
 * bytes; msg then says so (under 250 bytes, what an ERROR carries whole),
 * `then` what follows. */
static bool view_stuck(const kr_store *s, uint64_t limit, const char *past, const char *then,
                       char *msg, size_t msglen)
{
    if (s->ckpt_retry.failures == 0 || s->active_bytes <= limit)
        return false;
    snprintf(msg, msglen,
             "checkpoints of the latest-value view fail (%u in a row; the last: %.70s) and %zu "
             "MiB of keys wait in memory, past %s; %s",
             (unsigned)s->ckpt_retry.failures, s->ckpt_retry.reason, s->active_bytes >> 20, past,
             then);
    return true;
}

bool kr_store_view_full(const kr_store *s, char *msg, size_t msglen)
{
    char why[256];
    if (!view_stuck(s, s->o.overlay_bytes, "--overlay-bytes", "publish again once one succeeds",
                    why, sizeof why))
        return false;
    snprintf(msg, msglen, "nothing was stored: %s", why);
    return true;
}

bool kr_store_view_overflow(const kr_store *s, char *msg, size_t msglen)
{
    uint64_t limit = s->o.overlay_bytes > UINT64_MAX / KR_STORE_VIEW_HALT_FACTOR
                         ? UINT64_MAX
                         : s->o.overlay_bytes * KR_STORE_VIEW_HALT_FACTOR;
    return view_stuck(s, limit, "twice --overlay-bytes", "restart the node once one can succeed",
                      msg, msglen);
}

krappy_err kr_store_publish(kr_store *s, kr_topic *t, const kr_request *req, kr_buf *scratch,
                            bool sync, kr_idem *idem, kr_store_done done, void *arg, char *msg,
                            size_t msglen, uint64_t *bad_index)
{
    if (kr_store_view_full(s, msg, msglen))
        return KRAPPY_E_STORAGE;
    ev_source src = {.req = req, .scratch = scratch, .count = req->u.publish.count};
    return publish(s, t, &src, sync, idem, kr_wall_ms(), 0, done, arg, msg, msglen, bad_index);
}

krappy_err kr_store_publish_events(kr_store *s, kr_topic *t, const kr_store_event *evs,
                                   uint64_t count, bool sync, kr_idem *idem, kr_store_done done,
                                   void *arg, char *msg, size_t msglen, uint64_t *bad_index)
{
    if (count == 0) {
        snprintf(msg, msglen, "a PUBLISH carries at least one event");
        return KRAPPY_E_INVALID_ARGUMENT;
    }
    if (kr_store_view_full(s, msg, msglen))
        return KRAPPY_E_STORAGE;
    ev_source src = {.evs = evs, .count = count};
    return publish(s, t, &src, sync, idem, kr_wall_ms(), 0, done, arg, msg, msglen, bad_index);
}

krappy_err kr_store_publish_applied(kr_store *s, kr_topic *t, const kr_request *req,
                                    kr_buf *scratch, kr_idem *idem, uint64_t ts,
                                    uint64_t raft_index, kr_store_done done, void *arg, char *msg,
                                    size_t msglen, uint64_t *bad_index)
{
    ev_source src = {.req = req, .scratch = scratch, .count = req->u.publish.count};
    return publish(s, t, &src, false, idem, ts, raft_index, done, arg, msg, msglen, bad_index);
}

/* ---- completion ---- */

/* How many keys ahead of the one being put fold_meta asks for its slot;
 * the slot's record is asked for half as many ahead (kr_overlay_prefetch).
 * Far enough that the memory arrives in time, near enough that what came
 * is still in the cache. */
#define FOLD_AHEAD 8

/* The hash in ov of the key of the event m describes, or 0 for an event
 * without a key. */
static uint64_t fold_hash(const kr_overlay *ov, const kr_chunk *c, const kr_ev_meta *m)
{
    if (!m->has_key)
        return 0;
    const uint8_t *keys = m->key_joined ? c->extra.data : c->data.data;
    return kr_overlay_hash(ov, keys + m->key_pos, m->key_len);
}

size_t kr_store_fold_warm_slots(const kr_topic *t, const kr_chunk *c, uint64_t *hashes)
{
    const kr_ev_meta *m = (const kr_ev_meta *)(const void *)c->meta.data;
    size_t n = c->meta.len / sizeof *m;
    if (n > KR_FOLD_WARM)
        n = KR_FOLD_WARM;
    for (size_t i = 0; i < n; i++)
        if ((hashes[i] = fold_hash(t->active, c, &m[i])) != 0)
            kr_overlay_prefetch(t->active, hashes[i], false);
    return n;
}

void kr_store_fold_warm_records(const kr_topic *t, const uint64_t *hashes, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (hashes[i] != 0)
            kr_overlay_prefetch(t->active, hashes[i], true);
}

/* Fold a batch into the topic's active overlay, a few keys' memory asked
 * for ahead of their puts (overlay.h). */
static int fold_meta(kr_topic *t, const kr_append *a)
{
    const kr_chunk *c = a->chunk;
    const kr_ev_meta *m = (const kr_ev_meta *)(const void *)c->meta.data + a->meta;
    kr_overlay *ov = t->active;
    uint64_t ring[FOLD_AHEAD]; /* the hashes of events i .. i + FOLD_AHEAD - 1 */
    uint32_t n = a->count;
    for (uint32_t j = 0; j < FOLD_AHEAD && j < n; j++) {
        ring[j] = fold_hash(ov, c, &m[j]);
        if (ring[j] != 0)
            kr_overlay_prefetch(ov, ring[j], false);
    }
    for (uint32_t i = 0; i < n; i++) {
        uint64_t h = ring[i % FOLD_AHEAD];
        if (i + FOLD_AHEAD < n) {
            uint64_t next = fold_hash(ov, c, &m[i + FOLD_AHEAD]);
            ring[i % FOLD_AHEAD] = next;
            if (next != 0)
                kr_overlay_prefetch(ov, next, false);
        }
        if (i + FOLD_AHEAD / 2 < n && ring[(i + FOLD_AHEAD / 2) % FOLD_AHEAD] != 0)
            kr_overlay_prefetch(ov, ring[(i + FOLD_AHEAD / 2) % FOLD_AHEAD], true);
        if (h == 0)
            continue;
        const uint8_t *keys = m[i].key_joined ? c->extra.data : c->data.data;
        kr_ov_entry e = {.key = keys + m[i].key_pos,
                         .key_len = m[i].key_len,
                         .event = c->data.data + m[i].ev_pos,
                         .ev_len = m[i].ev_len,
                         .offset = a->base + i,
                         .ts = m[i].ts,
                         .tombstone = m[i].tombstone};
        if (kr_overlay_put_hashed(ov, &e, h) < 0)
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
static void ack_append(kr_store *s, kr_append *a)
{
    /* Field by field: an initializer would clear all of msg per append. */
    kr_store_result res;
    res.err = KRAPPY_OK;
    res.msg[0] = '\0';
    res.first = a->base;
    res.count = a->count;
    res.duplicate = false;
    res.epoch = 0;
    res.seq = 0;
    if (a->count == 0)
        res.first = a->t->next; /* a marker: the topic's next offset */
    kr_store_done done = a->done;
    void *arg = a->arg;
    kr_append_free(s, a);
    if (done != NULL)
        done(arg, &res);
}

void kr_store_release_held(kr_store *s, bool all)
{
    kr_append *a;
    while ((a = TAILQ_FIRST(&s->held)) != NULL &&
           (all || s->active_bytes <= kr_store_fill_limit(s))) {
        TAILQ_REMOVE(&s->held, a, link);
        ack_append(s, a);
    }
}

void kr_store_append_failed(kr_store *s, kr_append *a, const char *why)
{
    kr_store_idem_completed(s, a, false); /* its producer expects these numbers again */
    kr_store_result res = {.err = KRAPPY_E_STORAGE};
    snprintf(res.msg, sizeof res.msg, "%s", why);
    kr_store_done done = a->done;
    void *arg = a->arg;
    kr_append_free(s, a);
    if (done != NULL)
        done(arg, &res);
}

/* The metrics are shared with the admin thread (atomic adds): they take
 * what a stream made visible once per flush, not once per append. */
void kr_store_count_in(kr_store *s, kr_stream *st)
{
    if (st->uncounted_events == 0 && st->uncounted_bytes == 0)
        return;
    kr_counter_add(s->m_events_in, st->uncounted_events);
    kr_counter_add(s->m_bytes_in, st->uncounted_bytes);
    kr_counter_add(st->t->m_events_in, st->uncounted_events);
    kr_counter_add(st->t->m_bytes_in, st->uncounted_bytes);
    st->uncounted_events = st->uncounted_bytes = 0;
}

void kr_store_append_visible(kr_store *s, kr_append *a)
{
    kr_topic *t = a->t;
    if (a->count == 0) {
        ack_append(s, a);
        return;
    }
    kr_segment *seg = t->segs[t->n_segs - 1]; /* appends land in the active one */
    if (seg->next == seg->base)
        seg->first_write_ms = kr_wall_ms(); /* segment_ms counts from here */
    seg->size = a->pos + a->len;
    seg->next = a->base + a->count;
    if (a->max_ts > seg->max_ts)
        seg->max_ts = a->max_ts;
    kr_index_add(&seg->idx, a->base, a->pos);
    t->next = a->base + a->count;
    t->bytes += a->len;
    t->events_in += a->count;
    t->stream->uncounted_events += a->count;
    t->stream->uncounted_bytes += a->len;
    size_t before = kr_overlay_bytes(t->active);
    if (fold_meta(t, a) < 0)
        kr_log(KR_LOG_ERROR,
               "out of memory updating the latest-value view; GET and SCAN may miss these "
               "events' keys until a restart replays them",
               KR_LOG_STR("topic", t->name), KR_LOG_U64("first", a->base),
               KR_LOG_U64("next", a->base + a->count));
    s->active_bytes += kr_overlay_bytes(t->active) - before; /* overlays only grow */
    /* The overlay has its copies: the chunk need not stay for this one (it
     * is kept on its segment's list until synced). */
    kr_append_free_chunk(s, a);
    /* Visible now: its producer's state records it, and repeats of it
     * waiting are answered. */
    kr_store_idem_completed(s, a, true);
    if (s->active_bytes > kr_store_fill_limit(s)) {
        kr_store_checkpoint_due(s); /* freezes them, or runs next when one is running */
        if (s->active_bytes > kr_store_fill_limit(s) && s->ckpt_running && !s->closing) {
            TAILQ_INSERT_TAIL(&s->held, a, link);
            return;
        }
    }
    ack_append(s, a);
}
