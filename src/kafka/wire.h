/*
 * kafka/wire.h - the primitive types of the Kafka protocol: a bounded reader
 * and writers onto a kr_buf. No I/O.
 *
 * Every number is big-endian. Strings carry an int16 length, bytes an int32
 * length, arrays an int32 count; -1 is null where the field allows it. Record
 * fields use varints: unsigned (32 bits, 7 bits a byte, low bits first),
 * zigzag varint (int32) and zigzag varlong (int64). Flexible versions (compact
 * lengths, tagged fields) are not spoken here: krappy keeps to the
 * non-flexible versions of each API.
 *
 * The reader never reads past its end and has one sticky error: the first
 * failure records a static phrase in `err` and moves the reader to its end,
 * so every later read returns 0 / an empty value and a decoder can read a
 * whole structure and check once. Every length is validated against the bytes
 * that are left before it is used; an array count against the least number of
 * bytes its elements can take.
 *
 * The writers append to a kr_buf and inherit its rule: a refused append sets
 * the buffer's `failed` flag, and the encoder checks once at the end. A value
 * the wire cannot carry (a string over 32767 bytes, a negative length other
 * than -1) also sets `failed`.
 *
 * This header is the kafka layer's one include of the byte buffer; the other
 * kafka files take kr_buf from here.
 */
#ifndef KR_KAFKA_WIRE_H
#define KR_KAFKA_WIRE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "util/buf.h"

/* A string as it is on the wire: `len` bytes at `ptr` (not NUL-terminated);
 * len -1 is null (ptr NULL). Decoded strings point into the input. */
typedef struct kr_kafka_str {
    const char *ptr;
    int32_t len;
} kr_kafka_str;

/* Bytes as on the wire; len -1 is null. */
typedef struct kr_kafka_bytes {
    const uint8_t *ptr;
    int32_t len;
} kr_kafka_bytes;

/* A bounded reader over borrowed bytes, with one sticky error. */
typedef struct kr_kafka_rd {
    const uint8_t *p;   /* next byte */
    const uint8_t *end; /* one past the last byte */
    const char *err;    /* first failure ("truncated", ...); NULL while none */
} kr_kafka_rd;

/* Start reading n bytes at p (borrowed; must outlive the reader and what it
 * returns). */
void kr_kafka_rd_init(kr_kafka_rd *r, const void *p, size_t n);

/* Bytes not read yet (0 once failed). */
static inline size_t kr_kafka_rd_left(const kr_kafka_rd *r)
{
    return (size_t)(r->end - r->p);
}

/* true while no read has failed. */
static inline bool kr_kafka_rd_ok(const kr_kafka_rd *r)
{
    return r->err == NULL;
}

/* Record a failure (`why` is a static phrase) unless one is recorded already;
 * the reader then has nothing left. */
void kr_kafka_rd_fail(kr_kafka_rd *r, const char *why);

/* Fixed-width integers. On failure they return 0. */
int8_t kr_kafka_rd_i8(kr_kafka_rd *r);
int16_t kr_kafka_rd_i16(kr_kafka_rd *r);
int32_t kr_kafka_rd_i32(kr_kafka_rd *r);
int64_t kr_kafka_rd_i64(kr_kafka_rd *r);
uint32_t kr_kafka_rd_u32(kr_kafka_rd *r);

/*
 * Varints. More than 5 (10 for varlong) bytes, or a value that does not fit
 * 32 (64) bits, fails with "bad varint". Inline for the one-byte ones, as
 * most of a record's are (its deltas, its header count, short keys'
 * lengths: a Produce reads six per record); kr_kafka_rd_uvar_long reads
 * the others (at most `bits` bits).
 */
uint64_t kr_kafka_rd_uvar_long(kr_kafka_rd *r, unsigned bits);

static inline uint64_t kr_kafka_rd_uvar(kr_kafka_rd *r, unsigned bits)
{
    if (r->p < r->end && *r->p < 0x80)
        return *r->p++;
    return kr_kafka_rd_uvar_long(r, bits);
}

static inline uint32_t kr_kafka_rd_uvarint(kr_kafka_rd *r)
{
    return (uint32_t)kr_kafka_rd_uvar(r, 32);
}

static inline int32_t kr_kafka_rd_varint(kr_kafka_rd *r)
{
    uint32_t u = (uint32_t)kr_kafka_rd_uvar(r, 32);
    return (int32_t)((u >> 1) ^ (0u - (u & 1)));
}

static inline int64_t kr_kafka_rd_varlong(kr_kafka_rd *r)
{
    uint64_t u = kr_kafka_rd_uvar(r, 64);
    return (int64_t)((u >> 1) ^ (0u - (u & 1)));
}

/* `n` raw bytes, borrowed from the input; NULL on failure (and for n 0). */
const uint8_t *kr_kafka_rd_raw(kr_kafka_rd *r, size_t n);

/*
 * kr_kafka_rd_str / kr_kafka_rd_bytes - an int16- / int32-length string or
 * bytes. Length -1 is null when `nullable`, else a failure; other negative
 * lengths and lengths beyond the input fail. The result points into the input.
 */
kr_kafka_str kr_kafka_rd_str(kr_kafka_rd *r, bool nullable);
kr_kafka_bytes kr_kafka_rd_bytes(kr_kafka_rd *r, bool nullable);

/* Bytes with a zigzag-varint length (-1 = null), as record keys, values and
 * header values are sent. */
kr_kafka_bytes kr_kafka_rd_vbytes(kr_kafka_rd *r);

/*
 * kr_kafka_rd_count - an int32 array count. -1 is null (returned as -1) when
 * `nullable`; a count whose elements, at `min_elem` bytes each (at least 1
 * is assumed), cannot fit in what is left fails.
 * @return the count, -1 for null, 0 on failure.
 */
int32_t kr_kafka_rd_count(kr_kafka_rd *r, bool nullable, size_t min_elem);

/* Zigzag for varlongs: 0, -1, 1, -2, ... become 0, 1, 2, 3, ... */
static inline uint64_t kr_kafka_zigzag64(int64_t v)
{
    return ((uint64_t)v << 1) ^ (0u - ((uint64_t)v >> 63));
}

/* Bytes the unsigned varint of u takes (1..10): the one- and two-byte ones
 * (a record's lengths and deltas, mostly) by a comparison. */
static inline size_t kr_kafka_uvar_size(uint64_t u)
{
    if (u < 0x80)
        return 1;
    if (u < 0x4000)
        return 2;
    return 1 + (size_t)(63 - __builtin_clzll(u)) / 7;
}

/* The unsigned varint of u at p (room for 10 bytes checked by the caller):
 * the one- and two-byte ones without a loop. @return the byte after it. */
static inline uint8_t *kr_kafka_uvar_put(uint8_t *p, uint64_t u)
{
    if (u < 0x80) {
        *p = (uint8_t)u;
        return p + 1;
    }
    if (u < 0x4000) {
        p[0] = (uint8_t)(u | 0x80);
        p[1] = (uint8_t)(u >> 7);
        return p + 2;
    }
    while (u >= 0x80) {
        *p++ = (uint8_t)(u | 0x80);
        u >>= 7;
    }
    *p++ = (uint8_t)u;
    return p;
}

/* Writers (big-endian, varints as above). */
void kr_kafka_put_i8(kr_buf *b, int8_t v);
void kr_kafka_put_i16(kr_buf *b, int16_t v);
void kr_kafka_put_i32(kr_buf *b, int32_t v);
void kr_kafka_put_i64(kr_buf *b, int64_t v);
void kr_kafka_put_u32(kr_buf *b, uint32_t v);
void kr_kafka_put_uvarint(kr_buf *b, uint32_t v);
void kr_kafka_put_varint(kr_buf *b, int32_t v);
void kr_kafka_put_varlong(kr_buf *b, int64_t v);

/* Write the varint / varlong of v to out (at most 5 / 10 bytes, which the
 * caller has room for). @return bytes written. */
size_t kr_kafka_varint_write(uint8_t out[5], int32_t v);
size_t kr_kafka_varlong_write(uint8_t out[10], int64_t v);

/* Bytes a varint / varlong of v takes (1..5 / 1..10). */
size_t kr_kafka_varint_size(int32_t v);
size_t kr_kafka_varlong_size(int64_t v);

/* A string (int16 length; len -1 writes null, len over 32767 fails), bytes
 * (int32 length; -1 null) and varint-length bytes (-1 null). */
void kr_kafka_put_str(kr_buf *b, const char *p, int32_t len);
void kr_kafka_put_bytes(kr_buf *b, const void *p, int32_t len);
void kr_kafka_put_vbytes(kr_buf *b, const void *p, int32_t len);

/* A NUL-terminated string (NULL writes null). */
void kr_kafka_put_cstr(kr_buf *b, const char *s);

/* Overwrite `width` (1..8) bytes at `at` with the low bytes of v,
 * big-endian; nothing happens unless they lie within b->len. */
void kr_kafka_patch_be(kr_buf *b, size_t at, uint64_t v, size_t width);

/* A C string as a kr_kafka_str (NULL gives null). */
kr_kafka_str kr_kafka_cstr(const char *s);

#endif
