/*
 * util/secret.c - constant-time comparison of secrets (see secret.h).
 */
#include "util/secret.h"

#include <stdint.h>
#include <string.h>

bool kr_secret_equal(const void *a, size_t alen, const char *secret)
{
    const uint8_t *p = a;
    size_t n = strlen(secret);
    unsigned diff = alen != n;
    for (size_t i = 0; i < n; i++)
        diff |= (unsigned)((uint8_t)secret[i] ^ (i < alen ? p[i] : 0));
    return diff == 0;
}
