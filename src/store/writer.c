/*
 * store/writer.c - the storage writer thread: group commit of appends,
 * fdatasync policy, segment roll, checkpoints into the view, deletions.
 *
 * Failure handling (DESIGN.md, "The write path" 6):
 * - A short or failed write truncates the segment back to the end of the
 *   last whole batch before anything else is appended; the batches that did
 *   not land fail with STORAGE and leave nothing behind.
 * - A failed fdatasync may have dropped dirty pages: the writer truncates to
 *   the last synced length, rewrites the batches since then from memory (it
 *   keeps a reference to each until it is synced) and syncs again. If that
 *   fails too the topic is "broken": appends fail until a later round
 *   manages the repair.
 * - Appends after a failed one carry offsets that no longer follow the file
 *   (the loop assigned them before it heard of the failure); they fail too,
 *   and the loop re-bases its offsets on the first failure it sees.
 */
#include "store/writer.h"

#include "store/checkpoint.h"
#include "store/store_int.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <unistd.h>

#include <event2/event.h>

#include "util/clock.h"
#include "util/io.h"
#include "util/log.h"

/* Batches written by one pwritev at most (below IOV_MAX). */
#define KR_WRITER_IOV 512
/*
 * A topic's batches written since its last fdatasync are kept in memory, so
 * that a failed sync can be repaired by rewriting them (DESIGN.md, "The
 * write path" 6). With only "write" acks the next sync used to be the next
 * checkpoint, so this held every batch of a checkpoint interval (~150 MB
 * at 1M events/s). Past this many bytes the writer syncs the file itself:
 * memory stays bounded, and the cost is one fdatasync per 16 MiB written
 * (a few ms on an SSD, against ~50 ms of ingest at full speed).
 */
#define KR_WRITER_UNSYNCED_MAX (16u * 1024 * 1024)

struct kr_writer {
    pthread_t thread;
    pthread_t vthread; /* the view thread: checkpoints into RocksDB */
    pthread_mutex_t mu;
    pthread_cond_t cv;
    pthread_cond_t vcv;
    struct kr_job_list queue;  /* submitted, not yet taken */
    struct kr_job_list vqueue; /* checkpoints whose streams are synced */
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
    uint64_t segment_bytes;
    void (*on_done)(void *arg, struct kr_job_list *jobs);
    void *arg;
    kr_metric *m_fsyncs, *m_rounds, *m_jobs, *m_round_jobs, *m_bytes, *m_failures, *m_checkpoints,
        *m_checkpoint_ns;
};

/* ---- small helpers ---- */

static int fsync_dir(int dirfd)
{
    return fsync(dirfd) == 0 || errno == EINVAL ? 0 : -1;
}

/* ---- the writer's topic state ---- */

kr_wtopic *kr_wtopic_new(kr_fdcache *files, const char *dir, kr_fdfile *file, uint64_t seg_base,
                         uint64_t file_len, uint64_t next, uint64_t max_ts)
{
    kr_wtopic *w = calloc(1, sizeof *w);
    if (w == NULL)
        return NULL;
    w->dir = dir;
    w->files = files;
    w->file = file;
    w->fd = -1;
    w->seg_base = seg_base;
    w->file_len = w->synced_len = file_len;
    w->next = next;
    w->max_ts = max_ts;
    return w;
}

static void release_unsynced(kr_wtopic *w)
{
    for (size_t i = 0; i < w->n_unsynced; i++)
        kr_block_unref(w->unsynced[i].b);
    w->n_unsynced = 0;
    w->unsynced_bytes = 0;
}

void kr_wtopic_free(kr_wtopic *w)
{
    if (w == NULL)
        return;
    release_unsynced(w);
    free(w->unsynced);
    kr_index_free(&w->idx);
    kr_fdfile_free(w->file);
    free(w);
}

/*
 * Pin the active segment's file for writing or syncing: w->fd is its
 * descriptor until the matching wtopic_unpin. Pins nest.
 * @return 0, or -1 with errno (it could not be opened).
 */
static int wtopic_pin(kr_wtopic *w)
{
    if (w->fd_pins > 0) {
        w->fd_pins++;
        return 0;
    }
    int fd = kr_fdfile_get(w->file);
    if (fd < 0)
        return -1;
    w->fd = fd;
    w->fd_pins = 1;
    return 0;
}

/* The last unpin leaves the file to the cache - dirty while it holds bytes
 * not yet synced, so that the cache keeps it open (fdcache.h). */
static void wtopic_unpin(kr_wtopic *w)
{
    if (--w->fd_pins > 0)
        return;
    kr_fdfile_dirty(w->file, w->file_len > w->synced_len);
    kr_fdfile_put(w->file);
    w->fd = -1;
}

/* The topic's directory, opened for a moment (creating or deleting files
 * in it, syncing it). @return the descriptor, or -1 with errno. */
static int open_dir(const kr_wtopic *w)
{
    return open(w->dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
}

static int remember_unsynced(kr_wtopic *w, kr_block *b, uint64_t pos)
{
    if (w->n_unsynced == w->cap_unsynced) {
        size_t cap = w->cap_unsynced ? w->cap_unsynced * 2 : 16;
        struct kr_unsynced *u = realloc(w->unsynced, cap * sizeof *u);
        if (u == NULL)
            return -1;
        w->unsynced = u;
        w->cap_unsynced = cap;
    }
    kr_block_ref(b);
    w->unsynced[w->n_unsynced].b = b;
    w->unsynced[w->n_unsynced].pos = pos;
    w->n_unsynced++;
    w->unsynced_bytes += sizeof *b + b->cap;
    return 0;
}

/* wtopic_sync with the file pinned. */
static int sync_pinned(kr_writer *wr, kr_wtopic *w, char *msg, size_t msglen)
{
    kr_counter_add(wr->m_fsyncs, 1);
    if (!w->broken && fdatasync(w->fd) == 0) {
        w->synced_len = w->file_len;
        release_unsynced(w);
        return 0;
    }
    int first = errno;
    kr_log(KR_LOG_WARN, "fdatasync failed; rewriting unsynced batches from memory",
           KR_LOG_STR("dir", w->dir), KR_LOG_STR("reason", strerror(first)));
    if (ftruncate(w->fd, (off_t)w->synced_len) == 0) {
        int ok = 1;
        for (size_t i = 0; i < w->n_unsynced && ok; i++)
            ok = kr_pwrite_all(w->fd, w->unsynced[i].b->data, w->unsynced[i].b->len,
                               w->unsynced[i].pos) == 0;
        kr_counter_add(wr->m_fsyncs, 1);
        if (ok && fdatasync(w->fd) == 0) {
            w->broken = false;
            w->synced_len = w->file_len;
            release_unsynced(w);
            kr_log(KR_LOG_INFO, "unsynced batches rewritten and synced", KR_LOG_STR("dir", w->dir));
            return 0;
        }
    }
    int e = errno;
    w->broken = true;
    kr_counter_add(wr->m_failures, 1);
    snprintf(msg, msglen, "syncing %s failed: %s", w->dir, kr_errno_advice(e ? e : first));
    return -1;
}

/*
 * Make the active segment durable. On failure, repair: truncate to the last
 * synced length, rewrite every batch since from memory, sync again.
 */
static int wtopic_sync(kr_writer *wr, kr_wtopic *w, char *msg, size_t msglen)
{
    if (w->synced_len == w->file_len && !w->broken)
        return 0;
    if (w->unkept) {
        snprintf(msg, msglen,
                 "syncing %s failed, and the batches written since the last sync could not be "
                 "kept in memory to rewrite them; restart krappyd to recover the topic from its "
                 "stream",
                 w->dir);
        return -1;
    }
    if (wtopic_pin(w) < 0) {
        snprintf(msg, msglen, "cannot open the active segment of %s to sync it: %s", w->dir,
                 kr_errno_advice(errno));
        return -1;
    }
    int rc = sync_pinned(wr, w, msg, msglen);
    wtopic_unpin(w);
    return rc;
}

/* ---- segments ---- */

/*
 * Create segment `base` in w's directory (dirfd) durably (header written,
 * file and directory synced): *file is the writer's read-write file of it,
 * its descriptor *fd handed to the cache and pinned once (the caller puts
 * it back), *seg the loop's record of it (made here, so that the loop has
 * nothing left to allocate when the batch lands; its file is opened when
 * the loop reads). On failure nothing is left behind, so that a retry can
 * create it again.
 * @return 0, or -1 with errno.
 */
static int create_segment(const kr_wtopic *w, int dirfd, uint64_t base, kr_fdfile **file,
                          int *fd_out, kr_segment **seg)
{
    char name[KR_SEG_NAME_BYTES];
    kr_seg_name(name, base);
    int fd = openat(dirfd, name, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0640);
    if (fd < 0)
        return -1;
    uint8_t hdr[KR_SEG_HEADER_BYTES];
    kr_seg_header_encode(hdr, base);
    kr_segment *s = NULL;
    kr_fdfile *f = NULL;
    if (kr_pwrite_all(fd, hdr, sizeof hdr, 0) < 0 || fdatasync(fd) < 0 || fsync_dir(dirfd) < 0 ||
        (f = kr_fdfile_new(w->files, w->dir, name, O_RDWR)) == NULL ||
        (s = kr_segment_new(w->files, w->dir, base)) == NULL) {
        int e = f == NULL || s == NULL ? ENOMEM : errno;
        kr_fdfile_free(f);
        close(fd);
        unlinkat(dirfd, name, 0);
        errno = e;
        return -1;
    }
    kr_fdfile_adopt(f, fd);
    s->verified = true; /* ours */
    *file = f;
    *fd_out = fd;
    *seg = s;
    return 0;
}

/* Make `file` (new, synced, pinned once by create_segment: fd is its
 * descriptor) w's active segment, in place of the old one: the pins on the
 * old file move to the new one, which stays open meanwhile. */
static void replace_file(kr_wtopic *w, kr_fdfile *file, int fd)
{
    unsigned pins = w->fd_pins;
    while (w->fd_pins > 0)
        wtopic_unpin(w);
    kr_fdfile_free(w->file);
    w->file = file;
    if (pins == 0) {
        kr_fdfile_put(file);
        return;
    }
    w->fd = fd;
    w->fd_pins = pins;
    for (unsigned i = 1; i < pins; i++)
        (void)kr_fdfile_get(file); /* open and pinned: cannot fail */
}

/*
 * Start a new segment at `base`: sync the old one (its data must be durable
 * before a checkpoint can cover it, and its file goes away), leave its
 * index hint behind, open the new file.
 */
static int roll_segment(kr_writer *wr, kr_wtopic *w, uint64_t base, kr_segment **seg, char *msg,
                        size_t msglen)
{
    if (wtopic_sync(wr, w, msg, msglen) < 0)
        return -1;
    kr_fdfile *file;
    int fd, dirfd = open_dir(w);
    if (dirfd < 0 || create_segment(w, dirfd, base, &file, &fd, seg) < 0) {
        snprintf(msg, msglen, "cannot start a new segment in %s: %s", w->dir,
                 kr_errno_advice(errno));
        if (dirfd >= 0)
            close(dirfd);
        return -1;
    }
    kr_index_meta im = {.next = w->next, .max_ts = w->max_ts};
    if (kr_index_write(dirfd, w->seg_base, &im, w->file_len, &w->idx) < 0) {
        char name[KR_INDEX_NAME_BYTES];
        kr_index_file_name(name, w->seg_base);
        kr_log(KR_LOG_WARN,
               "cannot leave the index of a closed segment behind; the next start "
               "scans the segment instead",
               KR_LOG_STR("dir", w->dir), KR_LOG_STR("file", name),
               KR_LOG_STR("reason", strerror(errno)));
    }
    close(dirfd);
    replace_file(w, file, fd);
    w->seg_base = base;
    w->file_len = w->synced_len = KR_SEG_HEADER_BYTES;
    w->max_ts = 0;
    w->idx.n = 0;
    return 0;
}

/* ---- jobs ---- */

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
    int pfd = open(parent, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (pfd < 0)
        return -1;
    int rc = fsync_dir(pfd);
    int e = errno;
    close(pfd);
    errno = e;
    return rc;
}

/* Create the topic's directory (and DATA/topics) durably, then its first
 * segment; fill the writer state the loop allocated for it. */
static void run_create(kr_job *j)
{
    kr_wtopic *w = j->w;
    char topics[PATH_MAX];
    const char *slash = strrchr(w->dir, '/');
    if (slash != NULL && (size_t)(slash - w->dir) < sizeof topics) {
        memcpy(topics, w->dir, (size_t)(slash - w->dir));
        topics[slash - w->dir] = '\0';
        /* DATA/topics exists since the start (and its name was synced). */
        if ((mkdir(topics, 0750) < 0 && errno != EEXIST) || mkdir_durably(w->dir) < 0) {
            kr_job_fail(j, errno, "cannot create %s durably", w->dir);
            return;
        }
    }
    int fd, dirfd = open_dir(w);
    if (dirfd < 0 || create_segment(w, dirfd, 0, &w->file, &fd, &j->create.seg) < 0) {
        int e = errno;
        kr_job_fail(j, e, "cannot create the first segment in %s", w->dir);
        if (dirfd >= 0)
            close(dirfd);
        return;
    }
    close(dirfd);
    kr_fdfile_put(w->file); /* synced: the cache may close it until the first write */
    w->seg_base = 0;
    w->file_len = w->synced_len = KR_SEG_HEADER_BYTES;
    w->next = 0;
}

/* ROLL (segment_ms): close the active segment so that retention and
 * compaction can take it - only when it holds batches and the stream is
 * where the loop saw it (an append since, or a failure, leaves it). */
static void run_roll(kr_writer *wr, kr_job *j)
{
    kr_wtopic *w = j->w;
    char msg[256];
    if (w == NULL || w->file == NULL || w->broken || w->file_len <= KR_SEG_HEADER_BYTES ||
        w->next != j->roll.next)
        return;
    if (roll_segment(wr, w, w->next, &j->roll.new_seg, msg, sizeof msg) < 0)
        kr_job_fail(j, 0, "%s", msg);
}

/* Fail jobs[from..n) with the same sentence. */
static void fail_rest(kr_job **jobs, size_t from, size_t n, int err, const char *why)
{
    for (size_t i = from; i < n; i++)
        kr_job_fail(jobs[i], err, "%s", why);
}

/*
 * Appends refused before anything is written: the topic has no file (its
 * creation failed), or a failed sync left it broken and it still cannot be
 * repaired. @return true when the jobs were failed.
 */
static bool appends_refused(kr_writer *wr, kr_wtopic *w, kr_job **jobs, size_t n)
{
    char msg[256], why[320];
    if (w->file == NULL) {
        fail_rest(jobs, 0, n, 0, "the topic could not be created on disk; register again");
        return true;
    }
    if (w->broken && wtopic_sync(wr, w, msg, sizeof msg) < 0) {
        snprintf(why, sizeof why, "%s; writes to this topic are refused until it succeeds", msg);
        fail_rest(jobs, 0, n, 0, why);
        return true;
    }
    return false;
}

/* The segment size an append rolls at: its topic's, else the server's. */
static uint64_t seg_limit(const kr_writer *wr, const kr_job_append *a)
{
    return a->segment_bytes != 0 ? a->segment_bytes : wr->segment_bytes;
}

/*
 * Seal the batches from jobs[0] on whose offsets follow the file and that
 * fit the segment (the first always does: the segment was rolled for it)
 * into iov. @return how many, with *total their bytes.
 */
static size_t gather(kr_writer *wr, const kr_wtopic *w, kr_job **jobs, size_t n, struct iovec *iov,
                     uint64_t *total)
{
    size_t k = 0;
    uint64_t expect = w->next;
    *total = 0;
    while (k < n && k < KR_WRITER_IOV) {
        kr_job_append *a = &jobs[k]->append;
        if (a->base != expect)
            break;
        if (k > 0 && w->file_len + *total + a->block->len > seg_limit(wr, a))
            break;
        kr_batch_seal(a->block->data); /* the loop only encodes */
        iov[k].iov_base = a->block->data;
        iov[k].iov_len = a->block->len;
        *total += a->block->len;
        expect += a->count;
        k++;
    }
    return k;
}

/*
 * Write the gathered batches at the end of the file, resuming after short
 * writes, stopping at the first error. @return the bytes written; *err is
 * the errno of the error that stopped it (0 when all were written).
 */
static uint64_t write_gathered(const kr_wtopic *w, const struct iovec *iov, size_t k,
                               uint64_t total, int *err)
{
    uint64_t done = 0;
    size_t vi = 0, voff = 0;
    *err = 0;
    while (done < total) {
        struct iovec cur[KR_WRITER_IOV];
        size_t nc = 0;
        for (size_t x = vi; x < k; x++, nc++) {
            cur[nc] = iov[x];
            if (x == vi) {
                cur[nc].iov_base = (uint8_t *)cur[nc].iov_base + voff;
                cur[nc].iov_len -= voff;
            }
        }
        ssize_t wrote = pwritev(w->fd, cur, (int)nc, (off_t)(w->file_len + done));
        if (wrote < 0 && errno == EINTR)
            continue;
        if (wrote <= 0) {
            *err = wrote == 0 ? ENOSPC : errno;
            break;
        }
        done += (uint64_t)wrote;
        size_t left = (size_t)wrote;
        while (left > 0) {
            size_t room = iov[vi].iov_len - voff;
            if (left >= room) {
                left -= room;
                vi++;
                voff = 0;
            } else {
                voff += left;
                left = 0;
            }
        }
    }
    return done;
}

/*
 * The batches among jobs[0..k) that landed whole within `done` bytes are
 * in the file: note where, index them, keep them for a repair.
 * @return how many.
 */
static size_t account_landed(kr_writer *wr, kr_wtopic *w, kr_job **jobs, size_t k, uint64_t done)
{
    uint64_t landed = 0;
    size_t whole = 0;
    bool lost = false;
    while (whole < k && landed + jobs[whole]->append.block->len <= done)
        landed += jobs[whole++]->append.block->len;
    for (size_t x = 0; x < whole; x++) {
        kr_job_append *a = &jobs[x]->append;
        a->seg_base = w->seg_base;
        a->pos = w->file_len;
        kr_index_add(&w->idx, a->base, w->file_len);
        if (remember_unsynced(w, a->block, w->file_len) < 0)
            lost = true;
        w->file_len += a->block->len;
        w->next += a->count;
        if (a->max_ts > w->max_ts)
            w->max_ts = a->max_ts;
    }
    if (lost) {
        /* No copy of a batch to rewrite if a sync failed later: make them
         * durable now instead. */
        kr_counter_add(wr->m_fsyncs, 1);
        if (fdatasync(w->fd) == 0) {
            w->synced_len = w->file_len;
            release_unsynced(w);
        } else {
            w->broken = w->unkept = true;
            kr_counter_add(wr->m_failures, 1);
            kr_log(KR_LOG_ERROR,
                   "fdatasync failed with batches not kept for a rewrite; writes to "
                   "the topic are refused until a restart",
                   KR_LOG_STR("dir", w->dir), KR_LOG_STR("reason", strerror(errno)));
        }
    }
    return whole;
}

/* A write stopped by `err`: cut the torn batch off before anything else
 * is appended. */
static void cut_torn(kr_writer *wr, kr_wtopic *w, int err)
{
    kr_counter_add(wr->m_failures, 1);
    if (ftruncate(w->fd, (off_t)w->file_len) < 0) {
        w->broken = true;
        kr_log(KR_LOG_ERROR, "cannot cut a partly written batch", KR_LOG_STR("dir", w->dir),
               KR_LOG_STR("reason", strerror(errno)));
    }
    kr_log(KR_LOG_WARN, "stream write failed", KR_LOG_STR("dir", w->dir),
           KR_LOG_STR("reason", strerror(err)));
}

/* run_appends with the active segment pinned. */
static void append_pinned(kr_writer *wr, kr_wtopic *w, kr_job **jobs, size_t n)
{
    char msg[256];
    size_t i = 0;
    while (i < n) {
        kr_job_append *a = &jobs[i]->append;
        if (a->base != w->next) {
            kr_job_fail(jobs[i], 0,
                        "an earlier write to this topic failed, so this one was not stored; "
                        "retry it");
            i++;
            continue;
        }
        if (w->file_len > KR_SEG_HEADER_BYTES && w->file_len + a->block->len > seg_limit(wr, a)) {
            if (roll_segment(wr, w, a->base, &a->new_seg, msg, sizeof msg) < 0) {
                fail_rest(jobs, i, n, 0, msg);
                return;
            }
        }
        struct iovec iov[KR_WRITER_IOV];
        uint64_t total;
        int err;
        size_t k = gather(wr, w, jobs + i, n - i, iov, &total);
        uint64_t done = write_gathered(w, iov, k, total, &err);
        kr_counter_add(wr->m_bytes, done);
        size_t whole = account_landed(wr, w, jobs + i, k, done);
        if (whole < k) {
            err = err ? err : ENOSPC;
            cut_torn(wr, w, err);
            snprintf(msg, sizeof msg, "writing to %s failed (nothing of this request was stored)",
                     w->dir);
            fail_rest(jobs, i + whole, n, err, msg);
            return;
        }
        i += k;
    }
}

/*
 * Append a run of batches of one topic with as few pwritev calls as the
 * segment size allows. Appends after a failed one carry offsets that no
 * longer follow the file: they fail too. When more segment files are open
 * than the cache's limit, what was written is synced at once, so that the
 * cache may close the file (a dirty file stays open: fdcache.h) - with many
 * topics and a low `ulimit -n`, "write" acks then cost an fdatasync.
 */
static void run_appends(kr_writer *wr, kr_job **jobs, size_t n)
{
    kr_wtopic *w = jobs[0]->w;
    char msg[256];
    if (appends_refused(wr, w, jobs, n))
        return;
    if (wtopic_pin(w) < 0) {
        snprintf(msg, sizeof msg, "cannot open the active segment of %s: %s", w->dir,
                 kr_errno_advice(errno));
        fail_rest(jobs, 0, n, 0, msg);
        return;
    }
    append_pinned(wr, w, jobs, n);
    if (kr_fdcache_crowded(w->files) && wtopic_sync(wr, w, msg, sizeof msg) < 0)
        kr_log(KR_LOG_ERROR, "syncing a stream failed", KR_LOG_STR("reason", msg));
    wtopic_unpin(w);
}

/*
 * A checkpoint's first half, on the writer thread, in queue order: make
 * every stream it covers durable up to its marker. The second half - the
 * RocksDB write - runs on the view thread so appends need not wait for it.
 * @return 0 when the second half may run.
 */
static int checkpoint_sync(kr_writer *wr, kr_job *j)
{
    char msg[256];
    for (size_t i = 0; i < j->checkpoint.n; i++) {
        if (j->checkpoint.ck[i].w != NULL &&
            wtopic_sync(wr, j->checkpoint.ck[i].w, msg, sizeof msg) < 0) {
            kr_job_fail(j, 0, "%s", msg);
            return -1;
        }
    }
    return 0;
}

/* The second half, on the view thread: the RocksDB write (checkpoint.h). */
static void run_checkpoint(kr_writer *wr, kr_job *j)
{
    uint64_t t0 = kr_mono_ns();
    char err[256];
    if (kr_checkpoint_write(wr->view, j->checkpoint.ck, j->checkpoint.n, err, sizeof err) < 0) {
        kr_counter_add(wr->m_failures, 1);
        kr_job_fail(j, 0, "%s", err); /* the loop reopens the view */
        return;
    }
    kr_counter_add(wr->m_checkpoints, 1);
    kr_histogram_observe_ns(wr->m_checkpoint_ns, kr_mono_ns() - t0);
}

static void run_delete(kr_job *j)
{
    for (size_t i = 0; i < j->del.n; i++)
        if (unlink(j->del.paths[i]) < 0 && errno != ENOENT)
            kr_log(KR_LOG_WARN, "cannot delete a retired segment",
                   KR_LOG_STR("path", j->del.paths[i]), KR_LOG_STR("reason", strerror(errno)));
    int dirfd = j->w != NULL ? open_dir(j->w) : -1;
    if (j->w != NULL && (dirfd < 0 || fsync_dir(dirfd) < 0))
        kr_log(KR_LOG_WARN,
               "cannot sync a topic directory after deleting retired segments; a "
               "power cut may bring them back (retention deletes them again)",
               KR_LOG_STR("dir", j->w->dir), KR_LOG_STR("reason", strerror(errno)));
    if (dirfd >= 0)
        close(dirfd);
}

/*
 * A sync failed and could not be repaired: take back `from` (the first
 * "sync" batch of the round on this file) and every batch written after it,
 * so that STORAGE keeps meaning "nothing of the request was stored" and the
 * file ends where the loop believes the topic ends. Batches before it were
 * acknowledged "write" only and stay; a later round retries their sync.
 */
static void unwind_from(kr_job *from, const char *why)
{
    kr_wtopic *w = from->w;
    const kr_job_append *a = &from->append;
    if (a->seg_base != w->seg_base)
        return; /* in a segment synced when it was rolled: durable */
    bool pinned = wtopic_pin(w) == 0;
    if (!pinned || ftruncate(w->fd, (off_t)a->pos) < 0) {
        kr_log(KR_LOG_ERROR, "cannot take back unsynced batches", KR_LOG_STR("dir", w->dir),
               KR_LOG_STR("reason", strerror(errno)));
        w->broken = true;
    }
    while (w->n_unsynced > 0 && w->unsynced[w->n_unsynced - 1].pos >= a->pos) {
        kr_block *b = w->unsynced[--w->n_unsynced].b;
        w->unsynced_bytes -= sizeof *b + b->cap;
        kr_block_unref(b);
    }
    kr_index_cut(&w->idx, a->pos);
    if (w->synced_len > a->pos)
        w->synced_len = a->pos;
    w->file_len = a->pos;
    w->next = a->base;
    if (pinned)
        wtopic_unpin(w);
    for (kr_job *y = from; y != NULL; y = TAILQ_NEXT(y, link))
        if (y->kind == KR_JOB_APPEND && y->w == w && y->err == KRAPPY_OK)
            kr_job_fail(y, 0, "%s; nothing of this request was stored", why);
}

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
 * (synced, not yet passed on) here.
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
            run_checkpoint(wr, j);
        }
    }
}

/* Run one round: everything taken from the queue, in order. */
static void run_round(kr_writer *wr, struct kr_job_list *round)
{
    kr_job *run[KR_WRITER_IOV];
    kr_job *j = TAILQ_FIRST(round);
    kr_job *cursors_from = j; /* the cursor jobs from here on are still to write */
    while (j != NULL) {
        switch (j->kind) {
        case KR_JOB_APPEND: {
            size_t n = 0;
            kr_job *x = j;
            while (x != NULL && x->kind == KR_JOB_APPEND && x->w == j->w && n < KR_WRITER_IOV) {
                run[n++] = x;
                x = TAILQ_NEXT(x, link);
            }
            run_appends(wr, run, n);
            j = x;
            continue;
        }
        case KR_JOB_CREATE:
            run_create(j);
            break;
        case KR_JOB_CHECKPOINT:
            j->checkpoint.deferred = checkpoint_sync(wr, j) == 0;
            break;
        case KR_JOB_DELETE:
            run_delete(j);
            break;
        case KR_JOB_LOGGED:
            run_logged(wr, j);
            break;
        case KR_JOB_ROLL:
            run_roll(wr, j);
            break;
        case KR_JOB_TOPIC_DROP:
            /* Everything before it in RocksDB first: cursors, checkpoints. */
            run_cursors(wr, cursors_from, j);
            cursors_from = TAILQ_NEXT(j, link);
            view_catch_up(wr, round, j);
            kr_topic_drop_run(wr->view, j);
            break;
        case KR_JOB_BARRIER:
        case KR_JOB_CURSOR: /* below, all together */
            break;
        }
        j = TAILQ_NEXT(j, link);
    }
    run_cursors(wr, cursors_from, NULL);
    /* One fdatasync per file for all the "sync" appends of the round. */
    TAILQ_FOREACH(j, round, link)
    {
        if (j->kind != KR_JOB_APPEND || !j->append.sync || j->err != KRAPPY_OK)
            continue;
        char msg[256];
        if (wtopic_sync(wr, j->w, msg, sizeof msg) < 0)
            unwind_from(j, msg);
    }
    /* Bound the batches kept for a repair (KR_WRITER_UNSYNCED_MAX). The
     * round's "write" acks stand whatever happens: a sync that fails and
     * cannot be repaired leaves the topic broken, and later appends and
     * checkpoints fail until a sync succeeds - as when a checkpoint's sync
     * fails. */
    TAILQ_FOREACH(j, round, link)
    {
        if (j->kind != KR_JOB_APPEND || j->w == NULL ||
            j->w->unsynced_bytes <= KR_WRITER_UNSYNCED_MAX)
            continue;
        char msg[256];
        if (wtopic_sync(wr, j->w, msg, sizeof msg) < 0)
            kr_log(KR_LOG_ERROR, "syncing a stream failed", KR_LOG_STR("reason", msg));
    }
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
                /* its RocksDB half goes to the view thread */
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

static void *view_main(void *arg)
{
    kr_writer *wr = arg;
    for (;;) {
        pthread_mutex_lock(&wr->mu);
        while (TAILQ_EMPTY(&wr->vqueue) && !wr->vstopping)
            pthread_cond_wait(&wr->vcv, &wr->mu);
        kr_job *j = TAILQ_FIRST(&wr->vqueue);
        if (j == NULL) {
            pthread_mutex_unlock(&wr->mu);
            break;
        }
        TAILQ_REMOVE(&wr->vqueue, j, link);
        wr->vbusy = true;
        pthread_mutex_unlock(&wr->mu);
        j->checkpoint.deferred = false;
        run_checkpoint(wr, j);
        pthread_mutex_lock(&wr->mu);
        TAILQ_INSERT_TAIL(&wr->done, j, link);
        wr->vbusy = false;
        pthread_cond_broadcast(&wr->vidle);
        pthread_mutex_unlock(&wr->mu);
        event_active(wr->done_ev, EV_READ, 0);
    }
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

int kr_writer_start(kr_writer **out, struct event_base *base, kr_view *view, uint64_t segment_bytes,
                    kr_metrics *m, void (*done)(void *arg, struct kr_job_list *jobs), void *arg)
{
    kr_writer *wr = calloc(1, sizeof *wr);
    if (wr == NULL)
        return -1;
    pthread_mutex_init(&wr->mu, NULL);
    pthread_cond_init(&wr->cv, NULL);
    pthread_cond_init(&wr->vcv, NULL);
    pthread_cond_init(&wr->vidle, NULL);
    TAILQ_INIT(&wr->queue);
    TAILQ_INIT(&wr->vqueue);
    TAILQ_INIT(&wr->done);
    wr->view = view;
    wr->segment_bytes = segment_bytes;
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
    wr->m_bytes = kr_counter(m, "krappy_stream_written_bytes_total", NULL,
                             "Bytes appended to stream segments.");
    wr->m_failures = kr_counter(m, "krappy_storage_failures_total", NULL,
                                "Failed stream writes, syncs and view writes.");
    wr->m_checkpoints = kr_counter(m, "krappy_checkpoints_total", NULL,
                                   "Checkpoints of the latest-value view into RocksDB.");
    wr->m_checkpoint_ns = kr_histogram(m, "krappy_checkpoint_duration_seconds", NULL,
                                       "Time to sync streams and write one checkpoint.");
    wr->done_ev = event_new(base, -1, EV_READ, on_done, wr);
    if (wr->done_ev == NULL || pthread_create(&wr->vthread, NULL, view_main, wr) != 0) {
        if (wr->done_ev)
            event_free(wr->done_ev);
        free(wr);
        return -1;
    }
    wr->vstarted = true;
    if (pthread_create(&wr->thread, NULL, writer_main, wr) != 0) {
        kr_writer_stop(wr);
        return -1;
    }
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
