/*
 * store/segment.h - the on-disk format of a topic's stream, and the file-level
 * operations on one segment: write headers, verify, scan and recover, locate
 * an event inside a stored batch.
 *
 * A topic's stream is a sequence of segment files in its directory, each named
 * by its base offset (20 decimal digits, ".seg"). A segment is:
 *
 *   segment header (64 bytes; 32 in version 1)
 *     0  magic "KRAPPYSG"                       8 bytes
 *     8  format version u32 BE (2; 1 for segments written by krappy 0.1.0)
 *    12  header length u32 BE (64; 32 in version 1)
 *    16  base offset u64 BE (first offset stored in this file)
 *    24  CRC32C u32 BE of bytes 0..23
 *    28  zero u32
 *   version 2 only: the sync record, the one part of a segment ever
 *   overwritten (pwritten after each fdatasync that covered more of it):
 *    32  synced bytes u64 BE (the file is durable up to this position: the
 *        end of a batch, or 64 when nothing was synced past the header)
 *    40  synced next u64 BE (the offset after the last event below it)
 *    48  CRC32C u32 BE of bytes 32..47
 *    52  zero, 12 bytes
 *   then batches, back to back:
 *   batch header (32 bytes)
 *     0  magic u32 BE 0x4B524231 ("KRB1")
 *     4  CRC32C u32 BE of bytes 8..31 of this header and of the payload
 *     8  base offset u64 BE (offset of the first event)
 *    16  count u32 BE (events, >= 1)
 *    20  payload length u32 BE (bytes)
 *    24  max ts u64 BE (largest event timestamp, for time retention)
 *   payload: `count` events, each one CBOR item in delivered form
 *     [offset, ts, key, value] or [offset, ts, key, value, headers],
 *     offsets base .. base+count-1, exactly as FETCH sends them.
 *
 * A PUBLISH is one batch, so a torn write loses a whole PUBLISH, never half.
 * All integers are big-endian. Nothing here allocates per event.
 *
 * The sync record tells a torn tail from damage: bytes past it may be a
 * write a crash cut short (cut off at start-up), bytes below it were
 * durable, so a bad batch there is corruption - reported, never served, and
 * its offsets never handed out again. A record whose CRC does not match is
 * ignored (the segment is then judged as a version 1 one).
 */
#ifndef KR_STORE_SEGMENT_H
#define KR_STORE_SEGMENT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define KR_SEG_MAGIC   "KRAPPYSG"
#define KR_SEG_VERSION 2 /* written by this version */
/* The fixed part of every segment header (all of a version 1 header): the
 * smallest position a batch can start at. */
#define KR_SEG_HEADER_BYTES 32
/* A version 2 header, sync record included, and the record's place. */
#define KR_SEG_HEADER_V2_BYTES 64
#define KR_SEG_SYNC_AT         32
#define KR_SEG_SYNC_BYTES      24
#define KR_BATCH_MAGIC         0x4B524231u
#define KR_BATCH_HEADER_BYTES  32
/* Largest batch payload accepted when reading (a PUBLISH is at most one
 * frame, and max_frame is at most 1 GiB). */
#define KR_BATCH_MAX_PAYLOAD (1024u * 1024 * 1024)
/* Segment file name: 20 digits + ".seg" + NUL. */
#define KR_SEG_NAME_BYTES 25

typedef struct kr_batch_hdr {
    uint32_t crc;
    uint64_t base;
    uint32_t count;
    uint32_t len;
    uint64_t max_ts;
} kr_batch_hdr;

/* "00000000000000001234.seg" for base 1234. out has KR_SEG_NAME_BYTES. */
void kr_seg_name(char out[KR_SEG_NAME_BYTES], uint64_t base);

/* Parse a segment file name. @return 0 and *base, or -1 if not one. */
int kr_seg_parse_name(const char *name, uint64_t *base);

/* What a segment header says. */
typedef struct kr_seg_header {
    uint32_t version;
    uint32_t len;                 /* header length: where the first batch starts */
    uint64_t base;                /* first offset */
    bool has_sync;                /* version 2 with a sync record whose CRC matches */
    uint64_t synced, synced_next; /* the record (has_sync) */
} kr_seg_header;

/* Encode a version 2 segment header for base offset `base`, its sync
 * record saying nothing is synced past the header (64, base). */
void kr_seg_header_encode(uint8_t out[KR_SEG_HEADER_V2_BYTES], uint64_t base);

/* Encode a version 1 header, as krappy 0.1.0 wrote them (tests make old
 * data directories with it). */
void kr_seg_header_encode_v1(uint8_t out[KR_SEG_HEADER_BYTES], uint64_t base);

/* Encode a sync record: the segment is durable up to byte `synced`, the
 * offsets below `next` included. */
void kr_seg_sync_encode(uint8_t out[KR_SEG_SYNC_BYTES], uint64_t synced, uint64_t next);

/*
 * kr_seg_header_decode - check the header at the start of a segment file.
 * @param in   the file's first `len` bytes (64 or more cover any header)
 * @return 0 and *h; -1 when the file is too short for its header, or when
 *         magic, version, length, CRC or the zero field is wrong. A
 *         version 2 sync record that does not check out leaves has_sync
 *         false (the header itself is good).
 */
int kr_seg_header_decode(const uint8_t *in, size_t len, kr_seg_header *h);

/*
 * kr_batch_header_encode - fill a batch header for `payload` (crc computed
 * here over header bytes 8..31 and the payload).
 */
void kr_batch_header_encode(uint8_t out[KR_BATCH_HEADER_BYTES], uint64_t base, uint32_t count,
                            uint64_t max_ts, const void *payload, uint32_t len);

/*
 * kr_batch_header_put, kr_batch_seal - the same in two steps, for a batch
 * whose payload follows its header in one buffer: the loop puts the header
 * as it encodes (CRC left zero), the storage writer seals the batch (fills
 * the CRC) off the loop thread, just before writing it.
 * @param batch  header then `len` payload bytes (kr_batch_seal reads the
 *               payload length from the header)
 */
void kr_batch_header_put(uint8_t out[KR_BATCH_HEADER_BYTES], uint64_t base, uint32_t count,
                         uint64_t max_ts, uint32_t len);
void kr_batch_seal(uint8_t *batch);

/* Decode a batch header (magic and sanity only: count >= 1, len >= count,
 * len <= KR_BATCH_MAX_PAYLOAD, base + count <= UINT64_MAX). @return 0, or
 * -1. The CRC is checked by kr_batch_verify. */
int kr_batch_header_decode(const uint8_t in[KR_BATCH_HEADER_BYTES], kr_batch_hdr *h);

/* @return 1 when the header's CRC matches header bytes 8..31 + payload. */
int kr_batch_verify(const uint8_t hdr[KR_BATCH_HEADER_BYTES], const void *payload, uint32_t len);

/*
 * kr_batch_payload_check - the payload really is `count` delivered events
 * with offsets base.. in order (each a 4- or 5-element array whose first
 * item is its offset). Used when recovering bytes not written by this
 * process, after the CRC matched, so that a forged or buggy batch is never
 * served. @return 0, or -1.
 */
int kr_batch_payload_check(const kr_batch_hdr *h, const uint8_t *payload);

/*
 * kr_batch_locate - byte position in a payload of the event with offset
 * `offset` (base <= offset < base+count), walking the CBOR items.
 * @return the position, or -1 when the payload is malformed.
 */
long kr_batch_locate(const kr_batch_hdr *h, const uint8_t *payload, uint64_t offset);

/* A range of a segment that failed verification: never served. */
typedef struct kr_corrupt {
    uint64_t pos, end;    /* bytes [pos, end) */
    uint64_t first, next; /* offsets lost, as far as known */
} kr_corrupt;

#define KR_SEG_MAX_CORRUPT 16

/* What kr_seg_scan learnt of one segment file. */
typedef struct kr_seg_scan {
    kr_seg_header hdr; /* its header */
    uint64_t base;     /* from the header */
    uint64_t next;     /* offset after the last good batch */
    uint64_t good_end; /* file position after the last good batch */
    uint64_t file_len; /* size of the file as found */
    uint64_t max_ts;   /* largest max_ts of good batches (0 if none) */
    uint32_t batches;  /* good batches */
    bool torn;         /* bytes after good_end that are not a batch:
                          a torn tail to truncate */
    size_t n_corrupt;  /* bad batches followed by good ones */
    kr_corrupt corrupt[KR_SEG_MAX_CORRUPT];
} kr_seg_scan;

/* Called for each good batch during a scan (for the sparse index). */
typedef void (*kr_seg_batch_cb)(void *arg, const kr_batch_hdr *h, uint64_t pos);

/*
 * kr_seg_scan_fd - read and verify a whole segment file: header, then every
 * batch (CRC, header sanity, offsets contiguous from the segment base, and
 * kr_batch_payload_check). A bad stretch followed by a good batch (found by
 * scanning forward for a batch magic whose CRC and offsets check out) is
 * recorded as corrupt; bad bytes with no good batch after them are a torn
 * tail (torn = true, good_end says where to truncate; without a torn tail
 * good_end == file_len). A batch found after a bad stretch must start with
 * an offset above the expected next one (the range records the offsets lost
 * as first..next); after KR_SEG_MAX_CORRUPT ranges the rest counts as torn.
 * Reads with pread through one window of up to 1 MiB; a batch larger than
 * that is read into one more buffer, grown to the largest such batch only
 * after its CRC matched. Both are freed before returning. The search for a
 * good batch after a bad one looks at each position holding the batch magic
 * once, so it costs about one pass over the bytes it skips.
 * @param cb  called per good batch, in file order (may be NULL); the
 *            header and position are those of the batch as found
 * @return 0 on success; -1 when the header itself is bad or on an I/O error
 *         (errno set; EINVAL for a bad header).
 */
int kr_seg_scan_fd(int fd, kr_seg_scan *out, kr_seg_batch_cb cb, void *arg);

#endif
