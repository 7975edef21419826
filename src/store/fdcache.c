/*
 * store/fdcache.c - the bounded cache of open segment files (see
 * fdcache.h): one mutex, one list of idle open files in least recently
 * used order. Files pinned or dirty are open but not on the list, so they
 * are never chosen to be closed.
 */
#include "store/fdcache.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/queue.h>
#include <unistd.h>

struct kr_fdfile {
    kr_fdcache *c;
    const char *dir; /* borrowed */
    char name[KR_FDFILE_NAME_MAX];
    int flags;
    int fd;        /* -1 while closed */
    unsigned pins; /* kr_fdfile_get without its put */
    bool dirty;
    bool idle;   /* on c->idle */
    bool doomed; /* freed while pinned: goes at its last put */
    TAILQ_ENTRY(kr_fdfile) link;
};

TAILQ_HEAD(kr_fdfile_list, kr_fdfile);

struct kr_fdcache {
    pthread_mutex_t mu;
    size_t max_open;
    size_t n_open;
    uint64_t opens;
    size_t n_files;             /* kr_fdfile not yet freed */
    bool freed;                 /* kr_fdcache_free came while files lived */
    struct kr_fdfile_list idle; /* the least recently used first */
};

kr_fdcache *kr_fdcache_new(size_t max_open)
{
    kr_fdcache *c = calloc(1, sizeof *c);
    if (c == NULL)
        return NULL;
    pthread_mutex_init(&c->mu, NULL);
    c->max_open = max_open > 0 ? max_open : 1;
    TAILQ_INIT(&c->idle);
    return c;
}

static void cache_destroy(kr_fdcache *c)
{
    pthread_mutex_destroy(&c->mu);
    free(c);
}

void kr_fdcache_free(kr_fdcache *c)
{
    if (c == NULL)
        return;
    pthread_mutex_lock(&c->mu);
    /* Files a reply in flight still pins go at their last put: the cache
     * with the last of them. */
    bool now = c->n_files == 0;
    c->freed = true;
    pthread_mutex_unlock(&c->mu);
    if (now)
        cache_destroy(c);
}

kr_fdfile *kr_fdfile_new(kr_fdcache *c, const char *dir, const char *name, int flags)
{
    if (strlen(name) >= KR_FDFILE_NAME_MAX)
        return NULL;
    kr_fdfile *f = calloc(1, sizeof *f);
    if (f == NULL)
        return NULL;
    f->c = c;
    f->dir = dir;
    snprintf(f->name, sizeof f->name, "%s", name);
    f->flags = flags & (O_RDONLY | O_WRONLY | O_RDWR);
    f->fd = -1;
    pthread_mutex_lock(&c->mu);
    c->n_files++;
    pthread_mutex_unlock(&c->mu);
    return f;
}

/* ---- with c->mu held ---- */

static void unlist(kr_fdfile *f)
{
    if (!f->idle)
        return;
    TAILQ_REMOVE(&f->c->idle, f, link);
    f->idle = false;
}

static void close_file(kr_fdfile *f)
{
    unlist(f);
    if (f->fd >= 0) {
        close(f->fd);
        f->fd = -1;
        f->c->n_open--;
    }
}

/* Close the least recently used idle file. @return false when none is. */
static bool close_lru(kr_fdcache *c)
{
    kr_fdfile *f = TAILQ_FIRST(&c->idle);
    if (f == NULL)
        return false;
    close_file(f);
    return true;
}

/* An open file nobody uses: back on the list, or closed when the cache is
 * past its limit. Dirty files stay open, off the list. */
static void settle(kr_fdfile *f)
{
    kr_fdcache *c = f->c;
    if (f->pins > 0 || f->fd < 0 || f->dirty)
        return;
    if (c->n_open > c->max_open) {
        close_file(f);
        return;
    }
    unlist(f);
    TAILQ_INSERT_TAIL(&c->idle, f, link);
    f->idle = true;
}

static int open_file(kr_fdfile *f)
{
    kr_fdcache *c = f->c;
    char path[PATH_MAX];
    if (snprintf(path, sizeof path, "%s/%s", f->dir, f->name) >= (int)sizeof path) {
        errno = ENAMETOOLONG;
        return -1;
    }
    while (c->n_open >= c->max_open && close_lru(c))
        ;
    for (;;) {
        int fd = open(path, f->flags | O_CLOEXEC);
        if (fd >= 0) {
            f->fd = fd;
            c->n_open++;
            c->opens++;
            return 0;
        }
        /* Out of descriptors for another reason (the limit is shared): an
         * idle file of ours can go. */
        if ((errno != EMFILE && errno != ENFILE) || !close_lru(c))
            return -1;
    }
}

/* ---- API ---- */

void kr_fdfile_adopt(kr_fdfile *f, int fd)
{
    kr_fdcache *c = f->c;
    pthread_mutex_lock(&c->mu);
    f->fd = fd;
    f->pins++;
    c->n_open++;
    pthread_mutex_unlock(&c->mu);
}

/* Close and free f (unpinned); the cache too when it was freed and f was
 * its last file. Called with c->mu held; releases it. */
static void drop(kr_fdfile *f)
{
    kr_fdcache *c = f->c;
    /* Closed once the lock is released: the last close of a deleted file
     * frees its blocks, and the other threads' gets must not wait for it. */
    int fd = f->fd;
    unlist(f);
    if (fd >= 0) {
        f->fd = -1;
        c->n_open--;
    }
    bool last = --c->n_files == 0 && c->freed;
    pthread_mutex_unlock(&c->mu);
    if (fd >= 0)
        close(fd);
    free(f);
    if (last)
        cache_destroy(c);
}

void kr_fdfile_free(kr_fdfile *f)
{
    if (f == NULL)
        return;
    kr_fdcache *c = f->c;
    pthread_mutex_lock(&c->mu);
    if (f->pins > 0) {
        f->doomed = true;
        pthread_mutex_unlock(&c->mu);
        return;
    }
    drop(f);
}

int kr_fdfile_get(kr_fdfile *f)
{
    kr_fdcache *c = f->c;
    pthread_mutex_lock(&c->mu);
    if (f->fd < 0 && open_file(f) < 0) {
        int e = errno;
        pthread_mutex_unlock(&c->mu);
        errno = e;
        return -1;
    }
    unlist(f);
    f->pins++;
    int fd = f->fd;
    pthread_mutex_unlock(&c->mu);
    return fd;
}

void kr_fdfile_put(kr_fdfile *f)
{
    kr_fdcache *c = f->c;
    pthread_mutex_lock(&c->mu);
    if (--f->pins == 0 && f->doomed) {
        drop(f);
        return;
    }
    settle(f);
    pthread_mutex_unlock(&c->mu);
}

void kr_fdfile_dirty(kr_fdfile *f, bool dirty)
{
    kr_fdcache *c = f->c;
    pthread_mutex_lock(&c->mu);
    f->dirty = dirty;
    if (dirty)
        unlist(f);
    else
        settle(f);
    pthread_mutex_unlock(&c->mu);
}

bool kr_fdcache_crowded(kr_fdcache *c)
{
    pthread_mutex_lock(&c->mu);
    bool crowded = c->n_open > c->max_open;
    pthread_mutex_unlock(&c->mu);
    return crowded;
}

bool kr_fdcache_has_room(kr_fdcache *c)
{
    pthread_mutex_lock(&c->mu);
    bool room = c->n_open < c->max_open || !TAILQ_EMPTY(&c->idle);
    pthread_mutex_unlock(&c->mu);
    return room;
}

void kr_fdcache_stats(kr_fdcache *c, size_t *open, uint64_t *opens)
{
    pthread_mutex_lock(&c->mu);
    *open = c->n_open;
    *opens = c->opens;
    pthread_mutex_unlock(&c->mu);
}
