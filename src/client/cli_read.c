/*
 * client/cli_read.c - the verbs that read a topic: `fetch` (by offset, with
 * long polls for --follow), `get` (a key's latest value) and `scan` (every
 * key's latest value, page by page).
 */
#include "client/cli.h"

#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* Events asked for per FETCH (the server lowers it to its max_events). */
#define FETCH_PAGE 1000

/* Default of --wait: one long poll of --follow. */
#define FETCH_DEFAULT_WAIT_MS 10000

/* The topic argument: exactly one positional argument left (or two for
 * `get`); *topic set. */
static int take_topic(cli *x, int argc, char **argv, int want, const char *what)
{
    if (optind >= argc)
        return cli_usage_error(x, "name the topic %s", what);
    if (argc - optind > want)
        return cli_usage_error(x, "unexpected argument '%s'", argv[optind + want]);
    if (argc - optind < want)
        return cli_usage_error(x, "give the topic and the key");
    return cli_use_topic(x, argv[optind]);
}

/* Where --from end and --last N start: the topic's next offset via STATS. */
static krappy_err topic_range(cli *x, const char *topic, uint64_t *first, uint64_t *next)
{
    krappy_topic_stats *st;
    krappy_err e = krappy_stats(x->client, topic, NULL, &st);
    if (e != KRAPPY_OK)
        return e;
    *first = st->first;
    *next = st->next;
    krappy_topic_stats_free(st);
    return KRAPPY_OK;
}

/*
 * fetch: FETCH from the start offset, page after page, until the end (no
 * event left) or --max; with --follow, long polls from there on until
 * Ctrl-C, which shuts the socket down so that a parked poll ends at once.
 */
int cli_fetch(cli *x, int argc, char **argv)
{
    static const struct option lo[] = {
        {"from", required_argument, NULL, 'F'},
        {"last", required_argument, NULL, 'l'},
        {"max", required_argument, NULL, 'n'},
        {"follow", no_argument, NULL, 'f'},
        {"wait", required_argument, NULL, 'W'},
        {"headers", no_argument, NULL, 'E'},
        CLI_HELP_OPTION,
        {NULL, 0, NULL, 0},
    };
    enum { FROM_START, FROM_END, FROM_OFFSET, FROM_LAST } from = FROM_START;
    uint64_t offset = 0, last = 0, max = 0, wait_ms = FETCH_DEFAULT_WAIT_MS;
    bool follow = false, headers = false;
    int c, rc;
    krappy_err e;

    while ((c = cli_getopt(x, argc, argv, "l:n:f", lo)) != CLI_OPT_END) {
        switch (c) {
        case 'F':
            if (strcmp(optarg, "start") == 0)
                from = FROM_START;
            else if (strcmp(optarg, "end") == 0)
                from = FROM_END;
            else if (cli_parse_u64(optarg, 0, UINT64_MAX, &offset) == 0)
                from = FROM_OFFSET;
            else
                return cli_usage_error(x, "--from \"%s\" is not an offset, 'start' or 'end'",
                                       optarg);
            break;
        case 'l':
            if (cli_parse_u64(optarg, 0, UINT64_MAX, &last) < 0)
                return cli_usage_error(x, "--last \"%s\" is not a number", optarg);
            from = FROM_LAST;
            break;
        case 'n':
            if (cli_parse_u64(optarg, 1, UINT64_MAX, &max) < 0)
                return cli_usage_error(x, "--max \"%s\" is not a number from 1 up", optarg);
            break;
        case 'f':
            follow = true;
            break;
        case 'W':
            if ((rc = cli_parse_ms(x, "--wait", optarg, 1, &wait_ms)) != CLI_OK)
                return rc;
            break;
        case 'E':
            headers = true;
            break;
        case CLI_OPT_HELP:
            return cli_verb_help(x->verb);
        default:
            return CLI_USAGE;
        }
    }
    if ((rc = take_topic(x, argc, argv, 1, "to fetch from")) != CLI_OK)
        return rc;
    const char *topic = argv[optind];

    cli_catch_sigint();
    if ((rc = cli_connect(x)) != CLI_OK)
        return rc;
    cli_interrupt_closes(krappy_client_fd(x->client));

    uint64_t first = 0, next = 0;
    if (from == FROM_END || from == FROM_LAST) {
        if ((e = topic_range(x, topic, &first, &next)) != KRAPPY_OK)
            goto fail;
        offset = from == FROM_END ? next : (next - first > last ? next - last : first);
    }
    int owidth = cli_digits(offset + 1000);
    size_t kwidth = 1;
    uint64_t shown = 0;
    bool start_known = from != FROM_START;
    while (!cli_interrupted()) {
        krappy_events *ev;
        uint64_t page = max != 0 && max - shown < FETCH_PAGE ? max - shown : FETCH_PAGE;
        e = krappy_fetch(x->client, topic, offset, page, 0, follow ? wait_ms : 0, &ev);
        if (e == KRAPPY_E_OFFSET_OUT_OF_RANGE && !start_known &&
            krappy_client_error_range(x->client, &first, &next)) {
            offset = first; /* the first retained offset, found the cheap way */
            start_known = true;
            continue;
        }
        if (e != KRAPPY_OK)
            goto fail;
        start_known = true;
        for (size_t i = 0; i < ev->count; i++) {
            if (x->json)
                cli_json_event(stdout, &ev->events[i]);
            else
                cli_print_event(stdout, &ev->events[i], owidth, &kwidth, headers);
        }
        shown += ev->count;
        offset = ev->next;
        size_t n = ev->count;
        krappy_events_free(ev);
        if (max != 0 && shown >= max)
            break;
        if (n == 0 && !follow)
            break;
    }
    cli_interrupt_closes(-1);
    return CLI_OK;

fail:
    cli_interrupt_closes(-1);
    if (cli_interrupted())
        return CLI_OK; /* Ctrl-C ended a long poll: a normal end */
    if (e == KRAPPY_E_OFFSET_OUT_OF_RANGE && krappy_client_error_range(x->client, &first, &next))
        return cli_fail(x,
                        "offset %llu is outside what topic %s holds (offsets %llu to %llu; "
                        "%llu is the next to be written); try --from start",
                        (unsigned long long)offset, topic, (unsigned long long)first,
                        (unsigned long long)(next > first ? next - 1 : first),
                        (unsigned long long)next);
    return cli_client_fail(x, e);
}

/* Raw text to a terminal is data too: keep newlines and tabs, escape the
 * other control characters. To a pipe or file it goes out as it is. */
static void put_raw_text(const char *t, size_t n)
{
    if (!isatty(STDOUT_FILENO)) {
        fwrite(t, 1, n, stdout);
        return;
    }
    size_t i = 0;
    while (i < n) {
        size_t j = i;
        while (j < n && t[j] != '\t' && t[j] != '\n')
            j++;
        cli_put_text(stdout, (const uint8_t *)t + i, j - i);
        if (j < n)
            fputc(t[j], stdout);
        i = j + 1;
    }
}

/* get: one VALUE; the value alone (or JSON), NOT_FOUND as a sentence. */
int cli_get(cli *x, int argc, char **argv)
{
    static const struct option lo[] = {
        {"hex-key", no_argument, NULL, 'x'},
        CLI_HELP_OPTION,
        {NULL, 0, NULL, 0},
    };
    bool hex = false;
    int c, rc;

    while ((c = cli_getopt(x, argc, argv, "x", lo)) != CLI_OPT_END) {
        switch (c) {
        case 'x':
            hex = true;
            break;
        case CLI_OPT_HELP:
            return cli_verb_help(x->verb);
        default:
            return CLI_USAGE;
        }
    }
    if ((rc = take_topic(x, argc, argv, 2, "and the key to get")) != CLI_OK)
        return rc;
    const char *topic = argv[optind], *key_arg = argv[optind + 1];
    uint8_t *key = NULL;
    size_t klen = strlen(key_arg);
    if (hex && cli_parse_hex(key_arg, &key, &klen) < 0)
        return cli_usage_error(x, "--hex-key: \"%s\" is not an even number of hex digits", key_arg);
    if (klen > KRAPPY_MAX_KEY_BYTES) {
        free(key);
        return cli_usage_error(x, "the key has %zu bytes; keys have at most %u", klen,
                               (unsigned)KRAPPY_MAX_KEY_BYTES);
    }
    if ((rc = cli_connect(x)) != CLI_OK) {
        free(key);
        return rc;
    }
    krappy_value *v;
    krappy_err e = krappy_get(x->client, topic, hex ? (const void *)key : key_arg, klen, &v);
    if (e == KRAPPY_E_NOT_FOUND) {
        fprintf(stderr, "krappy: key ");
        if (hex)
            cli_put_key(stderr, 1, 0, key, klen, 0);
        else {
            fputc('"', stderr);
            cli_put_text(stderr, (const uint8_t *)key_arg, klen);
            fputc('"', stderr);
        }
        fprintf(stderr, " not found in topic %s (never written, or deleted)\n", topic);
        free(key);
        return CLI_FAIL;
    }
    free(key);
    if (e != KRAPPY_OK)
        return cli_client_fail(x, e);

    if (x->json) {
        printf("{");
        cli_json_key(stdout, 1, v->key_is_text, v->key, v->key_len);
        printf(",\"offset\":%llu,\"ts\":%llu,\"value\":", (unsigned long long)v->offset,
               (unsigned long long)v->ts);
        cli_json_cbor(stdout, v->value, v->value_len);
        if (v->has_headers) {
            printf(",\"headers\":");
            cli_json_cbor(stdout, v->headers, v->headers_len);
        }
        printf("}\n");
    } else {
        const char *t;
        size_t tl;
        if (krappy_cbor_text(v->value, v->value_len, &t, &tl))
            put_raw_text(t, tl);
        else
            cli_put_value(stdout, v->value, v->value_len);
        fputc('\n', stdout);
    }
    krappy_value_free(v);
    return CLI_OK;
}

/* scan: every page from one snapshot; keys aligned within a page. */
int cli_scan(cli *x, int argc, char **argv)
{
    static const struct option lo[] = {
        {"prefix", required_argument, NULL, 'R'},
        {"after", required_argument, NULL, 'A'},
        {"hex", no_argument, NULL, 'x'},
        {"limit", required_argument, NULL, 'L'},
        {"max", required_argument, NULL, 'n'},
        {"long", no_argument, NULL, 'l'},
        CLI_HELP_OPTION,
        {NULL, 0, NULL, 0},
    };
    const char *prefix_arg = NULL, *after_arg = NULL;
    bool hex = false, longfmt = false;
    uint64_t limit = 0, max = 0;
    int c, rc;

    while ((c = cli_getopt(x, argc, argv, "xn:l", lo)) != CLI_OPT_END) {
        switch (c) {
        case 'R':
            prefix_arg = optarg;
            break;
        case 'A':
            after_arg = optarg;
            break;
        case 'x':
            hex = true;
            break;
        case 'L':
            if (cli_parse_u64(optarg, 1, UINT32_MAX, &limit) < 0)
                return cli_usage_error(x, "--limit \"%s\" is not a number from 1 up", optarg);
            break;
        case 'n':
            if (cli_parse_u64(optarg, 1, UINT64_MAX, &max) < 0)
                return cli_usage_error(x, "--max \"%s\" is not a number from 1 up", optarg);
            break;
        case 'l':
            longfmt = true;
            break;
        case CLI_OPT_HELP:
            return cli_verb_help(x->verb);
        default:
            return CLI_USAGE;
        }
    }
    if ((rc = take_topic(x, argc, argv, 1, "to scan")) != CLI_OK)
        return rc;
    const char *topic = argv[optind];

    uint8_t *prefix = NULL, *after = NULL;
    size_t plen = prefix_arg ? strlen(prefix_arg) : 0, alen = after_arg ? strlen(after_arg) : 0;
    if (hex && prefix_arg != NULL && cli_parse_hex(prefix_arg, &prefix, &plen) < 0)
        return cli_usage_error(x, "--prefix \"%s\" is not hex digits (--hex)", prefix_arg);
    if (hex && after_arg != NULL && cli_parse_hex(after_arg, &after, &alen) < 0) {
        free(prefix);
        return cli_usage_error(x, "--after \"%s\" is not hex digits (--hex)", after_arg);
    }
    const void *pp = hex ? (const void *)prefix : prefix_arg;
    const void *ap = hex ? (const void *)after : after_arg;

    krappy_scan *s = NULL;
    krappy_err e = KRAPPY_OK;
    uint64_t shown = 0;
    if ((rc = cli_connect(x)) != CLI_OK)
        goto out;
    uint64_t page_limit = limit;
    if (max != 0 && (page_limit == 0 || page_limit > max))
        page_limit = max;
    e = krappy_scan_begin(x->client, topic, pp, plen, ap, alen, page_limit, &s);
    size_t kw = 1; /* the key column only widens, so pages line up */
    while (e == KRAPPY_OK) {
        size_t n;
        const krappy_event *ent = krappy_scan_entries(s, &n);
        for (size_t i = 0; i < n; i++) {
            size_t w = cli_key_width(1, ent[i].key_is_text, ent[i].key, ent[i].key_len);
            if (w > kw && w <= CLI_KEY_COLUMN_MAX)
                kw = w;
        }
        for (size_t i = 0; i < n && (max == 0 || shown < max); i++, shown++) {
            const krappy_event *en = &ent[i];
            if (x->json) {
                printf("{");
                cli_json_key(stdout, 1, en->key_is_text, en->key, en->key_len);
                printf(",\"offset\":%llu,\"ts\":%llu,\"value\":", (unsigned long long)en->offset,
                       (unsigned long long)en->ts);
                cli_json_cbor(stdout, en->value, en->value_len);
                printf("}\n");
                continue;
            }
            cli_put_key(stdout, 1, en->key_is_text, en->key, en->key_len, kw);
            if (longfmt) {
                char ts[CLI_TS_LEN];
                printf("  %llu  %s", (unsigned long long)en->offset,
                       cli_fmt_ts(ts, sizeof ts, en->ts));
            }
            fputs("  ", stdout);
            cli_put_value(stdout, en->value, en->value_len);
            fputc('\n', stdout);
        }
        if (!krappy_scan_more(s) || (max != 0 && shown >= max))
            break;
        e = krappy_scan_next_page(x->client, s);
    }
    if (e != KRAPPY_OK) {
        fflush(stdout);
        rc = cli_client_fail(x, e);
        goto out;
    }
    if (!x->json && isatty(STDERR_FILENO))
        fprintf(stderr, "%llu key%s (snapshot %llu: `krappy fetch %s --from %llu` follows on)\n",
                (unsigned long long)shown, shown == 1 ? "" : "s",
                (unsigned long long)krappy_scan_snapshot(s), topic,
                (unsigned long long)krappy_scan_snapshot(s));
    rc = CLI_OK;
out:
    krappy_scan_free(s);
    free(prefix);
    free(after);
    return rc;
}
