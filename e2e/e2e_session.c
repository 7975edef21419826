/*
 * e2e/e2e_session.c - krappyd sessions end to end: HELLO, PING, framing and
 * payload errors, ordering, limits, timeouts, back-pressure and shutdown,
 * against a real krappyd process on 127.0.0.1, through raw sockets, libkrappy
 * and the krappy CLI.
 *
 * Environment: KRAPPYD, KRAPPY (binaries), KRAPPY_E2E_ADDR (test a running
 * server; tests needing their own server skip), KRAPPY_E2E_SMOKE=1 (skip the
 * slow tests: the -O2 smoke run).
 */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cmocka.h>

#include "harness.h"
#include "krappy/client.h"
#include "proto/frame.h"
#include "util/byteorder.h"

static e2e_server shared;

static bool smoke(void)
{
    const char *s = getenv("KRAPPY_E2E_SMOKE");
    return s != NULL && s[0] == '1';
}

/* Tests that start their own server with special flags. */
#define NEED_OWN_SERVER()                                                                          \
    do {                                                                                           \
        if (e2e_external_addr() != NULL)                                                           \
            skip();                                                                                \
    } while (0)

static int group_setup(void **state)
{
    (void)state;
    signal(SIGPIPE, SIG_IGN);
    return e2e_start_or_external(&shared) == 0 ? 0 : -1;
}

static int group_teardown(void **state)
{
    (void)state;
    return e2e_stop(&shared, 10000) == 0 ? 0 : -1;
}

/* Encode a request payload with the proto encoders into a fresh buffer. */
static kr_buf new_buf(void)
{
    kr_buf b;
    kr_buf_init(&b, 64u << 20);
    return b;
}

static void send_ping(int fd, bool with_cid, uint64_t cid)
{
    kr_buf b = new_buf();
    kr_enc_empty(&b, (kr_cid){with_cid, cid});
    assert_int_equal(e2e_send_frame(fd, KRAPPY_T_PING, b.data, b.len), 0);
    kr_buf_free(&b);
}

static void send_hello(int fd, const char *token)
{
    kr_buf b = new_buf();
    kr_enc_hello(&b, (kr_cid){0}, 1, "e2e", token);
    assert_int_equal(e2e_send_frame(fd, KRAPPY_T_HELLO, b.data, b.len), 0);
    kr_buf_free(&b);
}

/* The connection still works: a PING gets its OK. */
static void assert_alive(int fd)
{
    send_ping(fd, false, 0);
    assert_int_equal(e2e_expect_ok(fd), 0);
}

/* The server still serves new connections. */
static void assert_server_serves(const e2e_server *s)
{
    int fd = e2e_connect(s);
    assert_true(fd >= 0);
    assert_alive(fd);
    close(fd);
}

/* Read one reply and return its cid (or -1 when it has none). */
static int64_t recv_cid(int fd, uint32_t *type)
{
    e2e_frame f;
    assert_int_equal(e2e_recv_frame(fd, &f, 5000), 1);
    kr_reply r;
    assert_int_equal(kr_reply_decode(f.type, f.payload, f.len, &r), 0);
    *type = f.type;
    int64_t cid = r.cid.set ? (int64_t)r.cid.v : -1;
    free(f.payload);
    return cid;
}

/* ---- library and CLI ---- */

static void test_library_hello_ping(void **state)
{
    (void)state;
    krappy_client *c = krappy_client_new(NULL);
    assert_non_null(c);
    assert_int_equal(krappy_connect(c, shared.host, shared.port), KRAPPY_OK);
    krappy_server_info info;
    assert_int_equal(krappy_hello(c, &info), KRAPPY_OK);
    assert_int_equal(info.version, 1);
    assert_true(strncmp(info.server, "krappyd ", 8) == 0);
    assert_true(info.max_frame >= 4096);
    assert_true(info.max_events >= 1);
    for (int i = 0; i < 100; i++)
        assert_int_equal(krappy_ping(c), KRAPPY_OK);

    /* Pipelined through the library: 1000 in flight, answered in order. */
    kr_buf b = new_buf();
    for (uint64_t i = 0; i < 1000; i++) {
        kr_buf_reset(&b);
        kr_enc_empty(&b, (kr_cid){true, i});
        assert_int_equal(krappy_send(c, KRAPPY_T_PING, b.data, b.len), KRAPPY_OK);
    }
    assert_int_equal(krappy_in_flight(c), 1000);
    for (uint64_t i = 0; i < 1000; i++) {
        krappy_frame f;
        assert_int_equal(krappy_recv(c, &f), KRAPPY_OK);
        assert_int_equal(f.type, KRAPPY_T_OK);
        kr_reply r;
        assert_int_equal(kr_reply_decode(f.type, f.payload, f.len, &r), 0);
        assert_true(r.cid.set);
        assert_int_equal(r.cid.v, i);
    }
    kr_buf_free(&b);
    krappy_client_free(c);
}

static void test_cli_ping_and_hello(void **state)
{
    (void)state;
    char cmd[512], out[4096];
    snprintf(cmd, sizeof cmd, "%s -h %s -p %s ping -c 3 -i 10", e2e_cli(), shared.host,
             shared.port);
    assert_int_equal(e2e_run(cmd, out, sizeof out), 0);
    assert_non_null(strstr(out, "3 "));

    snprintf(cmd, sizeof cmd, "KRAPPY_ADDR=%s:%s %s --json hello", shared.host, shared.port,
             e2e_cli());
    assert_int_equal(e2e_run(cmd, out, sizeof out), 0);
    assert_non_null(strstr(out, "\"protocol\":1"));
    assert_non_null(strstr(out, "krappyd"));

    /* A refused connection: one sentence on stderr, exit status 1. */
    snprintf(cmd, sizeof cmd, "%s -p 1 ping -c 1 2>&1", e2e_cli());
    assert_int_equal(e2e_run(cmd, out, sizeof out), 1);
    assert_non_null(strstr(out, "127.0.0.1:1"));

    /* A bad command line: exit status 2. */
    snprintf(cmd, sizeof cmd, "%s no-such-verb 2>&1", e2e_cli());
    assert_int_equal(e2e_run(cmd, out, sizeof out), 2);
    snprintf(cmd, sizeof cmd, "%s ping --help", e2e_cli());
    assert_int_equal(e2e_run(cmd, out, sizeof out), 0);
    assert_non_null(strstr(out, "ping"));
}

/* ---- correlation and order ---- */

static void test_cid_echoed_on_ok_and_errors(void **state)
{
    (void)state;
    int fd = e2e_connect(&shared);
    assert_true(fd >= 0);
    uint32_t type;

    send_ping(fd, true, 42);
    assert_int_equal(recv_cid(fd, &type), 42);
    assert_int_equal(type, KRAPPY_T_OK);

    kr_buf b = new_buf();
    kr_enc_empty(&b, (kr_cid){true, 43});
    assert_int_equal(e2e_send_frame(fd, 99, b.data, b.len), 0); /* unknown type */
    assert_int_equal(recv_cid(fd, &type), 43);
    assert_int_equal(type, KRAPPY_T_ERROR);

    /* HELLO without `version`: INVALID_ARGUMENT, cid still echoed. */
    kr_buf_reset(&b);
    kr_cbor_put_map(&b, 1);
    kr_cbor_put_cstr(&b, "cid");
    kr_cbor_put_uint(&b, 44);
    assert_int_equal(e2e_send_frame(fd, KRAPPY_T_HELLO, b.data, b.len), 0);
    assert_int_equal(recv_cid(fd, &type), 44);
    assert_int_equal(type, KRAPPY_T_ERROR);

    /* A large cid survives the round trip. */
    send_ping(fd, true, UINT64_MAX);
    e2e_frame f;
    assert_int_equal(e2e_recv_frame(fd, &f, 5000), 1);
    kr_reply r;
    assert_int_equal(kr_reply_decode(f.type, f.payload, f.len, &r), 0);
    assert_true(r.cid.set && r.cid.v == UINT64_MAX);
    free(f.payload);
    kr_buf_free(&b);
    close(fd);
}

/* 1000 requests in one write, every 10th an unknown type: replies come back
 * one per request, in order, errors in their places. */
static void test_pipelined_replies_in_order(void **state)
{
    (void)state;
    int fd = e2e_connect(&shared);
    assert_true(fd >= 0);
    kr_buf all = new_buf(), p = new_buf();
    for (uint64_t i = 0; i < 1000; i++) {
        kr_buf_reset(&p);
        kr_enc_empty(&p, (kr_cid){true, i});
        kr_frame_append(&all, i % 10 == 0 ? 77 : KRAPPY_T_PING, p.data, p.len);
    }
    assert_false(all.failed);
    assert_int_equal(e2e_send_all(fd, all.data, all.len), 0);
    for (uint64_t i = 0; i < 1000; i++) {
        uint32_t type;
        assert_int_equal(recv_cid(fd, &type), (int64_t)i);
        assert_int_equal(type, i % 10 == 0 ? KRAPPY_T_ERROR : KRAPPY_T_OK);
    }
    kr_buf_free(&all);
    kr_buf_free(&p);
    close(fd);
}

/*
 * Small replies are held for the turn's one write and a large one goes to
 * the output itself: a pipeline of PINGs (more replies than the held
 * buffer takes at once) with GETs of a 150 KB value between them is
 * answered in order, every byte.
 */
static void test_mixed_reply_sizes_in_order(void **state)
{
    (void)state;
    enum { BIG = 150 * 1024, N = 15000, EVERY = 5000 };
    krappy_client *c = krappy_client_new(NULL);
    assert_non_null(c);
    assert_int_equal(krappy_connect(c, shared.host, shared.port), KRAPPY_OK);
    assert_int_equal(krappy_register_producer(c, "mixed-sizes", "p", NULL), KRAPPY_OK);
    uint8_t *big = malloc(BIG);
    assert_non_null(big);
    for (size_t i = 0; i < BIG; i++)
        big[i] = (uint8_t)(i * 7);
    krappy_batch *batch = krappy_batch_new();
    assert_non_null(batch);
    assert_int_equal(krappy_batch_add_bytes(batch, KRAPPY_KEY_TEXT, "big", 3, big, BIG), KRAPPY_OK);
    assert_int_equal(krappy_publish(c, batch, KRAPPY_ACK_WRITE, NULL), KRAPPY_OK);
    krappy_batch_free(batch);
    krappy_client_free(c);

    int fd = e2e_connect(&shared);
    assert_true(fd >= 0);
    kr_buf all = new_buf(), p = new_buf();
    for (uint64_t i = 0; i < N; i++) {
        kr_buf_reset(&p);
        bool get = i % EVERY == EVERY / 2;
        if (get)
            kr_enc_get(&p, (kr_cid){true, i}, "mixed-sizes", "big", 3);
        else
            kr_enc_empty(&p, (kr_cid){true, i});
        kr_frame_append(&all, get ? KRAPPY_T_GET : KRAPPY_T_PING, p.data, p.len);
    }
    assert_false(all.failed);
    assert_int_equal(e2e_send_all(fd, all.data, all.len), 0);
    for (uint64_t i = 0; i < N; i++) {
        e2e_frame f;
        assert_int_equal(e2e_recv_frame(fd, &f, 10000), 1);
        kr_reply r;
        assert_int_equal(kr_reply_decode(f.type, f.payload, f.len, &r), 0);
        assert_true(r.cid.set);
        assert_int_equal(r.cid.v, i);
        if (i % EVERY == EVERY / 2) {
            assert_int_equal(f.type, KRAPPY_T_VALUE);
            kr_cbor_item v;
            assert_int_equal(kr_cbor_map_find(&r.map, "value", &v), 1);
            assert_int_equal(v.kind, KR_CBOR_BYTES);
            assert_int_equal(v.str_len, BIG);
            assert_memory_equal(v.str, big, BIG);
        } else {
            assert_int_equal(f.type, KRAPPY_T_OK);
        }
        free(f.payload);
    }
    free(big);
    kr_buf_free(&all);
    kr_buf_free(&p);
    close(fd);
}

static void test_half_close_still_answered(void **state)
{
    (void)state;
    int fd = e2e_connect(&shared);
    assert_true(fd >= 0);
    send_ping(fd, true, 5);
    send_ping(fd, true, 6);
    shutdown(fd, SHUT_WR);
    uint32_t type;
    assert_int_equal(recv_cid(fd, &type), 5);
    assert_int_equal(recv_cid(fd, &type), 6);
    assert_int_equal(e2e_wait_closed(fd, 3000), 1);
    close(fd);
}

/* ---- framing errors: reply, then close; the server keeps serving ---- */

static void test_size_below_four(void **state)
{
    (void)state;
    for (uint32_t size = 0; size < 4; size++) {
        int fd = e2e_connect(&shared);
        assert_true(fd >= 0);
        uint8_t b[4];
        kr_put_be32(b, size);
        assert_int_equal(e2e_send_all(fd, b, sizeof b), 0);
        assert_int_equal(e2e_expect_error(fd, KRAPPY_E_BAD_FRAME, NULL, 0), 0);
        assert_int_equal(e2e_wait_closed(fd, 5000), 1);
        close(fd);
    }
    assert_server_serves(&shared);
}

static void test_frame_too_large(void **state)
{
    (void)state;
    uint32_t sizes[] = {0x80000000u, 0xFFFFFFFFu, KRAPPY_DEFAULT_MAX_FRAME + 1};
    for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; i++) {
        if (e2e_external_addr() != NULL && sizes[i] == KRAPPY_DEFAULT_MAX_FRAME + 1)
            continue; /* its max_frame may differ */
        int fd = e2e_connect(&shared);
        assert_true(fd >= 0);
        uint8_t b[4];
        kr_put_be32(b, sizes[i]);
        /* Only the size: the server must judge it before the type arrives. */
        assert_int_equal(e2e_send_all(fd, b, sizeof b), 0);
        char msg[256];
        assert_int_equal(e2e_expect_error(fd, KRAPPY_E_FRAME_TOO_LARGE, msg, sizeof msg), 0);
        assert_non_null(strstr(msg, "max_frame"));
        assert_int_equal(e2e_wait_closed(fd, 5000), 1);
        close(fd);
    }
    assert_server_serves(&shared);
}

static void test_half_frame_then_close(void **state)
{
    (void)state;
    int fd = e2e_connect(&shared);
    assert_true(fd >= 0);
    uint8_t b[18] = {0, 0, 0, 100, 0, 0, 0, 10, 0xa0};
    assert_int_equal(e2e_send_all(fd, b, sizeof b), 0);
    close(fd);
    assert_server_serves(&shared);
}

/* 64 KiB of random bytes: whatever the first size says, the server answers
 * an ERROR (or a few) and closes or keeps going - and never falls over. */
static void test_random_bytes(void **state)
{
    (void)state;
    static uint8_t junk[64 * 1024];
    for (unsigned seed = 1; seed <= 8; seed++) {
        uint32_t x = seed * 2654435761u;
        for (size_t i = 0; i < sizeof junk; i++) {
            x ^= x << 13;
            x ^= x >> 17;
            x ^= x << 5;
            junk[i] = (uint8_t)x;
        }
        int fd = e2e_connect(&shared);
        assert_true(fd >= 0);
        (void)e2e_send_all(fd, junk, sizeof junk); /* may fail: the server closes */
        e2e_frame f;
        int rc = e2e_recv_frame(fd, &f, 5000);
        assert_int_equal(rc, 1);
        assert_int_equal(f.type, KRAPPY_T_ERROR);
        free(f.payload);
        close(fd);
    }
    assert_server_serves(&shared);
}

/* ---- payload errors: reply, connection stays open ---- */

static void test_unknown_types(void **state)
{
    (void)state;
    int fd = e2e_connect(&shared);
    assert_true(fd >= 0);
    uint32_t types[] = {0, 50, 99, 100, 101, 255, 256, 0xFFFFFFFFu};
    for (size_t i = 0; i < sizeof types / sizeof types[0]; i++) {
        assert_int_equal(e2e_send_frame(fd, types[i], NULL, 0), 0);
        char msg[256];
        assert_int_equal(e2e_expect_error(fd, KRAPPY_E_UNKNOWN_TYPE, msg, sizeof msg), 0);
        assert_true(strlen(msg) > 10);
        assert_alive(fd);
    }
    close(fd);
}

static void test_bad_payloads(void **state)
{
    (void)state;
    static const struct {
        const char *what;
        uint32_t type;
        uint8_t bytes[16];
        size_t len;
    } cases[] = {
        {"not a map", KRAPPY_T_PING, {0x01}, 1},
        {"an array", KRAPPY_T_PING, {0x80}, 1},
        {"truncated map", KRAPPY_T_PING, {0xa1, 0x63, 'c', 'i'}, 4},
        {"trailing bytes", KRAPPY_T_PING, {0xa0, 0x00}, 2},
        {"two items", KRAPPY_T_PING, {0xa0, 0xa0}, 2},
        {"non-text key", KRAPPY_T_PING, {0xa1, 0x01, 0x02}, 3},
        {"lone break", KRAPPY_T_PING, {0xff}, 1},
        {"reserved info", KRAPPY_T_PING, {0x1c}, 1},
        {"string past the end", KRAPPY_T_PING, {0xa1, 0x7a, 0xff, 0xff, 0xff, 0xff, 'x'}, 7},
        /* payload is judged before the type */
        {"bad payload, unknown type", 99, {0xa1}, 1},
    };
    int fd = e2e_connect(&shared);
    assert_true(fd >= 0);
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        assert_int_equal(e2e_send_frame(fd, cases[i].type, cases[i].bytes, cases[i].len), 0);
        if (e2e_expect_error(fd, KRAPPY_E_BAD_PAYLOAD, NULL, 0) != 0)
            fail_msg("case '%s'", cases[i].what);
        assert_alive(fd);
    }

    /* Accepted: indefinite-length map, unknown keys, duplicated keys. */
    static const uint8_t indef[] = {0xbf, 0x63, 'c', 'i', 'd', 0x05, 0xff};
    assert_int_equal(e2e_send_frame(fd, KRAPPY_T_PING, indef, sizeof indef), 0);
    uint32_t type;
    assert_int_equal(recv_cid(fd, &type), 5);
    assert_int_equal(type, KRAPPY_T_OK);
    static const uint8_t dup[] = {0xa3, 0x63, 'c',  'i', 'd', 0x01, 0x61,
                                  'z',  0xf6, 0x63, 'c', 'i', 'd',  0x02};
    assert_int_equal(e2e_send_frame(fd, KRAPPY_T_PING, dup, sizeof dup), 0);
    assert_int_equal(recv_cid(fd, &type), 2);
    close(fd);
}

/* ---- PUBLISH with ack "none" refused: ERROR, then the close ---- */

/* What is wrong with a test PUBLISH (acknone_payload). */
typedef enum pub_fault {
    PUB_VALID,
    PUB_BAD_KEY,      /* an event's key is an integer: INVALID_ARGUMENT */
    PUB_BAD_TS,       /* an event's ts is text: INVALID_ARGUMENT */
    PUB_TRAILING,     /* a byte after the map: BAD_PAYLOAD */
    PUB_NON_TEXT_KEY, /* a map key that is an integer: BAD_PAYLOAD */
    PUB_TRUNCATED     /* the last event cut short: BAD_PAYLOAD */
} pub_fault;

/* {cid: 42, ack, events: [["k", "v"]]} with `fault` written into it; `ack`
 * comes before the fault, so the server can read it. */
static kr_buf acknone_payload(const char *ack, pub_fault fault)
{
    kr_buf b = new_buf();
    kr_cbor_put_map(&b, fault == PUB_NON_TEXT_KEY ? 4 : 3);
    kr_cbor_put_cstr(&b, "cid");
    kr_cbor_put_uint(&b, 42);
    kr_cbor_put_cstr(&b, "ack");
    kr_cbor_put_cstr(&b, ack);
    if (fault == PUB_NON_TEXT_KEY) {
        kr_cbor_put_uint(&b, 1);
        kr_cbor_put_uint(&b, 2);
    }
    kr_cbor_put_cstr(&b, "events");
    kr_cbor_put_array(&b, 1);
    kr_cbor_put_array(&b, fault == PUB_BAD_TS ? 3 : 2);
    if (fault == PUB_BAD_KEY)
        kr_cbor_put_uint(&b, 7);
    else
        kr_cbor_put_cstr(&b, "k");
    kr_cbor_put_cstr(&b, "value");
    if (fault == PUB_BAD_TS)
        kr_cbor_put_cstr(&b, "noon");
    if (fault == PUB_TRAILING)
        kr_cbor_put_null(&b);
    if (fault == PUB_TRUNCATED)
        b.len -= 3;
    assert_false(b.failed);
    return b;
}

/* Read one frame: ERROR `code`, with cid 42 when `with_cid`, else none. */
static void expect_error_cid(int fd, krappy_err code, bool with_cid, const char *what)
{
    e2e_frame f;
    kr_reply r;
    kr_error_in e;
    assert_int_equal(e2e_recv_frame(fd, &f, 5000), 1);
    if (f.type != KRAPPY_T_ERROR || kr_reply_decode(f.type, f.payload, f.len, &r) < 0 ||
        kr_reply_error(&r, &e) < 0 || e.code != (int)code || r.cid.set != with_cid ||
        (with_cid && r.cid.v != 42))
        fail_msg("case '%s': want ERROR %s%s, got type %u code %d (cid %s)", what,
                 krappy_err_name(code), with_cid ? " with cid 42" : "", f.type,
                 f.type == KRAPPY_T_ERROR ? e.code : -1, r.cid.set ? "set" : "absent");
    free(f.payload);
}

/*
 * PROTOCOL.md section 4: a PUBLISH with ack "none" that is refused, for
 * whatever reason, gets its ERROR (with the cid, when the payload could be
 * decoded) and then the connection closes - a PING pipelined behind it gets
 * no reply. The same PUBLISH with ack "write" leaves the connection open.
 */
static void test_publish_ack_none_refused_closes(void **state)
{
    (void)state;
    static const struct {
        const char *what;
        bool registered;
        pub_fault fault;
        krappy_err code;
        bool cid; /* echoed: the payload is a well-formed map */
    } cases[] = {
        {"no PRODUCER_REGISTER", false, PUB_VALID, KRAPPY_E_NOT_REGISTERED, true},
        {"an event's key", true, PUB_BAD_KEY, KRAPPY_E_INVALID_ARGUMENT, true},
        {"an event's ts", true, PUB_BAD_TS, KRAPPY_E_INVALID_ARGUMENT, true},
        {"trailing bytes", true, PUB_TRAILING, KRAPPY_E_BAD_PAYLOAD, false},
        {"a non-text key", true, PUB_NON_TEXT_KEY, KRAPPY_E_BAD_PAYLOAD, false},
        {"truncated", true, PUB_TRUNCATED, KRAPPY_E_BAD_PAYLOAD, false},
    };
    char topic[64];
    snprintf(topic, sizeof topic, "acknone-%d", (int)getpid()); /* new on any server */
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        for (int none = 0; none < 2; none++) {
            int fd = e2e_connect(&shared);
            assert_true(fd >= 0);
            if (cases[i].registered) {
                kr_buf reg = new_buf();
                kr_enc_producer_register(&reg, (kr_cid){0}, topic, "e2e");
                assert_int_equal(e2e_send_frame(fd, KRAPPY_T_PRODUCER_REGISTER, reg.data, reg.len),
                                 0);
                assert_int_equal(e2e_expect_ok(fd), 0);
                kr_buf_free(&reg);
            }
            kr_buf b = acknone_payload(none ? "none" : "write", cases[i].fault);
            assert_int_equal(e2e_send_frame(fd, KRAPPY_T_PUBLISH, b.data, b.len), 0);
            kr_buf_free(&b);
            send_ping(fd, true, 43);
            expect_error_cid(fd, cases[i].code, cases[i].cid, cases[i].what);
            if (none) {
                e2e_frame f = {0};
                if (e2e_recv_frame(fd, &f, 5000) != 0)
                    fail_msg("case '%s': ack none: the connection stayed open (a frame of "
                             "type %u came after the ERROR)",
                             cases[i].what, f.type);
                free(f.payload);
            } else {
                uint32_t type;
                assert_int_equal(recv_cid(fd, &type), 43); /* the PING's OK */
                assert_int_equal(type, KRAPPY_T_OK);
                assert_alive(fd);
            }
            close(fd);
        }
    }

    /* The topic kept nothing of the refused PUBLISHes. */
    int fd = e2e_connect(&shared);
    assert_true(fd >= 0);
    kr_buf b = new_buf();
    kr_enc_fetch(&b, (kr_cid){0}, topic, 0, 10, 0, 1u << 20);
    assert_int_equal(e2e_send_frame(fd, KRAPPY_T_FETCH, b.data, b.len), 0);
    kr_buf_free(&b);
    e2e_frame f;
    kr_reply r;
    uint64_t next = 1;
    assert_int_equal(e2e_recv_frame(fd, &f, 5000), 1);
    assert_int_equal(f.type, KRAPPY_T_EVENTS);
    assert_int_equal(kr_reply_decode(f.type, f.payload, f.len, &r), 0);
    assert_int_equal(kr_reply_uint(&r, "next", &next), 1);
    assert_int_equal(next, 0);
    free(f.payload);
    close(fd);
    assert_server_serves(&shared);
}

static void test_hello_fields(void **state)
{
    (void)state;
    int fd = e2e_connect(&shared);
    assert_true(fd >= 0);
    kr_buf b = new_buf();

    /* version of the wrong type */
    kr_cbor_put_map(&b, 1);
    kr_cbor_put_cstr(&b, "version");
    kr_cbor_put_cstr(&b, "1");
    assert_int_equal(e2e_send_frame(fd, KRAPPY_T_HELLO, b.data, b.len), 0);
    char msg[256];
    assert_int_equal(e2e_expect_error(fd, KRAPPY_E_INVALID_ARGUMENT, msg, sizeof msg), 0);
    assert_non_null(strstr(msg, "version"));
    assert_alive(fd);

    /* version 2: UNSUPPORTED_VERSION with versions [1], then closed */
    kr_buf_reset(&b);
    kr_enc_hello(&b, (kr_cid){0}, 2, NULL, NULL);
    assert_int_equal(e2e_send_frame(fd, KRAPPY_T_HELLO, b.data, b.len), 0);
    e2e_frame f;
    assert_int_equal(e2e_recv_frame(fd, &f, 5000), 1);
    assert_int_equal(f.type, KRAPPY_T_ERROR);
    kr_reply r;
    kr_error_in e;
    assert_int_equal(kr_reply_decode(f.type, f.payload, f.len, &r), 0);
    assert_int_equal(kr_reply_error(&r, &e), 0);
    assert_int_equal(e.code, KRAPPY_E_UNSUPPORTED_VERSION);
    kr_cbor_item versions, one;
    assert_int_equal(kr_cbor_map_find(&r.map, "versions", &versions), 1);
    assert_int_equal(versions.kind, KR_CBOR_ARRAY);
    assert_int_equal(versions.u, 1);
    kr_cbor_iter it;
    kr_cbor_iter_init(&it, &versions);
    assert_int_equal(kr_cbor_iter_next(&it, &one), 1);
    assert_int_equal(one.kind, KR_CBOR_UINT);
    assert_int_equal(one.u, 1);
    free(f.payload);
    assert_int_equal(e2e_wait_closed(fd, 5000), 1);
    close(fd);
    kr_buf_free(&b);
}

static void test_200_concurrent_connections(void **state)
{
    (void)state;
    enum { N = 200 };
    int fds[N];
    for (int i = 0; i < N; i++) {
        fds[i] = e2e_connect(&shared);
        assert_true(fds[i] >= 0);
    }
    for (int i = 0; i < N; i++) {
        send_hello(fds[i], NULL);
        send_ping(fds[i], true, (uint64_t)i);
    }
    for (int i = 0; i < N; i++) {
        assert_int_equal(e2e_expect_ok(fds[i]), 0);
        uint32_t type;
        assert_int_equal(recv_cid(fds[i], &type), i);
        assert_int_equal(type, KRAPPY_T_OK);
    }
    for (int i = 0; i < N; i++)
        close(fds[i]);
}

/* ---- servers of their own ---- */

static void test_max_connections_busy(void **state)
{
    (void)state;
    NEED_OWN_SERVER();
    e2e_server s;
    const char *args[] = {"--max-connections", "4", NULL};
    assert_int_equal(e2e_start(&s, args), 0);
    int fds[4];
    for (int i = 0; i < 4; i++) {
        fds[i] = e2e_connect(&s);
        assert_true(fds[i] >= 0);
        assert_alive(fds[i]);
    }
    int extra = e2e_connect(&s);
    assert_true(extra >= 0);
    char msg[256];
    assert_int_equal(e2e_expect_error(extra, KRAPPY_E_BUSY, msg, sizeof msg), 0);
    assert_non_null(strstr(msg, "--max-connections"));
    assert_int_equal(e2e_wait_closed(extra, 5000), 1);
    close(extra);
    /* A slot frees up when a connection closes. */
    close(fds[0]);
    uint64_t deadline = e2e_now_ms() + 5000;
    int ok = 0;
    while (!ok && e2e_now_ms() < deadline) {
        int fd = e2e_connect(&s);
        assert_true(fd >= 0);
        send_ping(fd, false, 0);
        e2e_frame f;
        if (e2e_recv_frame(fd, &f, 2000) == 1) {
            ok = f.type == KRAPPY_T_OK;
            free(f.payload);
        }
        close(fd);
    }
    assert_true(ok);
    for (int i = 1; i < 4; i++)
        close(fds[i]);
    assert_int_equal(e2e_stop(&s, 10000), 0);
}

static void test_token(void **state)
{
    (void)state;
    NEED_OWN_SERVER();
    e2e_server s;
    const char *args[] = {"--token", "s3cret", "--hello-timeout", "1s", NULL};
    assert_int_equal(e2e_start(&s, args), 0);

    /* Anything but HELLO first: UNAUTHENTICATED, closed. */
    int fd = e2e_connect(&s);
    send_ping(fd, true, 9);
    assert_int_equal(e2e_expect_error(fd, KRAPPY_E_UNAUTHENTICATED, NULL, 0), 0);
    assert_int_equal(e2e_wait_closed(fd, 5000), 1);
    close(fd);

    /* Wrong token, missing token, malformed payload. */
    const char *tokens[] = {"wrong", NULL, "s3cret\n"};
    for (int i = 0; i < 3; i++) {
        fd = e2e_connect(&s);
        send_hello(fd, tokens[i]);
        assert_int_equal(e2e_expect_error(fd, KRAPPY_E_UNAUTHENTICATED, NULL, 0), 0);
        assert_int_equal(e2e_wait_closed(fd, 5000), 1);
        close(fd);
    }
    fd = e2e_connect(&s);
    static const uint8_t junk[] = {0xa1, 0x65};
    assert_int_equal(e2e_send_frame(fd, KRAPPY_T_HELLO, junk, sizeof junk), 0);
    assert_int_equal(e2e_expect_error(fd, KRAPPY_E_UNAUTHENTICATED, NULL, 0), 0);
    close(fd);

    /* The right token: served, and later HELLOs are answered normally. */
    fd = e2e_connect(&s);
    send_hello(fd, "s3cret");
    assert_int_equal(e2e_expect_ok(fd), 0);
    assert_alive(fd);
    send_hello(fd, NULL);
    assert_int_equal(e2e_expect_ok(fd), 0);
    close(fd);

    /* Through the library and the CLI. */
    krappy_opts o = {.token = "s3cret"};
    krappy_client *c = krappy_client_new(&o);
    assert_int_equal(krappy_connect(c, s.host, s.port), KRAPPY_OK);
    assert_int_equal(krappy_hello(c, NULL), KRAPPY_OK);
    assert_int_equal(krappy_ping(c), KRAPPY_OK);
    krappy_client_free(c);
    char cmd[512], out[2048];
    snprintf(cmd, sizeof cmd, "%s -p %s --token s3cret ping -c 1", e2e_cli(), s.port);
    assert_int_equal(e2e_run(cmd, out, sizeof out), 0);
    snprintf(cmd, sizeof cmd, "%s -p %s --token nope ping -c 1 2>&1", e2e_cli(), s.port);
    assert_int_equal(e2e_run(cmd, out, sizeof out), 1);

    /* Silence gets a short deadline. */
    fd = e2e_connect(&s);
    uint64_t t0 = e2e_now_ms();
    assert_int_equal(e2e_expect_error(fd, KRAPPY_E_UNAUTHENTICATED, NULL, 0), 0);
    assert_true(e2e_now_ms() - t0 >= 900);
    assert_int_equal(e2e_wait_closed(fd, 5000), 1);
    close(fd);
    assert_int_equal(e2e_stop(&s, 10000), 0);
}

/* Tokens are compared whole, whatever their length. */
static void test_long_token(void **state)
{
    (void)state;
    NEED_OWN_SERVER();
    static char token[3001];
    for (size_t i = 0; i < sizeof token - 1; i++)
        token[i] = (char)('a' + i % 26);
    e2e_server s;
    const char *args[] = {"--token", token, NULL};
    assert_int_equal(e2e_start(&s, args), 0);
    int fd = e2e_connect(&s);
    send_hello(fd, token);
    assert_int_equal(e2e_expect_ok(fd), 0);
    assert_alive(fd);
    close(fd);
    token[2999] = 'Z'; /* differs in the last byte only */
    fd = e2e_connect(&s);
    send_hello(fd, token);
    assert_int_equal(e2e_expect_error(fd, KRAPPY_E_UNAUTHENTICATED, NULL, 0), 0);
    close(fd);
    assert_int_equal(e2e_stop(&s, 10000), 0);
}

static void test_idle_timeout(void **state)
{
    (void)state;
    NEED_OWN_SERVER();
    e2e_server s;
    const char *args[] = {"--idle-timeout", "1s", NULL};
    assert_int_equal(e2e_start(&s, args), 0);
    int idle = e2e_connect(&s), busy = e2e_connect(&s);
    assert_alive(idle);
    uint64_t t0 = e2e_now_ms();
    /* `busy` keeps sending for 2.5 s and must survive; `idle` must not. */
    while (e2e_now_ms() - t0 < 2500) {
        assert_alive(busy);
        usleep(200 * 1000);
    }
    e2e_frame f;
    assert_int_equal(e2e_recv_frame(idle, &f, 100), 0); /* closed, no reply */
    assert_alive(busy);
    close(idle);
    close(busy);
    assert_int_equal(e2e_stop(&s, 10000), 0);
}

/*
 * A client pipelines up to 1 GiB of PINGs and never reads a reply. The
 * server must stop reading it (back-pressure), keep its memory bounded,
 * keep serving others, and close it after --write-timeout.
 */
static void test_unread_replies_bounded(void **state)
{
    (void)state;
    NEED_OWN_SERVER();
    if (smoke())
        skip();
    e2e_server s;
    const char *args[] = {"--write-timeout", "3s", NULL};
    assert_int_equal(e2e_start(&s, args), 0);
    int fd = e2e_connect(&s);
    assert_true(fd >= 0);
    assert_alive(fd);
    long rss0 = e2e_rss_kib(&s);
    assert_true(rss0 > 0);

    static uint8_t chunk[1 << 16];
    for (size_t i = 0; i < sizeof chunk; i += 8) {
        kr_put_be32(chunk + i, 4);
        kr_put_be32(chunk + i + 4, KRAPPY_T_PING);
    }
    fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK);
    const uint64_t goal = 1ull << 30;
    uint64_t sent = 0, t0 = e2e_now_ms(), last_progress = t0;
    size_t off = 0;
    while (sent < goal && e2e_now_ms() - t0 < 20000 && e2e_now_ms() - last_progress < 1000) {
        ssize_t w = send(fd, chunk + off, sizeof chunk - off, MSG_NOSIGNAL);
        if (w > 0) {
            sent += (uint64_t)w;
            off = (off + (size_t)w) % sizeof chunk;
            last_progress = e2e_now_ms();
        } else if (w < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
            struct pollfd p = {fd, POLLOUT, 0};
            poll(&p, 1, 100);
        } else {
            break;
        }
    }
    long rss1 = e2e_rss_kib(&s);
    print_message("      pipelined %.1f MiB of PINGs unread; server RSS %ld -> %ld KiB\n",
                  (double)sent / (1 << 20), rss0, rss1);
    assert_true(sent < goal);             /* the server stopped reading */
    assert_true(rss1 - rss0 < 64 * 1024); /* and stayed within 64 MiB */
    assert_server_serves(&s);             /* others are still served */

    /* After --write-timeout (3 s) of unread replies, it is closed. Reading
     * now would be progress, so wait without reading first. */
    usleep(5 * 1000 * 1000);
    assert_int_equal(e2e_wait_closed(fd, 5000), 1);
    close(fd);
    assert_server_serves(&s);
    assert_int_equal(e2e_stop(&s, 10000), 0);
}

/*
 * SIGTERM: exit 0 promptly. Requests are answered in order - OK when they
 * ran before the stop, then at most one SHUTTING_DOWN - and the connection
 * ends with a clean EOF, never a reset that would swallow sent replies;
 * idle connections are closed.
 */
static void test_sigterm_exits_zero(void **state)
{
    (void)state;
    NEED_OWN_SERVER();
    e2e_server s;
    assert_int_equal(e2e_start(&s, NULL), 0);
    int idle = e2e_connect(&s);
    assert_alive(idle);
    int busy = e2e_connect(&s);
    assert_alive(busy); /* accepted: not waiting in the listen backlog */
    for (int i = 0; i < 100; i++)
        send_ping(busy, true, (uint64_t)i);
    uint64_t t0 = e2e_now_ms();
    assert_int_equal(e2e_stop(&s, 10000), 0);
    assert_true(e2e_now_ms() - t0 < 5000);
    int ok = 0, shutting = 0, rc;
    e2e_frame f;
    while ((rc = e2e_recv_frame(busy, &f, 2000)) == 1) {
        kr_reply r;
        kr_error_in e;
        assert_int_equal(kr_reply_decode(f.type, f.payload, f.len, &r), 0);
        assert_int_equal(shutting, 0); /* nothing after SHUTTING_DOWN */
        assert_true(r.cid.set);
        assert_int_equal(r.cid.v, (uint64_t)ok);
        if (f.type == KRAPPY_T_OK) {
            ok++;
        } else {
            assert_int_equal(kr_reply_error(&r, &e), 0);
            assert_int_equal(e.code, KRAPPY_E_SHUTTING_DOWN);
            shutting = 1;
        }
        free(f.payload);
    }
    print_message("      %d answered OK, %d SHUTTING_DOWN, then a clean close\n", ok, shutting);
    assert_int_equal(rc, 0); /* EOF, not a reset that would lose replies */
    assert_true(ok + shutting >= 1);
    assert_int_equal(e2e_wait_closed(idle, 1000), 1);
    close(idle);
    close(busy);
}

static void test_bad_flags_exit_two(void **state)
{
    (void)state;
    NEED_OWN_SERVER();
    const char *bin = getenv("KRAPPYD") ? getenv("KRAPPYD") : "bin/krappyd";
    char cmd[512], out[32768]; /* room for --help (8.8 KB and growing) */
    const char *bad[] = {"--bogus",          "--max-frame 12x",   "--listen nonsense",
                         "--log-level loud", "--idle-timeout -1", "--max-connections 0",
                         "stray-argument"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        snprintf(cmd, sizeof cmd, "%s %s 2>&1", bin, bad[i]);
        if (e2e_run(cmd, out, sizeof out) != 2)
            fail_msg("'%s' did not exit 2: %s", bad[i], out);
        assert_non_null(strstr(out, "krappyd: "));
    }
    snprintf(cmd, sizeof cmd, "KRAPPY_MAX_FRAME=lots %s 2>&1", bin);
    assert_int_equal(e2e_run(cmd, out, sizeof out), 2);
    assert_non_null(strstr(out, "KRAPPY_MAX_FRAME"));

    snprintf(cmd, sizeof cmd, "%s --help", bin);
    assert_int_equal(e2e_run(cmd, out, sizeof out), 0);
    const char *vars[] = {"KRAPPY_LISTEN",          "KRAPPY_DATA",         "KRAPPY_MAX_FRAME",
                          "KRAPPY_MAX_CONNECTIONS", "KRAPPY_IDLE_TIMEOUT", "KRAPPY_LOG_FORMAT",
                          "KRAPPY_LOG_LEVEL",       "KRAPPY_TOKEN",        "--version"};
    for (size_t i = 0; i < sizeof vars / sizeof vars[0]; i++)
        if (strstr(out, vars[i]) == NULL)
            fail_msg("--help does not mention %s", vars[i]);
    snprintf(cmd, sizeof cmd, "%s --version", bin);
    assert_int_equal(e2e_run(cmd, out, sizeof out), 0);
    assert_non_null(strstr(out, "krappyd"));
}

/* A second krappyd on the same port cannot start, and says why. */
static void test_port_in_use(void **state)
{
    (void)state;
    NEED_OWN_SERVER();
    const char *bin = getenv("KRAPPYD") ? getenv("KRAPPYD") : "bin/krappyd";
    char cmd[512], out[4096];
    snprintf(cmd, sizeof cmd,
             "%s --listen 127.0.0.1:%s --http off --data %s/other --rocksdb-log-dir '' "
             "--log-format text 2>&1",
             bin, shared.port, shared.dir);
    assert_int_equal(e2e_run(cmd, out, sizeof out), 1);
    assert_non_null(strstr(out, "cannot listen"));
}

static int count_fds(pid_t pid)
{
    char cmd[128], out[32];
    snprintf(cmd, sizeof cmd, "ls /proc/%d/fd | wc -l", (int)pid);
    return e2e_run(cmd, out, sizeof out) == 0 ? atoi(out) : -1;
}

/*
 * Connection churn: many short-lived clients doing good and bad things -
 * pipelines abandoned unread, garbage, torn frames, huge declared sizes,
 * abrupt closes. Afterwards the server still serves, holds no more file
 * descriptors than before and its memory has not grown. 300 rounds in
 * `make test`, 100000 in `make torture`.
 */
static void test_connection_churn(void **state)
{
    (void)state;
    NEED_OWN_SERVER();
    bool torture = getenv("KRAPPY_E2E_TORTURE") != NULL;
    int rounds = torture ? 100000 : smoke() ? 100 : 300;
    uint64_t budget_ms = torture ? 600000 : 60000;
    e2e_server s;
    assert_int_equal(e2e_start(&s, NULL), 0);
    assert_server_serves(&s);
    int fds0 = count_fds(s.pid);
    long rss0 = e2e_rss_kib(&s);

    uint32_t x = 12345;
    static uint8_t junk[8192];
    uint64_t t0 = e2e_now_ms();
    int done = 0;
    for (; done < rounds && e2e_now_ms() - t0 < budget_ms; done++) {
        x ^= x << 13;
        x ^= x >> 17;
        x ^= x << 5;
        int fd = e2e_connect(&s);
        assert_true(fd >= 0);
        switch (x % 6) {
        case 0: /* a well-behaved client */
            send_hello(fd, NULL);
            assert_int_equal(e2e_expect_ok(fd), 0);
            assert_alive(fd);
            break;
        case 1: /* a pipeline abandoned unread */
            for (int i = 0; i < 200; i++)
                send_ping(fd, true, (uint64_t)i);
            break;
        case 2: /* garbage */
            for (size_t i = 0; i < sizeof junk; i++)
                junk[i] = (uint8_t)(x >> (i % 24));
            (void)e2e_send_all(fd, junk, 1 + x % sizeof junk);
            break;
        case 3: { /* a torn frame */
            uint8_t b[10] = {0, 0, 0, 20, 0, 0, 0, 10, 0xa1, 0x63};
            (void)e2e_send_all(fd, b, 1 + x % sizeof b);
            break;
        }
        case 4: { /* a large declared frame, partly sent */
            uint8_t b[8];
            kr_put_be32(b, 1u << 20);
            kr_put_be32(b + 4, KRAPPY_T_PING);
            (void)e2e_send_all(fd, b, sizeof b);
            (void)e2e_send_all(fd, junk, sizeof junk);
            break;
        }
        default: /* connect and leave */
            break;
        }
        close(fd);
    }
    print_message("      %d connections in %.1f s\n", done, (double)(e2e_now_ms() - t0) / 1000);
    assert_server_serves(&s);
    /* Give the server a moment to notice the last closes. */
    int fds1 = -1;
    for (int i = 0; i < 50; i++) {
        fds1 = count_fds(s.pid);
        if (fds1 <= fds0)
            break;
        usleep(100 * 1000);
    }
    long rss1 = e2e_rss_kib(&s);
    print_message("      fds %d -> %d, RSS %ld -> %ld KiB\n", fds0, fds1, rss0, rss1);
    assert_true(fds1 <= fds0);
    assert_true(rss1 - rss0 < 32 * 1024);
    assert_int_equal(e2e_stop(&s, 10000), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_library_hello_ping),
        cmocka_unit_test(test_cli_ping_and_hello),
        cmocka_unit_test(test_cid_echoed_on_ok_and_errors),
        cmocka_unit_test(test_pipelined_replies_in_order),
        cmocka_unit_test(test_mixed_reply_sizes_in_order),
        cmocka_unit_test(test_half_close_still_answered),
        cmocka_unit_test(test_size_below_four),
        cmocka_unit_test(test_frame_too_large),
        cmocka_unit_test(test_half_frame_then_close),
        cmocka_unit_test(test_random_bytes),
        cmocka_unit_test(test_unknown_types),
        cmocka_unit_test(test_bad_payloads),
        cmocka_unit_test(test_publish_ack_none_refused_closes),
        cmocka_unit_test(test_hello_fields),
        cmocka_unit_test(test_200_concurrent_connections),
        cmocka_unit_test(test_max_connections_busy),
        cmocka_unit_test(test_token),
        cmocka_unit_test(test_long_token),
        cmocka_unit_test(test_idle_timeout),
        cmocka_unit_test(test_unread_replies_bounded),
        cmocka_unit_test(test_sigterm_exits_zero),
        cmocka_unit_test(test_bad_flags_exit_two),
        cmocka_unit_test(test_port_in_use),
        cmocka_unit_test(test_connection_churn),
    };
    return cmocka_run_group_tests_name("e2e_session", tests, group_setup, group_teardown);
}
