/*
 * tests/test_cluster_trace.c - cluster/trace.c: off without its variable;
 * with it, one line per index with each stage's time where it was marked
 * (the first mark stands, a second acknowledgement is the other
 * follower's), the entry's events, lines written behind the newest applied
 * and the rest at close; only the first node of a process traces.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "cluster/trace.h"
#include "tmpdir.h"

#define ENTRIES 600

static char prefix[512], path[600];

static int setup(void **state)
{
    (void)state;
    snprintf(prefix, sizeof prefix, "%s/krtrace-%d", kr_test_tmpdir(), (int)getpid());
    snprintf(path, sizeof path, "%s.7", prefix);
    setenv("KRAPPY_CLUSTER_TRACE", prefix, 1);
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    unlink(path);
    unsetenv("KRAPPY_CLUSTER_TRACE");
    return 0;
}

/* The fields of index i's line in the file (11 numbers), or -1. */
static int line_of(FILE *f, uint64_t i, uint64_t v[11])
{
    char buf[512];
    rewind(f);
    while (fgets(buf, sizeof buf, f) != NULL) {
        if (buf[0] == '#')
            continue;
        unsigned long long idx;
        unsigned long long x[10];
        int n = sscanf(buf, "%llu %llu %llu %llu %llu %llu %llu %llu %llu %llu %llu", &idx, &x[0],
                       &x[1], &x[2], &x[3], &x[4], &x[5], &x[6], &x[7], &x[8], &x[9]);
        assert_int_equal(n, 11);
        if (idx != i)
            continue;
        for (int k = 0; k < 10; k++)
            v[k] = x[k];
        return 0;
    }
    return -1;
}

static void test_off(void **state)
{
    (void)state;
    unsetenv("KRAPPY_CLUSTER_TRACE");
    kr_trace_open(7);
    assert_false(kr_trace_on());
    kr_trace_mark(KR_TRACE_COMMIT, 1); /* nothing to do, nothing to crash */
    kr_trace_note("snapshot taken", 1);
    kr_trace_close(7);
    assert_int_equal(access(path, F_OK), -1);
}

static void test_lines(void **state)
{
    (void)state;
    kr_trace_open(7);
    assert_true(kr_trace_on());
    kr_trace_open(8); /* a second node of the process: not traced */
    kr_trace_close(8);
    assert_true(kr_trace_on());
    for (uint64_t i = 1; i <= ENTRIES; i++) {
        kr_trace_mark_at(KR_TRACE_SUBMIT, i, 1000 * i);
        kr_trace_mark_at(KR_TRACE_APPEND, i, 1000 * i + 1);
        kr_trace_mark_at(KR_TRACE_APPEND, i, 1000 * i + 99); /* later: ignored */
        kr_trace_mark_at(KR_TRACE_ACK1, i, 1000 * i + 2);
        if (i % 2 == 0)
            kr_trace_mark_at(KR_TRACE_ACK1, i, 1000 * i + 3); /* the other follower */
        kr_trace_mark_at(KR_TRACE_COMMIT, i, 1000 * i + 4);
        kr_trace_events(i, 10 * i, 3);
        kr_trace_mark_at(KR_TRACE_APPLIED, i, 1000 * i + 5);
    }
    kr_trace_note("snapshot taken", 5);

    /* Before close: written up to some entries behind the newest. */
    FILE *f = fopen(path, "r");
    assert_non_null(f);
    uint64_t v[11];
    assert_int_equal(line_of(f, 100, v), 0);
    assert_int_equal(line_of(f, ENTRIES, v), -1);
    fclose(f);

    kr_trace_close(7);
    assert_false(kr_trace_on());
    f = fopen(path, "r");
    assert_non_null(f);
    for (uint64_t i = 1; i <= ENTRIES; i += 149) {
        assert_int_equal(line_of(f, i, v), 0);
        assert_int_equal(v[KR_TRACE_SUBMIT], 1000 * i);
        assert_int_equal(v[KR_TRACE_APPEND], 1000 * i + 1);
        assert_int_equal(v[KR_TRACE_STORED], 0); /* never marked */
        assert_int_equal(v[KR_TRACE_ACK1], 1000 * i + 2);
        assert_int_equal(v[KR_TRACE_ACK2], i % 2 == 0 ? 1000 * i + 3 : 0);
        assert_int_equal(v[KR_TRACE_COMMIT], 1000 * i + 4);
        assert_int_equal(v[KR_TRACE_TAKEN], 0);
        assert_int_equal(v[KR_TRACE_APPLIED], 1000 * i + 5);
        assert_int_equal(v[8], 10 * i);
        assert_int_equal(v[9], 3);
    }
    assert_int_equal(line_of(f, ENTRIES, v), 0);
    char buf[512];
    bool noted = false;
    rewind(f);
    while (fgets(buf, sizeof buf, f) != NULL)
        noted |= strncmp(buf, "# snapshot taken at 5 took ", 27) == 0;
    assert_true(noted);
    fclose(f);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_off, setup, teardown),
        cmocka_unit_test_setup_teardown(test_lines, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
