/*
 * server/kafka_groups.h - the Kafka group coordinator: membership,
 * rebalances and generations of Kafka consumer groups, as the Kafka
 * protocol's JoinGroup, SyncGroup, Heartbeat and LeaveGroup describe them.
 * No I/O and no store: requests in, answers out, time passed in by the
 * caller (so the tests drive it with a clock of their own).
 *
 * A group goes Empty -> PreparingRebalance (a member joined, left or
 * changed its protocols; the others learn it from Heartbeat's
 * REBALANCE_IN_PROGRESS and join again) -> CompletingRebalance (every
 * member joined, or the rebalance timeout passed and the missing ones were
 * dropped: a new generation, a leader, a protocol chosen by the members'
 * votes) -> Stable (the leader's SyncGroup brought every member's
 * assignment, relayed as bytes: the coordinator never reads them). A member
 * that sends nothing for its session timeout is dropped, which starts a
 * rebalance. Joining with an empty member id gets MEMBER_ID_REQUIRED and a
 * new id (JoinGroup v4+) to join with. Static membership
 * (group_instance_id) is accepted and ignored: every member is dynamic.
 *
 * Answers that wait (a JoinGroup until the rebalance completes, a follower's
 * SyncGroup until the leader's) are given through the caller's callback,
 * called exactly once: from the call itself when the answer is ready at
 * once, or later from another member's call or from kr_kgroups_tick. The
 * response passed to a callback is valid only during the call; callbacks
 * must not call back into the coordinator.
 *
 * The committed offsets of Kafka groups are the store's (kr_store_koffset_*);
 * this module only says whether a commit comes from a current member.
 */
#ifndef KR_SERVER_KAFKA_GROUPS_H
#define KR_SERVER_KAFKA_GROUPS_H

#include <stddef.h>
#include <stdint.h>

#include "kafka/api.h"

/* Session timeouts accepted (Kafka's group.min/max.session.timeout.ms; the
 * minimum is lower than Kafka's 6 s, so tests can expire members fast). */
#define KR_KGROUP_MIN_SESSION_MS 1000
#define KR_KGROUP_MAX_SESSION_MS 1800000

typedef struct kr_kgroups kr_kgroups;

/* The answer of a JoinGroup or SyncGroup (resp valid during the call). */
typedef void (*kr_kg_join_fn)(void *arg, const kr_kafka_join_group_resp *resp);
typedef void (*kr_kg_sync_fn)(void *arg, const kr_kafka_sync_group_resp *resp);

/* A coordinator with no groups. @return NULL on ENOMEM. */
kr_kgroups *kr_kgroups_new(void);

/* Release every group; waiting answers are dropped unanswered. NULL ok. */
void kr_kgroups_free(kr_kgroups *gs);

/*
 * kr_kgroups_join - JoinGroup of `version` from a client naming itself
 * client_id (for new member ids). fn(arg, ...) is called once with the
 * answer: at once for an error, MEMBER_ID_REQUIRED or a member already in
 * the current generation; else when the rebalance completes.
 */
void kr_kgroups_join(kr_kgroups *gs, const kr_kafka_join_group_req *req, int16_t version,
                     kr_kafka_str client_id, uint64_t now_ms, kr_kg_join_fn fn, void *arg);

/* kr_kgroups_sync - SyncGroup; fn(arg, ...) once, at once or when the
 * leader's SyncGroup arrives (REBALANCE_IN_PROGRESS if a rebalance starts
 * first). */
void kr_kgroups_sync(kr_kgroups *gs, const kr_kafka_sync_group_req *req, uint64_t now_ms,
                     kr_kg_sync_fn fn, void *arg);

/* kr_kgroups_heartbeat - Heartbeat. @return its error code (0: none). */
int16_t kr_kgroups_heartbeat(kr_kgroups *gs, const kr_kafka_heartbeat_req *req, uint64_t now_ms);

/* kr_kgroups_leave - one member leaves (LeaveGroup names one, or from v3
 * several). @return the member's error code. */
int16_t kr_kgroups_leave(kr_kgroups *gs, kr_kafka_str group, kr_kafka_str member, uint64_t now_ms);

/*
 * kr_kgroups_commit_check - may this OffsetCommit be applied? As Kafka's
 * coordinator decides: a commit without a generation (-1) and member ("")
 * is taken while the group has no members (a consumer that assigns itself
 * partitions); otherwise it must come from a member of the current
 * generation, while the group is stable or preparing a rebalance (members
 * commit what they consumed before they join again), not while it
 * completes one. Membership lives in memory: after a restart, or on a new
 * leader, the members are unknown (UNKNOWN_MEMBER_ID) until they join
 * again, and read again what they consumed since their last commit. A
 * member's commit counts as its heartbeat.
 * @return 0, or UNKNOWN_MEMBER_ID, ILLEGAL_GENERATION or
 *         REBALANCE_IN_PROGRESS.
 */
int16_t kr_kgroups_commit_check(kr_kgroups *gs, kr_kafka_str group, int32_t generation,
                                kr_kafka_str member, uint64_t now_ms);

/* This node stopped coordinating (on a cluster: it no longer leads):
 * every waiting JoinGroup and SyncGroup is answered NOT_COORDINATOR and
 * every group forgotten; their members find the coordinator again. NULL
 * ok. */
void kr_kgroups_resign(kr_kgroups *gs);

/* The connection of a waiting answer went: forget every callback given
 * `arg` (unanswered). The member stays - a JoinGroup it sent still counts
 * for the rebalance, as Kafka's brokers count it - until its session times
 * out. */
void kr_kgroups_cancel(kr_kgroups *gs, void *arg);

/* Drop members whose session timed out, complete rebalances whose timeout
 * passed, forget empty groups. NULL ok. */
void kr_kgroups_tick(kr_kgroups *gs, uint64_t now_ms);

/* Live members of a group (0 when unknown), for STATS and the console. */
size_t kr_kgroups_members(const kr_kgroups *gs, const char *group, size_t len);

/* The group's state ("Empty", "PreparingRebalance", "CompletingRebalance",
 * "Stable"; "Dead" when unknown) and generation, for tests and logs. */
const char *kr_kgroups_state(const kr_kgroups *gs, const char *group, size_t len,
                             int32_t *generation);

#endif
