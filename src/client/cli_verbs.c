/*
 * client/cli_verbs.c - the krappy command line's verb table, in the order
 * `krappy help` lists it (adding a verb is a row here and a function in
 * cli_<group>.c), finding a verb by name, and the help: the usage, a
 * verb's options and examples, `krappy help` and `krappy version`.
 */
#include "client/cli.h"

#include <stdint.h>
#include <string.h>

#ifndef KRAPPY_VERSION
#define KRAPPY_VERSION "0.0.0"
#endif

static int cli_version(cli *x, int argc, char **argv);
static int cli_help(cli *x, int argc, char **argv);

/* The verbs, in the order `krappy help` lists them. */
static const cli_verb verbs[] = {
    {"ping", "[-c COUNT] [-i MS]", "check that krappyd answers, and how fast (like ping(8))",
     "  -c, --count COUNT     PINGs to send (default 4; 0 = until Ctrl-C)\n"
     "  -i, --interval MS     wait MS milliseconds between PINGs (default 1000; 0 = flood)\n",
     "  krappy ping                        4 PINGs to 127.0.0.1:7070, one a second\n"
     "  krappy -p 17070 ping -c 3 -i 200   3 PINGs, 200 ms apart, to port 17070\n"
     "  krappy --json ping -c 1            one JSON object per reply, then a summary\n"
     "  KRAPPY_ADDR=db1:7070 krappy ping -c 0   until Ctrl-C\n",
     cli_ping},
    {"hello", "", "show what the server says about itself (HELLO)", NULL,
     "  krappy hello\n"
     "  krappy --json -h db1 hello\n",
     cli_hello},
    {"produce", "TOPIC [KEY=VALUE ... | --value-file F [--key K]]",
     "publish events, from the arguments, a file or one per line of stdin",
     "  -a, --ack MODE          write (default: stored and visible to readers), sync\n"
     "                          (also on stable storage) or none (no reply; a refusal\n"
     "                          still ends the run with an error)\n"
     "  -b, --batch N           events per PUBLISH (default 1000; fewer when a batch\n"
     "                          would not fit the server's max_frame)\n"
     "  -P, --pipeline N        PUBLISH requests in flight at once (default 8)\n"
     "      --producer ID       producer id to register (default krappy-cli-PID)\n"
     "      --idempotent ID     register as the idempotent producer ID: batches are\n"
     "                          numbered, sent again over a new connection when one\n"
     "                          is lost (a server restart), and stored once each\n"
     "                          (--pipeline 5 at most; --ack write or sync)\n"
     "      --seq N             with --idempotent: number the first batch N (run the\n"
     "                          same input again with the same N and --batch, and\n"
     "                          only what was not stored yet is stored)\n"
     "  -d, --delete KEY        publish a tombstone for KEY, so that GET and SCAN no\n"
     "                          longer show it (repeatable; the key is the next\n"
     "                          argument: -dKEY is refused)\n"
     "  -K, --key-delimiter D   split KEY and VALUE at D, in arguments and stdin lines\n"
     "                          alike (default: '=' in arguments, TAB on stdin)\n"
     "      --value-file F      publish one event whose value is the bytes of file F\n"
     "                          (a byte string, binary safe; with -J, F's JSON)\n"
     "      --key K             the key of the --value-file event (default: none)\n"
     "  -H, --header NAME=VALUE add this header to every event (repeatable)\n"
     "  -J, --json-values       read each VALUE as JSON and publish it as CBOR\n"
     "                          (objects become maps, numbers integers or floats)\n"
     "      --json              stdin lines are JSON objects (below); JSON summary\n"
     "\ninput: without KEY=VALUE arguments, --delete or --value-file, events come from\n"
     "stdin, one a line: KEY<TAB>VALUE (or KEY, -K's delimiter, VALUE), or just VALUE\n"
     "for an event without a key - the summary says how many had none; empty lines are\n"
     "skipped. VALUEs are sent as CBOR text strings (as JSON with -J). With --json a\n"
     "line is {\"key\": \"k\", \"value\": ANY, \"ts\": MS, \"headers\": {\"h\": \"v\"}}:\n"
     "only \"value\" is required; \"value\": null deletes the key, \"key\": null (or no\n"
     "\"key\") means no key; a header is text, or {\"hex\": \"00ff\"} for other bytes\n"
     "(as fetch --json prints them). A bad line stops the run; the lines before it are\n"
     "published. Options may come after TOPIC; after -- every argument is KEY=VALUE,\n"
     "even one that starts with '-'.\n",
     "  krappy produce users alice=hello bob=world   two events, text values\n"
     "  krappy produce users -J 'alice={\"plan\": \"pro\", \"seats\": 3}'\n"
     "  krappy produce users -d bob                  delete bob\n"
     "  echo 'alice=shipped' | krappy produce users -K =    key alice, value shipped\n"
     "  krappy produce blobs --value-file logo.png --key logo\n"
     "  krappy produce users -- -odd-key=1           a key that starts with '-'\n"
     "  seq 1 100000 | krappy produce numbers        100000 events without keys\n"
     "  printf 'k1\\tv1\\nk2\\tv2\\n' | krappy produce kv --ack sync\n"
     "  krappy --json produce users < events.jsonl\n"
     "  krappy produce orders --idempotent import-7 --seq 0 --ack sync < orders.txt\n",
     cli_produce},
    {"fetch", "TOPIC [--from OFFSET] [--max N] [--follow]",
     "print a topic's events in offset order (tail -f with --follow)",
     "      --from OFFSET  start at OFFSET; 'start' = the first retained event\n"
     "                     (default), 'end' = only events produced from now on\n"
     "  -l, --last N       start N events before the end\n"
     "  -n, --max N        stop after N events\n"
     "  -f, --follow       at the end, wait for new events (long polls) until Ctrl-C\n"
     "      --wait MS      how long one long poll waits with --follow (default 10000)\n"
     "      --headers      show each event's headers too (--json always does)\n"
     "\noutput: OFFSET  TIME (UTC)  KEY  VALUE, one event a line. Text values are shown\n"
     "as text, other values in CBOR diagnostic notation (RFC 8949); byte keys as\n"
     "h'hex', no key as '-'. --json: {\"offset\", \"ts\" (ms), \"key\", \"value\",\n"
     "\"headers\"} per event; byte strings become hex strings (\"key_is_hex\": true).\n",
     "  krappy fetch orders                  everything retained, then exit\n"
     "  krappy fetch orders --last 10 -f     the last 10 events, then new ones\n"
     "  krappy fetch orders --from end -f    only new events\n"
     "  krappy --json fetch orders -n 100 | jq .value\n",
     cli_fetch},
    {"consume", "TOPIC --group G [--member NAME] [--start WHERE] [--max N] [--follow]",
     "read a topic's events as a member of a consumer group (each event once)",
     "  -g, --group G         the consumer group (required); its members share the\n"
     "                        events: each is printed by one member only\n"
     "  -m, --member NAME     this member's name (default: one the server assigns);\n"
     "                        taking a live member's name takes over its events\n"
     "  -s, --start WHERE     where a new group starts: earliest (default, the first\n"
     "                        retained event), latest (only events produced from\n"
     "                        now on) or an offset; an existing group goes on from\n"
     "                        its cursor\n"
     "  -a, --ack MODE        explicit (default): each batch is acknowledged once\n"
     "                        printed; events handed out but not acknowledged come\n"
     "                        again (at-least-once). auto: events count as consumed\n"
     "                        when handed out (at-most-once: Ctrl-C during a long\n"
     "                        poll may lose the events of that poll)\n"
     "      --ack-wait MS     an event not acknowledged within MS milliseconds goes\n"
     "                        back to the group (default 30000)\n"
     "  -n, --max N           stop after N events\n"
     "  -f, --follow          at the end, wait for new events (long polls) until Ctrl-C\n"
     "  -b, --batch N         events per POLL (default 100)\n"
     "      --wait MS         how long one long poll waits with --follow (default 10000)\n"
     "      --headers         show each event's headers too (--json always does)\n"
     "\noutput: as fetch: OFFSET  TIME (UTC)  KEY  VALUE, one event a line, or one JSON\n"
     "object per event with --json. The run exits once it has caught up - when the group\n"
     "has nothing more to hand out - unless --follow keeps it waiting for new events.\n"
     "Each batch is acknowledged by the offsets printed, after they are written out. At\n"
     "the end a summary goes to stderr: the events consumed and the group's cursor.\n"
     "--start only places a new group; to move an existing one, krappy groups TOPIC\n"
     "--seek GROUP WHERE.\n",
     "  krappy consume orders -g billing              everything not yet consumed\n"
     "  krappy consume orders -g billing -n 5         the next 5 events\n"
     "  krappy consume orders -g mail --start latest -f   new events, until Ctrl-C\n"
     "  krappy consume orders -g audit --ack auto -b 1000 > orders.log\n"
     "  krappy --json consume orders -g billing -f | jq .value\n",
     cli_consume},
    {"get", "TOPIC KEY", "print the latest value of a key",
     "  -x, --hex-key      KEY is given as hex digits (a binary key)\n"
     "\noutput: the value: a text string as it is, anything else in CBOR diagnostic\n"
     "notation. --json: {\"key\", \"offset\", \"ts\", \"value\", \"headers\"}. A key that\n"
     "was never written, or deleted, is an error (exit 1).\n",
     "  krappy get users alice\n"
     "  krappy get blobs -x 00ff10\n"
     "  krappy --json get users alice\n",
     cli_get},
    {"scan", "TOPIC [--prefix P] [--after K] [--limit N]",
     "print the latest value of every key, in key order",
     "      --prefix P     only keys that start with P\n"
     "      --after K      only keys after K (unsigned bytewise order)\n"
     "  -x, --hex          P and K are given as hex digits\n"
     "      --limit N      keys per request (page) (default 1000)\n"
     "  -n, --max N        stop after N keys\n"
     "  -l, --long         show each key's offset and time too\n"
     "\nAll pages come from one snapshot of the topic (shown at the end on a terminal:\n"
     "fetch --from SNAPSHOT to follow on). --json: one {\"key\", \"offset\", \"ts\",\n"
     "\"value\"} per key.\n",
     "  krappy scan users\n"
     "  krappy scan users --prefix user: -l\n"
     "  krappy --json scan users --after bob -n 10\n",
     cli_scan},
    {"topics", "", "list the topics with their offsets", NULL,
     "  krappy topics\n"
     "  krappy --json topics\n",
     cli_topics},
    {"stats", "TOPIC [--group G]", "show a topic's size, keys and consumer groups",
     "  -g, --group G      show just this consumer group\n",
     "  krappy stats orders\n"
     "  krappy --json stats orders --group billing\n",
     cli_stats},
    {"groups", "TOPIC [--group G | --seek G WHERE | --delete G]",
     "list a topic's consumer groups; move a group's cursor, or delete a group",
     "  -g, --group G         show just this consumer group\n"
     "      --seek G WHERE    move group G's cursor to WHERE: earliest (the first\n"
     "                        retained event: everything again), latest (only new\n"
     "                        events), an offset, or a time (2026-12-06T10:00Z: the\n"
     "                        first event at or after it). Events handed out and not\n"
     "                        acknowledged are forgotten; members stay registered\n"
     "      --seek-time TIME  with --seek G: the same as giving TIME as WHERE\n"
     "      --delete G        delete group G: its cursor is lost, its members must\n"
     "                        register again (asks first on a terminal)\n"
     "      --yes             do not ask\n"
     "\noutput: GROUP  CURSOR  PENDING  LAG  MEMBERS. CURSOR is the group's first offset\n"
     "not yet acknowledged, PENDING its events handed out (or waiting to be handed out\n"
     "again) and not acknowledged, LAG the events from the cursor to the end of the\n"
     "topic, MEMBERS its connected consumers. --json: one {\"topic\", \"group\",\n"
     "\"cursor\", \"pending\", \"lag\", \"members\"} per group. Times are UTC unless\n"
     "they end in an offset (+01:00); a date alone is midnight UTC.\n",
     "  krappy groups orders\n"
     "  krappy groups orders --group billing\n"
     "  krappy groups orders --seek billing earliest     reprocess everything\n"
     "  krappy groups orders --seek billing --seek-time 2026-12-06T10:00Z\n"
     "  krappy groups orders --seek billing 1500\n"
     "  krappy groups orders --delete old-report --yes\n"
     "  krappy --json groups orders\n",
     cli_groups},
    {"delete-topic", "TOPIC [--yes]",
     "delete a topic: its events, latest values and consumer groups",
     "  -y, --yes          do not ask (on a terminal it asks you to type the topic's\n"
     "                     name first; without a terminal it does not ask)\n"
     "\nThe topic is gone once this returns, also after a crash of the server: every\n"
     "request naming it fails, and its producers must register again, which creates\n"
     "a new, empty topic of that name starting at offset 0.\n",
     "  krappy delete-topic scratch\n"
     "  krappy delete-topic scratch --yes\n",
     cli_delete_topic},
    {"cluster", "[add ID HOST:PORT | remove ID]",
     "show a cluster's nodes, roles and positions; add or remove a node",
     "\noutput: the cluster's id, term and leader, then NODE ROLE ADDRESS RAFT COMMIT\n"
     "APPLIED LAG, a node a line. ROLE is leader, follower, joining (added, catching\n"
     "up before it votes) or unreachable (the leader has not heard from it). COMMIT\n"
     "and APPLIED are each node's raft positions (asked of each node; - when it does\n"
     "not answer), LAG the entries a node is behind the leader's log (known to the\n"
     "leader). A single krappyd is a cluster of one.\n"
     "  add ID HOST:PORT   add node ID, reached by raft at HOST:PORT (its\n"
     "                     --raft-listen); answered once it caught up and votes\n"
     "  remove ID          take node ID out of the cluster\n"
     "Membership changes go to the leader, found among the nodes -h names.\n",
     "  krappy -h a:7070,b:7070,c:7070 cluster\n"
     "  krappy -h a:7070 cluster add 4 d.example:7072\n"
     "  krappy -h a:7070,b:7070 cluster remove 3\n"
     "  krappy --json cluster\n",
     cli_cluster},
    {"topic-config", "TOPIC [--set NAME=VALUE ...] [--reset NAME ...]",
     "show a topic's settings, or change some of them (creating the topic if need be)",
     "  -s, --set NAME=VALUE   change one setting (repeat for more); nothing changes\n"
     "                         when one of them is refused (NAME=default: as --reset):\n"
     "        cleanup=delete|compact|compact,delete\n"
     "        retention_bytes=BYTES, segment_bytes=BYTES   (K, M, G suffixes)\n"
     "        retention_ms=TIME, delete_retention_ms=TIME, segment_ms=TIME\n"
     "                         (ms, s, m, h, d suffixes; a bare number is ms)\n"
     "  -r, --reset NAME       drop the topic's own value of a setting: the server's\n"
     "                         flag applies again (repeat for more)\n"
     "\ncleanup=delete retires whole old segments by retention_bytes/retention_ms;\n"
     "compact removes events that are no longer their key's latest from closed\n"
     "segments (tombstones after delete_retention_ms), so a replay from the first\n"
     "offset still yields every live key. Settings a topic does not set follow the\n"
     "server's flags. output: NAME VALUE a line; --json: one object.\n",
     "  krappy topic-config users\n"
     "  krappy topic-config users --set cleanup=compact --set segment_ms=10m\n"
     "  krappy --json topic-config audit --set retention_ms=7d\n"
     "  krappy topic-config audit --reset retention_ms\n",
     cli_topic_config},
    {"version", "", "print the versions of krappy, libkrappy and the protocol", NULL,
     "  krappy version\n"
     "  krappy --json version\n",
     cli_version},
    {"help", "[VERB]", "show this help, or one verb's options and examples", NULL,
     "  krappy help\n"
     "  krappy help ping        (the same as: krappy ping --help)\n",
     cli_help},
};

#define N_VERBS (sizeof verbs / sizeof verbs[0])

static const char global_options_text[] =
    "  -h, --host HOST     krappyd's host name or address (default 127.0.0.1), or a\n"
    "                      cluster's nodes: -h a:7070,b:7070,c:7070 (writes go to\n"
    "                      the leader, found among them)\n"
    "  -p, --port PORT     krappyd's port (default 7070)\n"
    "      --token TOKEN   the server's token, sent with HELLO (or env KRAPPY_TOKEN;\n"
    "                      the environment keeps it out of `ps`)\n"
    "      --timeout MS    give up on a reply after MS milliseconds (default 30000;\n"
    "                      0 = wait forever); also bounds connecting\n"
    "      --json          machine-readable output: one JSON object per line\n"
    "      --help          this help\n"
    "      --version       print the version\n";

/* ---- lookup and help ---- */

const cli_verb *cli_find_verb(const char *name)
{
    for (size_t i = 0; i < N_VERBS; i++)
        if (strcmp(verbs[i].name, name) == 0)
            return &verbs[i];
    return NULL;
}

/* Edit distance, to suggest a verb for a typo. Short strings only. */
static size_t edit_distance(const char *a, const char *b)
{
    size_t la = strlen(a), lb = strlen(b);
    size_t row[32];
    if (la >= 32 || lb >= 32)
        return SIZE_MAX;
    for (size_t j = 0; j <= lb; j++)
        row[j] = j;
    for (size_t i = 1; i <= la; i++) {
        size_t diag = row[0];
        row[0] = i;
        for (size_t j = 1; j <= lb; j++) {
            size_t up = row[j];
            size_t best = diag + (a[i - 1] != b[j - 1]);
            if (up + 1 < best)
                best = up + 1;
            if (row[j - 1] + 1 < best)
                best = row[j - 1] + 1;
            row[j] = best;
            diag = up;
        }
    }
    return row[lb];
}

int cli_unknown_verb(const char *name)
{
    const cli_verb *best = NULL;
    size_t best_d = 3; /* suggest only close matches */
    for (size_t i = 0; i < N_VERBS; i++) {
        size_t d = edit_distance(name, verbs[i].name);
        if (d < best_d) {
            best_d = d;
            best = &verbs[i];
        }
    }
    if (best != NULL)
        fprintf(stderr,
                "krappy: unknown verb '%s' (did you mean '%s'?); run 'krappy help' for the "
                "list of verbs\n",
                name, best->name);
    else
        fprintf(stderr, "krappy: unknown verb '%s'; run 'krappy help' for the list of verbs\n",
                name);
    return CLI_USAGE;
}

void cli_print_usage(FILE *f)
{
    fprintf(f, "usage: krappy [OPTIONS] VERB [ARGS]\n\n"
               "Talk to krappyd, the krappy event store.\n\n"
               "verbs:\n");
    for (size_t i = 0; i < N_VERBS; i++)
        fprintf(f, "  %-12s %s\n", verbs[i].name, verbs[i].summary);
    fprintf(f, "\noptions (before or after the verb; -h and -p only before it):\n%s",
            global_options_text);
    fprintf(f, "\nenvironment:\n"
               "  KRAPPY_ADDR         HOST:PORT, [V6ADDR]:PORT, HOST or :PORT (default\n"
               "                      127.0.0.1:7070), or a cluster's nodes separated by\n"
               "                      commas; -h and -p override its parts\n"
               "  KRAPPY_TOKEN        the server's token\n"
               "\nexit status: 0 done, 1 the server or the connection failed, 2 bad command "
               "line.\n"
               "Run 'krappy help VERB' or 'krappy VERB --help' for a verb's options and "
               "examples.\n");
}

int cli_verb_help(const cli_verb *v)
{
    printf("usage: krappy [OPTIONS] %s%s%s\n\n", v->name, v->args[0] ? " " : "", v->args);
    printf("%c%s.\n",
           v->summary[0] >= 'a' && v->summary[0] <= 'z' ? v->summary[0] - 'a' + 'A' : v->summary[0],
           v->summary + 1);
    if (v->options != NULL)
        printf("\noptions:\n%s", v->options);
    printf("\nglobal options (see 'krappy help'): --host --port --token --timeout --json\n");
    if (v->examples != NULL)
        printf("\nexamples:\n%s", v->examples);
    return CLI_OK;
}

/* ---- the verbs that need no server ---- */

static int cli_version(cli *x, int argc, char **argv)
{
    int rc = cli_only_help_option(x, argc, argv);
    if (rc >= 0)
        return rc;
    if (cli_no_args(x, argc, argv) != CLI_OK)
        return CLI_USAGE;
    if (x->json)
        printf("{\"krappy\":\"%s\",\"libkrappy\":\"%s\",\"protocol\":%d}\n", KRAPPY_VERSION,
               krappy_version(), KRAPPY_PROTOCOL_VERSION);
    else
        printf("krappy %s (libkrappy %s, protocol %d)\n", KRAPPY_VERSION, krappy_version(),
               KRAPPY_PROTOCOL_VERSION);
    return CLI_OK;
}

static int cli_help(cli *x, int argc, char **argv)
{
    int rc = cli_only_help_option(x, argc, argv);
    if (rc >= 0)
        return rc;
    if (optind == argc) {
        cli_print_usage(stdout);
        return CLI_OK;
    }
    if (argc - optind > 1)
        return cli_usage_error(x, "give one verb at most (got '%s' and '%s')", argv[optind],
                               argv[optind + 1]);
    const cli_verb *v = cli_find_verb(argv[optind]);
    if (v == NULL)
        return cli_unknown_verb(argv[optind]);
    return cli_verb_help(v);
}
