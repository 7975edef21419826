/*
 * server/cluster_groups.c - consumer groups on a cluster's leader
 * (PROTOCOL.md section 8): what the log holds of a group is its cursor
 * (cluster/cmd.h: GROUP_CREATE, GROUP_CURSORS, GROUP_SEEK, GROUP_DELETE);
 * members, hand-outs and deadlines stay here, in the store's groups, as on
 * a single node.
 *
 * ACKs are applied to the window at once (handlers_group.c) and answered
 * once the cursor they leave is committed. Committing one ACK at a time
 * would cost a raft entry each: the cursors asked for during one loop turn
 * are gathered per topic into one GROUP_CURSORS command, sent when the
 * turn's other callbacks have run (an event activated by the first), and
 * every request of the round is answered from its result.
 *
 * A leader that steps down still holds members and a window that may run
 * ahead of the log: the tick lets them go (kr_server_cluster_tick).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cluster/cmd.h"
#include "server/server.h"
#include "util/grow.h"
#include "util/log.h"

/* A request waiting for its group's cursor to be committed. */
typedef struct cwaiter {
    kr_replica_done done;
    void *arg;
    struct cwaiter *next;
} cwaiter;

/* A group of a round: the cursor sent for it, and who waits for it. */
typedef struct centry {
    char group[KRAPPY_MAX_NAME_BYTES];
    size_t len;
    uint64_t cursor;
    cwaiter *waiters;
} centry;

/* One topic's cursors of one loop turn: one GROUP_CURSORS command. */
typedef struct cround {
    char topic[KRAPPY_MAX_NAME_BYTES];
    size_t len;
    centry *e;
    size_t n, cap;
    struct cround *next;
} cround;

struct kr_cursor_rounds {
    struct event *flush;
    cround *open; /* this turn's, not sent yet */
};

/* ---- rounds ---- */

static void round_free(cround *rd)
{
    for (size_t i = 0; i < rd->n; i++)
        for (cwaiter *w = rd->e[i].waiters, *n; w != NULL; w = n) {
            n = w->next;
            free(w);
        }
    free(rd->e);
    free(rd);
}

/* Answer every request of entry e with res, its cursor as res.first. */
static void entry_answer(centry *e, const kr_store_result *res)
{
    kr_store_result mine = *res;
    mine.first = e->cursor;
    while (e->waiters != NULL) {
        cwaiter *w = e->waiters;
        e->waiters = w->next;
        w->done(w->arg, &mine);
        free(w);
    }
}

/* The round's command was applied here (or failed): answer everyone. */
static void round_done(void *arg, const kr_store_result *res)
{
    cround *rd = arg;
    for (size_t i = 0; i < rd->n; i++)
        entry_answer(&rd->e[i], res);
    round_free(rd);
}

static void round_fail(cround *rd, krappy_err err, const char *msg)
{
    kr_store_result res = {.err = err};
    snprintf(res.msg, sizeof res.msg, "%s", msg);
    round_done(rd, &res);
}

/* Send one round: the cursors its groups have now (a group deleted since
 * is answered NOT_FOUND). */
static void round_send(kr_server *srv, cround *rd)
{
    char msg[256];
    kr_topic *t = kr_store_topic(srv->store, (const uint8_t *)rd->topic, rd->len);
    if (t == NULL) {
        snprintf(msg, sizeof msg, "topic '%.*s' was deleted before the ACK was committed",
                 (int)rd->len, rd->topic);
        round_fail(rd, KRAPPY_E_NO_SUCH_TOPIC, msg);
        return;
    }
    size_t live = 0;
    for (size_t i = 0; i < rd->n; i++) {
        centry *e = &rd->e[i];
        kr_tgroup *tg = kr_store_group(t, (const uint8_t *)e->group, e->len);
        if (tg == NULL) {
            kr_store_result res = {.err = KRAPPY_E_NOT_FOUND};
            snprintf(res.msg, sizeof res.msg,
                     "group '%.*s' was deleted before the ACK was committed", (int)e->len,
                     e->group);
            entry_answer(e, &res);
            continue;
        }
        e->cursor = kr_store_group_cursor(tg);
        rd->e[live++] = *e;
    }
    rd->n = live;
    if (live == 0) {
        round_free(rd);
        return;
    }
    kr_str topic = {(const uint8_t *)rd->topic, rd->len};
    kr_buf_reset(&srv->cmd);
    kr_cmd_put_cursors_begin(&srv->cmd, &topic, rd->n);
    for (size_t i = 0; i < rd->n; i++) {
        kr_str g = {(const uint8_t *)rd->e[i].group, rd->e[i].len};
        kr_cmd_put_cursor(&srv->cmd, &g, rd->e[i].cursor);
    }
    krappy_err e = kr_server_cluster_command(srv, round_done, rd, msg, sizeof msg);
    if (e != KRAPPY_OK)
        round_fail(rd, e, msg);
}

static void on_flush(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    kr_server *srv = arg;
    cround *rd = srv->rounds->open;
    srv->rounds->open = NULL;
    while (rd != NULL) {
        cround *next = rd->next;
        rd->next = NULL;
        round_send(srv, rd);
        rd = next;
    }
}

/* The rounds, made on the first ACK. @return NULL: no memory. */
static struct kr_cursor_rounds *rounds(kr_server *srv)
{
    if (srv->rounds != NULL)
        return srv->rounds;
    struct kr_cursor_rounds *rs = calloc(1, sizeof *rs);
    if (rs == NULL)
        return NULL;
    rs->flush = event_new(srv->base, -1, 0, on_flush, srv);
    if (rs->flush == NULL) {
        free(rs);
        return NULL;
    }
    srv->rounds = rs;
    return rs;
}

/* tg's entry in this turn's round of its topic, made when missing.
 * @return NULL: no memory. */
static centry *entry_of(struct kr_cursor_rounds *rs, kr_tgroup *tg)
{
    const kr_topic *t = tg->t;
    size_t glen;
    const char *gname = kr_store_group_name(tg, &glen);
    cround *rd = rs->open;
    while (rd != NULL && (rd->len != t->name_len || memcmp(rd->topic, t->name, rd->len) != 0))
        rd = rd->next;
    if (rd == NULL) {
        if ((rd = calloc(1, sizeof *rd)) == NULL)
            return NULL;
        memcpy(rd->topic, t->name, t->name_len);
        rd->len = t->name_len;
        rd->next = rs->open;
        rs->open = rd;
    }
    for (size_t i = 0; i < rd->n; i++)
        if (rd->e[i].len == glen && memcmp(rd->e[i].group, gname, glen) == 0)
            return &rd->e[i];
    centry *room = kr_grow(rd->e, rd->n, &rd->cap, sizeof *room, 4);
    if (room == NULL)
        return NULL; /* an empty round is sent as nothing */
    rd->e = room;
    centry *e = &rd->e[rd->n++];
    *e = (centry){.len = glen};
    memcpy(e->group, gname, glen);
    return e;
}

void kr_server_cluster_cursor(kr_server *srv, kr_tgroup *tg, kr_replica_done done, void *arg)
{
    struct kr_cursor_rounds *rs = rounds(srv);
    centry *e = rs != NULL ? entry_of(rs, tg) : NULL;
    cwaiter *w = e != NULL ? malloc(sizeof *w) : NULL;
    if (w == NULL) {
        kr_store_result res = {.err = KRAPPY_E_STORAGE};
        snprintf(res.msg, sizeof res.msg, "out of memory sending a group cursor to the cluster");
        done(arg, &res);
        return;
    }
    *w = (cwaiter){.done = done, .arg = arg, .next = e->waiters};
    e->waiters = w;
    event_active(rs->flush, EV_WRITE, 0);
}

void kr_server_cluster_rounds_free(kr_server *srv)
{
    struct kr_cursor_rounds *rs = srv->rounds;
    if (rs == NULL)
        return;
    cround *rd = rs->open;
    while (rd != NULL) {
        cround *next = rd->next;
        round_fail(rd, KRAPPY_E_SHUTTING_DOWN,
                   "the server is shutting down; the ACK's outcome is unknown");
        rd = next;
    }
    event_free(rs->flush);
    free(rs);
    srv->rounds = NULL;
}

/* ---- leadership lost ---- */

void kr_server_cluster_tick(kr_server *srv)
{
    bool leads = kr_cluster_is_leader(srv->cluster);
    if (srv->led && !leads) {
        kr_topic **all;
        size_t n = kr_store_topics(srv->store, &all), groups = 0;
        for (size_t i = 0; i < n; i++) {
            kr_tgroup *const *gs;
            size_t ng = kr_store_groups(all[i], &gs);
            for (size_t j = 0; j < ng; j++) {
                kr_ops_forget(srv, all[i], gs[j]);
                kr_group_seek(gs[j]->g, gs[j]->logged);
                kr_store_wake_group(srv->store, gs[j]);
            }
            groups += ng;
        }
        if (groups > 0)
            kr_log(KR_LOG_INFO,
                   "no longer the leader: consumer groups put back at their committed cursors, "
                   "their members let go",
                   KR_LOG_U64("groups", groups));
    }
    srv->led = leads;
}

/* ---- CONSUMER_REGISTER ---- */

/* What a registration needs once the log's GROUP_CREATE applied. */
typedef struct join_ctx {
    uint8_t topic[KRAPPY_MAX_NAME_BYTES], group[KRAPPY_MAX_NAME_BYTES],
        member[KRAPPY_MAX_NAME_BYTES];
    size_t topic_len, group_len, member_len;
    bool has_member, auto_ack;
    uint64_t ack_wait_ms;
} join_ctx;

/* The group exists on every node now: join it here. */
static void joined(void *arg, const kr_store_result *res)
{
    kr_req *r = arg;
    kr_conn *c = r->conn;
    join_ctx *j = r->ctx;
    r->ctx = NULL;
    kr_topic *t =
        res->err == KRAPPY_OK ? kr_store_topic(c->srv->store, j->topic, j->topic_len) : NULL;
    kr_tgroup *tg = t != NULL ? kr_store_group(t, j->group, j->group_len) : NULL;
    kr_member *m = NULL;
    void *taken = NULL;
    if (res->err != KRAPPY_OK)
        kr_server_write_error(r, res);
    else if (tg == NULL)
        kr_req_error(r, KRAPPY_E_NOT_FOUND,
                     "the group was deleted while the consumer was registering; register again",
                     NULL);
    else if (c->bev == NULL) /* closed meanwhile: nobody to hold a member */
        kr_req_error(r, KRAPPY_E_SHUTTING_DOWN, "the connection closed", NULL);
    else if ((m = kr_group_join(tg->g, j->has_member ? j->member : NULL, j->member_len, j->auto_ack,
                                j->ack_wait_ms, c, &taken)) == NULL)
        kr_req_error(r, KRAPPY_E_STORAGE, "out of memory registering the consumer", NULL);
    if (m == NULL) {
        free(j);
        return;
    }
    kr_consumer_bind(c, tg, m, taken);
    kr_str topic = {j->topic, j->topic_len}, group = {j->group, j->group_len},
           member = {(const uint8_t *)m->name, m->name_len};
    kr_buf_reset(&c->enc);
    kr_enc_ok_consumer(&c->enc, r->cid, &topic, &group, &member, kr_store_group_cursor(tg));
    free(j);
    kr_req_reply(r, KRAPPY_T_OK, c->enc.data, c->enc.len);
}

kr_hresult kr_server_cluster_join(kr_conn *c, kr_req *r, const kr_request *req, kr_topic *t)
{
    const typeof(req->u.consumer_register) *q = &req->u.consumer_register;
    kr_tgroup *tg = kr_store_group(t, q->group.ptr, q->group.len);
    uint64_t at = 0;
    if (tg != NULL) {
        at = kr_store_group_cursor(tg);
    } else {
        static const kr_seek_kind as_seek[] = {[KR_START_EARLIEST] = KR_SEEK_EARLIEST,
                                               [KR_START_LATEST] = KR_SEEK_LATEST,
                                               [KR_START_OFFSET] = KR_SEEK_OFFSET};
        krappy_err e = kr_store_seek_target(c->srv->store, t, as_seek[q->start], q->start_offset,
                                            &at, c->errmsg, sizeof c->errmsg);
        if (e != KRAPPY_OK) {
            kr_error_extra extra = {
                .has_range = e == KRAPPY_E_OFFSET_OUT_OF_RANGE, .first = t->first, .next = t->next};
            kr_req_error(r, e, c->errmsg, &extra);
            return KR_H_DONE;
        }
    }
    join_ctx *j = calloc(1, sizeof *j);
    if (j == NULL) {
        kr_req_error(r, KRAPPY_E_STORAGE, "out of memory registering a consumer", NULL);
        return KR_H_DONE;
    }
    memcpy(j->topic, t->name, t->name_len);
    j->topic_len = t->name_len;
    memcpy(j->group, q->group.ptr, q->group.len);
    j->group_len = q->group.len;
    j->has_member = q->has_member;
    if (q->has_member) {
        memcpy(j->member, q->member.ptr, q->member.len);
        j->member_len = q->member.len;
    }
    j->auto_ack = q->ack == KR_CACK_AUTO;
    j->ack_wait_ms = q->ack_wait_ms;
    kr_consumer_drop(c); /* a rebind: its pending events go back first */
    kr_str topic = {j->topic, j->topic_len}, group = {j->group, j->group_len};
    kr_buf_reset(&c->srv->cmd);
    kr_cmd_put_group_at(&c->srv->cmd, KR_CMD_GROUP_CREATE, &topic, &group, at);
    r->ctx = j;
    return kr_server_cluster_submit(c, r, joined);
}

/* ---- GROUP_SEEK, GROUP_DELETE ---- */

krappy_err kr_server_cluster_group_seek(kr_server *srv, kr_tgroup *tg, kr_seek_kind to,
                                        uint64_t value, kr_store_done done, void *arg, char *msg,
                                        size_t msglen)
{
    uint64_t at;
    krappy_err e = kr_store_seek_target(srv->store, tg->t, to, value, &at, msg, msglen);
    if (e != KRAPPY_OK)
        return e;
    size_t glen;
    const char *gname = kr_store_group_name(tg, &glen);
    kr_str topic = {(const uint8_t *)tg->t->name, tg->t->name_len},
           group = {(const uint8_t *)gname, glen};
    kr_buf_reset(&srv->cmd);
    kr_cmd_put_group_at(&srv->cmd, KR_CMD_GROUP_SEEK, &topic, &group, at);
    return kr_server_cluster_command(srv, done, arg, msg, msglen);
}

krappy_err kr_server_cluster_group_delete(kr_server *srv, kr_tgroup *tg, kr_store_done done,
                                          void *arg, char *msg, size_t msglen)
{
    size_t glen;
    const char *gname = kr_store_group_name(tg, &glen);
    kr_str topic = {(const uint8_t *)tg->t->name, tg->t->name_len},
           group = {(const uint8_t *)gname, glen};
    kr_buf_reset(&srv->cmd);
    kr_cmd_put_group_delete(&srv->cmd, &topic, &group);
    return kr_server_cluster_command(srv, done, arg, msg, msglen);
}
