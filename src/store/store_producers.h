/*
 * store/store_producers.h - idempotent producers in the store (internal to
 * src/store; the API is in store.h): what store.c, publish.c, recovery.c,
 * checkpoint.c and job.c call of store_producers.c.
 *
 * Durability, without a second write path for the sequence state:
 * - a registration writes the producer's number (pid) and epoch into the
 *   view with RocksDB's WAL on, synced, before it is answered (a LOGGED
 *   job), so a pid in a batch header can be named after any crash;
 * - every batch of an idempotent PUBLISH carries (pid, epoch, seq) in its
 *   header (segment.h, version 2);
 * - each checkpoint writes the state of the producers whose batches landed
 *   since the last one into the same table file as the marker it belongs
 *   to ('p' records, view.h), taken on the loop when the overlays freeze;
 * - start-up loads the registrations and the states, and replays the
 *   batch headers after the marker - as it replays the latest-value view.
 * Producers forgotten (too many, or idle 7 days) lose their registration
 * at once (a LOGGED job) and their state with the topic's next checkpoint.
 */
#ifndef KR_STORE_STORE_PRODUCERS_H
#define KR_STORE_STORE_PRODUCERS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "store/job.h"
#include "store/producers.h"
#include "store/segment.h"
#include "store/store.h"
#include "store/view.h"

struct kr_append; /* append.h */

/* A topic's producers as the store keeps them. */
typedef struct kr_tprod {
    kr_prod_table *table;
    uint64_t *gone; /* pids whose state the next checkpoint deletes */
    size_t n_gone, cap_gone;
    struct kr_dur_wait *dur_waits; /* sync repeats waiting for a checkpoint */
    kr_metric *m_producers, *m_duplicates;
} kr_tprod;

/* What one checkpoint writes of a topic's producers (built on the loop,
 * read by the view thread). */
typedef struct kr_prod_ckpt kr_prod_ckpt;

/* ---- lifetime (store.c) ---- */

/* The store's set of producers and its metrics. @return 0, or -1 (ENOMEM). */
int kr_store_producers_open(kr_store *s);
/* Free the set (after every topic). NULL set ok. */
void kr_store_producers_close(kr_store *s);
/* A topic's producers (t->prod), its metrics registered. @return 0 or -1. */
int kr_store_producers_topic_new(kr_store *s, kr_topic *t);
/* Free them, answering sync repeats still waiting for a checkpoint with
 * STORAGE (the store is closing). t->prod NULL ok. */
void kr_store_producers_topic_free(kr_topic *t);
/* Forget producers idle past the keep time (the store's tick). */
void kr_store_producers_tick(kr_store *s);
/* Refresh the topic's producer gauge (before a scrape). */
void kr_store_producers_metrics(kr_topic *t);

/* ---- the PUBLISH path (publish.c) ---- */

/*
 * kr_store_idem_check - the sequence rules for an idempotent PUBLISH of
 * `count` events (store.h, kr_store_publish).
 * @param accept  receives the producer when the batch is to be stored
 *                (then kr_store_idem_accepted once it is queued), else NULL
 * @return KRAPPY_OK (*accept set: go on; NULL: a repeat, answered through
 *         done now or later); KRAPPY_E_FENCED, KRAPPY_E_OUT_OF_ORDER_SEQUENCE
 *         (idem->expected set), KRAPPY_E_NOT_REGISTERED, KRAPPY_E_STORAGE
 *         (no memory), with msg.
 */
krappy_err kr_store_idem_check(kr_store *s, kr_topic *t, kr_idem *idem, uint64_t count, bool sync,
                               kr_store_done done, void *arg, kr_producer **accept, char *msg,
                               size_t msglen);

/* The accepted batch is queued as append a (first offset `first`):
 * remember it in flight, the append holding the producer until it counts
 * or fails. */
void kr_store_idem_accepted(kr_producer *p, struct kr_append *a, uint64_t seq, uint64_t first,
                            uint32_t count, bool sync);

/* An append counted (ok: visible) or failed: record it in its producer's
 * state, if it has one (once: the append lets go of its producer). */
void kr_store_idem_completed(kr_store *s, struct kr_append *a, bool ok);

/* ---- registrations (store.c's completions) ---- */

void kr_store_logged_done(kr_store *s, kr_job *j);

/* ---- checkpoints ---- */

/* What the topic's checkpoint, freezing now, writes of its producers; NULL
 * when nothing (or no memory: then the next one writes everything). */
kr_prod_ckpt *kr_store_producers_freeze(kr_topic *t);
/* The checkpoint carrying pc ended (ok: its marker is t->marker now):
 * bookkeeping only, nothing is answered. */
void kr_store_producers_checkpointed(kr_store *s, kr_topic *t, kr_prod_ckpt *pc, bool ok);
/* Then, once the checkpoint's completion is done with the store: answer
 * the sync repeats the checkpoint made durable (or, failed, could not). */
void kr_store_producers_answer(kr_topic *t, bool ok);
/* Write pc into a checkpoint file, in key order (after every marker). */
void kr_prod_ckpt_write(const kr_prod_ckpt *pc, kr_view_ckpt *ck, const char *topic, size_t tlen);
void kr_prod_ckpt_free(kr_prod_ckpt *pc);

/* ---- start-up (recovery.c) ---- */

/*
 * kr_store_producers_load - the topic's registrations and the producer
 * states its checkpoint left (a view rebuilt from the stream has none:
 * the replay rebuilds them too). States of forgotten producers are
 * deleted by the next checkpoint.
 * @return 0, or -1 with err filled.
 */
int kr_store_producers_load(kr_store *s, kr_topic *t, char *err, size_t errlen);

/* Replay: a batch after the marker, with a producer in its header. */
void kr_store_producers_replay(kr_topic *t, const kr_batch_hdr *h);

#endif
