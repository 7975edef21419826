/*
 * server/admin.h - the HTTP admin port: probes, Prometheus metrics and a
 * JSON API (see admin.c for the paths).
 */
#ifndef KR_SERVER_ADMIN_H
#define KR_SERVER_ADMIN_H

#include "server/server.h"

typedef struct kr_admin kr_admin;

/*
 * kr_admin_start - serve HTTP on `hostport` on the server's loop. `token`
 * (NULL or "": none) protects /api. At most max_conns connections are open
 * at once: with that many, the port stops accepting (new ones wait in the
 * listen backlog) until one closes, so idle admin connections cannot take
 * the descriptors of the data port.
 * @return the admin port, or NULL (logged) when it cannot listen.
 */
kr_admin *kr_admin_start(kr_server *srv, const char *hostport, const char *token,
                         uint32_t max_conns);

/* Stop serving and release it. NULL ok. */
void kr_admin_free(kr_admin *a);

#endif
