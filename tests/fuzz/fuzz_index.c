/*
 * tests/fuzz/fuzz_index.c - fuzz the BASE.idx loader (kr_index_decode, the
 * parser kr_index_load runs on a file's bytes) and hold it to its promises.
 *
 * Input: byte 0 is a mode, the rest is the file:
 *   bit 0  fix the CRC, so mutations get past it to the sanity checks
 *   bit 1  load it as the index of the segment its own header names (base
 *          and size from bytes 8 and 24), so they match; else base 0 and
 *          size 1 MiB
 *   bit 2  fix the count to the length, when the length is a whole number
 *          of entries
 * Then: a refused file leaves the output untouched (errno EINVAL); an
 * accepted one has exactly the entries its length says, strictly
 * ascending, inside the segment's offsets and bytes; kr_index_find finds
 * each entry's position from its offset; and encoding what was decoded
 * gives back the input byte for byte. A broken promise traps.
 */
#include <errno.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "fuzz_check.h"
#include "store/index.h"
#include "util/byteorder.h"
#include "util/crc32c.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1)
        return 0;
    uint8_t mode = data[0];
    size_t len = size - 1;
    uint8_t *file = malloc(len ? len : 1);
    FUZZ_CHECK(file != NULL);
    memcpy(file, data + 1, len);

    uint64_t base = 0, seg_size = 1u << 20;
    if (len >= KR_INDEX_HEADER_BYTES) {
        if ((mode & 4) && (len - KR_INDEX_HEADER_BYTES) % KR_INDEX_ENTRY_BYTES == 0)
            kr_put_be32(file + 40,
                        (uint32_t)((len - KR_INDEX_HEADER_BYTES) / KR_INDEX_ENTRY_BYTES));
        if (mode & 2) {
            base = kr_get_be64(file + 8);
            seg_size = kr_get_be64(file + 24);
        }
        if (mode & 1) {
            memset(file + 44, 0, 4);
            kr_put_be32(file + 44, kr_crc32c(0, file, len));
        }
    }

    kr_index ix = {0};
    kr_index_meta meta = {.next = 12345, .max_ts = 678};
    errno = 0;
    int rc = kr_index_decode(file, len, base, seg_size, &meta, &ix);
    if (rc != 0) {
        FUZZ_CHECK(rc == -1);
        FUZZ_CHECK(errno == EINVAL || errno == ENOMEM);
        FUZZ_CHECK(ix.e == NULL && ix.n == 0 && ix.cap == 0);
        FUZZ_CHECK(meta.next == 12345 && meta.max_ts == 678);
        free(file);
        return 0;
    }
    FUZZ_CHECK(len == kr_index_encoded_len(ix.n));
    FUZZ_CHECK(meta.next >= base);
    for (size_t i = 0; i < ix.n; i++) {
        FUZZ_CHECK(ix.e[i].offset >= base && ix.e[i].offset < meta.next);
        FUZZ_CHECK(ix.e[i].pos >= KR_SEG_HEADER_BYTES && ix.e[i].pos < seg_size);
        if (i > 0)
            FUZZ_CHECK(ix.e[i].offset > ix.e[i - 1].offset && ix.e[i].pos > ix.e[i - 1].pos);
        FUZZ_CHECK(kr_index_find(&ix, ix.e[i].offset) == ix.e[i].pos);
    }
    if (ix.n > 0 && ix.e[0].offset > 0)
        FUZZ_CHECK(kr_index_find(&ix, ix.e[0].offset - 1) == KR_SEG_HEADER_BYTES);
    uint8_t *again = malloc(len);
    FUZZ_CHECK(again != NULL);
    kr_index_encode(again, base, &meta, seg_size, &ix);
    FUZZ_CHECK(memcmp(again, file, len) == 0);
    free(again);
    kr_index_free(&ix);
    free(file);
    return 0;
}
