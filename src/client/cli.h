/*
 * client/cli.h - what the krappy CLI's verb files share.
 *
 * cli.c owns main(): global options, the verb table, help and the output
 * helpers below. Each verb is one function in a cli_<group>.c file plus one
 * row in the table (cli.c): the function gets its own argv (argv[0] is the
 * verb), parses its options with cli_getopt(), connects with cli_connect()
 * when it needs the server, and returns an exit code.
 *
 * Exit codes: 0 success, 1 the server or the connection failed (one sentence
 * on stderr), 2 the command line was wrong (one sentence and a hint).
 */
#ifndef KR_CLIENT_CLI_H
#define KR_CLIENT_CLI_H

#include <getopt.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

#include "krappy/client.h"
#include "util/hostport.h"

enum { CLI_OK = 0, CLI_FAIL = 1, CLI_USAGE = 2 };

/* Global settings, and the connection once a verb has made it. */
/* Longest address list (-h a,b,c or KRAPPY_ADDR a:7070,b:7070,...). */
#define CLI_ADDRS_MAX 2048

typedef struct cli {
    char host[KR_HOST_MAX + 1];
    char port[KR_PORT_MAX + 1];
    char addr[CLI_ADDRS_MAX];    /* "HOST:PORT", or a cluster's list of them */
    const char *list;            /* -h or KRAPPY_ADDR when it is a list, else NULL */
    char addr_error[256];        /* why KRAPPY_ADDR was refused ("" when fine) */
    bool host_set, port_set;     /* given by -h / -p */
    const char *token;           /* --token or KRAPPY_TOKEN; NULL for none */
    int timeout_ms;              /* --timeout; 0 = library default */
    bool json;                   /* --json: one JSON object per line on stdout */
    const struct cli_verb *verb; /* the verb running */
    krappy_client *client;       /* set by cli_connect; freed by main */
    krappy_server_info info;     /* from the HELLO cli_connect sent */
    const char *topic, *group;   /* what the verb works on (cli_use_topic,
                                    cli_use_group), for error sentences */
    double hello_ms;             /* round trip of that HELLO */
} cli;

/* One verb. Adding a verb = one row in cli_verbs.c's table + its function. */
typedef struct cli_verb {
    const char *name;
    const char *args;     /* synopsis after the verb, e.g. "[-c COUNT]" */
    const char *summary;  /* one line for the verb list */
    const char *options;  /* option lines for `help VERB` (may be NULL) */
    const char *examples; /* example lines for `help VERB` (may be NULL) */
    int (*run)(cli *x, int argc, char **argv);
} cli_verb;

/* The verbs (cli_<group>.c). */
int cli_ping(cli *x, int argc, char **argv);
int cli_hello(cli *x, int argc, char **argv);
int cli_produce(cli *x, int argc, char **argv);
int cli_fetch(cli *x, int argc, char **argv);
int cli_get(cli *x, int argc, char **argv);
int cli_scan(cli *x, int argc, char **argv);
int cli_topics(cli *x, int argc, char **argv);
int cli_stats(cli *x, int argc, char **argv);
int cli_groups(cli *x, int argc, char **argv);
int cli_delete_topic(cli *x, int argc, char **argv);
int cli_cluster(cli *x, int argc, char **argv);
int cli_topic_config(cli *x, int argc, char **argv);

/* What `groups` does besides listing (cli_admin.c). */
typedef struct cli_group_admin {
    const char *seek;      /* --seek GROUP */
    const char *seek_time; /* --seek-time TIME */
    const char *del;       /* --delete GROUP */
    bool yes;              /* --yes: no question on a terminal */
} cli_group_admin;

/* `groups TOPIC --seek G WHERE|--seek-time TIME` and `--delete G`. */
int cli_group_seek(cli *x, const char *topic, const cli_group_admin *ga, const char *where);
int cli_group_delete(cli *x, const char *topic, const cli_group_admin *ga);

/* Ask on the terminal (stdin and stderr both one) to type `word` to go on.
 * @return 1 when it was typed, 0 when not (or not a terminal: check first
 * with cli_can_ask). */
int cli_confirm(const char *question, const char *word);
bool cli_can_ask(void);
int cli_consume(cli *x, int argc, char **argv);

/* getopt long-option value meaning --help, and the row to put in a verb's
 * option table (cli_getopt adds the global long options itself). */
#define CLI_OPT_HELP 0x1000
#define CLI_HELP_OPTION                                                                            \
    {                                                                                              \
        "help", no_argument, NULL, CLI_OPT_HELP                                                    \
    }

/* What cli_getopt returns besides option characters. */
#define CLI_OPT_END (-1)
#define CLI_OPT_BAD (-2) /* a usage error was printed: return CLI_USAGE */

/*
 * cli_getopt - the next option of a verb's argv (getopt_long, GNU argument
 * order). Global long options (--json, --timeout, --token, --host, --port)
 * are accepted after the verb too and applied here. Unknown options and
 * missing arguments are reported on stderr (CLI_OPT_BAD). --help gives
 * CLI_OPT_HELP. Call with the verb's argc/argv (main has reset getopt).
 */
int cli_getopt(cli *x, int argc, char **argv, const char *shortopts, const struct option *longopts);

/* Print the verb's usage (to stdout) and return CLI_OK: for --help. */
int cli_verb_help(const cli_verb *v);

/* The verb of that name in the table (cli_verbs.c), or NULL. */
const cli_verb *cli_find_verb(const char *name);

/* Say on stderr that `name` is no verb, suggesting a close one.
 * @return CLI_USAGE. */
int cli_unknown_verb(const char *name);

/* The usage: the verbs, the global options, the environment. */
void cli_print_usage(FILE *f);

/* Report a command-line error of the running verb: "krappy VERB: <msg>" and a
 * hint to run `krappy VERB --help`, on stderr. @return CLI_USAGE. */
__attribute__((format(printf, 2, 3))) int cli_usage_error(const cli *x, const char *fmt, ...);

/* Report a failure: "krappy: <msg>" on stderr. @return CLI_FAIL. */
__attribute__((format(printf, 2, 3))) int cli_fail(const cli *x, const char *fmt, ...);

/* The options of a verb that has none but --help. @return -1 to go on,
 * else the verb's exit status (its help shown, or a bad option said). */
int cli_only_help_option(cli *x, int argc, char **argv);

/* The start of a verb with no option but --help and no argument, that
 * talks to the server: the options and arguments checked, then connected
 * (cli_connect). @return -1 to go on, else the verb's exit status. */
int cli_plain_connect(cli *x, int argc, char **argv);

/* Refuse positional arguments left after the options. */
int cli_no_args(cli *x, int argc, char **argv);

/*
 * cli_connect - connect to the configured address and send HELLO (with the
 * token), filling x->info and x->hello_ms. Prints the sentence on failure.
 * @return CLI_OK, CLI_FAIL, or CLI_USAGE when KRAPPY_ADDR is malformed.
 */
int cli_connect(cli *x);

/*
 * cli_connect_leader - as cli_connect, to the node that takes writes: in a
 * cluster (given by any node, or a list of them) the leader, found through
 * CLUSTER; a single krappyd is its own.
 */
int cli_connect_leader(cli *x);

/* cli_connect_prefer_leader - the leader when one is found, else (quietly)
 * any node, as cli_connect. */
int cli_connect_prefer_leader(cli *x);

/*
 * cli_client_fail - report a libkrappy error of x->client in the CLI's own
 * voice: what went wrong and what to do, naming x->topic and x->group where
 * they are the cause; never a function, request or field name.
 * @return CLI_FAIL.
 */
int cli_client_fail(cli *x, krappy_err e);

/* Check a topic name before anything is sent and make it x->topic.
 * @return CLI_OK, or CLI_USAGE after saying what a topic name is. */
int cli_use_topic(cli *x, const char *topic);

/* The same for a group name (x->group). */
int cli_use_group(cli *x, const char *group);

/* How long the first HELLO may take before the port is judged not to be
 * krappyd's (an HTTP server, say, waits for more bytes). */
#define CLI_HELLO_TIMEOUT_MS 2000

/* Parse a decimal unsigned number in [min, max]. @return 0 or -1. */
int cli_parse_u64(const char *s, uint64_t min, uint64_t max, uint64_t *out);

/* Parse the value of option `opt` (e.g. "--wait"), a number of
 * milliseconds from min to an hour. @return CLI_OK, or the usage error
 * said (CLI_USAGE). */
int cli_parse_ms(const cli *x, const char *opt, const char *s, uint64_t min, uint64_t *out);

/* Milliseconds on the monotonic clock, with sub-millisecond precision. */
double cli_now_ms(void);

/* Sleep for ms milliseconds, returning early (1) when SIGINT arrived. */
int cli_sleep_ms(double ms);

/* 1 once SIGINT has been received (cli_catch_sigint must have run). */
int cli_interrupted(void);

/* Let SIGINT stop a loop (e.g. ping) instead of killing the process. */
void cli_catch_sigint(void);

/* From now on SIGINT also shuts down the socket fd (-1: none), so that a
 * call blocked on it (a long poll) returns at once; the verb then sees
 * cli_interrupted() and ends normally. */
void cli_interrupt_closes(int fd);

/* Format milliseconds the way ping(8) does: 3 significant digits ("0.045",
 * "1.23", "12.3", "123"). Returns buf. */
const char *cli_fmt_ms(char *buf, size_t len, double ms);

/* Format a byte count with a binary unit ("16 MiB", "1.5 KiB", "512 B"). */
const char *cli_fmt_bytes(char *buf, size_t len, uint64_t bytes);

/* ---- events on the terminal and in JSON (cli_output.c) ---- */

/* A timestamp (ms since the epoch) as ISO-8601 UTC with milliseconds,
 * "2024-05-01T12:00:00.123Z" (CLI_TS_LEN bytes are enough). Returns buf. */
#define CLI_TS_LEN 40
const char *cli_fmt_ts(char *buf, size_t len, uint64_t ms);

/*
 * cli_parse_time - a time as people write it, in UTC unless it says
 * otherwise: 2026-12-06 (midnight UTC), 2026-12-06T10:00Z,
 * 2026-12-06T10:00:30Z, 2026-12-06T10:00:30.250Z, 2026-12-06T11:00+01:00.
 * @return 0 and *ms (since the epoch), or -1 when s is none of these.
 */
int cli_parse_time(const char *s, uint64_t *ms);

/* Text on one line: tab and newline as \t and \n, other control
 * characters and bytes that are not UTF-8 as \xNN. */
void cli_put_text(FILE *f, const uint8_t *s, size_t n);

/* A key as people read it: text as text (cli_put_text), bytes as h'hex',
 * no key as "-"; padded with spaces to `width` columns. */
void cli_put_key(FILE *f, int has_key, int is_text, const uint8_t *key, size_t len, size_t width);

/* Columns cli_put_key takes for that key (before padding). */
size_t cli_key_width(int has_key, int is_text, const uint8_t *key, size_t len);

/* A CBOR value on one line: a text string as its text (cli_put_text),
 * anything else in diagnostic notation (RFC 8949 section 8). */
void cli_put_value(FILE *f, const uint8_t *v, size_t n);

/* Widest key column before keys are no longer padded to line up. */
#define CLI_KEY_COLUMN_MAX 32

/* Decimal digits of v. */
int cli_digits(uint64_t v);

/* One event on one line, as fetch and consume show it: OFFSET (right-aligned
 * in offset_width columns)  TIME  KEY (padded to *key_width, which widens
 * up to CLI_KEY_COLUMN_MAX as longer keys come)  VALUE [  headers MAP]. */
void cli_print_event(FILE *f, const krappy_event *e, int offset_width, size_t *key_width,
                     bool headers);

/* "key":"text" / "key":"<hex>","key_is_hex":true / "key":null. */
void cli_json_key(FILE *f, int has_key, int is_text, const uint8_t *key, size_t len);

/* A CBOR value as JSON (byte strings as hex strings); null if it cannot be
 * shown. */
void cli_json_cbor(FILE *f, const uint8_t *v, size_t n);

/* One event as a JSON line: {"offset","ts","key"[,"key_is_hex"],"value"
 * [,"headers"]}. */
void cli_json_event(FILE *f, const krappy_event *e);

/* Hex digits (upper or lower case, even count) to bytes, malloc'd (free
 * it). @return 0, or -1 when s is not hex. */
int cli_parse_hex(const char *s, uint8_t **out, size_t *len);

#endif
