/*
 * e2e/e2e_cluster.c - three krappyd processes on 127.0.0.1 as one cluster
 * (e2e/cluster.h), their raft links through the test's proxies:
 *
 * - they form one cluster: every node answers CLUSTER with the same id and
 *   leader, and every node's data address;
 * - a follower sends writers to the leader (NOT_LEADER with its address),
 *   and answers reads; the CLI, given every node, finds the leader;
 * - kill -9 of the leader, again and again: a new leader is known within
 *   2 s each time (p99 of the runs), the killed node comes back as a
 *   follower;
 * - SIGTERM of the leader hands leadership over first;
 * - the leader cut off by the proxies: the others elect one, the old one
 *   steps down; healed, one leader;
 * - membership through the admin API: remove a node, add it back; a node
 *   whose volume was lost rejoins on its own, never as a second cluster;
 * - an idempotent producer through a SIGSTOPped leader and delayed links,
 *   and through a rolling restart (writes stop < 2 s at a time);
 * - Kafka clients on a cluster (kcat): Metadata names the leader.
 * - the store replicated: PUBLISHes acknowledged by the leader are on
 *   every node, at the same offsets with the same bytes (FETCH from each),
 *   also through leader kills with restarts, and an idempotent producer
 *   publishing through leader kills stores every event exactly once;
 *   nodes restarted behind a snapshot fetch what they lack; single-event
 *   PUBLISHes pipelined on several connections share raft entries (BATCH),
 *   each acknowledged once, in order on its connection.
 * - consumer groups replicated: group writes go through the log and show
 *   on every node, ACKs are batched into few entries, and a group consuming
 *   through leader kills never sees its cursor move back.
 * - topic administration replicated: DELETE_TOPIC and TOPIC_CONFIG on the
 *   leader show on every node; a follower sends them to the leader.
 * - retention: the leader decides, every node retires the same segments;
 *   a node replaced (its volume lost) after retention moved on skips what
 *   every node retired and catches up to the same events.
 * - a disk that fails a replaced node's catch-up: the node halts (log,
 *   /readyz 503), the others go on, a restart once it is mended catches up;
 *   a leader whose disk fails hands the lead over, and an idempotent
 *   producer goes on exactly once; a halted follower elected once its
 *   leader dies hands the lead on too.
 * KRAPPY_E2E_TORTURE=1 runs 100 leader kills instead of 4, and 30 kills
 * under the producers instead of 3; KRAPPY_E2E_SMOKE=1 only the first two
 * tests; KRAPPY_E2E_ONLY=NAME the tests NAME matches (harness.h).
 */
#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "cluster.h"
#include "harness.h"
#include "krappy/client.h"
#include "proto/msg.h"

#define FAILOVER_GOAL_MS 2000

static krappy_client *client_to(const e2e_cluster *c, unsigned i)
{
    krappy_client *k = e2e_cluster_client(c, i);
    assert_non_null(k);
    return k;
}

static krappy_cluster_info *picture(const e2e_cluster *c, unsigned i)
{
    krappy_client *k = client_to(c, i);
    krappy_cluster_info *ci = NULL;
    assert_int_equal(krappy_cluster(k, &ci), KRAPPY_OK);
    krappy_client_free(k);
    return ci;
}

static int cmp_u64(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x < y ? -1 : x > y;
}

/* POST one event to topic t on node i's admin port: the body and the
 * HTTP status into out. */
static void admin_produce(const e2e_cluster *c, unsigned i, char *out, size_t len)
{
    char cmd[512];
    snprintf(cmd, sizeof cmd,
             "curl -s -w ' %%{http_code}' -XPOST -H 'Content-Type: application/json' "
             "http://127.0.0.1:%s/api/topics/t/events -d '{\"key\":\"c\",\"value\":3}'",
             c->node[i].http_port);
    assert_int_equal(e2e_run(cmd, out, len), 0);
}

/* GET `path` of node i's admin port: the HTTP status, the body into out. */
static int admin_get(const e2e_cluster *c, unsigned i, const char *path, char *out, size_t len)
{
    char cmd[512];
    snprintf(cmd, sizeof cmd, "curl -s -w ' %%{http_code}' http://127.0.0.1:%s%s",
             c->node[i].http_port, path);
    if (e2e_run(cmd, out, len) != 0)
        return -1;
    const char *sp = strrchr(out, ' ');
    return sp != NULL ? atoi(sp + 1) : -1;
}

/* Within 10 s every node has n events in topic (FETCH from each). */
static void expect_events_everywhere(const e2e_cluster *c, const char *topic, size_t n)
{
    uint64_t end = e2e_now_ms() + 10000;
    for (unsigned i = 0; i < c->n; i++) {
        krappy_events *ev = NULL;
        krappy_client *k = client_to(c, i);
        while ((krappy_fetch(k, topic, 0, 10, 0, 0, &ev) != KRAPPY_OK || ev->count < n) &&
               e2e_now_ms() < end) {
            krappy_events_free(ev);
            ev = NULL;
            usleep(50000);
        }
        assert_non_null(ev);
        assert_int_equal(ev->count, n);
        krappy_events_free(ev);
        krappy_client_free(k);
    }
}

static void test_form_and_route(void **state)
{
    (void)state;
    e2e_cluster c;
    assert_int_equal(e2e_cluster_start(&c, 3, true, NULL), 0);
    int leader = e2e_cluster_leader(&c, 10000);
    assert_true(leader >= 0);
    char cid[80] = "";
    for (unsigned i = 0; i < 3; i++) {
        krappy_cluster_info *ci = picture(&c, i);
        assert_int_equal(ci->node, i + 1);
        assert_int_equal(ci->leader, (uint64_t)leader + 1);
        if (cid[0] == '\0')
            snprintf(cid, sizeof cid, "%s", ci->cluster);
        assert_string_equal(ci->cluster, cid);
        assert_int_equal(ci->n_nodes, 3);
        for (size_t n = 0; n < 3; n++) {
            char want[64];
            e2e_cluster_addr(&c, (unsigned)ci->nodes[n].id - 1, want, sizeof want);
            assert_string_equal(ci->nodes[n].addr, want);
            assert_string_equal(ci->nodes[n].role,
                                ci->nodes[n].id == (uint64_t)leader + 1 ? "leader" : "follower");
        }
        krappy_cluster_info_free(ci);
    }
    /* A follower: writes get NOT_LEADER with the leader's address, reads an
     * answer. */
    unsigned f = ((unsigned)leader + 1) % 3;
    krappy_client *k = client_to(&c, f);
    assert_int_equal(krappy_register_producer(k, "t", "p", NULL), KRAPPY_E_NOT_LEADER);
    char want[64];
    e2e_cluster_addr(&c, (unsigned)leader, want, sizeof want);
    assert_string_equal(krappy_client_error_leader(k), want);
    assert_int_equal(krappy_ping(k), KRAPPY_OK);
    krappy_topic_list *tl;
    assert_int_equal(krappy_topics(k, &tl), KRAPPY_OK);
    krappy_topic_list_free(tl);
    /* ... and a membership change too. */
    assert_int_equal(krappy_cluster_remove(k, 3, NULL), KRAPPY_E_NOT_LEADER);
    krappy_client_free(k);
    /* The leader, found from any node of a list. */
    k = krappy_client_new(NULL);
    char list[600];
    snprintf(list, sizeof list, "127.0.0.1:1,%s", c.addrs);
    assert_int_equal(krappy_connect_leader(k, list, NULL), KRAPPY_OK);
    assert_int_equal(krappy_register_producer(k, "t", "p", NULL), KRAPPY_OK);
    krappy_client_free(k);
    /* The CLI, given every node: writes to the leader, shows the cluster. */
    char cmd[2048], out[8192];
    snprintf(cmd, sizeof cmd, "%s -h %s produce t a=1 b=2 && %s -h %s cluster", e2e_cli(), c.addrs,
             e2e_cli(), c.addrs);
    assert_int_equal(e2e_run(cmd, out, sizeof out), 0);
    assert_non_null(strstr(out, "produced 2 events"));
    assert_non_null(strstr(out, "leader"));
    assert_non_null(strstr(out, cid));
    /* The admin port's produce goes through the log on the leader, and is
     * sent there by a follower (409). (Deleting a topic:
     * test_topic_admin_replicated.) */
    admin_produce(&c, (unsigned)leader, out, sizeof out);
    assert_non_null(strstr(out, "\"first\":2"));
    admin_produce(&c, f, out, sizeof out);
    assert_non_null(strstr(out, " 409"));
    expect_events_everywhere(&c, "t", 3);
    /* /readyz says ready on every node. */
    for (unsigned i = 0; i < 3; i++) {
        snprintf(cmd, sizeof cmd, "curl -sf http://127.0.0.1:%s/readyz", c.node[i].http_port);
        assert_int_equal(e2e_run(cmd, out, sizeof out), 0);
        assert_non_null(strstr(out, "ready"));
    }
    /* The leader's /metrics: every family documented, the members' lag
     * there, no store halted. */
    static char body[1 << 18];
    assert_int_equal(admin_get(&c, (unsigned)leader, "/metrics", body, sizeof body), 200);
    char undocumented[128];
    if (e2e_metric_undocumented(body, undocumented, sizeof undocumented))
        fail_msg("docs/METRICS.md does not list %s", undocumented);
    assert_non_null(strstr(body, "\nkrappy_cluster_store_halted 0\n"));
    assert_non_null(strstr(body, "\nkrappy_cluster_member_lag_entries{node="));
    assert_int_equal(e2e_cluster_stop(&c), 0);
}

/* The leader killed again and again: the time until the others agree on a
 * new one, each time; the killed node comes back on its directory. */
static void test_leader_kills(void **state)
{
    (void)state;
    e2e_cluster c;
    assert_int_equal(e2e_cluster_start(&c, 3, false, NULL), 0);
    int rounds = e2e_torture() ? 100 : 4;
    uint64_t *took = calloc((size_t)rounds, sizeof *took);
    assert_non_null(took);
    for (int r = 0; r < rounds; r++) {
        int leader = e2e_cluster_leader(&c, 20000);
        assert_true(leader >= 0);
        uint64_t t0 = e2e_now_ms();
        e2e_kill9(&c.node[leader]);
        int next = e2e_cluster_leader(&c, 20000);
        assert_true(next >= 0 && next != leader);
        took[r] = e2e_now_ms() - t0;
        assert_int_equal(e2e_cluster_restart(&c, (unsigned)leader, NULL), 0);
    }
    qsort(took, (size_t)rounds, sizeof *took, cmp_u64);
    uint64_t p99 = took[(size_t)(rounds * 99 / 100 >= rounds ? rounds - 1 : rounds * 99 / 100)];
    printf("e2e_cluster: time to a new leader after kill -9, %d runs: median %llu ms, p99 %llu "
           "ms, max %llu ms (goal: p99 <= %d ms)\n",
           rounds, (unsigned long long)took[rounds / 2], (unsigned long long)p99,
           (unsigned long long)took[rounds - 1], FAILOVER_GOAL_MS);
    /* A speed goal is judged by make bench's C3 row on a quiet machine; here,
     * on a loaded ASan build, only liveness is asserted (the 20 s waits). */
    if (p99 > FAILOVER_GOAL_MS)
        printf("e2e_cluster: the failover goal was missed on this run (load or sanitizers); "
               "make bench's C3 row measures it\n");
    free(took);
    assert_true(e2e_cluster_leader(&c, 20000) >= 0);
    assert_int_equal(e2e_cluster_stop(&c), 0);
}

/* SIGTERM of the leader: leadership is handed over before it stops. */
static void test_sigterm_hands_over(void **state)
{
    (void)state;
    e2e_cluster c;
    assert_int_equal(e2e_cluster_start(&c, 3, false, NULL), 0);
    int leader = e2e_cluster_leader(&c, 10000);
    assert_true(leader >= 0);
    uint64_t t0 = e2e_now_ms();
    assert_int_equal(e2e_stop_keep(&c.node[leader], 15000), 0);
    int next = e2e_cluster_leader(&c, 10000);
    uint64_t took = e2e_now_ms() - t0;
    assert_true(next >= 0 && next != leader);
    printf("e2e_cluster: a new leader %llu ms after SIGTERM of the old one\n",
           (unsigned long long)took);
    char cmd[512], out[4096];
    snprintf(cmd, sizeof cmd, "grep -c 'leadership handed over' '%s'", c.node[leader].log_path);
    assert_int_equal(e2e_run(cmd, out, sizeof out), 0);
    assert_int_equal(e2e_cluster_restart(&c, (unsigned)leader, NULL), 0);
    assert_true(e2e_cluster_leader(&c, 10000) >= 0);
    assert_int_equal(e2e_cluster_stop(&c), 0);
}

/* The leader cut off: the majority elects another; the old one stops
 * leading; healed, they agree again. */
static void test_partition(void **state)
{
    (void)state;
    e2e_cluster c;
    assert_int_equal(e2e_cluster_start(&c, 3, true, NULL), 0);
    int leader = e2e_cluster_leader(&c, 10000);
    assert_true(leader >= 0);
    e2e_cluster_isolate(&c, (unsigned)leader);
    /* The two others agree on one of them. */
    uint64_t end = e2e_now_ms() + 20000;
    int other = -1;
    while (other < 0 && e2e_now_ms() < end) {
        krappy_cluster_info *a = picture(&c, ((unsigned)leader + 1) % 3);
        krappy_cluster_info *b = picture(&c, ((unsigned)leader + 2) % 3);
        if (a->leader != 0 && a->leader == b->leader && a->leader != (uint64_t)leader + 1)
            other = (int)a->leader - 1;
        krappy_cluster_info_free(a);
        krappy_cluster_info_free(b);
        if (other < 0)
            usleep(50000);
    }
    assert_true(other >= 0);
    /* The old leader, hearing from no majority, steps down. */
    end = e2e_now_ms() + 10000;
    bool stepped = false;
    while (!stepped && e2e_now_ms() < end) {
        krappy_cluster_info *o = picture(&c, (unsigned)leader);
        stepped = o->leader != (uint64_t)leader + 1;
        krappy_cluster_info_free(o);
        if (!stepped)
            usleep(50000);
    }
    assert_true(stepped);
    /* Writes there are refused: it does not lead. */
    krappy_client *k = client_to(&c, (unsigned)leader);
    assert_int_equal(krappy_register_producer(k, "t", "p", NULL), KRAPPY_E_NOT_LEADER);
    krappy_client_free(k);
    e2e_cluster_heal(&c);
    int now = e2e_cluster_leader(&c, 20000);
    assert_true(now >= 0);
    assert_int_equal(e2e_cluster_stop(&c), 0);
}

/* Membership through the admin API; a lost volume rejoins by itself. */
static void test_membership(void **state)
{
    (void)state;
    e2e_cluster c;
    assert_int_equal(e2e_cluster_start(&c, 3, false, NULL), 0);
    int leader = e2e_cluster_leader(&c, 10000);
    assert_true(leader >= 0);
    unsigned f = ((unsigned)leader + 1) % 3, g = ((unsigned)leader + 2) % 3;
    char cmd[1024], out[8192];
    /* Remove a follower through the leader's admin port. */
    snprintf(cmd, sizeof cmd, "curl -sf -XDELETE http://127.0.0.1:%s/api/cluster/members/%u",
             c.node[leader].http_port, f + 1);
    assert_int_equal(e2e_run(cmd, out, sizeof out), 0);
    krappy_cluster_info *ci = picture(&c, (unsigned)leader);
    assert_int_equal(ci->n_nodes, 2);
    krappy_cluster_info_free(ci);
    /* A follower's admin port refuses with 409 and names the leader. */
    snprintf(
        cmd, sizeof cmd,
        "curl -s -w ' %%{http_code}' -XPOST -H 'Content-Type: application/json' "
        "http://127.0.0.1:%s/api/cluster/members -d '{\"id\": %u, \"raft\": \"127.0.0.1:%d\"}'",
        c.node[g].http_port, f + 1, c.raft_port[f]);
    assert_int_equal(e2e_run(cmd, out, sizeof out), 0);
    assert_non_null(strstr(out, " 409"));
    assert_non_null(strstr(out, "the leader is at"));
    /* Added back through the leader's (the removed node still runs, on its
     * state): answered once it votes. */
    snprintf(
        cmd, sizeof cmd,
        "curl -sf -XPOST -H 'Content-Type: application/json' "
        "http://127.0.0.1:%s/api/cluster/members -d '{\"id\": %u, \"raft\": \"127.0.0.1:%d\"}'",
        c.node[leader].http_port, f + 1, c.raft_port[f]);
    assert_int_equal(e2e_run(cmd, out, sizeof out), 0);
    assert_non_null(strstr(out, "\"voter\":true"));
    assert_true(e2e_cluster_leader(&c, 20000) >= 0);
    /* Its volume is lost while it is a member: it finds the cluster and
     * rejoins on its own (the leader replaces its old incarnation), never
     * as a cluster of its own. */
    ci = picture(&c, (unsigned)leader);
    char cid[80];
    snprintf(cid, sizeof cid, "%s", ci->cluster);
    krappy_cluster_info_free(ci);
    e2e_kill9(&c.node[f]);
    snprintf(cmd, sizeof cmd, "rm -rf '%s/data'", c.node[f].dir);
    assert_int_equal(e2e_run(cmd, out, sizeof out), 0);
    assert_int_equal(e2e_cluster_restart(&c, f, NULL), 0);
    assert_true(e2e_cluster_leader(&c, 30000) >= 0);
    ci = picture(&c, f);
    assert_int_equal(ci->n_nodes, 3);
    assert_string_equal(ci->cluster, cid);
    krappy_cluster_info_free(ci);
    snprintf(cmd, sizeof cmd, "grep -c 'a cluster exists: joining it' '%s'", c.node[f].log_path);
    assert_int_equal(e2e_run(cmd, out, sizeof out), 0);
    assert_int_equal(e2e_cluster_stop(&c), 0);
}

/* ---- replication of the store ---- */

#define REP_TOPIC "rep"
#define REP_BATCH 10

/* One node's whole stream of a topic, as text: a line per event with its
 * offset, ts, key and value bytes (hex), so that two nodes compare whole. */
typedef struct dump {
    char *text;
    size_t len, cap;
    uint64_t next;
    size_t events;
} dump;

static void dump_add(dump *d, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void dump_add(dump *d, const char *fmt, ...)
{
    va_list ap;
    for (;;) {
        va_start(ap, fmt);
        int n = vsnprintf(d->text + d->len, d->cap - d->len, fmt, ap);
        va_end(ap);
        if (d->len + (size_t)n < d->cap) {
            d->len += (size_t)n;
            return;
        }
        d->cap = d->cap ? d->cap * 2 : 65536;
        d->text = realloc(d->text, d->cap);
        assert_non_null(d->text);
    }
}

/* The topic's first retained offset on node i (0 when it has none). */
static uint64_t first_on(const e2e_cluster *c, unsigned i)
{
    krappy_client *k = client_to(c, i);
    krappy_topic_list *tl = NULL;
    uint64_t first = 0;
    if (krappy_topics(k, &tl) == KRAPPY_OK)
        for (size_t n = 0; n < tl->count; n++)
            if (strcmp(tl->topics[n].name, REP_TOPIC) == 0)
                first = tl->topics[n].first;
    krappy_topic_list_free(tl);
    krappy_client_free(k);
    return first;
}

/* Call fn for every event of the topic on node i (FETCH from its first
 * until its next). @return that next. */
static uint64_t each_event(const e2e_cluster *c, unsigned i,
                           void (*fn)(void *arg, const krappy_event *e), void *arg)
{
    uint64_t off = first_on(c, i);
    krappy_client *k = client_to(c, i);
    for (;;) {
        krappy_events *ev = NULL;
        assert_int_equal(krappy_fetch(k, REP_TOPIC, off, 1000, 0, 0, &ev), KRAPPY_OK);
        for (size_t n = 0; n < ev->count; n++)
            fn(arg, &ev->events[n]);
        off = ev->next;
        size_t got = ev->count;
        krappy_events_free(ev);
        if (got == 0)
            break;
    }
    krappy_client_free(k);
    return off;
}

static void dump_event(void *arg, const krappy_event *e)
{
    dump *d = arg;
    dump_add(d, "%llu %llu %.*s ", (unsigned long long)e->offset, (unsigned long long)e->ts,
             (int)e->key_len, (const char *)e->key);
    for (size_t b = 0; b < e->value_len; b++)
        dump_add(d, "%02x", e->value[b]);
    dump_add(d, "\n");
    d->events++;
}

/* Every event of the topic on node i. */
static void dump_node(const e2e_cluster *c, unsigned i, dump *d)
{
    memset(d, 0, sizeof *d);
    dump_add(d, "%s", "");
    d->next = each_event(c, i, dump_event, d);
}

/* The topic's next offset on node i (0 when it has no such topic yet). */
static uint64_t next_on(const e2e_cluster *c, unsigned i)
{
    krappy_client *k = client_to(c, i);
    krappy_topic_list *tl = NULL;
    uint64_t next = 0;
    if (krappy_topics(k, &tl) == KRAPPY_OK)
        for (size_t n = 0; n < tl->count; n++)
            if (strcmp(tl->topics[n].name, REP_TOPIC) == 0)
                next = tl->topics[n].next;
    krappy_topic_list_free(tl);
    krappy_client_free(k);
    return next;
}

/*
 * Once every node caught up with the leader's next: the same stream on
 * every node (offsets, ts, keys, bytes), each event (numbered in its
 * value) at most once, each acknowledged one exactly once.
 */
static void check_streams(e2e_cluster *cp, int total, const char *acked, int n_acked, int unknown,
                          int kills)
{
    e2e_cluster c = *cp;
    assert_true(e2e_cluster_leader(&c, 20000) >= 0);
    /* Every node applies what is committed: wait until all three stand at
     * the same next. */
    uint64_t end = e2e_now_ms() + 30000, nx[3] = {0};
    do {
        for (unsigned i = 0; i < 3; i++)
            nx[i] = next_on(&c, i);
        if (nx[0] > 0 && nx[0] == nx[1] && nx[1] == nx[2])
            break;
        usleep(100000);
    } while (e2e_now_ms() < end);
    dump d[3];
    for (unsigned i = 0; i < 3; i++)
        dump_node(&c, i, &d[i]);
    printf("e2e_cluster: %d events acknowledged, %d of unknown outcome, %d leader kills; %zu "
           "events on each node\n",
           n_acked, unknown, kills, d[0].events);
    for (unsigned i = 1; i < 3; i++) {
        assert_int_equal(d[i].next, d[0].next);
        if (d[i].len != d[0].len || memcmp(d[i].text, d[0].text, d[0].len) != 0)
            fail_msg("node %u's stream differs from node 1's", i + 1);
    }
    int *seen = calloc((size_t)total, sizeof *seen);
    assert_non_null(seen);
    /* Each line is "offset ts key value-hex"; a value "ev-NNNNNN" is 0x69
     * (text of 9 bytes), then "ev-" (65762d), then the digits. One pass:
     * the text is megabytes long. */
    for (const char *line = d[0].text, *stop = d[0].text + d[0].len; line < stop;) {
        const char *nl = memchr(line, '\n', (size_t)(stop - line));
        const char *eol = nl != NULL ? nl : stop;
        const char *v = eol;
        while (v > line && v[-1] != ' ')
            v--;
        if (eol - v == 8 + 12 && memcmp(v, "6965762d", 8) == 0) {
            int no = 0;
            for (const char *q = v + 8; q < eol; q += 2)
                no = no * 10 + (q[1] - '0');
            assert_true(no >= 0 && no < total);
            seen[no]++;
        }
        line = eol + 1;
    }
    for (int no = 0; no < total; no++) {
        if (seen[no] > 1)
            fail_msg("event %d is stored %d times", no, seen[no]);
        if (acked[no] && seen[no] != 1)
            fail_msg("acknowledged event %d is missing", no);
    }
    assert_true(d[0].events >= (size_t)n_acked);
    for (unsigned i = 0; i < 3; i++)
        free(d[i].text);
    free(seen);
}

/* Once a producer is flushed: every one of the `sent` events it sent is on
 * every node exactly once (check_streams). */
static void check_all_acked(e2e_cluster *c, int sent, int kills)
{
    char *acked = malloc((size_t)sent + 1);
    assert_non_null(acked);
    memset(acked, 1, (size_t)sent + 1);
    check_streams(c, sent, acked, sent, 0, kills);
    free(acked);
}

/* A batch of REP_BATCH events numbered from `from`. */
static void fill_batch(krappy_batch *b, int from)
{
    krappy_batch_reset(b);
    for (int e = 0; e < REP_BATCH; e++) {
        char key[16], val[32];
        int no = from + e;
        int kl = snprintf(key, sizeof key, "k%d", no % 7);
        int vl = snprintf(val, sizeof val, "ev-%06d", no);
        assert_int_equal(
            krappy_batch_add_text(b, KRAPPY_KEY_TEXT, key, (size_t)kl, val, (size_t)vl), KRAPPY_OK);
    }
}

/* A client on the leader, registered on the topic. */
static krappy_client *producer_on_leader(const e2e_cluster *c)
{
    krappy_client *k = krappy_client_new(&(krappy_opts){.timeout_ms = 5000});
    assert_non_null(k);
    uint64_t end = e2e_now_ms() + 20000;
    while (e2e_now_ms() < end) {
        if (krappy_connect_leader(k, c->addrs, NULL) == KRAPPY_OK &&
            krappy_register_producer(k, REP_TOPIC, "p", NULL) == KRAPPY_OK)
            return k;
        usleep(100000);
    }
    fail_msg("no leader took the producer's registration within 20 s");
    return NULL;
}

/*
 * PUBLISHes to the leader, which is killed (-9) `kills` times along the
 * way and restarted on its directory: every acknowledged event is on every
 * node exactly once, at the same offset with the same ts and bytes, and no
 * event is there twice (a PUBLISH whose outcome is unknown is not sent
 * again: plain producers).
 */
static void run_replicated(int kills, int batches_per_round)
{
    e2e_cluster c;
    assert_int_equal(e2e_cluster_start(&c, 3, false, NULL), 0);
    int total = (kills + 1) * batches_per_round * REP_BATCH;
    char *acked = calloc((size_t)total, 1);
    assert_non_null(acked);
    int ev_no = 0, n_acked = 0, unknown = 0;
    krappy_batch *b = krappy_batch_new();
    assert_non_null(b);
    for (int round = 0; round <= kills; round++) {
        krappy_client *k = producer_on_leader(&c);
        for (int i = 0; i < batches_per_round; i++) {
            int from = ev_no;
            fill_batch(b, from);
            ev_no += REP_BATCH;
            krappy_publish_result pr;
            krappy_err e = krappy_publish(k, b, KRAPPY_ACK_WRITE, &pr);
            if (e == KRAPPY_OK) {
                assert_int_equal(pr.count, REP_BATCH);
                memset(acked + from, 1, REP_BATCH);
                n_acked += REP_BATCH;
            } else {
                unknown += REP_BATCH; /* the lead moved under it: outcome unknown */
                krappy_client_free(k);
                k = producer_on_leader(&c);
            }
        }
        krappy_client_free(k);
        if (round < kills) {
            int leader = e2e_cluster_leader(&c, 20000);
            assert_true(leader >= 0);
            e2e_kill9(&c.node[leader]);
            assert_true(e2e_cluster_leader(&c, 20000) >= 0);
            assert_int_equal(e2e_cluster_restart(&c, (unsigned)leader, NULL), 0);
        }
    }
    krappy_batch_free(b);
    check_streams(&c, total, acked, n_acked, unknown, kills);
    free(acked);
    assert_int_equal(e2e_cluster_stop(&c), 0);
}

static void test_replicated_publish(void **state)
{
    (void)state;
    run_replicated(0, 20);
}

/* Plain producers through leader kills: the idempotent test covers kills
 * in make test; this one runs in make torture. */
static void test_replicated_leader_kills(void **state)
{
    (void)state;
    if (getenv("KRAPPY_E2E_TORTURE") == NULL) {
        printf("e2e_cluster: plain producers through leader kills run in make torture\n");
        return;
    }
    run_replicated(30, 10);
}

/* An idempotent producer handle publishing until told to stop. */
typedef struct idem_load {
    const char *addrs;
    atomic_int stop;
    int sent; /* events */
    krappy_err err;
    char errmsg[256];
    krappy_producer_info info;
    uint64_t last_ack_ms, worst_gap_ms; /* the longest time without an ack */
    atomic_uint acks;                   /* so far (read by other threads) */
    unsigned pace_us;                   /* a pause after each batch (0: none) */
} idem_load;

static void on_ack(void *arg, const krappy_producer_ack *ack)
{
    (void)ack;
    idem_load *l = arg;
    atomic_fetch_add(&l->acks, 1);
    uint64_t now = e2e_now_ms();
    if (l->last_ack_ms != 0 && now - l->last_ack_ms > l->worst_gap_ms)
        l->worst_gap_ms = now - l->last_ack_ms;
    l->last_ack_ms = now;
}

/* Publish batches numbered from `base` as the idempotent producer `id`
 * until told to stop (or `limit` events), then flush. */
static void produce(idem_load *l, const char *id, krappy_ack ack, int base, int limit,
                    int reconnect_ms)
{
    krappy_producer *p = NULL;
    krappy_producer_opts o = {.ack = ack, .reconnect_ms = reconnect_ms, .on_ack = on_ack, .arg = l};
    l->err = krappy_producer_open(l->addrs, REP_TOPIC, id, &o, &p);
    krappy_batch *b = krappy_batch_new();
    while (l->err == KRAPPY_OK && !l->stop && l->sent + REP_BATCH <= limit) {
        fill_batch(b, base + l->sent);
        l->err = krappy_producer_send(p, b, NULL);
        if (l->err == KRAPPY_OK)
            l->sent += REP_BATCH;
        if (l->pace_us > 0)
            usleep(l->pace_us);
    }
    if (l->err == KRAPPY_OK)
        l->err = krappy_producer_flush(p);
    if (p != NULL) {
        snprintf(l->errmsg, sizeof l->errmsg, "%s", krappy_producer_errmsg(p));
        krappy_producer_info_get(p, &l->info);
    }
    krappy_batch_free(b);
    krappy_producer_free(p);
}

static void *idem_producer(void *arg)
{
    produce(arg, "idem-1", KRAPPY_ACK_WRITE, 0, 999999, 20000);
    return NULL;
}

/*
 * An idempotent producer publishing through kill -9 of the leader, again
 * and again (each killed node restarted on its directory): once flushed,
 * every event it sent is on every node exactly once, in the same order
 * with the same bytes, and the time to a new leader under load is measured.
 */
static void test_idempotent_failover(void **state)
{
    (void)state;
    e2e_cluster c;
    assert_int_equal(e2e_cluster_start(&c, 3, false, NULL), 0);
    int kills = getenv("KRAPPY_E2E_TORTURE") ? 30 : 3;
    idem_load l = {.addrs = c.addrs};
    pthread_t th;
    assert_int_equal(e2e_thread_start(&th, idem_producer, &l), 0);
    uint64_t worst = 0;
    for (int k = 0; k < kills; k++) {
        usleep(600000);
        int leader = e2e_cluster_leader(&c, 20000);
        assert_true(leader >= 0);
        uint64_t t0 = e2e_now_ms();
        e2e_kill9(&c.node[leader]);
        assert_true(e2e_cluster_leader(&c, 20000) >= 0);
        if (e2e_now_ms() - t0 > worst)
            worst = e2e_now_ms() - t0;
        assert_int_equal(e2e_cluster_restart(&c, (unsigned)leader, NULL), 0);
    }
    usleep(300000);
    l.stop = 1;
    e2e_thread_join(th);
    if (l.err != KRAPPY_OK)
        fail_msg("the producer failed: %s", l.errmsg);
    printf("e2e_cluster: idempotent producer through %d leader kills: %llu batches acked, %llu "
           "sent again, %llu duplicates, %llu reconnects; slowest new leader %llu ms\n",
           kills, (unsigned long long)l.info.acked, (unsigned long long)l.info.resent,
           (unsigned long long)l.info.duplicates, (unsigned long long)l.info.reconnects,
           (unsigned long long)worst);
    check_all_acked(&c, l.sent, kills);
    assert_int_equal(e2e_cluster_stop(&c), 0);
}

/* Wait until every node names the same leader, one that runs. */
static int settled_leader(e2e_cluster *c)
{
    int l = e2e_cluster_leader(c, 20000);
    assert_true(l >= 0);
    return l;
}

/*
 * An idempotent producer publishing while the leader is SIGSTOPped (the
 * others elect one; resumed, the old leader steps down and discards what
 * was not committed) and while every raft link is delayed: once flushed,
 * every event once on every node. 10 s stopped with KRAPPY_E2E_TORTURE.
 */
static void test_stop_and_delay(void **state)
{
    (void)state;
    e2e_cluster c;
    assert_int_equal(e2e_cluster_start(&c, 3, true, NULL), 0);
    idem_load l = {.addrs = c.addrs};
    pthread_t th;
    assert_int_equal(e2e_thread_start(&th, idem_producer, &l), 0);
    usleep(500000);
    int leader = settled_leader(&c);
    kill(c.node[leader].pid, SIGSTOP);
    uint64_t t0 = e2e_now_ms(), end = t0 + 20000;
    int other = -1;
    while (other < 0 && e2e_now_ms() < end) {
        krappy_client *k = client_to(&c, ((unsigned)leader + 1) % 3);
        krappy_cluster_info *ci = NULL;
        if (krappy_cluster(k, &ci) == KRAPPY_OK && ci->leader != 0 &&
            ci->leader != (uint64_t)leader + 1)
            other = (int)ci->leader - 1;
        krappy_cluster_info_free(ci);
        krappy_client_free(k);
        if (other < 0)
            usleep(50000);
    }
    assert_true(other >= 0);
    printf("e2e_cluster: a new leader %llu ms after SIGSTOP of the old one\n",
           (unsigned long long)(e2e_now_ms() - t0));
    usleep(getenv("KRAPPY_E2E_TORTURE") ? 10000000 : 2000000);
    kill(c.node[leader].pid, SIGCONT);
    settled_leader(&c);
    for (unsigned i = 0; i < 3; i++)
        e2e_proxy_delay(c.proxy[i], 0, 50);
    usleep(1500000);
    e2e_cluster_heal(&c);
    settled_leader(&c);
    usleep(300000);
    l.stop = 1;
    e2e_thread_join(th);
    if (l.err != KRAPPY_OK)
        fail_msg("the producer failed: %s", l.errmsg);
    check_all_acked(&c, l.sent, 0);
    assert_int_equal(e2e_cluster_stop(&c), 0);
}

/*
 * A rolling restart under load: each node in turn stopped (SIGTERM: a
 * leader hands over first) and started again once the cluster agrees;
 * nothing is lost and writes stop for less than 2 s at a time.
 */
static void test_rolling_restart(void **state)
{
    (void)state;
    e2e_cluster c;
    assert_int_equal(e2e_cluster_start(&c, 3, false, NULL), 0);
    idem_load l = {.addrs = c.addrs, .pace_us = 10000}; /* ~100 PUBLISHes a second */
    pthread_t th;
    assert_int_equal(e2e_thread_start(&th, idem_producer, &l), 0);
    for (unsigned i = 0; i < 3; i++) {
        usleep(500000);
        assert_int_equal(e2e_stop_keep(&c.node[i], 15000), 0);
        assert_true(e2e_cluster_leader(&c, 20000) >= 0);
        assert_int_equal(e2e_cluster_restart(&c, i, NULL), 0);
        assert_true(e2e_cluster_leader(&c, 20000) >= 0);
    }
    usleep(500000);
    l.stop = 1;
    e2e_thread_join(th);
    if (l.err != KRAPPY_OK)
        fail_msg("the producer failed: %s", l.errmsg);
    printf("e2e_cluster: rolling restart of 3 nodes under load: %d events, the longest time "
           "without an acknowledgement %llu ms (goal: < 2000 ms)\n",
           l.sent, (unsigned long long)l.worst_gap_ms);
    check_all_acked(&c, l.sent, 0);
    if (l.worst_gap_ms >= 2000)
        fail_msg("writes stopped for %llu ms during the rolling restart",
                 (unsigned long long)l.worst_gap_ms);
    assert_int_equal(e2e_cluster_stop(&c), 0);
}

/* The Kafka listener on a cluster: Metadata names the leader's Kafka
 * address on every node, so a producer bootstrapped on a follower writes
 * to the leader, and the events are on every node. */
static void test_kafka(void **state)
{
    (void)state;
    char out[8192], cmd[1024];
    if (e2e_run("command -v kcat", out, sizeof out) != 0) {
        printf("e2e_cluster: kcat is not installed; the Kafka test skipped\n");
        return;
    }
    e2e_cluster c;
    const char *extra[] = {"--kafka-listen", "127.0.0.1:0", NULL};
    assert_int_equal(e2e_cluster_start(&c, 3, false, extra), 0);
    int leader = e2e_cluster_leader(&c, 10000);
    assert_true(leader >= 0);
    unsigned f = ((unsigned)leader + 1) % 3;
    char want[64];
    snprintf(want, sizeof want, "127.0.0.1:%s", c.node[leader].kafka_port);
    snprintf(cmd, sizeof cmd, "kcat -b 127.0.0.1:%s -L -m 5", c.node[f].kafka_port);
    assert_int_equal(e2e_run(cmd, out, sizeof out), 0);
    if (strstr(out, want) == NULL)
        fail_msg("Metadata on a follower does not name the leader at %s: %s", want, out);
    snprintf(cmd, sizeof cmd,
             "printf 'k1:a\\nk2:b\\nk3:c\\n' | kcat -P -b 127.0.0.1:%s -t kt -K: -X "
             "enable.idempotence=false -m 10",
             c.node[f].kafka_port);
    assert_int_equal(e2e_run(cmd, out, sizeof out), 0);
    expect_events_everywhere(&c, "kt", 3);
    assert_int_equal(e2e_cluster_stop(&c), 0);
}

/* Whether the fault shim is there (KRAPPY_SHIM, KRAPPY_POWERCUT); if not,
 * says that the test of `what` is skipped. */
static bool shim_or_skip(const char *what)
{
    if (e2e_have_shim())
        return true;
    printf("e2e_cluster: no shim (KRAPPY_SHIM, KRAPPY_POWERCUT); the %s test is skipped\n", what);
    return false;
}

/* ---- every node power-cut at once ---- */

/*
 * Node i started again on its directory under the fault shim, which then
 * tracks its streams (DATA/topics) only: libraft writes its log with
 * direct, synchronous I/O (io_submit, which the shim does not see), durable
 * once written, so the power cut leaves it alone, as it leaves RocksDB's
 * view (never ahead of the synced streams). @return 0 or -1.
 */
/* Restart node i under the fault shim, tracking DATA/`under` only. */
static int restart_shimmed_in(e2e_cluster *c, unsigned i, const char *under)
{
    char root[400];
    if (e2e_shim_on(&c->node[i]) < 0)
        return -1;
    snprintf(root, sizeof root, "%s/data/%s", c->node[i].dir, under);
    setenv("KRAPPY_SHIM_ROOT", root, 1);
    int rc = e2e_cluster_restart(c, i, NULL);
    e2e_shim_off();
    unsetenv("KRAPPY_SHIM_ROOT");
    return rc;
}

/* ... tracking its topics' files. */
static int restart_shimmed(e2e_cluster *c, unsigned i)
{
    return restart_shimmed_in(c, i, "topics");
}

#define CUT_SYNC_BASE 500000 /* the ack-sync producer's first event number */

/* An idempotent producer with its own id, ack and numbering. */
typedef struct cut_load {
    idem_load l;
    const char *id;
    krappy_ack ack;
    int base; /* its events are numbered from here */
} cut_load;

static void *cut_producer(void *arg)
{
    cut_load *cl = arg;
    produce(&cl->l, cl->id, cl->ack, cl->base, CUT_SYNC_BASE - 1, 30000);
    return NULL;
}

/*
 * Two idempotent producers (ack write, ack sync) publishing while all three
 * nodes lose power at once (kill -9 of each, then the shim's powercut drops
 * whatever their streams had not synced), and again after they restart:
 * every acknowledged event is on every node exactly once, in the same order
 * with the same bytes. Checkpoints are an hour apart, so that the streams
 * are synced by raft snapshots (every 1024 entries here) or not at all. One
 * cut; five with KRAPPY_E2E_TORTURE.
 */
static void test_powercut_all(void **state)
{
    (void)state;
    if (!shim_or_skip("power cut"))
        return;
    e2e_cluster c;
    const char *extra[] = {"--checkpoint-interval", "1h", "--raft-snapshot-every", "1024", NULL};
    assert_int_equal(e2e_cluster_start(&c, 3, false, extra), 0);
    for (unsigned i = 0; i < 3; i++)
        e2e_kill9(&c.node[i]);
    for (unsigned i = 0; i < 3; i++)
        assert_int_equal(restart_shimmed(&c, i), 0);
    assert_true(e2e_cluster_leader(&c, 20000) >= 0);
    cut_load w = {.l = {.addrs = c.addrs}, .id = "cut-w", .ack = KRAPPY_ACK_WRITE, .base = 0};
    cut_load s = {
        .l = {.addrs = c.addrs}, .id = "cut-s", .ack = KRAPPY_ACK_SYNC, .base = CUT_SYNC_BASE};
    pthread_t tw, ts;
    assert_int_equal(e2e_thread_start(&tw, cut_producer, &w), 0);
    assert_int_equal(e2e_thread_start(&ts, cut_producer, &s), 0);
    int cuts = getenv("KRAPPY_E2E_TORTURE") ? 5 : 1;
    uint64_t worst_leader = 0;
    for (int k = 0; k < cuts; k++) {
        /* Past a snapshot (PUBLISHes share entries, so that takes a
         * while), within 10 s. */
        uint64_t commit = 0, give_up = e2e_now_ms() + 10000;
        usleep(1500000);
        do {
            int l = e2e_cluster_leader(&c, 20000);
            assert_true(l >= 0);
            krappy_cluster_info *ci = picture(&c, (unsigned)l);
            commit = ci->commit;
            krappy_cluster_info_free(ci);
        } while (commit < 1024u * (unsigned)(k + 1) + 64 && e2e_now_ms() < give_up &&
                 usleep(200000) == 0);
        if (commit < 1024)
            printf("e2e_cluster: only %llu raft entries before the cut: no snapshot was taken, "
                   "the test is weaker this time (a slow machine)\n",
                   (unsigned long long)commit);
        for (unsigned i = 0; i < 3; i++)
            e2e_kill9(&c.node[i]);
        for (unsigned i = 0; i < 3; i++)
            assert_int_equal(e2e_powercut(&c.node[i]), 0);
        uint64_t t0 = e2e_now_ms();
        for (unsigned i = 0; i < 3; i++)
            assert_int_equal(restart_shimmed(&c, i), 0);
        assert_true(e2e_cluster_leader(&c, 30000) >= 0);
        uint64_t took = e2e_now_ms() - t0;
        printf("e2e_cluster: power cut %d of all three nodes at raft index %llu (snapshots "
               "every 1024): a leader %llu ms after the restarts began\n",
               k + 1, (unsigned long long)commit, (unsigned long long)took);
        if (took > worst_leader)
            worst_leader = took;
    }
    usleep(500000);
    w.l.stop = 1;
    s.l.stop = 1;
    e2e_thread_join(tw);
    e2e_thread_join(ts);
    if (w.l.err != KRAPPY_OK)
        fail_msg("the ack-write producer failed: %s", w.l.errmsg);
    if (s.l.err != KRAPPY_OK)
        fail_msg("the ack-sync producer failed: %s", s.l.errmsg);
    printf("e2e_cluster: %d power cuts: %d + %d events sent (ack write, ack sync), %llu + %llu "
           "batches sent again; a leader %llu ms after the restarts at worst, writes stopped "
           "for %llu ms at most\n",
           cuts, w.l.sent, s.l.sent, (unsigned long long)w.l.info.resent,
           (unsigned long long)s.l.info.resent, (unsigned long long)worst_leader,
           (unsigned long long)(w.l.worst_gap_ms > s.l.worst_gap_ms ? w.l.worst_gap_ms
                                                                    : s.l.worst_gap_ms));
    int total = CUT_SYNC_BASE + s.l.sent;
    char *acked = calloc((size_t)total + 1, 1);
    assert_non_null(acked);
    memset(acked, 1, (size_t)w.l.sent);
    memset(acked + CUT_SYNC_BASE, 1, (size_t)s.l.sent);
    check_streams(&c, total, acked, w.l.sent + s.l.sent, 0, 0);
    free(acked);
    assert_int_equal(e2e_cluster_stop(&c), 0);
}

/* A batch of n events of 100 KiB each. */
static void fill_big(krappy_batch *b, size_t n, char *val, size_t vl)
{
    krappy_batch_reset(b);
    for (size_t e = 0; e < n; e++) {
        val[0] = (char)('a' + e);
        assert_int_equal(krappy_batch_add_text(b, KRAPPY_KEY_TEXT, "big", 3, val, vl), KRAPPY_OK);
    }
}

/*
 * A PUBLISH over a raft entry's bound (1 MiB, KR_CLUSTER_COMMAND_MAX) is
 * refused with a sentence saying so, nothing stored; one just under it is
 * stored on every node.
 */
static void test_big_publish(void **state)
{
    (void)state;
    e2e_cluster c;
    assert_int_equal(e2e_cluster_start(&c, 3, false, NULL), 0);
    krappy_client *k = krappy_client_new(&(krappy_opts){.timeout_ms = 10000});
    assert_non_null(k);
    assert_int_equal(krappy_connect_leader(k, c.addrs, NULL), KRAPPY_OK);
    assert_int_equal(krappy_register_producer(k, "big", "p", NULL), KRAPPY_OK);
    size_t vl = 100 * 1024;
    char *val = malloc(vl);
    assert_non_null(val);
    memset(val, 'x', vl);
    krappy_batch *b = krappy_batch_new();
    assert_non_null(b);
    krappy_publish_result pr;
    fill_big(b, 11, val, vl); /* 1.1 MiB */
    assert_int_equal(krappy_publish(k, b, KRAPPY_ACK_WRITE, &pr), KRAPPY_E_INVALID_ARGUMENT);
    const char *why = krappy_client_errmsg(k);
    if (strstr(why, "at most 1048576 bytes") == NULL || strstr(why, "smaller batches") == NULL)
        fail_msg("the refusal does not state the bound: %s", why);
    fill_big(b, 9, val, vl); /* 0.9 MiB */
    assert_int_equal(krappy_publish(k, b, KRAPPY_ACK_WRITE, &pr), KRAPPY_OK);
    assert_int_equal(pr.first, 0);
    assert_int_equal(pr.count, 9);
    krappy_batch_free(b);
    krappy_client_free(k);
    free(val);
    expect_events_everywhere(&c, "big", 9);
    assert_int_equal(e2e_cluster_stop(&c), 0);
}

/* Node i's applied raft index. */
static uint64_t applied_on(const e2e_cluster *c, unsigned i)
{
    krappy_cluster_info *ci = picture(c, i);
    uint64_t a = ci->applied;
    krappy_cluster_info_free(ci);
    return a;
}

/*
 * Single-event PUBLISHes pipelined on four connections to the leader (two
 * idempotent producer handles, two plain connections) go to the log as
 * BATCH entries, many per entry: every PUBLISH is acknowledged once, with
 * its own offset, in order on its connection, and every node holds the
 * same stream.
 */
#define PIPE_CONNS 4
#define PIPE_EACH  250

/* One connection's acknowledgements. */
typedef struct pipe_acks {
    int j, n;
    uint64_t last;
    char *acked;
} pipe_acks;

static void pipe_acked(pipe_acks *pa, uint64_t first, uint64_t count)
{
    assert_int_equal(count, 1);
    if (pa->n > 0 && first <= pa->last)
        fail_msg("connection %d: PUBLISH %d stored at %llu, before its predecessor's %llu", pa->j,
                 pa->n, (unsigned long long)first, (unsigned long long)pa->last);
    pa->last = first;
    assert_int_equal(pa->acked[pa->j * PIPE_EACH + pa->n], 0);
    pa->acked[pa->j * PIPE_EACH + pa->n++] = 1;
}

static void on_pipe_ack(void *arg, const krappy_producer_ack *ack)
{
    pipe_acks *pa = arg;
    assert_false(ack->duplicate);
    assert_int_equal(ack->seq, (uint64_t)pa->n);
    pipe_acked(pa, ack->first, ack->count);
}

static void test_pipelined_batching(void **state)
{
    (void)state;
    e2e_cluster c;
    assert_int_equal(e2e_cluster_start(&c, 3, false, NULL), 0);
    int leader = e2e_cluster_leader(&c, 20000);
    assert_true(leader >= 0);
    int total = PIPE_CONNS * PIPE_EACH;
    char *acked = calloc((size_t)total, 1);
    assert_non_null(acked);
    krappy_client *k[PIPE_CONNS] = {0};
    krappy_producer *p[PIPE_CONNS] = {0};
    pipe_acks pa[PIPE_CONNS];
    for (int j = 0; j < PIPE_CONNS; j++) {
        char id[16];
        snprintf(id, sizeof id, "p%d", j);
        pa[j] = (pipe_acks){.j = j, .acked = acked};
        if (j % 2 == 0) {
            krappy_producer_opts o = {.on_ack = on_pipe_ack, .arg = &pa[j]};
            assert_int_equal(krappy_producer_open(c.addrs, REP_TOPIC, id, &o, &p[j]), KRAPPY_OK);
            continue;
        }
        k[j] = krappy_client_new(&(krappy_opts){.timeout_ms = 10000});
        assert_non_null(k[j]);
        assert_int_equal(krappy_connect_leader(k[j], c.addrs, NULL), KRAPPY_OK);
        assert_int_equal(krappy_register_producer(k[j], REP_TOPIC, id, NULL), KRAPPY_OK);
    }
    krappy_batch *b = krappy_batch_new();
    assert_non_null(b);
    uint64_t before = applied_on(&c, (unsigned)leader);
    for (int i = 0; i < PIPE_EACH; i++)
        for (int j = 0; j < PIPE_CONNS; j++) {
            char val[32];
            int vl = snprintf(val, sizeof val, "ev-%06d", j * PIPE_EACH + i);
            krappy_batch_reset(b);
            assert_int_equal(krappy_batch_add_text(b, KRAPPY_KEY_TEXT, "k", 1, val, (size_t)vl),
                             KRAPPY_OK);
            if (p[j] != NULL)
                assert_int_equal(krappy_producer_send(p[j], b, NULL), KRAPPY_OK);
            else
                assert_int_equal(krappy_publish_send(k[j], b, KRAPPY_ACK_WRITE, NULL), KRAPPY_OK);
        }
    for (int j = 0; j < PIPE_CONNS; j++) {
        if (p[j] != NULL) {
            assert_int_equal(krappy_producer_flush(p[j]), KRAPPY_OK);
            krappy_producer_free(p[j]);
        }
        for (int i = 0; k[j] != NULL && i < PIPE_EACH; i++) {
            krappy_publish_result pr;
            if (krappy_publish_recv(k[j], &pr) != KRAPPY_OK)
                fail_msg("connection %d: PUBLISH %d refused: %s", j, i, krappy_client_errmsg(k[j]));
            assert_int_equal(pr.seq, (uint64_t)i + 1);
            pipe_acked(&pa[j], pr.first, pr.count);
        }
        krappy_client_free(k[j]);
        assert_int_equal(pa[j].n, PIPE_EACH);
    }
    uint64_t entries = applied_on(&c, (unsigned)leader) - before;
    printf("e2e_cluster: %d pipelined single-event PUBLISHes on %d connections took %llu raft "
           "entries\n",
           total, PIPE_CONNS, (unsigned long long)entries);
    assert_true(entries >= 1 && entries * 4 <= (uint64_t)total);
    krappy_batch_free(b);
    check_streams(&c, total, acked, total, 0, 0);
    free(acked);
    assert_int_equal(e2e_cluster_stop(&c), 0);
}

/* ---- consumer groups replicated ---- */

/* Group `group`'s cursor on node i, UINT64_MAX when the node has no such
 * group (STATS there). */
static uint64_t group_cursor_on(const e2e_cluster *c, unsigned i, const char *group)
{
    krappy_client *k = client_to(c, i);
    krappy_topic_stats *st = NULL;
    uint64_t cur = UINT64_MAX;
    if (krappy_stats(k, REP_TOPIC, group, &st) == KRAPPY_OK && st->n_groups == 1)
        cur = st->groups[0].cursor;
    krappy_topic_stats_free(st);
    krappy_client_free(k);
    return cur;
}

/* Within 10 s every running node has the group's cursor at `want`
 * (UINT64_MAX: no such group). */
static void expect_cursor_everywhere(const e2e_cluster *c, const char *group, uint64_t want)
{
    for (unsigned i = 0; i < c->n; i++) {
        if (c->node[i].pid == 0)
            continue;
        uint64_t end = e2e_now_ms() + 10000, got;
        while ((got = group_cursor_on(c, i, group)) != want && e2e_now_ms() < end)
            usleep(50000);
        if (got != want)
            fail_msg("node %u has group %s at cursor %llu, not %llu", i + 1, group,
                     (unsigned long long)got, (unsigned long long)want);
    }
}

/* A client on the leader, registered as a member of `group`. */
static krappy_client *consumer_on_leader(const e2e_cluster *c, const char *group,
                                         const krappy_consumer_opts *o, krappy_consumer_info *info)
{
    krappy_client *k = krappy_client_new(&(krappy_opts){.timeout_ms = 5000});
    assert_non_null(k);
    uint64_t end = e2e_now_ms() + 20000;
    while (e2e_now_ms() < end) {
        if (krappy_connect_leader(k, c->addrs, NULL) == KRAPPY_OK &&
            krappy_register_consumer(k, REP_TOPIC, group, o, info) == KRAPPY_OK)
            return k;
        usleep(100000);
    }
    fail_msg("no leader took the consumer's registration within 20 s: %s", krappy_client_errmsg(k));
    return NULL;
}

/*
 * Every group write goes through the log: a group created, ACKs (by
 * offset and up to), a seek, an auto-ack member's POLL and a deletion show
 * on every node; a follower sends group writes to the leader; 50 ACKs
 * pipelined on one connection take a few raft entries, not one each.
 */
static void test_groups_replicated(void **state)
{
    (void)state;
    e2e_cluster c;
    assert_int_equal(e2e_cluster_start(&c, 3, false, NULL), 0);
    krappy_client *p = producer_on_leader(&c);
    krappy_batch *b = krappy_batch_new();
    assert_non_null(b);
    for (int i = 0; i < 10; i++) {
        krappy_publish_result pr;
        fill_batch(b, i * REP_BATCH);
        assert_int_equal(krappy_publish(p, b, KRAPPY_ACK_WRITE, &pr), KRAPPY_OK);
    }
    krappy_batch_free(b);
    krappy_consumer_info info;
    krappy_client *k = consumer_on_leader(&c, "g", NULL, &info);
    assert_int_equal(info.cursor, 0);
    expect_cursor_everywhere(&c, "g", 0);

    krappy_events *ev = NULL;
    uint64_t cur = 0;
    assert_int_equal(krappy_poll(k, 20, 1000, 0, &ev), KRAPPY_OK);
    assert_int_equal(ev->count, 20);
    krappy_events_free(ev);
    assert_int_equal(krappy_ack_upto(k, 20, &cur), KRAPPY_OK);
    assert_int_equal(cur, 20);
    expect_cursor_everywhere(&c, "g", 20);
    assert_int_equal(krappy_poll(k, 10, 1000, 0, &ev), KRAPPY_OK);
    assert_int_equal(ev->count, 10);
    krappy_events_free(ev);
    uint64_t offs[5] = {20, 21, 22, 23, 24};
    assert_int_equal(krappy_ack_offsets(k, offs, 5, &cur, NULL), KRAPPY_OK);
    assert_int_equal(cur, 25);
    expect_cursor_everywhere(&c, "g", 25);
    assert_int_equal(krappy_ack_upto(k, 30, &cur), KRAPPY_OK);
    assert_int_equal(cur, 30);

    /* 50 ACKs in one write: one round per loop turn, a few entries. */
    int leader = e2e_cluster_leader(&c, 20000);
    assert_true(leader >= 0);
    assert_int_equal(krappy_poll(k, 50, 1000, 0, &ev), KRAPPY_OK);
    assert_int_equal(ev->count, 50);
    uint64_t before = applied_on(&c, (unsigned)leader);
    for (size_t i = 0; i < 50; i++)
        assert_int_equal(krappy_ack_offsets_send(k, &ev->events[i].offset, 1), KRAPPY_OK);
    for (size_t i = 0; i < 50; i++)
        assert_int_equal(krappy_ack_recv(k, &cur, NULL), KRAPPY_OK);
    krappy_events_free(ev);
    /* CLUSTER's applied index is the raft thread's copy, taken once per
     * turn of its loop: on a loaded machine it can trail the answers. */
    uint64_t after = applied_on(&c, (unsigned)leader);
    for (uint64_t until = e2e_now_ms() + 2000; after == before && e2e_now_ms() < until;
         after = applied_on(&c, (unsigned)leader))
        usleep(10000);
    uint64_t entries = after - before;
    printf("e2e_cluster: 50 pipelined ACKs took %llu raft entries\n", (unsigned long long)entries);
    assert_true(entries >= 1 && entries < 25);
    assert_int_equal(cur, 80);
    expect_cursor_everywhere(&c, "g", 80);

    /* A follower sends group writes to the leader. */
    krappy_client *f = client_to(&c, (unsigned)(leader + 1) % 3);
    assert_int_equal(krappy_group_seek(f, REP_TOPIC, "g", KRAPPY_SEEK_OFFSET, 5, NULL),
                     KRAPPY_E_NOT_LEADER);
    assert_int_equal(krappy_register_consumer(f, REP_TOPIC, "g", NULL, NULL), KRAPPY_E_NOT_LEADER);
    krappy_client_free(f);

    assert_int_equal(krappy_group_seek(p, REP_TOPIC, "g", KRAPPY_SEEK_OFFSET, 5, &cur), KRAPPY_OK);
    assert_int_equal(cur, 5);
    expect_cursor_everywhere(&c, "g", 5);
    assert_int_equal(krappy_poll(k, 1, 1000, 0, &ev), KRAPPY_OK);
    assert_int_equal(ev->count, 1);
    assert_int_equal(ev->events[0].offset, 5);
    krappy_events_free(ev);

    /* An auto-ack member: its cursor is committed before the events go out. */
    krappy_consumer_opts ao = {.ack = KRAPPY_CONSUMER_ACK_AUTO};
    krappy_client *a = consumer_on_leader(&c, "auto", &ao, &info);
    assert_int_equal(krappy_poll(a, 7, 1000, 0, &ev), KRAPPY_OK);
    assert_int_equal(ev->count, 7);
    krappy_events_free(ev);
    expect_cursor_everywhere(&c, "auto", 7);
    krappy_client_free(a);

    assert_int_equal(krappy_group_delete(p, REP_TOPIC, "g"), KRAPPY_OK);
    expect_cursor_everywhere(&c, "g", UINT64_MAX);
    assert_int_equal(krappy_poll(k, 1, 0, 0, &ev), KRAPPY_E_NOT_REGISTERED);
    krappy_client_free(k);
    krappy_client_free(p);
    assert_int_equal(e2e_cluster_stop(&c), 0);
}

/*
 * A group consuming while an idempotent producer publishes and the leader
 * is kill -9ed again and again (10 times, 100 in make torture; each killed
 * node restarted): no cursor an ACK reported ever moves back; after each
 * failover the member, registered again on the new leader, resumes at the
 * committed cursor (at least the last one reported, at most what it asked
 * for) with the events from there on; at the end every node has the group
 * where the member left it, at the topic's end, and every event the
 * producer sent is on every node exactly once, in the same order with the
 * same bytes. The time to a new leader under this load is measured too.
 */
static void test_group_failover(void **state)
{
    (void)state;
    e2e_cluster c;
    assert_int_equal(e2e_cluster_start(&c, 3, false, NULL), 0);
    int kills = e2e_torture() ? 100 : 10;
    uint64_t *took = calloc((size_t)kills, sizeof *took);
    assert_non_null(took);
    idem_load l = {.addrs = c.addrs, .pace_us = 10000};
    pthread_t th;
    assert_int_equal(e2e_thread_start(&th, idem_producer, &l), 0);
    krappy_consumer_info info;
    krappy_client *k = consumer_on_leader(&c, "g", NULL, &info);
    uint64_t acked = info.cursor, asked = info.cursor, end_at = UINT64_MAX,
             expect_from = UINT64_MAX;
    int killed = 0, failovers = 0, killed_at_reg = 0;
    bool stopped = false;
    uint64_t limit_ms = 60000 + 8000 * (uint64_t)kills;
    uint64_t next_kill = e2e_now_ms() + 1000, deadline = e2e_now_ms() + limit_ms;
    while (acked != end_at) {
        if (e2e_now_ms() > deadline)
            fail_msg("the group stands at %llu of %llu after %llu s", (unsigned long long)acked,
                     (unsigned long long)end_at, (unsigned long long)limit_ms / 1000);
        if (killed < kills && e2e_now_ms() >= next_kill) {
            int leader = e2e_cluster_leader(&c, 20000);
            assert_true(leader >= 0);
            uint64_t t0 = e2e_now_ms();
            e2e_kill9(&c.node[leader]);
            assert_true(e2e_cluster_leader(&c, 20000) >= 0);
            took[killed] = e2e_now_ms() - t0;
            assert_int_equal(e2e_cluster_restart(&c, (unsigned)leader, NULL), 0);
            killed++;
            next_kill = e2e_now_ms() + 1000;
        } else if (killed == kills && !stopped) {
            l.stop = 1;
            e2e_thread_join(th);
            stopped = true;
            if (l.err != KRAPPY_OK)
                fail_msg("the producer failed: %s", l.errmsg);
            end_at = (uint64_t)l.sent; /* stored exactly once each */
        }
        krappy_events *ev = NULL;
        uint64_t cur = 0;
        krappy_err e = krappy_poll(k, 200, 100, 0, &ev);
        if (e == KRAPPY_OK && ev->count > 0) {
            if (expect_from != UINT64_MAX && ev->events[0].offset != expect_from)
                fail_msg("after a failover the member got offset %llu first, not the committed "
                         "cursor %llu",
                         (unsigned long long)ev->events[0].offset, (unsigned long long)expect_from);
            expect_from = UINT64_MAX;
            uint64_t upto = ev->events[ev->count - 1].offset + 1;
            asked = upto > asked ? upto : asked;
            e = krappy_ack_upto(k, upto, &cur);
            if (e == KRAPPY_OK) {
                if (cur < acked)
                    fail_msg("the group's cursor moved back from %llu to %llu",
                             (unsigned long long)acked, (unsigned long long)cur);
                acked = cur;
            }
        }
        krappy_events_free(ev);
        if (e == KRAPPY_OK)
            continue;
        /* The leader went: register again on the one that leads now. */
        krappy_client_free(k);
        k = consumer_on_leader(&c, "g", NULL, &info);
        if (info.cursor < acked || info.cursor > asked)
            fail_msg("after a failover the group's cursor is %llu: the last ACK answered %llu, "
                     "the highest asked for %llu",
                     (unsigned long long)info.cursor, (unsigned long long)acked,
                     (unsigned long long)asked);
        acked = info.cursor;
        /* A new leader's group has no hand-outs: it starts at the cursor.
         * (On the same leader the old member's may still be out.) */
        expect_from = killed != killed_at_reg ? info.cursor : UINT64_MAX;
        killed_at_reg = killed;
        failovers++;
    }
    qsort(took, (size_t)kills, sizeof *took, cmp_u64);
    printf("e2e_cluster: a group consumed %llu events through %d leader kills (%d failovers "
           "seen by the member); time to a new leader under load: median %llu ms, p99 %llu ms\n",
           (unsigned long long)acked, kills, failovers, (unsigned long long)took[kills / 2],
           (unsigned long long)took[(size_t)kills * 99 / 100]);
    krappy_client_free(k);
    expect_cursor_everywhere(&c, "g", end_at);
    char *was_acked = malloc((size_t)l.sent + 1);
    assert_non_null(was_acked);
    memset(was_acked, 1, (size_t)l.sent + 1);
    check_streams(&c, l.sent, was_acked, l.sent, 0, kills);
    free(was_acked);
    free(took);
    assert_int_equal(e2e_cluster_stop(&c), 0);
}

/* ---- topic administration replicated ---- */

/* Within 10 s every node answers NO_SUCH_TOPIC for the topic (STATS). */
static void expect_topic_gone_everywhere(const e2e_cluster *c, const char *topic)
{
    for (unsigned i = 0; i < c->n; i++) {
        uint64_t end = e2e_now_ms() + 10000;
        krappy_err e;
        krappy_topic_stats *st = NULL;
        krappy_client *k = client_to(c, i);
        while ((e = krappy_stats(k, topic, NULL, &st)) != KRAPPY_E_NO_SUCH_TOPIC &&
               e2e_now_ms() < end) {
            krappy_topic_stats_free(st);
            st = NULL;
            usleep(50000);
        }
        krappy_topic_stats_free(st);
        krappy_client_free(k);
        if (e != KRAPPY_E_NO_SUCH_TOPIC)
            fail_msg("node %u still has topic %s", i + 1, topic);
    }
}

/* Within 10 s every node shows the topic's retention_ms at `want`, both
 * by TOPIC_CONFIG and by STATS. */
static void expect_retention_everywhere(const e2e_cluster *c, const char *topic, uint64_t want)
{
    for (unsigned i = 0; i < c->n; i++) {
        uint64_t end = e2e_now_ms() + 10000;
        krappy_topic_settings s = {0};
        krappy_client *k = client_to(c, i);
        while (
            (krappy_topic_config(k, topic, NULL, 0, &s) != KRAPPY_OK || s.retention_ms != want) &&
            e2e_now_ms() < end)
            usleep(50000);
        if (s.retention_ms != want)
            fail_msg("node %u has retention_ms %llu on %s, not %llu", i + 1,
                     (unsigned long long)s.retention_ms, topic, (unsigned long long)want);
        krappy_topic_stats *st = NULL;
        assert_int_equal(krappy_stats(k, topic, NULL, &st), KRAPPY_OK);
        assert_true(st->has_config);
        assert_int_equal(st->config.retention_ms, want);
        krappy_topic_stats_free(st);
        krappy_client_free(k);
    }
}

/*
 * DELETE_TOPIC and TOPIC_CONFIG `set` go through the log: a follower sends
 * both to the leader; a topic deleted on the leader is gone on every node,
 * and its producer must register again; made again and published to, it
 * has the same stream (from offset 0) on every node; a setting changed on
 * the leader shows on every node, and one on a missing topic creates it
 * everywhere.
 */
static void test_topic_admin_replicated(void **state)
{
    (void)state;
    e2e_cluster c;
    assert_int_equal(e2e_cluster_start(&c, 3, false, NULL), 0);
    krappy_client *p = producer_on_leader(&c);
    krappy_batch *b = krappy_batch_new();
    assert_non_null(b);
    krappy_publish_result pr;
    for (int i = 0; i < 3; i++) {
        fill_batch(b, i * REP_BATCH);
        assert_int_equal(krappy_publish(p, b, KRAPPY_ACK_WRITE, &pr), KRAPPY_OK);
    }
    int leader = e2e_cluster_leader(&c, 20000);
    assert_true(leader >= 0);
    krappy_client *l = client_to(&c, (unsigned)leader),
                  *f = client_to(&c, (unsigned)(leader + 1) % 3);
    const char *ret60[] = {"retention_ms=60000"};
    assert_int_equal(krappy_delete_topic(f, REP_TOPIC), KRAPPY_E_NOT_LEADER);
    assert_int_equal(krappy_topic_config(f, REP_TOPIC, ret60, 1, NULL), KRAPPY_E_NOT_LEADER);

    assert_int_equal(krappy_delete_topic(l, REP_TOPIC), KRAPPY_OK);
    expect_topic_gone_everywhere(&c, REP_TOPIC);
    fill_batch(b, 100);
    assert_int_equal(krappy_publish(p, b, KRAPPY_ACK_WRITE, &pr), KRAPPY_E_NO_SUCH_TOPIC);

    /* Made again: a new stream from 0, the same on every node. */
    assert_int_equal(krappy_register_producer(p, REP_TOPIC, "p", NULL), KRAPPY_OK);
    for (int i = 0; i < 2; i++) {
        fill_batch(b, 200 + i * REP_BATCH);
        assert_int_equal(krappy_publish(p, b, KRAPPY_ACK_WRITE, &pr), KRAPPY_OK);
        assert_int_equal(pr.first, (uint64_t)(i * REP_BATCH));
    }
    uint64_t end = e2e_now_ms() + 10000;
    while ((next_on(&c, 0) != 2 * REP_BATCH || next_on(&c, 1) != 2 * REP_BATCH ||
            next_on(&c, 2) != 2 * REP_BATCH) &&
           e2e_now_ms() < end)
        usleep(50000);
    dump d[3];
    for (unsigned i = 0; i < 3; i++)
        dump_node(&c, i, &d[i]);
    for (unsigned i = 0; i < 3; i++) {
        assert_int_equal(d[i].next, 2 * REP_BATCH);
        assert_int_equal(d[i].events, 2 * REP_BATCH);
        if (d[i].len != d[0].len || memcmp(d[i].text, d[0].text, d[0].len) != 0)
            fail_msg("node %u's stream differs from node 1's", i + 1);
    }
    for (unsigned i = 0; i < 3; i++)
        free(d[i].text);

    /* Settings: changed on the leader, shown everywhere. */
    krappy_topic_settings s = {0};
    assert_int_equal(krappy_topic_config(l, REP_TOPIC, ret60, 1, &s), KRAPPY_OK);
    assert_int_equal(s.retention_ms, 60000);
    expect_retention_everywhere(&c, REP_TOPIC, 60000);
    const char *ret7[] = {"retention_ms=7s"};
    assert_int_equal(krappy_topic_config(l, "fresh", ret7, 1, &s), KRAPPY_OK);
    expect_retention_everywhere(&c, "fresh", 7000);

    krappy_batch_free(b);
    krappy_client_free(f);
    krappy_client_free(l);
    krappy_client_free(p);
    assert_int_equal(e2e_cluster_stop(&c), 0);
}

/* ---- retention: the leader's decision ---- */

/* Publish `batches` batches of REP_BATCH events numbered from *ev_no. */
static void publish_batches(const e2e_cluster *c, int batches, int *ev_no)
{
    krappy_client *k = producer_on_leader(c);
    krappy_batch *b = krappy_batch_new();
    assert_non_null(b);
    for (int i = 0; i < batches; i++) {
        fill_batch(b, *ev_no);
        *ev_no += REP_BATCH;
        krappy_publish_result pr;
        assert_int_equal(krappy_publish(k, b, KRAPPY_ACK_WRITE, &pr), KRAPPY_OK);
    }
    krappy_batch_free(b);
    krappy_client_free(k);
}

/*
 * Within 20 s every node stands at the same first offset (above `above`)
 * and at next `next`, and holds the same events from there (offsets, ts,
 * keys, bytes). @return that first offset.
 */
static uint64_t expect_same_retained(const e2e_cluster *c, uint64_t above, uint64_t next)
{
    uint64_t end = e2e_now_ms() + 20000, f[3] = {0}, nx[3] = {0};
    for (;;) {
        for (unsigned i = 0; i < 3; i++) {
            f[i] = first_on(c, i);
            nx[i] = next_on(c, i);
        }
        bool same = f[0] == f[1] && f[1] == f[2] && nx[0] == nx[1] && nx[1] == nx[2];
        if ((same && f[0] > above && nx[0] == next) || e2e_now_ms() >= end)
            break;
        usleep(100000);
    }
    if (!(f[0] == f[1] && f[1] == f[2]) || f[0] <= above || nx[0] != next)
        fail_msg("after 20 s the nodes' [first, next) are [%llu, %llu) [%llu, %llu) "
                 "[%llu, %llu); expected one first above %llu and next %llu",
                 (unsigned long long)f[0], (unsigned long long)nx[0], (unsigned long long)f[1],
                 (unsigned long long)nx[1], (unsigned long long)f[2], (unsigned long long)nx[2],
                 (unsigned long long)above, (unsigned long long)next);
    dump d[3];
    for (unsigned i = 0; i < 3; i++)
        dump_node(c, i, &d[i]);
    assert_int_equal(d[0].events, next - f[0]);
    for (unsigned i = 1; i < 3; i++)
        if (d[i].len != d[0].len || memcmp(d[i].text, d[0].text, d[0].len) != 0)
            fail_msg("node %u holds other events than node 1 from offset %llu", i + 1,
                     (unsigned long long)f[0]);
    for (unsigned i = 0; i < 3; i++)
        free(d[i].text);
    return f[0];
}

/*
 * Retention on a cluster is the leader's: with small segments and a small
 * --retention-bytes on every node, the leader logs RETENTION and every
 * node retires the same segments - the same first offset, the same
 * events from there; a follower killed and restarted on its directory
 * agrees, and follows the next decision too.
 */
static void test_retention(void **state)
{
    (void)state;
    e2e_cluster c;
    const char *extra[] = {
        "--segment-bytes", "4096", "--retention-bytes", "12288", "--checkpoint-interval",
        "100ms",           NULL};
    assert_int_equal(e2e_cluster_start(&c, 3, false, extra), 0);
    int leader = e2e_cluster_leader(&c, 10000);
    assert_true(leader >= 0);
    int ev_no = 0;
    publish_batches(&c, 150, &ev_no);
    uint64_t first = expect_same_retained(&c, 0, (uint64_t)ev_no);
    assert_true(e2e_logged(&c.node[leader], "retention decided"));
    unsigned f = ((unsigned)leader + 1) % 3;
    for (unsigned i = 0; i < 3; i++)
        if (i != (unsigned)leader && e2e_logged(&c.node[i], "retention decided"))
            fail_msg("follower node %u decided retention itself", i + 1);
    e2e_kill9(&c.node[f]);
    assert_int_equal(e2e_cluster_restart(&c, f, NULL), 0);
    (void)expect_same_retained(&c, first - 1, (uint64_t)ev_no);
    publish_batches(&c, 100, &ev_no);
    uint64_t later = expect_same_retained(&c, first, (uint64_t)ev_no);
    printf("e2e_cluster: retention by the leader: first offset %llu, then %llu, on every node\n",
           (unsigned long long)first, (unsigned long long)later);
    assert_int_equal(e2e_cluster_stop(&c), 0);
}

/* Three nodes that snapshot every 32 commands (so a node that lost its
 * directory restores one and catches up), the topic set with `set`. */
static void start_snapshotting(e2e_cluster *c, const char *const *set, size_t n)
{
    const char *extra[] = {"--checkpoint-interval", "100ms", "--raft-snapshot-every", "32", NULL};
    assert_int_equal(e2e_cluster_start(c, 3, false, extra), 0);
    assert_true(e2e_cluster_leader(c, 10000) >= 0);
    krappy_client *l = producer_on_leader(c);
    assert_int_equal(krappy_topic_config(l, REP_TOPIC, set, n, NULL), KRAPPY_OK);
    krappy_client_free(l);
}

/* Node f's volume lost: kill -9, its data directory wiped, started again
 * (it rejoins as docs/DESIGN.md says). */
static void replace_node(e2e_cluster *c, unsigned f)
{
    char cmd[1024], out[256];
    e2e_kill9(&c->node[f]);
    snprintf(cmd, sizeof cmd, "rm -rf '%s/data'", c->node[f].dir);
    assert_int_equal(e2e_run(cmd, out, sizeof out), 0);
    assert_int_equal(e2e_cluster_restart(c, f, NULL), 0);
    assert_true(e2e_cluster_leader(c, 30000) >= 0);
}

/* How many lines of s's log hold text (no quote in it). */
static int logged_count(const e2e_server *s, const char *text)
{
    char cmd[1024], out[16];
    snprintf(cmd, sizeof cmd, "grep -c -F -- '%s' '%s'", text, s->log_path);
    return e2e_run(cmd, out, sizeof out) == 0 ? atoi(out) : 0;
}

/* Keys written once and early (inside what retention retires): their
 * latest values live on in every node's view. */
static const char *const early_keys[] = {"early-a", "early-b",   "gone",
                                         "over",    "late-gone", "late-over"};

/* Publish on the leader: key -> text value (NULL: a tombstone), with a
 * header {"h": value} when `hdr`. */
static void put_key(const e2e_cluster *c, const char *key, const char *val, bool hdr)
{
    krappy_client *k = producer_on_leader(c);
    krappy_batch *b = krappy_batch_new();
    assert_non_null(b);
    if (val != NULL)
        assert_int_equal(
            krappy_batch_add_text(b, KRAPPY_KEY_TEXT, key, strlen(key), val, strlen(val)),
            KRAPPY_OK);
    else
        assert_int_equal(krappy_batch_add(b, KRAPPY_KEY_TEXT, key, strlen(key), NULL, 0),
                         KRAPPY_OK);
    if (hdr)
        assert_int_equal(krappy_batch_add_header(b, "h", 1, val, strlen(val)), KRAPPY_OK);
    krappy_publish_result pr;
    assert_int_equal(krappy_publish(k, b, KRAPPY_ACK_WRITE, &pr), KRAPPY_OK);
    krappy_batch_free(b);
    krappy_client_free(k);
}

/* Node i's latest values as bytes: a whole SCAN (key, offset, ts, value
 * of each entry), then a GET of each early key (offset, ts, value,
 * headers; "-" when not found). @return false when a read failed. */
static bool view_image(const e2e_cluster *c, unsigned i, kr_buf *out)
{
    krappy_client *k = client_to(c, i);
    krappy_scan *sc = NULL;
    kr_buf_reset(out);
    krappy_err e = krappy_scan_begin(k, REP_TOPIC, NULL, 0, NULL, 0, 0, &sc);
    while (e == KRAPPY_OK) {
        size_t n;
        const krappy_event *ent = krappy_scan_entries(sc, &n);
        for (size_t j = 0; j < n; j++) {
            kr_buf_append(out, ent[j].key, ent[j].key_len);
            kr_buf_append(out, &ent[j].offset, sizeof ent[j].offset);
            kr_buf_append(out, &ent[j].ts, sizeof ent[j].ts);
            kr_buf_append(out, ent[j].value, ent[j].value_len);
        }
        if (!krappy_scan_more(sc))
            break;
        e = krappy_scan_next_page(k, sc);
    }
    krappy_scan_free(sc);
    for (size_t j = 0; e == KRAPPY_OK && j < sizeof early_keys / sizeof *early_keys; j++) {
        krappy_value *v = NULL;
        krappy_err g = krappy_get(k, REP_TOPIC, early_keys[j], strlen(early_keys[j]), &v);
        if (g == KRAPPY_E_NOT_FOUND) {
            kr_buf_append(out, "-", 1);
        } else if (g == KRAPPY_OK) {
            kr_buf_append(out, &v->offset, sizeof v->offset);
            kr_buf_append(out, &v->ts, sizeof v->ts);
            kr_buf_append(out, v->value, v->value_len);
            kr_buf_append(out, v->headers, v->headers_len);
        } else {
            e = g;
        }
        krappy_value_free(v);
    }
    krappy_client_free(k);
    return e == KRAPPY_OK && !out->failed;
}

/* Within 20 s every node answers the same SCAN and GETs (view_image);
 * `want` early keys are live among them. */
static void expect_same_view(const e2e_cluster *c, size_t want)
{
    kr_buf img[3];
    for (unsigned i = 0; i < 3; i++)
        kr_buf_init(&img[i], 64u << 20);
    uint64_t end = e2e_now_ms() + 20000;
    bool same = false;
    while (!same && e2e_now_ms() < end) {
        same = true;
        for (unsigned i = 0; i < 3 && same; i++)
            same = view_image(c, i, &img[i]);
        for (unsigned i = 1; i < 3 && same; i++)
            same = img[i].len == img[0].len && memcmp(img[i].data, img[0].data, img[0].len) == 0;
        if (!same)
            usleep(100000);
    }
    size_t live = 0;
    krappy_client *k = client_to(c, 0);
    for (size_t j = 0; j < sizeof early_keys / sizeof *early_keys; j++) {
        krappy_value *v = NULL;
        live += krappy_get(k, REP_TOPIC, early_keys[j], strlen(early_keys[j]), &v) == KRAPPY_OK;
        krappy_value_free(v);
    }
    krappy_client_free(k);
    for (unsigned i = 0; i < 3; i++)
        kr_buf_free(&img[i]);
    if (!same)
        fail_msg("the nodes answer GET or SCAN differently after a catch-up past retention");
    assert_int_equal(live, want);
}

/*
 * A node whose volume was lost while retention moved on: with small
 * segments and a small retention_bytes on the topic (TOPIC_CONFIG) and
 * frequent raft snapshots, every node retires the first segments and the
 * log drops the commands that wrote them. A follower is replaced (kill -9,
 * its data directory wiped, started again: it rejoins as docs/DESIGN.md
 * says), restores a snapshot whose `first` lies past its empty stream,
 * skips to it (nobody serves what lies below), fetches the rest, and then
 * holds the same events from `first` as every other node - also after a
 * kill -9 and restart on its new directory, and after more writes; and,
 * killed while retention moves past its stream's end, back on its
 * directory, it skips from there.
 */
static void test_retention_replaced_node(void **state)
{
    (void)state;
    e2e_cluster c;
    const char *small[] = {"segment_bytes=4096", "retention_bytes=12288"};
    start_snapshotting(&c, small, 2);
    /* Keys written only early, one deleted and one overwritten there, some
     * with headers: every node's view keeps them (GET, SCAN). */
    put_key(&c, "early-a", "A", true);
    put_key(&c, "early-b", "B", false);
    put_key(&c, "gone", "G", false);
    put_key(&c, "over", "O1", false);
    put_key(&c, "gone", NULL, false);
    put_key(&c, "over", "O2", true);
    int ev_no = 6;
    publish_batches(&c, 300, &ev_no);
    uint64_t first = expect_same_retained(&c, 0, (uint64_t)ev_no);
    assert_true(first > 6);
    int leader = e2e_cluster_leader(&c, 10000);
    assert_true(leader >= 0);
    unsigned f = ((unsigned)leader + 1) % 3;
    replace_node(&c, f);
    uint64_t now = expect_same_retained(&c, first - 1, (uint64_t)ev_no);
    if (!e2e_logged(&c.node[f], "the stream skips offsets every other copy retired"))
        fail_msg("the replaced node caught up without a skip: no snapshot past retention reached "
                 "it, the test tests nothing");
    expect_same_view(&c, 3); /* early-a, early-b, over */
    /* Its new directory holds the skip across a kill -9, and goes on. */
    e2e_kill9(&c.node[f]);
    assert_int_equal(e2e_cluster_restart(&c, f, NULL), 0);
    assert_true(e2e_cluster_leader(&c, 30000) >= 0);
    (void)expect_same_retained(&c, now - 1, (uint64_t)ev_no);
    expect_same_view(&c, 3);
    put_key(&c, "late-gone", "LG", false);
    put_key(&c, "late-over", "LO1", true);
    ev_no += 2;
    publish_batches(&c, 100, &ev_no);
    uint64_t later = expect_same_retained(&c, now - 1, (uint64_t)ev_no);
    expect_same_view(&c, 5);
    /* Down while retention moves past its stream's end: back on its
     * directory, it skips from there, and its stale latest values of the
     * keys deleted or overwritten meanwhile go. */
    uint64_t before = next_on(&c, f);
    e2e_kill9(&c.node[f]);
    put_key(&c, "late-gone", NULL, false);
    put_key(&c, "late-over", "LO2", false);
    ev_no += 2;
    publish_batches(&c, 300, &ev_no);
    assert_int_equal(e2e_cluster_restart(&c, f, NULL), 0);
    assert_true(e2e_cluster_leader(&c, 30000) >= 0);
    uint64_t last = expect_same_retained(&c, before, (uint64_t)ev_no);
    expect_same_view(&c, 4); /* early-a, early-b, over, late-over */
    /* Killed right after a skip, before its view's seed (the catch-up made
     * to wait there): back, it seeds again before it catches up. */
    const char *skipped = "the stream skips offsets every other copy retired";
    int skips = logged_count(&c.node[f], skipped);
    setenv("KRAPPY_TEST_CATCHUP_SEED_PAUSE_MS", "4000", 1);
    e2e_kill9(&c.node[f]);
    char cmd[1024], out[256];
    snprintf(cmd, sizeof cmd, "rm -rf '%s/data'", c.node[f].dir);
    assert_int_equal(e2e_run(cmd, out, sizeof out), 0);
    assert_int_equal(e2e_cluster_restart(&c, f, NULL), 0);
    unsetenv("KRAPPY_TEST_CATCHUP_SEED_PAUSE_MS");
    uint64_t until = e2e_now_ms() + 20000;
    while (logged_count(&c.node[f], skipped) == skips && e2e_now_ms() < until)
        usleep(20000);
    if (logged_count(&c.node[f], skipped) == skips)
        fail_msg("the node replaced again did not skip: the kill -9 after a skip tests nothing");
    e2e_kill9(&c.node[f]);
    assert_int_equal(e2e_cluster_restart(&c, f, NULL), 0);
    assert_true(e2e_cluster_leader(&c, 30000) >= 0);
    (void)expect_same_retained(&c, before, (uint64_t)ev_no);
    expect_same_view(&c, 4);
    if (!e2e_logged(&c.node[f], "the view lacks the latest values below the offset"))
        fail_msg("the restart after a kill -9 right after a skip found no seed to make again");
    printf("e2e_cluster: a replaced node skipped to first offset %llu and caught up; then at "
           "%llu on every node; down at next %llu while retention moved on, back at first %llu\n",
           (unsigned long long)now, (unsigned long long)later, (unsigned long long)before,
           (unsigned long long)last);
    assert_int_equal(e2e_cluster_stop(&c), 0);
}

/* ---- a compacted topic: each node's own compaction, a catch-up past it ---- */

/* Segments compaction rewrote on node i (0 when it has not yet). */
static uint64_t rewritten_on(const e2e_cluster *c, unsigned i)
{
    krappy_client *k = client_to(c, i);
    krappy_topic_stats *st = NULL;
    uint64_t n = 0;
    if (krappy_stats(k, REP_TOPIC, NULL, &st) == KRAPPY_OK && st->has_compaction)
        n = st->segments_rewritten;
    krappy_topic_stats_free(st);
    krappy_client_free(k);
    return n;
}

/* What expect_own_offsets saw of one node. */
typedef struct own_check {
    unsigned node;
    uint64_t newest[7]; /* each key's newest offset */
    size_t events;
} own_check;

static void check_own_offset(void *arg, const krappy_event *e)
{
    own_check *oc = arg;
    char key[16], val[16];
    int kl = snprintf(key, sizeof key, "k%d", (int)(e->offset % 7));
    int vl = snprintf(val, sizeof val, "ev-%06d", (int)e->offset);
    if (e->key_len != (size_t)kl || memcmp(e->key, key, (size_t)kl) != 0 ||
        e->value_len < (size_t)vl || memcmp(e->value + e->value_len - (size_t)vl, val, (size_t)vl))
        fail_msg("node %u serves another event at offset %llu than the one published there",
                 oc->node + 1, (unsigned long long)e->offset);
    oc->newest[e->offset % 7] = e->offset;
    oc->events++;
}

/*
 * Every event node i serves, from its first to `next`, is the one
 * published at its offset (fill_batch from 0: key "k<offset % 7>", value
 * "ev-<offset>"), and each key's newest is the last one published.
 * @return the events it serves (fewer than `next` where it has gaps).
 */
static size_t expect_own_offsets(const e2e_cluster *c, unsigned i, uint64_t next)
{
    own_check oc = {.node = i};
    assert_int_equal(each_event(c, i, check_own_offset, &oc), next);
    for (uint64_t key = 0; key < 7; key++)
        if (next > key && oc.newest[key] != next - 1 - (next - 1 + 7 - key) % 7)
            fail_msg("node %u's newest event of key k%llu is at %llu", i + 1,
                     (unsigned long long)key, (unsigned long long)oc.newest[key]);
    return oc.events;
}

/* Within 30 s every node stands at next `next`; each serves every event
 * at the offset it was published at. @return node i's events. */
static size_t expect_compacted_alike(const e2e_cluster *c, uint64_t next, unsigned i)
{
    uint64_t end = e2e_now_ms() + 30000;
    while ((next_on(c, 0) != next || next_on(c, 1) != next || next_on(c, 2) != next) &&
           e2e_now_ms() < end)
        usleep(100000);
    size_t events = 0;
    for (unsigned n = 0; n < 3; n++) {
        if (next_on(c, n) != next)
            fail_msg("after 30 s node %u stands at next %llu, not %llu", n + 1,
                     (unsigned long long)next_on(c, n), (unsigned long long)next);
        size_t got = expect_own_offsets(c, n, next);
        if (n == i)
            events = got;
    }
    return events;
}

/*
 * Compaction is each node's, so a compacted topic's streams have gaps, and
 * a node that catches up after a snapshot fetches across them: a follower
 * replaced (kill -9, its directory wiped, started again) once its peers
 * compacted holds every event at the offset it was published at, as they
 * do - also after a kill -9 and restart on its new directory, and after
 * more writes, which go on from the same next everywhere.
 */
static void test_compacted_replaced_node(void **state)
{
    (void)state;
    e2e_cluster c;
    const char *set[] = {"cleanup=compact", "segment_bytes=4K", "delete_retention_ms=0",
                         "segment_ms=200"};
    start_snapshotting(&c, set, 4);
    int ev_no = 0;
    publish_batches(&c, 200, &ev_no);
    int leader = e2e_cluster_leader(&c, 10000);
    assert_true(leader >= 0);
    unsigned f = ((unsigned)leader + 1) % 3;
    uint64_t end = e2e_now_ms() + 30000;
    for (unsigned i = 0; i < 3; i++)
        while (i != f && rewritten_on(&c, i) == 0 && e2e_now_ms() < end)
            usleep(100000);
    for (unsigned i = 0; i < 3; i++)
        if (i != f && rewritten_on(&c, i) == 0)
            fail_msg("node %u compacted nothing within 30 s: the test tests nothing", i + 1);
    replace_node(&c, f);
    size_t held = expect_compacted_alike(&c, (uint64_t)ev_no, f);
    if (held >= (size_t)ev_no)
        fail_msg("the replaced node holds every event: it met no gap, the test tests nothing");
    /* Its new directory holds the offsets across a kill -9, and goes on. */
    e2e_kill9(&c.node[f]);
    assert_int_equal(e2e_cluster_restart(&c, f, NULL), 0);
    assert_true(e2e_cluster_leader(&c, 30000) >= 0);
    (void)expect_compacted_alike(&c, (uint64_t)ev_no, f);
    publish_batches(&c, 30, &ev_no);
    (void)expect_compacted_alike(&c, (uint64_t)ev_no, f);
    printf("e2e_cluster: a replaced node caught up across its peers' compaction: %zu of %d "
           "events at their offsets; then next %d on every node\n",
           held, ev_no - 30 * REP_BATCH, ev_no);
    assert_int_equal(e2e_cluster_stop(&c), 0);
}

/* ---- a catch-up the disk fails: the node halts, a restart mends it ---- */

/* Within 20 s node i's log holds text. @return whether it does. */
static bool logged_within(const e2e_server *s, const char *text)
{
    uint64_t end = e2e_now_ms() + 20000;
    while (!e2e_logged(s, text) && e2e_now_ms() < end)
        usleep(50000);
    return e2e_logged(s, text);
}

/*
 * A replaced follower (its volume lost) restores a snapshot and fetches
 * the events it covers from the leader, and its disk fails every write to
 * its streams (the fault shim: EIO). It must not go on applying the log
 * at other offsets than its peers: it halts, says so in its log and in
 * /readyz (503), and the two others go on acknowledging. With the disk
 * mended, a kill -9 and a restart on the same directory catch it up: every
 * node then holds every event at the offset it was published at.
 */
static void test_catchup_write_fails(void **state)
{
    (void)state;
    if (!shim_or_skip("failed catch-up"))
        return;
    e2e_cluster c;
    const char *set[] = {"segment_bytes=64K"};
    start_snapshotting(&c, set, 1);
    int ev_no = 0;
    publish_batches(&c, 200, &ev_no);
    int leader = e2e_cluster_leader(&c, 10000);
    assert_true(leader >= 0);
    unsigned f = ((unsigned)leader + 1) % 3;
    char cmd[1024], out[512];
    e2e_kill9(&c.node[f]);
    snprintf(cmd, sizeof cmd, "rm -rf '%s/data'", c.node[f].dir);
    assert_int_equal(e2e_run(cmd, out, sizeof out), 0);
    /* The new segment's first write (its header) goes through, every
     * write after it fails: the fetched events' (not the topic's creation). */
    assert_int_equal(e2e_shim_faults(&c.node[f], "write * EIO after=1\n"), 0);
    assert_int_equal(restart_shimmed(&c, f), 0);
    if (!logged_within(&c.node[f], "events fetched from the leader cannot be stored here"))
        fail_msg("node %u's disk failed its catch-up, yet within 20 s it did not halt", f + 1);
    int code = admin_get(&c, f, "/readyz", out, sizeof out);
    if (code != 503 || strstr(out, "restart this node") == NULL)
        fail_msg("a halted node's /readyz answers %d: %s", code, out);
    /* The two others are a majority: writes go on. */
    publish_batches(&c, 20, &ev_no);
    assert_true(next_on(&c, f) < (uint64_t)ev_no);
    /* The disk mended, a restart on the same directory catches up. */
    assert_int_equal(e2e_shim_faults(&c.node[f], ""), 0);
    e2e_kill9(&c.node[f]);
    assert_int_equal(e2e_cluster_restart(&c, f, NULL), 0);
    assert_true(e2e_cluster_leader(&c, 30000) >= 0);
    publish_batches(&c, 10, &ev_no);
    (void)expect_compacted_alike(&c, (uint64_t)ev_no, f);
    uint64_t end = e2e_now_ms() + 20000;
    while ((code = admin_get(&c, f, "/readyz", out, sizeof out)) != 200 && e2e_now_ms() < end)
        usleep(100000);
    if (code != 200)
        fail_msg("20 s after it caught up, the restarted node's /readyz answers %d: %s", code, out);
    printf("e2e_cluster: a catch-up the disk failed halted node %u; restarted, it holds the "
           "same %d events as its peers\n",
           f + 1, ev_no);
    assert_int_equal(e2e_cluster_stop(&c), 0);
}

/*
 * One node's disk fails every write to its streams (the fault shim: EIO)
 * while an idempotent producer publishes; the node is the leader when
 * `leader`, else a follower. A node that cannot apply what is committed
 * halts, and says so in its log and /readyz (503). A leader hands the
 * lead to a node that can, and answers what it could not apply NOT_LEADER
 * (the outcome unknown: the producer sends it again to the new leader); a
 * halted follower goes on storing the raft log, and when the leader is
 * then killed, the node that still applies leads, whichever won. Once
 * its disk is mended and it is restarted on its directory, it catches up:
 * every event sent on every node exactly once.
 */
/*
 * Start a cluster of three (with `extra` flags), restart each node under the
 * fault shim tracking DATA/`under`, and start an idempotent producer (l,
 * paced) on thread th: returns once it is under way (its topic made, a
 * batch acknowledged).
 */
static void shimmed_under_load(e2e_cluster *c, const char *const *extra, const char *under,
                               idem_load *l, pthread_t *th)
{
    assert_int_equal(e2e_cluster_start(c, 3, false, extra), 0);
    assert_true(e2e_cluster_leader(c, 10000) >= 0);
    for (unsigned i = 0; i < 3; i++) {
        e2e_kill9(&c->node[i]);
        assert_int_equal(restart_shimmed_in(c, i, under), 0);
    }
    *l = (idem_load){.addrs = c->addrs, .pace_us = 2000};
    assert_int_equal(e2e_thread_start(th, idem_producer, l), 0);
    uint64_t until = e2e_now_ms() + 20000;
    while (atomic_load(&l->acks) == 0 && e2e_now_ms() < until)
        usleep(20000);
}

static void disk_fails_under_load(bool leader)
{
    if (!shim_or_skip("failed disk"))
        return;
    e2e_cluster c;
    idem_load l;
    pthread_t th;
    shimmed_under_load(&c, NULL, "topics", &l, &th);
    usleep(300000);
    int first = settled_leader(&c);
    int bad = leader ? first : (first + 1) % 3;
    uint64_t t0 = e2e_now_ms(), took = 0;
    assert_int_equal(e2e_shim_faults(&c.node[bad], "write * EIO\n"), 0);
    if (leader) {
        int now = first;
        while ((now = e2e_cluster_leader(&c, 1000)) == first && e2e_now_ms() < t0 + 20000)
            usleep(50000);
        took = e2e_now_ms() - t0;
        if (now == first || now < 0)
            fail_msg("node %d's disk fails every write, yet after 20 s it still leads", first + 1);
    } else {
        if (!logged_within(&c.node[bad], "this node applies no more until it is restarted"))
            fail_msg("follower node %d's disk fails every write, yet within 20 s it did not halt",
                     bad + 1);
        /* Then the leader dies too: of the two left, one applies and one
         * is halted; whichever raft elects, the one that applies leads. */
        int third = 3 - first - bad;
        t0 = e2e_now_ms();
        e2e_kill9(&c.node[first]);
        int now = -1;
        while ((now = e2e_cluster_leader(&c, 1000)) != third && e2e_now_ms() < t0 + 20000)
            usleep(50000);
        took = e2e_now_ms() - t0;
        if (now != third)
            fail_msg("node %d's leader was killed and node %d is halted, yet after 20 s node %d "
                     "does not lead",
                     first + 1, bad + 1, third + 1);
        if (e2e_logged(&c.node[bad], "handing the lead to another node"))
            printf("e2e_cluster: the halted node %d won the election and handed the lead on\n",
                   bad + 1);
        assert_int_equal(e2e_cluster_restart(&c, (unsigned)first, NULL), 0);
    }
    usleep(1000000);
    unsigned acks_before_stop = atomic_load(&l.acks);
    l.stop = 1;
    e2e_thread_join(th);
    if (l.err != KRAPPY_OK)
        fail_msg("the producer failed after %d events (%llu acked, %llu resent): %s", l.sent,
                 (unsigned long long)l.info.acked, (unsigned long long)l.info.resent, l.errmsg);
    char out[512];
    int code = admin_get(&c, (unsigned)bad, "/readyz", out, sizeof out);
    if (code != 503 || strstr(out, "restart this node") == NULL)
        fail_msg("the halted node's /readyz answers %d: %s", code, out);
    /* Only a restart mends it: a liveness probe (Kubernetes) must see it. */
    code = admin_get(&c, (unsigned)bad, "/healthz", out, sizeof out);
    if (code != 503 || strstr(out, "restart this node") == NULL)
        fail_msg("the halted node's /healthz answers %d: %s", code, out);
    static char body[1 << 18];
    assert_int_equal(admin_get(&c, (unsigned)bad, "/metrics", body, sizeof body), 200);
    assert_non_null(strstr(body, "\nkrappy_cluster_store_halted 1\n"));
    char cmd[1024];
    snprintf(cmd, sizeof cmd, "%s -h %s cluster", e2e_cli(), c.addrs);
    assert_int_equal(e2e_run(cmd, body, sizeof body), 0);
    char said[64];
    snprintf(said, sizeof said, "node %d is halted", bad + 1);
    if (strstr(body, said) == NULL)
        fail_msg("`krappy cluster` does not say that node %d is halted:\n%s", bad + 1, body);
    /* What it applied is where its store stopped, behind what it knows
     * committed (the producer went on a second after the halt). */
    krappy_cluster_info *ci = picture(&c, (unsigned)bad);
    assert_true(ci->halted);
    if (ci->applied >= ci->commit)
        fail_msg("halted node %d says it applied %llu of %llu committed", bad + 1,
                 (unsigned long long)ci->applied, (unsigned long long)ci->commit);
    krappy_cluster_info_free(ci);
    assert_int_equal(e2e_shim_faults(&c.node[bad], ""), 0);
    e2e_kill9(&c.node[bad]);
    assert_int_equal(e2e_cluster_restart(&c, (unsigned)bad, NULL), 0);
    printf("e2e_cluster: the %s's disk failed (node %d); a new leader %llu ms after %s; the "
           "producer %llu batches acked (%u before it stopped), %llu sent again, %llu "
           "duplicates\n",
           leader ? "leader" : "follower", bad + 1, (unsigned long long)took,
           leader ? "that" : "the leader's kill -9", (unsigned long long)l.info.acked,
           acks_before_stop, (unsigned long long)l.info.resent,
           (unsigned long long)l.info.duplicates);
    check_all_acked(&c, l.sent, 0);
    assert_int_equal(e2e_cluster_stop(&c), 0);
}

static void test_leader_disk_fails(void **state)
{
    (void)state;
    disk_fails_under_load(true);
}

static void test_follower_disk_fails(void **state)
{
    (void)state;
    disk_fails_under_load(false);
}

/*
 * Publish 512 KiB batches to the topic "filler" through whichever node leads
 * (following NOT_LEADER, failures skipped) until node `bad` exits or 30 s
 * pass: raft log for its segments to fill. @return its exit status, or -1.
 */
static int fill_until_exit(e2e_cluster *c, unsigned bad)
{
    krappy_batch *b = krappy_batch_new();
    assert_non_null(b);
    static char value[16 << 10];
    memset(value, 'f', sizeof value);
    for (int e = 0; e < 32; e++)
        assert_int_equal(krappy_batch_add_bytes(b, KRAPPY_KEY_TEXT, "f", 1, value, sizeof value),
                         KRAPPY_OK);
    krappy_client *k = NULL;
    int status = -1;
    uint64_t end = e2e_now_ms() + 30000;
    while ((status = e2e_exited(&c->node[bad])) < 0 && e2e_now_ms() < end) {
        if (k == NULL) {
            k = krappy_client_new(&(krappy_opts){.timeout_ms = 5000});
            assert_non_null(k);
            if (krappy_connect_leader(k, c->addrs, NULL) != KRAPPY_OK ||
                krappy_register_producer(k, "filler", "filler", NULL) != KRAPPY_OK) {
                krappy_client_free(k);
                k = NULL;
                usleep(100000);
                continue;
            }
        }
        krappy_publish_result pr;
        if (krappy_publish(k, b, KRAPPY_ACK_WRITE, &pr) != KRAPPY_OK) {
            krappy_client_free(k);
            k = NULL;
        }
    }
    krappy_client_free(k);
    krappy_batch_free(b);
    return status;
}

/* The commit index node i reports. */
static uint64_t commit_on(const e2e_cluster *c, unsigned i)
{
    krappy_cluster_info *ci = picture(c, i);
    uint64_t commit = ci->commit;
    krappy_cluster_info_free(ci);
    return commit;
}

/* Wait (20 s at most) for node i to exit by itself. @return as e2e_exited. */
static int exit_within(e2e_cluster *c, unsigned i)
{
    int status;
    uint64_t end = e2e_now_ms() + 20000;
    while ((status = e2e_exited(&c->node[i])) < 0 && e2e_now_ms() < end)
        usleep(20000);
    return status;
}

/*
 * The leader's checkpoints fail (a directory sits where its checkpoint file
 * goes) and the keys waiting for one pass --overlay-bytes: the leader
 * refuses PUBLISH with STORAGE before sending it to the log and hands the
 * lead, for that reason, to a node whose view takes writes (a batch in
 * flight then may get NOT_LEADER before a later one gets STORAGE); every
 * node keeps the same stream. It applies the log on as a follower until
 * its view holds twice --overlay-bytes; then its replica halts rather
 * than grow (/healthz 503: restart it). Mended and restarted, it applies
 * what it missed.
 */
static void test_leader_view_full(void **state)
{
    (void)state;
    e2e_cluster c;
    const char *extra[] = {"--overlay-bytes", "1M", "--checkpoint-interval", "50ms", NULL};
    assert_int_equal(e2e_cluster_start(&c, 3, false, extra), 0);
    int leader = e2e_cluster_leader(&c, 10000);
    assert_true(leader >= 0);
    char ingest[400], cmd[1600], out[8192];
    snprintf(ingest, sizeof ingest, "%s/data/view.ingest", c.node[leader].dir);
    assert_int_equal(mkdir(ingest, 0755), 0);
    char target[600];
    snprintf(target, sizeof target, "-h %s", c.addrs);
    e2e_produce_new_keys_cmd(cmd, sizeof cmd, 40000, "k", target, REP_TOPIC);
    /* Refused with STORAGE - or, when the hand-over overtakes the refusal,
     * a batch in flight gets NOT_LEADER (its outcome unknown). */
    assert_int_not_equal(e2e_run(cmd, out, sizeof out), 0);
    const char *stored = strstr(out, "events sent were stored");
    if ((strstr(out, "nothing was stored") == NULL && strstr(out, "NOT_LEADER") == NULL) ||
        stored == NULL)
        fail_msg("the leader's view full, the CLI said: %s", out);
    while (stored > out && stored[-1] != '(')
        stored--;
    uint64_t acked = strtoull(stored, NULL, 10);

    int now = leader;
    uint64_t t0 = e2e_now_ms();
    while ((now = e2e_cluster_leader(&c, 1000)) == leader && e2e_now_ms() < t0 + 10000)
        usleep(50000);
    if (now == leader || now < 0)
        fail_msg("node %d refuses writes (its view is full), yet after 10 s it still leads",
                 leader + 1);
    /* Whichever answer the CLI saw first, the refusal is why it handed over. */
    if (!e2e_logged(&c.node[leader], "handing the lead to another node\",\"reason\":\"nothing "
                                     "was stored: checkpoints of the latest-value view fail"))
        fail_msg("node %d handed the lead over, but not for its full view", leader + 1);
    printf("e2e_cluster: the leader's view full (the CLI got %s), node %d leads %llu ms on\n",
           strstr(out, "NOT_LEADER") != NULL ? "NOT_LEADER" : "STORAGE", now + 1,
           (unsigned long long)(e2e_now_ms() - t0));
    /* Every node holds the same events: what was acknowledged, and no more
     * than the refusals left out. */
    uint64_t next = 0, end = e2e_now_ms() + 10000;
    for (bool same = false; !same && e2e_now_ms() < end; usleep(50000)) {
        next = next_on(&c, (unsigned)now);
        same = next_on(&c, 0) == next && next_on(&c, 1) == next && next_on(&c, 2) == next;
    }
    for (unsigned i = 0; i < 3; i++)
        assert_int_equal(next_on(&c, i), next);
    if (next < acked || next >= 40000)
        fail_msg("%llu events acknowledged before the refusal, %llu stored",
                 (unsigned long long)acked, (unsigned long long)next);

    /* The new leader takes writes; the old one applies them until its
     * view holds twice --overlay-bytes, then halts. */
    e2e_produce_new_keys_cmd(cmd, sizeof cmd, 40000, "m", target, REP_TOPIC);
    if (e2e_run(cmd, out, sizeof out) != 0)
        fail_msg("with node %d leading, PUBLISH said: %s", now + 1, out);
    uint64_t all = next_on(&c, (unsigned)now);
    assert_int_equal(all, next + 40000);
    if (!logged_within(&c.node[leader], "holds too much in memory; this node applies no more"))
        fail_msg("node %d's view cannot checkpoint and grew past twice --overlay-bytes, yet it "
                 "did not halt",
                 leader + 1);
    assert_true(next_on(&c, (unsigned)leader) < all);
    int code = admin_get(&c, (unsigned)leader, "/healthz", out, sizeof out);
    if (code != 503 || strstr(out, "restart this node") == NULL)
        fail_msg("the halted node's /healthz answers %d: %s", code, out);

    assert_int_equal(rmdir(ingest), 0);
    e2e_kill9(&c.node[leader]);
    assert_int_equal(e2e_cluster_restart(&c, (unsigned)leader, NULL), 0);
    end = e2e_now_ms() + 20000;
    while (next_on(&c, (unsigned)leader) != all && e2e_now_ms() < end)
        usleep(100000);
    assert_int_equal(next_on(&c, (unsigned)leader), all);
    assert_int_equal(e2e_cluster_stop(&c), 0);
}

/*
 * A node's raft log cannot be written while an idempotent producer
 * publishes (the fault shim): its next segment file cannot be made
 * (ENOSPC, as on a full disk), on the leader, then on a follower; then a
 * follower's term and vote cannot be written (EIO) when the leader is
 * killed and an election follows; then a follower killed and left behind
 * cannot store the snapshot the leader sends it when it is restarted. The
 * node stops at once with status 1 and says why (libraft 0.15 would crash
 * a leader, leave a follower up holding no more of the log while it says
 * it is caught up, halt one whose vote failed for good, and leave one
 * whose install failed behind for good: node.h); the others go on, a new
 * leader taking over. Mended and restarted, the node catches up, and every
 * event the producer sent is on every node exactly once.
 */
static void test_raft_log_fails(void **state)
{
    (void)state;
    if (!shim_or_skip("failed raft log"))
        return;
    e2e_cluster c;
    idem_load l;
    pthread_t th;
    const char *small[] = {"--raft-segment-bytes", "1M", "--raft-snapshot-every", "64", NULL};
    shimmed_under_load(&c, small, "raft", &l, &th);
    static const char *const what[] = {"the leader", "a follower", "a voter", "a follower behind"};
    static const char *const failed[] = {"appending entries", "appending entries", "recording the",
                                         "storing a snapshot"};
    for (int round = 0; round < 4; round++) {
        int leader = settled_leader(&c);
        unsigned bad = round == 0 ? (unsigned)leader : ((unsigned)leader + 1) % 3;
        uint64_t t0 = e2e_now_ms(); /* from the fault on */
        int status;
        if (round < 2) {
            assert_int_equal(e2e_shim_faults(&c.node[bad], "open,fallocate /open- ENOSPC\n"), 0);
            status = fill_until_exit(&c, bad);
        } else if (round == 2) {
            assert_int_equal(e2e_shim_faults(&c.node[bad], "open,write,sync metadata EIO\n"), 0);
            e2e_kill9(&c.node[leader]);
            assert_int_equal(restart_shimmed_in(&c, (unsigned)leader, "raft"), 0);
            status = exit_within(&c, bad);
        } else {
            /* Far enough behind that the leader sends a snapshot: more
             * entries than the 128 it keeps after one, every 64. */
            uint64_t from = commit_on(&c, (unsigned)leader);
            e2e_kill9(&c.node[bad]);
            uint64_t until = e2e_now_ms() + 20000;
            while (commit_on(&c, (unsigned)leader) < from + 400 && e2e_now_ms() < until)
                usleep(100000);
            assert_int_equal(e2e_shim_faults(&c.node[bad], "open,write snapshot ENOSPC\n"), 0);
            t0 = e2e_now_ms();
            assert_int_equal(restart_shimmed_in(&c, bad, "raft"), 0);
            status = exit_within(&c, bad);
        }
        if (status != 1)
            fail_msg("node %u's raft log could not be written, yet 20-30 s on its exit status "
                     "is %d (-1: it still runs)",
                     bad + 1, status);
        assert_true(e2e_logged(&c.node[bad], "the raft log cannot be written"));
        if (!e2e_logged(&c.node[bad], failed[round]))
            fail_msg("node %u stopped, but its log does not say it failed %s (log: %s)", bad + 1,
                     failed[round], c.node[bad].log_path);
        int now = e2e_cluster_leader(&c, 10000);
        assert_true(now >= 0 && (unsigned)now != bad);
        printf("e2e_cluster: node %u (%s) stopped %llu ms after its raft log became unwritable; "
               "node %d leads\n",
               bad + 1, what[round], (unsigned long long)(e2e_now_ms() - t0), now + 1);
        assert_int_equal(e2e_shim_faults(&c.node[bad], ""), 0);
        assert_int_equal(restart_shimmed_in(&c, bad, "raft"), 0);
    }
    usleep(500000);
    l.stop = 1;
    e2e_thread_join(th);
    if (l.err != KRAPPY_OK)
        fail_msg("the producer failed after %d events: %s", l.sent, l.errmsg);
    check_all_acked(&c, l.sent, 1);
    assert_int_equal(e2e_cluster_stop(&c), 0);
}

int main(void)
{
    signal(SIGPIPE, SIG_IGN);
    if (e2e_external_addr() != NULL) {
        printf("e2e_cluster: starts its own clusters; skipped with KRAPPY_E2E_ADDR\n");
        return 0;
    }
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_teardown(test_form_and_route, e2e_after_test),
        cmocka_unit_test_teardown(test_replicated_publish, e2e_after_test),
        cmocka_unit_test_teardown(test_leader_kills, e2e_after_test),
        cmocka_unit_test_teardown(test_sigterm_hands_over, e2e_after_test),
        cmocka_unit_test_teardown(test_partition, e2e_after_test),
        cmocka_unit_test_teardown(test_membership, e2e_after_test),
        cmocka_unit_test_teardown(test_replicated_leader_kills, e2e_after_test),
        cmocka_unit_test_teardown(test_idempotent_failover, e2e_after_test),
        cmocka_unit_test_teardown(test_kafka, e2e_after_test),
        cmocka_unit_test_teardown(test_stop_and_delay, e2e_after_test),
        cmocka_unit_test_teardown(test_rolling_restart, e2e_after_test),
        cmocka_unit_test_teardown(test_powercut_all, e2e_after_test),
        cmocka_unit_test_teardown(test_big_publish, e2e_after_test),
        cmocka_unit_test_teardown(test_pipelined_batching, e2e_after_test),
        cmocka_unit_test_teardown(test_groups_replicated, e2e_after_test),
        cmocka_unit_test_teardown(test_group_failover, e2e_after_test),
        cmocka_unit_test_teardown(test_topic_admin_replicated, e2e_after_test),
        cmocka_unit_test_teardown(test_retention, e2e_after_test),
        cmocka_unit_test_teardown(test_retention_replaced_node, e2e_after_test),
        cmocka_unit_test_teardown(test_compacted_replaced_node, e2e_after_test),
        cmocka_unit_test_teardown(test_catchup_write_fails, e2e_after_test),
        cmocka_unit_test_teardown(test_leader_disk_fails, e2e_after_test),
        cmocka_unit_test_teardown(test_follower_disk_fails, e2e_after_test),
        cmocka_unit_test_teardown(test_raft_log_fails, e2e_after_test),
        cmocka_unit_test_teardown(test_leader_view_full, e2e_after_test),
    };
    /* The optimised build's smoke run: forming, routing, replicating. */
    if (getenv("KRAPPY_E2E_SMOKE") != NULL)
        return _cmocka_run_group_tests("e2e_cluster (smoke)", tests, 2, NULL, NULL);
    return cmocka_run_group_tests_name("e2e_cluster", tests, NULL, NULL);
}
