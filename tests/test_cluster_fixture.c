/*
 * tests/test_cluster_fixture.c - cluster/fsm.c (the entry envelope and the
 * raft_fsm adapter) under libraft's deterministic fixture (raft/fixture.h):
 * an in-memory cluster whose network and disks the test schedules. A small
 * FSM records every (index, value) it applies; after each fault (partition,
 * kill, slow disk, failing disk, a long random schedule) the invariants are
 * checked:
 *   - every server's applied log is a prefix of every other's (same index,
 *     same value, position by position), indexes strictly increasing;
 *   - the index the adapter passes is the one the entry has in the log;
 *   - once healed, every entry a leader acknowledged (apply callback status
 *     0) is in every server's log, at its index, once.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <raft.h>
#include <raft/fixture.h>

#include "cluster/fsm.h"
#include "util/log.h"

#define MAX_SERVERS 5
#define STEP_MS     20000 /* bound of every step_until */

typedef struct rec {
    uint64_t index;
    uint64_t value;
} rec;

/* One server's state machine: the log of what it applied. */
typedef struct tfsm {
    kr_fsm fsm;
    rec *log;
    size_t n, cap;
    unsigned restores;  /* snapshots installed */
    unsigned snapshots; /* snapshots taken */
    unsigned bad;       /* applies whose index, bytes or order were wrong */
    int fail_apply;     /* > 0: refuse that many applies */
} tfsm;

typedef struct cluster {
    struct raft_fixture f;
    tfsm fsms[MAX_SERVERS];
    unsigned n;
    rec *acked; /* acknowledged to the submitter */
    size_t n_acked, cap_acked;
    uint64_t next_value;
    unsigned failed_cbs; /* apply callbacks with an error */
} cluster;

typedef struct submit_req {
    struct raft_apply req;
    cluster *c;
    uint64_t value;
} submit_req;

static void push(rec **v, size_t *n, size_t *cap, rec r)
{
    if (*n == *cap) {
        *cap = *cap ? *cap * 2 : 64;
        *v = realloc(*v, *cap * sizeof **v);
        assert_non_null(*v);
    }
    (*v)[(*n)++] = r;
}

/* The payload of value v: v itself, then v % 11 filler bytes, so entries of
 * every length modulo 8 go through the envelope. */
static size_t payload(uint64_t v, uint8_t *out)
{
    memcpy(out, &v, 8);
    size_t extra = v % 11;
    for (size_t i = 0; i < extra; i++)
        out[8 + i] = (uint8_t)(v + i);
    return 8 + extra;
}

/* Entry `index` of a raft log, or NULL (libraft's circular buffer). */
static const struct raft_entry *log_entry(const struct raft_log *l, raft_index index)
{
    if (index <= l->offset)
        return NULL;
    size_t count = l->back >= l->front ? l->back - l->front : l->size - l->front + l->back;
    size_t pos = (size_t)(index - l->offset - 1);
    if (pos >= count)
        return NULL;
    return &l->entries[(l->front + pos) % l->size];
}

static int t_apply(void *arg, uint64_t index, const void *data, size_t len)
{
    tfsm *t = arg;
    if (t->fail_apply > 0) {
        t->fail_apply--;
        return -1;
    }
    uint8_t want[32];
    uint64_t v;
    if (len < 8) {
        t->bad++;
        return 0;
    }
    memcpy(&v, data, 8);
    if (payload(v, want) != len || memcmp(want, data, len) != 0)
        t->bad++;
    /* The adapter's index must name this very entry in the server's log. */
    const struct raft_entry *e = log_entry(&t->fsm.raft->log, index);
    const void *d;
    size_t dl;
    if (e == NULL || e->type != RAFT_COMMAND || kr_entry_unwrap(&e->buf, &d, &dl) < 0 ||
        dl != len || memcmp(d, data, len) != 0)
        t->bad++;
    if (t->n > 0 && t->log[t->n - 1].index >= index)
        t->bad++;
    push(&t->log, &t->n, &t->cap, (rec){index, v});
    return 0;
}

static int t_snapshot(void *arg, void **data, size_t *len)
{
    tfsm *t = arg;
    *len = t->n * sizeof(rec);
    *data = malloc(*len ? *len : 1);
    if (*data == NULL)
        return -1;
    if (t->n > 0)
        memcpy(*data, t->log, *len);
    t->snapshots++;
    return 0;
}

static int t_restore(void *arg, const void *data, size_t len)
{
    tfsm *t = arg;
    if (len % sizeof(rec) != 0)
        return -1;
    t->n = 0;
    for (size_t i = 0; i < len / sizeof(rec); i++) {
        rec r;
        memcpy(&r, (const uint8_t *)data + i * sizeof r, sizeof r);
        push(&t->log, &t->n, &t->cap, r);
    }
    t->restores++;
    return 0;
}

/* n voters, snapshots every `threshold` entries keeping `trailing`. */
static cluster *cluster_new(unsigned n, unsigned threshold, unsigned trailing)
{
    cluster *c = calloc(1, sizeof *c);
    assert_non_null(c);
    c->n = n;
    c->next_value = 1;
    assert_int_equal(raft_fixture_initialize(&c->f), 0);
    for (unsigned i = 0; i < n; i++) {
        kr_fsm_hooks h = {
            .arg = &c->fsms[i], .apply = t_apply, .snapshot = t_snapshot, .restore = t_restore};
        kr_fsm_init(&c->fsms[i].fsm, &h);
        assert_int_equal(raft_fixture_grow(&c->f, &c->fsms[i].fsm.fsm), 0);
        struct raft *r = raft_fixture_get(&c->f, i);
        kr_fsm_bind(&c->fsms[i].fsm, r);
        raft_set_snapshot_threshold(r, threshold);
        raft_set_snapshot_trailing(r, trailing);
        raft_set_pre_vote(r, true); /* as cluster/node.c runs it */
    }
    struct raft_configuration conf;
    assert_int_equal(raft_fixture_configuration(&c->f, n, &conf), 0);
    assert_int_equal(raft_fixture_bootstrap(&c->f, &conf), 0);
    raft_configuration_close(&conf);
    assert_int_equal(raft_fixture_start(&c->f), 0);
    return c;
}

static void cluster_free(cluster *c)
{
    raft_fixture_close(&c->f);
    for (unsigned i = 0; i < c->n; i++)
        free(c->fsms[i].log);
    free(c->acked);
    free(c);
}

static void submitted(struct raft_apply *req, int status, void *result)
{
    submit_req *s = req->data;
    (void)result;
    if (status == 0)
        push(&s->c->acked, &s->c->n_acked, &s->c->cap_acked, (rec){req->index, s->value});
    else
        s->c->failed_cbs++;
    free(s);
}

/* Propose the next value on server i. @return 0, or libraft's refusal. */
static int submit_on(cluster *c, unsigned i)
{
    uint8_t p[32];
    submit_req *s = calloc(1, sizeof *s);
    assert_non_null(s);
    s->c = c;
    s->value = c->next_value++;
    struct raft_buffer buf;
    assert_int_equal(kr_entry_wrap(p, payload(s->value, p), &buf), 0);
    assert_int_equal(buf.len % 8, 0);
    s->req.data = s;
    int rv = raft_apply(raft_fixture_get(&c->f, i), &s->req, &buf, 1, submitted);
    if (rv != 0) {
        raft_free(buf.base);
        free(s);
    }
    return rv;
}

/* The leader: the live server in leader state with the highest term (a
 * cut-off old leader may still believe it leads, in an older term), or c->n.
 * The fixture's own notion (raft_fixture_leader_index) keeps a killed
 * leader and wants every connected server to agree. */
static unsigned leader_of(cluster *c)
{
    unsigned l = c->n;
    for (unsigned i = 0; i < c->n; i++) {
        struct raft *r = raft_fixture_get(&c->f, i);
        if (!raft_fixture_alive(&c->f, i) || raft_state(r) != RAFT_LEADER)
            continue;
        if (l == c->n || r->current_term > raft_fixture_get(&c->f, l)->current_term)
            l = i;
    }
    return l;
}

static bool has_leader(struct raft_fixture *f, void *arg)
{
    (void)f;
    return leader_of(arg) < ((cluster *)arg)->n;
}

static bool wait_leader(cluster *c)
{
    return raft_fixture_step_until(&c->f, has_leader, c, STEP_MS);
}

/* Propose on the current leader. @return 0, or -1 when there is none. */
static int submit(cluster *c)
{
    unsigned l = leader_of(c);
    if (l >= c->n)
        return -1;
    return submit_on(c, l) == 0 ? 0 : -1;
}

/* Invariant: applied logs are prefixes of one another, and were applied
 * with the right index and bytes. */
static void check_prefixes(cluster *c)
{
    for (unsigned i = 0; i < c->n; i++) {
        assert_int_equal(c->fsms[i].bad, 0);
        for (unsigned j = i + 1; j < c->n; j++) {
            const tfsm *a = &c->fsms[i], *b = &c->fsms[j];
            size_t m = a->n < b->n ? a->n : b->n;
            for (size_t k = 0; k < m; k++) {
                if (a->log[k].index != b->log[k].index || a->log[k].value != b->log[k].value)
                    fail_msg("servers %u and %u differ at position %zu: (%llu,%llu) vs (%llu,%llu)",
                             i, j, k, (unsigned long long)a->log[k].index,
                             (unsigned long long)a->log[k].value,
                             (unsigned long long)b->log[k].index,
                             (unsigned long long)b->log[k].value);
            }
        }
    }
}

static const rec *find(const tfsm *t, uint64_t index)
{
    size_t lo = 0, hi = t->n;
    while (lo < hi) {
        size_t mid = (lo + hi) / 2;
        if (t->log[mid].index < index)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo < t->n && t->log[lo].index == index ? &t->log[lo] : NULL;
}

/* Invariant, once every server caught up: each acknowledged entry is in
 * every log (but server `skip`'s; c->n for none) at its index (indexes are
 * unique in a log, so once). */
static void check_acked(cluster *c, unsigned skip)
{
    for (size_t k = 0; k < c->n_acked; k++) {
        for (unsigned i = 0; i < c->n; i++) {
            if (i == skip)
                continue;
            const rec *r = find(&c->fsms[i], c->acked[k].index);
            if (r == NULL || r->value != c->acked[k].value)
                fail_msg("acknowledged entry %llu (value %llu) lost on server %u",
                         (unsigned long long)c->acked[k].index,
                         (unsigned long long)c->acked[k].value, i);
        }
    }
}

/* Heal every fault, wait for a leader, commit one more entry everywhere,
 * then check both invariants. */
static void heal_and_check(cluster *c)
{
    for (unsigned i = 0; i < c->n; i++) {
        if (!raft_fixture_alive(&c->f, i))
            raft_fixture_revive(&c->f, i);
        raft_fixture_set_disk_latency(&c->f, i, 10);
        raft_fixture_set_network_latency(&c->f, i, 15);
        for (unsigned j = 0; j < c->n; j++) {
            if (i == j)
                continue;
            raft_fixture_reconnect(&c->f, i, j);
            raft_fixture_desaturate(&c->f, i, j);
        }
    }
    size_t acked = c->n_acked;
    for (int tries = 0; tries < 50 && c->n_acked == acked; tries++) {
        assert_true(wait_leader(c));
        if (submit(c) == 0)
            raft_fixture_step_until_elapsed(&c->f, 500);
        else
            raft_fixture_step_n(&c->f, 10);
    }
    assert_true(c->n_acked > acked);
    uint64_t last = c->acked[c->n_acked - 1].index;
    assert_true(raft_fixture_step_until_applied(&c->f, c->n, last, STEP_MS));
    check_prefixes(c);
    check_acked(c, c->n);
}

/* Submit k entries on the leader, stepping in between, and wait for them. */
static void submit_many(cluster *c, unsigned k)
{
    size_t before = c->n_acked;
    for (unsigned i = 0; i < k; i++) {
        assert_int_equal(submit(c), 0);
        raft_fixture_step_n(&c->f, 3);
    }
    for (int t = 0; t < 200 && c->n_acked < before + k; t++)
        raft_fixture_step_until_elapsed(&c->f, 100);
    assert_int_equal(c->n_acked, before + k);
}

/* ---- tests ---- */

static void test_envelope(void **state)
{
    (void)state;
    uint8_t data[40];
    for (size_t i = 0; i < sizeof data; i++)
        data[i] = (uint8_t)(i * 7 + 1);
    for (size_t len = 0; len <= sizeof data; len++) {
        struct raft_buffer b;
        assert_int_equal(kr_entry_wrap(data, len, &b), 0);
        assert_int_equal(b.len % 8, 0);
        assert_true(b.len >= len + KR_ENTRY_HEADER_BYTES &&
                    b.len < len + KR_ENTRY_HEADER_BYTES + 8);
        const void *d;
        size_t dl;
        assert_int_equal(kr_entry_unwrap(&b, &d, &dl), 0);
        assert_int_equal(dl, len);
        assert_memory_equal(d, data, len);
        /* A length past the buffer, another version, another magic: refused. */
        uint8_t *p = b.base;
        p[4] = (uint8_t)(b.len - KR_ENTRY_HEADER_BYTES + 1);
        assert_int_equal(kr_entry_unwrap(&b, &d, &dl), -1);
        p[4] = (uint8_t)len;
        p[2] = 2;
        assert_int_equal(kr_entry_unwrap(&b, &d, &dl), -1);
        p[2] = 1;
        p[0] = 'X';
        assert_int_equal(kr_entry_unwrap(&b, &d, &dl), -1);
        raft_free(b.base);
    }
    struct raft_buffer small = {.base = data, .len = 7};
    const void *d;
    size_t dl;
    assert_int_equal(kr_entry_unwrap(&small, &d, &dl), -1);
    struct raft_buffer big;
    assert_int_equal(kr_entry_wrap(data, (size_t)KR_ENTRY_MAX_BYTES + 1, &big), RAFT_TOOBIG);
}

/* Elect, apply, snapshot: everyone agrees, indexes name the log's entries. */
static void test_apply_and_snapshot(void **state)
{
    (void)state;
    cluster *c = cluster_new(3, 32, 8);
    raft_fixture_elect(&c->f, 0);
    submit_many(c, 200);
    assert_true(
        raft_fixture_step_until_applied(&c->f, c->n, c->acked[c->n_acked - 1].index, STEP_MS));
    for (unsigned i = 0; i < c->n; i++) {
        assert_true(c->fsms[i].snapshots > 0);
        assert_true(c->fsms[i].n >= 200);
    }
    check_prefixes(c);
    check_acked(c, c->n);
    heal_and_check(c);
    cluster_free(c);
}

/* A threshold never reached: the entries' bytes call the snapshots (each
 * server's bound lowered to ~40 entries), and raft's threshold is back once
 * one was taken. */
static void test_snapshot_by_bytes(void **state)
{
    (void)state;
    cluster *c = cluster_new(3, 1000000, 8);
    for (unsigned i = 0; i < c->n; i++)
        c->fsms[i].fsm.max_bytes = 40 * 40;
    raft_fixture_elect(&c->f, 0);
    for (int round = 0; round < 20; round++) {
        submit_many(c, 30);
        raft_fixture_step_until_elapsed(&c->f, 1000);
    }
    assert_true(
        raft_fixture_step_until_applied(&c->f, c->n, c->acked[c->n_acked - 1].index, STEP_MS));
    for (unsigned i = 0; i < c->n; i++) {
        assert_true(c->fsms[i].snapshots >= 3);
        assert_true(c->fsms[i].snapshots <= 10);
        assert_int_equal(raft_fixture_get(&c->f, i)->snapshot.threshold, 1000000);
        assert_true(c->fsms[i].fsm.bytes < c->fsms[i].fsm.max_bytes);
    }
    check_prefixes(c);
    check_acked(c, c->n);
    heal_and_check(c);
    cluster_free(c);
}

/* A leader cut off from the majority: what it takes meanwhile is never
 * acknowledged, the majority goes on, and after healing it steps down and
 * drops its uncommitted tail. */
static void test_partitioned_leader(void **state)
{
    (void)state;
    cluster *c = cluster_new(3, 64, 16);
    raft_fixture_elect(&c->f, 0);
    submit_many(c, 20);
    raft_fixture_disconnect(&c->f, 0, 1);
    raft_fixture_disconnect(&c->f, 1, 0);
    raft_fixture_disconnect(&c->f, 0, 2);
    raft_fixture_disconnect(&c->f, 2, 0);
    size_t acked = c->n_acked;
    uint64_t first_cut = c->next_value;
    for (int i = 0; i < 10; i++)
        assert_int_equal(submit_on(c, 0), 0);
    uint64_t last_cut = c->next_value;
    /* The majority elects one of its own. */
    raft_fixture_step_until_elapsed(&c->f, 3000);
    assert_int_not_equal(raft_state(raft_fixture_get(&c->f, 0)), RAFT_LEADER);
    assert_true(wait_leader(c));
    unsigned l = leader_of(c);
    assert_true(l == 1 || l == 2);
    assert_int_equal(c->n_acked, acked);
    submit_many(c, 20);
    check_prefixes(c);
    heal_and_check(c);
    for (size_t k = 0; k < c->n_acked; k++)
        assert_true(c->acked[k].value < first_cut || c->acked[k].value >= last_cut);
    /* The cut-off leader's entries were dropped everywhere. */
    for (unsigned i = 0; i < c->n; i++)
        for (size_t k = 0; k < c->fsms[i].n; k++)
            assert_true(c->fsms[i].log[k].value < first_cut || c->fsms[i].log[k].value >= last_cut);
    assert_true(c->failed_cbs >= 10);
    cluster_free(c);
}

/* A follower down while the others snapshot and trim their logs catches up
 * from a snapshot; then the leader is killed and a new one carries on. */
static void test_kill_and_catch_up(void **state)
{
    (void)state;
    cluster *c = cluster_new(3, 16, 4);
    raft_fixture_elect(&c->f, 0);
    submit_many(c, 10);
    raft_fixture_kill(&c->f, 2);
    submit_many(c, 100);
    check_prefixes(c);
    raft_fixture_revive(&c->f, 2);
    assert_true(raft_fixture_step_until_applied(&c->f, 2, c->acked[c->n_acked - 1].index, STEP_MS));
    assert_true(c->fsms[2].restores > 0);
    check_prefixes(c);
    check_acked(c, c->n);

    raft_fixture_kill(&c->f, 0);
    assert_true(wait_leader(c));
    assert_int_not_equal(leader_of(c), 0);
    submit_many(c, 50);
    check_prefixes(c);
    heal_and_check(c);
    cluster_free(c);
}

/* Slow disks (one follower, then the leader) and a slow link: slower, same
 * answers. */
static void test_disk_latency(void **state)
{
    (void)state;
    cluster *c = cluster_new(3, 32, 8);
    raft_fixture_elect(&c->f, 0);
    raft_fixture_set_disk_latency(&c->f, 2, 300);
    submit_many(c, 30);
    check_prefixes(c);
    raft_fixture_set_disk_latency(&c->f, 0, 200);
    raft_fixture_set_network_latency(&c->f, 1, 80);
    submit_many(c, 30);
    check_prefixes(c);
    heal_and_check(c);
    cluster_free(c);
}

/* The leader's disk refuses a write (the fixture fails I/O when it is
 * submitted): raft_apply refuses the entry with RAFT_IOERR, nothing of it
 * is in any log, the leader stays and the next entries commit. */
static void test_disk_failure(void **state)
{
    (void)state;
    cluster *c = cluster_new(3, 32, 8);
    raft_fixture_elect(&c->f, 0);
    submit_many(c, 10);
    struct raft *leader = raft_fixture_get(&c->f, 0);
    raft_index last = raft_last_index(leader);
    raft_fixture_io_fault(&c->f, 0, 0, 1);
    assert_int_equal(submit_on(c, 0), RAFT_IOERR);
    assert_int_equal(raft_last_index(leader), last);
    raft_fixture_step_until_elapsed(&c->f, 2000);
    assert_int_equal(raft_state(leader), RAFT_LEADER);
    submit_many(c, 10);
    check_prefixes(c);
    heal_and_check(c);
    cluster_free(c);
}

/* An apply that fails: on a follower libraft 0.15 stops that server for
 * good (UNAVAILABLE: no votes, no appends, the entry unapplied) while the
 * others go on; on the leader the entry stays unapplied and unanswered
 * until the next commit, when it is applied again. */
static void test_apply_failure(void **state)
{
    (void)state;
    cluster *c = cluster_new(3, 1000, 100);
    raft_fixture_elect(&c->f, 0);
    submit_many(c, 5);
    assert_true(
        raft_fixture_step_until_applied(&c->f, c->n, c->acked[c->n_acked - 1].index, STEP_MS));
    c->fsms[1].fail_apply = 1;
    submit_many(c, 3);
    raft_fixture_step_until_elapsed(&c->f, 2000);
    assert_int_equal(raft_state(raft_fixture_get(&c->f, 1)), RAFT_UNAVAILABLE);
    assert_int_equal(c->fsms[1].n, 5);
    assert_int_equal(c->fsms[0].n, 8);
    assert_int_equal(c->fsms[2].n, 8);
    check_prefixes(c);

    struct raft *leader = raft_fixture_get(&c->f, 0);
    c->fsms[0].fail_apply = 1;
    size_t acked = c->n_acked;
    assert_int_equal(submit_on(c, 0), 0);
    raft_fixture_step_until_elapsed(&c->f, 2000);
    assert_int_equal(raft_state(leader), RAFT_LEADER);
    assert_int_equal(leader->last_applied + 1, leader->commit_index);
    assert_int_equal(c->n_acked, acked);
    assert_int_equal(c->fsms[0].n, 8);
    assert_int_equal(c->fsms[2].n, 9);
    /* The next commit applies both. */
    assert_int_equal(submit_on(c, 0), 0);
    raft_fixture_step_until_elapsed(&c->f, 2000);
    assert_int_equal(c->n_acked, acked + 2);
    assert_int_equal(c->fsms[0].n, 10);
    assert_int_equal(leader->last_applied, leader->commit_index);
    check_prefixes(c);
    check_acked(c, 1); /* all but the halted follower */
    cluster_free(c);
}

static uint64_t rng_state;

static unsigned rnd(unsigned n)
{
    rng_state ^= rng_state << 13;
    rng_state ^= rng_state >> 7;
    rng_state ^= rng_state << 17;
    return (unsigned)(rng_state % n);
}

/* A long random schedule of faults over 5 servers, checked after every
 * round; healed and checked at the end. $KRAPPY_FIXTURE_SEED and
 * $KRAPPY_FIXTURE_ROUNDS pick another schedule.
 *
 * Without snapshots: libraft 0.15's fixture I/O stub truncates its log as if
 * it always started at index 1, so a follower truncating a conflicting tail
 * after a snapshot reads past the stub's array (ASan: heap-buffer-overflow in
 * the stub's truncate, under raft_fixture_step). That is the fixture's bug,
 * not the engine's (raft_uv truncates on its own); snapshots are covered by
 * the tests above, where no truncation follows one. */
static void test_random_schedule(void **state)
{
    (void)state;
    const char *s = getenv("KRAPPY_FIXTURE_SEED");
    rng_state = s != NULL ? strtoull(s, NULL, 0) : 0x5eed1234abcdULL;
    if (rng_state == 0)
        rng_state = 1;
    unsigned rounds =
        getenv("KRAPPY_FIXTURE_ROUNDS") ? (unsigned)atoi(getenv("KRAPPY_FIXTURE_ROUNDS")) : 1500;
    cluster *c = cluster_new(5, 1000000, 100); /* no snapshots: see above */
    raft_fixture_elect(&c->f, 0);
    for (unsigned round = 0; round < rounds; round++) {
        unsigned a = rnd(c->n), b = rnd(c->n), dead = 0;
        for (unsigned i = 0; i < c->n; i++)
            dead += !raft_fixture_alive(&c->f, i);
        switch (rnd(10)) {
        case 0:
            if (a != b) {
                raft_fixture_disconnect(&c->f, a, b);
                raft_fixture_disconnect(&c->f, b, a);
            }
            break;
        case 1:
            if (a != b) {
                raft_fixture_reconnect(&c->f, a, b);
                raft_fixture_reconnect(&c->f, b, a);
            }
            break;
        case 2:
            if (dead < 2 && raft_fixture_alive(&c->f, a))
                raft_fixture_kill(&c->f, a);
            break;
        case 3:
            if (!raft_fixture_alive(&c->f, a))
                raft_fixture_revive(&c->f, a);
            break;
        case 4:
            raft_fixture_set_disk_latency(&c->f, a, 1 + rnd(200));
            raft_fixture_set_network_latency(&c->f, b, 1 + rnd(100));
            break;
        default:
            for (unsigned k = rnd(4); k > 0; k--)
                submit(c);
            break;
        }
        raft_fixture_step_n(&c->f, 1 + rnd(60));
        check_prefixes(c);
    }
    heal_and_check(c);
    /* The schedule made progress: something was committed along the way. */
    assert_true(c->n_acked > 10);
    print_message("random schedule: %u rounds, %zu entries acknowledged, %u failed\n", rounds,
                  c->n_acked, c->failed_cbs);
    cluster_free(c);
}

int main(void)
{
    kr_log_setup(KR_LOG_ERROR, KR_LOG_TEXT);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_envelope),          cmocka_unit_test(test_apply_and_snapshot),
        cmocka_unit_test(test_snapshot_by_bytes), cmocka_unit_test(test_partitioned_leader),
        cmocka_unit_test(test_kill_and_catch_up), cmocka_unit_test(test_disk_latency),
        cmocka_unit_test(test_disk_failure),      cmocka_unit_test(test_apply_failure),
        cmocka_unit_test(test_random_schedule),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
