/*
 * util/secret.h - comparing secrets (tokens, passwords) in a time that does
 * not depend on where they first differ, so that a client cannot learn a
 * token byte by byte from how long a refusal takes.
 */
#ifndef KR_UTIL_SECRET_H
#define KR_UTIL_SECRET_H

#include <stdbool.h>
#include <stddef.h>

/* true when a[0..alen) is the NUL-terminated secret, compared over the
 * whole secret whatever a holds (a's length only decides). */
bool kr_secret_equal(const void *a, size_t alen, const char *secret);

#endif
