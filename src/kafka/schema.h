/*
 * kafka/schema.h - message layouts as tables, and the one decoder and encoder
 * that walk them.
 *
 * Kafka describes every message as a list of fields, each present in a range
 * of versions (apache/kafka's clients/src/main/resources/common/message/, a
 * .json file per message); a kr_kafka_schema says the same of a C struct:
 * for each field its wire type, its version range, from which version it
 * may be null, its default when absent, and where it lives in the struct. kr_kafka_schema_decode
 * fills a struct from the bytes of one version; kr_kafka_schema_encode writes a struct as one
 * version. Requests and responses, both directions, all use these two functions, so a version is
 * supported by writing its fields into a table (api_schemas.c), not by writing code.
 *
 * Struct conventions (api.h): int8/16/32/64 fields are int8_t..int64_t, bool
 * is bool, strings kr_kafka_str, bytes kr_kafka_bytes, arrays
 * KR_KAFKA_ARRAY(element type) - a pointer and an int32 count, -1 for null.
 * Arrays of a primitive are arrays of a one-field struct of that type.
 */
#ifndef KR_KAFKA_SCHEMA_H
#define KR_KAFKA_SCHEMA_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "kafka/arena.h"
#include "kafka/wire.h"

/* An array in a message struct: `n` elements at `v` (n -1 = null). */
#define KR_KAFKA_ARRAY(T)                                                                          \
    struct {                                                                                       \
        const T *v;                                                                                \
        int32_t n;                                                                                 \
    }

/* Every KR_KAFKA_ARRAY has this layout; the codec reads and writes it so. */
typedef struct kr_kafka_array {
    const void *v;
    int32_t n;
} kr_kafka_array;

typedef enum kr_kafka_type {
    KR_KT_I8 = 1,
    KR_KT_I16,
    KR_KT_I32,
    KR_KT_I64,
    KR_KT_BOOL,
    KR_KT_STR,
    KR_KT_BYTES,
    KR_KT_ARRAY
} kr_kafka_type;

/* Versions are 0..KR_KAFKA_VMAX; a field "3+" is present in [3, VMAX]. */
#define KR_KAFKA_VMAX 127
/* nullable_from for a field that is never null. */
#define KR_KAFKA_NEVER_NULL 127
/* `def` of a string, bytes or array field absent from a version: null
 * (any other def means empty). */
#define KR_KAFKA_DEF_NULL 1

typedef struct kr_kafka_schema kr_kafka_schema;

typedef struct kr_kafka_field {
    const char *name;            /* Kafka's field name, for error messages */
    uint8_t type;                /* kr_kafka_type */
    int8_t vmin, vmax;           /* present in versions [vmin, vmax] */
    int8_t nullable_from;        /* may be null from this version on */
    uint16_t off;                /* offsetof the member in the struct */
    int64_t def;                 /* value when absent (numbers, bool; see DEF_NULL) */
    const kr_kafka_schema *elem; /* arrays: the element's schema */
} kr_kafka_field;

struct kr_kafka_schema {
    const char *name; /* Kafka's struct name ("ProduceRequest", "TopicProduceData") */
    const kr_kafka_field *fields;
    uint16_t nfields;
    uint16_t size; /* sizeof the struct */
};

/* What the schema walkers report. */
typedef enum kr_kafka_status {
    KR_KAFKA_OK = 0,
    KR_KAFKA_MALFORMED,   /* bytes that are not the message (close the connection) */
    KR_KAFKA_UNSUPPORTED, /* an API key or version this codec does not speak */
    KR_KAFKA_TOO_BIG,     /* the arena or the output buffer refused to grow */
    KR_KAFKA_INVALID      /* encode: a struct the version cannot carry (null
                             where not allowed, a string over 32767 bytes) */
} kr_kafka_status;

/*
 * kr_kafka_schema_decode - read one struct of `version` from r into *out
 * (sizeof schema->size), its arrays from arena `a`. Fields absent from the
 * version get their defaults. Bytes after the struct are left in r.
 * @return KR_KAFKA_OK; KR_KAFKA_MALFORMED (r failed) or KR_KAFKA_TOO_BIG,
 *         with a sentence naming the struct and field in msg[0..msglen).
 */
kr_kafka_status kr_kafka_schema_decode(const kr_kafka_schema *s, int16_t version, kr_kafka_rd *r,
                                       kr_kafka_arena *a, void *out, char *msg, size_t msglen);

/*
 * kr_kafka_schema_encode - append *in as `version` of schema s to out.
 * Fields absent from the version are not written (whatever their value).
 * @return KR_KAFKA_OK; KR_KAFKA_INVALID (msg names the field) or
 *         KR_KAFKA_TOO_BIG (out refused to grow). On failure out may hold
 *         part of the message: the caller rolls back.
 */
kr_kafka_status kr_kafka_schema_encode(const kr_kafka_schema *s, int16_t version, const void *in,
                                       kr_buf *out, char *msg, size_t msglen);

/* Set every field of *out (schema->size bytes) to the value it has when
 * absent from a version (its default). */
void kr_kafka_schema_defaults(const kr_kafka_schema *s, void *out);

/* true when field f is on the wire in `version`. */
static inline bool kr_kafka_field_present(const kr_kafka_field *f, int16_t version)
{
    return version >= f->vmin && version <= f->vmax;
}

#endif
