/*
 * client/client_internal.h - the inside of a krappy_client, shared by
 * libkrappy's own files and by nothing else: not the CLI, not the tests
 * (they see the opaque handle of the public header).
 *
 * client.c (the handle, errors), connect.c (connecting), frames.c (moving
 * frames, the raw calls) and call.c (a request and its reply, HELLO, PING)
 * lend the helpers below to publish.c (batches, PUBLISH), read.c (FETCH,
 * GET, SCAN, TOPICS, STATS) and consume.c (CONSUMER_REGISTER, POLL, ACK);
 * values.c (an event's values for people, JSON to CBOR through
 * proto/json_parse.h) nothing.
 *
 * Built into libkrappy.a and libkrappy.so like everything else; the version
 * script (libkrappy.map) hides every kr_ symbol from the .so.
 */
#ifndef KR_CLIENT_INTERNAL_H
#define KR_CLIENT_INTERNAL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "krappy/client.h"
#include "krappy/protocol.h"
#include "proto/frame.h"
#include "proto/msg.h"
#include "util/buf.h"
#include "util/hostport.h"
#include "util/ring.h"

/* Longest error sentence kept; server messages are cut to fit. */
#define KR_CLIENT_ERRMSG_MAX 512

/* The port used when none is given: KRAPPY_DEFAULT_PORT as text. */
#define KR_CLIENT_DEFAULT_PORT "7070"

/* krappy_send waits (reading replies) while this many request bytes are
 * queued and unwritten. */
#define KR_CLIENT_OUT_HIGH_WATER (1u << 20)

/* A pipelined typed request other than PUBLISH (consume.c's POLL and ACK)
 * whose reply has not been taken yet. */
typedef struct kr_due {
    uint64_t ordinal; /* its reply is the connection's ordinal-th (from 1) */
    uint32_t type;    /* the request's type */
    uint64_t wait_ms; /* POLL: its long-poll wait, added to the timeout */
} kr_due;

struct krappy_client {
    int fd; /* -1 when not connected */
    int connect_timeout_ms;
    int timeout_ms;     /* negative: none */
    uint32_t reply_max; /* largest reply size accepted */
    uint32_t send_max;  /* largest request size: the server's max_frame */
    char *token;        /* owned; NULL when unset */
    char *client_name;  /* owned; NULL when unset */

    kr_buf out; /* queued requests; out.data[out_off..len) unwritten */
    size_t out_off;
    kr_frame_parser in;  /* received, not yet returned replies */
    size_t in_flight;    /* requests that will get a reply not yet returned */
    uint64_t n_asked;    /* requests sent on this connection that get a reply */
    uint64_t n_answered; /* replies returned on this connection */
    bool eof;            /* the server closed its side; buffered replies remain */

    char peer[KR_HOSTPORT_MAX + 1]; /* "host:port" for messages */
    char errmsg[KR_CLIENT_ERRMSG_MAX];
    char close_why[KR_CLIENT_ERRMSG_MAX]; /* why the last connection ended */
    int err_errno;
    bool err_range; /* the last ERROR carried first/next */
    uint64_t err_first, err_next;
    bool err_has_expected; /* ... expected (OUT_OF_ORDER_SEQUENCE) */
    uint64_t err_expected;
    char err_leader[KR_HOSTPORT_MAX + 1]; /* ... leader (NOT_LEADER), "" none */

    kr_buf enc;               /* the typed calls build requests here */
    kr_buf hdrs;              /* PUBLISH: the events' header maps */
    kr_event_out_spec *specs; /* PUBLISH: one per event of the batch */
    size_t specs_cap;
    uint64_t pub_seq; /* the last PUBLISH sequence number used */
    kr_ring pub_wait; /* uint64_t: the PUBLISH sequence numbers of batches
                         awaiting acknowledgement, oldest first (kept by
                         publish.c; ack "none" batches are not in it) */
    kr_ring due;      /* kr_due: pipelined POLL and ACK replies due,
                         oldest first (kept by call.c) */
};

/* ---- errors ---- */

/* Forget the last error (every public call starts with this). */
void kr_client_clear_error(krappy_client *c);

/* Set the error sentence and return `e`. */
__attribute__((format(printf, 3, 4))) krappy_err kr_client_fail(krappy_client *c, krappy_err e,
                                                                const char *fmt, ...);

/* Set the error sentence, close the connection (keeping what was received
 * for krappy_recv), return `e`. */
__attribute__((format(printf, 3, 4))) krappy_err
kr_client_fail_close(krappy_client *c, krappy_err e, const char *fmt, ...);

/* KRAPPY_E_USAGE for a call that needs a connection, saying why there is none. */
krappy_err kr_client_not_connected(krappy_client *c);

/* Close the socket but keep the buffered bytes: a frame returned by the
 * last krappy_recv stays readable until the next call, as the header
 * promises. */
void kr_client_drop_conn(krappy_client *c);

/* The error sentence becomes why there is no connection: later calls that
 * need one say it. */
void kr_client_keep_close_why(krappy_client *c);

/* Copy n bytes of server text into dst (dstlen bytes, NUL-terminated) for an
 * error sentence: control characters and invalid UTF-8 become '?'; a cut
 * never splits a UTF-8 sequence. */
void kr_client_sanitize(char *dst, size_t dstlen, const uint8_t *src, size_t n);

/* ---- moving frames ---- */

/* A deadline timeout_ms from now on the monotonic clock; -1 for none
 * (negative timeout). */
int64_t kr_client_deadline_after(int timeout_ms);

/* Milliseconds left before the deadline, for poll(): -1 = no deadline. */
int kr_client_ms_left(int64_t deadline);

/* Write what the socket takes now (frames.c). @return KRAPPY_OK, possibly
 * with requests still queued, or the error that lost the connection. */
krappy_err kr_client_write_some(krappy_client *c);

/*
 * kr_client_send_frame - queue one request and write what the socket takes
 * (waiting, reading, while the queue is above its high-water mark); the
 * error is not cleared first.
 * @param replies  1 when the request gets a reply, 0 when not, -1: find out
 *                 (a PUBLISH with ack "none" gets none)
 */
krappy_err kr_client_send_frame(krappy_client *c, uint32_t type, const void *payload, size_t len,
                                int64_t deadline, int replies);

/* Write every queued request before the deadline (reading meanwhile);
 * timeout_ms is the one the deadline came from, for messages. */
krappy_err kr_client_flush(krappy_client *c, int64_t deadline, int timeout_ms);

/* The next reply (flushing first). f points into the client's buffer,
 * valid until the next call on c. */
krappy_err kr_client_recv_frame(krappy_client *c, krappy_frame *f, int64_t deadline,
                                int timeout_ms);

/* KRAPPY_E_USAGE when pipelined replies are still unread, as a call named
 * `what` would take them for its own. */
krappy_err kr_client_check_no_pipeline(krappy_client *c, const char *what);

/* ---- typed requests ---- */

/* A reply type for messages: "EVENTS", or "type 77" written into buf. */
const char *kr_client_type_label(uint32_t type, char *buf, size_t len);

/* A decoded settings map holding every setting, as the public struct
 * (manage.c; STATS reads it too). */
void kr_client_settings_from(const kr_topic_config *tc, krappy_topic_settings *out);

/* The server's reply to `request` is not what the protocol says (`what`):
 * KRAPPY_E_PROTOCOL, and the connection is closed. */
krappy_err kr_client_bad_reply(krappy_client *c, const char *request, const char *what);

/* Start building a request: c->enc, emptied. */
kr_buf *kr_client_enc_begin(krappy_client *c);

/*
 * kr_client_request - send the request built in c->enc, wait for its reply
 * (timeout extended by extra_ms) and check it is of type `want`, decoding
 * its map into *r. Server errors come back as their code, errmsg set by
 * krappy_reply_error.
 * @param f  receives the reply; f and r point into the client's buffer,
 *           valid until the next call on c
 */
krappy_err kr_client_request(krappy_client *c, uint32_t type, uint32_t want, uint64_t extra_ms,
                             krappy_frame *f, kr_reply *r);

/*
 * kr_client_send_due - send the request built in c->enc (of `type`) without
 * waiting, and remember that its reply is due, for kr_client_recv_due.
 * @param wait_ms  how long the server may hold the reply (a long POLL),
 *                 added to the timeout of the kr_client_recv_due that takes it
 */
krappy_err kr_client_send_due(krappy_client *c, uint32_t type, uint64_t wait_ms);

/*
 * kr_client_recv_due - take the reply to the oldest request sent with
 * kr_client_send_due, which must be of `type` and the next reply due on the
 * connection (else KRAPPY_E_USAGE naming `fn`, nothing received), and judge
 * it as kr_client_request does: an ERROR gives its code; a reply other than
 * `want` closes the connection; else its map is decoded into *r.
 * @param f  receives the reply; f and r point into the client's buffer,
 *           valid until the next call on c
 */
krappy_err kr_client_recv_due(krappy_client *c, uint32_t type, uint32_t want, const char *fn,
                              krappy_frame *f, kr_reply *r);

/* KRAPPY_E_USAGE unless s (the `what` argument of fn) is a non-empty string. */
krappy_err kr_client_need_name(krappy_client *c, const char *fn, const char *what, const char *s);

/* ---- read.c, for consume.c ---- */

/*
 * kr_read_events - decode the EVENTS reply f (to `request`, for messages)
 * into one allocation the caller frees with krappy_events_free. A malformed
 * reply closes the connection (KRAPPY_E_PROTOCOL).
 */
krappy_err kr_read_events(krappy_client *c, const krappy_frame *f, const char *request,
                          krappy_events **out);

/* ---- publish.c, for producer.c ---- */

/* A copy of b (events, keys, values, headers), owned by the caller
 * (krappy_batch_free). @return NULL on ENOMEM. */
krappy_batch *kr_batch_clone(const krappy_batch *b);

/*
 * kr_publish_encode - build the PUBLISH of batch b into c->enc: `cid`,
 * `ack`, and `seq` when idem_seq is not NULL (an idempotent producer's).
 * @return KRAPPY_OK; KRAPPY_E_USAGE when it is larger than the server's
 *         max_frame (errmsg says so); KRAPPY_E_NOMEM.
 */
krappy_err kr_publish_encode(krappy_client *c, const krappy_batch *b, krappy_ack ack, uint64_t cid,
                             const uint64_t *idem_seq);

/* ---- publish.c, for kr_client_request ---- */

/*
 * kr_publish_error - an ERROR (f, decoded into r) came where a PUBLISH
 * acknowledgement, the confirming PING's reply or (cid set) another typed
 * request's reply was due: say which batch it refuses, if any.
 * @param out  when not NULL, out->seq receives the refused batch's number
 */
krappy_err kr_publish_error(krappy_client *c, const krappy_frame *f, const kr_reply *r,
                            krappy_publish_result *out);

#endif
