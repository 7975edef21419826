/*
 * server/fdplan.c - the file descriptor limit raised and shared out (see
 * fdplan.h).
 */
#include "server/fdplan.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/resource.h>

#include "util/log.h"

/* A hard limit of "unlimited" still has a kernel ceiling (fs.nr_open,
 * 1048576 by default): ask for that much. */
#define KR_FD_UNLIMITED 1048576

int kr_fd_plan_share(const kr_config *cfg, uint64_t limit, kr_fd_plan *plan, char *err,
                     size_t errlen)
{
    plan->limit = limit;
    plan->admin = strcmp(cfg->http, "off") != 0 ? cfg->http_max_connections : 0;
    uint64_t rocks = limit / 16;
    if (rocks < KR_FD_ROCKSDB_MIN)
        rocks = KR_FD_ROCKSDB_MIN;
    if (rocks > KR_FD_ROCKSDB_MAX)
        rocks = KR_FD_ROCKSDB_MAX;
    plan->rocksdb = (int)rocks;
    uint64_t fixed = KR_FD_RESERVED + KR_FD_ROCKSDB_OWN + rocks + plan->admin;
    if (limit < fixed + KR_FD_SEGMENTS_MIN + 1) {
        snprintf(err, errlen,
                 "the open file limit (ulimit -n) is %llu, too low for krappyd: it needs at "
                 "least %llu descriptors (%u of them for the admin port: see "
                 "--http-max-connections); raise the limit",
                 (unsigned long long)limit, (unsigned long long)(fixed + KR_FD_SEGMENTS_MIN + 1),
                 plan->admin);
        return -1;
    }
    uint64_t left = limit - fixed;
    plan->connections = cfg->max_connections;
    if (left - KR_FD_SEGMENTS_MIN < plan->connections)
        plan->connections = (uint32_t)(left - KR_FD_SEGMENTS_MIN);
    plan->segments = (size_t)(left - plan->connections);
    return 0;
}

int kr_fd_plan_make(const kr_config *cfg, kr_fd_plan *plan, char *err, size_t errlen)
{
    memset(plan, 0, sizeof *plan);
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) < 0) {
        snprintf(err, errlen, "cannot read the open file limit: %s", strerror(errno));
        return -1;
    }
    plan->soft_before = rl.rlim_cur;
    plan->hard = rl.rlim_max == RLIM_INFINITY ? KR_FD_UNLIMITED : rl.rlim_max;
    if (rl.rlim_cur != RLIM_INFINITY && rl.rlim_cur < plan->hard) {
        struct rlimit up = {(rlim_t)plan->hard, rl.rlim_max};
        if (setrlimit(RLIMIT_NOFILE, &up) == 0)
            rl.rlim_cur = up.rlim_cur;
    }
    uint64_t limit = rl.rlim_cur == RLIM_INFINITY ? KR_FD_UNLIMITED : rl.rlim_cur;
    if (kr_fd_plan_share(cfg, limit, plan, err, errlen) < 0)
        return -1;
    kr_log(KR_LOG_INFO, "open file limit", KR_LOG_U64("soft_was", plan->soft_before),
           KR_LOG_U64("hard", rl.rlim_max == RLIM_INFINITY ? 0 : rl.rlim_max),
           KR_LOG_U64("soft", plan->limit), KR_LOG_U64("connections", plan->connections),
           KR_LOG_U64("admin_connections", plan->admin),
           KR_LOG_U64("rocksdb_files", (uint64_t)plan->rocksdb),
           KR_LOG_U64("segment_files", plan->segments));
    if (plan->connections < cfg->max_connections)
        kr_log(KR_LOG_WARN,
               "the open file limit holds fewer client connections than --max-connections; "
               "raise `ulimit -n` (the hard limit) to serve them all",
               KR_LOG_U64("max_connections", cfg->max_connections),
               KR_LOG_U64("connections", plan->connections), KR_LOG_U64("limit", plan->limit));
    return 0;
}
