/*
 * store/block.c - refcounted batch buffers (see block.h).
 */
#include "store/block.h"

#include <stdint.h>
#include <stdlib.h>

kr_block *kr_block_new(size_t cap)
{
    if (cap > SIZE_MAX - sizeof(kr_block))
        return NULL;
    kr_block *b = malloc(sizeof(kr_block) + cap);
    if (b == NULL)
        return NULL;
    b->refs = 1;
    b->len = 0;
    b->cap = cap;
    return b;
}

/* References are taken and dropped by the loop (jobs) and by the storage
 * writer (batches not yet synced) at once: atomic counts. The last release
 * frees, so it must see every write made through other references: release
 * order on the way down, acquire before the free. */
void kr_block_ref(kr_block *b)
{
    __atomic_fetch_add(&b->refs, 1, __ATOMIC_RELAXED);
}

void kr_block_unref(kr_block *b)
{
    if (b == NULL)
        return;
    if (__atomic_sub_fetch(&b->refs, 1, __ATOMIC_ACQ_REL) == 0)
        free(b);
}
