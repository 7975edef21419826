/*
 * tests/test_fdplan.c - server/fdplan.c: the open file limit shared out -
 * every part its share, the data port's connections lowered when the limit
 * cannot hold them beside the rest, a limit too low refused with a
 * sentence, and the admin port's share gone with --http off.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <string.h>

#include <cmocka.h>

#include "server/config.h"
#include "server/fdplan.h"

static void config(kr_config *cfg, const char *http)
{
    char *argv[] = {"krappyd", "--http", (char *)http, NULL};
    char err[256];
    assert_int_equal(kr_config_parse(cfg, 3, argv, 0, err, sizeof err), KR_CONFIG_RUN);
}

/* Every descriptor of the limit has its part. */
static void assert_adds_up(const kr_fd_plan *p, uint64_t limit)
{
    assert_int_equal(p->segments + p->connections + p->admin + (size_t)p->rocksdb +
                         KR_FD_ROCKSDB_OWN + KR_FD_RESERVED,
                     limit);
}

static void test_plenty(void **state)
{
    (void)state;
    kr_config cfg;
    config(&cfg, "127.0.0.1:7071");
    kr_fd_plan p;
    char err[256];
    assert_int_equal(kr_fd_plan_share(&cfg, 20000, &p, err, sizeof err), 0);
    assert_int_equal(p.connections, cfg.max_connections);
    assert_int_equal(p.admin, cfg.http_max_connections);
    assert_int_equal(p.rocksdb, KR_FD_ROCKSDB_MAX);
    assert_adds_up(&p, 20000);
    kr_config_free(&cfg);
}

static void test_1024_lowers_the_connections(void **state)
{
    (void)state;
    kr_config cfg;
    config(&cfg, "127.0.0.1:7071");
    kr_fd_plan p;
    char err[256];
    assert_int_equal(kr_fd_plan_share(&cfg, 1024, &p, err, sizeof err), 0);
    assert_int_equal(p.rocksdb, KR_FD_ROCKSDB_MIN);
    assert_int_equal(p.segments, KR_FD_SEGMENTS_MIN);
    assert_true(p.connections < cfg.max_connections);
    assert_adds_up(&p, 1024);
    kr_config_free(&cfg);
}

static void test_too_low_and_http_off(void **state)
{
    (void)state;
    kr_config cfg;
    config(&cfg, "127.0.0.1:7071");
    kr_fd_plan p;
    char err[256];
    assert_int_equal(kr_fd_plan_share(&cfg, 200, &p, err, sizeof err), -1);
    assert_non_null(strstr(err, "ulimit -n"));
    assert_non_null(strstr(err, "200"));
    kr_config_free(&cfg);
    config(&cfg, "off");
    assert_int_equal(kr_fd_plan_share(&cfg, 1024, &p, err, sizeof err), 0);
    assert_int_equal(p.admin, 0);
    kr_config_free(&cfg);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_plenty),
        cmocka_unit_test(test_1024_lowers_the_connections),
        cmocka_unit_test(test_too_low_and_http_off),
    };
    return cmocka_run_group_tests_name("fdplan", tests, NULL, NULL);
}
