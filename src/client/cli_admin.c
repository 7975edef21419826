/*
 * client/cli_admin.c - the verbs that change what a topic holds beyond its
 * events: `delete-topic`, and `groups TOPIC --seek` / `--delete` (the
 * listing itself is in cli_topics.c). Each one destroys something, so each
 * says what it is about to do and, on a terminal, asks first (--yes skips
 * the question; a script without a terminal is not asked).
 */
#include "client/cli.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "proto/topic_config.h"
#include "util/json.h"

bool cli_can_ask(void)
{
    return isatty(STDIN_FILENO) && isatty(STDERR_FILENO);
}

int cli_confirm(const char *question, const char *word)
{
    char line[512];
    fprintf(stderr, "%s\nType %s to go on, anything else to stop: ", question, word);
    fflush(stderr);
    if (fgets(line, sizeof line, stdin) == NULL)
        return 0;
    line[strcspn(line, "\r\n")] = '\0';
    return strcmp(line, word) == 0;
}

/* The topic's figures before it changes (a question names what is lost).
 * @return CLI_OK with *st, or the exit code after saying why. */
static int stats_of(cli *x, const char *topic, const char *group, krappy_topic_stats **st)
{
    krappy_err e = krappy_stats(x->client, topic, group, st);
    return e == KRAPPY_OK ? CLI_OK : cli_client_fail(x, e);
}

int cli_delete_topic(cli *x, int argc, char **argv)
{
    static const struct option lo[] = {
        {"yes", no_argument, NULL, 'y'},
        CLI_HELP_OPTION,
        {NULL, 0, NULL, 0},
    };
    bool yes = false;
    int c, rc;
    while ((c = cli_getopt(x, argc, argv, "y", lo)) != CLI_OPT_END) {
        if (c == 'y')
            yes = true;
        else if (c == CLI_OPT_HELP)
            return cli_verb_help(x->verb);
        else
            return CLI_USAGE;
    }
    if (optind >= argc)
        return cli_usage_error(x, "name the topic to delete");
    if (argc - optind > 1)
        return cli_usage_error(x, "delete one topic at a time (got '%s' and '%s')", argv[optind],
                               argv[optind + 1]);
    const char *topic = argv[optind];
    if ((rc = cli_use_topic(x, topic)) != CLI_OK || (rc = cli_connect_leader(x)) != CLI_OK)
        return rc;
    krappy_topic_stats *st;
    if ((rc = stats_of(x, topic, NULL, &st)) != CLI_OK)
        return rc;
    uint64_t events = st->next - st->first, groups = st->n_groups;
    char size[32], q[512];
    cli_fmt_bytes(size, sizeof size, st->bytes);
    krappy_topic_stats_free(st);
    if (!yes && cli_can_ask()) {
        snprintf(q, sizeof q,
                 "Delete topic %s: %llu event%s (%s), its latest values and %llu consumer "
                 "group%s? This cannot be undone.",
                 topic, (unsigned long long)events, events == 1 ? "" : "s", size,
                 (unsigned long long)groups, groups == 1 ? "" : "s");
        if (!cli_confirm(q, topic))
            return cli_fail(x, "nothing deleted (the answer was not \"%s\")", topic);
    }
    krappy_err e = krappy_delete_topic(x->client, topic);
    if (e != KRAPPY_OK)
        return cli_client_fail(x, e);
    if (x->json) {
        printf("{\"topic\":");
        kr_json_str_file(stdout, topic, strlen(topic));
        printf(",\"deleted\":true,\"events\":%llu,\"groups\":%llu}\n", (unsigned long long)events,
               (unsigned long long)groups);
    } else {
        printf("deleted topic %s (%llu event%s, %llu group%s)\n", topic, (unsigned long long)events,
               events == 1 ? "" : "s", (unsigned long long)groups, groups == 1 ? "" : "s");
    }
    return CLI_OK;
}

/* The start of a JSON answer about a group: {"topic":..,"group":.. */
static void json_topic_group(const char *topic, const char *group)
{
    printf("{\"topic\":");
    kr_json_str_file(stdout, topic, strlen(topic));
    printf(",\"group\":");
    kr_json_str_file(stdout, group, strlen(group));
}

/* WHERE of --seek: earliest, latest, an offset or a time. */
static int parse_where(cli *x, const cli_group_admin *ga, const char *where, krappy_seek *to,
                       uint64_t *value)
{
    *value = 0;
    if (ga->seek_time != NULL && where != NULL)
        return cli_usage_error(x, "give --seek-time TIME or a WHERE after --seek GROUP, not both");
    if (ga->seek_time != NULL) {
        if (cli_parse_time(ga->seek_time, value) < 0)
            return cli_usage_error(x,
                                   "--seek-time \"%s\" is not a time like 2026-12-06T10:00Z "
                                   "(UTC; or with an offset: 2026-12-06T11:00+01:00)",
                                   ga->seek_time);
        *to = KRAPPY_SEEK_TIME;
        return CLI_OK;
    }
    if (where == NULL)
        return cli_usage_error(x,
                               "say where group %s goes: earliest, latest, an offset, or "
                               "--seek-time TIME",
                               ga->seek);
    if (strcmp(where, "earliest") == 0) {
        *to = KRAPPY_SEEK_EARLIEST;
    } else if (strcmp(where, "latest") == 0) {
        *to = KRAPPY_SEEK_LATEST;
    } else if (cli_parse_u64(where, 0, UINT64_MAX, value) == 0) {
        *to = KRAPPY_SEEK_OFFSET;
    } else if (cli_parse_time(where, value) == 0) {
        *to = KRAPPY_SEEK_TIME;
    } else {
        return cli_usage_error(x,
                               "\"%s\" is not earliest, latest, an offset or a time like "
                               "2026-12-06T10:00Z",
                               where);
    }
    return CLI_OK;
}

int cli_group_seek(cli *x, const char *topic, const cli_group_admin *ga, const char *where)
{
    krappy_seek to = KRAPPY_SEEK_EARLIEST;
    uint64_t value = 0, cursor = 0;
    int rc = parse_where(x, ga, where, &to, &value);
    if (rc != CLI_OK)
        return rc;
    if ((rc = cli_connect_leader(x)) != CLI_OK)
        return rc;
    krappy_topic_stats *st;
    if ((rc = stats_of(x, topic, ga->seek, &st)) != CLI_OK)
        return rc;
    uint64_t was = st->groups[0].cursor, pending = st->groups[0].pending;
    krappy_topic_stats_free(st);
    krappy_err e = krappy_group_seek(x->client, topic, ga->seek, to, value, &cursor);
    uint64_t first, next;
    if (e == KRAPPY_E_OFFSET_OUT_OF_RANGE &&
        krappy_client_error_range(x->client, &first, &next) == 1)
        return cli_fail(x,
                        "offset %s is outside topic %s: a cursor can go from %llu to %llu (%llu "
                        "= the end: only new events)",
                        where, topic, (unsigned long long)first, (unsigned long long)next,
                        (unsigned long long)next);
    if (e != KRAPPY_OK)
        return cli_client_fail(x, e);
    if (x->json) {
        json_topic_group(topic, ga->seek);
        printf(",\"cursor\":%llu,\"was\":%llu,\"forgotten\":%llu}\n", (unsigned long long)cursor,
               (unsigned long long)was, (unsigned long long)pending);
        return CLI_OK;
    }
    printf("group %s of %s: cursor %llu (was %llu)", ga->seek, topic, (unsigned long long)cursor,
           (unsigned long long)was);
    if (pending > 0)
        printf("; %llu event%s handed out and not acknowledged %s forgotten",
               (unsigned long long)pending, pending == 1 ? "" : "s", pending == 1 ? "was" : "were");
    putchar('\n');
    return CLI_OK;
}

int cli_group_delete(cli *x, const char *topic, const cli_group_admin *ga)
{
    int rc;
    if ((rc = cli_connect_leader(x)) != CLI_OK)
        return rc;
    krappy_topic_stats *st;
    if ((rc = stats_of(x, topic, ga->del, &st)) != CLI_OK)
        return rc;
    uint64_t members = st->groups[0].members, lag = st->groups[0].lag;
    krappy_topic_stats_free(st);
    if (!ga->yes && cli_can_ask()) {
        char q[600];
        snprintf(q, sizeof q,
                 "Delete consumer group %s of topic %s (lag %llu, %llu member%s connected)? Its "
                 "cursor is lost; its members must register again.",
                 ga->del, topic, (unsigned long long)lag, (unsigned long long)members,
                 members == 1 ? "" : "s");
        if (!cli_confirm(q, ga->del))
            return cli_fail(x, "nothing deleted (the answer was not \"%s\")", ga->del);
    }
    krappy_err e = krappy_group_delete(x->client, topic, ga->del);
    if (e != KRAPPY_OK)
        return cli_client_fail(x, e);
    if (x->json) {
        json_topic_group(topic, ga->del);
        printf(",\"deleted\":true}\n");
    } else {
        printf("deleted group %s of %s\n", ga->del, topic);
    }
    return CLI_OK;
}

/* --set texts as they are, --reset NAME as "NAME=default", in their order
 * (the last word on a setting counts). */
typedef struct tc_args {
    const char **set;
    char **owned; /* the "NAME=default" texts */
    size_t n, n_owned;
} tc_args;

static void tc_args_free(tc_args *a)
{
    for (size_t i = 0; i < a->n_owned; i++)
        free(a->owned[i]);
    free(a->owned);
    free(a->set);
}

/* topic-config: the topic's settings, one "name value" a line (or one JSON
 * object), after changing those --set and --reset name. */
int cli_topic_config(cli *x, int argc, char **argv)
{
    static const struct option lo[] = {
        {"set", required_argument, NULL, 's'},
        {"reset", required_argument, NULL, 'r'},
        CLI_HELP_OPTION,
        {NULL, 0, NULL, 0},
    };
    tc_args a = {.set = calloc((size_t)argc + 1, sizeof *a.set),
                 .owned = calloc((size_t)argc + 1, sizeof *a.owned)};
    int c, rc;
    if (a.set == NULL || a.owned == NULL) {
        tc_args_free(&a);
        return cli_fail(x, "out of memory");
    }
    while ((c = cli_getopt(x, argc, argv, "s:r:", lo)) != CLI_OPT_END) {
        if (c == 's') {
            a.set[a.n++] = optarg;
            continue;
        }
        if (c == 'r') {
            char *t = NULL;
            if (asprintf(&t, "%s=" KR_TC_RESET_WORD, optarg) < 0) {
                tc_args_free(&a);
                return cli_fail(x, "out of memory");
            }
            a.set[a.n++] = a.owned[a.n_owned++] = t;
            continue;
        }
        tc_args_free(&a);
        return c == CLI_OPT_HELP ? cli_verb_help(x->verb) : CLI_USAGE;
    }
    if (optind >= argc || argc - optind > 1) {
        tc_args_free(&a);
        return optind >= argc ? cli_usage_error(x, "name the topic")
                              : cli_usage_error(x, "unexpected argument '%s'", argv[optind + 1]);
    }
    const char *topic = argv[optind];
    if ((rc = cli_use_topic(x, topic)) != CLI_OK || (rc = cli_connect(x)) != CLI_OK) {
        tc_args_free(&a);
        return rc;
    }
    krappy_topic_settings ts;
    krappy_err e = krappy_topic_config(x->client, topic, a.set, a.n, &ts);
    tc_args_free(&a);
    if (e != KRAPPY_OK)
        return cli_client_fail(x, e);
    const char *cleanup = krappy_cleanup_name(ts.cleanup);
    const char *names[] = {"retention_bytes", "retention_ms", "delete_retention_ms",
                           "segment_bytes", "segment_ms"};
    uint64_t vals[] = {ts.retention_bytes, ts.retention_ms, ts.delete_retention_ms,
                       ts.segment_bytes, ts.segment_ms};
    if (x->json)
        printf("{\"topic\":\"%s\",\"cleanup\":\"%s\"", topic, cleanup ? cleanup : "?");
    else
        printf("%-20s %s\n", "cleanup", cleanup ? cleanup : "?");
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++) {
        if (x->json)
            printf(",\"%s\":%llu", names[i], (unsigned long long)vals[i]);
        else
            printf("%-20s %llu\n", names[i], (unsigned long long)vals[i]);
    }
    if (x->json)
        printf("}\n");
    return CLI_OK;
}
