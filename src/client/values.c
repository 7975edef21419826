/*
 * client/values.c - an event's values for the application: the small
 * readers of its headers and text values, and CBOR for people, RFC 8949
 * diagnostic notation and JSON (krappy_cbor_to_diag, krappy_cbor_to_json).
 *
 * No I/O and no client: bytes in, text out, each output growing in a
 * kr_buf with a cap. Text always comes out valid UTF-8 with control
 * characters escaped, so it is safe to print on a terminal.
 */
#include "krappy/client.h"

#include <math.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "util/buf.h"
#include "proto/cbor.h"
#include "proto/json_parse.h"
#include "proto/cbor_text.h"

int krappy_header_next(const void *map, size_t len, size_t *pos, const char **name,
                       size_t *name_len, const uint8_t **value, size_t *value_len)
{
    const uint8_t *m = map;
    kr_cbor_item it, k, v;

    if (m == NULL || len == 0 || pos == NULL || *pos > len)
        return -1;
    if (*pos == 0) {
        if (kr_cbor_read_exact(m, len, &it) < 0 || it.kind != KR_CBOR_MAP)
            return -1;
        *pos = it.head_len;
    }
    bool indefinite = (m[0] & 0x1f) == 31;
    if (indefinite ? (*pos + 1 == len && m[*pos] == 0xff) : *pos == len)
        return 0;
    if (kr_cbor_read(m + *pos, len - *pos, &k) < 0 || k.kind != KR_CBOR_TEXT || k.indefinite)
        return -1;
    size_t at = *pos + k.raw_len;
    if (kr_cbor_read(m + at, len - at, &v) < 0 || v.kind != KR_CBOR_BYTES || v.indefinite)
        return -1;
    *pos = at + v.raw_len;
    if (name != NULL)
        *name = (const char *)(k.str != NULL ? k.str : k.raw + k.head_len);
    if (name_len != NULL)
        *name_len = k.str_len;
    if (value != NULL)
        *value = v.str != NULL ? v.str : v.raw + v.head_len;
    if (value_len != NULL)
        *value_len = v.str_len;
    return 1;
}

int krappy_cbor_text(const void *item, size_t len, const char **text, size_t *text_len)
{
    kr_cbor_item it;
    if (item == NULL || kr_cbor_read_exact(item, len, &it) < 0 || it.kind != KR_CBOR_TEXT ||
        it.indefinite)
        return 0;
    if (text != NULL)
        *text = (const char *)(it.str != NULL ? it.str : it.raw + it.head_len);
    if (text_len != NULL)
        *text_len = it.str_len;
    return 1;
}

void krappy_free(void *p)
{
    free(p);
}

/* The renderer lives in proto (krappyd's admin API uses it too). */
_Static_assert(KR_CBOR_JSON_BYTES_HEX == KRAPPY_JSON_BYTES_HEX, "JSON flags differ");
_Static_assert(KR_CBOR_TEXT_MAX_DEPTH == KRAPPY_CBOR_MAX_DEPTH, "depth limits differ");

static krappy_err render_to(const void *item, size_t len, bool json, unsigned flags, char **out)
{
    kr_cbor_item it;
    kr_buf o;

    if (out == NULL)
        return KRAPPY_E_USAGE;
    *out = NULL;
    if (item == NULL || len == 0 || kr_cbor_read_exact(item, len, &it) < 0)
        return KRAPPY_E_USAGE;
    /* No item renders to more than ~16 bytes per input byte (a simple
     * value as "simple(19), "); the cap only stops a runaway. */
    size_t cap = len < (SIZE_MAX - 256) / 32 ? len * 32 + 256 : SIZE_MAX;
    kr_buf_init(&o, cap);
    int rc = kr_cbor_render(item, len, json, flags, &o);
    kr_buf_append(&o, "", 1);
    if (rc < 0 || o.failed) {
        kr_buf_free(&o);
        return rc == -1 ? KRAPPY_E_USAGE : KRAPPY_E_NOMEM;
    }
    *out = (char *)o.data;
    return KRAPPY_OK;
}

krappy_err krappy_cbor_to_diag(const void *item, size_t len, char **out)
{
    return render_to(item, len, false, 0, out);
}

krappy_err krappy_cbor_to_json(const void *item, size_t len, unsigned flags, char **out)
{
    return render_to(item, len, true, flags, out);
}

krappy_err krappy_json_to_cbor(const char *json, size_t len, uint8_t **out, size_t *out_len,
                               char *why, size_t whylen)
{
    kr_buf o;

    if (out == NULL || out_len == NULL)
        return KRAPPY_E_USAGE;
    *out = NULL;
    *out_len = 0;
    /* A JSON value never takes more than 3 CBOR bytes per byte of text (a
     * three-digit number as a double: 9). */
    kr_buf_init(&o, len < (SIZE_MAX - 64) / 4 ? len * 4 + 64 : SIZE_MAX);
    krappy_err e = kr_json_to_cbor(json, len, &o, why, whylen);
    if (e != KRAPPY_OK) {
        kr_buf_free(&o);
        return e;
    }
    *out = o.data;
    *out_len = o.len;
    return KRAPPY_OK;
}
