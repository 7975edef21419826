/*
 * util/crc32c.c - CRC32C (Castagnoli, reflected polynomial 0x82F63B78), the
 * checksum the store puts on its file headers, batches and index files.
 *
 * Three implementations, picked once at run time (never by -march, so one
 * binary runs on every CPU of its architecture): the SSE4.2 crc32
 * instruction on x86_64, the ARMv8 CRC extension on aarch64, and a
 * slicing-by-8 table everywhere else. Each extends a running CRC with the
 * usual pre- and post-inversion, so kr_crc32c(kr_crc32c(0, a), b) equals the
 * CRC of a followed by b.
 */
#include "util/crc32c.h"

#include <pthread.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "util/byteorder.h"

#if defined(__x86_64__)
#include <nmmintrin.h>
#elif defined(__aarch64__)
#include <arm_acle.h>
#include <sys/auxv.h>
#ifndef HWCAP_CRC32
#define HWCAP_CRC32 (1 << 7)
#endif
#endif

#define POLY 0x82F63B78u

/* ---- slicing-by-8 ---- */

static uint32_t table[8][256];
static pthread_once_t table_once = PTHREAD_ONCE_INIT;

static void table_init(void)
{
    for (uint32_t i = 0; i < 256; i++) {
        uint32_t c = i;
        for (int k = 0; k < 8; k++)
            c = (c >> 1) ^ (POLY & (0u - (c & 1)));
        table[0][i] = c;
    }
    for (uint32_t i = 0; i < 256; i++)
        for (int t = 1; t < 8; t++)
            table[t][i] = (table[t - 1][i] >> 8) ^ table[0][table[t - 1][i] & 0xff];
}

uint32_t kr_crc32c_table(uint32_t crc, const void *buf, size_t n)
{
    const uint8_t *p = buf;
    pthread_once(&table_once, table_init);
    crc = ~crc;
    while (n > 0 && ((uintptr_t)p & 7) != 0) {
        crc = (crc >> 8) ^ table[0][(crc ^ *p++) & 0xff];
        n--;
    }
    while (n >= 8) {
        uint64_t v = kr_get_le64(p) ^ crc;
        crc = table[7][v & 0xff] ^ table[6][(v >> 8) & 0xff] ^ table[5][(v >> 16) & 0xff] ^
              table[4][(v >> 24) & 0xff] ^ table[3][(v >> 32) & 0xff] ^ table[2][(v >> 40) & 0xff] ^
              table[1][(v >> 48) & 0xff] ^ table[0][v >> 56];
        p += 8;
        n -= 8;
    }
    while (n-- > 0)
        crc = (crc >> 8) ^ table[0][(crc ^ *p++) & 0xff];
    return ~crc;
}

/* ---- hardware ---- */

#if defined(__x86_64__)

/*
 * The crc32 instruction takes three cycles, but a new one may start every
 * cycle: one running CRC uses a third of it. So a long input is taken as
 * three streams at once, over three consecutive blocks of `block` bytes
 * (the second and third from a state of 0), and joined: the raw state after
 * A then B is the state after A moved on over |B| zero bytes, XOR the state
 * after B alone (CRCs are linear). Moving a state over a fixed length is
 * linear in its 32 bits: four tables of 256, made once from the moves of
 * each single bit.
 */
#define HW_LONG  8192
#define HW_SHORT 256

static uint32_t shift_long[4][256], shift_short[4][256];
static pthread_once_t shift_once = PTHREAD_ONCE_INIT;

/* The raw state c moved on over n zero bytes (n a multiple of 8). */
__attribute__((target("sse4.2"))) static uint32_t zeros_hw(uint32_t c, size_t n)
{
    uint64_t s = c;
    for (size_t i = 0; i < n / 8; i++)
        s = _mm_crc32_u64(s, 0);
    return (uint32_t)s;
}

static void shift_table(uint32_t t[4][256], size_t n)
{
    uint32_t bit[32];
    for (int i = 0; i < 32; i++)
        bit[i] = zeros_hw(1u << i, n);
    for (int k = 0; k < 4; k++)
        for (uint32_t b = 0; b < 256; b++) {
            uint32_t v = 0;
            for (int i = 0; i < 8; i++)
                if (b & (1u << i))
                    v ^= bit[8 * k + i];
            t[k][b] = v;
        }
}

static void shift_init(void)
{
    shift_table(shift_long, HW_LONG);
    shift_table(shift_short, HW_SHORT);
}

static uint32_t shift(const uint32_t t[4][256], uint32_t c)
{
    return t[0][c & 0xff] ^ t[1][(c >> 8) & 0xff] ^ t[2][(c >> 16) & 0xff] ^ t[3][c >> 24];
}

/* Runs of three blocks of `block` bytes from *pp (8-byte aligned), as long
 * as *np holds one; t moves a state over `block` bytes. @return the raw
 * state after them (*pp and *np past them). */
__attribute__((target("sse4.2"))) static uint64_t
crc_hw3(uint64_t c, const uint8_t **pp, size_t *np, size_t block, const uint32_t t[4][256])
{
    const uint8_t *p = *pp;
    size_t n = *np;
    while (n >= 3 * block) {
        uint64_t c1 = 0, c2 = 0;
        for (size_t i = 0; i < block; i += 8) {
            uint64_t a, b, d;
            memcpy(&a, p + i, 8);
            memcpy(&b, p + block + i, 8);
            memcpy(&d, p + 2 * block + i, 8);
            c = _mm_crc32_u64(c, a);
            c1 = _mm_crc32_u64(c1, b);
            c2 = _mm_crc32_u64(c2, d);
        }
        c = shift(t, (uint32_t)c) ^ (uint32_t)c1;
        c = shift(t, (uint32_t)c) ^ (uint32_t)c2;
        p += 3 * block;
        n -= 3 * block;
    }
    *pp = p;
    *np = n;
    return c;
}

__attribute__((target("sse4.2"))) static uint32_t crc_hw(uint32_t crc, const void *buf, size_t n)
{
    const uint8_t *p = buf;
    uint64_t c = ~crc;
    if (n >= 3 * HW_SHORT) {
        /* Aligned blocks for the long runs; a short input (a batch of one
         * small event) is read unaligned, which x86 allows, rather than
         * spend a crc32 per byte up to the next 8. */
        while (((uintptr_t)p & 7) != 0) {
            c = _mm_crc32_u8((uint32_t)c, *p++);
            n--;
        }
        pthread_once(&shift_once, shift_init);
        c = crc_hw3(c, &p, &n, HW_LONG, shift_long);
        c = crc_hw3(c, &p, &n, HW_SHORT, shift_short);
    }
    while (n >= 8) {
        uint64_t a;
        memcpy(&a, p, 8);
        c = _mm_crc32_u64(c, a);
        p += 8;
        n -= 8;
    }
    if (n >= 4) {
        uint32_t a;
        memcpy(&a, p, 4);
        c = _mm_crc32_u32((uint32_t)c, a);
        p += 4;
        n -= 4;
    }
    while (n-- > 0)
        c = _mm_crc32_u8((uint32_t)c, *p++);
    return ~(uint32_t)c;
}

static int hw_available(void)
{
    __builtin_cpu_init();
    return __builtin_cpu_supports("sse4.2") ? 1 : 0;
}

#define HW_NAME "sse4.2"

#elif defined(__aarch64__)

/* gcc's arm_acle.h declares the CRC intrinsics whatever -march says; older
 * clang's only with +crc on the command line, so use its builtins. */
#if defined(__clang__)
#define CRC_TARGET    __attribute__((target("crc")))
#define CRC32CB(c, v) __builtin_arm_crc32cb((c), (v))
#define CRC32CD(c, v) __builtin_arm_crc32cd((c), (v))
#else
#define CRC_TARGET    __attribute__((target("+crc")))
#define CRC32CB(c, v) __crc32cb((c), (v))
#define CRC32CD(c, v) __crc32cd((c), (v))
#endif

CRC_TARGET static uint32_t crc_hw(uint32_t crc, const void *buf, size_t n)
{
    const uint8_t *p = buf;
    uint32_t c = ~crc;
    while (n > 0 && ((uintptr_t)p & 7) != 0) {
        c = CRC32CB(c, *p++);
        n--;
    }
    while (n >= 8) {
        uint64_t a;
        memcpy(&a, p, 8);
        c = CRC32CD(c, a);
        p += 8;
        n -= 8;
    }
    while (n-- > 0)
        c = CRC32CB(c, *p++);
    return ~c;
}

static int hw_available(void)
{
    return (getauxval(AT_HWCAP) & HWCAP_CRC32) ? 1 : 0;
}

#define HW_NAME "armv8"

#endif

#ifdef HW_NAME
/* 0 = not chosen yet, 1 = hardware, 2 = table. Choosing twice from two
 * threads gives the same answer, so a relaxed atomic is enough. */
static int chosen;

static int use_hw(void)
{
    int c = __atomic_load_n(&chosen, __ATOMIC_RELAXED);
    if (c == 0) {
        c = hw_available() ? 1 : 2;
        __atomic_store_n(&chosen, c, __ATOMIC_RELAXED);
    }
    return c == 1;
}
#endif

uint32_t kr_crc32c(uint32_t crc, const void *p, size_t n)
{
#ifdef HW_NAME
    if (use_hw())
        return crc_hw(crc, p, n);
#endif
    return kr_crc32c_table(crc, p, n);
}

const char *kr_crc32c_impl(void)
{
#ifdef HW_NAME
    if (use_hw())
        return HW_NAME;
#endif
    return "table";
}
