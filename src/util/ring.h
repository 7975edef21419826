/*
 * util/ring.h - a growable FIFO ring of fixed-size elements: push at the
 * back, look at and pop the front, growing (doubling) when full. It knows
 * nothing of krappy; libkrappy keeps the requests awaiting replies in it.
 *
 * A ring is set up with kr_ring_init (or KR_RING_INIT) and holds no memory
 * until its first push. Not thread-safe: one owner.
 */
#ifndef KR_UTIL_RING_H
#define KR_UTIL_RING_H

#include <stddef.h>
#include <stdint.h>

typedef struct kr_ring {
    uint8_t *v;       /* cap elements */
    size_t elem;      /* bytes per element */
    size_t first_cap; /* elements of the first allocation */
    size_t head;      /* index of the front element */
    size_t len;       /* elements held */
    size_t cap;       /* elements allocated */
} kr_ring;

/* An empty ring of `type`, first allocating room for `first` of them. */
#define KR_RING_INIT(type, first)                                                                  \
    {                                                                                              \
        .elem = sizeof(type), .first_cap = (first)                                                 \
    }

/* Set up an empty ring of elements of `elem` bytes (first_cap: how many the
 * first allocation holds; at least 1). Holds no memory yet. */
void kr_ring_init(kr_ring *r, size_t elem, size_t first_cap);

/* Make room for one more element (doubling when full; the elements keep
 * their order). @return 0, or -1 on ENOMEM (the ring is unchanged). */
int kr_ring_reserve(kr_ring *r);

/* Add an element at the back; only after kr_ring_reserve succeeded.
 * @return its slot (elem bytes, uninitialised) for the caller to fill,
 *         valid until the ring next grows. */
void *kr_ring_push(kr_ring *r);

/* The front (oldest) element, or NULL when empty. Valid until the ring
 * next changes. */
void *kr_ring_front(const kr_ring *r);

/* Drop the front element; nothing when empty. */
void kr_ring_pop(kr_ring *r);

/* Elements held. */
size_t kr_ring_len(const kr_ring *r);

/* Drop every element, keeping the memory. */
void kr_ring_clear(kr_ring *r);

/* Release the memory; the ring is empty and usable again. NULL ok. */
void kr_ring_free(kr_ring *r);

#endif
