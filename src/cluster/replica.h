/*
 * cluster/replica.h - the store's side of the replicated log: every node
 * applies the committed store commands (cmd.h) to its own store, in log
 * order, with the store's own code (docs/DESIGN.md, "Replication").
 *
 * Hand-off. Raft applies entries on its thread (fsm.h); a store command is
 * copied into a locked queue there (kr_replica_push) and the loop thread,
 * woken by event_active, applies the queue in order: offsets are assigned
 * at apply, so they are the same on every node, and events without a ts
 * take the leader's clock from the command. The store completes each
 * applied command in its own time; `stored` is the index up to which every
 * pushed command has completed (its batch handed to the OS).
 *
 * Restarts. Every start replays the raft log since the last snapshot. A
 * PUBLISH records its position in the log (its raft index, and its place
 * in a BATCH: replica_int.h) in its batch header (store.h,
 * kr_store_publish_applied), so one at or below a topic's raft_index is
 * skipped; creating a topic that exists is a no-op; an idempotent
 * registration whose epoch the producer has is skipped; a GROUP_CREATE of
 * a group that exists is a no-op; a TOPIC_DELETE deletes the topic even
 * when it is a later one of the name (the replay makes that again). A
 * snapshot may
 * only be taken once the store holds every command it covers, synced
 * (kr_replica_snapshot), or a restart would skip commands whose batches
 * were never written (or, after a power cut, lost); it records each
 * topic's next offset, so that a node
 * restoring it - sent by the leader when it was too far behind - fetches
 * what its streams lack from the leader (catchup.h) before applying more.
 *
 * Consumer groups. What the log holds of a group is its cursor: created
 * (GROUP_CREATE), moved by rounds of ACKs (GROUP_CURSORS: every node moves
 * its group up to the cursor and writes that cursor), sought (GROUP_SEEK,
 * at an offset the leader resolved) and deleted (GROUP_DELETE). Members,
 * hand-outs and deadlines are the leader's alone (a follower's groups have
 * none): after a leader change the members register again and are handed
 * out what follows the committed cursor (PROTOCOL.md section 8).
 *
 * Answers. The leader's request handlers wait for the result of the entry
 * they submitted (kr_replica_wait): the store's result for that index here
 * (its offsets, or the error every node came to). A BATCH (cmd.h: one
 * loop turn's PUBLISHes and registrations) keeps one result per
 * sub-command, each what applying that command alone in its place gives
 * (kr_replica_wait_batch).
 *
 * Threads: kr_replica_push, _snapshot and _restore on the raft thread,
 * everything else on the loop thread.
 */
#ifndef KR_CLUSTER_REPLICA_H
#define KR_CLUSTER_REPLICA_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <event2/event.h>

#include "store/store.h"
#include "util/buf.h"

#define KR_REPLICA_RESULTS 4096 /* results kept for answers, by index */

/* Why a halted replica's node is not ready (/readyz, CLUSTER). */
#define KR_REPLICA_HALTED_WHY                                                                      \
    "the store failed to apply the raft log here (the log says what and why): restart this node"

/*
 * Positions. A PUBLISH records in its batch header where it stands in the
 * log: its entry's index and its place in a BATCH (0 alone), so that a
 * restart's replay skips exactly the sub-commands a stream holds - a power
 * cut may keep some batches of one entry and lose the next. The top bit
 * tells a position from the bare index older krappyds recorded (which
 * meant: all of that entry held), and orders every position after them.
 */
#define KR_POS_FLAG     (1ull << 63)
#define KR_POS_SUB_BITS 20
#define KR_POS_SUB_ALL  ((1u << KR_POS_SUB_BITS) - 1) /* every place of an entry */

static inline uint64_t kr_replica_pos(uint64_t index, uint32_t sub)
{
    return KR_POS_FLAG | index << KR_POS_SUB_BITS | sub;
}

/* The entry index of a recorded value (a position or a bare index). */
static inline uint64_t kr_replica_pos_index(uint64_t recorded)
{
    return recorded & KR_POS_FLAG ? (recorded & ~KR_POS_FLAG) >> KR_POS_SUB_BITS : recorded;
}

/* A recorded value as a position (a bare index: all of its entry). */
static inline uint64_t kr_replica_pos_held(uint64_t recorded)
{
    return recorded == 0 || recorded & KR_POS_FLAG ? recorded
                                                   : kr_replica_pos(recorded, KR_POS_SUB_ALL);
}

typedef struct kr_replica kr_replica;

/* The data addresses of the cluster's nodes, "HOST:PORT,..." into buf
 * (loop thread): where a catch-up looks for the leader. */
typedef void (*kr_replica_nodes_fn)(void *arg, char *buf, size_t len);

/* A group (tg) of t, or the topic itself (tg NULL), is being deleted by
 * the log: whatever connections hold on it is let go (loop thread). */
typedef void (*kr_replica_forget_fn)(void *arg, kr_topic *t, kr_tgroup *tg);

typedef struct kr_replica_opts {
    kr_store *store;
    struct event_base *base;
    const char *token; /* HELLO's token on the leader's data port; NULL: none */
    kr_replica_nodes_fn nodes;
    void *nodes_arg;
    kr_replica_forget_fn forget; /* NULL: nothing to let go */
    void *forget_arg;
} kr_replica_opts;

/*
 * kr_replica_new - applies store commands to o->store, woken on o->base
 * (strings copied). @return the replica, or NULL (no memory).
 */
kr_replica *kr_replica_new(const kr_replica_opts *o);

/*
 * kr_replica_free - answer requests still waiting with SHUTTING_DOWN and
 * free. Call after kr_store_close (which completes the store's work the
 * replica started). NULL ok.
 */
void kr_replica_free(kr_replica *rp);

/* kr_replica_push - queue the committed store command at `index` (len
 * bytes, copied) for the loop. Raft thread. @return 0, or -1 (no memory:
 * the entry must not count as applied). */
int kr_replica_push(kr_replica *rp, uint64_t index, const void *data, size_t len);

/*
 * Snapshots (raft thread). kr_replica_snapshot - the store's part of a
 * snapshot, appended to out:
 * [index, [[topic, next, producers, groups, settings]...]] (groups:
 * [[group, cursor]...]; settings: the topic's own, a TOPIC_CONFIG map), as
 * of the last store command pushed, once the store holds it and every
 * topic's stream is synced that far (asks for the syncs; waits up to ms).
 * @return 0, or -1 (not ready in time: snapshot later; at once when the
 * replica halted, which is never ready).
 * kr_replica_restore - a snapshot's store part (as kr_replica_snapshot
 * made it, copied) was restored: before any command after it applies,
 * every topic must reach its `next`; what this node lacks is fetched from
 * the leader (catchup.h); the snapshot's settings are adopted, and a
 * topic it lacks that has no batch after it is deleted (it was deleted
 * before the snapshot). @return 0, or -1 (no memory).
 */
int kr_replica_snapshot(kr_replica *rp, unsigned ms, kr_buf *out);
int kr_replica_restore(kr_replica *rp, const void *data, size_t len);

/* kr_replica_halt - apply nothing more, stop a catch-up (before the store
 * closes). Loop thread. NULL ok. */
void kr_replica_halt(kr_replica *rp);

/* The result of the command at an index, on the loop thread: res->err
 * KRAPPY_OK with what the store said (first, count, duplicate, epoch,
 * seq), or the error every node came to: with INVALID_ARGUMENT res->first
 * is the index of the event at fault (UINT64_MAX: none), with
 * OUT_OF_ORDER_SEQUENCE res->seq is the sequence number expected. */
typedef void (*kr_replica_done)(void *arg, const kr_store_result *res);

/* The results of a BATCH (cmd.h): res the entry's (not KRAPPY_OK: every
 * sub-command's outcome is that), subs[i] the i-th sub-command's, as
 * kr_replica_done's res. n is 0 when res is not KRAPPY_OK or the entry at
 * the index was no BATCH. */
typedef void (*kr_replica_batch_done)(void *arg, const kr_store_result *res,
                                      const kr_store_result *subs, size_t n);

/*
 * kr_replica_wait - call done with the result of the command at `index`
 * (pushed already, or about to be): at once when it is known, else once
 * the store completed it. A result older than KR_REPLICA_RESULTS indexes is
 * forgotten: done gets KRAPPY_E_STORAGE saying so.
 */
void kr_replica_wait(kr_replica *rp, uint64_t index, kr_replica_done done, void *arg);

/* kr_replica_wait_batch - the same for a BATCH: done gets every
 * sub-command's result. */
void kr_replica_wait_batch(kr_replica *rp, uint64_t index, kr_replica_batch_done done, void *arg);

/* Ready for clients (/readyz): not halted by a store failure, not
 * catching up after a snapshot. @return true, or false with why. */
bool kr_replica_ready(kr_replica *rp, char *why, size_t whylen);

/* Whether a store failure halted it: it applies nothing more until this
 * node restarts. Loop thread. */
bool kr_replica_halted(const kr_replica *rp);

/* Whether the store refuses new writes (kr_store_view_full: its view
 * cannot checkpoint), with why. Loop thread. */
bool kr_replica_view_full(const kr_replica *rp, char *why, size_t whylen);

/* Halt when the store's view holds more than it may (kr_store_view_overflow):
 * applying never refuses, so rather than grow until the kernel kills the
 * process, a follower stops applying - its restart applies the log again
 * from what the streams hold, once the view's disk is mended. @return
 * whether it halted now. Loop thread. */
bool kr_replica_halt_on_view_overflow(kr_replica *rp);

/* The highest index whose command the store completed, and commands
 * skipped as already held (a restart's replay). Loop thread. */
uint64_t kr_replica_stored(kr_replica *rp);
uint64_t kr_replica_skipped(kr_replica *rp);

#endif
