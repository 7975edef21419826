/*
 * cluster/cluster_int.h - the inside of a kr_cluster, shared by its four
 * files and nothing else: cluster.c (the object on the loop thread:
 * status, the leader, membership changes, the tick), cluster_opts.c (the
 * options: peers, node and cluster ids), cluster_boot.c (start-up on a
 * thread of its own: the data directory, probes, bootstrap or join) and
 * cluster_meta.c (the state machine's metadata on the raft thread: the
 * cluster id and the nodes' addresses, snapshots, probe answers).
 */
#ifndef KR_CLUSTER_CLUSTER_INT_H
#define KR_CLUSTER_CLUSTER_INT_H

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>

#include <event2/event.h>

#include "cluster/cluster.h"
#include "cluster/probe.h"
#include "util/retry.h"

/* Where clients reach a node, as its handshake says and the log records. */
typedef struct kr_node_info {
    uint64_t id;
    char data[KR_HOSTPORT_MAX + 1];
    char kafka[KR_HOSTPORT_MAX + 1]; /* "" for none */
} kr_node_info;

/* A membership change the leader's probe answers asked the loop for. */
typedef enum kr_task_kind { KR_TASK_REMOVE = 1, KR_TASK_ADD, KR_TASK_ASSIGN } kr_task_kind;

typedef struct kr_task {
    kr_task_kind kind;
    uint64_t id;
    char addr[KR_NODE_ADDR_MAX + 1];
} kr_task;

#define KR_CLUSTER_MAX_TASKS 8

/* A leader whose view is full hands over; elected again with it still
 * full, after 1 s, then twice as long each time up to 32 s. */
#define KR_CLUSTER_VIEW_HANDOVER_MS     1000
#define KR_CLUSTER_VIEW_HANDOVER_CAP_MS 32000

/* The change running on the loop: a remove, or an add and then an assign. */
typedef struct kr_change {
    bool busy;
    kr_task_kind step;
    uint64_t id;
    char addr[KR_NODE_ADDR_MAX + 1];
    bool then_assign;
    kr_cluster_done done; /* an operator's request; NULL for a join's */
    void *arg;
} kr_change;

struct kr_cluster {
    /* Set at start, read-only afterwards. */
    uint64_t id;
    char raft_addr[KR_NODE_ADDR_MAX + 1]; /* peers reach this node here */
    char bind[KR_NODE_ADDR_MAX + 1];      /* --raft-listen */
    kr_node_peer *peers;
    size_t n_peers;
    bool in_peers; /* this node is one of --peers */
    uint64_t hash; /* of --peers */
    char data_addr[KR_HOSTPORT_MAX + 1];
    char kafka_addr[KR_HOSTPORT_MAX + 1];
    char *data_dir, *raft_dir, *marker, *joining;
    bool has_topics;
    struct event_base *base;
    kr_metrics *metrics;
    kr_replica *replica; /* NULL: metadata only */
    unsigned election_ms, heartbeat_ms, snapshot_every;
    uint64_t segment_bytes;
    void (*failed)(void *arg, const char *why);
    void *failed_arg;
    uint8_t info[KR_TRANSPORT_INFO_MAX]; /* this node's handshake info */
    size_t info_len;

    /* Start-up: the starter thread, and what it hands to the loop. */
    pthread_t starter;
    bool starter_running;
    struct event *started_ev;

    /* The loop's. */
    kr_node *node; /* once started */
    struct event *drain_ev;
    struct event *tick_ev;
    uint64_t last_leader;
    uint64_t leader_changes;
    bool submitting; /* a CLUSTER_ID or NODE_INFO in flight */
    kr_change ch;
    bool handing_over;
    bool halt_handover_logged; /* hand_over_halted said why, once */
    kr_retry view_handover;    /* hand-overs for a full view (hand_over_view_full) */
    kr_metric *m_term, *m_commit, *m_applied, *m_leader, *m_is_leader, *m_changes, *m_members,
        *m_running, *m_store_halted;

    /* Shared with the raft and starter threads, under mu. */
    pthread_mutex_t mu;
    bool stopping;        /* the starter gives up */
    kr_node *node_shared; /* for probe answers; set once raft runs */
    bool started;         /* the starter thread is done (start_err when it failed) */
    char start_err[256];
    char why[256]; /* what the node waits for while starting */
    char cluster_id[KR_CLUSTER_ID_MAX + 1];
    kr_node_info applied[KR_NODE_MAX_MEMBERS]; /* the log's NODE_INFOs */
    unsigned n_applied;
    kr_node_info heard[KR_NODE_MAX_MEMBERS]; /* from handshakes */
    unsigned n_heard;
    kr_task tasks[KR_CLUSTER_MAX_TASKS]; /* from JOIN probes */
    unsigned n_tasks;
};

/* ---- cluster_boot.c ---- */

/* Check the data directory against the way it is to start.
 * @return 0, or -1 with a sentence. */
int kr_cluster_check_dir(kr_cluster *c, char *err, size_t errlen);

/* The starter thread: probes, then raft (c->started when done). */
void *kr_cluster_starter(void *arg);

/* ---- cluster_meta.c ---- */

/* The state machine's hooks (cluster.h: metadata in phase A). */
kr_fsm_hooks kr_cluster_fsm_hooks(kr_cluster *c);

/* Probe answers while raft runs (transport.h; raft thread). */
long kr_cluster_answer_probe(void *arg, const uint8_t *req, size_t len, uint8_t *reply, size_t cap);

/* A peer's handshake info (transport.h; raft thread). */
void kr_cluster_heard_info(void *arg, uint64_t id, const char *address, const uint8_t *info,
                           size_t len);

/* This node's handshake info: [1, data, kafka|null]. @return its length. */
size_t kr_cluster_encode_info(const char *data, const char *kafka, uint8_t *out, size_t cap);

/* The applied info of node `id` (copied), under the lock. @return 1 found. */
int kr_cluster_info_of(kr_cluster *c, uint64_t id, kr_node_info *out);

/* Write `text` to `path` durably (temporary file, fsync, rename, fsync of
 * the directory). @return 0, or -1 with errno. */
int kr_cluster_write_file(const char *path, const char *text);

/* Set the starter's sentence for /readyz (and log it when it changed). */
void kr_cluster_set_why(kr_cluster *c, const char *why);

/* 16 hex digits from the kernel's random source (the clock's when it has
 * none) into out (cap bytes, 17 or more): a new cluster id. */
void kr_cluster_random_id(char *out, size_t cap);

#endif
