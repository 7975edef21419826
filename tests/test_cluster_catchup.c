/*
 * tests/test_cluster_catchup.c - a catch-up (cluster/catchup.h) gets the
 * events a node lacks from whichever node holds them.
 *
 * Two stand-in data ports on 127.0.0.1, each a thread answering HELLO and
 * FETCH out of the events it holds (CLUSTER gets UNKNOWN_TYPE, so libkrappy
 * takes the first that answers for the leader): one holds nothing - the
 * node that leads while it catches up itself - and one holds every event;
 * or both retired the first ones (FETCH below their first is
 * OFFSET_OUT_OF_RANGE), and the catch-up skips them; or their compaction
 * removed offsets (a FETCH skips them), and every event is handed over
 * at its own offset all the same.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <event2/event.h>
#include <event2/thread.h>

#include "cluster/catchup.h"
#include "loopback.h"
#include "proto/frame.h"
#include "proto/msg.h"

#define TOPIC  "t"
#define EVENTS 2500 /* three FETCH chunks */

/* A node's data port: events [first, holds) of TOPIC, value "v<offset>"
 * and ts 1000 + offset, but for those compaction removed (`removed`). */
typedef struct fake_node {
    int lfd, port;
    uint64_t first, holds;
    bool (*removed)(uint64_t offset);
    pthread_t th;
    atomic_bool stop;
    atomic_uint fetches, served;
} fake_node;

/* Its latest values: keys "k0".."k9", key i's at offset SCAN_AT(i), but
 * for "k3" (deleted before a GET asks) and "k5" (written again at 1250
 * before a GET asks); value "v<offset>", ts 1000 + offset, headers
 * {"h": key}. */
#define SEED_KEYS  10
#define SEED_PAGE  4 /* keys per SCAN page */
#define SCAN_AT(i) ((i) == 9 ? 1300u : 100u * (i))

/* A text string under 24 bytes, raw, into b (reset first). */
static kr_str tiny_text(uint8_t *b, size_t cap, const char *fmt, unsigned long long v)
{
    int len = snprintf((char *)b + 1, cap - 1, fmt, v);
    b[0] = (uint8_t)(0x60 + len);
    return (kr_str){b, (size_t)len + 1};
}

/* SCAN (every key, SEED_PAGE a page, the cursor: the last key). */
static void answer_scan(const kr_request *req, kr_buf *enc)
{
    unsigned from = 0;
    if (req->u.scan.has_cursor && req->u.scan.cursor.len == 2)
        from = (unsigned)(req->u.scan.cursor.ptr[1] - '0') + 1;
    unsigned n = SEED_KEYS - from < SEED_PAGE ? SEED_KEYS - from : SEED_PAGE;
    bool more = from + n < SEED_KEYS;
    kr_enc_entries_begin(enc, req->cid, n, more);
    uint8_t kb[8], vb[32];
    for (unsigned i = from; i < from + n; i++) {
        kr_str key = tiny_text(kb, sizeof kb, "k%llu", i);
        kr_str value = tiny_text(vb, sizeof vb, "v%llu", SCAN_AT(i));
        kr_enc_entry(enc, &key, SCAN_AT(i), 1000 + SCAN_AT(i), &value);
    }
    char last[3] = {'k', (char)('0' + from + n - 1), 0};
    kr_enc_entries_end(enc, 2000, more ? &(kr_str){(const uint8_t *)last, 2} : NULL);
}

/* GET of "k<i>". @return its frame type. */
static uint32_t answer_get(const kr_request *req, kr_buf *enc)
{
    const kr_str *k = &req->u.get.key.content;
    unsigned i = k->len == 2 && k->ptr[0] == 'k' ? (unsigned)(k->ptr[1] - '0') : SEED_KEYS;
    if (i >= SEED_KEYS || i == 3) {
        kr_enc_error(enc, req->cid, KRAPPY_E_NOT_FOUND, "no such key", NULL);
        return KRAPPY_T_ERROR;
    }
    uint64_t at = i == 5 ? 1250 : SCAN_AT(i);
    uint8_t vb[32], hb[16] = {0xa1, 0x61, 'h', 0x42, k->ptr[0], k->ptr[1]};
    kr_str value = tiny_text(vb, sizeof vb, "v%llu", at), headers = {hb, 6};
    kr_enc_value(enc, req->cid, &req->u.get.key.raw, at, 1000 + at, &value, &headers);
    return KRAPPY_T_VALUE;
}

/* The answer to one frame in enc. @return its frame type. */
static uint32_t answer(fake_node *n, const kr_frame *f, kr_buf *enc, kr_buf *scratch)
{
    kr_request req = {0};
    char msg[128] = "this data port answers HELLO, FETCH, SCAN and GET only";
    krappy_err rc = KRAPPY_E_UNKNOWN_TYPE;
    kr_buf_reset(enc);
    if (f->type == KRAPPY_T_HELLO || f->type == KRAPPY_T_FETCH || f->type == KRAPPY_T_SCAN ||
        f->type == KRAPPY_T_GET)
        rc = kr_req_decode(f->type, f->payload, f->len, scratch, &req, msg, sizeof msg);
    else if (kr_req_peek_cid(f->payload, f->len, &req.cid.v) == 1)
        req.cid.set = true;
    if (rc != KRAPPY_OK) {
        kr_enc_error(enc, req.cid, rc, msg, NULL);
        return KRAPPY_T_ERROR;
    }
    if (f->type == KRAPPY_T_HELLO) {
        kr_enc_ok_hello(enc, req.cid, KRAPPY_PROTOCOL_VERSION, "stand-in", 1u << 20, 1000);
        return KRAPPY_T_OK;
    }
    if (f->type == KRAPPY_T_SCAN) {
        answer_scan(&req, enc);
        return KRAPPY_T_ENTRIES;
    }
    if (f->type == KRAPPY_T_GET)
        return answer_get(&req, enc);
    atomic_fetch_add(&n->fetches, 1);
    uint64_t from = req.u.fetch.offset, to = from + req.u.fetch.max;
    if (from < n->first) {
        kr_error_extra range = {.has_range = true, .first = n->first, .next = n->holds};
        kr_enc_error(enc, req.cid, KRAPPY_E_OFFSET_OUT_OF_RANGE, "retired", &range);
        return KRAPPY_T_ERROR;
    }
    if (from > n->holds) {
        kr_error_extra range = {.has_range = true, .first = n->first, .next = n->holds};
        kr_enc_error(enc, req.cid, KRAPPY_E_OFFSET_OUT_OF_RANGE, "past the end", &range);
        return KRAPPY_T_ERROR;
    }
    /* max events from `from` on, stepping over the removed ones. */
    size_t count = 0;
    for (to = from; to < n->holds && count < req.u.fetch.max; to++)
        count += n->removed == NULL || !n->removed(to);
    kr_enc_events_begin(enc, req.cid, count);
    uint64_t next = from;
    for (uint64_t o = from; o < to; o++) {
        if (n->removed != NULL && n->removed(o))
            continue;
        next = o + 1;
        uint8_t value[32];
        int len = snprintf((char *)value + 1, sizeof value - 1, "v%llu", (unsigned long long)o);
        value[0] = (uint8_t)(0x60 + len); /* a CBOR text string under 24 bytes */
        kr_str raw = {value, (size_t)len + 1}, none = {(const uint8_t *)"\xf6", 1};
        kr_enc_event(enc, o, 1000 + o, &none, &raw, NULL);
    }
    kr_enc_events_end(enc, next);
    atomic_fetch_add(&n->served, (unsigned)count);
    return KRAPPY_T_EVENTS;
}

/* Serve one connection until the client closes it (or the test ends). */
static void serve_conn(fake_node *n, int fd)
{
    kr_frame_parser fp;
    kr_frame_parser_init(&fp, 1u << 20);
    kr_buf enc, out, scratch;
    kr_buf_init(&enc, 8u << 20);
    kr_buf_init(&out, 8u << 20);
    kr_buf_init(&scratch, 1u << 20);
    uint8_t buf[65536];
    while (!atomic_load(&n->stop)) {
        struct pollfd p = {.fd = fd, .events = POLLIN};
        if (poll(&p, 1, 50) <= 0)
            continue;
        ssize_t got = read(fd, buf, sizeof buf);
        if (got <= 0 || kr_frame_parser_feed(&fp, buf, (size_t)got) < 0)
            break;
        kr_frame f;
        while (kr_frame_parser_next(&fp, &f) == 1) {
            uint32_t type = answer(n, &f, &enc, &scratch);
            kr_buf_reset(&out);
            kr_frame_append(&out, type, enc.data, enc.len);
            for (size_t at = 0; at < out.len;) {
                ssize_t put = write(fd, out.data + at, out.len - at);
                if (put <= 0)
                    goto done;
                at += (size_t)put;
            }
        }
    }
done:
    kr_buf_free(&enc);
    kr_buf_free(&out);
    kr_buf_free(&scratch);
    kr_frame_parser_free(&fp);
}

static void *node_main(void *arg)
{
    fake_node *n = arg;
    while (!atomic_load(&n->stop)) {
        struct pollfd p = {.fd = n->lfd, .events = POLLIN};
        if (poll(&p, 1, 50) <= 0)
            continue;
        int fd = accept(n->lfd, NULL, NULL);
        if (fd >= 0) {
            serve_conn(n, fd);
            close(fd);
        }
    }
    return NULL;
}

static void node_start(fake_node *n, uint64_t first, uint64_t holds)
{
    memset(n, 0, sizeof *n);
    n->first = first;
    n->holds = holds;
    n->port = kr_test_free_port();
    n->lfd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET,
                            .sin_port = htons((uint16_t)n->port),
                            .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    assert_true(n->lfd >= 0);
    assert_int_equal(bind(n->lfd, (struct sockaddr *)&a, sizeof a), 0);
    assert_int_equal(listen(n->lfd, 8), 0);
    assert_int_equal(pthread_create(&n->th, NULL, node_main, n), 0);
}

static void node_stop(fake_node *n)
{
    atomic_store(&n->stop, true);
    pthread_join(n->th, NULL);
    close(n->lfd);
}

/* What the catch-up handed the loop. */
typedef struct taken {
    uint64_t next; /* the offset the next chunk must start at, or after */
    bool in_order, done;
    unsigned gaps;    /* hand-overs past next (events or a gap alone) */
    unsigned events;  /* events taken */
    unsigned runs;    /* hand-overs of events */
    unsigned refuse;  /* skips to refuse first (the store not ready) */
    unsigned skips;   /* skips taken */
    uint64_t skip_to; /* the last one's offset */
    unsigned seeded;  /* latest values taken in seed pages */
    unsigned seeds;   /* seeds ended (their last page taken) */
    kr_buf scratch;
} taken;

/* Each of the count events of a PUBLISH payload carries the ts of the
 * offset it is handed over at (1000 + offset, as the nodes hold it). */
static bool at_their_offsets(taken *t, const uint8_t *payload, size_t len, uint64_t first,
                             uint64_t count)
{
    kr_request req;
    char msg[128];
    if (kr_req_decode(KRAPPY_T_PUBLISH, payload, len, &t->scratch, &req, msg, sizeof msg) !=
            KRAPPY_OK ||
        req.u.publish.count != count)
        return false;
    kr_events_iter it;
    kr_event_in ev;
    uint64_t o = first;
    kr_events_iter_init(&it, &req, &t->scratch);
    while (kr_events_iter_next(&it, &ev) == 1)
        if (!ev.has_ts || ev.ts != 1000 + o++)
            return false;
    return o == first + count;
}

/* The count delivered events of a seed page lie below `first`, with their
 * headers ({"h": key}), none of "k3" (which GET does not find). */
static bool seeded_below(const uint8_t *p, size_t len, uint64_t count, uint64_t first)
{
    size_t pos = 0;
    for (uint64_t i = 0; i < count; i++) {
        kr_cbor_item ev;
        kr_event_view v;
        if (kr_cbor_read(p + pos, len - pos, &ev) < 0 || kr_event_view_read(&ev, &v) < 0 ||
            v.offset >= first || v.ts != 1000 + v.offset || !v.has_headers || v.key.str == NULL ||
            v.key.str_len != 2 || v.key.str[1] == '3')
            return false;
        pos += ev.raw_len;
    }
    return pos == len;
}

static bool on_chunk(void *arg, const char *topic, kr_catchup_kind kind, uint64_t first,
                     uint64_t count, const uint8_t *payload, size_t len)
{
    taken *t = arg;
    bool named = strcmp(topic, TOPIC) == 0;
    if (kind == KR_CATCHUP_RETIRED) {
        /* A skip: never back, never with a payload. */
        t->in_order =
            t->in_order && named && count == 0 && first > t->next && payload == NULL && len == 0;
        if (t->refuse > 0) {
            t->refuse--;
            return false;
        }
        t->skips++;
        t->skip_to = t->next = first;
        return true;
    }
    if (kind == KR_CATCHUP_SEED || kind == KR_CATCHUP_SEED_LAST) {
        /* After its skip, before the events: each below it, found. */
        t->in_order = t->in_order && named && first == t->skip_to && t->next == first &&
                      seeded_below(payload, len, count, first);
        t->seeded += (unsigned)count;
        t->seeds += kind == KR_CATCHUP_SEED_LAST;
        return true;
    }
    /* Events, or a gap alone: never back. */
    t->in_order = t->in_order && named && first >= t->next;
    if (kind == KR_CATCHUP_GAP)
        t->in_order = t->in_order && count == 0 && payload == NULL && first > t->next;
    else
        t->in_order = t->in_order && count > 0 && at_their_offsets(t, payload, len, first, count);
    t->gaps += first > t->next;
    t->runs += kind == KR_CATCHUP_EVENTS;
    t->events += (unsigned)count;
    t->next = first + count;
    return true;
}

static void on_done(void *arg)
{
    ((taken *)arg)->done = true;
}

/* Catch up range r from the nodes `a` then `b` (the loop refusing the
 * first `refuse` skips). */
static void catch_up_range(fake_node *a, fake_node *b, kr_catchup_range r, unsigned refuse,
                           taken *t)
{
    struct event_base *base = event_base_new();
    assert_non_null(base);
    char nodes[64];
    snprintf(nodes, sizeof nodes, "127.0.0.1:%d,127.0.0.1:%d", a->port, b->port);
    *t = (taken){.in_order = true, .refuse = refuse, .next = r.from, .skip_to = r.seed_to};
    kr_buf_init(&t->scratch, 8u << 20);
    kr_catchup *cu = kr_catchup_start(base, nodes, NULL, &r, 1, on_chunk, on_done, t);
    assert_non_null(cu);
    for (int i = 0; i < 2000 && !t->done; i++) { /* 20 s at most */
        event_base_loop(base, EVLOOP_NONBLOCK);
        usleep(10000);
    }
    kr_catchup_stop(cu);
    event_base_free(base);
    kr_buf_free(&t->scratch);
}

/* Catch up [0, to) (see catch_up_range). */
static void catch_up_to(fake_node *a, fake_node *b, uint64_t to, unsigned refuse, taken *t)
{
    catch_up_range(a, b, (kr_catchup_range){.topic = TOPIC, .from = 0, .to = to}, refuse, t);
}

static void catch_up(fake_node *a, fake_node *b, taken *t)
{
    catch_up_to(a, b, EVENTS, 0, t);
}

/* The first node answers as the leader but holds nothing: the catch-up
 * moves on to the node that holds the events, and gets them all, in order. */
static void test_catches_up_from_a_node_that_holds_the_events(void **state)
{
    (void)state;
    fake_node empty, full;
    node_start(&empty, 0, 0);
    node_start(&full, 0, EVENTS);
    taken t;
    catch_up(&empty, &full, &t);
    node_stop(&empty);
    node_stop(&full);
    assert_true(t.done);
    assert_true(t.in_order);
    assert_int_equal(t.next, EVENTS);
    assert_true(atomic_load(&empty.fetches) >= 1); /* the leader was asked first */
    assert_int_equal(atomic_load(&full.served), EVENTS);
}

/* When the leader holds the events, it serves them all. */
static void test_the_leader_serves_when_it_can(void **state)
{
    (void)state;
    fake_node leader, other;
    node_start(&leader, 0, EVENTS);
    node_start(&other, 0, EVENTS);
    taken t;
    catch_up(&leader, &other, &t);
    node_stop(&leader);
    node_stop(&other);
    assert_true(t.done);
    assert_true(t.in_order);
    assert_int_equal(atomic_load(&leader.served), EVENTS);
    assert_int_equal(atomic_load(&other.fetches), 0);
}

/* Catch up [0, to) from two nodes that both retired the events below
 * `first`, the loop refusing the first `refuse` skips. @return the events
 * the nodes served. */
static unsigned catch_up_retired(uint64_t first, uint64_t to, unsigned refuse, taken *t)
{
    fake_node leader, other;
    node_start(&leader, first, EVENTS);
    node_start(&other, first, EVENTS);
    catch_up_to(&leader, &other, to, refuse, t);
    node_stop(&leader);
    node_stop(&other);
    assert_true(t->done);
    assert_true(t->in_order);
    assert_int_equal(t->skips, 1);
    /* The view's seed: the keys SCAN and GET both put below the skip. */
    unsigned want = 0;
    for (unsigned i = 0; i < SEED_KEYS; i++)
        want += i != 3 && SCAN_AT(i) < t->skip_to && (i == 5 ? 1250 : SCAN_AT(i)) < t->skip_to;
    assert_int_equal(t->seeds, 1);
    assert_int_equal(t->seeded, want);
    return atomic_load(&leader.served) + atomic_load(&other.served);
}

/* Every node retired the events below 1200 (a replaced node's empty
 * stream, a snapshot whose first lies past it): the catch-up skips to
 * 1200, the first offset kept - not further - and fetches the rest; a
 * skip the loop cannot take yet is handed over again. */
static void test_skips_what_every_node_retired(void **state)
{
    (void)state;
    taken t;
    assert_int_equal(catch_up_retired(1200, EVENTS, 2, &t), EVENTS - 1200);
    assert_int_equal(t.skip_to, 1200);
    assert_int_equal(t.next, EVENTS);
}

/* Retention moved past the range's end (a RETENTION after the snapshot):
 * the skip goes to the range's end only, what the snapshot covers; the
 * log's later commands do the rest. */
static void test_skips_no_further_than_the_range(void **state)
{
    (void)state;
    taken t;
    assert_int_equal(catch_up_retired(2000, 1500, 0, &t), 0);
    assert_int_equal(t.skip_to, 1500);
    assert_int_equal(t.next, 1500);
}

/* Compaction's gaps: the first offsets, every tenth's last three, and
 * 1990..1999 - the last ones below a range's end at 2000. */
static bool compacted_away(uint64_t o)
{
    return o < 3 || o % 10 >= 7 || (o >= 1990 && o < 2000);
}

/* A skip a restart found unseeded (the range's seed_to): the view's seed
 * comes first - every latest value below it the nodes' SCAN and GET give -
 * then the events from there. */
static void test_seeds_a_range_before_its_events(void **state)
{
    (void)state;
    fake_node leader, other;
    node_start(&leader, 0, EVENTS);
    node_start(&other, 0, EVENTS);
    taken t;
    catch_up_range(&leader, &other,
                   (kr_catchup_range){.topic = TOPIC, .from = 1200, .to = EVENTS, .seed_to = 1200},
                   0, &t);
    node_stop(&leader);
    node_stop(&other);
    assert_true(t.done);
    assert_true(t.in_order);
    assert_int_equal(t.skips, 0);
    assert_int_equal(t.seeds, 1);
    assert_int_equal(t.seeded, 7); /* k0-2, k4, k6-8: not k3 (gone), k5, k9 (past) */
    assert_int_equal(t.next, EVENTS);
    assert_int_equal(t.events, EVENTS - 1200);
}

/* The nodes' compaction removed offsets: every event kept is handed over
 * at its own offset (runs of consecutive ones, the first past a gap),
 * none at another's, and the stream ends at the range's end. */
static void test_keeps_the_offsets_of_a_compacted_stream(void **state)
{
    (void)state;
    fake_node leader, other;
    node_start(&leader, 0, EVENTS);
    node_start(&other, 0, EVENTS);
    leader.removed = other.removed = compacted_away;
    taken t;
    catch_up(&leader, &other, &t);
    node_stop(&leader);
    node_stop(&other);
    unsigned kept = 0;
    for (uint64_t o = 0; o < EVENTS; o++)
        kept += !compacted_away(o);
    assert_true(t.done);
    assert_true(t.in_order);
    assert_int_equal(t.events, kept);
    assert_int_equal(t.next, EVENTS);
    /* A run after each gap (1990..1999 join the one before) and a gap
     * alone for 2497..2499, the range's end; a run more where a FETCH's end
     * cut one (two more FETCHes). */
    assert_int_equal(t.gaps, EVENTS / 10);
    assert_true(t.runs >= t.gaps - 1 && t.runs <= t.gaps + 1);
}

/* The events right below the range's end were removed and the node holds
 * nothing past it: a gap alone takes the stream to the end - but only from
 * a node that holds the end (the first is behind: it ends at 1995). */
static void test_a_gap_reaches_the_range_end(void **state)
{
    (void)state;
    fake_node behind, leader;
    node_start(&behind, 0, 1995);
    node_start(&leader, 0, 2000);
    behind.removed = leader.removed = compacted_away;
    taken t;
    catch_up_to(&behind, &leader, 2000, 0, &t);
    node_stop(&behind);
    node_stop(&leader);
    assert_true(t.done);
    assert_true(t.in_order);
    assert_int_equal(t.next, 2000);
    assert_true(atomic_load(&leader.fetches) >= 2); /* the gap proved on the leader */
}

int main(void)
{
    evthread_use_pthreads();
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_catches_up_from_a_node_that_holds_the_events),
        cmocka_unit_test(test_the_leader_serves_when_it_can),
        cmocka_unit_test(test_skips_what_every_node_retired),
        cmocka_unit_test(test_skips_no_further_than_the_range),
        cmocka_unit_test(test_seeds_a_range_before_its_events),
        cmocka_unit_test(test_keeps_the_offsets_of_a_compacted_stream),
        cmocka_unit_test(test_a_gap_reaches_the_range_end),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
