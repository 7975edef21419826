/*
 * util/crc32c.h - CRC32C (Castagnoli), the checksum of every on-disk header
 * and batch.
 */
#ifndef KR_UTIL_CRC32C_H
#define KR_UTIL_CRC32C_H

#include <stddef.h>
#include <stdint.h>

/* CRC32C (Castagnoli), extending `crc` (start with 0). Hardware (SSE4.2 or
 * ARMv8 CRC) when the CPU has it, chosen at run time; else a table. */
uint32_t kr_crc32c(uint32_t crc, const void *p, size_t n);

/* Which implementation kr_crc32c uses: "sse4.2", "armv8" or "table". */
const char *kr_crc32c_impl(void);

/* The portable slicing-by-8 CRC32C, whatever the CPU has: the fallback of
 * kr_crc32c, exposed so tests can hold the hardware path against it. */
uint32_t kr_crc32c_table(uint32_t crc, const void *p, size_t n);

#endif
