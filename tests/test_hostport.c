/*
 * tests/test_hostport.c - util/hostport.c: every form of address, with the
 * client's defaults (KRAPPY_ADDR) and with the daemon's (a port required,
 * port 0 allowed); the sentences that say what is wrong; formatting.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <string.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>

#include "util/hostport.h"

typedef struct split_case {
    const char *in;
    int ok;
    const char *host, *port; /* when ok */
    const char *why;         /* when not: a part of the sentence */
} split_case;

static void check(const split_case *cases, size_t n, const kr_hostport *defaults, unsigned flags)
{
    for (size_t i = 0; i < n; i++) {
        kr_hostport hp = *defaults;
        char why[256];
        int r = kr_hostport_parse(cases[i].in, flags, &hp, why, sizeof why);
        if (cases[i].ok) {
            if (r != 0)
                fail_msg("\"%s\" refused: %s", cases[i].in, why);
            assert_string_equal(hp.host, cases[i].host);
            assert_string_equal(hp.port, cases[i].port);
            assert_string_equal(why, "");
        } else {
            if (r == 0)
                fail_msg("\"%s\" accepted as %s / %s", cases[i].in, hp.host, hp.port);
            if (strstr(why, cases[i].why) == NULL)
                fail_msg("\"%s\": \"%s\" does not say \"%s\"", cases[i].in, why, cases[i].why);
            /* a refusal leaves the defaults */
            assert_memory_equal(&hp, defaults, sizeof hp);
        }
    }
}

/* KRAPPY_ADDR: host and port may each be left out. */
static void test_client_forms(void **state)
{
    (void)state;
    static const split_case cases[] = {
        {NULL, 1, "127.0.0.1", "7070", NULL},
        {"", 1, "127.0.0.1", "7070", NULL},
        {"db1:9000", 1, "db1", "9000", NULL},
        {"db1", 1, "db1", "7070", NULL},
        {":17070", 1, "127.0.0.1", "17070", NULL},
        {"10.0.0.5:1", 1, "10.0.0.5", "1", NULL},
        {"[::1]:7071", 1, "::1", "7071", NULL},
        {"[fe80::1%eth0]", 1, "fe80::1%eth0", "7070", NULL},
        {"db1:65535", 1, "db1", "65535", NULL},
        {"db1:07070", 1, "db1", "07070", NULL},
        {"db1:", 0, NULL, NULL, "port \"\" is not a number from 1 to 65535"},
        {"db1:0", 0, NULL, NULL, "port \"0\" is not a number from 1 to 65535"},
        {"db1:65536", 0, NULL, NULL, "from 1 to 65535"},
        {"db1:70x", 0, NULL, NULL, "from 1 to 65535"},
        {"db1:+80", 0, NULL, NULL, "from 1 to 65535"},
        {"db1: 80", 0, NULL, NULL, "from 1 to 65535"},
        {"db1:123456", 0, NULL, NULL, "from 1 to 65535"},
        {"::1", 0, NULL, NULL, "write an IPv6 address in brackets, e.g. [::1]:7070"},
        {"::1:7070", 0, NULL, NULL, "more than one ':'"},
        {"[::1", 0, NULL, NULL, "'[' without ']'"},
        {"[::1]x", 0, NULL, NULL, "expected ':PORT' after ']'"},
        {"[]:7070", 0, NULL, NULL, "empty host in brackets"},
        {"[::1]:", 0, NULL, NULL, "from 1 to 65535"},
    };
    kr_hostport defaults = {"127.0.0.1", "7070"};
    check(cases, sizeof cases / sizeof cases[0], &defaults, 0);
}

/* --listen and --http: no host means every address, the port is required
 * and may be 0. */
static void test_daemon_forms(void **state)
{
    (void)state;
    static const split_case cases[] = {
        {"0.0.0.0:7070", 1, "0.0.0.0", "7070", NULL},
        {"[::1]:0", 1, "::1", "0", NULL},
        {":80", 1, "", "80", NULL},
        {"localhost:65535", 1, "localhost", "65535", NULL},
        {"localhost:65536", 0, NULL, NULL, "port \"65536\" is not a number from 0 to 65535"},
        {"localhost", 0, NULL, NULL, "address \"localhost\" has no port"},
        {"[::1]", 0, NULL, NULL, "has no port"},
        {"", 0, NULL, NULL, "has no port"},
        {"[::1]7070", 0, NULL, NULL, "expected ':PORT'"},
        {"a:b:1", 0, NULL, NULL, "more than one ':'"},
        {"h:", 0, NULL, NULL, "from 0 to 65535"},
    };
    kr_hostport defaults = {"", ""};
    check(cases, sizeof cases / sizeof cases[0], &defaults, KR_HOSTPORT_PORT_ZERO);
}

static void test_limits(void **state)
{
    (void)state;
    char addr[400], why[256];
    kr_hostport hp = {"127.0.0.1", "7070"};

    /* a host of KR_HOST_MAX bytes fits; one more does not, bracketed or not */
    memset(addr, 'a', KR_HOST_MAX);
    strcpy(addr + KR_HOST_MAX, ":1");
    assert_int_equal(kr_hostport_parse(addr, 0, &hp, why, sizeof why), 0);
    assert_int_equal(strlen(hp.host), KR_HOST_MAX);
    memset(addr, 'a', KR_HOST_MAX + 1);
    strcpy(addr + KR_HOST_MAX + 1, ":1");
    assert_int_equal(kr_hostport_parse(addr, 0, &hp, why, sizeof why), -1);
    assert_non_null(strstr(why, "the host is longer than 255 bytes"));
    addr[0] = '[';
    strcpy(addr + KR_HOST_MAX + 2, "]:1");
    assert_int_equal(kr_hostport_parse(addr, 0, &hp, why, sizeof why), -1);
    /* why may be NULL */
    assert_int_equal(kr_hostport_parse("::1", 0, &hp, NULL, 0), -1);

    assert_true(kr_port_valid("1", 0));
    assert_true(kr_port_valid("65535", 0));
    assert_false(kr_port_valid("0", 0));
    assert_true(kr_port_valid("0", KR_HOSTPORT_PORT_ZERO));
    assert_false(kr_port_valid("", KR_HOSTPORT_PORT_ZERO));
    assert_false(kr_port_valid("99999", KR_HOSTPORT_PORT_ZERO));
    assert_false(kr_port_valid("000001", 0)); /* six digits */
}

static void test_format(void **state)
{
    (void)state;
    char out[64];
    kr_hostport_format(out, sizeof out, "::1", "7070");
    assert_string_equal(out, "[::1]:7070");
    kr_hostport_format(out, sizeof out, "db1", "7070");
    assert_string_equal(out, "db1:7070");
    kr_hostport_format(out, 6, "db1", "7070"); /* cut, still terminated */
    assert_string_equal(out, "db1:7");
}

/* Socket addresses as peers and bound listeners are logged. */
static void test_sockaddr_format(void **state)
{
    (void)state;
    char out[64];
    uint16_t port = 1;
    struct sockaddr_in in = {.sin_family = AF_INET, .sin_port = htons(9092)};
    inet_pton(AF_INET, "127.0.0.1", &in.sin_addr);
    kr_sockaddr_format((const struct sockaddr *)&in, out, sizeof out, &port);
    assert_string_equal(out, "127.0.0.1:9092");
    assert_int_equal(port, 9092);
    struct sockaddr_in6 in6 = {.sin6_family = AF_INET6, .sin6_port = htons(7070)};
    inet_pton(AF_INET6, "::1", &in6.sin6_addr);
    kr_sockaddr_format((const struct sockaddr *)&in6, out, sizeof out, NULL);
    assert_string_equal(out, "[::1]:7070");
    struct sockaddr un = {.sa_family = AF_UNIX};
    kr_sockaddr_format(&un, out, sizeof out, &port);
    assert_string_equal(out, "?");
    assert_int_equal(port, 0);
    kr_sockaddr_format((const struct sockaddr *)&in, out, 6, NULL); /* cut, terminated */
    assert_string_equal(out, "127.0");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_client_forms),    cmocka_unit_test(test_daemon_forms),
        cmocka_unit_test(test_limits),          cmocka_unit_test(test_format),
        cmocka_unit_test(test_sockaddr_format),
    };

    return cmocka_run_group_tests_name("hostport", tests, NULL, NULL);
}
