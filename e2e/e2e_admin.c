/*
 * e2e/e2e_admin.c - the HTTP admin port of a real krappyd: probes (also
 * while storage is still recovering), metrics
 * parsed and checked by value after a produce and a consume, the JSON API,
 * bad paths and methods, the bearer token.
 */
#include <poll.h>
#include <pthread.h>
#include <stdbool.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cmocka.h>

#include "conn.h"
#include "harness.h"

/* One HTTP/1.0 request to the admin port, with a request body of type
 * ctype when `send` is not NULL: the whole response (headers and body,
 * NUL-terminated) in resp. @return its length, or -1 when the port does
 * not take the connection. */
static long http_raw(const e2e_server *s, const char *method, const char *path, const char *auth,
                     const char *ctype, const char *send, char *resp, size_t resplen)
{
    e2e_server h = *s;
    snprintf(h.port, sizeof h.port, "%s", s->http_port);
    int fd = e2e_connect(&h);
    if (fd < 0)
        return -1;
    char req[1024], len[64] = "";
    if (send != NULL)
        snprintf(len, sizeof len, "Content-Length: %zu\r\n", strlen(send));
    int n =
        snprintf(req, sizeof req, "%s %s HTTP/1.0\r\nHost: 127.0.0.1\r\n%s%s%s%s%s%s%s\r\n", method,
                 path, auth ? "Authorization: Bearer " : "", auth ? auth : "", auth ? "\r\n" : "",
                 ctype ? "Content-Type: " : "", ctype ? ctype : "", ctype ? "\r\n" : "", len);
    assert_int_equal(e2e_send_all(fd, req, (size_t)n), 0);
    if (send != NULL)
        assert_int_equal(e2e_send_all(fd, send, strlen(send)), 0);
    size_t got = 0;
    for (;;) {
        struct pollfd p = {fd, POLLIN, 0};
        assert_true(poll(&p, 1, 5000) == 1);
        ssize_t r = recv(fd, resp + got, resplen - 1 - got, 0);
        if (r <= 0)
            break;
        got += (size_t)r;
    }
    close(fd);
    resp[got] = '\0';
    return (long)got;
}

/* One HTTP/1.0 request to the admin port, with a request body of type
 * ctype when `send` is not NULL. @return the status code, with the body
 * (NUL-terminated) in body, or -1 when the port does not take the
 * connection. */
static int http_send(const e2e_server *s, const char *method, const char *path, const char *auth,
                     const char *ctype, const char *send, char *body, size_t bodylen)
{
    static char resp[1 << 20];
    if (http_raw(s, method, path, auth, ctype, send, resp, sizeof resp) < 0)
        return -1;
    int code = 0;
    assert_int_equal(sscanf(resp, "HTTP/1.%*d %d", &code), 1);
    const char *b = strstr(resp, "\r\n\r\n");
    snprintf(body, bodylen, "%s", b ? b + 4 : "");
    return code;
}

static int http_try(const e2e_server *s, const char *method, const char *path, const char *auth,
                    char *body, size_t bodylen)
{
    return http_send(s, method, path, auth, NULL, NULL, body, bodylen);
}

/* Like http_try, and the port must be open. */
static int http(const e2e_server *s, const char *method, const char *path, const char *auth,
                char *body, size_t bodylen)
{
    int code = http_try(s, method, path, auth, body, bodylen);
    assert_true(code >= 0);
    return code;
}

/* The value of a metric line "NAME{LABELS} VALUE" (or "NAME VALUE"). */
static double metric(const char *text, const char *series)
{
    size_t n = strlen(series);
    for (const char *p = text; p && *p; p = strchr(p, '\n') ? strchr(p, '\n') + 1 : NULL) {
        if (strncmp(p, series, n) == 0 && p[n] == ' ')
            return atof(p + n + 1);
    }
    fail_msg("no metric %s", series);
    return 0;
}

static void test_probes_and_shutdown(void **state)
{
    (void)state;
    e2e_server s;
    assert_int_equal(e2e_start(&s, NULL), 0);
    static char body[1 << 20];
    assert_int_equal(http(&s, "GET", "/healthz", NULL, body, sizeof body), 200);
    assert_int_equal(http(&s, "GET", "/readyz", NULL, body, sizeof body), 200);
    assert_string_equal(body, "ready\n");
    assert_int_equal(e2e_stop(&s, 10000), 0);
}

struct starter {
    e2e_server *s;
    const char *const *args;
    int rc;
};

static void *restart_thread(void *arg)
{
    struct starter *st = arg;
    st->rc = e2e_restart(st->s, st->args);
    return NULL;
}

/*
 * The probes while storage opens. The LD_PRELOAD shim stalls RocksDB's
 * first file creation under view/ for 1.5 s, a slow disk during recovery:
 * meanwhile /healthz says 200, /readyz 503 with the reason and /api 503;
 * then /readyz turns 200 and the data is there.
 */
static void test_probes_during_recovery(void **state)
{
    (void)state;
    const char *shim = getenv("KRAPPY_SHIM");
    if (shim == NULL || access(shim, R_OK) != 0) {
        printf("e2e_admin: no shim (KRAPPY_SHIM); recovery probe test skipped\n");
        skip();
    }
    e2e_server s;
    assert_int_equal(e2e_start(&s, NULL), 0);
    conn p;
    conn_open(&p, &s);
    assert_int_equal(conn_register(&p, "rec"), 0);
    conn_close(&p);
    assert_int_equal(e2e_stop_keep(&s, 10000), 0);

    /* Same admin port again, so it can be probed before the port file. */
    e2e_server probe = s;
    char httparg[64];
    snprintf(httparg, sizeof httparg, "127.0.0.1:%s", s.http_port);
    assert_int_equal(e2e_shim_faults(&s, "open /view/ DELAY ms=1500 times=1\n"), 0);
    assert_int_equal(e2e_shim_on(&s), 0);

    const char *args[] = {"--http", httparg, NULL};
    struct starter st = {.s = &s, .args = args, .rc = -1};
    pthread_t th;
    assert_int_equal(e2e_thread_start(&th, restart_thread, &st), 0);
    static char body[1 << 20];
    bool saw_recovering = false, saw_ready = false;
    uint64_t deadline = e2e_now_ms() + 15000;
    while (!saw_ready && e2e_now_ms() < deadline) {
        int code = http_try(&probe, "GET", "/readyz", NULL, body, sizeof body);
        if (code == 503 && !saw_recovering) {
            assert_non_null(strstr(body, "recovering"));
            assert_int_equal(http(&probe, "GET", "/healthz", NULL, body, sizeof body), 200);
            assert_int_equal(http(&probe, "GET", "/api/topics", NULL, body, sizeof body), 503);
            assert_non_null(strstr(body, "\"error\""));
            assert_int_equal(http(&probe, "GET", "/metrics", NULL, body, sizeof body), 200);
            saw_recovering = true;
        }
        saw_ready = code == 200;
        if (!saw_ready)
            usleep(20000);
    }
    e2e_thread_join(th);
    e2e_shim_off();
    assert_int_equal(st.rc, 0);
    assert_true(saw_recovering);
    assert_true(saw_ready);
    assert_int_equal(http(&s, "GET", "/api/topics/rec", NULL, body, sizeof body), 200);
    assert_int_equal(e2e_stop(&s, 10000), 0);
}

static void test_metrics_follow_traffic(void **state)
{
    (void)state;
    e2e_server s;
    assert_int_equal(e2e_start(&s, NULL), 0);
    static char body[1 << 20];
    assert_int_equal(http(&s, "GET", "/metrics", NULL, body, sizeof body), 200);
    double pubs0 = metric(body, "krappy_requests_total{type=\"PUBLISH\"}");
    assert_true(metric(body, "krappy_process_resident_memory_bytes") > 0);
    assert_true(metric(body, "krappy_process_open_fds") > 0);
    assert_non_null(strstr(body, "# TYPE krappy_request_duration_seconds histogram"));

    conn p;
    conn_open(&p, &s);
    assert_int_equal(conn_register(&p, "mt"), 0);
    kr_event_out_spec ev[3] = {{.key = "a",
                                .key_len = 1,
                                .key_is_text = true,
                                .value = (const uint8_t *)"\x61x",
                                .value_len = 2},
                               {.key = "b",
                                .key_len = 1,
                                .key_is_text = true,
                                .value = (const uint8_t *)"\x61y",
                                .value_len = 2},
                               {.key = "a",
                                .key_len = 1,
                                .key_is_text = true,
                                .value = (const uint8_t *)"\x61z",
                                .value_len = 2}};
    kr_buf_reset(&p.b);
    kr_enc_publish(&p.b, (kr_cid){0}, KR_ACK_SYNC, ev, 3);
    assert_int_equal(conn_call(&p, KRAPPY_T_PUBLISH), 0);
    kr_buf_reset(&p.b);
    kr_enc_consumer_register(&p.b, (kr_cid){0}, "mt", "g", "m", KR_START_EARLIEST, 0,
                             KR_CACK_EXPLICIT, 30000);
    assert_int_equal(conn_call(&p, KRAPPY_T_CONSUMER_REGISTER), 0);
    kr_buf_reset(&p.b);
    kr_enc_poll(&p.b, (kr_cid){0}, 2, 0, 1u << 20);
    assert_int_equal(conn_call(&p, KRAPPY_T_POLL), 0);
    kr_buf_reset(&p.b);
    kr_enc_ack_upto(&p.b, (kr_cid){0}, 2);
    assert_int_equal(conn_call(&p, KRAPPY_T_ACK), 0);

    assert_int_equal(http(&s, "GET", "/metrics", NULL, body, sizeof body), 200);
    assert_true(metric(body, "krappy_requests_total{type=\"PUBLISH\"}") == pubs0 + 1);
    assert_true(metric(body, "krappy_topic_events_in_total{topic=\"mt\"}") == 3);
    assert_true(metric(body, "krappy_topic_events_out_total{topic=\"mt\"}") == 2);
    assert_true(metric(body, "krappy_group_cursor{topic=\"mt\",group=\"g\"}") == 2);
    assert_true(metric(body, "krappy_group_lag{topic=\"mt\",group=\"g\"}") == 1);
    assert_true(metric(body, "krappy_group_members{topic=\"mt\",group=\"g\"}") == 1);
    assert_true(metric(body, "krappy_topic_segments{topic=\"mt\"}") == 1);
    assert_true(metric(body, "krappy_stream_fsyncs_total") >= 1);
    /* Group-commit sizes: one observation per writer round (the writer may
     * run a checkpoint round while this renders, so no exact equalities). */
    assert_true(metric(body, "krappy_writer_round_jobs_count") >= 1);
    assert_true(metric(body, "krappy_writer_round_jobs_sum") >= 1);
    assert_true(metric(body, "krappy_writer_round_jobs_bucket{le=\"+Inf\"}") ==
                metric(body, "krappy_writer_round_jobs_count"));
    assert_true(metric(body, "krappy_connections") >= 1);
    /* docs/METRICS.md lists every family served (run from the repo root). */
    char undocumented[128];
    if (e2e_metric_undocumented(body, undocumented, sizeof undocumented))
        fail_msg("docs/METRICS.md does not list %s", undocumented);
    conn_close(&p);
    assert_int_equal(e2e_stop(&s, 10000), 0);
}

static void test_api_and_errors(void **state)
{
    (void)state;
    e2e_server s;
    const char *args[] = {"--http-token", "t0k3n", NULL};
    assert_int_equal(e2e_start(&s, args), 0);
    conn p;
    conn_open(&p, &s);
    assert_int_equal(conn_register(&p, "api"), 0);
    kr_event_out_spec ev[2] = {{.key = "fruit",
                                .key_len = 5,
                                .key_is_text = true,
                                .value = (const uint8_t *)"\x65"
                                                          "apple",
                                .value_len = 6},
                               {.key = "n",
                                .key_len = 1,
                                .key_is_text = true,
                                .value = (const uint8_t *)"\x82\x01\xf5",
                                .value_len = 3}};
    kr_buf_reset(&p.b);
    kr_enc_publish(&p.b, (kr_cid){0}, KR_ACK_SYNC, ev, 2);
    assert_int_equal(conn_call(&p, KRAPPY_T_PUBLISH), 0);
    conn_close(&p);
    static char body[1 << 20];
    /* The token guards /api; probes and metrics stay open. */
    assert_int_equal(http(&s, "GET", "/api/topics", NULL, body, sizeof body), 401);
    assert_non_null(strstr(body, "Authorization"));
    assert_int_equal(http(&s, "GET", "/api/topics", "wrong", body, sizeof body), 401);
    assert_int_equal(http(&s, "GET", "/api/topics", "t0k3", body, sizeof body), 401);
    assert_int_equal(http(&s, "GET", "/api/topics", "t0k3nn", body, sizeof body), 401);
    assert_int_equal(http(&s, "GET", "/api/topics", "", body, sizeof body), 401);
    assert_int_equal(http(&s, "GET", "/healthz", NULL, body, sizeof body), 200);
    assert_int_equal(http(&s, "GET", "/metrics", NULL, body, sizeof body), 200);
    /* The console page itself loads; its API calls carry the token. */
    assert_int_equal(http(&s, "GET", "/", NULL, body, sizeof body), 200);
    assert_non_null(strstr(body, "<html"));
    assert_non_null(strstr(body, "/api/topics"));
    /* With it: the topic produced through the data port. */
    assert_int_equal(http(&s, "GET", "/api/topics", "t0k3n", body, sizeof body), 200);
    assert_non_null(strstr(body, "\"name\":\"api\""));
    assert_int_equal(http(&s, "GET", "/api/topics/api", "t0k3n", body, sizeof body), 200);
    assert_non_null(strstr(body, "\"next\":2"));
    assert_non_null(strstr(body, "\"groups\":[]"));
    /* Values produced through the data port, CBOR shown as JSON. */
    assert_int_equal(http(&s, "GET", "/api/topics/api/keys/fruit", "t0k3n", body, sizeof body),
                     200);
    assert_non_null(strstr(body, "\"value\":\"apple\""));
    assert_int_equal(http(&s, "GET", "/api/topics/api/keys/n", "t0k3n", body, sizeof body), 200);
    assert_non_null(strstr(body, "\"value\":[1,true]"));
    assert_int_equal(http(&s, "GET", "/api/topics/api/keys/none", "t0k3n", body, sizeof body), 404);
    assert_int_equal(
        http(&s, "GET", "/api/topics/api/events?from=0&max=10", "t0k3n", body, sizeof body), 200);
    assert_non_null(strstr(body, "\"next\":2"));
    assert_non_null(strstr(body, "\"key\":\"fruit\""));
    assert_int_equal(
        http(&s, "GET", "/api/topics/api/scan?prefix=fr&limit=10", "t0k3n", body, sizeof body),
        200);
    assert_non_null(strstr(body, "\"key\":\"fruit\""));
    assert_null(strstr(body, "\"key\":\"n\""));
    assert_int_equal(http(&s, "GET", "/api/topics/api/events?from=x", "t0k3n", body, sizeof body),
                     400);
    assert_int_equal(http(&s, "GET", "/api/topics/api/events?from=99", "t0k3n", body, sizeof body),
                     400);
    assert_int_equal(http(&s, "GET", "/api/topics/api/scan?limit=0", "t0k3n", body, sizeof body),
                     400);
    /* Bad input: 4xx with a JSON error. */
    assert_int_equal(http(&s, "GET", "/api/topics/nope", "t0k3n", body, sizeof body), 404);
    assert_non_null(strstr(body, "\"error\""));
    assert_int_equal(http(&s, "GET", "/nonsense", NULL, body, sizeof body), 404);
    assert_int_equal(http(&s, "POST", "/api/topics", "t0k3n", body, sizeof body), 405);
    assert_int_equal(e2e_stop(&s, 10000), 0);
}

/* The body is one JSON value (read by libkrappy's JSON reader). */
static void assert_json(const char *body, const char *what)
{
    uint8_t *cbor = NULL;
    size_t n = 0;
    char why[200];
    if (krappy_json_to_cbor(body, strlen(body), &cbor, &n, why, sizeof why) != KRAPPY_OK)
        fail_msg("%s: not JSON (%s): %.300s", what, why, body);
    krappy_free(cbor);
}

/* A value nested deeper than the renderer goes is served as null with an
 * "error" member: the reply stays JSON (it once ended "value":]). */
static void test_api_values_nested_too_deep(void **state)
{
    (void)state;
    e2e_server s;
    assert_int_equal(e2e_start(&s, NULL), 0);
    conn p;
    conn_open(&p, &s);
    assert_int_equal(conn_register(&p, "deep"), 0);
    static uint8_t deep[80];
    memset(deep, 0x81, sizeof deep - 1); /* 79 arrays around 0 */
    deep[sizeof deep - 1] = 0x00;
    kr_event_out_spec ev[2] = {
        {.key = "d", .key_len = 1, .key_is_text = true, .value = deep, .value_len = sizeof deep},
        {.key = "ok",
         .key_len = 2,
         .key_is_text = true,
         .value = (const uint8_t *)"\x07",
         .value_len = 1}};
    kr_buf_reset(&p.b);
    kr_enc_publish(&p.b, (kr_cid){0}, KR_ACK_SYNC, ev, 2);
    assert_int_equal(conn_call(&p, KRAPPY_T_PUBLISH), 0);
    conn_close(&p);
    static char body[1 << 20];
    const char *paths[] = {"/api/topics/deep/events?from=0&max=10", "/api/topics/deep/keys/d",
                           "/api/topics/deep/scan?limit=10"};
    for (size_t i = 0; i < sizeof paths / sizeof paths[0]; i++) {
        assert_int_equal(http(&s, "GET", paths[i], NULL, body, sizeof body), 200);
        assert_json(body, paths[i]);
        assert_non_null(strstr(body, "\"value\":null,\"error\":\"the value nests deeper"));
    }
    assert_non_null(strstr(body, "\"key\":\"ok\",\"value\":7")); /* the scan goes on */
    assert_int_equal(e2e_stop(&s, 10000), 0);
}

/* A POST of JSON to the API (with the token). */
static int post_json(const e2e_server *s, const char *path, const char *json, char *body,
                     size_t bodylen)
{
    int code = http_send(s, "POST", path, "t0k3n", "application/json", json, body, bodylen);
    assert_true(code >= 0);
    return code;
}

/*
 * The API's writes and the console's reads: produce (JSON lines, the topic
 * made), pages of events forwards, backwards, from a time and by key
 * prefix with values cut at a byte limit and headers as text; a group's
 * members; seek and delete a group; delete a topic. A POST gets its errors
 * in JSON, a method a path does not take 405 naming the ones it does.
 */
static void test_api_writes_and_pages(void **state)
{
    (void)state;
    e2e_server s;
    const char *args[] = {"--http-token", "t0k3n", NULL};
    assert_int_equal(e2e_start(&s, args), 0);
    static char body[1 << 20], lines[1 << 16];
    size_t w = 0;
    for (int i = 0; i < 30; i++)
        w += (size_t)snprintf(lines + w, sizeof lines - w,
                              "{\"key\":\"%s-%d\",\"value\":{\"n\":%d},\"ts\":%d,"
                              "\"headers\":{\"h\":\"x%d\",\"b\":{\"hex\":\"00ff\"}}}\n",
                              i % 3 == 0 ? "red" : "blue", i, i, 1000 + i * 10, i);
    assert_int_equal(post_json(&s, "/api/topics/web/events", lines, body, sizeof body), 200);
    assert_non_null(strstr(body, "\"first\":0,\"count\":30"));
    w = (size_t)snprintf(lines, sizeof lines, "{\"key\":\"big\",\"value\":\"");
    memset(lines + w, 'z', 5000);
    snprintf(lines + w + 5000, sizeof lines - w - 5000, "\"}");
    assert_int_equal(post_json(&s, "/api/topics/web/events", lines, body, sizeof body), 200);

    /* Pages: the newest 5 (before next), the 5 before them, from a time. */
    assert_int_equal(
        http(&s, "GET", "/api/topics/web/events?before=31&max=5", "t0k3n", body, sizeof body), 200);
    assert_non_null(strstr(body, "\"offset\":26,"));
    assert_null(strstr(body, "\"offset\":25,"));
    assert_non_null(strstr(body, "\"first\":26,\"next\":31"));
    assert_non_null(strstr(body, "\"headers\":{\"h\":\"x29\",\"b\":{\"base64url\":\"AP8\"}}"));
    assert_int_equal(
        http(&s, "GET", "/api/topics/web/events?before=26&max=5", "t0k3n", body, sizeof body), 200);
    assert_non_null(strstr(body, "\"offset\":21,"));
    assert_non_null(strstr(body, "\"first\":21,\"next\":26"));
    assert_int_equal(
        http(&s, "GET", "/api/topics/web/events?ts=1055&max=2", "t0k3n", body, sizeof body), 200);
    assert_non_null(strstr(body, "{\"offset\":6,"));
    assert_null(strstr(body, "\"offset\":5,"));
    /* A key prefix, forwards and backwards. */
    assert_int_equal(
        http(&s, "GET", "/api/topics/web/events?prefix=red&max=3", "t0k3n", body, sizeof body),
        200);
    assert_non_null(strstr(body, "\"key\":\"red-0\""));
    assert_non_null(strstr(body, "\"key\":\"red-6\""));
    assert_null(strstr(body, "blue"));
    assert_non_null(strstr(body, "\"next\":7"));
    assert_int_equal(http(&s, "GET", "/api/topics/web/events?prefix=red&before=31&max=2", "t0k3n",
                          body, sizeof body),
                     200);
    assert_non_null(strstr(body, "\"key\":\"red-24\""));
    assert_non_null(strstr(body, "\"key\":\"red-27\""));
    assert_non_null(strstr(body, "\"first\":24"));
    /* A long value cut at value_bytes, whole without. */
    assert_int_equal(http(&s, "GET", "/api/topics/web/events?from=30&value_bytes=100", "t0k3n",
                          body, sizeof body),
                     200);
    assert_non_null(strstr(body, "\"value_truncated\":true,\"value_bytes\":5003"));
    assert_true(strlen(body) < 1000);
    assert_int_equal(http(&s, "GET", "/api/topics/web/keys/big", "t0k3n", body, sizeof body), 200);
    assert_true(strlen(body) > 5000);
    assert_int_equal(
        http(&s, "GET", "/api/topics/web/events?from=3&before=9", "t0k3n", body, sizeof body), 400);
    assert_non_null(strstr(body, "\"error\""));

    /* A group with a member: its pending count; seek it; delete it. */
    conn m;
    conn_open(&m, &s);
    kr_buf_reset(&m.b);
    kr_enc_hello(&m.b, (kr_cid){0}, 1, NULL, NULL);
    assert_int_equal(conn_call(&m, KRAPPY_T_HELLO), 0);
    kr_buf_reset(&m.b);
    kr_enc_consumer_register(&m.b, (kr_cid){0}, "web", "g/1", "m1", KR_START_EARLIEST, 0,
                             KR_CACK_EXPLICIT, 60000);
    assert_int_equal(conn_call(&m, KRAPPY_T_CONSUMER_REGISTER), 0);
    kr_buf_reset(&m.b);
    kr_enc_poll(&m.b, (kr_cid){0}, 4, 0, 1u << 20);
    assert_int_equal(conn_call(&m, KRAPPY_T_POLL), 0);
    assert_int_equal(http(&s, "GET", "/api/topics/web/groups/g%2F1", "t0k3n", body, sizeof body),
                     200);
    assert_non_null(strstr(body, "\"member_list\":[{\"member\":\"m1\",\"pending\":4,"));
    assert_int_equal(post_json(&s, "/api/topics/web/groups/g%2F1/seek", "{\"to\":\"latest\"}", body,
                               sizeof body),
                     200);
    assert_non_null(strstr(body, "\"cursor\":31"));
    assert_int_equal(
        post_json(&s, "/api/topics/web/groups/g%2F1/seek", "{\"ts\":1105}", body, sizeof body),
        200);
    assert_non_null(strstr(body, "\"cursor\":11"));
    assert_int_equal(
        post_json(&s, "/api/topics/web/groups/g%2F1/seek", "{\"to\":99}", body, sizeof body), 400);
    assert_non_null(strstr(body, "\"error\""));
    assert_int_equal(
        post_json(&s, "/api/topics/web/groups/g%2F1/seek", "{\"to\":\"soon\"}", body, sizeof body),
        400);
    assert_int_equal(http(&s, "DELETE", "/api/topics/web/groups/g%2F1", "t0k3n", body, sizeof body),
                     200);
    assert_non_null(strstr(body, "\"deleted\":true"));
    kr_buf_reset(&m.b);
    kr_enc_poll(&m.b, (kr_cid){0}, 4, 0, 1u << 20);
    assert_int_equal(conn_call(&m, KRAPPY_T_POLL), KRAPPY_E_NOT_REGISTERED);
    conn_close(&m);
    assert_int_equal(http(&s, "GET", "/api/topics/web/groups/g%2F1", "t0k3n", body, sizeof body),
                     404);

    /* POST errors are JSON; methods are named. */
    assert_int_equal(http_send(&s, "POST", "/api/topics/web/events", "t0k3n", "text/plain",
                               "{\"value\":1}", body, sizeof body),
                     415);
    assert_non_null(strstr(body, "\"error\":\"send the body as JSON"));
    assert_int_equal(post_json(&s, "/api/topics/web/events", "{\"value\":", body, sizeof body),
                     400);
    assert_non_null(strstr(body, "\"error\":\"line 1:"));
    assert_int_equal(post_json(&s, "/api/topics/a%20b/events", "{\"value\":1}", body, sizeof body),
                     400);
    assert_int_equal(post_json(&s, "/api/topics/web/events", "", body, sizeof body), 400);
    assert_non_null(strstr(body, "no event"));
    assert_int_equal(http_send(&s, "POST", "/api/topics/web/events", NULL, "application/json",
                               "{\"value\":1}", body, sizeof body),
                     401);
    assert_int_equal(http(&s, "PUT", "/api/topics/web", "t0k3n", body, sizeof body), 405);
    assert_non_null(strstr(body, "GET, HEAD, DELETE"));

    /* Delete the topic: gone from the list, its paths 404. */
    assert_int_equal(http(&s, "DELETE", "/api/topics/web", "t0k3n", body, sizeof body), 200);
    assert_non_null(strstr(body, "\"topic\":\"web\",\"deleted\":true"));
    assert_int_equal(http(&s, "GET", "/api/topics", "t0k3n", body, sizeof body), 200);
    assert_null(strstr(body, "\"web\""));
    assert_int_equal(http(&s, "GET", "/api/topics/web/events", "t0k3n", body, sizeof body), 404);
    assert_int_equal(http(&s, "DELETE", "/api/topics/web", "t0k3n", body, sizeof body), 404);
    assert_int_equal(e2e_stop(&s, 10000), 0);
}

/* The value of the key of the event a /keys reply shows, as a JSON string. */
static void assert_key_value(const char *body, const char *value_json)
{
    char want[64];
    snprintf(want, sizeof want, "\"value\":%s", value_json);
    if (strstr(body, want) == NULL)
        fail_msg("wanted %s in %s", want, body);
}

/*
 * Keys are bytes: /keys/ab%00cd is the key "ab\0cd", not "ab" (the path was
 * cut at the decoded NUL); a NUL in the topic part names no topic, and a
 * produce to it creates none. A HEAD
 * gets a GET's status and headers, its Content-Length included, and no
 * body (evhttp sent the body).
 */
static void test_api_keys_are_bytes_and_head_has_no_body(void **state)
{
    (void)state;
    e2e_server s;
    assert_int_equal(e2e_start(&s, NULL), 0);
    conn p;
    conn_open(&p, &s);
    assert_int_equal(conn_register(&p, "bytes"), 0);
    kr_event_out_spec ev[2] = {
        {.key = "ab", .key_len = 2, .value = (const uint8_t *)"\x01", .value_len = 1},
        {.key = "ab\0cd", .key_len = 5, .value = (const uint8_t *)"\x02", .value_len = 1}};
    kr_buf_reset(&p.b);
    kr_enc_publish(&p.b, (kr_cid){0}, KR_ACK_SYNC, ev, 2);
    assert_int_equal(conn_call(&p, KRAPPY_T_PUBLISH), 0);
    conn_close(&p);

    static char body[1 << 20];
    assert_int_equal(http(&s, "GET", "/api/topics/bytes/keys/ab", NULL, body, sizeof body), 200);
    assert_key_value(body, "1");
    assert_int_equal(http(&s, "GET", "/api/topics/bytes/keys/ab%00cd", NULL, body, sizeof body),
                     200);
    assert_key_value(body, "2");
    assert_int_equal(http(&s, "GET", "/api/topics/bytes/keys/ab%00", NULL, body, sizeof body), 404);
    assert_int_equal(http(&s, "GET", "/api/topics/bytes%00x/keys/ab", NULL, body, sizeof body),
                     404);
    assert_int_equal(http(&s, "GET", "/api/topics/bytes%00x", NULL, body, sizeof body), 404);
    /* A produce to such a name is refused, not sent to the name before the NUL. */
    assert_int_equal(http_send(&s, "POST", "/api/topics/nul%00x/events", NULL, "application/json",
                               "{\"value\":1}", body, sizeof body),
                     400);
    assert_int_equal(http(&s, "GET", "/api/topics/nul", NULL, body, sizeof body), 404);

    /* (Not /metrics: its figures change between the two requests.) */
    const char *paths[] = {"/healthz", "/", "/api/topics", "/api/topics/bytes/keys/ab",
                           "/nonsense"};
    static char get[1 << 20], head[1 << 20];
    for (size_t i = 0; i < sizeof paths / sizeof paths[0]; i++) {
        assert_true(http_raw(&s, "GET", paths[i], NULL, NULL, NULL, get, sizeof get) > 0);
        assert_true(http_raw(&s, "HEAD", paths[i], NULL, NULL, NULL, head, sizeof head) > 0);
        const char *gb = strstr(get, "\r\n\r\n"), *hb = strstr(head, "\r\n\r\n");
        assert_non_null(gb);
        assert_non_null(hb);
        if (hb[4] != '\0')
            fail_msg("HEAD %s has a body: %.80s", paths[i], hb + 4);
        assert_int_equal(strncmp(get, head, 12), 0); /* "HTTP/1.x NNN" */
        char want[64];
        snprintf(want, sizeof want, "Content-Length: %zu\r\n", strlen(gb + 4));
        if (strstr(head, want) == NULL)
            fail_msg("HEAD %s lacks %s: %s", paths[i], want, head);
    }
    assert_int_equal(e2e_stop(&s, 10000), 0);
}

int main(void)
{
    signal(SIGPIPE, SIG_IGN);
    if (e2e_external_addr() != NULL) {
        printf("e2e_admin: needs its own servers; skipped with KRAPPY_E2E_ADDR\n");
        return 0;
    }
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_teardown(test_probes_and_shutdown, e2e_after_test),
        cmocka_unit_test_teardown(test_probes_during_recovery, e2e_after_test),
        cmocka_unit_test_teardown(test_metrics_follow_traffic, e2e_after_test),
        cmocka_unit_test_teardown(test_api_and_errors, e2e_after_test),
        cmocka_unit_test_teardown(test_api_values_nested_too_deep, e2e_after_test),
        cmocka_unit_test_teardown(test_api_writes_and_pages, e2e_after_test),
        cmocka_unit_test_teardown(test_api_keys_are_bytes_and_head_has_no_body, e2e_after_test),
    };
    return cmocka_run_group_tests_name("e2e_admin", tests, NULL, NULL);
}
