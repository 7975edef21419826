/*
 * tests/fuzz/check.h - how fuzz targets hold code to its promises: a
 * broken one traps (a crash the fuzzer and the corpus replay report).
 */
#ifndef KR_FUZZ_CHECK_H
#define KR_FUZZ_CHECK_H

#define FUZZ_CHECK(c)                                                                              \
    do {                                                                                           \
        if (!(c))                                                                                  \
            __builtin_trap();                                                                      \
    } while (0)

#endif
