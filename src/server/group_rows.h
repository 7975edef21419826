/*
 * server/group_rows.h - the consumer groups of a topic as STATS, `krappy
 * groups` and the console list them: krappy's groups (cursors) and the
 * Kafka listener's (committed offsets), one list in name order, each row
 * saying which kind it is.
 */
#ifndef KR_SERVER_GROUP_ROWS_H
#define KR_SERVER_GROUP_ROWS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "server/server.h"

/* One group of a topic. */
typedef struct kr_group_row {
    const char *name; /* borrowed: valid until the groups change */
    size_t name_len;
    uint64_t cursor;         /* krappy: the lowest unacknowledged offset; Kafka:
                                the committed offset */
    uint64_t pending;        /* krappy: handed out, unacknowledged; Kafka: 0 */
    uint64_t lag;            /* the topic's next offset minus cursor (0 if past) */
    uint64_t members;        /* live members (Kafka: of the coordinator's group) */
    bool kafka;              /* a Kafka consumer group */
    const kr_tgroup *tgroup; /* krappy's group; NULL for a Kafka group */
} kr_group_row;

/*
 * kr_group_rows - call fn(arg, row) for every group of t - or only those
 * named `only` (when not NULL) - in name order (a krappy group before a
 * Kafka group of the same name). fn NULL only counts.
 * @return how many rows there are.
 */
size_t kr_group_rows(const kr_server *srv, const kr_topic *t, const uint8_t *only, size_t only_len,
                     void (*fn)(void *arg, const kr_group_row *row), void *arg);

#endif
