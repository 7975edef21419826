/*
 * store/job.h - the jobs the loop hands the storage writer (internal to
 * src/store): what each kind carries in, what the writer fills out, and
 * how a job fails.
 *
 * A job is a tagged union: the fields every kind has (topic, completion,
 * result), then one struct per kind. The loop allocates a job
 * (kr_job_new), fills its kind's part and submits it (writer.h); the
 * writer runs it and hands it back; the loop completes and frees it
 * (kr_job_free). A job is touched by one thread at a time: the writer's
 * queue hands it over under a mutex.
 */
#ifndef KR_STORE_JOB_H
#define KR_STORE_JOB_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/queue.h>

#include "krappy/protocol.h"
#include "store/index.h"
#include "store/overlay.h"
#include "store/store.h"

typedef enum kr_job_kind {
    KR_JOB_CREATE,     /* create a topic's directory and first segment */
    KR_JOB_SYNC,       /* make a topic's unsynced segments durable */
    KR_JOB_CHECKPOINT, /* write frozen overlays + markers into the view */
    KR_JOB_DELETE,     /* unlink retired segment files */
    KR_JOB_CURSOR      /* persist a group cursor (RocksDB, WAL on) */
} kr_job_kind;

/* One segment of a SYNC job. */
typedef struct kr_sync_seg {
    int fd;           /* the loop's read-write fd, borrowed: the loop keeps
                         it open until the job is back */
    uint64_t base;    /* the segment */
    uint64_t bytes;   /* written up to here (a batch end) ... */
    uint64_t next;    /* ... offsets below this */
    uint32_t hdr_len; /* KR_SEG_HEADER_V2_BYTES: write its sync record */
    bool final;       /* closed: synced in full, then BASE.idx left behind */
    kr_index idx;     /* final: the hints for BASE.idx (the job's) */
    kr_index_meta im;
    int err; /* out: errno of the fdatasync that failed, or 0 */
} kr_sync_seg;

/* SYNC: the segments of one topic written since their last sync, oldest
 * first (a closed segment is always synced before a later one counts). */
typedef struct kr_job_sync {
    kr_sync_seg *segs; /* malloc'd, n of them */
    size_t n;
    int dirfd;     /* the topic directory, borrowed (BASE.idx goes there) */
    bool sync_dir; /* fsync it first: a segment was created since */
    int dir_err;   /* out: errno of that fsync, or 0 */
} kr_job_sync;

/* CREATE: a new topic's directory and first segment, made durable. */
typedef struct kr_job_create {
    const char *dir; /* DATA/topics/NAME (the topic's, borrowed) */
    kr_segment *seg; /* out: the loop's record of the first segment (its
                        read fd open; the loop takes it), or NULL */
    int dirfd;       /* out: the topic directory (the loop takes it), -1 */
    int wfd;         /* out: the first segment read-write (the loop takes
                        it), -1 */
} kr_job_create;

/* One topic's part of a checkpoint. */
typedef struct kr_ckpt_topic {
    kr_topic *t;
    const kr_overlay *ov; /* frozen: read-only while the job runs */
    uint64_t next;        /* marker to write */
    uint64_t keys;        /* in: live keys before; out: after */
} kr_ckpt_topic;

/* CHECKPOINT: the frozen overlays of some topics. The loop submits it once
 * every stream it covers is durable up to its marker (append.h). */
typedef struct kr_job_checkpoint {
    kr_ckpt_topic *ck; /* malloc'd, n of them */
    size_t n;
    kr_overlay **dispose; /* malloc'd: overlays to free on the view thread,
                             n_dispose of them (the loop's no more) */
    size_t n_dispose;
    size_t waits;  /* topics whose stream the loop still waits to see synced */
    bool deferred; /* handed to the view thread */
    bool reopen;   /* out: RocksDB refused it; reopen the view */
} kr_job_checkpoint;

/* DELETE: files of retired segments. */
typedef struct kr_job_delete {
    char **paths; /* malloc'd, each malloc'd */
    size_t n;
    int dirfd; /* borrowed: synced after the unlinks (-1: none) */
} kr_job_delete;

/* CURSOR: one group's cursor. Every cursor job of a round is one WAL-on
 * RocksDB write, fsync'd when any of them asks (--fsync-cursors). */
typedef struct kr_job_cursor {
    kr_tgroup *tg;     /* the loop's; groups live as long as their topic */
    const char *group; /* tg's name, immutable: the writer reads only this */
    size_t group_len;
    uint64_t cursor, origin;
    bool sync;
} kr_job_cursor;

struct kr_job {
    kr_job_kind kind;
    kr_topic *t;
    kr_store_done done; /* NULL: nobody waits */
    void *arg;
    krappy_err err; /* KRAPPY_OK, or KRAPPY_E_STORAGE after kr_job_fail */
    char *msg;      /* with err: the sentence (malloc'd), NULL when even
                       that allocation failed: read it with kr_job_msg */
    TAILQ_ENTRY(kr_job) link;
    union {
        kr_job_sync sync;
        kr_job_create create;
        kr_job_checkpoint checkpoint;
        kr_job_delete del;
        kr_job_cursor cursor;
    };
};

TAILQ_HEAD(kr_job_list, kr_job);

/*
 * kr_job_new - a zeroed job of `kind` for topic t (NULL for none).
 * @return the job (the caller's until submitted), or NULL on ENOMEM.
 */
kr_job *kr_job_new(kr_job_kind kind, kr_topic *t);

/* Free a job and what its kind owns (sync parts and their hints, a new
 * topic's files not taken, checkpoint parts, paths, message). NULL ok. */
void kr_job_free(kr_job *j);

/*
 * kr_job_fail - mark a job failed (KRAPPY_E_STORAGE) with a sentence: the
 * formatted text, then, when `err` is an errno value (not 0), a colon and
 * what it means with advice where there is some ("the disk is full; free
 * space and retry"). A job failed twice keeps the newer sentence.
 */
void kr_job_fail(kr_job *j, int err, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

/* The failure sentence of a failed job ("" while it has not failed). */
const char *kr_job_msg(const kr_job *j);

/* A sentence fragment for an errno value: what it means, with advice for
 * the usual storage failures. Static storage. */
const char *kr_errno_advice(int err);

#endif
