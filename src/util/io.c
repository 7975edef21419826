/*
 * util/io.c - whole writes at a position (see io.h).
 */
#include "util/io.h"

#include <errno.h>
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
