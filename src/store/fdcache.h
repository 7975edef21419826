/*
 * store/fdcache.h - a bounded cache of open file descriptors for the
 * store's segment files, shared by the loop and the storage writer (after
 * RocksDB's table cache, sized by max_open_files, and Kafka's segments,
 * whose index files are opened when first used).
 *
 * A file is known by its directory and name and opened when it is used;
 * at most `max_open` files are kept open, the least recently used idle one
 * being closed to make room for the next. A file in use is pinned
 * (kr_fdfile_get ... kr_fdfile_put) and never closed under its user. A
 * file written and not yet synced is marked dirty (kr_fdfile_dirty) and not
 * closed either: closing it could lose the error of a failed writeback,
 * and a later fsync through a new descriptor would then report success.
 * When every open file is pinned or dirty, a file is opened past the limit
 * and closed again when it is put back; kr_fdcache_crowded says so, so
 * that the writer syncs what it wrote and lets it go.
 *
 * Thread-safety: every function may be called from any thread (the cache
 * has one mutex); a kr_fdfile is freed by one owner, once.
 */
#ifndef KR_STORE_FDCACHE_H
#define KR_STORE_FDCACHE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef struct kr_fdcache kr_fdcache;
typedef struct kr_fdfile kr_fdfile;

/* Longest file name a kr_fdfile holds (segment names are 24 bytes). */
#define KR_FDFILE_NAME_MAX 32

/*
 * kr_fdcache_new - a cache keeping at most max_open (at least 1) files open.
 * @return the cache, or NULL on ENOMEM.
 */
kr_fdcache *kr_fdcache_new(size_t max_open);

/* Free the cache, once every kr_fdfile has been freed: at once, or at the
 * last put of a file still pinned (a reply still sent from it). NULL ok. */
void kr_fdcache_free(kr_fdcache *c);

/*
 * kr_fdfile_new - a file of the cache, DIR/NAME opened with `flags`
 * (O_RDONLY or O_RDWR; O_CLOEXEC is added, O_CREAT never) when first used.
 * Nothing is opened here.
 * @param dir  borrowed: must stay valid as long as the file may be opened
 *             (until kr_fdfile_free)
 * @param name copied; at most KR_FDFILE_NAME_MAX - 1 bytes
 * @return the file, or NULL on ENOMEM (or a name too long).
 */
kr_fdfile *kr_fdfile_new(kr_fdcache *c, const char *dir, const char *name, int flags);

/*
 * kr_fdfile_adopt - hand the cache a descriptor already open on f's file
 * (a file just created): it counts as open, and pinned once - as after a
 * kr_fdfile_get, so that it cannot be closed before its creator has put it
 * back. f must not be open. The descriptor is the cache's afterwards.
 */
void kr_fdfile_adopt(kr_fdfile *f, int fd);

/*
 * kr_fdfile_free - forget the file, closing its descriptor - at once, or at
 * its last kr_fdfile_put when it is still pinned (a reply being sent from
 * it). f must not be used by the caller afterwards. NULL ok.
 */
void kr_fdfile_free(kr_fdfile *f);

/*
 * kr_fdfile_get - pin the file and return its descriptor, opening it when
 * it is closed (and closing the least recently used idle file first when
 * max_open are open). The descriptor stays open and the same until the
 * matching kr_fdfile_put; pins nest.
 * @return the descriptor, or -1 with errno (open's).
 */
int kr_fdfile_get(kr_fdfile *f);

/* Unpin (one kr_fdfile_get). The last put of a file the cache holds past
 * its limit closes it, unless it is dirty. */
void kr_fdfile_put(kr_fdfile *f);

/* Mark the file written and not yet synced (dirty), or synced: a dirty
 * file is never closed by the cache. */
void kr_fdfile_dirty(kr_fdfile *f, bool dirty);

/* More files are open than max_open (all the others pinned or dirty): the
 * writer should sync what it wrote so the cache can close it. */
bool kr_fdcache_crowded(kr_fdcache *c);

/* Whether the cache could keep one more file open for a while without
 * going past max_open (a reply sent from a file pins it until it is out). */
bool kr_fdcache_has_room(kr_fdcache *c);

/* Figures for metrics: files open now, and opens since the start. */
void kr_fdcache_stats(kr_fdcache *c, size_t *open, uint64_t *opens);

#endif
