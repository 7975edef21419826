/*
 * server/config.c - flag and environment parsing for krappyd.
 *
 * One table describes every option: its flag, its variable, the kind of
 * value, its default as shown by --help, and where it lands in kr_config.
 * Parsing applies defaults, then the environment, then the command line.
 */
#include "server/config.h"

#include <ctype.h>
#include <errno.h>
#include <getopt.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include "cluster/cluster.h"
#include "krappy/protocol.h"
#include "proto/topic_config.h"
#include "util/hostport.h"

typedef enum opt_kind {
    OPT_STR,
    OPT_SIZE,   /* uint32_t field */
    OPT_SIZE64, /* uint64_t field */
    OPT_UINT,   /* uint32_t field */
    OPT_DURATION,
    OPT_LEVEL,
    OPT_FORMAT,
    OPT_BOOL,    /* a flag without a value; the variable takes 1/0, true/false, yes/no */
    OPT_ONOFF,   /* a flag with a value, on/off (or as OPT_BOOL's variable) */
    OPT_CLEANUP, /* uint32_t field: KR_CLEANUP_* bits from a policy name */
    OPT_PRIORITY /* bool field: true for "idle", false for "normal" */
} opt_kind;

typedef struct opt_spec {
    const char *flag; /* long flag without "--" */
    const char *env;
    opt_kind kind;
    const char *metavar;
    const char *deflt; /* as printed by --help */
    const char *help;
    size_t field;      /* offsetof in kr_config */
    uint64_t min, max; /* numeric bounds */
} opt_spec;

#define F(m) offsetof(kr_config, m)

static const opt_spec specs[] = {
    {"listen", "KRAPPY_LISTEN", OPT_STR, "HOST:PORT", KR_DEFAULT_LISTEN,
     "address of the data port ([::]:7070 for IPv6; port 0 picks a free one)", F(listen), 0, 0},
    {"data", "KRAPPY_DATA", OPT_STR, "DIR", KR_DEFAULT_DATA_DIR,
     "data directory, created if missing", F(data_dir), 0, 0},
    {"token", "KRAPPY_TOKEN", OPT_STR, "TOKEN", "none",
     "require a HELLO carrying this token as the first request", F(token), 0, 0},
    {"max-frame", "KRAPPY_MAX_FRAME", OPT_SIZE, "BYTES", "16M",
     "largest frame accepted or sent (K, M, G suffixes)", F(max_frame), KR_MIN_MAX_FRAME,
     KR_MAX_MAX_FRAME},
    {"max-connections", "KRAPPY_MAX_CONNECTIONS", OPT_UINT, "N", "1024",
     "open connections allowed; one more gets ERROR BUSY", F(max_connections), 1, 1000000},
    {"max-events", "KRAPPY_MAX_EVENTS", OPT_UINT, "N", "10000",
     "cap on `max` of FETCH and POLL (larger values are lowered)", F(max_events), 1, 1000000},
    {"max-pending-bytes", "KRAPPY_MAX_PENDING_BYTES", OPT_SIZE64, "BYTES", "128M",
     "memory for requests read and not yet answered (unfinished frames included), all "
     "connections together: past it krappyd stops reading",
     F(max_pending_bytes), 1024 * 1024, UINT64_MAX},
    {"idle-timeout", "KRAPPY_IDLE_TIMEOUT", OPT_DURATION, "DURATION", "300s",
     "close connections without a request for this long (0 = never)", F(idle_timeout_ms), 0,
     UINT64_MAX},
    {"write-timeout", "KRAPPY_WRITE_TIMEOUT", OPT_DURATION, "DURATION", "60s",
     "close connections that leave replies unread for this long", F(write_timeout_ms), 1,
     UINT64_MAX},
    {"hello-timeout", "KRAPPY_HELLO_TIMEOUT", OPT_DURATION, "DURATION", "10s",
     "with --token: close connections that send no HELLO within this", F(hello_timeout_ms), 1,
     UINT64_MAX},
    {"shutdown-timeout", "KRAPPY_SHUTDOWN_TIMEOUT", OPT_DURATION, "DURATION", "10s",
     "on SIGTERM, wait this long for replies to drain", F(shutdown_timeout_ms), 0, UINT64_MAX},
    {"log-format", "KRAPPY_LOG_FORMAT", OPT_FORMAT, "json|text", "json, text on a terminal",
     "log line format", F(log_format), 0, 0},
    {"log-level", "KRAPPY_LOG_LEVEL", OPT_LEVEL, "LEVEL", "info", "debug, info, warn or error",
     F(log_level), 0, 0},
    {"port-file", "KRAPPY_PORT_FILE", OPT_STR, "FILE", "none",
     "write the data port here once listening (for tests and supervisors)", F(port_file), 0, 0},
    {"segment-bytes", "KRAPPY_SEGMENT_BYTES", OPT_SIZE64, "BYTES", "64M",
     "roll a topic's stream to a new segment file at this size", F(segment_bytes), 4096,
     1ull << 40},
    {"retention-bytes", "KRAPPY_RETENTION_BYTES", OPT_SIZE64, "BYTES", "0 (keep all)",
     "delete a topic's oldest segments while its stream is larger", F(retention_bytes), 0,
     UINT64_MAX},
    {"retention-ms", "KRAPPY_RETENTION_MS", OPT_DURATION, "DURATION", "0 (keep all)",
     "delete segments whose newest event is older than this", F(retention_ms), 0, UINT64_MAX},
    {"cleanup", "KRAPPY_CLEANUP", OPT_CLEANUP, "POLICY", "delete",
     "cleanup of topics that do not set their own: delete (retention drops whole old "
     "segments), compact (events no longer their key's latest are removed) or compact,delete",
     F(cleanup), 0, 0},
    {"delete-retention-ms", "KRAPPY_DELETE_RETENTION_MS", OPT_DURATION, "DURATION", "24h",
     "on compacted topics, keep a tombstone this long before compaction removes it",
     F(delete_retention_ms), 0, UINT64_MAX},
    {"segment-ms", "KRAPPY_SEGMENT_MS", OPT_DURATION, "DURATION", "0 (never)",
     "roll a topic's active segment once its first event is this old, so that compaction "
     "and retention can take a quiet topic's last events (0 or at least 100ms)",
     F(segment_ms), 0, UINT64_MAX},
    {"compact-rate", "KRAPPY_COMPACT_RATE", OPT_SIZE64, "BYTES", "32M",
     "bytes per second compaction reads and writes at most, all topics together (it works a "
     "tenth of the time while the server takes in more than 8 MiB/s)",
     F(compact_rate), 64 * 1024, UINT64_MAX},
    {"compact-priority", "KRAPPY_COMPACT_PRIORITY", OPT_PRIORITY, "idle|normal", "idle",
     "CPU priority of compaction: idle runs the segment rewrites only on a core nothing else "
     "wants (SCHED_IDLE) and RocksDB's compactions of the view at nice 19 and idle IO; normal "
     "shares the cores with the loop",
     F(compact_idle), 0, 0},
    {"checkpoint-interval", "KRAPPY_CHECKPOINT_INTERVAL", OPT_DURATION, "DURATION", "2s",
     "fold new events into RocksDB this often", F(checkpoint_ms), 10, 3600000},
    {"overlay-bytes", "KRAPPY_OVERLAY_BYTES", OPT_SIZE64, "BYTES", "128M",
     "memory of the in-memory view (all topics): half fills while the other half is "
     "checkpointed; a full half checkpoints early, or holds PUBLISH acks while one runs",
     F(overlay_bytes), 1024 * 1024, UINT64_MAX},
    {"block-cache", "KRAPPY_BLOCK_CACHE", OPT_SIZE64, "BYTES", "64M",
     "RocksDB block cache for GET and SCAN", F(block_cache_bytes), 1024 * 1024, UINT64_MAX},
    {"max-wait", "KRAPPY_MAX_WAIT", OPT_DURATION, "DURATION", "60s",
     "cap on a long poll's wait_ms (larger values are lowered)", F(max_wait_ms), 1, 3600000},
    {"rocksdb-log-dir", "KRAPPY_ROCKSDB_LOG_DIR", OPT_STR, "DIR", "/dev/shm if writable",
     "RocksDB's own log; off the data disk, because a full disk makes Debian's RocksDB "
     "abort when it logs (\"\" = inside DATA/view)",
     F(rocksdb_log_dir), 0, 0},
    {"http", "KRAPPY_HTTP", OPT_STR, "HOST:PORT", "127.0.0.1:7071",
     "admin port: console at /, /healthz, /readyz, /metrics, /api (\"off\" = none)", F(http), 0, 0},
    {"http-max-connections", "KRAPPY_HTTP_MAX_CONNECTIONS", OPT_UINT, "N", "32",
     "admin port connections at once; more wait until one closes", F(http_max_connections), 1,
     100000},
    {"http-token", "KRAPPY_HTTP_TOKEN", OPT_STR, "TOKEN", "none",
     "require \"Authorization: Bearer TOKEN\" on /api (probes and /metrics stay open)",
     F(http_token), 0, 0},
    {"group-window", "KRAPPY_GROUP_WINDOW", OPT_UINT, "N", "100000",
     "events a consumer group may have handed out and not acknowledged", F(group_window), 1,
     100000000},
    {"fsync-cursors", "KRAPPY_FSYNC_CURSORS", OPT_BOOL, "", "off",
     "make group cursors survive a power cut too (an fsync per round of ACKs)", F(fsync_cursors), 0,
     1},
    {"max-publish-events", "KRAPPY_MAX_PUBLISH_EVENTS", OPT_UINT, "N", "100000",
     "events one PUBLISH may carry", F(max_publish_events), 1, 10000000},
    {"kafka-listen", "KRAPPY_KAFKA_LISTEN", OPT_STR, "HOST:PORT", "off",
     "a second port speaking the Kafka protocol (9092 by convention; port 0 picks a free one)",
     F(kafka_listen), 0, 0},
    {"kafka-advertise", "KRAPPY_KAFKA_ADVERTISE", OPT_STR, "HOST:PORT",
     "the Kafka port as bound (a wildcard host: this machine's name)",
     "the address Kafka clients are told to connect to (Metadata); in Kubernetes the pod's "
     "DNS name",
     F(kafka_advertise), 0, 0},
    {"kafka-auto-create", "KRAPPY_KAFKA_AUTO_CREATE", OPT_ONOFF, "on|off", "on",
     "Kafka clients create a topic by producing to it or asking Metadata for it",
     F(kafka_auto_create), 0, 1},
    {"max-producers", "KRAPPY_MAX_PRODUCERS", OPT_UINT, "N", "100000",
     "idempotent producers kept, all topics; beyond it the least recently active idle one is "
     "forgotten (each is kept 7 days after its last activity otherwise)",
     F(max_producers), 1, 100000000},
    {"rebuild-view", "KRAPPY_REBUILD_VIEW", OPT_BOOL, "", "off",
     "start with the latest-value view rebuilt from the streams (after it was damaged or "
     "lost), keeping the consumer groups' cursors and idempotent producers' registrations",
     F(rebuild_view), 0, 1},
    {"node-id", "KRAPPY_NODE_ID", OPT_STR, "N|auto", "none",
     "this node's id in a cluster, above 0 (at most 255 with --kafka-listen), never reused "
     "for another volume; auto: the number at the end of the host name plus one (a "
     "StatefulSet pod's ordinal)",
     F(node_id_text), 0, 0},
    {"raft-listen", "KRAPPY_RAFT_LISTEN", OPT_STR, "HOST:PORT", "none (a single node)",
     "run as a cluster member: raft listens here (and peers reach this node here when it is "
     "not one of --peers)",
     F(raft_listen), 0, 0},
    {"peers", "KRAPPY_PEERS", OPT_STR, "ID=HOST:PORT,...", "none",
     "the raft addresses of the cluster's voters (DNS names, resolved on every connect); nodes "
     "started with the same --peers on empty data directories form one cluster",
     F(peers), 0, 0},
    {"advertise", "KRAPPY_ADVERTISE", OPT_STR, "HOST:PORT", "--listen",
     "the data address clients are sent to (CLUSTER, NOT_LEADER); a --listen of 0.0.0.0 is "
     "advertised with this host's name",
     F(advertise), 0, 0},
    {"raft-snapshot-every", "KRAPPY_RAFT_SNAPSHOT_EVERY", OPT_UINT, "N", "16384",
     "raft entries between snapshots (64 MiB of entries take one sooner); each stalls "
     "replication for a moment, and the log since the last one is held in memory",
     F(raft_snapshot_every), 16, 1000000},
    {"raft-segment-bytes", "KRAPPY_RAFT_SEGMENT_BYTES", OPT_SIZE64, "BYTES", "32M",
     "size of each raft log segment file; libraft keeps two prepared ahead of the one it "
     "writes (the disk they reserve), and writes are refused while the disk has less than "
     "two segments (at least 64 MiB) free",
     F(raft_segment_bytes), 1024 * 1024, 1024 * 1024 * 1024},
};

#define N_SPECS (sizeof specs / sizeof specs[0])

int kr_parse_uint(const char *s, uint64_t max, uint64_t *out)
{
    if (s == NULL || !isdigit((unsigned char)s[0]))
        return -1;
    errno = 0;
    char *end;
    unsigned long long v = strtoull(s, &end, 10);
    if (errno != 0 || *end != '\0' || v > max)
        return -1;
    *out = v;
    return 0;
}

/* Split "123K" into the number and the suffix; the suffix starts at *rest. */
static int leading_uint(const char *s, uint64_t *v, const char **rest)
{
    if (s == NULL || !isdigit((unsigned char)s[0]))
        return -1;
    errno = 0;
    char *end;
    unsigned long long n = strtoull(s, &end, 10);
    if (errno != 0)
        return -1;
    *v = n;
    *rest = end;
    return 0;
}

static int mul_ok(uint64_t a, uint64_t b, uint64_t *out)
{
    if (b != 0 && a > UINT64_MAX / b)
        return -1;
    *out = a * b;
    return 0;
}

/* A number's unit suffix and what it multiplies by. */
typedef struct unit {
    const char *suffix;
    uint64_t mult;
} unit;

static const unit size_units[] = {
    {"", 1},
    {"B", 1},
    {"K", 1024},
    {"k", 1024},
    {"KiB", 1024},
    {"M", 1024 * 1024},
    {"m", 1024 * 1024},
    {"MiB", 1024 * 1024},
    {"G", 1024 * 1024 * 1024},
    {"g", 1024 * 1024 * 1024},
    {"GiB", 1024 * 1024 * 1024},
};

static const unit duration_units[] = {
    {"", 1000}, {"s", 1000}, {"ms", 1}, {"m", 60 * 1000}, {"h", 3600 * 1000},
};

/* A whole number with one of n units after it, multiplied out. */
static int parse_with_unit(const char *s, const unit *units, size_t n, uint64_t *out)
{
    uint64_t v;
    const char *r;
    if (leading_uint(s, &v, &r) < 0)
        return -1;
    for (size_t i = 0; i < n; i++)
        if (strcmp(r, units[i].suffix) == 0)
            return mul_ok(v, units[i].mult, out);
    return -1;
}

int kr_parse_size(const char *s, uint64_t *out)
{
    return parse_with_unit(s, size_units, sizeof size_units / sizeof size_units[0], out);
}

int kr_parse_duration_ms(const char *s, uint64_t *out)
{
    return parse_with_unit(s, duration_units, sizeof duration_units / sizeof duration_units[0],
                           out);
}

static const char *kind_hint(opt_kind k)
{
    switch (k) {
    case OPT_SIZE:
    case OPT_SIZE64:
        return "a number of bytes, optionally with K, M or G";
    case OPT_UINT:
        return "a whole number";
    case OPT_DURATION:
        return "seconds, or a number with ms, s, m or h";
    case OPT_LEVEL:
        return "debug, info, warn or error";
    case OPT_FORMAT:
        return "json or text";
    case OPT_BOOL:
        return "1 or 0, true or false, yes or no";
    case OPT_ONOFF:
        return "on or off";
    case OPT_CLEANUP:
        return "delete, compact or compact,delete";
    case OPT_PRIORITY:
        return "idle or normal";
    case OPT_STR:
        break;
    }
    return "a value";
}

/* Apply one value to cfg. `origin` names the flag or variable for errors. */
static int apply(kr_config *cfg, const opt_spec *o, const char *val, const char *origin, char *err,
                 size_t errlen)
{
    char *base = (char *)cfg;
    uint64_t v = 0;
    int bad = 0;

    switch (o->kind) {
    case OPT_STR: {
        char **dst = (char **)(void *)(base + o->field);
        if (val[0] == '\0' && o->field != F(token) && o->field != F(rocksdb_log_dir) &&
            o->field != F(http_token) && o->field != F(kafka_listen)) {
            snprintf(err, errlen, "%s must not be empty", origin);
            return -1;
        }
        char *copy = strdup(val);
        if (copy == NULL) {
            snprintf(err, errlen, "out of memory");
            return -1;
        }
        free(*dst);
        *dst = copy;
        return 0;
    }
    case OPT_LEVEL:
        if (kr_log_level_parse(val, (kr_log_level *)(void *)(base + o->field)) == 0)
            return 0;
        bad = 1;
        break;
    case OPT_BOOL:
    case OPT_ONOFF: {
        bool *dst = (bool *)(void *)(base + o->field);
        if (!strcmp(val, "1") || !strcasecmp(val, "true") || !strcasecmp(val, "yes") ||
            !strcasecmp(val, "on"))
            *dst = true;
        else if (!strcmp(val, "0") || !strcasecmp(val, "false") || !strcasecmp(val, "no") ||
                 !strcasecmp(val, "off"))
            *dst = false;
        else
            bad = 1;
        if (!bad)
            return 0;
        break;
    }
    case OPT_FORMAT:
        if (kr_log_format_parse(val, (kr_log_format *)(void *)(base + o->field)) == 0)
            return 0;
        bad = 1;
        break;
    case OPT_CLEANUP:
        if (kr_cleanup_parse(val, strlen(val), &v) == 0) {
            *(uint32_t *)(void *)(base + o->field) = (uint32_t)v;
            return 0;
        }
        bad = 1;
        break;
    case OPT_PRIORITY: {
        bool *dst = (bool *)(void *)(base + o->field);
        if (!strcasecmp(val, "idle"))
            *dst = true;
        else if (!strcasecmp(val, "normal"))
            *dst = false;
        else
            bad = 1;
        if (!bad)
            return 0;
        break;
    }
    case OPT_SIZE:
    case OPT_SIZE64:
        bad = kr_parse_size(val, &v) < 0;
        break;
    case OPT_UINT:
        bad = kr_parse_uint(val, UINT64_MAX, &v) < 0;
        break;
    case OPT_DURATION:
        bad = kr_parse_duration_ms(val, &v) < 0;
        break;
    }
    if (bad) {
        snprintf(err, errlen, "%s: '%s' is not valid (use %s)", origin, val, kind_hint(o->kind));
        return -1;
    }
    if (v < o->min || v > o->max) {
        snprintf(err, errlen, "%s: %s is out of range (allowed: %llu to %llu)", origin, val,
                 (unsigned long long)o->min, (unsigned long long)o->max);
        return -1;
    }
    if (o->kind == OPT_DURATION || o->kind == OPT_SIZE64)
        *(uint64_t *)(void *)(base + o->field) = v;
    else
        *(uint32_t *)(void *)(base + o->field) = (uint32_t)v;
    return 0;
}

static int set_defaults(kr_config *cfg, int stderr_is_tty)
{
    memset(cfg, 0, sizeof *cfg);
    cfg->listen = strdup(KR_DEFAULT_LISTEN);
    cfg->data_dir = strdup(KR_DEFAULT_DATA_DIR);
    cfg->max_frame = KRAPPY_DEFAULT_MAX_FRAME;
    cfg->max_connections = KR_DEFAULT_MAX_CONNECTIONS;
    cfg->max_events = KR_DEFAULT_MAX_EVENTS;
    cfg->max_pending_bytes = KR_DEFAULT_MAX_PENDING_BYTES;
    cfg->http_max_connections = KR_DEFAULT_HTTP_MAX_CONNECTIONS;
    cfg->idle_timeout_ms = KR_DEFAULT_IDLE_TIMEOUT_MS;
    cfg->write_timeout_ms = KR_DEFAULT_WRITE_TIMEOUT_MS;
    cfg->hello_timeout_ms = KR_DEFAULT_HELLO_TIMEOUT_MS;
    cfg->shutdown_timeout_ms = KR_DEFAULT_SHUTDOWN_TIMEOUT_MS;
    cfg->log_level = KR_LOG_INFO;
    cfg->rocksdb_log_dir = strdup(access("/dev/shm", W_OK) == 0 ? "/dev/shm" : "");
    cfg->http = strdup("127.0.0.1:7071");
    cfg->segment_bytes = 64u * 1024 * 1024;
    cfg->checkpoint_ms = 2000;
    cfg->cleanup = KR_CLEANUP_DELETE;
    cfg->delete_retention_ms = 24ull * 3600 * 1000;
    cfg->compact_rate = 32ull * 1024 * 1024;
    cfg->compact_idle = true;
    cfg->overlay_bytes = 128u * 1024 * 1024;
    cfg->block_cache_bytes = 64u * 1024 * 1024;
    cfg->max_wait_ms = 60000;
    cfg->max_publish_events = 100000;
    cfg->group_window = 100000;
    cfg->kafka_auto_create = true;
    cfg->max_producers = 100000;
    cfg->log_format = stderr_is_tty ? KR_LOG_TEXT : KR_LOG_JSON;
    return cfg->listen && cfg->data_dir && cfg->rocksdb_log_dir && cfg->http ? 0 : -1;
}

/* --node-id: a number above 0, or auto (the host name's ordinal plus one). */
static int node_id(kr_config *cfg, char *err, size_t errlen)
{
    if (cfg->node_id_text == NULL) {
        snprintf(err, errlen, "--raft-listen needs --node-id N (or auto, in a StatefulSet)");
        return -1;
    }
    if (strcmp(cfg->node_id_text, "auto") == 0) {
        char host[256] = "";
        char why[300];
        gethostname(host, sizeof host - 1);
        if (kr_cluster_node_id_from_host(host, &cfg->node_id, why, sizeof why) < 0) {
            snprintf(err, errlen, "%s", why);
            return -1;
        }
        return 0;
    }
    if (kr_parse_uint(cfg->node_id_text, UINT64_MAX, &cfg->node_id) < 0 || cfg->node_id == 0) {
        snprintf(err, errlen, "--node-id: '%s' is not a number above 0 or auto", cfg->node_id_text);
        return -1;
    }
    return 0;
}

/* The cluster flags: all or nothing, each well-formed now, not at start. */
static int check_cluster(kr_config *cfg, char *err, size_t errlen)
{
    char why[300];
    if (cfg->advertise != NULL) {
        kr_hostport hp = {0};
        if (kr_hostport_parse(cfg->advertise, 0, &hp, why, sizeof why) < 0 || hp.host[0] == '\0') {
            snprintf(err, errlen, "--advertise: %s", why[0] ? why : "the address needs a host");
            return -1;
        }
    }
    if (cfg->raft_listen == NULL) {
        if (cfg->peers != NULL || cfg->node_id_text != NULL || cfg->raft_snapshot_every != 0 ||
            cfg->raft_segment_bytes != 0) {
            snprintf(err, errlen, "--%s needs --raft-listen (a cluster member's raft address)",
                     cfg->peers != NULL              ? "peers"
                     : cfg->node_id_text != NULL     ? "node-id"
                     : cfg->raft_snapshot_every != 0 ? "raft-snapshot-every"
                                                     : "raft-segment-bytes");
            return -1;
        }
        return 0;
    }
    kr_hostport hp = {0};
    if (kr_hostport_parse(cfg->raft_listen, 0, &hp, why, sizeof why) < 0) {
        snprintf(err, errlen, "--raft-listen: %s", why);
        return -1;
    }
    if (node_id(cfg, err, errlen) < 0)
        return -1;
    if (cfg->kafka_listen != NULL && cfg->node_id > KR_KAFKA_MAX_NODE_ID) {
        snprintf(err, errlen,
                 "--node-id %llu: with --kafka-listen a node id is 1 to %d (it is the node's "
                 "Kafka broker id, and the low byte of the Kafka producer ids it hands out, "
                 "which must differ between nodes)",
                 (unsigned long long)cfg->node_id, KR_KAFKA_MAX_NODE_ID);
        return -1;
    }
    if (cfg->peers != NULL) {
        kr_node_peer *p;
        size_t n;
        if (kr_cluster_parse_peers(cfg->peers, &p, &n, err, errlen) < 0)
            return -1;
        kr_cluster_free_peers(p, n);
    }
    return 0;
}

/* The listen address must split into host and port now, not at bind time. */
static int check(kr_config *cfg, char *err, size_t errlen)
{
    kr_hostport http_addr = {0}, listen_addr = {0}; /* no defaults: the port is required */
    if (strcmp(cfg->http, "off") != 0 &&
        kr_hostport_parse(cfg->http, KR_HOSTPORT_PORT_ZERO, &http_addr, NULL, 0) < 0) {
        snprintf(err, errlen, "--http: '%s' is not HOST:PORT or off (example: 127.0.0.1:7071)",
                 cfg->http);
        return -1;
    }
    if (kr_hostport_parse(cfg->listen, KR_HOSTPORT_PORT_ZERO, &listen_addr, NULL, 0) < 0) {
        snprintf(err, errlen,
                 "--listen: '%s' is not HOST:PORT (examples: 0.0.0.0:7070, 127.0.0.1:0, "
                 "[::1]:7070)",
                 cfg->listen);
        return -1;
    }
    kr_hostport kafka_addr = {0}, advertised = {0};
    if (cfg->kafka_listen != NULL &&
        kr_hostport_parse(cfg->kafka_listen, KR_HOSTPORT_PORT_ZERO, &kafka_addr, NULL, 0) < 0) {
        snprintf(err, errlen,
                 "--kafka-listen: '%s' is not HOST:PORT or off (examples: 0.0.0.0:9092, "
                 "127.0.0.1:9092)",
                 cfg->kafka_listen);
        return -1;
    }
    /* The advertised address is what clients dial: a host and a real port. */
    if (cfg->kafka_advertise != NULL &&
        (kr_hostport_parse(cfg->kafka_advertise, 0, &advertised, NULL, 0) < 0 ||
         advertised.host[0] == '\0')) {
        snprintf(err, errlen,
                 "--kafka-advertise: '%s' is not HOST:PORT with a host and a port other than 0 "
                 "(example: krappyd-0.krappyd-headless:9092)",
                 cfg->kafka_advertise);
        return -1;
    }
    return check_cluster(cfg, err, errlen);
}

kr_config_action kr_config_parse(kr_config *cfg, int argc, char **argv, int stderr_is_tty,
                                 char *err, size_t errlen)
{
    struct option longopts[N_SPECS + 3];
    char origin[128];

    if (set_defaults(cfg, stderr_is_tty) < 0) {
        snprintf(err, errlen, "out of memory");
        return KR_CONFIG_ERROR;
    }
    for (size_t i = 0; i < N_SPECS; i++) {
        const char *v = getenv(specs[i].env);
        if (v == NULL)
            continue;
        snprintf(origin, sizeof origin, "%s", specs[i].env);
        if (apply(cfg, &specs[i], v, origin, err, errlen) < 0)
            return KR_CONFIG_ERROR;
    }

    for (size_t i = 0; i < N_SPECS; i++)
        longopts[i] = (struct option){specs[i].flag,
                                      specs[i].kind == OPT_BOOL ? no_argument : required_argument,
                                      NULL, (int)(256 + i)};
    longopts[N_SPECS] = (struct option){"help", no_argument, NULL, 'h'};
    longopts[N_SPECS + 1] = (struct option){"version", no_argument, NULL, 'V'};
    longopts[N_SPECS + 2] = (struct option){NULL, 0, NULL, 0};

    /* getopt keeps global state; reset it so tests can parse repeatedly. */
    optind = 0;
    opterr = 0;
    for (;;) {
        int longind = -1;
        int c = getopt_long(argc, argv, ":hV", longopts, &longind);
        if (c == -1)
            break;
        if (c == 'h')
            return KR_CONFIG_HELP;
        if (c == 'V')
            return KR_CONFIG_VERSION;
        if (c == '?') {
            const char *bad = argv[optind - 1];
            snprintf(err, errlen, "unknown option '%s'", bad);
            return KR_CONFIG_ERROR;
        }
        if (c == ':') {
            snprintf(err, errlen, "option '%s' needs a value", argv[optind - 1]);
            return KR_CONFIG_ERROR;
        }
        const opt_spec *o = &specs[c - 256];
        snprintf(origin, sizeof origin, "--%s", o->flag);
        if (apply(cfg, o, o->kind == OPT_BOOL ? "1" : optarg, origin, err, errlen) < 0)
            return KR_CONFIG_ERROR;
    }
    if (optind < argc) {
        snprintf(err, errlen, "unexpected argument '%s' (krappyd takes only options)",
                 argv[optind]);
        return KR_CONFIG_ERROR;
    }
    if (cfg->segment_ms != 0 && cfg->segment_ms < KR_TC_SEGMENT_MS_MIN) {
        snprintf(err, errlen, "--segment-ms: must be 0 (never) or at least 100ms");
        return KR_CONFIG_ERROR;
    }
    if (cfg->token != NULL && cfg->token[0] == '\0') {
        free(cfg->token); /* an empty token means no authentication */
        cfg->token = NULL;
    }
    if (cfg->kafka_listen != NULL &&
        (cfg->kafka_listen[0] == '\0' || strcmp(cfg->kafka_listen, "off") == 0)) {
        free(cfg->kafka_listen); /* "off" or "": no Kafka listener */
        cfg->kafka_listen = NULL;
    }
    return check(cfg, err, errlen) < 0 ? KR_CONFIG_ERROR : KR_CONFIG_RUN;
}

void kr_config_free(kr_config *cfg)
{
    if (cfg == NULL)
        return;
    free(cfg->listen);
    free(cfg->data_dir);
    free(cfg->token);
    free(cfg->port_file);
    free(cfg->rocksdb_log_dir);
    free(cfg->http);
    free(cfg->http_token);
    free(cfg->node_id_text);
    free(cfg->raft_listen);
    free(cfg->peers);
    free(cfg->advertise);
    free(cfg->kafka_listen);
    free(cfg->kafka_advertise);
    memset(cfg, 0, sizeof *cfg);
}

void kr_config_usage(FILE *out)
{
    fprintf(out, "Usage: krappyd [OPTIONS]\n"
                 "\n"
                 "krappyd is the krappy event store daemon: it speaks the Krappy wire protocol\n"
                 "on its data port and keeps its data under --data.\n"
                 "\n"
                 "Options (each also read from the environment variable shown; flags win):\n");
    for (size_t i = 0; i < N_SPECS; i++) {
        const opt_spec *o = &specs[i];
        char left[64];
        snprintf(left, sizeof left, "--%s%s%s", o->flag, o->metavar[0] ? " " : "", o->metavar);
        fprintf(out, "  %-28s %s\n  %-28s [%s; default %s]\n", left, o->help, "", o->env, o->deflt);
    }
    fprintf(out, "  %-28s %s\n  %-28s %s\n", "--help", "print this help and exit", "--version",
            "print the version and exit");
    fprintf(out, "\n"
                 "Signals: SIGTERM or SIGINT stop accepting, flush replies and exit 0.\n"
                 "Exit status: 0 after a clean stop, 1 when it cannot start, 2 for bad options.\n"
                 "Example: krappyd --listen 127.0.0.1:7070 --data /var/lib/krappy\n"
                 "A cluster of three (each node with its own --node-id, the same --peers):\n"
                 "  krappyd --node-id 1 --raft-listen 0.0.0.0:7072 --advertise a:7070 \\\n"
                 "          --peers 1=a:7072,2=b:7072,3=c:7072\n");
}
