/*
 * client/consume.c - libkrappy's consuming side: CONSUMER_REGISTER, POLL
 * and ACK, one round trip at a time or pipelined.
 *
 * The one-shot calls go through kr_client_request like the reads; the
 * pipelined ones through kr_client_send_due / kr_client_recv_due (call.c),
 * which remember which reply each request waits for, so that a *_recv
 * called out of turn refuses instead of taking another request's reply.
 * POLL's EVENTS are decoded by read.c (kr_read_events) into the same
 * krappy_events that FETCH returns.
 */
#include "krappy/client.h"

#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "client/client_internal.h"
#include "util/buf.h"
#include "proto/cbor.h"
#include "proto/msg.h"

/* ---- CONSUMER_REGISTER ---- */

krappy_err krappy_register_consumer(krappy_client *c, const char *topic, const char *group,
                                    const krappy_consumer_opts *opts, krappy_consumer_info *out)
{
    static const char fn[] = "krappy_register_consumer";
    krappy_consumer_opts o = {0};
    krappy_frame f;
    kr_reply r;
    kr_cbor_item member;
    krappy_err e;
    uint64_t cursor;

    if (c == NULL)
        return KRAPPY_E_USAGE;
    kr_client_clear_error(c);
    if (out != NULL)
        memset(out, 0, sizeof *out);
    if (opts != NULL)
        o = *opts;
    if ((e = kr_client_need_name(c, fn, "topic", topic)) != KRAPPY_OK ||
        (e = kr_client_need_name(c, fn, "group", group)) != KRAPPY_OK)
        return e;
    if (o.member != NULL && (e = kr_client_need_name(c, fn, "member", o.member)) != KRAPPY_OK)
        return e;
    if (o.start != KRAPPY_START_EARLIEST && o.start != KRAPPY_START_LATEST &&
        o.start != KRAPPY_START_OFFSET)
        return kr_client_fail(c, KRAPPY_E_USAGE, "%s: unknown start %d", fn, (int)o.start);
    if (o.ack != KRAPPY_CONSUMER_ACK_EXPLICIT && o.ack != KRAPPY_CONSUMER_ACK_AUTO)
        return kr_client_fail(c, KRAPPY_E_USAGE, "%s: unknown ack mode %d", fn, (int)o.ack);

    kr_start_kind start = o.start == KRAPPY_START_OFFSET   ? KR_START_OFFSET
                          : o.start == KRAPPY_START_LATEST ? KR_START_LATEST
                                                           : KR_START_EARLIEST;
    kr_enc_consumer_register(kr_client_enc_begin(c), (kr_cid){false, 0}, topic, group, o.member,
                             start, o.start_offset,
                             o.ack == KRAPPY_CONSUMER_ACK_AUTO ? KR_CACK_AUTO : KR_CACK_EXPLICIT,
                             o.ack_wait_ms != 0 ? o.ack_wait_ms : KRAPPY_DEFAULT_ACK_WAIT_MS);
    if ((e = kr_client_request(c, KRAPPY_T_CONSUMER_REGISTER, KRAPPY_T_OK, 0, &f, &r)) != KRAPPY_OK)
        return e;
    if (kr_cbor_map_find(&r.map, "member", &member) != 1 || member.kind != KR_CBOR_TEXT ||
        member.str_len == 0 || member.str_len > KRAPPY_MAX_NAME_BYTES ||
        !kr_reply_uint(&r, "cursor", &cursor))
        return kr_client_bad_reply(
            c, "CONSUMER_REGISTER",
            "it needs a text `member` of 1 to 249 bytes and a uint `cursor`");
    if (out != NULL) {
        kr_cbor_str_copy(&member, (uint8_t *)out->member, member.str_len);
        out->member[member.str_len] = '\0';
        out->member_len = member.str_len;
        out->cursor = cursor;
    }
    return KRAPPY_OK;
}

/* ---- POLL ---- */

/* Encode a POLL into c->enc, with the defaults krappy_fetch uses. */
static void encode_poll(krappy_client *c, uint64_t max, uint64_t wait_ms, uint64_t max_bytes)
{
    kr_enc_poll(kr_client_enc_begin(c), (kr_cid){false, 0}, max != 0 ? max : KRAPPY_DEFAULT_MAX,
                wait_ms, max_bytes != 0 ? max_bytes : KRAPPY_DEFAULT_MAX_BYTES);
}

/* The checks a call that hands events out starts with (fn: its name, for
 * the message): *out cleared, the client's last error too.
 * @return KRAPPY_OK, or KRAPPY_E_USAGE for a NULL client or out. */
static krappy_err poll_begin(krappy_client *c, krappy_events **out, const char *fn)
{
    if (out != NULL)
        *out = NULL;
    if (c == NULL)
        return KRAPPY_E_USAGE;
    kr_client_clear_error(c);
    if (out == NULL)
        return kr_client_fail(c, KRAPPY_E_USAGE, "%s: out is NULL", fn);
    return KRAPPY_OK;
}

krappy_err krappy_poll(krappy_client *c, uint64_t max, uint64_t wait_ms, uint64_t max_bytes,
                       krappy_events **out)
{
    krappy_frame f;
    kr_reply r;
    krappy_err e;

    if ((e = poll_begin(c, out, "krappy_poll")) != KRAPPY_OK)
        return e;
    encode_poll(c, max, wait_ms, max_bytes);
    if ((e = kr_client_request(c, KRAPPY_T_POLL, KRAPPY_T_EVENTS, wait_ms, &f, &r)) != KRAPPY_OK)
        return e;
    return kr_read_events(c, &f, "POLL", out);
}

krappy_err krappy_poll_send(krappy_client *c, uint64_t max, uint64_t wait_ms, uint64_t max_bytes)
{
    if (c == NULL)
        return KRAPPY_E_USAGE;
    kr_client_clear_error(c);
    encode_poll(c, max, wait_ms, max_bytes);
    return kr_client_send_due(c, KRAPPY_T_POLL, wait_ms);
}

krappy_err krappy_poll_recv(krappy_client *c, krappy_events **out)
{
    krappy_frame f;
    kr_reply r;
    krappy_err e;

    if ((e = poll_begin(c, out, "krappy_poll_recv")) != KRAPPY_OK)
        return e;
    if ((e = kr_client_recv_due(c, KRAPPY_T_POLL, KRAPPY_T_EVENTS, "krappy_poll_recv", &f, &r)) !=
        KRAPPY_OK)
        return e;
    return kr_read_events(c, &f, "POLL", out);
}

/* ---- ACK ---- */

/*
 * Read ACK's OK {cursor, ignored?} from r: the cursor into *cursor, and,
 * when `ignored` is not NULL, the ignored offsets into a new result (NULL
 * when there are none). A malformed reply closes the connection.
 */
static krappy_err read_ack(krappy_client *c, const kr_reply *r, uint64_t *cursor,
                           krappy_ack_result **ignored)
{
    kr_cbor_item arr, item;
    kr_cbor_iter it;
    uint64_t cur;
    size_t n = 0;

    if (!kr_reply_uint(r, "cursor", &cur))
        return kr_client_bad_reply(c, "ACK", "no uint `cursor`");
    int found = kr_cbor_map_find(&r->map, "ignored", &arr) == 1 && arr.kind != KR_CBOR_NULL;
    if (found) {
        if (arr.kind != KR_CBOR_ARRAY)
            return kr_client_bad_reply(c, "ACK", "`ignored` is not an array");
        kr_cbor_iter_init(&it, &arr);
        while (kr_cbor_iter_next(&it, &item) == 1) {
            if (item.kind != KR_CBOR_UINT)
                return kr_client_bad_reply(c, "ACK", "`ignored` holds something not a uint");
            n++;
        }
    }
    if (ignored != NULL && n > 0) {
        if (n > (SIZE_MAX - sizeof(krappy_ack_result)) / sizeof(uint64_t))
            return kr_client_fail(c, KRAPPY_E_NOMEM, "an ACK reply too large to hold");
        krappy_ack_result *res = malloc(sizeof *res + n * sizeof(uint64_t));
        if (res == NULL)
            return kr_client_fail(c, KRAPPY_E_NOMEM,
                                  "out of memory holding %zu ignored offsets of an ACK", n);
        uint64_t *v = (uint64_t *)(void *)(res + 1);
        size_t i = 0;
        kr_cbor_iter_init(&it, &arr);
        while (i < n && kr_cbor_iter_next(&it, &item) == 1)
            v[i++] = item.u;
        res->cursor = cur;
        res->n_ignored = n;
        res->ignored = v;
        *ignored = res;
    }
    if (cursor != NULL)
        *cursor = cur;
    return KRAPPY_OK;
}

/* What every ACK call starts with: a client, whose last error is then
 * cleared, and *ignored set to NULL. */
static krappy_err ack_begin(krappy_client *c, krappy_ack_result **ignored)
{
    if (ignored != NULL)
        *ignored = NULL;
    if (c == NULL)
        return KRAPPY_E_USAGE;
    kr_client_clear_error(c);
    return KRAPPY_OK;
}

/* Encode ACK offsets into c->enc; KRAPPY_E_USAGE for NULL with n > 0. */
static krappy_err encode_ack_offsets(krappy_client *c, const char *fn, const uint64_t *offsets,
                                     size_t n)
{
    if (offsets == NULL && n > 0)
        return kr_client_fail(c, KRAPPY_E_USAGE, "%s: offsets is NULL but n is %zu", fn, n);
    kr_enc_ack_offsets(kr_client_enc_begin(c), (kr_cid){false, 0}, offsets, n);
    return KRAPPY_OK;
}

krappy_err krappy_ack_upto(krappy_client *c, uint64_t upto, uint64_t *cursor)
{
    krappy_frame f;
    kr_reply r;
    krappy_err e;

    if ((e = ack_begin(c, NULL)) != KRAPPY_OK)
        return e;
    kr_enc_ack_upto(kr_client_enc_begin(c), (kr_cid){false, 0}, upto);
    if ((e = kr_client_request(c, KRAPPY_T_ACK, KRAPPY_T_OK, 0, &f, &r)) != KRAPPY_OK)
        return e;
    return read_ack(c, &r, cursor, NULL);
}

krappy_err krappy_ack_offsets(krappy_client *c, const uint64_t *offsets, size_t n, uint64_t *cursor,
                              krappy_ack_result **ignored)
{
    krappy_frame f;
    kr_reply r;
    krappy_err e;

    if ((e = ack_begin(c, ignored)) != KRAPPY_OK ||
        (e = encode_ack_offsets(c, "krappy_ack_offsets", offsets, n)) != KRAPPY_OK)
        return e;
    if ((e = kr_client_request(c, KRAPPY_T_ACK, KRAPPY_T_OK, 0, &f, &r)) != KRAPPY_OK)
        return e;
    return read_ack(c, &r, cursor, ignored);
}

krappy_err krappy_ack_upto_send(krappy_client *c, uint64_t upto)
{
    krappy_err e;

    if ((e = ack_begin(c, NULL)) != KRAPPY_OK)
        return e;
    kr_enc_ack_upto(kr_client_enc_begin(c), (kr_cid){false, 0}, upto);
    return kr_client_send_due(c, KRAPPY_T_ACK, 0);
}

krappy_err krappy_ack_offsets_send(krappy_client *c, const uint64_t *offsets, size_t n)
{
    krappy_err e;

    if ((e = ack_begin(c, NULL)) != KRAPPY_OK ||
        (e = encode_ack_offsets(c, "krappy_ack_offsets_send", offsets, n)) != KRAPPY_OK)
        return e;
    return kr_client_send_due(c, KRAPPY_T_ACK, 0);
}

krappy_err krappy_ack_recv(krappy_client *c, uint64_t *cursor, krappy_ack_result **ignored)
{
    krappy_frame f;
    kr_reply r;
    krappy_err e;

    if ((e = ack_begin(c, ignored)) != KRAPPY_OK)
        return e;
    if ((e = kr_client_recv_due(c, KRAPPY_T_ACK, KRAPPY_T_OK, "krappy_ack_recv", &f, &r)) !=
        KRAPPY_OK)
        return e;
    return read_ack(c, &r, cursor, ignored);
}

void krappy_ack_result_free(krappy_ack_result *r)
{
    free(r);
}
