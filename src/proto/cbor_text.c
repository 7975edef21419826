/*
 * proto/cbor_text.c - one encoded CBOR item as text: diagnostic notation
 * (RFC 8949 section 8) or JSON where the item maps to it. Shared by libkrappy
 * (krappy_cbor_to_diag/json, the CLI) and krappyd's admin API. No I/O.
 */
#include "proto/cbor_text.h"

#include <math.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "util/json.h"
#include "util/utf8.h"

static void put_str(kr_buf *o, const char *s)
{
    kr_buf_append(o, s, strlen(s));
}

/* 1 when the decimal digits[0..k) x 10^(exp10 - k + 1) reads back as d. */
static int digits_read_back(const char *digits, size_t k, int exp10, bool neg, double d)
{
    char t[48];
    snprintf(t, sizeof t, "%s%c.%se%d", neg ? "-" : "", digits[0], k > 1 ? digits + 1 : "0", exp10);
    /* "1.5" may not be how this locale writes a decimal: swap in its radix
     * by going through printf once */
    char radix[8];
    snprintf(radix, sizeof radix, "%.1f", 1.5);
    if (radix[1] != '.') {
        char u[64];
        char *dot = strchr(t, '.');
        snprintf(u, sizeof u, "%.*s%.*s%s", (int)(dot - t), t, (int)(strlen(radix) - 2), radix + 1,
                 dot + 1);
        return strtod(u, NULL) == d;
    }
    return strtod(t, NULL) == d;
}

/*
 * The shortest decimal that reads back as d: for each precision p, printf's
 * correctly rounded p digits, or the p-digit numbers one unit above and
 * below (needed where the rounding interval is lopsided, at powers of two:
 * 2^-24 is 5.960464477539063e-8, though printf rounds to ...062).
 * Then laid out as ECMAScript's Number::toString does (plain from 1e-6 up to
 * 1e21, else an exponent), but always with a fraction or an exponent and
 * ".0" where it would have neither, as RFC 8949 section 8 writes floats:
 * 1.5, 100000.0, 1.0e+300, 5.960464477539063e-8, 0.00006103515625.
 * d is finite and not zero. Digits are read around whatever radix
 * character the locale gives printf.
 */
static void put_finite(kr_buf *o, double d)
{
    char t[48], digits[24], out[64];
    int exp10 = 0;
    size_t k = 0;
    bool neg = d < 0, found = false;

    for (int p = 1; p <= 17 && !found; p++) {
        snprintf(t, sizeof t, "%.*e", p - 1, d);
        const char *s = t + neg;
        k = 0;
        for (; *s != '\0' && *s != 'e' && *s != 'E'; s++)
            if (*s >= '0' && *s <= '9' && k < sizeof digits - 1)
                digits[k++] = *s;
        digits[k] = '\0';
        exp10 = (*s == 'e' || *s == 'E') ? atoi(s + 1) : 0;
        if (p == 17 || digits_read_back(digits, k, exp10, neg, d)) {
            found = true;
            break;
        }
        for (int dir = 1; dir >= -1 && !found; dir -= 2) {
            char c2[24];
            int e2 = exp10;
            memcpy(c2, digits, k + 1);
            size_t i = k;
            while (i > 0) { /* add or subtract one unit in the last place */
                i--;
                if (dir > 0 && c2[i] == '9') {
                    c2[i] = '0';
                } else if (dir < 0 && c2[i] == '0') {
                    c2[i] = '9';
                } else {
                    c2[i] = (char)(c2[i] + dir);
                    break;
                }
                if (i == 0) {
                    i = SIZE_MAX; /* carried out of the first digit */
                    break;
                }
            }
            if (i == SIZE_MAX) {
                if (dir < 0)
                    continue;           /* 1000 - 1: found at a smaller p if at all */
                memmove(c2 + 1, c2, k); /* 999 + 1 = 1000: one more digit */
                c2[0] = '1';
                c2[k] = '\0';
                e2++;
            }
            if (c2[0] == '0')
                continue;
            if (digits_read_back(c2, k, e2, neg, d)) {
                memcpy(digits, c2, k + 1);
                exp10 = e2;
                found = true;
            }
        }
    }
    while (k > 1 && digits[k - 1] == '0')
        k--;
    digits[k] = '\0';

    int n = exp10 + 1; /* the decimal point is after n digits */
    char *w = out;
    size_t left = sizeof out;
    if (neg)
        *w++ = '-', left--;
    if ((int)k <= n && n <= 21)
        snprintf(w, left, "%s%.*s.0", digits, n - (int)k, "000000000000000000000");
    else if (0 < n && n <= 21)
        snprintf(w, left, "%.*s.%s", n, digits, digits + n);
    else if (-6 < n && n <= 0)
        snprintf(w, left, "0.%.*s%s", -n, "000000", digits);
    else
        snprintf(w, left, "%c.%se%c%d", digits[0], k > 1 ? digits + 1 : "0", n - 1 < 0 ? '-' : '+',
                 abs(n - 1));
    put_str(o, out);
}

static void put_float(kr_buf *o, double d, bool json)
{
    if (isnan(d))
        put_str(o, json ? "null" : "NaN");
    else if (isinf(d))
        put_str(o, json ? "null" : d > 0 ? "Infinity" : "-Infinity");
    else if (d == 0)
        put_str(o, signbit(d) ? "-0.0" : "0.0");
    else
        put_finite(o, d);
}

static void put_hex(kr_buf *o, const uint8_t *p, size_t n)
{
    static const char hex[] = "0123456789abcdef";
    char pair[2];
    for (size_t i = 0; i < n; i++) {
        pair[0] = hex[p[i] >> 4];
        pair[1] = hex[p[i] & 15];
        kr_buf_append(o, pair, 2);
    }
}

/* base64url without padding (RFC 4648 section 5), as RFC 8949 6.1 wants. */
static void put_base64url(kr_buf *o, const uint8_t *p, size_t n)
{
    static const char al[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    char q[4];
    size_t i = 0;
    for (; i + 3 <= n; i += 3) {
        uint32_t v = (uint32_t)p[i] << 16 | (uint32_t)p[i + 1] << 8 | p[i + 2];
        q[0] = al[v >> 18], q[1] = al[(v >> 12) & 63], q[2] = al[(v >> 6) & 63], q[3] = al[v & 63];
        kr_buf_append(o, q, 4);
    }
    if (n - i == 1) {
        uint32_t v = (uint32_t)p[i] << 16;
        q[0] = al[v >> 18], q[1] = al[(v >> 12) & 63];
        kr_buf_append(o, q, 2);
    } else if (n - i == 2) {
        uint32_t v = (uint32_t)p[i] << 16 | (uint32_t)p[i + 1] << 8;
        q[0] = al[v >> 18], q[1] = al[(v >> 12) & 63], q[2] = al[(v >> 6) & 63];
        kr_buf_append(o, q, 3);
    }
}

typedef struct render {
    kr_buf *o;
    bool json;
    unsigned flags;
} render;

static int render_item(render *r, const kr_cbor_item *it, int depth);

/* Byte or text string content; chunks of an indefinite one in turn. */
static void render_string(render *r, const kr_cbor_item *it)
{
    kr_buf *o = r->o;
    bool text = it->kind == KR_CBOR_TEXT;
    kr_cbor_iter ci;
    kr_cbor_item ch;

    if (!it->indefinite || r->json) {
        const kr_cbor_item *one = it;
        bool chunked = it->indefinite;
        if (chunked)
            kr_cbor_iter_init(&ci, it);
        if (!r->json || text)
            put_str(o, text ? "\"" : "h'");
        else
            put_str(o, "\"");
        if (!text && r->json && !(r->flags & KR_CBOR_JSON_BYTES_HEX)) {
            /* base64 groups straddle chunks: join them first */
            uint8_t *tmp = malloc(it->str_len > 0 ? it->str_len : 1);
            if (tmp == NULL) {
                o->failed = true;
                return;
            }
            kr_cbor_str_copy(it, tmp, it->str_len);
            put_base64url(o, tmp, it->str_len);
            free(tmp);
        } else {
            while (!chunked || kr_cbor_iter_next(&ci, &ch) == 1) {
                if (chunked)
                    one = &ch;
                if (text)
                    kr_json_esc_buf(o, one->str, one->str_len);
                else
                    put_hex(o, one->str, one->str_len);
                if (!chunked)
                    break;
            }
        }
        put_str(o, text || r->json ? "\"" : "'");
        return;
    }
    /* diagnostic notation of an indefinite string: (_ "a", "b") */
    kr_cbor_iter_init(&ci, it);
    bool first = true;
    while (kr_cbor_iter_next(&ci, &ch) == 1) {
        put_str(o, first ? "(_ " : ", ");
        first = false;
        render_string(r, &ch);
    }
    put_str(o, first ? (text ? "\"\"_" : "''_") : ")");
}

/*
 * Arrays, maps and tags count towards KR_CBOR_TEXT_MAX_DEPTH, scalars do
 * not: 64 arrays nested around a number render, a 65th array does not -
 * the same count the JSON reader (client/json.c) takes, so JSON rendered
 * here always reads back.
 */
static bool too_deep(int depth)
{
    return depth >= KR_CBOR_TEXT_MAX_DEPTH;
}

static int render_container(render *r, const kr_cbor_item *it, int depth)
{
    kr_buf *o = r->o;
    bool map = it->kind == KR_CBOR_MAP;
    kr_cbor_iter ci;
    kr_cbor_item ch;
    size_t i = 0;

    if (too_deep(depth))
        return -1;
    put_str(o, map ? "{" : "[");
    if (it->indefinite && !r->json)
        put_str(o, "_ ");
    kr_cbor_iter_init(&ci, it);
    while (kr_cbor_iter_next(&ci, &ch) == 1) {
        bool is_key = map && i % 2 == 0;
        if (i > 0 && map && !is_key)
            put_str(o, r->json ? ":" : ": ");
        else if (i > 0)
            put_str(o, r->json ? "," : ", ");
        if (is_key && r->json && ch.kind != KR_CBOR_TEXT) {
            /* JSON keys are strings: the key's diagnostic notation */
            kr_buf tmp;
            render d = {&tmp, false, 0};
            kr_buf_init(&tmp, o->max);
            int rc = render_item(&d, &ch, depth + 1);
            if (rc == 0 && !tmp.failed) {
                put_str(o, "\"");
                kr_json_esc_buf(o, tmp.data, tmp.len);
                put_str(o, "\"");
            }
            if (tmp.failed)
                o->failed = true;
            kr_buf_free(&tmp);
            if (rc < 0)
                return rc;
        } else if (render_item(r, &ch, depth + 1) < 0) {
            return -1;
        }
        i++;
    }
    put_str(o, map ? "}" : "]");
    return 0;
}

/* @return 0, or -1 when nested deeper than KR_CBOR_TEXT_MAX_DEPTH. */
static int render_item(render *r, const kr_cbor_item *it, int depth)
{
    kr_buf *o = r->o;
    char num[32];
    kr_cbor_iter ci;
    kr_cbor_item ch;

    if (o->failed)
        return 0;
    switch (it->kind) {
    case KR_CBOR_UINT:
        snprintf(num, sizeof num, "%llu", (unsigned long long)it->u);
        put_str(o, num);
        break;
    case KR_CBOR_NEGINT:
        if (it->u == UINT64_MAX)
            put_str(o, "-18446744073709551616");
        else {
            snprintf(num, sizeof num, "-%llu", (unsigned long long)it->u + 1);
            put_str(o, num);
        }
        break;
    case KR_CBOR_BYTES:
    case KR_CBOR_TEXT:
        render_string(r, it);
        break;
    case KR_CBOR_ARRAY:
    case KR_CBOR_MAP:
        return render_container(r, it, depth);
    case KR_CBOR_TAG:
        if (too_deep(depth))
            return -1;
        if (!r->json) {
            snprintf(num, sizeof num, "%llu(", (unsigned long long)it->u);
            put_str(o, num);
        }
        kr_cbor_iter_init(&ci, it);
        if (kr_cbor_iter_next(&ci, &ch) == 1 && render_item(r, &ch, depth + 1) < 0)
            return -1;
        if (!r->json)
            put_str(o, ")");
        break;
    case KR_CBOR_FLOAT:
        put_float(o, it->f, r->json);
        break;
    case KR_CBOR_FALSE:
        put_str(o, "false");
        break;
    case KR_CBOR_TRUE:
        put_str(o, "true");
        break;
    case KR_CBOR_NULL:
        put_str(o, "null");
        break;
    case KR_CBOR_UNDEF:
        put_str(o, r->json ? "null" : "undefined");
        break;
    case KR_CBOR_SIMPLE:
        if (r->json)
            put_str(o, "null");
        else {
            snprintf(num, sizeof num, "simple(%llu)", (unsigned long long)it->u);
            put_str(o, num);
        }
        break;
    }
    return 0;
}

/* kr_cbor_render of an item that sits `depth` levels down in a larger
 * document (which counts towards the limit). */
static int render_at(const void *item, size_t len, bool json, unsigned flags, int depth,
                     kr_buf *out)
{
    kr_cbor_item it;
    size_t start = out->len;
    bool was_failed = out->failed;

    if (item == NULL || len == 0 || kr_cbor_read_exact(item, len, &it) < 0)
        return -1;
    render r = {out, json, flags};
    int rc = render_item(&r, &it, depth);
    if (rc == 0 && out->failed)
        rc = -2;
    if (rc < 0) {
        /* Half a rendering is worse than none: a caller that writes the
         * text into a larger document keeps it well-formed. */
        out->len = start;
        out->failed = was_failed;
    }
    return rc;
}

int kr_cbor_render(const void *item, size_t len, bool json, unsigned flags, kr_buf *out)
{
    return render_at(item, len, json, flags, 0, out);
}

/* Bytes rendered past a preview's limit before it is cut there. */
#define PREVIEW_SLACK (64u * 1024)

/* The first `limit` bytes of the JSON text of an item, as a JSON string: a
 * text string's own characters (whole ones), anything else its rendering
 * cut where an append no longer fit. */
static int render_preview(const kr_cbor_item *it, size_t limit, kr_buf *out)
{
    kr_buf tmp;
    /* Room past the limit: a string is appended in one piece, and one that
     * starts before the limit should show its beginning. */
    kr_buf_init(&tmp, limit + PREVIEW_SLACK);
    if (it->kind == KR_CBOR_TEXT) {
        if (kr_buf_reserve(&tmp, limit) < 0) {
            kr_buf_free(&tmp);
            return -2;
        }
        size_t n = kr_cbor_str_copy(it, tmp.data, limit);
        if (n > limit)
            n = limit;
        while (n > 0 && n < it->str_len && (tmp.data[n] & 0xC0) == 0x80)
            n--; /* not inside a character */
        tmp.len = n;
    } else {
        render r = {&tmp, true, 0};
        if (render_item(&r, it, 1) < 0)
            tmp.len = 0; /* too deep to show even in part */
        if (tmp.len > limit) {
            tmp.len = limit;
            while (tmp.len > 0 && (tmp.data[tmp.len] & 0xC0) == 0x80)
                tmp.len--; /* not inside a character */
        }
    }
    put_str(out, "\"");
    kr_json_esc_buf(out, tmp.data, tmp.len);
    put_str(out, "\"");
    kr_buf_free(&tmp);
    return 0;
}

/* Header values that are UTF-8 as JSON strings, the others as
 * {"base64url": "..."}: readable, and still unambiguous. */
static int render_text_headers(const kr_cbor_item *h, kr_buf *out)
{
    kr_cbor_iter ci;
    kr_cbor_item k, v;
    bool first = true;
    if (h->kind != KR_CBOR_MAP)
        return render_at(h->raw, h->raw_len, true, 0, 1, out);
    put_str(out, "{");
    kr_cbor_iter_init(&ci, h);
    while (kr_cbor_iter_next(&ci, &k) == 1 && kr_cbor_iter_next(&ci, &v) == 1) {
        render r = {out, true, 0};
        put_str(out, first ? "" : ",");
        first = false;
        if (k.kind == KR_CBOR_TEXT)
            render_string(&r, &k);
        else
            put_str(out, "\"\""); /* PUBLISH takes text names only */
        put_str(out, ":");
        uint8_t *tmp = malloc(v.str_len > 0 ? v.str_len : 1);
        if (tmp == NULL)
            return -2;
        size_t n = v.kind == KR_CBOR_BYTES || v.kind == KR_CBOR_TEXT
                       ? kr_cbor_str_copy(&v, tmp, v.str_len)
                       : 0;
        if (kr_utf8_valid(tmp, n)) {
            put_str(out, "\"");
            kr_json_esc_buf(out, tmp, n);
            put_str(out, "\"");
        } else {
            put_str(out, "{\"base64url\":\"");
            put_base64url(out, tmp, n);
            put_str(out, "\"}");
        }
        free(tmp);
    }
    put_str(out, "}");
    return 0;
}

int kr_cbor_render_event_json_opts(const kr_event_view *v, const kr_event_json_opts *o, kr_buf *out)
{
    const struct {
        const char *name;
        const kr_cbor_item *item;
    } parts[] = {
        {"key", &v->key},
        {"value", &v->value},
        {"headers", v->has_headers ? &v->headers : NULL},
    };
    size_t start = out->len;
    bool was_failed = out->failed;
    const char *unshown = NULL;
    char text[160];

    snprintf(text, sizeof text, "{\"offset\":%llu,\"ts\":%llu", (unsigned long long)v->offset,
             (unsigned long long)v->ts);
    put_str(out, text);
    for (size_t i = 0; i < sizeof parts / sizeof parts[0]; i++) {
        const kr_cbor_item *it = parts[i].item;
        if (it == NULL)
            continue;
        snprintf(text, sizeof text, ",\"%s\":", parts[i].name);
        put_str(out, text);
        int rc;
        if (i == 1 && o->value_limit > 0 && it->raw_len > o->value_limit) {
            rc = render_preview(it, o->value_limit, out);
            snprintf(text, sizeof text, ",\"value_truncated\":true,\"value_bytes\":%zu",
                     it->raw_len);
            put_str(out, text);
        } else if (i == 2 && o->text_headers) {
            rc = render_text_headers(it, out);
        } else {
            /* Inside the object: one level less for the part. */
            rc = render_at(it->raw, it->raw_len, true, 0, 1, out);
        }
        if (rc == -1) {
            put_str(out, "null");
            if (unshown == NULL)
                unshown = parts[i].name;
        } else if (rc < 0) {
            out->failed = true; /* render_at put the flag back: keep it */
            break;
        }
    }
    if (unshown != NULL) {
        snprintf(text, sizeof text,
                 ",\"error\":\"the %s nests deeper than %d levels and is not shown; FETCH the "
                 "event to read it\"",
                 unshown, KR_CBOR_TEXT_MAX_DEPTH - 1);
        put_str(out, text);
    }
    put_str(out, "}");
    if (out->failed) {
        out->len = start;
        out->failed = was_failed;
        return -2;
    }
    return 0;
}

int kr_cbor_render_event_json(const kr_event_view *v, kr_buf *out)
{
    const kr_event_json_opts whole = {0, false};
    return kr_cbor_render_event_json_opts(v, &whole, out);
}
