/*
 * store/compact.c - the store's compaction (compact.h): its thread, one
 * rewrite at a time (compact_rewrite.c), the scheduling of the topics'
 * passes, and the swap of the loop's segment records.
 */
#include "store/compact.h"

#include "store/store_int.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include <event2/event.h>

#include "proto/cbor.h"
#include "util/clock.h"
#include "util/log.h"
#include "util/sched.h"

/* After a failed rewrite, a topic waits this long before the next try. */
#define RETRY_MS 10000
/* Seconds without a rewrite after which the rewrites' memory goes back. */
#define MEM_IDLE_S 30

/* ---- the store's compaction ---- */

/* A topic's compaction state (kr_topic.compact). */
struct kr_tcompact {
    kr_topic *t;       /* NULL once the topic went while a rewrite of it ran */
    bool busy;         /* a rewrite of it is in flight */
    bool in_pass;      /* a pass over its closed segments is under way ... */
    uint64_t pass_at;  /* ... and goes on from this offset */
    uint64_t clean_to; /* the last finished pass covered the offsets below */
    uint64_t retry_ms; /* after a failure: not before this wall clock time */
    kr_compact_stats st;
    kr_metric *m_reclaimed, *m_rewritten, *m_removed, *m_seconds, *m_dirty;
};

/* One rewrite handed to the thread, and back. */
typedef struct kr_cjob {
    struct kr_tcompact *tc;
    kr_segment **segs;  /* the loop's records of the segments rewritten */
    kr_fdfile **pinned; /* their files, held open from the submission to the swap */
    size_t n_pinned;
    uint64_t *bases;
    kr_segment *new_seg; /* the loop's record of the result, made beforehand */
    kr_rewrite rw;
    char topic[KRAPPY_MAX_NAME_BYTES + 1];
    size_t tlen;
    kr_view *view;
    int rc;
    uint64_t ns;
} kr_cjob;

struct kr_compactor {
    pthread_t thread;
    bool started;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    kr_cjob *todo, *done; /* one rewrite at a time */
    kr_cjob *spent;       /* delivered, to be freed on the thread (cjob_free's
                             closes may free the old files' blocks) */
    atomic_bool stop;
    int done_fd;           /* the thread writes it when a job is done ... */
    struct event *done_ev; /* ... and the loop reads it */
    kr_store *s;
    size_t rr;           /* round robin over the topics */
    kr_rewrite_mem *mem; /* the thread's, while it has had work lately */
    bool busy;           /* a job is out (loop side) */
};

/* The offset of a stored event (delivered form): its first item. */
static int stored_offset(const uint8_t *val, size_t vlen, uint64_t *offset)
{
    kr_cbor_item head, first;
    kr_cbor_iter it;
    if (kr_cbor_iter_open(val, vlen, &head, &it) < 0 || head.kind != KR_CBOR_ARRAY ||
        kr_cbor_iter_next(&it, &first) != 1 || first.kind != KR_CBOR_UINT)
        return -1;
    *offset = first.u;
    return 0;
}

/* One key's answer: found or not, and the latest offset. */
static int take_offset(void *arg, size_t i, const uint8_t *val, size_t vlen, const char **why)
{
    kr_compact_key *k = (kr_compact_key *)arg + i;
    k->found = val != NULL;
    if (val != NULL && stored_offset(val, vlen, &k->latest) < 0) {
        *why = "a latest value in the view does not parse";
        return -1;
    }
    return 0;
}

/* The view's latest offsets of a chunk's distinct keys, asked in
 * ascending order (chunk_decide sorts them): one batched lookup (RocksDB's
 * MultiGet) reads each data block once for the keys of the batch in it,
 * after the bloom filters, and leaves the block cache to GETs. */
static int view_latest(void *arg, kr_compact_key *keys, size_t n, char *err, size_t errlen)
{
    kr_cjob *j = arg;
    kr_view_probe_key pk[KR_VIEW_PROBE_BATCH];
    if (n > KR_VIEW_PROBE_BATCH) {
        snprintf(err, errlen, "asked %zu keys at once, %d at most", n, KR_VIEW_PROBE_BATCH);
        return -1;
    }
    kr_view_probe *p = kr_view_probe_new(j->view, j->topic, j->tlen);
    if (p == NULL) {
        snprintf(err, errlen, "cannot read the view (closed, or out of memory)");
        return -1;
    }
    for (size_t i = 0; i < n; i++)
        pk[i] = (kr_view_probe_key){.key = keys[i].key, .klen = keys[i].klen};
    int rc = kr_view_probe_values(p, pk, n, take_offset, keys);
    if (rc < 0)
        snprintf(err, errlen, "%s", kr_view_probe_error(p));
    kr_view_probe_free(p);
    return rc;
}

static void cjob_free(kr_cjob *j)
{
    if (j == NULL)
        return;
    for (size_t i = 0; i < j->n_pinned; i++)
        kr_fdfile_put(j->pinned[i]); /* closes the old file now, if nothing else holds it */
    free(j->pinned);
    if (j->rw.dirfd >= 0)
        close(j->rw.dirfd);
    kr_index_free(&j->rw.idx);
    kr_segment_free(j->new_seg);
    free(j->segs);
    free(j->bases);
    free(j);
}

/* Wait for work; the rewrites' memory goes back once none came for
 * MEM_IDLE_S. Called and returns with c->mu held. */
static void wait_for_work(kr_compactor *c)
{
    while (c->todo == NULL && c->spent == NULL && !atomic_load(&c->stop)) {
        if (c->mem == NULL) {
            pthread_cond_wait(&c->cv, &c->mu);
            continue;
        }
        if (kr_cond_wait_ms(&c->cv, &c->mu, MEM_IDLE_S * 1000u) == ETIMEDOUT && c->todo == NULL) {
            kr_rewrite_mem_free(c->mem);
            c->mem = NULL;
        }
    }
}

static void *compact_main(void *arg)
{
    kr_compactor *c = arg;
    pthread_mutex_lock(&c->mu);
    for (;;) {
        wait_for_work(c);
        if (c->spent != NULL) {
            kr_cjob *spent = c->spent;
            c->spent = NULL;
            pthread_mutex_unlock(&c->mu);
            cjob_free(spent);
            pthread_mutex_lock(&c->mu);
            continue;
        }
        if (c->todo == NULL)
            break;
        kr_cjob *j = c->todo;
        c->todo = NULL;
        pthread_mutex_unlock(&c->mu);
        if (c->mem == NULL)
            c->mem = kr_rewrite_mem_new(); /* NULL: the rewrite has its own */
        j->rw.mem = c->mem;
        uint64_t t0 = kr_mono_ns();
        j->rc = kr_compact_rewrite(&j->rw);
        j->ns = kr_mono_ns() - t0;
        pthread_mutex_lock(&c->mu);
        c->done = j;
        pthread_mutex_unlock(&c->mu);
        /* The loop is woken with no lock held (not c->mu, nor the event
         * base's, which event_active would hold while it wakes the
         * loop): an idle-priority thread loses its core the moment the
         * loop wakes, and on a busy machine gets it back only much later,
         * while a lock it holds would stop the loop. */
        uint64_t one = 1;
        while (write(c->done_fd, &one, sizeof one) < 0 && errno == EINTR)
            ;
        pthread_mutex_lock(&c->mu);
    }
    pthread_mutex_unlock(&c->mu);
    kr_rewrite_mem_free(c->mem);
    c->mem = NULL;
    return NULL;
}

static struct kr_tcompact *state_of(kr_store *s, kr_topic *t)
{
    if (t->compact != NULL)
        return t->compact;
    struct kr_tcompact *tc = calloc(1, sizeof *tc);
    if (tc == NULL)
        return NULL;
    tc->t = t;
    char labels[KRAPPY_MAX_NAME_BYTES + 16];
    snprintf(labels, sizeof labels, "topic=\"%s\"", t->name);
    tc->m_reclaimed = kr_counter(s->metrics, "krappy_compaction_reclaimed_bytes_total", labels,
                                 "Bytes of segment files compaction gave back.");
    tc->m_rewritten = kr_counter(s->metrics, "krappy_compaction_segments_rewritten_total", labels,
                                 "Segments compaction rewrote (merged ones included).");
    tc->m_removed = kr_counter(s->metrics, "krappy_compaction_events_removed_total", labels,
                               "Events compaction removed (overwritten, or old tombstones).");
    tc->m_seconds = kr_counter(s->metrics, "krappy_compaction_milliseconds_total", labels,
                               "Time spent rewriting segments, in ms.");
    tc->m_dirty = kr_gauge(s->metrics, "krappy_compaction_dirty_bytes", labels,
                           "Bytes of closed segments not compacted since the last pass.");
    t->compact = tc;
    return tc;
}

/* The closed segments a rewrite may take: those wholly below the durable
 * marker whose final sync is done (the loop's stream no longer holds them:
 * nothing writes, syncs or cuts them again), from the first on.
 * @return how many. */
static size_t closed_below_marker(const kr_topic *t)
{
    size_t n = 0;
    while (n + 1 < t->n_segs && t->segs[n]->next <= t->marker &&
           !kr_stream_holds(t->stream, t->segs[n]->base))
        n++;
    return n;
}

static uint64_t dirty_bytes(const kr_topic *t, const struct kr_tcompact *tc, uint64_t *total)
{
    uint64_t dirty = 0;
    *total = 0;
    for (size_t i = 0; i + 1 < t->n_segs; i++) {
        *total += t->segs[i]->size;
        if (t->segs[i]->base >= tc->clean_to)
            dirty += t->segs[i]->size;
    }
    return dirty;
}

/* Build and hand over the rewrite of segs[i..k] of t. @return 0, or -1. */
static int submit(kr_store *s, kr_topic *t, struct kr_tcompact *tc, size_t i, size_t k)
{
    kr_compactor *c = s->compactor;
    size_t n = k - i + 1;
    kr_cjob *j = calloc(1, sizeof *j);
    if (j == NULL)
        return -1;
    j->rw.dirfd = -1;
    j->segs = calloc(n, sizeof *j->segs);
    j->bases = calloc(n, sizeof *j->bases);
    j->pinned = calloc(n, sizeof *j->pinned);
    j->new_seg = kr_segment_new(s->files, t->dir, t->segs[i]->base, KR_SEG_HEADER_BYTES);
    j->rw.dirfd = open(t->dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (j->segs == NULL || j->bases == NULL || j->pinned == NULL || j->new_seg == NULL ||
        j->rw.dirfd < 0) {
        cjob_free(j);
        return -1;
    }
    /* The old files stay open until the loop swaps its records: between the
     * rename and the swap, a FETCH must not open the new file by the name
     * of the old one (its record's sizes and hints are the old file's). */
    for (size_t x = 0; x < n; x++) {
        if (kr_fdfile_get(t->segs[i + x]->file) < 0) {
            cjob_free(j);
            return -1;
        }
        j->pinned[j->n_pinned++] = t->segs[i + x]->file;
    }
    for (size_t x = 0; x < n; x++) {
        j->segs[x] = t->segs[i + x];
        j->bases[x] = t->segs[i + x]->base;
        j->segs[x]->compacting = true;
    }
    j->tc = tc;
    memcpy(j->topic, t->name, t->name_len + 1);
    j->tlen = t->name_len;
    j->view = s->view;
    j->rw.bases = j->bases;
    j->rw.n = n;
    j->rw.end = t->segs[k]->next;
    j->rw.now_ms = kr_wall_ms();
    j->rw.delete_retention_ms = t->cfg.v[KR_TC_DELETE_RETENTION_MS];
    j->rw.lookup = view_latest;
    j->rw.lookup_arg = j;
    j->rw.rate = s->o.compact_rate != 0 ? s->o.compact_rate : KR_DEFAULT_COMPACT_RATE;
    j->rw.busy_bytes = s->m_bytes_in;
    j->rw.stop = &c->stop;
    tc->busy = true;
    c->busy = true;
    pthread_mutex_lock(&c->mu);
    c->todo = j;
    pthread_cond_signal(&c->cv);
    pthread_mutex_unlock(&c->mu);
    return 0;
}

/* The first of two neighbours among the first n segments, both compacted,
 * that fit one segment together, with no gap between them (a skip's
 * segment must keep starting its own file: kr_store_skip_to); n when
 * there are none. */
static size_t mergeable(const kr_topic *t, size_t n, uint64_t limit)
{
    for (size_t i = 0; i + 1 < n; i++) {
        const kr_segment *a = t->segs[i], *b = t->segs[i + 1];
        if (a->compacted && b->compacted && a->n_corrupt == 0 && b->n_corrupt == 0 &&
            a->next == b->base && a->size + b->size <= limit)
            return i;
    }
    return n;
}

/*
 * Start t's next rewrite when it is due: a pass starts once enough of its
 * closed segments are dirty (KR_COMPACT_DIRTY_PCT) and walks them from the
 * first, one group at a time: a segment and the ones after it while their
 * bytes together stay within segment_bytes (so small ones merge).
 * @return true when a rewrite was handed over.
 */
static bool try_start(kr_store *s, kr_topic *t)
{
    if (!(t->cfg.v[KR_TC_CLEANUP] & KR_CLEANUP_COMPACT) || !t->ready || t->failed || t->deleted)
        return false;
    struct kr_tcompact *tc = state_of(s, t);
    if (tc == NULL || tc->busy || kr_wall_ms() < tc->retry_ms)
        return false;
    size_t n = closed_below_marker(t);
    uint64_t limit = t->cfg.v[KR_TC_SEGMENT_BYTES];
    if (!tc->in_pass) {
        uint64_t total, dirty = dirty_bytes(t, tc, &total);
        size_t m = mergeable(t, n, limit);
        if (m < n) {
            tc->pass_at = t->segs[m]->base; /* small compacted neighbours: merge them */
        } else if (n == 0 || dirty == 0 || dirty * 100 < total * KR_COMPACT_DIRTY_PCT) {
            return false;
        } else {
            tc->pass_at = t->first;
        }
        tc->in_pass = true;
    }
    size_t i = 0;
    while (i < n && (t->segs[i]->base < tc->pass_at || t->segs[i]->n_corrupt > 0))
        i++;
    if (i == n) {
        /* The pass is through what could be taken now. */
        tc->in_pass = false;
        tc->clean_to = n > 0 ? t->segs[n - 1]->next : tc->clean_to;
        return false;
    }
    uint64_t bytes = t->segs[i]->size;
    size_t k = i;
    while (k + 1 < n && t->segs[k + 1]->n_corrupt == 0 &&
           t->segs[k + 1]->base == t->segs[k]->next && bytes + t->segs[k + 1]->size <= limit)
        bytes += t->segs[++k]->size;
    if (submit(s, t, tc, i, k) < 0) {
        kr_log(KR_LOG_WARN, "cannot start a compaction; it is tried again later",
               KR_LOG_STR("topic", t->name), KR_LOG_STR("reason", strerror(errno)));
        tc->retry_ms = kr_wall_ms() + RETRY_MS;
        return false;
    }
    return true;
}

/* Hand the thread the next rewrite due, topics in turn. */
static void schedule(kr_store *s)
{
    kr_compactor *c = s->compactor;
    if (c == NULL || c->busy || s->draining || s->closing)
        return;
    for (size_t x = 0; x < s->n_topics; x++) {
        size_t i = (c->rr + x) % s->n_topics;
        if (try_start(s, s->topics[i])) {
            c->rr = i + 1;
            return;
        }
    }
}

void kr_compact_poke(kr_store *s, kr_topic *t)
{
    (void)t;
    schedule(s);
}

/* Put the rewritten segment's record in place of the old ones'. */
static void swap_records(kr_store *s, kr_topic *t, kr_cjob *j)
{
    size_t n = j->rw.n, i = 0;
    while (i < t->n_segs && t->segs[i] != j->segs[0])
        i++;
    /* Retention leaves segments being compacted alone and the topic is
     * whole (tc->t): the records are where they were. */
    if (i + n > t->n_segs) {
        kr_log(KR_LOG_ERROR, "compacted segments not found; restart krappyd",
               KR_LOG_STR("topic", t->name));
        return;
    }
    kr_segment *seg = j->new_seg;
    j->new_seg = NULL;
    seg->next = t->segs[i + n - 1]->next;
    seg->size = j->rw.size;
    seg->max_ts = j->rw.max_ts;
    seg->idx = j->rw.idx;
    memset(&j->rw.idx, 0, sizeof j->rw.idx);
    seg->verified = true; /* every batch was checked on its way through */
    seg->compacted = true;
    for (size_t x = 0; x < n; x++) {
        t->bytes -= t->segs[i + x]->size;
        kr_segment_free(t->segs[i + x]); /* its file closes once replies from it are out */
    }
    t->bytes += seg->size;
    t->segs[i] = seg;
    memmove(t->segs + i + 1, t->segs + i + n, (t->n_segs - i - n) * sizeof *t->segs);
    t->n_segs -= n - 1;
    (void)s;
}

static void on_done(evutil_socket_t fd, short what, void *arg)
{
    kr_store *s = arg;
    kr_compactor *c = s->compactor;
    uint64_t n;
    (void)what;
    if (read(fd, &n, sizeof n) < 0 && errno != EAGAIN)
        kr_log(KR_LOG_WARN, "cannot read the compaction thread's wake-up; it is read again",
               KR_LOG_STR("reason", strerror(errno)));
    pthread_mutex_lock(&c->mu);
    kr_cjob *j = c->done;
    c->done = NULL;
    pthread_mutex_unlock(&c->mu);
    if (j == NULL)
        return;
    c->busy = false;
    struct kr_tcompact *tc = j->tc;
    kr_topic *t = tc->t;
    tc->busy = false;
    if (t == NULL) { /* the topic went meanwhile */
        free(tc);
        cjob_free(j);
        schedule(s);
        return;
    }
    for (size_t x = 0; x < j->rw.n; x++)
        j->segs[x]->compacting = false;
    tc->st.ns += j->ns;
    kr_counter_add(tc->m_seconds, j->ns / 1000000);
    if (j->rc == 0) {
        swap_records(s, t, j);
        uint64_t gone = j->rw.bytes_in > j->rw.size ? j->rw.bytes_in - j->rw.size : 0;
        tc->st.reclaimed_bytes += gone;
        tc->st.segments_rewritten += j->rw.n;
        tc->st.events_removed += j->rw.events_in - j->rw.events_kept;
        kr_counter_add(tc->m_reclaimed, gone);
        kr_counter_add(tc->m_rewritten, j->rw.n);
        kr_counter_add(tc->m_removed, j->rw.events_in - j->rw.events_kept);
        kr_log(KR_LOG_INFO, "segments compacted", KR_LOG_STR("topic", t->name),
               KR_LOG_U64("base", j->bases[0]), KR_LOG_U64("segments", j->rw.n),
               KR_LOG_U64("events", j->rw.events_in), KR_LOG_U64("kept", j->rw.events_kept),
               KR_LOG_U64("bytes_before", j->rw.bytes_in), KR_LOG_U64("bytes_after", j->rw.size),
               KR_LOG_U64("ms", j->ns / 1000000), KR_LOG_U64("rests", j->rw.rests));
    } else if (j->rc < 0 && !atomic_load(&c->stop)) {
        kr_log(KR_LOG_WARN, "compaction of a segment failed; it is left as it is",
               KR_LOG_STR("topic", t->name), KR_LOG_U64("base", j->bases[0]),
               KR_LOG_STR("reason", j->rw.err));
        tc->retry_ms = kr_wall_ms() + RETRY_MS;
    }
    tc->pass_at = j->rw.end; /* on with the pass (a failed group waits for the next) */
    /* The last close of a replaced segment frees its blocks and cached
     * pages, milliseconds for a big one: not on the loop. */
    pthread_mutex_lock(&c->mu);
    c->spent = j;
    pthread_cond_signal(&c->cv);
    pthread_mutex_unlock(&c->mu);
    schedule(s);
}

int kr_compact_start(kr_store *s)
{
    kr_compactor *c = calloc(1, sizeof *c);
    if (c == NULL)
        return -1;
    /* Its idle clock (wait_for_work) is monotonic. */
    int e = kr_cond_init_monotonic(&c->cv);
    if (e != 0) {
        free(c);
        errno = e;
        return -1;
    }
    c->s = s;
    atomic_init(&c->stop, false);
    pthread_mutex_init(&c->mu, NULL);
    c->done_fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    c->done_ev =
        c->done_fd < 0 ? NULL : event_new(s->base, c->done_fd, EV_READ | EV_PERSIST, on_done, s);
    if (c->done_ev == NULL || event_add(c->done_ev, NULL) < 0 ||
        pthread_create(&c->thread, NULL, compact_main, c) != 0) {
        if (c->done_ev != NULL)
            event_free(c->done_ev);
        if (c->done_fd >= 0)
            close(c->done_fd);
        pthread_mutex_destroy(&c->mu);
        pthread_cond_destroy(&c->cv);
        free(c);
        return -1;
    }
    pthread_setname_np(c->thread, "kr-compact");
    /* A rewrite is CPU work that can wait; the loop's latency cannot. */
    e = s->o.compact_idle ? kr_sched_idle(c->thread) : 0;
    if (e != 0)
        kr_log(KR_LOG_WARN,
               "cannot lower the compaction thread's CPU priority; it runs at normal priority",
               KR_LOG_STR("reason", strerror(e)));
    c->started = true;
    s->compactor = c;
    return 0;
}

void kr_compact_stop(kr_store *s)
{
    kr_compactor *c = s->compactor;
    if (c == NULL)
        return;
    pthread_mutex_lock(&c->mu);
    atomic_store(&c->stop, true);
    pthread_cond_signal(&c->cv);
    pthread_mutex_unlock(&c->mu);
    pthread_join(c->thread, NULL);
    /* A job never started, or one finished and not yet delivered: its
     * segments are whole (never started) or swapped on disk (the records
     * go with the topics now). */
    cjob_free(c->spent);
    kr_cjob *left[2] = {c->todo, c->done};
    for (int i = 0; i < 2; i++) {
        if (left[i] == NULL)
            continue;
        struct kr_tcompact *tc = left[i]->tc;
        tc->busy = false;
        if (tc->t == NULL)
            free(tc);
        cjob_free(left[i]);
    }
    event_free(c->done_ev);
    close(c->done_fd);
    pthread_mutex_destroy(&c->mu);
    pthread_cond_destroy(&c->cv);
    free(c);
    s->compactor = NULL;
}

bool kr_compact_busy(const kr_store *s)
{
    return s->compactor != NULL && s->compactor->busy;
}

void kr_compact_topic_stats(const kr_topic *t, kr_compact_stats *out)
{
    memset(out, 0, sizeof *out);
    if (t->compact == NULL)
        return;
    *out = t->compact->st;
    uint64_t total;
    out->dirty_bytes = dirty_bytes(t, t->compact, &total);
}

void kr_compact_topic_metrics(kr_topic *t)
{
    if (t->compact == NULL)
        return;
    uint64_t total;
    kr_gauge_set(t->compact->m_dirty, (int64_t)dirty_bytes(t, t->compact, &total));
}

void kr_compact_topic_free(kr_topic *t)
{
    struct kr_tcompact *tc = t->compact;
    t->compact = NULL;
    if (tc == NULL)
        return;
    if (tc->busy)
        tc->t = NULL; /* freed when its rewrite is back */
    else
        free(tc);
}
