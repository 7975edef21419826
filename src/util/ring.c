/*
 * util/ring.c - growable FIFO rings (see ring.h).
 */
#include "util/ring.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

void kr_ring_init(kr_ring *r, size_t elem, size_t first_cap)
{
    memset(r, 0, sizeof *r);
    r->elem = elem;
    r->first_cap = first_cap;
}

int kr_ring_reserve(kr_ring *r)
{
    if (r->len < r->cap)
        return 0;
    size_t ncap = r->cap ? r->cap * 2 : (r->first_cap ? r->first_cap : 1);
    if (ncap < r->cap || ncap > SIZE_MAX / r->elem)
        return -1;
    uint8_t *v = malloc(ncap * r->elem);
    if (v == NULL)
        return -1;
    /* Unwrap: the front goes to index 0. */
    size_t tail = r->cap - r->head < r->len ? r->cap - r->head : r->len;
    if (tail > 0)
        memcpy(v, r->v + r->head * r->elem, tail * r->elem);
    if (r->len > tail)
        memcpy(v + tail * r->elem, r->v, (r->len - tail) * r->elem);
    free(r->v);
    r->v = v;
    r->cap = ncap;
    r->head = 0;
    return 0;
}

void *kr_ring_push(kr_ring *r)
{
    void *slot = r->v + ((r->head + r->len) % r->cap) * r->elem;
    r->len++;
    return slot;
}

void *kr_ring_front(const kr_ring *r)
{
    return r->len > 0 ? r->v + r->head * r->elem : NULL;
}

void kr_ring_pop(kr_ring *r)
{
    if (r->len == 0)
        return;
    r->head = (r->head + 1) % r->cap;
    r->len--;
}

size_t kr_ring_len(const kr_ring *r)
{
    return r->len;
}

void kr_ring_clear(kr_ring *r)
{
    r->head = r->len = 0;
}

void kr_ring_free(kr_ring *r)
{
    if (r == NULL)
        return;
    free(r->v);
    r->v = NULL;
    r->head = r->len = r->cap = 0;
}
