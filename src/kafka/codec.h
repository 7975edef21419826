/*
 * kafka/codec.h - the Kafka wire protocol without I/O: the one header the
 * Kafka listener includes. Bytes in, structs out; structs in, bytes out.
 *
 *   wire.h     primitives: bounded reader, writers onto kr_buf, varints
 *   errors.h   Kafka error codes and their names
 *   arena.h    the memory a decoded request's arrays live in
 *   schema.h   message layouts as tables, one decoder and one encoder
 *   api.h      request header, the request/response struct of each API,
 *              kr_kafka_request_decode and kr_kafka_response_encode
 *   batch.h    record batches v2: read (CRC-32C, codecs), write (Fetch)
 *   compress.h gzip, snappy (raw and xerial), lz4 frames, zstd; capped
 *   event.h    Kafka record <-> krappy event (CBOR), both ways
 *
 * ==== Design note for the Kafka listener ====
 *
 * Versions advertised (ApiVersions), and why. Every API stops at its last
 * non-flexible version: flexible versions (compact strings, tagged fields)
 * are not spoken. Minimum 0 wherever librdkafka's checks need it
 * (rdkafka_feature.c, rdkafka_msgset_writer.c): its consumer groups are
 * enabled only when FindCoordinator, JoinGroup, SyncGroup, Heartbeat and
 * LeaveGroup v0 and OffsetFetch v1 are in range; idempotence needs
 * InitProducerId v0; SASL needs SaslHandshake v0 and v1; and it compresses
 * with gzip, snappy or lz4 only when Produce v0 is in range (zstd needs v7),
 * sending uncompressed batches otherwise. Produce v0-v2 requests decode, but
 * their legacy message sets (magic 0/1) are refused per partition with
 * UNSUPPORTED_FOR_MESSAGE_FORMAT. Fetch starts at v4, the first whose
 * responses carry record batches v2 (clients pick the highest version).
 *
 *   key  API                       versions  first flexible
 *    0   Produce                   0-8       9
 *    1   Fetch                     4-11      12
 *    2   ListOffsets               0-5       6
 *    3   Metadata                  0-8       9
 *    8   OffsetCommit              0-7       8
 *    9   OffsetFetch               0-5       6
 *   10   FindCoordinator           0-2       3
 *   11   JoinGroup                 0-5       6
 *   12   Heartbeat                 0-3       4
 *   13   LeaveGroup                0-3       4
 *   14   SyncGroup                 0-3       4
 *   17   SaslHandshake             0-1       (none)
 *   18   ApiVersions               0-2       3 (answered as below)
 *   19   CreateTopics              0-4       5
 *   20   DeleteTopics              0-3       4
 *   22   InitProducerId            0-1       2
 *   32   DescribeConfigs           0-3       4
 *   33   AlterConfigs              0-1       2
 *   36   SaslAuthenticate          0-1       2
 *   44   IncrementalAlterConfigs   0         1
 *
 * What librdkafka 2.0.2 (Debian's, under kcat 1.7.1) sends, captured with
 * tests/fuzz/kafka_capture.py (the bytes are in tests/fuzz/corpus/fuzz_kafka/
 * and tests/kafka_golden.h), the versions being the highest it shares with
 * the table above:
 *   every connection: ApiVersions v3 (flexible: header v2 with tagged fields,
 *     body client_software_name "librdkafka", version "2.0.2"). The answer
 *     is a v0-format response (header v0: correlation id only) with error
 *     35 UNSUPPORTED_VERSION and the full table. librdkafka reads it as a
 *     flexible response, finds no usable ApiVersions entry and retries with
 *     ApiVersions v0, which gets the full table with error 0 (Java clients
 *     parse the v0 fallback and retry with v2).
 *   on the first connection, Metadata v4 with an empty topic list (the
 *     brokers alone, allow_auto_topic_creation false), before or after the
 *     Metadata the command itself needs:
 *   kcat -L: Metadata v4 with topics null (all topics);
 *   kcat -L -t T: Metadata v4 [T];
 *   kcat -P: Metadata v4 [T] with allow_auto_topic_creation true (a
 *     consumer's says false), then Produce v7: acks -1 (kcat's default),
 *     transactional_id null, one topic, partition 0, one batch per request
 *     (records with key, value and headers, a null header value for -H k,
 *     null values for -Z), compressed as -z says; with
 *     enable.idempotence=true first InitProducerId v1 (transactional_id
 *     null), and the batch carries the producer id, epoch 0 and base
 *     sequence 0 (then on by the number of records); with acks=0 the same
 *     Produce with acks 0.
 *   kcat -C -o beginning -e: Metadata v4 [T], ListOffsets v2 (timestamp -2,
 *     isolation 0), then Fetch v11 (replica -1, session id 0 and epoch -1:
 *     no incremental fetch sessions) from the offset, again from the next.
 *   kcat -G g T: FindCoordinator v2 (key g, key_type 0) on the bootstrap
 *     connection, then a second connection to the coordinator (ApiVersions
 *     again, Metadata), JoinGroup v5 with member_id "" (answered
 *     MEMBER_ID_REQUIRED with a member id, it joins again with it; protocol
 *     type "consumer", protocols "range" and "roundrobin"), SyncGroup v3
 *     (the leader sends every member's assignment), Heartbeat v3,
 *     OffsetFetch v5, ListOffsets v2, Fetch v11, OffsetCommit v7 once it has
 *     consumed, LeaveGroup v1 at exit.
 *   with SASL/PLAIN: SaslHandshake v1 ("PLAIN") and SaslAuthenticate v0
 *     ("\0user\0password") right after ApiVersions, before anything else.
 *   the admin API (tests/fuzz/kafka_admin_client.c): Metadata v4 to find
 *     the controller, then CreateTopics v4 (num_partitions, replication
 *     factor, configs), DescribeConfigs v1 (configuration_keys null: all),
 *     AlterConfigs v0, DeleteTopics v1.

 * What the handler does per request (decode with kr_kafka_request_decode,
 * answer with kr_kafka_response_encode in the request's version). Frames
 * are an int32 size and that many bytes: a size below
 * KR_KAFKA_REQ_HEADER_MIN or above --max-frame closes the connection before
 * anything is read. Responses go out in request order, one per request
 * (but Produce with acks 0).
 *   KR_KAFKA_MALFORMED / KR_KAFKA_TOO_BIG: log msg and close the connection
 *     (Kafka's brokers do the same; the client reconnects).
 *   KR_KAFKA_UNSUPPORTED: for ApiVersions (any version above 2) answer with
 *     kr_kafka_api_versions_fill(.., KR_KAFKA_ERR_UNSUPPORTED_VERSION, ..)
 *     encoded as version 0. Anything else: there is no response layout for
 *     an API or version we do not know, so log and close (clients that
 *     negotiated with ApiVersions never send one).
 *   ApiVersions: kr_kafka_api_versions_fill(.., 0, ..).
 *   Metadata: brokers = this node (node id, advertised host:port); every
 *     topic asked for (all when topics is null, or empty in v0) with one
 *     partition 0 led by this node, replicas and isr [node]; unknown topics
 *     UNKNOWN_TOPIC_OR_PARTITION, or created first when
 *     allow_auto_topic_creation and auto-creation is on; controller_id =
 *     node id; cluster_id from the store.
 *   Produce: for each topic/partition (partition != 0:
 *     UNKNOWN_TOPIC_OR_PARTITION), walk the batches (kr_kafka_batch_iter;
 *     Kafka itself takes exactly one per partition from v3), turn each into
 *     a PUBLISH `events` array with kr_kafka_batch_to_events, wrap it as
 *     {events, ack} (acks 0/1/-1 -> none/write/sync), kr_req_decode it (the
 *     key-length and event-size rules apply) and kr_store_publish it;
 *     base_offset = the first offset. acks 0 gets no response at all
 *     (Kafka's rule; on a failure the broker closes the connection).
 *     producer_id >= 0 with the batch's producer_epoch and base_sequence ->
 *     PROTOCOL.md section 7 (duplicate / OUT_OF_ORDER / FENCED map to
 *     DUPLICATE_SEQUENCE_NUMBER / OUT_OF_ORDER_SEQUENCE_NUMBER /
 *     INVALID_PRODUCER_EPOCH). A batch error (kr_kafka_err from the codec)
 *     goes in the partition's error_code, its msg in error_message (v8+).
 *   Fetch: for each partition from fetch_offset, events as records with
 *     kr_kafka_batch_begin / kr_kafka_event_to_record / kr_kafka_batch_end
 *     into a kr_buf that the partition's `records` then points to, up to
 *     partition_max_bytes and max_bytes (but at least one record, KIP-74);
 *     isolation_level does not matter (no transactions), so
 *     high_watermark = last_stable_offset = the topic's next,
 *     log_start_offset = its first; an offset outside [first, next] is
 *     OFFSET_OUT_OF_RANGE. Wait up to max_wait_ms for min_bytes (the long
 *     poll). session_id 0: no fetch sessions.
 *   ListOffsets: timestamp -2 -> first, -1 -> next, else the first offset
 *     whose ts >= timestamp (or next); v0 answers in old_style_offsets.
 *   FindCoordinator: this node.
 *   JoinGroup/SyncGroup/Heartbeat/LeaveGroup: the group state machine; the
 *     leader's SyncGroup carries every assignment, relayed as bytes.
 *     v4+ JoinGroup with an empty member_id: MEMBER_ID_REQUIRED and a new
 *     member_id.
 *   OffsetCommit/OffsetFetch: committed offsets (and metadata) per group,
 *     topic, partition; -1 for none.
 *   InitProducerId: transactional_id null -> a producer id and epoch;
 *     non-null -> refused (krappy has no transactions), e.g. with
 *     TRANSACTIONAL_ID_AUTHORIZATION_FAILED.
 *   SaslHandshake: mechanisms ["PLAIN"]; anything else
 *     UNSUPPORTED_SASL_MECHANISM. v0 means the next frame is a raw SASL
 *     token without a Kafka header; v1 means SaslAuthenticate follows.
 *   SaslAuthenticate: auth_bytes = authzid NUL user NUL password; the
 *     password is checked against --token; else SASL_AUTHENTICATION_FAILED
 *     and close.
 *   CreateTopics/DeleteTopics/DescribeConfigs/AlterConfigs/
 *     IncrementalAlterConfigs: onto the store's topics and TOPIC_CONFIG.
 *
 * Memory: a request's strings and bytes point into the frame; its arrays
 * into the arena passed to the decoder (one per connection, reset after
 * each request; its max bounds what a request can make us allocate). Record
 * batches are read in place; a compressed one is decompressed into a
 * scratch kr_buf with a cap (MESSAGE_TOO_LARGE past it).
 */
#ifndef KR_KAFKA_CODEC_H
#define KR_KAFKA_CODEC_H

#include "kafka/api.h"
#include "kafka/arena.h"
#include "kafka/batch.h"
#include "kafka/compress.h"
#include "kafka/errors.h"
#include "kafka/event.h"
#include "kafka/schema.h"
#include "kafka/wire.h"

#endif
