/*
 * util/buf.c - a growable byte buffer with a cap (see buf.h).
 *
 * Growth doubles the allocation (from KR_BUF_MIN_ALLOC) so appending n bytes
 * one at a time costs O(n); the allocation never exceeds `max`. Once an
 * append has been refused, later appends and reserves are refused too until
 * kr_buf_reset, so a message that did not fit is never half-written.
 */
#include "util/buf.h"

#include <stdlib.h>
#include <string.h>

/* The first allocation is at least this large. */
#define KR_BUF_MIN_ALLOC 64

void kr_buf_init(kr_buf *b, size_t max)
{
    b->data = NULL;
    b->len = 0;
    b->cap = 0;
    b->max = max;
    b->failed = false;
}

void kr_buf_free(kr_buf *b)
{
    if (b == NULL)
        return;
    free(b->data);
    b->data = NULL;
    b->len = 0;
    b->cap = 0;
    b->failed = false;
}

void kr_buf_reset(kr_buf *b)
{
    b->len = 0;
    b->failed = false;
}

/*
 * Make sure len + n bytes fit. The new capacity is the larger of twice the
 * old one and what is needed, clipped to max; realloc keeps the contents.
 */
int kr_buf_reserve(kr_buf *b, size_t n)
{
    if (b->failed)
        return -1;
    if (b->len > b->max || n > b->max - b->len)
        goto fail;
    size_t need = b->len + n;
    if (need <= b->cap)
        return 0;

    size_t ncap = b->cap < KR_BUF_MIN_ALLOC ? KR_BUF_MIN_ALLOC : b->cap;
    while (ncap < need) {
        if (ncap > SIZE_MAX / 2) {
            ncap = need;
            break;
        }
        ncap *= 2;
    }
    if (ncap > b->max)
        ncap = b->max;
    uint8_t *p = realloc(b->data, ncap);
    if (p == NULL)
        goto fail;
    b->data = p;
    b->cap = ncap;
    return 0;

fail:
    b->failed = true;
    return -1;
}

int kr_buf_append(kr_buf *b, const void *p, size_t n)
{
    if (n == 0)
        return b->failed ? -1 : 0;
    if (b->cap - b->len < n || b->failed) {
        if (kr_buf_reserve(b, n) < 0)
            return -1;
    }
    memcpy(b->data + b->len, p, n);
    b->len += n;
    return 0;
}

void kr_buf_consume(kr_buf *b, size_t n)
{
    if (n >= b->len) {
        b->len = 0;
        return;
    }
    memmove(b->data, b->data + n, b->len - n);
    b->len -= n;
}
