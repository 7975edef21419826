/*
 * util/io.c - whole writes at a position, a socket drained (see io.h).
 */
#include "util/io.h"

#include <errno.h>
#include <sys/socket.h>
#include <sys/types.h>
#include <unistd.h>

int kr_pwrite_all(int fd, const void *p, size_t n, uint64_t pos)
{
    const uint8_t *b = p;
    while (n > 0) {
        ssize_t w = pwrite(fd, b, n, (off_t)pos);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0) {
            if (w == 0)
                errno = ENOSPC; /* pwrite wrote nothing and said nothing */
            return -1;
        }
        b += w;
        n -= (size_t)w;
        pos += (uint64_t)w;
    }
    return 0;
}

int kr_drain_socket(int fd)
{
    char sink[4096];
    ssize_t got;
    while ((got = recv(fd, sink, sizeof sink, MSG_DONTWAIT)) > 0)
        ;
    if (got == 0)
        return 0;
    return errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR ? 1 : -1;
}
