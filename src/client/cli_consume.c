/*
 * client/cli_consume.c - `krappy consume`: read a topic as a member of a
 * consumer group, printing each event as `fetch` does and acknowledging
 * what was printed.
 *
 * One POLL and one ACK are kept in flight together: once a batch is
 * printed, its ACK and the next POLL go out at once (ACK first, so that a
 * long poll parked by the server cannot hold back the ACK's reply), then
 * the ACK's reply is taken, then the POLL's. A batch is acknowledged by its
 * offsets, not with `upto`: `upto` acknowledges every event pending for
 * this member below it, and a member name taken over from a live
 * connection (--member) arrives with that connection's pending events,
 * which this process never printed. Acknowledging the printed offsets is
 * exactly "what was printed", late acknowledgements included.
 */
#include "client/cli.h"

#include <stdlib.h>
#include <string.h>

/* Default of --batch: events asked for per POLL. */
#define CONSUME_DEFAULT_BATCH 100

/* Largest --batch (the server lowers larger ones to its max_events anyway). */
#define CONSUME_MAX_BATCH 100000

/* Default of --wait: one long poll of --follow. */
#define CONSUME_DEFAULT_WAIT_MS 10000

/* What a consume run knows, for the loop and the summary. */
typedef struct consume {
    cli *x;
    const char *topic, *group;
    krappy_consumer_opts opts;
    uint64_t max;     /* --max; 0 = no limit */
    uint64_t batch;   /* --batch */
    uint64_t wait_ms; /* one long poll with --follow */
    bool follow, headers;

    krappy_consumer_info me; /* from the registration */
    uint64_t consumed;       /* events printed */
    uint64_t cursor;         /* the group's cursor, as last heard */
    bool cursor_known;
    uint64_t *offs; /* the offsets of the batch being acknowledged */
    size_t offs_cap;
    int owidth;    /* offset column */
    size_t kwidth; /* key column */
    bool reported; /* a failure was reported already */
} consume;

/* Events to ask for in the next POLL: never more than --max leaves, since
 * events handed out and not printed would be pending (or, with --ack auto,
 * lost) until this process ends. */
static uint64_t next_page(const consume *k)
{
    if (k->max != 0 && k->max - k->consumed < k->batch)
        return k->max - k->consumed;
    return k->batch;
}

/* Print the events of one POLL and keep their offsets in k->offs. */
static int print_batch(consume *k, const krappy_events *ev)
{
    if (ev->count > k->offs_cap) {
        uint64_t *o = realloc(k->offs, ev->count * sizeof *o);
        if (o == NULL) {
            k->reported = true;
            return cli_fail(k->x, "out of memory keeping the offsets of %zu events", ev->count);
        }
        k->offs = o;
        k->offs_cap = ev->count;
    }
    for (size_t i = 0; i < ev->count; i++) {
        const krappy_event *e = &ev->events[i];
        if (k->x->json)
            cli_json_event(stdout, e);
        else
            cli_print_event(stdout, e, k->owidth, &k->kwidth, k->headers);
        k->offs[i] = e->offset;
    }
    /* What is acknowledged next must have been written out first. */
    fflush(stdout);
    k->consumed += ev->count;
    return CLI_OK;
}

/*
 * The loop: receive a POLL's events, print them, then send their ACK and the
 * next POLL together and take the ACK's reply. Without --follow it ends at
 * the first empty POLL; with it, at Ctrl-C, which shuts the socket down
 * while a long poll is parked (never while an ACK is on its way).
 */
static krappy_err consume_loop(consume *k)
{
    krappy_client *cl = k->x->client;
    uint64_t wait = k->follow ? k->wait_ms : 0;
    krappy_err e;

    if ((e = krappy_poll_send(cl, next_page(k), wait, 0)) != KRAPPY_OK)
        return e;
    for (;;) {
        krappy_events *ev;
        if (k->follow) {
            cli_interrupt_closes(krappy_client_fd(cl));
            if (cli_interrupted()) {
                cli_interrupt_closes(-1);
                return KRAPPY_OK;
            }
        }
        e = krappy_poll_recv(cl, &ev);
        cli_interrupt_closes(-1);
        if (e != KRAPPY_OK)
            return e;
        if (print_batch(k, ev) != CLI_OK) {
            krappy_events_free(ev);
            return KRAPPY_E_NOMEM;
        }
        size_t n = ev->count;
        krappy_events_free(ev);
        bool ack = n > 0 && k->opts.ack == KRAPPY_CONSUMER_ACK_EXPLICIT;
        bool more =
            !cli_interrupted() && (k->max == 0 || k->consumed < k->max) && (n > 0 || k->follow);
        if (ack && (e = krappy_ack_offsets_send(cl, k->offs, n)) != KRAPPY_OK)
            return e;
        if (more && (e = krappy_poll_send(cl, next_page(k), wait, 0)) != KRAPPY_OK)
            return e;
        if (ack) {
            if ((e = krappy_ack_recv(cl, &k->cursor, NULL)) != KRAPPY_OK)
                return e;
            k->cursor_known = true;
        }
        if (!more)
            return KRAPPY_OK;
    }
}

/* The summary on stderr: events consumed and the group's cursor. With
 * --ack auto no ACK reported the cursor: ask STATS, when the connection is
 * still there and free (Ctrl-C may have left a POLL unanswered). */
static void print_summary(consume *k)
{
    krappy_topic_stats *st;

    if (k->opts.ack == KRAPPY_CONSUMER_ACK_AUTO && krappy_connected(k->x->client) &&
        krappy_in_flight(k->x->client) == 0 &&
        krappy_stats(k->x->client, k->topic, k->group, &st) == KRAPPY_OK) {
        if (st->n_groups == 1) {
            k->cursor = st->groups[0].cursor;
            k->cursor_known = true;
        }
        krappy_topic_stats_free(st);
    }
    fprintf(stderr, "consumed %llu event%s from %s as member ", (unsigned long long)k->consumed,
            k->consumed == 1 ? "" : "s", k->topic);
    cli_put_text(stderr, (const uint8_t *)k->me.member, k->me.member_len);
    fputs(" of group ", stderr);
    cli_put_text(stderr, (const uint8_t *)k->group, strlen(k->group));
    if (k->cursor_known)
        fprintf(stderr, "; group cursor %llu\n", (unsigned long long)k->cursor);
    else
        fputs("; group cursor unknown (see `krappy groups`)\n", stderr);
}

/* Report a failure of the registration or the loop in one sentence. */
static int consume_fail(consume *k, krappy_err e)
{
    uint64_t first, next;

    if (k->reported)
        return CLI_FAIL;
    if (e == KRAPPY_E_NO_SUCH_TOPIC)
        return cli_fail(k->x, "there is no topic named \"%s\" (`krappy topics` lists them)",
                        k->topic);
    if (e == KRAPPY_E_OFFSET_OUT_OF_RANGE && krappy_client_error_range(k->x->client, &first, &next))
        return cli_fail(k->x,
                        "--start %llu is outside what topic %s holds (a new group starts at an "
                        "offset from %llu to %llu); try --start earliest",
                        (unsigned long long)k->opts.start_offset, k->topic,
                        (unsigned long long)first, (unsigned long long)next);
    if (e == KRAPPY_E_NOT_REGISTERED)
        return cli_fail(k->x,
                        "the server dropped this consumer's registration (did another consumer "
                        "take over member \"%s\"?)",
                        k->me.member);
    return cli_client_fail(k->x, e);
}

/*
 * --start places a new group only; a group that exists goes on from its
 * cursor. Say so instead of ignoring it silently, and say how to move it.
 */
static void say_start_ignored(cli *x, const char *topic, const char *group, const char *start)
{
    krappy_topic_stats *st;
    if (krappy_stats(x->client, topic, group, &st) != KRAPPY_OK)
        return; /* no such group (it starts at --start) or no such topic */
    fprintf(stderr,
            "krappy: group %s exists (cursor %llu), so --start %s is not used: it places a "
            "new group only. To move this one: krappy groups %s --seek %s %s\n",
            group, (unsigned long long)st->groups[0].cursor, start, topic, group, start);
    krappy_topic_stats_free(st);
}

int cli_consume(cli *x, int argc, char **argv)
{
    static const struct option lo[] = {
        {"group", required_argument, NULL, 'g'},
        {"member", required_argument, NULL, 'm'},
        {"start", required_argument, NULL, 's'},
        {"ack", required_argument, NULL, 'a'},
        {"ack-wait", required_argument, NULL, 'A'},
        {"max", required_argument, NULL, 'n'},
        {"follow", no_argument, NULL, 'f'},
        {"batch", required_argument, NULL, 'b'},
        {"wait", required_argument, NULL, 'W'},
        {"headers", no_argument, NULL, 'E'},
        CLI_HELP_OPTION,
        {NULL, 0, NULL, 0},
    };
    consume k;
    int c, rc;
    krappy_err e;
    const char *start = NULL; /* --start as given */

    memset(&k, 0, sizeof k);
    k.x = x;
    k.batch = CONSUME_DEFAULT_BATCH;
    k.wait_ms = CONSUME_DEFAULT_WAIT_MS;
    while ((c = cli_getopt(x, argc, argv, "g:m:s:a:n:fb:", lo)) != CLI_OPT_END) {
        switch (c) {
        case 'g':
            if (optarg[0] == '\0' || strlen(optarg) > KRAPPY_MAX_NAME_BYTES)
                return cli_usage_error(x, "--group needs a name of 1 to %d bytes",
                                       KRAPPY_MAX_NAME_BYTES);
            k.group = optarg;
            break;
        case 'm':
            if (optarg[0] == '\0' || strlen(optarg) > KRAPPY_MAX_NAME_BYTES)
                return cli_usage_error(x, "--member needs a name of 1 to %d bytes",
                                       KRAPPY_MAX_NAME_BYTES);
            k.opts.member = optarg;
            break;
        case 's':
            start = optarg;
            if (strcmp(optarg, "earliest") == 0)
                k.opts.start = KRAPPY_START_EARLIEST;
            else if (strcmp(optarg, "latest") == 0)
                k.opts.start = KRAPPY_START_LATEST;
            else if (cli_parse_u64(optarg, 0, UINT64_MAX, &k.opts.start_offset) == 0)
                k.opts.start = KRAPPY_START_OFFSET;
            else
                return cli_usage_error(x, "--start \"%s\" is not 'earliest', 'latest' or an offset",
                                       optarg);
            break;
        case 'a':
            if (strcmp(optarg, "explicit") == 0)
                k.opts.ack = KRAPPY_CONSUMER_ACK_EXPLICIT;
            else if (strcmp(optarg, "auto") == 0)
                k.opts.ack = KRAPPY_CONSUMER_ACK_AUTO;
            else
                return cli_usage_error(x, "--ack \"%s\" is not 'explicit' or 'auto'", optarg);
            break;
        case 'A':
            if (cli_parse_u64(optarg, 1, UINT32_MAX, &k.opts.ack_wait_ms) < 0)
                return cli_usage_error(x,
                                       "--ack-wait \"%s\" is not a number of milliseconds "
                                       "from 1 up",
                                       optarg);
            break;
        case 'n':
            if (cli_parse_u64(optarg, 1, UINT64_MAX, &k.max) < 0)
                return cli_usage_error(x, "--max \"%s\" is not a number from 1 up", optarg);
            break;
        case 'f':
            k.follow = true;
            break;
        case 'b':
            if (cli_parse_u64(optarg, 1, CONSUME_MAX_BATCH, &k.batch) < 0)
                return cli_usage_error(x, "--batch \"%s\" is not a number from 1 to %d", optarg,
                                       CONSUME_MAX_BATCH);
            break;
        case 'W':
            if ((rc = cli_parse_ms(x, "--wait", optarg, 1, &k.wait_ms)) != CLI_OK)
                return rc;
            break;
        case 'E':
            k.headers = true;
            break;
        case CLI_OPT_HELP:
            return cli_verb_help(x->verb);
        default:
            return CLI_USAGE;
        }
    }
    if (optind >= argc)
        return cli_usage_error(x, "name the topic to consume");
    if (argc - optind > 1)
        return cli_usage_error(x, "unexpected argument '%s'", argv[optind + 1]);
    k.topic = argv[optind];
    if (k.group == NULL)
        return cli_usage_error(x, "name the consumer group with --group G");
    if ((rc = cli_use_topic(x, k.topic)) != CLI_OK || (rc = cli_use_group(x, k.group)) != CLI_OK)
        return rc;

    cli_catch_sigint();
    if ((rc = cli_connect_leader(x)) != CLI_OK)
        return rc;
    if (start != NULL)
        say_start_ignored(x, k.topic, k.group, start);
    if ((e = krappy_register_consumer(x->client, k.topic, k.group, &k.opts, &k.me)) != KRAPPY_OK)
        return consume_fail(&k, e);
    k.cursor = k.me.cursor;
    k.cursor_known = k.opts.ack == KRAPPY_CONSUMER_ACK_EXPLICIT;
    k.owidth = cli_digits(k.me.cursor + 1000);
    k.kwidth = 1;

    e = consume_loop(&k);
    if (e != KRAPPY_OK && !cli_interrupted()) {
        rc = consume_fail(&k, e);
        free(k.offs);
        return rc;
    }
    print_summary(&k); /* Ctrl-C ended a long poll: a normal end */
    free(k.offs);
    return CLI_OK;
}
