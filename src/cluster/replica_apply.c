/*
 * cluster/replica_apply.c - each committed store command applied to this
 * node's store, in log order (see replica.h); its result goes to
 * kr_replica_complete.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cluster/cmd.h"
#include "cluster/replica_int.h"
#include "store/topic_config.h"
#include "util/log.h"

static void stored_cb(void *arg, const kr_store_result *res)
{
    kr_replica_complete(arg, res);
}

/* A topic made by a PUBLISH that found none: its creation's result is the
 * PUBLISH's (queued behind it). */
void kr_replica_created_quietly(void *arg, const kr_store_result *res)
{
    (void)arg;
    if (res->err != KRAPPY_OK)
        kr_log(KR_LOG_ERROR, "topic creation for a replicated PUBLISH failed",
               KR_LOG_STR("reason", res->msg));
}

/* ---- apply (loop) ---- */

kr_topic *kr_replica_find_or_create(kr_replica *rp, const kr_str *name, kr_store_result *res)
{
    kr_topic *t = kr_store_topic(rp->store, name->ptr, name->len);
    if (t != NULL)
        return t;
    if (kr_store_register(rp->store, name->ptr, name->len, &t, kr_replica_created_quietly, NULL,
                          res) < 0)
        return NULL;
    return t;
}

static void apply_publish(kr_replica *rp, item *it, const kr_cmd *cmd)
{
    kr_store_result res = {.err = KRAPPY_OK};
    kr_topic *t = kr_replica_find_or_create(rp, &cmd->topic, &res);
    if (t == NULL) {
        kr_replica_complete(it, &res);
        return;
    }
    kr_request req;
    char msg[256];
    krappy_err rc = kr_req_decode(KRAPPY_T_PUBLISH, cmd->payload.ptr, cmd->payload.len,
                                  &rp->scratch, &req, msg, sizeof msg);
    uint64_t pos = kr_replica_pos(it->index, it->sub);
    if (rc == KRAPPY_OK && pos <= kr_replica_pos_held(t->raft_index)) {
        /* Held already: a restart replays what its stream has. */
        rp->skipped++;
        res.count = req.u.publish.count;
        kr_replica_complete(it, &res);
        return;
    }
    uint64_t bad = UINT64_MAX;
    kr_idem idem = {.id = cmd->producer.ptr,
                    .id_len = cmd->producer.len,
                    .epoch = (uint32_t)cmd->epoch,
                    .seq = req.u.publish.seq};
    if (rc == KRAPPY_OK)
        rc = kr_store_publish_applied(rp->store, t, &req, &rp->scratch,
                                      cmd->has_producer ? &idem : NULL, cmd->value, pos, stored_cb,
                                      it, msg, sizeof msg, &bad);
    if (rc != KRAPPY_OK) {
        /* Every node refuses it alike (the same request, the same state). */
        res.err = rc;
        res.seq = idem.expected;
        res.first = bad;
        snprintf(res.msg, sizeof res.msg, "%s", msg);
        kr_replica_complete(it, &res);
    }
}

/* An idempotent registration: a new epoch, unless the producer has the
 * command's already (a restart's replay, or a registration racing another
 * of the same id: both then hold that epoch). No connection holds it here:
 * the leader's connection learns its epoch from the result. */
static void apply_register(kr_replica *rp, item *it, const kr_cmd *cmd)
{
    kr_store_result res = {.err = KRAPPY_OK};
    kr_topic *t = kr_store_topic(rp->store, cmd->topic.ptr, cmd->topic.len);
    uint32_t epoch = kr_store_producer_epoch(t, cmd->name.ptr, cmd->name.len, &res.seq);
    if (epoch >= cmd->epoch) {
        rp->skipped++;
        res.first = t->next;
        res.epoch = epoch;
        kr_replica_complete(it, &res);
        return;
    }
    if (kr_store_producer_register(rp->store, cmd->topic.ptr, cmd->topic.len, cmd->name.ptr,
                                   cmd->name.len, &t, stored_cb, it, &res) < 0) {
        kr_replica_complete(it, &res);
        return;
    }
    kr_store_producer_release(rp->store, t, cmd->name.ptr, cmd->name.len);
}

/* ---- consumer groups (replica.h) ---- */

/* The topic or group a command names is not there (deleted before the
 * command's turn): every node refuses it alike. */
static void missing(item *it, krappy_err err, const char *what, const kr_str *name)
{
    kr_store_result res = {.err = err};
    snprintf(res.msg, sizeof res.msg, "%s '%.*s' does not exist (deleted meanwhile?)", what,
             (int)name->len, (const char *)name->ptr);
    kr_replica_complete(it, &res);
}

/* The command's group, or NULL with the command answered NO_SUCH_TOPIC
 * or NOT_FOUND. */
static kr_tgroup *need_group(kr_replica *rp, item *it, const kr_cmd *cmd)
{
    kr_topic *t = kr_store_topic(rp->store, cmd->topic.ptr, cmd->topic.len);
    kr_tgroup *tg = t != NULL ? kr_store_group(t, cmd->name.ptr, cmd->name.len) : NULL;
    if (t == NULL)
        missing(it, KRAPPY_E_NO_SUCH_TOPIC, "topic", &cmd->topic);
    else if (tg == NULL)
        missing(it, KRAPPY_E_NOT_FOUND, "group", &cmd->name);
    return tg;
}

/* A GROUP_CREATE of a group that exists is a no-op (a replay, or a
 * registration that only waited for the log): res.first is its cursor. */
static void apply_group_create(kr_replica *rp, item *it, const kr_cmd *cmd)
{
    kr_store_result res = {.err = KRAPPY_OK};
    kr_topic *t = kr_store_topic(rp->store, cmd->topic.ptr, cmd->topic.len);
    if (t == NULL) {
        missing(it, KRAPPY_E_NO_SUCH_TOPIC, "topic", &cmd->topic);
        return;
    }
    kr_tgroup *tg = kr_store_group(t, cmd->name.ptr, cmd->name.len);
    if (tg != NULL) {
        res.first = kr_store_group_cursor(tg);
        kr_replica_complete(it, &res);
        return;
    }
    if (kr_store_group_apply(rp->store, t, cmd->name.ptr, cmd->name.len, cmd->value, stored_cb, it,
                             &res) < 0)
        kr_replica_complete(it, &res);
}

/* One of a GROUP_CURSORS' jobs finished: the command completes with the
 * last (with the first error, if any). */
static void cursor_written(void *arg, const kr_store_result *res)
{
    item *it = arg;
    if (res->err != KRAPPY_OK && it->res.err == KRAPPY_OK)
        it->res = *res;
    if (--it->jobs == 0) {
        kr_store_result all = it->res;
        kr_replica_complete(it, &all);
    }
}

/* A round of ACKs: each group named moves up to its cursor, and that
 * cursor is written. A group deleted since is skipped (by every node). */
static void apply_group_cursors(kr_replica *rp, item *it, const kr_cmd *cmd)
{
    kr_topic *t = kr_store_topic(rp->store, cmd->topic.ptr, cmd->topic.len);
    if (t == NULL) {
        missing(it, KRAPPY_E_NO_SUCH_TOPIC, "topic", &cmd->topic);
        return;
    }
    kr_cmd_cursor_iter ci;
    kr_str g;
    uint64_t cursor;
    it->res = (kr_store_result){.err = KRAPPY_OK};
    it->jobs = 1; /* this loop's own, dropped below */
    kr_cmd_cursor_iter_init(&ci, cmd);
    while (kr_cmd_cursor_next(&ci, &g, &cursor)) {
        kr_store_result res;
        if (kr_store_group(t, g.ptr, g.len) == NULL)
            continue;
        it->jobs++;
        if (kr_store_group_apply(rp->store, t, g.ptr, g.len, cursor, cursor_written, it, &res) < 0)
            cursor_written(it, &res);
    }
    kr_store_result done = {.err = KRAPPY_OK};
    cursor_written(it, &done);
}

static void apply_group_seek(kr_replica *rp, item *it, const kr_cmd *cmd)
{
    kr_tgroup *tg = need_group(rp, it, cmd);
    if (tg == NULL)
        return;
    kr_store_result res = {.err = KRAPPY_OK};
    res.err = kr_store_group_seek(rp->store, tg, KR_SEEK_OFFSET, cmd->value, stored_cb, it, res.msg,
                                  sizeof res.msg);
    if (res.err == KRAPPY_OK)
        tg->logged = cmd->value;
    else
        kr_replica_complete(it, &res);
}

/* The group goes on every node; on the leader its members lose their
 * registrations. */
static void apply_group_delete(kr_replica *rp, item *it, const kr_cmd *cmd)
{
    kr_tgroup *tg = need_group(rp, it, cmd);
    if (tg == NULL)
        return;
    kr_store_result res = {.err = KRAPPY_OK};
    res.err = kr_store_group_delete(rp->store, tg, stored_cb, it, res.msg, sizeof res.msg);
    if (res.err != KRAPPY_OK) {
        kr_replica_complete(it, &res);
        return;
    }
    if (rp->forget != NULL)
        rp->forget(rp->forget_arg, tg->t, tg);
}

/* A Kafka group's committed offset, written as on a single node. */
static void apply_koffset(kr_replica *rp, item *it, const kr_cmd *cmd)
{
    kr_topic *t = kr_store_topic(rp->store, cmd->topic.ptr, cmd->topic.len);
    if (t == NULL) {
        missing(it, KRAPPY_E_NO_SUCH_TOPIC, "topic", &cmd->topic);
        return;
    }
    kr_store_result res;
    if (kr_store_koffset_commit(rp->store, t, cmd->name.ptr, cmd->name.len, cmd->value,
                                cmd->has_metadata ? (const char *)cmd->payload.ptr : NULL,
                                cmd->has_metadata ? (int32_t)cmd->payload.len : -1, stored_cb, it,
                                &res) < 0)
        kr_replica_complete(it, &res);
}

/* ---- topics (replica.h) ---- */

/* The topic goes on every node, with all it holds; connections let go of
 * it. A restart's replay deletes it too when the topic here is one made
 * again after this deletion: the log since the snapshot holds every
 * command that made it, and the replay makes it again from them. Skipping
 * instead would leave the old topic's commands replayed before it (a
 * group, a producer's epoch, a setting) on the new one. */
static void apply_topic_delete(kr_replica *rp, item *it, const kr_cmd *cmd)
{
    kr_topic *t = kr_store_topic(rp->store, cmd->topic.ptr, cmd->topic.len);
    kr_store_result res = {.err = KRAPPY_OK};
    if (t == NULL) {
        missing(it, KRAPPY_E_NO_SUCH_TOPIC, "topic", &cmd->topic);
        return;
    }
    res.err = kr_store_delete_topic(rp->store, t, stored_cb, it, res.msg, sizeof res.msg);
    if (res.err != KRAPPY_OK)
        kr_replica_complete(it, &res);
    else if (rp->forget != NULL)
        rp->forget(rp->forget_arg, t, NULL);
}

/* The leader's retention decision: every node retires the segments below
 * it (kr_store_retain). A topic deleted since: nothing to retire. */
static void apply_retention(kr_replica *rp, item *it, const kr_cmd *cmd)
{
    kr_topic *t = kr_store_topic(rp->store, cmd->topic.ptr, cmd->topic.len);
    kr_store_result res = {.err = KRAPPY_OK};
    if (t != NULL)
        kr_store_retain(rp->store, t, cmd->value);
    kr_replica_complete(it, &res);
}

/* A change of settings (creating the topic when it is missing), as a
 * single node makes it. */
static void apply_topic_config(kr_replica *rp, item *it, const kr_cmd *cmd)
{
    kr_topic *t;
    kr_store_result res = {.err = KRAPPY_OK};
    res.err = kr_store_topic_configure(rp->store, cmd->topic.ptr, cmd->topic.len, &cmd->cfg, &t,
                                       stored_cb, it, res.msg, sizeof res.msg);
    if (res.err != KRAPPY_OK)
        kr_replica_complete(it, &res);
}

static void apply_batch(kr_replica *rp, item *it, const kr_cmd *cmd);

/* Apply one decoded command (its strings point into it->data, or into its
 * BATCH's). */
static void apply_cmd(kr_replica *rp, item *it, const kr_cmd *cmd)
{
    kr_store_result res = {.err = KRAPPY_OK};
    switch (cmd->type) {
    case KR_CMD_TOPIC_CREATE: {
        kr_topic *t;
        if (kr_store_register(rp->store, cmd->topic.ptr, cmd->topic.len, &t, stored_cb, it, &res) <
            0)
            kr_replica_complete(it, &res);
        return;
    }
    case KR_CMD_PUBLISH:
        apply_publish(rp, it, cmd);
        return;
    case KR_CMD_PRODUCER_REGISTER:
        apply_register(rp, it, cmd);
        return;
    case KR_CMD_GROUP_CREATE:
        apply_group_create(rp, it, cmd);
        return;
    case KR_CMD_GROUP_CURSORS:
        apply_group_cursors(rp, it, cmd);
        return;
    case KR_CMD_GROUP_SEEK:
        apply_group_seek(rp, it, cmd);
        return;
    case KR_CMD_GROUP_DELETE:
        apply_group_delete(rp, it, cmd);
        return;
    case KR_CMD_KOFFSET_COMMIT:
        apply_koffset(rp, it, cmd);
        return;
    case KR_CMD_TOPIC_DELETE:
        apply_topic_delete(rp, it, cmd);
        return;
    case KR_CMD_TOPIC_CONFIG:
        apply_topic_config(rp, it, cmd);
        return;
    case KR_CMD_RETENTION:
        apply_retention(rp, it, cmd);
        return;
    case KR_CMD_BATCH:
        apply_batch(rp, it, cmd);
        return;
    default:
        res.err = KRAPPY_E_INVALID_ARGUMENT;
        snprintf(res.msg, sizeof res.msg, "%s is not replicated by this krappyd yet",
                 kr_cmd_name(cmd->type));
        kr_replica_complete(it, &res);
        return;
    }
}

/* A sub-command that this node could not apply (the replica halted, or
 * no memory): every node after it would differ, so the replica halts. */
static void sub_refused(kr_replica *rp, item *batch, uint32_t place, const char *why)
{
    kr_store_result res = {.err = KRAPPY_E_STORAGE};
    snprintf(res.msg, sizeof res.msg, "%s", why);
    batch->subs[place - 1] = res;
    kr_replica_halt_because(rp,
                            "a sub-command of a raft BATCH could not be applied; this node "
                            "applies no more until it is restarted",
                            batch->index, place, why);
}

/* One loop turn of the leader's PUBLISHes and registrations: each applied
 * in its place as a command of its own would be (a sub-item each, whose
 * result lands in it->subs); the BATCH completes with its last. */
static void apply_batch(kr_replica *rp, item *it, const kr_cmd *cmd)
{
    it->subs = calloc(cmd->n_subs, sizeof *it->subs);
    if (it->subs == NULL) {
        kr_store_result res = {.err = KRAPPY_E_STORAGE};
        snprintf(res.msg, sizeof res.msg, "out of memory applying a raft BATCH");
        kr_replica_complete(it, &res);
        return;
    }
    it->n_subs = (uint32_t)cmd->n_subs;
    it->res = (kr_store_result){.err = KRAPPY_OK};
    it->jobs = 1; /* this loop's own, dropped below */
    kr_cmd_sub_iter si;
    kr_cmd sub;
    kr_cmd_sub_iter_init(&si, cmd);
    for (uint32_t place = 1; place <= it->n_subs && kr_cmd_sub_next(&si, &sub); place++) {
        item *one = rp->halted ? NULL : calloc(1, sizeof *one);
        if (one == NULL) {
            sub_refused(rp, it, place,
                        rp->halted ? "this node stopped applying the raft log before this write"
                                   : "out of memory applying a raft BATCH");
            continue;
        }
        *one = (item){.index = it->index, .sub = place, .parent = it, .rp = rp};
        it->jobs++;
        apply_cmd(rp, one, &sub);
    }
    if (--it->jobs == 0)
        kr_replica_complete(it, &it->res);
}

void kr_replica_apply(kr_replica *rp, item *it)
{
    kr_cmd cmd;
    char err[256];
    kr_store_result res = {.err = KRAPPY_OK};
    if (kr_cmd_decode(it->data, it->len, &cmd, err, sizeof err) < 0) {
        res.err = KRAPPY_E_STORAGE; /* the raft thread decoded it: cannot happen */
        snprintf(res.msg, sizeof res.msg, "%s", err);
        kr_replica_complete(it, &res);
        return;
    }
    apply_cmd(rp, it, &cmd);
}
