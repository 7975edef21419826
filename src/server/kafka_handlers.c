/*
 * server/kafka_handlers.c - the Kafka APIs that need no file of their own
 * (ApiVersions, Metadata, ListOffsets, FindCoordinator, InitProducerId,
 * SaslHandshake, SaslAuthenticate) and the table of every handler.
 *
 * A handler runs on the loop after its request decoded; it answers with
 * kr_kreq_respond (or silently, or by closing) before returning KR_KH_DONE,
 * or later after kr_kreq_async. Strings of the request point into its
 * frame, which is gone once the handler returns: a response built later
 * copies them into the request's arena first.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cluster/cmd.h"
#include "server/kafka.h"
#include "util/log.h"
#include "util/secret.h"

int kr_kafka_api_index(int16_t key)
{
    for (int i = 0; i < KR_KAFKA_NAPIS; i++)
        if (kr_kafka_apis[i].key == key)
            return i;
    return -1;
}

int16_t kr_kafka_err_from(krappy_err e)
{
    switch (e) {
    case KRAPPY_OK:
        return KR_KAFKA_ERR_NONE;
    case KRAPPY_E_NO_SUCH_TOPIC:
        return KR_KAFKA_ERR_UNKNOWN_TOPIC_OR_PARTITION;
    case KRAPPY_E_OFFSET_OUT_OF_RANGE:
        return KR_KAFKA_ERR_OFFSET_OUT_OF_RANGE;
    case KRAPPY_E_INVALID_ARGUMENT:
        return KR_KAFKA_ERR_INVALID_RECORD;
    case KRAPPY_E_STORAGE:
        return KR_KAFKA_ERR_KAFKA_STORAGE_ERROR;
    default:
        return KR_KAFKA_ERR_UNKNOWN_SERVER_ERROR;
    }
}

/*
 * On a cluster a topic a Kafka client makes is the log's TOPIC_CREATE, on
 * the leader: creating it on the node asked alone would leave the other
 * nodes without it. A follower cannot (to_be_made says what it answers);
 * the leader's Produce of a missing topic sends the TOPIC_CREATE and
 * answers LEADER_NOT_AVAILABLE, as Kafka's brokers do while a topic is
 * being made: the client asks again.
 * @return KRAPPY_OK (done follows, once the topic is made here), else
 *         NOT_LEADER, BUSY, STORAGE.
 */
static krappy_err cluster_create(kr_kafka *k, kr_kafka_str name, kr_store_done done, void *arg)
{
    kr_server *srv = k->srv;
    kr_str topic = {(const uint8_t *)name.ptr, (size_t)name.len};
    char msg[256];
    kr_buf_reset(&srv->cmd);
    kr_cmd_put_topic(&srv->cmd, KR_CMD_TOPIC_CREATE, &topic);
    char tname[256]; /* a valid name is shorter */
    snprintf(tname, sizeof tname, "%.*s", (int)name.len, name.ptr);
    krappy_err e = kr_server_cluster_command(srv, done, arg, msg, sizeof msg);
    if (e == KRAPPY_OK)
        kr_log(KR_LOG_INFO, "topic creation for a Kafka client sent to the cluster's log",
               KR_LOG_STR("topic", tname));
    return e;
}

/* A TOPIC_CREATE a Produce sent: its producer retries on its own. */
static void created_quietly(void *arg, const kr_store_result *res)
{
    (void)arg;
    if (res->err != KRAPPY_OK)
        kr_log(KR_LOG_WARN, "the cluster did not make a topic a Kafka producer asked for",
               KR_LOG_STR("reason", res->msg));
}

kr_topic *kr_kafka_topic_for(kr_kafka *k, kr_kafka_str name, bool create, int16_t *err)
{
    if (name.len <= 0 || !kr_topic_name_valid((const uint8_t *)name.ptr, (size_t)name.len)) {
        *err = KR_KAFKA_ERR_INVALID_TOPIC_EXCEPTION;
        return NULL;
    }
    kr_store *s = k->srv->store;
    kr_topic *t = kr_store_topic(s, (const uint8_t *)name.ptr, (size_t)name.len);
    if (t != NULL)
        return t;
    if (!create || !k->cfg->kafka_auto_create) {
        *err = KR_KAFKA_ERR_UNKNOWN_TOPIC_OR_PARTITION;
        return NULL;
    }
    if (k->srv->cluster != NULL) {
        (void)cluster_create(k, name, created_quietly, NULL);
        *err = KR_KAFKA_ERR_LEADER_NOT_AVAILABLE;
        return NULL;
    }
    kr_store_result res;
    if (kr_store_register(s, (const uint8_t *)name.ptr, (size_t)name.len, &t, NULL, NULL, &res) <
        0) {
        *err = KR_KAFKA_ERR_KAFKA_STORAGE_ERROR;
        return NULL;
    }
    kr_log(KR_LOG_INFO, "topic created for a Kafka client", KR_LOG_STR("topic", t->name));
    return t;
}

/* ---- ApiVersions ---- */

static kr_khresult api_versions(kr_kconn *c, kr_kreq *r, const kr_kafka_request *req)
{
    (void)c;
    (void)req;
    kr_kafka_api_versions_resp resp;
    kr_kafka_api_version table[KR_KAFKA_NAPIS];
    kr_kafka_api_versions_fill(&resp, KR_KAFKA_ERR_NONE, table);
    kr_kreq_respond(r, &resp);
    return KR_KH_DONE;
}

/* ---- Metadata ---- */

/* A Metadata request waiting for the topics it creates. */
typedef struct meta_wait {
    kr_kreq *r;
    kr_kafka_str *names; /* copies */
    int32_t n;
    uint32_t pending;
    bool failed;
    bool creating; /* on a cluster: a topic still missing is being made */
} meta_wait;

/* A topic of Metadata; its partition is on broker *broker (its one
 * replica; *broker outlives the response), which leads it and is in sync -
 * or, when `led` is false (a cluster electing), has no leader:
 * LEADER_NOT_AVAILABLE, leader -1, as Kafka's brokers answer meanwhile. */
static void fill_topic(kr_kafka_metadata_topic *mt, kr_kafka_metadata_partition *part,
                       kr_kafka_str name, int16_t err, const int32_t *broker, bool led)
{
    memset(mt, 0, sizeof *mt);
    mt->error_code = err;
    mt->name = name;
    mt->topic_authorized_operations = INT32_MIN;
    if (err != 0)
        return;
    memset(part, 0, sizeof *part);
    part->error_code = led ? KR_KAFKA_ERR_NONE : KR_KAFKA_ERR_LEADER_NOT_AVAILABLE;
    part->partition_index = 0;
    part->leader_id = led ? *broker : -1;
    part->leader_epoch = 0;
    part->replica_nodes.v = broker;
    part->replica_nodes.n = 1;
    part->isr_nodes.v = broker;
    part->isr_nodes.n = led ? 1 : 0;
    part->offline_replicas.v = NULL;
    part->offline_replicas.n = 0;
    mt->partitions.v = part;
    mt->partitions.n = 1;
}

int32_t kr_kafka_node_id(const kr_kafka *k)
{
    return k->srv->cluster != NULL ? (int32_t)k->srv->cfg->node_id : KR_KAFKA_NODE_ID;
}

/* The one broker a client is told of: this node, or in a cluster the
 * leader (PROTOCOL.md section 8), by its node id: clients produce and
 * commit offsets there, and ask again after NOT_LEADER_OR_FOLLOWER or
 * NOT_COORDINATOR. A new leader is another broker to them (librdkafka
 * follows a coordinator that changes its id, not one that moves). A
 * cluster with no leader known (an election) names this node, with *led
 * false. @return its broker id. */
static int32_t the_broker(kr_kconn *c, kr_kreq *r, kr_kafka_str *host, int32_t *port, bool *led)
{
    kr_kafka *k = c->k;
    kr_hostport lead = {0};
    char addr[KR_HOSTPORT_MAX + 1];
    uint64_t id = 0;
    *host = kr_kafka_cstr(k->host);
    *port = k->adv_port;
    *led = k->srv->cluster == NULL;
    if (k->srv->cluster != NULL &&
        kr_cluster_leader_kafka_addr(k->srv->cluster, addr, sizeof addr, &id)) {
        *led = true;
        if (kr_hostport_parse(addr, 0, &lead, NULL, 0) == 0) {
            const char *h = kr_kreq_strdup(r, lead.host, (int32_t)strlen(lead.host));
            if (h != NULL) {
                *host = kr_kafka_cstr(h);
                *port = atoi(lead.port);
                return (int32_t)id;
            }
        }
    }
    return kr_kafka_node_id(k);
}

/*
 * The answer for a topic a cluster's Metadata asked to make that is not
 * there: on the leader, LEADER_NOT_AVAILABLE (its TOPIC_CREATE failed; the
 * client asks again). A follower cannot make it, and a client that only
 * talks to it (librdkafka connects to the brokers its partitions need, no
 * more) would ask it again forever: it names the partition as the
 * leader's, so the client goes there, and the leader's Produce or Metadata
 * makes the topic through the log. No leader known: LEADER_NOT_AVAILABLE.
 */
static int16_t to_be_made(kr_kafka *k)
{
    char addr[KR_HOSTPORT_MAX + 1];
    if (kr_cluster_is_leader(k->srv->cluster) ||
        !kr_cluster_leader_kafka_addr(k->srv->cluster, addr, sizeof addr, NULL))
        return KR_KAFKA_ERR_LEADER_NOT_AVAILABLE;
    return KR_KAFKA_ERR_NONE;
}

/* Answer a Metadata request for `names` (n -1: every topic); `creating`:
 * a cluster's missing topics are to be made (to_be_made). */
static void metadata_respond(kr_kconn *c, kr_kreq *r, const kr_kafka_str *names, int32_t n,
                             bool creating)
{
    kr_kafka *k = c->k;
    kr_topic **all = NULL;
    size_t n_all = 0;
    if (n < 0) {
        n_all = kr_store_topics(k->srv->store, &all);
        n = 0;
        for (size_t i = 0; i < n_all; i++)
            n += all[i]->ready && !all[i]->failed;
    }
    kr_kafka_metadata_topic *topics = kr_kreq_array(r, n, sizeof *topics);
    kr_kafka_metadata_partition *parts = kr_kreq_array(r, n, sizeof *parts);
    kr_kafka_metadata_broker *broker = kr_kreq_array(r, 1, sizeof *broker);
    int32_t *leader = kr_kreq_array(r, 1, sizeof *leader);
    if (topics == NULL || parts == NULL || broker == NULL || leader == NULL) {
        kr_kreq_nomem(r);
        return;
    }
    bool led;
    *leader = the_broker(c, r, &broker->host, &broker->port, &led);
    int32_t i = 0;
    if (all != NULL) {
        for (size_t x = 0; x < n_all; x++) {
            kr_topic *t = all[x];
            if (!t->ready || t->failed)
                continue;
            kr_kafka_str name = {kr_kreq_strdup(r, t->name, (int32_t)t->name_len),
                                 (int32_t)t->name_len};
            if (name.ptr == NULL) {
                kr_kreq_nomem(r);
                return;
            }
            fill_topic(&topics[i], &parts[i], name, 0, leader, led);
            i++;
        }
    } else {
        for (; i < n; i++) {
            int16_t err = 0;
            kr_topic *t = kr_kafka_topic_for(k, names[i], false, &err);
            if (t != NULL && t->failed)
                err = KR_KAFKA_ERR_KAFKA_STORAGE_ERROR;
            else if (t == NULL && creating && err == KR_KAFKA_ERR_UNKNOWN_TOPIC_OR_PARTITION)
                err = to_be_made(k);
            fill_topic(&topics[i], &parts[i], names[i], err, leader, led);
        }
    }
    broker->node_id = *leader;
    broker->rack = (kr_kafka_str){NULL, -1};
    kr_kafka_metadata_resp resp = {0};
    resp.brokers.v = broker;
    resp.brokers.n = 1;
    resp.cluster_id = (kr_kafka_str){NULL, -1};
    resp.controller_id = led ? *leader : -1;
    resp.topics.v = topics;
    resp.topics.n = n;
    resp.cluster_authorized_operations = INT32_MIN;
    kr_kreq_respond(r, &resp);
}

static void meta_created(void *arg, const kr_store_result *res)
{
    meta_wait *mw = arg;
    (void)res; /* a failed topic is answered from t->failed */
    if (--mw->pending > 0)
        return;
    kr_kreq *r = mw->r;
    metadata_respond(r->conn, r, mw->names, mw->n, mw->creating);
}

static kr_khresult metadata(kr_kconn *c, kr_kreq *r, const kr_kafka_request *req)
{
    const kr_kafka_metadata_req *q = &req->u.metadata;
    kr_kafka *k = c->k;
    /* v0: an empty list is every topic; v1+: null is. */
    if (q->topics.n < 0 || (r->api_version == 0 && q->topics.n == 0)) {
        metadata_respond(c, r, NULL, -1, false);
        return KR_KH_DONE;
    }
    meta_wait *mw = kr_kreq_array(r, 1, sizeof *mw);
    kr_kafka_str *names = kr_kreq_array(r, q->topics.n, sizeof *names);
    if (mw == NULL || names == NULL)
        return kr_kreq_nomem(r);
    bool create = q->allow_auto_topic_creation && k->cfg->kafka_auto_create;
    *mw = (meta_wait){.r = r,
                      .names = names,
                      .n = q->topics.n,
                      .pending = 1,
                      .creating = create && k->srv->cluster != NULL};
    kr_store *s = k->srv->store;
    kr_kreq_async(r);
    for (int32_t i = 0; i < q->topics.n; i++) {
        kr_kafka_str n = q->topics.v[i];
        names[i] = (kr_kafka_str){kr_kreq_strdup(r, n.ptr, n.len), n.len};
        if (names[i].ptr == NULL && n.len >= 0) {
            names[i].len = 0;
            names[i].ptr = "";
        }
        if (!create || n.len <= 0 || !kr_topic_name_valid((const uint8_t *)n.ptr, (size_t)n.len) ||
            kr_store_topic(s, (const uint8_t *)n.ptr, (size_t)n.len) != NULL)
            continue;
        /* Created first, answered once it is there (Kafka answers
         * LEADER_NOT_AVAILABLE meanwhile; waiting saves the retry). On a
         * cluster the leader waits for the log; a follower makes nothing
         * (to_be_made). */
        kr_topic *t;
        kr_store_result res;
        if (k->srv->cluster != NULL) {
            if (cluster_create(k, n, meta_created, mw) == KRAPPY_OK)
                mw->pending++;
        } else if (kr_store_register(s, (const uint8_t *)n.ptr, (size_t)n.len, &t, meta_created, mw,
                                     &res) == 0) {
            mw->pending++;
            kr_log(KR_LOG_INFO, "topic created for a Kafka client", KR_LOG_STR("topic", t->name));
        }
    }
    meta_created(mw, NULL); /* the request's own count */
    return KR_KH_ASYNC;
}

/* ---- ListOffsets ---- */

static void list_offset(kr_kconn *c, kr_kreq *r, kr_topic *t,
                        const kr_kafka_list_offsets_req_partition *q,
                        kr_kafka_list_offsets_resp_partition *p)
{
    p->timestamp = -1;
    p->offset = -1;
    p->leader_epoch = 0;
    uint64_t off = 0, ts = 0;
    if (q->timestamp == KR_KAFKA_EARLIEST_TIMESTAMP) {
        off = t->first;
    } else if (q->timestamp == KR_KAFKA_LATEST_TIMESTAMP) {
        off = t->next;
    } else if (q->timestamp < 0) {
        p->error_code = KR_KAFKA_ERR_INVALID_REQUEST;
        return;
    } else {
        if (kr_store_offset_for_time(c->k->srv->store, t, (uint64_t)q->timestamp, &off, &ts, c->msg,
                                     sizeof c->msg) != KRAPPY_OK) {
            kr_kconn_log(KR_LOG_ERROR, c, "ListOffsets by time failed", c->msg);
            p->error_code = KR_KAFKA_ERR_KAFKA_STORAGE_ERROR;
            return;
        }
        if (off >= t->next) {
            /* No record that recent: -1, as Kafka answers. */
            return;
        }
        p->timestamp = (int64_t)ts;
    }
    p->offset = (int64_t)off;
    if (r->api_version == 0) {
        int64_t *one = kr_kreq_array(r, 1, sizeof *one);
        if (one == NULL) {
            p->error_code = KR_KAFKA_ERR_UNKNOWN_SERVER_ERROR;
            return;
        }
        *one = (int64_t)off;
        p->old_style_offsets.v = one;
        p->old_style_offsets.n = 1;
    }
}

static kr_khresult list_offsets(kr_kconn *c, kr_kreq *r, const kr_kafka_request *req)
{
    const kr_kafka_list_offsets_req *q = &req->u.list_offsets;
    int32_t nt = kr_kcount(q->topics.n);
    kr_kafka_list_offsets_resp_topic *topics = kr_kreq_array(r, nt, sizeof *topics);
    if (topics == NULL)
        return kr_kreq_nomem(r);
    for (int32_t i = 0; i < nt; i++) {
        const kr_kafka_list_offsets_req_topic *qt = &q->topics.v[i];
        int32_t np = kr_kcount(qt->partitions.n);
        kr_kafka_list_offsets_resp_partition *parts = kr_kreq_array(r, np, sizeof *parts);
        if (parts == NULL)
            return kr_kreq_nomem(r);
        topics[i].name = qt->name;
        topics[i].partitions.v = parts;
        topics[i].partitions.n = np;
        int16_t err = 0;
        kr_topic *t = kr_kafka_topic_for(c->k, qt->name, false, &err);
        for (int32_t j = 0; j < np; j++) {
            const kr_kafka_list_offsets_req_partition *qp = &qt->partitions.v[j];
            kr_kafka_list_offsets_resp_partition *p = &parts[j];
            p->partition_index = qp->partition_index;
            p->timestamp = p->offset = -1;
            p->leader_epoch = -1;
            if (t == NULL)
                p->error_code = err;
            else if (qp->partition_index != 0)
                p->error_code = KR_KAFKA_ERR_UNKNOWN_TOPIC_OR_PARTITION;
            else
                list_offset(c, r, t, qp, p);
        }
    }
    kr_kafka_list_offsets_resp resp = {0};
    resp.topics.v = topics;
    resp.topics.n = nt;
    kr_kreq_respond(r, &resp);
    return KR_KH_DONE;
}

/* ---- FindCoordinator, InitProducerId ---- */

static kr_khresult find_coordinator(kr_kconn *c, kr_kreq *r, const kr_kafka_request *req)
{
    kr_kafka_find_coordinator_resp resp = {0};
    resp.error_message = (kr_kafka_str){NULL, -1};
    bool led;
    resp.node_id = the_broker(c, r, &resp.host, &resp.port, &led);
    if (req->u.find_coordinator.key_type != 0) {
        /* Transaction coordinators: krappy has no transactions. */
        resp.error_code = KR_KAFKA_ERR_COORDINATOR_NOT_AVAILABLE;
        resp.error_message = kr_kafka_cstr("krappy has no transactions: produce without "
                                           "transactional.id");
    } else if (!led) {
        /* The coordinator is the leader: none known (an election). */
        resp.error_code = KR_KAFKA_ERR_COORDINATOR_NOT_AVAILABLE;
        resp.error_message = kr_kafka_cstr("the cluster has no leader yet: ask again");
    }
    if (resp.error_code != 0) {
        resp.node_id = -1;
        resp.host = kr_kafka_cstr("");
        resp.port = -1;
    }
    kr_kreq_respond(r, &resp);
    return KR_KH_DONE;
}

static kr_khresult init_producer_id(kr_kconn *c, kr_kreq *r, const kr_kafka_request *req)
{
    kr_kafka_init_producer_id_resp resp = {0};
    if (req->u.init_producer_id.transactional_id.len >= 0) {
        kr_kconn_log(KR_LOG_INFO, c, "InitProducerId refused",
                     "a transactional.id was given: krappy has no transactions");
        resp.error_code = KR_KAFKA_ERR_TRANSACTIONAL_ID_AUTHORIZATION_FAILED;
        resp.producer_id = -1;
        resp.producer_epoch = -1;
    } else {
        /* The node id in the low byte: on a cluster, an id one node hands
         * out is never another's, so a producer that moves to a new leader
         * keeps a sequence state of its own. */
        uint64_t node = c->k->srv->cfg->node_id & 0xff;
        resp.producer_id = (int64_t)(((c->k->producer_ids++ << 8) | node) & INT64_MAX);
        resp.producer_epoch = 0;
    }
    kr_kreq_respond(r, &resp);
    return KR_KH_DONE;
}

/* ---- SASL ---- */

bool kr_ksasl_plain_ok(const kr_kafka *k, const uint8_t *p, size_t n)
{
    /* authzid NUL authcid NUL password (RFC 4616): the user is not checked,
     * the password is the token. */
    const uint8_t *nul1 = memchr(p, 0, n);
    if (nul1 == NULL)
        return false;
    const uint8_t *user = nul1 + 1;
    const uint8_t *nul2 = memchr(user, 0, (size_t)(p + n - user));
    if (nul2 == NULL || k->cfg->token == NULL)
        return false;
    const uint8_t *pw = nul2 + 1;
    return kr_secret_equal(pw, (size_t)(p + n - pw), k->cfg->token);
}

static kr_khresult sasl_handshake(kr_kconn *c, kr_kreq *r, const kr_kafka_request *req)
{
    static const kr_kafka_str plain[1] = {{"PLAIN", 5}};
    kr_kafka_sasl_handshake_resp resp = {0};
    kr_kafka_str mech = req->u.sasl_handshake.mechanism;
    resp.mechanisms.v = plain;
    resp.mechanisms.n = 1;
    if (c->k->cfg->token == NULL) {
        resp.error_code = KR_KAFKA_ERR_ILLEGAL_SASL_STATE;
        resp.mechanisms.n = 0;
        kr_kconn_log(KR_LOG_INFO, c, "SASL refused",
                     "this server has no --token: connect without SASL (security.protocol="
                     "PLAINTEXT)");
    } else if (c->sasl != KR_KSASL_START) {
        resp.error_code = KR_KAFKA_ERR_ILLEGAL_SASL_STATE;
        kr_kconn_log(KR_LOG_INFO, c, "SASL refused", "a second SaslHandshake");
    } else if (mech.len != 5 || memcmp(mech.ptr, "PLAIN", 5) != 0) {
        resp.error_code = KR_KAFKA_ERR_UNSUPPORTED_SASL_MECHANISM;
        kr_kconn_log(KR_LOG_INFO, c, "SASL refused",
                     "only sasl.mechanism=PLAIN is supported (with the token as the password)");
    } else {
        c->sasl = r->api_version == 0 ? KR_KSASL_RAW : KR_KSASL_HANDSHAKE;
    }
    if (resp.error_code != 0) {
        r->close_after = true;
        c->net.no_more = true;
    }
    kr_kreq_respond(r, &resp);
    return KR_KH_DONE;
}

static kr_khresult sasl_authenticate(kr_kconn *c, kr_kreq *r, const kr_kafka_request *req)
{
    kr_kafka_bytes b = req->u.sasl_authenticate.auth_bytes;
    kr_kafka_sasl_authenticate_resp resp = {0};
    resp.error_message = (kr_kafka_str){NULL, -1};
    resp.auth_bytes = (kr_kafka_bytes){(const uint8_t *)"", 0};
    if (b.len >= 0 && kr_ksasl_plain_ok(c->k, b.ptr, (size_t)b.len)) {
        c->sasl = KR_KSASL_DONE;
        kr_kconn_log(KR_LOG_DEBUG, c, "Kafka client authenticated", NULL);
    } else {
        resp.error_code = KR_KAFKA_ERR_SASL_AUTHENTICATION_FAILED;
        resp.error_message =
            kr_kafka_cstr("authentication failed: the SASL/PLAIN password must be the server's "
                          "--token");
        kr_kconn_log(KR_LOG_INFO, c, "Kafka client not authenticated", "wrong SASL/PLAIN password");
        r->close_after = true;
        c->net.no_more = true;
    }
    kr_kreq_respond(r, &resp);
    return KR_KH_DONE;
}

void kr_khandle_sasl_raw(kr_kconn *c, kr_kreq *r, const uint8_t *token, size_t len)
{
    r->api_key = KR_KAFKA_SASL_AUTHENTICATE; /* counted as one */
    if (!kr_ksasl_plain_ok(c->k, token, len)) {
        kr_kreq_close(r, "wrong SASL/PLAIN password: it must be the server's --token");
        return;
    }
    c->sasl = KR_KSASL_DONE;
    kr_kreq_respond_raw(r, NULL, 0);
}

/* ---- the table ---- */

static const kr_khandler handlers[] = {
    {KR_KAFKA_PRODUCE, true, kr_khandle_produce},
    {KR_KAFKA_FETCH, false, kr_khandle_fetch},
    {KR_KAFKA_LIST_OFFSETS, false, list_offsets},
    {KR_KAFKA_METADATA, false, metadata},
    {KR_KAFKA_OFFSET_COMMIT, false, kr_khandle_offset_commit},
    {KR_KAFKA_OFFSET_FETCH, false, kr_khandle_offset_fetch},
    {KR_KAFKA_FIND_COORDINATOR, false, find_coordinator},
    {KR_KAFKA_JOIN_GROUP, false, kr_khandle_join_group},
    {KR_KAFKA_HEARTBEAT, false, kr_khandle_heartbeat},
    {KR_KAFKA_LEAVE_GROUP, false, kr_khandle_leave_group},
    {KR_KAFKA_SYNC_GROUP, false, kr_khandle_sync_group},
    {KR_KAFKA_SASL_HANDSHAKE, false, sasl_handshake},
    {KR_KAFKA_API_VERSIONS, false, api_versions},
    {KR_KAFKA_CREATE_TOPICS, false, kr_khandle_create_topics},
    {KR_KAFKA_DELETE_TOPICS, false, kr_khandle_delete_topics},
    {KR_KAFKA_INIT_PRODUCER_ID, false, init_producer_id},
    {KR_KAFKA_DESCRIBE_CONFIGS, false, kr_khandle_describe_configs},
    {KR_KAFKA_ALTER_CONFIGS, false, kr_khandle_alter_configs},
    {KR_KAFKA_SASL_AUTHENTICATE, false, sasl_authenticate},
    {KR_KAFKA_INCREMENTAL_ALTER_CONFIGS, false, kr_khandle_alter_configs},
};

const kr_khandler *kr_khandler_for(int16_t key)
{
    for (size_t i = 0; i < sizeof handlers / sizeof handlers[0]; i++)
        if (handlers[i].key == key)
            return &handlers[i];
    return NULL;
}
