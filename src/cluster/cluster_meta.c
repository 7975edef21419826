/*
 * cluster/cluster_meta.c - the cluster's metadata as raft's state machine:
 * its id and where each node is reached, applied on the raft thread, kept
 * whole in every snapshot; and what the raft port answers to probes once
 * raft runs (cluster_int.h).
 */
#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cluster/cluster_int.h"
#include "cluster/cmd.h"
#include "proto/cbor.h"
#include "util/log.h"

#define SNAPSHOT_VERSION 2 /* 1: without the store's part */
#define INFO_VERSION     1

int kr_cluster_write_file(const char *path, const char *text)
{
    char tmp[4200];
    if (snprintf(tmp, sizeof tmp, "%s.tmp", path) >= (int)sizeof tmp) {
        errno = ENAMETOOLONG;
        return -1;
    }
    int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0640);
    if (fd < 0)
        return -1;
    size_t n = strlen(text);
    int ok = write(fd, text, n) == (ssize_t)n && fsync(fd) == 0;
    int e = errno;
    close(fd);
    if (!ok || rename(tmp, path) < 0) {
        if (ok)
            e = errno;
        unlink(tmp);
        errno = e;
        return -1;
    }
    char dir[4200];
    snprintf(dir, sizeof dir, "%s", path);
    int dfd = open(dirname(dir), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (dfd >= 0) {
        (void)fsync(dfd);
        close(dfd);
    }
    return 0;
}

void kr_cluster_set_why(kr_cluster *c, const char *why)
{
    pthread_mutex_lock(&c->mu);
    bool changed = strcmp(c->why, why) != 0;
    snprintf(c->why, sizeof c->why, "%s", why);
    pthread_mutex_unlock(&c->mu);
    if (changed && why[0] != '\0')
        kr_log(KR_LOG_INFO, "cluster", KR_LOG_STR("state", why));
}

size_t kr_cluster_encode_info(const char *data, const char *kafka, uint8_t *out, size_t cap)
{
    kr_buf b;
    kr_buf_init(&b, cap);
    kr_cbor_put_array(&b, 3);
    kr_cbor_put_uint(&b, INFO_VERSION);
    kr_cbor_put_cstr(&b, data);
    if (kafka != NULL && kafka[0] != '\0')
        kr_cbor_put_cstr(&b, kafka);
    else
        kr_cbor_put_null(&b);
    size_t n = 0;
    if (!b.failed) {
        memcpy(out, b.data, b.len);
        n = b.len;
    }
    kr_buf_free(&b);
    return n;
}

/* Copy a text item into out (cap bytes). @return 0, or -1 when it is not
 * a text of 1..cap-1 bytes. */
static int text_into(const kr_cbor_item *it, char *out, size_t cap)
{
    if (it->kind != KR_CBOR_TEXT || it->str == NULL || it->str_len == 0 || it->str_len >= cap)
        return -1;
    memcpy(out, it->str, it->str_len);
    out[it->str_len] = '\0';
    return strlen(out) == it->str_len ? 0 : -1;
}

/* [1, data, kafka|null] into *out. @return 0, or -1 when malformed. */
static int decode_info(const uint8_t *p, size_t len, kr_node_info *out)
{
    kr_cbor_item a, v, d, k;
    kr_cbor_iter it;
    if (kr_cbor_read_exact(p, len, &a) < 0 || a.kind != KR_CBOR_ARRAY || a.u != 3)
        return -1;
    kr_cbor_iter_init(&it, &a);
    if (kr_cbor_iter_next(&it, &v) != 1 || v.kind != KR_CBOR_UINT || v.u != INFO_VERSION ||
        kr_cbor_iter_next(&it, &d) != 1 || text_into(&d, out->data, sizeof out->data) < 0 ||
        kr_cbor_iter_next(&it, &k) != 1)
        return -1;
    out->kafka[0] = '\0';
    if (k.kind != KR_CBOR_NULL && text_into(&k, out->kafka, sizeof out->kafka) < 0)
        return -1;
    return 0;
}

/* Put `in` into the table (replacing the entry of its id). Under mu. */
static void upsert(kr_node_info *tab, unsigned *n, const kr_node_info *in)
{
    for (unsigned i = 0; i < *n; i++) {
        if (tab[i].id == in->id) {
            tab[i] = *in;
            return;
        }
    }
    if (*n < KR_NODE_MAX_MEMBERS)
        tab[(*n)++] = *in;
}

void kr_cluster_heard_info(void *arg, uint64_t id, const char *address, const uint8_t *info,
                           size_t len)
{
    kr_cluster *c = arg;
    kr_node_info ni = {.id = id};
    if (decode_info(info, len, &ni) < 0) {
        kr_log(KR_LOG_WARN, "raft peer sent an info this node cannot read",
               KR_LOG_STR("peer", address));
        return;
    }
    pthread_mutex_lock(&c->mu);
    upsert(c->heard, &c->n_heard, &ni);
    pthread_mutex_unlock(&c->mu);
}

int kr_cluster_info_of(kr_cluster *c, uint64_t id, kr_node_info *out)
{
    int found = 0;
    pthread_mutex_lock(&c->mu);
    for (unsigned i = 0; i < c->n_applied && !found; i++) {
        if (c->applied[i].id == id) {
            *out = c->applied[i];
            found = 1;
        }
    }
    pthread_mutex_unlock(&c->mu);
    return found;
}

/* The cluster id is known: DATA/cluster says this node belongs to it (a
 * node whose raft state goes missing then refuses to start instead of
 * bootstrapping another cluster). */
static void note_cluster_id(kr_cluster *c, const char *id)
{
    char text[KR_CLUSTER_ID_MAX + 2];
    snprintf(text, sizeof text, "%s\n", id);
    if (kr_cluster_write_file(c->marker, text) < 0)
        kr_log(KR_LOG_WARN, "cannot write the cluster marker", KR_LOG_STR("path", c->marker),
               KR_LOG_STR("reason", strerror(errno)));
}

/* ---- the state machine (raft thread) ---- */

static int fsm_apply(void *arg, uint64_t index, const void *data, size_t len)
{
    kr_cluster *c = arg;
    kr_cmd cmd;
    char err[256];
    if (kr_cmd_decode(data, len, &cmd, err, sizeof err) < 0) {
        kr_log(KR_LOG_ERROR, "raft command cannot be applied; this node stops applying",
               KR_LOG_U64("index", index), KR_LOG_STR("reason", err));
        return -1;
    }
    switch (cmd.type) {
    case KR_CMD_CLUSTER_ID: {
        char id[KR_CLUSTER_ID_MAX + 1];
        snprintf(id, sizeof id, "%.*s", (int)cmd.name.len, (const char *)cmd.name.ptr);
        pthread_mutex_lock(&c->mu);
        bool first = c->cluster_id[0] == '\0'; /* the first one named wins */
        if (first)
            snprintf(c->cluster_id, sizeof c->cluster_id, "%s", id);
        pthread_mutex_unlock(&c->mu);
        if (first) {
            note_cluster_id(c, id);
            kr_log(KR_LOG_INFO, "cluster named", KR_LOG_STR("cluster", id));
        }
        return 0;
    }
    case KR_CMD_NODE_INFO: {
        kr_node_info ni = {.id = cmd.node};
        snprintf(ni.data, sizeof ni.data, "%.*s", (int)cmd.addr.len, (const char *)cmd.addr.ptr);
        snprintf(ni.kafka, sizeof ni.kafka, "%.*s", (int)cmd.kafka.len,
                 (const char *)cmd.kafka.ptr);
        pthread_mutex_lock(&c->mu);
        upsert(c->applied, &c->n_applied, &ni);
        pthread_mutex_unlock(&c->mu);
        return 0;
    }
    default:
        /* The store's: applied on the loop, in log order (replica.h). */
        if (c->replica != NULL) {
            if (kr_replica_push(c->replica, index, data, len) == 0)
                return 0;
            kr_log(KR_LOG_ERROR, "out of memory queueing a raft command for the store",
                   KR_LOG_U64("index", index));
            return -1;
        }
        kr_log(KR_LOG_ERROR, "raft command of the store reached a node that does not apply them",
               KR_LOG_U64("index", index), KR_LOG_STR("command", kr_cmd_name(cmd.type)));
        return -1;
    }
}

/* [2, cluster_id, [[id, data, kafka|null]...], store|null]: `store` the
 * replica's part (replica.h), taken only once the store holds every
 * command the snapshot covers - the log before it is dropped, and a
 * restart does not replay it; the raft thread waits briefly for that
 * (sending no heartbeat meanwhile), else the snapshot is taken later. */
static int fsm_snapshot(void *arg, void **data, size_t *len)
{
    kr_cluster *c = arg;
    kr_buf b;
    kr_buf_init(&b, KR_ENTRY_MAX_BYTES);
    pthread_mutex_lock(&c->mu);
    kr_cbor_put_array(&b, 4);
    kr_cbor_put_uint(&b, SNAPSHOT_VERSION);
    kr_cbor_put_cstr(&b, c->cluster_id);
    kr_cbor_put_array(&b, c->n_applied);
    for (unsigned i = 0; i < c->n_applied; i++) {
        kr_cbor_put_array(&b, 3);
        kr_cbor_put_uint(&b, c->applied[i].id);
        kr_cbor_put_cstr(&b, c->applied[i].data);
        if (c->applied[i].kafka[0] != '\0')
            kr_cbor_put_cstr(&b, c->applied[i].kafka);
        else
            kr_cbor_put_null(&b);
    }
    pthread_mutex_unlock(&c->mu);
    if (c->replica == NULL)
        kr_cbor_put_null(&b);
    else if (kr_replica_snapshot(c->replica, KR_CLUSTER_SNAPSHOT_WAIT_MS, &b) < 0)
        b.failed = true;
    if (b.failed) {
        kr_buf_free(&b);
        return -1;
    }
    *data = b.data; /* the buffer's memory is malloc'd: ours to hand over */
    *len = b.len;
    return 0;
}

static int fsm_restore(void *arg, const void *data, size_t len)
{
    kr_cluster *c = arg;
    kr_cbor_item a, v, id, list, e, store = {.kind = KR_CBOR_NULL};
    kr_cbor_iter it, li;
    char cid[KR_CLUSTER_ID_MAX + 1] = "";
    kr_node_info tab[KR_NODE_MAX_MEMBERS];
    unsigned n = 0;
    if (kr_cbor_read_exact(data, len, &a) < 0 || a.kind != KR_CBOR_ARRAY || a.u < 3 || a.u > 4)
        goto bad;
    kr_cbor_iter_init(&it, &a);
    if (kr_cbor_iter_next(&it, &v) != 1 || v.kind != KR_CBOR_UINT || v.u != a.u - 2 ||
        kr_cbor_iter_next(&it, &id) != 1 || id.kind != KR_CBOR_TEXT ||
        id.str_len > KR_CLUSTER_ID_MAX || kr_cbor_iter_next(&it, &list) != 1 ||
        list.kind != KR_CBOR_ARRAY)
        goto bad;
    if (id.str_len > 0 && text_into(&id, cid, sizeof cid) < 0)
        goto bad;
    kr_cbor_iter_init(&li, &list);
    while (kr_cbor_iter_next(&li, &e) == 1) {
        kr_cbor_item nid, d, k;
        kr_cbor_iter ei;
        if (e.kind != KR_CBOR_ARRAY || e.u != 3 || n == KR_NODE_MAX_MEMBERS)
            goto bad;
        kr_cbor_iter_init(&ei, &e);
        kr_node_info *ni = &tab[n];
        memset(ni, 0, sizeof *ni);
        if (kr_cbor_iter_next(&ei, &nid) != 1 || nid.kind != KR_CBOR_UINT ||
            kr_cbor_iter_next(&ei, &d) != 1 || text_into(&d, ni->data, sizeof ni->data) < 0 ||
            kr_cbor_iter_next(&ei, &k) != 1 ||
            (k.kind != KR_CBOR_NULL && text_into(&k, ni->kafka, sizeof ni->kafka) < 0))
            goto bad;
        ni->id = nid.u;
        n++;
    }
    if (a.u == 4 && kr_cbor_iter_next(&it, &store) != 1)
        goto bad;
    pthread_mutex_lock(&c->mu);
    bool named = c->cluster_id[0] == '\0' && cid[0] != '\0';
    snprintf(c->cluster_id, sizeof c->cluster_id, "%s", cid);
    memcpy(c->applied, tab, n * sizeof *tab);
    c->n_applied = n;
    pthread_mutex_unlock(&c->mu);
    if (named)
        note_cluster_id(c, cid);
    if (c->replica != NULL && store.kind == KR_CBOR_ARRAY &&
        kr_replica_restore(c->replica, store.raw, store.raw_len) < 0) {
        kr_log(KR_LOG_ERROR, "out of memory restoring a raft snapshot");
        return -1;
    }
    return 0;
bad:
    kr_log(KR_LOG_ERROR, "raft snapshot is not one of this krappyd's metadata");
    return -1;
}

kr_fsm_hooks kr_cluster_fsm_hooks(kr_cluster *c)
{
    return (kr_fsm_hooks){
        .arg = c, .apply = fsm_apply, .snapshot = fsm_snapshot, .restore = fsm_restore};
}

/* ---- probe answers while raft runs (raft thread) ---- */

/* Queue a membership change for the loop, once. Under mu. */
static void want_task(kr_cluster *c, kr_task_kind kind, uint64_t id, const char *addr)
{
    for (unsigned i = 0; i < c->n_tasks; i++)
        if (c->tasks[i].kind == kind && c->tasks[i].id == id)
            return;
    if (c->n_tasks == KR_CLUSTER_MAX_TASKS)
        return; /* the asker comes back */
    kr_task *t = &c->tasks[c->n_tasks++];
    t->kind = kind;
    t->id = id;
    snprintf(t->addr, sizeof t->addr, "%s", addr != NULL ? addr : "");
}

/*
 * A JOIN on the leader (probe.h): remove the lost incarnation of the same
 * id first, then let the node start, then add it and make it a voter.
 */
static void answer_join(kr_cluster *c, const kr_node_status *s, const kr_probe_req *q,
                        kr_probe_reply *r)
{
    const kr_node_member *same_id = NULL, *same_addr = NULL;
    for (unsigned i = 0; i < s->n_members; i++) {
        if (s->members[i].id == q->from)
            same_id = &s->members[i];
        else if (strcmp(s->members[i].addr, q->addr) == 0)
            same_addr = &s->members[i];
    }
    if (same_id != NULL && strcmp(same_id->addr, q->addr) != 0) {
        r->answer = KR_JOIN_REFUSED;
        snprintf(r->message, sizeof r->message,
                 "node id %llu is a member at %.80s, not at %.80s; start this node with "
                 "another --node-id",
                 (unsigned long long)q->from, same_id->addr, q->addr);
        return;
    }
    if (same_addr != NULL) {
        r->answer = KR_JOIN_REFUSED;
        snprintf(r->message, sizeof r->message,
                 "raft address %.80s belongs to member %llu; remove it first (krappy cluster "
                 "remove %llu)",
                 q->addr, (unsigned long long)same_addr->id, (unsigned long long)same_addr->id);
        return;
    }
    pthread_mutex_lock(&c->mu);
    if (same_id != NULL && !q->running && same_id->role == KR_MEMBER_VOTER) {
        /* It lost its state, votes included: out first, then in anew. */
        want_task(c, KR_TASK_REMOVE, q->from, NULL);
        r->answer = KR_JOIN_WAIT;
        snprintf(r->message, sizeof r->message, "removing the old node %llu first",
                 (unsigned long long)q->from);
    } else if (same_id != NULL && !q->running) {
        r->answer = KR_JOIN_START; /* added already (never voted): start */
    } else if (same_id != NULL && same_id->role == KR_MEMBER_VOTER) {
        r->answer = KR_JOIN_DONE;
    } else if (same_id != NULL) {
        want_task(c, KR_TASK_ASSIGN, q->from, NULL);
        r->answer = KR_JOIN_WAIT;
        snprintf(r->message, sizeof r->message, "catching up before it votes");
    } else if (!q->running) {
        r->answer = KR_JOIN_START;
    } else {
        want_task(c, KR_TASK_ADD, q->from, q->addr);
        r->answer = KR_JOIN_WAIT;
        snprintf(r->message, sizeof r->message, "adding it");
    }
    pthread_mutex_unlock(&c->mu);
}

long kr_cluster_answer_probe(void *arg, const uint8_t *req, size_t len, uint8_t *reply, size_t cap)
{
    kr_cluster *c = arg;
    kr_probe_req q;
    if (kr_probe_req_decode(req, len, &q) < 0)
        return -1;
    kr_probe_reply r = {.state = KR_PROBE_STARTING, .node = c->id, .peers_hash = c->hash};
    pthread_mutex_lock(&c->mu);
    kr_node *n = c->node_shared;
    snprintf(r.cluster_id, sizeof r.cluster_id, "%s", c->cluster_id);
    pthread_mutex_unlock(&c->mu);
    kr_node_status s = {0};
    if (n != NULL) {
        kr_node_get_status(n, &s);
        r.state = KR_PROBE_MEMBER;
        r.leader = s.leader_id;
        snprintf(r.leader_addr, sizeof r.leader_addr, "%s", s.leader_addr);
    }
    if (q.kind == KR_PROBE_JOIN) {
        if (n == NULL || s.state != KR_NODE_LEADER) {
            r.answer = KR_JOIN_NOT_LEADER;
            snprintf(r.message, sizeof r.message, "node %llu does not lead",
                     (unsigned long long)c->id);
        } else {
            answer_join(c, &s, &q, &r);
        }
    }
    return kr_probe_reply_encode(&r, reply, cap);
}
