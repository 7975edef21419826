/*
 * server/kafka.h - the Kafka listener: a second port in the same libevent
 * loop where Kafka clients (kcat, librdkafka, any Kafka client library)
 * produce to and consume from krappy topics (docs/KAFKA.md).
 *
 *   kafka_listener.c  accept, framing, the request pipeline, timeouts,
 *                     SASL gating (the socket side, back-pressure and the
 *                     life of a connection: netconn.c, as the Krappy port's)
 *   kafka_handlers.c  ApiVersions, Metadata, ListOffsets, FindCoordinator,
 *                     InitProducerId, SASL, the dispatch table
 *   kafka_produce.c   Produce: record batches to PUBLISH batches
 *   kafka_fetch.c     Fetch: stored events to record batches, long polls
 *   kafka_topics.c    CreateTopics, DeleteTopics, DescribeConfigs,
 *                     AlterConfigs, IncrementalAlterConfigs
 *   kafka_groups.c    the group coordinator (JoinGroup, SyncGroup,
 *                     Heartbeat, LeaveGroup): membership, generations,
 *                     timeouts; no I/O
 *   kafka_offsets.c   the group APIs' handlers, OffsetCommit, OffsetFetch
 *
 * The mapping. Each krappy topic is a Kafka topic with one partition, 0;
 * Kafka offsets are krappy offsets; this broker (node KR_KAFKA_NODE_ID at
 * the advertised address) leads every partition and coordinates every
 * group. Records become events with the codec's mapping (kafka/event.h),
 * through the same store calls as the Krappy port's handlers.
 *
 * Requests on a connection. Kafka's brokers take one request of a
 * connection at a time; so does this listener, except that a Produce may
 * start while only earlier Produces are still being written (their appends
 * are applied in submission order by the one storage writer). Responses go
 * out in request order, one per request (none for a Produce with acks 0).
 * A request whose answer waits (a Fetch long poll, a JoinGroup during a
 * rebalance, a Produce being written) holds a reference on its connection;
 * a parked one is withdrawn when the connection closes.
 *
 * Limits are the Krappy port's: --max-frame for a request and a response,
 * --max-connections counting both ports, reading paused above
 * KR_CONN_OUT_HIGH unsent bytes, --idle-timeout, --write-timeout, and with
 * --token a SASL/PLAIN exchange within --hello-timeout. Request memory is
 * the Krappy port's too (server.h, budget.c): the input buffer and the rest
 * of a frame begun count in --max-pending-bytes with the Krappy port's, a
 * Produce is charged its frame and KR_PUBLISH_EVENT_COST per record until
 * it is answered, and a connection without room stops reading until bytes
 * are released (one past KR_CONN_PENDING_MAX of its own, too).
 */
#ifndef KR_SERVER_KAFKA_H
#define KR_SERVER_KAFKA_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/queue.h>

#include "kafka/codec.h"
#include "server/server.h"
#include "util/hostport.h"

/* A single krappyd's broker id (Metadata, FindCoordinator); on a cluster
 * each node's is its node id (kr_kafka_node_id). */
#define KR_KAFKA_NODE_ID 0

typedef struct kr_kconn kr_kconn;
typedef struct kr_kreq kr_kreq;

/* What a handler did: answered (KR_KH_DONE), or will (KR_KH_ASYNC, after
 * kr_kreq_async). */
typedef enum kr_khresult { KR_KH_DONE = 0, KR_KH_ASYNC } kr_khresult;
typedef struct kr_kgroups kr_kgroups;
typedef struct kr_kprefetch kr_kprefetch;
typedef struct kr_kprod kr_kprod;

/* Where a connection is in the SASL exchange (with --token). */
typedef enum kr_ksasl {
    KR_KSASL_START = 0, /* nothing yet: ApiVersions and SaslHandshake only */
    KR_KSASL_RAW,       /* SaslHandshake v0: the next frame is the bare token */
    KR_KSASL_HANDSHAKE, /* SaslHandshake v1: SaslAuthenticate next */
    KR_KSASL_DONE       /* authenticated (or no --token) */
} kr_ksasl;

/* One request in a connection's pipeline. */
struct kr_kreq {
    kr_kconn *conn;
    int16_t api_key, api_version;
    int32_t correlation_id;
    bool done;         /* answered (resp holds the frame, or nothing) */
    bool fifo;         /* a Produce started under the fifo exception */
    bool async;        /* holds a reference on the connection */
    bool close_after;  /* the connection closes once this is written */
    uint32_t pending;  /* store operations still to complete */
    uint64_t cost;     /* bytes charged to the budget until it finishes */
    uint64_t start_ns; /* its whole frame was taken off the input */
    /* Its timeline, for the debug log's "Kafka request timeline" line
     * (kafka_listener.c): when its frame's first bytes were seen, when the
     * handler returned (a Produce's batches queued to the store), when it
     * was answered (a Produce's writes done); the bytes its frame took and
     * those the socket still held when the frame was first seen, and the
     * loop thread's CPU clock then. */
    uint64_t seen_ns, handed_ns, done_ns;
    uint64_t frame_bytes, sock_unread, seen_cpu_ns;
    kr_buf resp;                /* the response frame, size included */
    kr_buf tail;                /* the frame's last bytes, sent after resp
                                   from their own memory (a Fetch's records,
                                   kr_kreq_respond_tail); empty for most */
    kr_kafka_arena arena;       /* the response's arrays and copied strings */
    void *ctx;                  /* handler state while the request runs */
    void (*cancel)(kr_kreq *r); /* withdraw a parked request: finish it silently */
    TAILQ_ENTRY(kr_kreq) link;
};

TAILQ_HEAD(kr_kreq_list, kr_kreq);

struct kr_kconn {
    kr_netconn net; /* the socket side (netconn.h); first */
    kr_kafka *k;
    kr_ksasl sasl;
    struct event *resume; /* starts waiting frames after an asynchronous
                             answer, from the loop (never from inside the
                             answering code: a group rebalance answers
                             other connections from within a call) */
    bool resume_pending;
    uint32_t parked;          /* requests waiting (a Fetch long poll, a JoinGroup) */
    struct kr_kreq_list reqs; /* in request order */
    struct kr_kreq_list free_reqs;
    uint32_t n_free_reqs;
    kr_kafka_arena dec;     /* the arrays of the request being decoded */
    char client_id[64];     /* as the client names itself (logs) */
    kr_kprefetch *prefetch; /* the next Fetch's records (kafka_fetch.c) */
    kr_kprod *prods;        /* idempotent producers registered here */
    size_t n_prods, cap_prods;
    char msg[512];
    uint64_t frame_seen_ns;     /* with trace: the input began the next frame (0: not yet) */
    uint64_t frame_sock_unread; /* ... and the socket held this many more bytes */
    uint64_t frame_seen_cpu_ns; /* ... and the loop thread's CPU clock read this */
    struct kr_ktrace *trace;    /* answered requests whose replies are not yet
                                   all written (debug log only; NULL else) */
    TAILQ_ENTRY(kr_kconn) link;
};

TAILQ_HEAD(kr_kconn_list, kr_kconn);

/* Metrics of the Kafka port, by API. */
typedef struct kr_kafka_metrics {
    kr_metric *accepted, *closed_idle, *closed_stalled, *closed_bad, *bytes_in, *bytes_out;
    kr_metric *requests[KR_KAFKA_NAPIS];
    kr_metric *latency[KR_KAFKA_NAPIS];
    kr_metric *produced, *fetched; /* records */
    kr_metric *prefetch_used, *prefetch_dropped;
} kr_kafka_metrics;

struct kr_kafka {
    kr_server *srv;
    const kr_config *cfg;
    struct evconnlistener *listener;
    struct kr_kconn_list conns;
    uint32_t n_conns;
    uint64_t next_conn_id;
    char bound[128]; /* the address as bound */
    uint16_t port;
    char host[KR_HOST_MAX + 1]; /* advertised (Metadata, FindCoordinator) */
    int32_t adv_port;
    kr_kgroups *groups;
    uint64_t producer_ids;   /* the next InitProducerId answer, shifted
                                 past its node byte (kafka_handlers.c) */
    uint64_t prefetch_bytes; /* held by the connections' prefetches */
    kr_kafka_metrics m;
    /* Scratch of the handlers, used synchronously on the loop: Produce's
     * conversion (events payload, decompressed records, headers, decode)
     * and Fetch's (stored events read back, records written). */
    kr_buf events, records, scratch, decode, stored;
    kr_buf views; /* Produce's kr_store_event array (kr_kproduce_events) */
    kr_buf frame; /* a request frame moved out of a connection's input */
};

/* ---- kafka_listener.c: the listener and connections ---- */

/*
 * kr_kafka_start - bind --kafka-listen (after the store is ready), set
 * srv->kafka, and log the address.
 * @return 0, or -1 (logged; srv->kafka then NULL).
 */
int kr_kafka_start(kr_server *srv);

/* The Kafka port as bound, 0 when k is NULL. */
uint16_t kr_kafka_port(const kr_kafka *k);

/* Housekeeping every KR_TICK_MS: connection timeouts, group deadlines.
 * NULL ok. */
void kr_kafka_tick(kr_kafka *k, uint64_t now_ns);

/* Stop accepting, withdraw parked requests, let the others finish, close
 * every connection once its responses are out. NULL ok. */
void kr_kafka_shutdown(kr_kafka *k);

/* Close every connection now (shutdown timeout). NULL ok. */
void kr_kafka_abort_all(kr_kafka *k, const char *why);

/* Accept again after a pause for lack of descriptors. NULL ok. */
void kr_kafka_accept_resume(kr_kafka *k);

/* Topic t was deleted (kr_ops_delete_topic, right after the store took
 * it out): every connection lets go of it - its idempotent producers'
 * bindings and records prefetched from it. Fetches parked on it are woken
 * by the store with w->gone. NULL k ok. */
void kr_kafka_topic_deleted(kr_kafka *k, const kr_topic *t);

/* Release everything (connections first). NULL ok. */
void kr_kafka_free(kr_kafka *k);

/* Mark r as finishing later (a store call or a long poll); the request
 * then holds its connection until answered. */
void kr_kreq_async(kr_kreq *r);

/*
 * kr_kreq_respond - answer r with `body`, the response struct of its API,
 * encoded in its version (ApiVersions above v2 as v0). A response that
 * cannot be encoded (a handler bug, or larger than --max-frame) closes the
 * connection with a log line.
 */
void kr_kreq_respond(kr_kreq *r, const void *body);

/*
 * kr_kreq_respond_tail - kr_kreq_respond for a body whose last field is an
 * empty bytes field that tail's bytes fill (kr_kafka_response_extend): the
 * frame goes out as the encoded body, then tail's memory by reference (or
 * copied, below KR_KRESP_BY_REF), with no copy into the frame. tail's
 * memory is taken either way (tail is left empty, with its max): once sent
 * it goes to the response pool (kafka_resp.h).
 */
void kr_kreq_respond_tail(kr_kreq *r, const void *body, kr_buf *tail);

/* Answer r with a raw frame (SASL v0 token exchange: the bytes alone). */
void kr_kreq_respond_raw(kr_kreq *r, const void *p, size_t n);

/* Charge r `bytes` of request memory until it finishes (a Produce's
 * events, held by the store until written). */
void kr_kreq_charge(kr_kreq *r, uint64_t bytes);

/* Finish r without a response (Produce with acks 0). */
void kr_kreq_silent(kr_kreq *r);

/* Finish r by closing the connection after the earlier responses, with a
 * log line saying why (Kafka's answer to what cannot be answered). */
void kr_kreq_close(kr_kreq *r, const char *why);

/* n zeroed elements of `size` bytes from r's arena, valid until r is
 * recycled (n below 1: an empty array, not NULL). @return NULL on ENOMEM. */
void *kr_kreq_array(kr_kreq *r, int32_t n, size_t size);

/* The answer to a request whose response cannot be built for lack of
 * memory: the connection closes, with a log line. @return KR_KH_DONE. */
kr_khresult kr_kreq_nomem(kr_kreq *r);

/* A wire array's count as a number of elements (null, -1, is none). */
static inline int32_t kr_kcount(int32_t n)
{
    return n > 0 ? n : 0;
}

/* Copy n bytes into r's arena, for a response built later (the request's
 * frame is gone by then). @return the copy, or NULL on ENOMEM. */
const char *kr_kreq_strdup(kr_kreq *r, const char *p, int32_t n);

/* Drop a reference on a connection (the last one frees it). */
void kr_kconn_release(kr_kconn *c);

/* The connection closed: drop its Fetch prefetch, pending or made
 * (kafka_fetch.c). The caller holds a reference. */
void kr_kfetch_conn_closed(kr_kconn *c);

/* The connection closed: its idempotent producers' registrations end
 * (kafka_produce.c). */
void kr_kproduce_conn_closed(kr_kconn *c);

/* Release the connection's Fetch prefetch with its memory. */
void kr_kfetch_conn_free(kr_kconn *c);

/* Topic t was deleted: forget what was prefetched from it (kafka_fetch.c). */
void kr_kfetch_topic_deleted(kr_kconn *c, const kr_topic *t);

/* Topic t was deleted: drop c's producer bindings on it; the store dropped
 * the registrations themselves (kafka_produce.c). */
void kr_kproduce_topic_deleted(kr_kconn *c, const kr_topic *t);

/* The connection's peer and id in a log line. */
void kr_kconn_log(kr_log_level lvl, const kr_kconn *c, const char *msg, const char *why);

/* ---- the handlers (kafka_handlers.c has the table) ---- */

typedef kr_khresult (*kr_khandler_fn)(kr_kconn *c, kr_kreq *r, const kr_kafka_request *req);

typedef struct kr_khandler {
    int16_t key;
    bool fifo; /* may start while only fifo requests run (Produce) */
    kr_khandler_fn run;
} kr_khandler;

/* The handler of an API key, or NULL when it has none. */
const kr_khandler *kr_khandler_for(int16_t key);

/* The index of an API key in kr_kafka_apis (metrics), or -1. */
int kr_kafka_api_index(int16_t key);

/* Answer a bare SASL token (after SaslHandshake v0). */
void kr_khandle_sasl_raw(kr_kconn *c, kr_kreq *r, const uint8_t *token, size_t len);

/* Check PLAIN auth bytes (authzid NUL user NUL password) against --token.
 * @return true when the password is the token. */
bool kr_ksasl_plain_ok(const kr_kafka *k, const uint8_t *p, size_t n);

kr_khresult kr_khandle_produce(kr_kconn *c, kr_kreq *r, const kr_kafka_request *req);

/*
 * kr_kproduce_events - read the records of Produce batch b as the events
 * kr_store_publish_events stores, with no PUBLISH payload in between: the
 * same events kafka/event.h's mapping makes (kr_kafka_batch_to_events).
 * @param max_bytes   at most this many bytes decompressed, into `records`
 * @param max_events  more records than this (--max-publish-events) are
 *                    refused as a PUBLISH of that many events would be
 * @param views       receives the kr_store_event array, b->count of them
 *                    (reset here); they point into b, `records` and
 *                    `headers`, which must stay untouched while used
 * @param headers     receives the records' headers as CBOR maps (reset)
 * @param scratch     working memory for the headers
 * @param cbor_len    out: the length of the same events as a PUBLISH
 *                    payload {"events": [...]} - the size the request is
 *                    charged and limited by, as for the Krappy port
 * @return KR_KAFKA_ERR_NONE, or the Kafka error of the first record that
 *         cannot be read or stored (msg says which): a batch of no records
 *         INVALID_RECORD, too many RECORD_LIST_TOO_LARGE.
 */
kr_kafka_err kr_kproduce_events(const kr_kafka_batch *b, size_t max_bytes, uint32_t max_events,
                                kr_buf *records, kr_buf *views, kr_buf *headers, kr_buf *scratch,
                                uint64_t *cbor_len, char *msg, size_t msglen);
kr_khresult kr_khandle_fetch(kr_kconn *c, kr_kreq *r, const kr_kafka_request *req);
kr_khresult kr_khandle_create_topics(kr_kconn *c, kr_kreq *r, const kr_kafka_request *req);
kr_khresult kr_khandle_delete_topics(kr_kconn *c, kr_kreq *r, const kr_kafka_request *req);
kr_khresult kr_khandle_describe_configs(kr_kconn *c, kr_kreq *r, const kr_kafka_request *req);
kr_khresult kr_khandle_alter_configs(kr_kconn *c, kr_kreq *r, const kr_kafka_request *req);
kr_khresult kr_khandle_join_group(kr_kconn *c, kr_kreq *r, const kr_kafka_request *req);
kr_khresult kr_khandle_sync_group(kr_kconn *c, kr_kreq *r, const kr_kafka_request *req);
kr_khresult kr_khandle_heartbeat(kr_kconn *c, kr_kreq *r, const kr_kafka_request *req);
kr_khresult kr_khandle_leave_group(kr_kconn *c, kr_kreq *r, const kr_kafka_request *req);
kr_khresult kr_khandle_offset_commit(kr_kconn *c, kr_kreq *r, const kr_kafka_request *req);
kr_khresult kr_khandle_offset_fetch(kr_kconn *c, kr_kreq *r, const kr_kafka_request *req);

/*
 * kr_kafka_topic_for - the topic a Kafka request names, creating it when
 * `create` and --kafka-auto-create allow (the CREATE is queued: appends and
 * reads right after it are ordered behind it).
 * @return the topic; NULL with *err UNKNOWN_TOPIC_OR_PARTITION (absent),
 *         INVALID_TOPIC_EXCEPTION (not a valid name) or
 *         KAFKA_STORAGE_ERROR (creation could not be queued).
 */
kr_topic *kr_kafka_topic_for(kr_kafka *k, kr_kafka_str name, bool create, int16_t *err);

/* This node's Kafka broker id: KR_KAFKA_NODE_ID alone, its --node-id in a
 * cluster (each node a broker of its own, so that a client sees a new
 * leader, or coordinator, as another broker at another address). */
int32_t kr_kafka_node_id(const kr_kafka *k);

/* Whether this node is the group coordinator: always alone, on a cluster
 * while it leads (FindCoordinator names the leader). Elsewhere the group
 * APIs answer NOT_COORDINATOR, and the listener's tick hands its groups
 * over (kr_kgroups_resign). */
bool kr_kafka_coordinates(const kr_kafka *k);

/* Live members of Kafka group `group` (0 when k is NULL: no listener). */
size_t kr_kafka_group_members(const kr_kafka *k, const char *group, size_t len);

/* The Kafka error for a krappy one (STORAGE -> KAFKA_STORAGE_ERROR, ...). */
int16_t kr_kafka_err_from(krappy_err e);

#endif
