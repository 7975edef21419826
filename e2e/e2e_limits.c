/*
 * e2e/e2e_limits.c - krappyd's ceilings against clients that push, each
 * attack made to happen against a real krappyd and the figure it reached
 * printed next to the limit it is held to:
 *
 * - memory: ack "sync" PUBLISHes pipelined while every fdatasync takes a
 *   second (the LD_PRELOAD shim), from a client that reads its replies;
 *   many connections each holding most of an unfinished frame;
 * - shutdown: SIGTERM in the middle of the first attack ends within
 *   --shutdown-timeout and the final sync.
 *
 * Environment: KRAPPYD, KRAPPY_SHIM (the tests that need the shim skip
 * without it); KRAPPY_E2E_TORTURE=1 runs the loads longer, and
 * KRAPPY_E2E_SMOKE=1 (the -O2 smoke run) skips them.
 */
#include <errno.h>
#include <pthread.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "conn.h"
#include "harness.h"
#include "proto/frame.h"

/* krappyd closes a connection whose admitted frame stalls this long while
 * others wait for request memory (KR_STALL_MS in src/server/server.h). */
#define KR_STALL_MS_E2E 10000

static bool torture(void)
{
    return getenv("KRAPPY_E2E_TORTURE") != NULL;
}

/* The -O2 smoke run skips the loads of minutes and seconds. */
static bool smoke(void)
{
    return getenv("KRAPPY_E2E_SMOKE") != NULL;
}

static void sleep_ms(int ms)
{
    struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000};
    nanosleep(&ts, NULL);
}

/* Start a server in a fresh directory under the shim, with these faults. */
static void start_shimmed(e2e_server *s, const char *faults, const char *const *args)
{
    memset(s, 0, sizeof *s);
    e2e_tmp_template(s->dir, sizeof s->dir);
    assert_non_null(mkdtemp(s->dir));
    assert_int_equal(e2e_shim_on(s), 0);
    assert_int_equal(e2e_shim_faults(s, faults), 0);
    assert_int_equal(e2e_restart(s, args), 0);
    e2e_shim_off();
}

static bool have_shim(void)
{
    const char *shim = getenv("KRAPPY_SHIM");
    return shim != NULL && access(shim, R_OK) == 0;
}

/* ---- a pipelining producer: one thread sends, one reads ---- */

typedef struct pipeline {
    int fd;
    const uint8_t *frame; /* one whole PUBLISH frame, sent again and again */
    size_t frame_len;
    atomic_bool stop;
    atomic_ulong sent, ok, refused, other;
    pthread_t writer, reader;
} pipeline;

static void *pipe_writer(void *arg)
{
    pipeline *p = arg;
    while (!atomic_load(&p->stop)) {
        if (e2e_send_all(p->fd, p->frame, p->frame_len) < 0)
            break;
        atomic_fetch_add(&p->sent, 1);
    }
    return NULL;
}

static void *pipe_reader(void *arg)
{
    pipeline *p = arg;
    for (;;) {
        e2e_frame f;
        if (e2e_recv_frame(p->fd, &f, 30000) != 1)
            break;
        if (f.type == KRAPPY_T_OK) {
            atomic_fetch_add(&p->ok, 1);
        } else {
            kr_reply r;
            kr_error_in e;
            if (f.type == KRAPPY_T_ERROR && kr_reply_decode(f.type, f.payload, f.len, &r) == 0 &&
                kr_reply_error(&r, &e) == 0 && e.code == KRAPPY_E_SHUTTING_DOWN)
                atomic_fetch_add(&p->refused, 1);
            else
                atomic_fetch_add(&p->other, 1);
        }
        free(f.payload);
    }
    return NULL;
}

/* A PUBLISH frame of n events of `vlen`-byte values, ack as given. */
static void publish_frame(kr_buf *frame, size_t n, size_t vlen, kr_ack_mode ack)
{
    kr_event_out_spec *ev = calloc(n, sizeof *ev);
    uint8_t *val = malloc(vlen + 8);
    char(*keys)[16] = calloc(n, sizeof *keys);
    assert_non_null(ev);
    assert_non_null(val);
    assert_non_null(keys);
    kr_buf vb = {.data = val, .cap = vlen + 8, .max = vlen + 8};
    char *text = malloc(vlen + 1);
    assert_non_null(text);
    memset(text, 'x', vlen);
    text[vlen] = '\0';
    kr_cbor_put_cstr(&vb, text);
    for (size_t i = 0; i < n; i++) {
        snprintf(keys[i], sizeof keys[i], "k%zu", i);
        ev[i] = (kr_event_out_spec){.key = keys[i],
                                    .key_len = strlen(keys[i]),
                                    .key_is_text = true,
                                    .value = val,
                                    .value_len = vb.len};
    }
    kr_buf payload;
    kr_buf_init(&payload, 64u << 20);
    kr_enc_publish(&payload, (kr_cid){0}, ack, ev, n);
    assert_false(payload.failed);
    kr_buf_init(frame, 64u << 20);
    assert_int_equal(kr_frame_append(frame, KRAPPY_T_PUBLISH, payload.data, payload.len), 0);
    kr_buf_free(&payload);
    free(text);
    free(keys);
    free(val);
    free(ev);
}

/* Register a producer for `topic` on a raw connection. */
static void raw_register(int fd, const char *topic)
{
    kr_buf b;
    kr_buf_init(&b, 4096);
    kr_enc_producer_register(&b, (kr_cid){0}, topic, "limits");
    assert_int_equal(e2e_send_frame(fd, KRAPPY_T_PRODUCER_REGISTER, b.data, b.len), 0);
    assert_int_equal(e2e_expect_ok(fd), 0);
    kr_buf_free(&b);
}

/*
 * ack "sync" PUBLISHes of 1000 events (~110 KB each), pipelined without
 * limit by a client that reads every reply, while each fdatasync of the
 * stream takes a second: krappyd stops reading once --max-pending-bytes of
 * requests wait (RSS grew ~150 MiB/s past 2 GiB). Then SIGTERM with the
 * load still on: krappyd answers what it started, SHUTTING_DOWN the next,
 * and exits within --shutdown-timeout and its final sync (it could not
 * finish in 30 s).
 */
static void test_pipelined_sync_publishes_on_a_slow_disk(void **state)
{
    (void)state;
    if (!have_shim() || smoke())
        skip();
    const long budget_mib = 32;
    enum { PRODUCERS = 4 };
    const char *args[] = {"--max-pending-bytes", "32M", "--shutdown-timeout", "3s", NULL};
    e2e_server s;
    start_shimmed(&s, "sync /topics/ DELAY ms=1000 times=1000000\n", args);
    kr_buf frame;
    publish_frame(&frame, 1000, 100, KR_ACK_SYNC);
    pipeline p[PRODUCERS];
    memset(p, 0, sizeof p);
    for (int i = 0; i < PRODUCERS; i++) {
        p[i].fd = e2e_connect(&s);
        assert_true(p[i].fd >= 0);
        char topic[16];
        snprintf(topic, sizeof topic, "slow%d", i);
        raw_register(p[i].fd, topic);
        p[i].frame = frame.data;
        p[i].frame_len = frame.len;
    }
    long base = e2e_rss_kib(&s);
    for (int i = 0; i < PRODUCERS; i++) {
        assert_int_equal(pthread_create(&p[i].writer, NULL, pipe_writer, &p[i]), 0);
        assert_int_equal(pthread_create(&p[i].reader, NULL, pipe_reader, &p[i]), 0);
    }

    int seconds = torture() ? 30 : 6;
    long peak = base;
    for (int i = 0; i < seconds * 10; i++) {
        sleep_ms(100);
        long rss = e2e_rss_kib(&s);
        if (rss > peak)
            peak = rss;
    }
    unsigned long acked = 0, other = 0;
    for (int i = 0; i < PRODUCERS; i++)
        acked += atomic_load(&p[i].ok);
    uint64_t t0 = e2e_now_ms();
    int status = e2e_stop_keep(&s, 20000);
    uint64_t stop_ms = e2e_now_ms() - t0;
    for (int i = 0; i < PRODUCERS; i++) {
        atomic_store(&p[i].stop, true);
        shutdown(p[i].fd, SHUT_RDWR);
        pthread_join(p[i].writer, NULL);
        pthread_join(p[i].reader, NULL);
        close(p[i].fd);
        other += atomic_load(&p[i].other);
    }
    long growth_mib = (peak - base) / 1024;
    printf("      %d producers: %lu sync batches acknowledged in %d s of 1 s fdatasyncs; RSS %ld "
           "MiB at the start, peak +%ld MiB (budget %ld MiB); SIGTERM to exit %llu ms (timeout "
           "3 s)\n",
           PRODUCERS, acked, seconds, base / 1024, growth_mib, budget_mib,
           (unsigned long long)stop_ms);
    assert_int_equal(status, 0);
    assert_true(acked > 0);
    assert_int_equal(other, 0);
    /* The requests waiting (each decoded and encoded once more for the
     * stream) and the allocator's own overhead (ASan's redzones and
     * quarantine in the sanitized build). */
    assert_true(growth_mib <= 3 * budget_mib + 32);
    assert_true(stop_ms <= 3000 + 4000); /* the timeout, then the final sync */
    kr_buf_free(&frame);
    e2e_rm_tmp(s.dir);
}

/* Send from every connection without blocking until each has sent
 * `want` bytes of `data` or none has made progress for `idle_ms`.
 * @return the bytes sent in all. */
static uint64_t send_all_nonblocking(const int *fds, size_t n, const uint8_t *data, size_t want,
                                     int idle_ms)
{
    size_t *done = calloc(n, sizeof *done);
    assert_non_null(done);
    uint64_t total = 0, last_progress = e2e_now_ms();
    while (e2e_now_ms() - last_progress < (uint64_t)idle_ms) {
        bool all = true;
        for (size_t i = 0; i < n; i++) {
            if (done[i] >= want)
                continue;
            all = false;
            ssize_t w = send(fds[i], data + done[i], want - done[i], MSG_DONTWAIT | MSG_NOSIGNAL);
            if (w > 0) {
                done[i] += (size_t)w;
                total += (uint64_t)w;
                last_progress = e2e_now_ms();
            }
        }
        if (all)
            break;
        sleep_ms(5);
    }
    free(done);
    return total;
}

/*
 * Many connections each send most of a frame and stop (64 x 15 MiB of a
 * 16 MiB frame held 990 MiB): a frame is read only once the budget has room
 * for all of it, so at most --max-pending-bytes of them are read; the
 * connections whose admitted frames then stop arriving are closed after
 * KR_STALL_MS, and a request of another client - a 1 MiB frame, which
 * fits beside them once one goes - is answered.
 */
static void test_unfinished_frames_share_a_budget(void **state)
{
    (void)state;
    if (smoke())
        skip();
    const long budget_mib = 32, frame_mib = 16;
    const size_t n = 64, part = 15u << 20;
    const char *args[] = {"--max-pending-bytes", "32M", NULL};
    e2e_server s;
    assert_int_equal(e2e_start(&s, args), 0);
    long base = e2e_rss_kib(&s);
    int *fds = calloc(n, sizeof *fds);
    uint8_t *data = calloc(1, part);
    assert_non_null(fds);
    assert_non_null(data);
    /* A PUBLISH frame of 16 MiB announced; its payload never completes. */
    kr_frame_put_header(data, KRAPPY_T_PUBLISH, (size_t)(frame_mib << 20) - 4 - 4);
    for (size_t i = 0; i < n; i++) {
        fds[i] = e2e_connect(&s);
        assert_true(fds[i] >= 0);
    }
    uint64_t sent = send_all_nonblocking(fds, n, data, part, 1500);
    long peak = e2e_rss_kib(&s), growth_mib = (peak - base) / 1024;
    /* The budget, one frame past it (the longest waiter's), a read chunk
     * each, and the buffers' own overhead. */
    long ceiling_mib = budget_mib + frame_mib + (long)n / 16 + 32;

    /* Another client's 1 MiB frame (a PUBLISH without a producer: its
     * answer is NOT_REGISTERED) waits for room, then is answered. */
    uint64_t t0 = e2e_now_ms();
    int other = e2e_connect(&s);
    assert_true(other >= 0);
    size_t big = 1u << 20;
    uint8_t *frame = calloc(1, big);
    assert_non_null(frame);
    kr_frame_put_header(frame, KRAPPY_T_PUBLISH, big - 8);
    frame[8] = 0xa0; /* an empty map, then padding the map does not read */
    assert_int_equal(e2e_send_all(other, frame, big), 0);
    e2e_frame f = {0};
    int got = e2e_recv_frame(other, &f, 30000);
    uint64_t answer_ms = e2e_now_ms() - t0;
    printf("      %zu connections sent %llu MiB of unfinished frames: RSS +%ld MiB (ceiling %ld "
           "MiB, budget %ld MiB); another client's 1 MiB frame answered after %llu ms\n",
           n, (unsigned long long)(sent >> 20), growth_mib, ceiling_mib, budget_mib,
           (unsigned long long)answer_ms);
    assert_true(growth_mib <= ceiling_mib);
    assert_int_equal(got, 1);
    assert_int_equal(f.type, KRAPPY_T_ERROR);
    assert_true(answer_ms < 2 * KR_STALL_MS_E2E);
    free(f.payload);
    free(frame);
    close(other);
    for (size_t i = 0; i < n; i++)
        close(fds[i]);
    free(fds);
    free(data);
    assert_int_equal(e2e_stop(&s, 10000), 0);
}

int main(void)
{
    signal(SIGPIPE, SIG_IGN);
    if (e2e_external_addr() != NULL) {
        printf("e2e_limits: needs its own servers; skipped with KRAPPY_E2E_ADDR\n");
        return 0;
    }
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_pipelined_sync_publishes_on_a_slow_disk),
        cmocka_unit_test(test_unfinished_frames_share_a_budget),
    };
    return cmocka_run_group_tests_name("e2e_limits", tests, NULL, NULL);
}
