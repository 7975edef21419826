/*
 * server/admin.c - the HTTP admin port (libevent evhttp, on the loop):
 *
 *   GET /healthz        200 while the process runs
 *   GET /readyz         200 once storage is open, recovery done and the data
 *                       port listening; 503 with the reason otherwise
 *   GET /metrics        Prometheus text exposition of the metrics registry
 *   GET / or /console   the web console (src/server/console.html, compiled in)
 *   /api/...            the JSON API (README's "The admin API" lists every
 *                       path): routed here, topics' reads here, events,
 *                       produce, deletions and seeks in admin_api.c
 *
 * With --http-token, /api needs "Authorization: Bearer TOKEN"; probes and
 * /metrics stay open. At most --http-max-connections are open at once (see
 * "connections" below). The console page itself holds no data and loads
 * without the token: it asks for it when /api answers 401 and sends it with
 * every API call. Reads answer from memory or a bounded read; writes
 * (produce, delete, seek) answer once the storage writer has done them.
 * Every answer of /api, errors included, is JSON.
 */
#include "server/admin.h"
#include "server/admin_int.h"

#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/http.h>
#include <event2/listener.h>
#include <event2/keyvalq_struct.h>

#include "proto/cbor_text.h"
#include "proto/msg.h"
#include "server/console.h"
#include "server/group_rows.h"
#include "store/store.h"
#include "util/buf.h"
#include "util/hostport.h"
#include "util/json.h"
#include "util/clock.h"
#include "util/log.h"
#include "util/secret.h"

/* Largest /metrics reply. */
#define KR_ADMIN_REPLY_MAX (8u * 1024 * 1024)

/* How often closed connections are counted out while any is open. */
#define KR_ADMIN_SWEEP_MS 100

/* ---- connections ----
 *
 * evhttp (libevent 2.1) has no connection limit and tells nobody when a
 * connection opens or closes. It does let us make each connection's
 * bufferevent (evhttp_set_bevcb): we keep a reference to each, so that it
 * outlives evhttp's bufferevent_free, and a bufferevent whose callbacks
 * are gone has been freed by evhttp - the connection is over, and dropping
 * our reference closes its socket. At the cap the listener is disabled:
 * new connections wait in the kernel's backlog, holding no descriptor of
 * ours, until one closes.
 */

static void count_out_closed(kr_admin *a)
{
    uint32_t k = 0;
    for (uint32_t i = 0; i < a->n_conns; i++) {
        bufferevent_data_cb rd, wr;
        bufferevent_event_cb ev;
        void *arg;
        bufferevent_getcb(a->conns[i], &rd, &wr, &ev, &arg);
        if (rd == NULL && ev == NULL)
            bufferevent_decref(a->conns[i]); /* evhttp freed it: ours was the last */
        else
            a->conns[k++] = a->conns[i];
    }
    a->n_conns = k;
    kr_gauge_set(a->m_conns, a->n_conns);
    if (a->paused && a->n_conns < a->max_conns) {
        evconnlistener_enable(a->listener);
        a->paused = false;
    }
}

static void on_sweep(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    count_out_closed(arg);
}

/* evhttp asks for the bufferevent of a connection it just accepted. */
static struct bufferevent *new_conn(struct event_base *base, void *arg)
{
    kr_admin *a = arg;
    count_out_closed(a);
    struct bufferevent *bev = NULL;
    if (a->n_conns < a->max_conns &&
        (bev = bufferevent_socket_new(base, -1, BEV_OPT_CLOSE_ON_FREE)) != NULL) {
        bufferevent_incref(bev);
        a->conns[a->n_conns++] = bev;
        kr_gauge_set(a->m_conns, a->n_conns);
    }
    if (a->n_conns >= a->max_conns && !a->paused) {
        evconnlistener_disable(a->listener);
        a->paused = true;
    }
    return bev; /* NULL: evhttp makes one itself (uncounted, out of memory) */
}

/*
 * Every reply leaves through here, and b (NULL: no body) is freed. A HEAD
 * gets what a GET would get but the body: evhttp sends a HEAD reply's body
 * as given, and adds no Content-Length to it, so the length is put here.
 */
static void send_reply(struct evhttp_request *req, int code, const char *reason, struct evbuffer *b)
{
    if (b != NULL && evhttp_request_get_command(req) == EVHTTP_REQ_HEAD) {
        char len[32];
        snprintf(len, sizeof len, "%zu", evbuffer_get_length(b));
        evhttp_add_header(evhttp_request_get_output_headers(req), "Content-Length", len);
        evbuffer_drain(b, evbuffer_get_length(b));
    }
    evhttp_send_reply(req, code, reason, b);
    if (b != NULL)
        evbuffer_free(b);
}

/* No memory for a reply: a bare 500 (evhttp_send_error would build a page). */
static void send_oom(struct evhttp_request *req)
{
    send_reply(req, 500, "Internal Server Error", NULL);
}

static void reply_text(struct evhttp_request *req, int code, const char *reason, const char *type,
                       const char *body)
{
    struct evbuffer *b = evbuffer_new();
    if (b == NULL) {
        send_oom(req);
        return;
    }
    evhttp_add_header(evhttp_request_get_output_headers(req), "Content-Type", type);
    evbuffer_add(b, body, strlen(body));
    send_reply(req, code, reason, b);
}

/* A JSON error: {"error": "..."}, the sentence cut to fit 512 bytes. */
static void reply_error(struct evhttp_request *req, int code, const char *reason, const char *msg)
{
    static const char head[] = "{\"error\":\"", end[] = "\"}\n";
    char body[512];
    size_t n = sizeof head - 1, w;
    memcpy(body, head, n);
    kr_json_esc_mem(body + n, sizeof body - n - sizeof end, &w, msg, strlen(msg));
    n += w;
    memcpy(body + n, end, sizeof end); /* NUL included */
    reply_text(req, code, reason, "application/json", body);
}

void kr_admin_reply_error(struct evhttp_request *req, int code, const char *reason, const char *msg)
{
    reply_error(req, code, reason, msg);
}

/* Every path here only reads: other methods get 405. @return 1 if served. */
static int get_only(struct evhttp_request *req)
{
    enum evhttp_cmd_type m = evhttp_request_get_command(req);
    if (m == EVHTTP_REQ_GET || m == EVHTTP_REQ_HEAD)
        return 1;
    evhttp_add_header(evhttp_request_get_output_headers(req), "Allow", "GET, HEAD");
    reply_error(req, 405, "Method Not Allowed", "only GET is served here");
    return 0;
}

/* ---- console ---- */

/* The console page. Its CSP keeps it to its own origin: scripts and styles
 * are inline, and nothing may be fetched from anywhere else. */
static void on_console(struct evhttp_request *req, void *arg)
{
    (void)arg;
    if (!get_only(req))
        return;
    struct evbuffer *b = evbuffer_new();
    if (b == NULL) {
        send_oom(req);
        return;
    }
    struct evkeyvalq *h = evhttp_request_get_output_headers(req);
    evhttp_add_header(h, "Content-Type", "text/html; charset=utf-8");
    evhttp_add_header(h, "Content-Security-Policy",
                      "default-src 'self'; script-src 'self' 'unsafe-inline'; "
                      "style-src 'self' 'unsafe-inline'");
    evhttp_add_header(h, "X-Content-Type-Options", "nosniff");
    evhttp_add_header(h, "Cache-Control", "no-cache");
    evbuffer_add_reference(b, kr_console_html, kr_console_html_len, NULL, NULL);
    send_reply(req, 200, "OK", b);
}

/* Browsers ask for /favicon.ico; the console has none. */
static void on_favicon(struct evhttp_request *req, void *arg)
{
    (void)arg;
    if (get_only(req))
        send_reply(req, 204, "No Content", NULL);
}

/* ---- probes ---- */

/* 200 while the process runs - but for a cluster node whose store or raft
 * halted (kr_cluster_needs_restart): only a restart mends that, so a
 * liveness probe should see it. */
static void on_healthz(struct evhttp_request *req, void *arg)
{
    kr_admin *a = arg;
    if (!get_only(req))
        return;
    char why[300] = "halted: ";
    size_t at = strlen(why);
    if (kr_cluster_needs_restart(a->srv->cluster, why + at, sizeof why - at - 1))
        reply_text(req, 503, "Service Unavailable", "text/plain", strcat(why, "\n"));
    else
        reply_text(req, 200, "OK", "text/plain", "ok\n");
}

static void on_readyz(struct evhttp_request *req, void *arg)
{
    kr_admin *a = arg;
    if (!get_only(req))
        return;
    kr_server *srv = a->srv;
    char why[300];
    if (srv->shutting_down)
        reply_text(req, 503, "Service Unavailable", "text/plain", "shutting down\n");
    else if (srv->store == NULL)
        reply_text(req, 503, "Service Unavailable", "text/plain",
                   "recovering: storage is opening (the view catches up with the stream)\n");
    else if (srv->listener == NULL)
        reply_text(req, 503, "Service Unavailable", "text/plain",
                   "the data port is not listening yet\n");
    else if (srv->cluster != NULL && !kr_cluster_ready(srv->cluster, why, sizeof why - 1))
        reply_text(req, 503, "Service Unavailable", "text/plain", strcat(why, "\n"));
    else
        reply_text(req, 200, "OK", "text/plain", "ready\n");
}

/* ---- metrics ---- */

/* Resident set size in bytes, from /proc/self/statm. */
static long long rss_bytes(void)
{
    FILE *f = fopen("/proc/self/statm", "r");
    long long pages = -1, rss = -1;
    if (f == NULL)
        return -1;
    if (fscanf(f, "%lld %lld", &pages, &rss) != 2)
        rss = -1;
    fclose(f);
    return rss < 0 ? -1 : rss * sysconf(_SC_PAGESIZE);
}

static long open_fds(void)
{
    DIR *d = opendir("/proc/self/fd");
    long n = 0;
    if (d == NULL)
        return -1;
    while (readdir(d) != NULL)
        n++;
    closedir(d);
    return n - 3; /* ".", ".." and the directory itself */
}

static void on_metrics(struct evhttp_request *req, void *arg)
{
    kr_admin *a = arg;
    if (!get_only(req))
        return;
    kr_gauge_set(a->m_rss, rss_bytes());
    kr_gauge_set(a->m_fds, open_fds());
    if (a->srv->store != NULL) {
        kr_store_refresh_metrics(a->srv->store);
        kr_gauge_set(a->m_view_bytes, (int64_t)kr_store_view_bytes(a->srv->store));
    }
    kr_buf out;
    kr_buf_init(&out, KR_ADMIN_REPLY_MAX);
    if (kr_metrics_render(a->srv->metrics, &out) < 0) {
        kr_buf_free(&out);
        reply_text(req, 500, "Internal Server Error", "text/plain",
                   "the metrics do not fit in a reply\n");
        return;
    }
    struct evbuffer *b = evbuffer_new();
    if (b == NULL) {
        kr_buf_free(&out);
        send_oom(req);
        return;
    }
    evbuffer_add(b, out.data, out.len);
    kr_buf_free(&out);
    evhttp_add_header(evhttp_request_get_output_headers(req), "Content-Type",
                      "text/plain; version=0.0.4; charset=utf-8");
    send_reply(req, 200, "OK", b);
}

/* ---- the JSON API ---- */

static int authorized(kr_admin *a, struct evhttp_request *req)
{
    if (a->token == NULL)
        return 1;
    const char *h = evhttp_find_header(evhttp_request_get_input_headers(req), "Authorization");
    /* The scheme is public; the token is compared in constant time, its
     * length included (as the data port's). */
    if (h == NULL || strncmp(h, "Bearer ", 7) != 0)
        return 0;
    return kr_secret_equal(h + 7, strlen(h + 7), a->token);
}

static void json_topic(struct evbuffer *b, const kr_topic *t)
{
    /* Topic names are [A-Za-z0-9._-]: nothing to escape. */
    evbuffer_add_printf(b,
                        "{\"name\":\"%s\",\"first\":%llu,\"next\":%llu,\"bytes\":%llu,"
                        "\"keys\":%llu",
                        t->name, (unsigned long long)t->first, (unsigned long long)t->next,
                        (unsigned long long)kr_topic_bytes(t),
                        (unsigned long long)kr_topic_keys(t));
    evbuffer_add_printf(b, ",\"config\":");
    kr_admin_put_config(b, &t->cfg);
}

static void send_json(struct evhttp_request *req, struct evbuffer *b)
{
    evhttp_add_header(evhttp_request_get_output_headers(req), "Content-Type", "application/json");
    send_reply(req, 200, "OK", b);
}

void kr_admin_send_json(struct evhttp_request *req, struct evbuffer *b)
{
    send_json(req, b);
}

static void api_topics(kr_admin *a, struct evhttp_request *req)
{
    kr_topic **all;
    size_t n = kr_store_topics(a->srv->store, &all), k = 0;
    struct evbuffer *b = evbuffer_new();
    if (b == NULL) {
        send_oom(req);
        return;
    }
    evbuffer_add_printf(b, "{\"topics\":[");
    for (size_t i = 0; i < n; i++) {
        if (!all[i]->ready || all[i]->failed)
            continue;
        if (k++ > 0)
            evbuffer_add(b, ",", 1);
        json_topic(b, all[i]);
        evbuffer_add(b, "}", 1);
    }
    evbuffer_add_printf(b, "]}\n");
    send_json(req, b);
}

/* name: len bytes (a NUL decoded from %00 names no topic). */
static void no_topic(struct evhttp_request *req, const char *name, size_t len)
{
    char msg[KRAPPY_MAX_NAME_BYTES + 64];
    snprintf(msg, sizeof msg, "there is no topic named %.*s", (int)len, name);
    reply_error(req, 404, "Not Found", msg);
}

typedef struct json_groups {
    struct evbuffer *b;
    size_t n;
} json_groups;

/* One group of /api/topics/T, krappy's or the Kafka listener's. */
static void json_group(void *arg, const kr_group_row *g)
{
    json_groups *j = arg;
    if (j->n++ > 0)
        evbuffer_add(j->b, ",", 1);
    kr_admin_put_group_row(j->b, g);
}

static void api_topic(kr_admin *a, struct evhttp_request *req, kr_topic *t)
{
    struct evbuffer *b = evbuffer_new();
    if (b == NULL) {
        send_oom(req);
        return;
    }
    json_topic(b, t);
    evbuffer_add_printf(b, ",\"segments\":%zu", t->n_segs);
    if (t->cfg.v[KR_TC_CLEANUP] & KR_CLEANUP_COMPACT) {
        evbuffer_add_printf(b, ",\"compaction\":");
        kr_admin_put_compaction(b, t);
    }
    evbuffer_add_printf(b, ",\"groups\":[");
    json_groups g = {b, 0};
    kr_group_rows(a->srv, t, NULL, 0, json_group, &g);
    evbuffer_add_printf(b, "]}\n");
    send_json(req, b);
}

/* ---- values: CBOR rendered as JSON ---- */

/* Events per /events reply at most, and bytes. */
#define KR_ADMIN_EVENTS_MAX 1000
#define KR_ADMIN_SCAN_MAX   1000

/*
 * One event in delivered form as {"offset","ts","key","value","headers"?}
 * (kr_cbor_render_event_json). Whatever happens the reply stays valid
 * JSON: an event that cannot be rendered at all (out of memory) is null.
 * @return 0, or -1 when it was written as null.
 */
int kr_admin_put_event(struct evbuffer *b, const kr_event_view *v, size_t value_limit)
{
    /* No rendering needs 32 bytes of text per byte of CBOR (fuzz_cbor_text
     * holds it to that); 512 covers the member names and an error. */
    size_t in = v->key.raw_len + v->value.raw_len + (v->has_headers ? v->headers.raw_len : 0);
    kr_buf t;
    kr_buf_init(&t, in * 32 + 512);
    const kr_event_json_opts o = {value_limit, true};
    int rc = kr_cbor_render_event_json_opts(v, &o, &t);
    if (rc == 0)
        evbuffer_add(b, t.data, t.len);
    else
        evbuffer_add(b, "null", 4);
    kr_buf_free(&t);
    return rc == 0 ? 0 : -1;
}

int kr_admin_query_uint(const struct evkeyvalq *q, const char *name, uint64_t *v)
{
    const char *s = evhttp_find_header(q, name);
    if (s == NULL)
        return 0;
    char *end;
    errno = 0;
    unsigned long long n = strtoull(s, &end, 10);
    if (s[0] < '0' || s[0] > '9' || *end != '\0' || errno != 0)
        return -1;
    *v = n;
    return 1;
}

/* A key is bytes: klen counts them all, a NUL decoded from %00 included. */
static void api_key(kr_admin *a, struct evhttp_request *req, kr_topic *t, const char *key,
                    size_t klen, const struct evkeyvalq *q)
{
    kr_buf ev;
    char msg[256];
    uint64_t limit = 0;
    if (kr_admin_query_uint(q, "value_bytes", &limit) < 0) {
        reply_error(req, 400, "Bad Request",
                    "value_bytes must be a whole number (0: the whole value)");
        return;
    }
    kr_buf_init(&ev, (size_t)a->srv->cfg->max_frame);
    int rc = kr_store_get(a->srv->store, t, (const uint8_t *)key, klen, &ev, msg, sizeof msg);
    kr_cbor_item it;
    kr_event_view v;
    if (rc == 0) {
        reply_error(req, 404, "Not Found", "no value for that key (never written, or deleted)");
    } else if (rc < 0 || kr_cbor_read(ev.data, ev.len, &it) < 0 ||
               kr_event_view_read(&it, &v) < 0) {
        reply_error(req, 500, "Internal Server Error", "the stored value cannot be read");
    } else {
        struct evbuffer *b = evbuffer_new();
        if (b != NULL && kr_admin_put_event(b, &v, (size_t)limit) == 0) {
            evbuffer_add(b, "\n", 1);
            send_json(req, b);
        } else {
            if (b != NULL)
                evbuffer_free(b);
            reply_error(req, 500, "Internal Server Error", "the value cannot be rendered");
        }
    }
    kr_buf_free(&ev);
}

typedef struct scan_req {
    kr_admin *a;
    struct evhttp_request *req;
    uint64_t limit, value_bytes;
    struct evbuffer *b;
    size_t n;
} scan_req;

static int scan_entry(void *arg, const uint8_t *key, size_t klen, const uint8_t *event, size_t elen)
{
    scan_req *sr = arg;
    (void)key;
    (void)klen;
    kr_cbor_item it;
    kr_event_view v;
    if (kr_cbor_read(event, elen, &it) < 0 || kr_event_view_read(&it, &v) < 0)
        return 1;
    if (sr->n++ > 0)
        evbuffer_add(sr->b, ",", 1);
    kr_admin_put_event(sr->b, &v, (size_t)sr->value_bytes);
    return 0;
}

static void scan_ready(void *arg, kr_scan_cursor *cur, const kr_store_result *res)
{
    scan_req *sr = arg;
    kr_store *st = sr->a->srv->store;
    if (res->err != KRAPPY_OK) {
        reply_error(sr->req, 503, "Service Unavailable", res->msg);
        free(sr);
        return;
    }
    sr->b = evbuffer_new();
    bool more = false;
    char msg[256];
    if (sr->b == NULL) {
        kr_store_scan_end(st, cur);
        reply_error(sr->req, 500, "Internal Server Error", "out of memory");
        free(sr);
        return;
    }
    evbuffer_add_printf(sr->b, "{\"entries\":[");
    long n = kr_store_scan_page(st, cur, (size_t)sr->limit, scan_entry, sr, &more, msg, sizeof msg);
    evbuffer_add_printf(sr->b, "],\"snapshot\":%llu,\"more\":%s}\n",
                        (unsigned long long)kr_scan_snapshot(cur), more ? "true" : "false");
    kr_store_scan_end(st, cur);
    if (n < 0) {
        evbuffer_free(sr->b);
        reply_error(sr->req, 500, "Internal Server Error", msg);
    } else {
        send_json(sr->req, sr->b);
    }
    free(sr);
}

static void api_scan(kr_admin *a, struct evhttp_request *req, kr_topic *t,
                     const struct evkeyvalq *q)
{
    uint64_t limit = 100, value_bytes = 0;
    if (kr_admin_query_uint(q, "limit", &limit) < 0 || limit == 0 ||
        kr_admin_query_uint(q, "value_bytes", &value_bytes) < 0) {
        reply_error(req, 400, "Bad Request",
                    "limit must be a whole number, at least 1, and value_bytes a whole number");
        return;
    }
    if (limit > KR_ADMIN_SCAN_MAX)
        limit = KR_ADMIN_SCAN_MAX;
    const char *prefix = evhttp_find_header(q, "prefix");
    scan_req *sr = calloc(1, sizeof *sr);
    if (sr == NULL) {
        reply_error(req, 500, "Internal Server Error", "out of memory");
        return;
    }
    sr->a = a;
    sr->req = req;
    sr->limit = limit;
    sr->value_bytes = value_bytes;
    /* May wait for a checkpoint: the reply is sent from scan_ready. */
    kr_store_scan_start(a->srv->store, t, (const uint8_t *)(prefix ? prefix : ""),
                        prefix ? strlen(prefix) : 0, false, NULL, 0, scan_ready, sr);
}

/* The methods a path of the API takes (HEAD counts as GET); others get 405
 * naming them. @return 1 when the request's method is one. */
static int method_in(struct evhttp_request *req, int allowed, const char *allow)
{
    enum evhttp_cmd_type m = evhttp_request_get_command(req);
    if (m == EVHTTP_REQ_HEAD)
        m = EVHTTP_REQ_GET;
    if ((int)m & allowed)
        return 1;
    char msg[128];
    snprintf(msg, sizeof msg, "this path takes %s", allow);
    evhttp_add_header(evhttp_request_get_output_headers(req), "Allow", allow);
    reply_error(req, 405, "Method Not Allowed", msg);
    return 0;
}

/* GET /api/server: what the console shows in its footer. */
static void api_server(kr_admin *a, struct evhttp_request *req)
{
    struct evbuffer *b = evbuffer_new();
    if (b == NULL) {
        reply_error(req, 500, "Internal Server Error", "out of memory");
        return;
    }
    evbuffer_add_printf(b,
                        "{\"server\":\"krappyd %s\",\"protocol\":%d,\"now\":%llu,"
                        "\"max_frame\":%u,\"data_port\":%u}\n",
                        KRAPPY_VERSION, KRAPPY_PROTOCOL_VERSION, (unsigned long long)kr_wall_ms(),
                        a->srv->cfg->max_frame, a->srv->port);
    send_json(req, b);
}

/* Whether the `len` bytes at p are exactly the string s. */
static bool is(const char *p, size_t len, const char *s)
{
    return len == strlen(s) && memcmp(p, s, len) == 0;
}

/* /api/topics/T and /api/topics/T/...: keys/K, events, scan, groups/G.
 * `rest` is the decoded path after /api/topics/ (len bytes: it may hold
 * NULs decoded from %00), `raw` the same undecoded. */
static void api_topic_path(kr_admin *a, struct evhttp_request *req, const char *rest, size_t len,
                           const char *raw, const struct evkeyvalq *q)
{
    const char *slash = memchr(rest, '/', len);
    size_t nl = slash ? (size_t)(slash - rest) : len;
    if (nl == 0 || nl > KRAPPY_MAX_NAME_BYTES) {
        reply_error(req, 404, "Not Found", "no such topic");
        return;
    }
    const char *what = slash ? slash + 1 : NULL;
    size_t wl = slash ? len - nl - 1 : 0;
    if (what != NULL && is(what, wl, "events") &&
        evhttp_request_get_command(req) == EVHTTP_REQ_POST) {
        kr_admin_produce(a, req, rest, nl); /* creates the topic when missing */
        return;
    }
    if (what != NULL && is(what, wl, "config")) {
        kr_admin_topic_config(a, req, rest, nl); /* a POST creates the topic when missing */
        return;
    }
    kr_topic *t = kr_store_topic(a->srv->store, (const uint8_t *)rest, nl);
    if (what == NULL) {
        if (!method_in(req, EVHTTP_REQ_GET | EVHTTP_REQ_DELETE, "GET, HEAD, DELETE"))
            return;
        if (t == NULL)
            no_topic(req, rest, nl);
        else if (evhttp_request_get_command(req) == EVHTTP_REQ_DELETE)
            kr_admin_delete_topic(a, req, t);
        else
            api_topic(a, req, t);
        return;
    }
    if (t == NULL) {
        no_topic(req, rest, nl);
        return;
    }
    const char *raw_what = strchr(raw, '/');
    if (wl >= 7 && memcmp(what, "groups/", 7) == 0 && raw_what != NULL &&
        strncmp(raw_what + 1, "groups/", 7) == 0) {
        kr_admin_group(a, req, t, raw_what + 8);
    } else if (is(what, wl, "events")) {
        if (method_in(req, EVHTTP_REQ_GET | EVHTTP_REQ_POST, "GET, HEAD, POST"))
            kr_admin_events(a, req, t, q);
    } else if (!method_in(req, EVHTTP_REQ_GET, "GET, HEAD")) {
        /* answered */
    } else if (wl > 5 && memcmp(what, "keys/", 5) == 0) {
        api_key(a, req, t, what + 5, wl - 5, q);
    } else if (is(what, wl, "scan")) {
        api_scan(a, req, t, q);
    } else {
        reply_error(req, 404, "Not Found",
                    "no such API path; see /api/topics/T/keys/K, /events, /scan, /groups/G, "
                    "/config");
    }
}

/* Everything that is not a fixed path: /api/... */
static void on_other(struct evhttp_request *req, void *arg)
{
    kr_admin *a = arg;
    const char *uri = evhttp_request_get_uri(req);
    struct evhttp_uri *u = evhttp_uri_parse(uri);
    const char *path = u ? evhttp_uri_get_path(u) : NULL;
    size_t dl = 0; /* the decoded path's bytes: a %00 makes a NUL, not an end */
    char *dec = path ? evhttp_uridecode(path, 0, &dl) : NULL;
    bool api = dec != NULL && (strncmp(dec, "/api/", 5) == 0 || is(dec, dl, "/api"));
    if (!api && !get_only(req)) {
        /* answered */
    } else if (dec == NULL) {
        reply_error(req, 400, "Bad Request", "the request path cannot be parsed");
    } else if (!api) {
        reply_error(req, 404, "Not Found",
                    "no such path; try /, /healthz, /readyz, /metrics or /api/topics");
    } else if (!authorized(a, req)) {
        evhttp_add_header(evhttp_request_get_output_headers(req), "WWW-Authenticate", "Bearer");
        reply_error(req, 401, "Unauthorized",
                    "this API needs the header Authorization: Bearer <the --http-token>");
    } else if (a->srv->store == NULL) {
        reply_error(req, 503, "Service Unavailable",
                    "krappyd is still recovering its storage; retry in a moment (see /readyz)");
    } else if (is(dec, dl, "/api/topics") || is(dec, dl, "/api/topics/")) {
        if (method_in(req, EVHTTP_REQ_GET, "GET, HEAD"))
            api_topics(a, req);
    } else if (is(dec, dl, "/api/server")) {
        if (method_in(req, EVHTTP_REQ_GET, "GET, HEAD"))
            api_server(a, req);
    } else if (strncmp(dec, "/api/cluster", 12) == 0 && (dec[12] == '\0' || dec[12] == '/')) {
        kr_admin_cluster(a, req, dec + 12);
    } else if (strncmp(dec, "/api/topics/", 12) == 0) {
        struct evkeyvalq q;
        TAILQ_INIT(&q);
        const char *query = evhttp_uri_get_query(u);
        if (query != NULL && evhttp_parse_query_str(query, &q) < 0)
            reply_error(req, 400, "Bad Request", "the query string cannot be parsed");
        else
            api_topic_path(a, req, dec + 12, dl - 12, path + 12, &q);
        evhttp_clear_headers(&q);
    } else {
        reply_error(req, 404, "Not Found",
                    "no such API path; see /api/topics, /api/topics/T, /api/server and "
                    "/api/cluster");
    }
    free(dec);
    if (u != NULL)
        evhttp_uri_free(u);
}

kr_admin *kr_admin_start(kr_server *srv, const char *hostport, const char *token,
                         uint32_t max_conns)
{
    kr_hostport hp = {0}; /* no host: every address; the port is required */
    if (kr_hostport_parse(hostport, KR_HOSTPORT_PORT_ZERO, &hp, NULL, 0) < 0) {
        kr_log(KR_LOG_ERROR, "--http is not HOST:PORT", KR_LOG_STR("http", hostport));
        return NULL;
    }
    kr_admin *a = calloc(1, sizeof *a);
    if (a == NULL)
        return NULL;
    a->srv = srv;
    a->token = token && token[0] ? strdup(token) : NULL;
    a->max_conns = max_conns > 0 ? max_conns : 1;
    a->conns = calloc(a->max_conns, sizeof *a->conns);
    a->http = evhttp_new(srv->base);
    a->sweep = event_new(srv->base, -1, EV_PERSIST, on_sweep, a);
    struct timeval sweep_tv = {0, KR_ADMIN_SWEEP_MS * 1000};
    if (a->http == NULL || a->conns == NULL || a->sweep == NULL ||
        event_add(a->sweep, &sweep_tv) < 0)
        goto fail;
    evhttp_set_bevcb(a->http, new_conn, a);
    /* Every method reaches the handlers, which answer 405 to what is not a
     * read (evhttp alone would say 501). */
    evhttp_set_allowed_methods(a->http, EVHTTP_REQ_GET | EVHTTP_REQ_HEAD | EVHTTP_REQ_POST |
                                            EVHTTP_REQ_PUT | EVHTTP_REQ_DELETE | EVHTTP_REQ_PATCH |
                                            EVHTTP_REQ_OPTIONS);
    evhttp_set_max_headers_size(a->http, 16 * 1024);
    /* A produced event fits a frame: a body that does not cannot be one. */
    evhttp_set_max_body_size(a->http, (ev_ssize_t)srv->cfg->max_frame);
    evhttp_set_timeout(a->http, 30);
    evhttp_set_cb(a->http, "/healthz", on_healthz, a);
    evhttp_set_cb(a->http, "/readyz", on_readyz, a);
    evhttp_set_cb(a->http, "/metrics", on_metrics, a);
    evhttp_set_cb(a->http, "/", on_console, a);
    evhttp_set_cb(a->http, "/console", on_console, a);
    evhttp_set_cb(a->http, "/favicon.ico", on_favicon, a);
    evhttp_set_gencb(a->http, on_other, a);
    struct evhttp_bound_socket *bs = evhttp_bind_socket_with_handle(
        a->http, hp.host[0] ? hp.host : "0.0.0.0", (ev_uint16_t)atoi(hp.port));
    if (bs == NULL) {
        kr_log(KR_LOG_ERROR, "cannot listen on the admin port", KR_LOG_STR("http", hostport),
               KR_LOG_STR("reason", strerror(errno)));
        goto fail;
    }
    a->listener = evhttp_bound_socket_get_listener(bs);
    struct sockaddr_storage ss;
    socklen_t sl = sizeof ss;
    if (getsockname(evhttp_bound_socket_get_fd(bs), (struct sockaddr *)&ss, &sl) == 0)
        srv->http_port = ntohs(ss.ss_family == AF_INET6 ? ((struct sockaddr_in6 *)&ss)->sin6_port
                                                        : ((struct sockaddr_in *)&ss)->sin_port);
    a->m_rss = kr_gauge(srv->metrics, "krappy_process_resident_memory_bytes", NULL,
                        "Resident memory of krappyd.");
    a->m_fds = kr_gauge(srv->metrics, "krappy_process_open_fds", NULL,
                        "Open file descriptors of krappyd.");
    a->m_view_bytes = kr_gauge(srv->metrics, "krappy_view_disk_bytes", NULL,
                               "Size of the latest-value view's RocksDB files.");
    a->m_conns = kr_gauge(srv->metrics, "krappy_admin_connections", NULL,
                          "Open connections of the admin port (--http-max-connections).");
    kr_log(KR_LOG_INFO, "admin port listening", KR_LOG_STR("http", hostport),
           KR_LOG_STR("auth", a->token ? "bearer token" : "none"));
    return a;
fail:
    kr_admin_free(a);
    return NULL;
}

void kr_admin_free(kr_admin *a)
{
    if (a == NULL)
        return;
    if (a->sweep != NULL)
        event_free(a->sweep);
    if (a->http != NULL)
        evhttp_free(a->http); /* frees its connections: ours go below */
    for (uint32_t i = 0; i < a->n_conns; i++)
        bufferevent_decref(a->conns[i]);
    free(a->conns);
    free(a->token);
    free(a);
}
