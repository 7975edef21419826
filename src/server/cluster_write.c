/*
 * server/cluster_write.c - writes on a cluster's leader (PROTOCOL.md
 * section 8): PRODUCER_REGISTER and PUBLISH become store commands in the
 * raft log (cluster/cmd.h), and are answered with what applying them here
 * gave (cluster/replica.h) once a majority stored them. Every node applies
 * the same commands in the same order, so the offsets in the answer are
 * the offsets on every node. DELETE_TOPIC and TOPIC_CONFIG `set` are
 * commands too (TOPIC_DELETE, TOPIC_CONFIG). Consumer groups' commands are
 * cluster_groups.c's.
 *
 * A single krappyd never comes here (handlers.c checks srv->cluster).
 */
#include <stdio.h>
#include <string.h>

#include "cluster/cmd.h"
#include "server/server.h"
#include "util/clock.h"

void kr_server_write_error(kr_req *r, const kr_store_result *res)
{
    kr_conn *c = r->conn;
    char leader[KR_HOSTPORT_MAX + 1] = "";
    kr_error_extra extra = {.has_index = res->err == KRAPPY_E_INVALID_ARGUMENT &&
                                         res->first != UINT64_MAX && r->type == KRAPPY_T_PUBLISH,
                            .index = res->first,
                            .has_expected = res->err == KRAPPY_E_OUT_OF_ORDER_SEQUENCE,
                            .expected = res->seq};
    if (res->err == KRAPPY_E_NOT_LEADER && c->srv->cluster != NULL &&
        kr_cluster_leader_addr(c->srv->cluster, leader, sizeof leader) && leader[0] != '\0')
        extra.leader = leader;
    kr_req_error(r, res->err, res->msg, &extra);
}

void kr_server_halted_why(char *msg, size_t msglen)
{
    snprintf(msg, msglen,
             "this node's store failed to apply the cluster's log (its log says why) and it "
             "takes no writes until restarted; no other leader is known yet: try again in a "
             "moment");
}

krappy_err kr_server_cluster_leads(kr_server *srv, char *msg, size_t msglen)
{
    char leader[KR_HOSTPORT_MAX + 1];
    if (!kr_cluster_is_leader(srv->cluster)) {
        if (kr_cluster_leader_addr(srv->cluster, leader, sizeof leader))
            snprintf(msg, msglen, "this node is not the cluster's leader; the leader is at %s",
                     leader);
        else if (kr_cluster_halted(srv->cluster))
            kr_server_halted_why(msg, msglen);
        else
            snprintf(msg, msglen,
                     "this node is not the cluster's leader and no leader is known "
                     "yet; try again in a moment");
        return KRAPPY_E_NOT_LEADER;
    }
    return KRAPPY_OK;
}

krappy_err kr_server_cluster_send(kr_server *srv, const void *cmd, size_t len, kr_replica_done done,
                                  void *arg, char *msg, size_t msglen)
{
    krappy_err e = kr_server_cluster_leads(srv, msg, msglen);
    if (e != KRAPPY_OK)
        return e;
    return kr_cluster_submit(srv->cluster, cmd, len, done, arg, msg, msglen);
}

krappy_err kr_server_cluster_command(kr_server *srv, kr_replica_done done, void *arg, char *msg,
                                     size_t msglen)
{
    if (srv->cmd.failed) {
        snprintf(msg, msglen, "out of memory encoding the write for the cluster's log");
        return KRAPPY_E_STORAGE;
    }
    kr_server_cluster_batch_flush(srv); /* what the leader took before goes first */
    return kr_server_cluster_send(srv, srv->cmd.data, srv->cmd.len, done, arg, msg, msglen);
}

/* r waits for its answer (KR_H_ASYNC); a submission refused (e) answers it
 * at once. */
static kr_hresult answered_later(kr_req *r, krappy_err e, const char *msg)
{
    if (e != KRAPPY_OK) {
        kr_store_result res = {.err = e, .first = UINT64_MAX};
        snprintf(res.msg, sizeof res.msg, "%s", msg);
        kr_server_write_error(r, &res);
    }
    return KR_H_ASYNC;
}

kr_hresult kr_server_cluster_submit(kr_conn *c, kr_req *r, kr_replica_done done)
{
    char msg[256];
    kr_req_async(r);
    return answered_later(r, kr_server_cluster_command(c->srv, done, r, msg, sizeof msg), msg);
}

/* As kr_server_cluster_submit, into this loop turn's BATCH. */
static kr_hresult batch_submit(kr_conn *c, kr_req *r, kr_replica_done done)
{
    char msg[256];
    kr_req_async(r);
    return answered_later(r, kr_server_cluster_batch(c->srv, done, r, msg, sizeof msg), msg);
}

/* ---- PRODUCER_REGISTER ---- */

static void registered(void *arg, const kr_store_result *res)
{
    kr_req *r = arg;
    kr_conn *c = r->conn;
    if (res->err != KRAPPY_OK) {
        kr_server_write_error(r, res);
        return;
    }
    kr_str name = {c->cl_topic, c->cl_topic_len};
    kr_buf_reset(&c->enc);
    if (r->ctx != NULL) {           /* idempotent */
        c->idem_epoch = res->epoch; /* as the log decided it */
        kr_enc_ok_producer_idempotent(&c->enc, r->cid, &name, res->first, res->epoch, res->seq);
    } else {
        kr_enc_ok_producer(&c->enc, r->cid, &name, res->first);
    }
    r->ctx = NULL;
    kr_req_reply(r, KRAPPY_T_OK, c->enc.data, c->enc.len);
}

kr_hresult kr_server_cluster_register(kr_conn *c, kr_req *r, const kr_request *req)
{
    const kr_str *name = &req->u.producer_register.topic, *id = &req->u.producer_register.id;
    /* Bound at once, so that a PUBLISH pipelined behind it is taken: its
     * command follows the registration's in the log. */
    memcpy(c->cl_topic, name->ptr, name->len);
    c->cl_topic_len = name->len;
    c->producer_gone = false;
    c->idem = req->u.producer_register.idempotent;
    kr_buf_reset(&c->srv->cmd);
    if (!c->idem) {
        r->ctx = NULL;
        kr_cmd_put_topic(&c->srv->cmd, KR_CMD_TOPIC_CREATE, name);
        return kr_server_cluster_submit(c, r, registered);
    }
    /* The new epoch, as this node knows the producer; every node starts
     * it (or, replaying, finds it started). */
    kr_topic *t = kr_store_topic(c->srv->store, name->ptr, name->len);
    c->idem_epoch = kr_store_producer_epoch(t, id->ptr, id->len, NULL) + 1;
    memcpy(c->idem_id, id->ptr, id->len);
    c->idem_id_len = id->len;
    r->ctx = r;
    kr_cmd_put_producer_register(&c->srv->cmd, name, id, c->idem_epoch);
    return batch_submit(c, r, registered);
}

/* ---- PUBLISH ---- */

static void published(void *arg, const kr_store_result *res)
{
    kr_req *r = arg;
    kr_conn *c = r->conn;
    if (res->err != KRAPPY_OK) {
        if (res->err == KRAPPY_E_FENCED || res->err == KRAPPY_E_NOT_REGISTERED)
            c->cl_topic_len = 0;       /* register again to publish */
        kr_server_write_error(r, res); /* closes when ack "none" */
        return;
    }
    kr_reply_published(r, res);
}

kr_hresult kr_server_cluster_publish(kr_conn *c, kr_req *r, const kr_request *req)
{
    if (kr_publish_lacks_seq(c, r, req) || kr_publish_topic_gone(c, r))
        return KR_H_DONE;
    if (c->cl_topic_len == 0) {
        kr_req_error(r, KRAPPY_E_NOT_REGISTERED,
                     "PUBLISH needs a PRODUCER_REGISTER for a topic on this connection first",
                     NULL);
        return KR_H_DONE;
    }
    if (kr_store_view_full(c->srv->store, c->errmsg, sizeof c->errmsg)) {
        kr_req_error(r, KRAPPY_E_STORAGE, c->errmsg, NULL);
        return KR_H_DONE;
    }
    kr_str topic = {c->cl_topic, c->cl_topic_len};
    kr_str payload = {c->payload, c->payload_len}; /* as the client sent it */
    kr_str id = {c->idem_id, c->idem_id_len};
    kr_buf_reset(&c->srv->cmd);
    kr_cmd_put_publish(&c->srv->cmd, &topic, kr_wall_ms(), c->idem ? &id : NULL, c->idem_epoch,
                       &payload);
    return batch_submit(c, r, published);
}

/* ---- the admin port's and the Kafka listener's produce ---- */

krappy_err kr_server_cluster_produce(kr_server *srv, const char *topic, size_t tlen,
                                     const uint8_t *payload, size_t len, kr_replica_done done,
                                     void *arg, char *msg, size_t msglen)
{
    if (kr_store_view_full(srv->store, msg, msglen))
        return KRAPPY_E_STORAGE;
    /* Applying a PUBLISH creates its topic where it is missing. */
    kr_str name = {(const uint8_t *)topic, tlen}, body = {payload, len};
    kr_buf_reset(&srv->cmd);
    kr_cmd_put_publish(&srv->cmd, &name, kr_wall_ms(), NULL, 0, &body);
    return kr_server_cluster_batch(srv, done, arg, msg, msglen);
}

/* ---- DELETE_TOPIC, TOPIC_CONFIG ---- */

/*
 * The producers registered on the topic (by name: cl_topic) go when its
 * deletion is sent to the log, not when it is applied: a PUBLISH of theirs
 * sent meanwhile would follow the deletion in the log and make the topic
 * again. A registration made after this point is logged after the
 * deletion, makes the new topic, and stays (the apply's kr_ops_forget goes
 * by pointer). So a PUBLISH the log holds after a TOPIC_DELETE comes from
 * a registration after it (PROTOCOL.md, krappyd's notes).
 */
static void producers_let_go(kr_server *srv, const kr_str *topic)
{
    kr_conn *c;
    TAILQ_FOREACH(c, &srv->conns, link)
    {
        if (c->cl_topic_len != topic->len || memcmp(c->cl_topic, topic->ptr, topic->len) != 0)
            continue;
        c->cl_topic_len = 0;
        c->idem = false;
        c->producer_gone = true;
    }
}

krappy_err kr_server_cluster_topic_delete(kr_server *srv, kr_topic *t, kr_replica_done done,
                                          void *arg, char *msg, size_t msglen)
{
    kr_str name = {(const uint8_t *)t->name, t->name_len};
    kr_buf_reset(&srv->cmd);
    kr_cmd_put_topic(&srv->cmd, KR_CMD_TOPIC_DELETE, &name);
    krappy_err e = kr_server_cluster_command(srv, done, arg, msg, msglen);
    if (e == KRAPPY_OK) {
        producers_let_go(srv, &name);
        kr_ops_forget(srv, t, NULL); /* its consumers */
    }
    return e;
}

krappy_err kr_server_cluster_topic_config(kr_server *srv, const uint8_t *name, size_t len,
                                          const kr_topic_config *set, kr_topic **t,
                                          kr_replica_done done, void *arg, char *msg, size_t msglen)
{
    kr_str topic = {name, len};
    *t = kr_store_topic(srv->store, name, len); /* NULL until the log makes it */
    kr_buf_reset(&srv->cmd);
    kr_cmd_put_topic_config(&srv->cmd, &topic, set);
    return kr_server_cluster_command(srv, done, arg, msg, msglen);
}
