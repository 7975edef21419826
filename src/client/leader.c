/*
 * client/leader.c - libkrappy and clusters (PROTOCOL.md section 8): the
 * CLUSTER request and its answer, membership changes, and finding the node
 * that leads among a list of addresses.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "client/client_internal.h"

/* Pause between rounds while no leader is known (an election runs). */
#define KR_LEADER_RETRY_MS 100

void krappy_cluster_info_free(krappy_cluster_info *ci)
{
    free(ci);
}

/* Copy a text item of a map into out (cap bytes); "" when absent. */
static void text_of(const kr_cbor_item *map, const char *key, char *out, size_t cap)
{
    kr_cbor_item v;
    out[0] = '\0';
    if (kr_cbor_map_find(map, key, &v) == 1 && v.kind == KR_CBOR_TEXT && v.str != NULL &&
        v.str_len < cap && memchr(v.str, 0, v.str_len) == NULL) {
        memcpy(out, v.str, v.str_len);
        out[v.str_len] = '\0';
    }
}

static uint64_t uint_of(const kr_cbor_item *map, const char *key, int *found)
{
    kr_cbor_item v;
    if (kr_cbor_map_find(map, key, &v) == 1 && v.kind == KR_CBOR_UINT) {
        if (found != NULL)
            *found = 1;
        return v.u;
    }
    if (found != NULL)
        *found = 0;
    return 0;
}

/* CLUSTER's OK into a new krappy_cluster_info. */
static krappy_err read_info(krappy_client *c, const kr_reply *r, krappy_cluster_info **out)
{
    kr_cbor_item nodes, leader, n;
    kr_cbor_iter it;
    int has_node;
    if (kr_cbor_map_find(&r->map, "nodes", &nodes) != 1 || nodes.kind != KR_CBOR_ARRAY ||
        nodes.indefinite || kr_cbor_map_find(&r->map, "leader", &leader) != 1 ||
        (leader.kind != KR_CBOR_UINT && leader.kind != KR_CBOR_NULL))
        return kr_client_bad_reply(c, "CLUSTER", "no `nodes` array or `leader`");
    krappy_cluster_info *ci = calloc(1, sizeof *ci + (size_t)nodes.u * sizeof(krappy_cluster_node));
    if (ci == NULL)
        return kr_client_fail(c, KRAPPY_E_NOMEM, "out of memory reading CLUSTER's answer");
    text_of(&r->map, "cluster", ci->cluster, sizeof ci->cluster);
    ci->node = uint_of(&r->map, "node", &has_node);
    ci->term = uint_of(&r->map, "term", NULL);
    ci->leader = leader.kind == KR_CBOR_UINT ? leader.u : 0;
    ci->commit = uint_of(&r->map, "commit", NULL);
    ci->applied = uint_of(&r->map, "applied", NULL);
    kr_cbor_item halted;
    ci->halted = kr_cbor_map_find(&r->map, "halted", &halted) == 1 && halted.kind == KR_CBOR_TRUE;
    kr_cbor_iter_init(&it, &nodes);
    while (kr_cbor_iter_next(&it, &n) == 1) {
        krappy_cluster_node *k = &ci->nodes[ci->n_nodes];
        int has_id, has_match;
        if (n.kind != KR_CBOR_MAP)
            break;
        k->id = uint_of(&n, "id", &has_id);
        text_of(&n, "addr", k->addr, sizeof k->addr);
        text_of(&n, "role", k->role, sizeof k->role);
        text_of(&n, "raft", k->raft, sizeof k->raft);
        text_of(&n, "kafka", k->kafka, sizeof k->kafka);
        k->match = uint_of(&n, "match", &has_match);
        k->lag = uint_of(&n, "lag", &k->has_lag);
        k->has_lag = k->has_lag && has_match;
        if (!has_id)
            break;
        ci->n_nodes++;
    }
    if (!has_node || ci->n_nodes != nodes.u) {
        free(ci);
        return kr_client_bad_reply(c, "CLUSTER", "a node without `id`, or no `node`");
    }
    *out = ci;
    return KRAPPY_OK;
}

/* Send the CLUSTER built in c->enc and read its answer. */
static krappy_err cluster_call(krappy_client *c, krappy_cluster_info **out)
{
    krappy_frame f;
    kr_reply r;
    krappy_cluster_info *ci = NULL;
    krappy_err e = kr_client_request(c, KRAPPY_T_CLUSTER, KRAPPY_T_OK, 0, &f, &r);
    if (e == KRAPPY_OK)
        e = read_info(c, &r, &ci);
    if (e == KRAPPY_OK && out != NULL)
        *out = ci;
    else
        free(ci);
    return e;
}

krappy_err krappy_cluster(krappy_client *c, krappy_cluster_info **out)
{
    if (c == NULL || out == NULL)
        return c ? kr_client_fail(c, KRAPPY_E_USAGE, "krappy_cluster: out is NULL")
                 : KRAPPY_E_USAGE;
    *out = NULL;
    kr_client_clear_error(c);
    kr_enc_cluster(kr_client_enc_begin(c), (kr_cid){false, 0}, 0, NULL);
    return cluster_call(c, out);
}

krappy_err krappy_cluster_add(krappy_client *c, uint64_t id, const char *raft_addr,
                              krappy_cluster_info **out)
{
    if (c == NULL)
        return KRAPPY_E_USAGE;
    if (out != NULL)
        *out = NULL;
    kr_client_clear_error(c);
    if (id == 0 || raft_addr == NULL || raft_addr[0] == '\0')
        return kr_client_fail(c, KRAPPY_E_USAGE,
                              "krappy_cluster_add needs a node id above 0 and its raft address");
    kr_enc_cluster(kr_client_enc_begin(c), (kr_cid){false, 0}, id, raft_addr);
    return cluster_call(c, out);
}

krappy_err krappy_cluster_remove(krappy_client *c, uint64_t id, krappy_cluster_info **out)
{
    if (c == NULL)
        return KRAPPY_E_USAGE;
    if (out != NULL)
        *out = NULL;
    kr_client_clear_error(c);
    if (id == 0)
        return kr_client_fail(c, KRAPPY_E_USAGE, "krappy_cluster_remove needs a node id above 0");
    kr_enc_cluster(kr_client_enc_begin(c), (kr_cid){false, 0}, id, NULL);
    return cluster_call(c, out);
}

/* ---- finding the leader ---- */

/* What one node said, for the sentence when no leader is found. */
static void note(char *tried, size_t cap, const char *addr, const char *what)
{
    size_t used = strlen(tried);
    if (used < cap)
        snprintf(tried + used, cap - used, "%s%s: %s", used ? "; " : "", addr, what);
}

/*
 * On a fresh connection to `addr`: HELLO and CLUSTER. @return KRAPPY_OK
 * when this node leads (or knows nothing of clusters), KRAPPY_E_NOT_LEADER
 * with *leader_addr set when another does ("" when none is known), or a
 * hopeless error (HELLO refused).
 */
static krappy_err ask(krappy_client *c, const char *addr, krappy_server_info *info,
                      char *leader_addr, size_t len, char *tried, size_t tcap)
{
    leader_addr[0] = '\0';
    krappy_err e = krappy_connect_addr(c, addr);
    if (e == KRAPPY_OK)
        e = krappy_hello(c, info);
    if (e == KRAPPY_E_UNAUTHENTICATED || e == KRAPPY_E_UNSUPPORTED_VERSION)
        return e;
    if (e != KRAPPY_OK) {
        note(tried, tcap, addr, krappy_client_errmsg(c));
        return KRAPPY_E_IO;
    }
    krappy_cluster_info *ci = NULL;
    e = krappy_cluster(c, &ci);
    if (e == KRAPPY_E_UNKNOWN_TYPE)
        return KRAPPY_OK; /* a server without clusters is its own leader */
    if (e != KRAPPY_OK) {
        note(tried, tcap, addr, krappy_client_errmsg(c));
        return KRAPPY_E_IO;
    }
    e = KRAPPY_E_NOT_LEADER;
    if (ci->leader == ci->node) {
        e = KRAPPY_OK;
    } else if (ci->leader == 0) {
        note(tried, tcap, addr, "no leader known yet");
    } else {
        for (size_t i = 0; i < ci->n_nodes; i++)
            if (ci->nodes[i].id == ci->leader)
                snprintf(leader_addr, len, "%s", ci->nodes[i].addr);
        note(tried, tcap, addr,
             leader_addr[0] ? "another node leads"
                            : "the leader's address is "
                              "not known yet");
    }
    free(ci);
    return e;
}

static void nap_ms(int ms)
{
    struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

krappy_err krappy_connect_leader(krappy_client *c, const char *addrs, krappy_server_info *info)
{
    if (c == NULL)
        return KRAPPY_E_USAGE;
    kr_client_clear_error(c);
    const char *list = addrs != NULL && addrs[0] != '\0' ? addrs : "";
    int64_t deadline = kr_client_deadline_after(c->connect_timeout_ms);
    char tried[KR_CLIENT_ERRMSG_MAX];
    for (;;) {
        tried[0] = '\0';
        for (const char *p = list;;) {
            const char *comma = strchr(p, ',');
            size_t n = comma != NULL ? (size_t)(comma - p) : strlen(p);
            char one[KR_HOSTPORT_MAX + 1], leader[KR_HOSTPORT_MAX + 1];
            if (n > KR_HOSTPORT_MAX)
                return kr_client_fail(c, KRAPPY_E_USAGE, "address \"%.40s...\" is too long", p);
            memcpy(one, p, n);
            one[n] = '\0';
            krappy_err e = ask(c, one, info, leader, sizeof leader, tried, sizeof tried);
            if (e == KRAPPY_E_NOT_LEADER && leader[0] != '\0') {
                /* Follow it: the leader confirms itself. */
                char at[KR_HOSTPORT_MAX + 1];
                e = ask(c, leader, info, at, sizeof at, tried, sizeof tried);
            }
            if (e == KRAPPY_OK || e == KRAPPY_E_UNAUTHENTICATED ||
                e == KRAPPY_E_UNSUPPORTED_VERSION || e == KRAPPY_E_USAGE)
                return e;
            if (comma == NULL)
                break;
            p = comma + 1;
        }
        krappy_close(c);
        if (deadline >= 0 && kr_client_deadline_after(0) + KR_LEADER_RETRY_MS > deadline)
            break;
        nap_ms(KR_LEADER_RETRY_MS);
    }
    return kr_client_fail(c, KRAPPY_E_NOT_LEADER, "no node leads (within %d ms): %s",
                          c->connect_timeout_ms, tried);
}
