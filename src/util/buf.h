/*
 * util/buf.h - a growable byte buffer that refuses to grow past a cap.
 *
 * Used by the CBOR writer and the frame writer. A failed append (cap reached
 * or out of memory) sets `failed` and leaves the contents as they were; from
 * then on every append and reserve is refused until kr_buf_reset, so a
 * writer can emit a whole message and check once at the end (like curl's
 * dynbuf) without ever sending half of one. The memory belongs to the
 * buffer; kr_buf_free releases it.
 */
#ifndef KR_UTIL_BUF_H
#define KR_UTIL_BUF_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef struct kr_buf {
    uint8_t *data; /* owned; NULL until the first append */
    size_t len;    /* bytes in use */
    size_t cap;    /* bytes allocated */
    size_t max;    /* never grow past this many bytes */
    bool failed;   /* an append was refused since the last reset */
} kr_buf;

/* Initialise an empty buffer that will hold at most `max` bytes. */
void kr_buf_init(kr_buf *b, size_t max);

/* Release the memory; the buffer is empty (and usable) afterwards. NULL ok. */
void kr_buf_free(kr_buf *b);

/* Forget the contents and the failed flag, keeping the memory. */
void kr_buf_reset(kr_buf *b);

/*
 * Make room for `n` more bytes without changing len.
 * @return 0 on success, -1 (and failed set) when over max or out of memory.
 */
int kr_buf_reserve(kr_buf *b, size_t n);

/* Append n bytes. @return 0 on success, -1 (failed set) on refusal. */
int kr_buf_append(kr_buf *b, const void *p, size_t n);

/* Drop the first n bytes (n <= len), moving the rest to the front. */
void kr_buf_consume(kr_buf *b, size_t n);

#endif
