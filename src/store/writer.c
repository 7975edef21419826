/*
 * store/writer.c - the storage writer thread: what has to wait on the disk
 * and must not stall the loop - fdatasync of stream segments (SYNC jobs),
 * topic creation, group cursors, producer registrations, deletions of
 * segments and of whole topics - and the view thread that writes
 * checkpoints into RocksDB.
 *
 * The loop writes the streams itself (append.h) and keeps everything a
 * failed sync would need to repair them; the writer only reports which
 * fdatasync failed. It keeps no state of its own per topic: a SYNC job lends
 * it the file descriptors to sync.
 */
#include "store/writer.h"

#include "store/checkpoint.h"
#include "store/overlay.h"
#include "store/store_int.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <event2/event.h>

#include "util/clock.h"
#include "util/io.h"
#include "util/log.h"

struct kr_writer {
    pthread_t thread;
    pthread_t vthread; /* the view thread: checkpoints into RocksDB */
    pthread_mutex_t mu;
    pthread_cond_t cv;
    pthread_cond_t vcv;
    struct kr_job_list queue;  /* submitted, not yet taken */
    struct kr_job_list vqueue; /* checkpoints for the view thread */
    struct kr_job_list done;   /* finished, not yet delivered */
    pthread_cond_t vidle;      /* the view thread finished a job */
    bool vstopping;
    bool vstarted;
    bool vbusy;       /* the view thread is writing a checkpoint */
    unsigned pending; /* submitted and not delivered (loop side) */
    unsigned held;    /* kr_writer_hold depth (loop side) */
    bool unsignaled;  /* jobs queued while held, the writer not woken (loop side) */
    bool stopping;
    bool started;
    struct event *done_ev;
    kr_view *view;
    /* The view thread's: what a checkpoint sorts in, kept from one to the
     * next (see view_wait). */
    kr_ov_sortmem sortmem;
    void (*on_done)(void *arg, struct kr_job_list *jobs);
    void *arg;
    kr_metric *m_fsyncs, *m_rounds, *m_jobs, *m_round_jobs, *m_failures, *m_checkpoints,
        *m_checkpoint_ns;
};

static int fsync_dir(int dirfd)
{
    return fsync(dirfd) == 0 || errno == EINVAL ? 0 : -1;
}

/* ---- CREATE ---- */

/* A topic's directory, opened for a moment (creating, deleting or syncing
 * files in it): topics hold no descriptor of their own. @return the
 * descriptor, or -1 with errno. */
static int open_dir(const char *dir)
{
    return open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
}

/* mkdir, and sync the parent so that the name survives a power cut.
 * @return 0, or -1 with errno. */
static int mkdir_durably(const char *path)
{
    char parent[PATH_MAX];
    const char *slash = strrchr(path, '/');
    if (mkdir(path, 0750) < 0 && errno != EEXIST)
        return -1;
    if (slash == NULL || (size_t)(slash - path) >= sizeof parent)
        return 0;
    memcpy(parent, path, (size_t)(slash - path));
    parent[slash - path] = '\0';
    int pfd = open_dir(parent);
    if (pfd < 0)
        return -1;
    int rc = fsync_dir(pfd);
    int e = errno;
    close(pfd);
    errno = e;
    return rc;
}

/*
 * Create segment 0 of a new topic durably (header written, file and
 * directory synced): a read-write file of the store's fdcache for the
 * loop's appends (its descriptor handed to the cache and pinned once), and
 * the loop's record of it, read-only, opened when read. On failure nothing
 * is left behind, so that a retry can create it again.
 * @return 0, or -1 with errno.
 */
static int create_first_segment(kr_job_create *c, int dirfd)
{
    char name[KR_SEG_NAME_BYTES];
    kr_seg_name(name, 0);
    int fd = openat(dirfd, name, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0640);
    if (fd < 0)
        return -1;
    uint8_t hdr[KR_SEG_HEADER_V2_BYTES];
    kr_seg_header_encode(hdr, 0);
    kr_segment *s = NULL;
    kr_fdfile *f = NULL;
    if (kr_pwrite_all(fd, hdr, sizeof hdr, 0) < 0 || fdatasync(fd) < 0 || fsync_dir(dirfd) < 0 ||
        (f = kr_fdfile_new(c->files, c->dir, name, O_RDWR)) == NULL ||
        (s = kr_segment_new(c->files, c->dir, 0, sizeof hdr)) == NULL) {
        int e = f == NULL || s == NULL ? ENOMEM : errno;
        kr_fdfile_free(f);
        close(fd);
        unlinkat(dirfd, name, 0);
        errno = e;
        return -1;
    }
    kr_fdfile_adopt(f, fd);
    s->verified = true; /* ours */
    c->wfile = f;
    c->wfd = fd;
    c->seg = s;
    return 0;
}

/* Create the topic's directory (and DATA/topics) durably, then its first
 * segment. */
static void run_create(kr_job *j)
{
    kr_job_create *c = &j->create;
    char topics[PATH_MAX];
    const char *slash = strrchr(c->dir, '/');
    if (slash != NULL && (size_t)(slash - c->dir) < sizeof topics) {
        memcpy(topics, c->dir, (size_t)(slash - c->dir));
        topics[slash - c->dir] = '\0';
        /* DATA/topics exists since the start (and its name was synced). */
        if ((mkdir(topics, 0750) < 0 && errno != EEXIST) || mkdir_durably(c->dir) < 0) {
            kr_job_fail(j, errno, "cannot create %s durably", c->dir);
            return;
        }
    }
    int dirfd = open_dir(c->dir);
    if (dirfd < 0 || create_first_segment(c, dirfd) < 0) {
        int e = errno;
        kr_job_fail(j, e, "cannot create the first segment in %s", c->dir);
        if (dirfd >= 0)
            close(dirfd);
        return;
    }
    close(dirfd);
}

/* ---- SYNC ---- */

/*
 * Record in a version 2 segment's header how far it is known synced. Written
 * after the fdatasync that made it true, so it never claims more than is
 * durable; the next fdatasync (or, for a closed segment, one of its own)
 * makes the record itself durable. A record that cannot be written only
 * makes a later start more lenient (a damaged tail taken for a torn one).
 */
static void write_sync_record(const kr_sync_seg *g)
{
    if (g->hdr_len != KR_SEG_HEADER_V2_BYTES)
        return;
    uint8_t rec[KR_SEG_SYNC_BYTES];
    kr_seg_sync_encode(rec, g->bytes, g->next);
    if (kr_pwrite_all(g->fd, rec, sizeof rec, KR_SEG_SYNC_AT) < 0)
        kr_log(KR_LOG_WARN, "cannot record how far a segment is synced",
               KR_LOG_U64("segment", g->base), KR_LOG_STR("reason", strerror(errno)));
}

/* A closed segment is synced in full: its record too, then its index hint
 * is left behind for the next start. */
static int sync_final(kr_writer *wr, kr_sync_seg *g, const char *dir)
{
    write_sync_record(g);
    kr_counter_add(wr->m_fsyncs, 1);
    if (fdatasync(g->fd) < 0)
        return -1;
    int dirfd = open_dir(dir);
    if (dirfd < 0 || kr_index_write(dirfd, g->base, &g->im, g->bytes, &g->idx) < 0) {
        char name[KR_INDEX_NAME_BYTES];
        kr_index_file_name(name, g->base);
        kr_log(KR_LOG_WARN,
               "cannot leave the index of a closed segment behind; the next start "
               "scans the segment instead",
               KR_LOG_STR("file", name), KR_LOG_STR("reason", strerror(errno)));
    }
    if (dirfd >= 0)
        close(dirfd);
    return 0;
}

/*
 * Sync the segments in order, stopping at the first failure: a later segment
 * never counts as durable while an earlier one is not (the loop reads the
 * outcome per segment; untried ones carry ECANCELED).
 */
static void run_sync(kr_writer *wr, kr_job *j)
{
    kr_job_sync *sj = &j->sync;
    int failed = 0;
    if (sj->sync_dir) {
        int dirfd = open_dir(sj->dir);
        if (dirfd < 0 || fsync_dir(dirfd) < 0) {
            sj->dir_err = failed = errno;
            kr_counter_add(wr->m_failures, 1);
        }
        if (dirfd >= 0)
            close(dirfd);
    }
    for (size_t i = 0; i < sj->n; i++) {
        kr_sync_seg *g = &sj->segs[i];
        if (failed) {
            g->err = ECANCELED;
            continue;
        }
        if (g->fd < 0)
            continue; /* nothing written since its last sync (append.c) */
        kr_counter_add(wr->m_fsyncs, 1);
        if (fdatasync(g->fd) < 0 || (g->final && sync_final(wr, g, sj->dir) < 0)) {
            g->err = failed = errno ? errno : EIO;
            kr_counter_add(wr->m_failures, 1);
            continue;
        }
        if (!g->final)
            write_sync_record(g);
    }
}

/* ---- DELETE ---- */

static void run_delete(kr_job *j)
{
    for (size_t i = 0; i < j->del.n; i++)
        if (unlink(j->del.paths[i]) < 0 && errno != ENOENT)
            kr_log(KR_LOG_WARN, "cannot delete a retired segment",
                   KR_LOG_STR("path", j->del.paths[i]), KR_LOG_STR("reason", strerror(errno)));
    if (j->del.dir == NULL)
        return;
    int dirfd = open_dir(j->del.dir);
    if (dirfd < 0 || fsync_dir(dirfd) < 0)
        kr_log(KR_LOG_WARN,
               "cannot sync a topic directory after deleting retired segments; a "
               "power cut may bring them back (retention deletes them again)",
               KR_LOG_STR("dir", j->del.dir), KR_LOG_STR("reason", strerror(errno)));
    if (dirfd >= 0)
        close(dirfd);
}

/* ---- CHECKPOINT (the view thread) ---- */

/* Sort memory over this is not kept past its checkpoint (a burst of keys
 * does not stay in memory); below it, it is kept until the view thread has
 * had no checkpoint for KR_VIEW_MEM_IDLE_S. 4 MiB: 131,072 keys, checkpoints
 * of 100k events/s over 100,000 keys; a batched ingest over a million keys
 * (the memory ceiling's load) sorts more and keeps none. */
#define KR_VIEW_MEM_KEEP   (4u << 20)
#define KR_VIEW_MEM_IDLE_S 30

/* A checkpoint's RocksDB half; sorting in mem (NULL: memory of its own). */
static void run_checkpoint(kr_writer *wr, kr_job *j, kr_ov_sortmem *mem)
{
    /* Overlays the loop is done with go here, off the loop thread: freeing
     * a large one is many munmaps. */
    for (size_t i = 0; i < j->checkpoint.n_dispose; i++)
        kr_overlay_free(j->checkpoint.dispose[i]);
    j->checkpoint.n_dispose = 0;
    uint64_t t0 = kr_mono_ns();
    char err[256];
    int rc = kr_checkpoint_write(wr->view, j->checkpoint.ck, j->checkpoint.n, mem, err, sizeof err);
    if (rc < 0) {
        kr_counter_add(wr->m_failures, 1);
        kr_job_fail(j, 0, "%s", err);
        j->checkpoint.reopen = rc == -2; /* the loop reopens the view */
        return;
    }
    kr_counter_add(wr->m_checkpoints, 1);
    kr_histogram_observe_ns(wr->m_checkpoint_ns, kr_mono_ns() - t0);
}

/* ---- CURSOR ---- */

/*
 * Every cursor of the round in one RocksDB write with its WAL on: durable
 * against kill -9 when it returns, and against a power cut when a job asked
 * for sync (--fsync-cursors). Many ACKs share one write, as appends share
 * one fdatasync.
 */
static void run_cursors(kr_writer *wr, kr_job *from, kr_job *to)
{
    kr_view_batch *b = NULL;
    bool sync = false;
    kr_job *j;
    for (j = from; j != to; j = TAILQ_NEXT(j, link)) {
        if (j->kind != KR_JOB_CURSOR)
            continue;
        if (b == NULL && (b = kr_view_batch_new()) == NULL) {
            kr_job_fail(j, 0, "out of memory writing a group cursor");
            continue;
        }
        const kr_job_cursor *c = &j->cursor;
        if (c->koffset != NULL)
            kr_view_batch_koffset(b, j->t->name, j->t->name_len, c->koffset, c->group_len,
                                  c->koffset + c->group_len, c->koffset_len);
        else if (c->drop) /* GROUP_DELETE: after any earlier cursor of the group in the batch */
            kr_view_batch_cursor_delete(b, j->t->name, j->t->name_len, (const uint8_t *)c->group,
                                        c->group_len);
        else
            kr_view_batch_cursor(b, j->t->name, j->t->name_len, (const uint8_t *)c->group,
                                 c->group_len, c->cursor, c->origin);
        sync = sync || c->sync;
    }
    if (b == NULL)
        return;
    char err[256];
    if (kr_view_write_logged(wr->view, b, sync, err, sizeof err) < 0) {
        kr_counter_add(wr->m_failures, 1);
        kr_log(KR_LOG_ERROR, "writing group cursors failed; their ACKs get STORAGE",
               KR_LOG_STR("reason", err));
        for (j = from; j != to; j = TAILQ_NEXT(j, link))
            if (j->kind == KR_JOB_CURSOR && j->err == KRAPPY_OK)
                kr_job_fail(j, 0, "%s", err);
    }
    kr_view_batch_free(b);
}

/* A batch of view records built by the loop (producer registrations):
 * WAL on and synced, since a batch header may name the producer as soon as
 * the registration is answered. */
static void run_logged(kr_writer *wr, kr_job *j)
{
    char err[256];
    if (kr_view_write_logged(wr->view, j->logged.batch, true, err, sizeof err) < 0) {
        kr_counter_add(wr->m_failures, 1);
        kr_job_fail(j, 0, "%s", err);
    }
}

/*
 * Before a topic is dropped, every checkpoint queued before the drop must
 * be in RocksDB, or its RocksDB half - run later on the view thread - would
 * write back the keys and marker of the dropped topic. Wait for the view
 * thread to finish what it has, then write the checkpoints of this round
 * (not yet passed on) here.
 */
static void view_catch_up(kr_writer *wr, struct kr_job_list *round, kr_job *upto)
{
    pthread_mutex_lock(&wr->mu);
    while (!TAILQ_EMPTY(&wr->vqueue) || wr->vbusy)
        pthread_cond_wait(&wr->vidle, &wr->mu);
    pthread_mutex_unlock(&wr->mu);
    for (kr_job *j = TAILQ_FIRST(round); j != upto; j = TAILQ_NEXT(j, link)) {
        if (j->kind == KR_JOB_CHECKPOINT && j->checkpoint.deferred) {
            j->checkpoint.deferred = false;
            run_checkpoint(wr, j, NULL); /* the view thread's memory is its own */
        }
    }
}

/* ---- the threads ---- */

/* Run one round: everything taken from the queue, in order. */
static void run_round(kr_writer *wr, struct kr_job_list *round)
{
    kr_job *cursors_from = TAILQ_FIRST(round); /* cursor jobs from here on are still to write */
    kr_job *j;
    TAILQ_FOREACH(j, round, link)
    {
        switch (j->kind) {
        case KR_JOB_CREATE:
            run_create(j);
            break;
        case KR_JOB_SYNC:
            run_sync(wr, j);
            break;
        case KR_JOB_CHECKPOINT:
            j->checkpoint.deferred = true; /* to the view thread */
            break;
        case KR_JOB_DELETE:
            run_delete(j);
            break;
        case KR_JOB_LOGGED:
            run_logged(wr, j);
            break;
        case KR_JOB_TOPIC_DROP:
            /* Everything before it in RocksDB first: cursors, checkpoints. */
            run_cursors(wr, cursors_from, j);
            cursors_from = TAILQ_NEXT(j, link);
            view_catch_up(wr, round, j);
            kr_topic_drop_run(wr->view, j);
            break;
        case KR_JOB_CURSOR: /* below, all together */
            break;
        }
    }
    run_cursors(wr, cursors_from, NULL);
}

static void *writer_main(void *arg)
{
    kr_writer *wr = arg;
    struct kr_job_list round;
    for (;;) {
        pthread_mutex_lock(&wr->mu);
        while (TAILQ_EMPTY(&wr->queue) && !wr->stopping)
            pthread_cond_wait(&wr->cv, &wr->mu);
        if (TAILQ_EMPTY(&wr->queue) && wr->stopping) {
            pthread_mutex_unlock(&wr->mu);
            break;
        }
        TAILQ_INIT(&round);
        TAILQ_CONCAT(&round, &wr->queue, link);
        pthread_mutex_unlock(&wr->mu);

        unsigned n = 0;
        kr_job *j;
        TAILQ_FOREACH(j, &round, link)
        n++;
        kr_counter_add(wr->m_rounds, 1);
        kr_counter_add(wr->m_jobs, n);
        kr_size_histogram_observe(wr->m_round_jobs, n);
        run_round(wr, &round);

        pthread_mutex_lock(&wr->mu);
        kr_job *next;
        for (j = TAILQ_FIRST(&round); j != NULL; j = next) {
            next = TAILQ_NEXT(j, link);
            if (j->kind == KR_JOB_CHECKPOINT && j->checkpoint.deferred) {
                TAILQ_REMOVE(&round, j, link);
                TAILQ_INSERT_TAIL(&wr->vqueue, j, link);
                pthread_cond_signal(&wr->vcv);
            }
        }
        bool any = !TAILQ_EMPTY(&round);
        TAILQ_CONCAT(&wr->done, &round, link);
        pthread_mutex_unlock(&wr->mu);
        if (any)
            event_active(wr->done_ev, EV_READ, 0);
    }
    return NULL;
}

/*
 * Wait for a checkpoint, with wr->mu held. The memory checkpoints sort in
 * stays from one to the next - mapping, faulting in and unmapping megabytes
 * per checkpoint took the mmap lock for writing and flushed the TLBs of
 * every core, while the loop was serving requests - and goes back once
 * none came for KR_VIEW_MEM_IDLE_S (freed without the lock: the loop takes
 * it to submit).
 */
static void view_wait(kr_writer *wr)
{
    while (TAILQ_EMPTY(&wr->vqueue) && !wr->vstopping) {
        if (wr->sortmem.mem == NULL) {
            pthread_cond_wait(&wr->vcv, &wr->mu);
            continue;
        }
        if (kr_cond_wait_ms(&wr->vcv, &wr->mu, KR_VIEW_MEM_IDLE_S * 1000u) == ETIMEDOUT &&
            TAILQ_EMPTY(&wr->vqueue)) {
            pthread_mutex_unlock(&wr->mu);
            kr_ov_sortmem_release(&wr->sortmem);
            pthread_mutex_lock(&wr->mu);
        }
    }
}

static void *view_main(void *arg)
{
    kr_writer *wr = arg;
    for (;;) {
        pthread_mutex_lock(&wr->mu);
        view_wait(wr);
        kr_job *j = TAILQ_FIRST(&wr->vqueue);
        if (j == NULL) {
            pthread_mutex_unlock(&wr->mu);
            break;
        }
        TAILQ_REMOVE(&wr->vqueue, j, link);
        wr->vbusy = true;
        pthread_mutex_unlock(&wr->mu);
        j->checkpoint.deferred = false;
        run_checkpoint(wr, j, &wr->sortmem);
        pthread_mutex_lock(&wr->mu);
        TAILQ_INSERT_TAIL(&wr->done, j, link);
        wr->vbusy = false;
        pthread_cond_broadcast(&wr->vidle);
        pthread_mutex_unlock(&wr->mu);
        event_active(wr->done_ev, EV_READ, 0);
        if (kr_ov_sortmem_bytes(&wr->sortmem) > KR_VIEW_MEM_KEEP)
            kr_ov_sortmem_release(&wr->sortmem);
    }
    kr_ov_sortmem_release(&wr->sortmem);
    return NULL;
}

/* On the loop: deliver what the writer finished. */
static void on_done(evutil_socket_t fd, short what, void *arg)
{
    kr_writer *wr = arg;
    (void)fd;
    (void)what;
    struct kr_job_list jobs;
    TAILQ_INIT(&jobs);
    pthread_mutex_lock(&wr->mu);
    TAILQ_CONCAT(&jobs, &wr->done, link);
    pthread_mutex_unlock(&wr->mu);
    kr_job *j;
    TAILQ_FOREACH(j, &jobs, link)
    wr->pending--;
    if (!TAILQ_EMPTY(&jobs))
        wr->on_done(wr->arg, &jobs);
}

int kr_writer_start(kr_writer **out, struct event_base *base, kr_view *view, kr_metrics *m,
                    void (*done)(void *arg, struct kr_job_list *jobs), void *arg)
{
    kr_writer *wr = calloc(1, sizeof *wr);
    if (wr == NULL)
        return -1;
    /* The view thread's idle clock (view_wait) is monotonic. */
    int e = kr_cond_init_monotonic(&wr->vcv);
    if (e != 0) {
        free(wr);
        errno = e;
        return -1;
    }
    pthread_mutex_init(&wr->mu, NULL);
    pthread_cond_init(&wr->cv, NULL);
    pthread_cond_init(&wr->vidle, NULL);
    TAILQ_INIT(&wr->queue);
    TAILQ_INIT(&wr->vqueue);
    TAILQ_INIT(&wr->done);
    wr->view = view;
    wr->on_done = done;
    wr->arg = arg;
    wr->m_fsyncs =
        kr_counter(m, "krappy_stream_fsyncs_total", NULL, "fdatasync calls on stream segments.");
    wr->m_rounds = kr_counter(m, "krappy_writer_rounds_total", NULL,
                              "Group-commit rounds of the storage writer.");
    wr->m_jobs = kr_counter(m, "krappy_writer_jobs_total", NULL,
                            "Jobs run by the storage writer (jobs / rounds = group size).");
    wr->m_round_jobs = kr_size_histogram(m, "krappy_writer_round_jobs", NULL,
                                         "Jobs per group-commit round of the storage writer "
                                         "(the group size).");
    wr->m_failures = kr_counter(m, "krappy_storage_failures_total", NULL,
                                "Failed stream writes, syncs and view writes.");
    wr->m_checkpoints = kr_counter(m, "krappy_checkpoints_total", NULL,
                                   "Checkpoints of the latest-value view into RocksDB.");
    wr->m_checkpoint_ns = kr_histogram(m, "krappy_checkpoint_duration_seconds", NULL,
                                       "Time to write one checkpoint into RocksDB.");
    wr->done_ev = event_new(base, -1, EV_READ, on_done, wr);
    if (wr->done_ev == NULL || pthread_create(&wr->vthread, NULL, view_main, wr) != 0) {
        if (wr->done_ev)
            event_free(wr->done_ev);
        free(wr);
        return -1;
    }
    wr->vstarted = true;
    pthread_setname_np(wr->vthread, "kr-view");
    if (pthread_create(&wr->thread, NULL, writer_main, wr) != 0) {
        kr_writer_stop(wr);
        return -1;
    }
    pthread_setname_np(wr->thread, "kr-writer");
    wr->started = true;
    *out = wr;
    return 0;
}

void kr_writer_submit(kr_writer *wr, kr_job *j)
{
    j->err = KRAPPY_OK;
    free(j->msg);
    j->msg = NULL;
    pthread_mutex_lock(&wr->mu);
    TAILQ_INSERT_TAIL(&wr->queue, j, link);
    wr->pending++;
    if (wr->held > 0)
        wr->unsignaled = true;
    else
        pthread_cond_signal(&wr->cv);
    pthread_mutex_unlock(&wr->mu);
}

void kr_writer_hold(kr_writer *wr)
{
    if (wr != NULL)
        wr->held++;
}

void kr_writer_release(kr_writer *wr)
{
    if (wr == NULL || wr->held == 0 || --wr->held > 0 || !wr->unsignaled)
        return;
    wr->unsignaled = false;
    pthread_mutex_lock(&wr->mu);
    pthread_cond_signal(&wr->cv);
    pthread_mutex_unlock(&wr->mu);
}

unsigned kr_writer_pending(kr_writer *wr)
{
    return wr ? wr->pending : 0;
}

void kr_writer_stop(kr_writer *wr)
{
    if (wr == NULL)
        return;
    pthread_mutex_lock(&wr->mu);
    wr->stopping = true;
    pthread_cond_signal(&wr->cv);
    pthread_mutex_unlock(&wr->mu);
    if (wr->started)
        pthread_join(wr->thread, NULL);
    /* The writer may have passed checkpoints on: let them finish. */
    pthread_mutex_lock(&wr->mu);
    wr->vstopping = true;
    pthread_cond_signal(&wr->vcv);
    pthread_mutex_unlock(&wr->mu);
    if (wr->vstarted)
        pthread_join(wr->vthread, NULL);
    /* Deliver the last round synchronously. */
    on_done(-1, 0, wr);
    event_free(wr->done_ev);
    pthread_mutex_destroy(&wr->mu);
    pthread_cond_destroy(&wr->cv);
    pthread_cond_destroy(&wr->vcv);
    pthread_cond_destroy(&wr->vidle);
    free(wr);
}
