/*
 * server/kafka_offsets.c - the Kafka consumer group APIs on the wire:
 * JoinGroup, SyncGroup, Heartbeat and LeaveGroup through the coordinator
 * (kafka_groups.h), OffsetCommit and OffsetFetch through the store's
 * committed offsets (kr_store_koffset_*), which survive kill -9 before an
 * OffsetCommit is answered. On a cluster an OffsetCommit goes through the
 * log (KOFFSET_COMMIT, cluster/cmd.h) and is answered once applied on the
 * leader; every node then answers OffsetFetch with it. Only the leader
 * coordinates groups: the other nodes answer the group APIs and
 * OffsetCommit NOT_COORDINATOR, and the member asks FindCoordinator again.
 */
#include <stdio.h>
#include <string.h>

#include "cluster/cmd.h"
#include "server/kafka.h"
#include "server/kafka_groups.h"
#include "util/clock.h"
#include "util/log.h"

/* ---- JoinGroup, SyncGroup: answers that may wait ---- */

/* Whether r is still waiting for the coordinator; not any more after. */
static void unpark(kr_kreq *r)
{
    if (r->cancel != NULL) {
        r->cancel = NULL;
        r->conn->parked--;
    }
}

static void group_cancel(kr_kreq *r)
{
    kr_kgroups_cancel(r->conn->k->groups, r);
    r->conn->parked--;
    kr_kreq_silent(r);
}

/* Wait for the coordinator's callback (which may come at once). */
static void park(kr_kconn *c, kr_kreq *r)
{
    kr_kreq_async(r);
    r->cancel = group_cancel;
    c->parked++;
}

static void joined(void *arg, const kr_kafka_join_group_resp *resp)
{
    kr_kreq *r = arg;
    unpark(r);
    kr_kreq_respond(r, resp);
}

static void synced(void *arg, const kr_kafka_sync_group_resp *resp)
{
    kr_kreq *r = arg;
    unpark(r);
    kr_kreq_respond(r, resp);
}

bool kr_kafka_coordinates(const kr_kafka *k)
{
    return k->srv->cluster == NULL || kr_cluster_is_leader(k->srv->cluster);
}

kr_khresult kr_khandle_join_group(kr_kconn *c, kr_kreq *r, const kr_kafka_request *req)
{
    if (!kr_kafka_coordinates(c->k)) {
        kr_kafka_join_group_resp resp = {.error_code = KR_KAFKA_ERR_NOT_COORDINATOR,
                                         .generation_id = -1};
        resp.protocol_name = (kr_kafka_str){"", 0};
        resp.leader = (kr_kafka_str){"", 0};
        resp.member_id = req->u.join_group.member_id;
        kr_kreq_respond(r, &resp);
        return KR_KH_DONE;
    }
    park(c, r);
    kr_kafka_str client = kr_kafka_cstr(c->client_id);
    kr_kgroups_join(c->k->groups, &req->u.join_group, r->api_version, client, kr_mono_ms(), joined,
                    r);
    return KR_KH_ASYNC;
}

kr_khresult kr_khandle_sync_group(kr_kconn *c, kr_kreq *r, const kr_kafka_request *req)
{
    if (!kr_kafka_coordinates(c->k)) {
        kr_kafka_sync_group_resp resp = {.error_code = KR_KAFKA_ERR_NOT_COORDINATOR};
        resp.assignment = (kr_kafka_bytes){(const uint8_t *)"", 0};
        kr_kreq_respond(r, &resp);
        return KR_KH_DONE;
    }
    park(c, r);
    kr_kgroups_sync(c->k->groups, &req->u.sync_group, kr_mono_ms(), synced, r);
    return KR_KH_ASYNC;
}

kr_khresult kr_khandle_heartbeat(kr_kconn *c, kr_kreq *r, const kr_kafka_request *req)
{
    kr_kafka_heartbeat_resp resp = {0};
    resp.error_code = kr_kafka_coordinates(c->k)
                          ? kr_kgroups_heartbeat(c->k->groups, &req->u.heartbeat, kr_mono_ms())
                          : KR_KAFKA_ERR_NOT_COORDINATOR;
    kr_kreq_respond(r, &resp);
    return KR_KH_DONE;
}

kr_khresult kr_khandle_leave_group(kr_kconn *c, kr_kreq *r, const kr_kafka_request *req)
{
    const kr_kafka_leave_group_req *q = &req->u.leave_group;
    kr_kafka_leave_group_resp resp = {0};
    uint64_t now = kr_mono_ms();
    if (!kr_kafka_coordinates(c->k)) {
        resp.error_code = KR_KAFKA_ERR_NOT_COORDINATOR;
    } else if (r->api_version < 3) {
        resp.error_code = kr_kgroups_leave(c->k->groups, q->group_id, q->member_id, now);
    } else {
        int32_t n = kr_kcount(q->members.n);
        kr_kafka_leave_group_member_resp *m = kr_kreq_array(r, n, sizeof *m);
        if (m == NULL) {
            return kr_kreq_nomem(r);
        }
        for (int32_t i = 0; i < n; i++) {
            m[i].member_id = q->members.v[i].member_id;
            m[i].group_instance_id = q->members.v[i].group_instance_id;
            m[i].error_code =
                kr_kgroups_leave(c->k->groups, q->group_id, q->members.v[i].member_id, now);
        }
        resp.members.v = m;
        resp.members.n = n;
    }
    kr_kreq_respond(r, &resp);
    return KR_KH_DONE;
}

size_t kr_kafka_group_members(const kr_kafka *k, const char *group, size_t len)
{
    return k != NULL ? kr_kgroups_members(k->groups, group, len) : 0;
}

/* ---- OffsetCommit ---- */

typedef struct kcommit {
    kr_kafka_offset_commit_resp resp;
    uint32_t pending;
} kcommit;

typedef struct kcommit_part {
    kr_kreq *r;
    kr_kafka_offset_commit_resp_partition *p;
} kcommit_part;

static void commit_done(kr_kreq *r)
{
    kcommit *kc = r->ctx;
    if (--kc->pending == 0)
        kr_kreq_respond(r, &kc->resp);
}

/* A commit's error for Kafka: a node that does not lead (any more) is not
 * the coordinator, and the client looks for it again. */
static int16_t commit_err(krappy_err e)
{
    return e == KRAPPY_E_NOT_LEADER ? KR_KAFKA_ERR_NOT_COORDINATOR : kr_kafka_err_from(e);
}

static void committed(void *arg, const kr_store_result *res)
{
    kcommit_part *cp = arg;
    if (res->err != KRAPPY_OK) {
        cp->p->error_code = commit_err(res->err);
        kr_kconn_log(KR_LOG_ERROR, cp->r->conn, "a Kafka offset commit failed", res->msg);
    }
    commit_done(cp->r);
}

/* On a cluster: the commit into the log; `committed` follows once it is
 * applied here. @return 0, or -1 with res filled. */
static int commit_logged(kr_server *srv, kr_topic *t, kr_kafka_str group,
                         const kr_kafka_offset_commit_req_partition *qp, kcommit_part *cp,
                         kr_store_result *res)
{
    if ((size_t)group.len > KR_KOFFSET_GROUP_MAX) {
        res->err = KRAPPY_E_INVALID_ARGUMENT;
        snprintf(res->msg, sizeof res->msg, "a Kafka group id may be at most %d bytes",
                 KR_KOFFSET_GROUP_MAX);
        return -1;
    }
    kr_str topic = {(const uint8_t *)t->name, t->name_len},
           g = {(const uint8_t *)group.ptr, (size_t)group.len};
    const kr_kafka_str *m = &qp->committed_metadata;
    kr_buf_reset(&srv->cmd);
    kr_cmd_put_koffset(&srv->cmd, &topic, &g, (uint64_t)qp->committed_offset,
                       m->len >= 0 ? (const uint8_t *)m->ptr : NULL,
                       m->len >= 0 ? (size_t)m->len : 0);
    res->err = kr_server_cluster_command(srv, committed, cp, res->msg, sizeof res->msg);
    return res->err == KRAPPY_OK ? 0 : -1;
}

/* Commit one partition's offset. @return its error code now (0: queued or
 * done). */
static int16_t commit_one(kr_kconn *c, kr_kreq *r, kcommit *kc, kr_topic *t, kr_kafka_str group,
                          const kr_kafka_offset_commit_req_partition *qp,
                          kr_kafka_offset_commit_resp_partition *p)
{
    if (qp->partition_index != 0)
        return KR_KAFKA_ERR_UNKNOWN_TOPIC_OR_PARTITION;
    if (qp->committed_offset < 0)
        return KR_KAFKA_ERR_OFFSET_OUT_OF_RANGE;
    if (qp->committed_metadata.len > KR_KOFFSET_METADATA_MAX)
        return KR_KAFKA_ERR_OFFSET_METADATA_TOO_LARGE;
    kcommit_part *cp = kr_kreq_array(r, 1, sizeof *cp);
    if (cp == NULL)
        return KR_KAFKA_ERR_UNKNOWN_SERVER_ERROR;
    *cp = (kcommit_part){r, p};
    kr_store_result res;
    kr_server *srv = c->k->srv;
    int rc =
        srv->cluster != NULL
            ? commit_logged(srv, t, group, qp, cp, &res)
            : kr_store_koffset_commit(srv->store, t, (const uint8_t *)group.ptr, (size_t)group.len,
                                      (uint64_t)qp->committed_offset, qp->committed_metadata.ptr,
                                      qp->committed_metadata.len, committed, cp, &res);
    if (rc < 0) {
        kr_kconn_log(KR_LOG_WARN, c, "a Kafka offset commit was refused", res.msg);
        return res.err == KRAPPY_E_INVALID_ARGUMENT ? KR_KAFKA_ERR_INVALID_GROUP_ID
                                                    : commit_err(res.err);
    }
    kc->pending++;
    return 0;
}

/* The error an OffsetCommit's group decides for all its partitions (0:
 * none). */
static int16_t commit_group_err(kr_kconn *c, const kr_kafka_offset_commit_req *q)
{
    if (q->group_id.len <= 0)
        return KR_KAFKA_ERR_INVALID_GROUP_ID;
    if (!kr_kafka_coordinates(c->k))
        return KR_KAFKA_ERR_NOT_COORDINATOR;
    return kr_kgroups_commit_check(c->k->groups, q->group_id, q->generation_id, q->member_id,
                                   kr_mono_ms());
}

kr_khresult kr_khandle_offset_commit(kr_kconn *c, kr_kreq *r, const kr_kafka_request *req)
{
    const kr_kafka_offset_commit_req *q = &req->u.offset_commit;
    int32_t nt = kr_kcount(q->topics.n);
    kcommit *kc = kr_kreq_array(r, 1, sizeof *kc);
    kr_kafka_offset_commit_resp_topic *topics = kr_kreq_array(r, nt, sizeof *topics);
    if (kc == NULL || topics == NULL) {
        return kr_kreq_nomem(r);
    }
    kc->resp.topics.v = topics;
    kc->resp.topics.n = nt;
    kc->pending = 1;
    r->ctx = kc;
    kr_kreq_async(r);
    int16_t group_err = commit_group_err(c, q);
    for (int32_t i = 0; i < nt; i++) {
        const kr_kafka_offset_commit_req_topic *qt = &q->topics.v[i];
        int32_t np = kr_kcount(qt->partitions.n);
        kr_kafka_offset_commit_resp_partition *parts = kr_kreq_array(r, np, sizeof *parts);
        const char *name = kr_kreq_strdup(r, qt->name.ptr, qt->name.len);
        if (parts == NULL || name == NULL) {
            kc->resp.topics.n = i; /* what is written so far is answered */
            break;
        }
        topics[i].name = (kr_kafka_str){name, qt->name.len};
        topics[i].partitions.v = parts;
        topics[i].partitions.n = np;
        int16_t err = group_err;
        kr_topic *t = err == 0 ? kr_kafka_topic_for(c->k, qt->name, false, &err) : NULL;
        for (int32_t j = 0; j < np; j++) {
            parts[j].partition_index = qt->partitions.v[j].partition_index;
            parts[j].error_code =
                t == NULL ? err
                          : commit_one(c, r, kc, t, q->group_id, &qt->partitions.v[j], &parts[j]);
        }
    }
    commit_done(r);
    return KR_KH_ASYNC;
}

/* ---- OffsetFetch ---- */

static void fetch_one(kr_kreq *r, const kr_topic *t, kr_kafka_str group, int32_t partition,
                      kr_kafka_offset_fetch_resp_partition *p)
{
    p->partition_index = partition;
    p->committed_offset = -1;
    p->committed_leader_epoch = -1;
    p->metadata = (kr_kafka_str){"", 0};
    if (t == NULL)
        return; /* no such topic: nothing committed (as Kafka answers) */
    if (partition != 0) {
        p->error_code = KR_KAFKA_ERR_UNKNOWN_TOPIC_OR_PARTITION;
        return;
    }
    const kr_koffset *o = kr_store_koffset(t, (const uint8_t *)group.ptr, (size_t)group.len);
    if (o == NULL)
        return;
    p->committed_offset = (int64_t)o->offset;
    if (o->metadata != NULL)
        p->metadata = (kr_kafka_str){kr_kreq_strdup(r, o->metadata, (int32_t)o->metadata_len),
                                     (int32_t)o->metadata_len};
    else
        p->metadata = (kr_kafka_str){NULL, -1};
    if (p->metadata.ptr == NULL && p->metadata.len >= 0)
        p->metadata = (kr_kafka_str){"", 0};
}

/* OffsetFetch for every topic (topics null, v2+): those the group has an
 * offset on. */
static kr_khresult offset_fetch_all(kr_kconn *c, kr_kreq *r, kr_kafka_str group)
{
    kr_topic **all;
    size_t n = kr_store_topics(c->k->srv->store, &all);
    kr_kafka_offset_fetch_resp_topic *topics = kr_kreq_array(r, (int32_t)n, sizeof *topics);
    kr_kafka_offset_fetch_resp_partition *parts = kr_kreq_array(r, (int32_t)n, sizeof *parts);
    if (topics == NULL || parts == NULL) {
        return kr_kreq_nomem(r);
    }
    int32_t k = 0;
    for (size_t i = 0; i < n; i++) {
        const kr_topic *t = all[i];
        if (kr_store_koffset(t, (const uint8_t *)group.ptr, (size_t)group.len) == NULL)
            continue;
        topics[k].name =
            (kr_kafka_str){kr_kreq_strdup(r, t->name, (int32_t)t->name_len), (int32_t)t->name_len};
        if (topics[k].name.ptr == NULL)
            continue;
        fetch_one(r, t, group, 0, &parts[k]);
        topics[k].partitions.v = &parts[k];
        topics[k].partitions.n = 1;
        k++;
    }
    kr_kafka_offset_fetch_resp resp = {0};
    resp.topics.v = topics;
    resp.topics.n = k;
    kr_kreq_respond(r, &resp);
    return KR_KH_DONE;
}

kr_khresult kr_khandle_offset_fetch(kr_kconn *c, kr_kreq *r, const kr_kafka_request *req)
{
    const kr_kafka_offset_fetch_req *q = &req->u.offset_fetch;
    if (q->topics.n < 0)
        return offset_fetch_all(c, r, q->group_id);
    int32_t nt = q->topics.n;
    kr_kafka_offset_fetch_resp_topic *topics = kr_kreq_array(r, nt, sizeof *topics);
    if (topics == NULL) {
        return kr_kreq_nomem(r);
    }
    for (int32_t i = 0; i < nt; i++) {
        const kr_kafka_offset_fetch_req_topic *qt = &q->topics.v[i];
        int32_t np = kr_kcount(qt->partition_indexes.n);
        kr_kafka_offset_fetch_resp_partition *parts = kr_kreq_array(r, np, sizeof *parts);
        if (parts == NULL) {
            return kr_kreq_nomem(r);
        }
        int16_t err;
        kr_topic *t = kr_kafka_topic_for(c->k, qt->name, false, &err);
        topics[i].name = qt->name;
        topics[i].partitions.v = parts;
        topics[i].partitions.n = np;
        for (int32_t j = 0; j < np; j++)
            fetch_one(r, t, q->group_id, qt->partition_indexes.v[j], &parts[j]);
    }
    kr_kafka_offset_fetch_resp resp = {0};
    resp.topics.v = topics;
    resp.topics.n = nt;
    kr_kreq_respond(r, &resp);
    return KR_KH_DONE;
}
