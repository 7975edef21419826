/*
 * store/store.c - the store's facade: open and close, writer completions,
 * checkpoints and retention. The topic table lives in topic_table.c, the
 * PUBLISH path in publish.c, recovery at start in recovery.c, reads in
 * store_read.c, consumer groups in store_group.c.
 */
#include "store/compact.h"
#include "store/store_int.h"
#include "store/store_producers.h"
#include "store/topic_config.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <unistd.h>

#include "util/clock.h"
#include "util/log.h"

char *kr_store_path(const char *a, const char *b)
{
    size_t n = strlen(a) + strlen(b) + 2;
    char *p = malloc(n);
    if (p != NULL)
        snprintf(p, n, "%s/%s", a, b);
    return p;
}

/* ---- writer completions ---- */

/* Memory of every topic's active overlay, recounted where overlays are
 * swapped or merged (kr_store_append_done adds its own changes as they happen). */
void kr_store_recount_active(kr_store *s)
{
    size_t bytes = 0;
    for (size_t i = 0; i < s->n_topics; i++)
        bytes += kr_overlay_bytes(s->topics[i]->active);
    s->active_bytes = bytes;
}

static void finish_create(kr_store *s, kr_job *j)
{
    kr_topic *t = j->t;
    kr_job_create *c = &j->create;
    kr_store_result res = {.err = j->err};
    if (j->err != KRAPPY_OK) {
        t->failed = true;
        snprintf(res.msg, sizeof res.msg, "%s", kr_job_msg(j));
        kr_log(KR_LOG_ERROR, "cannot create topic", KR_LOG_STR("topic", t->name),
               KR_LOG_STR("reason", kr_job_msg(j)));
    } else if (kr_topic_reserve_segment(t) < 0 ||
               kr_stream_attach(t->stream, c->wfile, 0, c->seg->start, c->seg->size, 0, 0) < 0) {
        t->failed = true;
        res.err = KRAPPY_E_STORAGE;
        snprintf(res.msg, sizeof res.msg, "out of memory creating the topic");
    } else {
        kr_fdfile_put(c->wfile); /* synced: the cache may close it until the first write */
        c->wfile = NULL;         /* the stream's now */
        c->wfd = -1;
        (void)kr_topic_add_segment(t, c->seg); /* reserved */
        t->bytes = c->seg->size;
        c->seg = NULL;
        t->ready = true;
        kr_log(KR_LOG_INFO, "topic created", KR_LOG_STR("topic", t->name));
    }
    kr_stream_created(s, t->stream, t->ready);
    res.first = t->next;
    if (j->done != NULL)
        j->done(j->arg, &res);
}

/* Whether t's oldest segment but `i` may be retired now: the view holds
 * its events, it is not being rewritten (its rewrite would bring the file
 * back), and its final sync (which leaves BASE.idx behind) is done. */
static bool retirable(const kr_topic *t, size_t i)
{
    const kr_segment *seg = t->segs[i];
    return seg->next <= t->marker && !seg->compacting && !kr_stream_holds(t->stream, seg->base);
}

/* How many of t's oldest segments the size and age limits of its settings
 * want gone, and may go now. */
static size_t over_limits(const kr_topic *t)
{
    uint64_t max_bytes = t->cfg.v[KR_TC_RETENTION_BYTES], max_ms = t->cfg.v[KR_TC_RETENTION_MS];
    if (!(t->cfg.v[KR_TC_CLEANUP] & KR_CLEANUP_DELETE) || (max_bytes == 0 && max_ms == 0))
        return 0;
    uint64_t now = kr_wall_ms();
    size_t drop = 0;
    uint64_t bytes = t->bytes;
    while (drop + 1 < t->n_segs && retirable(t, drop)) {
        const kr_segment *seg = t->segs[drop];
        bool over_size = max_bytes && bytes > max_bytes;
        bool too_old = max_ms && seg->max_ts + max_ms < now;
        if (!over_size && !too_old)
            break;
        bytes -= seg->size;
        drop++;
    }
    return drop;
}

/* How many of t's oldest segments lie wholly below `first` and may go
 * now (a cluster's RETENTION). */
static size_t below(const kr_topic *t, uint64_t first)
{
    size_t drop = 0;
    while (drop + 1 < t->n_segs && t->segs[drop]->next <= first && retirable(t, drop))
        drop++;
    return drop;
}

/*
 * Retire t's `drop` oldest segments. The loop forgets them at once (replies
 * in flight hold their own file handles); the writer unlinks the files.
 */
static void retire(kr_store *s, kr_topic *t, size_t drop)
{
    if (drop == 0)
        return;
    /* The job and its paths first: nothing is retired without them. */
    kr_job *j = kr_job_new(KR_JOB_DELETE, t);
    char **paths = calloc(drop * 2, sizeof *paths);
    bool ok = j != NULL && paths != NULL;
    if (ok)
        j->del.paths = paths;
    for (size_t i = 0; ok && i < drop; i++) {
        char name[KR_SEG_NAME_BYTES];
        kr_seg_name(name, t->segs[i]->base);
        ok = (paths[j->del.n++] = kr_store_path(t->dir, name)) != NULL;
        kr_index_file_name(name, t->segs[i]->base);
        ok = ok && (paths[j->del.n++] = kr_store_path(t->dir, name)) != NULL;
    }
    if (ok)
        j->del.dir = t->dir;
    if (!ok) {
        if (j == NULL || j->del.paths == NULL)
            free(paths);
        kr_job_free(j);
        kr_log(KR_LOG_WARN,
               "out of memory retiring segments; retention tries again after the "
               "next checkpoint",
               KR_LOG_STR("topic", t->name));
        return;
    }
    for (size_t i = 0; i < drop; i++) {
        t->bytes -= t->segs[i]->size;
        kr_segment_free(t->segs[i]);
    }
    memmove(t->segs, t->segs + drop, (t->n_segs - drop) * sizeof *t->segs);
    t->n_segs -= drop;
    t->first = t->segs[0]->base;
    kr_log(KR_LOG_INFO, "retention retired segments", KR_LOG_STR("topic", t->name),
           KR_LOG_U64("segments", drop), KR_LOG_U64("first", t->first));
    kr_counter_add(s->m_retired, drop);
    kr_store_groups_retained(s, t);
    kr_writer_submit(s->writer, j);
}

/* A cluster member's first offset is the log's RETENTION's, also where its
 * segments are cut elsewhere than the leader's (rolls happen per loop
 * turn's write, not per batch): the events below it that a kept segment
 * holds are no longer served. */
static void raise_first(kr_store *s, kr_topic *t)
{
    uint64_t first = t->retain_to < t->next ? t->retain_to : t->next;
    if (first <= t->first)
        return;
    t->first = first;
    kr_store_groups_retained(s, t);
}

/*
 * Retire whole old segments the durable view covers, when over the size or
 * age limit of a topic whose cleanup includes "delete". On a cluster
 * member the limits only make the leader's decision (kr_store_retention_led);
 * what goes is what the log's RETENTION says: every node's first offset
 * becomes its `first` (raise_first), and each retires the segments wholly
 * below it - its own segments, cut where its own writes rolled them, so a
 * node never drops an event the leader still serves.
 */
void kr_store_retention(kr_store *s, kr_topic *t)
{
    /* Closing: the next start's first checkpoint retires them. */
    if (t->ready && !t->deleted)
        raise_first(s, t);
    if (t->n_segs < 2 || s->draining || t->deleted || !t->ready || s->writer == NULL)
        return;
    if (s->retention_led == NULL) {
        /* A single node's retain_to is a skip's (kr_store_skip_to), else 0. */
        size_t drop = over_limits(t), skipped = below(t, t->retain_to);
        retire(s, t, drop > skipped ? drop : skipped);
        raise_first(s, t);
        return;
    }
    retire(s, t, below(t, t->retain_to));
    raise_first(s, t); /* retire() set it to the first kept segment's base */
    size_t drop = over_limits(t);
    uint64_t first = drop > 0 ? t->segs[drop]->base : 0;
    if (first > t->retain_to && first > t->retain_asked) {
        t->retain_asked = first;
        s->retention_led(s->retention_arg, t, first);
    }
}

void kr_store_retention_led(kr_store *s, kr_store_retention_fn decide, void *arg)
{
    s->retention_led = decide;
    s->retention_arg = arg;
}

void kr_store_retain(kr_store *s, kr_topic *t, uint64_t first)
{
    if (first > t->retain_to)
        t->retain_to = first;
    kr_store_retention(s, t);
}

krappy_err kr_store_skip_to(kr_store *s, kr_topic *t, uint64_t first, char *msg, size_t msglen)
{
    if (first <= t->assigned)
        return KRAPPY_OK;
    if (t->deleted || t->failed || t->stream == NULL) {
        snprintf(msg, msglen, "topic %s is being created or deleted; try again", t->name);
        return KRAPPY_E_BUSY;
    }
    int rc = kr_stream_skip(s, t->stream, first, msg, msglen);
    if (rc == 1) {
        snprintf(msg, msglen, "topic %s is still being written or synced; try again", t->name);
        return KRAPPY_E_BUSY;
    }
    if (rc < 0) {
        kr_log(KR_LOG_WARN, "a skip's segment could not be made", KR_LOG_STR("topic", t->name),
               KR_LOG_STR("reason", msg));
        return KRAPPY_E_STORAGE;
    }
    kr_log(KR_LOG_WARN, "the stream skips offsets every other copy retired",
           KR_LOG_STR("topic", t->name), KR_LOG_U64("from", t->next), KR_LOG_U64("to", first));
    t->next = t->assigned = first;
    if (first > t->retain_to)
        t->retain_to = first;
    /* The view's rows below `first` wait for the peers' (kr_store_seed_view). */
    t->seed_to = first;
    t->seed_begun = false;
    raise_first(s, t);
    kr_store_wake(s, t);
    return KRAPPY_OK;
}

krappy_err kr_store_gap_to(kr_store *s, kr_topic *t, uint64_t next, char *msg, size_t msglen)
{
    (void)s;
    if (next <= t->assigned)
        return KRAPPY_OK;
    if (t->deleted || t->failed || t->stream == NULL || kr_stream_gap(t->stream, next) < 0) {
        snprintf(msg, msglen, "topic %s is being created or deleted; try again", t->name);
        return KRAPPY_E_BUSY;
    }
    return KRAPPY_OK;
}

/*
 * The view's database may be in an error state (RocksDB refused a
 * checkpoint, or a cursor write failed): RocksDB 7.8's C API has no Resume,
 * so it is closed and opened again - but only once its disk has room again.
 * A database in its error state still serves reads; a reopen on a full disk
 * would fail and close it, taking those reads with it. The checkpoint tick
 * tries again meanwhile, and a reopen waits while a checkpoint runs (the
 * view thread is using the view).
 */
#define KR_VIEW_REOPEN_ROOM (1u << 20)

static void try_reopen(kr_store *s)
{
    if (!s->view_reopen || s->ckpt_running)
        return;
    struct statvfs vfs;
    char *vdir = kr_store_path(s->data_dir, "view");
    int rc = vdir != NULL ? statvfs(vdir, &vfs) : -1;
    free(vdir);
    if (rc == 0 && (uint64_t)vfs.f_bavail * vfs.f_frsize < KR_VIEW_REOPEN_ROOM)
        return;                       /* still full: the tick looks again */
    kr_store_cursors_expire(s, true); /* their snapshots go with the database */
    char err[256];
    if (kr_view_reopen(s->view, err, sizeof err) < 0) {
        kr_log(KR_LOG_ERROR, "reopening the view failed; the checkpoint tick tries again",
               KR_LOG_STR("reason", err));
        return;
    }
    s->view_reopen = false;
    for (size_t i = 0; i < s->n_topics; i++)
        kr_store_readcache_drop(s, s->topics[i]);
    kr_retry_now(&s->ckpt_retry); /* the disk has room: worth a try at once */
    kr_log(KR_LOG_INFO, "the view was reopened after a failed write");
}

void kr_store_view_failed(kr_store *s)
{
    s->view_reopen = true;
    try_reopen(s);
}

/* The fields of the line that logs a failure retried with kr_retry r,
 * `unsaid` failures after the last logged. */
#define RETRY_FIELDS(r, unsaid)                                                                    \
    KR_LOG_U64("failures_in_a_row", (r)->failures), KR_LOG_U64("not_logged", (unsaid)),            \
        KR_LOG_U64("next_try_ms", kr_retry_delay(r))

/* segment_ms: the loop owns the active segment, so it rolls it itself -
 * once the segment's first batch is that old and nothing is on its way
 * into the stream (kr_stream_roll says when it cannot yet). */
void kr_store_roll_quiet(kr_store *s, kr_topic *t, uint64_t now)
{
    uint64_t ms = t->cfg.v[KR_TC_SEGMENT_MS];
    kr_segment *seg = t->n_segs > 0 ? t->segs[t->n_segs - 1] : NULL;
    if (ms == 0 || seg == NULL || t->stream == NULL || !t->ready || t->failed || t->deleted ||
        seg->next == seg->base || seg->first_write_ms == 0 || seg->first_write_ms + ms > now ||
        t->assigned != t->next || s->draining)
        return;
    uint64_t mono = kr_mono_ms();
    if (!kr_retry_due(&t->roll_retry, mono))
        return;
    char msg[256];
    uint32_t unsaid;
    if (kr_stream_roll(s, t->stream, msg, sizeof msg) == 0)
        kr_retry_succeeded(&t->roll_retry);
    else if (kr_retry_failed(&t->roll_retry, mono, msg, &unsaid))
        kr_log(KR_LOG_WARN, "rolling a quiet segment failed; it is tried again later",
               KR_LOG_STR("topic", t->name), KR_LOG_STR("reason", msg),
               RETRY_FIELDS(&t->roll_retry, unsaid));
}

/* Putting a failed checkpoint's entries together again. */
struct put_back {
    kr_overlay *into;
    size_t lost; /* entries there was no memory for */
};

/* A frozen entry goes back into the active overlay unless a newer one is
 * there already. */
static int put_back(void *arg, const kr_ov_entry *e)
{
    struct put_back *pb = arg;
    if (kr_overlay_put_older(pb->into, e) < 0)
        pb->lost++;
    return 0;
}

/* An entry written since the checkpoint began goes on top of the frozen
 * ones. */
static int put_newer(void *arg, const kr_ov_entry *e)
{
    struct put_back *pb = arg;
    if (kr_overlay_put(pb->into, e) < 0)
        pb->lost++;
    return 0;
}

/*
 * After a failed checkpoint, the topic's one active overlay again: the
 * entries written since it began (usually few) on top of the frozen ones,
 * whose overlay becomes the active one - not every frozen entry copied into
 * the new overlay, which a failing disk would have the loop do for all the
 * keys at every checkpoint interval. Should memory run out midway, the
 * frozen entries go under the newer ones instead, as before.
 */
static void unfreeze(kr_topic *t)
{
    struct put_back pb = {t->frozen, 0};
    kr_overlay_foreach(t->active, put_newer, &pb);
    if (pb.lost == 0) {
        kr_overlay *newer = t->active;
        t->active = t->frozen;
        t->frozen = newer; /* freed by the caller */
        return;
    }
    pb = (struct put_back){t->active, 0};
    kr_overlay_foreach(t->frozen, put_back, &pb);
    if (pb.lost > 0)
        kr_log(KR_LOG_ERROR,
               "out of memory keeping the keys of a failed checkpoint; GET and SCAN may "
               "miss them until a restart replays them",
               KR_LOG_STR("topic", t->name), KR_LOG_U64("keys", pb.lost));
}

/*
 * A checkpoint failed: the next one waits (the interval, doubling to
 * KR_STORE_RETRY_CAP_MS) - a disk that refuses the view's files would
 * otherwise be tried, and logged, every interval, and over and over while
 * the overlays are full (each failure asked for the next at once: 167,000
 * failed checkpoints in two minutes, producers idle). The first failure is
 * logged, then a new reason or a reminder a minute on.
 */
static void checkpoint_failed(kr_store *s, const char *why)
{
    uint32_t unsaid;
    bool say = kr_retry_failed(&s->ckpt_retry, kr_mono_ms(), why, &unsaid);
    kr_gauge_set(s->m_ckpt_failing, s->ckpt_retry.failures);
    if (!say)
        return;
    kr_log(KR_LOG_ERROR, "checkpoint failed; GET and SCAN still answer, from memory",
           KR_LOG_STR("reason", why), RETRY_FIELDS(&s->ckpt_retry, unsaid));
}

static void finish_checkpoint(kr_store *s, kr_job *j)
{
    s->ckpt_running = false;
    s->ckpt_job = NULL;
    for (size_t i = 0; i < j->checkpoint.n; i++) {
        kr_ckpt_topic *c = &j->checkpoint.ck[i];
        kr_topic *t = c->t;
        if (j->err == KRAPPY_OK) {
            t->marker = c->next;
            t->keys = c->keys;
        }
        kr_store_producers_checkpointed(s, t, c->prod, j->err == KRAPPY_OK);
        if (j->err != KRAPPY_OK && t->frozen != NULL)
            unfreeze(t); /* the next checkpoint covers them again */
        if (j->err == KRAPPY_OK) {
            kr_store_readcache_take(s, t, t->frozen); /* the view changed */
        } else {
            kr_overlay_free(t->frozen);
            kr_store_readcache_drop(s, t); /* the view may have been reopened */
        }
        t->frozen = NULL;
    }
    if (j->err != KRAPPY_OK) {
        checkpoint_failed(s, kr_job_msg(j));
        if (j->checkpoint.reopen)
            kr_store_view_failed(s);
    } else {
        uint32_t failed = kr_retry_succeeded(&s->ckpt_retry);
        kr_gauge_set(s->m_ckpt_failing, 0);
        if (failed > 0)
            kr_log(KR_LOG_INFO, "checkpoints succeed again", KR_LOG_U64("failed", failed));
        for (size_t i = 0; i < j->checkpoint.n; i++)
            kr_store_retention(s, j->checkpoint.ck[i].t);
    }
    kr_store_recount_active(s);
    kr_store_scan_checkpointed(s, j->err == KRAPPY_OK, kr_job_msg(j));
    for (size_t i = 0; i < j->checkpoint.n; i++)
        kr_store_producers_answer(j->checkpoint.ck[i].t, j->err == KRAPPY_OK);
    if (s->ckpt_again || s->active_bytes > kr_store_fill_limit(s)) {
        s->ckpt_again = false; /* after a failure, who waited has an answer */
        kr_store_checkpoint_due(s);
    }
    kr_store_release_held(s, j->err != KRAPPY_OK || !s->ckpt_running);
}

static void on_jobs_done(void *arg, struct kr_job_list *jobs)
{
    kr_store *s = arg;
    kr_job *j;
    while ((j = TAILQ_FIRST(jobs)) != NULL) {
        TAILQ_REMOVE(jobs, j, link);
        switch (j->kind) {
        case KR_JOB_SYNC:
            kr_stream_synced(s, j);
            break;
        case KR_JOB_CREATE:
            finish_create(s, j);
            break;
        case KR_JOB_CHECKPOINT:
            finish_checkpoint(s, j);
            break;
        case KR_JOB_DELETE:
            break;
        case KR_JOB_CURSOR:
            if (j->cursor.drop)
                kr_store_group_dropped(s, j);
            else
                kr_store_cursor_done(s, j);
            break;
        case KR_JOB_TOPIC_DROP:
            kr_store_topic_dropped(s, j);
            break;
        case KR_JOB_LOGGED:
            kr_store_logged_done(s, j);
            break;
        }
        kr_job_free(j);
    }
}

/* ---- checkpoints ---- */

/*
 * Freeze every topic's overlay that holds something the view lacks and
 * queue one checkpoint job for all of them. One runs at a time; a request
 * meanwhile runs right after.
 */
void kr_store_hold(kr_store *s)
{
    if (s != NULL)
        kr_writer_hold(s->writer);
}

void kr_store_release(kr_store *s)
{
    if (s != NULL)
        kr_writer_release(s->writer);
}

/* Submit the syncs that could not be submitted (out of memory): the
 * checkpoint tick tries again. */
static void retry_syncs(kr_store *s)
{
    for (size_t i = 0; i < s->n_topics; i++) {
        kr_stream *st = s->topics[i]->stream;
        if (st != NULL && st->sync_wanted && st->sync_job == NULL)
            kr_stream_want_sync(s, st);
    }
}

/* Whether t's overlay goes into the next checkpoint: a topic whose view
 * awaits a seed (kr_store_seed_view) keeps its marker below the skip, the
 * sign a restart looks for. */
static bool checkpoint_wanted(const kr_topic *t)
{
    return t->ready && !t->failed && t->frozen == NULL && t->marker < t->next && t->seed_to == 0;
}

void kr_store_checkpoint_due(kr_store *s)
{
    if (kr_retry_due(&s->ckpt_retry, kr_mono_ms()))
        kr_store_checkpoint(s);
}

void kr_store_checkpoint(kr_store *s)
{
    if (s->draining)
        return;
    retry_syncs(s);
    if (s->ckpt_running) {
        s->ckpt_again = true;
        return;
    }
    size_t n = 0;
    for (size_t i = 0; i < s->n_topics; i++) {
        kr_topic *t = s->topics[i];
        if (checkpoint_wanted(t))
            n++;
    }
    if (n == 0)
        return;
    kr_job *j = kr_job_new(KR_JOB_CHECKPOINT, NULL);
    kr_ckpt_topic *ck = calloc(n, sizeof *ck);
    if (j == NULL || ck == NULL) {
        kr_job_free(j);
        free(ck);
        kr_log(KR_LOG_WARN, "out of memory starting a checkpoint; the next tick tries again");
        return;
    }
    size_t k = 0;
    for (size_t i = 0; i < s->n_topics && k < n; i++) {
        kr_topic *t = s->topics[i];
        if (!checkpoint_wanted(t))
            continue;
        kr_overlay *fresh = kr_overlay_new_sized(kr_overlay_count(t->active));
        if (fresh == NULL) {
            kr_log(KR_LOG_WARN,
                   "out of memory starting the checkpoint of a topic; the next one takes it",
                   KR_LOG_STR("topic", t->name));
            continue;
        }
        t->frozen = t->active;
        t->active = fresh;
        t->frozen_next = t->next;
        ck[k].t = t;
        ck[k].ov = t->frozen;
        ck[k].next = t->next;
        ck[k].keys = t->keys;
        ck[k].prod = kr_store_producers_freeze(t);
        k++;
    }
    j->checkpoint.ck = ck;
    j->checkpoint.n = k;
    j->checkpoint.dispose = s->dispose; /* the view thread frees them */
    j->checkpoint.n_dispose = s->n_dispose;
    s->dispose = NULL;
    s->n_dispose = s->cap_dispose = 0;
    s->ckpt_running = true;
    s->ckpt_job = j;
    kr_store_recount_active(s);
    /* RocksDB must never be ahead of the durable stream: the job goes to
     * the writer once every stream it covers is synced up to its marker. */
    j->checkpoint.waits = 1; /* this function's own, dropped below */
    for (size_t i = 0; i < k; i++) {
        kr_stream *st = ck[i].t->stream;
        if (st->synced_next >= ck[i].next)
            continue;
        st->ckpt_wait = true;
        st->ckpt_target = ck[i].next;
        j->checkpoint.waits++;
        kr_stream_want_sync(s, st);
    }
    kr_store_checkpoint_part(s, true, NULL);
}

void kr_store_checkpoint_part(kr_store *s, bool ok, const char *why)
{
    kr_job *j = s->ckpt_job;
    if (j == NULL)
        return;
    if (!ok)
        kr_job_fail(j, 0, "the checkpoint waited for a stream that cannot be synced: %s", why);
    if (--j->checkpoint.waits > 0)
        return;
    if (j->err != KRAPPY_OK || s->draining) {
        if (j->err == KRAPPY_OK)
            kr_job_fail(j, 0, "the store is closing");
        finish_checkpoint(s, j);
        kr_job_free(j);
        return;
    }
    if (j->checkpoint.n == 0) {
        /* Its only topics were deleted meanwhile. */
        finish_checkpoint(s, j);
        kr_job_free(j);
        return;
    }
    kr_writer_submit(s->writer, j);
}

void kr_store_checkpoint_forget(kr_store *s, kr_topic *t)
{
    kr_job *j = s->ckpt_job;
    if (j == NULL || j->checkpoint.waits == 0)
        return; /* none, or with the writer already: it runs before the drop */
    kr_job_checkpoint *c = &j->checkpoint;
    for (size_t i = 0; i < c->n; i++) {
        if (c->ck[i].t != t)
            continue;
        kr_prod_ckpt_free(c->ck[i].prod);
        memmove(&c->ck[i], &c->ck[i + 1], (c->n - i - 1) * sizeof *c->ck);
        c->n--;
        break;
    }
    if (t->stream->ckpt_wait) {
        t->stream->ckpt_wait = false;
        kr_store_checkpoint_part(s, true, NULL);
    }
}

static void on_group_tick(evutil_socket_t fd, short what, void *arg)
{
    kr_store *s = arg;
    (void)fd;
    (void)what;
    for (size_t i = 0; i < s->n_topics; i++)
        kr_store_groups_tick(s, s->topics[i]);
}

static void on_tick(evutil_socket_t fd, short what, void *arg)
{
    kr_store *s = arg;
    (void)fd;
    (void)what;
    try_reopen(s);
    kr_store_checkpoint_due(s);
    kr_store_cursors_expire(s, false);
    kr_store_producers_tick(s);
    size_t bytes = 0;
    uint64_t now = kr_wall_ms();
    for (size_t i = 0; i < s->n_topics; i++) {
        kr_topic *t = s->topics[i];
        kr_store_roll_quiet(s, t, now);
        kr_compact_poke(s, t);
        bytes += kr_overlay_bytes(t->active) + (t->frozen ? kr_overlay_bytes(t->frozen) : 0);
    }
    kr_gauge_set(s->m_overlay_bytes, (int64_t)bytes);
}

/* ---- operations ---- */

int kr_store_register(kr_store *s, const uint8_t *name, size_t len, kr_topic **topic,
                      kr_store_done done, void *arg, kr_store_result *res)
{
    bool found;
    size_t at = kr_store_topic_slot(s, name, len, &found);
    kr_topic *t = found ? s->topics[at] : NULL;
    if (t != NULL && t->deleted) {
        res->err = KRAPPY_E_STORAGE;
        snprintf(res->msg, sizeof res->msg,
                 "topic %.60s was deleted but not all of its records could be removed; restart "
                 "krappyd to finish the deletion before creating the topic again",
                 t->name);
        return -1;
    }
    if (t != NULL && !t->failed) {
        /* The answer follows every append queued before it (a marker in
         * the topic's queue): its `next` counts them. No thread hop. */
        kr_append *a = kr_append_new(s, t);
        if (a == NULL)
            goto nomem;
        a->done = done;
        a->arg = arg;
        *topic = t;
        kr_stream_queue(s, t->stream, a);
        return 0;
    }
    /* The job first: a topic in the table must get its CREATE job. */
    kr_job *j = kr_job_new(KR_JOB_CREATE, NULL);
    if (j == NULL)
        goto nomem;
    if (t == NULL) {
        t = kr_store_topic_new(s, name, len);
        if (t == NULL) {
            kr_job_free(j);
            goto nomem;
        }
        t->stream = kr_stream_new(t);
        if (t->stream == NULL || kr_store_topic_insert(s, t) < 0) {
            kr_store_topic_free(t);
            kr_job_free(j);
            goto nomem;
        }
    }
    t->failed = false;
    j->t = t;
    j->done = done;
    j->arg = arg;
    j->create.dir = t->dir;
    j->create.files = s->files;
    *topic = t;
    kr_writer_submit(s->writer, j);
    return 0;
nomem:
    res->err = KRAPPY_E_STORAGE;
    snprintf(res->msg, sizeof res->msg, "out of memory registering the topic");
    return -1;
}

void kr_store_refresh_metrics(kr_store *s)
{
    size_t open;
    uint64_t opens;
    kr_fdcache_stats(s->files, &open, &opens);
    kr_gauge_set(s->m_files_open, (int64_t)open);
    kr_counter_add(s->m_file_opens, opens - s->file_opens_seen);
    s->file_opens_seen = opens;
    for (size_t i = 0; i < s->n_topics; i++) {
        kr_topic *t = s->topics[i];
        kr_gauge_set(t->m_stream_bytes, (int64_t)t->bytes);
        kr_gauge_set(t->m_segments, (int64_t)t->n_segs);
        kr_store_groups_metrics(t);
        kr_store_producers_metrics(t);
        kr_compact_topic_metrics(t);
    }
}

uint64_t kr_store_view_bytes(kr_store *s)
{
    return kr_view_disk_bytes(s->view);
}

/* ---- open and close ---- */

int kr_store_open(const kr_store_opts *o, struct event_base *base, kr_metrics *m, kr_store **out,
                  char *err, size_t errlen)
{
    kr_store *s = calloc(1, sizeof *s);
    if (s == NULL) {
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    s->o = *o;
    s->base = base;
    s->metrics = m;
    s->lock_fd = -1;
    TAILQ_INIT(&s->scan_waits);
    TAILQ_INIT(&s->cursors);
    TAILQ_INIT(&s->held);
    TAILQ_INIT(&s->flushq);
    TAILQ_INIT(&s->free_chunks);
    TAILQ_INIT(&s->free_appends);
    TAILQ_INIT(&s->free_kblocks);
    /* A stored batch may be larger than the frame that brought it: see
     * KR_STORE_EVENT_GROWTH. */
    kr_buf_init(&s->readbuf, (size_t)o->max_frame + 4096 +
                                 (size_t)o->max_publish_events * KR_STORE_EVENT_GROWTH);
    kr_buf_init(&s->win, KR_FETCH_WINDOW);
    s->ranges = calloc(KR_FETCH_MAX_RANGES, sizeof *s->ranges);
    s->files = kr_fdcache_new(o->max_open_files ? o->max_open_files : KR_STORE_DEFAULT_OPEN_FILES);
    s->data_dir = strdup(o->data_dir);
    s->topics_dir = kr_store_path(o->data_dir, "topics");
    char *lock = kr_store_path(o->data_dir, "LOCK");
    char *viewdir = kr_store_path(o->data_dir, "view");
    s->m_events_in = kr_counter(m, "krappy_events_in_total", NULL, "Events stored.");
    s->m_bytes_in = kr_counter(m, "krappy_stream_batch_bytes_total", NULL,
                               "Bytes of stored batches (headers included).");
    s->m_overlay_bytes =
        kr_gauge(m, "krappy_overlay_bytes", NULL, "Memory held by the latest-value overlays.");
    s->m_replayed = kr_counter(m, "krappy_replayed_events_total", NULL,
                               "Events replayed from the stream into the view at start-up.");
    s->m_retired =
        kr_counter(m, "krappy_retired_segments_total", NULL, "Segments deleted by retention.");
    s->m_scan_ckpts = kr_counter(m, "krappy_scan_checkpoints_total", NULL,
                                 "Checkpoints forced by the first page of a SCAN.");
    s->m_ckpt_failing = kr_gauge(m, "krappy_checkpoint_failures_in_a_row", NULL,
                                 "Checkpoints failed since the last that succeeded (0: they "
                                 "work; above 0, the view lags and memory grows).");
    s->m_group_skipped = kr_counter(m, "krappy_group_skipped_events_total", NULL,
                                    "Unacknowledged events retention removed before a group "
                                    "consumed them.");
    s->m_written = kr_counter(m, "krappy_stream_written_bytes_total", NULL,
                              "Bytes appended to stream segments.");
    s->m_failures = kr_counter(m, "krappy_storage_failures_total", NULL,
                               "Failed stream writes, syncs and view writes.");
    s->m_files_open = kr_gauge(m, "krappy_segment_files_open", NULL,
                               "Segment files krappyd holds open (at most the share the open "
                               "file limit leaves them, see README).");
    s->m_file_opens = kr_counter(m, "krappy_segment_file_opens_total", NULL,
                                 "Segment files opened (again) because they were not open: the "
                                 "file cache's misses.");
    s->flush_ev = event_new(base, -1, 0, kr_stream_on_flush, s);
    if (s->o.group_window == 0)
        s->o.group_window = KR_GROUP_DEFAULT_WINDOW;
    if (s->ranges == NULL || s->files == NULL || s->data_dir == NULL || s->topics_dir == NULL ||
        lock == NULL || viewdir == NULL || s->flush_ev == NULL || kr_store_producers_open(s) < 0) {
        snprintf(err, errlen, "out of memory");
        goto fail;
    }
    s->lock_fd = open(lock, O_RDWR | O_CREAT | O_CLOEXEC, 0640);
    if (s->lock_fd < 0) {
        snprintf(err, errlen, "cannot open %s: %s", lock, strerror(errno));
        goto fail;
    }
    if (flock(s->lock_fd, LOCK_EX | LOCK_NB) < 0) {
        snprintf(err, errlen,
                 "another krappyd is already using %s (it holds %s); stop it or pick another "
                 "--data",
                 o->data_dir, lock);
        goto fail;
    }
    kr_view_opts vo = {.block_cache_bytes = o->block_cache_bytes,
                       .log_dir = o->rocksdb_log_dir,
                       .max_open_files = o->rocksdb_max_open_files,
                       .background_low = o->compact_idle};
    if (kr_store_open_view(s, viewdir, &vo, err, errlen) < 0)
        goto fail;
    if (kr_store_finish_deletions(s, err, errlen) < 0 || kr_store_recover(s, err, errlen) < 0)
        goto fail;
    kr_prod_set_sort(s->producers); /* restored producers, by last activity */
    kr_store_recount_active(s);
    /* RocksDB does not sync the directory entry of its own directory, and
     * DATA/topics was maybe just made: make both names durable. */
    int dfd = open(o->data_dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (dfd < 0 || fsync(dfd) < 0) {
        snprintf(err, errlen, "cannot sync the data directory %s: %s", o->data_dir,
                 strerror(errno));
        if (dfd >= 0)
            close(dfd);
        goto fail;
    }
    close(dfd);
    if (kr_writer_start(&s->writer, base, s->view, m, on_jobs_done, s) < 0) {
        snprintf(err, errlen, "cannot start the storage writer: %s", strerror(errno));
        goto fail;
    }
    if (kr_compact_start(s) < 0) {
        snprintf(err, errlen, "cannot start the compaction thread: %s", strerror(errno));
        goto fail;
    }
    kr_retry_init(&s->ckpt_retry, o->checkpoint_ms, KR_STORE_RETRY_CAP_MS);
    s->tick = event_new(base, -1, EV_PERSIST, on_tick, s);
    struct timeval tv = {(time_t)(o->checkpoint_ms / 1000),
                         (suseconds_t)(o->checkpoint_ms % 1000) * 1000};
    if (s->tick == NULL || event_add(s->tick, &tv) < 0) {
        snprintf(err, errlen, "cannot arm the checkpoint timer");
        goto fail;
    }
    s->group_tick = event_new(base, -1, EV_PERSIST, on_group_tick, s);
    struct timeval gtv = {0, 250000}; /* deadlines hold to within a second */
    if (s->group_tick == NULL || event_add(s->group_tick, &gtv) < 0) {
        snprintf(err, errlen, "cannot arm the group timer");
        goto fail;
    }
    free(lock);
    free(viewdir);
    s->opened = true;
    *out = s;
    return 0;
fail:
    free(lock);
    free(viewdir);
    kr_store_close(s);
    return -1;
}

/* Whether appends, syncs or a checkpoint are still under way. */
static bool store_busy(const kr_store *s)
{
    if (s->ckpt_job != NULL)
        return true;
    for (size_t i = 0; i < s->n_topics; i++)
        if (s->topics[i]->stream != NULL && kr_stream_busy(s->topics[i]->stream))
            return true;
    return false;
}

/* Close drives the loop (it has stopped serving) until the appends and
 * syncs under way are done, for at most this long. */
#define KR_CLOSE_DRAIN_MS 30000

static void drain(kr_store *s)
{
    uint64_t until = kr_mono_ms() + KR_CLOSE_DRAIN_MS;
    kr_stream_flush_all(s);
    while (store_busy(s) && kr_mono_ms() < until) {
        event_base_loop(s->base, EVLOOP_NONBLOCK);
        kr_stream_flush_all(s);
        if (store_busy(s))
            usleep(200);
    }
}

void kr_store_close(kr_store *s)
{
    if (s == NULL)
        return;
    s->closing = true;
    kr_compact_stop(s); /* it reads the view and the topics' directories */
    if (s->tick != NULL)
        event_free(s->tick);
    if (s->group_tick != NULL)
        event_free(s->group_tick);
    kr_store_cursors_expire(s, true);
    if (s->writer != NULL) {
        if (s->opened) {
            /* What was appended gets its syncs, then the view its last
             * checkpoint: a short replay next time. */
            drain(s);
            if (!s->ckpt_running)
                kr_store_checkpoint(s);
            drain(s);
        }
        s->draining = true;
        kr_writer_stop(s->writer);
        s->writer = NULL;
    }
    if (s->ckpt_job != NULL) {
        /* It still waited for a sync that will not come now. */
        kr_job *j = s->ckpt_job;
        kr_job_fail(j, 0, "the store is closing");
        finish_checkpoint(s, j);
        kr_job_free(j);
    }
    for (size_t i = 0; i < s->n_topics; i++)
        if (s->topics[i]->stream != NULL)
            kr_stream_fail_all(s, s->topics[i]->stream, "the store is closing");
    kr_store_release_held(s, true);
    kr_scan_wait *w;
    while ((w = TAILQ_FIRST(&s->scan_waits)) != NULL) {
        TAILQ_REMOVE(&s->scan_waits, w, link);
        free(w->prefix);
        free(w->after);
        free(w);
    }
    for (size_t i = 0; i < s->n_topics; i++)
        kr_store_topic_free(s->topics[i]);
    free(s->topics);
    kr_store_producers_close(s);
    kr_fdcache_free(s->files); /* replies still sent from its files hold them */
    kr_view_close(s->view);
    if (s->lock_fd >= 0)
        close(s->lock_fd);
    if (s->flush_ev != NULL)
        event_free(s->flush_ev);
    for (size_t i = 0; i < s->n_dispose; i++)
        kr_overlay_free(s->dispose[i]);
    free(s->dispose);
    kr_stream_pools_free(s);
    kr_overlay_pool_release();
    kr_buf_free(&s->readbuf);
    kr_buf_free(&s->win);
    free(s->ranges);
    free(s->data_dir);
    free(s->topics_dir);
    free(s);
}
