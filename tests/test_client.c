/*
 * tests/test_client.c - libkrappy against a scripted fake server.
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

#include "client/client_internal.h"
#include "krappy/client.h"
#include "proto/buf.h"
#include "proto/cbor.h"
#include "proto/frame.h"
#include "proto/msg.h"

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

typedef struct split_case {
    const char *in;
    int ok;
    const char *host, *port;
} split_case;

static void test_split_addr(void **state)
{
    (void)state;
    static const split_case cases[] = {
        {NULL, 1, "127.0.0.1", "7070"},
        {"", 1, "127.0.0.1", "7070"},
        {"db1:9000", 1, "db1", "9000"},
        {"db1", 1, "db1", "7070"},
        {":17070", 1, "127.0.0.1", "17070"},
        {"10.0.0.5:1", 1, "10.0.0.5", "1"},
        {"[::1]:7071", 1, "::1", "7071"},
        {"[fe80::1%eth0]", 1, "fe80::1%eth0", "7070"},
        {"db1:65535", 1, "db1", "65535"},
        {"db1:", 0, NULL, NULL},
        {"db1:0", 0, NULL, NULL},
        {"db1:65536", 0, NULL, NULL},
        {"db1:70x", 0, NULL, NULL},
        {"db1:+80", 0, NULL, NULL},
        {"db1:123456", 0, NULL, NULL},
        {"::1", 0, NULL, NULL},
        {"::1:7070", 0, NULL, NULL},
        {"[::1", 0, NULL, NULL},
        {"[::1]x", 0, NULL, NULL},
        {"[]:7070", 0, NULL, NULL},
        {"[::1]:", 0, NULL, NULL},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char host[KR_CLIENT_HOST_MAX + 1], port[KR_CLIENT_PORT_MAX + 1], why[256];
        int r = kr_client_split_addr(cases[i].in, host, port, why, sizeof why);
        if (cases[i].ok) {
            if (r != 0)
                fail_msg("\"%s\" refused: %s", cases[i].in, why);
            assert_string_equal(host, cases[i].host);
            assert_string_equal(port, cases[i].port);
        } else {
            if (r == 0)
                fail_msg("\"%s\" accepted as %s / %s", cases[i].in, host, port);
            assert_true(strlen(why) > 10);
        }
    }
    /* A host too long for a DNS name. */
    char longhost[400];
    memset(longhost, 'a', sizeof longhost - 1);
    longhost[sizeof longhost - 1] = '\0';
    char host[KR_CLIENT_HOST_MAX + 1], port[KR_CLIENT_PORT_MAX + 1];
    assert_int_equal(kr_client_split_addr(longhost, host, port, NULL, 0), -1);

    char out[64];
    kr_client_format_addr(out, sizeof out, "::1", "7070");
    assert_string_equal(out, "[::1]:7070");
    kr_client_format_addr(out, sizeof out, "db1", "7070");
    assert_string_equal(out, "db1:7070");
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
        cmocka_unit_test(test_split_addr),
        cmocka_unit_test(test_connect_addr),
        cmocka_unit_test(test_no_sigpipe),
        cmocka_unit_test(test_usage_errors),
        cmocka_unit_test(test_publish_ack_none),
    };
    alarm(60); /* a hung test fails the run instead of stalling it */
    return cmocka_run_group_tests(tests, NULL, NULL);
}
