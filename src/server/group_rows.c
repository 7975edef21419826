/*
 * server/group_rows.c - a topic's consumer groups of both kinds in one list
 * (see group_rows.h): the store keeps them apart (cursors and Kafka
 * committed offsets), and the listings merge them by name.
 */
#include "server/group_rows.h"

#include <string.h>

#include "server/kafka.h"

/* Unsigned bytewise order, a prefix first. */
static int name_cmp(const char *a, size_t alen, const char *b, size_t blen)
{
    int c = memcmp(a, b, alen < blen ? alen : blen);
    if (c != 0)
        return c;
    return alen < blen ? -1 : alen > blen;
}

static bool wanted(const char *name, size_t len, const uint8_t *only, size_t only_len)
{
    return only == NULL || (len == only_len && memcmp(name, only, len) == 0);
}

size_t kr_group_rows(const kr_server *srv, const kr_topic *t, const uint8_t *only, size_t only_len,
                     void (*fn)(void *arg, const kr_group_row *row), void *arg)
{
    kr_tgroup *const *groups;
    const kr_koffset *ko;
    size_t ng = kr_store_groups(t, &groups), nk = kr_store_koffsets(t, &ko);
    size_t i = 0, j = 0, n = 0;
    while (i < ng || j < nk) {
        kr_group_stats gs = {0};
        if (i < ng)
            kr_store_group_stats(groups[i], &gs);
        bool take_krappy = i < ng && (j >= nk || name_cmp(gs.name, gs.name_len, ko[j].group,
                                                          ko[j].group_len) <= 0);
        kr_group_row row;
        if (take_krappy) {
            row = (kr_group_row){.name = gs.name,
                                 .name_len = gs.name_len,
                                 .cursor = gs.cursor,
                                 .pending = gs.pending,
                                 .lag = gs.lag,
                                 .members = gs.members,
                                 .tgroup = groups[i]};
            i++;
        } else {
            const kr_koffset *k = &ko[j++];
            row = (kr_group_row){.name = k->group,
                                 .name_len = k->group_len,
                                 .cursor = k->offset,
                                 .lag = t->next > k->offset ? t->next - k->offset : 0,
                                 .members =
                                     kr_kafka_group_members(srv->kafka, k->group, k->group_len),
                                 .kafka = true};
        }
        if (!wanted(row.name, row.name_len, only, only_len))
            continue;
        n++;
        if (fn != NULL)
            fn(arg, &row);
    }
    return n;
}
