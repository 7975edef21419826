/*
 * server/main.c - krappyd's entry point: settings, logging, data directory,
 * then the loop until SIGTERM/SIGINT.
 */
#include <errno.h>
#ifdef __GLIBC__
#include <malloc.h>
#endif
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <event2/event.h>
#include <event2/thread.h>

#include "server/admin.h"
#include "server/config.h"
#include "server/fdplan.h"
#include "server/server.h"
#include "store/store.h"
#include "util/clock.h"
#include "util/log.h"
#include "util/metrics.h"

/*
 * glibc malloc, set for a daemon whose large allocations come and go: the
 * sort arrays of each checkpoint (several MiB), RocksDB's read and build
 * buffers, large PUBLISH batches. By default glibc raises its mmap
 * threshold each time such a block is freed (up to 32 MiB), after which
 * they come from the heap, where freed pages stay with the process. A
 * fixed threshold of 1 MiB keeps them mapped, so they go back on free,
 * while the usual PUBLISH batch (~130 KiB for 1000 events) stays in the
 * heap (mapping each of those cost up to a third of the ingest rate).
 * Measured with 10M events over 1M keys: VmRSS 176 MiB after the load and
 * 58 MiB once the checkpoints are done, against 191 and 78 MiB without.
 *
 * The threshold is 1 MiB and 64 KiB rather than 1 MiB for one kind of
 * block: RocksDB's file writers grow their buffer to 1 MiB plus 4 KiB of
 * alignment - the table file the view thread writes every checkpoint, each
 * compaction's output - and at 1 MiB each of those was mapped, faulted in
 * page by page and unmapped again, every checkpoint. A munmap takes the
 * process's mmap lock for writing and flushes the TLB of every core the
 * process runs on, and the loop's requests waited on both. From the heap,
 * the next file's writer reuses the block. A threshold of 2 MiB did the
 * same but left every block up to 2 MiB in the heaps: VmRSS 283 MiB after
 * 10M events over 1M keys, against 255 to 262 MiB.
 *
 * Setting the mmap threshold turns glibc's dynamic thresholds off, which
 * also leaves the trim threshold at its 128 KiB default: any free that
 * leaves more than that at the heap's top gives it back, and the next
 * request faults it in again, page by page. The loop frees about a
 * megabyte that way per Kafka Produce (its frame's read buffers, the
 * copies kept until a sync), so the trim threshold is set too, to 8 MiB:
 * that much free memory at the top of an arena stays with the process,
 * room for several Produces in a row. Blocks over the mmap threshold are
 * mapped and go back on free whatever it is.
 *
 * Arenas: up to 16 (glibc's own limit on two cores, not eight per core on
 * a big machine), so that each of krappyd's threads (the loop, the storage
 * writer, the view, compaction, RocksDB's, a cluster's raft thread) keeps
 * one of its own. The loop allocates on every request and must not share
 * its arena's lock with a thread that allocates in bulk: with fewer arenas
 * than threads, glibc hands the extra threads the loop's, and the
 * compaction thread's RocksDB reads (a block allocated for each) held it
 * while the loop waited, hundreds of times a second.
 * MALLOC_MMAP_THRESHOLD_, MALLOC_TRIM_THRESHOLD_, MALLOC_ARENA_MAX or
 * GLIBC_TUNABLES in the environment win.
 */
#define KR_MALLOC_MMAP_THRESHOLD (1024 * 1024 + 64 * 1024)
#define KR_MALLOC_TRIM_THRESHOLD (8 * 1024 * 1024)
#define KR_MALLOC_ARENA_MAX      16

static void tune_malloc(void)
{
#ifdef __GLIBC__
    if (getenv("GLIBC_TUNABLES") != NULL)
        return;
    if (getenv("MALLOC_MMAP_THRESHOLD_") == NULL)
        mallopt(M_MMAP_THRESHOLD, KR_MALLOC_MMAP_THRESHOLD);
    if (getenv("MALLOC_TRIM_THRESHOLD_") == NULL)
        mallopt(M_TRIM_THRESHOLD, KR_MALLOC_TRIM_THRESHOLD);
    if (getenv("MALLOC_ARENA_MAX") == NULL)
        mallopt(M_ARENA_MAX, KR_MALLOC_ARENA_MAX);
#endif
}

/* Create the data directory (and its parents) when missing. */
static int make_data_dir(const char *path)
{
    char tmp[4096];
    if (snprintf(tmp, sizeof tmp, "%s", path) >= (int)sizeof tmp) {
        errno = ENAMETOOLONG;
        return -1;
    }
    for (char *p = tmp + 1; *p; p++) {
        if (*p != '/')
            continue;
        *p = '\0';
        if (mkdir(tmp, 0750) < 0 && errno != EEXIST)
            return -1;
        *p = '/';
    }
    if (mkdir(tmp, 0750) < 0 && errno != EEXIST)
        return -1;
    struct stat st;
    if (stat(tmp, &st) < 0)
        return -1;
    if (!S_ISDIR(st.st_mode)) {
        errno = ENOTDIR;
        return -1;
    }
    return 0;
}

/*
 * Recovery (opening RocksDB, replaying the stream tails) runs on a thread of
 * its own so that the loop, already serving the admin port, can answer
 * probes with 503 "recovering" meanwhile. The thread hands its outcome back
 * through `done`; the loop then takes the store and opens the data port.
 */
typedef struct opener {
    kr_server *srv;
    kr_store_opts so;
    pthread_t thread;
    bool running; /* the thread was started and not yet joined */
    bool failed;  /* recovery or listening failed: exit 1 */
    struct event *done;
    kr_store *store;
    int rc;
    uint64_t t0;
    char err[512];
} opener;

static void *open_store(void *arg)
{
    opener *o = arg;
    o->rc =
        kr_store_open(&o->so, o->srv->base, kr_metrics_global(), &o->store, o->err, sizeof o->err);
    event_active(o->done, EV_READ, 0);
    return NULL;
}

/* Join the opener thread (when running) and take what it made. */
static void open_finish(opener *o)
{
    if (!o->running)
        return;
    pthread_join(o->thread, NULL);
    o->running = false;
    if (o->rc < 0) {
        kr_log(KR_LOG_ERROR, "cannot open the data directory", KR_LOG_STR("data", o->so.data_dir),
               KR_LOG_STR("reason", o->err));
        o->failed = true;
        return;
    }
    kr_log(KR_LOG_INFO, "storage ready", KR_LOG_MS("recovery_ms", kr_mono_ns() - o->t0));
    o->srv->store = o->store;
}

static void on_opened(evutil_socket_t fd, short what, void *arg)
{
    opener *o = arg;
    (void)fd;
    (void)what;
    open_finish(o);
    if (o->failed) {
        event_base_loopbreak(o->srv->base);
        return;
    }
    if (o->srv->shutting_down)
        return; /* a signal came during recovery: the loop is already ending */
    /* Listen only once recovery is done; then join the cluster (or name the
     * cluster of one), which needs the bound address. */
    if (kr_server_listen(o->srv) < 0 || kr_server_cluster_start(o->srv) < 0) {
        o->failed = true;
        event_base_loopbreak(o->srv->base);
    }
}

int main(int argc, char **argv)
{
    kr_config cfg;
    char err[512];
    int status = 1;
    kr_server srv;
    kr_fd_plan plan;
    kr_store *store = NULL;
    kr_admin *admin = NULL;
    opener op;
    memset(&srv, 0, sizeof srv);
    memset(&op, 0, sizeof op);
    tune_malloc(); /* before any thread exists */

    switch (kr_config_parse(&cfg, argc, argv, isatty(STDERR_FILENO), err, sizeof err)) {
    case KR_CONFIG_HELP:
        kr_config_usage(stdout);
        kr_config_free(&cfg);
        return 0;
    case KR_CONFIG_VERSION:
        printf("krappyd %s (protocol %d, libevent %s)\n", KRAPPY_VERSION, KRAPPY_PROTOCOL_VERSION,
               event_get_version());
        kr_config_free(&cfg);
        return 0;
    case KR_CONFIG_ERROR:
        fprintf(stderr, "krappyd: %s\nTry 'krappyd --help' for the list of options.\n", err);
        kr_config_free(&cfg);
        return 2;
    case KR_CONFIG_RUN:
        break;
    }

    kr_log_setup(cfg.log_level, cfg.log_format);
    if (make_data_dir(cfg.data_dir) < 0) {
        kr_log(KR_LOG_ERROR, "cannot create the data directory", KR_LOG_STR("path", cfg.data_dir),
               KR_LOG_STR("reason", strerror(errno)));
        goto out;
    }
    kr_log(KR_LOG_INFO, "starting", KR_LOG_STR("version", KRAPPY_VERSION),
           KR_LOG_STR("data", cfg.data_dir));
    /* The storage writer thread wakes the loop with event_active. */
    if (evthread_use_pthreads() < 0) {
        kr_log(KR_LOG_ERROR, "libevent has no thread support");
        goto out;
    }
    /* Descriptors are shared out before anything opens one. */
    if (kr_fd_plan_make(&cfg, &plan, err, sizeof err) < 0) {
        kr_log(KR_LOG_ERROR, "cannot start", KR_LOG_STR("reason", err));
        goto out;
    }
    if (kr_server_setup(&srv, &cfg, kr_metrics_global()) < 0)
        goto out;
    srv.max_conns = plan.connections;
    /* The admin port first: its probes say "not ready" until the data port
     * listens. */
    if (strcmp(cfg.http, "off") != 0 &&
        (admin = kr_admin_start(&srv, cfg.http, cfg.http_token, plan.admin)) == NULL)
        goto out;
    op.srv = &srv;
    op.t0 = kr_mono_ns();
    op.so = (kr_store_opts){.data_dir = cfg.data_dir,
                            .segment_bytes = cfg.segment_bytes,
                            .retention_bytes = cfg.retention_bytes,
                            .retention_ms = cfg.retention_ms,
                            .checkpoint_ms = cfg.checkpoint_ms,
                            .overlay_bytes = cfg.overlay_bytes,
                            .max_frame = cfg.max_frame,
                            .max_events = cfg.max_events,
                            .max_publish_events = cfg.max_publish_events,
                            .max_wait_ms = cfg.max_wait_ms,
                            .block_cache_bytes = (size_t)cfg.block_cache_bytes,
                            .rocksdb_log_dir = cfg.rocksdb_log_dir,
                            .group_window = cfg.group_window,
                            .fsync_cursors = cfg.fsync_cursors,
                            .max_producers = cfg.max_producers,
                            .rebuild_view = cfg.rebuild_view,
                            .cleanup = cfg.cleanup,
                            .delete_retention_ms = cfg.delete_retention_ms,
                            .segment_ms = cfg.segment_ms,
                            .compact_rate = cfg.compact_rate,
                            .compact_idle = cfg.compact_idle,
                            .max_open_files = plan.segments,
                            .rocksdb_max_open_files = plan.rocksdb};
    op.done = event_new(srv.base, -1, 0, on_opened, &op);
    if (op.done == NULL) {
        kr_log(KR_LOG_ERROR, "cannot set up the recovery event");
        goto out;
    }
    int e = pthread_create(&op.thread, NULL, open_store, &op);
    if (e != 0) {
        kr_log(KR_LOG_ERROR, "cannot start the recovery thread", KR_LOG_STR("reason", strerror(e)));
        goto out;
    }
    op.running = true;
    if (kr_server_run(&srv) == 0 && !op.failed && !srv.failed)
        status = 0;
    if (op.running) {
        kr_log(KR_LOG_INFO, "waiting for recovery to finish before stopping");
        open_finish(&op);
        if (op.failed)
            status = 1;
    }
    store = op.store;
out:
    kr_cluster_stop(srv.cluster); /* after a hand-over, before the store closes */
    srv.cluster = NULL;
    kr_server_cluster_halt(&srv);
    kr_admin_free(admin);
    kr_store_close(store);        /* final checkpoint: a short replay next start */
    kr_server_cluster_free(&srv); /* the replica, once the store completed its work */
    if (op.done != NULL)
        event_free(op.done);
    kr_server_free(&srv);
    if (status == 0)
        kr_log(KR_LOG_INFO, "stopped");
    kr_metrics_free(kr_metrics_global());
    kr_config_free(&cfg);
    return status;
}
