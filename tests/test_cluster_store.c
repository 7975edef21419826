/*
 * tests/test_cluster_store.c - the store's state machine under libraft's
 * deterministic fixture (raft/fixture.h): three servers, each applying the
 * committed commands to a real store in a directory of its own through
 * cluster/replica.c, as krappyd does. The FSM hooks push every entry to the
 * server's replica, whose loop (one libevent base per server, run by this
 * thread between the fixture's steps: the layer below krappyd's loop
 * thread) applies it to the store.
 *
 * An idempotent producer (one PUBLISH in flight, sent again with the same
 * seq to whoever leads when it had no answer) publishes through a cut-off
 * leader, a killed follower, a killed leader and slow disks. After each
 * fault every server's stream is a prefix of every other's, byte for byte
 * (offsets, ts, keys, values); once healed they are equal, and every
 * acknowledged PUBLISH is there exactly once, nothing twice.
 *
 * Snapshots: a fault-free run takes them every 32 entries, and each must
 * cover streams synced as far as it says (checkpoints are an hour apart
 * here, so only the snapshot path syncs). The fault runs take none: a
 * follower behind a snapshot installs it and fetches the events it lacks
 * from the leader's data port (catchup.c), which this test does not run
 * (libraft 0.15 sends one after a partition heals even when the log still
 * holds the entries). e2e/e2e_cluster.c covers that path, and restarts of
 * a store (the fixture's kill stops raft, not the process).
 *
 * Also: the bound on one raft entry's command (kr_cluster_submit).
 */
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <unistd.h>

#include <cmocka.h>
#include <raft.h>
#include <raft/fixture.h>

#include "cluster/cluster_int.h"
#include "cluster/cmd.h"
#include "cluster/fsm.h"
#include "cluster/replica.h"
#include "proto/cbor.h"
#include "store_env.h"
#include "replica_env.h"
#include "util/log.h"

#define N_SERVERS  3
#define STEP_MS    20000
#define PER_BATCH  2 /* events per PUBLISH */
#define MAX_EVENTS 4000

static const kr_str TOPIC = {(const uint8_t *)"orders", 6};
static const kr_str PRODUCER = {(const uint8_t *)"shop-1", 6};

typedef struct srv {
    kr_fsm fsm;
    struct event_base *base;
    kr_metrics *metrics;
    char dir[128];
    kr_store *s;
    kr_replica *rp;
    uint64_t pushed;    /* the last index pushed to the replica */
    unsigned snapshots; /* taken */
    unsigned restores;  /* installed (none expected) */
} srv;

/* One command on its way through raft; freed by its callback. */
typedef struct sub {
    struct raft_apply req;
    struct world *w;
    uint64_t seq; /* PUBLISH: its first event's number; UINT64_MAX: the registration */
} sub;

typedef struct world {
    struct raft_fixture f;
    srv v[N_SERVERS];
    char acked[MAX_EVENTS]; /* events whose PUBLISH a leader acknowledged */
    uint64_t next_seq;      /* the producer's next event number */
    sub *inflight;          /* its PUBLISH waiting for an answer (NULL: none) */
    int outcome;            /* of inflight: -1 waiting, 0 acknowledged, 1 failed */
    unsigned resent;        /* PUBLISHes sent again */
    bool registered;
} world;

/* ---- the FSM: the store's replica ---- */

static int v_apply(void *arg, uint64_t index, const void *data, size_t len)
{
    srv *v = arg;
    if (kr_replica_push(v->rp, index, data, len) < 0)
        return -1;
    v->pushed = index;
    return 0;
}

/* Each topic's next in a snapshot's store part must be synced here. */
static void check_snapshot_synced(srv *v, const kr_buf *part)
{
    kr_cbor_item a, idx, list, e, name, next;
    kr_cbor_iter ai, li, ei;
    assert_int_equal(kr_cbor_read_exact(part->data, part->len, &a), 0);
    kr_cbor_iter_init(&ai, &a);
    assert_int_equal(kr_cbor_iter_next(&ai, &idx), 1);
    assert_int_equal(idx.u, v->pushed);
    assert_int_equal(kr_cbor_iter_next(&ai, &list), 1);
    kr_cbor_iter_init(&li, &list);
    while (kr_cbor_iter_next(&li, &e) == 1) {
        kr_cbor_iter_init(&ei, &e);
        assert_int_equal(kr_cbor_iter_next(&ei, &name), 1);
        assert_int_equal(kr_cbor_iter_next(&ei, &next), 1);
        kr_topic *t = kr_store_topic(v->s, name.str, name.str_len);
        assert_non_null(t);
        if (kr_store_synced(t) < next.u)
            fail_msg("a snapshot covers offsets up to %llu of %s, synced only below %llu",
                     (unsigned long long)next.u, t->name, (unsigned long long)kr_store_synced(t));
    }
}

/* The raft thread's wait for the store, with the loop run here meanwhile
 * (the fixture runs raft on this thread). */
static int v_snapshot(void *arg, void **data, size_t *len)
{
    srv *v = arg;
    kr_buf out;
    if (kr_test_replica_snapshot(v->rp, v->base, EVLOOP_ONCE, &out) != 0) {
        kr_buf_free(&out);
        return -1;
    }
    check_snapshot_synced(v, &out);
    v->snapshots++;
    *data = out.data; /* malloc'd: the caller's now */
    *len = out.len;
    return 0;
}

static int v_restore(void *arg, const void *data, size_t len)
{
    srv *v = arg;
    v->restores++;
    return kr_replica_restore(v->rp, data, len);
}

static void srv_open(srv *v)
{
    kr_test_env_up(&v->base, &v->metrics, v->dir, sizeof v->dir, "cstore");
    /* Checkpoints once an hour: only snapshots sync the streams. */
    v->rp = kr_test_replica_open(v->dir, 3600000, v->base, v->metrics, &v->s);
    kr_fsm_hooks h = {.arg = v, .apply = v_apply, .snapshot = v_snapshot, .restore = v_restore};
    kr_fsm_init(&v->fsm, &h);
}

static void srv_close(srv *v)
{
    kr_replica_halt(v->rp);
    kr_store_close(v->s);
    kr_replica_free(v->rp);
    kr_test_env_down(v->base, v->metrics, v->dir);
}

/* Three servers, snapshots every `threshold` entries. */
static world *world_new(unsigned threshold)
{
    world *w = calloc(1, sizeof *w);
    assert_non_null(w);
    assert_int_equal(raft_fixture_initialize(&w->f), 0);
    for (unsigned i = 0; i < N_SERVERS; i++) {
        srv_open(&w->v[i]);
        assert_int_equal(raft_fixture_grow(&w->f, &w->v[i].fsm.fsm), 0);
        struct raft *r = raft_fixture_get(&w->f, i);
        kr_fsm_bind(&w->v[i].fsm, r);
        raft_set_snapshot_threshold(r, threshold);
        raft_set_snapshot_trailing(r, 100000);
        raft_set_pre_vote(r, true);
    }
    struct raft_configuration conf;
    assert_int_equal(raft_fixture_configuration(&w->f, N_SERVERS, &conf), 0);
    assert_int_equal(raft_fixture_bootstrap(&w->f, &conf), 0);
    raft_configuration_close(&conf);
    assert_int_equal(raft_fixture_start(&w->f), 0);
    w->outcome = -1;
    return w;
}

static void world_free(world *w)
{
    raft_fixture_close(&w->f);
    for (unsigned i = 0; i < N_SERVERS; i++)
        srv_close(&w->v[i]);
    free(w);
}

/* ---- the producer ---- */

/* The live leader of the highest term, or N_SERVERS. */
static unsigned leader(world *w)
{
    unsigned l = N_SERVERS;
    for (unsigned i = 0; i < N_SERVERS; i++) {
        struct raft *r = raft_fixture_get(&w->f, i);
        if (raft_fixture_alive(&w->f, i) && raft_state(r) == RAFT_LEADER &&
            (l == N_SERVERS || r->current_term > raft_fixture_get(&w->f, l)->current_term))
            l = i;
    }
    return l;
}

static void answered(struct raft_apply *req, int status, void *result)
{
    (void)result;
    sub *s = req->data;
    world *w = s->w;
    if (s->seq == UINT64_MAX) {
        w->registered = w->registered || status == 0;
    } else if (status == 0) {
        /* Acknowledged, even when it was given up for lost meanwhile. */
        memset(w->acked + s->seq, 1, PER_BATCH);
    }
    if (s == w->inflight) {
        w->inflight = NULL;
        w->outcome = status == 0 ? 0 : 1;
    }
    free(s);
}

/* The PUBLISH of events seq.. (or the registration: seq UINT64_MAX) on
 * the leader. @return the submission, or NULL (no leader, or refused). */
static sub *submit(world *w, uint64_t seq)
{
    unsigned l = leader(w);
    if (l == N_SERVERS)
        return NULL;
    kr_buf cmd, payload;
    kr_buf_init(&cmd, 1 << 16);
    kr_buf_init(&payload, 1 << 16);
    if (seq == UINT64_MAX) {
        kr_cmd_put_producer_register(&cmd, &TOPIC, &PRODUCER, 1);
    } else {
        kr_event_out_spec ev[PER_BATCH];
        char vals[PER_BATCH][32];
        for (unsigned e = 0; e < PER_BATCH; e++) {
            vals[e][0] = 0x69; /* a text of 9 bytes: "pv-NNNNNN" */
            snprintf(vals[e] + 1, sizeof vals[e] - 1, "pv-%06u", (unsigned)(seq + e) % 1000000u);
            ev[e] = (kr_event_out_spec){
                .key = "k", .key_len = 1, .key_is_text = true, .value = vals[e], .value_len = 10};
        }
        kr_enc_publish_seq(&payload, (kr_cid){0}, KR_ACK_WRITE, seq, ev, PER_BATCH);
        kr_str body = {payload.data, payload.len};
        kr_cmd_put_publish(&cmd, &TOPIC, 1000 + seq, &PRODUCER, 1, &body);
    }
    struct raft_buffer buf;
    assert_int_equal(kr_entry_wrap(cmd.data, cmd.len, &buf), 0);
    kr_buf_free(&cmd);
    kr_buf_free(&payload);
    sub *s = calloc(1, sizeof *s);
    assert_non_null(s);
    *s = (sub){.w = w, .seq = seq};
    s->req.data = s;
    if (raft_apply(raft_fixture_get(&w->f, l), &s->req, &buf, 1, answered) != 0) {
        raft_free(buf.base);
        free(s);
        return NULL;
    }
    return s;
}

/* The producer's next PUBLISH (or the one it lost the answer of) until a
 * leader acknowledges it, within STEP_MS of fixture time per try; k
 * PUBLISHes, whatever the faults of the moment allow. */
static void publish_many(world *w, unsigned k)
{
    unsigned n = 0;
    for (unsigned tries = 0; n < k && tries < 50 * k && w->next_seq + PER_BATCH <= MAX_EVENTS;
         tries++) {
        if (w->inflight == NULL) {
            w->inflight = submit(w, w->next_seq);
            w->outcome = -1;
            if (w->inflight == NULL) {
                raft_fixture_step_until_elapsed(&w->f, 100);
                continue;
            }
        }
        for (int t = 0; t < 30 && w->outcome < 0; t++)
            raft_fixture_step_until_elapsed(&w->f, 100);
        if (w->outcome == 0) {
            w->next_seq += PER_BATCH;
            n++;
        } else {
            /* Failed or no answer in 3 s: the same seq again, to whoever
             * leads now (the first may still commit: a duplicate then). */
            w->inflight = NULL; /* its callback may still come: it counts then */
            w->resent++;
        }
        w->outcome = -1;
    }
    if (n < k)
        fail_msg("only %u of %u PUBLISHes acknowledged (no leader for too long)", n, k);
}

/* ---- the checks ---- */

/* Run every server's loop until its store completed what was pushed. */
static void drain(world *w)
{
    for (unsigned i = 0; i < N_SERVERS; i++) {
        srv *v = &w->v[i];
        for (int t = 0; t < 100000 && kr_replica_stored(v->rp) < v->pushed; t++) {
            event_base_loop(v->base, EVLOOP_NONBLOCK);
            if (kr_replica_stored(v->rp) < v->pushed)
                usleep(100);
        }
        assert_int_equal(kr_replica_stored(v->rp), v->pushed);
    }
}

/* Every event of the topic on server v, in delivered form, back to back. */
static void dump(srv *v, kr_buf *out, uint64_t *next)
{
    kr_buf_reset(out);
    *next = 0;
    kr_topic *t = kr_store_topic(v->s, TOPIC.ptr, TOPIC.len);
    if (t == NULL)
        return;
    char msg[256];
    uint64_t off = 0;
    for (;;) {
        kr_fetch_result res;
        assert_int_equal(kr_store_fetch(v->s, t, off, 1000, 1 << 20, &res, msg, sizeof msg),
                         KRAPPY_OK);
        if (res.count == 0)
            break;
        assert_int_equal(kr_store_fetch_copy(v->s, &res, out, msg, sizeof msg), 0);
        off = res.next;
    }
    *next = t->next;
}

/* Every server's stream a prefix of every other's (equal with `equal`),
 * and no event twice; with `equal`, every acknowledged one once. */
static void check(world *w, bool equal)
{
    drain(w);
    kr_buf d[N_SERVERS];
    uint64_t next[N_SERVERS];
    for (unsigned i = 0; i < N_SERVERS; i++) {
        kr_buf_init(&d[i], 64u << 20);
        dump(&w->v[i], &d[i], &next[i]);
    }
    for (unsigned i = 0; i < N_SERVERS; i++) {
        for (unsigned j = i + 1; j < N_SERVERS; j++) {
            size_t m = d[i].len < d[j].len ? d[i].len : d[j].len;
            if (memcmp(d[i].data, d[j].data, m) != 0)
                fail_msg("the streams of servers %u and %u differ", i, j);
            if (equal && (next[i] != next[j] || d[i].len != d[j].len))
                fail_msg("servers %u and %u hold %llu and %llu events once healed", i, j,
                         (unsigned long long)next[i], (unsigned long long)next[j]);
        }
    }
    unsigned l = 0;
    for (unsigned i = 1; i < N_SERVERS; i++)
        if (d[i].len > d[l].len)
            l = i;
    static int seen[MAX_EVENTS];
    memset(seen, 0, sizeof seen);
    const uint8_t *p = d[l].data, *end = p + d[l].len;
    while ((p = memmem(p, (size_t)(end - p), "pv-", 3)) != NULL && end - p >= 9) {
        unsigned no = 0;
        for (int k = 3; k < 9; k++)
            no = no * 10 + (unsigned)(p[k] - '0');
        assert_true(no < MAX_EVENTS);
        seen[no]++;
        p += 9;
    }
    for (unsigned no = 0; no < MAX_EVENTS; no++) {
        if (seen[no] > 1)
            fail_msg("event %u is stored %d times", no, seen[no]);
        if (equal && w->acked[no] && seen[no] != 1)
            fail_msg("acknowledged event %u is missing", no);
    }
    for (unsigned i = 0; i < N_SERVERS; i++)
        kr_buf_free(&d[i]);
}

static void heal(world *w)
{
    for (unsigned i = 0; i < N_SERVERS; i++) {
        if (!raft_fixture_alive(&w->f, i))
            raft_fixture_revive(&w->f, i);
        raft_fixture_set_disk_latency(&w->f, i, 10);
        raft_fixture_set_network_latency(&w->f, i, 15);
        for (unsigned j = 0; j < N_SERVERS; j++)
            if (i != j)
                raft_fixture_reconnect(&w->f, i, j);
    }
}

/* Healed, one more PUBLISH committed and applied everywhere. */
static void heal_and_check(world *w)
{
    heal(w);
    publish_many(w, 1);
    unsigned l = leader(w);
    assert_true(l < N_SERVERS);
    raft_index last = raft_last_index(raft_fixture_get(&w->f, l));
    assert_true(raft_fixture_step_until_applied(&w->f, N_SERVERS, last, STEP_MS));
    check(w, true);
}

static void cut_off(world *w, unsigned i)
{
    for (unsigned j = 0; j < N_SERVERS; j++) {
        if (j != i) {
            raft_fixture_disconnect(&w->f, i, j);
            raft_fixture_disconnect(&w->f, j, i);
        }
    }
}

/* ---- tests ---- */

/* Elect server 0 and register the producer. */
static void start_producer(world *w)
{
    raft_fixture_elect(&w->f, 0);
    for (int t = 0; t < 50 && !w->registered; t++) {
        if (submit(w, UINT64_MAX) != NULL)
            raft_fixture_step_until_elapsed(&w->f, 500);
    }
    assert_true(w->registered);
}

static unsigned count_acked(const world *w)
{
    unsigned n = 0;
    for (unsigned no = 0; no < MAX_EVENTS; no++)
        n += w->acked[no] != 0;
    return n;
}

static void test_store_through_faults(void **state)
{
    (void)state;
    world *w = world_new(1000000); /* none: see the top */
    start_producer(w);
    publish_many(w, 40);
    check(w, false);

    /* The leader cut off: its PUBLISH has no answer, the majority elects
     * another, which gets it again. */
    unsigned l = leader(w);
    cut_off(w, l);
    publish_many(w, 30);
    assert_int_not_equal(leader(w), l);
    check(w, false);
    heal_and_check(w);

    /* A follower killed while the others go on, then revived. */
    l = leader(w);
    unsigned f = (l + 1) % N_SERVERS;
    raft_fixture_kill(&w->f, f);
    publish_many(w, 40);
    check(w, false);
    raft_fixture_revive(&w->f, f);
    heal_and_check(w);

    /* The leader killed under the producer. */
    l = leader(w);
    assert_true(w->inflight == NULL);
    w->inflight = submit(w, w->next_seq);
    w->outcome = -1;
    raft_fixture_step_n(&w->f, 2);
    raft_fixture_kill(&w->f, l);
    publish_many(w, 30);
    assert_int_not_equal(leader(w), l);
    check(w, false);
    heal_and_check(w);

    /* Slow disks: a follower's, then the leader's, and a slow link. */
    l = leader(w);
    raft_fixture_set_disk_latency(&w->f, (l + 2) % N_SERVERS, 300);
    publish_many(w, 20);
    check(w, false);
    raft_fixture_set_disk_latency(&w->f, l, 200);
    raft_fixture_set_network_latency(&w->f, (l + 1) % N_SERVERS, 80);
    publish_many(w, 20);
    check(w, false);
    heal_and_check(w);

    print_message("store under the fixture: %u events acknowledged, %u PUBLISHes sent again\n",
                  count_acked(w), w->resent);
    assert_true(w->resent > 0); /* the faults did hit the producer */
    for (unsigned i = 0; i < N_SERVERS; i++)
        assert_int_equal(w->v[i].snapshots + w->v[i].restores, 0);
    world_free(w);
}

/* Snapshots every 32 entries on every server, none installed: each covers
 * streams synced as far as it says (v_snapshot checks). */
static void test_snapshots_cover_synced_streams(void **state)
{
    (void)state;
    world *w = world_new(32);
    start_producer(w);
    publish_many(w, 100);
    heal_and_check(w);
    for (unsigned i = 0; i < N_SERVERS; i++) {
        assert_true(w->v[i].snapshots >= 2);
        assert_int_equal(w->v[i].restores, 0);
    }
    print_message("snapshots over synced streams: %u, %u, %u\n", w->v[0].snapshots,
                  w->v[1].snapshots, w->v[2].snapshots);
    world_free(w);
}

/* A command over KR_CLUSTER_COMMAND_MAX is refused before anything of the
 * cluster is asked; one at the bound goes on (here: to NOT_LEADER, since
 * this cluster never started). */
static void test_command_bound(void **state)
{
    (void)state;
    kr_cluster *c = calloc(1, sizeof *c);
    uint8_t *big = calloc(1, (size_t)KR_CLUSTER_COMMAND_MAX + 1);
    assert_non_null(c);
    assert_non_null(big);
    char msg[256];
    assert_int_equal(
        kr_cluster_submit(c, big, (size_t)KR_CLUSTER_COMMAND_MAX + 1, NULL, NULL, msg, sizeof msg),
        KRAPPY_E_INVALID_ARGUMENT);
    assert_non_null(strstr(msg, "at most 1048576 bytes"));
    assert_non_null(strstr(msg, "smaller batches"));
    assert_int_equal(kr_cluster_submit(c, big, KR_CLUSTER_COMMAND_MAX, NULL, NULL, msg, sizeof msg),
                     KRAPPY_E_NOT_LEADER);
    free(big);
    free(c);
}

int main(void)
{
    kr_log_setup(getenv("KR_TEST_LOG") ? KR_LOG_DEBUG : KR_LOG_ERROR, KR_LOG_TEXT);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_store_through_faults),
        cmocka_unit_test(test_snapshots_cover_synced_streams),
        cmocka_unit_test(test_command_bound),
    };
    return cmocka_run_group_tests_name("test_cluster_store", tests, NULL, NULL);
}
