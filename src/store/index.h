/*
 * store/index.h - the sparse offset index of a segment: hints "the batch
 * with base offset O starts at byte P of the segment file", one at least
 * every KR_INDEX_INTERVAL bytes. The loop keeps one per segment (to find
 * the batch holding an offset without reading every batch header before
 * it); the storage writer keeps one for the segment it appends to and
 * leaves it behind as BASE.idx when the segment is closed, so the next
 * start-up need not scan the closed segment.
 *
 * BASE.idx is a hint: CRC-checked and sanity-checked on load, and when it
 * is missing or wrong the segment is scanned instead. Its format (all
 * integers big-endian):
 *
 *     0  magic "KRAPPYIX"                           8 bytes
 *     8  base offset u64 (the segment's)
 *    16  next u64 (offset after the segment's last event)
 *    24  size u64 (bytes of the segment file it describes)
 *    32  max ts u64 (largest event timestamp in the segment)
 *    40  count u32 (entries)
 *    44  CRC32C u32 of the whole file, this field taken as zero
 *    48  `count` entries of 16 bytes: offset u64, pos u64, both strictly
 *        ascending, base <= offset < next, header <= pos < size
 */
#ifndef KR_STORE_INDEX_H
#define KR_STORE_INDEX_H

#include <stddef.h>
#include <stdint.h>

#include "store/segment.h"

/* A hint at least every this many bytes of a segment. */
#define KR_INDEX_INTERVAL 4096
/* "00000000000000001234.idx" + NUL, as long as a segment's name. */
#define KR_INDEX_NAME_BYTES KR_SEG_NAME_BYTES
/* Header bytes of BASE.idx, and of one entry. */
#define KR_INDEX_HEADER_BYTES 48
#define KR_INDEX_ENTRY_BYTES  16
/* Largest BASE.idx loaded (a file claiming more is not a hint of ours). */
#define KR_INDEX_MAX_FILE (64u << 20)

/* One hint: the batch with base offset `offset` starts at `pos`. */
typedef struct kr_index_entry {
    uint64_t offset;
    uint64_t pos;
} kr_index_entry;

/* Hints of one segment, ascending. A zeroed kr_index is empty and valid. */
typedef struct kr_index {
    kr_index_entry *e;
    size_t n, cap;
} kr_index;

/* What BASE.idx says of its segment besides the hints. */
typedef struct kr_index_meta {
    uint64_t next;   /* offset after the segment's last event */
    uint64_t max_ts; /* largest event timestamp */
} kr_index_meta;

/*
 * kr_index_add - note that the batch at `offset` starts at `pos` (both
 * above every hint so far), unless the last hint is less than
 * KR_INDEX_INTERVAL bytes before it. Out of memory, the hint is dropped:
 * a missing hint only costs a longer walk.
 */
void kr_index_add(kr_index *ix, uint64_t offset, uint64_t pos);

/* The position to start walking batch headers from to find `offset`: the
 * last hint at or below it, or the first batch of the segment. */
uint64_t kr_index_find(const kr_index *ix, uint64_t offset);

/* Forget the hints at positions >= pos (the file was cut there). */
void kr_index_cut(kr_index *ix, uint64_t pos);

/* Make dst a copy of src (dst's old hints are freed).
 * @return 0, or -1 on ENOMEM (dst unchanged). */
int kr_index_copy(kr_index *dst, const kr_index *src);

/* Free the hints; the index is empty again. NULL ok. */
void kr_index_free(kr_index *ix);

/* "BASE.idx" for a segment's base offset. */
void kr_index_file_name(char out[KR_INDEX_NAME_BYTES], uint64_t base);

/* Bytes of a BASE.idx holding n hints. */
size_t kr_index_encoded_len(size_t n);

/* Encode BASE.idx for the segment `base` of `size` bytes into buf
 * (kr_index_encoded_len(ix->n) bytes; no I/O). */
void kr_index_encode(uint8_t *buf, uint64_t base, const kr_index_meta *meta, uint64_t size,
                     const kr_index *ix);

/*
 * kr_index_write - write BASE.idx for the segment `base` in directory
 * dirfd: through a temporary file renamed into place, so a reader finds
 * the old file, the new one or none, never half of one. Not synced: a
 * lost hint is rebuilt.
 * @return 0, or -1 with errno.
 */
int kr_index_write(int dirfd, uint64_t base, const kr_index_meta *meta, uint64_t size,
                   const kr_index *ix);

/*
 * kr_index_decode - check and read the bytes of a BASE.idx (no I/O): the
 * magic, the CRC, the length against the count, base and size against the
 * segment's, and every entry as the format above says.
 * @param out  filled only on success (its old hints are not freed: pass
 *             an empty index); the caller frees it with kr_index_free
 * @return 0, or -1 when the bytes are not a good index of this segment
 *         (errno EINVAL) or on ENOMEM.
 */
int kr_index_decode(const uint8_t *buf, size_t len, uint64_t base, uint64_t size,
                    kr_index_meta *meta, kr_index *out);

/*
 * kr_index_load - read and decode BASE.idx of the segment `base` whose
 * file is `size` bytes long.
 * @param out  as for kr_index_decode
 * @return 0, or -1 when it is missing, unreadable, torn or not matching
 *         (errno says which: ENOENT, EINVAL, ...).
 */
int kr_index_load(int dirfd, uint64_t base, uint64_t size, kr_index_meta *meta, kr_index *out);

#endif
