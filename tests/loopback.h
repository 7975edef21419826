/*
 * tests/loopback.h - a TCP port on 127.0.0.1 that nothing uses right now,
 * for a server a test starts a moment later.
 *
 * The port comes from below Linux's ephemeral range (32768-60999 by
 * default): a port the kernel hands out for bind(0) is also what it hands
 * out to outgoing connections, so another test's connect() could take it
 * in the gap before the server binds it ("address already in use"). Below
 * that range only another explicit bind competes, and the start is random
 * per process, so two test processes rarely probe the same ports.
 */
#ifndef KR_TEST_LOOPBACK_H
#define KR_TEST_LOOPBACK_H

#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdint.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define KR_TEST_PORT_LOW  20000
#define KR_TEST_PORT_SPAN 12000 /* up to 31999 */

/* Whether `port` on 127.0.0.1 can be bound now (without SO_REUSEADDR, so
 * a port still in TIME_WAIT counts as taken too). */
static inline int kr_test_port_bindable(int port)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    if (fd < 0)
        return 0;
    struct sockaddr_in a = {.sin_family = AF_INET,
                            .sin_port = htons((uint16_t)port),
                            .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    int ok = bind(fd, (struct sockaddr *)&a, sizeof a) == 0;
    close(fd);
    return ok;
}

/* @return a port free right now, or -1 when none of the range is. */
static inline int kr_test_free_port(void)
{
    static unsigned next; /* the ports of one process follow each other */
    if (next == 0) {
        struct timespec ts;
        clock_gettime(CLOCK_MONOTONIC, &ts);
        next = (unsigned)getpid() * 7919u + (unsigned)ts.tv_nsec;
    }
    for (unsigned tries = 0; tries < KR_TEST_PORT_SPAN; tries++) {
        int port = KR_TEST_PORT_LOW + (int)(next++ % KR_TEST_PORT_SPAN);
        if (kr_test_port_bindable(port))
            return port;
    }
    return -1;
}

#endif
