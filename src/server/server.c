/*
 * server/server.c - the event loop, the listener, signals and the
 * housekeeping tick; connections themselves live in session.c.
 */
#include "server/server.h"

#include <errno.h>
#include <netdb.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <arpa/inet.h>
#include <event2/event.h>
#include <event2/listener.h>

#include "proto/frame.h"
#include "server/kafka.h"
#include "util/clock.h"
#include "util/hostport.h"
#include "util/io.h"
#include "util/log.h"

/* Pause accepting this long when the process runs out of descriptors. */
#define KR_ACCEPT_RETRY_MS 100
/* Listen backlog. */
#define KR_LISTEN_BACKLOG 511

static const struct timeval tick_tv = {0, KR_TICK_MS * 1000};

static void register_metrics(kr_server *srv)
{
    kr_metrics *m = srv->metrics;
    kr_server_metrics *sm = &srv->m;
    sm->connections = kr_gauge(m, "krappy_connections", NULL, "Open client connections.");
    sm->accepted =
        kr_counter(m, "krappy_connections_accepted_total", NULL, "Client connections accepted.");
    sm->rejected = kr_counter(m, "krappy_connections_rejected_total", NULL,
                              "Connections refused with BUSY over --max-connections.");
    sm->closed_idle = kr_counter(m, "krappy_connections_closed_idle_total", NULL,
                                 "Connections closed after --idle-timeout.");
    sm->closed_stalled = kr_counter(m, "krappy_connections_closed_stalled_total", NULL,
                                    "Connections closed for leaving replies unread.");
    sm->closed_frame_stalled =
        kr_counter(m, "krappy_connections_closed_stalled_frame_total", NULL,
                   "Connections closed because their unfinished frame stopped arriving while "
                   "the memory for requests was full.");
    sm->pending_bytes = kr_gauge(m, "krappy_pending_request_bytes", NULL,
                                 "Bytes of requests read and not yet answered, unfinished "
                                 "frames included (--max-pending-bytes).");
    sm->budget_waits = kr_counter(m, "krappy_request_memory_waits_total", NULL,
                                  "Times a connection stopped reading because requests held "
                                  "--max-pending-bytes.");
    sm->bytes_in =
        kr_counter(m, "krappy_received_bytes_total", NULL, "Frame bytes received from clients.");
    sm->bytes_out = kr_counter(m, "krappy_sent_bytes_total", NULL, "Frame bytes sent to clients.");
    char labels[64];
    for (unsigned t = 1; t <= KRAPPY_T_REQUEST_MAX; t++) {
        if (krappy_type_name(t) == NULL)
            continue; /* a number this version does not answer */
        snprintf(labels, sizeof labels, "type=\"%s\"", krappy_type_name(t));
        sm->requests[t] =
            kr_counter(m, "krappy_requests_total", labels, "Requests answered, by request type.");
        sm->latency[t] = kr_histogram(m, "krappy_request_duration_seconds", labels,
                                      "Time from a request's arrival to its reply, by type.");
    }
    for (unsigned e = 1; e <= KRAPPY_E_WIRE_MAX; e++) {
        snprintf(labels, sizeof labels, "code=\"%s\"", krappy_err_name((int)e));
        sm->errors[e] =
            kr_counter(m, "krappy_errors_total", labels, "ERROR replies sent, by error code.");
    }
}

/* Refuse a connection over the limit: one ERROR BUSY, then close. The
 * socket is new, so its send buffer takes the few bytes at once. */
static void refuse_busy(kr_server *srv, int fd)
{
    kr_buf b;
    kr_buf_init(&b, 4096);
    char msg[160];
    snprintf(msg, sizeof msg,
             "the server has reached its limit of %u connections; retry later or raise "
             "--max-connections%s",
             srv->max_conns,
             srv->max_conns < srv->cfg->max_connections ? " and the open file limit" : "");
    kr_buf enc;
    kr_buf_init(&enc, 4096);
    kr_enc_error(&enc, (kr_cid){0}, KRAPPY_E_BUSY, msg, NULL);
    if (!enc.failed && kr_frame_append(&b, KRAPPY_T_ERROR, enc.data, enc.len) == 0)
        (void)send(fd, b.data, b.len, MSG_NOSIGNAL | MSG_DONTWAIT);
    kr_buf_free(&enc);
    kr_buf_free(&b);
    shutdown(fd, SHUT_WR);
    /* Discard what the client already sent: closing with unread input
     * would answer with a reset that can destroy the BUSY in flight. */
    (void)kr_drain_socket(fd);
    close(fd);
    kr_counter_add(srv->m.rejected, 1);
}

static void on_accept(struct evconnlistener *l, evutil_socket_t fd, struct sockaddr *sa, int salen,
                      void *arg)
{
    kr_server *srv = arg;
    (void)l;
    if (srv->shutting_down) {
        close(fd);
        return;
    }
    if (srv->n_conns >= srv->max_conns) {
        refuse_busy(srv, fd);
        return;
    }
    if (kr_conn_new(srv, fd, sa, salen) == NULL) {
        kr_log(KR_LOG_ERROR, "cannot set up a connection", KR_LOG_STR("reason", "out of memory"));
        close(fd);
        return;
    }
    kr_counter_add(srv->m.accepted, 1);
}

static void on_accept_retry(evutil_socket_t fd, short what, void *arg)
{
    kr_server *srv = arg;
    (void)fd;
    (void)what;
    if (srv->listener != NULL)
        evconnlistener_enable(srv->listener);
    kr_kafka_accept_resume(srv->kafka);
}

/* accept() failed: out of descriptors pauses accepting briefly instead of
 * spinning; anything else is logged. */
static void on_accept_error(struct evconnlistener *l, void *arg)
{
    kr_server *srv = arg; /* both listeners are bound with the server as arg */
    int err = EVUTIL_SOCKET_ERROR();
    kr_log(KR_LOG_WARN, "accept failed", KR_LOG_STR("reason", evutil_socket_error_to_string(err)));
    if (err == EMFILE || err == ENFILE || err == ENOBUFS || err == ENOMEM) {
        evconnlistener_disable(l);
        struct timeval tv = {0, KR_ACCEPT_RETRY_MS * 1000};
        event_add(srv->accept_retry, &tv);
    }
}

static void on_tick(evutil_socket_t fd, short what, void *arg)
{
    kr_server *srv = arg;
    (void)fd;
    (void)what;
    uint64_t now = kr_mono_ns();
    kr_conn *c, *next;
    for (c = TAILQ_FIRST(&srv->conns); c != NULL; c = next) {
        next = TAILQ_NEXT(c, link);
        kr_conn_tick(c, now);
    }
    kr_budget_tick(srv, now);
    if (srv->shutting_down && srv->cfg->shutdown_timeout_ms > 0 &&
        now - srv->shutdown_ns > srv->cfg->shutdown_timeout_ms * 1000000) {
        kr_log(KR_LOG_WARN, "shutdown timeout: closing connections with unsent replies");
        while ((c = TAILQ_FIRST(&srv->conns)) != NULL)
            kr_conn_abort(c, "shutdown timeout");
        kr_kafka_abort_all(srv->kafka, "shutdown timeout");
    }
    kr_kafka_tick(srv->kafka, now);
    if (srv->cluster != NULL)
        kr_server_cluster_tick(srv);
    if (srv->shutting_down && srv->n_conns == 0)
        event_base_loopexit(srv->base, NULL);
}

static void on_signal(evutil_socket_t sig, short what, void *arg)
{
    kr_server *srv = arg;
    (void)what;
    if (srv->shutting_down) {
        kr_log(KR_LOG_WARN, "second signal: stopping now");
        event_base_loopexit(srv->base, NULL);
        return;
    }
    kr_log(KR_LOG_INFO, "stopping", KR_LOG_STR("signal", sig == SIGTERM ? "SIGTERM" : "SIGINT"));
    kr_server_shutdown(srv);
}

void kr_server_shutdown(kr_server *srv)
{
    if (srv->shutting_down)
        return;
    srv->shutting_down = true;
    srv->shutdown_ns = kr_mono_ns();
    kr_cluster_handover(srv->cluster); /* clients find the next leader at once */
    if (srv->listener != NULL) {
        evconnlistener_free(srv->listener);
        srv->listener = NULL;
    }
    kr_conn *c, *next;
    for (c = TAILQ_FIRST(&srv->conns); c != NULL; c = next) {
        next = TAILQ_NEXT(c, link);
        kr_conn_shutdown(c);
    }
    kr_kafka_shutdown(srv->kafka);
    if (srv->n_conns == 0)
        event_base_loopexit(srv->base, NULL);
}

struct evconnlistener *kr_server_bind(kr_server *srv, const char *addr,
                                      void (*cb)(struct evconnlistener *, evutil_socket_t,
                                                 struct sockaddr *, int, void *),
                                      char *bound, size_t boundlen, uint16_t *port)
{
    kr_hostport hp = {0}; /* no host: every address; the port is required */
    if (kr_hostport_parse(addr, KR_HOSTPORT_PORT_ZERO, &hp, NULL, 0) < 0)
        return NULL;
    struct addrinfo hints = {.ai_family = AF_UNSPEC,
                             .ai_socktype = SOCK_STREAM,
                             .ai_flags = AI_PASSIVE | AI_NUMERICSERV};
    struct addrinfo *res = NULL;
    int gai = getaddrinfo(hp.host[0] ? hp.host : NULL, hp.port, &hints, &res);
    if (gai != 0) {
        kr_log(KR_LOG_ERROR, "cannot resolve the listen address", KR_LOG_STR("listen", addr),
               KR_LOG_STR("reason", gai_strerror(gai)));
        return NULL;
    }
    const char *why = "no address";
    struct evconnlistener *l = NULL;
    for (struct addrinfo *ai = res; ai != NULL; ai = ai->ai_next) {
        l = evconnlistener_new_bind(
            srv->base, cb, srv, LEV_OPT_CLOSE_ON_FREE | LEV_OPT_REUSEABLE | LEV_OPT_CLOSE_ON_EXEC,
            KR_LISTEN_BACKLOG, ai->ai_addr, (int)ai->ai_addrlen);
        if (l != NULL)
            break;
        why = strerror(errno);
    }
    freeaddrinfo(res);
    if (l == NULL) {
        kr_log(KR_LOG_ERROR, "cannot listen", KR_LOG_STR("listen", addr),
               KR_LOG_STR("reason", why));
        return NULL;
    }
    evconnlistener_set_error_cb(l, on_accept_error);

    struct sockaddr_storage ss;
    socklen_t sl = sizeof ss;
    getsockname(evconnlistener_get_fd(l), (struct sockaddr *)&ss, &sl);
    kr_sockaddr_format((const struct sockaddr *)&ss, bound, boundlen, port);
    return l;
}

void kr_server_note_drain(struct evbuffer *buf, const struct evbuffer_cb_info *info,
                          void *last_drain_ns)
{
    (void)buf;
    if (info->n_deleted > 0 || (info->orig_size == 0 && info->n_added > 0))
        *(uint64_t *)last_drain_ns = kr_mono_ns();
}

/* Write the bound port atomically (write a temporary file, rename). */
static int write_port_file(const kr_server *srv)
{
    const char *path = srv->cfg->port_file;
    char tmp[4096];
    if (snprintf(tmp, sizeof tmp, "%s.tmp", path) >= (int)sizeof tmp)
        return -1;
    FILE *f = fopen(tmp, "w");
    if (f == NULL)
        return -1;
    /* The data port, then the admin port when there is one. */
    int ok = fprintf(f, "%u\n", srv->port) > 0;
    uint16_t kafka_port = kr_kafka_port(srv->kafka);
    /* The admin port (0 when off, if a Kafka port follows), then the Kafka
     * port when there is one. */
    if (ok && (srv->http_port != 0 || kafka_port != 0))
        ok = fprintf(f, "%u\n", srv->http_port) > 0;
    if (ok && kafka_port != 0)
        ok = fprintf(f, "%u\n", kafka_port) > 0;
    ok = (fclose(f) == 0) && ok;
    if (!ok || rename(tmp, path) < 0) {
        unlink(tmp);
        return -1;
    }
    return 0;
}

int kr_server_setup(kr_server *srv, const kr_config *cfg, kr_metrics *metrics)
{
    memset(srv, 0, sizeof *srv);
    srv->cfg = cfg;
    srv->max_conns = cfg->max_connections;
    srv->metrics = metrics;
    srv->handler_for = kr_handler_for;
    TAILQ_INIT(&srv->conns);
    register_metrics(srv);

    srv->base = event_base_new();
    if (srv->base == NULL) {
        kr_log(KR_LOG_ERROR, "cannot create the event loop");
        return -1;
    }
    srv->tick = event_new(srv->base, -1, EV_PERSIST, on_tick, srv);
    srv->accept_retry = evtimer_new(srv->base, on_accept_retry, srv);
    srv->sigterm = evsignal_new(srv->base, SIGTERM, on_signal, srv);
    srv->sigint = evsignal_new(srv->base, SIGINT, on_signal, srv);
    if (srv->tick == NULL || srv->accept_retry == NULL || srv->sigterm == NULL ||
        srv->sigint == NULL || kr_budget_init(srv) < 0) {
        kr_log(KR_LOG_ERROR, "cannot set up loop events");
        return -1;
    }
    event_add(srv->tick, &tick_tv);
    event_add(srv->sigterm, NULL);
    event_add(srv->sigint, NULL);
    signal(SIGPIPE, SIG_IGN);
    return 0;
}

int kr_server_listen(kr_server *srv)
{
    srv->listener = kr_server_bind(srv, srv->cfg->listen, on_accept, srv->listen_addr,
                                   sizeof srv->listen_addr, &srv->port);
    if (srv->listener == NULL)
        return -1;
    if (srv->cfg->kafka_listen != NULL && kr_kafka_start(srv) < 0)
        return -1;
    if (srv->cfg->port_file != NULL && write_port_file(srv) < 0) {
        kr_log(KR_LOG_ERROR, "cannot write the port file", KR_LOG_STR("path", srv->cfg->port_file),
               KR_LOG_STR("reason", strerror(errno)));
        return -1;
    }
    kr_log(KR_LOG_INFO, "listening", KR_LOG_STR("addr", srv->listen_addr),
           KR_LOG_U64("max_connections", srv->max_conns),
           KR_LOG_STR("auth", srv->cfg->token ? "token" : "none"));
    return 0;
}

int kr_server_run(kr_server *srv)
{
    if (event_base_dispatch(srv->base) < 0) {
        kr_log(KR_LOG_ERROR, "event loop failed");
        return -1;
    }
    return 0;
}

void kr_server_free(kr_server *srv)
{
    kr_conn *c;
    while ((c = TAILQ_FIRST(&srv->conns)) != NULL)
        kr_conn_abort(c, "server stopped");
    kr_kafka_free(srv->kafka);
    srv->kafka = NULL;
    if (srv->listener != NULL)
        evconnlistener_free(srv->listener);
    if (srv->tick != NULL)
        event_free(srv->tick);
    if (srv->accept_retry != NULL)
        event_free(srv->accept_retry);
    if (srv->sigterm != NULL)
        event_free(srv->sigterm);
    if (srv->sigint != NULL)
        event_free(srv->sigint);
    kr_budget_free(srv);
    if (srv->base != NULL)
        event_base_free(srv->base);
    memset(srv, 0, sizeof *srv);
}
