/*
 * server/kafka_resp.c - the Kafka port's response buffers: large responses
 * sent by reference and their buffers pooled (see kafka_resp.h for why).
 */
#include "server/kafka_resp.h"

#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>

static struct {
    bool open;
    int n;
    uint8_t *p[KR_KRESP_POOL];
    size_t cap[KR_KRESP_POOL];
} resp_pool;

/* The output is done with a response sent by reference (extra: its
 * buffer's capacity): keep the buffer for the next, or free it. */
static void resp_pool_put(const void *data, size_t len, void *extra)
{
    (void)len;
    uint8_t *p = (uint8_t *)(uintptr_t)data;
    size_t cap = (size_t)(uintptr_t)extra;
    if (resp_pool.open && resp_pool.n < KR_KRESP_POOL) {
        resp_pool.p[resp_pool.n] = p;
        resp_pool.cap[resp_pool.n] = cap;
        resp_pool.n++;
        return;
    }
    free(p);
}

void kr_kresp_pool_take(kr_buf *b)
{
    if (b->data != NULL || resp_pool.n == 0)
        return;
    resp_pool.n--;
    b->data = resp_pool.p[resp_pool.n];
    b->cap = resp_pool.cap[resp_pool.n];
    b->len = 0;
}

void kr_kresp_pool_open(void)
{
    resp_pool.open = true;
}

void kr_kresp_pool_close(void)
{
    resp_pool.open = false;
    while (resp_pool.n > 0)
        free(resp_pool.p[--resp_pool.n]);
}

int kr_kresp_send(struct evbuffer *out, kr_buf *resp)
{
    if (resp->len < KR_KRESP_BY_REF)
        return evbuffer_add(out, resp->data, resp->len);
    if (evbuffer_add_reference(out, resp->data, resp->len, resp_pool_put,
                               (void *)(uintptr_t)resp->cap) < 0)
        return -1;
    size_t max = resp->max;
    *resp = (kr_buf){.max = max};
    return 0;
}
