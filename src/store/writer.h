/*
 * store/writer.h - the storage writer thread (internal to src/store).
 *
 * The loop queues jobs; the writer takes everything queued since its last
 * round, runs the jobs in order - grouping consecutive appends to one topic
 * into one pwritev, fdatasyncing each file once per round however many
 * "sync" appends it carried - and hands the whole round back to the loop
 * with one event_active (the loop's event base must have been made thread
 * aware with evthread_use_pthreads). A checkpoint is split: the writer
 * syncs its streams in queue order, then a second thread (the view thread)
 * writes it into RocksDB while appends go on. The writer never touches a socket or a
 * loop-owned structure (it reads only the immutable names of topics and
 * groups); kr_wtopic is the writer's own per-topic state. A segment it
 * starts comes back to the loop with the loop's record of it made
 * (job.h), so that the loop has nothing to allocate when a batch lands.
 */
#ifndef KR_STORE_WRITER_H
#define KR_STORE_WRITER_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/queue.h>

#include "store/block.h"
#include "store/job.h"
#include "store/store.h"

/* The writer's state of one topic. */
typedef struct kr_wtopic {
    const char *dir; /* the topic's directory (borrowed: kr_topic.dir) */
    kr_fdcache *files;
    kr_fdfile *file;  /* the active segment, read-write; NULL until created */
    int fd;           /* its descriptor while pinned (wtopic_pin), else -1 */
    unsigned fd_pins; /* nested wtopic_pin */
    uint64_t seg_base;
    uint64_t file_len;   /* bytes written successfully */
    uint64_t synced_len; /* bytes known durable */
    uint64_t next;       /* offset after the last event written */
    uint64_t max_ts;     /* of the active segment */
    bool broken;         /* a sync failed and the rewrite did too */
    bool unkept;         /* a batch written since the last good sync has no
                            copy in memory: a failed sync cannot be repaired */
    struct kr_unsynced {
        kr_block *b;
        uint64_t pos;
    } * unsynced; /* batches written since the last good sync */
    size_t n_unsynced, cap_unsynced;
    size_t unsynced_bytes; /* memory of those batches (KR_WRITER_UNSYNCED_MAX) */
    kr_index idx;          /* sparse index of the active segment */
} kr_wtopic;

typedef struct kr_writer kr_writer;

/*
 * kr_writer_start - start the thread. `on_done` runs on the loop thread with
 * the jobs of one round (in submission order); it owns them afterwards.
 * @return 0, or -1 (errno).
 */
int kr_writer_start(kr_writer **out, struct event_base *base, kr_view *view, uint64_t segment_bytes,
                    kr_metrics *m, void (*on_done)(void *arg, struct kr_job_list *jobs), void *arg);

/* Queue a job (loop thread). */
void kr_writer_submit(kr_writer *w, kr_job *j);

/*
 * kr_writer_hold, kr_writer_release - between them (loop thread, nesting
 * allowed), submitted jobs wake a sleeping writer once, at the outermost
 * release, instead of once each: the requests of one read from a socket
 * become one round. A writer already awake takes them as usual. NULL ok.
 */
void kr_writer_hold(kr_writer *w);
void kr_writer_release(kr_writer *w);

/* Finish queued jobs, deliver them, stop and join the thread. NULL ok.
 * Completions are delivered through the loop: drive it afterwards. */
void kr_writer_stop(kr_writer *w);

/* Jobs queued or running (loop thread, for shutdown). */
unsigned kr_writer_pending(kr_writer *w);

/* Writer-side topic state. For a recovered topic (recovery.c, before the
 * writer starts) file is its last segment (read-write, taken over) at its
 * good end; for a new topic it is NULL until its CREATE job runs. dir is
 * borrowed (the topic's). Descriptors are the cache's: the writer pins the
 * active file while it writes or syncs it, and leaves it marked dirty
 * while unsynced bytes remain (fdcache.h). @return NULL on ENOMEM. */
kr_wtopic *kr_wtopic_new(kr_fdcache *files, const char *dir, kr_fdfile *file, uint64_t seg_base,
                         uint64_t file_len, uint64_t next, uint64_t max_ts);
void kr_wtopic_free(kr_wtopic *w);

#endif
