/*
 * server/handlers.c - one function per request type.
 *
 * A handler runs on the loop thread after the request passed every check up
 * to "fields valid" (PROTOCOL.md section 5). It answers with kr_req_reply or
 * kr_req_error, either before returning KR_H_DONE or later (KR_H_ASYNC, e.g.
 * from a storage completion). Types without a handler are answered
 * UNKNOWN_TYPE by the session.
 */
#include "server/server.h"

#define KR_SERVER_NAME "krappyd " KRAPPY_VERSION

static kr_hresult hello(kr_conn *c, kr_req *r, const kr_request *req)
{
    (void)req; /* version 1 is the only one; kr_req_decode refused others */
    kr_buf_reset(&c->enc);
    kr_enc_ok_hello(&c->enc, r->cid, KRAPPY_PROTOCOL_VERSION, KR_SERVER_NAME,
                    c->srv->cfg->max_frame, c->srv->cfg->max_events);
    kr_req_reply(r, KRAPPY_T_OK, c->enc.data, c->enc.len);
    return KR_H_DONE;
}

static kr_hresult ping(kr_conn *c, kr_req *r, const kr_request *req)
{
    (void)req;
    kr_buf_reset(&c->enc);
    kr_enc_ok_empty(&c->enc, r->cid);
    kr_req_reply(r, KRAPPY_T_OK, c->enc.data, c->enc.len);
    return KR_H_DONE;
}

static const kr_handler handlers[KRAPPY_T_STATS + 1] = {
    [KRAPPY_T_HELLO] = {"HELLO", false, hello},
    [KRAPPY_T_PING] = {"PING", false, ping},
};

const kr_handler *kr_handler_for(uint32_t type)
{
    if (type >= sizeof handlers / sizeof handlers[0] || handlers[type].run == NULL)
        return NULL;
    return &handlers[type];
}
