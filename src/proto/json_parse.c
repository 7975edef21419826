/*
 * proto/json_parse.c - JSON parsed into CBOR (kr_json_to_cbor, behind
 * libkrappy's krappy_json_to_cbor and the admin API's POST bodies), and the
 * JSON event lines of `krappy produce --json` (kr_json_event_parse).
 *
 * A parser that does no I/O: text in, CBOR out, appended to a kr_buf whose
 * cap bounds it. Strings and containers are written first and get their
 * head once their length is known; numbers become the shortest CBOR that
 * holds them exactly (integers as integers, floats as half, single or
 * double); every failure says what and at which byte.
 */
#include "proto/json_parse.h"

#include <locale.h>
#include <math.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "proto/cbor.h"
#include "proto/cbor_text.h"
#include "util/buf.h"
#include "util/json.h"
#include "util/utf8.h"

typedef struct jparse {
    const uint8_t *s;
    size_t len, pos;
    kr_buf *o;
    char *why;
    size_t whylen;
    locale_t c_locale; /* made on the first float, for strtod_l */
    int depth;
    bool nomem;
} jparse;

__attribute__((format(printf, 2, 3))) static int jfail(jparse *j, const char *fmt, ...)
{
    char msg[200];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    if (j->why != NULL && j->whylen > 0) {
        if (j->pos < j->len)
            snprintf(j->why, j->whylen, "%s at byte %zu", msg, j->pos + 1);
        else
            snprintf(j->why, j->whylen, "%s at the end of the text", msg);
    }
    return -1;
}

static void jws(jparse *j)
{
    while (j->pos < j->len && (j->s[j->pos] == ' ' || j->s[j->pos] == '\t' ||
                               j->s[j->pos] == '\n' || j->s[j->pos] == '\r'))
        j->pos++;
}

/* The low `bytes` bytes of n at dst, most significant first (as CBOR
 * writes every number). */
static void put_be(uint8_t *dst, uint64_t n, int bytes)
{
    for (int i = 0; i < bytes; i++)
        dst[i] = (uint8_t)(n >> (8 * (bytes - 1 - i)));
}

/* A shortest CBOR head for major type `major` and argument n. */
static size_t cbor_head(uint8_t h[9], unsigned major, uint64_t n)
{
    uint8_t m = (uint8_t)(major << 5);
    if (n < 24) {
        h[0] = (uint8_t)(m | n);
        return 1;
    }
    int bytes = n <= 0xff ? 1 : n <= 0xffff ? 2 : n <= 0xffffffffu ? 4 : 8;
    h[0] = (uint8_t)(m | (bytes == 1 ? 24 : bytes == 2 ? 25 : bytes == 4 ? 26 : 27));
    put_be(h + 1, n, bytes);
    return (size_t)bytes + 1;
}

/* Insert a head before the bytes written since `at` (a string's content or
 * a container's children, whose length or count is known only now). */
static int insert_head(jparse *j, size_t at, unsigned major, uint64_t n)
{
    uint8_t h[9];
    size_t hl = cbor_head(h, major, n);
    kr_buf *o = j->o;
    if (kr_buf_reserve(o, hl) < 0) {
        j->nomem = true;
        return -1;
    }
    memmove(o->data + at + hl, o->data + at, o->len - at);
    memcpy(o->data + at, h, hl);
    o->len += hl;
    return 0;
}

/* 1 with the value of 4 hex digits at p, else 0. */
static int hex4(const uint8_t *p, unsigned *v)
{
    *v = 0;
    for (int i = 0; i < 4; i++) {
        uint8_t ch = p[i];
        unsigned d = ch >= '0' && ch <= '9'   ? (unsigned)(ch - '0')
                     : ch >= 'a' && ch <= 'f' ? (unsigned)(ch - 'a' + 10)
                     : ch >= 'A' && ch <= 'F' ? (unsigned)(ch - 'A' + 10)
                                              : 16;
        if (d == 16)
            return 0;
        *v = *v << 4 | d;
    }
    return 1;
}

static void put_utf8(kr_buf *o, uint32_t cp)
{
    uint8_t u[4];
    size_t n;
    if (cp < 0x80) {
        u[0] = (uint8_t)cp, n = 1;
    } else if (cp < 0x800) {
        u[0] = (uint8_t)(0xc0 | cp >> 6), u[1] = (uint8_t)(0x80 | (cp & 63)), n = 2;
    } else if (cp < 0x10000) {
        u[0] = (uint8_t)(0xe0 | cp >> 12), u[1] = (uint8_t)(0x80 | ((cp >> 6) & 63));
        u[2] = (uint8_t)(0x80 | (cp & 63)), n = 3;
    } else {
        u[0] = (uint8_t)(0xf0 | cp >> 18), u[1] = (uint8_t)(0x80 | ((cp >> 12) & 63));
        u[2] = (uint8_t)(0x80 | ((cp >> 6) & 63)), u[3] = (uint8_t)(0x80 | (cp & 63)), n = 4;
    }
    kr_buf_append(o, u, n);
}

/* The escapes of one letter after a backslash, and the characters they
 * stand for ("\u" is read apart). */
static const char esc_letters[] = "\"\\/bfnrt";
static const char esc_chars[] = "\"\\/\b\f\n\r\t";

/* A JSON string at j->pos (the opening quote) as a CBOR text string. */
static int jstring(jparse *j)
{
    kr_buf *o = j->o;
    size_t at = o->len;

    j->pos++;
    for (;;) {
        size_t run = j->pos;
        while (run < j->len && j->s[run] != '"' && j->s[run] != '\\' && j->s[run] >= 0x20)
            run++;
        kr_buf_append(o, j->s + j->pos, run - j->pos);
        j->pos = run;
        if (j->pos >= j->len)
            return jfail(j, "unterminated string");
        uint8_t ch = j->s[j->pos];
        if (ch == '"') {
            j->pos++;
            break;
        }
        if (ch < 0x20)
            return jfail(j, "control character 0x%02x in a string (write it as \\u%04x)", ch, ch);
        /* a backslash */
        if (j->pos + 1 >= j->len)
            return jfail(j, "unterminated string");
        uint8_t e = j->s[j->pos + 1];
        const char *hit = memchr(esc_letters, e, sizeof esc_letters - 1);
        if (hit != NULL) {
            kr_buf_append(o, &esc_chars[hit - esc_letters], 1);
            j->pos += 2;
            continue;
        }
        if (e != 'u') {
            j->pos++;
            return jfail(j, "unknown escape '\\%c' in a string", e >= 0x20 && e < 0x7f ? e : '?');
        }
        unsigned u, lo;
        if (j->len - j->pos < 6 || !hex4(j->s + j->pos + 2, &u))
            return jfail(j, "\\u needs four hex digits");
        j->pos += 6;
        uint32_t cp = u;
        if (u >= 0xdc00 && u <= 0xdfff) {
            j->pos -= 6;
            return jfail(j, "\\u%04x is a lone low surrogate", u);
        }
        if (u >= 0xd800 && u <= 0xdbff) {
            if (j->len - j->pos < 6 || j->s[j->pos] != '\\' || j->s[j->pos + 1] != 'u' ||
                !hex4(j->s + j->pos + 2, &lo) || lo < 0xdc00 || lo > 0xdfff) {
                j->pos -= 6;
                return jfail(j, "\\u%04x (a high surrogate) is not followed by a low one", u);
            }
            j->pos += 6;
            cp = 0x10000 + ((u - 0xd800) << 10) + (lo - 0xdc00);
        }
        put_utf8(o, cp);
    }
    if (o->failed) {
        j->nomem = true;
        return -1;
    }
    return insert_head(j, at, 3, o->len - at);
}

/* Half precision bits holding d exactly, or -1. d is finite, not zero. */
static int32_t half_exact(double d)
{
    uint32_t sign = signbit(d) ? 0x8000 : 0;
    double a = fabs(d);
    int e;
    double m = frexp(a, &e); /* a = m * 2^e, 0.5 <= m < 1 */
    int ex = e - 1;          /* a = (2m) * 2^ex, 1 <= 2m < 2 */
    if (ex > 15)
        return -1;
    if (ex >= -14) {
        double frac = (2 * m - 1) * 1024;
        if (frac != floor(frac))
            return -1;
        return (int32_t)(sign | (uint32_t)(ex + 15) << 10 | (uint32_t)frac);
    }
    double frac = a * 16777216.0; /* subnormal: a = frac * 2^-24 */
    if (frac != floor(frac) || frac >= 1024)
        return -1;
    return (int32_t)(sign | (uint32_t)frac);
}

/* A float in the shortest of half, single and double that holds it. */
static void put_cbor_float(kr_buf *o, double d)
{
    uint8_t b[9];
    size_t n;
    int32_t h = -1;

    if (isnan(d))
        h = 0x7e00;
    else if (isinf(d))
        h = d > 0 ? 0x7c00 : 0xfc00;
    else if (d == 0)
        h = signbit(d) ? 0x8000 : 0;
    else
        h = half_exact(d);
    if (h >= 0) {
        b[0] = 0xf9;
        put_be(b + 1, (uint64_t)h, 2);
        n = 3;
    } else if ((double)(float)d == d) {
        float f = (float)d;
        uint32_t u;
        memcpy(&u, &f, 4);
        b[0] = 0xfa;
        put_be(b + 1, u, 4);
        n = 5;
    } else {
        uint64_t u;
        memcpy(&u, &d, 8);
        b[0] = 0xfb;
        put_be(b + 1, u, 8);
        n = 9;
    }
    kr_buf_append(o, b, n);
}

/* Longest number text read (beyond it no double gains precision). */
#define KR_JSON_NUMBER_MAX 800

static bool jdigit(const jparse *j, size_t i)
{
    return i < j->len && j->s[i] >= '0' && j->s[i] <= '9';
}

/* One digit or more at j->pos, all taken; else fail saying `what`. */
static int jdigits(jparse *j, const char *what)
{
    if (!jdigit(j, j->pos))
        return jfail(j, "%s", what);
    while (jdigit(j, j->pos))
        j->pos++;
    return 0;
}

static int jnumber(jparse *j)
{
    size_t st = j->pos;
    bool neg = false, integer = true;
    const uint8_t *s = j->s;

    if (s[j->pos] == '-') {
        neg = true;
        j->pos++;
    }
    if (j->pos < j->len && s[j->pos] == '0')
        j->pos++;
    else if (jdigits(j, "expected a digit") < 0)
        return -1;
    size_t int_end = j->pos;
    if (j->pos < j->len && s[j->pos] == '.') {
        j->pos++;
        if (jdigits(j, "expected a digit after the decimal point") < 0)
            return -1;
        integer = false;
    }
    if (j->pos < j->len && (s[j->pos] == 'e' || s[j->pos] == 'E')) {
        j->pos++;
        if (j->pos < j->len && (s[j->pos] == '+' || s[j->pos] == '-'))
            j->pos++;
        if (jdigits(j, "expected a digit in the exponent") < 0)
            return -1;
        integer = false;
    }
    if (integer) {
        uint64_t mag = 0;
        bool over = false;
        for (size_t i = st + neg; i < int_end; i++) {
            unsigned d = (unsigned)(s[i] - '0');
            if (mag > (UINT64_MAX - d) / 10)
                over = true;
            else
                mag = mag * 10 + d;
        }
        if (!over) {
            if (!neg)
                kr_cbor_put_uint(j->o, mag);
            else if (mag == 0)
                kr_cbor_put_uint(j->o, 0);
            else
                kr_cbor_put_negint(j->o, mag - 1);
            return 0;
        }
        static const char two64[] = "18446744073709551616";
        if (neg && int_end - st - 1 == sizeof two64 - 1 &&
            memcmp(s + st + 1, two64, sizeof two64 - 1) == 0) {
            kr_cbor_put_negint(j->o, UINT64_MAX);
            return 0;
        }
    }
    size_t n = j->pos - st;
    char buf[KR_JSON_NUMBER_MAX + 1];
    if (n > KR_JSON_NUMBER_MAX) {
        j->pos = st;
        return jfail(j, "number longer than %d characters", KR_JSON_NUMBER_MAX);
    }
    memcpy(buf, s + st, n);
    buf[n] = '\0';
    if (j->c_locale == (locale_t)0) {
        j->c_locale = newlocale(LC_ALL_MASK, "C", (locale_t)0);
        if (j->c_locale == (locale_t)0) {
            j->nomem = true;
            return -1;
        }
    }
    put_cbor_float(j->o, strtod_l(buf, NULL, j->c_locale));
    return 0;
}

static int jvalue(jparse *j);

/* An array or object at j->pos, as a definite CBOR array or map. */
static int jcontainer(jparse *j)
{
    bool obj = j->s[j->pos] == '{';
    char close = obj ? '}' : ']';
    size_t at = j->o->len;
    uint64_t n = 0;

    if (++j->depth > KR_CBOR_TEXT_MAX_DEPTH)
        return jfail(j, "nested deeper than %d levels", KR_CBOR_TEXT_MAX_DEPTH);
    j->pos++;
    jws(j);
    if (j->pos < j->len && j->s[j->pos] == close) {
        j->pos++;
    } else {
        for (;;) {
            if (obj) {
                if (j->pos >= j->len || j->s[j->pos] != '"')
                    return jfail(j, "expected a member name (a string)");
                if (jstring(j) < 0)
                    return -1;
                jws(j);
                if (j->pos >= j->len || j->s[j->pos] != ':')
                    return jfail(j, "expected ':'");
                j->pos++;
            }
            if (jvalue(j) < 0)
                return -1;
            n++;
            jws(j);
            if (j->pos < j->len && j->s[j->pos] == ',') {
                j->pos++;
                jws(j);
                continue;
            }
            if (j->pos < j->len && j->s[j->pos] == close) {
                j->pos++;
                break;
            }
            return jfail(j, obj ? "expected ',' or '}'" : "expected ',' or ']'");
        }
    }
    j->depth--;
    return insert_head(j, at, obj ? 5 : 4, n);
}

static int jliteral(jparse *j, const char *word, uint8_t byte)
{
    size_t n = strlen(word);
    if (j->len - j->pos < n || memcmp(j->s + j->pos, word, n) != 0)
        return jfail(j, "expected a value");
    j->pos += n;
    kr_buf_append(j->o, &byte, 1);
    return 0;
}

static int jvalue(jparse *j)
{
    jws(j);
    if (j->pos >= j->len)
        return jfail(j, "expected a value");
    int rc;
    switch (j->s[j->pos]) {
    case '{':
    case '[':
        rc = jcontainer(j);
        break;
    case '"':
        rc = jstring(j);
        break;
    case 't':
        rc = jliteral(j, "true", 0xf5);
        break;
    case 'f':
        rc = jliteral(j, "false", 0xf4);
        break;
    case 'n':
        rc = jliteral(j, "null", 0xf6);
        break;
    default:
        if (j->s[j->pos] == '-' || (j->s[j->pos] >= '0' && j->s[j->pos] <= '9'))
            rc = jnumber(j);
        else
            rc = jfail(j, "expected a value");
    }
    if (rc == 0 && j->o->failed) {
        j->nomem = true;
        rc = -1;
    }
    return rc;
}

krappy_err kr_json_to_cbor(const char *json, size_t len, kr_buf *out, char *why, size_t whylen)
{
    jparse j = {(const uint8_t *)json, len, 0, out, why, whylen, (locale_t)0, 0, false};
    krappy_err e = KRAPPY_OK;

    if (why != NULL && whylen > 0)
        why[0] = '\0';
    if (json == NULL && len > 0)
        return KRAPPY_E_USAGE;
    size_t start = out->len;
    if (!kr_utf8_valid(j.s, len)) {
        jfail(&j, "the text is not valid UTF-8");
        return KRAPPY_E_USAGE;
    }
    if (jvalue(&j) < 0) {
        e = j.nomem ? KRAPPY_E_NOMEM : KRAPPY_E_USAGE;
    } else {
        jws(&j);
        if (j.pos < j.len) {
            jfail(&j, "unexpected text after the JSON value");
            e = KRAPPY_E_USAGE;
        }
    }
    if (j.c_locale != (locale_t)0)
        freelocale(j.c_locale);
    if (e == KRAPPY_E_NOMEM && why != NULL && whylen > 0)
        snprintf(why, whylen, "out of memory (or over the output limit) encoding JSON");
    if (e != KRAPPY_OK) {
        out->len = start;
        out->failed = false;
    }
    return e;
}

/* A member name as C text, for messages (names are short): escaped as in a
 * JSON string, so that it is valid UTF-8 and holds no control character. */
static void name_of(const kr_cbor_item *k, char *buf, size_t len)
{
    uint8_t raw[64];
    size_t n = kr_cbor_str_copy(k, raw, sizeof raw), w;
    kr_json_esc_mem(buf, len - 1, &w, raw, n < sizeof raw ? n : sizeof raw);
    buf[w] = '\0';
}

/* The value of one base64url or hex digit, or -1. */
static int digit_of(uint8_t c, bool hex)
{
    if (hex)
        return c >= '0' && c <= '9'   ? c - '0'
               : c >= 'a' && c <= 'f' ? c - 'a' + 10
               : c >= 'A' && c <= 'F' ? c - 'A' + 10
                                      : -1;
    return c >= 'A' && c <= 'Z'   ? c - 'A'
           : c >= 'a' && c <= 'z' ? c - 'a' + 26
           : c >= '0' && c <= '9' ? c - '0' + 52
           : c == '-'             ? 62
           : c == '_'             ? 63
                                  : -1;
}

/*
 * A header value given as {"hex": "00ff"} or {"base64url": "AP8"} (how the
 * CLI and the admin API show values that are not UTF-8), decoded into out
 * (at least as long as the text). @return its length, or -1 when v is not
 * one of these.
 */
static long header_bytes(const kr_cbor_item *v, uint8_t *out)
{
    kr_cbor_item k, s;
    kr_cbor_iter it;
    if (v->kind != KR_CBOR_MAP || v->u != 1 || v->indefinite)
        return -1;
    kr_cbor_iter_init(&it, v);
    if (kr_cbor_iter_next(&it, &k) != 1 || kr_cbor_iter_next(&it, &s) != 1 ||
        s.kind != KR_CBOR_TEXT || s.indefinite)
        return -1;
    bool hex = kr_cbor_text_eq(&k, "hex");
    if (!hex && !kr_cbor_text_eq(&k, "base64url"))
        return -1;
    size_t n = 0, bits = 0;
    uint32_t acc = 0;
    for (size_t i = 0; i < s.str_len; i++) {
        int d = digit_of(s.str[i], hex);
        if (d < 0)
            return -1;
        acc = acc << (hex ? 4 : 6) | (uint32_t)d;
        bits += hex ? 4 : 6;
        if (bits >= 8) {
            bits -= 8;
            out[n++] = (uint8_t)(acc >> bits);
        }
    }
    if (hex ? bits != 0 : bits >= 6 || (acc & ((1u << bits) - 1)) != 0)
        return -1; /* an odd digit; base64 bits left over */
    return (long)n;
}

krappy_err kr_json_event_parse(const char *line, size_t len, kr_buf *scratch, kr_json_event *ev,
                               char *why, size_t whylen)
{
    kr_cbor_item map, k, v, hk, hv;
    kr_cbor_iter it, hit;
    char name[80];
    unsigned seen = 0;
    krappy_err e;
    size_t key_at = 0, value_at = 0, value_len = 0, hdr_at = 0;

    memset(ev, 0, sizeof *ev);
    kr_buf_reset(scratch);
    if ((e = kr_json_to_cbor(line, len, scratch, why, whylen)) != KRAPPY_OK)
        return e;
#define BAD(...)                                                                                   \
    do {                                                                                           \
        if (why != NULL && whylen > 0)                                                             \
            snprintf(why, whylen, __VA_ARGS__);                                                    \
        return KRAPPY_E_USAGE;                                                                     \
    } while (0)
    /* Room for the headers' re-encoding (never longer than the JSON's
     * CBOR), reserved now: the items read below point into scratch. */
    if (kr_buf_reserve(scratch, scratch->len) < 0) {
        kr_buf_reset(scratch);
        return KRAPPY_E_NOMEM;
    }
    kr_cbor_read_exact(scratch->data, scratch->len, &map);
    if (map.kind != KR_CBOR_MAP)
        BAD("expected a JSON object like {\"key\": \"k\", \"value\": ...}");
    kr_cbor_iter_init(&it, &map);
    while (kr_cbor_iter_next(&it, &k) == 1 && kr_cbor_iter_next(&it, &v) == 1) {
        unsigned bit = kr_cbor_text_eq(&k, "key")          ? 1u
                       : kr_cbor_text_eq(&k, "value")      ? 2u
                       : kr_cbor_text_eq(&k, "ts")         ? 4u
                       : kr_cbor_text_eq(&k, "headers")    ? 8u
                       : kr_cbor_text_eq(&k, "offset")     ? 16u
                       : kr_cbor_text_eq(&k, "key_is_hex") ? 32u
                                                           : 0u;
        name_of(&k, name, sizeof name);
        if (bit == 0)
            BAD("unknown member \"%s\" (an event has \"key\", \"value\", \"ts\" and "
                "\"headers\"; \"offset\" and \"key_is_hex\", as fetch prints them, are "
                "read too)",
                name);
        if (seen & bit)
            BAD("member \"%s\" appears twice", name);
        seen |= bit;
        switch (bit) {
        case 1:
            if (v.kind == KR_CBOR_TEXT) {
                if (v.str_len > KRAPPY_MAX_KEY_BYTES)
                    BAD("\"key\" has %zu bytes; keys have at most %u", v.str_len,
                        (unsigned)KRAPPY_MAX_KEY_BYTES);
                ev->has_key = true;
                key_at = (size_t)(v.str - scratch->data);
                ev->key_len = v.str_len;
            } else if (v.kind != KR_CBOR_NULL) {
                BAD("\"key\" must be a string, or null for no key");
            }
            break;
        case 2:
            value_at = (size_t)(v.raw - scratch->data);
            value_len = v.raw_len;
            break;
        case 16: /* where the event was: not where it goes */
            if (v.kind != KR_CBOR_UINT)
                BAD("\"offset\" must be a whole number (it is not used)");
            break;
        case 32:
            if (v.kind != KR_CBOR_TRUE && v.kind != KR_CBOR_FALSE)
                BAD("\"key_is_hex\" must be true or false");
            ev->key_is_bytes = v.kind == KR_CBOR_TRUE;
            break;
        case 4:
            if (v.kind == KR_CBOR_UINT) {
                ev->has_ts = true;
                ev->ts = v.u;
            } else if (v.kind != KR_CBOR_NULL) {
                BAD("\"ts\" must be a whole number of milliseconds since 1970 (or null for "
                    "the server's time)");
            }
            break;
        case 8:
            if (v.kind == KR_CBOR_NULL)
                break;
            if (v.kind != KR_CBOR_MAP)
                BAD("\"headers\" must be an object of strings");
            /* Re-encode as text -> bytes after the JSON's CBOR (in the
             * room reserved above); pointers are taken at the end. */
            hdr_at = scratch->len;
            kr_cbor_put_map(scratch, v.u);
            kr_cbor_iter_init(&hit, &v);
            while (kr_cbor_iter_next(&hit, &hk) == 1 && kr_cbor_iter_next(&hit, &hv) == 1) {
                uint8_t *raw = NULL;
                long n = -1;
                if (hv.kind == KR_CBOR_MAP && (raw = malloc(hv.raw_len)) != NULL)
                    n = header_bytes(&hv, raw);
                if (hv.kind != KR_CBOR_TEXT && n < 0) {
                    free(raw);
                    name_of(&hk, name, sizeof name);
                    BAD("header \"%s\" must be a string, or {\"hex\": ...} or "
                        "{\"base64url\": ...} for bytes",
                        name);
                }
                kr_cbor_put_text(scratch, (const char *)hk.str, hk.str_len);
                if (n >= 0)
                    kr_cbor_put_bytes(scratch, raw, (size_t)n);
                else
                    kr_cbor_put_bytes(scratch, hv.str, hv.str_len);
                free(raw);
                ev->n_headers++;
            }
            break;
        }
    }
    if (!(seen & 2))
        BAD("no \"value\" member (use \"value\": null to delete the key)");
    if (ev->key_is_bytes && ev->has_key) {
        /* In place: the bytes are half as long as their hex. */
        uint8_t *kp = scratch->data + key_at;
        if (ev->key_len % 2 != 0)
            BAD("\"key\" is not hex digits though \"key_is_hex\" is true");
        for (size_t i = 0; i < ev->key_len; i += 2) {
            int hi = digit_of(kp[i], true), lo = digit_of(kp[i + 1], true);
            if (hi < 0 || lo < 0)
                BAD("\"key\" is not hex digits though \"key_is_hex\" is true");
            kp[i / 2] = (uint8_t)(hi << 4 | lo);
        }
        ev->key_len /= 2;
    } else {
        ev->key_is_bytes = false;
    }
#undef BAD
    if (scratch->failed)
        return KRAPPY_E_NOMEM;
    ev->value = scratch->data + value_at;
    ev->value_len = value_len;
    if (ev->has_key)
        ev->key = scratch->data + key_at;
    if (seen & 8 && hdr_at > 0 && ev->n_headers > 0) {
        ev->headers = scratch->data + hdr_at;
        ev->headers_len = scratch->len - hdr_at;
    }
    return KRAPPY_OK;
}
