/*
 * client/cli_cluster.c - `krappy cluster`: the nodes of a cluster with their
 * roles, the term, each node's commit and applied positions and (from the
 * leader) each follower's lag; `cluster add ID HOST:PORT` and
 * `cluster remove ID` change the membership on the leader.
 */
#include "client/cli.h"

#include <stdlib.h>
#include <string.h>

#include "util/json.h"

/* How long asking one node for its own positions may take. */
#define CLI_NODE_TIMEOUT_MS 1000

static int max_int(int a, int b)
{
    return a > b ? a : b;
}

/* A node's own view: term, commit and applied (0 found, -1 unreachable). */
typedef struct own {
    int ok;
    uint64_t term, commit, applied;
    int halted; /* its store failed to apply the raft log */
} own;

static void ask_node(const cli *x, const char *addr, own *o)
{
    krappy_opts opts = {.timeout_ms = CLI_NODE_TIMEOUT_MS,
                        .connect_timeout_ms = CLI_NODE_TIMEOUT_MS,
                        .token = x->token,
                        .client_name = "krappy-cli/" KRAPPY_VERSION};
    krappy_client *c = krappy_client_new(&opts);
    krappy_cluster_info *ci = NULL;
    o->ok = 0;
    if (c != NULL && addr[0] != '\0' && krappy_connect_addr(c, addr) == KRAPPY_OK &&
        krappy_hello(c, NULL) == KRAPPY_OK && krappy_cluster(c, &ci) == KRAPPY_OK) {
        o->ok = 1;
        o->term = ci->term;
        o->commit = ci->commit;
        o->applied = ci->applied;
        o->halted = ci->halted;
    }
    krappy_cluster_info_free(ci);
    krappy_client_free(c);
}

static void json_str(const char *key, const char *s, bool comma)
{
    printf("%s\"%s\":", comma ? "," : "", key);
    kr_json_str_file(stdout, s, strlen(s));
}

static void print_json(const krappy_cluster_info *ci, const own *owns)
{
    printf("{");
    json_str("cluster", ci->cluster, false);
    printf(",\"term\":%llu,\"leader\":%llu,\"asked\":%llu,\"nodes\":[",
           (unsigned long long)ci->term, (unsigned long long)ci->leader,
           (unsigned long long)ci->node);
    for (size_t i = 0; i < ci->n_nodes; i++) {
        const krappy_cluster_node *n = &ci->nodes[i];
        printf("%s{\"id\":%llu", i ? "," : "", (unsigned long long)n->id);
        json_str("role", n->role, true);
        json_str("addr", n->addr, true);
        json_str("raft", n->raft, true);
        json_str("kafka", n->kafka, true);
        if (owns[i].ok)
            printf(",\"term\":%llu,\"commit\":%llu,\"applied\":%llu,\"halted\":%s",
                   (unsigned long long)owns[i].term, (unsigned long long)owns[i].commit,
                   (unsigned long long)owns[i].applied, owns[i].halted ? "true" : "false");
        if (n->has_lag)
            printf(",\"match\":%llu,\"lag\":%llu", (unsigned long long)n->match,
                   (unsigned long long)n->lag);
        printf("}");
    }
    printf("]}\n");
}

/* NODE ROLE ADDRESS RAFT COMMIT APPLIED LAG, aligned. */
static void print_table(const krappy_cluster_info *ci, const own *owns)
{
    int wa = 7, wr = 4;
    for (size_t i = 0; i < ci->n_nodes; i++) {
        wa = max_int(wa, (int)strlen(ci->nodes[i].addr));
        wr = max_int(wr, (int)strlen(ci->nodes[i].raft));
    }
    printf("cluster %s, term %llu, ", ci->cluster[0] ? ci->cluster : "(not named yet)",
           (unsigned long long)ci->term);
    if (ci->leader != 0)
        printf("leader %llu\n", (unsigned long long)ci->leader);
    else
        printf("no leader (an election runs, or too few nodes answer)\n");
    printf("%-4s  %-11s  %-*s  %-*s  %8s  %8s  %6s\n", "NODE", "ROLE", wa, "ADDRESS", wr, "RAFT",
           "COMMIT", "APPLIED", "LAG");
    for (size_t i = 0; i < ci->n_nodes; i++) {
        const krappy_cluster_node *n = &ci->nodes[i];
        char commit[24] = "-", applied[24] = "-", lag[24] = "-";
        if (owns[i].ok) {
            snprintf(commit, sizeof commit, "%llu", (unsigned long long)owns[i].commit);
            snprintf(applied, sizeof applied, "%llu", (unsigned long long)owns[i].applied);
        }
        if (n->has_lag)
            snprintf(lag, sizeof lag, "%llu", (unsigned long long)n->lag);
        printf("%-4llu  %-11s  %-*s  %-*s  %8s  %8s  %6s\n", (unsigned long long)n->id, n->role, wa,
               n->addr[0] ? n->addr : "?", wr, n->raft[0] ? n->raft : "-", commit, applied, lag);
    }
    for (size_t i = 0; i < ci->n_nodes; i++)
        if (owns[i].ok && owns[i].halted)
            printf("node %llu is halted: its store failed to apply the raft log (its log says what "
                   "and why); it applies nothing more until restarted - mend its disk, then "
                   "restart it\n",
                   (unsigned long long)ci->nodes[i].id);
}

/* The picture: from the leader when one is found (it knows the lags), else
 * from any node; each node asked for its own positions. */
static int show(cli *x, krappy_cluster_info *ci)
{
    own *owns = calloc(ci->n_nodes ? ci->n_nodes : 1, sizeof *owns);
    if (owns == NULL)
        return cli_fail(x, "out of memory");
    for (size_t i = 0; i < ci->n_nodes; i++)
        ask_node(x, ci->nodes[i].addr, &owns[i]);
    if (x->json)
        print_json(ci, owns);
    else
        print_table(ci, owns);
    free(owns);
    return CLI_OK;
}

int cli_cluster(cli *x, int argc, char **argv)
{
    int rc = cli_only_help_option(x, argc, argv);
    if (rc >= 0)
        return rc;
    const char *what = optind < argc ? argv[optind] : NULL;
    int nargs = argc - optind;
    uint64_t id = 0;
    krappy_cluster_info *ci = NULL;
    krappy_err e;
    if (what == NULL) {
        /* Any node answers; the leader's answer has the lags. */
        if ((rc = cli_connect_prefer_leader(x)) != CLI_OK)
            return rc;
        if ((e = krappy_cluster(x->client, &ci)) != KRAPPY_OK)
            return cli_client_fail(x, e);
        rc = show(x, ci);
        krappy_cluster_info_free(ci);
        return rc;
    }
    bool add = strcmp(what, "add") == 0, remove = strcmp(what, "remove") == 0;
    if (!add && !remove)
        return cli_usage_error(x, "unknown action '%s' (add or remove)", what);
    if (nargs != (add ? 3 : 2))
        return cli_usage_error(x, add ? "give: cluster add ID HOST:PORT (the raft address)"
                                      : "give: cluster remove ID");
    if (cli_parse_u64(argv[optind + 1], 1, UINT64_MAX, &id) < 0)
        return cli_usage_error(x, "\"%s\" is not a node id (a number above 0)", argv[optind + 1]);
    if ((rc = cli_connect_leader(x)) != CLI_OK)
        return rc;
    e = add ? krappy_cluster_add(x->client, id, argv[optind + 2], &ci)
            : krappy_cluster_remove(x->client, id, &ci);
    if (e != KRAPPY_OK)
        return cli_client_fail(x, e);
    if (!x->json)
        printf("node %llu %s\n", (unsigned long long)id,
               add ? "added: it has caught up and votes" : "removed");
    rc = show(x, ci);
    krappy_cluster_info_free(ci);
    return rc;
}
