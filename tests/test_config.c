/*
 * tests/test_config.c - krappyd's flags, KRAPPY_* variables and value parsers.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "server/config.h"

static const char *const vars[] = {
    "KRAPPY_LISTEN",
    "KRAPPY_DATA",
    "KRAPPY_TOKEN",
    "KRAPPY_MAX_FRAME",
    "KRAPPY_MAX_CONNECTIONS",
    "KRAPPY_MAX_EVENTS",
    "KRAPPY_IDLE_TIMEOUT",
    "KRAPPY_WRITE_TIMEOUT",
    "KRAPPY_HELLO_TIMEOUT",
    "KRAPPY_SHUTDOWN_TIMEOUT",
    "KRAPPY_LOG_FORMAT",
    "KRAPPY_LOG_LEVEL",
    "KRAPPY_PORT_FILE",
    "KRAPPY_KAFKA_LISTEN",
    "KRAPPY_KAFKA_ADVERTISE",
    "KRAPPY_KAFKA_AUTO_CREATE",
    "KRAPPY_RAFT_SNAPSHOT_EVERY",
    "KRAPPY_COMPACT_PRIORITY",
};

static int clear_env(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof vars / sizeof vars[0]; i++)
        unsetenv(vars[i]);
    return 0;
}

/* Parse a NULL-terminated argument list (without argv[0]). */
static kr_config_action parse(kr_config *cfg, char *err, size_t errlen, ...)
{
    char *argv[32];
    int argc = 0;
    argv[argc++] = "krappyd";
    va_list ap;
    va_start(ap, errlen);
    char *a;
    while ((a = va_arg(ap, char *)) != NULL && argc < 31)
        argv[argc++] = a;
    va_end(ap);
    argv[argc] = NULL;
    err[0] = '\0';
    return kr_config_parse(cfg, argc, argv, 0, err, errlen);
}

static void test_defaults(void **state)
{
    (void)state;
    kr_config c;
    char err[256];
    assert_int_equal(parse(&c, err, sizeof err, NULL), KR_CONFIG_RUN);
    assert_string_equal(c.listen, "0.0.0.0:7070");
    assert_string_equal(c.data_dir, "./data");
    assert_null(c.token);
    assert_null(c.port_file);
    assert_int_equal(c.max_frame, 16u << 20);
    assert_int_equal(c.max_connections, 1024);
    assert_int_equal(c.max_events, 10000);
    assert_int_equal(c.idle_timeout_ms, 300000);
    assert_int_equal(c.write_timeout_ms, 60000);
    assert_int_equal(c.hello_timeout_ms, 10000);
    assert_int_equal(c.log_level, KR_LOG_INFO);
    assert_int_equal(c.log_format, KR_LOG_JSON); /* stderr is not a terminal */
    kr_config_free(&c);

    char *argv[] = {"krappyd", NULL};
    assert_int_equal(kr_config_parse(&c, 1, argv, 1, err, sizeof err), KR_CONFIG_RUN);
    assert_int_equal(c.log_format, KR_LOG_TEXT); /* on a terminal */
    kr_config_free(&c);
}

static void test_flags(void **state)
{
    (void)state;
    kr_config c;
    char err[256];
    assert_int_equal(parse(&c, err, sizeof err, "--listen", "127.0.0.1:0", "--data", "/tmp/x",
                           "--max-frame", "64K", "--max-connections", "7", "--idle-timeout",
                           "1500ms", "--write-timeout", "2m", "--log-format", "text", "--log-level",
                           "debug", "--token", "t0k", "--port-file", "/tmp/p", "--max-events", "5",
                           NULL),
                     KR_CONFIG_RUN);
    assert_string_equal(c.listen, "127.0.0.1:0");
    assert_string_equal(c.data_dir, "/tmp/x");
    assert_int_equal(c.max_frame, 65536);
    assert_int_equal(c.max_connections, 7);
    assert_int_equal(c.max_events, 5);
    assert_int_equal(c.idle_timeout_ms, 1500);
    assert_int_equal(c.write_timeout_ms, 120000);
    assert_int_equal(c.log_format, KR_LOG_TEXT);
    assert_int_equal(c.log_level, KR_LOG_DEBUG);
    assert_string_equal(c.token, "t0k");
    assert_string_equal(c.port_file, "/tmp/p");
    kr_config_free(&c);

    /* --flag=value form too */
    assert_int_equal(parse(&c, err, sizeof err, "--max-frame=1M", NULL), KR_CONFIG_RUN);
    assert_int_equal(c.max_frame, 1u << 20);
    kr_config_free(&c);
}

/* The Kafka listener's flags: off by default, an address when given, "off"
 * turns it off again, the advertised address needs a host and a port, and
 * auto-creation is on unless turned off. */
static void test_kafka_flags(void **state)
{
    (void)state;
    kr_config c;
    char err[256];
    assert_int_equal(parse(&c, err, sizeof err, NULL), KR_CONFIG_RUN);
    assert_null(c.kafka_listen);
    assert_null(c.kafka_advertise);
    assert_true(c.kafka_auto_create);
    kr_config_free(&c);

    assert_int_equal(parse(&c, err, sizeof err, "--kafka-listen", "127.0.0.1:9092",
                           "--kafka-advertise", "krappyd-0.krappyd-headless:9092",
                           "--kafka-auto-create", "off", NULL),
                     KR_CONFIG_RUN);
    assert_string_equal(c.kafka_listen, "127.0.0.1:9092");
    assert_string_equal(c.kafka_advertise, "krappyd-0.krappyd-headless:9092");
    assert_false(c.kafka_auto_create);
    kr_config_free(&c);

    setenv("KRAPPY_KAFKA_LISTEN", "0.0.0.0:9092", 1);
    assert_int_equal(parse(&c, err, sizeof err, "--kafka-listen", "off", NULL), KR_CONFIG_RUN);
    assert_null(c.kafka_listen); /* the flag wins, and "off" is no listener */
    kr_config_free(&c);
    setenv("KRAPPY_KAFKA_AUTO_CREATE", "no", 1);
    assert_int_equal(parse(&c, err, sizeof err, NULL), KR_CONFIG_RUN);
    assert_string_equal(c.kafka_listen, "0.0.0.0:9092");
    assert_false(c.kafka_auto_create);
    kr_config_free(&c);
    unsetenv("KRAPPY_KAFKA_LISTEN");
    unsetenv("KRAPPY_KAFKA_AUTO_CREATE");

    assert_int_equal(parse(&c, err, sizeof err, "--kafka-listen", "9092", NULL), KR_CONFIG_ERROR);
    assert_non_null(strstr(err, "--kafka-listen"));
    kr_config_free(&c);
    assert_int_equal(parse(&c, err, sizeof err, "--kafka-advertise", "host:0", NULL),
                     KR_CONFIG_ERROR);
    assert_non_null(strstr(err, "--kafka-advertise"));
    kr_config_free(&c);
    assert_int_equal(parse(&c, err, sizeof err, "--kafka-advertise", ":9092", NULL),
                     KR_CONFIG_ERROR);
    kr_config_free(&c);
    assert_int_equal(parse(&c, err, sizeof err, "--kafka-auto-create", "maybe", NULL),
                     KR_CONFIG_ERROR);
    assert_non_null(strstr(err, "on or off"));
    kr_config_free(&c);
}

/* The compaction thread's CPU priority: idle by default, a name either way
 * from the flag or the variable (the flag wins), anything else an error
 * that names the flag and the two values. */
static void test_compact_priority(void **state)
{
    (void)state;
    kr_config c;
    char err[256];
    assert_int_equal(parse(&c, err, sizeof err, NULL), KR_CONFIG_RUN);
    assert_true(c.compact_idle);
    kr_config_free(&c);
    assert_int_equal(parse(&c, err, sizeof err, "--compact-priority", "normal", NULL),
                     KR_CONFIG_RUN);
    assert_false(c.compact_idle);
    kr_config_free(&c);

    setenv("KRAPPY_COMPACT_PRIORITY", "normal", 1);
    assert_int_equal(parse(&c, err, sizeof err, NULL), KR_CONFIG_RUN);
    assert_false(c.compact_idle);
    kr_config_free(&c);
    assert_int_equal(parse(&c, err, sizeof err, "--compact-priority=IDLE", NULL), KR_CONFIG_RUN);
    assert_true(c.compact_idle); /* the flag wins; case does not matter */
    kr_config_free(&c);
    unsetenv("KRAPPY_COMPACT_PRIORITY");

    assert_int_equal(parse(&c, err, sizeof err, "--compact-priority", "low", NULL),
                     KR_CONFIG_ERROR);
    assert_non_null(strstr(err, "--compact-priority"));
    assert_non_null(strstr(err, "idle or normal"));
    kr_config_free(&c);
    setenv("KRAPPY_COMPACT_PRIORITY", "", 1);
    assert_int_equal(parse(&c, err, sizeof err, NULL), KR_CONFIG_ERROR);
    assert_non_null(strstr(err, "KRAPPY_COMPACT_PRIORITY"));
    kr_config_free(&c);
    unsetenv("KRAPPY_COMPACT_PRIORITY");
}

static void test_env_and_precedence(void **state)
{
    (void)state;
    kr_config c;
    char err[256];
    setenv("KRAPPY_LISTEN", "127.0.0.1:9999", 1);
    setenv("KRAPPY_MAX_CONNECTIONS", "33", 1);
    setenv("KRAPPY_TOKEN", "", 1); /* empty: no authentication */
    assert_int_equal(parse(&c, err, sizeof err, "--max-connections", "44", NULL), KR_CONFIG_RUN);
    assert_string_equal(c.listen, "127.0.0.1:9999"); /* from the environment */
    assert_int_equal(c.max_connections, 44);         /* the flag wins */
    assert_null(c.token);
    kr_config_free(&c);
    clear_env(NULL);
}

static void test_errors_name_the_culprit(void **state)
{
    (void)state;
    static const struct {
        const char *flag, *value, *expect;
    } cases[] = {
        {"--max-frame", "12x", "--max-frame: '12x' is not valid"},
        {"--max-frame", "1", "out of range"},
        {"--max-frame", "2G", "out of range"},
        {"--max-connections", "0", "out of range"},
        {"--max-connections", "-3", "not valid"},
        {"--idle-timeout", "soon", "seconds, or a number with ms, s, m or h"},
        {"--log-format", "xml", "json or text"},
        {"--log-level", "loud", "debug, info, warn or error"},
        {"--listen", "7070", "is not HOST:PORT"},
        {"--listen", "::1:7070", "is not HOST:PORT"},
        {"--listen", "host:70000", "is not HOST:PORT"},
        {"--data", "", "must not be empty"},
        {"--raft-snapshot-every", "8", "out of range"},
        {"--raft-snapshot-every", "1024", "--raft-snapshot-every needs --raft-listen"},
        {"--raft-segment-bytes", "64K", "out of range"},
        {"--raft-segment-bytes", "8M", "--raft-segment-bytes needs --raft-listen"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        kr_config c;
        char err[256];
        assert_int_equal(parse(&c, err, sizeof err, cases[i].flag, cases[i].value, NULL),
                         KR_CONFIG_ERROR);
        if (strstr(err, cases[i].expect) == NULL)
            fail_msg("%s %s: message '%s' lacks '%s'", cases[i].flag, cases[i].value, err,
                     cases[i].expect);
        kr_config_free(&c);
    }

    kr_config c;
    char err[256];
    assert_int_equal(parse(&c, err, sizeof err, "--raft-listen", "127.0.0.1:7072", "--node-id", "1",
                           "--raft-snapshot-every", "1024", "--raft-segment-bytes", "8M", NULL),
                     KR_CONFIG_RUN);
    assert_int_equal(c.raft_snapshot_every, 1024);
    assert_int_equal(c.raft_segment_bytes, 8u << 20);
    kr_config_free(&c);
    /* With a Kafka listener a node id is a Kafka broker id and a producer
     * id's low byte: 1 to 255. */
    assert_int_equal(parse(&c, err, sizeof err, "--raft-listen", "127.0.0.1:7072", "--node-id",
                           "256", "--kafka-listen", "127.0.0.1:9092", NULL),
                     KR_CONFIG_ERROR);
    assert_non_null(strstr(err, "with --kafka-listen a node id is 1 to 255"));
    kr_config_free(&c);
    assert_int_equal(parse(&c, err, sizeof err, "--raft-listen", "127.0.0.1:7072", "--node-id",
                           "255", "--kafka-listen", "127.0.0.1:9092", NULL),
                     KR_CONFIG_RUN);
    kr_config_free(&c);
    assert_int_equal(parse(&c, err, sizeof err, "--nope", NULL), KR_CONFIG_ERROR);
    assert_non_null(strstr(err, "unknown option '--nope'"));
    kr_config_free(&c);
    assert_int_equal(parse(&c, err, sizeof err, "--data", NULL), KR_CONFIG_ERROR);
    assert_non_null(strstr(err, "needs a value"));
    kr_config_free(&c);
    assert_int_equal(parse(&c, err, sizeof err, "extra", NULL), KR_CONFIG_ERROR);
    assert_non_null(strstr(err, "unexpected argument 'extra'"));
    kr_config_free(&c);

    setenv("KRAPPY_IDLE_TIMEOUT", "forever", 1);
    assert_int_equal(parse(&c, err, sizeof err, NULL), KR_CONFIG_ERROR);
    assert_non_null(strstr(err, "KRAPPY_IDLE_TIMEOUT: 'forever'"));
    kr_config_free(&c);
    clear_env(NULL);
}

static void test_help_and_version(void **state)
{
    (void)state;
    kr_config c;
    char err[256];
    assert_int_equal(parse(&c, err, sizeof err, "--help", NULL), KR_CONFIG_HELP);
    kr_config_free(&c);
    assert_int_equal(parse(&c, err, sizeof err, "--version", NULL), KR_CONFIG_VERSION);
    kr_config_free(&c);

    /* --help lists every variable the parser reads. */
    char *text = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&text, &len);
    kr_config_usage(f);
    fclose(f);
    for (size_t i = 0; i < sizeof vars / sizeof vars[0]; i++)
        if (strstr(text, vars[i]) == NULL)
            fail_msg("--help does not mention %s", vars[i]);
    free(text);
}

static void test_value_parsers(void **state)
{
    (void)state;
    uint64_t v;
    assert_int_equal(kr_parse_size("0", &v), 0);
    assert_int_equal(v, 0);
    assert_int_equal(kr_parse_size("16M", &v), 0);
    assert_int_equal(v, 16u << 20);
    assert_int_equal(kr_parse_size("16MiB", &v), 0);
    assert_int_equal(v, 16u << 20);
    assert_int_equal(kr_parse_size("3k", &v), 0);
    assert_int_equal(v, 3072);
    assert_int_equal(kr_parse_size("1G", &v), 0);
    assert_int_equal(v, 1u << 30);
    assert_int_equal(kr_parse_size("", &v), -1);
    assert_int_equal(kr_parse_size("M", &v), -1);
    assert_int_equal(kr_parse_size("1T", &v), -1);
    assert_int_equal(kr_parse_size("-1", &v), -1);
    assert_int_equal(kr_parse_size("99999999999999999999", &v), -1);
    assert_int_equal(kr_parse_size("18446744073709551615G", &v), -1); /* overflow */

    assert_int_equal(kr_parse_duration_ms("300", &v), 0);
    assert_int_equal(v, 300000);
    assert_int_equal(kr_parse_duration_ms("250ms", &v), 0);
    assert_int_equal(v, 250);
    assert_int_equal(kr_parse_duration_ms("2h", &v), 0);
    assert_int_equal(v, 7200000);
    assert_int_equal(kr_parse_duration_ms("1.5s", &v), -1);
    assert_int_equal(kr_parse_duration_ms("s", &v), -1);

    assert_int_equal(kr_parse_uint("42", 100, &v), 0);
    assert_int_equal(v, 42);
    assert_int_equal(kr_parse_uint("101", 100, &v), -1);
    assert_int_equal(kr_parse_uint(" 1", 100, &v), -1);
    assert_int_equal(kr_parse_uint("1 ", 100, &v), -1);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup(test_defaults, clear_env),
        cmocka_unit_test_setup(test_flags, clear_env),
        cmocka_unit_test_setup(test_kafka_flags, clear_env),
        cmocka_unit_test_setup(test_compact_priority, clear_env),
        cmocka_unit_test_setup(test_env_and_precedence, clear_env),
        cmocka_unit_test_setup(test_errors_name_the_culprit, clear_env),
        cmocka_unit_test_setup(test_help_and_version, clear_env),
        cmocka_unit_test(test_value_parsers),
    };
    return cmocka_run_group_tests_name("config", tests, NULL, NULL);
}
