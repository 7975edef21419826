/*
 * tests/test_frame.c - frame size rules, header writer and the incremental
 * parser fed in every possible chunking.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "proto/frame.h"
#include "util/byteorder.h"

/* A stream of frames of varied sizes, built once. */
typedef struct sample {
    kr_buf stream;
    int n;
    uint32_t types[8];
    size_t lens[8];
} sample;

static void build_sample(sample *s)
{
    static const size_t lens[] = {0, 1, 5, 300, 0, 3000, 2};
    kr_buf_init(&s->stream, SIZE_MAX);
    s->n = (int)(sizeof lens / sizeof lens[0]);
    for (int i = 0; i < s->n; i++) {
        uint8_t *p = malloc(lens[i] + 1);
        assert_non_null(p);
        for (size_t k = 0; k < lens[i]; k++)
            p[k] = (uint8_t)(i * 31 + k);
        s->types[i] = (uint32_t)(i + 1) * 17;
        s->lens[i] = lens[i];
        assert_int_equal(kr_frame_append(&s->stream, s->types[i], p, lens[i]), 0);
        free(p);
    }
}

/* Check frame i of the sample. */
static void check_frame(const sample *s, int i, const kr_frame *f)
{
    assert_true(i < s->n);
    assert_int_equal(f->type, s->types[i]);
    assert_int_equal(f->len, s->lens[i]);
    for (size_t k = 0; k < f->len; k++)
        assert_int_equal(f->payload[k], (uint8_t)(i * 31 + k));
}

/* Drain every complete frame, checking each. */
static int drain(kr_frame_parser *p, const sample *s, int got)
{
    kr_frame f;
    int r;
    while ((r = kr_frame_parser_next(p, &f)) == 1) {
        check_frame(s, got, &f);
        got++;
    }
    assert_int_equal(r, 0);
    return got;
}

static void test_check_size(void **state)
{
    (void)state;
    assert_int_equal(kr_frame_check_size(0, 100), KRAPPY_E_BAD_FRAME);
    assert_int_equal(kr_frame_check_size(1, 100), KRAPPY_E_BAD_FRAME);
    assert_int_equal(kr_frame_check_size(2, 100), KRAPPY_E_BAD_FRAME);
    assert_int_equal(kr_frame_check_size(3, 100), KRAPPY_E_BAD_FRAME);
    assert_int_equal(kr_frame_check_size(4, 100), KRAPPY_OK);
    assert_int_equal(kr_frame_check_size(100, 100), KRAPPY_OK);
    assert_int_equal(kr_frame_check_size(101, 100), KRAPPY_E_FRAME_TOO_LARGE);
    assert_int_equal(kr_frame_check_size(0xFFFFFFFFu, KRAPPY_DEFAULT_MAX_FRAME),
                     KRAPPY_E_FRAME_TOO_LARGE);
    assert_int_equal(kr_frame_check_size(0x80000000u, KRAPPY_DEFAULT_MAX_FRAME),
                     KRAPPY_E_FRAME_TOO_LARGE);
    assert_int_equal(kr_frame_check_size(KRAPPY_DEFAULT_MAX_FRAME, KRAPPY_DEFAULT_MAX_FRAME),
                     KRAPPY_OK);
    assert_int_equal(kr_frame_check_size(0xFFFFFFFFu, 0xFFFFFFFFu), KRAPPY_OK);
}

static void test_put_header(void **state)
{
    (void)state;
    uint8_t h[KRAPPY_FRAME_HEADER_BYTES];
    kr_frame_put_header(h, KRAPPY_T_ERROR, 0);
    const uint8_t want0[] = {0, 0, 0, 4, 0, 0, 0, 255};
    assert_memory_equal(h, want0, 8);
    kr_frame_put_header(h, 0x01020304, 0x10203);
    const uint8_t want1[] = {0, 1, 2, 7, 1, 2, 3, 4};
    assert_memory_equal(h, want1, 8);
    assert_int_equal(kr_get_be32(h), 0x10207);
    assert_int_equal(kr_get_be32(h + 4), 0x01020304);
}

static void test_append(void **state)
{
    (void)state;
    kr_buf b;
    kr_buf_init(&b, 12);
    assert_int_equal(kr_frame_append(&b, 10, "\xa0", 1), 0);
    const uint8_t want[] = {0, 0, 0, 5, 0, 0, 0, 10, 0xa0};
    assert_int_equal(b.len, 9);
    assert_memory_equal(b.data, want, 9);
    /* 9 + 8 > 12: refused whole, the first frame intact. */
    assert_int_equal(kr_frame_append(&b, 10, NULL, 0), -1);
    assert_true(b.failed);
    assert_int_equal(b.len, 9);
    kr_buf_free(&b);

    kr_buf_init(&b, 100);
    assert_int_equal(kr_frame_append(&b, 1, "", (size_t)UINT32_MAX), -1);
    assert_true(b.failed);
    assert_int_equal(b.len, 0);
    kr_buf_free(&b);
}

/* The whole stream in one feed. */
static void test_parse_whole(void **state)
{
    (void)state;
    sample s;
    build_sample(&s);
    kr_frame_parser p;
    kr_frame_parser_init(&p, KRAPPY_DEFAULT_MAX_FRAME);
    assert_int_equal(kr_frame_parser_feed(&p, s.stream.data, s.stream.len), 0);
    assert_int_equal(kr_frame_parser_pending(&p), s.stream.len);
    assert_int_equal(drain(&p, &s, 0), s.n);
    assert_int_equal(kr_frame_parser_pending(&p), 0);
    kr_frame_parser_free(&p);
    kr_buf_free(&s.stream);
}

/* Every split point of the stream into two feeds. */
static void test_parse_every_split(void **state)
{
    (void)state;
    sample s;
    build_sample(&s);
    for (size_t cut = 0; cut <= s.stream.len; cut++) {
        kr_frame_parser p;
        kr_frame_parser_init(&p, KRAPPY_DEFAULT_MAX_FRAME);
        assert_int_equal(kr_frame_parser_feed(&p, s.stream.data, cut), 0);
        int got = drain(&p, &s, 0);
        assert_int_equal(kr_frame_parser_feed(&p, s.stream.data + cut, s.stream.len - cut), 0);
        got = drain(&p, &s, got);
        assert_int_equal(got, s.n);
        assert_int_equal(kr_frame_parser_pending(&p), 0);
        kr_frame_parser_free(&p);
    }
    kr_buf_free(&s.stream);
}

/* One byte at a time. */
static void test_parse_byte_by_byte(void **state)
{
    (void)state;
    sample s;
    build_sample(&s);
    kr_frame_parser p;
    kr_frame_parser_init(&p, KRAPPY_DEFAULT_MAX_FRAME);
    int got = 0;
    for (size_t i = 0; i < s.stream.len; i++) {
        assert_int_equal(kr_frame_parser_feed(&p, s.stream.data + i, 1), 0);
        got = drain(&p, &s, got);
    }
    assert_int_equal(got, s.n);
    assert_int_equal(kr_frame_parser_pending(&p), 0);
    kr_frame_parser_free(&p);
    kr_buf_free(&s.stream);
}

/* Chunks of every size from 1 to 40 bytes. */
static void test_parse_chunk_sizes(void **state)
{
    (void)state;
    sample s;
    build_sample(&s);
    for (size_t chunk = 2; chunk <= 40; chunk++) {
        kr_frame_parser p;
        kr_frame_parser_init(&p, KRAPPY_DEFAULT_MAX_FRAME);
        int got = 0;
        for (size_t i = 0; i < s.stream.len; i += chunk) {
            size_t n = s.stream.len - i < chunk ? s.stream.len - i : chunk;
            assert_int_equal(kr_frame_parser_feed(&p, s.stream.data + i, n), 0);
            got = drain(&p, &s, got);
        }
        assert_int_equal(got, s.n);
        kr_frame_parser_free(&p);
    }
    kr_buf_free(&s.stream);
}

/* Feed `bytes`, expect the parser to fail with `err` (or succeed with 0). */
static int parse_header(const uint8_t *bytes, size_t n, uint32_t max_frame, kr_frame_parser *p)
{
    kr_frame f;
    kr_frame_parser_init(p, max_frame);
    assert_int_equal(kr_frame_parser_feed(p, bytes, n), 0);
    return kr_frame_parser_next(p, &f);
}

static void test_bad_sizes(void **state)
{
    (void)state;
    for (uint8_t size = 0; size < 4; size++) {
        uint8_t h[4] = {0, 0, 0, size};
        kr_frame_parser p;
        assert_int_equal(parse_header(h, 4, 100, &p), -1);
        assert_int_equal(p.err, KRAPPY_E_BAD_FRAME);
        kr_frame_parser_free(&p);
    }
}

static void test_max_frame_bounds(void **state)
{
    (void)state;
    const uint32_t max = 1000;
    kr_frame_parser p;
    kr_frame f;

    /* Exactly max_frame: accepted once all bytes are in. */
    uint8_t *buf = calloc(1, 4 + max);
    assert_non_null(buf);
    kr_put_be32(buf, max);
    kr_put_be32(buf + 4, 42);
    assert_int_equal(parse_header(buf, 4 + max - 1, max, &p), 0);
    assert_int_equal(kr_frame_parser_feed(&p, buf + 4 + max - 1, 1), 0);
    assert_int_equal(kr_frame_parser_next(&p, &f), 1);
    assert_int_equal(f.type, 42);
    assert_int_equal(f.len, max - 4);
    kr_frame_parser_free(&p);

    /* max_frame + 1: refused. */
    kr_put_be32(buf, max + 1);
    assert_int_equal(parse_header(buf, 8, max, &p), -1);
    assert_int_equal(p.err, KRAPPY_E_FRAME_TOO_LARGE);
    kr_frame_parser_free(&p);
    free(buf);

    uint8_t ff[4] = {0xff, 0xff, 0xff, 0xff};
    assert_int_equal(parse_header(ff, 4, KRAPPY_DEFAULT_MAX_FRAME, &p), -1);
    assert_int_equal(p.err, KRAPPY_E_FRAME_TOO_LARGE);
    kr_frame_parser_free(&p);

    uint8_t g2[4] = {0x80, 0, 0, 0};
    assert_int_equal(parse_header(g2, 4, KRAPPY_DEFAULT_MAX_FRAME, &p), -1);
    assert_int_equal(p.err, KRAPPY_E_FRAME_TOO_LARGE);
    kr_frame_parser_free(&p);
}

/* The size is judged with only its 4 bytes in: no type, no payload yet. */
static void test_size_checked_early(void **state)
{
    (void)state;
    kr_frame_parser p;
    kr_frame f;
    uint8_t big[4] = {0x01, 0, 0, 1}; /* 16 MiB + 1 */

    kr_frame_parser_init(&p, KRAPPY_DEFAULT_MAX_FRAME);
    for (int i = 0; i < 3; i++) {
        assert_int_equal(kr_frame_parser_feed(&p, big + i, 1), 0);
        assert_int_equal(kr_frame_parser_next(&p, &f), 0);
    }
    assert_int_equal(kr_frame_parser_feed(&p, big + 3, 1), 0);
    assert_int_equal(kr_frame_parser_next(&p, &f), -1);
    assert_int_equal(p.err, KRAPPY_E_FRAME_TOO_LARGE);
    kr_frame_parser_free(&p);

    uint8_t small[4] = {0, 0, 0, 3};
    kr_frame_parser_init(&p, KRAPPY_DEFAULT_MAX_FRAME);
    assert_int_equal(kr_frame_parser_feed(&p, small, 4), 0);
    assert_int_equal(kr_frame_parser_next(&p, &f), -1);
    assert_int_equal(p.err, KRAPPY_E_BAD_FRAME);
    kr_frame_parser_free(&p);
}

/* After an error the parser yields nothing, even for good bytes. */
static void test_sticky_error(void **state)
{
    (void)state;
    kr_frame_parser p;
    kr_frame f;
    uint8_t bad[4] = {0, 0, 0, 2};
    uint8_t good[9] = {0, 0, 0, 5, 0, 0, 0, 10, 0xa0};

    /* A good frame, then a bad header: the good one is returned first. */
    kr_frame_parser_init(&p, 100);
    assert_int_equal(kr_frame_parser_feed(&p, good, sizeof good), 0);
    assert_int_equal(kr_frame_parser_feed(&p, bad, sizeof bad), 0);
    assert_int_equal(kr_frame_parser_next(&p, &f), 1);
    assert_int_equal(f.type, 10);
    assert_int_equal(kr_frame_parser_next(&p, &f), -1);
    assert_int_equal(p.err, KRAPPY_E_BAD_FRAME);
    assert_int_equal(kr_frame_parser_next(&p, &f), -1);
    assert_int_equal(kr_frame_parser_feed(&p, good, sizeof good), 0);
    assert_int_equal(kr_frame_parser_next(&p, &f), -1);
    assert_int_equal(p.err, KRAPPY_E_BAD_FRAME);
    kr_frame_parser_free(&p);
    kr_frame_parser_free(NULL);
}

/* The empty payload (size 4) is a frame of length 0. */
static void test_empty_payload(void **state)
{
    (void)state;
    kr_frame_parser p;
    kr_frame f;
    uint8_t h[8] = {0, 0, 0, 4, 0, 0, 0, 10};
    assert_int_equal(parse_header(h, 7, 100, &p), 0);
    assert_int_equal(kr_frame_parser_feed(&p, h + 7, 1), 0);
    assert_int_equal(kr_frame_parser_next(&p, &f), 1);
    assert_int_equal(f.type, 10);
    assert_int_equal(f.len, 0);
    assert_int_equal(kr_frame_parser_next(&p, &f), 0);
    kr_frame_parser_free(&p);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_check_size),
        cmocka_unit_test(test_put_header),
        cmocka_unit_test(test_append),
        cmocka_unit_test(test_parse_whole),
        cmocka_unit_test(test_parse_every_split),
        cmocka_unit_test(test_parse_byte_by_byte),
        cmocka_unit_test(test_parse_chunk_sizes),
        cmocka_unit_test(test_bad_sizes),
        cmocka_unit_test(test_max_frame_bounds),
        cmocka_unit_test(test_size_checked_early),
        cmocka_unit_test(test_sticky_error),
        cmocka_unit_test(test_empty_payload),
    };
    return cmocka_run_group_tests_name("frame", tests, NULL, NULL);
}
