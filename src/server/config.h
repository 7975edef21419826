/*
 * server/config.h - krappyd's settings, from flags and KRAPPY_* variables.
 *
 * Every setting has a flag and an environment variable; flags win. The table
 * in config.c is the single source for parsing, defaults and --help, so the
 * three cannot drift apart.
 */
#ifndef KR_SERVER_CONFIG_H
#define KR_SERVER_CONFIG_H

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

#include "util/log.h"

#define KR_DEFAULT_LISTEN               "0.0.0.0:7070"
#define KR_DEFAULT_DATA_DIR             "./data"
#define KR_DEFAULT_MAX_CONNECTIONS      1024
#define KR_DEFAULT_IDLE_TIMEOUT_MS      (300 * 1000)
#define KR_DEFAULT_WRITE_TIMEOUT_MS     (60 * 1000)
#define KR_DEFAULT_HELLO_TIMEOUT_MS     (10 * 1000)
#define KR_DEFAULT_SHUTDOWN_TIMEOUT_MS  (10 * 1000)
#define KR_DEFAULT_MAX_EVENTS           10000
#define KR_DEFAULT_MAX_PENDING_BYTES    (128u * 1024 * 1024)
#define KR_DEFAULT_HTTP_MAX_CONNECTIONS 32

/* --max-frame bounds: large enough for a reply with its slack, small enough
 * that 4 + payload always fits the u32 size field. */
#define KR_MIN_MAX_FRAME (4u * 1024)
#define KR_MAX_MAX_FRAME (1024u * 1024 * 1024)

/* The largest --node-id of a cluster with a Kafka listener: the node id is
 * its Kafka broker id and the low byte of the producer ids it hands out
 * (kafka_handlers.c). */
#define KR_KAFKA_MAX_NODE_ID 255

typedef struct kr_config {
    char *listen; /* HOST:PORT */
    char *data_dir;
    char *token;                   /* NULL: no authentication */
    char *port_file;               /* NULL: none */
    char *rocksdb_log_dir;         /* "": inside DATA/view */
    char *http;                    /* admin HOST:PORT, or "off" */
    char *http_token;              /* NULL: /api is open */
    uint32_t http_max_connections; /* admin port connections at once */
    char *kafka_listen;            /* the Kafka port's HOST:PORT, NULL: no Kafka listener */
    char *kafka_advertise; /* HOST:PORT Metadata names, NULL: derived from the bound address */
    uint32_t max_frame;
    uint32_t max_connections;
    uint32_t max_events;        /* cap on `max` in FETCH/POLL */
    uint64_t max_pending_bytes; /* requests read and not answered, all connections */
    uint64_t idle_timeout_ms;   /* 0: never */
    uint64_t write_timeout_ms;
    uint64_t hello_timeout_ms;
    uint64_t shutdown_timeout_ms;
    kr_log_level log_level;
    kr_log_format log_format;
    /* storage */
    uint64_t segment_bytes;
    uint64_t retention_bytes; /* 0: unlimited */
    uint64_t retention_ms;    /* 0: unlimited */
    uint64_t checkpoint_ms;
    uint64_t overlay_bytes;
    uint64_t block_cache_bytes;
    uint64_t max_wait_ms;
    uint32_t max_publish_events;
    uint32_t group_window;
    bool fsync_cursors;
    bool kafka_auto_create; /* Kafka clients create topics on first use */
    uint32_t max_producers; /* idempotent producers kept, all topics */
    bool rebuild_view;
    /* cluster (PROTOCOL.md section 8); raft_listen NULL: a single node */
    char *node_id_text; /* "N" or "auto", as given */
    uint64_t node_id;   /* resolved; 0 without --raft-listen */
    char *raft_listen;
    char *peers;                  /* "1=HOST:PORT,..." or NULL */
    char *advertise;              /* NULL: from --listen, once bound */
    uint32_t raft_snapshot_every; /* raft entries between snapshots; 0: the default */
    uint64_t raft_segment_bytes;  /* raft log segment size; 0: the default */
    /* defaults of the topic settings (PROTOCOL.md section 9) and compaction */
    uint32_t cleanup; /* KR_CLEANUP_* bits */
    uint64_t delete_retention_ms;
    uint64_t segment_ms;   /* 0: never */
    uint64_t compact_rate; /* bytes/s */
    bool compact_idle;     /* the compaction thread runs under SCHED_IDLE */
} kr_config;

typedef enum kr_config_action {
    KR_CONFIG_RUN = 0,
    KR_CONFIG_HELP,    /* --help given: print kr_config_usage, exit 0 */
    KR_CONFIG_VERSION, /* --version given */
    KR_CONFIG_ERROR    /* err holds the sentence; exit 2 */
} kr_config_action;

/*
 * kr_config_parse - fill cfg from defaults, then KRAPPY_* variables, then
 * argv (argv[0] is the program name). The log format defaults to text when
 * `stderr_is_tty`, else JSON.
 * @return what to do; on KR_CONFIG_ERROR, err holds one sentence naming the
 *         flag or variable, the bad value and what is allowed. cfg must be
 *         released with kr_config_free in every case.
 */
kr_config_action kr_config_parse(kr_config *cfg, int argc, char **argv, int stderr_is_tty,
                                 char *err, size_t errlen);

/* Release the strings cfg owns. NULL ok. */
void kr_config_free(kr_config *cfg);

/* Print the --help text (every flag, its variable and default) to out. */
void kr_config_usage(FILE *out);

/*
 * Parsers shared with tests. Each returns 0 on success, -1 when the text is
 * not a valid value (or out of range).
 *   size:     "1048576", "64K", "16M", "1G", "16MiB" (powers of 1024)
 *   duration: "300" (seconds), "300s", "500ms", "5m", "1h"
 */
int kr_parse_size(const char *s, uint64_t *out);
int kr_parse_duration_ms(const char *s, uint64_t *out);
int kr_parse_uint(const char *s, uint64_t max, uint64_t *out);

#endif
