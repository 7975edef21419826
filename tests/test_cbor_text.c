/*
 * tests/test_cbor_text.c - the renderer of proto/cbor_text.c as krappyd's
 * admin API uses it: the nesting limit, no partial text on failure, and
 * delivered events as JSON objects that stay valid whatever they hold.
 * (The renderings themselves are tested through krappy_cbor_to_diag/json
 * in test_client.c; arbitrary input in tests/fuzz/fuzz_cbor_text.c.)
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "alloc_fail.h"
#include "proto/cbor.h"
#include "proto/cbor_text.h"
#include "proto/msg.h"

/* `n` arrays of one element nested around `inner` (one byte). */
static size_t nested(uint8_t *out, size_t n, uint8_t inner)
{
    memset(out, 0x81, n);
    out[n] = inner;
    return n + 1;
}

/* Render into a buffer holding "pre" already; the text after it. */
static int render_after_prefix(const uint8_t *item, size_t len, bool json, size_t cap, kr_buf *b)
{
    kr_buf_init(b, cap);
    kr_buf_append(b, "pre", 3);
    return kr_cbor_render(item, len, json, 0, b);
}

static void test_depth_limit(void **state)
{
    (void)state;
    uint8_t item[100];
    kr_buf b;

    /* 64 arrays around a number: 64 levels. */
    size_t n = nested(item, KR_CBOR_TEXT_MAX_DEPTH, 0x00);
    assert_int_equal(render_after_prefix(item, n, true, 4096, &b), 0);
    assert_int_equal(b.len, 3 + 2 * KR_CBOR_TEXT_MAX_DEPTH + 1);
    kr_buf_free(&b);

    /* 64 arrays around an empty one: 65 levels, which the JSON reader
     * would refuse; so is the renderer. */
    n = nested(item, KR_CBOR_TEXT_MAX_DEPTH, 0x80);
    assert_int_equal(render_after_prefix(item, n, true, 4096, &b), -1);
    assert_int_equal(b.len, 3);
    kr_buf_free(&b);
    n = nested(item, KR_CBOR_TEXT_MAX_DEPTH, 0xa0); /* ... or an empty map */
    assert_int_equal(render_after_prefix(item, n, false, 4096, &b), -1);
    kr_buf_free(&b);
    n = nested(item, KR_CBOR_TEXT_MAX_DEPTH, 0xc1); /* ... or a tag */
    item[n] = 0x00;
    assert_int_equal(render_after_prefix(item, n + 1, true, 4096, &b), -1);
    kr_buf_free(&b);
    n = nested(item, KR_CBOR_TEXT_MAX_DEPTH - 1, 0xc1); /* a tag as the 64th level */
    item[n] = 0x00;
    assert_int_equal(render_after_prefix(item, n + 1, false, 4096, &b), 0);
    kr_buf_free(&b);
}

static void test_failure_leaves_buffer(void **state)
{
    (void)state;
    uint8_t item[200];
    kr_buf b;

    /* Too deep after some text was written: the text goes again. */
    item[0] = 0x82;
    item[1] = 0x01;
    size_t n = 2 + nested(item + 2, 80, 0x00);
    assert_int_equal(render_after_prefix(item, n, true, 4096, &b), -1);
    assert_int_equal(b.len, 3);
    assert_memory_equal(b.data, "pre", 3);
    assert_false(b.failed);
    kr_buf_free(&b);

    /* Out of room: -2, and the buffer as it was (not failed). */
    static const uint8_t text[] = {0x6a, 'a', 'b', 'c', 'd', 'e', 'f', 'g', 'h', 'i', 'j'};
    assert_int_equal(render_after_prefix(text, sizeof text, true, 8, &b), -2);
    assert_int_equal(b.len, 3);
    assert_false(b.failed);
    kr_buf_free(&b);

    /* Not one well-formed item. */
    assert_int_equal(render_after_prefix((const uint8_t *)"\x01\x02", 2, true, 64, &b), -1);
    assert_int_equal(b.len, 3);
    kr_buf_free(&b);
}

/* Read an encoded event array into a view. */
static void view_of(const uint8_t *ev, size_t len, kr_event_view *v)
{
    kr_cbor_item it;
    assert_int_equal(kr_cbor_read_exact(ev, len, &it), 0);
    assert_int_equal(kr_event_view_read(&it, v), 0);
}

/* The event rendered as a NUL-terminated string (freed by the caller). */
static char *event_json(const uint8_t *ev, size_t len, size_t cap, int *rc)
{
    kr_event_view v;
    kr_buf b;
    view_of(ev, len, &v);
    kr_buf_init(&b, cap);
    *rc = kr_cbor_render_event_json(&v, &b);
    kr_buf_append(&b, "", 1);
    return (char *)b.data;
}

static void test_event_json(void **state)
{
    (void)state;
    int rc;

    /* [7, 9, "k", {"a": [1, true]}] */
    static const uint8_t plain[] = {0x84, 0x07, 0x09, 0x61, 'k', 0xa1, 0x61, 'a', 0x82, 0x01, 0xf5};
    char *j = event_json(plain, sizeof plain, 4096, &rc);
    assert_int_equal(rc, 0);
    assert_string_equal(j, "{\"offset\":7,\"ts\":9,\"key\":\"k\",\"value\":{\"a\":[1,true]}}");
    free(j);

    /* [1, 2, null, null, {"h": h'01ff'}]: bytes in base64url. */
    static const uint8_t headers[] = {0x85, 0x01, 0x02, 0xf6, 0xf6, 0xa1,
                                      0x61, 'h',  0x42, 0x01, 0xff};
    j = event_json(headers, sizeof headers, 4096, &rc);
    assert_int_equal(rc, 0);
    assert_string_equal(
        j, "{\"offset\":1,\"ts\":2,\"key\":null,\"value\":null,\"headers\":{\"h\":\"Af8\"}}");
    free(j);
}

/* A value nested past the limit is null, with an error saying so: the
 * object stays valid JSON (the admin API once served "value":] here). */
static void test_event_json_too_deep(void **state)
{
    (void)state;
    uint8_t ev[100] = {0x84, 0x03, 0x04, 0x61, 'k'};
    size_t n = 5 + nested(ev + 5, 70, 0x00);
    int rc;
    char *j = event_json(ev, n, 4096, &rc);
    assert_int_equal(rc, 0);
    assert_string_equal(j,
                        "{\"offset\":3,\"ts\":4,\"key\":\"k\",\"value\":null,\"error\":\"the value "
                        "nests deeper than 63 levels and is not shown; FETCH the event to read "
                        "it\"}");
    free(j);

    /* 63 levels inside the event are shown, 64 are not: the object with
     * its own level stays within the JSON reader's 64. */
    n = 5 + nested(ev + 5, 62, 0x00);
    j = event_json(ev, n, 4096, &rc);
    assert_int_equal(rc, 0);
    assert_null(strstr(j, "error"));
    free(j);
    n = 5 + nested(ev + 5, 63, 0x80);
    j = event_json(ev, n, 4096, &rc);
    assert_non_null(strstr(j, "\"value\":null,\"error\""));
    free(j);

    /* Out of room: -2 and nothing written. */
    kr_event_view v;
    kr_buf b;
    view_of(ev, n, &v);
    kr_buf_init(&b, 20);
    kr_buf_append(&b, "x", 1);
    assert_int_equal(kr_cbor_render_event_json(&v, &b), -2);
    assert_int_equal(b.len, 1);
    assert_false(b.failed);
    kr_buf_free(&b);
}

/* Render, as JSON, a map with a non-text key and chunked bytes (which
 * allocate: the key's text and the joined bytes), then as an event. On
 * failure nothing of it is left in the buffer. */
static int render_all(void *arg)
{
    (void)arg;
    /* {[1, "x"]: (_ h'0102', h'03'), "t": "text"} */
    static const uint8_t item[] = {0xa2, 0x82, 0x01, 0x61, 'x',  0x5f, 0x42, 0x01, 0x02, 0x41,
                                   0x03, 0xff, 0x61, 't',  0x64, 't',  'e',  'x',  't'};
    /* [5, 6, "k", that map] */
    uint8_t ev[5 + sizeof item] = {0x84, 0x05, 0x06, 0x61, 'k'};
    memcpy(ev + 5, item, sizeof item);
    kr_buf b;
    kr_buf_init(&b, 1u << 20);
    size_t before = 0;
    int rc = kr_cbor_render(item, sizeof item, true, 0, &b);
    if (rc == 0) {
        static const char want[] = "{\"[1, \\\"x\\\"]\":\"AQID\",\"t\":\"text\"}";
        assert_int_equal(b.len, sizeof want - 1);
        assert_memory_equal(b.data, want, sizeof want - 1);
        before = b.len;
        kr_event_view v;
        view_of(ev, sizeof ev, &v);
        rc = kr_cbor_render_event_json(&v, &b);
    }
    if (rc == -2) {
        assert_int_equal(b.len, before);
        assert_false(b.failed);
        kr_buf_free(&b);
        return 1;
    }
    assert_int_equal(rc, 0);
    kr_buf_free(&b);
    return 0;
}

static void test_allocation_failures(void **state)
{
    (void)state;
    assert_true(alloc_fail_each(render_all, NULL, false, 100) >= 3);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_depth_limit),         cmocka_unit_test(test_failure_leaves_buffer),
        cmocka_unit_test(test_event_json),          cmocka_unit_test(test_event_json_too_deep),
        cmocka_unit_test(test_allocation_failures),
    };
    return cmocka_run_group_tests_name("cbor_text", tests, NULL, NULL);
}
