/*
 * kafka/compress.c - gzip, snappy, LZ4 and zstd decompression with a cap
 * (see compress.h).
 *
 * The streaming codecs (gzip, LZ4, zstd) write straight into the output
 * buffer, which grows by doubling up to the cap. Once the cap is reached the
 * decoder is given a one-byte probe instead: if it still produces a byte the
 * input expands past the cap; if it finishes without one, the output fit
 * exactly. Snappy states its decompressed length up front, which is checked
 * against the cap before anything is allocated.
 */
#include "kafka/compress.h"

#include <limits.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>

#include <lz4frame.h>
#include <snappy-c.h>
#include <zlib.h>
#include <zstd.h>

/* Output grows by at least this much at a time. */
#define GROW_MIN (64u * 1024)

/* The xerial snappy header: magic, then version and compatible version. */
static const uint8_t xerial_magic[8] = {0x82, 'S', 'N', 'A', 'P', 'P', 'Y', 0};
#define XERIAL_HEADER 16

const char *kr_kafka_codec_name(int codec)
{
    switch (codec) {
    case KR_KAFKA_CODEC_NONE:
        return "none";
    case KR_KAFKA_CODEC_GZIP:
        return "gzip";
    case KR_KAFKA_CODEC_SNAPPY:
        return "snappy";
    case KR_KAFKA_CODEC_LZ4:
        return "lz4";
    case KR_KAFKA_CODEC_ZSTD:
        return "zstd";
    default:
        return "unknown";
    }
}

/* One decompression: where output goes and how far it may grow. */
typedef struct sink {
    kr_buf *out;
    size_t limit;  /* out->len may not pass this */
    uint8_t probe; /* the one byte handed out once the limit is reached */
    bool probing;  /* the last window was the probe */
    size_t max;    /* the caller's cap, for messages */
    const char *codec;
    char *msg;
    size_t msglen;
} sink;

static kr_kafka_err fail(sink *s, kr_kafka_err code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static kr_kafka_err fail(sink *s, kr_kafka_err code, const char *fmt, ...)
{
    if (s->msglen > 0) {
        va_list ap;
        int n = snprintf(s->msg, s->msglen, "%s: ", s->codec);
        va_start(ap, fmt);
        if (n >= 0 && (size_t)n < s->msglen)
            vsnprintf(s->msg + n, s->msglen - (size_t)n, fmt, ap);
        va_end(ap);
    }
    return code;
}

static kr_kafka_err too_large(sink *s)
{
    return fail(s, KR_KAFKA_ERR_MESSAGE_TOO_LARGE,
                "the records decompress to more than %zu bytes, the most this server takes",
                s->max);
}

/*
 * The next output window: free space in out (growing it), or the probe
 * byte once the limit is reached. *n is the window's size.
 * @return the window, or NULL when out cannot grow (out of memory).
 */
static uint8_t *window(sink *s, size_t *n)
{
    kr_buf *out = s->out;
    s->probing = out->len >= s->limit;
    if (s->probing) {
        *n = 1;
        return &s->probe;
    }
    if (out->cap - out->len == 0) {
        size_t want = out->len < GROW_MIN ? GROW_MIN : out->len;
        if (want > s->limit - out->len)
            want = s->limit - out->len;
        if (kr_buf_reserve(out, want) < 0)
            return NULL;
    }
    size_t room = out->cap - out->len;
    if (room > s->limit - out->len)
        room = s->limit - out->len;
    *n = room;
    return out->data + out->len;
}

/* Account for `n` bytes written to the last window.
 * @return 0, or -1 when they went to the probe (the input is too large). */
static int produced(sink *s, size_t n)
{
    if (s->probing)
        return n > 0 ? -1 : 0;
    s->out->len += n;
    return 0;
}

static kr_kafka_err no_memory(sink *s)
{
    return fail(s, KR_KAFKA_ERR_UNKNOWN_SERVER_ERROR, "out of memory for the decompressed records");
}

/* gzip, possibly several members one after the other. */
static kr_kafka_err gunzip(sink *s, const uint8_t *in, size_t len)
{
    z_stream zs;
    kr_kafka_err rc = KR_KAFKA_ERR_NONE;

    if (len > UINT_MAX)
        return fail(s, KR_KAFKA_ERR_MESSAGE_TOO_LARGE, "%zu compressed bytes are too many", len);
    memset(&zs, 0, sizeof zs);
    /* 15 + 16: a gzip wrapper (Kafka's format), largest window. */
    if (inflateInit2(&zs, 15 + 16) != Z_OK)
        return no_memory(s);
    zs.next_in = (Bytef *)(uintptr_t)in;
    zs.avail_in = (uInt)len;
    for (;;) {
        size_t n;
        uint8_t *w = window(s, &n);
        if (w == NULL) {
            rc = no_memory(s);
            break;
        }
        zs.next_out = w;
        zs.avail_out = n > UINT_MAX ? UINT_MAX : (uInt)n;
        uInt before = zs.avail_out;
        int z = inflate(&zs, Z_NO_FLUSH);
        if (produced(s, before - zs.avail_out) < 0) {
            rc = too_large(s);
            break;
        }
        if (z == Z_STREAM_END) {
            if (zs.avail_in == 0)
                break;
            if (zs.avail_in >= 2 && zs.next_in[0] == 0x1f && zs.next_in[1] == 0x8b) {
                inflateReset(&zs);
                continue;
            }
            rc = fail(s, KR_KAFKA_ERR_CORRUPT_MESSAGE, "%u bytes after the end of the stream",
                      zs.avail_in);
            break;
        }
        if (z == Z_BUF_ERROR && zs.avail_in == 0 && zs.avail_out > 0) {
            rc = fail(s, KR_KAFKA_ERR_CORRUPT_MESSAGE, "the stream is truncated");
            break;
        }
        if (z != Z_OK && z != Z_BUF_ERROR) {
            rc = fail(s, KR_KAFKA_ERR_CORRUPT_MESSAGE, "%s",
                      zs.msg != NULL ? zs.msg : "not a valid stream");
            break;
        }
    }
    inflateEnd(&zs);
    return rc;
}

/* One raw snappy block, appended. */
static kr_kafka_err unsnappy_block(sink *s, const uint8_t *in, size_t len)
{
    size_t n;
    if (snappy_uncompressed_length((const char *)in, len, &n) != SNAPPY_OK)
        return fail(s, KR_KAFKA_ERR_CORRUPT_MESSAGE, "not a valid snappy block");
    if (n > s->limit - s->out->len)
        return too_large(s);
    if (n == 0)
        return snappy_validate_compressed_buffer((const char *)in, len) == SNAPPY_OK
                   ? KR_KAFKA_ERR_NONE
                   : fail(s, KR_KAFKA_ERR_CORRUPT_MESSAGE, "not a valid snappy block");
    if (kr_buf_reserve(s->out, n) < 0)
        return no_memory(s);
    if (snappy_uncompress((const char *)in, len, (char *)s->out->data + s->out->len, &n) !=
        SNAPPY_OK)
        return fail(s, KR_KAFKA_ERR_CORRUPT_MESSAGE, "not a valid snappy block");
    s->out->len += n;
    return KR_KAFKA_ERR_NONE;
}

/* Raw snappy, or the xerial framing: header, then [int32 length][block]... */
static kr_kafka_err unsnappy(sink *s, const uint8_t *in, size_t len)
{
    if (len < XERIAL_HEADER || memcmp(in, xerial_magic, sizeof xerial_magic) != 0)
        return unsnappy_block(s, in, len);
    kr_kafka_rd r;
    kr_kafka_rd_init(&r, in + XERIAL_HEADER, len - XERIAL_HEADER);
    while (kr_kafka_rd_left(&r) > 0) {
        int32_t n = kr_kafka_rd_i32(&r);
        if (!kr_kafka_rd_ok(&r) || n < 0 || (size_t)n > kr_kafka_rd_left(&r))
            return fail(s, KR_KAFKA_ERR_CORRUPT_MESSAGE,
                        "a xerial block length runs past the end of the input");
        const uint8_t *block = kr_kafka_rd_raw(&r, (size_t)n);
        kr_kafka_err rc = unsnappy_block(s, block != NULL ? block : in, (size_t)n);
        if (rc != KR_KAFKA_ERR_NONE)
            return rc;
    }
    return KR_KAFKA_ERR_NONE;
}

/* LZ4 frames, one or more. */
static kr_kafka_err unlz4(sink *s, const uint8_t *in, size_t len)
{
    LZ4F_dctx *d = NULL;
    kr_kafka_err rc = KR_KAFKA_ERR_NONE;
    size_t hint = 1; /* LZ4F's "more is expected"; 0 at the end of a frame */

    if (LZ4F_isError(LZ4F_createDecompressionContext(&d, LZ4F_VERSION)))
        return no_memory(s);
    while (len > 0 || hint != 0) {
        size_t n;
        uint8_t *w = window(s, &n);
        if (w == NULL) {
            rc = no_memory(s);
            break;
        }
        size_t src = len;
        hint = LZ4F_decompress(d, w, &n, in, &src, NULL);
        if (LZ4F_isError(hint)) {
            rc = fail(s, KR_KAFKA_ERR_CORRUPT_MESSAGE, "%s", LZ4F_getErrorName(hint));
            break;
        }
        if (produced(s, n) < 0) {
            rc = too_large(s);
            break;
        }
        in += src;
        len -= src;
        if (n == 0 && src == 0 && hint != 0) {
            rc = fail(s, KR_KAFKA_ERR_CORRUPT_MESSAGE, "the frame is truncated");
            break;
        }
    }
    LZ4F_freeDecompressionContext(d);
    return rc;
}

/* zstd frames, one or more. */
static kr_kafka_err unzstd(sink *s, const uint8_t *in, size_t len)
{
    ZSTD_DCtx *z = ZSTD_createDCtx();
    ZSTD_inBuffer ib = {in, len, 0};
    kr_kafka_err rc = KR_KAFKA_ERR_NONE;
    size_t left = 1; /* 0 once a frame is decoded and flushed */

    if (z == NULL)
        return no_memory(s);
    while (ib.pos < ib.size || left != 0) {
        size_t n;
        uint8_t *w = window(s, &n);
        if (w == NULL) {
            rc = no_memory(s);
            break;
        }
        ZSTD_outBuffer ob = {w, n, 0};
        size_t in_before = ib.pos;
        left = ZSTD_decompressStream(z, &ob, &ib);
        if (ZSTD_isError(left)) {
            rc = fail(s, KR_KAFKA_ERR_CORRUPT_MESSAGE, "%s", ZSTD_getErrorName(left));
            break;
        }
        if (produced(s, ob.pos) < 0) {
            rc = too_large(s);
            break;
        }
        if (left != 0 && ob.pos == 0 && ib.pos == in_before) {
            rc = fail(s, KR_KAFKA_ERR_CORRUPT_MESSAGE, "the frame is truncated");
            break;
        }
    }
    ZSTD_freeDCtx(z);
    return rc;
}

kr_kafka_err kr_kafka_decompress(int codec, const uint8_t *in, size_t len, kr_buf *out, size_t max,
                                 char *msg, size_t msglen)
{
    sink s = {out, 0, 0, false, max, kr_kafka_codec_name(codec), msg, msglen};

    size_t cap_room = out->len < out->max ? out->max - out->len : 0;
    s.limit = out->len + (max < cap_room ? max : cap_room);
    if (in == NULL)
        in = (const uint8_t *)"";
    switch (codec) {
    case KR_KAFKA_CODEC_GZIP:
        return gunzip(&s, in, len);
    case KR_KAFKA_CODEC_SNAPPY:
        return unsnappy(&s, in, len);
    case KR_KAFKA_CODEC_LZ4:
        return unlz4(&s, in, len);
    case KR_KAFKA_CODEC_ZSTD:
        return unzstd(&s, in, len);
    default:
        return fail(&s, KR_KAFKA_ERR_UNSUPPORTED_COMPRESSION_TYPE,
                    "compression codec %d is not one of gzip (1), snappy (2), lz4 (3) and "
                    "zstd (4)",
                    codec);
    }
}
