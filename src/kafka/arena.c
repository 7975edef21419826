/*
 * kafka/arena.c - block allocator for decoded messages (see arena.h).
 *
 * Blocks form a list, newest first; allocation bumps a pointer in the newest
 * block and opens a new block (at least KR_KAFKA_ARENA_BLOCK, or the request
 * if larger) when it does not fit. Reset frees all blocks but the oldest.
 */
#include "kafka/arena.h"

#include <stdalign.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

struct kr_kafka_arena_block {
    kr_kafka_arena_block *next; /* older block */
    size_t size;                /* bytes of data[] */
    size_t pos;                 /* bytes of data[] in use */
    alignas(max_align_t) unsigned char data[];
};

#define ALIGN ((size_t)alignof(max_align_t))

void kr_kafka_arena_init(kr_kafka_arena *a, size_t max)
{
    a->head = NULL;
    a->used = 0;
    a->max = max;
}

static kr_kafka_arena_block *block_new(size_t size)
{
    if (size > SIZE_MAX - sizeof(kr_kafka_arena_block))
        return NULL;
    kr_kafka_arena_block *b = malloc(sizeof *b + size);
    if (b == NULL)
        return NULL;
    b->next = NULL;
    b->size = size;
    b->pos = 0;
    return b;
}

void *kr_kafka_arena_alloc(kr_kafka_arena *a, size_t n)
{
    size_t need = n == 0 ? ALIGN : (n + ALIGN - 1) & ~(ALIGN - 1);
    if (need < n || need > a->max || a->used > a->max - need)
        return NULL;
    kr_kafka_arena_block *b = a->head;
    if (b == NULL || b->size - b->pos < need) {
        kr_kafka_arena_block *nb =
            block_new(need > KR_KAFKA_ARENA_BLOCK ? need : KR_KAFKA_ARENA_BLOCK);
        if (nb == NULL)
            return NULL;
        nb->next = b;
        a->head = b = nb;
    }
    void *p = b->data + b->pos;
    b->pos += need;
    a->used += need;
    memset(p, 0, n);
    return p;
}

void kr_kafka_arena_reset(kr_kafka_arena *a)
{
    kr_kafka_arena_block *b = a->head;
    if (b == NULL)
        return;
    while (b->next != NULL) {
        kr_kafka_arena_block *older = b->next;
        free(b);
        b = older;
    }
    b->pos = 0;
    a->head = b;
    a->used = 0;
}

void kr_kafka_arena_free(kr_kafka_arena *a)
{
    if (a == NULL)
        return;
    kr_kafka_arena_block *b = a->head;
    while (b != NULL) {
        kr_kafka_arena_block *older = b->next;
        free(b);
        b = older;
    }
    a->head = NULL;
    a->used = 0;
}
