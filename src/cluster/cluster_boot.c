/*
 * cluster/cluster_boot.c - how a node starts (cluster.h, "Start-up"): the
 * data directory decides between raft's own state and asking the peers;
 * the peers' answers decide between bootstrapping and joining (probe.h).
 * Runs on the starter thread, which may wait for peers as long as it takes;
 * kr_cluster_stop makes it give up.
 */
#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "cluster/cluster_int.h"
#include "util/log.h"

/* libraft's uv layer writes these first, in its directory. */
static bool has_raft_state(const char *dir)
{
    char p[4200];
    struct stat st;
    for (int i = 1; i <= 2; i++) {
        snprintf(p, sizeof p, "%s/metadata%d", dir, i);
        if (stat(p, &st) == 0 && st.st_size > 0)
            return true;
    }
    return false;
}

/* The first line of a small file, or "" (missing). @return 0, -1 unreadable. */
static int read_line(const char *path, char *out, size_t cap)
{
    out[0] = '\0';
    FILE *f = fopen(path, "re");
    if (f == NULL)
        return errno == ENOENT ? 0 : -1;
    if (fgets(out, (int)cap, f) == NULL)
        out[0] = '\0';
    fclose(f);
    out[strcspn(out, "\r\n")] = '\0';
    return 0;
}

int kr_cluster_check_dir(kr_cluster *c, char *err, size_t errlen)
{
    if (has_raft_state(c->raft_dir))
        return 0;
    char line[128];
    if (read_line(c->marker, line, sizeof line) < 0) {
        snprintf(err, errlen, "cannot read %s: %s", c->marker, strerror(errno));
        return -1;
    }
    /* A single node's marker ("ID single") names no cluster. */
    if (line[0] != '\0' && strstr(line, " single") == NULL) {
        snprintf(err, errlen,
                 "%s says this node belonged to cluster %s, but its raft state (%s) is gone; "
                 "it must not start a cluster of its own: remove it from the cluster (krappy "
                 "cluster remove %llu), empty %s and start it again to rejoin",
                 c->marker, line, c->raft_dir, (unsigned long long)c->id, c->data_dir);
        return -1;
    }
    if (c->has_topics) {
        snprintf(err, errlen,
                 "%s holds the topics of a single krappyd; a cluster starts on empty data "
                 "directories (copy the data in through a client once the cluster runs)",
                 c->data_dir);
        return -1;
    }
    if (c->n_peers == 0) {
        snprintf(err, errlen,
                 "this node has no raft state and no --peers: give it --peers (the voters of "
                 "the cluster to form or to join)");
        return -1;
    }
    return 0;
}

static bool stopping(kr_cluster *c)
{
    pthread_mutex_lock(&c->mu);
    bool s = c->stopping;
    pthread_mutex_unlock(&c->mu);
    return s;
}

/* Sleep up to ms, in short steps, waking early when the node stops. */
static void nap(kr_cluster *c, unsigned ms)
{
    for (unsigned slept = 0; slept < ms && !stopping(c); slept += 50) {
        struct timespec ts = {0, 50 * 1000000L};
        nanosleep(&ts, NULL);
    }
}

static void notify_loop(void *arg)
{
    kr_cluster *c = arg;
    event_active(c->drain_ev, EV_READ, 0);
}

/* Start raft: bootstrap with --peers, or (peers NULL) with an empty log,
 * waiting to be added. @return 0, or -1 with err. */
static int start_raft(kr_cluster *c, bool bootstrap, char *err, size_t errlen)
{
    kr_node_opts o = {.id = c->id,
                      .addr = c->raft_addr,
                      .bind = c->bind,
                      .dir = c->raft_dir,
                      .peers = bootstrap ? c->peers : NULL,
                      .n_peers = bootstrap ? c->n_peers : 0,
                      .fsm = kr_cluster_fsm_hooks(c),
                      .notify = notify_loop,
                      .notify_arg = c,
                      .election_ms = c->election_ms,
                      .heartbeat_ms = c->heartbeat_ms,
                      .snapshot_threshold = c->snapshot_every,
                      .segment_bytes = c->segment_bytes,
                      .info = c->info,
                      .info_len = c->info_len,
                      .probe = kr_cluster_answer_probe,
                      .on_info = kr_cluster_heard_info,
                      .hook_arg = c};
    kr_node *n;
    if (kr_node_start(&o, &n, err, errlen) < 0)
        return -1;
    pthread_mutex_lock(&c->mu);
    c->node_shared = n;
    pthread_mutex_unlock(&c->mu);
    event_active(c->started_ev, EV_READ, 0); /* the loop takes the node now */
    return 0;
}

/* Ask every other peer for its state and decide. */
static kr_probe_decision ask_peers(kr_cluster *c, char *join_at, size_t join_len)
{
    kr_probe_reply replies[KR_NODE_MAX_MEMBERS];
    bool ok[KR_NODE_MAX_MEMBERS];
    kr_node_peer others[KR_NODE_MAX_MEMBERS];
    size_t n = 0;
    kr_probe_req q = {.kind = KR_PROBE_STATE, .from = c->id, .peers_hash = c->hash};
    snprintf(q.addr, sizeof q.addr, "%s", c->raft_addr);
    for (size_t i = 0; i < c->n_peers; i++) {
        if (c->peers[i].id == c->id)
            continue;
        char err[256];
        others[n] = c->peers[i];
        ok[n] = kr_probe_ask(c->peers[i].addr, &q, &replies[n], KR_CLUSTER_PROBE_MS, err,
                             sizeof err) == 0;
        if (!ok[n])
            kr_log(KR_LOG_DEBUG, "peer did not answer the probe",
                   KR_LOG_U64("node", c->peers[i].id), KR_LOG_STR("reason", err));
        n++;
    }
    char why[256];
    kr_probe_decision d =
        kr_probe_decide(others, ok, replies, n, c->hash, join_at, join_len, why, sizeof why);
    if (d == KR_DECIDE_BOOTSTRAP && !c->in_peers) {
        snprintf(why, sizeof why,
                 "this node is not one of --peers: it joins a cluster that exists, and none "
                 "answered yet");
        d = KR_DECIDE_WAIT;
    }
    if (d == KR_DECIDE_WAIT)
        kr_cluster_set_why(c, why);
    return d;
}

/*
 * Ask the leader (at `at`, which may send us on) to take this node in,
 * until `want` is the answer. @return 0, or -1 when stopping.
 */
static int join(kr_cluster *c, char *at, size_t at_len, bool running, kr_probe_answer want)
{
    kr_probe_req q = {
        .kind = KR_PROBE_JOIN, .from = c->id, .peers_hash = c->hash, .running = running};
    snprintf(q.addr, sizeof q.addr, "%s", c->raft_addr);
    size_t next_peer = 0;
    while (!stopping(c)) {
        kr_probe_reply r;
        char err[256], why[512];
        if (kr_probe_ask(at, &q, &r, KR_CLUSTER_PROBE_MS, err, sizeof err) < 0) {
            snprintf(why, sizeof why, "joining: %s", err);
            r.answer = KR_JOIN_NOT_LEADER;
            r.leader_addr[0] = '\0';
        } else if (r.answer == want || (want == KR_JOIN_START && r.answer == KR_JOIN_DONE)) {
            return 0;
        } else if (r.answer == KR_JOIN_REFUSED) {
            snprintf(why, sizeof why, "the leader refuses to take this node in: %s", r.message);
        } else {
            snprintf(why, sizeof why, "joining the cluster through %.200s: %s", at,
                     r.message[0] != '\0' ? r.message : "waiting");
        }
        kr_cluster_set_why(c, why);
        if (r.answer == KR_JOIN_NOT_LEADER) {
            /* The leader it named, else the next peer in turn. */
            if (r.leader_addr[0] != '\0')
                snprintf(at, at_len, "%s", r.leader_addr);
            else if (c->n_peers > 0)
                snprintf(at, at_len, "%s", c->peers[next_peer++ % c->n_peers].addr);
        }
        nap(c, KR_CLUSTER_RETRY_MS);
    }
    return -1;
}

/* The whole start: @return 0 once raft runs, -1 with err (or when stopping). */
static int boot(kr_cluster *c, char *err, size_t errlen)
{
    char at[KR_NODE_ADDR_MAX + 1] = "";
    bool joining = access(c->joining, F_OK) == 0;
    if (has_raft_state(c->raft_dir)) {
        kr_cluster_set_why(c, "starting raft on its state");
        if (start_raft(c, false, err, errlen) < 0)
            return -1;
        if (!joining || c->n_peers == 0)
            return 0;
        /* A join was under way when the node stopped: see it through. */
        snprintf(at, sizeof at, "%s", c->peers[0].addr);
    } else {
        kr_probe_server *ps;
        if (kr_probe_server_start(c->id, c->raft_addr, c->bind, c->hash, &ps, err, errlen) < 0)
            return -1;
        kr_probe_decision d = KR_DECIDE_WAIT;
        while (!stopping(c) && (d = ask_peers(c, at, sizeof at)) == KR_DECIDE_WAIT)
            nap(c, KR_CLUSTER_RETRY_MS);
        if (d == KR_DECIDE_JOIN) {
            if (kr_cluster_write_file(c->joining, "joining\n") < 0) {
                snprintf(err, errlen, "cannot write %s: %s", c->joining, strerror(errno));
                kr_probe_server_stop(ps);
                return -1;
            }
            kr_log(KR_LOG_INFO, "a cluster exists: joining it", KR_LOG_STR("through", at));
            if (join(c, at, sizeof at, false, KR_JOIN_START) < 0)
                d = KR_DECIDE_WAIT; /* stopping */
        }
        kr_probe_server_stop(ps);
        if (stopping(c)) {
            snprintf(err, errlen, "stopped while starting");
            return -1;
        }
        if (d == KR_DECIDE_BOOTSTRAP)
            kr_log(KR_LOG_INFO, "every peer answered: forming the cluster",
                   KR_LOG_U64("nodes", c->n_peers));
        kr_cluster_set_why(c, "starting raft");
        if (start_raft(c, d == KR_DECIDE_BOOTSTRAP, err, errlen) < 0)
            return -1;
        if (d == KR_DECIDE_BOOTSTRAP)
            return 0;
    }
    if (join(c, at, sizeof at, true, KR_JOIN_DONE) == 0) {
        unlink(c->joining);
        kr_log(KR_LOG_INFO, "joined the cluster as a voter");
    }
    return 0;
}

void *kr_cluster_starter(void *arg)
{
    kr_cluster *c = arg;
    char err[256] = "";
    int rc = boot(c, err, sizeof err);
    kr_cluster_set_why(c, "");
    pthread_mutex_lock(&c->mu);
    c->started = true;
    if (rc < 0)
        snprintf(c->start_err, sizeof c->start_err, "%s", err);
    pthread_mutex_unlock(&c->mu);
    event_active(c->started_ev, EV_READ, 0);
    return NULL;
}
