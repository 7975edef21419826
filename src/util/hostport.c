/*
 * util/hostport.c - addresses as text (see hostport.h).
 */
#include "util/hostport.h"

#include <stdio.h>
#include <string.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>

int kr_port_valid(const char *port, unsigned flags)
{
    size_t n = strlen(port);
    if (n == 0 || n > KR_PORT_MAX)
        return 0;
    unsigned long v = 0;
    for (size_t i = 0; i < n; i++) {
        if (port[i] < '0' || port[i] > '9')
            return 0;
        v = v * 10 + (unsigned long)(port[i] - '0');
    }
    return v <= 65535 && (v >= 1 || (flags & KR_HOSTPORT_PORT_ZERO));
}

void kr_hostport_format(char *out, size_t outlen, const char *host, const char *port)
{
    if (strchr(host, ':') != NULL)
        snprintf(out, outlen, "[%s]:%s", host, port);
    else
        snprintf(out, outlen, "%s:%s", host, port);
}

/* Copy n bytes of s into dst (KR_HOST_MAX + 1 bytes), NUL-terminated. */
static int take_host(char *dst, const char *s, size_t n)
{
    if (n > KR_HOST_MAX)
        return -1;
    memcpy(dst, s, n);
    dst[n] = '\0';
    return 0;
}

int kr_hostport_parse(const char *s, unsigned flags, kr_hostport *hp, char *why, size_t whylen)
{
    char dummy[1];
    if (why == NULL) {
        why = dummy;
        whylen = sizeof dummy;
    }
    why[0] = '\0';
    kr_hostport r = *hp;
    const char *port = NULL; /* the text after the host's ':' */

    if (s == NULL)
        s = "";
    if (s[0] == '[') {
        const char *close = strchr(s, ']');
        if (close == NULL) {
            snprintf(why, whylen, "address \"%s\" has '[' without ']' (write [::1]:7070)", s);
            return -1;
        }
        size_t hlen = (size_t)(close - s - 1);
        if (hlen == 0) {
            snprintf(why, whylen, "address \"%s\" has an empty host in brackets", s);
            return -1;
        }
        if (take_host(r.host, s + 1, hlen) < 0)
            goto too_long;
        if (close[1] == ':') {
            port = close + 2;
        } else if (close[1] != '\0') {
            snprintf(why, whylen, "address \"%s\": expected ':PORT' after ']'", s);
            return -1;
        }
    } else {
        const char *colon = strchr(s, ':');
        if (colon != NULL && strchr(colon + 1, ':') != NULL) {
            snprintf(why, whylen,
                     "address \"%s\" has more than one ':'; write an IPv6 address in brackets, "
                     "e.g. [::1]:7070",
                     s);
            return -1;
        }
        size_t hlen = colon != NULL ? (size_t)(colon - s) : strlen(s);
        if (hlen > 0 && take_host(r.host, s, hlen) < 0)
            goto too_long;
        if (colon != NULL)
            port = colon + 1;
    }
    if (port != NULL) {
        if (!kr_port_valid(port, flags)) {
            snprintf(why, whylen, "address \"%s\": port \"%s\" is not a number from %d to 65535", s,
                     port, (flags & KR_HOSTPORT_PORT_ZERO) ? 0 : 1);
            return -1;
        }
        strcpy(r.port, port);
    } else if (r.port[0] == '\0') {
        snprintf(why, whylen, "address \"%s\" has no port (write HOST:PORT)", s);
        return -1;
    }
    *hp = r;
    return 0;

too_long:
    snprintf(why, whylen, "address \"%.40s...\": the host is longer than %d bytes", s, KR_HOST_MAX);
    return -1;
}

void kr_sockaddr_format(const struct sockaddr *sa, char *out, size_t outlen, uint16_t *port)
{
    char host[INET6_ADDRSTRLEN] = "?";
    uint16_t p = 0;
    if (sa->sa_family == AF_INET) {
        const struct sockaddr_in *in = (const struct sockaddr_in *)(const void *)sa;
        inet_ntop(AF_INET, &in->sin_addr, host, sizeof host);
        p = ntohs(in->sin_port);
        snprintf(out, outlen, "%s:%u", host, p);
    } else if (sa->sa_family == AF_INET6) {
        const struct sockaddr_in6 *in6 = (const struct sockaddr_in6 *)(const void *)sa;
        inet_ntop(AF_INET6, &in6->sin6_addr, host, sizeof host);
        p = ntohs(in6->sin6_port);
        snprintf(out, outlen, "[%s]:%u", host, p);
    } else {
        snprintf(out, outlen, "?");
    }
    if (port != NULL)
        *port = p;
}
