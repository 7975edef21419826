/*
 * util/secret.c - constant-time comparison of secrets (see secret.h).
 */
#include "util/secret.h"

#include <stdint.h>
#include <string.h>

bool kr_secret_equal(const void *given, size_t given_len, const char *secret)
{
    const uint8_t *g = given;
    size_t n = strlen(secret);
    /* A length mismatch is folded into the difference instead of returning
     * early, which would tell a prober the secret's length. */
    unsigned diff = given_len != n;
    for (size_t i = 0; i < n; i++)
        diff |= (unsigned)((uint8_t)secret[i] ^ (i < given_len ? g[i] : 0));
    return diff == 0;
}
