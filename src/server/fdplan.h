/*
 * server/fdplan.h - how krappyd shares its file descriptors: the soft
 * RLIMIT_NOFILE raised to the hard limit at start, then a fixed reserve
 * (standard streams, listeners, the loop's own, the lock file, files opened
 * for a moment), RocksDB (its table files, bounded by its max_open_files,
 * and its own logs), the admin port's connections, the client connections
 * (the data port's and the Kafka port's together: --max-connections counts
 * both), and what is left for the segment files the store keeps open
 * (store/fdcache.h). No part can take another's share, so neither many
 * topics nor many idle admin connections can starve the data port, and a
 * data directory of any size starts.
 */
#ifndef KR_SERVER_FDPLAN_H
#define KR_SERVER_FDPLAN_H

#include <stddef.h>
#include <stdint.h>

#include "server/config.h"

/* Descriptors kept for everything not counted below. */
#define KR_FD_RESERVED 64
/* RocksDB's descriptors besides its table files (WAL, MANIFEST, LOG, LOCK,
 * the directory, the table file a flush or compaction writes). */
#define KR_FD_ROCKSDB_OWN 32
/* RocksDB's table files: a sixteenth of the limit, within these bounds. */
#define KR_FD_ROCKSDB_MIN 64
#define KR_FD_ROCKSDB_MAX 1024
/* Segment files at least: below this the data port's connections give way. */
#define KR_FD_SEGMENTS_MIN 64

typedef struct kr_fd_plan {
    uint64_t soft_before; /* RLIMIT_NOFILE as found */
    uint64_t hard;
    uint64_t limit;       /* the soft limit now */
    uint32_t connections; /* data and Kafka ports (at most --max-connections) */
    uint32_t admin;       /* admin port (--http-max-connections; 0 when off) */
    int rocksdb;          /* RocksDB's max_open_files */
    size_t segments;      /* segment files kept open (store/fdcache.h) */
} kr_fd_plan;

/*
 * kr_fd_plan_make - raise the soft RLIMIT_NOFILE to the hard limit and
 * share it out (see above); the data port gets fewer than
 * --max-connections when the limit cannot hold them beside the rest.
 * Logs the limits and the shares.
 * @return 0, or -1 with err holding a sentence when the limit is too low
 *         for krappyd to run at all.
 */
int kr_fd_plan_make(const kr_config *cfg, kr_fd_plan *plan, char *err, size_t errlen);

/* The share-out alone, for a given limit (no system call, no log). */
int kr_fd_plan_share(const kr_config *cfg, uint64_t limit, kr_fd_plan *plan, char *err,
                     size_t errlen);

#endif
