/*
 * store/writer.h - the storage writer thread (internal to src/store).
 *
 * The loop queues jobs; the writer takes everything queued since its last
 * round and runs the jobs in order: topic creation, the fdatasyncs of SYNC
 * jobs (the loop writes the stream itself, append.h), group cursors (every
 * cursor of a round in one RocksDB write), producer registrations (WAL on,
 * synced), deletions of retired segments and of deleted topics (after every
 * checkpoint queued before them is in RocksDB).
 * It hands the whole round back to the loop with one event_active (the
 * loop's event base must have been made thread aware with
 * evthread_use_pthreads). Checkpoints pass through to a second thread (the
 * view thread), which writes them into RocksDB while the writer goes on.
 * The writer never touches a socket or a loop-owned structure: it reads only
 * the immutable names and directories of topics and groups, and the file
 * descriptors a job lends it, which the loop keeps pinned in the store's
 * fdcache until the job is back.
 */
#ifndef KR_STORE_WRITER_H
#define KR_STORE_WRITER_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/queue.h>

#include "store/job.h"
#include "store/store.h"

typedef struct kr_writer kr_writer;

/*
 * kr_writer_start - start the thread. `on_done` runs on the loop thread with
 * the jobs of one round (in submission order); it owns them afterwards.
 * @return 0, or -1 (errno).
 */
int kr_writer_start(kr_writer **out, struct event_base *base, kr_view *view, kr_metrics *m,
                    void (*on_done)(void *arg, struct kr_job_list *jobs), void *arg);

/* Queue a job (loop thread). */
void kr_writer_submit(kr_writer *w, kr_job *j);

/*
 * kr_writer_hold, kr_writer_release - between them (loop thread, nesting
 * allowed), submitted jobs wake a sleeping writer once, at the outermost
 * release, instead of once each: the requests of one read from a socket
 * become one round. A writer already awake takes them as usual. NULL ok.
 */
void kr_writer_hold(kr_writer *w);
void kr_writer_release(kr_writer *w);

/* Finish queued jobs, deliver them, stop and join the thread. NULL ok.
 * Completions are delivered through the loop: drive it afterwards. */
void kr_writer_stop(kr_writer *w);

/* Jobs queued or running (loop thread, for shutdown). */
unsigned kr_writer_pending(kr_writer *w);

#endif
