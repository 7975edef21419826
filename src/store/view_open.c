/*
 * store/view_open.c - the latest-value view at start-up: opened as found,
 * refused when it is missing beside existing topics, or rebuilt on request
 * (--rebuild-view).
 *
 * The view is derived from the streams - all but the consumer groups'
 * cursors, the Kafka groups' committed offsets and the idempotent
 * producers' registrations, which it holds too and which no stream can give
 * back (a batch header names its producer by number only). So a view that
 * is gone while topics exist (DATA/view deleted, or never copied with
 * DATA/topics) is not silently made anew, which would drop every group:
 * krappyd refuses to start and says what to do. Asked to rebuild, krappyd
 * reads the cursors, offsets and registrations out of the old view
 * (refusing, with what to do, when it cannot), deletes it, and starts a new
 * one holding just those; recovery then replays every stream into it from
 * its first offset (recovery.c), the producers' sequence states with it.
 */
#include "store/store_int.h"

#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "util/log.h"

/* Whether a RocksDB database is at path (its CURRENT file is). */
static bool view_exists(const char *path)
{
    char current[4096];
    snprintf(current, sizeof current, "%s/CURRENT", path);
    return access(current, F_OK) == 0;
}

/* Call fn for each topic directory name under DATA/topics. @return the
 * number of topics, or -1 (err filled) when the directory cannot be read. */
static long each_topic(kr_store *s, int (*fn)(void *arg, const char *name), void *arg, char *err,
                       size_t errlen)
{
    DIR *d = opendir(s->topics_dir);
    if (d == NULL) {
        if (errno == ENOENT)
            return 0;
        snprintf(err, errlen, "cannot open %s: %s", s->topics_dir, strerror(errno));
        return -1;
    }
    long n = 0;
    struct dirent *de;
    while ((de = readdir(d)) != NULL) {
        if (!kr_topic_name_valid((const uint8_t *)de->d_name, strlen(de->d_name)))
            continue;
        n++;
        if (fn != NULL && fn(arg, de->d_name) != 0) {
            n = -1;
            break;
        }
    }
    closedir(d);
    return n;
}

/* Reading the cursors and registrations of an old view into a batch for
 * the new one. */
typedef struct keep {
    kr_view *old;
    kr_view_batch *b;
    const char *topic;
    size_t kept, kept_producers, kept_koffsets;
    char err[256]; /* why a topic's records could not be read */
} keep;

static int keep_cursor(void *arg, const uint8_t *group, size_t glen, uint64_t cursor,
                       uint64_t origin)
{
    keep *k = arg;
    kr_view_batch_cursor(k->b, k->topic, strlen(k->topic), group, glen, cursor, origin);
    k->kept++;
    return 0;
}

/* A Kafka group's committed offset, as stored (store/koffsets.c). */
static int keep_koffset(void *arg, const uint8_t *group, size_t glen, const uint8_t *value,
                        size_t vlen)
{
    keep *k = arg;
    kr_view_batch_koffset(k->b, k->topic, strlen(k->topic), group, glen, value, vlen);
    k->kept_koffsets++;
    return 0;
}

/* A registration and the topic's next producer number; the states are
 * rebuilt by the replay. */
static int keep_producer(void *arg, const kr_view_prod_rec *r)
{
    keep *k = arg;
    size_t tlen = strlen(k->topic);
    if (r->kind == KR_VIEW_PROD_REG) {
        kr_view_batch_registration(k->b, k->topic, tlen, r->id, r->id_len, r->pid, r->epoch);
        k->kept_producers++;
    } else if (r->kind == KR_VIEW_PROD_NEXT_PID) {
        kr_view_batch_next_pid(k->b, k->topic, tlen, r->pid);
    }
    return 0;
}

/* A topic's settings record, as it is. */
static int keep_settings(keep *k, const char *name, size_t len)
{
    kr_buf val;
    kr_buf_init(&val, 1u << 20);
    int found = kr_view_settings(k->old, name, len, &val, k->err, sizeof k->err);
    if (found > 0)
        kr_view_batch_settings(k->b, name, len, val.data, val.len);
    kr_buf_free(&val);
    return found < 0 ? -1 : 0;
}

static int keep_topic(void *arg, const char *name)
{
    keep *k = arg;
    k->topic = name;
    size_t len = strlen(name);
    return kr_view_cursors(k->old, name, len, keep_cursor, k, k->err, sizeof k->err) < 0 ||
           kr_view_producers(k->old, name, len, keep_producer, k, k->err, sizeof k->err) < 0 ||
           kr_view_koffsets(k->old, name, len, keep_koffset, k, k->err, sizeof k->err) < 0 ||
           keep_settings(k, name, len) < 0;
}

/* --rebuild-view: the cursors, Kafka offsets and registrations out of the
 * old view (when there is one), the old view deleted, a new one opened with
 * them. */
static int rebuild(kr_store *s, const char *path, const kr_view_opts *vo, char *err, size_t errlen)
{
    keep k = {0};
    k.b = kr_view_batch_new();
    if (k.b == NULL) {
        snprintf(err, errlen, "out of memory rebuilding the view");
        return -1;
    }
    int rc = -1;
    if (view_exists(path)) {
        char why[512];
        if (kr_view_open(path, vo, &k.old, why, sizeof why) < 0) {
            snprintf(err, errlen,
                     "--rebuild-view cannot read the consumer groups' cursors out of %s (%s); "
                     "move it away to rebuild without them (groups then start again from "
                     "their `start`, idempotent producers register anew)",
                     path, why);
            goto out;
        }
        long topics = each_topic(s, keep_topic, &k, why, sizeof why);
        kr_view_close(k.old);
        if (topics < 0) {
            snprintf(err, errlen,
                     "--rebuild-view cannot read the consumer groups' cursors out of %s (%s); "
                     "move it away to rebuild without them (groups then start again from "
                     "their `start`, idempotent producers register anew)",
                     path, k.err[0] ? k.err : why);
            goto out;
        }
        if (kr_view_destroy(path, err, errlen) < 0)
            goto out;
    }
    if (kr_view_open(path, vo, &s->view, err, errlen) < 0)
        goto out;
    if (k.kept + k.kept_producers + k.kept_koffsets > 0 &&
        kr_view_write_logged(s->view, k.b, true, err, errlen) < 0)
        goto out;
    kr_log(KR_LOG_WARN,
           "the latest-value view is rebuilt from the streams (--rebuild-view); consumer "
           "groups keep their cursors, Kafka groups their committed offsets, idempotent "
           "producers their registrations",
           KR_LOG_STR("view", path), KR_LOG_U64("cursors_kept", k.kept),
           KR_LOG_U64("producers_kept", k.kept_producers),
           KR_LOG_U64("kafka_offsets_kept", k.kept_koffsets));
    rc = 0;
out:
    kr_view_batch_free(k.b);
    return rc;
}

int kr_store_open_view(kr_store *s, const char *path, const kr_view_opts *vo, char *err,
                       size_t errlen)
{
    if (s->o.rebuild_view)
        return rebuild(s, path, vo, err, errlen);
    if (!view_exists(path)) {
        long topics = each_topic(s, NULL, NULL, err, errlen);
        if (topics < 0)
            return -1;
        if (topics > 0) {
            snprintf(err, errlen,
                     "the latest-value view %s is missing, but %s holds %ld topics: the view "
                     "also held every consumer group's cursor and idempotent producer's "
                     "registration, which the streams cannot give back. Restore it (from a "
                     "backup or snapshot), or start krappyd once with --rebuild-view to "
                     "rebuild the latest values from the streams without them (groups start "
                     "again from their `start` when members register, producers register "
                     "anew)",
                     path, s->topics_dir, topics);
            return -1;
        }
    }
    return kr_view_open(path, vo, &s->view, err, errlen);
}
