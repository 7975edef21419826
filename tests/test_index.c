/*
 * tests/test_index.c - the sparse offset index of a segment: hints added
 * at the interval, found, cut and copied; BASE.idx written and loaded
 * back; and every way a BASE.idx can be wrong refused by the decoder.
 */
#include <errno.h>
#include <fcntl.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "store/index.h"
#include "util/byteorder.h"
#include "util/crc32c.h"

#include "tmpdir.h"

static void test_add_find_cut(void **state)
{
    (void)state;
    kr_index ix = {0};
    assert_int_equal(kr_index_find(&ix, 0), KR_SEG_HEADER_BYTES);
    /* Batches of 1000 bytes and 10 events: a hint every 5th batch. */
    for (uint64_t b = 0; b < 100; b++)
        kr_index_add(&ix, b * 10, KR_SEG_HEADER_BYTES + b * 1000);
    assert_int_equal(ix.n, 20);
    for (size_t i = 1; i < ix.n; i++)
        assert_true(ix.e[i].pos - ix.e[i - 1].pos >= KR_INDEX_INTERVAL);
    assert_int_equal(kr_index_find(&ix, 0), KR_SEG_HEADER_BYTES);
    assert_int_equal(kr_index_find(&ix, 49), KR_SEG_HEADER_BYTES);
    assert_int_equal(kr_index_find(&ix, 50), KR_SEG_HEADER_BYTES + 5000);
    assert_int_equal(kr_index_find(&ix, 999), KR_SEG_HEADER_BYTES + 95000);
    assert_int_equal(kr_index_find(&ix, UINT64_MAX), KR_SEG_HEADER_BYTES + 95000);

    kr_index copy = {0};
    assert_int_equal(kr_index_copy(&copy, &ix), 0);
    assert_int_equal(copy.n, ix.n);
    assert_memory_equal(copy.e, ix.e, ix.n * sizeof *ix.e);

    kr_index_cut(&ix, KR_SEG_HEADER_BYTES + 5000); /* the file was cut there */
    assert_int_equal(ix.n, 1);
    assert_int_equal(kr_index_find(&ix, 999), KR_SEG_HEADER_BYTES);
    kr_index_add(&ix, 50, KR_SEG_HEADER_BYTES + 5000); /* hints resume after a cut */
    assert_int_equal(ix.n, 2);

    kr_index empty = {0};
    assert_int_equal(kr_index_copy(&copy, &empty), 0);
    assert_int_equal(copy.n, 0);
    kr_index_free(&copy);
    kr_index_free(&ix);
    kr_index_free(&ix); /* twice is fine */
    kr_index_free(NULL);
}

static void test_file_name(void **state)
{
    (void)state;
    char name[KR_INDEX_NAME_BYTES];
    kr_index_file_name(name, 1234);
    assert_string_equal(name, "00000000000000001234.idx");
}

/* An index of `n` hints 1000 bytes and 10 offsets apart, for a segment of
 * base 500, as bytes (written by kr_index_write, read back). */
static uint8_t *index_bytes(const char *dir, size_t n, size_t *len)
{
    kr_index ix = {0};
    for (size_t i = 0; i < n; i++)
        kr_index_add(&ix, 500 + i * 10, KR_SEG_HEADER_BYTES + i * KR_INDEX_INTERVAL);
    int dfd = open(dir, O_RDONLY | O_DIRECTORY);
    assert_true(dfd >= 0);
    kr_index_meta meta = {.next = 500 + n * 10, .max_ts = 77};
    assert_int_equal(kr_index_write(dfd, 500, &meta, 1u << 20, &ix), 0);
    kr_index_free(&ix);
    char name[KR_INDEX_NAME_BYTES];
    kr_index_file_name(name, 500);
    int fd = openat(dfd, name, O_RDONLY);
    assert_true(fd >= 0);
    *len = KR_INDEX_HEADER_BYTES + n * KR_INDEX_ENTRY_BYTES;
    uint8_t *b = malloc(*len + 1);
    assert_non_null(b);
    assert_int_equal(read(fd, b, *len + 1), (ssize_t)*len);
    close(fd);
    close(dfd);
    return b;
}

static void test_write_load(void **state)
{
    (void)state;
    char dir[64];
    snprintf(dir, sizeof dir, "%s/krappy-index-XXXXXX", kr_test_tmpdir());
    assert_non_null(mkdtemp(dir));
    size_t len;
    free(index_bytes(dir, 30, &len));

    int dfd = open(dir, O_RDONLY | O_DIRECTORY);
    kr_index ix = {0};
    kr_index_meta meta;
    assert_int_equal(kr_index_load(dfd, 500, 1u << 20, &meta, &ix), 0);
    assert_int_equal(meta.next, 800);
    assert_int_equal(meta.max_ts, 77);
    assert_int_equal(ix.n, 30);
    assert_int_equal(ix.e[29].offset, 790);
    assert_int_equal(ix.e[29].pos, KR_SEG_HEADER_BYTES + 29 * KR_INDEX_INTERVAL);
    kr_index_free(&ix);
    /* Another segment size: not this segment's index. */
    assert_int_equal(kr_index_load(dfd, 500, 1u << 19, &meta, &ix), -1);
    assert_int_equal(errno, EINVAL);
    assert_null(ix.e);
    /* No file. */
    assert_int_equal(kr_index_load(dfd, 501, 1u << 20, &meta, &ix), -1);
    assert_int_equal(errno, ENOENT);
    /* No temporary file is left behind. */
    assert_int_equal(faccessat(dfd, "00000000000000000500.idx.tmp", F_OK, 0), -1);
    close(dfd);
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
    assert_int_equal(system(cmd), 0);
}

/* Overwrite a u64 at `at` and fix the CRC, so only the sanity checks can
 * refuse it. */
static void put_u64_recrc(uint8_t *b, size_t len, size_t at, uint64_t v)
{
    kr_put_be64(b + at, v);
    memset(b + 44, 0, 4);
    kr_put_be32(b + 44, kr_crc32c(0, b, len));
}

static int decode(const uint8_t *b, size_t len)
{
    kr_index ix = {0};
    kr_index_meta meta;
    int rc = kr_index_decode(b, len, 500, 1u << 20, &meta, &ix);
    if (rc == 0)
        assert_int_equal(meta.next, 540);
    kr_index_free(&ix);
    return rc;
}

static void test_decode_refuses(void **state)
{
    (void)state;
    char dir[64];
    snprintf(dir, sizeof dir, "%s/krappy-index-XXXXXX", kr_test_tmpdir());
    assert_non_null(mkdtemp(dir));
    size_t len;
    uint8_t *good = index_bytes(dir, 4, &len), *b = malloc(len);
    assert_non_null(b);
    assert_int_equal(decode(good, len), 0);

    /* Any flipped bit: the CRC (or the magic) says no. */
    for (size_t i = 0; i < len; i++) {
        memcpy(b, good, len);
        b[i] ^= 0x04;
        assert_int_equal(decode(b, len), -1);
    }
    /* Short, and one entry short with the count saying four. */
    assert_int_equal(decode(good, KR_INDEX_HEADER_BYTES - 1), -1);
    memcpy(b, good, len);
    put_u64_recrc(b, len - KR_INDEX_ENTRY_BYTES, 8, 500);
    assert_int_equal(decode(b, len - KR_INDEX_ENTRY_BYTES), -1);
    /* Another base; next below the base. */
    memcpy(b, good, len);
    put_u64_recrc(b, len, 8, 501);
    assert_int_equal(decode(b, len), -1);
    memcpy(b, good, len);
    put_u64_recrc(b, len, 16, 499);
    assert_int_equal(decode(b, len), -1);
    /* Entries: an offset at or past next, below the base, out of order; a
     * position inside the segment header, at or past the size, repeated. */
    const size_t e0 = KR_INDEX_HEADER_BYTES, e1 = e0 + KR_INDEX_ENTRY_BYTES;
    struct {
        size_t at;
        uint64_t v;
    } bad[] = {{e1, 540}, {e0, 499}, {e1, 500}, {e0 + 8, 8}, {e1 + 8, 1u << 20}, {e1 + 8, 32}};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        memcpy(b, good, len);
        put_u64_recrc(b, len, bad[i].at, bad[i].v);
        assert_int_equal(decode(b, len), -1);
    }
    /* ... and the same kind of edit that stays inside the rules is fine. */
    memcpy(b, good, len);
    put_u64_recrc(b, len, e1, 505);
    assert_int_equal(decode(b, len), 0);
    free(good);
    free(b);
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
    assert_int_equal(system(cmd), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_add_find_cut),
        cmocka_unit_test(test_file_name),
        cmocka_unit_test(test_write_load),
        cmocka_unit_test(test_decode_refuses),
    };
    return cmocka_run_group_tests_name("index", tests, NULL, NULL);
}
