/*
 * kafka/batch.h - record batches, magic 2: reading what producers send,
 * writing what consumers fetch. No I/O.
 *
 * A Produce partition's or Fetch partition's `records` field holds record
 * batches one after the other. A batch (all numbers big-endian):
 *
 *    0 base_offset i64         27 base_timestamp i64
 *    8 batch_length i32        35 max_timestamp i64
 *   12 partition_leader_epoch  43 producer_id i64
 *   16 magic i8 = 2            51 producer_epoch i16
 *   17 crc u32                 53 base_sequence i32
 *   21 attributes i16          57 records_count i32
 *   23 last_offset_delta i32   61 records (compressed as a whole, or not)
 *
 * batch_length counts the bytes after itself; crc is the CRC-32C of bytes
 * 21 to the end. attributes: bits 0-2 the codec (compress.h), bit 3 the
 * timestamp type (1: log append time), bit 4 transactional, bit 5 control.
 * A record: length varint (bytes after itself), attributes i8,
 * timestamp_delta varlong, offset_delta varint, key (varint length, -1
 * null), value (same), header count varint, then each header: key (varint
 * length, never null), value (varint length, -1 null).
 *
 * Reading refuses, with the Kafka error a producer should get: legacy
 * message sets (magic 0/1) with UNSUPPORTED_FOR_MESSAGE_FORMAT; a CRC
 * mismatch, lengths that do not add up or bad varints with CORRUPT_MESSAGE;
 * codecs above 4 with UNSUPPORTED_COMPRESSION_TYPE; transactional and
 * control batches (krappy has no transactions) with INVALID_RECORD; records
 * that decompress past the cap with MESSAGE_TOO_LARGE. Every error comes
 * with a sentence in the caller's msg buffer.
 */
#ifndef KR_KAFKA_BATCH_H
#define KR_KAFKA_BATCH_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "kafka/compress.h"
#include "kafka/errors.h"
#include "kafka/wire.h"

#define KR_KAFKA_BATCH_HEADER 61 /* bytes before the records */
#define KR_KAFKA_BATCH_MAGIC  2

#define KR_KAFKA_ATTR_LOG_APPEND_TIME 0x08
#define KR_KAFKA_ATTR_TRANSACTIONAL   0x10
#define KR_KAFKA_ATTR_CONTROL         0x20

/* One batch's header; `records` points into the input. */
typedef struct kr_kafka_batch {
    int64_t base_offset;
    int32_t partition_leader_epoch;
    int16_t attributes;
    int32_t last_offset_delta;
    int64_t base_timestamp;
    int64_t max_timestamp;
    int64_t producer_id; /* -1: not an idempotent producer */
    int16_t producer_epoch;
    int32_t base_sequence;
    int32_t count;          /* records_count */
    const uint8_t *records; /* the records section as sent (maybe compressed) */
    size_t records_len;
} kr_kafka_batch;

/* Walks the batches of a records field. */
typedef struct kr_kafka_batch_iter {
    kr_kafka_rd rd;
} kr_kafka_batch_iter;

/* Start walking records[0..len) (borrowed: it must outlive the batches). */
void kr_kafka_batch_iter_init(kr_kafka_batch_iter *it, const uint8_t *records, size_t len);

/*
 * kr_kafka_batch_next - the next batch, its header checked (length, magic,
 * CRC, attributes). Its records are read with kr_kafka_record_iter.
 * @return 1 with *b filled; 0 when no bytes are left; -1 with *err and msg
 *         set (the iterator then stays at its end).
 */
int kr_kafka_batch_next(kr_kafka_batch_iter *it, kr_kafka_batch *b, kr_kafka_err *err, char *msg,
                        size_t msglen);

/* One record, its offset and timestamp made absolute. Pointers go into the
 * batch (or the scratch buffer it was decompressed into). */
typedef struct kr_kafka_record {
    int32_t index;     /* position in the batch, from 0 */
    int8_t attributes; /* unused by Kafka so far */
    int64_t offset;    /* base_offset + offset_delta */
    int32_t offset_delta;
    int64_t timestamp;    /* base_timestamp + timestamp_delta */
    kr_kafka_bytes key;   /* len -1: null */
    kr_kafka_bytes value; /* len -1: null (a tombstone) */
    int32_t header_count;
    const uint8_t *headers; /* the headers section, read with kr_kafka_header_next */
    size_t headers_len;
} kr_kafka_record;

/* Walks the records of one batch. */
typedef struct kr_kafka_record_iter {
    kr_kafka_rd rd;
    const kr_kafka_batch *batch;
    int32_t index; /* records returned so far */
} kr_kafka_record_iter;

/*
 * kr_kafka_record_iter_init - prepare to read b's records. A compressed batch
 * is decompressed here into `scratch` (reset first), at most max_bytes; the
 * records then point into scratch, which must stay untouched while they are
 * used. An uncompressed batch leaves scratch alone.
 * @return KR_KAFKA_ERR_NONE, or the error of kr_kafka_decompress (msg set).
 */
kr_kafka_err kr_kafka_record_iter_init(kr_kafka_record_iter *it, const kr_kafka_batch *b,
                                       kr_buf *scratch, size_t max_bytes, char *msg, size_t msglen);

/*
 * kr_kafka_record_next - the next record, checked whole (its length, every
 * varint, its headers). After the batch's last record, bytes left over are
 * an error.
 * @return 1 with *r filled; 0 after the last one; -1 with *err
 *         (CORRUPT_MESSAGE) and msg set.
 */
int kr_kafka_record_next(kr_kafka_record_iter *it, kr_kafka_record *r, kr_kafka_err *err, char *msg,
                         size_t msglen);

/* A record header; key is never null, value may be. */
typedef struct kr_kafka_header {
    kr_kafka_bytes key;
    kr_kafka_bytes value;
} kr_kafka_header;

/* Start reading the headers of a record returned by kr_kafka_record_next. */
void kr_kafka_header_iter_init(kr_kafka_rd *hr, const kr_kafka_record *r);

/* The next header. kr_kafka_record_next checked them all, so this cannot
 * fail. @return true with *h filled, false after the last. */
bool kr_kafka_header_next(kr_kafka_rd *hr, kr_kafka_header *h);

/*
 * Writing one uncompressed batch, for a Fetch response: begin, then for each
 * record record_begin, record_header once per header it announced,
 * record_end; then batch_end. The base offset and base timestamp are the
 * first record's; offsets must increase but may have gaps (a compacted
 * topic): each record carries its offset_delta, and last_offset_delta is
 * the last record's. producer_id, epoch and base sequence are -1.
 */
typedef struct kr_kafka_batch_writer {
    kr_buf *out;
    size_t start;         /* where the batch header is */
    size_t rec_start;     /* where the open record is; SIZE_MAX when none */
    size_t known_len;     /* the open record's body length, written already
                             (a record without headers); SIZE_MAX: not yet */
    int32_t leader_epoch; /* written as partition_leader_epoch; 0 after begin */
    int32_t count;
    int32_t headers_left; /* of the open record */
    int64_t base_offset, last_offset, base_ts, max_ts;
    bool bad; /* a call out of order or out of range */
} kr_kafka_batch_writer;

/* Start a batch at the end of out. */
void kr_kafka_batch_begin(kr_kafka_batch_writer *w, kr_buf *out);

/*
 * kr_kafka_record_begin - open a record: `offset` (greater than the last
 * one, less than 2^31 past the first), `ts`, key and value (len -1: null)
 * and the number of headers that will follow.
 * @return 0, or -1 when the call is out of order or out of range (the batch
 *         is then refused by kr_kafka_batch_end).
 */
int kr_kafka_record_begin(kr_kafka_batch_writer *w, int64_t offset, int64_t ts, kr_kafka_bytes key,
                          kr_kafka_bytes value, int32_t header_count);

/*
 * kr_kafka_record_put - a whole record without headers (record_begin with
 * no headers, then record_end, in one call: the same bytes).
 * @return 0, or -1 when the call is out of order or out of range, or out
 *         refused to grow (out->failed set); the batch is then refused by
 *         kr_kafka_batch_end.
 */
int kr_kafka_record_put(kr_kafka_batch_writer *w, int64_t offset, int64_t ts, kr_kafka_bytes key,
                        kr_kafka_bytes value);

/* One header of the open record (key.len >= 0). @return 0 or -1 as above. */
int kr_kafka_record_header(kr_kafka_batch_writer *w, kr_kafka_bytes key, kr_kafka_bytes value);

/* Close the open record. @return 0, or -1 (fewer headers than announced). */
int kr_kafka_record_end(kr_kafka_batch_writer *w);

/*
 * kr_kafka_batch_end - fill in the header (lengths, last offset delta, max
 * timestamp, count, CRC).
 * @return the number of records (0: none were added, and out is as before
 *         begin); -1 when a call was refused or out refused to grow (out is
 *         then rolled back to before begin; out->failed may be set).
 */
int32_t kr_kafka_batch_end(kr_kafka_batch_writer *w);

#endif
