/*
 * tests/replica_env.h - a store and its replica (cluster/replica.h) in a
 * test's directory, and kr_replica_snapshot called as the raft thread calls
 * it (on a thread of its own) while the test's loop runs, since the
 * snapshot waits for the loop to have stored and synced what it covers.
 * Include after store_env.h.
 */
#ifndef KR_TEST_REPLICA_ENV_H
#define KR_TEST_REPLICA_ENV_H

#include <pthread.h>
#include <stdio.h>

#include <event2/event.h>

#include "cluster/replica.h"
#include "util/buf.h"

/* No leader to catch up from: the tests never need one. */
static void kr_test_no_nodes(void *arg, char *buf, size_t len)
{
    (void)arg;
    snprintf(buf, len, "127.0.0.1:1");
}

/* Open the store in dir (checkpoints every checkpoint_ms) into *s, and a
 * replica over it whose catch-ups look for the leader among `nodes`.
 * @return the replica (asserted). */
static inline kr_replica *kr_test_replica_open_nodes(const char *dir, uint64_t checkpoint_ms,
                                                     struct event_base *base, kr_metrics *metrics,
                                                     kr_replica_nodes_fn nodes, void *nodes_arg,
                                                     kr_store **s)
{
    kr_store_opts o = {.data_dir = dir,
                       .segment_bytes = 1 << 20,
                       .checkpoint_ms = checkpoint_ms,
                       .overlay_bytes = 8 << 20,
                       .max_frame = 1 << 20,
                       .max_events = 1000,
                       .max_publish_events = 1000,
                       .max_wait_ms = 1000,
                       .block_cache_bytes = 1 << 20,
                       .group_window = 1000};
    *s = kr_test_store_open(&o, base, metrics);
    kr_replica *rp = kr_replica_new(
        &(kr_replica_opts){.store = *s, .base = base, .nodes = nodes, .nodes_arg = nodes_arg});
    assert_non_null(rp);
    return rp;
}

/* kr_test_replica_open_nodes with no leader to catch up from. */
static inline kr_replica *kr_test_replica_open(const char *dir, uint64_t checkpoint_ms,
                                               struct event_base *base, kr_metrics *metrics,
                                               kr_store **s)
{
    return kr_test_replica_open_nodes(dir, checkpoint_ms, base, metrics, kr_test_no_nodes, NULL, s);
}

typedef struct kr_test_snap_call {
    kr_replica *rp;
    kr_buf out;
    int rc;
    int finished;
} kr_test_snap_call;

static void *kr_test_snap_thread(void *arg)
{
    kr_test_snap_call *sc = arg;
    sc->rc = kr_replica_snapshot(sc->rp, 5000, &sc->out);
    __atomic_store_n(&sc->finished, 1, __ATOMIC_RELEASE);
    return NULL;
}

/*
 * Take rp's snapshot into *out (initialised here; the caller frees it),
 * calling run(arg) - which runs the loops the snapshot waits for - until
 * it is taken. @return kr_replica_snapshot's result, or -1 when the thread
 * could not start.
 */
static inline int kr_test_replica_snapshot_run(kr_replica *rp, void (*run)(void *arg), void *arg,
                                               kr_buf *out)
{
    kr_test_snap_call sc = {.rp = rp};
    kr_buf_init(&sc.out, 1 << 20);
    pthread_t th;
    if (pthread_create(&th, NULL, kr_test_snap_thread, &sc) != 0) {
        kr_buf_free(&sc.out);
        return -1;
    }
    for (int i = 0; i < 100000 && !__atomic_load_n(&sc.finished, __ATOMIC_ACQUIRE); i++)
        run(arg);
    pthread_join(th, NULL);
    *out = sc.out;
    return sc.rc;
}

typedef struct kr_test_loop_run {
    struct event_base *base;
    int flags;
} kr_test_loop_run;

static void kr_test_loop_once(void *arg)
{
    kr_test_loop_run *lr = arg;
    event_base_loop(lr->base, lr->flags);
}

/* kr_test_replica_snapshot_run running base with `loop_flags`
 * (EVLOOP_NONBLOCK or EVLOOP_ONCE). */
static inline int kr_test_replica_snapshot(kr_replica *rp, struct event_base *base, int loop_flags,
                                           kr_buf *out)
{
    kr_test_loop_run lr = {base, loop_flags};
    return kr_test_replica_snapshot_run(rp, kr_test_loop_once, &lr, out);
}

#endif
