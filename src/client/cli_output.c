/*
 * client/cli_output.c - how the krappy CLI shows events: timestamps, keys
 * and values on one line for people, or as JSON for programs (cli.h).
 *
 * Everything printed from the server's data goes through an escape: a value
 * is data, and data must not be able to move the cursor or change the
 * colours of the terminal it is printed on.
 */
#include "client/cli.h"

#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "util/json.h"
#include "util/utf8.h"

const char *cli_fmt_ts(char *buf, size_t len, uint64_t ms)
{
    time_t secs = (time_t)(ms / 1000);
    struct tm tm;
    if ((uint64_t)secs != ms / 1000 || gmtime_r(&secs, &tm) == NULL) {
        snprintf(buf, len, "%llu ms", (unsigned long long)ms);
        return buf;
    }
    snprintf(buf, len, "%04d-%02d-%02dT%02d:%02d:%02d.%03uZ", tm.tm_year + 1900, tm.tm_mon + 1,
             tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec, (unsigned)(ms % 1000));
    return buf;
}

/* Digits at s: exactly n of them, as a number. @return -1 when not. */
static int digits(const char *s, int n)
{
    int v = 0;
    for (int i = 0; i < n; i++) {
        if (s[i] < '0' || s[i] > '9')
            return -1;
        v = v * 10 + (s[i] - '0');
    }
    return v;
}

int cli_parse_time(const char *s, uint64_t *ms)
{
    struct tm tm;
    memset(&tm, 0, sizeof tm);
    int y = digits(s, 4), mo = s[4] == '-' ? digits(s + 5, 2) : -1;
    int d = mo >= 0 && s[7] == '-' ? digits(s + 8, 2) : -1;
    if (y < 1970 || mo < 1 || mo > 12 || d < 1 || d > 31)
        return -1;
    const char *p = s + 10;
    int h = 0, mi = 0, sec = 0, milli = 0;
    if (*p == 'T' || *p == ' ') {
        h = digits(p + 1, 2);
        mi = p[3] == ':' ? digits(p + 4, 2) : -1;
        if (h < 0 || h > 23 || mi < 0 || mi > 59)
            return -1;
        p += 6;
        if (*p == ':') {
            if ((sec = digits(p + 1, 2)) < 0 || sec > 60)
                return -1;
            p += 3;
            if (*p == '.') {
                int n = 0, scale = 100;
                for (p++; *p >= '0' && *p <= '9'; p++, n++) {
                    milli += (*p - '0') * scale;
                    scale /= 10;
                }
                if (n == 0)
                    return -1;
            }
        }
    }
    long off_min = 0;
    if (*p == 'Z' && p[1] == '\0') {
        off_min = 0;
    } else if ((*p == '+' || *p == '-') && strlen(p) == 6 && p[3] == ':') {
        int oh = digits(p + 1, 2), om = digits(p + 4, 2);
        if (oh < 0 || oh > 23 || om < 0 || om > 59)
            return -1;
        off_min = (oh * 60 + om) * (*p == '-' ? -1 : 1);
    } else if (!(*p == '\0' && p == s + 10)) {
        return -1; /* a time of day needs its zone; a bare date is UTC */
    }
    tm.tm_year = y - 1900;
    tm.tm_mon = mo - 1;
    tm.tm_mday = d;
    tm.tm_hour = h;
    tm.tm_min = mi;
    tm.tm_sec = sec;
    time_t t = timegm(&tm);
    if (t == (time_t)-1 || tm.tm_mday != d)
        return -1;
    long long secs = (long long)t - off_min * 60;
    if (secs < 0)
        return -1;
    *ms = (uint64_t)secs * 1000 + (uint64_t)milli;
    return 0;
}

/* Length of the valid multi-byte UTF-8 sequence at p that is not a C1
 * control, or 0. */
static size_t printable_seq(const uint8_t *p, size_t n)
{
    size_t l = kr_utf8_seq_len(p, n);
    if (l < 2 || (l == 2 && p[0] == 0xc2 && p[1] < 0xa0))
        return 0;
    return l;
}

void cli_put_text(FILE *f, const uint8_t *s, size_t n)
{
    size_t i = 0;
    while (i < n) {
        uint8_t ch = s[i];
        if (ch >= 0x20 && ch < 0x7f) {
            fputc(ch, f);
            i++;
        } else if (ch == '\n') {
            fputs("\\n", f);
            i++;
        } else if (ch == '\t') {
            fputs("\\t", f);
            i++;
        } else if (ch >= 0x80 && printable_seq(s + i, n - i) > 0) {
            size_t l = printable_seq(s + i, n - i);
            fwrite(s + i, 1, l, f);
            i += l;
        } else {
            fprintf(f, "\\x%02x", ch);
            i++;
        }
    }
}

/* Columns of text shown by cli_put_text (code points; escapes count their
 * characters; wide characters count one: alignment is best effort). */
static size_t text_width(const uint8_t *s, size_t n)
{
    size_t w = 0, i = 0;
    while (i < n) {
        uint8_t ch = s[i];
        size_t l;
        if (ch >= 0x20 && ch < 0x7f) {
            w++, i++;
        } else if (ch == '\n' || ch == '\t') {
            w += 2, i++;
        } else if (ch >= 0x80 && (l = printable_seq(s + i, n - i)) > 0) {
            w++, i += l;
        } else {
            w += 4, i++;
        }
    }
    return w;
}

size_t cli_key_width(int has_key, int is_text, const uint8_t *key, size_t len)
{
    if (!has_key)
        return 1;
    if (!is_text)
        return 3 + 2 * len;
    return text_width(key, len);
}

void cli_put_key(FILE *f, int has_key, int is_text, const uint8_t *key, size_t len, size_t width)
{
    if (!has_key) {
        fputc('-', f);
    } else if (!is_text) {
        fputs("h'", f);
        for (size_t i = 0; i < len; i++)
            fprintf(f, "%02x", key[i]);
        fputc('\'', f);
    } else {
        cli_put_text(f, key, len);
    }
    for (size_t w = cli_key_width(has_key, is_text, key, len); w < width; w++)
        fputc(' ', f);
}

void cli_put_value(FILE *f, const uint8_t *v, size_t n)
{
    const char *t;
    size_t tl;
    char *d = NULL;

    if (krappy_cbor_text(v, n, &t, &tl)) {
        cli_put_text(f, (const uint8_t *)t, tl);
        return;
    }
    krappy_err e = krappy_cbor_to_diag(v, n, &d);
    if (e == KRAPPY_OK)
        fputs(d, f);
    else if (e == KRAPPY_E_NOMEM)
        fprintf(f, "<a value of %zu bytes: out of memory showing it>", n);
    else
        fprintf(f, "<a value of %zu bytes nested deeper than %d levels>", n, KRAPPY_CBOR_MAX_DEPTH);
    krappy_free(d);
}

int cli_digits(uint64_t v)
{
    int n = 1;
    while (v >= 10) {
        v /= 10;
        n++;
    }
    return n;
}

/*
 * An event's headers as people and programs read them back: a value that
 * is UTF-8 as its text, any other as hex - name=text name=h'00ff' on a
 * terminal, {"name": "text", "other": {"hex": "00ff"}} in JSON (which
 * `produce --json` reads back to the same bytes).
 */
static void put_headers(FILE *f, const krappy_event *e, bool json)
{
    size_t pos = 0, nl, vl;
    const char *name;
    const uint8_t *val;
    bool first = true;
    if (json)
        fputc('{', f);
    while (krappy_header_next(e->headers, e->headers_len, &pos, &name, &nl, &val, &vl) == 1) {
        bool text = kr_utf8_valid(val, vl);
        if (json) {
            if (!first)
                fputc(',', f);
            kr_json_str_file(f, name, nl);
            fputc(':', f);
            if (text) {
                kr_json_str_file(f, val, vl);
            } else {
                fputs("{\"hex\":\"", f);
                for (size_t i = 0; i < vl; i++)
                    fprintf(f, "%02x", val[i]);
                fputs("\"}", f);
            }
        } else {
            if (!first)
                fputc(' ', f);
            cli_put_text(f, (const uint8_t *)name, nl);
            fputc('=', f);
            if (text) {
                cli_put_text(f, val, vl);
            } else {
                fputs("h'", f);
                for (size_t i = 0; i < vl; i++)
                    fprintf(f, "%02x", val[i]);
                fputc('\'', f);
            }
        }
        first = false;
    }
    if (json)
        fputc('}', f);
}

void cli_print_event(FILE *f, const krappy_event *e, int offset_width, size_t *key_width,
                     bool headers)
{
    char ts[CLI_TS_LEN];
    size_t kw = cli_key_width(e->has_key, e->key_is_text, e->key, e->key_len);
    if (kw > *key_width && kw <= CLI_KEY_COLUMN_MAX)
        *key_width = kw;
    fprintf(f, "%*llu  %s  ", offset_width, (unsigned long long)e->offset,
            cli_fmt_ts(ts, sizeof ts, e->ts));
    cli_put_key(f, e->has_key, e->key_is_text, e->key, e->key_len, *key_width);
    fputs("  ", f);
    if (e->is_tombstone)
        fputs("<tombstone: the key is deleted>", f);
    else
        cli_put_value(f, e->value, e->value_len);
    if (headers && e->has_headers) {
        fputs("  headers ", f);
        put_headers(f, e, false);
    }
    fputc('\n', f);
}

void cli_json_key(FILE *f, int has_key, int is_text, const uint8_t *key, size_t len)
{
    fputs("\"key\":", f);
    if (!has_key) {
        fputs("null", f);
    } else if (is_text) {
        kr_json_str_file(f, key, len);
    } else {
        fputc('"', f);
        for (size_t i = 0; i < len; i++)
            fprintf(f, "%02x", key[i]);
        fputs("\",\"key_is_hex\":true", f);
    }
}

void cli_json_cbor(FILE *f, const uint8_t *v, size_t n)
{
    char *j = NULL;
    if (krappy_cbor_to_json(v, n, KRAPPY_JSON_BYTES_HEX, &j) == KRAPPY_OK)
        fputs(j, f);
    else
        fputs("null", f);
    krappy_free(j);
}

void cli_json_event(FILE *f, const krappy_event *e)
{
    fprintf(f, "{\"offset\":%llu,\"ts\":%llu,", (unsigned long long)e->offset,
            (unsigned long long)e->ts);
    cli_json_key(f, e->has_key, e->key_is_text, e->key, e->key_len);
    fputs(",\"value\":", f);
    cli_json_cbor(f, e->value, e->value_len);
    if (e->has_headers) {
        fputs(",\"headers\":", f);
        put_headers(f, e, true);
    }
    fputs("}\n", f);
}

int cli_parse_hex(const char *s, uint8_t **out, size_t *len)
{
    size_t n = strlen(s);
    if (n % 2 != 0)
        return -1;
    uint8_t *b = malloc(n / 2 + 1);
    if (b == NULL)
        return -1;
    for (size_t i = 0; i < n; i += 2) {
        int v = 0;
        for (size_t k = i; k < i + 2; k++) {
            char c = s[k];
            int d = c >= '0' && c <= '9'   ? c - '0'
                    : c >= 'a' && c <= 'f' ? c - 'a' + 10
                    : c >= 'A' && c <= 'F' ? c - 'A' + 10
                                           : -1;
            if (d < 0) {
                free(b);
                return -1;
            }
            v = v * 16 + d;
        }
        b[i / 2] = (uint8_t)v;
    }
    *out = b;
    *len = n / 2;
    return 0;
}
