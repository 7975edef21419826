/*
 * kafka/schema.c - the table-driven decoder and encoder (see schema.h).
 *
 * Struct members are reached by offset and copied with memcpy, so the walker
 * needs no knowledge of the C types beyond their sizes (checked at compile
 * time where the tables are written). Nesting is as deep as the tables, never
 * deeper than the input asks for: recursion depth is fixed by the schemas.
 */
#include "kafka/schema.h"

#include <stdio.h>
#include <string.h>

/* The least bytes one struct of schema s takes on the wire in `version`:
 * what an array count is checked against before anything is allocated. */
static size_t min_wire(const kr_kafka_schema *s, int16_t version)
{
    static const uint8_t fixed[] = {
        [KR_KT_I8] = 1,   [KR_KT_I16] = 2, [KR_KT_I32] = 4,   [KR_KT_I64] = 8,
        [KR_KT_BOOL] = 1, [KR_KT_STR] = 2, [KR_KT_BYTES] = 4, [KR_KT_ARRAY] = 4,
    };
    size_t n = 0;
    for (uint16_t i = 0; i < s->nfields; i++)
        if (kr_kafka_field_present(&s->fields[i], version))
            n += fixed[s->fields[i].type];
    return n;
}

static bool nullable(const kr_kafka_field *f, int16_t version)
{
    return version >= f->nullable_from;
}

/* Store the default of an absent field. */
static void put_default(const kr_kafka_field *f, uint8_t *dst)
{
    switch (f->type) {
    case KR_KT_I8: {
        int8_t v = (int8_t)f->def;
        memcpy(dst, &v, sizeof v);
        break;
    }
    case KR_KT_I16: {
        int16_t v = (int16_t)f->def;
        memcpy(dst, &v, sizeof v);
        break;
    }
    case KR_KT_I32: {
        int32_t v = (int32_t)f->def;
        memcpy(dst, &v, sizeof v);
        break;
    }
    case KR_KT_I64:
        memcpy(dst, &f->def, sizeof f->def);
        break;
    case KR_KT_BOOL: {
        bool v = f->def != 0;
        memcpy(dst, &v, sizeof v);
        break;
    }
    case KR_KT_STR: {
        kr_kafka_str v = {f->def == KR_KAFKA_DEF_NULL ? NULL : "",
                          f->def == KR_KAFKA_DEF_NULL ? -1 : 0};
        memcpy(dst, &v, sizeof v);
        break;
    }
    case KR_KT_BYTES: {
        kr_kafka_bytes v = {f->def == KR_KAFKA_DEF_NULL ? NULL : (const uint8_t *)"",
                            f->def == KR_KAFKA_DEF_NULL ? -1 : 0};
        memcpy(dst, &v, sizeof v);
        break;
    }
    case KR_KT_ARRAY: {
        kr_kafka_array v = {NULL, f->def == KR_KAFKA_DEF_NULL ? -1 : 0};
        memcpy(dst, &v, sizeof v);
        break;
    }
    default:
        break;
    }
}

void kr_kafka_schema_defaults(const kr_kafka_schema *s, int16_t version, void *out)
{
    (void)version;
    memset(out, 0, s->size);
    for (uint16_t i = 0; i < s->nfields; i++)
        put_default(&s->fields[i], (uint8_t *)out + s->fields[i].off);
}

/* Decoding state: where the first failure happened. */
typedef struct dctx {
    int16_t version;
    kr_kafka_arena *arena;
    kr_kafka_status status;
    const kr_kafka_schema *where; /* struct and field of the first failure */
    const kr_kafka_field *field;
} dctx;

static void dec_struct(dctx *c, const kr_kafka_schema *s, kr_kafka_rd *r, uint8_t *out);

/* Read one present field into dst. */
static void dec_field(dctx *c, const kr_kafka_field *f, kr_kafka_rd *r, uint8_t *dst)
{
    switch (f->type) {
    case KR_KT_I8: {
        int8_t v = kr_kafka_rd_i8(r);
        memcpy(dst, &v, sizeof v);
        break;
    }
    case KR_KT_I16: {
        int16_t v = kr_kafka_rd_i16(r);
        memcpy(dst, &v, sizeof v);
        break;
    }
    case KR_KT_I32: {
        int32_t v = kr_kafka_rd_i32(r);
        memcpy(dst, &v, sizeof v);
        break;
    }
    case KR_KT_I64: {
        int64_t v = kr_kafka_rd_i64(r);
        memcpy(dst, &v, sizeof v);
        break;
    }
    case KR_KT_BOOL: {
        bool v = kr_kafka_rd_i8(r) != 0;
        memcpy(dst, &v, sizeof v);
        break;
    }
    case KR_KT_STR: {
        kr_kafka_str v = kr_kafka_rd_str(r, nullable(f, c->version));
        memcpy(dst, &v, sizeof v);
        break;
    }
    case KR_KT_BYTES: {
        kr_kafka_bytes v = kr_kafka_rd_bytes(r, nullable(f, c->version));
        memcpy(dst, &v, sizeof v);
        break;
    }
    case KR_KT_ARRAY: {
        kr_kafka_array v = {NULL, 0};
        v.n = kr_kafka_rd_count(r, nullable(f, c->version), min_wire(f->elem, c->version));
        if (v.n > 0) {
            size_t esize = f->elem->size;
            uint8_t *items = (size_t)v.n <= SIZE_MAX / esize
                                 ? kr_kafka_arena_alloc(c->arena, (size_t)v.n * esize)
                                 : NULL;
            if (items == NULL) {
                c->status = KR_KAFKA_TOO_BIG;
                kr_kafka_rd_fail(r, "arrays larger than the decoder allows");
                break;
            }
            for (int32_t i = 0; i < v.n && kr_kafka_rd_ok(r); i++)
                dec_struct(c, f->elem, r, items + (size_t)i * esize);
            v.v = items;
        }
        memcpy(dst, &v, sizeof v);
        break;
    }
    default:
        kr_kafka_rd_fail(r, "unknown field type");
        break;
    }
}

static void dec_struct(dctx *c, const kr_kafka_schema *s, kr_kafka_rd *r, uint8_t *out)
{
    for (uint16_t i = 0; i < s->nfields; i++) {
        const kr_kafka_field *f = &s->fields[i];
        if (!kr_kafka_field_present(f, c->version)) {
            put_default(f, out + f->off);
            continue;
        }
        dec_field(c, f, r, out + f->off);
        if (!kr_kafka_rd_ok(r)) {
            if (c->field == NULL) {
                c->where = s;
                c->field = f;
            }
            return;
        }
    }
}

kr_kafka_status kr_kafka_schema_decode(const kr_kafka_schema *s, int16_t version, kr_kafka_rd *r,
                                       kr_kafka_arena *a, void *out, char *msg, size_t msglen)
{
    dctx c = {version, a, KR_KAFKA_OK, NULL, NULL};

    if (!kr_kafka_rd_ok(r))
        return KR_KAFKA_MALFORMED;
    memset(out, 0, s->size);
    dec_struct(&c, s, r, out);
    if (kr_kafka_rd_ok(r))
        return KR_KAFKA_OK;
    if (msglen > 0)
        snprintf(msg, msglen, "%s v%d: %s %s: %s", s->name, version, c.where->name, c.field->name,
                 r->err);
    return c.status != KR_KAFKA_OK ? c.status : KR_KAFKA_MALFORMED;
}

/* Encoding state: the first field that the version cannot carry. */
typedef struct ectx {
    int16_t version;
    kr_buf *out;
    const kr_kafka_schema *where;
    const kr_kafka_field *field;
    const char *why;
} ectx;

static void enc_struct(ectx *c, const kr_kafka_schema *s, const uint8_t *in);

static void enc_invalid(ectx *c, const kr_kafka_schema *s, const kr_kafka_field *f, const char *why)
{
    if (c->why == NULL) {
        c->where = s;
        c->field = f;
        c->why = why;
    }
}

static void enc_field(ectx *c, const kr_kafka_schema *s, const kr_kafka_field *f,
                      const uint8_t *src)
{
    bool nul = nullable(f, c->version);
    switch (f->type) {
    case KR_KT_I8: {
        int8_t v;
        memcpy(&v, src, sizeof v);
        kr_kafka_put_i8(c->out, v);
        break;
    }
    case KR_KT_I16: {
        int16_t v;
        memcpy(&v, src, sizeof v);
        kr_kafka_put_i16(c->out, v);
        break;
    }
    case KR_KT_I32: {
        int32_t v;
        memcpy(&v, src, sizeof v);
        kr_kafka_put_i32(c->out, v);
        break;
    }
    case KR_KT_I64: {
        int64_t v;
        memcpy(&v, src, sizeof v);
        kr_kafka_put_i64(c->out, v);
        break;
    }
    case KR_KT_BOOL: {
        bool v;
        memcpy(&v, src, sizeof v);
        kr_kafka_put_i8(c->out, v ? 1 : 0);
        break;
    }
    case KR_KT_STR: {
        kr_kafka_str v;
        memcpy(&v, src, sizeof v);
        if (v.len < 0 && !nul)
            enc_invalid(c, s, f, "is null, which this version does not allow");
        else if (v.len > INT16_MAX)
            enc_invalid(c, s, f, "is longer than 32767 bytes");
        else if (v.len > 0 && v.ptr == NULL)
            enc_invalid(c, s, f, "has a length but no pointer to its bytes");
        else
            kr_kafka_put_str(c->out, v.ptr, v.len < 0 ? -1 : v.len);
        break;
    }
    case KR_KT_BYTES: {
        kr_kafka_bytes v;
        memcpy(&v, src, sizeof v);
        if (v.len < 0 && !nul)
            enc_invalid(c, s, f, "is null, which this version does not allow");
        else if (v.len > 0 && v.ptr == NULL)
            enc_invalid(c, s, f, "has a length but no pointer to its bytes");
        else
            kr_kafka_put_bytes(c->out, v.ptr, v.len < 0 ? -1 : v.len);
        break;
    }
    case KR_KT_ARRAY: {
        kr_kafka_array v;
        memcpy(&v, src, sizeof v);
        if (v.n < 0 && !nul) {
            enc_invalid(c, s, f, "is null, which this version does not allow");
            break;
        }
        if (v.n > 0 && v.v == NULL) {
            enc_invalid(c, s, f, "has elements but no pointer to them");
            break;
        }
        kr_kafka_put_i32(c->out, v.n < 0 ? -1 : v.n);
        for (int32_t i = 0; i < v.n && c->why == NULL; i++)
            enc_struct(c, f->elem, (const uint8_t *)v.v + (size_t)i * f->elem->size);
        break;
    }
    default:
        enc_invalid(c, s, f, "has an unknown type");
        break;
    }
}

static void enc_struct(ectx *c, const kr_kafka_schema *s, const uint8_t *in)
{
    for (uint16_t i = 0; i < s->nfields && c->why == NULL; i++) {
        const kr_kafka_field *f = &s->fields[i];
        if (kr_kafka_field_present(f, c->version))
            enc_field(c, s, f, in + f->off);
    }
}

kr_kafka_status kr_kafka_schema_encode(const kr_kafka_schema *s, int16_t version, const void *in,
                                       kr_buf *out, char *msg, size_t msglen)
{
    ectx c = {version, out, NULL, NULL, NULL};

    enc_struct(&c, s, in);
    if (c.why != NULL) {
        if (msglen > 0)
            snprintf(msg, msglen, "%s v%d: %s %s %s", s->name, version, c.where->name,
                     c.field->name, c.why);
        return KR_KAFKA_INVALID;
    }
    if (out->failed) {
        if (msglen > 0)
            snprintf(msg, msglen, "%s v%d: the output buffer refused to grow", s->name, version);
        return KR_KAFKA_TOO_BIG;
    }
    return KR_KAFKA_OK;
}
