/*
 * e2e/bench/bench_ping.c - what the session layer costs: PING round trips
 * one at a time (latency percentiles) and pipelined (requests per second),
 * through libkrappy against a real krappyd on 127.0.0.1.
 *
 *   bench_ping [ROUND_TRIPS [PIPELINED [WINDOW]]]
 * Defaults: 20000 round trips, 1000000 pipelined PINGs, 1000 in flight.
 * Uses $KRAPPYD (default bin/krappyd), or $KRAPPY_E2E_ADDR if set.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>

#include "../harness.h"
#include "krappy/client.h"

static uint64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static int cmp_u64(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x < y ? -1 : x > y;
}

static double cpu_s(int who)
{
    struct rusage ru;
    getrusage(who, &ru);
    return (double)ru.ru_utime.tv_sec + ru.ru_utime.tv_usec / 1e6 + (double)ru.ru_stime.tv_sec +
           ru.ru_stime.tv_usec / 1e6;
}

static void die(krappy_client *c, const char *what)
{
    fprintf(stderr, "bench_ping: %s: %s\n", what, krappy_client_errmsg(c));
    exit(1);
}

int main(int argc, char **argv)
{
    long rtts = argc > 1 ? atol(argv[1]) : 20000;
    long piped = argc > 2 ? atol(argv[2]) : 1000000;
    long window = argc > 3 ? atol(argv[3]) : 1000;
    if (rtts < 1 || piped < 1 || window < 1) {
        fprintf(stderr, "usage: bench_ping [ROUND_TRIPS [PIPELINED [WINDOW]]]\n");
        return 2;
    }
    e2e_server s;
    if (e2e_start_or_external(&s) < 0)
        return 1;
    krappy_client *c = krappy_client_new(NULL);
    if (c == NULL || krappy_connect(c, s.host, s.port) != KRAPPY_OK)
        die(c, "connect");
    if (krappy_hello(c, NULL) != KRAPPY_OK)
        die(c, "hello");

    uint64_t *lat = calloc((size_t)rtts, sizeof *lat);
    for (long i = 0; i < 1000; i++) /* warm up */
        if (krappy_ping(c) != KRAPPY_OK)
            die(c, "ping");
    for (long i = 0; i < rtts; i++) {
        uint64_t t0 = now_ns();
        if (krappy_ping(c) != KRAPPY_OK)
            die(c, "ping");
        lat[i] = now_ns() - t0;
    }
    qsort(lat, (size_t)rtts, sizeof *lat, cmp_u64);

    double cpu0 = cpu_s(RUSAGE_SELF);
    uint64_t t0 = now_ns();
    long sent = 0, got = 0;
    krappy_frame f;
    while (got < piped) {
        while (sent < piped && sent - got < window) {
            if (krappy_send(c, 10, NULL, 0) != KRAPPY_OK)
                die(c, "send");
            sent++;
        }
        if (krappy_recv(c, &f) != KRAPPY_OK || f.type != 100)
            die(c, "recv");
        got++;
    }
    double secs = (double)(now_ns() - t0) / 1e9;
    double client_cpu = cpu_s(RUSAGE_SELF) - cpu0;

    printf("| PING (libkrappy, 127.0.0.1, 1 connection) | value |\n|---|---|\n");
    printf("| round trip p50 | %.1f us |\n", (double)lat[rtts / 2] / 1e3);
    printf("| round trip p99 | %.1f us |\n", (double)lat[rtts * 99 / 100] / 1e3);
    printf("| round trip p99.9 | %.1f us |\n", (double)lat[rtts * 999 / 1000] / 1e3);
    printf("| pipelined (%ld in flight) | %.0f requests/s |\n", window, (double)piped / secs);
    printf("| client CPU while pipelined | %.0f%% of one core |\n", 100 * client_cpu / secs);
    if (s.pid > 0)
        printf("| server RSS after | %ld KiB |\n", e2e_rss_kib(&s));
    free(lat);
    krappy_client_free(c);
    return e2e_stop(&s, 10000) == 0 ? 0 : 1;
}
