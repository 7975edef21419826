/*
 * util/log.c - the one logging module, used by every layer (see log.h).
 *
 * A line is built in a fixed buffer on the caller's stack and handed to the
 * kernel with a single write(2), so concurrent lines never interleave and
 * logging takes no lock and never allocates. Everything the caller passes is
 * escaped: a message or value can hold quotes, newlines, control bytes or
 * broken UTF-8 and the line stays one line of valid JSON (or of text).
 *
 * Lines are capped at KR_LOG_LINE_MAX. The last bytes of the buffer are kept
 * back for the tail that closes a cut line ("...(truncated)" plus whatever
 * quotes and braces keep the JSON valid), and escapes and UTF-8 sequences are
 * appended whole, so a cut never splits one.
 */
#include "util/log.h"

#include <errno.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

#include "util/clock.h"
#include "util/json.h"
#include "util/utf8.h"

#define TRUNC_MARK "...(truncated)"

/* The longest tail a cut line can need: a JSON cut between two fields
 * appends `,"...(truncated)":null}` and the newline. */
#define TAIL_RESERVE (sizeof(",\"" TRUNC_MARK "\":null}\n") - 1)

/* Settings. Atomics only so that a test changing the fd while nothing else
 * logs is race-free under TSan; relaxed is enough. */
static atomic_int log_min = KR_LOG_INFO;
static atomic_int log_format = KR_LOG_JSON;
static atomic_int log_fd = STDERR_FILENO;

static const char *const level_names[] = {"debug", "info", "warn", "error"};

/* A line under construction. Appends past `limit` are refused and set
 * `full`; after that every append is a no-op and only tail() writes, into
 * the TAIL_RESERVE bytes kept free. */
typedef struct line {
    char buf[KR_LOG_LINE_MAX];
    size_t len;
    size_t limit;
    bool full;
} line;

void kr_log_setup(kr_log_level min, kr_log_format fmt)
{
    atomic_store_explicit(&log_min, (int)min, memory_order_relaxed);
    atomic_store_explicit(&log_format, (int)fmt, memory_order_relaxed);
}

void kr_log_set_fd(int fd)
{
    atomic_store_explicit(&log_fd, fd, memory_order_relaxed);
}

/* Names are matched without regard to case so that --log-level=INFO works. */
int kr_log_level_parse(const char *s, kr_log_level *out)
{
    if (s == NULL || out == NULL)
        return -1;
    for (size_t i = 0; i < sizeof(level_names) / sizeof(level_names[0]); i++) {
        if (strcasecmp(s, level_names[i]) == 0) {
            *out = (kr_log_level)i;
            return 0;
        }
    }
    return -1;
}

int kr_log_format_parse(const char *s, kr_log_format *out)
{
    if (s == NULL || out == NULL)
        return -1;
    if (strcasecmp(s, "json") == 0) {
        *out = KR_LOG_JSON;
        return 0;
    }
    if (strcasecmp(s, "text") == 0) {
        *out = KR_LOG_TEXT;
        return 0;
    }
    return -1;
}

/* A level outside the enum is treated as an error: better logged than lost. */
static kr_log_level clamp_level(kr_log_level level)
{
    if ((int)level < (int)KR_LOG_DEBUG || (int)level > (int)KR_LOG_ERROR)
        return KR_LOG_ERROR;
    return level;
}

int kr_log_enabled(kr_log_level level)
{
    return (int)clamp_level(level) >= atomic_load_explicit(&log_min, memory_order_relaxed);
}

/* Append n bytes whole, or refuse and mark the line full. */
static void put(line *l, const char *s, size_t n)
{
    if (l->full)
        return;
    if (n > l->limit - l->len) {
        l->full = true;
        return;
    }
    memcpy(l->buf + l->len, s, n);
    l->len += n;
}

static void puts_(line *l, const char *s)
{
    put(l, s, strlen(s));
}

/* Closing bytes of a cut line: always fit, because `limit` keeps
 * TAIL_RESERVE bytes back. */
static void tail(line *l, const char *s)
{
    size_t n = strlen(s);

    if (n > sizeof(l->buf) - l->len)
        n = sizeof(l->buf) - l->len; /* cannot happen; never overrun */
    memcpy(l->buf + l->len, s, n);
    l->len += n;
}

/* Append s as the inside of a JSON string (util/json.h), as much as fits:
 * a cut never splits an escape or a UTF-8 sequence. */
static void put_json(line *l, const char *s)
{
    size_t n = strlen(s), w;

    if (l->full)
        return;
    if (kr_json_esc_mem(l->buf + l->len, l->limit - l->len, &w, s, n) < n)
        l->full = true;
    l->len += w;
}

/*
 * Append s escaped for the text format, one unit (a character or its
 * escape) at a time so that a full line never ends inside an escape or a
 * UTF-8 sequence: \\ \n \r \t, other control bytes, DEL and invalid
 * bytes as \xXX; \" only inside quotes.
 */
static void put_text(line *l, const char *s, bool quoted)
{
    static const char hex[] = "0123456789abcdef";
    const unsigned char *p = (const unsigned char *)s;
    size_t n = strlen(s);

    while (n > 0 && !l->full) {
        unsigned char c = *p;
        char e[4];
        size_t elen = 0;
        size_t adv = 1;
        size_t ulen = kr_utf8_seq_len(p, n);

        if (ulen > 1) {
            put(l, (const char *)p, ulen);
            adv = ulen;
        } else if (c == '\\' || (c == '"' && quoted)) {
            e[0] = '\\';
            e[1] = (char)c;
            elen = 2;
        } else if (c == '\n' || c == '\r' || c == '\t') {
            e[0] = '\\';
            e[1] = c == '\n' ? 'n' : c == '\r' ? 'r' : 't';
            elen = 2;
        } else if (ulen == 0 || c < 0x20 || c == 0x7F) {
            e[0] = '\\';
            e[1] = 'x';
            e[2] = hex[c >> 4];
            e[3] = hex[c & 15];
            elen = 4;
        } else {
            put(l, (const char *)p, 1);
        }
        if (elen > 0)
            put(l, e, elen);
        if (!l->full) {
            p += adv;
            n -= adv;
        }
    }
}

/* A text value is quoted when it is empty or holds anything but plain
 * printable characters and UTF-8: spaces, quotes, '=', backslashes, control
 * bytes or invalid UTF-8. */
static bool text_needs_quotes(const char *s)
{
    const unsigned char *p = (const unsigned char *)s;
    size_t n = strlen(s);

    if (n == 0)
        return true;
    while (n > 0) {
        size_t ulen = kr_utf8_seq_len(p, n);

        if (ulen == 0)
            return true;
        if (ulen == 1 && (*p <= ' ' || *p == '"' || *p == '=' || *p == '\\' || *p == 0x7F))
            return true;
        p += ulen;
        n -= ulen;
    }
    return false;
}

/* UTC wall-clock time with milliseconds: 2026-11-21T07:00:00.123Z. */
static void timestamp(char *out, size_t size)
{
    uint64_t ms = kr_wall_ms();
    time_t secs = (time_t)(ms / 1000);
    struct tm tm;

    gmtime_r(&secs, &tm);
    snprintf(out, size, "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ", tm.tm_year + 1900, tm.tm_mon + 1,
             tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec, (int)(ms % 1000));
}

/* Write the decimal digits of v just before p; return where they start. */
static char *digits_before(char *p, uint64_t v)
{
    do {
        *--p = (char)('0' + v % 10);
        v /= 10;
    } while (v > 0);
    return p;
}

/* Room for any number a field is written as: "-9223372036854775808",
 * "18446744073709551615", the longest duration in ms with its decimal. */
#define NUM_TEXT 32

/* The text of a field's value (numbers are written into buf); NULL for a
 * null. */
static const char *value_text(const kr_log_field *f, char buf[NUM_TEXT])
{
    char *p = &buf[NUM_TEXT - 1]; /* the digits end here */

    *p = '\0';
    switch (f->kind) {
    case KR_LOG_K_STR:
        return f->v.s;
    case KR_LOG_K_U64:
        return digits_before(p, f->v.u);
    case KR_LOG_K_I64:
        /* the magnitude of INT64_MIN does not fit an int64_t */
        p = digits_before(p, f->v.i < 0 ? 0 - (uint64_t)f->v.i : (uint64_t)f->v.i);
        if (f->v.i < 0)
            *--p = '-';
        return p;
    case KR_LOG_K_MS: {
        /* rounded to the nearest tenth of a millisecond, as %.1f would */
        uint64_t tenths = f->v.u / 100000 + (f->v.u % 100000 >= 50000);
        *--p = (char)('0' + tenths % 10);
        *--p = '.';
        return digits_before(p, tenths / 10);
    }
    case KR_LOG_K_END:
        break;
    }
    return NULL;
}

/*
 * {"ts":"...","level":"...","msg":"...","k":"v","k2":null}
 * The state says what a cut has to close: a string (message or value), a
 * key (which then needs a value), or nothing (the cut fell between fields,
 * and the marker goes into a key of its own).
 */
static void json_line(line *l, const char *ts, const char *lvl, const char *msg,
                      const kr_log_field *f)
{
    enum { BETWEEN, IN_KEY, IN_STR } st = IN_STR;
    char num[NUM_TEXT];

    puts_(l, "{\"ts\":\"");
    puts_(l, ts);
    puts_(l, "\",\"level\":\"");
    puts_(l, lvl);
    puts_(l, "\",\"msg\":\"");
    put_json(l, msg);
    put(l, "\"", 1);
    if (!l->full)
        st = BETWEEN;
    for (; !l->full && f->kind != KR_LOG_K_END; f++) {
        if (f->key == NULL)
            continue;
        const char *v = value_text(f, num);

        put(l, ",\"", 2);
        if (l->full)
            break;
        st = IN_KEY;
        put_json(l, f->key);
        if (v == NULL) {
            put(l, "\":null", 6);
        } else {
            put(l, "\":\"", 3);
            if (l->full)
                break;
            st = IN_STR;
            put_json(l, v);
            put(l, "\"", 1);
        }
        if (!l->full)
            st = BETWEEN;
    }
    if (l->full) {
        if (st == IN_STR)
            tail(l, TRUNC_MARK "\"");
        else if (st == IN_KEY)
            tail(l, TRUNC_MARK "\":null");
        else
            tail(l, ",\"" TRUNC_MARK "\":null");
    }
    tail(l, "}\n");
}

/* 2026-11-21T07:00:00.123Z info  msg k=v k2="v w" k3=- */
static void text_line(line *l, const char *ts, const char *lvl, const char *msg,
                      const kr_log_field *f)
{
    bool quoted = false;
    char num[NUM_TEXT];

    puts_(l, ts);
    puts_(l, " ");
    puts_(l, lvl);
    put(l, "     ", 6 - strlen(lvl)); /* pad the level to 5 columns, then a space */
    put_text(l, msg, false);
    for (; !l->full && f->kind != KR_LOG_K_END; f++) {
        if (f->key == NULL)
            continue;
        const char *v = value_text(f, num);

        put(l, " ", 1);
        put_text(l, f->key, false);
        put(l, "=", 1);
        if (v == NULL) {
            put(l, "-", 1);
        } else if (text_needs_quotes(v)) {
            put(l, "\"", 1);
            if (l->full)
                break;
            quoted = true;
            put_text(l, v, true);
            put(l, "\"", 1);
            if (!l->full)
                quoted = false;
        } else {
            put_text(l, v, false);
        }
    }
    if (l->full)
        tail(l, quoted ? TRUNC_MARK "\"" : TRUNC_MARK);
    tail(l, "\n");
}

/*
 * Write a finished line with one write(2). Lines are at most PIPE_BUF
 * bytes, so writes to a pipe are atomic; a short write (a full disk, a
 * signal) is finished with further writes rather than dropped. Logging must
 * not disturb the caller's errno.
 */
static void emit(const line *l)
{
    int saved = errno;
    int fd = atomic_load_explicit(&log_fd, memory_order_relaxed);
    const char *p = l->buf;
    size_t n = l->len;

    while (n > 0) {
        ssize_t w = write(fd, p, n);

        if (w < 0) {
            if (errno == EINTR)
                continue;
            break;
        }
        p += w;
        n -= (size_t)w;
    }
    errno = saved;
}

void kr_log_fields(kr_log_level level, const char *msg, const kr_log_field *fields)
{
    line l;
    char ts[64];

    level = clamp_level(level);
    if (!kr_log_enabled(level))
        return;
    l.len = 0;
    l.limit = sizeof(l.buf) - TAIL_RESERVE;
    l.full = false;
    timestamp(ts, sizeof(ts));
    if (atomic_load_explicit(&log_format, memory_order_relaxed) == KR_LOG_TEXT)
        text_line(&l, ts, level_names[level], msg ? msg : "", fields);
    else
        json_line(&l, ts, level_names[level], msg ? msg : "", fields);
    emit(&l);
}
