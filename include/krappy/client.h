/*
 * krappy/client.h - libkrappy, the C client of krappyd.
 *
 * A krappy_client is one TCP connection speaking the Krappy wire protocol
 * (docs/PROTOCOL.md). Calls block, each bounded by the client's timeout.
 * Requests can be pipelined: krappy_send() queues and writes as the socket
 * allows, krappy_recv() returns replies in request order. While it waits to
 * write, the client keeps reading replies into its own buffer, so a long
 * pipeline never stalls on the server's back-pressure.
 *
 * The requests of the protocol have typed calls: krappy_register_producer
 * and krappy_publish (with a pipelined form, krappy_publish_send/_recv) to
 * write; krappy_fetch, krappy_get, krappy_scan_begin/_next_page,
 * krappy_topics and krappy_stats to read; krappy_register_consumer,
 * krappy_poll and krappy_ack_upto/_offsets to consume as a member of a
 * consumer group (with pipelined forms, krappy_poll_send/_recv and
 * krappy_ack_*_send/krappy_ack_recv). Each typed call is one round trip
 * and, like krappy_call, needs every earlier pipelined reply received first.
 * Results come back as objects the caller owns and frees with the matching
 * krappy_*_free; they do not depend on the client (they stay valid after it
 * is closed or freed). Helpers render CBOR values for people
 * (krappy_cbor_to_diag, krappy_cbor_to_json) and turn JSON into CBOR
 * (krappy_json_to_cbor).
 *
 * Thread safety: a krappy_client is used by one thread at a time; distinct
 * clients are independent. Batches, scans and result objects are separate
 * objects with the same rule (one thread at a time each); result objects
 * are never written after they are returned, so any number of threads may
 * read one. The library keeps no global state.
 *
 * Errors: functions return krappy_err (KRAPPY_OK = 0). A server ERROR reply
 * returns its wire code (1..17); local failures return KRAPPY_E_IO,
 * KRAPPY_E_TIMEOUT, KRAPPY_E_CLOSED, KRAPPY_E_PROTOCOL, KRAPPY_E_NOMEM or
 * KRAPPY_E_USAGE. Either way krappy_client_errmsg() holds a sentence saying
 * what happened. After KRAPPY_E_IO, _TIMEOUT, _CLOSED or _PROTOCOL, or a
 * server error that closes the connection (krappy_err_closes()), the
 * connection is closed: connect again (and register again) to go on.
 *
 * Reconnecting: the library never reconnects by itself, because what must be
 * redone depends on the caller. Registrations belong to the connection: a
 * new connection (krappy_connect) has no producer and no consumer, so call
 * krappy_register_producer again before publishing, and
 * krappy_register_consumer before polling (krappy_hello too, when the
 * server wants a token); events a consumer was handed and had not
 * acknowledged go back to its group. Batches whose PUBLISH was not acknowledged
 * before the connection was lost may or may not have been stored; publish
 * them again (possibly storing them twice) or check with FETCH - or produce
 * through an idempotent producer handle (krappy_producer, below), which
 * reconnects and resends by itself and stores every batch exactly once.
 * Scans survive a reconnect: the cursor works from any connection for a
 * while.
 */
#ifndef KRAPPY_CLIENT_H
#define KRAPPY_CLIENT_H

#include <stddef.h>
#include <stdint.h>

#include "krappy/protocol.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct krappy_client krappy_client;

/* Options for a new client. Zero fields take the defaults below. */
typedef struct krappy_opts {
    int connect_timeout_ms;  /* default 5000 */
    int timeout_ms;          /* per call; default 30000; negative = none */
    uint32_t max_frame;      /* largest reply accepted; default 16 MiB, raised
                                to the server's max_frame by krappy_hello */
    const char *token;       /* sent by krappy_hello when set; copied */
    const char *client_name; /* sent by krappy_hello as `client`; copied */
} krappy_opts;

#define KRAPPY_DEFAULT_CONNECT_TIMEOUT_MS 5000
#define KRAPPY_DEFAULT_TIMEOUT_MS         30000

/* The host krappy_connect uses when given none (the port: KRAPPY_DEFAULT_PORT). */
#define KRAPPY_DEFAULT_HOST "127.0.0.1"

/* One reply frame. `payload` is borrowed from the client: valid until the
 * next call on that client. An empty payload (len 0) is the empty map. */
typedef struct krappy_frame {
    uint32_t type;
    const uint8_t *payload;
    size_t len;
} krappy_frame;

/* What HELLO tells about the server. */
typedef struct krappy_server_info {
    uint32_t version;    /* protocol version agreed */
    char server[128];    /* server name and version, NUL-terminated */
    uint64_t max_frame;  /* the server's --max-frame */
    uint64_t max_events; /* the server's cap on `max` */
} krappy_server_info;

/*
 * krappy_client_new - a client, not yet connected.
 * @param opts  options, copied; NULL for the defaults
 * @return the client, owned by the caller (free with krappy_client_free),
 *         or NULL when out of memory.
 */
krappy_client *krappy_client_new(const krappy_opts *opts);

/* Close the connection (if any) and release everything. NULL ok. */
void krappy_client_free(krappy_client *c);

/*
 * krappy_connect - connect to host and port (port as text, e.g. "7070").
 * NULL or "" host means 127.0.0.1, NULL or "" port means 7070.
 * Any earlier connection is closed first, and the limits learnt by an earlier
 * krappy_hello are forgotten. Tries every address the name resolves to,
 * within connect_timeout_ms in all (each address gets a share of what is left).
 * @return KRAPPY_OK, KRAPPY_E_IO (errmsg names the address and the reason,
 *         krappy_client_errno() the errno, e.g. ECONNREFUSED; a name that does
 *         not resolve is KRAPPY_E_IO too, with errno 0), KRAPPY_E_TIMEOUT or
 *         KRAPPY_E_USAGE.
 */
krappy_err krappy_connect(krappy_client *c, const char *host, const char *port);

/*
 * krappy_connect_addr - connect to "HOST:PORT", "HOST" (port 7070),
 * ":PORT" (host 127.0.0.1), "[V6ADDR]:PORT" or "[V6ADDR]"; NULL or "" means
 * 127.0.0.1:7070. This is the form of KRAPPY_ADDR. PORT is 1..65535; an
 * IPv6 address needs the brackets ("::1:7070" is refused as ambiguous).
 * A list of such addresses, separated by commas ("a:7070,b:7070,c:7070",
 * the nodes of a cluster), is tried in order: the first that accepts the
 * connection is used (any node answers reads; krappy_connect_leader finds
 * the one that takes writes).
 * @return as krappy_connect (for a list: the last address's failure, errmsg
 *         naming every address tried); KRAPPY_E_USAGE for a malformed
 *         address (errmsg says what is wrong; any earlier connection is
 *         closed).
 */
krappy_err krappy_connect_addr(krappy_client *c, const char *addr);

/* Close the connection, keeping the client for a later connect. Unread
 * replies are dropped; frames returned earlier become invalid. NULL ok. */
void krappy_close(krappy_client *c);

/* 1 when connected, else 0. */
int krappy_connected(const krappy_client *c);

/* The last error as a sentence ("" after success). Borrowed: valid until the
 * next call on the client. */
const char *krappy_client_errmsg(const krappy_client *c);

/*
 * krappy_client_set_timeout - change the per-call timeout of krappy_opts
 * (milliseconds; 0: the default, 30000; negative: none) for the calls from
 * now on, e.g. a short
 * one for the first HELLO, to tell quickly that a port is not krappyd's.
 */
void krappy_client_set_timeout(krappy_client *c, int timeout_ms);

/*
 * krappy_client_error_leader - after a call failed with KRAPPY_E_NOT_LEADER
 * (a cluster node that does not lead, PROTOCOL.md section 8), the leader's
 * address the server named ("HOST:PORT", for krappy_connect_addr), or ""
 * when it knew none (an election runs: try again shortly). Borrowed: valid
 * until the next call on the client; reset by every call.
 */
const char *krappy_client_error_leader(const krappy_client *c);

/* errno of the last KRAPPY_E_IO failure, else 0. */
int krappy_client_errno(const krappy_client *c);

/* The socket, for poll() by callers that multiplex; -1 when not connected.
 * Do not read from or write to it directly. Call krappy_flush before
 * waiting for it to become readable: pipelined requests may still be queued
 * (see krappy_send). */
int krappy_client_fd(const krappy_client *c);

/*
 * krappy_hello - negotiate the protocol version (sending the token and the
 * client name from the options). On success the largest reply accepted is
 * raised to the server's max_frame (never lowered), and requests larger than
 * the server's max_frame are refused locally from then on.
 * @param info  filled on success; may be NULL
 * @return KRAPPY_OK, a server error (UNAUTHENTICATED, UNSUPPORTED_VERSION,
 *         ...), KRAPPY_E_PROTOCOL when the OK lacks `version` or names another
 *         version, or a local error.
 */
krappy_err krappy_hello(krappy_client *c, krappy_server_info *info);

/*
 * krappy_ping - one PING round trip.
 * @return KRAPPY_OK or an error.
 */
krappy_err krappy_ping(krappy_client *c);

/*
 * krappy_send - queue one request frame for pipelining. The payload (one
 * encoded CBOR map, or len 0 for the empty map; NULL allowed when len is 0)
 * is copied. A request sent while no reply is due is written at once; one
 * sent behind unanswered requests waits in the client's buffer (up to
 * 1 KiB) until krappy_recv needs a reply that has not arrived, or
 * krappy_flush, so that a pipeline goes out in few writes. While more than
 * 1 MiB of requests waits unwritten, krappy_send blocks (up to timeout_ms)
 * until the server takes some, reading the replies that arrive meanwhile into
 * the client's buffer, so the server's back-pressure never deadlocks a
 * pipeline. Unread replies are buffered up to the reply limit (max_frame)
 * plus 16 MiB; a pipeline that outgrows that without krappy_recv stalls and
 * fails with KRAPPY_E_TIMEOUT, errmsg saying so. A PUBLISH with
 * `ack: "none"` gets no reply and is not counted by krappy_in_flight().
 * @return KRAPPY_OK, KRAPPY_E_USAGE (too large for the server's max_frame -
 *         the client's max_frame until krappy_hello told it - or not
 *         connected; the connection stays as it was), or a local error.
 */
krappy_err krappy_send(krappy_client *c, uint32_t type, const void *payload, size_t len);

/*
 * krappy_flush - write every queued request (e.g. before waiting on
 * krappy_client_fd, or when requests sent behind unanswered ones must go
 * out now, as in a paced producer).
 * @return KRAPPY_OK or a local error.
 */
krappy_err krappy_flush(krappy_client *c);

/*
 * krappy_recv - the next reply, in request order. Writes every queued
 * request first (reading replies meanwhile), then waits for a whole reply;
 * both within one timeout_ms. An ERROR reply is returned as a frame
 * like any other (type 255): use krappy_reply_error() to read it. Replies
 * that arrived before the connection was lost are still returned, even by
 * calls after the one that found it lost (krappy_connected() is then 0);
 * after them comes the error (KRAPPY_E_CLOSED, or KRAPPY_E_USAGE "not
 * connected (<why>)" once the loss was already reported). It may be called
 * with nothing in flight, e.g. to wait for the ERROR that follows a failed
 * PUBLISH with ack "none".
 * @param f  filled on success; f->payload is borrowed until the next call
 * @return KRAPPY_OK, or a local error (KRAPPY_E_TIMEOUT: nothing within
 *         timeout_ms; KRAPPY_E_CLOSED, also when the server closed in the
 *         middle of a reply; KRAPPY_E_IO; KRAPPY_E_PROTOCOL for a frame whose
 *         size is below 4 or above the accepted max_frame).
 */
krappy_err krappy_recv(krappy_client *c, krappy_frame *f);

/*
 * krappy_call - send one request and wait for its reply, both within one
 * timeout_ms. Earlier pipelined replies must have been received first (else
 * KRAPPY_E_USAGE). A request that gets no reply (PUBLISH with ack "none") is
 * flushed and answered KRAPPY_OK with reply->type 0 and no payload.
 * @return KRAPPY_OK with *reply filled (type OK, EVENTS, VALUE or ENTRIES;
 *         payload borrowed until the next call); the server's error code
 *         when it answered ERROR (*reply is then the ERROR frame, errmsg
 *         "server error CODE_NAME: <its message>"); or a local error.
 */
krappy_err krappy_call(krappy_client *c, uint32_t type, const void *payload, size_t len,
                       krappy_frame *reply);

/*
 * krappy_reply_error - when f is an ERROR reply, return its code and set the
 * client's errmsg to "server error CODE_NAME: <its message>"; KRAPPY_OK (errmsg
 * untouched) for any other reply type; KRAPPY_E_PROTOCOL (connection closed)
 * when the ERROR payload is malformed. When the code is one that closes the
 * connection (krappy_err_closes()), the client closes it too. f stays valid.
 */
krappy_err krappy_reply_error(krappy_client *c, const krappy_frame *f);

/* Requests sent (or queued) whose replies krappy_recv has not yet returned;
 * PUBLISH with ack "none" is not counted. 0 when not connected. */
size_t krappy_in_flight(const krappy_client *c);

/*
 * krappy_client_error_expected - after a PUBLISH failed with
 * KRAPPY_E_OUT_OF_ORDER_SEQUENCE, the sequence number the server expects
 * from the producer.
 * @return 1 when the last ERROR carried it (*expected set; may be NULL),
 *         else 0. Reset by every call on the client.
 */
int krappy_client_error_expected(const krappy_client *c, uint64_t *expected);

/*
 * krappy_client_error_range - after a call failed with
 * KRAPPY_E_OFFSET_OUT_OF_RANGE, the retained range the server reported:
 * *first is the first offset still retained, *next the topic's next offset
 * (either pointer may be NULL).
 * @return 1 when the last call's ERROR carried them, else 0 (*first and
 *         *next untouched). Reset by every call on the client.
 */
int krappy_client_error_range(const krappy_client *c, uint64_t *first, uint64_t *next);

/* ======================================================================
 * Producing
 * ====================================================================== */

/*
 * krappy_register_producer - PRODUCER_REGISTER: make this connection the
 * producer `producer_id` of `topic`, creating the topic when it does not
 * exist. Needed once per connection before krappy_publish; registering again
 * rebinds the connection to the new topic.
 * @param topic        1..249 bytes of [A-Za-z0-9._-] (the server judges)
 * @param producer_id  1..249 bytes of UTF-8
 * @param next         receives the topic's next offset; may be NULL
 * @return KRAPPY_OK; KRAPPY_E_INVALID_ARGUMENT for a bad name; or another
 *         error.
 */
krappy_err krappy_register_producer(krappy_client *c, const char *topic, const char *producer_id,
                                    uint64_t *next);

/* What an idempotent PRODUCER_REGISTER answered (PROTOCOL.md section 7). */
typedef struct krappy_producer_reg {
    uint64_t next;  /* the topic's next offset */
    uint32_t epoch; /* this registration's epoch: older ones are fenced */
    uint64_t seq;   /* the sequence number the server expects next */
} krappy_producer_reg;

/*
 * krappy_register_producer_idempotent - PRODUCER_REGISTER with
 * `idempotent: true`: as krappy_register_producer, and the server keeps
 * sequence state for (topic, producer_id). Every PUBLISH on the connection
 * must then carry `seq` (send them with krappy_send, or let a
 * krappy_producer handle do all of it). Registering the same id again, on
 * any connection, fences this registration: its next PUBLISH gets
 * KRAPPY_E_FENCED.
 * @param out  filled on success; may be NULL
 * @return KRAPPY_OK; KRAPPY_E_BUSY when the server keeps as many producers
 *         as it may and all are in use; or another error.
 */
krappy_err krappy_register_producer_idempotent(krappy_client *c, const char *topic,
                                               const char *producer_id, krappy_producer_reg *out);

/* When a PUBLISH is acknowledged (PROTOCOL.md section 4, "Writes"). */
typedef enum krappy_ack {
    KRAPPY_ACK_WRITE = 0, /* once in the stream file and visible to readers */
    KRAPPY_ACK_SYNC = 1,  /* once on stable storage (fsync) */
    KRAPPY_ACK_NONE = 2   /* no reply; a failure is an ERROR, then a close */
} krappy_ack;

/* How an event's key is sent. Identity is the content bytes either way. */
typedef enum krappy_key_type {
    KRAPPY_KEY_NONE = 0,  /* no key (null): streamed, never compacted */
    KRAPPY_KEY_BYTES = 1, /* a byte string */
    KRAPPY_KEY_TEXT = 2   /* a text string: must be valid UTF-8 */
} krappy_key_type;

/*
 * A batch of events for one PUBLISH. Build it with krappy_batch_add* (each
 * adds one event; krappy_batch_set_ts and krappy_batch_add_header then
 * refine the event added last), publish it, then krappy_batch_reset it and
 * build the next one in the same memory. Everything given is copied. A
 * batch is independent of any client; publishing does not change it.
 * A batch holds at most KRAPPY_BATCH_MAX_BYTES; the server's max_frame
 * (default 16 MiB) is usually the tighter limit: see krappy_batch_size.
 */
typedef struct krappy_batch krappy_batch;

#define KRAPPY_BATCH_MAX_BYTES ((size_t)0xFFFFFFFFu)

/* A new, empty batch, owned by the caller (krappy_batch_free); NULL when out
 * of memory. */
krappy_batch *krappy_batch_new(void);

/* Release a batch. NULL ok. */
void krappy_batch_free(krappy_batch *b);

/* Remove every event, keeping the memory for the next batch. */
void krappy_batch_reset(krappy_batch *b);

/* Events in the batch. */
size_t krappy_batch_count(const krappy_batch *b);

/* An upper bound of the PUBLISH payload the batch makes, in bytes: a
 * request is refused locally when this exceeds the server's max_frame - 4,
 * so split batches before that (krappy_server_info.max_frame). */
size_t krappy_batch_size(const krappy_batch *b);

/* Why the last krappy_batch_* call on b failed ("" after success).
 * Borrowed: valid until the next call on b. */
const char *krappy_batch_errmsg(const krappy_batch *b);

/*
 * krappy_batch_add - add one event whose value is already CBOR.
 * @param kt, key, key_len  the key (ignored for KRAPPY_KEY_NONE); at most
 *                          KRAPPY_MAX_KEY_BYTES; key may be NULL when
 *                          key_len is 0
 * @param value, value_len  exactly one encoded CBOR item, sent byte for
 *                          byte; NULL (with value_len 0) = null = a
 *                          tombstone, which deletes the key for GET and SCAN
 * @return KRAPPY_OK; KRAPPY_E_USAGE (the batch is unchanged, errmsg says
 *         why) for a key too long or not UTF-8 text, a value that is not one
 *         well-formed CBOR item, or a batch that would outgrow
 *         KRAPPY_BATCH_MAX_BYTES; KRAPPY_E_NOMEM.
 */
krappy_err krappy_batch_add(krappy_batch *b, krappy_key_type kt, const void *key, size_t key_len,
                            const void *value, size_t value_len);

/* krappy_batch_add with a text value: text (text_len bytes of UTF-8, not
 * necessarily NUL-terminated) is sent as a CBOR text string. Invalid UTF-8
 * is refused (KRAPPY_E_USAGE): send such values as bytes. */
krappy_err krappy_batch_add_text(krappy_batch *b, krappy_key_type kt, const void *key,
                                 size_t key_len, const char *text, size_t text_len);

/* krappy_batch_add with a byte-string value. */
krappy_err krappy_batch_add_bytes(krappy_batch *b, krappy_key_type kt, const void *key,
                                  size_t key_len, const void *bytes, size_t len);

/*
 * krappy_batch_set_ts - give the event added last a timestamp (milliseconds
 * since the Unix epoch) instead of the server's time of writing.
 * @return KRAPPY_OK, or KRAPPY_E_USAGE when the batch is empty.
 */
krappy_err krappy_batch_set_ts(krappy_batch *b, uint64_t ts_ms);

/*
 * krappy_batch_add_header - add a header (text name -> bytes value) to the
 * event added last. Headers are delivered with the event, in the order
 * added; a name may repeat.
 * @return KRAPPY_OK; KRAPPY_E_USAGE when the batch is empty, the name is not
 *         UTF-8 or the batch would outgrow its limit; KRAPPY_E_NOMEM.
 */
krappy_err krappy_batch_add_header(krappy_batch *b, const char *name, size_t name_len,
                                   const void *value, size_t value_len);

/* What the server said to a PUBLISH. */
typedef struct krappy_publish_result {
    uint64_t seq;   /* the batch's number on this connection (see below) */
    uint64_t first; /* offset of its first event */
    uint64_t count; /* events stored: offsets first .. first+count-1 */
} krappy_publish_result;

/*
 * krappy_publish - PUBLISH the batch and wait for its acknowledgement. All
 * of its events are stored, or none (a bad event refuses the whole batch
 * with KRAPPY_E_INVALID_ARGUMENT, errmsg naming its index). Needs a
 * producer registration on this connection (else KRAPPY_E_NOT_REGISTERED)
 * and no pipelined reply outstanding.
 * With KRAPPY_ACK_NONE the call returns once the request is written, with
 * *out zeroed but for seq: the server says nothing on success; see
 * krappy_publish_confirm.
 * @param out  filled on success; may be NULL
 * @return KRAPPY_OK; KRAPPY_E_USAGE for an empty batch or one larger than
 *         the server's max_frame (nothing sent, the connection stays); a
 *         server error; or a local error.
 */
krappy_err krappy_publish(krappy_client *c, const krappy_batch *b, krappy_ack ack,
                          krappy_publish_result *out);

/*
 * krappy_publish_send - pipelined PUBLISH: queue the batch (copied: the
 * batch may be reset at once) and return without waiting. Collect each
 * acknowledgement with krappy_publish_recv, in order; batches sent with
 * KRAPPY_ACK_NONE get none and are not counted by krappy_in_flight().
 * Every batch gets a sequence number on this connection (1, 2, ..., sent
 * as the request's `cid`), so a failure names the batch it belongs to.
 * As with krappy_send, keep the replies flowing: receive some while you
 * send many.
 * @param seq  receives the batch's sequence number; may be NULL
 * @return KRAPPY_OK, KRAPPY_E_USAGE (empty or too large; nothing sent) or a
 *         local error.
 */
krappy_err krappy_publish_send(krappy_client *c, const krappy_batch *b, krappy_ack ack,
                               uint64_t *seq);

/*
 * krappy_publish_recv - the acknowledgement of the oldest batch sent with
 * krappy_publish_send and an ack other than NONE. Use it only while the
 * next reply due is a PUBLISH's (do not interleave other pipelined requests
 * without receiving their replies through krappy_recv in order).
 * When a KRAPPY_ACK_NONE batch was refused, the server sends its ERROR and
 * closes the connection: the call returns that ERROR's code with
 * out->seq = the refused batch, errmsg naming it, and the connection
 * closed; that batch and every batch sent after it were not stored, those
 * before it were.
 * @param out  filled on success, and out->seq on a server error; may be NULL
 * @return KRAPPY_OK; the server's error for that batch (the connection stays
 *         open unless the error closes it, see above); KRAPPY_E_USAGE when no
 *         acknowledgement is due; or a local error.
 */
krappy_err krappy_publish_recv(krappy_client *c, krappy_publish_result *out);

/*
 * krappy_publish_confirm - learn that every batch sent so far was stored,
 * KRAPPY_ACK_NONE ones included: sends a PING and waits for its reply.
 * Replies come in order, so the PING's OK means every earlier request was
 * handled; a refused KRAPPY_ACK_NONE batch shows instead as its ERROR, as
 * described under krappy_publish_recv. Receive the acknowledgements due
 * first (krappy_in_flight() must be 0).
 * @return KRAPPY_OK, the refused batch's error, or a local error.
 */
krappy_err krappy_publish_confirm(krappy_client *c);

/* ======================================================================
 * Idempotent producing: every event stored exactly once
 * ====================================================================== */

/*
 * A krappy_producer publishes to one topic as the idempotent producer `id`
 * (PROTOCOL.md section 7), over a connection of its own. It numbers each
 * batch (the `seq` of its first event), keeps the batches not yet
 * acknowledged (at most max_unacked, copies), and when the connection is
 * lost - a network failure, a server restart, a STORAGE error - it
 * reconnects, registers again and sends them again in order: the server
 * answers a batch it had stored already with its original offsets
 * (`duplicate`), and stores the others. A caller that keeps publishing
 * across a server restart ends with every event stored exactly once.
 *
 *     krappy_producer *p;
 *     krappy_producer_opts o = {.ack = KRAPPY_ACK_SYNC};
 *     if (krappy_producer_open("127.0.0.1:7070", "orders", "billing-1", &o, &p) != KRAPPY_OK)
 *         ... krappy_producer_errmsg(p), krappy_producer_free(p) ...
 *     krappy_batch *b = krappy_batch_new();
 *     for (each order) {
 *         krappy_batch_add_text(b, KRAPPY_KEY_TEXT, id, id_len, json, json_len);
 *         if (krappy_producer_send(p, b, NULL) != KRAPPY_OK)   (copied: reuse b)
 *             break;
 *         krappy_batch_reset(b);
 *     }
 *     krappy_producer_flush(p);     (every batch acknowledged, or an error)
 *     krappy_producer_free(p);
 *
 * Limits. The server remembers a producer's last 5 PUBLISHes, so at most 5
 * batches are kept unacknowledged (more could not all be recognised when
 * sent again). One handle per id at a time: a second one registering the
 * same id fences the first, whose calls then fail with KRAPPY_E_FENCED. A
 * server that forgot the producer (idle for 7 days, or beyond its
 * --max-producers) answers the registration with seq 0: the handle numbers
 * what it still holds from there and sends it, so those batches may be
 * stored twice if they had been stored before. Batches acknowledged
 * "write" can be lost in a power cut (section 4); the handle no longer
 * holds them then (use KRAPPY_ACK_SYNC).
 * Threads: one thread at a time per handle.
 */
typedef struct krappy_producer krappy_producer;

/* One batch acknowledged by the server. */
typedef struct krappy_producer_ack {
    uint64_t seq;   /* its sequence number (of its first event) */
    uint64_t first; /* offset of its first event; UINT64_MAX when the
                       server had stored it but no longer remembers where
                       (a repeat beyond the last 5 PUBLISHes it keeps) */
    uint64_t count; /* events: offsets first .. first+count-1 */
    int duplicate;  /* 1: sent again after a lost connection, and the
                       server had stored it already (nothing stored twice) */
} krappy_producer_ack;

#define KRAPPY_PRODUCER_MAX_UNACKED 5
#define KRAPPY_DEFAULT_RECONNECT_MS 30000

/* Options of a producer handle. Zero fields take the defaults. */
typedef struct krappy_producer_opts {
    const krappy_opts *client; /* its connections' options (token, timeouts),
                                  copied; NULL: the defaults */
    krappy_ack ack;            /* KRAPPY_ACK_WRITE (default) or _SYNC; NONE
                                  is refused (nothing would be known to
                                  resend) */
    size_t max_unacked;        /* batches kept unacknowledged, 1..5 (default
                                  5); krappy_producer_send waits beyond */
    int reconnect_ms;          /* how long to try to get the server back after
                                  losing it, per loss (default 30000;
                                  negative: forever) */
    /* Called for each acknowledged batch, in order, from inside
     * krappy_producer_send and _flush; may be NULL. */
    void (*on_ack)(void *arg, const krappy_producer_ack *ack);
    void *arg;
    /* With use_from_seq: number the first batch from_seq instead of what
     * the server expects. Running the same input again, batched the same
     * way, from the same from_seq then stores only what the first run did
     * not (what it did is acknowledged as duplicates). */
    int use_from_seq;
    uint64_t from_seq;
} krappy_producer_opts;

/*
 * krappy_producer_open - connect to addr - one address, or the nodes of a
 * cluster as a list (krappy_connect_addr) - finding the leader there
 * (krappy_connect_leader), and register idempotently as `id` on `topic`
 * (created if absent). In a cluster, the handle follows the leader: a
 * NOT_LEADER answer or a lost connection sends it to the node that leads
 * now, where it registers again and sends what is unacknowledged; the
 * idempotent registration makes what the old leader had committed come
 * back as duplicates, so a caller publishing through a failover stores
 * every batch exactly once.
 * @param out  receives the handle, owned by the caller (krappy_producer_free),
 *             even on failure when it could be made (for
 *             krappy_producer_errmsg); NULL when out of memory
 * @return KRAPPY_OK, KRAPPY_E_USAGE (bad options, a NULL or empty name), or
 *         the error of connecting, HELLO or registering (nothing is retried
 *         here: the first contact says whether the address is right).
 */
krappy_err krappy_producer_open(const char *addr, const char *topic, const char *id,
                                const krappy_producer_opts *opts, krappy_producer **out);

/*
 * krappy_producer_send - number the batch (copied: reset and reuse it at
 * once), keep it until acknowledged and send it. With max_unacked batches
 * already unacknowledged it first waits for the oldest acknowledgement.
 * A lost connection is got back (within reconnect_ms) and what is
 * unacknowledged sent again, in order.
 * @param seq  receives the batch's sequence number; may be NULL
 * @return KRAPPY_OK (the batch is kept: it will be stored exactly once, or
 *         a later call reports why not); KRAPPY_E_USAGE (an empty batch, or
 *         one too large for the server: not kept); KRAPPY_E_INVALID_ARGUMENT
 *         when the server refused an earlier batch (errmsg names its seq; it
 *         is dropped, later ones are renumbered and kept); KRAPPY_E_FENCED
 *         (another handle registered the id: this one is done); the error of
 *         the last attempt when the server stayed unreachable for
 *         reconnect_ms (the batches are kept: call again to retry); or a
 *         server error that no retry can mend (UNAUTHENTICATED, ...).
 */
krappy_err krappy_producer_send(krappy_producer *p, const krappy_batch *b, uint64_t *seq);

/*
 * krappy_producer_flush - wait until every batch sent is acknowledged
 * (reconnecting and sending again as needed).
 * @return KRAPPY_OK, or an error as krappy_producer_send.
 */
krappy_err krappy_producer_flush(krappy_producer *p);

/* What a handle did. */
typedef struct krappy_producer_info {
    uint32_t epoch;      /* of its current registration */
    uint64_t next_seq;   /* the next batch's sequence number */
    size_t unacked;      /* batches sent, not yet acknowledged */
    uint64_t acked;      /* batches acknowledged */
    uint64_t duplicates; /* ... of which the server had stored already */
    uint64_t resent;     /* batches sent again after a lost connection */
    uint64_t reconnects; /* connections got back */
} krappy_producer_info;

void krappy_producer_info_get(const krappy_producer *p, krappy_producer_info *out);

/* The last error as a sentence ("" after success). Borrowed: valid until
 * the next call on the handle. */
const char *krappy_producer_errmsg(const krappy_producer *p);

/* Close the connection and release everything; batches not acknowledged
 * are dropped (flush first). NULL ok. */
void krappy_producer_free(krappy_producer *p);

/* ======================================================================
 * Reading
 * ====================================================================== */

/*
 * One stored event, as FETCH delivers it (a SCAN entry has the same shape,
 * without headers). Every pointer points into the object that holds the
 * event (krappy_events, krappy_scan) and is valid as long as it is.
 */
typedef struct krappy_event {
    uint64_t offset;
    uint64_t ts;        /* milliseconds since the Unix epoch */
    int has_key;        /* 0: the event has no key (key NULL, key_len 0) */
    int key_is_text;    /* 1: the key was produced as a text string */
    const uint8_t *key; /* the key's content bytes; not NUL-terminated */
    size_t key_len;
    const uint8_t *value; /* the value: one encoded CBOR item, byte for
                             byte as produced */
    size_t value_len;
    int is_tombstone;       /* 1: the value is null (the key was deleted) */
    int has_headers;        /* 0: none (headers NULL, headers_len 0) */
    const uint8_t *headers; /* encoded CBOR map text -> bytes, as produced;
                               read it with krappy_header_next */
    size_t headers_len;
} krappy_event;

/* The events of one FETCH or POLL. Read-only; free with
 * krappy_events_free. */
typedef struct krappy_events {
    uint64_t next;              /* FETCH: the offset to fetch from next time;
                                   POLL: the group's delivery frontier */
    size_t count;               /* events[0 .. count-1], oldest first */
    const krappy_event *events; /* NULL when count is 0 */
} krappy_events;

/*
 * krappy_fetch - FETCH: events of `topic` with offset >= `offset`, oldest
 * first. With wait_ms > 0 and no event at `offset` yet, the server holds the
 * reply until one arrives or wait_ms pass (then count is 0); the call's
 * timeout is extended by wait_ms. To tail a topic, fetch again from
 * (*out)->next.
 * @param max        most events (0 = the protocol default, 100; the server
 *                   lowers it to its max_events)
 * @param max_bytes  stop before the events exceed this many bytes, but
 *                   return one at least (0 = the default, 1 MiB)
 * @param out        receives the events, owned by the caller
 *                   (krappy_events_free); NULL on failure
 * @return KRAPPY_OK; KRAPPY_E_OFFSET_OUT_OF_RANGE when `offset` is below the
 *         first retained offset or above the topic's next
 *         (krappy_client_error_range gives both); KRAPPY_E_NO_SUCH_TOPIC;
 *         or another error.
 */
krappy_err krappy_fetch(krappy_client *c, const char *topic, uint64_t offset, uint64_t max,
                        uint64_t max_bytes, uint64_t wait_ms, krappy_events **out);

/* Release the events of a FETCH or POLL. NULL ok. */
void krappy_events_free(krappy_events *ev);

/* The newest event of a key, as GET returns it. Read-only; pointers are
 * valid until krappy_value_free. */
typedef struct krappy_value {
    uint64_t offset;
    uint64_t ts;
    int key_is_text;    /* the key as the newest event sent it */
    const uint8_t *key; /* content bytes, not NUL-terminated */
    size_t key_len;
    const uint8_t *value; /* one encoded CBOR item, as produced */
    size_t value_len;
    int has_headers;
    const uint8_t *headers; /* encoded CBOR map, or NULL */
    size_t headers_len;
} krappy_value;

/*
 * krappy_get - GET: the newest value of a key (its content bytes; a text
 * key "a" and a byte key 'a' are the same key).
 * @param out  receives the value, owned by the caller (krappy_value_free);
 *             NULL on failure
 * @return KRAPPY_OK; KRAPPY_E_NOT_FOUND when the key was never written or
 *         its newest event is a tombstone (errmsg says so; the connection
 *         stays); KRAPPY_E_NO_SUCH_TOPIC; or another error.
 */
krappy_err krappy_get(krappy_client *c, const char *topic, const void *key, size_t key_len,
                      krappy_value **out);

/* Release a value. NULL ok. */
void krappy_value_free(krappy_value *v);

/*
 * Pipelined GETs: keep many in flight, e.g. to read a list of keys at the
 * speed of the connection rather than one round trip each:
 *     for (i = 0; i < n; i++) {
 *         krappy_get_send(c, "users", keys[i], lens[i]);
 *         if (i >= window)
 *             krappy_get_recv(c, &v), ... use v ..., krappy_value_free(v);
 *     }
 *     ... then receive the last `window` replies ...
 * krappy_get_send queues a GET (as krappy_get) without waiting; the key is
 * copied. krappy_get_recv takes the reply to the oldest GET sent that way,
 * which must be the next reply due (see "Pipelined consuming" below for the
 * rules, which are the same). A key that is not found is KRAPPY_E_NOT_FOUND
 * from krappy_get_recv, and the connection stays.
 * @return as krappy_get; KRAPPY_E_USAGE when no GET reply is due or another
 *         reply comes first.
 */
krappy_err krappy_get_send(krappy_client *c, const char *topic, const void *key, size_t key_len);
krappy_err krappy_get_recv(krappy_client *c, krappy_value **out);

/*
 * A SCAN in progress: the latest value of every live key, in unsigned
 * bytewise order of the keys, one page per request. Every page is read from
 * the same view of the topic: the events with offset < snapshot. Continuing
 * uses the server's cursor, which lasts at least 60 seconds between pages
 * and works from any connection (not across a server restart).
 *
 *     krappy_scan *s;
 *     krappy_err e = krappy_scan_begin(c, "users", NULL, 0, NULL, 0, 0, &s);
 *     while (e == KRAPPY_OK) {
 *         size_t n;
 *         const krappy_event *ent = krappy_scan_entries(s, &n);
 *         ... use ent[0 .. n-1] ...
 *         if (!krappy_scan_more(s))
 *             break;
 *         e = krappy_scan_next_page(c, s);
 *     }
 *     krappy_scan_free(s);
 */
typedef struct krappy_scan krappy_scan;

/*
 * krappy_scan_begin - SCAN: the first page.
 * @param prefix, prefix_len  only keys starting with these bytes; NULL = all
 * @param after, after_len    only keys after this one (bytewise); NULL =
 *                            from the first key (a non-NULL empty key starts
 *                            after the empty key)
 * @param limit               most entries per page (0 = the protocol
 *                            default, 1000)
 * @param out                 receives the scan with its first page, owned
 *                            by the caller (krappy_scan_free), which may
 *                            outlive the client; NULL on failure
 * @return KRAPPY_OK; KRAPPY_E_NO_SUCH_TOPIC; or another error.
 */
krappy_err krappy_scan_begin(krappy_client *c, const char *topic, const void *prefix,
                             size_t prefix_len, const void *after, size_t after_len, uint64_t limit,
                             krappy_scan **out);

/*
 * krappy_scan_next_page - fetch the page after the current one, sending the
 * cursor; the entries of the current page become invalid. After the last
 * page (krappy_scan_more() == 0) it sends nothing and leaves an empty page.
 * On failure the current page is kept and the call may be repeated (e.g.
 * on another connection).
 * @return KRAPPY_OK; KRAPPY_E_INVALID_ARGUMENT when the cursor expired
 *         (start again); or another error.
 */
krappy_err krappy_scan_next_page(krappy_client *c, krappy_scan *s);

/* The entries of the current page (offset, ts, key, value; never a
 * tombstone, never headers), in key order; *count receives their number.
 * Valid until the next krappy_scan_next_page or krappy_scan_free. */
const krappy_event *krappy_scan_entries(const krappy_scan *s, size_t *count);

/* 1 while more pages remain (the server sent a cursor), else 0. */
int krappy_scan_more(const krappy_scan *s);

/* The view's snapshot: the scan shows exactly the events with offset <
 * snapshot. FETCH from it afterwards to follow on with no gap. */
uint64_t krappy_scan_snapshot(const krappy_scan *s);

/* Release a scan. NULL ok. */
void krappy_scan_free(krappy_scan *s);

/* One topic of TOPICS. */
typedef struct krappy_topic_info {
    const char *name; /* NUL-terminated */
    size_t name_len;
    uint64_t first; /* the first retained offset */
    uint64_t next;  /* the offset the next event gets */
} krappy_topic_info;

typedef struct krappy_topic_list {
    size_t count;
    const krappy_topic_info *topics; /* as the server listed them */
} krappy_topic_list;

/*
 * krappy_topics - TOPICS: every topic with its retained range.
 * @param out  receives the list, owned by the caller
 *             (krappy_topic_list_free); NULL on failure
 * @return KRAPPY_OK or an error.
 */
krappy_err krappy_topics(krappy_client *c, krappy_topic_list **out);

/* Release a topic list. NULL ok. */
void krappy_topic_list_free(krappy_topic_list *l);

/* One consumer group of a topic (STATS). */
typedef struct krappy_group_stats {
    const char *group; /* NUL-terminated (group_len bytes of UTF-8) */
    size_t group_len;
    uint64_t cursor;  /* the lowest offset not yet acknowledged */
    uint64_t pending; /* handed out or awaiting redelivery, unacknowledged */
    uint64_t lag;     /* the topic's next - cursor */
    uint64_t members; /* live members */
    int kafka;        /* 1: a Kafka consumer group (of the server's Kafka
                         port): cursor is its committed offset, pending 0 */
} krappy_group_stats;

/* A topic's cleanup policy (krappy_topic_settings.cleanup): bits. */
#define KRAPPY_CLEANUP_DELETE  1 /* old segments go by retention */
#define KRAPPY_CLEANUP_COMPACT 2 /* events no longer their key's latest go */

/* A topic's settings (PROTOCOL.md section 9): every one, as the server
 * applies them (its flags give those the topic does not set). */
typedef struct krappy_topic_settings {
    int cleanup;              /* KRAPPY_CLEANUP_* bits */
    uint64_t retention_bytes; /* 0: no size limit */
    uint64_t retention_ms;    /* 0: no age limit */
    uint64_t delete_retention_ms;
    uint64_t segment_bytes;
    uint64_t segment_ms; /* 0: a quiet segment is not rolled */
} krappy_topic_settings;

/* STATS of a topic. Read-only; free with krappy_topic_stats_free. */
typedef struct krappy_topic_stats {
    const char *topic; /* NUL-terminated */
    uint64_t first;    /* the first retained offset */
    uint64_t next;     /* the offset the next event gets */
    uint64_t bytes;    /* the stream's size on disk */
    uint64_t keys;     /* live keys (the server may estimate) */
    size_t n_groups;
    const krappy_group_stats *groups; /* by name */
    uint64_t producers;               /* idempotent producers the server keeps for the
                                         topic (0 from a server that does not say) */
    int has_config;                   /* 1 when the server sent the topic's settings */
    krappy_topic_settings config;     /* with has_config */
    int has_compaction;               /* 1 when the server sent compaction figures (krappyd) */
    uint64_t dirty_bytes;             /* closed segments' bytes not compacted yet */
    uint64_t reclaimed_bytes;         /* disk compaction gave back since the server started */
    uint64_t segments_rewritten;      /* ... segments it rewrote */
    uint64_t events_removed;          /* ... events it removed */
    uint64_t compact_ms;              /* ... time it spent */
} krappy_topic_stats;

/*
 * krappy_stats - STATS of a topic and its consumer groups.
 * @param group  NULL for every group; else just that one
 * @param out    receives the stats, owned by the caller
 *               (krappy_topic_stats_free); NULL on failure
 * @return KRAPPY_OK; KRAPPY_E_NO_SUCH_TOPIC; KRAPPY_E_NOT_FOUND for an
 *         unknown group; or another error.
 */
krappy_err krappy_stats(krappy_client *c, const char *topic, const char *group,
                        krappy_topic_stats **out);

/* Release stats. NULL ok. */
void krappy_topic_stats_free(krappy_topic_stats *s);

/* ======================================================================
 * Clusters (PROTOCOL.md section 8)
 * ====================================================================== */

/* One node as the answering node sees it. */
typedef struct krappy_cluster_node {
    uint64_t id;
    char addr[264];  /* its data address, "HOST:PORT" ("" until known) */
    char role[16];   /* "leader", "follower", "joining" or "unreachable" */
    char raft[264];  /* its raft address ("" from a single krappyd) */
    char kafka[264]; /* its Kafka listener's address, "" for none */
    int has_lag;     /* 1 when the answering node leads: match and lag below */
    uint64_t match;  /* highest raft index known stored there */
    uint64_t lag;    /* raft entries it is behind the leader */
} krappy_cluster_node;

/* What CLUSTER answered. */
typedef struct krappy_cluster_info {
    char cluster[68]; /* the cluster's id ("" until the first leader named it) */
    uint64_t node;    /* the answering node */
    uint64_t term;
    uint64_t leader;  /* its id, 0 while none is known */
    uint64_t commit;  /* the answering node's commit and applied raft */
    uint64_t applied; /* indexes (krappyd's addition; 0 from others) */
    int halted;       /* 1: the answering node's store failed to apply the
                         raft log; it applies nothing more until restarted
                         (krappyd's addition) */
    size_t n_nodes;
    krappy_cluster_node nodes[]; /* n_nodes of them */
} krappy_cluster_info;

/*
 * krappy_cluster - CLUSTER: the cluster as the connected node sees it (a
 * single krappyd answers as a cluster of one that it leads).
 * @param out  receives the answer, owned by the caller
 *             (krappy_cluster_info_free)
 * @return KRAPPY_OK; KRAPPY_E_UNKNOWN_TYPE from a server without clusters;
 *         or another error.
 */
krappy_err krappy_cluster(krappy_client *c, krappy_cluster_info **out);

/*
 * krappy_cluster_add, krappy_cluster_remove - change the membership (on
 * the leader). Add node `id`, reached by raft at `raft_addr`: answered once
 * it has caught up and votes. Remove node `id`: answered once committed.
 * One change at a time.
 * @param out  receives the cluster as it then is (NULL: not wanted)
 * @return KRAPPY_OK; KRAPPY_E_NOT_LEADER (krappy_client_error_leader says
 *         where the leader is); KRAPPY_E_INVALID_ARGUMENT (an id that is
 *         (not) a member, a bad address, a single krappyd); KRAPPY_E_BUSY
 *         (another change runs); or another error.
 */
krappy_err krappy_cluster_add(krappy_client *c, uint64_t id, const char *raft_addr,
                              krappy_cluster_info **out);
krappy_err krappy_cluster_remove(krappy_client *c, uint64_t id, krappy_cluster_info **out);

/* Release a krappy_cluster_info. NULL ok. */
void krappy_cluster_info_free(krappy_cluster_info *ci);

/*
 * krappy_connect_leader - connect to the node that leads: to any address of
 * `addrs` (a list as krappy_connect_addr takes), HELLO, CLUSTER; when
 * another node leads, to its address, HELLO again. While no leader is known
 * (an election takes a second or two) it asks again, every address in
 * turn, for up to connect_timeout_ms in all. A single krappyd (or one
 * without CLUSTER) leads itself. HELLO is sent here (with the options'
 * token): the connection is ready for writes.
 * @param info  receives HELLO's answer from the leader (may be NULL)
 * @return KRAPPY_OK; KRAPPY_E_NOT_LEADER when no leader was found in time
 *         (errmsg says what each node said); the error of connecting, or of
 *         HELLO (KRAPPY_E_UNAUTHENTICATED, ...).
 */
krappy_err krappy_connect_leader(krappy_client *c, const char *addrs, krappy_server_info *info);

/* ======================================================================
 * Administration: deleting topics, moving and deleting groups
 * ====================================================================== */

/*
 * krappy_delete_topic - DELETE_TOPIC: remove the topic with its events,
 * latest values, consumer groups and producer state. Answered once that
 * survives a crash of the server. Afterwards every request naming the topic
 * gets KRAPPY_E_NO_SUCH_TOPIC, and producers registered on it (on any
 * connection) get it for every publish until they register again, which
 * creates a new, empty topic starting at offset 0.
 * @return KRAPPY_OK; KRAPPY_E_NO_SUCH_TOPIC; or another error.
 */
krappy_err krappy_delete_topic(krappy_client *c, const char *topic);

/*
 * krappy_topic_config - TOPIC_CONFIG: read a topic's settings, or change
 * some of them (durably, like an ACK) and read the result. Changing the
 * settings of a topic that does not exist creates it with them.
 * @param set  n texts "name=value": cleanup=delete|compact|compact,delete;
 *             retention_bytes, segment_bytes (K, M, G suffixes);
 *             retention_ms, delete_retention_ms, segment_ms (ms, s, m, h,
 *             d suffixes; a bare number is ms); "name=default" drops the
 *             topic's own value (the server's flag applies again).
 *             NULL or n 0: only read.
 *             A text that is not a setting is KRAPPY_E_USAGE (nothing sent).
 * @param out  receives every setting (NULL: not wanted)
 * @return KRAPPY_OK; KRAPPY_E_NO_SUCH_TOPIC (reading a topic that does
 *         not exist); KRAPPY_E_INVALID_ARGUMENT (the server refused a
 *         value: nothing changed); KRAPPY_E_USAGE; or another error.
 */
krappy_err krappy_topic_config(krappy_client *c, const char *topic, const char *const *set,
                               size_t n, krappy_topic_settings *out);

/* "delete", "compact" or "compact,delete" for KRAPPY_CLEANUP_* bits; NULL
 * for anything else. Static storage. */
const char *krappy_cleanup_name(int cleanup);

/* Where krappy_group_seek moves a group's cursor. */
typedef enum krappy_seek {
    KRAPPY_SEEK_EARLIEST = 0, /* the first retained offset: everything again */
    KRAPPY_SEEK_LATEST = 1,   /* the topic's next offset: only new events */
    KRAPPY_SEEK_OFFSET = 2,   /* `value`: an offset from first to next */
    KRAPPY_SEEK_TIME = 3      /* the first event whose ts >= `value` (ms since the
                                 epoch); the topic's next when none is (krappyd) */
} krappy_seek;

/*
 * krappy_group_seek - GROUP_SEEK: move a consumer group's cursor, durably,
 * like an ACK. Events handed out and not acknowledged are forgotten (a later
 * ACK of them is ignored); members stay registered and their next poll hands
 * out events from the new cursor.
 * @param cursor  receives the group's new cursor (NULL: not wanted)
 * @return KRAPPY_OK; KRAPPY_E_NO_SUCH_TOPIC; KRAPPY_E_NOT_FOUND for an
 *         unknown group; KRAPPY_E_OFFSET_OUT_OF_RANGE for an offset outside
 *         [first, next] (krappy_client_error_range gives them); or another
 *         error.
 */
krappy_err krappy_group_seek(krappy_client *c, const char *topic, const char *group, krappy_seek to,
                             uint64_t value, uint64_t *cursor);

/*
 * krappy_group_delete - GROUP_DELETE: remove a consumer group durably; its
 * members lose their registration (their next poll gets
 * KRAPPY_E_NOT_REGISTERED).
 * @return KRAPPY_OK; KRAPPY_E_NO_SUCH_TOPIC; KRAPPY_E_NOT_FOUND for an
 *         unknown group; or another error.
 */
krappy_err krappy_group_delete(krappy_client *c, const char *topic, const char *group);

/* ======================================================================
 * Consuming: consumer groups
 * ====================================================================== */

/*
 * A consumer group is a named cursor on one topic, shared by its members
 * (competing consumers): POLL hands each member events no other member has
 * been handed, and ACK marks them done. A typical member:
 *
 *     krappy_consumer_info me;
 *     krappy_err e = krappy_register_consumer(c, "orders", "billing", NULL, &me);
 *     while (e == KRAPPY_OK) {
 *         krappy_events *ev;
 *         if ((e = krappy_poll(c, 100, 10000, 0, &ev)) != KRAPPY_OK)
 *             break;
 *         uint64_t done[100];
 *         for (size_t i = 0; i < ev->count; i++) {
 *             ... handle ev->events[i] ...
 *             done[i] = ev->events[i].offset;
 *         }
 *         if (ev->count > 0)
 *             e = krappy_ack_offsets(c, done, ev->count, NULL, NULL);
 *         krappy_events_free(ev);
 *     }
 *
 * With explicit acknowledgement (the default) an event handed out stays
 * pending until acknowledged; it goes back to the group, to be handed to
 * any member, when its member disconnects or registers again, or when
 * ack_wait_ms pass first (at-least-once: handle events so that a repeat is
 * harmless). With KRAPPY_CONSUMER_ACK_AUTO an event counts as acknowledged
 * once handed out (at-most-once: an event handed out just before a crash is
 * never seen again).
 *
 * The registration belongs to the connection: after krappy_connect (a new
 * connection), register again before polling. Events pending on the lost
 * connection go back to the group, possibly to be handed to this member
 * again.
 */

/* Where a new group's cursor starts. */
typedef enum krappy_start {
    KRAPPY_START_EARLIEST = 0, /* the first retained offset */
    KRAPPY_START_LATEST = 1,   /* the topic's next offset: only new events */
    KRAPPY_START_OFFSET = 2    /* krappy_consumer_opts.start_offset */
} krappy_start;

/* How a member's events are acknowledged (PROTOCOL.md section 4). */
typedef enum krappy_consumer_ack {
    KRAPPY_CONSUMER_ACK_EXPLICIT = 0, /* by ACK; pending until then */
    KRAPPY_CONSUMER_ACK_AUTO = 1      /* as they are handed out */
} krappy_consumer_ack;

/* Options of a consumer registration. Zero fields (or NULL options) take
 * the defaults. */
typedef struct krappy_consumer_opts {
    krappy_start start;      /* a new group's cursor; default earliest. An
                                existing group keeps its cursor. */
    uint64_t start_offset;   /* KRAPPY_START_OFFSET: in [first, next] */
    krappy_consumer_ack ack; /* default explicit */
    uint64_t ack_wait_ms;    /* explicit: an event not acknowledged this
                                long goes back to the group; 0 = the
                                default, KRAPPY_DEFAULT_ACK_WAIT_MS */
    const char *member;      /* this member's name, 1..249 bytes of UTF-8,
                                copied; NULL = the server assigns a unique
                                one. A name held by a live connection is
                                taken over, its pending events included. */
} krappy_consumer_opts;

/* What CONSUMER_REGISTER answered. */
typedef struct krappy_consumer_info {
    /* The member's name, as given or assigned; NUL-terminated. */
    char member[KRAPPY_MAX_NAME_BYTES + 1];
    size_t member_len; /* its length in bytes */
    uint64_t cursor;   /* the group's lowest offset not yet acknowledged */
} krappy_consumer_info;

/*
 * krappy_register_consumer - CONSUMER_REGISTER: make this connection a
 * member of consumer group `group` of `topic`, creating the group (its
 * cursor at opts->start) when it does not exist. Needed once per connection
 * before krappy_poll and krappy_ack_*. Registering again rebinds: the
 * events pending for this connection go back to the group first. One
 * connection may be a producer and a consumer at once.
 * @param topic  an existing topic
 * @param group  1..249 bytes of UTF-8 (group names are per topic)
 * @param opts   options, or NULL for the defaults
 * @param out    filled on success; may be NULL
 * @return KRAPPY_OK; KRAPPY_E_NO_SUCH_TOPIC; KRAPPY_E_OFFSET_OUT_OF_RANGE
 *         when a new group's start_offset is outside the topic's [first,
 *         next] (krappy_client_error_range gives both);
 *         KRAPPY_E_INVALID_ARGUMENT for a bad group or member name;
 *         KRAPPY_E_USAGE for a NULL or empty name or an unknown start or
 *         ack value (nothing sent); or another error.
 */
krappy_err krappy_register_consumer(krappy_client *c, const char *topic, const char *group,
                                    const krappy_consumer_opts *opts, krappy_consumer_info *out);

/*
 * krappy_poll - POLL: the next events for this member, oldest first,
 * events going back to the group (redeliveries) before new ones. With
 * wait_ms > 0 and nothing to hand out, the server holds the reply until
 * something comes or wait_ms pass (then count is 0); the call's timeout is
 * extended by wait_ms. (*out)->next is the group's delivery frontier: the
 * lowest offset never handed out to any member.
 * @param max        most events (0 = the protocol default, 100; the server
 *                   lowers it to its max_events)
 * @param max_bytes  stop before the events exceed this many bytes, but hand
 *                   out one at least (0 = the default, 1 MiB)
 * @param out        receives the events, owned by the caller
 *                   (krappy_events_free); NULL on failure
 * @return KRAPPY_OK; KRAPPY_E_NOT_REGISTERED without a consumer
 *         registration on this connection (also when another connection
 *         took over this member's name); or another error.
 */
krappy_err krappy_poll(krappy_client *c, uint64_t max, uint64_t wait_ms, uint64_t max_bytes,
                       krappy_events **out);

/* What ACK answered. */
typedef struct krappy_ack_result {
    uint64_t cursor;         /* the group's cursor after the ACK */
    size_t n_ignored;        /* offsets already acknowledged: */
    const uint64_t *ignored; /* ignored[0 .. n_ignored-1], as listed */
} krappy_ack_result;

/*
 * krappy_ack_upto - ACK `upto`: acknowledge this member's pending events
 * below `upto` (those of other members are untouched). Returns once the new
 * cursor is durable (it survives kill -9 of the server). Note that a member
 * name taken over from another connection brings that connection's pending
 * events with it, which krappy_ack_upto acknowledges too: acknowledge by
 * offset (krappy_ack_offsets) to acknowledge exactly what was handled.
 * @param cursor  receives the group's cursor; may be NULL
 * @return KRAPPY_OK; KRAPPY_E_NOT_REGISTERED; or another error.
 */
krappy_err krappy_ack_upto(krappy_client *c, uint64_t upto, uint64_t *cursor);

/*
 * krappy_ack_offsets - ACK `offsets`: acknowledge these events, whether
 * pending for any member of the group or waiting to be handed out again (a
 * late ACK still counts). Returns once the new cursor is durable. Offsets
 * already acknowledged are ignored (and listed); n may be 0, which only
 * reads the cursor.
 * @param offsets, n  the offsets (copied into the request); NULL when n is 0
 * @param cursor      receives the group's cursor; may be NULL
 * @param ignored     when not NULL, receives NULL when no offset was
 *                    ignored, else the result with the offsets ignored,
 *                    owned by the caller (krappy_ack_result_free); NULL on
 *                    failure
 * @return KRAPPY_OK; KRAPPY_E_INVALID_ARGUMENT when an offset was never
 *         handed out to the group (errmsg names it; nothing of the ACK is
 *         applied); KRAPPY_E_NOT_REGISTERED; or another error.
 */
krappy_err krappy_ack_offsets(krappy_client *c, const uint64_t *offsets, size_t n, uint64_t *cursor,
                              krappy_ack_result **ignored);

/* Release an ACK result. NULL ok. */
void krappy_ack_result_free(krappy_ack_result *r);

/*
 * Pipelined consuming: keep a POLL and an ACK in flight together, so that
 * handling a batch never waits for a round trip, e.g.
 *
 *     krappy_poll_send(c, 100, 10000, 0);
 *     for (;;) {
 *         krappy_events *ev;
 *         if (krappy_poll_recv(c, &ev) != KRAPPY_OK)
 *             break;
 *         ... handle the events, collecting their offsets in done[] ...
 *         krappy_ack_offsets_send(c, done, ev->count); (when count > 0)
 *         krappy_poll_send(c, 100, 10000, 0);
 *         krappy_ack_recv(c, &cursor, NULL);           (when sent)
 *         krappy_events_free(ev);
 *     }
 *
 * Replies come in request order: each *_recv takes the reply to the oldest
 * request of its kind still unanswered, and that reply must be the next one
 * due on the connection; otherwise the call fails with KRAPPY_E_USAGE,
 * receiving nothing (errmsg says which reply comes first). A long POLL
 * parked by the server holds back the replies to every later request on
 * the connection: send the ACK of a batch before the POLL of the next.
 * Typed one-shot calls (krappy_poll, krappy_fetch, ...) need every
 * pipelined reply received first.
 */

/*
 * krappy_poll_send - queue a POLL (as krappy_poll) without waiting.
 * @return KRAPPY_OK, or a local error (KRAPPY_E_USAGE when not connected).
 */
krappy_err krappy_poll_send(krappy_client *c, uint64_t max, uint64_t wait_ms, uint64_t max_bytes);

/*
 * krappy_poll_recv - the reply to the oldest POLL sent with
 * krappy_poll_send; the timeout is extended by that POLL's wait_ms.
 * @param out  as krappy_poll
 * @return as krappy_poll; KRAPPY_E_USAGE when no POLL reply is due or
 *         another reply comes first.
 */
krappy_err krappy_poll_recv(krappy_client *c, krappy_events **out);

/*
 * krappy_ack_upto_send, krappy_ack_offsets_send - queue an ACK (as
 * krappy_ack_upto, krappy_ack_offsets) without waiting. The offsets are
 * copied.
 * @return KRAPPY_OK, or a local error (KRAPPY_E_USAGE when not connected,
 *         or offsets NULL with n > 0).
 */
krappy_err krappy_ack_upto_send(krappy_client *c, uint64_t upto);
krappy_err krappy_ack_offsets_send(krappy_client *c, const uint64_t *offsets, size_t n);

/*
 * krappy_ack_recv - the reply to the oldest ACK sent with
 * krappy_ack_upto_send or krappy_ack_offsets_send.
 * @param cursor, ignored  as krappy_ack_offsets
 * @return as krappy_ack_offsets; KRAPPY_E_USAGE when no ACK reply is due or
 *         another reply comes first.
 */
krappy_err krappy_ack_recv(krappy_client *c, uint64_t *cursor, krappy_ack_result **ignored);

/* ======================================================================
 * CBOR and JSON helpers (no client needed)
 * ====================================================================== */

/* Deepest nesting of arrays, maps and tags the helpers below accept. */
#define KRAPPY_CBOR_MAX_DEPTH 64

/*
 * krappy_header_next - walk an event's headers map (krappy_event.headers):
 *
 *     size_t pos = 0;
 *     const char *name; size_t nlen; const uint8_t *val; size_t vlen;
 *     while (krappy_header_next(ev->headers, ev->headers_len, &pos,
 *                               &name, &nlen, &val, &vlen) == 1)
 *         ...
 *
 * name (not NUL-terminated) and val point into the map.
 * @param pos  0 to start; advanced by each call
 * @return 1 with a header; 0 at the end; -1 when the bytes are not a map of
 *         text -> bytes with definite-length strings (render such a map
 *         with krappy_cbor_to_diag instead).
 */
int krappy_header_next(const void *map, size_t len, size_t *pos, const char **name,
                       size_t *name_len, const uint8_t **value, size_t *value_len);

/*
 * krappy_cbor_text - 1 when the CBOR item at item (len bytes, exactly one
 * item) is a definite-length text string, with *text (not NUL-terminated,
 * pointing into item) and *text_len set; else 0. The bytes are not checked
 * for UTF-8.
 */
int krappy_cbor_text(const void *item, size_t len, const char **text, size_t *text_len);

/*
 * krappy_cbor_to_diag - render one CBOR item in the diagnostic notation of
 * RFC 8949 section 8, on one line: {"a": [1, h'00ff'], 2: 1.5}, 1(0),
 * [_ 1, 2], (_ h'01', h'02'), simple(16), undefined, -0.0, Infinity, NaN.
 * Floats use the shortest decimal form that reads back to the same value
 * (written with ".0" or an exponent, so that they never look like integers).
 * Text strings are escaped like JSON strings; control characters (C0, DEL,
 * C1) are always escaped, so the result is safe to print on a terminal;
 * bytes that are not UTF-8 become U+FFFD.
 * @param out  receives a NUL-terminated string, owned by the caller (free
 *             with krappy_free); NULL on failure
 * @return KRAPPY_OK; KRAPPY_E_USAGE when the bytes are not exactly one
 *         well-formed item or nest deeper than KRAPPY_CBOR_MAX_DEPTH;
 *         KRAPPY_E_NOMEM.
 */
krappy_err krappy_cbor_to_diag(const void *item, size_t len, char **out);

/* krappy_cbor_to_json flags. */
#define KRAPPY_JSON_BYTES_HEX 1u /* byte strings as hex, not base64url */

/*
 * krappy_cbor_to_json - render one CBOR item as JSON (RFC 8259), on one
 * line, converting as RFC 8949 section 6.1 advises: integers and floats
 * become numbers (NaN and the infinities null), text strings strings, byte
 * strings strings of their base64url encoding without padding (hex with
 * KRAPPY_JSON_BYTES_HEX), arrays arrays, maps objects (a key that is not a
 * text string becomes the string of its diagnostic notation), a tag is
 * rendered as the item it tags, true/false/null as themselves, undefined and
 * other simple values as null. The conversion loses information (bytes vs
 * text, tags); use krappy_cbor_to_diag to see everything.
 * @param out  as krappy_cbor_to_diag
 * @return as krappy_cbor_to_diag.
 */
krappy_err krappy_cbor_to_json(const void *item, size_t len, unsigned flags, char **out);

/*
 * krappy_json_to_cbor - encode one JSON value (RFC 8259, strictly: UTF-8,
 * no comments, no trailing commas, nesting up to KRAPPY_CBOR_MAX_DEPTH) as
 * one CBOR item, e.g. to publish it with krappy_batch_add. Objects become
 * maps with text keys (in the given order; duplicate names are kept),
 * arrays arrays, strings text strings, true/false/null themselves. A number
 * without fraction or exponent becomes an integer when it fits 64 bits
 * (-2^64 .. 2^64-1); every other number a float, in the shortest of half,
 * single or double precision that holds its value exactly. Encodings are
 * shortest-form and definite-length.
 * @param out      receives the encoded item, owned by the caller (free with
 *                 krappy_free); NULL on failure
 * @param out_len  receives its length
 * @param why      on KRAPPY_E_USAGE, a sentence naming what is wrong and at
 *                 which byte (may be NULL)
 * @return KRAPPY_OK; KRAPPY_E_USAGE for text that is not one JSON value;
 *         KRAPPY_E_NOMEM.
 */
krappy_err krappy_json_to_cbor(const char *json, size_t len, uint8_t **out, size_t *out_len,
                               char *why, size_t whylen);

/* Release memory the helpers above returned (it is malloc'd: free() works
 * too, when the library and the caller share one C library). NULL ok. */
void krappy_free(void *p);

/* The library's version, e.g. "0.1.0". Static. */
const char *krappy_version(void);

#ifdef __cplusplus
}
#endif
#endif
