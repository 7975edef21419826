/*
 * tests/test_cluster_node.c - cluster/node.c for real: three (then four)
 * nodes in this process, each with its raft thread and libuv loop, talking
 * over loopback through cluster/transport.c by host name ("localhost:PORT",
 * so every connect goes through getaddrinfo), with raft directories on disk
 * in a temporary directory. This thread plays the libevent loop: it submits,
 * and runs completions from kr_node_fd (two nodes) or from a notify function
 * (the third).
 *
 * - elect, apply 1000 entries (pipelined) and a 1 MiB one; the same log,
 *   in the same order, on every node; the status of leader and followers;
 * - a 9 MiB command (larger than a raft_uv segment), with a longer election
 *   timeout;
 * - stop the leader, time until a survivor leads (the goal: under 2 s), go
 *   on writing, restart the stopped node from its directory and see it catch
 *   up (from a snapshot: the threshold is low); again, several times;
 * - membership: add a fourth node (empty directory, joining), promote it,
 *   hand leadership over, remove it;
 * - a full raft disk: commands refused before libraft would crash on it
 *   (a real small tmpfs when the test may mount one);
 * - start-up errors come back as sentences, with nothing leaked;
 * - snapshots are written as the state machine gave them (no LZ4 frame)
 *   and restored from; the FSM runs on a thread named kr-raft.
 * $KRAPPY_CLUSTER_KILLS sets the number of leader stops (default 6).
 */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/mount.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>
#include <dirent.h>

#include "cluster/node.h"
#include "util/log.h"

#include "loopback.h"
#include "tmpdir.h"

#define MAX_NODES        4
#define WAIT_MS          60000 /* bound of every wait (ASan on a shared machine) */
#define BIG_BYTES        (9u << 20)
#define FAILOVER_GOAL_MS 2000

typedef struct rec {
    uint64_t index;
    uint64_t value;
} rec;

/* A node's state machine: what it applied, readable from this thread. */
typedef struct tfsm {
    pthread_mutex_t mu;
    rec *log;
    size_t n, cap;
    unsigned restores;
    unsigned bad;
    char thread[16]; /* the name of the thread the first apply ran on */
} tfsm;

typedef struct tnode {
    kr_node *n;
    tfsm fsm;
    uint64_t id;
    char addr[64];
    char dir[128];
    int notify_fd; /* ours, written by the notify function; -1: kr_node_fd */
} tnode;

static char root[64];
static tnode nodes[MAX_NODES];
static unsigned election_ms;         /* 0: the default */
static uint64_t min_free[MAX_NODES]; /* 0: the default */
static char mounted[96];             /* a tmpfs to unmount at teardown */

/* Outcomes of the requests of one batch. */
static struct {
    unsigned ok, failed;
    kr_node_err last;
    char msg[256];
    uint64_t *index_of; /* value -> index */
    size_t cap;
} res;

static uint64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

/* ---- the state machine ---- */

static size_t payload(uint64_t v, size_t len, uint8_t *out)
{
    memcpy(out, &v, 8);
    for (size_t i = 8; i < len; i++)
        out[i] = (uint8_t)(v + i);
    return len;
}

static void push(tfsm *f, rec r)
{
    if (f->n == f->cap) {
        f->cap = f->cap ? f->cap * 2 : 256;
        f->log = realloc(f->log, f->cap * sizeof *f->log);
        assert_non_null(f->log);
    }
    f->log[f->n++] = r;
}

static int f_apply(void *arg, uint64_t index, const void *data, size_t len)
{
    tfsm *f = arg;
    const uint8_t *p = data;
    uint64_t v = 0;
    bool ok = len >= 8;
    if (ok) {
        memcpy(&v, p, 8);
        /* Every byte of small entries; a sample of the big one (apply runs
         * on the raft thread: while it runs, the node sends no heartbeat). */
        size_t step = len > 4096 ? 509 : 1;
        for (size_t i = 8; i < len && ok; i += step)
            ok = p[i] == (uint8_t)(v + i);
        ok = ok && p[len - 1] == (uint8_t)(v + len - 1);
    }
    pthread_mutex_lock(&f->mu);
    if (f->thread[0] == '\0')
        pthread_getname_np(pthread_self(), f->thread, sizeof f->thread);
    if (!ok || (f->n > 0 && f->log[f->n - 1].index >= index))
        f->bad++;
    push(f, (rec){index, v});
    pthread_mutex_unlock(&f->mu);
    return 0;
}

static int f_snapshot(void *arg, void **data, size_t *len)
{
    tfsm *f = arg;
    pthread_mutex_lock(&f->mu);
    *len = f->n * sizeof(rec);
    *data = malloc(*len ? *len : 1);
    if (*data != NULL && f->n > 0)
        memcpy(*data, f->log, *len);
    pthread_mutex_unlock(&f->mu);
    return *data != NULL ? 0 : -1;
}

static int f_restore(void *arg, const void *data, size_t len)
{
    tfsm *f = arg;
    if (len % sizeof(rec) != 0)
        return -1;
    pthread_mutex_lock(&f->mu);
    f->n = 0;
    for (size_t i = 0; i < len / sizeof(rec); i++) {
        rec r;
        memcpy(&r, (const uint8_t *)data + i * sizeof r, sizeof r);
        push(f, r);
    }
    f->restores++;
    pthread_mutex_unlock(&f->mu);
    return 0;
}

/* ---- nodes ---- */

static void notify(void *arg)
{
    tnode *t = arg;
    uint64_t one = 1;
    assert_int_equal(write(t->notify_fd, &one, sizeof one), 8);
}

/* Name node i (id i+1, a fresh port, its directory); nothing started. */
static void node_init(unsigned i)
{
    tnode *t = &nodes[i];
    memset(t, 0, sizeof *t);
    pthread_mutex_init(&t->fsm.mu, NULL);
    t->id = i + 1;
    snprintf(t->addr, sizeof t->addr, "localhost:%d", kr_test_free_port());
    snprintf(t->dir, sizeof t->dir, "%s/node-%u", root, i + 1);
    t->notify_fd = -1;
    if (i == 0) {
        t->notify_fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
        assert_true(t->notify_fd >= 0);
    }
}

/* Start node i on its directory; bootstrap with the first n_peers nodes
 * (0: join). A fresh, empty state machine: raft restores and replays. */
static void node_start(unsigned i, unsigned n_peers)
{
    tnode *t = &nodes[i];
    kr_node_peer peers[MAX_NODES];
    for (unsigned k = 0; k < n_peers; k++)
        peers[k] = (kr_node_peer){nodes[k].id, nodes[k].addr};
    pthread_mutex_lock(&t->fsm.mu);
    t->fsm.n = 0;
    pthread_mutex_unlock(&t->fsm.mu);
    kr_node_opts o = {
        .id = t->id,
        .addr = t->addr,
        .dir = t->dir,
        .peers = peers,
        .n_peers = n_peers,
        .fsm = {.arg = &t->fsm, .apply = f_apply, .snapshot = f_snapshot, .restore = f_restore},
        .notify = t->notify_fd >= 0 ? notify : NULL,
        .notify_arg = t,
        .election_ms = election_ms,
        .min_free = min_free[i],
        .snapshot_threshold = 128,
        .snapshot_trailing = 32};
    char err[256];
    if (kr_node_start(&o, &t->n, err, sizeof err) < 0)
        fail_msg("node %u: %s", i + 1, err);
}

static void node_stop(unsigned i)
{
    kr_node_stop(nodes[i].n);
    nodes[i].n = NULL;
}

static void node_free(unsigned i)
{
    tnode *t = &nodes[i];
    if (t->n != NULL)
        node_stop(i);
    if (t->notify_fd >= 0)
        close(t->notify_fd);
    free(t->fsm.log);
    pthread_mutex_destroy(&t->fsm.mu);
    memset(t, 0, sizeof *t);
}

/* Run waiting completions of every running node, waiting up to ms for one. */
static void pump(int ms)
{
    struct pollfd pf[MAX_NODES];
    unsigned map[MAX_NODES], k = 0;
    for (unsigned i = 0; i < MAX_NODES; i++) {
        if (nodes[i].n == NULL)
            continue;
        pf[k].fd = nodes[i].notify_fd >= 0 ? nodes[i].notify_fd : kr_node_fd(nodes[i].n);
        pf[k].events = POLLIN;
        map[k++] = i;
    }
    if (k == 0)
        return;
    poll(pf, k, ms);
    for (unsigned j = 0; j < k; j++) {
        tnode *t = &nodes[map[j]];
        if (t->notify_fd >= 0) {
            uint64_t v;
            ssize_t r = read(t->notify_fd, &v, sizeof v);
            (void)r;
        }
        kr_node_drain(t->n);
    }
}

static void on_done(void *arg, kr_node_err status, uint64_t index, const char *msg)
{
    uint64_t value = (uint64_t)(uintptr_t)arg;
    if (status == KR_NODE_OK) {
        res.ok++;
        if (value < res.cap)
            res.index_of[value] = index;
    } else {
        res.failed++;
    }
    res.last = status;
    snprintf(res.msg, sizeof res.msg, "%s", msg);
}

static void res_reset(uint64_t max_value)
{
    res.ok = res.failed = 0;
    res.last = KR_NODE_OK;
    res.msg[0] = '\0';
    if (max_value + 1 > res.cap) {
        res.cap = max_value + 1;
        res.index_of = realloc(res.index_of, res.cap * sizeof *res.index_of);
        assert_non_null(res.index_of);
    }
    memset(res.index_of, 0, res.cap * sizeof *res.index_of);
}

/* Wait until `n` requests completed. */
static void wait_done(unsigned n)
{
    uint64_t end = now_ms() + WAIT_MS;
    while (res.ok + res.failed < n && now_ms() < end)
        pump(20);
    assert_int_equal(res.ok + res.failed, n);
}

/* One request was queued (`queued`): wait for it and check its outcome. */
static void expect_done(kr_node_err queued, kr_node_err want)
{
    assert_int_equal(queued, KR_NODE_OK);
    wait_done(1);
    if (res.last != want)
        fail_msg("outcome %d (%s), not %d", res.last, res.msg, want);
}

/* Submit values first..last (payload of `len` bytes) to node i, pipelined;
 * wait for them all. @return how many were committed. */
static unsigned submit_range(unsigned i, uint64_t first, uint64_t last, size_t len)
{
    uint8_t *p = malloc(len);
    assert_non_null(p);
    res_reset(last);
    for (uint64_t v = first; v <= last; v++) {
        payload(v, len, p);
        kr_node_err e = kr_node_submit(nodes[i].n, p, len, on_done, (void *)(uintptr_t)v);
        assert_int_equal(e, KR_NODE_OK);
    }
    free(p);
    wait_done((unsigned)(last - first + 1));
    return res.ok;
}

/* Index of the node leading (a running one in leader state, highest term),
 * waiting up to ms for one other than `not`. @return its index, or -1. */
static int wait_leader(int not, uint64_t ms, uint64_t *took)
{
    uint64_t start = now_ms();
    do {
        int best = -1;
        uint64_t term = 0;
        for (unsigned i = 0; i < MAX_NODES; i++) {
            if (nodes[i].n == NULL || (int)i == not )
                continue;
            kr_node_status s;
            kr_node_get_status(nodes[i].n, &s);
            if (s.state == KR_NODE_LEADER && s.term > term) {
                best = (int)i;
                term = s.term;
            }
        }
        if (best >= 0) {
            if (took != NULL)
                *took = now_ms() - start;
            return best;
        }
        pump(5);
    } while (now_ms() - start < ms);
    return -1;
}

static void wait_applied(unsigned i, uint64_t index)
{
    uint64_t end = now_ms() + WAIT_MS;
    kr_node_status s;
    do {
        kr_node_get_status(nodes[i].n, &s);
        if (s.applied >= index)
            return;
        pump(10);
    } while (now_ms() < end);
    fail_msg("node %u applied %llu, not %llu", i + 1, (unsigned long long)s.applied,
             (unsigned long long)index);
}

/* Invariant: the applied logs of nodes a and b are prefixes of each other;
 * with `equal`, the same length too. */
static void check_logs(unsigned a, unsigned b, bool equal)
{
    tfsm *x = &nodes[a].fsm, *y = &nodes[b].fsm;
    /* Always the lower node first: one lock order. */
    pthread_mutex_lock(a < b ? &x->mu : &y->mu);
    pthread_mutex_lock(a < b ? &y->mu : &x->mu);
    size_t m = x->n < y->n ? x->n : y->n;
    bool same = x->bad == 0 && y->bad == 0 && (!equal || x->n == y->n);
    size_t k = 0;
    for (; k < m && same; k++)
        same = x->log[k].index == y->log[k].index && x->log[k].value == y->log[k].value;
    size_t xn = x->n, yn = y->n;
    unsigned xb = x->bad, yb = y->bad;
    pthread_mutex_unlock(&y->mu);
    pthread_mutex_unlock(&x->mu);
    if (!same)
        fail_msg("nodes %u and %u differ (lengths %zu, %zu; bad %u, %u; position %zu)", a + 1,
                 b + 1, xn, yn, xb, yb, k);
}

/* Is (index, value) in node i's log? */
static bool has_entry(unsigned i, uint64_t index, uint64_t value)
{
    tfsm *f = &nodes[i].fsm;
    bool found = false;
    pthread_mutex_lock(&f->mu);
    for (size_t k = f->n; k > 0 && !found; k--)
        found = f->log[k - 1].index == index && f->log[k - 1].value == value;
    pthread_mutex_unlock(&f->mu);
    return found;
}

static uint64_t last_applied_index(unsigned i)
{
    tfsm *f = &nodes[i].fsm;
    pthread_mutex_lock(&f->mu);
    uint64_t v = f->n > 0 ? f->log[f->n - 1].index : 0;
    pthread_mutex_unlock(&f->mu);
    return v;
}

static int setup(void **state)
{
    (void)state;
    kr_log_setup(KR_LOG_ERROR, KR_LOG_TEXT);
    signal(SIGPIPE, SIG_IGN); /* node.h: the process must ignore it */
    snprintf(root, sizeof root, "%s/krappy-raft-XXXXXX", kr_test_tmpdir());
    assert_non_null(mkdtemp(root));
    for (unsigned i = 0; i < MAX_NODES; i++)
        node_init(i);
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    for (unsigned i = 0; i < MAX_NODES; i++)
        node_free(i);
    free(res.index_of);
    memset(&res, 0, sizeof res);
    election_ms = 0;
    memset(min_free, 0, sizeof min_free);
    if (mounted[0] != '\0')
        umount(mounted);
    mounted[0] = '\0';
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf %s", root);
    assert_int_equal(system(cmd), 0);
    return 0;
}

/* Start nodes 1-3 as a new cluster. @return the leader's index. */
static unsigned start_three(void)
{
    for (unsigned i = 0; i < 3; i++)
        node_start(i, 3);
    int l = wait_leader(-1, WAIT_MS, NULL);
    assert_true(l >= 0);
    return (unsigned)l;
}

static int cmp_u64(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x < y ? -1 : x > y;
}

/* ---- tests ---- */

static void test_replicate_and_fail_over(void **state)
{
    (void)state;
    int l = (int)start_three();

    /* 1000 entries, pipelined: committed in submission order. */
    assert_int_equal(submit_range((unsigned)l, 1, 1000, 8 + 5), 1000);
    for (uint64_t v = 2; v <= 1000; v++)
        assert_true(res.index_of[v] > res.index_of[v - 1]);
    uint64_t last = res.index_of[1000];
    for (unsigned i = 0; i < 3; i++)
        wait_applied(i, last);
    check_logs(0, 1, true);
    check_logs(1, 2, true);

    /* The status, from both sides. */
    kr_node_status ls, fs;
    uint64_t end = now_ms() + WAIT_MS;
    bool caught_up;
    do {
        kr_node_get_status(nodes[l].n, &ls);
        caught_up = ls.n_members == 3;
        for (unsigned m = 0; m < ls.n_members; m++)
            caught_up &= ls.members[m].match >= last && ls.members[m].reachable &&
                         ls.members[m].role == KR_MEMBER_VOTER;
        if (!caught_up)
            pump(10);
    } while (!caught_up && now_ms() < end);
    assert_true(caught_up);
    assert_int_equal(ls.id, nodes[l].id);
    assert_int_equal(ls.leader_id, nodes[l].id);
    assert_false(ls.halted);
    assert_true(ls.commit >= last && ls.applied >= last && ls.last_index >= last);
    unsigned f = (unsigned)(l + 1) % 3;
    kr_node_get_status(nodes[f].n, &fs);
    assert_int_equal(fs.state, KR_NODE_FOLLOWER);
    assert_int_equal(fs.leader_id, nodes[l].id);
    assert_string_equal(fs.leader_addr, nodes[l].addr);
    assert_int_equal(fs.term, ls.term);
    assert_int_equal(fs.n_members, 3);

    /* A follower refuses writes, saying so. */
    res_reset(1);
    assert_int_equal(kr_node_submit(nodes[f].n, "12345678", 8, on_done, NULL), KR_NODE_OK);
    wait_done(1);
    assert_int_equal(res.last, KR_NODE_NOT_LEADER);
    assert_non_null(strstr(res.msg, "not the leader"));

    /* A 1 MiB command: well within what a 500 ms election timeout allows. */
    assert_int_equal(submit_range((unsigned)l, 1001, 1001, 1u << 20), 1);
    last = res.index_of[1001];
    for (unsigned i = 0; i < 3; i++)
        wait_applied(i, last);
    check_logs(0, 1, true);
    check_logs(1, 2, true);

    /* Stop the leader; a survivor leads; writes go on; the stopped node
     * comes back from its directory and catches up. */
    const char *env = getenv("KRAPPY_CLUSTER_KILLS");
    unsigned kills = env != NULL ? (unsigned)atoi(env) : 6;
    uint64_t *took = calloc(kills, sizeof *took);
    assert_non_null(took);
    uint64_t value = 2000;
    for (unsigned round = 0; round < kills; round++) {
        uint64_t stop_at = now_ms();
        node_stop((unsigned)l);
        int nl = wait_leader(l, WAIT_MS, NULL);
        took[round] = now_ms() - stop_at;
        assert_true(nl >= 0 && nl != l);
        assert_int_equal(submit_range((unsigned)nl, value + 1, value + 100, 24), 100);
        last = res.index_of[value + 100];
        value += 100;
        unsigned other = 3 - (unsigned)l - (unsigned)nl;
        wait_applied(other, last);
        check_logs((unsigned)nl, other, true);
        assert_true(has_entry(other, res.index_of[value - 99], value - 99));
        node_start((unsigned)l, 3); /* its directory is bootstrapped: no-op */
        wait_applied((unsigned)l, last);
        check_logs((unsigned)l, (unsigned)nl, false);
        assert_true(last_applied_index((unsigned)l) >= last);
        l = nl;
    }
    qsort(took, kills, sizeof *took, cmp_u64);
    print_message("new leader after a stop: min %llu ms, median %llu ms, max %llu ms "
                  "(%u stops; goal %d ms)\n",
                  (unsigned long long)took[0], (unsigned long long)took[kills / 2],
                  (unsigned long long)took[kills - 1], kills, FAILOVER_GOAL_MS);
    /* p99 of a handful is the max; allow the shared machine one slow one. */
    assert_true(took[kills > 3 ? kills - 2 : kills - 1] <= FAILOVER_GOAL_MS);
    free(took);
    unsigned restored = 0;
    for (unsigned i = 0; i < 3; i++)
        restored += nodes[i].fsm.restores;
    assert_true(restored > 0); /* restarts came back through snapshots */
}

static void test_membership(void **state)
{
    (void)state;
    int l = (int)start_three();
    assert_int_equal(submit_range((unsigned)l, 1, 50, 16), 50);

    /* A fourth node, on an empty directory, joins: added, then promoted. */
    node_start(3, 0);
    kr_node_status s;
    kr_node_get_status(nodes[3].n, &s);
    assert_int_equal(s.n_members, 0);
    res_reset(0);
    expect_done(kr_node_add(nodes[l].n, 4, nodes[3].addr, on_done, NULL), KR_NODE_OK);
    res_reset(0);
    expect_done(kr_node_assign(nodes[l].n, 4, KR_MEMBER_VOTER, on_done, NULL), KR_NODE_OK);
    assert_int_equal(submit_range((unsigned)l, 51, 100, 16), 50);
    uint64_t last = res.index_of[100];
    wait_applied(3, last);
    check_logs((unsigned)l, 3, false);
    kr_node_get_status(nodes[l].n, &s);
    assert_int_equal(s.n_members, 4);
    bool voter = false;
    for (unsigned m = 0; m < s.n_members; m++)
        voter |= s.members[m].id == 4 && s.members[m].role == KR_MEMBER_VOTER &&
                 strcmp(s.members[m].addr, nodes[3].addr) == 0;
    assert_true(voter);

    /* Refusals: a known id, an unknown one, a follower. */
    res_reset(0);
    expect_done(kr_node_add(nodes[l].n, 4, "localhost:1", on_done, NULL), KR_NODE_INVALID);
    res_reset(0);
    expect_done(kr_node_assign(nodes[l].n, 99, KR_MEMBER_VOTER, on_done, NULL), KR_NODE_INVALID);
    unsigned f = (unsigned)(l + 1) % 3;
    res_reset(0);
    expect_done(kr_node_remove(nodes[f].n, 4, on_done, NULL), KR_NODE_NOT_LEADER);
    assert_int_equal(kr_node_add(nodes[l].n, 5, "", on_done, NULL), KR_NODE_INVALID);

    /* Hand leadership over (as on SIGTERM). */
    res_reset(0);
    expect_done(kr_node_transfer(nodes[l].n, nodes[f].id, on_done, NULL), KR_NODE_OK);
    assert_int_equal(wait_leader(-1, WAIT_MS, NULL), (int)f);

    /* Remove the fourth node: it gets nothing more. */
    res_reset(0);
    expect_done(kr_node_remove(nodes[f].n, 4, on_done, NULL), KR_NODE_OK);
    kr_node_get_status(nodes[f].n, &s);
    assert_int_equal(s.n_members, 3);
    uint64_t before = last_applied_index(3);
    assert_int_equal(submit_range(f, 101, 150, 16), 50);
    last = res.index_of[150];
    for (unsigned i = 0; i < 3; i++)
        wait_applied(i, last);
    for (int k = 0; k < 20; k++)
        pump(10);
    assert_true(last_applied_index(3) < last);
    assert_true(last_applied_index(3) >= before);
    check_logs(0, 1, true);
    check_logs(1, 2, true);
}

/* A command larger than a raft_uv segment (8 MiB) is stored and applied
 * whole. It takes the raft threads a few hundred milliseconds here (libraft
 * copies and checksums it on its loop, the follower prepares a segment for
 * it), longer than the default election timeout allows: with 500 ms the
 * leader steps down half the time, unable to hear from a majority. So this
 * cluster runs with 3 s, and node.h says to keep commands small. */
static void test_big_entry(void **state)
{
    (void)state;
    election_ms = 3000;
    int l = (int)start_three();
    assert_int_equal(submit_range((unsigned)l, 1, 10, 100), 10);
    uint64_t t0 = now_ms();
    if (submit_range((unsigned)l, 11, 11, BIG_BYTES) != 1)
        fail_msg("the 9 MiB entry failed: %s", res.msg);
    uint64_t last = res.index_of[11];
    for (unsigned i = 0; i < 3; i++)
        wait_applied(i, last);
    print_message("a 9 MiB command committed and applied everywhere in %llu ms\n",
                  (unsigned long long)(now_ms() - t0));
    check_logs(0, 1, true);
    check_logs(1, 2, true);
    kr_node_status s;
    kr_node_get_status(nodes[l].n, &s);
    assert_int_equal(s.leader_id, nodes[l].id); /* no election meanwhile */
}

/* The first 8 bytes of a snapshot data file in dir (not a .meta), waiting
 * up to WAIT_MS for libuv's pool to write one. @return true when found. */
static bool snapshot_head(const char *dir, uint8_t head[8])
{
    uint64_t end = now_ms() + WAIT_MS;
    do {
        DIR *d = opendir(dir);
        assert_non_null(d);
        struct dirent *e;
        bool found = false;
        while (!found && (e = readdir(d)) != NULL) {
            size_t len = strlen(e->d_name);
            if (strncmp(e->d_name, "snapshot-", 9) != 0 ||
                (len > 5 && strcmp(e->d_name + len - 5, ".meta") == 0))
                continue;
            char path[400];
            snprintf(path, sizeof path, "%s/%s", dir, e->d_name);
            FILE *fp = fopen(path, "rb");
            found = fp != NULL && fread(head, 1, 8, fp) == 8;
            if (fp != NULL)
                fclose(fp);
        }
        closedir(d);
        if (found)
            return true;
        pump(20);
    } while (now_ms() < end);
    return false;
}

/* A cluster of one past its snapshot threshold (128): the snapshot file
 * holds the state machine's bytes in their envelope (fsm.h: "KR", version
 * 1), not an LZ4 frame (magic 04 22 4d 18, libraft's default), and a
 * restart restores from it. The FSM ran on the raft thread, kr-raft. */
static void test_snapshot_uncompressed(void **state)
{
    (void)state;
    node_start(0, 1);
    assert_true(wait_leader(-1, WAIT_MS, NULL) == 0);
    assert_int_equal(submit_range(0, 1, 300, 64), 300);
    uint8_t head[8];
    assert_true(snapshot_head(nodes[0].dir, head));
    static const uint8_t lz4[4] = {0x04, 0x22, 0x4d, 0x18};
    assert_memory_not_equal(head, lz4, 4);
    assert_int_equal(head[0], 'K');
    assert_int_equal(head[1], 'R');
    assert_int_equal(head[2], 1);
    assert_string_equal(nodes[0].fsm.thread, "kr-raft");
    uint64_t last = res.index_of[300];
    node_stop(0);
    node_start(0, 1);
    assert_true(wait_leader(-1, WAIT_MS, NULL) == 0);
    wait_applied(0, last);
    assert_true(nodes[0].fsm.restores > 0);
    assert_true(has_entry(0, last, 300));
}

/* A cluster of one leads at once. Commands are refused, with nothing
 * appended, while the raft disk has less than min_free left; membership
 * changes (no data) are not. */
static void test_no_space_guard(void **state)
{
    (void)state;
    struct statvfs v;
    assert_int_equal(statvfs(root, &v), 0);
    min_free[0] = (uint64_t)v.f_bavail * v.f_frsize + (1ull << 30); /* more than there is */
    node_start(0, 1);
    int l = wait_leader(-1, WAIT_MS, NULL);
    assert_int_equal(l, 0);
    assert_int_equal(kr_node_submit(nodes[0].n, "12345678", 8, on_done, NULL), KR_NODE_NO_SPACE);
    assert_non_null(strstr(kr_node_strerror(KR_NODE_NO_SPACE), "nearly full"));
    res_reset(0);
    expect_done(kr_node_add(nodes[0].n, 2, nodes[1].addr, on_done, NULL), KR_NODE_OK);
    node_stop(0);
    /* The same directory with room to spare: writes go through. */
    min_free[0] = 1;
    node_start(0, 0);
    assert_int_equal(wait_leader(-1, WAIT_MS, NULL), 0);
    assert_int_equal(submit_range(0, 1, 10, 8), 10);
}

/* The raft disk of the leader fills up (a 48 MiB tmpfs; needs root, skipped
 * otherwise). libraft 0.15 crashes when the leader's log write fails for
 * want of space (node.h); the min_free guard must refuse commands before
 * that, with nothing half-written, and the cluster must go on. */
static void test_disk_full(void **state)
{
    (void)state;
    snprintf(mounted, sizeof mounted, "%s/small", root);
    assert_int_equal(mkdir(mounted, 0700), 0);
    if (mount("tmpfs", mounted, "tmpfs", 0, "size=48m") < 0) {
        mounted[0] = '\0';
        print_message("cannot mount a small tmpfs here (not root?): skipped\n");
        skip();
    }
    snprintf(nodes[0].dir, sizeof nodes[0].dir, "%s/node-1", mounted);
    min_free[0] = 16u << 20;
    int l = (int)start_three();
    if (l != 0) {
        res_reset(0);
        assert_int_equal(kr_node_transfer(nodes[l].n, 1, on_done, NULL), KR_NODE_OK);
        wait_done(1);
        assert_int_equal(res.last, KR_NODE_OK);
        assert_int_equal(wait_leader(-1, WAIT_MS, NULL), 0);
    }
    uint8_t *p = malloc(256u << 10);
    assert_non_null(p);
    unsigned committed = 0;
    kr_node_err e = KR_NODE_OK;
    for (uint64_t v = 1; v <= 400 && e == KR_NODE_OK; v++) {
        payload(v, 256u << 10, p);
        res_reset(0);
        e = kr_node_submit(nodes[0].n, p, 256u << 10, on_done, NULL);
        if (e == KR_NODE_OK) {
            wait_done(1);
            assert_int_equal(res.last, KR_NODE_OK); /* never IO_ERROR: refused first */
            committed++;
        }
    }
    free(p);
    print_message("%u commands of 256 KiB committed before the guard refused one\n", committed);
    assert_int_equal(e, KR_NODE_NO_SPACE);
    assert_true(committed > 0);
    /* Still the leader, still serving what fits. */
    for (int k = 0; k < 30; k++)
        pump(10);
    kr_node_status s;
    kr_node_get_status(nodes[0].n, &s);
    assert_int_equal(s.state, KR_NODE_LEADER);
    assert_false(s.halted);
    for (unsigned i = 1; i < 3; i++)
        wait_applied(i, s.commit);
    check_logs(0, 1, true);
    check_logs(1, 2, true);
    for (unsigned i = 0; i < 3; i++)
        node_stop(i);
}

/* Stopping the leader with writes in flight (SIGTERM under load), again
 * and again. libraft 0.15 crashes (SIGSEGV in its log's reference counts)
 * when raft_close cancels a leader's pending log write; node.c lets the
 * writes finish first (node.h). Every accepted request completes exactly
 * once, during the stop at the latest; later ones are refused at once; the
 * logs agree at the end. $KRAPPY_CLUSTER_STOPS rounds (default 8). */
static void test_stop_under_load(void **state)
{
    (void)state;
    const char *env = getenv("KRAPPY_CLUSTER_STOPS");
    unsigned rounds = env != NULL ? (unsigned)atoi(env) : 8;
    for (unsigned i = 0; i < 3; i++)
        node_start(i, 3);
    uint8_t p[16];
    for (unsigned round = 0; round < rounds; round++) {
        int l = wait_leader(-1, WAIT_MS, NULL);
        assert_true(l >= 0);
        unsigned n = 500;
        res_reset(n);
        for (uint64_t v = 1; v <= 500; v++) {
            payload(v, sizeof p, p);
            assert_int_equal(kr_node_submit(nodes[l].n, p, sizeof p, on_done, (void *)(uintptr_t)v),
                             KR_NODE_OK);
        }
        unsigned f = (unsigned)(l + 1) % 3;
        if (round == 0) {
            assert_int_equal(kr_node_transfer(nodes[l].n, nodes[f].id, on_done, NULL), KR_NODE_OK);
            assert_int_equal(kr_node_add(nodes[l].n, 9, "localhost:9", on_done, NULL), KR_NODE_OK);
            n += 2;
        }
        node_stop((unsigned)l);
        assert_int_equal(res.ok + res.failed, n);
        pump(0);
        assert_int_equal(res.ok + res.failed, n);
        node_start((unsigned)l, 3);
    }
    /* A stopping node refuses nothing it accepted: the request completes. */
    int l = wait_leader(-1, WAIT_MS, NULL);
    assert_true(l >= 0);
    res_reset(0);
    assert_int_equal(kr_node_submit(nodes[l].n, p, sizeof p, on_done, NULL), KR_NODE_OK);
    node_stop((unsigned)l);
    assert_int_equal(res.ok + res.failed, 1);
    node_start((unsigned)l, 3);
    l = wait_leader(-1, WAIT_MS, NULL);
    assert_int_equal(submit_range((unsigned)l, 1, 10, 16), 10);
    for (unsigned i = 0; i < 3; i++)
        wait_applied(i, res.index_of[10]);
    check_logs(0, 1, true);
    check_logs(1, 2, true);
}

static void expect_start_error(const kr_node_opts *o, const char *needle)
{
    kr_node *n = NULL;
    char err[256] = "";
    assert_int_equal(kr_node_start(o, &n, err, sizeof err), -1);
    assert_null(n);
    if (strstr(err, needle) == NULL)
        fail_msg("start error \"%s\" does not mention \"%s\"", err, needle);
}

static void test_start_errors(void **state)
{
    (void)state;
    tnode *t = &nodes[0];
    kr_node_peer peers[2] = {{1, nodes[0].addr}, {2, nodes[1].addr}};
    kr_node_opts o = {
        .id = 1,
        .addr = t->addr,
        .dir = t->dir,
        .peers = peers,
        .n_peers = 2,
        .fsm = {.arg = &t->fsm, .apply = f_apply, .snapshot = f_snapshot, .restore = f_restore}};
    kr_node_opts b = o;
    b.id = 0;
    expect_start_error(&b, "greater than 0");
    b = o;
    b.id = 3;
    expect_start_error(&b, "does not list");
    b = o;
    b.fsm.apply = NULL;
    expect_start_error(&b, "apply");
    b = o;
    b.heartbeat_ms = 600;
    expect_start_error(&b, "shorter than the election timeout");
    b = o;
    b.addr = "no-port";
    expect_start_error(&b, "HOST:PORT");
    b = o;
    b.bind = "nonsense";
    expect_start_error(&b, "HOST:PORT");
    b = o;
    peers[1].id = 1;
    expect_start_error(&b, "--peers");
    peers[1].id = 2;
    /* The directory is a file. */
    char file[160];
    snprintf(file, sizeof file, "%s/a-file", root);
    FILE *fp = fopen(file, "w");
    assert_non_null(fp);
    fclose(fp);
    b = o;
    b.dir = file;
    expect_start_error(&b, "not a directory");
    /* The port is taken (by node 1 itself, started for real). */
    node_start(0, 2);
    b = o;
    b.id = 2;
    b.addr = nodes[0].addr;
    b.dir = nodes[1].dir;
    b.n_peers = 0;
    expect_start_error(&b, "listen");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_start_errors, setup, teardown),
        cmocka_unit_test_setup_teardown(test_replicate_and_fail_over, setup, teardown),
        cmocka_unit_test_setup_teardown(test_big_entry, setup, teardown),
        cmocka_unit_test_setup_teardown(test_membership, setup, teardown),
        cmocka_unit_test_setup_teardown(test_no_space_guard, setup, teardown),
        cmocka_unit_test_setup_teardown(test_disk_full, setup, teardown),
        cmocka_unit_test_setup_teardown(test_stop_under_load, setup, teardown),
        cmocka_unit_test_setup_teardown(test_snapshot_uncompressed, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
