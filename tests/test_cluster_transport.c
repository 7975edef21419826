/*
 * tests/test_cluster_transport.c - cluster/transport.c on a libuv loop in
 * this thread, playing raft's part: two transports connect to each other by
 * name ("localhost:PORT") and by IPv6 literal, and the accepting side gets
 * the peer's id and address with a stream on which the bytes sent right
 * after the handshake are still there; malformed, foreign and stalled
 * handshakes are closed; unreachable peers fail within the connect bound;
 * closing cancels connects in flight; no handle outlives the transport.
 * The handshake carries the connecting node's info to the accepting one;
 * probes (kr_transport_probe, blocking, from another thread) are answered
 * by the owner's function; a transport that refuses raft still answers them.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cmocka.h>
#include <raft.h>
#include <raft/uv.h>
#include <uv.h>

#include "cluster/transport.h"
#include "util/log.h"

#include "loopback.h"

#define RUN_MS 5000 /* bound of every wait */

/* What one side of the test saw. */
typedef struct side {
    struct raft_uv_transport t;
    int accepted;
    raft_id peer_id;
    char peer_addr[KR_TRANSPORT_ADDRESS_MAX + 1];
    uv_stream_t *in; /* accepted stream, ours to close */
    char got[64];
    size_t n_got;
    int connects;
    int connect_status;
    uv_stream_t *out; /* connected stream, ours to close */
    int closed;
    int infos; /* on_info calls */
    uint64_t info_id;
    char info[64];
} side;

static uv_loop_t loop;

static void free_stream(uv_handle_t *h)
{
    raft_free(h);
}

static void in_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf)
{
    side *s = h->data;
    (void)suggested;
    buf->base = s->got + s->n_got;
    buf->len = sizeof s->got - 1 - s->n_got;
}

static void in_read(uv_stream_t *st, ssize_t nread, const uv_buf_t *buf)
{
    side *s = st->data;
    (void)buf;
    if (nread > 0)
        s->n_got += (size_t)nread;
}

static void on_accept(struct raft_uv_transport *t, raft_id id, const char *address,
                      uv_stream_t *stream)
{
    side *s = (side *)t; /* t is the first member */
    s->accepted++;
    s->peer_id = id;
    snprintf(s->peer_addr, sizeof s->peer_addr, "%s", address);
    s->in = stream;
    stream->data = s;
    uv_read_start(stream, in_alloc, in_read);
}

static void on_connect(struct raft_uv_connect *req, uv_stream_t *stream, int status)
{
    side *s = req->data;
    s->connects++;
    s->connect_status = status;
    s->out = stream;
}

static void on_info(void *arg, uint64_t id, const char *address, const uint8_t *info, size_t len)
{
    side *s = arg;
    (void)address;
    s->infos++;
    s->info_id = id;
    snprintf(s->info, sizeof s->info, "%.*s", (int)len, (const char *)info);
}

/* Answers "re:" and the request; "mute" gets no answer. */
static long echo_probe(void *arg, const uint8_t *req, size_t len, uint8_t *reply, size_t cap)
{
    (void)arg;
    if (len == 4 && memcmp(req, "mute", 4) == 0)
        return -1;
    assert_true(len + 3 <= cap);
    memcpy(reply, "re:", 3);
    memcpy(reply + 3, req, len);
    return (long)(len + 3);
}

static void on_closed(struct raft_uv_transport *t)
{
    ((side *)t)->closed++;
}

static void tick(uv_timer_t *t)
{
    (void)t;
}

/* Run the loop until *flag (when given) or `ms` passed. @return how long it
 * took (ms). A 10 ms timer keeps each turn short. */
static uint64_t run_for(const int *flag, uint64_t ms)
{
    uv_update_time(&loop);
    uint64_t start = uv_now(&loop);
    uv_timer_t guard;
    uv_timer_init(&loop, &guard);
    uv_timer_start(&guard, tick, 10, 10);
    while ((flag == NULL || !*flag) && uv_now(&loop) - start < ms)
        uv_run(&loop, UV_RUN_ONCE);
    uv_close((uv_handle_t *)&guard, NULL);
    uv_run(&loop, UV_RUN_NOWAIT);
    return uv_now(&loop) - start;
}

static uint64_t run_until(const int *flag)
{
    return run_for(flag, RUN_MS);
}

static void run_ms(uint64_t ms)
{
    run_for(NULL, ms);
}

static void side_init(side *s, raft_id id, const char *address, const kr_transport_opts *o)
{
    char err[256];
    memset(s, 0, sizeof *s);
    assert_int_equal(kr_transport_init(&s->t, &loop, o, err, sizeof err), 0);
    assert_int_equal(s->t.init(&s->t, id, address), 0);
}

/* Close everything the side holds and release it; the loop ends empty. */
static void side_close(side *s)
{
    if (s->in != NULL)
        uv_close((uv_handle_t *)s->in, free_stream);
    if (s->out != NULL)
        uv_close((uv_handle_t *)s->out, free_stream);
    s->in = s->out = NULL;
    s->t.close(&s->t, on_closed);
    assert_int_equal(s->closed, 0); /* never from inside close */
    run_until(&s->closed);
    assert_int_equal(s->closed, 1);
    kr_transport_release(&s->t);
}

static int setup(void **state)
{
    (void)state;
    kr_log_setup(KR_LOG_ERROR, KR_LOG_TEXT);
    assert_int_equal(uv_loop_init(&loop), 0);
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    uv_run(&loop, UV_RUN_NOWAIT);
    assert_int_equal(uv_loop_close(&loop), 0); /* nothing left open */
    return 0;
}

/* B connects to A (raft address a_addr, options a_opts) at `target`; A
 * learns B's id and address, and the bytes B writes first reach A's stream
 * whole. */
static void connect_and_talk(const char *a_addr, const kr_transport_opts *a_opts,
                             const char *target)
{
    side a, b;
    kr_transport_opts ao = a_opts != NULL ? *a_opts : (kr_transport_opts){0};
    ao.on_info = on_info;
    ao.arg = &a;
    kr_transport_opts bo = {.info = (const uint8_t *)"data=b:7070", .info_len = 11};
    side_init(&a, 1, a_addr, &ao);
    side_init(&b, 2, "node-b.example:7171", &bo);
    assert_int_equal(a.t.listen(&a.t, on_accept), 0);
    struct raft_uv_connect req = {.data = &b};
    assert_int_equal(b.t.connect(&b.t, &req, 1, target, on_connect), 0);
    run_until(&b.connects);
    assert_int_equal(b.connect_status, 0);
    assert_non_null(b.out);
    uv_buf_t msg = uv_buf_init("raft-message", 12);
    assert_int_equal(uv_try_write(b.out, &msg, 1), 12);
    run_until(&a.accepted);
    assert_int_equal(a.peer_id, 2);
    assert_string_equal(a.peer_addr, "node-b.example:7171");
    assert_int_equal(a.infos, 1); /* before raft heard of it */
    assert_int_equal(a.info_id, 2);
    assert_string_equal(a.info, "data=b:7070");
    for (int i = 0; i < 100 && a.n_got < 12; i++)
        run_ms(10);
    a.got[a.n_got] = '\0';
    assert_string_equal(a.got, "raft-message");
    side_close(&b);
    side_close(&a);
}

static void test_connect_by_name(void **state)
{
    (void)state;
    char addr[64];
    snprintf(addr, sizeof addr, "localhost:%d", kr_test_free_port());
    connect_and_talk(addr, NULL, addr);
}

static void test_connect_ipv6(void **state)
{
    (void)state;
    char addr[64];
    snprintf(addr, sizeof addr, "[::1]:%d", kr_test_free_port());
    connect_and_talk(addr, NULL, addr);
}

/* Listening on a bind address other than the raft address (which need not
 * even resolve). */
static void test_bind_address(void **state)
{
    (void)state;
    int port = kr_test_free_port();
    char bind[64], target[64];
    snprintf(bind, sizeof bind, "127.0.0.1:%d", port);
    snprintf(target, sizeof target, "localhost:%d", port);
    kr_transport_opts o = {.bind = bind};
    connect_and_talk("unresolvable-name.invalid:1", &o, target);
}

/* A raw client: connect to 127.0.0.1:port, send `n` bytes, then see whether
 * the server closes the connection within `ms`. @return 1 if closed. */
static int raw_closed_within(int port, const void *bytes, size_t n, uint64_t ms)
{
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
    struct sockaddr_in a = {.sin_family = AF_INET,
                            .sin_port = htons((uint16_t)port),
                            .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    connect(fd, (struct sockaddr *)&a, sizeof a);
    run_ms(50);
    if (n > 0)
        assert_int_equal(write(fd, bytes, n), (ssize_t)n);
    int closed = 0;
    uint64_t start = uv_now(&loop);
    while (!closed && uv_now(&loop) - start < ms) {
        run_ms(10);
        char c;
        ssize_t r = read(fd, &c, 1);
        closed = r == 0 || (r < 0 && errno != EAGAIN);
    }
    close(fd);
    return closed;
}

static void test_bad_handshakes(void **state)
{
    (void)state;
    int port = kr_test_free_port();
    char addr[64];
    snprintf(addr, sizeof addr, "127.0.0.1:%d", port);
    side a;
    kr_transport_opts o = {.handshake_ms = 300};
    side_init(&a, 1, addr, &o);
    assert_int_equal(a.t.listen(&a.t, on_accept), 0);

    uint8_t hs[KR_TRANSPORT_HANDSHAKE_MAX];
    size_t n = kr_transport_handshake(hs, sizeof hs, 7, "x:1", NULL, 0);
    assert_int_equal(n, KR_TRANSPORT_HEADER_BYTES + 3 + 2);

    uint8_t bad[KR_TRANSPORT_HANDSHAKE_MAX];
    memcpy(bad, hs, n);
    bad[0] = 'X'; /* magic */
    assert_true(raw_closed_within(port, bad, n, 1000));
    memcpy(bad, hs, n);
    bad[5] = 1; /* version 1 */
    assert_true(raw_closed_within(port, bad, n, 1000));
    memcpy(bad, hs, n);
    memset(bad + 8, 0, 8); /* id 0 */
    assert_true(raw_closed_within(port, bad, n, 1000));
    memcpy(bad, hs, n);
    bad[6] = 0x01; /* address length 256 + 3 > 255 */
    assert_true(raw_closed_within(port, bad, n, 1000));
    memcpy(bad, hs, n);
    bad[6] = bad[7] = 0; /* address length 0 */
    assert_true(raw_closed_within(port, bad, n, 1000));
    memcpy(bad, hs, n);
    bad[KR_TRANSPORT_HEADER_BYTES + 1] = '\0'; /* NUL inside the address */
    assert_true(raw_closed_within(port, bad, n, 1000));
    memcpy(bad, hs, n);
    bad[KR_TRANSPORT_HEADER_BYTES + 3] = 0x03; /* info length 768 > 512 */
    assert_true(raw_closed_within(port, bad, n, 1000));
    memcpy(bad, hs, n);
    memcpy(bad, "KRFP", 4); /* a probe too long (its length 259 is fine, */
    bad[4] = 0xff;          /* but version 0xff00 is not) */
    assert_true(raw_closed_within(port, bad, n, 1000));
    /* Nothing at all, then half a handshake: closed after handshake_ms. */
    assert_true(raw_closed_within(port, NULL, 0, 1500));
    assert_true(raw_closed_within(port, hs, n - 1, 1500));
    assert_int_equal(a.accepted, 0);
    /* A good one gets through, and raft's first message, sent in the same
     * write, is left for raft to read. */
    uint8_t both[KR_TRANSPORT_HANDSHAKE_MAX + 16];
    memcpy(both, hs, n);
    memcpy(both + n, "raft-message", 12);
    assert_false(raw_closed_within(port, both, n + 12, 200));
    run_until(&a.accepted);
    assert_int_equal(a.peer_id, 7);
    assert_string_equal(a.peer_addr, "x:1");
    a.got[a.n_got] = '\0';
    assert_string_equal(a.got, "raft-message");
    side_close(&a);
}

/* Unreachable peers fail within the connect bound; raft's callback gets
 * RAFT_NOCONNECTION and no stream. */
static void test_connect_failures(void **state)
{
    (void)state;
    side b;
    kr_transport_opts o = {.connect_ms = 500};
    side_init(&b, 2, "b:1", &o);
    const char *targets[] = {"no-such-host.invalid:7171", NULL, "192.0.2.1:7171"};
    char refused[64];
    snprintf(refused, sizeof refused, "127.0.0.1:%d", kr_test_free_port());
    targets[1] = refused;
    for (size_t i = 0; i < 3; i++) {
        b.connects = 0;
        b.out = NULL;
        struct raft_uv_connect req = {.data = &b};
        assert_int_equal(b.t.connect(&b.t, &req, 1, targets[i], on_connect), 0);
        uint64_t took = run_until(&b.connects);
        assert_int_equal(b.connects, 1);
        assert_int_equal(b.connect_status, RAFT_NOCONNECTION);
        assert_null(b.out);
        assert_true(took < 500 + 1000);
    }
    struct raft_uv_connect req = {.data = &b};
    assert_int_equal(b.t.connect(&b.t, &req, 1, "no-port", on_connect), RAFT_INVALID);
    assert_int_equal(b.t.connect(&b.t, &req, 1, "::1:80", on_connect), RAFT_INVALID);
    side_close(&b);
}

/* Closing the transport with a connect in flight completes it with
 * RAFT_CANCELED before the close callback. */
static void test_close_cancels(void **state)
{
    (void)state;
    side b;
    side_init(&b, 2, "b:1", NULL);
    struct raft_uv_connect req = {.data = &b};
    assert_int_equal(b.t.connect(&b.t, &req, 1, "192.0.2.1:7171", on_connect), 0);
    b.t.close(&b.t, on_closed);
    assert_int_equal(b.connects, 0); /* not from inside close */
    run_until(&b.closed);
    assert_int_equal(b.connects, 1);
    assert_int_equal(b.connect_status, RAFT_CANCELED);
    assert_null(b.out);
    kr_transport_release(&b.t);
}

/* The listen address is checked: a port in use or a bad address fails
 * listen with a message. */
static void test_listen_errors(void **state)
{
    (void)state;
    int port = kr_test_free_port();
    char addr[64];
    snprintf(addr, sizeof addr, "127.0.0.1:%d", port);
    side a, b;
    side_init(&a, 1, addr, NULL);
    side_init(&b, 2, addr, NULL);
    assert_int_equal(a.t.listen(&a.t, on_accept), 0);
    assert_int_equal(b.t.listen(&b.t, on_accept), RAFT_IOERR);
    assert_non_null(strstr(b.t.errmsg, "cannot listen"));
    side_close(&b);
    side_close(&a);

    char err[256];
    struct raft_uv_transport t;
    kr_transport_opts o = {.bind = "nonsense"};
    assert_int_equal(kr_transport_init(&t, &loop, &o, err, sizeof err), -1);
    assert_non_null(strstr(err, "HOST:PORT"));
    assert_int_equal(kr_transport_init(&t, &loop, NULL, err, sizeof err), 0);
    assert_int_equal(t.init(&t, 0, "a:1"), RAFT_INVALID);
    assert_int_equal(t.init(&t, 1, "a"), RAFT_INVALID);
    kr_transport_release(&t);
    kr_transport_release(NULL);
}

static void test_handshake(void **state)
{
    (void)state;
    uint8_t out[KR_TRANSPORT_HANDSHAKE_MAX];
    char longaddr[KR_TRANSPORT_ADDRESS_MAX + 2];
    uint8_t info[KR_TRANSPORT_INFO_MAX + 1];
    memset(info, 'i', sizeof info);
    memset(longaddr, 'a', sizeof longaddr - 1);
    longaddr[sizeof longaddr - 1] = '\0';
    assert_int_equal(kr_transport_handshake(out, sizeof out, 1, longaddr, NULL, 0), 0);
    longaddr[KR_TRANSPORT_ADDRESS_MAX] = '\0';
    assert_int_equal(
        kr_transport_handshake(out, sizeof out, 1, longaddr, info, KR_TRANSPORT_INFO_MAX),
        KR_TRANSPORT_HANDSHAKE_MAX);
    assert_int_equal(
        kr_transport_handshake(out, sizeof out, 1, "a:1", info, KR_TRANSPORT_INFO_MAX + 1), 0);
    assert_int_equal(kr_transport_handshake(out, sizeof out, 0, "a:1", NULL, 0), 0);
    assert_int_equal(kr_transport_handshake(out, sizeof out, 1, "", NULL, 0), 0);
    assert_int_equal(kr_transport_handshake(out, 20, 1, "a:1", NULL, 0), 0);
    assert_int_equal(kr_transport_handshake(out, sizeof out, 0x0102030405060708ULL, "a:1", info, 2),
                     23);
    static const uint8_t want[23] = {'K', 'R', 'F', 'T', 0,   2,   0,   3, 1, 2,   3,  4,
                                     5,   6,   7,   8,   'a', ':', '1', 0, 2, 'i', 'i'};
    assert_memory_equal(out, want, sizeof want);
}

typedef struct probe_call {
    char address[64];
    const char *req;
    unsigned timeout_ms;
    long rc;
    uint8_t reply[64];
    char err[256];
    int done;
} probe_call;

static void *probe_thread(void *arg)
{
    probe_call *p = arg;
    p->rc = kr_transport_probe(p->address, (const uint8_t *)p->req, strlen(p->req), p->reply,
                               sizeof p->reply, p->timeout_ms, p->err, sizeof p->err);
    __atomic_store_n(&p->done, 1, __ATOMIC_RELEASE);
    return NULL;
}

/* Run a probe from another thread while this one runs the loop. */
static void probe_from_thread(probe_call *p)
{
    pthread_t th;
    p->done = 0;
    assert_int_equal(pthread_create(&th, NULL, probe_thread, p), 0);
    for (int i = 0; i < 1000 && !__atomic_load_n(&p->done, __ATOMIC_ACQUIRE); i++)
        run_ms(10);
    pthread_join(th, NULL);
}

/* Probes are answered by the owner's function, also when the transport
 * refuses raft's connections; a request the function will not answer, a
 * port nothing listens on and a malformed address fail with a sentence. */
static void test_probes(void **state)
{
    (void)state;
    int port = kr_test_free_port();
    char addr[64];
    snprintf(addr, sizeof addr, "localhost:%d", port);
    side a, b;
    kr_transport_opts o = {.probe = echo_probe, .refuse_raft = 1, .on_info = on_info, .arg = &a};
    side_init(&a, 1, addr, &o);
    assert_int_equal(a.t.listen(&a.t, on_accept), 0);
    probe_call p = {.req = "who is there?", .timeout_ms = 2000};
    snprintf(p.address, sizeof p.address, "%s", addr);
    probe_from_thread(&p);
    assert_int_equal(p.rc, 16);
    assert_memory_equal(p.reply, "re:who is there?", 16);
    p.req = "";
    probe_from_thread(&p);
    assert_int_equal(p.rc, 3);
    p.req = "mute";
    probe_from_thread(&p);
    assert_int_equal(p.rc, -1);
    assert_non_null(strstr(p.err, "no probe reply"));
    /* Raft's connections are closed: B's connect succeeds (the handshake is
     * written) but A never hands a stream to raft, nor reports the info. */
    side_init(&b, 2, "b:1", NULL);
    struct raft_uv_connect req = {.data = &b};
    assert_int_equal(b.t.connect(&b.t, &req, 1, addr, on_connect), 0);
    run_until(&b.connects);
    run_ms(200);
    assert_int_equal(a.accepted, 0);
    assert_int_equal(a.infos, 0);
    side_close(&b);
    side_close(&a);

    snprintf(p.address, sizeof p.address, "127.0.0.1:%d", kr_test_free_port());
    p.req = "x";
    probe_from_thread(&p);
    assert_int_equal(p.rc, -1);
    assert_non_null(strstr(p.err, "nothing answers"));
    snprintf(p.address, sizeof p.address, "no-port");
    probe_from_thread(&p);
    assert_int_equal(p.rc, -1);
    assert_non_null(strstr(p.err, "HOST:PORT"));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_handshake),
        cmocka_unit_test_setup_teardown(test_probes, setup, teardown),
        cmocka_unit_test_setup_teardown(test_connect_by_name, setup, teardown),
        cmocka_unit_test_setup_teardown(test_connect_ipv6, setup, teardown),
        cmocka_unit_test_setup_teardown(test_bind_address, setup, teardown),
        cmocka_unit_test_setup_teardown(test_bad_handshakes, setup, teardown),
        cmocka_unit_test_setup_teardown(test_connect_failures, setup, teardown),
        cmocka_unit_test_setup_teardown(test_close_cancels, setup, teardown),
        cmocka_unit_test_setup_teardown(test_listen_errors, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
