/*
 * client/cli_produce.c - `krappy produce`: events from the command line or
 * from stdin, published in pipelined batches.
 *
 * Events are added to a batch until it holds --batch events or would no
 * longer fit the server's max_frame; then it is sent with
 * krappy_publish_send and the next one is built in the same memory. Up to
 * --pipeline acknowledged batches are in flight; batches sent with ack
 * "none" have no acknowledgement, so at the end a PING confirms them
 * (krappy_publish_confirm). With --idempotent the batches go through a
 * krappy_producer handle instead, which numbers them and sends them again
 * over a new connection when one is lost: each is stored once.
 */
#include "client/cli.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "proto/json_parse.h"
#include "util/buf.h"
#include "util/json.h"
#include "util/utf8.h"

/* Defaults of --batch and --pipeline. */
#define PRODUCE_DEFAULT_BATCH    1000
#define PRODUCE_DEFAULT_PIPELINE 8

/* Room kept in a PUBLISH for what krappy_batch_size does not count. */
#define PRODUCE_FRAME_SLACK 64

/* The progress line is redrawn at most this often. */
#define PRODUCE_PROGRESS_MS 250.0

/* The largest --value-file read (max_frame is at most 1 GiB). */
#define PRODUCE_FILE_MAX (1024u << 20)

/* The longest --header NAME=VALUE list. */
#define PRODUCE_MAX_HEADERS 32

/* JSON values and lines are encoded into a buffer of at most this size. */
#define PRODUCE_SCRATCH_MAX (64u << 20)

typedef struct produce {
    cli *x;
    const char *topic;
    krappy_ack ack;
    uint64_t batch_max;
    uint64_t pipeline;
    size_t byte_limit;   /* largest batch payload */
    size_t event_limit;  /* largest event the server takes */
    bool json_values;    /* -J */
    const char *kdelim;  /* -K: between key and value; NULL: '=' in arguments,
                            TAB on stdin */
    uint64_t keyless;    /* stdin lines without the delimiter: no key */
    uint64_t keyless_eq; /* ... of which hold an '=' (KEY=VALUE meant?) */
    const char *hdr[PRODUCE_MAX_HEADERS];
    size_t n_hdr;
    krappy_batch *b;
    kr_buf scratch;

    uint64_t sent, batches; /* events and batches handed to the library */
    uint64_t stored;        /* events acknowledged */
    krappy_producer *idem;  /* --idempotent: the handle that publishes */
    const char *idem_id;
    bool has_seq; /* --seq */
    uint64_t from_seq;
    uint64_t dup_batches, dup_events; /* acknowledged as stored before */
    bool have_range;
    uint64_t first, last; /* offsets acknowledged, first and last */
    bool progress;        /* stderr is a terminal and input is long */
    double t0, shown_at;
} produce;

static const char *ack_name(krappy_ack a)
{
    return a == KRAPPY_ACK_SYNC ? "sync" : a == KRAPPY_ACK_NONE ? "none" : "write";
}

static void show_progress(produce *p, bool force)
{
    if (!p->progress)
        return;
    double now = cli_now_ms();
    if (!force && now - p->shown_at < PRODUCE_PROGRESS_MS)
        return;
    double secs = (now - p->t0) / 1000.0;
    fprintf(stderr, "\r%llu events sent, %.0f events/s ", (unsigned long long)p->sent,
            secs > 0 ? (double)p->sent / secs : 0.0);
    p->shown_at = now;
}

static void clear_progress(produce *p)
{
    if (p->progress && p->shown_at > p->t0)
        fputs("\r\033[K", stderr);
}

static krappy_err recv_one(produce *p);

/* A batch acknowledged: count its events and the offsets they got. */
static void took(produce *p, uint64_t first, uint64_t count)
{
    p->stored += count;
    if (count > 0 && first != UINT64_MAX) {
        if (!p->have_range)
            p->first = first;
        p->last = first + count - 1;
        p->have_range = true;
    }
}

/* The idempotent handle's acknowledgements. */
static void idem_acked(void *arg, const krappy_producer_ack *a)
{
    produce *p = arg;
    took(p, a->first, a->count);
    if (a->duplicate) {
        p->dup_batches++;
        p->dup_events += a->count;
    }
}

/*
 * A failure of the library: one sentence, saying how much was stored. When
 * the server refused one batch and kept the connection, the batches sent
 * after it are still acknowledged (or refused) one by one: collect those
 * first, so the count is right.
 */
static int produce_fail(produce *p, krappy_err e)
{
    char msg[600];
    snprintf(msg, sizeof msg, "%s",
             p->idem != NULL ? krappy_producer_errmsg(p->idem)
                             : krappy_client_errmsg(p->x->client));
    clear_progress(p);
    if (p->idem != NULL)
        return cli_fail(p->x, "%s (%llu of the %llu event%s sent %s stored)", msg,
                        (unsigned long long)p->stored, (unsigned long long)p->sent,
                        p->sent == 1 ? "" : "s", p->stored == 1 ? "was" : "were");
    if (p->sent == 0 || p->ack == KRAPPY_ACK_NONE)
        return cli_client_fail(p->x, e);
    while (krappy_connected(p->x->client) && krappy_in_flight(p->x->client) > 0 &&
           recv_one(p) != KRAPPY_E_TIMEOUT)
        ;
    return cli_fail(p->x, "%s (%llu of the %llu event%s sent %s stored)", msg,
                    (unsigned long long)p->stored, (unsigned long long)p->sent,
                    p->sent == 1 ? "" : "s", p->stored == 1 ? "was" : "were");
}

/* Receive one acknowledgement. */
static krappy_err recv_one(produce *p)
{
    krappy_publish_result r;
    krappy_err e = krappy_publish_recv(p->x->client, &r);
    if (e != KRAPPY_OK)
        return e;
    took(p, r.first, r.count);
    return KRAPPY_OK;
}

/* Send the batch (if any), then keep at most `pipeline` in flight. */
static krappy_err flush_batch(produce *p)
{
    krappy_err e;
    size_t n = krappy_batch_count(p->b);
    if (n > 0 && p->idem != NULL) {
        /* The handle keeps --pipeline (at most 5) in flight itself. */
        if ((e = krappy_producer_send(p->idem, p->b, NULL)) != KRAPPY_OK)
            return e;
        p->sent += n;
        p->batches++;
        krappy_batch_reset(p->b);
        show_progress(p, false);
        return KRAPPY_OK;
    }
    if (n > 0) {
        if ((e = krappy_publish_send(p->x->client, p->b, p->ack, NULL)) != KRAPPY_OK)
            return e;
        p->sent += n;
        p->batches++;
        krappy_batch_reset(p->b);
    }
    while (krappy_in_flight(p->x->client) >= p->pipeline)
        if ((e = recv_one(p)) != KRAPPY_OK)
            return e;
    show_progress(p, false);
    return KRAPPY_OK;
}

/* Everything sent and acknowledged (or, for ack none, confirmed). */
static krappy_err finish(produce *p)
{
    krappy_err e;
    if ((e = flush_batch(p)) != KRAPPY_OK)
        return e;
    if (p->idem != NULL)
        return krappy_producer_flush(p->idem);
    while (krappy_in_flight(p->x->client) > 0)
        if ((e = recv_one(p)) != KRAPPY_OK)
            return e;
    if (p->ack == KRAPPY_ACK_NONE && p->sent > 0) {
        if ((e = krappy_publish_confirm(p->x->client)) != KRAPPY_OK)
            return e;
        p->stored = p->sent;
    }
    return KRAPPY_OK;
}

/* How a VALUE is given. */
typedef enum vkind { VK_TEXT, VK_JSON, VK_CBOR, VK_TOMBSTONE, VK_BYTES } vkind;

/*
 * Add one event, sending the batch first when the event would not fit it
 * and afterwards when it is full. VK_JSON values are encoded here; a bad
 * one is reported in *why (KRAPPY_E_USAGE).
 */
static krappy_err add_event(produce *p, krappy_key_type kt, const void *key, size_t klen, vkind vk,
                            const void *value, size_t vlen, const uint64_t *ts,
                            const kr_json_event *jev, char *why, size_t whylen)
{
    krappy_err e;
    size_t hdr_bytes = 0;

    if (vk == VK_TEXT && !kr_utf8_valid(value, vlen)) {
        snprintf(why, whylen, "the value is not valid UTF-8 text");
        return KRAPPY_E_USAGE;
    }
    if (kt == KRAPPY_KEY_TEXT && !kr_utf8_valid(key, klen)) {
        snprintf(why, whylen, "the key is not valid UTF-8 text");
        return KRAPPY_E_USAGE;
    }
    if (vk == VK_JSON) {
        kr_buf_reset(&p->scratch);
        if ((e = kr_json_to_cbor(value, vlen, &p->scratch, why, whylen)) != KRAPPY_OK)
            return e;
        value = p->scratch.data;
        vlen = p->scratch.len;
        vk = VK_CBOR;
    }
    for (size_t i = 0; i < p->n_hdr; i++)
        hdr_bytes += strlen(p->hdr[i]) + 18;
    if (jev != NULL)
        hdr_bytes += jev->headers_len + 9;
    /* The server refuses an event whose delivered form exceeds max_frame -
     * 1024; key and value alone already tell for most. */
    if (klen + vlen > p->event_limit) {
        snprintf(why, whylen,
                 "the event has %zu bytes of key and value; the server takes at most %zu "
                 "bytes per event (its max_frame - %u)",
                 klen + vlen, p->event_limit, (unsigned)KRAPPY_REPLY_SLACK_BYTES);
        return KRAPPY_E_USAGE;
    }
    size_t est = klen + vlen + hdr_bytes + 64;
    if (krappy_batch_count(p->b) > 0 && krappy_batch_size(p->b) + est > p->byte_limit &&
        (e = flush_batch(p)) != KRAPPY_OK)
        return e;

    if (vk == VK_TEXT)
        e = krappy_batch_add_text(p->b, kt, key, klen, value, vlen);
    else if (vk == VK_BYTES)
        e = krappy_batch_add_bytes(p->b, kt, key, klen, value, vlen);
    else if (vk == VK_TOMBSTONE)
        e = krappy_batch_add(p->b, kt, key, klen, NULL, 0);
    else
        e = krappy_batch_add(p->b, kt, key, klen, value, vlen);
    if (e == KRAPPY_OK && ts != NULL)
        e = krappy_batch_set_ts(p->b, *ts);
    for (size_t i = 0; e == KRAPPY_OK && i < p->n_hdr; i++) {
        const char *eq = strchr(p->hdr[i], '=');
        e = krappy_batch_add_header(p->b, p->hdr[i], (size_t)(eq - p->hdr[i]), eq + 1,
                                    strlen(eq + 1));
    }
    if (jev != NULL && jev->headers != NULL) {
        size_t pos = 0, nl, vl;
        const char *name;
        const uint8_t *val;
        while (e == KRAPPY_OK &&
               krappy_header_next(jev->headers, jev->headers_len, &pos, &name, &nl, &val, &vl) == 1)
            e = krappy_batch_add_header(p->b, name, nl, val, vl);
    }
    if (e != KRAPPY_OK) {
        snprintf(why, whylen, "%s", krappy_batch_errmsg(p->b));
        return e;
    }
    if (krappy_batch_count(p->b) >= p->batch_max)
        return flush_batch(p);
    return KRAPPY_OK;
}

/* The delimiter of an argument KEY=VALUE (or -K's). */
static const char *arg_delim(const produce *p)
{
    return p->kdelim != NULL ? p->kdelim : "=";
}

/* The events of KEY=VALUE arguments and --delete options. */
static int from_args(produce *p, char **args, int n_args, char **dels, size_t n_dels)
{
    char why[256];
    krappy_err e;
    size_t dl = strlen(arg_delim(p));

    for (int i = 0; i < n_args; i++) {
        const char *eq = strstr(args[i], arg_delim(p));
        e = add_event(p, KRAPPY_KEY_TEXT, args[i], (size_t)(eq - args[i]),
                      p->json_values ? VK_JSON : VK_TEXT, eq + dl, strlen(eq + dl), NULL, NULL, why,
                      sizeof why);
        if (e == KRAPPY_E_USAGE && why[0] != '\0')
            return cli_fail(p->x, "argument '%s': %s", args[i], why);
        if (e != KRAPPY_OK)
            return produce_fail(p, e);
    }
    for (size_t i = 0; i < n_dels; i++) {
        e = add_event(p, KRAPPY_KEY_TEXT, dels[i], strlen(dels[i]), VK_TOMBSTONE, NULL, 0, NULL,
                      NULL, why, sizeof why);
        if (e == KRAPPY_E_USAGE && why[0] != '\0')
            return cli_fail(p->x, "--delete '%s': %s", dels[i], why);
        if (e != KRAPPY_OK)
            return produce_fail(p, e);
    }
    return CLI_OK;
}

/* A file's bytes, read whole (binary safe). @return 0, or -1 after saying
 * why. Files larger than a frame can ever be are refused before reading. */
static int read_file(cli *x, const char *path, uint8_t **data, size_t *len)
{
    FILE *f = fopen(path, "rb");
    *data = NULL;
    *len = 0;
    if (f == NULL)
        return cli_fail(x, "cannot open --value-file %s: %s", path, strerror(errno)), -1;
    size_t cap = 0;
    for (;;) {
        if (*len == cap) {
            if (cap >= PRODUCE_FILE_MAX) {
                fclose(f);
                return cli_fail(x, "--value-file %s is larger than any event can be (%u MiB)", path,
                                (unsigned)(PRODUCE_FILE_MAX >> 20)),
                       -1;
            }
            cap = cap ? cap * 2 : 65536;
            uint8_t *n = realloc(*data, cap);
            if (n == NULL) {
                fclose(f);
                return cli_fail(x, "out of memory reading --value-file %s", path), -1;
            }
            *data = n;
        }
        size_t got = fread(*data + *len, 1, cap - *len, f);
        *len += got;
        if (got == 0)
            break;
    }
    int bad = ferror(f);
    fclose(f);
    if (bad)
        return cli_fail(x, "cannot read --value-file %s", path), -1;
    return 0;
}

/* The event of --value-file: its bytes as a byte string (with -J, its JSON
 * as CBOR), under --key or no key. */
static int from_file(produce *p, const char *path, const uint8_t *data, size_t len, const char *key)
{
    char why[256];
    krappy_err e =
        add_event(p, key ? KRAPPY_KEY_TEXT : KRAPPY_KEY_NONE, key, key ? strlen(key) : 0,
                  p->json_values ? VK_JSON : VK_BYTES, data, len, NULL, NULL, why, sizeof why);
    if (e == KRAPPY_E_USAGE && why[0] != '\0')
        return cli_fail(p->x, "--value-file %s: %s", path, why);
    return e == KRAPPY_OK ? CLI_OK : produce_fail(p, e);
}

/* One event per stdin line. */
static int from_stdin(produce *p)
{
    char *line = NULL;
    size_t cap = 0;
    uint64_t lineno = 0;
    char why[300];
    ssize_t got;
    kr_buf js;
    kr_json_event jev;
    int rc = CLI_OK;

    kr_buf_init(&js, PRODUCE_SCRATCH_MAX);
    if (isatty(STDIN_FILENO))
        fprintf(stderr, "krappy: reading events from the terminal (%s a line); Ctrl-D ends\n",
                p->x->json ? "a JSON object" : "KEY<TAB>VALUE or VALUE");
    while ((got = getline(&line, &cap, stdin)) >= 0) {
        size_t n = (size_t)got;
        lineno++;
        if (n > 0 && line[n - 1] == '\n')
            n--;
        if (n > 0 && line[n - 1] == '\r')
            n--;
        if (n == 0)
            continue;
        krappy_err e;
        why[0] = '\0';
        if (p->x->json) {
            e = kr_json_event_parse(line, n, &js, &jev, why, sizeof why);
            if (e == KRAPPY_OK)
                e = add_event(p,
                              !jev.has_key       ? KRAPPY_KEY_NONE
                              : jev.key_is_bytes ? KRAPPY_KEY_BYTES
                                                 : KRAPPY_KEY_TEXT,
                              jev.key, jev.key_len, VK_CBOR, jev.value, jev.value_len,
                              jev.has_ts ? &jev.ts : NULL, &jev, why, sizeof why);
        } else {
            const char *d = p->kdelim != NULL ? p->kdelim : "\t";
            size_t dl = strlen(d);
            const char *at = memmem(line, n, d, dl);
            vkind vk = p->json_values ? VK_JSON : VK_TEXT;
            if (at == NULL) {
                p->keyless++;
                p->keyless_eq += memchr(line, '=', n) != NULL;
                e = add_event(p, KRAPPY_KEY_NONE, NULL, 0, vk, line, n, NULL, NULL, why,
                              sizeof why);
            } else {
                e = add_event(p, KRAPPY_KEY_TEXT, line, (size_t)(at - line), vk, at + dl,
                              n - (size_t)(at - line) - dl, NULL, NULL, why, sizeof why);
            }
        }
        if (e == KRAPPY_E_USAGE && why[0] != '\0') {
            /* Publish what came before the bad line, then say where it is. */
            krappy_err fe = finish(p);
            clear_progress(p);
            if (fe != KRAPPY_OK)
                rc = produce_fail(p, fe);
            else if (p->sent == 0)
                rc = cli_fail(p->x, "stdin line %llu: %s; nothing was published",
                              (unsigned long long)lineno, why);
            else
                rc = cli_fail(p->x, "stdin line %llu: %s; the %llu event%s before it %s published",
                              (unsigned long long)lineno, why, (unsigned long long)p->sent,
                              p->sent == 1 ? "" : "s", p->sent == 1 ? "was" : "were");
            goto done;
        }
        if (e != KRAPPY_OK) {
            rc = produce_fail(p, e);
            goto done;
        }
    }
    if (ferror(stdin))
        rc = cli_fail(p->x, "cannot read stdin (line %llu)", (unsigned long long)lineno + 1);
done:
    free(line);
    kr_buf_free(&js);
    return rc;
}

/* With --idempotent: who produced, and what was stored before (--json). */
static void print_idem_json(const produce *p)
{
    krappy_producer_info in;
    krappy_producer_info_get(p->idem, &in);
    printf(",\"idempotent\":");
    kr_json_str_file(stdout, p->idem_id, strlen(p->idem_id));
    printf(",\"epoch\":%u,\"next_seq\":%llu,\"duplicates\":%llu,\"duplicate_events\":%llu,"
           "\"resent\":%llu,\"reconnects\":%llu",
           (unsigned)in.epoch, (unsigned long long)in.next_seq, (unsigned long long)p->dup_batches,
           (unsigned long long)p->dup_events, (unsigned long long)in.resent,
           (unsigned long long)in.reconnects);
}

/* ... in words, after the summary line. */
static void print_idem_text(const produce *p)
{
    krappy_producer_info in;
    krappy_producer_info_get(p->idem, &in);
    printf("idempotent producer %s (epoch %u, next seq %llu)", p->idem_id, (unsigned)in.epoch,
           (unsigned long long)in.next_seq);
    if (p->dup_batches > 0)
        printf(": %llu batch%s (%llu event%s) had been stored before and %s not stored again",
               (unsigned long long)p->dup_batches, p->dup_batches == 1 ? "" : "es",
               (unsigned long long)p->dup_events, p->dup_events == 1 ? "" : "s",
               p->dup_batches == 1 ? "was" : "were");
    if (in.reconnects > 0)
        printf("; %llu reconnect%s, %llu batch%s sent again", (unsigned long long)in.reconnects,
               in.reconnects == 1 ? "" : "s", (unsigned long long)in.resent,
               in.resent == 1 ? "" : "es");
    printf("\n");
}

/* Say what was done with stdin lines that had no key delimiter: events
 * without a key - which is not what "alice=shipped" meant, most likely. */
static void say_keyless(const produce *p)
{
    if (p->keyless == 0)
        return;
    bool one = p->keyless == 1;
    char delim[40];
    if (p->kdelim == NULL)
        snprintf(delim, sizeof delim, "TAB");
    else
        snprintf(delim, sizeof delim, "'%.32s'", p->kdelim);
    fprintf(stderr, "krappy: %llu event%s no key (%s no %s between key and value",
            (unsigned long long)p->keyless, one ? " has" : "s have",
            one ? "its line has" : "their lines have", delim);
    if (p->keyless_eq > 0 && p->kdelim == NULL)
        fprintf(stderr, "; to split KEY=VALUE lines at '=', give -K =");
    fputs(")\n", stderr);
}

static void print_summary(produce *p)
{
    double secs = (cli_now_ms() - p->t0) / 1000.0;
    if (p->x->json) {
        printf("{\"topic\":");
        kr_json_str_file(stdout, p->topic, strlen(p->topic));
        printf(",\"events\":%llu,\"batches\":%llu,\"ack\":\"%s\"", (unsigned long long)p->sent,
               (unsigned long long)p->batches, ack_name(p->ack));
        if (p->have_range)
            printf(",\"first\":%llu,\"last\":%llu", (unsigned long long)p->first,
                   (unsigned long long)p->last);
        else
            printf(",\"first\":null,\"last\":null");
        if (p->idem != NULL)
            print_idem_json(p);
        printf(",\"seconds\":%.3f}\n", secs);
        return;
    }
    const char *s = p->sent == 1 ? "" : "s";
    if (p->sent == 0)
        printf("produced no events to %s (the input was empty)\n", p->topic);
    else if (!p->have_range)
        printf("produced %llu event%s to %s (ack none: the server does not report offsets)\n",
               (unsigned long long)p->sent, s, p->topic);
    else if (p->first == p->last)
        printf("produced %llu event%s to %s at offset %llu\n", (unsigned long long)p->sent, s,
               p->topic, (unsigned long long)p->first);
    else
        printf("produced %llu event%s to %s at offsets %llu..%llu\n", (unsigned long long)p->sent,
               s, p->topic, (unsigned long long)p->first, (unsigned long long)p->last);
    if (p->idem != NULL)
        print_idem_text(p);
    say_keyless(p);
}

/* Check a -J value or a KEY=VALUE argument before connecting. */
static int check_arg(cli *x, produce *p, const char *arg)
{
    const char *eq = strstr(arg, arg_delim(p));
    char why[256];
    if (eq == NULL && p->kdelim != NULL)
        return cli_usage_error(x, "argument '%s' has no key delimiter '%s' (-K)", arg, p->kdelim);
    if (eq == NULL)
        return cli_usage_error(x,
                               "argument '%s' is not KEY=VALUE (to read events from stdin, "
                               "give no KEY=VALUE; an argument that starts with '-' goes after "
                               "--)",
                               arg);
    if ((size_t)(eq - arg) > KRAPPY_MAX_KEY_BYTES)
        return cli_usage_error(x, "the key of '%.20s...' is longer than %u bytes", arg,
                               (unsigned)KRAPPY_MAX_KEY_BYTES);
    if (p->json_values) {
        const char *v = eq + strlen(arg_delim(p));
        kr_buf_reset(&p->scratch);
        if (kr_json_to_cbor(v, strlen(v), &p->scratch, why, sizeof why) != KRAPPY_OK)
            return cli_usage_error(x, "the value of '%s' is not JSON: %s", arg, why);
    }
    return CLI_OK;
}

int cli_produce(cli *x, int argc, char **argv)
{
    static const struct option lo[] = {
        {"ack", required_argument, NULL, 'a'},
        {"batch", required_argument, NULL, 'b'},
        {"pipeline", required_argument, NULL, 'P'},
        {"producer", required_argument, NULL, 'I'},
        {"idempotent", required_argument, NULL, 'i'},
        {"seq", required_argument, NULL, 'S'},
        {"delete", required_argument, NULL, 'd'},
        {"header", required_argument, NULL, 'H'},
        {"json-values", no_argument, NULL, 'J'},
        {"key-delimiter", required_argument, NULL, 'K'},
        {"value-file", required_argument, NULL, 'F'},
        {"key", required_argument, NULL, 'k'},
        CLI_HELP_OPTION,
        {NULL, 0, NULL, 0},
    };
    produce p;
    const char *value_file = NULL, *file_key = NULL;
    uint8_t *file = NULL;
    size_t file_len = 0;
    char *dels[256];
    size_t n_dels = 0;
    char producer_buf[64];
    const char *producer = NULL;
    int c, rc;
    krappy_err e;

    memset(&p, 0, sizeof p);
    p.x = x;
    p.batch_max = PRODUCE_DEFAULT_BATCH;
    p.pipeline = PRODUCE_DEFAULT_PIPELINE;
    kr_buf_init(&p.scratch, PRODUCE_SCRATCH_MAX);

    while ((c = cli_getopt(x, argc, argv, "a:b:P:d:H:JK:k:", lo)) != CLI_OPT_END) {
        switch (c) {
        case 'a':
            if (strcmp(optarg, "write") == 0)
                p.ack = KRAPPY_ACK_WRITE;
            else if (strcmp(optarg, "sync") == 0)
                p.ack = KRAPPY_ACK_SYNC;
            else if (strcmp(optarg, "none") == 0)
                p.ack = KRAPPY_ACK_NONE;
            else
                return cli_usage_error(x, "--ack \"%s\" is not write, sync or none", optarg);
            break;
        case 'b':
            if (cli_parse_u64(optarg, 1, 1000000, &p.batch_max) < 0)
                return cli_usage_error(x, "--batch \"%s\" is not a number from 1 to 1000000",
                                       optarg);
            break;
        case 'P':
            if (cli_parse_u64(optarg, 1, 1024, &p.pipeline) < 0)
                return cli_usage_error(x, "--pipeline \"%s\" is not a number from 1 to 1024",
                                       optarg);
            break;
        case 'I':
            if (optarg[0] == '\0' || strlen(optarg) > KRAPPY_MAX_NAME_BYTES)
                return cli_usage_error(x, "--producer needs an id of 1 to %d bytes",
                                       KRAPPY_MAX_NAME_BYTES);
            producer = optarg;
            break;
        case 'i':
            if (optarg[0] == '\0' || strlen(optarg) > KRAPPY_MAX_NAME_BYTES)
                return cli_usage_error(x, "--idempotent needs a producer id of 1 to %d bytes",
                                       KRAPPY_MAX_NAME_BYTES);
            p.idem_id = optarg;
            break;
        case 'S':
            if (cli_parse_u64(optarg, 0, UINT64_MAX, &p.from_seq) < 0)
                return cli_usage_error(x, "--seq \"%s\" is not a sequence number", optarg);
            p.has_seq = true;
            break;
        case 'd':
            /* "-dash=1" is not a tombstone for "ash=1": a key to delete is
             * the next argument (or --delete=KEY). */
            if (optarg != argv[optind - 1] && argv[optind - 1][1] != '-')
                return cli_usage_error(x,
                                       "'%s': -d takes the key to delete as the next argument "
                                       "(-d KEY); an event whose key starts with '-' goes after "
                                       "--, as in: krappy produce TOPIC -- %s",
                                       argv[optind - 1], argv[optind - 1]);
            if (n_dels == sizeof dels / sizeof dels[0])
                return cli_usage_error(x, "at most %zu --delete options",
                                       sizeof dels / sizeof dels[0]);
            dels[n_dels++] = optarg;
            break;
        case 'H':
            if (strchr(optarg, '=') == NULL)
                return cli_usage_error(x, "--header \"%s\" is not NAME=VALUE", optarg);
            if (p.n_hdr == PRODUCE_MAX_HEADERS)
                return cli_usage_error(x, "at most %d --header options", PRODUCE_MAX_HEADERS);
            p.hdr[p.n_hdr++] = optarg;
            break;
        case 'J':
            p.json_values = true;
            break;
        case 'K':
            if (optarg[0] == '\0')
                return cli_usage_error(x, "-K needs a delimiter of at least one character");
            p.kdelim = optarg;
            break;
        case 'F':
            value_file = optarg;
            break;
        case 'k':
            file_key = optarg;
            break;
        case CLI_OPT_HELP:
            return cli_verb_help(x->verb);
        default:
            return CLI_USAGE;
        }
    }
    if (optind >= argc)
        return cli_usage_error(x, "name the topic to produce to");
    p.topic = argv[optind++];
    if ((rc = cli_use_topic(x, p.topic)) != CLI_OK)
        goto out;
    int n_args = argc - optind;
    char **args = argv + optind;
    if (x->json && (n_args > 0 || n_dels > 0 || value_file != NULL))
        return cli_usage_error(x, "--json reads JSON lines from stdin; it takes no KEY=VALUE, "
                                  "--delete or --value-file (use -J for JSON values)");
    if (file_key != NULL && value_file == NULL)
        return cli_usage_error(x, "--key goes with --value-file (arguments are KEY=VALUE)");
    if (value_file != NULL && (n_args > 0 || n_dels > 0))
        return cli_usage_error(x, "--value-file publishes one event: give no KEY=VALUE or "
                                  "--delete with it");
    for (int i = 0; i < n_args; i++)
        if ((rc = check_arg(x, &p, args[i])) != CLI_OK)
            goto out;
    if (p.idem_id != NULL && producer != NULL)
        return cli_usage_error(x, "give --idempotent ID or --producer ID, not both");
    if (p.idem_id != NULL && p.ack == KRAPPY_ACK_NONE)
        return cli_usage_error(x, "--idempotent needs --ack write or sync: with none nothing "
                                  "tells which batches to send again");
    if (p.has_seq && p.idem_id == NULL)
        return cli_usage_error(x, "--seq numbers the batches of an --idempotent producer");
    if (p.idem_id != NULL && p.pipeline > KRAPPY_PRODUCER_MAX_UNACKED)
        p.pipeline = KRAPPY_PRODUCER_MAX_UNACKED; /* what the server remembers */
    if (producer == NULL) {
        snprintf(producer_buf, sizeof producer_buf, "krappy-cli-%ld", (long)getpid());
        producer = producer_buf;
    }

    if (value_file != NULL && read_file(x, value_file, &file, &file_len) < 0) {
        rc = CLI_FAIL;
        goto out;
    }
    if ((rc = cli_connect_leader(x)) != CLI_OK)
        goto out;
    p.byte_limit = (size_t)x->info.max_frame - KRAPPY_FRAME_MIN_SIZE - PRODUCE_FRAME_SLACK;
    if (x->info.max_frame < 4096) /* an old or odd server: assume the default */
        p.byte_limit = KRAPPY_DEFAULT_MAX_FRAME - KRAPPY_FRAME_MIN_SIZE - PRODUCE_FRAME_SLACK;
    p.event_limit =
        p.byte_limit + PRODUCE_FRAME_SLACK + KRAPPY_FRAME_MIN_SIZE - KRAPPY_REPLY_SLACK_BYTES;
    if (p.idem_id != NULL) {
        krappy_opts co = {.timeout_ms = x->timeout_ms,
                          .connect_timeout_ms = x->timeout_ms > 0 ? x->timeout_ms : 0,
                          .token = x->token,
                          .client_name = "krappy-cli/" KRAPPY_VERSION};
        krappy_producer_opts po = {.client = &co,
                                   .ack = p.ack,
                                   .max_unacked = (size_t)p.pipeline,
                                   .on_ack = idem_acked,
                                   .arg = &p,
                                   .use_from_seq = p.has_seq,
                                   .from_seq = p.from_seq};
        if ((e = krappy_producer_open(x->addr, p.topic, p.idem_id, &po, &p.idem)) != KRAPPY_OK) {
            rc = cli_fail(x, "%s", krappy_producer_errmsg(p.idem));
            goto out;
        }
    } else if ((e = krappy_register_producer(x->client, p.topic, producer, NULL)) != KRAPPY_OK) {
        rc = cli_client_fail(x, e);
        goto out;
    }
    if ((p.b = krappy_batch_new()) == NULL) {
        rc = cli_fail(x, "out of memory");
        goto out;
    }
    p.t0 = p.shown_at = cli_now_ms();
    bool from_stdin_lines = n_args == 0 && n_dels == 0 && value_file == NULL;
    p.progress = from_stdin_lines && isatty(STDERR_FILENO) && !isatty(STDIN_FILENO);
    if (value_file != NULL)
        rc = from_file(&p, value_file, file, file_len, file_key);
    else if (from_stdin_lines)
        rc = from_stdin(&p);
    else
        rc = from_args(&p, args, n_args, dels, n_dels);
    if (rc != CLI_OK)
        goto out;
    if ((e = finish(&p)) != KRAPPY_OK) {
        rc = produce_fail(&p, e);
        goto out;
    }
    clear_progress(&p);
    print_summary(&p);
    rc = CLI_OK;
out:
    krappy_producer_free(p.idem);
    free(file);
    krappy_batch_free(p.b);
    kr_buf_free(&p.scratch);
    return rc;
}
