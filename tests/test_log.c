/*
 * tests/test_log.c - util/log.c: JSON and text lines, escaping, level
 * filter, parsers, truncation, and lines that do not interleave.
 *
 * Lines are captured through kr_log_set_fd on a non-blocking pipe; the
 * timestamp is checked for shape and cut off, the rest compared exactly.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "util/log.h"

#include "tmpdir.h"

#define TS_LEN 24 /* 2026-11-21T07:00:00.123Z */

static int pipe_fds[2];

static int setup(void **state)
{
    (void)state;
    if (pipe(pipe_fds) != 0)
        return -1;
    fcntl(pipe_fds[0], F_SETFL, O_NONBLOCK);
    kr_log_set_fd(pipe_fds[1]);
    kr_log_setup(KR_LOG_INFO, KR_LOG_JSON);
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    kr_log_set_fd(2);
    kr_log_setup(KR_LOG_INFO, KR_LOG_JSON);
    close(pipe_fds[0]);
    close(pipe_fds[1]);
    return 0;
}

/* Everything written since the last call, NUL-terminated, in buf. */
static size_t drain(char *buf, size_t size)
{
    size_t len = 0;

    for (;;) {
        ssize_t n = read(pipe_fds[0], buf + len, size - 1 - len);

        if (n <= 0)
            break;
        len += (size_t)n;
    }
    buf[len] = '\0';
    return len;
}

static bool ends_with(const char *s, size_t len, const char *suffix)
{
    size_t n = strlen(suffix);

    return len >= n && strcmp(s + len - n, suffix) == 0;
}

static bool is_ts(const char *s)
{
    static const char shape[] = "dddd-dd-ddTdd:dd:dd.dddZ";

    for (size_t i = 0; i < TS_LEN; i++) {
        if (shape[i] == 'd' ? (s[i] < '0' || s[i] > '9') : s[i] != shape[i])
            return false;
    }
    return true;
}

/* Check the JSON line's timestamp and return what follows it. */
static const char *json_after_ts(const char *line)
{
    assert_int_equal(strncmp(line, "{\"ts\":\"", 7), 0);
    assert_true(is_ts(line + 7));
    assert_int_equal(line[7 + TS_LEN], '"');
    return line + 7 + TS_LEN + 1;
}

static const char *text_after_ts(const char *line)
{
    assert_true(is_ts(line));
    assert_int_equal(line[TS_LEN], ' ');
    return line + TS_LEN + 1;
}

/* ---- a small JSON validator: an object of string or null members on one
 * line, strings in valid UTF-8 with only legal escapes ---- */

static const char *j_string(const char *p)
{
    const unsigned char *u;

    if (*p++ != '"')
        return NULL;
    for (;;) {
        u = (const unsigned char *)p;
        if (*u == '"')
            return p + 1;
        if (*u < 0x20)
            return NULL;
        if (*u == '\\') {
            p++;
            if (strchr("\"\\/bfnrt", *p) != NULL && *p != '\0') {
                p++;
            } else if (*p == 'u') {
                for (int i = 1; i <= 4; i++)
                    if (p[i] == '\0' || strchr("0123456789abcdefABCDEF", p[i]) == NULL)
                        return NULL;
                p += 5;
            } else {
                return NULL;
            }
        } else if (*u < 0x80) {
            p++;
        } else {
            int n = (*u & 0xE0) == 0xC0 ? 2 : (*u & 0xF0) == 0xE0 ? 3 : (*u & 0xF8) == 0xF0 ? 4 : 0;
            uint32_t cp = n == 2 ? *u & 0x1F : n == 3 ? *u & 0x0F : *u & 0x07;

            if (n == 0)
                return NULL;
            for (int i = 1; i < n; i++) {
                if ((u[i] & 0xC0) != 0x80)
                    return NULL;
                cp = cp << 6 | (u[i] & 0x3F);
            }
            if ((n == 2 && cp < 0x80) || (n == 3 && cp < 0x800) || (n == 4 && cp < 0x10000) ||
                cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF))
                return NULL;
            p += n;
        }
    }
}

static bool valid_json_line(const char *p)
{
    if (*p++ != '{')
        return false;
    for (;;) {
        if ((p = j_string(p)) == NULL || *p++ != ':')
            return false;
        if (strncmp(p, "null", 4) == 0)
            p += 4;
        else if ((p = j_string(p)) == NULL)
            return false;
        if (*p == ',')
            p++;
        else if (*p == '}')
            break;
        else
            return false;
    }
    return strcmp(p, "}\n") == 0;
}

static void test_validator_can_fail(void **state)
{
    (void)state;
    assert_true(valid_json_line("{\"a\":\"b\\n\\u00e9\xc3\xa9\",\"c\":null}\n"));
    assert_false(valid_json_line("{\"a\":\"b\"}"));
    assert_false(valid_json_line("{\"a\":\"b\\x\"}\n"));
    assert_false(valid_json_line("{\"a\":\"\n\"}\n"));
    assert_false(valid_json_line("{\"a\":\"\xff\"}\n"));
    assert_false(valid_json_line("{\"a\":\"\xc0\xaf\"}\n"));
    assert_false(valid_json_line("{\"a\":\"\xed\xa0\x80\"}\n"));
    assert_false(valid_json_line("{\"a\":\"b\",}\n"));
    assert_false(valid_json_line("{\"a\":\"b\"}\n{"));
}

/* ---- JSON ---- */

static void test_json_basic(void **state)
{
    char buf[8192];

    (void)state;
    kr_log(KR_LOG_INFO, "listening", KR_LOG_STR("addr", "0.0.0.0:7070"));
    drain(buf, sizeof(buf));
    assert_string_equal(json_after_ts(buf),
                        ",\"level\":\"info\",\"msg\":\"listening\",\"addr\":\"0.0.0.0:7070\"}\n");
    assert_true(valid_json_line(buf));

    kr_log(KR_LOG_ERROR, "no fields");
    drain(buf, sizeof(buf));
    assert_string_equal(json_after_ts(buf), ",\"level\":\"error\",\"msg\":\"no fields\"}\n");

    kr_log(KR_LOG_WARN, "m", KR_LOG_STR("a", "1"), KR_LOG_STR("b", NULL), KR_LOG_STR("c", ""));
    drain(buf, sizeof(buf));
    assert_string_equal(json_after_ts(buf),
                        ",\"level\":\"warn\",\"msg\":\"m\",\"a\":\"1\",\"b\":null,\"c\":\"\"}\n");
    assert_true(valid_json_line(buf));
}

static void test_json_escaping(void **state)
{
    char buf[8192];

    (void)state;
    kr_log(KR_LOG_INFO, "say \"hi\"", KR_LOG_STR("path", "C:\\dir\\f"),
           KR_LOG_STR("nl", "a\nb\r\tc"));
    drain(buf, sizeof(buf));
    assert_string_equal(json_after_ts(buf),
                        ",\"level\":\"info\",\"msg\":\"say \\\"hi\\\"\","
                        "\"path\":\"C:\\\\dir\\\\f\",\"nl\":\"a\\nb\\r\\tc\"}\n");
    assert_true(valid_json_line(buf));

    /* Control bytes, DEL, and the short escapes \b \f. */
    kr_log(KR_LOG_INFO, "ctl", KR_LOG_STR("v", "\x01\x1f\x7f\b\f"));
    drain(buf, sizeof(buf));
    assert_string_equal(json_after_ts(buf), ",\"level\":\"info\",\"msg\":\"ctl\","
                                            "\"v\":\"\\u0001\\u001f\\u007f\\b\\f\"}\n");
    assert_true(valid_json_line(buf));

    /* Keys are escaped too. */
    kr_log(KR_LOG_INFO, "k", KR_LOG_STR("we\"ird\n", "v"));
    drain(buf, sizeof(buf));
    assert_string_equal(json_after_ts(buf),
                        ",\"level\":\"info\",\"msg\":\"k\",\"we\\\"ird\\n\":\"v\"}\n");
}

static void test_json_utf8(void **state)
{
    char buf[8192];

    (void)state;
    /* Valid UTF-8 (2, 3 and 4 bytes) passes through. */
    kr_log(KR_LOG_INFO, "caf\xc3\xa9", KR_LOG_STR("v", "\xe2\x82\xac\xf0\x9f\x98\x80"));
    drain(buf, sizeof(buf));
    assert_string_equal(json_after_ts(buf), ",\"level\":\"info\",\"msg\":\"caf\xc3\xa9\","
                                            "\"v\":\"\xe2\x82\xac\xf0\x9f\x98\x80\"}\n");
    assert_true(valid_json_line(buf));

    /* Each invalid byte becomes U+FFFD: a stray continuation, a lone lead,
     * an overlong '/', a surrogate, past U+10FFFF, a truncated sequence. */
    kr_log(KR_LOG_INFO, "bad", KR_LOG_STR("a", "x\x80y"), KR_LOG_STR("b", "\xff"),
           KR_LOG_STR("c", "\xc0\xaf"), KR_LOG_STR("d", "\xed\xa0\x80"),
           KR_LOG_STR("e", "\xf4\x90\x80\x80"), KR_LOG_STR("f", "ok\xe2\x82"));
    drain(buf, sizeof(buf));
    assert_string_equal(json_after_ts(buf),
                        ",\"level\":\"info\",\"msg\":\"bad\","
                        "\"a\":\"x\\ufffdy\",\"b\":\"\\ufffd\",\"c\":\"\\ufffd\\ufffd\","
                        "\"d\":\"\\ufffd\\ufffd\\ufffd\",\"e\":\"\\ufffd\\ufffd\\ufffd\\ufffd\","
                        "\"f\":\"ok\\ufffd\\ufffd\"}\n");
    assert_true(valid_json_line(buf));
}

/* ---- typed fields ---- */

static void test_typed_fields(void **state)
{
    char buf[8192];

    (void)state;
    kr_log(KR_LOG_INFO, "n", KR_LOG_U64("zero", 0), KR_LOG_U64("max", UINT64_MAX),
           KR_LOG_I64("min", INT64_MIN), KR_LOG_I64("neg", -1), KR_LOG_I64("pos", 42));
    drain(buf, sizeof(buf));
    assert_string_equal(json_after_ts(buf),
                        ",\"level\":\"info\",\"msg\":\"n\",\"zero\":\"0\","
                        "\"max\":\"18446744073709551615\",\"min\":\"-9223372036854775808\","
                        "\"neg\":\"-1\",\"pos\":\"42\"}\n");
    assert_true(valid_json_line(buf));

    /* Durations: nanoseconds shown in milliseconds, rounded to a tenth. */
    kr_log(KR_LOG_INFO, "d", KR_LOG_MS("a", 0), KR_LOG_MS("b", 49999), KR_LOG_MS("c", 50000),
           KR_LOG_MS("d", 12345678), KR_LOG_MS("e", 999950000), KR_LOG_MS("f", UINT64_MAX));
    drain(buf, sizeof(buf));
    assert_string_equal(json_after_ts(buf),
                        ",\"level\":\"info\",\"msg\":\"d\",\"a\":\"0.0\",\"b\":\"0.0\","
                        "\"c\":\"0.1\",\"d\":\"12.3\",\"e\":\"1000.0\","
                        "\"f\":\"18446744073709.6\"}\n");

    /* A NULL key leaves the field out. */
    const char *why = NULL;
    kr_log(KR_LOG_WARN, "o", KR_LOG_STR("a", "1"), KR_LOG_STR(why ? "reason" : NULL, why),
           KR_LOG_U64(NULL, 7), KR_LOG_STR("z", "2"));
    drain(buf, sizeof(buf));
    assert_string_equal(json_after_ts(buf),
                        ",\"level\":\"warn\",\"msg\":\"o\",\"a\":\"1\",\"z\":\"2\"}\n");

    /* Text: numbers bare. */
    kr_log_setup(KR_LOG_INFO, KR_LOG_TEXT);
    kr_log(KR_LOG_INFO, "t", KR_LOG_U64("n", 7), KR_LOG_I64("i", -7), KR_LOG_MS("ms", 1500000),
           KR_LOG_STR("s", "a b"));
    drain(buf, sizeof(buf));
    assert_string_equal(text_after_ts(buf), "info  t n=7 i=-7 ms=1.5 s=\"a b\"\n");
}

/* ---- text ---- */

static void test_text_format(void **state)
{
    char buf[8192];

    (void)state;
    kr_log_setup(KR_LOG_DEBUG, KR_LOG_TEXT);
    kr_log(KR_LOG_INFO, "listening", KR_LOG_STR("addr", "0.0.0.0:7070"),
           KR_LOG_STR("k2", "v with spaces"));
    drain(buf, sizeof(buf));
    assert_string_equal(text_after_ts(buf),
                        "info  listening addr=0.0.0.0:7070 k2=\"v with spaces\"\n");

    kr_log(KR_LOG_DEBUG, "d");
    drain(buf, sizeof(buf));
    assert_string_equal(text_after_ts(buf), "debug d\n");
    kr_log(KR_LOG_WARN, "w");
    drain(buf, sizeof(buf));
    assert_string_equal(text_after_ts(buf), "warn  w\n");
    kr_log(KR_LOG_ERROR, "e", KR_LOG_STR("n", NULL));
    drain(buf, sizeof(buf));
    assert_string_equal(text_after_ts(buf), "error e n=-\n");

    /* Quoting and escaping: empty, quote, '=', backslash, newline, control,
     * invalid UTF-8; a multi-line message stays on one line. */
    kr_log(KR_LOG_INFO, "two\nlines", KR_LOG_STR("e", ""), KR_LOG_STR("q", "a\"b"),
           KR_LOG_STR("eq", "a=b"), KR_LOG_STR("bs", "a\\b"), KR_LOG_STR("nl", "a\nb"),
           KR_LOG_STR("c", "\x01"), KR_LOG_STR("u", "caf\xc3\xa9"), KR_LOG_STR("x", "\xff"));
    drain(buf, sizeof(buf));
    assert_string_equal(text_after_ts(buf),
                        "info  two\\nlines e=\"\" q=\"a\\\"b\" eq=\"a=b\" bs=\"a\\\\b\" "
                        "nl=\"a\\nb\" c=\"\\x01\" u=caf\xc3\xa9 x=\"\\xff\"\n");
}

/* ---- level filter and parsers ---- */

static void test_level_filter(void **state)
{
    char buf[8192];

    (void)state;
    kr_log_setup(KR_LOG_WARN, KR_LOG_JSON);
    assert_false(kr_log_enabled(KR_LOG_DEBUG));
    assert_false(kr_log_enabled(KR_LOG_INFO));
    assert_true(kr_log_enabled(KR_LOG_WARN));
    assert_true(kr_log_enabled(KR_LOG_ERROR));
    kr_log(KR_LOG_DEBUG, "no");
    kr_log(KR_LOG_INFO, "no");
    assert_int_equal(drain(buf, sizeof(buf)), 0);
    kr_log(KR_LOG_WARN, "yes");
    kr_log(KR_LOG_ERROR, "yes");
    drain(buf, sizeof(buf));
    assert_non_null(strstr(buf, "\"level\":\"warn\""));
    assert_non_null(strstr(buf, "\"level\":\"error\""));

    kr_log_setup(KR_LOG_DEBUG, KR_LOG_JSON);
    assert_true(kr_log_enabled(KR_LOG_DEBUG));
    kr_log(KR_LOG_DEBUG, "dbg");
    drain(buf, sizeof(buf));
    assert_string_equal(json_after_ts(buf), ",\"level\":\"debug\",\"msg\":\"dbg\"}\n");
}

static void test_parse(void **state)
{
    kr_log_level l = KR_LOG_INFO;
    kr_log_format f = KR_LOG_JSON;

    (void)state;
    assert_int_equal(kr_log_level_parse("debug", &l), 0);
    assert_int_equal(l, KR_LOG_DEBUG);
    assert_int_equal(kr_log_level_parse("info", &l), 0);
    assert_int_equal(l, KR_LOG_INFO);
    assert_int_equal(kr_log_level_parse("warn", &l), 0);
    assert_int_equal(l, KR_LOG_WARN);
    assert_int_equal(kr_log_level_parse("ERROR", &l), 0);
    assert_int_equal(l, KR_LOG_ERROR);
    assert_int_equal(kr_log_level_parse("verbose", &l), -1);
    assert_int_equal(kr_log_level_parse("", &l), -1);
    assert_int_equal(kr_log_level_parse("info ", &l), -1);
    assert_int_equal(kr_log_level_parse(NULL, &l), -1);
    assert_int_equal(l, KR_LOG_ERROR); /* untouched on failure */

    assert_int_equal(kr_log_format_parse("text", &f), 0);
    assert_int_equal(f, KR_LOG_TEXT);
    assert_int_equal(kr_log_format_parse("json", &f), 0);
    assert_int_equal(f, KR_LOG_JSON);
    assert_int_equal(kr_log_format_parse("yaml", &f), -1);
    assert_int_equal(kr_log_format_parse(NULL, &f), -1);
    assert_int_equal(f, KR_LOG_JSON);
}

/* ---- truncation ---- */

static void test_truncate_json_msg(void **state)
{
    static char big[6000];
    char buf[16384];
    size_t len;

    (void)state;
    memset(big, 'a', sizeof(big) - 1);
    kr_log(KR_LOG_INFO, big, KR_LOG_STR("k", "v"));
    len = drain(buf, sizeof(buf));
    assert_int_equal(len, KR_LOG_LINE_MAX - 24 + strlen("...(truncated)\"}\n"));
    assert_true(len <= KR_LOG_LINE_MAX);
    assert_true(valid_json_line(buf));
    assert_true(ends_with(buf, len, "aaa...(truncated)\"}\n"));
}

/*
 * Slide the cut across every position: a value of every escape width (\" is
 * 2 bytes, \u0001 and \ufffd 6, UTF-8 2 to 4), a message 0 to 6 bytes long
 * to shift the alignment, and more fields after the value so the cut also
 * lands in keys, in null and between fields. Every line must be one valid
 * JSON object of at most KR_LOG_LINE_MAX bytes, and some must say they were
 * cut.
 */
static void test_truncate_json_sweep(void **state)
{
    static const char *const fill[] = {
        "a", "\"", "\x01", "\xff", "\xc3\xa9", "\xe2\x82\xac", "\xf0\x9f\x98\x80"};
    static const size_t out_width[] = {1, 2, 6, 6, 2, 3, 4};
    static char big[8192];
    char buf[16384];
    char msg[8];
    int cut = 0, whole = 0;

    (void)state;
    for (size_t f = 0; f < sizeof(fill) / sizeof(fill[0]); f++) {
        size_t fl = strlen(fill[f]);

        for (size_t units = 3950 / out_width[f]; units < 4110 / out_width[f] + 2; units++) {
            for (size_t shift = 0; shift < 7; shift++) {
                size_t len;

                for (size_t i = 0; i < units; i++)
                    memcpy(big + i * fl, fill[f], fl);
                big[units * fl] = '\0';
                memset(msg, 'm', shift);
                msg[shift] = '\0';
                kr_log(KR_LOG_INFO, msg, KR_LOG_STR("k", big), KR_LOG_STR("kk", "vv"),
                       KR_LOG_STR("key", NULL), KR_LOG_STR("z", ""));
                len = drain(buf, sizeof(buf));
                assert_true(len <= KR_LOG_LINE_MAX);
                if (!valid_json_line(buf))
                    fail_msg("invalid JSON, fill %zu units %zu shift %zu: ...%s", f, units, shift,
                             buf + len - 60);
                if (strstr(buf, "...(truncated)") != NULL)
                    cut++;
                else
                    whole++;
            }
        }
    }
    assert_true(cut > 0);
    assert_true(whole > 0);
}

/* A cut inside a key and a cut between fields, by many short fields. */
static void test_truncate_json_keys(void **state)
{
    static char key[4200];
    char buf[16384];
    size_t len;

    (void)state;
    memset(key, 'k', sizeof(key) - 1);
    kr_log(KR_LOG_INFO, "m", KR_LOG_STR(key, "v"));
    len = drain(buf, sizeof(buf));
    assert_true(valid_json_line(buf));
    assert_true(ends_with(buf, len, "kkk...(truncated)\":null}\n"));

    /* The value ends right at the limit: the next field cannot start. */
    for (size_t n = 4000; n < 4080; n++) {
        memset(key, 'v', n);
        key[n] = '\0';
        kr_log(KR_LOG_INFO, "m", KR_LOG_STR("k", key), KR_LOG_STR("next", "x"));
        len = drain(buf, sizeof(buf));
        assert_true(len <= KR_LOG_LINE_MAX);
        assert_true(valid_json_line(buf));
        if (strstr(buf, "\",\"...(truncated)\":null}\n") != NULL)
            return;
    }
    fail_msg("no cut between fields");
}

static void test_truncate_text(void **state)
{
    static char big[6000];
    char buf[16384];
    size_t len;

    (void)state;
    kr_log_setup(KR_LOG_INFO, KR_LOG_TEXT);
    memset(big, 'a', sizeof(big) - 1);
    kr_log(KR_LOG_INFO, "m", KR_LOG_STR("k", big));
    len = drain(buf, sizeof(buf));
    assert_true(len <= KR_LOG_LINE_MAX);
    assert_true(ends_with(buf, len, "aaaa...(truncated)\n"));
    assert_ptr_equal(strchr(buf, '\n'), buf + len - 1);

    big[100] = ' '; /* quoted: the cut closes the quote */
    kr_log(KR_LOG_INFO, "m", KR_LOG_STR("k", big));
    len = drain(buf, sizeof(buf));
    assert_true(len <= KR_LOG_LINE_MAX);
    assert_true(ends_with(buf, len, "aaaa...(truncated)\"\n"));
}

/* ---- concurrency ---- */

#define THREADS 4
#define LINES   2000

static int file_fd;

static void *log_thread(void *arg)
{
    for (int i = 0; i < LINES; i++)
        kr_log(KR_LOG_INFO, "line from a thread with some padding to make it longer",
               KR_LOG_I64("thread", (intptr_t)arg),
               KR_LOG_STR("pad", "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx"));
    return NULL;
}

/* Four threads log to one file; every line must come out whole. */
static void test_threads_no_interleave(void **state)
{
    char path[512];
    snprintf(path, sizeof path, "%s/krappy_test_log_XXXXXX", kr_test_tmpdir());
    pthread_t t[THREADS];
    char line[KR_LOG_LINE_MAX + 2];
    int per_thread[THREADS] = {0};
    FILE *f;

    (void)state;
    file_fd = mkstemp(path);
    assert_true(file_fd >= 0);
    unlink(path);
    kr_log_set_fd(file_fd);
    for (int i = 0; i < THREADS; i++)
        assert_int_equal(pthread_create(&t[i], NULL, log_thread, (void *)(intptr_t)i), 0);
    for (int i = 0; i < THREADS; i++)
        pthread_join(t[i], NULL);
    kr_log_set_fd(pipe_fds[1]);

    lseek(file_fd, 0, SEEK_SET);
    f = fdopen(file_fd, "r");
    assert_non_null(f);
    while (fgets(line, sizeof(line), f) != NULL) {
        const char *p = strstr(line, "\"thread\":\"");

        assert_true(valid_json_line(line));
        assert_non_null(p);
        per_thread[p[10] - '0']++;
    }
    fclose(f);
    for (int i = 0; i < THREADS; i++)
        assert_int_equal(per_thread[i], LINES);
}

/* Logging leaves errno alone. */
static void test_errno_preserved(void **state)
{
    char buf[8192];

    (void)state;
    errno = 1234;
    kr_log(KR_LOG_INFO, "x");
    assert_int_equal(errno, 1234);
    kr_log_set_fd(-1); /* write fails with EBADF */
    kr_log(KR_LOG_INFO, "x");
    assert_int_equal(errno, 1234);
    drain(buf, sizeof(buf));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_validator_can_fail),
        cmocka_unit_test_setup_teardown(test_json_basic, setup, teardown),
        cmocka_unit_test_setup_teardown(test_json_escaping, setup, teardown),
        cmocka_unit_test_setup_teardown(test_json_utf8, setup, teardown),
        cmocka_unit_test_setup_teardown(test_typed_fields, setup, teardown),
        cmocka_unit_test_setup_teardown(test_text_format, setup, teardown),
        cmocka_unit_test_setup_teardown(test_level_filter, setup, teardown),
        cmocka_unit_test(test_parse),
        cmocka_unit_test_setup_teardown(test_truncate_json_msg, setup, teardown),
        cmocka_unit_test_setup_teardown(test_truncate_json_sweep, setup, teardown),
        cmocka_unit_test_setup_teardown(test_truncate_json_keys, setup, teardown),
        cmocka_unit_test_setup_teardown(test_truncate_text, setup, teardown),
        cmocka_unit_test_setup_teardown(test_threads_no_interleave, setup, teardown),
        cmocka_unit_test_setup_teardown(test_errno_preserved, setup, teardown),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
