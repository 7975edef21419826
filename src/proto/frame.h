/*
 * proto/frame.h - Krappy frames: size u32 BE | type u32 BE | payload.
 *
 * No I/O here. The server checks headers straight off its input evbuffer
 * with kr_frame_check_size(); the client and the fuzz targets use the
 * incremental parser, which accepts bytes in any chunking and yields whole
 * frames. Both apply the same size rules (PROTOCOL.md section 1).
 */
#ifndef KR_PROTO_FRAME_H
#define KR_PROTO_FRAME_H

#include <stddef.h>
#include <stdint.h>

#include "krappy/protocol.h"
#include "util/buf.h"

/* A whole frame. `payload` is borrowed: see the function that returned it. */
typedef struct kr_frame {
    uint32_t type;
    const uint8_t *payload;
    size_t len; /* payload bytes = size - 4 */
} kr_frame;

/*
 * kr_frame_check_size - judge a frame's size field the moment it arrives.
 * @return KRAPPY_OK; KRAPPY_E_BAD_FRAME when size < 4;
 *         KRAPPY_E_FRAME_TOO_LARGE when size > max_frame.
 */
krappy_err kr_frame_check_size(uint32_t size, uint32_t max_frame);

/*
 * kr_frame_put_header - write the 8-byte header of a frame carrying
 * `payload_len` payload bytes. The caller ensures 4 + payload_len fits u32.
 */
void kr_frame_put_header(uint8_t out[KRAPPY_FRAME_HEADER_BYTES], uint32_t type, size_t payload_len);

/*
 * kr_frame_append - append a whole frame (header + payload) to `out`.
 * @return 0 on success, -1 when `out` refused to grow (out->failed set).
 */
int kr_frame_append(kr_buf *out, uint32_t type, const void *payload, size_t payload_len);

/* Incremental frame parser. */
typedef struct kr_frame_parser {
    uint32_t max_frame; /* largest accepted size field */
    kr_buf in;          /* unparsed bytes; in.data[pos..len) are pending */
    size_t pos;         /* start of the next frame in `in` */
    krappy_err err;     /* sticky: once set, the parser yields nothing */
} kr_frame_parser;

/* Initialise a parser accepting frames whose size is at most max_frame. */
void kr_frame_parser_init(kr_frame_parser *p, uint32_t max_frame);

/* Release the parser's memory. NULL ok. */
void kr_frame_parser_free(kr_frame_parser *p);

/*
 * kr_frame_parser_feed - hand the parser more bytes (copied).
 * Frames returned by earlier kr_frame_parser_next calls become invalid.
 * @return 0 on success, -1 when out of memory (err set to KRAPPY_E_NOMEM).
 */
int kr_frame_parser_feed(kr_frame_parser *p, const void *data, size_t len);

/*
 * kr_frame_parser_next - take the next whole frame.
 * @return 1 and *out filled (payload valid until the next feed or free);
 *         0 when more bytes are needed;
 *         -1 on a bad size field: p->err is KRAPPY_E_BAD_FRAME or
 *         KRAPPY_E_FRAME_TOO_LARGE and stays set (framing is lost).
 * The size is judged as soon as its 4 bytes are there.
 */
int kr_frame_parser_next(kr_frame_parser *p, kr_frame *out);

/* Bytes fed but not yet returned as frames. */
size_t kr_frame_parser_pending(const kr_frame_parser *p);

#endif
