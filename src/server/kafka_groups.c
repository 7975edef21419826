/*
 * server/kafka_groups.c - the Kafka group coordinator (see kafka_groups.h).
 *
 * Groups are kept in an array by name (few per server); each holds its
 * members in the order they joined, which decides the leader when the old
 * one is gone. Every string and byte string a member sent is copied: the
 * requests' frames are gone when a rebalance completes.
 */
#include "server/kafka_groups.h"

#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kafka/errors.h"
#include "util/grow.h"
#include "util/log.h"

typedef enum kg_state { KG_EMPTY = 0, KG_PREPARING, KG_COMPLETING, KG_STABLE } kg_state;

static const char *const state_names[] = {"Empty", "PreparingRebalance", "CompletingRebalance",
                                          "Stable"};

/* A member's bytes: a copy of a string or byte string of a request. */
typedef struct kg_bytes {
    uint8_t *p; /* NULL with len 0 for an empty one */
    int32_t len;
} kg_bytes;

typedef struct kg_protocol {
    kg_bytes name, metadata;
} kg_protocol;

typedef struct kg_member {
    kg_bytes id;
    bool pending; /* given MEMBER_ID_REQUIRED: not in the group until it joins */
    int32_t session_ms, rebalance_ms;
    kg_protocol *protocols;
    int32_t n_protocols;
    kg_bytes assignment;
    uint64_t expires_ms;
    bool joined;           /* joined the rebalance under way (its answer may
                              have nobody left to take it: the connection
                              went, and it expires later) */
    kr_kg_join_fn join_fn; /* a JoinGroup waiting for the rebalance */
    void *join_arg;
    kr_kg_sync_fn sync_fn; /* a SyncGroup waiting for the leader's */
    void *sync_arg;
} kg_member;

typedef struct kg_group {
    kg_bytes id;
    kg_state state;
    int32_t generation;
    kg_bytes protocol_type;
    kg_bytes protocol; /* chosen for the current generation */
    kg_member **members;
    size_t n_members, cap_members;
    kg_member *leader;
    uint64_t rebalance_deadline_ms;
} kg_group;

struct kr_kgroups {
    kg_group **groups;
    size_t n, cap;
    uint64_t ids; /* member ids handed out */
};

/* ---- bytes ---- */

static int bytes_set(kg_bytes *b, const void *p, int32_t len)
{
    uint8_t *n = NULL;
    if (len > 0) {
        n = malloc((size_t)len);
        if (n == NULL)
            return -1;
        memcpy(n, p, (size_t)len);
    }
    free(b->p);
    b->p = n;
    b->len = len > 0 ? len : 0;
    return 0;
}

static bool bytes_eq(const kg_bytes *b, const void *p, int32_t len)
{
    int32_t n = len > 0 ? len : 0;
    return b->len == n && (n == 0 || memcmp(b->p, p, (size_t)n) == 0);
}

static kr_kafka_str as_str(const kg_bytes *b)
{
    return (kr_kafka_str){b->len > 0 ? (const char *)b->p : "", b->len};
}

static kr_kafka_bytes as_bytes(const kg_bytes *b)
{
    return (kr_kafka_bytes){b->len > 0 ? b->p : (const uint8_t *)"", b->len};
}

/* ---- members ---- */

static void protocols_free(kg_member *m)
{
    for (int32_t i = 0; i < m->n_protocols; i++) {
        free(m->protocols[i].name.p);
        free(m->protocols[i].metadata.p);
    }
    free(m->protocols);
    m->protocols = NULL;
    m->n_protocols = 0;
}

static void member_free(kg_member *m)
{
    if (m == NULL)
        return;
    protocols_free(m);
    free(m->id.p);
    free(m->assignment.p);
    free(m);
}

/* Copy the protocols of a JoinGroup into m. @return 0, or -1 on ENOMEM. */
static int protocols_set(kg_member *m, const kr_kafka_join_group_req *req)
{
    int32_t n = req->protocols.n > 0 ? req->protocols.n : 0;
    kg_protocol *p = calloc(n > 0 ? (size_t)n : 1, sizeof *p);
    if (p == NULL)
        return -1;
    for (int32_t i = 0; i < n; i++) {
        const kr_kafka_join_group_protocol *q = &req->protocols.v[i];
        if (bytes_set(&p[i].name, q->name.ptr, q->name.len) < 0 ||
            bytes_set(&p[i].metadata, q->metadata.ptr, q->metadata.len) < 0) {
            kg_member tmp = {.protocols = p, .n_protocols = i + 1};
            protocols_free(&tmp);
            return -1;
        }
    }
    protocols_free(m);
    m->protocols = p;
    m->n_protocols = n;
    return 0;
}

/* Whether a JoinGroup names the same protocols, in the same order, with the
 * same metadata, as the member has. */
static bool protocols_same(const kg_member *m, const kr_kafka_join_group_req *req)
{
    if (m->n_protocols != (req->protocols.n > 0 ? req->protocols.n : 0))
        return false;
    for (int32_t i = 0; i < m->n_protocols; i++) {
        const kr_kafka_join_group_protocol *q = &req->protocols.v[i];
        if (!bytes_eq(&m->protocols[i].name, q->name.ptr, q->name.len) ||
            !bytes_eq(&m->protocols[i].metadata, q->metadata.ptr, q->metadata.len))
            return false;
    }
    return true;
}

static const kg_protocol *member_protocol(const kg_member *m, const kg_bytes *name)
{
    for (int32_t i = 0; i < m->n_protocols; i++)
        if (bytes_eq(&m->protocols[i].name, name->p, name->len))
            return &m->protocols[i];
    return NULL;
}

static bool member_supports(const kg_member *m, const void *name, int32_t len)
{
    kg_bytes b = {(uint8_t *)(uintptr_t)name, len > 0 ? len : 0};
    return member_protocol(m, &b) != NULL;
}

/* ---- groups ---- */

static kg_group *group_find(const kr_kgroups *gs, const void *id, int32_t len, size_t *at)
{
    for (size_t i = 0; i < gs->n; i++)
        if (bytes_eq(&gs->groups[i]->id, id, len)) {
            if (at != NULL)
                *at = i;
            return gs->groups[i];
        }
    return NULL;
}

static kg_group *group_add(kr_kgroups *gs, const void *id, int32_t len)
{
    kg_group **all = kr_grow(gs->groups, gs->n, &gs->cap, sizeof *all, 4);
    if (all == NULL)
        return NULL;
    gs->groups = all;
    kg_group *g = calloc(1, sizeof *g);
    if (g == NULL || bytes_set(&g->id, id, len) < 0) {
        free(g);
        return NULL;
    }
    gs->groups[gs->n++] = g;
    return g;
}

static void group_free(kg_group *g)
{
    for (size_t i = 0; i < g->n_members; i++)
        member_free(g->members[i]);
    free(g->members);
    free(g->id.p);
    free(g->protocol_type.p);
    free(g->protocol.p);
    free(g);
}

static kg_member *member_find(const kg_group *g, const void *id, int32_t len)
{
    for (size_t i = 0; i < g->n_members; i++)
        if (bytes_eq(&g->members[i]->id, id, len))
            return g->members[i];
    return NULL;
}

/* Members that are in the group (not waiting for their first join). */
static size_t live_members(const kg_group *g)
{
    size_t n = 0;
    for (size_t i = 0; i < g->n_members; i++)
        n += !g->members[i]->pending;
    return n;
}

static kg_member *member_add(kg_group *g, const char *id, size_t len)
{
    kg_member **all = kr_grow(g->members, g->n_members, &g->cap_members, sizeof *all, 4);
    if (all == NULL)
        return NULL;
    g->members = all;
    kg_member *m = calloc(1, sizeof *m);
    if (m == NULL || bytes_set(&m->id, id, (int32_t)len) < 0) {
        free(m);
        return NULL;
    }
    g->members[g->n_members++] = m;
    return m;
}

static void log_group(const kg_group *g, const char *msg, const kg_member *m, const char *why)
{
    if (!kr_log_enabled(KR_LOG_INFO))
        return;
    char gid[256], mid[256];
    snprintf(gid, sizeof gid, "%.*s", (int)g->id.len, g->id.len ? (const char *)g->id.p : "");
    if (m != NULL)
        snprintf(mid, sizeof mid, "%.*s", (int)m->id.len, m->id.len ? (const char *)m->id.p : "");
    kr_log(KR_LOG_INFO, msg, KR_LOG_STR("group", gid), KR_LOG_STR(m ? "member" : NULL, mid),
           KR_LOG_U64("generation", (uint64_t)(g->generation > 0 ? g->generation : 0)),
           KR_LOG_U64("members", live_members(g)), KR_LOG_STR(why ? "reason" : NULL, why));
}

/* ---- answers ---- */

static void answer_join(kr_kg_join_fn fn, void *arg, int16_t err, const kg_group *g,
                        const kg_bytes *member_id)
{
    kr_kafka_join_group_resp r = {.error_code = err, .generation_id = -1};
    r.protocol_name = (kr_kafka_str){"", 0};
    r.leader = (kr_kafka_str){"", 0};
    r.member_id = member_id != NULL ? as_str(member_id) : (kr_kafka_str){"", 0};
    (void)g;
    fn(arg, &r);
}

static void answer_sync(kr_kg_sync_fn fn, void *arg, int16_t err, const kg_bytes *assignment)
{
    kr_kafka_sync_group_resp r = {.error_code = err};
    r.assignment =
        assignment != NULL ? as_bytes(assignment) : (kr_kafka_bytes){(const uint8_t *)"", 0};
    fn(arg, &r);
}

/* Answer a member's waiting calls with `err` (it left, or a rebalance
 * started under a SyncGroup). */
static void fail_waiting(kg_member *m, int16_t join_err, int16_t sync_err)
{
    if (m->join_fn != NULL) {
        kr_kg_join_fn fn = m->join_fn;
        m->join_fn = NULL;
        answer_join(fn, m->join_arg, join_err, NULL, &m->id);
    }
    if (m->sync_fn != NULL) {
        kr_kg_sync_fn fn = m->sync_fn;
        m->sync_fn = NULL;
        answer_sync(fn, m->sync_arg, sync_err, NULL);
    }
}

/* The current generation's JoinGroup answer for m: the leader gets every
 * member's metadata for the chosen protocol. */
static void answer_generation(const kg_group *g, const kg_member *m, kr_kg_join_fn fn, void *arg)
{
    kr_kafka_join_group_resp r = {.generation_id = g->generation};
    r.protocol_name = as_str(&g->protocol);
    r.leader = g->leader != NULL ? as_str(&g->leader->id) : (kr_kafka_str){"", 0};
    r.member_id = as_str(&m->id);
    kr_kafka_join_group_member *list = NULL;
    if (m == g->leader) {
        list = calloc(g->n_members ? g->n_members : 1, sizeof *list);
        if (list == NULL) {
            answer_join(fn, arg, KR_KAFKA_ERR_UNKNOWN_SERVER_ERROR, g, &m->id);
            return;
        }
        int32_t n = 0;
        for (size_t i = 0; i < g->n_members; i++) {
            const kg_member *x = g->members[i];
            const kg_protocol *p = x->pending ? NULL : member_protocol(x, &g->protocol);
            if (p == NULL)
                continue;
            list[n].member_id = as_str(&x->id);
            list[n].group_instance_id = (kr_kafka_str){NULL, -1};
            list[n].metadata = as_bytes(&p->metadata);
            n++;
        }
        r.members.v = list;
        r.members.n = n;
    }
    fn(arg, &r);
    free(list);
}

/* ---- rebalancing ---- */

/* The protocol every member supports that most members prefer (each votes
 * for the first of its own it finds in the candidates). */
static int choose_protocol(kg_group *g)
{
    const kg_member *first = NULL;
    for (size_t i = 0; i < g->n_members && first == NULL; i++)
        if (!g->members[i]->pending)
            first = g->members[i];
    if (first == NULL)
        return -1;
    int32_t best = -1, best_votes = -1;
    for (int32_t c = 0; c < first->n_protocols; c++) {
        const kg_bytes *name = &first->protocols[c].name;
        bool everyone = true;
        for (size_t i = 0; i < g->n_members && everyone; i++)
            everyone = g->members[i]->pending || member_protocol(g->members[i], name) != NULL;
        if (!everyone)
            continue;
        int32_t votes = 0;
        for (size_t i = 0; i < g->n_members; i++) {
            const kg_member *m = g->members[i];
            if (m->pending)
                continue;
            /* m's vote: its first protocol that every member supports. */
            for (int32_t k = 0; k < m->n_protocols; k++) {
                const kg_bytes *mine = &m->protocols[k].name;
                bool all = true;
                for (size_t j = 0; j < g->n_members && all; j++)
                    all = g->members[j]->pending || member_protocol(g->members[j], mine) != NULL;
                if (all) {
                    votes += bytes_eq(mine, name->p, name->len);
                    break;
                }
            }
        }
        if (votes > best_votes) {
            best = c;
            best_votes = votes;
        }
    }
    if (best < 0)
        return -1;
    const kg_bytes *n = &first->protocols[best].name;
    return bytes_set(&g->protocol, n->p, n->len);
}

static void remove_member_at(kg_group *g, size_t i)
{
    kg_member *m = g->members[i];
    if (g->leader == m)
        g->leader = NULL;
    memmove(g->members + i, g->members + i + 1, (g->n_members - i - 1) * sizeof *g->members);
    g->n_members--;
    member_free(m);
}

/* Every member that joined is in the new generation; the others are
 * dropped. The joined ones get their answers. */
static void complete_join(kg_group *g, uint64_t now_ms)
{
    for (size_t i = g->n_members; i-- > 0;) {
        kg_member *m = g->members[i];
        if (!m->pending && !m->joined) {
            log_group(g, "Kafka group member dropped", m, "it did not join the rebalance in time");
            fail_waiting(m, KR_KAFKA_ERR_UNKNOWN_MEMBER_ID, KR_KAFKA_ERR_UNKNOWN_MEMBER_ID);
            remove_member_at(g, i);
        }
    }
    g->generation++;
    if (live_members(g) == 0) {
        g->state = KG_EMPTY;
        bytes_set(&g->protocol, NULL, 0);
        bytes_set(&g->protocol_type, NULL, 0);
        log_group(g, "Kafka group is empty", NULL, NULL);
        return;
    }
    if (choose_protocol(g) < 0) {
        /* Members that share no protocol were refused at join, so only
         * ENOMEM gets here: they all join again. */
        for (size_t i = 0; i < g->n_members; i++)
            fail_waiting(g->members[i], KR_KAFKA_ERR_UNKNOWN_SERVER_ERROR,
                         KR_KAFKA_ERR_UNKNOWN_SERVER_ERROR);
        g->state = KG_EMPTY;
        return;
    }
    if (g->leader == NULL)
        for (size_t i = 0; i < g->n_members && g->leader == NULL; i++)
            if (!g->members[i]->pending)
                g->leader = g->members[i];
    g->state = KG_COMPLETING;
    log_group(g, "Kafka group rebalanced", g->leader, NULL);
    for (size_t i = 0; i < g->n_members; i++) {
        kg_member *m = g->members[i];
        if (m->pending)
            continue;
        m->joined = false;
        free(m->assignment.p);
        m->assignment = (kg_bytes){NULL, 0};
        m->expires_ms = now_ms + (uint64_t)m->session_ms;
        if (m->join_fn == NULL)
            continue; /* its connection went: it expires */
        kr_kg_join_fn fn = m->join_fn;
        m->join_fn = NULL;
        answer_generation(g, m, fn, m->join_arg);
    }
}

static void maybe_complete(kg_group *g, uint64_t now_ms)
{
    if (g->state != KG_PREPARING)
        return;
    bool all = true;
    for (size_t i = 0; i < g->n_members && all; i++)
        all = g->members[i]->pending || g->members[i]->joined;
    if (all || now_ms >= g->rebalance_deadline_ms)
        complete_join(g, now_ms);
}

/* Start a rebalance: waiting SyncGroups learn of it, the others from their
 * next Heartbeat. It ends when every member joined again, or after the
 * longest rebalance timeout. */
static void prepare_rebalance(kg_group *g, uint64_t now_ms, const char *why)
{
    if (g->state != KG_PREPARING) {
        for (size_t i = 0; i < g->n_members; i++)
            if (g->members[i]->sync_fn != NULL) {
                kr_kg_sync_fn fn = g->members[i]->sync_fn;
                g->members[i]->sync_fn = NULL;
                answer_sync(fn, g->members[i]->sync_arg, KR_KAFKA_ERR_REBALANCE_IN_PROGRESS, NULL);
            }
        uint64_t longest = 0;
        for (size_t i = 0; i < g->n_members; i++) {
            const kg_member *m = g->members[i];
            uint64_t t = (uint64_t)(m->rebalance_ms > 0 ? m->rebalance_ms : m->session_ms);
            if (!m->pending && t > longest)
                longest = t;
        }
        g->state = KG_PREPARING;
        g->rebalance_deadline_ms = now_ms + longest;
        log_group(g, "Kafka group rebalancing", NULL, why);
    }
    maybe_complete(g, now_ms);
}

/* ---- JoinGroup ---- */

kr_kgroups *kr_kgroups_new(void)
{
    return calloc(1, sizeof(kr_kgroups));
}

void kr_kgroups_free(kr_kgroups *gs)
{
    if (gs == NULL)
        return;
    for (size_t i = 0; i < gs->n; i++)
        group_free(gs->groups[i]);
    free(gs->groups);
    free(gs);
}

/* The checks of a JoinGroup that need no member. @return the error code. */
static int16_t join_precheck(const kg_group *g, const kr_kafka_join_group_req *req)
{
    if (req->group_id.len <= 0)
        return KR_KAFKA_ERR_INVALID_GROUP_ID;
    if (req->session_timeout_ms < KR_KGROUP_MIN_SESSION_MS ||
        req->session_timeout_ms > KR_KGROUP_MAX_SESSION_MS)
        return KR_KAFKA_ERR_INVALID_SESSION_TIMEOUT;
    if (req->protocol_type.len <= 0 || req->protocols.n <= 0)
        return KR_KAFKA_ERR_INCONSISTENT_GROUP_PROTOCOL;
    if (g == NULL || live_members(g) == 0)
        return 0;
    if (!bytes_eq(&g->protocol_type, req->protocol_type.ptr, req->protocol_type.len))
        return KR_KAFKA_ERR_INCONSISTENT_GROUP_PROTOCOL;
    /* At least one of its protocols must be one every member supports. */
    for (int32_t i = 0; i < req->protocols.n; i++) {
        const kr_kafka_join_group_protocol *q = &req->protocols.v[i];
        bool all = true;
        for (size_t j = 0; j < g->n_members && all; j++) {
            const kg_member *m = g->members[j];
            if (m->pending || bytes_eq(&m->id, req->member_id.ptr, req->member_id.len))
                continue;
            all = member_supports(m, q->name.ptr, q->name.len);
        }
        if (all)
            return 0;
    }
    return KR_KAFKA_ERR_INCONSISTENT_GROUP_PROTOCOL;
}

/* A new member id: the client's id, a number and the time, as Kafka's
 * brokers make them. */
static void new_member_id(kr_kgroups *gs, kr_kafka_str client_id, uint64_t now_ms, char *out,
                          size_t outlen)
{
    int n = client_id.len > 0 ? (int)(client_id.len < 64 ? client_id.len : 64) : 0;
    snprintf(out, outlen, "%.*s%s%llu-%llu", n, n ? client_id.ptr : "", n ? "-" : "member-",
             (unsigned long long)++gs->ids, (unsigned long long)now_ms);
}

void kr_kgroups_join(kr_kgroups *gs, const kr_kafka_join_group_req *req, int16_t version,
                     kr_kafka_str client_id, uint64_t now_ms, kr_kg_join_fn fn, void *arg)
{
    kg_group *g = group_find(gs, req->group_id.ptr, req->group_id.len, NULL);
    int16_t err = join_precheck(g, req);
    if (err != 0) {
        answer_join(fn, arg, err, g, NULL);
        return;
    }
    if (g == NULL && (g = group_add(gs, req->group_id.ptr, req->group_id.len)) == NULL) {
        answer_join(fn, arg, KR_KAFKA_ERR_UNKNOWN_SERVER_ERROR, NULL, NULL);
        return;
    }
    kg_member *m = NULL;
    bool is_new = false;
    if (req->member_id.len <= 0) {
        char id[128];
        new_member_id(gs, client_id, now_ms, id, sizeof id);
        m = member_add(g, id, strlen(id));
        if (m == NULL) {
            answer_join(fn, arg, KR_KAFKA_ERR_UNKNOWN_SERVER_ERROR, g, NULL);
            return;
        }
        m->session_ms = req->session_timeout_ms;
        m->expires_ms = now_ms + (uint64_t)req->session_timeout_ms;
        if (version >= 4) {
            /* Joins again with this id (KIP-394). */
            m->pending = true;
            answer_join(fn, arg, KR_KAFKA_ERR_MEMBER_ID_REQUIRED, g, &m->id);
            return;
        }
        is_new = true;
    } else {
        m = member_find(g, req->member_id.ptr, req->member_id.len);
        if (m == NULL) {
            answer_join(fn, arg, KR_KAFKA_ERR_UNKNOWN_MEMBER_ID, g, NULL);
            return;
        }
        is_new = m->pending;
    }
    bool same = !is_new && protocols_same(m, req);
    if (!same && protocols_set(m, req) < 0) {
        answer_join(fn, arg, KR_KAFKA_ERR_UNKNOWN_SERVER_ERROR, g, &m->id);
        return;
    }
    if (live_members(g) == 0 || g->protocol_type.len == 0)
        bytes_set(&g->protocol_type, req->protocol_type.ptr, req->protocol_type.len);
    m->pending = false;
    m->session_ms = req->session_timeout_ms;
    m->rebalance_ms = req->rebalance_timeout_ms;
    m->expires_ms = now_ms + (uint64_t)m->session_ms;
    if (m->join_fn != NULL) /* joined again before the first answer: that one goes */
        fail_waiting(m, KR_KAFKA_ERR_REBALANCE_IN_PROGRESS, KR_KAFKA_ERR_REBALANCE_IN_PROGRESS);
    if ((g->state == KG_STABLE || g->state == KG_COMPLETING) && same && m != g->leader) {
        /* A follower that missed its answer: the current generation. */
        answer_generation(g, m, fn, arg);
        return;
    }
    m->join_fn = fn;
    m->join_arg = arg;
    m->joined = true;
    if (g->state == KG_PREPARING)
        maybe_complete(g, now_ms);
    else
        prepare_rebalance(g, now_ms, is_new ? "a member joined" : "a member joined again");
}

/* ---- SyncGroup, Heartbeat, LeaveGroup ---- */

/* The group and member of a request of the current generation, or the
 * error. */
static int16_t find_member(kr_kgroups *gs, kr_kafka_str group, kr_kafka_str member,
                           int32_t generation, kg_group **gout, kg_member **mout)
{
    kg_group *g = group_find(gs, group.ptr, group.len, NULL);
    kg_member *m = g != NULL ? member_find(g, member.ptr, member.len) : NULL;
    if (m == NULL || m->pending)
        return KR_KAFKA_ERR_UNKNOWN_MEMBER_ID;
    *gout = g;
    *mout = m;
    if (generation != g->generation)
        return KR_KAFKA_ERR_ILLEGAL_GENERATION;
    return 0;
}

void kr_kgroups_sync(kr_kgroups *gs, const kr_kafka_sync_group_req *req, uint64_t now_ms,
                     kr_kg_sync_fn fn, void *arg)
{
    kg_group *g;
    kg_member *m;
    int16_t err = find_member(gs, req->group_id, req->member_id, req->generation_id, &g, &m);
    if (err == 0 && g->state == KG_PREPARING)
        err = KR_KAFKA_ERR_REBALANCE_IN_PROGRESS;
    if (err != 0) {
        answer_sync(fn, arg, err, NULL);
        return;
    }
    m->expires_ms = now_ms + (uint64_t)m->session_ms;
    if (g->state == KG_STABLE) {
        answer_sync(fn, arg, 0, &m->assignment);
        return;
    }
    if (m->sync_fn != NULL)
        fail_waiting(m, 0, KR_KAFKA_ERR_REBALANCE_IN_PROGRESS);
    m->sync_fn = fn;
    m->sync_arg = arg;
    if (m != g->leader)
        return; /* until the leader's */
    for (int32_t i = 0; i < req->assignments.n; i++) {
        const kr_kafka_sync_group_assignment *a = &req->assignments.v[i];
        kg_member *x = member_find(g, a->member_id.ptr, a->member_id.len);
        if (x != NULL && !x->pending &&
            bytes_set(&x->assignment, a->assignment.ptr, a->assignment.len) < 0) {
            prepare_rebalance(g, now_ms, "out of memory keeping the assignment");
            return;
        }
    }
    g->state = KG_STABLE;
    log_group(g, "Kafka group stable", NULL, NULL);
    for (size_t i = 0; i < g->n_members; i++) {
        kg_member *x = g->members[i];
        if (x->sync_fn == NULL)
            continue;
        kr_kg_sync_fn f = x->sync_fn;
        x->sync_fn = NULL;
        answer_sync(f, x->sync_arg, 0, &x->assignment);
    }
}

int16_t kr_kgroups_heartbeat(kr_kgroups *gs, const kr_kafka_heartbeat_req *req, uint64_t now_ms)
{
    kg_group *g;
    kg_member *m;
    int16_t err = find_member(gs, req->group_id, req->member_id, req->generation_id, &g, &m);
    if (err != 0)
        return err;
    m->expires_ms = now_ms + (uint64_t)m->session_ms;
    return g->state == KG_PREPARING ? KR_KAFKA_ERR_REBALANCE_IN_PROGRESS : 0;
}

int16_t kr_kgroups_leave(kr_kgroups *gs, kr_kafka_str group, kr_kafka_str member, uint64_t now_ms)
{
    kg_group *g = group_find(gs, group.ptr, group.len, NULL);
    if (g == NULL)
        return KR_KAFKA_ERR_UNKNOWN_MEMBER_ID;
    for (size_t i = 0; i < g->n_members; i++) {
        kg_member *m = g->members[i];
        if (!bytes_eq(&m->id, member.ptr, member.len))
            continue;
        bool pending = m->pending;
        log_group(g, "Kafka group member left", m, NULL);
        fail_waiting(m, KR_KAFKA_ERR_UNKNOWN_MEMBER_ID, KR_KAFKA_ERR_UNKNOWN_MEMBER_ID);
        remove_member_at(g, i);
        if (!pending && g->state != KG_EMPTY)
            prepare_rebalance(g, now_ms, "a member left");
        return 0;
    }
    return KR_KAFKA_ERR_UNKNOWN_MEMBER_ID;
}

int16_t kr_kgroups_commit_check(kr_kgroups *gs, kr_kafka_str group, int32_t generation,
                                kr_kafka_str member, uint64_t now_ms)
{
    kg_group *g = group_find(gs, group.ptr, group.len, NULL);
    if (generation < 0 && member.len <= 0)
        return g == NULL || live_members(g) == 0 ? 0 : KR_KAFKA_ERR_UNKNOWN_MEMBER_ID;
    kg_member *m;
    int16_t err = find_member(gs, group, member, generation, &g, &m);
    if (err != 0)
        return err;
    if (g->state == KG_COMPLETING)
        return KR_KAFKA_ERR_REBALANCE_IN_PROGRESS;
    m->expires_ms = now_ms + (uint64_t)m->session_ms;
    return 0;
}

void kr_kgroups_resign(kr_kgroups *gs)
{
    if (gs == NULL)
        return;
    for (size_t i = 0; i < gs->n; i++) {
        kg_group *g = gs->groups[i];
        log_group(g, "Kafka group given up: this node no longer leads", NULL, NULL);
        for (size_t j = 0; j < g->n_members; j++)
            fail_waiting(g->members[j], KR_KAFKA_ERR_NOT_COORDINATOR, KR_KAFKA_ERR_NOT_COORDINATOR);
        group_free(g);
    }
    gs->n = 0;
}

void kr_kgroups_cancel(kr_kgroups *gs, void *arg)
{
    for (size_t i = 0; i < gs->n; i++) {
        kg_group *g = gs->groups[i];
        for (size_t j = 0; j < g->n_members; j++) {
            kg_member *m = g->members[j];
            if (m->join_fn != NULL && m->join_arg == arg)
                m->join_fn = NULL;
            if (m->sync_fn != NULL && m->sync_arg == arg)
                m->sync_fn = NULL;
        }
    }
}

/* Drop the members of g whose session ran out. @return how many. */
static size_t expire_members(kg_group *g, uint64_t now_ms)
{
    size_t dropped = 0;
    for (size_t i = g->n_members; i-- > 0;) {
        kg_member *m = g->members[i];
        /* A member that joined the rebalance is kept until it ends. */
        if (m->expires_ms > now_ms || (m->joined && g->state == KG_PREPARING))
            continue;
        if (!m->pending) {
            log_group(g, "Kafka group member dropped", m, "its session timed out");
            dropped++;
        }
        fail_waiting(m, KR_KAFKA_ERR_UNKNOWN_MEMBER_ID, KR_KAFKA_ERR_UNKNOWN_MEMBER_ID);
        remove_member_at(g, i);
    }
    return dropped;
}

void kr_kgroups_tick(kr_kgroups *gs, uint64_t now_ms)
{
    if (gs == NULL)
        return;
    for (size_t i = gs->n; i-- > 0;) {
        kg_group *g = gs->groups[i];
        if (expire_members(g, now_ms) > 0 && g->state != KG_EMPTY)
            prepare_rebalance(g, now_ms, "a member's session timed out");
        maybe_complete(g, now_ms);
        if (g->state == KG_EMPTY && g->n_members == 0) {
            group_free(g);
            gs->groups[i] = gs->groups[--gs->n];
        }
    }
}

size_t kr_kgroups_members(const kr_kgroups *gs, const char *group, size_t len)
{
    const kg_group *g = gs != NULL ? group_find(gs, group, (int32_t)len, NULL) : NULL;
    return g != NULL ? live_members(g) : 0;
}

const char *kr_kgroups_state(const kr_kgroups *gs, const char *group, size_t len,
                             int32_t *generation)
{
    const kg_group *g = gs != NULL ? group_find(gs, group, (int32_t)len, NULL) : NULL;
    if (generation != NULL)
        *generation = g != NULL ? g->generation : -1;
    return g != NULL ? state_names[g->state] : "Dead";
}
