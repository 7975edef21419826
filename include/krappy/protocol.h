/*
 * krappy/protocol.h - numbers shared by every Krappy client and krappyd.
 *
 * Message types, error codes and protocol limits of the Krappy wire protocol,
 * version 1 (docs/PROTOCOL.md). Error codes 1-17 are exactly the wire codes;
 * the enum only ever grows. Codes from 256 up never travel on the wire: they
 * are local conditions reported by libkrappy (I/O, timeouts, ...).
 */
#ifndef KRAPPY_PROTOCOL_H
#define KRAPPY_PROTOCOL_H

#ifdef __cplusplus
extern "C" {
#endif

/* The protocol version this library and server speak. */
#define KRAPPY_PROTOCOL_VERSION 1

/* Default TCP port of the data protocol. */
#define KRAPPY_DEFAULT_PORT 7070

/* A frame starts with size (u32 BE) and type (u32 BE); size counts type and
 * payload, not itself, so the smallest legal size is 4 (empty payload, which
 * means the empty map). */
#define KRAPPY_FRAME_HEADER_BYTES 8
#define KRAPPY_FRAME_MIN_SIZE     4

/* Default for the server's --max-frame (largest accepted `size`). */
#define KRAPPY_DEFAULT_MAX_FRAME (16u * 1024 * 1024)

/* An event's delivered form must fit a reply: at most max_frame minus this. */
#define KRAPPY_REPLY_SLACK_BYTES 1024

/* Keys are at most this many content bytes. */
#define KRAPPY_MAX_KEY_BYTES (16u * 1024)

/* Topic, group, member and producer names are 1..249 bytes. */
#define KRAPPY_MAX_NAME_BYTES 249

/* Protocol defaults for optional request fields (PROTOCOL.md section 3). */
#define KRAPPY_DEFAULT_MAX         100
#define KRAPPY_DEFAULT_MAX_BYTES   (1024u * 1024)
#define KRAPPY_DEFAULT_SCAN_LIMIT  1000
#define KRAPPY_DEFAULT_ACK_WAIT_MS 30000

/* Message types. Requests are 1..17, replies 100..103 and 255. */
typedef enum krappy_type {
    KRAPPY_T_PRODUCER_REGISTER = 1,
    KRAPPY_T_CONSUMER_REGISTER = 2,
    KRAPPY_T_PUBLISH = 3,
    KRAPPY_T_POLL = 4,
    KRAPPY_T_ACK = 5,
    KRAPPY_T_GET = 6,
    KRAPPY_T_SCAN = 7,
    KRAPPY_T_FETCH = 8,
    KRAPPY_T_HELLO = 9,
    KRAPPY_T_PING = 10,
    KRAPPY_T_TOPICS = 11,
    KRAPPY_T_STATS = 12,
    KRAPPY_T_CLUSTER = 13,
    KRAPPY_T_DELETE_TOPIC = 14,
    KRAPPY_T_GROUP_SEEK = 15,
    KRAPPY_T_GROUP_DELETE = 16,
    KRAPPY_T_TOPIC_CONFIG = 17,

    KRAPPY_T_OK = 100,
    KRAPPY_T_EVENTS = 101,
    KRAPPY_T_VALUE = 102,
    KRAPPY_T_ENTRIES = 103,
    KRAPPY_T_ERROR = 255
} krappy_type;

/* The highest request type this version knows. */
#define KRAPPY_T_REQUEST_MAX KRAPPY_T_TOPIC_CONFIG

/* Error codes. 1..17 are PROTOCOL.md section 5 exactly; never renumbered. */
typedef enum krappy_err {
    KRAPPY_OK = 0,
    KRAPPY_E_BAD_FRAME = 1,       /* connection closed after the reply */
    KRAPPY_E_FRAME_TOO_LARGE = 2, /* connection closed after the reply */
    KRAPPY_E_BAD_PAYLOAD = 3,
    KRAPPY_E_UNKNOWN_TYPE = 4,
    KRAPPY_E_NOT_REGISTERED = 5,
    KRAPPY_E_NO_SUCH_TOPIC = 6,
    KRAPPY_E_NOT_FOUND = 7,
    KRAPPY_E_OFFSET_OUT_OF_RANGE = 8,
    KRAPPY_E_UNAUTHENTICATED = 9, /* connection closed after the reply */
    KRAPPY_E_STORAGE = 10,
    KRAPPY_E_INVALID_ARGUMENT = 11,
    KRAPPY_E_BUSY = 12,
    KRAPPY_E_UNSUPPORTED_VERSION = 13,   /* connection closed after the reply */
    KRAPPY_E_SHUTTING_DOWN = 14,         /* connection closed after the reply */
    KRAPPY_E_FENCED = 15,                /* a newer idempotent registration of the
                                            producer id took over (section 7) */
    KRAPPY_E_OUT_OF_ORDER_SEQUENCE = 16, /* PUBLISH `seq` is not the one expected
                                            (section 7); ERROR carries `expected` */
    KRAPPY_E_NOT_LEADER = 17,            /* a cluster node that does not lead
                                            (section 8); ERROR carries `leader` */

    /* Local conditions (libkrappy only, never on the wire). */
    KRAPPY_E_IO = 256,       /* socket error; errno is kept by the client */
    KRAPPY_E_TIMEOUT = 257,  /* the operation's deadline passed */
    KRAPPY_E_CLOSED = 258,   /* the peer closed the connection */
    KRAPPY_E_PROTOCOL = 259, /* the peer sent something the protocol forbids */
    KRAPPY_E_NOMEM = 260,    /* out of memory */
    KRAPPY_E_USAGE = 261     /* a library function was called wrongly */
} krappy_err;

/* The highest wire error code this version knows. */
#define KRAPPY_E_WIRE_MAX KRAPPY_E_NOT_LEADER

/*
 * krappy_strerror - a short human description of an error code, such as
 * "frame too large". Never NULL; unknown codes give "unknown error".
 * The string is static.
 */
const char *krappy_strerror(int err);

/*
 * krappy_err_name - the protocol name of an error code, such as
 * "FRAME_TOO_LARGE" (or "IO", "TIMEOUT", ... for local codes; "OK" for 0;
 * "UNKNOWN" otherwise). The string is static.
 */
const char *krappy_err_name(int err);

/*
 * krappy_type_name - the protocol name of a message type, such as "HELLO",
 * or NULL for a number that is no message type. The string is static.
 */
const char *krappy_type_name(unsigned type);

/*
 * krappy_err_closes - 1 when the server closes the connection after sending
 * this error code (BAD_FRAME, FRAME_TOO_LARGE, UNAUTHENTICATED,
 * UNSUPPORTED_VERSION, SHUTTING_DOWN), else 0.
 */
int krappy_err_closes(int err);

#ifdef __cplusplus
}
#endif
#endif
