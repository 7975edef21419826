/*
 * tests/loopback.h - a TCP port on 127.0.0.1 that nothing listens on right
 * now (the kernel picks it; it may be taken again before the test binds it,
 * which on a test machine does not happen in practice).
 */
#ifndef KR_TEST_LOOPBACK_H
#define KR_TEST_LOOPBACK_H

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

/* @return the port, or -1 when no socket could be bound. */
static inline int kr_test_free_port(void)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t len = sizeof a;
    int port = -1;
    if (fd >= 0 && bind(fd, (struct sockaddr *)&a, sizeof a) == 0 &&
        getsockname(fd, (struct sockaddr *)&a, &len) == 0)
        port = ntohs(a.sin_port);
    if (fd >= 0)
        close(fd);
    return port;
}

#endif
