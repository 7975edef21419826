/*
 * e2e/cluster.h - three (or up to five) krappyd processes on 127.0.0.1 as
 * one cluster, for the e2e suites: each with its own temporary directory
 * (harness.h), fixed ports (data, raft) so that a node restarted on its
 * directory is found where it was, and, when asked, a TCP proxy
 * (proxy.h) in front of every raft port, so that a test can cut, delay and
 * heal the links between nodes.
 *
 * Node i (0-based) has id i + 1. The nodes are started with --peers naming
 * the proxies' ports (or the raft ports themselves), --election and the
 * other flags as krappyd's defaults, plus the caller's extra arguments.
 */
#ifndef KR_E2E_CLUSTER_H
#define KR_E2E_CLUSTER_H

#include <stdbool.h>
#include <stdint.h>

#include "harness.h"
#include "krappy/client.h"
#include "proxy.h"

#define E2E_CLUSTER_MAX 5

typedef struct e2e_cluster {
    unsigned n;
    e2e_server node[E2E_CLUSTER_MAX];
    int data_port[E2E_CLUSTER_MAX];
    int raft_port[E2E_CLUSTER_MAX];
    e2e_proxy *proxy[E2E_CLUSTER_MAX]; /* NULL without proxies */
    char peers[512];
    char addrs[512];                   /* "127.0.0.1:P1,127.0.0.1:P2,...": every data port */
    const char *extra[32];             /* the caller's extra arguments, NULL-terminated */
    char args[E2E_CLUSTER_MAX][4][64]; /* each node's --node-id, --listen, --raft-listen... */
} e2e_cluster;

/*
 * e2e_cluster_start - start n nodes (3..E2E_CLUSTER_MAX) and wait until they
 * agree on a leader. `extra` (NULL-terminated, may be NULL) is added to
 * every node's arguments; with proxies every raft link goes through one.
 * @return 0, or -1 (message on stderr; whatever started is stopped).
 */
int e2e_cluster_start(e2e_cluster *c, unsigned n, bool proxies, const char *const *extra);

/* Start node i again on its directory (after a kill or a stop), with the
 * same arguments plus `more` (NULL-terminated, may be NULL). @return 0 or -1. */
int e2e_cluster_restart(e2e_cluster *c, unsigned i, const char *const *more);

/* The node every running node names as leader, once they agree (the
 * running nodes only; a killed one has pid 0), within timeout_ms.
 * @return its index, or -1. */
int e2e_cluster_leader(e2e_cluster *c, int timeout_ms);

/* Isolate node i (cut every link into and out of it), or heal all links. */
void e2e_cluster_isolate(e2e_cluster *c, unsigned i);
void e2e_cluster_heal(e2e_cluster *c);

/* Stop every node (SIGTERM, then their directories go unless kept) and the
 * proxies. @return 0 when every node exited 0. */
int e2e_cluster_stop(e2e_cluster *c);

/* "127.0.0.1:PORT" of node i's data port into out. */
void e2e_cluster_addr(const e2e_cluster *c, unsigned i, char *out, size_t len);

/* A client connected to node i's data port (10 s timeouts), or NULL when
 * it does not answer; the caller frees it (krappy_client_free). */
krappy_client *e2e_cluster_client(const e2e_cluster *c, unsigned i);

#endif
