/*
 * server/kafka_topics.c - Kafka's administration of topics and configs:
 * CreateTopics, DeleteTopics, DescribeConfigs, AlterConfigs and
 * IncrementalAlterConfigs, answered with what this server really does.
 *
 * Settings are the server's, the same for every topic (its flags); per-topic
 * settings are not there yet. So DescribeConfigs reports the flags' values
 * (read-only, source "static broker config"), and CreateTopics and the
 * Alter APIs accept a setting only when it asks for the value the server
 * already has - anything else is INVALID_CONFIG with a sentence naming the
 * setting, its value here and the flag. A krappy topic has one partition and
 * one replica. DeleteTopics is the store's DELETE_TOPIC (kr_ops_delete_topic:
 * Kafka producers and prefetches let go of the topic too), answered once
 * each topic is gone durably.
 */
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "server/kafka.h"
#include "server/kafka_groups.h"
#include "util/log.h"

/* Kafka's config types (DescribeConfigs v3). */
enum { CT_BOOLEAN = 1, CT_STRING = 2, CT_INT = 3, CT_LONG = 5, CT_LIST = 7 };
/* Kafka's config source: set by the broker's static configuration. */
#define CS_STATIC_BROKER 4

typedef struct kconf {
    const char *name;
    char value[KR_HOSTPORT_MAX + 32];
    int8_t type;
    const char *flag; /* the krappyd flag that sets it, or NULL */
} kconf;

#define N_TOPIC_CONF  8
#define N_BROKER_CONF 16

static void set(kconf *c, const char *name, int8_t type, const char *flag, const char *fmt, ...)
    __attribute__((format(printf, 5, 6)));

static void set(kconf *c, const char *name, int8_t type, const char *flag, const char *fmt, ...)
{
    va_list ap;
    c->name = name;
    c->type = type;
    c->flag = flag;
    va_start(ap, fmt);
    vsnprintf(c->value, sizeof c->value, fmt, ap);
    va_end(ap);
}

/* A size or duration flag as Kafka says it: 0 (keep all) is -1. */
static int64_t unlimited(uint64_t v)
{
    return v == 0 ? -1 : (int64_t)v;
}

/* Every topic's settings, which are the server's. @return how many. */
static size_t topic_conf(const kr_config *cfg, kconf out[N_TOPIC_CONF])
{
    size_t n = 0;
    set(&out[n++], "cleanup.policy", CT_LIST, NULL, "delete");
    set(&out[n++], "retention.ms", CT_LONG, "--retention-ms", "%" PRId64,
        unlimited(cfg->retention_ms));
    set(&out[n++], "retention.bytes", CT_LONG, "--retention-bytes", "%" PRId64,
        unlimited(cfg->retention_bytes));
    set(&out[n++], "segment.bytes", CT_INT, "--segment-bytes", "%" PRIu64, cfg->segment_bytes);
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
    set(&out[n++], "broker.id", CT_INT, NULL, "%d", KR_KAFKA_NODE_ID);
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
    set(&out[n++], "log.cleanup.policy", CT_LIST, NULL, "delete");
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
 * May a setting be asked for? Only its current value (or null: the
 * default) is. @return 0, or INVALID_CONFIG with why filled.
 */
static int16_t conf_check(const kconf *all, size_t n, kr_kafka_str name, kr_kafka_str value,
                          char *why, size_t whylen)
{
    const kconf *c = conf_find(all, n, name);
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
                 "%s is %s for every topic on this server%s%s%s; per-topic settings are not "
                 "supported yet, so %.*s cannot be set",
                 c->name, c->value, c->flag ? " (krappyd " : "", c->flag ? c->flag : "",
                 c->flag ? ")" : "", value.len > 200 ? 200 : (int)value.len, value.ptr) < 0)
        why[0] = '\0';
    return KR_KAFKA_ERR_INVALID_CONFIG;
}

static kr_kafka_str copy_str(kr_kreq *r, const char *s)
{
    size_t n = strlen(s);
    const char *d = kr_kreq_strdup(r, s, (int32_t)n);
    return d != NULL ? (kr_kafka_str){d, (int32_t)n} : (kr_kafka_str){"", 0};
}

/* ---- CreateTopics ---- */

typedef struct kcreate {
    kr_kreq *r;
    kr_kafka_create_topics_resp resp;
    uint32_t pending;
} kcreate;

/* The checks of one topic to create. @return the error code (why filled). */
static int16_t create_check(kr_kconn *c, const kr_kafka_create_topics_topic *q, char *why,
                            size_t whylen)
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
            a->broker_ids.v[0] != KR_KAFKA_NODE_ID || q->assignments.n != 1) {
            snprintf(why, whylen, "the one partition, 0, can only be on broker %d",
                     KR_KAFKA_NODE_ID);
            return KR_KAFKA_ERR_INVALID_REPLICA_ASSIGNMENT;
        }
    }
    kconf all[N_TOPIC_CONF];
    size_t n = topic_conf(c->k->cfg, all);
    for (int32_t i = 0; i < q->configs.n; i++) {
        int16_t e = conf_check(all, n, q->configs.v[i].name, q->configs.v[i].value, why, whylen);
        if (e != 0)
            return e;
    }
    return 0;
}

static void created(void *arg, const kr_store_result *res)
{
    kcreate *kc = arg;
    (void)res; /* a failed creation is logged by the store; clients see
                  the topic missing from Metadata */
    if (--kc->pending == 0)
        kr_kreq_respond(kc->r, &kc->resp);
}

kr_khresult kr_khandle_create_topics(kr_kconn *c, kr_kreq *r, const kr_kafka_request *req)
{
    const kr_kafka_create_topics_req *q = &req->u.create_topics;
    int32_t n = kr_kcount(q->topics.n);
    kcreate *kc = kr_kreq_array(r, 1, sizeof *kc);
    kr_kafka_create_topics_result *res = kr_kreq_array(r, n, sizeof *res);
    if (kc == NULL || res == NULL) {
        return kr_kreq_nomem(r);
    }
    kc->r = r;
    kc->resp.topics.v = res;
    kc->resp.topics.n = n;
    kc->pending = 1;
    kr_kreq_async(r);
    char why[400];
    for (int32_t i = 0; i < n; i++) {
        const kr_kafka_create_topics_topic *t = &q->topics.v[i];
        res[i].name = (kr_kafka_str){kr_kreq_strdup(r, t->name.ptr, t->name.len), t->name.len};
        if (res[i].name.ptr == NULL)
            res[i].name = (kr_kafka_str){"", 0};
        res[i].error_message = (kr_kafka_str){NULL, -1};
        res[i].error_code = create_check(c, t, why, sizeof why);
        if (res[i].error_code != 0) {
            res[i].error_message = copy_str(r, why);
            continue;
        }
        if (q->validate_only)
            continue;
        kr_topic *topic;
        kr_store_result sr;
        if (kr_store_register(c->k->srv->store, (const uint8_t *)t->name.ptr, (size_t)t->name.len,
                              &topic, created, kc, &sr) < 0) {
            res[i].error_code = KR_KAFKA_ERR_KAFKA_STORAGE_ERROR;
            res[i].error_message = copy_str(r, sr.msg);
            continue;
        }
        kc->pending++;
        kr_log(KR_LOG_INFO, "topic created by a Kafka client (CreateTopics)",
               KR_LOG_STR("topic", topic->name));
    }
    created(kc, NULL); /* the request's own count */
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
        if (kr_ops_delete_topic(c->k->srv, t, topic_deleted, &ones[i], c->msg, sizeof c->msg) !=
            KRAPPY_OK) {
            kd->pending--;
            res[i].error_code = KR_KAFKA_ERR_KAFKA_STORAGE_ERROR;
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
        if (kr_kafka_topic_for(c->k, name, false, err) == NULL) {
            snprintf(why, whylen, "topic %.*s does not exist", name.len > 0 ? (int)name.len : 0,
                     name.len > 0 ? name.ptr : "");
            return 0;
        }
        return topic_conf(c->k->cfg, conf);
    }
    if (type == KR_KAFKA_RESOURCE_BROKER) {
        char id[16];
        int n = snprintf(id, sizeof id, "%d", KR_KAFKA_NODE_ID);
        if (name.len > 0 && (name.len != n || memcmp(name.ptr, id, (size_t)n) != 0)) {
            *err = KR_KAFKA_ERR_INVALID_REQUEST;
            snprintf(why, whylen, "this cluster has one broker, %s", id);
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
            e[k].read_only = true;
            e[k].is_default = false;
            e[k].config_source = CS_STATIC_BROKER;
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

kr_khresult kr_khandle_alter_configs(kr_kconn *c, kr_kreq *r, const kr_kafka_request *req)
{
    const kr_kafka_alter_configs_req *q = &req->u.alter_configs;
    bool incremental = r->api_key == KR_KAFKA_INCREMENTAL_ALTER_CONFIGS;
    int32_t n = kr_kcount(q->resources.n);
    kr_kafka_alter_configs_result *res = kr_kreq_array(r, n, sizeof *res);
    if (res == NULL) {
        return kr_kreq_nomem(r);
    }
    char why[400];
    for (int32_t i = 0; i < n; i++) {
        const kr_kafka_alter_configs_resource *rq = &q->resources.v[i];
        kconf conf[N_BROKER_CONF];
        int16_t err;
        size_t nc =
            resource_conf(c, rq->resource_type, rq->resource_name, conf, &err, why, sizeof why);
        for (int32_t j = 0; err == 0 && j < rq->configs.n; j++) {
            const kr_kafka_alter_configs_entry *e = &rq->configs.v[j];
            if (incremental && e->config_operation != 0) {
                snprintf(why, sizeof why,
                         "%.*s: only SET of the value the server has is accepted (per-topic "
                         "settings are not supported yet)",
                         e->name.len > 0 ? (int)e->name.len : 0,
                         e->name.len > 0 ? e->name.ptr : "");
                err = KR_KAFKA_ERR_INVALID_CONFIG;
                break;
            }
            err = conf_check(conf, nc, e->name, e->value, why, sizeof why);
        }
        res[i].resource_type = rq->resource_type;
        res[i].resource_name = rq->resource_name;
        res[i].error_code = err;
        res[i].error_message = err != 0 ? copy_str(r, why) : (kr_kafka_str){NULL, -1};
    }
    kr_kafka_alter_configs_resp resp = {0};
    resp.responses.v = res;
    resp.responses.n = n;
    kr_kreq_respond(r, &resp);
    return KR_KH_DONE;
}
