/*
 * cluster/catchup.h - a node whose raft state jumped ahead of its streams
 * (it restored a snapshot: the leader sent one because the node was too
 * far behind, or its own segments lost a tail in a power cut) fetches the
 * events it lacks from the leader's data port before it applies anything
 * further (docs/DESIGN.md, "Snapshots").
 *
 * A thread of its own connects to the cluster (libkrappy, to the node that
 * leads among `nodes`; after a failed attempt to each node of `nodes` in
 * turn, since any node that applied the events holds them byte for byte,
 * and the leader may be this very node, elected while it catches up),
 * FETCHes each range in chunks and hands each chunk
 * to the loop as a PUBLISH payload (events with their ts, key, value and
 * headers as stored, so they are stored byte for byte as on the leader),
 * waiting until the loop took it. Lost connections are tried again (every
 * KR_CATCHUP_RETRY_MS) until done or stopped.
 *
 * A node that answers a FETCH with OFFSET_OUT_OF_RANGE and a first retained
 * offset past the one asked for has retired the events below it by a
 * RETENTION the log committed (a cluster member's first is always a
 * committed RETENTION's: no node serves them, and every node applies it):
 * the loop is handed a skip to that first (no further than the range's
 * end) instead of a chunk, and the range goes on from there - after the
 * seed of the view: the latest values of the keys whose latest event lies
 * below that first, which the node asked SCANs (pages via its cursor) and
 * GETs one by one for the whole event (an answer at or past the first, or
 * NOT_FOUND, is left to the stream), handed over a page at a time
 * (KR_CATCHUP_SEED). A range whose seed_to is set (a skip an earlier run
 * or a restart left unseeded) is seeded before its events are fetched.
 * KRAPPY_TEST_CATCHUP_SEED_PAUSE_MS (tests only) makes a seed wait that
 * long before its SCAN, for a kill -9 right after a skip.
 *
 * On a compacted topic the nodes' streams have gaps (compaction is each
 * node's own, docs/DESIGN.md): a FETCH skips them. Every event must land
 * at its own offset here too, so a chunk is handed over as runs of
 * consecutive offsets, each with its first offset - past the stream's next
 * after a gap, which the loop then moves the stream's next to
 * (kr_store_gap_to). Offsets the nodes removed right below the range's end
 * (a FETCH from them finds nothing before it, and the node holds the end)
 * are handed over as a gap alone.
 */
#ifndef KR_CLUSTER_CATCHUP_H
#define KR_CLUSTER_CATCHUP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <event2/event.h>

#include "krappy/protocol.h"

#define KR_CATCHUP_RETRY_MS    200
#define KR_CATCHUP_CHUNK       1000       /* events per FETCH */
#define KR_CATCHUP_CHUNK_BYTES (1u << 20) /* bytes per FETCH (at least one event) */
#define KR_CATCHUP_SEED_PAGE   256        /* keys per SCAN page of a seed */

typedef struct kr_catchup kr_catchup;

/* Events [from, to) of a topic; seed_to > 0: first its view's latest
 * values below seed_to (a skip's, kr_store_seed_view), from <= to. */
typedef struct kr_catchup_range {
    char topic[KRAPPY_MAX_NAME_BYTES + 1];
    uint64_t from, to;
    uint64_t seed_to;
} kr_catchup_range;

/* What a hand-over to the loop is. */
typedef enum kr_catchup_kind {
    KR_CATCHUP_EVENTS,    /* events [first, first + count) as a PUBLISH payload;
                             first may lie past the stream's next: the offsets
                             between were compacted away (kr_store_gap_to) */
    KR_CATCHUP_GAP,       /* no events (count 0, payload NULL): the stream's next
                             moves to first, the offsets below were compacted away */
    KR_CATCHUP_RETIRED,   /* no events: the events below `first` are retired
                             everywhere, the stream goes on from `first`
                             (kr_store_skip_to); a seed follows */
    KR_CATCHUP_SEED,      /* a page of the latest values below the skip's
                             `first`: count delivered events (count may be 0)
                             for kr_store_seed_view, more pages follow */
    KR_CATCHUP_SEED_LAST, /* the seed's last page */
} kr_catchup_kind;

/* On the loop: one hand-over of topic (payload borrowed for the call).
 * @return false when it could not be taken now (the store not ready for a
 * skip or a gap; a seed's page refused: the seed starts over from its
 * first page): the thread tries again later; true otherwise (events the
 * store failed are logged by the callback). */
typedef bool (*kr_catchup_chunk_fn)(void *arg, const char *topic, kr_catchup_kind kind,
                                    uint64_t first, uint64_t count, const uint8_t *payload,
                                    size_t len);
/* On the loop: every range is fetched and handed over. */
typedef void (*kr_catchup_done_fn)(void *arg);

/*
 * kr_catchup_start - fetch the ranges (copied) from the leader among
 * `nodes` ("HOST:PORT,..." data addresses), HELLO with `token` (NULL:
 * none). Callbacks run on base's loop.
 * @return the running catch-up, or NULL (no memory, no thread).
 */
kr_catchup *kr_catchup_start(struct event_base *base, const char *nodes, const char *token,
                             const kr_catchup_range *ranges, size_t n, kr_catchup_chunk_fn chunk,
                             kr_catchup_done_fn done, void *arg);

/* kr_catchup_stop - stop the thread (within the client's timeout), and
 * free; no callback runs afterwards. Loop thread. NULL ok. */
void kr_catchup_stop(kr_catchup *cu);

#endif
