/*
 * tests/fuzz/json_check.h - the property the JSON reader (client/json.c)
 * and the renderer (proto/cbor_text.c) must share, checked by both of their
 * fuzz targets: JSON that one of them produced reads back, and what it reads
 * is a fixed point - rendered and read again, the same CBOR. (Texts are not
 * compared: a replacement character may come back as itself rather than as
 * the escape \ufffd.)
 */
#ifndef KR_FUZZ_JSON_CHECK_H
#define KR_FUZZ_JSON_CHECK_H

#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "proto/json_parse.h"
#include "fuzz_check.h"
#include "proto/cbor_text.h"

static void json_fixed_point(const uint8_t *text, size_t n, unsigned flags)
{
    kr_buf cbor, again, cbor2;
    char why[200];
    kr_buf_init(&cbor, n * 4 + 64);
    FUZZ_CHECK(kr_json_to_cbor((const char *)text, n, &cbor, why, sizeof why) == KRAPPY_OK);
    kr_buf_init(&again, cbor.len * 32 + 256);
    FUZZ_CHECK(kr_cbor_render(cbor.data, cbor.len, true, flags, &again) == 0);
    kr_buf_init(&cbor2, again.len * 4 + 64);
    FUZZ_CHECK(kr_json_to_cbor((const char *)again.data, again.len, &cbor2, why, sizeof why) ==
               KRAPPY_OK);
    FUZZ_CHECK(cbor2.len == cbor.len && memcmp(cbor2.data, cbor.data, cbor.len) == 0);
    kr_buf_free(&cbor2);
    kr_buf_free(&again);
    kr_buf_free(&cbor);
}

#endif
