/*
 * store/recovery.c - start-up (DESIGN.md, "The write path" 5): every topic
 * directory under DATA/topics recovered before krappyd listens. Per topic:
 * its segments listed and opened; a closed segment with a good index hint
 * taken as it is (verified on its first read), any other scanned and
 * verified, a torn tail of the last one cut off and synced; the view's
 * marker clamped to the stream; the groups loaded; the events after the
 * marker replayed into a fresh overlay; the loop's stream state of the
 * topic (append.h) made from its last segment.
 *
 * A torn tail and damage are told apart by the sync record of a version 2
 * segment (segment.h): bad bytes past it are a write a crash cut short, cut
 * off; bad bytes below it were durable once - corruption, logged at error
 * level with the offsets lost, never served, never cut off, and its offsets
 * never handed out again. A power cut can also leave a last segment that
 * never became durable: one shorter than its header, or one that follows a
 * gap (the tail of the segment before it was lost) with nothing of it ever
 * synced; neither can hold an event acknowledged "sync" (append.h), so it
 * is removed and the topic recovered again without it. A closed segment
 * whose sync record does not cover it (a crash came between its roll and
 * its final sync) is synced now.
 *
 * Every failure says what and where (the path, the offsets, strerror) in
 * err; krappyd then refuses to start with that sentence. Damage that only
 * costs events (corrupt batches, a gap between segments) is logged and the
 * start goes on: those events are never served.
 *
 * Descriptors: a topic's directory and one segment at a time are open while
 * it is recovered; what the topics keep are files of the store's fdcache,
 * opened when first read or written - a data directory of 10,000 topics and
 * 100,000 segments starts under `ulimit -n 1024`.
 */
#include "store/store_int.h"
#include "store/compact.h"
#include "store/topic_config.h"
#include "store/store_producers.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "proto/cbor.h"
#include "store/block.h"
#include "store/checkpoint.h"
#include "util/grow.h"
#include "util/io.h"
#include "util/clock.h"
#include "util/log.h"

/* One topic being recovered. */
typedef struct recovery {
    kr_store *s;
    const char *name; /* the directory entry: a valid topic name */
    char *dir;        /* DATA/topics/NAME */
    int dirfd;
    uint64_t *bases; /* segment base offsets, ascending */
    size_t n_bases;
    kr_topic *t;
    uint64_t truncated;     /* torn bytes cut off the last segment */
    uint64_t replayed;      /* events folded into the overlay */
    kr_seg_header last_hdr; /* of the last segment scanned */
    char *err;
    size_t errlen;
} recovery;

static int fail(recovery *r, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static int fail(recovery *r, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(r->err, r->errlen, fmt, ap);
    va_end(ap);
    return -1;
}

/* ---- segments ---- */

static int cmp_u64(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x < y ? -1 : x > y;
}

/* The base offsets of the directory's segment files, ascending. */
static int list_segments(recovery *r)
{
    size_t cap = 0;
    int fd = dup(r->dirfd);
    DIR *d = fd >= 0 ? fdopendir(fd) : NULL;
    if (d == NULL) {
        int e = errno;
        if (fd >= 0)
            close(fd);
        return fail(r, "cannot read topic directory %s: %s", r->dir, strerror(e));
    }
    /* dup() shares the file offset: a second listing (after a segment was
     * removed) would start where the first one ended and see nothing. */
    rewinddir(d);
    int rc = 0;
    for (;;) {
        errno = 0;
        struct dirent *de = readdir(d);
        if (de == NULL) {
            if (errno != 0)
                rc = fail(r, "cannot read topic directory %s: %s", r->dir, strerror(errno));
            break;
        }
        uint64_t b;
        if (kr_compact_is_temp(de->d_name)) {
            /* A rewrite a crash interrupted before its rename: the segment
             * it was made from is whole. */
            if (unlinkat(r->dirfd, de->d_name, 0) == 0)
                kr_log(KR_LOG_INFO, "unfinished compaction output removed",
                       KR_LOG_STR("topic", r->name), KR_LOG_STR("file", de->d_name));
            continue;
        }
        if (kr_seg_parse_name(de->d_name, &b) < 0)
            continue;
        uint64_t *n = kr_grow(r->bases, r->n_bases, &cap, sizeof *n, 16);
        if (n == NULL) {
            rc = fail(r, "out of memory listing the segments of %s", r->dir);
            break;
        }
        r->bases = n;
        r->bases[r->n_bases++] = b;
    }
    closedir(d);
    if (rc == 0 && r->n_bases > 1) /* qsort takes no NULL, even for nothing */
        qsort(r->bases, r->n_bases, sizeof *r->bases, cmp_u64);
    return rc;
}

/* A scanned segment, and the highest raft index among its batches. */
typedef struct scanned {
    kr_segment *seg;
    uint64_t raft_index;
} scanned;

static void scan_hint(void *arg, const kr_batch_hdr *h, uint64_t pos)
{
    scanned *sc = arg;
    if (sc->seg != NULL)
        kr_index_add(&sc->seg->idx, h->base, pos);
    if (h->raft_index > sc->raft_index)
        sc->raft_index = h->raft_index;
}

/*
 * A closed segment whose BASE.idx loads and ends where the next segment
 * begins is taken as the hint says, without reading it: it is verified on
 * its first read. @return true when so.
 */
static bool take_hint(recovery *r, kr_segment *seg, size_t i, uint64_t size)
{
    kr_index_meta im;
    if (i + 1 == r->n_bases || kr_index_load(r->dirfd, seg->base, size, &im, &seg->idx) < 0)
        return false;
    if (im.next != r->bases[i + 1]) {
        kr_index_free(&seg->idx);
        return false;
    }
    seg->next = im.next;
    seg->size = size;
    seg->max_ts = im.max_ts;
    /* Where its batches start is known for sure once it is read (it is
     * verified then); the first hint is the first batch. */
    seg->start = seg->idx.n > 0 ? (uint32_t)seg->idx.e[0].pos : (uint32_t)size;
    return true;
}

/* Log what a scan found wrong in a segment (its events are not served). */
static void log_damage(recovery *r, const char *sname, const kr_seg_scan *scan, bool last)
{
    for (size_t c = 0; c < scan->n_corrupt; c++)
        kr_log(KR_LOG_ERROR, "corrupt batch found; its events will not be served",
               KR_LOG_STR("topic", r->name), KR_LOG_STR("segment", sname),
               KR_LOG_U64("first", scan->corrupt[c].first),
               KR_LOG_U64("next", scan->corrupt[c].next));
    if (scan->torn && !last)
        kr_log(KR_LOG_ERROR, "bad bytes at the end of a closed segment are not served",
               KR_LOG_STR("topic", r->name), KR_LOG_STR("segment", sname));
}

/*
 * The last segment's bad tail lies below its sync record: that is damage,
 * not a torn write. The stretch from the bad bytes to the sync point is
 * recorded as corrupt (never served), the segment continues after it, and
 * only what lies past the sync point is cut off. @return 0, or -1.
 */
static int damage_below_sync(recovery *r, kr_segment *seg, kr_seg_scan *scan, const char *sname)
{
    uint64_t end = scan->hdr.synced < scan->file_len ? scan->hdr.synced : scan->file_len;
    if (seg->n_corrupt >= KR_SEG_MAX_CORRUPT)
        return fail(r,
                    "segment %s/%s is damaged in more places than can be recorded; move it away "
                    "to start without it",
                    r->dir, sname);
    seg->corrupt[seg->n_corrupt++] = (kr_corrupt){
        .pos = scan->good_end, .end = end, .first = scan->next, .next = scan->hdr.synced_next};
    kr_log(KR_LOG_ERROR,
           "corrupt data below the segment's sync point (events acknowledged as durable); they "
           "will not be served and their offsets are not used again",
           KR_LOG_STR("topic", r->name), KR_LOG_STR("segment", sname),
           KR_LOG_U64("first", scan->next), KR_LOG_U64("next", scan->hdr.synced_next),
           KR_LOG_U64("position", scan->good_end), KR_LOG_U64("synced_bytes", scan->hdr.synced));
    seg->next = scan->hdr.synced_next;
    seg->size = end;
    scan->good_end = end; /* cut only what lies past the sync point */
    scan->torn = end < scan->file_len;
    return 0;
}

/*
 * A closed version 2 segment whose sync record does not say it is durable
 * to its end (a crash came between its roll and its final sync): sync it
 * now, and its record, so the streams behind a checkpoint are durable.
 * @return 0, or -1.
 */
static int sync_closed(recovery *r, const kr_seg_scan *scan, const char *sname)
{
    if (scan->hdr.version < 2 ||
        (scan->hdr.has_sync && scan->hdr.synced == scan->good_end && !scan->torn))
        return 0;
    int fd = openat(r->dirfd, sname, O_WRONLY | O_CLOEXEC);
    uint8_t rec[KR_SEG_SYNC_BYTES];
    kr_seg_sync_encode(rec, scan->good_end, scan->next);
    if (fd < 0 || fdatasync(fd) < 0 || kr_pwrite_all(fd, rec, sizeof rec, KR_SEG_SYNC_AT) < 0 ||
        fdatasync(fd) < 0) {
        int e = errno;
        if (fd >= 0)
            close(fd);
        return fail(r, "cannot sync segment %s/%s: %s", r->dir, sname, strerror(e));
    }
    close(fd);
    kr_log(KR_LOG_INFO, "a closed segment was synced at start-up", KR_LOG_STR("topic", r->name),
           KR_LOG_STR("segment", sname));
    return 0;
}

/*
 * A compacted segment i holds offsets up to `next`, past the base of the
 * segments after it: a merge of several segments into it was interrupted
 * after its rename and before the merged segments were deleted. Their
 * events are in segment i, or were removed by the merge: delete them now,
 * so that no offset is served twice.
 */
static int drop_merged(recovery *r, size_t i, uint64_t next)
{
    size_t j = i + 1;
    while (j + 1 < r->n_bases && r->bases[j] < next) {
        char name[KR_SEG_NAME_BYTES];
        kr_seg_name(name, r->bases[j]);
        if (unlinkat(r->dirfd, name, 0) < 0 && errno != ENOENT)
            return fail(r, "cannot remove %s/%s, left over from an interrupted compaction: %s",
                        r->dir, name, strerror(errno));
        kr_index_file_name(name, r->bases[j]);
        (void)unlinkat(r->dirfd, name, 0);
        kr_log(KR_LOG_INFO, "segment merged by an interrupted compaction removed",
               KR_LOG_STR("topic", r->name), KR_LOG_U64("base", r->bases[j]));
        j++;
    }
    if (fsync(r->dirfd) < 0 && errno != EINVAL)
        return fail(r, "cannot sync %s: %s", r->dir, strerror(errno));
    memmove(r->bases + i + 1, r->bases + j, (r->n_bases - j) * sizeof *r->bases);
    r->n_bases -= j - i - 1;
    return 0;
}

/* Scan and verify a segment; cut the torn tail of the last one (fd is
 * read-write for it). */
static int scan_segment(recovery *r, kr_segment *seg, int fd, size_t i, const char *sname)
{
    bool last = i + 1 == r->n_bases;
    kr_seg_scan scan;
    scanned sc = {.seg = seg};
    if (kr_seg_scan_fd(fd, &scan, scan_hint, &sc) < 0)
        return fail(r, "segment %s/%s is unreadable (%s); move it away to start without it", r->dir,
                    sname, errno == EINVAL ? "bad header" : strerror(errno));
    seg->start = scan.hdr.len;
    if (last)
        r->t->raft_index = sc.raft_index;
    seg->next = scan.next;
    seg->size = scan.good_end;
    seg->max_ts = scan.max_ts;
    seg->verified = true;
    seg->compacted = scan.compacted;
    if (scan.compacted && !last) {
        if (scan.next > r->bases[i + 1] && drop_merged(r, i, scan.next) < 0)
            return -1;
        seg->next = r->bases[i + 1]; /* it covers the offsets up to the next one */
    }
    seg->n_corrupt = scan.n_corrupt;
    memcpy(seg->corrupt, scan.corrupt, sizeof scan.corrupt);
    log_damage(r, sname, &scan, last);
    r->last_hdr = scan.hdr;
    if (last && scan.hdr.has_sync && scan.good_end < scan.hdr.synced &&
        damage_below_sync(r, seg, &scan, sname) < 0)
        return -1;
    if (scan.torn && last) {
        r->truncated = scan.file_len - scan.good_end;
        if (ftruncate(fd, (off_t)scan.good_end) < 0 || fdatasync(fd) < 0)
            return fail(r, "cannot cut the torn tail of %s/%s at byte %llu: %s", r->dir, sname,
                        (unsigned long long)scan.good_end, strerror(errno));
    }
    if (!last && sync_closed(r, &scan, sname) < 0)
        return -1;
    return 0;
}

/*
 * A last segment a power cut left without a durable header (shorter than
 * one): it never held anything synced. Remove it.
 * @return 1 when removed, 0 when it is not such a file, -1 on failure.
 */
static int drop_headless(recovery *r, const struct stat *st, const char *sname)
{
    uint8_t hb[KR_SEG_HEADER_V2_BYTES];
    kr_seg_header h;
    if (st->st_size >= KR_SEG_HEADER_V2_BYTES)
        return 0;
    int fd = openat(r->dirfd, sname, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return fail(r, "cannot open %s/%s: %s", r->dir, sname, strerror(errno));
    ssize_t got = pread(fd, hb, (size_t)st->st_size, 0);
    close(fd);
    if (got == st->st_size && kr_seg_header_decode(hb, (size_t)got, &h) == 0)
        return 0; /* a good (version 1) header: an empty segment */
    if (unlinkat(r->dirfd, sname, 0) < 0)
        return fail(r, "cannot remove the headless segment %s/%s: %s", r->dir, sname,
                    strerror(errno));
    kr_log(KR_LOG_WARN, "a segment a power cut left without its header was removed",
           KR_LOG_STR("topic", r->name), KR_LOG_STR("segment", sname),
           KR_LOG_U64("bytes", (uint64_t)st->st_size));
    return 1;
}

/* Learn what segment i holds: from its index hint without opening it, or
 * by a scan (the last one opened read-write: its torn tail is cut).
 * @return 0; 1 when it was removed (recover the topic again); -1 on
 * failure. */
static int recover_segment(recovery *r, size_t i)
{
    char sname[KR_SEG_NAME_BYTES];
    kr_seg_name(sname, r->bases[i]);
    bool last = i + 1 == r->n_bases;
    struct stat st;
    if (fstatat(r->dirfd, sname, &st, 0) < 0)
        return fail(r, "cannot open %s/%s: %s", r->dir, sname, strerror(errno));
    int dropped = last ? drop_headless(r, &st, sname) : 0;
    if (dropped != 0)
        return dropped;
    kr_segment *seg = kr_segment_new(r->s->files, r->t->dir, r->bases[i], KR_SEG_HEADER_BYTES);
    if (seg == NULL || kr_topic_add_segment(r->t, seg) < 0) {
        kr_segment_free(seg);
        return fail(r, "out of memory opening %s/%s", r->dir, sname);
    }
    if (take_hint(r, seg, i, (uint64_t)st.st_size))
        return 0;
    int fd = openat(r->dirfd, sname, (last ? O_RDWR : O_RDONLY) | O_CLOEXEC);
    if (fd < 0)
        return fail(r, "cannot open %s/%s: %s", r->dir, sname, strerror(errno));
    int rc = scan_segment(r, seg, fd, i, sname);
    close(fd);
    return rc;
}

/*
 * A cluster member's topic whose last segment holds no batch yet (a crash
 * just after a roll) takes its raft index from the segment before, read
 * for that alone; a single node's batches carry none, so this costs it one
 * scan in that rare case only.
 */
static int raft_index_before(recovery *r)
{
    kr_topic *t = r->t;
    if (t->n_segs < 2 || t->segs[t->n_segs - 1]->next != t->segs[t->n_segs - 1]->base)
        return 0;
    char sname[KR_SEG_NAME_BYTES];
    kr_seg_name(sname, t->segs[t->n_segs - 2]->base);
    int fd = openat(r->dirfd, sname, O_RDONLY | O_CLOEXEC);
    kr_seg_scan scan;
    scanned sc = {0};
    if (fd < 0 || kr_seg_scan_fd(fd, &scan, scan_hint, &sc) < 0) {
        int e = errno;
        if (fd >= 0)
            close(fd);
        return fail(r, "cannot read %s/%s: %s", r->dir, sname, strerror(e));
    }
    close(fd);
    t->raft_index = sc.raft_index;
    return 0;
}

/* ---- the view and the overlay ---- */

/*
 * The view must not be ahead of the stream (a power cut can take events
 * the view had already folded in): rebuild it from the stream when it is.
 * Sets the topic's marker and key count.
 */
static int clamp_marker(recovery *r)
{
    kr_store *s = r->s;
    kr_topic *t = r->t;
    uint64_t marker = 0, keys = 0;
    int m = kr_view_marker(s->view, t->name, t->name_len, &marker, &keys, r->err, r->errlen);
    if (m < 0)
        return -1;
    uint64_t stored = m == 1 ? marker : 0;
    if (m == 0) {
        marker = t->first;
        keys = 0;
    } else if (marker > t->next) {
        kr_log(KR_LOG_WARN, "the view is ahead of the stream; rebuilding it from the stream",
               KR_LOG_STR("topic", r->name), KR_LOG_U64("marker", marker),
               KR_LOG_U64("next", t->next));
        kr_view_batch *vb = kr_view_batch_new();
        if (vb == NULL)
            return fail(r, "out of memory rebuilding the view of topic %s", r->name);
        kr_view_batch_drop_topic(vb, t->name, t->name_len);
        kr_view_batch_drop_producer_states(vb, t->name, t->name_len);
        int wrc = kr_view_write(s->view, vb, r->err, r->errlen);
        kr_view_batch_free(vb);
        if (wrc < 0)
            return -1;
        marker = t->first;
        stored = 0;
        keys = 0;
    } else if (marker < t->first) {
        marker = t->first;
    }
    /* A view below the first offset awaits its seed when a skip made
     * that first (seed_pending looks). */
    t->seed_to = stored < t->first ? t->first : 0;
    t->marker = marker;
    t->keys = keys;
    return 0;
}

/*
 * Fold a batch read back from disk: parse each delivered event, joining
 * indefinite-length keys into the block's spare room, and put the events
 * with offset >= from into the active overlay.
 * @return 0; -1 on ENOMEM; -2 when an event does not parse.
 */
static int fold_stored(kr_topic *t, kr_block *b, const kr_batch_hdr *h, uint64_t from,
                       uint64_t *folded)
{
    size_t pos = h->hlen, extra = b->len;
    const uint8_t *end = b->data + h->hlen + h->len;
    for (uint32_t i = 0; i < h->count; i++) {
        kr_cbor_item ev;
        kr_event_view v;
        if (kr_cbor_read(b->data + pos, (size_t)(end - (b->data + pos)), &ev) < 0 ||
            kr_event_view_read(&ev, &v) < 0)
            return -2;
        uint64_t off = h->base + i;
        if (off >= from && v.key.kind != KR_CBOR_NULL) {
            uint32_t kpos, klen = (uint32_t)v.key.str_len;
            if (v.key.str != NULL) {
                kpos = (uint32_t)(v.key.str - b->data);
            } else {
                if (extra + klen > b->cap)
                    return -2;
                kr_cbor_str_copy(&v.key, b->data + extra, klen);
                kpos = (uint32_t)extra;
                extra += klen;
            }
            kr_ov_entry e = {.key = b->data + kpos,
                             .key_len = klen,
                             .event = b->data + pos,
                             .ev_len = (uint32_t)ev.raw_len,
                             .offset = off,
                             .ts = v.ts,
                             .tombstone = v.value.kind == KR_CBOR_NULL};
            if (kr_overlay_put(t->active, &e) < 0)
                return -1;
        }
        if (off >= from)
            (*folded)++;
        pos += ev.raw_len;
    }
    return 0;
}

/* Log a batch that cannot be read back (its events stay out of the view). */
static void log_unreadable(recovery *r, const kr_segment *seg, uint64_t pos, const char *why)
{
    char sname[KR_SEG_NAME_BYTES];
    kr_seg_name(sname, seg->base);
    kr_log(KR_LOG_ERROR, "a stored batch could not be read back into the latest-value view",
           KR_LOG_STR("topic", r->name), KR_LOG_STR("segment", sname), KR_LOG_U64("position", pos),
           KR_LOG_STR("reason", why));
}

/*
 * Replay one batch at pos (header h) into the overlay. A batch whose CRC
 * does not match is skipped (the scan, or the first read, reports it).
 * @return 0, or -1 (err filled).
 */
static int replay_batch(recovery *r, kr_segment *seg, int fd, uint64_t pos, const kr_batch_hdr *h,
                        uint64_t from)
{
    size_t need = h->hlen + h->len;
    /* Room after the batch for its indefinite-length keys, joined. */
    kr_block *b = kr_block_new(need + h->len);
    if (b == NULL)
        return fail(r, "out of memory replaying topic %s", r->name);
    b->len = need;
    ssize_t got = pread(fd, b->data, need, (off_t)pos);
    int rc = 0;
    if (got != (ssize_t)need) {
        log_unreadable(r, seg, pos, got < 0 ? strerror(errno) : "the file ends inside it");
    } else if (kr_batch_verify(b->data, b->data + h->hlen, h->len)) {
        if (h->base >= from)
            kr_store_producers_replay(r->t, h); /* its producer's state */
        rc = fold_stored(r->t, b, h, from, &r->replayed);
        if (rc == -1)
            fail(r, "out of memory replaying topic %s", r->name);
        if (rc == -2)
            rc = fail(r,
                      "the batch of offsets %llu..%llu of topic %s is not a batch of events "
                      "though its CRC matches; move its segment away to start without it",
                      (unsigned long long)h->base, (unsigned long long)(h->base + h->count),
                      r->name);
    }
    kr_block_unref(b);
    return rc;
}

/*
 * A replay that outgrows the overlays' half of --overlay-bytes (a view
 * rebuilt from whole streams, or one far behind) is folded into the view
 * as it goes, as a checkpoint would fold it: the stream read so far made
 * durable, the overlay written with the marker after it, and a fresh one
 * started - so that rebuilding holds no more memory than running.
 */
static int replay_checkpoint(recovery *r, int fd, uint64_t next)
{
    kr_topic *t = r->t;
    if (fdatasync(fd) < 0)
        return fail(r, "cannot sync the stream of topic %s before writing its view: %s", r->name,
                    strerror(errno));
    /* The producers' states replayed so far go with the marker, or the
     * next start would replay from it without them. */
    kr_ckpt_topic ck = {.t = t,
                        .ov = t->active,
                        .next = next,
                        .keys = t->keys,
                        .prod = kr_store_producers_freeze(t)};
    int wrc = kr_checkpoint_write(r->s->view, &ck, 1, NULL, r->err, r->errlen);
    kr_store_producers_checkpointed(r->s, t, ck.prod, wrc == 0);
    kr_prod_ckpt_free(ck.prod);
    if (wrc < 0)
        return -1;
    kr_overlay *fresh = kr_overlay_new();
    if (fresh == NULL)
        return fail(r, "out of memory replaying topic %s", r->name);
    kr_overlay_free(t->active);
    t->active = fresh;
    t->marker = next;
    t->keys = ck.keys;
    return 0;
}

/* Replay one segment's batches from `from` on (fd: its file). */
static int replay_segment(recovery *r, kr_segment *seg, int fd, uint64_t from)
{
    uint64_t pos = kr_index_find(&seg->idx, from);
    if (pos < seg->start)
        pos = seg->start;
    while (pos + KR_BATCH_HEADER_BYTES <= seg->size) {
        uint8_t hb[KR_BATCH_HEADER_MAX];
        kr_batch_hdr h;
        size_t want = seg->size - pos < sizeof hb ? (size_t)(seg->size - pos) : sizeof hb;
        ssize_t got = pread(fd, hb, want, (off_t)pos);
        if (got != (ssize_t)want) {
            log_unreadable(r, seg, pos, got < 0 ? strerror(errno) : "the file ends inside it");
            break;
        }
        if (kr_batch_header_decode(hb, want, &h) < 0)
            break; /* corrupt: reported by the scan or the first read */
        if (h.base + h.count > from && replay_batch(r, seg, fd, pos, &h, from) < 0)
            return -1;
        pos += h.hlen + h.len;
        if (kr_overlay_bytes(r->t->active) > kr_store_fill_limit(r->s) &&
            replay_checkpoint(r, fd, h.base + h.count) < 0)
            return -1;
    }
    return 0;
}

/* Read the stream [from, next) back into the active overlay. */
static int replay(recovery *r, uint64_t from)
{
    kr_topic *t = r->t;
    for (size_t i = 0; i < t->n_segs; i++) {
        kr_segment *seg = t->segs[i];
        if (seg->next <= from)
            continue;
        /* A hint from BASE.idx is checked (and the hints rebuilt) before the
         * replay starts from one: a wrong one would skip events. */
        if (!seg->verified && kr_segment_verify(r->s, t, seg) < 0) {
            char sname[KR_SEG_NAME_BYTES];
            kr_seg_name(sname, seg->base);
            return fail(r, "segment %s/%s is unreadable (%s); move it away to start without it",
                        r->dir, sname, errno == EINVAL ? "bad header" : strerror(errno));
        }
        int fd = kr_fdfile_get(seg->file);
        if (fd < 0) {
            char sname[KR_SEG_NAME_BYTES];
            kr_seg_name(sname, seg->base);
            return fail(r, "cannot open %s/%s: %s", r->dir, sname, strerror(errno));
        }
        int rc = replay_segment(r, seg, fd, from);
        kr_fdfile_put(seg->file);
        if (rc < 0)
            return -1;
    }
    return 0;
}

/* ---- the writer's state ---- */

/*
 * The loop appends to the last segment through a read-write file of the
 * store's fdcache, its stream's (it reads it through its record's).
 * Everything recovered is durable now (a torn tail was cut and synced,
 * closed segments were synced): the stream starts fully synced.
 */
static int stream_state(recovery *r)
{
    kr_topic *t = r->t;
    kr_segment *ls = t->segs[t->n_segs - 1];
    char sname[KR_SEG_NAME_BYTES];
    kr_seg_name(sname, ls->base);
    kr_fdfile *wf = kr_fdfile_new(r->s->files, t->dir, sname, O_RDWR);
    t->stream = wf != NULL ? kr_stream_new(t) : NULL;
    if (t->stream == NULL || kr_stream_attach(t->stream, wf, ls->base, ls->start, ls->size, t->next,
                                              r->last_hdr.flags) < 0) {
        kr_fdfile_free(wf);
        return fail(r, "out of memory recovering topic %s", r->name);
    }
    return 0;
}

/*
 * A last segment that follows a gap - the tail of the segment before it was
 * lost to a power cut - and whose sync record says nothing of it was ever
 * synced holds nothing acknowledged "sync" (a sync of it would have synced
 * the one before in full first): remove it, so that the stream goes on
 * without a gap. @return 1 when removed, 0 when not such a segment, -1.
 */
static int drop_after_gap(recovery *r)
{
    kr_topic *t = r->t;
    if (t->n_segs < 2)
        return 0;
    kr_segment *ls = t->segs[t->n_segs - 1], *prev = t->segs[t->n_segs - 2];
    if (prev->next >= ls->base || !r->last_hdr.has_sync ||
        r->last_hdr.synced != KR_SEG_HEADER_V2_BYTES || (r->last_hdr.flags & KR_SEG_F_SKIPPED))
        return 0;
    char sname[KR_SEG_NAME_BYTES];
    kr_seg_name(sname, ls->base);
    if (unlinkat(r->dirfd, sname, 0) < 0)
        return fail(r, "cannot remove segment %s/%s: %s", r->dir, sname, strerror(errno));
    kr_log(KR_LOG_WARN,
           "the last segment followed offsets a power cut lost and held nothing synced; it was "
           "removed and its offsets will be used again",
           KR_LOG_STR("topic", r->name), KR_LOG_STR("segment", sname),
           KR_LOG_U64("first", prev->next), KR_LOG_U64("lost_next", ls->next));
    return 1;
}

/* Whether segment `base` was started by a skip (KR_SEG_F_SKIPPED).
 * @return 1, 0, or -1 (err filled). */
static int skip_started(recovery *r, uint64_t base)
{
    char sname[KR_SEG_NAME_BYTES];
    uint8_t hb[KR_SEG_HEADER_V2_BYTES];
    kr_seg_header h;
    kr_seg_name(sname, base);
    int fd = openat(r->dirfd, sname, O_RDONLY | O_CLOEXEC);
    ssize_t got = fd >= 0 ? pread(fd, hb, sizeof hb, 0) : -1;
    int e = errno;
    if (fd >= 0)
        close(fd);
    if (got < 0)
        return fail(r, "cannot read %s/%s: %s", r->dir, sname, strerror(e));
    return kr_seg_header_decode(hb, (size_t)got, &h) == 0 && (h.flags & KR_SEG_F_SKIPPED);
}

/* Whether the view awaits a seed (clamp_marker found its marker below the
 * first offset): only a skip's segment there makes one. @return 0, -1. */
static int seed_pending(recovery *r)
{
    kr_topic *t = r->t;
    if (t->seed_to == 0)
        return 0;
    int skipped = skip_started(r, t->seed_to);
    if (skipped < 0)
        return -1;
    if (!skipped)
        t->seed_to = 0;
    else
        kr_log(KR_LOG_WARN,
               "the view lacks the latest values below the offset the stream skipped to; they "
               "are copied from the peers before this node catches up",
               KR_LOG_STR("topic", r->name), KR_LOG_U64("first", t->seed_to));
    return 0;
}

/*
 * The topic's first offset: its first segment's base, or the base of the
 * last segment a skip started (kr_store_skip_to) after a gap - the
 * offsets below it are gone, as retention's; the segments below it wait
 * for retention (retain_to) to retire them. Any other gap between
 * segments is damage: logged, its offsets never served. Only a segment
 * after a gap is read for its flag. @return 0, or -1.
 */
static int find_first(recovery *r)
{
    kr_topic *t = r->t;
    t->first = t->segs[0]->base;
    for (size_t i = 1; i < t->n_segs; i++) {
        const kr_segment *prev = t->segs[i - 1], *seg = t->segs[i];
        if (prev->next == seg->base || prev->compacted)
            continue;
        int skipped = prev->next < seg->base ? skip_started(r, seg->base) : 0;
        if (skipped < 0)
            return -1;
        if (skipped) {
            t->first = t->retain_to = seg->base;
            continue;
        }
        char sname[KR_SEG_NAME_BYTES];
        kr_seg_name(sname, prev->base);
        kr_log(KR_LOG_ERROR, "offsets missing between segments", KR_LOG_STR("topic", r->name),
               KR_LOG_STR("segment", sname), KR_LOG_U64("first", prev->next),
               KR_LOG_U64("next", seg->base));
    }
    return 0;
}

static void log_recovered(const recovery *r)
{
    const kr_topic *t = r->t;
    kr_log(KR_LOG_INFO, "recovered topic", KR_LOG_STR("topic", r->name),
           KR_LOG_U64("first", t->first), KR_LOG_U64("next", t->next),
           KR_LOG_U64("marker", t->marker), KR_LOG_U64("replayed", r->replayed),
           KR_LOG_U64("torn_bytes_truncated", r->truncated), KR_LOG_U64("segments", t->n_segs));
}

/* ---- topics ---- */

/* Everything of one topic but its insertion into the table. @return 0; 1
 * when a segment was removed (recover the topic again); -1. */
static int recover_steps(recovery *r)
{
    kr_store *s = r->s;
    for (size_t i = 0; i < r->n_bases; i++) {
        int rc = recover_segment(r, i);
        if (rc != 0)
            return rc;
    }
    int rc = drop_after_gap(r);
    if (rc != 0)
        return rc;
    if (raft_index_before(r) < 0)
        return -1;
    kr_topic *t = r->t;
    for (size_t i = 0; i < t->n_segs; i++)
        t->bytes += t->segs[i]->size;
    if (find_first(r) < 0)
        return -1;
    t->next = t->assigned = t->segs[t->n_segs - 1]->next;
    t->ready = true;
    kr_segment *active = t->segs[t->n_segs - 1];
    if (active->next > active->base)
        active->first_write_ms = kr_wall_ms(); /* segment_ms counts from the start */
    if (clamp_marker(r) < 0 || seed_pending(r) < 0 ||
        kr_topic_config_load(s, t, r->err, r->errlen) < 0 ||
        kr_store_groups_load(s, t, r->err, r->errlen) < 0 ||
        kr_store_producers_load(s, t, r->err, r->errlen) < 0 || replay(r, t->marker) < 0)
        return -1;
    kr_counter_add(s->m_replayed, r->replayed);
    return stream_state(r);
}

static int recover_topic(kr_store *s, const char *name, char *err, size_t errlen)
{
    recovery r = {.s = s, .name = name, .dirfd = -1, .err = err, .errlen = errlen};
    int rc = -1;
    r.dir = kr_store_path(s->topics_dir, name);
    if (r.dir == NULL) {
        fail(&r, "out of memory recovering topic %s", name);
        goto out;
    }
    r.dirfd = open(r.dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (r.dirfd < 0) {
        fail(&r, "cannot open topic directory %s: %s", r.dir, strerror(errno));
        goto out;
    }
    for (int attempt = 0;; attempt++) {
        if (list_segments(&r) < 0)
            goto out;
        if (r.n_bases == 0) {
            /* Creation never finished (no PRODUCER_REGISTER was answered). */
            kr_log(KR_LOG_WARN, "topic directory without segments ignored",
                   KR_LOG_STR("topic", name));
            rc = 0;
            goto out;
        }
        r.t = kr_store_topic_new(s, (const uint8_t *)name, strlen(name));
        if (r.t == NULL) {
            fail(&r, "out of memory recovering topic %s", name);
            goto out;
        }
        int steps = recover_steps(&r);
        if (steps < 0)
            goto out;
        if (steps == 0)
            break;
        /* A segment a power cut left behind was removed: again without it
         * (the one before it is the last now, with a torn tail maybe). */
        kr_store_topic_free(r.t);
        r.t = NULL;
        free(r.bases);
        r.bases = NULL;
        r.n_bases = 0;
        r.truncated = r.replayed = 0;
        if (attempt == 2) {
            fail(&r, "the segments of topic %s keep changing while they are recovered", name);
            goto out;
        }
    }
    log_recovered(&r);
    if (kr_store_topic_insert(s, r.t) < 0) {
        fail(&r, "out of memory adding topic %s", name);
        goto out;
    }
    r.t = NULL;
    rc = 0;
out:
    kr_store_topic_free(r.t);
    if (r.dirfd >= 0)
        close(r.dirfd);
    free(r.bases);
    free(r.dir);
    return rc;
}

int kr_store_recover(kr_store *s, char *err, size_t errlen)
{
    if (mkdir(s->topics_dir, 0750) < 0 && errno != EEXIST) {
        snprintf(err, errlen, "cannot create %s: %s", s->topics_dir, strerror(errno));
        return -1;
    }
    DIR *d = opendir(s->topics_dir);
    if (d == NULL) {
        snprintf(err, errlen, "cannot open %s: %s", s->topics_dir, strerror(errno));
        return -1;
    }
    struct dirent *de;
    int rc = 0;
    while (rc == 0 && (de = readdir(d)) != NULL) {
        if (!kr_topic_name_valid((const uint8_t *)de->d_name, strlen(de->d_name)))
            continue;
        rc = recover_topic(s, de->d_name, err, errlen);
    }
    closedir(d);
    return rc;
}
