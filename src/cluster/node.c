/*
 * cluster/node.c - a libraft instance on its own thread and libuv loop (see
 * node.h). Requests cross from the caller's thread in `queue` (under lock,
 * then uv_async_send); outcomes cross back in `done` (under lock, then
 * notify or the eventfd). The status copy is refreshed by a uv_check handle,
 * i.e. once per loop turn.
 */
#include "cluster/node.h"

#include <errno.h>
#include <pthread.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/queue.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <unistd.h>

#include <raft.h>
#include <raft/uv.h>
#include <uv.h>

#include "cluster/trace.h"
#include "cluster/transport.h"
#include "util/clock.h"
#include "util/log.h"

#define MSG_MAX       200
#define DISK_CHECK_MS 100
#define STOP_DRAIN_MS 3000 /* longest wait for log writes in flight at stop */
#define TRACE_SPAN    4096 /* indexes one loop turn marks at most (trace.h) */
/*
 * The unit of libraft's log writes: each write covers the block holding the
 * log's tail again, through the end of what was appended. libraft prepares
 * a segment with posix_fallocate, so the first write into a block turns an
 * unwritten extent into a written one: with O_DSYNC that costs ext4 a
 * metadata write and flush more, and the non-blocking attempt (RWF_NOWAIT)
 * answers EAGAIN, so the write is done again on libuv's thread pool. Every
 * node crosses into a new block at the same entry, so the three pay it at
 * once. With 4 KiB blocks and single events that is one write in ~35; with
 * 16 KiB, one in ~140, under the p99, for 16 KiB written instead of 4.
 */
#define RAFT_BLOCK_BYTES (16u * 1024)
/*
 * KR_NODE_SEGMENT_BYTES (node.h; --raft-segment-bytes) is the size libraft
 * prepares each log segment at (its default: 8 MiB). When one fills,
 * libraft closes its writer on the raft thread, and that close ends with
 * io_destroy(2), which waits for the kernel to retire the AIO context: two
 * RCU grace periods, 25-50 ms here, during which the raft thread does
 * nothing - and every node crosses into the next segment at the same
 * entry, so writes stop for that long cluster-wide. A bigger segment makes
 * it 4x rarer (once per 32 MiB of log); the price is the disk libraft
 * reserves ahead: the open segment and two prepared ones. Sizes are
 * rounded down to a whole block.
 */
/*
 * What the raft thread's malloc arena is grown to before libraft starts
 * (reserve_heap), in blocks glibc serves from the arena rather than mmap
 * (under its default 128 KiB threshold). A follower's libraft keeps every
 * entry it receives in memory it allocates there until the next snapshot:
 * with single events, the 16,384 entries between two snapshots take ~8 MiB.
 */
#define RAFT_HEAP_RESERVE (16u << 20)
#define RAFT_HEAP_BLOCK   (64u * 1024)

typedef enum op_kind { OP_APPLY, OP_ADD, OP_ASSIGN, OP_REMOVE, OP_TRANSFER } op_kind;

/* One request, from kr_node_submit & co to its completion. */
typedef struct op {
    op_kind kind;
    kr_node *node;
    kr_node_done done;
    void *arg;
    struct raft_buffer buf; /* OP_APPLY: the entry (raft's once raft_apply took it) */
    size_t bytes;           /* counted in pending */
    uint64_t submit_ns;     /* OP_APPLY while tracing (trace.h): when submitted */
    uint64_t id;            /* member */
    int role;
    char addr[KR_NODE_ADDR_MAX + 1];
    union {
        struct raft_apply apply;
        struct raft_change change;
        struct raft_transfer transfer;
    } req;
    kr_node_err status;
    uint64_t index;
    char msg[MSG_MAX];
    TAILQ_ENTRY(op) link;
} op;

TAILQ_HEAD(op_list, op);

struct kr_node {
    /* Set at start, read-only afterwards. */
    uint64_t id;
    char addr[KR_NODE_ADDR_MAX + 1];
    char *bind;
    char *dir;
    kr_node_peer *peers;
    size_t n_peers;
    uint8_t info[KR_TRANSPORT_INFO_MAX];
    kr_node_opts o; /* timeouts, hooks (string fields point at the copies above) */
    int efd;        /* -1 with a notify function */
    pthread_t thread;

    /* The raft thread's own. */
    uv_loop_t loop;
    uv_async_t wake;
    uv_check_t turn;
    uv_timer_t disk; /* reads the free space of dir's filesystem */
    struct raft_uv_transport transport;
    struct raft_io io;
    /* raft_uv's writes, which the *_checked wrappers call (disk-failure note) */
    int (*uv_append)(struct raft_io *, struct raft_io_append *, const struct raft_entry[], unsigned,
                     raft_io_append_cb);
    int (*uv_set_term)(struct raft_io *, raft_term);
    int (*uv_set_vote)(struct raft_io *, raft_id);
    int (*uv_snapshot_put)(struct raft_io *, unsigned, struct raft_io_snapshot_put *,
                           const struct raft_snapshot *, raft_io_snapshot_put_cb);
    struct raft raft;
    kr_fsm fsm;
    bool draining;               /* stopping: waiting for log writes in flight */
    uint64_t drain_end;          /* loop time (ms) when raft_close goes ahead anyway */
    bool closing;                /* raft_close called */
    bool have_io;                /* raft_uv_init succeeded */
    bool have_raft;              /* raft_init succeeded */
    uint64_t config_seen;        /* configuration index the status copy lists */
    struct raft_barrier barrier; /* a new leader's first entry (commit_own_term) */
    raft_term barrier_term;      /* the term it was appended in (0: none yet) */
    bool barrier_pending;        /* appended, its callback not run yet */
    /* While tracing (trace.h): the highest index marked appended and stored,
     * and each member's match index marked acknowledged (leader). */
    uint64_t traced_last, traced_stored;
    uint64_t traced_match[KR_NODE_MAX_MEMBERS];

    /* Shared, under mu. */
    pthread_mutex_t mu;
    pthread_cond_t cond;
    struct op_list queue; /* requests for the raft thread */
    struct op_list done;  /* completions for the caller */
    size_t pending;       /* bytes submitted and not completed */
    uint64_t free_bytes;  /* on dir's filesystem, as of the last disk timer */
    bool stopping;
    int state_now; /* kr_node_state, atomic (kr_node_state_now) */
    int started;   /* 0 starting, 1 running, -1 failed */
    char start_err[256];
    kr_node_status status;
};

const char *kr_node_strerror(kr_node_err e)
{
    switch (e) {
    case KR_NODE_OK:
        return "done";
    case KR_NODE_NOT_LEADER:
        return "this node is not the leader; send it to the leader";
    case KR_NODE_LEADERSHIP_LOST:
        return "leadership was lost before the entry was committed; its outcome is unknown";
    case KR_NODE_SHUTTING_DOWN:
        return "the node is shutting down";
    case KR_NODE_BUSY:
        return "too many requests in flight, or another membership change is running; "
               "try again";
    case KR_NODE_TOO_BIG:
        return "the command is larger than the 64 MiB a raft entry may carry";
    case KR_NODE_INVALID:
        return "no such member, the id or address is already used, or the role is not valid";
    case KR_NODE_FAILED:
        return "raft refused the request";
    case KR_NODE_IO_ERROR:
        return "the leader could not write the entry to its raft log; it may still be "
               "committed by the followers (outcome unknown)";
    case KR_NODE_NO_SPACE:
        return "the disk under the raft log is nearly full (krappyd keeps two raft segments, "
               "at least 64 MiB, free there); nothing was written: free space on it, or give "
               "it more";
    }
    return "unknown error";
}

/* A libraft status as a kr_node_err. `appended`: the request was in the log
 * already (a callback), so an I/O failure leaves its outcome unknown. */
static kr_node_err from_raft(int rv, bool appended)
{
    switch (rv) {
    case RAFT_IOERR:
    case RAFT_NOSPACE:
        return appended ? KR_NODE_IO_ERROR : KR_NODE_FAILED;
    case 0:
        return KR_NODE_OK;
    case RAFT_NOTLEADER:
        return KR_NODE_NOT_LEADER;
    case RAFT_LEADERSHIPLOST:
        return KR_NODE_LEADERSHIP_LOST;
    case RAFT_SHUTDOWN:
    case RAFT_CANCELED:
        return KR_NODE_SHUTTING_DOWN;
    case RAFT_CANTCHANGE:
    case RAFT_BUSY:
        return KR_NODE_BUSY;
    case RAFT_TOOBIG:
        return KR_NODE_TOO_BIG;
    case RAFT_BADID:
    case RAFT_DUPLICATEID:
    case RAFT_DUPLICATEADDRESS:
    case RAFT_BADROLE:
    case RAFT_NOTFOUND:
    case RAFT_INVALID:
        return KR_NODE_INVALID;
    default:
        return KR_NODE_FAILED;
    }
}

/* ---- completions (raft thread -> caller) ---- */

static void signal_caller(kr_node *n)
{
    if (n->o.notify != NULL) {
        n->o.notify(n->o.notify_arg);
        return;
    }
    uint64_t one = 1;
    ssize_t w = write(n->efd, &one, sizeof one);
    (void)w; /* only fails when the counter is already huge: still readable */
}

/* Hand an op's outcome to the caller's thread. */
static void finish(op *p, kr_node_err status, uint64_t index, const char *msg)
{
    kr_node *n = p->node;
    p->status = status;
    p->index = index;
    snprintf(p->msg, sizeof p->msg, "%s", msg != NULL ? msg : kr_node_strerror(status));
    pthread_mutex_lock(&n->mu);
    bool first = TAILQ_EMPTY(&n->done);
    TAILQ_INSERT_TAIL(&n->done, p, link);
    n->pending -= p->bytes;
    pthread_mutex_unlock(&n->mu);
    if (first)
        signal_caller(n);
}

/* A synchronous refusal by libraft: its message when it left one. */
static void finish_refused(op *p, int rv)
{
    kr_node_err e = from_raft(rv, false);
    const char *m = p->node->raft.errmsg;
    char msg[MSG_MAX];
    if (e == KR_NODE_FAILED || e == KR_NODE_INVALID)
        snprintf(msg, sizeof msg, "%.80s: %.100s", kr_node_strerror(e),
                 m[0] != '\0' ? m : raft_strerror(rv));
    else
        snprintf(msg, sizeof msg, "%s", kr_node_strerror(e));
    finish(p, e, 0, msg);
}

size_t kr_node_drain(kr_node *n)
{
    if (n->efd >= 0) {
        uint64_t v;
        ssize_t r = read(n->efd, &v, sizeof v);
        (void)r; /* EAGAIN when nothing was signalled: fine */
    }
    struct op_list mine = TAILQ_HEAD_INITIALIZER(mine);
    pthread_mutex_lock(&n->mu);
    TAILQ_CONCAT(&mine, &n->done, link);
    pthread_mutex_unlock(&n->mu);
    size_t ran = 0;
    op *p;
    while ((p = TAILQ_FIRST(&mine)) != NULL) {
        TAILQ_REMOVE(&mine, p, link);
        p->done(p->arg, p->status, p->index, p->msg);
        free(p);
        ran++;
    }
    return ran;
}

int kr_node_fd(const kr_node *n)
{
    return n->efd;
}

/* ---- libraft callbacks (raft thread) ---- */

static void apply_done(struct raft_apply *req, int status, void *result)
{
    op *p = req->data;
    (void)result;
    finish(p, from_raft(status, true), status == 0 ? req->index : 0, NULL);
}

static void change_done(struct raft_change *req, int status)
{
    op *p = req->data;
    finish(p, from_raft(status, true), 0, NULL);
}

static void transfer_done(struct raft_transfer *req)
{
    op *p = req->data;
    kr_node *n = p->node;
    raft_id leader;
    const char *addr;
    raft_leader(&n->raft, &leader, &addr);
    if (leader != 0 && leader != n->id && (p->id == 0 || leader == p->id))
        finish(p, KR_NODE_OK, 0, NULL);
    else
        finish(p, KR_NODE_FAILED, 0, "leadership was not taken over in time");
}

/* Run one request on libraft. */
static void start_op(kr_node *n, op *p)
{
    struct raft *r = &n->raft;
    int rv;
    r->errmsg[0] = '\0';
    switch (p->kind) {
    case OP_APPLY:
        p->req.apply.data = p;
        rv = raft_apply(r, &p->req.apply, &p->buf, 1, apply_done);
        if (rv != 0) {
            raft_free(p->buf.base); /* still ours when raft_apply refused */
        } else if (p->submit_ns != 0) {
            kr_trace_mark_at(KR_TRACE_SUBMIT, p->req.apply.index, p->submit_ns);
            kr_trace_mark(KR_TRACE_APPEND, p->req.apply.index);
        }
        p->buf.base = NULL;
        break;
    case OP_ADD:
        p->req.change.data = p;
        rv = raft_add(r, &p->req.change, p->id, p->addr, change_done);
        break;
    case OP_ASSIGN:
        p->req.change.data = p;
        rv = raft_assign(r, &p->req.change, p->id, p->role, change_done);
        break;
    case OP_REMOVE:
        p->req.change.data = p;
        rv = raft_remove(r, &p->req.change, p->id, change_done);
        break;
    case OP_TRANSFER:
    default:
        p->req.transfer.data = p;
        rv = raft_transfer(r, &p->req.transfer, p->id, transfer_done);
        break;
    }
    if (rv != 0)
        finish_refused(p, rv);
}

static void fail_op(op *p)
{
    if (p->kind == OP_APPLY)
        raft_free(p->buf.base);
    p->buf.base = NULL;
    finish(p, KR_NODE_SHUTTING_DOWN, 0, NULL);
}

static void raft_closed(struct raft *r)
{
    kr_node *n = r->data;
    uv_close((uv_handle_t *)&n->wake, NULL);
    uv_close((uv_handle_t *)&n->turn, NULL);
    uv_close((uv_handle_t *)&n->disk, NULL);
}

/* Close raft once no log write is in flight (or the wait is over).
 * libraft 0.15 crashes when raft_close cancels a pending write of the
 * leader's log (node.h), so a stop waits for last_stored to catch up. */
static void maybe_close(kr_node *n)
{
    if (!n->draining || n->closing)
        return;
    if (n->raft.last_stored < raft_last_index(&n->raft) && uv_now(&n->loop) < n->drain_end)
        return;
    n->closing = true;
    raft_close(&n->raft, raft_closed);
}

/* The free space kr_node_submit checks against min_free. */
static uint64_t free_space(const char *dir)
{
    struct statvfs v;
    if (statvfs(dir, &v) < 0)
        return UINT64_MAX; /* cannot tell: do not refuse writes for it */
    return (uint64_t)v.f_bavail * v.f_frsize;
}

/* ---- log writes that fail: fail-stop (node.h's disk-failure note) ---- */

/* A log write on its way through raft_uv: the request raft_uv completes,
 * and raft's own, completed after it. */
typedef struct checked_append {
    struct raft_io_append req;
    struct raft_io_append *raft_req;
    raft_io_append_cb raft_cb;
    kr_node *n;
} checked_append;

static kr_node *node_of_io(struct raft_io *io)
{
    return (kr_node *)((char *)io - offsetof(kr_node, io));
}

/* The log (its entries, term, vote or a snapshot) could not be written:
 * say what and why and what to do, then exit at once, before libraft sees
 * the failure. Stopping the node is no way out: closing a leader with
 * writes in flight crashes libraft as surely. */
static void log_write_failed(kr_node *n, const char *what, int status)
{
    char why[MSG_MAX + 64];
    snprintf(why, sizeof why, "%s%s%s", raft_strerror(status), n->io.errmsg[0] ? ": " : "",
             n->io.errmsg);
    kr_log(KR_LOG_ERROR,
           "the raft log cannot be written: this node stops now (its peers go on without "
           "it); mend the disk or free space under its directory, then start it again and "
           "it catches up",
           KR_LOG_U64("node", n->id), KR_LOG_STR("dir", n->dir), KR_LOG_STR("failed", what),
           KR_LOG_STR("reason", why));
    _exit(1);
}

/* Before each write: raft_uv says what failed in io.errmsg, but only
 * sometimes, and a message from before would mislead. */
static void forget_io_error(kr_node *n)
{
    n->io.errmsg[0] = '\0';
}

/* A write raft_uv completed with `status` (or a synchronous one returned
 * it): a failure stops the node, but not a cancellation (raft_close ends
 * writes that had not started), nor anything once the node closes. */
static void check_completed(kr_node *n, const char *what, int status)
{
    if (status != 0 && status != RAFT_CANCELED && !n->closing)
        log_write_failed(n, what, status);
}

/* A write raft_uv refused at once with rv: a disk failure stops the node. */
static void check_refused(kr_node *n, const char *what, int rv)
{
    if (rv == RAFT_IOERR || rv == RAFT_NOSPACE)
        log_write_failed(n, what, rv);
}

static void append_checked_done(struct raft_io_append *req, int status)
{
    checked_append *a = req->data;
    struct raft_io_append *raft_req = a->raft_req;
    raft_io_append_cb cb = a->raft_cb;
    check_completed(a->n, "appending entries", status);
    free(a);
    cb(raft_req, status);
}

/* raft_io's append: raft_uv's, its outcome seen first by append_checked_done. */
static int append_checked(struct raft_io *io, struct raft_io_append *req,
                          const struct raft_entry entries[], unsigned n_entries,
                          raft_io_append_cb cb)
{
    kr_node *n = node_of_io(io);
    checked_append *a = malloc(sizeof *a);
    if (a == NULL)
        return RAFT_NOMEM;
    *a = (checked_append){.req.data = a, .raft_req = req, .raft_cb = cb, .n = n};
    forget_io_error(n);
    int rv = n->uv_append(io, &a->req, entries, n_entries, append_checked_done);
    if (rv != 0)
        free(a);
    check_refused(n, "appending entries", rv);
    return rv;
}

/* A snapshot on its way to the disk (taken here, or installed from the
 * leader), as checked_append. */
typedef struct checked_snapshot {
    struct raft_io_snapshot_put req;
    struct raft_io_snapshot_put *raft_req;
    raft_io_snapshot_put_cb raft_cb;
    kr_node *n;
} checked_snapshot;

static void snapshot_checked_done(struct raft_io_snapshot_put *req, int status)
{
    checked_snapshot *a = req->data;
    struct raft_io_snapshot_put *raft_req = a->raft_req;
    raft_io_snapshot_put_cb cb = a->raft_cb;
    check_completed(a->n, "storing a snapshot", status);
    free(a);
    cb(raft_req, status);
}

/* raft_io's snapshot_put: raft_uv's. A failure left to libraft 0.15 leaves
 * a follower that was installing the snapshot stuck behind for good (no
 * later install reaches the disk) - fail-stop instead. */
static int snapshot_put_checked(struct raft_io *io, unsigned trailing,
                                struct raft_io_snapshot_put *req,
                                const struct raft_snapshot *snapshot, raft_io_snapshot_put_cb cb)
{
    kr_node *n = node_of_io(io);
    checked_snapshot *a = malloc(sizeof *a);
    if (a == NULL)
        return RAFT_NOMEM;
    *a = (checked_snapshot){.req.data = a, .raft_req = req, .raft_cb = cb, .n = n};
    forget_io_error(n);
    int rv = n->uv_snapshot_put(io, trailing, &a->req, snapshot, snapshot_checked_done);
    if (rv != 0)
        free(a);
    check_refused(n, "storing a snapshot", rv);
    return rv;
}

/* raft_io's set_term and set_vote: raft_uv's, written and synced before
 * they return. A failure left to libraft 0.15 halts raft on this node for
 * good (RAFT_UNAVAILABLE: no vote, no log) - fail-stop instead. */
static int set_term_checked(struct raft_io *io, raft_term term)
{
    kr_node *n = node_of_io(io);
    forget_io_error(n);
    int rv = n->uv_set_term(io, term);
    check_completed(n, "recording the term", rv);
    return rv;
}

static int set_vote_checked(struct raft_io *io, raft_id id)
{
    kr_node *n = node_of_io(io);
    forget_io_error(n);
    int rv = n->uv_set_vote(io, id);
    check_completed(n, "recording the vote", rv);
    return rv;
}

static void on_disk(uv_timer_t *t)
{
    kr_node *n = t->data;
    maybe_close(n); /* the loop may be idle while a stop waits */
    uint64_t f = free_space(n->dir);
    pthread_mutex_lock(&n->mu);
    n->free_bytes = f;
    pthread_mutex_unlock(&n->mu);
}

/* The caller queued requests, or asked to stop. */
static void on_wake(uv_async_t *a)
{
    kr_node *n = a->data;
    struct op_list mine = TAILQ_HEAD_INITIALIZER(mine);
    pthread_mutex_lock(&n->mu);
    TAILQ_CONCAT(&mine, &n->queue, link);
    bool stop = n->stopping;
    pthread_mutex_unlock(&n->mu);
    op *p;
    while ((p = TAILQ_FIRST(&mine)) != NULL) {
        TAILQ_REMOVE(&mine, p, link);
        if (stop)
            fail_op(p);
        else
            start_op(n, p);
    }
    if (stop && !n->draining) {
        n->draining = true;
        n->drain_end = uv_now(&n->loop) + STOP_DRAIN_MS;
        maybe_close(n);
    }
}

static void barrier_done(struct raft_barrier *req, int status)
{
    kr_node *n = req->data;
    (void)status; /* lost leadership or closing: the next term's leader appends its own */
    n->barrier_pending = false;
}

/*
 * A new leader appends a barrier at once (Raft section 8's no-op entry):
 * Raft commits the entries of earlier terms only with one of the leader's
 * own term, so a libraft that keeps that rule (releases after Debian's
 * 0.15.0, which counts replicas for them too: node.h) would leave the
 * events an old leader acknowledged just before it died - on the
 * followers, not yet known to be committed - unapplied, unread, until the
 * next write.
 */
static void commit_own_term(kr_node *n, struct raft *r)
{
    if (n->barrier_pending || n->barrier_term == r->current_term)
        return;
    n->barrier.data = n;
    if (raft_barrier(r, &n->barrier, barrier_done) == 0) {
        n->barrier_pending = true;
        n->barrier_term = r->current_term;
    }
}

/* Mark the stages of indexes in (*seen, upto] (trace.h), at most the
 * newest TRACE_SPAN of them; *seen follows upto, back too. */
static void trace_span(kr_trace_stage stage, uint64_t *seen, uint64_t upto)
{
    uint64_t from = *seen + TRACE_SPAN < upto ? upto - TRACE_SPAN : *seen;
    for (uint64_t i = from + 1; i <= upto; i++)
        kr_trace_mark(stage, i);
    *seen = upto;
}

/* This turn's progress of the log, for the trace: appended and stored
 * here, and on a leader acknowledged by each follower. */
static void trace_turn(kr_node *n, struct raft *r, bool lead)
{
    trace_span(KR_TRACE_APPEND, &n->traced_last, raft_last_index(r));
    trace_span(KR_TRACE_STORED, &n->traced_stored, r->last_stored);
    for (unsigned i = 0; i < r->configuration.n && i < KR_NODE_MAX_MEMBERS; i++) {
        if (!lead || r->leader_state.progress == NULL || r->configuration.servers[i].id == n->id)
            n->traced_match[i] = 0;
        else if (n->traced_match[i] == 0)
            n->traced_match[i] = r->leader_state.progress[i].match_index;
        else
            trace_span(KR_TRACE_ACK1, &n->traced_match[i], r->leader_state.progress[i].match_index);
    }
}

/* Copy what kr_node_get_status reports (once per loop turn). */
static void on_turn(uv_check_t *c)
{
    kr_node *n = c->data;
    struct raft *r = &n->raft;
    maybe_close(n);
    if (n->closing) {
        /* raft is being torn down: its fields are no longer to be read. */
        pthread_mutex_lock(&n->mu);
        n->status.state = KR_NODE_UNAVAILABLE;
        n->status.halted = false;
        pthread_mutex_unlock(&n->mu);
        __atomic_store_n(&n->state_now, KR_NODE_UNAVAILABLE, __ATOMIC_RELEASE);
        return;
    }
    raft_id leader;
    const char *leader_addr;
    raft_leader(r, &leader, &leader_addr);
    int state = raft_state(r);
    bool lead = state == RAFT_LEADER;
    if (lead)
        commit_own_term(n, r);
    if (kr_trace_on())
        trace_turn(n, r, lead);
    __atomic_store_n(&n->state_now, state, __ATOMIC_RELEASE);
    uint64_t cfg = r->configuration_uncommitted_index > r->configuration_index
                       ? r->configuration_uncommitted_index
                       : r->configuration_index;
    pthread_mutex_lock(&n->mu);
    kr_node_status *s = &n->status;
    s->id = n->id;
    s->state = (kr_node_state)state;
    s->halted = state == RAFT_UNAVAILABLE && !n->closing;
    s->term = r->current_term;
    s->commit = r->commit_index;
    s->applied = r->last_applied;
    s->last_index = raft_last_index(r);
    if (s->leader_id != leader) {
        s->leader_id = leader;
        snprintf(s->leader_addr, sizeof s->leader_addr, "%s",
                 leader != 0 && leader_addr != NULL ? leader_addr : "");
    }
    /* Addresses are copied only when the configuration changed. */
    bool addrs = cfg != n->config_seen || s->n_members != r->configuration.n;
    n->config_seen = cfg;
    unsigned m =
        r->configuration.n < KR_NODE_MAX_MEMBERS ? r->configuration.n : KR_NODE_MAX_MEMBERS;
    s->n_members = m;
    for (unsigned i = 0; i < m; i++) {
        const struct raft_server *sv = &r->configuration.servers[i];
        kr_node_member *mb = &s->members[i];
        if (addrs || mb->id != sv->id) {
            mb->id = sv->id;
            snprintf(mb->addr, sizeof mb->addr, "%s", sv->address);
        }
        mb->role = (kr_member_role)sv->role;
        if (lead && r->leader_state.progress != NULL) {
            mb->match =
                sv->id == n->id ? raft_last_index(r) : r->leader_state.progress[i].match_index;
            mb->reachable = sv->id == n->id || r->leader_state.progress[i].recent_recv;
        } else {
            mb->match = 0;
            mb->reachable = false;
        }
    }
    pthread_mutex_unlock(&n->mu);
}

/* ---- start-up (raft thread) ---- */

static int bootstrap(kr_node *n, char *err, size_t errlen)
{
    struct raft_configuration conf;
    raft_configuration_init(&conf);
    int rv = 0;
    for (size_t i = 0; i < n->n_peers && rv == 0; i++)
        rv = raft_configuration_add(&conf, n->peers[i].id, n->peers[i].addr, RAFT_VOTER);
    if (rv != 0) {
        snprintf(err, errlen, "--peers: %s (ids and addresses must be distinct)",
                 raft_strerror(rv));
    } else {
        rv = raft_bootstrap(&n->raft, &conf);
        if (rv == RAFT_CANTBOOTSTRAP) {
            rv = 0; /* the directory already holds a cluster's state: just start */
        } else if (rv != 0) {
            snprintf(err, errlen, "cannot bootstrap the raft log in %.80s: %.120s", n->dir,
                     raft_errmsg(&n->raft));
        }
    }
    raft_configuration_close(&conf);
    return rv;
}

static void close_during_start(struct raft *r)
{
    (void)r;
}

/* Open everything; on failure undo it. @return 0, or -1 with err. */
static int open_raft(kr_node *n, char *err, size_t errlen)
{
    int rv;
    if (uv_loop_init(&n->loop) != 0) {
        snprintf(err, errlen, "cannot create the raft thread's event loop");
        return -1;
    }
    kr_transport_opts to = {.bind = n->bind,
                            .handshake_ms = n->o.handshake_ms,
                            .connect_ms = n->o.connect_ms,
                            .info = n->o.info,
                            .info_len = n->o.info_len,
                            .probe = n->o.probe,
                            .on_info = n->o.on_info,
                            .arg = n->o.hook_arg};
    if (kr_transport_init(&n->transport, &n->loop, &to, err, errlen) < 0)
        goto fail_loop;
    rv = raft_uv_init(&n->io, &n->loop, n->dir, &n->transport);
    if (rv != 0) {
        snprintf(err, errlen, "raft directory %.80s: %.150s", n->dir,
                 n->io.errmsg[0] ? n->io.errmsg : raft_strerror(rv));
        goto fail_transport;
    }
    n->have_io = true;
    raft_uv_set_connect_retry_delay(&n->io, n->o.connect_retry_ms);
    raft_uv_set_segment_size(&n->io, (size_t)n->o.segment_bytes);
    /* Every write of the log, term and vote passes a *_checked wrapper
     * (node.h's disk-failure note). */
    n->uv_append = n->io.append;
    n->io.append = append_checked;
    n->uv_set_term = n->io.set_term;
    n->io.set_term = set_term_checked;
    n->uv_set_vote = n->io.set_vote;
    n->io.set_vote = set_vote_checked;
    n->uv_snapshot_put = n->io.snapshot_put;
    n->io.snapshot_put = snapshot_put_checked;
    /* libraft compresses each snapshot with LZ4 on libuv's pool by default:
     * a compression context and a buffer of over 1 MiB mapped and unmapped
     * per snapshot (the pool thread's arena made on its first), for a
     * snapshot of positions that LZ4 hardly shrinks. Compressed snapshots
     * already on disk still load: libraft recognises them by their header. */
    raft_uv_set_snapshot_compression(&n->io, false);
    kr_fsm_init(&n->fsm, &n->o.fsm);
    rv = raft_init(&n->raft, &n->io, &n->fsm.fsm, n->id, n->addr);
    if (rv != 0) {
        snprintf(err, errlen, "cannot start raft: %.200s",
                 n->raft.errmsg[0] ? n->raft.errmsg : raft_strerror(rv));
        goto fail_io;
    }
    n->have_raft = true;
    /* After raft_init: its probe of the directory sets the block size. */
    raft_uv_set_block_size(&n->io, RAFT_BLOCK_BYTES);
    n->raft.data = n;
    kr_fsm_bind(&n->fsm, &n->raft);
    raft_set_election_timeout(&n->raft, n->o.election_ms);
    raft_set_heartbeat_timeout(&n->raft, n->o.heartbeat_ms);
    raft_set_snapshot_threshold(&n->raft, n->o.snapshot_threshold);
    raft_set_snapshot_trailing(&n->raft, n->o.snapshot_trailing);
    /* libraft's default is 30 s: a follower killed before its answer to a
     * snapshot reached the leader got nothing more for that long. krappy's
     * snapshots hold the store's bookkeeping, not its events (those are
     * fetched after, catchup.h), so they travel in well under a second. */
    raft_set_install_snapshot_timeout(&n->raft, 5 * n->o.election_ms);
    raft_set_pre_vote(&n->raft, true);
    if (n->n_peers > 0 && bootstrap(n, err, errlen) != 0)
        goto fail_raft;
    rv = raft_start(&n->raft);
    if (rv != 0) {
        /* libraft does not always pass its layers' messages up. */
        const char *why = n->raft.errmsg[0]        ? n->raft.errmsg
                          : n->io.errmsg[0]        ? n->io.errmsg
                          : n->transport.errmsg[0] ? n->transport.errmsg
                                                   : raft_strerror(rv);
        snprintf(err, errlen, "cannot start raft: %.200s", why);
        goto fail_raft;
    }
    uv_async_init(&n->loop, &n->wake, on_wake);
    n->wake.data = n;
    uv_check_init(&n->loop, &n->turn);
    n->turn.data = n;
    uv_check_start(&n->turn, on_turn);
    on_turn(&n->turn);
    uv_timer_init(&n->loop, &n->disk);
    n->disk.data = n;
    uv_timer_start(&n->disk, on_disk, 0, DISK_CHECK_MS);
    n->free_bytes = free_space(n->dir); /* before the caller may submit */
    return 0;

fail_raft:
    raft_close(&n->raft, close_during_start);
    uv_run(&n->loop, UV_RUN_DEFAULT);
    n->have_raft = false;
fail_io:
    raft_uv_close(&n->io);
    n->have_io = false;
fail_transport:
    kr_transport_release(&n->transport);
fail_loop:
    uv_run(&n->loop, UV_RUN_DEFAULT);
    uv_loop_close(&n->loop);
    return -1;
}

/*
 * Grow this thread's malloc arena once, now. glibc grows a thread's arena
 * a page at a time, each step an mprotect that takes the process's mmap
 * lock for writing (every other thread's page faults and mappings wait);
 * a follower's log, received into memory allocated here, would make one
 * per 4 KiB of entries. Blocks taken and given back
 * leave the arena writable up to RAFT_HEAP_RESERVE: glibc returns the pages
 * (madvise, once the free top passes its trim threshold) but keeps the
 * range, and the log grows into it with page faults alone. raft_malloc:
 * libraft's allocator, which the compiler cannot drop as unused.
 */
static void reserve_heap(void)
{
    void *blk[RAFT_HEAP_RESERVE / RAFT_HEAP_BLOCK];
    size_t got = 0;
    while (got < sizeof blk / sizeof *blk && (blk[got] = raft_malloc(RAFT_HEAP_BLOCK)) != NULL)
        got++;
    while (got > 0)
        raft_free(blk[--got]);
}

static void *raft_thread(void *arg)
{
    kr_node *n = arg;
    char err[256] = "";
    /* Named for perf and top; libuv's pool, started from here, inherits it. */
    pthread_setname_np(pthread_self(), "kr-raft");
    reserve_heap();
    int ok = open_raft(n, err, sizeof err);
    pthread_mutex_lock(&n->mu);
    n->started = ok == 0 ? 1 : -1;
    snprintf(n->start_err, sizeof n->start_err, "%s", err);
    pthread_cond_signal(&n->cond);
    pthread_mutex_unlock(&n->mu);
    if (ok != 0)
        return NULL;
    uv_run(&n->loop, UV_RUN_DEFAULT);
    /* raft_close has completed and every handle is closed. */
    raft_uv_close(&n->io);
    kr_transport_release(&n->transport);
    if (uv_loop_close(&n->loop) != 0)
        kr_log(KR_LOG_ERROR, "raft loop closed with handles still open");
    return NULL;
}

/* ---- the caller's side ---- */

static void free_node(kr_node *n)
{
    if (n == NULL)
        return;
    kr_trace_close(n->id);
    for (size_t i = 0; i < n->n_peers; i++)
        free((char *)n->peers[i].addr);
    free(n->peers);
    free(n->bind);
    free(n->dir);
    if (n->efd >= 0)
        close(n->efd);
    pthread_mutex_destroy(&n->mu);
    pthread_cond_destroy(&n->cond);
    free(n);
}

/* Check the options and copy them into n. @return 0, or -1 with err. */
static int take_opts(kr_node *n, const kr_node_opts *o, char *err, size_t errlen)
{
    if (o->id == 0) {
        snprintf(err, errlen, "the node id must be greater than 0");
        return -1;
    }
    if (o->addr == NULL || o->addr[0] == '\0' || strlen(o->addr) > KR_NODE_ADDR_MAX) {
        snprintf(err, errlen, "the raft address must be HOST:PORT of at most %d bytes",
                 KR_NODE_ADDR_MAX);
        return -1;
    }
    if (o->dir == NULL || o->dir[0] == '\0') {
        snprintf(err, errlen, "the raft directory is not set");
        return -1;
    }
    if (o->fsm.apply == NULL || o->fsm.snapshot == NULL || o->fsm.restore == NULL) {
        snprintf(err, errlen, "the state machine needs apply, snapshot and restore functions");
        return -1;
    }
    if (o->info_len > KR_TRANSPORT_INFO_MAX) {
        snprintf(err, errlen, "the node's info is longer than %d bytes", KR_TRANSPORT_INFO_MAX);
        return -1;
    }
    n->o = *o;
    n->id = o->id;
    snprintf(n->addr, sizeof n->addr, "%s", o->addr);
    n->dir = strdup(o->dir);
    n->bind = o->bind != NULL ? strdup(o->bind) : NULL;
    if (n->dir == NULL || (o->bind != NULL && n->bind == NULL))
        goto nomem;
    bool self = o->n_peers == 0;
    if (o->n_peers > 0) {
        n->peers = calloc(o->n_peers, sizeof *n->peers);
        if (n->peers == NULL)
            goto nomem;
        for (size_t i = 0; i < o->n_peers; i++) {
            const kr_node_peer *p = &o->peers[i];
            if (p->id == 0 || p->addr == NULL || strlen(p->addr) > KR_NODE_ADDR_MAX) {
                snprintf(err, errlen, "--peers: member %zu needs an id > 0 and HOST:PORT", i + 1);
                return -1;
            }
            n->peers[i].id = p->id;
            n->peers[i].addr = strdup(p->addr);
            n->n_peers = i + 1;
            if (n->peers[i].addr == NULL)
                goto nomem;
            self |= p->id == o->id;
        }
    }
    if (!self) {
        snprintf(err, errlen, "--peers does not list this node's id %llu",
                 (unsigned long long)o->id);
        return -1;
    }
    if (o->info_len > 0)
        memcpy(n->info, o->info, o->info_len);
    n->o.info = n->info;
    n->o.addr = n->addr;
    n->o.bind = n->bind;
    n->o.dir = n->dir;
    n->o.peers = NULL;
    n->o.n_peers = 0;
    if (n->o.election_ms == 0)
        n->o.election_ms = KR_NODE_ELECTION_MS;
    if (n->o.heartbeat_ms == 0)
        n->o.heartbeat_ms = KR_NODE_HEARTBEAT_MS;
    if (n->o.heartbeat_ms >= n->o.election_ms) {
        snprintf(err, errlen,
                 "the heartbeat (%u ms) must be shorter than the election timeout "
                 "(%u ms)",
                 n->o.heartbeat_ms, n->o.election_ms);
        return -1;
    }
    if (n->o.snapshot_threshold == 0)
        n->o.snapshot_threshold = KR_NODE_SNAPSHOT_EVERY;
    if (n->o.snapshot_trailing == 0)
        n->o.snapshot_trailing = KR_NODE_SNAPSHOT_KEEP;
    if (n->o.connect_retry_ms == 0)
        n->o.connect_retry_ms = KR_NODE_CONNECT_RETRY_MS;
    if (n->o.max_pending == 0)
        n->o.max_pending = KR_NODE_MAX_PENDING;
    if (n->o.segment_bytes == 0)
        n->o.segment_bytes = KR_NODE_SEGMENT_BYTES;
    n->o.segment_bytes -= n->o.segment_bytes % RAFT_BLOCK_BYTES;
    if (n->o.segment_bytes < RAFT_BLOCK_BYTES)
        n->o.segment_bytes = RAFT_BLOCK_BYTES;
    /* Room for the two segments libraft prepares ahead, at least. */
    if (n->o.min_free == 0)
        n->o.min_free =
            2 * n->o.segment_bytes > KR_NODE_MIN_FREE ? 2 * n->o.segment_bytes : KR_NODE_MIN_FREE;
    return 0;
nomem:
    snprintf(err, errlen, "out of memory");
    return -1;
}

int kr_node_start(const kr_node_opts *o, kr_node **out, char *err, size_t errlen)
{
    *out = NULL;
    kr_node *n = calloc(1, sizeof *n);
    if (n == NULL) {
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    n->efd = -1;
    pthread_mutex_init(&n->mu, NULL);
    pthread_cond_init(&n->cond, NULL);
    TAILQ_INIT(&n->queue);
    TAILQ_INIT(&n->done);
    if (take_opts(n, o, err, errlen) < 0)
        goto fail;
    if (mkdir(n->dir, 0700) < 0 && errno != EEXIST) {
        snprintf(err, errlen, "cannot create raft directory %s: %s", n->dir, strerror(errno));
        goto fail;
    }
    if (o->notify == NULL) {
        n->efd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
        if (n->efd < 0) {
            snprintf(err, errlen, "eventfd: %s", strerror(errno));
            goto fail;
        }
    }
    kr_trace_open(n->id);
    if (pthread_create(&n->thread, NULL, raft_thread, n) != 0) {
        snprintf(err, errlen, "cannot start the raft thread");
        goto fail;
    }
    pthread_mutex_lock(&n->mu);
    while (n->started == 0)
        pthread_cond_wait(&n->cond, &n->mu);
    int started = n->started;
    pthread_mutex_unlock(&n->mu);
    if (started < 0) {
        pthread_join(n->thread, NULL);
        snprintf(err, errlen, "%s", n->start_err);
        goto fail;
    }
    *out = n;
    return 0;
fail:
    free_node(n);
    return -1;
}

void kr_node_stop(kr_node *n)
{
    if (n == NULL)
        return;
    pthread_mutex_lock(&n->mu);
    n->stopping = true;
    pthread_mutex_unlock(&n->mu);
    uv_async_send(&n->wake);
    pthread_join(n->thread, NULL);
    kr_node_drain(n);
    free_node(n);
}

/* Queue an op for the raft thread. @return KR_NODE_OK, or why not (op freed). */
static kr_node_err enqueue(kr_node *n, op *p)
{
    pthread_mutex_lock(&n->mu);
    kr_node_err e = KR_NODE_OK;
    if (n->stopping)
        e = KR_NODE_SHUTTING_DOWN;
    else if (p->bytes > 0 && n->pending + p->bytes > n->o.max_pending)
        e = KR_NODE_BUSY;
    else if (p->bytes > 0 && (n->free_bytes < n->o.min_free ||
                              n->free_bytes - n->o.min_free < n->pending + p->bytes))
        e = KR_NODE_NO_SPACE; /* a full raft disk crashes libraft (node.h) */
    if (e == KR_NODE_OK) {
        n->pending += p->bytes;
        TAILQ_INSERT_TAIL(&n->queue, p, link);
    }
    pthread_mutex_unlock(&n->mu);
    if (e != KR_NODE_OK) {
        if (p->kind == OP_APPLY)
            raft_free(p->buf.base);
        free(p);
        return e;
    }
    uv_async_send(&n->wake);
    return KR_NODE_OK;
}

static op *new_op(kr_node *n, op_kind kind, kr_node_done done, void *arg)
{
    op *p = calloc(1, sizeof *p);
    if (p == NULL)
        return NULL;
    p->kind = kind;
    p->node = n;
    p->done = done;
    p->arg = arg;
    return p;
}

kr_node_err kr_node_submit(kr_node *n, const void *data, size_t len, kr_node_done done, void *arg)
{
    if (len > KR_ENTRY_MAX_BYTES)
        return KR_NODE_TOO_BIG;
    op *p = new_op(n, OP_APPLY, done, arg);
    if (p == NULL)
        return KR_NODE_FAILED;
    if (kr_entry_wrap(data, len, &p->buf) != 0) {
        free(p);
        return KR_NODE_FAILED;
    }
    p->bytes = p->buf.len;
    if (kr_trace_on())
        p->submit_ns = kr_mono_ns();
    return enqueue(n, p);
}

static kr_node_err member_op(kr_node *n, op_kind kind, uint64_t id, const char *addr, int role,
                             kr_node_done done, void *arg)
{
    if (addr != NULL && (addr[0] == '\0' || strlen(addr) > KR_NODE_ADDR_MAX))
        return KR_NODE_INVALID;
    op *p = new_op(n, kind, done, arg);
    if (p == NULL)
        return KR_NODE_FAILED;
    p->id = id;
    p->role = role;
    if (addr != NULL)
        snprintf(p->addr, sizeof p->addr, "%s", addr);
    return enqueue(n, p);
}

kr_node_err kr_node_add(kr_node *n, uint64_t id, const char *addr, kr_node_done done, void *arg)
{
    if (addr == NULL)
        return KR_NODE_INVALID;
    return member_op(n, OP_ADD, id, addr, 0, done, arg);
}

kr_node_err kr_node_assign(kr_node *n, uint64_t id, kr_member_role role, kr_node_done done,
                           void *arg)
{
    return member_op(n, OP_ASSIGN, id, NULL, (int)role, done, arg);
}

kr_node_err kr_node_remove(kr_node *n, uint64_t id, kr_node_done done, void *arg)
{
    return member_op(n, OP_REMOVE, id, NULL, 0, done, arg);
}

kr_node_err kr_node_transfer(kr_node *n, uint64_t id, kr_node_done done, void *arg)
{
    return member_op(n, OP_TRANSFER, id, NULL, 0, done, arg);
}

kr_node_state kr_node_state_now(const kr_node *n)
{
    return (kr_node_state)__atomic_load_n(&n->state_now, __ATOMIC_ACQUIRE);
}

void kr_node_get_status(kr_node *n, kr_node_status *out)
{
    pthread_mutex_lock(&n->mu);
    *out = n->status;
    pthread_mutex_unlock(&n->mu);
}
