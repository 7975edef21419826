/*
 * util/hostport.h - network addresses written as text: "HOST:PORT" and its
 * shorter forms, read and written one way for the daemon's flags and for
 * the client's KRAPPY_ADDR.
 */
#ifndef KR_UTIL_HOSTPORT_H
#define KR_UTIL_HOSTPORT_H

#include <stddef.h>
#include <stdint.h>

struct sockaddr;

/* Longest host name or address (bytes, without the NUL): a DNS name. */
#define KR_HOST_MAX 255
/* Longest port text: "65535". */
#define KR_PORT_MAX 5
/* Longest "HOST:PORT", brackets included (bytes, without the NUL). */
#define KR_HOSTPORT_MAX (KR_HOST_MAX + KR_PORT_MAX + 3)

/* An address split in two, each part NUL-terminated; "" for a part that
 * is not there. */
typedef struct kr_hostport {
    char host[KR_HOST_MAX + 1];
    char port[KR_PORT_MAX + 1];
} kr_hostport;

/* Flags of kr_hostport_parse and kr_port_valid. */
#define KR_HOSTPORT_PORT_ZERO 1u /* accept port 0 (listen on any free port) */

/*
 * kr_hostport_parse - read an address: "HOST:PORT", "HOST", ":PORT",
 * "[V6ADDR]:PORT" or "[V6ADDR]". An IPv6 address must be in brackets (in
 * "::1:7070" the port cannot be told apart from the address). A port is 1
 * to 5 decimal digits naming 1..65535 (0..65535 with KR_HOSTPORT_PORT_ZERO);
 * a host is 1 to KR_HOST_MAX bytes.
 * @param hp   on entry, the defaults: a part s leaves out keeps its value,
 *             and when the port's default is "" an address without a port
 *             is refused. NULL or "" s names no part. Unchanged on failure.
 * @param why  on failure, a sentence saying what is wrong, quoting s (may
 *             be NULL)
 * @return 0, or -1 for a malformed address.
 */
int kr_hostport_parse(const char *s, unsigned flags, kr_hostport *hp, char *why, size_t whylen);

/* 1 when port is 1 to 5 decimal digits (no sign, no spaces) naming a port
 * 1..65535, or 0..65535 with KR_HOSTPORT_PORT_ZERO; else 0. */
int kr_port_valid(const char *port, unsigned flags);

/* "HOST:PORT", the host in brackets when it contains ':' (an IPv6
 * address), into out[0..outlen); always NUL-terminated (cut to fit). */
void kr_hostport_format(char *out, size_t outlen, const char *host, const char *port);

/*
 * kr_sockaddr_format - an IPv4 or IPv6 socket address as "HOST:PORT" (the
 * IPv6 host in brackets) into out[0..outlen), always NUL-terminated; "?"
 * for another family. *port (may be NULL) gets the port, 0 for another
 * family.
 */
void kr_sockaddr_format(const struct sockaddr *sa, char *out, size_t outlen, uint16_t *port);

#endif
