/*
 * server/cluster_ops.c - the server's side of PROTOCOL.md section 8: the
 * node joins its cluster once the data port listens (or names itself a
 * cluster of one), requests that need the leader are sent to it
 * (NOT_LEADER), and CLUSTER answers with the picture or changes the
 * membership.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cluster/cmd.h"
#include "server/kafka.h"
#include "server/server.h"
#include "util/hostport.h"
#include "util/log.h"

/* The data address clients reach this node at: --advertise, else --listen
 * as bound, with this host's name for a wildcard host. */
static void advertise_addr(kr_server *srv, char *out, size_t len)
{
    const kr_config *cfg = srv->cfg;
    if (cfg->advertise != NULL) {
        snprintf(out, len, "%s", cfg->advertise);
        return;
    }
    kr_hostport hp = {0};
    char port[16];
    (void)kr_hostport_parse(cfg->listen, KR_HOSTPORT_PORT_ZERO, &hp, NULL, 0);
    if (hp.host[0] == '\0' || strcmp(hp.host, "0.0.0.0") == 0 || strcmp(hp.host, "::") == 0) {
        hp.host[0] = '\0';
        gethostname(hp.host, sizeof hp.host - 1);
    }
    snprintf(port, sizeof port, "%u", srv->port);
    kr_hostport_format(out, len, hp.host, port);
}

/* The members' data addresses, for a catch-up looking for the leader. */
static void member_addrs(void *arg, char *buf, size_t len)
{
    kr_server *srv = arg;
    size_t at = 0;
    buf[0] = '\0';
    kr_cluster_status *st = srv->cluster != NULL ? malloc(sizeof *st) : NULL;
    if (st == NULL)
        return;
    kr_cluster_status_get(srv->cluster, st);
    for (unsigned i = 0; i < st->n_members && at < len; i++)
        if (st->members[i].addr[0] != '\0')
            at += (size_t)snprintf(buf + at, len - at, "%s%s", at ? "," : "", st->members[i].addr);
    free(st);
}

/* The log deleted a group (or a topic): connections let go of it. */
static void forget_deleted(void *arg, kr_topic *t, kr_tgroup *tg)
{
    kr_server *srv = arg;
    kr_ops_forget(srv, t, tg);
    if (tg == NULL)
        kr_kafka_topic_deleted(srv->kafka, t);
}

/* A RETENTION the log refused or lost (a leader change): the next
 * checkpoint's retention asks again (the topic's retain_asked is reset
 * where this node does not lead). */
static void retention_logged(void *arg, const kr_store_result *res)
{
    (void)arg;
    if (res->err != KRAPPY_OK)
        kr_log(KR_LOG_DEBUG, "a retention decision did not make it into the cluster's log",
               KR_LOG_STR("reason", res->msg));
}

/*
 * The store's retention decision (kr_store_retention_led): on the leader a
 * RETENTION command, which every node applies alike (kr_store_retain); a
 * follower drops it and asks again once it leads. Encoded in a buffer of
 * its own: it may run from within an apply, while srv->cmd is someone's.
 */
static void retention_decided(void *arg, kr_topic *t, uint64_t first)
{
    kr_server *srv = arg;
    if (!kr_cluster_is_leader(srv->cluster)) {
        t->retain_asked = 0;
        return;
    }
    kr_str name = {(const uint8_t *)t->name, t->name_len};
    kr_buf b;
    char msg[256];
    kr_buf_init(&b, t->name_len + 32);
    kr_cmd_put_retention(&b, &name, first);
    if (b.failed || kr_cluster_submit(srv->cluster, b.data, b.len, retention_logged, NULL, msg,
                                      sizeof msg) != KRAPPY_OK)
        t->retain_asked = 0; /* asked again after the next checkpoint */
    else
        kr_log(KR_LOG_INFO, "retention decided", KR_LOG_STR("topic", t->name),
               KR_LOG_U64("first", first));
    kr_buf_free(&b);
}

static void cluster_failed(void *arg, const char *why)
{
    kr_server *srv = arg;
    (void)why; /* logged by the cluster */
    srv->failed = true;
    kr_server_shutdown(srv);
}

int kr_server_cluster_start(kr_server *srv)
{
    const kr_config *cfg = srv->cfg;
    char err[512];
    advertise_addr(srv, srv->advertise, sizeof srv->advertise);
    if (cfg->raft_listen == NULL) {
        if (kr_cluster_single_id(cfg->data_dir, srv->cluster_id, sizeof srv->cluster_id, err,
                                 sizeof err) < 0) {
            kr_log(KR_LOG_ERROR, "cannot name this node's cluster", KR_LOG_STR("reason", err));
            return -1;
        }
        return 0;
    }
    kr_topic **all;
    bool has_topics = kr_store_topics(srv->store, &all) > 0;
    srv->replica = kr_replica_new(&(kr_replica_opts){.store = srv->store,
                                                     .base = srv->base,
                                                     .token = cfg->token,
                                                     .nodes = member_addrs,
                                                     .nodes_arg = srv,
                                                     .forget = forget_deleted,
                                                     .forget_arg = srv});
    if (srv->replica == NULL) {
        kr_log(KR_LOG_ERROR, "cannot start as a cluster member: out of memory");
        return -1;
    }
    kr_buf_init(&srv->cmd, (size_t)cfg->max_frame + 4096);
    /* Retention by size and age is the leader's to decide. */
    kr_store_retention_led(srv->store, retention_decided, srv);
    kr_cluster_opts o = {.node_id = cfg->node_id,
                         .raft_listen = cfg->raft_listen,
                         .peers = cfg->peers,
                         .advertise = srv->advertise,
                         .kafka_advertise = srv->kafka_advertise[0] ? srv->kafka_advertise : NULL,
                         .data_dir = cfg->data_dir,
                         .has_topics = has_topics,
                         .replica = srv->replica,
                         .base = srv->base,
                         .metrics = srv->metrics,
                         .snapshot_every = cfg->raft_snapshot_every,
                         .segment_bytes = cfg->raft_segment_bytes,
                         .failed = cluster_failed,
                         .failed_arg = srv};
    if (kr_cluster_start(&o, &srv->cluster, err, sizeof err) < 0) {
        kr_log(KR_LOG_ERROR, "cannot start as a cluster member", KR_LOG_STR("reason", err));
        return -1;
    }
    kr_log(KR_LOG_INFO, "cluster member starting", KR_LOG_U64("node", cfg->node_id),
           KR_LOG_STR("raft", cfg->raft_listen), KR_LOG_STR("advertise", srv->advertise));
    return 0;
}

void kr_server_cluster_halt(kr_server *srv)
{
    kr_replica_halt(srv->replica);
}

void kr_server_cluster_free(kr_server *srv)
{
    kr_server_cluster_rounds_free(srv);
    kr_server_cluster_batch_free(srv);
    kr_replica_free(srv->replica);
    srv->replica = NULL;
    kr_buf_free(&srv->cmd);
}

/* Requests that change what is replicated (PROTOCOL.md section 8). */
static bool needs_leader(const kr_request *req)
{
    switch (req->type) {
    case KRAPPY_T_PRODUCER_REGISTER:
    case KRAPPY_T_PUBLISH:
    case KRAPPY_T_CONSUMER_REGISTER:
    case KRAPPY_T_POLL:
    case KRAPPY_T_ACK:
    case KRAPPY_T_DELETE_TOPIC:
    case KRAPPY_T_GROUP_SEEK:
    case KRAPPY_T_GROUP_DELETE:
        return true;
    case KRAPPY_T_CLUSTER:
        return req->u.cluster.has_add || req->u.cluster.has_remove;
    case KRAPPY_T_TOPIC_CONFIG:
        return req->u.topic_config.has_set;
    default:
        return false;
    }
}

bool kr_server_not_leader(kr_conn *c, kr_req *r, const kr_request *req)
{
    kr_cluster *cl = c->srv->cluster;
    if (!needs_leader(req) || kr_cluster_is_leader(cl))
        return false;
    char leader[KR_HOSTPORT_MAX + 1];
    kr_error_extra extra = {0};
    if (kr_cluster_leader_addr(cl, leader, sizeof leader)) {
        snprintf(c->errmsg, sizeof c->errmsg,
                 "this node is not the cluster's leader; send %s to the leader at %s",
                 krappy_type_name(req->type), leader);
        extra.leader = leader;
    } else if (kr_cluster_halted(cl)) {
        kr_server_halted_why(c->errmsg, sizeof c->errmsg);
    } else {
        snprintf(c->errmsg, sizeof c->errmsg,
                 "this node is not the cluster's leader and no leader is known yet (an election "
                 "is running, or too few nodes answer); try again in a moment");
    }
    kr_req_error(r, KRAPPY_E_NOT_LEADER, c->errmsg, &extra);
    return true;
}

/* OK {cluster, node, term, leader, nodes, commit, applied} into c->enc. */
static void encode_picture(kr_conn *c, kr_cid cid)
{
    kr_server *srv = c->srv;
    kr_buf_reset(&c->enc);
    if (srv->cluster == NULL) {
        kr_cluster_head h = {srv->cluster_id, 1, 0, 1, 0, 0, false};
        kr_enc_ok_cluster_begin(&c->enc, cid, &h, 1);
        kr_cluster_node_out n = {.id = 1, .addr = srv->advertise, .role = "leader"};
        kr_enc_cluster_node(&c->enc, &n);
        return;
    }
    kr_cluster_status *st = malloc(sizeof *st);
    if (st == NULL) {
        c->enc.failed = true;
        return;
    }
    kr_cluster_status_get(srv->cluster, st);
    kr_cluster_head h = {st->cluster_id,
                         st->node,
                         st->term,
                         st->leader,
                         st->commit,
                         st->applied,
                         kr_cluster_halted(srv->cluster)};
    kr_enc_ok_cluster_begin(&c->enc, cid, &h, st->n_members);
    for (unsigned i = 0; i < st->n_members; i++) {
        const kr_cluster_member *m = &st->members[i];
        kr_cluster_node_out n = {.id = m->id,
                                 .addr = m->addr,
                                 .role = m->role,
                                 .raft = m->raft,
                                 .kafka = m->kafka,
                                 .has_lag = st->is_leader,
                                 .match = m->match,
                                 .lag = m->lag};
        kr_enc_cluster_node(&c->enc, &n);
    }
    free(st);
}

static void reply_picture(kr_req *r)
{
    kr_conn *c = r->conn;
    encode_picture(c, r->cid);
    if (c->enc.failed) {
        kr_req_error(r, KRAPPY_E_STORAGE, "out of memory describing the cluster", NULL);
        return;
    }
    kr_req_reply(r, KRAPPY_T_OK, c->enc.data, c->enc.len);
}

static void membership_done(void *arg, krappy_err err, const char *msg)
{
    kr_req *r = arg;
    if (err != KRAPPY_OK)
        kr_req_error(r, err, msg, NULL);
    else
        reply_picture(r);
}

kr_hresult kr_handle_cluster(kr_conn *c, kr_req *r, const kr_request *req)
{
    const __typeof__(req->u.cluster) *q = &req->u.cluster;
    if (!q->has_add && !q->has_remove) {
        reply_picture(r);
        return KR_H_DONE;
    }
    if (c->srv->cluster == NULL) {
        kr_req_error(r, KRAPPY_E_INVALID_ARGUMENT,
                     "this krappyd runs alone (no --raft-listen): membership changes need a "
                     "cluster",
                     NULL);
        return KR_H_DONE;
    }
    char raft[KR_NODE_ADDR_MAX + 1];
    snprintf(raft, sizeof raft, "%.*s", (int)q->raft.len, (const char *)q->raft.ptr);
    kr_req_async(r);
    krappy_err e = q->has_add ? kr_cluster_add(c->srv->cluster, q->id, raft, membership_done, r,
                                               c->errmsg, sizeof c->errmsg)
                              : kr_cluster_remove(c->srv->cluster, q->id, membership_done, r,
                                                  c->errmsg, sizeof c->errmsg);
    if (e != KRAPPY_OK)
        kr_req_error(r, e, c->errmsg, NULL);
    return KR_H_ASYNC;
}
