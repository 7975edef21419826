/*
 * server/admin_ops.c - administration shared by the data port (handlers.c)
 * and the admin port (admin.c): the store's part, then what connections
 * hold on what was deleted (PROTOCOL.md section 9). On a cluster a topic's
 * deletion and settings and a group's seek and deletion go through the log
 * (cluster_write.c, cluster_groups.c), and what connections hold is let go
 * when it is applied (kr_ops_forget).
 *
 * The store wakes the long polls parked on a deleted topic or group (their
 * handlers see w->gone); here every connection lets go of its registrations
 * on it. A listener with registrations of its own (a Kafka group member)
 * drops them here too, with a line each.
 */
#include <stdio.h>

#include "server/kafka.h"
#include "server/server.h"
#include "store/topic_config.h"

/* Drop c's consumer registration: its pending events go back to the group
 * (which may be on its way out; it lives until its deletion completes). */
static void drop_consumer(kr_conn *c)
{
    kr_tgroup *tg = c->consumer_group;
    kr_member *m = c->consumer;
    c->consumer = NULL;
    c->consumer_group = NULL;
    kr_store_group_leave(c->srv->store, tg, m);
}

void kr_ops_forget(kr_server *srv, const kr_topic *t, const kr_tgroup *tg)
{
    kr_conn *c;
    TAILQ_FOREACH(c, &srv->conns, link)
    {
        if (tg == NULL && c->producer == t) {
            c->producer = NULL;
            c->idem = false;
            c->producer_gone = true;
        }
        if (c->consumer != NULL && (tg ? c->consumer_group == tg : c->consumer_group->t == t))
            drop_consumer(c);
    }
}

krappy_err kr_ops_delete_topic(kr_server *srv, kr_topic *t, kr_store_done done, void *arg,
                               char *msg, size_t msglen)
{
    if (srv->cluster != NULL)
        return kr_server_cluster_topic_delete(srv, t, done, arg, msg, msglen);
    krappy_err e = kr_store_delete_topic(srv->store, t, done, arg, msg, msglen);
    if (e == KRAPPY_OK) {
        kr_ops_forget(srv, t, NULL);
        kr_kafka_topic_deleted(srv->kafka, t);
    }
    return e;
}

krappy_err kr_ops_group_delete(kr_server *srv, kr_tgroup *tg, kr_store_done done, void *arg,
                               char *msg, size_t msglen)
{
    if (srv->cluster != NULL) /* every node deletes it; the members go then */
        return kr_server_cluster_group_delete(srv, tg, done, arg, msg, msglen);
    krappy_err e = kr_store_group_delete(srv->store, tg, done, arg, msg, msglen);
    if (e == KRAPPY_OK)
        kr_ops_forget(srv, tg->t, tg);
    return e;
}

krappy_err kr_ops_group_seek(kr_server *srv, kr_tgroup *tg, kr_seek_kind to, uint64_t value,
                             kr_store_done done, void *arg, char *msg, size_t msglen)
{
    if (srv->cluster != NULL)
        return kr_server_cluster_group_seek(srv, tg, to, value, done, arg, msg, msglen);
    return kr_store_group_seek(srv->store, tg, to, value, done, arg, msg, msglen);
}

krappy_err kr_ops_topic_configure(kr_server *srv, const uint8_t *name, size_t len,
                                  const kr_topic_config *set, kr_topic **t, kr_store_done done,
                                  void *arg, char *msg, size_t msglen)
{
    if (srv->cluster != NULL)
        return kr_server_cluster_topic_config(srv, name, len, set, t, done, arg, msg, msglen);
    return kr_store_topic_configure(srv->store, name, len, set, t, done, arg, msg, msglen);
}
