/*
 * e2e/conn.h - one connection for e2e tests: libkrappy for the transport,
 * the proto codecs for requests and replies, cmocka for failing the test.
 * Include after <cmocka.h>. Test-only: every function is static.
 */
#ifndef KR_E2E_CONN_H
#define KR_E2E_CONN_H

#include "harness.h"
#include "krappy/client.h"
#include "proto/msg.h"

typedef struct conn {
    krappy_client *c;
    kr_buf b;       /* the request payload being built */
    krappy_frame f; /* the last reply */
    kr_reply r;     /* ... decoded */
} conn;

static inline void conn_open(conn *x, const e2e_server *s)
{
    x->c = krappy_client_new(NULL);
    assert_non_null(x->c);
    kr_buf_init(&x->b, 64u << 20);
    assert_int_equal(krappy_connect(x->c, s->host, s->port), KRAPPY_OK);
}

static inline void conn_close(conn *x)
{
    krappy_client_free(x->c);
    kr_buf_free(&x->b);
}

/*
 * Send the request in x->b and wait for its reply, decoded into x->r.
 * @return 0 on success, or the server's error code (the ERROR is decoded
 *         too, for its fields); a local failure fails the test.
 */
static inline int conn_call(conn *x, uint32_t type)
{
    krappy_err rc = krappy_call(x->c, type, x->b.data, x->b.len, &x->f);
    if (rc > KRAPPY_E_WIRE_MAX)
        fail_msg("call failed: %s", krappy_client_errmsg(x->c));
    if (x->f.type != 0 && kr_reply_decode(x->f.type, x->f.payload, x->f.len, &x->r) < 0)
        fail_msg("malformed reply");
    return (int)rc;
}

/* A uint field of the last reply; fails the test when it is missing. */
static inline uint64_t reply_u(conn *x, const char *field)
{
    uint64_t v = UINT64_MAX;
    if (kr_reply_uint(&x->r, field, &v) != 1)
        fail_msg("reply has no uint field '%s'", field);
    return v;
}

/* One event of a PUBLISH with a text key and a text value: the value is
 * encoded (a CBOR text string) into val (room for 48 bytes). */
static inline kr_event_out_spec conn_text_event(const char *key, const char *text, uint8_t *val)
{
    kr_buf vb;
    kr_buf_init(&vb, 48);
    kr_cbor_put_cstr(&vb, text);
    assert_false(vb.failed);
    memcpy(val, vb.data, vb.len);
    kr_event_out_spec ev = {
        .key = key, .key_len = strlen(key), .key_is_text = true, .value = val, .value_len = vb.len};
    kr_buf_free(&vb);
    return ev;
}

/* PRODUCER_REGISTER; @return the error code (0: reply_u(x, "next") works). */
static inline int conn_register(conn *x, const char *topic)
{
    kr_buf_reset(&x->b);
    kr_enc_producer_register(&x->b, (kr_cid){0}, topic, "e2e");
    return conn_call(x, KRAPPY_T_PRODUCER_REGISTER);
}

#endif
