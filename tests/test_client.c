/*
 * tests/test_client.c - libkrappy against a scripted fake server, and its
 * CBOR/JSON helpers against fixed vectors (RFC 8949 Appendix A).
 *
 * Each test starts a tiny server thread on 127.0.0.1 (ephemeral port) that
 * accepts one connection (or a few) and plays a script: read requests, write
 * replies, misbehave. The thread never calls cmocka's asserts (they are not
 * thread-safe); it records what it saw in the script's struct, which the
 * test checks after joining. Every wait in the fake server is bounded, and
 * main() arms an alarm, so no test can hang.
 */
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <pthread.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "proto/json_parse.h"
#include "krappy/client.h"
#include "proto/cbor.h"
#include "proto/frame.h"
#include "proto/msg.h"
#include "util/buf.h"
#include "util/byteorder.h"

/* The longest any fake-server wait may take (only reached when something is
 * broken; generous so that a run under valgrind is not cut short). */
#define FAKE_WAIT_MS 15000

static const kr_cid NO_CID = {false, 0};

static int64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* ---- the fake server ---- */

typedef void (*script_fn)(int fd, void *arg);

typedef struct fake {
    int lfd;
    char port[8];
    pthread_t th;
    script_fn fn;
    void *arg;
    int conns;   /* connections to accept, one after the other */
    int bufsize; /* SO_SNDBUF/SO_RCVBUF of accepted sockets; 0 = default */
    int accepted;
} fake;

static void *fake_main(void *p)
{
    fake *f = p;
    for (int i = 0; i < f->conns; i++) {
        struct pollfd pfd = {.fd = f->lfd, .events = POLLIN, .revents = 0};
        if (poll(&pfd, 1, FAKE_WAIT_MS) <= 0)
            break;
        int fd = accept(f->lfd, NULL, NULL);
        if (fd < 0)
            break;
        f->accepted++;
        int one = 1; /* no Nagle delays on the fake side either */
        setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
        if (f->bufsize > 0) {
            setsockopt(fd, SOL_SOCKET, SO_SNDBUF, &f->bufsize, sizeof f->bufsize);
            setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &f->bufsize, sizeof f->bufsize);
        }
        f->fn(fd, f->arg);
        close(fd);
    }
    return NULL;
}

static int listen_any(int *port)
{
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    struct sockaddr_in sa = {0};
    socklen_t sl = sizeof sa;
    sa.sin_family = AF_INET;
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    sa.sin_port = 0;
    if (fd < 0 || bind(fd, (struct sockaddr *)&sa, sizeof sa) < 0 ||
        getsockname(fd, (struct sockaddr *)&sa, &sl) < 0)
        return -1;
    *port = ntohs(sa.sin_port);
    return fd;
}

static void fake_start_n(fake *f, script_fn fn, void *arg, int conns, int bufsize)
{
    int port = 0;
    memset(f, 0, sizeof *f);
    f->fn = fn;
    f->arg = arg;
    f->conns = conns;
    f->bufsize = bufsize;
    f->lfd = listen_any(&port);
    assert_true(f->lfd >= 0);
    if (bufsize > 0) /* accepted sockets inherit the receive buffer */
        setsockopt(f->lfd, SOL_SOCKET, SO_RCVBUF, &bufsize, sizeof bufsize);
    assert_int_equal(listen(f->lfd, 8), 0);
    snprintf(f->port, sizeof f->port, "%d", port);
    assert_int_equal(pthread_create(&f->th, NULL, fake_main, f), 0);
}

static void fake_start(fake *f, script_fn fn, void *arg)
{
    fake_start_n(f, fn, arg, 1, 0);
}

static void fake_join(fake *f)
{
    pthread_join(f->th, NULL);
    close(f->lfd);
}

/* Read exactly n bytes within FAKE_WAIT_MS. @return 0, or -1 on EOF/error. */
static int read_full(int fd, void *buf, size_t n)
{
    uint8_t *p = buf;
    while (n > 0) {
        struct pollfd pfd = {.fd = fd, .events = POLLIN, .revents = 0};
        if (poll(&pfd, 1, FAKE_WAIT_MS) <= 0)
            return -1;
        ssize_t r = recv(fd, p, n, 0);
        if (r < 0 && errno == EINTR)
            continue;
        if (r <= 0)
            return -1;
        p += r;
        n -= (size_t)r;
    }
    return 0;
}

/* Write all of buf; counts in *waits how often the socket was full. */
static int write_full(int fd, const void *buf, size_t n, int *waits)
{
    const uint8_t *p = buf;
    while (n > 0) {
        ssize_t w = send(fd, p, n, MSG_NOSIGNAL | MSG_DONTWAIT);
        if (w < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
            if (waits != NULL)
                (*waits)++;
            struct pollfd pfd = {.fd = fd, .events = POLLOUT, .revents = 0};
            if (poll(&pfd, 1, FAKE_WAIT_MS) <= 0)
                return -1;
            continue;
        }
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0)
            return -1;
        p += w;
        n -= (size_t)w;
    }
    return 0;
}

/* Read one request frame; its payload into *payload (reset first). */
static int read_frame(int fd, uint32_t *type, kr_buf *payload)
{
    uint8_t h[8];
    if (read_full(fd, h, 8) < 0)
        return -1;
    uint32_t size = kr_get_be32(h);
    *type = kr_get_be32(h + 4);
    if (size < 4 || size > (64u << 20))
        return -1;
    kr_buf_reset(payload);
    if (kr_buf_reserve(payload, size - 4) < 0)
        return -1;
    if (read_full(fd, payload->data, size - 4) < 0)
        return -1;
    payload->len = size - 4;
    return 0;
}

static int write_frame(int fd, uint32_t type, const kr_buf *payload)
{
    kr_buf out;
    kr_buf_init(&out, SIZE_MAX);
    kr_frame_append(&out, type, payload ? payload->data : NULL, payload ? payload->len : 0);
    int r = write_full(fd, out.data, out.len, NULL);
    kr_buf_free(&out);
    return r;
}

/* Wait for the client to close (EOF), reading and dropping whatever comes. */
static void wait_eof(int fd)
{
    uint8_t junk[4096];
    while (read_full(fd, junk, 1) == 0)
        ;
}

/* ---- hello ---- */

typedef struct hello_script {
    int ok; /* the HELLO decoded with the expected fields */
    char client[64], token[64];
    uint64_t version;
} hello_script;

static void script_hello(int fd, void *arg)
{
    hello_script *s = arg;
    kr_buf in, out, scratch;
    kr_request req;
    char msg[256];
    uint32_t type;

    kr_buf_init(&in, SIZE_MAX);
    kr_buf_init(&out, SIZE_MAX);
    kr_buf_init(&scratch, SIZE_MAX);
    if (read_frame(fd, &type, &in) < 0 || type != KRAPPY_T_HELLO)
        goto done;
    if (kr_req_decode(type, in.data, in.len, &scratch, &req, msg, sizeof msg) != KRAPPY_OK)
        goto done;
    s->version = req.u.hello.version;
    if (req.u.hello.has_client)
        snprintf(s->client, sizeof s->client, "%.*s", (int)req.u.hello.client.len,
                 (const char *)req.u.hello.client.ptr);
    if (req.u.hello.has_token)
        snprintf(s->token, sizeof s->token, "%.*s", (int)req.u.hello.token.len,
                 (const char *)req.u.hello.token.ptr);
    s->ok = 1;
    kr_enc_ok_hello(&out, NO_CID, 1, "fake-krappyd 9.9", 4096, 500);
    write_frame(fd, KRAPPY_T_OK, &out);

    /* A PING answered with a 3000-byte OK: above the client's own 1024-byte
     * limit, within the 4096 the HELLO announced. */
    if (read_frame(fd, &type, &in) < 0 || type != KRAPPY_T_PING)
        goto done;
    static uint8_t pad[3000];
    kr_buf_reset(&out);
    kr_cbor_put_map(&out, 1);
    kr_cbor_put_cstr(&out, "pad");
    kr_cbor_put_bytes(&out, pad, sizeof pad);
    write_frame(fd, KRAPPY_T_OK, &out);
    wait_eof(fd);
done:
    kr_buf_free(&in);
    kr_buf_free(&out);
    kr_buf_free(&scratch);
}

static void test_hello_round_trip(void **state)
{
    (void)state;
    static hello_script s;
    memset(&s, 0, sizeof s);
    static fake f; /* static: outlives a failed test's frame */
    fake_start(&f, script_hello, &s);

    krappy_opts o = {.max_frame = 1024, .token = "sekret", .client_name = "test-client"};
    krappy_client *c = krappy_client_new(&o);
    assert_non_null(c);
    assert_int_equal(krappy_connect(c, "127.0.0.1", f.port), KRAPPY_OK);
    assert_true(krappy_connected(c));
    assert_true(krappy_client_fd(c) >= 0);

    krappy_server_info info;
    assert_int_equal(krappy_hello(c, &info), KRAPPY_OK);
    assert_int_equal(info.version, 1);
    assert_string_equal(info.server, "fake-krappyd 9.9");
    assert_int_equal(info.max_frame, 4096);
    assert_int_equal(info.max_events, 500);
    assert_string_equal(krappy_client_errmsg(c), "");

    /* The reply limit was raised to the server's max_frame. */
    krappy_frame r;
    assert_int_equal(krappy_call(c, KRAPPY_T_PING, NULL, 0, &r), KRAPPY_OK);
    assert_int_equal(r.type, KRAPPY_T_OK);
    assert_true(r.len > 3000);

    /* And requests above the server's max_frame are refused locally. */
    static uint8_t big[5000];
    assert_int_equal(krappy_send(c, KRAPPY_T_PING, big, sizeof big), KRAPPY_E_USAGE);
    assert_non_null(strstr(krappy_client_errmsg(c), "max_frame"));
    assert_true(krappy_connected(c));

    krappy_client_free(c);
    fake_join(&f);
    assert_true(s.ok);
    assert_int_equal(s.version, 1);
    assert_string_equal(s.client, "test-client");
    assert_string_equal(s.token, "sekret");
}

/* ---- a long pipeline against a server that writes before it reads ---- */

#define PIPE_N   10000
#define PIPE_PAD 200

typedef struct pipe_script {
    int replies_done; /* all replies written (atomic) */
    int waits;        /* times the server found its socket full */
    int requests;     /* requests read, in order */
    int order_ok;
} pipe_script;

static void script_pipeline(int fd, void *arg)
{
    pipe_script *s = arg;
    kr_buf in, out;
    kr_buf_init(&in, SIZE_MAX);
    kr_buf_init(&out, SIZE_MAX);

    /* Every reply first, without reading anything: the client must read
     * while it is still writing, or both sides block for good. */
    kr_buf p;
    kr_buf_init(&p, 64);
    for (uint64_t i = 0; i < PIPE_N; i++) {
        kr_buf_reset(&p);
        kr_enc_ok_empty(&p, (kr_cid){true, i});
        kr_frame_append(&out, KRAPPY_T_OK, p.data, p.len);
    }
    kr_buf_free(&p);
    if (write_full(fd, out.data, out.len, &s->waits) < 0)
        goto done;
    __atomic_store_n(&s->replies_done, 1, __ATOMIC_SEQ_CST);

    s->order_ok = 1;
    for (uint64_t i = 0; i < PIPE_N; i++) {
        uint32_t type;
        uint64_t cid;
        if (read_frame(fd, &type, &in) < 0)
            break;
        if (type != KRAPPY_T_PING || !kr_req_peek_cid(in.data, in.len, &cid) || cid != i)
            s->order_ok = 0;
        s->requests++;
    }
    wait_eof(fd);
done:
    kr_buf_free(&in);
    kr_buf_free(&out);
}

static void test_pipeline_no_deadlock(void **state)
{
    (void)state;
    static pipe_script s;
    memset(&s, 0, sizeof s);
    static fake f; /* static: outlives a failed test's frame */
    /* Small socket buffers (the kernel doubles them): 64 KiB + 32 KiB hold
     * neither the 2 MiB of requests nor the 130 KiB of replies. Smaller ones
     * make loopback TCP stall on zero-window probes. */
    fake_start_n(&f, script_pipeline, &s, 1, 16384);

    krappy_client *c = krappy_client_new(&(krappy_opts){.timeout_ms = 10000});
    assert_non_null(c);
    assert_int_equal(krappy_connect(c, "127.0.0.1", f.port), KRAPPY_OK);
    int small = 32768;
    setsockopt(krappy_client_fd(c), SOL_SOCKET, SO_SNDBUF, &small, sizeof small);
    setsockopt(krappy_client_fd(c), SOL_SOCKET, SO_RCVBUF, &small, sizeof small);

    static uint8_t pad[PIPE_PAD];
    kr_buf p;
    kr_buf_init(&p, 4096);
    int64_t t0 = now_ms();
    for (uint64_t i = 0; i < PIPE_N; i++) {
        kr_buf_reset(&p);
        kr_cbor_put_map(&p, 2);
        kr_cbor_put_cstr(&p, "cid");
        kr_cbor_put_uint(&p, i);
        kr_cbor_put_cstr(&p, "pad");
        kr_cbor_put_bytes(&p, pad, sizeof pad);
        assert_false(p.failed);
        krappy_err e = krappy_send(c, KRAPPY_T_PING, p.data, p.len);
        if (e != KRAPPY_OK)
            fail_msg("send %llu: %s", (unsigned long long)i, krappy_client_errmsg(c));
    }
    assert_int_equal(krappy_in_flight(c), PIPE_N);
    /* More requests went out than the two socket buffers hold, so the
     * server was reading, so it had written every reply: the client read
     * them while it was still sending. */
    assert_int_equal(__atomic_load_n(&s.replies_done, __ATOMIC_SEQ_CST), 1);
    for (uint64_t i = 0; i < PIPE_N; i++) {
        krappy_frame r;
        kr_reply rep;
        krappy_err e = krappy_recv(c, &r);
        if (e != KRAPPY_OK)
            fail_msg("recv %llu: %s", (unsigned long long)i, krappy_client_errmsg(c));
        assert_int_equal(r.type, KRAPPY_T_OK);
        assert_int_equal(kr_reply_decode(r.type, r.payload, r.len, &rep), 0);
        assert_true(rep.cid.set);
        assert_int_equal(rep.cid.v, i);
    }
    assert_int_equal(krappy_in_flight(c), 0);
    assert_true(now_ms() - t0 < 20000); /* ~25 ms natively; valgrind is slow */
    kr_buf_free(&p);
    krappy_client_free(c);
    fake_join(&f);

    assert_int_equal(s.requests, PIPE_N);
    assert_true(s.order_ok);
    assert_true(s.waits > 0); /* the server really was held back */
}

/* ---- ERROR replies ---- */

typedef struct error_script {
    krappy_err code;
    const char *message;
    int then_ping; /* answer one more PING after the error */
} error_script;

static void script_error(int fd, void *arg)
{
    error_script *s = arg;
    kr_buf in, out;
    uint32_t type;
    uint64_t cid = 0;
    kr_buf_init(&in, SIZE_MAX);
    kr_buf_init(&out, SIZE_MAX);
    if (read_frame(fd, &type, &in) == 0) {
        kr_cid c = {kr_req_peek_cid(in.data, in.len, &cid) == 1, cid};
        kr_enc_error(&out, c, s->code, s->message, NULL);
        write_frame(fd, KRAPPY_T_ERROR, &out);
        if (s->then_ping && read_frame(fd, &type, &in) == 0) {
            write_frame(fd, KRAPPY_T_OK, NULL);
        }
        if (!krappy_err_closes(s->code))
            wait_eof(fd);
    }
    kr_buf_free(&in);
    kr_buf_free(&out);
}

static void test_error_reply(void **state)
{
    (void)state;
    error_script s = {KRAPPY_E_NO_SUCH_TOPIC, "no topic named \"orders\"; create it first", 1};
    static fake f; /* static: outlives a failed test's frame */
    fake_start(&f, script_error, &s);

    krappy_client *c = krappy_client_new(NULL);
    assert_int_equal(krappy_connect(c, "127.0.0.1", f.port), KRAPPY_OK);
    kr_buf p;
    kr_buf_init(&p, 4096);
    kr_enc_get(&p, (kr_cid){true, 7}, "orders", "k1", 2);
    krappy_frame r;
    assert_int_equal(krappy_call(c, KRAPPY_T_GET, p.data, p.len, &r), KRAPPY_E_NO_SUCH_TOPIC);
    assert_int_equal(r.type, KRAPPY_T_ERROR);
    const char *m = krappy_client_errmsg(c);
    assert_non_null(strstr(m, "NO_SUCH_TOPIC"));
    assert_non_null(strstr(m, "no topic named \"orders\"; create it first"));
    assert_true(krappy_connected(c)); /* this code keeps the connection */
    assert_int_equal(krappy_ping(c), KRAPPY_OK);
    assert_string_equal(krappy_client_errmsg(c), "");
    kr_buf_free(&p);
    krappy_client_free(c);
    fake_join(&f);
}

static void test_error_closes(void **state)
{
    (void)state;
    static error_script s;
    s = (error_script){KRAPPY_E_UNAUTHENTICATED, "wrong or missing token", 0};
    static fake f; /* static: outlives a failed test's frame */
    fake_start(&f, script_error, &s);

    krappy_client *c = krappy_client_new(NULL);
    assert_int_equal(krappy_connect(c, "127.0.0.1", f.port), KRAPPY_OK);
    assert_int_equal(krappy_hello(c, NULL), KRAPPY_E_UNAUTHENTICATED);
    assert_false(krappy_connected(c));
    assert_int_equal(krappy_client_fd(c), -1);
    assert_non_null(strstr(krappy_client_errmsg(c), "UNAUTHENTICATED"));
    assert_non_null(strstr(krappy_client_errmsg(c), "wrong or missing token"));
    /* A closed client refuses calls until it connects again. */
    assert_int_equal(krappy_ping(c), KRAPPY_E_USAGE);
    krappy_client_free(c);
    fake_join(&f);
}

/* The server says why and closes while the client is still sending (as
 * krappyd does with SHUTTING_DOWN or UNAUTHENTICATED). */
static void script_error_then_close(int fd, void *arg)
{
    int drain = *(int *)arg;
    kr_buf in, out;
    uint32_t type;
    kr_buf_init(&in, SIZE_MAX);
    kr_buf_init(&out, SIZE_MAX);
    if (read_frame(fd, &type, &in) == 0) {
        kr_enc_error(&out, NO_CID, KRAPPY_E_SHUTTING_DOWN, "the server is shutting down", NULL);
        write_frame(fd, KRAPPY_T_ERROR, &out);
        if (drain) { /* a lingering close: no RST */
            shutdown(fd, SHUT_WR);
            wait_eof(fd);
        }
    }
    kr_buf_free(&in);
    kr_buf_free(&out);
}

static void test_error_then_close_while_sending(void **state)
{
    (void)state;
    static int drain;
    for (drain = 0; drain < 2; drain++) {
        static fake f;
        fake_start(&f, script_error_then_close, &drain);
        krappy_client *c = krappy_client_new(&(krappy_opts){.timeout_ms = 5000});
        assert_int_equal(krappy_connect(c, "127.0.0.1", f.port), KRAPPY_OK);
        static uint8_t big[32 * 1024];
        krappy_err e = KRAPPY_OK;
        int sent = 0;
        for (; sent < 64 && e == KRAPPY_OK; sent++)
            e = krappy_send(c, KRAPPY_T_PING, big, sizeof big);
        krappy_frame r;
        if (e == KRAPPY_OK) {
            e = krappy_recv(c, &r);
            if (e == KRAPPY_OK)
                e = krappy_reply_error(c, &r);
        }
        /* Either the ERROR itself, or the close naming it. */
        const char *m = krappy_client_errmsg(c);
        if (e == KRAPPY_E_SHUTTING_DOWN) {
            assert_non_null(strstr(m, "shutting down"));
        } else if (e == KRAPPY_E_CLOSED) {
            if (strstr(m, "SHUTTING_DOWN") == NULL)
                fail_msg("drain=%d: %s", drain, m);
        } else {
            fail_msg("drain=%d sent=%d: %s: %s", drain, sent, krappy_err_name(e), m);
        }
        assert_false(krappy_connected(c));
        /* Replies that came before the close can still be read; then the
         * client says why it is not connected. */
        int left = 0;
        while ((e = krappy_recv(c, &r)) == KRAPPY_OK && left < 10) {
            assert_int_equal(r.type, KRAPPY_T_ERROR);
            left++;
        }
        assert_int_equal(e, KRAPPY_E_USAGE);
        assert_non_null(strstr(krappy_client_errmsg(c), "not connected ("));
        krappy_client_free(c);
        fake_join(&f);
    }
}

/* ---- the server misbehaving ---- */

typedef enum bad_mode {
    BAD_MID_FRAME,     /* header announcing 100 bytes, 10 of them, close */
    BAD_NO_REPLY,      /* close without a word */
    BAD_HUGE_SIZE,     /* size 0xFFFFFFF0 */
    BAD_TINY_SIZE,     /* size 2 */
    BAD_TWO_THEN_CLOSE /* two OK replies to three requests, then close */
} bad_mode;

static void script_bad(int fd, void *arg)
{
    bad_mode m = *(bad_mode *)arg;
    kr_buf in;
    uint32_t type;
    uint8_t h[18] = {0};
    kr_buf_init(&in, SIZE_MAX);
    if (read_frame(fd, &type, &in) < 0)
        goto done;
    switch (m) {
    case BAD_MID_FRAME:
        kr_put_be32(h, 100);
        kr_put_be32(h + 4, KRAPPY_T_OK);
        write_full(fd, h, sizeof h, NULL);
        break;
    case BAD_NO_REPLY:
        break;
    case BAD_HUGE_SIZE:
        kr_put_be32(h, 0xFFFFFFF0u);
        kr_put_be32(h + 4, KRAPPY_T_OK);
        write_full(fd, h, 8, NULL);
        wait_eof(fd);
        break;
    case BAD_TINY_SIZE:
        kr_put_be32(h, 2);
        write_full(fd, h, 8, NULL);
        wait_eof(fd);
        break;
    case BAD_TWO_THEN_CLOSE:
        read_frame(fd, &type, &in);
        read_frame(fd, &type, &in);
        write_frame(fd, KRAPPY_T_OK, NULL);
        write_frame(fd, KRAPPY_T_OK, NULL);
        break;
    }
done:
    kr_buf_free(&in);
}

static krappy_client *connect_bad(fake *f, bad_mode *m)
{
    fake_start(f, script_bad, m);
    krappy_client *c = krappy_client_new(&(krappy_opts){.timeout_ms = 3000});
    assert_non_null(c);
    assert_int_equal(krappy_connect(c, "127.0.0.1", f->port), KRAPPY_OK);
    return c;
}

static void test_closed_mid_frame(void **state)
{
    (void)state;
    static bad_mode m;
    m = BAD_MID_FRAME;
    static fake f; /* static: outlives a failed test's frame */
    krappy_client *c = connect_bad(&f, &m);
    assert_int_equal(krappy_ping(c), KRAPPY_E_CLOSED);
    assert_false(krappy_connected(c));
    assert_non_null(strstr(krappy_client_errmsg(c), "middle of a reply"));
    krappy_client_free(c);
    fake_join(&f);

    m = BAD_NO_REPLY;
    c = connect_bad(&f, &m);
    assert_int_equal(krappy_ping(c), KRAPPY_E_CLOSED);
    assert_non_null(strstr(krappy_client_errmsg(c), "closed the connection"));
    krappy_client_free(c);
    fake_join(&f);
}

static void test_replies_before_close(void **state)
{
    (void)state;
    static bad_mode m;
    m = BAD_TWO_THEN_CLOSE;
    static fake f; /* static: outlives a failed test's frame */
    krappy_client *c = connect_bad(&f, &m);
    krappy_frame r;
    for (int i = 0; i < 3; i++)
        assert_int_equal(krappy_send(c, KRAPPY_T_PING, NULL, 0), KRAPPY_OK);
    assert_int_equal(krappy_recv(c, &r), KRAPPY_OK);
    assert_int_equal(krappy_recv(c, &r), KRAPPY_OK);
    assert_int_equal(krappy_recv(c, &r), KRAPPY_E_CLOSED);
    assert_non_null(strstr(krappy_client_errmsg(c), "1 request unanswered"));
    assert_int_equal(krappy_in_flight(c), 0);
    krappy_client_free(c);
    fake_join(&f);
}

static void test_garbage_size(void **state)
{
    (void)state;
    static bad_mode m;
    m = BAD_HUGE_SIZE;
    static fake f; /* static: outlives a failed test's frame */
    krappy_client *c = connect_bad(&f, &m);
    assert_int_equal(krappy_ping(c), KRAPPY_E_PROTOCOL);
    assert_false(krappy_connected(c));
    assert_non_null(strstr(krappy_client_errmsg(c), "4294967280 bytes"));
    krappy_client_free(c);
    fake_join(&f);

    m = BAD_TINY_SIZE;
    c = connect_bad(&f, &m);
    assert_int_equal(krappy_ping(c), KRAPPY_E_PROTOCOL);
    assert_false(krappy_connected(c));
    assert_non_null(strstr(krappy_client_errmsg(c), "malformed reply frame"));
    krappy_client_free(c);
    fake_join(&f);
}

static void script_silent(int fd, void *arg)
{
    (void)arg;
    wait_eof(fd); /* read the request, never answer */
}

static void test_timeout(void **state)
{
    (void)state;
    static fake f; /* static: outlives a failed test's frame */
    fake_start(&f, script_silent, NULL);
    krappy_client *c = krappy_client_new(&(krappy_opts){.timeout_ms = 200});
    assert_int_equal(krappy_connect(c, "127.0.0.1", f.port), KRAPPY_OK);
    int64_t t0 = now_ms();
    assert_int_equal(krappy_ping(c), KRAPPY_E_TIMEOUT);
    int64_t took = now_ms() - t0;
    assert_true(took >= 190);
    assert_true(took < 1500);
    assert_false(krappy_connected(c));
    assert_non_null(strstr(krappy_client_errmsg(c), "within 200 ms"));
    krappy_client_free(c);
    fake_join(&f);
}

/* ---- connecting ---- */

static void test_connect_refused(void **state)
{
    (void)state;
    int port;
    int fd = listen_any(&port); /* bound, never listening: refused */
    assert_true(fd >= 0);
    char ps[8], want[32];
    snprintf(ps, sizeof ps, "%d", port);
    snprintf(want, sizeof want, "127.0.0.1:%d", port);

    krappy_client *c = krappy_client_new(NULL);
    assert_int_equal(krappy_connect(c, "127.0.0.1", ps), KRAPPY_E_IO);
    assert_int_equal(krappy_client_errno(c), ECONNREFUSED);
    const char *m = krappy_client_errmsg(c);
    assert_non_null(strstr(m, want));
    assert_non_null(strstr(m, "refused"));
    assert_non_null(strstr(m, "is krappyd running?"));
    assert_false(krappy_connected(c));
    close(fd);

    assert_int_equal(krappy_connect(c, "no-such-host.invalid", "7070"), KRAPPY_E_IO);
    assert_non_null(strstr(krappy_client_errmsg(c), "cannot resolve no-such-host.invalid:7070"));
    krappy_client_free(c);
}

static void script_ping_once(int fd, void *arg)
{
    (void)arg;
    kr_buf in;
    uint32_t type;
    kr_buf_init(&in, SIZE_MAX);
    if (read_frame(fd, &type, &in) == 0 && type == KRAPPY_T_PING)
        write_frame(fd, KRAPPY_T_OK, NULL);
    wait_eof(fd);
    kr_buf_free(&in);
}

static void test_connect_addr(void **state)
{
    (void)state;
    static fake f; /* static: outlives a failed test's frame */
    fake_start_n(&f, script_ping_once, NULL, 4, 0);
    const char *forms[] = {":%s", "127.0.0.1:%s", "[127.0.0.1]:%s", "localhost:%s"};
    krappy_client *c = krappy_client_new(NULL);
    for (size_t i = 0; i < 4; i++) {
        char addr[64];
        snprintf(addr, sizeof addr, forms[i], f.port);
        krappy_err e = krappy_connect_addr(c, addr);
        if (e != KRAPPY_OK)
            fail_msg("%s: %s", addr, krappy_client_errmsg(c));
        assert_int_equal(krappy_ping(c), KRAPPY_OK);
        krappy_close(c); /* lets the fake server move on to the next */
        assert_false(krappy_connected(c));
    }
    fake_join(&f);
    assert_int_equal(f.accepted, 4);

    assert_int_equal(krappy_connect_addr(c, "db1:notaport"), KRAPPY_E_USAGE);
    assert_non_null(strstr(krappy_client_errmsg(c), "not a number from 1 to 65535"));
    assert_int_equal(krappy_connect_addr(c, "::1:7070"), KRAPPY_E_USAGE);
    assert_non_null(strstr(krappy_client_errmsg(c), "[::1]:7070"));
    krappy_client_free(c);
}

/* ---- SIGPIPE, misuse, fire-and-forget ---- */

static void script_close_at_once(int fd, void *arg)
{
    (void)fd;
    (void)arg;
}

static void test_no_sigpipe(void **state)
{
    (void)state;
    static fake f; /* static: outlives a failed test's frame */
    fake_start(&f, script_close_at_once, NULL);
    krappy_client *c = krappy_client_new(&(krappy_opts){.timeout_ms = 3000});
    assert_int_equal(krappy_connect(c, "127.0.0.1", f.port), KRAPPY_OK);
    fake_join(&f); /* the server has closed its end */

    static uint8_t big[64 * 1024];
    krappy_err e = KRAPPY_OK;
    for (int i = 0; i < 200 && e == KRAPPY_OK; i++) {
        e = krappy_send(c, KRAPPY_T_PING, big, sizeof big);
        if (e == KRAPPY_OK)
            e = krappy_flush(c);
    }
    /* Still alive: SIGPIPE did not kill us. */
    assert_true(e == KRAPPY_E_CLOSED || e == KRAPPY_E_IO);
    assert_false(krappy_connected(c));
    assert_non_null(strstr(krappy_client_errmsg(c), "closed the connection"));
    krappy_client_free(c);
}

static void test_usage_errors(void **state)
{
    (void)state;
    krappy_frame r;
    krappy_client *c = krappy_client_new(NULL);
    assert_non_null(c);
    assert_int_equal(krappy_ping(c), KRAPPY_E_USAGE);
    assert_non_null(strstr(krappy_client_errmsg(c), "not connected"));
    assert_int_equal(krappy_send(c, KRAPPY_T_PING, NULL, 0), KRAPPY_E_USAGE);
    assert_int_equal(krappy_recv(c, &r), KRAPPY_E_USAGE);
    assert_int_equal(krappy_flush(c), KRAPPY_E_USAGE);
    assert_int_equal(krappy_in_flight(c), 0);

    static fake f; /* static: outlives a failed test's frame */
    fake_start(&f, script_ping_once, NULL);
    assert_int_equal(krappy_connect(c, NULL, f.port), KRAPPY_OK); /* NULL host: 127.0.0.1 */
    assert_int_equal(krappy_send(c, KRAPPY_T_PING, NULL, 0), KRAPPY_OK);
    assert_int_equal(krappy_in_flight(c), 1);
    assert_int_equal(krappy_call(c, KRAPPY_T_PING, NULL, 0, &r), KRAPPY_E_USAGE);
    assert_non_null(strstr(krappy_client_errmsg(c), "krappy_recv"));
    assert_int_equal(krappy_recv(c, &r), KRAPPY_OK);
    assert_int_equal(r.type, KRAPPY_T_OK);
    assert_int_equal(r.len, 0);
    assert_int_equal(krappy_in_flight(c), 0);
    assert_int_equal(krappy_send(c, KRAPPY_T_PING, "x", 0), KRAPPY_OK);
    assert_int_equal(krappy_send(c, KRAPPY_T_PING, NULL, 3), KRAPPY_E_USAGE);
    krappy_close(c);
    assert_int_equal(krappy_in_flight(c), 0);
    fake_join(&f);

    krappy_client_free(NULL);
    assert_int_equal(krappy_connected(NULL), 0);
    assert_int_equal(krappy_client_fd(NULL), -1);
    assert_non_null(krappy_version());
    assert_string_equal(krappy_version(), KRAPPY_VERSION);
    krappy_client_free(c);
}

typedef struct publish_script {
    int got_publish;
    int got_ping;
} publish_script;

static void script_publish_none(int fd, void *arg)
{
    publish_script *s = arg;
    kr_buf in;
    uint32_t type;
    kr_buf_init(&in, SIZE_MAX);
    if (read_frame(fd, &type, &in) == 0 && type == KRAPPY_T_PUBLISH)
        s->got_publish = 1; /* ack "none": no reply */
    if (read_frame(fd, &type, &in) == 0 && type == KRAPPY_T_PING) {
        s->got_ping = 1;
        write_frame(fd, KRAPPY_T_OK, NULL);
    }
    wait_eof(fd);
    kr_buf_free(&in);
}

static void test_publish_ack_none(void **state)
{
    (void)state;
    static publish_script s;
    memset(&s, 0, sizeof s);
    static fake f; /* static: outlives a failed test's frame */
    fake_start(&f, script_publish_none, &s);
    krappy_client *c = krappy_client_new(&(krappy_opts){.timeout_ms = 3000});
    assert_int_equal(krappy_connect(c, "127.0.0.1", f.port), KRAPPY_OK);

    kr_buf p;
    kr_buf_init(&p, 4096);
    uint8_t value[] = {0x01};
    kr_event_out_spec ev = {
        .key = "k", .key_len = 1, .key_is_text = true, .value = value, .value_len = 1};
    kr_enc_publish(&p, NO_CID, KR_ACK_NONE, &ev, 1);
    assert_false(p.failed);
    krappy_frame r;
    assert_int_equal(krappy_call(c, KRAPPY_T_PUBLISH, p.data, p.len, &r), KRAPPY_OK);
    assert_int_equal(r.type, 0);
    assert_int_equal(krappy_in_flight(c), 0);
    assert_int_equal(krappy_ping(c), KRAPPY_OK);
    kr_buf_free(&p);
    krappy_client_free(c);
    fake_join(&f);
    assert_true(s.got_publish);
    assert_true(s.got_ping);
}

/* ======================================================================
 * Storage requests against a scripted exchange
 * ====================================================================== */

/* A generic script: each step reads one request (when want != 0) and/or
 * writes one reply (when reply != 0), after an optional delay. Requests are
 * kept for the test to judge on its own thread. */
#define XS_MAX 16

typedef struct xstep {
    uint32_t want;  /* request type to read, 0 = none */
    uint32_t reply; /* reply type to write, 0 = none */
    kr_buf payload; /* the reply */
    int delay_ms;   /* before replying */
} xstep;

typedef struct xscript {
    xstep step[XS_MAX];
    int n;
    int close_at_end; /* close without waiting for the client's EOF */
    uint32_t got_type[XS_MAX];
    kr_buf got[XS_MAX];
    int n_got;
    int bad_type; /* a request of an unexpected type arrived */
} xscript;

static void xs_init(xscript *s)
{
    memset(s, 0, sizeof *s);
    for (int i = 0; i < XS_MAX; i++) {
        kr_buf_init(&s->step[i].payload, SIZE_MAX);
        kr_buf_init(&s->got[i], SIZE_MAX);
    }
}

static void xs_free(xscript *s)
{
    for (int i = 0; i < XS_MAX; i++) {
        kr_buf_free(&s->step[i].payload);
        kr_buf_free(&s->got[i]);
    }
}

/* Add a step; returns the reply buffer to fill with kr_enc_*. */
static kr_buf *xs_step(xscript *s, uint32_t want, uint32_t reply)
{
    assert_true(s->n < XS_MAX);
    xstep *st = &s->step[s->n++];
    st->want = want;
    st->reply = reply;
    return &st->payload;
}

static void script_x(int fd, void *arg)
{
    xscript *s = arg;
    for (int i = 0; i < s->n; i++) {
        xstep *st = &s->step[i];
        if (st->want != 0) {
            uint32_t type;
            kr_buf *g = &s->got[s->n_got];
            if (read_frame(fd, &type, g) < 0)
                return;
            s->got_type[s->n_got++] = type;
            if (type != st->want)
                s->bad_type = 1;
        }
        if (st->delay_ms > 0)
            usleep((useconds_t)st->delay_ms * 1000);
        if (st->reply != 0 && write_frame(fd, st->reply, &st->payload) < 0)
            return;
    }
    if (!s->close_at_end)
        wait_eof(fd);
}

static krappy_client *xs_connect(fake *f, xscript *s, int timeout_ms)
{
    fake_start(f, script_x, s);
    krappy_client *c = krappy_client_new(&(krappy_opts){.timeout_ms = timeout_ms});
    assert_non_null(c);
    assert_int_equal(krappy_connect(c, "127.0.0.1", f->port), KRAPPY_OK);
    return c;
}

/* Decode the i-th request the fake server received. */
static void xs_req(xscript *s, int i, uint32_t type, kr_buf *scratch, kr_request *req)
{
    char msg[256];
    assert_true(i < s->n_got);
    assert_int_equal(s->got_type[i], type);
    krappy_err e =
        kr_req_decode(type, s->got[i].data, s->got[i].len, scratch, req, msg, sizeof msg);
    if (e != KRAPPY_OK)
        fail_msg("request %d does not decode: %s", i, msg);
}

static void assert_str(kr_str s, const void *want, size_t n)
{
    assert_int_equal(s.len, n);
    if (n > 0)
        assert_memory_equal(s.ptr, want, n);
}

#define ASSERT_STR(s, lit) assert_str((s), (lit), sizeof(lit) - 1)

static kr_str S(const char *s)
{
    return (kr_str){(const uint8_t *)s, strlen(s)};
}

/* ---- PRODUCER_REGISTER and PUBLISH ---- */

static void test_register_and_publish(void **state)
{
    (void)state;
    static xscript s;
    static fake f;
    xs_init(&s);
    kr_str topic = S("orders");
    kr_enc_ok_producer(xs_step(&s, KRAPPY_T_PRODUCER_REGISTER, KRAPPY_T_OK), NO_CID, &topic, 41);
    kr_enc_ok_publish(xs_step(&s, KRAPPY_T_PUBLISH, KRAPPY_T_OK), (kr_cid){true, 1}, 41, 5);
    krappy_client *c = xs_connect(&f, &s, 5000);

    uint64_t next = 0;
    assert_int_equal(krappy_register_producer(c, "orders", "prod-1", &next), KRAPPY_OK);
    assert_int_equal(next, 41);

    krappy_batch *b = krappy_batch_new();
    assert_non_null(b);
    static const uint8_t bkey[] = {0x00, 0xff};
    static const uint8_t cbor_map[] = {0xa1, 0x61, 0x61, 0x01}; /* {"a": 1} */
    assert_int_equal(krappy_batch_add_text(b, KRAPPY_KEY_TEXT, "k1", 2, "hello", 5), KRAPPY_OK);
    assert_int_equal(krappy_batch_add(b, KRAPPY_KEY_BYTES, bkey, 2, cbor_map, 4), KRAPPY_OK);
    assert_int_equal(krappy_batch_set_ts(b, 1700000000123ull), KRAPPY_OK);
    assert_int_equal(krappy_batch_add_bytes(b, KRAPPY_KEY_NONE, NULL, 0, "\x01\x02", 2), KRAPPY_OK);
    assert_int_equal(krappy_batch_add_header(b, "trace", 5, "\xab", 1), KRAPPY_OK);
    assert_int_equal(krappy_batch_add_header(b, "", 0, NULL, 0), KRAPPY_OK);
    assert_int_equal(krappy_batch_add(b, KRAPPY_KEY_TEXT, "gone", 4, NULL, 0), KRAPPY_OK);
    assert_int_equal(krappy_batch_add_text(b, KRAPPY_KEY_TEXT, "", 0, "", 0), KRAPPY_OK);
    assert_int_equal(krappy_batch_set_ts(b, 7), KRAPPY_OK);
    assert_int_equal(krappy_batch_add_header(b, "h", 1, "v", 1), KRAPPY_OK);
    assert_int_equal(krappy_batch_count(b), 5);
    size_t est = krappy_batch_size(b);

    krappy_publish_result res;
    assert_int_equal(krappy_publish(c, b, KRAPPY_ACK_SYNC, &res), KRAPPY_OK);
    assert_int_equal(res.seq, 1);
    assert_int_equal(res.first, 41);
    assert_int_equal(res.count, 5);
    assert_int_equal(krappy_in_flight(c), 0);
    krappy_client_free(c);
    fake_join(&f);
    assert_false(s.bad_type);

    kr_buf scratch;
    kr_request req;
    kr_buf_init(&scratch, SIZE_MAX);
    xs_req(&s, 0, KRAPPY_T_PRODUCER_REGISTER, &scratch, &req);
    ASSERT_STR(req.u.producer_register.topic, "orders");
    ASSERT_STR(req.u.producer_register.id, "prod-1");
    assert_false(req.cid.set);

    xs_req(&s, 1, KRAPPY_T_PUBLISH, &scratch, &req);
    assert_true(s.got[1].len <= est); /* krappy_batch_size is an upper bound */
    assert_true(req.cid.set);
    assert_int_equal(req.cid.v, 1);
    assert_int_equal(req.u.publish.ack, KR_ACK_SYNC);
    assert_true(req.u.publish.batch);
    assert_int_equal(req.u.publish.count, 5);
    kr_events_iter ei;
    kr_event_in ev;
    kr_events_iter_init(&ei, &req, &scratch);

    assert_int_equal(kr_events_iter_next(&ei, &ev), 1); /* "k1" -> "hello" */
    assert_true(ev.key.present && ev.key.is_text);
    ASSERT_STR(ev.key.content, "k1");
    ASSERT_STR(ev.value, "\x65hello");
    assert_false(ev.has_ts);
    assert_false(ev.has_headers);
    assert_false(ev.tombstone);

    assert_int_equal(kr_events_iter_next(&ei, &ev), 1); /* h'00ff' -> {"a": 1}, ts */
    assert_true(ev.key.present && !ev.key.is_text);
    assert_str(ev.key.content, bkey, 2);
    assert_str(ev.value, cbor_map, 4);
    assert_true(ev.has_ts);
    assert_int_equal(ev.ts, 1700000000123ull);
    assert_false(ev.has_headers);

    assert_int_equal(kr_events_iter_next(&ei, &ev), 1); /* no key, h'0102', 2 headers */
    assert_false(ev.key.present);
    ASSERT_STR(ev.value, "\x42\x01\x02");
    assert_false(ev.has_ts); /* sent as null */
    assert_true(ev.has_headers);
    ASSERT_STR(ev.headers, "\xa2\x65trace\x41\xab\x60\x40");

    assert_int_equal(kr_events_iter_next(&ei, &ev), 1); /* "gone" -> tombstone */
    ASSERT_STR(ev.key.content, "gone");
    assert_true(ev.tombstone);
    ASSERT_STR(ev.value, "\xf6");

    assert_int_equal(kr_events_iter_next(&ei, &ev), 1); /* "" -> "", ts 7, header */
    assert_true(ev.key.present && ev.key.is_text);
    assert_int_equal(ev.key.content.len, 0);
    ASSERT_STR(ev.value, "\x60");
    assert_true(ev.has_ts);
    assert_int_equal(ev.ts, 7);
    ASSERT_STR(ev.headers, "\xa1\x61h\x41v");
    assert_int_equal(kr_events_iter_next(&ei, &ev), 0);

    /* The exact bytes of the second event: [h'00ff', {"a": 1}, ts]. */
    static const uint8_t ev2[] = {0x83, 0x42, 0x00, 0xff, 0xa1, 0x61, 0x61, 0x01, 0x1b,
                                  0x00, 0x00, 0x01, 0x8b, 0xcf, 0xe5, 0x68, 0x7b};
    assert_non_null(memmem(s.got[1].data, s.got[1].len, ev2, sizeof ev2));

    /* Reset keeps the memory and empties the batch. */
    krappy_batch_reset(b);
    assert_int_equal(krappy_batch_count(b), 0);
    kr_buf_free(&scratch);
    krappy_batch_free(b);
    xs_free(&s);
}

static void test_batch_usage(void **state)
{
    (void)state;
    krappy_batch *b = krappy_batch_new();
    static uint8_t longkey[KRAPPY_MAX_KEY_BYTES + 1];

    assert_int_equal(krappy_batch_set_ts(b, 1), KRAPPY_E_USAGE);
    assert_non_null(strstr(krappy_batch_errmsg(b), "no event"));
    assert_int_equal(krappy_batch_add_header(b, "a", 1, "b", 1), KRAPPY_E_USAGE);
    assert_int_equal(krappy_batch_add_text(b, KRAPPY_KEY_BYTES, longkey, sizeof longkey, "v", 1),
                     KRAPPY_E_USAGE);
    assert_non_null(strstr(krappy_batch_errmsg(b), "at most 16384"));
    assert_int_equal(krappy_batch_add_text(b, KRAPPY_KEY_TEXT, "\xff", 1, "v", 1), KRAPPY_E_USAGE);
    assert_non_null(strstr(krappy_batch_errmsg(b), "UTF-8"));
    assert_int_equal(krappy_batch_add_text(b, KRAPPY_KEY_NONE, NULL, 0, "\xc3", 1), KRAPPY_E_USAGE);
    assert_int_equal(krappy_batch_add(b, KRAPPY_KEY_NONE, NULL, 0, "\x82\x01", 2), KRAPPY_E_USAGE);
    assert_non_null(strstr(krappy_batch_errmsg(b), "well-formed"));
    assert_int_equal(krappy_batch_add(b, KRAPPY_KEY_NONE, NULL, 0, "\x01\x02", 2), KRAPPY_E_USAGE);
    assert_int_equal(krappy_batch_add(b, (krappy_key_type)7, "k", 1, NULL, 0), KRAPPY_E_USAGE);
    assert_int_equal(krappy_batch_count(b), 0);
    assert_int_equal(krappy_batch_add(b, KRAPPY_KEY_NONE, NULL, 0, "\x01", 1), KRAPPY_OK);
    assert_string_equal(krappy_batch_errmsg(b), "");
    assert_int_equal(krappy_batch_add_header(b, "\xff", 1, "b", 1), KRAPPY_E_USAGE);
    assert_int_equal(krappy_batch_count(b), 1);

    /* Without a connection: usage errors, nothing sent. */
    krappy_client *c = krappy_client_new(NULL);
    assert_int_equal(krappy_publish(c, b, KRAPPY_ACK_WRITE, NULL), KRAPPY_E_USAGE);
    assert_non_null(strstr(krappy_client_errmsg(c), "not connected"));
    assert_int_equal(krappy_publish_recv(c, NULL), KRAPPY_E_USAGE);
    krappy_batch_reset(b);
    krappy_client_free(c);
    krappy_batch_free(b);
    krappy_batch_free(NULL);
}

/* Pipelined batches, ack none and write mixed: only the acknowledged ones
 * are in flight; their replies carry their cids; confirm pings. */
static void test_publish_pipelined(void **state)
{
    (void)state;
    static xscript s;
    static fake f;
    xs_init(&s);
    for (int i = 0; i < 4; i++) /* read all four batches first */
        xs_step(&s, KRAPPY_T_PUBLISH, 0);
    kr_enc_ok_publish(xs_step(&s, 0, KRAPPY_T_OK), (kr_cid){true, 1}, 0, 2);
    kr_enc_ok_publish(xs_step(&s, 0, KRAPPY_T_OK), (kr_cid){true, 3}, 3, 1);
    kr_enc_ok_empty(xs_step(&s, KRAPPY_T_PING, KRAPPY_T_OK), NO_CID);
    krappy_client *c = xs_connect(&f, &s, 5000);

    krappy_batch *b = krappy_batch_new();
    const krappy_ack acks[4] = {KRAPPY_ACK_WRITE, KRAPPY_ACK_NONE, KRAPPY_ACK_WRITE,
                                KRAPPY_ACK_NONE};
    for (int i = 0; i < 4; i++) {
        uint64_t seq = 0;
        krappy_batch_reset(b);
        for (int j = 0; j <= (i == 0); j++)
            assert_int_equal(krappy_batch_add_text(b, KRAPPY_KEY_TEXT, "k", 1, "v", 1), KRAPPY_OK);
        assert_int_equal(krappy_publish_send(c, b, acks[i], &seq), KRAPPY_OK);
        assert_int_equal(seq, (uint64_t)i + 1);
    }
    assert_int_equal(krappy_in_flight(c), 2);
    /* A typed call refuses while acknowledgements are due. */
    assert_int_equal(krappy_publish_confirm(c), KRAPPY_E_USAGE);
    krappy_publish_result r;
    assert_int_equal(krappy_publish_recv(c, &r), KRAPPY_OK);
    assert_int_equal(r.seq, 1);
    assert_int_equal(r.first, 0);
    assert_int_equal(r.count, 2);
    assert_int_equal(krappy_publish_recv(c, &r), KRAPPY_OK);
    assert_int_equal(r.seq, 3);
    assert_int_equal(r.first, 3);
    assert_int_equal(r.count, 1);
    assert_int_equal(krappy_in_flight(c), 0);
    assert_int_equal(krappy_publish_recv(c, &r), KRAPPY_E_USAGE);
    assert_non_null(strstr(krappy_client_errmsg(c), "no PUBLISH acknowledgement is due"));
    assert_int_equal(krappy_publish_confirm(c), KRAPPY_OK);
    krappy_client_free(c);
    fake_join(&f);

    kr_buf scratch;
    kr_request req;
    kr_buf_init(&scratch, SIZE_MAX);
    static const kr_ack_mode modes[4] = {KR_ACK_WRITE, KR_ACK_NONE, KR_ACK_WRITE, KR_ACK_NONE};
    for (int i = 0; i < 4; i++) {
        xs_req(&s, i, KRAPPY_T_PUBLISH, &scratch, &req);
        assert_int_equal(req.u.publish.ack, modes[i]);
        assert_int_equal(req.cid.v, (uint64_t)i + 1);
    }
    kr_buf_free(&scratch);
    krappy_batch_free(b);
    xs_free(&s);
}

/* A batch sent with ack none is refused: the server sends ERROR with its cid
 * and closes; the client names the batch and what was lost. */
static void test_publish_none_refused(void **state)
{
    (void)state;
    static xscript s;
    static fake f;
    xs_init(&s);
    xs_step(&s, KRAPPY_T_PUBLISH, 0);
    xs_step(&s, KRAPPY_T_PUBLISH, 0);
    kr_enc_ok_publish(xs_step(&s, 0, KRAPPY_T_OK), (kr_cid){true, 1}, 10, 1);
    xs_step(&s, KRAPPY_T_PUBLISH, 0);
    xs_step(&s, KRAPPY_T_PUBLISH, 0);
    kr_enc_error(xs_step(&s, 0, KRAPPY_T_ERROR), (kr_cid){true, 3}, KRAPPY_E_INVALID_ARGUMENT,
                 "event 0: the value is not well-formed", NULL);
    s.close_at_end = 1;
    krappy_client *c = xs_connect(&f, &s, 5000);

    krappy_batch *b = krappy_batch_new();
    assert_int_equal(krappy_batch_add_text(b, KRAPPY_KEY_NONE, NULL, 0, "v", 1), KRAPPY_OK);
    krappy_publish_result r;
    assert_int_equal(krappy_publish_send(c, b, KRAPPY_ACK_WRITE, NULL), KRAPPY_OK);
    assert_int_equal(krappy_publish_send(c, b, KRAPPY_ACK_NONE, NULL), KRAPPY_OK);
    assert_int_equal(krappy_publish_recv(c, &r), KRAPPY_OK);
    assert_int_equal(r.seq, 1);
    assert_int_equal(krappy_publish_send(c, b, KRAPPY_ACK_NONE, NULL), KRAPPY_OK);
    assert_int_equal(krappy_publish_send(c, b, KRAPPY_ACK_WRITE, NULL), KRAPPY_OK);
    assert_int_equal(krappy_in_flight(c), 1);
    assert_int_equal(krappy_publish_recv(c, &r), KRAPPY_E_INVALID_ARGUMENT);
    assert_int_equal(r.seq, 3);
    const char *m = krappy_client_errmsg(c);
    assert_non_null(strstr(m, "batch #3 (ack none) was refused"));
    assert_non_null(strstr(m, "the value is not well-formed"));
    assert_non_null(strstr(m, "batches #3 to #4 were not stored"));
    assert_false(krappy_connected(c));
    krappy_client_free(c);
    fake_join(&f);
    krappy_batch_free(b);
    xs_free(&s);
}

/* The same failure found by krappy_publish_confirm. */
static void test_publish_confirm_refused(void **state)
{
    (void)state;
    static xscript s;
    static fake f;
    xs_init(&s);
    xs_step(&s, KRAPPY_T_PUBLISH, 0);
    kr_enc_error(xs_step(&s, 0, KRAPPY_T_ERROR), (kr_cid){true, 1}, KRAPPY_E_STORAGE, "disk full",
                 NULL);
    s.close_at_end = 1;
    krappy_client *c = xs_connect(&f, &s, 5000);
    krappy_batch *b = krappy_batch_new();
    assert_int_equal(krappy_batch_add_text(b, KRAPPY_KEY_NONE, NULL, 0, "v", 1), KRAPPY_OK);
    krappy_publish_result r;
    assert_int_equal(krappy_publish(c, b, KRAPPY_ACK_NONE, &r), KRAPPY_OK);
    assert_int_equal(r.seq, 1);
    assert_int_equal(r.count, 0);
    assert_int_equal(krappy_in_flight(c), 0);
    krappy_err e = krappy_publish_confirm(c);
    /* the ERROR itself, or the close that follows it, naming the batch */
    if (e == KRAPPY_E_STORAGE)
        assert_non_null(strstr(krappy_client_errmsg(c), "batch #1 (ack none) was refused"));
    else
        assert_int_equal(e, KRAPPY_E_CLOSED);
    assert_non_null(strstr(krappy_client_errmsg(c), "disk full"));
    assert_false(krappy_connected(c));
    krappy_client_free(c);
    fake_join(&f);
    krappy_batch_free(b);
    xs_free(&s);
}

/* The refusal of an ack-none batch arrives where a later call's reply was
 * due: the typed call reports the batch, not a failure of its own. */
static void test_none_refused_seen_by_fetch(void **state)
{
    (void)state;
    static xscript s;
    static fake f;
    xs_init(&s);
    xs_step(&s, KRAPPY_T_PUBLISH, 0);
    kr_enc_error(xs_step(&s, KRAPPY_T_FETCH, KRAPPY_T_ERROR), (kr_cid){true, 1},
                 KRAPPY_E_INVALID_ARGUMENT, "event 2: the key is longer than 16384 bytes", NULL);
    s.close_at_end = 1;
    krappy_client *c = xs_connect(&f, &s, 5000);
    krappy_batch *b = krappy_batch_new();
    assert_int_equal(krappy_batch_add_text(b, KRAPPY_KEY_NONE, NULL, 0, "v", 1), KRAPPY_OK);
    assert_int_equal(krappy_publish_send(c, b, KRAPPY_ACK_NONE, NULL), KRAPPY_OK);
    assert_int_equal(krappy_in_flight(c), 0);
    krappy_events *ev = NULL;
    assert_int_equal(krappy_fetch(c, "t", 0, 0, 0, 0, &ev), KRAPPY_E_INVALID_ARGUMENT);
    assert_null(ev);
    assert_non_null(strstr(krappy_client_errmsg(c), "batch #1 (ack none) was refused"));
    assert_non_null(strstr(krappy_client_errmsg(c), "longer than 16384"));
    assert_false(krappy_connected(c));
    krappy_client_free(c);
    fake_join(&f);
    krappy_batch_free(b);
    xs_free(&s);
}

/* ---- FETCH ---- */

static void test_fetch(void **state)
{
    (void)state;
    static xscript s;
    static fake f;
    xs_init(&s);
    kr_buf *p = xs_step(&s, KRAPPY_T_FETCH, KRAPPY_T_EVENTS);
    kr_enc_events_begin(p, NO_CID, 4);
    kr_str k_text = S("\x62k1"), v_text = S("\x65hello"),
           k_bytes = {(const uint8_t *)"\x42\x00\xff", 3};
    kr_str k_indef = S("\x7f\x61\x61\x62\x62\x63\xff"); /* (_ "a", "bc") */
    kr_str v_map = S("\xa1\x61\x61\x01"), v_null = S("\xf6");
    kr_str h = S("\xa1\x65trace\x41\xab");
    kr_enc_event(p, 5, 1000, &k_text, &v_text, NULL);
    kr_enc_event(p, 6, 1001, NULL, &v_map, &h); /* no key, headers */
    kr_enc_event(p, 7, 1002, &k_bytes, &v_null, NULL);
    kr_enc_event(p, 8, 1003, &k_indef, &v_text, &h);
    kr_enc_events_end(p, 9);
    kr_enc_events_begin(xs_step(&s, KRAPPY_T_FETCH, KRAPPY_T_EVENTS), NO_CID, 0);
    kr_enc_events_end(&s.step[1].payload, 9);
    s.step[1].delay_ms = 400; /* a long poll that outlasts the 200 ms timeout */
    krappy_client *c = xs_connect(&f, &s, 200);

    krappy_events *ev = NULL;
    assert_int_equal(krappy_fetch(c, "orders", 5, 0, 0, 0, &ev), KRAPPY_OK);
    assert_non_null(ev);
    assert_int_equal(ev->count, 4);
    assert_int_equal(ev->next, 9);
    const krappy_event *e = ev->events;
    assert_int_equal(e[0].offset, 5);
    assert_int_equal(e[0].ts, 1000);
    assert_true(e[0].has_key && e[0].key_is_text);
    assert_int_equal(e[0].key_len, 2);
    assert_memory_equal(e[0].key, "k1", 2);
    assert_int_equal(e[0].value_len, 6);
    assert_memory_equal(e[0].value, "\x65hello", 6);
    assert_false(e[0].has_headers);
    assert_null(e[0].headers);
    assert_false(e[0].is_tombstone);

    assert_false(e[1].has_key);
    assert_null(e[1].key);
    assert_int_equal(e[1].value_len, 4);
    assert_memory_equal(e[1].value, v_map.ptr, 4);
    assert_true(e[1].has_headers);
    assert_int_equal(e[1].headers_len, h.len);
    assert_memory_equal(e[1].headers, h.ptr, h.len);
    size_t pos = 0, nl, vl;
    const char *name;
    const uint8_t *val;
    assert_int_equal(
        krappy_header_next(e[1].headers, e[1].headers_len, &pos, &name, &nl, &val, &vl), 1);
    assert_int_equal(nl, 5);
    assert_memory_equal(name, "trace", 5);
    assert_int_equal(vl, 1);
    assert_int_equal(val[0], 0xab);
    assert_int_equal(
        krappy_header_next(e[1].headers, e[1].headers_len, &pos, &name, &nl, &val, &vl), 0);

    assert_true(e[2].has_key && !e[2].key_is_text);
    assert_memory_equal(e[2].key, "\x00\xff", 2);
    assert_true(e[2].is_tombstone);

    assert_true(e[3].has_key && e[3].key_is_text); /* an indefinite key, joined */
    assert_int_equal(e[3].key_len, 3);
    assert_memory_equal(e[3].key, "abc", 3);
    assert_true(e[3].has_headers);

    /* The long poll: the deadline is the timeout plus wait_ms. */
    krappy_events *ev2 = NULL;
    assert_int_equal(krappy_fetch(c, "orders", 9, 10, 4096, 1000, &ev2), KRAPPY_OK);
    assert_int_equal(ev2->count, 0);
    assert_null(ev2->events);
    assert_int_equal(ev2->next, 9);
    krappy_client_free(c); /* results outlive the client */
    assert_int_equal(ev->events[0].key[0], 'k');
    krappy_events_free(ev);
    krappy_events_free(ev2);
    krappy_events_free(NULL);
    fake_join(&f);

    kr_buf scratch;
    kr_request req;
    kr_buf_init(&scratch, SIZE_MAX);
    xs_req(&s, 0, KRAPPY_T_FETCH, &scratch, &req);
    ASSERT_STR(req.u.fetch.topic, "orders");
    assert_int_equal(req.u.fetch.offset, 5);
    assert_int_equal(req.u.fetch.max, KRAPPY_DEFAULT_MAX);
    assert_int_equal(req.u.fetch.wait_ms, 0);
    assert_int_equal(req.u.fetch.max_bytes, KRAPPY_DEFAULT_MAX_BYTES);
    xs_req(&s, 1, KRAPPY_T_FETCH, &scratch, &req);
    assert_int_equal(req.u.fetch.offset, 9);
    assert_int_equal(req.u.fetch.max, 10);
    assert_int_equal(req.u.fetch.wait_ms, 1000);
    assert_int_equal(req.u.fetch.max_bytes, 4096);
    kr_buf_free(&scratch);
    xs_free(&s);
}

static void test_fetch_out_of_range(void **state)
{
    (void)state;
    static xscript s;
    static fake f;
    xs_init(&s);
    kr_error_extra x = {.has_range = true, .first = 100, .next = 250};
    kr_enc_error(xs_step(&s, KRAPPY_T_FETCH, KRAPPY_T_ERROR), NO_CID, KRAPPY_E_OFFSET_OUT_OF_RANGE,
                 "offset 3 is below the first retained (100)", &x);
    kr_enc_error(xs_step(&s, KRAPPY_T_FETCH, KRAPPY_T_ERROR), NO_CID, KRAPPY_E_NO_SUCH_TOPIC,
                 "no topic named \"nope\"", NULL);
    /* a malformed EVENTS: an event of three items */
    kr_buf *p = xs_step(&s, KRAPPY_T_FETCH, KRAPPY_T_EVENTS);
    kr_enc_events_begin(p, NO_CID, 1);
    kr_cbor_put_raw(p, "\x83\x01\x02\xf6", 4);
    kr_enc_events_end(p, 2);
    krappy_client *c = xs_connect(&f, &s, 5000);

    krappy_events *ev = (krappy_events *)&ev;
    uint64_t first = 0, next = 0;
    assert_int_equal(krappy_fetch(c, "orders", 3, 0, 0, 0, &ev), KRAPPY_E_OFFSET_OUT_OF_RANGE);
    assert_null(ev);
    assert_int_equal(krappy_client_error_range(c, &first, &next), 1);
    assert_int_equal(first, 100);
    assert_int_equal(next, 250);
    assert_non_null(strstr(krappy_client_errmsg(c), "OFFSET_OUT_OF_RANGE"));
    assert_true(krappy_connected(c));

    assert_int_equal(krappy_fetch(c, "nope", 0, 0, 0, 0, &ev), KRAPPY_E_NO_SUCH_TOPIC);
    assert_int_equal(krappy_client_error_range(c, &first, &next), 0); /* reset by the call */
    assert_int_equal(krappy_fetch(c, "orders", 0, 0, 0, 0, &ev), KRAPPY_E_PROTOCOL);
    assert_non_null(strstr(krappy_client_errmsg(c), "events[0] is malformed"));
    assert_false(krappy_connected(c));
    assert_int_equal(krappy_fetch(c, "", 0, 0, 0, 0, &ev), KRAPPY_E_USAGE);
    krappy_client_free(c);
    fake_join(&f);
    xs_free(&s);
}

/* ---- GET ---- */

static void test_get(void **state)
{
    (void)state;
    static xscript s;
    static fake f;
    xs_init(&s);
    kr_str key = S("\x63key"), val = S("\x82\x01\x02"), h = S("\xa1\x61h\x40");
    kr_enc_value(xs_step(&s, KRAPPY_T_GET, KRAPPY_T_VALUE), NO_CID, &key, 12, 3456, &val, &h);
    kr_enc_error(xs_step(&s, KRAPPY_T_GET, KRAPPY_T_ERROR), NO_CID, KRAPPY_E_NOT_FOUND,
                 "no key \"zz\" in topic \"t\"", NULL);
    kr_enc_ok_empty(xs_step(&s, KRAPPY_T_GET, KRAPPY_T_OK), NO_CID); /* wrong reply type */
    krappy_client *c = xs_connect(&f, &s, 5000);

    krappy_value *v = NULL;
    assert_int_equal(krappy_get(c, "t", "key", 3, &v), KRAPPY_OK);
    assert_non_null(v);
    assert_int_equal(v->offset, 12);
    assert_int_equal(v->ts, 3456);
    assert_true(v->key_is_text);
    assert_int_equal(v->key_len, 3);
    assert_memory_equal(v->key, "key", 3);
    assert_int_equal(v->value_len, 3);
    assert_memory_equal(v->value, val.ptr, 3);
    assert_true(v->has_headers);
    assert_memory_equal(v->headers, h.ptr, h.len);
    krappy_value_free(v);

    assert_int_equal(krappy_get(c, "t", "zz", 2, &v), KRAPPY_E_NOT_FOUND);
    assert_null(v);
    assert_non_null(strstr(krappy_client_errmsg(c), "NOT_FOUND"));
    assert_non_null(strstr(krappy_client_errmsg(c), "no key \"zz\""));
    assert_true(krappy_connected(c));

    assert_int_equal(krappy_get(c, "t", "", 0, &v), KRAPPY_E_PROTOCOL);
    assert_non_null(strstr(krappy_client_errmsg(c), "instead of VALUE"));
    krappy_client_free(c);
    fake_join(&f);

    kr_buf scratch;
    kr_request req;
    kr_buf_init(&scratch, SIZE_MAX);
    xs_req(&s, 0, KRAPPY_T_GET, &scratch, &req);
    ASSERT_STR(req.u.get.topic, "t");
    ASSERT_STR(req.u.get.key.content, "key");
    xs_req(&s, 2, KRAPPY_T_GET, &scratch, &req);
    assert_true(req.u.get.key.present);
    assert_int_equal(req.u.get.key.content.len, 0);
    kr_buf_free(&scratch);
    xs_free(&s);
}

/* ---- GET pipelined: three in flight, replies in order ---- */

static void test_get_pipelined(void **state)
{
    (void)state;
    static xscript s;
    static fake f;
    xs_init(&s);
    xs_step(&s, KRAPPY_T_GET, 0);
    xs_step(&s, KRAPPY_T_GET, 0);
    xs_step(&s, KRAPPY_T_GET, 0);
    kr_str k1 = S("\x61"
                  "a"),
           k3 = S("\x61"
                  "c"),
           val = S("\x01");
    kr_enc_value(xs_step(&s, 0, KRAPPY_T_VALUE), NO_CID, &k1, 1, 10, &val, NULL);
    kr_enc_error(xs_step(&s, 0, KRAPPY_T_ERROR), NO_CID, KRAPPY_E_NOT_FOUND, "no key \"b\"", NULL);
    kr_enc_value(xs_step(&s, 0, KRAPPY_T_VALUE), NO_CID, &k3, 3, 30, &val, NULL);
    krappy_client *c = xs_connect(&f, &s, 5000);

    krappy_value *v = NULL;
    assert_int_equal(krappy_get_recv(c, &v), KRAPPY_E_USAGE); /* nothing due */
    assert_int_equal(krappy_get_send(c, "t", "a", 1), KRAPPY_OK);
    assert_int_equal(krappy_get_send(c, "t", "b", 1), KRAPPY_OK);
    assert_int_equal(krappy_get_send(c, "t", "c", 1), KRAPPY_OK);
    assert_int_equal(krappy_in_flight(c), 3);
    assert_int_equal(krappy_get_send(c, "", "d", 1), KRAPPY_E_USAGE); /* nothing sent */
    assert_int_equal(krappy_get_recv(c, &v), KRAPPY_OK);
    assert_int_equal(v->offset, 1);
    assert_memory_equal(v->key, "a", 1);
    krappy_value_free(v);
    assert_int_equal(krappy_get_recv(c, &v), KRAPPY_E_NOT_FOUND);
    assert_null(v);
    assert_true(krappy_connected(c));
    assert_int_equal(krappy_get_recv(c, &v), KRAPPY_OK);
    assert_int_equal(v->offset, 3);
    assert_memory_equal(v->key, "c", 1);
    krappy_value_free(v);
    assert_int_equal(krappy_in_flight(c), 0);
    krappy_client_free(c);
    fake_join(&f);

    kr_buf scratch;
    kr_request req;
    kr_buf_init(&scratch, SIZE_MAX);
    xs_req(&s, 1, KRAPPY_T_GET, &scratch, &req);
    ASSERT_STR(req.u.get.key.content, "b");
    kr_buf_free(&scratch);
    xs_free(&s);
}

/* ---- SCAN: three pages, the cursor passed back ---- */

static void test_scan_pages(void **state)
{
    (void)state;
    static xscript s;
    static fake f;
    xs_init(&s);
    kr_str cur1 = {(const uint8_t *)"c\x00\x01", 3}, cur2 = S("second-cursor");
    kr_str v1 = S("\x61\x31");
    const char *keys[5] = {"\x62u1", "\x62u2", "\x62u3", "\x42u4", "\x62u5"};
    int k = 0;
    for (int page = 0; page < 3; page++) {
        kr_buf *p = xs_step(&s, KRAPPY_T_SCAN, KRAPPY_T_ENTRIES);
        size_t n = page < 2 ? 2 : 1;
        kr_enc_entries_begin(p, NO_CID, n, page < 2);
        for (size_t i = 0; i < n; i++, k++) {
            kr_str key = S(keys[k]);
            kr_enc_entry(p, &key, (uint64_t)k, 500 + (uint64_t)k, &v1);
        }
        kr_enc_entries_end(p, 77, page == 0 ? &cur1 : page == 1 ? &cur2 : NULL);
    }
    krappy_client *c = xs_connect(&f, &s, 5000);

    krappy_scan *sc = NULL;
    assert_int_equal(krappy_scan_begin(c, "users", "u", 1, "u0", 2, 2, &sc), KRAPPY_OK);
    int pages = 0, seen = 0;
    for (;;) {
        size_t n;
        const krappy_event *e = krappy_scan_entries(sc, &n);
        assert_int_equal(krappy_scan_snapshot(sc), 77);
        for (size_t i = 0; i < n; i++, seen++) {
            char want[3] = {'u', (char)('1' + seen), 0};
            assert_int_equal(e[i].key_len, 2);
            assert_memory_equal(e[i].key, want, 2);
            assert_int_equal(e[i].key_is_text, seen != 3);
            assert_int_equal(e[i].offset, (uint64_t)seen);
            assert_int_equal(e[i].ts, 500 + (uint64_t)seen);
            assert_memory_equal(e[i].value, "\x61\x31", 2);
            assert_false(e[i].has_headers);
        }
        pages++;
        if (!krappy_scan_more(sc))
            break;
        assert_int_equal(krappy_scan_next_page(c, sc), KRAPPY_OK);
    }
    assert_int_equal(pages, 3);
    assert_int_equal(seen, 5);
    /* After the end: an empty page, nothing sent. */
    assert_int_equal(krappy_scan_next_page(c, sc), KRAPPY_OK);
    size_t n;
    assert_null(krappy_scan_entries(sc, &n));
    assert_int_equal(n, 0);
    krappy_scan_free(sc);
    krappy_scan_free(NULL);
    krappy_client_free(c);
    fake_join(&f);

    kr_buf scratch;
    kr_request req;
    kr_buf_init(&scratch, SIZE_MAX);
    assert_int_equal(s.n_got, 3);
    xs_req(&s, 0, KRAPPY_T_SCAN, &scratch, &req);
    ASSERT_STR(req.u.scan.topic, "users");
    assert_true(req.u.scan.has_prefix);
    ASSERT_STR(req.u.scan.prefix, "u");
    assert_true(req.u.scan.has_after);
    ASSERT_STR(req.u.scan.after, "u0");
    assert_int_equal(req.u.scan.limit, 2);
    assert_false(req.u.scan.has_cursor);
    xs_req(&s, 1, KRAPPY_T_SCAN, &scratch, &req);
    ASSERT_STR(req.u.scan.topic, "users");
    assert_false(req.u.scan.has_prefix);
    assert_false(req.u.scan.has_after);
    assert_true(req.u.scan.has_cursor);
    assert_str(req.u.scan.cursor, "c\x00\x01", 3);
    assert_int_equal(req.u.scan.limit, 2);
    xs_req(&s, 2, KRAPPY_T_SCAN, &scratch, &req);
    ASSERT_STR(req.u.scan.cursor, "second-cursor");
    kr_buf_free(&scratch);
    xs_free(&s);
}

/* No prefix, an empty `after` (which is a restriction), default limit. */
static void test_scan_defaults(void **state)
{
    (void)state;
    static xscript s;
    static fake f;
    xs_init(&s);
    kr_buf *p = xs_step(&s, KRAPPY_T_SCAN, KRAPPY_T_ENTRIES);
    kr_enc_entries_begin(p, NO_CID, 0, false);
    kr_enc_entries_end(p, 0, NULL);
    krappy_client *c = xs_connect(&f, &s, 5000);
    krappy_scan *sc = NULL;
    assert_int_equal(krappy_scan_begin(c, "users", NULL, 0, "", 0, 0, &sc), KRAPPY_OK);
    assert_false(krappy_scan_more(sc));
    krappy_scan_free(sc);
    krappy_client_free(c);
    fake_join(&f);
    kr_buf scratch;
    kr_request req;
    kr_buf_init(&scratch, SIZE_MAX);
    xs_req(&s, 0, KRAPPY_T_SCAN, &scratch, &req);
    assert_false(req.u.scan.has_prefix);
    assert_true(req.u.scan.has_after);
    assert_int_equal(req.u.scan.after.len, 0);
    assert_int_equal(req.u.scan.limit, KRAPPY_DEFAULT_SCAN_LIMIT);
    kr_buf_free(&scratch);
    xs_free(&s);
}

/* ---- TOPICS and STATS ---- */

static void test_topics_stats(void **state)
{
    (void)state;
    static xscript s;
    static fake f;
    xs_init(&s);
    kr_buf *p = xs_step(&s, KRAPPY_T_TOPICS, KRAPPY_T_OK);
    kr_enc_ok_topics_begin(p, NO_CID, 2);
    kr_enc_topic(p, &(kr_str){(const uint8_t *)"audit.log", 9}, 10, 20, NULL);
    kr_enc_topic(p, &(kr_str){(const uint8_t *)"users", 5}, 0, 0, NULL);
    p = xs_step(&s, KRAPPY_T_STATS, KRAPPY_T_OK);
    kr_enc_ok_stats_begin(p, NO_CID, &(kr_str){(const uint8_t *)"users", 5}, 3, 90, 123456, 40, 0,
                          2);
    kr_enc_group_stats(p, &(kr_str){(const uint8_t *)"billing", 7}, 80, 2, 10, 3);
    kr_enc_group_stats(p, &(kr_str){(const uint8_t *)"mail", 4}, 90, 0, 0, 0);
    p = xs_step(&s, KRAPPY_T_STATS, KRAPPY_T_OK);
    kr_enc_ok_stats_begin(p, NO_CID, &(kr_str){(const uint8_t *)"users", 5}, 3, 90, 1, 40, 0, 1);
    kr_enc_group_stats(p, &(kr_str){(const uint8_t *)"mail", 4}, 90, 0, 0, 0);
    kr_enc_error(xs_step(&s, KRAPPY_T_STATS, KRAPPY_T_ERROR), NO_CID, KRAPPY_E_NOT_FOUND,
                 "no group \"x\" on topic \"users\"", NULL);
    kr_enc_ok_topics_begin(xs_step(&s, KRAPPY_T_TOPICS, KRAPPY_T_OK), NO_CID, 0);
    krappy_client *c = xs_connect(&f, &s, 5000);

    krappy_topic_list *l = NULL;
    assert_int_equal(krappy_topics(c, &l), KRAPPY_OK);
    assert_int_equal(l->count, 2);
    assert_string_equal(l->topics[0].name, "audit.log");
    assert_int_equal(l->topics[0].name_len, 9);
    assert_int_equal(l->topics[0].first, 10);
    assert_int_equal(l->topics[0].next, 20);
    assert_string_equal(l->topics[1].name, "users");
    assert_int_equal(l->topics[1].next, 0);
    krappy_topic_list_free(l);

    krappy_topic_stats *st = NULL;
    assert_int_equal(krappy_stats(c, "users", NULL, &st), KRAPPY_OK);
    assert_string_equal(st->topic, "users");
    assert_int_equal(st->first, 3);
    assert_int_equal(st->next, 90);
    assert_int_equal(st->bytes, 123456);
    assert_int_equal(st->keys, 40);
    assert_int_equal(st->n_groups, 2);
    assert_string_equal(st->groups[0].group, "billing");
    assert_int_equal(st->groups[0].cursor, 80);
    assert_int_equal(st->groups[0].pending, 2);
    assert_int_equal(st->groups[0].lag, 10);
    assert_int_equal(st->groups[0].members, 3);
    assert_string_equal(st->groups[1].group, "mail");
    krappy_topic_stats_free(st);
    assert_int_equal(krappy_stats(c, "users", "mail", &st), KRAPPY_OK);
    assert_int_equal(st->n_groups, 1);
    krappy_topic_stats_free(st);
    assert_int_equal(krappy_stats(c, "users", "x", &st), KRAPPY_E_NOT_FOUND);
    assert_null(st);
    assert_int_equal(krappy_topics(c, &l), KRAPPY_OK);
    assert_int_equal(l->count, 0);
    assert_null(l->topics);
    krappy_topic_list_free(l);
    krappy_client_free(c);
    fake_join(&f);

    kr_buf scratch;
    kr_request req;
    kr_buf_init(&scratch, SIZE_MAX);
    xs_req(&s, 1, KRAPPY_T_STATS, &scratch, &req);
    ASSERT_STR(req.u.stats.topic, "users");
    assert_false(req.u.stats.has_group);
    xs_req(&s, 2, KRAPPY_T_STATS, &scratch, &req);
    assert_true(req.u.stats.has_group);
    ASSERT_STR(req.u.stats.group, "mail");
    kr_buf_free(&scratch);
    xs_free(&s);
}

/* ---- administration: DELETE_TOPIC, GROUP_SEEK, GROUP_DELETE ---- */

/* What each call sends and how it reads the answer, errors and the range
 * of an OFFSET_OUT_OF_RANGE included; a malformed answer closes. */
static void test_admin_calls(void **state)
{
    (void)state;
    static xscript s;
    static fake f;
    xs_init(&s);
    kr_str users = S("users");
    kr_enc_ok_topic(xs_step(&s, KRAPPY_T_DELETE_TOPIC, KRAPPY_T_OK), NO_CID, &users);
    kr_enc_error(xs_step(&s, KRAPPY_T_DELETE_TOPIC, KRAPPY_T_ERROR), NO_CID, KRAPPY_E_NO_SUCH_TOPIC,
                 "topic 'gone' does not exist", NULL);
    kr_enc_ok_cursor(xs_step(&s, KRAPPY_T_GROUP_SEEK, KRAPPY_T_OK), NO_CID, 0);
    kr_enc_ok_cursor(xs_step(&s, KRAPPY_T_GROUP_SEEK, KRAPPY_T_OK), NO_CID, 90);
    kr_enc_ok_cursor(xs_step(&s, KRAPPY_T_GROUP_SEEK, KRAPPY_T_OK), NO_CID, 42);
    kr_error_extra range = {.has_range = true, .first = 3, .next = 90};
    kr_enc_error(xs_step(&s, KRAPPY_T_GROUP_SEEK, KRAPPY_T_ERROR), NO_CID,
                 KRAPPY_E_OFFSET_OUT_OF_RANGE, "offset 99 is outside", &range);
    kr_enc_ok_cursor(xs_step(&s, KRAPPY_T_GROUP_SEEK, KRAPPY_T_OK), NO_CID, 61);
    kr_enc_ok_empty(xs_step(&s, KRAPPY_T_GROUP_DELETE, KRAPPY_T_OK), NO_CID);
    kr_enc_error(xs_step(&s, KRAPPY_T_GROUP_DELETE, KRAPPY_T_ERROR), NO_CID, KRAPPY_E_NOT_FOUND,
                 "no group", NULL);
    kr_enc_ok_empty(xs_step(&s, KRAPPY_T_GROUP_SEEK, KRAPPY_T_OK), NO_CID); /* no cursor */
    krappy_client *c = xs_connect(&f, &s, 5000);

    assert_int_equal(krappy_delete_topic(c, "users"), KRAPPY_OK);
    assert_int_equal(krappy_delete_topic(c, "gone"), KRAPPY_E_NO_SUCH_TOPIC);
    assert_non_null(strstr(krappy_client_errmsg(c), "does not exist"));
    uint64_t cursor = 7, first = 0, next = 0;
    assert_int_equal(krappy_group_seek(c, "users", "billing", KRAPPY_SEEK_EARLIEST, 0, &cursor),
                     KRAPPY_OK);
    assert_int_equal(cursor, 0);
    assert_int_equal(krappy_group_seek(c, "users", "billing", KRAPPY_SEEK_LATEST, 0, &cursor),
                     KRAPPY_OK);
    assert_int_equal(cursor, 90);
    assert_int_equal(krappy_group_seek(c, "users", "billing", KRAPPY_SEEK_OFFSET, 42, NULL),
                     KRAPPY_OK);
    assert_int_equal(krappy_group_seek(c, "users", "billing", KRAPPY_SEEK_OFFSET, 99, &cursor),
                     KRAPPY_E_OFFSET_OUT_OF_RANGE);
    assert_int_equal(krappy_client_error_range(c, &first, &next), 1);
    assert_int_equal(first, 3);
    assert_int_equal(next, 90);
    assert_int_equal(
        krappy_group_seek(c, "users", "billing", KRAPPY_SEEK_TIME, 1764000000000ull, &cursor),
        KRAPPY_OK);
    assert_int_equal(cursor, 61);
    assert_int_equal(krappy_group_delete(c, "users", "billing"), KRAPPY_OK);
    assert_int_equal(krappy_group_delete(c, "users", "x"), KRAPPY_E_NOT_FOUND);
    /* Misuse is refused before anything is sent. */
    assert_int_equal(krappy_group_seek(c, "users", NULL, KRAPPY_SEEK_LATEST, 0, NULL),
                     KRAPPY_E_USAGE);
    assert_int_equal(krappy_group_seek(c, "users", "g", (krappy_seek)9, 0, NULL), KRAPPY_E_USAGE);
    assert_int_equal(krappy_delete_topic(c, ""), KRAPPY_E_USAGE);
    assert_int_equal(krappy_group_delete(c, NULL, "g"), KRAPPY_E_USAGE);
    assert_int_equal(krappy_group_seek(c, "users", "billing", KRAPPY_SEEK_LATEST, 0, &cursor),
                     KRAPPY_E_PROTOCOL);
    krappy_client_free(c);
    fake_join(&f);

    kr_buf scratch;
    kr_request req;
    kr_buf_init(&scratch, SIZE_MAX);
    xs_req(&s, 0, KRAPPY_T_DELETE_TOPIC, &scratch, &req);
    ASSERT_STR(req.u.delete_topic.topic, "users");
    static const kr_seek_kind kinds[] = {KR_SEEK_EARLIEST, KR_SEEK_LATEST, KR_SEEK_OFFSET,
                                         KR_SEEK_OFFSET, KR_SEEK_TIME};
    static const uint64_t values[] = {0, 0, 42, 99, 1764000000000ull};
    for (int i = 0; i < 5; i++) {
        xs_req(&s, 2 + i, KRAPPY_T_GROUP_SEEK, &scratch, &req);
        ASSERT_STR(req.u.group_seek.topic, "users");
        ASSERT_STR(req.u.group_seek.group, "billing");
        assert_int_equal(req.u.group_seek.to, kinds[i]);
        assert_int_equal(req.u.group_seek.value, values[i]);
    }
    xs_req(&s, 7, KRAPPY_T_GROUP_DELETE, &scratch, &req);
    ASSERT_STR(req.u.group_delete.group, "billing");
    kr_buf_free(&scratch);
    xs_free(&s);
}

/* TOPIC_CONFIG: "name=value" texts become the request's `set`, the reply's
 * `config` the struct; a bad text is refused before anything is sent, a
 * reply without every setting closes. */
static void test_topic_config_call(void **state)
{
    (void)state;
    static xscript s;
    static fake f;
    xs_init(&s);
    kr_str users = S("users");
    kr_topic_config cfg = {.mask = KR_TC_ALL};
    cfg.v[KR_TC_CLEANUP] = KR_CLEANUP_COMPACT;
    cfg.v[KR_TC_RETENTION_BYTES] = 0;
    cfg.v[KR_TC_RETENTION_MS] = 7ull * 86400000;
    cfg.v[KR_TC_DELETE_RETENTION_MS] = 60000;
    cfg.v[KR_TC_SEGMENT_BYTES] = 16u << 20;
    cfg.v[KR_TC_SEGMENT_MS] = 600000;
    kr_enc_ok_topic_config(xs_step(&s, KRAPPY_T_TOPIC_CONFIG, KRAPPY_T_OK), NO_CID, &users, &cfg);
    kr_enc_ok_topic_config(xs_step(&s, KRAPPY_T_TOPIC_CONFIG, KRAPPY_T_OK), NO_CID, &users, &cfg);
    kr_enc_error(xs_step(&s, KRAPPY_T_TOPIC_CONFIG, KRAPPY_T_ERROR), NO_CID, KRAPPY_E_NO_SUCH_TOPIC,
                 "topic 'gone' does not exist", NULL);
    kr_topic_config part = {.mask = 1u << KR_TC_CLEANUP};
    part.v[KR_TC_CLEANUP] = KR_CLEANUP_DELETE;
    kr_enc_ok_topic_config(xs_step(&s, KRAPPY_T_TOPIC_CONFIG, KRAPPY_T_OK), NO_CID, &users, &part);
    krappy_client *c = xs_connect(&f, &s, 5000);

    krappy_topic_settings ts;
    assert_int_equal(krappy_topic_config(c, "users", NULL, 0, &ts), KRAPPY_OK);
    assert_int_equal(ts.cleanup, KRAPPY_CLEANUP_COMPACT);
    assert_int_equal(ts.retention_ms, 7ull * 86400000);
    assert_int_equal(ts.delete_retention_ms, 60000);
    assert_int_equal(ts.segment_bytes, 16u << 20);
    assert_int_equal(ts.segment_ms, 600000);
    assert_string_equal(krappy_cleanup_name(ts.cleanup), "compact");
    const char *set[] = {"cleanup=compact", "segment_ms=10m", "retention_ms=7d"};
    assert_int_equal(krappy_topic_config(c, "users", set, 3, NULL), KRAPPY_OK);
    assert_int_equal(krappy_topic_config(c, "gone", NULL, 0, &ts), KRAPPY_E_NO_SUCH_TOPIC);
    const char *bad[] = {"segment_ms=1"};
    assert_int_equal(krappy_topic_config(c, "users", bad, 1, &ts), KRAPPY_E_USAGE);
    assert_non_null(strstr(krappy_client_errmsg(c), "segment_ms"));
    assert_int_equal(krappy_topic_config(c, "", NULL, 0, &ts), KRAPPY_E_USAGE);
    assert_int_equal(krappy_topic_config(c, "users", NULL, 0, &ts), KRAPPY_E_PROTOCOL);
    assert_null(krappy_cleanup_name(0));
    krappy_client_free(c);
    fake_join(&f);

    kr_buf scratch;
    kr_request req;
    kr_buf_init(&scratch, SIZE_MAX);
    xs_req(&s, 0, KRAPPY_T_TOPIC_CONFIG, &scratch, &req);
    ASSERT_STR(req.u.topic_config.topic, "users");
    assert_false(req.u.topic_config.has_set);
    xs_req(&s, 1, KRAPPY_T_TOPIC_CONFIG, &scratch, &req);
    assert_true(req.u.topic_config.has_set);
    assert_int_equal(req.u.topic_config.set.mask,
                     (1u << KR_TC_CLEANUP) | (1u << KR_TC_SEGMENT_MS) | (1u << KR_TC_RETENTION_MS));
    assert_int_equal(req.u.topic_config.set.v[KR_TC_SEGMENT_MS], 600000);
    kr_buf_free(&scratch);
    xs_free(&s);
}

/* ======================================================================
 * Consumer groups: CONSUMER_REGISTER, POLL, ACK
 * ====================================================================== */

/* The i-th request received is exactly these bytes (a literal). */
#define ASSERT_GOT(s, i, type, lit)                                                                \
    do {                                                                                           \
        assert_true((i) < (s).n_got);                                                              \
        assert_int_equal((s).got_type[i], (type));                                                 \
        assert_int_equal((s).got[i].len, sizeof(lit) - 1);                                         \
        assert_memory_equal((s).got[i].data, (lit), sizeof(lit) - 1);                              \
    } while (0)

/* An OK to CONSUMER_REGISTER. */
static void ok_consumer(xscript *s, const char *member, uint64_t cursor)
{
    kr_str topic = S("orders"), group = S("billing"), m = S(member);
    kr_enc_ok_consumer(xs_step(s, KRAPPY_T_CONSUMER_REGISTER, KRAPPY_T_OK), NO_CID, &topic, &group,
                       &m, cursor);
}

/* Every start form and ack mode, with and without a member name. */
static void test_register_consumer(void **state)
{
    (void)state;
    static xscript s;
    static fake f;
    xs_init(&s);
    ok_consumer(&s, "member-17", 3);
    ok_consumer(&s, "alice", 250);
    ok_consumer(&s, "bob", 120);
    ok_consumer(&s, "member-18", 3);
    krappy_client *c = xs_connect(&f, &s, 5000);

    krappy_consumer_info info;
    assert_int_equal(krappy_register_consumer(c, "orders", "billing", NULL, &info), KRAPPY_OK);
    assert_string_equal(info.member, "member-17");
    assert_int_equal(info.member_len, 9);
    assert_int_equal(info.cursor, 3);

    krappy_consumer_opts o = {
        .start = KRAPPY_START_LATEST, .ack = KRAPPY_CONSUMER_ACK_AUTO, .member = "alice"};
    assert_int_equal(krappy_register_consumer(c, "orders", "billing", &o, &info), KRAPPY_OK);
    assert_string_equal(info.member, "alice");
    assert_int_equal(info.cursor, 250);

    o = (krappy_consumer_opts){.start = KRAPPY_START_OFFSET,
                               .start_offset = 120,
                               .ack = KRAPPY_CONSUMER_ACK_EXPLICIT,
                               .ack_wait_ms = 1500,
                               .member = "bob"};
    assert_int_equal(krappy_register_consumer(c, "orders", "billing", &o, &info), KRAPPY_OK);
    assert_int_equal(info.cursor, 120);

    o = (krappy_consumer_opts){.start = KRAPPY_START_OFFSET, .start_offset = 0};
    assert_int_equal(krappy_register_consumer(c, "orders", "billing", &o, NULL), KRAPPY_OK);
    assert_int_equal(krappy_in_flight(c), 0);
    krappy_client_free(c);
    fake_join(&f);
    assert_false(s.bad_type);
    assert_int_equal(s.n_got, 4);

    /* The defaults, byte for byte: {topic, group, start: "earliest", ack:
     * "explicit", ack_wait_ms: 30000}. */
    ASSERT_GOT(s, 0, KRAPPY_T_CONSUMER_REGISTER,
               "\xa5"
               "\x65topic\x66orders"
               "\x65group\x67"
               "billing"
               "\x65start\x68"
               "earliest"
               "\x63"
               "ack\x68"
               "explicit"
               "\x6b"
               "ack_wait_ms\x19\x75\x30");
    /* latest, auto, a member. */
    ASSERT_GOT(s, 1, KRAPPY_T_CONSUMER_REGISTER,
               "\xa6"
               "\x65topic\x66orders"
               "\x65group\x67"
               "billing"
               "\x66member\x65"
               "alice"
               "\x65start\x66latest"
               "\x63"
               "ack\x64"
               "auto"
               "\x6b"
               "ack_wait_ms\x19\x75\x30");

    kr_buf scratch;
    kr_request req;
    kr_buf_init(&scratch, SIZE_MAX);
    xs_req(&s, 1, KRAPPY_T_CONSUMER_REGISTER, &scratch, &req);
    assert_true(req.u.consumer_register.has_member);
    ASSERT_STR(req.u.consumer_register.member, "alice");
    assert_int_equal(req.u.consumer_register.start, KR_START_LATEST);
    assert_int_equal(req.u.consumer_register.ack, KR_CACK_AUTO);
    xs_req(&s, 2, KRAPPY_T_CONSUMER_REGISTER, &scratch, &req);
    ASSERT_STR(req.u.consumer_register.topic, "orders");
    ASSERT_STR(req.u.consumer_register.group, "billing");
    ASSERT_STR(req.u.consumer_register.member, "bob");
    assert_int_equal(req.u.consumer_register.start, KR_START_OFFSET);
    assert_int_equal(req.u.consumer_register.start_offset, 120);
    assert_int_equal(req.u.consumer_register.ack, KR_CACK_EXPLICIT);
    assert_int_equal(req.u.consumer_register.ack_wait_ms, 1500);
    assert_false(req.cid.set);
    xs_req(&s, 3, KRAPPY_T_CONSUMER_REGISTER, &scratch, &req);
    assert_false(req.u.consumer_register.has_member);
    assert_int_equal(req.u.consumer_register.start, KR_START_OFFSET);
    assert_int_equal(req.u.consumer_register.start_offset, 0);
    assert_int_equal(req.u.consumer_register.ack_wait_ms, KRAPPY_DEFAULT_ACK_WAIT_MS);
    kr_buf_free(&scratch);
    xs_free(&s);
}

/* POLL (defaults, then a long poll that outlasts the timeout), ACK upto, ACK
 * offsets with some ignored, and an empty ACK that only reads the cursor. */
static void test_poll_ack(void **state)
{
    (void)state;
    static xscript s;
    static fake f;
    xs_init(&s);
    kr_str k = S("\x62k1"), v = S("\x65hello"), v2 = S("\x18\x2a"), h = S("\xa1\x61h\x41v");
    kr_buf *p = xs_step(&s, KRAPPY_T_POLL, KRAPPY_T_EVENTS);
    kr_enc_events_begin(p, NO_CID, 3);
    kr_enc_event(p, 4, 1000, &k, &v, NULL); /* a redelivery first */
    kr_enc_event(p, 7, 1001, NULL, &v2, &h);
    kr_enc_event(p, 8, 1002, &k, &v, NULL);
    kr_enc_events_end(p, 9);
    p = xs_step(&s, KRAPPY_T_POLL, KRAPPY_T_EVENTS);
    kr_enc_events_begin(p, NO_CID, 0);
    kr_enc_events_end(p, 9);
    s.step[1].delay_ms = 400; /* longer than the 200 ms timeout */
    kr_enc_ok_ack(xs_step(&s, KRAPPY_T_ACK, KRAPPY_T_OK), NO_CID, 5, NULL, 0);
    static const uint64_t ign[] = {7, 300};
    kr_enc_ok_ack(xs_step(&s, KRAPPY_T_ACK, KRAPPY_T_OK), NO_CID, 9, ign, 2);
    kr_enc_ok_ack(xs_step(&s, KRAPPY_T_ACK, KRAPPY_T_OK), NO_CID, 9, NULL, 0);
    kr_enc_ok_ack(xs_step(&s, KRAPPY_T_ACK, KRAPPY_T_OK), NO_CID, 9, ign, 1);
    krappy_client *c = xs_connect(&f, &s, 200);

    krappy_events *ev = NULL;
    assert_int_equal(krappy_poll(c, 0, 0, 0, &ev), KRAPPY_OK);
    assert_int_equal(ev->count, 3);
    assert_int_equal(ev->next, 9);
    assert_int_equal(ev->events[0].offset, 4);
    assert_true(ev->events[0].has_key);
    assert_memory_equal(ev->events[0].key, "k1", 2);
    assert_memory_equal(ev->events[0].value, "\x65hello", 6);
    assert_int_equal(ev->events[1].offset, 7);
    assert_false(ev->events[1].has_key);
    assert_true(ev->events[1].has_headers);
    assert_int_equal(ev->events[2].ts, 1002);
    krappy_events *ev2 = NULL;
    assert_int_equal(krappy_poll(c, 5, 1000, 4096, &ev2), KRAPPY_OK);
    assert_int_equal(ev2->count, 0);
    assert_null(ev2->events);
    assert_int_equal(ev2->next, 9);
    krappy_events_free(ev2);

    uint64_t cursor = 0;
    assert_int_equal(krappy_ack_upto(c, 5, &cursor), KRAPPY_OK);
    assert_int_equal(cursor, 5);
    uint64_t offs[3] = {ev->events[0].offset, ev->events[1].offset, ev->events[2].offset};
    krappy_ack_result *ig = (krappy_ack_result *)&ig;
    assert_int_equal(krappy_ack_offsets(c, offs, 3, &cursor, &ig), KRAPPY_OK);
    assert_int_equal(cursor, 9);
    assert_non_null(ig);
    assert_int_equal(ig->cursor, 9);
    assert_int_equal(ig->n_ignored, 2);
    assert_int_equal(ig->ignored[0], 7);
    assert_int_equal(ig->ignored[1], 300);
    krappy_ack_result_free(ig);
    ig = (krappy_ack_result *)&ig;
    assert_int_equal(krappy_ack_offsets(c, NULL, 0, &cursor, &ig), KRAPPY_OK);
    assert_null(ig); /* nothing ignored: no result */
    assert_int_equal(krappy_ack_offsets(c, offs, 1, NULL, NULL), KRAPPY_OK);
    krappy_events_free(ev);
    krappy_ack_result_free(NULL);
    krappy_client_free(c);
    fake_join(&f);
    assert_false(s.bad_type);

    /* POLL with the defaults, byte for byte: {max: 100, wait_ms: 0,
     * max_bytes: 1048576}; then the values given. */
    ASSERT_GOT(s, 0, KRAPPY_T_POLL,
               "\xa3\x63max\x18\x64\x67wait_ms\x00\x69max_bytes\x1a\x00\x10\x00\x00");
    ASSERT_GOT(s, 1, KRAPPY_T_POLL,
               "\xa3\x63max\x05\x67wait_ms\x19\x03\xe8\x69max_bytes\x19\x10\x00");
    ASSERT_GOT(s, 2, KRAPPY_T_ACK, "\xa1\x64upto\x05");
    ASSERT_GOT(s, 3, KRAPPY_T_ACK, "\xa1\x67offsets\x83\x04\x07\x08");
    ASSERT_GOT(s, 4, KRAPPY_T_ACK, "\xa1\x67offsets\x80");
    ASSERT_GOT(s, 5, KRAPPY_T_ACK, "\xa1\x67offsets\x81\x04");
    xs_free(&s);
}

/* POLL and ACK in flight together; each *_recv takes its own reply or
 * refuses without receiving anything. */
static void test_consume_pipelined(void **state)
{
    (void)state;
    static xscript s;
    static fake f;
    xs_init(&s);
    xs_step(&s, KRAPPY_T_POLL, 0);
    xs_step(&s, KRAPPY_T_ACK, 0);
    xs_step(&s, KRAPPY_T_POLL, 0);
    kr_str v = S("\x61x");
    kr_buf *p = xs_step(&s, 0, KRAPPY_T_EVENTS);
    kr_enc_events_begin(p, NO_CID, 2);
    kr_enc_event(p, 10, 1, NULL, &v, NULL);
    kr_enc_event(p, 11, 2, NULL, &v, NULL);
    kr_enc_events_end(p, 12);
    static const uint64_t ign[] = {3};
    kr_enc_ok_ack(xs_step(&s, 0, KRAPPY_T_OK), NO_CID, 10, ign, 1);
    p = xs_step(&s, 0, KRAPPY_T_EVENTS);
    kr_enc_events_begin(p, NO_CID, 1);
    kr_enc_event(p, 12, 3, NULL, &v, NULL);
    kr_enc_events_end(p, 13);
    s.step[5].delay_ms = 400; /* a long poll: its wait extends the timeout */
    /* A raw request between: the POLL after it must wait its turn. */
    xs_step(&s, KRAPPY_T_PING, 0);
    xs_step(&s, KRAPPY_T_ACK, 0);
    kr_enc_ok_empty(xs_step(&s, 0, KRAPPY_T_OK), NO_CID);
    kr_enc_ok_ack(xs_step(&s, 0, KRAPPY_T_OK), NO_CID, 13, NULL, 0);
    /* A POLL whose reply krappy_recv takes instead. */
    p = xs_step(&s, KRAPPY_T_POLL, KRAPPY_T_EVENTS);
    kr_enc_events_begin(p, NO_CID, 0);
    kr_enc_events_end(p, 13);
    krappy_client *c = xs_connect(&f, &s, 200);

    assert_int_equal(krappy_poll_send(c, 10, 0, 0), KRAPPY_OK);
    static const uint64_t offs[] = {1, 3};
    assert_int_equal(krappy_ack_offsets_send(c, offs, 2), KRAPPY_OK);
    assert_int_equal(krappy_poll_send(c, 5, 1000, 0), KRAPPY_OK);
    assert_int_equal(krappy_in_flight(c), 3);

    uint64_t cursor = 0;
    krappy_ack_result *ig = NULL;
    krappy_events *ev = NULL;
    assert_int_equal(krappy_ack_recv(c, &cursor, &ig), KRAPPY_E_USAGE);
    assert_non_null(
        strstr(krappy_client_errmsg(c), "the reply to an earlier POLL request is due first"));
    assert_int_equal(krappy_poll(c, 0, 0, 0, &ev), KRAPPY_E_USAGE);
    assert_non_null(strstr(krappy_client_errmsg(c), "pipelined replies are still unread"));
    assert_int_equal(krappy_in_flight(c), 3);
    assert_true(krappy_connected(c));

    assert_int_equal(krappy_poll_recv(c, &ev), KRAPPY_OK);
    assert_int_equal(ev->count, 2);
    assert_int_equal(ev->events[1].offset, 11);
    assert_int_equal(ev->next, 12);
    krappy_events_free(ev);
    assert_int_equal(krappy_poll_recv(c, &ev), KRAPPY_E_USAGE);
    assert_null(ev);
    assert_non_null(
        strstr(krappy_client_errmsg(c), "the reply to an earlier ACK request is due first"));
    assert_int_equal(krappy_ack_recv(c, &cursor, &ig), KRAPPY_OK);
    assert_int_equal(cursor, 10);
    assert_non_null(ig);
    assert_int_equal(ig->n_ignored, 1);
    assert_int_equal(ig->ignored[0], 3);
    krappy_ack_result_free(ig);
    assert_int_equal(krappy_poll_recv(c, &ev), KRAPPY_OK); /* after 400 ms */
    assert_int_equal(ev->count, 1);
    assert_int_equal(ev->events[0].offset, 12);
    krappy_events_free(ev);
    assert_int_equal(krappy_in_flight(c), 0);
    assert_int_equal(krappy_ack_recv(c, &cursor, &ig), KRAPPY_E_USAGE);
    assert_non_null(strstr(krappy_client_errmsg(c), "no pipelined ACK reply is due"));

    /* A raw PING, then an ACK: the ACK's reply is not the next one. */
    assert_int_equal(krappy_send(c, KRAPPY_T_PING, NULL, 0), KRAPPY_OK);
    assert_int_equal(krappy_ack_upto_send(c, 13), KRAPPY_OK);
    assert_int_equal(krappy_ack_recv(c, &cursor, NULL), KRAPPY_E_USAGE);
    assert_non_null(strstr(krappy_client_errmsg(c), "1 earlier reply"));
    krappy_frame fr;
    assert_int_equal(krappy_recv(c, &fr), KRAPPY_OK);
    assert_int_equal(fr.type, KRAPPY_T_OK);
    assert_int_equal(krappy_ack_recv(c, &cursor, NULL), KRAPPY_OK);
    assert_int_equal(cursor, 13);

    /* A POLL whose reply the raw krappy_recv took: no longer due. */
    assert_int_equal(krappy_poll_send(c, 1, 0, 0), KRAPPY_OK);
    assert_int_equal(krappy_recv(c, &fr), KRAPPY_OK);
    assert_int_equal(fr.type, KRAPPY_T_EVENTS);
    assert_int_equal(krappy_poll_recv(c, &ev), KRAPPY_E_USAGE);
    assert_non_null(strstr(krappy_client_errmsg(c), "no pipelined POLL reply is due"));
    krappy_client_free(c);
    fake_join(&f);
    assert_false(s.bad_type);

    ASSERT_GOT(s, 0, KRAPPY_T_POLL,
               "\xa3\x63max\x0a\x67wait_ms\x00\x69max_bytes\x1a\x00\x10\x00\x00");
    ASSERT_GOT(s, 1, KRAPPY_T_ACK, "\xa1\x67offsets\x82\x01\x03");
    ASSERT_GOT(s, 2, KRAPPY_T_POLL,
               "\xa3\x63max\x05\x67wait_ms\x19\x03\xe8\x69max_bytes\x1a\x00\x10\x00\x00");
    ASSERT_GOT(s, 4, KRAPPY_T_ACK, "\xa1\x64upto\x0d");
    xs_free(&s);
}

/* The server's refusals: a start outside the topic (with first/next), no
 * such topic, no registration, an offset never handed out; then a
 * malformed reply, which closes. */
static void test_consume_errors(void **state)
{
    (void)state;
    static xscript s;
    static fake f;
    xs_init(&s);
    kr_error_extra x = {.has_range = true, .first = 100, .next = 250};
    kr_enc_error(xs_step(&s, KRAPPY_T_CONSUMER_REGISTER, KRAPPY_T_ERROR), NO_CID,
                 KRAPPY_E_OFFSET_OUT_OF_RANGE, "start 7 is outside the topic's offsets 100 to 250",
                 &x);
    kr_enc_error(xs_step(&s, KRAPPY_T_CONSUMER_REGISTER, KRAPPY_T_ERROR), NO_CID,
                 KRAPPY_E_NO_SUCH_TOPIC, "no topic named \"nope\"", NULL);
    kr_enc_error(xs_step(&s, KRAPPY_T_POLL, KRAPPY_T_ERROR), NO_CID, KRAPPY_E_NOT_REGISTERED,
                 "POLL needs a CONSUMER_REGISTER on this connection first", NULL);
    kr_enc_error(xs_step(&s, KRAPPY_T_ACK, KRAPPY_T_ERROR), NO_CID, KRAPPY_E_NOT_REGISTERED,
                 "ACK needs a CONSUMER_REGISTER on this connection first", NULL);
    kr_enc_error(xs_step(&s, KRAPPY_T_ACK, KRAPPY_T_ERROR), NO_CID, KRAPPY_E_INVALID_ARGUMENT,
                 "offset 77 was never handed out to group 'billing'; nothing of this ACK was "
                 "applied",
                 NULL);
    xs_step(&s, KRAPPY_T_POLL, 0);
    xs_step(&s, KRAPPY_T_ACK, 0);
    kr_enc_error(xs_step(&s, 0, KRAPPY_T_ERROR), NO_CID, KRAPPY_E_NOT_REGISTERED,
                 "the member was taken over by another connection", NULL);
    kr_enc_error(xs_step(&s, 0, KRAPPY_T_ERROR), NO_CID, KRAPPY_E_INVALID_ARGUMENT,
                 "offset 78 was never handed out", NULL);
    kr_buf *p = xs_step(&s, KRAPPY_T_ACK, KRAPPY_T_OK); /* `ignored` not an array */
    kr_cbor_put_map(p, 2);
    kr_cbor_put_cstr(p, "cursor");
    kr_cbor_put_uint(p, 1);
    kr_cbor_put_cstr(p, "ignored");
    kr_cbor_put_uint(p, 1);
    s.close_at_end = 1;
    krappy_client *c = xs_connect(&f, &s, 5000);

    krappy_consumer_info info;
    krappy_consumer_opts o = {.start = KRAPPY_START_OFFSET, .start_offset = 7};
    uint64_t first = 0, next = 0, cursor = 99;
    assert_int_equal(krappy_register_consumer(c, "orders", "billing", &o, &info),
                     KRAPPY_E_OFFSET_OUT_OF_RANGE);
    assert_int_equal(krappy_client_error_range(c, &first, &next), 1);
    assert_int_equal(first, 100);
    assert_int_equal(next, 250);
    assert_non_null(strstr(krappy_client_errmsg(c), "OFFSET_OUT_OF_RANGE"));
    assert_int_equal(krappy_register_consumer(c, "nope", "billing", NULL, &info),
                     KRAPPY_E_NO_SUCH_TOPIC);
    assert_int_equal(krappy_client_error_range(c, &first, &next), 0);

    krappy_events *ev = (krappy_events *)&ev;
    assert_int_equal(krappy_poll(c, 0, 0, 0, &ev), KRAPPY_E_NOT_REGISTERED);
    assert_null(ev);
    assert_non_null(strstr(krappy_client_errmsg(c), "server error NOT_REGISTERED"));
    assert_int_equal(krappy_ack_upto(c, 3, &cursor), KRAPPY_E_NOT_REGISTERED);
    assert_int_equal(cursor, 99);
    static const uint64_t offs[] = {5, 77};
    krappy_ack_result *ig = (krappy_ack_result *)&ig;
    assert_int_equal(krappy_ack_offsets(c, offs, 2, &cursor, &ig), KRAPPY_E_INVALID_ARGUMENT);
    assert_null(ig);
    assert_non_null(strstr(krappy_client_errmsg(c), "offset 77 was never handed out"));
    assert_true(krappy_connected(c));

    /* The same errors through the pipelined forms. */
    assert_int_equal(krappy_poll_send(c, 0, 0, 0), KRAPPY_OK);
    assert_int_equal(krappy_ack_offsets_send(c, offs, 2), KRAPPY_OK);
    assert_int_equal(krappy_poll_recv(c, &ev), KRAPPY_E_NOT_REGISTERED);
    assert_null(ev);
    assert_non_null(strstr(krappy_client_errmsg(c), "taken over"));
    ig = (krappy_ack_result *)&ig;
    assert_int_equal(krappy_ack_recv(c, &cursor, &ig), KRAPPY_E_INVALID_ARGUMENT);
    assert_null(ig);
    assert_int_equal(cursor, 99);
    assert_int_equal(krappy_in_flight(c), 0);
    assert_true(krappy_connected(c));

    assert_int_equal(krappy_ack_offsets(c, offs, 2, &cursor, &ig), KRAPPY_E_PROTOCOL);
    assert_non_null(strstr(krappy_client_errmsg(c), "`ignored` is not an array"));
    assert_false(krappy_connected(c));
    krappy_client_free(c);
    fake_join(&f);
    assert_false(s.bad_type);
    xs_free(&s);
}

/* The refusal of a batch sent with ack "none" arrives where a pipelined
 * POLL's reply was due: reported as that batch's, as for the typed calls. */
static void test_poll_sees_none_refused(void **state)
{
    (void)state;
    static xscript s;
    static fake f;
    xs_init(&s);
    xs_step(&s, KRAPPY_T_PUBLISH, 0);
    kr_enc_error(xs_step(&s, KRAPPY_T_POLL, KRAPPY_T_ERROR), (kr_cid){true, 1},
                 KRAPPY_E_INVALID_ARGUMENT, "event 0: the key is longer than 16384 bytes", NULL);
    s.close_at_end = 1;
    krappy_client *c = xs_connect(&f, &s, 5000);
    krappy_batch *b = krappy_batch_new();
    assert_int_equal(krappy_batch_add_text(b, KRAPPY_KEY_NONE, NULL, 0, "v", 1), KRAPPY_OK);
    assert_int_equal(krappy_publish_send(c, b, KRAPPY_ACK_NONE, NULL), KRAPPY_OK);
    assert_int_equal(krappy_poll_send(c, 1, 0, 0), KRAPPY_OK);
    krappy_events *ev;
    assert_int_equal(krappy_poll_recv(c, &ev), KRAPPY_E_INVALID_ARGUMENT);
    assert_null(ev);
    assert_non_null(strstr(krappy_client_errmsg(c), "batch #1 (ack none) was refused"));
    assert_false(krappy_connected(c));
    krappy_client_free(c);
    fake_join(&f);
    krappy_batch_free(b);
    xs_free(&s);
}

/* Malformed CONSUMER_REGISTER replies, and calls refused before sending. */
static void test_consume_usage(void **state)
{
    (void)state;
    static xscript s;
    static fake f;
    xs_init(&s);
    kr_buf *p = xs_step(&s, KRAPPY_T_CONSUMER_REGISTER, KRAPPY_T_OK); /* no member */
    kr_cbor_put_map(p, 1);
    kr_cbor_put_cstr(p, "cursor");
    kr_cbor_put_uint(p, 1);
    s.close_at_end = 1;
    krappy_client *c = xs_connect(&f, &s, 5000);

    krappy_consumer_info info;
    krappy_consumer_opts bad_start = {.start = (krappy_start)9};
    krappy_consumer_opts bad_ack = {.ack = (krappy_consumer_ack)9};
    krappy_consumer_opts empty_member = {.member = ""};
    assert_int_equal(krappy_register_consumer(c, "orders", NULL, NULL, &info), KRAPPY_E_USAGE);
    assert_non_null(strstr(krappy_client_errmsg(c), "the group is NULL"));
    assert_int_equal(krappy_register_consumer(c, "", "g", NULL, &info), KRAPPY_E_USAGE);
    assert_int_equal(krappy_register_consumer(c, "orders", "g", &bad_start, &info), KRAPPY_E_USAGE);
    assert_non_null(strstr(krappy_client_errmsg(c), "unknown start 9"));
    assert_int_equal(krappy_register_consumer(c, "orders", "g", &bad_ack, &info), KRAPPY_E_USAGE);
    assert_int_equal(krappy_register_consumer(c, "orders", "g", &empty_member, &info),
                     KRAPPY_E_USAGE);
    assert_int_equal(krappy_ack_offsets(c, NULL, 2, NULL, NULL), KRAPPY_E_USAGE);
    assert_int_equal(krappy_ack_offsets_send(c, NULL, 1), KRAPPY_E_USAGE);
    assert_int_equal(krappy_poll(c, 0, 0, 0, NULL), KRAPPY_E_USAGE);
    assert_int_equal(krappy_poll_recv(c, NULL), KRAPPY_E_USAGE);
    assert_int_equal(krappy_in_flight(c), 0);
    assert_true(krappy_connected(c));

    assert_int_equal(krappy_register_consumer(c, "orders", "g", NULL, &info), KRAPPY_E_PROTOCOL);
    assert_non_null(strstr(krappy_client_errmsg(c), "CONSUMER_REGISTER"));
    assert_false(krappy_connected(c));
    krappy_events *ev;
    assert_int_equal(krappy_poll_send(c, 0, 0, 0), KRAPPY_E_USAGE);
    assert_non_null(strstr(krappy_client_errmsg(c), "not connected"));
    assert_int_equal(krappy_poll_recv(c, &ev), KRAPPY_E_USAGE);
    assert_int_equal(krappy_ack_upto_send(c, 1), KRAPPY_E_USAGE);
    assert_int_equal(krappy_ack_recv(c, NULL, NULL), KRAPPY_E_USAGE);
    krappy_client_free(c);
    fake_join(&f);
    assert_int_equal(s.n_got, 1);
    xs_free(&s);

    /* NULL clients. */
    assert_int_equal(krappy_register_consumer(NULL, "t", "g", NULL, NULL), KRAPPY_E_USAGE);
    assert_int_equal(krappy_poll(NULL, 0, 0, 0, &ev), KRAPPY_E_USAGE);
    assert_null(ev);
    assert_int_equal(krappy_poll_send(NULL, 0, 0, 0), KRAPPY_E_USAGE);
    assert_int_equal(krappy_poll_recv(NULL, &ev), KRAPPY_E_USAGE);
    assert_int_equal(krappy_ack_upto(NULL, 0, NULL), KRAPPY_E_USAGE);
    assert_int_equal(krappy_ack_offsets(NULL, NULL, 0, NULL, NULL), KRAPPY_E_USAGE);
    assert_int_equal(krappy_ack_upto_send(NULL, 0), KRAPPY_E_USAGE);
    assert_int_equal(krappy_ack_offsets_send(NULL, NULL, 0), KRAPPY_E_USAGE);
    assert_int_equal(krappy_ack_recv(NULL, NULL, NULL), KRAPPY_E_USAGE);
}

/* ======================================================================
 * CBOR and JSON helpers
 * ====================================================================== */

/* Hex text to bytes; returns the length. */
static size_t unhex(const char *h, uint8_t *out, size_t cap)
{
    size_t n = 0;
    for (; h[0] != '\0' && h[1] != '\0' && n < cap; h += 2) {
        unsigned v;
        sscanf(h, "%2x", &v);
        out[n++] = (uint8_t)v;
    }
    return n;
}

typedef struct diag_vec {
    const char *hex, *diag, *json;
} diag_vec;

/* RFC 8949 Appendix A: every example, with its diagnostic notation as the
 * RFC writes it (non-ASCII text as UTF-8 here), and the JSON rendering. */
static const diag_vec appendix_a[] = {
    {"00", "0", "0"},
    {"01", "1", "1"},
    {"0a", "10", "10"},
    {"17", "23", "23"},
    {"1818", "24", "24"},
    {"1819", "25", "25"},
    {"1864", "100", "100"},
    {"1903e8", "1000", "1000"},
    {"1a000f4240", "1000000", "1000000"},
    {"1b000000e8d4a51000", "1000000000000", "1000000000000"},
    {"1bffffffffffffffff", "18446744073709551615", "18446744073709551615"},
    {"c249010000000000000000", "2(h'010000000000000000')", "\"AQAAAAAAAAAA\""},
    {"3bffffffffffffffff", "-18446744073709551616", "-18446744073709551616"},
    {"c349010000000000000000", "3(h'010000000000000000')", "\"AQAAAAAAAAAA\""},
    {"20", "-1", "-1"},
    {"29", "-10", "-10"},
    {"3863", "-100", "-100"},
    {"3903e7", "-1000", "-1000"},
    {"f90000", "0.0", "0.0"},
    {"f98000", "-0.0", "-0.0"},
    {"f93c00", "1.0", "1.0"},
    {"fb3ff199999999999a", "1.1", "1.1"},
    {"f93e00", "1.5", "1.5"},
    {"f97bff", "65504.0", "65504.0"},
    {"fa47c35000", "100000.0", "100000.0"},
    {"fa7f7fffff", "3.4028234663852886e+38", "3.4028234663852886e+38"},
    {"fb7e37e43c8800759c", "1.0e+300", "1.0e+300"},
    {"f90001", "5.960464477539063e-8", "5.960464477539063e-8"},
    {"f90400", "0.00006103515625", "0.00006103515625"},
    {"f9c400", "-4.0", "-4.0"},
    {"fbc010666666666666", "-4.1", "-4.1"},
    {"f97c00", "Infinity", "null"},
    {"f97e00", "NaN", "null"},
    {"f9fc00", "-Infinity", "null"},
    {"fa7f800000", "Infinity", "null"},
    {"fa7fc00000", "NaN", "null"},
    {"faff800000", "-Infinity", "null"},
    {"fb7ff0000000000000", "Infinity", "null"},
    {"fb7ff8000000000000", "NaN", "null"},
    {"fbfff0000000000000", "-Infinity", "null"},
    {"f4", "false", "false"},
    {"f5", "true", "true"},
    {"f6", "null", "null"},
    {"f7", "undefined", "null"},
    {"f0", "simple(16)", "null"},
    {"f8ff", "simple(255)", "null"},
    {"c074323031332d30332d32315432303a30343a30305a", "0(\"2013-03-21T20:04:00Z\")",
     "\"2013-03-21T20:04:00Z\""},
    {"c11a514b67b0", "1(1363896240)", "1363896240"},
    {"c1fb41d452d9ec200000", "1(1363896240.5)", "1363896240.5"},
    {"d74401020304", "23(h'01020304')", "\"AQIDBA\""},
    {"d818456449455446", "24(h'6449455446')", "\"ZElFVEY\""},
    {"d82076687474703a2f2f7777772e6578616d706c652e636f6d", "32(\"http://www.example.com\")",
     "\"http://www.example.com\""},
    {"40", "h''", "\"\""},
    {"4401020304", "h'01020304'", "\"AQIDBA\""},
    {"60", "\"\"", "\"\""},
    {"6161", "\"a\"", "\"a\""},
    {"6449455446", "\"IETF\"", "\"IETF\""},
    {"62225c", "\"\\\"\\\\\"", "\"\\\"\\\\\""},
    {"62c3bc", "\"\xc3\xbc\"", "\"\xc3\xbc\""},
    {"63e6b0b4", "\"\xe6\xb0\xb4\"", "\"\xe6\xb0\xb4\""},
    {"64f0908591", "\"\xf0\x90\x85\x91\"", "\"\xf0\x90\x85\x91\""},
    {"80", "[]", "[]"},
    {"83010203", "[1, 2, 3]", "[1,2,3]"},
    {"8301820203820405", "[1, [2, 3], [4, 5]]", "[1,[2,3],[4,5]]"},
    {"98190102030405060708090a0b0c0d0e0f101112131415161718181819",
     "[1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 17, 18, 19, 20, 21, 22, 23, 24, "
     "25]",
     "[1,2,3,4,5,6,7,8,9,10,11,12,13,14,15,16,17,18,19,20,21,22,23,24,25]"},
    {"a0", "{}", "{}"},
    {"a201020304", "{1: 2, 3: 4}", "{\"1\":2,\"3\":4}"},
    {"a26161016162820203", "{\"a\": 1, \"b\": [2, 3]}", "{\"a\":1,\"b\":[2,3]}"},
    {"826161a161626163", "[\"a\", {\"b\": \"c\"}]", "[\"a\",{\"b\":\"c\"}]"},
    {"a56161614161626142616361436164614461656145",
     "{\"a\": \"A\", \"b\": \"B\", \"c\": \"C\", \"d\": \"D\", \"e\": \"E\"}",
     "{\"a\":\"A\",\"b\":\"B\",\"c\":\"C\",\"d\":\"D\",\"e\":\"E\"}"},
    {"5f42010243030405ff", "(_ h'0102', h'030405')", "\"AQIDBAU\""},
    {"7f657374726561646d696e67ff", "(_ \"strea\", \"ming\")", "\"streaming\""},
    {"9fff", "[_ ]", "[]"},
    {"9f018202039f0405ffff", "[_ 1, [2, 3], [_ 4, 5]]", "[1,[2,3],[4,5]]"},
    {"9f01820203820405ff", "[_ 1, [2, 3], [4, 5]]", "[1,[2,3],[4,5]]"},
    {"83018202039f0405ff", "[1, [2, 3], [_ 4, 5]]", "[1,[2,3],[4,5]]"},
    {"83019f0203ff820405", "[1, [_ 2, 3], [4, 5]]", "[1,[2,3],[4,5]]"},
    {"9f0102030405060708090a0b0c0d0e0f101112131415161718181819ff",
     "[_ 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 17, 18, 19, 20, 21, 22, 23, "
     "24, 25]",
     "[1,2,3,4,5,6,7,8,9,10,11,12,13,14,15,16,17,18,19,20,21,22,23,24,25]"},
    {"bf61610161629f0203ffff", "{_ \"a\": 1, \"b\": [_ 2, 3]}", "{\"a\":1,\"b\":[2,3]}"},
    {"826161bf61626163ff", "[\"a\", {_ \"b\": \"c\"}]", "[\"a\",{\"b\":\"c\"}]"},
    {"bf6346756ef563416d7421ff", "{_ \"Fun\": true, \"Amt\": -2}", "{\"Fun\":true,\"Amt\":-2}"},
    /* beyond the appendix */
    {"5fff", "''_", "\"\""},
    {"7fff", "\"\"_", "\"\""},
    {"bfff", "{_ }", "{}"},
    {"a1f5f4", "{true: false}", "{\"true\":false}"},
    {"a1826161f6f5", "{[\"a\", null]: true}", "{\"[\\\"a\\\", null]\":true}"},
    {"62c285", "\"\\u0085\"", "\"\\u0085\""},           /* a C1 control */
    {"641b5b306d", "\"\\u001b[0m\"", "\"\\u001b[0m\""}, /* ESC: terminal-safe */
    {"6303ff7f", "\"\\u0003\\ufffd\\u007f\"", "\"\\u0003\\ufffd\\u007f\""},
    {"fb3fb999999999999a", "0.1", "0.1"},
    {"fb3eb0c6f7a0b5ed8d", "0.000001", "0.000001"},
    {"fb3e7ad7f29abcaf48", "1.0e-7", "1.0e-7"},
    {"fb4415af1d78b58c40", "100000000000000000000.0", "100000000000000000000.0"},
    {"fb444b1ae4d6e2ef50", "1.0e+21", "1.0e+21"},
    {"fb0000000000000001", "5.0e-324", "5.0e-324"},
    {"fa3dcccccd", "0.10000000149011612", "0.10000000149011612"},
    {"d9d9f7a0", "55799({})", "{}"},
};

static void test_cbor_render(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof appendix_a / sizeof appendix_a[0]; i++) {
        const diag_vec *v = &appendix_a[i];
        uint8_t b[64];
        size_t n = unhex(v->hex, b, sizeof b);
        char *d = NULL, *j = NULL;
        assert_int_equal(krappy_cbor_to_diag(b, n, &d), KRAPPY_OK);
        if (strcmp(d, v->diag) != 0)
            fail_msg("%s: diag %s, want %s", v->hex, d, v->diag);
        assert_int_equal(krappy_cbor_to_json(b, n, 0, &j), KRAPPY_OK);
        if (strcmp(j, v->json) != 0)
            fail_msg("%s: json %s, want %s", v->hex, j, v->json);
        krappy_free(d);
        krappy_free(j);
    }

    /* Bytes as hex on request. */
    char *j = NULL;
    assert_int_equal(krappy_cbor_to_json("\x82\x42\x00\xff\x5f\x41\x01\x41\x02\xff", 10,
                                         KRAPPY_JSON_BYTES_HEX, &j),
                     KRAPPY_OK);
    assert_string_equal(j, "[\"00ff\",\"0102\"]");
    krappy_free(j);

    /* Malformed input, trailing bytes, NULL out. */
    char *d = (char *)"x";
    assert_int_equal(krappy_cbor_to_diag("\x82\x01", 2, &d), KRAPPY_E_USAGE);
    assert_null(d);
    assert_int_equal(krappy_cbor_to_diag("\x01\x02", 2, &d), KRAPPY_E_USAGE);
    assert_int_equal(krappy_cbor_to_diag("", 0, &d), KRAPPY_E_USAGE);
    assert_int_equal(krappy_cbor_to_json("\x01", 1, 0, NULL), KRAPPY_E_USAGE);

    /* Depth is bounded: 64 nested arrays render, 65 do not. */
    uint8_t deep[80];
    memset(deep, 0x81, sizeof deep);
    deep[KRAPPY_CBOR_MAX_DEPTH] = 0x00;
    assert_int_equal(krappy_cbor_to_diag(deep, KRAPPY_CBOR_MAX_DEPTH + 1, &d), KRAPPY_OK);
    assert_int_equal(strlen(d), 2 * KRAPPY_CBOR_MAX_DEPTH + 1);
    krappy_free(d);
    memset(deep, 0x81, sizeof deep);
    deep[KRAPPY_CBOR_MAX_DEPTH + 1] = 0x00;
    assert_int_equal(krappy_cbor_to_diag(deep, KRAPPY_CBOR_MAX_DEPTH + 2, &d), KRAPPY_E_USAGE);
    memset(deep, 0xc1, sizeof deep); /* tags count too */
    deep[KRAPPY_CBOR_MAX_DEPTH + 1] = 0x00;
    assert_int_equal(krappy_cbor_to_json(deep, KRAPPY_CBOR_MAX_DEPTH + 2, 0, &d), KRAPPY_E_USAGE);

    /* krappy_cbor_text. */
    const char *t;
    size_t tl;
    assert_int_equal(krappy_cbor_text("\x62hi", 3, &t, &tl), 1);
    assert_int_equal(tl, 2);
    assert_memory_equal(t, "hi", 2);
    assert_int_equal(krappy_cbor_text("\x60", 1, &t, &tl), 1);
    assert_int_equal(tl, 0);
    assert_int_equal(krappy_cbor_text("\x42hi", 3, &t, &tl), 0);
    assert_int_equal(krappy_cbor_text("\x7f\x61h\xff", 4, &t, &tl), 0);
    assert_int_equal(krappy_cbor_text("\x62hi\x00", 4, &t, &tl), 0);

    /* krappy_header_next on odd maps. */
    size_t pos = 0;
    const char *name;
    const uint8_t *val;
    size_t nl, vl;
    assert_int_equal(krappy_header_next("\xa0", 1, &pos, &name, &nl, &val, &vl), 0);
    pos = 0;
    assert_int_equal(krappy_header_next("\xbf\x61"
                                        "a\x41"
                                        "b\xff",
                                        6, &pos, &name, &nl, &val, &vl),
                     1);
    assert_int_equal(krappy_header_next("\xbf\x61"
                                        "a\x41"
                                        "b\xff",
                                        6, &pos, &name, &nl, &val, &vl),
                     0);
    pos = 0;
    assert_int_equal(krappy_header_next("\xa1\x61"
                                        "a\x61"
                                        "b",
                                        5, &pos, &name, &nl, &val, &vl),
                     -1);
    pos = 0;
    assert_int_equal(krappy_header_next("\x80", 1, &pos, &name, &nl, &val, &vl), -1);
}

typedef struct json_vec {
    const char *json, *cbor_hex;
} json_vec;

static void test_json_to_cbor(void **state)
{
    (void)state;
    static const json_vec ok[] = {
        {"0", "00"},
        {"-0", "00"},
        {"23", "17"},
        {"24", "1818"},
        {"-1", "20"},
        {"-1000", "3903e7"},
        {"18446744073709551615", "1bffffffffffffffff"},
        {"-18446744073709551616", "3bffffffffffffffff"},
        {"18446744073709551616", "fa5f800000"}, /* 2^64: a float */
        {"1.5", "f93e00"},
        {"-0.0", "f98000"},
        {"1.0", "f93c00"},
        {"65504", "19ffe0"},
        {"65504.0", "f97bff"},
        {"100000.0", "fa47c35000"},
        {"1.1", "fb3ff199999999999a"},
        {"5.960464477539063e-8", "f90001"},
        {"0.00006103515625", "f90400"},
        {"1e300", "fb7e37e43c8800759c"},
        {"1E2", "f95640"},
        {"3.4028234663852886e+38", "fa7f7fffff"},
        {"1e999", "f97c00"},
        {"true", "f5"},
        {"false", "f4"},
        {"null", "f6"},
        {"\"\"", "60"},
        {"\"a\\n\\u00fc\\ud83d\\ude00\\/\"", "69610ac3bcf09f98802f"},
        {" [ 1 , [ ] , { } ] ", "8301 80 a0"},
        {"{\"a\":[1,2],\"b\":{\"c\":null},\"a\":true}", "a3 6161 820102 6162 a1 6163 f6 6161 f5"},
        {"\"\xc3\xbc\"", "62c3bc"},
    };
    for (size_t i = 0; i < sizeof ok / sizeof ok[0]; i++) {
        uint8_t want[64], *got = NULL;
        char hex[128], why[200];
        size_t wl = 0, gl = 0, h = 0;
        for (const char *p = ok[i].cbor_hex; *p; p++)
            if (*p != ' ')
                hex[h++] = *p;
        hex[h] = '\0';
        wl = unhex(hex, want, sizeof want);
        krappy_err e =
            krappy_json_to_cbor(ok[i].json, strlen(ok[i].json), &got, &gl, why, sizeof why);
        if (e != KRAPPY_OK)
            fail_msg("%s: refused: %s", ok[i].json, why);
        if (gl != wl || memcmp(got, want, wl) != 0) {
            char *d = NULL;
            krappy_cbor_to_diag(got, gl, &d);
            fail_msg("%s: got %s (%zu bytes)", ok[i].json, d, gl);
        }
        krappy_free(got);
    }
    /* A long array: the head is inserted before 300 children. */
    char big[2000];
    size_t n = 0;
    big[n++] = '[';
    for (int i = 0; i < 300; i++)
        n += (size_t)snprintf(big + n, sizeof big - n, "%s%d", i ? "," : "", i % 10);
    big[n++] = ']';
    uint8_t *got;
    size_t gl;
    assert_int_equal(krappy_json_to_cbor(big, n, &got, &gl, NULL, 0), KRAPPY_OK);
    assert_int_equal(gl, 3 + 300);
    assert_memory_equal(got, "\x99\x01\x2c", 3);
    krappy_free(got);

    static const struct {
        const char *json, *why;
    } bad[] = {
        {"", "expected a value at the end"},
        {"[1,]", "expected a value at byte 4"},
        {"[1 2]", "expected ',' or ']' at byte 4"},
        {"{\"a\" 1}", "expected ':' at byte 6"},
        {"{1:2}", "expected a member name"},
        {"01", "unexpected text after the JSON value at byte 2"},
        {"1.", "expected a digit after the decimal point"},
        {"-", "expected a digit"},
        {"1e+", "expected a digit in the exponent"},
        {"+1", "expected a value at byte 1"},
        {"tru", "expected a value"},
        {"\"abc", "unterminated string"},
        {"\"a\tb\"", "control character 0x09"},
        {"\"\\x\"", "unknown escape '\\x'"},
        {"\"\\u12\"", "four hex digits"},
        {"\"\\udc00\"", "lone low surrogate"},
        {"\"\\ud800x\"", "not followed by a low one"},
        {"\"\xff\"", "not valid UTF-8"},
        {"[1] x", "unexpected text"},
        {"NaN", "expected a value"},
        {"// c\n1", "expected a value"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        char why[200] = "";
        got = (uint8_t *)"x";
        krappy_err e =
            krappy_json_to_cbor(bad[i].json, strlen(bad[i].json), &got, &gl, why, sizeof why);
        if (e != KRAPPY_E_USAGE)
            fail_msg("%s: accepted", bad[i].json);
        assert_null(got);
        if (strstr(why, bad[i].why) == NULL)
            fail_msg("%s: \"%s\" lacks \"%s\"", bad[i].json, why, bad[i].why);
    }
    /* Nesting is bounded. */
    char deep[200];
    memset(deep, '[', sizeof deep);
    char why[200];
    assert_int_equal(krappy_json_to_cbor(deep, sizeof deep, &got, &gl, why, sizeof why),
                     KRAPPY_E_USAGE);
    assert_non_null(strstr(why, "nested deeper than 64"));
    memset(deep, ' ', sizeof deep);
    for (int i = 0; i < KRAPPY_CBOR_MAX_DEPTH; i++) {
        deep[i] = '[';
        deep[2 * KRAPPY_CBOR_MAX_DEPTH - 1 - i] = ']';
    }
    assert_int_equal(
        krappy_json_to_cbor(deep, 2 * KRAPPY_CBOR_MAX_DEPTH, &got, &gl, why, sizeof why),
        KRAPPY_OK);
    krappy_free(got);
}

/* A float-heavy round trip: JSON -> CBOR -> diag gives the same text. */
static void test_json_float_round_trip(void **state)
{
    (void)state;
    static const char *const nums[] = {"0.1",
                                       "0.2",
                                       "0.30000000000000004",
                                       "123.456",
                                       "1.0e-7",
                                       "2.5e-8",
                                       "9007199254740993.0",
                                       "1.7976931348623157e+308",
                                       "4.9406564584124654e-324"};
    for (size_t i = 0; i < sizeof nums / sizeof nums[0]; i++) {
        uint8_t *c;
        size_t cl;
        char *d;
        assert_int_equal(krappy_json_to_cbor(nums[i], strlen(nums[i]), &c, &cl, NULL, 0),
                         KRAPPY_OK);
        assert_int_equal(krappy_cbor_to_diag(c, cl, &d), KRAPPY_OK);
        double a = strtod(nums[i], NULL), b = strtod(d, NULL);
        if (a != b)
            fail_msg("%s -> %s", nums[i], d);
        krappy_free(c);
        krappy_free(d);
    }
}

static void test_json_event_parse(void **state)
{
    (void)state;
    kr_buf sc;
    kr_json_event ev;
    char why[256];
    kr_buf_init(&sc, 1 << 20);

    const char *l1 = "{\"key\":\"user-1\",\"value\":{\"n\":1.5,\"tags\":[\"a\"]},\"ts\":"
                     "1700000000000,\"headers\":{\"trace\":\"t-1\",\"x\":\"\"}}";
    assert_int_equal(kr_json_event_parse(l1, strlen(l1), &sc, &ev, why, sizeof why), KRAPPY_OK);
    assert_true(ev.has_key);
    assert_int_equal(ev.key_len, 6);
    assert_memory_equal(ev.key, "user-1", 6);
    char *d;
    assert_int_equal(krappy_cbor_to_diag(ev.value, ev.value_len, &d), KRAPPY_OK);
    assert_string_equal(d, "{\"n\": 1.5, \"tags\": [\"a\"]}");
    krappy_free(d);
    assert_true(ev.has_ts);
    assert_int_equal(ev.ts, 1700000000000ull);
    assert_int_equal(ev.n_headers, 2);
    assert_int_equal(krappy_cbor_to_diag(ev.headers, ev.headers_len, &d), KRAPPY_OK);
    assert_string_equal(d, "{\"trace\": h'742d31', \"x\": h''}");
    krappy_free(d);

    const char *l2 = "  {\"value\": null, \"key\": null, \"ts\": null, \"headers\": null} ";
    assert_int_equal(kr_json_event_parse(l2, strlen(l2), &sc, &ev, why, sizeof why), KRAPPY_OK);
    assert_false(ev.has_key);
    assert_false(ev.has_ts);
    assert_null(ev.headers);
    assert_int_equal(ev.value_len, 1);
    assert_int_equal(ev.value[0], 0xf6);

    const char *l3 = "{\"value\":\"x\",\"headers\":{}}";
    assert_int_equal(kr_json_event_parse(l3, strlen(l3), &sc, &ev, why, sizeof why), KRAPPY_OK);
    assert_null(ev.headers);
    assert_int_equal(ev.value_len, 2);

    static const struct {
        const char *line, *why;
    } bad[] = {
        {"[1]", "expected a JSON object"},
        {"{\"key\":\"k\"}", "no \"value\""},
        {"{\"value\":1,\"vaule\":2}", "unknown member \"vaule\""},
        {"{\"value\":1,\"value\":2}", "appears twice"},
        {"{\"value\":1,\"key\":3}", "\"key\" must be a string"},
        {"{\"value\":1,\"ts\":-5}", "\"ts\" must be a whole number"},
        {"{\"value\":1,\"ts\":1.5}", "\"ts\" must be a whole number"},
        {"{\"value\":1,\"headers\":[]}", "\"headers\" must be an object"},
        {"{\"value\":1,\"headers\":{\"h\":1}}", "header \"h\" must be a string"},
        {"{\"value\":1", "expected ',' or '}' at the end"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        why[0] = '\0';
        krappy_err e =
            kr_json_event_parse(bad[i].line, strlen(bad[i].line), &sc, &ev, why, sizeof why);
        if (e != KRAPPY_E_USAGE)
            fail_msg("%s: accepted", bad[i].line);
        if (strstr(why, bad[i].why) == NULL)
            fail_msg("%s: \"%s\" lacks \"%s\"", bad[i].line, why, bad[i].why);
    }
    kr_buf_free(&sc);
}

/* ======================================================================
 * Clusters: CLUSTER, NOT_LEADER's leader, address lists, the leader
 * ====================================================================== */

/* A HELLO step of a script. */
static void xs_hello(xscript *s)
{
    kr_enc_ok_hello(xs_step(s, KRAPPY_T_HELLO, KRAPPY_T_OK), (kr_cid){false, 0}, 1, "fake", 1 << 24,
                    10000);
}

/* A CLUSTER step: node `me` answering (halted: its store failed to apply
 * the log), `leader` leading at leader_addr. */
static void xs_cluster_of(xscript *s, uint64_t me, uint64_t leader, const char *leader_addr,
                          bool halted)
{
    kr_buf *b = xs_step(s, KRAPPY_T_CLUSTER, KRAPPY_T_OK);
    kr_cluster_head h = {"c0ffee", me, 3, leader, 10, 9, halted};
    kr_enc_ok_cluster_begin(b, (kr_cid){false, 0}, &h, 2);
    kr_cluster_node_out a = {.id = me, .addr = "me:7070", .role = "follower", .raft = "me:7072"};
    kr_cluster_node_out l = {.id = leader,
                             .addr = leader_addr,
                             .role = "leader",
                             .raft = "l:7072",
                             .kafka = "l:9092",
                             .has_lag = true,
                             .match = 10,
                             .lag = 0};
    kr_enc_cluster_node(b, &a);
    kr_enc_cluster_node(b, &l);
}

static void xs_cluster(xscript *s, uint64_t me, uint64_t leader, const char *leader_addr)
{
    xs_cluster_of(s, me, leader, leader_addr, false);
}

static void test_cluster_calls(void **state)
{
    (void)state;
    fake f;
    xscript s;
    xs_init(&s);
    xs_cluster(&s, 1, 2, "l:7070");
    kr_buf *b = xs_step(&s, KRAPPY_T_CLUSTER, KRAPPY_T_ERROR);
    kr_error_extra x = {.leader = "l:7070"};
    kr_enc_error(b, (kr_cid){false, 0}, KRAPPY_E_NOT_LEADER, "not the leader", &x);
    xs_cluster(&s, 2, 2, "l:7070");
    xs_cluster_of(&s, 1, 2, "l:7070", true);
    krappy_client *c = xs_connect(&f, &s, 5000);
    krappy_cluster_info *ci = NULL;
    assert_int_equal(krappy_cluster(c, &ci), KRAPPY_OK);
    assert_string_equal(ci->cluster, "c0ffee");
    assert_false(ci->halted);
    assert_int_equal(ci->node, 1);
    assert_int_equal(ci->leader, 2);
    assert_int_equal(ci->term, 3);
    assert_int_equal(ci->commit, 10);
    assert_int_equal(ci->applied, 9);
    assert_int_equal(ci->n_nodes, 2);
    assert_string_equal(ci->nodes[1].addr, "l:7070");
    assert_string_equal(ci->nodes[1].kafka, "l:9092");
    assert_string_equal(ci->nodes[1].role, "leader");
    assert_true(ci->nodes[1].has_lag);
    assert_false(ci->nodes[0].has_lag);
    krappy_cluster_info_free(ci);
    /* A membership change on a follower: NOT_LEADER, and where to go. */
    assert_int_equal(krappy_cluster_remove(c, 3, &ci), KRAPPY_E_NOT_LEADER);
    assert_null(ci);
    assert_string_equal(krappy_client_error_leader(c), "l:7070");
    assert_int_equal(krappy_cluster_add(c, 4, "n4:7072", &ci), KRAPPY_OK);
    assert_int_equal(ci->node, 2);
    krappy_cluster_info_free(ci);
    assert_string_equal(krappy_client_error_leader(c), ""); /* reset by the call */
    assert_int_equal(krappy_cluster_add(c, 0, "x:1", NULL), KRAPPY_E_USAGE);
    assert_int_equal(krappy_cluster_remove(c, 0, NULL), KRAPPY_E_USAGE);
    /* A node whose store halted says so. */
    assert_int_equal(krappy_cluster(c, &ci), KRAPPY_OK);
    assert_true(ci->halted);
    krappy_cluster_info_free(ci);
    krappy_client_free(c);
    fake_join(&f);
    kr_buf sc;
    kr_request req;
    kr_buf_init(&sc, 1 << 20);
    xs_req(&s, 1, KRAPPY_T_CLUSTER, &sc, &req);
    assert_true(req.u.cluster.has_remove);
    assert_int_equal(req.u.cluster.id, 3);
    xs_req(&s, 2, KRAPPY_T_CLUSTER, &sc, &req);
    assert_true(req.u.cluster.has_add);
    assert_int_equal(req.u.cluster.id, 4);
    ASSERT_STR(req.u.cluster.raft, "n4:7072");
    kr_buf_free(&sc);
    xs_free(&s);
}

/* A list of addresses: the first that answers; the leader found through
 * a follower. */
static void test_connect_leader(void **state)
{
    (void)state;
    fake fa, fb;
    xscript a, b;
    xs_init(&a);
    xs_init(&b);
    /* B leads; A follows and says so. */
    xs_hello(&b);
    xs_cluster(&b, 2, 2, "unused");
    kr_enc_ok_empty(xs_step(&b, KRAPPY_T_PING, KRAPPY_T_OK), (kr_cid){false, 0});
    fake_start(&fb, script_x, &b);
    char baddr[64];
    snprintf(baddr, sizeof baddr, "127.0.0.1:%s", fb.port);
    xs_hello(&a);
    xs_cluster(&a, 1, 2, baddr);
    a.close_at_end = 1;
    fake_start(&fa, script_x, &a);
    char list[256];
    int refused = listen_any(&(int){0});
    int rport = 0;
    close(refused);
    refused = listen_any(&rport); /* bound, never listening: refused */
    snprintf(list, sizeof list, "127.0.0.1:%d,127.0.0.1:%s", rport, fa.port);
    krappy_client *c = krappy_client_new(&(krappy_opts){.timeout_ms = 5000});
    krappy_server_info info;
    assert_int_equal(krappy_connect_leader(c, list, &info), KRAPPY_OK);
    assert_string_equal(info.server, "fake");
    assert_int_equal(krappy_ping(c), KRAPPY_OK); /* B's PING step */
    krappy_client_free(c);
    fake_join(&fa);
    fake_join(&fb);
    close(refused);
    assert_int_equal(a.n_got, 2);
    assert_int_equal(b.n_got, 3);
    /* A list where nothing answers says what each did. */
    c = krappy_client_new(&(krappy_opts){.connect_timeout_ms = 300});
    snprintf(list, sizeof list, "127.0.0.1:%d,127.0.0.1:%d", rport, rport);
    assert_int_equal(krappy_connect_addr(c, list), KRAPPY_E_IO);
    assert_non_null(strstr(krappy_client_errmsg(c), "no address of the list answered"));
    assert_int_equal(krappy_connect_addr(c, "127.0.0.1:1,,x"), KRAPPY_E_USAGE);
    assert_int_equal(krappy_connect_leader(c, list, NULL), KRAPPY_E_NOT_LEADER);
    assert_non_null(strstr(krappy_client_errmsg(c), "no node leads"));
    krappy_client_free(c);
    xs_free(&a);
    xs_free(&b);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_hello_round_trip),
        cmocka_unit_test(test_pipeline_no_deadlock),
        cmocka_unit_test(test_error_reply),
        cmocka_unit_test(test_error_closes),
        cmocka_unit_test(test_error_then_close_while_sending),
        cmocka_unit_test(test_closed_mid_frame),
        cmocka_unit_test(test_replies_before_close),
        cmocka_unit_test(test_garbage_size),
        cmocka_unit_test(test_timeout),
        cmocka_unit_test(test_connect_refused),
        cmocka_unit_test(test_connect_addr),
        cmocka_unit_test(test_no_sigpipe),
        cmocka_unit_test(test_usage_errors),
        cmocka_unit_test(test_publish_ack_none),
        cmocka_unit_test(test_register_and_publish),
        cmocka_unit_test(test_batch_usage),
        cmocka_unit_test(test_publish_pipelined),
        cmocka_unit_test(test_publish_none_refused),
        cmocka_unit_test(test_publish_confirm_refused),
        cmocka_unit_test(test_none_refused_seen_by_fetch),
        cmocka_unit_test(test_fetch),
        cmocka_unit_test(test_fetch_out_of_range),
        cmocka_unit_test(test_get),
        cmocka_unit_test(test_get_pipelined),
        cmocka_unit_test(test_scan_pages),
        cmocka_unit_test(test_scan_defaults),
        cmocka_unit_test(test_topics_stats),
        cmocka_unit_test(test_admin_calls),
        cmocka_unit_test(test_topic_config_call),
        cmocka_unit_test(test_register_consumer),
        cmocka_unit_test(test_poll_ack),
        cmocka_unit_test(test_consume_pipelined),
        cmocka_unit_test(test_consume_errors),
        cmocka_unit_test(test_poll_sees_none_refused),
        cmocka_unit_test(test_consume_usage),
        cmocka_unit_test(test_cbor_render),
        cmocka_unit_test(test_json_to_cbor),
        cmocka_unit_test(test_json_float_round_trip),
        cmocka_unit_test(test_json_event_parse),
        cmocka_unit_test(test_cluster_calls),
        cmocka_unit_test(test_connect_leader),
    };
    alarm(60); /* a hung test fails the run instead of stalling it */
    return cmocka_run_group_tests(tests, NULL, NULL);
}
