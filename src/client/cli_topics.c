/*
 * client/cli_topics.c - the verbs that describe topics: `topics` (every
 * topic's offsets, as a table), `stats` (one topic's size, keys and
 * consumer groups) and `groups` (just a topic's consumer groups).
 */
#include "client/cli.h"

#include <string.h>

#include "util/json.h"

static int max_int(int a, int b)
{
    return a > b ? a : b;
}

/* The kind of a group as `stats` and `groups` show it. */
static const char *group_kind(const krappy_group_stats *g)
{
    return g->kafka ? "kafka" : "krappy";
}

/* A group's fields as JSON members (no braces). */
static void put_group_json(const krappy_group_stats *g)
{
    printf("\"group\":");
    kr_json_str_file(stdout, g->group, g->group_len);
    printf(",\"kind\":\"%s\",\"cursor\":%llu,\"pending\":%llu,\"lag\":%llu,\"members\":%llu",
           group_kind(g), (unsigned long long)g->cursor, (unsigned long long)g->pending,
           (unsigned long long)g->lag, (unsigned long long)g->members);
}

/* The groups of st as a table: GROUP KIND CURSOR PENDING LAG MEMBERS,
 * aligned; numbers to the right. */
static void print_groups(const krappy_topic_stats *st)
{
    int wg = 5, wc = 6, wp = 7, wl = 3, wm = 7;
    for (size_t i = 0; i < st->n_groups; i++) {
        const krappy_group_stats *g = &st->groups[i];
        wg = max_int(wg, (int)cli_key_width(1, 1, (const uint8_t *)g->group, g->group_len));
        wc = max_int(wc, cli_digits(g->cursor));
        wp = max_int(wp, cli_digits(g->pending));
        wl = max_int(wl, cli_digits(g->lag));
        wm = max_int(wm, cli_digits(g->members));
    }
    printf("%-*s  %-6s  %*s  %*s  %*s  %*s\n", wg, "GROUP", "KIND", wc, "CURSOR", wp, "PENDING", wl,
           "LAG", wm, "MEMBERS");
    for (size_t i = 0; i < st->n_groups; i++) {
        const krappy_group_stats *g = &st->groups[i];
        cli_put_key(stdout, 1, 1, (const uint8_t *)g->group, g->group_len, (size_t)wg);
        printf("  %-6s  %*llu  %*llu  %*llu  %*llu\n", group_kind(g), wc,
               (unsigned long long)g->cursor, wp, (unsigned long long)g->pending, wl,
               (unsigned long long)g->lag, wm, (unsigned long long)g->members);
    }
}

/* topics: NAME FIRST NEXT EVENTS, aligned; numbers to the right. */
int cli_topics(cli *x, int argc, char **argv)
{
    int rc = cli_plain_connect(x, argc, argv);
    if (rc >= 0)
        return rc;
    krappy_topic_list *l;
    krappy_err e = krappy_topics(x->client, &l);
    if (e != KRAPPY_OK)
        return cli_client_fail(x, e);

    if (x->json) {
        for (size_t i = 0; i < l->count; i++) {
            const krappy_topic_info *t = &l->topics[i];
            printf("{\"topic\":");
            kr_json_str_file(stdout, t->name, t->name_len);
            printf(",\"first\":%llu,\"next\":%llu,\"events\":%llu}\n", (unsigned long long)t->first,
                   (unsigned long long)t->next, (unsigned long long)(t->next - t->first));
        }
        krappy_topic_list_free(l);
        return CLI_OK;
    }
    if (l->count == 0) {
        printf("no topics yet (`krappy produce TOPIC ...` creates one)\n");
        krappy_topic_list_free(l);
        return CLI_OK;
    }
    int wn = 5, wf = 5, wx = 4, we = 6;
    for (size_t i = 0; i < l->count; i++) {
        const krappy_topic_info *t = &l->topics[i];
        wn = max_int(wn, (int)t->name_len);
        wf = max_int(wf, cli_digits(t->first));
        wx = max_int(wx, cli_digits(t->next));
        we = max_int(we, cli_digits(t->next - t->first));
    }
    printf("%-*s  %*s  %*s  %*s\n", wn, "TOPIC", wf, "FIRST", wx, "NEXT", we, "EVENTS");
    for (size_t i = 0; i < l->count; i++) {
        const krappy_topic_info *t = &l->topics[i];
        cli_put_key(stdout, 1, 1, (const uint8_t *)t->name, t->name_len, (size_t)wn);
        printf("  %*llu  %*llu  %*llu\n", wf, (unsigned long long)t->first, wx,
               (unsigned long long)t->next, we, (unsigned long long)(t->next - t->first));
    }
    krappy_topic_list_free(l);
    return CLI_OK;
}

/* Long-option values of `groups`'s administration options. */
enum { OPT_SEEK = 0x100, OPT_SEEK_TIME, OPT_DELETE, OPT_YES };

/*
 * What `stats` and `groups` share: TOPIC and -g GROUP from the command line,
 * then STATS. `groups` (ga not NULL) also takes --seek, --seek-time,
 * --delete and --yes, and then does that instead (cli_admin.c).
 * @return CLI_OK with *st (free with krappy_topic_stats_free; NULL when
 *         --help was asked and printed, or when ga's action ran: rc is its
 *         exit code), or the exit code after saying why.
 */
static int load_stats(cli *x, int argc, char **argv, const char *missing, cli_group_admin *ga,
                      krappy_topic_stats **st)
{
    static const struct option lo[] = {
        {"group", required_argument, NULL, 'g'},
        {"seek", required_argument, NULL, OPT_SEEK},
        {"seek-time", required_argument, NULL, OPT_SEEK_TIME},
        {"delete", required_argument, NULL, OPT_DELETE},
        {"yes", no_argument, NULL, OPT_YES},
        CLI_HELP_OPTION,
        {NULL, 0, NULL, 0},
    };
    const char *group = NULL;
    int c, rc;

    *st = NULL;
    while ((c = cli_getopt(x, argc, argv, "g:", lo)) != CLI_OPT_END) {
        switch (c) {
        case 'g':
            group = optarg;
            break;
        case OPT_SEEK:
        case OPT_SEEK_TIME:
        case OPT_DELETE:
        case OPT_YES:
            if (ga == NULL)
                return cli_usage_error(x, "%s belongs to `krappy groups`", argv[optind - 1]);
            if (c == OPT_SEEK)
                ga->seek = optarg;
            else if (c == OPT_SEEK_TIME)
                ga->seek_time = optarg;
            else if (c == OPT_DELETE)
                ga->del = optarg;
            else
                ga->yes = true;
            break;
        case CLI_OPT_HELP:
            return cli_verb_help(x->verb);
        default:
            return CLI_USAGE;
        }
    }
    if (optind >= argc)
        return cli_usage_error(x, "%s", missing);
    const char *topic = argv[optind];
    if ((rc = cli_use_topic(x, topic)) != CLI_OK)
        return rc;
    const char *g = group ? group : ga ? (ga->seek ? ga->seek : ga->del) : NULL;
    if (g != NULL && (rc = cli_use_group(x, g)) != CLI_OK)
        return rc;
    if (ga != NULL && (ga->seek != NULL || ga->del != NULL || ga->seek_time != NULL)) {
        if ((ga->seek != NULL) == (ga->del != NULL))
            return cli_usage_error(x, ga->seek_time != NULL && ga->seek == NULL && ga->del == NULL
                                          ? "--seek-time goes with --seek GROUP"
                                          : "give --seek GROUP or --delete GROUP, not both");
        if (ga->del != NULL && (argc - optind > 1 || ga->seek_time != NULL))
            return cli_usage_error(x, "--delete GROUP takes nothing more");
        if (argc - optind > 2)
            return cli_usage_error(x, "unexpected argument '%s'", argv[optind + 2]);
        return ga->del != NULL
                   ? cli_group_delete(x, topic, ga)
                   : cli_group_seek(x, topic, ga, argc - optind > 1 ? argv[optind + 1] : NULL);
    }
    if (argc - optind > 1)
        return cli_usage_error(x, "unexpected argument '%s'", argv[optind + 1]);
    if ((rc = cli_connect(x)) != CLI_OK)
        return rc;
    krappy_err e = krappy_stats(x->client, topic, group, st);
    return e == KRAPPY_OK ? CLI_OK : cli_client_fail(x, e);
}

/* STATS' settings and compaction figures, when the server sent them, as
 * ',"config":{...},"compaction":{...}' (krappyd's additions). */
static void print_more_json(const krappy_topic_stats *st)
{
    if (st->has_config) {
        const krappy_topic_settings *c = &st->config;
        const char *cl = krappy_cleanup_name(c->cleanup);
        printf(",\"config\":{\"cleanup\":\"%s\",\"retention_bytes\":%llu,\"retention_ms\":%llu,"
               "\"delete_retention_ms\":%llu,\"segment_bytes\":%llu,\"segment_ms\":%llu}",
               cl != NULL ? cl : "?", (unsigned long long)c->retention_bytes,
               (unsigned long long)c->retention_ms, (unsigned long long)c->delete_retention_ms,
               (unsigned long long)c->segment_bytes, (unsigned long long)c->segment_ms);
    }
    if (st->has_compaction)
        printf(",\"compaction\":{\"dirty_bytes\":%llu,\"reclaimed_bytes\":%llu,"
               "\"segments_rewritten\":%llu,\"events_removed\":%llu,\"ms\":%llu}",
               (unsigned long long)st->dirty_bytes, (unsigned long long)st->reclaimed_bytes,
               (unsigned long long)st->segments_rewritten, (unsigned long long)st->events_removed,
               (unsigned long long)st->compact_ms);
}

/* stats: the topic's figures, then its groups as a table. */
int cli_stats(cli *x, int argc, char **argv)
{
    krappy_topic_stats *st;
    char b[32];
    int rc = load_stats(x, argc, argv, "name the topic", NULL, &st);
    if (rc != CLI_OK || st == NULL)
        return rc;

    if (x->json) {
        printf("{\"topic\":");
        kr_json_str_file(stdout, st->topic, strlen(st->topic));
        printf(",\"first\":%llu,\"next\":%llu,\"events\":%llu,\"bytes\":%llu,\"keys\":%llu,"
               "\"producers\":%llu,\"groups\":[",
               (unsigned long long)st->first, (unsigned long long)st->next,
               (unsigned long long)(st->next - st->first), (unsigned long long)st->bytes,
               (unsigned long long)st->keys, (unsigned long long)st->producers);
        print_more_json(st);
        for (size_t i = 0; i < st->n_groups; i++) {
            const krappy_group_stats *g = &st->groups[i];
            printf("%s{", i ? "," : "");
            put_group_json(g);
            printf("}");
        }
        printf("]}\n");
        krappy_topic_stats_free(st);
        return CLI_OK;
    }
    printf("topic    %s\n", st->topic);
    printf("offsets  %llu..%llu (next %llu)\n", (unsigned long long)st->first,
           (unsigned long long)(st->next > st->first ? st->next - 1 : st->first),
           (unsigned long long)st->next);
    printf("events   %llu retained\n", (unsigned long long)(st->next - st->first));
    printf("size     %s (%llu bytes on disk)\n", cli_fmt_bytes(b, sizeof b, st->bytes),
           (unsigned long long)st->bytes);
    printf("keys     %llu live\n", (unsigned long long)st->keys);
    if (st->producers > 0)
        printf("producers %llu idempotent\n", (unsigned long long)st->producers);
    if (st->has_config)
        printf("cleanup  %s\n", krappy_cleanup_name(st->config.cleanup) != NULL
                                    ? krappy_cleanup_name(st->config.cleanup)
                                    : "?");
    if (st->has_compaction) {
        char r[32];
        printf("compacted %s reclaimed, %llu segments rewritten, %s not compacted yet\n",
               cli_fmt_bytes(r, sizeof r, st->reclaimed_bytes),
               (unsigned long long)st->segments_rewritten,
               cli_fmt_bytes(b, sizeof b, st->dirty_bytes));
    }
    if (st->n_groups == 0) {
        printf("groups   none\n");
        krappy_topic_stats_free(st);
        return CLI_OK;
    }
    putchar('\n');
    print_groups(st);
    krappy_topic_stats_free(st);
    return CLI_OK;
}

/* groups: the consumer groups of STATS, as a table or one JSON object a
 * line. */
int cli_groups(cli *x, int argc, char **argv)
{
    krappy_topic_stats *st;
    cli_group_admin ga = {0};
    int rc = load_stats(x, argc, argv, "name the topic whose consumer groups to show", &ga, &st);
    if (rc != CLI_OK || st == NULL)
        return rc;

    if (x->json) {
        for (size_t i = 0; i < st->n_groups; i++) {
            const krappy_group_stats *g = &st->groups[i];
            printf("{\"topic\":");
            kr_json_str_file(stdout, st->topic, strlen(st->topic));
            printf(",");
            put_group_json(g);
            printf("}\n");
        }
    } else if (st->n_groups == 0) {
        printf("topic %s has no consumer groups yet (`krappy consume %s --group G` creates "
               "one)\n",
               st->topic, st->topic);
    } else {
        print_groups(st);
    }
    krappy_topic_stats_free(st);
    return CLI_OK;
}
