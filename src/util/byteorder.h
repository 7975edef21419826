/*
 * util/byteorder.h - fixed-width integers read from and written to byte
 * arrays in a given byte order, whatever the host's.
 *
 * Network and disk formats are big-endian (frames, file headers, Kafka's
 * protocol); CRC32C's slicing loop reads little-endian words. The pointers
 * need no alignment: the bytes are assembled one by one, which compilers turn
 * into one load (and a byte swap where the orders differ).
 */
#ifndef KR_UTIL_BYTEORDER_H
#define KR_UTIL_BYTEORDER_H

#include <stdint.h>

static inline uint16_t kr_get_be16(const uint8_t *p)
{
    return (uint16_t)((unsigned)p[0] << 8 | (unsigned)p[1]);
}

static inline void kr_put_be16(uint8_t *p, uint16_t v)
{
    p[0] = (uint8_t)(v >> 8);
    p[1] = (uint8_t)v;
}

static inline uint32_t kr_get_be32(const uint8_t *p)
{
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | (uint32_t)p[3];
}

static inline void kr_put_be32(uint8_t *p, uint32_t v)
{
    p[0] = (uint8_t)(v >> 24);
    p[1] = (uint8_t)(v >> 16);
    p[2] = (uint8_t)(v >> 8);
    p[3] = (uint8_t)v;
}

static inline uint64_t kr_get_be64(const uint8_t *p)
{
    return (uint64_t)kr_get_be32(p) << 32 | kr_get_be32(p + 4);
}

static inline void kr_put_be64(uint8_t *p, uint64_t v)
{
    kr_put_be32(p, (uint32_t)(v >> 32));
    kr_put_be32(p + 4, (uint32_t)v);
}

static inline uint32_t kr_get_le32(const uint8_t *p)
{
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

static inline void kr_put_le32(uint8_t *p, uint32_t v)
{
    p[0] = (uint8_t)v;
    p[1] = (uint8_t)(v >> 8);
    p[2] = (uint8_t)(v >> 16);
    p[3] = (uint8_t)(v >> 24);
}

static inline uint64_t kr_get_le64(const uint8_t *p)
{
    return (uint64_t)p[0] | (uint64_t)p[1] << 8 | (uint64_t)p[2] << 16 | (uint64_t)p[3] << 24 |
           (uint64_t)p[4] << 32 | (uint64_t)p[5] << 40 | (uint64_t)p[6] << 48 |
           (uint64_t)p[7] << 56;
}

#endif
