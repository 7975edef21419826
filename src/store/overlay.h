/*
 * store/overlay.h - the in-memory part of a topic's latest-value view: the
 * newest event of every key written since the last checkpoint.
 *
 * GET and SCAN consult the overlay before RocksDB, which is what makes a
 * "write" ack read-your-writes. The overlay keeps its own copy of each key's
 * newest event, so its memory follows the number of distinct keys since the
 * last checkpoint, not the number of events: a key written a thousand times
 * costs one record, and the PUBLISH batch an event came from can be freed
 * as soon as the batch is on disk (an earlier design pointed entries into
 * the batch buffers, which kept every buffer holding one newest event alive
 * - in practice all of them - until the checkpoint).
 *
 * Records are carved from per-overlay chunks (no allocation per event) and
 * a newer event of the same key is copied over the record when it fits,
 * which is the usual case (events of one key tend to keep their size); a
 * record that does not fit is left behind and counted until the overlay is
 * freed. The table is an array of 16-byte slots (hash, record).
 *
 * Ownership and threads: the loop thread owns overlays. A checkpoint freezes
 * an overlay (no more changes) and hands it to the storage writer to read;
 * the loop frees it only when the checkpoint's completion comes back.
 */
#ifndef KR_STORE_OVERLAY_H
#define KR_STORE_OVERLAY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "util/sched.h"

/* The newest event of one key. Given to kr_overlay_put, key and event may
 * point anywhere (the overlay copies them); returned by the overlay, they
 * point into the overlay's own record. */
typedef struct kr_ov_entry {
    const uint8_t *key;   /* key content bytes */
    const uint8_t *event; /* the event's delivered encoding */
    uint32_t key_len;
    uint32_t ev_len;
    uint64_t offset;
    uint64_t ts;
    bool tombstone; /* the value is null: the key is deleted */
} kr_ov_entry;

typedef struct kr_overlay kr_overlay;

/* @return a new empty overlay, or NULL on ENOMEM. */
kr_overlay *kr_overlay_new(void);

/* A new empty overlay whose table holds `keys` keys before it grows (an
 * overlay that takes over from one that held as many: no rehash as it
 * fills). @return NULL on ENOMEM. */
kr_overlay *kr_overlay_new_sized(size_t keys);

/* Give back to the system the memory freed overlays left for later ones
 * (at most 16 MiB, process-wide; overlay.c). */
void kr_overlay_pool_release(void);

/* What that pool holds now: its tables (the largest's slots) and bytes. */
typedef struct kr_ov_pool_stats {
    size_t tables;
    size_t largest_slots;
    size_t bytes; /* tables and chunks */
} kr_ov_pool_stats;

void kr_overlay_pool_stats(kr_ov_pool_stats *st);

/* Free the overlay and every record. NULL ok. */
void kr_overlay_free(kr_overlay *ov);

/*
 * kr_overlay_put - make `e` the newest entry of its key: the entry, its
 * event bytes and (when it is not inside the event) its key are copied;
 * nothing of `e` is kept. Entries must arrive in offset order per key.
 * @return 0, or -1 on ENOMEM (the overlay is unchanged).
 */
int kr_overlay_put(kr_overlay *ov, const kr_ov_entry *e);

/*
 * A batch of puts goes faster with its keys' memory asked for ahead: the
 * table and the records are far larger than the caches, and a put's probe
 * otherwise waits on two misses (its slot, then the record it compares).
 * kr_overlay_hash is the key's hash in this overlay (valid while it lives,
 * whatever it grows to); kr_overlay_prefetch asks for the hash's slot
 * (`record` false), or - some puts later, once the slot is there - for the
 * record it holds (`record` true); kr_overlay_put_hashed is kr_overlay_put
 * given the hash. Prefetches are hints: nothing is read that must be valid.
 */
uint64_t kr_overlay_hash(const kr_overlay *ov, const uint8_t *key, size_t len);
void kr_overlay_prefetch(const kr_overlay *ov, uint64_t hash, bool record);
int kr_overlay_put_hashed(kr_overlay *ov, const kr_ov_entry *e, uint64_t hash);

/*
 * kr_overlay_put_older - like kr_overlay_put, but only when the key has no
 * entry yet (used to re-fold older events after a view reopen).
 * @return 1 inserted, 0 the key already had an entry, -1 on ENOMEM.
 */
int kr_overlay_put_older(kr_overlay *ov, const kr_ov_entry *e);

/* The entry of a key, or NULL. It and the bytes it points to are valid
 * until the overlay next changes. */
const kr_ov_entry *kr_overlay_get(const kr_overlay *ov, const uint8_t *key, size_t len);

/* Entries (tombstones included). */
size_t kr_overlay_count(const kr_overlay *ov);

/* Memory the overlay holds: its record chunks (records replaced by larger
 * ones included), its table and itself. */
size_t kr_overlay_bytes(const kr_overlay *ov);

/* Highest offset in the overlay + 1, or 0 when empty. */
uint64_t kr_overlay_next(const kr_overlay *ov);

/* Call fn for every entry, in no particular order. Stops when fn returns
 * non-zero and returns that value; 0 after all entries. */
int kr_overlay_foreach(const kr_overlay *ov, int (*fn)(void *arg, const kr_ov_entry *e), void *arg);

/*
 * kr_overlay_sorted - the entries whose key starts with `prefix` and sorts
 * after `after` (when has_after), in unsigned bytewise key order, at most
 * `limit` of them, into out (caller's array of `limit` pointers).
 * @return how many were written.
 */
size_t kr_overlay_sorted(const kr_overlay *ov, const uint8_t *prefix, size_t prefix_len,
                         bool has_after, const uint8_t *after, size_t after_len, size_t limit,
                         const kr_ov_entry **out);

/*
 * The memory kr_overlay_sort_all sorts in (32 bytes per entry), kept by a
 * caller that sorts often - the view thread sorts an overlay per checkpoint
 * - so that, once grown to the largest overlay it sorted, sorting maps,
 * faults in and unmaps nothing. Zeroed ({0}) it is empty; the caller gives
 * it back with kr_ov_sortmem_release.
 */
typedef struct kr_ov_sortmem {
    void *mem;
    size_t cap; /* entries it has room for */
} kr_ov_sortmem;

/* Bytes m holds. */
size_t kr_ov_sortmem_bytes(const kr_ov_sortmem *m);

/* Free m's memory; m stays usable (empty). NULL ok. */
void kr_ov_sortmem_release(kr_ov_sortmem *m);

/*
 * kr_overlay_sort_all - every entry, in unsigned bytewise key order, in m's
 * memory (grown first when too small for kr_overlay_count() entries). A
 * checkpoint writes keys in this order: a table file needs it, and
 * RocksDB's lookups are cheaper in key order than in hash order.
 * @return 0 with *sorted the kr_overlay_count() entries (inside m: valid
 *         until m is used again or released), or -1 on ENOMEM (m as it was).
 * Paces itself with p (kr_sched_pace) unless it is NULL: a checkpoint's
 * sort of a hundred thousand keys is milliseconds of CPU.
 */
int kr_overlay_sort_all(const kr_overlay *ov, kr_ov_sortmem *m, const kr_ov_entry ***sorted,
                        kr_sched_pacer *p);

#endif
