/*
 * proto/cbor.c - allocation-free CBOR reading and shortest-form writing.
 *
 * Reading: every head is decoded by libcbor's streaming decoder
 * (cbor_stream_decode) with callbacks that only record what they saw in a
 * small struct on the stack. An item's extent is then found by an iterative
 * walk: one counter of "definite slots still to read" plus a small stack that
 * holds only indefinite-length containers and strings. A definite container
 * adds its count to the counter (after checking that the bytes left could
 * possibly hold that many items, each at least one byte), so definite nesting
 * of any depth costs no memory and no recursion, and a count of 2^60 in a
 * ten-byte buffer is rejected at once instead of being looped over.
 *
 * libcbor 0.8 refuses a few well-formed heads: one-byte tags 6..20
 * (0xc6..0xd4) and the simple values 0..19 (0xe0..0xf3) and 0xf8 xx. RFC 8949
 * calls them well-formed (only 0xf8 with xx < 32 is not), and the protocol
 * accepts any well-formed CBOR, so those bytes are decoded here by hand when
 * libcbor reports an error.
 *
 * Writing: kr_cbor_head writes the shortest head by hand (a call into
 * libcbor per head cost more than the head), into a small array on the
 * stack appended to the kr_buf, or straight into memory an encoder
 * reserved.
 */
#include "proto/cbor.h"

#include <cbor.h>
#include <string.h>

#include "util/byteorder.h"

/* Pseudo-kind for the break stop code, never exposed in a kr_cbor_item. */
#define H_BREAK 0x100

/* The longest head: initial byte plus an 8-byte argument. */
#define HEAD_MAX 9

/* The break stop code ending an indefinite-length item. */
#define CBOR_BREAK 0xff

/* What one cbor_stream_decode call saw. */
typedef struct head {
    int kind;           /* kr_cbor_kind or H_BREAK */
    bool indef;         /* indefinite string, array or map */
    uint64_t u;         /* int/tag/simple value, definite container count */
    double f;           /* float value */
    const uint8_t *str; /* definite string content */
    size_t str_len;
} head;

/* ---- libcbor callbacks: record and return ---- */

#define H(ctx) ((head *)(ctx))

static void cb_u8(void *c, uint8_t v)
{
    H(c)->kind = KR_CBOR_UINT, H(c)->u = v;
}
static void cb_u16(void *c, uint16_t v)
{
    H(c)->kind = KR_CBOR_UINT, H(c)->u = v;
}
static void cb_u32(void *c, uint32_t v)
{
    H(c)->kind = KR_CBOR_UINT, H(c)->u = v;
}
static void cb_u64(void *c, uint64_t v)
{
    H(c)->kind = KR_CBOR_UINT, H(c)->u = v;
}
static void cb_n8(void *c, uint8_t v)
{
    H(c)->kind = KR_CBOR_NEGINT, H(c)->u = v;
}
static void cb_n16(void *c, uint16_t v)
{
    H(c)->kind = KR_CBOR_NEGINT, H(c)->u = v;
}
static void cb_n32(void *c, uint32_t v)
{
    H(c)->kind = KR_CBOR_NEGINT, H(c)->u = v;
}
static void cb_n64(void *c, uint64_t v)
{
    H(c)->kind = KR_CBOR_NEGINT, H(c)->u = v;
}

static void cb_bytes(void *c, cbor_data p, size_t n)
{
    H(c)->kind = KR_CBOR_BYTES, H(c)->str = p, H(c)->str_len = n;
}
static void cb_text(void *c, cbor_data p, size_t n)
{
    H(c)->kind = KR_CBOR_TEXT, H(c)->str = p, H(c)->str_len = n;
}
static void cb_bytes_indef(void *c)
{
    H(c)->kind = KR_CBOR_BYTES, H(c)->indef = true;
}
static void cb_text_indef(void *c)
{
    H(c)->kind = KR_CBOR_TEXT, H(c)->indef = true;
}
static void cb_array(void *c, size_t n)
{
    H(c)->kind = KR_CBOR_ARRAY, H(c)->u = n;
}
static void cb_array_indef(void *c)
{
    H(c)->kind = KR_CBOR_ARRAY, H(c)->indef = true;
}
static void cb_map(void *c, size_t n)
{
    H(c)->kind = KR_CBOR_MAP, H(c)->u = n;
}
static void cb_map_indef(void *c)
{
    H(c)->kind = KR_CBOR_MAP, H(c)->indef = true;
}
static void cb_tag(void *c, uint64_t v)
{
    H(c)->kind = KR_CBOR_TAG, H(c)->u = v;
}
static void cb_f4(void *c, float v)
{
    H(c)->kind = KR_CBOR_FLOAT, H(c)->f = v;
}
static void cb_f8(void *c, double v)
{
    H(c)->kind = KR_CBOR_FLOAT, H(c)->f = v;
}
static void cb_undef(void *c)
{
    H(c)->kind = KR_CBOR_UNDEF;
}
static void cb_null(void *c)
{
    H(c)->kind = KR_CBOR_NULL;
}
static void cb_bool(void *c, bool v)
{
    H(c)->kind = v ? KR_CBOR_TRUE : KR_CBOR_FALSE;
}
static void cb_break(void *c)
{
    H(c)->kind = H_BREAK;
}

#undef H

/* Note libcbor's field names: `byte_string`/`string` are the definite
 * strings, `*_start` the indefinite ones; `array_start`/`map_start` the
 * definite containers, `indef_*_start` the indefinite ones. */
static const struct cbor_callbacks head_callbacks = {
    .uint8 = cb_u8,
    .uint16 = cb_u16,
    .uint32 = cb_u32,
    .uint64 = cb_u64,
    .negint8 = cb_n8,
    .negint16 = cb_n16,
    .negint32 = cb_n32,
    .negint64 = cb_n64,
    .byte_string = cb_bytes,
    .byte_string_start = cb_bytes_indef,
    .string = cb_text,
    .string_start = cb_text_indef,
    .array_start = cb_array,
    .indef_array_start = cb_array_indef,
    .map_start = cb_map,
    .indef_map_start = cb_map_indef,
    .tag = cb_tag,
    .float2 = cb_f4,
    .float4 = cb_f4,
    .float8 = cb_f8,
    .undefined = cb_undef,
    .null = cb_null,
    .boolean = cb_bool,
    .indef_break = cb_break,
};

/*
 * The well-formed heads libcbor 0.8 refuses (see the top of the file).
 * @return bytes of the head, or 0 when the bytes really are malformed.
 */
static size_t read_head_by_hand(const uint8_t *p, size_t n, head *h)
{
    uint8_t b = p[0];

    if (b >= 0xc6 && b <= 0xd4) {
        h->kind = KR_CBOR_TAG;
        h->u = (uint64_t)(b - 0xc0);
        return 1;
    }
    if (b >= 0xe0 && b <= 0xf3) {
        h->kind = KR_CBOR_SIMPLE;
        h->u = (uint64_t)(b - 0xe0);
        return 1;
    }
    if (b == 0xf8 && n >= 2 && p[1] >= 32) {
        h->kind = KR_CBOR_SIMPLE;
        h->u = p[1];
        return 2;
    }
    return 0;
}

/*
 * Decode the head at p (for a definite string: head and content).
 * @return the bytes it takes, or 0 when malformed or truncated.
 * Always inlined, as read_item: left to itself the compiler kept one or the
 * other out of line, a call per item on every request's path.
 */
static inline __attribute__((always_inline)) size_t read_head(const uint8_t *p, size_t n, head *h)
{
    h->indef = false;
    if (n > 0 && p[0] < 0xe0) {
        /* Major types 0..6, the bulk of every message, decoded here: a
         * head is an initial byte and a 0, 1, 2, 4 or 8-byte big-endian
         * argument (RFC 8949 section 3). This is what libcbor would report,
         * without a callback per head; it measured several times faster on
         * FETCH replies. */
        static const int8_t kinds[7] = {KR_CBOR_UINT,  KR_CBOR_NEGINT, KR_CBOR_BYTES, KR_CBOR_TEXT,
                                        KR_CBOR_ARRAY, KR_CBOR_MAP,    KR_CBOR_TAG};
        unsigned major = p[0] >> 5, info = p[0] & 0x1f;
        size_t hl = 1;
        uint64_t arg = info;
        h->kind = kinds[major];
        if (info >= 24 && info <= 27) {
            size_t w = (size_t)1 << (info - 24);
            if (n < 1 + w)
                return 0;
            /* one load each (a byte swap), not a loop over the bytes */
            switch (info) {
            case 24:
                arg = p[1];
                break;
            case 25:
                arg = kr_get_be16(p + 1);
                break;
            case 26:
                arg = kr_get_be32(p + 1);
                break;
            default:
                arg = kr_get_be64(p + 1);
                break;
            }
            hl += w;
        } else if (info == 31) {
            /* Indefinite strings, arrays and maps; malformed elsewhere. */
            if (major < 2 || major > 5)
                return 0;
            h->indef = true;
            return 1;
        } else if (info > 27) {
            return 0; /* reserved */
        }
        if (major == 2 || major == 3) {
            if (arg > n - hl)
                return 0;
            h->str = p + hl;
            h->str_len = (size_t)arg;
            return hl + (size_t)arg;
        }
        h->u = arg;
        return hl;
    }
    struct cbor_decoder_result r = cbor_stream_decode(p, n, &head_callbacks, h);
    if (r.status == CBOR_DECODER_FINISHED)
        return r.read;
    if (r.status == CBOR_DECODER_ERROR && n > 0)
        return read_head_by_hand(p, n, h);
    return 0;
}

/* One open indefinite-length item during a walk. */
typedef struct indef_frame {
    uint64_t saved; /* definite slots pending outside this item */
    int kind;       /* ARRAY, MAP, BYTES or TEXT */
    bool odd;       /* MAP: an odd number of children so far */
} indef_frame;

/*
 * Find where the item whose first head (h, n bytes) starts at buf ends.
 * `pending` counts slots still to fill in the current run of definite
 * containers; it is kept no larger than the bytes left, which both rejects
 * absurd counts early and keeps the counter from overflowing. Indefinite
 * items push a frame that remembers the outer count; a break pops it.
 * @return 0 with *raw_len (and, for an indefinite string, *str_len) set;
 *         -1 when malformed.
 */
static int walk(const uint8_t *buf, size_t len, head h, size_t n, size_t *raw_len, size_t *str_len)
{
    indef_frame stack[KR_CBOR_MAX_NEST];
    int depth = 0;
    const uint8_t *p = buf;
    const uint8_t *end = buf + len;
    uint64_t pending = 1;
    bool top_is_string = h.indef && (h.kind == KR_CBOR_BYTES || h.kind == KR_CBOR_TEXT);
    size_t chunks = 0;

    goto process; /* the first head is already decoded */

    for (;;) {
        if (pending == 0) {
            if (depth == 0)
                break;
            /* Directly inside an indefinite item: a child or its break. */
            indef_frame *top = &stack[depth - 1];
            n = read_head(p, (size_t)(end - p), &h);
            if (n == 0)
                return -1;
            if (h.kind == H_BREAK) {
                if (top->kind == KR_CBOR_MAP && top->odd)
                    return -1;
                p += n;
                pending = top->saved;
                depth--;
                continue;
            }
            if (top->kind == KR_CBOR_BYTES || top->kind == KR_CBOR_TEXT) {
                /* Chunks: definite strings of the same major type. */
                if (h.kind != top->kind || h.indef)
                    return -1;
                if (top_is_string && depth == 1)
                    chunks += h.str_len;
                p += n;
                continue;
            }
            top->odd = !top->odd;
            pending = 1;
        } else {
            n = read_head(p, (size_t)(end - p), &h);
            if (n == 0 || h.kind == H_BREAK)
                return -1;
        }

    process:
        p += n;
        pending--;
        if (h.indef) {
            if (depth == KR_CBOR_MAX_NEST)
                return -1;
            stack[depth].saved = pending;
            stack[depth].kind = h.kind;
            stack[depth].odd = false;
            depth++;
            pending = 0;
            continue;
        }
        uint64_t need;
        size_t left = (size_t)(end - p);
        switch (h.kind) {
        case KR_CBOR_TAG:
            need = 1;
            break;
        case KR_CBOR_ARRAY:
            need = h.u;
            break;
        case KR_CBOR_MAP:
            if (h.u > left / 2)
                return -1;
            need = 2 * h.u;
            break;
        default:
            continue;
        }
        if (pending > left || need > left - pending)
            return -1;
        pending += need;
    }
    *raw_len = (size_t)(p - buf);
    *str_len = chunks;
    return 0;
}

/*
 * Read one item: decode its head, fill the view, and for containers, tags
 * and indefinite strings walk to its end. Scalars and definite strings, the
 * bulk of any message, need just the one head.
 */
static inline __attribute__((always_inline)) int read_item(const uint8_t *buf, size_t len,
                                                           kr_cbor_item *item)
{
    head h;
    size_t n = read_head(buf, len, &h);
    if (n == 0 || h.kind == H_BREAK)
        return -1;

    item->kind = (kr_cbor_kind)h.kind;
    item->raw = buf;
    item->indefinite = h.indef;
    item->u = 0;
    item->f = 0;
    item->str = NULL;
    item->str_len = 0;
    item->head_len = n;
    item->raw_len = n;

    switch (h.kind) {
    case KR_CBOR_UINT:
    case KR_CBOR_NEGINT:
    case KR_CBOR_SIMPLE:
        item->u = h.u;
        return 0;
    case KR_CBOR_FLOAT:
        item->f = h.f;
        return 0;
    case KR_CBOR_BYTES:
    case KR_CBOR_TEXT:
        if (h.indef)
            break;
        item->str = h.str;
        item->str_len = h.str_len;
        item->head_len = n - h.str_len;
        return 0;
    case KR_CBOR_ARRAY:
    case KR_CBOR_MAP:
        if (h.indef)
            break;
        item->u = h.u;
        if (h.u == 0)
            return 0;
        break;
    case KR_CBOR_TAG:
        item->u = h.u;
        break;
    default: /* FALSE, TRUE, NULL, UNDEF */
        return 0;
    }
    return walk(buf, len, h, n, &item->raw_len, &item->str_len);
}

int kr_cbor_read(const uint8_t *buf, size_t len, kr_cbor_item *item)
{
    return read_item(buf, len, item);
}

int kr_cbor_read_exact(const uint8_t *buf, size_t len, kr_cbor_item *item)
{
    if (kr_cbor_read(buf, len, item) < 0)
        return -1;
    return item->raw_len == len ? 0 : -1;
}

void kr_cbor_iter_init(kr_cbor_iter *it, const kr_cbor_item *c)
{
    it->p = c->raw + c->head_len;
    it->end = c->raw + c->raw_len;
    it->indefinite = c->indefinite;
    switch (c->kind) {
    case KR_CBOR_ARRAY:
        it->left = c->u;
        break;
    case KR_CBOR_MAP:
        it->left = 2 * c->u;
        break;
    case KR_CBOR_TAG:
        it->left = 1;
        break;
    default:
        /* A definite string has no children; an indefinite one has chunks
         * up to its break. Scalars have none. */
        it->left = 0;
        if (!c->indefinite)
            it->p = it->end;
        break;
    }
}

/*
 * Decode just the head of a container and set up an iterator whose end is
 * the end of the buffer: each child is bounded by the bytes present, and
 * the container's own end is wherever its last child (or break) is.
 */
int kr_cbor_iter_open(const uint8_t *buf, size_t len, kr_cbor_item *c, kr_cbor_iter *it)
{
    head h;
    size_t n = read_head(buf, len, &h);
    if (n == 0)
        return -1;
    if (h.kind != KR_CBOR_ARRAY && h.kind != KR_CBOR_MAP && h.kind != KR_CBOR_TAG)
        return -1;
    memset(c, 0, sizeof *c);
    c->kind = (kr_cbor_kind)h.kind;
    c->raw = buf;
    c->head_len = n;
    c->indefinite = h.indef;
    c->u = h.indef ? 0 : h.u;
    it->p = buf + n;
    it->end = buf + len;
    it->indefinite = h.indef;
    it->left = 0;
    if (!h.indef) {
        /* Each child takes a byte at least: refuse impossible counts now. */
        size_t left = len - n;
        if (h.kind == KR_CBOR_MAP) {
            if (h.u > left / 2)
                return -1;
            it->left = 2 * h.u;
        } else if (h.kind == KR_CBOR_TAG) {
            it->left = 1;
        } else {
            if (h.u > left)
                return -1;
            it->left = h.u;
        }
    }
    return 0;
}

const uint8_t *kr_cbor_iter_end(const kr_cbor_iter *it)
{
    return it->indefinite ? it->p + 1 : it->p;
}

int kr_cbor_iter_next(kr_cbor_iter *it, kr_cbor_item *out)
{
    if (it->indefinite) {
        if (it->p >= it->end)
            return -1;
        if (*it->p == CBOR_BREAK)
            return 0;
    } else if (it->left == 0) {
        return 0;
    }
    /* Inlined here: children are most of what is read. */
    if (read_item(it->p, (size_t)(it->end - it->p), out) < 0)
        return -1;
    it->p += out->raw_len;
    if (!it->indefinite)
        it->left--;
    return 1;
}

size_t kr_cbor_str_copy(const kr_cbor_item *s, uint8_t *dst, size_t cap)
{
    if (s->kind != KR_CBOR_BYTES && s->kind != KR_CBOR_TEXT)
        return 0;
    if (!s->indefinite) {
        size_t n = s->str_len < cap ? s->str_len : cap;
        if (n > 0)
            memcpy(dst, s->str, n);
        return s->str_len;
    }
    kr_cbor_iter it;
    kr_cbor_item chunk;
    size_t at = 0;
    kr_cbor_iter_init(&it, s);
    while (kr_cbor_iter_next(&it, &chunk) == 1) {
        if (at < cap) {
            size_t n = chunk.str_len < cap - at ? chunk.str_len : cap - at;
            if (n > 0)
                memcpy(dst + at, chunk.str, n);
        }
        at += chunk.str_len;
    }
    return at;
}

int kr_cbor_text_eq(const kr_cbor_item *s, const char *lit)
{
    if (s->kind != KR_CBOR_TEXT)
        return 0;
    size_t n = strlen(lit);
    if (s->str_len != n)
        return 0;
    if (!s->indefinite)
        return n == 0 || memcmp(s->str, lit, n) == 0;

    kr_cbor_iter it;
    kr_cbor_item chunk;
    size_t at = 0;
    kr_cbor_iter_init(&it, s);
    while (kr_cbor_iter_next(&it, &chunk) == 1) {
        if (chunk.str_len > 0 && memcmp(chunk.str, lit + at, chunk.str_len) != 0)
            return 0;
        at += chunk.str_len;
    }
    return 1;
}

/* Scan every pair: the last occurrence of the key wins, and a non-text key
 * anywhere makes the map unacceptable to the protocol. */
int kr_cbor_map_find(const kr_cbor_item *map, const char *key, kr_cbor_item *value)
{
    kr_cbor_iter it;
    kr_cbor_item k, v;
    int found = 0;

    if (map->kind != KR_CBOR_MAP)
        return -1;
    kr_cbor_iter_init(&it, map);
    for (;;) {
        int r = kr_cbor_iter_next(&it, &k);
        if (r == 0)
            break;
        if (r < 0 || k.kind != KR_CBOR_TEXT)
            return -1;
        if (kr_cbor_iter_next(&it, &v) != 1)
            return -1;
        if (kr_cbor_text_eq(&k, key)) {
            *value = v;
            found = 1;
        }
    }
    return found;
}

/* ---- writers ---- */

/* Append the head of `major` with argument v. */
static inline void put_head(kr_buf *b, unsigned major, uint64_t v)
{
    uint8_t h[HEAD_MAX];
    kr_buf_append(b, h, kr_cbor_head(h, major, v));
}

void kr_cbor_put_uint(kr_buf *b, uint64_t v)
{
    put_head(b, KR_CBOR_MAJOR_UINT, v);
}

void kr_cbor_put_negint(kr_buf *b, uint64_t v)
{
    put_head(b, KR_CBOR_MAJOR_NEGINT, v);
}

void kr_cbor_put_array(kr_buf *b, size_t n)
{
    put_head(b, KR_CBOR_MAJOR_ARRAY, n);
}

void kr_cbor_put_map(kr_buf *b, size_t n)
{
    put_head(b, KR_CBOR_MAJOR_MAP, n);
}

void kr_cbor_put_bytes(kr_buf *b, const void *p, size_t n)
{
    put_head(b, KR_CBOR_MAJOR_BYTES, n);
    kr_buf_append(b, p, n);
}

void kr_cbor_put_text(kr_buf *b, const char *s, size_t n)
{
    put_head(b, KR_CBOR_MAJOR_TEXT, n);
    kr_buf_append(b, s, n);
}

void kr_cbor_put_cstr(kr_buf *b, const char *s)
{
    kr_cbor_put_text(b, s, strlen(s));
}

void kr_cbor_put_bool(kr_buf *b, bool v)
{
    uint8_t h = v ? 0xf5 : 0xf4;
    kr_buf_append(b, &h, 1);
}

void kr_cbor_put_null(kr_buf *b)
{
    static const uint8_t h = 0xf6;
    kr_buf_append(b, &h, 1);
}

void kr_cbor_put_raw(kr_buf *b, const void *item, size_t n)
{
    kr_buf_append(b, item, n);
}
