/*
 * server/server.h - krappyd's event loop, listener and connections.
 *
 * One libevent loop owns every socket. A connection (kr_conn) reads frames,
 * turns each into a request (kr_req) and runs requests through a per-
 * connection pipeline that keeps PROTOCOL.md's order: requests take effect
 * in order and are answered in order, even when a request completes later
 * (on the storage thread, or after a long poll).
 *
 * Pipeline rule. A request starts when every earlier request on its
 * connection has finished - except that a request whose handler is marked
 * `fifo` (its effect is applied by the single storage writer, which runs jobs
 * in submission order) may start while only other fifo requests are still
 * running. Replies are buffered per request when they complete out of order
 * and written strictly in request order.
 *
 * Back-pressure. A connection stops reading when its unsent replies exceed
 * KR_CONN_OUT_HIGH or when it holds a whole frame it cannot start yet; it
 * resumes below KR_CONN_OUT_LOW. A connection whose replies stay unread for
 * --write-timeout is closed.
 *
 * Request memory (budget.c). The bytes of requests read and not yet
 * answered - the input buffer, plus the rest of a frame begun (reserved
 * before it is read), plus what each started request is charged until it
 * finishes - are counted per connection and in all. A connection stops
 * reading past kr_netconn_pending_max of its own, and when the server's
 * --max-pending-bytes has no room for its next frame. Memory per
 * connection is therefore bounded by about kr_netconn_pending_max +
 * KR_CONN_OUT_HIGH + one reply, and the requests of all of them by
 * --max-pending-bytes (or one frame, when a frame is larger).
 */
#ifndef KR_SERVER_SERVER_H
#define KR_SERVER_SERVER_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/queue.h>

#include <event2/event.h>

#include "cluster/cluster.h"
#include "util/buf.h"
#include "proto/msg.h"
#include "server/config.h"
#include "server/netconn.h"
#include "util/metrics.h"
#include "store/store.h"

/* Stop reading a connection above this many unsent reply bytes ... */
#define KR_CONN_OUT_HIGH (1024u * 1024)
/* ... and start again below this many. */
#define KR_CONN_OUT_LOW (256u * 1024)
/* Read from a socket in chunks of up to this. */
#define KR_CONN_READ_CHUNK (64u * 1024)
/* After an error that closes the connection, keep draining the client's
 * input this long so the ERROR is not destroyed by a TCP reset. */
#define KR_CONN_LINGER_MS 2000
/* Housekeeping period (idle, stalled and unauthenticated connections). */
#define KR_TICK_MS 250
/* A connection's requests read and not answered may hold this many bytes
 * (at least a frame of max_frame and a read chunk: kr_netconn_pending_max). */
#define KR_CONN_PENDING_MAX (16u * 1024 * 1024)
/* What a started PUBLISH is charged per event besides its frame: its facts
 * for the overlay and the growth to its stored form (store/publish.c). */
#define KR_PUBLISH_EVENT_COST 64
/* A connection whose admitted frame stops arriving this long while others
 * wait for request memory is closed (budget.c). */
#define KR_STALL_MS 10000
/* The connection that has waited this long for request memory reads its
 * frame past the budget (budget.c). */
#define KR_QUEUE_AGE_MS 500

typedef struct kr_server kr_server;
typedef struct kr_conn kr_conn;
typedef struct kr_kafka kr_kafka; /* the Kafka listener (kafka.h) */
typedef struct kr_req kr_req;
typedef struct kr_breader kr_breader;

typedef enum kr_req_state { KR_REQ_RUNNING = 0, KR_REQ_DONE } kr_req_state;

/* One request in a connection's pipeline. */
struct kr_req {
    kr_conn *conn;
    uint32_t type;
    kr_cid cid;
    kr_req_state state;
    bool fifo;        /* started under the fifo exception */
    bool async;       /* its handler returned KR_H_ASYNC (holds a ref) */
    bool close_after; /* the reply closes the connection */
    bool ack_none;    /* PUBLISH ack "none": no reply on success, and any
                         ERROR closes the connection (set before the handler) */
    uint64_t cost;    /* bytes charged to the budget until it finishes */
    uint64_t start_ns;
    kr_buf reply; /* whole reply frame, when finished out of order */
    /* Handler state while the request runs asynchronously. */
    kr_topic *topic;
    void *ctx;
    /* Stop a running request (a parked long poll): reply `code` (or nothing
     * when 0, the connection being gone) and finish it. */
    void (*cancel)(kr_req *r, krappy_err code);
    TAILQ_ENTRY(kr_req) link;
};

TAILQ_HEAD(kr_req_list, kr_req);

struct kr_conn {
    union {
        kr_netconn net; /* the socket side (netconn.h) */
        /* net.bev, its first member, by the name the Krappy port's files
         * use: the socket, NULL once it is closed */
        struct bufferevent *bev;
    };
    kr_server *srv;         /* = net.srv */
    struct event *flush_ev; /* writes the replies of a loop turn (session.c) */
    bool flush_active;      /* flush_ev is active: the next reply need not activate it */
    bool frames_held;       /* conn_process left whole frames (pipeline, back-pressure) */
    bool authed;
    uint32_t parked;         /* requests waiting for data (long polls) */
    struct kr_req_list reqs; /* in request order, finished or not */
    struct kr_req_list free_reqs;
    uint32_t n_free_reqs;
    kr_buf out;         /* this turn's small replies, framed, for on_flush (session.c) */
    kr_buf enc;         /* reply payload being encoded */
    kr_buf scratch;     /* kr_req_decode scratch */
    kr_buf tmp;         /* handlers' second buffer */
    kr_topic *producer; /* PRODUCER_REGISTER'd topic, or NULL */
    /* In a cluster the registration names the topic instead (it exists
     * once the log's TOPIC_CREATE is applied): cl_topic_len 0 for none. */
    size_t cl_topic_len;
    uint8_t cl_topic[KRAPPY_MAX_NAME_BYTES];
    const uint8_t *payload; /* the request's payload, during its handler */
    size_t payload_len;
    bool idem;           /* ... an idempotent registration (section 7): */
    uint32_t idem_epoch; /* its epoch */
    size_t idem_id_len;  /* and the producer id */
    uint8_t idem_id[KRAPPY_MAX_NAME_BYTES];
    bool producer_gone;        /* that topic was deleted: PUBLISH gets NO_SUCH_TOPIC
                                  until the next PRODUCER_REGISTER */
    kr_member *consumer;       /* CONSUMER_REGISTER'd member, or NULL */
    kr_tgroup *consumer_group; /* ... of this group */
    char errmsg[512];
    TAILQ_ENTRY(kr_conn) link;
};

TAILQ_HEAD(kr_conn_list, kr_conn);

/* Metrics the loop records; registered once at start. */
typedef struct kr_server_metrics {
    kr_metric *connections;
    kr_metric *accepted;
    kr_metric *rejected;
    kr_metric *closed_idle;
    kr_metric *closed_stalled;
    kr_metric *closed_frame_stalled;
    kr_metric *pending_bytes;
    kr_metric *budget_waits;
    kr_metric *bytes_in;
    kr_metric *bytes_out;
    kr_metric *requests[KRAPPY_T_REQUEST_MAX + 1];
    kr_metric *latency[KRAPPY_T_REQUEST_MAX + 1];
    kr_metric *errors[KRAPPY_E_WIRE_MAX + 1];
} kr_server_metrics;

struct kr_server {
    const kr_config *cfg;
    struct event_base *base;
    struct evconnlistener *listener;
    struct event *tick;
    struct event *sigterm, *sigint;
    struct event *accept_retry;
    struct kr_conn_list conns;
    uint32_t n_conns;
    uint32_t max_conns; /* --max-connections, or fewer (server/fdplan.h) */
    /* The request memory budget (budget.c). */
    uint64_t pending_bytes;                /* every connection's in + reserved + charged */
    struct kr_breader_list budget_waiters; /* wait for room, in order */
    struct event *budget_resume;           /* lets the waiters read again */
    kr_breader *budget_resuming;           /* the waiter being let through ... */
    bool budget_resuming_past;             /* ... past the budget */
    kr_breader *budget_past;               /* the one frame read past the budget */
    uint64_t next_conn_id;
    bool shutting_down;
    uint64_t shutdown_ns;
    char listen_addr[128]; /* as bound, e.g. 127.0.0.1:40123 */
    uint16_t port;
    uint16_t http_port; /* the admin port as bound, 0 when off */
    kr_kafka *kafka;    /* the Kafka listener, NULL when off; its connections
                           count in n_conns (one --max-connections) */
    kr_metrics *metrics;
    kr_server_metrics m;
    kr_store *store; /* NULL in unit tests of the session alone */
    /* PROTOCOL.md section 8 (cluster_ops.c): the cluster this node is a
     * member of (NULL: a single node, a cluster of one named cluster_id),
     * and where clients reach it (and its Kafka listener, "" for none). */
    kr_cluster *cluster;
    kr_replica *replica;             /* applies the log's store commands (a member's) */
    kr_buf cmd;                      /* a command being encoded for the log */
    struct kr_cursor_rounds *rounds; /* ACKs' cursors of this loop turn (cluster_groups.c) */
    struct kr_write_batch *batch;    /* writes of this loop turn (cluster_batch.c) */
    bool led;                        /* led the cluster at the last tick */
    char cluster_id[KR_CLUSTER_ID_MAX + 1];
    char advertise[KR_HOSTPORT_MAX + 1];
    char kafka_advertise[KR_HOSTPORT_MAX + 1];
    bool failed; /* something could not start after the loop began: exit 1 */
    /* Request type -> handler; kr_handler_for unless a test swaps it. */
    const struct kr_handler *(*handler_for)(uint32_t type);
};

/*
 * kr_server_setup - everything kr_server_init does except binding the
 * listener: the loop, metrics, housekeeping and signals. Unit tests use it
 * to attach connections of their own (kr_conn_new on a socketpair).
 * @return 0 on success, -1 on failure
 */
int kr_server_setup(kr_server *srv, const kr_config *cfg, kr_metrics *metrics);

/* Run the loop until shutdown completes. @return 0 on a clean stop. */
int kr_server_run(kr_server *srv);

/* Bind the listener (after the store is ready). @return 0 or -1. */
int kr_server_listen(kr_server *srv);

/*
 * kr_server_bind - bind a listener on `addr` (HOST:PORT, port 0 for a free
 * one) to srv's loop, calling `cb` with srv for each connection; the
 * address as bound goes to bound[0..boundlen) and *port. Logs why it fails.
 * @return the listener (free with evconnlistener_free), or NULL.
 */
struct evconnlistener *kr_server_bind(kr_server *srv, const char *addr,
                                      void (*cb)(struct evconnlistener *, evutil_socket_t,
                                                 struct sockaddr *, int, void *),
                                      char *bound, size_t boundlen, uint16_t *port);

/* An output evbuffer callback (arg: a uint64_t) that records, in
 * kr_mono_ns time, when the client last took bytes - progress that tells a
 * slow reader from a stalled one (--write-timeout). Both ports use it. */
void kr_server_note_drain(struct evbuffer *buf, const struct evbuffer_cb_info *info,
                          void *last_drain_ns);

/* Begin a graceful stop (what SIGTERM does). */
void kr_server_shutdown(kr_server *srv);

/* Release everything. Safe on a partly initialised server. */
void kr_server_free(kr_server *srv);

/* ---- session.c: connections and the request pipeline ---- */

/* Take ownership of an accepted socket. @return the connection or NULL. */
kr_conn *kr_conn_new(kr_server *srv, int fd, const struct sockaddr *sa, int salen);

/* Housekeeping for one connection (idle, stall, hello deadline, linger). */
void kr_conn_tick(kr_conn *c, uint64_t now_ns);

/* Start the graceful close of a connection (server shutdown). */
void kr_conn_shutdown(kr_conn *c);

/* Cancel the connection's parked requests (long polls), answering them
 * `code` (KRAPPY_OK: no answer). */
void kr_conn_cancel_parked(kr_conn *c, krappy_err code);

/* Close the socket at once, dropping unsent replies. */
void kr_conn_abort(kr_conn *c, const char *why);

/* Decide again whether to read from c (kr_netconn_update_read). */
void kr_conn_update_read(kr_conn *c);

/*
 * kr_req_async - a handler that will finish its request later calls this
 * before anything that may finish it (a store call whose callback can run
 * at once), then returns KR_H_ASYNC. The request holds the connection's
 * memory until it finishes.
 */
void kr_req_async(kr_req *r);

/*
 * kr_req_reply - finish a request with a reply whose payload is in
 * c->enc (for handlers running on the loop) or in `payload`.
 * Handlers call this exactly once per request, synchronously or later.
 */
void kr_req_reply(kr_req *r, uint32_t type, const uint8_t *payload, size_t len);

/* Finish a request with a reply whose payload is the whole content of
 * `payload` (moved, not copied: file segments stay sendfile). */
void kr_req_reply_evbuffer(kr_req *r, uint32_t type, struct evbuffer *payload);

/* Finish a request that has no reply (PUBLISH with ack "none"). */
void kr_req_silent(kr_req *r);

/* 1 when r is its connection's oldest unanswered request (its reply goes
 * straight to the socket), else 0. */
bool kr_req_is_head(const kr_req *r);

/* Finish a request with an ERROR (message copied; cid echoed). */
void kr_req_error(kr_req *r, krappy_err code, const char *message, const kr_error_extra *extra);

/* ---- budget.c: the memory of requests, all connections together ---- */

/* Set up and release the budget's state (from kr_server_setup/free).
 * @return 0, or -1 without memory for its event. */
int kr_budget_init(kr_server *srv);
void kr_budget_free(kr_server *srv);

/* Add delta (negative: release) to the pending bytes; a release may let
 * the waiting connections read again. */
void kr_budget_add(kr_server *srv, int64_t delta);

/* May b's connection read now? When the budget has room for the rest of
 * the frame it has begun (reserved now; a frame already admitted reads on),
 * or for a read chunk when it has none begun. Otherwise it waits, and
 * b->update_read is called once it fits (or has waited longest,
 * KR_QUEUE_AGE_MS). */
bool kr_budget_may_read(kr_breader *b);

/* b's connection took its admitted frame whole off its input: the
 * admission ends with it, and the next frame - already begun in the input
 * when frames are pipelined - finds room for itself before it is read. */
void kr_budget_frame_taken(kr_breader *b);

/* The rest of the frame begun in a connection's input `in` (a 4-byte
 * big-endian size, then that many bytes, at least min and at most max):
 * what a kr_breader's unfinished says. 0 when no frame is begun, it is
 * whole, or its size is refused; the size's missing bytes and min while
 * the size is incomplete. */
size_t kr_budget_frame_rest(struct evbuffer *in, uint32_t min, uint32_t max);

/* The evbuffer callback counting a connection's input buffer into the
 * budget (arg: its kr_breader), added with evbuffer_add_cb. */
void kr_budget_on_input(struct evbuffer *buf, const struct evbuffer_cb_info *info, void *arg);

/* b's connection closes, its input callback removed: it leaves the queue
 * and gives its input and reservation back (its running requests release
 * their charges as they finish). */
void kr_budget_conn_gone(kr_breader *b);

/* Whether b's admitted frame has stopped arriving for KR_STALL_MS while
 * others wait for room (the client's doing, when its connection is not
 * paused: read_paused false). */
bool kr_budget_stalled(const kr_breader *b, bool read_paused, uint64_t now_ns);

/* Housekeeping: the longest waiter past KR_QUEUE_AGE_MS reads past the
 * budget, when no other frame does. */
void kr_budget_tick(kr_server *srv, uint64_t now_ns);

/* ---- handlers.c: one function per request type ---- */

/* KR_H_DONE: the handler finished the request (kr_req_reply/error/silent).
 * KR_H_ASYNC: it called kr_req_async and will finish it later. */
typedef enum kr_hresult { KR_H_DONE = 0, KR_H_ASYNC } kr_hresult;

typedef struct kr_handler {
    const char *name;
    bool fifo; /* may start while only fifo requests run (see above) */
    kr_hresult (*run)(kr_conn *c, kr_req *r, const kr_request *req);
} kr_handler;

/* A connection closed: handlers drop what it held (a consumer membership,
 * whose pending events go back to the group). */
void kr_handlers_conn_closed(kr_conn *c);

/* The handler of a request type, or NULL when this server has none. */
const kr_handler *kr_handler_for(uint32_t type);

/* ---- cluster_ops.c: PROTOCOL.md section 8 ---- */

/*
 * kr_server_cluster_start - once the data port listens: fix the address
 * clients reach this node at, then start as a cluster member (with
 * --raft-listen) or name the cluster of one. A member that cannot start
 * after all stops the server (srv->failed).
 * @return 0, or -1 (logged).
 */
int kr_server_cluster_start(kr_server *srv);

/* Apply nothing more (after kr_cluster_stop, before kr_store_close). */
void kr_server_cluster_halt(kr_server *srv);

/* The cluster's loop-side state (the replica), after kr_cluster_stop and
 * kr_store_close. NULL members ok. */
void kr_server_cluster_free(kr_server *srv);

/*
 * PRODUCER_REGISTER and PUBLISH on a cluster's leader (cluster_write.c):
 * the request goes into the log as a store command (TOPIC_CREATE, PUBLISH
 * with the leader's clock) and is answered with the result of applying it
 * here, once committed on a majority (PROTOCOL.md section 8).
 */
kr_hresult kr_server_cluster_register(kr_conn *c, kr_req *r, const kr_request *req);

/* handlers.c, shared with cluster_write.c: a PUBLISH stored (res OK)
 * answered - nothing for ack "none", else OK {first, count(, duplicate)};
 * an idempotent connection's PUBLISH without `seq` refused, and a PUBLISH
 * on a connection whose topic was deleted refused with NO_SUCH_TOPIC
 * (@return true when it was, r answered). */
void kr_reply_published(kr_req *r, const kr_store_result *res);
bool kr_publish_lacks_seq(kr_conn *c, kr_req *r, const kr_request *req);
bool kr_publish_topic_gone(kr_conn *c, kr_req *r);
kr_hresult kr_server_cluster_publish(kr_conn *c, kr_req *r, const kr_request *req);

/* The error of a write answered after the store or the log: with the
 * leader's address after NOT_LEADER, the event at fault after a PUBLISH's
 * INVALID_ARGUMENT, the seq expected after OUT_OF_ORDER_SEQUENCE. */
void kr_server_write_error(kr_req *r, const kr_store_result *res);

/* kr_server_cluster_command - the command in srv->cmd into the log (on
 * the leader), after this turn's batch (kr_server_cluster_batch_flush);
 * done gets its result once applied here.
 * @return KRAPPY_OK (done follows), else the error with msg: NOT_LEADER
 *         (naming the leader), BUSY, STORAGE, INVALID_ARGUMENT (too big). */
krappy_err kr_server_cluster_command(kr_server *srv, kr_replica_done done, void *arg, char *msg,
                                     size_t msglen);

/* kr_server_cluster_leads - KRAPPY_OK on the leader, else NOT_LEADER with
 * a sentence naming the leader (when known) in msg. */
krappy_err kr_server_cluster_leads(kr_server *srv, char *msg, size_t msglen);

/* The NOT_LEADER sentence of a node whose store failed to apply the log
 * (kr_cluster_halted) while no other leader is known. */
void kr_server_halted_why(char *msg, size_t msglen);

/* kr_server_cluster_send - len bytes of one command into the log as they
 * are (nothing flushed first); as kr_server_cluster_command otherwise. */
krappy_err kr_server_cluster_send(kr_server *srv, const void *cmd, size_t len, kr_replica_done done,
                                  void *arg, char *msg, size_t msglen);

/* ---- cluster_batch.c: a loop turn's writes as one entry ---- */

/* kr_server_cluster_batch - the PUBLISH or PRODUCER_REGISTER in srv->cmd
 * into this loop turn's BATCH (cluster/cmd.h), sent at the turn's end;
 * done gets its own result once the entry is applied here, or the error
 * every write of the batch got (NOT_LEADER after a lost lead: outcome
 * unknown).
 * @return as kr_server_cluster_command (KRAPPY_OK: done follows). */
krappy_err kr_server_cluster_batch(kr_server *srv, kr_replica_done done, void *arg, char *msg,
                                   size_t msglen);

/* Send this turn's batch now (nothing open: nothing). */
void kr_server_cluster_batch_flush(kr_server *srv);

/* Answer what was not sent SHUTTING_DOWN and free. */
void kr_server_cluster_batch_free(kr_server *srv);

/* kr_server_cluster_submit - the command in srv->cmd for request r (made
 * async here); done(r, result) answers it. @return KR_H_ASYNC. */
kr_hresult kr_server_cluster_submit(kr_conn *c, kr_req *r, kr_replica_done done);

/* The admin port's and the Kafka listener's produce on a cluster: the
 * PUBLISH payload (len bytes; its topic is created where missing) into the
 * log; done gets its result.
 * @return KRAPPY_OK (done follows), else the error with msg: NOT_LEADER
 *         (naming the leader), BUSY, STORAGE. */
krappy_err kr_server_cluster_produce(kr_server *srv, const char *topic, size_t tlen,
                                     const uint8_t *payload, size_t len, kr_replica_done done,
                                     void *arg, char *msg, size_t msglen);

/* ---- cluster_groups.c: consumer groups on a cluster's leader ---- */

/*
 * kr_server_cluster_join - CONSUMER_REGISTER on t: a GROUP_CREATE (at the
 * cursor `start` names now; a no-op for a group that exists) through the
 * log, then the member joins here and the request is answered with the
 * group's cursor. @return KR_H_DONE (answered: a bad start offset) or
 * KR_H_ASYNC.
 */
kr_hresult kr_server_cluster_join(kr_conn *c, kr_req *r, const kr_request *req, kr_topic *t);

/*
 * kr_server_cluster_cursor - tg's cursor into the log: every call of one
 * loop turn for a topic shares one GROUP_CURSORS command, sent once the
 * turn's other callbacks ran. done(arg, res) follows once it is applied
 * here: res.first is the cursor committed for tg (at least the one tg had
 * at this call); else the error (NOT_LEADER, NO_SUCH_TOPIC, NOT_FOUND for
 * a group deleted meanwhile, STORAGE). It may run before this returns.
 */
void kr_server_cluster_cursor(kr_server *srv, kr_tgroup *tg, kr_replica_done done, void *arg);

/* GROUP_SEEK (to the offset the request names now) and GROUP_DELETE on a
 * cluster: the log's command; done gets its result (res.first the cursor).
 * @return as kr_server_cluster_command, and GROUP_SEEK's own refusals. */
krappy_err kr_server_cluster_group_seek(kr_server *srv, kr_tgroup *tg, kr_seek_kind to,
                                        uint64_t value, kr_store_done done, void *arg, char *msg,
                                        size_t msglen);
krappy_err kr_server_cluster_group_delete(kr_server *srv, kr_tgroup *tg, kr_store_done done,
                                          void *arg, char *msg, size_t msglen);

/* DELETE_TOPIC and TOPIC_CONFIG `set` on a cluster (kr_ops_delete_topic,
 * kr_ops_topic_configure): the log's TOPIC_DELETE / TOPIC_CONFIG; done gets
 * the result applying it here gave. A deletion lets go of the topic's
 * producers and consumers at once (a PUBLISH of theirs must not follow it
 * in the log); producers registered after that stay. *t: the topic as it is now (NULL: the command
 * makes it).
 * @return as kr_server_cluster_command. */
krappy_err kr_server_cluster_topic_delete(kr_server *srv, kr_topic *t, kr_replica_done done,
                                          void *arg, char *msg, size_t msglen);
krappy_err kr_server_cluster_topic_config(kr_server *srv, const uint8_t *name, size_t len,
                                          const kr_topic_config *set, kr_topic **t,
                                          kr_replica_done done, void *arg, char *msg,
                                          size_t msglen);

/* The tick's look at leadership: a node that stopped leading lets go of
 * what its groups held beyond the log - members (their connections lose
 * the registration), hand-outs, ACKs not committed - and puts each group
 * back at its logged cursor, where every other node has it. */
void kr_server_cluster_tick(kr_server *srv);

/* Answer the cursors not sent yet with SHUTTING_DOWN, and free them. */
void kr_server_cluster_rounds_free(kr_server *srv);

/* In a cluster: answer NOT_LEADER (with the leader's address when known)
 * to a request that needs the leader, on a node that does not lead.
 * @return true when it answered (the request is finished). */
bool kr_server_not_leader(kr_conn *c, kr_req *r, const kr_request *req);

/* CLUSTER: the picture, or a membership change (answered once committed). */
kr_hresult kr_handle_cluster(kr_conn *c, kr_req *r, const kr_request *req);

/* ---- admin_ops.c: administration, for the data port and the admin port ---- */

/*
 * kr_ops_delete_topic - DELETE_TOPIC (kr_store_delete_topic), then every
 * connection's registrations on the topic dropped: its producers' next
 * PUBLISH gets NO_SUCH_TOPIC until they register again, its groups'
 * members leave (a POLL parked there is answered NOT_REGISTERED). On a
 * cluster through the log (NOT_LEADER on a follower).
 * @return KRAPPY_OK when queued (`done` follows), else the error with msg.
 */
krappy_err kr_ops_delete_topic(kr_server *srv, kr_topic *t, kr_store_done done, void *arg,
                               char *msg, size_t msglen);

/* kr_ops_topic_configure - a topic's settings changed (TOPIC_CONFIG `set`,
 * the admin API, Kafka's CreateTopics and AlterConfigs):
 * kr_store_topic_configure; on a cluster through the log (NOT_LEADER on a
 * follower; *t NULL while the topic does not exist yet). */
krappy_err kr_ops_topic_configure(kr_server *srv, const uint8_t *name, size_t len,
                                  const kr_topic_config *set, kr_topic **t, kr_store_done done,
                                  void *arg, char *msg, size_t msglen);

/* kr_ops_group_delete - GROUP_DELETE (kr_store_group_delete), then the
 * group's members lose their registrations; on a cluster through the log
 * (every node deletes it). @return as kr_ops_delete_topic. */
krappy_err kr_ops_group_delete(kr_server *srv, kr_tgroup *tg, kr_store_done done, void *arg,
                               char *msg, size_t msglen);

/* kr_ops_group_seek - GROUP_SEEK (kr_store_group_seek); on a cluster
 * through the log. @return as kr_store_group_seek, and NOT_LEADER. */
krappy_err kr_ops_group_seek(kr_server *srv, kr_tgroup *tg, kr_seek_kind to, uint64_t value,
                             kr_store_done done, void *arg, char *msg, size_t msglen);

/* kr_ops_forget - every connection lets go of group tg of t, or of t and
 * all its groups when tg is NULL (a deletion the log applied). */
void kr_ops_forget(kr_server *srv, const kr_topic *t, const kr_tgroup *tg);

/* ---- handlers_group.c: consumer groups on the data port ---- */

/* The request handlers (kr_handler_for's table). */
kr_hresult kr_handle_consumer_register(kr_conn *c, kr_req *r, const kr_request *req);
kr_hresult kr_handle_poll(kr_conn *c, kr_req *r, const kr_request *req);
kr_hresult kr_handle_ack(kr_conn *c, kr_req *r, const kr_request *req);
kr_hresult kr_handle_group_seek(kr_conn *c, kr_req *r, const kr_request *req);
kr_hresult kr_handle_group_delete(kr_conn *c, kr_req *r, const kr_request *req);

/* c's consumer registration goes (its pending events back to the group).
 * No registration: nothing. */
void kr_consumer_drop(kr_conn *c);

/* c becomes member m of tg (dropping a registration it had); `taken`, a
 * connection m was taken over from, loses its own. */
void kr_consumer_bind(kr_conn *c, kr_tgroup *tg, kr_member *m, void *taken);

/* handlers.c: NO_SUCH_TOPIC answered (@return NULL), or the topic. */
kr_topic *kr_need_topic(kr_conn *c, kr_req *r, const kr_str *name);

#endif
