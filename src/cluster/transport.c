/*
 * cluster/transport.c - raft's transport over libuv TCP with DNS names and a
 * handshake of our own (see transport.h for the format and the contract);
 * the blocking probe a node asks at start-up is in transport_probe.c.
 *
 * Three kinds of objects live on the loop, each counted in tr->busy until its
 * last handle is closed, so the transport's close callback runs only once
 * nothing of it is left: listeners, incoming handshakes (struct acc) and
 * outgoing connects (struct conn).
 */
#include "cluster/transport.h"

#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <poll.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/queue.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <arpa/inet.h>

#include <uv.h>

#include "util/byteorder.h"
#include "util/hostport.h"
#include "util/log.h"

#define MAGIC          "KRFT"
#define LISTEN_BACKLOG 128
/* The most an incoming connection sends before raft's messages: the
 * handshake, or a probe with its request. */
#define ACC_MAX                                                                                    \
    (KR_TRANSPORT_HANDSHAKE_MAX > KR_TRANSPORT_PROBE_HEADER + KR_TRANSPORT_PROBE_MAX               \
         ? KR_TRANSPORT_HANDSHAKE_MAX                                                              \
         : KR_TRANSPORT_PROBE_HEADER + KR_TRANSPORT_PROBE_MAX)

typedef struct tr tr;

/* The parts of what an incoming connection sends first. */
typedef enum acc_part {
    ACC_HEAD,  /* magic, version, length: which of the two it is */
    ACC_HS,    /* a handshake: id, address, info length */
    ACC_INFO,  /* ... its info */
    ACC_PROBE, /* a probe: its request */
    ACC_REPLY  /* the probe's reply is being written */
} acc_part;

/* An incoming connection until its handshake is read (or its probe
 * answered). */
typedef struct acc {
    tr *tr;
    uv_tcp_t *tcp; /* raft_malloc'd; NULL once handed to raft or closing */
    uv_timer_t timer;
    uv_write_t write;
    acc_part part;
    uint8_t buf[ACC_MAX]; /* everything read so far, from the magic on */
    size_t got;           /* bytes in buf */
    size_t need;          /* bytes buf must hold before the next step */
    size_t addr_len, info_len;
    char address[KR_TRANSPORT_ADDRESS_MAX + 1];
    uint64_t id;
    bool writing; /* the probe's reply is being written */
    bool ended;   /* out of the list, its timer closing */
    TAILQ_ENTRY(acc) link;
} acc;

/* An outgoing connect until its handshake is written. */
typedef struct conn {
    tr *tr;
    struct raft_uv_connect *req;
    kr_hostport hp;
    uv_getaddrinfo_t gai;
    struct addrinfo *ais; /* the resolved list, freed with the conn */
    struct addrinfo *next_ai;
    uv_tcp_t *tcp; /* raft_malloc'd; NULL once handed to raft or closing */
    uv_connect_t connect;
    uv_write_t write;
    uv_timer_t timer;
    uint8_t hs[KR_TRANSPORT_HANDSHAKE_MAX];
    size_t hs_len;
    unsigned open;  /* handles and requests of ours still outstanding */
    int status;     /* RAFT_* once failed or canceled, else 0 */
    bool delivered; /* raft's callback ran */
    bool resolving; /* the getaddrinfo request is in flight */
    TAILQ_ENTRY(conn) link;
} conn;

struct tr {
    struct raft_uv_transport *t;
    uv_loop_t *loop;
    raft_id id;
    char address[KR_TRANSPORT_ADDRESS_MAX + 1];
    char bind[KR_TRANSPORT_ADDRESS_MAX + 1]; /* "" = address */
    unsigned handshake_ms;
    unsigned connect_ms;
    uint8_t info[KR_TRANSPORT_INFO_MAX];
    size_t info_len;
    kr_transport_probe_fn probe;
    kr_transport_info_fn on_info;
    void *arg;
    bool refuse_raft;
    raft_uv_accept_cb accept_cb;
    uv_tcp_t listeners[KR_TRANSPORT_MAX_LISTENERS];
    bool listening[KR_TRANSPORT_MAX_LISTENERS]; /* open (not closing) */
    unsigned n_slots;                           /* listeners[] used, open or closing */
    TAILQ_HEAD(, acc) accs;
    unsigned n_accs;
    TAILQ_HEAD(, conn) conns;
    unsigned busy; /* listeners + accs + conns not yet fully closed */
    bool closing;
    raft_uv_transport_close_cb close_cb;
    uv_timer_t closer; /* opened and closed by tr_close, last: so close_cb always
                          runs from the loop, never inside raft's close call */
};

/* ---- helpers ---- */

/* Split a raft address: "host:port" (names, IPv4), "[v6]:port" or ":port"
 * (every address). @return 0, or -1 when malformed. */
static int split(const char *address, kr_hostport *hp)
{
    memset(hp, 0, sizeof *hp); /* no default port: one is required */
    return kr_hostport_parse(address, 0, hp, NULL, 0);
}

size_t kr_transport_handshake(uint8_t *out, size_t cap, uint64_t id, const char *address,
                              const uint8_t *info, size_t info_len)
{
    size_t n = address != NULL ? strlen(address) : 0;
    size_t total = KR_TRANSPORT_HEADER_BYTES + n + 2 + info_len;
    if (id == 0 || n == 0 || n > KR_TRANSPORT_ADDRESS_MAX || info_len > KR_TRANSPORT_INFO_MAX ||
        cap < total)
        return 0;
    memcpy(out, MAGIC, 4);
    kr_put_be16(out + 4, KR_TRANSPORT_VERSION);
    kr_put_be16(out + 6, (uint16_t)n);
    kr_put_be64(out + 8, id);
    memcpy(out + KR_TRANSPORT_HEADER_BYTES, address, n);
    kr_put_be16(out + KR_TRANSPORT_HEADER_BYTES + n, (uint16_t)info_len);
    if (info_len > 0)
        memcpy(out + KR_TRANSPORT_HEADER_BYTES + n + 2, info, info_len);
    return total;
}

static void free_stream(uv_handle_t *h)
{
    raft_free(h);
}

/* Run the close callback once the last object is gone. */
static void closer_closed(uv_handle_t *h)
{
    tr *x = h->data;
    x->busy--;
    if (x->busy == 0 && x->close_cb != NULL) {
        raft_uv_transport_close_cb cb = x->close_cb;
        x->close_cb = NULL;
        cb(x->t);
    }
}

static void release_busy(tr *x)
{
    x->busy--;
    /* The closer is the last of them: close it once the others are gone. */
    if (x->closing && x->busy == 0) {
        x->busy++;
        uv_close((uv_handle_t *)&x->closer, closer_closed);
    }
}

static void peer_name(uv_tcp_t *tcp, char *out, size_t cap)
{
    struct sockaddr_storage ss;
    int len = sizeof ss;
    snprintf(out, cap, "?");
    if (uv_tcp_getpeername(tcp, (struct sockaddr *)&ss, &len) != 0)
        return;
    char ip[INET6_ADDRSTRLEN] = "?";
    int port = 0;
    if (ss.ss_family == AF_INET) {
        const struct sockaddr_in *a = (const struct sockaddr_in *)&ss;
        uv_ip4_name(a, ip, sizeof ip);
        port = ntohs(a->sin_port);
        snprintf(out, cap, "%s:%d", ip, port);
    } else if (ss.ss_family == AF_INET6) {
        const struct sockaddr_in6 *a = (const struct sockaddr_in6 *)&ss;
        uv_ip6_name(a, ip, sizeof ip);
        port = ntohs(a->sin6_port);
        snprintf(out, cap, "[%s]:%d", ip, port);
    }
}

/* ---- incoming handshakes ---- */

static void acc_timer_closed(uv_handle_t *h)
{
    acc *a = h->data;
    tr *x = a->tr;
    free(a);
    release_busy(x);
}

/* Drop the connection (when still ours) and forget the handshake. With a
 * probe's reply being written, the write's callback (run when the stream
 * closes) does the forgetting: a must outlive it. */
static void acc_end(acc *a)
{
    tr *x = a->tr;
    if (a->tcp != NULL) {
        uv_close((uv_handle_t *)a->tcp, free_stream);
        a->tcp = NULL;
    }
    if (a->writing || a->ended)
        return;
    a->ended = true;
    TAILQ_REMOVE(&x->accs, a, link);
    x->n_accs--;
    uv_close((uv_handle_t *)&a->timer, acc_timer_closed);
}

static void acc_reject(acc *a, const char *why)
{
    char peer[64];
    peer_name(a->tcp, peer, sizeof peer);
    kr_log(KR_LOG_WARN, "raft connection refused", KR_LOG_STR("peer", peer),
           KR_LOG_STR("reason", why));
    acc_end(a);
}

static void acc_timeout(uv_timer_t *timer)
{
    acc *a = timer->data;
    acc_reject(a, a->part == ACC_REPLY ? "the probe's reply was not taken in time"
                                       : "no complete handshake in time");
}

static void acc_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf)
{
    acc *a = h->data;
    (void)suggested;
    /* Exactly what the current part still lacks: raft's first message
     * follows the handshake on the same stream and must stay in the socket
     * for raft to read. */
    buf->base = (char *)a->buf + a->got;
    buf->len = a->need - a->got;
}

/* The first 8 bytes are in: a handshake or a probe, and how long.
 * @return NULL, or why the connection is refused. */
static const char *acc_head(acc *a)
{
    size_t n = kr_get_be16(a->buf + 6);
    if (memcmp(a->buf, KR_TRANSPORT_PROBE_MAGIC, 4) == 0) {
        if (kr_get_be16(a->buf + 4) != KR_TRANSPORT_PROBE_VERSION)
            return "probe of an unsupported version (this node speaks version 1)";
        if (n > KR_TRANSPORT_PROBE_MAX)
            return "probe request longer than 4096 bytes";
        a->part = ACC_PROBE;
        a->need = KR_TRANSPORT_PROBE_HEADER + n;
        return NULL;
    }
    if (memcmp(a->buf, MAGIC, 4) != 0)
        return "not a krappy raft handshake (bad magic)";
    if (kr_get_be16(a->buf + 4) != KR_TRANSPORT_VERSION)
        return "handshake of an unsupported version (this node speaks version 2)";
    if (n == 0 || n > KR_TRANSPORT_ADDRESS_MAX)
        return "handshake address length out of range (1..255)";
    a->addr_len = n;
    a->part = ACC_HS;
    a->need = KR_TRANSPORT_HEADER_BYTES + n + 2;
    return NULL;
}

/* The id, the address and the info's length are in. */
static const char *acc_hs(acc *a)
{
    a->id = kr_get_be64(a->buf + 8);
    if (a->id == 0)
        return "handshake carries server id 0";
    memcpy(a->address, a->buf + KR_TRANSPORT_HEADER_BYTES, a->addr_len);
    a->address[a->addr_len] = '\0';
    if (strlen(a->address) != a->addr_len)
        return "handshake address contains a NUL byte";
    a->info_len = kr_get_be16(a->buf + KR_TRANSPORT_HEADER_BYTES + a->addr_len);
    if (a->info_len > KR_TRANSPORT_INFO_MAX)
        return "handshake info longer than 512 bytes";
    a->part = ACC_INFO;
    a->need += a->info_len;
    return NULL;
}

/* The whole handshake is in: tell the owner, hand the stream to raft. */
static void acc_deliver(acc *a)
{
    tr *x = a->tr;
    if (x->refuse_raft) {
        acc_end(a); /* only probes are answered for now: raft retries later */
        return;
    }
    if (x->on_info != NULL)
        x->on_info(x->arg, a->id, a->address, a->buf + a->need - a->info_len, a->info_len);
    uv_read_stop((uv_stream_t *)a->tcp);
    uv_stream_t *stream = (uv_stream_t *)a->tcp;
    a->tcp = NULL;
    stream->data = NULL;
    /* a (and so a->address) lives until its timer's close callback. */
    x->accept_cb(x->t, a->id, a->address, stream);
    acc_end(a);
}

static void acc_replied(uv_write_t *w, int status)
{
    acc *a = w->data;
    (void)status;
    a->writing = false;
    acc_end(a);
}

/* A probe's request is in: answer it, then close once written. */
static void acc_probe(acc *a)
{
    tr *x = a->tr;
    uv_read_stop((uv_stream_t *)a->tcp);
    size_t n = a->need - KR_TRANSPORT_PROBE_HEADER;
    uint8_t *reply = malloc(KR_TRANSPORT_PROBE_HEADER + KR_TRANSPORT_PROBE_MAX);
    long r = -1;
    if (reply != NULL && x->probe != NULL)
        r = x->probe(x->arg, a->buf + KR_TRANSPORT_PROBE_HEADER, n,
                     reply + KR_TRANSPORT_PROBE_HEADER, KR_TRANSPORT_PROBE_MAX);
    if (r < 0 || r > KR_TRANSPORT_PROBE_MAX) {
        free(reply);
        acc_end(a);
        return;
    }
    memcpy(reply, KR_TRANSPORT_PROBE_MAGIC, 4);
    kr_put_be16(reply + 4, KR_TRANSPORT_PROBE_VERSION);
    kr_put_be16(reply + 6, (uint16_t)r);
    /* The reply goes out of buf, which lives as long as a. */
    memcpy(a->buf, reply, KR_TRANSPORT_PROBE_HEADER + (size_t)r);
    free(reply);
    a->part = ACC_REPLY;
    uv_buf_t b = uv_buf_init((char *)a->buf, (unsigned)(KR_TRANSPORT_PROBE_HEADER + (size_t)r));
    a->write.data = a;
    if (uv_write(&a->write, (uv_stream_t *)a->tcp, &b, 1, acc_replied) != 0) {
        acc_end(a);
        return;
    }
    a->writing = true;
}

static void acc_read(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf)
{
    acc *a = s->data;
    (void)buf;
    if (nread == 0)
        return;
    if (nread < 0) {
        acc_reject(a,
                   nread == UV_EOF ? "closed before the handshake ended" : uv_strerror((int)nread));
        return;
    }
    a->got += (size_t)nread;
    /* A part may be empty (no info, an empty probe): step until one lacks
     * bytes or the connection is dealt with. */
    while (a->got >= a->need) {
        const char *why = NULL;
        switch (a->part) {
        case ACC_HEAD:
            why = acc_head(a);
            break;
        case ACC_HS:
            why = acc_hs(a);
            break;
        case ACC_INFO:
            acc_deliver(a);
            return;
        case ACC_PROBE:
            acc_probe(a);
            return;
        case ACC_REPLY:
            return;
        }
        if (why != NULL) {
            acc_reject(a, why);
            return;
        }
    }
}

static void on_connection(uv_stream_t *server, int status)
{
    tr *x = server->data;
    if (x->closing)
        return;
    if (status < 0) {
        kr_log(KR_LOG_WARN, "raft listener error", KR_LOG_STR("reason", uv_strerror(status)));
        return;
    }
    uv_tcp_t *tcp = raft_malloc(sizeof *tcp);
    if (tcp == NULL)
        return;
    uv_tcp_init(x->loop, tcp);
    if (uv_accept(server, (uv_stream_t *)tcp) != 0) {
        uv_close((uv_handle_t *)tcp, free_stream);
        return;
    }
    acc *a = x->n_accs < KR_TRANSPORT_MAX_HANDSHAKES ? calloc(1, sizeof *a) : NULL;
    if (a == NULL) {
        char peer[64];
        peer_name(tcp, peer, sizeof peer);
        kr_log(KR_LOG_WARN, "raft connection refused", KR_LOG_STR("peer", peer),
               KR_LOG_STR("reason", "too many handshakes in progress"));
        uv_close((uv_handle_t *)tcp, free_stream);
        return;
    }
    a->tr = x;
    a->tcp = tcp;
    a->part = ACC_HEAD;
    a->need = KR_TRANSPORT_PROBE_HEADER;
    tcp->data = a;
    uv_tcp_nodelay(tcp, 1);
    uv_timer_init(x->loop, &a->timer);
    a->timer.data = a;
    uv_timer_start(&a->timer, acc_timeout, x->handshake_ms, 0);
    TAILQ_INSERT_TAIL(&x->accs, a, link);
    x->n_accs++;
    x->busy++;
    int rv = uv_read_start((uv_stream_t *)tcp, acc_alloc, acc_read);
    if (rv != 0)
        acc_reject(a, uv_strerror(rv));
}

/* ---- outgoing connects ---- */

static void conn_try_next(conn *c);

/* When nothing of ours is outstanding, tell raft (unless it was told) and free. */
static void conn_maybe_free(conn *c)
{
    if (c->open > 0)
        return;
    tr *x = c->tr;
    if (!c->delivered) {
        c->delivered = true;
        c->req->cb(c->req, NULL, c->status != 0 ? c->status : RAFT_NOCONNECTION);
    }
    if (c->ais != NULL)
        uv_freeaddrinfo(c->ais);
    TAILQ_REMOVE(&x->conns, c, link);
    free(c);
    release_busy(x);
}

static void conn_handle_closed(uv_handle_t *h)
{
    conn *c = h->data;
    if (h != (uv_handle_t *)&c->timer)
        raft_free(h);
    c->open--;
    conn_maybe_free(c);
}

static void conn_close_tcp(conn *c)
{
    if (c->tcp != NULL) {
        uv_close((uv_handle_t *)c->tcp, conn_handle_closed);
        c->tcp = NULL;
    }
}

/* Give up: close what is ours; raft hears `status` once all of it is closed. */
static void conn_fail(conn *c, int status, const char *why)
{
    if (c->status != 0 || c->delivered)
        return;
    c->status = status;
    if (status != RAFT_CANCELED)
        kr_log(KR_LOG_DEBUG, "raft connect failed", KR_LOG_STR("host", c->hp.host),
               KR_LOG_STR("port", c->hp.port), KR_LOG_STR("reason", why));
    conn_close_tcp(c);
    if (c->resolving)
        uv_cancel((uv_req_t *)&c->gai); /* its callback still runs (UV_EAI_CANCELED) */
    uv_close((uv_handle_t *)&c->timer, conn_handle_closed);
}

static void conn_timeout(uv_timer_t *timer)
{
    conn_fail(timer->data, RAFT_NOCONNECTION, "timed out");
}

/* A connect or handshake write of ours completed: false when that attempt
 * is over (given up, or failed: the next address is tried). */
static bool conn_step_ok(conn *c, int status)
{
    c->open--;
    if (c->status != 0 || c->delivered) {
        conn_maybe_free(c);
        return false;
    }
    if (status < 0) {
        conn_close_tcp(c);
        conn_try_next(c);
        return false;
    }
    return true;
}

static void conn_written(uv_write_t *w, int status)
{
    conn *c = w->data;
    if (!conn_step_ok(c, status))
        return;
    uv_stream_t *stream = (uv_stream_t *)c->tcp;
    c->tcp = NULL;
    c->open--; /* the stream is raft's now */
    stream->data = NULL;
    c->delivered = true;
    c->req->cb(c->req, stream, 0);
    uv_close((uv_handle_t *)&c->timer, conn_handle_closed);
}

static void conn_connected(uv_connect_t *req, int status)
{
    conn *c = req->data;
    if (!conn_step_ok(c, status))
        return;
    uv_tcp_nodelay(c->tcp, 1);
    uv_buf_t b = uv_buf_init((char *)c->hs, (unsigned)c->hs_len);
    c->write.data = c;
    int rv = uv_write(&c->write, (uv_stream_t *)c->tcp, &b, 1, conn_written);
    if (rv != 0) {
        conn_close_tcp(c);
        conn_try_next(c);
        return;
    }
    c->open++;
}

/* Connect to the next resolved address; fail when none is left. */
static void conn_try_next(conn *c)
{
    while (c->next_ai != NULL) {
        struct addrinfo *ai = c->next_ai;
        c->next_ai = ai->ai_next;
        if (ai->ai_family != AF_INET && ai->ai_family != AF_INET6)
            continue;
        uv_tcp_t *tcp = raft_malloc(sizeof *tcp);
        if (tcp == NULL)
            break;
        uv_tcp_init(c->tr->loop, tcp);
        tcp->data = c;
        c->tcp = tcp;
        c->open++; /* the handle */
        c->connect.data = c;
        if (uv_tcp_connect(&c->connect, tcp, ai->ai_addr, conn_connected) == 0) {
            c->open++; /* the request */
            return;
        }
        conn_close_tcp(c);
    }
    conn_fail(c, RAFT_NOCONNECTION, "no resolved address accepted the connection");
    conn_maybe_free(c);
}

static void conn_resolved(uv_getaddrinfo_t *req, int status, struct addrinfo *res)
{
    conn *c = req->data;
    c->resolving = false;
    c->open--;
    c->ais = res;
    if (c->status != 0) {
        conn_maybe_free(c);
        return;
    }
    if (status < 0) {
        conn_fail(c, RAFT_NOCONNECTION, uv_strerror(status));
        conn_maybe_free(c);
        return;
    }
    c->next_ai = res;
    conn_try_next(c);
}

static int tr_connect(struct raft_uv_transport *t, struct raft_uv_connect *req, raft_id id,
                      const char *address, raft_uv_connect_cb cb)
{
    tr *x = t->impl;
    (void)id;
    if (x->closing)
        return RAFT_CANCELED;
    conn *c = calloc(1, sizeof *c);
    if (c == NULL)
        return RAFT_NOMEM;
    if (split(address, &c->hp) < 0) {
        snprintf(t->errmsg, sizeof t->errmsg, "raft address \"%.128s\" is not HOST:PORT", address);
        free(c);
        return RAFT_INVALID;
    }
    c->tr = x;
    c->req = req;
    req->cb = cb;
    c->hs_len =
        kr_transport_handshake(c->hs, sizeof c->hs, x->id, x->address, x->info, x->info_len);
    c->gai.data = c;
    struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM};
    int rv = uv_getaddrinfo(x->loop, &c->gai, conn_resolved, c->hp.host, c->hp.port, &hints);
    if (rv != 0) {
        snprintf(t->errmsg, sizeof t->errmsg, "cannot resolve %.128s: %s", c->hp.host,
                 uv_strerror(rv));
        free(c);
        return RAFT_NOCONNECTION;
    }
    c->resolving = true;
    c->open = 2; /* the getaddrinfo request and the timer */
    uv_timer_init(x->loop, &c->timer);
    c->timer.data = c;
    uv_timer_start(&c->timer, conn_timeout, x->connect_ms, 0);
    TAILQ_INSERT_TAIL(&x->conns, c, link);
    x->busy++;
    return 0;
}

/* ---- listening ---- */

static void listener_closed(uv_handle_t *h)
{
    release_busy(h->data);
}

/* Listen on one resolved address. @return 0, or a libuv error. */
static int listen_one(tr *x, const struct addrinfo *ai, bool v6only)
{
    unsigned i = x->n_slots++;
    uv_tcp_t *l = &x->listeners[i];
    uv_tcp_init(x->loop, l);
    l->data = x;
    x->busy++;
    int rv = uv_tcp_bind(l, ai->ai_addr, v6only ? UV_TCP_IPV6ONLY : 0);
    if (rv == 0)
        rv = uv_listen((uv_stream_t *)l, LISTEN_BACKLOG, on_connection);
    if (rv != 0)
        uv_close((uv_handle_t *)l, listener_closed);
    else
        x->listening[i] = true;
    return rv;
}

static int tr_listen(struct raft_uv_transport *t, raft_uv_accept_cb cb)
{
    tr *x = t->impl;
    const char *where = x->bind[0] != '\0' ? x->bind : x->address;
    kr_hostport hp;
    if (split(where, &hp) < 0) {
        snprintf(t->errmsg, sizeof t->errmsg, "raft listen address \"%.128s\" is not HOST:PORT",
                 where);
        return RAFT_INVALID;
    }
    struct addrinfo hints = {
        .ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM, .ai_flags = AI_PASSIVE | AI_ADDRCONFIG};
    struct addrinfo *res = NULL;
    int gai = getaddrinfo(hp.host[0] != '\0' ? hp.host : NULL, hp.port, &hints, &res);
    if (gai != 0) {
        snprintf(t->errmsg, sizeof t->errmsg, "cannot resolve raft listen address %.128s: %s",
                 where, gai_strerror(gai));
        return RAFT_IOERR;
    }
    bool has_v4 = false;
    for (struct addrinfo *ai = res; ai != NULL; ai = ai->ai_next)
        has_v4 |= ai->ai_family == AF_INET;
    x->accept_cb = cb;
    int last = 0;
    unsigned n = 0;
    for (struct addrinfo *ai = res; ai != NULL && x->n_slots < KR_TRANSPORT_MAX_LISTENERS;
         ai = ai->ai_next) {
        if (ai->ai_family != AF_INET && ai->ai_family != AF_INET6)
            continue;
        /* With an IPv4 address in the list too, [::] must not take the IPv4
         * port as well (dual stack), or binding 0.0.0.0 would fail. */
        int rv = listen_one(x, ai, ai->ai_family == AF_INET6 && has_v4);
        if (rv != 0)
            last = rv;
        else
            n++;
    }
    freeaddrinfo(res);
    if (n == 0) {
        snprintf(t->errmsg, sizeof t->errmsg, "cannot listen on raft address %.128s: %s", where,
                 last != 0 ? uv_strerror(last) : "no usable address");
        return RAFT_IOERR;
    }
    return 0;
}

/* ---- init and close ---- */

static int tr_init(struct raft_uv_transport *t, raft_id id, const char *address)
{
    tr *x = t->impl;
    kr_hostport hp;
    if (id == 0) {
        snprintf(t->errmsg, sizeof t->errmsg, "raft server id must be greater than 0");
        return RAFT_INVALID;
    }
    if (address == NULL || strlen(address) > KR_TRANSPORT_ADDRESS_MAX || split(address, &hp) < 0) {
        snprintf(t->errmsg, sizeof t->errmsg,
                 "raft address \"%.64s\" is not HOST:PORT of at most %d bytes",
                 address != NULL ? address : "", KR_TRANSPORT_ADDRESS_MAX);
        return RAFT_INVALID;
    }
    x->id = id;
    snprintf(x->address, sizeof x->address, "%s", address);
    return 0;
}

static void tr_close(struct raft_uv_transport *t, raft_uv_transport_close_cb cb)
{
    tr *x = t->impl;
    x->closing = true;
    x->close_cb = cb;
    for (unsigned i = 0; i < x->n_slots; i++) {
        if (x->listening[i])
            uv_close((uv_handle_t *)&x->listeners[i], listener_closed);
        x->listening[i] = false;
    }
    for (acc *a = TAILQ_FIRST(&x->accs), *next; a != NULL; a = next) {
        next = TAILQ_NEXT(a, link);
        acc_end(a); /* one writing a reply leaves the list once the write ends */
    }
    conn *c;
    TAILQ_FOREACH(c, &x->conns, link)
    conn_fail(c, RAFT_CANCELED, "transport closed");
    /* Counted like the rest; closed by release_busy when it is the last. */
    uv_timer_init(x->loop, &x->closer);
    x->closer.data = x;
    x->busy++;
    release_busy(x);
}

int kr_transport_init(struct raft_uv_transport *t, struct uv_loop_s *loop,
                      const kr_transport_opts *o, char *err, size_t errlen)
{
    memset(t, 0, sizeof *t);
    tr *x = calloc(1, sizeof *x);
    if (x == NULL) {
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    if (o != NULL && o->bind != NULL) {
        kr_hostport hp;
        if (strlen(o->bind) > KR_TRANSPORT_ADDRESS_MAX || split(o->bind, &hp) < 0) {
            snprintf(err, errlen, "raft bind address \"%.64s\" is not HOST:PORT", o->bind);
            free(x);
            return -1;
        }
        snprintf(x->bind, sizeof x->bind, "%s", o->bind);
    }
    x->t = t;
    x->loop = loop;
    x->handshake_ms =
        o != NULL && o->handshake_ms > 0 ? o->handshake_ms : KR_TRANSPORT_HANDSHAKE_MS;
    x->connect_ms = o != NULL && o->connect_ms > 0 ? o->connect_ms : KR_TRANSPORT_CONNECT_MS;
    if (o != NULL) {
        if (o->info_len > KR_TRANSPORT_INFO_MAX) {
            snprintf(err, errlen, "the node's info is longer than %d bytes", KR_TRANSPORT_INFO_MAX);
            free(x);
            return -1;
        }
        if (o->info_len > 0)
            memcpy(x->info, o->info, o->info_len);
        x->info_len = o->info_len;
        x->probe = o->probe;
        x->on_info = o->on_info;
        x->arg = o->arg;
        x->refuse_raft = o->refuse_raft != 0;
    }
    TAILQ_INIT(&x->accs);
    TAILQ_INIT(&x->conns);
    t->impl = x;
    t->init = tr_init;
    t->listen = tr_listen;
    t->connect = tr_connect;
    t->close = tr_close;
    return 0;
}

void kr_transport_release(struct raft_uv_transport *t)
{
    if (t == NULL || t->impl == NULL)
        return;
    free(t->impl);
    t->impl = NULL;
}
