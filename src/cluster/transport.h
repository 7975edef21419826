/*
 * cluster/transport.h - libraft's network transport, over libuv TCP, for
 * peers named by DNS names as well as IP literals.
 *
 * libraft's raft_uv I/O layer (raft/uv.h) writes and reads its RPC messages
 * on streams that a `struct raft_uv_transport` opens and accepts. The stock
 * one (raft_uv_tcp_init) parses addresses with uv_ip4_addr, so it takes IPv4
 * literals only; in Kubernetes a peer is a name ("krappyd-1.krappyd-headless:
 * 7171") whose address changes when the pod moves. This one:
 *
 * - resolves the peer's "host:port" with uv_getaddrinfo on EVERY connect (a
 *   moved pod is found on the next reconnect), IPv4 and IPv6, trying each
 *   address in turn; "[v6]:port" for IPv6 literals;
 * - listens on every address its own (or its bind) "host:port" resolves to;
 * - opens each outgoing connection with a handshake, and reads it on each
 *   incoming one, so raft's uv layer gets (server id, address, stream) and
 *   the owner learns what the peer says about itself (its info: krappyd
 *   puts the node's data and Kafka addresses there):
 *
 *       [4] "KRFT"   magic
 *       [2] version  big endian, KR_TRANSPORT_VERSION
 *       [2] n        big endian, length of the address, 1..KR_TRANSPORT_ADDRESS_MAX
 *       [8] id       big endian, the connecting server's raft id (> 0)
 *       [n] address  the connecting server's raft address, no NUL
 *       [2] m        big endian, length of the info, 0..KR_TRANSPORT_INFO_MAX
 *       [m] info     opaque bytes
 *
 *   The accepting side reads exactly these bytes (raft's messages follow at
 *   once on the same stream) and sends nothing back; a connection whose
 *   handshake is malformed, of another version, or not complete within
 *   handshake_ms is closed and logged. At most KR_TRANSPORT_MAX_HANDSHAKES are
 *   read at once; more connections are closed at once.
 * - answers probes on the same port: a short request and reply between a
 *   node and any process that is not part of raft's traffic (krappyd's
 *   start-up asks its peers whether a cluster exists before it bootstraps
 *   one, and a node that lost its volume asks the leader to take it back):
 *
 *       [4] "KRFP"  [2] version 1  [2] n, 0..KR_TRANSPORT_PROBE_MAX  [n] bytes
 *
 *   in both directions, the same framing; the owner's probe function makes
 *   the reply from the request (on the loop), and the connection closes
 *   once the reply is written. kr_transport_probe is the asking side.
 * - bounds a connect (resolution + TCP connect + handshake write) by
 *   connect_ms: a peer whose host does not answer SYNs fails in that time,
 *   not in the kernel's two minutes, and raft retries after its connect retry
 *   delay (raft_uv_set_connect_retry_delay) with a fresh resolution.
 *
 * libraft 0.15 facts this relies on (pinned by tests/test_cluster_transport.c
 * and tests/test_cluster_node.c):
 * - Streams handed to raft are owned by raft from then on: it uv_close()s
 *   them and frees them with raft_free, so they are allocated with
 *   raft_malloc here.
 * - raft's uv layer sets t->data for itself (raft_uv_init): this transport
 *   keeps its state in t->impl only.
 * - The outgoing side is write-only for raft: it never reads what it
 *   connected, so a dead peer shows up as a failed write, and raft then
 *   reconnects (this transport resolves again).
 * - On close, raft waits for the callback of every connect in flight; they
 *   are completed with RAFT_CANCELED, after this transport's handles for
 *   them are closed.
 * - raft's uv layer keeps one outgoing client per peer id, with the address
 *   it first used (read in libraft's source, not pinned: some versions
 *   assert the address never changes). So an id is never reused with another
 *   address; a replaced node joins under a new id. Names, resolved on each
 *   connect, follow a pod that moves.
 *
 * Everything here runs on the loop given to kr_transport_init (the raft
 * thread); nothing is thread-safe.
 */
#ifndef KR_CLUSTER_TRANSPORT_H
#define KR_CLUSTER_TRANSPORT_H

#include <stddef.h>
#include <stdint.h>

#include <raft.h>
#include <raft/uv.h>

#define KR_TRANSPORT_VERSION      2
#define KR_TRANSPORT_HEADER_BYTES 16  /* the handshake before the address */
#define KR_TRANSPORT_ADDRESS_MAX  255 /* longest raft address, in bytes */
#define KR_TRANSPORT_INFO_MAX     512 /* longest info a handshake carries */
#define KR_TRANSPORT_HANDSHAKE_MAX                                                                 \
    (KR_TRANSPORT_HEADER_BYTES + KR_TRANSPORT_ADDRESS_MAX + 2 + KR_TRANSPORT_INFO_MAX)
#define KR_TRANSPORT_PROBE_MAGIC    "KRFP"
#define KR_TRANSPORT_PROBE_VERSION  1
#define KR_TRANSPORT_PROBE_HEADER   8    /* "KRFP", version, length */
#define KR_TRANSPORT_PROBE_MAX      4096 /* longest probe request or reply */
#define KR_TRANSPORT_MAX_HANDSHAKES 64   /* incoming connections read at once */
#define KR_TRANSPORT_MAX_LISTENERS  8    /* addresses listened on */
#define KR_TRANSPORT_HANDSHAKE_MS   5000 /* default deadline of an incoming handshake */
#define KR_TRANSPORT_CONNECT_MS     2000 /* default deadline of an outgoing connect */

/*
 * kr_transport_probe_fn - make the reply to a probe: at most cap bytes into
 * reply. Runs on the transport's loop; req is borrowed for the call.
 * @return the reply's length, or -1 to close the connection without one.
 */
typedef long (*kr_transport_probe_fn)(void *arg, const uint8_t *req, size_t len, uint8_t *reply,
                                      size_t cap);

/* kr_transport_info_fn - a peer connected: its handshake's info (borrowed
 * for the call). Runs on the transport's loop, before raft hears of it. */
typedef void (*kr_transport_info_fn)(void *arg, uint64_t id, const char *address,
                                     const uint8_t *info, size_t len);

typedef struct kr_transport_opts {
    /* Listen on this "host:port" instead of the raft address given to
     * raft_init ("0.0.0.0:7171", "[::]:7171", ":7171" for every address).
     * NULL: the raft address. Copied. */
    const char *bind;
    unsigned handshake_ms; /* 0: KR_TRANSPORT_HANDSHAKE_MS */
    unsigned connect_ms;   /* 0: KR_TRANSPORT_CONNECT_MS */
    /* This node's info, sent in every handshake (copied; at most
     * KR_TRANSPORT_INFO_MAX bytes). NULL/0: none. */
    const uint8_t *info;
    size_t info_len;
    kr_transport_probe_fn probe;  /* NULL: probes are closed unanswered */
    kr_transport_info_fn on_info; /* NULL: infos are not reported */
    void *arg;                    /* for probe and on_info */
    /* Close raft's incoming connections instead of handing them over (a
     * node that only answers probes, before it knows whether to start). */
    int refuse_raft;
} kr_transport_opts;

/*
 * kr_transport_init - make `t` this transport, on `loop` (the loop raft_uv
 * runs on). Then hand `t` to raft_uv_init. `o` may be NULL (defaults).
 * @return 0, or -1 with a sentence in err (bad bind address, no memory).
 */
int kr_transport_init(struct raft_uv_transport *t, struct uv_loop_s *loop,
                      const kr_transport_opts *o, char *err, size_t errlen);

/*
 * kr_transport_release - free what kr_transport_init allocated. Call it once
 * raft is done with the transport: after raft_close's callback (which comes
 * after the transport's close callback) and raft_uv_close, or when
 * raft_uv_init / raft_init failed. NULL or a never-initialised (zeroed) `t`
 * is fine.
 */
void kr_transport_release(struct raft_uv_transport *t);

/*
 * kr_transport_handshake - encode the handshake a server with `id`, raft
 * `address` and `info` (info_len bytes, NULL when 0) sends first (the format
 * above) into out[0..cap).
 * @return its length, or 0 when id is 0, the address is empty or longer
 *         than KR_TRANSPORT_ADDRESS_MAX, the info is longer than
 *         KR_TRANSPORT_INFO_MAX, or cap is too small.
 */
size_t kr_transport_handshake(uint8_t *out, size_t cap, uint64_t id, const char *address,
                              const uint8_t *info, size_t info_len);

/*
 * kr_transport_probe - ask the node at raft `address` ("host:port", names
 * resolved now): send the probe `req` (len bytes, at most
 * KR_TRANSPORT_PROBE_MAX) and read its reply into reply[0..cap). Blocking,
 * all of it within timeout_ms; for a thread that may wait (start-up), not
 * for a loop.
 * @return the reply's length, or -1 with a sentence in err (the address,
 *         nothing listening, no reply in time, a reply that is not a probe
 *         reply or is longer than cap).
 */
long kr_transport_probe(const char *address, const uint8_t *req, size_t len, uint8_t *reply,
                        size_t cap, unsigned timeout_ms, char *err, size_t errlen);

#endif
