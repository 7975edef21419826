/*
 * kafka/api.h - the Kafka API messages krappy speaks: request headers, the
 * request and response of each API, in the non-flexible versions (codec.h
 * has the table of versions and what each API is for).
 *
 * A frame on the wire is an int32 size and that many bytes. In a request the
 * bytes are a header (api_key, api_version, correlation_id, client_id) and
 * the body; in a response, the correlation_id and the body.
 *
 *  - kr_kafka_request_decode reads a request frame's bytes into a
 *    kr_kafka_request: strings and bytes point into the frame, arrays are
 *    allocated from an arena. Both must outlive the request.
 *  - kr_kafka_response_encode writes a response frame (size included) from a
 *    response struct, in the version of the request it answers.
 *  - kr_kafka_request_encode and kr_kafka_response_decode are the client's
 *    side of the same tables (tests, tools).
 *
 * Fields are named as in Kafka's JSON message definitions, in snake_case;
 * the comment after a field gives its versions when it is not in all of
 * them ("v3+"). A field absent from a version decodes as its default and is
 * not written when encoding that version.
 */
#ifndef KR_KAFKA_API_H
#define KR_KAFKA_API_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "kafka/arena.h"
#include "kafka/schema.h"
#include "kafka/wire.h"

typedef enum kr_kafka_api_key {
    KR_KAFKA_PRODUCE = 0,
    KR_KAFKA_FETCH = 1,
    KR_KAFKA_LIST_OFFSETS = 2,
    KR_KAFKA_METADATA = 3,
    KR_KAFKA_OFFSET_COMMIT = 8,
    KR_KAFKA_OFFSET_FETCH = 9,
    KR_KAFKA_FIND_COORDINATOR = 10,
    KR_KAFKA_JOIN_GROUP = 11,
    KR_KAFKA_HEARTBEAT = 12,
    KR_KAFKA_LEAVE_GROUP = 13,
    KR_KAFKA_SYNC_GROUP = 14,
    KR_KAFKA_SASL_HANDSHAKE = 17,
    KR_KAFKA_API_VERSIONS = 18,
    KR_KAFKA_CREATE_TOPICS = 19,
    KR_KAFKA_DELETE_TOPICS = 20,
    KR_KAFKA_INIT_PRODUCER_ID = 22,
    KR_KAFKA_DESCRIBE_CONFIGS = 32,
    KR_KAFKA_ALTER_CONFIGS = 33,
    KR_KAFKA_SASL_AUTHENTICATE = 36,
    KR_KAFKA_INCREMENTAL_ALTER_CONFIGS = 44
} kr_kafka_api_key;

/* Smallest frame size a request can have: header with a null client_id. */
#define KR_KAFKA_REQ_HEADER_MIN 10

/* Request header v1 (every non-flexible request). */
typedef struct kr_kafka_req_header {
    int16_t api_key;
    int16_t api_version;
    int32_t correlation_id;
    kr_kafka_str client_id; /* nullable */
} kr_kafka_req_header;

/* ---- Produce (0), v3-v8 ---- */

typedef struct kr_kafka_produce_req_partition {
    int32_t index;
    kr_kafka_bytes records; /* nullable; record batches (batch.h) */
} kr_kafka_produce_req_partition;

typedef struct kr_kafka_produce_req_topic {
    kr_kafka_str name;
    KR_KAFKA_ARRAY(kr_kafka_produce_req_partition) partitions;
} kr_kafka_produce_req_topic;

typedef struct kr_kafka_produce_req {
    kr_kafka_str transactional_id; /* v3+, nullable */
    int16_t acks;                  /* 0, 1 or -1 (all) */
    int32_t timeout_ms;
    KR_KAFKA_ARRAY(kr_kafka_produce_req_topic) topics;
} kr_kafka_produce_req;

typedef struct kr_kafka_produce_record_error {
    int32_t batch_index;
    kr_kafka_str batch_index_error_message; /* nullable */
} kr_kafka_produce_record_error;

typedef struct kr_kafka_produce_resp_partition {
    int32_t index;
    int16_t error_code;
    int64_t base_offset;
    int64_t log_append_time_ms;                                  /* v2+, default -1 */
    int64_t log_start_offset;                                    /* v5+, default -1 */
    KR_KAFKA_ARRAY(kr_kafka_produce_record_error) record_errors; /* v8+ */
    kr_kafka_str error_message;                                  /* v8+, nullable */
} kr_kafka_produce_resp_partition;

typedef struct kr_kafka_produce_resp_topic {
    kr_kafka_str name;
    KR_KAFKA_ARRAY(kr_kafka_produce_resp_partition) partitions;
} kr_kafka_produce_resp_topic;

typedef struct kr_kafka_produce_resp {
    KR_KAFKA_ARRAY(kr_kafka_produce_resp_topic) responses;
    int32_t throttle_time_ms; /* v1+ */
} kr_kafka_produce_resp;

/* ---- Fetch (1), v4-v11 ---- */

typedef struct kr_kafka_fetch_req_partition {
    int32_t partition;
    int32_t current_leader_epoch; /* v9+, default -1 */
    int64_t fetch_offset;
    int64_t log_start_offset; /* v5+, default -1 */
    int32_t partition_max_bytes;
} kr_kafka_fetch_req_partition;

typedef struct kr_kafka_fetch_req_topic {
    kr_kafka_str topic;
    KR_KAFKA_ARRAY(kr_kafka_fetch_req_partition) partitions;
} kr_kafka_fetch_req_topic;

typedef struct kr_kafka_fetch_forgotten_topic {
    kr_kafka_str topic;
    KR_KAFKA_ARRAY(int32_t) partitions;
} kr_kafka_fetch_forgotten_topic;

typedef struct kr_kafka_fetch_req {
    int32_t replica_id; /* -1 for consumers */
    int32_t max_wait_ms;
    int32_t min_bytes;
    int32_t max_bytes;      /* v3+, default 0x7fffffff */
    int8_t isolation_level; /* v4+: 0 read uncommitted, 1 read committed */
    int32_t session_id;     /* v7+, default 0 */
    int32_t session_epoch;  /* v7+, default -1 */
    KR_KAFKA_ARRAY(kr_kafka_fetch_req_topic) topics;
    KR_KAFKA_ARRAY(kr_kafka_fetch_forgotten_topic) forgotten_topics_data; /* v7+ */
    kr_kafka_str rack_id;                                                 /* v11+, default "" */
} kr_kafka_fetch_req;

typedef struct kr_kafka_fetch_aborted_txn {
    int64_t producer_id;
    int64_t first_offset;
} kr_kafka_fetch_aborted_txn;

typedef struct kr_kafka_fetch_resp_partition {
    int32_t partition_index;
    int16_t error_code;
    int64_t high_watermark;
    int64_t last_stable_offset;                                      /* v4+, default -1 */
    int64_t log_start_offset;                                        /* v5+, default -1 */
    KR_KAFKA_ARRAY(kr_kafka_fetch_aborted_txn) aborted_transactions; /* v4+, nullable */
    int32_t preferred_read_replica;                                  /* v11+, default -1 */
    kr_kafka_bytes records;                                          /* nullable; record batches */
} kr_kafka_fetch_resp_partition;

typedef struct kr_kafka_fetch_resp_topic {
    kr_kafka_str topic;
    KR_KAFKA_ARRAY(kr_kafka_fetch_resp_partition) partitions;
} kr_kafka_fetch_resp_topic;

typedef struct kr_kafka_fetch_resp {
    int32_t throttle_time_ms; /* v1+ */
    int16_t error_code;       /* v7+ */
    int32_t session_id;       /* v7+ */
    KR_KAFKA_ARRAY(kr_kafka_fetch_resp_topic) responses;
} kr_kafka_fetch_resp;

/* ---- ListOffsets (2), v0-v5 ---- */

/* ListOffsets timestamps with a meaning of their own. */
#define KR_KAFKA_LATEST_TIMESTAMP   (-1)
#define KR_KAFKA_EARLIEST_TIMESTAMP (-2)

typedef struct kr_kafka_list_offsets_req_partition {
    int32_t partition_index;
    int32_t current_leader_epoch; /* v4+, default -1 */
    int64_t timestamp;            /* ms, or LATEST / EARLIEST */
    int32_t max_num_offsets;      /* v0 only, default 1 */
} kr_kafka_list_offsets_req_partition;

typedef struct kr_kafka_list_offsets_req_topic {
    kr_kafka_str name;
    KR_KAFKA_ARRAY(kr_kafka_list_offsets_req_partition) partitions;
} kr_kafka_list_offsets_req_topic;

typedef struct kr_kafka_list_offsets_req {
    int32_t replica_id;
    int8_t isolation_level; /* v2+ */
    KR_KAFKA_ARRAY(kr_kafka_list_offsets_req_topic) topics;
} kr_kafka_list_offsets_req;

typedef struct kr_kafka_list_offsets_resp_partition {
    int32_t partition_index;
    int16_t error_code;
    KR_KAFKA_ARRAY(int64_t) old_style_offsets; /* v0 only */
    int64_t timestamp;                         /* v1+, default -1 */
    int64_t offset;                            /* v1+, default -1 */
    int32_t leader_epoch;                      /* v4+, default -1 */
} kr_kafka_list_offsets_resp_partition;

typedef struct kr_kafka_list_offsets_resp_topic {
    kr_kafka_str name;
    KR_KAFKA_ARRAY(kr_kafka_list_offsets_resp_partition) partitions;
} kr_kafka_list_offsets_resp_topic;

typedef struct kr_kafka_list_offsets_resp {
    int32_t throttle_time_ms; /* v2+ */
    KR_KAFKA_ARRAY(kr_kafka_list_offsets_resp_topic) topics;
} kr_kafka_list_offsets_resp;

/* ---- Metadata (3), v0-v8 ---- */

typedef struct kr_kafka_metadata_req {
    /* v0: empty = all topics; v1+: null = all topics, empty = none. */
    KR_KAFKA_ARRAY(kr_kafka_str) topics;
    bool allow_auto_topic_creation;             /* v4+, default true */
    bool include_cluster_authorized_operations; /* v8+ */
    bool include_topic_authorized_operations;   /* v8+ */
} kr_kafka_metadata_req;

typedef struct kr_kafka_metadata_broker {
    int32_t node_id;
    kr_kafka_str host;
    int32_t port;
    kr_kafka_str rack; /* v1+, nullable, default null */
} kr_kafka_metadata_broker;

typedef struct kr_kafka_metadata_partition {
    int16_t error_code;
    int32_t partition_index;
    int32_t leader_id;
    int32_t leader_epoch; /* v7+, default -1 */
    KR_KAFKA_ARRAY(int32_t) replica_nodes;
    KR_KAFKA_ARRAY(int32_t) isr_nodes;
    KR_KAFKA_ARRAY(int32_t) offline_replicas; /* v5+ */
} kr_kafka_metadata_partition;

typedef struct kr_kafka_metadata_topic {
    int16_t error_code;
    kr_kafka_str name;
    bool is_internal; /* v1+ */
    KR_KAFKA_ARRAY(kr_kafka_metadata_partition) partitions;
    int32_t topic_authorized_operations; /* v8+, default INT32_MIN */
} kr_kafka_metadata_topic;

typedef struct kr_kafka_metadata_resp {
    int32_t throttle_time_ms; /* v3+ */
    KR_KAFKA_ARRAY(kr_kafka_metadata_broker) brokers;
    kr_kafka_str cluster_id; /* v2+, nullable, default null */
    int32_t controller_id;   /* v1+, default -1 */
    KR_KAFKA_ARRAY(kr_kafka_metadata_topic) topics;
    int32_t cluster_authorized_operations; /* v8+, default INT32_MIN */
} kr_kafka_metadata_resp;

/* ---- OffsetCommit (8), v0-v7 ---- */

typedef struct kr_kafka_offset_commit_req_partition {
    int32_t partition_index;
    int64_t committed_offset;
    int32_t committed_leader_epoch;  /* v6+, default -1 */
    int64_t commit_timestamp;        /* v1 only, default -1 */
    kr_kafka_str committed_metadata; /* nullable */
} kr_kafka_offset_commit_req_partition;

typedef struct kr_kafka_offset_commit_req_topic {
    kr_kafka_str name;
    KR_KAFKA_ARRAY(kr_kafka_offset_commit_req_partition) partitions;
} kr_kafka_offset_commit_req_topic;

typedef struct kr_kafka_offset_commit_req {
    kr_kafka_str group_id;
    int32_t generation_id;          /* v1+, default -1 */
    kr_kafka_str member_id;         /* v1+ */
    kr_kafka_str group_instance_id; /* v7+, nullable, default null */
    int64_t retention_time_ms;      /* v2-v4, default -1 */
    KR_KAFKA_ARRAY(kr_kafka_offset_commit_req_topic) topics;
} kr_kafka_offset_commit_req;

typedef struct kr_kafka_offset_commit_resp_partition {
    int32_t partition_index;
    int16_t error_code;
} kr_kafka_offset_commit_resp_partition;

typedef struct kr_kafka_offset_commit_resp_topic {
    kr_kafka_str name;
    KR_KAFKA_ARRAY(kr_kafka_offset_commit_resp_partition) partitions;
} kr_kafka_offset_commit_resp_topic;

typedef struct kr_kafka_offset_commit_resp {
    int32_t throttle_time_ms; /* v3+ */
    KR_KAFKA_ARRAY(kr_kafka_offset_commit_resp_topic) topics;
} kr_kafka_offset_commit_resp;

/* ---- OffsetFetch (9), v0-v5 ---- */

typedef struct kr_kafka_offset_fetch_req_topic {
    kr_kafka_str name;
    KR_KAFKA_ARRAY(int32_t) partition_indexes;
} kr_kafka_offset_fetch_req_topic;

typedef struct kr_kafka_offset_fetch_req {
    kr_kafka_str group_id;
    KR_KAFKA_ARRAY(kr_kafka_offset_fetch_req_topic) topics; /* nullable v2+: all topics */
} kr_kafka_offset_fetch_req;

typedef struct kr_kafka_offset_fetch_resp_partition {
    int32_t partition_index;
    int64_t committed_offset;       /* -1: none */
    int32_t committed_leader_epoch; /* v5+, default -1 */
    kr_kafka_str metadata;          /* nullable */
    int16_t error_code;
} kr_kafka_offset_fetch_resp_partition;

typedef struct kr_kafka_offset_fetch_resp_topic {
    kr_kafka_str name;
    KR_KAFKA_ARRAY(kr_kafka_offset_fetch_resp_partition) partitions;
} kr_kafka_offset_fetch_resp_topic;

typedef struct kr_kafka_offset_fetch_resp {
    int32_t throttle_time_ms; /* v3+ */
    KR_KAFKA_ARRAY(kr_kafka_offset_fetch_resp_topic) topics;
    int16_t error_code; /* v2+ */
} kr_kafka_offset_fetch_resp;

/* ---- FindCoordinator (10), v0-v2 ---- */

typedef struct kr_kafka_find_coordinator_req {
    kr_kafka_str key;
    int8_t key_type; /* v1+: 0 group, 1 transaction */
} kr_kafka_find_coordinator_req;

typedef struct kr_kafka_find_coordinator_resp {
    int32_t throttle_time_ms; /* v1+ */
    int16_t error_code;
    kr_kafka_str error_message; /* v1+, nullable */
    int32_t node_id;
    kr_kafka_str host;
    int32_t port;
} kr_kafka_find_coordinator_resp;

/* ---- JoinGroup (11), v0-v5 ---- */

typedef struct kr_kafka_join_group_protocol {
    kr_kafka_str name;
    kr_kafka_bytes metadata;
} kr_kafka_join_group_protocol;

typedef struct kr_kafka_join_group_req {
    kr_kafka_str group_id;
    int32_t session_timeout_ms;
    int32_t rebalance_timeout_ms; /* v1+, default -1 */
    kr_kafka_str member_id;
    kr_kafka_str group_instance_id; /* v5+, nullable, default null */
    kr_kafka_str protocol_type;
    KR_KAFKA_ARRAY(kr_kafka_join_group_protocol) protocols;
} kr_kafka_join_group_req;

typedef struct kr_kafka_join_group_member {
    kr_kafka_str member_id;
    kr_kafka_str group_instance_id; /* v5+, nullable, default null */
    kr_kafka_bytes metadata;
} kr_kafka_join_group_member;

typedef struct kr_kafka_join_group_resp {
    int32_t throttle_time_ms; /* v2+ */
    int16_t error_code;
    int32_t generation_id;
    kr_kafka_str protocol_name;
    kr_kafka_str leader;
    kr_kafka_str member_id;
    KR_KAFKA_ARRAY(kr_kafka_join_group_member) members;
} kr_kafka_join_group_resp;

/* ---- Heartbeat (12), v0-v3 ---- */

typedef struct kr_kafka_heartbeat_req {
    kr_kafka_str group_id;
    int32_t generation_id;
    kr_kafka_str member_id;
    kr_kafka_str group_instance_id; /* v3+, nullable, default null */
} kr_kafka_heartbeat_req;

typedef struct kr_kafka_heartbeat_resp {
    int32_t throttle_time_ms; /* v1+ */
    int16_t error_code;
} kr_kafka_heartbeat_resp;

/* ---- LeaveGroup (13), v0-v3 ---- */

typedef struct kr_kafka_leave_group_member {
    kr_kafka_str member_id;
    kr_kafka_str group_instance_id; /* nullable */
} kr_kafka_leave_group_member;

typedef struct kr_kafka_leave_group_req {
    kr_kafka_str group_id;
    kr_kafka_str member_id;                              /* v0-v2 */
    KR_KAFKA_ARRAY(kr_kafka_leave_group_member) members; /* v3+ */
} kr_kafka_leave_group_req;

typedef struct kr_kafka_leave_group_member_resp {
    kr_kafka_str member_id;
    kr_kafka_str group_instance_id; /* nullable */
    int16_t error_code;
} kr_kafka_leave_group_member_resp;

typedef struct kr_kafka_leave_group_resp {
    int32_t throttle_time_ms; /* v1+ */
    int16_t error_code;
    KR_KAFKA_ARRAY(kr_kafka_leave_group_member_resp) members; /* v3+ */
} kr_kafka_leave_group_resp;

/* ---- SyncGroup (14), v0-v3 ---- */

typedef struct kr_kafka_sync_group_assignment {
    kr_kafka_str member_id;
    kr_kafka_bytes assignment;
} kr_kafka_sync_group_assignment;

typedef struct kr_kafka_sync_group_req {
    kr_kafka_str group_id;
    int32_t generation_id;
    kr_kafka_str member_id;
    kr_kafka_str group_instance_id;                             /* v3+, nullable, default null */
    KR_KAFKA_ARRAY(kr_kafka_sync_group_assignment) assignments; /* from the leader only */
} kr_kafka_sync_group_req;

typedef struct kr_kafka_sync_group_resp {
    int32_t throttle_time_ms; /* v1+ */
    int16_t error_code;
    kr_kafka_bytes assignment;
} kr_kafka_sync_group_resp;

/* ---- SaslHandshake (17), v0-v1 ---- */

typedef struct kr_kafka_sasl_handshake_req {
    kr_kafka_str mechanism;
} kr_kafka_sasl_handshake_req;

typedef struct kr_kafka_sasl_handshake_resp {
    int16_t error_code;
    KR_KAFKA_ARRAY(kr_kafka_str) mechanisms;
} kr_kafka_sasl_handshake_resp;

/* ---- ApiVersions (18), v0-v2 ---- */

typedef struct kr_kafka_api_versions_req {
    int32_t unused; /* the body is empty in v0-v2 */
} kr_kafka_api_versions_req;

typedef struct kr_kafka_api_version {
    int16_t api_key;
    int16_t min_version;
    int16_t max_version;
} kr_kafka_api_version;

typedef struct kr_kafka_api_versions_resp {
    int16_t error_code;
    KR_KAFKA_ARRAY(kr_kafka_api_version) api_keys;
    int32_t throttle_time_ms; /* v1+ */
} kr_kafka_api_versions_resp;

/* ---- CreateTopics (19), v0-v4 ---- */

typedef struct kr_kafka_create_topics_assignment {
    int32_t partition_index;
    KR_KAFKA_ARRAY(int32_t) broker_ids;
} kr_kafka_create_topics_assignment;

typedef struct kr_kafka_create_topics_config {
    kr_kafka_str name;
    kr_kafka_str value; /* nullable */
} kr_kafka_create_topics_config;

typedef struct kr_kafka_create_topics_topic {
    kr_kafka_str name;
    int32_t num_partitions;     /* -1: the broker's default */
    int16_t replication_factor; /* -1: the broker's default */
    KR_KAFKA_ARRAY(kr_kafka_create_topics_assignment) assignments;
    KR_KAFKA_ARRAY(kr_kafka_create_topics_config) configs;
} kr_kafka_create_topics_topic;

typedef struct kr_kafka_create_topics_req {
    KR_KAFKA_ARRAY(kr_kafka_create_topics_topic) topics;
    int32_t timeout_ms;
    bool validate_only; /* v1+ */
} kr_kafka_create_topics_req;

typedef struct kr_kafka_create_topics_result {
    kr_kafka_str name;
    int16_t error_code;
    kr_kafka_str error_message; /* v1+, nullable */
} kr_kafka_create_topics_result;

typedef struct kr_kafka_create_topics_resp {
    int32_t throttle_time_ms; /* v2+ */
    KR_KAFKA_ARRAY(kr_kafka_create_topics_result) topics;
} kr_kafka_create_topics_resp;

/* ---- DeleteTopics (20), v0-v3 ---- */

typedef struct kr_kafka_delete_topics_req {
    KR_KAFKA_ARRAY(kr_kafka_str) topic_names;
    int32_t timeout_ms;
} kr_kafka_delete_topics_req;

typedef struct kr_kafka_delete_topics_result {
    kr_kafka_str name;
    int16_t error_code;
} kr_kafka_delete_topics_result;

typedef struct kr_kafka_delete_topics_resp {
    int32_t throttle_time_ms; /* v1+ */
    KR_KAFKA_ARRAY(kr_kafka_delete_topics_result) responses;
} kr_kafka_delete_topics_resp;

/* ---- InitProducerId (22), v0-v1 ---- */

typedef struct kr_kafka_init_producer_id_req {
    kr_kafka_str transactional_id; /* nullable: null for idempotence alone */
    int32_t transaction_timeout_ms;
} kr_kafka_init_producer_id_req;

typedef struct kr_kafka_init_producer_id_resp {
    int32_t throttle_time_ms;
    int16_t error_code;
    int64_t producer_id;
    int16_t producer_epoch;
} kr_kafka_init_producer_id_resp;

/* ---- DescribeConfigs (32), v0-v3 ---- */

/* Config resource types. */
#define KR_KAFKA_RESOURCE_TOPIC  2
#define KR_KAFKA_RESOURCE_BROKER 4

typedef struct kr_kafka_describe_configs_resource {
    int8_t resource_type;
    kr_kafka_str resource_name;
    KR_KAFKA_ARRAY(kr_kafka_str) configuration_keys; /* nullable: all keys */
} kr_kafka_describe_configs_resource;

typedef struct kr_kafka_describe_configs_req {
    KR_KAFKA_ARRAY(kr_kafka_describe_configs_resource) resources;
    bool include_synonyms;      /* v1+ */
    bool include_documentation; /* v3+ */
} kr_kafka_describe_configs_req;

typedef struct kr_kafka_describe_configs_synonym {
    kr_kafka_str name;
    kr_kafka_str value; /* nullable */
    int8_t source;
} kr_kafka_describe_configs_synonym;

typedef struct kr_kafka_describe_configs_entry {
    kr_kafka_str name;
    kr_kafka_str value; /* nullable */
    bool read_only;
    bool is_default;      /* v0 only */
    int8_t config_source; /* v1+, default -1 */
    bool is_sensitive;
    KR_KAFKA_ARRAY(kr_kafka_describe_configs_synonym) synonyms; /* v1+ */
    int8_t config_type;                                         /* v3+ */
    kr_kafka_str documentation;                                 /* v3+, nullable */
} kr_kafka_describe_configs_entry;

typedef struct kr_kafka_describe_configs_result {
    int16_t error_code;
    kr_kafka_str error_message; /* nullable */
    int8_t resource_type;
    kr_kafka_str resource_name;
    KR_KAFKA_ARRAY(kr_kafka_describe_configs_entry) configs;
} kr_kafka_describe_configs_result;

typedef struct kr_kafka_describe_configs_resp {
    int32_t throttle_time_ms;
    KR_KAFKA_ARRAY(kr_kafka_describe_configs_result) results;
} kr_kafka_describe_configs_resp;

/* ---- AlterConfigs (33), v0-v1, and IncrementalAlterConfigs (44), v0 ---- */

typedef struct kr_kafka_alter_configs_entry {
    kr_kafka_str name;
    int8_t config_operation; /* Incremental only: 0 set, 1 delete, 2 append, 3 subtract */
    kr_kafka_str value;      /* nullable */
} kr_kafka_alter_configs_entry;

typedef struct kr_kafka_alter_configs_resource {
    int8_t resource_type;
    kr_kafka_str resource_name;
    KR_KAFKA_ARRAY(kr_kafka_alter_configs_entry) configs;
} kr_kafka_alter_configs_resource;

/* The request of both AlterConfigs and IncrementalAlterConfigs. */
typedef struct kr_kafka_alter_configs_req {
    KR_KAFKA_ARRAY(kr_kafka_alter_configs_resource) resources;
    bool validate_only;
} kr_kafka_alter_configs_req;

typedef struct kr_kafka_alter_configs_result {
    int16_t error_code;
    kr_kafka_str error_message; /* nullable */
    int8_t resource_type;
    kr_kafka_str resource_name;
} kr_kafka_alter_configs_result;

/* The response of both AlterConfigs and IncrementalAlterConfigs. */
typedef struct kr_kafka_alter_configs_resp {
    int32_t throttle_time_ms;
    KR_KAFKA_ARRAY(kr_kafka_alter_configs_result) responses;
} kr_kafka_alter_configs_resp;

/* ---- SaslAuthenticate (36), v0-v1 ---- */

typedef struct kr_kafka_sasl_authenticate_req {
    kr_kafka_bytes auth_bytes; /* PLAIN: authzid NUL authcid NUL password */
} kr_kafka_sasl_authenticate_req;

typedef struct kr_kafka_sasl_authenticate_resp {
    int16_t error_code;
    kr_kafka_str error_message; /* nullable */
    kr_kafka_bytes auth_bytes;
    int64_t session_lifetime_ms; /* v1+ */
} kr_kafka_sasl_authenticate_resp;

/* ---- requests and responses of every API ---- */

typedef struct kr_kafka_request {
    kr_kafka_req_header h;
    union {
        kr_kafka_produce_req produce;
        kr_kafka_fetch_req fetch;
        kr_kafka_list_offsets_req list_offsets;
        kr_kafka_metadata_req metadata;
        kr_kafka_offset_commit_req offset_commit;
        kr_kafka_offset_fetch_req offset_fetch;
        kr_kafka_find_coordinator_req find_coordinator;
        kr_kafka_join_group_req join_group;
        kr_kafka_heartbeat_req heartbeat;
        kr_kafka_leave_group_req leave_group;
        kr_kafka_sync_group_req sync_group;
        kr_kafka_sasl_handshake_req sasl_handshake;
        kr_kafka_api_versions_req api_versions;
        kr_kafka_create_topics_req create_topics;
        kr_kafka_delete_topics_req delete_topics;
        kr_kafka_init_producer_id_req init_producer_id;
        kr_kafka_describe_configs_req describe_configs;
        kr_kafka_alter_configs_req alter_configs; /* and IncrementalAlterConfigs */
        kr_kafka_sasl_authenticate_req sasl_authenticate;
    } u;
} kr_kafka_request;

/* One API: its key, name, the versions krappy advertises, its layouts. */
typedef struct kr_kafka_api {
    int16_t key;
    int16_t min_version, max_version;
    const char *name; /* "Produce" */
    const kr_kafka_schema *request, *response;
} kr_kafka_api;

/* How many APIs the codec speaks. */
#define KR_KAFKA_NAPIS 20

/* Every API the codec speaks, by key. */
extern const kr_kafka_api kr_kafka_apis[KR_KAFKA_NAPIS];

/* The API of `key`, or NULL when the codec does not speak it. */
const kr_kafka_api *kr_kafka_api_find(int16_t key);

/* The API's name, or "Unknown" (static storage). */
const char *kr_kafka_api_name(int16_t key);

/*
 * kr_kafka_header_decode - read the header of a request frame (the bytes
 * after the size). *body_off is where the body starts. For a flexible
 * version (ApiVersions v3+, which clients try first) the header has tagged
 * fields after client_id: the header is still read, *body_off is not
 * meaningful, and the caller answers as codec.h says.
 * @return KR_KAFKA_OK, or KR_KAFKA_MALFORMED (fewer bytes than a header).
 */
kr_kafka_status kr_kafka_header_decode(const uint8_t *p, size_t len, kr_kafka_req_header *h,
                                       size_t *body_off);

/*
 * kr_kafka_request_decode - read a whole request frame (the bytes after the
 * size) into *req; arrays come from `a`; strings point into p.
 * @return KR_KAFKA_OK;
 *         KR_KAFKA_UNSUPPORTED with req->h filled: an API key or version
 *         outside the advertised table (msg says which);
 *         KR_KAFKA_MALFORMED: a short header, a truncated or inconsistent
 *         body, or bytes after the body (msg names the field and why);
 *         KR_KAFKA_TOO_BIG: the arena refused (arrays beyond its max).
 */
kr_kafka_status kr_kafka_request_decode(const uint8_t *p, size_t len, kr_kafka_arena *a,
                                        kr_kafka_request *req, char *msg, size_t msglen);

/*
 * kr_kafka_response_encode - append a response frame: int32 size,
 * correlation_id, and *body as `version` of api `api_key`. `body` points to
 * the response struct of that API (kr_kafka_produce_resp for Produce, ...).
 * The version need not be advertised: ApiVersions' answer to a v3 request is
 * sent as v0.
 * @return KR_KAFKA_OK; KR_KAFKA_UNSUPPORTED (no such API or version),
 *         KR_KAFKA_INVALID (a null where the version allows none, ...; msg
 *         says which field) or KR_KAFKA_TOO_BIG (out refused to grow). On
 *         failure out->len is as it was (out->failed may be set).
 */
kr_kafka_status kr_kafka_response_encode(kr_buf *out, int16_t api_key, int16_t version,
                                         int32_t correlation_id, const void *body, char *msg,
                                         size_t msglen);

/*
 * kr_kafka_response_extend - lengthen the response frame at out[start..)
 * (as kr_kafka_response_encode wrote it) whose last field is an empty bytes
 * field, by n bytes that the caller sends right after the frame: the
 * field's length and the frame's size both grow by n. A Fetch answer ends
 * with its last partition's records (every version spoken here is
 * non-flexible, with no tagged fields after them), so they can go to the
 * socket from the buffer they were written in instead of being copied
 * into the frame; the bytes on the wire are the same.
 * @return 0; -1 when the frame does not end with an empty bytes field (its
 *         last four bytes are not zero) or would outgrow int32 (out is then
 *         unchanged).
 */
int kr_kafka_response_extend(kr_buf *out, size_t start, size_t n);

/*
 * kr_kafka_request_encode - append a request frame (size, header v1, *body
 * as h->api_version of h->api_key); the client side, for tests and tools.
 * @return as kr_kafka_response_encode.
 */
kr_kafka_status kr_kafka_request_encode(kr_buf *out, const kr_kafka_req_header *h, const void *body,
                                        char *msg, size_t msglen);

/*
 * kr_kafka_response_decode - read a response frame (the bytes after the
 * size) of `version` of `api_key` into *body (the response struct of that
 * API) and *correlation_id; arrays from `a`.
 * @return as kr_kafka_request_decode.
 */
kr_kafka_status kr_kafka_response_decode(const uint8_t *p, size_t len, int16_t api_key,
                                         int16_t version, kr_kafka_arena *a,
                                         int32_t *correlation_id, void *body, char *msg,
                                         size_t msglen);

/*
 * kr_kafka_api_versions_fill - fill r with every advertised API (written to
 * the caller's `table`, which r->api_keys then points to) and `error_code`
 * (0, or UNSUPPORTED_VERSION for a v3+ request); throttle 0.
 */
void kr_kafka_api_versions_fill(kr_kafka_api_versions_resp *r, int16_t error_code,
                                kr_kafka_api_version table[KR_KAFKA_NAPIS]);

#endif
