/*
 * tests/test_store.c - the storage facade driven directly (no sockets):
 * publish and read back, overlay + checkpoint + replay across reopen,
 * retention after a checkpoint, the sparse index used and rebuilt, FETCH
 * limits, the data directory lock, the overlays' memory budget (acks
 * held while a checkpoint runs, never lost, in order), and a stream that
 * skips to an offset (kr_store_skip_to) across restarts and kill -9.
 */
#include <dirent.h>
#include <fcntl.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>
#include <event2/buffer.h>
#include <event2/event.h>
#include <event2/thread.h>

#include "proto/cbor.h"
#include "util/log.h"
#include "store/store.h"
#include "store/store_int.h"
#include "store/writer.h"

#include "store_env.h"

KR_TEST_STORE_ENV("krappy-store")

static kr_store_opts store_opts(uint64_t segment_bytes, uint64_t retention_bytes,
                                uint64_t overlay_bytes)
{
    return (kr_store_opts){.data_dir = dir,
                           .segment_bytes = segment_bytes,
                           .retention_bytes = retention_bytes,
                           .checkpoint_ms = 3600000, /* tests checkpoint by hand */
                           .overlay_bytes = overlay_bytes,
                           .max_frame = 1u << 20,
                           .max_events = 1000,
                           .max_publish_events = 100000,
                           .max_wait_ms = 1000,
                           .rocksdb_log_dir = ""};
}

static kr_store *open_store_budget(uint64_t segment_bytes, uint64_t retention_bytes,
                                   uint64_t overlay_bytes)
{
    kr_store_opts o = store_opts(segment_bytes, retention_bytes, overlay_bytes);
    return kr_test_store_open(&o, base, metrics);
}

static kr_store *open_store(uint64_t segment_bytes, uint64_t retention_bytes)
{
    return open_store_budget(segment_bytes, retention_bytes, 1u << 30);
}

static void run_until(int *flag, int want)
{
    kr_test_run_until(base, flag, want);
}

static kr_topic *reg(kr_store *s, const char *name)
{
    return kr_test_register(s, base, name);
}

/* Publish a decoded PUBLISH and wait for its acknowledgement (OK).
 * @return the result. */
static kr_store_result publish_req(kr_store *s, kr_topic *t, const kr_request *req, kr_buf *scratch)
{
    char msg[256];
    done d = {0};
    uint64_t bad;
    assert_int_equal(
        kr_store_publish(s, t, req, scratch, false, NULL, on_done, &d, msg, sizeof msg, &bad),
        KRAPPY_OK);
    run_until(&d.calls, 1);
    assert_int_equal(d.res.err, KRAPPY_OK);
    return d.res;
}

/* Publish the n events and wait for their acknowledgement. @return first. */
static uint64_t publish(kr_store *s, kr_topic *t, const kr_event_out_spec *ev, int n)
{
    kr_buf b, scratch;
    kr_request req;
    kr_test_publish_request(ev, (size_t)n, &b, &scratch, &req);
    uint64_t first = publish_req(s, t, &req, &scratch).first;
    kr_buf_free(&b);
    kr_buf_free(&scratch);
    return first;
}

/* Publish n events key "k<j % nkeys>" value "v<offset>". @return first. */
static uint64_t pub(kr_store *s, kr_topic *t, int n, int nkeys)
{
    kr_event_out_spec ev[512];
    char keys[512][16];
    uint8_t vals[512][32];
    uint64_t first = t->assigned;
    assert_true(n <= 512);
    for (int j = 0; j < n; j++) {
        snprintf(keys[j], sizeof keys[j], "k%d", (int)((first + (uint64_t)j) % (uint64_t)nkeys));
        char v[24];
        snprintf(v, sizeof v, "v%llu", (unsigned long long)(first + (uint64_t)j));
        kr_buf vb;
        kr_buf_init(&vb, 32);
        kr_cbor_put_cstr(&vb, v);
        memcpy(vals[j], vb.data, vb.len);
        ev[j] = (kr_event_out_spec){.key = keys[j],
                                    .key_len = strlen(keys[j]),
                                    .key_is_text = true,
                                    .value = vals[j],
                                    .value_len = vb.len};
        kr_buf_free(&vb);
    }
    assert_int_equal(publish(s, t, ev, n), first);
    return first;
}

static void checkpoint(kr_store *s, kr_topic *t)
{
    kr_store_checkpoint(s);
    for (int i = 0; i < 10000 && (t->marker < t->next || t->frozen != NULL); i++)
        event_base_loop(base, EVLOOP_ONCE);
    assert_int_equal(t->marker, t->next);
}

/* The value text of a key's newest event, "" when absent. */
static void get(kr_store *s, kr_topic *t, const char *key, char *out, size_t len)
{
    kr_buf b;
    kr_buf_init(&b, 1u << 20);
    char msg[128];
    out[0] = '\0';
    int rc = kr_store_get(s, t, (const uint8_t *)key, strlen(key), &b, msg, sizeof msg);
    assert_true(rc >= 0);
    if (rc == 1) {
        kr_cbor_item ev;
        kr_event_view v;
        assert_int_equal(kr_cbor_read(b.data, b.len, &ev), 0);
        assert_int_equal(kr_event_view_read(&ev, &v), 0);
        size_t n = kr_cbor_str_copy(&v.value, (uint8_t *)out, len - 1);
        out[n] = '\0';
    }
    kr_buf_free(&b);
}

/* FETCH one event at `offset` through the ranges; check its content. */
static void fetch_one(kr_store *s, kr_topic *t, uint64_t offset)
{
    kr_fetch_result r;
    char msg[256];
    assert_int_equal(kr_store_fetch(s, t, offset, 1, 1u << 20, &r, msg, sizeof msg), KRAPPY_OK);
    assert_int_equal(r.count, 1);
    assert_int_equal(r.next, offset + 1);
    assert_int_equal(r.n_ranges, 1);
    uint8_t buf[256];
    assert_true(r.ranges[0].len <= sizeof buf);
    int fd = kr_fdfile_get(r.ranges[0].seg->file);
    assert_true(fd >= 0);
    assert_int_equal(pread(fd, buf, r.ranges[0].len, (off_t)r.ranges[0].pos),
                     (ssize_t)r.ranges[0].len);
    kr_fdfile_put(r.ranges[0].seg->file);
    kr_cbor_item ev;
    kr_event_view v;
    assert_int_equal(kr_cbor_read_exact(buf, r.ranges[0].len, &ev), 0);
    assert_int_equal(kr_event_view_read(&ev, &v), 0);
    assert_int_equal(v.offset, offset);
    char want[24], got[24] = {0};
    snprintf(want, sizeof want, "v%llu", (unsigned long long)offset);
    kr_cbor_str_copy(&v.value, (uint8_t *)got, sizeof got - 1);
    assert_string_equal(got, want);
}

/* FETCH n events from `from` and emit them as a reply would (small ranges
 * through the read window); check each event's offset and value. */
static void fetch_emit_check(kr_store *s, kr_topic *t, uint64_t from, uint64_t n)
{
    kr_fetch_result r;
    char msg[256];
    assert_int_equal(kr_store_fetch(s, t, from, n, 1u << 20, &r, msg, sizeof msg), KRAPPY_OK);
    assert_int_equal(r.count, n);
    struct evbuffer *b = evbuffer_new();
    assert_non_null(b);
    assert_int_equal(kr_store_fetch_emit(s, &r, b, msg, sizeof msg), 0);
    size_t len = evbuffer_get_length(b);
    const uint8_t *p = evbuffer_pullup(b, -1);
    for (uint64_t i = 0; i < n; i++) {
        kr_cbor_item ev;
        kr_event_view v;
        assert_int_equal(kr_cbor_read(p, len, &ev), 0);
        assert_int_equal(kr_event_view_read(&ev, &v), 0);
        assert_int_equal(v.offset, from + i);
        char want[24], got[24] = {0};
        snprintf(want, sizeof want, "v%llu", (unsigned long long)(from + i));
        kr_cbor_str_copy(&v.value, (uint8_t *)got, sizeof got - 1);
        assert_string_equal(got, want);
        p += ev.raw_len;
        len -= ev.raw_len;
    }
    assert_int_equal(len, 0);
    evbuffer_free(b);
}

/* The read window holds exactly the file's bytes where it says. */
static void check_window(kr_store *s, kr_topic *t)
{
    kr_segment *seg = t->segs[t->n_segs - 1];
    assert_int_equal(s->win_seg, seg->id);
    assert_true(s->win_pos + s->win.len <= seg->size);
    uint8_t *buf = malloc(s->win.len + 1);
    assert_non_null(buf);
    int fd = kr_fdfile_get(seg->file);
    assert_true(fd >= 0);
    assert_int_equal(pread(fd, buf, s->win.len, (off_t)s->win_pos), (ssize_t)s->win.len);
    kr_fdfile_put(seg->file);
    assert_memory_equal(buf, s->win.data, s->win.len);
    free(buf);
}

/* A consumer on the tail reads what each loop turn appended from the read
 * window, which the appends extend (kr_store_window_follow): well past the
 * window's size, with reads a little behind the tail between them, the
 * window holds the file's bytes and every event comes back as written. */
static void test_tail_reads_follow_appends(void **state)
{
    (void)state;
    kr_store *s = open_store(64u << 20, 0);
    kr_topic *t = reg(s, "t");
    for (int round = 0; round < 1500; round++) {
        int k = 1 + round % 3;
        uint64_t first = pub(s, t, k, 50);
        if (round > 0) {
            /* The append followed the tail read before it. */
            assert_int_equal(s->win_pos + s->win.len, t->segs[t->n_segs - 1]->size);
            check_window(s, t);
        }
        fetch_emit_check(s, t, first, (uint64_t)k);
        if (round % 7 == 0 && first >= 40)
            fetch_emit_check(s, t, first - 40, 40);
    }
    fetch_emit_check(s, t, 0, 500);
    kr_store_close(s);
}

/*
 * Every form of event a PUBLISH carries, encoded into the chunk in place:
 * a text key with headers, an indefinite-length byte-string key (its
 * content joined for the overlay), no key, a timestamp the producer set
 * (9-byte head) and a tombstone. FETCH gives each back as sent, in its
 * delivered form, and GET finds each key's newest event.
 */
static void test_publish_encodes_every_form(void **state)
{
    (void)state;
    kr_store *s = open_store(64u << 20, 0);
    kr_topic *t = reg(s, "t");
    static const uint8_t hdrs[] = {0xa1, 0x61, 'h', 0x42, 'h', 'v'}; /* {"h": h'6876'} */
    static const uint8_t v0[] = {0x62, 'v', '0'}, v1[] = {0x62, 'v', '1'}, v2[] = {0x62, 'v', '2'};
    kr_event_out_spec ev[4] = {
        {.key = "k0",
         .key_len = 2,
         .key_is_text = true,
         .value = v0,
         .value_len = sizeof v0,
         .headers = hdrs,
         .headers_len = sizeof hdrs},
        {.key = "QQ",
         .key_len = 2,
         .value = v1,
         .value_len = sizeof v1,
         .has_ts = true,
         .ts = 1ull << 40},
        {.value = v2, .value_len = sizeof v2},
        {.key = "k0", .key_len = 2, .key_is_text = true}, /* tombstone */
    };
    kr_buf b, scratch;
    kr_request req;
    kr_test_publish_request(ev, 4, &b, &scratch, &req);
    /* The second key sent as an indefinite-length string of two chunks. */
    static const uint8_t def[] = {0x42, 'Q', 'Q'}, indef[] = {0x5f, 0x41, 'Q', 0x41, 'Q', 0xff};
    uint8_t payload[512];
    size_t n = 0, at = 0;
    for (; at + sizeof def <= b.len && memcmp(b.data + at, def, sizeof def) != 0; at++)
        ;
    assert_true(at + sizeof def <= b.len && b.len + 3 <= sizeof payload);
    memcpy(payload, b.data, at);
    memcpy(payload + at, indef, sizeof indef);
    n = at + sizeof indef;
    memcpy(payload + n, b.data + at + sizeof def, b.len - at - sizeof def);
    n += b.len - at - sizeof def;
    char msg[256];
    assert_int_equal(kr_req_decode(KRAPPY_T_PUBLISH, payload, n, &scratch, &req, msg, sizeof msg),
                     KRAPPY_OK);
    kr_store_result res = publish_req(s, t, &req, &scratch);
    assert_int_equal(res.first, 0);
    assert_int_equal(res.count, 4);

    kr_fetch_result r;
    assert_int_equal(kr_store_fetch(s, t, 0, 4, 1u << 20, &r, msg, sizeof msg), KRAPPY_OK);
    assert_int_equal(r.count, 4);
    struct evbuffer *out = evbuffer_new();
    assert_non_null(out);
    assert_int_equal(kr_store_fetch_emit(s, &r, out, msg, sizeof msg), 0);
    size_t len = evbuffer_get_length(out);
    const uint8_t *p = evbuffer_pullup(out, -1);
    kr_event_view v[4];
    for (int i = 0; i < 4; i++) {
        kr_cbor_item item;
        assert_int_equal(kr_cbor_read(p, len, &item), 0);
        assert_int_equal(kr_event_view_read(&item, &v[i]), 0);
        assert_int_equal(v[i].offset, (uint64_t)i);
        p += item.raw_len;
        len -= item.raw_len;
    }
    assert_int_equal(len, 0);
    assert_true(v[0].has_headers);
    assert_int_equal(v[0].headers.raw_len, sizeof hdrs);
    assert_memory_equal(v[0].headers.raw, hdrs, sizeof hdrs);
    assert_int_equal(v[0].value.raw_len, sizeof v0);
    assert_memory_equal(v[0].value.raw, v0, sizeof v0);
    assert_int_equal(v[1].key.raw_len, sizeof indef);
    assert_memory_equal(v[1].key.raw, indef, sizeof indef);
    assert_int_equal(v[1].ts, 1ull << 40);
    assert_false(v[1].has_headers);
    assert_int_equal(v[2].key.kind, KR_CBOR_NULL);
    assert_int_equal(v[3].value.kind, KR_CBOR_NULL);
    evbuffer_free(out);

    char got[32];
    get(s, t, "QQ", got, sizeof got);
    assert_string_equal(got, "v1");
    get(s, t, "k0", got, sizeof got); /* its newest is the tombstone */
    assert_string_equal(got, "");
    kr_buf_free(&b);
    kr_buf_free(&scratch);
    kr_store_close(s);
}

static size_t count_files(const char *suffix)
{
    char path[128];
    snprintf(path, sizeof path, "%s/topics/t", dir);
    DIR *d = opendir(path);
    size_t n = 0;
    struct dirent *e;
    while (d != NULL && (e = readdir(d)) != NULL)
        if (strlen(e->d_name) > 4 && strcmp(e->d_name + strlen(e->d_name) - 4, suffix) == 0)
            n++;
    if (d != NULL)
        closedir(d);
    return n;
}

static void test_overlay_checkpoint_replay(void **state)
{
    (void)state;
    kr_store *s = open_store(1u << 20, 0);
    kr_topic *t = reg(s, "t");
    pub(s, t, 100, 10);
    char v[32];
    get(s, t, "k3", v, sizeof v);
    assert_string_equal(v, "v93"); /* from the overlay: no checkpoint yet */
    checkpoint(s, t);
    assert_int_equal(kr_topic_keys(t), 10);
    get(s, t, "k3", v, sizeof v); /* now from RocksDB */
    assert_string_equal(v, "v93");
    pub(s, t, 50, 10); /* after the checkpoint: overlay again */
    kr_store_close(s);

    /* Reopen: the closing checkpoint left nothing to replay. */
    s = open_store(1u << 20, 0);
    t = kr_store_topic(s, (const uint8_t *)"t", 1);
    assert_non_null(t);
    assert_int_equal(t->next, 150);
    assert_int_equal(t->marker, 150);
    get(s, t, "k3", v, sizeof v);
    assert_string_equal(v, "v143");
    for (uint64_t o = 0; o < 150; o += 7)
        fetch_one(s, t, o);
    kr_store_close(s);
}

/* Run the loop until the running checkpoint has finished, failed or not. */
static void checkpoint_settle(kr_store *s, kr_topic *t)
{
    for (int i = 0; i < 10000 && (s->ckpt_running || t->frozen != NULL); i++)
        event_base_loop(base, EVLOOP_ONCE);
    assert_false(s->ckpt_running);
    assert_null(t->frozen);
}

/*
 * A checkpoint that fails - its table file cannot be made: a directory
 * sits where it goes - puts nothing in the view and loses nothing: GET
 * answers every key's newest value from memory, with what came after the
 * failure on top, through a second failure too; once the file can be made
 * the next checkpoint holds them all.
 */
static void test_checkpoint_fails_then_mends(void **state)
{
    (void)state;
    kr_store *s = open_store(1u << 20, 0);
    kr_topic *t = reg(s, "t");
    char ingest[600], v[32];
    snprintf(ingest, sizeof ingest, "%s/view.ingest", dir);
    pub(s, t, 300, 100); /* k0..k99 = v200..v299 */
    assert_int_equal(mkdir(ingest, 0755), 0);
    /* The overlay the failed checkpoint froze is the active one again,
     * with what came meanwhile put on it: its keys are not copied into
     * another at every failure (a failing disk fails every interval). */
    const kr_overlay *held = t->active;
    kr_store_checkpoint(s);
    checkpoint_settle(s, t);
    assert_int_equal(t->marker, 0);
    assert_ptr_equal(t->active, held);
    pub(s, t, 50, 100); /* k0..k49 = v300..v349 */
    get(s, t, "k0", v, sizeof v);
    assert_string_equal(v, "v300");
    get(s, t, "k50", v, sizeof v);
    assert_string_equal(v, "v250");
    kr_store_checkpoint(s); /* fails again, over both */
    checkpoint_settle(s, t);
    assert_int_equal(t->marker, 0);
    pub(s, t, 10, 100); /* k50..k59 = v350..v359 */
    for (int k = 0; k < 100; k++) {
        char key[16], want[16];
        snprintf(key, sizeof key, "k%d", k);
        snprintf(want, sizeof want, "v%d", k < 60 ? 300 + k : 200 + k);
        get(s, t, key, v, sizeof v);
        assert_string_equal(v, want);
    }
    assert_int_equal(rmdir(ingest), 0);
    checkpoint(s, t);
    assert_int_equal(kr_topic_keys(t), 100);
    for (int k = 0; k < 100; k += 7) {
        char key[16], want[16];
        snprintf(key, sizeof key, "k%d", k);
        snprintf(want, sizeof want, "v%d", k < 60 ? 300 + k : 200 + k);
        get(s, t, key, v, sizeof v); /* from the view now */
        assert_string_equal(v, want);
    }
    kr_store_close(s);
}

/*
 * Failing checkpoints back off: with the overlays over their fill limit,
 * each failure used to start the next at once (a busy loop of failures and
 * log lines, even with nothing more written). Now what the tick and a full
 * overlay ask for waits for the retry's time (an hour here: the interval);
 * a checkpoint asked for by hand still runs; a success ends the run.
 */
static void test_failing_checkpoints_back_off(void **state)
{
    (void)state;
    kr_store *s = open_store_budget(1u << 20, 0, 128u << 10); /* fill limit 64 KiB */
    kr_topic *t = reg(s, "t");
    char ingest[600], v[512];
    snprintf(ingest, sizeof ingest, "%s/view.ingest", dir);
    assert_int_equal(mkdir(ingest, 0755), 0);
    int n = 0; /* batches of 100 until the overlay passes its fill limit */
    for (; n < 40 && s->active_bytes <= kr_store_fill_limit(s); n++) {
        pub(s, t, 100, 1000);
        checkpoint_settle(s, t);
    }
    assert_true(s->active_bytes > kr_store_fill_limit(s));
    assert_false(kr_store_view_full(s, v, sizeof v)); /* not past the whole budget */
    assert_int_equal(s->ckpt_retry.failures, 1);
    for (int i = 0; i < 100; i++)
        event_base_loop(base, EVLOOP_NONBLOCK);
    assert_int_equal(s->ckpt_retry.failures, 1);
    assert_false(s->ckpt_running);
    kr_store_checkpoint_due(s); /* not yet */
    assert_false(s->ckpt_running);
    kr_store_checkpoint(s); /* by hand: tried, and fails again */
    checkpoint_settle(s, t);
    assert_int_equal(s->ckpt_retry.failures, 2);
    assert_int_equal(kr_gauge_value(s->m_ckpt_failing), 2);
    assert_int_equal(t->marker, 0);
    char key[16], want[16];
    snprintf(key, sizeof key, "k%d", (n * 100 - 1) % 1000);
    snprintf(want, sizeof want, "v%d", n * 100 - 1);
    get(s, t, key, v, sizeof v);
    assert_string_equal(v, want);
    assert_int_equal(rmdir(ingest), 0);
    checkpoint(s, t);
    assert_int_equal(s->ckpt_retry.failures, 0);
    assert_int_equal(kr_gauge_value(s->m_ckpt_failing), 0);
    assert_int_equal(kr_topic_keys(t), n * 100 < 1000 ? n * 100 : 1000);
    kr_store_checkpoint_due(s); /* due again: nothing to do, nothing runs */
    assert_false(s->ckpt_running);
    kr_store_close(s);
}

/*
 * While checkpoints fail, what the overlays hold is bounded: past
 * --overlay-bytes a PUBLISH is refused (STORAGE, saying why and what to
 * do), nothing of it stored, and taken again once a checkpoint succeeds.
 */
static void test_failing_checkpoints_bound_memory(void **state)
{
    (void)state;
    kr_store *s = open_store_budget(1u << 20, 0, 64u << 10);
    kr_topic *t = reg(s, "t");
    char ingest[600], v[32];
    snprintf(ingest, sizeof ingest, "%s/view.ingest", dir);
    assert_int_equal(mkdir(ingest, 0755), 0);
    kr_event_out_spec ev[100];
    char keys[100][16];
    for (int i = 0; i < 100; i++) {
        snprintf(keys[i], sizeof keys[i], "k%d", i);
        ev[i] = (kr_event_out_spec){.key = keys[i],
                                    .key_len = strlen(keys[i]),
                                    .key_is_text = true,
                                    .value = (const uint8_t *)"\x41x",
                                    .value_len = 2};
    }
    kr_buf b, scratch;
    kr_request req;
    char msg[512];
    uint64_t bad;
    krappy_err rc = KRAPPY_OK;
    int sent = 0;
    for (; sent < 2000 && rc == KRAPPY_OK; sent++) {
        for (int i = 0; i < 100; i++) { /* new keys each time: the overlay grows */
            snprintf(keys[i], sizeof keys[i], "k%d", sent * 100 + i);
            ev[i].key_len = strlen(keys[i]);
        }
        kr_test_publish_request(ev, 100, &b, &scratch, &req);
        done d = {0};
        rc =
            kr_store_publish(s, t, &req, &scratch, false, NULL, on_done, &d, msg, sizeof msg, &bad);
        if (rc == KRAPPY_OK)
            run_until(&d.calls, 1);
        kr_buf_free(&b);
        kr_buf_free(&scratch);
        checkpoint_settle(s, t);
    }
    assert_int_equal(rc, KRAPPY_E_STORAGE);
    assert_non_null(strstr(msg, "nothing was stored"));
    assert_non_null(strstr(msg, "checkpoint"));
    assert_true(s->active_bytes > (64u << 10));
    assert_true(s->active_bytes < (64u << 10) + (32u << 10)); /* a batch or so past it */
    uint64_t next = t->next;
    assert_int_equal(t->assigned, next); /* the refused one took no offsets */
    assert_false(kr_store_view_overflow(s, msg, sizeof msg));
    /* Committed writes (a cluster's log) are applied regardless, until
     * the view holds twice --overlay-bytes: a follower then halts. */
    int applied = 0;
    for (; applied < 2000 && !kr_store_view_overflow(s, msg, sizeof msg); applied++) {
        for (int i = 0; i < 100; i++) {
            snprintf(keys[i], sizeof keys[i], "a%d", applied * 100 + i);
            ev[i].key_len = strlen(keys[i]);
        }
        kr_test_publish_request(ev, 100, &b, &scratch, &req);
        done d = {0};
        assert_int_equal(kr_store_publish_applied(s, t, &req, &scratch, NULL, 1, 0, on_done, &d,
                                                  msg, sizeof msg, &bad),
                         KRAPPY_OK);
        run_until(&d.calls, 1);
        kr_buf_free(&b);
        kr_buf_free(&scratch);
        checkpoint_settle(s, t);
    }
    assert_true(kr_store_view_overflow(s, msg, sizeof msg));
    assert_true(s->active_bytes > 2 * (64u << 10));
    assert_true(s->active_bytes < 2 * (64u << 10) + (32u << 10));
    assert_non_null(strstr(msg, "twice --overlay-bytes"));
    assert_null(strstr(msg, "nothing was stored")); /* it was stored */
    next = t->next;
    assert_int_equal(rmdir(ingest), 0);
    checkpoint(s, t);
    assert_false(kr_store_view_full(s, msg, sizeof msg));
    assert_false(kr_store_view_overflow(s, msg, sizeof msg));
    get(s, t, "k150", v, sizeof v); /* taken before the refusal: in the view now */
    assert_string_equal(v, "x");
    pub(s, t, 10, 100000); /* taken again */
    assert_int_equal(t->next, next + 10);
    kr_store_close(s);
}

/* GET answers cached from the view never outlive the checkpoint that
 * changes them: read through the cache, write, checkpoint, read again. */
static void test_get_cache_follows_checkpoints(void **state)
{
    (void)state;
    kr_store *s = open_store(1u << 20, 0);
    kr_topic *t = reg(s, "t");
    pub(s, t, 10, 10); /* k0..k9 = v0..v9 */
    checkpoint(s, t);
    char v[32];
    get(s, t, "k3", v, sizeof v); /* from RocksDB, now cached */
    assert_string_equal(v, "v3");
    assert_non_null(t->readcache);
    get(s, t, "k3", v, sizeof v); /* from the cache */
    assert_string_equal(v, "v3");
    pub(s, t, 10, 10);            /* k0..k9 = v10..v19, in the overlay */
    get(s, t, "k3", v, sizeof v); /* the overlay comes before the cache */
    assert_string_equal(v, "v13");
    checkpoint(s, t); /* the view changes: the cache starts again with what it wrote */
    assert_non_null(t->readcache);
    assert_int_equal(kr_overlay_count(t->readcache), 10);
    const kr_ov_entry *e = kr_overlay_get(t->readcache, (const uint8_t *)"k3", 2);
    assert_non_null(e);
    assert_int_equal(e->offset, 13);
    get(s, t, "k3", v, sizeof v);
    assert_string_equal(v, "v13");
    get(s, t, "k3", v, sizeof v);
    assert_string_equal(v, "v13");
    /* After a restart the cache is empty: GET reads the view, then keeps
     * its answer. */
    kr_store_close(s);
    s = open_store_budget(1u << 20, 0, 1u << 30);
    t = kr_store_topic(s, (const uint8_t *)"t", 1);
    assert_null(t->readcache);
    get(s, t, "k3", v, sizeof v);
    assert_string_equal(v, "v13");
    assert_non_null(t->readcache);
    kr_store_close(s);
}

static void test_index_lookup_and_rebuild(void **state)
{
    (void)state;
    kr_store *s = open_store(8192, 0); /* many small segments */
    kr_topic *t = reg(s, "t");
    for (int b = 0; b < 200; b++)
        pub(s, t, 1 + b % 17, 1000);
    uint64_t next = t->next;
    assert_true(t->n_segs > 3);
    for (uint64_t o = 0; o < next; o++)
        fetch_one(s, t, o);
    kr_store_close(s);
    assert_true(count_files(".idx") >= 3); /* hints left by segment rolls */

    /* Closed segments load their hints; every offset is still found. */
    s = open_store(8192, 0);
    t = kr_store_topic(s, (const uint8_t *)"t", 1);
    assert_int_equal(t->next, next);
    for (uint64_t o = 0; o < next; o++)
        fetch_one(s, t, o);
    kr_store_close(s);

    /* Hints gone: segments are scanned again. */
    char cmd[160];
    snprintf(cmd, sizeof cmd, "rm -f %s/topics/t/*.idx", dir);
    assert_int_equal(system(cmd), 0);
    s = open_store(8192, 0);
    t = kr_store_topic(s, (const uint8_t *)"t", 1);
    assert_int_equal(t->next, next);
    for (uint64_t o = 0; o < next; o += 3)
        fetch_one(s, t, o);
    kr_store_close(s);
}

/* A segment written across a restart leaves, when it rolls, an index that
 * still covers the part written before the restart. */
static void test_index_spans_restart(void **state)
{
    (void)state;
    kr_store *s = open_store(32768, 0);
    kr_topic *t = reg(s, "t");
    for (int b = 0; b < 40; b++)
        pub(s, t, 10, 1000); /* ~ 10 KiB: no roll yet */
    assert_int_equal(t->n_segs, 1);
    kr_store_close(s);
    s = open_store(32768, 0);
    t = kr_store_topic(s, (const uint8_t *)"t", 1);
    for (int b = 0; b < 200 && t->n_segs < 2; b++)
        pub(s, t, 10, 1000);
    assert_true(t->n_segs >= 2);
    uint64_t size = t->segs[0]->size;
    kr_store_close(s);

    char path[128];
    snprintf(path, sizeof path, "%s/topics/t", dir);
    int dfd = open(path, O_RDONLY | O_DIRECTORY);
    assert_true(dfd >= 0);
    kr_index_meta meta;
    kr_index idx = {0};
    assert_int_equal(kr_index_load(dfd, 0, size, &meta, &idx), 0);
    close(dfd);
    assert_true(idx.n >= 4);
    assert_int_equal(idx.e[0].offset, 0); /* from the first batch, not from the restart */
    assert_true(idx.e[1].pos - idx.e[0].pos < 2 * KR_INDEX_INTERVAL);
    kr_index_free(&idx);
}

static void test_fetch_limits(void **state)
{
    (void)state;
    kr_store *s = open_store(1u << 20, 0);
    kr_topic *t = reg(s, "t");
    pub(s, t, 100, 100);
    pub(s, t, 100, 100);
    kr_fetch_result r;
    char msg[256];
    /* max across two batches */
    assert_int_equal(kr_store_fetch(s, t, 50, 120, 1u << 20, &r, msg, sizeof msg), KRAPPY_OK);
    assert_int_equal(r.count, 120);
    assert_int_equal(r.next, 170);
    assert_int_equal(r.n_ranges, 2);
    /* max_bytes: stop before exceeding, but always one event */
    assert_int_equal(kr_store_fetch(s, t, 0, 1000, 1, &r, msg, sizeof msg), KRAPPY_OK);
    assert_int_equal(r.count, 1);
    assert_int_equal(kr_store_fetch(s, t, 0, 1000, 0, &r, msg, sizeof msg), KRAPPY_OK);
    assert_int_equal(r.count, 1); /* 0 means one event */
    assert_int_equal(kr_store_fetch(s, t, 0, 1000, 100, &r, msg, sizeof msg), KRAPPY_OK);
    assert_true(r.count >= 1 && r.bytes <= 100);
    /* the server's cap on max */
    assert_int_equal(kr_store_fetch(s, t, 0, 1000000, 1u << 20, &r, msg, sizeof msg), KRAPPY_OK);
    assert_int_equal(r.count, 200);
    /* out of range */
    assert_int_equal(kr_store_fetch(s, t, 201, 10, 1u << 20, &r, msg, sizeof msg),
                     KRAPPY_E_OFFSET_OUT_OF_RANGE);
    assert_int_equal(kr_store_fetch(s, t, 200, 10, 1u << 20, &r, msg, sizeof msg), KRAPPY_OK);
    assert_int_equal(r.count, 0);
    kr_store_close(s);
}

static void test_retention_after_checkpoint(void **state)
{
    (void)state;
    kr_store *s = open_store(8192, 32768);
    kr_topic *t = reg(s, "t");
    for (int b = 0; b < 40; b++)
        pub(s, t, 50, 30);
    assert_int_equal(t->first, 0); /* nothing goes before a checkpoint covers it */
    size_t segs = t->n_segs;
    checkpoint(s, t);
    for (int i = 0; i < 100 && t->first == 0; i++)
        event_base_loop(base, EVLOOP_NONBLOCK);
    assert_true(t->first > 0);
    assert_true(t->n_segs < segs);
    assert_true(t->bytes <= 32768 + 8192);
    char v[32];
    for (int k = 0; k < 30; k++) {
        char key[16];
        snprintf(key, sizeof key, "k%d", k);
        get(s, t, key, v, sizeof v);
        assert_true(v[0] == 'v');
    }
    uint64_t first = t->first;
    kr_store_close(s);
    s = open_store(8192, 32768);
    t = kr_store_topic(s, (const uint8_t *)"t", 1);
    assert_int_equal(t->first, first);
    get(s, t, "k7", v, sizeof v);
    assert_true(v[0] == 'v');
    kr_store_close(s);
}

/* A cluster member's retention decisions (kr_store_retention_led). */
static uint64_t decided;
static unsigned n_decided;

static void decide(void *arg, kr_topic *t, uint64_t first)
{
    (void)arg;
    (void)t;
    decided = first;
    n_decided++;
}

/* On a cluster member the limits only decide: nothing is retired until the
 * log's RETENTION is applied (kr_store_retain), which sets `first` - also
 * inside a segment - and retires the segments wholly below it. */
static void test_retention_led(void **state)
{
    (void)state;
    kr_store *s = open_store(8192, 32768);
    kr_store_retention_led(s, decide, NULL);
    decided = 0;
    n_decided = 0;
    kr_topic *t = reg(s, "t");
    for (int b = 0; b < 40; b++)
        pub(s, t, 50, 30);
    size_t segs = t->n_segs;
    checkpoint(s, t);
    for (int i = 0; i < 100 && n_decided == 0; i++)
        event_base_loop(base, EVLOOP_NONBLOCK);
    assert_int_equal(n_decided, 1);
    assert_true(decided > 0 && decided < t->next);
    assert_int_equal(t->first, 0); /* decided, not retired */
    assert_int_equal(t->n_segs, segs);
    kr_store_retain(s, t, decided);
    assert_int_equal(t->first, decided);
    assert_true(t->n_segs < segs);
    assert_int_equal(n_decided, 1); /* the same decision is not asked for again */
    /* Inside a segment: its events below `first` are no longer served. */
    uint64_t mid = decided + 3;
    size_t kept = t->n_segs;
    kr_store_retain(s, t, mid);
    assert_int_equal(t->first, mid);
    assert_int_equal(t->n_segs, kept);
    char msg[256];
    kr_fetch_result r;
    assert_int_equal(kr_store_fetch(s, t, mid - 1, 10, 1u << 20, &r, msg, sizeof msg),
                     KRAPPY_E_OFFSET_OUT_OF_RANGE);
    assert_int_equal(kr_store_fetch(s, t, mid, 10, 1u << 20, &r, msg, sizeof msg), KRAPPY_OK);
    assert_true(r.count > 0);
    /* A decision beyond next stops at next. */
    kr_store_retain(s, t, t->next + 100);
    assert_int_equal(t->first, t->next);
    kr_store_close(s);
}

static void test_lock_refuses_second_open(void **state)
{
    (void)state;
    kr_store *s = open_store(1u << 20, 0);
    kr_store_opts o = {.data_dir = dir,
                       .segment_bytes = 1u << 20,
                       .checkpoint_ms = 1000,
                       .overlay_bytes = 1u << 20,
                       .max_frame = 1u << 20,
                       .max_events = 10,
                       .max_publish_events = 10,
                       .max_wait_ms = 10,
                       .rocksdb_log_dir = ""};
    kr_store *s2;
    char err[256];
    assert_int_equal(kr_store_open(&o, base, metrics, &s2, err, sizeof err), -1);
    assert_non_null(strstr(err, "another krappyd is already using"));
    kr_store_close(s);
}

/*
 * The overlays' budget: a producer keeping WINDOW batches of new keys in
 * flight against a budget a few batches big. Whenever the active overlay
 * is past half the budget while a checkpoint runs, acks wait; none is
 * lost, they come in order, the active overlay never holds much more than
 * half the budget plus the window, and every key reads back.
 */
#define BP_BATCHES 120
#define BP_EVENTS  200
#define BP_WINDOW  4

typedef struct bp_state {
    kr_store *s;
    kr_topic *t;
    int acked;
    uint64_t next_first; /* the `first` the next ack must carry */
    bool out_of_order;
    size_t max_active, max_held;
} bp_state;

static void bp_done(void *arg, const kr_store_result *res)
{
    bp_state *b = arg;
    if (res->err != KRAPPY_OK || res->first != b->next_first)
        b->out_of_order = true;
    b->next_first = res->first + res->count;
    b->acked++;
}

static void bp_publish(bp_state *b, int batch)
{
    kr_event_out_spec ev[BP_EVENTS];
    char keys[BP_EVENTS][16];
    uint8_t val[40];
    memset(val, 'v', sizeof val);
    val[0] = 0x58; /* a byte string of 38 */
    val[1] = 38;
    for (int j = 0; j < BP_EVENTS; j++) {
        snprintf(keys[j], sizeof keys[j], "n%07d", batch * BP_EVENTS + j);
        ev[j] = (kr_event_out_spec){.key = keys[j],
                                    .key_len = strlen(keys[j]),
                                    .key_is_text = true,
                                    .value = val,
                                    .value_len = sizeof val};
    }
    kr_buf e, scratch;
    kr_request req;
    char msg[256];
    uint64_t bad;
    kr_test_publish_request(ev, BP_EVENTS, &e, &scratch, &req);
    assert_int_equal(kr_store_publish(b->s, b->t, &req, &scratch, false, NULL, bp_done, b, msg,
                                      sizeof msg, &bad),
                     KRAPPY_OK);
    kr_buf_free(&e);
    kr_buf_free(&scratch);
}

/* A big chunk (a Kafka Produce's) is recycled, one at a time, up to 4 MiB. */
static void test_chunk_pool_keeps_one_big_chunk(void **state)
{
    (void)state;
    kr_store *s = open_store(1u << 20, 0);
    kr_stream st1 = {0}, st2 = {0}, st3 = {0};
    kr_chunk *big = kr_stream_chunk(s, &st1);
    kr_chunk *big2 = kr_stream_chunk(s, &st2);
    kr_chunk *huge = kr_stream_chunk(s, &st3);
    assert_non_null(big);
    assert_non_null(big2);
    assert_non_null(huge);
    assert_int_equal(kr_buf_reserve(&big->data, 1536 * 1024), 0);
    assert_int_equal(kr_buf_reserve(&big2->meta, 2u << 20), 0);
    assert_int_equal(kr_buf_reserve(&huge->data, 6u << 20), 0);
    size_t free_before = s->n_free_chunks;
    st1.open = st2.open = st3.open = NULL;
    kr_chunk_unref(s, huge); /* over 4 MiB: freed */
    assert_int_equal(s->n_free_big_chunks, 0);
    kr_chunk_unref(s, big);
    assert_int_equal(s->n_free_big_chunks, 1);
    kr_chunk_unref(s, big2); /* a second big one: freed */
    assert_int_equal(s->n_free_big_chunks, 1);
    assert_int_equal(s->n_free_chunks, free_before + 1);

    kr_chunk *again = kr_stream_chunk(s, &st1);
    assert_ptr_equal(again, big);
    assert_true(again->data.cap >= 1536 * 1024);
    assert_int_equal(again->data.len, 0);
    assert_int_equal(s->n_free_big_chunks, 0);
    st1.open = NULL;
    kr_chunk_unref(s, again);
    assert_int_equal(s->n_free_big_chunks, 1);
    kr_store_close(s);
}

static void test_overlay_budget(void **state)
{
    (void)state;
    const uint64_t budget = 256 * 1024;
    kr_store *s = open_store_budget(1u << 20, 0, budget);
    bp_state b = {.s = s, .t = reg(s, "t")};
    int sent = 0;
    while (b.acked < BP_BATCHES) {
        while (sent < BP_BATCHES && sent - b.acked < BP_WINDOW)
            bp_publish(&b, sent++);
        event_base_loop(base, EVLOOP_ONCE);
        size_t held = 0;
        kr_append *a;
        TAILQ_FOREACH(a, &s->held, link)
        held++;
        if (held > b.max_held)
            b.max_held = held;
        if (kr_overlay_bytes(b.t->active) > b.max_active)
            b.max_active = kr_overlay_bytes(b.t->active);
    }
    assert_false(b.out_of_order);
    assert_int_equal(b.next_first, BP_BATCHES * BP_EVENTS);
    /* A batch adds BP_EVENTS records of ~120 bytes and their slots (16
     * bytes at a load of 35% to 70%); a doubling table adds up to 128 KiB. */
    assert_true(b.max_active <= budget / 2 + (BP_WINDOW + 1) * BP_EVENTS * 170 + 128 * 1024);
    assert_true(b.max_held <= BP_WINDOW);
    print_message("[ store ] budget %llu: most active overlay %zu bytes, most acks held %zu\n",
                  (unsigned long long)budget, b.max_active, b.max_held);
    checkpoint(s, b.t);
    assert_int_equal(kr_topic_keys(b.t), BP_BATCHES * BP_EVENTS);
    assert_true(TAILQ_EMPTY(&s->held));
    char key[16], v[64];
    for (int k = 0; k < BP_BATCHES * BP_EVENTS; k += 997) {
        snprintf(key, sizeof key, "n%07d", k);
        get(s, b.t, key, v, sizeof v);
        assert_int_equal(strlen(v), 38);
    }
    kr_store_close(s);
}

/* Join group `name` from the earliest offset; *m gets the member. */
static kr_tgroup *join(kr_store *s, kr_topic *t, const char *name, kr_member **m)
{
    kr_join a = {.group = (const uint8_t *)name, .glen = strlen(name), .start = KR_START_EARLIEST};
    kr_tgroup *tg;
    void *taken = NULL;
    done d = {0};
    char msg[256];
    assert_int_equal(kr_store_group_join(s, t, &a, &tg, m, &taken, on_done, &d, msg, sizeof msg),
                     KRAPPY_OK);
    run_until(&d.calls, 1);
    assert_int_equal(d.res.err, KRAPPY_OK);
    return tg;
}

/* What the server reads of a group goes through the store's accessors:
 * name, cursor, frontier, stats; an ACK that moves the cursor wakes the
 * POLLs parked on the group. */
static void on_wake(kr_waiter *w, bool timed_out)
{
    (void)timed_out;
    (*(int *)w->arg)++;
}

static void test_group_accessors(void **state)
{
    (void)state;
    kr_store *s = open_store(1u << 20, 0);
    kr_topic *t = reg(s, "t");
    pub(s, t, 10, 10);
    kr_member *m;
    kr_tgroup *tg = join(s, t, "g1", &m);
    char msg[256];
    size_t len;
    assert_string_equal(kr_store_group_name(tg, &len), "g1");
    assert_int_equal(len, 2);
    kr_tgroup *const *groups;
    assert_int_equal(kr_store_groups(t, &groups), 1);
    assert_ptr_equal(groups[0], tg);

    struct evbuffer *events = evbuffer_new();
    uint64_t count;
    assert_int_equal(kr_store_poll(s, tg, m, 4, 1u << 20, events, &count, msg, sizeof msg),
                     KRAPPY_OK);
    assert_int_equal(count, 4);
    evbuffer_free(events);
    assert_int_equal(kr_store_group_cursor(tg), 0);
    assert_int_equal(kr_store_group_frontier(tg), 4);
    kr_group_stats gs;
    kr_store_group_stats(tg, &gs);
    assert_int_equal(gs.name_len, 2);
    assert_int_equal(gs.cursor, 0);
    assert_int_equal(gs.pending, 4);
    assert_int_equal(gs.lag, 10);
    assert_int_equal(gs.members, 1);

    int woken = 0;
    kr_waiter w = {.topic = t, .wake = on_wake, .arg = &woken};
    assert_int_equal(kr_store_park_group(s, tg, &w, 60000), 0);
    kr_ack_result res;
    kr_store_group_ack_upto(s, tg, m, 2, &res);
    assert_int_equal(res.err, KRAPPY_OK);
    free(res.ignored);
    assert_int_equal(woken, 1);                                        /* room in the window */
    kr_store_group_ack_offsets(s, tg, (const uint64_t[]){3}, 1, &res); /* cursor stays */
    assert_int_equal(res.err, KRAPPY_OK);
    free(res.ignored);
    assert_int_equal(kr_store_group_cursor(tg), 2);
    kr_store_group_stats(tg, &gs);
    assert_int_equal(gs.pending, 1);
    assert_int_equal(gs.lag, 8);
    assert_int_equal(kr_store_park_group(s, tg, &w, 60000), 0);
    kr_store_group_ack_offsets(s, tg, (const uint64_t[]){2}, 1, &res);
    free(res.ignored);
    assert_int_equal(kr_store_group_cursor(tg), 4);
    assert_int_equal(woken, 2);
    kr_store_close(s);
}

/* Retention passing a group that never polled moves its cursor (a group
 * with nothing handed out has no runs at all). */
static void test_retention_passes_an_idle_group(void **state)
{
    (void)state;
    kr_store *s = open_store(8192, 32768);
    kr_topic *t = reg(s, "t");
    kr_member *m;
    kr_tgroup *tg = join(s, t, "idle", &m);
    for (int b = 0; b < 40; b++)
        pub(s, t, 50, 30);
    checkpoint(s, t);
    for (int i = 0; i < 100 && t->first == 0; i++)
        event_base_loop(base, EVLOOP_NONBLOCK);
    assert_true(t->first > 0);
    assert_int_equal(kr_store_group_cursor(tg), t->first);
    kr_store_close(s);
}

/* Recovery refuses a segment whose header is bad with a sentence naming
 * the file and what to do. */
static void test_recovery_names_a_bad_segment(void **state)
{
    (void)state;
    kr_store *s = open_store(1u << 20, 0);
    kr_topic *t = reg(s, "t");
    pub(s, t, 10, 10);
    kr_store_close(s);
    char path[160];
    snprintf(path, sizeof path, "%s/topics/t/00000000000000000000.seg", dir);
    int fd = open(path, O_WRONLY);
    assert_true(fd >= 0);
    assert_int_equal(pwrite(fd, "XXXX", 4, 0), 4); /* the magic */
    close(fd);
    kr_store_opts o = store_opts(1u << 20, 0, 1u << 20);
    char err[256];
    assert_int_equal(kr_store_open(&o, base, metrics, &s, err, sizeof err), -1);
    assert_non_null(strstr(err, path));
    assert_non_null(strstr(err, "bad header"));
    assert_non_null(strstr(err, "move it away"));
}

/* A power cut just after a roll leaves the new last segment without its
 * header: recovery removes it and recovers the topic again from the
 * segments before it - every event they hold still there. */
static void test_recovery_after_a_headless_last_segment(void **state)
{
    (void)state;
    kr_store *s = open_store(1u << 20, 0);
    kr_topic *t = reg(s, "t");
    pub(s, t, 10, 10);
    kr_store_close(s);
    char path[160];
    snprintf(path, sizeof path, "%s/topics/t/00000000000000000010.seg", dir);
    int fd = open(path, O_WRONLY | O_CREAT | O_EXCL, 0640); /* the roll's file, empty */
    assert_true(fd >= 0);
    close(fd);
    s = open_store(1u << 20, 0);
    t = kr_store_topic(s, (const uint8_t *)"t", 1);
    assert_non_null(t);
    assert_int_equal(t->first, 0);
    assert_int_equal(t->next, 10);
    assert_int_equal(access(path, F_OK), -1);
    fetch_emit_check(s, t, 0, 10);
    kr_store_close(s);
}

/* A BASE.idx whose CRC is right but whose hints point outside the segment
 * is not believed: the segment is scanned, and every offset is served. */
static void test_forged_index_is_not_believed(void **state)
{
    (void)state;
    kr_store *s = open_store(8192, 0);
    kr_topic *t = reg(s, "t");
    for (int b = 0; b < 400 && t->n_segs < 3; b++)
        pub(s, t, 10, 1000);
    assert_true(t->n_segs >= 3);
    uint64_t next = t->next, size0 = t->segs[0]->size, next0 = t->segs[0]->next;
    kr_store_close(s);

    char path[128];
    snprintf(path, sizeof path, "%s/topics/t", dir);
    int dfd = open(path, O_RDONLY | O_DIRECTORY);
    assert_true(dfd >= 0);
    kr_index forged = {0};
    kr_index_entry e[2] = {{0, KR_SEG_HEADER_BYTES}, {1, size0 + 4096}}; /* past the end */
    forged.e = e;
    forged.n = 2;
    kr_index_meta meta = {.next = next0, .max_ts = 0};
    assert_int_equal(kr_index_write(dfd, 0, &meta, size0, &forged), 0);
    close(dfd);

    s = open_store(8192, 0);
    t = kr_store_topic(s, (const uint8_t *)"t", 1);
    assert_int_equal(t->next, next);
    for (uint64_t o = 0; o < next; o++)
        fetch_one(s, t, o);
    kr_store_close(s);
}

/* Batch positions of a segment file, as a scan finds them. */
typedef struct batches {
    uint64_t base[256], pos[256];
    uint32_t count[256];
    size_t n;
} batches;

static void note_batch(void *arg, const kr_batch_hdr *h, uint64_t pos)
{
    batches *b = arg;
    if (b->n < 256) {
        b->base[b->n] = h->base;
        b->count[b->n] = h->count;
        b->pos[b->n++] = pos;
    }
}

/*
 * A BASE.idx whose CRC is right and whose hints are in order, but one of
 * them names the batch after the one it claims (one batch too far): a
 * FETCH believed it and answered a count of events it did not send. The
 * hints are rebuilt on the first read - every offset is served, counts and
 * events agree - and the wrong file is deleted.
 */
static void test_index_one_batch_too_far(void **state)
{
    (void)state;
    kr_store *s = open_store(8192, 0);
    kr_topic *t = reg(s, "t");
    for (int b = 0; b < 400 && t->n_segs < 3; b++)
        pub(s, t, 10, 1000);
    uint64_t next = t->next, size0 = t->segs[0]->size, next0 = t->segs[0]->next;
    kr_store_close(s);

    char path[160];
    snprintf(path, sizeof path, "%s/topics/t/00000000000000000000.seg", dir);
    int fd = open(path, O_RDONLY);
    assert_true(fd >= 0);
    batches b = {0};
    kr_seg_scan scan;
    assert_int_equal(kr_seg_scan_fd(fd, &scan, note_batch, &b), 0);
    close(fd);
    assert_true(b.n >= 6);
    snprintf(path, sizeof path, "%s/topics/t", dir);
    int dfd = open(path, O_RDONLY | O_DIRECTORY);
    assert_true(dfd >= 0);
    kr_index_entry e[2] = {{b.base[0], b.pos[0]}, {b.base[3], b.pos[4]}}; /* one too far */
    kr_index forged = {.e = e, .n = 2};
    kr_index_meta meta = {.next = next0, .max_ts = 0};
    assert_int_equal(kr_index_write(dfd, 0, &meta, size0, &forged), 0);
    close(dfd);
    size_t idx_files = count_files(".idx");

    s = open_store(8192, 0);
    t = kr_store_topic(s, (const uint8_t *)"t", 1);
    assert_int_equal(t->next, next);
    for (uint64_t o = b.base[3]; o < b.base[5]; o++)
        fetch_one(s, t, o);
    /* A FETCH across the batches: as many events as its ranges hold. */
    kr_fetch_result r;
    char msg[256];
    assert_int_equal(kr_store_fetch(s, t, b.base[3], 1000, 1u << 20, &r, msg, sizeof msg),
                     KRAPPY_OK);
    uint64_t in_ranges = 0;
    for (size_t i = 0; i < r.n_ranges; i++) {
        uint8_t buf[8192];
        assert_true(r.ranges[i].len <= sizeof buf);
        int rfd = kr_fdfile_get(r.ranges[i].seg->file);
        assert_int_equal(pread(rfd, buf, r.ranges[i].len, (off_t)r.ranges[i].pos),
                         (ssize_t)r.ranges[i].len);
        kr_fdfile_put(r.ranges[i].seg->file);
        for (size_t at = 0; at < r.ranges[i].len; in_ranges++) {
            kr_cbor_item ev;
            assert_int_equal(kr_cbor_read(buf + at, r.ranges[i].len - at, &ev), 0);
            kr_event_view v;
            assert_int_equal(kr_event_view_read(&ev, &v), 0);
            assert_int_equal(v.offset, b.base[3] + in_ranges);
            at += ev.raw_len;
        }
    }
    assert_int_equal(in_ranges, r.count);
    for (int i = 0; i < 500 && count_files(".idx") == idx_files; i++) {
        event_base_loop(base, EVLOOP_NONBLOCK); /* the writer deletes it: up to 5 s */
        usleep(10000);
    }
    assert_int_equal(count_files(".idx"), idx_files - 1);
    kr_store_close(s);
}

/* A group cursor record whose name is longer than any group's (a damaged
 * or foreign view) is skipped at start-up, not copied into a group. */
static void test_group_record_with_a_long_name_is_skipped(void **state)
{
    (void)state;
    kr_store *s = open_store(1u << 20, 0);
    kr_topic *t = reg(s, "t");
    pub(s, t, 10, 10);
    uint8_t name[KRAPPY_MAX_NAME_BYTES + 50];
    memset(name, 'g', sizeof name);
    kr_view_batch *b = kr_view_batch_new();
    assert_non_null(b);
    kr_view_batch_cursor(b, "t", 1, name, sizeof name, 5, 0);
    kr_view_batch_cursor(b, "t", 1, name, 3, 4, 0); /* "ggg": a good one */
    char err[256];
    assert_int_equal(kr_view_write_logged(s->view, b, false, err, sizeof err), 0);
    kr_view_batch_free(b);
    kr_store_close(s);

    s = open_store(1u << 20, 0);
    t = kr_store_topic(s, (const uint8_t *)"t", 1);
    kr_tgroup *const *groups;
    assert_int_equal(kr_store_groups(t, &groups), 1);
    size_t len;
    assert_string_equal(kr_store_group_name(groups[0], &len), "ggg");
    assert_int_equal(kr_store_group_cursor(groups[0]), 4);
    kr_store_close(s);
}

/* ---- administration: DELETE_TOPIC, GROUP_SEEK, GROUP_DELETE ---- */

static void on_wake_gone(kr_waiter *w, bool timed_out)
{
    (void)timed_out;
    *(int *)w->arg = w->gone ? 1 : -1;
}

/* Entries of DATA/topics whose name starts with c. */
static size_t topic_dirs_starting(char c)
{
    char path[128];
    snprintf(path, sizeof path, "%s/topics", dir);
    DIR *d = opendir(path);
    size_t n = 0;
    struct dirent *e;
    while (d != NULL && (e = readdir(d)) != NULL)
        if (e->d_name[0] == c)
            n++;
    if (d != NULL)
        closedir(d);
    return n;
}

static int count_name(void *arg, const char *topic, size_t tlen)
{
    (void)topic;
    (void)tlen;
    (*(int *)arg)++;
    return 0;
}

/* Records the view holds for any topic (a topic counts once per kind). */
static int view_topics(kr_store *s)
{
    int n = 0;
    char err[256];
    assert_int_equal(kr_view_topic_names(s->view, count_name, &n, err, sizeof err), 0);
    return n;
}

static void delete_topic(kr_store *s, kr_topic *t)
{
    done d = {0};
    char msg[256];
    assert_int_equal(kr_store_delete_topic(s, t, on_done, &d, msg, sizeof msg), KRAPPY_OK);
    run_until(&d.calls, 1);
    assert_int_equal(d.res.err, KRAPPY_OK);
}

/*
 * A topic with events, keys in the view, a group and parked readers is
 * deleted: the readers are woken with `gone`, the name is free at once, the
 * directory and every record in the view are gone, and a topic registered
 * under the name starts at 0 with nothing of the old one - also after a
 * restart.
 */
static void test_delete_topic(void **state)
{
    (void)state;
    kr_store *s = open_store(4096, 0);
    kr_topic *t = reg(s, "t");
    for (int b = 0; b < 10; b++)
        pub(s, t, 20, 30);
    kr_member *m;
    kr_tgroup *tg = join(s, t, "g", &m);
    checkpoint(s, t);
    pub(s, t, 5, 30); /* some in the overlay only */
    assert_true(view_topics(s) >= 2);
    int fetch_woken = 0, poll_woken = 0;
    kr_waiter fw = {.topic = t, .offset = t->next, .wake = on_wake_gone, .arg = &fetch_woken};
    kr_waiter pw = {.topic = t, .wake = on_wake_gone, .arg = &poll_woken};
    assert_int_equal(kr_store_park(s, &fw, 60000), 0);
    assert_int_equal(kr_store_park_group(s, tg, &pw, 60000), 0);

    /* A checkpoint of the topic on its way: it must not write the topic's
     * keys back after the deletion removed them. */
    kr_store_checkpoint(s);
    assert_non_null(t->frozen);
    done d = {0};
    char msg[256];
    assert_int_equal(kr_store_delete_topic(s, t, on_done, &d, msg, sizeof msg), KRAPPY_OK);
    assert_int_equal(fetch_woken, 1);
    assert_int_equal(poll_woken, 1);
    assert_null(kr_store_topic(s, (const uint8_t *)"t", 1));
    kr_topic **all;
    assert_int_equal(kr_store_topics(s, &all), 0);
    /* Registered again before the deletion is through: a new topic, whose
     * creation runs after the deletion. */
    done r = {0};
    kr_topic *t2;
    kr_store_result res;
    assert_int_equal(kr_store_register(s, (const uint8_t *)"t", 1, &t2, on_done, &r, &res), 0);
    assert_ptr_not_equal(t2, t);
    run_until(&d.calls, 1);
    assert_int_equal(d.res.err, KRAPPY_OK);
    run_until(&r.calls, 1);
    assert_int_equal(r.res.err, KRAPPY_OK);
    assert_int_equal(t2->next, 0);
    char v[32];
    get(s, t2, "k1", v, sizeof v);
    assert_string_equal(v, "");
    kr_tgroup *const *groups;
    assert_int_equal(kr_store_groups(t2, &groups), 0);
    assert_int_equal(topic_dirs_starting('~'), 0);
    assert_int_equal(view_topics(s), 0);
    pub(s, t2, 3, 3);
    checkpoint(s, t2);
    kr_store_close(s);

    s = open_store(4096, 0);
    t2 = kr_store_topic(s, (const uint8_t *)"t", 1);
    assert_non_null(t2);
    assert_int_equal(t2->first, 0);
    assert_int_equal(t2->next, 3);
    assert_int_equal(kr_store_groups(t2, &groups), 0);
    get(s, t2, "k1", v, sizeof v);
    assert_string_equal(v, "v1");
    get(s, t2, "k29", v, sizeof v);
    assert_string_equal(v, "");
    delete_topic(s, t2);
    kr_store_close(s);
    s = open_store(4096, 0);
    assert_int_equal(kr_store_topics(s, &all), 0);
    assert_int_equal(view_topics(s), 0);
    assert_int_equal(topic_dirs_starting('0') + topic_dirs_starting('t'), 0);
    kr_store_close(s);
}

/* A PUBLISH of --max-publish-events events in a frame below max_frame is
 * stored, though its stored form (each event with its offset and ts) is
 * larger than the frame: it used to fail STORAGE "out of memory encoding
 * the batch". */
static void test_publish_at_the_event_cap(void **state)
{
    (void)state;
    kr_store *s = open_store(64u << 20, 0);
    kr_topic *t = reg(s, "t");
    size_t n = s->o.max_publish_events;
    kr_event_out_spec *ev = calloc(n, sizeof *ev);
    assert_non_null(ev);
    static const uint8_t one = 0x01; /* the value 1, keyless */
    for (size_t i = 0; i < n; i++)
        ev[i] = (kr_event_out_spec){.value = &one, .value_len = 1};
    kr_buf b, scratch;
    kr_buf_init(&b, s->o.max_frame);
    kr_buf_init(&scratch, s->o.max_frame);
    kr_enc_publish(&b, (kr_cid){0}, KR_ACK_WRITE, ev, n);
    assert_false(b.failed);
    assert_true(b.len + 4 <= s->o.max_frame);
    kr_request req;
    char msg[256];
    if (kr_req_decode(KRAPPY_T_PUBLISH, b.data, b.len, &scratch, &req, msg, sizeof msg) !=
        KRAPPY_OK)
        fail_msg("decode: %s", msg);
    done d = {0};
    uint64_t bad = UINT64_MAX;
    krappy_err rc =
        kr_store_publish(s, t, &req, &scratch, false, NULL, on_done, &d, msg, sizeof msg, &bad);
    if (rc != KRAPPY_OK)
        fail_msg("PUBLISH of %zu events: %s", n, msg);
    run_until(&d.calls, 1);
    assert_int_equal(d.res.err, KRAPPY_OK);
    assert_int_equal(d.res.count, n);
    assert_int_equal(t->next, n);
    assert_true(t->bytes > s->o.max_frame); /* stored larger than the frame */
    kr_fetch_result r;
    if (kr_store_fetch(s, t, n - 1, 1, 0, &r, msg, sizeof msg) != KRAPPY_OK)
        fail_msg("FETCH of the last event: %s", msg);
    assert_int_equal(r.count, 1);
    kr_buf_free(&b);
    kr_buf_free(&scratch);
    free(ev);
    kr_store_close(s);
}

/*
 * A crash after the atomic point: the directory was moved aside but the
 * view still holds the topic's records (and a second, older ghost has
 * records and no directory at all). The next start finishes both
 * deletions before anything can use the names.
 */
static void test_deletion_finished_at_start(void **state)
{
    (void)state;
    kr_store *s = open_store(4096, 0);
    kr_topic *t = reg(s, "t");
    pub(s, t, 50, 10);
    kr_member *m;
    join(s, t, "g", &m);
    checkpoint(s, t);
    kr_topic *keep = reg(s, "keep");
    pub(s, keep, 5, 5);
    checkpoint(s, keep);
    kr_view_batch *b = kr_view_batch_new();
    kr_view_batch_cursor(b, "ghost", 5, (const uint8_t *)"g", 1, 7, 0);
    char err[256];
    assert_int_equal(kr_view_write_logged(s->view, b, true, err, sizeof err), 0);
    kr_view_batch_free(b);
    kr_store_close(s);

    char from[128], to[128];
    snprintf(from, sizeof from, "%s/topics/t", dir);
    snprintf(to, sizeof to, "%s/topics/~deleted.1.0", dir);
    assert_int_equal(rename(from, to), 0);

    s = open_store(4096, 0);
    assert_null(kr_store_topic(s, (const uint8_t *)"t", 1));
    assert_int_equal(topic_dirs_starting('~'), 0);
    uint64_t next, keys;
    assert_int_equal(kr_view_marker(s->view, "t", 1, &next, &keys, err, sizeof err), 0);
    keep = kr_store_topic(s, (const uint8_t *)"keep", 4);
    assert_non_null(keep);
    assert_int_equal(keep->next, 5);
    char v[32];
    get(s, keep, "k1", v, sizeof v);
    assert_string_equal(v, "v1");
    t = reg(s, "t");
    assert_int_equal(t->next, 0);
    get(s, t, "k1", v, sizeof v);
    assert_string_equal(v, "");
    kr_tgroup *const *groups;
    assert_int_equal(kr_store_groups(t, &groups), 0);
    kr_store_close(s);
}

/* Publish n events at the given timestamps (key "k<offset>"). */
static void pub_ts(kr_store *s, kr_topic *t, const uint64_t *ts, int n)
{
    kr_event_out_spec ev[64];
    char keys[64][16];
    static const uint8_t one[] = {0x01};
    assert_true(n <= 64);
    for (int j = 0; j < n; j++) {
        snprintf(keys[j], sizeof keys[j], "k%llu", (unsigned long long)(t->assigned + (uint64_t)j));
        ev[j] = (kr_event_out_spec){.key = keys[j],
                                    .key_len = strlen(keys[j]),
                                    .key_is_text = true,
                                    .value = one,
                                    .value_len = 1,
                                    .has_ts = true,
                                    .ts = ts[j]};
    }
    publish(s, t, ev, n);
}

static uint64_t at_time(kr_store *s, kr_topic *t, uint64_t ts)
{
    uint64_t off = UINT64_MAX;
    char msg[256];
    assert_int_equal(kr_store_offset_for_time(s, t, ts, &off, NULL, msg, sizeof msg), KRAPPY_OK);
    return off;
}

/* Segment files the store's cache holds open now. */
static size_t files_open(kr_store *s)
{
    size_t open;
    uint64_t opens;
    kr_fdcache_stats(s->files, &open, &opens);
    return open;
}

/* 400 events in batches of 40 (over several 1 KiB segments), offset i at
 * ts0 + i * step - but offset `past` (none: UINT64_MAX) at 500. */
static void pub_timed(kr_store *s, kr_topic *t, uint64_t ts0, uint64_t step, uint64_t past)
{
    uint64_t ts[40];
    for (uint64_t b = 0; b < 10; b++) {
        for (uint64_t j = 0; j < 40; j++)
            ts[j] = b * 40 + j == past ? 500 : ts0 + (b * 40 + j) * step;
        pub_ts(s, t, ts, 40);
    }
    assert_true(t->n_segs > 3);
}

/* The first offset whose ts reaches a time, over several segments, with
 * timestamps that go back now and then (producers may set them). */
static void test_offset_for_time(void **state)
{
    (void)state;
    kr_store *s = open_store(1024, 0);
    kr_topic *t = reg(s, "t");
    pub_timed(s, t, 1000000, 10, 167); /* one from the past, offset 167 */
    assert_int_equal(at_time(s, t, 0), 0);
    assert_int_equal(at_time(s, t, 1000000), 0);
    assert_int_equal(at_time(s, t, 1000001), 1);
    assert_int_equal(at_time(s, t, 1000000 + 2345), 235);
    assert_int_equal(at_time(s, t, 1000000 + 3990), 399);
    assert_int_equal(at_time(s, t, 1000000 + 3991), 400); /* none: the end */
    assert_int_equal(at_time(s, t, UINT64_MAX), 400);
    /* The same from segments read back after a restart, through a file
     * cache of one: each segment is opened for the walk and let go after
     * it (a file still pinned would stay open past the limit). */
    kr_store_close(s);
    kr_store_opts o = store_opts(1024, 0, 1u << 30);
    o.max_open_files = 1;
    s = kr_test_store_open(&o, base, metrics);
    t = kr_store_topic(s, (const uint8_t *)"t", 1);
    assert_int_equal(at_time(s, t, 1000000 + 1665), 168); /* 167 is older */
    assert_int_equal(at_time(s, t, 1000000 + 1655), 166);
    assert_int_equal(at_time(s, t, 1000000 + 2345), 235);
    assert_int_equal(at_time(s, t, 1000000 + 3990), 399);
    assert_true(files_open(s) <= 1);
    kr_store_close(s);
}

/* A deleted topic's files leave the file cache with it: none stays open on
 * the directory moved aside. */
static void test_delete_topic_closes_its_files(void **state)
{
    (void)state;
    kr_store *s = open_store(1024, 0);
    kr_topic *t = reg(s, "t");
    pub_timed(s, t, 1000, 1, UINT64_MAX);
    for (size_t i = 0; i < t->n_segs; i++) /* each search opens the segment it ends in */
        assert_int_equal(at_time(s, t, t->segs[i]->max_ts), t->segs[i]->max_ts - 1000);
    assert_true(files_open(s) > 3);
    delete_topic(s, t);
    assert_int_equal(files_open(s), 0);
    kr_store_close(s);
}

static uint64_t seek(kr_store *s, kr_tgroup *tg, kr_seek_kind to, uint64_t value)
{
    done d = {0};
    char msg[256];
    assert_int_equal(kr_store_group_seek(s, tg, to, value, on_done, &d, msg, sizeof msg),
                     KRAPPY_OK);
    run_until(&d.calls, 1);
    assert_int_equal(d.res.err, KRAPPY_OK);
    assert_int_equal(d.res.first, kr_store_group_cursor(tg));
    return d.res.first;
}

/* GROUP_SEEK moves the cursor durably, wakes parked POLLs and forgets
 * what was handed out; GROUP_DELETE removes the group durably and answers
 * its parked POLLs with `gone`. */
static void test_group_seek_and_delete(void **state)
{
    (void)state;
    kr_store *s = open_store(1u << 20, 0);
    kr_topic *t = reg(s, "t");
    uint64_t ts[20];
    for (int j = 0; j < 20; j++)
        ts[j] = 5000 + (uint64_t)j;
    pub_ts(s, t, ts, 20);
    kr_member *m;
    kr_tgroup *tg = join(s, t, "g", &m);
    kr_tgroup *other = join(s, t, "other", &m);
    struct evbuffer *events = evbuffer_new();
    uint64_t count;
    char msg[256];
    assert_int_equal(kr_store_poll(s, tg, m, 5, 1u << 20, events, &count, msg, sizeof msg),
                     KRAPPY_OK);
    evbuffer_free(events);
    assert_int_equal(kr_store_group_frontier(tg), 5);

    int woken = 0;
    kr_waiter w = {.topic = t, .wake = on_wake_gone, .arg = &woken};
    assert_int_equal(kr_store_park_group(s, tg, &w, 60000), 0);
    assert_int_equal(seek(s, tg, KR_SEEK_LATEST, 0), 20);
    assert_int_equal(woken, -1); /* woken, not gone */
    kr_group_stats gs;
    kr_store_group_stats(tg, &gs);
    assert_int_equal(gs.pending, 0);
    assert_int_equal(seek(s, tg, KR_SEEK_EARLIEST, 0), 0);
    assert_int_equal(seek(s, tg, KR_SEEK_OFFSET, 7), 7);
    assert_int_equal(seek(s, tg, KR_SEEK_TIME, 5012), 12);
    assert_int_equal(seek(s, tg, KR_SEEK_TIME, 9999), 20);
    done d = {0};
    assert_int_equal(kr_store_group_seek(s, tg, KR_SEEK_OFFSET, 21, on_done, &d, msg, sizeof msg),
                     KRAPPY_E_OFFSET_OUT_OF_RANGE);
    assert_non_null(strstr(msg, "first 0 to next 20"));
    assert_int_equal(seek(s, tg, KR_SEEK_OFFSET, 3), 3);
    kr_store_close(s);

    s = open_store(1u << 20, 0);
    t = kr_store_topic(s, (const uint8_t *)"t", 1);
    tg = kr_store_group(t, (const uint8_t *)"g", 1);
    assert_non_null(tg);
    assert_int_equal(kr_store_group_cursor(tg), 3);
    woken = 0;
    assert_int_equal(kr_store_park_group(s, tg, &w, 60000), 0);
    d.calls = 0;
    assert_int_equal(kr_store_group_delete(s, tg, on_done, &d, msg, sizeof msg), KRAPPY_OK);
    assert_int_equal(woken, 1);
    assert_null(kr_store_group(t, (const uint8_t *)"g", 1));
    run_until(&d.calls, 1);
    assert_int_equal(d.res.err, KRAPPY_OK);
    kr_store_close(s);

    s = open_store(1u << 20, 0);
    t = kr_store_topic(s, (const uint8_t *)"t", 1);
    kr_tgroup *const *groups;
    assert_int_equal(kr_store_groups(t, &groups), 1);
    other = groups[0];
    size_t len;
    assert_string_equal(kr_store_group_name(other, &len), "other");
    kr_store_close(s);
}

/*
 * --rebuild-view: the view is made again from the streams, the group
 * cursors of the old one kept - and the replay, which holds every key of
 * the stream, is folded into the view as it goes instead of holding them
 * all in memory: the overlay ends within its budget.
 */
static void test_rebuild_view(void **state)
{
    (void)state;
    const uint64_t budget = 1u << 20;
    kr_store *s = open_store_budget(1u << 20, 0, budget);
    kr_topic *t = reg(s, "t");
    for (int b = 0; b < 60; b++)
        pub(s, t, 500, 1000000); /* 30,000 keys, each once */
    uint64_t next = t->next;
    kr_view_batch *vb = kr_view_batch_new();
    assert_non_null(vb);
    kr_view_batch_cursor(vb, "t", 1, (const uint8_t *)"grp", 3, 1234, 0);
    char err[256];
    assert_int_equal(kr_view_write_logged(s->view, vb, false, err, sizeof err), 0);
    kr_view_batch_free(vb);
    kr_store_close(s);

    kr_store_opts o = store_opts(1u << 20, 0, budget);
    o.rebuild_view = true;
    assert_int_equal(kr_store_open(&o, base, metrics, &s, err, sizeof err), 0);
    t = kr_store_topic(s, (const uint8_t *)"t", 1);
    assert_int_equal(t->next, next);
    assert_true(t->marker > 0); /* folded into the view during the replay */
    assert_true(kr_overlay_bytes(t->active) <= budget / 2 + 64 * 1024);
    kr_tgroup *tg = kr_store_group(t, (const uint8_t *)"grp", 3);
    assert_non_null(tg);
    assert_int_equal(kr_store_group_cursor(tg), 1234);
    for (uint64_t o2 = 0; o2 < next; o2 += 997) {
        char key[24], want[24], got[24];
        snprintf(key, sizeof key, "k%llu", (unsigned long long)o2);
        snprintf(want, sizeof want, "v%llu", (unsigned long long)o2);
        get(s, t, key, got, sizeof got);
        assert_string_equal(got, want);
    }
    kr_store_close(s);
}

/* Open the store of another data directory (a copy of `dir`). */
static kr_store *open_store_in(const char *data_dir)
{
    kr_store_opts o = store_opts(8192, 0, 1u << 30);
    o.data_dir = data_dir;
    return kr_test_store_open(&o, base, metrics);
}

/* What kill -9 leaves of the open store: its files as the page cache holds
 * them, copied to `copy` (nothing more is synced, nothing closed). */
static void copy_as_killed(const char *copy)
{
    char cmd[1024];
    int n =
        snprintf(cmd, sizeof cmd, "rm -rf '%s' && cp -a '%s' '%s' 2>/dev/null && rm -f '%s/LOCK'",
                 copy, dir, copy, copy);
    assert_true(n > 0 && (size_t)n < sizeof cmd);
    /* RocksDB may delete an obsolete file while cp walks the directory (cp
     * then fails on it): copy again, as a kill -9 at another moment. */
    int rc = -1;
    for (int i = 0; i < 20 && rc != 0; i++)
        rc = system(cmd);
    assert_int_equal(rc, 0);
}

/* Offsets below the topic's first are gone, `first` on are served. */
static void assert_starts_at(kr_store *s, kr_topic *t, uint64_t first, uint64_t next)
{
    char msg[256];
    kr_fetch_result r;
    assert_int_equal(t->first, first);
    assert_int_equal(t->next, next);
    assert_int_equal(t->assigned, next);
    assert_int_equal(kr_store_fetch(s, t, first - 1, 10, 1u << 20, &r, msg, sizeof msg),
                     KRAPPY_E_OFFSET_OUT_OF_RANGE);
    assert_int_equal(kr_store_fetch(s, t, 0, 10, 1u << 20, &r, msg, sizeof msg),
                     KRAPPY_E_OFFSET_OUT_OF_RANGE);
    assert_int_equal(kr_store_fetch(s, t, first, 10, 1u << 20, &r, msg, sizeof msg), KRAPPY_OK);
    assert_int_equal(r.count, next - first < 10 ? next - first : 10);
    for (uint64_t o = first; o < next; o++)
        fetch_one(s, t, o);
}

/*
 * A stream behind offsets every other copy retired skips to them
 * (kr_store_skip_to): a new segment at `first`, which a kill -9 right
 * after it keeps (empty, after a gap, nothing synced: it is no lost tail),
 * appends after it, restarts, and the old segments retired once the view
 * covers them - on disk too.
 */
static void test_skip_to(void **state)
{
    (void)state;
    char copy[80];
    snprintf(copy, sizeof copy, "%s-k", dir);
    kr_store *s = open_store(8192, 0);
    kr_topic *t = reg(s, "t");
    for (int b = 0; b < 6; b++)
        pub(s, t, 50, 30);
    assert_int_equal(t->next, 300);
    checkpoint(s, t);
    char msg[256];
    assert_int_equal(kr_store_skip_to(s, t, 1000, msg, sizeof msg), KRAPPY_OK);
    assert_starts_at(s, t, 1000, 1000);
    assert_int_equal(kr_store_skip_to(s, t, 500, msg, sizeof msg), KRAPPY_OK); /* behind: none */
    assert_int_equal(t->next, 1000);

    /* kill -9 right after the skip: the empty segment at 1000 is kept. */
    copy_as_killed(copy);
    kr_store *k = open_store_in(copy);
    kr_topic *kt = kr_store_topic(k, (const uint8_t *)"t", 1);
    assert_non_null(kt);
    assert_starts_at(k, kt, 1000, 1000);
    assert_int_equal(pub(k, kt, 5, 30), 1000);
    kr_store_close(k);

    /* Appends go on from 1000; a kill -9 then keeps them. */
    assert_int_equal(pub(s, t, 20, 30), 1000);
    assert_starts_at(s, t, 1000, 1020);
    copy_as_killed(copy);
    k = open_store_in(copy);
    kt = kr_store_topic(k, (const uint8_t *)"t", 1);
    assert_starts_at(k, kt, 1000, 1020);
    kr_store_close(k);
    kr_test_rm_rf(copy);

    /* The view's seed (none here) lets checkpoints go on; the next one
     * covers the old segments: they go. */
    assert_int_equal(count_files(".seg"), 2);
    assert_int_equal(kr_store_seed_pending(t), 1000);
    assert_int_equal(kr_store_seed_view(s, t, 1000, NULL, 0, 0, true, msg, sizeof msg), KRAPPY_OK);
    checkpoint(s, t);
    for (int i = 0; i < 100 && t->segs[0]->base != 1000; i++)
        event_base_loop(base, EVLOOP_NONBLOCK);
    assert_int_equal(t->n_segs, 1);
    assert_int_equal(t->segs[0]->base, 1000);
    char v[32];
    get(s, t, "k10", v, sizeof v); /* offset 1000's key */
    assert_string_equal(v, "v1000");
    kr_store_close(s);
    assert_int_equal(count_files(".seg"), 1);

    /* A restart serves the same. */
    s = open_store(8192, 0);
    t = kr_store_topic(s, (const uint8_t *)"t", 1);
    assert_starts_at(s, t, 1000, 1020);
    assert_int_equal(pub(s, t, 3, 30), 1020);
    kr_store_close(s);
}

/* Append to page the delivered event [off, 7, key, val(, {"h": val})]. */
static void seed_event(kr_buf *page, uint64_t off, const char *key, const char *val, bool hdr)
{
    kr_buf k, v, h;
    kr_buf_init(&k, 64);
    kr_buf_init(&v, 64);
    kr_buf_init(&h, 64);
    kr_cbor_put_cstr(&k, key);
    kr_cbor_put_cstr(&v, val);
    kr_cbor_put_map(&h, 1);
    kr_cbor_put_cstr(&h, "h");
    kr_cbor_put_bytes(&h, val, strlen(val));
    kr_str kr = {k.data, k.len}, vr = {v.data, v.len}, hr = {h.data, h.len};
    kr_enc_event(page, off, 7, &kr, &vr, hdr ? &hr : NULL);
    kr_buf_free(&k);
    kr_buf_free(&v);
    kr_buf_free(&h);
}

/* The seed's view as GET answers it: "a" (headers, offset 10), "k1" (the
 * peers' value at 990), "k12" (overwritten after the skip), "k10" (after
 * the skip only), "k0" (this node's stale row: gone). */
static void assert_seeded(kr_store *s, kr_topic *t)
{
    char v[32];
    get(s, t, "k0", v, sizeof v);
    assert_string_equal(v, "");
    get(s, t, "k1", v, sizeof v);
    assert_string_equal(v, "peer-k1");
    get(s, t, "k12", v, sizeof v);
    assert_string_equal(v, "v1002");
    get(s, t, "k10", v, sizeof v);
    assert_string_equal(v, "v1000");
    kr_buf b;
    kr_buf_init(&b, 1u << 20);
    char msg[128];
    assert_int_equal(kr_store_get(s, t, (const uint8_t *)"a", 1, &b, msg, sizeof msg), 1);
    kr_cbor_item ev;
    kr_event_view ew;
    assert_int_equal(kr_cbor_read(b.data, b.len, &ev), 0);
    assert_int_equal(kr_event_view_read(&ev, &ew), 0);
    assert_int_equal(ew.offset, 10);
    assert_int_equal(ew.ts, 7);
    assert_true(ew.has_headers);
    kr_buf_free(&b);
}

/* Hand the seed of test_seed_view over: "a" and "k1" in a first page, "k12"
 * (which the stream overwrote after the skip) in the last. */
static void seed_pages(kr_store *s, kr_topic *t)
{
    kr_buf page;
    char msg[256];
    kr_buf_init(&page, 1u << 20);
    seed_event(&page, 10, "a", "peer-a", true);
    seed_event(&page, 990, "k1", "peer-k1", false);
    assert_int_equal(kr_store_seed_view(s, t, 1000, page.data, page.len, 2, false, msg, sizeof msg),
                     KRAPPY_OK);
    kr_buf_reset(&page);
    seed_event(&page, 500, "k12", "peer-k12", false);
    assert_int_equal(kr_store_seed_view(s, t, 1000, page.data, page.len, 1, true, msg, sizeof msg),
                     KRAPPY_OK);
    kr_buf_free(&page);
}

/*
 * After a skip, the view's rows below it are replaced by the peers' latest
 * values (kr_store_seed_view): checkpoints wait for it, its marker with
 * its last page; a kill -9 before that restarts with the seed pending
 * (made again from its first page), one after it keeps it.
 */
static void test_seed_view(void **state)
{
    (void)state;
    char copy[80], msg[256];
    snprintf(copy, sizeof copy, "%s-k", dir);
    kr_store *s = open_store(8192, 0);
    kr_topic *t = reg(s, "t");
    for (int b = 0; b < 6; b++)
        pub(s, t, 50, 30);
    checkpoint(s, t);
    pub(s, t, 20, 30); /* in the overlay only: stale too */
    assert_int_equal(kr_store_seed_pending(t), 0);
    assert_int_equal(kr_store_skip_to(s, t, 1000, msg, sizeof msg), KRAPPY_OK);
    assert_int_equal(kr_store_seed_pending(t), 1000);
    assert_int_equal(pub(s, t, 5, 30), 1000); /* k10..k14 after the skip */
    kr_store_checkpoint(s);
    for (int i = 0; i < 20; i++)
        event_base_loop(base, EVLOOP_NONBLOCK);
    assert_int_equal(t->marker, 300); /* held below the skip */

    /* Refused: another offset, an event at or past it, a keyless one. */
    kr_buf page;
    kr_buf_init(&page, 1u << 20);
    assert_int_equal(kr_store_seed_view(s, t, 999, NULL, 0, 0, true, msg, sizeof msg),
                     KRAPPY_E_INVALID_ARGUMENT);
    seed_event(&page, 1000, "x", "y", false);
    assert_int_equal(kr_store_seed_view(s, t, 1000, page.data, page.len, 1, true, msg, sizeof msg),
                     KRAPPY_E_INVALID_ARGUMENT);
    assert_int_equal(kr_store_seed_pending(t), 1000);

    /* The first page: a kill -9 now restarts with the seed pending. */
    kr_buf_reset(&page);
    seed_event(&page, 10, "a", "peer-a", true);
    assert_int_equal(kr_store_seed_view(s, t, 1000, page.data, page.len, 1, false, msg, sizeof msg),
                     KRAPPY_OK);
    kr_buf_free(&page);
    kr_store_sync(s, t);
    for (int i = 0; i < 1000 && kr_store_synced(t) < t->next; i++)
        event_base_loop(base, EVLOOP_ONCE);
    copy_as_killed(copy);
    kr_store *k = open_store_in(copy);
    kr_topic *kt = kr_store_topic(k, (const uint8_t *)"t", 1);
    assert_non_null(kt);
    assert_int_equal(kr_store_seed_pending(kt), 1000);
    assert_int_equal(kt->next, 1005);
    seed_pages(k, kt);
    assert_int_equal(kr_store_seed_pending(kt), 0);
    assert_seeded(k, kt);
    kr_store_close(k);
    k = open_store_in(copy);
    kt = kr_store_topic(k, (const uint8_t *)"t", 1);
    assert_int_equal(kr_store_seed_pending(kt), 0);
    assert_seeded(k, kt);
    kr_store_close(k);
    kr_test_rm_rf(copy);

    /* Done here: the marker at the skip with the seed's keys, then the
     * checkpoints go on. */
    seed_pages(s, t);
    assert_int_equal(kr_store_seed_pending(t), 0);
    assert_int_equal(t->keys, 3); /* a, k1, k12 */
    assert_seeded(s, t);
    checkpoint(s, t);
    assert_int_equal(t->keys, 7); /* and k10, k11, k13, k14 */
    assert_seeded(s, t);
    copy_as_killed(copy);
    k = open_store_in(copy);
    kt = kr_store_topic(k, (const uint8_t *)"t", 1);
    assert_int_equal(kr_store_seed_pending(kt), 0);
    assert_seeded(k, kt);
    kr_store_close(k);
    kr_test_rm_rf(copy);
    kr_store_close(s);
}

/* A skip waits while the topic's appends wait for a sync: not yet (a sync
 * is asked for), then done; a restart before the old segments went still
 * starts at the skip's offset. */
static void test_skip_to_waits_and_restarts(void **state)
{
    (void)state;
    kr_store *s = open_store(8192, 0);
    kr_topic *t = reg(s, "t");
    pub(s, t, 40, 10);
    /* An append queued, not yet written: the skip writes it first. */
    kr_buf b, scratch;
    kr_request req;
    kr_event_out_spec ev = {.value = (const uint8_t *)"\x62v9", .value_len = 3};
    kr_test_publish_request(&ev, 1, &b, &scratch, &req);
    done d = {0};
    uint64_t bad;
    char msg[256];
    assert_int_equal(
        kr_store_publish(s, t, &req, &scratch, true, NULL, on_done, &d, msg, sizeof msg, &bad),
        KRAPPY_OK);
    krappy_err rc = kr_store_skip_to(s, t, 700, msg, sizeof msg);
    assert_true(rc == KRAPPY_OK || rc == KRAPPY_E_BUSY);
    for (int i = 0; i < 10000 && rc == KRAPPY_E_BUSY; i++) {
        event_base_loop(base, EVLOOP_ONCE);
        rc = kr_store_skip_to(s, t, 700, msg, sizeof msg);
    }
    assert_int_equal(rc, KRAPPY_OK);
    run_until(&d.calls, 1);
    assert_int_equal(d.res.first, 40); /* below the skip, stored */
    kr_buf_free(&b);
    kr_buf_free(&scratch);
    assert_int_equal(t->first, 700);
    assert_int_equal(pub(s, t, 10, 10), 700);
    kr_store_close(s); /* closing checkpoints; the old segment may stay */
    s = open_store(8192, 0);
    t = kr_store_topic(s, (const uint8_t *)"t", 1);
    assert_starts_at(s, t, 700, 710);
    kr_store_close(s);
}

/* FETCH every event of t, from its first on, emitted as sent: each at its
 * offset (value "v<offset>"), ascending. Appends the bytes to out.
 * @return the events. */
static uint64_t stream_image(kr_store *s, kr_topic *t, kr_buf *out)
{
    uint64_t n = 0, at = t->first, last = 0;
    while (at < t->next) {
        kr_fetch_result r;
        char msg[256];
        assert_int_equal(kr_store_fetch(s, t, at, 100, 1u << 20, &r, msg, sizeof msg), KRAPPY_OK);
        if (r.count == 0)
            break;
        struct evbuffer *b = evbuffer_new();
        assert_non_null(b);
        assert_int_equal(kr_store_fetch_emit(s, &r, b, msg, sizeof msg), 0);
        size_t len = evbuffer_get_length(b);
        const uint8_t *p = evbuffer_pullup(b, -1);
        kr_buf_append(out, p, len);
        for (uint64_t i = 0; i < r.count; i++) {
            kr_cbor_item ev;
            kr_event_view v;
            assert_int_equal(kr_cbor_read(p, len, &ev), 0);
            assert_int_equal(kr_event_view_read(&ev, &v), 0);
            assert_true(n == 0 || v.offset > last);
            char want[24], got[24] = {0};
            snprintf(want, sizeof want, "v%llu", (unsigned long long)v.offset);
            kr_cbor_str_copy(&v.value, (uint8_t *)got, sizeof got - 1);
            assert_string_equal(got, want);
            last = v.offset;
            n++;
            p += ev.raw_len;
            len -= ev.raw_len;
        }
        evbuffer_free(b);
        at = r.next;
    }
    assert_int_equal(at, t->next);
    return n;
}

/* Queue one event at t's next offset (value "v<offset>"), not waiting. */
static void queue_one(kr_store *s, kr_topic *t, done *d, kr_buf *b, kr_buf *scratch)
{
    char v[24];
    kr_buf vb;
    kr_buf_init(&vb, 32);
    snprintf(v, sizeof v, "v%llu", (unsigned long long)t->assigned);
    kr_cbor_put_cstr(&vb, v);
    kr_event_out_spec ev = {.value = vb.data, .value_len = vb.len};
    kr_request req;
    char msg[256];
    uint64_t bad;
    kr_test_publish_request(&ev, 1, b, scratch, &req);
    assert_int_equal(
        kr_store_publish(s, t, &req, scratch, false, NULL, on_done, d, msg, sizeof msg, &bad),
        KRAPPY_OK);
    kr_buf_free(&vb);
}

/*
 * A catch-up from peers whose compaction left gaps (kr_store_gap_to) puts
 * each event at its own offset: gaps in the active segment, across rolls,
 * several in one loop turn, one with nothing after it. A kill -9 and a
 * restart serve the same offsets and bytes, the view holds the events at
 * theirs, and appends go on from the next offset - never back.
 */
static void test_gap_to(void **state)
{
    (void)state;
    char copy[80], msg[256];
    snprintf(copy, sizeof copy, "%s-k", dir);
    kr_store *s = open_store(8192, 0);
    kr_topic *t = reg(s, "t");
    pub(s, t, 10, 7);
    assert_int_equal(kr_store_gap_to(s, t, 15, msg, sizeof msg), KRAPPY_OK);
    assert_int_equal(t->next, 15); /* nothing was on its way */
    assert_int_equal(kr_store_gap_to(s, t, 12, msg, sizeof msg), KRAPPY_OK); /* never back */
    assert_int_equal(t->assigned, 15);
    assert_int_equal(pub(s, t, 5, 7), 15);
    for (int i = 0; i < 40; i++) { /* rolls on the way (8 KiB segments) */
        assert_int_equal(
            kr_store_gap_to(s, t, t->assigned + 1 + (uint64_t)(i % 4), msg, sizeof msg), KRAPPY_OK);
        pub(s, t, 20, 7);
    }
    assert_true(t->n_segs > 2);
    /* Two gaps in one loop turn: one write. */
    kr_buf b[2], sc[2];
    done d[2] = {{0}, {0}};
    for (int i = 0; i < 2; i++) {
        assert_int_equal(kr_store_gap_to(s, t, t->assigned + 2, msg, sizeof msg), KRAPPY_OK);
        queue_one(s, t, &d[i], &b[i], &sc[i]);
    }
    run_until(&d[1].calls, 1);
    for (int i = 0; i < 2; i++) {
        assert_int_equal(d[i].res.err, KRAPPY_OK);
        kr_buf_free(&b[i]);
        kr_buf_free(&sc[i]);
    }
    uint64_t last = t->next - 1;
    assert_int_equal(d[1].res.first, last);
    fetch_one(s, t, last);
    kr_buf live;
    kr_buf_init(&live, 1u << 24);
    uint64_t events = stream_image(s, t, &live);
    assert_int_equal(events, 10 + 5 + 40 * 20 + 2);
    /* A gap with nothing after it yet. */
    assert_int_equal(kr_store_gap_to(s, t, t->next + 5, msg, sizeof msg), KRAPPY_OK);
    uint64_t next = t->next;
    kr_fetch_result r;
    assert_int_equal(kr_store_fetch(s, t, next - 3, 10, 1u << 20, &r, msg, sizeof msg), KRAPPY_OK);
    assert_int_equal(r.count, 0);
    /* Nothing to sync for it: once what was written is, the stream counts
     * as durable up to the gap's end - checkpoints (and a cluster's
     * snapshots) go on. */
    kr_store_sync(s, t);
    for (int i = 0; i < 2000 && kr_store_synced(t) < t->next; i++) {
        event_base_loop(base, EVLOOP_NONBLOCK);
        usleep(1000);
    }
    assert_int_equal(kr_store_synced(t), t->next);
    checkpoint(s, t);

    /* kill -9: the same offsets and bytes; the open gap is forgotten (the
     * catch-up would run again), appends go on after the last event. */
    copy_as_killed(copy);
    kr_store *k = open_store_in(copy);
    kr_topic *kt = kr_store_topic(k, (const uint8_t *)"t", 1);
    assert_non_null(kt);
    assert_int_equal(kt->next, last + 1);
    kr_buf again;
    kr_buf_init(&again, 1u << 24);
    assert_int_equal(stream_image(k, kt, &again), events);
    assert_int_equal(again.len, live.len);
    assert_memory_equal(again.data, live.data, live.len);
    assert_int_equal(pub(k, kt, 3, 7), last + 1);
    kr_store_close(k);
    kr_test_rm_rf(copy);

    /* Appends after the open gap go on from it; a restart keeps them, and
     * the view has each key's newest at its offset. */
    assert_int_equal(pub(s, t, 7, 7), next);
    kr_store_close(s);
    s = open_store(8192, 0);
    t = kr_store_topic(s, (const uint8_t *)"t", 1);
    assert_int_equal(t->next, next + 7);
    kr_buf_reset(&again);
    assert_int_equal(stream_image(s, t, &again), events + 7);
    assert_memory_equal(again.data, live.data, live.len);
    char v[32], want[32];
    for (uint64_t o = next; o < next + 7; o++) {
        char key[16];
        snprintf(key, sizeof key, "k%d", (int)(o % 7));
        get(s, t, key, v, sizeof v);
        snprintf(want, sizeof want, "v%llu", (unsigned long long)o);
        assert_string_equal(v, want);
    }
    assert_int_equal(pub(s, t, 1, 7), next + 7);
    kr_store_close(s);
    kr_buf_free(&live);
    kr_buf_free(&again);
}

/* A gap in the active segment a skip started, after a restart: the
 * segment keeps its KR_SEG_F_SKIPPED beside KR_SEG_F_COMPACTED, so the
 * next restart (both kill -9, the old segment still there) still starts
 * the topic at the skip. */
static void test_gap_keeps_a_skip(void **state)
{
    (void)state;
    char msg[256], copy[80], copy2[96], cmd[512];
    snprintf(copy, sizeof copy, "%s-k", dir);
    snprintf(copy2, sizeof copy2, "%s-k2", dir);
    kr_store *s = open_store(8192, 0);
    kr_topic *t = reg(s, "t");
    pub(s, t, 5, 7);
    checkpoint(s, t);
    assert_int_equal(kr_store_skip_to(s, t, 100, msg, sizeof msg), KRAPPY_OK);
    copy_as_killed(copy);
    kr_store *k = open_store_in(copy);
    kr_topic *kt = kr_store_topic(k, (const uint8_t *)"t", 1);
    assert_int_equal(kt->n_segs, 2);
    assert_int_equal(kt->first, 100);
    assert_int_equal(kr_store_gap_to(k, kt, 103, msg, sizeof msg), KRAPPY_OK);
    assert_int_equal(pub(k, kt, 2, 7), 103);
    snprintf(cmd, sizeof cmd, "rm -rf '%s' && cp -a '%s' '%s' && rm -f '%s/LOCK'", copy2, copy,
             copy2, copy2);
    assert_int_equal(system(cmd), 0);
    kr_store *k2 = open_store_in(copy2);
    kr_topic *t2 = kr_store_topic(k2, (const uint8_t *)"t", 1);
    assert_int_equal(t2->n_segs, 2);
    assert_int_equal(t2->first, 100);
    assert_int_equal(t2->next, 105);
    fetch_one(k2, t2, 103);
    fetch_one(k2, t2, 104);
    kr_store_close(k2);
    kr_store_close(k);
    kr_store_close(s);
    kr_test_rm_rf(copy);
    kr_test_rm_rf(copy2);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_overlay_checkpoint_replay, setup, teardown),
        cmocka_unit_test_setup_teardown(test_checkpoint_fails_then_mends, setup, teardown),
        cmocka_unit_test_setup_teardown(test_failing_checkpoints_back_off, setup, teardown),
        cmocka_unit_test_setup_teardown(test_failing_checkpoints_bound_memory, setup, teardown),
        cmocka_unit_test_setup_teardown(test_get_cache_follows_checkpoints, setup, teardown),
        cmocka_unit_test_setup_teardown(test_index_lookup_and_rebuild, setup, teardown),
        cmocka_unit_test_setup_teardown(test_index_spans_restart, setup, teardown),
        cmocka_unit_test_setup_teardown(test_fetch_limits, setup, teardown),
        cmocka_unit_test_setup_teardown(test_retention_after_checkpoint, setup, teardown),
        cmocka_unit_test_setup_teardown(test_retention_led, setup, teardown),
        cmocka_unit_test_setup_teardown(test_lock_refuses_second_open, setup, teardown),
        cmocka_unit_test_setup_teardown(test_overlay_budget, setup, teardown),
        cmocka_unit_test_setup_teardown(test_chunk_pool_keeps_one_big_chunk, setup, teardown),
        cmocka_unit_test_setup_teardown(test_group_accessors, setup, teardown),
        cmocka_unit_test_setup_teardown(test_retention_passes_an_idle_group, setup, teardown),
        cmocka_unit_test_setup_teardown(test_recovery_names_a_bad_segment, setup, teardown),
        cmocka_unit_test_setup_teardown(test_recovery_after_a_headless_last_segment, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_forged_index_is_not_believed, setup, teardown),
        cmocka_unit_test_setup_teardown(test_delete_topic, setup, teardown),
        cmocka_unit_test_setup_teardown(test_deletion_finished_at_start, setup, teardown),
        cmocka_unit_test_setup_teardown(test_offset_for_time, setup, teardown),
        cmocka_unit_test_setup_teardown(test_delete_topic_closes_its_files, setup, teardown),
        cmocka_unit_test_setup_teardown(test_group_seek_and_delete, setup, teardown),
        cmocka_unit_test_setup_teardown(test_group_record_with_a_long_name_is_skipped, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_publish_at_the_event_cap, setup, teardown),
        cmocka_unit_test_setup_teardown(test_index_one_batch_too_far, setup, teardown),
        cmocka_unit_test_setup_teardown(test_rebuild_view, setup, teardown),
        cmocka_unit_test_setup_teardown(test_tail_reads_follow_appends, setup, teardown),
        cmocka_unit_test_setup_teardown(test_skip_to, setup, teardown),
        cmocka_unit_test_setup_teardown(test_skip_to_waits_and_restarts, setup, teardown),
        cmocka_unit_test_setup_teardown(test_seed_view, setup, teardown),
        cmocka_unit_test_setup_teardown(test_gap_to, setup, teardown),
        cmocka_unit_test_setup_teardown(test_gap_keeps_a_skip, setup, teardown),
        cmocka_unit_test_setup_teardown(test_publish_encodes_every_form, setup, teardown),
    };
    return cmocka_run_group_tests_name("store", tests, NULL, NULL);
}
