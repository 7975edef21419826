/*
 * client/client.c - libkrappy: the client handle (include/krappy/client.h
 * is the manual) - its options, its error state and the helpers every
 * other file of libkrappy reports errors with (client_internal.h).
 *
 * The socket is non-blocking underneath; every public call that waits does so
 * in poll() against a deadline taken when the call starts (timeout_ms, or
 * connect_timeout_ms for connect). The files of the client, by job:
 *
 *   client.c    the handle: options, errors, deadlines
 *   connect.c   connecting: names, addresses and address lists, closing
 *   frames.c    moving frames: the output queue, the reply parser, pump(),
 *               krappy_send, krappy_flush, krappy_recv, krappy_reply_error
 *   call.c      one request, one reply: krappy_call, HELLO, PING, and the
 *               send-and-judge helpers of the typed requests
 *   leader.c    following a cluster's leader
 *   publish.c, producer.c  batches, PUBLISH with its sequence numbers,
 *               idempotent producers
 *   read.c      the reads, each decoded into one allocation the caller frees
 *   consume.c   consumer groups (CONSUMER_REGISTER, POLL, ACK)
 *   manage.c    topic settings
 *   values.c    CBOR rendered for people (diagnostic notation, JSON)
 *
 * Request and reply payloads go through proto/msg.h's codecs only.
 */
#include "krappy/client.h"

#include <limits.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "client/client_internal.h"
#include "util/buf.h"
#include "util/clock.h"
#include "util/utf8.h"

#ifndef KRAPPY_VERSION
#define KRAPPY_VERSION "0.0.0"
#endif

/* Requests built by the typed calls never exceed this (a frame's size is a
 * u32); the server's max_frame, checked when sending, is usually lower. */
#define KR_CLIENT_REQUEST_MAX ((size_t)UINT32_MAX - KRAPPY_FRAME_MIN_SIZE)

/* ---- small helpers ---- */

/* A deadline timeout_ms from now; -1 for none (negative timeout). */
int64_t kr_client_deadline_after(int timeout_ms)
{
    return timeout_ms < 0 ? -1 : (int64_t)kr_mono_ms() + timeout_ms;
}

/* Milliseconds left before the deadline, for poll(): -1 = no deadline. */
int kr_client_ms_left(int64_t deadline)
{
    if (deadline < 0)
        return -1;
    int64_t left = deadline - (int64_t)kr_mono_ms();
    if (left <= 0)
        return 0;
    return left > INT_MAX ? INT_MAX : (int)left;
}

void kr_client_clear_error(krappy_client *c)
{
    c->errmsg[0] = '\0';
    c->err_errno = 0;
    c->err_range = false;
    c->err_has_expected = false;
    c->err_leader[0] = '\0';
}

/* Set the error sentence and return `e`. */
krappy_err kr_client_fail(krappy_client *c, krappy_err e, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(c->errmsg, sizeof c->errmsg, fmt, ap);
    va_end(ap);
    return e;
}

/* Close the socket but keep the buffered bytes: a frame returned by the last
 * krappy_recv stays readable until the next call, as the header promises. */
void kr_client_drop_conn(krappy_client *c)
{
    if (c->fd >= 0)
        close(c->fd);
    c->fd = -1;
    c->in_flight = 0;
    c->eof = false;
    kr_buf_reset(&c->out);
    c->out_off = 0;
}

/* The error sentence becomes why there is no connection: later calls that
 * need one say it. */
void kr_client_keep_close_why(krappy_client *c)
{
    snprintf(c->close_why, sizeof c->close_why, "%s", c->errmsg);
}

/* Set the error sentence, close the connection, return `e`. */
krappy_err kr_client_fail_close(krappy_client *c, krappy_err e, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(c->errmsg, sizeof c->errmsg, fmt, ap);
    va_end(ap);
    kr_client_keep_close_why(c);
    kr_client_drop_conn(c);
    return e;
}

/* KRAPPY_E_USAGE for a call that needs a connection, saying why there is none. */
krappy_err kr_client_not_connected(krappy_client *c)
{
    if (c->close_why[0] != '\0')
        return kr_client_fail(c, KRAPPY_E_USAGE, "not connected (%s); call krappy_connect again",
                              c->close_why);
    return kr_client_fail(c, KRAPPY_E_USAGE, "not connected: call krappy_connect first");
}

/* Copy server text into dst for an error sentence: control characters become
 * '?', invalid UTF-8 bytes too; a cut never splits a UTF-8 sequence. */
void kr_client_sanitize(char *dst, size_t dstlen, const uint8_t *src, size_t n)
{
    size_t j = 0;
    bool cut = n > dstlen - 1;

    if (cut)
        n = dstlen - 1;
    for (size_t i = 0; i < n; i++) {
        uint8_t ch = src[i];
        dst[j++] = (ch < 0x20 || ch == 0x7f) ? '?' : (char)ch;
    }
    if (cut) {
        /* back off to the start of a possibly split sequence */
        size_t k = j;
        while (k > 0 && ((uint8_t)dst[k - 1] & 0xC0) == 0x80)
            k--;
        if (k > 0 && (uint8_t)dst[k - 1] >= 0xC0)
            j = k - 1;
    }
    dst[j] = '\0';
    if (!kr_utf8_valid((const uint8_t *)dst, j)) {
        for (size_t i = 0; i < j; i++)
            if ((uint8_t)dst[i] >= 0x80)
                dst[i] = '?';
    }
}

/* ---- the handle ---- */

krappy_client *krappy_client_new(const krappy_opts *opts)
{
    krappy_opts o = {0};
    if (opts != NULL)
        o = *opts;

    krappy_client *c = calloc(1, sizeof *c);
    if (c == NULL)
        return NULL;
    c->fd = -1;
    c->connect_timeout_ms =
        o.connect_timeout_ms == 0 ? KRAPPY_DEFAULT_CONNECT_TIMEOUT_MS : o.connect_timeout_ms;
    c->timeout_ms = o.timeout_ms == 0 ? KRAPPY_DEFAULT_TIMEOUT_MS : o.timeout_ms;
    c->reply_max = o.max_frame == 0 ? KRAPPY_DEFAULT_MAX_FRAME : o.max_frame;
    if (c->reply_max < KRAPPY_FRAME_MIN_SIZE)
        c->reply_max = KRAPPY_FRAME_MIN_SIZE;
    c->send_max = c->reply_max;
    if (o.token != NULL && (c->token = strdup(o.token)) == NULL)
        goto fail;
    if (o.client_name != NULL && (c->client_name = strdup(o.client_name)) == NULL)
        goto fail;
    kr_frame_parser_init(&c->in, c->reply_max);
    kr_buf_init(&c->out, 0);
    kr_buf_init(&c->enc, KR_CLIENT_REQUEST_MAX);
    kr_buf_init(&c->hdrs, KR_CLIENT_REQUEST_MAX);
    kr_ring_init(&c->pub_wait, sizeof(uint64_t), 16);
    kr_ring_init(&c->due, sizeof(kr_due), 8);
    return c;

fail:
    free(c->token);
    free(c);
    return NULL;
}

void krappy_client_free(krappy_client *c)
{
    if (c == NULL)
        return;
    kr_client_drop_conn(c);
    kr_frame_parser_free(&c->in);
    kr_buf_free(&c->out);
    kr_buf_free(&c->enc);
    kr_buf_free(&c->hdrs);
    free(c->specs);
    kr_ring_free(&c->pub_wait);
    kr_ring_free(&c->due);
    free(c->token);
    free(c->client_name);
    free(c);
}

const char *krappy_client_errmsg(const krappy_client *c)
{
    return c != NULL ? c->errmsg : "no client (NULL)";
}

int krappy_client_errno(const krappy_client *c)
{
    return c != NULL ? c->err_errno : 0;
}

int krappy_client_fd(const krappy_client *c)
{
    return c != NULL ? c->fd : -1;
}

int krappy_client_error_range(const krappy_client *c, uint64_t *first, uint64_t *next)
{
    if (c == NULL || !c->err_range)
        return 0;
    if (first != NULL)
        *first = c->err_first;
    if (next != NULL)
        *next = c->err_next;
    return 1;
}

const char *krappy_client_error_leader(const krappy_client *c)
{
    return c != NULL ? c->err_leader : "";
}

int krappy_client_error_expected(const krappy_client *c, uint64_t *expected)
{
    if (c == NULL || !c->err_has_expected)
        return 0;
    if (expected != NULL)
        *expected = c->err_expected;
    return 1;
}

/* A reply type for messages: "EVENTS", or "type 77". */
const char *kr_client_type_label(uint32_t type, char *buf, size_t len)
{
    const char *n = krappy_type_name(type);
    if (n != NULL)
        return n;
    snprintf(buf, len, "type %u", (unsigned)type);
    return buf;
}

/* The server's reply is not what the protocol says: close (the connection
 * cannot be trusted to be in step any more). */
krappy_err kr_client_bad_reply(krappy_client *c, const char *request, const char *what)
{
    return kr_client_fail_close(c, KRAPPY_E_PROTOCOL,
                                "%s answered %s with a malformed reply (%s); connection closed",
                                c->peer, request, what);
}

/* A required topic argument. */
krappy_err kr_client_need_name(krappy_client *c, const char *fn, const char *what, const char *s)
{
    if (s == NULL || s[0] == '\0')
        return kr_client_fail(c, KRAPPY_E_USAGE, "%s: the %s is %s", fn, what,
                              s == NULL ? "NULL" : "empty");
    return KRAPPY_OK;
}

size_t krappy_in_flight(const krappy_client *c)
{
    return c != NULL ? c->in_flight : 0;
}

void krappy_client_set_timeout(krappy_client *c, int timeout_ms)
{
    if (c != NULL)
        c->timeout_ms = timeout_ms == 0 ? KRAPPY_DEFAULT_TIMEOUT_MS : timeout_ms;
}

const char *krappy_version(void)
{
    return KRAPPY_VERSION;
}
