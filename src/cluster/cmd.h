/*
 * cluster/cmd.h - the commands of krappy's replicated log: what the leader
 * decides and every node applies, in the same order, with the same result
 * (docs/DESIGN.md, "Replication").
 *
 * A command is one CBOR array, its first item the command's number:
 *
 *   [1,  cluster_id]                         CLUSTER_ID: the cluster's name, chosen once
 *   [2,  node, data_addr, kafka_addr|null]   NODE_INFO: where clients reach a node
 *   [10, topic]                              TOPIC_CREATE
 *   [11, topic, ts, producer|null, payload]  PUBLISH: `payload` is the PUBLISH request as
 *                                            the client sent it (events in request form,
 *                                            `seq`); `ts` the leader's clock for events
 *                                            without one; producer [id, epoch]
 *   [12, topic, id, epoch]                   PRODUCER_REGISTER (idempotent): the epoch the
 *                                            leader expects it to start; a node whose
 *                                            producer has that epoch or a newer one
 *                                            already (a restart's replay) skips it
 *   [13, topic, group, cursor]               GROUP_CREATE at `cursor` (resolved by the leader)
 *   [14, topic, [[group, cursor]...]]        GROUP_CURSORS: a round of ACKs, one per group
 *   [15, topic]                              TOPIC_DELETE
 *   [16, topic, group, cursor]               GROUP_SEEK
 *   [17, topic, group]                       GROUP_DELETE
 *   [18, topic, first]                       RETENTION: the topic's new first offset
 *   [19, topic, settings]                    TOPIC_CONFIG: a change of the topic's settings
 *                                            (a map as TOPIC_CONFIG's `set`, null resets);
 *                                            creates the topic when it is missing
 *   [20, topic, group, offset, metadata|null] KOFFSET_COMMIT: a Kafka group's committed
 *                                            offset (metadata: bytes)
 *   [21, [command...]]                       BATCH: the PUBLISHes and PRODUCER_REGISTERs
 *                                            of one leader loop turn, each a whole command
 *                                            in a byte string, applied in order with the
 *                                            result each would have alone (no BATCH inside)
 *
 * Numbers only grow; a node that meets a number it does not know stops
 * applying (fsm.h: every node must decide the same, so it cannot skip).
 * Retention by time or size stays RETENTION: the leader decides `first`,
 * the followers only follow.
 *
 * The decoder never allocates: a decoded command's strings point into the
 * entry, which must outlive it.
 */
#ifndef KR_CLUSTER_CMD_H
#define KR_CLUSTER_CMD_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "proto/msg.h"
#include "util/buf.h"

#define KR_CMD_ID_MAX   64  /* longest cluster id */
#define KR_CMD_ADDR_MAX 263 /* longest address: KR_HOSTPORT_MAX */

typedef enum kr_cmd_type {
    KR_CMD_CLUSTER_ID = 1,
    KR_CMD_NODE_INFO = 2,
    KR_CMD_TOPIC_CREATE = 10,
    KR_CMD_PUBLISH = 11,
    KR_CMD_PRODUCER_REGISTER = 12,
    KR_CMD_GROUP_CREATE = 13,
    KR_CMD_GROUP_CURSORS = 14,
    KR_CMD_TOPIC_DELETE = 15,
    KR_CMD_GROUP_SEEK = 16,
    KR_CMD_GROUP_DELETE = 17,
    KR_CMD_RETENTION = 18,
    KR_CMD_TOPIC_CONFIG = 19,
    KR_CMD_KOFFSET_COMMIT = 20,
    KR_CMD_BATCH = 21
} kr_cmd_type;

/* Most sub-commands in one BATCH (a node's results keep their places in
 * 20 bits: replica.h). */
#define KR_CMD_BATCH_MAX ((1u << 20) - 1)
/* What a BATCH adds to its sub-commands at most: its head, and each
 * sub-command's byte-string head. */
#define KR_CMD_BATCH_HEAD     7
#define KR_CMD_BATCH_SUB_HEAD 5

/* A decoded command; views into the entry it came from. */
typedef struct kr_cmd {
    kr_cmd_type type;
    kr_str topic;         /* every store command */
    kr_str name;          /* CLUSTER_ID: the id; PRODUCER_REGISTER: the producer id;
                             GROUP_*, KOFFSET_COMMIT: the group */
    uint64_t node;        /* NODE_INFO */
    kr_str addr, kafka;   /* NODE_INFO (kafka.len 0: none) */
    uint64_t value;       /* GROUP_CREATE, GROUP_SEEK: cursor; RETENTION: first;
                             PUBLISH: ts; KOFFSET_COMMIT: offset */
    bool has_metadata;    /* KOFFSET_COMMIT: metadata in payload (else null) */
    bool has_producer;    /* PUBLISH */
    kr_str producer;      /* PUBLISH: the producer id */
    uint64_t epoch;       /* PUBLISH, PRODUCER_REGISTER */
    kr_str payload;       /* PUBLISH: the request's payload; KOFFSET_COMMIT: metadata */
    kr_cbor_item cursors; /* GROUP_CURSORS: the array of [group, cursor] */
    uint64_t n_cursors;
    kr_topic_config cfg; /* TOPIC_CONFIG: the change, validated */
    kr_cbor_item subs;   /* BATCH: the array of sub-commands */
    uint64_t n_subs;
} kr_cmd;

/*
 * kr_cmd_decode - read one command (len bytes at p) into *c.
 * @return 0, or -1 with a sentence in err when it is not a well-formed
 *         command of a number this build knows.
 */
int kr_cmd_decode(const uint8_t *p, size_t len, kr_cmd *c, char *err, size_t errlen);

/* The pairs of a decoded GROUP_CURSORS, one per call.
 * @return 1 and *group, *cursor set; 0 at the end. */
typedef struct kr_cmd_cursor_iter {
    kr_cbor_iter it;
} kr_cmd_cursor_iter;

void kr_cmd_cursor_iter_init(kr_cmd_cursor_iter *ci, const kr_cmd *c);
int kr_cmd_cursor_next(kr_cmd_cursor_iter *ci, kr_str *group, uint64_t *cursor);

/* The sub-commands of a decoded BATCH, in order, one per call.
 * @return 1 and *sub decoded (views into the entry); 0 at the end. */
typedef struct kr_cmd_sub_iter {
    kr_cbor_iter it;
} kr_cmd_sub_iter;

void kr_cmd_sub_iter_init(kr_cmd_sub_iter *si, const kr_cmd *c);
int kr_cmd_sub_next(kr_cmd_sub_iter *si, kr_cmd *sub);

/* ---- encoders: each appends one whole command to b (check b->failed) ---- */

void kr_cmd_put_cluster_id(kr_buf *b, const char *id);
void kr_cmd_put_node_info(kr_buf *b, uint64_t node, const char *addr, const char *kafka);
void kr_cmd_put_topic(kr_buf *b, kr_cmd_type type, const kr_str *topic); /* CREATE, DELETE */
/* PUBLISH: producer NULL for a plain producer's. */
void kr_cmd_put_publish(kr_buf *b, const kr_str *topic, uint64_t ts, const kr_str *producer,
                        uint64_t epoch, const kr_str *payload);
void kr_cmd_put_producer_register(kr_buf *b, const kr_str *topic, const kr_str *id, uint64_t epoch);
/* GROUP_CREATE, GROUP_SEEK: [type, topic, group, cursor]. */
void kr_cmd_put_group_at(kr_buf *b, kr_cmd_type type, const kr_str *topic, const kr_str *group,
                         uint64_t cursor);
void kr_cmd_put_group_delete(kr_buf *b, const kr_str *topic, const kr_str *group);
/* GROUP_CURSORS: begin with the count, then kr_cmd_put_cursor n times. */
void kr_cmd_put_cursors_begin(kr_buf *b, const kr_str *topic, size_t n);
void kr_cmd_put_cursor(kr_buf *b, const kr_str *group, uint64_t cursor);
void kr_cmd_put_retention(kr_buf *b, const kr_str *topic, uint64_t first);
/* TOPIC_CONFIG: the change `set` (its masked settings and resets). */
void kr_cmd_put_topic_config(kr_buf *b, const kr_str *topic, const kr_topic_config *set);
/* KOFFSET_COMMIT: metadata NULL (mlen ignored) for null. */
void kr_cmd_put_koffset(kr_buf *b, const kr_str *topic, const kr_str *group, uint64_t offset,
                        const uint8_t *metadata, size_t mlen);

/* BATCH: begin with the count (1..KR_CMD_BATCH_MAX), then
 * kr_cmd_put_batch_sub n times, each with one whole PUBLISH or
 * PRODUCER_REGISTER as the encoders above made it. */
void kr_cmd_put_batch_begin(kr_buf *b, size_t n);
void kr_cmd_put_batch_sub(kr_buf *b, const void *cmd, size_t len);

/* The command's name for logs ("PUBLISH"), or "unknown". */
const char *kr_cmd_name(kr_cmd_type t);

#endif
