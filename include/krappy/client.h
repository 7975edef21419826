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
 * Thread safety: a krappy_client is used by one thread at a time; distinct
 * clients are independent. The library keeps no global state.
 *
 * Errors: functions return krappy_err (KRAPPY_OK = 0). A server ERROR reply
 * returns its wire code (1..14); local failures return KRAPPY_E_IO,
 * KRAPPY_E_TIMEOUT, KRAPPY_E_CLOSED, KRAPPY_E_PROTOCOL, KRAPPY_E_NOMEM or
 * KRAPPY_E_USAGE. Either way krappy_client_errmsg() holds a sentence saying
 * what happened. After KRAPPY_E_IO, _TIMEOUT, _CLOSED or _PROTOCOL, or a
 * server error that closes the connection (krappy_err_closes()), the
 * connection is closed: connect again (and register again) to go on.
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
 * @return as krappy_connect; KRAPPY_E_USAGE for a malformed address (errmsg
 *         says what is wrong; any earlier connection is closed).
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

/* errno of the last KRAPPY_E_IO failure, else 0. */
int krappy_client_errno(const krappy_client *c);

/* The socket, for poll() by callers that multiplex; -1 when not connected.
 * Do not read from or write to it directly. */
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
 * is copied. Bytes are written as the socket accepts them. While more than
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
 * krappy_flush - write every queued request.
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

/* The library's version, e.g. "0.1.0". Static. */
const char *krappy_version(void);

#ifdef __cplusplus
}
#endif
#endif
