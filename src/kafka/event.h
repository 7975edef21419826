/*
 * kafka/event.h - Kafka records to krappy events and back: pure functions,
 * no store.
 *
 * A produced Kafka record becomes a PUBLISH event (PROTOCOL.md sections 2-3),
 * the CBOR array [key, value, ts] or [key, value, ts, headers]:
 *  - key: the record's key bytes as a CBOR byte string; a null key is CBOR
 *    null (no key: the event is streamed, not compacted). A key over
 *    KRAPPY_MAX_KEY_BYTES is refused.
 *  - value: a CBOR byte string; a null value is CBOR null, a tombstone.
 *  - ts: the batch's base timestamp plus the record's delta, when the batch
 *    says CreateTime and the sum is not negative; else null (server time).
 *  - headers, only when the record has some: a map of text to byte string.
 *    A header name that repeats: the last one wins (Kafka's
 *    Headers.lastHeader, and PROTOCOL.md's rule for repeated map keys); it
 *    stays where its last occurrence was. A null header value becomes an
 *    empty byte string (krappy headers are byte strings). A name that is not
 *    UTF-8 refuses the record (INVALID_RECORD).
 *
 * A stored event in its delivered form, [offset, ts, key, value] or
 * [offset, ts, key, value, headers], becomes a Kafka record at that offset
 * and timestamp, for a Fetch response:
 *  - key, value and header values: byte and text strings as their bytes;
 *    null as null; any other CBOR item (numbers, booleans, arrays, maps,
 *    floats, tags, ...) as its JSON text, rendered by proto/cbor_text.h:
 *    numbers, true/false, arrays and maps with text keys as JSON; byte
 *    strings inside them as base64url strings; whatever JSON cannot say
 *    (tags, undefined, maps with other keys) as a JSON string of its CBOR
 *    diagnostic notation. So `kcat -C` shows {"a":1} for a value published
 *    as a CBOR map, and 42 for the integer 42.
 *  - header names: their bytes.
 */
#ifndef KR_KAFKA_EVENT_H
#define KR_KAFKA_EVENT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "kafka/batch.h"
#include "kafka/errors.h"
#include "kafka/wire.h"

/*
 * The parts of the mapping above, for a caller that stores records without
 * the PUBLISH payload (server/kafka_produce.c):
 * kr_kafka_record_check - is r storable (its key within KRAPPY_MAX_KEY_BYTES)?
 * @return KR_KAFKA_ERR_NONE, or KR_KAFKA_ERR_INVALID_RECORD with msg.
 * kr_kafka_record_ts - r's event ts. @return true with *ts set; false for
 * none (server time: a LogAppendTime batch, a negative timestamp).
 * kr_kafka_record_headers - append r's headers as the event's CBOR map
 * (r->header_count > 0); `scratch` as below (reset here).
 * @return as kr_kafka_record_to_event.
 */
kr_kafka_err kr_kafka_record_check(const kr_kafka_record *r, char *msg, size_t msglen);
bool kr_kafka_record_ts(const kr_kafka_batch *b, const kr_kafka_record *r, uint64_t *ts);
kr_kafka_err kr_kafka_record_headers(const kr_kafka_record *r, kr_buf *out, kr_buf *scratch,
                                     char *msg, size_t msglen);

/*
 * kr_kafka_record_to_event - append the PUBLISH event of record r of batch
 * b to out. `scratch` is working memory for the headers (reset here).
 * @return KR_KAFKA_ERR_NONE; KR_KAFKA_ERR_INVALID_RECORD (a key too long, a
 *         header name not UTF-8; msg says which record) or
 *         KR_KAFKA_ERR_MESSAGE_TOO_LARGE (out or scratch refused to grow).
 */
kr_kafka_err kr_kafka_record_to_event(const kr_kafka_batch *b, const kr_kafka_record *r,
                                      kr_buf *out, kr_buf *scratch, char *msg, size_t msglen);

/*
 * kr_kafka_batch_to_events - append a CBOR array of the PUBLISH events of
 * every record of b (the `events` of a PUBLISH). A compressed batch is
 * decompressed into `records` (at most max_bytes; see
 * kr_kafka_record_iter_init); `scratch` as above.
 * @return KR_KAFKA_ERR_NONE, or the first error of reading, decompressing or
 *         converting a record (msg set). On failure out holds part of the
 *         array: the caller discards it.
 */
kr_kafka_err kr_kafka_batch_to_events(const kr_kafka_batch *b, kr_buf *records, size_t max_bytes,
                                      kr_buf *out, kr_buf *scratch, char *msg, size_t msglen);

/*
 * kr_kafka_event_to_record - add the delivered event ev[0..len) (one CBOR
 * item) to a batch being written, as a record at the event's offset.
 * `scratch` holds JSON renderings and joined strings (reset here).
 * @return 0; -1 when ev is not a delivered event, its offset does not follow
 *         the batch's last one, or an output refused to grow (msg says
 *         which; the writer is then refused by kr_kafka_batch_end).
 */
int kr_kafka_event_to_record(kr_kafka_batch_writer *w, const uint8_t *ev, size_t len,
                             kr_buf *scratch, char *msg, size_t msglen);

/*
 * kr_kafka_events_to_records - add every delivered event of p[0..len)
 * (CBOR items back to back, as FETCH sends them) to a batch being written,
 * reading each event once (kr_kafka_event_to_record reads it whole first).
 * @return the records added, or -1 as kr_kafka_event_to_record (the writer
 *         is then refused by kr_kafka_batch_end).
 */
int32_t kr_kafka_events_to_records(kr_kafka_batch_writer *w, const uint8_t *p, size_t len,
                                   kr_buf *scratch, char *msg, size_t msglen);

#endif
