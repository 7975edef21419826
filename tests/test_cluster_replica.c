/*
 * tests/test_cluster_replica.c - the store's side of the replicated log
 * (cluster/replica.h) on a real store, without raft: commands pushed as the
 * raft thread pushes them, applied in order on the loop, their results by
 * index; a restart replaying the log skips what the streams hold; an
 * idempotent registration replayed is skipped and a resent PUBLISH is a
 * duplicate; a snapshot carries each topic's next and its producers, and
 * restoring one the store already covers fetches nothing.
 */
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "cluster/cmd.h"
#include "cluster/replica.h"
#include "proto/cbor.h"
#include "store_env.h"

typedef struct env {
    struct event_base *base;
    kr_metrics *metrics;
    char dir[128];
    kr_store *s;
    kr_replica *rp;
    kr_buf b;
} env;

static void no_nodes(void *arg, char *buf, size_t len)
{
    (void)arg;
    snprintf(buf, len, "127.0.0.1:1");
}

static void open_all(env *e)
{
    kr_store_opts o = {.data_dir = e->dir,
                       .segment_bytes = 1 << 20,
                       .checkpoint_ms = 100,
                       .overlay_bytes = 8 << 20,
                       .max_frame = 1 << 20,
                       .max_events = 1000,
                       .max_publish_events = 1000,
                       .max_wait_ms = 1000,
                       .block_cache_bytes = 1 << 20,
                       .group_window = 1000};
    e->s = kr_test_store_open(&o, e->base, e->metrics);
    e->rp = kr_replica_new(
        &(kr_replica_opts){.store = e->s, .base = e->base, .nodes = no_nodes, .nodes_arg = e});
    assert_non_null(e->rp);
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
 * plain) with seq. */
static void push_publish(env *e, uint64_t index, size_t n, uint64_t ts, const char *id,
                         uint32_t epoch, uint64_t seq)
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
    kr_buf_reset(&e->b);
    kr_cmd_put_publish(&e->b, &TOPIC, ts, id ? &pid : NULL, epoch, &body);
    assert_int_equal(kr_replica_push(e->rp, index, e->b.data, e->b.len), 0);
    kr_buf_free(&payload);
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
    assert_int_equal(t->raft_index, 3);
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
    assert_int_equal(topic(e)->raft_index, 3);
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

/* The raft thread's side of a snapshot, on a thread of its own. */
typedef struct snap_call {
    kr_replica *rp;
    kr_buf out;
    int rc;
    int finished;
} snap_call;

static void *take_snapshot(void *arg)
{
    snap_call *sc = arg;
    sc->rc = kr_replica_snapshot(sc->rp, 5000, &sc->out);
    __atomic_store_n(&sc->finished, 1, __ATOMIC_RELEASE);
    return NULL;
}

static void test_snapshot(void **state)
{
    env *e = *state;
    push_register(e, 1, "shop-1", 1);
    push_publish(e, 2, 3, 10, "shop-1", 1, 0);
    assert_int_equal(result_of(e, 2).err, KRAPPY_OK);
    snap_call sc = {.rp = e->rp};
    kr_buf_init(&sc.out, 1 << 20);
    pthread_t th;
    assert_int_equal(pthread_create(&th, NULL, take_snapshot, &sc), 0);
    for (int i = 0; i < 100000 && !__atomic_load_n(&sc.finished, __ATOMIC_ACQUIRE); i++)
        event_base_loop(e->base, EVLOOP_NONBLOCK);
    pthread_join(th, NULL);
    assert_int_equal(sc.rc, 0);
    /* [2, [["orders", 3, [["shop-1", 1, 3, [[0, 0, 3, 0]]]]]]] */
    kr_cbor_item a, idx, list, t, name, next;
    kr_cbor_iter it, li, ti;
    assert_int_equal(kr_cbor_read_exact(sc.out.data, sc.out.len, &a), 0);
    kr_cbor_iter_init(&it, &a);
    assert_int_equal(kr_cbor_iter_next(&it, &idx), 1);
    assert_int_equal(idx.u, 2);
    assert_int_equal(kr_cbor_iter_next(&it, &list), 1);
    assert_int_equal(list.u, 1);
    kr_cbor_iter_init(&li, &list);
    assert_int_equal(kr_cbor_iter_next(&li, &t), 1);
    kr_cbor_iter_init(&ti, &t);
    assert_int_equal(kr_cbor_iter_next(&ti, &name), 1);
    assert_memory_equal(name.str, "orders", 6);
    assert_int_equal(kr_cbor_iter_next(&ti, &next), 1);
    assert_int_equal(next.u, 3);
    /* Restored where the store covers it: nothing to fetch, the commands
     * after it apply at once. */
    assert_int_equal(kr_replica_restore(e->rp, sc.out.data, sc.out.len), 0);
    push_publish(e, 3, 1, 11, "shop-1", 1, 3);
    kr_store_result r = result_of(e, 3);
    assert_int_equal(r.err, KRAPPY_OK);
    assert_int_equal(r.first, 3);
    kr_buf_free(&sc.out);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_apply_in_order, setup, teardown),
        cmocka_unit_test_setup_teardown(test_replay_skips_what_is_held, setup, teardown),
        cmocka_unit_test_setup_teardown(test_idempotent, setup, teardown),
        cmocka_unit_test_setup_teardown(test_snapshot, setup, teardown),
    };
    return cmocka_run_group_tests_name("test_cluster_replica", tests, NULL, NULL);
}
