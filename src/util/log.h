/*
 * util/log.h - the one logging module, used by every layer.
 *
 * One line per event on stderr, either JSON
 *   {"ts":"2026-11-21T07:00:00.123Z","level":"info","msg":"listening","addr":"0.0.0.0:7070"}
 * or text
 *   2026-11-21T07:00:00.123Z info  listening addr=0.0.0.0:7070
 * Fields after the message are typed key/value pairs (KR_LOG_STR,
 * KR_LOG_U64, ...): callers pass numbers as numbers and the line is built
 * without a printf per field. Values are escaped for JSON (and quoted in
 * text when they contain spaces); numbers are written in decimal, as JSON
 * strings. Thread-safe: each line is built in a local buffer and written
 * with one write(2).
 */
#ifndef KR_UTIL_LOG_H
#define KR_UTIL_LOG_H

#include <stdint.h>

/* Longest line written, newline included; longer lines are cut and end with
 * "...(truncated)" (still valid JSON). Equal to PIPE_BUF on Linux, so a line
 * written to a pipe is never interleaved with another. */
#define KR_LOG_LINE_MAX 4096

typedef enum kr_log_level { KR_LOG_DEBUG = 0, KR_LOG_INFO, KR_LOG_WARN, KR_LOG_ERROR } kr_log_level;

typedef enum kr_log_format { KR_LOG_JSON = 0, KR_LOG_TEXT } kr_log_format;

/* Set the minimum level and the format (defaults: info, JSON). Call before
 * other threads log. */
void kr_log_setup(kr_log_level min, kr_log_format fmt);

/* Write lines to fd instead of stderr (tests). */
void kr_log_set_fd(int fd);

/* Parse "debug", "info", "warn", "error". @return 0, or -1 if unknown. */
int kr_log_level_parse(const char *s, kr_log_level *out);

/* Parse "json" or "text". @return 0, or -1 if unknown. */
int kr_log_format_parse(const char *s, kr_log_format *out);

/* 1 when a line at this level would be written. */
int kr_log_enabled(kr_log_level level);

/* What a field holds. */
typedef enum kr_log_kind {
    KR_LOG_K_END = 0, /* ends the list (kr_log adds it) */
    KR_LOG_K_STR,     /* v.s: NUL-terminated text; NULL is written as null (- in text) */
    KR_LOG_K_U64,     /* v.u: an unsigned number */
    KR_LOG_K_I64,     /* v.i: a signed number */
    KR_LOG_K_MS,      /* v.u: a duration in nanoseconds, written in ms with one decimal */
} kr_log_kind;

/* One key/value pair. The key is NUL-terminated; a NULL key leaves the
 * field out (a field that only some lines carry). Nothing is copied: the
 * pointers need only last for the call. */
typedef struct kr_log_field {
    kr_log_kind kind;
    const char *key;
    union {
        const char *s;
        uint64_t u;
        int64_t i;
    } v;
} kr_log_field;

/* Field constructors, for the argument list of kr_log (compound literals,
 * so a field can also be built ahead and passed as a variable). */
#define KR_LOG_STR(key_, val) ((kr_log_field){.kind = KR_LOG_K_STR, .key = (key_), .v.s = (val)})
#define KR_LOG_U64(key_, val) ((kr_log_field){.kind = KR_LOG_K_U64, .key = (key_), .v.u = (val)})
#define KR_LOG_I64(key_, val) ((kr_log_field){.kind = KR_LOG_K_I64, .key = (key_), .v.i = (val)})
#define KR_LOG_MS(key_, ns)   ((kr_log_field){.kind = KR_LOG_K_MS, .key = (key_), .v.u = (ns)})
#define KR_LOG_END            ((kr_log_field){.kind = KR_LOG_K_END})

/*
 * kr_log - log `msg` with typed fields:
 *   kr_log(KR_LOG_INFO, "listening", KR_LOG_STR("addr", addr),
 *          KR_LOG_U64("max_connections", n));
 * A macro: the fields become an array ended by KR_LOG_END, passed to
 * kr_log_fields. A call in the old form, strings and a NULL, does not
 * compile. Lines longer than KR_LOG_LINE_MAX are cut (and say so).
 */
#define kr_log(level, ...) KR_LOG_CALL_((level), __VA_ARGS__, KR_LOG_END)
#define KR_LOG_CALL_(level, msg, ...)                                                              \
    kr_log_fields((level), (msg), (const kr_log_field[]){__VA_ARGS__})

/* Log msg with the fields up to the first KR_LOG_K_END (what kr_log does). */
void kr_log_fields(kr_log_level level, const char *msg, const kr_log_field *fields);

#endif
