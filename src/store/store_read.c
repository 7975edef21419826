/*
 * store/store_read.c - reading: FETCH by offset (batch payloads sent as they
 * are stored, large ones with sendfile), long-poll waiters, GET through the
 * overlays into the view. SCAN cursors are in store_scan.c.
 */
#include "store/store_int.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <event2/buffer.h>

#include "util/clock.h"
#include "util/log.h"

/* FETCH replies keep this much of max_frame for the map around the events. */
#define KR_FETCH_REPLY_OVERHEAD 128

void kr_segment_free(kr_segment *seg)
{
    if (seg == NULL)
        return;
    kr_fdfile_free(seg->file); /* at once, or once replies from it are out */
    kr_index_free(&seg->idx);
    free(seg);
}

/* The hints a verifying scan finds, checked against those BASE.idx gave. */
typedef struct rehint {
    kr_index idx;        /* one per batch found, as kr_index_add keeps them */
    const kr_index *old; /* the loaded hints */
    size_t next_old;
    bool wrong; /* an old hint names no batch where it says */
} rehint;

static void rehint_batch(void *arg, const kr_batch_hdr *h, uint64_t pos)
{
    rehint *rh = arg;
    kr_index_add(&rh->idx, h->base, pos);
    const kr_index *old = rh->old;
    for (; rh->next_old < old->n && old->e[rh->next_old].pos <= pos; rh->next_old++)
        if (old->e[rh->next_old].pos != pos || old->e[rh->next_old].offset != h->base)
            rh->wrong = true;
}

/*
 * A wrong BASE.idx - its CRC right, its hints in order, but one pointing
 * where no batch of that offset starts - was believed at start-up: log it,
 * and delete the file (the next start scans the segment instead); the
 * caller has replaced the hints.
 */
static void drop_wrong_index(kr_store *s, kr_topic *t, const kr_segment *seg)
{
    char name[KR_INDEX_NAME_BYTES];
    kr_index_file_name(name, seg->base);
    kr_log(KR_LOG_WARN,
           "a segment's index was wrong; rebuilt from the segment, and its file deleted",
           KR_LOG_STR("topic", t->name), KR_LOG_STR("file", name));
    char *path = kr_store_path(t->dir, name);
    kr_job *j = s->writer != NULL && path != NULL ? kr_job_new(KR_JOB_DELETE, t) : NULL;
    char **paths = j != NULL ? calloc(1, sizeof *paths) : NULL;
    if (paths != NULL) { /* the writer deletes it: the loop does not touch the disk */
        paths[0] = path;
        j->del.paths = paths;
        j->del.n = 1;
        kr_writer_submit(s->writer, j);
        return;
    }
    kr_job_free(j);
    if (path != NULL && s->writer == NULL) /* at start-up, before the writer runs */
        (void)unlink(path);
    free(path);
}

/*
 * Verify a segment not written by this process on its first read: a full
 * scan. Bad batches become corrupt ranges and are never served, and the
 * segment's hints are rebuilt from what the scan found: BASE.idx is only a
 * hint, and a FETCH that believed a wrong one answered events it did not
 * send (a count larger than the events that followed).
 */
int kr_segment_verify(kr_store *s, kr_topic *t, kr_segment *seg)
{
    kr_seg_scan scan;
    int fd = kr_fdfile_get(seg->file);
    if (fd < 0)
        return -1;
    rehint rh = {.old = &seg->idx};
    int rc = kr_seg_scan_fd(fd, &scan, rehint_batch, &rh);
    kr_fdfile_put(seg->file);
    if (rc < 0) {
        kr_index_free(&rh.idx);
        return -1;
    }
    if (rh.wrong || rh.next_old < seg->idx.n)
        drop_wrong_index(s, t, seg);
    kr_index_free(&seg->idx);
    seg->idx = rh.idx;
    seg->start = scan.hdr.len;
    seg->compacted = scan.compacted; /* a hint does not say: gaps are allowed from now on */
    seg->n_corrupt = scan.n_corrupt;
    memcpy(seg->corrupt, scan.corrupt, sizeof scan.corrupt);
    if (scan.good_end < seg->size && seg->n_corrupt < KR_SEG_MAX_CORRUPT) {
        kr_corrupt *c = &seg->corrupt[seg->n_corrupt++];
        c->pos = scan.good_end;
        c->end = seg->size;
        c->first = scan.next;
        c->next = seg->next;
    }
    char name[KR_SEG_NAME_BYTES];
    kr_seg_name(name, seg->base);
    for (size_t c = 0; c < seg->n_corrupt; c++)
        kr_log(KR_LOG_ERROR, "corrupt batch found on first read; its events will not be served",
               KR_LOG_STR("topic", t->name), KR_LOG_STR("segment", name),
               KR_LOG_U64("first", seg->corrupt[c].first),
               KR_LOG_U64("next", seg->corrupt[c].next));
    seg->verified = true;
    return 0;
}

static size_t find_segment(const kr_topic *t, uint64_t offset)
{
    size_t lo = 0, hi = t->n_segs;
    while (hi - lo > 1) {
        size_t mid = (lo + hi) / 2;
        if (t->segs[mid]->base <= offset)
            lo = mid;
        else
            hi = mid;
    }
    return lo;
}

/*
 * pread up to n bytes of seg at pos through its file in the store's fdcache
 * (pinned for the read). @return the bytes read, at least `least`; or -1
 * with errno (EIO when the file holds fewer).
 */
static ssize_t seg_pread(const kr_segment *seg, void *buf, size_t n, uint64_t pos, size_t least)
{
    int fd = kr_fdfile_get(seg->file);
    if (fd < 0)
        return -1;
    ssize_t r = pread(fd, buf, n, (off_t)pos);
    int e = r >= 0 && (size_t)r < least ? EIO : errno;
    kr_fdfile_put(seg->file);
    if (r < 0 || (size_t)r < least) {
        errno = e;
        return -1;
    }
    return r;
}

/*
 * The read window: the last KR_FETCH_WINDOW bytes of visible stream read
 * from a segment, kept for the next reads. A FETCH walks batch headers one
 * after the other, and a pread for each - for batches of one event, one
 * per event, on the tail a consumer follows - cost more than the rest of
 * the FETCH; one pread now covers hundreds of headers and, when the events
 * are small, their bytes too (kr_store_fetch_emit). Visible bytes never
 * change, so the window stays good while its segment lives (segments are
 * told apart by id: a freed one's memory may come back as another).
 * @return the n bytes at pos (pos + n <= seg->size), or NULL with errno
 *         (also when n is larger than the window: the caller preads).
 */
static const uint8_t *win_read(kr_store *s, const kr_segment *seg, uint64_t pos, size_t n)
{
    if (s->win_seg == seg->id && pos >= s->win_pos && pos + n <= s->win_pos + s->win.len)
        return s->win.data + (pos - s->win_pos);
    size_t want = KR_FETCH_WINDOW;
    if (n > want) {
        errno = EFBIG;
        return NULL;
    }
    if (seg->size - pos < want)
        want = (size_t)(seg->size - pos);
    kr_buf_reset(&s->win);
    s->win_seg = 0;
    if (kr_buf_reserve(&s->win, KR_FETCH_WINDOW) < 0) {
        errno = ENOMEM;
        return NULL;
    }
    ssize_t r = seg_pread(seg, s->win.data, want, pos, n);
    if (r < 0)
        return NULL;
    s->win.len = (size_t)r;
    s->win_seg = seg->id;
    s->win_pos = pos;
    return s->win.data;
}

void kr_store_window_follow(kr_store *s, const kr_segment *seg, uint64_t pos, const uint8_t *p,
                            size_t len)
{
    if (s->win_seg != seg->id || s->win_pos + s->win.len != pos || len > KR_FETCH_WINDOW ||
        s->win.cap < KR_FETCH_WINDOW)
        return;
    if (s->win.len + len > KR_FETCH_WINDOW) {
        /* Keep the newest half of the room for a consumer a little behind:
         * one copy every few turns instead of a slide (a copy of it all)
         * each turn. */
        size_t keep = (KR_FETCH_WINDOW - len) / 2;
        if (keep > s->win.len)
            keep = s->win.len;
        memmove(s->win.data, s->win.data + (s->win.len - keep), keep);
        s->win_pos += s->win.len - keep;
        s->win.len = keep;
    }
    memcpy(s->win.data + s->win.len, p, len);
    s->win.len += len;
}

/* Copy bytes [from, to) of seg into the read buffer. @return 0 or -1. */
static int read_range(kr_store *s, const kr_segment *seg, uint64_t from, uint64_t to)
{
    kr_buf_reset(&s->readbuf);
    if (kr_buf_reserve(&s->readbuf, (size_t)(to - from)) < 0) {
        errno = ENOMEM;
        return -1;
    }
    size_t n = (size_t)(to - from);
    return seg_pread(seg, s->readbuf.data, n, from, n) < 0 ? -1 : 0;
}

/* Read a batch payload: through the window, or (larger than it) into the
 * store's read buffer.
 * @return the bytes, or NULL with errno (EIO for a file shorter than the
 *         batch). */
static const uint8_t *read_payload(kr_store *s, const kr_segment *seg, uint64_t pos, uint32_t len)
{
    if (len <= KR_FETCH_WINDOW && pos + len <= seg->size)
        return win_read(s, seg, pos, len);
    return read_range(s, seg, pos, pos + len) == 0 ? s->readbuf.data : NULL;
}

/* A FETCH being located: its limits, its result so far, and where the
 * batch after the last one taken starts. */
typedef struct fetch {
    kr_store *s;
    kr_topic *t;
    uint64_t max;    /* events at most */
    uint64_t budget; /* bytes at most (one event whatever its size) */
    kr_fetch_result *out;
    char *msg;
    size_t msglen;
    /* The next batch is read from there rather than found again from the
     * sparse index, which cost a pread per batch header between the hint
     * and the offset - for batches of one event, a dozen per event. */
    const kr_segment *after_seg;
    uint64_t after_pos;
    bool whole;       /* batches after the first whole or not at all */
    uint64_t stretch; /* whole: bytes the first batch may take whole (>= budget) */
} fetch;

/* Say why, set where good events resume; @return KRAPPY_E_STORAGE. */
static krappy_err fetch_fail(fetch *f, uint64_t next, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static krappy_err fetch_fail(fetch *f, uint64_t next, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(f->msg, f->msglen, fmt, ap);
    va_end(ap);
    f->out->next = next;
    return KRAPPY_E_STORAGE;
}

/*
 * Move to the segment holding `cur` (from *si on) and make sure it may be
 * served: verified, and `cur` not in a corrupt range.
 * @return 1 when segs[*si] holds cur; 0 to stop here (what was taken so
 *         far is the answer); -1 on failure (msg filled).
 */
static int enter_segment(fetch *f, size_t *si, uint64_t cur)
{
    kr_topic *t = f->t;
    while (cur >= t->segs[*si]->next) {
        if (*si + 1 >= t->n_segs)
            return 0;
        ++*si;
        if (t->segs[*si]->base != cur) {
            if (f->out->count > 0)
                return 0;
            fetch_fail(f, t->segs[*si]->base,
                       "offsets %llu..%llu are missing from the stream; FETCH from the second "
                       "to skip them",
                       (unsigned long long)cur, (unsigned long long)t->segs[*si]->base);
            return -1;
        }
    }
    kr_segment *seg = t->segs[*si];
    if (!seg->verified && kr_segment_verify(f->s, t, seg) < 0) {
        char name[KR_SEG_NAME_BYTES];
        kr_seg_name(name, seg->base);
        fetch_fail(f, cur,
                   "reading offsets %llu.. failed: segment %s of topic %s cannot be read: %s",
                   (unsigned long long)cur, name, t->name, strerror(errno));
        return -1;
    }
    for (size_t c = 0; c < seg->n_corrupt; c++) {
        const kr_corrupt *k = &seg->corrupt[c];
        if (cur >= k->first && cur < k->next) {
            if (f->out->count > 0)
                return 0;
            fetch_fail(f, k->next,
                       "offsets %llu..%llu are corrupt on disk and cannot be served; FETCH from "
                       "the second to skip them",
                       (unsigned long long)k->first, (unsigned long long)k->next);
            return -1;
        }
    }
    return 1;
}

/* Fail for the batch at pos of seg that should hold `cur`. */
static int batch_unreadable(fetch *f, const kr_segment *seg, uint64_t cur, uint64_t pos,
                            const char *why)
{
    char name[KR_SEG_NAME_BYTES];
    kr_seg_name(name, seg->base);
    fetch_fail(f, cur,
               "the batch holding offset %llu cannot be read at byte %llu of segment %s of "
               "topic %s (%s); the stream may be damaged",
               (unsigned long long)cur, (unsigned long long)pos, name, f->t->name, why);
    return -1;
}

/*
 * Find the batch holding `cur` in seg: from the end of the batch taken
 * last, or from the index hint, walking batch headers (over corrupt
 * ranges). In a compacted segment `cur` may have been removed: the batch
 * after it is taken (its base above cur), or, past the last batch, none.
 * @return 0 with *pos and *h, 1 when a compacted segment holds nothing
 *         from cur on, or -1 (msg filled).
 */
static int find_batch(fetch *f, const kr_segment *seg, uint64_t cur, uint64_t *pos, kr_batch_hdr *h)
{
    uint64_t p = seg == f->after_seg ? f->after_pos : kr_index_find(&seg->idx, cur);
    if (p < seg->start)
        p = seg->start;
    for (;;) {
        for (size_t c = 0; c < seg->n_corrupt; c++)
            if (p >= seg->corrupt[c].pos && p < seg->corrupt[c].end)
                p = seg->corrupt[c].end;
        if (seg->compacted && p >= seg->size)
            return 1;
        if (p + KR_BATCH_HEADER_BYTES > seg->size)
            return batch_unreadable(f, seg, cur, p, "the segment ends before it");
        size_t want =
            seg->size - p < KR_BATCH_HEADER_MAX ? (size_t)(seg->size - p) : KR_BATCH_HEADER_MAX;
        const uint8_t *hb = win_read(f->s, seg, p, want);
        if (hb == NULL)
            return batch_unreadable(f, seg, cur, p,
                                    errno == EIO ? "the file is shorter than its size"
                                                 : strerror(errno));
        if (kr_batch_header_decode(hb, want, h) < 0)
            return batch_unreadable(f, seg, cur, p, "not a batch header");
        if (h->base > cur && !seg->compacted) {
            /* Never past the offset asked for: the events counted in the
             * reply must be the ones sent (hints are rebuilt when a segment
             * is verified, so this is a guard). */
            return batch_unreadable(f, seg, cur, p, "the batch found there starts after it");
        }
        if (h->base + h->count > cur)
            break;
        p += h->hlen + h->len;
    }
    *pos = p;
    return 0;
}

/*
 * Take events from `cur` on out of the batch at pos (header h): all the
 * rest of it when the limits allow, else as many as fit (walking its
 * events). Adds one range. @return the events taken (0: stop, nothing
 * fits), or -1 (msg filled).
 */
static long take_events(fetch *f, kr_segment *seg, uint64_t pos, const kr_batch_hdr *h,
                        uint64_t cur)
{
    kr_fetch_result *out = f->out;
    uint64_t payload = pos + h->hlen, start = payload;
    const uint8_t *buf = NULL;
    if (cur > h->base) {
        buf = read_payload(f->s, seg, payload, h->len);
        if (buf == NULL)
            return batch_unreadable(f, seg, cur, pos, strerror(errno));
        long at = kr_batch_locate(h, buf, cur);
        if (at < 0)
            return batch_unreadable(f, seg, cur, pos, "its events do not parse");
        start = payload + (uint64_t)at;
    }
    uint64_t avail = h->base + h->count - cur, want = f->max - out->count;
    uint64_t all_bytes = payload + h->len - start;
    uint64_t take, len;
    uint64_t room = out->count == 0 ? f->stretch : f->budget;
    if (avail <= want && out->bytes + all_bytes <= room) {
        take = avail;
        len = all_bytes;
    } else if (f->whole && out->count > 0) {
        return 0;
    } else {
        /* Cut inside the batch: walk its events. */
        if (buf == NULL && (buf = read_payload(f->s, seg, payload, h->len)) == NULL)
            return batch_unreadable(f, seg, cur, pos, strerror(errno));
        const uint8_t *p = buf + (start - payload), *end = buf + h->len;
        take = len = 0;
        while (take < avail && take < want) {
            kr_cbor_item ev;
            if (kr_cbor_read(p, (size_t)(end - p), &ev) < 0)
                break;
            if (out->count + take > 0 && out->bytes + len + ev.raw_len > f->budget)
                break;
            len += ev.raw_len;
            p += ev.raw_len;
            take++;
        }
        if (take == 0)
            return 0;
    }
    out->ranges[out->n_ranges++] =
        (kr_fetch_range){.seg = seg, .pos = start, .len = len, .first = cur, .count = take};
    out->count += take;
    out->bytes += len;
    return (long)take;
}

/*
 * Cut the last range taken to its first `keep` events (a POLL slice ends
 * inside its batch), walking them. @return 0, or -1 (msg filled).
 */
static int trim_range(fetch *f, kr_fetch_range *r, uint64_t keep)
{
    kr_fetch_result *out = f->out;
    kr_buf_reset(&f->s->readbuf);
    if (kr_buf_reserve(&f->s->readbuf, (size_t)r->len) < 0)
        return batch_unreadable(f, r->seg, r->first, r->pos, "out of memory");
    int fd = kr_fdfile_get(r->seg->file);
    if (fd < 0)
        return batch_unreadable(f, r->seg, r->first, r->pos, strerror(errno));
    ssize_t n = pread(fd, f->s->readbuf.data, (size_t)r->len, (off_t)r->pos);
    kr_fdfile_put(r->seg->file);
    if (n != (ssize_t)r->len)
        return batch_unreadable(f, r->seg, r->first, r->pos, "a short read");
    const uint8_t *p = f->s->readbuf.data, *e = p + r->len;
    uint64_t len = 0;
    for (uint64_t i = 0; i < keep; i++) {
        kr_cbor_item ev;
        if (kr_cbor_read(p + len, (size_t)(e - p - len), &ev) < 0)
            return batch_unreadable(f, r->seg, r->first, r->pos, "its events do not parse");
        len += ev.raw_len;
    }
    out->count -= r->count - keep;
    out->bytes -= r->len - len;
    r->count = keep;
    r->len = len;
    return 0;
}

krappy_err kr_store_fetch(kr_store *s, kr_topic *t, uint64_t offset, uint64_t max,
                          uint64_t max_bytes, kr_fetch_result *out, char *msg, size_t msglen)
{
    return kr_store_fetch_range(s, t, offset, UINT64_MAX, max, max_bytes, out, msg, msglen);
}

/* kr_store_fetch_range, or kr_store_fetch_batches when whole. */
static krappy_err locate(kr_store *s, kr_topic *t, uint64_t offset, uint64_t end, uint64_t max,
                         uint64_t max_bytes, bool whole, uint64_t stretch, kr_fetch_result *out,
                         char *msg, size_t msglen)
{
    out->count = out->bytes = 0;
    out->n_ranges = 0;
    out->next = out->scanned = offset;
    out->ranges = s->ranges;
    if (offset < t->first || offset > t->next) {
        snprintf(msg, msglen,
                 "offset %llu is outside topic %s's retained range: first %llu, next %llu",
                 (unsigned long long)offset, t->name, (unsigned long long)t->first,
                 (unsigned long long)t->next);
        return KRAPPY_E_OFFSET_OUT_OF_RANGE;
    }
    if (max > s->o.max_events)
        max = s->o.max_events;
    uint64_t cap = (uint64_t)s->o.max_frame - KR_FETCH_REPLY_OVERHEAD;
    if (max_bytes == 0)
        max = 1;
    fetch f = {.s = s,
               .t = t,
               .max = max,
               .budget = max_bytes == 0 || max_bytes > cap ? cap : max_bytes,
               .out = out,
               .msg = msg,
               .msglen = msglen,
               .whole = whole};
    f.stretch = whole && stretch > f.budget ? (stretch < cap ? stretch : cap) : f.budget;

    uint64_t cur = offset, stop = end < t->next ? end : t->next;
    size_t si = find_segment(t, cur);
    while (out->count < max && cur < stop && out->n_ranges < KR_FETCH_MAX_RANGES) {
        int in = enter_segment(&f, &si, cur);
        if (in < 0)
            return KRAPPY_E_STORAGE;
        if (in == 0)
            break;
        kr_segment *seg = t->segs[si];
        uint64_t pos;
        kr_batch_hdr h;
        int found = find_batch(&f, seg, cur, &pos, &h);
        if (found < 0)
            return KRAPPY_E_STORAGE;
        if (found > 0 || h.base >= stop) {
            /* Removed by compaction up to the segment's end, or the slice's. */
            cur = found > 0 && seg->next < stop ? seg->next : stop;
            continue;
        }
        if (h.base > cur)
            cur = h.base; /* offsets compaction removed */
        long took = take_events(&f, seg, pos, &h, cur);
        if (took < 0)
            return KRAPPY_E_STORAGE;
        if (took == 0)
            break;
        if (cur + (uint64_t)took > stop) {
            /* A batch straddling the slice's end (cur < stop here): keep
             * its part below. */
            kr_fetch_range *r = &out->ranges[out->n_ranges - 1];
            if (trim_range(&f, r, stop - cur) < 0)
                return KRAPPY_E_STORAGE;
            took = (long)(stop - cur);
        }
        cur += (uint64_t)took;
        out->next = cur;
        if (cur < h.base + h.count)
            break; /* a limit was reached inside the batch */
        f.after_seg = seg;
        f.after_pos = pos + h.hlen + h.len;
    }
    out->scanned = cur > out->next ? cur : out->next;
    kr_counter_add(t->m_events_out, out->count);
    kr_counter_add(t->m_bytes_out, out->bytes);
    return KRAPPY_OK;
}

krappy_err kr_store_fetch_range(kr_store *s, kr_topic *t, uint64_t offset, uint64_t end,
                                uint64_t max, uint64_t max_bytes, kr_fetch_result *out, char *msg,
                                size_t msglen)
{
    return locate(s, t, offset, end, max, max_bytes, false, 0, out, msg, msglen);
}

krappy_err kr_store_fetch_batches(kr_store *s, kr_topic *t, uint64_t offset, uint64_t max,
                                  uint64_t max_bytes, uint64_t stretch, kr_fetch_result *out,
                                  char *msg, size_t msglen)
{
    return locate(s, t, offset, UINT64_MAX, max, max_bytes, true, stretch, out, msg, msglen);
}

/* libevent is done with a sendfile handle (the reply was sent or
 * dropped): its file may close again. */
static void fs_done(const struct evbuffer_file_segment *fs, int flags, void *arg)
{
    (void)fs;
    (void)flags;
    kr_fdfile_put(arg);
}

/*
 * A sendfile handle on the whole visible segment. It pins the segment's
 * file until libevent lets it go; NULL when the file cache has no room to
 * spare for that (the caller copies instead) or on failure.
 */
static struct evbuffer_file_segment *segment_fs(kr_store *s, kr_segment *seg)
{
    if (!kr_fdcache_has_room(s->files))
        return NULL;
    int fd = kr_fdfile_get(seg->file);
    if (fd < 0)
        return NULL;
    struct evbuffer_file_segment *fs = evbuffer_file_segment_new(fd, 0, (ev_off_t)seg->size, 0);
    if (fs == NULL) {
        kr_fdfile_put(seg->file);
        return NULL;
    }
    evbuffer_file_segment_add_cleanup_cb(fs, fs_done, seg->file);
    return fs;
}

/* The run of ranges from i on that share one sendfile handle: large ones
 * of the same segment. @return the index after the run. */
static size_t sendfile_run(const kr_fetch_result *res, size_t i)
{
    size_t k = i + 1;
    while (k < res->n_ranges && res->ranges[k].seg == res->ranges[i].seg &&
           res->ranges[k].len >= KR_FETCH_COPY_BELOW)
        k++;
    return k;
}

int kr_store_fetch_emit(kr_store *s, const kr_fetch_result *res, struct evbuffer *buf, char *msg,
                        size_t msglen)
{
    size_t i = 0;
    while (i < res->n_ranges) {
        const kr_fetch_range *r = &res->ranges[i];
        struct evbuffer_file_segment *fs =
            r->len >= KR_FETCH_COPY_BELOW ? segment_fs(s, r->seg) : NULL;
        if (fs != NULL) {
            size_t k = sendfile_run(res, i);
            int rc = 0;
            for (; i < k && rc == 0; i++)
                rc = evbuffer_add_file_segment(buf, fs, (ev_off_t)res->ranges[i].pos,
                                               (ev_off_t)res->ranges[i].len);
            evbuffer_file_segment_free(fs); /* the reply holds its own references */
            if (rc < 0) {
                snprintf(msg, msglen, "cannot send from a segment file: %s", strerror(errno));
                return -1;
            }
            continue;
        }
        /* A run of small ranges of one segment (or a large one when no file
         * descriptor can be spared for sendfile): one pread, then slices. */
        size_t k = i + 1;
        uint64_t from = r->pos, to = r->pos + r->len;
        while (k < res->n_ranges && res->ranges[k].seg == r->seg &&
               res->ranges[k].len < KR_FETCH_COPY_BELOW &&
               res->ranges[k].pos + res->ranges[k].len - from <= s->readbuf.max) {
            to = res->ranges[k].pos + res->ranges[k].len;
            k++;
        }
        const uint8_t *bytes = NULL;
        if (to - from <= KR_FETCH_WINDOW && to <= r->seg->size)
            bytes = win_read(s, r->seg, from, (size_t)(to - from));
        else if (read_range(s, r->seg, from, to) == 0)
            bytes = s->readbuf.data;
        if (bytes == NULL) {
            snprintf(msg, msglen, "reading a segment file failed: %s", strerror(errno));
            return -1;
        }
        for (size_t x = i; x < k; x++) {
            const kr_fetch_range *q = &res->ranges[x];
            if (evbuffer_add(buf, bytes + (q->pos - from), (size_t)q->len) < 0) {
                snprintf(msg, msglen, "out of memory building a reply");
                return -1;
            }
        }
        i = k;
    }
    return 0;
}

int kr_store_fetch_copy(kr_store *s, const kr_fetch_result *res, kr_buf *out, char *msg,
                        size_t msglen)
{
    (void)s;
    if (kr_buf_reserve(out, (size_t)res->bytes) < 0) {
        snprintf(msg, msglen, "out of memory reading %llu bytes of events",
                 (unsigned long long)res->bytes);
        return -1;
    }
    /* Each segment's file pinned once for its run of ranges (the fdcache may
     * close an idle one between reads). */
    kr_segment *pinned = NULL;
    int fd = -1, rc = 0;
    for (size_t i = 0; i < res->n_ranges && rc == 0; i++) {
        const kr_fetch_range *r = &res->ranges[i];
        if (r->seg != pinned) {
            if (pinned != NULL)
                kr_fdfile_put(pinned->file);
            pinned = NULL;
            if ((fd = kr_fdfile_get(r->seg->file)) < 0) {
                snprintf(msg, msglen, "cannot open a segment file: %s", strerror(errno));
                rc = -1;
                break;
            }
            pinned = r->seg;
        }
        ssize_t got = pread(fd, out->data + out->len, (size_t)r->len, (off_t)r->pos);
        if (got != (ssize_t)r->len) {
            snprintf(msg, msglen, "reading a segment file failed: %s",
                     got < 0 ? strerror(errno) : "the file is shorter than its events");
            rc = -1;
            break;
        }
        out->len += (size_t)r->len;
    }
    if (pinned != NULL)
        kr_fdfile_put(pinned->file);
    return rc;
}

/* ---- long polls ---- */

static void on_wait_timeout(evutil_socket_t fd, short what, void *arg)
{
    kr_waiter *w = arg;
    (void)fd;
    (void)what;
    TAILQ_REMOVE(w->list, w, link);
    event_free(w->timer);
    w->timer = NULL;
    w->wake(w, true);
}

/* Park on `list` with a timer. A waiter without its timer would wait
 * past its deadline and look woken to kr_store_unpark: it is not parked. */
static int park_on(kr_store *s, struct kr_waiter_list *list, kr_waiter *w, uint64_t wait_ms)
{
    if (wait_ms > s->o.max_wait_ms)
        wait_ms = s->o.max_wait_ms;
    struct timeval tv = {(time_t)(wait_ms / 1000), (suseconds_t)(wait_ms % 1000) * 1000};
    w->timer = evtimer_new(s->base, on_wait_timeout, w);
    if (w->timer == NULL || evtimer_add(w->timer, &tv) < 0) {
        if (w->timer != NULL)
            event_free(w->timer);
        w->timer = NULL;
        return -1;
    }
    w->list = list;
    TAILQ_INSERT_TAIL(list, w, link);
    return 0;
}

int kr_store_park(kr_store *s, kr_waiter *w, uint64_t wait_ms)
{
    return park_on(s, &w->topic->waiters, w, wait_ms);
}

int kr_store_park_group(kr_store *s, kr_tgroup *tg, kr_waiter *w, uint64_t wait_ms)
{
    return park_on(s, &tg->waiters, w, wait_ms);
}

/* Wake every waiter of a list (each is woken once and unlinked first). */
static void wake_list(struct kr_waiter_list *list, bool all, uint64_t next)
{
    struct kr_waiter_list ready;
    TAILQ_INIT(&ready);
    kr_waiter *w, *n;
    for (w = TAILQ_FIRST(list); w != NULL; w = n) {
        n = TAILQ_NEXT(w, link);
        if (all || w->offset < next) {
            TAILQ_REMOVE(list, w, link);
            TAILQ_INSERT_TAIL(&ready, w, link);
        }
    }
    while ((w = TAILQ_FIRST(&ready)) != NULL) {
        TAILQ_REMOVE(&ready, w, link);
        event_free(w->timer);
        w->timer = NULL;
        w->wake(w, false);
    }
}

void kr_store_wake_group(kr_store *s, kr_tgroup *tg)
{
    (void)s;
    wake_list(&tg->waiters, true, 0);
}

void kr_store_unpark(kr_store *s, kr_waiter *w)
{
    (void)s;
    if (w->timer == NULL)
        return; /* already woken */
    TAILQ_REMOVE(w->list, w, link);
    event_free(w->timer);
    w->timer = NULL;
}

void kr_store_wake(kr_store *s, kr_topic *t)
{
    wake_list(&t->waiters, false, t->next);
    for (size_t i = 0; i < t->n_groups; i++)
        kr_store_wake_group(s, t->groups[i]); /* new events for POLLs */
}

/* ---- GET ---- */

/* GET answers cached in front of the view take at most this share of the
 * block cache's budget, all topics together. */
#define KR_READCACHE_SHARE 2

void kr_store_readcache_drop(kr_store *s, kr_topic *t)
{
    if (t->readcache == NULL)
        return;
    s->readcache_bytes -= kr_overlay_bytes(t->readcache);
    kr_overlay_free(t->readcache);
    t->readcache = NULL;
}

static size_t readcache_budget(const kr_store *s)
{
    return (s->o.block_cache_bytes ? s->o.block_cache_bytes : KR_VIEW_DEFAULT_CACHE) /
           KR_READCACHE_SHARE;
}

/* Free an overlay off the loop thread: the next checkpoint job does it (or
 * now, when it cannot be queued for it). */
static void dispose(kr_store *s, kr_overlay *ov)
{
    if (s->n_dispose == s->cap_dispose) {
        size_t cap = s->cap_dispose ? s->cap_dispose * 2 : 8;
        kr_overlay **n = realloc(s->dispose, cap * sizeof *n);
        if (n == NULL) {
            kr_overlay_free(ov);
            return;
        }
        s->dispose = n;
        s->cap_dispose = cap;
    }
    s->dispose[s->n_dispose++] = ov;
}

void kr_store_readcache_take(kr_store *s, kr_topic *t, kr_overlay *ov)
{
    if (t->readcache != NULL) {
        s->readcache_bytes -= kr_overlay_bytes(t->readcache);
        dispose(s, t->readcache);
        t->readcache = NULL;
    }
    size_t bytes = kr_overlay_bytes(ov);
    if (s->readcache_bytes + bytes > readcache_budget(s)) {
        kr_overlay_free(ov);
        return;
    }
    t->readcache = ov;
    s->readcache_bytes += bytes;
}

/* Remember the view's answer for key (its event, ev[0..len)), within the
 * budget: a cache over it starts again empty rather than track recency. */
static void readcache_put(kr_store *s, kr_topic *t, const uint8_t *key, size_t klen,
                          const uint8_t *ev, size_t len)
{
    size_t budget = readcache_budget(s);
    if (klen > UINT32_MAX || len > UINT32_MAX || len > budget / 64)
        return;
    if (s->readcache_bytes + len + klen > budget)
        kr_store_readcache_drop(s, t);
    if (s->readcache_bytes + len + klen > budget)
        return; /* other topics hold the budget */
    if (t->readcache == NULL && (t->readcache = kr_overlay_new()) == NULL)
        return;
    size_t before = kr_overlay_bytes(t->readcache);
    kr_ov_entry e = {.key = key, .key_len = (uint32_t)klen, .event = ev, .ev_len = (uint32_t)len};
    (void)kr_overlay_put(t->readcache, &e); /* a miss next time on ENOMEM */
    s->readcache_bytes += kr_overlay_bytes(t->readcache) - before;
}

/*
 * GET: the newest entry of the key in the overlays, else the view's. The
 * view's answers are kept in t->readcache until the topic's next checkpoint
 * changes the view, which then starts the cache again with the overlay it
 * wrote (kr_store_readcache_take): a key read again, or written lately,
 * skips RocksDB, whose lookup was half of a GET's cost even on a row-cache
 * hit, and far more on a cold block cache. A key written meanwhile is found
 * in the overlays first, which are consulted before the cache.
 */
int kr_store_get(kr_store *s, kr_topic *t, const uint8_t *key, size_t klen, kr_buf *out, char *msg,
                 size_t msglen)
{
    const kr_ov_entry *e = kr_overlay_get(t->active, key, klen);
    if (e == NULL && t->frozen != NULL)
        e = kr_overlay_get(t->frozen, key, klen);
    if (e == NULL && t->readcache != NULL)
        e = kr_overlay_get(t->readcache, key, klen);
    if (e != NULL) {
        if (e->tombstone)
            return 0;
        if (kr_buf_append(out, e->event, e->ev_len) < 0) {
            snprintf(msg, msglen, "out of memory building a reply of %u bytes", e->ev_len);
            return -1;
        }
        return 1;
    }
    size_t before = out->len;
    int rc = kr_view_get(s->view, t->name, t->name_len, key, klen, out, msg, msglen);
    if (rc == 1 && !out->failed)
        readcache_put(s, t, key, klen, out->data + before, out->len - before);
    return rc;
}
