/*
 * util/secret.h - comparing a secret a client sent with the one configured,
 * in time that does not depend on where they differ, or on whether their
 * lengths do. Knows nothing of krappy.
 */
#ifndef KR_UTIL_SECRET_H
#define KR_UTIL_SECRET_H

#include <stdbool.h>
#include <stddef.h>

/*
 * kr_secret_equal - whether the `given_len` bytes at `given` (any bytes, NUL
 * included; not NUL-terminated) equal the NUL-terminated `secret`. Every
 * byte of the secret is looked at whatever `given` holds, so the time taken
 * depends only on the secret's length.
 * @return true when equal.
 */
bool kr_secret_equal(const void *given, size_t given_len, const char *secret);

#endif
