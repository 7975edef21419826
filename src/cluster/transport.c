/*
 * cluster/transport.c - raft's transport over libuv TCP with DNS names and a
 * handshake of our own (see transport.h for the format and the contract).
 *
 * Three kinds of objects live on the loop, each counted in tr->busy until its
 * last handle is closed, so the transport's close callback runs only once
 * nothing of it is left: listeners, incoming handshakes (struct acc) and
 * outgoing connects (struct conn).
 */
#include "cluster/transport.h"

#include <errno.h>
#include <netdb.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/queue.h>
#include <sys/socket.h>

#include <arpa/inet.h>

#include <uv.h>

#include "util/log.h"

#define MAGIC          "KRFT"
#define HOST_MAX       256
#define PORT_MAX       8
#define LISTEN_BACKLOG 128

typedef struct tr tr;

/* An incoming connection until its handshake is read. */
typedef struct acc {
    tr *tr;
    uv_tcp_t *tcp; /* raft_malloc'd; NULL once handed to raft or closing */
    uv_timer_t timer;
    uint8_t hdr[KR_TRANSPORT_HEADER_BYTES];
    char address[KR_TRANSPORT_ADDRESS_MAX + 1];
    size_t got;  /* bytes of the current part read */
    size_t need; /* bytes of the current part */
    bool in_address;
    uint64_t id;
    TAILQ_ENTRY(acc) link;
} acc;

/* An outgoing connect until its handshake is written. */
typedef struct conn {
    tr *tr;
    struct raft_uv_connect *req;
    char host[HOST_MAX];
    char port[PORT_MAX];
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

static void put_be16(uint8_t *p, uint16_t v)
{
    p[0] = (uint8_t)(v >> 8);
    p[1] = (uint8_t)v;
}

static uint16_t get_be16(const uint8_t *p)
{
    return (uint16_t)((unsigned)p[0] << 8 | p[1]);
}

static void put_be64(uint8_t *p, uint64_t v)
{
    for (int i = 7; i >= 0; i--) {
        p[i] = (uint8_t)v;
        v >>= 8;
    }
}

static uint64_t get_be64(const uint8_t *p)
{
    uint64_t v = 0;
    for (int i = 0; i < 8; i++)
        v = v << 8 | p[i];
    return v;
}

int kr_transport_split(const char *s, char *host, size_t hostlen, char *port, size_t portlen,
                       int allow_zero)
{
    const char *h = s;
    const char *colon;
    size_t hl;
    if (s == NULL)
        return -1;
    if (s[0] == '[') {
        const char *close = strchr(s, ']');
        if (close == NULL || close[1] != ':')
            return -1;
        h = s + 1;
        hl = (size_t)(close - h);
        colon = close + 1;
    } else {
        colon = strrchr(s, ':');
        /* A bare IPv6 address needs brackets: its colons are ambiguous. */
        if (colon == NULL || memchr(s, ':', (size_t)(colon - s)) != NULL)
            return -1;
        hl = (size_t)(colon - s);
    }
    const char *p = colon + 1;
    size_t pl = strlen(p);
    if (pl == 0 || pl > 5 || pl + 1 > portlen || hl + 1 > hostlen)
        return -1;
    unsigned long v = 0;
    for (size_t i = 0; i < pl; i++) {
        if (p[i] < '0' || p[i] > '9')
            return -1;
        v = v * 10 + (unsigned long)(p[i] - '0');
    }
    if (v > 65535 || (v == 0 && !allow_zero))
        return -1;
    memcpy(host, h, hl);
    host[hl] = '\0';
    memcpy(port, p, pl + 1);
    return 0;
}

size_t kr_transport_handshake(uint8_t *out, size_t cap, uint64_t id, const char *address)
{
    size_t n = address != NULL ? strlen(address) : 0;
    if (id == 0 || n == 0 || n > KR_TRANSPORT_ADDRESS_MAX || cap < KR_TRANSPORT_HEADER_BYTES + n)
        return 0;
    memcpy(out, MAGIC, 4);
    put_be16(out + 4, KR_TRANSPORT_VERSION);
    put_be16(out + 6, (uint16_t)n);
    put_be64(out + 8, id);
    memcpy(out + KR_TRANSPORT_HEADER_BYTES, address, n);
    return KR_TRANSPORT_HEADER_BYTES + n;
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

/* Drop the connection (when still ours) and forget the handshake. */
static void acc_end(acc *a)
{
    tr *x = a->tr;
    if (a->tcp != NULL) {
        uv_close((uv_handle_t *)a->tcp, free_stream);
        a->tcp = NULL;
    }
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
    acc_reject(timer->data, "no complete handshake in time");
}

static void acc_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf)
{
    acc *a = h->data;
    (void)suggested;
    /* Exactly what the handshake still lacks: raft's first message follows
     * on the same stream and must stay in the socket for raft to read. */
    char *base = a->in_address ? a->address : (char *)a->hdr;
    buf->base = base + a->got;
    buf->len = a->need - a->got;
}

/* The fixed part is in: check it and learn the address length. */
static const char *acc_header(acc *a)
{
    if (memcmp(a->hdr, MAGIC, 4) != 0)
        return "not a krappy raft handshake (bad magic)";
    if (get_be16(a->hdr + 4) != KR_TRANSPORT_VERSION)
        return "handshake of an unsupported version (this node speaks version 1)";
    size_t n = get_be16(a->hdr + 6);
    if (n == 0 || n > KR_TRANSPORT_ADDRESS_MAX)
        return "handshake address length out of range (1..255)";
    a->id = get_be64(a->hdr + 8);
    if (a->id == 0)
        return "handshake carries server id 0";
    a->in_address = true;
    a->got = 0;
    a->need = n;
    return NULL;
}

static void acc_read(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf)
{
    acc *a = s->data;
    tr *x = a->tr;
    (void)buf;
    if (nread == 0)
        return;
    if (nread < 0) {
        acc_reject(a,
                   nread == UV_EOF ? "closed before the handshake ended" : uv_strerror((int)nread));
        return;
    }
    a->got += (size_t)nread;
    if (a->got < a->need)
        return;
    if (!a->in_address) {
        const char *why = acc_header(a);
        if (why != NULL)
            acc_reject(a, why);
        return;
    }
    a->address[a->need] = '\0';
    if (strlen(a->address) != a->need) {
        acc_reject(a, "handshake address contains a NUL byte");
        return;
    }
    uv_read_stop(s);
    uv_stream_t *stream = (uv_stream_t *)a->tcp;
    a->tcp = NULL;
    stream->data = NULL;
    /* a (and so a->address) lives until its timer's close callback. */
    x->accept_cb(x->t, a->id, a->address, stream);
    acc_end(a);
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
    a->need = KR_TRANSPORT_HEADER_BYTES;
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
        kr_log(KR_LOG_DEBUG, "raft connect failed", KR_LOG_STR("host", c->host),
               KR_LOG_STR("port", c->port), KR_LOG_STR("reason", why));
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
    if (kr_transport_split(address, c->host, sizeof c->host, c->port, sizeof c->port, 0) < 0) {
        snprintf(t->errmsg, sizeof t->errmsg, "raft address \"%.128s\" is not HOST:PORT", address);
        free(c);
        return RAFT_INVALID;
    }
    c->tr = x;
    c->req = req;
    req->cb = cb;
    c->hs_len = kr_transport_handshake(c->hs, sizeof c->hs, x->id, x->address);
    c->gai.data = c;
    struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM};
    int rv = uv_getaddrinfo(x->loop, &c->gai, conn_resolved, c->host, c->port, &hints);
    if (rv != 0) {
        snprintf(t->errmsg, sizeof t->errmsg, "cannot resolve %.128s: %s", c->host,
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
    char host[HOST_MAX], port[PORT_MAX];
    if (kr_transport_split(where, host, sizeof host, port, sizeof port, 0) < 0) {
        snprintf(t->errmsg, sizeof t->errmsg, "raft listen address \"%.128s\" is not HOST:PORT",
                 where);
        return RAFT_INVALID;
    }
    struct addrinfo hints = {
        .ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM, .ai_flags = AI_PASSIVE | AI_ADDRCONFIG};
    struct addrinfo *res = NULL;
    int gai = getaddrinfo(host[0] != '\0' ? host : NULL, port, &hints, &res);
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
    char host[HOST_MAX], port[PORT_MAX];
    if (id == 0) {
        snprintf(t->errmsg, sizeof t->errmsg, "raft server id must be greater than 0");
        return RAFT_INVALID;
    }
    if (address == NULL || strlen(address) > KR_TRANSPORT_ADDRESS_MAX ||
        kr_transport_split(address, host, sizeof host, port, sizeof port, 0) < 0) {
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
    while (!TAILQ_EMPTY(&x->accs))
        acc_end(TAILQ_FIRST(&x->accs));
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
        char host[HOST_MAX], port[PORT_MAX];
        if (strlen(o->bind) > KR_TRANSPORT_ADDRESS_MAX ||
            kr_transport_split(o->bind, host, sizeof host, port, sizeof port, 0) < 0) {
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
