/*
 * cluster/probe.c - the probe messages, the bootstrap-or-join rule, and the
 * raft port that answers probes before raft runs (see probe.h).
 */
#include "cluster/probe.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <uv.h>

#include "proto/cbor.h"
#include "util/log.h"

#define PROBE_VERSION 1

/* ---- messages ---- */

static long finish(kr_buf *b, uint8_t *out, size_t cap)
{
    long n = -1;
    if (!b->failed && b->len <= cap) {
        memcpy(out, b->data, b->len);
        n = (long)b->len;
    }
    kr_buf_free(b);
    return n;
}

long kr_probe_req_encode(const kr_probe_req *r, uint8_t *out, size_t cap)
{
    kr_buf b;
    kr_buf_init(&b, cap);
    kr_cbor_put_array(&b, 6);
    kr_cbor_put_uint(&b, PROBE_VERSION);
    kr_cbor_put_uint(&b, r->kind);
    kr_cbor_put_uint(&b, r->from);
    kr_cbor_put_cstr(&b, r->addr);
    kr_cbor_put_uint(&b, r->peers_hash);
    kr_cbor_put_bool(&b, r->running);
    return finish(&b, out, cap);
}

long kr_probe_reply_encode(const kr_probe_reply *r, uint8_t *out, size_t cap)
{
    kr_buf b;
    kr_buf_init(&b, cap);
    kr_cbor_put_array(&b, 9);
    kr_cbor_put_uint(&b, PROBE_VERSION);
    kr_cbor_put_uint(&b, r->state);
    kr_cbor_put_cstr(&b, r->cluster_id);
    kr_cbor_put_uint(&b, r->node);
    kr_cbor_put_uint(&b, r->leader);
    kr_cbor_put_cstr(&b, r->leader_addr);
    kr_cbor_put_uint(&b, r->peers_hash);
    kr_cbor_put_uint(&b, r->answer);
    kr_cbor_put_cstr(&b, r->message);
    return finish(&b, out, cap);
}

/* The items of a probe message, after its version. */
typedef struct rd {
    kr_cbor_iter it;
    int bad;
} rd;

static uint64_t rd_uint(rd *r)
{
    kr_cbor_item i;
    if (kr_cbor_iter_next(&r->it, &i) != 1 || i.kind != KR_CBOR_UINT) {
        r->bad = 1;
        return 0;
    }
    return i.u;
}

static void rd_text(rd *r, char *out, size_t cap)
{
    kr_cbor_item i;
    out[0] = '\0';
    if (kr_cbor_iter_next(&r->it, &i) != 1 || i.kind != KR_CBOR_TEXT || i.str == NULL ||
        i.str_len >= cap) {
        r->bad = 1;
        return;
    }
    memcpy(out, i.str, i.str_len);
    out[i.str_len] = '\0';
    if (strlen(out) != i.str_len)
        r->bad = 1; /* a NUL inside */
}

static int rd_open(rd *r, const uint8_t *p, size_t len, uint64_t n)
{
    kr_cbor_item a;
    r->bad = 0;
    if (kr_cbor_read_exact(p, len, &a) < 0 || a.kind != KR_CBOR_ARRAY || a.indefinite || a.u != n)
        return -1;
    kr_cbor_iter_init(&r->it, &a);
    return rd_uint(r) == PROBE_VERSION && !r->bad ? 0 : -1;
}

int kr_probe_req_decode(const uint8_t *p, size_t len, kr_probe_req *out)
{
    rd r;
    memset(out, 0, sizeof *out);
    if (rd_open(&r, p, len, 6) < 0)
        return -1;
    uint64_t kind = rd_uint(&r);
    out->from = rd_uint(&r);
    rd_text(&r, out->addr, sizeof out->addr);
    out->peers_hash = rd_uint(&r);
    kr_cbor_item b;
    if (kr_cbor_iter_next(&r.it, &b) != 1 || (b.kind != KR_CBOR_TRUE && b.kind != KR_CBOR_FALSE))
        r.bad = 1;
    out->running = b.kind == KR_CBOR_TRUE;
    out->kind = (kr_probe_kind)kind;
    if (r.bad || (kind != KR_PROBE_STATE && kind != KR_PROBE_JOIN) || out->from == 0)
        return -1;
    return 0;
}

int kr_probe_reply_decode(const uint8_t *p, size_t len, kr_probe_reply *out)
{
    rd r;
    memset(out, 0, sizeof *out);
    if (rd_open(&r, p, len, 9) < 0)
        return -1;
    uint64_t state = rd_uint(&r);
    rd_text(&r, out->cluster_id, sizeof out->cluster_id);
    out->node = rd_uint(&r);
    out->leader = rd_uint(&r);
    rd_text(&r, out->leader_addr, sizeof out->leader_addr);
    out->peers_hash = rd_uint(&r);
    uint64_t answer = rd_uint(&r);
    rd_text(&r, out->message, sizeof out->message);
    out->state = (kr_probe_state)state;
    out->answer = (kr_probe_answer)answer;
    if (r.bad || state > KR_PROBE_MEMBER || answer > KR_JOIN_NOT_LEADER)
        return -1;
    return 0;
}

uint64_t kr_probe_peers_hash(const kr_node_peer *peers, size_t n)
{
    /* FNV-1a of each "id=addr", the per-peer hashes summed so that the
     * order of --peers does not matter. */
    uint64_t sum = 0;
    for (size_t i = 0; i < n; i++) {
        char one[KR_NODE_ADDR_MAX + 32];
        int len =
            snprintf(one, sizeof one, "%llu=%s", (unsigned long long)peers[i].id, peers[i].addr);
        uint64_t h = 1469598103934665603ULL;
        for (int k = 0; k < len && k < (int)sizeof one; k++) {
            h ^= (uint8_t)one[k];
            h *= 1099511628211ULL;
        }
        sum += h;
    }
    return sum;
}

int kr_probe_ask(const char *addr, const kr_probe_req *r, kr_probe_reply *out, unsigned timeout_ms,
                 char *err, size_t errlen)
{
    uint8_t req[KR_TRANSPORT_PROBE_MAX], rep[KR_TRANSPORT_PROBE_MAX];
    long n = kr_probe_req_encode(r, req, sizeof req);
    if (n < 0) {
        snprintf(err, errlen, "the probe does not fit %d bytes", KR_TRANSPORT_PROBE_MAX);
        return -1;
    }
    long got = kr_transport_probe(addr, req, (size_t)n, rep, sizeof rep, timeout_ms, err, errlen);
    if (got < 0)
        return -1;
    if (kr_probe_reply_decode(rep, (size_t)got, out) < 0) {
        snprintf(err, errlen, "%.128s answered the probe with something malformed", addr);
        return -1;
    }
    return 0;
}

kr_probe_decision kr_probe_decide(const kr_node_peer *peers, const bool *ok,
                                  const kr_probe_reply *reply, size_t n, uint64_t hash,
                                  char *join_at, size_t join_len, char *why, size_t whylen)
{
    size_t answered = 0;
    why[0] = '\0';
    for (size_t i = 0; i < n; i++) {
        if (!ok[i])
            continue;
        answered++;
        const kr_probe_reply *r = &reply[i];
        if (r->state == KR_PROBE_MEMBER && r->cluster_id[0] != '\0') {
            const char *at =
                r->leader != 0 && r->leader_addr[0] != '\0' ? r->leader_addr : peers[i].addr;
            snprintf(join_at, join_len, "%s", at);
            return KR_DECIDE_JOIN;
        }
    }
    for (size_t i = 0; i < n; i++) {
        if (ok[i] && reply[i].peers_hash != hash) {
            snprintf(why, whylen,
                     "node %llu at %s was started with other --peers than this node; start "
                     "every node with the same --peers",
                     (unsigned long long)peers[i].id, peers[i].addr);
            return KR_DECIDE_WAIT;
        }
    }
    if (answered < n) {
        for (size_t i = 0; i < n; i++)
            if (!ok[i]) {
                snprintf(why, whylen,
                         "waiting for every node of --peers to answer before forming the "
                         "cluster (%zu of %zu answered; node %llu at %s did not)",
                         answered, n, (unsigned long long)peers[i].id, peers[i].addr);
                break;
            }
        return KR_DECIDE_WAIT;
    }
    return KR_DECIDE_BOOTSTRAP;
}

/* ---- answering before raft runs ---- */

struct kr_probe_server {
    uint64_t id;
    uint64_t hash;
    uv_loop_t loop;
    uv_async_t stop;
    struct raft_uv_transport t;
    pthread_t thread;
    bool closed;
};

static long answer_empty(void *arg, const uint8_t *req, size_t len, uint8_t *reply, size_t cap)
{
    kr_probe_server *s = arg;
    kr_probe_req q;
    if (kr_probe_req_decode(req, len, &q) < 0)
        return -1;
    kr_probe_reply r = {.state = KR_PROBE_EMPTY, .node = s->id, .peers_hash = s->hash};
    if (q.kind == KR_PROBE_JOIN) {
        r.answer = KR_JOIN_NOT_LEADER;
        snprintf(r.message, sizeof r.message, "node %llu is not in a cluster yet",
                 (unsigned long long)s->id);
    }
    return kr_probe_reply_encode(&r, reply, cap);
}

static void on_accept(struct raft_uv_transport *t, raft_id id, const char *address,
                      uv_stream_t *stream)
{
    (void)t; /* never called: the transport refuses raft's connections */
    (void)id;
    (void)address;
    (void)stream;
}

static void on_closed(struct raft_uv_transport *t)
{
    kr_probe_server *s = t->data; /* no raft here to claim the field */
    s->closed = true;
}

static void on_stop(uv_async_t *a)
{
    kr_probe_server *s = a->data;
    s->t.close(&s->t, on_closed);
    uv_close((uv_handle_t *)&s->stop, NULL);
}

static void *serve(void *arg)
{
    kr_probe_server *s = arg;
    uv_run(&s->loop, UV_RUN_DEFAULT);
    return NULL;
}

int kr_probe_server_start(uint64_t id, const char *addr, const char *bind, uint64_t peers_hash,
                          kr_probe_server **out, char *err, size_t errlen)
{
    *out = NULL;
    kr_probe_server *s = calloc(1, sizeof *s);
    if (s == NULL) {
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    s->id = id;
    s->hash = peers_hash;
    if (uv_loop_init(&s->loop) != 0) {
        free(s);
        snprintf(err, errlen, "cannot create an event loop");
        return -1;
    }
    kr_transport_opts o = {.bind = bind, .probe = answer_empty, .arg = s, .refuse_raft = 1};
    int rv = -1;
    if (kr_transport_init(&s->t, &s->loop, &o, err, errlen) == 0) {
        s->t.data = s;
        rv = s->t.init(&s->t, id, addr);
        if (rv == 0)
            rv = s->t.listen(&s->t, on_accept);
        if (rv != 0) {
            snprintf(err, errlen, "%s", s->t.errmsg);
            s->t.close(&s->t, on_closed);
        }
    }
    if (rv == 0) {
        uv_async_init(&s->loop, &s->stop, on_stop);
        s->stop.data = s;
        if (pthread_create(&s->thread, NULL, serve, s) == 0) {
            *out = s;
            return 0;
        }
        snprintf(err, errlen, "cannot start a thread");
        s->t.close(&s->t, on_closed);
        uv_close((uv_handle_t *)&s->stop, NULL);
    }
    uv_run(&s->loop, UV_RUN_DEFAULT);
    kr_transport_release(&s->t);
    uv_loop_close(&s->loop);
    free(s);
    return -1;
}

void kr_probe_server_stop(kr_probe_server *s)
{
    if (s == NULL)
        return;
    uv_async_send(&s->stop);
    pthread_join(s->thread, NULL);
    kr_transport_release(&s->t);
    if (uv_loop_close(&s->loop) != 0)
        kr_log(KR_LOG_ERROR, "probe loop closed with handles still open");
    free(s);
}
