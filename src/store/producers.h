/*
 * store/producers.h - idempotent producers' state (PROTOCOL.md section 7):
 * the rules that tell a new PUBLISH from a repeat, and the tables that
 * remember what they need. Pure logic: no I/O, no RocksDB, no threads (the
 * loop thread owns everything here), so the rules are tested on their own
 * (tests/test_producers.c).
 *
 * Per (topic, producer id) a kr_producer keeps: the topic's number for the
 * id (`pid`, never reused in the topic: it goes into batch headers, see
 * segment.h), the epoch of its newest registration, the sequence number it
 * must send next, and the (seq, count, first offset) of its last
 * KR_PRODUCER_WINDOW accepted PUBLISHes - accepted meaning queued for the
 * stream: a batch still being written is remembered too, marked in flight.
 *
 * The rules (kr_producer_check), for a PUBLISH of `count` events numbered
 * from `seq`, sent through a registration of epoch `epoch`:
 *   - epoch is not the producer's newest: FENCED (a newer registration
 *     took over);
 *   - seq is the one expected: ACCEPT (the caller queues the batch, then
 *     records it with kr_producer_accept);
 *   - seq and count are those of a remembered PUBLISH: DUPLICATE with its
 *     first offset, or IN_FLIGHT when it is still being written (the
 *     caller waits for it: kr_producer_wait);
 *   - anything else: OUT_OF_ORDER, with the sequence number expected.
 * A batch that lands is recorded with kr_producer_stored; one whose write
 * failed with kr_producer_failed, which hands its sequence numbers back
 * (and those of the producer's later batches, which fail with it: the
 * storage writer fails every append queued behind a failed one).
 *
 * What is durable is what has landed: kr_producer_stored_state gives the
 * sequence number after the last batch that landed and the landed part of
 * the window - what a checkpoint writes, and what replaying the stream
 * (kr_producer_replay) rebuilds.
 *
 * Tables. A kr_prod_table holds one topic's producers, found by id or by
 * pid. A kr_prod_set ties the tables of a store together: it counts every
 * producer, orders them by last activity (a registration or an accepted
 * PUBLISH), and kr_prod_set_trim forgets the least recently active ones -
 * those idle past the keep time (7 days), and beyond the limit on their
 * number. A producer is never forgotten while it is busy: registered on a
 * live connection (kr_producer_hold), with a batch in flight, or with a
 * repeat waiting.
 */
#ifndef KR_STORE_PRODUCERS_H
#define KR_STORE_PRODUCERS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/queue.h>

/* PUBLISHes remembered per producer (Kafka keeps 5 per partition: what a
 * producer with 5 requests in flight needs to retry them all). */
#define KR_PRODUCER_WINDOW 5
/* State is kept this long after a producer's last activity (section 7:
 * at least 7 days after its last PUBLISH). */
#define KR_PRODUCER_KEEP_MS (7ull * 24 * 3600 * 1000)
/* Producers kept, all topics together, by default (--max-producers). */
#define KR_DEFAULT_MAX_PRODUCERS 100000

typedef struct kr_prod_table kr_prod_table;
typedef struct kr_prod_set kr_prod_set;

/* One remembered PUBLISH. */
typedef struct kr_prod_batch {
    uint64_t seq;   /* sequence number of its first event */
    uint64_t first; /* offset of its first event */
    uint32_t count; /* events */
    bool stored;    /* false while its batch is being written */
    bool synced;    /* its PUBLISH asked for ack "sync": on stable storage
                       once stored */
} kr_prod_batch;

/* A repeat of a PUBLISH in flight, waiting for it to land or fail: the
 * caller's memory (usually inside a struct of its own), linked into the
 * producer by kr_producer_wait until fn is called. */
typedef struct kr_prod_wait {
    uint64_t seq; /* the PUBLISH waited for */
    /* Called once: ok, with the batch's first offset and count; or !ok
     * when its write failed (nothing of it was stored). w is unlinked by
     * then: fn may free it. */
    void (*fn)(struct kr_prod_wait *w, bool ok, uint64_t first, uint32_t count);
    struct kr_prod_wait *next;
} kr_prod_wait;

typedef struct kr_producer {
    kr_prod_table *table;
    uint64_t pid;                          /* the topic's number for the id (from 1) */
    uint32_t epoch;                        /* of the newest registration (0: none yet) */
    uint64_t next_seq;                     /* expected next: after every accepted PUBLISH */
    uint64_t stored_next;                  /* after the last PUBLISH whose batch landed */
    uint64_t last_ms;                      /* last activity, ms since the Unix epoch */
    kr_prod_batch win[KR_PRODUCER_WINDOW]; /* a ring: win[(head + i) % N],
                                              i < n_win, oldest first */
    uint8_t head, n_win;
    bool dirty;                   /* stored state changed since it was taken */
    uint32_t in_flight;           /* accepted, not yet landed or failed */
    uint32_t holds;               /* live registrations (kr_producer_hold) */
    kr_prod_wait *waits;          /* repeats waiting for batches in flight */
    TAILQ_ENTRY(kr_producer) lru; /* the set's order, least recent first */
    TAILQ_ENTRY(kr_producer) dirty_link;
    size_t id_len;
    uint8_t id[]; /* id_len bytes (not NUL-terminated) */
} kr_producer;

TAILQ_HEAD(kr_producer_list, kr_producer);

/* ---- the rules ---- */

typedef enum kr_prod_verdict {
    KR_PROD_ACCEPT = 0,   /* the sequence number expected: store it */
    KR_PROD_DUPLICATE,    /* a repeat of a stored PUBLISH: *first */
    KR_PROD_IN_FLIGHT,    /* a repeat of a PUBLISH still being written */
    KR_PROD_OUT_OF_ORDER, /* anything else: *expected */
    KR_PROD_FENCED        /* not the producer's newest epoch */
} kr_prod_verdict;

/*
 * kr_producer_check - judge a PUBLISH (see above); changes nothing.
 * @param hit       DUPLICATE, IN_FLIGHT: the original (valid until the
 *                  producer next changes)
 * @param expected  the sequence number expected (next_seq)
 * Either pointer may be NULL. A count that would take the sequence number
 * past UINT64_MAX is OUT_OF_ORDER.
 */
kr_prod_verdict kr_producer_check(const kr_producer *p, uint32_t epoch, uint64_t seq,
                                  uint64_t count, const kr_prod_batch **hit, uint64_t *expected);

/* Record an accepted PUBLISH (its batch is queued with offsets from
 * `first`; `sync`: it asked for ack "sync"): the window remembers it in
 * flight, next_seq moves past it. */
void kr_producer_accept(kr_producer *p, uint64_t seq, uint32_t count, uint64_t first, bool sync,
                        uint64_t now_ms);

/* The batch of an accepted PUBLISH landed: remembered as stored, the
 * stored state moves past it, repeats waiting for it are answered. */
void kr_producer_stored(kr_producer *p, uint64_t seq, uint32_t count, uint64_t first);

/* The batch of an accepted PUBLISH failed (nothing stored): expected goes
 * back to `seq`, the window forgets it and what came after it, repeats
 * waiting for it are answered !ok. */
void kr_producer_failed(kr_producer *p, uint64_t seq);

/* Make a repeat wait for the PUBLISH w->seq in flight (after IN_FLIGHT):
 * w->fn runs when that batch lands or fails. */
void kr_producer_wait(kr_producer *p, kr_prod_wait *w);

/* A live registration holds the producer (it is not forgotten until every
 * hold is released). */
void kr_producer_hold(kr_producer *p);
void kr_producer_release(kr_producer *p);

/* A new registration: the epoch grows (older registrations are fenced). */
void kr_producer_register(kr_producer *p, uint64_t now_ms);

/*
 * What is durable: the sequence number after the last stored PUBLISH and
 * the stored part of the window, oldest first, into out (room for
 * KR_PRODUCER_WINDOW). @return how many.
 */
size_t kr_producer_stored_state(const kr_producer *p, uint64_t *stored_next, kr_prod_batch *out);

/* Restore the durable state (a checkpoint's): batches oldest first, at
 * most KR_PRODUCER_WINDOW (older ones beyond that are dropped), and the
 * last activity (kr_prod_set_sort puts the set in order again). */
void kr_producer_restore(kr_producer *p, uint64_t stored_next, const kr_prod_batch *b, size_t n,
                         uint64_t last_ms);

/* Replaying the stream: a batch of this producer found in it, stored. */
void kr_producer_replay(kr_producer *p, uint64_t seq, uint32_t count, uint64_t first,
                        uint64_t now_ms);

/* ---- tables and the set ---- */

/* A set with a limit on producers (0: no limit) and a keep time in ms.
 * @return NULL on ENOMEM. */
kr_prod_set *kr_prod_set_new(size_t max, uint64_t keep_ms);
/* Free it. Its tables must have been freed first. NULL ok. */
void kr_prod_set_free(kr_prod_set *set);
/* Producers in every table of the set. */
size_t kr_prod_set_count(const kr_prod_set *set);

/* A topic's table in the set; `owner` is the caller's (the topic).
 * @return NULL on ENOMEM. */
kr_prod_table *kr_prod_table_new(kr_prod_set *set, void *owner);
/* Free a table and its producers. Repeats still waiting are dropped
 * without being called (a store frees its tables only once every append
 * has completed, when none can be left). NULL ok. */
void kr_prod_table_free(kr_prod_table *t);
void *kr_prod_table_owner(const kr_prod_table *t);
size_t kr_prod_table_count(const kr_prod_table *t);

/* The pid the next new producer of the table gets; raise it (loading
 * what a store remembered) so that no pid is ever used twice. */
uint64_t kr_prod_table_next_pid(const kr_prod_table *t);
void kr_prod_table_raise_pid(kr_prod_table *t, uint64_t next_pid);

kr_producer *kr_prod_find(const kr_prod_table *t, const uint8_t *id, size_t len);
kr_producer *kr_prod_find_pid(const kr_prod_table *t, uint64_t pid);

/*
 * kr_prod_add - a new producer of id (1..255 bytes) with the table's next
 * pid (pid 0: take the next; else that one, as loading does, raising the
 * next past it). It starts with epoch 0 and sequence number 0, and counts
 * as active at now_ms.
 * @return the producer, or NULL on ENOMEM or when the id or pid is taken.
 */
kr_producer *kr_prod_add(kr_prod_table *t, const uint8_t *id, size_t len, uint64_t pid,
                         uint64_t now_ms);

/* Producers whose stored state changed since kr_prod_take_dirty last ran
 * (all of them after kr_prod_mark_all_dirty): moved into out (in no
 * particular order), their dirty marks cleared. The list is the caller's
 * to walk at once: it links the producers through their dirty_link, which
 * the table takes back as soon as one changes or goes. */
void kr_prod_take_dirty(kr_prod_table *t, struct kr_producer_list *out);
/* Every producer of the table counts as dirty (a checkpoint failed). */
void kr_prod_mark_all_dirty(kr_prod_table *t);

/* Call fn for every producer of the table (in no particular order) until
 * it returns non-zero. */
int kr_prod_foreach(kr_prod_table *t, int (*fn)(void *arg, kr_producer *p), void *arg);

/*
 * kr_prod_set_trim - forget producers, least recently active first: those
 * active last before now_ms - keep_ms, then as many as it takes to bring
 * the set to `want` or fewer (pass the limit, or limit - 1 to make room
 * for one more). Busy producers are skipped. `gone` is called for each
 * before it is freed.
 * @return how many were forgotten.
 */
size_t kr_prod_set_trim(kr_prod_set *set, uint64_t now_ms, size_t want,
                        void (*gone)(void *arg, kr_producer *p), void *arg);

/* Order the set by last activity again, after restores. */
void kr_prod_set_sort(kr_prod_set *set);

/* The set's limit (0: none). */
size_t kr_prod_set_max(const kr_prod_set *set);

/* Memory one producer takes in its table, for an id of id_len bytes (the
 * record and its share of the two index arrays at their fullest). */
size_t kr_producer_bytes(size_t id_len);

#endif
