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
    KR_JOB_CURSOR,     /* persist a group cursor, or drop a group (RocksDB, WAL on) */
    KR_JOB_LOGGED,     /* a RocksDB batch the loop built: WAL on, synced */
    KR_JOB_TOPIC_DROP  /* DELETE_TOPIC: its directory and every record of it */
} kr_job_kind;

/* One segment of a SYNC job. */
typedef struct kr_sync_seg {
    int fd;           /* the loop's read-write descriptor, borrowed: pinned
                         in the fdcache until the job is back */
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
    const char *dir; /* the topic directory (the topic's, borrowed): opened
                        for BASE.idx and its own sync */
    bool sync_dir;   /* fsync it first: a segment was created since */
    int dir_err;     /* out: errno of that fsync, or 0 */
} kr_job_sync;

/* CREATE: a new topic's directory and first segment, made durable. */
typedef struct kr_job_create {
    const char *dir;   /* DATA/topics/NAME (the topic's, borrowed) */
    kr_fdcache *files; /* the store's */
    kr_segment *seg;   /* out: the loop's record of the first segment (its
                          file read-only, opened when read; the loop takes
                          it), or NULL */
    kr_fdfile *wfile;  /* out: the first segment read-write, pinned once
                          (the loop takes it), or NULL */
    int wfd;           /* out: wfile's descriptor while that pin lasts */
} kr_job_create;

/* One topic's part of a checkpoint. */
typedef struct kr_ckpt_topic {
    kr_topic *t;
    const kr_overlay *ov;      /* frozen: read-only while the job runs */
    uint64_t next;             /* marker to write */
    uint64_t keys;             /* in: live keys before; out: after */
    struct kr_prod_ckpt *prod; /* the producers' state to write with the
                                  marker (store_producers.h), or NULL */
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
    const char *dir; /* the topic directory (the topic's, borrowed), synced
                        after the unlinks; NULL: none */
} kr_job_delete;

/* LOGGED: a batch of view records the loop built (an idempotent
 * registration; producers forgotten), written with RocksDB's WAL on and
 * synced; `done` gets the result (the store fills what it reports). */
typedef struct kr_job_logged {
    kr_view_batch *batch;         /* owned */
    struct kr_producer *producer; /* a registration's, held meanwhile */
    uint32_t epoch;               /* ... the epoch it registered */
    uint64_t seq;                 /* ... the seq it was told */
} kr_job_logged;

/* CURSOR: one group's cursor, or a Kafka group's committed offset (tg
 * NULL, koffset set: store/koffsets.c). Every cursor job of a round is one
 * WAL-on RocksDB write, fsync'd when any of them asks (--fsync-cursors). */
typedef struct kr_job_cursor {
    kr_tgroup *tg;     /* the loop's; groups live as long as their topic */
    const char *group; /* tg's name, immutable: the writer reads only this
                          (a Kafka group's: in koffset's memory) */
    size_t group_len;
    uint64_t cursor, origin;
    bool sync;
    uint8_t *koffset;   /* a Kafka offset record: the group name, then the
                           value at koffset + group_len (malloc'd, the job's) */
    size_t koffset_len; /* of the value */
    bool drop;          /* GROUP_DELETE: remove the record instead */
} kr_job_cursor;

/* TOPIC_DROP: how far the deletion got (topic_admin.c). */
typedef enum kr_drop_stage {
    KR_DROP_NOTHING = 0, /* nothing happened: the topic is whole */
    KR_DROP_FILES,       /* its directory is gone; records may be left in the view */
    KR_DROP_ALL          /* gone, records included */
} kr_drop_stage;

typedef struct kr_job_topic_drop {
    const char *dir;     /* DATA/topics/NAME (the topic's, borrowed) */
    kr_drop_stage stage; /* out */
} kr_job_topic_drop;

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
        kr_job_logged logged;
        kr_job_topic_drop drop;
    };
};

TAILQ_HEAD(kr_job_list, kr_job);

/*
 * kr_job_new - a zeroed job of `kind` for topic t (NULL for none).
 * @return the job (the caller's until submitted), or NULL on ENOMEM.
 */
kr_job *kr_job_new(kr_job_kind kind, kr_topic *t);

/* Free a job and what its kind owns (sync parts and their hints, a new
 * topic's files not taken, checkpoint parts and their producers' state,
 * paths, a view batch, message). NULL ok. */
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
