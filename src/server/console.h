/*
 * server/console.h - the web console's page, compiled into krappyd.
 *
 * The Makefile turns src/server/console.html into build/<variant>/gen/
 * console.c at build time; admin.c serves it at / and /console.
 */
#ifndef KR_SERVER_CONSOLE_H
#define KR_SERVER_CONSOLE_H

#include <stddef.h>

/* The page, UTF-8 HTML; static storage, never freed. A NUL follows the last
 * byte, so it is also a C string. */
extern const char kr_console_html[];
/* Its length in bytes, the trailing NUL not counted. */
extern const size_t kr_console_html_len;

#endif
