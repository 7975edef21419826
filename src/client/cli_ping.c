/*
 * client/cli_ping.c - the verbs that ask the server how it is: `ping` and
 * `hello`.
 */
#include "client/cli.h"

#include <math.h>
#include <string.h>

#include "util/json.h"

/* Round-trip statistics, as ping(8) prints them. */
typedef struct rtt_stats {
    uint64_t sent, received;
    double min, max, sum, sumsq;
} rtt_stats;

static void rtt_add(rtt_stats *s, double ms)
{
    if (s->received == 0 || ms < s->min)
        s->min = ms;
    if (s->received == 0 || ms > s->max)
        s->max = ms;
    s->sum += ms;
    s->sumsq += ms * ms;
    s->received++;
}

static void print_summary(const cli *x, const rtt_stats *s, double elapsed_ms)
{
    double avg = s->received ? s->sum / (double)s->received : 0;
    double var = s->received ? s->sumsq / (double)s->received - avg * avg : 0;
    double mdev = var > 0 ? sqrt(var) : 0;
    double loss = s->sent ? 100.0 * (double)(s->sent - s->received) / (double)s->sent : 0;

    if (x->json) {
        printf("{\"type\":\"summary\",\"addr\":");
        kr_json_str_file(stdout, x->addr, strlen(x->addr));
        printf(",\"sent\":%llu,\"received\":%llu,\"loss_pct\":%.1f,\"time_ms\":%.0f",
               (unsigned long long)s->sent, (unsigned long long)s->received, loss, elapsed_ms);
        if (s->received)
            printf(",\"min_ms\":%.3f,\"avg_ms\":%.3f,\"max_ms\":%.3f,\"mdev_ms\":%.3f", s->min, avg,
                   s->max, mdev);
        printf("}\n");
        return;
    }
    printf("\n--- %s krappy ping statistics ---\n", x->addr);
    printf("%llu sent, %llu received, %.0f%% lost, time %.0f ms\n", (unsigned long long)s->sent,
           (unsigned long long)s->received, loss, elapsed_ms);
    if (s->received)
        printf("rtt min/avg/max/mdev = %.3f/%.3f/%.3f/%.3f ms\n", s->min, avg, s->max, mdev);
}

/*
 * ping: HELLO, then COUNT PINGs one at a time, INTERVAL apart, each round
 * trip printed as it happens; Ctrl-C stops early and still prints the
 * summary. A failed PING ends the run (the connection is gone) with exit 1.
 */
int cli_ping(cli *x, int argc, char **argv)
{
    static const struct option lo[] = {
        {"count", required_argument, NULL, 'c'},
        {"interval", required_argument, NULL, 'i'},
        CLI_HELP_OPTION,
        {NULL, 0, NULL, 0},
    };
    uint64_t count = 4, interval = 1000;
    int c, rc;
    char t[32];

    while ((c = cli_getopt(x, argc, argv, "c:i:", lo)) != CLI_OPT_END) {
        switch (c) {
        case 'c':
            if (cli_parse_u64(optarg, 0, UINT64_MAX, &count) < 0)
                return cli_usage_error(x, "--count \"%s\" is not a number (0 = until Ctrl-C)",
                                       optarg);
            break;
        case 'i':
            if ((rc = cli_parse_ms(x, "--interval", optarg, 0, &interval)) != CLI_OK)
                return rc;
            break;
        case CLI_OPT_HELP:
            return cli_verb_help(x->verb);
        default:
            return CLI_USAGE;
        }
    }
    if ((rc = cli_no_args(x, argc, argv)) != CLI_OK)
        return rc;

    cli_catch_sigint();
    if ((rc = cli_connect(x)) != CLI_OK)
        return rc;

    if (!x->json)
        printf("PING %s (%s, protocol %u): HELLO in %s ms\n", x->addr,
               x->info.server[0] ? x->info.server : "unnamed server", (unsigned)x->info.version,
               cli_fmt_ms(t, sizeof t, x->hello_ms));

    rtt_stats s;
    memset(&s, 0, sizeof s);
    double start = cli_now_ms();
    krappy_err e = KRAPPY_OK;
    for (uint64_t seq = 1; count == 0 || seq <= count; seq++) {
        if (cli_interrupted())
            break;
        double t0 = cli_now_ms();
        s.sent++;
        e = krappy_ping(x->client);
        double ms = cli_now_ms() - t0;
        if (e != KRAPPY_OK)
            break;
        rtt_add(&s, ms);
        if (x->json)
            printf("{\"type\":\"ping\",\"seq\":%llu,\"rtt_ms\":%.3f}\n", (unsigned long long)seq,
                   ms);
        else
            printf("reply from %s: seq=%llu time=%s ms\n", x->addr, (unsigned long long)seq,
                   cli_fmt_ms(t, sizeof t, ms));
        if ((count == 0 || seq < count) && cli_sleep_ms((double)interval))
            break;
    }
    rc = CLI_OK;
    if (e != KRAPPY_OK) {
        fflush(stdout);
        rc = cli_client_fail(x, e);
    }
    print_summary(x, &s, cli_now_ms() - start);
    return rc;
}

/* hello: what the server said in answer to HELLO, one field a line. */
int cli_hello(cli *x, int argc, char **argv)
{
    char t[32], b[32];
    int rc = cli_plain_connect(x, argc, argv);
    if (rc >= 0)
        return rc;

    const krappy_server_info *i = &x->info;
    if (x->json) {
        printf("{\"addr\":");
        kr_json_str_file(stdout, x->addr, strlen(x->addr));
        printf(",\"server\":");
        kr_json_str_file(stdout, i->server, strlen(i->server));
        printf(",\"protocol\":%u,\"max_frame\":%llu,\"max_events\":%llu,\"rtt_ms\":%.3f}\n",
               (unsigned)i->version, (unsigned long long)i->max_frame,
               (unsigned long long)i->max_events, x->hello_ms);
        return CLI_OK;
    }
    printf("address     %s\n", x->addr);
    printf("server      %s\n", i->server[0] ? i->server : "(not named)");
    printf("protocol    %u\n", (unsigned)i->version);
    printf("max_frame   %llu bytes (%s): the largest request or reply\n",
           (unsigned long long)i->max_frame, cli_fmt_bytes(b, sizeof b, i->max_frame));
    printf("max_events  %llu: the most events one FETCH or POLL returns\n",
           (unsigned long long)i->max_events);
    printf("round trip  %s ms\n", cli_fmt_ms(t, sizeof t, x->hello_ms));
    return CLI_OK;
}
