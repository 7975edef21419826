/*
 * util/log.h - the one logging module, used by every layer.
 *
 * One line per event on stderr, either JSON
 *   {"ts":"2026-11-21T07:00:00.123Z","level":"info","msg":"listening","addr":"0.0.0.0:7070"}
 * or text
 *   2026-11-21T07:00:00.123Z info  listening addr=0.0.0.0:7070
 * Fields after the message are key/value pairs given as alternating
 * NUL-terminated strings, ended by NULL. Values are escaped for JSON (and
 * quoted in text when they contain spaces). Thread-safe: each line is built
 * in a local buffer and written with one write(2).
 */
#ifndef KR_UTIL_LOG_H
#define KR_UTIL_LOG_H

#include <stdarg.h>

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

/*
 * kr_log - log `msg` with key/value fields: kr_log(KR_LOG_INFO, "listening",
 * "addr", "0.0.0.0:7070", NULL). Keys and values are NUL-terminated; a NULL
 * key ends the list. Lines longer than 4 KiB are cut (and say so).
 */
#if defined(__GNUC__)
/* gcc and clang then warn (-Wformat) when the terminating NULL is missing. */
__attribute__((sentinel))
#endif
void kr_log(kr_log_level level, const char *msg, ...);
void kr_logv(kr_log_level level, const char *msg, va_list kv);

#endif
