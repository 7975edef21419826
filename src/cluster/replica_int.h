/*
 * cluster/replica_int.h - the inside of a kr_replica, shared by its three
 * files and nothing else: replica.c (the hand-off from the raft thread,
 * completion in log order, results and waiters, life), replica_apply.c
 * (each committed store command applied to the store) and
 * replica_snapshot.c (the store's part of a raft snapshot: taking it, and
 * restoring it with a catch-up from the leader).
 */
#ifndef KR_CLUSTER_REPLICA_INT_H
#define KR_CLUSTER_REPLICA_INT_H

#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "cluster/catchup.h"
#include "cluster/replica.h"

/* A committed store command, from the raft thread's push until the store
 * completed it. */
typedef struct item {
    uint64_t index; /* 0: a catch-up to the snapshot in data (kr_replica_restore) */
    uint32_t sub;   /* a BATCH's sub-command: its place, 1..n (no data; parent's); 0: an entry */
    bool completed;
    uint32_t jobs; /* GROUP_CURSORS: its store jobs still running; BATCH: its sub-commands */
    kr_store_result res;
    struct item *next;
    struct item *parent;   /* a sub-command's BATCH */
    kr_store_result *subs; /* BATCH: each sub-command's result, by place - 1 */
    uint32_t n_subs;
    kr_replica *rp;
    size_t len;
    uint8_t data[];
} item;

/* A request waiting for the result at `index`. */
typedef struct waiter {
    uint64_t index;
    kr_replica_done done;             /* or: */
    kr_replica_batch_done batch_done; /* kr_replica_wait_batch's */
    void *arg;
    struct waiter *next;
} waiter;

/* What the loop keeps of the result at an index (slot index % N). */
typedef struct slot {
    uint64_t index; /* 0: empty */
    bool known;
    kr_store_result res;
    kr_store_result *subs; /* a BATCH's results (owned) */
    uint32_t n_subs;
    waiter *waiting; /* for this slot's indexes, any of them */
} slot;

struct kr_replica {
    kr_store *store;
    struct event_base *base;
    struct event *ev;
    char *token;
    kr_replica_nodes_fn nodes;
    void *nodes_arg;
    kr_replica_forget_fn forget;
    void *forget_arg;

    /* Shared with the raft thread, under mu. */
    pthread_mutex_t mu;
    pthread_cond_t cond;
    item *in_head, *in_tail; /* pushed, not yet taken by the loop */
    uint64_t pushed;         /* highest index pushed */
    uint64_t stored_shared;  /* highest index below which all completed */
    bool snap_asked;         /* the raft thread waits for the store's part */
    bool snap_ready;
    bool halted_shared; /* halted: no snapshot will ever be ready */
    kr_buf snap;        /* [index, [topic...]] as of `pushed` (put_topic) */

    /* The loop's. */
    item *wait_head, *wait_tail; /* taken from the raft thread, not yet applied */
    kr_catchup *catching;        /* a catch-up runs: nothing is applied meanwhile */
    uint64_t catch_index;        /* the index its batches record */
    uint32_t catch_writes;       /* its events the store has not completed yet */
    bool halted;
    item *fly_head, *fly_tail; /* applied, in log order, until completed */
    uint64_t stored;
    uint64_t skipped;
    kr_buf scratch;
    slot *slots;
};

/* ---- replica.c (loop thread) ---- */

/* The store completed it (res: its result): `stored` advances over what
 * completed in log order, results are posted, and a store failure halts
 * the replica. A sub-command's result goes to its BATCH, which completes
 * with its last. */
void kr_replica_complete(item *it, const kr_store_result *res);

/* Apply nothing more, and tell the raft thread: a halted replica never
 * stores what a snapshot would cover, so kr_replica_snapshot fails at once
 * instead of holding the raft thread for its wait every time it is tried. */
void kr_replica_mark_halted(kr_replica *rp);

/* This node could not do what every other node did (a disk, memory):
 * applying more would shift its offsets, so the replica stops applying
 * (a restart applies the log again from what the streams hold). The first
 * such failure is logged: what happened, the log position, and why. */
void kr_replica_halt_because(kr_replica *rp, const char *what, uint64_t index, uint32_t sub,
                             const char *why);

/* Apply what waits, in order, unless a catch-up runs or the replica
 * halted; then serve a snapshot the raft thread waits for. */
void kr_replica_pump(kr_replica *rp);

/* ---- replica_apply.c (loop thread) ---- */

/* Apply the command in it->data (it is in flight already): the store's
 * result reaches kr_replica_complete, now or later. */
void kr_replica_apply(kr_replica *rp, item *it);

/* The topic `name`, created (its result logged, not answered) when there
 * is none. @return NULL with res filled when the store refuses it. */
kr_topic *kr_replica_find_or_create(kr_replica *rp, const kr_str *name, kr_store_result *res);

/* A kr_store_done that only logs a failure (arg unused): for a topic's
 * creation whose result nobody waits for. */
void kr_replica_created_quietly(void *arg, const kr_store_result *res);

/* ---- replica_snapshot.c (loop thread) ---- */

/* The raft thread asked for the store's part of a snapshot: fill rp->snap
 * and wake it once the store holds every pushed command durably. */
void kr_replica_serve_snapshot(kr_replica *rp);

/* A restored snapshot (it->index 0): adopt its producers and groups and
 * start fetching what the streams lack from the leader. @return true when
 * a catch-up runs (kr_replica_pump waits for it). */
bool kr_replica_catch_up(kr_replica *rp, const item *it);

#endif
