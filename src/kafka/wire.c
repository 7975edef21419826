/*
 * kafka/wire.c - the Kafka protocol's primitive types (see wire.h).
 */
#include "kafka/wire.h"

#include <string.h>

void kr_kafka_rd_init(kr_kafka_rd *r, const void *p, size_t n)
{
    r->p = p;
    r->end = p != NULL ? r->p + n : NULL;
    r->err = NULL;
}

void kr_kafka_rd_fail(kr_kafka_rd *r, const char *why)
{
    if (r->err == NULL)
        r->err = why;
    r->p = r->end;
}

/* The next n bytes, or NULL (and the reader failed) when fewer are left. */
static const uint8_t *take(kr_kafka_rd *r, size_t n)
{
    if (kr_kafka_rd_left(r) < n) {
        kr_kafka_rd_fail(r, "truncated");
        return NULL;
    }
    const uint8_t *p = r->p;
    r->p += n;
    return p;
}

static uint64_t get_be(const uint8_t *p, size_t n)
{
    uint64_t v = 0;
    for (size_t i = 0; i < n; i++)
        v = v << 8 | p[i];
    return v;
}

int8_t kr_kafka_rd_i8(kr_kafka_rd *r)
{
    const uint8_t *p = take(r, 1);
    return p ? (int8_t)p[0] : 0;
}

int16_t kr_kafka_rd_i16(kr_kafka_rd *r)
{
    const uint8_t *p = take(r, 2);
    return p ? (int16_t)(uint16_t)get_be(p, 2) : 0;
}

int32_t kr_kafka_rd_i32(kr_kafka_rd *r)
{
    return (int32_t)kr_kafka_rd_u32(r);
}

uint32_t kr_kafka_rd_u32(kr_kafka_rd *r)
{
    const uint8_t *p = take(r, 4);
    return p ? (uint32_t)get_be(p, 4) : 0;
}

int64_t kr_kafka_rd_i64(kr_kafka_rd *r)
{
    const uint8_t *p = take(r, 8);
    return p ? (int64_t)get_be(p, 8) : 0;
}

/*
 * An unsigned varint of at most `bits` bits: 7 bits a byte, low first, the
 * top bit saying another byte follows. A value that needs more bytes than
 * `bits` allows, or sets bits above `bits` in its last byte, is refused
 * rather than silently truncated.
 */
uint64_t kr_kafka_rd_uvar_long(kr_kafka_rd *r, unsigned bits)
{
    uint64_t v = 0;
    for (unsigned shift = 0; shift < bits; shift += 7) {
        const uint8_t *p = take(r, 1);
        if (p == NULL)
            return 0;
        uint64_t part = *p & 0x7f;
        if (bits - shift < 7 && (part >> (bits - shift)) != 0)
            break;
        v |= part << shift;
        if ((*p & 0x80) == 0)
            return v;
    }
    kr_kafka_rd_fail(r, "bad varint");
    return 0;
}

const uint8_t *kr_kafka_rd_raw(kr_kafka_rd *r, size_t n)
{
    return n == 0 ? NULL : take(r, n);
}

/* The content of a string or bytes field whose length was just read. */
static const uint8_t *rd_content(kr_kafka_rd *r, int32_t len, bool nullable, int32_t *out_len)
{
    *out_len = 0;
    if (len == -1 && nullable) {
        *out_len = -1;
        return NULL;
    }
    if (len < 0) {
        kr_kafka_rd_fail(r, len == -1 ? "null where a value is required" : "negative length");
        return NULL;
    }
    if ((size_t)len > kr_kafka_rd_left(r)) {
        kr_kafka_rd_fail(r, "length beyond the end of the input");
        return NULL;
    }
    *out_len = len;
    if (len == 0) /* r->p may be NULL: no arithmetic on it */
        return (const uint8_t *)"";
    const uint8_t *p = r->p;
    r->p += len;
    return p;
}

kr_kafka_str kr_kafka_rd_str(kr_kafka_rd *r, bool nullable)
{
    kr_kafka_str s;
    int16_t len = kr_kafka_rd_i16(r);
    s.ptr = (const char *)rd_content(r, kr_kafka_rd_ok(r) ? len : 0, nullable, &s.len);
    return s;
}

kr_kafka_bytes kr_kafka_rd_bytes(kr_kafka_rd *r, bool nullable)
{
    kr_kafka_bytes s;
    int32_t len = kr_kafka_rd_i32(r);
    s.ptr = rd_content(r, kr_kafka_rd_ok(r) ? len : 0, nullable, &s.len);
    return s;
}

kr_kafka_bytes kr_kafka_rd_vbytes(kr_kafka_rd *r)
{
    kr_kafka_bytes s;
    int32_t len = kr_kafka_rd_varint(r);
    s.ptr = rd_content(r, kr_kafka_rd_ok(r) ? len : 0, true, &s.len);
    return s;
}

int32_t kr_kafka_rd_count(kr_kafka_rd *r, bool nullable, size_t min_elem)
{
    int32_t n = kr_kafka_rd_i32(r);
    if (!kr_kafka_rd_ok(r))
        return 0;
    if (n == -1 && nullable)
        return -1;
    if (n < 0) {
        kr_kafka_rd_fail(r, n == -1 ? "null array where one is required" : "negative count");
        return 0;
    }
    if (min_elem == 0)
        min_elem = 1;
    if ((size_t)n > kr_kafka_rd_left(r) / min_elem) {
        kr_kafka_rd_fail(r, "array count beyond the end of the input");
        return 0;
    }
    return n;
}

/* ---- writers ---- */

static void put_be(kr_buf *b, uint64_t v, size_t n)
{
    uint8_t tmp[8];
    for (size_t i = 0; i < n; i++)
        tmp[i] = (uint8_t)(v >> (8 * (n - 1 - i)));
    kr_buf_append(b, tmp, n);
}

void kr_kafka_put_i8(kr_buf *b, int8_t v)
{
    put_be(b, (uint8_t)v, 1);
}

void kr_kafka_put_i16(kr_buf *b, int16_t v)
{
    put_be(b, (uint16_t)v, 2);
}

void kr_kafka_put_i32(kr_buf *b, int32_t v)
{
    put_be(b, (uint32_t)v, 4);
}

void kr_kafka_put_u32(kr_buf *b, uint32_t v)
{
    put_be(b, v, 4);
}

void kr_kafka_put_i64(kr_buf *b, int64_t v)
{
    put_be(b, (uint64_t)v, 8);
}

/* Write unsigned varint u to out (room for 10 bytes). @return its size. */
static size_t uvar_write(uint8_t *out, uint64_t u)
{
    return (size_t)(kr_kafka_uvar_put(out, u) - out);
}

static void put_uvar(kr_buf *b, uint64_t v)
{
    uint8_t tmp[10];
    kr_buf_append(b, tmp, uvar_write(tmp, v));
}

void kr_kafka_put_uvarint(kr_buf *b, uint32_t v)
{
    put_uvar(b, v);
}

/* Zigzag: 0, -1, 1, -2, ... become 0, 1, 2, 3, ... (the sign bit spread
 * over the word without shifting a negative number). */
static uint32_t zz32(int32_t v)
{
    return ((uint32_t)v << 1) ^ (0u - ((uint32_t)v >> 31));
}

size_t kr_kafka_varint_write(uint8_t out[5], int32_t v)
{
    return uvar_write(out, zz32(v));
}

size_t kr_kafka_varlong_write(uint8_t out[10], int64_t v)
{
    return uvar_write(out, kr_kafka_zigzag64(v));
}

void kr_kafka_put_varint(kr_buf *b, int32_t v)
{
    put_uvar(b, zz32(v));
}

void kr_kafka_put_varlong(kr_buf *b, int64_t v)
{
    put_uvar(b, kr_kafka_zigzag64(v));
}

size_t kr_kafka_varint_size(int32_t v)
{
    return kr_kafka_uvar_size(zz32(v));
}

size_t kr_kafka_varlong_size(int64_t v)
{
    return kr_kafka_uvar_size(kr_kafka_zigzag64(v));
}

/* Mark a value the wire cannot carry: the encoder will see `failed`. */
static void refuse(kr_buf *b)
{
    b->failed = true;
}

/* A length (by put_len) then the content; -1 is null, with no content.
 * Lengths below -1 or above max are refused. */
static void put_counted(kr_buf *b, const void *p, int32_t len, int32_t max,
                        void (*put_len)(kr_buf *, int32_t))
{
    if (len < -1 || len > max) {
        refuse(b);
        return;
    }
    put_len(b, len);
    if (len > 0)
        kr_buf_append(b, p, (size_t)len);
}

static void put_len16(kr_buf *b, int32_t len)
{
    kr_kafka_put_i16(b, (int16_t)len);
}

void kr_kafka_put_str(kr_buf *b, const char *p, int32_t len)
{
    put_counted(b, p, len, INT16_MAX, put_len16);
}

void kr_kafka_put_bytes(kr_buf *b, const void *p, int32_t len)
{
    put_counted(b, p, len, INT32_MAX, kr_kafka_put_i32);
}

void kr_kafka_put_vbytes(kr_buf *b, const void *p, int32_t len)
{
    put_counted(b, p, len, INT32_MAX, kr_kafka_put_varint);
}

kr_kafka_str kr_kafka_cstr(const char *s)
{
    kr_kafka_str k = {s, -1};
    if (s != NULL) {
        size_t n = strlen(s);
        k.len = n > INT32_MAX ? INT32_MAX : (int32_t)n;
    }
    return k;
}

void kr_kafka_put_cstr(kr_buf *b, const char *s)
{
    kr_kafka_str k = kr_kafka_cstr(s);
    kr_kafka_put_str(b, k.ptr, k.len);
}

void kr_kafka_patch_be(kr_buf *b, size_t at, uint64_t v, size_t width)
{
    if (b->data == NULL || width == 0 || width > 8 || at > b->len || width > b->len - at)
        return;
    for (size_t i = 0; i < width; i++)
        b->data[at + i] = (uint8_t)(v >> (8 * (width - 1 - i)));
}
