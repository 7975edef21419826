/*
 * kafka/api.c - request headers and the framing of requests and responses
 * around the schema walkers (see api.h; the layouts are in api_schemas.c).
 */
#include "kafka/api.h"

#include <stdio.h>
#include <string.h>

const kr_kafka_api *kr_kafka_api_find(int16_t key)
{
    for (size_t i = 0; i < KR_KAFKA_NAPIS; i++)
        if (kr_kafka_apis[i].key == key)
            return &kr_kafka_apis[i];
    return NULL;
}

const char *kr_kafka_api_name(int16_t key)
{
    const kr_kafka_api *api = kr_kafka_api_find(key);
    return api != NULL ? api->name : "Unknown";
}

kr_kafka_status kr_kafka_header_decode(const uint8_t *p, size_t len, kr_kafka_req_header *h,
                                       size_t *body_off)
{
    kr_kafka_rd r;

    kr_kafka_rd_init(&r, p, len);
    h->api_key = kr_kafka_rd_i16(&r);
    h->api_version = kr_kafka_rd_i16(&r);
    h->correlation_id = kr_kafka_rd_i32(&r);
    h->client_id = kr_kafka_rd_str(&r, true);
    if (!kr_kafka_rd_ok(&r))
        return KR_KAFKA_MALFORMED;
    *body_off = len - kr_kafka_rd_left(&r);
    return KR_KAFKA_OK;
}

/* The API and its schema for `version`, or NULL with msg filled. */
static const kr_kafka_api *api_for(int16_t key, int16_t version, bool advertised_only, char *msg,
                                   size_t msglen)
{
    const kr_kafka_api *api = kr_kafka_api_find(key);
    if (api == NULL) {
        if (msglen > 0)
            snprintf(msg, msglen, "API key %d is not supported", key);
        return NULL;
    }
    int16_t lo = advertised_only ? api->min_version : 0;
    if (version < lo || version > api->max_version) {
        if (msglen > 0)
            snprintf(msg, msglen, "%s v%d is not supported (versions %d to %d are)", api->name,
                     version, api->min_version, api->max_version);
        return NULL;
    }
    return api;
}

/* Every byte must belong to the message: bytes after it mean the sender
 * and this table disagree about the layout. */
static kr_kafka_status check_end(const kr_kafka_rd *r, const char *what, int16_t version, char *msg,
                                 size_t msglen)
{
    size_t left = kr_kafka_rd_left(r);
    if (left == 0)
        return KR_KAFKA_OK;
    if (msglen > 0)
        snprintf(msg, msglen, "%s v%d: %zu bytes after the end of the message", what, version,
                 left);
    return KR_KAFKA_MALFORMED;
}

kr_kafka_status kr_kafka_request_decode(const uint8_t *p, size_t len, kr_kafka_arena *a,
                                        kr_kafka_request *req, char *msg, size_t msglen)
{
    size_t off;
    kr_kafka_rd r;

    memset(req, 0, sizeof *req);
    if (kr_kafka_header_decode(p, len, &req->h, &off) != KR_KAFKA_OK) {
        if (msglen > 0)
            snprintf(msg, msglen, "a request of %zu bytes is shorter than its header", len);
        return KR_KAFKA_MALFORMED;
    }
    const kr_kafka_api *api = api_for(req->h.api_key, req->h.api_version, true, msg, msglen);
    if (api == NULL)
        return KR_KAFKA_UNSUPPORTED;
    kr_kafka_rd_init(&r, p + off, len - off);
    kr_kafka_status st =
        kr_kafka_schema_decode(api->request, req->h.api_version, &r, a, &req->u, msg, msglen);
    if (st != KR_KAFKA_OK)
        return st;
    return check_end(&r, api->request->name, req->h.api_version, msg, msglen);
}

/* Write the int32 size in front of what was appended since `start`, or roll
 * back to `start` when the encoding failed. */
static kr_kafka_status finish_frame(kr_buf *out, size_t start, kr_kafka_status st, char *msg,
                                    size_t msglen)
{
    if (st == KR_KAFKA_OK && out->failed) {
        if (msglen > 0)
            snprintf(msg, msglen, "the output buffer refused to grow");
        st = KR_KAFKA_TOO_BIG;
    }
    if (st == KR_KAFKA_OK && out->len - start - 4 > INT32_MAX) {
        if (msglen > 0)
            snprintf(msg, msglen, "a frame of %zu bytes is larger than Kafka allows",
                     out->len - start - 4);
        st = KR_KAFKA_TOO_BIG;
    }
    if (st != KR_KAFKA_OK) {
        out->len = start < out->len ? start : out->len;
        return st;
    }
    kr_kafka_patch_be(out, start, out->len - start - 4, 4);
    return KR_KAFKA_OK;
}

kr_kafka_status kr_kafka_response_encode(kr_buf *out, int16_t api_key, int16_t version,
                                         int32_t correlation_id, const void *body, char *msg,
                                         size_t msglen)
{
    const kr_kafka_api *api = api_for(api_key, version, false, msg, msglen);
    if (api == NULL)
        return KR_KAFKA_UNSUPPORTED;
    size_t start = out->len;
    kr_kafka_put_i32(out, 0);
    kr_kafka_put_i32(out, correlation_id);
    kr_kafka_status st = kr_kafka_schema_encode(api->response, version, body, out, msg, msglen);
    return finish_frame(out, start, st, msg, msglen);
}

int kr_kafka_response_extend(kr_buf *out, size_t start, size_t n)
{
    static const uint8_t empty[4];
    if (start > out->len || out->len - start < 12)
        return -1;
    size_t frame = out->len - start - 4;
    const uint8_t *len_at = out->data + out->len - 4;
    if (memcmp(len_at, empty, sizeof empty) != 0 || n > INT32_MAX || frame > INT32_MAX - n)
        return -1;
    kr_kafka_patch_be(out, out->len - 4, n, 4);
    kr_kafka_patch_be(out, start, frame + n, 4);
    return 0;
}

kr_kafka_status kr_kafka_request_encode(kr_buf *out, const kr_kafka_req_header *h, const void *body,
                                        char *msg, size_t msglen)
{
    const kr_kafka_api *api = api_for(h->api_key, h->api_version, false, msg, msglen);
    if (api == NULL)
        return KR_KAFKA_UNSUPPORTED;
    size_t start = out->len;
    kr_kafka_put_i32(out, 0);
    kr_kafka_put_i16(out, h->api_key);
    kr_kafka_put_i16(out, h->api_version);
    kr_kafka_put_i32(out, h->correlation_id);
    kr_kafka_put_str(out, h->client_id.ptr, h->client_id.len < 0 ? -1 : h->client_id.len);
    kr_kafka_status st =
        kr_kafka_schema_encode(api->request, h->api_version, body, out, msg, msglen);
    return finish_frame(out, start, st, msg, msglen);
}

kr_kafka_status kr_kafka_response_decode(const uint8_t *p, size_t len, int16_t api_key,
                                         int16_t version, kr_kafka_arena *a,
                                         int32_t *correlation_id, void *body, char *msg,
                                         size_t msglen)
{
    kr_kafka_rd r;

    const kr_kafka_api *api = api_for(api_key, version, false, msg, msglen);
    if (api == NULL)
        return KR_KAFKA_UNSUPPORTED;
    kr_kafka_rd_init(&r, p, len);
    *correlation_id = kr_kafka_rd_i32(&r);
    if (!kr_kafka_rd_ok(&r)) {
        if (msglen > 0)
            snprintf(msg, msglen, "a response of %zu bytes is shorter than its header", len);
        return KR_KAFKA_MALFORMED;
    }
    kr_kafka_status st = kr_kafka_schema_decode(api->response, version, &r, a, body, msg, msglen);
    if (st != KR_KAFKA_OK)
        return st;
    return check_end(&r, api->response->name, version, msg, msglen);
}

void kr_kafka_api_versions_fill(kr_kafka_api_versions_resp *r, int16_t error_code,
                                kr_kafka_api_version table[KR_KAFKA_NAPIS])
{
    for (size_t i = 0; i < KR_KAFKA_NAPIS; i++) {
        table[i].api_key = kr_kafka_apis[i].key;
        table[i].min_version = kr_kafka_apis[i].min_version;
        table[i].max_version = kr_kafka_apis[i].max_version;
    }
    memset(r, 0, sizeof *r);
    r->error_code = error_code;
    r->api_keys.v = table;
    r->api_keys.n = KR_KAFKA_NAPIS;
}
