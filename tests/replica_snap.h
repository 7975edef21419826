/*
 * tests/replica_snap.h - kr_replica_snapshot called as the raft thread
 * calls it (on a thread of its own) while the test's loop runs, since the
 * snapshot waits for the loop to have stored and synced what it covers.
 */
#ifndef KR_TEST_REPLICA_SNAP_H
#define KR_TEST_REPLICA_SNAP_H

#include <pthread.h>

#include <event2/event.h>

#include "cluster/replica.h"
#include "util/buf.h"

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
 * running base with `loop_flags` (EVLOOP_NONBLOCK or EVLOOP_ONCE) until it
 * is taken. @return kr_replica_snapshot's result, or -1 when the thread
 * could not start.
 */
static inline int kr_test_replica_snapshot(kr_replica *rp, struct event_base *base, int loop_flags,
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
        event_base_loop(base, loop_flags);
    pthread_join(th, NULL);
    *out = sc.out;
    return sc.rc;
}

#endif
