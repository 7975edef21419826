/*
 * kafka/arena.h - the memory a decoded Kafka message's arrays live in.
 *
 * A decoder allocates each array from an arena and never frees it alone; the
 * whole message goes at once with kr_kafka_arena_reset (keeping the first
 * block, so a connection that decodes one request after another allocates
 * nothing in the steady state) or kr_kafka_arena_free. The arena refuses to
 * hand out more than `max` bytes in total between resets: an array count that
 * passed the wire checks cannot make a small request take unbounded memory.
 */
#ifndef KR_KAFKA_ARENA_H
#define KR_KAFKA_ARENA_H

#include <stddef.h>

/* Bytes of the arena's first block (later ones are at least this large). */
#define KR_KAFKA_ARENA_BLOCK 4096

typedef struct kr_kafka_arena_block kr_kafka_arena_block;

typedef struct kr_kafka_arena {
    kr_kafka_arena_block *head; /* newest block first; NULL before any use */
    size_t used;                /* bytes handed out since the last reset */
    size_t max;                 /* refuse beyond this many */
} kr_kafka_arena;

/* An empty arena that hands out at most `max` bytes between resets. */
void kr_kafka_arena_init(kr_kafka_arena *a, size_t max);

/*
 * kr_kafka_arena_alloc - n zeroed bytes, aligned for any type, valid until
 * the next reset or free of the arena.
 * @return the memory; NULL when it would pass `max` or malloc fails
 *         (n 0 returns a valid pointer to no bytes).
 */
void *kr_kafka_arena_alloc(kr_kafka_arena *a, size_t n);

/* Forget everything handed out; the first block is kept for reuse. */
void kr_kafka_arena_reset(kr_kafka_arena *a);

/* Release all memory; the arena is empty (and usable) afterwards. NULL ok. */
void kr_kafka_arena_free(kr_kafka_arena *a);

#endif
