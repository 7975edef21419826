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
#include "store/group.h"
#include "store/index.h"
#include "store/overlay.h"
#include "store/segment.h"
#include "store/view.h"

/* Defaults of the storage settings (flags in config.c). */
#define KR_DEFAULT_SEGMENT_BYTES      (64u * 1024 * 1024)
#define KR_DEFAULT_CHECKPOINT_MS      2000
#define KR_DEFAULT_OVERLAY_BYTES      (128u * 1024 * 1024)
#define KR_DEFAULT_MAX_PUBLISH_EVENTS 100000
#define KR_DEFAULT_MAX_WAIT_MS        60000
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
} kr_store_opts;

typedef struct kr_store kr_store;
typedef struct kr_topic kr_topic;
typedef struct kr_job kr_job;

/* One segment as the loop sees it: what is visible and where. */
typedef struct kr_segment {
    uint64_t id;   /* unique in this process, never 0 (kr_segment_new) */
    uint64_t base; /* first offset */
    uint64_t next; /* offset after its last visible event */
    uint64_t size; /* visible bytes (end of its last visible batch) */
    uint64_t max_ts;
    uint32_t start; /* where its first batch starts (its header's length;
                       known once read or scanned: see kr_segment_verify) */
    int fd;         /* read-only */
    bool verified;  /* every batch below `size` checked or ours */
    kr_index idx;   /* sparse hints */
    size_t n_corrupt;
    kr_corrupt corrupt[KR_SEG_MAX_CORRUPT];
    struct evbuffer_file_segment *fs; /* sendfile handle on [0, fs_len) */
    uint64_t fs_len;
} kr_segment;

/* A FETCH waiting for events (a parked long poll). */
typedef struct kr_waiter {
    kr_topic *topic;
    struct kr_waiter_list *list; /* where it is parked (set by the store) */
    uint64_t offset;
    struct event *timer;
    void (*wake)(struct kr_waiter *w, bool timed_out); /* called once */
    void *arg;
    TAILQ_ENTRY(kr_waiter) link;
} kr_waiter;

TAILQ_HEAD(kr_waiter_list, kr_waiter);

struct kr_topic {
    kr_store *store;
    char name[KRAPPY_MAX_NAME_BYTES + 1];
    size_t name_len;
    bool ready;        /* created on disk (false while being created) */
    bool failed;       /* creation failed: being removed */
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
    struct kr_stream *stream; /* its files as the loop writes them (append.h) */
    uint64_t events_in;       /* counters for STATS/metrics */
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
 */
krappy_err kr_store_publish(kr_store *s, kr_topic *t, const kr_request *req, kr_buf *scratch,
                            bool sync, kr_store_done done, void *arg, char *msg, size_t msglen,
                            uint64_t *bad_index);

/* ---- reads (loop thread, synchronous) ---- */

/* One batch payload range of a segment file, sent as is. */
typedef struct kr_fetch_range {
    kr_segment *seg;
    uint64_t pos, len;
} kr_fetch_range;

/* Ranges per FETCH reply at most (one per stored batch touched). */
#define KR_FETCH_MAX_RANGES 4096
/* Ranges shorter than this are copied (one pread for a run of them);
 * longer ones go out with sendfile. */
#define KR_FETCH_COPY_BELOW (16u * 1024)
/* Bytes FETCH reads ahead in one pread (the read window, store_read.c). */
#define KR_FETCH_WINDOW (64u * 1024)

typedef struct kr_fetch_result {
    uint64_t count; /* events */
    uint64_t next;  /* offset after the last one */
    uint64_t bytes; /* sum of range lengths */
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

/*
 * kr_store_fetch_emit - append the events of a fetch result to buf: small
 * batches copied, large ones as sendfile segments (no copy).
 * @return 0, or -1 (a read failed; msg filled).
 */
int kr_store_fetch_emit(kr_store *s, const kr_fetch_result *res, struct evbuffer *buf, char *msg,
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

/* Start a checkpoint of every topic whose view lags its stream (one runs
 * at a time; asking during one queues another right after). */
void kr_store_checkpoint(kr_store *s);

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

/* ---- stats ---- */
uint64_t kr_topic_bytes(const kr_topic *t);
uint64_t kr_topic_keys(const kr_topic *t);

#endif
