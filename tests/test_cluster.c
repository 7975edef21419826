/*
 * tests/test_cluster.c - cluster/cluster.c: three krappyd cluster members in
 * this process (each with its raft thread), on one libevent loop that this
 * thread runs, over loopback, with data directories on disk.
 *
 * - three empty directories with the same --peers: every node asks the
 *   others, all bootstrap, one cluster forms: one leader, one cluster id,
 *   every node knows every node's data and Kafka addresses (NODE_INFO);
 *   followers send clients to the leader's address; the marker is written;
 * - the leader hands over leadership before it stops: a new leader within
 *   2 s; the stopped node comes back on its state;
 * - a node whose volume is lost (its directory emptied) comes back with the
 *   same id: it finds the cluster and rejoins as a new member (the old one
 *   removed, the new one added and made a voter) - it never bootstraps a
 *   second cluster;
 * - membership by hand: remove a node, add it back;
 * - refusals, as sentences: a directory whose raft state went missing, a
 *   single node's topics, bad --peers, --node-id auto from host names.
 */
#include <errno.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>
#include <event2/event.h>
#include <event2/thread.h>

#include "cluster/cluster.h"
#include "util/log.h"

#include "loopback.h"
#include "tmpdir.h"

#define N       3
#define WAIT_MS 60000 /* bound of every wait (ASan on a shared machine) */

typedef struct tmember {
    kr_cluster *c;
    uint64_t id;
    char dir[128];
    char raft[64];
    char data[64];
    char kafka[64];
} tmember;

static struct event_base *base;
static char root[64];
static char peers[512];
static tmember m[N];
static int failures;
static char failure[256];

static uint64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

/* Run the loop for about ms. */
static void pump(int ms)
{
    uint64_t end = now_ms() + (uint64_t)ms;
    do {
        event_base_loop(base, EVLOOP_ONCE | EVLOOP_NONBLOCK);
        struct timespec ts = {0, 2 * 1000000L};
        nanosleep(&ts, NULL);
    } while (now_ms() < end);
}

static void on_failed(void *arg, const char *why)
{
    (void)arg;
    failures++;
    snprintf(failure, sizeof failure, "%s", why);
}

static void member_start(unsigned i)
{
    char err[512];
    kr_cluster_opts o = {.node_id = m[i].id,
                         .raft_listen = m[i].raft,
                         .peers = peers,
                         .advertise = m[i].data,
                         .kafka_advertise = m[i].kafka,
                         .data_dir = m[i].dir,
                         .base = base,
                         .election_ms = 500,
                         .heartbeat_ms = 100,
                         .failed = on_failed};
    if (kr_cluster_start(&o, &m[i].c, err, sizeof err) < 0)
        fail_msg("node %u: %s", i + 1, err);
}

static void member_stop(unsigned i)
{
    kr_cluster_stop(m[i].c);
    m[i].c = NULL;
}

static int setup(void **state)
{
    (void)state;
    kr_log_setup(getenv("KRAPPY_TEST_LOG") ? KR_LOG_DEBUG : KR_LOG_ERROR, KR_LOG_TEXT);
    signal(SIGPIPE, SIG_IGN); /* libuv writes without MSG_NOSIGNAL (node.h) */
    evthread_use_pthreads();
    base = event_base_new();
    snprintf(root, sizeof root, "%s/krappy-cluster-XXXXXX", kr_test_tmpdir());
    assert_non_null(mkdtemp(root));
    size_t off = 0;
    for (unsigned i = 0; i < N; i++) {
        m[i] = (tmember){.id = i + 1};
        snprintf(m[i].dir, sizeof m[i].dir, "%s/node-%u", root, i + 1);
        assert_int_equal(mkdir(m[i].dir, 0700), 0);
        snprintf(m[i].raft, sizeof m[i].raft, "127.0.0.1:%d", kr_test_free_port());
        snprintf(m[i].data, sizeof m[i].data, "node%u.example:%u", i + 1, 7070 + 100 * i);
        snprintf(m[i].kafka, sizeof m[i].kafka, "node%u.example:%u", i + 1, 9092 + i);
        off += (size_t)snprintf(peers + off, sizeof peers - off, "%s%u=%s", i ? "," : "", i + 1,
                                m[i].raft);
    }
    failures = 0;
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    for (unsigned i = 0; i < N; i++)
        member_stop(i);
    event_base_free(base);
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", root);
    assert_int_equal(system(cmd), 0);
    return 0;
}

/* The member that leads as every running member sees it, once they agree
 * and have the cluster's metadata; -1 when not within ms. */
static int wait_agreed(uint64_t ms)
{
    uint64_t end = now_ms() + ms;
    while (now_ms() < end) {
        pump(20);
        int leader = -1;
        bool ok = true;
        uint64_t lid = 0;
        char cid[KR_CLUSTER_ID_MAX + 1] = "";
        for (unsigned i = 0; i < N && ok; i++) {
            if (m[i].c == NULL)
                continue;
            kr_cluster_status st;
            kr_cluster_status_get(m[i].c, &st);
            char why[256];
            ok = st.running && st.leader != 0 && (lid == 0 || st.leader == lid) &&
                 st.cluster_id[0] != '\0' && (cid[0] == '\0' || !strcmp(cid, st.cluster_id)) &&
                 kr_cluster_ready(m[i].c, why, sizeof why);
            lid = st.leader;
            snprintf(cid, sizeof cid, "%s", st.cluster_id);
            if (st.is_leader)
                leader = (int)i;
        }
        if (ok && leader >= 0)
            return leader;
    }
    return -1;
}

/* Every running member lists `n` voters, each with its data address. */
static bool all_know_addresses(unsigned n)
{
    for (unsigned i = 0; i < N; i++) {
        if (m[i].c == NULL)
            continue;
        kr_cluster_status st;
        kr_cluster_status_get(m[i].c, &st);
        unsigned voters = 0;
        for (unsigned k = 0; k < st.n_members; k++) {
            const kr_cluster_member *mb = &st.members[k];
            if (!mb->voter)
                return false;
            voters++;
            if (mb->id < 1 || mb->id > N || strcmp(mb->addr, m[mb->id - 1].data) != 0 ||
                strcmp(mb->kafka, m[mb->id - 1].kafka) != 0)
                return false;
        }
        if (voters != n)
            return false;
    }
    return true;
}

static void wait_addresses(unsigned n)
{
    uint64_t end = now_ms() + WAIT_MS;
    while (!all_know_addresses(n) && now_ms() < end)
        pump(20);
    assert_true(all_know_addresses(n));
}

static void start_all(void)
{
    for (unsigned i = 0; i < N; i++)
        member_start(i);
}

static void test_form_and_hand_over(void **state)
{
    (void)state;
    start_all();
    int leader = wait_agreed(WAIT_MS);
    assert_true(leader >= 0);
    wait_addresses(N);
    assert_int_equal(failures, 0);
    /* Followers send clients to the leader's data and Kafka addresses. */
    for (unsigned i = 0; i < N; i++) {
        char addr[128];
        assert_int_equal(kr_cluster_leader_addr(m[i].c, addr, sizeof addr), 1);
        assert_string_equal(addr, m[leader].data);
        uint64_t id = 0;
        assert_int_equal(kr_cluster_leader_kafka_addr(m[i].c, addr, sizeof addr, &id), 1);
        assert_string_equal(addr, m[leader].kafka);
        assert_int_equal(id, m[leader].id);
        assert_int_equal(kr_cluster_is_leader(m[i].c), (int)i == leader);
    }
    /* The marker names the cluster on every node. */
    kr_cluster_status st;
    kr_cluster_status_get(m[0].c, &st);
    for (unsigned i = 0; i < N; i++) {
        char path[256], line[128] = "";
        snprintf(path, sizeof path, "%s/cluster", m[i].dir);
        FILE *f = fopen(path, "r");
        assert_non_null(f);
        assert_non_null(fgets(line, sizeof line, f));
        fclose(f);
        line[strcspn(line, "\n")] = '\0';
        assert_string_equal(line, st.cluster_id);
    }
    /* Hand-over, then stop: another leads within 2 s. */
    uint64_t t0 = now_ms();
    kr_cluster_handover(m[leader].c);
    member_stop((unsigned)leader);
    int next = wait_agreed(WAIT_MS);
    assert_true(next >= 0 && next != leader);
    uint64_t took = now_ms() - t0;
    if (took > 2000)
        fail_msg("a new leader took %llu ms after the hand-over", (unsigned long long)took);
    kr_cluster_status_get(m[next].c, &st);
    assert_true(st.leader_changes >= 1);
    /* The stopped node comes back on its state, in the same cluster. */
    char cid[KR_CLUSTER_ID_MAX + 1];
    snprintf(cid, sizeof cid, "%s", st.cluster_id);
    member_start((unsigned)leader);
    assert_true(wait_agreed(WAIT_MS) >= 0);
    kr_cluster_status_get(m[leader].c, &st);
    assert_string_equal(st.cluster_id, cid);
    wait_addresses(N);
}

/* Empty a member's data directory (its volume is lost). */
static void wipe(unsigned i)
{
    char cmd[256];
    snprintf(cmd, sizeof cmd, "rm -rf '%s' && mkdir '%s'", m[i].dir, m[i].dir);
    assert_int_equal(system(cmd), 0);
}

static void test_lost_volume_rejoins(void **state)
{
    (void)state;
    start_all();
    int leader = wait_agreed(WAIT_MS);
    assert_true(leader >= 0);
    wait_addresses(N);
    kr_cluster_status st;
    kr_cluster_status_get(m[leader].c, &st);
    char cid[KR_CLUSTER_ID_MAX + 1];
    snprintf(cid, sizeof cid, "%s", st.cluster_id);
    unsigned lost = ((unsigned)leader + 1) % N;
    member_stop(lost);
    wipe(lost);
    member_start(lost);
    /* It rejoins the same cluster as a voter (never a second one). */
    uint64_t end = now_ms() + WAIT_MS;
    bool back = false;
    while (!back && now_ms() < end) {
        pump(50);
        kr_cluster_status_get(m[lost].c, &st);
        back = st.running && !strcmp(st.cluster_id, cid) && all_know_addresses(N);
    }
    assert_true(back);
    assert_true(wait_agreed(WAIT_MS) >= 0);
    char path[256];
    snprintf(path, sizeof path, "%s/cluster-joining", m[lost].dir);
    assert_int_equal(access(path, F_OK), -1); /* the join is through */
    assert_int_equal(failures, 0);
}

typedef struct outcome {
    int done;
    krappy_err err;
    char msg[256];
} outcome;

static void on_change(void *arg, krappy_err err, const char *msg)
{
    outcome *o = arg;
    o->done++;
    o->err = err;
    snprintf(o->msg, sizeof o->msg, "%s", msg);
}

static void wait_change(outcome *o)
{
    uint64_t end = now_ms() + WAIT_MS;
    while (o->done == 0 && now_ms() < end)
        pump(20);
    assert_int_equal(o->done, 1);
}

static void test_membership_by_hand(void **state)
{
    (void)state;
    start_all();
    int leader = wait_agreed(WAIT_MS);
    assert_true(leader >= 0);
    wait_addresses(N);
    unsigned other = ((unsigned)leader + 1) % N;
    char msg[256];
    outcome o = {0};
    /* Refusals first: not the leader, an unknown id, a bad address. */
    assert_int_equal(kr_cluster_remove(m[other].c, 1, on_change, &o, msg, sizeof msg),
                     KRAPPY_E_NOT_LEADER);
    assert_non_null(strstr(msg, "leader is at"));
    assert_int_equal(kr_cluster_remove(m[leader].c, 9, on_change, &o, msg, sizeof msg),
                     KRAPPY_E_INVALID_ARGUMENT);
    assert_int_equal(kr_cluster_add(m[leader].c, 9, "nonsense", on_change, &o, msg, sizeof msg),
                     KRAPPY_E_INVALID_ARGUMENT);
    assert_int_equal(
        kr_cluster_add(m[leader].c, m[other].id, m[other].raft, on_change, &o, msg, sizeof msg),
        KRAPPY_E_INVALID_ARGUMENT);
    /* Remove a follower, then add it back (its state is fresh enough). */
    assert_int_equal(kr_cluster_remove(m[leader].c, m[other].id, on_change, &o, msg, sizeof msg),
                     KRAPPY_OK);
    wait_change(&o);
    assert_int_equal(o.err, KRAPPY_OK);
    kr_cluster_status st;
    kr_cluster_status_get(m[leader].c, &st);
    assert_int_equal(st.n_members, N - 1);
    member_stop(other);
    wipe(other);
    o = (outcome){0};
    assert_int_equal(
        kr_cluster_add(m[leader].c, m[other].id, m[other].raft, on_change, &o, msg, sizeof msg),
        KRAPPY_OK);
    /* One change at a time. */
    outcome o2 = {0};
    assert_int_equal(kr_cluster_remove(m[leader].c, 1, on_change, &o2, msg, sizeof msg),
                     KRAPPY_E_BUSY);
    member_start(other); /* finds the cluster: joins; the add meets it there */
    wait_change(&o);
    if (o.err != KRAPPY_OK)
        fail_msg("the add failed: %s", o.msg);
    assert_true(wait_agreed(WAIT_MS) >= 0);
    wait_addresses(N);
}

static void expect_start_error(unsigned i, bool has_topics, const char *needle)
{
    char err[512];
    kr_cluster_opts o = {.node_id = m[i].id,
                         .raft_listen = m[i].raft,
                         .peers = peers,
                         .advertise = m[i].data,
                         .data_dir = m[i].dir,
                         .has_topics = has_topics,
                         .base = base};
    kr_cluster *c = NULL;
    assert_int_equal(kr_cluster_start(&o, &c, err, sizeof err), -1);
    assert_null(c);
    if (strstr(err, needle) == NULL)
        fail_msg("error \"%s\" lacks \"%s\"", err, needle);
}

static void test_refusals(void **state)
{
    (void)state;
    /* A stopped cluster (NULL: the store's last checkpoint runs after it)
     * leads nothing, so its retention is never logged. */
    assert_false(kr_cluster_is_leader(NULL));
    expect_start_error(0, true, "topics of a single krappyd");
    char path[256];
    snprintf(path, sizeof path, "%s/cluster", m[0].dir);
    FILE *f = fopen(path, "w");
    fputs("0123456789abcdef\n", f);
    fclose(f);
    expect_start_error(0, false, "raft state (");
    /* A single node's marker does not stop a cluster from forming there. */
    f = fopen(path, "w");
    fputs("0123456789abcdef single\n", f);
    fclose(f);
    char id[KR_CLUSTER_ID_MAX + 1], err[256];
    assert_int_equal(kr_cluster_single_id(m[0].dir, id, sizeof id, err, sizeof err), 0);
    assert_string_equal(id, "0123456789abcdef");
    assert_int_equal(kr_cluster_single_id(m[1].dir, id, sizeof id, err, sizeof err), 0);
    assert_int_equal(strlen(id), 16);
    char again[KR_CLUSTER_ID_MAX + 1];
    assert_int_equal(kr_cluster_single_id(m[1].dir, again, sizeof again, err, sizeof err), 0);
    assert_string_equal(id, again); /* the same across restarts */

    kr_node_peer *p;
    size_t n;
    assert_int_equal(kr_cluster_parse_peers("1=a:1,2=b:2,3=[::1]:3", &p, &n, err, sizeof err), 0);
    assert_int_equal(n, 3);
    assert_string_equal(p[2].addr, "[::1]:3");
    kr_cluster_free_peers(p, n);
    const char *bad[] = {"",     "1=a",      "0=a:1", "x=a:1", "1=a:1,1=b:2", "1=a:1,2=a:1",
                         "1=:7", "1=a:70000"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        err[0] = '\0';
        assert_int_equal(kr_cluster_parse_peers(bad[i], &p, &n, err, sizeof err), -1);
        assert_non_null(strstr(err, "--peers"));
    }
    uint64_t nid;
    assert_int_equal(kr_cluster_node_id_from_host("krappyd-2", &nid, err, sizeof err), 0);
    assert_int_equal(nid, 3);
    assert_int_equal(kr_cluster_node_id_from_host("web0", &nid, err, sizeof err), 0);
    assert_int_equal(nid, 1);
    assert_int_equal(kr_cluster_node_id_from_host("krappyd", &nid, err, sizeof err), -1);
    assert_non_null(strstr(err, "does not end in a number"));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_form_and_hand_over, setup, teardown),
        cmocka_unit_test_setup_teardown(test_lost_volume_rejoins, setup, teardown),
        cmocka_unit_test_setup_teardown(test_membership_by_hand, setup, teardown),
        cmocka_unit_test_setup_teardown(test_refusals, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
