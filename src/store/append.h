/*
 * store/append.h - a topic's stream files as the loop writes them (internal
 * to src/store): PUBLISH batches appended by the loop itself, once per turn
 * of the loop; segment rolls; and durability, for which the storage writer
 * only fdatasyncs.
 *
 * The path of a PUBLISH (publish.c encodes it, this file does the rest):
 *
 *   1. encoded straight into the topic's open chunk (the batches of this
 *      loop turn, back to back as they go to the file) - no copy;
 *   2. at the end of the loop turn (the store's flush event, which libevent
 *      runs after the other callbacks of the turn) every chunk with
 *      something in it is written with one pwrite to its topic's active
 *      segment - the page cache, so the loop does not wait on the disk;
 *   3. an append acknowledged "write" counts at once: folded into the
 *      overlay, visible to readers, acknowledged (kr_store_append_visible,
 *      publish.c). One acknowledged "sync" - and every append behind it,
 *      since visibility is a prefix of the stream - waits on the topic's
 *      waiting list until a SYNC job covers it;
 *   4. at most one SYNC job per topic is in flight: whatever needs
 *      durability meanwhile shares the next one (group commit). The writer
 *      fdatasyncs and then records how far the segment is known synced in
 *      its header (segment.h); the loop learns the result and lets the
 *      waiting appends count.
 *
 * Failures, all handled on the loop, where the file's contents are owned:
 *   - a write that fails or falls short: the partial batch is cut off, the
 *     appends that did not land fail with STORAGE and nothing of them is
 *     left (nor their offsets taken); what landed counts;
 *   - a roll that fails (the disk fills as a segment starts): the new file
 *     is removed and the chunk's appends fail; the active segment stays as
 *     it was;
 *   - a failed fdatasync may have dropped dirty pages: the bytes written
 *     since the last good sync are kept in memory (a copy per unsynced
 *     segment, appended as they are written and dropped in bulk by each
 *     sync), so the segment is cut back to its synced length, they are
 *     rewritten, and the sync is tried once more. When that fails too, the
 *     appends still waiting are taken back (the file is cut where the first
 *     began; they fail with STORAGE), and the topic is "broken": every
 *     later append waits for a sync before it counts, until one succeeds.
 * At every step the loop's record of the segments (what FETCH serves) is
 * only ever moved past bytes that are in the file: it never runs ahead of
 * the files, and never behind what was acknowledged.
 *
 * Producer registrations: a topic's chunk is not written while a producer
 * registration of the topic waits for the writer (kr_topic.registering):
 * a batch must never be on disk before the registration that names its
 * producer, or after a kill -9 recovery could not attribute it, and the
 * producer's resend of it would be stored again (the Kafka listener
 * registers a producer and publishes its first batch in one loop turn).
 *
 * Rolls: a chunk that does not fit the active segment goes to a new one,
 * created by the loop (open, header write - page cache only); the old one
 * is synced in full by the next SYNC job, which then leaves its index hint
 * (BASE.idx) behind and closes it. A roll waits while appends wait for a
 * sync, so that everything that may have to be taken back lies in one file,
 * and while the segment closed by the previous roll still waits for its
 * final sync, so that a topic holds at most two segment files open for
 * writing (the store's fdcache keeps a file with unsynced bytes open).
 * Recovery (recovery.c) removes a last segment that a power cut separated
 * from its predecessor's lost tail: nothing in it was ever synced, since a
 * SYNC job syncs closed segments before the active one.
 */
#ifndef KR_STORE_APPEND_H
#define KR_STORE_APPEND_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/queue.h>

#include "store/index.h"
#include "store/store.h"
#include "util/buf.h"

/* The batches appended to one topic in one loop turn, written with one
 * pwrite (their segment keeps a copy until a sync covers them). */
typedef struct kr_chunk {
    kr_buf data;   /* the batches, back to back, as they go to the file */
    kr_buf meta;   /* kr_ev_meta of every event, in order */
    kr_buf extra;  /* joined indefinite-length keys (kr_ev_meta.key_joined) */
    uint64_t pos;  /* where data[0] landed in its segment (once written) */
    unsigned refs; /* appends pointing into it, +1 while open */
    TAILQ_ENTRY(kr_chunk) link;
} kr_chunk;

TAILQ_HEAD(kr_chunk_list, kr_chunk);

/* One PUBLISH on its way into the stream, or a marker (count 0: a
 * PRODUCER_REGISTER waiting for the appends before it). */
typedef struct kr_append {
    kr_topic *t;
    kr_chunk *chunk; /* its bytes and facts (NULL for a marker) */
    size_t off, len; /* its batch in chunk->data */
    size_t meta;     /* index of its first kr_ev_meta in chunk->meta */
    uint64_t base;   /* offset of its first event */
    uint64_t max_ts;
    uint32_t count;    /* events; 0 for a marker */
    bool sync;         /* counts only once synced ("sync" ack, or a broken topic) */
    uint64_t seg_base; /* where it landed */
    uint64_t pos;
    kr_store_done done; /* NULL: nobody waits */
    void *arg;
    struct kr_producer *producer; /* an idempotent producer's PUBLISH (held
                                     busy until it counts or fails), or NULL */
    uint64_t seq;                 /* ... its sequence number */
    TAILQ_ENTRY(kr_append) link;
} kr_append;

TAILQ_HEAD(kr_append_list, kr_append);

/* A piece of a segment's copy of its unsynced bytes (recycled by the
 * store). */
#define KR_KBLOCK_BYTES (16u * 1024)
typedef struct kr_kblock {
    size_t len; /* bytes used */
    TAILQ_ENTRY(kr_kblock) link;
    uint8_t data[KR_KBLOCK_BYTES];
} kr_kblock;

TAILQ_HEAD(kr_kblock_list, kr_kblock);

/* A segment holding bytes not yet known durable (the active one always). */
typedef struct kr_useg {
    uint64_t base;
    kr_fdfile *file;                /* read-write, in the store's fdcache: pinned while
                                       the loop writes it or a SYNC job syncs it, and
                                       marked dirty while it holds unsynced bytes */
    uint32_t hdr_len;               /* KR_SEG_HEADER_V2_BYTES: it has a sync record */
    uint32_t flags;                 /* its header's (a repair writes them again) */
    uint64_t written, written_next; /* end of the last whole batch in it */
    uint64_t synced, synced_next;   /* known durable (rewrites start here) */
    bool closed;                    /* rolled away from: a final sync, then BASE.idx */
    bool final_done;                /* that final sync was made (a sync of it from
                                       before its roll does not write BASE.idx) */
    bool torn;                      /* bytes past `written` that a cut could not remove */
    bool unkept;                    /* bytes past `synced` have no copy (out of memory):
                                       a failed sync cannot be repaired */
    struct kr_kblock_list kept;     /* a copy of the bytes [synced, written) ... */
    size_t kept_off;                /* ... from this far into the first block */
    size_t kept_len;
} kr_useg;

/* A topic's stream as the loop writes it. */
typedef struct kr_stream {
    kr_topic *t;
    const char *dir; /* DATA/topics/NAME (the topic's) */
    bool dir_dirty;  /* a segment was created since the directory's last fsync */
    kr_useg **segs;  /* unsynced segments, oldest first; the last is active */
    size_t n_segs, cap_segs;
    size_t kept_bytes;             /* of every unsynced segment's kept copy */
    kr_chunk *open;                /* being filled this turn (NULL: none) */
    struct kr_append_list pending; /* encoded, not yet written */
    struct kr_append_list waiting; /* written, waiting for a sync to count */
    kr_job *sync_job;              /* in flight (the writer's) */
    bool sync_wanted;              /* more wants syncing than the job in flight covers */
    unsigned sync_fails;           /* failed SYNC jobs in a row */
    bool broken;                   /* see append.h: appends wait for a good sync */
    uint64_t synced_next;          /* the stream is durable below this offset */
    bool ckpt_wait;                /* a checkpoint waits for synced_next >= ckpt_target */
    uint64_t ckpt_target;
    bool flush_queued;
    bool dropped;    /* DELETE_TOPIC: nothing more is written or synced */
    uint64_t gap_to; /* the highest offset a gap moved the appends to
                        (kr_stream_gap); 0: none */
    uint64_t uncounted_events, uncounted_bytes; /* made visible, not yet added to the
                                                   metrics (kr_store_count_in) */
    TAILQ_ENTRY(kr_stream) flush_link;
} kr_stream;

TAILQ_HEAD(kr_stream_list, kr_stream);

/*
 * kr_stream_new - the stream state of topic t (in its directory t->dir,
 * borrowed). No files yet: kr_stream_attach gives it its active segment.
 * @return NULL on ENOMEM.
 */
kr_stream *kr_stream_new(kr_topic *t);

/*
 * kr_stream_attach - the topic's files exist: its active segment `base`,
 * the read-write file `file` of the store's fdcache (taken over, not
 * pinned by the caller), holding `size` bytes up to offset `next`, all
 * durable, its header `hdr_len` long with flags `flags` (KR_SEG_F_*: a
 * header written again keeps them).
 * @return 0, or -1 on ENOMEM (nothing taken over then).
 */
int kr_stream_attach(kr_stream *st, kr_fdfile *file, uint64_t base, uint32_t hdr_len, uint64_t size,
                     uint64_t next, uint32_t flags);

/* Free the state and its files' records (no pin may be left: a SYNC job
 * must not be in flight). Appends still pending or waiting must have been
 * completed (kr_stream_fail_all). NULL ok. */
void kr_stream_free(kr_stream *st);

/*
 * kr_stream_chunk - the topic's open chunk, made when there is none.
 * @return NULL on ENOMEM.
 */
kr_chunk *kr_stream_chunk(kr_store *s, kr_stream *st);

/* A fresh append record (zeroed but for its topic), or NULL on ENOMEM. */
kr_append *kr_append_new(kr_store *s, kr_topic *t);

/* Queue an append encoded into the open chunk (or a marker, chunk NULL)
 * behind the topic's others; the loop's flush writes it this turn. */
void kr_stream_queue(kr_store *s, kr_stream *st, kr_append *a);

/*
 * kr_stream_roll - close the active segment now (segment_ms: a quiet topic)
 * when it holds batches, as a full one is closed: not while appends are
 * queued, nor while appends or the last closed segment wait for a sync
 * (one is asked for; the caller tries again later).
 * @return 0 (rolled, or not yet), or -1 when the roll failed (msg says why;
 *         the active segment stays).
 */
int kr_stream_roll(kr_store *s, kr_stream *st, char *msg, size_t msglen);

/*
 * kr_stream_skip - start a new segment at `base` (past the active one's
 * last offset), flagged KR_SEG_F_SKIPPED: the stream goes on from `base`,
 * the offsets between are gone (kr_store_skip_to). Queued appends are
 * written first; while any of them, or the last closed segment, waits for
 * a sync (one is asked for), or the topic's creation still runs, it is not
 * done yet.
 * @return 0 done, 1 not yet (try again later), -1 when the new segment
 *         could not be made (msg says why; the active segment stays).
 */
int kr_stream_skip(kr_store *s, kr_stream *st, uint64_t base, char *msg, size_t msglen);

/*
 * kr_stream_gap - the next append gets offset `next` (past the topic's
 * assigned ones), in the active segment (kr_store_gap_to): its batch base
 * jumps, and the segment it lands in is flagged KR_SEG_F_COMPACTED first.
 * With nothing on its way into the stream the topic's next moves too.
 * @return 0, or -1 while the topic's creation still runs (no segment yet).
 */
int kr_stream_gap(kr_stream *st, uint64_t next);

/* Whether the stream still holds segment `base` as unsynced (written,
 * synced or cut by the loop yet; its final sync not done). NULL: false. */
bool kr_stream_holds(const kr_stream *st, uint64_t base);

/* Write every queued chunk now (the flush event, and close). */
void kr_stream_flush_all(kr_store *s);

/* The flush event's callback (store.c creates the event). */
void kr_stream_on_flush(evutil_socket_t fd, short what, void *arg);

/*
 * kr_stream_want_sync - have a SYNC job cover everything written to the
 * topic so far: at once when none is in flight, else right after it.
 */
void kr_stream_want_sync(kr_store *s, kr_stream *st);

/* Completion of a SYNC job (store.c dispatches here). */
void kr_stream_synced(kr_store *s, kr_job *j);

/* The topic's creation finished (ok or not): write what waited for it, or
 * fail it. */
void kr_stream_created(kr_store *s, kr_stream *st, bool ok);

/* The topic's last queued producer registration is written: the appends
 * held behind it go to the file at the end of this loop turn. */
void kr_stream_registered(kr_store *s, kr_stream *st);

/* Fail every append pending or waiting with STORAGE `why` (markers are
 * answered OK: they only wait for order). */
void kr_stream_fail_all(kr_store *s, kr_stream *st, const char *why);

/* Whether appends or syncs of the topic are still under way. */
bool kr_stream_busy(const kr_stream *st);

/*
 * kr_stream_drop - the topic leaves (DELETE_TOPIC): what its appends queued
 * is written now, in order, and answered (those waiting for a sync are
 * answered by the SYNC job in flight, or fail once it is back); the
 * pending checkpoint forgets the topic; then the TOPIC_DROP job j is
 * submitted, behind every job of the stream. Nothing is written to the
 * topic's files afterwards.
 */
void kr_stream_drop(kr_store *s, kr_stream *st, kr_job *j);

/* ---- the recycled memory (append_pool.c) ---- */

/* Free a chunk no append points into (not recycled: no store at hand). */
void kr_chunk_free(kr_chunk *c);

/* Drop a chunk reference; the last one recycles the chunk (or frees it).
 * NULL ok. */
void kr_chunk_unref(kr_store *s, kr_chunk *c);

/* A block for a segment's kept copy (len 0), or NULL on ENOMEM. */
kr_kblock *kr_kblock_get(kr_store *s);

/* Give a kept block back (recycled, or freed past the pool's bound). */
void kr_kblock_put(kr_store *s, kr_kblock *k);

/* Release an append record (its chunk reference with it). */
void kr_append_free(kr_store *s, kr_append *a);

/* Drop the append's chunk reference (its batch was folded: the record
 * lives on without it). */
void kr_append_free_chunk(kr_store *s, kr_append *a);

/* Release the store's recycled chunks and appends (close). */
void kr_stream_pools_free(kr_store *s);

#endif
