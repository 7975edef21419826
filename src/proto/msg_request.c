/*
 * proto/msg_request.c - request decoding and validation (server side), and
 * the walk over a decoded PUBLISH's events (msg.h; PROTOCOL.md sections
 * 1-5). The encoders are in msg_encode.c, the reply decoders in msg_reply.c.
 *
 * Decoding makes one pass over the payload map, remembering for each known
 * field the last value given (duplicates: last wins; unknown keys: ignored),
 * then validates the fields of the request type in the order msg.h lists
 * them. Nothing is allocated: strings point into the payload, except
 * indefinite-length ones, which are joined into the caller's scratch buffer.
 * The first join reserves the whole payload length in scratch, which bounds
 * every join of this request, so no later append moves the memory and every
 * pointer handed out stays valid.
 *
 * The file is over the ~900-line guide (about 1,100 lines) on purpose:
 * kr_events_iter re-validates PUBLISH events with the same decoding
 * context, validators and messages as kr_req_decode, and keeping them
 * static here lets the compiler inline them on the per-event path.
 */
#include "proto/msg.h"

#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "util/utf8.h"

/* ---- field table ---- */

/* Every field name any request uses. */
enum field_id {
    F_CID,
    F_TOPIC,
    F_ID,
    F_GROUP,
    F_MEMBER,
    F_START,
    F_ACK,
    F_ACK_WAIT_MS,
    F_EVENTS,
    F_KEY,
    F_VALUE,
    F_TS,
    F_HEADERS,
    F_MAX,
    F_WAIT_MS,
    F_MAX_BYTES,
    F_UPTO,
    F_OFFSETS,
    F_PREFIX,
    F_AFTER,
    F_LIMIT,
    F_CURSOR,
    F_OFFSET,
    F_VERSION,
    F_CLIENT,
    F_TOKEN,
    F_IDEMPOTENT,
    F_SEQ,
    F_TO,
    F_ADD,
    F_REMOVE,
    F_SET,
    F_COUNT
};

static const struct field_name {
    const char *name;
    size_t len;
} field_names[F_COUNT] = {
#define FN(id, s) [id] = {s, sizeof(s) - 1}
    FN(F_CID, "cid"),         FN(F_TOPIC, "topic"),
    FN(F_ID, "id"),           FN(F_GROUP, "group"),
    FN(F_MEMBER, "member"),   FN(F_START, "start"),
    FN(F_ACK, "ack"),         FN(F_ACK_WAIT_MS, "ack_wait_ms"),
    FN(F_EVENTS, "events"),   FN(F_KEY, "key"),
    FN(F_VALUE, "value"),     FN(F_TS, "ts"),
    FN(F_HEADERS, "headers"), FN(F_MAX, "max"),
    FN(F_WAIT_MS, "wait_ms"), FN(F_MAX_BYTES, "max_bytes"),
    FN(F_UPTO, "upto"),       FN(F_OFFSETS, "offsets"),
    FN(F_PREFIX, "prefix"),   FN(F_AFTER, "after"),
    FN(F_LIMIT, "limit"),     FN(F_CURSOR, "cursor"),
    FN(F_OFFSET, "offset"),   FN(F_VERSION, "version"),
    FN(F_CLIENT, "client"),   FN(F_TOKEN, "token"),
    FN(F_TO, "to"),           FN(F_IDEMPOTENT, "idempotent"),
    FN(F_SEQ, "seq"),         FN(F_ADD, "add"),
    FN(F_REMOVE, "remove"),   FN(F_SET, "set"),
#undef FN
};

/* The longest field name; longer keys cannot be ours. */
#define FIELD_NAME_MAX 16

/*
 * The first event of a definite `events` array of definite events, read
 * while the payload is (see read_events): judged by dec_publish, after the
 * whole payload proved well-formed (PROTOCOL.md section 5's order).
 */
typedef struct first_event {
    bool ready;           /* read with the map: the fields below hold */
    int n;                /* its parts (0 for an empty `events`), or -1 when it is
                             not an array of 2 to 4 items */
    kr_cbor_item part[4]; /* key, value, ts, headers */
    kr_cbor_iter rest;    /* `events` after it */
} first_event;

/* The last value given for each known field. */
typedef struct fields {
    uint32_t seen; /* bit per field_id */
    kr_cbor_item v[F_COUNT];
    first_event ev0; /* of v[F_EVENTS] */
} fields;

/* Rules, quoted in messages so a person knows what to send. */
#define RULE_TOPIC      "a text string of 1-249 bytes of [A-Za-z0-9._-] (not . or ..)"
#define RULE_ID         "a text string of 1-249 bytes of valid UTF-8"
#define RULE_UINT       "an unsigned integer"
#define RULE_KEY        "a byte or text string of at most 16384 bytes"
#define RULE_EV_KEY     RULE_KEY ", or null"
#define RULE_EV_TS      "an unsigned integer (milliseconds since the Unix epoch), or null"
#define RULE_EV_HEADERS "a map of text keys to byte strings, or null"
#define RULE_EVENT      "an array [key, value], [key, value, ts] or [key, value, ts, headers]"

/* An event index that means "the single-event form" in messages. */
#define SINGLE_EVENT UINT64_MAX

/* One CBOR null, the raw form of an absent key. */
static const uint8_t cbor_null_byte[1] = {0xf6};

/* Decoding state shared by the helpers. */
typedef struct dctx {
    size_t len;      /* payload length: bounds all joined strings */
    kr_buf *scratch; /* may be NULL: indefinite strings then fail */
    bool reserved;   /* scratch holds room for len bytes */
    char *msg;
    size_t msglen;
} dctx;

/* Write a message (if the caller wants one) and return the error code. */
__attribute__((format(printf, 3, 4))) static krappy_err fail(dctx *c, krappy_err e, const char *fmt,
                                                             ...)
{
    if (c->msg != NULL && c->msglen > 0) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(c->msg, c->msglen, fmt, ap);
        va_end(ap);
    }
    return e;
}

static const char *kind_name(kr_cbor_kind k)
{
    switch (k) {
    case KR_CBOR_UINT:
        return "an unsigned integer";
    case KR_CBOR_NEGINT:
        return "a negative integer";
    case KR_CBOR_BYTES:
        return "a byte string";
    case KR_CBOR_TEXT:
        return "a text string";
    case KR_CBOR_ARRAY:
        return "an array";
    case KR_CBOR_MAP:
        return "a map";
    case KR_CBOR_TAG:
        return "a tagged item";
    case KR_CBOR_FLOAT:
        return "a float";
    case KR_CBOR_FALSE:
        return "false";
    case KR_CBOR_TRUE:
        return "true";
    case KR_CBOR_NULL:
        return "null";
    case KR_CBOR_UNDEF:
        return "undefined";
    case KR_CBOR_SIMPLE:
        return "a simple value";
    }
    return "an unknown item";
}

/* Which known field a text key names, or -1. */
static int field_lookup(const kr_cbor_item *k)
{
    uint8_t tmp[FIELD_NAME_MAX];
    const uint8_t *s = k->str;

    if (k->str_len > FIELD_NAME_MAX || k->str_len == 0)
        return -1;
    if (k->indefinite) {
        kr_cbor_str_copy(k, tmp, sizeof tmp);
        s = tmp;
    }
    /* The first byte sorts out nearly every name of the same length
     * before memcmp is called: every request's keys pass here. */
    for (int i = 0; i < F_COUNT; i++)
        if (field_names[i].len == k->str_len && field_names[i].name[0] == (char)s[0] &&
            memcmp(field_names[i].name, s, k->str_len) == 0)
            return i;
    return -1;
}

/* CBOR major type 4 (array), definite length: the head's first byte. */
static bool definite_array_at(const uint8_t *p, const uint8_t *end)
{
    return p < end && (*p >> 5) == 4 && (*p & 0x1f) != 31;
}

/*
 * Read the `events` value at it (a definite array, checked by the caller)
 * into *out as kr_cbor_iter_next would, opening its first event on the
 * way when that is a definite array too, so that event's parts are read
 * once: they are kept in *ev0 for dec_publish, which would otherwise open
 * the event again. Definite containers only: walk() counts the nesting of
 * indefinite ones, which reading by parts would not.
 * @return 1, or -1 when malformed.
 */
static int read_events(kr_cbor_iter *it, kr_cbor_item *out, first_event *ev0)
{
    kr_cbor_iter ev;
    kr_cbor_item head, x;
    int r;

    ev0->ready = false;
    if (kr_cbor_iter_open(it->p, (size_t)(it->end - it->p), out, &ev) < 0)
        return -1;
    ev0->n = 0;
    if (ev.left > 0 && definite_array_at(ev.p, ev.end)) {
        kr_cbor_iter parts;
        if (kr_cbor_iter_open(ev.p, (size_t)(ev.end - ev.p), &head, &parts) < 0)
            return -1;
        /* Each part read in its place; a fifth and later into x. */
        while ((r = kr_cbor_iter_next(&parts,
                                      ev0->n >= 0 && ev0->n < 4 ? &ev0->part[ev0->n] : &x)) == 1)
            ev0->n = ev0->n >= 0 && ev0->n < 4 ? ev0->n + 1 : -1;
        if (r < 0)
            return -1;
        if (ev0->n < 2)
            ev0->n = -1;
        ev.p = kr_cbor_iter_end(&parts);
        ev.left--;
        ev0->rest = ev;
    } else if (ev.left > 0) {
        /* Not an array of the common shape: read it whole, judged later as
         * dec_publish judges any event. */
        kr_cbor_iter at = ev;
        if (kr_cbor_iter_next(&ev, &x) != 1)
            return -1;
        ev0->n = x.kind == KR_CBOR_ARRAY ? -2 : -1; /* -2: open it again */
        ev0->rest = at;
    } else {
        ev0->rest = ev;
    }
    while ((r = kr_cbor_iter_next(&ev, &x)) == 1)
        ;
    if (r < 0)
        return -1;
    out->raw_len = (size_t)(kr_cbor_iter_end(&ev) - out->raw);
    it->p += out->raw_len;
    if (!it->indefinite)
        it->left--;
    ev0->ready = ev0->n != -2;
    return 1;
}

/*
 * Check the payload is exactly one map with text keys and collect its
 * fields, reading every byte once: the map is opened by its head and each
 * child is read (and checked) as it comes. Only on failure is the payload
 * looked at again, to say precisely what is wrong.
 */
static krappy_err read_payload(dctx *c, const uint8_t *payload, size_t len, fields *f)
{
    kr_cbor_item map, k, v;
    kr_cbor_iter it;
    int r;

    if (kr_cbor_iter_open(payload, len, &map, &it) < 0 || map.kind != KR_CBOR_MAP)
        goto malformed;
    while ((r = kr_cbor_iter_next(&it, &k)) == 1) {
        int id = k.kind == KR_CBOR_TEXT ? field_lookup(&k) : -1;
        kr_cbor_item *to = id >= 0 ? &f->v[id] : &v; /* read in its place */
        if (id == F_EVENTS && definite_array_at(it.p, it.end)) {
            if (read_events(&it, to, &f->ev0) != 1)
                goto malformed;
        } else {
            if (kr_cbor_iter_next(&it, to) != 1)
                goto malformed;
            if (id == F_EVENTS)
                f->ev0.ready = false;
        }
        if (k.kind != KR_CBOR_TEXT)
            goto malformed;
        if (id >= 0)
            f->seen |= UINT32_C(1) << id;
    }
    if (r < 0 || kr_cbor_iter_end(&it) != payload + len)
        goto malformed;
    return KRAPPY_OK;

malformed:
    if (kr_cbor_read(payload, len, &map) < 0)
        return fail(c, KRAPPY_E_BAD_PAYLOAD,
                    "the payload is not well-formed CBOR (truncated, invalid, or "
                    "indefinite-length items nested deeper than %d)",
                    KR_CBOR_MAX_NEST);
    if (map.kind != KR_CBOR_MAP)
        return fail(c, KRAPPY_E_BAD_PAYLOAD, "the payload must be a CBOR map, not %s",
                    kind_name(map.kind));
    if (map.raw_len != len)
        return fail(c, KRAPPY_E_BAD_PAYLOAD,
                    "the payload has %zu byte%s after its CBOR map; it must be exactly one map",
                    len - map.raw_len, len - map.raw_len == 1 ? "" : "s");
    return fail(c, KRAPPY_E_BAD_PAYLOAD, "every key of the payload map must be a text string");
}

/* A field given and not null (null counts as absent). */
static inline const kr_cbor_item *get(const fields *f, int id)
{
    if (!(f->seen & (UINT32_C(1) << id)) || f->v[id].kind == KR_CBOR_NULL)
        return NULL;
    return &f->v[id];
}

/*
 * The content of a string item. A definite string points into the payload;
 * an indefinite one is joined into scratch, whose room for the whole
 * payload is reserved by the first join so that pointers never move.
 */
static krappy_err str_of(dctx *c, const kr_cbor_item *s, kr_str *out)
{
    if (!s->indefinite) {
        out->ptr = s->str;
        out->len = s->str_len;
        return KRAPPY_OK;
    }
    if (c->scratch == NULL)
        return fail(c, KRAPPY_E_NOMEM, "no buffer to join an indefinite-length string");
    if (!c->reserved) {
        if (kr_buf_reserve(c->scratch, c->len) < 0)
            return fail(c, KRAPPY_E_NOMEM, "out of memory joining an indefinite-length string");
        c->reserved = true;
    }
    size_t at = c->scratch->len;
    kr_cbor_iter it;
    kr_cbor_item chunk;
    kr_cbor_iter_init(&it, s);
    while (kr_cbor_iter_next(&it, &chunk) == 1)
        kr_buf_append(c->scratch, chunk.str, chunk.str_len);
    if (c->scratch->failed)
        return fail(c, KRAPPY_E_NOMEM, "out of memory joining an indefinite-length string");
    out->ptr = c->scratch->data + at;
    out->len = s->str_len;
    return KRAPPY_OK;
}

/* ---- name rules ---- */

/* [A-Za-z0-9._-] */
static const uint8_t topic_char[256] = {
    ['-'] = 1, ['.'] = 1, ['_'] = 1, ['0'] = 1, ['1'] = 1, ['2'] = 1, ['3'] = 1, ['4'] = 1,
    ['5'] = 1, ['6'] = 1, ['7'] = 1, ['8'] = 1, ['9'] = 1, ['A'] = 1, ['B'] = 1, ['C'] = 1,
    ['D'] = 1, ['E'] = 1, ['F'] = 1, ['G'] = 1, ['H'] = 1, ['I'] = 1, ['J'] = 1, ['K'] = 1,
    ['L'] = 1, ['M'] = 1, ['N'] = 1, ['O'] = 1, ['P'] = 1, ['Q'] = 1, ['R'] = 1, ['S'] = 1,
    ['T'] = 1, ['U'] = 1, ['V'] = 1, ['W'] = 1, ['X'] = 1, ['Y'] = 1, ['Z'] = 1, ['a'] = 1,
    ['b'] = 1, ['c'] = 1, ['d'] = 1, ['e'] = 1, ['f'] = 1, ['g'] = 1, ['h'] = 1, ['i'] = 1,
    ['j'] = 1, ['k'] = 1, ['l'] = 1, ['m'] = 1, ['n'] = 1, ['o'] = 1, ['p'] = 1, ['q'] = 1,
    ['r'] = 1, ['s'] = 1, ['t'] = 1, ['u'] = 1, ['v'] = 1, ['w'] = 1, ['x'] = 1, ['y'] = 1,
    ['z'] = 1,
};

int kr_topic_name_valid(const uint8_t *p, size_t n)
{
    if (n < 1 || n > KRAPPY_MAX_NAME_BYTES)
        return 0;
    if (p[0] == '.' && (n == 1 || (n == 2 && p[1] == '.')))
        return 0;
    for (size_t i = 0; i < n; i++)
        if (!topic_char[p[i]])
            return 0;
    return 1;
}

int kr_id_valid(const uint8_t *p, size_t n)
{
    return n >= 1 && n <= KRAPPY_MAX_NAME_BYTES && kr_utf8_valid(p, n);
}

/* ---- field validators ---- */

/* A required or optional name field: text, then the name rule. */
static krappy_err name_field(dctx *c, const fields *f, int id, bool required, bool topic, bool *has,
                             kr_str *out)
{
    const char *name = field_names[id].name;
    const char *rule = topic ? RULE_TOPIC : RULE_ID;
    const kr_cbor_item *v = get(f, id);

    if (has != NULL)
        *has = false;
    if (v == NULL) {
        if (required)
            return fail(c, KRAPPY_E_INVALID_ARGUMENT, "field '%s' is required: %s", name, rule);
        return KRAPPY_OK;
    }
    if (v->kind != KR_CBOR_TEXT)
        return fail(c, KRAPPY_E_INVALID_ARGUMENT, "field '%s' must be %s, not %s", name, rule,
                    kind_name(v->kind));
    if (v->str_len < 1 || v->str_len > KRAPPY_MAX_NAME_BYTES)
        return fail(c, KRAPPY_E_INVALID_ARGUMENT, "field '%s' must be %s (it has %zu bytes)", name,
                    rule, v->str_len);
    krappy_err e = str_of(c, v, out);
    if (e != KRAPPY_OK)
        return e;
    if (topic ? !kr_topic_name_valid(out->ptr, out->len) : !kr_id_valid(out->ptr, out->len))
        return fail(c, KRAPPY_E_INVALID_ARGUMENT, "field '%s' must be %s", name, rule);
    if (has != NULL)
        *has = true;
    return KRAPPY_OK;
}

#define TOPIC(c, f, out) name_field((c), (f), F_TOPIC, true, true, NULL, (out))

/* A uint field: absent takes `dflt` (or is an error when `required`). */
static krappy_err uint_field(dctx *c, const fields *f, int id, bool required, uint64_t dflt,
                             uint64_t min, uint64_t *out)
{
    const char *name = field_names[id].name;
    const kr_cbor_item *v = get(f, id);

    if (v == NULL) {
        if (required)
            return fail(c, KRAPPY_E_INVALID_ARGUMENT, "field '%s' is required: %s", name,
                        RULE_UINT);
        *out = dflt;
        return KRAPPY_OK;
    }
    if (v->kind != KR_CBOR_UINT) {
        if (min > 0)
            return fail(c, KRAPPY_E_INVALID_ARGUMENT,
                        "field '%s' must be %s of at least %" PRIu64 ", not %s", name, RULE_UINT,
                        min, kind_name(v->kind));
        return fail(c, KRAPPY_E_INVALID_ARGUMENT, "field '%s' must be %s, not %s", name, RULE_UINT,
                    kind_name(v->kind));
    }
    if (v->u < min)
        return fail(c, KRAPPY_E_INVALID_ARGUMENT, "field '%s' must be at least %" PRIu64, name,
                    min);
    *out = v->u;
    return KRAPPY_OK;
}

/* A byte-or-text field of at most `maxlen` content bytes (0: no limit). */
static krappy_err bytes_field(dctx *c, const fields *f, int id, bool required, size_t maxlen,
                              const char *rule, bool *has, kr_str *out)
{
    const char *name = field_names[id].name;
    const kr_cbor_item *v = get(f, id);

    *has = false;
    if (v == NULL) {
        if (required)
            return fail(c, KRAPPY_E_INVALID_ARGUMENT, "field '%s' is required: %s", name, rule);
        return KRAPPY_OK;
    }
    if (v->kind != KR_CBOR_BYTES && v->kind != KR_CBOR_TEXT)
        return fail(c, KRAPPY_E_INVALID_ARGUMENT, "field '%s' must be %s, not %s", name, rule,
                    kind_name(v->kind));
    if (maxlen > 0 && v->str_len > maxlen)
        return fail(c, KRAPPY_E_INVALID_ARGUMENT, "field '%s' must be %s (it has %zu bytes)", name,
                    rule, v->str_len);
    krappy_err e = str_of(c, v, out);
    if (e == KRAPPY_OK)
        *has = true;
    return e;
}

/* An optional text field (HELLO client, token). */
static krappy_err text_field(dctx *c, const fields *f, int id, bool *has, kr_str *out)
{
    const kr_cbor_item *v = get(f, id);

    *has = false;
    if (v == NULL)
        return KRAPPY_OK;
    if (v->kind != KR_CBOR_TEXT)
        return fail(c, KRAPPY_E_INVALID_ARGUMENT, "field '%s' must be a text string, not %s",
                    field_names[id].name, kind_name(v->kind));
    krappy_err e = str_of(c, v, out);
    if (e == KRAPPY_OK)
        *has = true;
    return e;
}

/* An optional boolean field: absent (or null) is false. */
static krappy_err bool_field(dctx *c, const fields *f, int id, bool *out)
{
    const kr_cbor_item *v = get(f, id);

    *out = false;
    if (v == NULL)
        return KRAPPY_OK;
    if (v->kind != KR_CBOR_TRUE && v->kind != KR_CBOR_FALSE)
        return fail(c, KRAPPY_E_INVALID_ARGUMENT, "field '%s' must be true or false, not %s",
                    field_names[id].name, kind_name(v->kind));
    *out = v->kind == KR_CBOR_TRUE;
    return KRAPPY_OK;
}

/*
 * An enumerated text field: the index of the matching choice, `dflt` when
 * absent. `rule` lists the choices for the message.
 */
static krappy_err enum_field(dctx *c, const fields *f, int id, const char *const *choices, int n,
                             int dflt, const char *rule, int *out)
{
    const kr_cbor_item *v = get(f, id);

    *out = dflt;
    if (v == NULL)
        return KRAPPY_OK;
    if (v->kind == KR_CBOR_TEXT)
        for (int i = 0; i < n; i++)
            if (kr_cbor_text_eq(v, choices[i])) {
                *out = i;
                return KRAPPY_OK;
            }
    return fail(c, KRAPPY_E_INVALID_ARGUMENT, "field '%s' must be %s", field_names[id].name, rule);
}

/* ---- PUBLISH events ---- */

/* Say what is wrong with a part of an event, naming the event. */
static krappy_err ev_fail(dctx *c, uint64_t index, const char *part, const char *rule)
{
    if (index == SINGLE_EVENT)
        return fail(c, KRAPPY_E_INVALID_ARGUMENT, "field '%s' must be %s", part, rule);
    return fail(c, KRAPPY_E_INVALID_ARGUMENT, "PUBLISH event %" PRIu64 ": %s must be %s", index,
                part, rule);
}

/* A key item: null (no key), or bytes/text of at most KRAPPY_MAX_KEY_BYTES. */
static bool key_ok(const kr_cbor_item *k)
{
    if (k->kind == KR_CBOR_NULL)
        return true;
    return (k->kind == KR_CBOR_BYTES || k->kind == KR_CBOR_TEXT) &&
           k->str_len <= KRAPPY_MAX_KEY_BYTES;
}

/* Headers: a map of text keys to byte strings. */
static bool headers_ok(const kr_cbor_item *h)
{
    kr_cbor_iter it;
    kr_cbor_item k, v;

    if (h->kind != KR_CBOR_MAP)
        return false;
    kr_cbor_iter_init(&it, h);
    for (;;) {
        int r = kr_cbor_iter_next(&it, &k);
        if (r == 0)
            return true;
        if (r < 0 || k.kind != KR_CBOR_TEXT)
            return false;
        if (kr_cbor_iter_next(&it, &v) != 1 || v.kind != KR_CBOR_BYTES)
            return false;
    }
}

/* Fill a kr_key from a validated key item; the content of an indefinite
 * key is joined by `join` (str_of) when a context is given. */
static void key_fill(const kr_cbor_item *k, kr_key *out)
{
    out->raw.ptr = k->raw;
    out->raw.len = k->raw_len;
    out->present = k->kind != KR_CBOR_NULL;
    out->is_text = k->kind == KR_CBOR_TEXT;
    out->content.ptr = k->str;
    out->content.len = k->str_len;
}

/*
 * Validate the parts of one event and fill *out. In the `events` form the
 * parts come from the event array; in the single form from the map fields.
 * Indefinite keys are joined when `join` is set (else content.ptr is NULL
 * for them, and only validation is done).
 */
static krappy_err event_parts(dctx *c, uint64_t index, const kr_cbor_item *key,
                              const kr_cbor_item *value, const kr_cbor_item *ts,
                              const kr_cbor_item *headers, bool join, kr_event_in *out)
{
    if (key != NULL && !key_ok(key))
        return ev_fail(c, index, "key", RULE_EV_KEY);
    if (ts != NULL && ts->kind != KR_CBOR_UINT && ts->kind != KR_CBOR_NULL)
        return ev_fail(c, index, "ts", RULE_EV_TS);
    if (headers != NULL && headers->kind != KR_CBOR_NULL && !headers_ok(headers))
        return ev_fail(c, index, "headers", RULE_EV_HEADERS);

    if (key != NULL) {
        key_fill(key, &out->key);
        if (key->indefinite) {
            if (join) {
                krappy_err e = str_of(c, key, &out->key.content);
                if (e != KRAPPY_OK)
                    return e;
            } else if (c->scratch != NULL && !c->reserved) {
                /* Reserve now: kr_events_iter_next joins into scratch. */
                if (kr_buf_reserve(c->scratch, c->len) < 0)
                    return fail(c, KRAPPY_E_NOMEM,
                                "out of memory joining an indefinite-length key");
                c->reserved = true;
            }
        }
    } else {
        memset(&out->key, 0, sizeof out->key);
        out->key.raw.ptr = cbor_null_byte;
        out->key.raw.len = sizeof cbor_null_byte;
    }
    out->value.ptr = value->raw;
    out->value.len = value->raw_len;
    out->tombstone = value->kind == KR_CBOR_NULL;
    out->has_ts = ts != NULL && ts->kind == KR_CBOR_UINT;
    out->ts = out->has_ts ? ts->u : 0;
    out->has_headers = headers != NULL && headers->kind != KR_CBOR_NULL;
    if (out->has_headers) {
        out->headers.ptr = headers->raw;
        out->headers.len = headers->raw_len;
    } else {
        out->headers.ptr = NULL;
        out->headers.len = 0;
    }
    return KRAPPY_OK;
}

/*
 * Read the parts of the next event of an `events` iterator and move past
 * it. The event is opened by its head, so its parts are read once (the
 * array as a whole was already checked when the payload was read).
 * @return 1 with part[0..*n) set; 0 at the end; -1 when the event is not an
 *         array of 2 to 4 items.
 */
static int next_event_parts(kr_cbor_iter *events, kr_cbor_item part[4], int *n)
{
    kr_cbor_item head, x;
    kr_cbor_iter it;
    int r;

    if (events->indefinite) {
        if (events->p >= events->end)
            return -1;
        if (*events->p == 0xff)
            return 0;
    } else if (events->left == 0) {
        return 0;
    }
    if (kr_cbor_iter_open(events->p, (size_t)(events->end - events->p), &head, &it) < 0 ||
        head.kind != KR_CBOR_ARRAY)
        return -1;
    *n = 0;
    while ((r = kr_cbor_iter_next(&it, &x)) == 1) {
        if (*n == 4)
            return -1;
        part[(*n)++] = x;
    }
    if (r < 0 || *n < 2)
        return -1;
    events->p = kr_cbor_iter_end(&it);
    if (!events->indefinite)
        events->left--;
    return 1;
}

/* Validate (and fill *out from) the next event of an `events` iterator.
 * @return KRAPPY_OK, an error, or -1 (as krappy_err) at the end. */
static int event_next(dctx *c, uint64_t index, kr_cbor_iter *events, bool join, kr_event_in *out,
                      krappy_err *err)
{
    kr_cbor_item part[4];
    int n = 0;
    int r = next_event_parts(events, part, &n);
    if (r == 0)
        return 0;
    if (r < 0) {
        *err = ev_fail(c, index, "the event", RULE_EVENT);
        return -1;
    }
    *err = event_parts(c, index, &part[0], &part[1], n > 2 ? &part[2] : NULL,
                       n > 3 ? &part[3] : NULL, join, out);
    return *err == KRAPPY_OK ? 1 : -1;
}

/* Does the map carry any field of the single-event form? `value` counts
 * even as null (a tombstone); the others only when not null. */
static bool single_form_given(const fields *f)
{
    return (f->seen & (UINT32_C(1) << F_VALUE)) || get(f, F_KEY) || get(f, F_TS) ||
           get(f, F_HEADERS);
}

static krappy_err dec_publish(dctx *c, const fields *f, kr_request *r)
{
    static const char *const acks[] = {"write", "sync", "none"};
    const kr_cbor_item *events = get(f, F_EVENTS);
    bool single = single_form_given(f);
    int ack;
    krappy_err e;

    if (events != NULL && single)
        return fail(c, KRAPPY_E_INVALID_ARGUMENT,
                    "PUBLISH takes either 'events' or one event as 'key', 'value', 'ts', "
                    "'headers', not both");
    if (events == NULL && !single)
        return fail(c, KRAPPY_E_INVALID_ARGUMENT,
                    "PUBLISH needs 'events' (a non-empty array of events) or a 'value'");

    if (events != NULL) {
        if (events->kind != KR_CBOR_ARRAY)
            return fail(c, KRAPPY_E_INVALID_ARGUMENT,
                        "field 'events' must be a non-empty array of events, not %s",
                        kind_name(events->kind));
        /* The first event is decoded for good (its key joined) and the
         * iterator resumes after it: a single-event batch is walked once. */
        kr_cbor_iter it;
        kr_event_in tmp;
        uint64_t n = 0;
        int got;
        if (f->ev0.ready) {
            /* Its parts were read with the map (read_events). */
            const first_event *e0 = &f->ev0;
            it = e0->rest;
            got = e0->n != 0;
            if (e0->n < 0)
                return ev_fail(c, 0, "the event", RULE_EVENT);
            if (e0->n > 0) {
                e = event_parts(c, 0, &e0->part[0], &e0->part[1], e0->n > 2 ? &e0->part[2] : NULL,
                                e0->n > 3 ? &e0->part[3] : NULL, true, &r->u.publish.first);
                if (e != KRAPPY_OK)
                    return e;
            }
        } else {
            kr_cbor_iter_init(&it, events);
            got = event_next(c, 0, &it, true, &r->u.publish.first, &e);
        }
        if (got == 0)
            return fail(c, KRAPPY_E_INVALID_ARGUMENT,
                        "field 'events' must be a non-empty array of events");
        r->u.publish.rest = it;
        for (n = 1; got == 1; n += got == 1)
            got = event_next(c, n, &it, false, &tmp, &e);
        if (got < 0)
            return e;
        r->u.publish.batch = true;
        r->u.publish.events = *events;
        r->u.publish.count = n;
    } else {
        if (!(f->seen & (UINT32_C(1) << F_VALUE)))
            return fail(c, KRAPPY_E_INVALID_ARGUMENT,
                        "field 'value' is required in the single-event form of PUBLISH "
                        "(any CBOR item; null is a tombstone)");
        e = event_parts(c, SINGLE_EVENT, get(f, F_KEY), &f->v[F_VALUE], get(f, F_TS),
                        get(f, F_HEADERS), true, &r->u.publish.first);
        if (e != KRAPPY_OK)
            return e;
        r->u.publish.batch = false;
        r->u.publish.count = 1;
    }
    e = enum_field(c, f, F_ACK, acks, 3, KR_ACK_WRITE, "\"write\", \"sync\" or \"none\"", &ack);
    r->u.publish.ack = (kr_ack_mode)ack;
    if (e != KRAPPY_OK)
        return e;
    /* Required only on an idempotent registration, which the handler
     * knows of (section 7): here it is only judged when given. */
    r->u.publish.has_seq = get(f, F_SEQ) != NULL;
    return uint_field(c, f, F_SEQ, false, 0, 0, &r->u.publish.seq);
}

/* ---- the other request types ---- */

static krappy_err dec_producer_register(dctx *c, const fields *f, kr_request *r)
{
    krappy_err e = TOPIC(c, f, &r->u.producer_register.topic);
    if (e == KRAPPY_OK)
        e = name_field(c, f, F_ID, true, false, NULL, &r->u.producer_register.id);
    if (e == KRAPPY_OK)
        e = bool_field(c, f, F_IDEMPOTENT, &r->u.producer_register.idempotent);
    return e;
}

static krappy_err dec_consumer_register(dctx *c, const fields *f, kr_request *r)
{
    static const char *const starts[] = {"earliest", "latest"};
    static const char *const acks[] = {"explicit", "auto"};
    __typeof__(r->u.consumer_register) *cr = &r->u.consumer_register;
    int v;
    krappy_err e;

    if ((e = TOPIC(c, f, &cr->topic)) != KRAPPY_OK)
        return e;
    if ((e = name_field(c, f, F_GROUP, true, false, NULL, &cr->group)) != KRAPPY_OK)
        return e;
    if ((e = name_field(c, f, F_MEMBER, false, false, &cr->has_member, &cr->member)) != KRAPPY_OK)
        return e;

    const kr_cbor_item *start = get(f, F_START);
    cr->start = KR_START_EARLIEST;
    cr->start_offset = 0;
    if (start != NULL && start->kind == KR_CBOR_UINT) {
        cr->start = KR_START_OFFSET;
        cr->start_offset = start->u;
    } else if (start != NULL) {
        e = enum_field(c, f, F_START, starts, 2, 0,
                       "\"earliest\", \"latest\" or an offset (an unsigned integer)", &v);
        if (e != KRAPPY_OK)
            return e;
        cr->start = v == 0 ? KR_START_EARLIEST : KR_START_LATEST;
    }

    e = enum_field(c, f, F_ACK, acks, 2, KR_CACK_EXPLICIT, "\"explicit\" or \"auto\"", &v);
    if (e != KRAPPY_OK)
        return e;
    cr->ack = (kr_consumer_ack)v;
    return uint_field(c, f, F_ACK_WAIT_MS, false, KRAPPY_DEFAULT_ACK_WAIT_MS, 0, &cr->ack_wait_ms);
}

/* max, wait_ms, max_bytes: shared by POLL and FETCH. */
static krappy_err dec_limits(dctx *c, const fields *f, uint64_t *max, uint64_t *wait_ms,
                             uint64_t *max_bytes)
{
    krappy_err e = uint_field(c, f, F_MAX, false, KRAPPY_DEFAULT_MAX, 1, max);
    if (e == KRAPPY_OK)
        e = uint_field(c, f, F_WAIT_MS, false, 0, 0, wait_ms);
    if (e == KRAPPY_OK)
        e = uint_field(c, f, F_MAX_BYTES, false, KRAPPY_DEFAULT_MAX_BYTES, 0, max_bytes);
    return e;
}

static krappy_err dec_ack(dctx *c, const fields *f, kr_request *r)
{
    const kr_cbor_item *upto = get(f, F_UPTO);
    const kr_cbor_item *offsets = get(f, F_OFFSETS);

    if (upto != NULL && offsets != NULL)
        return fail(c, KRAPPY_E_INVALID_ARGUMENT, "ACK takes either 'upto' or 'offsets', not both");
    if (upto == NULL && offsets == NULL)
        return fail(c, KRAPPY_E_INVALID_ARGUMENT,
                    "ACK needs 'upto' (an offset) or 'offsets' (an array of offsets)");
    if (upto != NULL) {
        r->u.ack.has_upto = true;
        return uint_field(c, f, F_UPTO, true, 0, 0, &r->u.ack.upto);
    }
    if (offsets->kind != KR_CBOR_ARRAY)
        return fail(c, KRAPPY_E_INVALID_ARGUMENT,
                    "field 'offsets' must be an array of unsigned integers, not %s",
                    kind_name(offsets->kind));
    kr_cbor_iter it;
    kr_cbor_item o;
    uint64_t n = 0;
    kr_cbor_iter_init(&it, offsets);
    while (kr_cbor_iter_next(&it, &o) == 1) {
        if (o.kind != KR_CBOR_UINT)
            return fail(c, KRAPPY_E_INVALID_ARGUMENT,
                        "field 'offsets' must be an array of unsigned integers "
                        "(item %" PRIu64 " is %s)",
                        n, kind_name(o.kind));
        n++;
    }
    r->u.ack.has_upto = false;
    r->u.ack.offsets = *offsets;
    r->u.ack.n_offsets = n;
    return KRAPPY_OK;
}

static krappy_err dec_get(dctx *c, const fields *f, kr_request *r)
{
    krappy_err e = TOPIC(c, f, &r->u.get.topic);
    if (e != KRAPPY_OK)
        return e;
    bool has;
    e = bytes_field(c, f, F_KEY, true, KRAPPY_MAX_KEY_BYTES, RULE_KEY, &has, &r->u.get.key.content);
    if (e != KRAPPY_OK)
        return e;
    const kr_cbor_item *k = get(f, F_KEY);
    r->u.get.key.present = true;
    r->u.get.key.is_text = k->kind == KR_CBOR_TEXT;
    r->u.get.key.raw.ptr = k->raw;
    r->u.get.key.raw.len = k->raw_len;
    return KRAPPY_OK;
}

static krappy_err dec_scan(dctx *c, const fields *f, kr_request *r)
{
    __typeof__(r->u.scan) *s = &r->u.scan;
    krappy_err e;

    if ((e = TOPIC(c, f, &s->topic)) != KRAPPY_OK)
        return e;
    if ((e = bytes_field(c, f, F_PREFIX, false, KRAPPY_MAX_KEY_BYTES, RULE_KEY, &s->has_prefix,
                         &s->prefix)) != KRAPPY_OK)
        return e;
    if ((e = bytes_field(c, f, F_AFTER, false, KRAPPY_MAX_KEY_BYTES, RULE_KEY, &s->has_after,
                         &s->after)) != KRAPPY_OK)
        return e;
    if ((e = uint_field(c, f, F_LIMIT, false, KRAPPY_DEFAULT_SCAN_LIMIT, 1, &s->limit)) !=
        KRAPPY_OK)
        return e;
    return bytes_field(c, f, F_CURSOR, false, 0,
                       "the byte string 'cursor' of an earlier ENTRIES reply", &s->has_cursor,
                       &s->cursor);
}

static krappy_err dec_fetch(dctx *c, const fields *f, kr_request *r)
{
    krappy_err e = TOPIC(c, f, &r->u.fetch.topic);
    if (e == KRAPPY_OK)
        e = uint_field(c, f, F_OFFSET, true, 0, 0, &r->u.fetch.offset);
    if (e == KRAPPY_OK)
        e = dec_limits(c, f, &r->u.fetch.max, &r->u.fetch.wait_ms, &r->u.fetch.max_bytes);
    return e;
}

static krappy_err dec_hello(dctx *c, const fields *f, kr_request *r)
{
    const kr_cbor_item *v = get(f, F_VERSION);

    if (v == NULL)
        return fail(c, KRAPPY_E_INVALID_ARGUMENT,
                    "field 'version' is required: the protocol version, %d",
                    KRAPPY_PROTOCOL_VERSION);
    if (v->kind != KR_CBOR_UINT)
        return fail(c, KRAPPY_E_INVALID_ARGUMENT,
                    "field 'version' must be an unsigned integer (this server speaks version "
                    "%d), not %s",
                    KRAPPY_PROTOCOL_VERSION, kind_name(v->kind));
    r->u.hello.version = v->u;
    if (v->u != KRAPPY_PROTOCOL_VERSION)
        return fail(c, KRAPPY_E_UNSUPPORTED_VERSION,
                    "protocol version %" PRIu64 " is not supported; this server speaks version %d",
                    v->u, KRAPPY_PROTOCOL_VERSION);
    krappy_err e = text_field(c, f, F_CLIENT, &r->u.hello.has_client, &r->u.hello.client);
    if (e == KRAPPY_OK)
        e = text_field(c, f, F_TOKEN, &r->u.hello.has_token, &r->u.hello.token);
    return e;
}

static krappy_err dec_stats(dctx *c, const fields *f, kr_request *r)
{
    krappy_err e = TOPIC(c, f, &r->u.stats.topic);
    if (e == KRAPPY_OK)
        e = name_field(c, f, F_GROUP, false, false, &r->u.stats.has_group, &r->u.stats.group);
    return e;
}

static krappy_err dec_group_name(dctx *c, const fields *f, kr_str *topic, kr_str *group)
{
    krappy_err e = TOPIC(c, f, topic);
    if (e == KRAPPY_OK)
        e = name_field(c, f, F_GROUP, true, false, NULL, group);
    return e;
}

/*
 * GROUP_SEEK: `to` is "earliest", "latest" or an offset; krappyd also takes
 * `ts` (ms) in its place, for the first offset whose event is that recent.
 */
static krappy_err dec_group_seek(dctx *c, const fields *f, kr_request *r)
{
    static const char *const tos[] = {"earliest", "latest"};
    __typeof__(r->u.group_seek) *g = &r->u.group_seek;
    krappy_err e = dec_group_name(c, f, &g->topic, &g->group);
    if (e != KRAPPY_OK)
        return e;
    const kr_cbor_item *to = get(f, F_TO), *ts = get(f, F_TS);
    if (to != NULL && ts != NULL)
        return fail(c, KRAPPY_E_INVALID_ARGUMENT,
                    "GROUP_SEEK takes either 'to' or 'ts' (a time in ms), not both");
    if (ts != NULL) {
        g->to = KR_SEEK_TIME;
        return uint_field(c, f, F_TS, true, 0, 0, &g->value);
    }
    if (to != NULL && to->kind == KR_CBOR_UINT) {
        g->to = KR_SEEK_OFFSET;
        g->value = to->u;
        return KRAPPY_OK;
    }
    if (to == NULL)
        return fail(c, KRAPPY_E_INVALID_ARGUMENT,
                    "field 'to' is required: \"earliest\", \"latest\" or an offset (an "
                    "unsigned integer)");
    int v;
    e = enum_field(c, f, F_TO, tos, 2, 0,
                   "\"earliest\", \"latest\" or an offset (an unsigned integer)", &v);
    g->to = v == 0 ? KR_SEEK_EARLIEST : KR_SEEK_LATEST;
    return e;
}

/* TOPIC_CONFIG: `set`, when given, is a map of settings (topic_config.h);
 * an empty one reads, like none. */
static krappy_err dec_topic_config(dctx *c, const fields *f, kr_request *r)
{
    __typeof__(r->u.topic_config) *q = &r->u.topic_config;
    krappy_err e = TOPIC(c, f, &q->topic);
    const kr_cbor_item *set = get(f, F_SET);
    if (e != KRAPPY_OK || set == NULL)
        return e;
    if (set->kind != KR_CBOR_MAP)
        return fail(c, KRAPPY_E_INVALID_ARGUMENT,
                    "field 'set' must be a map of topic settings (e.g. {\"cleanup\": "
                    "\"compact\"}), not %s",
                    kind_name(set->kind));
    e = kr_tc_decode(set, true, &q->set, c->msg, c->msg != NULL ? c->msglen : 0);
    q->has_set = e == KRAPPY_OK && (q->set.mask | q->set.reset) != 0;
    return e;
}

/*
 * CLUSTER: no fields, or (krappyd) a membership change: `add` {id, raft} or
 * `remove` id.
 */
static krappy_err dec_cluster(dctx *c, const fields *f, kr_request *r)
{
    __typeof__(r->u.cluster) *q = &r->u.cluster;
    const kr_cbor_item *add = get(f, F_ADD), *rm = get(f, F_REMOVE);
    if (add != NULL && rm != NULL)
        return fail(c, KRAPPY_E_INVALID_ARGUMENT, "CLUSTER takes 'add' or 'remove', not both");
    if (rm != NULL) {
        q->has_remove = true;
        return uint_field(c, f, F_REMOVE, true, 0, 1, &q->id);
    }
    if (add == NULL)
        return KRAPPY_OK;
    kr_cbor_item id, raft;
    if (add->kind != KR_CBOR_MAP || kr_cbor_map_find(add, "id", &id) != 1 ||
        id.kind != KR_CBOR_UINT || id.u == 0 || kr_cbor_map_find(add, "raft", &raft) != 1 ||
        raft.kind != KR_CBOR_TEXT || raft.indefinite || raft.str_len == 0 || raft.str_len > 263)
        return fail(c, KRAPPY_E_INVALID_ARGUMENT,
                    "field 'add' must be a map {id: a node id above 0, raft: the node's raft "
                    "address as HOST:PORT}");
    q->has_add = true;
    q->id = id.u;
    q->raft.ptr = raft.str;
    q->raft.len = raft.str_len;
    return KRAPPY_OK;
}

/*
 * The check order of PROTOCOL.md section 5: well-formed map with text keys
 * (BAD_PAYLOAD), then a request type (UNKNOWN_TYPE), then the fields
 * (INVALID_ARGUMENT; HELLO's version: UNSUPPORTED_VERSION). The cid is read
 * right after the map, so it is echoed on every later error.
 */
krappy_err kr_req_decode(uint32_t type, const uint8_t *payload, size_t len, kr_buf *scratch,
                         kr_request *req, char *msg, size_t msglen)
{
    dctx c = {.len = len, .scratch = scratch, .reserved = false, .msg = msg, .msglen = msglen};
    fields f;

    f.seen = 0;
    f.ev0.ready = false;
    if (msg != NULL && msglen > 0)
        msg[0] = '\0';
    if (scratch != NULL)
        kr_buf_reset(scratch);
    memset(req, 0, sizeof *req);
    req->type = type;

    if (len > 0) {
        krappy_err e = read_payload(&c, payload, len, &f);
        if (e != KRAPPY_OK)
            return e;
    }

    const kr_cbor_item *cid = get(&f, F_CID);
    if (cid != NULL && cid->kind == KR_CBOR_UINT) {
        req->cid.set = true;
        req->cid.v = cid->u;
    }

    if (type < KRAPPY_T_PRODUCER_REGISTER || type > KRAPPY_T_REQUEST_MAX) {
        const char *name = krappy_type_name(type);
        if (name != NULL)
            return fail(&c, KRAPPY_E_UNKNOWN_TYPE,
                        "message type %" PRIu32 " (%s) is a reply, not a request", type, name);
        return fail(&c, KRAPPY_E_UNKNOWN_TYPE,
                    "message type %" PRIu32 " is unknown; requests are types 1 to 17", type);
    }
    if (cid != NULL && cid->kind != KR_CBOR_UINT)
        return fail(&c, KRAPPY_E_INVALID_ARGUMENT, "field 'cid' must be %s, not %s", RULE_UINT,
                    kind_name(cid->kind));

    switch ((krappy_type)type) {
    case KRAPPY_T_PRODUCER_REGISTER:
        return dec_producer_register(&c, &f, req);
    case KRAPPY_T_CONSUMER_REGISTER:
        return dec_consumer_register(&c, &f, req);
    case KRAPPY_T_PUBLISH:
        return dec_publish(&c, &f, req);
    case KRAPPY_T_POLL:
        return dec_limits(&c, &f, &req->u.poll.max, &req->u.poll.wait_ms, &req->u.poll.max_bytes);
    case KRAPPY_T_ACK:
        return dec_ack(&c, &f, req);
    case KRAPPY_T_GET:
        return dec_get(&c, &f, req);
    case KRAPPY_T_SCAN:
        return dec_scan(&c, &f, req);
    case KRAPPY_T_FETCH:
        return dec_fetch(&c, &f, req);
    case KRAPPY_T_HELLO:
        return dec_hello(&c, &f, req);
    case KRAPPY_T_STATS:
        return dec_stats(&c, &f, req);
    case KRAPPY_T_DELETE_TOPIC:
        return TOPIC(&c, &f, &req->u.delete_topic.topic);
    case KRAPPY_T_GROUP_SEEK:
        return dec_group_seek(&c, &f, req);
    case KRAPPY_T_GROUP_DELETE:
        return dec_group_name(&c, &f, &req->u.group_delete.topic, &req->u.group_delete.group);
    case KRAPPY_T_CLUSTER:
        return dec_cluster(&c, &f, req);
    case KRAPPY_T_TOPIC_CONFIG:
        return dec_topic_config(&c, &f, req);
    case KRAPPY_T_PING:
    case KRAPPY_T_TOPICS:
    default:
        return KRAPPY_OK;
    }
}

int kr_req_peek_cid(const uint8_t *payload, size_t len, uint64_t *cid)
{
    kr_cbor_item map, v;

    if (len == 0 || kr_cbor_read_exact(payload, len, &map) < 0 || map.kind != KR_CBOR_MAP)
        return 0;
    if (kr_cbor_map_find(&map, "cid", &v) != 1 || v.kind != KR_CBOR_UINT)
        return 0;
    *cid = v.u;
    return 1;
}

int kr_req_peek_ack_none(const uint8_t *payload, size_t len)
{
    kr_cbor_item map, k, v;
    kr_cbor_iter it;
    int none = 0;

    if (len == 0 || kr_cbor_iter_open(payload, len, &map, &it) < 0 || map.kind != KR_CBOR_MAP)
        return 0;
    while (kr_cbor_iter_next(&it, &k) == 1 && kr_cbor_iter_next(&it, &v) == 1)
        if (k.kind == KR_CBOR_TEXT && kr_cbor_text_eq(&k, "ack"))
            none = v.kind == KR_CBOR_TEXT && kr_cbor_text_eq(&v, "none");
    return none;
}

/* ---- PUBLISH event iteration ---- */

void kr_events_iter_init(kr_events_iter *ei, const kr_request *publish, kr_buf *scratch)
{
    ei->req = publish;
    ei->index = 0;
    ei->scratch = scratch;
    if (publish->u.publish.batch)
        ei->it = publish->u.publish.rest;
    else
        memset(&ei->it, 0, sizeof ei->it);
}

/*
 * The next event. The first was decoded by kr_req_decode; the others were
 * validated there, and an indefinite key is joined into scratch by
 * appending (the room was reserved by kr_req_decode, so earlier pointers
 * stay valid).
 */
int kr_events_iter_next(kr_events_iter *ei, kr_event_in *ev)
{
    const kr_request *r = ei->req;

    if (ei->index == 0) {
        *ev = r->u.publish.first;
        ei->index = 1;
        return 1;
    }
    if (!r->u.publish.batch)
        return 0;

    dctx c = {.len = r->u.publish.events.raw_len,
              .scratch = ei->scratch,
              .reserved = true, /* reserved by kr_req_decode; appends do not move it */
              .msg = NULL,
              .msglen = 0};
    krappy_err e;
    int got = event_next(&c, ei->index, &ei->it, true, ev, &e);
    if (got == 1)
        ei->index++;
    return got;
}
