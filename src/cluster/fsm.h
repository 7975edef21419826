/*
 * cluster/fsm.h - krappy's commands as raft log entries, and raft's state
 * machine interface (struct raft_fsm) onto krappy's three functions.
 *
 * Entries. libraft 0.15 needs every entry's length to be a multiple of 8
 * bytes (its uv layer writes batches of 8-byte words). A command of any
 * length is stored as
 *
 *     [2] "KR"  [1] version 1  [1] 0  [4] length, little endian  [length] bytes  [0..7] zeros
 *
 * so the real length travels inside and the padding is dropped on apply.
 * Snapshots use the same envelope (never empty, versioned).
 *
 * The adapter. libraft calls the FSM on the thread that runs its loop (the
 * raft thread of cluster/node.c, or the test's thread with raft/fixture.h):
 * - apply gets no index from libraft: it is raft_last_applied() + 1, since
 *   libraft 0.15 moves last_applied one entry at a time (commands, barriers
 *   and configuration changes alike) and only after apply returned 0.
 *   tests/test_cluster_fixture.c checks this index against the leader's log.
 * - An apply that fails is never skipped. On a follower libraft 0.15 then
 *   stops that server for good: it turns UNAVAILABLE (neither votes nor
 *   stores entries) until the process restarts and applies the entry again
 *   from its log. On the leader the entry stays unapplied, its submitter
 *   unanswered, until the commit index next moves (the next write), when the
 *   same entry is applied again. So apply fails only for what should stop a
 *   node (disk full: fail-stop, restart), and every node must come to the
 *   same result for the same entry. tests/test_cluster_fixture.c
 *   (test_apply_failure) pins both.
 * - Every start replays the log since the last snapshot: restore(last
 *   snapshot), then apply of every entry after it, indexes included. An FSM
 *   whose state survives restarts on its own (the store) skips indexes it
 *   already holds.
 * - snapshot is taken after every `threshold` applied entries; what it
 *   returns is copied, held in memory by libraft, written to disk and sent
 *   whole to followers that are too far behind (keep it small). libraft
 *   asks again after every later apply when one is declined; the adapter
 *   lets KR_FSM_SNAPSHOT_RETRY_MS pass before it calls the hook again, so
 *   that a hook that waits (the store's syncs, replica.c) does not hold
 *   the raft thread after every entry.
 * - Commands are of any size up to KR_ENTRY_MAX_BYTES, and the log since the
 *   last snapshot is in memory: once the entries applied since the last one
 *   hold KR_FSM_SNAPSHOT_BYTES (max_bytes), the adapter brings the next snapshot forward
 *   (the threshold counts entries, this bounds their bytes), and puts raft's
 *   threshold back once the hook gave one.
 * - restore replaces the whole state: at start and when the leader sends a
 *   snapshot (a follower too far behind). The bytes are borrowed.
 */
#ifndef KR_CLUSTER_FSM_H
#define KR_CLUSTER_FSM_H

#include <stddef.h>
#include <stdint.h>

#include <raft.h>

#define KR_ENTRY_HEADER_BYTES 8
#define KR_ENTRY_MAX_BYTES    (64u << 20) /* largest command (or snapshot) */

/* How long a declined snapshot is not asked of the hook again. */
#define KR_FSM_SNAPSHOT_RETRY_MS 200
/* Bytes of entries applied since the last snapshot that call the next one. */
#define KR_FSM_SNAPSHOT_BYTES (64u << 20)

typedef struct kr_fsm_hooks {
    void *arg;
    /* Apply the committed command at `index` (data borrowed for the call).
     * @return 0, or non-zero to stop here (see above: a follower halts). */
    int (*apply)(void *arg, uint64_t index, const void *data, size_t len);
    /* Serialise the whole state into a malloc'd buffer (*data, *len; *len may
     * be 0). Ownership of *data passes to the caller. @return 0, or
     * non-zero to skip this snapshot. */
    int (*snapshot)(void *arg, void **data, size_t *len);
    /* Replace the whole state with one snapshot() produced (borrowed).
     * @return 0, or non-zero when it cannot be used. */
    int (*restore)(void *arg, const void *data, size_t len);
} kr_fsm_hooks;

typedef struct kr_fsm {
    struct raft_fsm fsm; /* hand &f->fsm to raft_init or raft_fixture_grow */
    kr_fsm_hooks hooks;
    struct raft *raft;  /* set by kr_fsm_bind */
    uint64_t malformed; /* entries refused: not our envelope (a failed apply) */
    /* Snapshots the hook declined, and raft's clock (ms) at the last. */
    uint64_t declined, declined_at;
    uint64_t max_bytes; /* KR_FSM_SNAPSHOT_BYTES from kr_fsm_init (tests lower it) */
    uint64_t bytes;     /* of the entries applied since the last snapshot */
    unsigned threshold; /* raft's, while the adapter brought a snapshot forward; else 0 */
} kr_fsm;

/* kr_fsm_init - set up f->fsm to call `hooks` (copied). */
void kr_fsm_init(kr_fsm *f, const kr_fsm_hooks *hooks);

/* kr_fsm_bind - the raft instance f->fsm belongs to (needed for the index);
 * call it before raft_start. */
void kr_fsm_bind(kr_fsm *f, struct raft *r);

/*
 * kr_entry_wrap - `len` bytes at `data` as an entry for raft_apply: out->base
 * is raft_malloc'd (raft_apply takes it; free it with raft_free when
 * raft_apply fails), out->len a multiple of 8.
 * @return 0, RAFT_TOOBIG over KR_ENTRY_MAX_BYTES, or RAFT_NOMEM.
 */
int kr_entry_wrap(const void *data, size_t len, struct raft_buffer *out);

/*
 * kr_entry_unwrap - the command inside an entry: *data points into buf.
 * @return 0, or -1 when buf is not a well-formed envelope.
 */
int kr_entry_unwrap(const struct raft_buffer *buf, const void **data, size_t *len);

#endif
