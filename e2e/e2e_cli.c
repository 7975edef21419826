/*
 * e2e/e2e_cli.c - the krappy CLI without traps, against a real krappyd:
 * stdin lines without a key said so, -K, --value-file binary safe, options
 * after the topic (-dash=1 refused, -- honoured), headers read back as
 * text, errors in one voice, the admin port told apart within ~2 s,
 * --start on an existing group, delete-topic and groups --seek/--delete,
 * consume ending once caught up, and bash completion.
 */
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "harness.h"

static e2e_server srv;
static char out[1 << 16];

/* Run `krappy -p PORT ARGS` through sh (stderr folded into out unless the
 * command redirects it). @return its exit status. */
__attribute__((format(printf, 1, 2))) static int cli(const char *fmt, ...)
{
    char args[4096], cmd[4400];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(args, sizeof args, fmt, ap);
    va_end(ap);
    snprintf(cmd, sizeof cmd, "%s -h %s -p %s %s", e2e_cli(), srv.host, srv.port, args);
    return e2e_run(cmd, out, sizeof out);
}

static int setup(void **state)
{
    (void)state;
    return e2e_start_or_external(&srv);
}

static int teardown(void **state)
{
    (void)state;
    if (srv.pid != 0)
        e2e_stop(&srv, 10000);
    return 0;
}

/* stdin and arguments agree: lines without the delimiter are counted and
 * said, with the hint; -K splits arguments and lines alike. */
static void test_key_delimiters(void **state)
{
    (void)state;
    assert_int_equal(cli("produce kd 2>&1 <<'EOF'\nalice=shipped\nplain\nEOF"), 0);
    assert_non_null(strstr(out, "produced 2 events"));
    assert_non_null(strstr(out, "2 events have no key"));
    assert_non_null(strstr(out, "give -K ="));
    assert_int_equal(cli("produce kd 2>/dev/null <<'EOF'\nx=1\nEOF"), 0);
    assert_string_equal(out, "produced 1 event to kd at offset 2\n"); /* the note on stderr */
    assert_int_equal(cli("produce kd -K = 2>&1 <<'EOF'\nalice=shipped\nEOF"), 0);
    assert_null(strstr(out, "no key"));
    assert_int_equal(cli("get kd alice"), 0);
    assert_string_equal(out, "shipped\n");
    assert_int_equal(cli("produce kd -K :: 'bob::paid=yes'"), 0);
    assert_int_equal(cli("get kd bob"), 0);
    assert_string_equal(out, "paid=yes\n");
    assert_int_equal(cli("produce kd -K :: 'carol=x' 2>&1"), 2);
    assert_non_null(strstr(out, "no key delimiter '::'"));
}

/* Options after the topic are options; -d takes no glued key; -- ends
 * them, so a key may start with '-'. */
static void test_options_after_topic(void **state)
{
    (void)state;
    assert_int_equal(cli("produce opt -dash=1 2>&1"), 2);
    assert_non_null(strstr(out, "-d takes the key to delete as the next argument"));
    assert_non_null(strstr(out, "-- -dash=1"));
    assert_int_equal(cli("produce opt a=1 --ack sync"), 0);
    assert_non_null(strstr(out, "produced 1 event to opt"));
    assert_int_equal(cli("produce opt -- -dash=1 -x=2"), 0);
    assert_int_equal(cli("get opt -- -dash"), 0);
    assert_string_equal(out, "1\n");
    assert_int_equal(cli("produce opt -d a"), 0);
    assert_int_equal(cli("get opt a 2>&1"), 1);
    assert_int_equal(cli("produce opt --delete=-x"), 0);
    assert_int_equal(cli("get opt -- -x 2>&1"), 1);
}

/* --value-file: the file's bytes, every one of them, as a byte string. */
static void test_value_file(void **state)
{
    (void)state;
    char path[300], hex[600] = "";
    snprintf(path, sizeof path, "%s/blob", srv.dir[0] ? srv.dir : "/tmp");
    FILE *f = fopen(path, "wb");
    assert_non_null(f);
    for (int i = 0; i < 256; i++) {
        fputc(i, f);
        snprintf(hex + 2 * i, 3, "%02x", i);
    }
    fclose(f);
    assert_int_equal(cli("produce vf --value-file %s --key logo", path), 0);
    assert_int_equal(cli("--json get vf logo"), 0);
    char want[700];
    snprintf(want, sizeof want, "\"value\":\"%s\"", hex);
    assert_non_null(strstr(out, want));
    assert_int_equal(cli("produce vf --value-file %s/nope 2>&1", path), 1);
    assert_non_null(strstr(out, "cannot open --value-file"));
    assert_int_equal(cli("produce vf --key k a=1 2>&1"), 2);
    unlink(path);
}

/* Headers print as text and read back: fetch --json into produce --json
 * copies events, headers (text and bytes), keys and times. */
static void test_headers_round_trip(void **state)
{
    (void)state;
    assert_int_equal(cli("produce hd -H trace=abc-1 -H 'note=caf\xc3\xa9' k=v"), 0);
    assert_int_equal(cli("fetch hd --headers"), 0);
    assert_non_null(strstr(out, "headers trace=abc-1 note=caf\xc3\xa9"));
    assert_int_equal(
        cli("--json produce hd <<'EOF'\n{\"key\":\"b\",\"value\":1,\"headers\":{\"raw\":{\"hex\":"
            "\"00ff\"}}}\nEOF"),
        0);
    assert_int_equal(cli("--json fetch hd"), 0);
    assert_non_null(strstr(out, "\"headers\":{\"trace\":\"abc-1\",\"note\":\"caf\xc3\xa9\"}"));
    assert_non_null(strstr(out, "\"headers\":{\"raw\":{\"hex\":\"00ff\"}}"));
    char first[sizeof out];
    memcpy(first, out, sizeof out);
    char cmd[1024];
    snprintf(cmd, sizeof cmd, "%s -h %s -p %s --json fetch hd | %s -h %s -p %s --json produce hd2",
             e2e_cli(), srv.host, srv.port, e2e_cli(), srv.host, srv.port);
    assert_int_equal(e2e_run(cmd, out, sizeof out), 0);
    assert_int_equal(cli("--json fetch hd2"), 0);
    assert_string_equal(out, first); /* offsets 0 and 1 in both */
}

/* One voice: what is wrong and what to do, no internals. */
static void test_errors_in_one_voice(void **state)
{
    (void)state;
    static const char *const cmds[] = {
        "get no-such-topic k 2>&1",
        "produce 'bad topic' a=1 2>&1",
        "fetch a/b 2>&1",
        "stats kd -g no-such-group 2>&1",
        "groups kd --seek no-such-group earliest 2>&1",
        "groups kd --delete no-such-group 2>&1",
        "consume no-such-topic -g g 2>&1",
        "delete-topic no-such-topic --yes 2>&1",
        "get kd '' 2>&1",
    };
    for (size_t i = 0; i < sizeof cmds / sizeof cmds[0]; i++) {
        int rc = cli("%s", cmds[i]);
        assert_true(rc == 1 || rc == 2);
        if (strstr(out, "krappy_") || strstr(out, "PRODUCER_REGISTER") || strstr(out, "field '") ||
            strstr(out, "server error") || strstr(out, "NO_SUCH"))
            fail_msg("'%s' said: %s", cmds[i], out);
    }
    assert_int_equal(cli("get no-such-topic k 2>&1"), 1);
    assert_non_null(strstr(out, "there is no topic named \"no-such-topic\""));
    assert_int_equal(cli("fetch a/b 2>&1"), 2);
    assert_non_null(strstr(out, "is not a topic name"));
}

/* The admin port is not the data port: said within ~2 s. */
static void test_admin_port_told_apart(void **state)
{
    (void)state;
    if (srv.pid == 0 || strcmp(srv.http_port, "0") == 0)
        skip();
    char cmd[512];
    snprintf(cmd, sizeof cmd, "%s -h %s -p %s ping -c 1 2>&1", e2e_cli(), srv.host, srv.http_port);
    uint64_t t0 = e2e_now_ms();
    assert_int_equal(e2e_run(cmd, out, sizeof out), 1);
    uint64_t took = e2e_now_ms() - t0;
    assert_true(took < 3500);
    char want[128];
    snprintf(want, sizeof want, "127.0.0.1:%s did not answer HELLO; is that krappyd's data port",
             srv.http_port);
    assert_non_null(strstr(out, want));
}

/* --start on a group that exists: said, with the seek that would do it. */
static void test_start_on_existing_group(void **state)
{
    (void)state;
    assert_int_equal(cli("produce st a=1 b=2 c=3"), 0);
    assert_int_equal(cli("consume st -g g -n 1 2>/dev/null"), 0);
    assert_int_equal(cli("consume st -g g --start latest -n 1 2>&1"), 0);
    assert_non_null(strstr(out, "group g exists (cursor 1), so --start latest is not used"));
    assert_non_null(strstr(out, "krappy groups st --seek g latest"));
    assert_int_equal(cli("consume st -g fresh --start latest 2>&1"), 0);
    assert_null(strstr(out, "is not used"));
}

/* consume without --follow ends once it caught up. */
static void test_consume_ends_when_caught_up(void **state)
{
    (void)state;
    assert_int_equal(cli("produce cu a=1 b=2"), 0);
    uint64_t t0 = e2e_now_ms();
    assert_int_equal(cli("consume cu -g g 2>&1"), 0);
    assert_true(e2e_now_ms() - t0 < 5000);
    assert_non_null(strstr(out, "consumed 2 events"));
}

/* groups --seek and --delete, delete-topic; without a terminal no question
 * is asked. */
static void test_admin_verbs(void **state)
{
    (void)state;
    assert_int_equal(cli("produce adm a=1 b=2 c=3 d=4"), 0);
    assert_int_equal(cli("consume adm -g g -n 3 2>/dev/null"), 0);
    assert_int_equal(cli("groups adm --seek g earliest"), 0);
    assert_non_null(strstr(out, "group g of adm: cursor 0 (was 3)"));
    assert_int_equal(cli("--json groups adm --seek g 2"), 0);
    assert_non_null(strstr(out, "\"cursor\":2,\"was\":0"));
    assert_int_equal(cli("groups adm --seek g --seek-time 2000-01-01T00:00Z"), 0);
    assert_non_null(strstr(out, "cursor 0"));
    assert_int_equal(cli("groups adm --seek g 2099-01-01"), 0);
    assert_non_null(strstr(out, "cursor 4"));
    assert_int_equal(cli("groups adm --seek g 9 2>&1"), 1);
    assert_non_null(strstr(out, "a cursor can go from 0 to 4"));
    assert_int_equal(cli("groups adm --seek g sometime 2>&1"), 2);
    assert_int_equal(cli("groups adm --seek g --seek-time 2026-13-01T00:00Z 2>&1"), 2);
    assert_int_equal(cli("groups adm --delete g </dev/null"), 0);
    assert_non_null(strstr(out, "deleted group g of adm"));
    assert_int_equal(cli("groups adm"), 0);
    assert_non_null(strstr(out, "no consumer groups"));
    assert_int_equal(cli("delete-topic adm </dev/null"), 0);
    assert_non_null(strstr(out, "deleted topic adm (4 events, 0 groups)"));
    assert_int_equal(cli("topics"), 0);
    assert_null(strstr(out, "adm "));
}

/* On a terminal (script(1) gives it one) delete-topic and --delete ask
 * for the name first; --yes does not ask. */
static void test_confirm_on_a_terminal(void **state)
{
    (void)state;
    if (system("command -v script >/dev/null 2>&1") != 0)
        skip();
    char cmd[1024];
    assert_int_equal(cli("produce ask a=1"), 0);
    assert_int_equal(cli("consume ask -g g 2>/dev/null"), 0);
    snprintf(cmd, sizeof cmd,
             "printf 'nope\\n' | script -qec '%s -h %s -p %s delete-topic ask' /dev/null 2>&1",
             e2e_cli(), srv.host, srv.port);
    assert_int_equal(e2e_run(cmd, out, sizeof out), 1);
    assert_non_null(strstr(out, "Delete topic ask: 1 event"));
    assert_non_null(strstr(out, "nothing deleted"));
    snprintf(cmd, sizeof cmd,
             "printf 'g\\n' | script -qec '%s -h %s -p %s groups ask --delete g' /dev/null 2>&1",
             e2e_cli(), srv.host, srv.port);
    assert_int_equal(e2e_run(cmd, out, sizeof out), 0);
    assert_non_null(strstr(out, "Delete consumer group g of topic ask"));
    assert_non_null(strstr(out, "deleted group g of ask"));
    snprintf(cmd, sizeof cmd,
             "script -qec '%s -h %s -p %s delete-topic ask --yes' /dev/null </dev/null 2>&1",
             e2e_cli(), srv.host, srv.port);
    assert_int_equal(e2e_run(cmd, out, sizeof out), 0);
    assert_null(strstr(out, "Type ask"));
    assert_non_null(strstr(out, "deleted topic ask"));
}

/* bash completion: verbs and options from the binary, topics and groups
 * from the server. */
static void test_bash_completion(void **state)
{
    (void)state;
    const char *script = "src/client/krappy-completion.bash";
    if (access(script, R_OK) != 0 || system("command -v bash >/dev/null 2>&1") != 0)
        skip();
    assert_int_equal(cli("produce comp-topic a=1"), 0);
    assert_int_equal(cli("consume comp-topic -g comp-group 2>/dev/null"), 0);
    static const struct {
        const char *words;
        const char *want;
    } cases[] = {
        {"krappy pro", "produce"},
        {"krappy delete-", "delete-topic"},
        {"krappy produce comp-topic --value-", "--value-file"},
        {"krappy groups comp-topic --se", "--seek --seek-time"},
        {"krappy -p PORT fetch comp-", "comp-topic"},
        {"krappy -p PORT groups comp-topic --seek comp-", "comp-group"},
        {"krappy -p PORT groups comp-topic --seek comp-group ear", "earliest"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char words[512], cmd[2048];
        const char *p = strstr(cases[i].words, "PORT");
        if (p != NULL)
            snprintf(words, sizeof words, "%.*s%s%s", (int)(p - cases[i].words), cases[i].words,
                     srv.port, p + 4);
        else
            snprintf(words, sizeof words, "%s", cases[i].words);
        snprintf(cmd, sizeof cmd,
                 "KRAPPY_ADDR=%s:%s bash -c '. %s; COMP_WORDS=(%s); COMP_WORDS[0]=%s; "
                 "COMP_CWORD=$((${#COMP_WORDS[@]} - 1)); _krappy; echo \"${COMPREPLY[*]}\"'",
                 srv.host, srv.port, script, words, e2e_cli());
        assert_int_equal(e2e_run(cmd, out, sizeof out), 0);
        out[strcspn(out, "\n")] = '\0';
        if (strcmp(out, cases[i].want) != 0)
            fail_msg("completing '%s': got '%s', want '%s'", words, out, cases[i].want);
    }
}

int main(void)
{
    signal(SIGPIPE, SIG_IGN);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_key_delimiters),
        cmocka_unit_test(test_options_after_topic),
        cmocka_unit_test(test_value_file),
        cmocka_unit_test(test_headers_round_trip),
        cmocka_unit_test(test_errors_in_one_voice),
        cmocka_unit_test(test_admin_port_told_apart),
        cmocka_unit_test(test_start_on_existing_group),
        cmocka_unit_test(test_consume_ends_when_caught_up),
        cmocka_unit_test(test_admin_verbs),
        cmocka_unit_test(test_confirm_on_a_terminal),
        cmocka_unit_test(test_bash_completion),
    };
    return cmocka_run_group_tests_name("e2e_cli", tests, setup, teardown);
}
