/*
 * server/admin_config.c - the admin API's topic settings (PROTOCOL.md
 * section 9, TOPIC_CONFIG):
 *
 *   GET  /api/topics/T/config   {"topic", "config": {"cleanup", ...}}
 *   POST /api/topics/T/config   change the settings the JSON map names
 *                               (creating the topic when there is none),
 *                               durably; answers as GET
 *
 * The JSON map is the TOPIC_CONFIG `set` map, so the same names, values
 * and refusals apply (kr_tc_decode).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "proto/json_parse.h"
#include "server/admin_int.h"
#include "server/server.h"
#include "store/compact.h"
#include "store/topic_config.h"

void kr_admin_put_config(struct evbuffer *b, const kr_topic_config *c)
{
    int k = 0;
    evbuffer_add(b, "{", 1);
    for (int i = 0; i < KR_TC_N; i++) {
        if (!((c->mask >> i) & 1u))
            continue;
        evbuffer_add_printf(b, "%s\"%s\":", k++ ? "," : "", kr_tc_name(i));
        if (i == KR_TC_CLEANUP)
            evbuffer_add_printf(b, "\"%s\"", kr_cleanup_name(c->v[i]));
        else
            evbuffer_add_printf(b, "%llu", (unsigned long long)c->v[i]);
    }
    evbuffer_add(b, "}", 1);
}

void kr_admin_put_compaction(struct evbuffer *b, const kr_topic *t)
{
    kr_compact_stats cs;
    kr_compact_topic_stats(t, &cs);
    evbuffer_add_printf(b,
                        "{\"dirty_bytes\":%llu,\"reclaimed_bytes\":%llu,"
                        "\"segments_rewritten\":%llu,\"events_removed\":%llu,\"ms\":%llu}",
                        (unsigned long long)cs.dirty_bytes, (unsigned long long)cs.reclaimed_bytes,
                        (unsigned long long)cs.segments_rewritten,
                        (unsigned long long)cs.events_removed,
                        (unsigned long long)(cs.ns / 1000000));
}

/* {"topic": T, "config": {...}} of the topic now. */
static void send_config(struct evhttp_request *req, const kr_topic *t)
{
    struct evbuffer *b = evbuffer_new();
    if (b == NULL) {
        kr_admin_reply_error(req, 500, "Internal Server Error", "out of memory");
        return;
    }
    /* Topic names are [A-Za-z0-9._-]: nothing to escape. */
    evbuffer_add_printf(b, "{\"topic\":\"%s\",\"config\":", t->name);
    kr_admin_put_config(b, &t->cfg);
    evbuffer_add_printf(b, "}\n");
    kr_admin_send_json(req, b);
}

/* A change in flight: the request and the topic's name. */
typedef struct config_change {
    struct evhttp_request *req;
    kr_store *store;
    size_t len;
    char name[KRAPPY_MAX_NAME_BYTES + 1];
} config_change;

static void config_written(void *arg, const kr_store_result *res)
{
    config_change *cc = arg;
    kr_topic *t = res->err == KRAPPY_OK
                      ? kr_store_topic(cc->store, (const uint8_t *)cc->name, cc->len)
                      : NULL;
    if (res->err != KRAPPY_OK)
        kr_admin_reply_error(cc->req, 503, "Service Unavailable", res->msg);
    else if (t == NULL)
        kr_admin_reply_error(cc->req, 404, "Not Found",
                             "the topic was deleted while its settings were being written");
    else
        send_config(cc->req, t);
    free(cc);
}

/* The JSON body as settings. @return 0, or -1 with why filled. */
static int parse_settings(const char *body, size_t len, kr_topic_config *set, char *why,
                          size_t whylen)
{
    kr_buf cbor;
    kr_cbor_item map;
    int rc = -1;
    kr_buf_init(&cbor, len * 4 + 64);
    if (kr_json_to_cbor(body, len, &cbor, why, whylen) != KRAPPY_OK)
        goto out;
    if (kr_cbor_read_exact(cbor.data, cbor.len, &map) < 0 || map.kind != KR_CBOR_MAP) {
        snprintf(why, whylen,
                 "send a JSON object of settings, e.g. {\"cleanup\": \"compact\", "
                 "\"segment_ms\": 600000}");
        goto out;
    }
    if (kr_tc_decode(&map, true, set, why, whylen) != KRAPPY_OK)
        goto out;
    if ((set->mask | set->reset) == 0) {
        snprintf(why, whylen, "the JSON object names no setting to change");
        goto out;
    }
    rc = 0;
out:
    kr_buf_free(&cbor);
    return rc;
}

static void change_config(kr_admin *a, struct evhttp_request *req, const char *topic, size_t tlen)
{
    size_t len;
    char why[300];
    kr_topic_config set;
    const char *body = kr_admin_json_body(req, &len);
    if (body == NULL)
        return;
    if (parse_settings(body, len, &set, why, sizeof why) < 0) {
        kr_admin_reply_error(req, 400, "Bad Request", why);
        return;
    }
    config_change *cc = calloc(1, sizeof *cc);
    if (cc == NULL) {
        kr_admin_reply_error(req, 500, "Internal Server Error", "out of memory");
        return;
    }
    cc->req = req;
    cc->store = a->srv->store;
    cc->len = tlen;
    memcpy(cc->name, topic, tlen);
    kr_topic *t;
    krappy_err e = kr_ops_topic_configure(a->srv, (const uint8_t *)topic, tlen, &set, &t,
                                          config_written, cc, why, sizeof why);
    if (e != KRAPPY_OK) {
        free(cc);
        kr_admin_reply_error(req, 503, "Service Unavailable", why);
    }
}

void kr_admin_topic_config(kr_admin *a, struct evhttp_request *req, const char *topic, size_t tlen)
{
    char msg[KRAPPY_MAX_NAME_BYTES + 96];
    if (!kr_topic_name_valid((const uint8_t *)topic, tlen)) {
        snprintf(msg, sizeof msg,
                 "'%.*s' is not a topic name: 1-249 bytes of [A-Za-z0-9._-], not . or ..",
                 (int)(tlen < 249 ? tlen : 249), topic);
        kr_admin_reply_error(req, 400, "Bad Request", msg);
        return;
    }
    enum evhttp_cmd_type m = evhttp_request_get_command(req);
    if (m == EVHTTP_REQ_POST) {
        change_config(a, req, topic, tlen);
        return;
    }
    if (m != EVHTTP_REQ_GET && m != EVHTTP_REQ_HEAD) {
        evhttp_add_header(evhttp_request_get_output_headers(req), "Allow", "GET, HEAD, POST");
        kr_admin_reply_error(req, 405, "Method Not Allowed", "this path takes GET, HEAD, POST");
        return;
    }
    kr_topic *t = kr_store_topic(a->srv->store, (const uint8_t *)topic, tlen);
    if (t == NULL) {
        snprintf(msg, sizeof msg, "there is no topic named %.*s", (int)tlen, topic);
        kr_admin_reply_error(req, 404, "Not Found", msg);
        return;
    }
    send_config(req, t);
}
