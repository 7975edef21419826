/*
 * tests/test_session.c - the per-connection request pipeline with handlers
 * that complete later: fifo requests overlap, everything else waits for
 * earlier requests, replies leave in request order, and a request that
 * completes after its client vanished is dropped without harm.
 *
 * The server runs its real loop (kr_server_setup) with a handler table of
 * this file's own; the client is the other end of a socketpair.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cmocka.h>
#include <event2/event.h>

#include "proto/frame.h"
#include "util/clock.h"
#include "util/log.h"
#include "server/server.h"

/* Types used by the test handlers (their payloads decode as these). */
#define T_FIFO KRAPPY_T_PRODUCER_REGISTER /* async, fifo */
#define T_SLOW KRAPPY_T_CONSUMER_REGISTER /* async, not fifo */
#define T_SYNC KRAPPY_T_PING              /* sync */

static kr_server srv;
static kr_config cfg;
static char journal[8192]; /* "S<cid> " on start, "C<cid> " on completion */
static int client_fd = -1;
static kr_frame_parser parser;
static struct event *client_ev;
static uint64_t replies[256];
static uint32_t reply_types[256];
static int n_replies, want_replies;

/* When not 0: the loop stops as soon as this many requests started. */
static int stop_at_starts;

static void note(char what, uint64_t cid)
{
    size_t len = strlen(journal);
    snprintf(journal + len, sizeof journal - len, "%c%llu ", what, (unsigned long long)cid);
    if (what == 'S' && stop_at_starts > 0 && --stop_at_starts == 0)
        event_base_loopbreak(srv.base);
}

typedef struct later {
    kr_req *r;
    uint64_t cid;
} later;

static void complete(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    later *l = arg;
    note('C', l->cid);
    kr_buf b;
    kr_buf_init(&b, 1024);
    kr_enc_ok_empty(&b, l->r->cid);
    kr_req_reply(l->r, KRAPPY_T_OK, b.data, b.len);
    kr_buf_free(&b);
    free(l);
}

/* The delay in ms is the cid's last two digits. */
static kr_hresult run_async(kr_conn *c, kr_req *r, const kr_request *req)
{
    (void)c;
    note('S', req->cid.v);
    kr_req_async(r);
    later *l = calloc(1, sizeof *l);
    l->r = r;
    l->cid = req->cid.v;
    struct timeval tv = {0, (suseconds_t)(req->cid.v % 100) * 1000};
    event_base_once(srv.base, -1, EV_TIMEOUT, complete, l, &tv);
    return KR_H_ASYNC;
}

static kr_hresult run_sync(kr_conn *c, kr_req *r, const kr_request *req)
{
    note('S', req->cid.v);
    kr_buf_reset(&c->enc);
    kr_enc_ok_empty(&c->enc, r->cid);
    kr_req_reply(r, KRAPPY_T_OK, c->enc.data, c->enc.len);
    return KR_H_DONE;
}

static const kr_handler h_fifo = {"FIFO", true, run_async};
static const kr_handler h_slow = {"SLOW", false, run_async};
static const kr_handler h_sync = {"SYNC", false, run_sync};

static const kr_handler *test_handlers(uint32_t type)
{
    switch (type) {
    case T_FIFO:
        return &h_fifo;
    case T_SLOW:
        return &h_slow;
    case T_SYNC:
        return &h_sync;
    }
    return NULL;
}

/* The client end: collect reply cids; stop the loop when all arrived. */
static void on_client_read(evutil_socket_t fd, short what, void *arg)
{
    (void)what;
    (void)arg;
    uint8_t buf[4096];
    ssize_t n = read(fd, buf, sizeof buf);
    if (n <= 0) {
        event_base_loopbreak(srv.base);
        return;
    }
    kr_frame_parser_feed(&parser, buf, (size_t)n);
    kr_frame f;
    while (kr_frame_parser_next(&parser, &f) == 1) {
        kr_reply r;
        assert_int_equal(kr_reply_decode(f.type, f.payload, f.len, &r), 0);
        reply_types[n_replies] = f.type;
        replies[n_replies++] = r.cid.set ? r.cid.v : UINT64_MAX;
    }
    if (n_replies >= want_replies)
        event_base_loopbreak(srv.base);
}

static int setup(void **state)
{
    (void)state;
    memset(&cfg, 0, sizeof cfg);
    cfg.max_frame = KRAPPY_DEFAULT_MAX_FRAME;
    cfg.max_connections = 16;
    cfg.max_pending_bytes = KR_DEFAULT_MAX_PENDING_BYTES;
    cfg.max_events = 100;
    cfg.idle_timeout_ms = 60000;
    cfg.write_timeout_ms = 60000;
    cfg.hello_timeout_ms = 60000;
    kr_log_setup(KR_LOG_ERROR, KR_LOG_TEXT);
    assert_int_equal(kr_server_setup(&srv, &cfg, kr_metrics_new()), 0);
    srv.handler_for = test_handlers;

    int sv[2];
    assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK, 0, sv), 0);
    struct sockaddr sa = {.sa_family = AF_UNIX};
    assert_non_null(kr_conn_new(&srv, sv[0], &sa, sizeof sa));
    client_fd = sv[1];
    kr_frame_parser_init(&parser, KRAPPY_DEFAULT_MAX_FRAME);
    client_ev = event_new(srv.base, client_fd, EV_READ | EV_PERSIST, on_client_read, NULL);
    event_add(client_ev, NULL);
    journal[0] = '\0';
    n_replies = 0;
    stop_at_starts = 0;
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    event_free(client_ev);
    if (client_fd >= 0)
        close(client_fd);
    client_fd = -1;
    kr_frame_parser_free(&parser);
    kr_metrics *m = srv.metrics;
    kr_server_free(&srv);
    kr_metrics_free(m);
    return 0;
}

static void send_req(uint32_t type, uint64_t cid)
{
    kr_buf b;
    kr_buf_init(&b, 4096);
    kr_cid c = {true, cid};
    if (type == T_FIFO)
        kr_enc_producer_register(&b, c, "t", "p");
    else if (type == T_SLOW)
        kr_enc_consumer_register(&b, c, "t", "g", NULL, KR_START_EARLIEST, 0, KR_CACK_EXPLICIT,
                                 1000);
    else
        kr_enc_empty(&b, c);
    uint8_t hdr[KRAPPY_FRAME_HEADER_BYTES];
    kr_frame_put_header(hdr, type, b.len);
    assert_int_equal(write(client_fd, hdr, sizeof hdr), (ssize_t)sizeof hdr);
    assert_int_equal(write(client_fd, b.data, b.len), (ssize_t)b.len);
    kr_buf_free(&b);
}

/* Run the loop until `n` replies arrived (or 5 s passed). */
static void run_until(int n)
{
    want_replies = n;
    struct timeval limit = {5, 0};
    event_base_loopexit(srv.base, &limit);
    event_base_dispatch(srv.base);
    assert_int_equal(n_replies, n);
}

static void test_fifo_requests_overlap_replies_in_order(void **state)
{
    (void)state;
    send_req(T_FIFO, 130); /* request 1, completes after 30 ms */
    send_req(T_FIFO, 210); /* request 2, after 10 ms */
    send_req(T_FIFO, 300); /* request 3, at once */
    run_until(3);
    assert_string_equal(journal, "S130 S210 S300 C300 C210 C130 ");
    assert_int_equal(replies[0], 130);
    assert_int_equal(replies[1], 210);
    assert_int_equal(replies[2], 300);
}

static void test_other_requests_wait_for_earlier_ones(void **state)
{
    (void)state;
    send_req(T_FIFO, 120);
    send_req(T_SYNC, 200); /* sees the effect of request 1: starts after C120 */
    send_req(T_SLOW, 310);
    send_req(T_FIFO, 400); /* fifo, but request 3 is not: waits for it */
    run_until(4);
    assert_string_equal(journal, "S120 C120 S200 S310 C310 S400 C400 ");
    const uint64_t order[] = {120, 200, 310, 400};
    for (int i = 0; i < 4; i++)
        assert_int_equal(replies[i], order[i]);
}

static void test_errors_keep_their_place(void **state)
{
    (void)state;
    send_req(T_FIFO, 120);
    send_req(99, 200); /* unknown type: answered in order, after request 1 */
    send_req(T_FIFO, 300);
    run_until(3);
    assert_int_equal(replies[0], 120);
    assert_int_equal(reply_types[0], KRAPPY_T_OK);
    assert_int_equal(replies[1], 200);
    assert_int_equal(reply_types[1], KRAPPY_T_ERROR);
    assert_int_equal(replies[2], 300);
    assert_string_equal(journal, "S120 C120 S300 C300 ");
}

/*
 * A pipeline several times libevent's 4096-byte read: every request starts
 * in the turn that saw the first bytes (the rest read on, up to a read
 * chunk), before any completion - one turn per 4096 bytes would let the
 * completions of the first ones in between.
 */
static void test_pipeline_starts_in_one_turn(void **state)
{
    (void)state;
    char id[80];
    memset(id, 'p', sizeof id - 1);
    id[sizeof id - 1] = '\0';
    enum { N = 200 };
    kr_buf all, b;
    kr_buf_init(&all, KR_CONN_READ_CHUNK);
    kr_buf_init(&b, 4096);
    for (int i = 0; i < N; i++) {
        kr_buf_reset(&b);
        kr_enc_producer_register(&b, (kr_cid){true, 1000 + 100 * (uint64_t)i}, "t", id);
        uint8_t hdr[KRAPPY_FRAME_HEADER_BYTES];
        kr_frame_put_header(hdr, T_FIFO, b.len);
        kr_buf_append(&all, hdr, sizeof hdr);
        kr_buf_append(&all, b.data, b.len);
    }
    assert_false(all.failed);
    assert_true(all.len > 4 * 4096 && all.len < KR_CONN_READ_CHUNK);
    /* One write: the socket holds the whole pipeline before the loop runs. */
    assert_int_equal(write(client_fd, all.data, all.len), (ssize_t)all.len);
    kr_buf_free(&all);
    kr_buf_free(&b);
    run_until(N);
    const char *first_c = strchr(journal, 'C');
    assert_non_null(first_c);
    int starts = 0;
    for (const char *p = journal; p < first_c; p++)
        starts += *p == 'S';
    assert_int_equal(starts, N);
    for (int i = 0; i < N; i++)
        assert_int_equal(replies[i], 1000 + 100 * (uint64_t)i);
}

/* The client disappears while its requests run on "another thread": the
 * completions find a closed connection and are dropped; ASan and LSan
 * check nothing is used after free or leaked. */
static void test_completion_after_client_vanished(void **state)
{
    (void)state;
    send_req(T_FIFO, 130);
    send_req(T_FIFO, 140);
    send_req(T_SYNC, 200);
    /* Until both started - not for a time: a loaded machine may let their
     * 30 ms completions expire along with any short exit timer. */
    stop_at_starts = 2;
    struct timeval t = {5, 0};
    event_base_loopexit(srv.base, &t);
    event_base_dispatch(srv.base); /* both started, neither completed */
    assert_string_equal(journal, "S130 S140 ");
    event_del(client_ev);
    close(client_fd);
    client_fd = -1;
    t.tv_usec = 100000;
    event_base_loopexit(srv.base, &t);
    event_base_dispatch(srv.base);
    /* Request 3 was received before the client went: depending on whether
     * the EOF is read before request 2 completes, it may still start (its
     * reply is dropped with the connection). */
    if (strcmp(journal, "S130 S140 C130 C140 S200 ") != 0)
        assert_string_equal(journal, "S130 S140 C130 C140 ");
    assert_int_equal(srv.n_conns, 0);
}

/* A tick that falls between a turn's replies and their write (held in
 * the connection's buffer, the drain clock stopped since the connection
 * writes its own output) does not take them for unread: the connection
 * stays. Once libevent writes (the socket was full) and nothing drains for
 * --write-timeout, it goes. */
static void test_tick_between_reply_and_write(void **state)
{
    (void)state;
    kr_conn *c = TAILQ_FIRST(&srv.conns);
    assert_non_null(c);
    uint64_t late = kr_mono_ns() + 2 * (uint64_t)cfg.write_timeout_ms * 1000000;
    static const uint8_t reply[] = {0, 0, 0, 8, 0, 0, 0, 1};
    assert_int_equal(kr_buf_append(&c->out, reply, sizeof reply), 0);
    c->net.out_held = c->out.len;
    kr_conn_tick(c, late);
    assert_int_equal(srv.n_conns, 1);
    c->net.write_armed = true; /* libevent's to write, and nothing drains */
    kr_conn_tick(c, late);
    assert_int_equal(srv.n_conns, 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_fifo_requests_overlap_replies_in_order, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_other_requests_wait_for_earlier_ones, setup, teardown),
        cmocka_unit_test_setup_teardown(test_errors_keep_their_place, setup, teardown),
        cmocka_unit_test_setup_teardown(test_pipeline_starts_in_one_turn, setup, teardown),
        cmocka_unit_test_setup_teardown(test_completion_after_client_vanished, setup, teardown),
        cmocka_unit_test_setup_teardown(test_tick_between_reply_and_write, setup, teardown),
    };
    return cmocka_run_group_tests_name("session pipeline", tests, NULL, NULL);
}
