/*
 * cluster/node.h - one member of the cluster: a libraft instance with its
 * own thread and libuv loop, fed from the caller's (libevent) thread.
 *
 * Threads. kr_node_start starts the raft thread; libraft, its disk I/O
 * (raft_uv on `dir`), the network (cluster/transport.c) and the FSM hooks
 * (cluster/fsm.h) all run there and nowhere else. The other thread talks to
 * it through a locked queue and uv_async_send (kr_node_submit, kr_node_add,
 * ...), and gets the outcome back through its own loop: completions wait in
 * a locked list and are announced by `notify` (krappyd: event_active) or by
 * the eventfd of kr_node_fd; kr_node_drain then runs their callbacks on the
 * calling thread. The raft thread never touches the caller's structures.
 * All kr_node_* calls but kr_node_get_status (any thread) come from that
 * one caller thread.
 *
 * libraft 0.15 limits and surprises (the notes for whoever builds on this):
 * - Entries must be multiples of 8 bytes: kr_node_submit wraps each command
 *   in an envelope that carries its real length (fsm.h). At most
 *   KR_ENTRY_MAX_BYTES (64 MiB) per command; one larger than the uv segment
 *   (8 MiB) is written whole.
 * - Big commands stall the raft threads: libraft copies and checksums each
 *   entry on its loop, and a follower prepares a new segment for a big one.
 *   Measured here (-O2, 2 shared cores): a 9 MiB command kept the leader's
 *   loop busy ~150 ms and each follower's ~300 ms, so with the default 500
 *   ms election timeout the leader, hearing from no majority in time, stepped
 *   down in half the runs (the entry's outcome: unknown). Keep commands to
 *   about 1 MiB or raise election_ms: kr_cluster_submit refuses store
 *   commands over KR_CLUSTER_COMMAND_MAX (cluster.h).
 *   tests/test_cluster_node.c (test_big_entry) runs 9 MiB with 3 s.
 * - The FSM hooks run on the raft thread too: while one runs, this node
 *   sends no heartbeat and answers no vote; keep each far below election_ms.
 * - The whole log since the last snapshot is held in memory, and so is each
 *   snapshot (taken whole, written whole, sent whole to a lagging follower).
 *   snapshot_threshold (entries between snapshots) and KR_FSM_SNAPSHOT_BYTES
 *   (fsm.h: bytes of entries between them) bound the first. Each snapshot
 *   stalls the raft thread (the hook, then libraft writing it), so single
 *   small commands want the threshold high: 16384 at 1,000 entries/s is one
 *   every 16 s, and 64 MiB of entries bring it forward. Keep snapshots
 *   small (positions, not data).
 * - Memory. A follower's libraft allocates each entry it receives on the
 *   raft thread, so the log since the last snapshot grows that thread's
 *   malloc arena, which glibc extends a page (one mprotect) at a time: the
 *   raft thread grows its arena once at start instead (node.c,
 *   reserve_heap). A leader's entries are kr_node_submit's copies, made on
 *   the caller's thread. Snapshots are written uncompressed (libraft's LZ4
 *   maps a buffer of over 1 MiB per snapshot); compressed ones still load.
 * - snapshot_trailing entries are kept after a snapshot so that a follower a
 *   little behind gets entries rather than a snapshot; one further behind
 *   gets the snapshot, then entries.
 * - A new leader appends no entry of its own. Raft (section 5.4.2) commits
 *   entries of earlier terms only with one of the leader's term, and later
 *   canonical/raft releases do so; then an entry a dead leader committed
 *   just before the followers heard of it stays unapplied until the next
 *   write. Debian's 0.15.0 still commits them by counting replicas (a
 *   proxy-delayed e2e saw the new leader commit without an entry of its
 *   own). node.c appends a barrier on every new term it leads, which is
 *   right for both.
 * - Every start replays the log since the last snapshot through the FSM
 *   (fsm.h): applies carry the raft index so a persistent FSM can skip what
 *   it holds.
 * - A failing FSM apply halts a follower for good (status.halted) and
 *   stalls the leader until the next commit (fsm.h).
 * - A full disk under the leader's raft log crashes libraft 0.15: the
 *   failed write (RAFT_NOSPACE, while preparing its next segment) drops
 *   the entry from the leader's log although followers stored it; the next
 *   heartbeat finds it "missing" and sends a snapshot, and with none on disk
 *   the snapshot callback dereferences garbage (SIGSEGV in replication.c).
 *   Seen on a 24 MiB tmpfs; with writes of several appends in flight the
 *   failed one's release of entries a later one still holds crashes it at
 *   once (SIGSEGV in the log's reference counts). So kr_node_submit refuses
 *   commands (KR_NODE_NO_SPACE: nothing appended) while the raft
 *   directory's filesystem has less than min_free bytes left beyond what is
 *   already in flight; the free space is read every 100 ms.
 * - A write of the log that fails anyway (the disk filled between two
 *   readings, EIO, a quota) - entries, the term or vote, a snapshot - ends
 *   the process: node.c's *_checked wrappers of raft_io see the failure
 *   before libraft does, log what failed and why, and exit with status 1
 *   (fail-stop, like a kill -9 the cluster is built to survive). Handed to
 *   libraft, a failed append would crash a leader (above), and leave a
 *   follower up holding no more of the log - libraft 0.15's disk I/O
 *   refuses everything after a failure until a restart - while it says it
 *   is caught up; a failed term or vote halts raft for good; a failed
 *   snapshot install leaves the follower behind for good. Restarted once
 *   the disk is mended, the node catches up. A write refused when submitted
 *   completes with KR_NODE_FAILED (nothing appended; pinned with the
 *   fixture, which fails I/O that way).
 * - Closing a leader with log writes in flight crashes libraft 0.15: the
 *   cancelled write's callback releases entries raft_close already dropped
 *   (SIGSEGV in the log's reference counts; one stop in three under load
 *   here). kr_node_stop therefore stops taking requests, waits (up to 3 s)
 *   until every entry in the log is stored, then closes.
 *   tests/test_cluster_node.c (test_stop_under_load) stops loaded leaders
 *   again and again.
 * - User data fields are libraft's: raft_uv_init sets transport->data and
 *   raft_init sets io->data (a pointer kept there is silently replaced);
 *   only struct raft's `data` and the requests' `data` are ours.
 * - raft_uv draws its election timeouts from rand(), which raft_uv_init
 *   seeds from getrandom: one process-wide generator, shared by the nodes
 *   of one process (as in the tests), different in every process.
 * - The read-only state (kr_node_get_status) comes from fields libraft
 *   leaves public in struct raft: current_term, commit_index, last_applied,
 *   configuration, and, on a leader, leader_state.progress[i] (match_index,
 *   recent_recv), which follows configuration.servers[i].
 * - raft_add adds a member as a SPARE (it gets nothing); raft_assign makes
 *   it STANDBY (replicated, not voting) or VOTER (catch-up rounds first:
 *   max_catch_up_rounds x max_catch_up_round_duration).
 * - Leadership transfer (raft_transfer) completes when the target won or an
 *   election timeout passed; kr_node_transfer reports which.
 * - libuv writes to sockets without MSG_NOSIGNAL: the process must ignore
 *   SIGPIPE (krappyd does).
 * - raft/fixture.h's in-memory I/O truncates its log as if it began at
 *   index 1: a truncation after a snapshot reads past its array (ASan,
 *   inside raft_fixture_step). Fixture schedules that may truncate must not
 *   snapshot (tests/test_cluster_fixture.c, test_random_schedule).
 * - libraft is no longer maintained upstream: behaviour is pinned by
 *   tests/test_cluster_*.c, not trusted.
 *
 * Timeouts: election_ms 500 and heartbeat_ms 100 by default: a follower
 * notices a dead leader after 500..1000 ms (randomised, checked every
 * heartbeat), pre-vote plus vote take a few round trips, so a new leader is
 * known well within 2 s (tests/test_cluster_node.c measures it).
 */
#ifndef KR_CLUSTER_NODE_H
#define KR_CLUSTER_NODE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "cluster/fsm.h"
#include "cluster/transport.h"

#define KR_NODE_MAX_MEMBERS      16  /* members kr_node_get_status lists */
#define KR_NODE_ADDR_MAX         255 /* longest raft address */
#define KR_NODE_ELECTION_MS      500
#define KR_NODE_HEARTBEAT_MS     100
#define KR_NODE_SNAPSHOT_EVERY   16384 /* entries between snapshots (and fsm.h's bytes) */
#define KR_NODE_SNAPSHOT_KEEP    128   /* entries kept after one */
#define KR_NODE_CONNECT_RETRY_MS 250
#define KR_NODE_MAX_PENDING      (256u << 20) /* bytes submitted and not completed */
#define KR_NODE_MIN_FREE         (64u << 20)  /* disk kept free under the raft log */
#define KR_NODE_SEGMENT_BYTES    (32u << 20)  /* raft log segment files (node.c) */

typedef struct kr_node kr_node;

/* Outcomes of requests to the node. Only ever appended to. */
typedef enum kr_node_err {
    KR_NODE_OK = 0,
    KR_NODE_NOT_LEADER,      /* this node is not the leader: nothing was appended */
    KR_NODE_LEADERSHIP_LOST, /* appended, then leadership was lost: outcome unknown */
    KR_NODE_SHUTTING_DOWN,   /* the node is stopping: outcome unknown if it was appended */
    KR_NODE_BUSY,            /* too much in flight, or another membership change runs */
    KR_NODE_TOO_BIG,         /* over KR_ENTRY_MAX_BYTES */
    KR_NODE_INVALID,         /* unknown or duplicate id, bad role or address */
    KR_NODE_FAILED,          /* anything else libraft refused (see the message) */
    KR_NODE_IO_ERROR,        /* the leader could not write it to its own disk: followers
                                may still commit it, so the outcome is unknown */
    KR_NODE_NO_SPACE         /* the raft directory's disk is nearly full: nothing appended */
} kr_node_err;

/* A sentence for each kr_node_err (static). */
const char *kr_node_strerror(kr_node_err e);

typedef enum kr_node_state {
    KR_NODE_UNAVAILABLE = 0, /* starting or stopping */
    KR_NODE_FOLLOWER,
    KR_NODE_CANDIDATE,
    KR_NODE_LEADER
} kr_node_state;

/* A member's part in the configuration (libraft's roles). */
typedef enum kr_member_role {
    KR_MEMBER_STANDBY = 0, /* gets the log, does not vote */
    KR_MEMBER_VOTER = 1,   /* gets the log and votes */
    KR_MEMBER_SPARE = 2    /* neither (just added) */
} kr_member_role;

typedef struct kr_node_peer {
    uint64_t id;      /* > 0 */
    const char *addr; /* raft "host:port" */
} kr_node_peer;

/*
 * Completion of a request: runs on the thread calling kr_node_drain (or
 * kr_node_stop), exactly once per accepted request. `index` is the entry's
 * raft index for a committed command (0 otherwise); `msg` a sentence for a
 * person, valid during the call.
 */
typedef void (*kr_node_done)(void *arg, kr_node_err status, uint64_t index, const char *msg);

typedef struct kr_node_opts {
    uint64_t id;      /* this node, > 0; never reused for another volume */
    const char *addr; /* raft "host:port" peers reach it at (names allowed) */
    const char *bind; /* listen here instead ("0.0.0.0:7171"); NULL: addr */
    const char *dir;  /* raft's directory; created (one level) if missing */
    /* Voters to bootstrap a new cluster with, this node among them. Used only
     * when dir holds no raft state yet; NULL/0: join an existing cluster (wait
     * to be added by its leader). */
    const kr_node_peer *peers;
    size_t n_peers;
    kr_fsm_hooks fsm; /* run on the raft thread (fsm.h) */
    /* Called on the raft thread when completions start waiting (once until
     * the next kr_node_drain). NULL: use the eventfd of kr_node_fd. */
    void (*notify)(void *arg);
    void *notify_arg;
    unsigned election_ms;        /* 0: KR_NODE_ELECTION_MS */
    unsigned heartbeat_ms;       /* 0: KR_NODE_HEARTBEAT_MS */
    unsigned snapshot_threshold; /* 0: KR_NODE_SNAPSHOT_EVERY */
    unsigned snapshot_trailing;  /* 0: KR_NODE_SNAPSHOT_KEEP */
    unsigned connect_retry_ms;   /* 0: KR_NODE_CONNECT_RETRY_MS */
    unsigned connect_ms;         /* 0: KR_TRANSPORT_CONNECT_MS */
    unsigned handshake_ms;       /* 0: KR_TRANSPORT_HANDSHAKE_MS */
    size_t max_pending;          /* 0: KR_NODE_MAX_PENDING */
    uint64_t segment_bytes;      /* 0: KR_NODE_SEGMENT_BYTES (node.c explains it) */
    uint64_t min_free;           /* 0: two segments, at least KR_NODE_MIN_FREE (disk-full note) */
    /* What the raft port says besides raft (transport.h), run on the raft
     * thread: this node's info in every handshake (copied), the answer to
     * probes, and the infos of peers as they connect. NULL/0: none. */
    const uint8_t *info;
    size_t info_len;
    kr_transport_probe_fn probe;
    kr_transport_info_fn on_info;
    void *hook_arg; /* for probe and on_info */
} kr_node_opts;

typedef struct kr_node_member {
    uint64_t id;
    char addr[KR_NODE_ADDR_MAX + 1];
    kr_member_role role;
    uint64_t match; /* leader only: highest index known stored there */
    bool reachable; /* leader only: heard from within an election timeout */
} kr_node_member;

typedef struct kr_node_status {
    uint64_t id;
    kr_node_state state;
    uint64_t term;
    uint64_t commit;     /* highest index known committed */
    uint64_t applied;    /* highest index applied to the FSM */
    uint64_t last_index; /* highest index in the local log */
    uint64_t leader_id;  /* 0 while none is known */
    char leader_addr[KR_NODE_ADDR_MAX + 1];
    /* libraft stopped this node on its own (an FSM apply failed on a
     * follower, fsm.h): it neither votes nor stores entries until the
     * process restarts. */
    bool halted;
    unsigned n_members; /* at most KR_NODE_MAX_MEMBERS listed */
    kr_node_member members[KR_NODE_MAX_MEMBERS];
} kr_node_status;

/*
 * kr_node_start - open (or bootstrap) the raft state in o->dir and start
 * the raft thread. Strings in `o` are copied. Start-up (reading the log,
 * restoring the last snapshot) happens on the raft thread before this
 * returns.
 * @return 0 with *out set, or -1 with a sentence in err (bad options, the
 *         directory, the listen address, libraft's own refusal).
 */
int kr_node_start(const kr_node_opts *o, kr_node **out, char *err, size_t errlen);

/*
 * kr_node_stop - stop the node: requests still queued complete with
 * KR_NODE_SHUTTING_DOWN, log writes in flight finish (up to 3 s), then
 * libraft closes its files and connections (what it had not committed
 * completes with SHUTTING_DOWN or LEADERSHIP_LOST: outcome unknown), the
 * thread ends, and every completion still waiting runs here, on the
 * calling thread. Frees the node. NULL is fine. For a clean hand-over,
 * kr_node_transfer first.
 */
void kr_node_stop(kr_node *n);

/*
 * kr_node_submit - append a command (len bytes at data, copied) to the log,
 * on the leader. `done` runs once it is committed and applied on this node
 * (KR_NODE_OK with its index) or failed.
 * @return KR_NODE_OK (done will run), or KR_NODE_SHUTTING_DOWN,
 *         KR_NODE_BUSY (over max_pending), KR_NODE_TOO_BIG, KR_NODE_NO_SPACE,
 *         KR_NODE_FAILED (no memory): done will not run.
 */
kr_node_err kr_node_submit(kr_node *n, const void *data, size_t len, kr_node_done done, void *arg);

/*
 * Membership, on the leader; `done` gets KR_NODE_OK once the new
 * configuration is committed. One change at a time (KR_NODE_BUSY otherwise).
 * kr_node_add: a new member `id` at raft `addr`, as a spare.
 * kr_node_assign: give member `id` a role (VOTER after catching up).
 * kr_node_remove: take member `id` out (a removed leader steps down).
 * kr_node_transfer: hand leadership to voter `id` (0: the most caught-up one);
 *   KR_NODE_OK when it took it, KR_NODE_FAILED when it did not in time.
 * @return as kr_node_submit.
 */
kr_node_err kr_node_add(kr_node *n, uint64_t id, const char *addr, kr_node_done done, void *arg);
kr_node_err kr_node_assign(kr_node *n, uint64_t id, kr_member_role role, kr_node_done done,
                           void *arg);
kr_node_err kr_node_remove(kr_node *n, uint64_t id, kr_node_done done, void *arg);
kr_node_err kr_node_transfer(kr_node *n, uint64_t id, kr_node_done done, void *arg);

/* kr_node_fd - readable when completions wait (eventfd), or -1 when a
 * notify function was given. Owned by the node. */
int kr_node_fd(const kr_node *n);

/* kr_node_drain - run the callbacks of waiting completions, in the order
 * they completed, on the calling thread. @return how many ran. */
size_t kr_node_drain(kr_node *n);

/* kr_node_get_status - a copy of the node's state as of the raft thread's
 * last loop turn (any thread). */
void kr_node_get_status(kr_node *n, kr_node_status *out);

/* kr_node_state_now - the node's state as of the raft thread's last loop
 * turn, without the copy (any thread; a lock-free read for hot paths). */
kr_node_state kr_node_state_now(const kr_node *n);

#endif
