/*
 * server/admin_api.c - the admin API's paths beyond a topic's figures:
 *
 *   GET    /api/topics/T/events     a page of events: from an offset, before
 *                                   one (paging back), or from a time; only
 *                                   keys with a prefix; values cut at a byte
 *                                   limit
 *   POST   /api/topics/T/events     produce: JSON events, one per line
 *   DELETE /api/topics/T            DELETE_TOPIC
 *   GET    /api/topics/T/groups/G   a group with its members
 *   DELETE /api/topics/T/groups/G   GROUP_DELETE
 *   POST   /api/topics/T/groups/G/seek   GROUP_SEEK: {"to": "earliest" |
 *                                   "latest" | OFFSET} or {"ts": MS}
 *
 * A POST must say Content-Type: application/json: a browser sends that
 * only after a CORS preflight, which this port never grants, so a page of
 * another site cannot produce or seek through a console left open.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "proto/cbor.h"
#include "proto/json_parse.h"
#include "server/admin_int.h"
#include "server/server.h"
#include "util/json.h"
#include "util/log.h"

/* Events per /events reply at most. */
#define EVENTS_MAX 1000
/* Events one reply with a key prefix looks at, at most: a page of a rare
 * prefix costs a bounded read, and says where it stopped. */
#define EVENTS_SCAN 100000
/* Events and bytes read from the stream at a time. */
#define CHUNK_EVENTS 1000
#define CHUNK_BYTES  (4u << 20)

/* ---- small helpers ---- */

static struct evbuffer *new_body(struct evhttp_request *req)
{
    struct evbuffer *b = evbuffer_new();
    if (b == NULL)
        kr_admin_reply_error(req, 500, "Internal Server Error", "out of memory");
    return b;
}

/* A name (at most KRAPPY_MAX_NAME_BYTES) as a JSON string. */
static void put_name(struct evbuffer *b, const char *s, size_t n)
{
    char esc[KRAPPY_MAX_NAME_BYTES * KR_JSON_ESC_MAX];
    size_t w;
    kr_json_esc_mem(esc, sizeof esc, &w, s, n);
    evbuffer_add_printf(b, "\"%.*s\"", (int)w, esc);
}

const char *kr_admin_json_body(struct evhttp_request *req, size_t *len)
{
    const char *ct = evhttp_find_header(evhttp_request_get_input_headers(req), "Content-Type");
    if (ct == NULL || strncmp(ct, "application/json", 16) != 0) {
        kr_admin_reply_error(req, 415, "Unsupported Media Type",
                             "send the body as JSON with Content-Type: application/json");
        return NULL;
    }
    struct evbuffer *in = evhttp_request_get_input_buffer(req);
    *len = evbuffer_get_length(in);
    const char *p = (const char *)evbuffer_pullup(in, -1);
    if (p == NULL && *len > 0) {
        kr_admin_reply_error(req, 500, "Internal Server Error", "out of memory reading the body");
        return NULL;
    }
    return p != NULL ? p : "";
}

/* ---- GET /api/topics/T/events ---- */

/* One page being read: its filters, and what it found. */
typedef struct page {
    kr_store *s;
    kr_topic *t;
    const char *prefix;
    size_t plen;
    size_t value_limit;
    uint64_t max;
    char **items; /* rendered events, ascending */
    size_t *lens;
    uint64_t *offsets; /* theirs */
    size_t n, cap;
    uint64_t scanned;
    char msg[256];
} page;

static bool key_matches(const page *p, const kr_event_view *v)
{
    if (p->plen == 0)
        return true;
    if ((v->key.kind != KR_CBOR_TEXT && v->key.kind != KR_CBOR_BYTES) || v->key.str_len < p->plen)
        return false;
    uint8_t head[KRAPPY_MAX_KEY_BYTES];
    kr_cbor_str_copy(&v->key, head, p->plen);
    return memcmp(head, p->prefix, p->plen) == 0;
}

/* Room for one more kept event. @return 0, or -1 on ENOMEM. */
static int keep_room(page *p)
{
    size_t cap = p->cap ? p->cap * 2 : 64;
    char **it = realloc(p->items, cap * sizeof *it);
    if (it == NULL)
        return -1;
    p->items = it;
    size_t *ln = realloc(p->lens, cap * sizeof *ln);
    if (ln == NULL)
        return -1;
    p->lens = ln;
    uint64_t *of = realloc(p->offsets, cap * sizeof *of);
    if (of == NULL)
        return -1;
    p->offsets = of;
    p->cap = cap;
    return 0;
}

/* Render a matching event and keep it. @return 0, or -1 on ENOMEM. */
static int keep(page *p, const kr_event_view *v)
{
    if (p->n == p->cap && keep_room(p) < 0)
        return -1;
    struct evbuffer *b = evbuffer_new();
    if (b == NULL)
        return -1;
    kr_admin_put_event(b, v, p->value_limit);
    size_t n = evbuffer_get_length(b);
    char *copy = malloc(n);
    if (copy == NULL) {
        evbuffer_free(b);
        return -1;
    }
    evbuffer_remove(b, copy, n);
    evbuffer_free(b);
    p->items[p->n] = copy;
    p->offsets[p->n] = v->offset;
    p->lens[p->n++] = n;
    return 0;
}

/* Drop the oldest kept events beyond the newest `max`. */
static void keep_newest(page *p)
{
    if (p->n <= p->max)
        return;
    size_t drop = p->n - (size_t)p->max;
    for (size_t i = 0; i < drop; i++)
        free(p->items[i]);
    memmove(p->items, p->items + drop, (size_t)p->max * sizeof *p->items);
    memmove(p->lens, p->lens + drop, (size_t)p->max * sizeof *p->lens);
    memmove(p->offsets, p->offsets + drop, (size_t)p->max * sizeof *p->offsets);
    p->n = (size_t)p->max;
}

static void page_free(page *p)
{
    for (size_t i = 0; i < p->n; i++)
        free(p->items[i]);
    free(p->items);
    free(p->lens);
    free(p->offsets);
}

/*
 * Read the events of [from, to) in order, keeping those that match, until
 * `stop_at` are kept (0: no stop). *end gets the offset after the last one
 * looked at. A damaged batch is stepped over. @return 0, or -1 (p->msg).
 */
static int read_range(page *p, uint64_t from, uint64_t to, uint64_t stop_at, uint64_t *end)
{
    uint64_t cur = from;
    struct evbuffer *raw = evbuffer_new();
    int rc = 0;
    if (raw == NULL) {
        snprintf(p->msg, sizeof p->msg, "out of memory reading events");
        return -1;
    }
    while (cur < to && (stop_at == 0 || p->n < stop_at)) {
        kr_fetch_result r;
        uint64_t want = to - cur < CHUNK_EVENTS ? to - cur : CHUNK_EVENTS;
        krappy_err e =
            kr_store_fetch(p->s, p->t, cur, want, CHUNK_BYTES, &r, p->msg, sizeof p->msg);
        if (e == KRAPPY_E_STORAGE && r.next > cur) {
            cur = r.next; /* damaged: never served, stepped over */
            continue;
        }
        if (e != KRAPPY_OK || r.count == 0)
            break;
        evbuffer_drain(raw, evbuffer_get_length(raw));
        if (kr_store_fetch_emit(p->s, &r, raw, p->msg, sizeof p->msg) < 0) {
            rc = -1;
            break;
        }
        size_t len = evbuffer_get_length(raw);
        const uint8_t *q = evbuffer_pullup(raw, (ssize_t)len), *qend = q + len;
        while (q != NULL && q < qend && cur < to && (stop_at == 0 || p->n < stop_at)) {
            kr_cbor_item it;
            kr_event_view v;
            if (kr_cbor_read(q, (size_t)(qend - q), &it) < 0 || kr_event_view_read(&it, &v) < 0)
                break;
            q += it.raw_len;
            cur = v.offset + 1;
            p->scanned++;
            if (key_matches(p, &v) && keep(p, &v) < 0) {
                snprintf(p->msg, sizeof p->msg, "out of memory reading events");
                rc = -1;
                break;
            }
        }
        if (rc < 0 || q == NULL)
            break;
        if (cur < r.next && (stop_at == 0 || p->n < stop_at))
            cur = r.next;
    }
    evbuffer_free(raw);
    *end = cur;
    return rc;
}

/*
 * Backwards from `before`: windows read in order, newest window first,
 * keeping the newest `max` matches, until that many are kept, the topic's
 * first offset is reached or EVENTS_SCAN were looked at. Without a prefix a
 * window is the page itself. *start gets where the page before this one
 * ends: the oldest event kept when the page is full, else the lowest
 * offset looked at.
 */
static int read_back(page *p, uint64_t before, uint64_t *start)
{
    uint64_t hi = before, step = p->plen == 0 ? p->max : CHUNK_EVENTS;
    while (hi > p->t->first && p->n < p->max && p->scanned < EVENTS_SCAN) {
        uint64_t lo = hi - p->t->first > step ? hi - step : p->t->first;
        page w = *p;
        w.items = NULL;
        w.lens = NULL;
        w.offsets = NULL;
        w.n = w.cap = 0;
        uint64_t end;
        int rc = read_range(&w, lo, hi, 0, &end);
        /* This window's matches go before what was kept so far. */
        for (size_t i = 0; rc == 0 && i < p->n; i++) {
            if (w.n == w.cap && keep_room(&w) < 0) {
                rc = -1;
            } else {
                w.items[w.n] = p->items[i];
                w.lens[w.n] = p->lens[i];
                w.offsets[w.n++] = p->offsets[i];
                p->items[i] = NULL;
            }
        }
        if (rc < 0) {
            snprintf(p->msg, sizeof p->msg, "%s",
                     w.msg[0] ? w.msg : "out of memory reading events");
            page_free(&w);
            return -1;
        }
        page_free(p);
        w.msg[0] = '\0';
        *p = w;
        keep_newest(p);
        hi = lo;
    }
    *start = p->n >= p->max ? p->offsets[0] : hi;
    return 0;
}

void kr_admin_events(kr_admin *a, struct evhttp_request *req, kr_topic *t,
                     const struct evkeyvalq *q)
{
    uint64_t from = t->first, before = 0, ts = 0, max = 100, limit = 0;
    int has_from = kr_admin_query_uint(q, "from", &from);
    int has_before = kr_admin_query_uint(q, "before", &before);
    int has_ts = kr_admin_query_uint(q, "ts", &ts);
    if (has_from < 0 || has_before < 0 || has_ts < 0 || kr_admin_query_uint(q, "max", &max) < 0 ||
        max == 0 || kr_admin_query_uint(q, "value_bytes", &limit) < 0) {
        kr_admin_reply_error(req, 400, "Bad Request",
                             "from, before, ts, max and value_bytes must be whole numbers (max "
                             "at least 1)");
        return;
    }
    if (has_from + has_before + has_ts > 1) {
        kr_admin_reply_error(req, 400, "Bad Request",
                             "give one of from (an offset), before (an offset: the page before "
                             "it) and ts (a time in ms)");
        return;
    }
    page p = {.s = a->srv->store, .t = t, .value_limit = (size_t)limit};
    p.max = max > EVENTS_MAX ? EVENTS_MAX : max;
    p.prefix = evhttp_find_header(q, "prefix");
    p.plen = p.prefix != NULL ? strlen(p.prefix) : 0;
    if (p.plen > KRAPPY_MAX_KEY_BYTES) {
        kr_admin_reply_error(req, 400, "Bad Request", "prefix is longer than a key can be");
        return;
    }
    if (has_ts == 1 &&
        kr_store_offset_for_time(p.s, t, ts, &from, NULL, p.msg, sizeof p.msg) != KRAPPY_OK) {
        kr_admin_reply_error(req, 500, "Internal Server Error", p.msg);
        return;
    }
    uint64_t pos = has_before == 1 ? before : from;
    if (pos < t->first || pos > t->next) {
        snprintf(p.msg, sizeof p.msg, "%s must be between first (%llu) and next (%llu)",
                 has_before == 1 ? "before" : "from", (unsigned long long)t->first,
                 (unsigned long long)t->next);
        kr_admin_reply_error(req, 400, "Bad Request", p.msg);
        return;
    }
    uint64_t start = pos, end = pos;
    int rc;
    if (has_before == 1) {
        rc = read_back(&p, before, &start);
    } else {
        uint64_t to = p.plen > 0 && t->next - from > EVENTS_SCAN ? from + EVENTS_SCAN : t->next;
        rc = read_range(&p, from, to, p.max, &end);
    }
    struct evbuffer *b = rc == 0 ? new_body(req) : NULL;
    if (rc < 0)
        kr_admin_reply_error(req, 500, "Internal Server Error", p.msg);
    if (b == NULL) {
        page_free(&p);
        return;
    }
    evbuffer_add_printf(b, "{\"events\":[");
    for (size_t i = 0; i < p.n; i++) {
        if (i > 0)
            evbuffer_add(b, ",", 1);
        evbuffer_add(b, p.items[i], p.lens[i]);
    }
    /* The span looked at: `first` for the page before, `next` for the one
     * after (with a prefix, more than the events shown). */
    if (has_before == 1)
        end = before;
    evbuffer_add_printf(b,
                        "],\"first\":%llu,\"next\":%llu,\"scanned\":%llu,\"topic_first\":%llu,"
                        "\"topic_next\":%llu}\n",
                        (unsigned long long)start, (unsigned long long)end,
                        (unsigned long long)p.scanned, (unsigned long long)t->first,
                        (unsigned long long)t->next);
    page_free(&p);
    kr_admin_send_json(req, b);
}

/* ---- POST /api/topics/T/events ---- */

typedef struct produce_req {
    struct evhttp_request *req;
    char topic[KRAPPY_MAX_NAME_BYTES + 1];
} produce_req;

static void produced(void *arg, const kr_store_result *res)
{
    produce_req *pr = arg;
    struct evhttp_request *req = pr->req;
    if (res->err != KRAPPY_OK) {
        kr_admin_reply_error(req, 503, "Service Unavailable", res->msg);
    } else {
        struct evbuffer *b = new_body(req);
        if (b != NULL) {
            evbuffer_add_printf(b, "{\"topic\":\"%s\",\"first\":%llu,\"count\":%llu}\n", pr->topic,
                                (unsigned long long)res->first, (unsigned long long)res->count);
            kr_admin_send_json(req, b);
        }
    }
    free(pr);
}

/*
 * The body's events (one JSON object a line, as `krappy produce --json`
 * reads them) as a PUBLISH payload {events: [[key, value, ts, headers]...]}
 * in *out. @return the number of events, or -1 with why filled.
 */
static long body_to_publish(const char *body, size_t len, uint64_t max_events, kr_buf *out,
                            char *why, size_t whylen)
{
    long n = 0;
    for (size_t i = 0; i < len;) {
        const char *nl = memchr(body + i, '\n', len - i);
        size_t e = nl ? (size_t)(nl - body) : len;
        for (size_t k = i; k < e; k++)
            if (body[k] != ' ' && body[k] != '\t' && body[k] != '\r') {
                n++;
                break;
            }
        i = e + 1;
    }
    if (n == 0) {
        snprintf(why, whylen,
                 "the body holds no event: send one JSON object a line, like "
                 "{\"key\": \"k\", \"value\": 1}");
        return -1;
    }
    if ((uint64_t)n > max_events) {
        snprintf(why, whylen, "the body holds %ld events; at most %llu go in one request", n,
                 (unsigned long long)max_events);
        return -1;
    }
    kr_buf scratch;
    kr_buf_init(&scratch, len * 4 + 1024);
    kr_cbor_put_map(out, 1);
    kr_cbor_put_cstr(out, "events");
    kr_cbor_put_array(out, (uint64_t)n);
    long line = 0;
    for (size_t i = 0; i < len;) {
        const char *nl = memchr(body + i, '\n', len - i);
        size_t e = nl ? (size_t)(nl - body) : len, l = e - i;
        const char *s = body + i;
        i = e + 1;
        line++;
        while (l > 0 && (s[l - 1] == '\r' || s[l - 1] == ' ' || s[l - 1] == '\t'))
            l--;
        while (l > 0 && (s[0] == ' ' || s[0] == '\t'))
            s++, l--;
        if (l == 0)
            continue;
        kr_json_event ev;
        char w[200];
        if (kr_json_event_parse(s, l, &scratch, &ev, w, sizeof w) != KRAPPY_OK) {
            snprintf(why, whylen, "line %ld: %s", line, w);
            kr_buf_free(&scratch);
            return -1;
        }
        kr_cbor_put_array(out, ev.headers != NULL ? 4 : 3);
        if (ev.has_key && ev.key_is_bytes)
            kr_cbor_put_bytes(out, ev.key, ev.key_len);
        else if (ev.has_key)
            kr_cbor_put_text(out, (const char *)ev.key, ev.key_len);
        else
            kr_cbor_put_null(out);
        kr_cbor_put_raw(out, ev.value, ev.value_len);
        if (ev.has_ts)
            kr_cbor_put_uint(out, ev.ts);
        else
            kr_cbor_put_null(out);
        if (ev.headers != NULL)
            kr_cbor_put_raw(out, ev.headers, ev.headers_len);
    }
    kr_buf_free(&scratch);
    if (out->failed) {
        snprintf(why, whylen, "the events do not fit one frame; send fewer at a time");
        return -1;
    }
    return n;
}

void kr_admin_produce(kr_admin *a, struct evhttp_request *req, const char *topic, size_t tlen)
{
    kr_store *s = a->srv->store;
    size_t len;
    char why[300];
    if (!kr_topic_name_valid((const uint8_t *)topic, tlen)) {
        kr_admin_reply_error(req, 400, "Bad Request",
                             "a topic name is 1-249 bytes of A-Z, a-z, 0-9, '.', '_' and '-' (not "
                             ". or ..)");
        return;
    }
    const char *body = kr_admin_json_body(req, &len);
    if (body == NULL)
        return;
    kr_buf payload, scratch;
    kr_request preq;
    kr_buf_init(&payload, (size_t)a->srv->cfg->max_frame);
    kr_buf_init(&scratch, (size_t)a->srv->cfg->max_frame);
    produce_req *pr = calloc(1, sizeof *pr);
    krappy_err e = KRAPPY_E_STORAGE;
    if (pr == NULL) {
        snprintf(why, sizeof why, "out of memory");
        goto fail;
    }
    e = KRAPPY_E_INVALID_ARGUMENT;
    if (body_to_publish(body, len, a->srv->cfg->max_publish_events, &payload, why, sizeof why) < 0)
        goto fail;
    if ((e = kr_req_decode(KRAPPY_T_PUBLISH, payload.data, payload.len, &scratch, &preq, why,
                           sizeof why)) != KRAPPY_OK)
        goto fail;
    pr->req = req;
    memcpy(pr->topic, topic, tlen);
    pr->topic[tlen] = '\0';
    if (a->srv->cluster != NULL) { /* through the log (PROTOCOL.md section 8) */
        e = kr_server_cluster_produce(a->srv, topic, tlen, payload.data, payload.len, produced, pr,
                                      why, sizeof why);
        if (e != KRAPPY_OK)
            goto fail;
        kr_buf_free(&payload);
        kr_buf_free(&scratch);
        return;
    }
    kr_store_result res;
    kr_topic *t;
    if (kr_store_register(s, (const uint8_t *)topic, tlen, &t, NULL, NULL, &res) < 0) {
        snprintf(why, sizeof why, "%s", res.msg);
        e = res.err;
        goto fail;
    }
    uint64_t bad = UINT64_MAX;
    e = kr_store_publish(s, t, &preq, &scratch, false, NULL, produced, pr, why, sizeof why, &bad);
    if (e != KRAPPY_OK)
        goto fail;
    kr_buf_free(&payload);
    kr_buf_free(&scratch);
    return;
fail:
    free(pr);
    kr_buf_free(&payload);
    kr_buf_free(&scratch);
    if (e == KRAPPY_E_STORAGE || e == KRAPPY_E_BUSY)
        kr_admin_reply_error(req, 503, "Service Unavailable", why);
    else if (e == KRAPPY_E_NOT_LEADER)
        kr_admin_reply_error(req, 409, "Conflict", why);
    else
        kr_admin_reply_error(req, 400, "Bad Request", why);
}

/* ---- DELETE_TOPIC, GROUP_SEEK, GROUP_DELETE ---- */

/* What an asynchronous change answers with, once done. */
typedef struct change {
    struct evhttp_request *req;
    char topic[KRAPPY_MAX_NAME_BYTES + 1];
    char group[KRAPPY_MAX_NAME_BYTES + 1];
    size_t group_len;
    enum { CH_TOPIC, CH_SEEK, CH_GROUP } what;
} change;

static void changed(void *arg, const kr_store_result *res)
{
    change *c = arg;
    struct evhttp_request *req = c->req;
    struct evbuffer *b = res->err == KRAPPY_OK ? new_body(req) : NULL;
    if (res->err != KRAPPY_OK)
        kr_admin_reply_error(req, 503, "Service Unavailable", res->msg);
    if (b != NULL) {
        evbuffer_add_printf(b, "{\"topic\":\"%s\"", c->topic);
        if (c->what != CH_TOPIC) {
            evbuffer_add_printf(b, ",\"group\":");
            put_name(b, c->group, c->group_len);
        }
        if (c->what == CH_SEEK)
            evbuffer_add_printf(b, ",\"cursor\":%llu}\n", (unsigned long long)res->first);
        else
            evbuffer_add_printf(b, ",\"deleted\":true}\n");
        kr_admin_send_json(req, b);
    }
    free(c);
}

static change *change_new(struct evhttp_request *req, const kr_topic *t, const kr_tgroup *tg,
                          int what)
{
    change *c = calloc(1, sizeof *c);
    if (c == NULL) {
        kr_admin_reply_error(req, 500, "Internal Server Error", "out of memory");
        return NULL;
    }
    c->req = req;
    c->what = what;
    memcpy(c->topic, t->name, t->name_len + 1);
    if (tg != NULL) {
        const char *g = kr_store_group_name(tg, &c->group_len);
        memcpy(c->group, g, c->group_len + 1);
    }
    return c;
}

void kr_admin_delete_topic(kr_admin *a, struct evhttp_request *req, kr_topic *t)
{
    char msg[256];
    change *c = change_new(req, t, NULL, CH_TOPIC);
    if (c == NULL)
        return;
    if (kr_ops_delete_topic(a->srv, t, changed, c, msg, sizeof msg) != KRAPPY_OK) {
        free(c);
        kr_admin_reply_error(req, 503, "Service Unavailable", msg);
    }
}

void kr_admin_put_group(struct evbuffer *b, const kr_tgroup *tg)
{
    kr_group_stats gs;
    kr_member_stats ms[64];
    kr_store_group_stats(tg, &gs);
    size_t n = kr_store_group_members(tg, ms, sizeof ms / sizeof ms[0]);
    evbuffer_add_printf(b, "{\"group\":");
    put_name(b, gs.name, gs.name_len);
    evbuffer_add_printf(b,
                        ",\"cursor\":%llu,\"pending\":%llu,\"lag\":%llu,\"members\":%zu,"
                        "\"kind\":\"krappy\",\"member_list\":[",
                        (unsigned long long)gs.cursor, (unsigned long long)gs.pending,
                        (unsigned long long)gs.lag, gs.members);
    for (size_t i = 0; i < n && i < sizeof ms / sizeof ms[0]; i++) {
        evbuffer_add_printf(b, "%s{\"member\":", i ? "," : "");
        put_name(b, ms[i].name, ms[i].name_len);
        evbuffer_add_printf(b, ",\"pending\":%llu,\"ack\":\"%s\",\"ack_wait_ms\":%llu}",
                            (unsigned long long)ms[i].pending, ms[i].auto_ack ? "auto" : "explicit",
                            (unsigned long long)ms[i].ack_wait_ms);
    }
    evbuffer_add_printf(b, "]}");
}

void kr_admin_put_group_row(struct evbuffer *b, const kr_group_row *row)
{
    if (row->tgroup != NULL) {
        kr_admin_put_group(b, row->tgroup);
        return;
    }
    evbuffer_add_printf(b, "{\"group\":");
    put_name(b, row->name, row->name_len);
    evbuffer_add_printf(b,
                        ",\"cursor\":%llu,\"pending\":0,\"lag\":%llu,\"members\":%llu,"
                        "\"kind\":\"kafka\"}",
                        (unsigned long long)row->cursor, (unsigned long long)row->lag,
                        (unsigned long long)row->members);
}

/* {"to": "earliest" | "latest" | OFFSET} or {"ts": MS}. @return 0, or -1
 * with why filled. */
static int seek_body(const char *body, size_t len, kr_seek_kind *to, uint64_t *value, char *why,
                     size_t whylen)
{
    kr_buf cbor;
    kr_cbor_item map, x;
    int rc = -1;
    kr_buf_init(&cbor, len * 4 + 64);
    if (kr_json_to_cbor(body, len, &cbor, why, whylen) != KRAPPY_OK)
        goto out;
    snprintf(why, whylen,
             "send {\"to\": \"earliest\"}, {\"to\": \"latest\"}, {\"to\": OFFSET} or "
             "{\"ts\": MS}");
    if (kr_cbor_read_exact(cbor.data, cbor.len, &map) < 0 || map.kind != KR_CBOR_MAP)
        goto out;
    bool has_to = kr_cbor_map_find(&map, "to", &x) == 1;
    if (has_to && x.kind == KR_CBOR_UINT) {
        *to = KR_SEEK_OFFSET;
        *value = x.u;
    } else if (has_to && kr_cbor_text_eq(&x, "earliest")) {
        *to = KR_SEEK_EARLIEST;
    } else if (has_to && kr_cbor_text_eq(&x, "latest")) {
        *to = KR_SEEK_LATEST;
    } else if (!has_to && kr_cbor_map_find(&map, "ts", &x) == 1 && x.kind == KR_CBOR_UINT) {
        *to = KR_SEEK_TIME;
        *value = x.u;
    } else {
        goto out;
    }
    rc = 0;
out:
    kr_buf_free(&cbor);
    return rc;
}

static void group_seek(kr_admin *a, struct evhttp_request *req, kr_tgroup *tg)
{
    size_t len;
    char msg[300];
    kr_seek_kind to = KR_SEEK_EARLIEST;
    uint64_t value = 0;
    const char *body = kr_admin_json_body(req, &len);
    if (body == NULL)
        return;
    if (seek_body(body, len, &to, &value, msg, sizeof msg) < 0) {
        kr_admin_reply_error(req, 400, "Bad Request", msg);
        return;
    }
    change *c = change_new(req, tg->t, tg, CH_SEEK);
    if (c == NULL)
        return;
    krappy_err e = kr_ops_group_seek(a->srv, tg, to, value, changed, c, msg, sizeof msg);
    if (e != KRAPPY_OK) {
        free(c);
        kr_admin_reply_error(
            req, e == KRAPPY_E_OFFSET_OUT_OF_RANGE ? 400 : 503,
            e == KRAPPY_E_OFFSET_OUT_OF_RANGE ? "Bad Request" : "Service Unavailable", msg);
    }
}

void kr_admin_group(kr_admin *a, struct evhttp_request *req, kr_topic *t, const char *raw)
{
    size_t rl = strlen(raw);
    bool seek = rl > 5 && strcmp(raw + rl - 5, "/seek") == 0;
    char enc[KRAPPY_MAX_NAME_BYTES * 3 + 1];
    size_t el = seek ? rl - 5 : rl, glen = 0;
    if (el == 0 || el >= sizeof enc) {
        kr_admin_reply_error(req, 404, "Not Found", "no such group");
        return;
    }
    memcpy(enc, raw, el);
    enc[el] = '\0';
    char *name = evhttp_uridecode(enc, 0, &glen);
    kr_tgroup *tg = name ? kr_store_group(t, (const uint8_t *)name, glen) : NULL;
    enum evhttp_cmd_type m = evhttp_request_get_command(req);
    char msg[KRAPPY_MAX_NAME_BYTES * 2 + 64];
    if (tg == NULL) {
        snprintf(msg, sizeof msg, "topic %s has no group %.*s", t->name, (int)glen,
                 name ? name : "");
        kr_admin_reply_error(req, 404, "Not Found", msg);
    } else if (seek && m == EVHTTP_REQ_POST) {
        group_seek(a, req, tg);
    } else if (seek) {
        evhttp_add_header(evhttp_request_get_output_headers(req), "Allow", "POST");
        kr_admin_reply_error(req, 405, "Method Not Allowed", "seek takes POST");
    } else if (m == EVHTTP_REQ_DELETE) {
        change *c = change_new(req, t, tg, CH_GROUP);
        if (c != NULL &&
            kr_ops_group_delete(a->srv, tg, changed, c, msg, sizeof msg) != KRAPPY_OK) {
            free(c);
            kr_admin_reply_error(req, 503, "Service Unavailable", msg);
        }
    } else if (m == EVHTTP_REQ_GET || m == EVHTTP_REQ_HEAD) {
        struct evbuffer *b = new_body(req);
        if (b != NULL) {
            kr_admin_put_group(b, tg);
            evbuffer_add(b, "\n", 1);
            kr_admin_send_json(req, b);
        }
    } else {
        evhttp_add_header(evhttp_request_get_output_headers(req), "Allow", "GET, HEAD, DELETE");
        kr_admin_reply_error(req, 405, "Method Not Allowed", "this path takes GET, HEAD, DELETE");
    }
    free(name);
}
