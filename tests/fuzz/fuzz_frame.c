/*
 * tests/fuzz/fuzz_frame.c - fuzz the incremental frame parser and what the
 * server does with each frame.
 *
 * Input: byte 0 picks max_frame (small or the default) and how many chunk
 * sizes follow (0-15); those bytes are the chunk sizes, used in turn; the
 * rest is the byte stream, fed in chunks of those sizes. Every whole frame
 * is decoded as a request, and a valid one is re-encoded and decoded again.
 * The parser's answers are checked against a direct reading of the stream.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "proto/frame.h"
#include "proto/msg.h"
#include "roundtrip.h"
#include "util/byteorder.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* A small max_frame makes FRAME_TOO_LARGE reachable with small inputs. */
#define FUZZ_SMALL_MAX_FRAME 64

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1)
        return 0;
    uint32_t max_frame = (data[0] & 0x80) ? FUZZ_SMALL_MAX_FRAME : KRAPPY_DEFAULT_MAX_FRAME;
    size_t nsizes = data[0] & 0x0f;
    if (1 + nsizes > size)
        nsizes = size - 1;
    const uint8_t *sizes = data + 1;
    const uint8_t *stream = data + 1 + nsizes;
    size_t len = size - 1 - nsizes;

    kr_frame_parser p;
    kr_buf scratch;
    kr_request req;
    char msg[256];
    kr_frame_parser_init(&p, max_frame);
    kr_buf_init(&scratch, (size_t)1 << 26);

    size_t fed = 0, expect_at = 0, k = 0;
    int frames = 0, failed = 0;
    while (fed < len && !failed) {
        size_t chunk = nsizes ? sizes[k++ % nsizes] : len;
        if (chunk == 0)
            chunk = 1;
        if (chunk > len - fed)
            chunk = len - fed;
        FUZZ_CHECK(kr_frame_parser_feed(&p, stream + fed, chunk) == 0);
        fed += chunk;

        kr_frame f;
        int r;
        while ((r = kr_frame_parser_next(&p, &f)) == 1) {
            /* The frame is exactly the next one in the stream. */
            uint32_t fsize = kr_get_be32(stream + expect_at);
            FUZZ_CHECK(kr_frame_check_size(fsize, max_frame) == KRAPPY_OK);
            FUZZ_CHECK(f.len == (size_t)fsize - 4);
            FUZZ_CHECK(f.type == kr_get_be32(stream + expect_at + 4));
            FUZZ_CHECK(f.len == 0 || memcmp(f.payload, stream + expect_at + 8, f.len) == 0);
            expect_at += 4 + (size_t)fsize;
            frames++;

            krappy_err e = kr_req_decode(f.type, f.payload, f.len, &scratch, &req, msg, sizeof msg);
            if (e == KRAPPY_OK)
                rt_check(f.type, f.payload, f.len);
        }
        if (r < 0) {
            /* Only for a bad size field, which must be the next header. */
            FUZZ_CHECK(p.err == KRAPPY_E_BAD_FRAME || p.err == KRAPPY_E_FRAME_TOO_LARGE);
            FUZZ_CHECK(fed - expect_at >= 4);
            FUZZ_CHECK(kr_frame_check_size(kr_get_be32(stream + expect_at), max_frame) == p.err);
            FUZZ_CHECK(kr_frame_parser_next(&p, &f) == -1); /* sticky */
            failed = 1;
        }
    }
    if (!failed) {
        FUZZ_CHECK(kr_frame_parser_pending(&p) == len - expect_at);
        /* Whatever is pending is an incomplete frame with a good size. */
        if (len - expect_at >= 4)
            FUZZ_CHECK(kr_frame_check_size(kr_get_be32(stream + expect_at), max_frame) ==
                       KRAPPY_OK);
    }
    (void)frames;
    kr_frame_parser_free(&p);
    kr_buf_free(&scratch);
    return 0;
}
