/*
 * tests/test_io.c - util/io.c: whole writes at a position, resumed until
 * every byte is there; a socket drained of what it holds, telling "nothing
 * more now" from the peer's close and from an error.
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cmocka.h>

#include "tmpdir.h"
#include "util/io.h"

static void test_pwrite_all_at_a_position(void **state)
{
    (void)state;
    char path[300];
    snprintf(path, sizeof path, "%s/krappy-test-io-XXXXXX", kr_test_tmpdir());
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    unlink(path);
    size_t n = 1u << 20;
    uint8_t *p = malloc(n), *back = malloc(n);
    assert_non_null(p);
    assert_non_null(back);
    for (size_t i = 0; i < n; i++)
        p[i] = (uint8_t)(i * 7);
    assert_int_equal(kr_pwrite_all(fd, p, n, 4096), 0);
    assert_int_equal(pread(fd, back, n, 4096), (ssize_t)n);
    assert_memory_equal(back, p, n);
    assert_int_equal(lseek(fd, 0, SEEK_END), 4096 + (off_t)n);
    close(fd);
    free(p);
    free(back);
}

/* Everything sent is dropped; then the peer's close; then a closed fd. */
static void test_drain_socket(void **state)
{
    (void)state;
    int sv[2];
    assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
    char buf[10000];
    memset(buf, 'x', sizeof buf);
    assert_int_equal(send(sv[0], buf, sizeof buf, 0), (ssize_t)sizeof buf);
    assert_int_equal(kr_drain_socket(sv[1]), 1); /* all of it, and nothing more now */
    assert_int_equal(recv(sv[1], buf, sizeof buf, MSG_DONTWAIT), -1);
    assert_true(errno == EAGAIN || errno == EWOULDBLOCK);
    assert_int_equal(kr_drain_socket(sv[1]), 1); /* nothing at all: the same */
    assert_int_equal(send(sv[0], buf, 100, 0), 100);
    shutdown(sv[0], SHUT_WR);
    assert_int_equal(kr_drain_socket(sv[1]), 0); /* the bytes, then the close */
    close(sv[0]);
    close(sv[1]);
    errno = 0;
    assert_int_equal(kr_drain_socket(sv[1]), -1);
    assert_int_equal(errno, EBADF);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_pwrite_all_at_a_position),
        cmocka_unit_test(test_drain_socket),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
