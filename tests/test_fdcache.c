/*
 * tests/test_fdcache.c - store/fdcache.c: at most max_open files stay
 * open, the least recently used idle one going first; pinned and dirty
 * files are never closed and the cache says it is crowded; a file freed
 * while pinned (and the cache freed after it) goes at its last put; when
 * the process runs out of descriptors an idle file is closed and the open
 * retried.
 */
#include <errno.h>
#include <fcntl.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>

#include <cmocka.h>

#include "store/fdcache.h"
#include "tmpdir.h"

#define N_FILES 12

static char dir[128];

static int setup(void **state)
{
    (void)state;
    snprintf(dir, sizeof dir, "%s/krappy-fdcache-XXXXXX", kr_test_tmpdir());
    assert_non_null(mkdtemp(dir));
    for (int i = 0; i < N_FILES; i++) {
        char path[192];
        snprintf(path, sizeof path, "%s/f%02d", dir, i);
        FILE *f = fopen(path, "w");
        assert_non_null(f);
        fprintf(f, "file %02d", i);
        fclose(f);
    }
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    char cmd[192];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    assert_int_equal(system(cmd), 0);
    return 0;
}

static kr_fdfile *file(kr_fdcache *c, int i)
{
    char name[8];
    snprintf(name, sizeof name, "f%02d", i);
    kr_fdfile *f = kr_fdfile_new(c, dir, name, O_RDONLY);
    assert_non_null(f);
    return f;
}

/* The file's content, read through the cache: "file NN". */
static void check_read(kr_fdfile *f, int i)
{
    int fd = kr_fdfile_get(f);
    assert_true(fd >= 0);
    char buf[16] = {0}, want[16];
    assert_int_equal(pread(fd, buf, 7, 0), 7);
    snprintf(want, sizeof want, "file %02d", i);
    assert_string_equal(buf, want);
    kr_fdfile_put(f);
}

static size_t open_now(kr_fdcache *c)
{
    size_t open;
    uint64_t opens;
    kr_fdcache_stats(c, &open, &opens);
    return open;
}

static uint64_t opens(kr_fdcache *c)
{
    size_t open;
    uint64_t n;
    kr_fdcache_stats(c, &open, &n);
    return n;
}

static void test_lru_within_the_limit(void **state)
{
    (void)state;
    kr_fdcache *c = kr_fdcache_new(3);
    assert_non_null(c);
    kr_fdfile *f[N_FILES];
    for (int i = 0; i < N_FILES; i++)
        f[i] = file(c, i);
    assert_int_equal(open_now(c), 0); /* nothing opened until used */
    for (int i = 0; i < N_FILES; i++) {
        check_read(f[i], i);
        assert_true(open_now(c) <= 3);
    }
    assert_int_equal(opens(c), N_FILES);
    /* The last three are open: reading them again opens nothing; reading
     * f0 closes the least recently used of them (f9), not f11. */
    check_read(f[11], 11);
    check_read(f[10], 10);
    check_read(f[9], 9);
    assert_int_equal(opens(c), N_FILES);
    check_read(f[11], 11);
    check_read(f[0], 0);
    assert_int_equal(opens(c), N_FILES + 1);
    check_read(f[11], 11);
    assert_int_equal(opens(c), N_FILES + 1);
    check_read(f[10], 10); /* f10 was the oldest when f0 came */
    assert_int_equal(opens(c), N_FILES + 2);
    for (int i = 0; i < N_FILES; i++)
        kr_fdfile_free(f[i]);
    assert_int_equal(open_now(c), 0);
    kr_fdcache_free(c);
}

static void test_pinned_and_dirty_stay_open(void **state)
{
    (void)state;
    kr_fdcache *c = kr_fdcache_new(2);
    kr_fdfile *a = file(c, 0), *b = file(c, 1), *d = file(c, 2);
    int fa = kr_fdfile_get(a), fb = kr_fdfile_get(b);
    assert_true(fa >= 0 && fb >= 0);
    assert_false(kr_fdcache_crowded(c));
    assert_false(kr_fdcache_has_room(c));
    /* Both pinned: a third opens past the limit ... */
    int fd = kr_fdfile_get(d);
    assert_true(fd >= 0);
    assert_int_equal(open_now(c), 3);
    assert_true(kr_fdcache_crowded(c));
    /* ... and closes when put back; a pinned file keeps its descriptor. */
    kr_fdfile_put(d);
    assert_int_equal(open_now(c), 2);
    assert_int_equal(kr_fdfile_get(a), fa);
    kr_fdfile_put(a);
    /* A dirty file is not closed to make room, even unpinned. */
    kr_fdfile_dirty(b, true);
    kr_fdfile_put(b);
    kr_fdfile_put(a);
    check_read(d, 2); /* closes a, the only idle one */
    assert_int_equal(open_now(c), 2);
    check_read(a, 0);
    assert_true(open_now(c) == 2 || open_now(c) == 3);
    assert_int_equal(kr_fdfile_get(b), fb); /* never closed */
    kr_fdfile_put(b);
    kr_fdfile_dirty(b, false);
    assert_true(open_now(c) <= 2);
    kr_fdfile_free(a);
    kr_fdfile_free(b);
    kr_fdfile_free(d);
    kr_fdcache_free(c);
}

static void test_freed_while_pinned(void **state)
{
    (void)state;
    kr_fdcache *c = kr_fdcache_new(4);
    kr_fdfile *a = file(c, 3);
    int fd = kr_fdfile_get(a);
    assert_true(fd >= 0);
    kr_fdfile_free(a);  /* a reply still sends from it */
    kr_fdcache_free(c); /* the store closes meanwhile */
    char buf[8];
    assert_int_equal(pread(fd, buf, 7, 0), 7); /* still open */
    kr_fdfile_put(a);                          /* frees the file, then the cache */
    errno = 0;
    assert_int_equal(fcntl(fd, F_GETFD), -1);
    assert_int_equal(errno, EBADF);
}

static void test_adopt_and_missing(void **state)
{
    (void)state;
    kr_fdcache *c = kr_fdcache_new(4);
    char path[192];
    snprintf(path, sizeof path, "%s/f05", dir);
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    assert_true(fd >= 0);
    kr_fdfile *a = file(c, 5);
    kr_fdfile_adopt(a, fd); /* pinned once */
    assert_int_equal(open_now(c), 1);
    assert_int_equal(kr_fdfile_get(a), fd);
    kr_fdfile_put(a);
    kr_fdfile_put(a);
    assert_int_equal(opens(c), 0);
    assert_int_equal(kr_fdfile_get(a), fd); /* still open: idle now */
    kr_fdfile_put(a);
    kr_fdfile *gone = kr_fdfile_new(c, dir, "nope", O_RDONLY);
    assert_int_equal(kr_fdfile_get(gone), -1);
    assert_int_equal(errno, ENOENT);
    assert_null(kr_fdfile_new(c, dir, "a-name-longer-than-thirty-two-bytes", O_RDONLY));
    kr_fdfile_free(gone);
    kr_fdfile_free(a);
    kr_fdcache_free(c);
}

/* Out of descriptors (the process's limit, shared with everything else):
 * the cache closes an idle file of its own and opens again. */
static void test_emfile_closes_an_idle_file(void **state)
{
    (void)state;
    struct rlimit old;
    assert_int_equal(getrlimit(RLIMIT_NOFILE, &old), 0);
    kr_fdcache *c = kr_fdcache_new(100);
    kr_fdfile *f[N_FILES];
    for (int i = 0; i < N_FILES; i++)
        f[i] = file(c, i);
    check_read(f[0], 0);
    check_read(f[1], 1);
    /* The lowest free descriptor is the limit: nothing more opens. */
    int probe = open("/dev/null", O_RDONLY | O_CLOEXEC);
    assert_true(probe >= 0);
    struct rlimit low = {(rlim_t)probe, old.rlim_max};
    close(probe);
    assert_int_equal(setrlimit(RLIMIT_NOFILE, &low), 0);
    check_read(f[2], 2); /* closed f0 to open */
    check_read(f[3], 3); /* closed f1 */
    assert_int_equal(setrlimit(RLIMIT_NOFILE, &old), 0);
    assert_int_equal(open_now(c), 2);
    for (int i = 0; i < N_FILES; i++)
        kr_fdfile_free(f[i]);
    kr_fdcache_free(c);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_lru_within_the_limit, setup, teardown),
        cmocka_unit_test_setup_teardown(test_pinned_and_dirty_stay_open, setup, teardown),
        cmocka_unit_test_setup_teardown(test_freed_while_pinned, setup, teardown),
        cmocka_unit_test_setup_teardown(test_adopt_and_missing, setup, teardown),
        cmocka_unit_test_setup_teardown(test_emfile_closes_an_idle_file, setup, teardown),
    };
    return cmocka_run_group_tests_name("fdcache", tests, NULL, NULL);
}
