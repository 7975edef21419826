/*
 * server/kafka_topics.c - Kafka's administration of topics and configs:
 * CreateTopics, DeleteTopics, DescribeConfigs, AlterConfigs and
 * IncrementalAlterConfigs, answered with what this server really does.
 *
 * Kafka's cleanup.policy, retention.ms, retention.bytes, delete.retention.ms,
 * segment.bytes and segment.ms are krappy's topic settings (PROTOCOL.md
 * section 9, store/topic_config.h): DescribeConfigs shows the topic's
 * (source "dynamic topic config" for those it sets itself, "static broker
 * config" for the server's flags), CreateTopics creates a topic with them
 * and AlterConfigs or IncrementalAlterConfigs change them, durably, like
 * TOPIC_CONFIG: SET sets one, DELETE drops the topic's own value (the
 * server's flag applies again), APPEND and SUBTRACT add or remove a policy
 * of cleanup.policy, the one list among them (any other config: Kafka's
 * INVALID_REQUEST). Kafka's -1 ("no limit") is krappy's 0 for retention,
 * and Long.MAX_VALUE its 0 ("never") for segment.ms. The other configs are
 * the server's, the same for every topic: asking for another value than
 * the server's is INVALID_CONFIG with a sentence naming the setting, its
 * value here and the flag. A krappy topic has one partition and
 * one replica. DeleteTopics is the store's DELETE_TOPIC (kr_ops_delete_topic:
 * Kafka producers and prefetches let go of the topic too), answered once
 * each topic is gone durably.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "server/kafka.h"
#include "server/kafka_groups.h"
#include "store/topic_config.h"
#include "util/log.h"

/* Kafka's config types (DescribeConfigs v3). */
enum { CT_BOOLEAN = 1, CT_STRING = 2, CT_INT = 3, CT_LONG = 5, CT_LIST = 7 };
/* Kafka's config sources: set on the topic, or by the broker's static
 * configuration. */
#define CS_DYNAMIC_TOPIC 1
#define CS_STATIC_BROKER 4

typedef struct kconf {
    const char *name;
    char value[KR_HOSTPORT_MAX + 32];
    int8_t type;
    const char *flag; /* the krappyd flag that sets it, or NULL */
    int field;        /* the krappy topic setting it is (kr_tc_field), or -1 */
    bool own;         /* ... set by the topic itself */
} kconf;

#define N_TOPIC_CONF  10
#define N_BROKER_CONF 16

/* Kafka's topic configs that are krappy topic settings. */
static const struct kmap {
    const char *kafka;
    int field;
    int8_t type;
    const char *flag;
} kmap[] = {
    {"cleanup.policy", KR_TC_CLEANUP, CT_LIST, "--cleanup"},
    {"retention.ms", KR_TC_RETENTION_MS, CT_LONG, "--retention-ms"},
    {"retention.bytes", KR_TC_RETENTION_BYTES, CT_LONG, "--retention-bytes"},
    {"delete.retention.ms", KR_TC_DELETE_RETENTION_MS, CT_LONG, "--delete-retention-ms"},
    {"segment.bytes", KR_TC_SEGMENT_BYTES, CT_INT, "--segment-bytes"},
    {"segment.ms", KR_TC_SEGMENT_MS, CT_LONG, "--segment-ms"},
};
#define N_KMAP (sizeof kmap / sizeof kmap[0])

static void set(kconf *c, const char *name, int8_t type, const char *flag, const char *fmt, ...)
    __attribute__((format(printf, 5, 6)));

static void set(kconf *c, const char *name, int8_t type, const char *flag, const char *fmt, ...)
{
    va_list ap;
    c->name = name;
    c->type = type;
    c->flag = flag;
    c->field = -1;
    c->own = false;
    va_start(ap, fmt);
    vsnprintf(c->value, sizeof c->value, fmt, ap);
    va_end(ap);
}

/* A size or duration flag as Kafka says it: 0 (keep all) is -1. */
static int64_t unlimited(uint64_t v)
{
    return v == 0 ? -1 : (int64_t)v;
}

/* A krappy setting's value as Kafka says it. */
static void kafka_value(int field, uint64_t v, char *out, size_t n)
{
    if (field == KR_TC_CLEANUP)
        snprintf(out, n, "%s", kr_cleanup_name(v) != NULL ? kr_cleanup_name(v) : "delete");
    else if ((field == KR_TC_RETENTION_MS || field == KR_TC_RETENTION_BYTES) && v == 0)
        snprintf(out, n, "-1");
    else if (field == KR_TC_SEGMENT_MS && v == 0)
        snprintf(out, n, "%" PRId64, INT64_MAX);
    else
        snprintf(out, n, "%" PRIu64, v);
}

/*
 * A Kafka value of a mapped config into set (its mask grows). @return 0,
 * or INVALID_CONFIG with why filled.
 */
static int16_t kafka_setting(const struct kmap *m, kr_kafka_str value, kr_topic_config *set,
                             char *why, size_t whylen)
{
    char text[64];
    uint64_t v = 0;
    int bad = value.len < 0 || (size_t)value.len >= sizeof text;
    if (!bad) {
        memcpy(text, value.ptr, (size_t)value.len);
        text[value.len] = '\0';
    }
    if (bad) {
        /* null: the default is what the topic has; nothing to set */
        if (value.len < 0)
            return 0;
    } else if (m->field == KR_TC_CLEANUP) {
        bad = kr_cleanup_parse(text, strlen(text), &v) < 0;
    } else if (strcmp(text, "-1") == 0 &&
               (m->field == KR_TC_RETENTION_MS || m->field == KR_TC_RETENTION_BYTES)) {
        v = 0;
    } else {
        char *end;
        errno = 0;
        v = strtoull(text, &end, 10);
        bad = text[0] < '0' || text[0] > '9' || *end != '\0' || errno != 0;
        if (!bad && m->field == KR_TC_SEGMENT_MS && v >= (uint64_t)INT64_MAX)
            v = 0; /* Long.MAX_VALUE: never */
    }
    char msg[200];
    if (bad || kr_tc_check(m->field, v, msg, sizeof msg) < 0) {
        snprintf(why, whylen, "%s cannot be %.*s: krappy's %s must be %s", m->kafka,
                 value.len > 0 ? (value.len > 60 ? 60 : (int)value.len) : 0,
                 value.len > 0 ? value.ptr : "", kr_tc_name(m->field),
                 m->field == KR_TC_CLEANUP
                     ? "delete, compact or compact,delete"
                     : "a whole number within its range (-1 for no limit on retention)");
        return KR_KAFKA_ERR_INVALID_CONFIG;
    }
    set->v[m->field] = v;
    set->mask |= 1u << m->field;
    return 0;
}

/* A topic's settings (t NULL: one being created, the server's defaults
 * for the mapped ones). @return how many. */
static size_t topic_conf(const kr_config *cfg, const kr_topic *t, kconf out[N_TOPIC_CONF])
{
    size_t n = 0;
    for (size_t i = 0; i < N_KMAP; i++) {
        const struct kmap *m = &kmap[i];
        kconf *c = &out[n++];
        c->name = m->kafka;
        c->type = m->type;
        c->flag = m->flag;
        c->field = m->field;
        c->own = t != NULL && ((t->own.mask >> m->field) & 1u);
        uint64_t v = t != NULL ? t->cfg.v[m->field] : 0;
        if (t == NULL) {
            v = m->field == KR_TC_CLEANUP               ? cfg->cleanup
                : m->field == KR_TC_RETENTION_MS        ? cfg->retention_ms
                : m->field == KR_TC_RETENTION_BYTES     ? cfg->retention_bytes
                : m->field == KR_TC_DELETE_RETENTION_MS ? cfg->delete_retention_ms
                : m->field == KR_TC_SEGMENT_BYTES       ? cfg->segment_bytes
                                                        : cfg->segment_ms;
        }
        kafka_value(m->field, v, c->value, sizeof c->value);
    }
    set(&out[n++], "max.message.bytes", CT_INT, "--max-frame", "%u",
        cfg->max_frame - KRAPPY_REPLY_SLACK_BYTES);
    set(&out[n++], "message.timestamp.type", CT_STRING, NULL, "CreateTime");
    set(&out[n++], "compression.type", CT_STRING, NULL, "uncompressed");
    set(&out[n++], "min.insync.replicas", CT_INT, NULL, "1");
    return n;
}

/* The broker's settings. @return how many. */
static size_t broker_conf(const kr_kafka *k, kconf out[N_BROKER_CONF])
{
    const kr_config *cfg = k->cfg;
    size_t n = 0;
    char addr[KR_HOSTPORT_MAX + 1], port[8];
    snprintf(port, sizeof port, "%d", k->adv_port);
    kr_hostport_format(addr, sizeof addr, k->host, port);
    set(&out[n++], "broker.id", CT_INT, NULL, "%d", kr_kafka_node_id(k));
    set(&out[n++], "advertised.listeners", CT_STRING, "--kafka-advertise", "%s://%s",
        cfg->token != NULL ? "SASL_PLAINTEXT" : "PLAINTEXT", addr);
    set(&out[n++], "sasl.enabled.mechanisms", CT_LIST, "--token", "%s",
        cfg->token != NULL ? "PLAIN" : "");
    set(&out[n++], "auto.create.topics.enable", CT_BOOLEAN, "--kafka-auto-create", "%s",
        cfg->kafka_auto_create ? "true" : "false");
    set(&out[n++], "delete.topic.enable", CT_BOOLEAN, NULL, "true");
    set(&out[n++], "num.partitions", CT_INT, NULL, "1");
    set(&out[n++], "default.replication.factor", CT_INT, NULL, "1");
    set(&out[n++], "offsets.topic.replication.factor", CT_INT, NULL, "1");
    set(&out[n++], "log.cleanup.policy", CT_LIST, "--cleanup", "%s",
        kr_cleanup_name(cfg->cleanup) != NULL ? kr_cleanup_name(cfg->cleanup) : "delete");
    set(&out[n++], "log.retention.ms", CT_LONG, "--retention-ms", "%" PRId64,
        unlimited(cfg->retention_ms));
    set(&out[n++], "log.retention.bytes", CT_LONG, "--retention-bytes", "%" PRId64,
        unlimited(cfg->retention_bytes));
    set(&out[n++], "log.segment.bytes", CT_INT, "--segment-bytes", "%" PRIu64, cfg->segment_bytes);
    set(&out[n++], "message.max.bytes", CT_INT, "--max-frame", "%u",
        cfg->max_frame - KRAPPY_REPLY_SLACK_BYTES);
    set(&out[n++], "socket.request.max.bytes", CT_INT, "--max-frame", "%u", cfg->max_frame);
    set(&out[n++], "group.min.session.timeout.ms", CT_INT, NULL, "%d", KR_KGROUP_MIN_SESSION_MS);
    set(&out[n++], "group.max.session.timeout.ms", CT_INT, NULL, "%d", KR_KGROUP_MAX_SESSION_MS);
    return n;
}

static const kconf *conf_find(const kconf *all, size_t n, kr_kafka_str name)
{
    for (size_t i = 0; i < n; i++)
        if (name.len >= 0 && strlen(all[i].name) == (size_t)name.len &&
            memcmp(all[i].name, name.ptr, (size_t)name.len) == 0)
            return &all[i];
    return NULL;
}

/*
 * May a setting be asked for? A krappy topic setting (set not NULL: a
 * topic's) takes any value in its range, added to *set; any other config
 * only its current value (or null: the default). @return 0, or
 * INVALID_CONFIG with why filled.
 */
static int16_t conf_check(const kconf *all, size_t n, kr_kafka_str name, kr_kafka_str value,
                          kr_topic_config *set, char *why, size_t whylen)
{
    const kconf *c = conf_find(all, n, name);
    if (c != NULL && c->field >= 0 && set != NULL) {
        for (size_t i = 0; i < N_KMAP; i++)
            if (kmap[i].field == c->field)
                return kafka_setting(&kmap[i], value, set, why, whylen);
    }
    if (c == NULL) {
        snprintf(why, whylen, "config %.*s is not one this server has (DescribeConfigs lists them)",
                 name.len > 0 ? (name.len > 200 ? 200 : (int)name.len) : 0,
                 name.len > 0 ? name.ptr : "");
        return KR_KAFKA_ERR_INVALID_CONFIG;
    }
    if (value.len < 0 || (strlen(c->value) == (size_t)value.len &&
                          memcmp(c->value, value.ptr, (size_t)value.len) == 0))
        return 0;
    /* The sentence may be cut to whylen: the value asked for goes last. */
    if (snprintf(why, whylen,
                 "%s is %s for every topic on this server%s%s%s, so %.*s cannot be set", c->name,
                 c->value, c->flag ? " (krappyd " : "", c->flag ? c->flag : "", c->flag ? ")" : "",
                 value.len > 200 ? 200 : (int)value.len, value.ptr) < 0)
        why[0] = '\0';
    return KR_KAFKA_ERR_INVALID_CONFIG;
}

static kr_kafka_str copy_str(kr_kreq *r, const char *s)
{
    size_t n = strlen(s);
    const char *d = kr_kreq_strdup(r, s, (int32_t)n);
    return d != NULL ? (kr_kafka_str){d, (int32_t)n} : (kr_kafka_str){"", 0};
}

/* ---- answers that wait for topic settings to be written ---- */

/* A CreateTopics or AlterConfigs request whose topics are being written:
 * answered once the last one is (or failed: the log says why). */
typedef struct kpending {
    kr_kreq *r;
    const void *resp; /* the response struct, filled as the topics go */
    uint32_t pending; /* the topics being written, plus one for the request */
    const char *what; /* the request, for the log */
} kpending;

/* The answer's count (`resp` its response struct, in r's memory), the
 * request's own one taken. @return NULL when out of memory (answer
 * kr_kreq_nomem then); else r is async from here on. */
static kpending *kpending_start(kr_kreq *r, const void *resp, const char *what)
{
    kpending *kp = kr_kreq_array(r, 1, sizeof *kp);
    if (kp == NULL || resp == NULL)
        return NULL;
    *kp = (kpending){.r = r, .resp = resp, .pending = 1, .what = what};
    kr_kreq_async(r);
    return kp;
}

/* A topic written (or not; sr NULL: the request's own count): the answer
 * once all are. */
static void kpending_done(void *arg, const kr_store_result *sr)
{
    kpending *kp = arg;
    if (sr != NULL && sr->err != KRAPPY_OK)
        kr_log(KR_LOG_ERROR, "a Kafka client's topic change could not be written",
               KR_LOG_STR("request", kp->what), KR_LOG_STR("reason", sr->msg));
    if (--kp->pending == 0)
        kr_kreq_respond(kp->r, kp->resp);
}

/*
 * Create the topic `name` (with the settings `set` changes, if any) or
 * change its settings, counted in kp. @return 0, or
 * KAFKA_STORAGE_ERROR with why filled (nothing counted).
 */
static int16_t kpending_configure(kpending *kp, kr_kconn *c, kr_kafka_str name,
                                  const kr_topic_config *set, kr_topic **t, char *why,
                                  size_t whylen)
{
    kr_store_result sr = {0};
    int rc;
    kp->pending++;
    if ((set->mask | set->reset) == 0 && c->k->srv->cluster == NULL) {
        rc = kr_store_register(c->k->srv->store, (const uint8_t *)name.ptr, (size_t)name.len, t,
                               kpending_done, kp, &sr);
        if (rc < 0)
            snprintf(why, whylen, "%s", sr.msg);
    } else {
        /* On a cluster a creation too is the log's (an empty change). */
        krappy_err e =
            kr_ops_topic_configure(c->k->srv, (const uint8_t *)name.ptr, (size_t)name.len, set, t,
                                   kpending_done, kp, why, whylen);
        if (e == KRAPPY_E_NOT_LEADER) {
            kp->pending--;
            return KR_KAFKA_ERR_NOT_CONTROLLER;
        }
        rc = e == KRAPPY_OK ? 0 : -1;
    }
    if (rc == 0)
        return 0;
    kp->pending--;
    return KR_KAFKA_ERR_KAFKA_STORAGE_ERROR;
}

/* ---- CreateTopics ---- */

/* The checks of one topic to create. @return the error code (why filled). */
static int16_t create_check(kr_kconn *c, const kr_kafka_create_topics_topic *q,
                            kr_topic_config *set, char *why, size_t whylen)
{
    kr_kafka_str name = q->name;
    if (name.len <= 0 || !kr_topic_name_valid((const uint8_t *)name.ptr, (size_t)name.len)) {
        snprintf(why, whylen, "topic names are 1 to 249 bytes of [A-Za-z0-9._-], not . or ..");
        return KR_KAFKA_ERR_INVALID_TOPIC_EXCEPTION;
    }
    if (kr_store_topic(c->k->srv->store, (const uint8_t *)name.ptr, (size_t)name.len) != NULL) {
        snprintf(why, whylen, "topic %.*s exists already", (int)name.len, name.ptr);
        return KR_KAFKA_ERR_TOPIC_ALREADY_EXISTS;
    }
    if (q->num_partitions != -1 && q->num_partitions != 1) {
        snprintf(why, whylen, "a krappy topic has one partition (%d were asked for)",
                 q->num_partitions);
        return KR_KAFKA_ERR_INVALID_PARTITIONS;
    }
    if (q->replication_factor != -1 && q->replication_factor != 1) {
        snprintf(why, whylen, "this krappy server keeps one replica (%d were asked for)",
                 q->replication_factor);
        return KR_KAFKA_ERR_INVALID_REPLICATION_FACTOR;
    }
    for (int32_t i = 0; i < q->assignments.n; i++) {
        const kr_kafka_create_topics_assignment *a = &q->assignments.v[i];
        if (a->partition_index != 0 || a->broker_ids.n != 1 ||
            a->broker_ids.v[0] != kr_kafka_node_id(c->k) || q->assignments.n != 1) {
            snprintf(why, whylen, "the one partition, 0, can only be on broker %d",
                     kr_kafka_node_id(c->k));
            return KR_KAFKA_ERR_INVALID_REPLICA_ASSIGNMENT;
        }
    }
    kconf all[N_TOPIC_CONF];
    size_t n = topic_conf(c->k->cfg, NULL, all);
    for (int32_t i = 0; i < q->configs.n; i++) {
        int16_t e =
            conf_check(all, n, q->configs.v[i].name, q->configs.v[i].value, set, why, whylen);
        if (e != 0)
            return e;
    }
    return 0;
}

kr_khresult kr_khandle_create_topics(kr_kconn *c, kr_kreq *r, const kr_kafka_request *req)
{
    const kr_kafka_create_topics_req *q = &req->u.create_topics;
    int32_t n = kr_kcount(q->topics.n);
    kr_kafka_create_topics_resp *resp = kr_kreq_array(r, 1, sizeof *resp);
    kr_kafka_create_topics_result *res = kr_kreq_array(r, n, sizeof *res);
    kpending *kp = res != NULL ? kpending_start(r, resp, "CreateTopics") : NULL;
    if (kp == NULL)
        return kr_kreq_nomem(r);
    resp->topics.v = res;
    resp->topics.n = n;
    char why[400];
    for (int32_t i = 0; i < n; i++) {
        const kr_kafka_create_topics_topic *t = &q->topics.v[i];
        res[i].name = (kr_kafka_str){kr_kreq_strdup(r, t->name.ptr, t->name.len), t->name.len};
        if (res[i].name.ptr == NULL)
            res[i].name = (kr_kafka_str){"", 0};
        res[i].error_message = (kr_kafka_str){NULL, -1};
        kr_topic_config set = {0};
        res[i].error_code = create_check(c, t, &set, why, sizeof why);
        if (res[i].error_code == 0 && !q->validate_only) {
            kr_topic *topic;
            res[i].error_code = kpending_configure(kp, c, t->name, &set, &topic, why, sizeof why);
            if (res[i].error_code == 0 && topic != NULL) /* NULL: the log makes it */
                kr_log(KR_LOG_INFO, "topic created by a Kafka client (CreateTopics)",
                       KR_LOG_STR("topic", topic->name));
        }
        if (res[i].error_code != 0)
            res[i].error_message = copy_str(r, why);
    }
    kpending_done(kp, NULL); /* the request's own count */
    return KR_KH_ASYNC;
}

/* ---- DeleteTopics ---- */

typedef struct kdelete {
    kr_kreq *r;
    kr_kafka_delete_topics_resp resp;
    uint32_t pending;
} kdelete;

/* One topic being deleted. */
typedef struct kdel_one {
    kdelete *kd;
    kr_kafka_delete_topics_result *res;
} kdel_one;

/* A deletion done (the topic gone from disk and view, durably) or failed:
 * DeleteTopics v0-v3 carry no message, so the log says why. */
static void topic_deleted(void *arg, const kr_store_result *sr)
{
    kdel_one *o = arg;
    kdelete *kd = o->kd;
    if (sr != NULL) {
        if (sr->err != KRAPPY_OK) {
            o->res->error_code = KR_KAFKA_ERR_KAFKA_STORAGE_ERROR;
            kr_log(KR_LOG_ERROR, "DeleteTopics failed", KR_LOG_STR("topic", o->res->name.ptr),
                   KR_LOG_STR("reason", sr->msg));
        } else {
            kr_log(KR_LOG_INFO, "topic deleted by a Kafka client (DeleteTopics)",
                   KR_LOG_STR("topic", o->res->name.ptr));
        }
    }
    if (--kd->pending == 0)
        kr_kreq_respond(kd->r, &kd->resp);
}

kr_khresult kr_khandle_delete_topics(kr_kconn *c, kr_kreq *r, const kr_kafka_request *req)
{
    const kr_kafka_delete_topics_req *q = &req->u.delete_topics;
    int32_t n = kr_kcount(q->topic_names.n);
    kdelete *kd = kr_kreq_array(r, 1, sizeof *kd);
    kr_kafka_delete_topics_result *res = kr_kreq_array(r, n, sizeof *res);
    kdel_one *ones = kr_kreq_array(r, n, sizeof *ones);
    if (kd == NULL || res == NULL || ones == NULL)
        return kr_kreq_nomem(r);
    kd->r = r;
    kd->resp.responses.v = res;
    kd->resp.responses.n = n;
    kd->pending = 1;
    kr_kreq_async(r);
    for (int32_t i = 0; i < n; i++) {
        kr_kafka_str name = q->topic_names.v[i];
        /* Copied, NUL-terminated for the log line: the request's bytes
         * go before the deletion is done. */
        const char *copy = kr_kreq_strdup(r, name.ptr, name.len);
        res[i].name = copy != NULL ? (kr_kafka_str){copy, name.len} : (kr_kafka_str){"", 0};
        int16_t err = 0;
        kr_topic *t = kr_kafka_topic_for(c->k, name, false, &err);
        if (t == NULL) {
            res[i].error_code = err;
            continue;
        }
        ones[i] = (kdel_one){kd, &res[i]};
        kd->pending++;
        krappy_err e =
            kr_ops_delete_topic(c->k->srv, t, topic_deleted, &ones[i], c->msg, sizeof c->msg);
        if (e != KRAPPY_OK) {
            kd->pending--;
            res[i].error_code = e == KRAPPY_E_NOT_LEADER ? KR_KAFKA_ERR_NOT_CONTROLLER
                                                         : KR_KAFKA_ERR_KAFKA_STORAGE_ERROR;
            kr_log(KR_LOG_ERROR, "DeleteTopics failed", KR_LOG_STR("topic", t->name),
                   KR_LOG_STR("reason", c->msg));
        }
    }
    topic_deleted(&(kdel_one){kd, NULL}, NULL); /* the request's own count */
    return KR_KH_ASYNC;
}

/* ---- DescribeConfigs ---- */

/* The settings of one resource, or its error. @return how many (0 with
 * *err and why on error); *all points into `conf`. */
static size_t resource_conf(kr_kconn *c, int8_t type, kr_kafka_str name, kconf *conf, int16_t *err,
                            char *why, size_t whylen)
{
    *err = 0;
    if (type == KR_KAFKA_RESOURCE_TOPIC) {
        kr_topic *t = kr_kafka_topic_for(c->k, name, false, err);
        if (t == NULL) {
            snprintf(why, whylen, "topic %.*s does not exist", name.len > 0 ? (int)name.len : 0,
                     name.len > 0 ? name.ptr : "");
            return 0;
        }
        return topic_conf(c->k->cfg, t, conf);
    }
    if (type == KR_KAFKA_RESOURCE_BROKER) {
        char id[16];
        int n = snprintf(id, sizeof id, "%d", kr_kafka_node_id(c->k));
        if (name.len > 0 && (name.len != n || memcmp(name.ptr, id, (size_t)n) != 0)) {
            *err = KR_KAFKA_ERR_INVALID_REQUEST;
            snprintf(why, whylen, "this broker is %s", id);
            return 0;
        }
        return broker_conf(c->k, conf);
    }
    *err = KR_KAFKA_ERR_INVALID_REQUEST;
    snprintf(why, whylen,
             "krappy describes topics (2) and its broker (4), not resources of type %d", type);
    return 0;
}

static bool wanted(const kr_kafka_describe_configs_resource *q, const char *name)
{
    if (q->configuration_keys.n < 0)
        return true;
    for (int32_t i = 0; i < q->configuration_keys.n; i++) {
        kr_kafka_str k = q->configuration_keys.v[i];
        if (k.len >= 0 && strlen(name) == (size_t)k.len && memcmp(name, k.ptr, (size_t)k.len) == 0)
            return true;
    }
    return false;
}

kr_khresult kr_khandle_describe_configs(kr_kconn *c, kr_kreq *r, const kr_kafka_request *req)
{
    const kr_kafka_describe_configs_req *q = &req->u.describe_configs;
    int32_t n = kr_kcount(q->resources.n);
    kr_kafka_describe_configs_result *res = kr_kreq_array(r, n, sizeof *res);
    if (res == NULL) {
        return kr_kreq_nomem(r);
    }
    char why[300];
    for (int32_t i = 0; i < n; i++) {
        const kr_kafka_describe_configs_resource *rq = &q->resources.v[i];
        kconf conf[N_BROKER_CONF];
        int16_t err;
        size_t nc =
            resource_conf(c, rq->resource_type, rq->resource_name, conf, &err, why, sizeof why);
        res[i].resource_type = rq->resource_type;
        res[i].resource_name = rq->resource_name;
        res[i].error_code = err;
        res[i].error_message = err != 0 ? copy_str(r, why) : (kr_kafka_str){NULL, -1};
        kr_kafka_describe_configs_entry *e = kr_kreq_array(r, (int32_t)nc, sizeof *e);
        if (e == NULL) {
            return kr_kreq_nomem(r);
        }
        int32_t k = 0;
        for (size_t j = 0; j < nc; j++) {
            if (!wanted(rq, conf[j].name))
                continue;
            e[k].name = kr_kafka_cstr(conf[j].name);
            e[k].value = copy_str(r, conf[j].value);
            e[k].read_only = conf[j].field < 0;
            e[k].is_default = conf[j].field >= 0 && !conf[j].own;
            e[k].config_source = conf[j].own ? CS_DYNAMIC_TOPIC : CS_STATIC_BROKER;
            e[k].is_sensitive = false;
            e[k].config_type = conf[j].type;
            e[k].documentation = (kr_kafka_str){NULL, -1};
            k++;
        }
        res[i].configs.v = e;
        res[i].configs.n = k;
    }
    kr_kafka_describe_configs_resp resp = {0};
    resp.results.v = res;
    resp.results.n = n;
    kr_kreq_respond(r, &resp);
    return KR_KH_DONE;
}

/* ---- AlterConfigs, IncrementalAlterConfigs ---- */

/* IncrementalAlterConfigs' operations (AlterConfigs only sets). */
enum { OP_SET = 0, OP_DELETE = 1, OP_APPEND = 2, OP_SUBTRACT = 3 };

/*
 * APPEND or SUBTRACT `value` (a list) to or from the list config c, a
 * krappy topic setting when set is not NULL. Only cleanup.policy is both:
 * its current value is set's when the request set it already, else the
 * topic's (c->value). @return 0, or the error code with why filled.
 */
static int16_t alter_list(const kconf *c, int8_t op, kr_kafka_str value, kr_topic_config *set,
                          char *why, size_t whylen)
{
    const char *verb = op == OP_APPEND ? "append" : "subtract";
    if (c->type != CT_LIST) {
        snprintf(why, whylen,
                 "config value %s is not allowed for config key %s: it is no list (SET it)", verb,
                 c->name);
        return KR_KAFKA_ERR_INVALID_REQUEST;
    }
    if (set == NULL || c->field != KR_TC_CLEANUP) {
        snprintf(why, whylen, "%s is %s for every topic on this server%s%s%s: it cannot be changed",
                 c->name, c->value, c->flag ? " (krappyd " : "", c->flag ? c->flag : "",
                 c->flag ? ")" : "");
        return KR_KAFKA_ERR_INVALID_CONFIG;
    }
    uint64_t cur = 0, bits = 0, bit = 1u << KR_TC_CLEANUP;
    if ((set->mask & bit) != 0)
        cur = set->v[KR_TC_CLEANUP];
    else if (kr_cleanup_parse(c->value, strlen(c->value), &cur) < 0)
        cur = KR_CLEANUP_DELETE;
    if (value.len <= 0 || kr_cleanup_parse(value.ptr, (size_t)value.len, &bits) < 0) {
        snprintf(why, whylen, "cleanup.policy: cannot %s %.*s: the policies are delete and compact",
                 verb, value.len > 0 ? (value.len > 60 ? 60 : (int)value.len) : 0,
                 value.len > 0 ? value.ptr : "");
        return KR_KAFKA_ERR_INVALID_CONFIG;
    }
    uint64_t v = op == OP_APPEND ? cur | bits : cur & ~bits;
    if (v == 0) {
        snprintf(why, whylen,
                 "cleanup.policy cannot be left empty: krappy's cleanup must be "
                 "delete, compact or compact,delete (SET it, or DELETE it for the "
                 "server's default)");
        return KR_KAFKA_ERR_INVALID_CONFIG;
    }
    set->v[KR_TC_CLEANUP] = v;
    set->mask |= bit;
    set->reset &= ~bit;
    return 0;
}

/*
 * One config of an AlterConfigs (SET) or IncrementalAlterConfigs request,
 * for a resource whose configs are all[0..n) (set: a topic's change, NULL
 * for the broker): checked, and added to set. DELETE resets a krappy topic
 * setting to the server's default; any other config is at the server's
 * value already. @return 0, or the error code with why filled.
 */
static int16_t alter_entry(const kconf *all, size_t n, const kr_kafka_alter_configs_entry *e,
                           bool incremental, kr_topic_config *set, char *why, size_t whylen)
{
    int8_t op = incremental ? e->config_operation : OP_SET;
    const kconf *c = conf_find(all, n, e->name);
    if (op == OP_SET || c == NULL) /* an unknown config: refused there */
        return conf_check(all, n, e->name, e->value, set, why, whylen);
    if (op == OP_DELETE) {
        if (set != NULL && c->field >= 0) {
            set->mask &= ~(1u << c->field);
            set->reset |= 1u << c->field;
        }
        return 0;
    }
    if (op == OP_APPEND || op == OP_SUBTRACT)
        return alter_list(c, op, e->value, set, why, whylen);
    snprintf(why, whylen,
             "%s: operation %d is none of SET (0), DELETE (1), APPEND (2) and SUBTRACT (3)",
             c->name, op);
    return KR_KAFKA_ERR_INVALID_REQUEST;
}

kr_khresult kr_khandle_alter_configs(kr_kconn *c, kr_kreq *r, const kr_kafka_request *req)
{
    const kr_kafka_alter_configs_req *q = &req->u.alter_configs;
    bool incremental = r->api_key == KR_KAFKA_INCREMENTAL_ALTER_CONFIGS;
    int32_t n = kr_kcount(q->resources.n);
    kr_kafka_alter_configs_resp *resp = kr_kreq_array(r, 1, sizeof *resp);
    kr_kafka_alter_configs_result *res = kr_kreq_array(r, n, sizeof *res);
    kpending *kp = res != NULL ? kpending_start(r, resp, "AlterConfigs") : NULL;
    if (kp == NULL)
        return kr_kreq_nomem(r);
    resp->responses.v = res;
    resp->responses.n = n;
    char why[400];
    for (int32_t i = 0; i < n; i++) {
        const kr_kafka_alter_configs_resource *rq = &q->resources.v[i];
        kconf conf[N_BROKER_CONF];
        int16_t err;
        size_t nc =
            resource_conf(c, rq->resource_type, rq->resource_name, conf, &err, why, sizeof why);
        bool topic = rq->resource_type == KR_KAFKA_RESOURCE_TOPIC;
        kr_topic_config set = {0};
        for (int32_t j = 0; err == 0 && j < rq->configs.n; j++)
            err = alter_entry(conf, nc, &rq->configs.v[j], incremental, topic ? &set : NULL, why,
                              sizeof why);
        res[i].resource_type = rq->resource_type;
        /* Copied: the answer may go after the request's bytes are gone. */
        const char *name = kr_kreq_strdup(r, rq->resource_name.ptr, rq->resource_name.len);
        res[i].resource_name =
            name != NULL ? (kr_kafka_str){name, rq->resource_name.len} : (kr_kafka_str){"", 0};
        if (err == 0 && (set.mask | set.reset) != 0 && !q->validate_only) {
            kr_topic *t;
            err = kpending_configure(kp, c, rq->resource_name, &set, &t, why, sizeof why);
        }
        res[i].error_code = err;
        res[i].error_message = err != 0 ? copy_str(r, why) : (kr_kafka_str){NULL, -1};
    }
    kpending_done(kp, NULL); /* the request's own count */
    return KR_KH_ASYNC;
}
