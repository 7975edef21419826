/*
 * store/topic_admin.c - administration (PROTOCOL.md section 9): deleting a
 * topic, moving a group's cursor (to an offset or to a time), deleting a
 * group; and, at start-up, finishing the deletions a crash interrupted.
 *
 * Deleting a topic survives kill -9 and a power cut at any point, leaving
 * the topic whole or gone, never half:
 *   1. (loop) the appends queued before the deletion are written and
 *      answered; the topic leaves the table, so nothing new reaches it, and
 *      whoever waits on it is answered (topic_teardown); the checkpoint
 *      under way forgets it if it has not gone to the writer yet; a
 *      TOPIC_DROP job is queued behind every job of the topic already
 *      queued (kr_stream_drop, append.h): nothing is written to its files
 *      after it;
 *   2. (writer) every earlier checkpoint and cursor is written to RocksDB
 *      (writer.c), then the directory DATA/topics/NAME is renamed to
 *      DATA/topics/~deleted.N and DATA/topics synced: the atomic point;
 *   3. (writer) every record of the topic leaves the view (kr_view_drop_topic:
 *      WAL on, synced), then the moved directory is removed;
 *   4. (loop) the topic's memory is freed - its segment files leave the
 *      fdcache with it, closed at once or when the last reply sent from one
 *      is out - and the requester answered.
 * A crash before 2 leaves the topic whole. After it, start-up
 * (kr_store_finish_deletions), before recovery and before anything can
 * create the name again, removes ~ directories and the records of every
 * topic that has no directory. A topic registered again meanwhile gets a
 * new directory from a CREATE job queued after the drop, so it starts at
 * offset 0 with nothing of the old one.
 *
 * Per-topic state added later joins the deletion with a line each: a record
 * kept in RocksDB under its own tag in view_topic.c's list, memory held by
 * the topic in kr_store_topic_free, waiters and caches in topic_teardown.
 */
#include "store/store_int.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "util/clock.h"
#include "util/log.h"

/* A deleted topic's directory is moved to this name first; topic names
 * cannot start with '~', so recovery never takes it for a topic. */
#define TRASH_PREFIX "~deleted."
/* Bytes read per pread while walking batch headers for a time. */
#define TIME_WINDOW (1u << 20)

/* ---- waking whoever waits on what is deleted ---- */

/* Wake every waiter of a list with w->gone set (each unlinked first). */
static void wake_gone(struct kr_waiter_list *list)
{
    struct kr_waiter_list gone;
    TAILQ_INIT(&gone);
    TAILQ_CONCAT(&gone, list, link);
    kr_waiter *w;
    while ((w = TAILQ_FIRST(&gone)) != NULL) {
        TAILQ_REMOVE(&gone, w, link);
        event_free(w->timer);
        w->timer = NULL;
        w->gone = true;
        w->wake(w, false);
    }
}

static void wake_topic_gone(kr_topic *t)
{
    wake_gone(&t->waiters);
    for (size_t i = 0; i < t->n_groups; i++)
        wake_gone(&t->groups[i]->waiters);
}

/* Answer the scans waiting for a checkpoint of t, and end t's cursors. */
static void forget_scans(kr_store *s, kr_topic *t)
{
    kr_scan_wait *w, *wn;
    for (w = TAILQ_FIRST(&s->scan_waits); w != NULL; w = wn) {
        wn = TAILQ_NEXT(w, link);
        if (w->t != t)
            continue;
        TAILQ_REMOVE(&s->scan_waits, w, link);
        kr_store_result res = {.err = KRAPPY_E_NO_SUCH_TOPIC};
        snprintf(res.msg, sizeof res.msg, "topic %.200s was deleted", t->name);
        w->ready(w->arg, NULL, &res);
        free(w->prefix);
        free(w->after);
        free(w);
    }
    kr_scan_cursor *c, *cn;
    for (c = TAILQ_FIRST(&s->cursors); c != NULL; c = cn) {
        cn = TAILQ_NEXT(c, link);
        if (c->t == t)
            kr_store_scan_end(s, c);
    }
}

static void zero_group_metrics(kr_tgroup *tg)
{
    kr_gauge_set(tg->m_cursor, 0);
    kr_gauge_set(tg->m_pending, 0);
    kr_gauge_set(tg->m_lag, 0);
    kr_gauge_set(tg->m_members, 0);
    kr_gauge_set(tg->m_max_deliveries, 0);
}

/*
 * The one place where a topic leaving the table lets go of what refers to
 * it on the loop: waiters, scans, caches, memory accounting and gauges.
 */
static void topic_teardown(kr_store *s, kr_topic *t)
{
    t->deleted = true;
    kr_store_topic_remove(s, t);
    kr_store_recount_active(s);
    kr_store_readcache_drop(s, t);
    wake_topic_gone(t);
    forget_scans(s, t);
    kr_gauge_set(t->m_stream_bytes, 0);
    kr_gauge_set(t->m_segments, 0);
    for (size_t i = 0; i < t->n_groups; i++)
        zero_group_metrics(t->groups[i]);
}

/* Acknowledge t's appends held for overlay room: they were stored. */
static void release_held_of(kr_store *s, kr_topic *t)
{
    kr_append *a, *n;
    for (a = TAILQ_FIRST(&s->held); a != NULL; a = n) {
        n = TAILQ_NEXT(a, link);
        if (a->t != t)
            continue;
        TAILQ_REMOVE(&s->held, a, link);
        kr_store_result res = {.err = KRAPPY_OK, .first = a->base, .count = a->count};
        kr_store_done done = a->done;
        void *arg = a->arg;
        kr_append_free(s, a);
        if (done != NULL)
            done(arg, &res);
    }
}

/* ---- DELETE_TOPIC ---- */

krappy_err kr_store_delete_topic(kr_store *s, kr_topic *t, kr_store_done done, void *arg, char *msg,
                                 size_t msglen)
{
    if (s->draining || s->closing) {
        snprintf(msg, msglen, "the server is shutting down; nothing was deleted");
        return KRAPPY_E_STORAGE;
    }
    kr_job *j = kr_job_new(KR_JOB_TOPIC_DROP, t);
    if (j == NULL) {
        snprintf(msg, msglen, "out of memory deleting topic %s; nothing was deleted", t->name);
        return KRAPPY_E_STORAGE;
    }
    j->done = done;
    j->arg = arg;
    j->drop.dir = t->dir;
    kr_log(KR_LOG_INFO, "deleting topic", KR_LOG_STR("topic", t->name), KR_LOG_U64("next", t->next),
           KR_LOG_U64("groups", t->n_groups));
    /* What was queued before the deletion is written and answered first. */
    kr_stream_drop(s, t->stream, j);
    topic_teardown(s, t);
    return KRAPPY_OK;
}

/*
 * A failed drop. Nothing happened: the topic is whole, and goes back into
 * the table if its name is still free. Its directory is gone but records
 * are left: the name stays taken by the deleted topic (hidden, and
 * refused by kr_store_register) until a restart finishes the deletion.
 * @return true when t was put back (it must not be freed).
 */
static bool drop_failed(kr_store *s, kr_topic *t, kr_drop_stage stage, const char *why,
                        kr_store_result *res)
{
    res->err = KRAPPY_E_STORAGE;
    if (stage == KR_DROP_NOTHING)
        snprintf(res->msg, sizeof res->msg,
                 "topic %.60s could not be deleted (%.140s); it is unchanged", t->name, why);
    else
        snprintf(res->msg, sizeof res->msg,
                 "topic %.40s's events are deleted, but its other records could not be "
                 "removed (%.80s); restart krappyd to finish the deletion",
                 t->name, why);
    kr_log(KR_LOG_ERROR, "deleting a topic failed", KR_LOG_STR("topic", t->name),
           KR_LOG_STR("reason", why),
           KR_LOG_STR("left", stage == KR_DROP_NOTHING ? "everything" : "records in the view"));
    t->failed = stage != KR_DROP_NOTHING;
    t->deleted = t->failed;
    t->stream->dropped = t->deleted; /* whole again: written and synced again */
    if (kr_store_topic_insert(s, t) == 0) {
        kr_store_recount_active(s);
        return true;
    }
    kr_log(KR_LOG_ERROR,
           "a topic of the same name was created meanwhile; what is left of the old one is "
           "removed or comes back at the next start",
           KR_LOG_STR("topic", t->name));
    return false;
}

void kr_store_topic_dropped(kr_store *s, kr_job *j)
{
    kr_topic *t = j->t;
    kr_store_result res = {.err = KRAPPY_OK};
    /* Jobs queued before the drop have completed; nothing refers to t now
     * but what may have parked on it meanwhile. */
    release_held_of(s, t);
    wake_topic_gone(t);
    if (j->err == KRAPPY_OK)
        kr_log(KR_LOG_INFO, "topic deleted", KR_LOG_STR("topic", t->name));
    else if (drop_failed(s, t, j->drop.stage, kr_job_msg(j), &res))
        t = NULL; /* back in the table */
    kr_store_topic_free(t);
    kr_store_recount_active(s);
    if (j->done != NULL)
        j->done(j->arg, &res);
}

/* Remove a directory holding only files (a topic's: segments and index
 * hints). @return 0, or -1 with errno. */
static int remove_flat_dir(int parent, const char *name)
{
    int fd = openat(parent, name, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0)
        return errno == ENOENT ? 0 : -1;
    DIR *d = fdopendir(fd);
    if (d == NULL) {
        int e = errno;
        close(fd);
        errno = e;
        return -1;
    }
    int rc = 0;
    struct dirent *de;
    while ((de = readdir(d)) != NULL) {
        if (strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0)
            continue;
        if (unlinkat(dirfd(d), de->d_name, 0) < 0 && errno != ENOENT)
            rc = -1;
    }
    int e = errno;
    closedir(d);
    if (rc == 0 && unlinkat(parent, name, AT_REMOVEDIR) < 0 && errno != ENOENT)
        return -1;
    errno = e;
    return rc;
}

/* Move DIR/name aside to a fresh ~deleted.N name. @return 0 (also when there
 * was nothing to move: *moved false), or -1 with errno. */
static int move_aside(int pfd, const char *name, char *trash, size_t trashlen, bool *moved)
{
    *moved = false;
    for (unsigned attempt = 0; attempt < 64; attempt++) {
        snprintf(trash, trashlen, TRASH_PREFIX "%llx.%u", (unsigned long long)kr_wall_ms(),
                 attempt);
        if (renameat2(pfd, name, pfd, trash, RENAME_NOREPLACE) == 0) {
            *moved = true;
            return 0;
        }
        if (errno == ENOENT)
            return 0; /* never created (its creation failed) */
        if (errno != EEXIST)
            return -1;
    }
    errno = EEXIST;
    return -1;
}

void kr_topic_drop_run(kr_view *v, kr_job *j)
{
    const char *dir = j->drop.dir;
    kr_topic *t = j->t;
    char parent[4096], trash[64];
    const char *slash = strrchr(dir, '/');
    j->drop.stage = KR_DROP_NOTHING;
    if (slash == NULL || (size_t)(slash - dir) >= sizeof parent) {
        kr_job_fail(j, 0, "the topic directory %s has no parent directory", dir);
        return;
    }
    memcpy(parent, dir, (size_t)(slash - dir));
    parent[slash - dir] = '\0';
    int pfd = open(parent, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (pfd < 0) {
        kr_job_fail(j, errno, "cannot open %s", parent);
        return;
    }
    bool moved;
    if (move_aside(pfd, slash + 1, trash, sizeof trash, &moved) < 0) {
        kr_job_fail(j, errno, "cannot move %s aside", dir);
        close(pfd);
        return;
    }
    /* The atomic point: once the rename is durable the topic is gone. */
    if (moved && fsync(pfd) < 0) {
        int e = errno;
        if (renameat(pfd, trash, pfd, slash + 1) == 0) {
            kr_job_fail(j, e, "cannot sync %s after moving the topic aside", parent);
            close(pfd);
            return;
        }
        kr_log(KR_LOG_WARN,
               "cannot sync the topics directory after moving a deleted topic aside; a power cut "
               "may bring the topic back",
               KR_LOG_STR("dir", parent), KR_LOG_STR("reason", strerror(e)));
    }
    j->drop.stage = KR_DROP_FILES;
    char err[256];
    if (kr_view_drop_topic(v, t->name, t->name_len, true, err, sizeof err) < 0) {
        kr_job_fail(j, 0, "%s", err);
        close(pfd);
        return;
    }
    j->drop.stage = KR_DROP_ALL;
    if (moved && remove_flat_dir(pfd, trash) < 0)
        kr_log(KR_LOG_WARN, "cannot remove a deleted topic's files; the next start does",
               KR_LOG_STR("dir", parent), KR_LOG_STR("trash", trash),
               KR_LOG_STR("reason", strerror(errno)));
    close(pfd);
}

/* ---- start-up: finish interrupted deletions ---- */

typedef struct orphans {
    int dirfd;    /* DATA/topics, or -1 when it does not exist */
    char **names; /* topics with records and no directory */
    size_t n, cap;
    int oom;
} orphans;

static int note_orphan(void *arg, const char *topic, size_t tlen)
{
    orphans *o = arg;
    struct stat st;
    if (o->dirfd >= 0 && tlen > 0 && fstatat(o->dirfd, topic, &st, 0) == 0)
        return 0; /* it has a directory: recovery takes it */
    for (size_t i = 0; i < o->n; i++)
        if (strcmp(o->names[i], topic) == 0)
            return 0;
    if (o->n == o->cap) {
        size_t cap = o->cap ? o->cap * 2 : 8;
        char **n = realloc(o->names, cap * sizeof *n);
        if (n == NULL) {
            o->oom = 1;
            return 1;
        }
        o->names = n;
        o->cap = cap;
    }
    if ((o->names[o->n] = strdup(topic)) == NULL) {
        o->oom = 1;
        return 1;
    }
    o->n++;
    return 0;
}

/* Remove the ~ directories deletions left in DATA/topics. */
static void remove_trash(int dirfd, const char *topics_dir)
{
    int fd = dup(dirfd);
    DIR *d = fd >= 0 ? fdopendir(fd) : NULL;
    if (d == NULL) {
        if (fd >= 0)
            close(fd);
        return;
    }
    struct dirent *de;
    while ((de = readdir(d)) != NULL) {
        if (de->d_name[0] != '~')
            continue;
        if (remove_flat_dir(dirfd, de->d_name) == 0)
            kr_log(KR_LOG_INFO, "removed the files of a deleted topic",
                   KR_LOG_STR("dir", topics_dir), KR_LOG_STR("trash", de->d_name));
        else
            kr_log(KR_LOG_WARN, "cannot remove the files of a deleted topic",
                   KR_LOG_STR("dir", topics_dir), KR_LOG_STR("trash", de->d_name),
                   KR_LOG_STR("reason", strerror(errno)));
    }
    closedir(d);
}

int kr_store_finish_deletions(kr_store *s, char *err, size_t errlen)
{
    orphans o = {.dirfd = open(s->topics_dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC)};
    if (o.dirfd < 0 && errno != ENOENT) {
        snprintf(err, errlen, "cannot open %s: %s", s->topics_dir, strerror(errno));
        return -1;
    }
    if (o.dirfd >= 0)
        remove_trash(o.dirfd, s->topics_dir);
    int rc = kr_view_topic_names(s->view, note_orphan, &o, err, errlen);
    if (rc == 0 && o.oom) {
        snprintf(err, errlen, "out of memory listing the view's topics");
        rc = -1;
    }
    for (size_t i = 0; rc == 0 && i < o.n; i++) {
        rc = kr_view_drop_topic(s->view, o.names[i], strlen(o.names[i]), true, err, errlen);
        if (rc == 0)
            kr_log(KR_LOG_INFO, "finished deleting a topic (its directory was gone)",
                   KR_LOG_STR("topic", o.names[i]));
    }
    for (size_t i = 0; i < o.n; i++)
        free(o.names[i]);
    free(o.names);
    if (o.dirfd >= 0)
        close(o.dirfd);
    return rc;
}

/* ---- GROUP_SEEK, GROUP_DELETE ---- */

/* A CURSOR job for tg, or NULL with msg filled. */
static kr_job *group_job(kr_store *s, kr_tgroup *tg, char *msg, size_t msglen)
{
    kr_job *j = s->draining ? NULL : kr_store_cursor_job(s, tg);
    if (j == NULL)
        snprintf(msg, msglen, "%s",
                 s->draining ? "the server is shutting down; nothing was changed"
                             : "out of memory changing a group; nothing was changed");
    return j;
}

krappy_err kr_store_seek_target(kr_store *s, kr_topic *t, kr_seek_kind to, uint64_t value,
                                uint64_t *out, char *msg, size_t msglen)
{
    uint64_t at = t->first;
    krappy_err e;
    switch (to) {
    case KR_SEEK_EARLIEST:
        break;
    case KR_SEEK_LATEST:
        at = t->next;
        break;
    case KR_SEEK_OFFSET:
        if (value < t->first || value > t->next) {
            snprintf(msg, msglen,
                     "offset %llu is outside what topic %s holds: a cursor goes from first %llu "
                     "to next %llu",
                     (unsigned long long)value, t->name, (unsigned long long)t->first,
                     (unsigned long long)t->next);
            return KRAPPY_E_OFFSET_OUT_OF_RANGE;
        }
        at = value;
        break;
    case KR_SEEK_TIME:
        if ((e = kr_store_offset_for_time(s, t, value, &at, NULL, msg, msglen)) != KRAPPY_OK)
            return e;
        break;
    }
    *out = at;
    return KRAPPY_OK;
}

krappy_err kr_store_group_seek(kr_store *s, kr_tgroup *tg, kr_seek_kind to, uint64_t value,
                               kr_store_done done, void *arg, char *msg, size_t msglen)
{
    kr_topic *t = tg->t;
    uint64_t at;
    krappy_err e = kr_store_seek_target(s, t, to, value, &at, msg, msglen);
    if (e != KRAPPY_OK)
        return e;
    kr_job *j = group_job(s, tg, msg, msglen);
    if (j == NULL)
        return KRAPPY_E_STORAGE;
    uint64_t before = tg->g->cursor;
    uint64_t forgotten = kr_group_seek(tg->g, at);
    j->cursor.cursor = tg->g->cursor;
    j->cursor.origin = tg->g->origin;
    j->done = done;
    j->arg = arg;
    kr_writer_submit(s->writer, j);
    kr_log(KR_LOG_INFO, "group cursor moved", KR_LOG_STR("topic", t->name),
           KR_LOG_STR("group", tg->g->name), KR_LOG_U64("from", before), KR_LOG_U64("to", at),
           KR_LOG_U64("forgotten", forgotten));
    kr_store_wake_group(s, tg);
    return KRAPPY_OK;
}

krappy_err kr_store_group_delete(kr_store *s, kr_tgroup *tg, kr_store_done done, void *arg,
                                 char *msg, size_t msglen)
{
    kr_topic *t = tg->t;
    kr_job *j = group_job(s, tg, msg, msglen);
    if (j == NULL)
        return KRAPPY_E_STORAGE;
    j->cursor.drop = true;
    j->done = done;
    j->arg = arg;
    size_t i = 0;
    while (i < t->n_groups && t->groups[i] != tg)
        i++;
    memmove(t->groups + i, t->groups + i + 1, (t->n_groups - i - 1) * sizeof *t->groups);
    t->n_groups--;
    zero_group_metrics(tg);
    wake_gone(&tg->waiters);
    kr_log(KR_LOG_INFO, "deleting group", KR_LOG_STR("topic", t->name),
           KR_LOG_STR("group", tg->g->name), KR_LOG_U64("cursor", tg->g->cursor));
    kr_writer_submit(s->writer, j);
    return KRAPPY_OK;
}

void kr_store_group_dropped(kr_store *s, kr_job *j)
{
    (void)s;
    kr_tgroup *tg = j->cursor.tg;
    kr_store_result res = {.err = j->err, .first = j->cursor.cursor};
    snprintf(res.msg, sizeof res.msg, "%s", kr_job_msg(j));
    wake_gone(&tg->waiters);
    if (j->done != NULL)
        j->done(j->arg, &res);
    kr_group_free(tg->g);
    free(tg);
}

/* ---- offsets by time ---- */

/* The first event of batch h at pos of the segment file fd with ts >=
 * ts_ms. @return 1 and *offset and *found_ts, 0 when none (or the batch is
 * unreadable), -1 on ENOMEM. */
static int first_in_batch(int fd, uint64_t pos, const kr_batch_hdr *h, uint64_t ts_ms,
                          uint64_t *offset, uint64_t *found_ts)
{
    uint8_t *b = malloc((size_t)h->hlen + h->len);
    if (b == NULL)
        return -1;
    int found = 0;
    ssize_t got = pread(fd, b, (size_t)h->hlen + h->len, (off_t)pos);
    if (got == (ssize_t)(h->hlen + h->len) && kr_batch_verify(b, b + h->hlen, h->len)) {
        const uint8_t *p = b + h->hlen, *end = p + h->len;
        for (uint32_t i = 0; i < h->count && p < end; i++) {
            kr_cbor_item it;
            kr_event_view ev;
            if (kr_cbor_read(p, (size_t)(end - p), &it) < 0 || kr_event_view_read(&it, &ev) < 0)
                break;
            if (ev.ts >= ts_ms) {
                *offset = ev.offset;
                *found_ts = ev.ts;
                found = 1;
                break;
            }
            p += it.raw_len;
        }
    }
    free(b);
    return found;
}

/* Where a corrupt range of seg covering pos ends, or 0 when none does. */
static uint64_t corrupt_end(const kr_segment *seg, uint64_t pos)
{
    for (size_t c = 0; c < seg->n_corrupt; c++)
        if (pos >= seg->corrupt[c].pos && pos < seg->corrupt[c].end)
            return seg->corrupt[c].end;
    return 0;
}

/*
 * Walk seg's batch headers through a window of TIME_WINDOW bytes, for the
 * first batch whose largest ts reaches ts_ms; its file pinned meanwhile
 * (the store's fdcache). @return 1 and *offset, 0 when no event of seg is
 * that recent, -1 (msg filled).
 */
static int time_in_segment(kr_store *s, kr_topic *t, kr_segment *seg, uint64_t ts_ms,
                           uint64_t *offset, uint64_t *found_ts, char *msg, size_t msglen)
{
    if (!seg->verified && kr_segment_verify(s, t, seg) < 0) {
        snprintf(msg, msglen, "cannot read a segment of topic %s: %s", t->name, strerror(errno));
        return -1;
    }
    uint8_t *win = malloc(TIME_WINDOW);
    if (win == NULL) {
        snprintf(msg, msglen, "out of memory searching topic %s by time", t->name);
        return -1;
    }
    int fd = kr_fdfile_get(seg->file);
    if (fd < 0) {
        snprintf(msg, msglen, "cannot open a segment of topic %s: %s", t->name, strerror(errno));
        free(win);
        return -1;
    }
    uint64_t pos = seg->start, win_pos = 0, win_len = 0;
    int rc = 0;
    while (pos + KR_BATCH_HEADER_BYTES <= seg->size) {
        uint64_t skip = corrupt_end(seg, pos);
        if (skip != 0) {
            pos = skip;
            continue;
        }
        uint64_t room =
            seg->size - pos < KR_BATCH_HEADER_MAX ? seg->size - pos : KR_BATCH_HEADER_MAX;
        if (pos < win_pos || pos + room > win_pos + win_len) {
            size_t want = seg->size - pos < TIME_WINDOW ? (size_t)(seg->size - pos) : TIME_WINDOW;
            ssize_t got = pread(fd, win, want, (off_t)pos);
            if (got < (ssize_t)KR_BATCH_HEADER_BYTES) {
                snprintf(msg, msglen, "cannot read a segment of topic %s: %s", t->name,
                         got < 0 ? strerror(errno) : "it is shorter than recorded");
                rc = -1;
                break;
            }
            win_pos = pos;
            win_len = (uint64_t)got;
        }
        kr_batch_hdr h;
        if (kr_batch_header_decode(win + (pos - win_pos), (size_t)(win_pos + win_len - pos), &h) <
            0) {
            snprintf(msg, msglen, "a batch header of topic %s at byte %llu is damaged", t->name,
                     (unsigned long long)pos);
            rc = -1;
            break;
        }
        if (h.max_ts >= ts_ms) {
            rc = first_in_batch(fd, pos, &h, ts_ms, offset, found_ts);
            if (rc != 0)
                break;
        }
        pos += h.hlen + h.len;
    }
    kr_fdfile_put(seg->file);
    if (rc < 0 && msg[0] == '\0')
        snprintf(msg, msglen, "out of memory searching topic %s by time", t->name);
    free(win);
    return rc;
}

krappy_err kr_store_offset_for_time(kr_store *s, kr_topic *t, uint64_t ts_ms, uint64_t *offset,
                                    uint64_t *found_ts, char *msg, size_t msglen)
{
    uint64_t ts_found;
    if (found_ts == NULL)
        found_ts = &ts_found;
    msg[0] = '\0';
    *offset = t->next;
    for (size_t i = 0; i < t->n_segs; i++) {
        kr_segment *seg = t->segs[i];
        if (seg->next <= t->first || seg->max_ts < ts_ms)
            continue;
        int rc = time_in_segment(s, t, seg, ts_ms, offset, found_ts, msg, msglen);
        if (rc < 0)
            return KRAPPY_E_STORAGE;
        if (rc > 0) {
            if (*offset < t->first)
                *offset = t->first;
            return KRAPPY_OK;
        }
    }
    return KRAPPY_OK;
}
