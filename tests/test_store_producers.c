/*
 * tests/test_store_producers.c - idempotent producers in the store
 * (store/store_producers.c) driven directly, no sockets: registration and
 * epochs, the sequence rules through kr_store_publish, a repeat of a batch
 * still being written, a "sync" repeat of a "write" original waiting for a
 * checkpoint, the state checkpointed and read back on reopen, the state
 * rebuilt by replaying batch headers when the checkpoint is gone or the
 * view rebuilt (--rebuild-view, registrations kept), the batch header
 * versions on disk, and forgetting producers beyond --max-producers.
 */
#include <fcntl.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "proto/cbor.h"
#include "store/segment.h"
#include "store/store.h"
#include "store/store_int.h"
#include "store/view.h"
#include "util/log.h"

#include "store_env.h"

static char dir[64];
static struct event_base *base;
static kr_metrics *metrics;
static size_t max_producers;

static int setup(void **state)
{
    (void)state;
    kr_log_setup(KR_LOG_ERROR, KR_LOG_TEXT);
    kr_test_env_up(&base, &metrics, dir, sizeof dir, "krappy-prod");
    max_producers = 0;
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    kr_test_env_down(base, metrics, dir);
    return 0;
}

/* The store, its view rebuilt from the streams when `rebuild`. */
static kr_store *open_store_with(bool rebuild, uint64_t overlay_bytes)
{
    kr_store_opts o = {.data_dir = dir,
                       .segment_bytes = 1u << 20,
                       .checkpoint_ms = 3600000, /* by hand, or by a sync repeat */
                       .overlay_bytes = overlay_bytes,
                       .max_frame = 1u << 20,
                       .max_events = 1000,
                       .max_publish_events = 1000,
                       .max_wait_ms = 1000,
                       .rocksdb_log_dir = "",
                       .max_producers = max_producers,
                       .rebuild_view = rebuild};
    return kr_test_store_open(&o, base, metrics);
}

static kr_store *open_store(void)
{
    return open_store_with(false, 1u << 26);
}

static void run_until(int *flag, int want)
{
    for (int i = 0; i < 10000 && *flag < want; i++)
        event_base_loop(base, EVLOOP_ONCE);
    assert_int_equal(*flag, want);
}

#define ID(s) (const uint8_t *)(s), strlen(s)

/* An idempotent registration of `id` on "orders": its result. */
static kr_store_result reg(kr_store *s, const char *id, kr_topic **t)
{
    done d = {0};
    kr_store_result res;
    assert_int_equal(kr_store_producer_register(s, ID("orders"), ID(id), t, on_done, &d, &res), 0);
    uint32_t epoch = res.epoch;
    run_until(&d.calls, 1);
    assert_int_equal(d.res.err, KRAPPY_OK);
    assert_int_equal(d.res.epoch, epoch);
    return d.res;
}

/* A PUBLISH of n events from seq (id, epoch), ack write or sync. */
typedef struct pubreq {
    kr_buf enc, scratch;
    kr_request req;
    kr_idem idem;
    done d;
    char msg[256];
} pubreq;

static void pub_make(pubreq *p, const char *id, uint32_t epoch, uint64_t seq, int n, bool sync)
{
    kr_event_out_spec ev[8];
    uint8_t val[] = {0x01};
    assert_true(n <= 8);
    memset(p, 0, sizeof *p);
    for (int i = 0; i < n; i++)
        ev[i] = (kr_event_out_spec){.key = "k", .key_len = 1, .value = val, .value_len = 1};
    kr_buf_init(&p->enc, 1u << 16);
    kr_buf_init(&p->scratch, 1u << 16);
    kr_enc_publish_seq(&p->enc, (kr_cid){0}, sync ? KR_ACK_SYNC : KR_ACK_WRITE, seq, ev, (size_t)n);
    assert_int_equal(kr_req_decode(KRAPPY_T_PUBLISH, p->enc.data, p->enc.len, &p->scratch, &p->req,
                                   p->msg, sizeof p->msg),
                     KRAPPY_OK);
    p->idem =
        (kr_idem){.id = (const uint8_t *)id, .id_len = strlen(id), .epoch = epoch, .seq = seq};
}

static krappy_err pub_send(kr_store *s, kr_topic *t, pubreq *p)
{
    uint64_t bad;
    return kr_store_publish(s, t, &p->req, &p->scratch, p->req.u.publish.ack == KR_ACK_SYNC,
                            &p->idem, on_done, &p->d, p->msg, sizeof p->msg, &bad);
}

static void pub_free(pubreq *p)
{
    kr_buf_free(&p->enc);
    kr_buf_free(&p->scratch);
}

/* Publish and wait: the result (err OK) of an accepted or repeated one, or
 * the refusal (res.err) with *expected. */
static kr_store_result pub(kr_store *s, kr_topic *t, const char *id, uint32_t epoch, uint64_t seq,
                           int n, uint64_t *expected)
{
    pubreq p;
    pub_make(&p, id, epoch, seq, n, false);
    krappy_err e = pub_send(s, t, &p);
    kr_store_result res = {.err = e};
    if (e == KRAPPY_OK) {
        run_until(&p.d.calls, 1);
        res = p.d.res;
    } else {
        snprintf(res.msg, sizeof res.msg, "%s", p.msg);
    }
    if (expected != NULL)
        *expected = p.idem.expected;
    pub_free(&p);
    return res;
}

static void test_rules_through_the_store(void **state)
{
    (void)state;
    kr_store *s = open_store();
    kr_topic *t;
    kr_store_result r = reg(s, "p1", &t);
    assert_int_equal(r.epoch, 1);
    assert_int_equal(r.seq, 0);
    assert_int_equal(r.first, 0); /* the topic's next */
    assert_int_equal(kr_topic_producers(t), 1);

    r = pub(s, t, "p1", 1, 0, 3, NULL);
    assert_int_equal(r.err, KRAPPY_OK);
    assert_false(r.duplicate);
    assert_int_equal(r.first, 0);
    r = pub(s, t, "p1", 1, 3, 2, NULL);
    assert_int_equal(r.first, 3);
    /* A repeat: the original's offsets, nothing stored. */
    r = pub(s, t, "p1", 1, 0, 3, NULL);
    assert_int_equal(r.err, KRAPPY_OK);
    assert_true(r.duplicate);
    assert_int_equal(r.first, 0);
    assert_int_equal(r.count, 3);
    assert_int_equal(t->next, 5);
    /* A gap. */
    uint64_t expected = 0;
    r = pub(s, t, "p1", 1, 9, 1, &expected);
    assert_int_equal(r.err, KRAPPY_E_OUT_OF_ORDER_SEQUENCE);
    assert_int_equal(expected, 5);
    assert_non_null(strstr(r.msg, "expects seq 5"));
    /* A newer registration fences the older one; the sequence goes on. */
    kr_topic *t2;
    r = reg(s, "p1", &t2);
    assert_ptr_equal(t2, t);
    assert_int_equal(r.epoch, 2);
    assert_int_equal(r.seq, 5);
    r = pub(s, t, "p1", 1, 5, 1, NULL);
    assert_int_equal(r.err, KRAPPY_E_FENCED);
    assert_non_null(strstr(r.msg, "register again"));
    r = pub(s, t, "p1", 2, 5, 1, NULL);
    assert_int_equal(r.first, 5);
    /* A producer the topic does not know. */
    r = pub(s, t, "nobody", 1, 0, 1, NULL);
    assert_int_equal(r.err, KRAPPY_E_NOT_REGISTERED);
    kr_store_producer_release(s, t, ID("p1"));
    kr_store_producer_release(s, t, ID("p1"));
    kr_store_close(s);
}

/* Repeats of a batch not yet written wait for it; a "sync" repeat of a
 * batch acknowledged "write" waits for the checkpoint that syncs it. */
static void test_repeats_in_flight_and_sync(void **state)
{
    (void)state;
    kr_store *s = open_store();
    kr_topic *t;
    reg(s, "p1", &t);
    pubreq a, b, c;
    pub_make(&a, "p1", 1, 0, 2, false);
    pub_make(&b, "p1", 1, 0, 2, false);
    pub_make(&c, "p1", 1, 0, 2, true);
    assert_int_equal(pub_send(s, t, &a), KRAPPY_OK);
    assert_int_equal(pub_send(s, t, &b), KRAPPY_OK); /* in flight: waits */
    assert_int_equal(b.d.calls, 0);
    run_until(&a.d.calls, 1);
    run_until(&b.d.calls, 1);
    assert_false(a.d.res.duplicate);
    assert_true(b.d.res.duplicate);
    assert_int_equal(b.d.res.first, a.d.res.first);
    assert_int_equal(t->marker, 0);
    /* The sync repeat is answered once a checkpoint covers the batch. */
    assert_int_equal(pub_send(s, t, &c), KRAPPY_OK);
    assert_int_equal(c.d.calls, 0);
    run_until(&c.d.calls, 1);
    assert_int_equal(c.d.res.err, KRAPPY_OK);
    assert_true(c.d.res.duplicate);
    assert_true(t->marker >= 2);
    pub_free(&a);
    pub_free(&b);
    pub_free(&c);
    kr_store_producer_release(s, t, ID("p1"));
    kr_store_close(s);
}

/* The header version of every batch of a segment file, in order. */
static size_t header_versions(const char *path, uint32_t *hlen, uint64_t *producer, size_t cap)
{
    int fd = open(path, O_RDONLY);
    assert_true(fd >= 0);
    uint8_t buf[1 << 16];
    ssize_t n = read(fd, buf, sizeof buf);
    close(fd);
    kr_seg_header sh;
    assert_int_equal(kr_seg_header_decode(buf, (size_t)n, &sh), 0);
    size_t k = 0;
    for (size_t pos = sh.len; pos < (size_t)n && k < cap;) {
        kr_batch_hdr h;
        assert_int_equal(kr_batch_header_decode(buf + pos, (size_t)n - pos, &h), 0);
        hlen[k] = h.hlen;
        producer[k++] = h.producer;
        pos += h.hlen + h.len;
    }
    return k;
}

/* Drop the topic's checkpoint from the view (marker, keys, producer
 * states): the next start replays the whole stream. */
static void forget_checkpoint(void)
{
    char path[128], err[256];
    snprintf(path, sizeof path, "%s/view", dir);
    kr_view *v;
    assert_int_equal(kr_view_open(path, NULL, &v, err, sizeof err), 0);
    kr_view_batch *b = kr_view_batch_new();
    kr_view_batch_drop_topic(b, "orders", 6);
    kr_view_batch_drop_producer_states(b, "orders", 6);
    assert_int_equal(kr_view_write(v, b, err, sizeof err), 0);
    kr_view_batch_free(b);
    kr_view_close(v);
}

/* What a restart must know: (seq, first) of 5 repeats and the next seq. */
static void check_known(kr_store *s, kr_topic *t, uint32_t epoch)
{
    kr_store_result r;
    for (uint64_t i = 1; i <= 5; i++) { /* the last five: seq 2i, 2 events */
        r = pub(s, t, "p1", epoch, 2 * i, 2, NULL);
        assert_int_equal(r.err, KRAPPY_OK);
        assert_true(r.duplicate);
        assert_int_equal(r.first, 100 + 2 * i);
    }
    uint64_t expected;
    r = pub(s, t, "p1", epoch, 0, 2, &expected); /* the sixth-last: forgotten */
    assert_int_equal(r.err, KRAPPY_E_OUT_OF_ORDER_SEQUENCE);
    assert_int_equal(expected, 12);
}

/* "orders": 100 plain events first (version 1 headers), then six
 * PUBLISHes of two events from p1 (version 2); closed. */
static void fill_orders(void)
{
    kr_store *s = open_store();
    kr_topic *t;
    done d = {0};
    kr_store_result res;
    assert_int_equal(kr_store_register(s, ID("orders"), &t, on_done, &d, &res), 0);
    run_until(&d.calls, 1);
    for (int i = 0; i < 10; i++) {
        kr_event_out_spec ev[10];
        uint8_t val[] = {0x02};
        for (int j = 0; j < 10; j++)
            ev[j] = (kr_event_out_spec){.key = "x", .key_len = 1, .value = val, .value_len = 1};
        kr_buf b, scratch;
        kr_request req;
        char msg[256];
        uint64_t bad;
        kr_test_publish_request(ev, 10, &b, &scratch, &req);
        done pd = {0};
        assert_int_equal(kr_store_publish(s, t, &req, &scratch, false, NULL, on_done, &pd, msg,
                                          sizeof msg, &bad),
                         KRAPPY_OK);
        run_until(&pd.calls, 1);
        kr_buf_free(&b);
        kr_buf_free(&scratch);
    }
    kr_store_result r = reg(s, "p1", &t);
    assert_int_equal(r.first, 100);
    for (uint64_t i = 0; i < 6; i++)
        assert_int_equal(pub(s, t, "p1", 1, 2 * i, 2, NULL).first, 100 + 2 * i);
    kr_store_producer_release(s, t, ID("p1"));
    kr_store_close(s); /* checkpoints */
}

static void test_checkpoint_replay_and_headers(void **state)
{
    (void)state;
    fill_orders();
    char seg[128];
    snprintf(seg, sizeof seg, "%s/topics/orders/00000000000000000000.seg", dir);
    uint32_t hlen[32];
    uint64_t producer[32];
    size_t n = header_versions(seg, hlen, producer, 32);
    assert_int_equal(n, 16);
    for (size_t i = 0; i < n; i++) {
        assert_int_equal(hlen[i], i < 10 ? KR_BATCH_HEADER_BYTES : KR_BATCH_HEADER_V2);
        assert_int_equal(producer[i], i < 10 ? 0 : 1);
    }

    /* From the checkpoint. */
    kr_topic *t;
    kr_store *s = open_store();
    kr_store_result r = reg(s, "p1", &t);
    assert_int_equal(r.epoch, 2);
    assert_int_equal(r.seq, 12);
    check_known(s, t, 2);
    kr_store_producer_release(s, t, ID("p1"));
    kr_store_close(s);

    /* From the stream alone. */
    forget_checkpoint();
    s = open_store();
    t = kr_store_topic(s, ID("orders"));
    assert_non_null(t);
    assert_int_equal(kr_topic_producers(t), 1);
    r = reg(s, "p1", &t);
    assert_int_equal(r.epoch, 3); /* epochs come from the registrations */
    assert_int_equal(r.seq, 12);
    check_known(s, t, 3);
    assert_int_equal(pub(s, t, "p1", 3, 12, 1, NULL).first, 112);
    kr_store_producer_release(s, t, ID("p1"));
    kr_store_close(s);
}

static int count_states(void *arg, const kr_view_prod_rec *rec)
{
    if (rec->kind == KR_VIEW_PROD_STATE)
        (*(int *)arg)++;
    return 0;
}

/*
 * --rebuild-view keeps the producers' registrations (no stream holds them)
 * and rebuilds their states from the batch headers; a replay folded into
 * the view as it goes (a small overlay budget) writes the states with each
 * marker it moves, so that a crash right after the rebuild loses nothing.
 */
static void test_rebuild_view_keeps_producers(void **state)
{
    (void)state;
    fill_orders();
    kr_store *s = open_store_with(true, 512);
    kr_topic *t = kr_store_topic(s, ID("orders"));
    assert_non_null(t);
    assert_int_equal(t->marker, t->next); /* folded in as it went */
    int states = 0;
    char err[256];
    assert_int_equal(
        kr_view_producers(s->view, "orders", 6, count_states, &states, err, sizeof err), 0);
    assert_int_equal(states, 1);
    kr_store_result r = reg(s, "p1", &t);
    assert_int_equal(r.epoch, 2); /* the registration of epoch 1 was kept */
    assert_int_equal(r.seq, 12);
    check_known(s, t, 2);
    kr_store_producer_release(s, t, ID("p1"));
    kr_store_close(s);
}

static void test_forgetting_beyond_the_limit(void **state)
{
    (void)state;
    max_producers = 2;
    kr_store *s = open_store();
    kr_topic *t;
    reg(s, "a", &t);
    assert_int_equal(pub(s, t, "a", 1, 0, 1, NULL).first, 0);
    reg(s, "b", &t);
    /* Both registered on live connections: no room for a third. */
    done d = {0};
    kr_store_result res;
    assert_int_equal(kr_store_producer_register(s, ID("orders"), ID("c"), &t, on_done, &d, &res),
                     -1);
    assert_int_equal(res.err, KRAPPY_E_BUSY);
    assert_non_null(strstr(res.msg, "--max-producers"));
    /* a's connection goes: a is the one forgotten for c. */
    kr_store_producer_release(s, t, ID("a"));
    reg(s, "c", &t);
    assert_int_equal(kr_topic_producers(t), 2);
    assert_int_equal(pub(s, t, "a", 1, 1, 1, NULL).err, KRAPPY_E_NOT_REGISTERED);
    kr_store_producer_release(s, t, ID("b"));
    kr_store_producer_release(s, t, ID("c"));
    kr_store_close(s);
    /* Its registration is gone for good: it starts afresh. */
    s = open_store();
    t = kr_store_topic(s, ID("orders"));
    assert_int_equal(kr_topic_producers(t), 2);
    kr_store_producer_release(s, t, ID("b")); /* no hold: ignored */
    kr_store_result r = reg(s, "a", &t);      /* forgets b or c: both idle */
    assert_int_equal(r.epoch, 1);
    assert_int_equal(r.seq, 0);
    kr_store_producer_release(s, t, ID("a"));
    kr_store_close(s);
}

/* The size of the file at path (0 when missing). */
static long file_size(const char *path)
{
    FILE *f = fopen(path, "rb");
    if (f == NULL)
        return 0;
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fclose(f);
    return n;
}

/*
 * A producer registered and used at once (the Kafka listener's first batch
 * of a producer does this): the batch must not reach the file before the
 * registration reaches RocksDB, or a kill -9 between them leaves a batch
 * recovery cannot attribute, and the producer's resend is stored twice.
 */
static void test_batch_waits_for_its_registration(void **state)
{
    (void)state;
    kr_store *s = open_store();
    kr_topic *t;
    reg(s, "p0", &t); /* the topic exists; the writer goes back to sleep */
    kr_store_producer_release(s, t, ID("p0"));
    usleep(100000);
    char seg[128];
    snprintf(seg, sizeof seg, "%s/topics/orders/00000000000000000000.seg", dir);
    long empty = file_size(seg);
    assert_true(empty > 0);

    /* Held: the registration's job does not wake the writer. */
    kr_store_hold(s);
    kr_store_result res;
    assert_int_equal(kr_store_producer_register(s, ID("orders"), ID("p1"), &t, NULL, NULL, &res),
                     0);
    pubreq p;
    pub_make(&p, "p1", res.epoch, 0, 3, false);
    assert_int_equal(pub_send(s, t, &p), KRAPPY_OK);
    for (int i = 0; i < 20; i++) {
        event_base_loop(base, EVLOOP_NONBLOCK);
        usleep(1000);
    }
    assert_int_equal(p.d.calls, 0);
    assert_int_equal(file_size(seg), empty); /* what a kill -9 now would keep */
    assert_int_equal(t->next, 0);

    kr_store_release(s);
    run_until(&p.d.calls, 1);
    assert_int_equal(p.d.res.err, KRAPPY_OK);
    assert_int_equal(p.d.res.first, 0);
    assert_true(file_size(seg) > empty);
    pub_free(&p);
    kr_store_producer_release(s, t, ID("p1"));
    kr_store_close(s);

    /* After a restart the batch is p1's: its resend is a duplicate. */
    s = open_store();
    reg(s, "p1", &t);
    kr_store_result r = pub(s, t, "p1", res.epoch + 1, 0, 3, NULL);
    assert_int_equal(r.err, KRAPPY_OK);
    assert_true(r.duplicate);
    assert_int_equal(t->next, 3);
    kr_store_producer_release(s, t, ID("p1"));
    kr_store_close(s);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_rules_through_the_store, setup, teardown),
        cmocka_unit_test_setup_teardown(test_repeats_in_flight_and_sync, setup, teardown),
        cmocka_unit_test_setup_teardown(test_checkpoint_replay_and_headers, setup, teardown),
        cmocka_unit_test_setup_teardown(test_rebuild_view_keeps_producers, setup, teardown),
        cmocka_unit_test_setup_teardown(test_forgetting_beyond_the_limit, setup, teardown),
        cmocka_unit_test_setup_teardown(test_batch_waits_for_its_registration, setup, teardown),
    };
    return cmocka_run_group_tests_name("store_producers", tests, NULL, NULL);
}
