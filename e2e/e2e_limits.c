/*
 * e2e/e2e_limits.c - krappyd's ceilings against clients that push, each
 * attack made to happen against a real krappyd and the figure it reached
 * printed next to the limit it is held to:
 *
 * - memory: ack "sync" PUBLISHes pipelined while every fdatasync takes a
 *   second (the LD_PRELOAD shim), from a client that reads its replies;
 *   many connections each holding most of an unfinished frame;
 * - shutdown: SIGTERM in the middle of the first attack ends within
 *   --shutdown-timeout and the final sync;
 * - file descriptors under `ulimit -n 1024`: many topics, many segments,
 *   each read and read again after a restart; idle admin connections that
 *   must not starve the data port.
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
#include <netdb.h>
#include <sys/resource.h>
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
    assert_int_equal(e2e_restart_small_quarantine(s, args), 0);
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
    char(*keys)[24] = calloc(n, sizeof *keys);
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
        assert_int_equal(e2e_thread_start(&p[i].writer, pipe_writer, &p[i]), 0);
        assert_int_equal(e2e_thread_start(&p[i].reader, pipe_reader, &p[i]), 0);
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
        e2e_thread_join(p[i].writer);
        e2e_thread_join(p[i].reader);
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
    /* The timeout, then the storage writer's last rounds: the one under
     * way and the requests queued (at most the budget), each syncing every
     * stream it wrote, a second each here. */
    assert_true(stop_ms <= 3000 + 2 * PRODUCERS * 1000 + 2000);
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

/* ---- file descriptors ---- */

/* The events of an EVENTS frame (-1 when it is not one). */
static long events_in(const e2e_frame *f)
{
    kr_reply r;
    kr_cbor_item events, e;
    if (f->type != KRAPPY_T_EVENTS || kr_reply_decode(f->type, f->payload, f->len, &r) < 0 ||
        kr_cbor_map_find(&r.map, "events", &events) != 1)
        return -1;
    kr_cbor_iter it;
    kr_cbor_iter_init(&it, &events);
    long n = 0;
    while (kr_cbor_iter_next(&it, &e) == 1)
        n++;
    return n;
}

/* Read n replies; every one must be `type`. */
static void expect_replies(int fd, size_t n, uint32_t type)
{
    for (size_t i = 0; i < n; i++) {
        e2e_frame f;
        assert_int_equal(e2e_recv_frame(fd, &f, 30000), 1);
        if (f.type != type) {
            kr_reply r;
            kr_error_in e;
            if (kr_reply_decode(f.type, f.payload, f.len, &r) == 0 && kr_reply_error(&r, &e) == 0)
                fail_msg("reply %zu: ERROR %s: %.*s", i, krappy_err_name(e.code),
                         (int)e.message.len, (const char *)e.message.ptr);
            fail_msg("reply %zu: type %u, not %u", i, f.type, type);
        }
        free(f.payload);
    }
}

/* Read one reply to a FETCH of topic j: it holds `events` events. */
static void expect_fetched(int fd, size_t j, size_t events)
{
    e2e_frame f;
    assert_int_equal(e2e_recv_frame(fd, &f, 30000), 1);
    long got = events_in(&f);
    if (got != (long)events)
        fail_msg("FETCH of t%zu: %ld events, not %zu", j, got, events);
    free(f.payload);
}

/*
 * Topics "t0".."t<n-1>", the requests pipelined a hundred topics at a time:
 * when `create`, each registered and given `events` events; else each
 * FETCHed from 0, holding `events` events.
 */
static void over_topics(int fd, size_t n, size_t events, bool create)
{
    kr_buf b, ev_frame;
    kr_buf_init(&b, 1u << 20);
    publish_frame(&ev_frame, events, 16, KR_ACK_WRITE);
    for (size_t i = 0; i < n; i += 100) {
        size_t k = n - i < 100 ? n - i : 100;
        for (size_t j = i; j < i + k; j++) {
            char topic[32];
            snprintf(topic, sizeof topic, "t%zu", j);
            kr_buf_reset(&b);
            if (create) {
                kr_enc_producer_register(&b, (kr_cid){0}, topic, "limits");
                assert_int_equal(e2e_send_frame(fd, KRAPPY_T_PRODUCER_REGISTER, b.data, b.len), 0);
                assert_int_equal(e2e_send_all(fd, ev_frame.data, ev_frame.len), 0);
            } else {
                kr_enc_fetch(&b, (kr_cid){0}, topic, 0, 1000, 0, 1u << 20);
                assert_int_equal(e2e_send_frame(fd, KRAPPY_T_FETCH, b.data, b.len), 0);
            }
        }
        if (create)
            expect_replies(fd, 2 * k, KRAPPY_T_OK);
        else
            for (size_t j = i; j < i + k; j++)
                expect_fetched(fd, j, events);
    }
    kr_buf_free(&b);
    kr_buf_free(&ev_frame);
}

/* The largest number of descriptors the server held while fn ran, sampled
 * by a thread every 20 ms. */
typedef struct fd_watch {
    pid_t pid;
    atomic_bool stop;
    atomic_long most;
    pthread_t th;
} fd_watch;

static void *watch_fds(void *arg)
{
    fd_watch *w = arg;
    while (!atomic_load(&w->stop)) {
        long n = e2e_pid_fds(w->pid);
        if (n > atomic_load(&w->most))
            atomic_store(&w->most, n);
        sleep_ms(20);
    }
    return NULL;
}

static void watch_start(fd_watch *w, pid_t pid)
{
    w->pid = pid;
    atomic_store(&w->stop, false);
    atomic_store(&w->most, 0);
    assert_int_equal(e2e_thread_start(&w->th, watch_fds, w), 0);
}

static long watch_stop(fd_watch *w)
{
    atomic_store(&w->stop, true);
    e2e_thread_join(w->th);
    return atomic_load(&w->most);
}

/* One part of a load on a server: on connection fd, for n topics or
 * segments. */
typedef void (*load_step)(int fd, size_t n);

/*
 * Under `ulimit -n 1024` (the soft limit starting at `soft`): a server
 * made to `load` n things and `check` them, then restarted on the same
 * directory and made to `check` them again, its descriptors counted
 * throughout; never 1024.
 */
static void under_low_nofile(const char *what, size_t n, unsigned long soft,
                             const char *const *args, load_step load, load_step check)
{
    e2e_set_nofile(soft, 1024);
    e2e_set_start_timeout(120000); /* the restart recovers everything first */
    e2e_server s;
    assert_int_equal(e2e_start(&s, args), 0);
    if (soft < 1024) /* raised to the hard limit, and said */
        assert_true(e2e_logged(&s, "\"soft_was\":\"256\""));
    fd_watch w;
    watch_start(&w, s.pid);
    int fd = e2e_connect(&s);
    assert_true(fd >= 0);
    uint64_t t0 = e2e_now_ms();
    load(fd, n);
    check(fd, n);
    uint64_t made_ms = e2e_now_ms() - t0;
    close(fd);
    long most = watch_stop(&w);
    assert_int_equal(e2e_stop_keep(&s, 30000), 0);

    t0 = e2e_now_ms();
    assert_int_equal(e2e_restart(&s, args), 0);
    uint64_t restart_ms = e2e_now_ms() - t0;
    watch_start(&w, s.pid);
    fd = e2e_connect(&s);
    assert_true(fd >= 0);
    check(fd, n);
    close(fd);
    long most_after = watch_stop(&w);
    printf("      %zu %s under ulimit -n 1024: made and read in %llu ms with at most %ld "
           "descriptors; restarted in %llu ms, read again with at most %ld\n",
           n, what, (unsigned long long)made_ms, most, (unsigned long long)restart_ms, most_after);
    assert_true(most < 1024 && most_after < 1024);
    e2e_set_nofile(0, 0);
    e2e_set_start_timeout(0);
    assert_int_equal(e2e_stop(&s, 30000), 0);
}

static void make_topics(int fd, size_t n)
{
    over_topics(fd, n, 3, true);
}

static void read_topics(int fd, size_t n)
{
    over_topics(fd, n, 3, false);
}

/*
 * Topics under `ulimit -n 1024` (each held three descriptors for the whole
 * run: 357 topics exhausted them, and krappyd could not start again on its
 * own data). The soft limit starts at 256 and krappyd raises it to the hard
 * 1024, saying so. 1,000 topics here, 10,000 under KRAPPY_E2E_TORTURE; all
 * readable, then again after a restart on the same directory under the
 * same limit.
 */
static void test_many_topics_under_a_low_nofile(void **state)
{
    (void)state;
    if (smoke())
        skip();
    under_low_nofile("topics", torture() ? 10000 : 1000, 256, NULL, make_topics, read_topics);
}

/* One PUBLISH of one 3 KB event at a time to topic "segs": with
 * --segment-bytes 4K, a segment each. */
static void make_segments(int fd, size_t n)
{
    raw_register(fd, "segs");
    kr_buf frame;
    publish_frame(&frame, 1, 3000, KR_ACK_WRITE);
    for (size_t i = 0; i < n; i += 100) {
        size_t k = n - i < 100 ? n - i : 100;
        for (size_t j = 0; j < k; j++)
            assert_int_equal(e2e_send_all(fd, frame.data, frame.len), 0);
        expect_replies(fd, k, KRAPPY_T_OK);
    }
    kr_buf_free(&frame);
}

/* Read "segs" from offset 0 to n, batch by batch: every segment's file is
 * opened. */
static void read_segments(int fd, size_t n)
{
    kr_buf b;
    kr_buf_init(&b, 4096);
    uint64_t next = 0;
    while (next < n) {
        kr_buf_reset(&b);
        kr_enc_fetch(&b, (kr_cid){0}, "segs", next, 1000, 0, 1u << 20);
        assert_int_equal(e2e_send_frame(fd, KRAPPY_T_FETCH, b.data, b.len), 0);
        e2e_frame f;
        assert_int_equal(e2e_recv_frame(fd, &f, 30000), 1);
        long got = events_in(&f);
        assert_true(got > 0);
        next += (uint64_t)got;
        free(f.payload);
    }
    kr_buf_free(&b);
}

/*
 * Segments under `ulimit -n 1024` (each held a descriptor: 1,068 exhausted
 * them): --segment-bytes 4K and events of 3 KB, one segment per PUBLISH -
 * 2,000 here, 100,000 under KRAPPY_E2E_TORTURE - all read from offset 0,
 * then again after a restart.
 */
static void test_many_segments_under_a_low_nofile(void **state)
{
    (void)state;
    if (smoke())
        skip();
    const char *args[] = {"--segment-bytes", "4K", NULL};
    under_low_nofile("segments", torture() ? 100000 : 2000, 1024, args, make_segments,
                     read_segments);
}

/*
 * 1,500 idle connections to the admin port of a krappyd under `ulimit -n
 * 1024` (evhttp took them all: the data port then could not accept): the
 * admin port holds --http-max-connections (32) and leaves the rest in its
 * backlog, and 200 data connections each get their PING answered.
 */
static void test_idle_admin_connections_leave_the_data_port_alone(void **state)
{
    (void)state;
    if (smoke())
        skip();
    struct rlimit rl;
    assert_int_equal(getrlimit(RLIMIT_NOFILE, &rl), 0);
    if (rl.rlim_max < 4096) {
        printf("      the test needs 1,700 descriptors of its own (hard limit %lu): skipped\n",
               (unsigned long)rl.rlim_max);
        skip();
    }
    struct rlimit mine = {rl.rlim_max, rl.rlim_max};
    assert_int_equal(setrlimit(RLIMIT_NOFILE, &mine), 0);
    e2e_set_nofile(1024, 1024);
    e2e_server s;
    assert_int_equal(e2e_start(&s, NULL), 0);
    e2e_server admin = s;
    snprintf(admin.port, sizeof admin.port, "%s", s.http_port);
    enum { IDLE = 1500, DATA = 200 };
    int *idle = calloc(IDLE, sizeof *idle), *data = calloc(DATA, sizeof *data);
    assert_non_null(idle);
    assert_non_null(data);
    struct addrinfo hints = {.ai_family = AF_INET, .ai_socktype = SOCK_STREAM}, *ai;
    assert_int_equal(getaddrinfo("127.0.0.1", admin.port, &hints, &ai), 0);
    for (int i = 0; i < IDLE; i++) { /* connect without waiting: most sit in the backlog */
        idle[i] = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
        assert_true(idle[i] >= 0);
        int rc = connect(idle[i], ai->ai_addr, ai->ai_addrlen);
        assert_true(rc == 0 || errno == EINPROGRESS);
    }
    freeaddrinfo(ai);
    sleep_ms(1000);
    long fds = e2e_pid_fds(s.pid);
    for (int i = 0; i < DATA; i++) {
        data[i] = e2e_connect(&s);
        assert_true(data[i] >= 0);
        assert_int_equal(e2e_send_frame(data[i], KRAPPY_T_PING, NULL, 0), 0);
    }
    int answered = 0;
    for (int i = 0; i < DATA; i++)
        answered += e2e_expect_ok(data[i]) == 0;
    long fds_after = e2e_pid_fds(s.pid);
    printf("      %d idle admin connections: krappyd held %ld descriptors, %ld with %d data "
           "connections; %d of %d PINGs answered\n",
           IDLE, fds, fds_after, DATA, answered, DATA);
    assert_int_equal(answered, DATA);
    assert_true(fds < 256);
    for (int i = 0; i < IDLE; i++)
        close(idle[i]);
    for (int i = 0; i < DATA; i++)
        close(data[i]);
    free(idle);
    free(data);
    e2e_set_nofile(0, 0);
    assert_int_equal(e2e_stop(&s, 10000), 0);
    assert_int_equal(setrlimit(RLIMIT_NOFILE, &rl), 0);
}

int main(void)
{
    signal(SIGPIPE, SIG_IGN);
    if (e2e_external_addr() != NULL) {
        printf("e2e_limits: needs its own servers; skipped with KRAPPY_E2E_ADDR\n");
        return 0;
    }
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_teardown(test_pipelined_sync_publishes_on_a_slow_disk, e2e_after_test),
        cmocka_unit_test_teardown(test_unfinished_frames_share_a_budget, e2e_after_test),
        cmocka_unit_test_teardown(test_many_topics_under_a_low_nofile, e2e_after_test),
        cmocka_unit_test_teardown(test_many_segments_under_a_low_nofile, e2e_after_test),
        cmocka_unit_test_teardown(test_idle_admin_connections_leave_the_data_port_alone,
                                  e2e_after_test),
    };
    return cmocka_run_group_tests_name("e2e_limits", tests, NULL, NULL);
}
