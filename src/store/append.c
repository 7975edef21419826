/*
 * store/append.c - a topic's stream files as the loop writes them: chunks
 * written once per loop turn, rolls, SYNC jobs and what their outcome means
 * (see append.h for the whole path and its failures; the memory it
 * recycles is append_pool.c's).
 */
#include "store/append.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <event2/event.h>

#include "store/store_int.h"
#include "util/byteorder.h"
#include "util/grow.h"
#include "util/io.h"
#include "util/log.h"

/*
 * Batches written since a segment's last good fdatasync are kept for a
 * rewrite (append.h). With only "write" acks the next sync would be the next
 * checkpoint's; past this many bytes kept, a sync is asked for at once. Small
 * on purpose: each sync then writes back a little (a 16 MiB one held the
 * writer in the kernel for ~3 ms of CPU, a core taken from the loop or its
 * clients, and showed in produce->consume p99), and memory stays bounded.
 * The cost: one fdatasync per 2 MiB written, and fewer under load, as
 * syncs asked for while one runs share the next.
 */
#define KR_UNSYNCED_MAX (2u * 1024 * 1024)
/* Past this many, appends wait for a sync before they count (the disk
 * is slow to sync). */
#define KR_UNSYNCED_HOLD (64u * 1024 * 1024)

/* ---- the stream state ---- */

kr_stream *kr_stream_new(kr_topic *t)
{
    kr_stream *st = calloc(1, sizeof *st);
    if (st == NULL)
        return NULL;
    st->dir = t->dir;
    st->t = t;
    TAILQ_INIT(&st->pending);
    TAILQ_INIT(&st->waiting);
    return st;
}

/* A new unsynced segment record, with room for it in the list.
 * @return NULL on ENOMEM. */
static kr_useg *useg_new(kr_stream *st)
{
    kr_useg **n = kr_grow(st->segs, st->n_segs, &st->cap_segs, sizeof *n, 2);
    if (n == NULL)
        return NULL;
    st->segs = n;
    return calloc(1, sizeof(kr_useg));
}

/* Add a segment (made by useg_new) as the active one. */
static kr_useg *push_useg(kr_stream *st, kr_useg *u, kr_fdfile *file, uint64_t base,
                          uint32_t hdr_len, uint64_t size, uint64_t next)
{
    st->segs[st->n_segs++] = u;
    u->base = base;
    u->file = file;
    u->hdr_len = hdr_len;
    u->written = u->synced = size;
    u->written_next = u->synced_next = next;
    TAILQ_INIT(&u->kept);
    return u;
}

int kr_stream_attach(kr_stream *st, kr_fdfile *file, uint64_t base, uint32_t hdr_len, uint64_t size,
                     uint64_t next, uint32_t flags)
{
    kr_useg *u = useg_new(st);
    if (u == NULL)
        return -1;
    st->synced_next = next;
    push_useg(st, u, file, base, hdr_len, size, next);
    u->flags = flags;
    return 0;
}

/*
 * A segment's file is pinned in the store's fdcache only while it is used:
 * written by the loop, or synced by a SYNC job. Between uses the cache may
 * close it - but not while it holds bytes not yet synced (dirty), whose
 * failed writeback a new descriptor would not report (fdcache.h).
 * @return the descriptor, or -1 with errno (the file could not be opened).
 */
static int useg_pin(kr_useg *u)
{
    return kr_fdfile_get(u->file);
}

static void useg_unpin(kr_useg *u)
{
    kr_fdfile_dirty(u->file, u->written > u->synced || u->torn);
    kr_fdfile_put(u->file);
}

static kr_useg *active(kr_stream *st)
{
    return st->segs[st->n_segs - 1];
}

static kr_useg *find_useg(kr_stream *st, uint64_t base)
{
    for (size_t i = 0; i < st->n_segs; i++)
        if (st->segs[i]->base == base)
            return st->segs[i];
    return NULL;
}

/* Drop the whole copy. */
static void kept_clear(kr_store *s, kr_stream *st, kr_useg *u)
{
    kr_kblock *k;
    while ((k = TAILQ_FIRST(&u->kept)) != NULL) {
        TAILQ_REMOVE(&u->kept, k, link);
        kr_kblock_put(s, k);
    }
    st->kept_bytes -= u->kept_len;
    u->kept_len = u->kept_off = 0;
}

/* The segment became durable up to `synced`: drop the copy below it. */
static void release_kept(kr_store *s, kr_stream *st, kr_useg *u)
{
    size_t keep_n = (size_t)(u->written - u->synced);
    size_t drop = u->kept_len > keep_n ? u->kept_len - keep_n : 0;
    u->kept_len -= drop;
    st->kept_bytes -= drop;
    kr_kblock *k;
    while (drop > 0 && (k = TAILQ_FIRST(&u->kept)) != NULL) {
        size_t avail = k->len - u->kept_off;
        if (drop < avail) {
            u->kept_off += drop;
            break;
        }
        drop -= avail;
        TAILQ_REMOVE(&u->kept, k, link);
        kr_kblock_put(s, k);
        u->kept_off = 0;
    }
    if (u->written == u->synced)
        u->unkept = false; /* nothing uncovered is left */
}

/* Keep a copy of bytes just written at the end of the segment; without
 * memory for it the segment cannot be repaired before its next good sync
 * (u->unkept). */
static void keep(kr_store *s, kr_stream *st, kr_useg *u, const uint8_t *p, size_t n)
{
    if (u->unkept)
        return;
    while (n > 0) {
        kr_kblock *k = TAILQ_LAST(&u->kept, kr_kblock_list);
        if (k == NULL || k->len == KR_KBLOCK_BYTES) {
            if ((k = kr_kblock_get(s)) == NULL) {
                u->unkept = true;
                kept_clear(s, st, u);
                return;
            }
            TAILQ_INSERT_TAIL(&u->kept, k, link);
        }
        size_t take = KR_KBLOCK_BYTES - k->len < n ? KR_KBLOCK_BYTES - k->len : n;
        memcpy(k->data + k->len, p, take);
        k->len += take;
        u->kept_len += take;
        st->kept_bytes += take;
        p += take;
        n -= take;
    }
}

/* Take the copy's last n bytes back (the file was cut). */
static void kept_cut(kr_store *s, kr_stream *st, kr_useg *u, size_t n)
{
    if (n > u->kept_len)
        n = u->kept_len;
    u->kept_len -= n;
    st->kept_bytes -= n;
    kr_kblock *k;
    while (n > 0 && (k = TAILQ_LAST(&u->kept, kr_kblock_list)) != NULL) {
        size_t avail = k->len - (k == TAILQ_FIRST(&u->kept) ? u->kept_off : 0);
        if (n < avail) {
            k->len -= n;
            break;
        }
        n -= avail;
        TAILQ_REMOVE(&u->kept, k, link);
        kr_kblock_put(s, k);
    }
    if (TAILQ_EMPTY(&u->kept))
        u->kept_off = 0;
}

/* Write the copy back at the segment's synced length (fd: its file,
 * pinned). @return 0, or -1. */
static int kept_rewrite(kr_useg *u, int fd)
{
    uint64_t pos = u->synced;
    size_t off = u->kept_off;
    kr_kblock *k;
    TAILQ_FOREACH(k, &u->kept, link)
    {
        if (kr_pwrite_all(fd, k->data + off, k->len - off, pos) < 0)
            return -1;
        pos += k->len - off;
        off = 0;
    }
    return 0;
}

/* Drop the oldest unsynced segment (synced and closed): its read-write
 * file goes (the loop reads it through its kr_segment's). */
static void drop_first_useg(kr_store *s, kr_stream *st)
{
    kr_useg *u = st->segs[0];
    kept_clear(s, st, u);
    kr_fdfile_free(u->file);
    free(u);
    memmove(st->segs, st->segs + 1, (st->n_segs - 1) * sizeof *st->segs);
    st->n_segs--;
}

void kr_stream_free(kr_stream *st)
{
    if (st == NULL)
        return;
    for (size_t i = 0; i < st->n_segs; i++) {
        kr_useg *u = st->segs[i];
        kr_kblock *k;
        while ((k = TAILQ_FIRST(&u->kept)) != NULL) {
            TAILQ_REMOVE(&u->kept, k, link);
            free(k);
        }
        kr_fdfile_free(u->file);
        free(u);
    }
    if (st->open != NULL && --st->open->refs == 0)
        kr_chunk_free(st->open);
    free(st->segs);
    free(st);
}

bool kr_stream_busy(const kr_stream *st)
{
    return !TAILQ_EMPTY(&st->pending) || !TAILQ_EMPTY(&st->waiting) || st->sync_job != NULL;
}

/* ---- completing appends ---- */

/* Complete a list of appends that will never count: STORAGE `why`, or OK
 * for markers when markers_ok (they only wait for order). */
static void fail_list(kr_store *s, struct kr_append_list *list, const char *why, bool markers_ok)
{
    kr_append *a;
    while ((a = TAILQ_FIRST(list)) != NULL) {
        TAILQ_REMOVE(list, a, link);
        if (a->count == 0 && markers_ok)
            kr_store_append_visible(s, a);
        else
            kr_store_append_failed(s, a, why);
    }
}

/* Fails every append of st not yet counted - waiting for a sync, or not
 * written yet - and gives their offsets back (markers_ok: fail_list). */
static void fail_uncounted(kr_store *s, kr_stream *st, const char *why, bool markers_ok)
{
    struct kr_append_list w, p;
    TAILQ_INIT(&w);
    TAILQ_INIT(&p);
    TAILQ_CONCAT(&w, &st->waiting, link);
    TAILQ_CONCAT(&p, &st->pending, link);
    if (st->open != NULL) {
        kr_chunk_unref(s, st->open);
        st->open = NULL;
    }
    st->t->assigned = st->t->next;
    fail_list(s, &w, why, markers_ok);
    fail_list(s, &p, why, markers_ok);
}

void kr_stream_fail_all(kr_store *s, kr_stream *st, const char *why)
{
    fail_uncounted(s, st, why, false);
}

/*
 * Let the waiting appends count, in order, up to the first one that needs a
 * sync not yet made (an append behind it waits for its turn, whatever its
 * own ack). @return whether any event became visible.
 */
static bool release_waiting(kr_store *s, kr_stream *st)
{
    bool any = false;
    kr_append *a;
    while ((a = TAILQ_FIRST(&st->waiting)) != NULL) {
        if (a->count > 0 && a->sync && st->synced_next < a->base + a->count)
            break;
        TAILQ_REMOVE(&st->waiting, a, link);
        any = any || a->count > 0;
        kr_store_append_visible(s, a);
    }
    return any;
}

/* ---- writing ---- */

static void queue_flush(kr_store *s, kr_stream *st)
{
    if (st->flush_queued || st->dropped)
        return;
    st->flush_queued = true;
    TAILQ_INSERT_TAIL(&s->flushq, st, flush_link);
    event_active(s->flush_ev, EV_WRITE, 0);
}

void kr_stream_queue(kr_store *s, kr_stream *st, kr_append *a)
{
    if (a->chunk != NULL)
        a->chunk->refs++;
    TAILQ_INSERT_TAIL(&st->pending, a, link);
    queue_flush(s, st);
}

/*
 * Start a new segment at `base` (with header flags `flags`), by the loop:
 * create the file and write its header (page cache; the next SYNC job
 * makes both durable, after syncing the old segment in full). On failure
 * nothing is left behind and the active segment stays.
 * @return 0, or -1 with msg saying why.
 */
static int roll_at(kr_store *s, kr_stream *st, uint64_t base, uint32_t flags, char *msg,
                   size_t msglen)
{
    kr_topic *t = st->t;
    char name[KR_SEG_NAME_BYTES];
    kr_seg_name(name, base);
    int dirfd = -1, fd = -1, err = ENOMEM;
    kr_segment *seg = NULL;
    kr_fdfile *f = NULL;
    kr_useg *nu = useg_new(st);
    if (nu == NULL || kr_topic_reserve_segment(t) < 0)
        goto fail;
    /* The directory for a moment: topics hold no descriptor of it. */
    dirfd = open(st->dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (dirfd >= 0) {
        fd = openat(dirfd, name, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0640);
        if (fd < 0 && errno == EEXIST && unlinkat(dirfd, name, 0) == 0)
            fd = openat(dirfd, name, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0640);
    }
    err = errno;
    if (fd < 0)
        goto fail;
    uint8_t hdr[KR_SEG_HEADER_V2_BYTES];
    kr_seg_header_encode_flags(hdr, base, flags);
    if (kr_pwrite_all(fd, hdr, sizeof hdr, 0) < 0) {
        err = errno;
        goto fail;
    }
    if ((f = kr_fdfile_new(s->files, st->dir, name, O_RDWR)) == NULL ||
        (seg = kr_segment_new(s->files, st->dir, base, sizeof hdr)) == NULL) {
        err = ENOMEM;
        goto fail;
    }
    kr_fdfile_adopt(f, fd); /* pinned once: the file is the cache's now */
    close(dirfd);
    seg->verified = true;               /* ours */
    (void)kr_topic_add_segment(t, seg); /* cannot fail: reserved */
    t->bytes += sizeof hdr;
    active(st)->closed = true;
    push_useg(st, nu, f, base, sizeof hdr, sizeof hdr, base);
    nu->flags = flags;
    useg_unpin(nu);
    st->dir_dirty = true;
    kr_stream_want_sync(s, st); /* the old segment's final sync, soon */
    return 0;
fail:
    free(nu);
    kr_fdfile_free(f);
    if (fd >= 0) {
        close(fd);
        unlinkat(dirfd, name, 0);
    }
    if (dirfd >= 0)
        close(dirfd);
    kr_counter_add(s->m_failures, 1);
    snprintf(msg, msglen, "cannot start a new segment in %s: %s", st->dir, kr_errno_advice(err));
    return -1;
}

/* Start a new segment at the offset after the active one's last batch. */
static int roll(kr_store *s, kr_stream *st, char *msg, size_t msglen)
{
    return roll_at(s, st, active(st)->written_next, 0, msg, msglen);
}

/*
 * Write the chunk at the end of the active segment, resuming after short
 * writes, stopping at the first error. @return the bytes written; *err the
 * errno that stopped it (0 when all were written).
 */
static size_t write_chunk(kr_useg *u, int fd, const kr_chunk *c, int *err)
{
    size_t done = 0;
    *err = 0;
    if (u->torn) {
        /* A failed write left bytes behind that could not be cut then. */
        if (ftruncate(fd, (off_t)u->written) < 0) {
            *err = errno;
            return 0;
        }
        u->torn = false;
    }
    while (done < c->data.len) {
        ssize_t n = pwrite(fd, c->data.data + done, c->data.len - done, (off_t)(u->written + done));
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0) {
            *err = n == 0 ? ENOSPC : errno;
            break;
        }
        done += (size_t)n;
    }
    return done;
}

/* A write stopped short: cut the partial batch off before anything else is
 * appended (or remember to, when the cut fails too). */
static void cut_partial(kr_store *s, kr_stream *st, kr_useg *u, int fd, int err)
{
    kr_counter_add(s->m_failures, 1);
    kr_log(KR_LOG_WARN, "stream write failed", KR_LOG_STR("topic", st->t->name),
           KR_LOG_STR("reason", strerror(err)));
    if (fd < 0 || ftruncate(fd, (off_t)u->written) < 0) {
        u->torn = true;
        kr_log(KR_LOG_ERROR, "cannot cut a partly written batch; the next write tries again",
               KR_LOG_STR("topic", st->t->name), KR_LOG_STR("reason", strerror(errno)));
    }
}

/* The appends of a chunk that was written (`done` bytes of it): those that
 * landed whole count now or wait for a sync; the rest fail with `why`. The
 * segment keeps a copy of what landed first: without one (out of memory)
 * they wait for a sync too, since a failed one could not be repaired. */
static bool account(kr_store *s, kr_stream *st, struct kr_append_list *list, kr_chunk *c,
                    size_t done, const char *why)
{
    kr_useg *u = active(st);
    bool visible = false, lost = false;
    kr_append *a;
    size_t landed = 0;
    TAILQ_FOREACH(a, list, link)
    {
        if (a->count > 0 && a->off + a->len > done)
            break;
        if (a->count > 0)
            landed = a->off + a->len;
    }
    if (c != NULL)
        keep(s, st, u, c->data.data, landed);
    while ((a = TAILQ_FIRST(list)) != NULL) {
        TAILQ_REMOVE(list, a, link);
        if (a->count > 0 && (lost || a->off + a->len > done)) {
            lost = true; /* later ones carry offsets that assumed it */
            kr_store_append_failed(s, a, why);
            continue;
        }
        if (a->count > 0) {
            a->seg_base = u->base;
            a->pos = c->pos + a->off;
            u->written = a->pos + a->len;
            u->written_next = a->base + a->count;
            a->sync = a->sync || st->broken || u->unkept || st->kept_bytes > KR_UNSYNCED_HOLD;
        }
        if (!TAILQ_EMPTY(&st->waiting) || (a->count > 0 && a->sync)) {
            /* Past the hold limit (the disk is slow to sync), appends wait
             * for a sync too: producers feel it instead of memory. */
            TAILQ_INSERT_TAIL(&st->waiting, a, link);
        } else {
            visible = visible || a->count > 0;
            kr_store_append_visible(s, a);
        }
    }
    if (lost) /* their offsets go to the next ones - never back below a gap */
        st->t->assigned = u->written_next > st->gap_to ? u->written_next : st->gap_to;
    return visible;
}

/*
 * A chunk going to u may hold a batch past a gap (kr_stream_gap: every one
 * since the last batch written lies past written_next): flag u
 * KR_SEG_F_COMPACTED first, so that recovery and readers take the gaps.
 * Written before the batches through the same file, the flag is durable
 * by the time their sync is; a crash before they land leaves a flagged
 * segment without gaps, which is harmless. @return 0, or -1 and *err.
 */
static int flag_gaps(kr_stream *st, kr_useg *u, int fd, int *err)
{
    if (st->gap_to <= u->written_next || (u->flags & KR_SEG_F_COMPACTED))
        return 0;
    uint8_t b[4];
    kr_put_be32(b, u->flags | KR_SEG_F_COMPACTED);
    if (kr_pwrite_all(fd, b, sizeof b, KR_SEG_FLAGS_AT) < 0) {
        *err = errno;
        return -1;
    }
    u->flags |= KR_SEG_F_COMPACTED;
    st->t->segs[st->t->n_segs - 1]->compacted = true;
    return 0;
}

/*
 * Write what the topic's appends queued (once per loop turn): roll first
 * when the chunk does not fit the active segment, then one pwrite; then let
 * each append count, wait for a sync, or fail.
 */
static void stream_flush(kr_store *s, kr_stream *st)
{
    if (TAILQ_EMPTY(&st->pending) || st->n_segs == 0)
        return; /* nothing, or the topic's creation still runs */
    /* A batch of an idempotent producer must not reach the file before the
     * producer's registration reaches RocksDB: recovery could not tell
     * whose it is, and the producer's resend would be stored again. Until
     * the writer has written every registration queued for the topic, its
     * appends wait (kr_stream_registered flushes them). */
    if (st->t->registering > 0)
        return;
    kr_chunk *c = st->open;
    char why[320] = "";
    if (c != NULL && c->data.len > 0) {
        kr_useg *u = active(st);
        if (u->written > u->hdr_len &&
            u->written + c->data.len > st->t->cfg.v[KR_TC_SEGMENT_BYTES]) {
            /* Everything that may be taken back stays in one file; and the
             * segment closed by the last roll gets its final sync before the
             * next roll, so that a topic keeps at most two files open for
             * writing (they stay open while dirty: fdcache.h). */
            if (!TAILQ_EMPTY(&st->waiting) || st->n_segs > 1) {
                kr_stream_want_sync(s, st);
                return;
            }
            char msg[256];
            if (roll(s, st, msg, sizeof msg) < 0) {
                kr_log(KR_LOG_WARN, "segment roll failed", KR_LOG_STR("topic", st->t->name),
                       KR_LOG_STR("reason", msg));
                snprintf(why, sizeof why, "%s (nothing of this request was stored)", msg);
            }
        }
    }
    /* Callbacks below may queue new appends: they go to a new chunk. */
    struct kr_append_list list;
    TAILQ_INIT(&list);
    TAILQ_CONCAT(&list, &st->pending, link);
    st->open = NULL;
    size_t done = 0;
    int fd = -1; /* the active segment's while pinned */
    if (c != NULL && why[0] == '\0') {
        kr_useg *u = active(st);
        int err = 0;
        fd = useg_pin(u);
        c->pos = u->written;
        uint64_t warm[KR_FOLD_WARM];
        size_t n_warm = kr_store_fold_warm_slots(st->t, c, warm);
        if (fd < 0)
            err = errno;
        else if (flag_gaps(st, u, fd, &err) == 0)
            done = write_chunk(u, fd, c, &err);
        kr_counter_add(s->m_written, done);
        kr_store_fold_warm_records(st->t, warm, n_warm);
        if (done < c->data.len) {
            snprintf(why, sizeof why,
                     "writing to %s failed (nothing of this request was stored): %s", st->dir,
                     kr_errno_advice(err));
            cut_partial(s, st, u, fd, err);
        }
    }
    bool visible = account(s, st, &list, why[0] == '\0' || done > 0 ? c : NULL, done, why);
    if (fd >= 0)
        useg_unpin(active(st)); /* after account: dirty when it wrote */
    if (visible && c != NULL && done == c->data.len && TAILQ_EMPTY(&st->waiting)) {
        /* All of it visible: a consumer on the tail reads it from memory. */
        kr_topic *t = st->t;
        kr_store_window_follow(s, t->segs[t->n_segs - 1], c->pos, c->data.data, done);
    }
    if (c != NULL)
        kr_chunk_unref(s, c); /* the open reference */
    if (visible) {
        kr_store_count_in(s, st);
        kr_store_wake(s, st->t); /* long polls: once per flush */
    }
    /* A file with unsynced bytes stays open (fdcache.h): when the cache is
     * past its limit, sync it so that it may close it. */
    if (!TAILQ_EMPTY(&st->waiting) || st->kept_bytes > KR_UNSYNCED_MAX ||
        (fd >= 0 && kr_fdcache_crowded(s->files)))
        kr_stream_want_sync(s, st);
}

int kr_stream_roll(kr_store *s, kr_stream *st, char *msg, size_t msglen)
{
    if (st->dropped || st->n_segs == 0 || !TAILQ_EMPTY(&st->pending) ||
        active(st)->written <= active(st)->hdr_len)
        return 0;
    if (!TAILQ_EMPTY(&st->waiting) || st->n_segs > 1) {
        /* As a full segment's roll: after the sync these wait for. */
        kr_stream_want_sync(s, st);
        return 0;
    }
    return roll(s, st, msg, msglen);
}

int kr_stream_skip(kr_store *s, kr_stream *st, uint64_t base, char *msg, size_t msglen)
{
    if (st->dropped || st->n_segs == 0)
        return 1; /* being created (or gone): not yet */
    if (st->flush_queued) {
        TAILQ_REMOVE(&s->flushq, st, flush_link);
        st->flush_queued = false;
    }
    stream_flush(s, st); /* what was queued before it goes below `base` */
    if (!TAILQ_EMPTY(&st->pending) || !TAILQ_EMPTY(&st->waiting) || st->n_segs > 1 ||
        st->t->assigned != st->t->next) {
        /* As a roll: after the sync these wait for. */
        kr_stream_want_sync(s, st);
        return 1;
    }
    return roll_at(s, st, base, KR_SEG_F_SKIPPED, msg, msglen) < 0 ? -1 : 0;
}

/* The offsets a gap skipped (kr_stream_gap) need no sync: once everything
 * written is synced, the stream is durable up to the gap's end - else a
 * gap with nothing after it would hold checkpoints and snapshots back. */
static void sync_covers_gap(kr_stream *st)
{
    if (st->n_segs > 0 && st->synced_next >= active(st)->written_next &&
        st->gap_to > st->synced_next)
        st->synced_next = st->gap_to;
}

int kr_stream_gap(kr_stream *st, uint64_t next)
{
    kr_topic *t = st->t;
    if (st->dropped || st->n_segs == 0)
        return -1;
    if (next <= t->assigned)
        return 0; /* never back */
    bool idle = t->assigned == t->next;
    st->gap_to = next;
    t->assigned = next;
    /* Readers step over a gap in the active segment from now on (its
     * header gets the flag with the batch after the gap). */
    t->segs[t->n_segs - 1]->compacted = true;
    if (idle)
        t->next = next;
    sync_covers_gap(st);
    return 0;
}

bool kr_stream_holds(const kr_stream *st, uint64_t base)
{
    for (size_t i = 0; st != NULL && i < st->n_segs; i++)
        if (st->segs[i]->base == base)
            return true;
    return false;
}

void kr_stream_flush_all(kr_store *s)
{
    kr_stream *st;
    while ((st = TAILQ_FIRST(&s->flushq)) != NULL) {
        TAILQ_REMOVE(&s->flushq, st, flush_link);
        st->flush_queued = false;
        stream_flush(s, st);
    }
}

void kr_stream_on_flush(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    kr_stream_flush_all(arg);
}

void kr_stream_registered(kr_store *s, kr_stream *st)
{
    queue_flush(s, st);
}

void kr_stream_created(kr_store *s, kr_stream *st, bool ok)
{
    if (ok)
        queue_flush(s, st);
    else
        kr_stream_fail_all(s, st, "the topic could not be created on disk; register again");
}

/* ---- syncing ---- */

/* Fill one part of a SYNC job (its descriptor is pinned later: sync_pin).
 * @return 0, or -1 on ENOMEM. */
static int sync_part(kr_stream *st, const kr_useg *u, kr_sync_seg *g)
{
    g->fd = -1;
    g->base = u->base;
    g->bytes = u->written;
    g->next = u->written_next;
    g->hdr_len = u->hdr_len;
    g->final = u->closed;
    if (!g->final)
        return 0;
    /* The loop's record of a closed segment has every batch of it (a roll
     * waits for the waiting appends): its hints are the index to leave. */
    kr_topic *t = st->t;
    for (size_t i = 0; i < t->n_segs; i++) {
        kr_segment *seg = t->segs[i];
        if (seg->base != u->base)
            continue;
        g->im = (kr_index_meta){.next = seg->next, .max_ts = seg->max_ts};
        return kr_index_copy(&g->idx, &seg->idx);
    }
    return 0;
}

/* A segment with nothing written since its last good sync needs no
 * fdatasync (its part only reports how far it is synced). */
static bool useg_clean(const kr_useg *u)
{
    return !u->closed && !u->torn && u->written == u->synced && u->written_next == u->synced_next;
}

/* Unpin the files of the job's first n parts that were pinned. */
static void sync_unpin(kr_stream *st, kr_job *j, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        kr_useg *u = j->sync.segs[i].fd >= 0 ? find_useg(st, j->sync.segs[i].base) : NULL;
        if (u != NULL)
            useg_unpin(u);
        j->sync.segs[i].fd = -1;
    }
}

/* Pin the file of every part that needs an fdatasync: the writer borrows
 * the descriptors until the job is back. @return 0, or -1 (none pinned). */
static int sync_pin(kr_stream *st, kr_job *j)
{
    for (size_t i = 0; i < j->sync.n; i++) {
        kr_useg *u = st->segs[i];
        if (useg_clean(u))
            continue;
        if ((j->sync.segs[i].fd = useg_pin(u)) < 0) {
            kr_log(KR_LOG_WARN, "cannot open a segment to sync it; the checkpoint tick tries again",
                   KR_LOG_STR("topic", st->t->name), KR_LOG_U64("segment", u->base),
                   KR_LOG_STR("reason", strerror(errno)));
            sync_unpin(st, j, i);
            return -1;
        }
    }
    return 0;
}

/* Submit a SYNC job for everything written so far; when that cannot be done
 * now, it is wanted (the next completion or tick tries again). */
static void sync_start(kr_store *s, kr_stream *st)
{
    st->sync_wanted = true;
    if (st->sync_job != NULL || s->draining || s->writer == NULL || st->n_segs == 0 || st->dropped)
        return;
    kr_job *j = kr_job_new(KR_JOB_SYNC, st->t);
    kr_sync_seg *segs = calloc(st->n_segs, sizeof *segs);
    if (j == NULL || segs == NULL) {
        kr_job_free(j);
        free(segs);
        return;
    }
    j->sync.segs = segs;
    for (size_t i = 0; i < st->n_segs; i++) {
        j->sync.n++;
        if (sync_part(st, st->segs[i], &segs[i]) < 0) {
            kr_job_free(j);
            return;
        }
    }
    if (sync_pin(st, j) < 0) {
        kr_job_free(j);
        return;
    }
    j->sync.dir = st->dir;
    j->sync.sync_dir = st->dir_dirty;
    st->dir_dirty = false;
    st->sync_job = j;
    st->sync_wanted = false;
    kr_writer_submit(s->writer, j);
}

void kr_stream_want_sync(kr_store *s, kr_stream *st)
{
    sync_start(s, st);
}

uint64_t kr_store_synced(const kr_topic *t)
{
    return t->stream != NULL ? t->stream->synced_next : 0;
}

void kr_store_sync(kr_store *s, kr_topic *t)
{
    if (t->stream != NULL)
        sync_start(s, t->stream);
}

/*
 * A failed fdatasync may have dropped the segment's dirty pages: cut it back
 * to its last synced length and write the kept chunks again (and the header,
 * when nothing of the segment was ever synced). @return 0, or -1.
 */
static int repair(kr_useg *u, int fd)
{
    if (u->unkept) {
        errno = ENOMEM; /* nothing to write back */
        return -1;
    }
    if (ftruncate(fd, (off_t)u->synced) < 0)
        return -1;
    if (u->synced == u->hdr_len && u->synced_next == u->base && u->hdr_len > KR_SEG_HEADER_BYTES) {
        uint8_t hdr[KR_SEG_HEADER_V2_BYTES];
        kr_seg_header_encode_flags(hdr, u->base, u->flags);
        if (kr_pwrite_all(fd, hdr, sizeof hdr, 0) < 0)
            return -1;
    }
    if (kept_rewrite(u, fd) < 0)
        return -1;
    u->torn = false;
    return 0;
}

/*
 * The sync failed again (or could not be repaired): take back the appends
 * still waiting - the file is cut where the first began, they and the ones
 * queued behind them fail - and mark the topic broken: from now on an
 * append counts only once a sync succeeds (append.h).
 */
static void give_up(kr_store *s, kr_stream *st, const char *why)
{
    kr_log(KR_LOG_ERROR, "syncing a stream failed; its waiting appends are taken back",
           KR_LOG_STR("topic", st->t->name), KR_LOG_STR("reason", why));
    st->broken = true;
    st->sync_fails = 0;
    kr_append *a;
    TAILQ_FOREACH(a, &st->waiting, link)
    {
        if (a->count > 0)
            break;
    }
    if (a != NULL) {
        /* Every waiting append is in the active segment (roll waits). */
        kr_useg *u = active(st);
        int fd = useg_pin(u);
        if (fd < 0 || ftruncate(fd, (off_t)a->pos) < 0) {
            u->torn = true;
            kr_log(KR_LOG_ERROR, "cannot take back unsynced batches; the next write tries again",
                   KR_LOG_STR("topic", st->t->name), KR_LOG_STR("reason", strerror(errno)));
        }
        kept_cut(s, st, u, (size_t)(u->written - a->pos));
        u->written = a->pos;
        u->written_next = a->base;
        if (fd >= 0)
            useg_unpin(u);
    }
    char msg[400];
    snprintf(msg, sizeof msg, "%s; nothing of this request was stored", why);
    fail_uncounted(s, st, msg, true);
    if (st->ckpt_wait) {
        st->ckpt_wait = false;
        kr_store_checkpoint_part(s, false, why);
    }
}

/* A segment synced up to `bytes`, offsets below `next`. */
static void useg_synced(kr_store *s, kr_stream *st, kr_useg *u, uint64_t bytes, uint64_t next)
{
    if (bytes > u->synced) {
        u->synced = bytes;
        u->synced_next = next;
    }
    release_kept(s, st, u);
}

void kr_stream_synced(kr_store *s, kr_job *j)
{
    kr_stream *st = j->t->stream;
    kr_job_sync *sj = &j->sync;
    st->sync_job = NULL;
    int err = sj->dir_err;
    bool ok = err == 0, repaired = true;
    if (sj->dir_err != 0)
        st->dir_dirty = true;
    for (size_t i = 0; i < sj->n; i++) {
        kr_sync_seg *g = &sj->segs[i];
        kr_useg *u = find_useg(st, g->base);
        if (u == NULL)
            continue;
        if (g->err == 0) {
            useg_synced(s, st, u, g->bytes, g->next);
            u->final_done = u->final_done || g->final;
        } else if (g->err == ECANCELED) {
            ok = false;
        } else {
            ok = false;
            err = g->err;
            kr_log(KR_LOG_WARN, "fdatasync failed; rewriting unsynced batches from memory",
                   KR_LOG_STR("topic", st->t->name), KR_LOG_U64("segment", u->base),
                   KR_LOG_STR("reason", strerror(g->err)));
            if (repair(u, g->fd) < 0) {
                repaired = false;
                err = errno ? errno : g->err;
            }
        }
        if (g->fd >= 0)
            useg_unpin(u); /* the job's pin */
    }
    /* Closed segments synced in full leave the list, oldest first. */
    while (st->n_segs > 1 && st->segs[0]->final_done)
        drop_first_useg(s, st);
    if (ok) {
        st->sync_fails = 0;
        st->broken = false;
        st->synced_next = sj->segs[sj->n - 1].next;
        sync_covers_gap(st);
    } else {
        st->sync_fails++;
        char why[320];
        snprintf(why, sizeof why, "syncing %s failed: %s", st->dir, kr_errno_advice(err));
        if (!repaired || st->sync_fails >= 2)
            give_up(s, st, why);
        else
            st->sync_wanted = true; /* once more, after the rewrite */
    }
    if (release_waiting(s, st)) {
        kr_store_count_in(s, st);
        kr_store_wake(s, st->t);
    }
    if (st->ckpt_wait && st->synced_next >= st->ckpt_target) {
        st->ckpt_wait = false;
        kr_store_checkpoint_part(s, true, NULL);
    }
    if (st->dropped) {
        /* Deleted: no sync comes after this one. */
        fail_uncounted(s, st, "the topic was deleted before this PUBLISH was synced", true);
        return;
    }
    if (!TAILQ_EMPTY(&st->waiting) || st->sync_wanted || st->ckpt_wait)
        sync_start(s, st);
    queue_flush(s, st); /* a roll may have waited for this */
}

/* ---- the topic deleted ---- */

void kr_stream_drop(kr_store *s, kr_stream *st, kr_job *j)
{
    if (st->flush_queued) {
        TAILQ_REMOVE(&s->flushq, st, flush_link);
        st->flush_queued = false;
    }
    stream_flush(s, st); /* what came before the deletion, answered */
    if (!TAILQ_EMPTY(&st->waiting) && st->sync_job == NULL)
        sync_start(s, st); /* before the drop, in the writer's order */
    st->dropped = true;
    kr_store_checkpoint_forget(s, st->t);
    kr_writer_submit(s->writer, j);
}
