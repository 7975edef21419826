/*
 * e2e/bench/vs/redis.c - the Redis Streams backend of bench_vs (issue 7):
 * redis-server 7 on 127.0.0.1 with an append-only file, driven by hiredis.
 *
 * Mapping of the workloads onto Redis:
 *
 *   ingest     XADD bench * k <key> v <value>, pipelined, p->window batches
 *              of p->batch in flight; appendfsync everysec, or always for
 *              the sync run (into bench-sync)
 *   consume    XREAD COUNT p->batch STREAMS bench <last id>, one in flight
 *   group      XREADGROUP GROUP g c COUNT p->batch STREAMS bench >, the
 *              XACK of a batch pipelined with the next XREADGROUP
 *   get        HGET latest <key>; the hash is filled untimed first, since a
 *              stream has no lookup by key
 *   latency    XADD bench-lat from a producer thread at p->rate, XREAD BLOCK
 *              on a second connection
 *   load       XADD bench-rss plus HSET latest-rss per event
 *   publish    XADD bench-one, 64 in flight; XADD bench-one1 one at a time
 *   ping       PING
 *
 * The server runs in the foreground with command-line options only and with
 * nothing that forks (no RDB snapshots, no AOF rewrites), so its pid is the
 * whole server for the CPU and RSS figures.
 */
#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>
#include <time.h>

#include "../../harness.h"
#include "vs.h"

#if __has_include(<hiredis.h>)
#include <hiredis.h>

#define RD_HOST     "127.0.0.1"
#define RD_START_MS 10000 /* until redis-server accepts connections */
#define RD_STOP_MS  10000 /* SIGTERM to SIGKILL */
/* Any one read or write: a stuck server is a failure with a sentence, never
 * a hang. */
#define RD_TIMEOUT_S 20
/* The latency consumer's XREAD BLOCK, and how long past the produce window
 * it waits for the last events. */
#define RD_BLOCK_MS    "100"
#define RD_LAT_GRACE_S 10.0
#define RD_ID_MAX      64 /* a stream ID "<ms>-<seq>" is at most 41 */
#define RD_GROUP       "g"
#define RD_CONSUMER    "c"

/* The backend's state for one server lifetime (x->srv->priv). */
typedef struct rd {
    redisContext *c; /* the connection every workload but latency uses */
    bool latest;     /* hash "latest" holds every event of "bench" */
} rd;

/* What a pipelined write run puts in for event n: an XADD into stream (if
 * not NULL) and an HSET into hash (if not NULL), the key drawn from keys. */
typedef struct writes {
    const char *stream;
    const char *hash;
    long keys;
} writes;

/* The failure sentence for an I/O error on c, into x->err. hiredis reports a
 * read or write that ran into the socket timeout as EAGAIN. */
static int io_fail(vs_ctx *x, const redisContext *c, const char *what)
{
    if (c->err == REDIS_ERR_IO && strstr(c->errstr, "temporarily unavailable") != NULL)
        return vs_fail(x, "redis: %s: no reply within %d s", what, RD_TIMEOUT_S);
    return vs_fail(x, "redis: %s: %s", what, c->errstr[0] ? c->errstr : "I/O error");
}

/* The connection of the server of x, or NULL with x->err when an earlier
 * workload broke it: hiredis keeps the first error on a context and fails
 * every later call with it, which would read as a new failure. */
static redisContext *live(vs_ctx *x)
{
    rd *st = x->srv->priv;
    if (st->c->err == 0)
        return st->c;
    vs_fail(x, "redis: the connection broke in an earlier workload (%s)", st->c->errstr);
    return NULL;
}

/* Connects to the server of x with the bounded timeouts, or NULL with
 * x->err. The caller owns the context (redisFree). */
static redisContext *rd_connect(vs_ctx *x)
{
    struct timeval tv = {RD_TIMEOUT_S, 0};
    redisContext *c = redisConnectWithTimeout(x->srv->host, x->srv->port, tv);
    if (c == NULL) {
        vs_fail(x, "redis: cannot allocate a connection");
        return NULL;
    }
    if (c->err != 0 || redisSetTimeout(c, tv) != REDIS_OK) {
        vs_fail(x, "redis: cannot connect to %s:%d: %s", x->srv->host, x->srv->port, c->errstr);
        redisFree(c);
        return NULL;
    }
    return c;
}

/* Writes everything appended to c's output buffer. hiredis only flushes when
 * a read finds no reply buffered, so pipelines flush by hand to keep the
 * server fed while replies of earlier batches are still being read. */
static int flush(vs_ctx *x, redisContext *c)
{
    int done = 0;
    do {
        if (redisBufferWrite(c, &done) != REDIS_OK)
            return io_fail(x, c, "write");
    } while (!done);
    return VS_OK;
}

/* The next reply on c (blocking, bounded by the socket timeout), or VS_FAIL
 * with x->err for an I/O error or an error reply. The caller frees *out. */
static int next_reply(vs_ctx *x, redisContext *c, const char *what, redisReply **out)
{
    void *v = NULL;
    if (redisGetReply(c, &v) != REDIS_OK || v == NULL)
        return io_fail(x, c, what);
    redisReply *r = v;
    if (r->type == REDIS_REPLY_ERROR) {
        vs_fail(x, "redis: %s: %.*s", what, (int)r->len, r->str);
        freeReplyObject(r);
        return VS_FAIL;
    }
    *out = r;
    return VS_OK;
}

/* One command of NUL-terminated words, one round trip; the reply goes to
 * *out (the caller frees it) or is dropped when out is NULL. */
static int command(vs_ctx *x, redisContext *c, redisReply **out, int argc, const char **argv)
{
    size_t len[16];
    for (int i = 0; i < argc; i++)
        len[i] = strlen(argv[i]);
    redisReply *r = NULL;
    if (redisAppendCommandArgv(c, argc, argv, len) != REDIS_OK)
        return io_fail(x, c, argv[0]);
    if (next_reply(x, c, argv[0], &r) != VS_OK)
        return VS_FAIL;
    if (out != NULL)
        *out = r;
    else
        freeReplyObject(r);
    return VS_OK;
}

/* A command whose reply must be the status OK (CONFIG SET, XGROUP CREATE). */
static int command_ok(vs_ctx *x, redisContext *c, int argc, const char **argv)
{
    redisReply *r = NULL;
    if (command(x, c, &r, argc, argv) != VS_OK)
        return VS_FAIL;
    bool ok = r->type == REDIS_REPLY_STATUS && strcmp(r->str, "OK") == 0;
    freeReplyObject(r);
    return ok ? VS_OK : vs_fail(x, "redis: %s %s did not answer OK", argv[0], argv[1]);
}

/* Appends the commands of event n (see writes) to c's output buffer. */
static int append_event(vs_ctx *x, redisContext *c, const writes *w, long n)
{
    char key[VS_KEY_LEN + 1], val[VS_VALUE_LEN + 1];
    vs_key(key, vs_key_of(w->keys, (uint64_t)n));
    vs_value(val, (uint64_t)n, 0);
    if (w->stream != NULL) {
        const char *argv[] = {"XADD", w->stream, "*", "k", key, "v", val};
        const size_t len[] = {4, strlen(w->stream), 1, 1, VS_KEY_LEN, 1, VS_VALUE_LEN};
        if (redisAppendCommandArgv(c, 7, argv, len) != REDIS_OK)
            return io_fail(x, c, "XADD");
    }
    if (w->hash != NULL) {
        const char *argv[] = {"HSET", w->hash, key, val};
        const size_t len[] = {4, strlen(w->hash), VS_KEY_LEN, VS_VALUE_LEN};
        if (redisAppendCommandArgv(c, 4, argv, len) != REDIS_OK)
            return io_fail(x, c, "HSET");
    }
    return VS_OK;
}

/* Reads and checks the replies of event n: a stream ID for the XADD, a
 * count for the HSET. */
static int check_event(vs_ctx *x, redisContext *c, const writes *w, long n)
{
    redisReply *r = NULL;
    if (w->stream != NULL) {
        if (next_reply(x, c, "XADD", &r) != VS_OK)
            return VS_FAIL;
        bool ok = r->type == REDIS_REPLY_STRING && r->len > 0 && r->len < RD_ID_MAX;
        freeReplyObject(r);
        if (!ok)
            return vs_fail(x, "redis: XADD of event %ld did not answer a stream ID", n);
    }
    if (w->hash != NULL) {
        if (next_reply(x, c, "HSET", &r) != VS_OK)
            return VS_FAIL;
        bool ok = r->type == REDIS_REPLY_INTEGER;
        freeReplyObject(r);
        if (!ok)
            return vs_fail(x, "redis: HSET of event %ld did not answer a count", n);
    }
    return VS_OK;
}

/* Events [0, events) as w says, in batches of p->batch with at most
 * p->window batches whose replies are outstanding: batches are appended
 * until the window is full, flushed in one go, then the oldest batch's
 * replies are read, which frees a slot. Every reply is checked. */
static int write_events(vs_ctx *x, redisContext *c, const writes *w, long events)
{
    const vs_params *p = x->p;
    long sent = 0, acked = 0;
    int inflight = 0;
    while (acked < events) {
        for (; inflight < p->window && sent < events; inflight++) {
            long end = sent + p->batch < events ? sent + p->batch : events;
            for (; sent < end; sent++)
                if (append_event(x, c, w, sent) != VS_OK)
                    return VS_FAIL;
        }
        if (flush(x, c) != VS_OK)
            return VS_FAIL;
        long end = acked + p->batch < events ? acked + p->batch : events;
        for (; acked < end; acked++)
            if (check_event(x, c, w, acked) != VS_OK)
                return VS_FAIL;
        inflight--;
    }
    return VS_OK;
}

/* The event index (and stamp) of one stream entry [id, [field, value, ...]]
 * from its v field, and its ID; -1 if the entry is not one of ours. */
static int entry_of(const redisReply *e, uint64_t *n, uint64_t *ts, const redisReply **id)
{
    if (e->type != REDIS_REPLY_ARRAY || e->elements != 2 ||
        e->element[0]->type != REDIS_REPLY_STRING || e->element[1]->type != REDIS_REPLY_ARRAY)
        return -1;
    const redisReply *f = e->element[1];
    for (size_t i = 0; i + 1 < f->elements; i += 2) {
        const redisReply *name = f->element[i], *val = f->element[i + 1];
        if (name->type == REDIS_REPLY_STRING && name->len == 1 && name->str[0] == 'v' &&
            val->type == REDIS_REPLY_STRING) {
            *id = e->element[0];
            return vs_value_parse(val->str, val->len, n, ts);
        }
    }
    return -1;
}

/* The entries of an XREAD/XREADGROUP reply on one stream; NULL when it is
 * nil (nothing new) or not shaped [[name, [entry, ...]]]. */
static const redisReply *entries_of(const redisReply *r)
{
    if (r->type != REDIS_REPLY_ARRAY || r->elements != 1)
        return NULL;
    const redisReply *s = r->element[0];
    if (s->type != REDIS_REPLY_ARRAY || s->elements != 2 ||
        s->element[1]->type != REDIS_REPLY_ARRAY)
        return NULL;
    return s->element[1];
}

/* Checks the entries of one read: each must decode and carry the index
 * *count, which advances; the last ID goes to last (RD_ID_MAX bytes). */
static int check_entries(vs_ctx *x, const redisReply *es, long *count, char *last)
{
    for (size_t i = 0; i < es->elements; i++) {
        uint64_t n;
        const redisReply *id = NULL;
        if (entry_of(es->element[i], &n, NULL, &id) < 0)
            return vs_fail(x, "redis: entry %ld does not hold a well-formed v field", *count);
        if (n != (uint64_t)*count)
            return vs_fail(x, "redis: entry %ld holds event %llu (lost or out of order)", *count,
                           (unsigned long long)n);
        if (i + 1 == es->elements)
            snprintf(last, RD_ID_MAX, "%.*s", (int)id->len, id->str);
        (*count)++;
    }
    return VS_OK;
}

/* Starts redis-server in a fresh directory on a free port, in the
 * foreground, configured by its command line only: AOF on with fsync every
 * second; no RDB snapshots and no automatic AOF rewrite, the two things that
 * would fork a child mid-run (the first AOF base file of an empty dataset is
 * written in-process at startup). Then connects and PINGs. */
static int rd_start(vs_ctx *x)
{
    static const char *const where[] = {"/usr/bin/redis-server", "/usr/local/bin/redis-server",
                                        NULL};
    vs_server *s = x->srv;
    const char *prog = vs_program("REDIS_SERVER", where);
    if (prog == NULL) {
        snprintf(x->note, sizeof x->note,
                 "redis-server not found (apt-get install redis-server libhiredis-dev, or set "
                 "$REDIS_SERVER)");
        return VS_SKIP;
    }
    rd *st = calloc(1, sizeof *st);
    if (st == NULL)
        return vs_fail(x, "redis: out of memory");
    s->priv = st;
    snprintf(s->host, sizeof s->host, "%s", RD_HOST);
    if (vs_mkdtemp(s->dir, sizeof s->dir) < 0) {
        s->dir[0] = '\0';
        return vs_fail(x, "redis: cannot create a data directory: %s", strerror(errno));
    }
    s->port = vs_free_port();
    if (s->port <= 0)
        return vs_fail(x, "redis: no free TCP port on %s", RD_HOST);
    char port[16], log[320];
    snprintf(port, sizeof port, "%d", s->port);
    snprintf(log, sizeof log, "%s/redis.log", s->dir);
    /* clang-format off */
    char *argv[] = {(char *)prog,
                    "--port", port,
                    "--bind", RD_HOST,
                    "--dir", s->dir,
                    "--appendonly", "yes",
                    "--appendfsync", "everysec",
                    "--save", "",
                    "--auto-aof-rewrite-percentage", "0",
                    "--protected-mode", "no",
                    "--daemonize", "no",
                    "--logfile", log,
                    NULL};
    /* clang-format on */
    s->pid = vs_spawn(argv, log);
    if (s->pid < 0) {
        s->pid = 0;
        return vs_fail(x, "redis: cannot start %s: %s", prog, strerror(errno));
    }
    if (vs_wait_port(s->host, s->port, s->pid, RD_START_MS) < 0)
        return vs_fail(x, "redis: %s did not listen on %s:%d within %d ms (see %s)", prog, s->host,
                       s->port, RD_START_MS, log);
    st->c = rd_connect(x);
    if (st->c == NULL)
        return VS_FAIL;
    redisReply *r = NULL;
    if (command(x, st->c, &r, 1, (const char *[]){"PING"}) != VS_OK)
        return VS_FAIL;
    bool pong = r->type == REDIS_REPLY_STATUS && strcmp(r->str, "PONG") == 0;
    freeReplyObject(r);
    return pong ? VS_OK : vs_fail(x, "redis: PING did not answer PONG");
}

/* Frees the connection, stops the server, removes its directory; safe after
 * a start that failed anywhere. */
static void rd_stop(vs_ctx *x)
{
    vs_server *s = x->srv;
    rd *st = s->priv;
    if (st != NULL) {
        if (st->c != NULL)
            redisFree(st->c);
        free(st);
        s->priv = NULL;
    }
    vs_kill(s->pid, RD_STOP_MS);
    s->pid = 0;
    if (s->dir[0] != '\0')
        e2e_rm_tmp(s->dir);
    s->dir[0] = '\0';
}

/* Workloads 1 and 2. For the sync run the fsync policy is switched to
 * always around the timed part. With appendfsync always Redis writes and
 * fdatasyncs the AOF in beforeSleep(), before handleClientsWithPendingWrites()
 * sends the replies of the commands run in that event-loop iteration (and a
 * client's socket is never read and written in one iteration, AE_BARRIER),
 * so every XADD reply follows the fsync of its entry. */
static int rd_ingest(vs_ctx *x, vs_meter *m, bool sync, long *done)
{
    redisContext *c = live(x);
    const writes w = {sync ? "bench-sync" : "bench", NULL, x->p->keys};
    if (c == NULL)
        return VS_FAIL;
    if (sync &&
        command_ok(x, c, 4, (const char *[]){"CONFIG", "SET", "appendfsync", "always"}) != VS_OK)
        return VS_FAIL;
    vs_meter_start(m);
    int rc = write_events(x, c, &w, x->p->events);
    vs_meter_stop(m);
    if (sync) {
        /* back to everysec for the latency run, even after a failure (whose
         * sentence stays in x->err) */
        vs_ctx scratch = {.p = x->p, .srv = x->srv};
        if (command_ok(rc == VS_OK ? x : &scratch, c, 4,
                       (const char *[]){"CONFIG", "SET", "appendfsync", "everysec"}) != VS_OK)
            rc = VS_FAIL;
    }
    if (rc == VS_OK)
        *done = x->p->events;
    return rc;
}

/* Workload 3: XREAD from the start of "bench", p->batch entries at a time,
 * the next read from the last ID seen, one request in flight. */
static int rd_consume(vs_ctx *x, vs_meter *m, long *done)
{
    redisContext *c = live(x);
    const vs_params *p = x->p;
    char count[24], last[RD_ID_MAX] = "0-0";
    snprintf(count, sizeof count, "%d", p->batch);
    long got = 0;
    int rc = VS_OK;
    if (c == NULL)
        return VS_FAIL;
    vs_meter_start(m);
    while (rc == VS_OK && got < p->events) {
        const char *argv[] = {"XREAD", "COUNT", count, "STREAMS", "bench", last};
        redisReply *r = NULL;
        rc = command(x, c, &r, 6, argv);
        if (rc != VS_OK)
            break;
        const redisReply *es = entries_of(r);
        if (es == NULL || es->elements == 0)
            rc = vs_fail(x, "redis: XREAD found nothing after %ld of %ld events", got, p->events);
        else
            rc = check_entries(x, es, &got, last);
        freeReplyObject(r);
    }
    vs_meter_stop(m);
    if (rc == VS_OK && got != p->events)
        rc = vs_fail(x, "redis: XREAD returned %ld events, %ld were written", got, p->events);
    *done = got;
    return rc;
}

/* Appends XREADGROUP for the next batch of new entries of "bench". */
static int append_readgroup(vs_ctx *x, redisContext *c, const char *count)
{
    const char *argv[] = {"XREADGROUP", "GROUP",   RD_GROUP, RD_CONSUMER, "COUNT",
                          count,        "STREAMS", "bench",  ">"};
    size_t len[9];
    for (int i = 0; i < 9; i++)
        len[i] = strlen(argv[i]);
    return redisAppendCommandArgv(c, 9, argv, len) == REDIS_OK ? VS_OK
                                                               : io_fail(x, c, "XREADGROUP");
}

/* Workload 4: a consumer group from the start of "bench". Each batch is
 * checked, then its XACK (every ID of the batch) and the XREADGROUP of the
 * next batch go out in one write; the XACK must count the whole batch. */
static int rd_group(vs_ctx *x, vs_meter *m, long *done)
{
    const vs_params *p = x->p;
    redisContext *c = live(x);
    char count[24], last[RD_ID_MAX];
    snprintf(count, sizeof count, "%d", p->batch);
    if (c == NULL ||
        command_ok(x, c, 5, (const char *[]){"XGROUP", "CREATE", "bench", RD_GROUP, "0"}) != VS_OK)
        return VS_FAIL;
    size_t cap = 3 + (size_t)p->batch;
    const char **argv = malloc(cap * sizeof *argv);
    size_t *len = malloc(cap * sizeof *len);
    if (argv == NULL || len == NULL) {
        free(argv);
        free(len);
        return vs_fail(x, "redis: out of memory");
    }
    argv[0] = "XACK", argv[1] = "bench", argv[2] = RD_GROUP;
    len[0] = 4, len[1] = 5, len[2] = strlen(RD_GROUP);
    long got = 0;
    redisReply *r = NULL;
    vs_meter_start(m);
    int rc = append_readgroup(x, c, count);
    while (rc == VS_OK && got < p->events) {
        if ((rc = next_reply(x, c, "XREADGROUP", &r)) != VS_OK)
            break;
        const redisReply *es = entries_of(r);
        if (es == NULL || es->elements == 0 || es->elements > (size_t)p->batch) {
            rc = vs_fail(x, "redis: XREADGROUP gave no batch after %ld of %ld events", got,
                         p->events);
            break;
        }
        if ((rc = check_entries(x, es, &got, last)) != VS_OK)
            break;
        for (size_t i = 0; i < es->elements; i++) {
            const redisReply *id = es->element[i]->element[0];
            argv[3 + i] = id->str;
            len[3 + i] = id->len;
        }
        int nack = 3 + (int)es->elements;
        long want = (long)es->elements;
        if (redisAppendCommandArgv(c, nack, argv, len) != REDIS_OK) {
            rc = io_fail(x, c, "XACK");
            break;
        }
        freeReplyObject(r);
        r = NULL;
        if (got < p->events && (rc = append_readgroup(x, c, count)) != VS_OK)
            break;
        redisReply *a = NULL;
        if ((rc = next_reply(x, c, "XACK", &a)) != VS_OK)
            break;
        long acked = a->type == REDIS_REPLY_INTEGER ? (long)a->integer : -1;
        freeReplyObject(a);
        if (acked != want)
            rc = vs_fail(x, "redis: XACK of a batch of %ld acknowledged %ld", want, acked);
    }
    vs_meter_stop(m);
    if (r != NULL)
        freeReplyObject(r);
    free(argv);
    free(len);
    if (rc == VS_OK && got != p->events)
        rc = vs_fail(x, "redis: the group read %ld events, %ld were written", got, p->events);
    *done = got;
    return rc;
}

/* Fills hash "latest" with HSET latest <key> <value> for every event of
 * "bench" in order, once per server lifetime and never timed: ingest is
 * XADD only, and a Redis stream cannot be looked up by key. */
static int ensure_latest(vs_ctx *x)
{
    rd *st = x->srv->priv;
    if (st->latest)
        return VS_OK;
    const writes w = {NULL, "latest", x->p->keys};
    redisContext *c = live(x);
    if (c == NULL || write_events(x, c, &w, x->p->events) != VS_OK)
        return VS_FAIL;
    st->latest = true;
    return VS_OK;
}

/* Checks one HGET reply: a value of an event that has the key of read i. */
static int check_get(vs_ctx *x, const redisReply *r, long i)
{
    uint64_t n;
    uint32_t k = vs_read_key(x->p, i);
    if (r->type != REDIS_REPLY_STRING || vs_value_parse(r->str, r->len, &n, NULL) < 0)
        return vs_fail(x, "redis: HGET of key %u did not return a value", k);
    if (n >= (uint64_t)x->p->events || vs_key_of(x->p->keys, n) != k)
        return vs_fail(x, "redis: HGET of key %u returned event %llu, of another key", k,
                       (unsigned long long)n);
    return VS_OK;
}

/* Appends HGET latest <key of read i>. */
static int append_get(vs_ctx *x, redisContext *c, long i)
{
    char key[VS_KEY_LEN + 1];
    vs_key(key, vs_read_key(x->p, i));
    const char *argv[] = {"HGET", "latest", key};
    const size_t len[] = {4, 6, VS_KEY_LEN};
    return redisAppendCommandArgv(c, 3, argv, len) == REDIS_OK ? VS_OK : io_fail(x, c, "HGET");
}

/* Workload 5a: p->gets HGETs, one round trip each, one latency sample each. */
static int rd_get_one(vs_ctx *x, vs_meter *m, long *done)
{
    redisContext *c = live(x);
    if (c == NULL || ensure_latest(x) != VS_OK)
        return VS_FAIL;
    long i = 0;
    int rc = VS_OK;
    vs_meter_start(m);
    for (; i < x->p->gets && rc == VS_OK; i++) {
        redisReply *r = NULL;
        uint64_t t = vs_now_ns();
        if ((rc = append_get(x, c, i)) != VS_OK || (rc = next_reply(x, c, "HGET", &r)) != VS_OK)
            break;
        vs_lat_add(m, vs_now_ns() - t);
        rc = check_get(x, r, i);
        freeReplyObject(r);
    }
    vs_meter_stop(m);
    *done = i;
    return rc;
}

/* A pipelined run: request i appended by add(x, c, arg, i), its reply
 * checked by check(x, r, arg, i) (which does not free r); up to window in
 * flight. The window is topped up after each read from the socket (which
 * brings many replies), so a refill costs one write, not one per request. */
typedef struct piped {
    const char *what; /* the command, for error sentences */
    long total, window;
    int (*add)(vs_ctx *x, redisContext *c, const void *arg, long i);
    int (*check)(vs_ctx *x, const redisReply *r, const void *arg, long i);
    const void *arg;
} piped;

static int run_piped(vs_ctx *x, redisContext *c, const piped *pp, vs_meter *m, long *done)
{
    long sent = 0, got = 0;
    int rc = VS_OK;
    vs_meter_start(m);
    while (rc == VS_OK && got < pp->total) {
        for (; sent - got < pp->window && sent < pp->total; sent++)
            if ((rc = pp->add(x, c, pp->arg, sent)) != VS_OK)
                goto out;
        if ((rc = flush(x, c)) != VS_OK)
            break;
        redisReply *r = NULL;
        if ((rc = next_reply(x, c, pp->what, &r)) != VS_OK)
            break;
        for (;;) {
            rc = pp->check(x, r, pp->arg, got++);
            freeReplyObject(r);
            if (rc != VS_OK || got == sent)
                break;
            void *v = NULL;
            if (redisGetReplyFromReader(c, &v) != REDIS_OK) {
                rc = io_fail(x, c, pp->what);
                break;
            }
            if (v == NULL)
                break; /* the rest is still on its way */
            r = v;
        }
    }
out:
    vs_meter_stop(m);
    *done = got;
    return rc;
}

static int piped_get_add(vs_ctx *x, redisContext *c, const void *arg, long i)
{
    (void)arg;
    return append_get(x, c, i);
}

static int piped_get_check(vs_ctx *x, const redisReply *r, const void *arg, long i)
{
    (void)arg;
    return check_get(x, r, i);
}

/* Workload 5b: p->gets_piped HGETs with up to p->get_window in flight. */
static int rd_get_piped(vs_ctx *x, vs_meter *m, long *done)
{
    redisContext *c = live(x);
    if (c == NULL || ensure_latest(x) != VS_OK)
        return VS_FAIL;
    const piped pp = {"HGET",        x->p->gets_piped, x->p->get_window,
                      piped_get_add, piped_get_check,  NULL};
    return run_piped(x, c, &pp, m, done);
}

/* The producer side of workload 6, run in its own thread on its own
 * connection. */
typedef struct producer {
    vs_ctx x; /* its own err sentence; p and srv shared read-only */
    redisContext *c;
    uint64_t t0; /* the schedule: event n is due at t0 + n / rate */
    long total;  /* events to send */
    long acked;  /* XADD replies checked */
    int rc;
    atomic_bool over; /* set when it has stopped, done or failed */
} producer;

static uint64_t due_ns(const producer *pr, long n)
{
    return pr->t0 + (uint64_t)((double)n * 1e9 / pr->x.p->rate);
}

/* Checks the XADD replies already in the reader; with wait, blocks for
 * the next one first. */
static int drain(producer *pr, bool wait)
{
    for (;;) {
        void *v = NULL;
        int ok = wait ? redisGetReply(pr->c, &v) : redisGetReplyFromReader(pr->c, &v);
        if (ok != REDIS_OK)
            return io_fail(&pr->x, pr->c, "XADD bench-lat");
        if (v == NULL)
            return VS_OK;
        redisReply *r = v;
        bool id = r->type == REDIS_REPLY_STRING && r->len > 0 && r->len < RD_ID_MAX;
        if (!id)
            vs_fail(&pr->x, "redis: XADD bench-lat of event %ld answered %s%.*s", pr->acked,
                    r->type == REDIS_REPLY_ERROR ? "" : "no stream ID",
                    r->type == REDIS_REPLY_ERROR ? (int)r->len : 0, r->str ? r->str : "");
        freeReplyObject(r);
        if (!id)
            return VS_FAIL;
        pr->acked++;
        wait = false;
    }
}

/* Sends event n when it falls due, stamped with that due time, so a late
 * producer shows as latency. Whatever is due is appended and flushed, the
 * replies already on the socket are checked without blocking (poll with no
 * wait), and the thread sleeps until the next point of the producers' grid
 * (vs_sleep_until_tick). At the end it waits for the replies still
 * outstanding. */
static void *produce(void *arg)
{
    producer *pr = arg;
    long n = 0;
    int rc = VS_OK;
    struct pollfd pfd = {.fd = pr->c->fd, .events = POLLIN};
    while (rc == VS_OK && n < pr->total) {
        uint64_t now = vs_now_ns();
        for (; n < pr->total && due_ns(pr, n) <= now; n++) {
            char val[VS_VALUE_LEN + 1];
            vs_value(val, (uint64_t)n, due_ns(pr, n));
            const char *argv[] = {"XADD", "bench-lat", "*", "v", val};
            const size_t len[] = {4, 9, 1, 1, VS_VALUE_LEN};
            if (redisAppendCommandArgv(pr->c, 5, argv, len) != REDIS_OK) {
                rc = io_fail(&pr->x, pr->c, "XADD bench-lat");
                break;
            }
        }
        if (rc != VS_OK || (rc = flush(&pr->x, pr->c)) != VS_OK)
            break;
        int ready = poll(&pfd, 1, 0);
        if (ready < 0 && errno != EINTR)
            rc = vs_fail(&pr->x, "redis: poll on the producer: %s", strerror(errno));
        else if (ready > 0 && redisBufferRead(pr->c) != REDIS_OK)
            rc = io_fail(&pr->x, pr->c, "XADD bench-lat");
        if (rc == VS_OK)
            rc = drain(pr, false);
        if (rc == VS_OK && n < pr->total) {
            vs_sleep_until_tick(pr->t0, due_ns(pr, n));
        }
    }
    while (rc == VS_OK && pr->acked < n)
        rc = drain(pr, true);
    pr->rc = rc;
    atomic_store(&pr->over, true);
    return NULL;
}

/* Workload 6: a consumer (this thread) XREAD BLOCKs on "bench-lat" from
 * 0-0 while the producer thread sends p->rate events/s for p->lat_secs.
 * One sample per event: the time its reply was read minus its stamp. */
static int rd_latency(vs_ctx *x, vs_meter *m, long *done)
{
    const vs_params *p = x->p;
    char count[24], last[RD_ID_MAX] = "0-0";
    snprintf(count, sizeof count, "%d", p->batch);
    producer pr = {.x = {.p = p, .srv = x->srv}, .total = (long)(p->rate * p->lat_secs)};
    atomic_init(&pr.over, false);
    redisContext *cons = rd_connect(x);
    if (cons == NULL)
        return VS_FAIL;
    pr.c = rd_connect(x);
    if (pr.c == NULL) {
        redisFree(cons);
        return VS_FAIL;
    }
    long got = 0;
    int rc = VS_OK;
    pthread_t th;
    vs_meter_start(m);
    pr.t0 = vs_now_ns();
    uint64_t deadline = pr.t0 + (uint64_t)((p->lat_secs + RD_LAT_GRACE_S) * 1e9);
    if (pthread_create(&th, NULL, produce, &pr) != 0) {
        vs_meter_stop(m);
        redisFree(cons);
        redisFree(pr.c);
        return vs_fail(x, "redis: cannot start the producer thread");
    }
    while (rc == VS_OK && got < pr.total) {
        const char *argv[] = {"XREAD", "BLOCK",   RD_BLOCK_MS, "COUNT",
                              count,   "STREAMS", "bench-lat", last};
        redisReply *r = NULL;
        if ((rc = command(x, cons, &r, 8, argv)) != VS_OK)
            break;
        uint64_t now = vs_now_ns();
        const redisReply *es = entries_of(r);
        for (size_t i = 0; es != NULL && i < es->elements && rc == VS_OK; i++) {
            uint64_t n, ts;
            const redisReply *id = NULL;
            if (entry_of(es->element[i], &n, &ts, &id) < 0)
                rc = vs_fail(x, "redis: bench-lat entry %ld is not well-formed", got);
            else if (n != (uint64_t)got)
                rc = vs_fail(x, "redis: bench-lat entry %ld holds event %llu", got,
                             (unsigned long long)n);
            else {
                vs_lat_add(m, now > ts ? now - ts : 0);
                got++;
                if (i + 1 == es->elements)
                    snprintf(last, sizeof last, "%.*s", (int)id->len, id->str);
            }
        }
        freeReplyObject(r);
        if (rc == VS_OK && got < pr.total && es == NULL) {
            if (atomic_load(&pr.over) && pr.rc != VS_OK)
                break; /* the producer's sentence says why */
            if (now > deadline)
                rc = vs_fail(x, "redis: %ld of %ld events reached the consumer within %.0f s", got,
                             pr.total, p->lat_secs + RD_LAT_GRACE_S);
        }
    }
    pthread_join(th, NULL);
    vs_meter_stop(m);
    redisFree(cons);
    redisFree(pr.c);
    if (rc == VS_OK && pr.rc != VS_OK)
        rc = vs_fail(x, "%s", pr.x.err);
    if (rc == VS_OK && (got != pr.total || pr.acked != pr.total))
        rc = vs_fail(x, "redis: %ld events produced, %ld consumed, %ld wanted", pr.acked, got,
                     pr.total);
    *done = got;
    return rc;
}

/* Workload 7: p->rss_events events over p->rss_keys keys, each an XADD into
 * "bench-rss" and an HSET into "latest-rss", pipelined as ingest is. The
 * HSET is there because krappyd keeps the latest value of every key as well
 * as every event, and Redis needs the hash to answer that read; without it
 * Redis would be measured holding less than krappyd does. */
static int rd_load(vs_ctx *x, vs_meter *m, long *done)
{
    redisContext *c = live(x);
    const writes w = {"bench-rss", "latest-rss", x->p->rss_keys};
    if (c == NULL)
        return VS_FAIL;
    vs_meter_start(m);
    int rc = write_events(x, c, &w, x->p->rss_events);
    vs_meter_stop(m);
    if (rc == VS_OK)
        *done = x->p->rss_events;
    return rc;
}

static int piped_xadd_add(vs_ctx *x, redisContext *c, const void *arg, long i)
{
    return append_event(x, c, arg, i);
}

static int piped_xadd_check(vs_ctx *x, const redisReply *r, const void *arg, long i)
{
    (void)arg;
    if (r->type != REDIS_REPLY_STRING || r->len == 0 || r->len >= RD_ID_MAX)
        return vs_fail(x, "redis: XADD of event %ld did not answer a stream ID", i);
    return VS_OK;
}

/* 8a. p->pub_events XADDs into "bench-one", p->pub_window in flight, topped
 * up as 5b does. */
static int rd_publish_piped(vs_ctx *x, vs_meter *m, long *done)
{
    redisContext *c = live(x);
    const writes w = {"bench-one", NULL, x->p->keys};
    if (c == NULL)
        return VS_FAIL;
    const piped pp = {"XADD",         x->p->pub_events, x->p->pub_window,
                      piped_xadd_add, piped_xadd_check, &w};
    return run_piped(x, c, &pp, m, done);
}

/* 8b. p->pubs_one XADDs into "bench-one1", one round trip each. */
static int rd_publish_one(vs_ctx *x, vs_meter *m, long *done)
{
    redisContext *c = live(x);
    const writes w = {"bench-one1", NULL, x->p->keys};
    if (c == NULL)
        return VS_FAIL;
    long n = 0;
    int rc = VS_OK;
    vs_meter_start(m);
    for (; n < x->p->pubs_one && rc == VS_OK; n++) {
        uint64_t t = vs_now_ns();
        if ((rc = append_event(x, c, &w, n)) != VS_OK)
            break;
        rc = check_event(x, c, &w, n);
        vs_lat_add(m, vs_now_ns() - t);
    }
    vs_meter_stop(m);
    *done = n;
    return rc;
}

/* 8c. p->pings PINGs, one round trip each. */
static int rd_ping(vs_ctx *x, vs_meter *m, long *done)
{
    redisContext *c = live(x);
    if (c == NULL)
        return VS_FAIL;
    long i = 0;
    int rc = VS_OK;
    vs_meter_start(m);
    for (; i < x->p->pings && rc == VS_OK; i++) {
        redisReply *r = NULL;
        uint64_t t = vs_now_ns();
        if ((rc = command(x, c, &r, 1, (const char *[]){"PING"})) != VS_OK)
            break;
        vs_lat_add(m, vs_now_ns() - t);
        if (r->type != REDIS_REPLY_STATUS || strcmp(r->str, "PONG") != 0)
            rc = vs_fail(x, "redis: PING did not answer PONG");
        freeReplyObject(r);
    }
    vs_meter_stop(m);
    *done = i;
    return rc;
}

const vs_system vs_redis = {.name = "Redis Streams",
                            .id = "redis",
                            .start = rd_start,
                            .stop = rd_stop,
                            .ingest = rd_ingest,
                            .consume = rd_consume,
                            .group = rd_group,
                            .get_one = rd_get_one,
                            .get_piped = rd_get_piped,
                            .latency = rd_latency,
                            .load = rd_load,
                            .publish_piped = rd_publish_piped,
                            .publish_one = rd_publish_one,
                            .ping = rd_ping};

#else /* no hiredis at build time */

/* Built without hiredis: every workload is skipped with the way out. */
static int no_start(vs_ctx *x)
{
    snprintf(x->note, sizeof x->note,
             "built without hiredis (apt-get install redis-server libhiredis-dev)");
    return VS_SKIP;
}

static void no_stop(vs_ctx *x)
{
    (void)x;
}

static int no_ingest(vs_ctx *x, vs_meter *m, bool sync, long *done)
{
    (void)m, (void)sync, (void)done;
    return no_start(x);
}

static int no_run(vs_ctx *x, vs_meter *m, long *done)
{
    (void)m, (void)done;
    return no_start(x);
}

const vs_system vs_redis = {.name = "Redis Streams",
                            .id = "redis",
                            .start = no_start,
                            .stop = no_stop,
                            .ingest = no_ingest,
                            .consume = no_run,
                            .group = no_run,
                            .get_one = no_run,
                            .get_piped = no_run,
                            .latency = no_run,
                            .load = no_run,
                            .publish_piped = no_run,
                            .publish_one = no_run,
                            .ping = no_run};

#endif
