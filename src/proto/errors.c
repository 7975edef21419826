/*
 * proto/errors.c - names and descriptions of error codes and message types
 * (the public krappy_strerror family, declared in krappy/protocol.h).
 */
#include "krappy/protocol.h"

#include <stddef.h>

/* One row per code: the wire/protocol name and a short description. */
typedef struct err_row {
    int code;
    const char *name;
    const char *text;
} err_row;

static const err_row err_rows[] = {
    {KRAPPY_OK, "OK", "success"},
    {KRAPPY_E_BAD_FRAME, "BAD_FRAME", "bad frame"},
    {KRAPPY_E_FRAME_TOO_LARGE, "FRAME_TOO_LARGE", "frame too large"},
    {KRAPPY_E_BAD_PAYLOAD, "BAD_PAYLOAD", "bad payload"},
    {KRAPPY_E_UNKNOWN_TYPE, "UNKNOWN_TYPE", "unknown message type"},
    {KRAPPY_E_NOT_REGISTERED, "NOT_REGISTERED", "not registered"},
    {KRAPPY_E_NO_SUCH_TOPIC, "NO_SUCH_TOPIC", "no such topic"},
    {KRAPPY_E_NOT_FOUND, "NOT_FOUND", "not found"},
    {KRAPPY_E_OFFSET_OUT_OF_RANGE, "OFFSET_OUT_OF_RANGE", "offset out of range"},
    {KRAPPY_E_UNAUTHENTICATED, "UNAUTHENTICATED", "unauthenticated"},
    {KRAPPY_E_STORAGE, "STORAGE", "storage error"},
    {KRAPPY_E_INVALID_ARGUMENT, "INVALID_ARGUMENT", "invalid argument"},
    {KRAPPY_E_BUSY, "BUSY", "server busy"},
    {KRAPPY_E_UNSUPPORTED_VERSION, "UNSUPPORTED_VERSION", "unsupported protocol version"},
    {KRAPPY_E_SHUTTING_DOWN, "SHUTTING_DOWN", "server shutting down"},
    {KRAPPY_E_FENCED, "FENCED", "producer fenced by a newer registration"},
    {KRAPPY_E_OUT_OF_ORDER_SEQUENCE, "OUT_OF_ORDER_SEQUENCE", "out-of-order sequence number"},
    {KRAPPY_E_NOT_LEADER, "NOT_LEADER", "not the cluster's leader"},
    {KRAPPY_E_IO, "IO", "I/O error"},
    {KRAPPY_E_TIMEOUT, "TIMEOUT", "timed out"},
    {KRAPPY_E_CLOSED, "CLOSED", "connection closed"},
    {KRAPPY_E_PROTOCOL, "PROTOCOL", "protocol violation by the peer"},
    {KRAPPY_E_NOMEM, "NOMEM", "out of memory"},
    {KRAPPY_E_USAGE, "USAGE", "library misuse"},
};

static const err_row *err_find(int err)
{
    for (size_t i = 0; i < sizeof err_rows / sizeof err_rows[0]; i++)
        if (err_rows[i].code == err)
            return &err_rows[i];
    return NULL;
}

const char *krappy_strerror(int err)
{
    const err_row *r = err_find(err);
    return r ? r->text : "unknown error";
}

const char *krappy_err_name(int err)
{
    const err_row *r = err_find(err);
    return r ? r->name : "UNKNOWN";
}

const char *krappy_type_name(unsigned type)
{
    switch (type) {
    case KRAPPY_T_PRODUCER_REGISTER:
        return "PRODUCER_REGISTER";
    case KRAPPY_T_CONSUMER_REGISTER:
        return "CONSUMER_REGISTER";
    case KRAPPY_T_PUBLISH:
        return "PUBLISH";
    case KRAPPY_T_POLL:
        return "POLL";
    case KRAPPY_T_ACK:
        return "ACK";
    case KRAPPY_T_GET:
        return "GET";
    case KRAPPY_T_SCAN:
        return "SCAN";
    case KRAPPY_T_FETCH:
        return "FETCH";
    case KRAPPY_T_HELLO:
        return "HELLO";
    case KRAPPY_T_PING:
        return "PING";
    case KRAPPY_T_TOPICS:
        return "TOPICS";
    case KRAPPY_T_STATS:
        return "STATS";
    case KRAPPY_T_CLUSTER:
        return "CLUSTER";
    case KRAPPY_T_DELETE_TOPIC:
        return "DELETE_TOPIC";
    case KRAPPY_T_GROUP_SEEK:
        return "GROUP_SEEK";
    case KRAPPY_T_GROUP_DELETE:
        return "GROUP_DELETE";
    case KRAPPY_T_TOPIC_CONFIG:
        return "TOPIC_CONFIG";
    case KRAPPY_T_OK:
        return "OK";
    case KRAPPY_T_EVENTS:
        return "EVENTS";
    case KRAPPY_T_VALUE:
        return "VALUE";
    case KRAPPY_T_ENTRIES:
        return "ENTRIES";
    case KRAPPY_T_ERROR:
        return "ERROR";
    default:
        return NULL;
    }
}

int krappy_err_closes(int err)
{
    switch (err) {
    case KRAPPY_E_BAD_FRAME:
    case KRAPPY_E_FRAME_TOO_LARGE:
    case KRAPPY_E_UNAUTHENTICATED:
    case KRAPPY_E_UNSUPPORTED_VERSION:
    case KRAPPY_E_SHUTTING_DOWN:
        return 1;
    default:
        return 0;
    }
}
