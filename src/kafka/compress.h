/*
 * kafka/compress.h - decompression of the records of a record batch.
 *
 * A batch's attributes name its codec (the low 3 bits): gzip (zlib's gzip
 * format, several members allowed), snappy (raw snappy as librdkafka writes
 * it, or the "xerial" framing of Kafka's Java client: a 16-byte header
 * starting 0x82 "SNAPPY" 0 and length-prefixed raw blocks), LZ4 (the LZ4
 * frame format, with correct header checksums: the broken-checksum variant
 * of old clients exists only in magic 0/1 message sets, which krappy
 * refuses) and zstd (one or more frames). Every decompression stops at a cap:
 * a small batch that expands to gigabytes gets MESSAGE_TOO_LARGE, never the
 * memory.
 */
#ifndef KR_KAFKA_COMPRESS_H
#define KR_KAFKA_COMPRESS_H

#include <stddef.h>
#include <stdint.h>

#include "kafka/errors.h"
#include "kafka/wire.h"

/* Compression codecs: a batch's attributes & KR_KAFKA_CODEC_MASK. */
#define KR_KAFKA_CODEC_MASK   0x07
#define KR_KAFKA_CODEC_NONE   0
#define KR_KAFKA_CODEC_GZIP   1
#define KR_KAFKA_CODEC_SNAPPY 2
#define KR_KAFKA_CODEC_LZ4    3
#define KR_KAFKA_CODEC_ZSTD   4

/* Name of a codec ("gzip"), or "unknown". */
const char *kr_kafka_codec_name(int codec);

/*
 * kr_kafka_decompress - append the decompressed form of in[0..len) (codec
 * 1..4) to out, at most `max` bytes (and never past out's own cap).
 * @return KR_KAFKA_ERR_NONE;
 *         KR_KAFKA_ERR_CORRUPT_MESSAGE: not a valid stream of the codec
 *         (truncated, bad checksum, bytes after the end);
 *         KR_KAFKA_ERR_MESSAGE_TOO_LARGE: it expands to more than max;
 *         KR_KAFKA_ERR_UNSUPPORTED_COMPRESSION_TYPE: codec 0 or above 4;
 *         KR_KAFKA_ERR_UNKNOWN_SERVER_ERROR: out of memory.
 *         msg[0..msglen) says what happened. On failure out->len may have
 *         grown: the caller discards out.
 */
kr_kafka_err kr_kafka_decompress(int codec, const uint8_t *in, size_t len, kr_buf *out, size_t max,
                                 char *msg, size_t msglen);

#endif
