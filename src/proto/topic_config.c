/*
 * proto/topic_config.c - topic settings: names, ranges, the CBOR map and
 * "name=value" text (topic_config.h).
 */
#include "proto/topic_config.h"

#include <ctype.h>
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* What a setting's value is, for parsing and messages. */
typedef enum tc_kind { TC_POLICY, TC_BYTES, TC_MS } tc_kind;

static const struct tc_spec {
    const char *name;
    tc_kind kind;
    uint64_t min, max;
    const char *rule; /* quoted in messages */
} specs[KR_TC_N] = {
    [KR_TC_CLEANUP] = {"cleanup", TC_POLICY, 0, 0,
                       "the text \"delete\", \"compact\" or \"compact,delete\""},
    [KR_TC_RETENTION_BYTES] = {"retention_bytes", TC_BYTES, 0, UINT64_MAX,
                               "an unsigned integer of bytes (0 = no size limit)"},
    [KR_TC_RETENTION_MS] = {"retention_ms", TC_MS, 0, UINT64_MAX,
                            "an unsigned integer of milliseconds (0 = no age limit)"},
    [KR_TC_DELETE_RETENTION_MS] = {"delete_retention_ms", TC_MS, 0, UINT64_MAX,
                                   "an unsigned integer of milliseconds"},
    [KR_TC_SEGMENT_BYTES] = {"segment_bytes", TC_BYTES, KR_TC_SEGMENT_BYTES_MIN,
                             KR_TC_SEGMENT_BYTES_MAX,
                             "an unsigned integer of bytes from 4096 to 2^40"},
    [KR_TC_SEGMENT_MS] = {"segment_ms", TC_MS, 0, UINT64_MAX,
                          "an unsigned integer of milliseconds, 0 (never) or at least 100"},
};

const char *kr_tc_name(int field)
{
    return field >= 0 && field < KR_TC_N ? specs[field].name : NULL;
}

int kr_tc_lookup(const char *name, size_t len)
{
    for (int i = 0; i < KR_TC_N; i++)
        if (strlen(specs[i].name) == len && memcmp(specs[i].name, name, len) == 0)
            return i;
    return -1;
}

const char *kr_cleanup_name(uint64_t cleanup)
{
    switch (cleanup) {
    case KR_CLEANUP_DELETE:
        return "delete";
    case KR_CLEANUP_COMPACT:
        return "compact";
    case KR_CLEANUP_DELETE | KR_CLEANUP_COMPACT:
        return "compact,delete";
    default:
        return NULL;
    }
}

int kr_cleanup_parse(const char *s, size_t len, uint64_t *out)
{
    static const struct {
        const char *text;
        uint64_t v;
    } names[] = {{"delete", KR_CLEANUP_DELETE},
                 {"compact", KR_CLEANUP_COMPACT},
                 {"compact,delete", KR_CLEANUP_DELETE | KR_CLEANUP_COMPACT},
                 {"delete,compact", KR_CLEANUP_DELETE | KR_CLEANUP_COMPACT}};
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++)
        if (strlen(names[i].text) == len && memcmp(names[i].text, s, len) == 0) {
            *out = names[i].v;
            return 0;
        }
    return -1;
}

int kr_tc_check(int field, uint64_t v, char *msg, size_t msglen)
{
    if (field < 0 || field >= KR_TC_N)
        return -1;
    const struct tc_spec *sp = &specs[field];
    bool ok = field == KR_TC_CLEANUP      ? kr_cleanup_name(v) != NULL
              : field == KR_TC_SEGMENT_MS ? v == 0 || v >= KR_TC_SEGMENT_MS_MIN
                                          : v >= sp->min && v <= sp->max;
    if (ok)
        return 0;
    snprintf(msg, msglen, "setting '%s' must be %s, not %" PRIu64, sp->name, sp->rule, v);
    return -1;
}

/* Setting f of a change: set to v, or reset. */
static void tc_put(kr_topic_config *c, int f, bool set, uint64_t v)
{
    uint32_t bit = 1u << f;
    c->mask = set ? c->mask | bit : c->mask & ~bit;
    c->reset = set ? c->reset & ~bit : c->reset | bit;
    c->v[f] = v;
}

/* One entry of a settings map into out. */
static krappy_err decode_entry(const kr_cbor_item *k, const kr_cbor_item *v, bool strict,
                               kr_topic_config *out, char *msg, size_t msglen)
{
    char name[32], text[32];
    size_t n = kr_cbor_str_copy(k, (uint8_t *)name, sizeof name - 1);
    int f = n < sizeof name ? kr_tc_lookup(name, n) : -1;
    if (f < 0) {
        if (!strict)
            return KRAPPY_OK;
        snprintf(msg, msglen,
                 "there is no topic setting '%.*s'; the settings are cleanup, retention_bytes, "
                 "retention_ms, delete_retention_ms, segment_bytes and segment_ms",
                 (int)(n < sizeof name ? n : sizeof name - 1), name);
        return KRAPPY_E_INVALID_ARGUMENT;
    }
    if (v->kind == KR_CBOR_NULL) {
        if (strict)
            tc_put(out, f, false, 0);
        return KRAPPY_OK;
    }
    uint64_t x = 0;
    bool ok;
    if (f == KR_TC_CLEANUP) {
        size_t tn = v->kind == KR_CBOR_TEXT ? kr_cbor_str_copy(v, (uint8_t *)text, sizeof text)
                                            : sizeof text;
        ok = tn < sizeof text && kr_cleanup_parse(text, tn, &x) == 0;
    } else {
        ok = v->kind == KR_CBOR_UINT;
        x = v->u;
    }
    if (!ok) {
        snprintf(msg, msglen, "setting '%s' must be %s", specs[f].name, specs[f].rule);
        return KRAPPY_E_INVALID_ARGUMENT;
    }
    if (kr_tc_check(f, x, msg, msglen) < 0)
        return KRAPPY_E_INVALID_ARGUMENT;
    tc_put(out, f, true, x);
    return KRAPPY_OK;
}

krappy_err kr_tc_decode(const kr_cbor_item *map, bool strict, kr_topic_config *out, char *msg,
                        size_t msglen)
{
    memset(out, 0, sizeof *out);
    if (map->kind != KR_CBOR_MAP) {
        snprintf(msg, msglen, "topic settings must be a map of setting names to values");
        return KRAPPY_E_INVALID_ARGUMENT;
    }
    kr_cbor_iter it;
    kr_cbor_item k, v;
    kr_cbor_iter_init(&it, map);
    while (kr_cbor_iter_next(&it, &k) == 1) {
        if (kr_cbor_iter_next(&it, &v) != 1 || k.kind != KR_CBOR_TEXT) {
            snprintf(msg, msglen, "topic settings must be a map with text keys");
            return KRAPPY_E_INVALID_ARGUMENT;
        }
        krappy_err e = decode_entry(&k, &v, strict, out, msg, msglen);
        if (e != KRAPPY_OK)
            return e;
    }
    return KRAPPY_OK;
}

void kr_tc_encode(kr_buf *b, const kr_topic_config *c)
{
    size_t n = 0;
    for (int i = 0; i < KR_TC_N; i++)
        n += ((c->mask | c->reset) >> i) & 1u;
    kr_cbor_put_map(b, n);
    for (int i = 0; i < KR_TC_N; i++) {
        if (!((c->mask >> i) & 1u))
            continue;
        kr_cbor_put_cstr(b, specs[i].name);
        if (i == KR_TC_CLEANUP) {
            const char *p = kr_cleanup_name(c->v[i]);
            kr_cbor_put_cstr(b, p != NULL ? p : "delete");
        } else {
            kr_cbor_put_uint(b, c->v[i]);
        }
    }
    for (int i = 0; i < KR_TC_N; i++) {
        if ((c->reset >> i) & 1u) {
            kr_cbor_put_cstr(b, specs[i].name);
            kr_cbor_put_null(b);
        }
    }
}

void kr_tc_merge(kr_topic_config *dst, const kr_topic_config *src)
{
    for (int i = 0; i < KR_TC_N; i++)
        if ((src->mask >> i) & 1u)
            dst->v[i] = src->v[i];
    dst->mask = (dst->mask | src->mask) & ~src->reset;
}

/* A number with an optional unit suffix: *mult per unit. @return 0, or -1. */
static int parse_scaled(const char *s, tc_kind kind, uint64_t *out)
{
    static const struct {
        const char *suffix;
        uint64_t mult;
    } bytes[] = {{"", 1}, {"K", 1024}, {"M", 1024 * 1024}, {"G", 1024ull * 1024 * 1024}},
      ms[] = {{"", 1}, {"ms", 1}, {"s", 1000}, {"m", 60000}, {"h", 3600000}, {"d", 86400000}};
    if (!isdigit((unsigned char)s[0]))
        return -1;
    char *end;
    errno = 0;
    unsigned long long v = strtoull(s, &end, 10);
    if (errno != 0)
        return -1;
    size_t n = kind == TC_BYTES ? sizeof bytes / sizeof bytes[0] : sizeof ms / sizeof ms[0];
    for (size_t i = 0; i < n; i++) {
        const char *suf = kind == TC_BYTES ? bytes[i].suffix : ms[i].suffix;
        uint64_t mult = kind == TC_BYTES ? bytes[i].mult : ms[i].mult;
        if (strcmp(end, suf) != 0)
            continue;
        if (v > UINT64_MAX / mult)
            return -1;
        *out = v * mult;
        return 0;
    }
    return -1;
}

int kr_tc_parse_assign(const char *text, kr_topic_config *out, char *msg, size_t msglen)
{
    const char *eq = strchr(text, '=');
    int f = eq != NULL ? kr_tc_lookup(text, (size_t)(eq - text)) : -1;
    if (f < 0) {
        snprintf(msg, msglen,
                 "'%s' is not NAME=VALUE of a topic setting (cleanup, retention_bytes, "
                 "retention_ms, delete_retention_ms, segment_bytes, segment_ms)",
                 text);
        return -1;
    }
    const char *val = eq + 1;
    uint64_t v;
    if (strcmp(val, KR_TC_RESET_WORD) == 0) {
        tc_put(out, f, false, 0);
        return 0;
    }
    int rc = f == KR_TC_CLEANUP ? kr_cleanup_parse(val, strlen(val), &v)
                                : parse_scaled(val, specs[f].kind, &v);
    if (rc < 0) {
        snprintf(msg, msglen, "setting '%s' must be %s%s or " KR_TC_RESET_WORD ", not '%s'",
                 specs[f].name, specs[f].rule,
                 specs[f].kind == TC_BYTES ? " (K, M, G suffixes)"
                 : specs[f].kind == TC_MS  ? " (ms, s, m, h, d suffixes)"
                                           : "",
                 val);
        return -1;
    }
    if (kr_tc_check(f, v, msg, msglen) < 0)
        return -1;
    tc_put(out, f, true, v);
    return 0;
}
