/*
 * tests/test_kafka_groups.c - the Kafka group coordinator on a clock of
 * the test's own: joining with MEMBER_ID_REQUIRED, the first generation,
 * a second member's rebalance (the first learns it from Heartbeat), the
 * leader's assignments relayed by SyncGroup, protocol votes, sessions and
 * rebalances timing out, leaving, commits checked against generations,
 * cancelled waits, and the errors of each call.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "kafka/errors.h"
#include "server/kafka_groups.h"
#include "util/log.h"

#define SESSION   10000
#define REBALANCE 30000

/* The last answer a waiting call got (copied: the coordinator's response
 * is valid only during the callback). */
typedef struct answer {
    int calls;
    int16_t err;
    int32_t generation;
    char member[128], leader[128], protocol[32];
    int32_t n_members;
    char assignment[64];
} answer;

static void copy_str(char *dst, size_t cap, kr_kafka_str s)
{
    snprintf(dst, cap, "%.*s", s.len > 0 ? (int)s.len : 0, s.len > 0 ? s.ptr : "");
}

static void on_join(void *arg, const kr_kafka_join_group_resp *r)
{
    answer *a = arg;
    a->calls++;
    a->err = r->error_code;
    a->generation = r->generation_id;
    copy_str(a->member, sizeof a->member, r->member_id);
    copy_str(a->leader, sizeof a->leader, r->leader);
    copy_str(a->protocol, sizeof a->protocol, r->protocol_name);
    a->n_members = r->members.n;
}

static void on_sync(void *arg, const kr_kafka_sync_group_resp *r)
{
    answer *a = arg;
    a->calls++;
    a->err = r->error_code;
    snprintf(a->assignment, sizeof a->assignment, "%.*s",
             r->assignment.len > 0 ? (int)r->assignment.len : 0,
             r->assignment.len > 0 ? (const char *)r->assignment.ptr : "");
}

static kr_kafka_str str(const char *s)
{
    return (kr_kafka_str){s, (int32_t)strlen(s)};
}

/* JoinGroup v5 of `member` ("" for a new one) with protocols p1 (and p2). */
static void join(kr_kgroups *gs, const char *member, const char *p1, const char *p2, uint64_t now,
                 answer *a)
{
    kr_kafka_join_group_protocol protos[2] = {
        {str(p1), {(const uint8_t *)"meta", 4}},
        {str(p2 ? p2 : ""), {(const uint8_t *)"meta", 4}},
    };
    kr_kafka_join_group_req q = {.group_id = str("g"),
                                 .session_timeout_ms = SESSION,
                                 .rebalance_timeout_ms = REBALANCE,
                                 .member_id = str(member),
                                 .group_instance_id = {NULL, -1},
                                 .protocol_type = str("consumer"),
                                 .protocols = {protos, p2 ? 2 : 1}};
    kr_kgroups_join(gs, &q, 5, str("client"), now, on_join, a);
}

/* Join as a new member: MEMBER_ID_REQUIRED, then again with the id. */
static void join_new(kr_kgroups *gs, uint64_t now, answer *a)
{
    answer first = {0};
    join(gs, "", "range", "roundrobin", now, &first);
    assert_int_equal(first.calls, 1);
    assert_int_equal(first.err, KR_KAFKA_ERR_MEMBER_ID_REQUIRED);
    assert_true(strncmp(first.member, "client-", 7) == 0);
    memset(a, 0, sizeof *a);
    snprintf(a->member, sizeof a->member, "%s", first.member);
    char id[128];
    snprintf(id, sizeof id, "%s", first.member);
    join(gs, id, "range", "roundrobin", now, a);
}

static void sync(kr_kgroups *gs, const answer *me, int32_t gen, uint64_t now, answer *a,
                 const kr_kafka_sync_group_assignment *asg, int32_t n)
{
    kr_kafka_sync_group_req q = {.group_id = str("g"),
                                 .generation_id = gen,
                                 .member_id = str(me->member),
                                 .group_instance_id = {NULL, -1},
                                 .assignments = {asg, n}};
    kr_kgroups_sync(gs, &q, now, on_sync, a);
}

static int16_t heartbeat(kr_kgroups *gs, const answer *me, int32_t gen, uint64_t now)
{
    kr_kafka_heartbeat_req q = {str("g"), gen, str(me->member), {NULL, -1}};
    return kr_kgroups_heartbeat(gs, &q, now);
}

/* Two members in a stable generation 2: a is the leader, b follows. */
static kr_kgroups *two_members(answer *a, answer *b, uint64_t *now)
{
    kr_kgroups *gs = kr_kgroups_new();
    assert_non_null(gs);
    *now = 1000;
    join_new(gs, *now, a);
    assert_int_equal(a->calls, 1); /* alone: the rebalance completes at once */
    assert_int_equal(a->err, 0);
    assert_int_equal(a->generation, 1);
    assert_string_equal(a->leader, a->member);
    assert_int_equal(a->n_members, 1);
    assert_string_equal(a->protocol, "range");
    answer s = {0};
    kr_kafka_sync_group_assignment mine = {str(a->member), {(const uint8_t *)"A1", 2}};
    sync(gs, a, 1, *now, &s, &mine, 1);
    assert_int_equal(s.calls, 1);
    assert_string_equal(s.assignment, "A1");
    int32_t gen;
    assert_string_equal(kr_kgroups_state(gs, "g", 1, &gen), "Stable");

    /* b joins: a rebalance; b waits until a joins again. */
    *now += 100;
    join_new(gs, *now, b);
    assert_int_equal(b->calls, 0);
    assert_string_equal(kr_kgroups_state(gs, "g", 1, &gen), "PreparingRebalance");
    assert_int_equal(heartbeat(gs, a, 1, *now), KR_KAFKA_ERR_REBALANCE_IN_PROGRESS);
    answer a2 = {0};
    snprintf(a2.member, sizeof a2.member, "%s", a->member);
    join(gs, a->member, "range", "roundrobin", *now, &a2);
    assert_int_equal(a2.calls, 1);
    assert_int_equal(b->calls, 1);
    assert_int_equal(a2.generation, 2);
    assert_int_equal(b->generation, 2);
    assert_string_equal(a2.leader, a->member); /* the leader stays */
    assert_string_equal(b->leader, a->member);
    assert_int_equal(a2.n_members, 2);
    assert_int_equal(b->n_members, 0);
    *a = a2;

    /* b's SyncGroup waits for the leader's, which brings both. */
    answer sb = {0}, sa = {0};
    sync(gs, b, 2, *now, &sb, NULL, 0);
    assert_int_equal(sb.calls, 0);
    kr_kafka_sync_group_assignment both[2] = {{str(a->member), {(const uint8_t *)"A2", 2}},
                                              {str(b->member), {(const uint8_t *)"B2", 2}}};
    sync(gs, a, 2, *now, &sa, both, 2);
    assert_int_equal(sa.calls, 1);
    assert_int_equal(sb.calls, 1);
    assert_string_equal(sa.assignment, "A2");
    assert_string_equal(sb.assignment, "B2");
    assert_string_equal(kr_kgroups_state(gs, "g", 1, &gen), "Stable");
    assert_int_equal(gen, 2);
    assert_int_equal(kr_kgroups_members(gs, "g", 1), 2);
    return gs;
}

static void test_join_sync_rebalance(void **state)
{
    (void)state;
    answer a, b;
    uint64_t now;
    kr_kgroups *gs = two_members(&a, &b, &now);
    assert_int_equal(heartbeat(gs, &a, 2, now), 0);
    assert_int_equal(heartbeat(gs, &b, 1, now), KR_KAFKA_ERR_ILLEGAL_GENERATION);
    answer ghost = {.member = "nobody"};
    assert_int_equal(heartbeat(gs, &ghost, 2, now), KR_KAFKA_ERR_UNKNOWN_MEMBER_ID);

    /* A follower joining again with the same protocols gets the current
     * generation at once; a SyncGroup in a stable group too. */
    answer b2 = {0};
    join(gs, b.member, "range", "roundrobin", now, &b2);
    assert_int_equal(b2.calls, 1);
    assert_int_equal(b2.generation, 2);
    answer sb = {0};
    sync(gs, &b, 2, now, &sb, NULL, 0);
    assert_int_equal(sb.calls, 1);
    assert_string_equal(sb.assignment, "B2");
    kr_kgroups_free(gs);
}

static void test_leave_and_session_timeout(void **state)
{
    (void)state;
    answer a, b;
    uint64_t now;
    kr_kgroups *gs = two_members(&a, &b, &now);

    /* The leader leaves: b alone, leader of generation 3. */
    assert_int_equal(kr_kgroups_leave(gs, str("g"), str(a.member), now), 0);
    assert_int_equal(kr_kgroups_leave(gs, str("g"), str(a.member), now),
                     KR_KAFKA_ERR_UNKNOWN_MEMBER_ID);
    assert_int_equal(heartbeat(gs, &b, 2, now), KR_KAFKA_ERR_REBALANCE_IN_PROGRESS);
    answer b3 = {0};
    join(gs, b.member, "range", "roundrobin", now, &b3);
    assert_int_equal(b3.calls, 1);
    assert_int_equal(b3.generation, 3);
    assert_string_equal(b3.leader, b.member);

    /* b goes silent: after its session timeout it is dropped and the group
     * is empty (and then forgotten). */
    kr_kgroups_tick(gs, now + SESSION - 1);
    assert_int_equal(kr_kgroups_members(gs, "g", 1), 1);
    kr_kgroups_tick(gs, now + SESSION + 1);
    assert_int_equal(kr_kgroups_members(gs, "g", 1), 0);
    kr_kgroups_tick(gs, now + SESSION + 2);
    assert_string_equal(kr_kgroups_state(gs, "g", 1, NULL), "Dead");
    kr_kgroups_free(gs);
}

/* A member that does not join the rebalance is dropped at its deadline;
 * the ones that did are answered then. */
static void test_rebalance_timeout(void **state)
{
    (void)state;
    answer a, b;
    uint64_t now;
    kr_kgroups *gs = two_members(&a, &b, &now);
    answer c;
    join_new(gs, now, &c);
    assert_int_equal(c.calls, 0);
    answer a3 = {0};
    join(gs, a.member, "range", "roundrobin", now, &a3);
    assert_int_equal(a3.calls, 0); /* b has not joined yet */
    /* Heartbeats keep b alive, but it never joins. */
    for (uint64_t t = now + 1000; t < now + REBALANCE; t += 1000) {
        assert_int_equal(heartbeat(gs, &b, 2, t), KR_KAFKA_ERR_REBALANCE_IN_PROGRESS);
        kr_kgroups_tick(gs, t);
    }
    assert_int_equal(a3.calls, 0);
    kr_kgroups_tick(gs, now + REBALANCE);
    assert_int_equal(a3.calls, 1);
    assert_int_equal(c.calls, 1);
    assert_int_equal(a3.generation, 3);
    assert_int_equal(a3.n_members, 2);
    assert_int_equal(heartbeat(gs, &b, 3, now + REBALANCE), KR_KAFKA_ERR_UNKNOWN_MEMBER_ID);
    kr_kgroups_free(gs);
}

static void test_protocols_and_errors(void **state)
{
    (void)state;
    kr_kgroups *gs = kr_kgroups_new();
    answer a = {0}, x = {0};
    /* v3 and older: no MEMBER_ID_REQUIRED, the id comes with the answer. */
    kr_kafka_join_group_protocol rr = {str("roundrobin"), {(const uint8_t *)"m", 1}};
    kr_kafka_join_group_req q = {.group_id = str("g"),
                                 .session_timeout_ms = SESSION,
                                 .rebalance_timeout_ms = -1,
                                 .member_id = str(""),
                                 .group_instance_id = {NULL, -1},
                                 .protocol_type = str("consumer"),
                                 .protocols = {&rr, 1}};
    kr_kgroups_join(gs, &q, 3, str("old"), 1000, on_join, &a);
    assert_int_equal(a.calls, 1);
    assert_int_equal(a.err, 0);
    assert_int_equal(a.generation, 1);
    assert_string_equal(a.protocol, "roundrobin");

    /* A member that cannot speak roundrobin is refused; so is another
     * protocol type, a bad session timeout, an unknown member id and an
     * empty group id. */
    join(gs, "", "range", NULL, 1000, &x);
    assert_int_equal(x.err, KR_KAFKA_ERR_INCONSISTENT_GROUP_PROTOCOL);
    q.protocol_type = str("connect");
    kr_kgroups_join(gs, &q, 5, str("c"), 1000, on_join, &x);
    assert_int_equal(x.err, KR_KAFKA_ERR_INCONSISTENT_GROUP_PROTOCOL);
    q.protocol_type = str("consumer");
    q.session_timeout_ms = 10;
    kr_kgroups_join(gs, &q, 5, str("c"), 1000, on_join, &x);
    assert_int_equal(x.err, KR_KAFKA_ERR_INVALID_SESSION_TIMEOUT);
    q.session_timeout_ms = SESSION;
    q.member_id = str("made-up");
    kr_kgroups_join(gs, &q, 5, str("c"), 1000, on_join, &x);
    assert_int_equal(x.err, KR_KAFKA_ERR_UNKNOWN_MEMBER_ID);
    q.group_id = str("");
    kr_kgroups_join(gs, &q, 5, str("c"), 1000, on_join, &x);
    assert_int_equal(x.err, KR_KAFKA_ERR_INVALID_GROUP_ID);

    /* The vote: a second member speaking range and roundrobin (range
     * first) still gets roundrobin, the one both speak. */
    answer b;
    join_new(gs, 1000, &b);
    answer a2 = {0};
    kr_kafka_join_group_req again = {.group_id = str("g"),
                                     .session_timeout_ms = SESSION,
                                     .rebalance_timeout_ms = -1,
                                     .member_id = str(a.member),
                                     .group_instance_id = {NULL, -1},
                                     .protocol_type = str("consumer"),
                                     .protocols = {&rr, 1}};
    kr_kgroups_join(gs, &again, 3, str("old"), 1000, on_join, &a2);
    assert_int_equal(b.calls, 1);
    assert_string_equal(b.protocol, "roundrobin");
    kr_kgroups_free(gs);
}

static void test_commit_check(void **state)
{
    (void)state;
    kr_kgroups *gs = kr_kgroups_new();
    /* No group, or one without members: a commit without generation. */
    assert_int_equal(kr_kgroups_commit_check(gs, str("g"), -1, str(""), 0), 0);
    answer a, b;
    uint64_t now;
    kr_kgroups_free(gs);
    gs = two_members(&a, &b, &now);
    assert_int_equal(kr_kgroups_commit_check(gs, str("g"), -1, str(""), now),
                     KR_KAFKA_ERR_UNKNOWN_MEMBER_ID);
    assert_int_equal(kr_kgroups_commit_check(gs, str("g"), 2, str(a.member), now), 0);
    assert_int_equal(kr_kgroups_commit_check(gs, str("g"), 1, str(a.member), now),
                     KR_KAFKA_ERR_ILLEGAL_GENERATION);
    assert_int_equal(kr_kgroups_commit_check(gs, str("g"), 2, str("x"), now),
                     KR_KAFKA_ERR_UNKNOWN_MEMBER_ID);
    /* A commit counts as a heartbeat: b commits, a does not. */
    assert_int_equal(kr_kgroups_commit_check(gs, str("g"), 2, str(b.member), now + SESSION - 5), 0);
    kr_kgroups_tick(gs, now + SESSION + 1);
    assert_int_equal(kr_kgroups_members(gs, "g", 1), 1);
    kr_kgroups_free(gs);
}

/* Two members in a stable generation 2, then c joins: a rebalance is
 * prepared, c's JoinGroup waits for a and b to join again. */
static kr_kgroups *rebalancing(answer *a, answer *b, answer *c, uint64_t *now)
{
    kr_kgroups *gs = two_members(a, b, now);
    *now += 10;
    join_new(gs, *now, c);
    assert_int_equal(c->calls, 0);
    assert_string_equal(kr_kgroups_state(gs, "g", 1, NULL), "PreparingRebalance");
    return gs;
}

/* As on Kafka's coordinators: while a rebalance is prepared, members of the
 * current generation commit what they consumed before they join again (a
 * consumer commits the partitions it gives up); once it completes, until
 * the group is stable again, a commit waits for the new generation. */
static void test_commit_during_rebalance(void **state)
{
    (void)state;
    answer a, b, c;
    uint64_t now;
    kr_kgroups *gs = rebalancing(&a, &b, &c, &now);
    assert_int_equal(kr_kgroups_commit_check(gs, str("g"), 2, str(a.member), now), 0);
    assert_int_equal(kr_kgroups_commit_check(gs, str("g"), 1, str(a.member), now),
                     KR_KAFKA_ERR_ILLEGAL_GENERATION);
    /* a and b join: generation 3, completing until the leader's SyncGroup. */
    answer a3 = {0}, b3 = {0};
    join(gs, a.member, "range", "roundrobin", now, &a3);
    join(gs, b.member, "range", "roundrobin", now, &b3);
    assert_int_equal(a3.generation, 3);
    assert_string_equal(kr_kgroups_state(gs, "g", 1, NULL), "CompletingRebalance");
    assert_int_equal(kr_kgroups_commit_check(gs, str("g"), 3, str(b.member), now),
                     KR_KAFKA_ERR_REBALANCE_IN_PROGRESS);
    answer sa = {0};
    sync(gs, &a, 3, now, &sa, NULL, 0);
    assert_int_equal(sa.calls, 1);
    assert_int_equal(kr_kgroups_commit_check(gs, str("g"), 3, str(b.member), now), 0);
    assert_int_equal(kr_kgroups_commit_check(gs, str("g"), 2, str(b.member), now),
                     KR_KAFKA_ERR_ILLEGAL_GENERATION);
    kr_kgroups_free(gs);
}

/* A node that stops coordinating answers its waiting calls NOT_COORDINATOR
 * and forgets its groups. */
static void test_resign(void **state)
{
    (void)state;
    answer a, b, c;
    uint64_t now;
    kr_kgroups *gs = rebalancing(&a, &b, &c, &now);
    kr_kgroups_resign(gs);
    assert_int_equal(c.calls, 1);
    assert_int_equal(c.err, KR_KAFKA_ERR_NOT_COORDINATOR);
    assert_string_equal(kr_kgroups_state(gs, "g", 1, NULL), "Dead");
    assert_int_equal(kr_kgroups_members(gs, "g", 1), 0);
    kr_kgroups_resign(gs); /* nothing left: no-op */
    kr_kgroups_resign(NULL);
    kr_kgroups_free(gs);
}

/* A waiting JoinGroup whose connection went is never answered, but it
 * counts: the rebalance completes without waiting for it, and the member
 * stays until its session ends. */
static void test_cancel(void **state)
{
    (void)state;
    answer a, b;
    uint64_t now;
    kr_kgroups *gs = two_members(&a, &b, &now);
    answer c;
    join_new(gs, now, &c);
    assert_int_equal(c.calls, 0);
    kr_kgroups_cancel(gs, &c);
    answer a3 = {0}, b3 = {0};
    join(gs, a.member, "range", "roundrobin", now, &a3);
    join(gs, b.member, "range", "roundrobin", now, &b3);
    /* c had joined: its member is in the new generation, unanswered. */
    assert_int_equal(c.calls, 0);
    assert_int_equal(a3.calls, 1);
    assert_int_equal(a3.n_members, 3);
    /* Then it expires, and the others rebalance without it. */
    assert_int_equal(heartbeat(gs, &a, 3, now + SESSION - 1), 0);
    assert_int_equal(heartbeat(gs, &b, 3, now + SESSION - 1), 0);
    kr_kgroups_tick(gs, now + SESSION + 1);
    assert_int_equal(c.calls, 0);
    assert_int_equal(kr_kgroups_members(gs, "g", 1), 2);
    assert_int_equal(heartbeat(gs, &a, 3, now + SESSION + 1), KR_KAFKA_ERR_REBALANCE_IN_PROGRESS);
    kr_kgroups_free(gs);
}

int main(void)
{
    kr_log_setup(KR_LOG_ERROR, KR_LOG_TEXT);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_join_sync_rebalance),
        cmocka_unit_test(test_leave_and_session_timeout),
        cmocka_unit_test(test_rebalance_timeout),
        cmocka_unit_test(test_protocols_and_errors),
        cmocka_unit_test(test_commit_check),
        cmocka_unit_test(test_commit_during_rebalance),
        cmocka_unit_test(test_resign),
        cmocka_unit_test(test_cancel),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
