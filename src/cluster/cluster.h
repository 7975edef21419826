/*
 * cluster/cluster.h - krappyd as a member of a replicated cluster: the raft
 * node (node.h) with krappy's state machine, started the right way for its
 * data directory, and what the server asks of it (who leads, where clients
 * are sent, membership, status).
 *
 * Start-up (kr_cluster_start, then on a thread of its own, since it may wait
 * for peers):
 * - DATA/raft holds raft state: start raft on it.
 * - DATA/raft is empty: the node must not have been a member before (the
 *   marker DATA/cluster, written once the cluster has a name, says it was:
 *   refused, with what to do) nor hold a single node's topics (refused:
 *   a cluster starts on empty directories). Then it asks its --peers
 *   (probe.h): bootstrap with them, or join the cluster that exists.
 * Until raft runs, requests that need the leader get NOT_LEADER without one
 * and /readyz says what the node waits for.
 *
 * The state machine in phase A holds the cluster's metadata: its id (the
 * first leader names it: CLUSTER_ID) and each node's data and Kafka
 * addresses (NODE_INFO: a node tells them to the leader in its raft
 * handshake, transport.h; the leader writes what it learnt into the log,
 * so every node can send clients to any other). Snapshots carry it whole.
 *
 * Threads: every kr_cluster_* call comes from the loop thread (the
 * event_base given at start). Raft runs on its own thread (node.h); the
 * state machine's hooks and probe answers run there, under the cluster's
 * lock where they share state with the loop.
 */
#ifndef KR_CLUSTER_CLUSTER_H
#define KR_CLUSTER_CLUSTER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <event2/event.h>

#include "cluster/node.h"
#include "cluster/replica.h"
#include "krappy/protocol.h"
#include "util/hostport.h"
#include "util/metrics.h"

#define KR_CLUSTER_ID_MAX           64
#define KR_CLUSTER_TICK_MS          100       /* the loop's look at raft's state */
#define KR_CLUSTER_PROBE_MS         2000      /* bound of one probe */
#define KR_CLUSTER_RETRY_MS         500       /* between rounds of probes */
#define KR_CLUSTER_HANDOVER_MS      3000      /* longest wait for a leadership transfer at stop */
#define KR_CLUSTER_SNAPSHOT_WAIT_MS 50        /* longest wait for the store before a snapshot */
#define KR_CLUSTER_MARKER           "cluster" /* DATA/cluster: the cluster's id */
#define KR_CLUSTER_JOINING          "cluster-joining" /* DATA/cluster-joining: a join under way */
#define KR_CLUSTER_RAFT_DIR         "raft"            /* DATA/raft: libraft's files */

/* The largest store command in one raft entry (kr_cluster_submit). */
#define KR_CLUSTER_COMMAND_MAX (1u << 20)

typedef struct kr_cluster kr_cluster;

typedef struct kr_cluster_opts {
    uint64_t node_id;            /* > 0 */
    const char *raft_listen;     /* HOST:PORT raft listens on (required) */
    const char *peers;           /* "1=HOST:PORT,2=..." (the voters); NULL: none */
    const char *advertise;       /* the data address clients are sent to */
    const char *kafka_advertise; /* the Kafka address; NULL: no Kafka listener */
    const char *data_dir;        /* DATA */
    bool has_topics;             /* DATA holds topics already */
    struct event_base *base;     /* the loop */
    kr_metrics *metrics;         /* NULL: none recorded */
    /* Applies the store's commands on this node (replica.h; borrowed, it
     * outlives the cluster). NULL: a node of metadata only (tests). */
    kr_replica *replica;
    unsigned election_ms;    /* 0: KR_NODE_ELECTION_MS */
    unsigned heartbeat_ms;   /* 0: KR_NODE_HEARTBEAT_MS */
    unsigned snapshot_every; /* raft entries between snapshots; 0: KR_NODE_SNAPSHOT_EVERY */
    uint64_t segment_bytes;  /* raft log segment size; 0: KR_NODE_SEGMENT_BYTES */
    /* Called on the loop when the node cannot start after all (raft
     * refused its directory or port): krappyd stops. */
    void (*failed)(void *arg, const char *why);
    void *failed_arg;
} kr_cluster_opts;

/* A member as a client or an operator sees it. */
typedef struct kr_cluster_member {
    uint64_t id;
    char raft[KR_NODE_ADDR_MAX + 1]; /* raft address */
    char addr[KR_HOSTPORT_MAX + 1];  /* data address ("" until the leader learnt it) */
    char kafka[KR_HOSTPORT_MAX + 1]; /* Kafka address, "" for none */
    const char *role;                /* "leader", "follower", "joining" or "unreachable"
                                        (PROTOCOL.md section 8), as this node sees it */
    bool voter;
    uint64_t match; /* known only on the leader: highest index stored there */
    uint64_t lag;   /* known only on the leader: entries behind the leader's log */
} kr_cluster_member;

typedef struct kr_cluster_status {
    char cluster_id[KR_CLUSTER_ID_MAX + 1]; /* "" until the first leader named it */
    uint64_t node;
    uint64_t term;
    uint64_t leader;  /* 0 while none is known */
    bool is_leader;   /* this node */
    uint64_t commit;  /* highest index known committed */
    uint64_t applied; /* highest index applied here */
    uint64_t last_index;
    uint64_t leader_changes; /* seen by this node since it started */
    bool running;            /* raft runs (else: starting, see `why`) */
    char why[256];           /* what a node that is not ready waits for */
    unsigned n_members;
    kr_cluster_member members[KR_NODE_MAX_MEMBERS];
} kr_cluster_status;

/*
 * kr_cluster_parse_peers - "1=HOST:PORT,2=HOST:PORT,..." into an array the
 * caller frees with kr_cluster_free_peers. Ids > 0 and distinct, at most
 * KR_NODE_MAX_MEMBERS, addresses HOST:PORT (names allowed).
 * @return 0, or -1 with a sentence naming the bad part.
 */
int kr_cluster_parse_peers(const char *s, kr_node_peer **out, size_t *n, char *err, size_t errlen);
void kr_cluster_free_peers(kr_node_peer *p, size_t n);

/*
 * kr_cluster_node_id_from_host - `--node-id auto`: the number at the end of
 * `hostname` plus one ("krappyd-2" -> 3, a StatefulSet's ordinal).
 * @return 0 and *id, or -1 with a sentence.
 */
int kr_cluster_node_id_from_host(const char *hostname, uint64_t *id, char *err, size_t errlen);

/*
 * kr_cluster_single_id - a single krappyd's cluster id (PROTOCOL.md section
 * 8: a cluster of one): read from DATA/cluster, made (random) and written
 * there on the first start. @return 0, or -1 with a sentence.
 */
int kr_cluster_single_id(const char *data_dir, char *out, size_t outlen, char *err, size_t errlen);

/*
 * kr_cluster_start - check the data directory and begin starting the node
 * (on a thread of its own: it may wait for peers; see above). Strings in o
 * are copied.
 * @return 0 and *out (the node is starting), or -1 with a sentence (bad
 *         options, a directory that must not start).
 */
int kr_cluster_start(const kr_cluster_opts *o, kr_cluster **out, char *err, size_t errlen);

/*
 * kr_cluster_handover - a stop begins (SIGTERM): a leader hands leadership
 * to the most caught-up voter, so that clients find the next one at once.
 * Returns at once; kr_cluster_stop waits for it (at most
 * KR_CLUSTER_HANDOVER_MS). NULL ok.
 */
void kr_cluster_handover(kr_cluster *c);

/* kr_cluster_stop - stop raft (after a hand-over in progress) and free
 * everything. Loop thread; NULL ok. */
void kr_cluster_stop(kr_cluster *c);

/* This node's store failed to apply the raft log (kr_replica_halted): it
 * applies no more until restarted, refuses writes (NOT_LEADER), names no
 * leader while it still leads, and hands the lead over. Loop thread. */
bool kr_cluster_halted(kr_cluster *c);

/* Only a restart mends this node: its store halted (kr_cluster_halted), or
 * raft did (a command or snapshot it could not apply). Fills why with what
 * to tell an operator. Loop thread; NULL ok (false). */
bool kr_cluster_needs_restart(kr_cluster *c, char *why, size_t whylen);

/* This node leads (raft runs, and it won the last election it knows of),
 * and is not halted (kr_cluster_halted: it only hands the lead over).
 * NULL (a cluster stopped, as the store's last checkpoint runs) leads
 * nothing: false. */
bool kr_cluster_is_leader(kr_cluster *c);

/*
 * kr_cluster_leader_addr, kr_cluster_leader_kafka_addr - where clients of
 * the data port (or of the Kafka listener) reach the leader; the Kafka one
 * also gives the leader's node id (id may be NULL).
 * @return 1 with the "HOST:PORT" in buf, or 0 when no leader is known or
 *         its address is not known yet (buf "").
 */
int kr_cluster_leader_addr(kr_cluster *c, char *buf, size_t len);
int kr_cluster_leader_kafka_addr(kr_cluster *c, char *buf, size_t len, uint64_t *id);

/* The whole picture (CLUSTER, the admin API, /metrics). */
void kr_cluster_status_get(kr_cluster *c, kr_cluster_status *out);

/* Ready for clients: raft runs, a leader is known, and this node has
 * applied what it knows committed. @return true, or false with why. */
bool kr_cluster_ready(kr_cluster *c, char *why, size_t whylen);

/*
 * kr_cluster_submit - on the leader: append a store command (cmd.h, len
 * bytes, copied) to the log; `done` gets its result once it is committed
 * and applied here (replica.h), or the error: NOT_LEADER (this node did not
 * lead, or lost the lead before the command was committed: its outcome is
 * unknown), SHUTTING_DOWN, STORAGE.
 * A command over KR_CLUSTER_COMMAND_MAX is refused: libraft copies and
 * checksums an entry whole on its thread, and a follower prepares a new
 * segment for a big one, long enough for the leader to miss its heartbeats
 * (node.h); a PUBLISH is not split into several entries, since its events
 * must take consecutive offsets (another PUBLISH could land between the
 * parts) and one seq of an idempotent producer covers them all.
 * @return KRAPPY_OK (done follows), else the error with msg (nothing was
 *         appended): NOT_LEADER, BUSY (too much in flight), INVALID_ARGUMENT
 *         (over KR_CLUSTER_COMMAND_MAX: msg says to send smaller batches),
 *         STORAGE (the raft disk is nearly full, no memory).
 */
krappy_err kr_cluster_submit(kr_cluster *c, const void *cmd, size_t len, kr_replica_done done,
                             void *arg, char *msg, size_t msglen);

/* kr_cluster_submit_batch - the same for a BATCH (cmd.h): done gets each
 * sub-command's result (replica.h, kr_replica_wait_batch), or an error
 * that is every sub-command's (n 0). */
krappy_err kr_cluster_submit_batch(kr_cluster *c, const void *cmd, size_t len,
                                   kr_replica_batch_done done, void *arg, char *msg, size_t msglen);

/* The outcome of a membership change (loop thread): KRAPPY_OK, or the error
 * with a sentence. */
typedef void (*kr_cluster_done)(void *arg, krappy_err err, const char *msg);

/*
 * kr_cluster_add - on the leader: add node `id` at raft address `raft_addr`
 * and make it a voter once it has caught up. `done` runs when it votes.
 * kr_cluster_remove - take node `id` out of the cluster (a leader that
 * removes itself steps down once that is committed).
 * @return KRAPPY_OK (done follows), else the error with msg: NOT_LEADER,
 *         INVALID_ARGUMENT (id 0, a bad address, an id that is (not) a
 *         member), BUSY (another change runs).
 */
krappy_err kr_cluster_add(kr_cluster *c, uint64_t id, const char *raft_addr, kr_cluster_done done,
                          void *arg, char *msg, size_t msglen);
krappy_err kr_cluster_remove(kr_cluster *c, uint64_t id, kr_cluster_done done, void *arg, char *msg,
                             size_t msglen);

#endif
