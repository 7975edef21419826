/*
 * store/store_int.h - what the files of the store share (not API): the
 * store's own struct, SCAN cursors and waits, and the functions each file
 * offers the others.
 */
#ifndef KR_STORE_STORE_INT_H
#define KR_STORE_STORE_INT_H

#include <sys/queue.h>

#include "store/append.h"
#include "store/names.h"
#include "store/store.h"
#include "store/writer.h"

/* Per-event facts recorded when a batch is encoded into its chunk
 * (append.h), so that the batch is folded into the overlay without parsing
 * it again. */
typedef struct kr_ev_meta {
    uint32_t ev_pos, ev_len;   /* delivered encoding, in chunk->data */
    uint32_t key_pos, key_len; /* key content, in chunk->data ... */
    uint64_t ts;
    uint8_t has_key, tombstone;
    uint8_t key_joined; /* ... or in chunk->extra (an indefinite-length key, joined) */
} kr_ev_meta;

/* A SCAN waiting for a checkpoint to cover `target`. */
typedef struct kr_scan_wait {
    kr_topic *t;
    uint64_t target;
    uint8_t *prefix, *after;
    size_t plen, alen;
    bool has_after;
    void (*ready)(void *arg, kr_scan_cursor *cur, const kr_store_result *res);
    void *arg;
    TAILQ_ENTRY(kr_scan_wait) link;
} kr_scan_wait;

TAILQ_HEAD(kr_scan_wait_list, kr_scan_wait);

struct kr_scan_cursor {
    uint8_t token[KR_SCAN_CURSOR_BYTES];
    kr_topic *t;
    kr_view_snap *snap;
    kr_overlay *ov;          /* NULL; or, when no checkpoint could be written,
                                the keys newer than snap (store_read.c) */
    uint64_t snapshot;       /* the view holds exactly offsets < snapshot */
    uint8_t *prefix, *after; /* after: the last key returned */
    size_t plen, alen, after_cap;
    bool has_after;
    uint64_t expires_ns;
    TAILQ_ENTRY(kr_scan_cursor) link;
};

TAILQ_HEAD(kr_cursor_list, kr_scan_cursor);

struct kr_store {
    kr_store_opts o;
    char *data_dir, *topics_dir;
    struct event_base *base;
    kr_metrics *metrics;
    int lock_fd;
    kr_view *view;
    kr_writer *writer;
    kr_store_retention_fn retention_led; /* a cluster member's (kr_store_retention_led) */
    void *retention_arg;
    kr_fdcache *files; /* the segment files' descriptors */
    kr_topic **topics; /* sorted by name */
    size_t n_topics, cap_topics;
    struct event *tick;
    bool ckpt_running, ckpt_again, closing;
    bool opened;            /* kr_store_open finished: close checkpoints */
    bool view_reopen;       /* the view's database wants a reopen (store.c) */
    bool draining;          /* the writer is stopping: completions delivered meanwhile
                               must not queue jobs it would never run */
    kr_retry ckpt_retry;    /* failing checkpoints: when to try again, what to log */
    kr_job *ckpt_job;       /* the checkpoint under way (waiting for its
                               streams' syncs, or on the view thread) */
    size_t active_bytes;    /* kr_overlay_bytes of every active overlay */
    size_t readcache_bytes; /* kr_overlay_bytes of every topic's readcache */
    kr_overlay **dispose;   /* overlays the next checkpoint frees (off the loop) */
    size_t n_dispose, cap_dispose;
    struct kr_append_list held; /* appends whose acks wait for overlay room */
    struct kr_scan_wait_list scan_waits;
    struct kr_cursor_list cursors;
    size_t n_cursors;
    struct event *flush_ev;           /* writes the appends of a loop turn (append.h) */
    struct kr_stream_list flushq;     /* topics with appends to write */
    struct kr_chunk_list free_chunks; /* recycled (append.c) */
    struct kr_kblock_list free_kblocks;
    size_t n_free_kblocks;
    struct kr_append_list free_appends;
    size_t n_free_chunks, n_free_appends, n_free_big_chunks;
    kr_buf readbuf;         /* pread scratch for fetch */
    kr_buf win;             /* the read window (store_read.c) ... */
    uint64_t win_seg;       /* ... of this segment (id; 0: none) ... */
    uint64_t win_pos;       /* ... from this position */
    kr_fetch_range *ranges; /* fetch result ranges */
    kr_metric *m_events_in, *m_bytes_in, *m_overlay_bytes, *m_replayed, *m_retired, *m_scan_ckpts,
        *m_group_skipped, *m_written, *m_failures, *m_files_open, *m_file_opens, *m_ckpt_failing;
    uint64_t file_opens_seen;       /* counted into m_file_opens so far */
    struct event *group_tick;       /* pending deadlines, 4 times a second */
    kr_prod_set *producers;         /* idempotent producers, all topics */
    struct kr_compactor *compactor; /* compaction's thread (compact.c) */
    kr_metric *m_prod_forgotten;
};

/* store.c */
/* "a/b", malloc'd. @return NULL on ENOMEM. */
char *kr_store_path(const char *a, const char *b);

/* topic_table.c */
/* Where a topic of that name is in the table, or would be inserted;
 * *found says which. */
size_t kr_store_topic_slot(const kr_store *s, const uint8_t *name, size_t len, bool *found);
/* A topic not yet in the table (not ready, no segments, an empty active
 * overlay, its metrics registered). @return NULL on ENOMEM. */
kr_topic *kr_store_topic_new(kr_store *s, const uint8_t *name, size_t len);
/* Put t into the table, in name order. @return 0, or -1 on ENOMEM or when
 * a topic of that name is there already. */
int kr_store_topic_insert(kr_store *s, kr_topic *t);
/* Take t out of the table (DELETE_TOPIC); its memory stays the caller's. */
void kr_store_topic_remove(kr_store *s, kr_topic *t);
/* Free a topic, its segments, overlays, groups and writer state. NULL ok. */
void kr_store_topic_free(kr_topic *t);
/* A segment record of the segment `base` of topic directory dir (borrowed:
 * the topic's), holding nothing yet, its first batch to start at `start`
 * (its header's length); its file is opened when read.
 * @return NULL on ENOMEM. */
kr_segment *kr_segment_new(kr_fdcache *files, const char *dir, uint64_t base, uint32_t start);
/* Append seg to t's segments (taken over on success). @return 0, or -1 on
 * ENOMEM. */
int kr_topic_add_segment(kr_topic *t, kr_segment *seg);
/* Room for one more segment, so that the next kr_topic_add_segment cannot
 * fail. @return 0, or -1 on ENOMEM. */
int kr_topic_reserve_segment(kr_topic *t);

/* store.c */
/* A write into the view failed where RocksDB may be left in an error
 * state: reopen it once its disk has room - now, when it has (store.c).
 * SCAN cursors are expired. */
void kr_store_view_failed(kr_store *s);
/* kr_store_checkpoint, unless checkpoints are failing and the next try is
 * not due yet: what the tick and a full overlay ask for. Requests that wait
 * for the answer (SCAN, a producer's durable state) try at once. */
void kr_store_checkpoint_due(kr_store *s);
/* One topic of the checkpoint under way has its stream synced (ok), or
 * cannot (the checkpoint then fails with `why`); the last one submits it. */
void kr_store_checkpoint_part(kr_store *s, bool ok, const char *why);
/* A topic deleted while the checkpoint under way still waits for streams
 * leaves that checkpoint: its records must not be written after its drop. */
void kr_store_checkpoint_forget(kr_store *s, kr_topic *t);

/* Retire t's old segments when its settings ask for it and the durable
 * view covers them (after each checkpoint of t, and when its settings
 * change). */
void kr_store_retention(kr_store *s, kr_topic *t);

/* segment_ms (the store's tick, every topic): close t's active segment
 * once its first batch is that old (now_ms: wall clock), so that a quiet
 * topic's last events can be compacted or retired too (kr_stream_roll). */
void kr_store_roll_quiet(kr_store *s, kr_topic *t, uint64_t now_ms);

/* Recount s->active_bytes from the overlays of the topics in the table. */
void kr_store_recount_active(kr_store *s);

/* publish.c */
/* Bytes an event may grow by from its form in a PUBLISH to its stored,
 * delivered form ([offset, ts, key, value(, headers)]): its offset and ts
 * (9 bytes each at most) and a null for an absent key or ts. A PUBLISH
 * within max_frame thus stores at most max_frame + this many bytes per
 * event + a batch header: the read buffer's cap. */
#define KR_STORE_EVENT_GROWTH 20
/* An append counts: its batch folded into the active overlay and the
 * loop's record of the segment moved past it, the producer acknowledged -
 * or, while the active overlays are over kr_store_fill_limit and a
 * checkpoint runs, the acknowledgement held. A marker (count 0) is answered
 * with the topic's next offset. The append is released (or held). The
 * caller then adds what its stream made visible to the metrics
 * (kr_store_count_in) and wakes the topic's long polls. */
void kr_store_append_visible(kr_store *s, kr_append *a);
/* Ask for the overlay memory the folds of chunk c's first events will
 * touch: kr_store_fold_warm_slots their table slots before c is written
 * (their hashes into `hashes`, room for KR_FOLD_WARM; @return how many),
 * kr_store_fold_warm_records their records (found through the slots, in by
 * then) after: the write's system call gives the loads time to arrive.
 * fold_meta looks ahead within one append; a loop turn of single-event
 * PUBLISHes is one event each. KR_FOLD_WARM is about such a turn (64 in
 * flight). */
#define KR_FOLD_WARM 64
size_t kr_store_fold_warm_slots(const kr_topic *t, const kr_chunk *c, uint64_t *hashes);
void kr_store_fold_warm_records(const kr_topic *t, const uint64_t *hashes, size_t n);
/* Add the events and bytes kr_store_append_visible made visible on st
 * since the last call to the store's and the topic's metrics. */
void kr_store_count_in(kr_store *s, kr_stream *st);
/* An append that will never count: STORAGE with `why`; released. */
void kr_store_append_failed(kr_store *s, kr_append *a, const char *why);
/* Acknowledge held appends while the active overlays are within their
 * limit (all: every one, whatever the memory). */
void kr_store_release_held(kr_store *s, bool all);
/* Memory the active overlays may hold: half of --overlay-bytes. */
size_t kr_store_fill_limit(const kr_store *s);

/* view_open.c */
/* Open the view at path for kr_store_open: as found; refused (err says what
 * to do) when it is missing while topics exist; rebuilt when
 * s->o.rebuild_view (its group cursors kept). @return 0 with s->view set,
 * or -1 with err filled. */
int kr_store_open_view(kr_store *s, const char *path, const kr_view_opts *vo, char *err,
                       size_t errlen);

/* recovery.c */
/* Recover every topic directory of the data directory (before the writer
 * starts). @return 0, or -1 with err holding a sentence that says what and
 * where. */
int kr_store_recover(kr_store *s, char *err, size_t errlen);

/* store_group.c */
kr_tgroup *kr_store_group_add(kr_store *s, kr_topic *t, const uint8_t *name, size_t len,
                              uint64_t cursor);
void kr_store_groups_free(kr_topic *t);
int kr_store_groups_load(kr_store *s, kr_topic *t, char *err, size_t errlen);
/* A CURSOR job for tg's cursor and origin now (not submitted). @return
 * NULL on ENOMEM. */
kr_job *kr_store_cursor_job(kr_store *s, kr_tgroup *tg);
void kr_store_cursor_done(kr_store *s, kr_job *j);
void kr_store_groups_tick(kr_store *s, kr_topic *t);
void kr_store_groups_metrics(kr_topic *t);
void kr_store_groups_retained(kr_store *s, kr_topic *t);

/* koffsets.c: Kafka groups' committed offsets (loaded with the groups,
 * written as cursor jobs) */
int kr_store_koffsets_load(kr_store *s, kr_topic *t, char *err, size_t errlen);
void kr_store_koffsets_free(kr_topic *t);
void kr_store_koffset_done(kr_store *s, kr_job *j);

/* topic_admin.c */
/* Completions of a TOPIC_DROP job and of a CURSOR job that drops a group. */
void kr_store_topic_dropped(kr_store *s, kr_job *j);
void kr_store_group_dropped(kr_store *s, kr_job *j);
/* The writer's part of a TOPIC_DROP job (writer thread). */
void kr_topic_drop_run(kr_view *v, kr_job *j);
/* Start-up, before recovery: remove what interrupted deletions left (trash
 * directories, records of topics without a directory). @return 0, or -1
 * with err filled. */
int kr_store_finish_deletions(kr_store *s, char *err, size_t errlen);

/* store_read.c */
void kr_segment_free(kr_segment *seg);
int kr_segment_verify(kr_store *s, kr_topic *t, kr_segment *seg);
void kr_store_wake(kr_store *s, kr_topic *t);
void kr_store_scan_checkpointed(kr_store *s, bool ok, const char *msg);
void kr_store_cursors_expire(kr_store *s, bool all);

/*
 * kr_store_window_follow - bytes [pos, pos + len) of segment seg were just
 * written and are visible (p: a copy of them). When the read window ends
 * where they start - a consumer follows the tail - they join it, so that
 * the long polls they wake read them without a pread (store_read.c).
 */
void kr_store_window_follow(kr_store *s, const kr_segment *seg, uint64_t pos, const uint8_t *p,
                            size_t len);

/* Drop a topic's cache of GET answers (the view changed under it). */
void kr_store_readcache_drop(kr_store *s, kr_topic *t);
/* A checkpoint wrote `ov` (taken over) into the view: it starts the topic's
 * cache of GET answers afresh - exactly the view's newest values of its
 * keys - when it fits the cache's budget; else it is freed. */
void kr_store_readcache_take(kr_store *s, kr_topic *t, kr_overlay *ov);

#endif
