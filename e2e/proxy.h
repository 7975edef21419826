/*
 * e2e/proxy.h - a small TCP proxy for the cluster tests: it sits in front
 * of one node's raft port and can cut, delay and heal the links into it,
 * per sending node.
 *
 * Raft connections are one-way for raft's messages (a node sends on the
 * connections it opened; replies travel on the other node's own), and each
 * starts with the transport's handshake carrying the sender's node id
 * (src/cluster/transport.h): the proxy reads it as the bytes go by, so a
 * rule can name the link from node A into this node. Cutting a link closes
 * its connections at once and refuses new ones; a delay holds each chunk
 * that long before passing it on; healing lifts every rule. Probes and
 * anything else that is not a handshake count as sender 0.
 *
 * One thread per proxy, its own poll loop; the calls below may come from
 * any thread.
 */
#ifndef KR_E2E_PROXY_H
#define KR_E2E_PROXY_H

#include <stdbool.h>
#include <stdint.h>

typedef struct e2e_proxy e2e_proxy;

/* Listen on 127.0.0.1 (a free port) and pass what comes to
 * 127.0.0.1:target_port. @return the proxy, or NULL (message on stderr). */
e2e_proxy *e2e_proxy_start(int target_port);

/* The port the proxy listens on. */
int e2e_proxy_port(const e2e_proxy *p);

/* Cut (or restore) the links from node `from` (0: from every sender). */
void e2e_proxy_cut(e2e_proxy *p, uint64_t from, bool cut);

/* Hold what node `from` sends (0: every sender) `ms` before passing it on
 * (0: no delay). */
void e2e_proxy_delay(e2e_proxy *p, uint64_t from, unsigned ms);

/* Lift every cut and delay. */
void e2e_proxy_heal(e2e_proxy *p);

/* Bytes passed on so far (both directions). */
uint64_t e2e_proxy_bytes(e2e_proxy *p);

/* Close every connection and the listener, and free. NULL ok. */
void e2e_proxy_stop(e2e_proxy *p);

#endif
