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
 *    28  flags u32 BE: 0, or KR_SEG_F_COMPACTED (1) for a segment that
 *        compaction rewrote: its batches keep their offsets, but offsets
 *        between them may be missing (removed events), and it covers
 *        every offset up to the next segment's base. Compaction writes
 *        its output with a version 1 header: the file is fdatasync'd whole
 *        before its rename makes it the segment, so a sync record would
 *        only ever say "all of it" (a damaged tail is cut as in 0.1.0's).
 *        A cluster member's catch-up (kr_store_gap_to) sets the flag in
 *        place on a version 2 segment before the first batch it writes
 *        past a gap its peers' compaction left;
 *        KR_SEG_F_SKIPPED (2) for a segment a skip started
 *        (kr_store_skip_to): the offsets below its base are gone, as
 *        retention's are, and a gap before it is no lost tail
 *   version 2 only: the sync record, the one part of a segment ever
 *   overwritten (pwritten after each fdatasync that covered more of it):
 *    32  synced bytes u64 BE (the file is durable up to this position: the
 *        end of a batch, or 64 when nothing was synced past the header)
 *    40  synced next u64 BE (the offset after the last event below it)
 *    48  CRC32C u32 BE of bytes 32..47
 *    52  zero, 12 bytes
 *   then batches, back to back, each a header in one of two versions and
 *   its payload:
 *   batch header, version 1 (32 bytes): a batch of no idempotent producer
 *     0  magic u32 BE 0x4B524231 ("KRB1")
 *     4  CRC32C u32 BE of bytes 8..31 of this header and of the payload
 *     8  base offset u64 BE (offset of the first event)
 *    16  count u32 BE (events, >= 1)
 *    20  payload length u32 BE (bytes)
 *    24  max ts u64 BE (largest event timestamp, for time retention)
 *   batch header, version 2 (64 bytes): since 0.2.0, a batch of an
 *   idempotent producer (PROTOCOL.md section 7), or one with a Raft index
 *     0  magic u32 BE 0x4B524232 ("KRB2")
 *     4  CRC32C u32 BE of bytes 8..63 of this header and of the payload
 *     8  base offset, count, payload length, max ts: as in version 1
 *    32  Raft log index u64 BE (0 outside a cluster)
 *    40  producer u64 BE (the topic's number for the producer id, from 1;
 *        0: none)
 *    48  seq u64 BE (the producer's sequence number of the first event)
 *    56  epoch u32 BE (the producer's registration it came through)
 *    60  zero u32 (reserved)
 *   payload: `count` events, each one CBOR item in delivered form
 *     [offset, ts, key, value] or [offset, ts, key, value, headers],
 *     offsets base .. base+count-1, exactly as FETCH sends them.
 *
 * Plain batches keep version 1: 32 bytes more on each single-event
 * PUBLISH would cost a fifth more disk and writer bandwidth for events of
 * ~130 bytes (docs/BENCHMARKS.md). Readers take both versions anywhere in
 * a segment of either version; the header's length follows from its magic.
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
#define KR_SEG_FLAGS_AT        28 /* the flags, outside the header's CRC */
#define KR_SEG_SYNC_BYTES      24
#define KR_BATCH_MAGIC         0x4B524231u /* "KRB1" */
#define KR_BATCH_MAGIC_V2      0x4B524232u /* "KRB2" */
/* A version 1 header: the shortest. Readers fetch KR_BATCH_HEADER_MAX
 * bytes (or what the file has left) and learn the length from the magic. */
#define KR_BATCH_HEADER_BYTES 32
#define KR_BATCH_HEADER_V2    64
#define KR_BATCH_HEADER_MAX   64
/* Largest batch payload accepted when reading (a PUBLISH is at most one
 * frame, and max_frame is at most 1 GiB). */
#define KR_BATCH_MAX_PAYLOAD (1024u * 1024 * 1024)
/* Segment file name: 20 digits + ".seg" + NUL. */
#define KR_SEG_NAME_BYTES 25

/* A batch header, either version. Encoders choose the version from the
 * fields: version 2 when producer or raft_index is not 0. */
typedef struct kr_batch_hdr {
    uint32_t crc;
    uint32_t hlen; /* decoded: 32 or 64 (the header's own bytes) */
    uint64_t base;
    uint32_t count;
    uint32_t len; /* payload bytes */
    uint64_t max_ts;
    uint64_t raft_index; /* version 2 */
    uint64_t producer;   /* version 2: 0 = none */
    uint64_t seq;        /* version 2 */
    uint32_t epoch;      /* version 2 */
} kr_batch_hdr;

/* Segment header flags (byte 28). */
#define KR_SEG_F_COMPACTED 1u
#define KR_SEG_F_SKIPPED   2u
#define KR_SEG_F_ALL       (KR_SEG_F_COMPACTED | KR_SEG_F_SKIPPED)

/* "00000000000000001234.seg" for base 1234. out has KR_SEG_NAME_BYTES. */
void kr_seg_name(char out[KR_SEG_NAME_BYTES], uint64_t base);

/* Parse a segment file name. @return 0 and *base, or -1 if not one. */
int kr_seg_parse_name(const char *name, uint64_t *base);

/* What a segment header says. */
typedef struct kr_seg_header {
    uint32_t version;
    uint32_t len;                 /* header length: where the first batch starts */
    uint32_t flags;               /* KR_SEG_F_* */
    uint64_t base;                /* first offset */
    bool has_sync;                /* version 2 with a sync record whose CRC matches */
    uint64_t synced, synced_next; /* the record (has_sync) */
} kr_seg_header;

/* Encode a version 2 segment header for base offset `base`, its sync
 * record saying nothing is synced past the header (64, base). */
void kr_seg_header_encode(uint8_t out[KR_SEG_HEADER_V2_BYTES], uint64_t base);
/* The same with header flags (KR_SEG_F_*). */
void kr_seg_header_encode_flags(uint8_t out[KR_SEG_HEADER_V2_BYTES], uint64_t base, uint32_t flags);

/* Encode a version 1 header, as krappy 0.1.0 wrote them (flags 0: tests
 * make old data directories with it) and as compaction writes its output
 * (flags KR_SEG_F_COMPACTED). */
void kr_seg_header_encode_v1(uint8_t out[KR_SEG_HEADER_BYTES], uint64_t base, uint32_t flags);

/* Encode a sync record: the segment is durable up to byte `synced`, the
 * offsets below `next` included. */
void kr_seg_sync_encode(uint8_t out[KR_SEG_SYNC_BYTES], uint64_t synced, uint64_t next);

/*
 * kr_seg_header_decode - check the header at the start of a segment file.
 * @param in   the file's first `len` bytes (64 or more cover any header)
 * @return 0 and *h; -1 when the file is too short for its header, or when
 *         magic, version, length or CRC is wrong, or a flag unknown to
 *         this version is set. A version 2 sync record that does not
 *         check out leaves has_sync false (the header itself is good).
 */
int kr_seg_header_decode(const uint8_t *in, size_t len, kr_seg_header *h);

/* The length of the header h encodes to: 64 when it needs version 2 (a
 * producer or a Raft index), else 32. */
uint32_t kr_batch_header_size(const kr_batch_hdr *h);

/*
 * kr_batch_header_encode - write the header of h (h->crc ignored; h->len
 * the payload length) and its CRC over the header and `payload`.
 * @param out  room for kr_batch_header_size(h) bytes
 * @return the header's length
 */
uint32_t kr_batch_header_encode(uint8_t *out, const kr_batch_hdr *h, const void *payload);

/*
 * kr_batch_header_put, kr_batch_seal - the same in two steps, for a batch
 * whose payload follows its header in one buffer: the header is put as the
 * batch is encoded (CRC left zero), and the batch sealed (its CRC filled)
 * once its payload is complete.
 * @param batch  header then payload (kr_batch_seal reads the version and
 *               the payload length from the header)
 * @return (put) the header's length
 */
uint32_t kr_batch_header_put(uint8_t *out, const kr_batch_hdr *h);
void kr_batch_seal(uint8_t *batch);

/*
 * kr_batch_header_decode - decode the header at `in`, of which `avail`
 * bytes may be read (a version 2 header needs 64). Checks the magic, the
 * reserved field and sanity only: count >= 1, len >= count, len <=
 * KR_BATCH_MAX_PAYLOAD, base + count <= UINT64_MAX. The CRC is checked by
 * kr_batch_verify.
 * @return 0 with *h filled (h->hlen says where the payload starts), or -1
 *         (not a header, or cut short by avail).
 */
int kr_batch_header_decode(const uint8_t *in, size_t avail, kr_batch_hdr *h);

/* @return 1 when the CRC of the header at hdr (a decoded one: its magic
 * says its length) matches its bytes 8.. and the payload. */
int kr_batch_verify(const uint8_t *hdr, const void *payload, uint32_t len);

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
    bool compacted;    /* the header says KR_SEG_F_COMPACTED: batches may
                          skip offsets (next is then after the last one) */
    size_t n_corrupt;  /* bad batches followed by good ones */
    kr_corrupt corrupt[KR_SEG_MAX_CORRUPT];
} kr_seg_scan;

/* Called for each good batch during a scan (for the sparse index). */
typedef void (*kr_seg_batch_cb)(void *arg, const kr_batch_hdr *h, uint64_t pos);

/*
 * kr_seg_scan_fd - read and verify a whole segment file: header, then every
 * batch (CRC, header sanity, offsets contiguous from the segment base - or,
 * in a compacted segment, ascending with gaps allowed - and
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
