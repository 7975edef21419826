/*
 * cluster/cluster.c - the cluster on the loop thread (cluster.h): the
 * starter thread's hand-over, the tick that watches raft and writes the
 * metadata the leader learnt into the log, status, the leader's addresses,
 * membership changes, and the stop.
 */
#include "cluster/cluster.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include "cluster/cluster_int.h"
#include "cluster/cmd.h"
#include "util/clock.h"
#include "util/log.h"

/* What a node whose raft stopped (RAFT_UNAVAILABLE while running) says. A
 * failed write of the log (entries, term, vote, snapshot) ends the process
 * instead (node.h). */
#define RAFT_HALTED_WHY                                                                            \
    "raft halted on this node (a command or snapshot could not be applied; its log says "          \
    "why): restart this node"

/* ---- the loop's side ---- */

static kr_node *node_of(kr_cluster *c)
{
    return c->node;
}

static krappy_err from_node(kr_node_err e)
{
    switch (e) {
    case KR_NODE_OK:
        return KRAPPY_OK;
    case KR_NODE_NOT_LEADER:
    case KR_NODE_LEADERSHIP_LOST:
        return KRAPPY_E_NOT_LEADER;
    case KR_NODE_SHUTTING_DOWN:
        return KRAPPY_E_SHUTTING_DOWN;
    case KR_NODE_BUSY:
        return KRAPPY_E_BUSY;
    case KR_NODE_INVALID:
    case KR_NODE_TOO_BIG:
        return KRAPPY_E_INVALID_ARGUMENT;
    default:
        return KRAPPY_E_STORAGE;
    }
}

static void change_finish(kr_cluster *c, krappy_err e, const char *msg)
{
    kr_change ch = c->ch;
    memset(&c->ch, 0, sizeof c->ch);
    const char *what = ch.step == KR_TASK_REMOVE ? "removed" : "added";
    if (e == KRAPPY_OK)
        kr_log(KR_LOG_INFO,
               ch.step == KR_TASK_REMOVE ? "cluster member removed" : "cluster member votes",
               KR_LOG_U64("node", ch.id));
    else
        kr_log(KR_LOG_WARN, "cluster membership change failed", KR_LOG_U64("node", ch.id),
               KR_LOG_STR("change", what), KR_LOG_STR("reason", msg));
    if (ch.done != NULL)
        ch.done(ch.arg, e, msg);
}

static void change_done(void *arg, kr_node_err status, uint64_t index, const char *msg)
{
    kr_cluster *c = arg;
    (void)index;
    if (status == KR_NODE_OK && c->ch.then_assign && c->ch.step == KR_TASK_ADD) {
        c->ch.step = KR_TASK_ASSIGN;
        kr_node_err e = kr_node_assign(c->node, c->ch.id, KR_MEMBER_VOTER, change_done, c);
        if (e == KR_NODE_OK)
            return;
        change_finish(c, from_node(e), kr_node_strerror(e));
        return;
    }
    change_finish(c, from_node(status), msg);
}

/* Begin a membership change. @return KR_NODE_OK (change_done follows). */
static kr_node_err change_begin(kr_cluster *c, kr_task_kind kind, uint64_t id, const char *addr,
                                kr_cluster_done done, void *arg)
{
    if (c->ch.busy)
        return KR_NODE_BUSY;
    kr_node_err e;
    switch (kind) {
    case KR_TASK_REMOVE:
        e = kr_node_remove(c->node, id, change_done, c);
        break;
    case KR_TASK_ADD:
        e = kr_node_add(c->node, id, addr, change_done, c);
        break;
    case KR_TASK_ASSIGN:
    default:
        e = kr_node_assign(c->node, id, KR_MEMBER_VOTER, change_done, c);
        break;
    }
    if (e != KR_NODE_OK)
        return e;
    c->ch = (kr_change){.busy = true,
                        .step = kind,
                        .id = id,
                        .then_assign = kind == KR_TASK_ADD,
                        .done = done,
                        .arg = arg};
    snprintf(c->ch.addr, sizeof c->ch.addr, "%s", addr != NULL ? addr : "");
    return KR_NODE_OK;
}

/* The next membership change a JOIN asked for, when none runs. */
static void run_tasks(kr_cluster *c)
{
    if (c->ch.busy)
        return;
    kr_task t;
    pthread_mutex_lock(&c->mu);
    bool have = c->n_tasks > 0;
    if (have) {
        t = c->tasks[0];
        memmove(c->tasks, c->tasks + 1, (c->n_tasks - 1) * sizeof *c->tasks);
        c->n_tasks--;
    }
    pthread_mutex_unlock(&c->mu);
    if (!have)
        return;
    kr_log(KR_LOG_INFO, "a node asks to join", KR_LOG_U64("node", t.id),
           KR_LOG_STR("step", t.kind == KR_TASK_REMOVE ? "remove its lost incarnation"
                              : t.kind == KR_TASK_ADD  ? "add it"
                                                       : "make it a voter"));
    (void)change_begin(c, t.kind, t.id, t.addr, NULL, NULL); /* a failure: it asks again */
}

static void meta_done(void *arg, kr_node_err status, uint64_t index, const char *msg)
{
    kr_cluster *c = arg;
    (void)index;
    c->submitting = false;
    if (status != KR_NODE_OK && status != KR_NODE_NOT_LEADER && status != KR_NODE_LEADERSHIP_LOST &&
        status != KR_NODE_SHUTTING_DOWN)
        kr_log(KR_LOG_WARN, "cluster metadata not written", KR_LOG_STR("reason", msg));
}

static void submit(kr_cluster *c, const kr_buf *b)
{
    if (b->failed)
        return;
    if (kr_node_submit(c->node, b->data, b->len, meta_done, c) == KR_NODE_OK)
        c->submitting = true;
}

/*
 * On the leader: name the cluster once, and write each member's addresses
 * into the log when what it said in its handshake (or, for the leader,
 * what it is) differs from what the log says. One command at a time.
 */
static void leader_writes_meta(kr_cluster *c, const kr_node_status *s)
{
    if (c->submitting)
        return;
    kr_buf b;
    kr_buf_init(&b, 4096);
    pthread_mutex_lock(&c->mu);
    bool named = c->cluster_id[0] != '\0';
    kr_node_info applied[KR_NODE_MAX_MEMBERS], heard[KR_NODE_MAX_MEMBERS];
    unsigned na = c->n_applied, nh = c->n_heard;
    memcpy(applied, c->applied, na * sizeof *applied);
    memcpy(heard, c->heard, nh * sizeof *heard);
    pthread_mutex_unlock(&c->mu);
    if (!named) {
        char id[KR_CLUSTER_ID_MAX + 1];
        kr_cluster_random_id(id, sizeof id);
        kr_cmd_put_cluster_id(&b, id);
        submit(c, &b);
        kr_buf_free(&b);
        return;
    }
    for (unsigned i = 0; i < s->n_members; i++) {
        uint64_t id = s->members[i].id;
        kr_node_info want = {.id = id};
        if (id == c->id) {
            snprintf(want.data, sizeof want.data, "%s", c->data_addr);
            snprintf(want.kafka, sizeof want.kafka, "%s", c->kafka_addr);
        } else {
            unsigned h = 0;
            while (h < nh && heard[h].id != id)
                h++;
            if (h == nh)
                continue; /* not heard from yet */
            want = heard[h];
        }
        unsigned a = 0;
        while (a < na && applied[a].id != id)
            a++;
        if (a < na && strcmp(applied[a].data, want.data) == 0 &&
            strcmp(applied[a].kafka, want.kafka) == 0)
            continue;
        kr_cmd_put_node_info(&b, id, want.data, want.kafka);
        submit(c, &b);
        break;
    }
    kr_buf_free(&b);
}

static void update_metrics(kr_cluster *c, const kr_node_status *s)
{
    kr_gauge_set(c->m_term, (int64_t)s->term);
    kr_gauge_set(c->m_commit, (int64_t)s->commit);
    kr_gauge_set(c->m_applied, (int64_t)s->applied);
    kr_gauge_set(c->m_leader, (int64_t)s->leader_id);
    kr_gauge_set(c->m_is_leader, s->state == KR_NODE_LEADER);
    kr_gauge_set(c->m_members, s->n_members);
    kr_gauge_set(c->m_running, c->node != NULL);
    kr_gauge_set(c->m_store_halted, kr_cluster_halted(c));
    if (c->metrics == NULL || s->state != KR_NODE_LEADER)
        return;
    for (unsigned i = 0; i < s->n_members; i++) {
        char label[48];
        snprintf(label, sizeof label, "node=\"%llu\"", (unsigned long long)s->members[i].id);
        uint64_t m = s->members[i].match;
        kr_gauge_set(kr_gauge(c->metrics, "krappy_cluster_member_lag_entries", label,
                              "raft entries a member is behind the leader's log (leader only)"),
                     (int64_t)(m <= s->last_index ? s->last_index - m : 0));
        kr_gauge_set(kr_gauge(c->metrics, "krappy_cluster_member_reachable", label,
                              "1 when the leader heard from the member within an election "
                              "timeout (leader only)"),
                     s->members[i].reachable);
    }
}

/* This node leads, yet its store failed to apply the log: the lead goes
 * to a node that can (tried again every tick until raft takes it, and
 * again should this node be elected once more). */
static void hand_over_halted(kr_cluster *c)
{
    if (!c->halt_handover_logged)
        kr_log(KR_LOG_WARN, "this node leads but its store stopped applying the raft log: "
                            "handing the lead to another node");
    c->halt_handover_logged = true;
    kr_cluster_handover(c);
}

/* This node leads, yet its view cannot checkpoint and it refuses writes
 * (kr_replica_view_full): the lead goes to a node that takes them, while
 * this one applies the log on as a follower (until its view mends, or
 * holds so much that its replica halts). Elected again with its view
 * still full - every node's disk failing alike - it hands over again only
 * after a back-off, rather than bounce the lead around each tick. */
static void hand_over_view_full(kr_cluster *c, const char *why)
{
    uint64_t now = kr_mono_ms();
    uint32_t unsaid = 0;
    if (c->handing_over || !kr_retry_due(&c->view_handover, now))
        return;
    if (kr_retry_failed(&c->view_handover, now, why, &unsaid))
        kr_log(KR_LOG_WARN, "this node leads but refuses writes: handing the lead to another node",
               KR_LOG_STR("reason", why), KR_LOG_U64("not_logged", unsaid));
    kr_cluster_handover(c);
}

/* The view mended: this node may lead again without handing over. */
static void view_mended(kr_cluster *c)
{
    if (kr_retry_succeeded(&c->view_handover) > 0)
        kr_log(KR_LOG_INFO, "the latest-value view checkpoints again: this node may lead again");
}

static void on_tick(evutil_socket_t fd, short what, void *arg)
{
    kr_cluster *c = arg;
    (void)fd;
    (void)what;
    if (c->node == NULL)
        return;
    kr_node_status s;
    kr_node_get_status(c->node, &s);
    if (s.leader_id != c->last_leader) {
        if (s.leader_id != 0) {
            c->leader_changes++;
            kr_counter_add(c->m_changes, 1);
        }
        kr_log(KR_LOG_INFO, s.leader_id != 0 ? "cluster leader" : "cluster has no leader",
               KR_LOG_U64("leader", s.leader_id), KR_LOG_U64("term", s.term),
               KR_LOG_STR("this_node", s.leader_id == c->id ? "leads" : "follows"));
        c->last_leader = s.leader_id;
    }
    if (s.halted)
        kr_gauge_set(c->m_running, 0);
    char why[256];
    bool view_full = c->replica != NULL && kr_replica_view_full(c->replica, why, sizeof why);
    if (!view_full)
        view_mended(c);
    else if (s.state != KR_NODE_LEADER) /* a leader's own writes are refused: it hands over */
        (void)kr_replica_halt_on_view_overflow(c->replica);
    if (s.state == KR_NODE_LEADER && kr_cluster_halted(c)) {
        hand_over_halted(c);
    } else if (s.state == KR_NODE_LEADER) {
        if (view_full)
            hand_over_view_full(c, why);
        if (!c->handing_over) {
            leader_writes_meta(c, &s);
            run_tasks(c);
        }
    }
    update_metrics(c, &s);
}

static void on_drain(evutil_socket_t fd, short what, void *arg)
{
    kr_cluster *c = arg;
    (void)fd;
    (void)what;
    if (c->node != NULL)
        kr_node_drain(c->node);
}

static void on_started(evutil_socket_t fd, short what, void *arg)
{
    kr_cluster *c = arg;
    (void)fd;
    (void)what;
    pthread_mutex_lock(&c->mu);
    kr_node *n = c->node_shared;
    bool done = c->started;
    char err[256];
    snprintf(err, sizeof err, "%s", c->start_err);
    pthread_mutex_unlock(&c->mu);
    if (c->node == NULL && n != NULL) {
        c->node = n;
        kr_log(KR_LOG_INFO, "raft runs", KR_LOG_U64("node", c->id),
               KR_LOG_STR("raft", c->raft_addr));
        on_drain(-1, 0, c); /* completions that came before */
    }
    if (done && c->starter_running) {
        pthread_join(c->starter, NULL);
        c->starter_running = false;
    }
    if (done && err[0] != '\0' && c->node == NULL) {
        kr_log(KR_LOG_ERROR, "the cluster node cannot start", KR_LOG_STR("reason", err));
        if (c->failed != NULL)
            c->failed(c->failed_arg, err);
    }
}

/* ---- start and stop ---- */

static int path_of(char **out, const char *dir, const char *name)
{
    size_t n = strlen(dir) + strlen(name) + 2;
    *out = malloc(n);
    if (*out == NULL)
        return -1;
    snprintf(*out, n, "%s/%s", dir, name);
    return 0;
}

static void free_cluster(kr_cluster *c)
{
    if (c == NULL)
        return;
    if (c->tick_ev != NULL)
        event_free(c->tick_ev);
    if (c->drain_ev != NULL)
        event_free(c->drain_ev);
    if (c->started_ev != NULL)
        event_free(c->started_ev);
    kr_cluster_free_peers(c->peers, c->n_peers);
    free(c->data_dir);
    free(c->raft_dir);
    free(c->marker);
    free(c->joining);
    pthread_mutex_destroy(&c->mu);
    free(c);
}

/* Copy and check the options. @return 0, or -1 with err. */
static int take_opts(kr_cluster *c, const kr_cluster_opts *o, char *err, size_t errlen)
{
    kr_hostport hp = {0};
    char why[300];
    if (o->node_id == 0) {
        snprintf(err, errlen, "--node-id must be a number above 0 (or auto)");
        return -1;
    }
    if (o->raft_listen == NULL || strlen(o->raft_listen) > KR_NODE_ADDR_MAX ||
        kr_hostport_parse(o->raft_listen, 0, &hp, why, sizeof why) < 0) {
        snprintf(err, errlen, "--raft-listen: %s",
                 o->raft_listen == NULL ? "missing (HOST:PORT)" : why);
        return -1;
    }
    if (o->advertise == NULL || strlen(o->advertise) > KR_HOSTPORT_MAX ||
        (o->kafka_advertise != NULL && strlen(o->kafka_advertise) > KR_HOSTPORT_MAX)) {
        snprintf(err, errlen, "--advertise must be HOST:PORT");
        return -1;
    }
    if (o->peers != NULL &&
        kr_cluster_parse_peers(o->peers, &c->peers, &c->n_peers, err, errlen) < 0)
        return -1;
    c->id = o->node_id;
    snprintf(c->bind, sizeof c->bind, "%s", o->raft_listen);
    snprintf(c->raft_addr, sizeof c->raft_addr, "%s", o->raft_listen);
    for (size_t i = 0; i < c->n_peers; i++) {
        if (c->peers[i].id == c->id) {
            c->in_peers = true;
            snprintf(c->raft_addr, sizeof c->raft_addr, "%s", c->peers[i].addr);
        }
    }
    if (!c->in_peers &&
        (hp.host[0] == '\0' || strcmp(hp.host, "0.0.0.0") == 0 || strcmp(hp.host, "::") == 0)) {
        snprintf(err, errlen,
                 "--raft-listen %s: a node that is not one of --peers is reached at its "
                 "--raft-listen address, so it must name this host (not 0.0.0.0)",
                 o->raft_listen);
        return -1;
    }
    c->hash = kr_probe_peers_hash(c->peers, c->n_peers);
    snprintf(c->data_addr, sizeof c->data_addr, "%s", o->advertise);
    snprintf(c->kafka_addr, sizeof c->kafka_addr, "%s",
             o->kafka_advertise != NULL ? o->kafka_advertise : "");
    c->info_len = kr_cluster_encode_info(c->data_addr, c->kafka_addr, c->info, sizeof c->info);
    c->has_topics = o->has_topics;
    c->base = o->base;
    c->metrics = o->metrics;
    c->replica = o->replica;
    c->election_ms = o->election_ms;
    c->heartbeat_ms = o->heartbeat_ms;
    c->snapshot_every = o->snapshot_every;
    c->segment_bytes = o->segment_bytes;
    c->failed = o->failed;
    c->failed_arg = o->failed_arg;
    c->data_dir = strdup(o->data_dir);
    if (c->data_dir == NULL || path_of(&c->raft_dir, o->data_dir, KR_CLUSTER_RAFT_DIR) < 0 ||
        path_of(&c->marker, o->data_dir, KR_CLUSTER_MARKER) < 0 ||
        path_of(&c->joining, o->data_dir, KR_CLUSTER_JOINING) < 0) {
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    return 0;
}

static void register_metrics(kr_cluster *c)
{
    kr_metrics *m = c->metrics;
    if (m == NULL)
        return;
    c->m_term = kr_gauge(m, "krappy_cluster_term", NULL, "the raft term this node is in");
    c->m_commit = kr_gauge(m, "krappy_cluster_commit_index", NULL,
                           "highest raft index this node knows committed");
    c->m_applied =
        kr_gauge(m, "krappy_cluster_applied_index", NULL, "highest raft index this node applied");
    c->m_leader = kr_gauge(m, "krappy_cluster_leader_id", NULL,
                           "the leader's node id as this node knows it (0: none)");
    c->m_is_leader = kr_gauge(m, "krappy_cluster_is_leader", NULL, "1 when this node leads");
    c->m_changes = kr_counter(m, "krappy_cluster_leader_changes_total", NULL,
                              "leaders this node has seen elected since it started");
    c->m_members = kr_gauge(m, "krappy_cluster_members", NULL,
                            "members of the raft configuration, voters or not");
    c->m_running = kr_gauge(m, "krappy_cluster_raft_running", NULL,
                            "1 once raft runs on this node (0 while it starts or after it "
                            "halted)");
    c->m_store_halted = kr_gauge(m, "krappy_cluster_store_halted", NULL,
                                 "1 once this node's store failed to apply the raft log: it "
                                 "applies no more until restarted");
}

int kr_cluster_start(const kr_cluster_opts *o, kr_cluster **out, char *err, size_t errlen)
{
    *out = NULL;
    kr_cluster *c = calloc(1, sizeof *c);
    if (c == NULL) {
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    pthread_mutex_init(&c->mu, NULL);
    kr_retry_init(&c->view_handover, KR_CLUSTER_VIEW_HANDOVER_MS, KR_CLUSTER_VIEW_HANDOVER_CAP_MS);
    if (take_opts(c, o, err, errlen) < 0 || kr_cluster_check_dir(c, err, errlen) < 0)
        goto fail;
    if (mkdir(c->raft_dir, 0750) < 0 && errno != EEXIST) {
        snprintf(err, errlen, "cannot create %s: %s", c->raft_dir, strerror(errno));
        goto fail;
    }
    c->started_ev = event_new(c->base, -1, 0, on_started, c);
    c->drain_ev = event_new(c->base, -1, 0, on_drain, c);
    c->tick_ev = event_new(c->base, -1, EV_PERSIST, on_tick, c);
    struct timeval tv = {0, KR_CLUSTER_TICK_MS * 1000};
    if (c->started_ev == NULL || c->drain_ev == NULL || c->tick_ev == NULL ||
        event_add(c->tick_ev, &tv) < 0) {
        snprintf(err, errlen, "cannot set up the cluster's events");
        goto fail;
    }
    register_metrics(c);
    kr_cluster_set_why(c, "starting");
    if (pthread_create(&c->starter, NULL, kr_cluster_starter, c) != 0) {
        snprintf(err, errlen, "cannot start the cluster's start-up thread");
        goto fail;
    }
    c->starter_running = true;
    *out = c;
    return 0;
fail:
    free_cluster(c);
    return -1;
}

static void handover_done(void *arg, kr_node_err status, uint64_t index, const char *msg)
{
    kr_cluster *c = arg;
    (void)index;
    c->handing_over = false;
    if (status == KR_NODE_OK)
        kr_log(KR_LOG_INFO, "leadership handed over");
    else
        kr_log(KR_LOG_WARN, "leadership not handed over", KR_LOG_STR("reason", msg));
}

void kr_cluster_handover(kr_cluster *c)
{
    if (c == NULL || c->node == NULL || c->handing_over ||
        kr_node_state_now(c->node) != KR_NODE_LEADER)
        return;
    if (kr_node_transfer(c->node, 0, handover_done, c) == KR_NODE_OK)
        c->handing_over = true;
}

void kr_cluster_stop(kr_cluster *c)
{
    if (c == NULL)
        return;
    pthread_mutex_lock(&c->mu);
    c->stopping = true;
    pthread_mutex_unlock(&c->mu);
    if (c->starter_running) {
        pthread_join(c->starter, NULL);
        c->starter_running = false;
    }
    if (c->node == NULL) {
        pthread_mutex_lock(&c->mu);
        c->node = c->node_shared;
        pthread_mutex_unlock(&c->mu);
    }
    /* A hand-over in flight: give it its time (it ends on the raft thread). */
    for (int i = 0; c->handing_over && i < KR_CLUSTER_HANDOVER_MS / 20; i++) {
        struct timespec ts = {0, 20 * 1000000L};
        nanosleep(&ts, NULL);
        kr_node_drain(c->node);
    }
    kr_node_stop(c->node); /* runs what is left of the completions */
    free_cluster(c);
}

/* ---- what the server asks ---- */

typedef struct submission {
    kr_cluster *c;
    kr_replica_done done;             /* or: */
    kr_replica_batch_done batch_done; /* a BATCH's */
    void *arg;
} submission;

static void submitted(void *arg, kr_node_err status, uint64_t index, const char *msg)
{
    submission *s = arg;
    if (status == KR_NODE_OK && s->batch_done != NULL) {
        kr_replica_wait_batch(s->c->replica, index, s->batch_done, s->arg);
    } else if (status == KR_NODE_OK) {
        kr_replica_wait(s->c->replica, index, s->done, s->arg);
    } else {
        kr_store_result res = {.err = from_node(status)};
        if (status == KR_NODE_LEADERSHIP_LOST)
            snprintf(res.msg, sizeof res.msg,
                     "this node lost the cluster's lead before the write was committed; its "
                     "outcome is unknown (an idempotent producer sends it again to the new "
                     "leader with the same seq)");
        else
            snprintf(res.msg, sizeof res.msg, "%s", msg);
        if (s->batch_done != NULL)
            s->batch_done(s->arg, &res, NULL, 0);
        else
            s->done(s->arg, &res);
    }
    free(s);
}

/* Append cmd; how says who gets the result (c, arg and one callback). */
static krappy_err submit_entry(const submission *how, const void *cmd, size_t len, char *msg,
                               size_t msglen)
{
    kr_cluster *c = how->c;
    if (len > KR_CLUSTER_COMMAND_MAX) {
        snprintf(msg, msglen,
                 "this write is %zu bytes; a cluster takes writes of at most %u bytes (1 MiB) "
                 "each, its events and their framing included: send the events as smaller "
                 "batches",
                 len, (unsigned)KR_CLUSTER_COMMAND_MAX);
        return KRAPPY_E_INVALID_ARGUMENT;
    }
    kr_node *n = node_of(c);
    submission *s = malloc(sizeof *s);
    if (n == NULL || s == NULL || c->replica == NULL) {
        free(s);
        snprintf(msg, msglen,
                 n == NULL ? "this node is not the cluster's leader"
                           : "out of memory submitting a write to the cluster");
        return n == NULL ? KRAPPY_E_NOT_LEADER : KRAPPY_E_STORAGE;
    }
    *s = *how;
    kr_node_err e = kr_node_submit(n, cmd, len, submitted, s);
    if (e == KR_NODE_OK)
        return KRAPPY_OK;
    free(s);
    snprintf(msg, msglen, "%s", kr_node_strerror(e));
    return from_node(e);
}

krappy_err kr_cluster_submit(kr_cluster *c, const void *cmd, size_t len, kr_replica_done done,
                             void *arg, char *msg, size_t msglen)
{
    submission how = {.c = c, .done = done, .arg = arg};
    return submit_entry(&how, cmd, len, msg, msglen);
}

krappy_err kr_cluster_submit_batch(kr_cluster *c, const void *cmd, size_t len,
                                   kr_replica_batch_done done, void *arg, char *msg, size_t msglen)
{
    submission how = {.c = c, .batch_done = done, .arg = arg};
    return submit_entry(&how, cmd, len, msg, msglen);
}

bool kr_cluster_halted(kr_cluster *c)
{
    return c != NULL && c->replica != NULL && kr_replica_halted(c->replica);
}

/* Why only a restart mends this node (its raft or its store halted), given
 * the node's status; NULL when nothing does. */
static const char *restart_why(kr_cluster *c, const kr_node_status *s)
{
    if (s->halted)
        return RAFT_HALTED_WHY;
    return kr_cluster_halted(c) ? KR_REPLICA_HALTED_WHY : NULL;
}

bool kr_cluster_needs_restart(kr_cluster *c, char *why, size_t whylen)
{
    kr_node *n = c != NULL ? node_of(c) : NULL;
    kr_node_status s = {0};
    if (n != NULL)
        kr_node_get_status(n, &s);
    const char *w = c != NULL ? restart_why(c, &s) : NULL;
    if (w != NULL)
        snprintf(why, whylen, "%s", w);
    return w != NULL;
}

bool kr_cluster_is_leader(kr_cluster *c)
{
    if (c == NULL || kr_cluster_halted(c))
        return false; /* stopped, or handing the lead over: it leads nothing */
    kr_node *n = node_of(c);
    return n != NULL && kr_node_state_now(n) == KR_NODE_LEADER;
}

static int leader_info(kr_cluster *c, kr_node_info *out)
{
    kr_node *n = node_of(c);
    if (n == NULL)
        return 0;
    kr_node_status s;
    kr_node_get_status(n, &s);
    if (s.leader_id == 0)
        return 0;
    if (s.leader_id == c->id) {
        if (kr_cluster_halted(c))
            return 0; /* it hands the lead over: no leader to send clients to */
        *out = (kr_node_info){.id = c->id};
        snprintf(out->data, sizeof out->data, "%s", c->data_addr);
        snprintf(out->kafka, sizeof out->kafka, "%s", c->kafka_addr);
        return 1;
    }
    return kr_cluster_info_of(c, s.leader_id, out);
}

int kr_cluster_leader_addr(kr_cluster *c, char *buf, size_t len)
{
    kr_node_info ni;
    buf[0] = '\0';
    if (!leader_info(c, &ni))
        return 0;
    snprintf(buf, len, "%s", ni.data);
    return 1;
}

int kr_cluster_leader_kafka_addr(kr_cluster *c, char *buf, size_t len, uint64_t *id)
{
    kr_node_info ni;
    buf[0] = '\0';
    if (!leader_info(c, &ni) || ni.kafka[0] == '\0')
        return 0;
    snprintf(buf, len, "%s", ni.kafka);
    if (id != NULL)
        *id = ni.id;
    return 1;
}

void kr_cluster_status_get(kr_cluster *c, kr_cluster_status *out)
{
    memset(out, 0, sizeof *out);
    kr_node_status s = {0};
    kr_node *n = node_of(c);
    if (n != NULL)
        kr_node_get_status(n, &s);
    pthread_mutex_lock(&c->mu);
    snprintf(out->cluster_id, sizeof out->cluster_id, "%s", c->cluster_id);
    snprintf(out->why, sizeof out->why, "%s", c->why);
    kr_node_info applied[KR_NODE_MAX_MEMBERS];
    unsigned na = c->n_applied;
    memcpy(applied, c->applied, na * sizeof *applied);
    pthread_mutex_unlock(&c->mu);
    out->node = c->id;
    out->term = s.term;
    out->leader = s.leader_id;
    out->is_leader = s.state == KR_NODE_LEADER;
    out->commit = s.commit;
    out->applied = s.applied;
    out->last_index = s.last_index;
    out->leader_changes = c->leader_changes;
    out->running = n != NULL && !s.halted;
    bool store_halted = kr_cluster_halted(c);
    const char *halted_why = restart_why(c, &s);
    if (halted_why != NULL)
        snprintf(out->why, sizeof out->why, "%s", halted_why);
    /* Halted, raft goes on handing entries over that the store drops:
     * what this node applied is where its store stopped. */
    if (store_halted && kr_replica_stored(c->replica) < out->applied)
        out->applied = kr_replica_stored(c->replica);
    if (n == NULL || s.n_members == 0) {
        /* Not in a configuration yet: itself, joining. */
        kr_cluster_member *m = &out->members[0];
        out->n_members = 1;
        m->id = c->id;
        snprintf(m->raft, sizeof m->raft, "%s", c->raft_addr);
        snprintf(m->addr, sizeof m->addr, "%s", c->data_addr);
        snprintf(m->kafka, sizeof m->kafka, "%s", c->kafka_addr);
        m->role = "joining";
        return;
    }
    out->n_members = s.n_members;
    for (unsigned i = 0; i < s.n_members; i++) {
        const kr_node_member *nm = &s.members[i];
        kr_cluster_member *m = &out->members[i];
        m->id = nm->id;
        snprintf(m->raft, sizeof m->raft, "%s", nm->addr);
        for (unsigned a = 0; a < na; a++) {
            if (applied[a].id == nm->id) {
                snprintf(m->addr, sizeof m->addr, "%s", applied[a].data);
                snprintf(m->kafka, sizeof m->kafka, "%s", applied[a].kafka);
            }
        }
        if (nm->id == c->id) {
            snprintf(m->addr, sizeof m->addr, "%s", c->data_addr);
            snprintf(m->kafka, sizeof m->kafka, "%s", c->kafka_addr);
        }
        m->voter = nm->role == KR_MEMBER_VOTER;
        if (nm->id == s.leader_id)
            m->role = "leader";
        else if (!m->voter)
            m->role = "joining";
        else if (out->is_leader && !nm->reachable)
            m->role = "unreachable";
        else
            m->role = "follower";
        if (out->is_leader) {
            m->match = nm->match;
            m->lag = nm->match <= s.last_index ? s.last_index - nm->match : 0;
        }
    }
}

bool kr_cluster_ready(kr_cluster *c, char *why, size_t whylen)
{
    /* A store failure needs a restart, whatever else holds: it comes first. */
    if (kr_cluster_halted(c))
        return kr_replica_ready(c->replica, why, whylen);
    kr_cluster_status st;
    kr_cluster_status_get(c, &st);
    if (!st.running) {
        snprintf(why, whylen, "cluster: %s", st.why[0] ? st.why : "starting");
        return false;
    }
    if (st.leader == 0) {
        snprintf(why, whylen,
                 "cluster: no leader known (an election runs, or too few nodes "
                 "answer)");
        return false;
    }
    if (st.cluster_id[0] == '\0' || st.applied < st.commit) {
        snprintf(why, whylen, "cluster: catching up (applied %llu of %llu)",
                 (unsigned long long)st.applied, (unsigned long long)st.commit);
        return false;
    }
    if (st.why[0] != '\0') {
        snprintf(why, whylen, "cluster: %s", st.why);
        return false;
    }
    return c->replica == NULL || kr_replica_ready(c->replica, why, whylen);
}

/* A member's entry in raft's configuration, or NULL. */
static const kr_node_member *member(const kr_node_status *s, uint64_t id)
{
    for (unsigned i = 0; i < s->n_members; i++)
        if (s->members[i].id == id)
            return &s->members[i];
    return NULL;
}

/* The leader check of a membership change. @return KRAPPY_OK or the error. */
static krappy_err change_check(kr_cluster *c, uint64_t id, kr_node_status *s, char *msg,
                               size_t msglen)
{
    char leader[KR_HOSTPORT_MAX + 1];
    if (id == 0) {
        snprintf(msg, msglen, "node ids are numbers above 0");
        return KRAPPY_E_INVALID_ARGUMENT;
    }
    if (c->node == NULL || (kr_node_get_status(c->node, s), s->state != KR_NODE_LEADER)) {
        if (kr_cluster_leader_addr(c, leader, sizeof leader))
            snprintf(msg, msglen, "this node does not lead; the leader is at %s", leader);
        else
            snprintf(msg, msglen, "this node does not lead, and no leader is known yet");
        return KRAPPY_E_NOT_LEADER;
    }
    if (c->ch.busy) {
        snprintf(msg, msglen, "another membership change (node %llu) is running; try again",
                 (unsigned long long)c->ch.id);
        return KRAPPY_E_BUSY;
    }
    return KRAPPY_OK;
}

krappy_err kr_cluster_add(kr_cluster *c, uint64_t id, const char *raft_addr, kr_cluster_done done,
                          void *arg, char *msg, size_t msglen)
{
    kr_node_status s;
    krappy_err e = change_check(c, id, &s, msg, msglen);
    if (e != KRAPPY_OK)
        return e;
    kr_hostport hp = {0};
    char why[300];
    if (raft_addr == NULL || strlen(raft_addr) > KR_NODE_ADDR_MAX ||
        kr_hostport_parse(raft_addr, 0, &hp, why, sizeof why) < 0 || hp.host[0] == '\0') {
        snprintf(msg, msglen, "the raft address must be HOST:PORT (%s)",
                 raft_addr == NULL ? "missing" : why);
        return KRAPPY_E_INVALID_ARGUMENT;
    }
    const kr_node_member *m = member(&s, id);
    kr_node_err ne;
    if (m != NULL && m->role == KR_MEMBER_VOTER) {
        snprintf(msg, msglen, "node %llu is a member already (at %s)", (unsigned long long)id,
                 m->addr);
        return KRAPPY_E_INVALID_ARGUMENT;
    }
    if (m != NULL)
        ne = change_begin(c, KR_TASK_ASSIGN, id, NULL, done, arg); /* added, not voting yet */
    else
        ne = change_begin(c, KR_TASK_ADD, id, raft_addr, done, arg);
    if (ne != KR_NODE_OK) {
        snprintf(msg, msglen, "%s", kr_node_strerror(ne));
        return from_node(ne);
    }
    kr_log(KR_LOG_INFO, "adding a cluster member", KR_LOG_U64("node", id),
           KR_LOG_STR("raft", raft_addr));
    return KRAPPY_OK;
}

krappy_err kr_cluster_remove(kr_cluster *c, uint64_t id, kr_cluster_done done, void *arg, char *msg,
                             size_t msglen)
{
    kr_node_status s;
    krappy_err e = change_check(c, id, &s, msg, msglen);
    if (e != KRAPPY_OK)
        return e;
    if (member(&s, id) == NULL) {
        snprintf(msg, msglen, "node %llu is not a member", (unsigned long long)id);
        return KRAPPY_E_INVALID_ARGUMENT;
    }
    kr_node_err ne = change_begin(c, KR_TASK_REMOVE, id, NULL, done, arg);
    if (ne != KR_NODE_OK) {
        snprintf(msg, msglen, "%s", kr_node_strerror(ne));
        return from_node(ne);
    }
    kr_log(KR_LOG_INFO, "removing a cluster member", KR_LOG_U64("node", id));
    return KRAPPY_OK;
}
