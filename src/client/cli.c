/*
 * client/cli.c - the krappy command line: main(), global options, and the
 * helpers every verb shares (cli.h); the verb table and the help are in
 * cli_verbs.c.
 *
 *   krappy [GLOBAL OPTIONS] VERB [ARGS]
 *
 * The address comes from KRAPPY_ADDR (HOST:PORT), overridden piece by piece
 * by -h/--host and -p/--port; the token from KRAPPY_TOKEN or --token. Verbs
 * live in cli_<group>.c; adding one is a row in cli_verbs.c's table and a
 * function.
 */
#include "client/cli.h"

#include <errno.h>
#include <limits.h>
#include <signal.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>

#include "proto/msg.h"
#include "util/clock.h"
#include "util/hostport.h"

#ifndef KRAPPY_VERSION
#define KRAPPY_VERSION "0.0.0"
#endif

/* Long-option values of the global options (outside any verb's range). */
enum {
    OPT_G_HOST = 0x2000,
    OPT_G_PORT,
    OPT_G_TOKEN,
    OPT_G_TIMEOUT,
    OPT_G_JSON,
    OPT_G_HELP,
    OPT_G_VERSION
};

/* Most options a verb may declare (cli_getopt merges them with the globals). */
#define CLI_MAX_VERB_OPTIONS 48

static const struct option global_longopts[] = {
    {"host", required_argument, NULL, OPT_G_HOST},
    {"port", required_argument, NULL, OPT_G_PORT},
    {"token", required_argument, NULL, OPT_G_TOKEN},
    {"timeout", required_argument, NULL, OPT_G_TIMEOUT},
    {"json", no_argument, NULL, OPT_G_JSON},
    {"help", no_argument, NULL, OPT_G_HELP},
    {"version", no_argument, NULL, OPT_G_VERSION},
    {NULL, 0, NULL, 0},
};

/* ---- output helpers ---- */

__attribute__((format(printf, 2, 3))) int cli_usage_error(const cli *x, const char *fmt, ...)
{
    va_list ap;
    const char *verb = x->verb != NULL ? x->verb->name : NULL;

    fprintf(stderr, verb ? "krappy %s: " : "krappy: ", verb);
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    if (verb != NULL)
        fprintf(stderr, "; run 'krappy %s --help'\n", verb);
    else
        fprintf(stderr, "; run 'krappy --help'\n");
    return CLI_USAGE;
}

__attribute__((format(printf, 2, 3))) int cli_fail(const cli *x, const char *fmt, ...)
{
    va_list ap;
    (void)x;
    fputs("krappy: ", stderr);
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputc('\n', stderr);
    return CLI_FAIL;
}

/* libkrappy's sentence without what only a programmer needs: the "server
 * error NAME: " of a server's refusal, the "krappy_fn: " of a misuse. */
static const char *plain_message(const char *msg)
{
    if (strncmp(msg, "server error ", 13) == 0 && strstr(msg, ": ") != NULL)
        return strstr(msg, ": ") + 2;
    size_t fn = strspn(msg, "abcdefghijklmnopqrstuvwxyz_");
    if (strncmp(msg, "krappy_", 7) == 0 && strncmp(msg + fn, ": ", 2) == 0)
        return msg + fn + 2;
    return msg;
}

int cli_client_fail(cli *x, krappy_err e)
{
    const char *msg = x->client ? krappy_client_errmsg(x->client) : NULL;
    const char *hint = "";

    if (msg == NULL || msg[0] == '\0')
        msg = krappy_strerror(e);
    msg = plain_message(msg);
    switch (e) {
    case KRAPPY_E_NO_SUCH_TOPIC:
        if (x->topic != NULL)
            return cli_fail(x,
                            "there is no topic named \"%s\" (`krappy topics` lists them; "
                            "producing to a topic creates it)",
                            x->topic);
        break;
    case KRAPPY_E_NOT_FOUND:
        if (x->group != NULL)
            return cli_fail(x,
                            "topic %s has no consumer group \"%s\" (`krappy groups %s` lists "
                            "them)",
                            x->topic ? x->topic : "", x->group, x->topic ? x->topic : "TOPIC");
        break;
    case KRAPPY_E_UNKNOWN_TYPE:
        return cli_fail(x,
                        "the server at %s does not know this request: it is an older krappyd "
                        "than this krappy %s (%s)",
                        x->addr, KRAPPY_VERSION, msg);
    case KRAPPY_E_UNAUTHENTICATED:
        hint = x->token ? " (check the token given with --token or KRAPPY_TOKEN)"
                        : " (the server wants a token: pass it with --token or KRAPPY_TOKEN)";
        break;
    case KRAPPY_E_TIMEOUT:
        hint = " (wait longer with --timeout MS)";
        break;
    case KRAPPY_E_NOT_LEADER: {
        const char *leader = x->client ? krappy_client_error_leader(x->client) : "";
        if (leader[0] != '\0')
            return cli_fail(x,
                            "%s is not the cluster's leader, which is at %s (give every node: "
                            "-h a:7070,b:7070,c:7070)",
                            x->addr, leader);
        hint = " (an election takes a second or two: try again)";
        break;
    }
    default:
        break;
    }
    return cli_fail(x, "%s%s", msg, hint);
}

int cli_use_topic(cli *x, const char *topic)
{
    if (!kr_topic_name_valid((const uint8_t *)topic, strlen(topic)))
        return cli_usage_error(x,
                               "\"%s\" is not a topic name: use 1 to 249 of A-Z a-z 0-9 . _ - "
                               "(and not . or ..)",
                               topic);
    x->topic = topic;
    return CLI_OK;
}

int cli_use_group(cli *x, const char *group)
{
    if (!kr_id_valid((const uint8_t *)group, strlen(group)))
        return cli_usage_error(x, "\"%s\" is not a group name: use 1 to 249 bytes of UTF-8 text",
                               group);
    x->group = group;
    return CLI_OK;
}

const char *cli_fmt_ms(char *buf, size_t len, double ms)
{
    if (ms < 1.0)
        snprintf(buf, len, "%.3f", ms);
    else if (ms < 10.0)
        snprintf(buf, len, "%.2f", ms);
    else if (ms < 100.0)
        snprintf(buf, len, "%.1f", ms);
    else
        snprintf(buf, len, "%.0f", ms);
    return buf;
}

const char *cli_fmt_bytes(char *buf, size_t len, uint64_t bytes)
{
    static const char *const units[] = {"B", "KiB", "MiB", "GiB", "TiB", "PiB", "EiB"};
    double v = (double)bytes;
    size_t u = 0;
    while (v >= 1024.0 && u + 1 < sizeof units / sizeof units[0]) {
        v /= 1024.0;
        u++;
    }
    if (u == 0)
        snprintf(buf, len, "%llu B", (unsigned long long)bytes);
    else if (v == (double)(uint64_t)v)
        snprintf(buf, len, "%.0f %s", v, units[u]);
    else
        snprintf(buf, len, "%.1f %s", v, units[u]);
    return buf;
}

/* ---- numbers, time, signals ---- */

int cli_parse_u64(const char *s, uint64_t min, uint64_t max, uint64_t *out)
{
    if (s == NULL || *s < '0' || *s > '9')
        return -1;
    errno = 0;
    char *end;
    unsigned long long v = strtoull(s, &end, 10);
    if (errno != 0 || *end != '\0' || v < min || v > max)
        return -1;
    *out = v;
    return 0;
}

int cli_parse_ms(const cli *x, const char *opt, const char *s, uint64_t min, uint64_t *out)
{
    const uint64_t max = 3600u * 1000;
    if (cli_parse_u64(s, min, max, out) < 0)
        return cli_usage_error(x, "%s \"%s\" is not a number of milliseconds from %llu to %llu",
                               opt, s, (unsigned long long)min, (unsigned long long)max);
    return CLI_OK;
}

double cli_now_ms(void)
{
    return (double)kr_mono_ns() / 1e6;
}

static volatile sig_atomic_t interrupted;
static volatile sig_atomic_t interrupt_fd = -1;

static void on_sigint(int sig)
{
    (void)sig;
    interrupted = 1;
    if (interrupt_fd >= 0) /* shutdown(2) is async-signal-safe */
        shutdown(interrupt_fd, SHUT_RDWR);
}

void cli_interrupt_closes(int fd)
{
    interrupt_fd = fd;
}

void cli_catch_sigint(void)
{
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_sigint;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGINT, &sa, NULL); /* no SA_RESTART: sleeps end at once */
}

int cli_interrupted(void)
{
    return interrupted != 0;
}

int cli_sleep_ms(double ms)
{
    if (ms <= 0)
        return cli_interrupted();
    struct timespec ts = {.tv_sec = (time_t)(ms / 1000.0),
                          .tv_nsec = (long)((ms - (double)(time_t)(ms / 1000.0) * 1000.0) * 1e6)};
    while (!interrupted && nanosleep(&ts, &ts) < 0 && errno == EINTR)
        ;
    return cli_interrupted();
}

/* ---- options ---- */

/* Apply one global option. @return 0, or CLI_USAGE after printing why. */
static int global_opt(cli *x, int code, const char *arg)
{
    uint64_t v;

    switch (code) {
    case 'h':
    case OPT_G_HOST: {
        size_t n = strlen(arg);
        if (n >= 2 && arg[0] == '[' && arg[n - 1] == ']') { /* [v6] */
            arg++;
            n -= 2;
        }
        if (n == 0 || n > KR_HOST_MAX)
            return cli_usage_error(x, "--host needs a host name or address of 1 to %d bytes",
                                   KR_HOST_MAX);
        const char *colon = memchr(arg, ':', n);
        bool one_colon =
            colon != NULL && memchr(colon + 1, ':', n - (size_t)(colon - arg) - 1) == NULL;
        if (memchr(arg, ',', n) != NULL || one_colon || (arg[0] == '[' && strstr(arg, "]:"))) {
            /* HOST:PORT, or a cluster's nodes */
            x->list = arg;
            x->host_set = true;
            return 0;
        }
        memcpy(x->host, arg, n);
        x->host[n] = '\0';
        x->host_set = true;
        x->list = NULL;
        return 0;
    }
    case 'p':
    case OPT_G_PORT:
        if (!kr_port_valid(arg, 0))
            return cli_usage_error(x, "--port \"%s\" is not a port number from 1 to 65535", arg);
        strcpy(x->port, arg);
        x->port_set = true;
        return 0;
    case OPT_G_TOKEN:
        x->token = arg;
        return 0;
    case OPT_G_TIMEOUT:
        if (cli_parse_u64(arg, 0, INT_MAX, &v) < 0)
            return cli_usage_error(x,
                                   "--timeout \"%s\" is not a number of milliseconds "
                                   "(0 to %d; 0 = wait forever)",
                                   arg, INT_MAX);
        x->timeout_ms = v == 0 ? -1 : (int)v;
        return 0;
    case OPT_G_JSON:
        x->json = true;
        return 0;
    default:
        return cli_usage_error(x, "internal error: unhandled option");
    }
}

/* Report getopt's '?' or ':' for argv. */
static int bad_option(cli *x, int c, char **argv)
{
    const char *arg = optind > 0 ? argv[optind - 1] : "";
    if (c == ':')
        return cli_usage_error(x, "option '%s' needs a value", arg);
    if (x->verb != NULL && (optopt == 'h' || optopt == 'p') && arg[1] != '-')
        return cli_usage_error(x,
                               "unknown option '-%c' (-h and -p go before the verb; after "
                               "it, write --host or --port)",
                               optopt);
    if (optopt != 0 && optopt < 0x100 && (arg[0] != '-' || arg[1] != '-'))
        return cli_usage_error(x, "unknown option '-%c'", optopt);
    return cli_usage_error(x, "unknown option '%s'", arg);
}

int cli_getopt(cli *x, int argc, char **argv, const char *shortopts, const struct option *longopts)
{
    struct option all[CLI_MAX_VERB_OPTIONS + 8];
    char so[64];
    size_t n = 0;

    for (; longopts != NULL && longopts[n].name != NULL && n < CLI_MAX_VERB_OPTIONS; n++)
        all[n] = longopts[n];
    for (size_t g = 0; global_longopts[g].name != NULL; g++) {
        int val = global_longopts[g].val;
        if (val == OPT_G_HELP || val == OPT_G_VERSION)
            continue; /* after a verb, --help is the verb's */
        all[n++] = global_longopts[g];
    }
    memset(&all[n], 0, sizeof all[n]);
    snprintf(so, sizeof so, ":%s", shortopts != NULL ? shortopts : "");

    for (;;) {
        opterr = 0;
        int c = getopt_long(argc, argv, so, all, NULL);
        switch (c) {
        case -1:
            return CLI_OPT_END;
        case '?':
        case ':':
            bad_option(x, c, argv);
            return CLI_OPT_BAD;
        case OPT_G_HOST:
        case OPT_G_PORT:
        case OPT_G_TOKEN:
        case OPT_G_TIMEOUT:
        case OPT_G_JSON:
            if (global_opt(x, c, optarg) != 0)
                return CLI_OPT_BAD;
            continue;
        default:
            return c;
        }
    }
}

int cli_only_help_option(cli *x, int argc, char **argv)
{
    static const struct option lo[] = {CLI_HELP_OPTION, {NULL, 0, NULL, 0}};
    int c = cli_getopt(x, argc, argv, "", lo);
    if (c == CLI_OPT_END)
        return -1;
    return c == CLI_OPT_HELP ? cli_verb_help(x->verb) : CLI_USAGE;
}

int cli_plain_connect(cli *x, int argc, char **argv)
{
    int rc = cli_only_help_option(x, argc, argv);
    if (rc >= 0)
        return rc;
    if ((rc = cli_no_args(x, argc, argv)) != CLI_OK)
        return rc;
    if ((rc = cli_connect(x)) != CLI_OK)
        return rc;
    return -1;
}

int cli_no_args(cli *x, int argc, char **argv)
{
    if (optind < argc)
        return cli_usage_error(x, "unexpected argument '%s' (this verb takes none)", argv[optind]);
    return CLI_OK;
}

/* ---- connecting ---- */

/* The client the verb talks through. @return CLI_OK, or the failure. */
static int new_client(cli *x)
{
    krappy_opts o;
    if (x->addr_error[0] != '\0' && !(x->host_set && x->port_set) && x->list == NULL) {
        fprintf(stderr, "krappy: KRAPPY_ADDR: %s; fix it, or give both --host and --port\n",
                x->addr_error);
        return CLI_USAGE;
    }
    memset(&o, 0, sizeof o);
    o.timeout_ms = x->timeout_ms;
    o.connect_timeout_ms = x->timeout_ms > 0 ? x->timeout_ms : 0;
    o.token = x->token;
    o.client_name = "krappy-cli/" KRAPPY_VERSION;
    x->client = krappy_client_new(&o);
    if (x->client == NULL)
        return cli_fail(x, "out of memory");
    return CLI_OK;
}

/* A HELLO that got no answer in the protocol's shape: another service. */
static int not_krappyd(const cli *x)
{
    return cli_fail(x,
                    "%s did not answer HELLO; is that krappyd's data port (%d)? (its admin "
                    "port, for browsers and curl, is another)",
                    x->addr, KRAPPY_DEFAULT_PORT);
}

/* The outcome of a HELLO sent at t0 (cli_now_ms): its round trip kept, or
 * the failure said. @return CLI_OK, or cli_fail's code. */
static int hello_done(cli *x, krappy_err e, double t0)
{
    if (e == KRAPPY_E_TIMEOUT || e == KRAPPY_E_PROTOCOL || e == KRAPPY_E_CLOSED)
        return not_krappyd(x);
    if (e != KRAPPY_OK)
        return cli_client_fail(x, e);
    x->hello_ms = cli_now_ms() - t0;
    return CLI_OK;
}

int cli_connect_leader(cli *x)
{
    int rc = new_client(x);
    if (rc != CLI_OK)
        return rc;
    double t0 = cli_now_ms();
    krappy_err e = krappy_connect_leader(x->client, x->addr, &x->info);
    return hello_done(x, e, t0);
}

int cli_connect_prefer_leader(cli *x)
{
    int rc = new_client(x);
    if (rc != CLI_OK)
        return rc;
    krappy_err e = krappy_connect_leader(x->client, x->addr, &x->info);
    if (e == KRAPPY_OK || e == KRAPPY_E_UNAUTHENTICATED)
        return e == KRAPPY_OK ? CLI_OK : cli_client_fail(x, e);
    krappy_client_free(x->client); /* no leader now: any node will do */
    x->client = NULL;
    return cli_connect(x);
}

int cli_connect(cli *x)
{
    krappy_err e;
    int rc = new_client(x);
    if (rc != CLI_OK)
        return rc;
    if ((e = x->list != NULL ? krappy_connect_addr(x->client, x->addr)
                             : krappy_connect(x->client, x->host, x->port)) != KRAPPY_OK)
        return cli_client_fail(x, e);
    /* Something listens: whether it speaks the protocol shows at once (an
     * HTTP server, like krappyd's own admin port, would wait for a request
     * line until its own timeout). */
    int t = CLI_HELLO_TIMEOUT_MS;
    if (x->timeout_ms > 0 && x->timeout_ms < t)
        t = x->timeout_ms;
    krappy_client_set_timeout(x->client, t);
    double t0 = cli_now_ms();
    e = krappy_hello(x->client, &x->info);
    krappy_client_set_timeout(x->client, x->timeout_ms);
    return hello_done(x, e, t0);
}

/*
 * A list of addresses (a cluster's nodes), from -h or KRAPPY_ADDR: each
 * entry HOST[:PORT], the port from -p (or 7070) where it has none, into
 * x->addr as "HOST:PORT,...". @return 0, or -1 with a sentence in why.
 */
static int take_list(cli *x, const char *list, char *why, size_t whylen)
{
    size_t used = 0;
    x->addr[0] = '\0';
    for (const char *p = list;;) {
        const char *comma = strchr(p, ',');
        size_t n = comma != NULL ? (size_t)(comma - p) : strlen(p);
        char one[KR_HOSTPORT_MAX + 1], fmt[KR_HOSTPORT_MAX + 1];
        kr_hostport hp = {"", ""};
        snprintf(hp.port, sizeof hp.port, "%s", x->port);
        if (n == 0 || n > KR_HOSTPORT_MAX) {
            snprintf(why, whylen, "address list \"%.80s\": an entry is empty or too long", list);
            return -1;
        }
        memcpy(one, p, n);
        one[n] = '\0';
        if (kr_hostport_parse(one, 0, &hp, why, whylen) < 0)
            return -1;
        if (hp.host[0] == '\0')
            snprintf(hp.host, sizeof hp.host, "%s", KRAPPY_DEFAULT_HOST);
        kr_hostport_format(fmt, sizeof fmt, hp.host, hp.port);
        int w = snprintf(x->addr + used, sizeof x->addr - used, "%s%s", used ? "," : "", fmt);
        if (w < 0 || (size_t)w >= sizeof x->addr - used) {
            snprintf(why, whylen, "the address list is longer than %d bytes", CLI_ADDRS_MAX - 1);
            return -1;
        }
        used += (size_t)w;
        if (comma == NULL)
            return 0;
        p = comma + 1;
    }
}

/* ---- main ---- */

int main(int argc, char **argv)
{
    cli x;
    int rc, c;

    memset(&x, 0, sizeof x);
    setvbuf(stdout, NULL, _IOLBF, 0); /* lines appear as they happen (ping) */

    /* A bad KRAPPY_ADDR matters only to verbs that connect, and only when
     * -h and -p do not both replace it: cli_connect reports it. */
    kr_hostport hp = {KRAPPY_DEFAULT_HOST, ""};
    snprintf(hp.port, sizeof hp.port, "%d", KRAPPY_DEFAULT_PORT);
    const char *env_addr = getenv("KRAPPY_ADDR");
    if (env_addr != NULL && strchr(env_addr, ',') != NULL)
        x.list = env_addr; /* a cluster's nodes: read once -p is known */
    else
        (void)kr_hostport_parse(env_addr, 0, &hp, x.addr_error, sizeof x.addr_error);
    memcpy(x.host, hp.host, sizeof x.host); /* the defaults when it was refused */
    memcpy(x.port, hp.port, sizeof x.port);
    const char *env_token = getenv("KRAPPY_TOKEN");
    if (env_token != NULL && env_token[0] != '\0')
        x.token = env_token;

    opterr = 0;
    while ((c = getopt_long(argc, argv, "+:h:p:", global_longopts, NULL)) != -1) {
        switch (c) {
        case OPT_G_HELP:
            cli_print_usage(stdout);
            return CLI_OK;
        case OPT_G_VERSION:
            printf("krappy %s (libkrappy %s, protocol %d)\n", KRAPPY_VERSION, krappy_version(),
                   KRAPPY_PROTOCOL_VERSION);
            return CLI_OK;
        case '?':
        case ':':
            return bad_option(&x, c, argv);
        default:
            if (global_opt(&x, c, optarg) != 0)
                return CLI_USAGE;
        }
    }
    if (optind >= argc) {
        fprintf(stderr, "krappy: no verb given\n\n");
        cli_print_usage(stderr);
        return CLI_USAGE;
    }

    const char *name = argv[optind];
    x.verb = cli_find_verb(name);
    if (x.verb == NULL)
        return cli_unknown_verb(name);
    if (x.list != NULL) {
        char why[300];
        if (take_list(&x, x.list, why, sizeof why) < 0) {
            fprintf(stderr, "krappy: %s\n", why);
            return CLI_USAGE;
        }
    } else {
        kr_hostport_format(x.addr, sizeof x.addr, x.host, x.port);
    }

    /* The verb sees its own argv: argv[0] is the verb; getopt starts over. */
    int vargc = argc - optind;
    char **vargv = argv + optind;
    optind = 0;
    rc = x.verb->run(&x, vargc, vargv);

    krappy_client_free(x.client);
    if (fflush(stdout) != 0 || ferror(stdout)) {
        fprintf(stderr, "krappy: cannot write the output: %s\n", strerror(errno));
        return CLI_FAIL;
    }
    return rc;
}
