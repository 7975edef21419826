/*
 * server/cluster_batch.c - a loop turn's PUBLISHes and PRODUCER_REGISTERs
 * on a cluster's leader go to the log as one BATCH entry (cluster/cmd.h).
 *
 * Every raft entry costs the leader a write of its log (and the followers
 * theirs) before it commits; one entry per PUBLISH makes those writes the
 * bound on a cluster's ingest. The writes asked for during one loop turn,
 * over all connections, are gathered here and sent when the turn's other
 * callbacks have run (an event activated by the first), as one BATCH whose
 * sub-commands every node applies in order, each with the result it would
 * have alone; each request is answered from its own. A batch closes early
 * where it would pass KR_CLUSTER_COMMAND_MAX, and one command alone is
 * sent as itself.
 *
 * Group commit. A big PUBLISH reaches the loop over several turns (its
 * frame read in pieces), so a turn rarely completes more than one: with
 * BATCH_IN_FLIGHT batches sent and not yet committed, the next one waits
 * for a commit and gathers what arrives meanwhile. An idle leader sends at
 * once; a busy one sends fewer, fuller entries.
 *
 * Order. Any other command sent to the log (kr_server_cluster_command)
 * sends the open batch first, so the log holds every command in the order
 * the leader took them, and a connection's requests keep their order.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cluster/cmd.h"
#include "server/server.h"
#include "util/grow.h"

#define BATCH_IN_FLIGHT 2 /* batches sent and not committed before the next waits */

/* A request of a batch and where its command lies in the batch's bytes. */
typedef struct bwaiter {
    kr_replica_done done;
    void *arg;
    size_t off, len;
} bwaiter;

/* The commands of one loop turn (or of a part of it, closed early). */
typedef struct wbatch {
    kr_server *srv;
    kr_buf cmds; /* the commands, one after the other, as encoded */
    bwaiter *w;
    size_t n, cap;
} wbatch;

struct kr_write_batch {
    struct event *flush;
    wbatch *open;     /* this turn's, not sent yet */
    kr_buf out;       /* the BATCH entry being sent */
    size_t in_flight; /* batches sent, not answered yet */
};

static void batch_free(wbatch *b)
{
    if (b == NULL)
        return;
    kr_buf_free(&b->cmds);
    free(b->w);
    free(b);
}

/* Every request of b answered with res (an error), b freed. */
static void batch_fail(wbatch *b, const kr_store_result *res)
{
    for (size_t i = 0; i < b->n; i++)
        b->w[i].done(b->w[i].arg, res);
    batch_free(b);
}

/* A batch sent was answered: the one waiting for it may go. (None after
 * kr_server_cluster_batch_free, when the replica answers what is left.) */
static void landed(kr_server *srv)
{
    struct kr_write_batch *wb = srv->batch;
    if (wb == NULL)
        return;
    wb->in_flight--;
    if (wb->open != NULL)
        event_active(wb->flush, EV_WRITE, 0);
}

/* A batch of one, sent as itself, was applied here (or failed). */
static void single_done(void *arg, const kr_store_result *res)
{
    wbatch *b = arg;
    landed(b->srv);
    b->w[0].done(b->w[0].arg, res);
    batch_free(b);
}

/* The BATCH was applied here (or failed): each request its own result. */
static void batch_done(void *arg, const kr_store_result *res, const kr_store_result *subs, size_t n)
{
    wbatch *b = arg;
    landed(b->srv);
    kr_store_result lost = {.err = KRAPPY_E_STORAGE};
    snprintf(lost.msg, sizeof lost.msg,
             "the log's entry for this write held fewer results than writes; its outcome is "
             "unknown");
    for (size_t i = 0; i < b->n; i++)
        b->w[i].done(b->w[i].arg, res->err != KRAPPY_OK ? res : i < n ? &subs[i] : &lost);
    batch_free(b);
}

/* Send b: one command as itself, more as a BATCH. */
static void batch_send(kr_server *srv, wbatch *b)
{
    struct kr_write_batch *wb = srv->batch;
    kr_store_result res = {.err = KRAPPY_OK, .first = UINT64_MAX};
    if (b->n == 1) {
        res.err = kr_server_cluster_send(srv, b->cmds.data, b->cmds.len, single_done, b, res.msg,
                                         sizeof res.msg);
        if (res.err == KRAPPY_OK)
            wb->in_flight++;
        else
            batch_fail(b, &res);
        return;
    }
    kr_buf_reset(&wb->out);
    kr_cmd_put_batch_begin(&wb->out, b->n);
    for (size_t i = 0; i < b->n; i++)
        kr_cmd_put_batch_sub(&wb->out, b->cmds.data + b->w[i].off, b->w[i].len);
    if (wb->out.failed) {
        res.err = KRAPPY_E_STORAGE;
        snprintf(res.msg, sizeof res.msg, "out of memory encoding writes for the cluster's log");
    } else if ((res.err = kr_server_cluster_leads(srv, res.msg, sizeof res.msg)) == KRAPPY_OK) {
        res.err = kr_cluster_submit_batch(srv->cluster, wb->out.data, wb->out.len, batch_done, b,
                                          res.msg, sizeof res.msg);
    }
    if (res.err != KRAPPY_OK)
        batch_fail(b, &res);
    else
        wb->in_flight++;
}

void kr_server_cluster_batch_flush(kr_server *srv)
{
    struct kr_write_batch *wb = srv->batch;
    if (wb == NULL || wb->open == NULL)
        return;
    wbatch *b = wb->open;
    wb->open = NULL;
    batch_send(srv, b);
}

static void on_flush(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    kr_server *srv = arg;
    if (srv->batch->in_flight < BATCH_IN_FLIGHT)
        kr_server_cluster_batch_flush(srv);
}

/* The batching state, made on the first write. @return NULL: no memory. */
static struct kr_write_batch *write_batch(kr_server *srv)
{
    if (srv->batch != NULL)
        return srv->batch;
    struct kr_write_batch *wb = calloc(1, sizeof *wb);
    if (wb == NULL)
        return NULL;
    wb->flush = event_new(srv->base, -1, 0, on_flush, srv);
    if (wb->flush == NULL) {
        free(wb);
        return NULL;
    }
    kr_buf_init(&wb->out, KR_CLUSTER_COMMAND_MAX);
    srv->batch = wb;
    return wb;
}

/* Whether `len` more bytes of command still fit b's entry. */
static bool fits(const wbatch *b, size_t len)
{
    return b->n < KR_CMD_BATCH_MAX &&
           KR_CMD_BATCH_HEAD + b->cmds.len + (b->n + 1) * KR_CMD_BATCH_SUB_HEAD + len <=
               KR_CLUSTER_COMMAND_MAX;
}

krappy_err kr_server_cluster_batch(kr_server *srv, kr_replica_done done, void *arg, char *msg,
                                   size_t msglen)
{
    krappy_err e = kr_server_cluster_leads(srv, msg, msglen);
    if (e != KRAPPY_OK)
        return e;
    struct kr_write_batch *wb = write_batch(srv);
    /* A command too big for a BATCH goes alone (and is refused when too
     * big for the log: the error says so). */
    if (wb == NULL || srv->cmd.failed ||
        srv->cmd.len + KR_CMD_BATCH_HEAD + KR_CMD_BATCH_SUB_HEAD > KR_CLUSTER_COMMAND_MAX)
        return kr_server_cluster_command(srv, done, arg, msg, msglen);
    if (wb->open != NULL && !fits(wb->open, srv->cmd.len))
        kr_server_cluster_batch_flush(srv);
    wbatch *b = wb->open != NULL ? wb->open : calloc(1, sizeof *b);
    bwaiter *room = b != NULL ? kr_grow(b->w, b->n, &b->cap, sizeof *room, 16) : NULL;
    if (room == NULL) {
        if (b != wb->open)
            batch_free(b);
        snprintf(msg, msglen, "out of memory gathering writes for the cluster's log");
        return KRAPPY_E_STORAGE;
    }
    b->w = room;
    if (wb->open == NULL) { /* sent once the turn's other callbacks ran */
        b->srv = srv;
        kr_buf_init(&b->cmds, KR_CLUSTER_COMMAND_MAX);
        wb->open = b;
        event_active(wb->flush, EV_WRITE, 0);
    }
    size_t off = b->cmds.len;
    if (kr_buf_append(&b->cmds, srv->cmd.data, srv->cmd.len) < 0) {
        b->cmds.failed = false; /* what it held stays whole: take more */
        snprintf(msg, msglen, "out of memory gathering writes for the cluster's log");
        return KRAPPY_E_STORAGE;
    }
    b->w[b->n++] = (bwaiter){.done = done, .arg = arg, .off = off, .len = srv->cmd.len};
    return KRAPPY_OK;
}

void kr_server_cluster_batch_free(kr_server *srv)
{
    struct kr_write_batch *wb = srv->batch;
    if (wb == NULL)
        return;
    if (wb->open != NULL) {
        kr_store_result res = {.err = KRAPPY_E_SHUTTING_DOWN, .first = UINT64_MAX};
        snprintf(res.msg, sizeof res.msg,
                 "the server is shutting down; the write was not sent to the cluster's log");
        batch_fail(wb->open, &res);
    }
    event_free(wb->flush);
    kr_buf_free(&wb->out);
    free(wb);
    srv->batch = NULL;
}
