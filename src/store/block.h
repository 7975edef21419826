/*
 * store/block.h - one stored batch in memory: a refcounted byte buffer (the
 * start-up replay reads each batch back into one; references may be taken
 * and dropped from any thread).
 */
#ifndef KR_STORE_BLOCK_H
#define KR_STORE_BLOCK_H

#include <stddef.h>
#include <stdint.h>

/* The batch (header + payload, segment.h) in data[0..len) and, after
 * `len`, extra bytes of the loop's (e.g. joined indefinite-length keys). */
typedef struct kr_block {
    uint32_t refs; /* references, atomic; the creator holds one */
    size_t len;    /* bytes of the stored batch */
    size_t cap;    /* bytes allocated in data */
    uint8_t data[];
} kr_block;

/* A block with room for `cap` bytes, len 0, refs 1.
 * @return the block (the caller holds its one reference), or NULL on
 *         ENOMEM or a cap too large to allocate. */
kr_block *kr_block_new(size_t cap);

/* Take one more reference (any thread). */
void kr_block_ref(kr_block *b);

/* Drop a reference (any thread); the last one frees. NULL ok. */
void kr_block_unref(kr_block *b);

#endif
