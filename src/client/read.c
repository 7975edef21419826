/*
 * client/read.c - libkrappy's reading side: FETCH, GET, SCAN, TOPICS and
 * STATS, and the result objects they return.
 *
 * A reply's payload lives in the client's input buffer only until the next
 * call, so each result is decoded into one allocation the caller frees with
 * one call: the public struct first, then its array, then what the array
 * points into (a copy of the payload, or the strings). Requests are sent
 * with kr_client_request (call.c).
 */
#include "krappy/client.h"

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "client/client_internal.h"
#include "util/buf.h"
#include "proto/cbor.h"
#include "proto/msg.h"

/* ======================================================================
 * Reading: results live in one allocation each
 * ====================================================================== */

/* A record of EVENTS ([offset, ts, key, value(, headers)]) or of ENTRIES
 * ([key, offset, ts, value]), as views into a payload. */
typedef struct rec_view {
    uint64_t offset, ts;
    kr_cbor_item key, value;
    bool has_headers;
    kr_cbor_item headers;
} rec_view;

typedef int (*rec_reader)(const kr_cbor_item *item, rec_view *v);

static int read_event_rec(const kr_cbor_item *item, rec_view *v)
{
    kr_event_view ev;
    if (kr_event_view_read(item, &ev) < 0)
        return -1;
    v->offset = ev.offset;
    v->ts = ev.ts;
    v->key = ev.key;
    v->value = ev.value;
    v->has_headers = ev.has_headers;
    v->headers = ev.headers;
    return 0;
}

static int read_entry_rec(const kr_cbor_item *item, rec_view *v)
{
    kr_cbor_iter it;
    kr_cbor_item part[4];
    int n = 0;

    if (item->kind != KR_CBOR_ARRAY)
        return -1;
    kr_cbor_iter_init(&it, item);
    for (;;) {
        kr_cbor_item x;
        int r = kr_cbor_iter_next(&it, &x);
        if (r == 0)
            break;
        if (r < 0 || n == 4)
            return -1;
        part[n++] = x;
    }
    if (n != 4 || (part[0].kind != KR_CBOR_BYTES && part[0].kind != KR_CBOR_TEXT) ||
        part[1].kind != KR_CBOR_UINT || part[2].kind != KR_CBOR_UINT)
        return -1;
    v->key = part[0];
    v->offset = part[1].u;
    v->ts = part[2].u;
    v->value = part[3];
    v->has_headers = false;
    return 0;
}

/* Bytes needed to join an indefinite-length key (0 for a definite one). */
static size_t join_need(const kr_cbor_item *s)
{
    return (s->kind == KR_CBOR_BYTES || s->kind == KR_CBOR_TEXT) && s->indefinite ? s->str_len : 0;
}

/* Point at a string's content, joining an indefinite one at *join. */
static const uint8_t *str_content(const kr_cbor_item *s, uint8_t **join)
{
    if (!s->indefinite)
        return s->str != NULL ? s->str : s->raw + s->raw_len;
    const uint8_t *p = *join;
    kr_cbor_str_copy(s, *join, s->str_len);
    *join += s->str_len;
    return p;
}

static void fill_event(krappy_event *e, const rec_view *v, uint8_t **join)
{
    memset(e, 0, sizeof *e);
    e->offset = v->offset;
    e->ts = v->ts;
    if (v->key.kind != KR_CBOR_NULL) {
        e->has_key = 1;
        e->key_is_text = v->key.kind == KR_CBOR_TEXT;
        e->key = str_content(&v->key, join);
        e->key_len = v->key.str_len;
    }
    e->value = v->value.raw;
    e->value_len = v->value.raw_len;
    e->is_tombstone = v->value.kind == KR_CBOR_NULL;
    if (v->has_headers) {
        e->has_headers = 1;
        e->headers = v->headers.raw;
        e->headers_len = v->headers.raw_len;
    }
}

/* Round up to a multiple of 8 (keeps what follows aligned for pointers). */
#define ALIGN8(n) (((n) + 7) & ~(size_t)7)

/*
 * Hold reply f in one allocation: [head bytes (zeroed)][copy of the
 * payload][tail bytes]. The reply map is decoded again from the copy into
 * *r, so what the caller reads from it points into the allocation too.
 * @return the allocation (the caller's to free), NULL when out of memory.
 */
static uint8_t *hold_reply(const krappy_frame *f, size_t head, size_t tail, kr_reply *r)
{
    size_t total = head + f->len + tail;
    uint8_t *mem = malloc(total > 0 ? total : 1);
    if (mem == NULL)
        return NULL;
    memset(mem, 0, head);
    if (f->len > 0)
        memcpy(mem + head, f->payload, f->len);
    /* The copy decodes as the original did. */
    kr_reply_decode(f->type, mem + head, f->len, r);
    return mem;
}

/* The checks every read starts with (the caller has set *out to NULL): a
 * client, whose last error is then cleared, and somewhere to put the result
 * (has_out). */
static krappy_err read_begin(krappy_client *c, const char *fn, bool has_out)
{
    if (c == NULL)
        return KRAPPY_E_USAGE;
    kr_client_clear_error(c);
    if (!has_out)
        return kr_client_fail(c, KRAPPY_E_USAGE, "%s: out is NULL", fn);
    return KRAPPY_OK;
}

/* decode_one_pass's "use the general path" (never returned to users). */
#define KRAPPY_E_AGAIN_SLOW ((krappy_err)-1000)

/* A pointer into the payload p[0 .. len] moved to the same place in its
 * copy; NULL stays NULL. */
static const uint8_t *rebase(const uint8_t *x, const uint8_t *p, size_t len, const uint8_t *copy)
{
    return x != NULL && x >= p && x <= p + len ? copy + (x - p) : x;
}

/*
 * decode_records for a definite array (what krappyd sends): the records are
 * read once, from the received payload, into events pointing at it; the
 * payload is then copied and the pointers moved onto the copy. Reading them
 * again from the copy doubled the cost of a FETCH. An indefinite-length key
 * (which needs joining) returns KRAPPY_E_AGAIN_SLOW for the general path.
 */
static krappy_err decode_one_pass(krappy_client *c, const krappy_frame *f, const char *request,
                                  const char *field, rec_reader read, const kr_reply *r0,
                                  const kr_cbor_item *arr, size_t head, void **block,
                                  krappy_event **events, size_t *count, kr_reply *r)
{
    kr_cbor_iter it;
    kr_cbor_item item;
    rec_view v;
    char what[64];

    /* Each record takes one byte at least, so the count is bounded by the
     * payload already (kr_cbor_read checked it). */
    size_t n = (size_t)arr->u;
    head = ALIGN8(head);
    size_t events_len = n * sizeof(krappy_event);
    uint8_t *mem = malloc(head + events_len + f->len + 1);
    if (mem == NULL)
        return kr_client_fail(c, KRAPPY_E_NOMEM, "out of memory holding a %s reply of %zu bytes",
                              request, f->len);
    memset(mem, 0, head);
    krappy_event *ev = (krappy_event *)(void *)(mem + head);
    size_t i = 0;
    kr_cbor_iter_init(&it, arr);
    for (; i < n && kr_cbor_iter_next(&it, &item) == 1; i++) {
        if (read(&item, &v) < 0) {
            free(mem);
            snprintf(what, sizeof what, "%s[%zu] is malformed", field, i);
            return kr_client_bad_reply(c, request, what);
        }
        if (join_need(&v.key) > 0) {
            free(mem);
            return KRAPPY_E_AGAIN_SLOW;
        }
        fill_event(&ev[i], &v, NULL);
    }
    if (i != n) {
        free(mem);
        snprintf(what, sizeof what, "%s is malformed", field);
        return kr_client_bad_reply(c, request, what);
    }
    uint8_t *copy = mem + head + events_len;
    if (f->len > 0)
        memcpy(copy, f->payload, f->len);
    for (i = 0; i < n; i++) {
        ev[i].key = rebase(ev[i].key, f->payload, f->len, copy);
        ev[i].value = rebase(ev[i].value, f->payload, f->len, copy);
        ev[i].headers = rebase(ev[i].headers, f->payload, f->len, copy);
    }
    *r = *r0;
    r->map.raw = rebase(r->map.raw, f->payload, f->len, copy);
    r->map.str = rebase(r->map.str, f->payload, f->len, copy);
    *block = mem;
    *events = n > 0 ? ev : NULL;
    *count = n;
    return KRAPPY_OK;
}

/*
 * Decode the array `field` of records in a reply into one allocation:
 * [head bytes (zeroed)][krappy_event x n][copy of the payload][joined keys].
 * The reply map is decoded again from the copy into *r, so what the caller
 * reads from it points into the allocation too.
 */
static krappy_err decode_records(krappy_client *c, const krappy_frame *f, const char *request,
                                 const char *field, rec_reader read, size_t head, void **block,
                                 krappy_event **events, size_t *count, kr_reply *r)
{
    kr_reply r0;
    kr_cbor_item arr, item;
    kr_cbor_iter it;
    rec_view v;
    size_t n = 0, join = 0;
    char what[64];

    if (kr_reply_decode(f->type, f->payload, f->len, &r0) < 0)
        return kr_client_bad_reply(c, request, "not a CBOR map with text keys");
    if (kr_cbor_map_find(&r0.map, field, &arr) != 1 || arr.kind != KR_CBOR_ARRAY) {
        snprintf(what, sizeof what, "no array `%s`", field);
        return kr_client_bad_reply(c, request, what);
    }
    if (!arr.indefinite) {
        krappy_err e =
            decode_one_pass(c, f, request, field, read, &r0, &arr, head, block, events, count, r);
        if (e != KRAPPY_E_AGAIN_SLOW)
            return e;
    }
    kr_cbor_iter_init(&it, &arr);
    while (kr_cbor_iter_next(&it, &item) == 1) {
        if (read(&item, &v) < 0) {
            snprintf(what, sizeof what, "%s[%zu] is malformed", field, n);
            return kr_client_bad_reply(c, request, what);
        }
        join += join_need(&v.key);
        n++;
    }

    head = ALIGN8(head);
    if (n > (SIZE_MAX - head - f->len - join) / sizeof(krappy_event))
        return kr_client_fail(c, KRAPPY_E_NOMEM, "a %s reply too large to hold", request);
    size_t events_len = n * sizeof(krappy_event);
    uint8_t *mem = hold_reply(f, head + events_len, join, r);
    if (mem == NULL)
        return kr_client_fail(c, KRAPPY_E_NOMEM, "out of memory holding a %s reply of %zu bytes",
                              request, f->len);
    krappy_event *ev = (krappy_event *)(void *)(mem + head);
    uint8_t *jp = mem + head + events_len + f->len;

    kr_cbor_map_find(&r->map, field, &arr);
    kr_cbor_iter_init(&it, &arr);
    for (size_t i = 0; i < n && kr_cbor_iter_next(&it, &item) == 1; i++) {
        read(&item, &v);
        fill_event(&ev[i], &v, &jp);
    }
    *block = mem;
    *events = n > 0 ? ev : NULL;
    *count = n;
    return KRAPPY_OK;
}

/* EVENTS {events, next} of FETCH or POLL (request), as a krappy_events. */
krappy_err kr_read_events(krappy_client *c, const krappy_frame *f, const char *request,
                          krappy_events **out)
{
    kr_reply r;
    krappy_err e;
    void *mem;
    krappy_event *ev;
    size_t n;

    if ((e = decode_records(c, f, request, "events", read_event_rec, sizeof(krappy_events), &mem,
                            &ev, &n, &r)) != KRAPPY_OK)
        return e;
    krappy_events *res = mem;
    if (!kr_reply_uint(&r, "next", &res->next)) {
        free(mem);
        return kr_client_bad_reply(c, request, "no uint `next`");
    }
    res->count = n;
    res->events = ev;
    *out = res;
    return KRAPPY_OK;
}

krappy_err krappy_fetch(krappy_client *c, const char *topic, uint64_t offset, uint64_t max,
                        uint64_t max_bytes, uint64_t wait_ms, krappy_events **out)
{
    krappy_frame f;
    kr_reply r;
    krappy_err e;

    if (out != NULL)
        *out = NULL;
    if ((e = read_begin(c, "krappy_fetch", out != NULL)) != KRAPPY_OK ||
        (e = kr_client_need_name(c, "krappy_fetch", "topic", topic)) != KRAPPY_OK)
        return e;
    kr_enc_fetch(kr_client_enc_begin(c), (kr_cid){false, 0}, topic, offset,
                 max != 0 ? max : KRAPPY_DEFAULT_MAX, wait_ms,
                 max_bytes != 0 ? max_bytes : KRAPPY_DEFAULT_MAX_BYTES);
    if ((e = kr_client_request(c, KRAPPY_T_FETCH, KRAPPY_T_EVENTS, wait_ms, &f, &r)) != KRAPPY_OK)
        return e;
    return kr_read_events(c, &f, "FETCH", out);
}

void krappy_events_free(krappy_events *ev)
{
    free(ev);
}

/* Read GET's VALUE {key, offset, ts, value(, headers)} from r into *v; a
 * malformed one closes the connection. One pass over the map (a key that
 * repeats counts by its last occurrence, as kr_cbor_map_find has it). */
static krappy_err read_value(krappy_client *c, const kr_reply *r, rec_view *v)
{
    kr_cbor_iter it;
    kr_cbor_item k, x, off = {0}, ts = {0}, hd = {0};
    bool have_key = false, have_value = false;
    int rc;

    memset(v, 0, sizeof *v);
    kr_cbor_iter_init(&it, &r->map);
    while ((rc = kr_cbor_iter_next(&it, &k)) == 1 && kr_cbor_iter_next(&it, &x) == 1) {
        if (k.kind != KR_CBOR_TEXT)
            continue;
        if (kr_cbor_text_eq(&k, "key"))
            v->key = x, have_key = true;
        else if (kr_cbor_text_eq(&k, "offset"))
            off = x;
        else if (kr_cbor_text_eq(&k, "ts"))
            ts = x;
        else if (kr_cbor_text_eq(&k, "value"))
            v->value = x, have_value = true;
        else if (kr_cbor_text_eq(&k, "headers"))
            hd = x;
    }
    if (rc < 0 || !have_key || (v->key.kind != KR_CBOR_BYTES && v->key.kind != KR_CBOR_TEXT) ||
        off.kind != KR_CBOR_UINT || off.raw == NULL || ts.kind != KR_CBOR_UINT || ts.raw == NULL ||
        !have_value)
        return kr_client_bad_reply(c, "GET", "VALUE needs key, offset, ts and value");
    v->offset = off.u;
    v->ts = ts.u;
    if (hd.raw != NULL && hd.kind != KR_CBOR_NULL) {
        if (hd.kind != KR_CBOR_MAP)
            return kr_client_bad_reply(c, "GET", "`headers` is not a map");
        v->has_headers = true;
        v->headers = hd;
    }
    return KRAPPY_OK;
}

/* A GET's VALUE reply (f, decoded into r) into one allocation: *out. */
static krappy_err hold_value(krappy_client *c, const krappy_frame *f, kr_reply *r,
                             krappy_value **out)
{
    rec_view v;
    krappy_err e;

    /* Read the fields from the payload once; the event points into the copy
     * (an indefinite key is joined after it). */
    if ((e = read_value(c, r, &v)) != KRAPPY_OK)
        return e;
    size_t head = ALIGN8(sizeof(krappy_value));
    uint8_t *mem = malloc(head + f->len + join_need(&v.key) + 1);
    if (mem == NULL)
        return kr_client_fail(c, KRAPPY_E_NOMEM, "out of memory holding a VALUE of %zu bytes",
                              f->len);
    memset(mem, 0, head);
    uint8_t *copy = mem + head, *jp = copy + f->len;
    if (f->len > 0)
        memcpy(copy, f->payload, f->len);
    krappy_event ev;
    fill_event(&ev, &v, &jp);
    ev.key = rebase(ev.key, f->payload, f->len, copy);
    ev.value = rebase(ev.value, f->payload, f->len, copy);
    ev.headers = rebase(ev.headers, f->payload, f->len, copy);
    krappy_value *val = (krappy_value *)(void *)mem;
    val->offset = ev.offset;
    val->ts = ev.ts;
    val->key_is_text = ev.key_is_text;
    val->key = ev.key;
    val->key_len = ev.key_len;
    val->value = ev.value;
    val->value_len = ev.value_len;
    val->has_headers = ev.has_headers;
    val->headers = ev.headers;
    val->headers_len = ev.headers_len;
    *out = val;
    return KRAPPY_OK;
}

/* Check a GET's arguments and build the request in c->enc. */
static krappy_err encode_get(krappy_client *c, const char *fn, const char *topic, const void *key,
                             size_t key_len)
{
    krappy_err e = kr_client_need_name(c, fn, "topic", topic);
    if (e != KRAPPY_OK)
        return e;
    if (key == NULL && key_len > 0)
        return kr_client_fail(c, KRAPPY_E_USAGE, "%s: the key is NULL but its length is %zu", fn,
                              key_len);
    kr_enc_get(kr_client_enc_begin(c), (kr_cid){false, 0}, topic, key_len > 0 ? key : "", key_len);
    return KRAPPY_OK;
}

krappy_err krappy_get(krappy_client *c, const char *topic, const void *key, size_t key_len,
                      krappy_value **out)
{
    krappy_frame f;
    kr_reply r;
    krappy_err e;

    if (out != NULL)
        *out = NULL;
    if ((e = read_begin(c, "krappy_get", out != NULL)) != KRAPPY_OK ||
        (e = encode_get(c, "krappy_get", topic, key, key_len)) != KRAPPY_OK ||
        (e = kr_client_request(c, KRAPPY_T_GET, KRAPPY_T_VALUE, 0, &f, &r)) != KRAPPY_OK)
        return e;
    return hold_value(c, &f, &r, out);
}

krappy_err krappy_get_send(krappy_client *c, const char *topic, const void *key, size_t key_len)
{
    krappy_err e;

    if (c == NULL)
        return KRAPPY_E_USAGE;
    kr_client_clear_error(c);
    if ((e = encode_get(c, "krappy_get_send", topic, key, key_len)) != KRAPPY_OK)
        return e;
    return kr_client_send_due(c, KRAPPY_T_GET, 0);
}

krappy_err krappy_get_recv(krappy_client *c, krappy_value **out)
{
    krappy_frame f;
    kr_reply r;
    krappy_err e;

    if (out != NULL)
        *out = NULL;
    if ((e = read_begin(c, "krappy_get_recv", out != NULL)) != KRAPPY_OK ||
        (e = kr_client_recv_due(c, KRAPPY_T_GET, KRAPPY_T_VALUE, "krappy_get_recv", &f, &r)) !=
            KRAPPY_OK)
        return e;
    return hold_value(c, &f, &r, out);
}

void krappy_value_free(krappy_value *v)
{
    free(v);
}

/* ---- SCAN ---- */

struct krappy_scan {
    char *topic;
    uint64_t limit;
    uint8_t *cursor; /* NULL at the end */
    size_t cursor_len;
    uint64_t snapshot;
    void *page; /* the current page's allocation */
    krappy_event *entries;
    size_t count;
};

/* Take the ENTRIES reply f as the scan's current page. */
static krappy_err scan_take_page(krappy_client *c, krappy_scan *s, const krappy_frame *f)
{
    kr_reply r;
    kr_cbor_item cur;
    krappy_err e;
    void *mem;
    krappy_event *ent;
    size_t n;
    uint64_t snapshot;
    uint8_t *cursor = NULL;
    size_t cursor_len = 0;

    if ((e = decode_records(c, f, "SCAN", "entries", read_entry_rec, 0, &mem, &ent, &n, &r)) !=
        KRAPPY_OK)
        return e;
    if (!kr_reply_uint(&r, "snapshot", &snapshot)) {
        free(mem);
        return kr_client_bad_reply(c, "SCAN", "no uint `snapshot`");
    }
    int found = kr_cbor_map_find(&r.map, "cursor", &cur);
    if (found == 1 && cur.kind != KR_CBOR_NULL) {
        if (cur.kind != KR_CBOR_BYTES) {
            free(mem);
            return kr_client_bad_reply(c, "SCAN", "`cursor` is not a byte string");
        }
        cursor_len = cur.str_len;
        cursor = malloc(cursor_len > 0 ? cursor_len : 1);
        if (cursor == NULL) {
            free(mem);
            return kr_client_fail(c, KRAPPY_E_NOMEM, "out of memory keeping a scan cursor");
        }
        kr_cbor_str_copy(&cur, cursor, cursor_len);
    }
    free(s->page);
    free(s->cursor);
    s->page = mem;
    s->entries = ent;
    s->count = n;
    s->snapshot = snapshot;
    s->cursor = cursor;
    s->cursor_len = cursor_len;
    return KRAPPY_OK;
}

krappy_err krappy_scan_begin(krappy_client *c, const char *topic, const void *prefix,
                             size_t prefix_len, const void *after, size_t after_len, uint64_t limit,
                             krappy_scan **out)
{
    krappy_frame f;
    kr_reply r;
    krappy_err e;

    if (out != NULL)
        *out = NULL;
    if ((e = read_begin(c, "krappy_scan_begin", out != NULL)) != KRAPPY_OK ||
        (e = kr_client_need_name(c, "krappy_scan_begin", "topic", topic)) != KRAPPY_OK)
        return e;
    krappy_scan *s = calloc(1, sizeof *s);
    if (s == NULL || (s->topic = strdup(topic)) == NULL) {
        free(s);
        return kr_client_fail(c, KRAPPY_E_NOMEM, "out of memory starting a scan");
    }
    s->limit = limit;
    /* A non-NULL empty prefix is no restriction; an empty `after` is one. */
    kr_enc_scan(kr_client_enc_begin(c), (kr_cid){false, 0}, topic, prefix_len > 0 ? prefix : NULL,
                prefix_len, after != NULL ? (after_len > 0 ? after : "") : NULL, after_len, limit,
                NULL, 0);
    if ((e = kr_client_request(c, KRAPPY_T_SCAN, KRAPPY_T_ENTRIES, 0, &f, &r)) != KRAPPY_OK ||
        (e = scan_take_page(c, s, &f)) != KRAPPY_OK) {
        krappy_scan_free(s);
        return e;
    }
    *out = s;
    return KRAPPY_OK;
}

krappy_err krappy_scan_next_page(krappy_client *c, krappy_scan *s)
{
    krappy_frame f;
    kr_reply r;
    krappy_err e;

    if (c == NULL)
        return KRAPPY_E_USAGE;
    kr_client_clear_error(c);
    if (s == NULL)
        return kr_client_fail(c, KRAPPY_E_USAGE, "krappy_scan_next_page: the scan is NULL");
    if (s->cursor == NULL) { /* the end: an empty page */
        free(s->page);
        s->page = NULL;
        s->entries = NULL;
        s->count = 0;
        return KRAPPY_OK;
    }
    kr_enc_scan(kr_client_enc_begin(c), (kr_cid){false, 0}, s->topic, NULL, 0, NULL, 0, s->limit,
                s->cursor_len > 0 ? (const void *)s->cursor : "", s->cursor_len);
    if ((e = kr_client_request(c, KRAPPY_T_SCAN, KRAPPY_T_ENTRIES, 0, &f, &r)) != KRAPPY_OK)
        return e;
    return scan_take_page(c, s, &f);
}

const krappy_event *krappy_scan_entries(const krappy_scan *s, size_t *count)
{
    if (count != NULL)
        *count = s != NULL ? s->count : 0;
    return s != NULL ? s->entries : NULL;
}

int krappy_scan_more(const krappy_scan *s)
{
    return s != NULL && s->cursor != NULL;
}

uint64_t krappy_scan_snapshot(const krappy_scan *s)
{
    return s != NULL ? s->snapshot : 0;
}

void krappy_scan_free(krappy_scan *s)
{
    if (s == NULL)
        return;
    free(s->topic);
    free(s->cursor);
    free(s->page);
    free(s);
}

/* ---- TOPICS and STATS ---- */

/* Copy a text item as a NUL-terminated string at *strs. */
static const char *take_text(const kr_cbor_item *t, char **strs)
{
    char *p = *strs;
    kr_cbor_str_copy(t, (uint8_t *)p, t->str_len);
    p[t->str_len] = '\0';
    *strs += t->str_len + 1;
    return p;
}

/* Read {name, first, next} of TOPICS. */
static int read_topic(const kr_cbor_item *m, kr_cbor_item *name, uint64_t *first, uint64_t *next)
{
    kr_cbor_item a, b;
    if (m->kind != KR_CBOR_MAP || kr_cbor_map_find(m, "name", name) != 1 ||
        name->kind != KR_CBOR_TEXT || kr_cbor_map_find(m, "first", &a) != 1 ||
        a.kind != KR_CBOR_UINT || kr_cbor_map_find(m, "next", &b) != 1 || b.kind != KR_CBOR_UINT)
        return -1;
    *first = a.u;
    *next = b.u;
    return 0;
}

krappy_err krappy_topics(krappy_client *c, krappy_topic_list **out)
{
    krappy_frame f;
    kr_reply r;
    krappy_err e;
    kr_cbor_item arr, item, name;
    kr_cbor_iter it;
    uint64_t first, next;
    size_t n = 0, strs = 0;

    if (out != NULL)
        *out = NULL;
    if ((e = read_begin(c, "krappy_topics", out != NULL)) != KRAPPY_OK)
        return e;
    kr_enc_empty(kr_client_enc_begin(c), (kr_cid){false, 0});
    if ((e = kr_client_request(c, KRAPPY_T_TOPICS, KRAPPY_T_OK, 0, &f, &r)) != KRAPPY_OK)
        return e;
    if (kr_cbor_map_find(&r.map, "topics", &arr) != 1 || arr.kind != KR_CBOR_ARRAY)
        return kr_client_bad_reply(c, "TOPICS", "no array `topics`");
    kr_cbor_iter_init(&it, &arr);
    while (kr_cbor_iter_next(&it, &item) == 1) {
        if (read_topic(&item, &name, &first, &next) < 0)
            return kr_client_bad_reply(c, "TOPICS",
                                       "a topic lacks a text `name` or uint `first`/`next`");
        strs += name.str_len + 1;
        n++;
    }
    size_t head = ALIGN8(sizeof(krappy_topic_list));
    if (n > (SIZE_MAX - head - strs) / sizeof(krappy_topic_info))
        return kr_client_fail(c, KRAPPY_E_NOMEM, "a TOPICS reply too large to hold");
    uint8_t *mem = malloc(head + n * sizeof(krappy_topic_info) + strs + 1);
    if (mem == NULL)
        return kr_client_fail(c, KRAPPY_E_NOMEM, "out of memory holding %zu topics", n);
    krappy_topic_list *l = (krappy_topic_list *)(void *)mem;
    krappy_topic_info *t = (krappy_topic_info *)(void *)(mem + head);
    char *sp = (char *)(mem + head + n * sizeof(krappy_topic_info));
    kr_cbor_iter_init(&it, &arr);
    for (size_t i = 0; i < n && kr_cbor_iter_next(&it, &item) == 1; i++) {
        read_topic(&item, &name, &t[i].first, &t[i].next);
        t[i].name_len = name.str_len;
        t[i].name = take_text(&name, &sp);
    }
    l->count = n;
    l->topics = n > 0 ? t : NULL;
    *out = l;
    return KRAPPY_OK;
}

void krappy_topic_list_free(krappy_topic_list *l)
{
    free(l);
}

/* Read one {group, cursor, pending, lag, members} of STATS. */
static int read_group(const kr_cbor_item *m, kr_cbor_item *name, krappy_group_stats *g)
{
    static const char *const fields[] = {"cursor", "pending", "lag", "members"};
    uint64_t *dst[] = {&g->cursor, &g->pending, &g->lag, &g->members};
    kr_cbor_item x;

    if (m->kind != KR_CBOR_MAP || kr_cbor_map_find(m, "group", name) != 1 ||
        name->kind != KR_CBOR_TEXT)
        return -1;
    for (size_t i = 0; i < 4; i++) {
        if (kr_cbor_map_find(m, fields[i], &x) != 1 || x.kind != KR_CBOR_UINT)
            return -1;
        *dst[i] = x.u;
    }
    /* `kind` is absent for krappy's own groups. */
    g->kafka = kr_cbor_map_find(m, "kind", &x) == 1 && x.kind == KR_CBOR_TEXT &&
               kr_cbor_text_eq(&x, "kafka");
    return 0;
}

/* STATS' `config` and `compaction`, when the server sends them (krappyd). */
static void read_stats_more(const kr_reply *r, krappy_topic_stats *st)
{
    static const char *const names[] = {"dirty_bytes", "reclaimed_bytes", "segments_rewritten",
                                        "events_removed", "ms"};
    uint64_t *dst[] = {&st->dirty_bytes, &st->reclaimed_bytes, &st->segments_rewritten,
                       &st->events_removed, &st->compact_ms};
    kr_cbor_item m, x;
    kr_topic_config tc;
    char msg[128];
    if (kr_cbor_map_find(&r->map, "config", &m) == 1 &&
        kr_tc_decode(&m, false, &tc, msg, sizeof msg) == KRAPPY_OK && tc.mask == KR_TC_ALL) {
        st->has_config = 1;
        kr_client_settings_from(&tc, &st->config);
    }
    if (kr_cbor_map_find(&r->map, "compaction", &m) != 1 || m.kind != KR_CBOR_MAP)
        return;
    st->has_compaction = 1;
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++)
        if (kr_cbor_map_find(&m, names[i], &x) == 1 && x.kind == KR_CBOR_UINT)
            *dst[i] = x.u;
}

krappy_err krappy_stats(krappy_client *c, const char *topic, const char *group,
                        krappy_topic_stats **out)
{
    krappy_frame f;
    kr_reply r;
    krappy_err e;
    kr_cbor_item arr, item, name, tname;
    kr_cbor_iter it;
    krappy_group_stats g;
    krappy_topic_stats st;
    size_t n = 0, strs = 0;

    if (out != NULL)
        *out = NULL;
    if ((e = read_begin(c, "krappy_stats", out != NULL)) != KRAPPY_OK ||
        (e = kr_client_need_name(c, "krappy_stats", "topic", topic)) != KRAPPY_OK)
        return e;
    kr_enc_stats(kr_client_enc_begin(c), (kr_cid){false, 0}, topic, group);
    if ((e = kr_client_request(c, KRAPPY_T_STATS, KRAPPY_T_OK, 0, &f, &r)) != KRAPPY_OK)
        return e;
    memset(&st, 0, sizeof st);
    if (kr_cbor_map_find(&r.map, "topic", &tname) != 1 || tname.kind != KR_CBOR_TEXT ||
        !kr_reply_uint(&r, "first", &st.first) || !kr_reply_uint(&r, "next", &st.next) ||
        !kr_reply_uint(&r, "bytes", &st.bytes) || !kr_reply_uint(&r, "keys", &st.keys))
        return kr_client_bad_reply(c, "STATS", "it needs topic, first, next, bytes and keys");
    (void)kr_reply_uint(&r, "producers", &st.producers); /* 0 from servers without it */
    read_stats_more(&r, &st);
    if (kr_cbor_map_find(&r.map, "groups", &arr) != 1 || arr.kind != KR_CBOR_ARRAY)
        return kr_client_bad_reply(c, "STATS", "no array `groups`");
    kr_cbor_iter_init(&it, &arr);
    while (kr_cbor_iter_next(&it, &item) == 1) {
        if (read_group(&item, &name, &g) < 0)
            return kr_client_bad_reply(c, "STATS", "a group lacks a field");
        strs += name.str_len + 1;
        n++;
    }
    strs += tname.str_len + 1;
    size_t head = ALIGN8(sizeof(krappy_topic_stats));
    if (n > (SIZE_MAX - head - strs) / sizeof(krappy_group_stats))
        return kr_client_fail(c, KRAPPY_E_NOMEM, "a STATS reply too large to hold");
    uint8_t *mem = malloc(head + n * sizeof(krappy_group_stats) + strs);
    if (mem == NULL)
        return kr_client_fail(c, KRAPPY_E_NOMEM, "out of memory holding the stats of %zu groups",
                              n);
    krappy_topic_stats *res = (krappy_topic_stats *)(void *)mem;
    krappy_group_stats *gs = (krappy_group_stats *)(void *)(mem + head);
    char *sp = (char *)(mem + head + n * sizeof(krappy_group_stats));
    *res = st;
    res->topic = take_text(&tname, &sp);
    kr_cbor_iter_init(&it, &arr);
    for (size_t i = 0; i < n && kr_cbor_iter_next(&it, &item) == 1; i++) {
        read_group(&item, &name, &gs[i]);
        gs[i].group_len = name.str_len;
        gs[i].group = take_text(&name, &sp);
    }
    res->n_groups = n;
    res->groups = n > 0 ? gs : NULL;
    *out = res;
    return KRAPPY_OK;
}

void krappy_topic_stats_free(krappy_topic_stats *s)
{
    free(s);
}
