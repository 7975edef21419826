/*
 * kafka/api_schemas.c - the layout of every request and response (api.h),
 * written from apache/kafka's clients/src/main/resources/common/message/ (a
 * .json file per message), and the table of APIs with the versions krappy
 * advertises.
 *
 * Each field line reads: member, first and last version it is on the wire
 * (V = all later ones), for strings/bytes/arrays the first version it may be
 * null (NN = never), and its default when absent. The macros check at
 * compile time that the member has the size of its wire type, and for
 * arrays that the element type matches the element schema.
 */
#include "kafka/api.h"

#include <stddef.h>

#define V  KR_KAFKA_VMAX
#define NN KR_KAFKA_NEVER_NULL
#define DN KR_KAFKA_DEF_NULL

#define KT_SIZE(t)                                                                                 \
    ((t) == KR_KT_I8      ? sizeof(int8_t)                                                         \
     : (t) == KR_KT_I16   ? sizeof(int16_t)                                                        \
     : (t) == KR_KT_I32   ? sizeof(int32_t)                                                        \
     : (t) == KR_KT_I64   ? sizeof(int64_t)                                                        \
     : (t) == KR_KT_BOOL  ? sizeof(bool)                                                           \
     : (t) == KR_KT_STR   ? sizeof(kr_kafka_str)                                                   \
     : (t) == KR_KT_BYTES ? sizeof(kr_kafka_bytes)                                                 \
                          : sizeof(kr_kafka_array))

/* 0, or a compile error when `cond` is false. */
#define STATIC_ZERO(cond) (0 * sizeof(char[(cond) ? 1 : -1]))

#define OFF(S, m, t) ((uint16_t)(offsetof(S, m) + STATIC_ZERO(sizeof(((S *)0)->m) == KT_SIZE(t))))

/* clang-format off */
#define FIELD(S, m, t, lo, hi, nf, d, e) {#m, t, lo, hi, nf, OFF(S, m, t), d, e}
#define I8(S, m, lo, hi, d)              FIELD(S, m, KR_KT_I8, lo, hi, NN, d, NULL)
#define I16(S, m, lo, hi, d)             FIELD(S, m, KR_KT_I16, lo, hi, NN, d, NULL)
#define I32(S, m, lo, hi, d)             FIELD(S, m, KR_KT_I32, lo, hi, NN, d, NULL)
#define I64(S, m, lo, hi, d)             FIELD(S, m, KR_KT_I64, lo, hi, NN, d, NULL)
#define BOOL(S, m, lo, hi, d)            FIELD(S, m, KR_KT_BOOL, lo, hi, NN, d, NULL)
#define STR(S, m, lo, hi, nf, d)         FIELD(S, m, KR_KT_STR, lo, hi, nf, d, NULL)
#define BYTES(S, m, lo, hi, nf, d)       FIELD(S, m, KR_KT_BYTES, lo, hi, nf, d, NULL)
#define ARR(S, m, lo, hi, nf, d, ES, ET)                                                           \
    {#m, KR_KT_ARRAY, lo, hi, nf,                                                                  \
     (uint16_t)(OFF(S, m, KR_KT_ARRAY) + STATIC_ZERO(sizeof(*((S *)0)->m.v) == sizeof(ET))),       \
     d, &ES}
/* clang-format on */

#define SCHEMA(id, kname, S)                                                                       \
    static const kr_kafka_schema id = {kname, id##_f, sizeof id##_f / sizeof id##_f[0], sizeof(S)}

/* ---- arrays of primitives ---- */

static const kr_kafka_field s_i32_f[] = {{"int32", KR_KT_I32, 0, V, NN, 0, 0, NULL}};
static const kr_kafka_schema s_i32 = {"[]int32", s_i32_f, 1, sizeof(int32_t)};
static const kr_kafka_field s_i64_f[] = {{"int64", KR_KT_I64, 0, V, NN, 0, 0, NULL}};
static const kr_kafka_schema s_i64 = {"[]int64", s_i64_f, 1, sizeof(int64_t)};
static const kr_kafka_field s_str_f[] = {{"string", KR_KT_STR, 0, V, NN, 0, 0, NULL}};
static const kr_kafka_schema s_str = {"[]string", s_str_f, 1, sizeof(kr_kafka_str)};

/* ---- Produce ---- */

#define S kr_kafka_produce_req_partition
static const kr_kafka_field produce_req_partition_f[] = {
    I32(S, index, 0, V, 0),
    BYTES(S, records, 0, V, 0, 0),
};
SCHEMA(produce_req_partition, "PartitionProduceData", S);
#undef S
#define S kr_kafka_produce_req_topic
static const kr_kafka_field produce_req_topic_f[] = {
    STR(S, name, 0, V, NN, 0),
    ARR(S, partitions, 0, V, NN, 0, produce_req_partition, kr_kafka_produce_req_partition),
};
SCHEMA(produce_req_topic, "TopicProduceData", S);
#undef S
#define S kr_kafka_produce_req
static const kr_kafka_field produce_req_f[] = {
    STR(S, transactional_id, 3, V, 0, DN),
    I16(S, acks, 0, V, 0),
    I32(S, timeout_ms, 0, V, 0),
    ARR(S, topics, 0, V, NN, 0, produce_req_topic, kr_kafka_produce_req_topic),
};
SCHEMA(produce_req, "ProduceRequest", S);
#undef S

#define S kr_kafka_produce_record_error
static const kr_kafka_field produce_record_error_f[] = {
    I32(S, batch_index, 8, V, 0),
    STR(S, batch_index_error_message, 8, V, 8, DN),
};
SCHEMA(produce_record_error, "BatchIndexAndErrorMessage", S);
#undef S
#define S kr_kafka_produce_resp_partition
static const kr_kafka_field produce_resp_partition_f[] = {
    I32(S, index, 0, V, 0),
    I16(S, error_code, 0, V, 0),
    I64(S, base_offset, 0, V, 0),
    I64(S, log_append_time_ms, 2, V, -1),
    I64(S, log_start_offset, 5, V, -1),
    ARR(S, record_errors, 8, V, NN, 0, produce_record_error, kr_kafka_produce_record_error),
    STR(S, error_message, 8, V, 8, DN),
};
SCHEMA(produce_resp_partition, "PartitionProduceResponse", S);
#undef S
#define S kr_kafka_produce_resp_topic
static const kr_kafka_field produce_resp_topic_f[] = {
    STR(S, name, 0, V, NN, 0),
    ARR(S, partitions, 0, V, NN, 0, produce_resp_partition, kr_kafka_produce_resp_partition),
};
SCHEMA(produce_resp_topic, "TopicProduceResponse", S);
#undef S
#define S kr_kafka_produce_resp
static const kr_kafka_field produce_resp_f[] = {
    ARR(S, responses, 0, V, NN, 0, produce_resp_topic, kr_kafka_produce_resp_topic),
    I32(S, throttle_time_ms, 1, V, 0),
};
SCHEMA(produce_resp, "ProduceResponse", S);
#undef S

/* ---- Fetch ---- */

#define S kr_kafka_fetch_req_partition
static const kr_kafka_field fetch_req_partition_f[] = {
    I32(S, partition, 0, V, 0),           I32(S, current_leader_epoch, 9, V, -1),
    I64(S, fetch_offset, 0, V, 0),        I64(S, log_start_offset, 5, V, -1),
    I32(S, partition_max_bytes, 0, V, 0),
};
SCHEMA(fetch_req_partition, "FetchPartition", S);
#undef S
#define S kr_kafka_fetch_req_topic
static const kr_kafka_field fetch_req_topic_f[] = {
    STR(S, topic, 0, V, NN, 0),
    ARR(S, partitions, 0, V, NN, 0, fetch_req_partition, kr_kafka_fetch_req_partition),
};
SCHEMA(fetch_req_topic, "FetchTopic", S);
#undef S
#define S kr_kafka_fetch_forgotten_topic
static const kr_kafka_field fetch_forgotten_topic_f[] = {
    STR(S, topic, 7, V, NN, 0),
    ARR(S, partitions, 7, V, NN, 0, s_i32, int32_t),
};
SCHEMA(fetch_forgotten_topic, "ForgottenTopic", S);
#undef S
#define S kr_kafka_fetch_req
static const kr_kafka_field fetch_req_f[] = {
    I32(S, replica_id, 0, V, 0),
    I32(S, max_wait_ms, 0, V, 0),
    I32(S, min_bytes, 0, V, 0),
    I32(S, max_bytes, 3, V, 0x7fffffff),
    I8(S, isolation_level, 4, V, 0),
    I32(S, session_id, 7, V, 0),
    I32(S, session_epoch, 7, V, -1),
    ARR(S, topics, 0, V, NN, 0, fetch_req_topic, kr_kafka_fetch_req_topic),
    ARR(S, forgotten_topics_data, 7, V, NN, 0, fetch_forgotten_topic,
        kr_kafka_fetch_forgotten_topic),
    STR(S, rack_id, 11, V, NN, 0),
};
SCHEMA(fetch_req, "FetchRequest", S);
#undef S

#define S kr_kafka_fetch_aborted_txn
static const kr_kafka_field fetch_aborted_txn_f[] = {
    I64(S, producer_id, 4, V, 0),
    I64(S, first_offset, 4, V, 0),
};
SCHEMA(fetch_aborted_txn, "AbortedTransaction", S);
#undef S
#define S kr_kafka_fetch_resp_partition
static const kr_kafka_field fetch_resp_partition_f[] = {
    I32(S, partition_index, 0, V, 0),
    I16(S, error_code, 0, V, 0),
    I64(S, high_watermark, 0, V, 0),
    I64(S, last_stable_offset, 4, V, -1),
    I64(S, log_start_offset, 5, V, -1),
    ARR(S, aborted_transactions, 4, V, 4, 0, fetch_aborted_txn, kr_kafka_fetch_aborted_txn),
    I32(S, preferred_read_replica, 11, V, -1),
    BYTES(S, records, 0, V, 0, 0),
};
SCHEMA(fetch_resp_partition, "PartitionData", S);
#undef S
#define S kr_kafka_fetch_resp_topic
static const kr_kafka_field fetch_resp_topic_f[] = {
    STR(S, topic, 0, V, NN, 0),
    ARR(S, partitions, 0, V, NN, 0, fetch_resp_partition, kr_kafka_fetch_resp_partition),
};
SCHEMA(fetch_resp_topic, "FetchableTopicResponse", S);
#undef S
#define S kr_kafka_fetch_resp
static const kr_kafka_field fetch_resp_f[] = {
    I32(S, throttle_time_ms, 1, V, 0),
    I16(S, error_code, 7, V, 0),
    I32(S, session_id, 7, V, 0),
    ARR(S, responses, 0, V, NN, 0, fetch_resp_topic, kr_kafka_fetch_resp_topic),
};
SCHEMA(fetch_resp, "FetchResponse", S);
#undef S

/* ---- ListOffsets ---- */

#define S kr_kafka_list_offsets_req_partition
static const kr_kafka_field list_offsets_req_partition_f[] = {
    I32(S, partition_index, 0, V, 0),
    I32(S, current_leader_epoch, 4, V, -1),
    I64(S, timestamp, 0, V, 0),
    I32(S, max_num_offsets, 0, 0, 1),
};
SCHEMA(list_offsets_req_partition, "ListOffsetsPartition", S);
#undef S
#define S kr_kafka_list_offsets_req_topic
static const kr_kafka_field list_offsets_req_topic_f[] = {
    STR(S, name, 0, V, NN, 0),
    ARR(S, partitions, 0, V, NN, 0, list_offsets_req_partition,
        kr_kafka_list_offsets_req_partition),
};
SCHEMA(list_offsets_req_topic, "ListOffsetsTopic", S);
#undef S
#define S kr_kafka_list_offsets_req
static const kr_kafka_field list_offsets_req_f[] = {
    I32(S, replica_id, 0, V, 0),
    I8(S, isolation_level, 2, V, 0),
    ARR(S, topics, 0, V, NN, 0, list_offsets_req_topic, kr_kafka_list_offsets_req_topic),
};
SCHEMA(list_offsets_req, "ListOffsetsRequest", S);
#undef S

#define S kr_kafka_list_offsets_resp_partition
static const kr_kafka_field list_offsets_resp_partition_f[] = {
    I32(S, partition_index, 0, V, 0),
    I16(S, error_code, 0, V, 0),
    ARR(S, old_style_offsets, 0, 0, NN, 0, s_i64, int64_t),
    I64(S, timestamp, 1, V, -1),
    I64(S, offset, 1, V, -1),
    I32(S, leader_epoch, 4, V, -1),
};
SCHEMA(list_offsets_resp_partition, "ListOffsetsPartitionResponse", S);
#undef S
#define S kr_kafka_list_offsets_resp_topic
static const kr_kafka_field list_offsets_resp_topic_f[] = {
    STR(S, name, 0, V, NN, 0),
    ARR(S, partitions, 0, V, NN, 0, list_offsets_resp_partition,
        kr_kafka_list_offsets_resp_partition),
};
SCHEMA(list_offsets_resp_topic, "ListOffsetsTopicResponse", S);
#undef S
#define S kr_kafka_list_offsets_resp
static const kr_kafka_field list_offsets_resp_f[] = {
    I32(S, throttle_time_ms, 2, V, 0),
    ARR(S, topics, 0, V, NN, 0, list_offsets_resp_topic, kr_kafka_list_offsets_resp_topic),
};
SCHEMA(list_offsets_resp, "ListOffsetsResponse", S);
#undef S

/* ---- Metadata ---- */

#define S kr_kafka_metadata_req
static const kr_kafka_field metadata_req_f[] = {
    ARR(S, topics, 0, V, 1, 0, s_str, kr_kafka_str),
    BOOL(S, allow_auto_topic_creation, 4, V, 1),
    BOOL(S, include_cluster_authorized_operations, 8, 10, 0),
    BOOL(S, include_topic_authorized_operations, 8, V, 0),
};
SCHEMA(metadata_req, "MetadataRequest", S);
#undef S

#define S kr_kafka_metadata_broker
static const kr_kafka_field metadata_broker_f[] = {
    I32(S, node_id, 0, V, 0),
    STR(S, host, 0, V, NN, 0),
    I32(S, port, 0, V, 0),
    STR(S, rack, 1, V, 1, DN),
};
SCHEMA(metadata_broker, "MetadataResponseBroker", S);
#undef S
#define S kr_kafka_metadata_partition
static const kr_kafka_field metadata_partition_f[] = {
    I16(S, error_code, 0, V, 0),
    I32(S, partition_index, 0, V, 0),
    I32(S, leader_id, 0, V, 0),
    I32(S, leader_epoch, 7, V, -1),
    ARR(S, replica_nodes, 0, V, NN, 0, s_i32, int32_t),
    ARR(S, isr_nodes, 0, V, NN, 0, s_i32, int32_t),
    ARR(S, offline_replicas, 5, V, NN, 0, s_i32, int32_t),
};
SCHEMA(metadata_partition, "MetadataResponsePartition", S);
#undef S
#define S kr_kafka_metadata_topic
static const kr_kafka_field metadata_topic_f[] = {
    I16(S, error_code, 0, V, 0),
    STR(S, name, 0, V, NN, 0),
    BOOL(S, is_internal, 1, V, 0),
    ARR(S, partitions, 0, V, NN, 0, metadata_partition, kr_kafka_metadata_partition),
    I32(S, topic_authorized_operations, 8, V, INT32_MIN),
};
SCHEMA(metadata_topic, "MetadataResponseTopic", S);
#undef S
#define S kr_kafka_metadata_resp
static const kr_kafka_field metadata_resp_f[] = {
    I32(S, throttle_time_ms, 3, V, 0),
    ARR(S, brokers, 0, V, NN, 0, metadata_broker, kr_kafka_metadata_broker),
    STR(S, cluster_id, 2, V, 2, DN),
    I32(S, controller_id, 1, V, -1),
    ARR(S, topics, 0, V, NN, 0, metadata_topic, kr_kafka_metadata_topic),
    I32(S, cluster_authorized_operations, 8, V, INT32_MIN),
};
SCHEMA(metadata_resp, "MetadataResponse", S);
#undef S

/* ---- OffsetCommit ---- */

#define S kr_kafka_offset_commit_req_partition
static const kr_kafka_field offset_commit_req_partition_f[] = {
    I32(S, partition_index, 0, V, 0),         I64(S, committed_offset, 0, V, 0),
    I32(S, committed_leader_epoch, 6, V, -1), I64(S, commit_timestamp, 1, 1, -1),
    STR(S, committed_metadata, 0, V, 0, 0),
};
SCHEMA(offset_commit_req_partition, "OffsetCommitRequestPartition", S);
#undef S
#define S kr_kafka_offset_commit_req_topic
static const kr_kafka_field offset_commit_req_topic_f[] = {
    STR(S, name, 0, V, NN, 0),
    ARR(S, partitions, 0, V, NN, 0, offset_commit_req_partition,
        kr_kafka_offset_commit_req_partition),
};
SCHEMA(offset_commit_req_topic, "OffsetCommitRequestTopic", S);
#undef S
#define S kr_kafka_offset_commit_req
static const kr_kafka_field offset_commit_req_f[] = {
    STR(S, group_id, 0, V, NN, 0),
    I32(S, generation_id, 1, V, -1),
    STR(S, member_id, 1, V, NN, 0),
    STR(S, group_instance_id, 7, V, 7, DN),
    I64(S, retention_time_ms, 2, 4, -1),
    ARR(S, topics, 0, V, NN, 0, offset_commit_req_topic, kr_kafka_offset_commit_req_topic),
};
SCHEMA(offset_commit_req, "OffsetCommitRequest", S);
#undef S

#define S kr_kafka_offset_commit_resp_partition
static const kr_kafka_field offset_commit_resp_partition_f[] = {
    I32(S, partition_index, 0, V, 0),
    I16(S, error_code, 0, V, 0),
};
SCHEMA(offset_commit_resp_partition, "OffsetCommitResponsePartition", S);
#undef S
#define S kr_kafka_offset_commit_resp_topic
static const kr_kafka_field offset_commit_resp_topic_f[] = {
    STR(S, name, 0, V, NN, 0),
    ARR(S, partitions, 0, V, NN, 0, offset_commit_resp_partition,
        kr_kafka_offset_commit_resp_partition),
};
SCHEMA(offset_commit_resp_topic, "OffsetCommitResponseTopic", S);
#undef S
#define S kr_kafka_offset_commit_resp
static const kr_kafka_field offset_commit_resp_f[] = {
    I32(S, throttle_time_ms, 3, V, 0),
    ARR(S, topics, 0, V, NN, 0, offset_commit_resp_topic, kr_kafka_offset_commit_resp_topic),
};
SCHEMA(offset_commit_resp, "OffsetCommitResponse", S);
#undef S

/* ---- OffsetFetch ---- */

#define S kr_kafka_offset_fetch_req_topic
static const kr_kafka_field offset_fetch_req_topic_f[] = {
    STR(S, name, 0, V, NN, 0),
    ARR(S, partition_indexes, 0, V, NN, 0, s_i32, int32_t),
};
SCHEMA(offset_fetch_req_topic, "OffsetFetchRequestTopic", S);
#undef S
#define S kr_kafka_offset_fetch_req
static const kr_kafka_field offset_fetch_req_f[] = {
    STR(S, group_id, 0, V, NN, 0),
    ARR(S, topics, 0, V, 2, 0, offset_fetch_req_topic, kr_kafka_offset_fetch_req_topic),
};
SCHEMA(offset_fetch_req, "OffsetFetchRequest", S);
#undef S

#define S kr_kafka_offset_fetch_resp_partition
static const kr_kafka_field offset_fetch_resp_partition_f[] = {
    I32(S, partition_index, 0, V, 0),
    I64(S, committed_offset, 0, V, 0),
    I32(S, committed_leader_epoch, 5, V, -1),
    STR(S, metadata, 0, V, 0, 0),
    I16(S, error_code, 0, V, 0),
};
SCHEMA(offset_fetch_resp_partition, "OffsetFetchResponsePartition", S);
#undef S
#define S kr_kafka_offset_fetch_resp_topic
static const kr_kafka_field offset_fetch_resp_topic_f[] = {
    STR(S, name, 0, V, NN, 0),
    ARR(S, partitions, 0, V, NN, 0, offset_fetch_resp_partition,
        kr_kafka_offset_fetch_resp_partition),
};
SCHEMA(offset_fetch_resp_topic, "OffsetFetchResponseTopic", S);
#undef S
#define S kr_kafka_offset_fetch_resp
static const kr_kafka_field offset_fetch_resp_f[] = {
    I32(S, throttle_time_ms, 3, V, 0),
    ARR(S, topics, 0, V, NN, 0, offset_fetch_resp_topic, kr_kafka_offset_fetch_resp_topic),
    I16(S, error_code, 2, V, 0),
};
SCHEMA(offset_fetch_resp, "OffsetFetchResponse", S);
#undef S

/* ---- FindCoordinator ---- */

#define S kr_kafka_find_coordinator_req
static const kr_kafka_field find_coordinator_req_f[] = {
    STR(S, key, 0, V, NN, 0),
    I8(S, key_type, 1, V, 0),
};
SCHEMA(find_coordinator_req, "FindCoordinatorRequest", S);
#undef S
#define S kr_kafka_find_coordinator_resp
static const kr_kafka_field find_coordinator_resp_f[] = {
    I32(S, throttle_time_ms, 1, V, 0),  I16(S, error_code, 0, V, 0),
    STR(S, error_message, 1, V, 1, DN), I32(S, node_id, 0, V, 0),
    STR(S, host, 0, V, NN, 0),          I32(S, port, 0, V, 0),
};
SCHEMA(find_coordinator_resp, "FindCoordinatorResponse", S);
#undef S

/* ---- JoinGroup ---- */

#define S kr_kafka_join_group_protocol
static const kr_kafka_field join_group_protocol_f[] = {
    STR(S, name, 0, V, NN, 0),
    BYTES(S, metadata, 0, V, NN, 0),
};
SCHEMA(join_group_protocol, "JoinGroupRequestProtocol", S);
#undef S
#define S kr_kafka_join_group_req
static const kr_kafka_field join_group_req_f[] = {
    STR(S, group_id, 0, V, NN, 0),
    I32(S, session_timeout_ms, 0, V, 0),
    I32(S, rebalance_timeout_ms, 1, V, -1),
    STR(S, member_id, 0, V, NN, 0),
    STR(S, group_instance_id, 5, V, 5, DN),
    STR(S, protocol_type, 0, V, NN, 0),
    ARR(S, protocols, 0, V, NN, 0, join_group_protocol, kr_kafka_join_group_protocol),
};
SCHEMA(join_group_req, "JoinGroupRequest", S);
#undef S

#define S kr_kafka_join_group_member
static const kr_kafka_field join_group_member_f[] = {
    STR(S, member_id, 0, V, NN, 0),
    STR(S, group_instance_id, 5, V, 5, DN),
    BYTES(S, metadata, 0, V, NN, 0),
};
SCHEMA(join_group_member, "JoinGroupResponseMember", S);
#undef S
#define S kr_kafka_join_group_resp
static const kr_kafka_field join_group_resp_f[] = {
    I32(S, throttle_time_ms, 2, V, 0),
    I16(S, error_code, 0, V, 0),
    I32(S, generation_id, 0, V, -1),
    STR(S, protocol_name, 0, V, NN, 0),
    STR(S, leader, 0, V, NN, 0),
    STR(S, member_id, 0, V, NN, 0),
    ARR(S, members, 0, V, NN, 0, join_group_member, kr_kafka_join_group_member),
};
SCHEMA(join_group_resp, "JoinGroupResponse", S);
#undef S

/* ---- Heartbeat ---- */

#define S kr_kafka_heartbeat_req
static const kr_kafka_field heartbeat_req_f[] = {
    STR(S, group_id, 0, V, NN, 0),
    I32(S, generation_id, 0, V, 0),
    STR(S, member_id, 0, V, NN, 0),
    STR(S, group_instance_id, 3, V, 3, DN),
};
SCHEMA(heartbeat_req, "HeartbeatRequest", S);
#undef S
#define S kr_kafka_heartbeat_resp
static const kr_kafka_field heartbeat_resp_f[] = {
    I32(S, throttle_time_ms, 1, V, 0),
    I16(S, error_code, 0, V, 0),
};
SCHEMA(heartbeat_resp, "HeartbeatResponse", S);
#undef S

/* ---- LeaveGroup ---- */

#define S kr_kafka_leave_group_member
static const kr_kafka_field leave_group_member_f[] = {
    STR(S, member_id, 3, V, NN, 0),
    STR(S, group_instance_id, 3, V, 3, DN),
};
SCHEMA(leave_group_member, "MemberIdentity", S);
#undef S
#define S kr_kafka_leave_group_req
static const kr_kafka_field leave_group_req_f[] = {
    STR(S, group_id, 0, V, NN, 0),
    STR(S, member_id, 0, 2, NN, 0),
    ARR(S, members, 3, V, NN, 0, leave_group_member, kr_kafka_leave_group_member),
};
SCHEMA(leave_group_req, "LeaveGroupRequest", S);
#undef S

#define S kr_kafka_leave_group_member_resp
static const kr_kafka_field leave_group_member_resp_f[] = {
    STR(S, member_id, 3, V, NN, 0),
    STR(S, group_instance_id, 3, V, 3, DN),
    I16(S, error_code, 3, V, 0),
};
SCHEMA(leave_group_member_resp, "MemberResponse", S);
#undef S
#define S kr_kafka_leave_group_resp
static const kr_kafka_field leave_group_resp_f[] = {
    I32(S, throttle_time_ms, 1, V, 0),
    I16(S, error_code, 0, V, 0),
    ARR(S, members, 3, V, NN, 0, leave_group_member_resp, kr_kafka_leave_group_member_resp),
};
SCHEMA(leave_group_resp, "LeaveGroupResponse", S);
#undef S

/* ---- SyncGroup ---- */

#define S kr_kafka_sync_group_assignment
static const kr_kafka_field sync_group_assignment_f[] = {
    STR(S, member_id, 0, V, NN, 0),
    BYTES(S, assignment, 0, V, NN, 0),
};
SCHEMA(sync_group_assignment, "SyncGroupRequestAssignment", S);
#undef S
#define S kr_kafka_sync_group_req
static const kr_kafka_field sync_group_req_f[] = {
    STR(S, group_id, 0, V, NN, 0),
    I32(S, generation_id, 0, V, 0),
    STR(S, member_id, 0, V, NN, 0),
    STR(S, group_instance_id, 3, V, 3, DN),
    ARR(S, assignments, 0, V, NN, 0, sync_group_assignment, kr_kafka_sync_group_assignment),
};
SCHEMA(sync_group_req, "SyncGroupRequest", S);
#undef S
#define S kr_kafka_sync_group_resp
static const kr_kafka_field sync_group_resp_f[] = {
    I32(S, throttle_time_ms, 1, V, 0),
    I16(S, error_code, 0, V, 0),
    BYTES(S, assignment, 0, V, NN, 0),
};
SCHEMA(sync_group_resp, "SyncGroupResponse", S);
#undef S

/* ---- SaslHandshake ---- */

#define S kr_kafka_sasl_handshake_req
static const kr_kafka_field sasl_handshake_req_f[] = {
    STR(S, mechanism, 0, V, NN, 0),
};
SCHEMA(sasl_handshake_req, "SaslHandshakeRequest", S);
#undef S
#define S kr_kafka_sasl_handshake_resp
static const kr_kafka_field sasl_handshake_resp_f[] = {
    I16(S, error_code, 0, V, 0),
    ARR(S, mechanisms, 0, V, NN, 0, s_str, kr_kafka_str),
};
SCHEMA(sasl_handshake_resp, "SaslHandshakeResponse", S);
#undef S

/* ---- ApiVersions ---- */

/* v0-v2 requests have an empty body. */
static const kr_kafka_schema api_versions_req = {"ApiVersionsRequest", NULL, 0,
                                                 sizeof(kr_kafka_api_versions_req)};

#define S kr_kafka_api_version
static const kr_kafka_field api_version_f[] = {
    I16(S, api_key, 0, V, 0),
    I16(S, min_version, 0, V, 0),
    I16(S, max_version, 0, V, 0),
};
SCHEMA(api_version, "ApiVersion", S);
#undef S
#define S kr_kafka_api_versions_resp
static const kr_kafka_field api_versions_resp_f[] = {
    I16(S, error_code, 0, V, 0),
    ARR(S, api_keys, 0, V, NN, 0, api_version, kr_kafka_api_version),
    I32(S, throttle_time_ms, 1, V, 0),
};
SCHEMA(api_versions_resp, "ApiVersionsResponse", S);
#undef S

/* ---- CreateTopics ---- */

#define S kr_kafka_create_topics_assignment
static const kr_kafka_field create_topics_assignment_f[] = {
    I32(S, partition_index, 0, V, 0),
    ARR(S, broker_ids, 0, V, NN, 0, s_i32, int32_t),
};
SCHEMA(create_topics_assignment, "CreatableReplicaAssignment", S);
#undef S
#define S kr_kafka_create_topics_config
static const kr_kafka_field create_topics_config_f[] = {
    STR(S, name, 0, V, NN, 0),
    STR(S, value, 0, V, 0, 0),
};
SCHEMA(create_topics_config, "CreateableTopicConfig", S);
#undef S
#define S kr_kafka_create_topics_topic
static const kr_kafka_field create_topics_topic_f[] = {
    STR(S, name, 0, V, NN, 0),
    I32(S, num_partitions, 0, V, 0),
    I16(S, replication_factor, 0, V, 0),
    ARR(S, assignments, 0, V, NN, 0, create_topics_assignment, kr_kafka_create_topics_assignment),
    ARR(S, configs, 0, V, NN, 0, create_topics_config, kr_kafka_create_topics_config),
};
SCHEMA(create_topics_topic, "CreatableTopic", S);
#undef S
#define S kr_kafka_create_topics_req
static const kr_kafka_field create_topics_req_f[] = {
    ARR(S, topics, 0, V, NN, 0, create_topics_topic, kr_kafka_create_topics_topic),
    I32(S, timeout_ms, 0, V, 60000),
    BOOL(S, validate_only, 1, V, 0),
};
SCHEMA(create_topics_req, "CreateTopicsRequest", S);
#undef S

#define S kr_kafka_create_topics_result
static const kr_kafka_field create_topics_result_f[] = {
    STR(S, name, 0, V, NN, 0),
    I16(S, error_code, 0, V, 0),
    STR(S, error_message, 1, V, 0, DN),
};
SCHEMA(create_topics_result, "CreatableTopicResult", S);
#undef S
#define S kr_kafka_create_topics_resp
static const kr_kafka_field create_topics_resp_f[] = {
    I32(S, throttle_time_ms, 2, V, 0),
    ARR(S, topics, 0, V, NN, 0, create_topics_result, kr_kafka_create_topics_result),
};
SCHEMA(create_topics_resp, "CreateTopicsResponse", S);
#undef S

/* ---- DeleteTopics ---- */

#define S kr_kafka_delete_topics_req
static const kr_kafka_field delete_topics_req_f[] = {
    ARR(S, topic_names, 0, V, NN, 0, s_str, kr_kafka_str),
    I32(S, timeout_ms, 0, V, 0),
};
SCHEMA(delete_topics_req, "DeleteTopicsRequest", S);
#undef S
#define S kr_kafka_delete_topics_result
static const kr_kafka_field delete_topics_result_f[] = {
    STR(S, name, 0, V, NN, 0),
    I16(S, error_code, 0, V, 0),
};
SCHEMA(delete_topics_result, "DeletableTopicResult", S);
#undef S
#define S kr_kafka_delete_topics_resp
static const kr_kafka_field delete_topics_resp_f[] = {
    I32(S, throttle_time_ms, 1, V, 0),
    ARR(S, responses, 0, V, NN, 0, delete_topics_result, kr_kafka_delete_topics_result),
};
SCHEMA(delete_topics_resp, "DeleteTopicsResponse", S);
#undef S

/* ---- InitProducerId ---- */

#define S kr_kafka_init_producer_id_req
static const kr_kafka_field init_producer_id_req_f[] = {
    STR(S, transactional_id, 0, V, 0, DN),
    I32(S, transaction_timeout_ms, 0, V, 0),
};
SCHEMA(init_producer_id_req, "InitProducerIdRequest", S);
#undef S
#define S kr_kafka_init_producer_id_resp
static const kr_kafka_field init_producer_id_resp_f[] = {
    I32(S, throttle_time_ms, 0, V, 0),
    I16(S, error_code, 0, V, 0),
    I64(S, producer_id, 0, V, -1),
    I16(S, producer_epoch, 0, V, 0),
};
SCHEMA(init_producer_id_resp, "InitProducerIdResponse", S);
#undef S

/* ---- DescribeConfigs ---- */

#define S kr_kafka_describe_configs_resource
static const kr_kafka_field describe_configs_resource_f[] = {
    I8(S, resource_type, 0, V, 0),
    STR(S, resource_name, 0, V, NN, 0),
    ARR(S, configuration_keys, 0, V, 0, 0, s_str, kr_kafka_str),
};
SCHEMA(describe_configs_resource, "DescribeConfigsResource", S);
#undef S
#define S kr_kafka_describe_configs_req
static const kr_kafka_field describe_configs_req_f[] = {
    ARR(S, resources, 0, V, NN, 0, describe_configs_resource, kr_kafka_describe_configs_resource),
    BOOL(S, include_synonyms, 1, V, 0),
    BOOL(S, include_documentation, 3, V, 0),
};
SCHEMA(describe_configs_req, "DescribeConfigsRequest", S);
#undef S

#define S kr_kafka_describe_configs_synonym
static const kr_kafka_field describe_configs_synonym_f[] = {
    STR(S, name, 1, V, NN, 0),
    STR(S, value, 1, V, 0, 0),
    I8(S, source, 1, V, 0),
};
SCHEMA(describe_configs_synonym, "DescribeConfigsSynonym", S);
#undef S
#define S kr_kafka_describe_configs_entry
static const kr_kafka_field describe_configs_entry_f[] = {
    STR(S, name, 0, V, NN, 0),
    STR(S, value, 0, V, 0, 0),
    BOOL(S, read_only, 0, V, 0),
    BOOL(S, is_default, 0, 0, 0),
    I8(S, config_source, 1, V, -1),
    BOOL(S, is_sensitive, 0, V, 0),
    ARR(S, synonyms, 1, V, NN, 0, describe_configs_synonym, kr_kafka_describe_configs_synonym),
    I8(S, config_type, 3, V, 0),
    STR(S, documentation, 3, V, 0, 0),
};
SCHEMA(describe_configs_entry, "DescribeConfigsResourceResult", S);
#undef S
#define S kr_kafka_describe_configs_result
static const kr_kafka_field describe_configs_result_f[] = {
    I16(S, error_code, 0, V, 0),
    STR(S, error_message, 0, V, 0, 0),
    I8(S, resource_type, 0, V, 0),
    STR(S, resource_name, 0, V, NN, 0),
    ARR(S, configs, 0, V, NN, 0, describe_configs_entry, kr_kafka_describe_configs_entry),
};
SCHEMA(describe_configs_result, "DescribeConfigsResult", S);
#undef S
#define S kr_kafka_describe_configs_resp
static const kr_kafka_field describe_configs_resp_f[] = {
    I32(S, throttle_time_ms, 0, V, 0),
    ARR(S, results, 0, V, NN, 0, describe_configs_result, kr_kafka_describe_configs_result),
};
SCHEMA(describe_configs_resp, "DescribeConfigsResponse", S);
#undef S

/* ---- AlterConfigs and IncrementalAlterConfigs ---- */

#define S kr_kafka_alter_configs_entry
static const kr_kafka_field alter_configs_entry_f[] = {
    STR(S, name, 0, V, NN, 0),
    STR(S, value, 0, V, 0, 0),
};
SCHEMA(alter_configs_entry, "AlterableConfig", S);
static const kr_kafka_field incremental_alter_configs_entry_f[] = {
    STR(S, name, 0, V, NN, 0),
    I8(S, config_operation, 0, V, 0),
    STR(S, value, 0, V, 0, 0),
};
SCHEMA(incremental_alter_configs_entry, "AlterableConfig", S);
#undef S
#define S kr_kafka_alter_configs_resource
static const kr_kafka_field alter_configs_resource_f[] = {
    I8(S, resource_type, 0, V, 0),
    STR(S, resource_name, 0, V, NN, 0),
    ARR(S, configs, 0, V, NN, 0, alter_configs_entry, kr_kafka_alter_configs_entry),
};
SCHEMA(alter_configs_resource, "AlterConfigsResource", S);
static const kr_kafka_field incremental_alter_configs_resource_f[] = {
    I8(S, resource_type, 0, V, 0),
    STR(S, resource_name, 0, V, NN, 0),
    ARR(S, configs, 0, V, NN, 0, incremental_alter_configs_entry, kr_kafka_alter_configs_entry),
};
SCHEMA(incremental_alter_configs_resource, "AlterConfigsResource", S);
#undef S
#define S kr_kafka_alter_configs_req
static const kr_kafka_field alter_configs_req_f[] = {
    ARR(S, resources, 0, V, NN, 0, alter_configs_resource, kr_kafka_alter_configs_resource),
    BOOL(S, validate_only, 0, V, 0),
};
SCHEMA(alter_configs_req, "AlterConfigsRequest", S);
static const kr_kafka_field incremental_alter_configs_req_f[] = {
    ARR(S, resources, 0, V, NN, 0, incremental_alter_configs_resource,
        kr_kafka_alter_configs_resource),
    BOOL(S, validate_only, 0, V, 0),
};
SCHEMA(incremental_alter_configs_req, "IncrementalAlterConfigsRequest", S);
#undef S

#define S kr_kafka_alter_configs_result
static const kr_kafka_field alter_configs_result_f[] = {
    I16(S, error_code, 0, V, 0),
    STR(S, error_message, 0, V, 0, 0),
    I8(S, resource_type, 0, V, 0),
    STR(S, resource_name, 0, V, NN, 0),
};
SCHEMA(alter_configs_result, "AlterConfigsResourceResponse", S);
#undef S
#define S kr_kafka_alter_configs_resp
static const kr_kafka_field alter_configs_resp_f[] = {
    I32(S, throttle_time_ms, 0, V, 0),
    ARR(S, responses, 0, V, NN, 0, alter_configs_result, kr_kafka_alter_configs_result),
};
SCHEMA(alter_configs_resp, "AlterConfigsResponse", S);
#undef S

/* ---- SaslAuthenticate ---- */

#define S kr_kafka_sasl_authenticate_req
static const kr_kafka_field sasl_authenticate_req_f[] = {
    BYTES(S, auth_bytes, 0, V, NN, 0),
};
SCHEMA(sasl_authenticate_req, "SaslAuthenticateRequest", S);
#undef S
#define S kr_kafka_sasl_authenticate_resp
static const kr_kafka_field sasl_authenticate_resp_f[] = {
    I16(S, error_code, 0, V, 0),
    STR(S, error_message, 0, V, 0, 0),
    BYTES(S, auth_bytes, 0, V, NN, 0),
    I64(S, session_lifetime_ms, 1, V, 0),
};
SCHEMA(sasl_authenticate_resp, "SaslAuthenticateResponse", S);
#undef S

/*
 * The APIs krappy speaks, by key, with the versions it advertises: from the
 * first version a client needs (Fetch v4 for record batches v2; librdkafka
 * compresses with gzip, snappy and lz4 only when Produce v0 is listed, and
 * enables its consumer groups only when v0 of the group APIs is) to the last
 * non-flexible one (codec.h has the reasons).
 */
/* Declared in api.h with KR_KAFKA_NAPIS entries: a different count here is a
 * compile error. */
const kr_kafka_api kr_kafka_apis[] = {
    {KR_KAFKA_PRODUCE, 0, 8, "Produce", &produce_req, &produce_resp},
    {KR_KAFKA_FETCH, 4, 11, "Fetch", &fetch_req, &fetch_resp},
    {KR_KAFKA_LIST_OFFSETS, 0, 5, "ListOffsets", &list_offsets_req, &list_offsets_resp},
    {KR_KAFKA_METADATA, 0, 8, "Metadata", &metadata_req, &metadata_resp},
    {KR_KAFKA_OFFSET_COMMIT, 0, 7, "OffsetCommit", &offset_commit_req, &offset_commit_resp},
    {KR_KAFKA_OFFSET_FETCH, 0, 5, "OffsetFetch", &offset_fetch_req, &offset_fetch_resp},
    {KR_KAFKA_FIND_COORDINATOR, 0, 2, "FindCoordinator", &find_coordinator_req,
     &find_coordinator_resp},
    {KR_KAFKA_JOIN_GROUP, 0, 5, "JoinGroup", &join_group_req, &join_group_resp},
    {KR_KAFKA_HEARTBEAT, 0, 3, "Heartbeat", &heartbeat_req, &heartbeat_resp},
    {KR_KAFKA_LEAVE_GROUP, 0, 3, "LeaveGroup", &leave_group_req, &leave_group_resp},
    {KR_KAFKA_SYNC_GROUP, 0, 3, "SyncGroup", &sync_group_req, &sync_group_resp},
    {KR_KAFKA_SASL_HANDSHAKE, 0, 1, "SaslHandshake", &sasl_handshake_req, &sasl_handshake_resp},
    {KR_KAFKA_API_VERSIONS, 0, 2, "ApiVersions", &api_versions_req, &api_versions_resp},
    {KR_KAFKA_CREATE_TOPICS, 0, 4, "CreateTopics", &create_topics_req, &create_topics_resp},
    {KR_KAFKA_DELETE_TOPICS, 0, 3, "DeleteTopics", &delete_topics_req, &delete_topics_resp},
    {KR_KAFKA_INIT_PRODUCER_ID, 0, 1, "InitProducerId", &init_producer_id_req,
     &init_producer_id_resp},
    {KR_KAFKA_DESCRIBE_CONFIGS, 0, 3, "DescribeConfigs", &describe_configs_req,
     &describe_configs_resp},
    {KR_KAFKA_ALTER_CONFIGS, 0, 1, "AlterConfigs", &alter_configs_req, &alter_configs_resp},
    {KR_KAFKA_SASL_AUTHENTICATE, 0, 1, "SaslAuthenticate", &sasl_authenticate_req,
     &sasl_authenticate_resp},
    {KR_KAFKA_INCREMENTAL_ALTER_CONFIGS, 0, 0, "IncrementalAlterConfigs",
     &incremental_alter_configs_req, &alter_configs_resp},
};
