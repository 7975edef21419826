/*
 * e2e/cluster.c - a cluster of krappyd processes for the e2e suites (see
 * cluster.h).
 */
#include "cluster.h"

#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include "../tests/loopback.h"
#include "krappy/client.h"

void e2e_cluster_addr(const e2e_cluster *c, unsigned i, char *out, size_t len)
{
    snprintf(out, len, "127.0.0.1:%d", c->data_port[i]);
}

krappy_client *e2e_cluster_client(const e2e_cluster *c, unsigned i)
{
    char addr[64];
    e2e_cluster_addr(c, i, addr, sizeof addr);
    krappy_client *k = krappy_client_new(&(krappy_opts){.timeout_ms = 10000});
    if (k != NULL && krappy_connect_addr(k, addr) != KRAPPY_OK) {
        krappy_client_free(k);
        k = NULL;
    }
    return k;
}

/* Node i's arguments: its own, the cluster's, the caller's, then `more`. */
static int node_argv(e2e_cluster *c, unsigned i, const char *const *more, const char **argv,
                     size_t cap)
{
    size_t n = 0;
    snprintf(c->args[i][0], sizeof c->args[i][0], "%u", i + 1);
    snprintf(c->args[i][1], sizeof c->args[i][1], "127.0.0.1:%d", c->data_port[i]);
    snprintf(c->args[i][2], sizeof c->args[i][2], "127.0.0.1:%d", c->raft_port[i]);
    argv[n++] = "--node-id";
    argv[n++] = c->args[i][0];
    argv[n++] = "--listen";
    argv[n++] = c->args[i][1];
    argv[n++] = "--raft-listen";
    argv[n++] = c->args[i][2];
    argv[n++] = "--peers";
    argv[n++] = c->peers;
    for (size_t k = 0; c->extra[k] != NULL && n + 1 < cap; k++)
        argv[n++] = c->extra[k];
    for (size_t k = 0; more != NULL && more[k] != NULL && n + 1 < cap; k++)
        argv[n++] = more[k];
    argv[n] = NULL;
    return 0;
}

int e2e_cluster_restart(e2e_cluster *c, unsigned i, const char *const *more)
{
    const char *argv[48];
    node_argv(c, i, more, argv, sizeof argv / sizeof argv[0]);
    return e2e_restart(&c->node[i], argv);
}

int e2e_cluster_start(e2e_cluster *c, unsigned n, bool proxies, const char *const *extra)
{
    memset(c, 0, sizeof *c);
    if (n < 1 || n > E2E_CLUSTER_MAX)
        return -1;
    c->n = n;
    for (size_t k = 0; extra != NULL && extra[k] != NULL && k + 1 < 32; k++)
        c->extra[k] = extra[k];
    size_t po = 0, ao = 0;
    for (unsigned i = 0; i < n; i++) {
        c->data_port[i] = kr_test_free_port();
        c->raft_port[i] = kr_test_free_port();
        int reach = c->raft_port[i];
        if (proxies) {
            c->proxy[i] = e2e_proxy_start(c->raft_port[i]);
            if (c->proxy[i] == NULL)
                goto fail;
            reach = e2e_proxy_port(c->proxy[i]);
        }
        po += (size_t)snprintf(c->peers + po, sizeof c->peers - po, "%s%u=127.0.0.1:%d",
                               i ? "," : "", i + 1, reach);
        ao += (size_t)snprintf(c->addrs + ao, sizeof c->addrs - ao, "%s127.0.0.1:%d", i ? "," : "",
                               c->data_port[i]);
    }
    for (unsigned i = 0; i < n; i++) {
        const char *argv[48];
        node_argv(c, i, NULL, argv, sizeof argv / sizeof argv[0]);
        if (e2e_start(&c->node[i], argv) < 0)
            goto fail;
    }
    if (e2e_cluster_leader(c, 30000) < 0) {
        fprintf(stderr, "e2e: the cluster did not agree on a leader within 30 s\n");
        goto fail;
    }
    return 0;
fail:
    e2e_cluster_stop(c);
    return -1;
}

/* What node i says: its id of the leader (0: none, -1: no answer). */
static long ask_leader(const e2e_cluster *c, unsigned i, char *cluster, size_t len)
{
    char addr[64];
    e2e_cluster_addr(c, i, addr, sizeof addr);
    krappy_client *k =
        krappy_client_new(&(krappy_opts){.timeout_ms = 1000, .connect_timeout_ms = 1000});
    krappy_cluster_info *ci = NULL;
    long leader = -1;
    if (k != NULL && krappy_connect_addr(k, addr) == KRAPPY_OK &&
        krappy_cluster(k, &ci) == KRAPPY_OK) {
        leader = (long)ci->leader;
        snprintf(cluster, len, "%s", ci->cluster);
        /* Agreed means settled: every member's data address known (clients
         * are sent there), nobody still joining. */
        for (size_t n = 0; n < ci->n_nodes; n++)
            if (ci->nodes[n].addr[0] == '\0' || strcmp(ci->nodes[n].role, "joining") == 0)
                leader = 0;
    }
    krappy_cluster_info_free(ci);
    krappy_client_free(k);
    return leader;
}

int e2e_cluster_leader(e2e_cluster *c, int timeout_ms)
{
    uint64_t end = e2e_now_ms() + (uint64_t)timeout_ms;
    do {
        long agreed = -1;
        bool ok = true;
        char first[80] = "";
        for (unsigned i = 0; i < c->n && ok; i++) {
            if (c->node[i].pid == 0)
                continue;
            char cluster[80];
            long l = ask_leader(c, i, cluster, sizeof cluster);
            ok = l > 0 && (agreed < 0 || l == agreed) && cluster[0] != '\0' &&
                 (first[0] == '\0' || strcmp(first, cluster) == 0);
            agreed = l;
            snprintf(first, sizeof first, "%s", cluster);
        }
        if (ok && agreed > 0 && c->node[agreed - 1].pid != 0)
            return (int)agreed - 1;
        struct timespec ts = {0, 50 * 1000000L};
        nanosleep(&ts, NULL);
    } while (e2e_now_ms() < end);
    return -1;
}

void e2e_cluster_isolate(e2e_cluster *c, unsigned i)
{
    for (unsigned k = 0; k < c->n; k++) {
        if (c->proxy[k] == NULL)
            continue;
        if (k == i)
            e2e_proxy_cut(c->proxy[k], 0, true); /* nobody reaches it */
        else
            e2e_proxy_cut(c->proxy[k], i + 1, true); /* it reaches nobody */
    }
}

void e2e_cluster_heal(e2e_cluster *c)
{
    for (unsigned k = 0; k < c->n; k++)
        if (c->proxy[k] != NULL)
            e2e_proxy_heal(c->proxy[k]);
}

int e2e_cluster_stop(e2e_cluster *c)
{
    int rc = 0;
    /* All at once (a node stopped alone would wait for a hand-over), and
     * once: a second SIGTERM could reach a node after its handler is gone. */
    for (unsigned i = 0; i < c->n; i++)
        if (c->node[i].pid > 0)
            kill(c->node[i].pid, SIGTERM);
    for (unsigned i = 0; i < c->n; i++) {
        if (c->node[i].pid > 0 && e2e_wait_exit(&c->node[i], 15000) != 0)
            rc = -1;
        if (c->node[i].dir[0] != '\0')
            e2e_stop(&c->node[i], 15000); /* the directory goes (unless kept) */
    }
    for (unsigned i = 0; i < c->n; i++) {
        e2e_proxy_stop(c->proxy[i]);
        c->proxy[i] = NULL;
    }
    return rc;
}
