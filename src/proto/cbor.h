/*
 * proto/cbor.h - allocation-free CBOR reading and shortest-form writing.
 *
 * Reading walks an encoded buffer with libcbor's streaming decoder
 * (cbor_stream_decode) one head at a time and never allocates: an item is a
 * view into the caller's bytes. Any well-formed CBOR is accepted - definite or
 * indefinite lengths, any integer width - and every length is checked against
 * the bytes actually present before use. Nesting of indefinite-length items
 * is limited to KR_CBOR_MAX_NEST; definite nesting costs no memory.
 *
 * Writing uses libcbor's cbor_encode_* helpers, which pick the shortest
 * head; the writer only ever emits definite lengths.
 */
#ifndef KR_PROTO_CBOR_H
#define KR_PROTO_CBOR_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "util/buf.h"
#include "util/byteorder.h"

/* Deepest nesting of indefinite-length containers/strings accepted. */
#define KR_CBOR_MAX_NEST 64

typedef enum kr_cbor_kind {
    KR_CBOR_UINT,   /* u = value */
    KR_CBOR_NEGINT, /* value is -1 - u */
    KR_CBOR_BYTES,
    KR_CBOR_TEXT,
    KR_CBOR_ARRAY,
    KR_CBOR_MAP,
    KR_CBOR_TAG,   /* u = tag number; the tagged item follows the head */
    KR_CBOR_FLOAT, /* f = value (half, single or double on the wire) */
    KR_CBOR_FALSE,
    KR_CBOR_TRUE,
    KR_CBOR_NULL,
    KR_CBOR_UNDEF,
    KR_CBOR_SIMPLE /* any other simple value (0..19, 32..255): u = value */
} kr_cbor_kind;

/* A view of one complete encoded item inside a caller's buffer. */
typedef struct kr_cbor_item {
    kr_cbor_kind kind;
    const uint8_t *raw; /* first byte of the item's encoding */
    size_t raw_len;     /* the whole item: head, content, children, break */
    size_t head_len;    /* bytes of the initial head (for containers: where
                           children start is raw + head_len) */
    bool indefinite;    /* indefinite-length string, array or map */
    uint64_t u;         /* UINT/NEGINT/TAG/SIMPLE value; definite ARRAY element
                           count, definite MAP pair count; 0 when indefinite */
    double f;           /* FLOAT */
    const uint8_t *str; /* definite BYTES/TEXT: content; NULL if indefinite */
    size_t str_len;     /* BYTES/TEXT: total content bytes (all chunks) */
} kr_cbor_item;

/*
 * kr_cbor_read - read the one complete item that starts at buf.
 * Bytes after the item are not looked at (*item->raw_len says where it ends).
 * @return 0 on success; -1 when the bytes are not a well-formed item
 *         (truncated, reserved values, a bad break, nesting too deep, an
 *         indefinite string with a chunk of another type, ...).
 */
int kr_cbor_read(const uint8_t *buf, size_t len, kr_cbor_item *item);

/*
 * kr_cbor_read_exact - like kr_cbor_read, but the item must fill buf exactly.
 * @return 0 on success, -1 when malformed or when bytes trail the item.
 */
int kr_cbor_read_exact(const uint8_t *buf, size_t len, kr_cbor_item *item);

/* Iterates over the children of an array or map (for a map: key, value,
 * key, value, ...), the chunks of an indefinite string, or the one item
 * of a tag. */
typedef struct kr_cbor_iter {
    const uint8_t *p;   /* next child */
    const uint8_t *end; /* end of the container's encoding */
    uint64_t left;      /* children left (definite) */
    bool indefinite;
} kr_cbor_iter;

/* Start iterating over a container item read by kr_cbor_read. */
void kr_cbor_iter_init(kr_cbor_iter *it, const kr_cbor_item *container);

/*
 * kr_cbor_iter_open - start iterating over the container (array, map or
 * tag) whose encoding starts at buf, having decoded only its
 * head into *head (whose raw_len is left 0: the end is not known yet).
 * Each kr_cbor_iter_next then reads and checks one child, so every byte is
 * read once, where kr_cbor_read followed by kr_cbor_iter_init reads the
 * children twice. The container is only known to be well-formed once
 * kr_cbor_iter_next has returned 0 (for a map, after an even number of
 * children); kr_cbor_iter_end then gives the byte after it. The opened
 * container does not count towards KR_CBOR_MAX_NEST of its children.
 * @return 0, or -1 when the head is malformed or not a container.
 */
int kr_cbor_iter_open(const uint8_t *buf, size_t len, kr_cbor_item *head, kr_cbor_iter *it);

/* The byte after a container whose kr_cbor_iter_next returned 0. */
const uint8_t *kr_cbor_iter_end(const kr_cbor_iter *it);

/*
 * kr_cbor_iter_next - the next child.
 * @return 1 and *out filled; 0 at the end; -1 if malformed (cannot happen
 *         for an item that kr_cbor_read accepted).
 */
int kr_cbor_iter_next(kr_cbor_iter *it, kr_cbor_item *out);

/*
 * kr_cbor_str_copy - copy the content of a BYTES/TEXT item (joining the
 * chunks of an indefinite one) into dst. At most `cap` bytes are written.
 * @return the full content length (which may exceed cap).
 */
size_t kr_cbor_str_copy(const kr_cbor_item *s, uint8_t *dst, size_t cap);

/* 1 when a TEXT item's content equals the NUL-terminated `lit`, else 0. */
int kr_cbor_text_eq(const kr_cbor_item *s, const char *lit);

/*
 * kr_cbor_map_find - look up a text key in a MAP item; the last occurrence
 * wins (PROTOCOL.md section 1).
 * @return 1 and *value filled; 0 when absent; -1 when the map has a key that
 *         is not text.
 */
int kr_cbor_map_find(const kr_cbor_item *map, const char *key, kr_cbor_item *value);

/* Writers: append one shortest-form head or item. On refusal the buffer's
 * `failed` flag is set; check it once when the message is complete. */
void kr_cbor_put_uint(kr_buf *b, uint64_t v);
void kr_cbor_put_negint(kr_buf *b, uint64_t v); /* encodes -1 - v */
void kr_cbor_put_array(kr_buf *b, size_t n);
void kr_cbor_put_map(kr_buf *b, size_t n);
void kr_cbor_put_bytes(kr_buf *b, const void *p, size_t n);
void kr_cbor_put_text(kr_buf *b, const char *s, size_t n);
void kr_cbor_put_cstr(kr_buf *b, const char *s); /* NUL-terminated text */
void kr_cbor_put_bool(kr_buf *b, bool v);
void kr_cbor_put_null(kr_buf *b);
void kr_cbor_put_raw(kr_buf *b, const void *item, size_t n); /* encoded item */

/* The number of bytes kr_cbor_put_uint would write for v (1, 2, 3, 5 or 9).
 * Inline, as kr_cbor_head: encoders call them per event. */
static inline size_t kr_cbor_uint_size(uint64_t v)
{
    if (v < 24)
        return 1;
    if (v <= UINT8_MAX)
        return 2;
    if (v <= UINT16_MAX)
        return 3;
    if (v <= UINT32_MAX)
        return 5;
    return 9;
}

/* CBOR major types, for kr_cbor_head. */
#define KR_CBOR_MAJOR_UINT   0
#define KR_CBOR_MAJOR_NEGINT 1
#define KR_CBOR_MAJOR_BYTES  2
#define KR_CBOR_MAJOR_TEXT   3
#define KR_CBOR_MAJOR_ARRAY  4
#define KR_CBOR_MAJOR_MAP    5

/*
 * kr_cbor_head - write the shortest head of major type `major` (0..7) with
 * argument v at p, which has room for kr_cbor_uint_size(v) bytes (at most
 * 9): for an encoder that reserved an item's whole size at once.
 * @return the bytes written.
 */
static inline size_t kr_cbor_head(uint8_t *p, unsigned major, uint64_t v)
{
    uint8_t m = (uint8_t)(major << 5);
    size_t n = kr_cbor_uint_size(v);
    if (n == 1) {
        p[0] = (uint8_t)(m | v);
        return 1;
    }
    /* 24..27: an argument of 1, 2, 4 or 8 bytes, big-endian, stored
     * whole rather than byte by byte: encoders write heads per event */
    switch (n) {
    case 2:
        p[0] = (uint8_t)(m | 24);
        p[1] = (uint8_t)v;
        break;
    case 3:
        p[0] = (uint8_t)(m | 25);
        kr_put_be16(p + 1, (uint16_t)v);
        break;
    case 5:
        p[0] = (uint8_t)(m | 26);
        kr_put_be32(p + 1, (uint32_t)v);
        break;
    default:
        p[0] = (uint8_t)(m | 27);
        kr_put_be64(p + 1, v);
        break;
    }
    return n;
}

#endif
