/*
 * util/json.h - text as the inside of a JSON string (RFC 8259), the one
 * escaper behind the log, the admin API, the CBOR renderer and the CLI.
 *
 * The rules: '"' and '\' get a backslash; \b \f \n \r \t their short
 * escapes; every other C0 control, DEL and every C1 control (U+0080 to
 * U+009F) becomes \u00XX (lower-case hex); each byte that does not belong to
 * a well-formed UTF-8 sequence (utf8.h) becomes \ufffd. Everything else,
 * valid UTF-8 included, passes through. So the result is always valid UTF-8,
 * always a valid JSON string body, and safe to print on a terminal: no
 * escape sequence of the input survives.
 *
 * One core (kr_json_esc_next) and one thin adapter per sink: a kr_buf, a
 * char array with a hard end, a FILE.
 */
#ifndef KR_UTIL_JSON_H
#define KR_UTIL_JSON_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "util/buf.h"

/* The longest escape one input unit becomes: \u00XX and \ufffd. */
#define KR_JSON_ESC_MAX 6

/*
 * kr_json_esc_next - the next piece of s[0..n) (n >= 1): either bytes that
 * stand for themselves, returned in place (*out == s: a run of plain ASCII,
 * or one multi-byte UTF-8 sequence), or the escape of one unit, written to
 * esc (*out == esc).
 * @param out, outlen  receive what to write for the piece
 * @return the input bytes the piece covers (at least 1).
 */
size_t kr_json_esc_next(const uint8_t *s, size_t n, char esc[KR_JSON_ESC_MAX], const char **out,
                        size_t *outlen);

/* Append the escaped s[0..n) to b (no quotes). A refused append sets
 * b->failed (see buf.h). */
void kr_json_esc_buf(kr_buf *b, const void *s, size_t n);

/*
 * kr_json_esc_mem - write as much of the escaped s[0..n) as fits into
 * dst[0..cap) (no quotes, no NUL): escapes and UTF-8 sequences whole or not
 * at all, runs of ASCII up to the last byte that fits, so a cut never
 * splits a unit.
 * @param written  receives the bytes written to dst
 * @return the input bytes written out: n when everything fit.
 */
size_t kr_json_esc_mem(char *dst, size_t cap, size_t *written, const void *s, size_t n);

/* Write s[0..n) to f as a whole JSON string, quotes included. */
void kr_json_str_file(FILE *f, const void *s, size_t n);

#endif
