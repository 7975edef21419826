/*
 * server/main.c - krappyd's entry point: settings, logging, data directory,
 * then the loop until SIGTERM/SIGINT.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <event2/event.h>

#include "server/config.h"
#include "server/log.h"
#include "server/metrics.h"
#include "server/server.h"

/* Create the data directory (and its parents) when missing. */
static int make_data_dir(const char *path)
{
    char tmp[4096];
    if (snprintf(tmp, sizeof tmp, "%s", path) >= (int)sizeof tmp) {
        errno = ENAMETOOLONG;
        return -1;
    }
    for (char *p = tmp + 1; *p; p++) {
        if (*p != '/')
            continue;
        *p = '\0';
        if (mkdir(tmp, 0750) < 0 && errno != EEXIST)
            return -1;
        *p = '/';
    }
    if (mkdir(tmp, 0750) < 0 && errno != EEXIST)
        return -1;
    struct stat st;
    if (stat(tmp, &st) < 0)
        return -1;
    if (!S_ISDIR(st.st_mode)) {
        errno = ENOTDIR;
        return -1;
    }
    return 0;
}

int main(int argc, char **argv)
{
    kr_config cfg;
    char err[512];
    int status = 1;
    kr_server srv;
    memset(&srv, 0, sizeof srv);

    switch (kr_config_parse(&cfg, argc, argv, isatty(STDERR_FILENO), err, sizeof err)) {
    case KR_CONFIG_HELP:
        kr_config_usage(stdout);
        kr_config_free(&cfg);
        return 0;
    case KR_CONFIG_VERSION:
        printf("krappyd %s (protocol %d, libevent %s)\n", KRAPPY_VERSION, KRAPPY_PROTOCOL_VERSION,
               event_get_version());
        kr_config_free(&cfg);
        return 0;
    case KR_CONFIG_ERROR:
        fprintf(stderr, "krappyd: %s\nTry 'krappyd --help' for the list of options.\n", err);
        kr_config_free(&cfg);
        return 2;
    case KR_CONFIG_RUN:
        break;
    }

    kr_log_setup(cfg.log_level, cfg.log_format);
    if (make_data_dir(cfg.data_dir) < 0) {
        kr_log(KR_LOG_ERROR, "cannot create the data directory", "path", cfg.data_dir, "reason",
               strerror(errno), NULL);
        goto out;
    }
    kr_log(KR_LOG_INFO, "starting", "version", KRAPPY_VERSION, "data", cfg.data_dir, NULL);
    if (kr_server_init(&srv, &cfg, kr_metrics_global()) < 0)
        goto out;
    if (kr_server_run(&srv) == 0) {
        kr_log(KR_LOG_INFO, "stopped", NULL);
        status = 0;
    }
out:
    kr_server_free(&srv);
    kr_metrics_free(kr_metrics_global());
    kr_config_free(&cfg);
    return status;
}
