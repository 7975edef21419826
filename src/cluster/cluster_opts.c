/*
 * cluster/cluster_opts.c - the cluster's options (cluster.h): the peers
 * list, a node id from a host name, a single krappyd's cluster id, and the
 * random ids the cluster names itself with.
 */
#include "cluster/cluster.h"

#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>

#include "cluster/cluster_int.h"

void kr_cluster_free_peers(kr_node_peer *p, size_t n)
{
    for (size_t i = 0; p != NULL && i < n; i++)
        free((char *)p[i].addr);
    free(p);
}

int kr_cluster_parse_peers(const char *s, kr_node_peer **out, size_t *n, char *err, size_t errlen)
{
    *out = NULL;
    *n = 0;
    kr_node_peer *p = calloc(KR_NODE_MAX_MEMBERS, sizeof *p);
    char *copy = strdup(s != NULL ? s : "");
    size_t k = 0;
    if (p == NULL || copy == NULL) {
        snprintf(err, errlen, "out of memory");
        goto fail;
    }
    char *save = NULL;
    for (char *part = strtok_r(copy, ",", &save); part != NULL; part = strtok_r(NULL, ",", &save)) {
        char *eq = strchr(part, '=');
        char *end;
        if (k == KR_NODE_MAX_MEMBERS) {
            snprintf(err, errlen, "--peers lists more than %d nodes", KR_NODE_MAX_MEMBERS);
            goto fail;
        }
        errno = 0;
        unsigned long long id = eq != NULL ? strtoull(part, &end, 10) : 0;
        if (eq == NULL || !isdigit((unsigned char)part[0]) || end != eq || errno != 0 || id == 0) {
            snprintf(err, errlen,
                     "--peers: '%.100s' is not ID=HOST:PORT with an id above 0 (example: "
                     "1=krappyd-0.krappyd-headless:7072)",
                     part);
            goto fail;
        }
        kr_hostport hp = {0};
        char why[300];
        if (kr_hostport_parse(eq + 1, 0, &hp, why, sizeof why) < 0 || hp.host[0] == '\0' ||
            strlen(eq + 1) > KR_NODE_ADDR_MAX) {
            snprintf(err, errlen, "--peers: node %llu: %s", id,
                     why[0] ? why : "the address needs a host");
            goto fail;
        }
        for (size_t i = 0; i < k; i++) {
            if (p[i].id == id || strcmp(p[i].addr, eq + 1) == 0) {
                snprintf(err, errlen, "--peers names node %llu or address %.100s twice", id,
                         eq + 1);
                goto fail;
            }
        }
        p[k].id = id;
        p[k].addr = strdup(eq + 1);
        if (p[k++].addr == NULL) {
            snprintf(err, errlen, "out of memory");
            goto fail;
        }
    }
    if (k == 0) {
        snprintf(err, errlen, "--peers is empty (example: 1=a:7072,2=b:7072,3=c:7072)");
        goto fail;
    }
    free(copy);
    *out = p;
    *n = k;
    return 0;
fail:
    kr_cluster_free_peers(p, k);
    free(copy);
    return -1;
}

int kr_cluster_node_id_from_host(const char *hostname, uint64_t *id, char *err, size_t errlen)
{
    size_t n = strlen(hostname), d = n;
    while (d > 0 && isdigit((unsigned char)hostname[d - 1]))
        d--;
    if (d == n || n - d > 9) {
        snprintf(err, errlen,
                 "--node-id auto: host name '%.100s' does not end in a number (a StatefulSet "
                 "pod's ordinal); give --node-id a number",
                 hostname);
        return -1;
    }
    *id = strtoull(hostname + d, NULL, 10) + 1;
    return 0;
}

void kr_cluster_random_id(char *out, size_t cap)
{
    uint64_t v = 0;
    if (getrandom(&v, sizeof v, 0) != (ssize_t)sizeof v) {
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        v = (uint64_t)ts.tv_sec * 1000000007ULL ^ (uint64_t)ts.tv_nsec;
    }
    snprintf(out, cap, "%016llx", (unsigned long long)v);
}

int kr_cluster_single_id(const char *data_dir, char *out, size_t outlen, char *err, size_t errlen)
{
    char path[4200], line[128] = "";
    snprintf(path, sizeof path, "%s/%s", data_dir, KR_CLUSTER_MARKER);
    FILE *f = fopen(path, "re");
    if (f != NULL) {
        if (fgets(line, sizeof line, f) == NULL)
            line[0] = '\0';
        fclose(f);
    }
    line[strcspn(line, " \r\n")] = '\0';
    if (line[0] != '\0') {
        snprintf(out, outlen, "%s", line);
        return 0;
    }
    char id[KR_CLUSTER_ID_MAX + 1], text[KR_CLUSTER_ID_MAX + 16];
    kr_cluster_random_id(id, sizeof id);
    snprintf(text, sizeof text, "%s single\n", id);
    if (kr_cluster_write_file(path, text) < 0) {
        snprintf(err, errlen, "cannot write %s: %s", path, strerror(errno));
        return -1;
    }
    snprintf(out, outlen, "%s", id);
    return 0;
}
