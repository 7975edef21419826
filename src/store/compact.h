/*
 * store/compact.h - log compaction (PROTOCOL.md section 9, cleanup
 * "compact"): closed segments of a compacted topic rewritten without the
 * events that are no longer their key's latest, on a thread of its own -
 * off the loop and off the storage writer's append path - at a throttled
 * rate (--compact-rate).
 *
 * The keep rule. The latest-value view knows each key's latest offset, so
 * no offset map is built (Kafka's cleaner builds one every pass). Only
 * segments wholly below the view's durable marker are rewritten: for their
 * events the view as of any later moment is at least as new, so
 *   - an event without a key is kept (it is streamed, not compacted:
 *     retention removes it, on a "compact,delete" topic);
 *   - an event whose key the view holds is kept iff the view's latest
 *     offset of the key is its own;
 *   - an event whose key the view does not hold (its latest event is a
 *     tombstone) is removed - unless it is a tombstone whose ts is younger
 *     than delete_retention_ms, so that readers replaying the topic see
 *     the deletion for that long.
 * A later overwrite only makes more events removable, never fewer, so a
 * decision taken against an older view is never wrong; it may keep an
 * event a newer view would remove (the next pass removes it).
 *
 * The rewrite. The segments of a group (one, or adjacent small ones merged
 * into the first) are read batch by batch, CRC-checked, a few MiB at a
 * time: the distinct keys of those batches are looked up together, each
 * once (kr_compact_lookup), then their kept events go to
 * DATA/topics/T/BASE.compact in batches of consecutive offsets (a batch
 * kept whole is copied as it is, headers included), under a segment header
 * flagged KR_SEG_F_COMPACTED. The new file is fdatasync'd, the old BASE.idx
 * removed, the file renamed over BASE.seg and the directory fsync'd - the
 * atomic point - then the merged segments' files deleted (directory
 * fsync'd again) and the new BASE.idx written. A kill -9 or power cut
 * leaves the old segment or the new one: start-up removes *.compact files,
 * and segments that a merged segment already covers (segment.h, recovery).
 * FETCHes in flight keep reading the old file through their descriptors.
 *
 * Out of the loop's way. A kernel without preemption does not take a
 * thread off its core inside a syscall, idle priority or not, so every
 * read and write is short (16 KiB; the read-ahead is the rewrite's own, a
 * 256 KiB hint at a time); and between batches and every 64 lookups the
 * thread steps aside (kr_sched_step_aside) for a thread queued behind it.
 *
 * The loop then swaps its segment records (compaction never moves a
 * topic's `first`; FETCH, POLL and GET work across the gaps: store_read.c,
 * store_group.c). Retention leaves a segment being rewritten alone.
 *
 * On a cluster each node compacts on its own, unlike retention (store.h,
 * kr_store_retention_led): every node's view holds the same latest offset
 * of every key (the same commands applied in the same order), so the keep
 * rule removes only events every node agrees are superseded, never moves
 * an offset or `first`, and keeps every key's latest event. What differs
 * is only when: each node's passes run on its own schedule, and
 * tombstones expire by its own clock - which superseded events a FETCH
 * still meets is not something a reader can rely on, on one node either.
 */
#ifndef KR_STORE_COMPACT_H
#define KR_STORE_COMPACT_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "store/index.h"
#include "store/store.h"

/*
 * Compaction yields to a busy server. Idle CPU priority is not enough:
 * a rewrite that runs in the gaps of a heavy ingest (its threads waiting
 * on each other, the client on the same cores) still streams MiBs through
 * the caches the ingest works in, and costs it a third of its rate. While
 * the server takes in more than KR_COMPACT_BUSY_BPS, a rewrite works in
 * slices of KR_COMPACT_BUSY_WORK_MS with KR_COMPACT_BUSY_REST_MS of rest
 * after each (a tenth of its time), and goes back to --compact-rate once
 * the ingest calms down. A rate it did not use is not made up for later.
 */
#define KR_COMPACT_BUSY_BPS     (8u << 20)
#define KR_COMPACT_BUSY_WORK_MS 10
#define KR_COMPACT_BUSY_REST_MS 90

/* Bytes of batches read before their keys are looked up together: a key
 * that occurs again within them is looked up once. The compaction thread
 * holds this much (and one batch more), plus ~40 bytes an event. */
#define KR_COMPACT_CHUNK_BYTES (16u << 20)

/* The suffix of a rewrite's output before its rename. */
#define KR_COMPACT_TEMP_SUFFIX ".compact"
/* A pass starts once the closed segments not compacted since the last pass
 * hold at least this share (percent) of the closed segments' bytes
 * (Kafka's min.cleanable.dirty.ratio, 0.5). */
#define KR_COMPACT_DIRTY_PCT 50

/* 1 when a directory entry is a rewrite's unfinished output. */
bool kr_compact_is_temp(const char *name);

/* An event's facts for the keep rule. */
typedef struct kr_keep_in {
    bool has_key;
    bool tombstone;
    uint64_t offset, ts;
    int found;       /* the view holds the key: 1, or not: 0 */
    uint64_t latest; /* with found: the key's latest offset */
} kr_keep_in;

/* The keep rule above. @return true to keep the event. */
bool kr_compact_keep(const kr_keep_in *e, uint64_t now_ms, uint64_t delete_retention_ms);

/* A key a rewrite asks the view about, and the answer. */
typedef struct kr_compact_key {
    const uint8_t *key; /* its content */
    size_t klen;
    int found;       /* out: the view holds the key: 1, or not: 0 */
    uint64_t latest; /* out: with found, the key's latest offset */
} kr_compact_key;

/*
 * The view's latest offsets of n distinct keys (a chunk of batches' keys,
 * each once however often it occurs, in ascending byte order - shorter
 * first where one is the other's prefix, as RocksDB orders them - asked at
 * most 64 at a time with a step aside for other threads between calls):
 * fills each one's found and latest.
 * @return 0, or -1 with err filled.
 */
typedef int (*kr_compact_lookup)(void *arg, kr_compact_key *keys, size_t n, char *err,
                                 size_t errlen);

/*
 * The memory a rewrite works in (its chunk of batches, their events and
 * keys, the kept bytes on their way out), kept from one rewrite to the
 * next by the compaction thread: grown in the first rewrite, then reused.
 * A rewrite that had to map, fault in and unmap tens of MiB every time
 * took the loop's core for each page (a fault zeroes it, an unmap flushes
 * the TLBs of every core the process runs on), and every produce->consume
 * event meanwhile was late.
 */
typedef struct kr_rewrite_mem kr_rewrite_mem;

kr_rewrite_mem *kr_rewrite_mem_new(void);
void kr_rewrite_mem_free(kr_rewrite_mem *m); /* NULL ok */

/* One rewrite: the segments bases[0..n) of the directory dirfd, merged
 * into bases[0]. Everything it reads and writes is its own: it never
 * touches the loop's structures. */
typedef struct kr_rewrite {
    int dirfd;             /* the topic's directory (borrowed) */
    const uint64_t *bases; /* ascending; all closed */
    size_t n;
    uint64_t end; /* the offset after the last one they cover */
    uint64_t now_ms, delete_retention_ms;
    kr_compact_lookup lookup;
    void *lookup_arg;
    uint64_t rate;           /* bytes/s read and written at most; 0: no limit */
    size_t chunk_bytes;      /* bytes of batches whose keys are looked up
                                together; 0: KR_COMPACT_CHUNK_BYTES */
    const atomic_bool *stop; /* set: give up (nothing changed), NULL: never */
    kr_rewrite_mem *mem;     /* its memory (borrowed); NULL: its own, freed at its end */
    /* The bytes the server has taken in so far (a counter any thread may
     * read): while they grow faster than KR_COMPACT_BUSY_BPS the rewrite
     * works KR_COMPACT_BUSY_WORK_MS, then rests KR_COMPACT_BUSY_REST_MS,
     * and so on. NULL: never. */
    const struct kr_metric *busy_bytes;
    struct {                          /* the pacing's state (the rewrite's own) */
        uint64_t due_ns, moved;       /* the rate: when the bytes moved so far are due */
        uint64_t sampled_ns, sampled; /* busy_bytes when last read, and when */
        uint64_t slice_ns;            /* the current work slice's start, while busy */
        bool busy;
    } pace;
    /* out */
    uint64_t bytes_in; /* the segments' bytes before */
    uint64_t size;     /* the new segment's bytes */
    uint64_t max_ts;   /* its largest event ts */
    uint64_t events_in, events_kept;
    uint64_t rests; /* times it rested for a busy server */
    kr_index idx;   /* its hints (the caller's to free) */
    char err[256];  /* why it failed */
} kr_rewrite;

/*
 * kr_compact_rewrite - do one rewrite, on disk, as described above.
 * @return 0 when the new segment replaced the old ones; 1 when there was
 *         nothing to gain (a single segment from which nothing would go:
 *         left as it is); -1 when it failed or was stopped (err says why;
 *         the old segments are as they were).
 */
int kr_compact_rewrite(kr_rewrite *rw);

/* ---- the store's compaction: a thread, one rewrite at a time ---- */

/* What STATS, the metrics and the admin API show of a topic's compaction. */
typedef struct kr_compact_stats {
    uint64_t dirty_bytes;        /* closed segments' bytes not compacted since the last pass */
    uint64_t reclaimed_bytes;    /* since the start */
    uint64_t segments_rewritten; /* since the start */
    uint64_t events_removed;     /* since the start */
    uint64_t ns;                 /* time spent rewriting, since the start */
} kr_compact_stats;

/* Start and stop the compaction thread (kr_store_open, kr_store_close:
 * stop waits for the rewrite in flight to give up or finish, before the
 * topics and the view go). @return 0, or -1 with errno. */
int kr_compact_start(kr_store *s);
void kr_compact_stop(kr_store *s);

/* Look at t now (its settings changed, a segment closed): a rewrite may
 * start. Also runs from the store's tick for every topic. */
void kr_compact_poke(kr_store *s, kr_topic *t);

/* 1 while a rewrite is in flight (the loop has not had it back yet). */
bool kr_compact_busy(const kr_store *s);

/* t's figures (zeros before its first pass). */
void kr_compact_topic_stats(const kr_topic *t, kr_compact_stats *out);

/* Refresh t's compaction gauges before a scrape. */
void kr_compact_topic_metrics(kr_topic *t);

/* t goes (freed, or deleted): its compaction state with it, or, while a
 * rewrite of it runs, once that is back. */
void kr_compact_topic_free(kr_topic *t);

#endif
