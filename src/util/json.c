/*
 * util/json.c - the JSON string escaper (see json.h).
 */
#include "util/json.h"

#include <string.h>

#include "util/utf8.h"

static const char hex[] = "0123456789abcdef";

/* 1 for the bytes that stand for themselves in a run: printable ASCII but
 * the quote and the backslash. */
static inline int plain(uint8_t c)
{
    return c >= 0x20 && c < 0x7f && c != '"' && c != '\\';
}

static size_t esc_u00(char esc[KR_JSON_ESC_MAX], uint8_t c)
{
    memcpy(esc, "\\u00", 4);
    esc[4] = hex[c >> 4];
    esc[5] = hex[c & 15];
    return 6;
}

size_t kr_json_esc_next(const uint8_t *s, size_t n, char esc[KR_JSON_ESC_MAX], const char **out,
                        size_t *outlen)
{
    uint8_t c = s[0];
    if (plain(c)) {
        size_t i = 1;
        while (i < n && plain(s[i]))
            i++;
        *out = (const char *)s;
        *outlen = i;
        return i;
    }
    *out = esc;
    if (c < 0x80) {
        static const char shorts[] = "\"\\\b\f\n\r\t";
        static const char letters[] = "\"\\bfnrt";
        const char *hit = memchr(shorts, c, sizeof shorts - 1);
        if (hit != NULL) {
            esc[0] = '\\';
            esc[1] = letters[hit - shorts];
            *outlen = 2;
        } else {
            *outlen = esc_u00(esc, c); /* C0 controls and DEL */
        }
        return 1;
    }
    size_t l = kr_utf8_seq_len(s, n);
    if (l == 0) {
        memcpy(esc, "\\ufffd", 6);
        *outlen = 6;
        return 1;
    }
    if (l == 2 && c == 0xc2 && s[1] < 0xa0) { /* a C1 control */
        *outlen = esc_u00(esc, s[1]);
        return 2;
    }
    *out = (const char *)s;
    *outlen = l;
    return l;
}

/* Every piece of s[0..n) in turn to put(ctx, bytes, len). */
static void esc_each(const void *s, size_t n, void (*put)(void *ctx, const char *p, size_t len),
                     void *ctx)
{
    const uint8_t *p = s;
    char esc[KR_JSON_ESC_MAX];
    const char *out;
    size_t len;

    while (n > 0) {
        size_t used = kr_json_esc_next(p, n, esc, &out, &len);
        put(ctx, out, len);
        p += used;
        n -= used;
    }
}

static void put_buf(void *b, const char *p, size_t len)
{
    kr_buf_append(b, p, len);
}

static void put_file(void *f, const char *p, size_t len)
{
    fwrite(p, 1, len, f);
}

void kr_json_esc_buf(kr_buf *b, const void *s, size_t n)
{
    esc_each(s, n, put_buf, b);
}

size_t kr_json_esc_mem(char *dst, size_t cap, size_t *written, const void *s, size_t n)
{
    const uint8_t *p = s;
    char esc[KR_JSON_ESC_MAX];
    const char *out;
    size_t len, w = 0, done = 0;

    while (done < n) {
        size_t used = kr_json_esc_next(p + done, n - done, esc, &out, &len);
        if (len > cap - w) {
            /* An ASCII run is one unit per byte: keep what fits. */
            if (out != esc && p[done] < 0x80) {
                memcpy(dst + w, out, cap - w);
                done += cap - w;
                w = cap;
            }
            break;
        }
        memcpy(dst + w, out, len);
        w += len;
        done += used;
    }
    *written = w;
    return done;
}

void kr_json_str_file(FILE *f, const void *s, size_t n)
{
    fputc('"', f);
    esc_each(s, n, put_file, f);
    fputc('"', f);
}
