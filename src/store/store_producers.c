/*
 * store/store_producers.c - idempotent producers in the store (see
 * store_producers.h for how their state is made durable, producers.h for
 * the rules).
 *
 * A producer's durable state, the value of its 'p' record, is CBOR
 * [stored_next, last_ms, [[seq, count, first], ...]]: the sequence number
 * after its last stored PUBLISH, its last activity (ms since the Unix
 * epoch) and the stored PUBLISHes of its window, oldest first.
 */
#include "store/store_producers.h"
#include "store/store_int.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "proto/cbor.h"
#include "util/clock.h"
#include "util/grow.h"
#include "util/log.h"

/* A repeat that asked for ack "sync" of a PUBLISH stored without one:
 * answered once a checkpoint (which fdatasyncs the stream first) covers it. */
typedef struct kr_dur_wait {
    uint64_t target; /* the marker that covers the original */
    uint64_t first;
    uint32_t count;
    kr_store_done done;
    void *arg;
    struct kr_dur_wait *next;
} kr_dur_wait;

/* A repeat of a PUBLISH still being written. */
typedef struct flight_wait {
    kr_prod_wait w; /* first: the producer hands this back */
    kr_store *s;
    kr_topic *t;
    bool durable; /* the original asked for "sync", or the repeat did not */
    kr_store_done done;
    void *arg;
} flight_wait;

struct pc_entry {
    uint64_t pid;
    size_t off, len; /* its state in vals */
    bool del;        /* forgotten: delete its state */
};

struct kr_prod_ckpt {
    struct pc_entry *e;
    size_t n;
    kr_buf vals;
    uint64_t *gone; /* the deleted pids again, for a failed checkpoint */
    size_t n_gone;
};

/* The durable state's encoding: at most 3 uints + 5 x (array + 3 uints). */
#define STATE_MAX 256

static kr_prod_table *table_of(const kr_topic *t)
{
    return t->prod->table;
}

/* ---- lifetime ---- */

int kr_store_producers_open(kr_store *s)
{
    size_t max = s->o.max_producers ? s->o.max_producers : KR_DEFAULT_MAX_PRODUCERS;
    s->producers = kr_prod_set_new(max, KR_PRODUCER_KEEP_MS);
    s->m_prod_forgotten =
        kr_counter(s->metrics, "krappy_producers_forgotten_total", NULL,
                   "Idempotent producers forgotten: idle 7 days, or the least recently "
                   "active beyond --max-producers.");
    return s->producers != NULL ? 0 : -1;
}

static void answer_duplicate(kr_store_done done, void *arg, uint64_t first, uint32_t count)
{
    kr_store_result res = {.err = KRAPPY_OK, .first = first, .count = count, .duplicate = true};
    if (done != NULL)
        done(arg, &res);
}

/* Answer the topic's sync repeats whose original the marker covers now -
 * all of them, with STORAGE when `failed` says why they cannot be. */
static void answer_dur_waits(kr_topic *t, const char *failed)
{
    kr_dur_wait **at = &t->prod->dur_waits;
    while (*at != NULL) {
        kr_dur_wait *w = *at;
        if (failed == NULL && w->target > t->marker) {
            at = &w->next;
            continue;
        }
        *at = w->next;
        if (failed != NULL) {
            kr_store_result res = {.err = KRAPPY_E_STORAGE};
            snprintf(res.msg, sizeof res.msg,
                     "this PUBLISH repeats one that is stored, but making it durable failed "
                     "(%s); send it again",
                     failed);
            if (w->done != NULL)
                w->done(w->arg, &res);
        } else {
            kr_counter_add(t->prod->m_duplicates, 1);
            answer_duplicate(w->done, w->arg, w->first, w->count);
        }
        free(w);
    }
}

void kr_store_producers_close(kr_store *s)
{
    kr_prod_set_free(s->producers);
    s->producers = NULL;
}

int kr_store_producers_topic_new(kr_store *s, kr_topic *t)
{
    char labels[KRAPPY_MAX_NAME_BYTES + 16];
    snprintf(labels, sizeof labels, "topic=\"%s\"", t->name); /* [A-Za-z0-9._-] */
    t->prod = calloc(1, sizeof *t->prod);
    if (t->prod == NULL || (t->prod->table = kr_prod_table_new(s->producers, t)) == NULL) {
        free(t->prod);
        t->prod = NULL;
        return -1;
    }
    t->prod->m_producers = kr_gauge(s->metrics, "krappy_topic_producers", labels,
                                    "Idempotent producers the server keeps for the topic.");
    t->prod->m_duplicates =
        kr_counter(s->metrics, "krappy_topic_duplicates_total", labels,
                   "Repeated idempotent PUBLISHes answered as duplicates, nothing stored.");
    return 0;
}

void kr_store_producers_topic_free(kr_topic *t)
{
    if (t->prod == NULL)
        return;
    answer_dur_waits(t, "the server stopped first");
    kr_prod_table_free(t->prod->table);
    free(t->prod->gone);
    free(t->prod);
    t->prod = NULL;
}

void kr_store_producers_metrics(kr_topic *t)
{
    if (t->prod != NULL)
        kr_gauge_set(t->prod->m_producers, (int64_t)kr_prod_table_count(t->prod->table));
}

size_t kr_topic_producers(const kr_topic *t)
{
    return t->prod != NULL ? kr_prod_table_count(t->prod->table) : 0;
}

/* ---- forgetting ---- */

/* Remember a pid whose state the next checkpoint deletes. @return false on
 * ENOMEM (the state stays an orphan, which the next start deletes). */
static bool gone_add(kr_tprod *tp, uint64_t pid)
{
    uint64_t *g = kr_grow(tp->gone, tp->n_gone, &tp->cap_gone, sizeof *g, 16);
    if (g == NULL)
        return false;
    tp->gone = g;
    tp->gone[tp->n_gone++] = pid;
    return true;
}

/* Producers forgotten in one trim: their registrations deleted in one
 * batch. */
struct forget {
    kr_store *s;
    kr_view_batch *b;
    size_t n;
};

static void forget_one(void *arg, kr_producer *p)
{
    struct forget *f = arg;
    kr_topic *t = kr_prod_table_owner(p->table);
    kr_tprod *tp = t->prod;
    if (f->b == NULL)
        f->b = kr_view_batch_new();
    if (f->b != NULL)
        kr_view_batch_unregister(f->b, t->name, t->name_len, p->id, p->id_len);
    (void)gone_add(tp, p->pid);
    f->n++;
}

/* Forget producers idle past the keep time, and the least recently active
 * ones beyond `want`; their registrations are deleted through the writer
 * (ordered before any later registration of the same id). */
static void trim(kr_store *s, size_t want)
{
    struct forget f = {s, NULL, 0};
    kr_prod_set_trim(s->producers, kr_wall_ms(), want, forget_one, &f);
    if (f.n == 0)
        return;
    kr_counter_add(s->m_prod_forgotten, f.n);
    kr_log(KR_LOG_INFO, "idempotent producers forgotten", KR_LOG_U64("producers", f.n),
           KR_LOG_U64("kept", kr_prod_set_count(s->producers)));
    kr_job *j = f.b != NULL ? kr_job_new(KR_JOB_LOGGED, NULL) : NULL;
    if (j == NULL) {
        kr_view_batch_free(f.b);
        kr_log(KR_LOG_WARN, "out of memory deleting the registrations of forgotten producers; "
                            "they are known again after a restart");
        return;
    }
    j->logged.batch = f.b;
    kr_writer_submit(s->writer, j);
}

void kr_store_producers_tick(kr_store *s)
{
    if (!s->draining)
        trim(s, kr_prod_set_max(s->producers));
}

/* ---- registrations ---- */

/* Write p's registration (and, for a new producer, the table's next pid)
 * through job j with batch b; the job holds p until done. */
static void log_registration(kr_store *s, kr_topic *t, kr_producer *p, bool fresh, kr_job *j,
                             kr_view_batch *b, kr_store_done done, void *arg)
{
    kr_producer_hold(p); /* the job's */
    t->registering++;    /* kr_store_logged_done: the stream waits meanwhile */
    kr_view_batch_registration(b, t->name, t->name_len, p->id, p->id_len, p->pid, p->epoch);
    if (fresh)
        kr_view_batch_next_pid(b, t->name, t->name_len, kr_prod_table_next_pid(table_of(t)));
    j->logged = (kr_job_logged){.batch = b, .producer = p, .epoch = p->epoch, .seq = p->next_seq};
    j->done = done;
    j->arg = arg;
    kr_writer_submit(s->writer, j);
}

/* Room for one more producer: when the store's set is full, the least
 * recently active ones that are not busy are forgotten (trim). @return
 * the set's limit (still reached when every producer is busy). */
static size_t make_room(kr_store *s)
{
    size_t max = kr_prod_set_max(s->producers);
    if (kr_prod_set_count(s->producers) >= max)
        trim(s, max - 1);
    return max;
}

/* A registration that ran out of memory (doing: what it was doing, for
 * the message): its job and batch freed. @return -1. */
static int no_memory(kr_job *j, kr_view_batch *b, kr_store_result *res, const char *doing)
{
    kr_job_free(j);
    kr_view_batch_free(b);
    res->err = KRAPPY_E_STORAGE;
    snprintf(res->msg, sizeof res->msg, "out of memory %s", doing);
    return -1;
}

int kr_store_producer_register(kr_store *s, const uint8_t *topic, size_t tlen, const uint8_t *id,
                               size_t idlen, kr_topic **tout, kr_store_done done, void *arg,
                               kr_store_result *res)
{
    kr_topic *t;
    if (kr_store_register(s, topic, tlen, &t, NULL, NULL, res) < 0)
        return -1;
    *tout = t;
    kr_job *j = kr_job_new(KR_JOB_LOGGED, t);
    kr_view_batch *b = kr_view_batch_new();
    kr_producer *p = kr_prod_find(table_of(t), id, idlen);
    bool fresh = p == NULL;
    if (j == NULL || b == NULL)
        goto nomem;
    if (fresh) {
        size_t max = make_room(s);
        if (kr_prod_set_count(s->producers) >= max) {
            kr_job_free(j);
            kr_view_batch_free(b);
            res->err = KRAPPY_E_BUSY;
            snprintf(res->msg, sizeof res->msg,
                     "the server keeps %zu idempotent producers (--max-producers) and each is "
                     "registered on an open connection or writing; close some, or raise "
                     "--max-producers",
                     max);
            return -1;
        }
        p = kr_prod_add(table_of(t), id, idlen, 0, kr_wall_ms());
        if (p == NULL)
            goto nomem;
    }
    kr_producer_register(p, kr_wall_ms());
    kr_producer_hold(p); /* the connection's */
    res->epoch = p->epoch;
    res->seq = p->next_seq;
    log_registration(s, t, p, fresh, j, b, done, arg);
    return 0;
nomem:
    return no_memory(j, b, res, "registering the producer");
}

uint32_t kr_store_producer_epoch(const kr_topic *t, const uint8_t *id, size_t idlen,
                                 uint64_t *next_seq)
{
    const kr_producer *p =
        t != NULL && t->prod != NULL ? kr_prod_find(t->prod->table, id, idlen) : NULL;
    if (next_seq != NULL)
        *next_seq = p != NULL ? p->next_seq : 0;
    return p != NULL ? p->epoch : 0;
}

typedef struct each_ctx {
    int (*fn)(void *arg, const kr_prod_state *st);
    void *arg;
} each_ctx;

static int each_one(void *arg, kr_producer *p)
{
    each_ctx *e = arg;
    kr_prod_state st = {.id = p->id, .id_len = p->id_len, .epoch = p->epoch};
    st.n = kr_producer_stored_state(p, &st.next_seq, st.win);
    return e->fn(e->arg, &st);
}

int kr_store_producers_each(kr_topic *t, int (*fn)(void *arg, const kr_prod_state *st), void *arg)
{
    each_ctx e = {fn, arg};
    return t->prod != NULL ? kr_prod_foreach(table_of(t), each_one, &e) : 0;
}

int kr_store_producer_adopt(kr_store *s, kr_topic *t, const kr_prod_state *st, kr_store_done done,
                            void *arg, kr_store_result *res)
{
    kr_producer *p = kr_prod_find(table_of(t), st->id, st->id_len);
    if (p != NULL && p->epoch >= st->epoch && p->stored_next >= st->next_seq)
        return 1;
    kr_job *j = kr_job_new(KR_JOB_LOGGED, t);
    kr_view_batch *b = kr_view_batch_new();
    bool fresh = p == NULL;
    if (j == NULL || b == NULL)
        goto nomem;
    if (fresh) {
        make_room(s);
        p = kr_prod_add(table_of(t), st->id, st->id_len, 0, kr_wall_ms());
        if (p == NULL)
            goto nomem;
    }
    p->epoch = st->epoch;
    kr_producer_restore(p, st->next_seq, st->win, st->n, kr_wall_ms());
    kr_prod_mark_all_dirty(table_of(t)); /* the next checkpoint writes its state */
    log_registration(s, t, p, fresh, j, b, done, arg);
    return 0;
nomem:
    return no_memory(j, b, res, "adopting a producer's state");
}

void kr_store_producer_release(kr_store *s, kr_topic *t, const uint8_t *id, size_t idlen)
{
    (void)s;
    kr_producer *p = t != NULL && t->prod != NULL ? kr_prod_find(table_of(t), id, idlen) : NULL;
    if (p != NULL)
        kr_producer_release(p);
}

void kr_store_logged_done(kr_store *s, kr_job *j)
{
    kr_job_logged *l = &j->logged;
    if (l->producer != NULL) {
        kr_producer_release(l->producer);
        if (j->t != NULL && --j->t->registering == 0 && j->t->stream != NULL)
            kr_stream_registered(s, j->t->stream);
    }
    if (j->err != KRAPPY_OK)
        kr_log(KR_LOG_ERROR, "writing producer registrations or topic settings failed",
               KR_LOG_STR("reason", kr_job_msg(j)));
    if (j->done == NULL)
        return;
    kr_store_result res = {.err = j->err, .epoch = l->epoch, .seq = l->seq};
    if (j->t != NULL)
        res.first = j->t->next;
    if (j->err != KRAPPY_OK) {
        snprintf(res.msg, sizeof res.msg, "%s", kr_job_msg(j));
    } else if (j->t != NULL && j->t->failed) {
        res.err = KRAPPY_E_STORAGE;
        snprintf(res.msg, sizeof res.msg, "the topic could not be created on disk");
    }
    j->done(j->arg, &res);
}

/* ---- the PUBLISH path ---- */

/* Is the stored original `b` on stable storage for a repeat asking
 * `sync`? A checkpoint's marker past it means its stream was synced. */
static bool durable_enough(const kr_topic *t, const kr_prod_batch *b, bool sync)
{
    return !sync || b->synced || b->first + b->count <= t->marker;
}

/* A sync repeat waits for the checkpoint that covers the original. */
static krappy_err wait_durable(kr_store *s, kr_topic *t, uint64_t first, uint32_t count,
                               kr_store_done done, void *arg)
{
    kr_dur_wait *w = malloc(sizeof *w);
    if (w == NULL)
        return KRAPPY_E_STORAGE;
    *w = (kr_dur_wait){.target = first + count,
                       .first = first,
                       .count = count,
                       .done = done,
                       .arg = arg,
                       .next = t->prod->dur_waits};
    t->prod->dur_waits = w;
    kr_store_checkpoint(s); /* or right after the one running */
    return KRAPPY_OK;
}

static void flight_landed(kr_prod_wait *pw, bool ok, uint64_t first, uint32_t count)
{
    flight_wait *fw = (flight_wait *)pw;
    kr_topic *t = fw->t;
    if (!ok) {
        kr_store_result res = {.err = KRAPPY_E_STORAGE};
        snprintf(res.msg, sizeof res.msg,
                 "the PUBLISH this one repeats was being written and failed; send it again");
        if (fw->done != NULL)
            fw->done(fw->arg, &res);
    } else if (!fw->durable && first + count > t->marker &&
               wait_durable(fw->s, t, first, count, fw->done, fw->arg) == KRAPPY_OK) {
        /* answered by a checkpoint */
    } else {
        kr_counter_add(t->prod->m_duplicates, 1);
        answer_duplicate(fw->done, fw->arg, first, count);
    }
    free(fw);
}

krappy_err kr_store_idem_check(kr_store *s, kr_topic *t, kr_idem *idem, uint64_t count, bool sync,
                               kr_store_done done, void *arg, kr_producer **accept, char *msg,
                               size_t msglen)
{
    *accept = NULL;
    kr_producer *p = kr_prod_find(table_of(t), idem->id, idem->id_len);
    if (p == NULL) {
        snprintf(msg, msglen,
                 "topic %s has no idempotent producer '%.*s' (forgotten, or never registered); "
                 "register again",
                 t->name, (int)idem->id_len, (const char *)idem->id);
        return KRAPPY_E_NOT_REGISTERED;
    }
    const kr_prod_batch *hit = NULL;
    switch (kr_producer_check(p, idem->epoch, idem->seq, count, &hit, &idem->expected)) {
    case KR_PROD_ACCEPT:
        *accept = p;
        return KRAPPY_OK;
    case KR_PROD_DUPLICATE:
        if (!durable_enough(t, hit, sync)) {
            if (wait_durable(s, t, hit->first, hit->count, done, arg) != KRAPPY_OK)
                break;
            return KRAPPY_OK;
        }
        kr_counter_add(t->prod->m_duplicates, 1);
        answer_duplicate(done, arg, hit->first, hit->count);
        return KRAPPY_OK;
    case KR_PROD_IN_FLIGHT: {
        flight_wait *fw = malloc(sizeof *fw);
        if (fw == NULL)
            break;
        *fw = (flight_wait){.w = {.seq = idem->seq, .fn = flight_landed},
                            .s = s,
                            .t = t,
                            .durable = !sync || hit->synced,
                            .done = done,
                            .arg = arg};
        kr_producer_wait(p, &fw->w);
        return KRAPPY_OK;
    }
    case KR_PROD_OUT_OF_ORDER:
        snprintf(msg, msglen,
                 "PUBLISH seq %llu (%llu events) is out of order for producer '%.*s': the "
                 "server expects seq %llu, and a repeat must match one of the producer's last "
                 "%d PUBLISHes in seq and count",
                 (unsigned long long)idem->seq, (unsigned long long)count, (int)idem->id_len,
                 (const char *)idem->id, (unsigned long long)idem->expected, KR_PRODUCER_WINDOW);
        return KRAPPY_E_OUT_OF_ORDER_SEQUENCE;
    case KR_PROD_FENCED:
        snprintf(msg, msglen,
                 "producer '%.*s' was registered again (epoch %u; this connection's is %u), "
                 "which fences this registration; register again to publish",
                 (int)idem->id_len, (const char *)idem->id, p->epoch, idem->epoch);
        return KRAPPY_E_FENCED;
    }
    snprintf(msg, msglen, "out of memory answering a repeated PUBLISH");
    return KRAPPY_E_STORAGE;
}

void kr_store_idem_accepted(kr_producer *p, kr_append *a, uint64_t seq, uint64_t first,
                            uint32_t count, bool sync)
{
    kr_producer_accept(p, seq, count, first, sync, kr_wall_ms());
    a->producer = p;
    a->seq = seq;
}

void kr_store_idem_completed(kr_store *s, kr_append *a, bool ok)
{
    kr_producer *p = a->producer;
    (void)s;
    if (p == NULL)
        return;
    a->producer = NULL;
    if (ok)
        kr_producer_stored(p, a->seq, a->count, a->base);
    else
        kr_producer_failed(p, a->seq);
}

/* ---- checkpoints ---- */

/* The durable state of p into b. @return 0, or -1 on ENOMEM. */
static int encode_state(kr_buf *b, const kr_producer *p)
{
    kr_prod_batch w[KR_PRODUCER_WINDOW];
    uint64_t next;
    size_t n = kr_producer_stored_state(p, &next, w);
    kr_cbor_put_array(b, 3);
    kr_cbor_put_uint(b, next);
    kr_cbor_put_uint(b, p->last_ms);
    kr_cbor_put_array(b, n);
    for (size_t i = 0; i < n; i++) {
        kr_cbor_put_array(b, 3);
        kr_cbor_put_uint(b, w[i].seq);
        kr_cbor_put_uint(b, w[i].count);
        kr_cbor_put_uint(b, w[i].first);
    }
    return b->failed ? -1 : 0;
}

static int cmp_entry(const void *a, const void *b)
{
    uint64_t x = ((const struct pc_entry *)a)->pid, y = ((const struct pc_entry *)b)->pid;
    return x < y ? -1 : x > y;
}

kr_prod_ckpt *kr_store_producers_freeze(kr_topic *t)
{
    kr_tprod *tp = t->prod;
    struct kr_producer_list dirty = TAILQ_HEAD_INITIALIZER(dirty);
    kr_prod_take_dirty(tp->table, &dirty);
    size_t n = tp->n_gone;
    kr_producer *p;
    TAILQ_FOREACH(p, &dirty, dirty_link)
    n++;
    if (n == 0)
        return NULL;
    kr_prod_ckpt *pc = calloc(1, sizeof *pc);
    if (pc == NULL || (pc->e = calloc(n, sizeof *pc->e)) == NULL)
        goto nomem;
    kr_buf_init(&pc->vals, SIZE_MAX);
    TAILQ_FOREACH(p, &dirty, dirty_link)
    {
        size_t off = pc->vals.len;
        if (encode_state(&pc->vals, p) < 0)
            goto nomem;
        pc->e[pc->n++] = (struct pc_entry){.pid = p->pid, .off = off, .len = pc->vals.len - off};
    }
    for (size_t i = 0; i < tp->n_gone; i++)
        pc->e[pc->n++] = (struct pc_entry){.pid = tp->gone[i], .del = true};
    qsort(pc->e, pc->n, sizeof *pc->e, cmp_entry);
    pc->gone = tp->gone;
    pc->n_gone = tp->n_gone;
    tp->gone = NULL;
    tp->n_gone = tp->cap_gone = 0;
    return pc;
nomem:
    kr_prod_ckpt_free(pc);
    kr_prod_mark_all_dirty(tp->table);
    kr_log(KR_LOG_WARN, "out of memory saving producer states; the next checkpoint saves them",
           KR_LOG_STR("topic", t->name));
    return NULL;
}

void kr_store_producers_checkpointed(kr_store *s, kr_topic *t, kr_prod_ckpt *pc, bool ok)
{
    kr_tprod *tp = t->prod;
    (void)s;
    if (!ok) {
        /* Nothing of it is in the view: everything goes into the next. */
        kr_prod_mark_all_dirty(tp->table);
        for (size_t i = 0; pc != NULL && i < pc->n_gone && gone_add(tp, pc->gone[i]); i++)
            ;
    }
}

void kr_store_producers_answer(kr_topic *t, bool ok)
{
    answer_dur_waits(t, ok ? NULL : "a checkpoint failed");
}

void kr_prod_ckpt_write(const kr_prod_ckpt *pc, kr_view_ckpt *ck, const char *topic, size_t tlen)
{
    for (size_t i = 0; pc != NULL && i < pc->n; i++) {
        const struct pc_entry *e = &pc->e[i];
        kr_view_ckpt_producer(ck, topic, tlen, e->pid, e->del ? NULL : pc->vals.data + e->off,
                              e->len);
    }
}

void kr_prod_ckpt_free(kr_prod_ckpt *pc)
{
    if (pc == NULL)
        return;
    free(pc->e);
    kr_buf_free(&pc->vals);
    free(pc->gone);
    free(pc);
}

/* ---- start-up ---- */

/* A state read back, kept until the registrations are known. */
struct saved_state {
    uint64_t pid;
    size_t off, len;
};

struct load {
    kr_topic *t;
    uint64_t now;
    struct saved_state *st;
    size_t n, cap;
    kr_buf vals;
    bool nomem;
};

static int load_record(void *arg, const kr_view_prod_rec *r)
{
    struct load *l = arg;
    kr_prod_table *tab = table_of(l->t);
    switch (r->kind) {
    case KR_VIEW_PROD_STATE:
        struct saved_state *n = kr_grow(l->st, l->n, &l->cap, sizeof *n, 64);
        if (n == NULL) {
            l->nomem = true;
            return 1;
        }
        l->st = n;
        l->st[l->n++] = (struct saved_state){r->pid, l->vals.len, r->state_len};
        if (kr_buf_append(&l->vals, r->state, r->state_len) < 0) {
            l->nomem = true;
            return 1;
        }
        return 0;
    case KR_VIEW_PROD_REG: {
        kr_producer *p = kr_prod_add(tab, r->id, r->id_len, r->pid, l->now);
        if (p == NULL) {
            if (kr_prod_find(tab, r->id, r->id_len) != NULL ||
                kr_prod_find_pid(tab, r->pid) != NULL)
                return 0; /* cannot be: a duplicate record of this version */
            l->nomem = true;
            return 1;
        }
        p->epoch = r->epoch;
        return 0;
    }
    case KR_VIEW_PROD_NEXT_PID:
        kr_prod_table_raise_pid(tab, r->pid);
        return 0;
    }
    return 0;
}

/* The next n items of it, each a uint, into u. @return 0, or -1. */
static int read_uints(kr_cbor_iter *it, uint64_t *u, int n)
{
    kr_cbor_item x;
    for (int i = 0; i < n; i++) {
        if (kr_cbor_iter_next(it, &x) != 1 || x.kind != KR_CBOR_UINT)
            return -1;
        u[i] = x.u;
    }
    return 0;
}

/* Decode a durable state into p. @return 0, or -1 when it is not one. */
static int restore_state(kr_producer *p, const uint8_t *v, size_t n)
{
    kr_cbor_item arr, list, one;
    kr_cbor_iter it, li, bi;
    uint64_t head[2], u[3];
    if (kr_cbor_read_exact(v, n, &arr) < 0 || arr.kind != KR_CBOR_ARRAY || arr.u != 3 ||
        arr.indefinite)
        return -1;
    kr_cbor_iter_init(&it, &arr);
    if (read_uints(&it, head, 2) < 0)
        return -1;
    if (kr_cbor_iter_next(&it, &list) != 1 || list.kind != KR_CBOR_ARRAY || list.indefinite ||
        list.u > KR_PRODUCER_WINDOW)
        return -1;
    kr_prod_batch b[KR_PRODUCER_WINDOW];
    size_t nb = 0;
    kr_cbor_iter_init(&li, &list);
    while (kr_cbor_iter_next(&li, &one) == 1) {
        if (one.kind != KR_CBOR_ARRAY || one.u != 3 || one.indefinite)
            return -1;
        kr_cbor_iter_init(&bi, &one);
        if (read_uints(&bi, u, 3) < 0 || u[1] == 0 || u[1] > UINT32_MAX)
            return -1;
        b[nb++] =
            (kr_prod_batch){.seq = u[0], .count = (uint32_t)u[1], .first = u[2], .stored = true};
    }
    kr_producer_restore(p, head[0], b, nb, head[1]);
    return 0;
}

int kr_store_producers_load(kr_store *s, kr_topic *t, char *err, size_t errlen)
{
    struct load l = {.t = t, .now = kr_wall_ms()};
    kr_buf_init(&l.vals, SIZE_MAX);
    int rc = kr_view_producers(s->view, t->name, t->name_len, load_record, &l, err, errlen);
    if (rc == 0 && l.nomem) {
        snprintf(err, errlen, "out of memory loading the producers of topic %s", t->name);
        rc = -1;
    }
    for (size_t i = 0; rc == 0 && i < l.n; i++) {
        kr_producer *p = kr_prod_find_pid(table_of(t), l.st[i].pid);
        if (p != NULL && restore_state(p, l.vals.data + l.st[i].off, l.st[i].len) == 0)
            continue;
        if (p != NULL)
            kr_log(KR_LOG_WARN, "a producer state this version cannot read is ignored",
                   KR_LOG_STR("topic", t->name), KR_LOG_U64("pid", l.st[i].pid));
        /* A forgotten producer's state: delete it with the next checkpoint. */
        (void)gone_add(t->prod, l.st[i].pid);
    }
    free(l.st);
    kr_buf_free(&l.vals);
    return rc;
}

void kr_store_producers_replay(kr_topic *t, const kr_batch_hdr *h)
{
    if (h->producer == 0)
        return;
    kr_producer *p = kr_prod_find_pid(table_of(t), h->producer);
    /* Unknown: its registration never completed, so nothing of it was
     * acknowledged - nothing to recognise a repeat of. */
    if (p != NULL)
        kr_producer_replay(p, h->seq, h->count, h->base, kr_wall_ms());
}
