/*
 * cluster/probe.h - what nodes ask each other on the raft port before (and
 * besides) raft: whether a cluster exists, and to be taken into one
 * (transport.h carries the bytes; this file gives them meaning).
 *
 * Why. A node started on an empty data directory with --peers must tell a
 * first start (every node empty: bootstrap the cluster, all with the same
 * configuration) from the return of a node whose volume was lost (a cluster
 * exists: bootstrapping would make a second one, and rejoining under the
 * old identity with no memory of its votes is unsafe). It asks every peer:
 *
 * - all of them answered, and none is in a formed cluster (each is empty and
 *   waiting, or bootstrapped with the same --peers and not yet formed):
 *   bootstrap. A first start needs every listed node up.
 * - one of them is in a formed cluster (it has a cluster id): join it. The
 *   node asks the leader (JOIN, not running): a member of the same id is
 *   removed first (the lost incarnation; WAIT meanwhile), then the answer is
 *   START: the node starts raft with an empty log and asks again (JOIN,
 *   running) until the leader has added it and made it a voter (DONE). It
 *   catches up like any follower that is far behind.
 * - otherwise wait, and ask again.
 *
 * Messages are CBOR arrays:
 *   request [1, kind, from_id, from_raft_addr, peers_hash, running]
 *   reply   [1, state, cluster_id, node_id, leader_id, leader_raft_addr,
 *            peers_hash, answer, message]
 */
#ifndef KR_CLUSTER_PROBE_H
#define KR_CLUSTER_PROBE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "cluster/node.h"

#define KR_PROBE_TEXT_MAX 255

typedef enum kr_probe_kind { KR_PROBE_STATE = 1, KR_PROBE_JOIN = 2 } kr_probe_kind;

typedef enum kr_probe_state {
    KR_PROBE_EMPTY = 0,    /* empty data directory, waiting to bootstrap */
    KR_PROBE_STARTING = 1, /* raft is being started */
    KR_PROBE_MEMBER = 2    /* raft runs (formed when the cluster id is known) */
} kr_probe_state;

typedef enum kr_probe_answer {
    KR_JOIN_NONE = 0,      /* not a JOIN */
    KR_JOIN_WAIT = 1,      /* the leader is changing the membership: ask again */
    KR_JOIN_START = 2,     /* start raft with an empty log, then ask again */
    KR_JOIN_DONE = 3,      /* a voter: done */
    KR_JOIN_REFUSED = 4,   /* the message says why (an operator must act) */
    KR_JOIN_NOT_LEADER = 5 /* ask the leader (leader_addr, when known) */
} kr_probe_answer;

typedef struct kr_probe_req {
    kr_probe_kind kind;
    uint64_t from;
    char addr[KR_NODE_ADDR_MAX + 1];
    uint64_t peers_hash;
    bool running;
} kr_probe_req;

typedef struct kr_probe_reply {
    kr_probe_state state;
    char cluster_id[KR_PROBE_TEXT_MAX + 1]; /* "" until formed */
    uint64_t node;
    uint64_t leader; /* 0: none known */
    char leader_addr[KR_NODE_ADDR_MAX + 1];
    uint64_t peers_hash; /* of the --peers it bootstrapped (or waits) with */
    kr_probe_answer answer;
    char message[KR_PROBE_TEXT_MAX + 1];
} kr_probe_reply;

/* Encode into out[0..cap). @return the length, or -1 when it does not fit. */
long kr_probe_req_encode(const kr_probe_req *r, uint8_t *out, size_t cap);
long kr_probe_reply_encode(const kr_probe_reply *r, uint8_t *out, size_t cap);

/* Decode. @return 0, or -1 when malformed. */
int kr_probe_req_decode(const uint8_t *p, size_t len, kr_probe_req *out);
int kr_probe_reply_decode(const uint8_t *p, size_t len, kr_probe_reply *out);

/* A hash of a --peers list (order does not matter), to tell whether two
 * nodes were started with the same one. */
uint64_t kr_probe_peers_hash(const kr_node_peer *peers, size_t n);

/*
 * kr_probe_ask - send r to the node at raft `addr` and read its reply
 * (blocking, within timeout_ms). @return 0, or -1 with a sentence in err.
 */
int kr_probe_ask(const char *addr, const kr_probe_req *r, kr_probe_reply *out, unsigned timeout_ms,
                 char *err, size_t errlen);

/* What to do, from the replies of every other peer (reply[i] valid when
 * ok[i]). */
typedef enum kr_probe_decision {
    KR_DECIDE_WAIT = 0,  /* not everyone answered, or they disagree */
    KR_DECIDE_BOOTSTRAP, /* all empty (or bootstrapped alike, not formed) */
    KR_DECIDE_JOIN       /* a cluster exists: *join_at is whom to ask */
} kr_probe_decision;

/*
 * kr_probe_decide - the rule above. `hash` is this node's peers hash.
 * @param join_at  with KR_DECIDE_JOIN, the raft address to send JOIN to (the
 *                 leader's when one said, else the formed peer's own)
 * @param why      with KR_DECIDE_WAIT, a sentence for the log
 */
kr_probe_decision kr_probe_decide(const kr_node_peer *peers, const bool *ok,
                                  const kr_probe_reply *reply, size_t n, uint64_t hash,
                                  char *join_at, size_t join_len, char *why, size_t whylen);

/*
 * A raft port that answers probes only (EMPTY, not a member), on a thread of
 * its own, while a node decides whether to bootstrap; raft's own
 * connections are closed meanwhile (their senders retry).
 */
typedef struct kr_probe_server kr_probe_server;

/* @return 0 and *out, or -1 with a sentence (the address cannot be listened on). */
int kr_probe_server_start(uint64_t id, const char *addr, const char *bind, uint64_t peers_hash,
                          kr_probe_server **out, char *err, size_t errlen);

/* Stop answering and free the port (for raft to listen on). NULL ok. */
void kr_probe_server_stop(kr_probe_server *s);

#endif
