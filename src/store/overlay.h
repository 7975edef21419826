/*
 * store/overlay.h - the in-memory part of a topic's latest-value view: the
 * newest event of every key written since the last checkpoint.
 *
 * GET and SCAN consult the overlay before RocksDB, which is what makes a
 * "write" ack read-your-writes. Entries do not copy events: each points into
 * a refcounted block (the buffer a PUBLISH batch was encoded into), so an
 * insert is one hash-table slot and a reference, never an allocation per
 * event (the table itself grows by doubling).
 *
 * Ownership and threads: the loop thread owns overlays and blocks and is the
 * only one to change reference counts. A checkpoint freezes an overlay (no
 * more changes) and hands it to the storage writer to read; the loop frees it
 * only when the checkpoint's completion comes back.
 */
#ifndef KR_STORE_OVERLAY_H
#define KR_STORE_OVERLAY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* A refcounted byte buffer. `data` holds a stored batch (header + payload)
 * and, after `len`, extra bytes (e.g. joined indefinite-length keys). */
typedef struct kr_block {
    uint32_t refs;    /* references, atomic (the writer thread holds some);
                         the creator holds one */
    uint32_t ov_refs; /* overlay entries pointing here (for byte accounting) */
    size_t len;       /* bytes of the stored batch */
    size_t cap;       /* bytes allocated in data */
    uint8_t data[];
} kr_block;

/* A block with room for `cap` bytes, refs = 1. @return NULL on ENOMEM. */
kr_block *kr_block_new(size_t cap);
void kr_block_ref(kr_block *b);
/* Drop a reference; the last one frees. NULL ok. */
void kr_block_unref(kr_block *b);

/* The newest event of one key. */
typedef struct kr_ov_entry {
    const uint8_t *key; /* key content bytes, inside `block` */
    uint32_t key_len;
    kr_block *block; /* holds the event; the overlay keeps a reference */
    uint32_t ev_pos; /* the event's delivered encoding: block->data[ev_pos..+ev_len) */
    uint32_t ev_len;
    uint64_t offset;
    uint64_t ts;
    bool tombstone; /* the value is null: the key is deleted */
} kr_ov_entry;

typedef struct kr_overlay kr_overlay;

/* @return a new empty overlay, or NULL on ENOMEM. */
kr_overlay *kr_overlay_new(void);

/* Free the overlay, dropping its block references. NULL ok. */
void kr_overlay_free(kr_overlay *ov);

/*
 * kr_overlay_put - make `e` the newest entry of its key (the entry is
 * copied; the overlay takes a reference on e->block and drops the one of the
 * entry it replaces). Entries must arrive in offset order per key.
 * @return 0, or -1 on ENOMEM (the overlay is unchanged).
 */
int kr_overlay_put(kr_overlay *ov, const kr_ov_entry *e);

/*
 * kr_overlay_put_older - like kr_overlay_put, but only when the key has no
 * entry yet (used to re-fold older events after a view reopen).
 * @return 1 inserted, 0 the key already had an entry, -1 on ENOMEM.
 */
int kr_overlay_put_older(kr_overlay *ov, const kr_ov_entry *e);

/* The entry of a key, or NULL. Valid until the overlay next changes. */
const kr_ov_entry *kr_overlay_get(const kr_overlay *ov, const uint8_t *key, size_t len);

/* Entries (tombstones included). */
size_t kr_overlay_count(const kr_overlay *ov);

/* Bytes of the distinct blocks entries point to (what the overlay keeps
 * alive: the sum of their `cap`), plus the table. A block is counted by the
 * overlay whose entry first raised its ov_refs from 0, so a block's entries
 * should live in one overlay at a time (one PUBLISH batch, one topic). */
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

#endif
