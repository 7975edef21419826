/*
 * server/kafka_fetch.c - Fetch: stored events as record batches, with the
 * long polls of the Krappy port's FETCH.
 *
 * Each partition's events from fetch_offset on are found with
 * kr_store_fetch_batches (at most --max-events, about partition_max_bytes of
 * them and no more than what is left of the response's max_bytes - but one
 * event at least, KIP-74), read into memory and written as one uncompressed
 * record batch (kafka/batch.h) whose records carry the events' offsets and
 * timestamps. The answer ends where a stored batch ends (unless its first
 * batch alone is too large), so a consumer's next Fetch, from there, starts
 * at a stored batch's first event: the store finds it without walking the
 * events before it, and cuts no batch by walking its events either.
 * high_watermark and last_stable_offset are the topic's next offset (no
 * transactions: isolation levels read the same), log_start_offset its
 * first. When fewer than min_bytes are ready and max_wait_ms is not 0,
 * the request parks on every topic it reads until one grows or the wait
 * ends. No fetch sessions: session_id is 0, every Fetch is a full one.
 */
#include <stdio.h>
#include <string.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>
#include <stdlib.h>

#include "server/kafka.h"
#include "server/kafka_resp.h"
#include "util/clock.h"
#include "util/log.h"

/* A Fetch's room for the response around the records. */
#define KFETCH_OVERHEAD 1024

typedef struct kfetch kfetch;

/* One partition of a Fetch. */
typedef struct kfpart {
    kfetch *f;
    kr_kafka_fetch_resp_partition *p;
    kr_topic *t; /* NULL: an error was answered */
    int64_t offset;
    int32_t max_bytes;
    size_t rec_off, rec_len; /* its batch in k->records */
    uint64_t want, stretch;  /* the byte budgets it was read with (build) */
    uint64_t next;           /* the offset after its records (0: none) */
    kr_waiter w;
    bool parked;
} kfpart;

struct kfetch {
    kr_kreq *r;
    kr_kafka_fetch_resp resp;
    kfpart *parts;
    size_t n_parts;
    int64_t max_bytes, min_bytes;
    uint64_t deadline_ms;
};

/* Write the events read into `events` as one record batch at the end of
 * out. @return the records written, or -1 (msg filled). */
static int32_t write_batch(kr_kafka *k, const kr_buf *events, kr_buf *out, char *msg, size_t msglen)
{
    kr_kafka_batch_writer w;
    kr_kafka_batch_begin(&w, out);
    (void)kr_kafka_events_to_records(&w, events->data, events->len, &k->scratch, msg, msglen);
    int32_t n = kr_kafka_batch_end(&w);
    if (n < 0 && msg[0] == '\0')
        snprintf(msg, msglen, "the records do not fit --max-frame");
    return n;
}

/*
 * The records of t from `offset` on, at most about `want` bytes of events
 * (one at least; the first stored batch whole up to `stretch`, see
 * kr_store_fetch_batches), as one record batch appended to out; *next gets
 * the offset after them. @return the records (0: none yet), or -1 (logged;
 * the Kafka error in *err).
 */
static int32_t build(kr_kconn *c, kr_topic *t, int64_t offset, uint64_t want, uint64_t stretch,
                     kr_buf *out, uint64_t *next, int16_t *err)
{
    kr_kafka *k = c->k;
    kr_fetch_result res;
    c->msg[0] = '\0';
    krappy_err rc = kr_store_fetch_batches(k->srv->store, t, (uint64_t)offset, k->cfg->max_events,
                                           want, stretch, &res, c->msg, sizeof c->msg);
    if (rc == KRAPPY_OK && res.count > 0) {
        kr_buf_reset(&k->stored);
        if (kr_store_fetch_copy(k->srv->store, &res, &k->stored, c->msg, sizeof c->msg) < 0)
            rc = KRAPPY_E_STORAGE;
    }
    if (rc != KRAPPY_OK) {
        kr_log(KR_LOG_ERROR, "a Kafka Fetch could not read a topic", KR_LOG_STR("topic", t->name),
               KR_LOG_U64("offset", (uint64_t)offset), KR_LOG_STR("reason", c->msg));
        *err = kr_kafka_err_from(rc);
        return -1;
    }
    *next = res.next;
    if (res.count == 0)
        return 0;
    c->msg[0] = '\0';
    int32_t n = write_batch(k, &k->stored, out, c->msg, sizeof c->msg);
    if (n < 0) {
        kr_log(KR_LOG_ERROR, "a Kafka Fetch could not write a record batch",
               KR_LOG_STR("topic", t->name), KR_LOG_U64("offset", (uint64_t)offset),
               KR_LOG_STR("reason", c->msg));
        *err = KR_KAFKA_ERR_KAFKA_STORAGE_ERROR;
    }
    return n;
}

/* ---- prefetch ----
 *
 * A consumer reading a topic from far behind its end fetches one partition
 * at a time, each Fetch from where the last one ended, and spends as long
 * taking a megabyte of records in as the broker spends making it. So once a
 * Fetch of one partition is answered and more is there, its successor's
 * records are made at once, off the answer's path (after it went out) -
 * while the client reads - and the next Fetch from that offset, with the same
 * budgets, takes them as they are. Records are immutable, so they are still
 * right then; anything else (another offset, topic or budget) drops them. At
 * most KR_KAFKA_PREFETCH_BYTES are held across connections.
 */

#define KR_KAFKA_PREFETCH_BYTES (64u << 20)

struct kr_kprefetch {
    kr_kconn *c;
    struct event *timer;
    bool scheduled; /* the timer is pending (it holds a reference on c) */
    bool ready;     /* records holds the batch for (t, offset, want, stretch) */
    kr_topic *t;    /* NULL once its topic is deleted */
    int64_t offset;
    uint64_t want, stretch;
    uint64_t next; /* the offset after the batch */
    int32_t count;
    kr_buf records;
};

/* Forget the prefetched records (used says whether they were taken); the
 * buffer is kept for the next ones, a megabyte made anew each time costing
 * more in page faults than the records do. */
static void prefetch_drop(kr_kprefetch *pf, bool used)
{
    if (pf->ready)
        kr_counter_add(used ? pf->c->k->m.prefetch_used : pf->c->k->m.prefetch_dropped, 1);
    pf->ready = false;
    kr_buf_reset(&pf->records);
}

/* Release the buffer (and its share of KR_KAFKA_PREFETCH_BYTES). */
static void prefetch_release(kr_kprefetch *pf)
{
    prefetch_drop(pf, false);
    pf->c->k->prefetch_bytes -= pf->records.cap;
    kr_buf_free(&pf->records);
}

static void prefetch_run(evutil_socket_t fd, short what, void *arg)
{
    kr_kprefetch *pf = arg;
    kr_kconn *c = pf->c;
    (void)fd;
    (void)what;
    pf->scheduled = false;
    /* Records take about what their events take, and a little more (a
     * first batch over `want` grows the buffer). */
    size_t room = (size_t)pf->want + (size_t)pf->want / 4 + 4096;
    size_t grow = room > pf->records.cap ? room - pf->records.cap : 0;
    if (c->net.bev != NULL && !c->net.no_more && pf->t != NULL &&
        (uint64_t)pf->offset < pf->t->next && (uint64_t)pf->offset >= pf->t->first &&
        c->k->prefetch_bytes + grow <= KR_KAFKA_PREFETCH_BYTES) {
        int16_t err;
        size_t cap0 = pf->records.cap;
        kr_buf_reset(&pf->records);
        kr_kresp_pool_take(&pf->records); /* its memory may have gone with an answer */
        (void)kr_buf_reserve(&pf->records, room);
        int32_t n =
            build(c, pf->t, pf->offset, pf->want, pf->stretch, &pf->records, &pf->next, &err);
        c->k->prefetch_bytes += pf->records.cap - cap0;
        if (n > 0) {
            pf->count = n;
            pf->ready = true;
        } else {
            kr_buf_reset(&pf->records);
        }
    }
    kr_kconn_release(c);
}

/* After answering a Fetch that read partition fp up to (not including)
 * `next`, with more there: make the next answer's records once the answer
 * is out. */
static void prefetch_after(kr_kconn *c, const kfpart *fp, uint64_t want, uint64_t stretch,
                           uint64_t next)
{
    kr_kprefetch *pf = c->prefetch;
    if (pf == NULL) {
        pf = c->prefetch = calloc(1, sizeof *pf);
        if (pf == NULL)
            return;
        pf->c = c;
        kr_buf_init(&pf->records, (size_t)c->k->cfg->max_frame);
        pf->timer = evtimer_new(c->k->srv->base, prefetch_run, pf);
        if (pf->timer == NULL) {
            free(pf);
            c->prefetch = NULL;
            return;
        }
    }
    prefetch_drop(pf, false);
    if (pf->scheduled || next >= fp->t->next)
        return;
    pf->t = fp->t;
    pf->offset = (int64_t)next;
    pf->want = want;
    pf->stretch = stretch;
    /* The answer leaves now, before the timer's turn: the client reads it
     * while the next one is made. */
    if (c->net.bev != NULL)
        (void)kr_netconn_write_out(&c->net); /* what it leaves, libevent writes */
    static const struct timeval now = {0, 0};
    if (evtimer_add(pf->timer, &now) == 0) {
        pf->scheduled = true;
        c->net.refs++;
    }
}

/* Trade the memory of two buffers (each keeps its cap on growth), the
 * prefetch's share of KR_KAFKA_PREFETCH_BYTES following its new one. */
static void prefetch_swap(kr_kprefetch *pf, kr_buf *b)
{
    kr_buf pb = pf->records;
    pf->c->k->prefetch_bytes += b->cap - pb.cap;
    pf->records.data = b->data;
    pf->records.len = b->len;
    pf->records.cap = b->cap;
    b->data = pb.data;
    b->len = pb.len;
    b->cap = pb.cap;
}

/* Cancel a run not started yet (the caller holds a reference on c besides
 * the timer's). */
static void prefetch_unschedule(kr_kprefetch *pf)
{
    if (!pf->scheduled)
        return;
    event_del(pf->timer);
    pf->scheduled = false;
    kr_kconn_release(pf->c);
}

/* The prefetched records for (t, offset, want, stretch), appended to k->records
 * (taken over without a copy when k->records is empty, as it is for the
 * one partition a catching-up consumer reads); dropped either way. A run
 * still to come is cancelled: the Fetch came first (the loop was held up),
 * its records are made on its path now, and the run would make them again
 * for an offset answered already, then its successor none.
 * @return the records, or -1 when there are none. */
static int32_t prefetch_take(kr_kconn *c, kr_topic *t, int64_t offset, uint64_t want,
                             uint64_t stretch, uint64_t *next)
{
    kr_kprefetch *pf = c->prefetch;
    if (pf == NULL)
        return -1;
    prefetch_unschedule(pf);
    if (!pf->ready)
        return -1;
    int32_t n = -1;
    kr_buf *records = &c->k->records;
    if (pf->t == t && pf->offset == offset && pf->want == want && pf->stretch == stretch) {
        if (records->len == 0 && !records->failed)
            prefetch_swap(pf, records);
        else if (kr_buf_append(records, pf->records.data, pf->records.len) < 0)
            goto drop;
        n = pf->count;
        *next = pf->next;
    }
drop:
    prefetch_drop(pf, n >= 0);
    return n;
}

void kr_kfetch_conn_closed(kr_kconn *c)
{
    kr_kprefetch *pf = c->prefetch;
    if (pf == NULL)
        return;
    prefetch_release(pf);
    prefetch_unschedule(pf);
}

void kr_kfetch_topic_deleted(kr_kconn *c, const kr_topic *t)
{
    kr_kprefetch *pf = c->prefetch;
    if (pf == NULL || pf->t != t)
        return;
    prefetch_drop(pf, false);
    pf->t = NULL; /* a scheduled run finds nothing to read */
}

void kr_kfetch_conn_free(kr_kconn *c)
{
    kr_kprefetch *pf = c->prefetch;
    if (pf == NULL)
        return;
    prefetch_release(pf);
    event_free(pf->timer); /* not pending: it holds a reference while it is */
    free(pf);
    c->prefetch = NULL;
}

/* Fill one partition from the store (or the prefetch). @return the bytes
 * of its records. */
static size_t fill_part(kr_kconn *c, kfpart *fp, int64_t budget)
{
    kr_kafka *k = c->k;
    kr_kafka_fetch_resp_partition *p = fp->p;
    kr_topic *t = fp->t;
    p->high_watermark = p->last_stable_offset = (int64_t)t->next;
    p->log_start_offset = (int64_t)t->first;
    fp->rec_len = 0;
    fp->next = 0;
    if (fp->offset < 0 || (uint64_t)fp->offset < t->first || (uint64_t)fp->offset > t->next) {
        p->error_code = KR_KAFKA_ERR_OFFSET_OUT_OF_RANGE;
        return 0;
    }
    p->error_code = 0;
    if ((uint64_t)fp->offset == t->next)
        return 0;
    /* max_bytes 0 would mean one event: a budget spent means none. Its
     * first stored batch may take what is left of the response, whole (as
     * Kafka's brokers answer with a first batch over partition_max_bytes):
     * batches a little over the megabyte a consumer asks for are then not
     * cut one Fetch and found again inside the next. */
    uint64_t want = (uint64_t)(fp->max_bytes < budget ? fp->max_bytes : budget);
    if (want == 0)
        want = 1;
    fp->want = want;
    fp->stretch = (uint64_t)budget;
    fp->rec_off = k->records.len;
    int32_t n = prefetch_take(c, t, fp->offset, want, fp->stretch, &fp->next);
    if (n < 0)
        n = build(c, t, fp->offset, want, fp->stretch, &k->records, &fp->next, &p->error_code);
    if (n <= 0)
        return 0;
    fp->rec_len = k->records.len - fp->rec_off;
    kr_counter_add(k->m.fetched, (uint64_t)n);
    return fp->rec_len;
}

/* Fill every partition. @return the bytes of records; *errors whether a
 * partition got an error (answered at once, as Kafka does). */
static int64_t fill(kr_kconn *c, kfetch *f, bool *errors)
{
    kr_kafka *k = c->k;
    int64_t total = 0, cap = (int64_t)k->cfg->max_frame - KFETCH_OVERHEAD;
    int64_t limit = f->max_bytes < cap ? f->max_bytes : cap;
    kr_buf_reset(&k->records);
    kr_kresp_pool_take(&k->records);
    *errors = false;
    for (size_t i = 0; i < f->n_parts; i++) {
        kfpart *fp = &f->parts[i];
        if (fp->t == NULL) {
            *errors = true;
            continue;
        }
        /* Once the response is full, the others get no records (but the
         * first partition gets one event whatever its size, KIP-74). */
        int64_t left = limit - total;
        if (left <= 0 && total > 0) {
            fp->rec_len = 0;
            fp->p->high_watermark = fp->p->last_stable_offset = (int64_t)fp->t->next;
            fp->p->log_start_offset = (int64_t)fp->t->first;
            continue;
        }
        total += (int64_t)fill_part(c, fp, left > 0 ? left : 1);
        if (fp->p->error_code != 0)
            *errors = true;
    }
    return total;
}

/*
 * Whether the answer's records are all the last partition's, and enough of
 * them to go out from k->records by reference: that partition's records
 * are then the frame's last bytes (kr_kreq_respond_tail), not copied into
 * it - the megabyte a catching-up consumer gets per Fetch.
 */
static bool records_at_end(const kfetch *f, const kr_buf *records)
{
    const kr_kafka_fetch_resp *resp = &f->resp;
    if (f->n_parts == 0 || resp->responses.n <= 0)
        return false;
    const kr_kafka_fetch_resp_topic *last = &resp->responses.v[resp->responses.n - 1];
    const kfpart *fp = &f->parts[f->n_parts - 1];
    return last->partitions.n > 0 && fp->p == &last->partitions.v[last->partitions.n - 1] &&
           fp->rec_off == 0 && fp->rec_len == records->len && fp->rec_len >= KR_KRESP_BY_REF;
}

static void respond(kfetch *f)
{
    kr_kconn *c = f->r->conn;
    kr_kafka *k = c->k;
    bool tail = records_at_end(f, &k->records);
    for (size_t i = 0; i < f->n_parts; i++) {
        kfpart *fp = &f->parts[i];
        kr_kafka_fetch_resp_partition *p = fp->p;
        if (fp->rec_len > 0 && !(tail && i == f->n_parts - 1))
            p->records = (kr_kafka_bytes){k->records.data + fp->rec_off, (int32_t)fp->rec_len};
        else
            p->records = (kr_kafka_bytes){(const uint8_t *)"", 0};
    }
    /* One partition read with more behind it: the consumer's next Fetch
     * is from where this one ends (see prefetch). */
    const kfpart *one = f->n_parts == 1 ? &f->parts[0] : NULL;
    bool more = one != NULL && one->t != NULL && one->rec_len > 0 && one->p->error_code == 0;
    uint64_t want = more ? one->want : 0, stretch = more ? one->stretch : 0;
    uint64_t next = more ? one->next : 0;
    c->net.refs++; /* the answer may close the connection */
    if (tail) {
        kr_kreq_respond_tail(f->r, &f->resp, &k->records);
        kr_kresp_pool_take(&k->records); /* the records went with the answer */
    } else {
        kr_kreq_respond(f->r, &f->resp);
    }
    if (more)
        prefetch_after(c, one, want, stretch, next);
    kr_kconn_release(c);
}

static void unpark_all(kfetch *f)
{
    kr_kconn *c = f->r->conn;
    for (size_t i = 0; i < f->n_parts; i++)
        if (f->parts[i].parked) {
            kr_store_unpark(c->k->srv->store, &f->parts[i].w);
            f->parts[i].parked = false;
        }
}

static void woken(kr_waiter *w, bool timed_out);

/* Whether a partition before i parked on t already: one waiter per topic
 * (the store wakes a topic's waiters from a list of its own, where a
 * second one of the same request could not be withdrawn). */
static bool parked_on(const kfetch *f, size_t i, const kr_topic *t)
{
    for (size_t j = 0; j < i; j++)
        if (f->parts[j].parked && f->parts[j].t == t)
            return true;
    return false;
}

/* Park on every topic read until one grows past what was there, or until
 * the deadline. @return 0, or -1 (nothing parked: answer now). */
static int park(kfetch *f, uint64_t now_ms)
{
    kr_kconn *c = f->r->conn;
    uint64_t wait = f->deadline_ms > now_ms ? f->deadline_ms - now_ms : 0;
    size_t n = 0;
    for (size_t i = 0; i < f->n_parts; i++) {
        kfpart *fp = &f->parts[i];
        if (fp->t == NULL || parked_on(f, i, fp->t))
            continue;
        fp->w = (kr_waiter){.topic = fp->t, .offset = fp->t->next, .wake = woken, .arg = fp};
        if (kr_store_park(c->k->srv->store, &fp->w, wait) < 0) {
            unpark_all(f);
            return -1;
        }
        fp->parked = true;
        n++;
    }
    return n > 0 ? 0 : -1;
}

/* Fill, then answer - or park when too little is ready and time is left. */
static kr_khresult run(kr_kconn *c, kfetch *f, bool final)
{
    bool errors;
    int64_t total = fill(c, f, &errors);
    uint64_t now = kr_mono_ms();
    if (final || errors || total >= f->min_bytes || now >= f->deadline_ms ||
        c->k->srv->shutting_down || park(f, now) < 0) {
        respond(f);
        return KR_KH_DONE;
    }
    f->r->cancel = NULL; /* set below, once parked */
    c->parked++;
    kr_kreq_async(f->r);
    return KR_KH_ASYNC;
}

static void fetch_cancel(kr_kreq *r)
{
    kfetch *f = r->ctx;
    unpark_all(f);
    r->conn->parked--;
    kr_kreq_silent(r);
}

/* w's topic was deleted: its partitions are answered as unknown (the
 * topic's memory goes once the deletion is done). */
static void topic_gone(kfetch *f, const kr_topic *t)
{
    for (size_t i = 0; i < f->n_parts; i++) {
        kfpart *fp = &f->parts[i];
        if (fp->t != t)
            continue;
        fp->t = NULL;
        fp->rec_len = 0;
        fp->p->error_code = KR_KAFKA_ERR_UNKNOWN_TOPIC_OR_PARTITION;
        fp->p->high_watermark = fp->p->last_stable_offset = fp->p->log_start_offset = -1;
    }
}

static void woken(kr_waiter *w, bool timed_out)
{
    kfpart *fp = w->arg;
    kfetch *f = fp->f;
    kr_kreq *r = f->r;
    kr_kconn *c = r->conn;
    fp->parked = false; /* the store took it off its list */
    unpark_all(f);
    if (w->gone)
        topic_gone(f, w->topic);
    c->parked--;
    r->cancel = NULL;
    if (run(c, f, timed_out) == KR_KH_ASYNC)
        r->cancel = fetch_cancel;
}

kr_khresult kr_khandle_fetch(kr_kconn *c, kr_kreq *r, const kr_kafka_request *req)
{
    const kr_kafka_fetch_req *q = &req->u.fetch;
    kfetch *f = kr_kreq_array(r, 1, sizeof *f);
    int32_t nt = kr_kcount(q->topics.n);
    size_t np = 0;
    for (int32_t i = 0; i < nt; i++)
        np += (size_t)(kr_kcount(q->topics.v[i].partitions.n));
    kr_kafka_fetch_resp_topic *topics = kr_kreq_array(r, nt, sizeof *topics);
    kr_kafka_fetch_resp_partition *parts = kr_kreq_array(r, (int32_t)np, sizeof *parts);
    kfpart *fps = kr_kreq_array(r, (int32_t)np, sizeof *fps);
    if (f == NULL || topics == NULL || parts == NULL || fps == NULL) {
        return kr_kreq_nomem(r);
    }
    f->r = r;
    f->parts = fps;
    f->n_parts = np;
    f->max_bytes = q->max_bytes > 0 ? q->max_bytes : 1;
    f->min_bytes = q->min_bytes;
    f->deadline_ms = kr_mono_ms() + (uint64_t)(q->max_wait_ms > 0 ? q->max_wait_ms : 0);
    f->resp.responses.v = topics;
    f->resp.responses.n = nt;
    if (q->session_id != 0)
        f->resp.error_code = KR_KAFKA_ERR_FETCH_SESSION_ID_NOT_FOUND;
    r->ctx = f;
    size_t at = 0;
    for (int32_t i = 0; i < nt; i++) {
        const kr_kafka_fetch_req_topic *qt = &q->topics.v[i];
        int32_t n = kr_kcount(qt->partitions.n);
        const char *name = kr_kreq_strdup(r, qt->topic.ptr, qt->topic.len);
        int16_t err = 0;
        kr_topic *t = kr_kafka_topic_for(c->k, qt->topic, false, &err);
        topics[i].topic =
            (kr_kafka_str){name != NULL ? name : "", name != NULL ? qt->topic.len : 0};
        topics[i].partitions.v = parts + at;
        topics[i].partitions.n = n;
        for (int32_t j = 0; j < n; j++, at++) {
            const kr_kafka_fetch_req_partition *qp = &qt->partitions.v[j];
            kr_kafka_fetch_resp_partition *p = &parts[at];
            p->partition_index = qp->partition;
            p->high_watermark = p->last_stable_offset = p->log_start_offset = -1;
            p->aborted_transactions.n = q->isolation_level == 1 ? 0 : -1;
            p->preferred_read_replica = -1;
            fps[at] = (kfpart){
                .f = f, .p = p, .offset = qp->fetch_offset, .max_bytes = qp->partition_max_bytes};
            if (f->resp.error_code != 0 || t == NULL || qp->partition != 0) {
                p->error_code = f->resp.error_code != 0 ? 0
                                : t == NULL             ? err
                                                        : KR_KAFKA_ERR_UNKNOWN_TOPIC_OR_PARTITION;
                continue;
            }
            fps[at].t = t;
        }
    }
    if (f->resp.error_code != 0) {
        respond(f);
        return KR_KH_DONE;
    }
    kr_khresult res = run(c, f, q->max_wait_ms <= 0);
    if (res == KR_KH_ASYNC)
        r->cancel = fetch_cancel;
    return res;
}
