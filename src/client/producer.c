/*
 * client/producer.c - libkrappy's idempotent producer handle (see
 * krappy/client.h, "Idempotent producing"): a connection of its own, the
 * batches not yet acknowledged kept in order, and the way back after a
 * lost connection - reconnect, HELLO, register again, renumber what the
 * server has not stored, send it all again.
 *
 * Each PUBLISH carries a fresh `cid` (one per send, so a reply is matched
 * to the send it answers, not to an earlier attempt) and the batch's
 * `seq`. Replies come in order, so the oldest batch sent on the current
 * connection is always the one answered next.
 *
 * What to do with an answer:
 * - OK (duplicate or not): acknowledged, in order.
 * - FENCED, UNAUTHENTICATED, UNSUPPORTED_VERSION, NO_SUCH_TOPIC: no retry
 *   can mend it; the handle is done.
 * - INVALID_ARGUMENT: that batch can never be stored; it is dropped and
 *   reported, and the connection restarted, so that the batches behind it
 *   (refused out of order meanwhile) are renumbered and sent again.
 * - OUT_OF_ORDER_SEQUENCE with `expected` past the batch: the server
 *   stored it but remembers it no more: acknowledged, offsets unknown.
 * - anything else (a lost connection, STORAGE, OUT_OF_ORDER_SEQUENCE,
 *   BUSY, SHUTTING_DOWN, NOT_LEADER): start over on a new connection, after
 *   a pause that doubles up to KR_PRODUCER_BACKOFF_MAX, until
 *   reconnect_ms pass without an acknowledgement. The new registration
 *   says which sequence number the server expects: the batches above it
 *   are numbered on from there (renumber).
 *
 * Clusters: every connection goes to the leader (krappy_connect_leader
 * over the address list); a NOT_LEADER that names the leader is tried
 * first next time, after the shortest pause (when the old leader died, a
 * new one is elected in about a second: the growing pauses cover that).
 */
#include "krappy/client.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "client/client_internal.h"
#include "proto/msg.h"

/* Pauses between attempts, in ms. */
#define KR_PRODUCER_BACKOFF_MIN 50
#define KR_PRODUCER_BACKOFF_MAX 2000

/* Internal: the connection was lost or must be restarted; try again. */
#define RETRY ((krappy_err)-1)

typedef struct entry {
    krappy_batch *b; /* a copy */
    uint64_t seq, count;
    uint64_t cid; /* of its send on the current connection; 0: not sent on it */
    bool sent_before;
} entry;

struct krappy_producer {
    krappy_client *c;
    char *addr, *topic, *id;
    krappy_ack ack;
    size_t max_unacked;
    int reconnect_ms;
    void (*on_ack)(void *arg, const krappy_producer_ack *ack);
    void *arg;

    entry q[KRAPPY_PRODUCER_MAX_UNACKED]; /* q[(head + i) % MAX], i < n */
    size_t head, n, n_sent;               /* the first n_sent are sent on the
                                             current connection */
    uint64_t next_seq, next_cid;
    uint32_t epoch;
    bool up;                        /* connected and registered */
    krappy_err fatal;               /* set: the handle is done */
    uint64_t trouble_ms;            /* since when nothing was acknowledged (0: fine) */
    char hint[KR_HOSTPORT_MAX + 1]; /* the leader a NOT_LEADER named ("": none) */
    int backoff_ms;
    krappy_err last_err; /* of the trouble, for the report */
    krappy_producer_info st;
    char errmsg[KR_CLIENT_ERRMSG_MAX];
};

__attribute__((format(printf, 3, 4))) static krappy_err fail(krappy_producer *p, krappy_err e,
                                                             const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(p->errmsg, sizeof p->errmsg, fmt, ap);
    va_end(ap);
    return e;
}

static uint64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

static void sleep_ms(int ms)
{
    struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000};
    while (nanosleep(&ts, &ts) < 0)
        ;
}

static entry *at(krappy_producer *p, size_t i)
{
    return &p->q[(p->head + i) % KRAPPY_PRODUCER_MAX_UNACKED];
}

static void pop(krappy_producer *p)
{
    krappy_batch_free(at(p, 0)->b);
    at(p, 0)->b = NULL;
    p->head = (p->head + 1) % KRAPPY_PRODUCER_MAX_UNACKED;
    p->n--;
    if (p->n_sent > 0)
        p->n_sent--;
}

/* Errors no retry mends: the handle stops. */
static bool hopeless(krappy_err e)
{
    return e == KRAPPY_E_FENCED || e == KRAPPY_E_UNAUTHENTICATED ||
           e == KRAPPY_E_UNSUPPORTED_VERSION || e == KRAPPY_E_NO_SUCH_TOPIC ||
           e == KRAPPY_E_INVALID_ARGUMENT || e == KRAPPY_E_USAGE || e == KRAPPY_E_NOMEM ||
           e == KRAPPY_E_PROTOCOL;
}

/* The connection is gone (or is given up): batches sent on it go again. */
static void drop(krappy_producer *p, krappy_err why)
{
    krappy_close(p->c);
    p->up = false;
    for (size_t i = 0; i < p->n_sent; i++) {
        at(p, i)->cid = 0;
        at(p, i)->sent_before = true;
    }
    p->n_sent = 0;
    p->last_err = why;
    if (p->trouble_ms == 0)
        p->trouble_ms = now_ms();
}

/*
 * The server expects `seq` next. What it has stored of ours lies below it
 * and keeps its numbers (sent again, it is answered as a duplicate); what
 * lies above was not stored and is numbered on from `seq`. A batch that
 * straddles `seq` was not ours: the server stored other batches under
 * these numbers (another run, batched otherwise), and going on would
 * store events twice or lose them.
 * @return 0, or -1 (errmsg set).
 */
static int renumber(krappy_producer *p, uint64_t seq)
{
    uint64_t next = seq;
    for (size_t i = 0; i < p->n; i++) {
        entry *e = at(p, i);
        if (e->seq + e->count <= seq)
            continue;
        if (e->seq < seq) {
            fail(p, KRAPPY_E_OUT_OF_ORDER_SEQUENCE,
                 "batch seq %llu (%llu events) straddles seq %llu, which the server expects "
                 "next: it stored other batches under these numbers (was the same input "
                 "batched differently?)",
                 (unsigned long long)e->seq, (unsigned long long)e->count, (unsigned long long)seq);
            return -1;
        }
        e->seq = next;
        next += e->count;
    }
    p->next_seq = next;
    return 0;
}

/* Connect, HELLO, register. @return KRAPPY_OK, RETRY, or a hopeless
 * error (errmsg set either way). */
static krappy_err attach(krappy_producer *p)
{
    krappy_producer_reg reg;
    krappy_err e;
    if (p->hint[0] != '\0') {
        /* The leader a NOT_LEADER named, then the list. */
        size_t n = strlen(p->hint) + strlen(p->addr) + 2;
        char *both = malloc(n);
        if (both == NULL)
            return fail(p, KRAPPY_E_NOMEM, "out of memory");
        snprintf(both, n, "%s,%s", p->hint, p->addr);
        p->hint[0] = '\0';
        e = krappy_connect_leader(p->c, both, NULL);
        free(both);
    } else {
        e = krappy_connect_leader(p->c, p->addr, NULL);
    }
    if (e == KRAPPY_OK)
        e = krappy_register_producer_idempotent(p->c, p->topic, p->id, &reg);
    if (e != KRAPPY_OK) {
        fail(p, e, "%s", krappy_client_errmsg(p->c));
        drop(p, e);
        return hopeless(e) ? e : RETRY;
    }
    p->epoch = reg.epoch;
    if (renumber(p, reg.seq) < 0) {
        drop(p, KRAPPY_E_OUT_OF_ORDER_SEQUENCE);
        return KRAPPY_E_OUT_OF_ORDER_SEQUENCE;
    }
    p->up = true;
    p->n_sent = 0;
    return KRAPPY_OK;
}

/* Send the batches not yet sent on this connection. @return KRAPPY_OK,
 * RETRY (the connection failed), or a hopeless error. */
static krappy_err send_unsent(krappy_producer *p)
{
    int64_t deadline = kr_client_deadline_after(p->c->timeout_ms);
    while (p->n_sent < p->n) {
        entry *e = at(p, p->n_sent);
        e->cid = ++p->next_cid;
        krappy_err rc = kr_publish_encode(p->c, e->b, p->ack, e->cid, &e->seq);
        if (rc == KRAPPY_OK)
            rc = kr_client_send_frame(p->c, KRAPPY_T_PUBLISH, p->c->enc.data, p->c->enc.len,
                                      deadline, 1);
        if (rc != KRAPPY_OK) {
            fail(p, rc, "%s", krappy_client_errmsg(p->c));
            if (hopeless(rc))
                return rc;
            drop(p, rc);
            return RETRY;
        }
        if (e->sent_before)
            p->st.resent++;
        p->n_sent++;
    }
    return KRAPPY_OK;
}

/* The batch the server refused for good: dropped, reported, and the
 * connection restarted so that the ones behind it are renumbered. */
static krappy_err refused(krappy_producer *p, krappy_err code)
{
    entry *e = at(p, 0);
    fail(p, code, "batch seq %llu (%llu events) was refused and dropped: %s",
         (unsigned long long)e->seq, (unsigned long long)e->count, krappy_client_errmsg(p->c));
    pop(p);
    drop(p, code);
    p->trouble_ms = 0; /* not the server's trouble */
    return code;
}

/* Batch e acknowledged (a = what the server said). */
static void acked(krappy_producer *p, krappy_producer_ack *a)
{
    pop(p);
    p->st.acked++;
    p->st.duplicates += a->duplicate != 0;
    p->trouble_ms = 0;
    p->backoff_ms = 0;
    if (p->on_ack != NULL)
        p->on_ack(p->arg, a);
}

/* An ERROR in place of batch e's acknowledgement (ours: its cid). */
static krappy_err error_reply(krappy_producer *p, const krappy_frame *f, const kr_reply *r,
                              bool ours)
{
    entry *e = at(p, 0);
    kr_error_in er;
    krappy_err code = krappy_reply_error(p->c, f);
    fail(p, code, "%s", krappy_client_errmsg(p->c));
    if (ours && code == KRAPPY_E_INVALID_ARGUMENT)
        return refused(p, code);
    /* The server is past this batch but no longer remembers it (more were
     * in flight than it remembers): it was stored once, where is unknown. */
    if (ours && code == KRAPPY_E_OUT_OF_ORDER_SEQUENCE && kr_reply_error(r, &er) == 0 &&
        er.has_expected && er.expected >= e->seq + e->count) {
        krappy_producer_ack a = {
            .seq = e->seq, .first = UINT64_MAX, .count = e->count, .duplicate = 1};
        p->errmsg[0] = '\0';
        acked(p, &a);
        return KRAPPY_OK;
    }
    if (code == KRAPPY_E_NOT_LEADER) {
        snprintf(p->hint, sizeof p->hint, "%s", krappy_client_error_leader(p->c));
        p->backoff_ms = 0; /* the leader is there: go at once */
    }
    drop(p, code);
    return hopeless(code) ? code : RETRY;
}

/* Take the reply to the oldest batch sent. @return KRAPPY_OK (acknowledged),
 * RETRY, or an error for the caller. */
static krappy_err take_reply(krappy_producer *p)
{
    krappy_frame f;
    kr_reply r;
    entry *e = at(p, 0);
    krappy_err rc = kr_client_recv_frame(p->c, &f, kr_client_deadline_after(p->c->timeout_ms),
                                         p->c->timeout_ms);
    if (rc != KRAPPY_OK) {
        fail(p, rc, "%s", krappy_client_errmsg(p->c));
        drop(p, rc);
        return RETRY;
    }
    bool decoded = kr_reply_decode(f.type, f.payload, f.len, &r) == 0;
    bool ours = decoded && r.cid.set && r.cid.v == e->cid;
    if (f.type == KRAPPY_T_ERROR)
        return error_reply(p, &f, &r, ours);
    krappy_producer_ack a = {.seq = e->seq};
    kr_cbor_item dup;
    if (!ours || f.type != KRAPPY_T_OK || !kr_reply_uint(&r, "first", &a.first) ||
        !kr_reply_uint(&r, "count", &a.count)) {
        fail(p, KRAPPY_E_PROTOCOL,
             "the server's answer to the PUBLISH of batch seq %llu is not its OK {first, count}",
             (unsigned long long)e->seq);
        drop(p, KRAPPY_E_PROTOCOL);
        return KRAPPY_E_PROTOCOL;
    }
    a.duplicate = kr_cbor_map_find(&r.map, "duplicate", &dup) == 1 && dup.kind == KR_CBOR_TRUE;
    acked(p, &a);
    return KRAPPY_OK;
}

/* Wait before trying again; give up (the last error) after reconnect_ms of
 * trouble. */
static krappy_err pause_or_give_up(krappy_producer *p)
{
    uint64_t t = now_ms();
    if (p->reconnect_ms >= 0 && p->trouble_ms != 0 &&
        t - p->trouble_ms >= (uint64_t)p->reconnect_ms) {
        krappy_err e = p->last_err;
        char why[KR_CLIENT_ERRMSG_MAX];
        snprintf(why, sizeof why, "%s", p->errmsg);
        p->trouble_ms = 0;
        return fail(p, e, "no batch acknowledged for %d ms (%zu kept, call again to retry): %s",
                    p->reconnect_ms, p->n, why);
    }
    p->backoff_ms = p->backoff_ms == 0 ? KR_PRODUCER_BACKOFF_MIN : p->backoff_ms * 2;
    if (p->backoff_ms > KR_PRODUCER_BACKOFF_MAX)
        p->backoff_ms = KR_PRODUCER_BACKOFF_MAX;
    sleep_ms(p->backoff_ms);
    return KRAPPY_OK;
}

/* Make progress: one batch acknowledged (or none unacknowledged).
 * @return KRAPPY_OK, or an error for the caller. */
static krappy_err progress(krappy_producer *p)
{
    bool got_back = false;
    for (;;) {
        krappy_err e;
        if (p->fatal != KRAPPY_OK)
            return p->fatal;
        if (!p->up) {
            e = attach(p);
            if (e == RETRY) {
                if ((e = pause_or_give_up(p)) != KRAPPY_OK)
                    return e;
                continue;
            }
            if (e != KRAPPY_OK)
                return p->fatal = e;
            got_back = true;
        }
        if (p->n == 0)
            return KRAPPY_OK;
        e = send_unsent(p);
        if (e == KRAPPY_OK)
            e = take_reply(p);
        if (e == KRAPPY_OK) {
            if (got_back)
                p->st.reconnects++;
            return KRAPPY_OK;
        }
        if (e != RETRY) {
            if (hopeless(e) && e != KRAPPY_E_INVALID_ARGUMENT)
                p->fatal = e;
            return e;
        }
        if ((e = pause_or_give_up(p)) != KRAPPY_OK)
            return e;
    }
}

krappy_err krappy_producer_open(const char *addr, const char *topic, const char *id,
                                const krappy_producer_opts *opts, krappy_producer **out)
{
    krappy_producer_opts o = {0};
    if (out == NULL)
        return KRAPPY_E_USAGE;
    *out = NULL;
    if (opts != NULL)
        o = *opts;
    krappy_producer *p = calloc(1, sizeof *p);
    if (p == NULL)
        return KRAPPY_E_NOMEM;
    *out = p;
    p->c = krappy_client_new(o.client);
    p->addr = strdup(addr != NULL ? addr : "");
    p->topic = strdup(topic != NULL ? topic : "");
    p->id = strdup(id != NULL ? id : "");
    if (p->c == NULL || p->addr == NULL || p->topic == NULL || p->id == NULL)
        return fail(p, KRAPPY_E_NOMEM, "out of memory making a producer handle");
    if (topic == NULL || topic[0] == '\0' || id == NULL || id[0] == '\0')
        return fail(p, KRAPPY_E_USAGE, "krappy_producer_open needs a topic and a producer id");
    if (o.ack == KRAPPY_ACK_NONE || (o.ack != KRAPPY_ACK_WRITE && o.ack != KRAPPY_ACK_SYNC))
        return fail(p, KRAPPY_E_USAGE,
                    "an idempotent producer acknowledges with KRAPPY_ACK_WRITE or _SYNC (with "
                    "NONE it would not know what to send again)");
    if (o.max_unacked > KRAPPY_PRODUCER_MAX_UNACKED)
        return fail(p, KRAPPY_E_USAGE,
                    "max_unacked is at most %d: the server remembers a producer's last %d "
                    "PUBLISHes",
                    KRAPPY_PRODUCER_MAX_UNACKED, KRAPPY_PRODUCER_MAX_UNACKED);
    p->ack = o.ack;
    p->max_unacked = o.max_unacked ? o.max_unacked : KRAPPY_PRODUCER_MAX_UNACKED;
    p->reconnect_ms = o.reconnect_ms ? o.reconnect_ms : KRAPPY_DEFAULT_RECONNECT_MS;
    p->on_ack = o.on_ack;
    p->arg = o.arg;
    krappy_err e = attach(p);
    if (e == RETRY)
        return p->last_err;
    if (e != KRAPPY_OK)
        p->fatal = e;
    if (o.use_from_seq)
        p->next_seq = o.from_seq;
    p->trouble_ms = 0;
    return e;
}

krappy_err krappy_producer_send(krappy_producer *p, const krappy_batch *b, uint64_t *seq)
{
    if (p == NULL)
        return KRAPPY_E_USAGE;
    p->errmsg[0] = '\0';
    if (p->fatal != KRAPPY_OK)
        return fail(p, p->fatal, "the producer handle stopped: %s", krappy_strerror(p->fatal));
    if (b == NULL || krappy_batch_count(b) == 0)
        return fail(p, KRAPPY_E_USAGE,
                    "cannot publish an empty batch (the protocol wants one event at least)");
    /* Judge its size now: a batch the server can never take is not kept. */
    uint64_t probe = 0;
    if (kr_publish_encode(p->c, b, p->ack, 1, &probe) != KRAPPY_OK)
        return fail(p, KRAPPY_E_USAGE, "%s", krappy_client_errmsg(p->c));
    while (p->n >= p->max_unacked) {
        krappy_err e = progress(p);
        if (e != KRAPPY_OK)
            return e;
    }
    krappy_batch *copy = kr_batch_clone(b);
    if (copy == NULL)
        return fail(p, KRAPPY_E_NOMEM, "out of memory keeping a batch");
    entry *e = at(p, p->n);
    *e = (entry){.b = copy, .seq = p->next_seq, .count = krappy_batch_count(b)};
    p->n++;
    p->next_seq += e->count;
    if (seq != NULL)
        *seq = e->seq;
    /* Sent now when the connection is up; else the next call brings it
     * back. Either way the batch is kept. */
    krappy_err se = p->up ? send_unsent(p) : KRAPPY_OK;
    if (se != KRAPPY_OK && se != RETRY)
        return p->fatal = se;
    p->errmsg[0] = '\0';
    return KRAPPY_OK;
}

krappy_err krappy_producer_flush(krappy_producer *p)
{
    if (p == NULL)
        return KRAPPY_E_USAGE;
    p->errmsg[0] = '\0';
    while (p->n > 0) {
        krappy_err e = progress(p);
        if (e != KRAPPY_OK)
            return e;
    }
    return p->fatal;
}

void krappy_producer_info_get(const krappy_producer *p, krappy_producer_info *out)
{
    if (p == NULL || out == NULL)
        return;
    *out = p->st;
    out->epoch = p->epoch;
    out->next_seq = p->next_seq;
    out->unacked = p->n;
}

const char *krappy_producer_errmsg(const krappy_producer *p)
{
    return p != NULL ? p->errmsg : "no producer handle (NULL)";
}

void krappy_producer_free(krappy_producer *p)
{
    if (p == NULL)
        return;
    while (p->n > 0)
        pop(p);
    krappy_client_free(p->c);
    free(p->addr);
    free(p->topic);
    free(p->id);
    free(p);
}
