/*
 * store/store.h - krappy's storage: per-topic streams on disk plus the
 * latest-value view, behind one facade used by the request handlers.
 *
 * Threads. The loop thread owns every structure here (topics, segment lists,
 * overlays, cursors) and appends PUBLISH batches to the stream files itself,
 * once per turn of the loop (append.h: a write to the page cache, which does
 * not wait on the disk). One storage writer thread (writer.c) does what
 * waits on the disk - fdatasyncs, topic creation, group cursors, segment
 * deletion, checkpoints into RocksDB (on its view thread) - on jobs the loop
 * queues, in queue order, many per round (group commit), and hands finished
 * jobs back in one wake-up per round. Reads (FETCH, GET, SCAN) run on the
 * loop from the page cache and RocksDB's block cache.
 *
 * Durability. The stream is the source of truth. A "write" ack means the
 * bytes were handed to the OS; "sync" means fdatasync'd. A checkpoint waits
 * until every stream it covers is durable up to its target, then writes the
 * frozen overlays and per-topic markers into RocksDB (one table file,
 * ingested atomically and durably), so the view is never ahead of the
 * durable stream. Start-up truncates torn tails (but reports damage below
 * a segment's recorded sync point as corruption) and replays each topic's
 * stream from its marker into a fresh overlay.
 *
 * Memory. The overlays share --overlay-bytes (kr_store_opts.overlay_bytes):
 * half for the active ones, half for the frozen ones being checkpointed.
 * When the active half is full and a checkpoint is still running, PUBLISH
 * completions wait (back-pressure) until it is done.
 *
 * Layout under --data:
 *   LOCK                        flock'd while krappyd runs
 *   view/                       RocksDB
 *   topics/NAME/BASE.seg        segments (segment.h), BASE.idx sparse index hints (index.h)
 */
#ifndef KR_STORE_STORE_H
#define KR_STORE_STORE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/queue.h>

#include <event2/buffer.h>
#include <event2/event.h>

#include "krappy/protocol.h"
#include "util/buf.h"
#include "proto/msg.h"
#include "util/metrics.h"
#include "util/retry.h"
#include "store/fdcache.h"
#include "store/group.h"
#include "store/index.h"
#include "store/overlay.h"
#include "store/producers.h"
#include "store/segment.h"
#include "store/view.h"
#include "proto/topic_config.h"

/* Failing checkpoints and rolls of quiet segments are tried again after the
 * checkpoint interval, doubling up to this (util/retry.h). */
#define KR_STORE_RETRY_CAP_MS 32000

/* Defaults of the storage settings (flags in config.c). */
#define KR_DEFAULT_SEGMENT_BYTES       (64u * 1024 * 1024)
#define KR_DEFAULT_CHECKPOINT_MS       2000
#define KR_DEFAULT_OVERLAY_BYTES       (128u * 1024 * 1024)
#define KR_DEFAULT_MAX_PUBLISH_EVENTS  100000
#define KR_DEFAULT_MAX_WAIT_MS         60000
#define KR_DEFAULT_DELETE_RETENTION_MS (24ull * 3600 * 1000)
#define KR_DEFAULT_COMPACT_RATE        (32ull * 1024 * 1024)
/* Segment files kept open at once when kr_store_opts.max_open_files is 0. */
#define KR_STORE_DEFAULT_OPEN_FILES 1024
/* SCAN cursors live this long after their last use, and this many at most. */
#define KR_SCAN_CURSOR_MS    120000
#define KR_SCAN_CURSORS_MAX  4096
#define KR_SCAN_CURSOR_BYTES 16

typedef struct kr_store_opts {
    const char *data_dir;
    uint64_t segment_bytes;
    uint64_t retention_bytes; /* 0: keep everything */
    uint64_t retention_ms;    /* 0: keep everything */
    uint64_t checkpoint_ms;
    uint64_t overlay_bytes; /* memory for all overlays: a checkpoint starts when the
                               active ones hold half, producers wait at half while
                               one runs */
    uint32_t max_frame;
    uint32_t max_events; /* cap on FETCH `max` */
    uint32_t max_publish_events;
    uint64_t max_wait_ms; /* cap on FETCH `wait_ms` */
    size_t block_cache_bytes;
    const char *rocksdb_log_dir; /* NULL: inside DATA/view */
    uint64_t group_window;       /* offsets a group may have handed out */
    bool fsync_cursors;          /* cursors survive a power cut, not only kill -9 */
    size_t max_producers;        /* idempotent producers kept, all topics (0: the
                                    default, KR_DEFAULT_MAX_PRODUCERS) */
    size_t max_open_files;       /* segment files kept open at once (0: 1024); more
                                    are opened when needed, the least recently used
                                    closed (fdcache.h) */
    int rocksdb_max_open_files;  /* RocksDB's table files kept open (0: 256) */
    bool rebuild_view;           /* start with a new view rebuilt from the streams,
                                    the old one's group cursors kept */
    /* Defaults of the topic settings a topic does not set itself (with
     * segment_bytes, retention_bytes and retention_ms above). */
    uint32_t cleanup;             /* KR_CLEANUP_* bits; 0: delete */
    uint64_t delete_retention_ms; /* how long compaction keeps a tombstone */
    uint64_t segment_ms;          /* roll a non-empty active segment this old (0: never) */
    uint64_t compact_rate;        /* bytes/s compaction reads and writes at most (0: the
                                     default, KR_DEFAULT_COMPACT_RATE) */
    bool compact_idle;            /* run the compaction thread under SCHED_IDLE (it gets a
                                     core only when no other thread wants one), and
                                     RocksDB's compaction threads at the lowest priority */
} kr_store_opts;

typedef struct kr_store kr_store;
typedef struct kr_topic kr_topic;
typedef struct kr_job kr_job;
typedef struct kr_compactor kr_compactor;

/* One segment as the loop sees it: what is visible and where. */
typedef struct kr_segment {
    uint64_t id;   /* unique in this process, never 0 (kr_segment_new) */
    uint64_t base; /* first offset */
    uint64_t next; /* offset after its last visible event */
    uint64_t size; /* visible bytes (end of its last visible batch) */
    uint64_t max_ts;
    uint32_t start;  /* where its first batch starts (its header's length;
                        known once read or scanned: see kr_segment_verify) */
    kr_fdfile *file; /* read-only, opened when read (the store's fdcache) */
    bool verified;   /* every batch below `size` checked or ours */
    kr_index idx;    /* sparse hints */
    size_t n_corrupt;
    kr_corrupt corrupt[KR_SEG_MAX_CORRUPT];
    uint64_t first_write_ms; /* wall clock of its first batch (segment_ms), 0: none yet */
    bool compacted;          /* rewritten by compaction: offsets may have gaps,
                                it covers [base, next) all the same */
    bool compacting;         /* being rewritten: retention and merges leave it */
} kr_segment;

/* A FETCH waiting for events (a parked long poll). */
typedef struct kr_waiter {
    kr_topic *topic;
    struct kr_waiter_list *list; /* where it is parked (set by the store) */
    uint64_t offset;
    struct event *timer;
    void (*wake)(struct kr_waiter *w, bool timed_out); /* called once */
    bool gone; /* set before wake when its topic (or group) was deleted */
    void *arg;
    TAILQ_ENTRY(kr_waiter) link;
} kr_waiter;

TAILQ_HEAD(kr_waiter_list, kr_waiter);

/* A Kafka consumer group's committed offset on a topic (the Kafka
 * listener's bookkeeping, beside the groups' cursors; see koffsets.c). */
typedef struct kr_koffset {
    char *group; /* NUL-terminated, group_len bytes */
    size_t group_len;
    uint64_t offset;
    char *metadata; /* the client's text, NUL-terminated; NULL for null */
    size_t metadata_len;
} kr_koffset;

struct kr_topic {
    kr_store *store;
    char name[KRAPPY_MAX_NAME_BYTES + 1];
    size_t name_len;
    char *dir;         /* DATA/topics/NAME: its segments' files are opened there */
    bool ready;        /* created on disk (false while being created) */
    bool failed;       /* creation failed: being removed */
    bool deleted;      /* DELETE_TOPIC: out of the table, freed once its
                          files and records are gone */
    kr_segment **segs; /* ascending base; the last one is being appended */
    size_t n_segs, cap_segs;
    uint64_t first;        /* first retained offset */
    uint64_t next;         /* offset after the last visible event */
    uint64_t assigned;     /* next offset a new PUBLISH gets (>= next) */
    uint64_t bytes;        /* visible stream bytes, all segments */
    kr_overlay *active;    /* newest entries since the frozen one */
    kr_overlay *frozen;    /* being checkpointed (NULL when none) */
    kr_overlay *readcache; /* GET answers read from the view since the topic's
                              last checkpoint (NULL when none): see
                              kr_store_get */
    uint64_t frozen_next;  /* the frozen overlay's target marker */
    uint64_t marker;       /* the durable view covers offsets < marker */
    uint64_t keys;         /* live keys as of the last checkpoint */
    struct kr_waiter_list waiters;
    struct kr_tgroup **groups; /* consumer groups, by name */
    size_t n_groups, cap_groups;
    kr_koffset *koffsets; /* Kafka groups' committed offsets, by group name */
    size_t n_koffsets, cap_koffsets;
    struct kr_stream *stream;    /* its files as the loop writes them (append.h) */
    struct kr_tprod *prod;       /* idempotent producers (store_producers.c) */
    kr_topic_config own;         /* the settings the topic sets itself (topic_config.h) */
    kr_topic_config cfg;         /* what applies: `own` over the server's defaults */
    struct kr_tcompact *compact; /* compaction state (compact.c), NULL until used */
    uint64_t raft_index;         /* highest raft index among its batches (a cluster
                                    member's, kr_store_publish_applied; 0 otherwise) */
    uint64_t retain_to;          /* a cluster member's: the first offset the log's
                                    RETENTION keeps (kr_store_retain); 0 none */
    uint64_t retain_asked;       /* the leader's: the highest it asked the log for */
    uint64_t seed_to;            /* a skip's first offset while the view below it
                                    awaits its peers' latest values
                                    (kr_store_seed_view); 0 none */
    bool seed_begun;             /* this process dropped the view's rows for seed_to */
    uint64_t seed_keys;          /* the keys the seed put so far */
    unsigned registering;        /* producer registrations queued for the writer:
                                    the stream's writes wait for them (append.h) */
    kr_retry roll_retry;         /* segment_ms: a failing roll of the quiet segment */
    uint64_t events_in;          /* counters for STATS/metrics */
    kr_metric *m_events_in, *m_bytes_in, *m_events_out, *m_bytes_out, *m_stream_bytes,
        *m_segments; /* labelled topic="NAME" */
};

/*
 * kr_store_open - lock the data directory, open the view, recover every
 * topic (truncate torn tails, note corrupt batches, clamp markers past the
 * end, replay from markers) and start the writer thread. Logs what it did.
 * @return 0 and *out, or -1 with err holding a sentence (e.g. another
 *         krappyd holds the lock).
 */
int kr_store_open(const kr_store_opts *o, struct event_base *base, kr_metrics *m, kr_store **out,
                  char *err, size_t errlen);

/*
 * kr_store_close - stop taking jobs, let the writer finish queued ones,
 * checkpoint everything, join the writer, release everything. NULL ok.
 * Must run on the loop thread with the loop still usable (it is driven
 * until the final checkpoint completes).
 */
void kr_store_close(kr_store *s);

/* The topic, or NULL when there is none by that name (or still failing). */
kr_topic *kr_store_topic(kr_store *s, const uint8_t *name, size_t len);

/* Topics in name order, for TOPICS. *out is an array owned by the store,
 * valid until the next call that changes topics. */
size_t kr_store_topics(kr_store *s, kr_topic ***out);

/* ---- asynchronous operations: `done` is called on the loop thread ---- */

typedef struct kr_store_result {
    krappy_err err; /* KRAPPY_OK or KRAPPY_E_STORAGE */
    char msg[256];  /* the sentence when err != OK */
    uint64_t first; /* PUBLISH: first offset; REGISTER: topic next */
    uint64_t count;
    bool duplicate; /* PUBLISH: a repeat, answered with the original's
                       offsets; nothing was stored */
    uint32_t epoch; /* idempotent REGISTER: the registration's epoch */
    uint64_t seq;   /* idempotent REGISTER: the sequence number expected */
} kr_store_result;

typedef void (*kr_store_done)(void *arg, const kr_store_result *res);

/*
 * kr_store_register - find or create a topic (PRODUCER_REGISTER); `done`
 * reports the topic's next offset once every earlier job has taken effect.
 * @return 0 when queued, -1 when it cannot even be queued (res filled).
 */
int kr_store_register(kr_store *s, const uint8_t *name, size_t len, kr_topic **topic,
                      kr_store_done done, void *arg, kr_store_result *res);

/*
 * kr_store_producer_register - an idempotent PRODUCER_REGISTER (PROTOCOL.md
 * section 7): find or create the topic (as kr_store_register) and its
 * producer `id`, start a new epoch of it at once - older registrations are
 * fenced from now on - and hold it for the caller's connection (release
 * with kr_store_producer_release). `done` runs once the topic exists and
 * the registration (the producer's number in the topic and its epoch) is
 * on stable storage, with res.first the topic's next offset, res.epoch and
 * res.seq, the sequence number the producer is expected to send next (as
 * it was at the registration). A producer that is new takes the place of
 * the least recently active one when --max-producers are kept.
 * @param id  1..249 bytes (the caller validated it)
 * @return 0 when queued, res.epoch and res.seq set already (the binding is
 *         made at once, for PUBLISHes pipelined behind it); -1 with res
 *         filled: KRAPPY_E_STORAGE (no memory),
 *         KRAPPY_E_BUSY (--max-producers are kept and all of them are busy:
 *         registered on live connections or writing).
 */
int kr_store_producer_register(kr_store *s, const uint8_t *topic, size_t tlen, const uint8_t *id,
                               size_t idlen, kr_topic **t, kr_store_done done, void *arg,
                               kr_store_result *res);

/* A connection's idempotent registration of (t, id) ends (the connection
 * closed, registered again or was fenced): the producer may be forgotten
 * again once idle. Unknown ids are ignored. */
void kr_store_producer_release(kr_store *s, kr_topic *t, const uint8_t *id, size_t idlen);

/* The epoch of the newest registration of producer `id` on t (NULL ok),
 * 0 when the store keeps no such producer; *next_seq (NULL ok) the
 * sequence number it expects next. */
uint32_t kr_store_producer_epoch(const kr_topic *t, const uint8_t *id, size_t idlen,
                                 uint64_t *next_seq);

/* An idempotent producer's state as a cluster's snapshot carries it from
 * node to node (its window: the last PUBLISHes, oldest first). */
typedef struct kr_prod_state {
    const uint8_t *id; /* borrowed */
    size_t id_len;
    uint32_t epoch;
    uint64_t next_seq;
    size_t n;
    kr_prod_batch win[KR_PRODUCER_WINDOW];
} kr_prod_state;

/* Call fn with the stored state of each of t's producers until it returns
 * non-zero (then that value is returned; else 0). */
int kr_store_producers_each(kr_topic *t, int (*fn)(void *arg, const kr_prod_state *st), void *arg);

/*
 * kr_store_producer_adopt - take a producer's state from a snapshot (the
 * node lacked the commands that made it): epoch, sequence and window as
 * given, the registration written as kr_store_producer_register writes it
 * (done follows), the state with the topic's next checkpoint.
 * @return 0 (done follows), 1 when the store's own state is as new
 *         (nothing done, done does not run), -1 with res (no memory).
 */
int kr_store_producer_adopt(kr_store *s, kr_topic *t, const kr_prod_state *st, kr_store_done done,
                            void *arg, kr_store_result *res);

/* The idempotent producers the store keeps for a topic. */
size_t kr_topic_producers(const kr_topic *t);

/*
 * What an idempotent producer's PUBLISH adds to it (section 7): who sends
 * it - the producer's id in the topic and the epoch of the registration it
 * comes through - and the sequence number of its first event. The Kafka
 * listener fills it from a record batch's producer id, epoch and base
 * sequence, under an id of its choosing registered with
 * kr_store_producer_register.
 */
typedef struct kr_idem {
    const uint8_t *id; /* borrowed for the call */
    size_t id_len;
    uint32_t epoch;
    uint64_t seq;
    uint64_t expected; /* out: with KRAPPY_E_OUT_OF_ORDER_SEQUENCE, the
                          sequence number the server expects */
} kr_idem;

/*
 * kr_store_publish - encode the events of a decoded PUBLISH as one batch,
 * assign its offsets and queue the append. Validation of sizes happens
 * here: an event whose delivered form exceeds max_frame - 1024 refuses the
 * whole request (INVALID_ARGUMENT naming its index), nothing is queued.
 * @return KRAPPY_OK when queued (done follows - once the events are stored
 *         and visible, and, while the overlays are full, once a checkpoint
 *         has made room), else the error with msg. *bad_index is set only
 *         when one event is at fault (too large as delivered); a request
 *         over max_publish_events is INVALID_ARGUMENT with *bad_index left
 *         as it was (the handler then sends no `index`).
 * With idem (an idempotent producer's PUBLISH, else NULL) the sequence
 * rules of section 7 come first: a repeat of one of the producer's last
 * KR_PRODUCER_WINDOW PUBLISHes stores nothing and is answered through
 * `done` with res.duplicate and the original's offsets (at once, or once
 * the original's batch lands when it is still being written, or with its
 * STORAGE error when that fails); KRAPPY_E_FENCED when idem->epoch is not
 * the producer's newest; KRAPPY_E_OUT_OF_ORDER_SEQUENCE with
 * idem->expected; KRAPPY_E_NOT_REGISTERED when the store no longer knows
 * the producer. The batch header then carries the producer (segment.h), so
 * that a restart knows it again.
 */
krappy_err kr_store_publish(kr_store *s, kr_topic *t, const kr_request *req, kr_buf *scratch,
                            bool sync, kr_idem *idem, kr_store_done done, void *arg, char *msg,
                            size_t msglen, uint64_t *bad_index);

/*
 * One event handed to kr_store_publish_events by a caller that holds its
 * parts as bytes rather than as a PUBLISH payload (the Kafka listener's
 * records). It is stored exactly as kr_store_publish stores the PUBLISH
 * event [key, value, ts(, headers)] whose key and value are these bytes as
 * CBOR byte strings: the segment, FETCH and GET cannot tell the two apart.
 * Every pointer is borrowed for the call.
 */
typedef struct kr_store_event {
    const uint8_t *key;     /* content bytes; NULL: no key (streamed, not compacted) */
    const uint8_t *value;   /* content bytes; NULL: a tombstone (CBOR null) */
    const uint8_t *headers; /* an encoded CBOR map of text to byte strings, valid as
                               kr_req_decode checks it; NULL: none */
    uint32_t key_len, value_len, headers_len;
    bool has_ts; /* false: the server's clock stamps it */
    uint64_t ts;
} kr_store_event;

/*
 * kr_store_publish_events - kr_store_publish for `count` events given as
 * kr_store_event (at least one): the same batch, limits, idempotence, sync
 * and completion. The caller has checked what kr_req_decode checks of a
 * PUBLISH (headers well-formed); a key over KRAPPY_MAX_KEY_BYTES is
 * INVALID_ARGUMENT naming its index, no events INVALID_ARGUMENT.
 * @return as kr_store_publish.
 */
krappy_err kr_store_publish_events(kr_store *s, kr_topic *t, const kr_store_event *evs,
                                   uint64_t count, bool sync, kr_idem *idem, kr_store_done done,
                                   void *arg, char *msg, size_t msglen, uint64_t *bad_index);

/*
 * Retention on a cluster (PROTOCOL.md section 8): only the leader decides a
 * topic's new first offset, and every node takes it from the log's
 * RETENTION command. kr_store_retention_led hands the store's
 * decisions (by --retention-bytes/-ms and the topic's settings, taken
 * where a single node would retire segments) to `decide`, which logs
 * RETENTION when this node leads and drops them otherwise; the store then
 * never retires a segment on its own. Compaction stays each node's own.
 * kr_store_retain applies a RETENTION: the topic's first offset becomes
 * `first` (at most its next), and the segments wholly below it are
 * retired, now or - those the view does not cover yet, or being compacted
 * - after a later checkpoint. A segment `first` falls inside is kept whole
 * on disk, its events below `first` no longer served. A restart learns
 * `first` again from the raft snapshot and the log's RETENTIONs.
 */
typedef void (*kr_store_retention_fn)(void *arg, kr_topic *t, uint64_t first);
void kr_store_retention_led(kr_store *s, kr_store_retention_fn decide, void *arg);
void kr_store_retain(kr_store *s, kr_topic *t, uint64_t first);

/*
 * kr_store_skip_to - a stream behind a retention every other copy applied
 * (a cluster member that restored a raft snapshot whose `first` lies past
 * its next, and whose peers retired the events between) goes on from
 * `first`: a new segment based at `first` (flagged KR_SEG_F_SKIPPED,
 * segment.h) becomes the active one, next and assigned become `first`, and
 * so does the first retained offset - the offsets below it are gone as
 * after retention (FETCH below it is OFFSET_OUT_OF_RANGE), the old
 * segments retired once the view covers them. Nothing is waited for: the
 * segment and its directory entry become durable with the stream's next
 * sync (a restart before that finds the old stream, or the new segment;
 * the flag keeps recovery from taking the gap before it for a lost tail,
 * and makes its base the first offset again). The view's rows below
 * `first` then await their seed (kr_store_seed_view): checkpoints leave
 * the topic alone until it is done. No-op when `first` is not past the
 * topic's assigned offsets.
 * @return KRAPPY_OK (done, or nothing to do); KRAPPY_E_BUSY (msg) while
 *         the topic is being created or its appends or last roll wait for
 *         a sync (one is asked for: try again later); KRAPPY_E_STORAGE
 *         (msg) when the segment could not be made.
 */
krappy_err kr_store_skip_to(kr_store *s, kr_topic *t, uint64_t first, char *msg, size_t msglen);

/*
 * kr_store_seed_view - the latest-value view of a stream that skipped
 * (kr_store_skip_to) lacks the keys whose latest event lies below the
 * skip's `first`, and may hold stale values of keys overwritten or deleted
 * there: after a skip, t's view rows below `first` wait to be REPLACED by
 * its peers' (t->seed_to is `first`; checkpoints leave the topic alone so
 * that its view's marker stays below `first`). The caller hands them over
 * in pages: `events` holds n of them back to back, each the key's latest
 * event in delivered form ([offset, ts, key, value(, headers)], as GET
 * answers it), with a key, a value, and an offset below `first`; a page's
 * keys are distinct. The first page this process takes drops every row
 * the view holds of t, and the entries of its overlay below `first`; each
 * page is written to the view (flushed, waiting); `last` writes the marker
 * [first, keys] with the last page's rows, in one batch - the seed is
 * done, checkpoints go on. A kill -9 at any moment before that leaves the
 * marker below the first offset of a stream a skip started: recovery
 * notices (kr_store_seed_pending) and the seed is made again from its
 * first page.
 * While a seed is pending GET and SCAN of t may miss keys below `first`.
 * Loop thread; synchronous (each page's view write waits for its flush).
 * @return KRAPPY_OK; KRAPPY_E_BUSY (msg) while a checkpoint of t is under
 *         way (try again later); KRAPPY_E_INVALID_ARGUMENT (msg) when t
 *         awaits no seed to `first`, or an event is not as described
 *         (nothing of the page is written); KRAPPY_E_STORAGE (msg) when
 *         the view refused the write: the next call starts the seed over
 *         (the caller hands it over again from its first page).
 */
krappy_err kr_store_seed_view(kr_store *s, kr_topic *t, uint64_t first, const uint8_t *events,
                              size_t len, size_t n, bool last, char *msg, size_t msglen);

/* kr_store_seed_pending - the first offset of a skip whose view seed is
 * not done (a skip made by this process, or one recovery found), or 0. */
uint64_t kr_store_seed_pending(const kr_topic *t);

/*
 * kr_store_gap_to - a cluster member catching up from peers whose
 * compaction removed offsets below `next` (kr_catchup): the topic's next
 * append goes to offset `next`, the offsets between hold nothing here
 * either. No new segment: the batch that lands after the gap flags its
 * segment KR_SEG_F_COMPACTED (segment.h) before it is written, so that
 * recovery and readers take the gap - written or not, no offset below
 * `next` is handed out again by this process (a restart before a batch
 * lands after the gap forgets it: the catch-up runs again). With nothing
 * on its way into the stream, the topic's next moves to `next` at once;
 * the offsets skipped need no sync (kr_store_synced reaches `next` once
 * what was written before them is synced).
 * No-op when `next` is not past the topic's assigned offsets.
 * @return KRAPPY_OK; KRAPPY_E_BUSY (msg) while the topic is being created
 *         or deleted (try again later).
 */
krappy_err kr_store_gap_to(kr_store *s, kr_topic *t, uint64_t next, char *msg, size_t msglen);

/*
 * kr_store_publish_applied - kr_store_publish for a PUBLISH a cluster's
 * log decided (PROTOCOL.md section 8): events without a ts get `ts` (the
 * leader's clock, the same on every node) and the batch header records
 * `raft_index` (> 0), which becomes the topic's raft_index, so that a node
 * replaying its log after a restart skips what its stream holds. Never
 * synced on its own: the raft log is the durable copy. Same returns.
 */
krappy_err kr_store_publish_applied(kr_store *s, kr_topic *t, const kr_request *req,
                                    kr_buf *scratch, kr_idem *idem, uint64_t ts,
                                    uint64_t raft_index, kr_store_done done, void *arg, char *msg,
                                    size_t msglen, uint64_t *bad_index);

/*
 * kr_store_synced - the offset below which t's stream is known durable
 * (fdatasync'd); t->next when every visible event is. A cluster member's
 * segments are synced by checkpoints and rolls only, and a raft snapshot
 * must not cover what is not durable yet (cluster/replica.c).
 * kr_store_sync - have a sync cover everything written to t so far: at
 * once, or right after the one in flight. No completion: watch
 * kr_store_synced.
 */
uint64_t kr_store_synced(const kr_topic *t);
void kr_store_sync(kr_store *s, kr_topic *t);

/* ---- reads (loop thread, synchronous) ---- */

/* One batch payload range of a segment file, sent as is: events of
 * consecutive offsets [first, first + count). */
typedef struct kr_fetch_range {
    kr_segment *seg;
    uint64_t pos, len;
    uint64_t first;
    uint64_t count;
} kr_fetch_range;

/* Ranges per FETCH reply at most (one per stored batch touched). */
#define KR_FETCH_MAX_RANGES 4096
/* Ranges shorter than this are copied (one pread for a run of them);
 * longer ones go out with sendfile. */
#define KR_FETCH_COPY_BELOW (16u * 1024)
/* Bytes FETCH reads ahead in one pread (the read window, store_read.c). */
#define KR_FETCH_WINDOW (64u * 1024)

typedef struct kr_fetch_result {
    uint64_t count;   /* events */
    uint64_t next;    /* offset after the last one (the offset asked for when none) */
    uint64_t scanned; /* every offset below it from the one asked for was returned or
                         holds no event (compaction removed it): >= next */
    uint64_t bytes;   /* sum of range lengths */
    size_t n_ranges;
    kr_fetch_range *ranges; /* the store's: valid until the next fetch */
} kr_fetch_result;

/*
 * kr_store_fetch - locate events with offset >= `offset`: at most `max`,
 * stopping before `max_bytes` would be exceeded but with at least one event
 * when one exists (max_bytes 0 = one event).
 * @return KRAPPY_OK (count may be 0 when offset == next),
 *         KRAPPY_E_OFFSET_OUT_OF_RANGE (msg says so; the topic's first and
 *         next describe the range), KRAPPY_E_STORAGE (a corrupt or unreadable
 *         batch: msg says which offsets, out->next where good events resume).
 */
krappy_err kr_store_fetch(kr_store *s, kr_topic *t, uint64_t offset, uint64_t max,
                          uint64_t max_bytes, kr_fetch_result *out, char *msg, size_t msglen);

/* kr_store_fetch of the events with offsets in [offset, end) only (POLL's
 * slices: a removed offset must not pull in events past its slice). */
krappy_err kr_store_fetch_range(kr_store *s, kr_topic *t, uint64_t offset, uint64_t end,
                                uint64_t max, uint64_t max_bytes, kr_fetch_result *out, char *msg,
                                size_t msglen);

/*
 * kr_store_fetch_batches - kr_store_fetch that ends where a stored batch
 * ends: the first batch, from `offset` on, is taken whole when its events
 * take at most `stretch` bytes (a soft max_bytes, as Kafka's first batch of
 * a Fetch; below max_bytes it counts as max_bytes, and it is capped as
 * max_bytes is) - else cut as kr_store_fetch cuts - and each batch after it
 * whole while within max_bytes, or not at all. The next read, from
 * out->next, then starts at a batch's first event and needs no walk of the
 * events before it to find its place (the Kafka listener's Fetch, whose
 * consumer reads on from there).
 * @return as kr_store_fetch.
 */
krappy_err kr_store_fetch_batches(kr_store *s, kr_topic *t, uint64_t offset, uint64_t max,
                                  uint64_t max_bytes, uint64_t stretch, kr_fetch_result *out,
                                  char *msg, size_t msglen);

/*
 * kr_store_fetch_emit - append the events of a fetch result to buf: small
 * batches copied, large ones as sendfile segments (no copy).
 * @return 0, or -1 (a read failed; msg filled).
 */
int kr_store_fetch_emit(kr_store *s, const kr_fetch_result *res, struct evbuffer *buf, char *msg,
                        size_t msglen);

/*
 * kr_store_fetch_copy - append the events of a fetch result to out, read
 * into memory (for a protocol that re-encodes them: the Kafka listener).
 * Each is one CBOR item in delivered form, back to back.
 * @return 0, or -1 (out refused to grow or a read failed; msg filled).
 */
int kr_store_fetch_copy(kr_store *s, const kr_fetch_result *res, kr_buf *out, char *msg,
                        size_t msglen);

/* Park a waiter until the topic's next passes w->offset or the timer
 * fires (wait_ms, capped). The waiter's memory is the caller's.
 * @return 0, or -1 when there is no memory for its timer (not parked). */
int kr_store_park(kr_store *s, kr_waiter *w, uint64_t wait_ms);

/* Remove a parked waiter without waking it (its connection went away). */
void kr_store_unpark(kr_store *s, kr_waiter *w);

/*
 * kr_store_get - the newest event of a key as delivered ([offset, ts, key,
 * value(, headers)]), appended to out.
 * @return 1 found, 0 not found (never written or tombstoned), -1 storage
 *         error (msg filled).
 */
int kr_store_get(kr_store *s, kr_topic *t, const uint8_t *key, size_t klen, kr_buf *out, char *msg,
                 size_t msglen);

/* ---- SCAN ---- */

typedef struct kr_scan_cursor kr_scan_cursor;

/* One entry of a SCAN page: the key content and the delivered event.
 * Return 0 when the entry was taken, non-zero to stop without taking it
 * (the cursor then continues with this entry). */
typedef int (*kr_scan_fn)(void *arg, const uint8_t *key, size_t klen, const uint8_t *event,
                          size_t elen);

/*
 * kr_store_scan_start - begin a scan: make the view cover everything visible
 * now (forcing a checkpoint if the topic has unflushed entries), then call
 * `ready` on the loop with a cursor (or an error). The cursor is owned by
 * the store and lives KR_SCAN_CURSOR_MS after its last use.
 */
void kr_store_scan_start(kr_store *s, kr_topic *t, const uint8_t *prefix, size_t plen,
                         bool has_after, const uint8_t *after, size_t alen,
                         void (*ready)(void *arg, kr_scan_cursor *cur, const kr_store_result *res),
                         void *arg);

/* Find a cursor by its token. NULL when unknown or expired. */
kr_scan_cursor *kr_store_scan_find(kr_store *s, const uint8_t *token, size_t len);

/*
 * kr_store_scan_page - up to `limit` entries after the cursor's position;
 * fn is called for each. *more says whether entries remain; the cursor
 * advances. @return entries given, or -1 (msg filled).
 */
long kr_store_scan_page(kr_store *s, kr_scan_cursor *cur, size_t limit, kr_scan_fn fn, void *arg,
                        bool *more, char *msg, size_t msglen);

/* The cursor's token (KR_SCAN_CURSOR_BYTES) and snapshot offset. */
const uint8_t *kr_scan_token(const kr_scan_cursor *cur);
uint64_t kr_scan_snapshot(const kr_scan_cursor *cur);
kr_topic *kr_scan_topic(const kr_scan_cursor *cur);

/* Drop a cursor now (scan finished). */
void kr_store_scan_end(kr_store *s, kr_scan_cursor *cur);

/* ---- consumer groups ---- */

/* A group as the store keeps it: the window logic plus parked POLLs. */
typedef struct kr_tgroup {
    kr_group *g;
    kr_topic *t;
    struct kr_waiter_list waiters;
    /* metrics, labelled topic and group, refreshed by the group tick */
    kr_metric *m_cursor, *m_pending, *m_lag, *m_members, *m_max_deliveries, *m_redeliveries;
    uint64_t redeliveries_seen;
    /* On a cluster: the cursor the log gave it last (cluster/replica.c),
     * what snapshots carry - the leader's own runs ahead with ACKs not
     * committed yet. Loaded as the cursor persisted. */
    uint64_t logged;
} kr_tgroup;

typedef struct kr_join {
    const uint8_t *group;
    size_t glen;
    const uint8_t *member; /* NULL: a name is made up */
    size_t mlen;
    kr_start_kind start;
    uint64_t start_offset;
    bool auto_ack;
    uint64_t ack_wait_ms;
    void *owner; /* the connection */
} kr_join;

/*
 * kr_store_group_join - CONSUMER_REGISTER: find or create the group (a new
 * one starts at `start`, resolved now), add the member (taking over a name
 * held elsewhere: *taken_from gets the old owner), and queue a job after
 * which `done` reports the group's cursor (res.first): the group's record
 * is durable by then.
 * @return KRAPPY_OK when queued; KRAPPY_E_OFFSET_OUT_OF_RANGE for a start
 *         offset outside [first, next] (msg filled); KRAPPY_E_STORAGE.
 */
krappy_err kr_store_group_join(kr_store *s, kr_topic *t, const kr_join *a, kr_tgroup **tg,
                               kr_member **m, void **taken_from, kr_store_done done, void *arg,
                               char *msg, size_t msglen);

/* A member goes (disconnect, rebind): its pending events return to the
 * group, and parked POLLs are woken for them. */
void kr_store_group_leave(kr_store *s, kr_tgroup *tg, kr_member *m);

/* The group by name, or NULL. */
kr_tgroup *kr_store_group(kr_topic *t, const uint8_t *name, size_t len);

/* The topic's groups in name order: *out is the store's array, valid until
 * a group is added. @return how many. */
size_t kr_store_groups(const kr_topic *t, kr_tgroup *const **out);

/* The group's name (borrowed: NUL-terminated, lives as long as the group)
 * and its length in *len. */
const char *kr_store_group_name(const kr_tgroup *tg, size_t *len);

/* The group's cursor: its lowest unacknowledged offset. */
uint64_t kr_store_group_cursor(const kr_tgroup *tg);

/* The group's frontier: its lowest offset never handed out (where the
 * next POLL's new events start). */
uint64_t kr_store_group_frontier(const kr_tgroup *tg);

/* What STATS and the admin API show of a group. */
typedef struct kr_group_stats {
    const char *name; /* borrowed, as kr_store_group_name */
    size_t name_len;
    uint64_t cursor;  /* lowest unacknowledged offset */
    uint64_t pending; /* handed out or awaiting redelivery, not acknowledged */
    uint64_t lag;     /* the topic's next offset minus the cursor */
    size_t members;   /* live members */
} kr_group_stats;

void kr_store_group_stats(const kr_tgroup *tg, kr_group_stats *out);

/* One member of a group, as the admin API shows it. */
typedef struct kr_member_stats {
    const char *name; /* borrowed: lives as long as the member */
    size_t name_len;
    uint64_t pending; /* handed to it and not acknowledged */
    bool auto_ack;
    uint64_t ack_wait_ms;
} kr_member_stats;

/* The group's members in the order they joined, at most max of them into
 * out. @return how many there are (may be more than max). */
size_t kr_store_group_members(const kr_tgroup *tg, kr_member_stats *out, size_t max);

/*
 * kr_store_group_ack_upto, kr_store_group_ack_offsets - ACK: acknowledge
 * m's pending offsets below `upto`, or the given offsets (see
 * kr_group_ack_upto and kr_group_ack_offsets for what res says). Applied
 * at once, so a POLL after it sees it; when the cursor moved, the POLLs
 * parked on the group are woken (there is room in the window). Making the
 * cursor durable is kr_store_group_persist's job.
 */
void kr_store_group_ack_upto(kr_store *s, kr_tgroup *tg, kr_member *m, uint64_t upto,
                             kr_ack_result *res);
void kr_store_group_ack_offsets(kr_store *s, kr_tgroup *tg, const uint64_t *offsets, size_t n,
                                kr_ack_result *res);

/*
 * kr_store_poll - hand events to member m: redeliveries first, then new
 * events, at most `max` (capped at --max-events), stopping before
 * `max_bytes` (0: one event), appending their delivered bytes to `events`.
 * *count gets the number; the group's window records them.
 * @return KRAPPY_OK, or KRAPPY_E_STORAGE (msg filled).
 */
krappy_err kr_store_poll(kr_store *s, kr_tgroup *tg, kr_member *m, uint64_t max, uint64_t max_bytes,
                         struct evbuffer *events, uint64_t *count, char *msg, size_t msglen);

/* Park a POLL on the group: woken by new events, redeliveries, or room in
 * the window; or when its timer fires. @return as kr_store_park. */
int kr_store_park_group(kr_store *s, kr_tgroup *tg, kr_waiter *w, uint64_t wait_ms);

/* Wake the POLLs parked on a group (they look again). */
void kr_store_wake_group(kr_store *s, kr_tgroup *tg);

/*
 * kr_store_group_persist - queue the group's current cursor for RocksDB
 * (WAL on; fsync'd with --fsync-cursors); `done` runs once it survives
 * kill -9, with res.first = the cursor written. Jobs run in order, so this
 * also orders after every earlier write.
 * @return 0, or -1 (res filled).
 */
int kr_store_group_persist(kr_store *s, kr_tgroup *tg, kr_store_done done, void *arg,
                           kr_store_result *res);

/*
 * kr_store_group_apply - a cursor decided by a cluster's log (GROUP_CREATE,
 * GROUP_CURSORS; cluster/replica.c): group `name` of t is made at `cursor`
 * when t has none, or moved up to `cursor` when it is below (its offsets
 * below count as acknowledged; POLLs parked on it are woken). Then `cursor`
 * itself is written and kept in tg->logged - not the group's own, which
 * on the leader may run ahead of the log with ACKs not committed yet - and
 * `done` runs once it survives kill -9 (res.first = cursor).
 * @return 0 when queued; -1 with res filled (STORAGE: no memory, closing).
 */
int kr_store_group_apply(kr_store *s, kr_topic *t, const uint8_t *name, size_t len, uint64_t cursor,
                         kr_store_done done, void *arg, kr_store_result *res);

/* ---- Kafka groups' committed offsets ---- */

/* Longest Kafka group name and offset metadata the store keeps. */
#define KR_KOFFSET_GROUP_MAX    KRAPPY_MAX_NAME_BYTES
#define KR_KOFFSET_METADATA_MAX 4096

/* The committed offset of Kafka group `group` on t, or NULL when it has
 * none. Borrowed: valid until the next commit to t completes. */
const kr_koffset *kr_store_koffset(const kr_topic *t, const uint8_t *group, size_t len);

/* Every Kafka group's committed offset on t, by group name: *out is the
 * store's array, valid until the next commit to t completes. @return how
 * many. */
size_t kr_store_koffsets(const kr_topic *t, const kr_koffset **out);

/*
 * kr_store_koffset_commit - Kafka OffsetCommit: record `offset` (and the
 * client's metadata, mlen -1 for null) as group's committed offset on t.
 * Written like a group cursor (RocksDB, WAL on; fsync'd with
 * --fsync-cursors), in order after every earlier job; `done` runs once it
 * survives kill -9, and from then on kr_store_koffset answers it.
 * @return 0 when queued; -1 with res filled: INVALID_ARGUMENT for a group
 *         name of 0 or over KR_KOFFSET_GROUP_MAX bytes or metadata over
 *         KR_KOFFSET_METADATA_MAX, STORAGE when out of memory or closing.
 */
int kr_store_koffset_commit(kr_store *s, kr_topic *t, const uint8_t *group, size_t glen,
                            uint64_t offset, const char *metadata, int32_t mlen, kr_store_done done,
                            void *arg, kr_store_result *res);

/* Start a checkpoint of every topic whose view lags its stream (one runs
 * at a time; asking during one queues another right after). */
void kr_store_checkpoint(kr_store *s);

/*
 * kr_store_view_full - whether writes must wait for the view: checkpoints
 * are failing and the active overlays hold more than --overlay-bytes. (A
 * checkpoint that is only slow holds PUBLISH acks instead; one that fails
 * cannot be waited for.) kr_store_publish and kr_store_publish_events then
 * refuse with STORAGE, msg saying why and what to do, nothing stored; a
 * cluster's leader asks before it sends a PUBLISH to the log. Applying a
 * committed one never refuses. @return true, with msg filled.
 */
bool kr_store_view_full(const kr_store *s, char *msg, size_t msglen);

/*
 * kr_store_view_overflow - whether a node that must apply every write (a
 * cluster's, applying its raft log) should stop rather than hold more:
 * checkpoints are failing and the active overlays hold more than
 * KR_STORE_VIEW_HALT_FACTOR x --overlay-bytes. @return true, with msg
 * saying why (under 250 bytes).
 */
#define KR_STORE_VIEW_HALT_FACTOR 2
bool kr_store_view_overflow(const kr_store *s, char *msg, size_t msglen);

/*
 * kr_store_hold, kr_store_release - bracket the requests of one read from a
 * connection (loop thread; nesting allowed): the storage jobs they submit
 * wake the writer thread once, at the release, not once each (a wake-up
 * and a round per single-event PUBLISH cost a third of the server's CPU at
 * 100k publishes/s). NULL ok.
 */
void kr_store_hold(kr_store *s);
void kr_store_release(kr_store *s);

/* Refresh the per-topic gauges (stream bytes, segments) before a scrape. */
void kr_store_refresh_metrics(kr_store *s);

/* Approximate bytes of the view's RocksDB files. */
uint64_t kr_store_view_bytes(kr_store *s);

/* ---- administration (PROTOCOL.md section 9; topic_admin.c) ---- */

/*
 * kr_store_delete_topic - DELETE_TOPIC. The topic leaves the table at once
 * (every later lookup of the name finds nothing, and a PRODUCER_REGISTER
 * makes a new, empty topic whose jobs run after this one); its parked FETCHes
 * and POLLs are woken with w->gone set, its scans answered NO_SUCH_TOPIC.
 * The writer then moves its directory aside (the atomic point, made durable
 * by a sync of DATA/topics), removes every record of it from the view (WAL
 * on, synced) and the directory. `done` runs once that survives kill -9 (res
 * STORAGE when it could not be done: the message says what is left); the
 * topic's memory is freed just before. Registrations that point at t (its
 * producers, its groups' members) are the caller's to drop, now.
 * @return KRAPPY_OK when queued, else KRAPPY_E_STORAGE with msg.
 */
krappy_err kr_store_delete_topic(kr_store *s, kr_topic *t, kr_store_done done, void *arg, char *msg,
                                 size_t msglen);

/*
 * kr_store_group_seek - GROUP_SEEK: move tg's cursor to the first retained
 * offset, the topic's next, `value` (an offset in [first, next]) or, for
 * KR_SEEK_TIME, the first offset whose event has ts >= `value` ms
 * (kr_store_offset_for_time). Hand-outs are forgotten (kr_group_seek), the
 * POLLs parked on the group woken, and `done` runs once the cursor survives
 * kill -9, with res.first = the cursor.
 * @return KRAPPY_OK when queued; KRAPPY_E_OFFSET_OUT_OF_RANGE (msg; the
 *         topic's first and next describe the range); KRAPPY_E_STORAGE.
 */
krappy_err kr_store_group_seek(kr_store *s, kr_tgroup *tg, kr_seek_kind to, uint64_t value,
                               kr_store_done done, void *arg, char *msg, size_t msglen);

/* kr_store_seek_target - the offset GROUP_SEEK `to`/`value` names on t now
 * (as kr_store_group_seek resolves it), into *out; nothing changes (a
 * cluster's leader resolves it before the log's GROUP_SEEK).
 * @return as kr_store_group_seek, without STORAGE for memory. */
krappy_err kr_store_seek_target(kr_store *s, kr_topic *t, kr_seek_kind to, uint64_t value,
                                uint64_t *out, char *msg, size_t msglen);

/*
 * kr_store_group_delete - GROUP_DELETE: tg leaves its topic's groups at once
 * (its parked POLLs woken with w->gone set), and `done` runs once its record
 * is gone from the view, durably like an ACK; tg is freed just after. Its
 * members' registrations are the caller's to drop, now (kr_store_group_leave
 * still works on them until then).
 * @return KRAPPY_OK when queued, else KRAPPY_E_STORAGE with msg.
 */
krappy_err kr_store_group_delete(kr_store *s, kr_tgroup *tg, kr_store_done done, void *arg,
                                 char *msg, size_t msglen);

/*
 * kr_store_offset_for_time - the first offset whose event has ts >= ts_ms,
 * or the topic's next when there is none. A bounded search: the segments'
 * largest timestamps pick the first segment that can hold one, its batch
 * headers (read 1 MiB at a time, their largest timestamps) the first batch,
 * and that batch's events the offset. Reads at most one segment's headers
 * and one batch; runs on the loop.
 * @param found_ts  NULL, or set to the found event's ts (Kafka's ListOffsets
 *                  answers it); untouched when there is none
 * @return KRAPPY_OK and *offset, or KRAPPY_E_STORAGE (msg: an unreadable
 *         segment).
 */
krappy_err kr_store_offset_for_time(kr_store *s, kr_topic *t, uint64_t ts_ms, uint64_t *offset,
                                    uint64_t *found_ts, char *msg, size_t msglen);

/* ---- stats ---- */
uint64_t kr_topic_bytes(const kr_topic *t);
uint64_t kr_topic_keys(const kr_topic *t);

#endif
