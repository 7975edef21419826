/*
 * util/utf8.h - UTF-8 as RFC 3629 defines it: no overlong forms, no UTF-16
 * surrogates, nothing above U+10FFFF.
 *
 * Every escaper and validator of the code base reads text through these
 * two, so they all agree on what is valid.
 */
#ifndef KR_UTIL_UTF8_H
#define KR_UTIL_UTF8_H

#include <stddef.h>
#include <stdint.h>

/*
 * kr_utf8_seq_len - length (1 to 4) of the well-formed sequence that starts
 * at p[0], reading at most n bytes; 0 when p[0] starts none (a stray
 * continuation byte, an overlong form, a surrogate, a code point past
 * U+10FFFF, a sequence cut short by the end) or n is 0.
 */
size_t kr_utf8_seq_len(const uint8_t *p, size_t n);

/* 1 when s[0..n) is valid UTF-8 (n == 0 included), else 0. ASCII runs are
 * skipped eight bytes at a time. */
int kr_utf8_valid(const uint8_t *s, size_t n);

#endif
