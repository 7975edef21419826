/*
 * tests/test_cluster_replica.c - the store's side of the replicated log
 * (cluster/replica.h) on a real store, without raft: commands pushed as the
 * raft thread pushes them, applied in order on the loop, their results by
 * index; a restart replaying the log skips what the streams hold; an
 * idempotent registration replayed is skipped and a resent PUBLISH is a
 * duplicate; a snapshot carries each topic's next, its producers and its
 * groups' cursors, and restoring one the store already covers fetches
 * nothing (a group it lacks goes); groups' cursors (created, moved by
 * rounds of ACKs, sought, deleted) and Kafka offsets are applied, durably,
 * and replayed to where the log ends; a topic's settings and deletion are
 * applied, a replay of a deletion makes the topic made after it again
 * from the log, and a snapshot carries settings and drops topics deleted
 * before it. A BATCH's sub-commands each get the result they would alone
 * (mixed outcomes), and a replay skips exactly the ones a stream holds. A
 * halted replica keeps no copy of the commands pushed after the halt.
 */
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <time.h>

#include <cmocka.h>

#include "cluster/cmd.h"
#include "cluster/replica.h"
#include "cluster/replica_int.h"
#include "proto/cbor.h"
#include "store_env.h"
#include "replica_env.h"

typedef struct env {
    struct event_base *base;
    kr_metrics *metrics;
    char dir[128];
    kr_store *s;
    kr_replica *rp;
    kr_buf b;
} env;

static void open_all(env *e)
{
    e->rp = kr_test_replica_open(e->dir, 100, e->base, e->metrics, &e->s);
}

static void close_all(env *e)
{
    kr_replica_halt(e->rp);
    kr_store_close(e->s);
    kr_replica_free(e->rp);
    e->s = NULL;
    e->rp = NULL;
}

static int setup(void **state)
{
    env *e = calloc(1, sizeof *e);
    assert_non_null(e);
    kr_test_env_up(&e->base, &e->metrics, e->dir, sizeof e->dir, "replica");
    kr_buf_init(&e->b, 1 << 20);
    open_all(e);
    *state = e;
    return 0;
}

static int teardown(void **state)
{
    env *e = *state;
    close_all(e);
    kr_buf_free(&e->b);
    kr_test_env_down(e->base, e->metrics, e->dir);
    free(e);
    return 0;
}

static const kr_str TOPIC = {(const uint8_t *)"orders", 6};

static void push_create(env *e, uint64_t index)
{
    kr_buf_reset(&e->b);
    kr_cmd_put_topic(&e->b, KR_CMD_TOPIC_CREATE, &TOPIC);
    assert_int_equal(kr_replica_push(e->rp, index, e->b.data, e->b.len), 0);
}

/* A PUBLISH of n events without ts ("v0".."vn-1"), from producer id (NULL:
 * plain) with seq, encoded into out (reset first). */
static void put_publish(kr_buf *out, size_t n, uint64_t ts, const char *id, uint32_t epoch,
                        uint64_t seq)
{
    kr_event_out_spec ev[8];
    uint8_t vals[8][4];
    kr_buf payload;
    kr_buf_init(&payload, 1 << 16);
    for (size_t i = 0; i < n; i++) {
        vals[i][0] = 0x62; /* a text of 2: "v0".. */
        vals[i][1] = 'v';
        vals[i][2] = (uint8_t)('0' + i);
        ev[i] = (kr_event_out_spec){
            .key = "k", .key_len = 1, .key_is_text = true, .value = vals[i], .value_len = 3};
    }
    if (id != NULL)
        kr_enc_publish_seq(&payload, (kr_cid){0}, KR_ACK_WRITE, seq, ev, n);
    else
        kr_enc_publish(&payload, (kr_cid){0}, KR_ACK_WRITE, ev, n);
    kr_str body = {payload.data, payload.len}, pid = {(const uint8_t *)id, id ? strlen(id) : 0};
    kr_buf_reset(out);
    kr_cmd_put_publish(out, &TOPIC, ts, id ? &pid : NULL, epoch, &body);
    kr_buf_free(&payload);
}

static void push_publish(env *e, uint64_t index, size_t n, uint64_t ts, const char *id,
                         uint32_t epoch, uint64_t seq)
{
    put_publish(&e->b, n, ts, id, epoch, seq);
    assert_int_equal(kr_replica_push(e->rp, index, e->b.data, e->b.len), 0);
}

static void push_register(env *e, uint64_t index, const char *id, uint32_t epoch)
{
    kr_str pid = {(const uint8_t *)id, strlen(id)};
    kr_buf_reset(&e->b);
    kr_cmd_put_producer_register(&e->b, &TOPIC, &pid, epoch);
    assert_int_equal(kr_replica_push(e->rp, index, e->b.data, e->b.len), 0);
}

/* The result at index, once the loop has it. */
static kr_store_result result_of(env *e, uint64_t index)
{
    done d = {0};
    kr_replica_wait(e->rp, index, on_done, &d);
    kr_test_run_until(e->base, &d.calls, 1);
    return d.res;
}

static kr_topic *topic(env *e)
{
    kr_topic *t = kr_store_topic(e->s, TOPIC.ptr, TOPIC.len);
    assert_non_null(t);
    return t;
}

static void test_apply_in_order(void **state)
{
    env *e = *state;
    push_create(e, 1);
    push_publish(e, 2, 3, 1234, NULL, 0, 0);
    push_publish(e, 3, 2, 1235, NULL, 0, 0);
    kr_store_result r = result_of(e, 3);
    assert_int_equal(r.err, KRAPPY_OK);
    assert_int_equal(r.first, 3);
    assert_int_equal(r.count, 2);
    r = result_of(e, 2); /* kept for later askers */
    assert_int_equal(r.first, 0);
    assert_int_equal(r.count, 3);
    assert_int_equal(kr_replica_stored(e->rp), 3);
    kr_topic *t = topic(e);
    assert_int_equal(t->next, 5);
    assert_int_equal(t->raft_index, kr_replica_pos(3, 0));
    /* The leader's clock, not this node's. */
    assert_int_equal(t->segs[0]->max_ts, 1235);
    /* A refused PUBLISH is every node's same answer. */
    kr_buf_reset(&e->b);
    kr_str junk = {(const uint8_t *)"\x01", 1};
    kr_cmd_put_publish(&e->b, &TOPIC, 1, NULL, 0, &junk);
    assert_int_equal(kr_replica_push(e->rp, 4, e->b.data, e->b.len), 0);
    r = result_of(e, 4);
    assert_int_not_equal(r.err, KRAPPY_OK);
    assert_int_equal(topic(e)->next, 5);
}

static void test_replay_skips_what_is_held(void **state)
{
    env *e = *state;
    push_create(e, 1);
    push_publish(e, 2, 3, 1000, NULL, 0, 0);
    push_publish(e, 3, 2, 1001, NULL, 0, 0);
    assert_int_equal(result_of(e, 3).err, KRAPPY_OK);
    close_all(e);
    open_all(e); /* a restart: raft replays its log from the start */
    assert_int_equal(topic(e)->raft_index, kr_replica_pos(3, 0));
    push_create(e, 1);
    push_publish(e, 2, 3, 1000, NULL, 0, 0);
    push_publish(e, 3, 2, 1001, NULL, 0, 0);
    push_publish(e, 4, 1, 1002, NULL, 0, 0);
    kr_store_result r = result_of(e, 4);
    assert_int_equal(r.err, KRAPPY_OK);
    assert_int_equal(r.first, 5);
    assert_int_equal(kr_replica_skipped(e->rp), 2);
    assert_int_equal(topic(e)->next, 6);
}

static void test_idempotent(void **state)
{
    env *e = *state;
    push_register(e, 1, "shop-1", 1);
    kr_store_result r = result_of(e, 1);
    assert_int_equal(r.err, KRAPPY_OK);
    assert_int_equal(r.epoch, 1);
    push_publish(e, 2, 2, 10, "shop-1", 1, 0);
    r = result_of(e, 2);
    assert_int_equal(r.err, KRAPPY_OK);
    assert_false(r.duplicate);
    /* Sent again after a leader change: a new entry, the same seq. */
    push_publish(e, 3, 2, 11, "shop-1", 1, 0);
    r = result_of(e, 3);
    assert_int_equal(r.err, KRAPPY_OK);
    assert_true(r.duplicate);
    assert_int_equal(r.first, 0);
    /* A gap: refused alike everywhere, with the seq expected. */
    push_publish(e, 4, 1, 12, "shop-1", 1, 7);
    r = result_of(e, 4);
    assert_int_equal(r.err, KRAPPY_E_OUT_OF_ORDER_SEQUENCE);
    assert_int_equal(r.seq, 2);
    close_all(e);
    open_all(e);
    /* Replayed: the registration is not a new epoch, the PUBLISH held. */
    push_register(e, 1, "shop-1", 1);
    push_publish(e, 2, 2, 10, "shop-1", 1, 0);
    push_register(e, 5, "shop-1", 2); /* a new registration fences epoch 1 */
    r = result_of(e, 5);
    assert_int_equal(r.epoch, 2);
    assert_int_equal(r.seq, 2);
    push_publish(e, 6, 1, 13, "shop-1", 1, 2);
    assert_int_equal(result_of(e, 6).err, KRAPPY_E_FENCED);
    assert_int_equal(topic(e)->next, 2);
}

static const kr_str GROUP = {(const uint8_t *)"billing", 7};

static void push_group(env *e, uint64_t index, kr_cmd_type type, uint64_t cursor)
{
    kr_buf_reset(&e->b);
    if (type == KR_CMD_GROUP_DELETE)
        kr_cmd_put_group_delete(&e->b, &TOPIC, &GROUP);
    else
        kr_cmd_put_group_at(&e->b, type, &TOPIC, &GROUP, cursor);
    assert_int_equal(kr_replica_push(e->rp, index, e->b.data, e->b.len), 0);
}

/* A round of ACKs: the group at `cursor`, and a group that is not there. */
static void push_cursors(env *e, uint64_t index, uint64_t cursor)
{
    kr_str gone = {(const uint8_t *)"gone", 4};
    kr_buf_reset(&e->b);
    kr_cmd_put_cursors_begin(&e->b, &TOPIC, 2);
    kr_cmd_put_cursor(&e->b, &GROUP, cursor);
    kr_cmd_put_cursor(&e->b, &gone, cursor);
    assert_int_equal(kr_replica_push(e->rp, index, e->b.data, e->b.len), 0);
}

/* The group's cursor here, UINT64_MAX when there is none. */
static uint64_t cursor_here(env *e)
{
    kr_tgroup *tg = kr_store_group(topic(e), GROUP.ptr, GROUP.len);
    return tg != NULL ? kr_store_group_cursor(tg) : UINT64_MAX;
}

/* The log's group commands, applied and replayed. */
static void push_group_log(env *e)
{
    push_create(e, 1);
    push_publish(e, 2, 5, 10, NULL, 0, 0);
    push_group(e, 3, KR_CMD_GROUP_CREATE, 1);
    push_cursors(e, 4, 4);
    push_group(e, 5, KR_CMD_GROUP_CREATE, 0); /* exists: a no-op */
}

static void test_groups(void **state)
{
    env *e = *state;
    push_group_log(e);
    kr_store_result r = result_of(e, 5);
    assert_int_equal(r.err, KRAPPY_OK);
    assert_int_equal(r.first, 4);
    assert_int_equal(result_of(e, 4).err, KRAPPY_OK);
    assert_int_equal(cursor_here(e), 4);
    assert_int_equal(kr_store_group(topic(e), GROUP.ptr, GROUP.len)->logged, 4);
    assert_null(kr_store_group(topic(e), (const uint8_t *)"gone", 4)); /* skipped, not made */
    /* Written durably: a restart finds it, and replaying the log from the
     * start leaves it where the log ends. */
    close_all(e);
    open_all(e);
    assert_int_equal(cursor_here(e), 4);
    push_group_log(e);
    assert_int_equal(result_of(e, 5).err, KRAPPY_OK);
    assert_int_equal(cursor_here(e), 4);
    push_group(e, 6, KR_CMD_GROUP_SEEK, 2);
    r = result_of(e, 6);
    assert_int_equal(r.err, KRAPPY_OK);
    assert_int_equal(r.first, 2);
    assert_int_equal(cursor_here(e), 2);
    push_group(e, 7, KR_CMD_GROUP_SEEK, 9); /* past next (5): refused alike everywhere */
    assert_int_equal(result_of(e, 7).err, KRAPPY_E_OFFSET_OUT_OF_RANGE);
    push_group(e, 8, KR_CMD_GROUP_DELETE, 0);
    assert_int_equal(result_of(e, 8).err, KRAPPY_OK);
    assert_int_equal(cursor_here(e), UINT64_MAX);
    push_group(e, 9, KR_CMD_GROUP_DELETE, 0);
    assert_int_equal(result_of(e, 9).err, KRAPPY_E_NOT_FOUND);
    push_cursors(e, 10, 3); /* a round for groups deleted meanwhile: nothing */
    assert_int_equal(result_of(e, 10).err, KRAPPY_OK);
    assert_int_equal(cursor_here(e), UINT64_MAX);
    close_all(e);
    open_all(e);
    assert_int_equal(cursor_here(e), UINT64_MAX);
}

static void test_kafka_offsets(void **state)
{
    env *e = *state;
    push_create(e, 1);
    kr_buf_reset(&e->b);
    kr_cmd_put_koffset(&e->b, &TOPIC, &GROUP, 17, (const uint8_t *)"m", 1);
    assert_int_equal(kr_replica_push(e->rp, 2, e->b.data, e->b.len), 0);
    assert_int_equal(result_of(e, 2).err, KRAPPY_OK);
    const kr_koffset *o = kr_store_koffset(topic(e), GROUP.ptr, GROUP.len);
    assert_non_null(o);
    assert_int_equal(o->offset, 17);
    kr_str none = {(const uint8_t *)"none", 4};
    kr_buf_reset(&e->b);
    kr_cmd_put_koffset(&e->b, &none, &GROUP, 1, NULL, 0);
    assert_int_equal(kr_replica_push(e->rp, 3, e->b.data, e->b.len), 0);
    assert_int_equal(result_of(e, 3).err, KRAPPY_E_NO_SUCH_TOPIC);
}

/* Run kr_replica_snapshot as the raft thread does, into out. */
static void snapshot_into(env *e, kr_buf *out)
{
    assert_int_equal(kr_test_replica_snapshot(e->rp, e->base, EVLOOP_NONBLOCK, out), 0);
}

/* A halted replica never stores what a snapshot would cover: the raft
 * thread's kr_replica_snapshot fails at once, not after its whole wait
 * (kr_test_snap_thread waits up to 5 s), tried again and again. */
static void test_halted_snapshot_fails_at_once(void **state)
{
    env *e = *state;
    push_register(e, 1, "shop-1", 1);
    assert_int_equal(result_of(e, 1).err, KRAPPY_OK);
    kr_replica_halt(e->rp);
    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    kr_buf snap;
    assert_int_equal(kr_test_replica_snapshot(e->rp, e->base, EVLOOP_NONBLOCK, &snap), -1);
    clock_gettime(CLOCK_MONOTONIC, &t1);
    kr_buf_free(&snap);
    long ms = (t1.tv_sec - t0.tv_sec) * 1000 + (t1.tv_nsec - t0.tv_nsec) / 1000000;
    if (ms >= 2500)
        fail_msg("a halted replica's snapshot failed after %ld ms, not at once", ms);
}

/* A halted replica holds no copy of the commands pushed after the halt:
 * raft's log keeps them for the restart's replay, and a node waiting to
 * be restarted must not grow with every write its peers commit. */
static void test_halted_holds_no_pushes(void **state)
{
    env *e = *state;
    push_register(e, 1, "shop-1", 1);
    assert_int_equal(result_of(e, 1).err, KRAPPY_OK);
    kr_replica_halt(e->rp);
    for (uint64_t i = 2; i < 100; i++)
        push_publish(e, i, 3, 1234, NULL, 0, 0);
    assert_null(e->rp->in_head);
    event_base_loop(e->base, EVLOOP_NONBLOCK);
    assert_null(e->rp->wait_head);
    assert_int_equal(kr_replica_stored(e->rp), 1);
}

static void test_snapshot(void **state)
{
    env *e = *state;
    push_register(e, 1, "shop-1", 1);
    push_publish(e, 2, 3, 10, "shop-1", 1, 0);
    push_group(e, 3, KR_CMD_GROUP_CREATE, 1);
    push_cursors(e, 4, 2);
    assert_int_equal(result_of(e, 4).err, KRAPPY_OK);
    kr_buf snap;
    snapshot_into(e, &snap);
    /* [4, [["orders", 3, [["shop-1", 1, 3, [[0, 0, 3, 0]]]], [["billing", 2]]]]] */
    kr_cbor_item a, idx, list, t, name, next, prods, groups, g, v;
    kr_cbor_iter it, li, ti, gi, vi;
    assert_int_equal(kr_cbor_read_exact(snap.data, snap.len, &a), 0);
    kr_cbor_iter_init(&it, &a);
    assert_int_equal(kr_cbor_iter_next(&it, &idx), 1);
    assert_int_equal(idx.u, 4);
    assert_int_equal(kr_cbor_iter_next(&it, &list), 1);
    assert_int_equal(list.u, 1);
    kr_cbor_iter_init(&li, &list);
    assert_int_equal(kr_cbor_iter_next(&li, &t), 1);
    kr_cbor_iter_init(&ti, &t);
    assert_int_equal(kr_cbor_iter_next(&ti, &name), 1);
    assert_memory_equal(name.str, "orders", 6);
    assert_int_equal(kr_cbor_iter_next(&ti, &next), 1);
    assert_int_equal(next.u, 3);
    assert_int_equal(kr_cbor_iter_next(&ti, &prods), 1);
    assert_int_equal(kr_cbor_iter_next(&ti, &groups), 1);
    assert_int_equal(groups.u, 1);
    kr_cbor_iter_init(&gi, &groups);
    assert_int_equal(kr_cbor_iter_next(&gi, &g), 1);
    kr_cbor_iter_init(&vi, &g);
    assert_int_equal(kr_cbor_iter_next(&vi, &v), 1);
    assert_memory_equal(v.str, "billing", 7);
    assert_int_equal(kr_cbor_iter_next(&vi, &v), 1);
    assert_int_equal(v.u, 2);
    /* A group the snapshot does not have was deleted before it (this node
     * missed that): it goes. */
    kr_str other = {(const uint8_t *)"other", 5};
    kr_buf_reset(&e->b);
    kr_cmd_put_group_at(&e->b, KR_CMD_GROUP_CREATE, &TOPIC, &other, 0);
    assert_int_equal(kr_replica_push(e->rp, 5, e->b.data, e->b.len), 0);
    assert_int_equal(result_of(e, 5).err, KRAPPY_OK);
    /* Restored where the store covers it: nothing to fetch, the commands
     * after it apply at once. */
    assert_int_equal(kr_replica_restore(e->rp, snap.data, snap.len), 0);
    push_publish(e, 6, 1, 11, "shop-1", 1, 3);
    kr_store_result r = result_of(e, 6);
    assert_int_equal(r.err, KRAPPY_OK);
    assert_int_equal(r.first, 3);
    assert_null(kr_store_group(topic(e), other.ptr, other.len));
    assert_int_equal(cursor_here(e), 2);
    kr_buf_free(&snap);
}

static void push_config(env *e, uint64_t index, const kr_str *topic, uint32_t mask, uint32_t reset,
                        uint64_t retention_ms)
{
    kr_topic_config set = {.mask = mask, .reset = reset};
    set.v[KR_TC_RETENTION_MS] = retention_ms;
    kr_buf_reset(&e->b);
    kr_cmd_put_topic_config(&e->b, topic, &set);
    assert_int_equal(kr_replica_push(e->rp, index, e->b.data, e->b.len), 0);
}

static void push_delete(env *e, uint64_t index)
{
    kr_buf_reset(&e->b);
    kr_cmd_put_topic(&e->b, KR_CMD_TOPIC_DELETE, &TOPIC);
    assert_int_equal(kr_replica_push(e->rp, index, e->b.data, e->b.len), 0);
}

#define RMS (1u << KR_TC_RETENTION_MS)

/* The log's topic commands: settings, a deletion, a PUBLISH after it (a
 * new topic), and a restart's replay that leaves the new topic alone. */
static void push_topic_log(env *e)
{
    push_create(e, 1);
    push_publish(e, 2, 3, 10, NULL, 0, 0);
    push_config(e, 3, &TOPIC, RMS, 0, 60000);
    push_delete(e, 4);
    push_delete(e, 5);
    push_publish(e, 6, 2, 11, NULL, 0, 0);
}

static void test_topics(void **state)
{
    env *e = *state;
    push_create(e, 1);
    push_publish(e, 2, 3, 10, NULL, 0, 0);
    push_config(e, 3, &TOPIC, RMS, 0, 60000);
    assert_int_equal(result_of(e, 3).err, KRAPPY_OK);
    assert_int_equal(topic(e)->own.mask, RMS);
    assert_int_equal(topic(e)->cfg.v[KR_TC_RETENTION_MS], 60000);
    push_delete(e, 4);
    assert_int_equal(result_of(e, 4).err, KRAPPY_OK);
    assert_null(kr_store_topic(e->s, TOPIC.ptr, TOPIC.len));
    push_delete(e, 5); /* gone already: every node answers alike */
    assert_int_equal(result_of(e, 5).err, KRAPPY_E_NO_SUCH_TOPIC);
    push_publish(e, 6, 2, 11, NULL, 0, 0); /* a new, empty topic, default settings */
    kr_store_result r = result_of(e, 6);
    assert_int_equal(r.err, KRAPPY_OK);
    assert_int_equal(r.first, 0);
    assert_int_equal(topic(e)->own.mask, 0);
    /* A restart replays all of it: the old topic's setting lands on the
     * new one, the deletion takes it, and the PUBLISH after it makes it
     * again - the same stream, without the old one's settings. */
    close_all(e);
    open_all(e);
    assert_int_equal(kr_replica_pos_index(topic(e)->raft_index), 6);
    push_topic_log(e);
    r = result_of(e, 6);
    assert_int_equal(r.err, KRAPPY_OK);
    assert_int_equal(r.first, 0);
    assert_int_equal(result_of(e, 4).err, KRAPPY_OK);
    assert_int_equal(kr_replica_skipped(e->rp), 1); /* the PUBLISH at 2 */
    assert_int_equal(topic(e)->next, 2);
    assert_int_equal(kr_replica_pos_index(topic(e)->raft_index), 6);
    assert_int_equal(topic(e)->own.mask, 0);
    assert_int_equal(topic(e)->segs[0]->max_ts, 11);
    /* A change after it applies, durably; a reset drops the setting. */
    push_config(e, 7, &TOPIC, RMS, 0, 5000);
    assert_int_equal(result_of(e, 7).err, KRAPPY_OK);
    close_all(e);
    open_all(e);
    assert_int_equal(topic(e)->cfg.v[KR_TC_RETENTION_MS], 5000);
    push_config(e, 8, &TOPIC, 0, RMS, 0);
    assert_int_equal(result_of(e, 8).err, KRAPPY_OK);
    assert_int_equal(topic(e)->own.mask, 0);
    /* A change of a topic that does not exist makes it. */
    kr_str fresh = {(const uint8_t *)"fresh", 5};
    push_config(e, 9, &fresh, RMS, 0, 7000);
    assert_int_equal(result_of(e, 9).err, KRAPPY_OK);
    kr_topic *t = kr_store_topic(e->s, fresh.ptr, fresh.len);
    assert_non_null(t);
    assert_int_equal(t->cfg.v[KR_TC_RETENTION_MS], 7000);
}

/* A snapshot carries each topic's settings; restoring it on a node that
 * holds a topic the snapshot lacks (deleted before it) drops that topic. */
static void test_snapshot_topics(void **state)
{
    env *e = *state;
    push_create(e, 1);
    push_config(e, 2, &TOPIC, RMS, 0, 5000);
    assert_int_equal(result_of(e, 2).err, KRAPPY_OK);
    kr_buf snap;
    snapshot_into(e, &snap);
    kr_str old = {(const uint8_t *)"old", 3};
    push_config(e, 3, &old, RMS, 0, 1000); /* as if the snapshot came later */
    push_config(e, 4, &TOPIC, 0, RMS, 0);  /* this node's settings differ */
    assert_int_equal(result_of(e, 4).err, KRAPPY_OK);
    assert_int_equal(topic(e)->own.mask, 0);
    assert_int_equal(kr_replica_restore(e->rp, snap.data, snap.len), 0);
    push_publish(e, 5, 1, 12, NULL, 0, 0);
    assert_int_equal(result_of(e, 5).err, KRAPPY_OK);
    assert_null(kr_store_topic(e->s, old.ptr, old.len));
    assert_int_equal(topic(e)->own.mask, RMS);
    assert_int_equal(topic(e)->cfg.v[KR_TC_RETENTION_MS], 5000);
    kr_buf_free(&snap);
    /* Durably: a restart finds it so. */
    close_all(e);
    open_all(e);
    assert_null(kr_store_topic(e->s, old.ptr, old.len));
    assert_int_equal(topic(e)->cfg.v[KR_TC_RETENTION_MS], 5000);
}

/* A BATCH's results, as kr_replica_wait_batch gives them. */
typedef struct batch_res {
    int calls;
    kr_store_result res, subs[8];
    size_t n;
} batch_res;

static void on_batch(void *arg, const kr_store_result *res, const kr_store_result *subs, size_t n)
{
    batch_res *br = arg;
    br->calls++;
    br->res = *res;
    br->n = n;
    assert_true(n <= 8);
    memcpy(br->subs, subs, n * sizeof *subs);
}

static batch_res batch_result_of(env *e, uint64_t index)
{
    batch_res br = {0};
    kr_replica_wait_batch(e->rp, index, on_batch, &br);
    kr_test_run_until(e->base, &br.calls, 1);
    return br;
}

/* One loop turn of a leader: a registration, a PUBLISH, its resend, a
 * seq gap, a malformed PUBLISH and a plain one, as one BATCH at index. */
static void push_mixed_batch(env *e, uint64_t index)
{
    kr_buf subs[6];
    for (size_t i = 0; i < 6; i++)
        kr_buf_init(&subs[i], 1 << 16);
    kr_str pid = {(const uint8_t *)"shop-1", 6}, junk = {(const uint8_t *)"\x01", 1};
    kr_cmd_put_producer_register(&subs[0], &TOPIC, &pid, 1);
    put_publish(&subs[1], 2, 10, "shop-1", 1, 0);
    put_publish(&subs[2], 2, 11, "shop-1", 1, 0);
    put_publish(&subs[3], 1, 12, "shop-1", 1, 7);
    kr_cmd_put_publish(&subs[4], &TOPIC, 13, NULL, 0, &junk);
    put_publish(&subs[5], 3, 14, NULL, 0, 0);
    kr_buf_reset(&e->b);
    kr_cmd_put_batch_begin(&e->b, 6);
    for (size_t i = 0; i < 6; i++) {
        kr_cmd_put_batch_sub(&e->b, subs[i].data, subs[i].len);
        kr_buf_free(&subs[i]);
    }
    assert_false(e->b.failed);
    assert_int_equal(kr_replica_push(e->rp, index, e->b.data, e->b.len), 0);
}

/* Each sub-command's result is what applying it alone in its place gives
 * (test_idempotent's, one entry each); a restart's replay holds them all. */
static void test_batch(void **state)
{
    env *e = *state;
    push_create(e, 1);
    push_mixed_batch(e, 2);
    push_publish(e, 3, 1, 15, NULL, 0, 0);
    batch_res br = batch_result_of(e, 2);
    assert_int_equal(br.res.err, KRAPPY_OK);
    assert_int_equal(br.n, 6);
    assert_int_equal(br.subs[0].err, KRAPPY_OK);
    assert_int_equal(br.subs[0].epoch, 1);
    assert_int_equal(br.subs[1].err, KRAPPY_OK);
    assert_false(br.subs[1].duplicate);
    assert_int_equal(br.subs[1].first, 0);
    assert_int_equal(br.subs[1].count, 2);
    assert_int_equal(br.subs[2].err, KRAPPY_OK);
    assert_true(br.subs[2].duplicate);
    assert_int_equal(br.subs[2].first, 0);
    assert_int_equal(br.subs[3].err, KRAPPY_E_OUT_OF_ORDER_SEQUENCE);
    assert_int_equal(br.subs[3].seq, 2);
    assert_int_not_equal(br.subs[4].err, KRAPPY_OK);
    assert_int_equal(br.subs[5].err, KRAPPY_OK);
    assert_int_equal(br.subs[5].first, 2);
    assert_int_equal(br.subs[5].count, 3);
    kr_store_result r = result_of(e, 3);
    assert_int_equal(r.first, 5);
    assert_int_equal(topic(e)->next, 6);
    /* Asked for as one result: the entry's. */
    assert_int_equal(result_of(e, 2).err, KRAPPY_OK);
    /* A restart replays the log: every PUBLISH of the batch is held. */
    close_all(e);
    open_all(e);
    assert_int_equal(topic(e)->raft_index, kr_replica_pos(3, 0));
    push_create(e, 1);
    push_mixed_batch(e, 2);
    push_publish(e, 3, 1, 15, NULL, 0, 0);
    push_publish(e, 4, 1, 16, NULL, 0, 0);
    r = result_of(e, 4);
    assert_int_equal(r.err, KRAPPY_OK);
    assert_int_equal(r.first, 6);
    br = batch_result_of(e, 2);
    assert_int_equal(br.subs[1].count, 2);
    assert_int_equal(br.subs[5].count, 3);
    assert_int_equal(topic(e)->next, 7);
}

/* A stream that holds part of a BATCH (a power cut kept its first
 * batches): the replay applies exactly the rest. */
static void test_batch_partly_held(void **state)
{
    env *e = *state;
    push_create(e, 1);
    kr_buf one, two;
    kr_buf_init(&one, 1 << 16);
    kr_buf_init(&two, 1 << 16);
    put_publish(&one, 2, 10, NULL, 0, 0);
    put_publish(&two, 1, 11, NULL, 0, 0);
    /* What the stream holds: the first sub-command of the BATCH at 2. */
    kr_buf_reset(&e->b);
    kr_cmd_put_batch_begin(&e->b, 1);
    kr_cmd_put_batch_sub(&e->b, one.data, one.len);
    assert_int_equal(kr_replica_push(e->rp, 2, e->b.data, e->b.len), 0);
    assert_int_equal(batch_result_of(e, 2).subs[0].count, 2);
    assert_int_equal(topic(e)->raft_index, kr_replica_pos(2, 1));
    close_all(e);
    open_all(e);
    /* The log's BATCH had two. */
    push_create(e, 1);
    kr_buf_reset(&e->b);
    kr_cmd_put_batch_begin(&e->b, 2);
    kr_cmd_put_batch_sub(&e->b, one.data, one.len);
    kr_cmd_put_batch_sub(&e->b, two.data, two.len);
    assert_int_equal(kr_replica_push(e->rp, 2, e->b.data, e->b.len), 0);
    batch_res br = batch_result_of(e, 2);
    assert_int_equal(br.n, 2);
    assert_int_equal(br.subs[1].err, KRAPPY_OK);
    assert_int_equal(br.subs[1].first, 2);
    assert_int_equal(kr_replica_skipped(e->rp), 1);
    assert_int_equal(topic(e)->next, 3);
    assert_int_equal(topic(e)->raft_index, kr_replica_pos(2, 2));
    kr_buf_free(&one);
    kr_buf_free(&two);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_apply_in_order, setup, teardown),
        cmocka_unit_test_setup_teardown(test_replay_skips_what_is_held, setup, teardown),
        cmocka_unit_test_setup_teardown(test_idempotent, setup, teardown),
        cmocka_unit_test_setup_teardown(test_snapshot, setup, teardown),
        cmocka_unit_test_setup_teardown(test_halted_snapshot_fails_at_once, setup, teardown),
        cmocka_unit_test_setup_teardown(test_halted_holds_no_pushes, setup, teardown),
        cmocka_unit_test_setup_teardown(test_groups, setup, teardown),
        cmocka_unit_test_setup_teardown(test_kafka_offsets, setup, teardown),
        cmocka_unit_test_setup_teardown(test_topics, setup, teardown),
        cmocka_unit_test_setup_teardown(test_snapshot_topics, setup, teardown),
        cmocka_unit_test_setup_teardown(test_batch, setup, teardown),
        cmocka_unit_test_setup_teardown(test_batch_partly_held, setup, teardown),
    };
    return cmocka_run_group_tests_name("test_cluster_replica", tests, NULL, NULL);
}
