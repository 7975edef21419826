/*
 * e2e/bench/vs/nats.c - the NATS JetStream backend of bench_vs: nats-server
 * 2.9 with JetStream file storage on 127.0.0.1, driven with libnats (the
 * NATS C client, 3.x).
 *
 * Data layout. The ingested events live in the key-value bucket "bench"
 * (js_CreateKeyValue, file storage, History 64 so that the ~10 values each key
 * gets all stay): event n is published to "$KV.bench.<key>" with key
 * vs_key(vs_key_of(keys, n)) and data vs_value(n, 0). The bucket is a stream,
 * KV_bench, so "consume by offset" reads that stream with pull consumers and
 * "latest value by key" is a real kvStore_Get on the same data. The latency
 * run uses a stream of its own, "lat" (subjects "lat.<key>"), and the RSS load
 * a bucket of its own, "rss", on a fresh server.
 *
 * Buffered and SendAsap connections. libnats buffers publishes and its
 * flusher thread waits 1 ms for more before it writes, which suits the
 * async-publish workloads (batch * window in flight) and not request/reply
 * ones, where every request would sit out that millisecond: those (fetches,
 * acks, gets, the latency producer) use connections with SendAsap, which
 * write at once.
 *
 * The 3-node cluster (vs_nats3): three nats-server with JetStream, routes
 * between them on 127.0.0.1, every bucket and stream with Replicas 3 (R3: a
 * Raft group per stream, a publish acknowledged once a majority stored it).
 * Clients connect to node 1 and JetStream forwards to each stream's leader,
 * as a NATS client would; C3 kills that leader.
 *
 * NATS 2.9 has no fsync-before-ack mode, so ingest(sync) is a skip with the
 * reason (SYNC_NOTE) rather than a number. Checked against 2.9.10 with
 * strace: a publish is pwrite()n to the block file, then acked; the fsyncs
 * come from a timer every 2 minutes; "sync_interval" is an unknown field.
 */
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>

#include <nats/nats.h>

#include "../../harness.h"
#include "vs.h"

#define BUCKET       "bench"
#define STREAM       "KV_" BUCKET
#define GROUP        "g" /* the durable consumer of workload 4 */
#define RSS_BUCKET   "rss"
#define LAT_STREAM   "lat"
#define HISTORY      64    /* values kept per key (KV maximum) */
#define START_MS     10000 /* nats-server listening */
#define STOP_MS      5000  /* SIGTERM before SIGKILL; library teardown */
#define WAIT_MS      10000 /* any one wait: a fetch, a get, an ack, a stall */
#define LAT_DRAIN_MS 10000 /* latency: the tail after the last scheduled send */
#define SUBJ_MAX     128
#define NODES        3     /* vs_nats3 */
#define JS_READY_MS  20000 /* vs_nats3: JetStream's meta leader elected */
#define DIRECT_GET   "$JS.API.DIRECT.GET." STREAM ".$KV." BUCKET "."

#define SYNC_NOTE                                                                                  \
    "NATS 2.9 has no fsync-before-ack mode: the file store acks after write() to the OS "          \
    "page cache and fsyncs every 2 minutes (sync_interval, and its \"always\", came in 2.10)"

/* What a running server needs on the client side. */
typedef struct nats_state {
    bool opened;          /* libnats was opened: tear it down in stop */
    natsConnection *nc;   /* buffered: ingest, load, set-up */
    jsCtx *js;            /* JetStream on nc (no async-publish options) */
    natsConnection *fast; /* SendAsap: consume, group, gets */
    jsCtx *fjs;           /* JetStream on fast */
    kvStore *kv;          /* bucket "bench", on fast */
    long *last;           /* per key of "bench", the index of its latest event */
    int replicas;         /* of every bucket and stream: 1, or NODES (vs_nats3) */
    pid_t pid[NODES];     /* vs_nats3: each server (pid[0] is srv->pid) */
    int port[NODES];      /* ... its client port */
} nats_state;

/* Errors from an async-publish context, filled by the library's reply thread
 * and read after js_PublishAsyncComplete (which waits for every callback). */
typedef struct pub_errs {
    atomic_long n;
    char first[200];
} pub_errs;

/* Formats the failed NATS call, its status and the library's last error
 * (thread-local, "(file.c:line): text", the location dropped) into x->err. */
static int nfail(vs_ctx *x, const char *what, natsStatus s)
{
    if (s == NATS_TIMEOUT)
        return vs_fail(x, "NATS: %s: no answer within %d s", what, WAIT_MS / 1000);
    const char *text = natsStatus_GetText(s);
    const char *detail = nats_GetLastError(NULL);
    if (detail != NULL && detail[0] == '(' && strstr(detail, "): ") != NULL)
        detail = strstr(detail, "): ") + 3;
    if (detail != NULL && (detail[0] == '\0' || strcmp(detail, text) == 0))
        detail = NULL;
    return vs_fail(x, "NATS: %s: %s%s%s", what, text, detail != NULL ? ": " : "",
                   detail != NULL ? detail : "");
}

/* A connection to the server of srv: no reconnects (a dead server is an
 * error, not a wait), WAIT_MS to connect; asap: SendAsap (see the top). */
static natsStatus dial_urls(natsConnection **nc, const char **urls, int n, const char *name,
                            bool asap, int timeout_ms)
{
    natsOptions *o = NULL;
    natsStatus s = natsOptions_Create(&o);
    if (s == NATS_OK)
        s = natsOptions_SetServers(o, urls, n);
    if (s == NATS_OK)
        s = natsOptions_SetName(o, name);
    if (s == NATS_OK)
        s = natsOptions_SetTimeout(o, timeout_ms);
    if (s == NATS_OK)
        s = natsOptions_SetAllowReconnect(o, false);
    if (s == NATS_OK && asap)
        s = natsOptions_SetSendAsap(o, true);
    if (s == NATS_OK)
        s = natsConnection_Connect(nc, o);
    natsOptions_Destroy(o);
    return s;
}

static natsStatus dial(natsConnection **nc, const vs_server *srv, const char *name, bool asap)
{
    char url[128];
    snprintf(url, sizeof url, "nats://%s:%d", srv->host, srv->port);
    const char *urls[] = {url};
    return dial_urls(nc, urls, 1, name, asap, WAIT_MS);
}

/* Called by libnats for every async publish the server refused or that got
 * no ack; counts them and keeps the first reason. */
static void on_pub_err(jsCtx *js, jsPubAckErr *pae, void *closure)
{
    pub_errs *e = closure;
    (void)js;
    if (atomic_fetch_add(&e->n, 1) == 0)
        snprintf(e->first, sizeof e->first, "%s (%s)", pae->ErrText != NULL ? pae->ErrText : "?",
                 natsStatus_GetText(pae->Err));
}

/* A JetStream context for async publishing on nc: at most max_pending
 * publishes un-acked (the same in-flight depth every system gets); a publish
 * that would exceed it waits for acks, at most WAIT_MS, then fails. */
static natsStatus pub_ctx(jsCtx **js, natsConnection *nc, int64_t max_pending, pub_errs *e)
{
    jsOptions o;
    jsOptions_Init(&o);
    o.Wait = WAIT_MS;
    o.PublishAsync.MaxPending = max_pending;
    o.PublishAsync.ErrHandler = on_pub_err;
    o.PublishAsync.ErrHandlerClosure = e;
    o.PublishAsync.StallWait = WAIT_MS;
    return natsConnection_JetStream(js, nc, &o);
}

/* The bucket the events go to: file storage, HISTORY values per key. */
static natsStatus make_bucket(kvStore **kv, jsCtx *js, const char *name, int replicas)
{
    kvConfig c;
    kvConfig_Init(&c);
    c.Bucket = name;
    c.History = HISTORY;
    c.StorageType = js_FileStorage;
    c.Replicas = replicas;
    return js_CreateKeyValue(kv, js, &c);
}

/* How many messages stream holds; -1 (with x->err) if it cannot say. */
static long stream_msgs(vs_ctx *x, jsCtx *js, const char *stream)
{
    jsStreamInfo *si = NULL;
    jsErrCode jerr = 0;
    natsStatus s = js_GetStreamInfo(&si, js, stream, NULL, &jerr);
    if (s != NATS_OK) {
        nfail(x, "stream info", s);
        return -1;
    }
    long n = (long)si->State.Msgs;
    jsStreamInfo_Destroy(si);
    return n;
}

/*
 * The timed part of ingest(write) and of the RSS load: events events over keys
 * keys published with js_PublishAsync to "$KV.<bucket>.<key>", batch * window
 * un-acked at most, then js_PublishAsyncComplete. The meter runs from the
 * first publish to the last ack. A refused publish is a failure, and so is a
 * stream that does not hold every event afterwards (checked outside the meter).
 */
static int publish_kv(vs_ctx *x, vs_meter *m, const char *bucket, long events, long keys,
                      int64_t max_pending)
{
    nats_state *st = x->srv->priv;
    const vs_params *p = x->p;
    pub_errs e = {0};
    jsCtx *js = NULL;
    char subj[SUBJ_MAX], val[VS_VALUE_LEN + 1], stream[SUBJ_MAX];
    int rc = VS_OK;

    natsStatus s = pub_ctx(&js, st->nc, max_pending, &e);
    if (s != NATS_OK)
        return nfail(x, "a JetStream context for publishing", s);
    size_t pre = (size_t)snprintf(subj, sizeof subj, "$KV.%s.", bucket);
    long n;
    vs_meter_start(m);
    for (n = 0; n < events; n++) {
        vs_key(subj + pre, vs_key_of(keys, (uint64_t)n));
        vs_value(val, (uint64_t)n, 0);
        s = js_PublishAsync(js, subj, val, VS_VALUE_LEN, NULL);
        if (s != NATS_OK) {
            rc = nfail(x, "js_PublishAsync, waiting for acks below the in-flight limit", s);
            goto done;
        }
        if (n % p->batch == 0 && atomic_load(&e.n) > 0)
            break; /* refused already: no point publishing the rest */
    }
    jsPubOptions po;
    jsPubOptions_Init(&po);
    po.MaxWait = WAIT_MS;
    s = js_PublishAsyncComplete(js, &po);
    vs_meter_stop(m);
    if (s != NATS_OK) {
        rc = nfail(x, "waiting for the last publish acks", s);
    } else if (atomic_load(&e.n) > 0) {
        rc = vs_fail(x, "NATS refused %ld of %ld publishes; the first: %s", atomic_load(&e.n), n,
                     e.first);
    } else {
        snprintf(stream, sizeof stream, "KV_%s", bucket);
        long have = stream_msgs(x, st->js, stream);
        if (have < 0)
            rc = VS_FAIL;
        else if (have != events)
            rc = vs_fail(x, "stream %s holds %ld messages after %ld acked publishes", stream, have,
                         events);
    }
done:
    jsCtx_Destroy(js);
    return rc;
}

/* Checks a fetched batch: every message a vs_value whose index is the next
 * one expected (*next, advanced). */
static int check_batch(vs_ctx *x, const natsMsgList *l, long *next)
{
    for (int i = 0; i < l->Count; i++) {
        natsMsg *msg = l->Msgs[i];
        uint64_t n;
        if (vs_value_parse(natsMsg_GetData(msg), (size_t)natsMsg_GetDataLength(msg), &n, NULL) < 0)
            return vs_fail(x, "message %ld on %s is not a bench value (%d bytes)", *next,
                           natsMsg_GetSubject(msg), natsMsg_GetDataLength(msg));
        if (n != (uint64_t)*next)
            return vs_fail(x, "expected event %ld, read event %llu: events missing or out of order",
                           *next, (unsigned long long)n);
        (*next)++;
    }
    return VS_OK;
}

/* Index of the latest event of every key of "bench", for checking that a get
 * returned the latest value and not just a value. Built once per server, as
 * the driver's sequence is fixed. */
static int latest_table(vs_ctx *x, nats_state *st)
{
    const vs_params *p = x->p;
    if (st->last != NULL)
        return VS_OK;
    st->last = malloc((size_t)p->keys * sizeof *st->last);
    if (st->last == NULL)
        return vs_fail(x, "out of memory for %ld keys", p->keys);
    for (long k = 0; k < p->keys; k++)
        st->last[k] = -1;
    for (long n = 0; n < p->events; n++)
        st->last[vs_key_of(p->keys, (uint64_t)n)] = n;
    return VS_OK;
}

/* Checks a value read for key k: a vs_value, and the latest one of k. */
static int check_latest(vs_ctx *x, const nats_state *st, uint32_t k, const void *v, int len)
{
    uint64_t n;
    if (vs_value_parse(v, (size_t)(len < 0 ? 0 : len), &n, NULL) < 0)
        return vs_fail(x, "the value of key %u is not a bench value (%d bytes)", k, len);
    if ((long)n != st->last[k])
        return vs_fail(x, "key %u: read event %llu, its latest is event %ld", k,
                       (unsigned long long)n, st->last[k]);
    return VS_OK;
}

/* The last line of the server's log (for a sentence on why it did not
 * start), or "" if there is none. */
static void log_tail(const char *path, char *out, size_t n)
{
    char line[512];
    out[0] = '\0';
    FILE *f = fopen(path, "r");
    if (f == NULL)
        return;
    while (fgets(line, sizeof line, f) != NULL)
        if (line[0] != '\n')
            snprintf(out, n, "%.*s", (int)strcspn(line, "\n"), line);
    fclose(f);
}

/* Spawns server i of `nodes` (1: alone) with JetStream under DIR/n<i> on
 * client port st->port[i], logging to DIR/n<i>.log, and waits until it
 * listens. With nodes > 1 it is "n<i>" of the cluster "vs", with routes to
 * the others on the ports routes[]. */
static int spawn_node(vs_ctx *x, nats_state *st, const char *prog, int i, int nodes,
                      const int *routes)
{
    vs_server *srv = x->srv;
    char port[16], store[300], log[300], name[16], cluster[64], peers[200] = "";
    snprintf(port, sizeof port, "%d", st->port[i]);
    snprintf(store, sizeof store, "%s/n%d", srv->dir, i + 1);
    snprintf(log, sizeof log, "%s/n%d.log", srv->dir, i + 1);
    snprintf(name, sizeof name, "n%d", i + 1);
    snprintf(cluster, sizeof cluster, "nats://127.0.0.1:%d", nodes > 1 ? routes[i] : 0);
    for (int k = 0, o = 0; k < nodes; k++)
        if (k != i)
            o += snprintf(peers + o, sizeof peers - (size_t)o, "%snats://127.0.0.1:%d",
                          o ? "," : "", routes[k]);
    char *argv[] = {
        (char *)prog,     "-a", srv->host,   "-p",    port,       "-js", "-sd", store, "-n", name,
        "--cluster_name", "vs", "--cluster", cluster, "--routes", peers, NULL};
    if (nodes == 1)
        argv[8] = NULL; /* no name, no cluster */
    st->pid[i] = vs_spawn(argv, log);
    if (st->pid[i] < 0) {
        st->pid[i] = 0;
        return vs_fail(x, "cannot start %s: %s", prog, strerror(errno));
    }
    if (vs_wait_port(srv->host, st->port[i], st->pid[i], START_MS) < 0) {
        char why[200];
        log_tail(log, why, sizeof why);
        const char *sep = why[0] != '\0' ? "; its log: " : "";
        if (kill(st->pid[i], 0) < 0 && errno == ESRCH) {
            st->pid[i] = 0; /* exited and reaped: nothing left to stop */
            return vs_fail(x, "nats-server exited before listening on %s:%d%s%s", srv->host,
                           st->port[i], sep, why);
        }
        return vs_fail(x, "nats-server did not listen on %s:%d within %d s%s%s", srv->host,
                       st->port[i], START_MS / 1000, sep, why);
    }
    return VS_OK;
}

/*
 * Starts `nodes` nats-server with JetStream (file storage under DIR/n<i>) on
 * 127.0.0.1 and free ports; connects to the first, and creates the bucket
 * "bench" with `nodes` replicas. No config files: the command lines say it
 * all. A cluster's JetStream answers only once its meta leader is elected,
 * so the bucket is retried until then.
 */
static int start_nodes(vs_ctx *x, int nodes)
{
    static const char *const candidates[] = {"/usr/sbin/nats-server", "/usr/bin/nats-server",
                                             "/usr/local/bin/nats-server", NULL};
    vs_server *srv = x->srv;
    nats_state *st = calloc(1, sizeof *st);
    if (st == NULL)
        return vs_fail(x, "out of memory");
    srv->priv = st;
    st->replicas = nodes;

    const char *prog = vs_program("NATS_SERVER", candidates);
    if (prog == NULL) {
        snprintf(x->note, sizeof x->note,
                 "nats-server not found: apt-get install nats-server libnats-dev, or set "
                 "$NATS_SERVER");
        return VS_SKIP;
    }
    if (vs_mkdtemp(srv->dir, sizeof srv->dir) < 0)
        return vs_fail(x, "cannot create a directory for nats-server: %s", strerror(errno));
    snprintf(srv->host, sizeof srv->host, "127.0.0.1");
    int routes[NODES] = {0};
    for (int i = 0; i < nodes; i++) {
        st->port[i] = vs_free_port();
        routes[i] = nodes > 1 ? vs_free_port() : 0;
        if (st->port[i] <= 0 || routes[i] < 0)
            return vs_fail(x, "no free TCP port on 127.0.0.1");
    }
    srv->port = st->port[0];
    for (int i = 0; i < nodes; i++) {
        int rc = spawn_node(x, st, prog, i, nodes, routes);
        if (i == 0)
            srv->pid = st->pid[0]; /* the CPU columns: the server clients talk to */
        if (rc != VS_OK)
            return rc;
    }

    st->opened = true; /* the first libnats call opens the library */
    natsStatus s = dial(&st->nc, srv, "bench_vs", false);
    if (s == NATS_OK)
        s = dial(&st->fast, srv, "bench_vs asap", true);
    if (s != NATS_OK)
        return nfail(x, "connecting", s);
    jsOptions o;
    jsOptions_Init(&o);
    o.Wait = WAIT_MS;
    s = natsConnection_JetStream(&st->js, st->nc, &o);
    if (s == NATS_OK)
        s = natsConnection_JetStream(&st->fjs, st->fast, &o);
    if (s != NATS_OK)
        return nfail(x, "the JetStream context", s);
    uint64_t end = vs_now_ns() + (uint64_t)JS_READY_MS * 1000000u;
    do {
        s = make_bucket(&st->kv, st->fjs, BUCKET, st->replicas);
        if (s != NATS_OK && nodes > 1) {
            struct timespec ts = {0, 100 * 1000000L};
            nanosleep(&ts, NULL);
        }
    } while (s != NATS_OK && nodes > 1 && vs_now_ns() < end);
    if (s != NATS_OK)
        return nfail(x, "creating the KV bucket " BUCKET, s);
    return VS_OK;
}

static int start(vs_ctx *x)
{
    return start_nodes(x, 1);
}

static int start3(vs_ctx *x)
{
    return start_nodes(x, NODES);
}

/* Destroys the client objects, stops the server, removes its directory and
 * tears libnats down (it is used by this file only, and the next start opens
 * it again), so that a run leaves no threads or memory of libnats behind. */
static void stop(vs_ctx *x)
{
    nats_state *st = x->srv->priv;
    if (st != NULL) {
        kvStore_Destroy(st->kv);
        jsCtx_Destroy(st->fjs);
        jsCtx_Destroy(st->js);
        natsConnection_Destroy(st->fast);
        natsConnection_Destroy(st->nc);
        free(st->last);
    }
    for (int i = 0; st != NULL && i < NODES; i++)
        if (st->pid[i] > 0)
            kill(st->pid[i], SIGTERM); /* all at once: each waits for the others otherwise */
    for (int i = 0; st != NULL && i < NODES; i++)
        if (st->pid[i] > 0)
            vs_kill(st->pid[i], STOP_MS);
    x->srv->pid = 0;
    e2e_rm_tmp(x->srv->dir);
    x->srv->dir[0] = '\0';
    if (st != NULL && st->opened)
        nats_CloseAndWait(STOP_MS);
    free(st);
    x->srv->priv = NULL;
}

/* 1 and 2. Without fsync: p->events async publishes into "bench". With
 * fsync: NATS 2.9 cannot, so a skip with the reason. */
static int ingest(vs_ctx *x, vs_meter *m, bool sync, long *done)
{
    if (sync) {
        snprintf(x->note, sizeof x->note, "%s", SYNC_NOTE);
        return VS_SKIP;
    }
    int rc =
        publish_kv(x, m, BUCKET, x->p->events, x->p->keys, (int64_t)x->p->batch * x->p->window);
    if (rc == VS_OK)
        *done = x->p->events;
    return rc;
}

/*
 * 3. Reads KV_bench from the start with an ephemeral pull consumer (AckNone,
 * DeliverAll): natsSubscription_Fetch of p->batch, one fetch in flight, every
 * event decoded and checked in order.
 */
static int consume(vs_ctx *x, vs_meter *m, long *done)
{
    nats_state *st = x->srv->priv;
    const vs_params *p = x->p;
    natsSubscription *sub = NULL;
    jsSubOptions so;
    jsErrCode jerr = 0;
    int rc = VS_OK;

    jsSubOptions_Init(&so);
    so.Stream = STREAM;
    so.Config.AckPolicy = js_AckNone;
    so.Config.DeliverPolicy = js_DeliverAll;
    natsStatus s = js_PullSubscribe(&sub, st->fjs, "$KV." BUCKET ".>", NULL, NULL, &so, &jerr);
    if (s != NATS_OK)
        return nfail(x, "a pull consumer on " STREAM, s);
    long got = 0;
    vs_meter_start(m);
    while (got < p->events && rc == VS_OK) {
        natsMsgList list = {0};
        s = natsSubscription_Fetch(&list, sub, p->batch, WAIT_MS, &jerr);
        if (s != NATS_OK) {
            char what[64];
            snprintf(what, sizeof what, "fetch after %ld events", got);
            rc = nfail(x, what, s);
            break;
        }
        rc = check_batch(x, &list, &got);
        natsMsgList_Destroy(&list);
    }
    vs_meter_stop(m);
    natsSubscription_Unsubscribe(sub); /* deletes the ephemeral consumer */
    natsSubscription_Destroy(sub);
    if (rc == VS_OK)
        *done = got;
    return rc;
}

/*
 * 4. The durable pull consumer "g" on KV_bench with AckAll: acking the last
 * message of a batch acks the whole batch (krappy's ACK upto, Redis's XACK of
 * a batch). Each batch is checked, its last message acked with the
 * asynchronous natsMsg_Ack (no reply awaited) and the next fetch issued at
 * once, so the ack and the next pull request leave back to back. The very last
 * ack is natsMsg_AckSync, inside the meter, so the run ends when the server
 * has every ack; the consumer's ack floor is checked afterwards.
 */
static int group(vs_ctx *x, vs_meter *m, long *done)
{
    nats_state *st = x->srv->priv;
    const vs_params *p = x->p;
    natsSubscription *sub = NULL;
    jsConsumerInfo *ci = NULL;
    jsConsumerConfig cc;
    jsSubOptions so;
    jsErrCode jerr = 0;
    int rc = VS_OK;

    jsConsumerConfig_Init(&cc);
    cc.Durable = GROUP;
    cc.AckPolicy = js_AckAll;
    cc.DeliverPolicy = js_DeliverAll;
    /* the next pull may be served before the previous batch's ack lands */
    cc.MaxAckPending = (int64_t)p->batch * p->window;
    natsStatus s = js_AddConsumer(&ci, st->js, STREAM, &cc, NULL, &jerr);
    jsConsumerInfo_Destroy(ci);
    ci = NULL;
    if (s != NATS_OK)
        return nfail(x, "the durable consumer " GROUP, s);
    jsSubOptions_Init(&so);
    so.Stream = STREAM;
    so.Consumer = GROUP;
    s = js_PullSubscribe(&sub, st->fjs, "$KV." BUCKET ".>", GROUP, NULL, &so, &jerr);
    if (s != NATS_OK)
        return nfail(x, "binding to the durable consumer " GROUP, s);

    long got = 0;
    vs_meter_start(m);
    while (got < p->events && rc == VS_OK) {
        natsMsgList list = {0};
        s = natsSubscription_Fetch(&list, sub, p->batch, WAIT_MS, &jerr);
        if (s != NATS_OK) {
            char what[64];
            snprintf(what, sizeof what, "fetch after %ld events", got);
            rc = nfail(x, what, s);
            break;
        }
        rc = check_batch(x, &list, &got);
        if (rc == VS_OK) {
            natsMsg *last = list.Msgs[list.Count - 1];
            s = got < p->events ? natsMsg_Ack(last, NULL) : natsMsg_AckSync(last, NULL, &jerr);
            if (s != NATS_OK)
                rc = nfail(x, "ack", s);
        }
        natsMsgList_Destroy(&list);
    }
    vs_meter_stop(m);
    if (rc == VS_OK) {
        s = js_GetConsumerInfo(&ci, st->js, STREAM, GROUP, NULL, &jerr);
        if (s != NATS_OK)
            rc = nfail(x, "consumer info of " GROUP, s);
        else if (ci->AckFloor.Stream != (uint64_t)p->events || ci->NumAckPending != 0)
            rc = vs_fail(x,
                         "after acking all %ld events the consumer's ack floor is %llu with "
                         "%lld pending",
                         p->events, (unsigned long long)ci->AckFloor.Stream,
                         (long long)ci->NumAckPending);
        jsConsumerInfo_Destroy(ci);
    }
    natsSubscription_Destroy(sub); /* the durable consumer stays, as a group would */
    if (rc == VS_OK)
        *done = got;
    return rc;
}

/* 5a. p->gets kvStore_Get, one at a time, of the keys of random events; one
 * latency sample each; every value checked to be the key's latest. */
static int get_one(vs_ctx *x, vs_meter *m, long *done)
{
    nats_state *st = x->srv->priv;
    const vs_params *p = x->p;
    char key[VS_KEY_LEN + 1];
    int rc = latest_table(x, st);
    if (rc != VS_OK)
        return rc;
    vs_meter_start(m);
    for (long i = 0; i < p->gets; i++) {
        uint32_t k = vs_read_key(p, i);
        kvEntry *e = NULL;
        vs_key(key, k);
        uint64_t t = vs_now_ns();
        natsStatus s = kvStore_Get(&e, st->kv, key);
        uint64_t dt = vs_now_ns() - t;
        if (s != NATS_OK)
            return nfail(x, "kvStore_Get", s);
        vs_lat_add(m, dt);
        rc = check_latest(x, st, k, kvEntry_Value(e), kvEntry_ValueLen(e));
        kvEntry_Destroy(e);
        if (rc != VS_OK)
            return rc;
    }
    vs_meter_stop(m);
    *done = p->gets;
    return VS_OK;
}

/*
 * 5b. p->gets_piped latest-value reads with p->get_window in flight.
 * kvStore_Get is synchronous, so this sends what it sends, pipelined: a
 * JetStream direct get of the last message on the key's subject, an empty
 * body published to "$JS.API.DIRECT.GET.KV_bench.$KV.bench.<key>" (the
 * last-by-subject form nats-server 2.9 serves on streams with AllowDirect,
 * which js_CreateKeyValue sets; a server trace shows libnats 3.4.1's
 * kvStore_Get sending exactly this). Replies come back on one wildcard inbox
 * subscription, "<inbox>.<slot>"; a slot is reused as soon as its reply is
 * checked.
 */
static int get_piped(vs_ctx *x, vs_meter *m, long *done)
{
    nats_state *st = x->srv->priv;
    const vs_params *p = x->p;
    natsInbox *inbox = NULL;
    natsSubscription *sub = NULL;
    uint32_t *slot_key = NULL;
    char subj[SUBJ_MAX], reply[SUBJ_MAX], wild[SUBJ_MAX];
    long total = p->gets_piped, sent = 0, got = 0;
    int window = p->get_window < total ? p->get_window : (int)total;
    int rc = latest_table(x, st);
    if (rc != VS_OK)
        return rc;

    jsStreamInfo *si = NULL;
    jsErrCode jerr = 0;
    natsStatus s = js_GetStreamInfo(&si, st->js, STREAM, NULL, &jerr);
    if (s != NATS_OK)
        return nfail(x, "stream info of " STREAM, s);
    bool direct = si->Config->AllowDirect;
    jsStreamInfo_Destroy(si);
    if (!direct)
        return vs_fail(x, "the KV stream " STREAM " was created without AllowDirect");

    slot_key = calloc((size_t)(window > 0 ? window : 1), sizeof *slot_key);
    if (slot_key == NULL)
        return vs_fail(x, "out of memory");
    s = natsInbox_Create(&inbox);
    if (s == NATS_OK) {
        snprintf(wild, sizeof wild, "%s.*", (const char *)inbox);
        s = natsConnection_SubscribeSync(&sub, st->fast, wild);
    }
    if (s == NATS_OK)
        s = natsSubscription_SetPendingLimits(sub, -1, -1);
    if (s != NATS_OK) {
        rc = nfail(x, "the reply subscription", s);
        goto done;
    }
    size_t pre = (size_t)snprintf(subj, sizeof subj, "%s", DIRECT_GET);

    vs_meter_start(m);
    for (int i = 0; i < window && rc == VS_OK; i++) {
        uint32_t k = vs_read_key(p, sent);
        slot_key[i] = k;
        vs_key(subj + pre, k);
        snprintf(reply, sizeof reply, "%s.%d", (const char *)inbox, i);
        s = natsConnection_PublishRequest(st->fast, subj, reply, NULL, 0);
        if (s != NATS_OK)
            rc = nfail(x, "sending a direct get", s);
        sent++;
    }
    while (got < total && rc == VS_OK) {
        natsMsg *msg = NULL;
        s = natsSubscription_NextMsg(&msg, sub, WAIT_MS);
        if (s != NATS_OK) {
            rc = nfail(x, "waiting for a direct get reply", s);
            break;
        }
        const char *at = strrchr(natsMsg_GetSubject(msg), '.');
        long i = at != NULL ? strtol(at + 1, NULL, 10) : -1;
        if (i < 0 || i >= window) {
            rc = vs_fail(x, "a reply on %s, which no request asked for", natsMsg_GetSubject(msg));
        } else if (natsMsg_GetDataLength(msg) != VS_VALUE_LEN) {
            const char *status = NULL, *desc = NULL;
            natsMsgHeader_Get(msg, "Status", &status);
            natsMsgHeader_Get(msg, "Description", &desc);
            rc = vs_fail(x, "direct get of key %u: %d bytes, status %s %s", slot_key[i],
                         natsMsg_GetDataLength(msg), status != NULL ? status : "none",
                         desc != NULL ? desc : "");
        } else {
            rc = check_latest(x, st, slot_key[i], natsMsg_GetData(msg), natsMsg_GetDataLength(msg));
        }
        natsMsg_Destroy(msg);
        got++;
        if (rc == VS_OK && sent < total) {
            uint32_t k = vs_read_key(p, sent);
            slot_key[i] = k;
            vs_key(subj + pre, k);
            snprintf(reply, sizeof reply, "%s.%ld", (const char *)inbox, i);
            s = natsConnection_PublishRequest(st->fast, subj, reply, NULL, 0);
            if (s != NATS_OK)
                rc = nfail(x, "sending a direct get", s);
            sent++;
        }
    }
    vs_meter_stop(m);
    if (rc == VS_OK)
        *done = got;
done:
    natsSubscription_Destroy(sub);
    natsInbox_Destroy(inbox);
    free(slot_key);
    return rc;
}

/* The producer of the latency run, on its own thread and connection. */
typedef struct lat_prod {
    jsCtx *js; /* async-publish context on the producer's connection */
    pub_errs *errs;
    const vs_params *p;
    uint64_t t0; /* event n is due at t0 + n / rate */
    long total;
    atomic_int failed;
    char err[300];
} lat_prod;

/* Publishes event n at its scheduled time, stamped with that time (not the
 * send time), so that a producer that falls behind shows up as latency; then
 * waits for the last acks. */
static void *lat_producer(void *arg)
{
    lat_prod *lp = arg;
    const vs_params *p = lp->p;
    char subj[SUBJ_MAX], val[VS_VALUE_LEN + 1];
    natsStatus s = NATS_OK;
    size_t pre = (size_t)snprintf(subj, sizeof subj, LAT_STREAM ".");
    for (long n = 0; n < lp->total && atomic_load(&lp->errs->n) == 0; n++) {
        uint64_t due = lp->t0 + (uint64_t)((double)n * 1e9 / p->rate);
        vs_sleep_until_tick(lp->t0, due);
        if (atomic_load(&lp->failed))
            return NULL; /* the consumer gave up, and says why */
        vs_key(subj + pre, vs_key_of(p->keys, (uint64_t)n));
        vs_value(val, (uint64_t)n, due);
        s = js_PublishAsync(lp->js, subj, val, VS_VALUE_LEN, NULL);
        if (s == NATS_TIMEOUT) {
            snprintf(lp->err, sizeof lp->err, "event %ld: no publish ack within %d s", n,
                     WAIT_MS / 1000);
            break;
        } else if (s != NATS_OK) {
            snprintf(lp->err, sizeof lp->err, "js_PublishAsync of event %ld: %s", n,
                     natsStatus_GetText(s));
            break;
        }
    }
    if (s == NATS_OK) {
        jsPubOptions po;
        jsPubOptions_Init(&po);
        po.MaxWait = WAIT_MS;
        s = js_PublishAsyncComplete(lp->js, &po);
        if (s != NATS_OK)
            snprintf(lp->err, sizeof lp->err, "the last publish acks: %s", natsStatus_GetText(s));
    }
    if (lp->err[0] == '\0' && atomic_load(&lp->errs->n) > 0)
        snprintf(lp->err, sizeof lp->err, "NATS refused %ld publishes; the first: %s",
                 atomic_load(&lp->errs->n), lp->errs->first);
    if (lp->err[0] != '\0')
        atomic_store(&lp->failed, 1);
    return NULL;
}

/*
 * 6. Stream "lat" (file storage, subjects "lat.>"; event n goes to
 * "lat.<key>", keyed like every other event). A push consumer
 * (ephemeral, AckNone, DeliverNew), created before anything is produced, on
 * its own connection, reads every message on this thread; the producer thread
 * publishes with js_PublishAsync on a third connection at p->rate for
 * p->lat_secs. One sample per event: receive time - scheduled send time.
 */
static int latency(vs_ctx *x, vs_meter *m, long *done)
{
    nats_state *st = x->srv->priv;
    const vs_params *p = x->p;
    natsConnection *pnc = NULL, *cnc = NULL;
    jsCtx *pjs = NULL, *cjs = NULL;
    natsSubscription *sub = NULL;
    jsStreamInfo *si = NULL;
    jsStreamConfig sc;
    jsSubOptions so;
    jsErrCode jerr = 0;
    pub_errs errs = {0};
    lat_prod lp = {.errs = &errs, .p = p, .total = (long)(p->rate * p->lat_secs)};
    const char *subjects[] = {LAT_STREAM ".>"};
    bool running = false;
    pthread_t th;
    long got = 0;
    uint64_t deadline;
    int rc = VS_OK;

    jsStreamConfig_Init(&sc);
    sc.Name = LAT_STREAM;
    sc.Subjects = subjects;
    sc.SubjectsLen = 1;
    sc.Storage = js_FileStorage;
    sc.Replicas = st->replicas;
    natsStatus s = js_AddStream(&si, st->js, &sc, NULL, &jerr);
    jsStreamInfo_Destroy(si);
    if (s != NATS_OK)
        return nfail(x, "creating the stream " LAT_STREAM, s);
    s = dial(&cnc, x->srv, "bench_vs latency consumer", true);
    if (s == NATS_OK)
        s = natsConnection_JetStream(&cjs, cnc, NULL);
    if (s == NATS_OK) {
        jsSubOptions_Init(&so);
        so.Stream = LAT_STREAM;
        so.Config.AckPolicy = js_AckNone;
        so.Config.DeliverPolicy = js_DeliverNew;
        s = js_SubscribeSync(&sub, cjs, LAT_STREAM ".>", NULL, &so, &jerr);
    }
    if (s == NATS_OK)
        s = natsSubscription_SetPendingLimits(sub, -1, -1);
    if (s != NATS_OK) {
        rc = nfail(x, "the latency consumer", s);
        goto done;
    }
    s = dial(&pnc, x->srv, "bench_vs latency producer", true);
    if (s == NATS_OK)
        s = pub_ctx(&pjs, pnc, (int64_t)p->batch * p->window, &errs);
    if (s != NATS_OK) {
        rc = nfail(x, "the latency producer", s);
        goto done;
    }
    lp.js = pjs;

    vs_meter_start(m);
    lp.t0 = vs_now_ns();
    deadline = lp.t0 + (uint64_t)(p->lat_secs * 1e9) + (uint64_t)LAT_DRAIN_MS * 1000000u;
    if (pthread_create(&th, NULL, lat_producer, &lp) != 0) {
        rc = vs_fail(x, "cannot start the producer thread");
        goto done;
    }
    running = true;
    while (got < lp.total && rc == VS_OK) {
        natsMsg *msg = NULL;
        s = natsSubscription_NextMsg(&msg, sub, 100);
        uint64_t now = vs_now_ns();
        if (s == NATS_TIMEOUT) {
            if (atomic_load(&lp.failed))
                break; /* the producer says why */
            if (now > deadline)
                rc = vs_fail(x, "received %ld of %ld events by %.0f s after the produce window",
                             got, lp.total, LAT_DRAIN_MS / 1e3);
            continue;
        }
        if (s != NATS_OK) {
            rc = nfail(x, "receiving", s);
            break;
        }
        uint64_t n, due;
        if (vs_value_parse(natsMsg_GetData(msg), (size_t)natsMsg_GetDataLength(msg), &n, &due) < 0)
            rc = vs_fail(x, "message %ld is not a bench value", got);
        else if (n != (uint64_t)got)
            rc = vs_fail(x, "expected event %ld, received event %llu", got, (unsigned long long)n);
        else
            vs_lat_add(m, now > due ? now - due : 0);
        natsMsg_Destroy(msg);
        got++;
    }
    vs_meter_stop(m);
    if (rc != VS_OK)
        atomic_store(&lp.failed, 1);
    pthread_join(th, NULL);
    running = false;
    if (rc == VS_OK && lp.err[0] != '\0')
        rc = vs_fail(x, "the producer: %s", lp.err);
    else if (rc == VS_OK && got != lp.total)
        rc = vs_fail(x, "received %ld of %ld events", got, lp.total);
    if (rc == VS_OK)
        *done = got;
done:
    if (running)
        pthread_join(th, NULL);
    natsSubscription_Unsubscribe(sub); /* deletes the ephemeral consumer */
    natsSubscription_Destroy(sub);
    jsCtx_Destroy(pjs);
    jsCtx_Destroy(cjs);
    natsConnection_Destroy(pnc);
    natsConnection_Destroy(cnc);
    return rc;
}

/* 7. The RSS load: p->rss_events over p->rss_keys into the bucket "rss", as
 * ingest(write) does. */
static int load(vs_ctx *x, vs_meter *m, long *done)
{
    nats_state *st = x->srv->priv;
    kvStore *kv = NULL;
    natsStatus s = make_bucket(&kv, st->js, RSS_BUCKET, st->replicas);
    if (s != NATS_OK)
        return nfail(x, "creating the KV bucket " RSS_BUCKET, s);
    kvStore_Destroy(kv);
    int rc = publish_kv(x, m, RSS_BUCKET, x->p->rss_events, x->p->rss_keys,
                        (int64_t)x->p->batch * x->p->window);
    if (rc == VS_OK)
        *done = x->p->rss_events;
    return rc;
}

/* 8a. p->pub_events async publishes into the bucket "one", at most
 * p->pub_window un-acked. */
static int publish_piped(vs_ctx *x, vs_meter *m, long *done)
{
    nats_state *st = x->srv->priv;
    kvStore *kv = NULL;
    natsStatus s = make_bucket(&kv, st->js, "one", st->replicas);
    if (s != NATS_OK)
        return nfail(x, "creating the KV bucket one", s);
    kvStore_Destroy(kv);
    int rc = publish_kv(x, m, "one", x->p->pub_events, x->p->keys, x->p->pub_window);
    if (rc == VS_OK)
        *done = x->p->pub_events;
    return rc;
}

/* 8b. p->pubs_one synchronous publishes (js_Publish waits for the ack) into
 * the bucket "one1", on the SendAsap connection. */
static int publish_one(vs_ctx *x, vs_meter *m, long *done)
{
    nats_state *st = x->srv->priv;
    const vs_params *p = x->p;
    kvStore *kv = NULL;
    char subj[SUBJ_MAX], val[VS_VALUE_LEN + 1];
    natsStatus s = make_bucket(&kv, st->fjs, "one1", st->replicas);
    if (s != NATS_OK)
        return nfail(x, "creating the KV bucket one1", s);
    kvStore_Destroy(kv);
    size_t pre = (size_t)snprintf(subj, sizeof subj, "$KV.one1.");
    vs_meter_start(m);
    for (long n = 0; n < p->pubs_one; n++) {
        vs_key(subj + pre, vs_key_of(p->keys, (uint64_t)n));
        vs_value(val, (uint64_t)n, 0);
        jsPubAck *pa = NULL;
        jsErrCode jerr = 0;
        uint64_t t = vs_now_ns();
        s = js_Publish(&pa, st->fjs, subj, val, VS_VALUE_LEN, NULL, &jerr);
        vs_lat_add(m, vs_now_ns() - t);
        bool ok = s == NATS_OK && pa != NULL && pa->Sequence == (uint64_t)n + 1;
        jsPubAck_Destroy(pa);
        if (s != NATS_OK)
            return nfail(x, "js_Publish", s);
        if (!ok)
            return vs_fail(x, "NATS: publish %ld was not acknowledged as message %ld", n, n + 1);
    }
    vs_meter_stop(m);
    *done = p->pubs_one;
    return VS_OK;
}

/* 8c. p->pings round trips of the protocol's PING/PONG (a flush). */
static int ping(vs_ctx *x, vs_meter *m, long *done)
{
    nats_state *st = x->srv->priv;
    vs_meter_start(m);
    for (long i = 0; i < x->p->pings; i++) {
        uint64_t t = vs_now_ns();
        natsStatus s = natsConnection_FlushTimeout(st->fast, WAIT_MS);
        if (s != NATS_OK)
            return nfail(x, "PING (a flush)", s);
        vs_lat_add(m, vs_now_ns() - t);
    }
    vs_meter_stop(m);
    *done = x->p->pings;
    return VS_OK;
}

/* ---- C3 (vs_nats3): recovering from a killed stream leader ---- */

/* Which server leads STREAM's Raft group (its index), or -1 (x->err). */
static int stream_leader(vs_ctx *x, jsCtx *js)
{
    nats_state *st = x->srv->priv;
    jsStreamInfo *si = NULL;
    jsErrCode jerr = 0;
    natsStatus s = js_GetStreamInfo(&si, js, STREAM, NULL, &jerr);
    if (s != NATS_OK)
        return nfail(x, "stream info of " STREAM, s);
    int i = -1;
    const char *l = si->Cluster != NULL ? si->Cluster->Leader : NULL;
    if (l != NULL && l[0] == 'n' && l[1] >= '1' && l[1] < '1' + st->replicas && l[2] == '\0')
        i = l[1] - '1';
    jsStreamInfo_Destroy(si);
    return i >= 0 ? i : vs_fail(x, "stream " STREAM " names no leader");
}

/* One synchronous publish into the bucket through the servers in urls, on
 * a fresh connection; NATS_OK once acknowledged. */
static natsStatus publish_via(const char **urls, int n, const vs_params *p, jsCtx **js,
                              natsConnection **nc)
{
    natsStatus s = NATS_OK;
    if (*nc == NULL) {
        jsOptions o;
        jsOptions_Init(&o);
        o.Wait = 1000;
        s = dial_urls(nc, urls, n, "bench_vs recover", true, 500);
        if (s == NATS_OK)
            s = natsConnection_JetStream(js, *nc, &o);
    }
    char subj[SUBJ_MAX], val[VS_VALUE_LEN + 1];
    size_t pre = (size_t)snprintf(subj, sizeof subj, "$KV." BUCKET ".");
    vs_key(subj + pre, vs_key_of(p->keys, (uint64_t)p->events));
    vs_value(val, (uint64_t)p->events, 0);
    jsPubAck *pa = NULL;
    jsErrCode jerr = 0;
    if (s == NATS_OK)
        s = js_Publish(&pa, *js, subj, val, VS_VALUE_LEN, NULL, &jerr);
    jsPubAck_Destroy(pa);
    if (s != NATS_OK) { /* start over on a new connection */
        jsCtx_Destroy(*js);
        natsConnection_Destroy(*nc);
        *js = NULL;
        *nc = NULL;
    }
    return s;
}

/* SIGKILL the stream's leader; time until a publish through the survivors
 * is acknowledged; then the stream must hold every event ingest had
 * acknowledged. */
static int recover(vs_ctx *x, vs_meter *m, long *done)
{
    nats_state *st = x->srv->priv;
    int old = stream_leader(x, st->fjs);
    if (old < 0)
        return VS_FAIL;
    char url[NODES][64];
    const char *urls[NODES];
    int n = 0;
    for (int i = 0; i < st->replicas; i++)
        if (i != old) {
            snprintf(url[n], sizeof url[n], "nats://127.0.0.1:%d", st->port[i]);
            urls[n] = url[n];
            n++;
        }
    natsConnection *nc = NULL;
    jsCtx *js = NULL;
    natsStatus s;
    vs_meter_start(m);
    uint64_t t0 = vs_now_ns(), end = t0 + 20000000000ull;
    kill(st->pid[old], SIGKILL);
    /* Retried every 5 ms: a tight loop would take the survivors' CPU. */
    while ((s = publish_via(urls, n, x->p, &js, &nc)) != NATS_OK && vs_now_ns() < end)
        nanosleep(&(struct timespec){0, 5000000L}, NULL);
    vs_lat_add(m, vs_now_ns() - t0);
    vs_meter_stop(m);
    waitpid(st->pid[old], NULL, 0);
    st->pid[old] = 0;
    int rc = VS_OK;
    if (s != NATS_OK) {
        rc = nfail(x, "no publish acknowledged within 20 s of killing the stream leader", s);
    } else {
        long have = stream_msgs(x, js, STREAM);
        if (have < 0)
            rc = VS_FAIL;
        else if (have < x->p->events + 1)
            rc = vs_fail(x, "after the failover " STREAM " holds %ld of %ld acknowledged messages",
                         have, x->p->events + 1);
    }
    jsCtx_Destroy(js);
    natsConnection_Destroy(nc);
    *done = 1;
    return rc;
}

const vs_system vs_nats = {
    .name = "NATS JetStream",
    .id = "nats",
    .start = start,
    .stop = stop,
    .ingest = ingest,
    .consume = consume,
    .group = group,
    .get_one = get_one,
    .get_piped = get_piped,
    .latency = latency,
    .load = load,
    .publish_piped = publish_piped,
    .publish_one = publish_one,
    .ping = ping,
};

const vs_system vs_nats3 = {
    .name = "NATS JetStream, 3 nodes (R3)",
    .id = "nats3",
    .start = start3,
    .stop = stop,
    .ingest = ingest,
    .latency = latency,
    .recover = recover,
};
