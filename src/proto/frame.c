/*
 * proto/frame.c - frame headers and the incremental frame parser (frame.h).
 *
 * The parser keeps unparsed bytes in one kr_buf. Frames are returned as
 * pointers into it, so nothing is copied twice; the bytes of returned frames
 * are dropped at the next feed, which is also when returned frames become
 * invalid. The size field is judged the moment its four bytes are present,
 * before the type or payload arrive, so a hostile size never makes the parser
 * wait for (or buffer) gigabytes.
 */
#include "proto/frame.h"

#include <string.h>

#include "util/byteorder.h"

krappy_err kr_frame_check_size(uint32_t size, uint32_t max_frame)
{
    if (size < KRAPPY_FRAME_MIN_SIZE)
        return KRAPPY_E_BAD_FRAME;
    if (size > max_frame)
        return KRAPPY_E_FRAME_TOO_LARGE;
    return KRAPPY_OK;
}

void kr_frame_put_header(uint8_t out[KRAPPY_FRAME_HEADER_BYTES], uint32_t type, size_t payload_len)
{
    kr_put_be32(out, (uint32_t)(KRAPPY_FRAME_MIN_SIZE + payload_len));
    kr_put_be32(out + 4, type);
}

/*
 * Append header and payload in one go: reserve first so that a refusal
 * leaves `out` untouched rather than holding a header without its payload.
 */
int kr_frame_append(kr_buf *out, uint32_t type, const void *payload, size_t payload_len)
{
    uint8_t hdr[KRAPPY_FRAME_HEADER_BYTES];

    if (payload_len > (size_t)UINT32_MAX - KRAPPY_FRAME_MIN_SIZE) {
        out->failed = true;
        return -1;
    }
    if (kr_buf_reserve(out, sizeof hdr + payload_len) < 0)
        return -1;
    kr_frame_put_header(hdr, type, payload_len);
    kr_buf_append(out, hdr, sizeof hdr);
    return kr_buf_append(out, payload, payload_len);
}

void kr_frame_parser_init(kr_frame_parser *p, uint32_t max_frame)
{
    p->max_frame = max_frame;
    /* The caller bounds what it feeds; the parser itself never waits for
     * more than one frame of max_frame bytes. */
    kr_buf_init(&p->in, SIZE_MAX);
    p->pos = 0;
    p->err = KRAPPY_OK;
}

void kr_frame_parser_free(kr_frame_parser *p)
{
    if (p == NULL)
        return;
    kr_buf_free(&p->in);
    p->pos = 0;
}

/*
 * Drop the bytes of frames already returned (they are invalid from now on),
 * then append the new bytes. Once the parser has failed, bytes are dropped:
 * framing is lost and nothing more will be returned.
 */
int kr_frame_parser_feed(kr_frame_parser *p, const void *data, size_t len)
{
    if (p->err != KRAPPY_OK)
        return p->err == KRAPPY_E_NOMEM ? -1 : 0;
    if (p->pos > 0) {
        kr_buf_consume(&p->in, p->pos);
        p->pos = 0;
    }
    if (kr_buf_append(&p->in, data, len) < 0) {
        p->err = KRAPPY_E_NOMEM;
        return -1;
    }
    return 0;
}

int kr_frame_parser_next(kr_frame_parser *p, kr_frame *out)
{
    if (p->err != KRAPPY_OK)
        return -1;
    size_t avail = p->in.len - p->pos;
    if (avail < 4)
        return 0;
    const uint8_t *h = p->in.data + p->pos;
    uint32_t size = kr_get_be32(h);
    krappy_err e = kr_frame_check_size(size, p->max_frame);
    if (e != KRAPPY_OK) {
        p->err = e;
        return -1;
    }
    if (avail - 4 < size)
        return 0;
    out->type = kr_get_be32(h + 4);
    out->payload = h + KRAPPY_FRAME_HEADER_BYTES;
    out->len = size - 4;
    p->pos += 4 + (size_t)size;
    return 1;
}

size_t kr_frame_parser_pending(const kr_frame_parser *p)
{
    return p->in.len - p->pos;
}
