/*
 * tests/tmpdir.h - where tests put scratch files: $TMPDIR when it is set
 * (a Nix build sandbox has no /tmp and points TMPDIR at its build directory),
 * else /tmp.
 */
#ifndef KR_TEST_TMPDIR_H
#define KR_TEST_TMPDIR_H

#include <stdlib.h>

static inline const char *kr_test_tmpdir(void)
{
    const char *t = getenv("TMPDIR");
    return t != NULL && t[0] == '/' ? t : "/tmp";
}

#endif
