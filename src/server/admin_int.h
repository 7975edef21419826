/*
 * server/admin_int.h - what the admin port's two files share (not API):
 * admin.c (the port: probes, metrics, the console, routing, topics' reads)
 * and admin_api.c (the JSON API's events, produce, deletions and seeks).
 */
#ifndef KR_SERVER_ADMIN_INT_H
#define KR_SERVER_ADMIN_INT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <event2/buffer.h>
#include <event2/http.h>
#include <event2/keyvalq_struct.h>

#include "proto/msg.h"
#include "server/admin.h"
#include "server/group_rows.h"
#include "store/store.h"

struct kr_admin {
    kr_server *srv;
    struct evhttp *http;
    struct evconnlistener *listener; /* evhttp's, paused at the cap */
    char *token;
    struct bufferevent **conns; /* each connection's, one reference ours */
    uint32_t n_conns, max_conns;
    bool paused;
    struct event *sweep;
    kr_metric *m_rss, *m_fds, *m_view_bytes, *m_up, *m_conns;
};

/* ---- admin.c ---- */

/* Answer {"error": msg} with the status. */
void kr_admin_reply_error(struct evhttp_request *req, int code, const char *reason,
                          const char *msg);

/* Answer 200 with the JSON in b (b is freed). */
void kr_admin_send_json(struct evhttp_request *req, struct evbuffer *b);

/* A query parameter as an unsigned number: 1 found (in *v), 0 absent,
 * -1 present but not a number. */
int kr_admin_query_uint(const struct evkeyvalq *q, const char *name, uint64_t *v);

/*
 * kr_admin_put_event - one delivered event as the API's JSON object
 * (kr_cbor_render_event_json_opts: header values as text when UTF-8, the
 * value cut past value_limit bytes unless 0), appended to b; an event that
 * cannot be rendered at all is null. @return 0, or -1 when written as null.
 */
int kr_admin_put_event(struct evbuffer *b, const kr_event_view *v, size_t value_limit);

/* ---- admin_api.c ---- */

/* A POST's JSON body (Content-Type: application/json required), or NULL
 * after answering why not. The bytes are the request's, len of them. */
const char *kr_admin_json_body(struct evhttp_request *req, size_t *len);

/* GET /api/topics/T/events?from|before|ts, max, prefix, value_bytes. */
void kr_admin_events(kr_admin *a, struct evhttp_request *req, kr_topic *t,
                     const struct evkeyvalq *q);

/* POST /api/topics/T/events: JSON events, one per line (the topic is made
 * when missing). `topic` is the decoded name, tlen bytes (it may hold a NUL
 * decoded from %00), not yet checked. */
void kr_admin_produce(kr_admin *a, struct evhttp_request *req, const char *topic, size_t tlen);

/* DELETE /api/topics/T. */
void kr_admin_delete_topic(kr_admin *a, struct evhttp_request *req, kr_topic *t);

/* /api/topics/T/groups/G[/seek]: `raw` is the path after "groups/", still
 * percent-encoded (a group name may hold a '/'). GET: the group with its
 * members; DELETE: delete it; POST .../seek with {"to": ...} or {"ts": MS}:
 * move its cursor. */
void kr_admin_group(kr_admin *a, struct evhttp_request *req, kr_topic *t, const char *raw);

/* One group as JSON: {"group", "cursor", "pending", "lag", "members",
 * "kind": "krappy", "member_list": [{"member", "pending", "ack"}]}. */
void kr_admin_put_group(struct evbuffer *b, const kr_tgroup *tg);

/* One row of kr_group_rows as JSON: krappy's group as kr_admin_put_group
 * puts it; a Kafka consumer group with its committed offset as "cursor",
 * "pending": 0, its live members' count and "kind": "kafka" (no
 * "member_list"). */
void kr_admin_put_group_row(struct evbuffer *b, const kr_group_row *row);

/* ---- admin_cluster.c ---- */

/* /api/cluster`rest`: "" (GET: the picture), "/members" (POST: add a node),
 * "/members/N" (DELETE: remove node N). */
void kr_admin_cluster(kr_admin *a, struct evhttp_request *req, const char *rest);

/* ---- admin_config.c ---- */

/* A topic's settings as JSON: {"cleanup": "compact", "retention_bytes": N,
 * ...}, every setting c holds. */
void kr_admin_put_config(struct evbuffer *b, const kr_topic_config *c);

/* A topic's compaction figures as JSON: {"dirty_bytes", "reclaimed_bytes",
 * "segments_rewritten", "events_removed", "ms"}. */
void kr_admin_put_compaction(struct evbuffer *b, const kr_topic *t);

/* /api/topics/T/config: GET (HEAD) answers {"topic", "config"}; POST with
 * a JSON map of settings ({"cleanup": "compact", "segment_ms": 600000})
 * changes them, durably, creating the topic when there is none, and
 * answers the same. `topic` is the decoded name, tlen bytes, not yet
 * checked. */
void kr_admin_topic_config(kr_admin *a, struct evhttp_request *req, const char *topic, size_t tlen);

#endif
