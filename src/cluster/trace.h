/*
 * cluster/trace.h - where a raft entry's time goes, entry by entry: a
 * measuring aid, off unless $KRAPPY_CLUSTER_TRACE names a file prefix.
 *
 * With it, the first node a process starts writes PREFIX.<node id>: one
 * line per raft index with the CLOCK_MONOTONIC time (ns, the clock of
 * util/clock.h, so lines of the three nodes and of a client on the same
 * machine compare directly) at which the entry passed each stage below, 0
 * where this node did not see it pass (a follower submits nothing; an
 * index written before the trace began), then the topic offset of the
 * entry's first event and how many events it stored. Lines are written some entries
 * late (a late stage - the slower follower's acknowledgement - may come
 * after the store completed it), so the last few of a run are not there.
 * Other lines say when a snapshot was taken and how long it held the raft
 * thread. The marks cost a relaxed store each; without the variable, a
 * test of one pointer.
 */
#ifndef KR_CLUSTER_TRACE_H
#define KR_CLUSTER_TRACE_H

#include <stdint.h>

typedef enum kr_trace_stage {
    KR_TRACE_SUBMIT,  /* leader: kr_node_submit took it (the caller's thread) */
    KR_TRACE_APPEND,  /* in this node's log in memory (leader: raft_apply) */
    KR_TRACE_STORED,  /* written to this node's log on disk */
    KR_TRACE_ACK1,    /* leader: the first follower acknowledged it */
    KR_TRACE_ACK2,    /* leader: the second follower acknowledged it */
    KR_TRACE_COMMIT,  /* committed: the FSM apply hook ran (raft thread) */
    KR_TRACE_TAKEN,   /* the loop took it from the raft thread (replica.c) */
    KR_TRACE_APPLIED, /* the store completed it: readers see it */
    KR_TRACE_STAGES
} kr_trace_stage;

/* kr_trace_open - start tracing for node `id` when $KRAPPY_CLUSTER_TRACE
 * is set and no node of this process traces yet. Errors are logged once
 * and leave tracing off. */
void kr_trace_open(uint64_t id);

/* kr_trace_close - stop tracing for node `id` (another's: nothing),
 * writing what is still held; once no thread marks any more (after the
 * node and its replica stopped). */
void kr_trace_close(uint64_t id);

/* kr_trace_mark - entry `index` passed `stage` now (any thread; nothing
 * when tracing is off). kr_trace_mark_at: at time `ns`. */
void kr_trace_mark(kr_trace_stage stage, uint64_t index);
void kr_trace_mark_at(kr_trace_stage stage, uint64_t index, uint64_t ns);

/* kr_trace_events - entry `index` stored `count` events from topic
 * offset `first` on (its line's last two columns; the loop thread, before
 * its APPLIED mark). */
void kr_trace_events(uint64_t index, uint64_t first, uint64_t count);

/* kr_trace_on - whether this process traces (for marks that cost more
 * than a store to find). */
int kr_trace_on(void);

/* kr_trace_note - a line of its own: `what` began at `start_ns` and took
 * until now (raft thread; nothing when tracing is off). */
void kr_trace_note(const char *what, uint64_t start_ns);

#endif
