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

/* Strings and bytes share one layout, so the walkers treat both as bytes
 * and differ only in the width of the length on the wire. */
_Static_assert(sizeof(kr_kafka_str) == sizeof(kr_kafka_bytes) &&
                   offsetof(kr_kafka_str, len) == offsetof(kr_kafka_bytes, len),
               "kr_kafka_str and kr_kafka_bytes have one layout");

/* Integers and bools: every width goes through an int64. */
static bool is_number(uint8_t type)
{
    return type >= KR_KT_I8 && type <= KR_KT_BOOL;
}

static void store_number(uint8_t *dst, uint8_t type, int64_t v)
{
    int8_t v8 = (int8_t)v;
    int16_t v16 = (int16_t)v;
    int32_t v32 = (int32_t)v;
    bool b = v != 0;

    switch (type) {
    case KR_KT_I8:
        memcpy(dst, &v8, sizeof v8);
        break;
    case KR_KT_I16:
        memcpy(dst, &v16, sizeof v16);
        break;
    case KR_KT_I32:
        memcpy(dst, &v32, sizeof v32);
        break;
    case KR_KT_I64:
        memcpy(dst, &v, sizeof v);
        break;
    default:
        memcpy(dst, &b, sizeof b);
        break;
    }
}

static int64_t load_number(const uint8_t *src, uint8_t type)
{
    int8_t v8;
    int16_t v16;
    int32_t v32;
    int64_t v64;
    bool b;

    switch (type) {
    case KR_KT_I8:
        memcpy(&v8, src, sizeof v8);
        return v8;
    case KR_KT_I16:
        memcpy(&v16, src, sizeof v16);
        return v16;
    case KR_KT_I32:
        memcpy(&v32, src, sizeof v32);
        return v32;
    case KR_KT_I64:
        memcpy(&v64, src, sizeof v64);
        return v64;
    default:
        memcpy(&b, src, sizeof b);
        return b;
    }
}

static int64_t read_number(kr_kafka_rd *r, uint8_t type)
{
    switch (type) {
    case KR_KT_I16:
        return kr_kafka_rd_i16(r);
    case KR_KT_I32:
        return kr_kafka_rd_i32(r);
    case KR_KT_I64:
        return kr_kafka_rd_i64(r);
    case KR_KT_BOOL:
        return kr_kafka_rd_i8(r) != 0;
    default:
        return kr_kafka_rd_i8(r);
    }
}

static void put_number(kr_buf *b, uint8_t type, int64_t v)
{
    switch (type) {
    case KR_KT_I16:
        kr_kafka_put_i16(b, (int16_t)v);
        break;
    case KR_KT_I32:
        kr_kafka_put_i32(b, (int32_t)v);
        break;
    case KR_KT_I64:
        kr_kafka_put_i64(b, v);
        break;
    default: /* int8, and bool as 0 or 1 */
        kr_kafka_put_i8(b, (int8_t)v);
        break;
    }
}

/* Store the default of an absent field. */
static void put_default(const kr_kafka_field *f, uint8_t *dst)
{
    bool null = f->def == KR_KAFKA_DEF_NULL;

    if (is_number(f->type)) {
        store_number(dst, f->type, f->def);
    } else if (f->type == KR_KT_ARRAY) {
        kr_kafka_array v = {NULL, null ? -1 : 0};
        memcpy(dst, &v, sizeof v);
    } else {
        kr_kafka_bytes v = {null ? NULL : (const uint8_t *)"", null ? -1 : 0};
        memcpy(dst, &v, sizeof v);
    }
}

void kr_kafka_schema_defaults(const kr_kafka_schema *s, void *out)
{
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

/* Read an array's count and elements into *v. */
static void dec_array(dctx *c, const kr_kafka_field *f, kr_kafka_rd *r, kr_kafka_array *v)
{
    size_t esize = f->elem->size;

    v->v = NULL;
    v->n = kr_kafka_rd_count(r, nullable(f, c->version), min_wire(f->elem, c->version));
    if (v->n <= 0)
        return;
    uint8_t *items = (size_t)v->n <= SIZE_MAX / esize
                         ? kr_kafka_arena_alloc(c->arena, (size_t)v->n * esize)
                         : NULL;
    if (items == NULL) {
        c->status = KR_KAFKA_TOO_BIG;
        kr_kafka_rd_fail(r, "arrays larger than the decoder allows");
        return;
    }
    for (int32_t i = 0; i < v->n && kr_kafka_rd_ok(r); i++)
        dec_struct(c, f->elem, r, items + (size_t)i * esize);
    v->v = items;
}

/* Read one present field into dst. */
static void dec_field(dctx *c, const kr_kafka_field *f, kr_kafka_rd *r, uint8_t *dst)
{
    bool nul = nullable(f, c->version);

    if (is_number(f->type)) {
        store_number(dst, f->type, read_number(r, f->type));
    } else if (f->type == KR_KT_ARRAY) {
        kr_kafka_array v;
        dec_array(c, f, r, &v);
        memcpy(dst, &v, sizeof v);
    } else if (f->type == KR_KT_STR) {
        kr_kafka_str v = kr_kafka_rd_str(r, nul);
        memcpy(dst, &v, sizeof v);
    } else {
        kr_kafka_bytes v = kr_kafka_rd_bytes(r, nul);
        memcpy(dst, &v, sizeof v);
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

    if (is_number(f->type)) {
        put_number(c->out, f->type, load_number(src, f->type));
    } else if (f->type == KR_KT_ARRAY) {
        kr_kafka_array v;
        memcpy(&v, src, sizeof v);
        if (v.n < 0 && !nul) {
            enc_invalid(c, s, f, "is null, which this version does not allow");
            return;
        }
        if (v.n > 0 && v.v == NULL) {
            enc_invalid(c, s, f, "has elements but no pointer to them");
            return;
        }
        kr_kafka_put_i32(c->out, v.n < 0 ? -1 : v.n);
        for (int32_t i = 0; i < v.n && c->why == NULL; i++)
            enc_struct(c, f->elem, (const uint8_t *)v.v + (size_t)i * f->elem->size);
    } else {
        kr_kafka_bytes v;
        memcpy(&v, src, sizeof v);
        if (v.len < 0 && !nul)
            enc_invalid(c, s, f, "is null, which this version does not allow");
        else if (f->type == KR_KT_STR && v.len > INT16_MAX)
            enc_invalid(c, s, f, "is longer than 32767 bytes");
        else if (v.len > 0 && v.ptr == NULL)
            enc_invalid(c, s, f, "has a length but no pointer to its bytes");
        else if (f->type == KR_KT_STR)
            kr_kafka_put_str(c->out, (const char *)v.ptr, v.len < 0 ? -1 : v.len);
        else
            kr_kafka_put_bytes(c->out, v.ptr, v.len < 0 ? -1 : v.len);
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
