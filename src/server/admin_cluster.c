/*
 * server/admin_cluster.c - the admin API's cluster (PROTOCOL.md section 8):
 *
 *   GET    /api/cluster              the picture: id, term, leader, commit and
 *                                    applied positions, each node's addresses,
 *                                    role and (on the leader) lag
 *   POST   /api/cluster/members      add a node: {"id": N, "raft": "HOST:PORT"},
 *                                    answered once it votes
 *   DELETE /api/cluster/members/N    remove node N, answered once committed
 *
 * Membership changes go to the leader: another node answers 409 with the
 * leader's admin-free data address in the message (the console follows the
 * cluster through /api/cluster).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "proto/json_parse.h"
#include "server/admin_int.h"
#include "server/server.h"
#include "util/json.h"

static void put_str(struct evbuffer *b, const char *key, const char *s)
{
    char esc[(KR_HOSTPORT_MAX + 1) * KR_JSON_ESC_MAX];
    size_t w;
    kr_json_esc_mem(esc, sizeof esc, &w, s, strlen(s));
    evbuffer_add_printf(b, "\"%s\":\"%.*s\"", key, (int)w, esc);
}

/* The picture as JSON into b. */
static void put_cluster(kr_server *srv, struct evbuffer *b)
{
    if (srv->cluster == NULL) {
        evbuffer_add_printf(b, "{");
        put_str(b, "cluster", srv->cluster_id);
        evbuffer_add_printf(b, ",\"node\":1,\"term\":0,\"leader\":1,\"is_leader\":true,"
                               "\"single\":true,\"ready\":true,\"nodes\":[{\"id\":1,");
        put_str(b, "addr", srv->advertise);
        evbuffer_add_printf(b, ",\"role\":\"leader\",\"voter\":true}]}\n");
        return;
    }
    kr_cluster_status *st = malloc(sizeof *st);
    if (st == NULL) {
        evbuffer_add_printf(b, "{\"error\":\"out of memory\"}\n");
        return;
    }
    kr_cluster_status_get(srv->cluster, st);
    char why[300];
    bool ready = kr_cluster_ready(srv->cluster, why, sizeof why);
    evbuffer_add_printf(b, "{");
    put_str(b, "cluster", st->cluster_id);
    evbuffer_add_printf(
        b,
        ",\"node\":%llu,\"term\":%llu,\"leader\":%llu,\"is_leader\":%s,\"single\":false,"
        "\"commit\":%llu,\"applied\":%llu,\"last_index\":%llu,\"leader_changes\":%llu,"
        "\"ready\":%s,",
        (unsigned long long)st->node, (unsigned long long)st->term, (unsigned long long)st->leader,
        st->is_leader ? "true" : "false", (unsigned long long)st->commit,
        (unsigned long long)st->applied, (unsigned long long)st->last_index,
        (unsigned long long)st->leader_changes, ready ? "true" : "false");
    put_str(b, "why", ready ? "" : why);
    evbuffer_add_printf(b, ",\"nodes\":[");
    for (unsigned i = 0; i < st->n_members; i++) {
        const kr_cluster_member *m = &st->members[i];
        evbuffer_add_printf(b, "%s{\"id\":%llu,", i ? "," : "", (unsigned long long)m->id);
        put_str(b, "addr", m->addr);
        evbuffer_add_printf(b, ",");
        put_str(b, "raft", m->raft);
        evbuffer_add_printf(b, ",");
        put_str(b, "kafka", m->kafka);
        evbuffer_add_printf(b, ",");
        put_str(b, "role", m->role);
        evbuffer_add_printf(b, ",\"voter\":%s", m->voter ? "true" : "false");
        if (st->is_leader)
            evbuffer_add_printf(b, ",\"match\":%llu,\"lag\":%llu", (unsigned long long)m->match,
                                (unsigned long long)m->lag);
        evbuffer_add_printf(b, "}");
    }
    evbuffer_add_printf(b, "]}\n");
    free(st);
}

static void send_cluster(kr_server *srv, struct evhttp_request *req)
{
    struct evbuffer *b = evbuffer_new();
    if (b == NULL) {
        kr_admin_reply_error(req, 500, "Internal Server Error", "out of memory");
        return;
    }
    put_cluster(srv, b);
    kr_admin_send_json(req, b);
}

/* A membership change on its way: the request and the server it answers for. */
typedef struct pending {
    struct evhttp_request *req;
    kr_server *srv;
} pending;

static void reply_failure(struct evhttp_request *req, krappy_err e, const char *msg)
{
    switch (e) {
    case KRAPPY_E_NOT_LEADER:
        kr_admin_reply_error(req, 409, "Conflict", msg);
        break;
    case KRAPPY_E_INVALID_ARGUMENT:
        kr_admin_reply_error(req, 400, "Bad Request", msg);
        break;
    default:
        kr_admin_reply_error(req, 503, "Service Unavailable", msg);
        break;
    }
}

static void changed(void *arg, krappy_err err, const char *msg)
{
    pending *p = arg;
    if (err != KRAPPY_OK)
        reply_failure(p->req, err, msg);
    else
        send_cluster(p->srv, p->req);
    free(p);
}

/* {"id": N, "raft": "HOST:PORT"}. @return 0, or -1 with why. */
static int add_body(const char *body, size_t len, uint64_t *id, char *raft, size_t raftlen,
                    char *why, size_t whylen)
{
    kr_buf cbor;
    kr_cbor_item map, x, r;
    int rc = -1;
    kr_buf_init(&cbor, len * 4 + 64);
    if (kr_json_to_cbor(body, len, &cbor, why, whylen) != KRAPPY_OK)
        goto out;
    snprintf(why, whylen,
             "send {\"id\": N, \"raft\": \"HOST:PORT\"} (the new node's raft address)");
    if (kr_cbor_read_exact(cbor.data, cbor.len, &map) < 0 || map.kind != KR_CBOR_MAP ||
        kr_cbor_map_find(&map, "id", &x) != 1 || x.kind != KR_CBOR_UINT ||
        kr_cbor_map_find(&map, "raft", &r) != 1 || r.kind != KR_CBOR_TEXT || r.str == NULL ||
        r.str_len == 0 || r.str_len >= raftlen)
        goto out;
    *id = x.u;
    memcpy(raft, r.str, r.str_len);
    raft[r.str_len] = '\0';
    rc = 0;
out:
    kr_buf_free(&cbor);
    return rc;
}

static void change(kr_admin *a, struct evhttp_request *req, bool add, uint64_t id, const char *raft)
{
    kr_server *srv = a->srv;
    char msg[300];
    if (srv->cluster == NULL) {
        kr_admin_reply_error(req, 400, "Bad Request",
                             "this krappyd runs alone (no --raft-listen): membership changes "
                             "need a cluster");
        return;
    }
    pending *p = malloc(sizeof *p);
    if (p == NULL) {
        kr_admin_reply_error(req, 500, "Internal Server Error", "out of memory");
        return;
    }
    p->req = req;
    p->srv = srv;
    krappy_err e = add ? kr_cluster_add(srv->cluster, id, raft, changed, p, msg, sizeof msg)
                       : kr_cluster_remove(srv->cluster, id, changed, p, msg, sizeof msg);
    if (e != KRAPPY_OK) {
        free(p);
        reply_failure(req, e, msg);
    }
}

void kr_admin_cluster(kr_admin *a, struct evhttp_request *req, const char *rest)
{
    enum evhttp_cmd_type m = evhttp_request_get_command(req);
    if (rest[0] == '\0') {
        if (m != EVHTTP_REQ_GET && m != EVHTTP_REQ_HEAD) {
            evhttp_add_header(evhttp_request_get_output_headers(req), "Allow", "GET, HEAD");
            kr_admin_reply_error(req, 405, "Method Not Allowed", "/api/cluster takes GET");
            return;
        }
        send_cluster(a->srv, req);
        return;
    }
    if (strcmp(rest, "/members") == 0 || strcmp(rest, "/members/") == 0) {
        if (m != EVHTTP_REQ_POST) {
            evhttp_add_header(evhttp_request_get_output_headers(req), "Allow", "POST");
            kr_admin_reply_error(req, 405, "Method Not Allowed",
                                 "/api/cluster/members takes POST {\"id\", \"raft\"}");
            return;
        }
        size_t len;
        const char *body = kr_admin_json_body(req, &len);
        uint64_t id;
        char raft[KR_NODE_ADDR_MAX + 1], why[300];
        if (body == NULL)
            return;
        if (add_body(body, len, &id, raft, sizeof raft, why, sizeof why) < 0) {
            kr_admin_reply_error(req, 400, "Bad Request", why);
            return;
        }
        change(a, req, true, id, raft);
        return;
    }
    if (strncmp(rest, "/members/", 9) == 0) {
        char *end;
        unsigned long long id = strtoull(rest + 9, &end, 10);
        if (m != EVHTTP_REQ_DELETE) {
            evhttp_add_header(evhttp_request_get_output_headers(req), "Allow", "DELETE");
            kr_admin_reply_error(req, 405, "Method Not Allowed",
                                 "/api/cluster/members/N takes DELETE");
        } else if (rest[9] < '0' || rest[9] > '9' || *end != '\0' || id == 0) {
            kr_admin_reply_error(req, 400, "Bad Request", "the node id is a number above 0");
        } else {
            change(a, req, false, id, NULL);
        }
        return;
    }
    kr_admin_reply_error(req, 404, "Not Found",
                         "no such path; see /api/cluster and /api/cluster/members");
}
