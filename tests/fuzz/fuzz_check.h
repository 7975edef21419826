/*
 * tests/fuzz/fuzz_check.h - what every fuzz target uses to say a property
 * failed: a trap, which libFuzzer reports as a crash with the input saved,
 * and the corpus replay (replay.c) as a failed run.
 */
#ifndef KR_FUZZ_CHECK_H
#define KR_FUZZ_CHECK_H

/* Trap (a crash the fuzzer reports) when a condition fails. */
#define FUZZ_CHECK(c)                                                                              \
    do {                                                                                           \
        if (!(c))                                                                                  \
            __builtin_trap();                                                                      \
    } while (0)

#endif
